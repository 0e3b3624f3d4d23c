//! The SSRF guard for document URLs: only http(s), no loopback, private, link-local, shared,
//! multicast or unspecified addresses, checked on the URL's host, on every address its name
//! resolves to (so DNS cannot smuggle one in) and on every redirect hop. Networks listed in
//! `allow` are let through (an internal document server, the tests' local server).
use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use url::Url;

/// Marks every refusal of the guard in error messages (a refusal is final, not retried).
pub const BLOCKED: &str = "blocked by the URL guard";

#[derive(Debug, Clone, Default)]
pub struct Guard {
    pub allow: Arc<Vec<IpNet>>,
}

/// Why an address is refused, or None when it is public.
fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("unspecified")
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                Some("shared (carrier-grade NAT)")
            } else if v4.is_multicast() || v4.is_broadcast() || o[0] >= 240 {
                Some("multicast or reserved")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64
            // (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::) reach the IPv4 address they carry.
            let v4 = |hi: u16, lo: u16| {
                std::net::Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8)
            };
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden(IpAddr::V4(v4));
            }
            if v6.is_loopback() {
                return Some("loopback");
            }
            if v6.is_unspecified() {
                return Some("unspecified");
            }
            if seg[..6] == [0; 6] || (seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0; 4]) {
                return forbidden(IpAddr::V4(v4(seg[6], seg[7])));
            }
            if seg[0] == 0x2002 {
                return forbidden(IpAddr::V4(v4(seg[1], seg[2])));
            }
            if (seg[0] & 0xffc0) == 0xfe80 {
                Some("link-local")
            } else if (seg[0] & 0xffc0) == 0xfec0 {
                Some("site-local")
            } else if (seg[0] & 0xfe00) == 0xfc00 {
                Some("private (unique local)")
            } else if v6.is_multicast() {
                Some("multicast or reserved")
            } else {
                None
            }
        }
    }
}

impl Guard {
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self {
            allow: Arc::new(allow),
        }
    }

    /// Ok when `ip` may be contacted; else the reason, naming the address.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        match forbidden(ip) {
            Some(kind) => Err(format!("address {ip} is {kind}")),
            None => Ok(()),
        }
    }

    /// Checks what can be checked without DNS: the scheme and an address-literal host.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("scheme {:?} is not http or https", url.scheme()));
        }
        match url.host() {
            None => Err("the URL has no host".into()),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
        }
    }
}

/// Resolves names like the system does, then drops forbidden addresses; a name with nothing
/// left is refused with the addresses it had.
impl Resolve for Guard {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = Vec::new();
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match guard.check_ip(a.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        refused.push(why);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = if refused.is_empty() {
                    format!("{host} does not resolve")
                } else {
                    format!("{host} {BLOCKED}: {}", refused.join(", "))
                };
                return Err(why.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_internal_addresses_unless_allowed() {
        let g = Guard::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(g.check_ip(bad.parse().unwrap()).is_err(), "{bad}");
        }
        for good in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(g.check_ip(good.parse().unwrap()).is_ok(), "{good}");
        }
        let open = Guard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(open.check_ip("127.0.0.1".parse().unwrap()).is_ok());
        assert!(open.check_ip("169.254.169.254".parse().unwrap()).is_err());
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(g.check_url(&u("file:///etc/passwd")).is_err());
        assert!(g.check_url(&u("http://[::1]:80/")).is_err());
        assert!(g.check_url(&u("https://example.com/a.pdf")).is_ok());
    }
}
