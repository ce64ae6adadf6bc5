//! The pipeline of one alert: dedupe → journal → place each leg → record the outcome.
//!
//! The order of steps is the safety argument:
//! 1. The alert, its legs and its dedupe key are journaled in one transaction *before* any
//!    broker call. If that fails, nothing was sent and the sender may safely retry (HTTP 503).
//! 2. A redelivery (same dedupe key while it is live) is answered from the journal and places
//!    nothing, however many copies arrive at once: the journal's unique key decides.
//! 3. Each leg is marked SUBMITTING (committed) before its broker call, so a crash mid-call
//!    leaves a visible "outcome unknown" leg instead of a silent gap.
//! 4. Each leg carries a deterministic `correlationId` stored with it, so the order can always
//!    be found again at the broker.

use std::{net::IpAddr, sync::Arc, time::Duration};

use tokio::sync::Notify;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{
    alert::{FieldProblem, Signal},
    broker::{Broker, BrokerError, OrderRequest, Placement},
    clock::{Clock, ist},
    config::{Mode, RoutingSettings},
    csvlog::CsvLog,
    instruments::{QuantityUnit, source::InstrumentSource},
    market::{self, Calendar, Route, Venue},
    store::{
        Admission, AlertRecord, AlertStatus, DedupeKey, Journal, JournalError, LegStatus,
        LegUpdate, NewAlert, NewLeg, OrderRow, ResolvedLeg,
    },
};

/// Longest a duplicate delivery waits for the first delivery's outcome (see
/// [`Engine::settled_record`]).
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

/// The answer to one delivery (the `/webhook` response body).
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub status: &'static str,
    pub alert_id: String,
    pub duplicate: bool,
    pub mode: String,
    /// How the alert was routed: `{"route":"now"}`, `{"route":"amo","amo_time":…}`,
    /// `{"route":"queue","until":…}` or `{"route":"reject","reason":…}`.
    pub route: serde_json::Value,
    pub legs: Vec<LegView>,
    /// What this delivery carried that was accepted but ignored or changed (see
    /// [`Signal::warnings`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<FieldProblem>,
}

/// One leg in a response.
#[derive(Debug, Clone, Serialize)]
pub struct LegView {
    pub leg: u32,
    pub symbol: String,
    pub exchange: String,
    pub side: String,
    /// Units, as sent to the broker (for futures and options, lots × lot size).
    pub quantity: i64,
    /// `quantity` in lots of the instrument (equities: lot size 1).
    pub lots: i64,
    /// What the leg trades at Dhan (`NIFTY-Dec2026-FUT`, `RELIANCE`) and its security id.
    pub trading_symbol: Option<String>,
    pub security_id: Option<String>,
    pub order_type: String,
    pub product: String,
    pub status: LegStatus,
    pub order_id: Option<String>,
    pub correlation_id: String,
    pub message: Option<String>,
}

impl From<&OrderRow> for LegView {
    fn from(row: &OrderRow) -> Self {
        let units = row.units.unwrap_or(row.quantity);
        LegView {
            leg: row.leg,
            symbol: row.symbol.clone(),
            exchange: row.exchange.as_str().to_owned(),
            side: row.side.as_str().to_owned(),
            quantity: units,
            lots: units / row.lot_size.filter(|l| *l > 0).unwrap_or(1),
            trading_symbol: row.trading_symbol.clone(),
            security_id: row.security_id.clone(),
            order_type: row.order_type.as_str().to_owned(),
            product: row.product.as_str().to_owned(),
            status: row.status,
            order_id: row.order_id.clone(),
            correlation_id: row.correlation_id.clone(),
            message: row.message.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
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
    /// The journal lost track of an alert it reported as a duplicate.
    #[error("duplicate of alert {0}, which the journal cannot read: {1}")]
    DuplicateUnreadable(String, String),
}

/// The pipeline and everything it needs. Cheap to clone (all shared handles).
#[derive(Debug, Clone)]
pub struct Engine {
    pub(crate) journal: Arc<dyn Journal>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) csv: CsvLog,
    pub(crate) clock: Arc<dyn Clock>,
    mode: Mode,
    dedup_window: Duration,
    instruments: InstrumentSource,
    quantity_unit: QuantityUnit,
    /// `EQ_PRODUCT=cnc`: see [`crate::config::InstrumentSettings::eq_product_cnc`].
    eq_product_cnc: bool,
    pub(crate) calendar: Arc<Calendar>,
    pub(crate) routing: RoutingSettings,
    /// Wakes the queue runner when an alert is queued.
    pub(crate) queue_wake: Arc<Notify>,
    /// Set once the start-up reconciliation has run: new orders wait for it (bounded), so an
    /// order whose fate is unknown is looked up before another one is sent.
    pub(crate) reconciled: Arc<tokio::sync::watch::Sender<bool>>,
    /// Woken each time a leg gets the broker's answer: duplicate deliveries waiting for the
    /// first delivery's outcome re-read the journal then, instead of polling it.
    leg_answered: Arc<Notify>,
    /// This process's name as a lease holder (reconciler passes).
    pub(crate) instance: String,
}

/// Longest a new order waits for the start-up reconciliation.
const WAIT_FOR_RECONCILIATION: Duration = Duration::from_secs(10);

/// What an [`Engine`] is built from.
#[derive(Debug)]
pub struct EngineParts {
    pub journal: Arc<dyn Journal>,
    pub broker: Arc<dyn Broker>,
    pub csv: CsvLog,
    pub clock: Arc<dyn Clock>,
    pub mode: Mode,
    pub dedup_window: Duration,
    pub instruments: InstrumentSource,
    pub quantity_unit: QuantityUnit,
    pub eq_product_cnc: bool,
    pub calendar: Arc<Calendar>,
    pub routing: RoutingSettings,
}

impl Engine {
    pub fn new(p: EngineParts) -> Self {
        Self {
            journal: p.journal,
            broker: p.broker,
            csv: p.csv,
            clock: p.clock,
            mode: p.mode,
            dedup_window: p.dedup_window,
            instruments: p.instruments,
            quantity_unit: p.quantity_unit,
            eq_product_cnc: p.eq_product_cnc,
            calendar: p.calendar,
            routing: p.routing,
            queue_wake: Arc::new(Notify::new()),
            reconciled: Arc::new(tokio::sync::watch::Sender::new(false)),
            leg_answered: Arc::new(Notify::new()),
            instance: uuid::Uuid::now_v7().to_string(),
        }
    }

    /// Waits (bounded) until the start-up reconciliation has run.
    pub(crate) async fn wait_for_reconciliation(&self) {
        let mut rx = self.reconciled.subscribe();
        if tokio::time::timeout(WAIT_FOR_RECONCILIATION, rx.wait_for(|done| *done))
            .await
            .is_err()
        {
            tracing::warn!("start-up reconciliation still running; placing the order anyway");
        }
    }

    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    pub fn journal(&self) -> &Arc<dyn Journal> {
        &self.journal
    }

    pub fn routing(&self) -> &RoutingSettings {
        &self.routing
    }

    /// Resolves every leg in the scrip master on `now`'s IST date.
    fn resolve(
        &self,
        signal: &Signal,
        now: DateTime<Utc>,
    ) -> Result<Vec<ResolvedLeg>, EngineError> {
        let instruments = self
            .instruments
            .current()
            .ok_or(EngineError::InstrumentsMissing)?;
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
            Err(EngineError::Unresolvable(problems))
        }
    }

    /// Why the alert is too old (or too new) to place, judged by TradingView's `{{timenow}}`
    /// (the fire time) against `MAX_ALERT_AGE`; never by `time`, the bar's open, which on a
    /// daily chart is hours old. `None` when it may be placed, or carries no `timenow`.
    fn stale(&self, signal: &Signal, now: DateTime<Utc>) -> Option<FieldProblem> {
        let max_age = self.routing.max_alert_age?;
        let text = signal.timenow.as_deref()?;
        let field = match signal.format {
            crate::alert::AlertFormat::Flat => "timenow",
            crate::alert::AlertFormat::Dhan => "meta.timenow",
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
        if !self.eq_product_cnc || signal.format != crate::alert::AlertFormat::Dhan {
            return;
        }
        for leg in &mut signal.legs {
            if leg.instrument == Some(crate::alert::Instrument::Equity)
                && leg.product != crate::alert::Product::Delivery
            {
                signal.warnings.push(FieldProblem {
                    field: leg.symbol_field.replace(".symbol", ".productType"),
                    problem: format!("{} placed as CNC (EQ_PRODUCT=cnc)", leg.product),
                });
                leg.product = crate::alert::Product::Delivery;
            }
        }
    }

    /// Runs one validated alert through the pipeline.
    ///
    /// # Errors
    /// [`EngineError::NotJournaled`] when the alert could not be recorded (nothing was placed).
    pub async fn handle(&self, signal: Signal, intake: Intake) -> Result<Outcome, EngineError> {
        self.handle_reporting(signal, intake, None).await
    }

    /// [`Engine::handle`], telling `admitted` as soon as the journal has taken the alert (new
    /// or a duplicate), so a caller with a deadline can answer from the journal while
    /// placement goes on.
    ///
    /// # Errors
    /// As [`Engine::handle`].
    pub async fn handle_reporting(
        &self,
        signal: Signal,
        intake: Intake,
        admitted: Option<tokio::sync::oneshot::Sender<Admitted>>,
    ) -> Result<Outcome, EngineError> {
        let mut signal = signal;
        self.apply_eq_product(&mut signal);
        let warnings = signal.warnings.clone();
        if !warnings.is_empty() {
            let fields: Vec<&str> = warnings.iter().map(|w| w.field.as_str()).collect();
            tracing::info!(ignored = ?fields, "alert accepted with fields ignored or changed (see the answer's warnings)");
        }
        let now = self.clock.now();
        let resolved = self.resolve(&signal, now)?;
        let venues: Vec<Venue> = resolved
            .iter()
            .filter_map(|r| Venue::from_segment(&r.exchange_segment))
            .collect();
        let policy = signal.when_closed.unwrap_or(self.routing.when_closed);
        // The alert's own amoTime (first leg naming one) wins over AMO_TIME.
        let amo_time = signal
            .legs
            .iter()
            .find_map(|l| l.amo_time)
            .unwrap_or(self.routing.amo_time);
        // A stale or future-dated alert is journaled as refused (so a replay of it is a
        // recognised duplicate) and never placed.
        let stale = self.stale(&signal, now);
        let route = match &stale {
            Some(problem) => Route::Reject {
                reason: problem.problem.clone(),
            },
            None => market::route(
                now,
                &venues,
                policy,
                self.routing.amo_window,
                amo_time,
                &self.calendar,
            ),
        };
        let (initial_status, initial_message, queued_until) = match &route {
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
        let legs = signal
            .legs
            .iter()
            .zip(resolved)
            .enumerate()
            .map(|(i, (leg, resolved))| {
                let leg_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
                let mut order = leg.clone();
                // The route decides whether this is an AMO, not the alert's wish alone.
                match &route {
                    Route::Amo { amo_time } => {
                        order.amo = true;
                        order.amo_time = Some(order.amo_time.unwrap_or(*amo_time));
                    }
                    _ => order.amo = false,
                }
                NewLeg {
                    leg_no,
                    correlation_id: correlation_id(&alert_id, leg_no, now),
                    order,
                    resolved,
                }
            })
            .collect();
        let alert = NewAlert {
            id: alert_id.clone(),
            received_at: now,
            client_ip: intake.client_ip.map(|ip| ip.to_string()),
            format: signal.format.as_str(),
            alert_type: signal.alert_type.clone(),
            strategy: signal.strategy.clone(),
            dedupe: dedupe_key(&signal, now, self.dedup_window),
            payload: intake.payload.to_string(),
            mode: self.mode,
            legs,
            route: serde_json::to_string(&route).unwrap_or_default(),
            queued_until,
            initial_status,
            initial_message,
        };

        match self
            .journal
            .admit(&alert)
            .await
            .map_err(EngineError::NotJournaled)?
        {
            Admission::Duplicate { alert_id } => {
                tracing::info!(%alert_id, "duplicate delivery; answered from the journal, nothing placed");
                if let Some(tx) = admitted {
                    let _ = tx.send(Admitted {
                        alert_id: alert_id.clone(),
                        duplicate: true,
                        warnings: warnings.clone(),
                    });
                }
                let record = self.settled_record(&alert_id).await?;
                let mut outcome = self.duplicate_outcome(&record);
                outcome.warnings = warnings;
                Ok(outcome)
            }
            Admission::Admitted => {
                tracing::info!(%alert_id, legs = alert.legs.len(), route = %alert.route, "alert journaled");
                crate::crash::point("after_journal");
                if let Some(tx) = admitted {
                    let _ = tx.send(Admitted {
                        alert_id: alert_id.clone(),
                        duplicate: false,
                        warnings: warnings.clone(),
                    });
                }
                if alert.initial_status == LegStatus::Queued {
                    self.queue_wake.notify_one();
                }
                let mut outcome = self.place_legs(&alert).await;
                outcome.warnings = warnings;
                match stale {
                    Some(problem) => Err(EngineError::Stale {
                        alert_id: alert_id.clone(),
                        problem,
                    }),
                    None => Ok(outcome),
                }
            }
        }
    }

    /// The journaled alert, once every leg has the broker's answer (ACCEPTED counts: the
    /// exchange's verdict can take minutes), or as it stands after [`DUPLICATE_WAIT`]. A
    /// redelivery that arrives while the first delivery is still being placed thus answers
    /// with the first delivery's outcome rather than "in progress"; the wait is bounded so the
    /// answer stays inside TradingView's 3 s, and is woken by the placement itself.
    async fn settled_record(&self, alert_id: &str) -> Result<AlertRecord, EngineError> {
        let deadline = tokio::time::Instant::now() + DUPLICATE_WAIT;
        loop {
            // Registered before the read, so an answer journaled in between is not missed.
            let answered = self.leg_answered.notified();
            let mut answered = std::pin::pin!(answered);
            answered.as_mut().enable();
            let record = self
                .journal
                .alert(alert_id)
                .await
                .map_err(|e| EngineError::DuplicateUnreadable(alert_id.to_owned(), e.to_string()))?
                .ok_or_else(|| {
                    EngineError::DuplicateUnreadable(alert_id.to_owned(), "not found".to_owned())
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

    fn duplicate_outcome(&self, record: &AlertRecord) -> Outcome {
        Self::outcome_of(record, true)
    }

    /// The answer for a journaled alert as it stands now.
    pub fn outcome_of(record: &AlertRecord, duplicate: bool) -> Outcome {
        Outcome {
            status: AlertStatus::from_legs(record.legs.iter().map(|l| l.status)).as_str(),
            alert_id: record.id.clone(),
            duplicate,
            mode: record.mode.as_str().to_owned(),
            route: record
                .route
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok())
                .unwrap_or(serde_json::Value::Null),
            legs: record.legs.iter().map(LegView::from).collect(),
            warnings: Vec::new(),
        }
    }

    /// Places the legs of a freshly journaled alert, in order, recording each step (legs routed
    /// to the queue or refused are only reported).
    async fn place_legs(&self, alert: &NewAlert) -> Outcome {
        let mut rows: Vec<OrderRow> = alert.legs.iter().map(|leg| order_row(alert, leg)).collect();
        if alert.initial_status == LegStatus::Received {
            self.wait_for_reconciliation().await;
        }
        for (leg, row) in alert.legs.iter().zip(rows.iter_mut()) {
            match alert.initial_status {
                LegStatus::Received => self.place_leg(&alert.id, leg, row).await,
                // Queued legs are placed later by the queue; their CSV row comes then.
                LegStatus::Queued => continue,
                _ => {}
            }
            self.csv
                .append(&alert.alert_type, row, self.clock.now())
                .await;
        }
        let status = AlertStatus::from_legs(rows.iter().map(|r| r.status));
        if let Err(error) = self
            .journal
            .set_alert_status(&alert.id, status, self.clock.now())
            .await
        {
            tracing::error!(alert_id = %alert.id, %error, "could not record the alert's status");
        }
        Outcome {
            status: status.as_str(),
            alert_id: alert.id.clone(),
            duplicate: false,
            mode: self.mode.to_string(),
            route: serde_json::from_str(&alert.route).unwrap_or(serde_json::Value::Null),
            legs: rows.iter().map(LegView::from).collect(),
            warnings: Vec::new(),
        }
    }

    /// One leg: SUBMITTING (committed) → broker → result. `row` mirrors what was journaled.
    pub(crate) async fn place_leg(&self, alert_id: &str, leg: &NewLeg, row: &mut OrderRow) {
        let submitting = LegUpdate {
            status: LegStatus::Submitting,
            broker_order_id: None,
            fill_price: None,
            message: None,
        };
        if let Err(error) = self
            .journal
            .update_leg(alert_id, leg.leg_no, &submitting, self.clock.now())
            .await
        {
            // Not sent: without the SUBMITTING mark a crash could not tell whether it was.
            tracing::error!(alert_id = %alert_id, leg = leg.leg_no, %error, "journal refused SUBMITTING; leg not sent");
            row.message = Some("not sent: the journal could not record the attempt".to_owned());
            return;
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
                .then(|| leg.order.amo_time.unwrap_or(self.routing.amo_time)),
        };
        let answer = self.broker.place(request).await;
        if answer.is_ok() {
            crate::crash::point("after_broker");
        }
        let update = match answer {
            Ok(Placement::Filled {
                order_id,
                fill_price,
                message,
            }) => LegUpdate {
                status: LegStatus::Filled,
                broker_order_id: Some(order_id),
                fill_price,
                message: Some(message),
            },
            Ok(Placement::Accepted { order_id, message }) => LegUpdate {
                status: LegStatus::Accepted,
                broker_order_id: Some(order_id),
                fill_price: None,
                message: Some(message),
            },
            Ok(Placement::Pending { order_id, message }) => LegUpdate {
                status: LegStatus::Pending,
                broker_order_id: Some(order_id),
                fill_price: None,
                message: Some(message),
            },
            Ok(Placement::Rejected { order_id, message }) => LegUpdate {
                status: LegStatus::Rejected,
                broker_order_id: order_id,
                fill_price: None,
                message: Some(message),
            },
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
        if let Err(error) = self
            .journal
            .update_leg(alert_id, leg.leg_no, &update, self.clock.now())
            .await
        {
            tracing::error!(alert_id = %alert_id, leg = leg.leg_no, %error, "could not journal the broker's answer");
        }
        self.leg_answered.notify_waiters();
    }
}

/// How far in the future an alert's `timenow` may be (clock skew) before it is refused.
const MAX_CLOCK_AHEAD: chrono::Duration = chrono::Duration::seconds(60);

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

/// The journal row a leg starts as (kept in memory to answer without re-reading).
fn order_row(alert: &NewAlert, leg: &NewLeg) -> OrderRow {
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
        security_id: Some(leg.resolved.security_id.clone()),
        exchange_segment: Some(leg.resolved.exchange_segment.clone()),
        trading_symbol: Some(leg.resolved.trading_symbol.clone()),
        units: Some(i64::from(leg.resolved.units)),
        lot_size: Some(i64::from(leg.resolved.lot_size)),
        mode: alert.mode,
        status: alert.initial_status,
        order_id: None,
        fill_price: None,
        message: alert.initial_message.clone(),
        updated_at: alert.received_at,
    }
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What makes two deliveries the same alert:
/// - `strategy` + explicit `id`: the sender says so; the key never expires;
/// - otherwise the normalised signal (secret excluded; numbers and spellings canonical, so
///   `"1"` and `1` agree). With `timenow` (TradingView's fire time) in it, the key never
///   expires: the same fire time is the same alert, whenever it arrives. Without, identical
///   alerts within `window` are one.
pub fn dedupe_key(signal: &Signal, now: DateTime<Utc>, window: Duration) -> DedupeKey {
    if let Some(id) = &signal.id {
        let ident = serde_json::json!([signal.strategy, id]).to_string();
        return DedupeKey {
            key: format!("id:{}", sha256_hex(ident.as_bytes())),
            expires_at: None,
        };
    }
    // Serialising a Signal cannot fail (plain data, string keys); an empty string would only
    // make every such alert share one key, which fails safe (duplicates, not double orders).
    let canonical = serde_json::to_string(signal).unwrap_or_default();
    let hash = sha256_hex(canonical.as_bytes());
    if signal.timenow.is_some() {
        DedupeKey {
            key: format!("tn:{hash}"),
            expires_at: None,
        }
    } else {
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::seconds(120));
        DedupeKey {
            key: format!("win:{hash}"),
            expires_at: Some(now + window),
        }
    }
}

/// The `correlationId` sent to the broker with a leg: `DH` + IST date + 12 hex digits of the
/// alert id's hash + `L` + leg number, e.g. `DH261128a1b2c3d4e5f6L1`. At most 24 characters of
/// `[A-Za-z0-9]` (Dhan accepts 25 of `[A-Za-z0-9 _-]`); the date makes it readable in Dhan's
/// order book and unique across days, as FIX practice advises for client order ids.
pub fn correlation_id(alert_id: &str, leg_no: u32, received_at: DateTime<Utc>) -> String {
    let hash = sha256_hex(alert_id.as_bytes());
    format!(
        "DH{}{}L{}",
        ist(received_at).format("%y%m%d"),
        &hash[..12],
        leg_no.min(99)
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::alert::parse_signal;

    fn signal(v: serde_json::Value) -> Signal {
        parse_signal(v.as_object().unwrap()).unwrap()
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 4, 0, 0).unwrap()
    }

    #[test]
    fn correlation_ids_fit_dhans_limits_and_are_deterministic() {
        let cid = correlation_id("0193-some-alert-id", 20, at());
        assert!(cid.len() <= 25, "{cid}");
        assert!(
            cid.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert!(cid.starts_with("DH261127"), "{cid}");
        assert_eq!(cid, correlation_id("0193-some-alert-id", 20, at()));
        assert_ne!(cid, correlation_id("0193-some-alert-id", 1, at()));
        assert_ne!(cid, correlation_id("another-alert", 20, at()));
    }

    #[test]
    fn equal_alerts_written_differently_share_a_key() {
        let a =
            signal(json!({"symbol":"NSE:SBIN","action":"buy","quantity":"1","product":"intraday"}));
        let b = signal(
            json!({"symbol":"SBIN","exchange":"NSE","action":"BUY","quantity":1,"product":"I"}),
        );
        let w = Duration::from_secs(120);
        assert_eq!(dedupe_key(&a, at(), w), dedupe_key(&b, at(), w));
        assert_eq!(
            dedupe_key(&a, at(), w).expires_at,
            Some(at() + chrono::Duration::seconds(120))
        );
    }

    #[test]
    fn timenow_and_id_make_permanent_keys() {
        let w = Duration::from_secs(120);
        let with_time = signal(
            json!({"symbol":"NSE:SBIN","action":"buy","quantity":1,"product":"I",
            "timenow":"2026-11-27T04:00:00Z"}),
        );
        let other_time = signal(
            json!({"symbol":"NSE:SBIN","action":"buy","quantity":1,"product":"I",
            "timenow":"2026-11-27T04:05:00Z"}),
        );
        assert_eq!(dedupe_key(&with_time, at(), w).expires_at, None);
        assert_ne!(
            dedupe_key(&with_time, at(), w).key,
            dedupe_key(&other_time, at(), w).key
        );

        let id_a = signal(
            json!({"id":"42","strategy":"s1","symbol":"NSE:SBIN","action":"buy","quantity":1,"product":"I"}),
        );
        let id_b = signal(
            json!({"id":"42","strategy":"s1","symbol":"NSE:TCS","action":"sell","quantity":9,"product":"I"}),
        );
        let id_c = signal(
            json!({"id":"42","strategy":"s2","symbol":"NSE:SBIN","action":"buy","quantity":1,"product":"I"}),
        );
        assert_eq!(
            dedupe_key(&id_a, at(), w),
            dedupe_key(&id_b, at(), w),
            "same strategy + id = same alert"
        );
        assert_ne!(
            dedupe_key(&id_a, at(), w).key,
            dedupe_key(&id_c, at(), w).key
        );
        assert_eq!(dedupe_key(&id_a, at(), w).expires_at, None);
    }
}
