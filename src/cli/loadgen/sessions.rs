//! The idle WebSocket sessions of `loadgen fanout`, opened in this process and,
//! beyond [`SESSIONS_PER_PROCESS`] (or `--sessions-per-process`), in helper
//! processes of the same binary, and the instant each one's first
//! `promo.notification` arrives.
//!
//! Why helpers: every session is a socket, so an open file, and a process may
//! hold 20,000 of them here (`ulimit -Hn`); 50,000 sessions need three
//! processes. A helper is this binary run as the hidden `loadgen
//! fanout-sessions`: it reads its tokens from standard input (one a line, then
//! an empty line), opens their sessions, prints `opened <n>`, then prints
//! `notified <µs since the Unix epoch>` for each first notification, until its
//! standard input closes. Arrivals are wall-clock times so that the instants of
//! several processes on one machine compare; the parent kills its helpers when
//! it is done (and a helper whose parent died stops at the closed input).
//!
//! Session `i` (counted across all processes) connects to URL `i mod n` and
//! binds its source address in 127.0.0.0/8, 20,000 per address, so the
//! ephemeral ports of one address never run out.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// Sessions one process holds by default: under the 20,000 open files a
/// process may have here, leaving room for its HTTP connections.
pub(super) const SESSIONS_PER_PROCESS: usize = 18_000;

/// Sessions bound to one source address.
const SESSIONS_PER_SOURCE_ADDRESS: usize = 20_000;

/// Where first notifications are reported, as wall-clock instants.
type Arrivals = mpsc::UnboundedSender<SystemTime>;

/// The command line of a helper process.
#[derive(Debug, clap::Args)]
pub struct HelperArgs {
    /// The services' base URLs, in the parent's order.
    #[arg(long = "url", value_name = "URL", required = true)]
    urls: Vec<String>,
    /// The index, across all processes, of this helper's first session.
    #[arg(long)]
    first_index: usize,
}

/// Every session of a run, wherever it is held.
pub(super) struct OpenSessions {
    /// One wall-clock instant per session's first notification.
    pub(super) arrivals: mpsc::UnboundedReceiver<SystemTime>,
    /// Sessions open, across all processes.
    pub(super) opened: usize,
    /// The helper processes, killed when this is dropped.
    _helpers: Vec<Helper>,
}

/// Opens one session per token, the first `per_process` here and the rest
/// in helpers started with `database_url`.
pub(super) async fn open_sessions(
    urls: &[String],
    tokens: &[String],
    per_process: usize,
    database_url: &str,
) -> anyhow::Result<OpenSessions> {
    let addresses = socket_addresses(urls)?;
    let (tell, arrivals) = mpsc::unbounded_channel();
    let mut chunks = tokens.chunks(per_process.max(1));
    let own = chunks.next().unwrap_or_default();
    let mut helpers = Vec::new();
    for (number, chunk) in chunks.enumerate() {
        let first_index = (number + 1) * per_process;
        helpers.push(Helper::start(urls, first_index, chunk, database_url, &tell).await?);
    }
    if !helpers.is_empty() {
        println!(
            "  {} helper processes open the sessions past {per_process}",
            helpers.len()
        );
    }
    let mut opened = open_here(&addresses, 0, own, &tell, true).await?;
    for helper in &mut helpers {
        opened += helper.opened().await?;
    }
    Ok(OpenSessions {
        arrivals,
        opened,
        _helpers: helpers,
    })
}

/// Runs as a helper process: see the file's doc for the protocol.
pub(super) async fn serve_as_helper(args: HelperArgs) -> anyhow::Result<()> {
    let addresses = socket_addresses(&args.urls)?;
    let tokens = tokio::task::spawn_blocking(read_tokens).await??;
    let (tell, mut arrivals) = mpsc::unbounded_channel();
    let opened = open_here(&addresses, args.first_index, &tokens, &tell, false).await?;
    println!("opened {opened}");
    let mut input_closed = tokio::task::spawn_blocking(|| std::io::stdin().lines().count());
    loop {
        tokio::select! {
            Some(at) = arrivals.recv() => println!("notified {}", micros_since_epoch(at)),
            _ = &mut input_closed => return Ok(()),
        }
    }
}

/// The tokens on standard input, up to the first empty line.
fn read_tokens() -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::new();
    for line in std::io::stdin().lines() {
        let line = line?;
        if line.is_empty() {
            return Ok(tokens);
        }
        tokens.push(line);
    }
    anyhow::bail!("standard input closed before the empty line that ends the tokens")
}

/// Each URL as the socket address it names (`http://<ip>:<port>`).
fn socket_addresses(urls: &[String]) -> anyhow::Result<Vec<SocketAddr>> {
    urls.iter()
        .map(|url| {
            url.trim_end_matches('/')
                .trim_start_matches("http://")
                .parse()
                .with_context(|| format!("fanout needs --url http://<ip>:<port>, not {url}"))
        })
        .collect()
}

/// Opens a session per token in this process, numbered from `first_index`;
/// each reports its first notification to `tell`. Returns how many opened.
async fn open_here(
    addresses: &[SocketAddr],
    first_index: usize,
    tokens: &[String],
    tell: &Arrivals,
    progress: bool,
) -> anyhow::Result<usize> {
    for (offset, token) in tokens.iter().enumerate() {
        let index = first_index + offset;
        let address = addresses[index % addresses.len()];
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind((source_address(index), 0).into())?;
        let stream = socket.connect(address).await?;
        let request = format!("ws://{address}/ws/?token={token}");
        let (connection, _) = tokio_tungstenite::client_async(request, stream).await?;
        tokio::spawn(report_first_notification(connection, tell.clone()));
        if progress && (offset + 1) % 2_000 == 0 {
            println!("  {} open", offset + 1);
        }
    }
    Ok(tokens.len())
}

/// The source address of session `index`.
fn source_address(index: usize) -> Ipv4Addr {
    let block = index / SESSIONS_PER_SOURCE_ADDRESS;
    Ipv4Addr::new(127, 0, (block / 250) as u8, 1 + (block % 250) as u8)
}

/// Reads a session until it closes; reports each `promo.notification`.
async fn report_first_notification<S>(mut connection: S, tell: Arrivals)
where
    S: futures_util::Stream<Item = tokio_tungstenite::tungstenite::Result<Message>> + Unpin,
{
    while let Some(Ok(message)) = connection.next().await {
        if let Message::Text(text) = message {
            if text.contains("\"promo.notification\"") {
                let _ = tell.send(SystemTime::now());
            }
        }
    }
}

fn micros_since_epoch(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros()
}

/// A helper process and the news of its opened sessions.
struct Helper {
    child: Child,
    /// Kept open while the helper runs: closing it tells the helper to stop.
    _input: ChildStdin,
    /// How many sessions it opened, once it has.
    opened: Option<oneshot::Receiver<usize>>,
}

impl Helper {
    /// Starts a helper for `tokens`, numbered from `first_index`, and hands
    /// it the tokens; its notifications go to `tell`.
    async fn start(
        urls: &[String],
        first_index: usize,
        tokens: &[String],
        database_url: &str,
        tell: &Arrivals,
    ) -> anyhow::Result<Helper> {
        let mut command = Command::new(std::env::current_exe()?);
        command.args(["loadgen", "fanout-sessions", "--first-index"]);
        command.arg(first_index.to_string());
        for url in urls {
            command.args(["--url", url]);
        }
        let mut child = command
            .env("DATABASE_URL", database_url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot start a fanout helper process")?;
        let (input, output) = (child.stdin.take(), child.stdout.take());
        let (mut input, output) = input.zip(output).context("the helper has no pipes")?;
        let (opened_tx, opened) = oneshot::channel();
        let tell = tell.clone();
        std::thread::spawn(move || relay(BufReader::new(output), opened_tx, tell));
        let lines = tokens.join("\n") + "\n\n";
        let input =
            tokio::task::spawn_blocking(move || input.write_all(lines.as_bytes()).map(|()| input))
                .await??;
        Ok(Helper {
            child,
            _input: input,
            opened: Some(opened),
        })
    }

    /// Waits until the helper has opened its sessions (at most 10 minutes).
    async fn opened(&mut self) -> anyhow::Result<usize> {
        let opened = self.opened.take().context("asked twice")?;
        match tokio::time::timeout(Duration::from_secs(600), opened).await {
            Ok(Ok(count)) => Ok(count),
            Ok(Err(_)) => anyhow::bail!("a helper process stopped before opening its sessions"),
            Err(_) => anyhow::bail!("a helper process did not open its sessions in 10 minutes"),
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a helper's report lines: the count it opened, then its arrivals.
fn relay(output: impl BufRead, opened: oneshot::Sender<usize>, tell: Arrivals) {
    let mut opened = Some(opened);
    for line in output.lines().map_while(Result::ok) {
        if let Some(count) = line.strip_prefix("opened ") {
            if let (Some(opened), Ok(count)) = (opened.take(), count.parse()) {
                let _ = opened.send(count);
            }
        } else if let Some(micros) = line.strip_prefix("notified ") {
            if let Ok(micros) = micros.parse() {
                let _ = tell.send(UNIX_EPOCH + Duration::from_micros(micros));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_change_every_twenty_thousand_sessions() {
        assert_eq!(source_address(0), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source_address(19_999), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source_address(20_000), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source_address(250 * 20_000), Ipv4Addr::new(127, 0, 1, 1));
    }

    #[test]
    fn a_relay_reports_the_count_then_every_arrival() {
        let (opened_tx, mut opened) = oneshot::channel();
        let (tell, mut arrivals) = mpsc::unbounded_channel();
        let output = "opened 2\nnotified 1000000\nnotified 2500000\n".as_bytes();
        relay(output, opened_tx, tell);
        assert_eq!(opened.try_recv(), Ok(2));
        let first = arrivals.try_recv().unwrap();
        assert_eq!(first, UNIX_EPOCH + Duration::from_secs(1));
        let second = arrivals.try_recv().unwrap();
        assert_eq!(micros_since_epoch(second), 2_500_000);
        assert!(arrivals.try_recv().is_err());
    }

    #[test]
    fn urls_must_name_an_address_and_port() {
        let urls = [
            "http://127.0.0.1:8081/".to_owned(),
            "http://127.0.0.1:8082".to_owned(),
        ];
        let addresses = socket_addresses(&urls).unwrap();
        assert_eq!(addresses[1].port(), 8082);
        let error = socket_addresses(&["http://localhost:8080".to_owned()]).unwrap_err();
        assert!(error.to_string().contains("localhost"));
    }
}
