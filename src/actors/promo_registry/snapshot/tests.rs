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
        sold_total: 1,
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

/// `stores` stores due north of (0, 0), each nearer one 1 km closer, with
/// `per_store` promos each, all of segment 7 and reaching (0, 0); ids run
/// from the farthest store's to the nearest's.
fn row_of_stores(stores: i64, per_store: i64) -> Vec<FlashPromo> {
    (0..stores * per_store)
        .map(|index| {
            let latitude = (stores - index / per_store) as f64 / 111.2;
            placed(index + 1, latitude, 0.0, 100.0, &[7])
        })
        .collect()
}

/// Sets the sold units of promo `id`, through its live counts.
fn sell(promos: &Promos, id: i64, sold: u32) {
    let counts = &promos.get(id).unwrap().counts;
    counts.store(Counts {
        sold,
        ..counts.load()
    });
}

fn cached_places(snapshot: &Snapshot) -> usize {
    let epoch = snapshot.epoch.as_ref().expect("one slab, one epoch");
    snapshot.index.cached_places(epoch.current())
}

#[test]
fn far_places_are_counted_from_the_cache_with_the_same_answer_cold_or_warm() {
    let promos = catalogue(row_of_stores(30, 4));
    let snapshot = Snapshot::build(promos.iter(), at(18));
    let shopper = member(0.0, 0.0, &[7]);
    assert_eq!(cached_places(&snapshot), 0);
    let cold = snapshot.eligible(&shopper, at(18), window(2, 5));
    assert!(cached_places(&snapshot) > 0, "far places were cached");
    let warm = snapshot.eligible(&shopper, at(18), window(2, 5));
    assert_eq!(cold.total, 120);
    assert_eq!(warm.total, 120);
    // The nearest store holds 117..=120, the next 113..=116.
    let page = vec![119, 120, 113, 114, 115];
    assert_eq!(ids(&cold, |(p, _)| p.id), page);
    assert_eq!(ids(&warm, |(p, _)| p.id), page);
}

#[test]
fn a_sale_that_sells_out_or_a_cancel_that_reopens_a_far_promo_moves_the_count() {
    let promos = catalogue(row_of_stores(30, 4));
    let snapshot = Snapshot::build(promos.iter(), at(18));
    let shopper = member(0.0, 0.0, &[7]);
    let total = || snapshot.eligible(&shopper, at(18), window(0, 3)).total;
    assert_eq!((total(), total()), (120, 120), "cold, then warm");
    sell(&promos, 1, 5);
    assert_eq!(total(), 119, "the farthest promo sold out");
    assert_eq!(total(), 119, "and stays so once cached again");
    sell(&promos, 1, 4);
    assert_eq!(total(), 120, "a cancel put one unit back");
    sell(&promos, 2, 3);
    assert_eq!(total(), 120, "units left: no change");
}

#[test]
fn a_place_nearer_than_the_farthest_kept_still_ranks_its_spots() {
    // Offered in any order, the nearest stores' promos must displace the
    // farther ones kept first, whichever place the walk reaches first.
    let promos = catalogue(row_of_stores(40, 3));
    let snapshot = Snapshot::build(promos.iter(), at(18));
    let shopper = member(0.0, 0.0, &[7]);
    for _ in 0..2 {
        let page = snapshot.eligible(&shopper, at(18), window(0, 4));
        assert_eq!(
            (page.total, ids(&page, |(p, _)| p.id)),
            (120, vec![118, 119, 120, 115])
        );
    }
    sell(&promos, 119, 5);
    let page = snapshot.eligible(&shopper, at(18), window(0, 4));
    assert_eq!(
        (page.total, ids(&page, |(p, _)| p.id)),
        (119, vec![118, 120, 115, 116])
    );
}

#[test]
fn counts_made_apart_share_no_epoch_and_are_not_cached() {
    let row = catalogue(row_of_stores(5, 2));
    let apart = catalogue([placed(11, 0.0, 0.0, 100.0, &[7])]);
    let snapshot = Snapshot::build(row.iter().chain(apart.iter()), at(18));
    assert!(snapshot.epoch.is_none());
    for _ in 0..2 {
        let page = snapshot.eligible(&member(0.0, 0.0, &[7]), at(18), window(0, 1));
        assert_eq!((page.total, ids(&page, |(p, _)| p.id)), (11, vec![11]));
    }
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

        #[test]
        fn eligible_matches_a_scan_again_after_sales_and_cancels(
            specs in proptest::collection::vec(promo_strategy(), 0..60),
            at_lat in -0.3..0.3f64,
            at_lon in -0.3..0.3f64,
            segments in proptest::collection::vec(1..4i64, 0..3),
            limit in 1..4i64,
            sales in proptest::collection::vec((0..60usize, 0..3u32), 0..8),
            built_before_a_boundary in proptest::bool::ANY,
        ) {
            let mut promos: Vec<FlashPromo> = specs
                .iter()
                .zip(1i64..)
                .map(|((lat, lon, radius, segs, active, sold, shift), id)| {
                    let mut promo = placed(id, *lat, *lon, *radius, segs);
                    promo.is_active = *active;
                    promo.quantity = 2;
                    promo.sold = *sold;
                    promo.start_time += chrono::Duration::minutes(i64::from(*shift) * 90);
                    promo
                })
                .collect();
            let shopper = member(at_lat, at_lon, &segments);
            let built = if built_before_a_boundary { at(16) } else { at(17) };
            let listed = catalogue(promos.clone());
            let live = snapshot(&listed, built);
            let check = |promos: &[FlashPromo]| {
                let expected = scan(promos, &shopper, at(18));
                let found = live.eligible(&shopper, at(18), window(0, limit));
                let page: Vec<i64> = expected.iter().copied().take(limit as usize).collect();
                (found.total, ids(&found, |(p, _)| p.id)) == (expected.len() as i64, page)
            };
            prop_assert!(check(&promos), "cold");
            prop_assert!(check(&promos), "warm");
            for (index, sold) in sales {
                let Some(promo) = promos.get_mut(index) else { continue };
                promo.sold = sold;
                let id = promo.id;
                sell(&listed, id, sold);
                prop_assert!(check(&promos), "after promo {} sold {}", id, sold);
            }
        }
    }
}
