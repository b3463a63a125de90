//! The verifiable draw of API.md ("a draw anyone can check"): the secret seed
//! and its commitment, the digest of the published entries, and the rule that
//! turns seed and digest into winners.
//!
//! The rule, for each winner: `r = HMAC-SHA256(key = seed, message =
//! entries_digest_hex + ":" + counter)` read as a big-endian 256-bit integer,
//! `counter` incremented; with `m` positions remaining, `r >= (2^256 / m) * m`
//! (integer division) is rejected and computed again, otherwise
//! `remaining.pop(r % m)` is the next winner. Rejecting the top of the range
//! is what makes `r % m` exactly uniform. Everything here is pure: the seed's
//! random source is a parameter (the service passes `OsRng`).

use hmac::{Hmac, Mac};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};

/// The draw's secret: 256 bits, kept secret until the finish.
#[derive(Clone, PartialEq, Eq)]
pub struct DrawSeed([u8; 32]);

impl DrawSeed {
    /// A fresh seed from `rng` (the operating system's CSPRNG in the
    /// service); an error, never a panic, when the source fails.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Result<DrawSeed, rand::Error> {
        let mut bytes = [0u8; 32];
        rng.try_fill_bytes(&mut bytes)?;
        Ok(DrawSeed(bytes))
    }

    /// A stored seed; `None` unless it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<DrawSeed> {
        bytes.try_into().ok().map(DrawSeed)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// SHA-256 of the seed's bytes: what is published from opening on.
    pub fn commitment(&self) -> [u8; 32] {
        Sha256::digest(self.0).into()
    }
}

impl std::fmt::Debug for DrawSeed {
    // A seed must never reach a log before the finish.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("DrawSeed(..)")
    }
}

/// Hashes the entries file while its entries stream past, without keeping
/// them: the lowercase hex of each 32-byte entry, joined with `"\n"`.
pub struct EntriesDigest {
    hasher: Sha256,
    count: u64,
    hex: [u8; 64],
}

impl Default for EntriesDigest {
    fn default() -> EntriesDigest {
        EntriesDigest {
            hasher: Sha256::new(),
            count: 0,
            hex: [0; 64],
        }
    }
}

impl EntriesDigest {
    /// An empty file.
    pub fn new() -> EntriesDigest {
        EntriesDigest::default()
    }

    /// Appends one entry (a subscriber's SHA-256 of their normalised address).
    pub fn push(&mut self, entry: &[u8; 32]) {
        if self.count > 0 {
            self.hasher.update(b"\n");
        }
        // Encoding into a fixed buffer cannot fail: 32 bytes make 64 digits.
        if hex::encode_to_slice(entry, &mut self.hex).is_ok() {
            self.hasher.update(self.hex);
        }
        self.count += 1;
    }

    /// How many entries were pushed.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The digest of the file, and how many entries it lists.
    pub fn finish(self) -> ([u8; 32], u64) {
        (self.hasher.finalize().into(), self.count)
    }
}

/// The winners' positions among `entries` entries, in draw order:
/// `min(winners, entries)` distinct positions by the rule above.
pub fn draw_positions(
    seed: &DrawSeed,
    entries_digest_hex: &str,
    entries: u64,
    winners: usize,
) -> Vec<u64> {
    let wanted = usize::try_from(entries).map_or(winners, |entries| winners.min(entries));
    let mut taken: Vec<u64> = Vec::with_capacity(wanted);
    let mut picked = Vec::with_capacity(wanted);
    let mut counter: u64 = 0;
    while picked.len() < wanted {
        let remaining = entries - taken.len() as u64;
        let r = hmac_block(seed, entries_digest_hex, counter);
        counter += 1;
        if rejected(&r, remaining) {
            continue;
        }
        let position = nth_remaining(&mut taken, remainder(&r, remaining));
        picked.push(position);
    }
    picked
}

/// `HMAC-SHA256(key = seed, message = digest + ":" + counter)`.
fn hmac_block(seed: &DrawSeed, entries_digest_hex: &str, counter: u64) -> [u8; 32] {
    // HMAC zero-pads a key shorter than SHA-256's 64-byte block, so padding
    // the seed here is the same key and spares an infallible `Result`.
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(seed.as_bytes());
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&key.into());
    mac.update(entries_digest_hex.as_bytes());
    mac.update(b":");
    mac.update(counter.to_string().as_bytes());
    mac.finalize().into_bytes().into()
}

/// True when `r >= (2^256 / m) * m`: the biased top of the range. As
/// `(2^256 / m) * m = 2^256 - (2^256 mod m)`, that is when `r + (2^256 mod m)`
/// overflows 256 bits.
fn rejected(r: &[u8; 32], m: u64) -> bool {
    let mut carry = u128::from(pow256_mod(m));
    for byte in r.iter().rev() {
        if carry == 0 {
            return false;
        }
        let sum = u128::from(*byte) + (carry & 0xff);
        carry = (carry >> 8) + (sum >> 8);
    }
    carry > 0
}

/// `2^256 mod m`, squaring `2^64 mod m` twice.
fn pow256_mod(m: u64) -> u64 {
    let m = u128::from(m);
    let p64 = (u128::from(u64::MAX) % m + 1) % m;
    let p128 = p64 * p64 % m;
    let p256 = p128 * p128 % m;
    // Below m, which is a u64.
    p256 as u64
}

/// `r mod m` for a big-endian 256-bit `r`.
fn remainder(r: &[u8; 32], m: u64) -> u64 {
    let m = u128::from(m);
    let rest = r
        .iter()
        .fold(0u128, |rest, byte| ((rest << 8) | u128::from(*byte)) % m);
    // Below m, which is a u64.
    rest as u64
}

/// Pops the `index`-th remaining position (0-based, ascending) of
/// `0..n` minus `taken`, which is kept sorted: the winners are few, so a
/// walk over them beats keeping a list of a million remaining positions.
fn nth_remaining(taken: &mut Vec<u64>, index: u64) -> u64 {
    let mut position = index;
    let mut at = 0;
    while at < taken.len() && taken[at] <= position {
        position += 1;
        at += 1;
    }
    taken.insert(at, position);
    position
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    fn seed_of(byte: u8) -> DrawSeed {
        DrawSeed([byte; 32])
    }

    #[test]
    fn the_commitment_is_the_sha256_of_the_seed_bytes() {
        let seed = seed_of(0);
        assert_eq!(
            hex::encode(seed.commitment()),
            "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
        );
        assert_eq!(format!("{seed:?}"), "DrawSeed(..)", "never logged");
    }

    #[test]
    fn the_entries_digest_joins_hex_entries_with_newlines_and_no_trailing_one() {
        let mut digest = EntriesDigest::new();
        digest.push(&[0xab; 32]);
        digest.push(&[0x01; 32]);
        let text = format!("{}\n{}", "ab".repeat(32), "01".repeat(32));
        let (hash, count) = digest.finish();
        assert_eq!(hash, <[u8; 32]>::from(Sha256::digest(text.as_bytes())));
        assert_eq!(count, 2);
    }

    #[test]
    fn the_draw_matches_a_vector_computed_independently_in_python() {
        // hmac.new(bytes([7]*32), f"{'ab'*32}:{c}".encode(), "sha256"), the
        // rule of API.md run by hand in Python over 1000 entries, 5 winners.
        let winners = draw_positions(&seed_of(7), &"ab".repeat(32), 1000, 5);
        assert_eq!(winners, PYTHON_VECTOR);
    }

    const PYTHON_VECTOR: [u64; 5] = [300, 470, 12, 222, 312];

    #[test]
    fn the_top_of_the_range_is_rejected_and_the_rest_accepted() {
        // 2^256 mod 3 = 1, so (2^256 / 3) * 3 = 2^256 - 1: only all-ones is out.
        let top = [0xff; 32];
        let mut below = top;
        below[31] = 0xfe;
        assert!(rejected(&top, 3));
        assert!(!rejected(&below, 3));
        // A power of two divides 2^256: nothing is rejected.
        assert!(!rejected(&top, 1 << 20));
        assert_eq!(pow256_mod(3), 1);
        assert_eq!(pow256_mod(7), 2, "2^256 = 2^(3*85+1), 8 = 1 mod 7");
        assert_eq!(remainder(&below, 1), 0);
        let mut small = [0u8; 32];
        small[30..].copy_from_slice(&[1, 5]);
        assert_eq!(remainder(&small, 256), 5);
        assert_eq!(remainder(&small, 7), 261 % 7);
    }

    #[test]
    fn popping_the_nth_remaining_position_skips_the_taken_ones() {
        let mut taken = vec![];
        assert_eq!(nth_remaining(&mut taken, 2), 2); // 0 1 [2] 3 4
        assert_eq!(nth_remaining(&mut taken, 2), 3); // 0 1 [3] 4
        assert_eq!(nth_remaining(&mut taken, 0), 0); // [0] 1 4
        assert_eq!(nth_remaining(&mut taken, 1), 4); // 1 [4]
        assert_eq!(taken, vec![0, 2, 3, 4]);
    }

    #[test]
    fn every_entry_wins_once_when_there_are_more_winners_than_entries() {
        let mut winners =
            draw_positions(&DrawSeed::generate(&mut OsRng).expect("seed"), "d", 7, 1000);
        assert_eq!(winners.len(), 7);
        winners.sort_unstable();
        assert_eq!(winners, (0..7).collect::<Vec<u64>>());
        assert!(draw_positions(&seed_of(1), "d", 0, 3).is_empty());
    }

    #[test]
    fn the_draw_is_the_same_for_the_same_seed_and_digest() {
        let seed = DrawSeed::generate(&mut OsRng).expect("seed");
        let first = draw_positions(&seed, "digest", 1_000_000, 1000);
        assert_eq!(first, draw_positions(&seed, "digest", 1_000_000, 1000));
        assert_ne!(first, draw_positions(&seed, "other", 1_000_000, 1000));
        let mut distinct = first.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 1000);
        assert!(first.iter().all(|position| *position < 1_000_000));
    }

    #[test]
    fn first_and_second_winners_are_uniform_over_the_entries() {
        const DRAWS: usize = 30_000;
        let mut first = [0usize; 6];
        let mut second = [0usize; 6];
        for _ in 0..DRAWS {
            let seed = DrawSeed::generate(&mut OsRng).expect("seed");
            let winners = draw_positions(&seed, "digest", 6, 2);
            first[winners[0] as usize] += 1;
            second[winners[1] as usize] += 1;
        }
        // Chi-square, 5 degrees of freedom: a fair draw exceeds 35.9 once in
        // a million runs.
        let expected = DRAWS as f64 / 6.0;
        for wins in [first, second] {
            let chi_square: f64 = wins
                .iter()
                .map(|&observed| (observed as f64 - expected).powi(2) / expected)
                .sum();
            assert!(chi_square < 35.9, "wins {wins:?}, chi-square {chi_square}");
        }
    }
}
