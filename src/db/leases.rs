//! Ownership leases (cluster mode): which instance decides each running
//! promo and open campaign, renewed, taken over and given back
//! (sql/V10__ownership_leases.sql explains the fence).
//!
//! A lease lives [`LEASE_TTL`] past its last renewal; owners renew every
//! second, so an instance that stops renewing (killed, paused, cut off) loses
//! its leases to the others within a few seconds.

use std::sync::Arc;
use std::time::Duration;

use super::{DbError, DbPool};

/// How long a lease lasts past its last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(3);
/// `LEASE_TTL` as SQL.
const TTL_SQL: &str = "interval '3 seconds'";
/// How long a takeover waits for writes that still hold the lease row.
const TAKEOVER_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '1s'";

/// What a lease is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeaseKind {
    Promo,
    Campaign,
}

impl LeaseKind {
    fn as_str(self) -> &'static str {
        match self {
            LeaseKind::Promo => "promo",
            LeaseKind::Campaign => "campaign",
        }
    }

    fn parse(stored: &str) -> Result<LeaseKind, DbError> {
        match stored {
            "promo" => Ok(LeaseKind::Promo),
            "campaign" => Ok(LeaseKind::Campaign),
            other => Err(DbError::Corrupt(format!("lease kind {other:?}"))),
        }
    }
}

/// One leasable thing: a promo or a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseKey {
    pub kind: LeaseKind,
    pub object_id: i64,
}

impl LeaseKey {
    pub fn promo(promo_id: i64) -> LeaseKey {
        LeaseKey {
            kind: LeaseKind::Promo,
            object_id: promo_id,
        }
    }

    pub fn campaign(campaign_id: i64) -> LeaseKey {
        LeaseKey {
            kind: LeaseKind::Campaign,
            object_id: campaign_id,
        }
    }
}

/// What a fenced write carries: the lease it is made under. The database
/// refuses the write unless this is still the lease's owner and epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub key: LeaseKey,
    pub owner: Arc<str>,
    pub epoch: i64,
}

impl Fence {
    /// The statement that checks a fence (prepare it before the transaction's
    /// pipeline, so the check is sent in its place, right behind the token).
    pub const CHECK: &'static str = "SELECT assert_lease($1, $2, $3, $4)";

    /// Runs the prepared [`Fence::CHECK`] inside the transaction on `client`:
    /// a KEY SHARE lock on the lease row until the transaction ends, or a
    /// `Violation::StaleLease`.
    pub async fn check(
        &self,
        client: &deadpool_postgres::Client,
        statement: &tokio_postgres::Statement,
    ) -> Result<(), tokio_postgres::Error> {
        let kind = self.key.kind.as_str();
        let owner: &str = &self.owner;
        client
            .execute(
                statement,
                &[&kind, &self.key.object_id, &owner, &self.epoch],
            )
            .await?;
        Ok(())
    }
}

/// One lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLease {
    pub key: LeaseKey,
    pub owner: String,
    pub epoch: i64,
    /// False once `expires_at` has passed: anyone may take it.
    pub live: bool,
}

/// What one renewal learned.
#[derive(Debug, Default)]
pub struct Renewal {
    /// The leases `owner` still holds, with their epochs.
    pub held: Vec<(LeaseKey, i64)>,
    /// The instances alive now (this one included).
    pub instances: Vec<String>,
}

/// Renews the leases of `owner` among `keys` (those it knows it holds: a
/// former process under the same name may have left others, which expire
/// and are claimed anew with a higher epoch), marks it alive, and lists the
/// live instances: three statements in one round trip.
pub async fn renew(pool: &DbPool, owner: &str, keys: &[LeaseKey]) -> Result<Renewal, DbError> {
    let client = pool.get().await?;
    let alive = client
        .prepare_cached(
            "INSERT INTO cluster_instances (instance_id, seen_at) VALUES ($1, now()) \
             ON CONFLICT (instance_id) DO UPDATE SET seen_at = now()",
        )
        .await?;
    let extend = client
        .prepare_cached(&format!(
            "UPDATE ownership_leases l SET expires_at = now() + {TTL_SQL} \
             FROM unnest($2::text[], $3::bigint[]) AS k(kind, object_id) \
             WHERE l.owner = $1 AND l.kind = k.kind AND l.object_id = k.object_id \
             RETURNING l.kind, l.object_id, l.epoch"
        ))
        .await?;
    let kinds: Vec<&str> = keys.iter().map(|key| key.kind.as_str()).collect();
    let ids: Vec<i64> = keys.iter().map(|key| key.object_id).collect();
    let live = client
        .prepare_cached(&format!(
            "SELECT instance_id FROM cluster_instances WHERE seen_at > now() - {TTL_SQL} \
             ORDER BY instance_id"
        ))
        .await?;
    let (marked, extended, instances) = futures_util::future::join3(
        client.execute(&alive, &[&owner]),
        client.query(&extend, &[&owner, &kinds, &ids]),
        client.query(&live, &[]),
    )
    .await;
    marked?;
    let held = extended?
        .iter()
        .map(|row| {
            let kind = LeaseKind::parse(row.get(0))?;
            let key = LeaseKey {
                kind,
                object_id: row.get(1),
            };
            Ok((key, row.get(2)))
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    let instances = instances?.iter().map(|row| row.get(0)).collect();
    Ok(Renewal { held, instances })
}

/// The stored leases of `keys` (a key with no row has never been leased).
pub async fn find(pool: &DbPool, keys: &[LeaseKey]) -> Result<Vec<StoredLease>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT l.kind, l.object_id, l.owner, l.epoch, l.expires_at > now() \
             FROM ownership_leases l JOIN unnest($1::text[], $2::bigint[]) AS k(kind, object_id) \
             USING (kind, object_id)",
        )
        .await?;
    let kinds: Vec<&str> = keys.iter().map(|key| key.kind.as_str()).collect();
    let ids: Vec<i64> = keys.iter().map(|key| key.object_id).collect();
    let rows = client.query(&statement, &[&kinds, &ids]).await?;
    rows.iter()
        .map(|row| {
            Ok(StoredLease {
                key: LeaseKey {
                    kind: LeaseKind::parse(row.get(0))?,
                    object_id: row.get(1),
                },
                owner: row.get(2),
                epoch: row.get(3),
                live: row.get(4),
            })
        })
        .collect()
}

/// Takes the lease of `key` for `owner` when it is free (never leased, or
/// expired), raising its epoch; `None` when another instance holds it.
/// A takeover waits (briefly) for the former owner's writes still in flight.
pub async fn claim(pool: &DbPool, key: LeaseKey, owner: &str) -> Result<Option<i64>, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    transaction.batch_execute(TAKEOVER_LOCK_TIMEOUT).await?;
    let kind = key.kind.as_str();
    let create = transaction
        .prepare_cached(&format!(
            "INSERT INTO ownership_leases (kind, object_id, owner, epoch, expires_at) \
             VALUES ($1, $2, $3, 1, now() + {TTL_SQL}) ON CONFLICT DO NOTHING RETURNING epoch"
        ))
        .await?;
    if let Some(row) = transaction
        .query_opt(&create, &[&kind, &key.object_id, &owner])
        .await?
    {
        transaction.commit().await?;
        return Ok(Some(row.get(0)));
    }
    // Locked FOR UPDATE first: waits for every write that passed the fence.
    let lock = transaction
        .prepare_cached(
            "SELECT expires_at <= now() OR owner = $3 FROM ownership_leases \
             WHERE kind = $1 AND object_id = $2 FOR UPDATE",
        )
        .await?;
    let free = transaction
        .query_opt(&lock, &[&kind, &key.object_id, &owner])
        .await?
        .is_some_and(|row| row.get::<_, bool>(0));
    if !free {
        return Ok(None);
    }
    let take = transaction
        .prepare_cached(&format!(
            "UPDATE ownership_leases SET owner = $3, epoch = epoch + 1, \
             expires_at = now() + {TTL_SQL} WHERE kind = $1 AND object_id = $2 RETURNING epoch"
        ))
        .await?;
    let epoch = transaction
        .query_one(&take, &[&kind, &key.object_id, &owner])
        .await?
        .get(0);
    transaction.commit().await?;
    Ok(Some(epoch))
}

/// Gives back leases of `owner` at once (they expire now; the next owner
/// raises the epoch as for any takeover).
pub async fn release(pool: &DbPool, owner: &str, keys: &[LeaseKey]) -> Result<(), DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE ownership_leases l SET expires_at = now() \
             FROM unnest($2::text[], $3::bigint[]) AS k(kind, object_id) \
             WHERE l.owner = $1 AND l.kind = k.kind AND l.object_id = k.object_id",
        )
        .await?;
    let kinds: Vec<&str> = keys.iter().map(|key| key.kind.as_str()).collect();
    let ids: Vec<i64> = keys.iter().map(|key| key.object_id).collect();
    client.execute(&statement, &[&owner, &kinds, &ids]).await?;
    Ok(())
}

/// Gives back every lease of `owner` and marks it gone (a clean shutdown).
pub async fn release_all(pool: &DbPool, owner: &str) -> Result<(), DbError> {
    let client = pool.get().await?;
    let leases = client
        .prepare_cached("UPDATE ownership_leases SET expires_at = now() WHERE owner = $1")
        .await?;
    let gone = client
        .prepare_cached("DELETE FROM cluster_instances WHERE instance_id = $1")
        .await?;
    client.execute(&leases, &[&owner]).await?;
    client.execute(&gone, &[&owner]).await?;
    Ok(())
}
