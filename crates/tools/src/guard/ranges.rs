//! Which addresses are not the public internet: loopback, private,
//! link-local, carrier-grade NAT, multicast, broadcast, unspecified and the
//! other ranges IANA marks as not globally reachable, for IPv4 and IPv6.
//! IPv6 forms that carry an IPv4 address (mapped, NAT64, 6to4) are judged by
//! that address, so `::ffff:127.0.0.1` is loopback like `127.0.0.1`.

use ipnet::{Ipv4Net, Ipv6Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(segments: [u16; 8], len: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

const PRIVATE_V4: [Ipv4Net; 11] = [
    v4(0, 0, 0, 0, 8),      // "this network", the unspecified address
    v4(10, 0, 0, 0, 8),     // private
    v4(100, 64, 0, 0, 10),  // carrier-grade NAT
    v4(127, 0, 0, 0, 8),    // loopback
    v4(169, 254, 0, 0, 16), // link-local (cloud metadata services live here)
    v4(172, 16, 0, 0, 12),  // private
    v4(192, 0, 0, 0, 24),   // IETF protocol assignments
    v4(192, 168, 0, 0, 16), // private
    v4(198, 18, 0, 0, 15),  // benchmarking
    v4(224, 0, 0, 0, 4),    // multicast
    v4(240, 0, 0, 0, 4),    // reserved, and the broadcast address
];

const PRIVATE_V6: [Ipv6Net; 7] = [
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96), // unspecified, loopback, IPv4-compatible
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), // local-use NAT64
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), // discard-only
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), // unique local
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), // link-local
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), // site-local (deprecated)
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), // multicast
];

/// Well-known NAT64: the last 32 bits are an IPv4 address.
const NAT64: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
/// 6to4: bits 16..48 are an IPv4 address.
const SIX_TO_FOUR: Ipv6Net = v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16);

/// Whether `ip` is an address no outbound call may reach unless the
/// operator allows it.
pub fn is_private(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(ip) => PRIVATE_V4.iter().any(|net| net.contains(&ip)),
        IpAddr::V6(ip) => match embedded_v4(ip) {
            Some(inner) => PRIVATE_V4.iter().any(|net| net.contains(&inner)),
            None => PRIVATE_V6.iter().any(|net| net.contains(&ip)),
        },
    }
}

/// The IPv4 address a NAT64 or 6to4 address stands for: a gateway would
/// forward to it, so it is judged as that address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = ip.to_bits();
    if NAT64.contains(&ip) {
        return Some(Ipv4Addr::from_bits(bits as u32));
    }
    if SIX_TO_FOUR.contains(&ip) {
        return Some(Ipv4Addr::from_bits((bits >> 80) as u32));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private(text: &str) -> bool {
        is_private(text.parse().unwrap())
    }

    #[test]
    fn refuses_every_non_public_ipv4_range() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(private(ip), "{ip} should be private");
        }
    }

    #[test]
    fn lets_public_ipv4_through_including_range_neighbours() {
        for ip in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "128.0.0.1",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert!(!private(ip), "{ip} should be public");
        }
    }

    #[test]
    fn refuses_every_non_public_ipv6_range() {
        for ip in [
            "::",
            "::1",
            "::127.0.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "64:ff9b:1::1",
            // Forms carrying a private IPv4 address.
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::1",
            "2002:c0a8:101::",
        ] {
            assert!(private(ip), "{ip} should be private");
        }
    }

    #[test]
    fn lets_public_ipv6_through() {
        for ip in [
            "2001:4860:4860::8888",
            "2606:4700::1111",
            "fbff:ffff::1",
            "fe00::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!private(ip), "{ip} should be public");
        }
    }
}
