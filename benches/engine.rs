//! Criterion benches of the engine's in-memory hot paths:
//! - reservation decisions of one promo's stock (what a PromoActor does per message),
//! - the eligibility check (segment + haversine) against 1,000 promos,
//! - a 2 km radius query over 1,000,000 clients in the audience R-tree.
//!
//! Run with `cargo bench --bench engine`.

use std::hint::black_box;

use chrono::{Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use promo_engine::actors::audience::AudienceIndex;
use promo_engine::domain::eligibility::{check_eligibility, AudienceMember};
use promo_engine::domain::entities::{Product, Segment, Store};
use promo_engine::domain::promo::{FlashPromo, PromoStatus};
use promo_engine::domain::stock::PromoStock;
use promo_engine::domain::{GeoPoint, Money};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

fn reservation_decisions(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("promo_stock");
    // One hot promo: 1,000 units, each decision a reserve followed by its release.
    group.throughput(Throughput::Elements(2));
    group.bench_function("reserve_then_cancel", |bench| {
        let mut stock = PromoStock::new(1_000, 0, []);
        let now = Utc::now();
        let hold_for = Duration::seconds(60);
        let mut user_id = 0;
        bench.iter(|| {
            user_id += 1;
            let hold = stock.reserve(user_id, Uuid::new_v4(), now, hold_for).ok();
            if let Some(hold) = hold {
                black_box(stock.cancel(&hold.reservation_id, now).ok());
            }
        });
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("refuse_when_all_units_held", |bench| {
        let now = Utc::now();
        let mut stock = PromoStock::new(3, 0, []);
        for user_id in 0..3 {
            let _ = stock.reserve(user_id, Uuid::new_v4(), now, Duration::seconds(60));
        }
        bench.iter(|| {
            black_box(
                stock
                    .reserve(99, Uuid::new_v4(), now, Duration::seconds(60))
                    .is_err(),
            )
        });
    });
    group.finish();
}

fn promo_at(id: i64, latitude: f64, longitude: f64) -> FlashPromo {
    FlashPromo {
        id,
        product: Product {
            id,
            name: format!("Product {id}"),
            store: Store {
                id,
                name: format!("Store {id}"),
                latitude,
                longitude,
            },
            regular_price: Money::parse("100").unwrap(),
        },
        promo_price: Money::parse("50").unwrap(),
        start_time: Utc::now(),
        end_time: Utc::now() + Duration::hours(2),
        segments: vec![Segment {
            id: 1 + id % 2,
            name: "s".into(),
            description: String::new(),
        }],
        max_distance_km: 2.0,
        is_active: true,
        daily_window: None,
        quantity: 10,
        available: 10,
        held: 0,
        sold: 0,
        sold_total: 0,
        held_any: 0,
        status: PromoStatus::Running,
        occurrence: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn eligibility_scan(criterion: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let promos: Vec<FlashPromo> = (0..1_000)
        .map(|id| {
            promo_at(
                id,
                19.43 + rng.gen_range(-0.1..0.1),
                -99.13 + rng.gen_range(-0.1..0.1),
            )
        })
        .collect();
    let member = AudienceMember {
        user_id: 1,
        location: Some(GeoPoint::parse(19.43, -99.13).unwrap()),
        segment_ids: vec![1],
    };
    criterion.bench_function("check_eligibility_1000_promos", |bench| {
        bench.iter(|| {
            let mut eligible: Vec<(i64, f64)> = promos
                .iter()
                .filter_map(|promo| Some((promo.id, check_eligibility(promo, &member).ok()?)))
                .collect();
            eligible.sort_by(|a, b| a.1.total_cmp(&b.1));
            black_box(eligible)
        })
    });
}

fn audience_radius_query(criterion: &mut Criterion) {
    // 1,000,000 clients over ~40 km × 40 km: a 2 km circle holds about 1,000 of them
    // (π·2² / 40² × 10⁶ ≈ 7,850 before the segment filter keeps ~1/8).
    let mut rng = StdRng::seed_from_u64(2);
    let members: Vec<AudienceMember> = (0..1_000_000)
        .map(|user_id| AudienceMember {
            user_id,
            location: Some(
                GeoPoint::parse(
                    19.43 + rng.gen_range(-0.18..0.18),
                    -99.13 + rng.gen_range(-0.19..0.19),
                )
                .unwrap(),
            ),
            segment_ids: vec![rng.gen_range(1..=8)],
        })
        .collect();
    let index = AudienceIndex::new(members);
    let center = GeoPoint::parse(19.43, -99.13).unwrap();
    let found = index.within_radius(center, 2.0, &[1]).len();
    println!("a 2 km query returns {found} clients of segment 1");
    criterion.bench_function("audience_2km_query_1m_clients", |bench| {
        bench.iter(|| black_box(index.within_radius(center, 2.0, &[1]).len()))
    });
}

criterion_group!(
    benches,
    reservation_decisions,
    eligibility_scan,
    audience_radius_query
);
criterion_main!(benches);
