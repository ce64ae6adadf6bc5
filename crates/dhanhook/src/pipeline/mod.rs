//! The path of one alert, after the HTTP layer has checked its secret and parsed it into a
//! [`Signal`]:
//!
//! 1. [`admission`]: resolve each leg in the scrip master, check the alert's age, route it by
//!    the market's hours, and journal it with its dedupe key in one transaction, *before* any
//!    broker call. If that fails, nothing was sent and the sender may safely retry (HTTP 503).
//! 2. A redelivery (same dedupe key while it is live) is answered from the journal and places
//!    nothing, however many copies arrive at once: the journal's unique key decides.
//! 3. [`placer`]: each leg is marked SUBMITTING (committed) before its broker call, so a crash
//!    mid-call leaves a visible "outcome unknown" leg instead of a silent gap; the broker's
//!    answer is journaled and the leg gets its CSV row. The first leg's mark is part of step
//!    1's transaction, and the last answer carries the alert's status: two commits for a
//!    one-leg alert.
//! 4. Each leg carries a deterministic `correlationId` ([`keys`]) stored with it, so the order
//!    can always be found again at the broker.
//!
//! Position-aware alerts and SELL checks are worked out in [`positions`] before step 1
//! journals the legs, under a per-instrument lease; `cancel_order` alerts are journaled
//! without legs and then cancel our open orders on their instruments.
//!
//! Legs routed to the queue wait in the journal; the queue worker
//! ([`crate::workers::queue`]) places them at the open through the same [`LegPlacer`], and the
//! reconciler ([`crate::workers::reconciler`]) settles legs whose outcome is unknown.

mod admission;
mod cancel;
pub mod controls;
pub mod keys;
pub mod kill_switch;
mod placer;
mod positions;

use std::{net::IpAddr, sync::Arc, time::Duration};

use crate::{
    alert::{FieldProblem, Signal},
    store::{
        AlertRecord, AlertStatus, Gate, JournalError, LegStatus, NewAlert, OrderRow, ResolvedLeg,
    },
};

use admission::Entry;
pub use admission::{AdmissionRules, Admitter};
pub use cancel::CancelReport;
pub use controls::Controls;
pub use kill_switch::{KillSwitchChange, KillSwitchControl, KillSwitchOutcome};
pub use placer::LegPlacer;
pub(crate) use placer::leg_from_row;
pub use positions::PositionDesk;

/// Longest a duplicate delivery waits for the first delivery's outcome (see
/// [`Pipeline::settled_record`]).
const DUPLICATE_WAIT: Duration = Duration::from_millis(1500);
/// While waiting, the journal is read again this often in case the first delivery is being
/// placed by another instance (same-instance placements wake the waiter at once).
const DUPLICATE_REREAD: Duration = Duration::from_millis(250);

/// What an alert delivery came with, besides the signal itself.
#[derive(Debug, Clone)]
pub struct Intake {
    pub client_ip: Option<IpAddr>,
    /// The alert JSON with the secret already removed: what the journal keeps.
    pub payload: serde_json::Value,
}

/// What the journal made of a delivery, told as soon as it is known (before placement), with
/// what the answer must carry whenever it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// The alert journaled for this delivery (the first delivery's, for a repeat).
    pub alert_id: String,
    /// A repeat: nothing new is placed.
    pub duplicate: bool,
    /// See [`Signal::warnings`].
    pub warnings: Vec<FieldProblem>,
}

/// What became of one delivery: the alert as it stands (for a repeat, the first delivery's).
#[derive(Debug, Clone)]
pub struct Handled {
    pub record: AlertRecord,
    /// A repeat: nothing new was placed.
    pub duplicate: bool,
    /// See [`Signal::warnings`].
    pub warnings: Vec<FieldProblem>,
    /// How a position-aware alert's legs were worked out, one line per leg.
    pub positions: Vec<String>,
    /// What a `cancel_order` alert did, one entry per open order of ours it found.
    pub cancels: Option<Vec<CancelReport>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The alert could not be journaled: nothing was sent, a resend is safe.
    // The journal's error is in the message, so it is not also a `source()`.
    #[error("the alert could not be journaled: {0}")]
    NotJournaled(JournalError),
    /// No scrip master is loaded yet (live mode before the first download): nothing was
    /// journaled or sent, a resend later is safe.
    #[error("the scrip master is not loaded yet, so symbols cannot be resolved")]
    InstrumentsMissing,
    /// A leg's symbol or quantity does not resolve in the scrip master.
    #[error("the alert names instruments that do not resolve")]
    Unresolvable(Vec<FieldProblem>),
    /// The alert's `timenow` is older than `MAX_ALERT_AGE` (or in the future, or unreadable):
    /// journaled as refused, nothing placed.
    #[error("the alert is stale: {}", problem.problem)]
    Stale {
        alert_id: String,
        problem: FieldProblem,
    },
    /// The account's positions (or holdings, or order book) could not be read, so the legs
    /// could not be worked out or checked: nothing was journaled or sent (fail closed).
    #[error("positions could not be read: {0}")]
    PositionsUnreadable(String),
    /// The journal lost track of an alert it reported as a duplicate.
    #[error("duplicate of alert {0}, which the journal cannot read: {1}")]
    DuplicateUnreadable(String, String),
}

/// Admission, then placement. Cheap to clone (shared handles).
#[derive(Debug, Clone)]
pub struct Pipeline {
    admitter: Arc<Admitter>,
    placer: LegPlacer,
}

impl Pipeline {
    pub fn new(admitter: Admitter, placer: LegPlacer) -> Self {
        Self {
            admitter: Arc::new(admitter),
            placer,
        }
    }

    /// Runs one validated alert through the pipeline.
    ///
    /// # Errors
    /// [`PipelineError::NotJournaled`] when the alert could not be recorded (nothing was placed).
    pub async fn handle(&self, signal: Signal, intake: Intake) -> Result<Handled, PipelineError> {
        self.handle_reporting(signal, intake, None).await
    }

    /// [`Pipeline::handle`], telling `admitted` as soon as the journal has taken the alert (new
    /// or a duplicate), so a caller with a deadline can answer from the journal while
    /// placement goes on.
    ///
    /// # Errors
    /// As [`Pipeline::handle`].
    pub async fn handle_reporting(
        &self,
        signal: Signal,
        intake: Intake,
        admitted: Option<tokio::sync::oneshot::Sender<Admitted>>,
    ) -> Result<Handled, PipelineError> {
        self.run(signal, intake, admitted, None).await
    }

    /// [`Pipeline::handle`] for legs whose instruments are already known (one per leg, in
    /// order): the square-off worker closes positions by the instruments its journal names.
    ///
    /// # Errors
    /// As [`Pipeline::handle`].
    pub async fn handle_resolved(
        &self,
        signal: Signal,
        resolved: Vec<ResolvedLeg>,
        intake: Intake,
    ) -> Result<Handled, PipelineError> {
        self.run(signal, intake, None, Some(resolved)).await
    }

    /// Cancels the open orders dhanhook placed on these instruments (as a `cancel_order`
    /// alert does), `by` naming who asked in the legs' messages.
    ///
    /// # Errors
    /// The journal could not list the open legs: nothing was cancelled.
    pub async fn cancel_open_orders(
        &self,
        by: &str,
        resolved: &[ResolvedLeg],
    ) -> Result<Vec<CancelReport>, String> {
        self.admitter.positions.cancel_open(by, resolved).await
    }

    async fn run(
        &self,
        signal: Signal,
        intake: Intake,
        admitted: Option<tokio::sync::oneshot::Sender<Admitted>>,
        resolved: Option<Vec<ResolvedLeg>>,
    ) -> Result<Handled, PipelineError> {
        let asked = format!(
            "{} {}",
            signal.intent.as_str(),
            signal
                .legs
                .iter()
                .map(|l| l.symbol.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let gate = |alert: &NewAlert| self.placer.admission_gate(alert);
        let (entry, warnings) = match self.admitter.admit(signal, intake, resolved, &gate).await {
            Ok(admitted) => admitted,
            Err(PipelineError::PositionsUnreadable(why)) => {
                self.placer
                    .notifier()
                    .send(crate::notify::Event::NotPlaced {
                        what: asked,
                        why: format!("The position could not be read: {why}"),
                    })
                    .await;
                return Err(PipelineError::PositionsUnreadable(why));
            }
            Err(e) => return Err(e),
        };
        let tell = |alert_id: &str, duplicate: bool| {
            if let Some(tx) = admitted {
                let _ = tx.send(Admitted {
                    alert_id: alert_id.to_owned(),
                    duplicate,
                    warnings: warnings.clone(),
                });
            }
        };
        match entry {
            Entry::Duplicate { alert_id } => {
                tracing::info!(%alert_id, "duplicate delivery; answered from the journal, nothing placed");
                tell(&alert_id, true);
                let record = self.settled_record(&alert_id).await?;
                Ok(Handled {
                    record,
                    duplicate: true,
                    warnings,
                    positions: Vec::new(),
                    cancels: None,
                })
            }
            Entry::New {
                alert,
                stale,
                notes,
                cancel,
                first_gate,
            } => {
                tell(&alert.id, false);
                let cancels = match cancel {
                    Some(resolved) => Some(
                        self.admitter
                            .positions
                            .cancel_open(&alert.id, &resolved)
                            .await
                            .map_err(PipelineError::PositionsUnreadable)?,
                    ),
                    None => None,
                };
                let record = self.place_all(&alert, first_gate).await;
                match stale {
                    Some(problem) => Err(PipelineError::Stale {
                        alert_id: alert.id,
                        problem,
                    }),
                    None => Ok(Handled {
                        record,
                        duplicate: false,
                        warnings,
                        positions: notes,
                        cancels,
                    }),
                }
            }
        }
    }

    /// The journaled alert, once every leg has the broker's answer (ACCEPTED counts: the
    /// exchange's verdict can take minutes), or as it stands after [`DUPLICATE_WAIT`]. A
    /// redelivery that arrives while the first delivery is still being placed thus answers
    /// with the first delivery's outcome rather than "in progress"; the wait is bounded so the
    /// answer stays inside TradingView's 3 s, and is woken by the placement itself.
    async fn settled_record(&self, alert_id: &str) -> Result<AlertRecord, PipelineError> {
        let deadline = tokio::time::Instant::now() + DUPLICATE_WAIT;
        loop {
            // Registered before the read, so an answer journaled in between is not missed.
            let answered = self.placer.answered().notified();
            let mut answered = std::pin::pin!(answered);
            answered.as_mut().enable();
            let record = self
                .admitter
                .journal
                .alert(alert_id)
                .await
                .map_err(|e| {
                    PipelineError::DuplicateUnreadable(alert_id.to_owned(), e.to_string())
                })?
                .ok_or_else(|| {
                    PipelineError::DuplicateUnreadable(alert_id.to_owned(), "not found".to_owned())
                })?;
            let in_flight = record.legs.iter().any(|l| l.status.awaits_broker());
            if !in_flight || tokio::time::Instant::now() >= deadline {
                return Ok(record);
            }
            let reread = (tokio::time::Instant::now() + DUPLICATE_REREAD).min(deadline);
            tokio::select! {
                () = answered => {}
                () = tokio::time::sleep_until(reread) => {}
            }
        }
    }

    /// Places the legs of a freshly journaled alert, in order, recording each step (legs routed
    /// to the queue or refused are only reported). `first_gate`: the first leg's verdict, given
    /// in the admission's transaction. The last leg placed carries the alert's status into its
    /// answer's commit. Returns the alert as it now stands.
    async fn place_all(&self, alert: &NewAlert, first_gate: Option<Gate>) -> AlertRecord {
        let mut rows: Vec<OrderRow> = alert
            .legs
            .iter()
            .map(|leg| placer::order_row(alert, leg))
            .collect();
        if alert.initial_status == LegStatus::Received {
            self.placer.wait_for_reconciliation().await;
        }
        let last_placed = alert.legs.iter().rposition(|l| l.refused.is_none());
        let mut first_gate = first_gate;
        let mut status_recorded = false;
        for (i, leg) in alert.legs.iter().enumerate() {
            if leg.refused.is_some() {
                // Refused before sending (a SELL check): journaled so, reported and told.
                self.placer.log_csv(&alert.alert_type, &rows[i]);
                self.placer.notifier().leg_changed(&rows[i]).await;
                continue;
            }
            match alert.initial_status {
                LegStatus::Received => {
                    let gated = if i == 0 {
                        first_gate.take().map(Ok)
                    } else {
                        None
                    };
                    let others = (Some(i) == last_placed).then(|| {
                        rows.iter()
                            .enumerate()
                            .filter(|(j, _)| *j != i)
                            .map(|(_, r)| r.status)
                            .collect()
                    });
                    status_recorded = self
                        .placer
                        .place_leg(&alert.id, leg, &mut rows[i], gated, others)
                        .await;
                }
                // Queued legs are placed later by the queue; their CSV row comes then.
                LegStatus::Queued => continue,
                _ => {}
            }
            self.placer.log_csv(&alert.alert_type, &rows[i]);
        }
        let status = if rows.is_empty() {
            alert.status()
        } else {
            AlertStatus::from_legs(rows.iter().map(|r| r.status))
        };
        if !status_recorded
            && let Err(error) = self
                .admitter
                .journal
                .set_alert_status(&alert.id, status, self.admitter.clock.now())
                .await
        {
            tracing::error!(alert_id = %alert.id, %error, "could not record the alert's status");
        }
        AlertRecord {
            id: alert.id.clone(),
            received_at: alert.received_at,
            alert_type: alert.alert_type.clone(),
            route: Some(alert.route.clone()),
            queued_until: alert.queued_until,
            mode: alert.mode,
            status,
            duplicates: 0,
            payload: alert.payload.clone(),
            legs: rows,
        }
    }
}
