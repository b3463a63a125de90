//! Mail for the tests: `SmtpSink`, a real SMTP server (mailin-embedded) on a
//! local port that keeps what it receives, and readers for messages, whether
//! they came over SMTP or were written as `.eml` files.

use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::{response, Handler, Response, Server, SslConfig};

use super::helpers::wait_until;

/// A message as a mail server or a file received it, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    pub envelope_to: Vec<String>,
    pub to: String,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: Option<String>,
}

impl Mail {
    /// Decodes a raw RFC 5322 message; `None` when it is not whole.
    pub fn parse(raw: &[u8], envelope_to: Vec<String>) -> Option<Mail> {
        let parsed = mailparse::parse_mail(raw).ok()?;
        let header = |name: &str| {
            parsed
                .headers
                .iter()
                .find(|header| header.get_key().eq_ignore_ascii_case(name))
                .map(|header| header.get_value())
                .unwrap_or_default()
        };
        let part_of = |mime: &str| -> Option<String> {
            let mut parts = vec![&parsed];
            while let Some(part) = parts.pop() {
                if part.ctype.mimetype == mime {
                    return part.get_body().ok();
                }
                parts.extend(part.subparts.iter());
            }
            None
        };
        Some(Mail {
            envelope_to,
            to: header("To"),
            subject: header("Subject"),
            message_id: header("Message-ID"),
            text: part_of("text/plain")?,
            html: part_of("text/html"),
        })
    }

    /// The verification link the message carries.
    pub fn verify_link(&self) -> Option<String> {
        let start = self.text.find("http")?;
        let link: String = self.text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        link.contains("verify_subscriber").then_some(link)
    }
}

/// An SMTP server that accepts everything and keeps it.
pub struct SmtpSink {
    pub port: u16,
    inbox: Arc<Mutex<Vec<Mail>>>,
}

#[derive(Clone)]
struct Collector {
    inbox: Arc<Mutex<Vec<Mail>>>,
    /// Recipients containing this text are refused with 550.
    refuse: Option<String>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Collector {
    fn rcpt(&mut self, to: &str) -> Response {
        match &self.refuse {
            Some(refused) if to.contains(refused.as_str()) => response::NO_MAILBOX,
            _ => response::OK,
        }
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        match Mail::parse(&self.data, std::mem::take(&mut self.to)) {
            Some(mail) => {
                self.inbox.lock().expect("inbox").push(mail);
                response::OK
            }
            None => response::TRANSACTION_FAILED,
        }
    }
}

impl SmtpSink {
    /// A sink on a free port.
    pub fn start() -> SmtpSink {
        SmtpSink::start_on(TcpListener::bind("127.0.0.1:0").expect("a free port"), None)
    }

    /// A sink on a free port that refuses (550) recipients containing `refused`.
    pub fn refusing(refused: &str) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        SmtpSink::start_on(listener, Some(refused.to_owned()))
    }

    /// A sink on `port` (which must be free now).
    pub fn start_on_port(port: u16) -> SmtpSink {
        SmtpSink::start_on(
            TcpListener::bind(("127.0.0.1", port)).expect("the port is free"),
            None,
        )
    }

    fn start_on(listener: TcpListener, refuse: Option<String>) -> SmtpSink {
        let port = listener.local_addr().expect("local address").port();
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let collector = Collector {
            inbox: inbox.clone(),
            refuse,
            to: Vec::new(),
            data: Vec::new(),
        };
        let mut server = Server::new(collector);
        server
            .with_name("sink.test")
            .with_ssl(SslConfig::None)
            .expect("plain SMTP")
            .with_tcp_listener(listener);
        std::thread::spawn(move || {
            if let Err(error) = server.serve() {
                eprintln!("SMTP sink stopped: {error}");
            }
        });
        SmtpSink { port, inbox }
    }

    /// The `SMTP_URL` of this sink.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Mail> {
        self.inbox.lock().expect("inbox").clone()
    }

    /// Waits until `count` messages to `recipient` arrived; returns them.
    pub async fn wait_for(&self, recipient: &str, count: usize) -> Vec<Mail> {
        let addressed = || -> Vec<Mail> {
            self.received()
                .into_iter()
                .filter(|mail| mail.envelope_to.iter().any(|to| to == recipient))
                .collect()
        };
        let arrived = wait_until(Duration::from_secs(30), || async {
            addressed().len() >= count
        })
        .await;
        assert!(
            arrived,
            "{count} message(s) to {recipient} did not arrive: {:?}",
            self.received()
        );
        addressed()
    }
}

/// A port nothing listens on (bound, then released).
pub fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Every `.eml` file under `directory`, decoded.
pub fn read_mail_files(directory: &Path) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
        .filter_map(|path| std::fs::read(path).ok())
        .filter_map(|raw| Mail::parse(&raw, Vec::new()))
        .collect()
}
