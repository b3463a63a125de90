//! SQL for the demo data set: named stores and products, and shoppers loaded
//! in large batches with `COPY` into a staging table, then moved into `users`,
//! `client_profiles` and `client_segments` by one statement per batch.
//!
//! Every insert skips rows that already exist (by store name or username), so
//! loading the demo twice changes nothing.

use deadpool_postgres::Transaction;
use futures_util::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::{quote_identifier, DbError, DbPool};
use crate::domain::entities::Store;
use crate::domain::secrets::{issue_token, IssuedToken};
use crate::domain::{GeoPoint, Money, Name};

/// One shopper of a batch.
#[derive(Debug, Clone)]
pub struct DemoClient {
    pub username: String,
    pub email: String,
    pub location: GeoPoint,
    pub segment_ids: Vec<i64>,
}

/// True when there are no stores and no shoppers yet.
pub async fn is_empty(pool: &DbPool) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM stores) AND NOT EXISTS (SELECT 1 FROM client_profiles)",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// The ids of the demo segments ("New users", "Frequent buyers") when this
/// is a demo database (those segments, the store "TechShop" and the shopper
/// `ana` are all there); `None` otherwise.
pub async fn demo_segment_ids(pool: &DbPool) -> Result<Option<[i64; 2]>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT (SELECT id FROM user_segments WHERE name = 'New users'), \
                    (SELECT id FROM user_segments WHERE name = 'Frequent buyers'), \
                    EXISTS (SELECT 1 FROM stores WHERE name = 'TechShop') \
                    AND EXISTS (SELECT 1 FROM users WHERE username = 'ana')",
            &[],
        )
        .await?;
    let ids: (Option<i64>, Option<i64>, bool) = (row.get(0), row.get(1), row.get(2));
    Ok(match ids {
        (Some(new_users), Some(frequent), true) => Some([new_users, frequent]),
        _ => None,
    })
}

/// The store of this name, created (with `products`) when missing.
pub async fn ensure_store(
    pool: &DbPool,
    name: &Name,
    location: GeoPoint,
    products: &[(Name, Money)],
) -> Result<Store, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let existing = transaction
        .query_opt(
            "SELECT id, name, latitude, longitude FROM stores WHERE name = $1 ORDER BY id LIMIT 1",
            &[&name.as_str()],
        )
        .await?;
    if let Some(row) = existing {
        return Ok(Store {
            id: row.get(0),
            name: row.get(1),
            latitude: row.get(2),
            longitude: row.get(3),
        });
    }
    let store = super::stores::insert_store_with(&transaction, name, location).await?;
    for (product_name, price) in products {
        transaction
            .execute(
                "INSERT INTO products (store_id, name, regular_price) VALUES ($1, $2, $3)",
                &[&store.id, &product_name.as_str(), &price.amount()],
            )
            .await?;
    }
    transaction.commit().await?;
    Ok(store)
}

/// Loads shoppers batch by batch in one transaction and returns how many were new.
///
/// Following PostgreSQL's advice for bulk loads ("Populating a Database"), the
/// foreign keys of the client tables are dropped for the load and re-added
/// (which re-validates every row) before the commit: checking them row by row
/// costs more than the inserts themselves. Their definitions are read back
/// from the catalog, so this never drifts from the schema. The transaction is
/// atomic: a failure restores everything, constraints included. The tables stay
/// locked against other writers until the commit.
pub async fn load_clients(
    pool: &DbPool,
    password_hash: &str,
    batches: impl Iterator<Item = Vec<DemoClient>>,
    mut on_batch: impl FnMut(usize),
) -> Result<u64, DbError> {
    let mut connection = pool.get().await?;
    let transaction = connection.transaction().await?;
    transaction
        .batch_execute(
            "CREATE TEMP TABLE demo_clients (
                 username text, email text, latitude float8, longitude float8,
                 segment_ids bigint[]
             ) ON COMMIT DROP",
        )
        .await?;
    let foreign_keys = drop_client_foreign_keys(&transaction).await?;
    let mut added = 0;
    for batch in batches {
        added += insert_batch(&transaction, &batch, password_hash).await?;
        on_batch(batch.len());
    }
    for key in &foreign_keys {
        transaction
            .batch_execute(&format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {}",
                key.table,
                quote_identifier(&key.name),
                key.definition
            ))
            .await?;
    }
    transaction.commit().await?;
    Ok(added)
}

struct ForeignKey {
    table: String,
    name: String,
    definition: String,
}

async fn drop_client_foreign_keys(
    transaction: &Transaction<'_>,
) -> Result<Vec<ForeignKey>, DbError> {
    let rows = transaction
        .query(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)              FROM pg_constraint WHERE contype = 'f'              AND conrelid IN ('client_profiles'::regclass, 'client_segments'::regclass)",
            &[],
        )
        .await?;
    let keys: Vec<ForeignKey> = rows
        .iter()
        .map(|row| ForeignKey {
            table: row.get(0),
            name: row.get(1),
            definition: row.get(2),
        })
        .collect();
    for key in &keys {
        transaction
            .batch_execute(&format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                key.table,
                quote_identifier(&key.name)
            ))
            .await?;
    }
    Ok(keys)
}

/// Copies one batch into the staging table and moves it into the client tables.
async fn insert_batch(
    transaction: &Transaction<'_>,
    batch: &[DemoClient],
    password_hash: &str,
) -> Result<u64, DbError> {
    copy_batch(transaction, batch).await?;
    // Fresh statistics let the planner hash-join the staging rows.
    transaction.batch_execute("ANALYZE demo_clients").await?;
    let new_count: i64 = transaction
        .query_one(
            "WITH new_users AS (
                 INSERT INTO users (username, email, password_hash)
                 SELECT username, email, $1 FROM demo_clients
                 ON CONFLICT (username) DO NOTHING
                 RETURNING id, username
             ), new_profiles AS (
                 INSERT INTO client_profiles (user_id, latitude, longitude)
                 SELECT u.id, d.latitude, d.longitude
                 FROM new_users u JOIN demo_clients d USING (username)
                 RETURNING id, user_id
             ), new_memberships AS (
                 INSERT INTO client_segments (client_profile_id, segment_id)
                 SELECT p.id, segment_id
                 FROM new_profiles p
                 JOIN new_users u ON u.id = p.user_id
                 JOIN demo_clients d USING (username)
                 CROSS JOIN LATERAL unnest(d.segment_ids) AS segment_id
             )
             SELECT count(*) FROM new_users",
            &[&password_hash],
        )
        .await?
        .get(0);
    transaction.batch_execute("TRUNCATE demo_clients").await?;
    Ok(u64::try_from(new_count).unwrap_or(0))
}

async fn copy_batch(client: &Transaction<'_>, batch: &[DemoClient]) -> Result<(), DbError> {
    let sink = client
        .copy_in("COPY demo_clients (username, email, latitude, longitude, segment_ids) FROM STDIN BINARY")
        .await?;
    let writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::TEXT,
            Type::TEXT,
            Type::FLOAT8,
            Type::FLOAT8,
            Type::INT8_ARRAY,
        ],
    );
    pin_mut!(writer);
    for client in batch {
        writer
            .as_mut()
            .write(&[
                &client.username,
                &client.email,
                &client.location.latitude.degrees(),
                &client.location.longitude.degrees(),
                &client.segment_ids,
            ])
            .await?;
    }
    writer.finish().await?;
    Ok(())
}

/// Shoppers for load tests and integration tests: `count` accounts named
/// `<prefix>0000…` in `segment_ids`, without location or password, each with a
/// fresh API token. Returns `(user_id, username, token)` in name order.
/// (Hashing a password per shopper would dominate a test; tokens are what
/// these callers use.)
pub async fn insert_token_shoppers(
    pool: &DbPool,
    prefix: &str,
    count: usize,
    segment_ids: &[i64],
) -> Result<Vec<(i64, String, String)>, DbError> {
    let usernames: Vec<String> = (0..count)
        .map(|index| format!("{prefix}{index:05}"))
        .collect();
    let tokens: Vec<IssuedToken> = (0..count).map(|_| issue_token()).collect();
    let hashes: Vec<&[u8]> = tokens.iter().map(|token| token.hash.as_slice()).collect();
    let client = pool.get().await?;
    let rows = client
        .query(
            "WITH new_users AS (
                 INSERT INTO users (username, password_hash)
                 SELECT username, '!' FROM unnest($1::text[]) AS username RETURNING id, username
             ), profiles AS (
                 INSERT INTO client_profiles (user_id) SELECT id FROM new_users RETURNING id, user_id
             ), memberships AS (
                 INSERT INTO client_segments (client_profile_id, segment_id)
                 SELECT p.id, s FROM profiles p CROSS JOIN unnest($2::bigint[]) AS s
             ), tokens AS (
                 INSERT INTO auth_tokens (token_hash, user_id)
                 SELECT t.hash, u.id FROM unnest($1::text[], $3::bytea[]) AS t(username, hash)
                 JOIN new_users u USING (username)
             )
             SELECT id, username FROM new_users ORDER BY username",
            &[&usernames, &segment_ids, &hashes],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let username: String = row.get(1);
            let index = usernames
                .iter()
                .position(|name| *name == username)
                .unwrap_or(0);
            (row.get(0), username, tokens[index].text.clone())
        })
        .collect())
}
