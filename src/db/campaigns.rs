//! SQL for `campaigns` and `subscribers`: the admin's CRUD, entries, their
//! verification and the draw.
//!
//! Every write that changes who may win takes the campaign row's lock first
//! (`FOR UPDATE` or an `UPDATE` of it): a batch of entries, a verification
//! and the draw. The draw therefore sees a set of verified subscribers that
//! nothing can change under it, two draws of one campaign run one after the
//! other (the second finds the first's winner), and the live counts on the
//! campaign row stay exact.

use std::collections::HashSet;

use deadpool_postgres::GenericClient;
use futures_util::{pin_mut, TryStreamExt};
use rand::rngs::OsRng;
use serde_json::Value;
use tokio_postgres::Row;

use super::{outbox, DbError, DbPool, Listing, PageWindow};
use crate::domain::raffle::{
    admin_result_email, draw, verification_email, winner_email, Campaign, CampaignStatus,
    OutgoingEmail, Subscriber, Winner,
};

const CAMPAIGN_COLUMNS: &str = "c.id, c.name, c.description, c.status, c.admin_email, \
     c.email_subject, c.email_template, c.subscriber_count, c.verified_count, \
     c.created_at, c.finished_at, w.id AS winner_id, w.email AS winner_email, \
     w.data AS winner_data";
const CAMPAIGN_FROM: &str =
    "FROM campaigns c LEFT JOIN subscribers w ON w.id = c.winner_subscriber_id";

/// The admin-editable fields of a campaign; `None` keeps the stored value.
#[derive(Debug, Default, Clone)]
pub struct CampaignFields {
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_email: Option<String>,
    pub email_subject: Option<String>,
    pub email_template: Option<String>,
}

/// Campaigns in id order, one page of them.
#[tracing::instrument(skip_all)]
pub async fn list_campaigns(
    pool: &DbPool,
    window: PageWindow,
) -> Result<Listing<Campaign>, DbError> {
    let client = pool.get().await?;
    let count = client
        .prepare_cached("SELECT count(*) FROM campaigns")
        .await?;
    let total: i64 = client.query_one(&count, &[]).await?.get(0);
    let page = client
        .prepare_cached(&format!(
            "SELECT {CAMPAIGN_COLUMNS} {CAMPAIGN_FROM} ORDER BY c.id LIMIT $1 OFFSET $2"
        ))
        .await?;
    let rows = client
        .query(&page, &[&window.limit, &window.offset])
        .await?;
    let items = rows
        .iter()
        .map(campaign_from_row)
        .collect::<Result<_, _>>()?;
    Ok(Listing { total, items })
}

/// One campaign, if it exists.
#[tracing::instrument(skip(pool))]
pub async fn find_campaign(pool: &DbPool, campaign_id: i64) -> Result<Option<Campaign>, DbError> {
    let client = pool.get().await?;
    find_campaign_with(&client, campaign_id).await
}

async fn find_campaign_with(
    client: &impl GenericClient,
    campaign_id: i64,
) -> Result<Option<Campaign>, DbError> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {CAMPAIGN_COLUMNS} {CAMPAIGN_FROM} WHERE c.id = $1"
        ))
        .await?;
    let row = client.query_opt(&statement, &[&campaign_id]).await?;
    row.as_ref().map(campaign_from_row).transpose()
}

/// Creates an open campaign; every field must be given.
#[tracing::instrument(skip_all)]
pub async fn insert_campaign(pool: &DbPool, fields: &CampaignFields) -> Result<Campaign, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO campaigns (name, description, admin_email, email_subject, email_template) \
             VALUES ($1, coalesce($2, ''), $3, $4, $5) RETURNING id",
        )
        .await?;
    let row = client
        .query_one(
            &statement,
            &[
                &fields.name,
                &fields.description,
                &fields.admin_email,
                &fields.email_subject,
                &fields.email_template,
            ],
        )
        .await?;
    find_campaign_with(&client, row.get(0))
        .await?
        .ok_or_else(|| DbError::Corrupt("a created campaign vanished".into()))
}

/// Applies `fields` to one campaign; `None` when it does not exist.
#[tracing::instrument(skip(pool, fields))]
pub async fn update_campaign(
    pool: &DbPool,
    campaign_id: i64,
    fields: &CampaignFields,
) -> Result<Option<Campaign>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE campaigns SET name = coalesce($2, name), \
                    description = coalesce($3, description), \
                    admin_email = coalesce($4, admin_email), \
                    email_subject = coalesce($5, email_subject), \
                    email_template = coalesce($6, email_template) \
             WHERE id = $1",
        )
        .await?;
    let changed = client
        .execute(
            &statement,
            &[
                &campaign_id,
                &fields.name,
                &fields.description,
                &fields.admin_email,
                &fields.email_subject,
                &fields.email_template,
            ],
        )
        .await?;
    if changed == 0 {
        return Ok(None);
    }
    find_campaign_with(&client, campaign_id).await
}

/// Deletes a campaign with its subscribers; false when it did not exist.
#[tracing::instrument(skip(pool))]
pub async fn delete_campaign(pool: &DbPool, campaign_id: i64) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("DELETE FROM campaigns WHERE id = $1")
        .await?;
    Ok(client.execute(&statement, &[&campaign_id]).await? == 1)
}

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
    let items = rows
        .iter()
        .map(|row| Subscriber {
            id: row.get("id"),
            email: row.get("email"),
            data: row.get("data"),
            verified: row.get("verified"),
            created_at: row.get("created_at"),
            verified_at: row.get("verified_at"),
        })
        .collect();
    Ok(Some(Listing {
        total: count.get(0),
        items,
    }))
}

/// The ids of the campaigns that take entries.
pub async fn open_campaign_ids(pool: &DbPool) -> Result<Vec<i64>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT id FROM campaigns WHERE status = 'open' ORDER BY id")
        .await?;
    let rows = client.query(&statement, &[]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
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
    /// The campaign is finished or gone: nothing was written.
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
/// one transaction under the campaign row's lock.
#[tracing::instrument(skip(pool, entries), fields(entries = entries.len()))]
pub async fn add_entries(
    pool: &DbPool,
    campaign_id: i64,
    entries: &[NewEntry],
) -> Result<EntryBatch, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let lock = transaction
        .prepare_cached(
            "SELECT status, email_subject, email_template, subscriber_count, verified_count \
             FROM campaigns WHERE id = $1 FOR UPDATE",
        )
        .await?;
    let Some(campaign) = transaction.query_opt(&lock, &[&campaign_id]).await? else {
        return Ok(EntryBatch::Closed);
    };
    if campaign.get::<_, &str>("status") != "open" {
        return Ok(EntryBatch::Closed);
    }
    let (subject, template): (&str, &str) = (
        campaign.get("email_subject"),
        campaign.get("email_template"),
    );
    let insert = transaction
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
    let inserted = transaction
        .query(&insert, &[&campaign_id, &emails, &data, &hashes])
        .await?;
    let ids = match_ids(entries, &inserted);
    let mails: Vec<OutgoingEmail> = entries
        .iter()
        .zip(&ids)
        .filter(|(_, id)| id.is_some())
        .map(|(entry, _)| verification_email(&entry.email, subject, template, &entry.verify_url))
        .collect();
    outbox::enqueue(&transaction, &mails).await?;
    let count = transaction
        .prepare_cached(
            "UPDATE campaigns SET subscriber_count = subscriber_count + $2 WHERE id = $1 \
             RETURNING subscriber_count, verified_count",
        )
        .await?;
    let added = i64::try_from(mails.len()).unwrap_or(i64::MAX);
    let counts = transaction
        .query_one(&count, &[&campaign_id, &added])
        .await?;
    transaction.commit().await?;
    Ok(EntryBatch::Written {
        ids,
        subscriber_count: counts.get(0),
        verified_count: counts.get(1),
    })
}

/// Each entry's new id, by address (addresses are unique within a batch).
fn match_ids(entries: &[NewEntry], inserted: &[Row]) -> Vec<Option<i64>> {
    let by_email: std::collections::HashMap<&str, i64> = inserted
        .iter()
        .map(|row| (row.get::<_, &str>("email"), row.get::<_, i64>("id")))
        .collect();
    entries
        .iter()
        .map(|entry| by_email.get(entry.email.as_str()).copied())
        .collect()
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
pub async fn verify(pool: &DbPool, code_hash: &[u8]) -> Result<Option<Verification>, DbError> {
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
    let lock = transaction
        .prepare_cached(
            "SELECT name, status, subscriber_count, verified_count FROM campaigns \
             WHERE id = $1 FOR UPDATE",
        )
        .await?;
    let Some(campaign) = transaction.query_opt(&lock, &[&campaign_id]).await? else {
        return Ok(None);
    };
    let mark = transaction
        .prepare_cached(
            "UPDATE subscribers SET verified = true, verified_at = now() \
             WHERE id = $1 AND NOT verified",
        )
        .await?;
    let newly_verified = transaction.execute(&mark, &[&subscriber_id]).await? == 1;
    let (mut subscriber_count, mut verified_count): (i64, i64) = (
        campaign.get("subscriber_count"),
        campaign.get("verified_count"),
    );
    if newly_verified {
        let count = transaction
            .prepare_cached(
                "UPDATE campaigns SET verified_count = verified_count + 1 WHERE id = $1 \
                 RETURNING subscriber_count, verified_count",
            )
            .await?;
        let counts = transaction.query_one(&count, &[&campaign_id]).await?;
        (subscriber_count, verified_count) = (counts.get(0), counts.get(1));
    }
    transaction.commit().await?;
    Ok(Some(Verification {
        campaign_id,
        campaign_name: campaign.get("name"),
        campaign_status: stored_status(campaign.get("status"))?,
        newly_verified,
        subscriber_count,
        verified_count,
    }))
}

/// What a call to finish a campaign came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// No such campaign.
    NotFound,
    /// No verified subscriber: the campaign stays open.
    NoVerified,
    /// The campaign is finished with this winner; `drawn_now` is false when
    /// an earlier call drew it.
    Finished {
        campaign: Box<Campaign>,
        winner: Winner,
        drawn_now: bool,
    },
}

/// Draws the winner among the verified subscribers (with the operating
/// system's random source), closes the campaign and queues the winner's and
/// the admin's emails, in one transaction; a finished campaign answers its
/// recorded winner.
#[tracing::instrument(skip(pool))]
pub async fn finish(pool: &DbPool, campaign_id: i64) -> Result<Finish, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let lock = transaction
        .prepare_cached("SELECT status FROM campaigns WHERE id = $1 FOR UPDATE")
        .await?;
    let Some(locked) = transaction.query_opt(&lock, &[&campaign_id]).await? else {
        return Ok(Finish::NotFound);
    };
    let drawn_now = locked.get::<_, &str>("status") == "open";
    let mut verified_in_draw = 0;
    if drawn_now {
        let candidates = transaction
            .prepare_cached(
                "SELECT coalesce(array_agg(id), '{}') FROM subscribers \
                 WHERE campaign_id = $1 AND verified",
            )
            .await?;
        let ids: Vec<i64> = transaction
            .query_one(&candidates, &[&campaign_id])
            .await?
            .get(0);
        let Some(winner_id) = draw(&ids, &mut OsRng) else {
            return Ok(Finish::NoVerified);
        };
        record_winner(&transaction, campaign_id, winner_id).await?;
        verified_in_draw = i64::try_from(ids.len()).unwrap_or(i64::MAX);
    }
    let campaign = find_campaign_with(&transaction, campaign_id)
        .await?
        .ok_or_else(|| DbError::Corrupt(format!("campaign {campaign_id} vanished")))?;
    let winner = campaign.winner.clone().ok_or_else(|| {
        DbError::Corrupt(format!("finished campaign {campaign_id} has no winner"))
    })?;
    if drawn_now {
        let name = campaign.name.as_str();
        let mails = [
            winner_email(&winner.email, name),
            admin_result_email(&campaign.admin_email, name, &winner.email, verified_in_draw),
        ];
        outbox::enqueue(&transaction, &mails).await?;
    }
    transaction.commit().await?;
    Ok(Finish::Finished {
        campaign: Box::new(campaign),
        winner,
        drawn_now,
    })
}

async fn record_winner(
    client: &impl GenericClient,
    campaign_id: i64,
    winner_id: i64,
) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE campaigns SET status = 'finished', winner_subscriber_id = $2, \
                    finished_at = now() WHERE id = $1",
        )
        .await?;
    client
        .execute(&statement, &[&campaign_id, &winner_id])
        .await?;
    Ok(())
}

fn stored_status(text: &str) -> Result<CampaignStatus, DbError> {
    CampaignStatus::from_stored(text)
        .ok_or_else(|| DbError::Corrupt(format!("campaign status {text:?}")))
}

fn campaign_from_row(row: &Row) -> Result<Campaign, DbError> {
    let winner = row.get::<_, Option<i64>>("winner_id").map(|id| Winner {
        id,
        email: row.get("winner_email"),
        data: row.get("winner_data"),
    });
    Ok(Campaign {
        id: row.get("id"),
        name: row.get("name"),
        description: row.get("description"),
        status: stored_status(row.get("status"))?,
        admin_email: row.get("admin_email"),
        email_subject: row.get("email_subject"),
        email_template: row.get("email_template"),
        subscriber_count: row.get("subscriber_count"),
        verified_count: row.get("verified_count"),
        winner,
        created_at: row.get("created_at"),
        finished_at: row.get("finished_at"),
    })
}
