//! SQL for `email_outbox`: emails are queued inside the transaction of the
//! change that caused them, then claimed, sent and marked by the mailer.
//!
//! A claim is a lease: claiming pushes `next_attempt_at` past the lease, so a
//! mailer that dies mid-send leaves the row to be claimed again when the lease
//! runs out (at-least-once delivery). A sent row keeps its envelope but loses
//! its bodies, so a verification code lives in plain text only until its
//! email has left. A row given up on (`abandoned_at`) keeps them, so it can
//! be queued again by clearing `abandoned_at`.

use std::time::Duration;

use deadpool_postgres::GenericClient;

use super::{DbError, DbPool};
use crate::domain::raffle::OutgoingEmail;

/// A queued email, as claimed for one delivery attempt.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    pub body_text: String,
    pub body_html: Option<String>,
    /// Attempts so far, this one included.
    pub attempts: i32,
}

/// Queues `emails` of campaign `campaign_id` through `client` (normally the
/// transaction that caused them); a cancel of the campaign gives them up.
#[tracing::instrument(skip_all, fields(emails = emails.len()))]
pub async fn enqueue(
    client: &impl GenericClient,
    campaign_id: i64,
    emails: &[OutgoingEmail],
) -> Result<(), DbError> {
    if emails.is_empty() {
        return Ok(());
    }
    let statement = client
        .prepare_cached(
            "INSERT INTO email_outbox (recipient, subject, body_text, body_html, campaign_id) \
             SELECT *, $5::bigint FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])",
        )
        .await?;
    let column =
        |field: fn(&OutgoingEmail) -> &str| -> Vec<&str> { emails.iter().map(field).collect() };
    client
        .execute(
            &statement,
            &[
                &column(|email| &email.recipient),
                &column(|email| &email.subject),
                &column(|email| &email.body_text),
                &column(|email| &email.body_html),
                &campaign_id,
            ],
        )
        .await?;
    Ok(())
}

/// Claims up to `limit` due emails for `lease`, oldest due first. Rows another
/// mailer is claiming at the same moment are skipped, not waited for.
#[tracing::instrument(skip(pool))]
pub async fn claim_due(
    pool: &DbPool,
    limit: i64,
    lease: Duration,
) -> Result<Vec<OutboxMessage>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE email_outbox SET attempts = attempts + 1, \
                    next_attempt_at = now() + make_interval(secs => $2) \
             WHERE id IN (SELECT id FROM email_outbox \
                          WHERE sent_at IS NULL AND abandoned_at IS NULL AND next_attempt_at <= now() \
                          ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, recipient, subject, body_text, body_html, attempts",
        )
        .await?;
    let rows = client
        .query(&statement, &[&limit, &lease.as_secs_f64()])
        .await?;
    let mut messages: Vec<OutboxMessage> = rows
        .iter()
        .map(|row| OutboxMessage {
            id: row.get("id"),
            recipient: row.get("recipient"),
            subject: row.get("subject"),
            body_text: row.get("body_text"),
            body_html: row.get("body_html"),
            attempts: row.get("attempts"),
        })
        .collect();
    messages.sort_by_key(|message| message.id);
    Ok(messages)
}

/// Records delivered emails and drops their bodies.
#[tracing::instrument(skip(pool))]
pub async fn mark_sent(pool: &DbPool, ids: &[i64]) -> Result<(), DbError> {
    if ids.is_empty() {
        return Ok(());
    }
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE email_outbox SET sent_at = now(), last_error = NULL, \
                    body_text = '', body_html = NULL \
             WHERE id = ANY($1)",
        )
        .await?;
    client.execute(&statement, &[&ids]).await?;
    Ok(())
}

/// Records a failed attempt: retried after `retry_in`, or given up on when
/// `None` (the server refused the message for good). Only while the claim
/// is still this attempt's: a row claimed again since (its lease ran out)
/// belongs to the newer attempt, and a row given up on while the attempt ran
/// (its campaign was cancelled) stays given up on.
#[tracing::instrument(skip_all, fields(id = attempt.id))]
pub async fn mark_failed(
    pool: &DbPool,
    attempt: &OutboxMessage,
    error: &str,
    retry_in: Option<Duration>,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE email_outbox SET last_error = $2, \
                    next_attempt_at = now() + make_interval(secs => coalesce($3::float8, 0)), \
                    abandoned_at = CASE WHEN $3::float8 IS NULL THEN now() END \
             WHERE id = $1 AND attempts = $4 AND sent_at IS NULL AND abandoned_at IS NULL",
        )
        .await?;
    let retry_in = retry_in.map(|delay| delay.as_secs_f64());
    client
        .execute(
            &statement,
            &[&attempt.id, &error, &retry_in, &attempt.attempts],
        )
        .await?;
    Ok(())
}

/// Emails waiting to be delivered (the backlog).
#[tracing::instrument(skip_all)]
pub async fn backlog(pool: &DbPool) -> Result<i64, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT count(*) FROM email_outbox WHERE sent_at IS NULL AND abandoned_at IS NULL",
        )
        .await?;
    Ok(client.query_one(&statement, &[]).await?.get(0))
}

/// Emails due now and unsent (what the mailer has yet to deliver).
#[tracing::instrument(skip_all)]
pub async fn due_backlog(pool: &DbPool) -> Result<i64, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT count(*) FROM email_outbox \
             WHERE sent_at IS NULL AND abandoned_at IS NULL AND next_attempt_at <= now()",
        )
        .await?;
    Ok(client.query_one(&statement, &[]).await?.get(0))
}

/// An email the mailer gave up on, as the operator sees it (no bodies).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AbandonedEmail {
    pub id: i64,
    pub recipient: String,
    pub subject: String,
    /// Attempts made before giving up.
    pub attempts: i32,
    /// The mail server's last answer, or why the message could not be built.
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub abandoned_at: chrono::DateTime<chrono::Utc>,
}

/// The emails given up on, newest first, one page of them.
#[tracing::instrument(skip_all)]
pub async fn list_abandoned(
    pool: &DbPool,
    window: super::PageWindow,
) -> Result<super::Listing<AbandonedEmail>, DbError> {
    let client = pool.get().await?;
    let count = client
        .prepare_cached("SELECT count(*) FROM email_outbox WHERE abandoned_at IS NOT NULL")
        .await?;
    let total: i64 = client.query_one(&count, &[]).await?.get(0);
    let page = client
        .prepare_cached(
            "SELECT id, recipient, subject, attempts, last_error, created_at, abandoned_at \
             FROM email_outbox WHERE abandoned_at IS NOT NULL \
             ORDER BY abandoned_at DESC, id DESC LIMIT $1 OFFSET $2",
        )
        .await?;
    let rows = client
        .query(&page, &[&window.limit, &window.offset])
        .await?;
    let items = rows
        .iter()
        .map(|row| AbandonedEmail {
            id: row.get("id"),
            recipient: row.get("recipient"),
            subject: row.get("subject"),
            attempts: row.get("attempts"),
            last_error: row.get("last_error"),
            created_at: row.get("created_at"),
            abandoned_at: row.get("abandoned_at"),
        })
        .collect();
    Ok(super::Listing { total, items })
}

/// Queues abandoned emails again, due now with a fresh count of attempts:
/// those of `ids`, or every one when `ids` is `None`, but never one of a
/// cancelled campaign (its entrants get no email). Returns the ids queued.
#[tracing::instrument(skip(pool))]
pub async fn requeue_abandoned(pool: &DbPool, ids: Option<&[i64]>) -> Result<Vec<i64>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE email_outbox SET abandoned_at = NULL, attempts = 0, next_attempt_at = now() \
             WHERE abandoned_at IS NOT NULL AND sent_at IS NULL \
               AND ($1::bigint[] IS NULL OR id = ANY($1)) \
               AND NOT EXISTS (SELECT 1 FROM campaigns c \
                               WHERE c.id = email_outbox.campaign_id AND c.status = 'cancelled') \
             RETURNING id",
        )
        .await?;
    let rows = client.query(&statement, &[&ids]).await?;
    let mut queued: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    queued.sort_unstable();
    Ok(queued)
}

/// Gives up on every unsent email of campaign `campaign_id` (claimed or
/// not), in the transaction that cancels it.
pub async fn abandon_campaign(
    client: &impl GenericClient,
    campaign_id: i64,
) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE email_outbox SET abandoned_at = now(), last_error = 'campaign cancelled' \
             WHERE campaign_id = $1 AND sent_at IS NULL AND abandoned_at IS NULL",
        )
        .await?;
    client.execute(&statement, &[&campaign_id]).await?;
    Ok(())
}
