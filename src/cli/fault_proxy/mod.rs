//! `FaultProxy`: a TCP proxy between the service and PostgreSQL that a test
//! or the chaos load generator commands while traffic flows.
//!
//! Every accepted link is forwarded to the target in both directions by one
//! task ([`link`]); the [`FaultProxy`] handle (thread-safe, cheap calls) can:
//! - [`FaultProxy::cut`] / [`FaultProxy::restore`]: reset every link and
//!   refuse new ones, then accept again;
//! - [`FaultProxy::reset_all`]: reset every open link once;
//! - [`FaultProxy::delay`], [`FaultProxy::pause`] / [`FaultProxy::resume`]:
//!   slow or hold (never drop) every forwarded chunk, both directions;
//! - [`FaultProxy::on_next_commits`]: act on the next simple-query `COMMIT`s
//!   (what tokio-postgres sends to commit), seen through [`framing`];
//! - [`FaultProxy::chaos`]: random resets and delays from a seed, for storms.
//!
//! A reset is a real TCP reset (`SO_LINGER` 0) on both sides, as a dying
//! network or server would give, not a polite close. [`FaultProxy::stats`]
//! counts what happened so a test can wait until a fault has fired.

pub mod framing;
mod link;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::AbortHandle;

/// How often the chaos task rolls its dice for resets.
const CHAOS_TICK: Duration = Duration::from_millis(100);

/// What to do to one `COMMIT` (see [`FaultProxy::on_next_commits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitFault {
    /// Forward it, then swallow everything the server sends on that link,
    /// keeping the link open: the client never hears the answer.
    LoseReply,
    /// Hold it this long before forwarding it.
    Delay(Duration),
    /// Forward it, swallow the server's answer and wait until it is whole
    /// (its `ReadyForQuery`, at most 2 s), then reset the link: the server
    /// has decided, the client never hears how.
    ResetAfter,
    /// Reset the link instead of forwarding it: it never reaches the server.
    ResetBefore,
}

/// Random faults for a storm (see [`FaultProxy::chaos`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosConfig {
    /// Chance per second that each open link is reset.
    pub reset_per_second: f64,
    /// Chance that one forwarded chunk is delayed.
    pub delay_probability: f64,
    /// Shortest random delay.
    pub delay_min: Duration,
    /// Longest random delay.
    pub delay_max: Duration,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        ChaosConfig {
            reset_per_second: 0.05,
            delay_probability: 0.05,
            delay_min: Duration::from_millis(1),
            delay_max: Duration::from_millis(200),
        }
    }
}

/// What the proxy has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Links accepted and forwarded.
    pub links_accepted: u64,
    /// Links open now.
    pub links_open: u64,
    /// Links ended by a reset (cut, reset_all, chaos or a commit fault).
    pub links_reset: u64,
    /// Connection attempts refused while cut.
    pub links_refused: u64,
    /// Simple-query `COMMIT`s seen from clients.
    pub commits_seen: u64,
    /// Commit faults whose action is done.
    pub faults_applied: u64,
    /// Chunks given a random chaos delay.
    pub chunks_delayed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    links_accepted: AtomicU64,
    links_reset: AtomicU64,
    links_refused: AtomicU64,
    commits_seen: AtomicU64,
    faults_applied: AtomicU64,
    chunks_delayed: AtomicU64,
}

/// One link's controls, shared by its task and the handle.
#[derive(Debug, Default)]
struct LinkControl {
    reset: Notify,
    /// Set by [`CommitFault::LoseReply`]/`ResetAfter`: server bytes are dropped.
    blackhole: AtomicBool,
    /// `ReadyForQuery` messages the server has sent, and a wake-up for each read.
    answered: AtomicU64,
    answered_wake: Notify,
}

#[derive(Debug, Default)]
struct Links {
    open: bool,
    next_id: u64,
    live: HashMap<u64, Arc<LinkControl>>,
}

#[derive(Debug)]
struct ChaosState {
    config: ChaosConfig,
    rng: StdRng,
}

/// State shared by the handle, the accept loop and every link.
#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    links: Mutex<Links>,
    delay: Mutex<Duration>,
    paused: watch::Sender<bool>,
    commit_faults: Mutex<VecDeque<CommitFault>>,
    chaos: Mutex<Option<ChaosState>>,
    counters: Counters,
}

/// The handle: commands apply at once to every link, open or future.
/// Dropping it stops the proxy and resets its links.
#[derive(Debug)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    address: SocketAddr,
    accept_task: AbortHandle,
    chaos_task: Mutex<Option<AbortHandle>>,
}

/// Locks a mutex even if a holder panicked (the data stays consistent:
/// every critical section is a single update).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of PostgreSQL at 127.0.0.1:5432.
    pub async fn start() -> std::io::Result<FaultProxy> {
        FaultProxy::start_to(SocketAddr::from(([127, 0, 0, 1], 5432))).await
    }

    /// A proxy on a free loopback port in front of `target`.
    pub async fn start_to(target: SocketAddr) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            links: Mutex::new(Links {
                open: true,
                ..Links::default()
            }),
            delay: Mutex::new(Duration::ZERO),
            paused: watch::Sender::new(false),
            commit_faults: Mutex::new(VecDeque::new()),
            chaos: Mutex::new(None),
            counters: Counters::default(),
        });
        let accept_task = tokio::spawn(accept_loop(shared.clone(), listener)).abort_handle();
        Ok(FaultProxy {
            shared,
            address,
            accept_task,
            chaos_task: Mutex::new(None),
        })
    }

    /// The loopback port clients connect to.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The address clients connect to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Resets every open link and refuses (resets) new ones until [`restore`](Self::restore).
    pub fn cut(&self) {
        lock(&self.shared.links).open = false;
        self.reset_all();
    }

    /// Accepts links again after [`cut`](Self::cut).
    pub fn restore(&self) {
        lock(&self.shared.links).open = true;
    }

    /// Resets every link open now; new links are accepted as usual.
    pub fn reset_all(&self) {
        for control in lock(&self.shared.links).live.values() {
            control.reset.notify_one();
        }
    }

    /// Delays every forwarded chunk, both directions, by `delay` (zero: none).
    pub fn delay(&self, delay: Duration) {
        *lock(&self.shared.delay) = delay;
    }

    /// Holds every chunk not yet forwarded (nothing is dropped) until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.shared.paused.send_replace(true);
    }

    /// Forwards held and new chunks again.
    pub fn resume(&self) {
        self.shared.paused.send_replace(false);
    }

    /// Applies `fault` to each of the next `count` `COMMIT`s, on whatever link.
    pub fn on_next_commits(&self, count: usize, fault: CommitFault) {
        lock(&self.shared.commit_faults).extend(std::iter::repeat_n(fault, count));
    }

    /// Forgets commit faults that have not fired yet.
    pub fn clear_commit_faults(&self) {
        lock(&self.shared.commit_faults).clear();
    }

    /// Starts random resets and delays drawn from `seed` (replacing earlier chaos).
    pub fn chaos(&self, seed: u64, config: ChaosConfig) {
        *lock(&self.shared.chaos) = Some(ChaosState {
            config,
            rng: StdRng::seed_from_u64(seed),
        });
        let ticker = tokio::spawn(chaos_loop(Arc::downgrade(&self.shared))).abort_handle();
        if let Some(previous) = lock(&self.chaos_task).replace(ticker) {
            previous.abort();
        }
    }

    /// Stops the chaos started by [`chaos`](Self::chaos).
    pub fn calm(&self) {
        *lock(&self.shared.chaos) = None;
        if let Some(ticker) = lock(&self.chaos_task).take() {
            ticker.abort();
        }
    }

    /// Lifts every fault: restores, resumes, no delay, no chaos, no pending
    /// commit faults, and resets the links blackholed by
    /// [`CommitFault::LoseReply`] (their client would otherwise wait forever,
    /// as on a link that died silently, until its own timeout or keepalive).
    pub fn heal(&self) {
        self.calm();
        self.clear_commit_faults();
        self.delay(Duration::ZERO);
        self.resume();
        self.restore();
        for control in lock(&self.shared.links).live.values() {
            if control.blackhole.load(Ordering::SeqCst) {
                control.reset.notify_one();
            }
        }
    }

    /// What the proxy has done so far.
    pub fn stats(&self) -> FaultStats {
        let counters = &self.shared.counters;
        let read = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
        FaultStats {
            links_accepted: read(&counters.links_accepted),
            links_open: lock(&self.shared.links).live.len() as u64,
            links_reset: read(&counters.links_reset),
            links_refused: read(&counters.links_refused),
            commits_seen: read(&counters.commits_seen),
            faults_applied: read(&counters.faults_applied),
            chunks_delayed: read(&counters.chunks_delayed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.calm();
        self.cut();
    }
}

impl Shared {
    /// Registers a new link, unless the proxy is cut.
    fn admit(&self) -> Option<(u64, Arc<LinkControl>)> {
        let mut links = lock(&self.links);
        if !links.open {
            return None;
        }
        links.next_id += 1;
        let id = links.next_id;
        let control = Arc::new(LinkControl::default());
        links.live.insert(id, control.clone());
        Some((id, control))
    }

    fn forget(&self, id: u64) {
        lock(&self.links).live.remove(&id);
    }

    /// The next commit fault, if one is queued.
    fn take_commit_fault(&self) -> Option<CommitFault> {
        lock(&self.commit_faults).pop_front()
    }

    /// How long to hold the next chunk: the fixed delay plus any chaos delay.
    fn chunk_delay(&self) -> Duration {
        let fixed = *lock(&self.delay);
        let mut chaos = lock(&self.chaos);
        let Some(state) = chaos.as_mut() else {
            return fixed;
        };
        let config = &state.config;
        if config.delay_max.is_zero()
            || !state.rng.gen_bool(config.delay_probability.clamp(0.0, 1.0))
        {
            return fixed;
        }
        self.counters.chunks_delayed.fetch_add(1, Ordering::SeqCst);
        let low = config.delay_min.min(config.delay_max);
        fixed + state.rng.gen_range(low..=config.delay_max)
    }
}

/// Accepts links for as long as the handle lives.
async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let inbound = match listener.accept().await {
            Ok((inbound, _)) => inbound,
            Err(error) => {
                // Out of descriptors and the like: back off rather than spin.
                tracing::warn!(%error, "fault proxy accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        match shared.admit() {
            Some((id, control)) => {
                shared
                    .counters
                    .links_accepted
                    .fetch_add(1, Ordering::SeqCst);
                tokio::spawn(link::run(shared.clone(), id, control, inbound));
            }
            None => {
                shared.counters.links_refused.fetch_add(1, Ordering::SeqCst);
                link::reset(&inbound);
            }
        }
    }
}

/// Resets each open link with the configured chance, every [`CHAOS_TICK`].
async fn chaos_loop(shared: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(CHAOS_TICK);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let mut chaos = lock(&shared.chaos);
        let Some(state) = chaos.as_mut() else {
            return;
        };
        let chance = (state.config.reset_per_second * CHAOS_TICK.as_secs_f64()).clamp(0.0, 1.0);
        for control in lock(&shared.links).live.values() {
            if state.rng.gen_bool(chance) {
                control.reset.notify_one();
            }
        }
    }
}

/// Connects to the proxy's target (used by the links).
async fn connect(shared: &Shared) -> std::io::Result<TcpStream> {
    TcpStream::connect(shared.target).await
}
