//! The client's address and scheme behind trusted reverse proxies.
//!
//! `X-Forwarded-For` is a list each proxy appends its peer to, so only its right end is
//! trustworthy: everything left of the first hop we do not trust may have been written
//! by the client. The headers are therefore believed only when the TCP peer is in
//! `server.trusted_proxies`, and the list is walked from the right, skipping trusted
//! hops; the first untrusted hop is the client. A malformed entry stops the walk at the
//! last address we validated, because nothing to its left can be placed.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The address to attribute the request to: the peer, or — when the peer is a trusted
/// proxy — the right-most untrusted `X-Forwarded-For` hop.
#[must_use]
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut current = peer;
    // Header lines are one list in order; walk the last line first.
    for line in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(line) = line.to_str() else {
            return current;
        };
        for entry in line.rsplit(',') {
            let Some(hop) = parse_hop(entry) else {
                return current;
            };
            if !is_trusted(hop, trusted) {
                return hop;
            }
            current = hop;
        }
    }
    // Every hop was a trusted proxy: the left-most one is the best we know.
    current
}

/// `http` or `https` from `X-Forwarded-Proto`, believed only from a trusted peer; the
/// right-most value is the one the peer itself vouches for. Anything else is `None`.
#[must_use]
pub fn forwarded_proto(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<&'static str> {
    if !is_trusted(peer.to_canonical(), trusted) {
        return None;
    }
    let last_line = headers.get_all("x-forwarded-proto").iter().next_back()?;
    let value = last_line.to_str().ok()?.rsplit(',').next()?.trim();
    if value.eq_ignore_ascii_case("https") {
        Some("https")
    } else if value.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`1.2.3.4:5`,
/// `[::1]:5`), as some proxies write it.
fn parse_hop(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().expect("cidr")).collect()
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", l.parse().expect("header value"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    const PROXY: &str = "10.0.0.5";

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let h = xff(&["203.0.113.9"]);
        assert_eq!(
            client_ip(ip("198.51.100.1"), &h, &nets(&["10.0.0.0/8"])),
            ip("198.51.100.1")
        );
        assert_eq!(client_ip(ip("198.51.100.1"), &h, &[]), ip("198.51.100.1"));
    }

    #[test]
    fn a_trusted_peer_forwards_the_right_most_untrusted_hop() {
        let h = xff(&["203.0.113.9, 198.51.100.7"]);
        assert_eq!(
            client_ip(ip(PROXY), &h, &nets(&["10.0.0.0/8"])),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn client_written_left_most_entries_are_ignored() {
        // The client sent "X-Forwarded-For: 1.1.1.1"; the proxy appended the real peer.
        let h = xff(&["1.1.1.1, 127.0.0.1, 203.0.113.9"]);
        assert_eq!(
            client_ip(ip(PROXY), &h, &nets(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn trusted_hops_are_skipped_from_the_right() {
        let h = xff(&["203.0.113.9, 10.1.1.1", "10.2.2.2"]);
        assert_eq!(
            client_ip(ip(PROXY), &h, &nets(&["10.0.0.0/8"])),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_malformed_entry_stops_at_the_last_validated_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = xff(&["203.0.113.9, garbage, 10.1.1.1"]);
        assert_eq!(client_ip(ip(PROXY), &h, &trusted), ip("10.1.1.1"));
        let h = xff(&["203.0.113.9, unknown"]);
        assert_eq!(client_ip(ip(PROXY), &h, &trusted), ip(PROXY));
        let h = xff(&["203.0.113.9,"]);
        assert_eq!(client_ip(ip(PROXY), &h, &trusted), ip(PROXY));
    }

    #[test]
    fn a_non_text_header_stops_the_walk_at_the_peer() {
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"1.2.3.4\xff").expect("opaque bytes"),
        );
        assert_eq!(client_ip(ip(PROXY), &h, &nets(&["10.0.0.0/8"])), ip(PROXY));
    }

    #[test]
    fn ports_and_mapped_addresses_are_understood() {
        let trusted = nets(&["10.0.0.0/8", "fd00::/8"]);
        let h = xff(&["[2001:db8::1]:443, 10.0.0.9:8080"]);
        assert_eq!(client_ip(ip("fd00::1"), &h, &trusted), ip("2001:db8::1"));
        // A dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
        let h = xff(&["::ffff:203.0.113.9"]);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.5"), &h, &trusted),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn all_trusted_hops_yield_the_left_most() {
        let h = xff(&["10.9.9.9, 10.1.1.1"]);
        assert_eq!(
            client_ip(ip(PROXY), &h, &nets(&["10.0.0.0/8"])),
            ip("10.9.9.9")
        );
        assert_eq!(
            client_ip(ip(PROXY), &HeaderMap::new(), &nets(&["10.0.0.0/8"])),
            ip(PROXY)
        );
    }

    #[test]
    fn forwarded_proto_is_believed_only_from_trusted_peers() {
        let trusted = nets(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", "https".parse().expect("value"));
        assert_eq!(forwarded_proto(ip(PROXY), &h, &trusted), Some("https"));
        assert_eq!(forwarded_proto(ip("203.0.113.9"), &h, &trusted), None);
        h.insert("x-forwarded-proto", "http, HTTPS".parse().expect("value"));
        assert_eq!(forwarded_proto(ip(PROXY), &h, &trusted), Some("https"));
        h.insert("x-forwarded-proto", "gopher".parse().expect("value"));
        assert_eq!(forwarded_proto(ip(PROXY), &h, &trusted), None);
        assert_eq!(
            forwarded_proto(ip(PROXY), &HeaderMap::new(), &trusted),
            None
        );
    }
}
