//! `PasswordGate`: the one bounded queue every password check goes through.
//!
//! An argon2 check costs ~19 MiB and tens of milliseconds of one core (OWASP's
//! parameters, kept on purpose). Run one per request on the blocking pool and
//! a flood of wrong passwords takes as many threads and as much memory as it
//! likes. So checks run here instead: on a fixed set of threads, one per core,
//! with a few more admitted to wait, and anything beyond refused at once
//! (503 `unavailable`) rather than queued. Token and cached-Basic requests
//! never come here.
//!
//! Fixed threads, not `spawn_blocking`: the allocator keeps a freed 19 MiB
//! block in the arena of the thread that used it, so hashes spread over a
//! changing crowd of blocking threads left hundreds of MiB resident after a
//! flood; a few long-lived threads reuse their own few blocks.
//!
//! The gate's threads run at a lower scheduling priority (nice 10): while a
//! flood keeps every core hashing, requests that need no hash (tokens, cached
//! Basic, everything else) still get the CPU first and answer in milliseconds.
//!
//! The admission permit moves into the job and is freed when the hash ends,
//! not when the request does: a caller that hangs up mid-hash cannot let
//! another check in beside the one still running.

use std::num::NonZeroUsize;
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// Checks admitted to wait, per check that may run.
pub const WAITING_PER_RUNNING: usize = 4;

/// Why a check did not run.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// As many checks as the gate admits are running or waiting.
    #[error("every password check slot is taken")]
    Full,
    /// The job panicked, or the gate's threads are gone.
    #[error("password check failed: {0}")]
    Failed(String),
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The bounded queue of password checks and the threads that run them.
pub struct PasswordGate {
    admitted: Arc<Semaphore>,
    jobs: mpsc::SyncSender<Job>,
}

/// A place in the queue: held from admission until the check's job ends.
pub struct Admission {
    admitted: OwnedSemaphorePermit,
    jobs: mpsc::SyncSender<Job>,
}

impl PasswordGate {
    /// `running` threads checking at once and `waiting` more checks admitted
    /// behind them. The threads end when the gate is dropped.
    pub fn new(running: usize, waiting: usize) -> std::io::Result<PasswordGate> {
        let running = running.max(1);
        let capacity = running + waiting;
        // Only admitted jobs are sent, so the channel never fills.
        let (jobs, queue) = mpsc::sync_channel::<Job>(capacity);
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..running {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("password-check-{index}"))
                .spawn(move || run_jobs(&queue))?;
        }
        Ok(PasswordGate {
            admitted: Arc::new(Semaphore::new(capacity)),
            jobs,
        })
    }

    /// One thread per core this process may use, [`WAITING_PER_RUNNING`]
    /// waiting per thread.
    pub fn for_this_machine() -> std::io::Result<PasswordGate> {
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
            jobs: self.jobs.clone(),
        })
    }
}

/// How much less the gate's threads are favoured than the rest (`nice`).
const HASH_THREAD_NICENESS: i32 = 10;

/// A gate thread: runs jobs until the gate is dropped.
fn run_jobs(queue: &Mutex<mpsc::Receiver<Job>>) {
    lower_this_threads_priority();
    loop {
        let next = queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .recv();
        match next {
            // A panicking job must not take the thread with it.
            Ok(job) => drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))),
            Err(mpsc::RecvError) => return,
        }
    }
}

/// Makes the calling thread yield the CPU to the service's other threads.
/// On Linux a thread's nice value is its own, and `who = 0` names the
/// calling thread. A failure only leaves the priority as it was.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority takes plain integers and touches no memory of ours.
        let status = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, HASH_THREAD_NICENESS) };
        if status != 0 {
            tracing::debug!("password threads keep their scheduling priority");
        }
    }
}

impl Admission {
    /// Runs `job` on a gate thread once one is free, and waits for its result.
    pub async fn run<T, F>(self, job: F) -> Result<T, GateError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (answer, result) = oneshot::channel();
        let admitted = self.admitted;
        let job: Job = Box::new(move || {
            let _admitted = admitted;
            // The caller may have gone; the result is then dropped.
            let _ = answer.send(job());
        });
        self.jobs
            .try_send(job)
            .map_err(|error| GateError::Failed(error.to_string()))?;
        result
            .await
            .map_err(|_| GateError::Failed("the check ended without an answer".into()))
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
        let gate = PasswordGate::new(1, 1).unwrap();
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
        let gate = PasswordGate::new(1, 0).unwrap();
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

    #[tokio::test]
    async fn a_job_that_panics_fails_its_check_and_the_thread_lives_on() {
        let gate = PasswordGate::new(1, 0).unwrap();
        let failed = gate.admit().unwrap().run(|| panic!("boom")).await;
        assert!(matches!(failed, Err::<(), _>(GateError::Failed(_))));
        // The panicked job's slot comes free as its thread unwinds, a moment
        // after the caller heard of the failure.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut admitted = gate.admit();
        while admitted.is_err() && Instant::now() < deadline {
            tokio::task::yield_now().await;
            admitted = gate.admit();
        }
        assert_eq!(admitted.unwrap().run(|| 7).await.unwrap(), 7);
    }

    #[test]
    fn a_full_gate_is_a_503_unavailable() {
        let error = ApiError::from(GateError::Full);
        assert_eq!(error.code(), "unavailable");
        assert!(matches!(error, ApiError::Overloaded { .. }));
    }
}
