//! SQL for `campaigns`: the admin's CRUD and the draw.
//!
//! Every write that changes who may win takes the campaign row's lock first
//! (`FOR UPDATE`): a batch of entries and a verification (`db::subscribers`),
//! and the draw. The draw therefore sees a set of verified subscribers that
//! nothing can change under it, two draws of one campaign run one after the
//! other (the second finds the first's winner), and the live counts on the
//! campaign row stay exact.

use deadpool_postgres::GenericClient;
use futures_util::FutureExt;
use rand::rngs::OsRng;
use tokio_postgres::Row;

use super::fence::{run_fenced, FencedWork, WriteFailure};
use super::{outbox, DbError, DbPool, Listing, PageWindow};
use crate::domain::raffle::{
    admin_result_email, draw, winner_email, Campaign, CampaignStatus, Winner,
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

/// The ids of the campaigns that take entries.
#[tracing::instrument(skip_all)]
pub async fn open_campaign_ids(pool: &DbPool) -> Result<Vec<i64>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT id FROM campaigns WHERE status = 'open' ORDER BY id")
        .await?;
    let rows = client.query(&statement, &[]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
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
/// recorded winner. The transaction is fenced ([`super::fence`]) and must
/// finish within `timeout`.
#[tracing::instrument(skip(pool))]
pub async fn finish_campaign(
    pool: &DbPool,
    campaign_id: i64,
    timeout: std::time::Duration,
) -> Result<Finish, WriteFailure> {
    let work: FencedWork<'_, Finish> =
        Box::new(move |transaction| draw_in(transaction, campaign_id).boxed());
    run_fenced(pool, timeout, work).await
}

async fn draw_in(
    transaction: &deadpool_postgres::Client,
    campaign_id: i64,
) -> Result<Finish, DbError> {
    let lock = transaction
        .prepare_cached("SELECT status FROM campaigns WHERE id = $1 FOR UPDATE")
        .await?;
    let Some(locked) = transaction.query_opt(&lock, &[&campaign_id]).await? else {
        return Ok(Finish::NotFound);
    };
    let drawn_now = locked.get::<_, &str>("status") == "open";
    let mut verified_in_draw = 0;
    if drawn_now {
        let candidates = verified_ids(transaction, campaign_id).await?;
        let Some(winner_id) = draw(&candidates, &mut OsRng) else {
            return Ok(Finish::NoVerified);
        };
        record_winner(transaction, campaign_id, winner_id).await?;
        verified_in_draw = i64::try_from(candidates.len()).unwrap_or(i64::MAX);
    }
    let campaign = find_campaign_with(transaction, campaign_id)
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
        outbox::enqueue(transaction, &mails).await?;
    }
    Ok(Finish::Finished {
        campaign: Box::new(campaign),
        winner,
        drawn_now,
    })
}

/// The ids of a campaign's verified subscribers, read in one pass over the
/// partial index `(campaign_id, id) WHERE verified`.
async fn verified_ids(client: &impl GenericClient, campaign_id: i64) -> Result<Vec<i64>, DbError> {
    let statement = client
        .prepare_cached(
            "SELECT coalesce(array_agg(id), '{}') FROM subscribers \
             WHERE campaign_id = $1 AND verified",
        )
        .await?;
    Ok(client.query_one(&statement, &[&campaign_id]).await?.get(0))
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

pub(super) fn stored_status(text: &str) -> Result<CampaignStatus, DbError> {
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
