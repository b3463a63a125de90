//! `NatsServer`: a private `nats-server` on a port of its own, for a test
//! that kills NATS and starts it again on the same port while a cluster
//! runs against it. Killed on drop.
//!
//! The binary is required (CI installs it): a missing one fails the test.

use std::net::TcpStream;
use std::time::Duration;

use super::wait::wait_until;

/// How long a start of `nats-server` may take to accept connections.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// A `nats-server -p <port>` child process.
pub struct NatsServer {
    child: Option<std::process::Child>,
    port: u16,
}

impl NatsServer {
    /// Starts `nats-server` on a free port and waits until it accepts connections.
    pub async fn start() -> NatsServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut server = NatsServer { child: None, port };
        server.restart().await;
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and waits until it
    /// accepts connections.
    pub async fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server starts (is it installed and on PATH?)");
        self.child = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        let up = wait_until(START_DEADLINE, || {
            let address = address.clone();
            async move { TcpStream::connect(address).is_ok() }
        })
        .await;
        assert!(up, "nats-server did not listen on {address}");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
