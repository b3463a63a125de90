//! Just enough of the PostgreSQL frontend protocol to spot a simple-query
//! `COMMIT` in the client's byte stream, whatever the TCP read boundaries.
//!
//! The stream opens with untyped packets (`i32 length` then a code: an
//! `SSLRequest`/`GSSENCRequest`, which the client may follow with another
//! untyped packet, or the startup packet itself); every later message is
//! `1 type byte + i32 length` (the length counts itself, not the type byte).
//! Only a small `'Q'` message is held back until it is whole, to read its
//! text; everything else streams through as it arrives, so a large `COPY` or
//! `Bind` is never buffered. A TLS session (server answered `S`) is not
//! decoded: its bytes read as one huge startup packet and pass through.
//!
//! To know when the server has answered a given request, both sides count
//! requests that end in a `ReadyForQuery` (`'Z'`): the startup packet, each
//! `Query`, `Sync` and `FunctionCall` from the client; each `'Z'` from the
//! server. The server answers in order, so the n-th `'Z'` answers the n-th.

/// Untyped request codes that are followed by another untyped packet.
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
/// A `'Q'` body longer than this cannot be `COMMIT` and is not held back.
const LONGEST_COMMIT_QUERY: usize = 64;

/// A run of client bytes, in order, as the proxy must forward them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Bytes to forward as they are.
    Pass(Vec<u8>),
    /// One whole simple-query message whose text is `COMMIT`.
    Commit {
        /// The message, to forward or not.
        message: Vec<u8>,
        /// Its place among the requests the server answers with a `'Z'`
        /// (1 = the startup packet): the server's `sequence`-th `'Z'` answers it.
        sequence: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before the startup packet: packets have no type byte.
    Untyped,
    /// After it: `type + length` headers.
    Typed,
}

/// Splits the client→server stream into [`Piece`]s.
#[derive(Debug)]
pub struct FrontendFramer {
    phase: Phase,
    /// Header bytes of the next message, or a whole short `'Q'` message.
    held: Vec<u8>,
    /// Body bytes of the current message still to stream through untouched.
    streaming: usize,
    /// Requests so far that the server will answer with a `'Z'`.
    requests: u64,
}

impl Default for FrontendFramer {
    fn default() -> Self {
        FrontendFramer {
            phase: Phase::Untyped,
            held: Vec::new(),
            streaming: 0,
            requests: 0,
        }
    }
}

impl FrontendFramer {
    /// Takes the next bytes read from the client and appends what they
    /// complete to `out` (adjacent pass-through bytes are merged).
    pub fn push(&mut self, mut data: &[u8], out: &mut Vec<Piece>) {
        while !data.is_empty() {
            if self.streaming > 0 {
                let take = self.streaming.min(data.len());
                pass(out, &data[..take]);
                self.streaming -= take;
                data = &data[take..];
                continue;
            }
            let used = self.fill_header(data);
            data = &data[used..];
            self.settle(out);
        }
    }

    /// Moves bytes into `held` until the header (or the short `'Q'`
    /// message it announces) is whole; returns how many it used.
    fn fill_header(&mut self, data: &[u8]) -> usize {
        let want = self.held_target().saturating_sub(self.held.len());
        let take = want.min(data.len());
        self.held.extend_from_slice(&data[..take]);
        take
    }

    /// How many bytes `held` needs before it can be decided.
    fn held_target(&self) -> usize {
        match self.phase {
            Phase::Untyped => 8,
            Phase::Typed if self.held.len() < 5 => 5,
            Phase::Typed => short_query_body(&self.held).map_or(5, |body| 5 + body),
        }
    }

    /// Emits `held` once it is complete enough to decide what it is.
    fn settle(&mut self, out: &mut Vec<Piece>) {
        if self.held.len() < self.held_target() {
            return;
        }
        let held = std::mem::take(&mut self.held);
        match self.phase {
            Phase::Untyped => self.settle_untyped(held, out),
            Phase::Typed if short_query_body(&held).is_some() => {
                self.requests += 1;
                if is_commit(&held[5..]) {
                    let sequence = self.requests;
                    out.push(Piece::Commit {
                        message: held,
                        sequence,
                    });
                } else {
                    pass(out, &held);
                }
            }
            Phase::Typed => {
                if matches!(held[0], b'Q' | b'S' | b'F') {
                    self.requests += 1;
                }
                let length = length_at(&held, 1).unwrap_or(4);
                self.streaming = usize::try_from(length).unwrap_or(4).saturating_sub(4);
                pass(out, &held);
            }
        }
    }

    /// An untyped packet's first 8 bytes: a negotiation request keeps the
    /// stream untyped; anything else is the startup packet.
    fn settle_untyped(&mut self, held: Vec<u8>, out: &mut Vec<Piece>) {
        let length = length_at(&held, 0).unwrap_or(8);
        let code = length_at(&held, 4).unwrap_or(0);
        if !(code == SSL_REQUEST || code == GSSENC_REQUEST) {
            self.phase = Phase::Typed;
            self.requests += 1;
        }
        self.streaming = usize::try_from(length).unwrap_or(8).saturating_sub(8);
        pass(out, &held);
    }
}

/// Counts the server's `ReadyForQuery` messages, whatever the read
/// boundaries. The server's first byte may be a one-byte answer to an
/// `SSLRequest`/`GSSENCRequest` (`N`, `S` or `G`: never the first byte of
/// a real first message, which is `R` or `E`); it is skipped.
#[derive(Debug, Default)]
pub struct BackendFramer {
    started: bool,
    header: Vec<u8>,
    skipping: usize,
    ready: u64,
}

impl BackendFramer {
    /// Takes the next bytes read from the server.
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.skipping > 0 {
                let take = self.skipping.min(data.len());
                self.skipping -= take;
                data = &data[take..];
                continue;
            }
            if !self.started && self.header.is_empty() && matches!(data[0], b'N' | b'S' | b'G') {
                data = &data[1..];
                continue;
            }
            self.started = true;
            let take = (5 - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.header.len() == 5 {
                self.ready += u64::from(self.header[0] == b'Z');
                let length = length_at(&self.header, 1).unwrap_or(4);
                self.skipping = usize::try_from(length).unwrap_or(4).saturating_sub(4);
                self.header.clear();
            }
        }
    }

    /// `ReadyForQuery` messages seen so far (the header is enough).
    pub fn ready(&self) -> u64 {
        self.ready
    }
}

/// The body length of the short `'Q'` message whose header starts `held`.
fn short_query_body(held: &[u8]) -> Option<usize> {
    let body = usize::try_from(length_at(held, 1)?).ok()?.checked_sub(4)?;
    (held.first() == Some(&b'Q') && body <= LONGEST_COMMIT_QUERY).then_some(body)
}

/// The big-endian `i32` at `at`, if the bytes are there.
fn length_at(bytes: &[u8], at: usize) -> Option<i32> {
    let field: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(i32::from_be_bytes(field))
}

/// Whether a `'Q'` body (NUL-terminated text) is `COMMIT` (any case, an
/// optional `;`, surrounding blanks).
fn is_commit(body: &[u8]) -> bool {
    let text = body.strip_suffix(&[0]).unwrap_or(body);
    let text = String::from_utf8_lossy(text);
    let text = text.trim().trim_end_matches(';').trim();
    text.eq_ignore_ascii_case("commit")
}

fn pass(out: &mut Vec<Piece>, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    match out.last_mut() {
        Some(Piece::Pass(run)) => run.extend_from_slice(bytes),
        _ => out.push(Piece::Pass(bytes.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup() -> Vec<u8> {
        let mut body = 196_608_i32.to_be_bytes().to_vec();
        body.extend_from_slice(b"user\0postgres\0\0");
        let mut packet = (body.len() as i32 + 4).to_be_bytes().to_vec();
        packet.extend(body);
        packet
    }

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut message = vec![kind];
        message.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        message.extend_from_slice(body);
        message
    }

    fn query(text: &str) -> Vec<u8> {
        message(b'Q', format!("{text}\0").as_bytes())
    }

    /// A stream of a startup, a BEGIN, a big Parse, a COMMIT and a Sync.
    fn session() -> (Vec<u8>, Vec<u8>) {
        let commit = query("COMMIT");
        let mut stream = startup();
        stream.extend(query("BEGIN"));
        stream.extend(message(b'P', &vec![b'x'; 5_000]));
        stream.extend(commit.clone());
        stream.extend(message(b'S', &[]));
        (stream, commit)
    }

    fn frame_in_chunks(stream: &[u8], chunk: usize) -> Vec<Piece> {
        let mut framer = FrontendFramer::default();
        let mut out = Vec::new();
        for part in stream.chunks(chunk) {
            framer.push(part, &mut out);
        }
        out
    }

    fn joined(pieces: &[Piece]) -> Vec<u8> {
        pieces
            .iter()
            .flat_map(|piece| match piece {
                Piece::Pass(bytes) | Piece::Commit { message: bytes, .. } => bytes.clone(),
            })
            .collect()
    }

    #[test]
    fn a_commit_is_found_whatever_the_read_boundaries() {
        let (stream, commit) = session();
        for chunk in [1, 2, 3, 5, 7, 13, 64, 4_096, stream.len()] {
            let pieces = frame_in_chunks(&stream, chunk);
            let commits: Vec<_> = pieces
                .iter()
                .filter(|piece| matches!(piece, Piece::Commit { .. }))
                .collect();
            // Startup, BEGIN, (Parse: no answer of its own), COMMIT.
            let expected = Piece::Commit {
                message: commit.clone(),
                sequence: 3,
            };
            assert_eq!(commits, vec![&expected], "chunk {chunk}");
            assert_eq!(
                joined(&pieces),
                stream,
                "every byte kept in order (chunk {chunk})"
            );
        }
    }

    #[test]
    fn other_queries_and_commit_lookalikes_pass_through() {
        let mut stream = startup();
        for text in [
            "COMMIT PREPARED 'x'",
            "SELECT 'COMMIT'",
            "ROLLBACK",
            "BEGIN",
        ] {
            stream.extend(query(text));
        }
        stream.extend(message(b'D', b"COMMIT\0"));
        let pieces = frame_in_chunks(&stream, 3);
        assert_eq!(pieces, vec![Piece::Pass(stream)]);
    }

    #[test]
    fn commit_is_recognised_in_any_case_with_a_semicolon() {
        let mut stream = startup();
        stream.extend(query(" commit; "));
        let pieces = frame_in_chunks(&stream, 1);
        assert!(
            matches!(pieces.last(), Some(Piece::Commit { .. })),
            "{pieces:?}"
        );
    }

    #[test]
    fn an_ssl_request_before_the_startup_packet_keeps_framing_right() {
        let mut stream = 8_i32.to_be_bytes().to_vec();
        stream.extend_from_slice(&SSL_REQUEST.to_be_bytes());
        stream.extend(startup());
        stream.extend(query("COMMIT"));
        let pieces = frame_in_chunks(&stream, 4);
        assert!(
            matches!(pieces.last(), Some(Piece::Commit { .. })),
            "{pieces:?}"
        );
    }

    #[test]
    fn a_commit_message_carried_inside_copy_data_is_not_a_commit() {
        let mut stream = startup();
        stream.extend(message(b'd', &query("COMMIT")));
        stream.extend(query("COMMIT"));
        let commits = frame_in_chunks(&stream, 9)
            .into_iter()
            .filter(|piece| matches!(piece, Piece::Commit { .. }))
            .count();
        assert_eq!(commits, 1);
    }

    #[test]
    fn ready_for_query_messages_are_counted_across_split_reads() {
        let mut stream = vec![b'N'];
        stream.extend(message(b'R', &0_i32.to_be_bytes()));
        stream.extend(message(b'S', b"client_encoding\0UTF8\0"));
        stream.extend(message(b'Z', b"I"));
        stream.extend(message(b'D', &message(b'Z', b"I")));
        stream.extend(message(b'C', b"COMMIT\0"));
        stream.extend(message(b'Z', b"I"));
        for chunk in [1, 2, 5, 6, 100] {
            let mut framer = BackendFramer::default();
            for part in stream.chunks(chunk) {
                framer.push(part);
            }
            assert_eq!(framer.ready(), 2, "chunk {chunk}");
        }
    }
}
