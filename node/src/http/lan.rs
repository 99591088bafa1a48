//! The URLs people open this node at. A node on `0.0.0.0` is reached at each address of this
//! machine's interfaces, which is what its log, and the poster for phones, must show: no phone
//! can open `http://0.0.0.0:7878`.

use std::net::{IpAddr, SocketAddr};

/// The node's URLs, LAN addresses first (IPv4 before IPv6); only loopback's when the API listens
/// there, or when no other interface is up.
pub fn urls(listen: SocketAddr) -> Vec<String> {
    let mut ips: Vec<IpAddr> = if listen.ip().is_unspecified() {
        if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| !i.is_loopback() && !i.is_link_local() && i.is_oper_up())
            .map(|i| i.ip())
            // A socket on 0.0.0.0 takes IPv4 only; one on [::] takes both.
            .filter(|ip| listen.is_ipv6() || ip.is_ipv4())
            .collect()
    } else {
        vec![listen.ip()]
    };
    if ips.is_empty() {
        ips.push(match listen {
            SocketAddr::V4(_) => IpAddr::from([127, 0, 0, 1]),
            SocketAddr::V6(_) => IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
        });
    }
    ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    ips.dedup();
    ips.into_iter()
        .map(|ip| format!("http://{}/", SocketAddr::new(ip, listen.port())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_address_is_its_own_url() {
        let urls = urls("192.0.2.7:7878".parse().expect("address"));
        assert_eq!(urls, ["http://192.0.2.7:7878/"]);
    }

    #[test]
    fn an_unspecified_address_is_never_shown() {
        for listen in ["0.0.0.0:7878", "[::]:7878"] {
            let urls = urls(listen.parse().expect("address"));
            assert!(!urls.is_empty());
            for url in urls {
                assert!(!url.contains("0.0.0.0") && !url.contains("[::]"), "{url}");
                assert!(url.ends_with(":7878/"), "{url}");
            }
        }
    }
}
