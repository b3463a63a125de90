//! `LoginThrottle`: failed sign-ins per username and per client address
//! (`LOGIN_FAILURES_PER_MINUTE`), checked before any password is hashed.
//!
//! Only failures count, so a user who signs in often is never held back;
//! once a username or an address has used its quota, further attempts for it
//! are refused with 429 `rate_limited` without running the hash, even with the
//! right password. Each key is a GCRA cell (the rule governor uses): a burst of
//! the whole quota, then one more failure every `60 s / quota`. governor's
//! limiters count every check, and here a check must not count, so the few
//! lines of the rule live here.
//!
//! Memory stays bounded under a flood of distinct usernames: keys are 64-bit
//! keyed hashes (a long username costs no more than a short one), keys whose
//! cell has drained are swept every [`SWEEP_EVERY`] failures, and past
//! [`MAX_KEYS`] the map is swept and, if still full, cleared. Failures can only
//! be recorded as fast as the [`PasswordGate`](super::password_gate) hashes.
//! The address is the client address (`client_address`), IPv6 by its /64,
//! like the sign-up limit.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;

use super::error::ApiError;
use super::rate_limit::client_key;

/// The window the quota is counted over.
const WINDOW: Duration = Duration::from_secs(60);
/// Failures recorded between two sweeps of drained keys.
const SWEEP_EVERY: u64 = 1_024;
/// The most keys kept (about 48 bytes each).
pub const MAX_KEYS: usize = 200_000;

/// What a failure is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Username(u64),
    Client(IpAddr),
}

struct Cells {
    /// Per key, the GCRA's theoretical arrival time of the next failure.
    next_free: HashMap<Key, Instant>,
    failures: u64,
}

/// Failed sign-ins per username and per client address.
pub struct LoginThrottle {
    interval: Duration,
    hasher: RandomState,
    cells: Mutex<Cells>,
}

impl LoginThrottle {
    /// `per_minute` failures per key; `None` when 0 (no throttle).
    pub fn per_minute(per_minute: u32) -> Option<LoginThrottle> {
        let per_minute = NonZeroU32::new(per_minute)?;
        Some(LoginThrottle {
            interval: WINDOW / per_minute.get(),
            hasher: RandomState::new(),
            cells: Mutex::new(Cells {
                next_free: HashMap::new(),
                failures: 0,
            }),
        })
    }

    /// Ok when both `username` and `client` may try again at `now`; otherwise
    /// 429 `rate_limited` with how long until they may.
    pub fn check(
        &self,
        username: &str,
        client: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), ApiError> {
        let cells = self.lock();
        let wait = self
            .keys(username, client)
            .filter_map(|key| cells.next_free.get(&key))
            .filter_map(|next_free| next_free.checked_duration_since(now + WINDOW - self.interval))
            .filter(|wait| !wait.is_zero())
            .max();
        match wait {
            Some(wait) => Err(throttled(wait)),
            None => Ok(()),
        }
    }

    /// Counts one failed sign-in against `username` and `client` at `now`.
    pub fn record_failure(&self, username: &str, client: Option<IpAddr>, now: Instant) {
        let mut cells = self.lock();
        cells.failures += 1;
        if cells.failures.is_multiple_of(SWEEP_EVERY) || cells.next_free.len() >= MAX_KEYS {
            cells.next_free.retain(|_, next_free| *next_free > now);
            if cells.next_free.len() >= MAX_KEYS {
                tracing::warn!("login throttle full even after a sweep; starting afresh");
                cells.next_free.clear();
            }
        }
        for key in self.keys(username, client) {
            let next_free = cells.next_free.entry(key).or_insert(now);
            // Never more than one window ahead: a flood does not extend the wait.
            *next_free = ((*next_free).max(now) + self.interval).min(now + WINDOW);
        }
    }

    /// Keys tracked now (for tests and metrics).
    pub fn tracked_keys(&self) -> usize {
        self.lock().next_free.len()
    }

    fn keys(&self, username: &str, client: Option<IpAddr>) -> impl Iterator<Item = Key> {
        // "Ana" and " ana" are tried against the same account rules: count them together.
        let username = Key::Username(self.hasher.hash_one(username.trim().to_lowercase()));
        std::iter::once(username).chain(client.map(|client| Key::Client(client_key(client))))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cells> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.cells
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The 429 for a wait: whole seconds, rounded up, at least 1.
fn throttled(wait: Duration) -> ApiError {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::RetryLater {
        status: StatusCode::TOO_MANY_REQUESTS,
        code: "rate_limited",
        detail: "Too many failed sign-ins for this account or from this address; retry later."
            .into(),
        retry_after: seconds.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn retry_after(result: Result<(), ApiError>) -> u64 {
        match result {
            Err(ApiError::RetryLater {
                retry_after, code, ..
            }) => {
                assert_eq!(code, "rate_limited");
                retry_after
            }
            other => panic!("expected a 429, got {other:?}"),
        }
    }

    #[test]
    fn the_quota_of_failures_is_allowed_then_the_username_waits() {
        let throttle = LoginThrottle::per_minute(10).unwrap();
        let now = Instant::now();
        for attempt in 0..10 {
            let from = address(&format!("192.0.2.{attempt}"));
            assert!(
                throttle.check("ana", from, now).is_ok(),
                "attempt {attempt}"
            );
            throttle.record_failure("ana", from, now);
        }
        let wait = retry_after(throttle.check("ana", address("198.51.100.1"), now));
        assert_eq!(wait, 6, "one failure drains every 6 s");
        assert!(throttle.check("bob", address("198.51.100.1"), now).is_ok());
        assert!(throttle
            .check("ana", None, now + Duration::from_secs(6))
            .is_ok());
    }

    #[test]
    fn an_address_is_throttled_across_usernames() {
        let throttle = LoginThrottle::per_minute(3).unwrap();
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            throttle.record_failure(name, address("2001:db8:1:2::1"), now);
        }
        // The same /64, another username.
        retry_after(throttle.check("d", address("2001:db8:1:2::ffff"), now));
        assert!(throttle.check("d", address("2001:db8:1:3::1"), now).is_ok());
    }

    #[test]
    fn usernames_count_together_whatever_their_case_or_spacing() {
        let throttle = LoginThrottle::per_minute(2).unwrap();
        let now = Instant::now();
        throttle.record_failure("Ana", None, now);
        throttle.record_failure(" ana ", None, now);
        retry_after(throttle.check("ANA", None, now));
    }

    #[test]
    fn a_flood_cannot_push_the_wait_past_one_window() {
        let throttle = LoginThrottle::per_minute(10).unwrap();
        let now = Instant::now();
        for _ in 0..1_000 {
            throttle.record_failure("ana", None, now);
        }
        assert!(retry_after(throttle.check("ana", None, now)) <= 60);
        assert!(throttle.check("ana", None, now + WINDOW).is_ok());
    }

    #[test]
    fn a_flood_of_distinct_usernames_keeps_the_map_bounded() {
        let throttle = LoginThrottle::per_minute(10).unwrap();
        let start = Instant::now();
        for index in 0..(MAX_KEYS as u64 + 5_000) {
            // 50 failures a second, each for a new username, from one address.
            let now = start + Duration::from_millis(index * 20);
            throttle.record_failure(&format!("user{index}"), address("192.0.2.1"), now);
        }
        assert!(
            throttle.tracked_keys() < 2_000,
            "{}",
            throttle.tracked_keys()
        );
        let now = start + Duration::from_millis((MAX_KEYS as u64 + 5_000) * 20);
        for index in 0..(MAX_KEYS as u64 + 5) {
            throttle.record_failure(&format!("same-instant{index}"), None, now);
        }
        assert!(throttle.tracked_keys() <= MAX_KEYS + 1);
    }

    #[test]
    fn zero_means_no_throttle() {
        assert!(LoginThrottle::per_minute(0).is_none());
    }
}
