//! The order rate limiter: Dhan's (and NSE's) caps on order writes, 10 per second, 250 per
//! minute, 1,000 per hour and 7,000 per day by default (`ORDER_RATE_LIMITS`).
//!
//! Excess orders wait their turn instead of being refused: callers queue on a fair (FIFO)
//! mutex, and whoever holds it sleeps until every window has room, records its send time and
//! lets the next one in. The windows slide (the last N send instants are kept per window), so
//! no burst at a window's edge can exceed a cap. Real time is used on purpose: the broker
//! counts real time.
//!
//! Each window is kept [`MARGIN`] longer than its nominal length: requests are counted when
//! they leave, the broker counts them when they arrive, and network jitter could otherwise put
//! eleven arrivals into one of the broker's seconds.
//!
//! Written by hand rather than with `governor`: several windows at once, strict FIFO order and
//! exact sliding windows are a few lines here, and awkward to combine with a GCRA limiter.

use std::{collections::VecDeque, time::Duration};

use tokio::{sync::Mutex, time::Instant};

/// One cap: at most `max` orders in any `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub max: u32,
    pub per: Duration,
}

/// Parses `10/s,250/m,1000/h,7000/d`.
///
/// # Errors
/// A part that is not `<count>/<s|m|h|d>` with a count of at least 1.
pub fn parse_windows(text: &str) -> Result<Vec<Window>, String> {
    text.split(',')
        .map(|part| {
            let (n, unit) = part
                .trim()
                .split_once('/')
                .ok_or_else(|| format!("'{part}' is not <count>/<s|m|h|d>"))?;
            let max: u32 = n
                .trim()
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("'{n}' is not a count"))?;
            let per = match unit.trim() {
                "s" => Duration::from_secs(1),
                "m" => Duration::from_secs(60),
                "h" => Duration::from_secs(3600),
                "d" => Duration::from_secs(86_400),
                other => return Err(format!("'{other}' is not s, m, h or d")),
            };
            Ok(Window { max, per })
        })
        .collect()
}

/// Dhan's order caps (`dhan-api.md` §5.3).
pub fn dhan_default() -> Vec<Window> {
    vec![
        Window {
            max: 10,
            per: Duration::from_secs(1),
        },
        Window {
            max: 250,
            per: Duration::from_secs(60),
        },
        Window {
            max: 1000,
            per: Duration::from_secs(3600),
        },
        Window {
            max: 7000,
            per: Duration::from_secs(86_400),
        },
    ]
}

/// Added to every window (see the module doc).
pub const MARGIN: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct RateLimiter {
    windows: Vec<Window>,
    /// Send instants, newest last, trimmed to the longest window; the tokio mutex is fair, so
    /// waiting callers are served in arrival order.
    sent: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    pub fn new(windows: Vec<Window>) -> Self {
        Self {
            windows,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    /// Waits until an order may be sent, and counts it as sent.
    pub async fn acquire(&self) {
        let mut sent = self.sent.lock().await;
        loop {
            let now = Instant::now();
            let longest = self
                .windows
                .iter()
                .map(|w| w.per + MARGIN)
                .max()
                .unwrap_or_default();
            while sent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= longest)
            {
                sent.pop_front();
            }
            // For each window: if it is full, room appears when its oldest send leaves it.
            let wait_until = self
                .windows
                .iter()
                .filter_map(|w| {
                    let max = w.max as usize;
                    (sent.len() >= max).then(|| sent[sent.len() - max] + w.per + MARGIN)
                })
                .filter(|t| *t > now)
                .max();
            match wait_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => {
                    sent.push_back(now);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_refuse_nonsense() {
        assert_eq!(
            parse_windows("10/s,250/m,1000/h,7000/d").unwrap(),
            dhan_default()
        );
        assert!(parse_windows("10").is_err());
        assert!(parse_windows("0/s").is_err());
        assert!(parse_windows("5/w").is_err());
    }

    /// With paused time: 25 orders at 10/s wait two (slightly widened) windows, and no 1-second
    /// window ever holds more than 10.
    #[tokio::test(start_paused = true)]
    async fn no_window_ever_exceeds_its_cap_and_excess_waits_in_order() {
        let limiter = std::sync::Arc::new(RateLimiter::new(vec![Window {
            max: 10,
            per: Duration::from_secs(1),
        }]));
        let start = Instant::now();
        let mut stamps = Vec::new();
        for _ in 0..25 {
            limiter.acquire().await;
            stamps.push(Instant::now().duration_since(start));
        }
        for (i, t) in stamps.iter().enumerate() {
            let in_window = stamps
                .iter()
                .filter(|u| **u >= *t && **u < *t + Duration::from_secs(1))
                .count();
            assert!(
                in_window <= 10,
                "window starting at order {i} holds {in_window}"
            );
        }
        assert_eq!(
            stamps[24],
            2 * (Duration::from_secs(1) + MARGIN),
            "orders 21-25 wait two windows"
        );
        assert!(
            stamps.windows(2).all(|w| w[0] <= w[1]),
            "first come, first served"
        );
    }
}
