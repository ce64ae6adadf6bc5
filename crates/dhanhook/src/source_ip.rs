//! Who is calling: the client address behind trusted proxies, and whether it may send alerts.
//!
//! - `TRUSTED_PROXIES` (IPs and CIDRs) names the peers whose `X-Forwarded-For` is believed
//!   (Cloud Run's front end, Caddy, nginx). With none, the TCP peer is the client and the header
//!   is ignored: anyone can write it. Behind trusted proxies the client is the right-most
//!   address in the header that is not itself a trusted proxy.
//! - `ALLOWED_IPS` (IPs and CIDRs; the word `tradingview` stands for TradingView's published
//!   webhook addresses) limits who may post `/webhook`; off by default.
//!
//! The address these rules produce is the one the journal, the logs and the failed-secret
//! counts use.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// TradingView's published webhook source addresses (`shared/docs/peers.md` §3).
pub const TRADINGVIEW_IPS: [&str; 4] = [
    "52.89.214.238",
    "34.212.75.30",
    "54.218.53.128",
    "52.32.178.7",
];

/// Parses a list of IPs and CIDRs separated by commas or spaces; `tradingview` expands to
/// [`TRADINGVIEW_IPS`] when `allow_preset`.
///
/// # Errors
/// The first entry that is neither, as a message.
pub fn parse_networks(text: &str, allow_preset: bool) -> Result<Vec<IpNet>, String> {
    let mut out = Vec::new();
    for item in text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
    {
        if allow_preset && item.eq_ignore_ascii_case("tradingview") {
            out.extend(
                TRADINGVIEW_IPS
                    .iter()
                    .filter_map(|ip| ip.parse::<IpAddr>().ok().map(IpNet::from)),
            );
        } else if let Ok(net) = item.parse::<IpNet>() {
            out.push(net.trunc());
        } else if let Ok(ip) = item.parse::<IpAddr>() {
            out.push(IpNet::from(ip));
        } else {
            return Err(format!(
                "'{item}' is not an IP address or a CIDR like 10.0.0.0/8"
            ));
        }
    }
    Ok(out)
}

/// The client's address: the TCP peer, or (when the peer is a trusted proxy) the right-most
/// `X-Forwarded-For` entry that is not a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&canonical(*ip)));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for entry in forwarded.iter().rev() {
        let Ok(ip) = entry.parse::<IpAddr>() else {
            // Garbage: stop at the last address a trusted proxy vouched for.
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    canonical(client)
}

/// Whether `ip` may post alerts (`None`: everyone may).
pub fn allowed(ip: IpAddr, allowed: Option<&[IpNet]>) -> bool {
    allowed.is_none_or(|nets| nets.iter().any(|net| net.contains(&canonical(ip))))
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:1.2.3.4`) as the IPv4 it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_header_is_believed_only_from_trusted_proxies() {
        let trusted = parse_networks("10.0.0.0/8, 127.0.0.1", false).unwrap();
        let h = headers(&["52.89.214.238"]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &h, &trusted),
            ip("52.89.214.238")
        );
        assert_eq!(
            client_ip(ip("198.51.100.9"), &h, &trusted),
            ip("198.51.100.9"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            client_ip(ip("127.0.0.1"), &h, &[]),
            ip("127.0.0.1"),
            "no trusted proxies: the peer"
        );
        // A client that writes its own X-Forwarded-For: the right-most untrusted entry wins.
        let spoofed = headers(&["52.89.214.238, 198.51.100.9", "10.1.2.3"]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &spoofed, &trusted),
            ip("198.51.100.9")
        );
        let garbage = headers(&["not-an-ip"]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &garbage, &trusted),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn lists_parse_with_the_tradingview_preset_and_refuse_garbage() {
        let nets = parse_networks("tradingview 192.0.2.0/24", true).unwrap();
        assert_eq!(nets.len(), 5);
        assert!(allowed(ip("34.212.75.30"), Some(&nets)));
        assert!(allowed(ip("192.0.2.77"), Some(&nets)));
        assert!(allowed(ip("::ffff:52.32.178.7"), Some(&nets)));
        assert!(!allowed(ip("198.51.100.1"), Some(&nets)));
        assert!(allowed(ip("198.51.100.1"), None));
        assert!(parse_networks("tradingview", false).is_err());
        assert!(parse_networks("10.0.0.0/33", true).is_err());
    }
}
