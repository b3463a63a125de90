//! Which address a request came from, for the per-address limits (sign-ups,
//! failed sign-ins) and the idempotency keys of anonymous callers.
//!
//! The answer is the TCP peer, unless the peer is one of `TRUSTED_PROXIES`:
//! then it is the address that proxy put in `X-Forwarded-For`. The header is
//! read from the right, skipping the trusted proxies themselves, and the first
//! address that is not one of them is the client; anything to its left was
//! written by the client and could be forged. A header from an untrusted peer
//! is never read, so a client talking to the service directly cannot pick the
//! address it is counted under. An entry that is not an address stops the
//! walk at the last address known to be good.

use std::net::IpAddr;

use actix_web::http::header::HeaderName;
use actix_web::{web, HttpRequest};
use ipnet::IpNet;

use super::AppState;

/// The header a reverse proxy appends the address it served to.
const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The address `request` is counted under (see the module doc); `None`
/// only when the peer is unknown (a test request without a socket).
pub fn client_address(request: &HttpRequest) -> Option<IpAddr> {
    let peer = request.peer_addr()?.ip();
    let trusted = request
        .app_data::<web::Data<AppState>>()
        .map(|state| state.config.trusted_proxies.as_slice())
        .unwrap_or_default();
    let forwarded = request
        .headers()
        .get_all(FORWARDED_FOR)
        .filter_map(|value| value.to_str().ok());
    Some(forwarded_client(peer, trusted, forwarded))
}

/// The client behind `peer`, given the `X-Forwarded-For` header values in the
/// order they arrived.
pub fn forwarded_client<'h>(
    peer: IpAddr,
    trusted: &[IpNet],
    forwarded_for: impl Iterator<Item = &'h str>,
) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|value| value.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(address) = parse_hop(hop) else {
            break;
        };
        client = address;
        if !is_trusted(&address) {
            break;
        }
    }
    client
}

/// One entry of the header: a bare address, as proxies write it (a port or
/// brackets, which some write, are tolerated).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|at| at.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|net| net.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_header_of_an_untrusted_peer_is_ignored() {
        let client = forwarded_client(ip("203.0.113.9"), &[], ["198.51.100.1"].into_iter());
        assert_eq!(client, ip("203.0.113.9"));
        let trusted = nets(&["10.0.0.0/8"]);
        let client = forwarded_client(ip("203.0.113.9"), &trusted, ["198.51.100.1"].into_iter());
        assert_eq!(client, ip("203.0.113.9"));
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        let client = forwarded_client(ip("10.1.2.3"), &trusted, ["198.51.100.1"].into_iter());
        assert_eq!(client, ip("198.51.100.1"));
    }

    #[test]
    fn addresses_a_client_wrote_left_of_the_real_one_are_not_believed() {
        let trusted = nets(&["10.0.0.0/8"]);
        let header = ["1.2.3.4, 198.51.100.1"];
        let client = forwarded_client(ip("10.1.2.3"), &trusted, header.into_iter());
        assert_eq!(client, ip("198.51.100.1"));
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_through() {
        let trusted = nets(&["10.0.0.0/8", "192.168.0.0/16"]);
        let header = ["198.51.100.1, 192.168.1.1", "10.9.9.9"];
        let client = forwarded_client(ip("10.1.2.3"), &trusted, header.into_iter());
        assert_eq!(client, ip("198.51.100.1"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_good_address() {
        let trusted = nets(&["10.0.0.0/8"]);
        let header = ["198.51.100.1, not-an-address, 10.5.5.5"];
        let client = forwarded_client(ip("10.1.2.3"), &trusted, header.into_iter());
        assert_eq!(client, ip("10.5.5.5"));
        let client = forwarded_client(ip("10.1.2.3"), &trusted, std::iter::empty());
        assert_eq!(client, ip("10.1.2.3"));
    }

    #[test]
    fn ports_and_ipv6_are_understood() {
        let trusted = nets(&["::1/128"]);
        let header = ["[2001:db8::7]:4711"];
        let client = forwarded_client(ip("::1"), &trusted, header.into_iter());
        assert_eq!(client, ip("2001:db8::7"));
        let client = forwarded_client(ip("::1"), &trusted, ["2001:db8::8"].into_iter());
        assert_eq!(client, ip("2001:db8::8"));
    }
}
