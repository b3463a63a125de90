//! `Mailer`: delivers the durable `email_outbox`.
//!
//! Rows are queued by the transaction that caused them; the mailer claims due
//! rows in batches (a claim is a lease, see `db::outbox`), sends them — over
//! SMTP with lettre when `MAIL_TRANSPORT=smtp`, otherwise as `.eml` files
//! under `DATA_DIR/mail` — and records each outcome. A failed attempt is
//! retried with exponential backoff ([`retry_delay`]) for as long as it takes;
//! a message the server keeps refusing (an SMTP 5xx, 20 times over about 2.5
//! hours) or that cannot be built is given up on, logged, and kept in the
//! table (`abandoned_at`) so it can be queued again by hand. Delivery is
//! at-least-once: a crash between sending and recording sends again after the
//! lease, with the same `Message-ID`, so a receiver can tell the copies apart.
//!
//! It wakes on [`Wake`] (sent after a commit that queued mail) and on its own
//! every [`POLL_INTERVAL`], which is what picks up retries.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;
use futures_util::{stream, StreamExt};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{Config, MailTransport};
use crate::db::outbox::OutboxMessage;
use crate::db::{self, DbError, DbPool};
use crate::telemetry::prometheus;

/// How often the outbox is checked without being woken.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often the backlog gauge is measured (a count over the outbox).
const BACKLOG_INTERVAL: Duration = Duration::from_secs(5);
/// Emails claimed at once.
const BATCH: i64 = 64;
/// Emails in flight at once, each on its own pooled SMTP connection. lettre
/// 0.11.23 leaves Nagle on, so each message waits out the server's delayed
/// ACK (about 40 ms on Linux) before its final `.`: a connection sends about
/// 20 messages a second, and parallel connections are what add up.
const CONCURRENCY: usize = 16;
/// The limit on each step of one SMTP exchange.
const SMTP_TIMEOUT: Duration = Duration::from_secs(15);
/// The limit on sending one message, all steps together.
const SEND_TIMEOUT: Duration = Duration::from_secs(25);
/// How long a claim keeps other mailers off a row: longer than a whole batch
/// takes at worst (`BATCH / CONCURRENCY` rounds of [`SEND_TIMEOUT`]), so a
/// row is only claimed again when its mailer is gone.
const LEASE: Duration = Duration::from_secs(120);
/// Attempts a message refused with a 5xx gets (about 2.5 hours of backoff).
const REFUSALS_BEFORE_GIVING_UP: i32 = 20;
/// The first retry delay; each further failure doubles it up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(15 * 60);

/// The wait before the next attempt after `attempts` failed ones.
pub fn retry_delay(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    FIRST_RETRY_DELAY
        .saturating_mul(1 << doublings)
        .min(MAX_RETRY_DELAY)
}

/// Where messages go.
enum Outlet {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File {
        transport: AsyncFileTransport<Tokio1Executor>,
        directory: PathBuf,
    },
}

/// A failed attempt.
enum Failure {
    /// Worth retrying as it is (connection refused, timeout, 4xx).
    Transient(String),
    /// The server refused it (5xx): retried a few times, since a
    /// misconfigured relay answers 5xx too, then given up on.
    Refused(String),
    /// It cannot be built (a stored recipient that is not an address).
    Unsendable(String),
}

impl Failure {
    /// When to try again after `attempts` attempts; `None` to give up.
    fn retry_in(&self, attempts: i32) -> Option<Duration> {
        match self {
            Failure::Transient(_) => Some(retry_delay(attempts)),
            Failure::Refused(_) if attempts < REFUSALS_BEFORE_GIVING_UP => {
                Some(retry_delay(attempts))
            }
            Failure::Refused(_) | Failure::Unsendable(_) => None,
        }
    }

    /// The `kind` label of the failure.
    fn kind(&self) -> &'static str {
        match self {
            Failure::Transient(_) => "transient",
            Failure::Refused(_) => "refused",
            Failure::Unsendable(_) => "unsendable",
        }
    }

    fn reason(&self) -> &str {
        match self {
            Failure::Transient(reason) | Failure::Refused(reason) | Failure::Unsendable(reason) => {
                reason
            }
        }
    }
}

/// What sends one message: the outlet, the sender and the `Message-ID` domain.
struct Sender {
    /// Always `Some` until dropped.
    outlet: Option<Outlet>,
    from: Mailbox,
    domain: String,
}

impl Drop for Sender {
    fn drop(&mut self) {
        // lettre's SMTP pool closes its connections on a task it spawns when
        // dropped; once the runtime is gone (the process or a test tearing
        // down) that would panic, and there is nothing left to close politely.
        if tokio::runtime::Handle::try_current().is_err() {
            std::mem::forget(self.outlet.take());
        }
    }
}

impl Sender {
    fn from_config(config: &Config) -> anyhow::Result<Sender> {
        let from: Mailbox = config
            .mail_from
            .parse()
            .with_context(|| format!("MAIL_FROM={:?} is not an address", config.mail_from))?;
        let domain = from.email.domain().to_owned();
        let outlet = match config.mail_transport {
            MailTransport::Smtp => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
                    .with_context(|| format!("SMTP_URL={:?} is not usable", config.smtp_url))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .pool_config(PoolConfig::new().max_size(CONCURRENCY as u32))
                    .build();
                Outlet::Smtp(transport)
            }
            MailTransport::File => {
                let directory = config.data_dir.join("mail");
                std::fs::create_dir_all(&directory)
                    .with_context(|| format!("cannot create {}", directory.display()))?;
                Outlet::File {
                    transport: AsyncFileTransport::new(&directory),
                    directory,
                }
            }
        };
        Ok(Sender {
            outlet: Some(outlet),
            from,
            domain,
        })
    }

    fn compose(&self, queued: &OutboxMessage) -> Result<Message, Failure> {
        let to: Mailbox = queued.recipient.parse().map_err(|error| {
            Failure::Unsendable(format!("bad recipient {:?}: {error}", queued.recipient))
        })?;
        let builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(queued.subject.clone())
            .message_id(Some(format!("<outbox-{}@{}>", queued.id, self.domain)));
        let text = queued.body_text.clone();
        let built = match &queued.body_html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, html.clone())),
            None => builder.singlepart(SinglePart::plain(text)),
        };
        built.map_err(|error| Failure::Unsendable(format!("cannot build the message: {error}")))
    }

    async fn send(&self, queued: &OutboxMessage) -> Result<(), Failure> {
        let message = self.compose(queued)?;
        let Some(outlet) = &self.outlet else {
            return Err(Failure::Transient("the mailer is shutting down".into()));
        };
        match outlet {
            Outlet::Smtp(transport) => {
                let sending = tokio::time::timeout(SEND_TIMEOUT, transport.send(message));
                let sent = sending
                    .await
                    .map_err(|_| Failure::Transient("the SMTP exchange timed out".into()))?;
                sent.map_err(|error| match error.is_permanent() {
                    true => Failure::Refused(error.to_string()),
                    false => Failure::Transient(error.to_string()),
                })?;
                tracing::debug!(outbox_id = queued.id, "email sent over SMTP");
            }
            Outlet::File {
                transport,
                directory,
            } => {
                let file_id = transport
                    .send(message)
                    .await
                    .map_err(|error| Failure::Transient(error.to_string()))?;
                tracing::info!(
                    outbox_id = queued.id,
                    to = %queued.recipient,
                    subject = %queued.subject,
                    file = %directory.join(format!("{file_id}.eml")).display(),
                    "email written"
                );
            }
        }
        Ok(())
    }
}

/// The mailer.
pub struct Mailer {
    pool: DbPool,
    sender: Arc<Sender>,
    draining: bool,
    wake_again: bool,
    /// A backlog count is in flight.
    measuring: bool,
}

impl Mailer {
    /// A mailer configured by `config`; fails on a bad `MAIL_FROM` or `SMTP_URL`,
    /// or a data directory that cannot be created.
    pub fn new(pool: DbPool, config: &Config) -> anyhow::Result<Mailer> {
        Ok(Mailer {
            pool,
            sender: Arc::new(Sender::from_config(config)?),
            draining: false,
            wake_again: false,
            measuring: false,
        })
    }

    /// Sets the backlog gauge from the outbox: one count at a time, each
    /// given up after one interval, so a stalled database never piles
    /// counts up on the pool's connections.
    fn measure_backlog(&mut self, ctx: &mut Context<Self>) {
        if self.measuring {
            return;
        }
        self.measuring = true;
        let pool = self.pool.clone();
        let measure = async move {
            match tokio::time::timeout(BACKLOG_INTERVAL, db::outbox::due_backlog(&pool)).await {
                Ok(Ok(count)) => prometheus::outbox_backlog(count),
                Ok(Err(error)) => tracing::debug!(%error, "could not count the email backlog"),
                Err(_) => tracing::debug!("counting the email backlog timed out"),
            }
        };
        ctx.spawn(
            measure
                .into_actor(self)
                .map(|(), mailer, _| mailer.measuring = false),
        );
    }

    /// Delivers due emails, one batch at a time, until none is due.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            self.wake_again = true;
            return;
        }
        self.draining = true;
        self.wake_again = false;
        let delivery = deliver_batch(self.pool.clone(), self.sender.clone());
        ctx.spawn(delivery.into_actor(self).map(|claimed, mailer, ctx| {
            mailer.draining = false;
            match claimed {
                Ok(count) if count > 0 => mailer.drain(ctx),
                Ok(_) if mailer.wake_again => mailer.drain(ctx),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not read the email outbox"),
            }
        }));
    }
}

/// Claims one batch of due emails, sends them and records each outcome;
/// returns how many were claimed.
async fn deliver_batch(pool: DbPool, sender: Arc<Sender>) -> Result<usize, DbError> {
    let due = db::outbox::claim_due(&pool, BATCH, LEASE).await?;
    let outcomes: Vec<(&OutboxMessage, Result<(), Failure>)> = stream::iter(&due)
        .map(|queued| {
            let sender = sender.clone();
            async move { (queued, sender.send(queued).await) }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let (sent, failed): (Vec<_>, Vec<_>) = outcomes
        .into_iter()
        .partition(|(_, outcome)| outcome.is_ok());
    let sent: Vec<i64> = sent.iter().map(|(queued, _)| queued.id).collect();
    // Each outcome is recorded on its own: one that cannot be written must
    // not keep the others from being written.
    record_sent(&pool, &sent).await;
    for (queued, outcome) in failed {
        if let Err(failure) = outcome {
            if let Err(error) = record_failure(&pool, queued, &failure).await {
                tracing::warn!(outbox_id = queued.id, %error, "could not record a failed attempt");
            }
        }
    }
    Ok(due.len())
}

/// Records sent emails, again and again while half the claim's lease lasts:
/// the update is idempotent, so a write whose answer was lost (or that
/// failed) is simply made again. Only a send still unrecorded when the lease
/// ends goes out a second time (at least once, same `Message-ID`).
async fn record_sent(pool: &DbPool, ids: &[i64]) {
    const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
    const PAUSE: Duration = Duration::from_millis(500);
    let give_up = tokio::time::Instant::now() + LEASE / 2;
    loop {
        let attempt = tokio::time::timeout(ATTEMPT_TIMEOUT, db::outbox::mark_sent(pool, ids)).await;
        let error = match attempt {
            Ok(Ok(())) => return prometheus::outbox_sent(ids.len()),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        if tokio::time::Instant::now() + PAUSE >= give_up {
            tracing::warn!(%error, emails = ids.len(), "could not record sent emails");
            return;
        }
        tokio::time::sleep(PAUSE).await;
    }
}

async fn record_failure(
    pool: &DbPool,
    queued: &OutboxMessage,
    failure: &Failure,
) -> Result<(), DbError> {
    prometheus::outbox_failure(failure.kind());
    let retry_in = failure.retry_in(queued.attempts);
    let reason = failure.reason();
    match retry_in {
        Some(delay) => tracing::warn!(
            outbox_id = queued.id,
            attempts = queued.attempts,
            retry_in_s = delay.as_secs(),
            %reason,
            "email not delivered; will retry"
        ),
        None => tracing::error!(
            outbox_id = queued.id,
            attempts = queued.attempts,
            %reason,
            "email refused for good; giving up"
        ),
    }
    db::outbox::mark_failed(pool, queued, reason, retry_in).await
}

impl Actor for Mailer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.drain(ctx);
        ctx.run_interval(POLL_INTERVAL, |mailer, ctx| mailer.drain(ctx));
        ctx.run_interval(BACKLOG_INTERVAL, |mailer, ctx| mailer.measure_backlog(ctx));
    }
}

/// Mail was queued: deliver it now rather than at the next poll.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

impl Handler<Wake> for Mailer {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Self::Context) {
        self.drain(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_and_unsendable_mail_are_given_up_on() {
        let transient = Failure::Transient("refused connection".into());
        assert_eq!(transient.retry_in(500), Some(MAX_RETRY_DELAY));
        let refused = Failure::Refused("550 no such user".into());
        assert_eq!(refused.retry_in(1), Some(Duration::from_secs(1)));
        assert_eq!(refused.retry_in(REFUSALS_BEFORE_GIVING_UP), None);
        assert_eq!(Failure::Unsendable("bad address".into()).retry_in(1), None);
    }

    #[test]
    fn retries_back_off_exponentially_up_to_a_cap() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(5), Duration::from_secs(16));
        assert_eq!(retry_delay(40), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(0), Duration::from_secs(1));
    }
}
