//! `CredentialCache`: recently verified credentials, so that neither a Basic
//! request (an argon2 hash, ~tens of ms) nor a token request (a database
//! lookup) pays full price every time.
//!
//! Entries are keyed by an HMAC of the credential under a key drawn at start-up,
//! so the map never holds a password or a token, and live for a short TTL.
//! Changing or deleting an account drops its entries at once
//! ([`CredentialCache::forget_user`]); in cluster mode other instances are
//! told (`Engine::credentials_changed`) and forget theirs as the event
//! arrives, and in any case within the TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::digest::generic_array::GenericArray;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;

use crate::domain::entities::AccountSummary;

/// How long a verified credential is trusted without checking again.
pub const CREDENTIAL_TTL: Duration = Duration::from_secs(60);
/// Past this many entries, expired ones are swept (and, if that is not enough,
/// all are dropped): the cache can never grow without bound.
const MAX_ENTRIES: usize = 100_000;

/// A keyed fingerprint of one credential.
pub type Fingerprint = [u8; 32];

struct Entry {
    account: AccountSummary,
    expires_at: Instant,
}

/// Verified credentials, by fingerprint.
pub struct CredentialCache {
    key: [u8; 64],
    ttl: Duration,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    verified: HashMap<Fingerprint, Entry>,
    /// When each account was last changed: a check that began before then
    /// must not be remembered (it may have seen the old password).
    changed_at: HashMap<i64, Instant>,
}

impl CredentialCache {
    /// An empty cache with a fresh random key.
    pub fn new(ttl: Duration) -> CredentialCache {
        let mut key = [0u8; 64];
        OsRng.fill_bytes(&mut key);
        CredentialCache {
            key,
            ttl,
            entries: Mutex::new(Entries::default()),
        }
    }

    /// The fingerprint of a credential made of `parts` under `scheme`.
    pub fn fingerprint(&self, scheme: &str, parts: &[&str]) -> Fingerprint {
        // The key is exactly one SHA-256 block, so this constructor is infallible.
        let mut mac = <Hmac<Sha256> as Mac>::new(GenericArray::from_slice(&self.key));
        mac.update(scheme.as_bytes());
        for part in parts {
            // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        mac.finalize().into_bytes().into()
    }

    /// The account a fingerprint was verified for, if still fresh.
    pub fn get(&self, fingerprint: &Fingerprint) -> Option<AccountSummary> {
        let entries = self.lock();
        entries
            .verified
            .get(fingerprint)
            .filter(|entry| entry.expires_at > Instant::now())
            .map(|entry| entry.account.clone())
    }

    /// Remembers a credential verified by a check that began at `checked_at`,
    /// unless its account changed since then.
    pub fn remember(&self, fingerprint: Fingerprint, account: AccountSummary, checked_at: Instant) {
        let now = Instant::now();
        let mut entries = self.lock();
        if entries
            .changed_at
            .get(&account.id)
            .is_some_and(|changed| *changed >= checked_at)
        {
            return;
        }
        if entries.verified.len() >= MAX_ENTRIES {
            entries.verified.retain(|_, entry| entry.expires_at > now);
            if entries.verified.len() >= MAX_ENTRIES {
                entries.verified.clear();
            }
        }
        entries.verified.insert(
            fingerprint,
            Entry {
                account,
                expires_at: now + self.ttl,
            },
        );
    }

    /// Drops every entry of one account (password or username changed, account
    /// deleted), including any a check still in flight would add.
    pub fn forget_user(&self, user_id: i64) {
        let now = Instant::now();
        let ttl = self.ttl;
        let mut entries = self.lock();
        entries
            .verified
            .retain(|_, entry| entry.account.id != user_id);
        // A check lasts far less than the TTL; older marks can go.
        entries
            .changed_at
            .retain(|_, changed| now.duration_since(*changed) < ttl);
        entries.changed_at.insert(user_id, now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: i64) -> AccountSummary {
        AccountSummary {
            id,
            username: format!("user{id}"),
            is_admin: false,
        }
    }

    #[test]
    fn a_remembered_credential_is_found_until_forgotten() {
        let cache = CredentialCache::new(CREDENTIAL_TTL);
        let key = cache.fingerprint("basic", &["ana", "secret-pass"]);
        assert!(cache.get(&key).is_none());
        cache.remember(key, account(7), Instant::now());
        assert_eq!(cache.get(&key).unwrap().id, 7);
        cache.forget_user(7);
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn a_check_that_began_before_a_change_is_not_remembered() {
        let cache = CredentialCache::new(CREDENTIAL_TTL);
        let key = cache.fingerprint("basic", &["ana", "old-password"]);
        let checked_at = Instant::now();
        cache.forget_user(7);
        cache.remember(key, account(7), checked_at);
        assert!(cache.get(&key).is_none());
        cache.remember(key, account(7), Instant::now());
        assert!(cache.get(&key).is_some());
    }

    #[test]
    fn fingerprints_separate_parts_and_schemes() {
        let cache = CredentialCache::new(CREDENTIAL_TTL);
        assert_ne!(
            cache.fingerprint("basic", &["ab", "c"]),
            cache.fingerprint("basic", &["a", "bc"])
        );
        assert_ne!(
            cache.fingerprint("basic", &["x"]),
            cache.fingerprint("token", &["x"])
        );
    }

    #[test]
    fn entries_expire() {
        let cache = CredentialCache::new(Duration::ZERO);
        let key = cache.fingerprint("token", &["abc"]);
        cache.remember(key, account(1), Instant::now());
        assert!(cache.get(&key).is_none());
    }

    #[test]
    fn two_caches_fingerprint_differently() {
        let first = CredentialCache::new(CREDENTIAL_TTL);
        let second = CredentialCache::new(CREDENTIAL_TTL);
        assert_ne!(
            first.fingerprint("basic", &["ana", "pw"]),
            second.fingerprint("basic", &["ana", "pw"])
        );
    }
}
