//! Positions: what an alert's orders must be, given what the account already holds.
//!
//! A TradingView *strategy* thinks in positions ("long 10", "reverse", "flat"); an order-only
//! bridge doubles a position when an alert repeats and misses a reversal's second half. So for
//! position-aware alerts (`position`, `exit`, `reverse`, Dhan's `manage_position: EXIT_ALL`)
//! dhanhook reads the net position at the broker, adds its own orders that are not final yet,
//! and orders only the difference to the target. A repeat of the same target orders nothing.
//!
//! The same reading guards SELLs: a delivery (CNC/MTF) SELL needs the shares (holdings'
//! `availableQty` plus today's net position, less what our open SELLs already sell), and an
//! intraday or margin SELL may open a short unless `ALLOW_SHORT=false`. A leg that fails is
//! journaled BLOCKED with the rule and the numbers, and never sent.
//!
//! Three rules make the numbers trustworthy:
//! - **Fail closed.** If the broker's positions (or holdings, or order book) cannot be read,
//!   nothing is placed and the answer says why: an unreadable position is never taken as 0
//!   (OpenAlgo's smart orders do that, and double positions when Dhan hiccups).
//! - **Serialized.** The computation for an instrument runs under a journal lease named
//!   `position:<segment>:<security id>`, held from reading the position until the resulting
//!   legs are journaled, across every instance sharing the journal. Two alerts thus never
//!   compute from the same stale position: the second one sees the first one's legs.
//! - **Own orders counted once.** Our legs not yet final (RECEIVED … PART_TRADED, UNKNOWN)
//!   count with what they still have to execute. Each is matched by its correlationId in the
//!   broker's order book, read before and after the positions: a fill landing between the
//!   reads would be counted twice or not at all, so the reads are repeated until our orders
//!   stand still across them.
//!
//! Our legs count only if they belong to the current session: received after the last close of
//! their market before now. An order from an earlier day is over at the broker (a DAY order
//! expires at the close), whatever the journal still says of it (a leg left UNKNOWN, or one the
//! order tracker stopped following): counting it would shift every later target for good.
//!
//! Crossing zero (long 10 → short 10) is one order (SELL 20): Dhan nets an instrument's
//! position per product, and intraday and margin products may go short; a delivery position
//! cannot be targeted at all (`alert::position_problems` refuses it: it would include holdings
//! bought outside the strategy), so no split into exit + entry is ever needed.

use std::{collections::HashMap, sync::Arc, time::Duration};

use crate::{
    alert::{Intent, LegOrder, Product, Side, Signal},
    broker::{BookOrder, Broker, Holding, NetPosition},
    clock::Clock,
    domain::{Mode, QuantityUnit},
    market::{Calendar, Venue},
    store::{Journal, LegStatus, OrderRow, ResolvedLeg},
};

/// How long an alert waits for another alert's computation on the same instrument.
const LEASE_WAIT: Duration = Duration::from_secs(5);
/// Pause between attempts at a busy lease.
const LEASE_RETRY: Duration = Duration::from_millis(20);
/// How long a lease lasts if its holder dies; the computation itself is cut off well before.
const LEASE_TTL: chrono::Duration = chrono::Duration::seconds(30);
/// Longest the reads and the journaling may take under the lease (less than [`LEASE_TTL`], so
/// the lease never lapses while it is relied on).
const WORK_LIMIT: Duration = Duration::from_secs(20);
/// Attempts at a reading in which our own orders stand still.
const SNAPSHOT_ATTEMPTS: u32 = 3;

/// One leg to journal: the order, what it trades, and why it is refused (never sent) if it is.
#[derive(Debug, Clone)]
pub(crate) struct PlannedLeg {
    pub order: LegOrder,
    pub resolved: ResolvedLeg,
    pub refused: Option<String>,
}

/// What the computation made of an alert: the legs to journal (possibly none) and one line
/// per instrument saying how it got there (returned in the answer).
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    pub legs: Vec<PlannedLeg>,
    pub notes: Vec<String>,
}

/// Reads positions and works out position-aware alerts and SELL checks (see the module doc).
#[derive(Debug, Clone)]
pub struct PositionDesk {
    pub(super) journal: Arc<dyn Journal>,
    pub(super) broker: Arc<dyn Broker>,
    pub(super) clock: Arc<dyn Clock>,
    /// Where a session ends: our legs from before the last close are not counted.
    calendar: Arc<Calendar>,
    pub(super) mode: Mode,
    quantity_unit: QuantityUnit,
    /// `ALLOW_SHORT`: an intraday or margin SELL may open a short.
    allow_short: bool,
}

/// The leases an alert holds while it computes; give them back with [`PositionDesk::release`].
#[derive(Debug)]
pub(crate) struct Held {
    names: Vec<String>,
    holder: String,
}

/// The broker's view, read consistently with our own open legs.
#[derive(Debug, Default)]
struct Snapshot {
    positions: Vec<NetPosition>,
    holdings: Option<Vec<Holding>>,
    /// Our open legs by instrument (segment, security id), with what each still has to do.
    own: HashMap<(String, String), Vec<(OrderRow, i64)>>,
}

impl Snapshot {
    fn net(&self, r: &ResolvedLeg, product: Product) -> i64 {
        self.positions
            .iter()
            .filter(|p| {
                p.security_id == r.security_id
                    && p.exchange_segment == r.exchange_segment
                    && p.product.eq_ignore_ascii_case(product.as_str())
            })
            .map(|p| p.net_qty)
            .sum()
    }

    fn holdings(&self, r: &ResolvedLeg) -> i64 {
        self.holdings
            .iter()
            .flatten()
            .filter(|h| h.security_id == r.security_id)
            .map(|h| h.available_qty.max(0))
            .sum()
    }

    /// Our open legs on the instrument in `product`: (signed remaining of all, remaining of
    /// the SELLs alone, as a negative number).
    fn own(&self, r: &ResolvedLeg, product: Product) -> (i64, i64) {
        let key = (r.exchange_segment.clone(), r.security_id.clone());
        let mut all = 0;
        let mut sells = 0;
        for (row, remaining) in self.own.get(&key).into_iter().flatten() {
            if row.product != product {
                continue;
            }
            match row.side {
                Side::Buy => all += remaining,
                Side::Sell => {
                    all -= remaining;
                    sells -= remaining;
                }
            }
        }
        (all, sells)
    }
}

impl PositionDesk {
    pub fn new(
        journal: Arc<dyn Journal>,
        broker: Arc<dyn Broker>,
        clock: Arc<dyn Clock>,
        calendar: Arc<Calendar>,
        mode: Mode,
        quantity_unit: QuantityUnit,
        allow_short: bool,
    ) -> Self {
        Self {
            journal,
            broker,
            clock,
            calendar,
            mode,
            quantity_unit,
            allow_short,
        }
    }

    /// Whether the alert's legs depend on the account's positions: a position-aware alert,
    /// or a SELL that must be checked.
    pub(crate) fn needed_for(&self, signal: &Signal) -> bool {
        match signal.intent {
            Intent::Target | Intent::Exit | Intent::Reverse => true,
            Intent::Cancel => false,
            Intent::Orders => signal
                .legs
                .iter()
                .any(|l| l.side == Side::Sell && (is_delivery(l.product) || !self.allow_short)),
        }
    }

    /// Takes the lease of every instrument in `resolved` (in a fixed order, so two alerts on
    /// the same instruments cannot wait on each other), waiting up to [`LEASE_WAIT`].
    ///
    /// # Errors
    /// Why not: another alert kept an instrument busy, or the journal could not be asked.
    pub(crate) async fn hold(&self, resolved: &[ResolvedLeg]) -> Result<Held, String> {
        let mut names: Vec<String> = resolved
            .iter()
            .map(|r| format!("position:{}:{}", r.exchange_segment, r.security_id))
            .collect();
        names.sort();
        names.dedup();
        // A holder per computation, not per instance: two alerts in one process must exclude
        // each other too.
        let mut held = Held {
            names: Vec::new(),
            holder: uuid::Uuid::now_v7().to_string(),
        };
        let deadline = tokio::time::Instant::now() + LEASE_WAIT;
        for name in names {
            loop {
                let now = self.clock.now();
                match self
                    .journal
                    .try_lease(&name, &held.holder, now + LEASE_TTL, now)
                    .await
                {
                    Ok(true) => {
                        held.names.push(name);
                        break;
                    }
                    Ok(false) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(LEASE_RETRY).await;
                    }
                    Ok(false) => {
                        self.release(held).await;
                        return Err(format!(
                            "another alert on the same instrument was still being worked out after {} s ({name})",
                            LEASE_WAIT.as_secs()
                        ));
                    }
                    Err(e) => {
                        self.release(held).await;
                        return Err(format!("the journal could not take the lease {name}: {e}"));
                    }
                }
            }
        }
        Ok(held)
    }

    /// Gives the leases back (a lease that cannot be released lapses after [`LEASE_TTL`]).
    pub(crate) async fn release(&self, held: Held) {
        for name in &held.names {
            if let Err(error) = self.journal.release_lease(name, &held.holder).await {
                tracing::warn!(lease = %name, %error, "could not release a position lease; it lapses by itself");
            }
        }
    }

    /// Works out the legs of `signal` (resolved leg by leg in `resolved`) against the
    /// account's positions. Call it while holding the instruments' leases.
    ///
    /// # Errors
    /// Why the positions could not be read: nothing may be placed.
    pub(crate) async fn plan(
        &self,
        signal: &Signal,
        resolved: Vec<ResolvedLeg>,
    ) -> Result<Plan, String> {
        match tokio::time::timeout(WORK_LIMIT, self.plan_inner(signal, resolved)).await {
            Ok(plan) => plan,
            Err(_) => Err(format!(
                "reading the positions took longer than {} s",
                WORK_LIMIT.as_secs()
            )),
        }
    }

    async fn plan_inner(
        &self,
        signal: &Signal,
        resolved: Vec<ResolvedLeg>,
    ) -> Result<Plan, String> {
        let need_holdings = signal.intent == Intent::Orders
            && signal
                .legs
                .iter()
                .any(|l| l.side == Side::Sell && is_delivery(l.product));
        let snapshot = self.snapshot(&resolved, need_holdings).await?;
        let mut plan = Plan::default();
        // What this alert's earlier legs already do to an instrument, so two SELLs in one
        // alert are checked together.
        let mut planned: HashMap<(String, String, &'static str), (i64, i64)> = HashMap::new();
        for (leg, r) in signal.legs.iter().zip(resolved) {
            let broker_net = snapshot.net(&r, leg.product);
            let (own_all, own_sells) = snapshot.own(&r, leg.product);
            let key = (
                r.exchange_segment.clone(),
                r.security_id.clone(),
                leg.product.as_str(),
            );
            let (planned_all, planned_sells) = planned.get(&key).copied().unwrap_or_default();
            let current = broker_net + own_all + planned_all;
            let counted = describe_current(broker_net, own_all + planned_all);
            let order = match signal.intent {
                Intent::Orders | Intent::Cancel => Some((leg.clone(), r.clone())),
                Intent::Target | Intent::Exit | Intent::Reverse => {
                    let size = i64::from(r.units);
                    let target = match signal.intent {
                        Intent::Target => match leg.side {
                            Side::Buy => size,
                            Side::Sell => -size,
                        },
                        Intent::Reverse if size > 0 => -current.signum() * size,
                        Intent::Reverse => -current,
                        _ => 0,
                    };
                    let delta = target - current;
                    let what = match signal.intent {
                        Intent::Exit => "exit".to_owned(),
                        Intent::Reverse if current == 0 => {
                            "reverse: the position is flat, nothing to reverse".to_owned()
                        }
                        Intent::Reverse => format!("reverse to {}", signed(target)),
                        _ => format!("target {}", signed(target)),
                    };
                    let line = |tail: &str| {
                        format!(
                            "{} {}: position {} ({counted}); {what}: {tail}",
                            r.trading_symbol,
                            leg.product,
                            signed(current)
                        )
                    };
                    if delta == 0 {
                        plan.notes.push(line("already there, nothing placed"));
                        None
                    } else {
                        let side = if delta > 0 { Side::Buy } else { Side::Sell };
                        let units = u32::try_from(delta.unsigned_abs()).map_err(|_| {
                            format!(
                                "{} {}: the difference {delta} is too large",
                                r.trading_symbol, leg.product
                            )
                        })?;
                        plan.notes.push(line(&format!("{} {units}", side.as_str())));
                        // Towards flat without crossing it: an exit, which the kill switch and
                        // the entry window let through. Crossing zero opens a position: an entry.
                        let closes = target == 0
                            || (target.signum() == current.signum()
                                && target.abs() < current.abs());
                        let (mut order, r) = self.derived(leg, &r, side, units);
                        order.closes = closes;
                        Some((order, r))
                    }
                }
            };
            let Some((order, r)) = order else { continue };
            let refused = if order.side == Side::Sell {
                let sells_before = own_sells + planned_sells;
                self.sell_refusal(&order, &r, &snapshot, broker_net, sells_before)
            } else {
                None
            };
            if refused.is_none() {
                let entry = planned.entry(key).or_default();
                let units = i64::from(r.units);
                match order.side {
                    Side::Buy => entry.0 += units,
                    Side::Sell => {
                        entry.0 -= units;
                        entry.1 -= units;
                    }
                }
            }
            plan.legs.push(PlannedLeg {
                order,
                resolved: r,
                refused,
            });
        }
        Ok(plan)
    }

    /// The order that moves a position by `units` towards its target: the alert's leg with
    /// its side and quantity replaced.
    fn derived(
        &self,
        leg: &LegOrder,
        r: &ResolvedLeg,
        side: Side,
        units: u32,
    ) -> (LegOrder, ResolvedLeg) {
        let lot = r.lot_size.max(1);
        let mut order = leg.clone();
        order.side = side;
        // In the alert's own unit (lots for F&O with FNO_QUANTITY=lots): positions in F&O
        // are whole lots, so the division is exact.
        order.quantity = match self.quantity_unit {
            QuantityUnit::Lots if lot > 1 => units / lot,
            _ => units,
        };
        let mut r = r.clone();
        r.units = units;
        (order, r)
    }

    /// Why a SELL may not be sent (with the numbers), or `None` when it may.
    fn sell_refusal(
        &self,
        order: &LegOrder,
        r: &ResolvedLeg,
        snapshot: &Snapshot,
        broker_net: i64,
        open_sells: i64,
    ) -> Option<String> {
        let units = i64::from(r.units);
        if is_delivery(order.product) {
            let holdings = snapshot.holdings(r);
            let available = holdings + broker_net + open_sells;
            (units > available).then(|| {
                format!(
                    "blocked by the SELL check: SELL {units} {} ({}) needs {units} shares to sell, and {} are available: holdings {holdings} (availableQty) + today's net position {} {} in open SELL orders of dhanhook",
                    r.trading_symbol,
                    order.product,
                    available.max(0),
                    signed(broker_net),
                    minus(open_sells),
                )
            })
        } else if !self.allow_short {
            let after = broker_net + open_sells - units;
            (after < 0).then(|| {
                format!(
                    "blocked by ALLOW_SHORT=false: SELL {units} {} ({}) would leave the position short at {after}: net position {} {} in open SELL orders of dhanhook",
                    r.trading_symbol,
                    order.product,
                    signed(broker_net),
                    minus(open_sells),
                )
            })
        } else {
            None
        }
    }

    /// The end of the last session of the segment's market before now (the Unix epoch when
    /// the calendar knows none: then every open leg counts, the cautious side).
    fn last_close(&self, exchange_segment: &str) -> chrono::DateTime<chrono::Utc> {
        let now = self.clock.now();
        let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        let Some(venue) = Venue::from_segment(exchange_segment) else {
            return epoch;
        };
        let today = crate::clock::ist(now).date_naive();
        (0..=30)
            .filter_map(|back| today.checked_sub_signed(chrono::Duration::days(back)))
            .find_map(|day| {
                self.calendar
                    .sessions_on(venue, day)
                    .into_iter()
                    .map(|(_, close)| close)
                    .filter(|close| *close <= now)
                    .max()
            })
            .unwrap_or(epoch)
    }

    /// dhanhook's legs in this mode that are not final yet, per distinct instrument of
    /// `resolved` (each instrument read once): what position-aware alerts count and what
    /// `cancel_order` cancels.
    ///
    /// # Errors
    /// The journal could not list them.
    pub(super) async fn our_open_legs<'r>(
        &self,
        resolved: &'r [ResolvedLeg],
    ) -> Result<Vec<(&'r ResolvedLeg, Vec<OrderRow>)>, String> {
        let mut out: Vec<(&ResolvedLeg, Vec<OrderRow>)> = Vec::new();
        for r in resolved {
            if out.iter().any(|(seen, _)| {
                seen.exchange_segment == r.exchange_segment && seen.security_id == r.security_id
            }) {
                continue;
            }
            let rows = self
                .journal
                .open_legs_on(&r.security_id, &r.exchange_segment)
                .await
                .map_err(|e| format!("dhanhook's own open orders could not be read: {e}"))?;
            out.push((
                r,
                rows.into_iter()
                    .filter(|row| row.mode == self.mode)
                    .collect(),
            ));
        }
        Ok(out)
    }

    /// Reads the broker's positions (and holdings when asked) together with our open legs
    /// on the instruments, repeating the reading until our orders stand still across it.
    async fn snapshot(
        &self,
        resolved: &[ResolvedLeg],
        need_holdings: bool,
    ) -> Result<Snapshot, String> {
        let mut own_rows: Vec<OrderRow> = Vec::new();
        for (r, rows) in self.our_open_legs(resolved).await? {
            let since = self.last_close(&r.exchange_segment);
            own_rows.extend(rows.into_iter().filter(|row| row.received_at >= since));
        }
        let read_book = !own_rows.is_empty();
        for _ in 0..SNAPSHOT_ATTEMPTS {
            let before = if read_book {
                Some(self.broker.book().await.map_err(|e| e.to_string())?)
            } else {
                None
            };
            let positions = self.broker.positions().await.map_err(|e| e.to_string())?;
            let holdings = if need_holdings {
                Some(self.broker.holdings().await.map_err(|e| e.to_string())?)
            } else {
                None
            };
            let after = if read_book {
                Some(self.broker.book().await.map_err(|e| e.to_string())?)
            } else {
                None
            };
            let book = after.unwrap_or_default();
            let before = before.unwrap_or_default();
            if fingerprint(&before, &own_rows) != fingerprint(&book, &own_rows) {
                tracing::debug!("our orders moved while the positions were read; reading again");
                continue;
            }
            let by_cid: HashMap<&str, &BookOrder> = book
                .iter()
                .map(|b| (b.correlation_id.as_str(), b))
                .collect();
            let mut own: HashMap<(String, String), Vec<(OrderRow, i64)>> = HashMap::new();
            for row in &own_rows {
                let remaining = remaining(row, by_cid.get(row.correlation_id.as_str()).copied());
                if remaining > 0 {
                    own.entry((
                        row.exchange_segment.clone().unwrap_or_default(),
                        row.security_id.clone().unwrap_or_default(),
                    ))
                    .or_default()
                    .push((row.clone(), remaining));
                }
            }
            return Ok(Snapshot {
                positions,
                holdings,
                own,
            });
        }
        Err(format!(
            "dhanhook's own orders on this instrument kept changing during {SNAPSHOT_ATTEMPTS} readings of the positions"
        ))
    }
}

/// What a leg of ours still has to execute, in units: by the broker's book when it lists the
/// order, else by the journal (not sent yet, or sent and not in the book yet: all of it).
fn remaining(row: &OrderRow, at_broker: Option<&BookOrder>) -> i64 {
    let units = row.units.unwrap_or(row.quantity);
    match at_broker {
        Some(b) if b.status.is_final() => 0,
        Some(b) => (units - b.filled_qty).max(0),
        None if row.status == LegStatus::Filled => 0,
        None => (units - row.detail.filled_qty.unwrap_or(0)).max(0),
    }
}

/// Our legs as the book shows them, to tell whether they moved between two readings.
fn fingerprint(book: &[BookOrder], own: &[OrderRow]) -> Vec<(String, &'static str, i64)> {
    let mut v: Vec<(String, &'static str, i64)> = own
        .iter()
        .filter_map(|row| {
            book.iter()
                .find(|b| b.correlation_id == row.correlation_id)
                .map(|b| (b.correlation_id.clone(), b.status.as_str(), b.filled_qty))
        })
        .collect();
    v.sort();
    v
}

fn is_delivery(product: Product) -> bool {
    matches!(product, Product::Delivery | Product::Mtf)
}

/// `+10`, `-10`, `0`.
fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

/// `- 5` for open sells of -5 (`- 0` when none).
fn minus(open_sells: i64) -> String {
    format!("- {}", -open_sells)
}

fn describe_current(broker: i64, own: i64) -> String {
    if own == 0 {
        format!("at the broker {}", signed(broker))
    } else {
        format!(
            "at the broker {} and {} in dhanhook's orders not yet executed",
            signed(broker),
            signed(own)
        )
    }
}
