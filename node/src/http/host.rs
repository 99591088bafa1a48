//! Which `Host` a request may name. A web page can point a name it controls at this node's
//! address (DNS rebinding) and then read and write through the visitor's browser as if it
//! were on the LAN; the browser still sends the attacker's name as `Host`. So the node answers
//! only requests addressed to itself: loopback names, the address it listens on, an address of
//! one of this machine's interfaces (when it listens beyond loopback), this machine's name
//! (`<hostname>`, `<hostname>.local`) and the names the operator lists. Anything else is 421.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::Error;

/// Names every node answers to.
const LOOPBACK_NAMES: [&str; 2] = ["localhost", "localhost.localdomain"];

/// Where Linux keeps the machine's name.
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

/// The `Host` values this node answers.
#[derive(Debug, Clone)]
pub struct Hosts {
    /// The API's listen address.
    listen: SocketAddr,
    /// Lower-case names without a trailing dot: the machine's and the operator's.
    names: Vec<String>,
}

impl Hosts {
    /// The hosts of a node listening on `listen`, with the operator's extra names.
    pub fn new(listen: SocketAddr, extra: &[String]) -> Hosts {
        let mut names: Vec<String> = extra.iter().map(|n| normal(n)).collect();
        if let Ok(name) = std::fs::read_to_string(HOSTNAME_FILE) {
            let name = normal(name.trim());
            if !name.is_empty() {
                names.push(format!("{name}.local"));
                names.push(name);
            }
        }
        Hosts { listen, names }
    }

    /// Whether a request naming `host` (a `Host` header's value) is addressed to this node.
    pub fn allows(&self, host: &str) -> bool {
        let name = normal(strip_port(host));
        if LOOPBACK_NAMES.contains(&name.as_str()) || self.names.contains(&name) {
            return true;
        }
        let literal = match name.strip_prefix('[') {
            Some(v6) => match v6.strip_suffix(']') {
                Some(v6) => v6,
                None => return false,
            },
            None => name.as_str(),
        };
        let Ok(ip) = literal.parse::<IpAddr>() else {
            return false;
        };
        if ip.is_loopback() || ip == self.listen.ip() {
            return true;
        }
        let beyond_loopback = !self.listen.ip().is_loopback();
        beyond_loopback && is_local(ip)
    }
}

/// Whether `ip` is an address of one of this machine's interfaces: only those can be bound.
fn is_local(ip: IpAddr) -> bool {
    !ip.is_unspecified() && !ip.is_multicast() && UdpSocket::bind((ip, 0)).is_ok()
}

/// A host name as compared: lower case, without the root's trailing dot.
fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// `name:port`, `[v6]:port`, `name` or `[v6]` without the port.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Answers 421 to a request whose `Host` is missing or not this node, before anything else.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    match host {
        Some(host) if state.hosts.allows(host) => next.run(request).await,
        Some(host) => ApiError::from(Error::Misdirected(format!(
            "this node does not answer to the host {host:?}"
        )))
        .into_response(),
        None => ApiError::from(Error::Misdirected("a request needs a Host header".into()))
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_node_answers_loopback_names_only() {
        let hosts = Hosts::new("127.0.0.1:7878".parse().unwrap(), &[]);
        for host in [
            "localhost",
            "localhost:7878",
            "LOCALHOST.:80",
            "127.0.0.1:7878",
            "127.0.0.1",
            "[::1]:7878",
            "[::1]",
        ] {
            assert!(hosts.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:7878",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "",
            "[::1",
        ] {
            assert!(!hosts.allows(host), "{host}");
        }
    }

    #[test]
    fn lan_node_answers_its_addresses_and_the_operators_names() {
        let hosts = Hosts::new("0.0.0.0:7878".parse().unwrap(), &["Minga.Local".into()]);
        assert!(hosts.allows("minga.local:7878"));
        assert!(hosts.allows("127.0.0.1:7878"));
        // The address it was told to listen on, as `api.addr` says it.
        assert!(hosts.allows("0.0.0.0:7878"));
        assert!(!hosts.allows("224.0.0.1"));
        // TEST-NET-3: no machine's interface.
        assert!(!hosts.allows("203.0.113.7:7878"));
        assert!(!hosts.allows("evil.example"));
    }

    #[test]
    fn ports_are_stripped_only_when_numeric() {
        assert_eq!(strip_port("a.b:80"), "a.b");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("a.b:x"), "a.b:x");
    }
}
