//! `promo-engine demo-data`: the original's `populate_demo_data`, scaled.
//!
//! Creates the segments "New users" and "Frequent buyers", named stores around
//! Mexico City (TechShop sells "Audífonos XYZ" at 999.00), generated stores
//! beyond those, three named shoppers (ana, luis, sofia) and `--clients N`
//! generated shoppers placed within 4 km of a random store. Every shopper's
//! password is [`DEMO_PASSWORD`], hashed once: one argon2 hash per row would
//! make a million rows take hours. Shoppers are copied in batches of
//! [`BATCH_SIZE`] with a progress bar; the random layout is seeded, so reruns
//! produce the same data and skip what exists. Then the live part
//! ([`super::demo_promos`]): promos running now and soon, and a raffle.

use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::db::demo::DemoClient;
use crate::db::{self, DbPool};
use crate::domain::entities::Store;
use crate::domain::secrets::hash_password;
use crate::domain::{GeoPoint, Latitude, Longitude, Money, Name, Password};

/// The password of every demo shopper.
pub const DEMO_PASSWORD: &str = "shopper-pass";
/// Shoppers per COPY batch.
const BATCH_SIZE: usize = 20_000;
/// How far from their store generated shoppers live.
const CLIENT_SPREAD_KM: f64 = 4.0;
/// How far from the city centre generated stores open.
const STORE_SPREAD_KM: f64 = 15.0;
const CITY_CENTRE: (f64, f64) = (19.4326, -99.1332);

/// How much demo data to load.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoSize {
    /// Generated shoppers (on top of ana, luis and sofia).
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Stores in all (the named ones first).
    #[arg(long, default_value_t = 5)]
    pub stores: usize,
}

impl Default for DemoSize {
    fn default() -> Self {
        DemoSize {
            clients: 200,
            stores: 5,
        }
    }
}

struct NamedStore {
    name: &'static str,
    latitude: f64,
    longitude: f64,
    products: &'static [(&'static str, &'static str)],
}

const NAMED_STORES: &[NamedStore] = &[
    NamedStore {
        name: "TechShop",
        latitude: 19.4326,
        longitude: -99.1332,
        products: &[("Audífonos XYZ", "999.00"), ("Cargador rápido", "349.00")],
    },
    NamedStore {
        name: "Librería Centro",
        latitude: 19.4340,
        longitude: -99.1410,
        products: &[("Novela del mes", "289.00")],
    },
    NamedStore {
        name: "Café Roma",
        latitude: 19.4194,
        longitude: -99.1617,
        products: &[("Café de especialidad 1 kg", "420.00")],
    },
];

/// Loads the demo data set.
pub async fn load(pool: &DbPool, size: &DemoSize) -> anyhow::Result<()> {
    let started = Instant::now();
    let segment_ids = ensure_segments(pool).await?;
    let stores = ensure_stores(pool, size.stores).await?;
    anyhow::ensure!(
        !stores.is_empty() || size.clients == 0,
        "--stores must be at least 1"
    );
    let password = Password::parse(DEMO_PASSWORD)?;
    let password_hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
    let named = named_clients(&stores, &segment_ids);
    let requested = size.clients + named.len();
    let added = load_clients(
        pool,
        named,
        size.clients,
        &stores,
        &segment_ids,
        &password_hash,
    )
    .await?;
    let promos = super::demo_promos::ensure(pool, &segment_ids).await?;
    println!(
        "demo data ready: {} stores, {requested} shoppers ({added} new), {promos} new promos \
         in {:.1?}; shopper password: {DEMO_PASSWORD}",
        stores.len(),
        started.elapsed()
    );
    Ok(())
}

/// The demo's promos and raffle alone (for `serve --demo` on a database that
/// already has the rest); does nothing, and says so, on a database that is
/// not a demo one (no demo segments, store or shopper): `--demo` never
/// writes demo rows into real data.
pub async fn refresh_live_part(pool: &DbPool) -> anyhow::Result<()> {
    match db::demo::demo_segment_ids(pool).await? {
        Some(segment_ids) => {
            super::demo_promos::ensure(pool, &segment_ids).await?;
        }
        None => tracing::warn!(
            "--demo: the database has data but is not a demo database; no demo data written"
        ),
    }
    Ok(())
}

async fn ensure_segments(pool: &DbPool) -> anyhow::Result<[i64; 2]> {
    let client = pool.get().await?;
    let mut ids = [0; 2];
    let segments = [
        ("New users", "Shoppers who joined recently."),
        ("Frequent buyers", "Shoppers who buy often."),
    ];
    for (slot, (name, description)) in ids.iter_mut().zip(segments) {
        let segment =
            db::segments::upsert_segment_with(&client, &Name::parse(name)?, description, true)
                .await?;
        *slot = segment.id;
    }
    Ok(ids)
}

async fn ensure_stores(pool: &DbPool, count: usize) -> anyhow::Result<Vec<Store>> {
    let mut rng = StdRng::seed_from_u64(7);
    let mut stores = Vec::with_capacity(count);
    for index in 0..count {
        let store = match NAMED_STORES.get(index) {
            Some(named) => {
                let products = named
                    .products
                    .iter()
                    .map(|(name, price)| Ok((Name::parse(name)?, Money::parse(price)?)))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let location = GeoPoint::parse(named.latitude, named.longitude)?;
                db::demo::ensure_store(pool, &Name::parse(named.name)?, location, &products).await?
            }
            None => {
                let location = scatter(&mut rng, CITY_CENTRE, STORE_SPREAD_KM);
                let name = Name::parse(&format!("Demo store {:04}", index + 1))?;
                let price = Money::parse(&format!("{}.00", rng.gen_range(100..5000)))?;
                let product = Name::parse(&format!("Producto {:04}", index + 1))?;
                db::demo::ensure_store(pool, &name, location, &[(product, price)]).await?
            }
        };
        stores.push(store);
    }
    Ok(stores)
}

fn named_clients(stores: &[Store], segments: &[i64; 2]) -> Vec<DemoClient> {
    let Some(home) = stores.first() else {
        return Vec::new();
    };
    // ana is 300 m from TechShop, luis 1.2 km, sofia 5 km (outside a 2 km radius).
    let people = [
        ("ana", 0.0027, vec![segments[0]]),
        ("luis", 0.0108, vec![segments[1]]),
        ("sofia", 0.045, vec![segments[0], segments[1]]),
    ];
    people
        .into_iter()
        .filter_map(|(username, north_degrees, segment_ids)| {
            let location = GeoPoint::parse(home.latitude + north_degrees, home.longitude).ok()?;
            Some(DemoClient {
                username: username.to_owned(),
                email: format!("{username}@example.com"),
                location,
                segment_ids,
            })
        })
        .collect()
}

async fn load_clients(
    pool: &DbPool,
    named: Vec<DemoClient>,
    generated: usize,
    stores: &[Store],
    segments: &[i64; 2],
    password_hash: &str,
) -> anyhow::Result<u64> {
    let progress = ProgressBar::new((named.len() + generated) as u64);
    progress.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} shoppers ({per_sec}, eta {eta})",
        )?
        .progress_chars("=> "),
    );
    let mut rng = StdRng::seed_from_u64(42);
    let generated_batches = (0..generated).step_by(BATCH_SIZE).map(move |start| {
        let end = (start + BATCH_SIZE).min(generated);
        (start..end)
            .map(|index| generated_client(&mut rng, index, stores, segments))
            .collect::<Vec<_>>()
    });
    let batches = std::iter::once(named).chain(generated_batches);
    let added = db::demo::load_clients(pool, password_hash, batches, |count| {
        progress.inc(count as u64)
    })
    .await
    .context("loading demo shoppers")?;
    progress.finish_and_clear();
    Ok(added)
}

fn generated_client(
    rng: &mut StdRng,
    index: usize,
    stores: &[Store],
    segments: &[i64; 2],
) -> DemoClient {
    let store = &stores[rng.gen_range(0..stores.len())];
    let location = scatter(rng, (store.latitude, store.longitude), CLIENT_SPREAD_KM);
    let mut segment_ids = Vec::with_capacity(2);
    if rng.gen_bool(0.5) {
        segment_ids.push(segments[0]);
    }
    if rng.gen_bool(0.3) {
        segment_ids.push(segments[1]);
    }
    let username = format!("client_{:07}", index + 1);
    DemoClient {
        email: format!("{username}@example.com"),
        username,
        location,
        segment_ids,
    }
}

/// A point uniformly spread over a disc of `radius_km` around `centre`,
/// clamped onto the globe.
fn scatter(rng: &mut StdRng, centre: (f64, f64), radius_km: f64) -> GeoPoint {
    const KM_PER_DEGREE: f64 = 111.32;
    let distance = radius_km * rng.gen::<f64>().sqrt();
    let bearing = rng.gen_range(0.0..std::f64::consts::TAU);
    let latitude = centre.0 + distance * bearing.cos() / KM_PER_DEGREE;
    let longitude =
        centre.1 + distance * bearing.sin() / (KM_PER_DEGREE * centre.0.to_radians().cos());
    let longitude = (longitude + 540.0).rem_euclid(360.0) - 180.0;
    match (
        Latitude::parse(latitude.clamp(-90.0, 90.0)),
        Longitude::parse(longitude),
    ) {
        (Ok(latitude), Ok(longitude)) => GeoPoint::new(latitude, longitude),
        _ => GeoPoint::new(Latitude::EQUATOR, Longitude::GREENWICH),
    }
}
