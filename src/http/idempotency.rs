//! `Idempotency-Key` and the request deadline for the five POSTs that change
//! stock or raffle state (API.md, "Idempotency"): one function,
//! [`respond_once`], that every one of those handlers ends with.
//!
//! The work of a request runs as a task of its own (`actix_web::rt::spawn`),
//! so it goes to the end even when the client stops waiting or disconnects;
//! the request waits for it at most [`REQUEST_DEADLINE`] and otherwise answers
//! `outcome_unknown`. With a key, the first attempt claims the key in
//! PostgreSQL (a `pending` row) before it runs and stores its answer when it
//! finishes, so a retry replays that answer (status, `Retry-After`, body)
//! instead of running again. A 5xx answer (`unavailable`, `outcome_unknown`,
//! internal) is not stored: it deletes the claim, so a retry runs anew.
//! A retry that finds the first attempt still pending waits for it within
//! its own deadline; a claim pending longer than [`TAKEOVER_AGE`] belongs to a
//! process that died and is taken over.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use actix_web::body::{to_bytes, BoxBody};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::time::Instant;
use uuid::Uuid;

use super::error::ApiError;
use super::AppState;
use crate::db::idempotency::{self as keys, KeyRecord, KeySlot, StoredAnswer};
use crate::db::DbPool;

pub use crate::engine::deadlines::{OUTCOME_WAIT, REQUEST_DEADLINE};

/// How long a key's first answer is replayed.
pub const KEY_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// A claim pending this long belongs to a process that died mid-request
/// (every attempt ends well within a minute: the deadline, then the
/// database's statement timeout).
pub const TAKEOVER_AGE: Duration = Duration::from_secs(120);
/// How often keys older than [`KEY_LIFETIME`] are deleted.
pub const PRUNE_EVERY: Duration = Duration::from_secs(10 * 60);
/// The request header.
pub const KEY_HEADER: &str = "Idempotency-Key";
/// Sent on a replayed answer.
pub const REPLAYED_HEADER: &str = "Idempotent-Replayed";
const MAX_KEY_CHARS: usize = 200;
/// The first and the longest pause between looks at a pending key.
const FIRST_POLL: Duration = Duration::from_millis(10);
const LONGEST_POLL: Duration = Duration::from_millis(200);

/// Whose key it is: keys of different callers never meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKey {
    /// An authenticated account.
    User(i64),
    /// A public caller, by client address (`client_address`); `None` when unknown.
    Address(Option<IpAddr>),
}

impl fmt::Display for CallerKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallerKey::User(user_id) => write!(formatter, "user:{user_id}"),
            CallerKey::Address(Some(address)) => write!(formatter, "address:{address}"),
            CallerKey::Address(None) => write!(formatter, "address:unknown"),
        }
    }
}

/// Runs `work` once per (caller, key) and answers with its outcome: see the
/// module doc. `body` is the request body as received (for the fingerprint).
pub async fn respond_once<W>(
    state: &AppState,
    request: &HttpRequest,
    caller: CallerKey,
    body: &[u8],
    work: W,
) -> Result<HttpResponse, ApiError>
where
    W: Future<Output = Result<HttpResponse, ApiError>> + 'static,
{
    let Some(key) = idempotency_key(request)? else {
        return run_with_deadline(work, Instant::now() + REQUEST_DEADLINE).await;
    };
    // A key is scoped to its caller and its path (API.md): the same key on
    // another endpoint is another request.
    let slot = KeySlot {
        caller: format!("{caller} {} {}", request.method(), request.path()),
        key,
        fingerprint: fingerprint(request, body),
        claim: Uuid::new_v4(),
    };
    respond_with_key(&state.pool, slot, work).await
}

/// The request's `Idempotency-Key`, if it sent one (1..200 printable ASCII).
pub fn idempotency_key(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let mut values = request.headers().get_all(KEY_HEADER);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(key_error("send the header once"));
    }
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_CHARS {
        return Err(key_error("must be 1 to 200 characters"));
    }
    if !bytes.iter().all(|byte| (0x20..=0x7e).contains(byte)) {
        return Err(key_error("must be printable ASCII"));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

fn key_error(message: &str) -> ApiError {
    ApiError::field(KEY_HEADER, message)
}

/// SHA-256 of the method, the path and the body, each length-prefixed.
fn fingerprint(request: &HttpRequest, body: &[u8]) -> Vec<u8> {
    let mut hash = Sha256::new();
    for part in [
        request.method().as_str().as_bytes(),
        request.path().as_bytes(),
        body,
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().to_vec()
}

/// Claims the key and runs `work`, or replays, refuses or waits for the
/// attempt that has it, all within the request's deadline.
async fn respond_with_key<W>(
    pool: &DbPool,
    slot: KeySlot,
    work: W,
) -> Result<HttpResponse, ApiError>
where
    W: Future<Output = Result<HttpResponse, ApiError>> + 'static,
{
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut pause = FIRST_POLL;
    let mut try_claim = true;
    loop {
        if try_claim && keys::claim_key(pool, &slot, KEY_LIFETIME, TAKEOVER_AGE).await? {
            return run_claimed(pool.clone(), slot, work, deadline).await;
        }
        match keys::find_key(pool, &slot).await? {
            Some(record) if record.fingerprint != slot.fingerprint => return Err(key_reused()),
            Some(KeyRecord {
                answer: Some(answer),
                ..
            }) => return Ok(replay(&answer)),
            // Still running elsewhere; a claim this old is taken over.
            Some(record) => try_claim = record.age >= TAKEOVER_AGE,
            // The first attempt failed with a 5xx and let the key go.
            None => try_claim = true,
        }
        if Instant::now() + pause >= deadline {
            return Err(ApiError::OutcomeUnknown { retry_after: 1 });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_POLL);
    }
}

fn key_reused() -> ApiError {
    ApiError::UnprocessableEntity {
        code: "idempotency_key_reused",
        detail: "This Idempotency-Key was already used for a different request.".into(),
    }
}

/// Runs `work` to the end in a task of its own; waits for it until `deadline`.
async fn run_with_deadline<W>(work: W, deadline: Instant) -> Result<HttpResponse, ApiError>
where
    W: Future<Output = Result<HttpResponse, ApiError>> + 'static,
{
    let (answer, answered) = oneshot::channel();
    actix_web::rt::spawn(async move {
        let _ = answer.send(work.await);
    });
    await_answer(answered, deadline).await?
}

/// Runs `work` for the attempt that owns the key, settles the key with its
/// answer, and waits for that answer until `deadline`.
async fn run_claimed<W>(
    pool: DbPool,
    slot: KeySlot,
    work: W,
    deadline: Instant,
) -> Result<HttpResponse, ApiError>
where
    W: Future<Output = Result<HttpResponse, ApiError>> + 'static,
{
    let (answer, answered) = oneshot::channel();
    actix_web::rt::spawn(async move {
        let response = work.await.unwrap_or_else(|error| error.error_response());
        let (response, stored) = capture(response).await;
        settle(&pool, &slot, &stored).await;
        let _ = answer.send(response);
    });
    await_answer(answered, deadline).await
}

async fn await_answer<T>(answered: oneshot::Receiver<T>, deadline: Instant) -> Result<T, ApiError> {
    match tokio::time::timeout_at(deadline, answered).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(_)) => Err(ApiError::Internal(anyhow::anyhow!(
            "the request's task ended without an answer"
        ))),
        Err(_) => Err(ApiError::OutcomeUnknown { retry_after: 1 }),
    }
}

/// Reads the response's body; returns the response rebuilt around it and the
/// answer to store. A body that cannot be read is an internal error.
async fn capture(response: HttpResponse) -> (HttpResponse, StoredAnswer) {
    let (head, body) = response.into_parts();
    let bytes = match to_bytes(body).await {
        Ok(bytes) => bytes,
        Err(error) => {
            let failure = ApiError::Internal(anyhow::anyhow!("answer not readable: {error}"));
            return Box::pin(capture(failure.error_response())).await;
        }
    };
    let text = |name| {
        head.headers()
            .get(name)
            .and_then(|value: &HeaderValue| value.to_str().ok())
            .map(str::to_owned)
    };
    let stored = StoredAnswer {
        status: head.status().as_u16(),
        content_type: text(header::CONTENT_TYPE),
        retry_after: text(header::RETRY_AFTER).and_then(|seconds| seconds.parse().ok()),
        body: bytes.to_vec(),
    };
    (head.set_body(BoxBody::new(bytes)), stored)
}

/// Stores a final answer, or lets the key go after a 5xx. A failed write is
/// tried a few times: until it lands, retries wait (or, after the takeover
/// age, run anew).
async fn settle(pool: &DbPool, slot: &KeySlot, answer: &StoredAnswer) {
    let mut pause = Duration::from_millis(100);
    for _ in 0..4 {
        let written = match answer.status >= 500 {
            true => keys::delete_claim(pool, slot).await,
            false => keys::store_answer(pool, slot, answer).await,
        };
        match written {
            Ok(()) => return,
            Err(error) => tracing::warn!(%error, "idempotency key not settled; retrying"),
        }
        tokio::time::sleep(pause).await;
        pause *= 3;
    }
    tracing::error!(caller = %slot.caller, "idempotency key left pending");
}

/// The stored answer as a response, marked as a replay.
fn replay(answer: &StoredAnswer) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response.insert_header((REPLAYED_HEADER, "true"));
    if let Some(content_type) = &answer.content_type {
        response.insert_header((header::CONTENT_TYPE, content_type.as_str()));
    }
    if let Some(seconds) = answer.retry_after {
        response.insert_header((header::RETRY_AFTER, seconds.to_string()));
    }
    response.body(answer.body.clone())
}

/// Deletes keys older than [`KEY_LIFETIME`], and write fences that can no
/// longer decide anything (`db::fence::prune`), every [`PRUNE_EVERY`], for as
/// long as the current runtime runs.
pub fn start_pruning(pool: DbPool) {
    actix_web::rt::spawn(async move {
        let mut ticks = tokio::time::interval_at(Instant::now() + PRUNE_EVERY, PRUNE_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match keys::prune_keys(&pool, KEY_LIFETIME).await {
                Ok(pruned) => tracing::debug!(pruned, "expired idempotency keys deleted"),
                Err(error) => tracing::warn!(%error, "expired idempotency keys not deleted"),
            }
            if let Err(error) = crate::db::fence::prune(&pool).await {
                tracing::warn!(%error, "spent write fences not deleted");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn key_of(value: &[u8]) -> Result<Option<String>, ApiError> {
        let header = HeaderValue::from_bytes(value).unwrap();
        idempotency_key(
            &TestRequest::default()
                .insert_header((KEY_HEADER, header))
                .to_http_request(),
        )
    }

    #[test]
    fn a_key_is_one_to_two_hundred_printable_ascii_characters() {
        assert_eq!(
            key_of(b"order-17 retry").unwrap().as_deref(),
            Some("order-17 retry")
        );
        assert!(key_of(&[b'k'; 200]).unwrap().is_some());
        assert!(key_of(&[b'k'; 201]).is_err());
        assert!(key_of(b"caf\xc3\xa9").is_err());
        assert!(key_of(b"tab\there").is_err());
        assert!(idempotency_key(&TestRequest::default().to_http_request())
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_fingerprint_tells_method_path_and_body_apart() {
        let post = |path: &str| TestRequest::post().uri(path).to_http_request();
        let base = fingerprint(&post("/a"), b"{}");
        assert_eq!(base, fingerprint(&post("/a"), b"{}"));
        assert_ne!(base, fingerprint(&post("/a"), b"{ }"));
        assert_ne!(base, fingerprint(&post("/b"), b"{}"));
        assert_ne!(
            base,
            fingerprint(&TestRequest::put().uri("/a").to_http_request(), b"{}")
        );
        // Length prefixes: moving a byte from the path into the body changes it.
        assert_ne!(
            fingerprint(&post("/ab"), b"c"),
            fingerprint(&post("/a"), b"bc")
        );
    }
}
