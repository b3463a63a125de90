//! SQL for a campaign's lifecycle moves: opening a draft (by hand or on its
//! schedule, with a fresh seed), cancelling, and what the campaign registry
//! reads to schedule openings and start actors.
//!
//! Each move is one conditional `UPDATE`, which takes the campaign row's lock
//! like every batch of entries and the draw, so a move never lands in the
//! middle of either, and two instances racing to open one draft open it once.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use rand::rngs::OsRng;

use super::campaigns::find_campaign_with;
use super::{outbox, DbError, DbPool};
use crate::domain::draw::DrawSeed;
use crate::domain::raffle::{Campaign, CampaignStatus};

/// What an `open/` or `cancel/` came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// No such campaign (or it was deleted meanwhile).
    NotFound,
    /// The campaign's status does not allow the move.
    Refused(CampaignStatus),
    /// Done (or, for a cancel, done before): the campaign now.
    Done(Box<Campaign>),
}

/// Opens a draft with a fresh seed from the operating system. With
/// `scheduled`, only if its `opens_at` is still that time (the timer of an
/// opening that was moved since does nothing). Once open, `opens_at` is when
/// it opened.
#[tracing::instrument(skip(pool))]
pub async fn open_campaign(
    pool: &DbPool,
    campaign_id: i64,
    scheduled: Option<DateTime<Utc>>,
) -> Result<Transition, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE campaigns SET status = 'open', draw_seed = $2, seed_commitment = $3, \
                    opens_at = least(coalesce(opens_at, now()), now()) \
             WHERE id = $1 AND status = 'draft' \
               AND ($4::timestamptz IS NULL OR (opens_at = $4 AND opens_at <= now()))",
        )
        .await?;
    let seed = fresh_seed()?;
    let seed_bytes = seed.as_bytes().as_slice();
    let commitment = seed.commitment();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [
        &campaign_id,
        &seed_bytes,
        &commitment.as_slice(),
        &scheduled,
    ];
    let opened = client.execute(&statement, &params).await? == 1;
    transition(&client, campaign_id, opened, None).await
}

/// Cancels a draft or open campaign: no entries, no draw, and no email to
/// entrants (its unsent emails are given up on in the same transaction).
/// Cancelling a cancelled campaign again changes nothing.
#[tracing::instrument(skip(pool))]
pub async fn cancel_campaign(pool: &DbPool, campaign_id: i64) -> Result<Transition, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let statement = transaction
        .prepare_cached(
            "UPDATE campaigns SET status = 'cancelled' \
             WHERE id = $1 AND status IN ('draft', 'open')",
        )
        .await?;
    let cancelled = transaction.execute(&statement, &[&campaign_id]).await? == 1;
    if cancelled {
        // A statement of its own, after the row lock: it sees the emails of a
        // batch of entries that held the lock and committed meanwhile.
        outbox::abandon_campaign(&transaction, campaign_id).await?;
    }
    let moved = transition(
        &transaction,
        campaign_id,
        cancelled,
        Some(CampaignStatus::Cancelled),
    )
    .await?;
    transaction.commit().await?;
    Ok(moved)
}

/// The campaign after a move: done when `moved`, or when it already was
/// `already` (where the move would take it); refused otherwise. Status only
/// moves forward, so the status read after a refused move is what refused it.
async fn transition(
    client: &impl GenericClient,
    campaign_id: i64,
    moved: bool,
    already: Option<CampaignStatus>,
) -> Result<Transition, DbError> {
    let Some(campaign) = find_campaign_with(client, campaign_id).await? else {
        return Ok(Transition::NotFound);
    };
    if moved || Some(campaign.status) == already {
        return Ok(Transition::Done(Box::new(campaign)));
    }
    Ok(Transition::Refused(campaign.status))
}

/// The ids of the campaigns that take entries now.
#[tracing::instrument(skip_all)]
pub async fn open_campaign_ids(pool: &DbPool) -> Result<Vec<i64>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT id FROM campaigns WHERE status = 'open' \
             AND (closes_at IS NULL OR closes_at > now()) ORDER BY id",
        )
        .await?;
    let rows = client.query(&statement, &[]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// The drafts that open by themselves, with their opening times.
#[tracing::instrument(skip_all)]
pub async fn scheduled_openings(pool: &DbPool) -> Result<Vec<(i64, DateTime<Utc>)>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT id, opens_at FROM campaigns WHERE status = 'draft' AND opens_at IS NOT NULL",
        )
        .await?;
    let rows = client.query(&statement, &[]).await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Gives a seed to every open campaign that has none (opened before draws
/// were published), so its commitment shows from now on.
#[tracing::instrument(skip_all)]
pub async fn seed_unseeded(pool: &DbPool) -> Result<(), DbError> {
    let client = pool.get().await?;
    let find = client
        .prepare_cached("SELECT id FROM campaigns WHERE status = 'open' AND draw_seed IS NULL")
        .await?;
    let seed = client
        .prepare_cached(
            "UPDATE campaigns SET draw_seed = $2, seed_commitment = $3 \
             WHERE id = $1 AND draw_seed IS NULL AND status = 'open'",
        )
        .await?;
    for row in client.query(&find, &[]).await? {
        let campaign_id: i64 = row.get(0);
        let fresh = fresh_seed()?;
        let commitment = fresh.commitment();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [
            &campaign_id,
            &fresh.as_bytes().as_slice(),
            &commitment.as_slice(),
        ];
        client.execute(&seed, &params).await?;
    }
    Ok(())
}

/// A fresh seed from the operating system; its failure is the service's
/// (503 `unavailable`), nothing is written.
pub fn fresh_seed() -> Result<DrawSeed, DbError> {
    DrawSeed::generate(&mut OsRng)
        .map_err(|error| DbError::Unavailable(format!("no randomness for a seed: {error}")))
}
