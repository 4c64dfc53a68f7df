//! Who the client is when Nezuko sits behind reverse proxies: `Forwarded` (RFC 7239) or, without
//! it, `X-Forwarded-For` and `X-Forwarded-Proto` are believed only from the proxies the operator
//! trusts (`server.trusted_proxies`). Anyone can write those headers; believing them from anyone
//! would let a client pick the address its sign-in failures count against and the audit log
//! records.
//!
//! The client is found from the nearest hop outwards, as nginx's `real_ip_recursive` does: the
//! peer, if trusted, vouches for the last address it appended; that one, if also a trusted proxy,
//! for the one before; the first address that is not a trusted proxy is the client. A hop the
//! headers do not name (missing, `unknown`, an obfuscated identifier, an unparsable list) ends the
//! walk at the last trusted proxy, which then stands for its clients: the conservative answer.

use std::net::{IpAddr, SocketAddr};

use forwarded_header_value::{ForwardedHeaderValue, Protocol};
use ipnet::IpNet;
use warp::http::HeaderMap;

/// The proxies whose forwarding headers are believed (`server.trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// The client of one request as far as Nezuko can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// `None` when the connection has no peer address (not over TCP).
    pub ip: Option<IpAddr>,
    /// The client reached the proxy over https (told by a trusted proxy).
    pub https: bool,
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|network| network.contains(&ip))
    }

    /// The client of a request that came from `peer` with `headers`.
    pub fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Client {
        let Some(peer) = peer.map(|p| p.ip().to_canonical()) else {
            return Client {
                ip: None,
                https: false,
            };
        };
        if !self.trusts(peer) {
            return Client {
                ip: Some(peer),
                https: false,
            };
        }
        let chain = forwarded_chain(headers);
        let mut client = peer;
        for hop in chain.iter().flat_map(|chain| chain.iter().rev()) {
            match hop.forwarded_for_ip() {
                Some(ip) => client = ip.to_canonical(),
                None => break,
            }
            if !self.trusts(client) {
                break;
            }
        }
        Client {
            ip: Some(client),
            https: https(headers, chain.as_ref()),
        }
    }
}

/// Every value of the list header `name`, joined as one list (RFC 9110 §5.3).
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// The hops the headers name, client first: `Forwarded` if present, else `X-Forwarded-For`.
fn forwarded_chain(headers: &HeaderMap) -> Option<ForwardedHeaderValue> {
    match joined(headers, "forwarded") {
        Some(value) => ForwardedHeaderValue::from_forwarded(&value).ok(),
        None => joined(headers, "x-forwarded-for")
            .and_then(|value| ForwardedHeaderValue::from_x_forwarded_for(&value).ok()),
    }
}

/// Whether the nearest trusted proxy says the client used https: `proto` of the last `Forwarded`
/// element, or the last `X-Forwarded-Proto` value.
fn https(headers: &HeaderMap, chain: Option<&ForwardedHeaderValue>) -> bool {
    if let Some(proto) = chain.and_then(|c| c.proximate().forwarded_proto) {
        return proto == Protocol::Https;
    }
    joined(headers, "x-forwarded-proto")
        .and_then(|value| {
            value
                .rsplit(',')
                .next()
                .map(|p| p.trim().to_ascii_lowercase())
        })
        .is_some_and(|proto| proto == "https")
}

#[cfg(test)]
mod tests {
    use warp::http::HeaderValue;

    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        let network = |text: &str| {
            text.parse::<IpNet>()
                .unwrap_or_else(|_| IpNet::from(text.parse::<IpAddr>().unwrap()))
        };
        TrustedProxies::new(list.iter().map(|n| network(n)).collect())
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 40_000))
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn headers_from_an_untrusted_peer_are_ignored() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let forged = headers(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        let client = trusted.client(peer("203.0.113.9"), &forged);
        assert_eq!(client.ip, ip("203.0.113.9"));
        assert!(!client.https);
        // Trusting nobody (the default) believes nobody.
        let client = TrustedProxies::default().client(peer("10.0.0.1"), &forged);
        assert_eq!(client.ip, ip("10.0.0.1"));
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_nearest_one() {
        let trusted = proxies(&["10.0.0.0/8", "::1/128"]);
        // A client spoofing an address in front of its real one is seen as its real one.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
        let client = trusted.client(peer("10.0.0.1"), &chain);
        assert_eq!(client.ip, ip("198.51.100.7"));
        // Several header lines are one list; an IPv4-mapped peer is its IPv4 address.
        let lines = headers(&[
            ("x-forwarded-for", "198.51.100.8"),
            ("x-forwarded-for", "10.0.0.3"),
        ]);
        let mapped = Some("[::ffff:10.0.0.1]:5000".parse().unwrap());
        assert_eq!(trusted.client(mapped, &lines).ip, ip("198.51.100.8"));
        // All hops trusted: the farthest named one.
        let inside = headers(&[("x-forwarded-for", "10.0.0.5, 10.0.0.6")]);
        assert_eq!(trusted.client(peer("::1"), &inside).ip, ip("10.0.0.5"));
    }

    #[test]
    fn forwarded_is_preferred_and_a_hop_it_cannot_name_stops_the_walk() {
        let trusted = proxies(&["10.0.0.1"]);
        let both = headers(&[
            (
                "forwarded",
                "for=198.51.100.7;proto=https, for=\"[2001:db8::17]:4711\"",
            ),
            ("x-forwarded-for", "6.6.6.6"),
        ]);
        let client = trusted.client(peer("10.0.0.1"), &both);
        assert_eq!(client.ip, ip("2001:db8::17"));
        let obfuscated = headers(&[("forwarded", "for=_hidden, for=unknown")]);
        assert_eq!(
            trusted.client(peer("10.0.0.1"), &obfuscated).ip,
            ip("10.0.0.1")
        );
        let garbage = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(
            trusted.client(peer("10.0.0.1"), &garbage).ip,
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_scheme_is_the_nearest_proxys_word() {
        let trusted = proxies(&["10.0.0.1"]);
        let proto = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", "http, https"),
        ]);
        assert!(trusted.client(peer("10.0.0.1"), &proto).https);
        let forwarded = headers(&[("forwarded", "for=198.51.100.7;proto=http")]);
        assert!(!trusted.client(peer("10.0.0.1"), &forwarded).https);
    }
}
