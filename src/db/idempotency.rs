//! SQL for `idempotency_keys`: the durable record of answers to POSTs sent
//! with an `Idempotency-Key`.
//!
//! A row is `pending` while the first attempt runs and `done` once its answer
//! is stored. [`claim_key`] decides races in the database (INSERT .. ON
//! CONFLICT), so two first attempts, in one process or several, never both
//! run. Every write after the claim names the claim's id: an attempt that was
//! taken over cannot touch its successor's row.

use std::time::Duration;

use uuid::Uuid;

use super::{DbError, DbPool};

/// One attempt's hold on a (caller, key) pair.
#[derive(Debug, Clone)]
pub struct KeySlot {
    /// Who sent the key (`user:42`, `address:127.0.0.1`).
    pub caller: String,
    /// The key as sent.
    pub key: String,
    /// SHA-256 of the request's method, path and body.
    pub fingerprint: Vec<u8>,
    /// This attempt's id.
    pub claim: Uuid,
}

/// An answer as stored and replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Retry-After` header in seconds, if any.
    pub retry_after: Option<u64>,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// What the database holds for a (caller, key) pair.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    /// The fingerprint of the request that first used the key.
    pub fingerprint: Vec<u8>,
    /// How long ago the row was claimed.
    pub age: Duration,
    /// The answer, once the first attempt finished; `None` while pending.
    pub answer: Option<StoredAnswer>,
}

const CLAIM: &str = "INSERT INTO idempotency_keys \
    (caller, idempotency_key, fingerprint, claim, state) VALUES ($1, $2, $3, $4, 'pending') \
    ON CONFLICT (caller, idempotency_key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, \
    claim = EXCLUDED.claim, state = 'pending', status = NULL, content_type = NULL, \
    retry_after = NULL, body = NULL, created_at = now() \
    WHERE idempotency_keys.created_at < now() - $5::float8 * interval '1 second' \
    OR (idempotency_keys.state = 'pending' \
        AND idempotency_keys.fingerprint = EXCLUDED.fingerprint \
        AND idempotency_keys.created_at < now() - $6::float8 * interval '1 second') \
    RETURNING 1";

/// Claims the pair for a new attempt: inserts a pending row, or replaces one
/// older than `lifetime` (expired), or takes over one of the same request
/// left pending longer than `takeover` (its process died). True when this
/// attempt now owns the row and must run the request.
#[tracing::instrument(skip_all)]
pub async fn claim_key(
    pool: &DbPool,
    slot: &KeySlot,
    lifetime: Duration,
    takeover: Duration,
) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(CLAIM).await?;
    let claimed = client
        .query_opt(
            &statement,
            &[
                &slot.caller,
                &slot.key,
                &slot.fingerprint,
                &slot.claim,
                &lifetime.as_secs_f64(),
                &takeover.as_secs_f64(),
            ],
        )
        .await?;
    Ok(claimed.is_some())
}

/// The row of a (caller, key) pair, if there is one.
#[tracing::instrument(skip_all)]
pub async fn find_key(pool: &DbPool, slot: &KeySlot) -> Result<Option<KeyRecord>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT fingerprint, state = 'done' AS done, status, content_type, retry_after, body, \
             greatest(extract(epoch FROM now() - created_at), 0)::float8 AS age \
             FROM idempotency_keys WHERE caller = $1 AND idempotency_key = $2",
        )
        .await?;
    let Some(row) = client
        .query_opt(&statement, &[&slot.caller, &slot.key])
        .await?
    else {
        return Ok(None);
    };
    let answer = match row.get::<_, bool>("done") {
        false => None,
        true => Some(StoredAnswer {
            status: u16::try_from(row.get::<_, i16>("status"))
                .map_err(|_| DbError::Corrupt("negative idempotent status".into()))?,
            content_type: row.get("content_type"),
            retry_after: row
                .get::<_, Option<i64>>("retry_after")
                .and_then(|seconds| u64::try_from(seconds).ok()),
            body: row.get("body"),
        }),
    };
    Ok(Some(KeyRecord {
        fingerprint: row.get("fingerprint"),
        age: Duration::from_secs_f64(row.get::<_, f64>("age")),
        answer,
    }))
}

/// Records the answer of the attempt that owns the row.
#[tracing::instrument(skip_all, fields(status = answer.status))]
pub async fn store_answer(
    pool: &DbPool,
    slot: &KeySlot,
    answer: &StoredAnswer,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE idempotency_keys SET state = 'done', status = $4, content_type = $5, \
             retry_after = $6, body = $7 \
             WHERE caller = $1 AND idempotency_key = $2 AND claim = $3",
        )
        .await?;
    let status = i16::try_from(answer.status).unwrap_or(i16::MAX);
    let retry_after = answer
        .retry_after
        .map(|seconds| i64::try_from(seconds).unwrap_or(i64::MAX));
    client
        .execute(
            &statement,
            &[
                &slot.caller,
                &slot.key,
                &slot.claim,
                &status,
                &answer.content_type,
                &retry_after,
                &answer.body,
            ],
        )
        .await?;
    Ok(())
}

/// Drops the row of the attempt that owns it, so a retry runs the request anew.
#[tracing::instrument(skip_all)]
pub async fn delete_claim(pool: &DbPool, slot: &KeySlot) -> Result<(), DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "DELETE FROM idempotency_keys WHERE caller = $1 AND idempotency_key = $2 AND claim = $3",
        )
        .await?;
    client
        .execute(&statement, &[&slot.caller, &slot.key, &slot.claim])
        .await?;
    Ok(())
}

/// Deletes every row claimed longer than `lifetime` ago; returns how many.
#[tracing::instrument(skip(pool))]
pub async fn prune_keys(pool: &DbPool, lifetime: Duration) -> Result<u64, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "DELETE FROM idempotency_keys WHERE created_at < now() - $1::float8 * interval '1 second'",
        )
        .await?;
    Ok(client
        .execute(&statement, &[&lifetime.as_secs_f64()])
        .await?)
}
