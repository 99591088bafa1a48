//! Who may write. On loopback only (the default) every local client may; once the API listens
//! beyond loopback, reads stay open to the LAN and every write needs a credential: the token in
//! the data dir (`api.token`, for the CLI on the same machine), or the operator's contributor
//! code (sent as `X-Contributor-Code`, or entered once in the web form and then kept as a
//! session cookie). Browsers' cross-site writes are refused everywhere by their `Origin`.
//!
//! Who may read what is private: the same credential. An anonymous reader on the LAN sees only
//! what may leave the node ([`Visibility::Shareable`]); see [`Access::visibility`].

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::Error;
use crate::queries::Visibility;

/// The cookie of a contributor's session.
pub const SESSION_COOKIE: &str = "minga_session";

/// The header that carries the contributor code on API writes.
pub const CODE_HEADER: &str = "x-contributor-code";

/// Sessions remembered; the oldest is forgotten past this (its holder enters the code again).
const MAX_SESSIONS: usize = 1024;

/// The node's write policy.
#[derive(Debug)]
pub struct Access {
    /// Writes need no credential: the API listens on loopback only.
    open: bool,
    /// The data dir's token (hex).
    token: String,
    /// The operator's contributor code; with none, LAN clients cannot write at all.
    code: Option<String>,
    /// Live session ids, oldest first.
    sessions: Mutex<VecDeque<String>>,
}

impl Access {
    pub fn new(open: bool, token: String, code: Option<String>) -> Access {
        Access {
            open,
            token,
            code: code.filter(|c| !c.is_empty()),
            sessions: Mutex::new(VecDeque::new()),
        }
    }

    /// Whether writes from anyone who reaches the API are allowed.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// Whether a request with these headers may write.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        if self.open {
            return true;
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|t| same(t.trim(), &self.token)) {
            return true;
        }
        let code = headers.get(CODE_HEADER).and_then(|v| v.to_str().ok());
        if let (Some(given), Some(code)) = (code, &self.code)
            && same(given, code)
        {
            return true;
        }
        match cookie(headers, SESSION_COOKIE) {
            Some(session) => {
                let sessions = self.sessions.lock().expect("sessions lock");
                sessions.iter().any(|s| same(s, session))
            }
            None => false,
        }
    }

    /// What a request with these headers may read: everything for whoever may write (every
    /// client of a loopback-only node, a LAN client with a credential), else only what may leave
    /// the node, so private entries and unconsented histories stay with the node's own users.
    pub fn visibility(&self, headers: &HeaderMap) -> Visibility {
        if self.allows(headers) {
            Visibility::All
        } else {
            Visibility::Shareable
        }
    }

    /// A new session for whoever gave the right contributor code.
    pub fn login(&self, given: &str) -> Option<String> {
        let code = self.code.as_deref()?;
        if !same(given.trim(), code) {
            return None;
        }
        let session = random_hex();
        let mut sessions = self.sessions.lock().expect("sessions lock");
        if sessions.len() == MAX_SESSIONS {
            sessions.pop_front();
        }
        sessions.push_back(session.clone());
        Some(session)
    }
}

/// Refuses API writes without a credential (403), and any write a browser sends from another
/// site, whose `Origin` is not this node.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
    if !reads.contains(request.method()) {
        if !same_origin(request.headers()) {
            return ApiError::from(Error::Forbidden(
                "a write from another site's page is refused".into(),
            ))
            .into_response();
        }
        if !state.access.allows(request.headers()) {
            return ApiError::from(Error::Forbidden(
                "writes from the network need this node's contributor code".into(),
            ))
            .into_response();
        }
    }
    next.run(request).await
}

/// No `Origin` (not a browser), or one naming the host the request was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((origin_host, host), (Some(o), Some(h)) if o == h)
}

/// A cookie's value.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

/// 32 random bytes as hex: tokens, sessions, CSRF tokens.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the system's random source");
    hex::encode(bytes)
}

/// Equality that takes as long whatever the first difference, so a guess learns nothing.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn lan_writes_need_a_credential() {
        let access = Access::new(false, "t0k".into(), Some("minga-2026".into()));
        assert!(!access.allows(&headers(&[])));
        assert!(!access.allows(&headers(&[(CODE_HEADER, "wrong")])));
        assert!(access.allows(&headers(&[(CODE_HEADER, "minga-2026")])));
        assert!(access.allows(&headers(&[("authorization", "Bearer t0k")])));
        assert!(access.login("nope").is_none());
        let session = access.login("minga-2026").unwrap();
        let cookie = format!("a=b; {SESSION_COOKIE}={session}");
        assert!(access.allows(&headers(&[("cookie", &cookie)])));
        assert!(!access.allows(&headers(&[("cookie", "minga_session=forged")])));
    }

    #[test]
    fn only_credentials_read_private_entries_on_the_lan() {
        let lan = Access::new(false, "t0k".into(), Some("minga-2026".into()));
        assert_eq!(lan.visibility(&headers(&[])), Visibility::Shareable);
        assert_eq!(
            lan.visibility(&headers(&[(CODE_HEADER, "wrong")])),
            Visibility::Shareable
        );
        assert_eq!(
            lan.visibility(&headers(&[(CODE_HEADER, "minga-2026")])),
            Visibility::All
        );
        let loopback = Access::new(true, "t0k".into(), None);
        assert_eq!(loopback.visibility(&headers(&[])), Visibility::All);
    }

    #[test]
    fn no_code_means_no_lan_writes() {
        let access = Access::new(false, "t0k".into(), None);
        assert!(access.login("").is_none());
        assert!(!access.allows(&headers(&[(CODE_HEADER, "")])));
    }

    #[test]
    fn cross_site_writes_are_spotted() {
        assert!(same_origin(&headers(&[("host", "10.0.0.2:7878")])));
        assert!(same_origin(&headers(&[
            ("host", "10.0.0.2:7878"),
            ("origin", "http://10.0.0.2:7878")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:7878"),
            ("origin", "https://evil.example")
        ])));
    }
}
