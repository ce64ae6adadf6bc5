//! The durable queue: alerts routed to "queue" wait in the journal (secret already removed)
//! and run once at their market's next open, oldest first, through the same placement path as
//! any alert (token, broker, journal, CSV).
//!
//! Exactly once: an alert is *claimed* (the journal records this instance as its holder, in a
//! single statement), and each leg is marked SUBMITTING (committed) before its broker call.
//! After a crash, claimed alerts whose legs are still QUEUED go back to the queue; a leg that
//! reached SUBMITTING is never placed again by the queue (its fate is looked up, not guessed).
//! Alerts older than `QUEUE_MAX_AGE` when their turn comes are expired and reported, never
//! placed days later. When a claimed alert's market turns out to be closed after all (a
//! restart late in the day), it is put back until the next open.

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::{
    clock::{Clock, ist},
    domain::AmoTime,
    market::{self, AmoWindow, Calendar, Route, Venue, WhenClosed},
    notify::Event,
    pipeline::{LegPlacer, leg_from_row},
    store::{
        AlertJournal, AlertStatus, JournalError, LegDetail, LegSource, LegStatus, LegUpdate,
        OrderRow, QueueJournal,
    },
};

/// A claim older than this belongs to a run that died (a live run places an alert's legs in
/// seconds).
const STALE_CLAIM: chrono::Duration = chrono::Duration::minutes(2);

/// How soon the queue runner tries again after a journal error.
const JOURNAL_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// What became of a claimed alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueVerdict {
    /// Run: the alert's status from its legs.
    Queued,
    Processing,
    Placed,
    Partial,
    Rejected,
    /// Older than `QUEUE_MAX_AGE` when its turn came: refused, never placed.
    Expired,
    /// Its market was closed after all: back in the queue until the next open.
    Requeued,
    /// The journal no longer has it.
    Missing,
}

impl QueueVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueVerdict::Queued => "queued",
            QueueVerdict::Processing => "processing",
            QueueVerdict::Placed => "placed",
            QueueVerdict::Partial => "partial",
            QueueVerdict::Rejected => "rejected",
            QueueVerdict::Expired => "expired",
            QueueVerdict::Requeued => "requeued",
            QueueVerdict::Missing => "missing",
        }
    }
}

impl std::fmt::Display for QueueVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<AlertStatus> for QueueVerdict {
    fn from(status: AlertStatus) -> Self {
        match status {
            AlertStatus::Queued => QueueVerdict::Queued,
            AlertStatus::Processing => QueueVerdict::Processing,
            AlertStatus::Placed => QueueVerdict::Placed,
            AlertStatus::Partial => QueueVerdict::Partial,
            AlertStatus::Rejected => QueueVerdict::Rejected,
        }
    }
}

/// What happened to one claimed alert.
#[derive(Debug, Clone, Serialize)]
pub struct QueueResult {
    pub alert_id: String,
    pub status: QueueVerdict,
    pub message: Option<String>,
}

/// The settings the queue applies (`QUEUE_MAX_AGE`, `AMO_WINDOW`, `AMO_TIME`).
#[derive(Debug, Clone)]
pub struct QueueRules {
    /// Alerts older than this when their turn comes are expired, never placed days late.
    pub max_age: std::time::Duration,
    pub amo_window: AmoWindow,
    pub amo_time: AmoTime,
}

/// The queue worker. Cheap to clone (shared handles).
#[derive(Debug, Clone)]
pub struct QueueRunner {
    /// Claims, requeues and the queue's view.
    queue: Arc<dyn QueueJournal>,
    /// Reading the claimed alert and moving its legs.
    alerts: Arc<dyn AlertJournal>,
    placer: LegPlacer,
    clock: Arc<dyn Clock>,
    calendar: Arc<Calendar>,
    rules: QueueRules,
    /// Woken by admission when an alert is queued.
    wake: Arc<Notify>,
    /// This process's name as the holder of a queue claim.
    instance: Arc<str>,
}

impl QueueRunner {
    pub fn new(
        queue: Arc<dyn QueueJournal>,
        alerts: Arc<dyn AlertJournal>,
        placer: LegPlacer,
        clock: Arc<dyn Clock>,
        calendar: Arc<Calendar>,
        rules: QueueRules,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            queue,
            alerts,
            placer,
            clock,
            calendar,
            rules,
            wake,
            instance: uuid::Uuid::now_v7().to_string().into(),
        }
    }

    /// Runs every queued alert that is due now. Returns what happened to each.
    ///
    /// # Errors
    /// The journal failed; alerts already handled stay handled.
    pub async fn process_due(&self) -> Result<Vec<QueueResult>, JournalError> {
        let mut results = Vec::new();
        while let Some(alert_id) = self
            .queue
            .claim_due(&self.instance, self.clock.now())
            .await?
        {
            results.push(self.run_claimed(&alert_id).await?);
        }
        Ok(results)
    }

    /// Puts alerts claimed by a crashed run back in the queue (see the module doc): claims
    /// older than [`STALE_CLAIM`], since a live run finishes an alert in seconds.
    ///
    /// # Errors
    /// The journal failed.
    pub async fn recover_queue(&self) -> Result<u64, JournalError> {
        let now = self.clock.now();
        let n = self.queue.recover_claims(now - STALE_CLAIM, now).await?;
        if n > 0 {
            tracing::warn!(
                alerts = n,
                "queued alerts claimed before a crash are back in the queue"
            );
        }
        Ok(n)
    }

    /// Sleeps until the earliest queued alert is due (or a new one is queued), runs what is
    /// due, and repeats until `stop` is cancelled.
    pub async fn run_until_stopped(self, stop: CancellationToken) {
        loop {
            // A journal error (busy, briefly unreachable) is retried in seconds, not at the
            // next scheduled wake: queued alerts are due at the open, minutes matter.
            let mut failed = false;
            // Cheap, and covers a claim left by an instance that died while this one runs.
            if let Err(e) = self.recover_queue().await {
                tracing::error!(error = %e, "queue recovery failed; retrying shortly");
                failed = true;
            }
            match self.process_due().await {
                Ok(results) => {
                    for r in &results {
                        tracing::info!(alert_id = %r.alert_id, status = %r.status, "queued alert run");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "running the queue failed; retrying shortly");
                    failed = true;
                }
            }
            let next = match self.queue.next_queued_at().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "reading the queue failed; retrying shortly");
                    failed = true;
                    None
                }
            };
            if failed {
                // Real time: a retry pause, not a market time. Never a hot loop on a due alert
                // the journal cannot claim.
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(JOURNAL_RETRY) => continue,
                }
            }
            // Wake at the next due alert, and at least every few minutes for recovery.
            let latest = self.clock.now() + STALE_CLAIM;
            let at = next.map_or(latest, |n| n.min(latest));
            let sleep = self.clock.sleep_until(at);
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = sleep => {}
            }
        }
    }

    async fn run_claimed(&self, alert_id: &str) -> Result<QueueResult, JournalError> {
        let now = self.clock.now();
        let Some(record) = self.alerts.alert(alert_id).await? else {
            return Ok(result(alert_id, QueueVerdict::Missing, None));
        };
        let queued: Vec<&OrderRow> = record
            .legs
            .iter()
            .filter(|l| l.status == LegStatus::Queued)
            .collect();
        let age = now - record.received_at;
        let max_age =
            chrono::Duration::from_std(self.rules.max_age).unwrap_or(chrono::Duration::MAX);
        if age > max_age {
            let why = format!(
                "expired in the queue: received {} IST, older than QUEUE_MAX_AGE; not placed",
                ist(record.received_at).format("%Y-%m-%d %H:%M")
            );
            tracing::warn!(%alert_id, "{why}");
            self.reject_legs(alert_id, &record.alert_type, &queued, &why)
                .await?;
            self.finish(alert_id).await?;
            self.placer
                .notifier()
                .send(Event::QueueExpired {
                    alert_id: alert_id.to_owned(),
                    detail: why.clone(),
                })
                .await;
            return Ok(result(alert_id, QueueVerdict::Expired, Some(why)));
        }

        let venues: Vec<Venue> = queued
            .iter()
            .filter_map(|l| l.exchange_segment.as_deref().and_then(Venue::from_segment))
            .collect();
        let route = market::route(
            now,
            &venues,
            WhenClosed::Queue,
            self.rules.amo_window,
            self.rules.amo_time,
            &self.calendar,
        );
        match route {
            Route::Now | Route::Amo { .. } => {}
            Route::Queue { until } => {
                self.queue.requeue(alert_id, until, now).await?;
                let msg = format!(
                    "market closed; back in the queue until {} IST",
                    ist(until).format("%Y-%m-%d %H:%M")
                );
                return Ok(result(alert_id, QueueVerdict::Requeued, Some(msg)));
            }
            Route::Reject { reason } => {
                let why = format!("not placed: {reason}");
                self.reject_legs(alert_id, &record.alert_type, &queued, &why)
                    .await?;
                self.finish(alert_id).await?;
                return Ok(result(alert_id, QueueVerdict::Rejected, Some(why)));
            }
        }

        self.placer.wait_for_reconciliation().await;
        for row in queued {
            let mut row = row.clone();
            match leg_from_row(&row, false) {
                Ok(leg) => self.placer.place(alert_id, &leg, &mut row).await,
                Err(why) => {
                    self.reject_legs(alert_id, &record.alert_type, &[&row], &why)
                        .await?;
                    continue;
                }
            }
            self.placer.log_csv(&record.alert_type, &row);
        }
        let status = self.finish(alert_id).await?;
        Ok(result(alert_id, status.into(), None))
    }

    async fn reject_legs(
        &self,
        alert_id: &str,
        alert_type: &str,
        legs: &[&OrderRow],
        why: &str,
    ) -> Result<(), JournalError> {
        for row in legs {
            let update = LegUpdate {
                status: LegStatus::Rejected,
                broker_order_id: None,
                fill_price: None,
                message: Some(why.to_owned()),
            };
            self.alerts
                .transition_leg(
                    alert_id,
                    row.leg,
                    &update,
                    &LegDetail::default(),
                    LegSource::Queue,
                    self.clock.now(),
                )
                .await?;
            let mut row = (*row).clone();
            row.status = LegStatus::Rejected;
            row.message = Some(why.to_owned());
            self.placer.log_csv(alert_type, &row);
        }
        Ok(())
    }

    /// Records the alert's status from its legs as journaled now, and ends the run's claim.
    async fn finish(&self, alert_id: &str) -> Result<AlertStatus, JournalError> {
        let legs = self
            .alerts
            .alert(alert_id)
            .await?
            .map(|r| r.legs)
            .unwrap_or_default();
        let status = AlertStatus::from_legs(legs.iter().map(|l| l.status));
        self.alerts
            .set_alert_status(alert_id, status, self.clock.now())
            .await?;
        self.queue.release_claim(alert_id, &self.instance).await?;
        Ok(status)
    }
}

fn result(alert_id: &str, status: QueueVerdict, message: Option<String>) -> QueueResult {
    QueueResult {
        alert_id: alert_id.to_owned(),
        status,
        message,
    }
}
