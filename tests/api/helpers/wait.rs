//! `wait_until`: polls a condition until it holds or a deadline passes, the
//! one way the tests wait (never a bare sleep).

use std::future::Future;
use std::time::Duration;

/// Polls `check` until it returns true or `deadline` passes.
pub async fn wait_until<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= give_up {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
