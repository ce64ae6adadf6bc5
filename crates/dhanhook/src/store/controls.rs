//! The journal's part for trader controls: the kill switch (one row shared by every instance,
//! and its history), and the gate every leg passes just before it is sent.
//!
//! The gate is one transaction: it takes the controls lock (SQLite's single writer holds the
//! write lock; on PostgreSQL the kill-switch row `FOR UPDATE`), reads what the rules
//! need (the kill switch, the orders sent today, the symbols open today, the alert's policy
//! and its earlier legs), asks the caller's rule, and moves the leg to SUBMITTING or BLOCKED.
//! So two legs racing on one instance or on two instances cannot both see "99 orders today"
//! and both go out as the 100th: the count and the mark are one step. The rule itself is the
//! caller's (`pipeline::controls`), so this layer holds no policy.
//!
//! For a leg to be sent at once, the gate runs inside the alert's admission transaction
//! ([`super::AlertJournal::admit_gated`]): admission and the SUBMITTING mark are then one
//! commit. Later legs, queued legs and re-sends pass it on their own ([`ControlJournal::gate_leg`]).
//!
//! Like the rest of the journal, the SQL is written once for both backends (`controls_journal!`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{JournalError, LegSource, LegStatus};
use crate::{
    clock::{from_millis, to_millis},
    domain::OnLegReject,
};

/// The kill switch as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KillSwitch {
    pub on: bool,
    /// When it last changed (`None`: never switched).
    pub since: Option<DateTime<Utc>>,
    /// Who changed it last: the client's IP, or `cli`.
    pub by: Option<String>,
    pub note: Option<String>,
}

/// One change of the kill switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KillSwitchEvent {
    pub at: DateTime<Utc>,
    pub on: bool,
    pub by: String,
    pub note: Option<String>,
}

/// What the journal knows at the moment a leg is about to be sent: what the risk rules read.
#[derive(Debug, Clone)]
pub struct SendContext {
    pub kill_switch: KillSwitch,
    /// The leg's status before the gate: RECEIVED or QUEUED for a first send, UNKNOWN for the
    /// reconciler's single re-send (which is not a new order and is not counted again).
    pub from: LegStatus,
    /// The alert's strategy (`None`: it named none).
    pub strategy: Option<String>,
    /// Legs sent in the day (each leg once, however many times it was sent).
    pub orders_today: i64,
    /// Of those, the legs of alerts of the same strategy (or of alerts naming none).
    pub strategy_orders_today: i64,
    /// Instruments (`security id@segment`) on which dhanhook's legs sent in the day left a
    /// non-zero net filled quantity, or are still working at the broker.
    pub open_instruments: Vec<String>,
    /// The alert's multi-leg policy.
    pub on_leg_reject: OnLegReject,
    /// The alert's earlier legs (lower numbers) and where each stands.
    pub earlier_legs: Vec<(u32, LegStatus)>,
}

/// The key of an instrument in [`SendContext::open_instruments`].
pub fn instrument_key(security_id: &str, exchange_segment: &str) -> String {
    format!("{security_id}@{exchange_segment}")
}

/// The rule a leg is judged by: `Some(reason)` blocks it. Owned (`Arc`), because the gate
/// may run later in the journal's writer.
pub type SendRule = Arc<dyn Fn(&SendContext) -> Option<String> + Send + Sync>;

/// One leg to judge: which, the IST day `[from, to)` the counts are over, the rule, and the
/// instant of the mark.
#[derive(Clone)]
pub struct GateSpec {
    pub leg_no: u32,
    pub day: (DateTime<Utc>, DateTime<Utc>),
    pub rule: SendRule,
    pub now: DateTime<Utc>,
    /// The day's counts the rule reads; the others are not computed (left zero or empty).
    pub counts: GateCounts,
}

/// Which of [`SendContext`]'s day counts the rule reads. Each is a scan of the day's sent
/// legs, run while every other write waits, so only the ones a configured limit needs are
/// computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateCounts {
    pub orders_today: bool,
    pub strategy_orders_today: bool,
    pub open_instruments: bool,
}

impl GateCounts {
    /// Every count (for a rule that may read any of them).
    pub const ALL: Self = Self {
        orders_today: true,
        strategy_orders_today: true,
        open_instruments: true,
    };
    /// None (for a rule that reads none).
    pub const NONE: Self = Self {
        orders_today: false,
        strategy_orders_today: false,
        open_instruments: false,
    };
}

impl std::fmt::Debug for GateSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateSpec")
            .field("leg_no", &self.leg_no)
            .field("day", &self.day)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// What the gate did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// The leg is SUBMITTING (committed): send it now.
    Send,
    /// The leg is BLOCKED with this reason; it is never sent.
    Blocked(String),
}

#[async_trait]
pub trait ControlJournal: Send + Sync + std::fmt::Debug {
    /// The kill switch as it stands.
    async fn kill_switch(&self) -> Result<KillSwitch, JournalError>;

    /// Turns the kill switch on or off, recording who and when (also in its history), in one
    /// transaction. Returns the new state.
    async fn set_kill_switch(
        &self,
        on: bool,
        by: &str,
        note: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<KillSwitch, JournalError>;

    /// The last `limit` changes, newest first.
    async fn kill_switch_history(&self, limit: u32) -> Result<Vec<KillSwitchEvent>, JournalError>;

    /// Judges leg `spec.leg_no` of `alert_id` by `spec.rule` over `spec.day` and marks it
    /// SUBMITTING or BLOCKED (source placement), as one step under the controls lock.
    ///
    /// # Errors
    /// The journal failed, or the leg is not in a state it may be sent from
    /// ([`JournalError::IllegalTransition`]); in both cases it must not be sent.
    async fn gate_leg(&self, alert_id: &str, spec: GateSpec) -> Result<Gate, JournalError>;
}

/// Legs sent in `[$1, $2)`: each leg once, from its SUBMITTING transitions.
const SENT_TODAY: &str =
    "SELECT COUNT(*) FROM (SELECT DISTINCT e.alert_id, e.leg_no FROM leg_events e
      WHERE e.status = 'SUBMITTING' AND e.at >= $1 AND e.at < $2) s";

/// Of those, the legs of alerts whose strategy is `$3` (NULL-safe).
const SENT_TODAY_BY_STRATEGY: &str =
    "SELECT COUNT(*) FROM (SELECT DISTINCT e.alert_id, e.leg_no FROM leg_events e
      JOIN alerts a ON a.id = e.alert_id
      WHERE e.status = 'SUBMITTING' AND e.at >= $1 AND e.at < $2
        AND a.strategy IS NOT DISTINCT FROM $3) s";

/// `sent_counts`' key for every strategy.
const ALL_STRATEGIES: &str = "*";

/// `sent_counts`' key for the alerts of `strategy` (`None`: naming none).
fn strategy_key(strategy: Option<&str>) -> String {
    strategy.map_or_else(|| "-".to_owned(), |s| format!("s:{s}"))
}

/// Instruments open today, over the legs sent in `[$1, $2)` (a queued alert of yesterday sent
/// today counts today): their net filled quantity is not zero, or one of them is still working
/// at the broker (or has an outcome not yet known).
const OPEN_TODAY: &str = "SELECT l.security_id, l.exchange_segment FROM order_legs l
       JOIN (SELECT DISTINCT e.alert_id, e.leg_no FROM leg_events e
              WHERE e.status = 'SUBMITTING' AND e.at >= $1 AND e.at < $2) s
         ON s.alert_id = l.alert_id AND s.leg_no = l.leg_no
      WHERE l.security_id IS NOT NULL AND l.exchange_segment IS NOT NULL
      GROUP BY l.security_id, l.exchange_segment
     HAVING SUM(CASE WHEN l.side = 'BUY' THEN 1 ELSE -1 END
                * COALESCE(l.filled_qty, CASE WHEN l.status = 'FILLED' THEN l.units ELSE 0 END, 0)) <> 0
         OR SUM(CASE WHEN l.status IN ('SUBMITTING', 'UNKNOWN', 'NEEDS_ATTENTION', 'ACCEPTED',
                                       'PENDING', 'PART_TRADED') THEN 1 ELSE 0 END) > 0";

/// Implements [`ControlJournal`] for `$journal` (a struct with a `pool` field and a `write`
/// method running a transaction on a `$connection`); `$lock` is the row-lock clause on the
/// kill-switch row.
macro_rules! controls_journal {
    ($journal:ty, $connection:ty, $lock:expr) => {
        #[async_trait]
        impl ControlJournal for $journal {
            async fn kill_switch(&self) -> Result<KillSwitch, JournalError> {
                let row = sqlx::query("SELECT active, since, by_whom, note FROM kill_switch WHERE id = 1")
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or_else(|| JournalError::Corrupt("the kill_switch row is missing".to_owned()))?;
                Ok(KillSwitch {
                    on: row.try_get("active")?,
                    since: row.try_get::<Option<i64>, _>("since")?.map(from_millis),
                    by: row.try_get("by_whom")?,
                    note: row.try_get("note")?,
                })
            }

            async fn set_kill_switch(
                &self,
                on: bool,
                by: &str,
                note: Option<&str>,
                now: DateTime<Utc>,
            ) -> Result<KillSwitch, JournalError> {
                let (by_owned, note_owned) = (by.to_owned(), note.map(str::to_owned));
                self.write(move |conn| {
                    Box::pin(async move {
                        let changed = sqlx::query(
                            "UPDATE kill_switch SET active = $1, since = $2, by_whom = $3, note = $4 WHERE id = 1",
                        )
                        .bind(on)
                        .bind(to_millis(now))
                        .bind(&by_owned)
                        .bind(&note_owned)
                        .execute(&mut *conn)
                        .await?;
                        if changed.rows_affected() != 1 {
                            return Err(JournalError::Corrupt("the kill_switch row is missing".to_owned()));
                        }
                        sqlx::query(
                            "INSERT INTO kill_switch_events (at, active, by_whom, note) VALUES ($1, $2, $3, $4)",
                        )
                        .bind(to_millis(now))
                        .bind(on)
                        .bind(&by_owned)
                        .bind(&note_owned)
                        .execute(&mut *conn)
                        .await?;
                        Ok(())
                    })
                })
                .await?;
                Ok(KillSwitch {
                    on,
                    since: Some(now),
                    by: Some(by.to_owned()),
                    note: note.map(str::to_owned),
                })
            }

            async fn kill_switch_history(
                &self,
                limit: u32,
            ) -> Result<Vec<KillSwitchEvent>, JournalError> {
                let rows = sqlx::query(
                    "SELECT at, active, by_whom, note FROM kill_switch_events ORDER BY id DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(KillSwitchEvent {
                            at: from_millis(r.try_get("at")?),
                            on: r.try_get("active")?,
                            by: r.try_get("by_whom")?,
                            note: r.try_get("note")?,
                        })
                    })
                    .collect()
            }

            async fn gate_leg(&self, alert_id: &str, spec: GateSpec) -> Result<Gate, JournalError> {
                let alert_id = alert_id.to_owned();
                self.write(move |conn| {
                    Box::pin(async move { Self::gate_steps(conn, &alert_id, &spec, $lock).await })
                })
                .await
            }
        }

        impl $journal {
            /// Legs sent in the day `[from, to)` (ms), of every strategy (`strategy` `None`) or
            /// of one (`Some(name)`, `Some(None)` for alerts naming none): from `sent_counts`,
            /// counted from the day's events the first time the day is asked for.
            async fn sent_in_day(
                conn: &mut $connection,
                (from_ms, to_ms): (i64, i64),
                strategy: Option<Option<&str>>,
            ) -> Result<i64, JournalError> {
                let key = strategy.map_or_else(|| ALL_STRATEGIES.to_owned(), strategy_key);
                let kept: Option<i64> = sqlx::query_scalar(
                    "SELECT n FROM sent_counts WHERE day_start = $1 AND strategy_key = $2",
                )
                .bind(from_ms)
                .bind(&key)
                .fetch_optional(&mut *conn)
                .await?;
                if let Some(n) = kept {
                    return Ok(n);
                }
                let n: i64 = match strategy {
                    None => {
                        sqlx::query_scalar(SENT_TODAY)
                            .bind(from_ms)
                            .bind(to_ms)
                            .fetch_one(&mut *conn)
                            .await?
                    }
                    Some(name) => {
                        sqlx::query_scalar(SENT_TODAY_BY_STRATEGY)
                            .bind(from_ms)
                            .bind(to_ms)
                            .bind(name)
                            .fetch_one(&mut *conn)
                            .await?
                    }
                };
                sqlx::query(
                    "INSERT INTO sent_counts (day_start, strategy_key, n) VALUES ($1, $2, $3)
                     ON CONFLICT (day_start, strategy_key) DO NOTHING",
                )
                .bind(from_ms)
                .bind(&key)
                .bind(n)
                .execute(&mut *conn)
                .await?;
                Ok(n)
            }

            /// The gate's reads, the rule and the mark, on `conn` inside the caller's write
            /// transaction; `lock` is the row-lock clause on the kill-switch row.
            pub(super) async fn gate_steps(
                conn: &mut $connection,
                alert_id: &str,
                spec: &GateSpec,
                lock: &str,
            ) -> Result<Gate, JournalError> {
                let GateSpec { leg_no, day, rule, now, counts } = spec;
                let (leg_no, now) = (*leg_no, *now);
                let illegal = |to| JournalError::IllegalTransition {
                    alert_id: alert_id.to_owned(),
                    leg_no,
                    to,
                };
                let (from_ms, to_ms) = (to_millis(day.0), to_millis(day.1));
                // The controls lock: every gate, on every instance, passes here one at a time.
                let ks = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT active, since, by_whom, note FROM kill_switch WHERE id = 1 {lock}"
                )))
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| JournalError::Corrupt("the kill_switch row is missing".to_owned()))?;
                let kill_switch = KillSwitch {
                    on: ks.try_get("active")?,
                    since: ks.try_get::<Option<i64>, _>("since")?.map(from_millis),
                    by: ks.try_get("by_whom")?,
                    note: ks.try_get("note")?,
                };
                let leg = sqlx::query(
                    "SELECT l.status, a.strategy, a.on_leg_reject FROM order_legs l
                       JOIN alerts a ON a.id = l.alert_id
                      WHERE l.alert_id = $1 AND l.leg_no = $2",
                )
                .bind(alert_id)
                .bind(i64::from(leg_no))
                .fetch_optional(&mut *conn)
                .await?
                .ok_or_else(|| illegal(LegStatus::Submitting))?;
                let status: String = leg.try_get("status")?;
                let from = LegStatus::parse(&status)
                    .ok_or_else(|| JournalError::Corrupt(format!("leg status {status:?}")))?;
                if !from.can_become(LegStatus::Submitting) {
                    return Err(illegal(LegStatus::Submitting));
                }
                let strategy: Option<String> = leg.try_get("strategy")?;
                let on_leg_reject = match leg.try_get::<Option<String>, _>("on_leg_reject")? {
                    // Alerts journaled before the policy existed behaved as `continue`.
                    None => OnLegReject::Continue,
                    Some(p) => OnLegReject::parse(&p).ok_or_else(|| {
                        JournalError::Corrupt(format!("on_leg_reject {p:?}"))
                    })?,
                };
                let orders_today: i64 = if counts.orders_today {
                    Self::sent_in_day(conn, (from_ms, to_ms), None).await?
                } else {
                    0
                };
                let strategy_orders_today: i64 = if counts.strategy_orders_today {
                    Self::sent_in_day(conn, (from_ms, to_ms), Some(strategy.as_deref())).await?
                } else {
                    0
                };
                let open_instruments = if !counts.open_instruments {
                    Vec::new()
                } else {
                    sqlx::query(OPEN_TODAY)
                    .bind(from_ms)
                    .bind(to_ms)
                    .fetch_all(&mut *conn)
                    .await?
                    .iter()
                    .map(|r| {
                        Ok(instrument_key(
                            &r.try_get::<String, _>("security_id")?,
                            &r.try_get::<String, _>("exchange_segment")?,
                        ))
                    })
                    .collect::<Result<Vec<_>, JournalError>>()?
                };
                let earlier_legs = sqlx::query(
                    "SELECT leg_no, status FROM order_legs WHERE alert_id = $1 AND leg_no < $2 ORDER BY leg_no",
                )
                .bind(alert_id)
                .bind(i64::from(leg_no))
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| {
                    let n: i64 = r.try_get("leg_no")?;
                    let s: String = r.try_get("status")?;
                    Ok((
                        u32::try_from(n).map_err(|_| JournalError::Corrupt(format!("leg number {n}")))?,
                        LegStatus::parse(&s)
                            .ok_or_else(|| JournalError::Corrupt(format!("leg status {s:?}")))?,
                    ))
                })
                .collect::<Result<Vec<_>, JournalError>>()?;
                let context = SendContext {
                    kill_switch,
                    from,
                    strategy,
                    orders_today,
                    strategy_orders_today,
                    open_instruments,
                    on_leg_reject,
                    earlier_legs,
                };
                let verdict = rule(&context);
                let (next, message) = match &verdict {
                    None => (LegStatus::Submitting, None),
                    Some(reason) => (LegStatus::Blocked, Some(reason.as_str())),
                };
                if verdict.is_none() {
                    // Counted once per leg and day, as SENT_TODAY counts (a re-send the same
                    // day is the same order). Days not counted yet have no row to move.
                    let sent_before: Option<i32> = sqlx::query_scalar(
                        "SELECT 1 FROM leg_events WHERE alert_id = $1 AND leg_no = $2
                            AND status = 'SUBMITTING' AND at >= $3 AND at < $4 LIMIT 1",
                    )
                    .bind(alert_id)
                    .bind(i64::from(leg_no))
                    .bind(from_ms)
                    .bind(to_ms)
                    .fetch_optional(&mut *conn)
                    .await?;
                    if sent_before.is_none() {
                        sqlx::query(
                            "UPDATE sent_counts SET n = n + 1
                              WHERE day_start = $1 AND strategy_key IN ($2, $3)",
                        )
                        .bind(from_ms)
                        .bind(ALL_STRATEGIES)
                        .bind(strategy_key(context.strategy.as_deref()))
                        .execute(&mut *conn)
                        .await?;
                    }
                }
                let moved = sqlx::query(
                    "UPDATE order_legs SET status = $1, message = COALESCE($2, message), updated_at = $3
                      WHERE alert_id = $4 AND leg_no = $5 AND status = $6",
                )
                .bind(next.as_str())
                .bind(message)
                .bind(to_millis(now))
                .bind(alert_id)
                .bind(i64::from(leg_no))
                .bind(from.as_str())
                .execute(&mut *conn)
                .await?;
                if moved.rows_affected() != 1 {
                    return Err(illegal(next));
                }
                sqlx::query(
                    "INSERT INTO leg_events (alert_id, leg_no, at, source, status, filled_qty, fill_price, message)
                     VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6)",
                )
                .bind(alert_id)
                .bind(i64::from(leg_no))
                .bind(to_millis(now))
                .bind(LegSource::Placement.as_str())
                .bind(next.as_str())
                .bind(message)
                .execute(&mut *conn)
                .await?;
                Ok(match verdict {
                    None => Gate::Send,
                    Some(reason) => Gate::Blocked(reason),
                })
            }
        }
    };
}

controls_journal!(super::sqlite::SqliteJournal, sqlx::SqliteConnection, "");
controls_journal!(super::postgres::PgJournal, sqlx::PgConnection, "FOR UPDATE");
