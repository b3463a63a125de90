//! The PromoActor measured through its mailbox, against a real PostgreSQL
//! database (a fresh `promo_bench_<uuid>`, dropped afterwards):
//! - refused decisions (every unit held): the in-memory decision rate;
//! - accepted decisions: each a hold made durable by group commit before the
//!   answer, i.e. the actor's durable reservation rate without HTTP in front.
//!   Each hold is a different shopper that exists in `users` (the holds'
//!   foreign key), created before the timed part; a hold refused by the
//!   database fails the bench instead of being timed as a (much slower)
//!   refusal.
//!
//! Run with `cargo bench --bench promo_actor` (PostgreSQL on 127.0.0.1:5432,
//! or `TEST_DATABASE_URL`).

use std::time::{Duration, Instant};

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::future::join_all;
use promo_engine::actors::promo::Reserve;
use promo_engine::actors::promo_registry::PromoChanged;
use promo_engine::config::Config;
use promo_engine::db;
use promo_engine::domain::eligibility::AudienceMember;
use promo_engine::domain::promo::{PromoTerms, RadiusKm};
use promo_engine::domain::{GeoPoint, Money, Name};
use promo_engine::startup::Application;

/// Concurrent requests in flight, as many HTTP workers would send.
const IN_FLIGHT: usize = 256;

fn server_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

struct Bench {
    app: Application,
    database: String,
}

async fn start(database: &str) -> Bench {
    let mut config = Config::from_lookup(|_| None).unwrap();
    let mut url: tokio_postgres::Config = server_url().parse().unwrap();
    url.dbname(database);
    config.database_url = format!(
        "postgres://postgres@127.0.0.1:{}/{database}",
        url.get_ports().first().copied().unwrap_or(5432)
    );
    config.bind = "127.0.0.1:0".parse().unwrap();
    config.http_workers = Some(1);
    config.admin_password = Some("bench-password".into());
    config.database_pool_size = 8;
    Bench {
        app: Application::build(config).await.unwrap(),
        database: database.to_owned(),
    }
}

/// A running promo with `quantity` units; returns its id.
async fn running_promo(bench: &Bench, quantity: u32) -> i64 {
    let pool = bench.app.pool();
    let origin = GeoPoint::parse(0.0, 0.0).unwrap();
    let store = db::stores::insert_store(pool, &Name::parse("Bench shop").unwrap(), origin)
        .await
        .unwrap();
    let product = db::products::insert_product(
        pool,
        store.id,
        &Name::parse("Thing").unwrap(),
        Money::parse("10").unwrap(),
    )
    .await
    .unwrap();
    let segment =
        db::segments::insert_segment(pool, &Name::parse(&format!("S{}", product.id)).unwrap(), "")
            .await
            .unwrap();
    let terms = PromoTerms {
        product_id: product.id,
        promo_price: Money::parse("5").unwrap(),
        start_time: Utc::now() - chrono::Duration::seconds(1),
        end_time: Utc::now() + chrono::Duration::hours(1),
        segment_ids: vec![segment.id],
        max_distance_km: RadiusKm::parse(2.0).unwrap(),
        is_active: true,
        quantity,
        daily_window: None,
    };
    let promo = db::promos::insert_promo(pool, &terms).await.unwrap();
    bench
        .app
        .engine()
        .registry()
        .send(PromoChanged {
            promo: promo.clone(),
        })
        .await
        .unwrap();
    promo.id
}

fn member(user_id: i64, segment_id: i64) -> AudienceMember {
    AudienceMember {
        user_id,
        location: Some(GeoPoint::parse(0.0, 0.0).unwrap()),
        segment_ids: vec![segment_id],
    }
}

/// `count` new shoppers (plain `users` rows); returns the first id, the
/// rest following it.
async fn insert_users(bench: &Bench, count: u64) -> i64 {
    let client = bench.app.pool().get().await.unwrap();
    let ids: Vec<i64> = client
        .query(
            "INSERT INTO users (username, password_hash) \
             SELECT 'bench' || gen_random_uuid(), '!' FROM generate_series(1, $1::bigint) \
             RETURNING id",
            &[&(count as i64)],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let first = *ids.iter().min().unwrap();
    assert_eq!(*ids.iter().max().unwrap() - first + 1, count as i64);
    first
}

/// Sends `count` reservations, `IN_FLIGHT` at a time, users starting at
/// `first_user`; with `durable`, every answer must be a hold.
async fn reserve_many(
    bench: &Bench,
    promo_id: i64,
    segment_id: i64,
    (first_user, durable): (i64, bool),
    count: u64,
) -> Duration {
    let actor = bench
        .app
        .engine()
        .live_promos()
        .actor_of(promo_id)
        .expect("the promo's actor runs");
    let started = Instant::now();
    let mut next = 0;
    while next < count {
        let wave = (count - next).min(IN_FLIGHT as u64);
        let sends = (next..next + wave).map(|offset| {
            let user_id = first_user + offset as i64;
            actor.send(Reserve {
                user_id,
                member: Some(member(user_id, segment_id)),
                origin: None,
            })
        });
        for answer in join_all(sends).await {
            let answer = answer.unwrap();
            assert!(!durable || answer.is_ok(), "{answer:?}");
            std::hint::black_box(answer.is_ok());
        }
        next += wave;
    }
    started.elapsed()
}

fn promo_actor(criterion: &mut Criterion) {
    let system = actix::System::new();
    let database = format!("promo_bench_{}", uuid::Uuid::new_v4().simple());
    let bench = system.block_on(start(&database));

    let mut group = criterion.benchmark_group("promo_actor");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));

    // Refusals: one unit, held; every further request is decided in memory.
    let (busy_promo, busy_segment) = system.block_on(async {
        let promo_id = running_promo(&bench, 1).await;
        let segment_id = db::promos::find_promo(bench.app.pool(), promo_id)
            .await
            .unwrap()
            .unwrap()
            .segments[0]
            .id;
        let holder = insert_users(&bench, 1).await;
        reserve_many(&bench, promo_id, segment_id, (holder, true), 1).await;
        (promo_id, segment_id)
    });
    group.bench_function("refused_decisions_all_units_held", |bencher| {
        bencher.iter_custom(|iterations| {
            system.block_on(reserve_many(
                &bench,
                busy_promo,
                busy_segment,
                (1_000_000, false),
                iterations,
            ))
        })
    });

    // Accepted: a large promo; each request a new user, so each is a new durable hold.
    let (big_promo, big_segment) = system.block_on(async {
        let promo_id = running_promo(&bench, 1_000_000).await;
        let segment_id = db::promos::find_promo(bench.app.pool(), promo_id)
            .await
            .unwrap()
            .unwrap()
            .segments[0]
            .id;
        (promo_id, segment_id)
    });
    group.bench_function("durable_holds_group_committed", |bencher| {
        bencher.iter_custom(|iterations| {
            system.block_on(async {
                let first_user = insert_users(&bench, iterations).await;
                reserve_many(
                    &bench,
                    big_promo,
                    big_segment,
                    (first_user, true),
                    iterations,
                )
                .await
            })
        })
    });
    group.finish();
    drop(bench.app);
    system.block_on(async {
        let (client, connection) = tokio_postgres::connect(&server_url(), tokio_postgres::NoTls)
            .await
            .unwrap();
        actix::spawn(connection);
        let _ = client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                bench.database
            ))
            .await;
    });
}

criterion_group!(benches, promo_actor);
criterion_main!(benches);
