//! How long an engine call may take: the edge's request deadline and the
//! engine's own wait for a decision's outcome.
//!
//! Both edges use the same numbers: a REST request and a WebSocket `reserve`
//! frame each wait [`REQUEST_DEADLINE`] for their answer; the engine keeps
//! waiting up to [`OUTCOME_WAIT`], so work started for a request with an
//! `Idempotency-Key` can record its real outcome after the caller gave up.

use std::future::Future;
use std::time::Duration;

use super::EngineError;

/// How long a request (REST or WebSocket) waits for its outcome.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// The longest the engine waits for a decision's outcome. A write whose
/// commit went unheard is settled within about this (the server ends an
/// abandoned transaction after 15 s); past it the answer is `outcome_unknown`.
/// Longer than [`REQUEST_DEADLINE`].
pub const OUTCOME_WAIT: Duration = Duration::from_secs(30);

/// `work`, or `outcome_unknown` when it takes longer than `limit`.
pub async fn within<T>(
    limit: Duration,
    work: impl Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or(Err(EngineError::OutcomeUnknown))
}

/// `work`, or `outcome_unknown` when it takes longer than [`OUTCOME_WAIT`].
pub async fn within_outcome_wait<T>(
    work: impl Future<Output = Result<T, EngineError>>,
) -> Result<T, EngineError> {
    within(OUTCOME_WAIT, work).await
}
