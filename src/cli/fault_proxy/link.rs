//! One proxied link: client bytes go through the [`FrontendFramer`] so a
//! `COMMIT` can be faulted; server bytes are forwarded (or swallowed once the
//! link is blackholed). Both directions honour the proxy's delay and pause.
//!
//! Both directions run in one task under one `select!`, with the link's reset
//! signal: whichever ends first ends the link. A reset sets `SO_LINGER` 0 on
//! both sockets before dropping them, so each peer sees a TCP reset.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::framing::{BackendFramer, FrontendFramer, Piece};
use super::{CommitFault, LinkControl, Shared};

/// How long `ResetAfter` waits for the server's answer before resetting anyway.
const ANSWER_WAIT: Duration = Duration::from_secs(2);
const READ_BUFFER: usize = 16 * 1024;

/// How a link ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// A peer closed or failed: close the other politely.
    Closed,
    /// A fault: reset both peers.
    Reset,
}

/// Forwards `inbound` to the target until a side closes or a reset comes.
pub(super) async fn run(
    shared: Arc<Shared>,
    id: u64,
    control: Arc<LinkControl>,
    mut inbound: TcpStream,
) {
    match super::connect(&shared).await {
        Ok(mut outbound) => {
            let ending = forward(&shared, &control, &mut inbound, &mut outbound).await;
            if ending == Ending::Reset {
                shared.counters.links_reset.fetch_add(1, Ordering::SeqCst);
                reset(&inbound);
                reset(&outbound);
            }
        }
        Err(_) => reset(&inbound),
    }
    shared.forget(id);
}

/// Makes dropping `stream` send a TCP reset instead of a FIN.
pub(super) fn reset(stream: &TcpStream) {
    // Best effort: a socket the peer already closed cannot be set, and that is fine.
    let _ = stream.set_zero_linger();
}

async fn forward(
    shared: &Shared,
    control: &LinkControl,
    inbound: &mut TcpStream,
    outbound: &mut TcpStream,
) -> Ending {
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (mut client_read, mut client_write) = inbound.split();
    let (mut server_read, mut server_write) = outbound.split();
    tokio::select! {
        ending = frontend(shared, control, &mut client_read, &mut server_write) => ending,
        ending = backend(shared, control, &mut server_read, &mut client_write) => ending,
        () = control.reset.notified() => Ending::Reset,
    }
}

/// Client → server: frames the stream and faults `COMMIT`s on command.
async fn frontend(
    shared: &Shared,
    control: &LinkControl,
    from: &mut ReadHalf<'_>,
    to: &mut WriteHalf<'_>,
) -> Ending {
    let mut framer = FrontendFramer::default();
    let mut buffer = vec![0; READ_BUFFER];
    let mut pieces = Vec::new();
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return Ending::Closed,
            Ok(read) => read,
        };
        framer.push(&buffer[..read], &mut pieces);
        for piece in pieces.drain(..) {
            let sent = match piece {
                Piece::Pass(bytes) => send(shared, to, &bytes).await,
                Piece::Commit { message, sequence } => {
                    commit(shared, control, to, &message, sequence).await
                }
            };
            if let Err(ending) = sent {
                return ending;
            }
        }
    }
}

/// Server → client: forwards, or swallows once the link is blackholed.
async fn backend(
    shared: &Shared,
    control: &LinkControl,
    from: &mut ReadHalf<'_>,
    to: &mut WriteHalf<'_>,
) -> Ending {
    let mut framer = BackendFramer::default();
    let mut buffer = vec![0; READ_BUFFER];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return Ending::Closed,
            Ok(read) => read,
        };
        framer.push(&buffer[..read]);
        control.answered.store(framer.ready(), Ordering::SeqCst);
        control.answered_wake.notify_waiters();
        if control.blackhole.load(Ordering::SeqCst) {
            continue;
        }
        if let Err(ending) = send(shared, to, &buffer[..read]).await {
            return ending;
        }
    }
}

/// Forwards one `COMMIT`, applying the next queued fault if there is one.
async fn commit(
    shared: &Shared,
    control: &LinkControl,
    to: &mut WriteHalf<'_>,
    message: &[u8],
    sequence: u64,
) -> Result<(), Ending> {
    shared.counters.commits_seen.fetch_add(1, Ordering::SeqCst);
    let Some(fault) = shared.take_commit_fault() else {
        return send(shared, to, message).await;
    };
    tracing::debug!(?fault, "fault proxy faults a COMMIT");
    let outcome = apply(shared, control, to, (message, sequence), fault).await;
    shared
        .counters
        .faults_applied
        .fetch_add(1, Ordering::SeqCst);
    outcome
}

async fn apply(
    shared: &Shared,
    control: &LinkControl,
    to: &mut WriteHalf<'_>,
    (message, sequence): (&[u8], u64),
    fault: CommitFault,
) -> Result<(), Ending> {
    match fault {
        CommitFault::LoseReply => {
            control.blackhole.store(true, Ordering::SeqCst);
            send(shared, to, message).await
        }
        CommitFault::Delay(hold) => {
            tokio::time::sleep(hold).await;
            send(shared, to, message).await
        }
        CommitFault::ResetAfter => {
            control.blackhole.store(true, Ordering::SeqCst);
            send(shared, to, message).await?;
            let _ = tokio::time::timeout(ANSWER_WAIT, answered(control, sequence)).await;
            Err(Ending::Reset)
        }
        CommitFault::ResetBefore => Err(Ending::Reset),
    }
}

/// Returns once the server has sent its `sequence`-th `ReadyForQuery`.
async fn answered(control: &LinkControl, sequence: u64) {
    loop {
        let wake = control.answered_wake.notified();
        if control.answered.load(Ordering::SeqCst) >= sequence {
            return;
        }
        wake.await;
    }
}

/// Writes one chunk after the proxy's delay and while it is not paused.
async fn send(shared: &Shared, to: &mut WriteHalf<'_>, bytes: &[u8]) -> Result<(), Ending> {
    let delay = shared.chunk_delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut paused = shared.paused.subscribe();
    // The sender lives as long as `shared`, so this only waits for a resume.
    let _ = paused.wait_for(|paused| !*paused).await;
    to.write_all(bytes).await.map_err(|_| Ending::Closed)
}
