//! Throttling of contributor-code guesses. A code is a phrase people can say aloud, so it is
//! short enough to guess at thousands of tries a second; after a few wrong codes from one
//! client address within a window, further tries from it are answered 429 until the window
//! ends. The table of addresses is bounded: past it, the stalest address is forgotten.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Error;

/// Wrong codes one address may give within [`WINDOW`].
pub const MAX_WRONG_CODES: u32 = 5;

/// How long wrong codes are remembered, from the first one.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Client addresses remembered at most.
pub const MAX_CLIENTS: usize = 1024;

/// Wrong codes by client address.
#[derive(Debug, Default)]
pub struct Throttle {
    clients: Mutex<HashMap<IpAddr, Strikes>>,
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    since: Instant,
    wrong: u32,
}

impl Throttle {
    /// Refuses a try from `ip` while it has used up its wrong codes.
    pub fn check(&self, ip: IpAddr) -> Result<(), Error> {
        self.check_at(ip, Instant::now())
    }

    /// Counts a wrong code from `ip`.
    pub fn wrong(&self, ip: IpAddr) {
        self.wrong_at(ip, Instant::now());
    }

    fn check_at(&self, ip: IpAddr, now: Instant) -> Result<(), Error> {
        let clients = self.clients.lock().expect("throttle lock");
        match clients.get(&ip) {
            Some(s) if s.wrong >= MAX_WRONG_CODES && now < s.since + WINDOW => {
                let left = (s.since + WINDOW).saturating_duration_since(now);
                Err(Error::TooManyAttempts(left.as_secs().max(1)))
            }
            _ => Ok(()),
        }
    }

    fn wrong_at(&self, ip: IpAddr, now: Instant) {
        let mut clients = self.clients.lock().expect("throttle lock");
        if !clients.contains_key(&ip) && clients.len() >= MAX_CLIENTS {
            clients.retain(|_, s| now < s.since + WINDOW);
            if clients.len() >= MAX_CLIENTS {
                let stalest = clients
                    .iter()
                    .min_by_key(|(_, s)| s.since)
                    .map(|(ip, _)| *ip);
                if let Some(stalest) = stalest {
                    clients.remove(&stalest);
                }
            }
        }
        let strikes = clients.entry(ip).or_insert(Strikes {
            since: now,
            wrong: 0,
        });
        if now >= strikes.since + WINDOW {
            *strikes = Strikes {
                since: now,
                wrong: 0,
            };
        }
        strikes.wrong += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn wrong_codes_lock_an_address_until_its_window_ends() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for _ in 0..MAX_WRONG_CODES {
            assert!(throttle.check_at(ip(1), start).is_ok());
            throttle.wrong_at(ip(1), start);
        }
        let refused = throttle.check_at(ip(1), start).unwrap_err();
        assert!(matches!(refused, Error::TooManyAttempts(s) if s == WINDOW.as_secs()));
        assert!(
            throttle.check_at(ip(2), start).is_ok(),
            "others are not locked"
        );
        assert!(throttle.check_at(ip(1), start + WINDOW).is_ok());
        throttle.wrong_at(ip(1), start + WINDOW);
        assert!(throttle.check_at(ip(1), start + WINDOW).is_ok());
    }

    #[test]
    fn the_table_stays_bounded() {
        let throttle = Throttle::default();
        let start = Instant::now();
        for n in 0..(MAX_CLIENTS as u32 * 2) {
            throttle.wrong_at(ip(n), start + Duration::from_millis(u64::from(n)));
        }
        assert_eq!(throttle.clients.lock().unwrap().len(), MAX_CLIENTS);
    }
}
