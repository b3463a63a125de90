//! SQL for `subscribers`: entries (with their confirmation emails), their
//! verification, the admin's listing and the entered set a campaign actor
//! loads.
//!
//! A batch of entries and a verification both lock the campaign row first,
//! like the draw (`db::draws`), so the draw never sees the verified set
//! change under it and the live counts on the campaign row stay exact. A
//! batch is written only while the campaign takes entries (open, before
//! `closes_at`, by the database's clock); an address confirmed once the
//! campaign is no longer open counts as verified but `missed_draw`.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::GenericClient;
use futures_util::{pin_mut, FutureExt, TryStreamExt};
use serde_json::Value;
use tokio_postgres::Row;

use super::campaigns::stored_status;
use super::fence::{run_fenced_under, FencedWork, WriteFailure};
use super::leases::Fence;
use super::{outbox, DbError, DbPool, Listing, PageWindow};
use crate::domain::raffle::{verification_email, CampaignStatus, OutgoingEmail, Subscriber};

/// One page of a campaign's subscribers in id order; `None` when the
/// campaign does not exist. The total is the campaign's live count.
#[tracing::instrument(skip(pool))]
pub async fn list_subscribers(
    pool: &DbPool,
    campaign_id: i64,
    window: PageWindow,
) -> Result<Option<Listing<Subscriber>>, DbError> {
    let client = pool.get().await?;
    let count = client
        .prepare_cached("SELECT subscriber_count FROM campaigns WHERE id = $1")
        .await?;
    let Some(count) = client.query_opt(&count, &[&campaign_id]).await? else {
        return Ok(None);
    };
    let page = client
        .prepare_cached(
            "SELECT id, email, data, verified, created_at, verified_at FROM subscribers \
             WHERE campaign_id = $1 ORDER BY id LIMIT $2 OFFSET $3",
        )
        .await?;
    let rows = client
        .query(&page, &[&campaign_id, &window.limit, &window.offset])
        .await?;
    Ok(Some(Listing {
        total: count.get(0),
        items: rows.iter().map(subscriber_from_row).collect(),
    }))
}

fn subscriber_from_row(row: &Row) -> Subscriber {
    Subscriber {
        id: row.get("id"),
        email: row.get("email"),
        data: row.get("data"),
        verified: row.get("verified"),
        created_at: row.get("created_at"),
        verified_at: row.get("verified_at"),
    }
}

/// The normalised addresses that entered a campaign, streamed so a large
/// campaign never sits in memory twice.
#[tracing::instrument(skip(pool))]
pub async fn load_entered(pool: &DbPool, campaign_id: i64) -> Result<HashSet<Box<str>>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT lower(email) FROM subscribers WHERE campaign_id = $1")
        .await?;
    let rows = client.query_raw(&statement, [&campaign_id]).await?;
    pin_mut!(rows);
    let mut entered = HashSet::new();
    while let Some(row) = rows.try_next().await? {
        let email: &str = row.get(0);
        entered.insert(Box::from(email));
    }
    Ok(entered)
}

/// One entry of a batch: the normalised address, its data, its code's hash
/// and the link the verification email carries.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub email: String,
    pub data: Value,
    pub code_hash: Vec<u8>,
    pub verify_url: String,
}

/// What became of a batch of entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryBatch {
    /// The campaign does not exist (any more): nothing was written.
    Gone,
    /// The campaign takes no entries (not open, or past `closes_at`):
    /// nothing was written.
    Closed,
    /// Written. Per entry, in order: its subscriber id, or `None` when the
    /// address had already entered. Then the campaign's new counts.
    Written {
        ids: Vec<Option<i64>>,
        subscriber_count: i64,
        verified_count: i64,
    },
}

/// Adds `entries` to an open campaign with their verification emails, in
/// one fenced transaction ([`super::fence`]) under the campaign row's lock,
/// which must finish within `timeout`; under a `lease` (cluster mode) only
/// while the lease is current.
#[tracing::instrument(skip(pool, entries, lease), fields(entries = entries.len()))]
pub async fn insert_entries(
    pool: &DbPool,
    campaign_id: i64,
    entries: Vec<NewEntry>,
    timeout: std::time::Duration,
    lease: Option<&Fence>,
) -> Result<EntryBatch, WriteFailure> {
    let work: FencedWork<'_, EntryBatch> = Box::new(move |transaction| {
        async move { insert_in(transaction, campaign_id, &entries).await }.boxed()
    });
    run_fenced_under(pool, timeout, lease, work).await
}

async fn insert_in(
    transaction: &deadpool_postgres::Client,
    campaign_id: i64,
    entries: &[NewEntry],
) -> Result<EntryBatch, DbError> {
    let campaign = match lock_campaign(transaction, campaign_id).await? {
        None => return Ok(EntryBatch::Gone),
        Some(campaign) if !campaign.takes_entries => return Ok(EntryBatch::Closed),
        Some(campaign) => campaign,
    };
    let ids = insert_rows(transaction, campaign_id, entries).await?;
    let mails: Vec<OutgoingEmail> = entries
        .iter()
        .zip(&ids)
        .filter(|(_, id)| id.is_some())
        .map(|(entry, _)| {
            let (subject, template) = (&campaign.email_subject, &campaign.email_template);
            verification_email(&entry.email, subject, template, &entry.verify_url)
        })
        .collect();
    outbox::enqueue(transaction, campaign_id, &mails).await?;
    let added = i64::try_from(mails.len()).unwrap_or(i64::MAX);
    let (subscriber_count, verified_count) =
        add_to_counts(transaction, campaign_id, added, 0).await?;
    Ok(EntryBatch::Written {
        ids,
        subscriber_count,
        verified_count,
    })
}

/// Inserts the rows; per entry its new id, or `None` for an address (or, in
/// theory, a code) already taken.
async fn insert_rows(
    client: &impl GenericClient,
    campaign_id: i64,
    entries: &[NewEntry],
) -> Result<Vec<Option<i64>>, DbError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO subscribers (campaign_id, email, data, verification_code_hash) \
             SELECT $1, * FROM unnest($2::text[], $3::jsonb[], $4::bytea[]) \
             ON CONFLICT DO NOTHING RETURNING id, email",
        )
        .await?;
    let emails: Vec<&str> = entries.iter().map(|entry| entry.email.as_str()).collect();
    let data: Vec<&Value> = entries.iter().map(|entry| &entry.data).collect();
    let hashes: Vec<&[u8]> = entries
        .iter()
        .map(|entry| entry.code_hash.as_slice())
        .collect();
    let inserted = client
        .query(&statement, &[&campaign_id, &emails, &data, &hashes])
        .await?;
    // Addresses are unique within a batch (the actor's entered set sees to it).
    let by_email: HashMap<&str, i64> = inserted
        .iter()
        .map(|row| (row.get::<_, &str>("email"), row.get::<_, i64>("id")))
        .collect();
    Ok(entries
        .iter()
        .map(|entry| by_email.get(entry.email.as_str()).copied())
        .collect())
}

/// The subscriber ids of whichever of `code_hashes` were stored: how a batch
/// whose commit went unheard learns what it wrote.
#[tracing::instrument(skip_all, fields(codes = code_hashes.len()))]
pub async fn find_by_code_hashes(
    pool: &DbPool,
    code_hashes: &[&[u8]],
) -> Result<HashMap<Vec<u8>, i64>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT verification_code_hash, id FROM subscribers \
             WHERE verification_code_hash = ANY($1)",
        )
        .await?;
    let rows = client.query(&statement, &[&code_hashes]).await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// A campaign row, locked for the rest of the transaction.
struct LockedCampaign {
    name: String,
    status: CampaignStatus,
    email_subject: String,
    email_template: String,
    subscriber_count: i64,
    verified_count: i64,
    /// Open and before `closes_at`, now.
    takes_entries: bool,
}

async fn lock_campaign(
    client: &impl GenericClient,
    campaign_id: i64,
) -> Result<Option<LockedCampaign>, DbError> {
    let statement = client
        .prepare_cached(
            "SELECT name, status, email_subject, email_template, subscriber_count, \
                    verified_count, status = 'open' \
                    AND coalesce(closes_at > statement_timestamp(), true) \
                    AS takes_entries FROM campaigns WHERE id = $1 FOR UPDATE",
        )
        .await?;
    let Some(row) = client.query_opt(&statement, &[&campaign_id]).await? else {
        return Ok(None);
    };
    Ok(Some(LockedCampaign {
        name: row.get("name"),
        status: stored_status(row.get("status"))?,
        email_subject: row.get("email_subject"),
        email_template: row.get("email_template"),
        subscriber_count: row.get("subscriber_count"),
        verified_count: row.get("verified_count"),
        takes_entries: row.get("takes_entries"),
    }))
}

/// Adds to a (locked) campaign's live counts; returns the new counts.
async fn add_to_counts(
    client: &impl GenericClient,
    campaign_id: i64,
    subscribers: i64,
    verified: i64,
) -> Result<(i64, i64), DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE campaigns SET subscriber_count = subscriber_count + $2, \
                    verified_count = verified_count + $3 WHERE id = $1 \
             RETURNING subscriber_count, verified_count",
        )
        .await?;
    let row = client
        .query_one(&statement, &[&campaign_id, &subscribers, &verified])
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// A followed verification link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub campaign_id: i64,
    pub campaign_name: String,
    pub campaign_status: CampaignStatus,
    /// False when the code had been used before (nothing changed).
    pub newly_verified: bool,
    pub subscriber_count: i64,
    pub verified_count: i64,
}

/// Marks the subscriber holding the code whose hash is `code_hash` verified;
/// `None` for an unknown code. Repeating it changes nothing.
#[tracing::instrument(skip_all)]
pub async fn mark_verified(
    pool: &DbPool,
    code_hash: &[u8],
) -> Result<Option<Verification>, DbError> {
    let mut client = pool.get().await?;
    let find = client
        .prepare_cached("SELECT id, campaign_id FROM subscribers WHERE verification_code_hash = $1")
        .await?;
    let Some(subscriber) = client.query_opt(&find, &[&code_hash]).await? else {
        return Ok(None);
    };
    let (subscriber_id, campaign_id): (i64, i64) = (subscriber.get(0), subscriber.get(1));
    let transaction = client.transaction().await?;
    // The campaign's lock first, as every writer of its subscribers takes it.
    let Some(campaign) = lock_campaign(&transaction, campaign_id).await? else {
        return Ok(None);
    };
    let mark = transaction
        .prepare_cached(
            "UPDATE subscribers SET verified = true, verified_at = now(), missed_draw = $2 \
             WHERE id = $1 AND NOT verified",
        )
        .await?;
    // Too late for a draw that is done (or will never be): counted, not a candidate.
    let missed_draw = campaign.status != CampaignStatus::Open;
    let newly_verified = transaction
        .execute(&mark, &[&subscriber_id, &missed_draw])
        .await?
        == 1;
    let counts = match newly_verified {
        true => add_to_counts(&transaction, campaign_id, 0, 1).await?,
        false => (campaign.subscriber_count, campaign.verified_count),
    };
    transaction.commit().await?;
    Ok(Some(Verification {
        campaign_id,
        campaign_name: campaign.name,
        campaign_status: campaign.status,
        newly_verified,
        subscriber_count: counts.0,
        verified_count: counts.1,
    }))
}
