//! Wrong secrets and admin tokens, counted per client IP: a guesser is slowed down and the log
//! stays small, while the right secret always gets through.
//!
//! - Past [`MAX_FAILURES`] wrong ones in a minute from one IP, further wrong ones from it get
//!   `429` for [`COOL_OFF`]. The check comes *after* the secret is compared: a correct secret is
//!   never refused, so an attacker behind the same proxy (every client sharing one IP without
//!   `TRUSTED_PROXIES`) cannot lock TradingView out.
//! - Refusals are logged as summaries: the first from an IP at once, then at most one line a
//!   minute with the count ("N refused from IP in the last minute"), never one line each.
//! - At most [`MAX_TRACKED`] addresses are remembered; the oldest are forgotten first.

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Wrong secrets (or admin tokens) per IP per [`WINDOW`] before the cool-off.
pub const MAX_FAILURES: usize = 20;
const WINDOW: Duration = Duration::from_secs(60);
/// How long an IP's wrong attempts get 429 once it passed [`MAX_FAILURES`].
pub const COOL_OFF: Duration = Duration::from_secs(300);
/// How many client addresses are tracked at once.
const MAX_TRACKED: usize = 10_000;
/// At most one summary line per IP this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// What to answer a wrong attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The usual 401.
    Unauthorized,
    /// Too many from this IP: 429, retry after this long.
    Throttled(Duration),
}

#[derive(Debug, Default)]
struct Record {
    failures: VecDeque<Instant>,
    blocked_until: Option<Instant>,
    last_logged: Option<Instant>,
    unlogged: u32,
    last_seen: Option<Instant>,
}

/// The per-IP counts. Cheap to share (one mutex, held for microseconds).
#[derive(Debug, Default)]
pub struct AuthGuard {
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl AuthGuard {
    /// Records a wrong secret or admin token (`what`) from `ip` and says what to answer.
    pub fn wrong(&self, ip: IpAddr, what: &str) -> Verdict {
        self.wrong_at(ip, what, Instant::now())
    }

    fn wrong_at(&self, ip: IpAddr, what: &str, now: Instant) -> Verdict {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        if records.len() >= MAX_TRACKED && !records.contains_key(&ip) {
            forget_oldest(&mut records);
        }
        let r = records.entry(ip).or_default();
        r.last_seen = Some(now);
        while r
            .failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            r.failures.pop_front();
        }
        r.failures.push_back(now);
        if r.failures.len() > MAX_FAILURES && r.blocked_until.is_none_or(|until| until <= now) {
            r.blocked_until = Some(now + COOL_OFF);
        }
        r.unlogged += 1;
        if r.last_logged
            .is_none_or(|at| now.duration_since(at) >= LOG_EVERY)
        {
            if r.last_logged.is_none() {
                tracing::warn!(client_ip = %ip, "{what} refused: missing or wrong (further refusals from this address are summarised once a minute)");
            } else {
                tracing::warn!(client_ip = %ip, refused = r.unlogged, "{} {what} refusals from {ip} in the last minute", r.unlogged);
            }
            r.last_logged = Some(now);
            r.unlogged = 0;
        }
        match r.blocked_until {
            Some(until) if until > now => Verdict::Throttled(until - now),
            _ => Verdict::Unauthorized,
        }
    }
}

fn forget_oldest(records: &mut HashMap<IpAddr, Record>) {
    // Rare (only past MAX_TRACKED distinct addresses): a linear scan is fine.
    let oldest = records
        .iter()
        .min_by_key(|(_, r)| r.last_seen)
        .map(|(ip, _)| *ip);
    if let Some(ip) = oldest {
        records.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_throttled_past_the_limit_and_freed_after_the_cool_off() {
        let guard = AuthGuard::default();
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let other: IpAddr = "203.0.113.8".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            let at = t0 + Duration::from_millis(i as u64);
            assert_eq!(guard.wrong_at(ip, "secret", at), Verdict::Unauthorized);
        }
        let at = t0 + Duration::from_secs(1);
        assert!(matches!(
            guard.wrong_at(ip, "secret", at),
            Verdict::Throttled(_)
        ));
        assert_eq!(
            guard.wrong_at(other, "secret", at),
            Verdict::Unauthorized,
            "other addresses are not affected"
        );
        // Still throttled during the cool-off, free after it.
        let during = t0 + COOL_OFF - Duration::from_secs(1);
        assert!(matches!(
            guard.wrong_at(ip, "secret", during),
            Verdict::Throttled(_)
        ));
        let after = during + COOL_OFF + WINDOW + Duration::from_secs(1);
        assert_eq!(guard.wrong_at(ip, "secret", after), Verdict::Unauthorized);
    }

    #[test]
    fn the_number_of_tracked_addresses_is_bounded() {
        let guard = AuthGuard::default();
        let now = Instant::now();
        for i in 0..(MAX_TRACKED + 50) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000_u32 + i as u32));
            guard.wrong_at(ip, "secret", now + Duration::from_micros(i as u64));
        }
        assert_eq!(guard.records.lock().unwrap().len(), MAX_TRACKED);
    }
}
