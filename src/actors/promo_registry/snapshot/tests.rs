//! Unit tests of the published snapshot: the same answers, ordering and
//! paging as a scan of every promo with the one eligibility rule.

use super::super::catalogue::Catalogue;
use super::super::counts::Counts;
use super::super::lifecycle::tests::{at, promo};
use super::*;
use crate::domain::eligibility::check_eligibility;
use crate::domain::entities::Segment;
use crate::domain::GeoPoint;

type Promos = Catalogue<Addr<PromoActor>>;

fn placed(id: i64, latitude: f64, longitude: f64, radius_km: f64, segments: &[i64]) -> FlashPromo {
    let mut promo = promo(id);
    promo.product.store.latitude = latitude;
    promo.product.store.longitude = longitude;
    promo.max_distance_km = radius_km;
    promo.segments = segments
        .iter()
        .map(|id| Segment {
            id: *id,
            name: format!("S{id}"),
            description: String::new(),
        })
        .collect();
    promo
}

fn member(latitude: f64, longitude: f64, segments: &[i64]) -> AudienceMember {
    AudienceMember {
        user_id: 1,
        location: Some(GeoPoint::parse(latitude, longitude).unwrap()),
        segment_ids: segments.to_vec(),
    }
}

fn snapshot(catalogue: &Promos, built: DateTime<Utc>) -> LivePromos {
    let live = LivePromos::new();
    live.publish(Snapshot::build(catalogue.iter(), built));
    live
}

fn catalogue(promos: impl IntoIterator<Item = FlashPromo>) -> Promos {
    let mut catalogue = Promos::default();
    for promo in promos {
        catalogue.change(promo);
    }
    catalogue
}

fn window(offset: i64, limit: i64) -> PageWindow {
    PageWindow { limit, offset }
}

fn ids<T>(listing: &Listing<T>, id: impl Fn(&T) -> i64) -> Vec<i64> {
    listing.items.iter().map(id).collect()
}

#[test]
fn running_lists_only_promos_running_now_with_units_left_in_id_order() {
    let mut scheduled = promo(2);
    scheduled.start_time = at(20);
    scheduled.end_time = at(21);
    let mut off = promo(4);
    off.is_active = false;
    let mut sold_out = promo(5);
    sold_out.sold = sold_out.quantity;
    let promos = catalogue([promo(3), scheduled, promo(1), off, sold_out]);
    let running = snapshot(&promos, at(18)).running(at(18), window(0, 10));
    assert_eq!(running.total, 2);
    assert_eq!(ids(&running, |promo| promo.id), vec![1, 3]);
    let second = snapshot(&promos, at(18)).running(at(18), window(1, 1));
    assert_eq!((second.total, ids(&second, |promo| promo.id)), (2, vec![3]));
}

#[test]
fn counts_written_after_publishing_are_seen_without_a_new_snapshot() {
    let promos = catalogue([promo(1)]);
    let live = snapshot(&promos, at(18));
    let counts = Counts {
        quantity: 5,
        held: 2,
        sold: 1,
    };
    promos.get(1).unwrap().counts.store(counts);
    let listed = &live.running(at(18), window(0, 10)).items[0];
    assert_eq!((listed.available, listed.held, listed.sold), (2, 2, 1));
    promos
        .get(1)
        .unwrap()
        .counts
        .store(Counts { sold: 5, ..counts });
    assert_eq!(live.running(at(18), window(0, 10)).total, 0, "sold out");
}

#[test]
fn a_start_or_end_passed_since_publishing_is_honoured_before_the_next_snapshot() {
    let mut later = promo(2);
    later.start_time = at(18);
    let promos = catalogue([promo(1), later]);
    let live = snapshot(&promos, at(17));
    assert_eq!(ids(&live.running(at(17), window(0, 10)), |p| p.id), vec![1]);
    assert_eq!(
        ids(&live.running(at(18), window(0, 10)), |p| p.id),
        vec![1, 2]
    );
    let shopper = member(0.0, 0.0, &[7]);
    let eligible = live.eligible(&shopper, at(18), window(0, 10));
    assert_eq!(ids(&eligible, |(p, _)| p.id), vec![1, 2]);
    assert_eq!(live.running(at(19), window(0, 10)).total, 0, "both over");
    assert_eq!(live.eligible(&shopper, at(16), window(0, 10)).total, 0);
}

#[test]
fn eligible_ranks_nearest_first_then_by_id_and_counts_every_match() {
    let promos = catalogue([
        placed(1, 0.01, 0.0, 2.0, &[7]),
        placed(2, 0.0, 0.0, 2.0, &[7]),
        placed(3, 0.01, 0.0, 2.0, &[7]),
        placed(4, 0.0, 0.0, 2.0, &[8]),
        placed(5, 0.5, 0.0, 2.0, &[7]),
    ]);
    let live = snapshot(&promos, at(18));
    let shopper = member(0.0, 0.0, &[7]);
    let all = live.eligible(&shopper, at(18), window(0, 10));
    assert_eq!((all.total, ids(&all, |(p, _)| p.id)), (3, vec![2, 1, 3]));
    assert!(all.items[0].1 < 1e-9 && (all.items[1].1 - 1.112).abs() < 0.01);
    let page = live.eligible(&shopper, at(18), window(1, 1));
    assert_eq!((page.total, ids(&page, |(p, _)| p.id)), (3, vec![1]));
    let unknown = AudienceMember {
        location: None,
        ..shopper
    };
    assert_eq!(live.eligible(&unknown, at(18), window(0, 10)).total, 0);
}

#[test]
fn a_promo_of_several_of_the_shoppers_segments_is_listed_once() {
    let promos = catalogue([
        placed(1, 0.0, 0.0, 2.0, &[7, 8, 9]),
        placed(2, 0.0, 0.0, 2.0, &[9]),
    ]);
    let eligible =
        snapshot(&promos, at(18)).eligible(&member(0.0, 0.0, &[9, 8, 7, 8]), at(18), window(0, 10));
    assert_eq!(
        (eligible.total, ids(&eligible, |(p, _)| p.id)),
        (2, vec![1, 2])
    );
}

#[test]
fn the_ranking_and_the_reservation_check_agree_at_the_last_representable_edge() {
    let promo = placed(1, 19.4326, -99.1332, 2.0, &[7]);
    let live = snapshot(&catalogue([promo.clone()]), at(18));
    let eligible_at =
        |latitude: f64| check_eligibility(&promo, &member(latitude, -99.1332, &[7])).is_ok();
    // Bisect to the last latitude the reservation check accepts.
    let (mut inside, mut outside) = (19.4326, 19.4326 + 0.02);
    while outside - inside > f64::EPSILON * 64.0 {
        let middle = (inside + outside) / 2.0;
        if eligible_at(middle) {
            inside = middle;
        } else {
            outside = middle;
        }
    }
    let mut latitude = inside;
    for _ in 0..200 {
        let listed = live.eligible(&member(latitude, -99.1332, &[7]), at(18), window(0, 1));
        assert_eq!(listed.total == 1, eligible_at(latitude), "at {latitude}");
        latitude = f64::from_bits(latitude.to_bits() + 1);
    }
    assert!(!eligible_at(latitude), "the walk crossed the edge");
}

mod against_brute_force {
    use super::*;
    use proptest::prelude::*;

    fn promo_strategy() -> impl Strategy<Value = (f64, f64, f64, Vec<i64>, bool, u32, i8)> {
        // A few shared stores and radii, so several promos share one place.
        (
            prop_oneof![-0.3..0.3f64, Just(0.1)],
            prop_oneof![-0.3..0.3f64, 179.8..180.0f64, -180.0..-179.8f64, Just(0.1)],
            prop_oneof![0.1..30.0f64, Just(20.0)],
            proptest::collection::vec(1..4i64, 1..3),
            proptest::bool::weighted(0.9),
            0..3u32,
            -1..2i8,
        )
    }

    /// Every running promo the member may reserve, by the one rule, nearest first.
    fn scan(promos: &[FlashPromo], shopper: &AudienceMember, now: DateTime<Utc>) -> Vec<i64> {
        let mut found: Vec<(f64, i64)> = promos
            .iter()
            .filter(|promo| promo.runs_at(now) && promo.sold < promo.quantity)
            .filter_map(|promo| {
                let reach = crate::domain::eligibility::reach_of(promo);
                let chord = Shopper::new(shopper).check(promo, reach.as_ref()).ok()?;
                Some((chord, promo.id))
            })
            .collect();
        found.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        found.into_iter().map(|(_, id)| id).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        #[test]
        fn eligible_matches_a_scan_of_every_promo(
            specs in proptest::collection::vec(promo_strategy(), 0..60),
            at_lat in -0.3..0.3f64,
            at_lon in prop_oneof![-0.3..0.3f64, 179.8..180.0f64, -180.0..-179.8f64],
            segments in proptest::collection::vec(1..4i64, 0..3),
            offset in 0..5i64,
            limit in 1..8i64,
            built_before_a_boundary in proptest::bool::ANY,
        ) {
            let promos: Vec<FlashPromo> = specs
                .iter()
                .zip(1i64..)
                .map(|((lat, lon, radius, segs, active, sold, shift), id)| {
                    let mut promo = placed(id, *lat, *lon, *radius, segs);
                    promo.is_active = *active;
                    promo.quantity = 2;
                    promo.sold = *sold;
                    // Some start after, some end before, the instant asked about.
                    promo.start_time += chrono::Duration::minutes(i64::from(*shift) * 90);
                    promo
                })
                .collect();
            let shopper = member(at_lat, at_lon, &segments);
            let expected = scan(&promos, &shopper, at(18));
            // Built at 16:00, the 17:00 starts are past by 18:00: the slow path.
            let built = if built_before_a_boundary { at(16) } else { at(17) };
            let live = snapshot(&catalogue(promos.clone()), built);
            let found = live.eligible(&shopper, at(18), window(offset, limit));
            prop_assert_eq!(found.total, expected.len() as i64);
            let page: Vec<i64> = expected.iter().copied().skip(offset as usize).take(limit as usize).collect();
            prop_assert_eq!(ids(&found, |(p, _)| p.id), page);
        }
    }
}
