//! The scheduled square-off (`SQUARE_OFF_AT`, e.g. 15:12 IST): on each NSE trading day, before
//! Dhan's own auto square-off (and its fee), close the intraday positions dhanhook opened.
//!
//! Only NSE/BSE equity and equity-derivative instruments (their session closes at 15:30);
//! commodity and currency positions trade on past that time and are left alone.
//!
//! "Opened by dhanhook" is read from the journal: the instruments with an INTRADAY leg of this
//! mode sent to the broker that day (executed, or perhaps executed: the order tracker may not
//! have seen the fill yet; an instrument with no position left places nothing). For each one, dhanhook's orders still open
//! on it are cancelled first (a resting order would otherwise count towards the position, and
//! could fill after the close-out), then an `exit` runs through the pipeline like any
//! position-aware alert: under the instrument's lease, against the position read at that
//! moment, failing closed when it cannot be read. Dhan nets an instrument's intraday position,
//! so the exit closes all of it, including any part placed by hand.
//!
//! Exits are idempotent (a flat position places nothing), so a second instance or a restart
//! repeating the run changes nothing; a journal lease named after the date keeps two instances
//! from working at the same moment anyway. A service started after the time while the market
//! is still open squares off at once.

use std::{collections::BTreeMap, sync::Arc};

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use tokio_util::sync::CancellationToken;

use crate::{
    alert::{AlertFormat, Intent, LegOrder, OrderType, Product, Side, Signal, Validity},
    clock::{Clock, ist, ist_offset},
    domain::Mode,
    market::{Calendar, Venue},
    pipeline::{Intake, Pipeline},
    store::{Journal, ResolvedLeg},
};

/// How long one run holds the day's lease (it renews nothing: a run takes seconds).
const RUN_LEASE: chrono::Duration = chrono::Duration::minutes(10);
/// Journal legs read to find the day's intraday instruments.
const LEGS_READ: u32 = 10_000;
/// The segments squared off: those of the NSE/BSE equity and equity-derivative sessions that
/// close at 15:30. Commodity (MCX, until 23:30) and currency (until 17:00) positions are left
/// to trade on.
const SEGMENTS: [&str; 4] = ["NSE_EQ", "BSE_EQ", "NSE_FNO", "BSE_FNO"];

/// Closes the day's intraday positions at `SQUARE_OFF_AT`.
#[derive(Debug)]
pub struct SquareOff {
    journal: Arc<dyn Journal>,
    pipeline: Pipeline,
    clock: Arc<dyn Clock>,
    calendar: Arc<Calendar>,
    mode: Mode,
    at: NaiveTime,
    instance: String,
}

impl SquareOff {
    pub fn new(
        journal: Arc<dyn Journal>,
        pipeline: Pipeline,
        clock: Arc<dyn Clock>,
        calendar: Arc<Calendar>,
        mode: Mode,
        at: NaiveTime,
    ) -> Self {
        Self {
            journal,
            pipeline,
            clock,
            calendar,
            mode,
            at,
            instance: uuid::Uuid::now_v7().to_string(),
        }
    }

    pub async fn run_until_stopped(self, stop: CancellationToken) {
        let now = self.clock.now();
        // Started after today's time with the market still open: square off now.
        let today = ist(now).date_naive();
        if self.time_on(today).is_some_and(|at| at <= now)
            && self.calendar.is_open(Venue::NseEquity, now)
        {
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.square_off(today) => {}
            }
        }
        loop {
            let Some((day, at)) = self.next_run(self.clock.now()) else {
                return;
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.clock.sleep_until(at) => {}
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.square_off(day) => {}
            }
        }
    }

    /// `SQUARE_OFF_AT` on `day`, if `day` is an NSE trading day.
    fn time_on(&self, day: NaiveDate) -> Option<DateTime<Utc>> {
        if !self.calendar.is_trading_day(Venue::NseEquity, day) {
            return None;
        }
        ist_offset()
            .from_local_datetime(&day.and_time(self.at))
            .single()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The next run strictly after `now`.
    fn next_run(&self, now: DateTime<Utc>) -> Option<(NaiveDate, DateTime<Utc>)> {
        let today = ist(now).date_naive();
        (0..15).find_map(|d| {
            let day = today + chrono::Duration::days(d);
            let at = self.time_on(day)?;
            (at > now).then_some((day, at))
        })
    }

    async fn square_off(&self, day: NaiveDate) {
        let now = self.clock.now();
        let lease = format!("square-off:{day}");
        match self
            .journal
            .try_lease(&lease, &self.instance, now + RUN_LEASE, now)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(%day, "another instance is squaring off");
                return;
            }
            Err(error) => {
                tracing::error!(%day, %error, "could not take the square-off lease; positions are NOT squared off");
                return;
            }
        }
        match self.instruments(day).await {
            Ok(instruments) => {
                tracing::info!(%day, instruments = instruments.len(), "square-off");
                for (leg, resolved) in instruments.into_values() {
                    self.close(day, leg, resolved).await;
                }
            }
            Err(error) => {
                tracing::error!(%day, %error, "could not read the day's legs; positions are NOT squared off");
            }
        }
        if let Err(error) = self.journal.release_lease(&lease, &self.instance).await {
            tracing::warn!(%error, "could not release the square-off lease; it lapses by itself");
        }
    }

    /// The instruments with an intraday leg of this mode sent on `day`, each with the symbol
    /// to name it by.
    async fn instruments(
        &self,
        day: NaiveDate,
    ) -> Result<BTreeMap<(String, String), (LegOrder, ResolvedLeg)>, String> {
        let rows = self
            .journal
            .recent_orders(LEGS_READ)
            .await
            .map_err(|e| e.to_string())?;
        let mut found = BTreeMap::new();
        for row in rows {
            use crate::store::LegStatus::{Queued, Received, Rejected};
            let sent =
                row.order_id.is_some() || !matches!(row.status, Rejected | Received | Queued);
            if row.mode != self.mode
                || row.product != Product::Intraday
                || !sent
                || ist(row.received_at).date_naive() != day
            {
                continue;
            }
            let (Some(security_id), Some(segment)) =
                (row.security_id.clone(), row.exchange_segment.clone())
            else {
                continue;
            };
            if !SEGMENTS.contains(&segment.as_str()) {
                continue;
            }
            let trading_symbol = row
                .trading_symbol
                .clone()
                .unwrap_or_else(|| row.symbol.clone());
            let leg = LegOrder {
                symbol: trading_symbol.clone(),
                exchange: row.exchange,
                side: Side::Sell,
                quantity: 0,
                order_type: OrderType::Market,
                product: Product::Intraday,
                validity: Validity::Day,
                price: None,
                trigger_price: None,
                instrument: None,
                option: None,
                future_expiry: None,
                symbol_field: "symbol".to_owned(),
                quantity_field: "quantity".to_owned(),
                amo: false,
                amo_time: None,
                // An exit: it passes the kill switch and the entry window.
                closes: true,
            };
            let resolved = ResolvedLeg {
                security_id: security_id.clone(),
                exchange_segment: segment.clone(),
                trading_symbol,
                lot_size: row
                    .lot_size
                    .and_then(|l| u32::try_from(l).ok())
                    .unwrap_or(1),
                units: 0,
            };
            found
                .entry((segment, security_id))
                .or_insert((leg, resolved));
        }
        Ok(found)
    }

    /// Cancels our open orders on the instrument, then exits its intraday position.
    async fn close(&self, day: NaiveDate, leg: LegOrder, resolved: ResolvedLeg) {
        let who = format!("square-off {day}");
        match self
            .pipeline
            .cancel_open_orders(&who, std::slice::from_ref(&resolved))
            .await
        {
            Ok(cancels) => {
                for c in cancels {
                    tracing::info!(symbol = %c.symbol, order_id = c.order_id.as_deref().unwrap_or(""), result = c.result, message = %c.message, "square-off: open order");
                }
            }
            Err(error) => {
                tracing::warn!(symbol = %resolved.trading_symbol, %error, "square-off: open orders could not be listed; exiting anyway");
            }
        }
        let signal = Signal {
            format: AlertFormat::Flat,
            alert_type: "square_off".to_owned(),
            strategy: Some("square-off".to_owned()),
            id: Some(format!(
                "{day}-{}-{}-{}",
                resolved.exchange_segment,
                resolved.security_id,
                self.clock.now().timestamp()
            )),
            timenow: None,
            interval: None,
            bar_time: None,
            // At the set time the market is open; should it not be, an exit must not wait
            // for tomorrow's open.
            when_closed: Some(crate::domain::WhenClosed::Reject),
            legs: vec![leg],
            on_leg_reject: None,
            intent: Intent::Exit,
            warnings: Vec::new(),
        };
        let intake = Intake {
            client_ip: None,
            payload: serde_json::json!({"square_off": day.to_string(),
                "security_id": resolved.security_id, "exchange_segment": resolved.exchange_segment}),
        };
        let symbol = resolved.trading_symbol.clone();
        match self
            .pipeline
            .handle_resolved(signal, vec![resolved], intake)
            .await
        {
            Ok(handled) => {
                tracing::info!(%symbol, alert_id = %handled.record.id, legs = handled.record.legs.len(), positions = ?handled.positions, "square-off: exit");
            }
            Err(error) => {
                tracing::error!(%symbol, %error, "square-off: the position could not be closed; close it by hand");
            }
        }
    }
}
