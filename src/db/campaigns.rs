//! SQL for `campaigns`: the admin's CRUD and the campaign as the API shows
//! it. The lifecycle moves are in [`super::campaign_lifecycle`], the draw and
//! its published proof in [`super::draws`].
//!
//! Every write that changes who may win takes the campaign row's lock first
//! (`FOR UPDATE`, or the `UPDATE` itself): a batch of entries and a
//! verification (`db::subscribers`), an edit, an open or cancel, and the draw.
//! So a campaign's status, closing time and verified set never change under a
//! batch or a draw, and the live counts on the row stay exact.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{DbError, DbPool, Listing, PageWindow};
use crate::domain::draw::DrawSeed;
use crate::domain::raffle::{Campaign, CampaignStatus, Winner};

const CAMPAIGN_COLUMNS: &str = "c.id, c.name, c.description, c.status, c.admin_email, \
     c.email_subject, c.email_template, c.subscriber_count, c.verified_count, \
     c.opens_at, c.closes_at, c.winners_count, c.seed_commitment, c.created_at, \
     c.finished_at, (SELECT coalesce(jsonb_agg(jsonb_build_object('id', s.id, \
     'email', s.email, 'data', s.data) ORDER BY w.position), '[]') \
     FROM campaign_winners w JOIN subscribers s ON s.id = w.subscriber_id \
     WHERE w.campaign_id = c.id) AS winners";

/// The admin-editable fields of a campaign; `None` keeps the stored value
/// (for `opens_at` and `closes_at`, `Some(None)` clears it).
#[derive(Debug, Default, Clone)]
pub struct CampaignFields {
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_email: Option<String>,
    pub email_subject: Option<String>,
    pub email_template: Option<String>,
    pub winners_count: Option<i32>,
    pub opens_at: Option<Option<DateTime<Utc>>>,
    pub closes_at: Option<Option<DateTime<Utc>>>,
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
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns c ORDER BY c.id LIMIT $1 OFFSET $2"
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

pub(super) async fn find_campaign_with(
    client: &impl GenericClient,
    campaign_id: i64,
) -> Result<Option<Campaign>, DbError> {
    let statement = client
        .prepare_cached(&format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns c WHERE c.id = $1"
        ))
        .await?;
    let row = client.query_opt(&statement, &[&campaign_id]).await?;
    row.as_ref().map(campaign_from_row).transpose()
}

/// Creates a campaign; every text field must be given. With `open_now` it
/// opens at once, with a fresh seed from the operating system; otherwise it
/// is a draft (which opens by itself at `opens_at`, if given).
#[tracing::instrument(skip_all)]
pub async fn insert_campaign(
    pool: &DbPool,
    fields: &CampaignFields,
    open_now: bool,
) -> Result<Campaign, DbError> {
    let open_with = open_now
        .then(super::campaign_lifecycle::fresh_seed)
        .transpose()?;
    let open_with = open_with.as_ref();
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO campaigns (name, description, admin_email, email_subject, \
                    email_template, winners_count, opens_at, closes_at, status, draw_seed, \
                    seed_commitment) \
             VALUES ($1, coalesce($2, ''), $3, $4, $5, coalesce($6, 1), \
                     CASE WHEN $9::bytea IS NULL THEN $7 ELSE now() END, $8, \
                     CASE WHEN $9::bytea IS NULL THEN 'draft' ELSE 'open' END, $9, $10) \
             RETURNING id",
        )
        .await?;
    let seed = open_with.map(|seed| seed.as_bytes().as_slice());
    let commitment = open_with.map(DrawSeed::commitment);
    let commitment = commitment.as_ref().map(<[u8; 32]>::as_slice);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
        &fields.name,
        &fields.description,
        &fields.admin_email,
        &fields.email_subject,
        &fields.email_template,
        &fields.winners_count,
        &fields.opens_at.flatten(),
        &fields.closes_at.flatten(),
        &seed,
        &commitment,
    ];
    let row = client.query_one(&statement, &params).await?;
    find_campaign_with(&client, row.get(0))
        .await?
        .ok_or_else(|| DbError::Corrupt("a created campaign vanished".into()))
}

/// What an edit came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    NotFound,
    /// A lifecycle field (`winners_count`, `opens_at`, `closes_at`) may not
    /// change any more: the campaign is past that stage.
    Closed(CampaignStatus),
    /// `closes_at` would not be after `opens_at`.
    ClosesBeforeOpening,
    /// `closes_at` has passed: the window is closed for good (moving it would
    /// reopen a campaign whose entrants saw it close).
    WindowClosed,
    Updated(Box<Campaign>),
}

/// Applies `fields` to one campaign, under its lock: `opens_at` only on a
/// draft, `winners_count` and `closes_at` only before the draw or a cancel.
#[tracing::instrument(skip(pool, fields))]
pub async fn update_campaign(
    pool: &DbPool,
    campaign_id: i64,
    fields: &CampaignFields,
) -> Result<Edit, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let lock = transaction
        .prepare_cached(
            "SELECT status, opens_at, closes_at, \
                    coalesce(closes_at <= statement_timestamp(), false) AS window_closed \
             FROM campaigns WHERE id = $1 FOR UPDATE",
        )
        .await?;
    let Some(row) = transaction.query_opt(&lock, &[&campaign_id]).await? else {
        return Ok(Edit::NotFound);
    };
    let status = stored_status(row.get("status"))?;
    let lifecycle = fields.winners_count.is_some() || fields.closes_at.is_some();
    if (lifecycle && status.is_settled())
        || (fields.opens_at.is_some() && status != CampaignStatus::Draft)
    {
        return Ok(Edit::Closed(status));
    }
    if fields.closes_at.is_some() && row.get::<_, bool>("window_closed") {
        return Ok(Edit::WindowClosed);
    }
    let opens_at = fields.opens_at.unwrap_or(row.get("opens_at"));
    let closes_at = fields.closes_at.unwrap_or(row.get("closes_at"));
    if let (Some(opens), Some(closes)) = (opens_at, closes_at) {
        if closes <= opens && (fields.opens_at.is_some() || fields.closes_at.is_some()) {
            return Ok(Edit::ClosesBeforeOpening);
        }
    }
    write_fields(&transaction, campaign_id, fields, opens_at, closes_at).await?;
    let campaign = find_campaign_with(&transaction, campaign_id).await?;
    transaction.commit().await?;
    campaign
        .map(|campaign| Edit::Updated(Box::new(campaign)))
        .ok_or_else(|| DbError::Corrupt(format!("campaign {campaign_id} vanished")))
}

async fn write_fields(
    client: &impl GenericClient,
    campaign_id: i64,
    fields: &CampaignFields,
    opens_at: Option<DateTime<Utc>>,
    closes_at: Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE campaigns SET name = coalesce($2, name), \
                    description = coalesce($3, description), \
                    admin_email = coalesce($4, admin_email), \
                    email_subject = coalesce($5, email_subject), \
                    email_template = coalesce($6, email_template), \
                    winners_count = coalesce($7, winners_count), \
                    opens_at = $8, closes_at = $9 \
             WHERE id = $1",
        )
        .await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 9] = [
        &campaign_id,
        &fields.name,
        &fields.description,
        &fields.admin_email,
        &fields.email_subject,
        &fields.email_template,
        &fields.winners_count,
        &opens_at,
        &closes_at,
    ];
    client.execute(&statement, &params).await?;
    Ok(())
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

pub(super) fn stored_status(text: &str) -> Result<CampaignStatus, DbError> {
    CampaignStatus::from_stored(text)
        .ok_or_else(|| DbError::Corrupt(format!("campaign status {text:?}")))
}

fn campaign_from_row(row: &Row) -> Result<Campaign, DbError> {
    let winners: Vec<Winner> = serde_json::from_value(row.get("winners"))
        .map_err(|error| DbError::Corrupt(format!("campaign winners: {error}")))?;
    let commitment: Option<Vec<u8>> = row.get("seed_commitment");
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
        opens_at: row.get("opens_at"),
        closes_at: row.get("closes_at"),
        winners_count: row.get("winners_count"),
        winner: winners.first().cloned(),
        winners,
        seed_commitment: commitment.map(hex::encode),
        created_at: row.get("created_at"),
        finished_at: row.get("finished_at"),
    })
}
