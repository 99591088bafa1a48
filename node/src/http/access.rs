//! Who may write. On loopback only (the default) every local client may; once the API listens
//! beyond loopback, reads stay open to the LAN and every write needs a credential: the token in
//! the data dir (`api.token`, for the CLI on the same machine), or the operator's contributor
//! code (sent as `X-Contributor-Code`, or entered once in the web form and then kept as a
//! session cookie). Browsers' cross-site writes are refused everywhere by their `Origin`.
//!
//! The operator (bundles, the `/operator` page) is every local client of a loopback-only node,
//! else whoever holds the data dir's token: as `Authorization: Bearer`, or entered once in the
//! operator page's form and then kept as an operator session cookie.
//!
//! Who may read what is private: the same credential. An anonymous reader on the LAN sees only
//! what may leave the node ([`Visibility::Shareable`]); see [`Access::visibility`].

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::throttle::Throttle;
use super::{ApiError, AppState};
use crate::Error;
use crate::queries::Visibility;

/// The cookie of a contributor's session.
pub const SESSION_COOKIE: &str = "minga_session";

/// The cookie of an operator's session, opened with the data dir's token.
pub const OPERATOR_COOKIE: &str = "minga_operator";

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
    /// Live contributor session ids, oldest first.
    sessions: Sessions,
    /// Live operator session ids: their holders gave the token.
    operators: Sessions,
    /// Wrong contributor codes by client address.
    throttle: Throttle,
}

impl Access {
    pub fn new(open: bool, token: String, code: Option<String>) -> Access {
        Access {
            open,
            token,
            code: code.filter(|c| !c.is_empty()),
            sessions: Sessions::default(),
            operators: Sessions::default(),
            throttle: Throttle::default(),
        }
    }

    /// Whether writes from anyone who reaches the API are allowed.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// The operator's contributor code, to show on the operator's page.
    pub fn contributor_code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// Whether a request with these headers is the operator's: on a loopback-only API anyone
    /// who reaches it, else only with the data dir's token as `Authorization: Bearer`, or an
    /// operator session opened with it.
    pub fn is_operator(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        self.open
            || bearer.is_some_and(|t| same(t.trim(), &self.token))
            || self.operators.hold(headers, OPERATOR_COOKIE)
    }

    /// Whether a request with these headers may write without a contributor code: the
    /// operator, or a contributor's session.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        self.is_operator(headers) || self.sessions.hold(headers, SESSION_COOKIE)
    }

    /// What a request with these headers may read: everything for whoever may write (every
    /// client of a loopback-only node, a LAN client with a credential), else only what may leave
    /// the node, so private entries and unconsented histories stay with the node's own users.
    /// A code given on a read is judged by [`Access::admit`], so reads are no unthrottled way
    /// to guess it.
    pub fn visibility(&self, headers: &HeaderMap, client: IpAddr) -> Visibility {
        if self.admit(headers, client).is_ok() {
            Visibility::All
        } else {
            Visibility::Shareable
        }
    }

    /// Lets an API write through, or says why not: 403 without a credential, 429 once
    /// `client` has given too many wrong codes.
    pub fn admit(&self, headers: &HeaderMap, client: IpAddr) -> Result<(), Error> {
        if self.allows(headers) {
            return Ok(());
        }
        if let Some(given) = headers.get(CODE_HEADER).and_then(|v| v.to_str().ok()) {
            self.throttle.check(client)?;
            if self.code.as_deref().is_some_and(|code| same(given, code)) {
                return Ok(());
            }
            self.throttle.wrong(client);
        }
        Err(Error::Forbidden(
            "writes from the network need this node's contributor code".into(),
        ))
    }

    /// A new session for whoever gave the right contributor code; `None` for a wrong one, an
    /// error once `client` has given too many.
    pub fn login(&self, given: &str, client: IpAddr) -> Result<Option<String>, Error> {
        self.throttle.check(client)?;
        let Some(code) = self.code.as_deref() else {
            return Ok(None);
        };
        if !same(given.trim(), code) {
            self.throttle.wrong(client);
            return Ok(None);
        }
        Ok(Some(self.sessions.open()))
    }

    /// A new operator session for whoever gave the data dir's token; `None` for a wrong one,
    /// an error once `client` has given too many wrong codes or tokens (one throttle for both).
    pub fn operator_login(&self, given: &str, client: IpAddr) -> Result<Option<String>, Error> {
        self.throttle.check(client)?;
        if !same(given.trim(), &self.token) {
            self.throttle.wrong(client);
            return Ok(None);
        }
        Ok(Some(self.operators.open()))
    }
}

/// Live session ids, oldest first; the oldest is forgotten past [`MAX_SESSIONS`].
#[derive(Debug, Default)]
struct Sessions(Mutex<VecDeque<String>>);

impl Sessions {
    /// A new session id, remembered.
    fn open(&self) -> String {
        let session = random_hex();
        let mut sessions = self.0.lock().expect("sessions lock");
        if sessions.len() == MAX_SESSIONS {
            sessions.pop_front();
        }
        sessions.push_back(session.clone());
        session
    }

    /// Whether the cookie `name` of these headers holds a live session.
    fn hold(&self, headers: &HeaderMap, name: &str) -> bool {
        cookie(headers, name).is_some_and(|session| {
            let sessions = self.0.lock().expect("sessions lock");
            sessions.iter().any(|s| same(s, session))
        })
    }
}

/// Refuses API writes without a credential (403), and any write a browser sends from another
/// site, whose `Origin` is not this node.
pub async fn guard(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
    if !reads.contains(request.method()) {
        if !same_origin(request.headers()) {
            return ApiError::from(Error::Forbidden(
                "a write from another site's page is refused".into(),
            ))
            .into_response();
        }
        if let Err(refused) = state.access.admit(request.headers(), client.ip()) {
            return ApiError::from(refused).into_response();
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

    const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 9));

    #[test]
    fn lan_writes_need_a_credential() {
        let access = Access::new(false, "t0k".into(), Some("minga-2026".into()));
        assert!(access.admit(&headers(&[]), CLIENT).is_err());
        assert!(
            access
                .admit(&headers(&[(CODE_HEADER, "wrong")]), CLIENT)
                .is_err()
        );
        assert!(
            access
                .admit(&headers(&[(CODE_HEADER, "minga-2026")]), CLIENT)
                .is_ok()
        );
        assert!(access.allows(&headers(&[("authorization", "Bearer t0k")])));
        assert!(access.login("nope", CLIENT).unwrap().is_none());
        let session = access.login("minga-2026", CLIENT).unwrap().unwrap();
        let cookie = format!("a=b; {SESSION_COOKIE}={session}");
        assert!(access.allows(&headers(&[("cookie", &cookie)])));
        assert!(!access.allows(&headers(&[("cookie", "minga_session=forged")])));
    }

    #[test]
    fn only_credentials_read_private_entries_on_the_lan() {
        let lan = Access::new(false, "t0k".into(), Some("minga-2026".into()));
        assert_eq!(lan.visibility(&headers(&[]), CLIENT), Visibility::Shareable);
        assert_eq!(
            lan.visibility(&headers(&[(CODE_HEADER, "wrong")]), CLIENT),
            Visibility::Shareable
        );
        assert_eq!(
            lan.visibility(&headers(&[(CODE_HEADER, "minga-2026")]), CLIENT),
            Visibility::All
        );
        let loopback = Access::new(true, "t0k".into(), None);
        assert_eq!(loopback.visibility(&headers(&[]), CLIENT), Visibility::All);
    }

    #[test]
    fn no_code_means_no_lan_writes() {
        let access = Access::new(false, "t0k".into(), None);
        assert!(access.login("", CLIENT).unwrap().is_none());
        assert!(
            access
                .admit(&headers(&[(CODE_HEADER, "")]), CLIENT)
                .is_err()
        );
    }

    #[test]
    fn only_the_token_makes_the_operator_beyond_loopback() {
        let access = Access::new(false, "t0k".into(), Some("minga-2026".into()));
        assert!(access.is_operator(&headers(&[("authorization", "Bearer t0k")])));
        assert!(!access.is_operator(&headers(&[(CODE_HEADER, "minga-2026")])));
        let session = access.login("minga-2026", CLIENT).unwrap().unwrap();
        let cookie = format!("{SESSION_COOKIE}={session}");
        assert!(!access.is_operator(&headers(&[("cookie", &cookie)])));
        assert!(Access::new(true, "t0k".into(), None).is_operator(&headers(&[])));
    }

    #[test]
    fn the_token_opens_an_operator_session_a_code_does_not() {
        let access = Access::new(false, "t0k".into(), Some("minga-2026".into()));
        assert!(
            access
                .operator_login("minga-2026", CLIENT)
                .unwrap()
                .is_none()
        );
        let session = access.operator_login(" t0k\n", CLIENT).unwrap().unwrap();
        let cookie = format!("{OPERATOR_COOKIE}={session}");
        assert!(access.is_operator(&headers(&[("cookie", &cookie)])));
        assert!(access.allows(&headers(&[("cookie", &cookie)])));
        // A contributor's session is no operator's, nor the other way round by name.
        let contributor = access.login("minga-2026", CLIENT).unwrap().unwrap();
        let swapped = format!("{OPERATOR_COOKIE}={contributor}");
        assert!(!access.is_operator(&headers(&[("cookie", &swapped)])));
        assert!(!access.is_operator(&headers(&[("cookie", "minga_operator=forged")])));
    }

    #[test]
    fn code_guesses_are_throttled_per_client() {
        let access = Access::new(false, "t0k".into(), Some("minga-2026".into()));
        let wrong = headers(&[(CODE_HEADER, "guess")]);
        for _ in 0..super::super::throttle::MAX_WRONG_CODES {
            assert!(matches!(
                access.admit(&wrong, CLIENT),
                Err(Error::Forbidden(_))
            ));
        }
        let right = headers(&[(CODE_HEADER, "minga-2026")]);
        assert!(matches!(
            access.admit(&right, CLIENT),
            Err(Error::TooManyAttempts(_))
        ));
        assert!(matches!(
            access.login("minga-2026", CLIENT),
            Err(Error::TooManyAttempts(_))
        ));
        let other = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 10));
        assert!(access.admit(&right, other).is_ok());
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
