//! The order tracker: follows every leg the broker holds past ACCEPTED to its final state, by
//! polling the broker.
//!
//! A leg ACCEPTED (Dhan received it), PENDING (resting) or PART_TRADED that has a broker order
//! id is looked up by that id ([`Broker::order_state`]; when many are due in one pass, the
//! day's order book in one call, [`Broker::order_states`]). The first look comes
//! `first_look` after the leg last moved, then the wait doubles up to `max_interval`; a leg
//! that moves starts again from `first_look`. Each change the broker reports is journaled with
//! the source `poll` (status, filled quantity, average price, exchange order id and time,
//! reason) and its alert's status re-derived; a leg reaching its final state (FILLED, i.e.
//! Dhan's TRADED, REJECTED, CANCELLED, EXPIRED) gets one more CSV row and is no longer looked
//! at. Neither is a leg whose trading day is over (its venue's close, from [`Calendar`], plus
//! `after_close` for the exchange's end-of-day cancellations).
//!
//! One tracker polls at a time across the instances sharing the journal (the `order-tracker`
//! lease, held while it runs and renewed once half of it has passed; the others try to take
//! it every half lease). The backoff is kept in memory: an
//! instance taking over starts every leg from its first look.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Duration, Utc};
use tokio_util::sync::CancellationToken;

use super::{lease::HeldLease, leg_progress::LegProgress};
use crate::{
    broker::{Broker, OrderState},
    clock::{Clock, ist},
    market::{Calendar, Venue},
    store::{Journal, JournalError, Leases, LegSource, OrderRow, TrackJournal},
};

/// How often the tracker wakes to see which legs are due.
const TICK: Duration = Duration::seconds(1);
/// How long the tracker's lease lasts without renewal.
const LEASE_FOR: Duration = Duration::seconds(30);
/// The lease's name in the journal.
const LEASE: &str = "order-tracker";
/// Legs read per pass.
const BATCH: u32 = 500;
/// Legs that moved longer ago than this are not read at all (every trading day, even across
/// a long holiday, has ended by then).
const LOOK_BACK: Duration = Duration::days(10);

/// Orders a postback named (see [`crate::http`]'s `/dhan/postback`): looked up at the next
/// pass, whatever their schedule. Shared by the HTTP layer and the tracker; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct PostbackHints {
    orders: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    wake: Arc<tokio::sync::Notify>,
}

impl PostbackHints {
    /// Most hints kept at once: a flood of forged postbacks cannot grow memory.
    const MAX: usize = 1000;

    /// Asks for `order_id` to be looked up now.
    pub fn hint(&self, order_id: &str) {
        let mut orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        if orders.len() < Self::MAX {
            orders.insert(order_id.to_owned());
        }
        drop(orders);
        self.wake.notify_one();
    }

    fn take(&self) -> std::collections::HashSet<String> {
        std::mem::take(&mut *self.orders.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// How the tracker polls (mapped from the settings by `startup`).
#[derive(Debug, Clone)]
pub struct TrackRules {
    /// The first look at a leg, after it last moved.
    pub first_look: std::time::Duration,
    /// The longest wait between two looks at a leg.
    pub max_interval: std::time::Duration,
    /// More legs due than this in one pass: one order-book call instead of one call each.
    pub book_above: usize,
    /// How long after its trading day's close a leg is still looked at.
    pub after_close: std::time::Duration,
}

/// The parts of the journal the tracker uses.
#[derive(Debug, Clone)]
pub struct TrackerJournal {
    /// The legs open at the broker.
    pub legs: Arc<dyn TrackJournal>,
    /// One tracker at a time across instances.
    pub leases: Arc<dyn Leases>,
}

impl TrackerJournal {
    pub fn of(journal: &Arc<dyn Journal>) -> Self {
        Self {
            legs: journal.clone(),
            leases: journal.clone(),
        }
    }
}

/// When a leg is next looked at.
#[derive(Debug, Clone)]
struct Schedule {
    /// The leg's `updated_at` this schedule was made for (a move starts a new one).
    moved_at: DateTime<Utc>,
    next: DateTime<Utc>,
    gap: Duration,
}

/// The order tracker worker.
#[derive(Debug)]
pub struct OrderTracker {
    journal: TrackerJournal,
    broker: Arc<dyn Broker>,
    calendar: Arc<Calendar>,
    clock: Arc<dyn Clock>,
    rules: TrackRules,
    /// Journals each move (with the CSV row and the notification of a final state).
    progress: LegProgress,
    /// Orders a postback named since the last pass.
    hints: PostbackHints,
    schedules: HashMap<(String, u32), Schedule>,
    /// One tracker polls at a time across instances.
    lease: HeldLease,
}

fn duration(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

impl OrderTracker {
    pub fn new(
        journal: TrackerJournal,
        broker: Arc<dyn Broker>,
        calendar: Arc<Calendar>,
        clock: Arc<dyn Clock>,
        rules: TrackRules,
        progress: LegProgress,
    ) -> Self {
        Self {
            journal,
            broker,
            calendar,
            clock,
            rules,
            progress,
            hints: PostbackHints::default(),
            schedules: HashMap::new(),
            lease: HeldLease::new(LEASE, LEASE_FOR),
        }
    }

    /// Where postbacks leave their hints for this tracker.
    pub fn postback_hints(&self) -> PostbackHints {
        self.hints.clone()
    }

    /// One pass: looks up the legs that are due and journals what changed. Returns the legs
    /// that moved, as journaled.
    ///
    /// # Errors
    /// The journal failed.
    pub async fn track_once(&mut self) -> Result<Vec<OrderRow>, JournalError> {
        let now = self.clock.now();
        let rows = self
            .journal
            .legs
            .legs_to_track(now - LOOK_BACK, BATCH)
            .await?;
        let open: std::collections::HashSet<_> =
            rows.iter().map(|r| (r.alert_id.clone(), r.leg)).collect();
        self.schedules.retain(|k, _| open.contains(k));
        let hinted = self.hints.take();
        let due: Vec<(OrderRow, LegSource)> = rows
            .into_iter()
            .filter_map(|row| {
                let on_hint = row.order_id.as_ref().is_some_and(|o| hinted.contains(o));
                if on_hint {
                    Some((row, LegSource::Postback))
                } else {
                    self.is_due(&row, now).then_some((row, LegSource::Poll))
                }
            })
            .collect();
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let book = if due.len() > self.rules.book_above {
            match self.broker.order_states().await {
                Ok(states) => Some(states),
                Err(e) => {
                    tracing::warn!(error = %e, "order tracker: the order book could not be read; will retry");
                    return Ok(Vec::new());
                }
            }
        } else {
            None
        };
        let mut looked_up = Vec::with_capacity(due.len());
        for (row, source) in due {
            let Some(order_id) = row.order_id.clone() else {
                continue;
            };
            let state = match &book {
                Some(states) => states.iter().find(|s| s.order_id == order_id).cloned(),
                None => match self.broker.order_state(&order_id).await {
                    Ok(state) => state,
                    Err(e) => {
                        tracing::warn!(alert_id = %row.alert_id, leg = row.leg, error = %e, "order tracker: lookup failed; will retry");
                        self.looked(&row, now);
                        continue;
                    }
                },
            };
            self.looked(&row, now);
            looked_up.push((row, state, source));
        }
        // Recorded side by side: the journal commits moves that arrive together at once
        // (one fsync for the pass on SQLite, see `store::writer`).
        let recorded = futures_util::future::join_all(
            looked_up
                .iter()
                .map(|(row, state, source)| self.apply(row, state.clone(), *source)),
        )
        .await;
        let mut moved = Vec::new();
        for result in recorded {
            if let Some(row) = result? {
                moved.push(row);
            }
        }
        Ok(moved)
    }

    /// Whether `row` is to be looked at now: its next look has come and its trading day is
    /// not over.
    fn is_due(&mut self, row: &OrderRow, now: DateTime<Utc>) -> bool {
        if self.day_over(row, now) {
            return false;
        }
        let first = duration(self.rules.first_look);
        let schedule = self
            .schedules
            .entry((row.alert_id.clone(), row.leg))
            .or_insert_with(|| Schedule {
                moved_at: row.updated_at,
                next: row.updated_at + first,
                gap: first,
            });
        if schedule.moved_at != row.updated_at {
            *schedule = Schedule {
                moved_at: row.updated_at,
                next: row.updated_at + first,
                gap: first,
            };
        }
        now >= schedule.next
    }

    /// Pushes the leg's next look back: the wait doubles, up to `max_interval`.
    fn looked(&mut self, row: &OrderRow, now: DateTime<Utc>) {
        let max = duration(self.rules.max_interval);
        if let Some(s) = self.schedules.get_mut(&(row.alert_id.clone(), row.leg)) {
            s.gap = (s.gap * 2).min(max);
            s.next = now + s.gap;
        }
    }

    /// The leg's trading day is over: past the close (plus `after_close`) of the first
    /// session of its venue that ends after the leg last moved. A venue the calendar does not
    /// know keeps being looked at until `LOOK_BACK`.
    fn day_over(&self, row: &OrderRow, now: DateTime<Utc>) -> bool {
        let Some(venue) = row
            .exchange_segment
            .as_deref()
            .and_then(Venue::from_segment)
        else {
            return false;
        };
        let from = ist(row.updated_at).date_naive();
        let close = (0..=10)
            .filter_map(|d| from.checked_add_signed(Duration::days(d)))
            .filter_map(|date| {
                self.calendar
                    .sessions_on(venue, date)
                    .last()
                    .map(|(_, c)| *c)
            })
            .find(|close| *close > row.updated_at);
        close.is_some_and(|close| now > close + duration(self.rules.after_close))
    }

    /// Journals what the broker says of `row`, if it moved. `None`: nothing to record.
    async fn apply(
        &self,
        row: &OrderRow,
        state: Option<OrderState>,
        source: LegSource,
    ) -> Result<Option<OrderRow>, JournalError> {
        let Some(state) = state else {
            tracing::debug!(alert_id = %row.alert_id, leg = row.leg, "order tracker: the broker does not show the order");
            return Ok(None);
        };
        self.progress.record(row, &state, source).await
    }

    /// Holds the tracker's lease and polls every `TICK` until `stop`.
    pub async fn run_until_stopped(mut self, stop: CancellationToken) {
        loop {
            let now = self.clock.now();
            if self.lease.hold(self.journal.leases.as_ref(), now).await {
                match self.track_once().await {
                    Ok(moved) if !moved.is_empty() => {
                        tracing::info!(legs = moved.len(), "order tracker: legs moved");
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "order tracker pass failed"),
                }
            } else {
                // Another instance polls; its schedules are its own.
                self.schedules.clear();
            }
            let next = self.clock.now() + TICK;
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.clock.sleep_until(next) => {}
                // A postback's hint is looked at now, not at the next tick.
                () = self.hints.wake.notified() => {}
            }
        }
        self.lease.release(self.journal.leases.as_ref()).await;
    }
}
