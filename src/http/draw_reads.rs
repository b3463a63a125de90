//! What bounds the public draw reads (`draw/`, `draw/entries.txt`): a cap
//! on how many entries files are built from the database at once, and the
//! digests of finished draws already seen, so a conditional request
//! (`If-None-Match`) is answered without touching the database.
//!
//! Building an entries file holds a pool connection for its whole transfer;
//! these routes are public, so without a cap a handful of slow readers would
//! take every connection the service has (API.md "Load that one caller can
//! cause").

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// Entries files (or inline entry lists) built from the database at once.
pub const CONCURRENT_BUILDS: usize = 2;
/// Finished digests remembered; past it the memory starts over (a miss only
/// costs one small query).
const REMEMBERED_DIGESTS: usize = 10_000;

/// The cap and the memory of finished digests, shared by every worker.
#[derive(Debug, Clone)]
pub struct DrawReads {
    builds: Arc<Semaphore>,
    digests: Arc<Mutex<HashMap<i64, [u8; 32]>>>,
}

impl Default for DrawReads {
    fn default() -> Self {
        DrawReads::new(CONCURRENT_BUILDS)
    }
}

impl DrawReads {
    /// At most `builds` entries files built at once.
    pub fn new(builds: usize) -> DrawReads {
        DrawReads {
            builds: Arc::new(Semaphore::new(builds)),
            digests: Arc::default(),
        }
    }

    /// A build slot, held until the build gives its connection back; none
    /// free answers 503 `unavailable` with `Retry-After` at once.
    pub fn start_build(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.builds
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::Overloaded {
                detail: "Too many draw files are being read just now; retry shortly.",
            })
    }

    /// The entries digest of a finished draw, when already seen.
    pub fn finished_digest(&self, campaign_id: i64) -> Option<[u8; 32]> {
        let digests = self.digests.lock().ok()?;
        digests.get(&campaign_id).copied()
    }

    /// Remembers a finished draw's digest (it never changes after the finish).
    pub fn remember(&self, campaign_id: i64, digest: [u8; 32]) {
        if let Ok(mut digests) = self.digests.lock() {
            if digests.len() >= REMEMBERED_DIGESTS {
                digests.clear();
            }
            digests.insert(campaign_id, digest);
        }
    }
}

/// The strong entity tag of a finished draw's entries file: its digest.
pub fn entity_tag(digest: &[u8; 32]) -> String {
    format!("\"{}\"", hex::encode(digest))
}

/// Whether an `If-None-Match` value names `tag` (or is `*`).
pub fn matches(if_none_match: &str, tag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|candidate| candidate.trim().trim_start_matches("W/"))
        .any(|candidate| candidate == "*" || candidate == tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_build_beyond_the_cap_is_refused_until_one_ends() {
        let reads = DrawReads::new(2);
        let first = reads.start_build().expect("first");
        let _second = reads.start_build().expect("second");
        let refused = reads.start_build().expect_err("third");
        assert_eq!(refused.code(), "unavailable");
        drop(first);
        assert!(reads.start_build().is_ok(), "a slot came back");
    }

    #[test]
    fn a_remembered_digest_is_found_again() {
        let reads = DrawReads::default();
        assert_eq!(reads.finished_digest(7), None);
        reads.remember(7, [1; 32]);
        assert_eq!(reads.finished_digest(7), Some([1; 32]));
    }

    #[test]
    fn if_none_match_is_compared_tag_by_tag() {
        let tag = entity_tag(&[0xab; 32]);
        assert!(matches(&format!("\"x\", {tag}"), &tag));
        assert!(matches("*", &tag));
        assert!(!matches("\"abab\"", &tag));
    }
}
