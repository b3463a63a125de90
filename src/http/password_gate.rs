//! `PasswordGate`: the one bounded queue every password check goes through.
//!
//! An argon2 check costs ~19 MiB and tens of milliseconds of one core (OWASP's
//! parameters, kept on purpose). Run one per request on the blocking pool and
//! a flood of wrong passwords takes as many threads and as much memory as it
//! likes. So checks run here instead: about one per core at a time, a few more
//! admitted to wait, and anything beyond refused at once (503 `unavailable`)
//! rather than queued. Token and cached-Basic requests never come here.
//!
//! Both permits (admitted, running) move into the blocking job and are freed
//! when the hash ends, not when the request does: a caller that hangs up
//! mid-hash cannot let another hash start beside the one still running.

use std::num::NonZeroUsize;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// Checks admitted to wait, per check that may run.
pub const WAITING_PER_RUNNING: usize = 4;

/// Why a check did not run.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// As many checks as the gate admits are running or waiting.
    #[error("every password check slot is taken")]
    Full,
    /// The blocking job panicked or the runtime is shutting down.
    #[error("password check failed: {0}")]
    Failed(String),
}

/// The bounded queue of password checks.
pub struct PasswordGate {
    admitted: Arc<Semaphore>,
    running: Arc<Semaphore>,
}

/// A place in the queue: held from admission until the check's job ends.
pub struct Admission {
    admitted: OwnedSemaphorePermit,
    running: Arc<Semaphore>,
}

impl PasswordGate {
    /// At most `running` checks at once and `waiting` more admitted behind them.
    pub fn new(running: usize, waiting: usize) -> PasswordGate {
        let running = running.max(1);
        PasswordGate {
            admitted: Arc::new(Semaphore::new(running + waiting)),
            running: Arc::new(Semaphore::new(running)),
        }
    }

    /// One check per core this process may use, [`WAITING_PER_RUNNING`] waiting per core.
    pub fn for_this_machine() -> PasswordGate {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        PasswordGate::new(cores, cores * WAITING_PER_RUNNING)
    }

    /// Takes a place in the queue, or [`GateError::Full`] at once.
    pub fn admit(&self) -> Result<Admission, GateError> {
        let admitted = Arc::clone(&self.admitted)
            .try_acquire_owned()
            .map_err(|_| GateError::Full)?;
        Ok(Admission {
            admitted,
            running: Arc::clone(&self.running),
        })
    }
}

impl Admission {
    /// Waits for a running slot, then runs `job` on the blocking pool.
    pub async fn run<T, F>(self, job: F) -> Result<T, GateError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let running = self
            .running
            .acquire_owned()
            .await
            .map_err(|error| GateError::Failed(error.to_string()))?;
        let admitted = self.admitted;
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            job()
        })
        .await
        .map_err(|error| GateError::Failed(error.to_string()))
    }
}

impl From<GateError> for ApiError {
    fn from(error: GateError) -> Self {
        match error {
            GateError::Full => ApiError::Overloaded {
                detail: "Too many password checks are waiting; retry shortly, or use a token.",
            },
            GateError::Failed(cause) => ApiError::Internal(anyhow::anyhow!(cause)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// A job that blocks its thread until `release` is sent to, and tracks
    /// how many such jobs run at once.
    fn blocking_job(
        release: mpsc::Receiver<()>,
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    ) -> impl FnOnce() + Send + 'static {
        move || {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(running, Ordering::SeqCst);
            let _ = release.recv_timeout(Duration::from_secs(10));
            now.fetch_sub(1, Ordering::SeqCst);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_gate_refuses_at_once_and_runs_one_check_per_slot() {
        let gate = PasswordGate::new(1, 1);
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (release_first, first_gate) = mpsc::channel();
        let (release_second, second_gate) = mpsc::channel();
        let first = gate.admit().unwrap();
        let second = gate.admit().unwrap();
        let started = Instant::now();
        assert!(matches!(gate.admit(), Err(GateError::Full)));
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "refused at once"
        );
        let first = tokio::spawn(first.run(blocking_job(first_gate, now.clone(), most.clone())));
        let second = tokio::spawn(second.run(blocking_job(second_gate, now.clone(), most.clone())));
        release_first.send(()).unwrap();
        release_second.send(()).unwrap();
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(most.load(Ordering::SeqCst), 1, "one check at a time");
        assert!(gate.admit().is_ok(), "slots come back");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_caller_that_gives_up_mid_check_keeps_its_slot_until_the_job_ends() {
        let gate = PasswordGate::new(1, 0);
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (release, job_gate) = mpsc::channel();
        let check = gate
            .admit()
            .unwrap()
            .run(blocking_job(job_gate, now.clone(), most));
        let check = tokio::spawn(check);
        let deadline = Instant::now() + Duration::from_secs(5);
        while now.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert_eq!(now.load(Ordering::SeqCst), 1, "the job is running");
        check.abort();
        let _ = check.await;
        assert!(matches!(gate.admit(), Err(GateError::Full)));
        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut admitted = gate.admit();
        while admitted.is_err() && Instant::now() < deadline {
            tokio::task::yield_now().await;
            admitted = gate.admit();
        }
        assert!(admitted.is_ok(), "the slot is free once the job ended");
    }

    #[test]
    fn a_full_gate_is_a_503_unavailable() {
        let error = ApiError::from(GateError::Full);
        assert_eq!(error.code(), "unavailable");
        assert!(matches!(error, ApiError::Overloaded { .. }));
    }
}
