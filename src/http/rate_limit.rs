//! `ClientRateLimit`: requests per minute per client address (governor's
//! GCRA: a burst of the whole quota, then one request per `60 s / quota`).
//!
//! The client is the address [`client_address`](super::client_address) gives:
//! the TCP peer, or what a trusted proxy says it forwarded for. IPv6 clients
//! are keyed by their /64, the block one host usually holds, so hopping
//! addresses inside it does not multiply the quota.
//! Entries of clients that went quiet are dropped every few thousand checks.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::error::ApiError;

/// Checks between two sweeps of quiet clients.
const SWEEP_EVERY: u64 = 4_096;

/// A per-client limit on one kind of request.
pub struct ClientRateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl ClientRateLimit {
    /// A limit of `per_minute` requests per client; `None` when 0 (no limit).
    pub fn per_minute(per_minute: u32) -> Option<ClientRateLimit> {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute)?);
        Some(ClientRateLimit {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        })
    }

    /// Counts one request from `client`: 429 `rate_limited` with the wait
    /// (whole seconds, at least 1) when it is over the limit.
    pub fn check(&self, client: IpAddr) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&client_key(client))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.clock.now());
                let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                ApiError::RetryLater {
                    status: StatusCode::TOO_MANY_REQUESTS,
                    code: "rate_limited",
                    detail: "Too many sign-ups from this address; retry later.".into(),
                    retry_after: retry_after.max(1),
                }
            })
    }
}

/// The key a client is counted under: IPv4 as is, IPv6 by its /64.
pub(crate) fn client_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let network = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_is_a_burst_then_a_wait() {
        let limit = ClientRateLimit::per_minute(3).unwrap();
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limit.check(client).is_ok());
        }
        let Err(ApiError::RetryLater { retry_after, .. }) = limit.check(client) else {
            panic!("the fourth request must be limited");
        };
        assert!((1..=20).contains(&retry_after));
        assert!(limit.check("192.0.2.2".parse().unwrap()).is_ok());
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(ClientRateLimit::per_minute(0).is_none());
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
