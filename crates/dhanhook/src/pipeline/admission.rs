//! Admission: what happens to an alert before any order is sent. Its legs are resolved in the
//! scrip master, its age is checked (`MAX_ALERT_AGE`), it is routed by the market's hours
//! (now, AMO, queue or refuse), and it is journaled with its dedupe key, all in one
//! transaction. A redelivery of a live alert is recognised here and goes no further.
//!
//! Nothing here talks to the broker: when admission fails, nothing was sent, and the sender may
//! safely try again.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::{
    Intake, PipelineError, keys,
    positions::{PlannedLeg, PositionDesk},
};
use crate::{
    alert::{AlertFormat, FieldProblem, Instrument, Intent, Product, Signal},
    clock::{Clock, ist},
    domain::{AmoTime, Mode, OnLegReject, QuantityUnit, WhenClosed},
    instruments::source::InstrumentSource,
    market::{self, AmoWindow, Calendar, Route, Venue},
    store::{Admission, AlertJournal, Gate, GateSpec, LegStatus, NewAlert, NewLeg, ResolvedLeg},
};

/// Which leg of a new alert (if any) is gated inside its admission, and how
/// ([`super::LegPlacer::admission_gate`]).
pub(super) type FirstGate<'a> = &'a (dyn Fn(&NewAlert) -> Option<GateSpec> + Sync);

/// How far in the future an alert's `timenow` may be (clock skew) before it is refused.
const MAX_CLOCK_AHEAD: chrono::Duration = chrono::Duration::seconds(60);

/// The settings admission applies (from `WHEN_CLOSED`, `AMO_TIME`, `AMO_WINDOW`,
/// `MAX_ALERT_AGE`).
#[derive(Debug, Clone)]
pub struct AdmissionRules {
    /// What to do when a market is closed, unless the alert says.
    pub when_closed: WhenClosed,
    /// When an AMO is released, unless the alert says.
    pub amo_time: AmoTime,
    /// When Dhan takes after-market orders.
    pub amo_window: AmoWindow,
    /// Alerts fired longer ago than this are refused (`None`: no limit).
    pub max_alert_age: Option<Duration>,
    /// `ON_LEG_REJECT`, unless the alert says.
    pub on_leg_reject: OnLegReject,
}

/// What admission needs. Built once by `startup`.
#[derive(Debug)]
pub struct Admitter {
    pub journal: Arc<dyn AlertJournal>,
    pub clock: Arc<dyn Clock>,
    pub mode: Mode,
    pub dedup_window: Duration,
    pub instruments: InstrumentSource,
    pub quantity_unit: QuantityUnit,
    /// `EQ_PRODUCT=cnc`: see [`crate::config::InstrumentSettings::eq_product_cnc`].
    pub eq_product_cnc: bool,
    pub calendar: Arc<Calendar>,
    pub rules: AdmissionRules,
    /// Wakes the queue runner when an alert is queued.
    pub queue_wake: Arc<Notify>,
    /// Works out position-aware alerts and SELL checks against the broker's positions.
    pub positions: Arc<PositionDesk>,
    /// Where the journal's commit time is recorded.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// What admission made of a delivery.
#[derive(Debug)]
pub(super) enum Entry {
    /// First delivery, journaled. `stale`: journaled as refused (so a replay of it is a
    /// recognised duplicate) and never placed.
    New {
        alert: Box<NewAlert>,
        stale: Option<FieldProblem>,
        /// How each position-aware leg was worked out (for the answer).
        notes: Vec<String>,
        /// A `cancel_order` alert: the instruments whose open orders are to be cancelled.
        cancel: Option<Vec<ResolvedLeg>>,
        /// The first leg's send gate, judged in the admission's transaction (see
        /// [`super::LegPlacer::admission_gate`]); `None`: not judged yet.
        first_gate: Option<Gate>,
    },
    /// A live dedupe key points at this earlier alert: nothing new was journaled.
    Duplicate { alert_id: String },
}

impl Admitter {
    /// Resolves, routes and journals one alert. Returns what it became and the warnings its
    /// answer must carry.
    ///
    /// `gate` names the leg (if any) whose send gate is to be judged in the same transaction.
    pub(super) async fn admit(
        &self,
        mut signal: Signal,
        intake: Intake,
        resolved: Option<Vec<ResolvedLeg>>,
        gate: FirstGate<'_>,
    ) -> Result<(Entry, Vec<FieldProblem>), PipelineError> {
        self.apply_eq_product(&mut signal);
        let problems = crate::alert::position_problems(&signal);
        if !problems.is_empty() {
            return Err(PipelineError::Unresolvable(problems));
        }
        let warnings = signal.warnings.clone();
        if !warnings.is_empty() {
            let fields: Vec<&str> = warnings.iter().map(|w| w.field.as_str()).collect();
            tracing::info!(ignored = ?fields, "alert accepted with fields ignored or changed (see the answer's warnings)");
        }
        let now = self.clock.now();
        // Given by the caller when it already knows the instruments (the square-off worker,
        // from the journal's legs), else resolved in the scrip master.
        let resolved = match resolved {
            Some(r) if r.len() == signal.legs.len() => r,
            _ => self.resolve(&signal, now)?,
        };
        let stale = self.stale(&signal, now);
        let route = match &stale {
            Some(problem) => Route::Reject {
                reason: problem.problem.clone(),
            },
            // A cancel is not an order: it runs whatever the market's hours.
            None if signal.intent == Intent::Cancel => Route::Now,
            None => self.route(&signal, &resolved, now),
        };
        let as_sent = |resolved: Vec<ResolvedLeg>| -> Vec<PlannedLeg> {
            signal
                .legs
                .iter()
                .cloned()
                .zip(resolved)
                .map(|(order, resolved)| PlannedLeg {
                    order,
                    resolved,
                    refused: None,
                })
                .collect()
        };
        if signal.intent == Intent::Cancel {
            let cancel = stale.is_none().then(|| resolved.clone());
            let alert = self.new_alert(&signal, intake, Vec::new(), &route, now);
            return Ok((
                self.journal_new(alert, stale, Vec::new(), cancel, gate)
                    .await?,
                warnings,
            ));
        }
        // A refused route (stale, closed market) places nothing: no position is read.
        let rejected = matches!(route, Route::Reject { .. });
        if rejected || !self.positions.needed_for(&signal) {
            let alert = self.new_alert(&signal, intake, as_sent(resolved), &route, now);
            return Ok((
                self.journal_new(alert, stale, Vec::new(), None, gate)
                    .await?,
                warnings,
            ));
        }
        // Position-aware: from reading the position until the legs are journaled, under the
        // instruments' leases (see `positions`).
        let held = self
            .positions
            .hold(&resolved)
            .await
            .map_err(PipelineError::PositionsUnreadable)?;
        let result = async {
            let plan = self
                .positions
                .plan(&signal, resolved)
                .await
                .map_err(PipelineError::PositionsUnreadable)?;
            let alert = self.new_alert(&signal, intake, plan.legs, &route, now);
            self.journal_new(alert, stale, plan.notes, None, gate).await
        }
        .await;
        self.positions.release(held).await;
        Ok((result?, warnings))
    }

    /// Journals a new alert (or recognises a repeat).
    async fn journal_new(
        &self,
        alert: NewAlert,
        stale: Option<FieldProblem>,
        notes: Vec<String>,
        cancel: Option<Vec<ResolvedLeg>>,
        gate: FirstGate<'_>,
    ) -> Result<Entry, PipelineError> {
        let committing = std::time::Instant::now();
        let admitted = self.journal.admit_gated(&alert, gate(&alert)).await;
        if let Some(m) = &self.metrics {
            m.journal_commit(committing.elapsed());
        }
        Ok(match admitted.map_err(PipelineError::NotJournaled)? {
            (Admission::Duplicate { alert_id }, _) => Entry::Duplicate { alert_id },
            (Admission::Admitted, first_gate) => {
                tracing::info!(alert_id = %alert.id, legs = alert.legs.len(), route = %alert.route, "alert journaled");
                crate::crash::point("after_journal");
                if alert.initial_status == LegStatus::Queued {
                    self.queue_wake.notify_one();
                }
                Entry::New {
                    alert: Box::new(alert),
                    stale,
                    notes,
                    cancel,
                    first_gate,
                }
            }
        })
    }

    /// Where the alert goes by its venues' hours and its (or the default) closed-market policy.
    fn route(&self, signal: &Signal, resolved: &[ResolvedLeg], now: DateTime<Utc>) -> Route {
        let venues: Vec<Venue> = resolved
            .iter()
            .filter_map(|r| Venue::from_segment(&r.exchange_segment))
            .collect();
        let policy = signal.when_closed.unwrap_or(self.rules.when_closed);
        // The alert's own amoTime (first leg naming one) wins over AMO_TIME.
        let amo_time = signal
            .legs
            .iter()
            .find_map(|l| l.amo_time)
            .unwrap_or(self.rules.amo_time);
        market::route(
            now,
            &venues,
            policy,
            self.rules.amo_window,
            amo_time,
            &self.calendar,
        )
    }

    /// The journal's record of the alert and its legs, in the state the route decides.
    fn new_alert(
        &self,
        signal: &Signal,
        intake: Intake,
        legs: Vec<PlannedLeg>,
        route: &Route,
        now: DateTime<Utc>,
    ) -> NewAlert {
        let (initial_status, initial_message, queued_until) = match route {
            Route::Now | Route::Amo { .. } => (LegStatus::Received, None, None),
            Route::Queue { until } => (
                LegStatus::Queued,
                Some(format!(
                    "queued until the market opens at {} IST",
                    ist(*until).format("%Y-%m-%d %H:%M")
                )),
                Some(*until),
            ),
            Route::Reject { reason } => (
                LegStatus::Rejected,
                Some(format!("not placed: {reason}")),
                None,
            ),
        };
        let alert_id = uuid::Uuid::now_v7().to_string();
        let legs = legs
            .into_iter()
            .enumerate()
            .map(|(i, planned)| {
                let PlannedLeg {
                    mut order,
                    resolved,
                    refused,
                } = planned;
                let leg_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
                // The route decides whether this is an AMO, not the alert's wish alone.
                match route {
                    Route::Amo { amo_time } => {
                        order.amo = true;
                        order.amo_time = Some(order.amo_time.unwrap_or(*amo_time));
                    }
                    _ => order.amo = false,
                }
                NewLeg {
                    leg_no,
                    correlation_id: keys::correlation_id(&alert_id, leg_no, now),
                    order,
                    resolved,
                    refused,
                }
            })
            .collect();
        NewAlert {
            id: alert_id,
            received_at: now,
            client_ip: intake.client_ip.map(|ip| ip.to_string()),
            format: signal.format.as_str(),
            alert_type: signal.alert_type.clone(),
            strategy: signal.strategy.clone(),
            dedupe: keys::dedupe_key(signal, now, self.dedup_window),
            payload: intake.payload.to_string(),
            mode: self.mode,
            legs,
            route: serde_json::to_string(route).unwrap_or_default(),
            queued_until,
            initial_status,
            initial_message,
            on_leg_reject: signal.on_leg_reject.unwrap_or(self.rules.on_leg_reject),
        }
    }

    /// Resolves every leg in the scrip master on `now`'s IST date.
    fn resolve(
        &self,
        signal: &Signal,
        now: DateTime<Utc>,
    ) -> Result<Vec<ResolvedLeg>, PipelineError> {
        let instruments = self
            .instruments
            .current()
            .ok_or(PipelineError::InstrumentsMissing)?;
        let today = ist(now).date_naive();
        let mut problems = Vec::new();
        let mut resolved = Vec::with_capacity(signal.legs.len());
        for leg in &signal.legs {
            match instruments.resolve(leg, today, self.quantity_unit) {
                Ok(r) => resolved.push(ResolvedLeg {
                    security_id: r.instrument.security_id.clone(),
                    exchange_segment: r.instrument.exchange_segment.to_owned(),
                    trading_symbol: r.instrument.trading_symbol.clone(),
                    lot_size: r.instrument.lot_size,
                    units: r.units,
                }),
                Err(unresolved) => problems.push(FieldProblem {
                    field: if unresolved.quantity {
                        leg.quantity_field.clone()
                    } else {
                        leg.symbol_field.clone()
                    },
                    problem: unresolved.message,
                }),
            }
        }
        if problems.is_empty() {
            Ok(resolved)
        } else {
            Err(PipelineError::Unresolvable(problems))
        }
    }

    /// Why the alert is too old (or too new) to place, judged by TradingView's `{{timenow}}`
    /// (the fire time) against `MAX_ALERT_AGE`; never by `time`, the bar's open, which on a
    /// daily chart is hours old. `None` when it may be placed, or carries no `timenow`.
    fn stale(&self, signal: &Signal, now: DateTime<Utc>) -> Option<FieldProblem> {
        let max_age = self.rules.max_alert_age?;
        let text = signal.timenow.as_deref()?;
        let field = match signal.format {
            AlertFormat::Flat => "timenow",
            AlertFormat::Dhan => "meta.timenow",
        }
        .to_owned();
        let Ok(fired) = DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)) else {
            return Some(FieldProblem {
                field,
                problem: format!(
                    "'{}' is not a time like 2026-12-01T04:30:00Z (use TradingView's {{{{timenow}}}}), so the alert's age cannot be checked (MAX_ALERT_AGE)",
                    crate::alert::clip(text)
                ),
            });
        };
        let age = now - fired;
        let max = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
        if age > max {
            Some(FieldProblem {
                field,
                problem: format!(
                    "the alert fired at {} IST, {} ago: older than MAX_ALERT_AGE ({} s), so it is not placed",
                    ist(fired).format("%Y-%m-%d %H:%M:%S"),
                    human_duration(age),
                    max_age.as_secs()
                ),
            })
        } else if age < -MAX_CLOCK_AHEAD {
            Some(FieldProblem {
                field,
                problem: format!(
                    "the alert says it fired at {} IST, {} from now: check the sender's clock; it is not placed",
                    ist(fired).format("%Y-%m-%d %H:%M:%S"),
                    human_duration(-age)
                ),
            })
        } else {
            None
        }
    }

    /// `EQ_PRODUCT=cnc`: the upstream placed every Dhan-format EQ leg as CNC; users who rely on
    /// that keep it, and the answer says which legs were changed.
    fn apply_eq_product(&self, signal: &mut Signal) {
        if !self.eq_product_cnc || signal.format != AlertFormat::Dhan {
            return;
        }
        for leg in &mut signal.legs {
            if leg.instrument == Some(Instrument::Equity) && leg.product != Product::Delivery {
                signal.warnings.push(FieldProblem {
                    field: leg.symbol_field.replace(".symbol", ".productType"),
                    problem: format!("{} placed as CNC (EQ_PRODUCT=cnc)", leg.product),
                });
                leg.product = Product::Delivery;
            }
        }
    }
}

/// `3 h 5 min`, `42 s`: an age for a message.
fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    match secs {
        s if s >= 86_400 => format!("{} days", s / 86_400),
        s if s >= 3600 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}
