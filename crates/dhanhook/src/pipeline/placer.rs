//! The leg placer: the one way an order leaves dhanhook, for a fresh alert, a queued one at the
//! open and the reconciler's single re-send alike.
//!
//! Each leg goes SUBMITTING (committed) → broker → the answer journaled, then gets its CSV row.
//! The SUBMITTING mark comes first so that a crash mid-call leaves a visible "outcome unknown"
//! leg instead of a silent gap; a leg the journal will not mark is never sent.
//!
//! Commits are few on purpose (each is an fsync): the first leg of a fresh alert is marked
//! SUBMITTING in its admission's transaction ([`LegPlacer::admission_gate`]), and the answer to
//! an alert's last leg is journaled with the alert's status. A one-leg alert placed at once
//! thus costs two commits: admission with the mark, then the answer with the status. Nothing new is
//! sent before the start-up reconciliation has looked up the orders whose fate is unknown
//! (bounded wait), so a lost order is found before another one goes out.

use std::{sync::Arc, time::Duration};

use tokio::sync::{Notify, watch};

use super::controls::Controls;
use crate::{
    alert::LegOrder,
    broker::{Broker, BrokerError, OrderRequest, Placement},
    clock::Clock,
    csvlog::CsvLog,
    domain::AmoTime,
    notify::Notifier,
    store::{
        AlertJournal, AlertStatus, AlertStatusChange, Gate, GateCounts, GateSpec, JournalError,
        LegDetail, LegSource, LegStatus, LegUpdate, NewAlert, NewLeg, OrderRow, ResolvedLeg,
    },
};

/// Longest a new order waits for the start-up reconciliation.
const WAIT_FOR_RECONCILIATION: Duration = Duration::from_secs(10);

/// Places legs and records what the broker said. Cheap to clone (shared handles).
#[derive(Debug, Clone)]
pub struct LegPlacer {
    journal: Arc<dyn AlertJournal>,
    broker: Arc<dyn Broker>,
    csv: CsvLog,
    clock: Arc<dyn Clock>,
    /// `AMO_TIME`: for an AMO leg whose alert named none.
    amo_time: AmoTime,
    /// Becomes `true` once the start-up reconciliation has run (see the module doc).
    reconciled: watch::Receiver<bool>,
    /// Woken each time a leg gets the broker's answer: duplicate deliveries waiting for the
    /// first delivery's outcome re-read the journal then, instead of polling it.
    answered: Arc<Notify>,
    /// Tells the trader about fills, rejections and legs to check (through the outbox).
    notifier: Notifier,
    /// The kill switch and risk rails, judged as the leg is marked SUBMITTING (see
    /// [`super::controls`]); `None` sends every leg (tests of the placer alone).
    controls: Option<Controls>,
}

impl LegPlacer {
    pub fn new(
        journal: Arc<dyn AlertJournal>,
        broker: Arc<dyn Broker>,
        csv: CsvLog,
        clock: Arc<dyn Clock>,
        amo_time: AmoTime,
        reconciled: watch::Receiver<bool>,
        notifier: Notifier,
    ) -> Self {
        Self {
            journal,
            broker,
            csv,
            clock,
            amo_time,
            reconciled,
            answered: Arc::new(Notify::new()),
            notifier,
            controls: None,
        }
    }

    /// Judges every leg by `controls` before it is sent.
    #[must_use]
    pub fn with_controls(mut self, controls: Controls) -> Self {
        self.controls = Some(controls);
        self
    }

    /// Tells the trader about legs (the queue and the reconciler use it too).
    pub(crate) fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Woken whenever a leg gets the broker's answer.
    pub(crate) fn answered(&self) -> &Notify {
        &self.answered
    }

    /// Waits (bounded) until the start-up reconciliation has run.
    pub(crate) async fn wait_for_reconciliation(&self) {
        let mut rx = self.reconciled.clone();
        if tokio::time::timeout(WAIT_FOR_RECONCILIATION, rx.wait_for(|done| *done))
            .await
            .is_err()
        {
            tracing::warn!("start-up reconciliation still running; placing the order anyway");
        }
    }

    /// Appends the CSV row of a leg whose outcome is known (or refused). Queued for the CSV
    /// writer; never waits for the disk.
    pub(crate) fn log_csv(&self, alert_type: &str, row: &OrderRow) {
        self.csv.append(alert_type, row, self.clock.now());
    }

    /// The gate of `alert`'s first leg, to be judged inside the alert's admission
    /// ([`AlertJournal::admit_gated`]), when that leg is to be sent at once: the alert is to
    /// be placed now, the leg was not refused, and the start-up reconciliation has run (until
    /// then a SUBMITTING leg is the reconciler's to look up, so new legs wait unmarked).
    pub(crate) fn admission_gate(&self, alert: &NewAlert) -> Option<GateSpec> {
        if alert.initial_status != LegStatus::Received || !*self.reconciled.borrow() {
            return None;
        }
        let leg = alert.legs.first().filter(|l| l.refused.is_none())?;
        Some(match &self.controls {
            Some(controls) => controls.spec(leg),
            None => {
                let now = self.clock.now();
                GateSpec {
                    leg_no: leg.leg_no,
                    day: super::controls::ist_day(now),
                    rule: Arc::new(|_| None),
                    now,
                    counts: GateCounts::NONE,
                }
            }
        })
    }

    /// One leg: the controls' gate, SUBMITTING (committed) → broker → result; or BLOCKED, never
    /// sent. `row` mirrors what was journaled.
    pub(crate) async fn place(&self, alert_id: &str, leg: &NewLeg, row: &mut OrderRow) {
        self.place_leg(alert_id, leg, row, None, None).await;
    }

    /// [`LegPlacer::place`], with the gate's verdict when it was already given (`gated`: in
    /// the admission), and, for an alert's last leg, the other legs' statuses (`others`): the
    /// alert's status is then journaled with the broker's answer. `true` when it was.
    pub(crate) async fn place_leg(
        &self,
        alert_id: &str,
        leg: &NewLeg,
        row: &mut OrderRow,
        gated: Option<Result<Gate, JournalError>>,
        others: Option<Vec<LegStatus>>,
    ) -> bool {
        let gate = match (gated, &self.controls) {
            (Some(verdict), _) => verdict,
            (None, Some(controls)) => controls.gate(alert_id, leg).await,
            (None, None) => {
                let submitting = LegUpdate {
                    status: LegStatus::Submitting,
                    broker_order_id: None,
                    fill_price: None,
                    message: None,
                };
                self.journal
                    .update_leg(alert_id, leg.leg_no, &submitting, self.clock.now())
                    .await
                    .map(|()| Gate::Send)
            }
        };
        match gate {
            Ok(Gate::Send) => {}
            Ok(Gate::Blocked(reason)) => {
                tracing::warn!(alert_id = %alert_id, leg = leg.leg_no, %reason, "leg blocked by the controls; not sent");
                row.status = LegStatus::Blocked;
                row.message = Some(reason);
                self.answered.notify_waiters();
                self.notifier.leg_changed(row).await;
                return false;
            }
            Err(error) => {
                // Not sent: without the SUBMITTING mark a crash could not tell whether it was.
                tracing::error!(alert_id = %alert_id, leg = leg.leg_no, %error, "journal refused SUBMITTING; leg not sent");
                row.message = Some("not sent: the journal could not record the attempt".to_owned());
                return false;
            }
        }
        row.status = LegStatus::Submitting;
        crate::crash::point("after_submitting");

        let request = OrderRequest {
            correlation_id: &leg.correlation_id,
            leg: &leg.order,
            resolved: &leg.resolved,
            amo: leg
                .order
                .amo
                .then(|| leg.order.amo_time.unwrap_or(self.amo_time)),
        };
        let answer = self.broker.place(request).await;
        if answer.is_ok() {
            crate::crash::point("after_broker");
        }
        let update = match answer {
            Ok(placement) => update_for(placement),
            Err(BrokerError::Unknown(why)) => {
                // UNKNOWN: its fate must be looked up by correlationId, never guessed or
                // re-sent blindly.
                tracing::warn!(alert_id = %alert_id, leg = leg.leg_no, %why, "order outcome unknown");
                LegUpdate {
                    status: LegStatus::Unknown,
                    broker_order_id: None,
                    fill_price: None,
                    message: Some(format!("outcome unknown: {why}")),
                }
            }
        };
        tracing::info!(
            alert_id = %alert_id,
            leg = leg.leg_no,
            broker = self.broker.name(),
            status = %update.status,
            order_id = update.broker_order_id.as_deref().unwrap_or(""),
            "leg placed"
        );
        row.status = update.status;
        row.order_id.clone_from(&update.broker_order_id);
        row.fill_price = update.fill_price;
        row.message.clone_from(&update.message);
        // Filled in the broker's first answer (a paper market order): the whole quantity.
        let detail = LegDetail {
            filled_qty: (update.status == LegStatus::Filled)
                .then_some(i64::from(leg.resolved.units)),
            ..LegDetail::default()
        };
        row.detail.filled_qty = detail.filled_qty.or(row.detail.filled_qty);
        let alert_status = others.map(|mut statuses| {
            statuses.push(row.status);
            AlertStatus::from_legs(statuses)
        });
        let recorded = match self
            .journal
            .transition_leg_and_alert(
                alert_id,
                leg.leg_no,
                &update,
                &detail,
                LegSource::Placement,
                alert_status.map_or(AlertStatusChange::Keep, AlertStatusChange::Set),
                self.clock.now(),
            )
            .await
        {
            Ok(()) => alert_status.is_some(),
            Err(error) => {
                tracing::error!(alert_id = %alert_id, leg = leg.leg_no, %error, "could not journal the broker's answer");
                false
            }
        };
        self.answered.notify_waiters();
        self.notifier.leg_changed(row).await;
        recorded
    }
}

/// The journal change for a broker's answer.
fn update_for(placement: Placement) -> LegUpdate {
    let (status, broker_order_id, fill_price, message) = match placement {
        Placement::Filled {
            order_id,
            fill_price,
            message,
        } => (LegStatus::Filled, Some(order_id), fill_price, message),
        Placement::Accepted { order_id, message } => {
            (LegStatus::Accepted, Some(order_id), None, message)
        }
        Placement::Pending { order_id, message } => {
            (LegStatus::Pending, Some(order_id), None, message)
        }
        Placement::Rejected { order_id, message } => (LegStatus::Rejected, order_id, None, message),
    };
    LegUpdate {
        status,
        broker_order_id,
        fill_price,
        message: Some(message),
    }
}

/// The journal row a leg starts as (kept in memory to answer without re-reading).
pub(crate) fn order_row(alert: &NewAlert, leg: &NewLeg) -> OrderRow {
    let o = &leg.order;
    OrderRow {
        alert_id: alert.id.clone(),
        received_at: alert.received_at,
        strategy: alert.strategy.clone(),
        client_ip: alert.client_ip.clone(),
        duplicates: 0,
        leg: leg.leg_no,
        correlation_id: leg.correlation_id.clone(),
        symbol: o.symbol.clone(),
        exchange: o.exchange,
        side: o.side,
        quantity: i64::from(o.quantity),
        order_type: o.order_type,
        product: o.product,
        validity: o.validity,
        price: o.price,
        trigger_price: o.trigger_price,
        amo: o.amo,
        amo_time: o.amo_time,
        closes: o.closes,
        security_id: Some(leg.resolved.security_id.clone()),
        exchange_segment: Some(leg.resolved.exchange_segment.clone()),
        trading_symbol: Some(leg.resolved.trading_symbol.clone()),
        units: Some(i64::from(leg.resolved.units)),
        lot_size: Some(i64::from(leg.resolved.lot_size)),
        mode: alert.mode,
        status: alert.leg_status(leg),
        order_id: None,
        fill_price: None,
        message: alert.leg_message(leg),
        detail: LegDetail::default(),
        updated_at: alert.received_at,
    }
}

/// Rebuilds a placeable leg from its journal row (queued legs are placed from the journal, so a
/// restart loses nothing). Queued legs run at the open as regular orders (`keep_amo` false);
/// a leg routed as an AMO and interrupted before sending stays an AMO.
pub(crate) fn leg_from_row(row: &OrderRow, keep_amo: bool) -> Result<NewLeg, String> {
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
        closes: row.closes,
    };
    Ok(NewLeg {
        leg_no: row.leg,
        correlation_id: row.correlation_id.clone(),
        order,
        resolved,
        refused: None,
    })
}
