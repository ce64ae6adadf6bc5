//! The order rate limiter: Dhan's (and NSE's) caps on order writes, 10 per second, 250 per
//! minute, 1,000 per hour and 7,000 per day by default (`ORDER_RATE_LIMITS`).
//!
//! Excess orders wait their turn instead of being refused. Each caller *reserves* its send
//! instant when it joins: under a short lock, the earliest instant at which every window has
//! room given every send and reservation before it, which it records, then it sleeps until
//! then. Knowing the turn at once is the point: the webhook answers `202` at once to an alert
//! whose leg will be sent after `ACK_DEADLINE_MS`, instead of holding the connection until the
//! deadline (see [`TurnReporter`]). The windows slide (the last N send instants are kept per
//! window), so no burst at a window's edge can exceed a cap. Real time is used on purpose: the
//! broker counts real time.
//!
//! Order: reservations are made one at a time and each is at or after the one before, so
//! callers go in arrival order, as the fair mutex this replaces let them. Callers given the
//! same instant (room for several at once) are released together, as that mutex released them
//! back to back.
//!
//! Each window is kept [`MARGIN`] longer than its nominal length: requests are counted when
//! they are due to leave, the broker counts them when they arrive, and network jitter (or a
//! caller woken a little after its instant) could otherwise put eleven arrivals into one of
//! the broker's seconds.
//!
//! A caller that gives up while waiting (its task cancelled) leaves its reservation in place:
//! the slot is simply used up. That is conservative (a later caller may wait one slot longer
//! than it had to), never over a cap.
//!
//! Written by hand rather than with `governor`: several windows at once, strict FIFO order,
//! exact sliding windows and knowing each caller's turn in advance are a few lines here, and
//! awkward to combine with a GCRA limiter.

use std::{collections::VecDeque, fmt, sync::Mutex, time::Duration};

use tokio::time::Instant;

/// One cap: at most `max` orders in any `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub max: u32,
    pub per: Duration,
}

impl fmt::Display for Window {
    /// `10/s`, `250/min`, `1000/h`, `7000/day`; other lengths in seconds.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s".to_owned(),
            60 => "min".to_owned(),
            3600 => "h".to_owned(),
            86_400 => "day".to_owned(),
            secs => format!("{secs}s"),
        };
        write!(f, "{}/{unit}", self.max)
    }
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

/// A caller's reserved turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    /// When the order may leave (now, when there is room at once).
    pub at: Instant,
    /// The cap that decided `at`, when the caller has to wait (the latest of the full windows'
    /// openings); `None` when it may go at once.
    pub limited_by: Option<Window>,
}

impl Turn {
    /// Sleeps until the turn has come.
    pub async fn wait(self) {
        tokio::time::sleep_until(self.at).await;
    }
}

#[derive(Debug)]
pub struct RateLimiter {
    windows: Vec<Window>,
    /// Longest window plus [`MARGIN`]: older sends constrain nothing.
    longest: Duration,
    /// Send instants, past and reserved, nondecreasing (each reservation is at or after the
    /// one before it), trimmed to the longest window. A plain mutex: it is held for a few
    /// comparisons and never across an await.
    slots: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    pub fn new(windows: Vec<Window>) -> Self {
        let longest = windows
            .iter()
            .map(|w| w.per + MARGIN)
            .max()
            .unwrap_or_default();
        Self {
            windows,
            longest,
            slots: Mutex::new(VecDeque::new()),
        }
    }

    /// Reserves the caller's turn and counts the order as sent at that instant. The caller must
    /// not send before [`Turn::at`] ([`Turn::wait`]); if it never sends, the slot stays used
    /// (see the module doc).
    pub fn reserve(&self) -> Turn {
        // A poisoned lock only means another caller panicked between two pushes: the slots
        // are still a valid (nondecreasing) list, so they are used as they are.
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        while slots
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.longest)
        {
            slots.pop_front();
        }
        // Every window must have room at the new instant: with the slots sorted, that is
        // "the max-th latest slot has left the window". Not before the last reservation, so
        // turns follow arrival order.
        // (Whenever the last reservation is in the future a window opening is at or after it,
        // so a caller that waits always has the cap that holds it.)
        let mut opening: Option<(Instant, Window)> = None;
        for w in &self.windows {
            let max = w.max as usize;
            if slots.len() >= max {
                let opens = slots[slots.len() - max] + w.per + MARGIN;
                if opening.is_none_or(|(t, _)| opens > t) {
                    opening = Some((opens, *w));
                }
            }
        }
        let last = slots.back().copied().unwrap_or(now);
        let at = opening.map_or(now, |(t, _)| t).max(last).max(now);
        slots.push_back(at);
        Turn {
            at,
            limited_by: opening.filter(|_| at > now).map(|(_, w)| w),
        }
    }

    /// Waits until an order may be sent, and counts it as sent.
    pub async fn acquire(&self) -> Turn {
        let turn = self.reserve();
        turn.wait().await;
        turn
    }
}

/// Tells whoever is waiting for an alert's answer (the webhook handler) when each of its orders
/// will be sent, as soon as the order joins the limiter. Scoped around the alert's pipeline
/// task ([`TurnReporter::scope`]) rather than passed through the pipeline, the placer and the
/// broker trait: only the live broker's send reports, and outside a scope (the queue worker,
/// the reconciler) reporting does nothing.
#[derive(Debug, Clone)]
pub struct TurnReporter(tokio::sync::mpsc::UnboundedSender<QueuedOrder>);

/// One order's reserved turn, as reported.
#[derive(Debug, Clone)]
pub struct QueuedOrder {
    pub correlation_id: String,
    pub turn: Turn,
}

tokio::task_local! {
    static REPORTER: TurnReporter;
}

impl TurnReporter {
    /// A reporter and the receiving end of its reports.
    pub fn new() -> (Self, tokio::sync::mpsc::UnboundedReceiver<QueuedOrder>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (Self(tx), rx)
    }

    /// Runs `work` with this reporter in scope: orders it sends report their turns here.
    pub async fn scope<F: std::future::Future>(self, work: F) -> F::Output {
        REPORTER.scope(self, work).await
    }

    /// Reports a turn to the reporter in scope, if any. Nobody listening is fine: the answer
    /// may already have been given.
    pub fn report(correlation_id: &str, turn: Turn) {
        let _ = REPORTER.try_with(|r| {
            let _ = r.0.send(QueuedOrder {
                correlation_id: correlation_id.to_owned(),
                turn,
            });
        });
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
    fn per_second(max: u32) -> Window {
        Window {
            max,
            per: Duration::from_secs(1),
        }
    }

    /// The turn a caller is given when it joins is the instant it is let go, in join order, and
    /// the cap that holds it is named.
    #[tokio::test(start_paused = true)]
    async fn each_turn_is_known_on_joining_and_kept() {
        let limiter = std::sync::Arc::new(RateLimiter::new(vec![per_second(2)]));
        let start = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..5 {
            let (limiter, tx) = (limiter.clone(), tx.clone());
            tokio::spawn(async move {
                let turn = limiter.acquire().await;
                let _ = tx.send((i, turn, Instant::now()));
            });
            // Each joins before the next is spawned: join order is 0, 1, 2, ...
            tokio::task::yield_now().await;
        }
        drop(tx);
        let mut released = Vec::new();
        while let Some(r) = rx.recv().await {
            released.push(r);
        }
        released.sort_by_key(|(i, _, _)| *i);
        let slot = Duration::from_secs(1) + MARGIN;
        let expected = [0, 0, 1, 1, 2].map(|k| start + slot * k);
        for ((i, turn, at), want) in released.iter().zip(expected) {
            assert_eq!(turn.at, want, "caller {i}'s turn");
            assert_eq!(
                *at, turn.at,
                "caller {i} is let go at its turn, not before or after"
            );
            assert_eq!(
                turn.limited_by,
                (want > start).then(|| per_second(2)),
                "caller {i}"
            );
        }
    }

    /// With several caps, the turn is the latest opening, and the cap named is the one that
    /// decided it.
    #[test]
    fn the_latest_opening_decides_and_is_named() {
        let three_a_minute = Window {
            max: 3,
            per: Duration::from_secs(60),
        };
        let limiter = RateLimiter::new(vec![per_second(2), three_a_minute]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let start = Instant::now();
            let turns: Vec<Turn> = (0..4).map(|_| limiter.reserve()).collect();
            assert_eq!(turns[0].limited_by, None);
            assert_eq!(turns[1].limited_by, None);
            assert_eq!(turns[2].at, start + Duration::from_secs(1) + MARGIN);
            assert_eq!(turns[2].limited_by, Some(per_second(2)));
            assert_eq!(turns[3].at, start + Duration::from_secs(60) + MARGIN);
            assert_eq!(turns[3].limited_by, Some(three_a_minute));
            assert_eq!(three_a_minute.to_string(), "3/min");
            assert_eq!(per_second(10).to_string(), "10/s");
        });
    }

    /// A caller cancelled while it waits keeps its slot: the next one comes after it, never
    /// into it, so no window can go over its cap whatever was cancelled.
    #[tokio::test(start_paused = true)]
    async fn a_cancelled_waiter_uses_up_its_slot() {
        let limiter = std::sync::Arc::new(RateLimiter::new(vec![per_second(1)]));
        let start = Instant::now();
        let first = limiter.acquire().await;
        assert_eq!(first.at, start);
        let waiting = {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.acquire().await })
        };
        tokio::task::yield_now().await;
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
        let slot = Duration::from_secs(1) + MARGIN;
        let third = limiter.acquire().await;
        assert_eq!(
            third.at,
            start + slot * 2,
            "after the cancelled caller's slot"
        );
        assert_eq!(Instant::now(), third.at);
    }
}
