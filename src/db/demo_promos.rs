//! SQL for the live part of the demo: flash promos on named demo products and
//! an open raffle campaign with entries.
//!
//! Each write first looks for what it would create (a promo of the product
//! that has not ended; a campaign of that name), so running the demo again
//! adds nothing while the earlier promos last, and adds fresh ones after they
//! end.

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{DbError, DbPool};
use crate::domain::promo::PromoTerms;

/// The id of the product `product` of store `store`, if it exists.
pub async fn find_product_id(
    pool: &DbPool,
    store: &str,
    product: &str,
) -> Result<Option<i64>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT p.id FROM products p JOIN stores s ON s.id = p.store_id \
             WHERE s.name = $1 AND p.name = $2 ORDER BY p.id LIMIT 1",
            &[&store, &product],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// Creates the promo unless its product already has one that has not
/// ended; true when it was created.
pub async fn ensure_promo(pool: &DbPool, terms: &PromoTerms) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let current: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM flash_promos WHERE product_id = $1 AND end_time > now())",
            &[&terms.product_id],
        )
        .await?
        .get(0);
    drop(client);
    if current {
        return Ok(false);
    }
    super::promos::insert_promo(pool, terms).await?;
    Ok(true)
}

/// One entry of the demo raffle.
#[derive(Debug, Clone)]
pub struct DemoEntry {
    pub email: String,
    pub name: String,
    pub verified: bool,
}

/// Creates the open campaign `name` with `entries` unless a campaign of that
/// name exists; true when it was created. The entries' verification codes
/// are random and thrown away (no email is queued for demo addresses), and
/// the campaign's live counts are set to match the rows.
pub async fn ensure_campaign(
    pool: &DbPool,
    name: &str,
    description: &str,
    entries: &[DemoEntry],
) -> Result<bool, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let exists: bool = transaction
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM campaigns WHERE name = $1)",
            &[&name],
        )
        .await?
        .get(0);
    if exists {
        return Ok(false);
    }
    // Open, so with its seed committed like any campaign opened by the API.
    let seed = super::campaign_lifecycle::fresh_seed()?;
    let (seed_bytes, commitment) = (seed.as_bytes().as_slice(), seed.commitment());
    let campaign_id: i64 = transaction
        .query_one(
            "INSERT INTO campaigns (name, description, admin_email, email_subject, email_template, \
                                    draw_seed, seed_commitment) \
             VALUES ($1, $2, 'marketing@example.com', 'Confirm your entry', \
             'Hi! Confirm your entry: {{verify_url}}', $3, $4) RETURNING id",
            &[&name, &description, &seed_bytes, &commitment.as_slice()],
        )
        .await?
        .get(0);
    for entry in entries {
        let data = serde_json::json!({ "name": entry.name });
        transaction
            .execute(
                "INSERT INTO subscribers (campaign_id, email, data, verified, verification_code_hash, verified_at) \
                 VALUES ($1, $2, $3, $4, $5, CASE WHEN $4 THEN now() END)",
                &[&campaign_id, &entry.email, &data, &entry.verified, &random_code_hash()],
            )
            .await?;
    }
    transaction
        .execute(
            "UPDATE campaigns c SET \
             subscriber_count = (SELECT count(*) FROM subscribers s WHERE s.campaign_id = c.id), \
             verified_count = (SELECT count(*) FROM subscribers s WHERE s.campaign_id = c.id AND s.verified) \
             WHERE c.id = $1",
            &[&campaign_id],
        )
        .await?;
    transaction.commit().await?;
    Ok(true)
}

fn random_code_hash() -> Vec<u8> {
    let mut code = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut code);
    Sha256::digest(code).to_vec()
}
