//! The reconciler: settles legs whose outcome is unknown by asking the broker, never by
//! guessing.
//!
//! A leg is UNKNOWN when its order request may have reached the broker but no answer came
//! (timeout, reset, 5xx), and SUBMITTING is left behind when the process died mid-call. For
//! each such leg the reconciler looks the order up by its correlationId (then in the day's
//! order book):
//! - found → the leg takes the broker's state (ACCEPTED, PENDING, FILLED, REJECTED);
//! - not found → a SUBMITTING leg becomes UNKNOWN (the settle time starts); an UNKNOWN leg
//!   still absent after `UNKNOWN_SETTLE_SECS` (an order in TRANSIT can look absent for a
//!   moment) is re-sent **once**, with the same correlationId, if `RESEND_UNKNOWN=true` —
//!   the journal grants that one re-send atomically — otherwise, or if it was already re-sent,
//!   it becomes NEEDS_ATTENTION for a person to check at the broker.
//!
//! A RECEIVED leg (journaled, never marked SUBMITTING: the process stopped in between, so
//! nothing was sent) is placed, unless older than `QUEUE_MAX_AGE`.
//!
//! It runs once at start-up over every such leg (whatever its age), then every few seconds
//! over UNKNOWN legs and RECEIVED/SUBMITTING legs older than any in-flight request can be.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use tokio::sync::watch;

use crate::{
    broker::{Broker, Lookup, OrderState},
    clock::Clock,
    pipeline::{LegPlacer, leg_from_row},
    store::{
        AlertJournal, AlertStatus, Journal, JournalError, Leases, LegDetail, LegSource, LegStatus,
        LegUpdate, OrderRow, ReconcileJournal,
    },
};

/// How often the reconciler looks (on the service's clock).
const EVERY: chrono::Duration = chrono::Duration::seconds(5);
/// A SUBMITTING leg younger than this may still be in flight in this process (the broker
/// client's own timeout is 8 s).
const IN_FLIGHT: chrono::Duration = chrono::Duration::seconds(30);
/// How long a reconciler pass holds its lease (longer than a pass, shorter than a restart).
const RECONCILER_LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// The lease's name in the journal.
const LEASE: &str = "reconciler";
/// Legs looked at per pass.
const BATCH: u32 = 200;

/// What one pass did to one leg.
#[derive(Debug, Clone, Serialize)]
pub struct Reconciled {
    pub alert_id: String,
    pub leg: u32,
    /// The leg's status after the pass.
    pub status: LegStatus,
    pub note: String,
}

/// The settings the reconciler applies (`QUEUE_MAX_AGE`, `RESEND_UNKNOWN`,
/// `UNKNOWN_SETTLE_SECS`).
#[derive(Debug, Clone)]
pub struct ReconcileRules {
    /// An interrupted leg older than this is refused, not placed.
    pub max_age: std::time::Duration,
    /// Re-send once an order the broker does not have (after `unknown_settle`).
    pub resend_unknown: bool,
    /// How long an UNKNOWN leg may look absent before it counts as absent.
    pub unknown_settle: std::time::Duration,
}

/// The parts of the journal the reconciler uses.
#[derive(Debug, Clone)]
pub struct ReconcilerJournal {
    /// The legs whose outcome is open, and the one re-send.
    pub legs: Arc<dyn ReconcileJournal>,
    /// Reading alerts and moving legs.
    pub alerts: Arc<dyn AlertJournal>,
    /// One reconciler at a time across instances.
    pub leases: Arc<dyn Leases>,
}

impl ReconcilerJournal {
    pub fn of(journal: &Arc<dyn Journal>) -> Self {
        Self {
            legs: journal.clone(),
            alerts: journal.clone(),
            leases: journal.clone(),
        }
    }
}

/// The reconciler worker.
#[derive(Debug)]
pub struct Reconciler {
    journal: ReconcilerJournal,
    broker: Arc<dyn Broker>,
    placer: LegPlacer,
    clock: Arc<dyn Clock>,
    rules: ReconcileRules,
    /// This process's name as a lease holder.
    instance: String,
    /// Set once the start-up pass has run: new orders wait for it (see [`LegPlacer`]).
    reconciled: watch::Sender<bool>,
}

impl Reconciler {
    pub fn new(
        journal: ReconcilerJournal,
        broker: Arc<dyn Broker>,
        placer: LegPlacer,
        clock: Arc<dyn Clock>,
        rules: ReconcileRules,
        reconciled: watch::Sender<bool>,
    ) -> Self {
        Self {
            journal,
            broker,
            placer,
            clock,
            rules,
            instance: uuid::Uuid::now_v7().to_string(),
            reconciled,
        }
    }

    /// This process's name as the holder of the reconciler lease.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// One pass over the legs to reconcile, holding the reconciler lease until `lease_until`
    /// and renewing it as the pass goes (a pass of slow broker lookups can outlast the lease,
    /// and another instance must not start a second pass over the same legs meanwhile). With
    /// `booted_at`, legs last touched before that instant are handled whatever their age:
    /// nothing was in flight before the service started. Legs touched since may belong to
    /// requests in progress and wait `IN_FLIGHT`.
    ///
    /// # Errors
    /// The journal failed.
    pub async fn reconcile_once(
        &self,
        booted_at: Option<DateTime<Utc>>,
        mut lease_until: DateTime<Utc>,
    ) -> Result<Vec<Reconciled>, JournalError> {
        let mut done = Vec::new();
        for row in self.journal.legs.legs_to_reconcile(BATCH).await? {
            if !self.keep_lease(&mut lease_until).await? {
                tracing::warn!(
                    "the reconciler lease passed to another instance during a pass; it carries on"
                );
                break;
            }
            let age = self.clock.now() - row.updated_at;
            let may_be_in_flight =
                matches!(row.status, LegStatus::Received | LegStatus::Submitting);
            let from_before_boot = booted_at.is_some_and(|b| row.updated_at < b);
            if may_be_in_flight && !from_before_boot && age < IN_FLIGHT {
                continue;
            }
            if row.status == LegStatus::Received {
                done.push(self.resume(&row).await?);
                continue;
            }
            match self.broker.lookup(&row.correlation_id).await {
                Ok(Lookup::Found(state)) => done.push(self.settle(&row, state).await?),
                Ok(Lookup::Absent) => {
                    if let Some(r) = self.absent(&row, age).await? {
                        done.push(r);
                    }
                }
                Err(e) => {
                    tracing::warn!(alert_id = %row.alert_id, leg = row.leg, error = %e, "reconcile: lookup failed; will retry")
                }
            }
        }
        Ok(done)
    }

    /// A leg journaled but never marked SUBMITTING: the process stopped between the two, so
    /// nothing was sent. It is placed now, unless it has grown older than `QUEUE_MAX_AGE`.
    async fn resume(&self, row: &OrderRow) -> Result<Reconciled, JournalError> {
        let max_age =
            chrono::Duration::from_std(self.rules.max_age).unwrap_or(chrono::Duration::MAX);
        if self.clock.now() - row.received_at > max_age {
            let note =
                "interrupted before it was sent, and now older than QUEUE_MAX_AGE: not placed"
                    .to_owned();
            return self
                .record(row, LegStatus::Rejected, None, None, &note)
                .await;
        }
        let leg = match leg_from_row(row, true) {
            Ok(leg) => leg,
            Err(why) => {
                return self
                    .record(row, LegStatus::Rejected, None, None, &why)
                    .await;
            }
        };
        tracing::warn!(alert_id = %row.alert_id, leg = row.leg, "placing a leg whose placement was interrupted");
        let mut out = row.clone();
        self.placer.place(&row.alert_id, &leg, &mut out).await;
        self.after_change(&row.alert_id, &out).await?;
        Ok(Reconciled {
            alert_id: row.alert_id.clone(),
            leg: row.leg,
            status: out.status,
            note: "placed after an interruption".to_owned(),
        })
    }

    async fn settle(&self, row: &OrderRow, state: OrderState) -> Result<Reconciled, JournalError> {
        let detail = LegDetail {
            filled_qty: state.filled_qty,
            exchange_order_id: state.exchange_order_id,
            exchange_time: state.exchange_time,
            reason: state.reason,
        };
        let order_id = Some(state.order_id).filter(|id| !id.is_empty());
        let note = format!("found at the broker by correlationId: {}", state.message);
        self.record_with(
            row,
            state.status,
            order_id,
            state.average_price,
            &detail,
            &note,
        )
        .await
    }

    async fn absent(
        &self,
        row: &OrderRow,
        age: chrono::Duration,
    ) -> Result<Option<Reconciled>, JournalError> {
        if row.status == LegStatus::Submitting {
            let note =
                "no answer was recorded and the broker does not show the order yet; checking again"
                    .to_owned();
            return self
                .record(row, LegStatus::Unknown, None, None, &note)
                .await
                .map(Some);
        }
        let settle = chrono::Duration::from_std(self.rules.unknown_settle)
            .unwrap_or(chrono::Duration::seconds(30));
        if age < settle {
            return Ok(None);
        }
        if !self.rules.resend_unknown {
            let note = "not found at the broker; not re-sent (RESEND_UNKNOWN=false): check the broker's order book".to_owned();
            return self
                .record(row, LegStatus::NeedsAttention, None, None, &note)
                .await
                .map(Some);
        }
        if !self
            .journal
            .legs
            .claim_resend(&row.alert_id, row.leg)
            .await?
        {
            let note = "still not found at the broker after its one re-send: check the broker's order book".to_owned();
            return self
                .record(row, LegStatus::NeedsAttention, None, None, &note)
                .await
                .map(Some);
        }
        let Ok(leg) = leg_from_row(row, true) else {
            let note =
                "not found at the broker, and the journaled leg cannot be re-sent".to_owned();
            return self
                .record(row, LegStatus::NeedsAttention, None, None, &note)
                .await
                .map(Some);
        };
        tracing::warn!(alert_id = %row.alert_id, leg = row.leg, "order not found at the broker; re-sending it once with the same correlationId");
        let mut out = row.clone();
        self.placer.place(&row.alert_id, &leg, &mut out).await;
        self.after_change(&row.alert_id, &out).await?;
        Ok(Some(Reconciled {
            alert_id: row.alert_id.clone(),
            leg: row.leg,
            status: out.status,
            note: "re-sent once with the same correlationId".to_owned(),
        }))
    }

    async fn record(
        &self,
        row: &OrderRow,
        status: LegStatus,
        order_id: Option<String>,
        fill_price: Option<f64>,
        note: &str,
    ) -> Result<Reconciled, JournalError> {
        self.record_with(
            row,
            status,
            order_id,
            fill_price,
            &LegDetail::default(),
            note,
        )
        .await
    }

    async fn record_with(
        &self,
        row: &OrderRow,
        status: LegStatus,
        order_id: Option<String>,
        fill_price: Option<f64>,
        detail: &LegDetail,
        note: &str,
    ) -> Result<Reconciled, JournalError> {
        let update = LegUpdate {
            status,
            broker_order_id: order_id.clone(),
            fill_price,
            message: Some(note.to_owned()),
        };
        self.journal
            .alerts
            .transition_leg(
                &row.alert_id,
                row.leg,
                &update,
                detail,
                LegSource::Reconciler,
                self.clock.now(),
            )
            .await?;
        tracing::info!(alert_id = %row.alert_id, leg = row.leg, status = %status, "reconciled: {note}");
        let mut out = row.clone();
        out.status = status;
        out.order_id = order_id.or(out.order_id);
        out.fill_price = fill_price.or(out.fill_price);
        out.message = Some(note.to_owned());
        self.placer.notifier().leg_changed(&out).await;
        self.after_change(&row.alert_id, &out).await?;
        Ok(Reconciled {
            alert_id: row.alert_id.clone(),
            leg: row.leg,
            status,
            note: note.to_owned(),
        })
    }

    /// A settled leg gets its CSV row, and its alert its new status.
    async fn after_change(&self, alert_id: &str, row: &OrderRow) -> Result<(), JournalError> {
        if let Some(record) = self.journal.alerts.alert(alert_id).await? {
            if row.status.is_settled() || row.status == LegStatus::NeedsAttention {
                self.placer.log_csv(&record.alert_type, row);
            }
            let status = AlertStatus::from_legs(record.legs.iter().map(|l| l.status));
            self.journal
                .alerts
                .set_alert_status(alert_id, status, self.clock.now())
                .await?;
        }
        Ok(())
    }

    /// Renews the lease when half of it has passed. `false`: another instance holds it now
    /// (ours ran out), so this pass must stop.
    async fn keep_lease(&self, lease_until: &mut DateTime<Utc>) -> Result<bool, JournalError> {
        let now = self.clock.now();
        if now + RECONCILER_LEASE / 2 < *lease_until {
            return Ok(true);
        }
        let until = now + RECONCILER_LEASE;
        let renewed = self
            .journal
            .leases
            .try_lease(LEASE, &self.instance, until, now)
            .await?;
        if renewed {
            *lease_until = until;
        }
        Ok(renewed)
    }

    /// The start-up pass, then a pass every few seconds until `stop`.
    pub async fn run_until_stopped(self, stop: CancellationToken) {
        let mut booted_at = Some(self.clock.now());
        loop {
            // One reconciler at a time across instances sharing the journal: the others'
            // passes would only repeat its lookups.
            let now = self.clock.now();
            let lease_until = now + RECONCILER_LEASE;
            let passed = match self
                .journal
                .leases
                .try_lease(LEASE, &self.instance, lease_until, now)
                .await
            {
                Ok(true) => {
                    let pass = self.reconcile_once(booted_at, lease_until).await;
                    // Held only during a pass: a restart must not wait for its own old lease.
                    if let Err(e) = self
                        .journal
                        .leases
                        .release_lease(LEASE, &self.instance)
                        .await
                    {
                        tracing::warn!(error = %e, "could not release the reconciler lease; it lapses by itself");
                    }
                    match pass {
                        Ok(done) if !done.is_empty() => {
                            tracing::info!(legs = done.len(), "reconciler settled legs");
                        }
                        Ok(_) => {}
                        // A leg the journal would not update does not hold every new order
                        // up: the next pass looks at it again.
                        Err(e) => tracing::error!(error = %e, "reconciler pass failed"),
                    }
                    true
                }
                // Another instance reconciles.
                Ok(false) => true,
                // Not "held elsewhere": nobody may have looked at the legs whose fate is
                // unknown, so the start-up pass is not counted as done.
                Err(e) => {
                    tracing::error!(error = %e, "the reconciler could not take its lease: the journal did not answer; trying again shortly");
                    false
                }
            };
            if passed {
                // The start-up pass is done (or another instance reconciles): new orders may
                // go, and later passes leave legs in flight alone.
                self.reconciled.send_replace(true);
                booted_at = None;
            }
            let next = self.clock.now() + EVERY;
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.clock.sleep_until(next) => {}
            }
        }
    }
}
