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

use crate::{
    alert::LegOrder,
    clock::ist,
    engine::Engine,
    market::{self, Route, Venue, WhenClosed},
    store::{AlertStatus, JournalError, LegStatus, LegUpdate, NewLeg, OrderRow, ResolvedLeg},
};

/// A claim older than this belongs to a run that died (a live run places an alert's legs in
/// seconds).
const STALE_CLAIM: chrono::Duration = chrono::Duration::minutes(2);

/// How soon the queue runner tries again after a journal error.
const JOURNAL_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// What happened to one claimed alert.
#[derive(Debug, Clone, Serialize)]
pub struct QueueResult {
    pub alert_id: String,
    /// `placed`, `partial`, `rejected`, `processing`, `expired` or `requeued`.
    pub status: String,
    pub message: Option<String>,
}

impl Engine {
    /// Runs every queued alert that is due now. Returns what happened to each.
    ///
    /// # Errors
    /// The journal failed; alerts already handled stay handled.
    pub async fn process_due(&self) -> Result<Vec<QueueResult>, JournalError> {
        let mut results = Vec::new();
        while let Some(alert_id) = self
            .journal
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
        let n = self.journal.recover_claims(now - STALE_CLAIM, now).await?;
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
    pub async fn run_queue_until_stopped(self, stop: CancellationToken) {
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
            let next = match self.journal.next_queued_at().await {
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
                () = self.queue_wake.notified() => {}
                () = sleep => {}
            }
        }
    }

    async fn run_claimed(&self, alert_id: &str) -> Result<QueueResult, JournalError> {
        let now = self.clock.now();
        let Some(record) = self.journal.alert(alert_id).await? else {
            return Ok(result(alert_id, "missing", None));
        };
        let queued: Vec<&OrderRow> = record
            .legs
            .iter()
            .filter(|l| l.status == LegStatus::Queued)
            .collect();
        let age = now - record.received_at;
        let max_age =
            chrono::Duration::from_std(self.routing.queue_max_age).unwrap_or(chrono::Duration::MAX);
        if age > max_age {
            let why = format!(
                "expired in the queue: received {} IST, older than QUEUE_MAX_AGE; not placed",
                ist(record.received_at).format("%Y-%m-%d %H:%M")
            );
            tracing::warn!(%alert_id, "{why}");
            self.reject_legs(alert_id, &record.alert_type, &queued, &why)
                .await?;
            self.finish(alert_id).await?;
            return Ok(result(alert_id, "expired", Some(why)));
        }

        let venues: Vec<Venue> = queued
            .iter()
            .filter_map(|l| l.exchange_segment.as_deref().and_then(Venue::from_segment))
            .collect();
        let route = market::route(
            now,
            &venues,
            WhenClosed::Queue,
            self.routing.amo_window,
            self.routing.amo_time,
            &self.calendar,
        );
        match route {
            Route::Now | Route::Amo { .. } => {}
            Route::Queue { until } => {
                self.journal.requeue(alert_id, until, now).await?;
                let msg = format!(
                    "market closed; back in the queue until {} IST",
                    ist(until).format("%Y-%m-%d %H:%M")
                );
                return Ok(result(alert_id, "requeued", Some(msg)));
            }
            Route::Reject { reason } => {
                let why = format!("not placed: {reason}");
                self.reject_legs(alert_id, &record.alert_type, &queued, &why)
                    .await?;
                self.finish(alert_id).await?;
                return Ok(result(alert_id, "rejected", Some(why)));
            }
        }

        self.wait_for_reconciliation().await;
        for row in queued {
            let mut row = row.clone();
            match new_leg(&row, false) {
                Ok(leg) => self.place_leg(alert_id, &leg, &mut row).await,
                Err(why) => {
                    self.reject_legs(alert_id, &record.alert_type, &[&row], &why)
                        .await?;
                    continue;
                }
            }
            self.csv
                .append(&record.alert_type, &row, self.clock.now())
                .await;
        }
        let status = self.finish(alert_id).await?;
        Ok(result(alert_id, status.as_str(), None))
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
            self.journal
                .update_leg(alert_id, row.leg, &update, self.clock.now())
                .await?;
            let mut row = (*row).clone();
            row.status = LegStatus::Rejected;
            row.message = Some(why.to_owned());
            self.csv.append(alert_type, &row, self.clock.now()).await;
        }
        Ok(())
    }

    /// Records the alert's status from its legs as journaled now, and ends the run's claim.
    async fn finish(&self, alert_id: &str) -> Result<AlertStatus, JournalError> {
        let legs = self
            .journal
            .alert(alert_id)
            .await?
            .map(|r| r.legs)
            .unwrap_or_default();
        let status = AlertStatus::from_legs(legs.iter().map(|l| l.status));
        self.journal
            .set_alert_status(alert_id, status, self.clock.now())
            .await?;
        self.journal.release_claim(alert_id, &self.instance).await?;
        Ok(status)
    }
}

fn result(alert_id: &str, status: &str, message: Option<String>) -> QueueResult {
    QueueResult {
        alert_id: alert_id.to_owned(),
        status: status.to_owned(),
        message,
    }
}

/// Rebuilds a placeable leg from its journal row (queued legs are placed from the journal, so a
/// restart loses nothing). Queued legs run at the open as regular orders (`keep_amo` false);
/// a leg routed as an AMO and interrupted before sending stays an AMO.
pub(crate) fn new_leg(row: &OrderRow, keep_amo: bool) -> Result<NewLeg, String> {
    let bad = |what: &str| format!("not placed: the journaled leg has an unreadable {what}");
    let resolved = ResolvedLeg {
        security_id: row.security_id.clone().ok_or_else(|| bad("security id"))?,
        exchange_segment: row.exchange_segment.clone().ok_or_else(|| bad("segment"))?,
        trading_symbol: row
            .trading_symbol
            .clone()
            .unwrap_or_else(|| row.symbol.clone()),
        lot_size: row
            .lot_size
            .and_then(|l| u32::try_from(l).ok())
            .unwrap_or(1),
        units: row
            .units
            .and_then(|u| u32::try_from(u).ok())
            .ok_or_else(|| bad("quantity"))?,
    };
    let order = LegOrder {
        symbol: row.symbol.clone(),
        exchange: row.exchange,
        side: row.side,
        quantity: u32::try_from(row.quantity).map_err(|_| bad("quantity"))?,
        order_type: row.order_type,
        product: row.product,
        validity: row.validity,
        price: row.price,
        trigger_price: row.trigger_price,
        instrument: None,
        option: None,
        future_expiry: None,
        symbol_field: String::new(),
        quantity_field: String::new(),
        amo: keep_amo && row.amo,
        amo_time: row.amo_time,
    };
    Ok(NewLeg {
        leg_no: row.leg,
        correlation_id: row.correlation_id.clone(),
        order,
        resolved,
    })
}
