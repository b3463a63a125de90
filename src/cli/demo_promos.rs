//! The live part of the demo data: a flash promo running now at TechShop
//! (which ana, 300 m away and a new user, is eligible for), one at Librería
//! Centro starting a few minutes later (so its notification can be watched
//! arriving), and an open raffle campaign with a few entries, some verified.
//!
//! Times are relative to the moment it runs. Re-running leaves promos that
//! have not ended alone and adds fresh ones for those that have, so
//! `serve --demo` on an old demo database has something running again.

use chrono::{Duration, Utc};

use crate::db::demo_promos::{self, DemoEntry};
use crate::db::DbPool;
use crate::domain::promo::{PromoTerms, RadiusKm};
use crate::domain::Money;

/// Name of the demo raffle campaign.
pub const DEMO_CAMPAIGN: &str = "Demo raffle: a weekend in Valle de Bravo";

struct DemoPromo {
    store: &'static str,
    product: &'static str,
    price: &'static str,
    quantity: u32,
    starts_in_minutes: i64,
}

const DEMO_PROMOS: &[DemoPromo] = &[
    DemoPromo {
        store: "TechShop",
        product: "Cargador rápido",
        price: "199.00",
        quantity: 5,
        starts_in_minutes: -1,
    },
    DemoPromo {
        store: "Librería Centro",
        product: "Novela del mes",
        price: "149.00",
        quantity: 3,
        starts_in_minutes: 5,
    },
];
const PROMO_HOURS: i64 = 3;
const PROMO_RADIUS_KM: f64 = 2.0;

/// Creates the demo promos (for every demo segment) and the raffle; returns
/// how many promos were new. Products missing from the database are skipped.
pub async fn ensure(pool: &DbPool, segment_ids: &[i64]) -> anyhow::Result<usize> {
    let mut created = 0;
    for promo in DEMO_PROMOS {
        let Some(product_id) =
            demo_promos::find_product_id(pool, promo.store, promo.product).await?
        else {
            continue;
        };
        let start_time = Utc::now() + Duration::minutes(promo.starts_in_minutes);
        let terms = PromoTerms {
            product_id,
            promo_price: Money::parse(promo.price)?,
            start_time,
            end_time: start_time + Duration::hours(PROMO_HOURS),
            segment_ids: segment_ids.to_vec(),
            max_distance_km: RadiusKm::parse(PROMO_RADIUS_KM)?,
            is_active: true,
            quantity: promo.quantity,
            daily_window: None,
        };
        if demo_promos::ensure_promo(pool, &terms).await? {
            created += 1;
        }
    }
    demo_promos::ensure_campaign(
        pool,
        DEMO_CAMPAIGN,
        "Enter with your email; one verified entry wins two nights for two.",
        &demo_entries(),
    )
    .await?;
    Ok(created)
}

fn demo_entries() -> Vec<DemoEntry> {
    ["ana", "luis", "sofia", "marta", "jorge"]
        .iter()
        .enumerate()
        .map(|(index, name)| DemoEntry {
            email: format!("{name}@example.com"),
            name: name.to_string(),
            verified: index < 3,
        })
        .collect()
}
