//! The network addresses a webhook endpoint must not reach unless an operator allows
//! it: loopback, private, link-local, cloud metadata and the IPv6 forms that carry them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is one a webhook must not reach by default (a request forged to the
/// service's own network, or to a cloud's metadata service, which hands out
/// credentials), or `None` for a public address.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => non_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => non_public_v4(v4),
            None => non_public_v6(ip),
        },
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    // AWS, GCP and Azure (169.254.169.254), Alibaba (100.100.100.200), Azure's
    // WireServer (168.63.129.16, a public address), Oracle's legacy one (192.0.0.192).
    let metadata = [
        Ipv4Addr::new(169, 254, 169, 254),
        Ipv4Addr::new(100, 100, 100, 200),
        Ipv4Addr::new(168, 63, 129, 16),
        Ipv4Addr::new(192, 0, 0, 192),
    ];
    if metadata.contains(&ip) {
        Some("a cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if (a, b, c) == (192, 0, 0) || (a == 198 && (18..20).contains(&b)) {
        Some("a reserved address")
    } else if matches!((a, b, c), (192, 0, 2) | (198, 51, 100) | (203, 0, 113)) {
        Some("a documentation address")
    } else if ip.is_unspecified() || ip.is_broadcast() || a == 0 {
        Some("not a routable address")
    } else if ip.is_multicast() || a >= 240 {
        Some("not a unicast address")
    } else {
        None
    }
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let first = segments[0];
    let v4 = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    // IPv6 forms that carry an IPv4 address are checked by that address: IPv4-compatible
    // (::a.b.c.d), NAT64 (64:ff9b::/96, which a DNS64 resolver hands out for names whose
    // only address is IPv4) and 6to4 (2002:a.b.c.d::/48).
    if segments[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        return non_public_v4(v4(segments[6], segments[7]));
    }
    // SIIT's IPv4-translated form, ::ffff:0:a.b.c.d.
    if segments[..6] == [0, 0, 0, 0, 0xffff, 0] {
        return non_public_v4(v4(segments[6], segments[7]));
    }
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return non_public_v4(v4(segments[6], segments[7]));
    }
    if first == 0x2002 {
        return non_public_v4(v4(segments[1], segments[2]));
    }
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        Some("a cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if first & 0xffc0 == 0xfec0 {
        Some("a site-local address")
    } else if (segments[0], segments[1]) == (0x64, 0xff9b) {
        Some("a local-use NAT64 address")
    } else if (segments[0], segments[1]) == (0x2001, 0) {
        Some("a Teredo address")
    } else if first == 0 {
        // The rest of ::/16, reserved (the IPv4-mapped block is checked above, by its
        // IPv4 address).
        Some("not a routable address")
    } else if ip.is_unspecified() {
        Some("not a routable address")
    } else if ip.is_multicast() {
        Some("not a unicast address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_private_link_local_and_metadata_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "224.0.0.1",
            "168.63.129.16",
            "192.0.0.192",
            "198.18.0.1",
            "203.0.113.7",
            "::127.0.0.1",
            "::a9fe:a9fe",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:a00:1::1",
            "2002:7f00:1::",
            "2001:0:4136:e378::1",
            "fec0::1",
            "::ffff:0:a00:1",
            "::1:0:0:1",
        ] {
            assert!(non_public(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "100.128.0.1",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
        ] {
            assert_eq!(non_public(ip.parse().unwrap()), None, "{ip}");
        }
        assert_eq!(
            non_public("169.254.169.254".parse().unwrap()),
            Some("a cloud metadata address")
        );
    }
}
