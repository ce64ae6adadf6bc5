//! The PostgreSQL journal: for several dhanhook instances sharing one database (or an operator
//! who already runs PostgreSQL and backs it up).
//!
//! It behaves exactly like the SQLite journal ([`super::sqlite`]): same tables, same instants
//! (BIGINT milliseconds), same rules. What differs is concurrency. SQLite has a single writer,
//! so `BEGIN IMMEDIATE` serialises everything; PostgreSQL has real concurrent writers, possibly
//! in other processes on other machines, so every rule that must hold under concurrency is
//! carried by a row lock or a unique index, never by "read, then decide, then write":
//!
//! - [`Journal::admit`] *claims the dedupe key first* (`INSERT … ON CONFLICT (key) DO NOTHING`).
//!   The primary key on `dedupe_keys` picks exactly one winner among concurrent deliveries; a
//!   loser waits for the winner's transaction to end and then sees its key, so it answers
//!   "duplicate" without writing an alert. The key's foreign key to `alerts` is checked at
//!   commit (`DEFERRABLE INITIALLY DEFERRED`), which is what lets the key come before its alert.
//!   The few errors concurrency can still cause (serialization failure, deadlock, unique
//!   violation) retry the whole transaction, so a redelivery is never answered with an error.
//! - [`Journal::update_leg`] and [`Journal::claim_resend`] are single guarded `UPDATE`s: the
//!   row lock makes a second writer re-check the guard against the first writer's result.
//! - [`Journal::claim_due`] picks its alert with `FOR UPDATE SKIP LOCKED`: concurrent runners
//!   pass over each other's rows instead of claiming the same alert or waiting in line.
//!
//! Transactions use PostgreSQL's default READ COMMITTED isolation: each statement sees what
//! other transactions committed before it started, which is what the steps above rely on.
//! Durability: a committed transaction is flushed before `COMMIT` returns (with the server's
//! default `synchronous_commit = on`), so an acknowledged alert survives a crash.
//!
//! The URL carries a password: it is only ever exposed to the driver, never put in an error.

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{
    Connection, Row,
    postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions},
};

use super::{
    Admission, AlertRecord, AlertStatus, Journal, JournalError, LegStatus, LegUpdate, NewAlert,
    OrderRow, QueueSummary, QueuedAlert, StoredToken,
};
use crate::clock::{from_millis, to_millis};

/// Connections in the pool. Unlike SQLite, writers really run side by side, so this bounds how
/// many requests touch the database at once; several instances each hold this many.
const MAX_CONNECTIONS: u32 = 8;

/// How long a request waits for a free connection (the SQLite journal's busy timeout, too).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times `admit` runs its transaction when concurrency makes it fail. Each retry
/// follows a conflict with a transaction that has since ended, so one retry almost always
/// settles it; the bound only guards against a pathological loop.
const ADMIT_ATTEMPTS: u32 = 5;

fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
}

/// SQLSTATEs of errors that mean "another transaction got in the way", not "this is wrong":
/// retrying the transaction gives the right answer.
const RETRYABLE: [&str; 3] = [
    "40001", // serialization_failure
    "40P01", // deadlock_detected
    "23505", // unique_violation
];

#[derive(Debug, Clone)]
pub struct PgJournal {
    pool: PgPool,
}

impl PgJournal {
    /// Connects to the PostgreSQL database at `url` (`postgres://user:password@host/db`).
    ///
    /// # Errors
    /// The URL cannot be parsed or the server refuses the connection. The message never
    /// contains the URL, which usually carries a password.
    pub async fn open(url: &SecretString) -> Result<Self, JournalError> {
        // sqlx's parse errors describe what is wrong (a bad port, an unknown sslmode), not the
        // URL itself, so they are safe to show.
        let options = PgConnectOptions::from_str(url.expose_secret())
            .map_err(|e| JournalError::Open(format!("not a usable PostgreSQL URL: {e}")))?
            .application_name("dhanhook");
        // Connect now (not lazily) so a wrong URL or a stopped server fails at start-up. While
        // the server refuses connections, the pool keeps trying until ACQUIRE_TIMEOUT: a server
        // started beside the service gets that long to come up.
        let pool = match pool_options().connect_with(options.clone()).await {
            Ok(pool) => pool,
            // The pool only says it timed out; one direct attempt names the actual reason
            // ("connection refused", ...) for the operator.
            Err(sqlx::Error::PoolTimedOut) => {
                let conn = PgConnection::connect_with(&options).await.map_err(|e| {
                    JournalError::Open(format!(
                        "no connection to the PostgreSQL server within {} s: {e}",
                        ACQUIRE_TIMEOUT.as_secs()
                    ))
                })?;
                // It answered after all (it was just starting): carry on.
                let _ = conn.close().await;
                pool_options().connect_lazy_with(options)
            }
            // sslmode=require (or a server that insists) with a build that has no TLS.
            Err(sqlx::Error::Tls(e)) => {
                return Err(JournalError::Open(format!(
                    "the connection needs TLS, which this build does not include \
                     (add a TLS feature to sqlx in Cargo.toml): {e}"
                )));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Self { pool })
    }

    /// One attempt at admitting `alert`. `Ok(None)`: the dedupe key changed under us between
    /// two statements (it expired or was replaced); the caller runs the attempt again.
    async fn try_admit(&self, alert: &NewAlert) -> Result<Option<Admission>, sqlx::Error> {
        let now = to_millis(alert.received_at);
        let mut tx = self.pool.begin().await?;

        // An expired key (same payload, outside the window) gives way to the new alert. A key
        // with no expiry (NULL) never does.
        sqlx::query("DELETE FROM dedupe_keys WHERE key = $1 AND expires_at <= $2")
            .bind(&alert.dedupe.key)
            .bind(now)
            .execute(&mut *tx)
            .await?;

        // Claim the key. If another transaction holds it uncommitted, this waits for it to end:
        // committed, it conflicts (nothing returned); rolled back, this insert wins.
        let claimed: Option<String> = sqlx::query_scalar(
            "INSERT INTO dedupe_keys (key, alert_id, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO NOTHING RETURNING alert_id",
        )
        .bind(&alert.dedupe.key)
        .bind(&alert.id)
        .bind(alert.dedupe.expires_at.map(to_millis))
        .fetch_optional(&mut *tx)
        .await?;

        if claimed.is_none() {
            // READ COMMITTED: this statement sees the key that made the insert conflict.
            let existing: Option<(String, Option<i64>)> =
                sqlx::query_as("SELECT alert_id, expires_at FROM dedupe_keys WHERE key = $1")
                    .bind(&alert.dedupe.key)
                    .fetch_optional(&mut *tx)
                    .await?;
            // Gone again, or a key that is already expired at our `now` (written by a delivery
            // with an earlier clock): start over, the DELETE above will deal with it.
            let live = existing.filter(|(_, expires_at)| expires_at.is_none_or(|at| at > now));
            let Some((alert_id, _)) = live else {
                tx.rollback().await?;
                return Ok(None);
            };
            sqlx::query("UPDATE alerts SET duplicates = duplicates + 1 WHERE id = $1")
                .bind(&alert_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Some(Admission::Duplicate { alert_id }));
        }

        sqlx::query(
            "INSERT INTO alerts (id, received_at, client_ip, format, alert_type, strategy, dedupe_key,
                                 payload, mode, status, duplicates, updated_at, route, queued_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $2, $11, $12)",
        )
        .bind(&alert.id)
        .bind(now)
        .bind(&alert.client_ip)
        .bind(alert.format)
        .bind(&alert.alert_type)
        .bind(&alert.strategy)
        .bind(&alert.dedupe.key)
        .bind(&alert.payload)
        .bind(alert.mode.as_str())
        .bind(AlertStatus::from_legs(alert.legs.iter().map(|_| alert.initial_status)).as_str())
        .bind(&alert.route)
        .bind(alert.queued_until.map(to_millis))
        .execute(&mut *tx)
        .await?;
        for leg in &alert.legs {
            let o = &leg.order;
            sqlx::query(
                "INSERT INTO order_legs (alert_id, leg_no, correlation_id, symbol, exchange, side, quantity,
                     order_type, product, validity, price, trigger_price, instrument, option_type,
                     strike_price, expiry_date, amo, amo_time, mode, status, created_at, updated_at,
                     security_id, exchange_segment, trading_symbol, lot_size, units, message)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                         $19, $20, $21, $21, $22, $23, $24, $25, $26, $27)",
            )
            .bind(&alert.id)
            .bind(i64::from(leg.leg_no))
            .bind(&leg.correlation_id)
            .bind(&o.symbol)
            .bind(o.exchange.as_str())
            .bind(o.side.as_str())
            .bind(i64::from(o.quantity))
            .bind(o.order_type.as_str())
            .bind(o.product.as_str())
            .bind(o.validity.as_str())
            .bind(o.price)
            .bind(o.trigger_price)
            .bind(o.instrument.map(|i| i.as_str()))
            .bind(o.option.as_ref().map(|c| c.kind.as_str()))
            .bind(o.option.as_ref().map(|c| c.strike))
            .bind(o.option.as_ref().map(|c| c.expiry.to_string()))
            .bind(o.amo)
            .bind(o.amo_time.map(|t| t.as_str()))
            .bind(alert.mode.as_str())
            .bind(alert.initial_status.as_str())
            .bind(now)
            .bind(&leg.resolved.security_id)
            .bind(&leg.resolved.exchange_segment)
            .bind(&leg.resolved.trading_symbol)
            .bind(i64::from(leg.resolved.lot_size))
            .bind(i64::from(leg.resolved.units))
            .bind(&alert.initial_message)
            .execute(&mut *tx)
            .await?;
        }
        // The deferred foreign key (dedupe key → alert) is checked here.
        tx.commit().await?;
        Ok(Some(Admission::Admitted))
    }
}

/// The error is a conflict with a concurrent transaction, which a retry resolves. Connection
/// errors are deliberately not retried: a commit whose answer was lost may have happened, and
/// a retry would then report the alert as a duplicate of itself (and it would never be placed).
fn is_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| RETRYABLE.contains(&&*code)),
        _ => false,
    }
}

use super::ORDER_ROW_SELECT;

#[async_trait]
impl Journal for PgJournal {
    async fn migrate(&self) -> Result<(), JournalError> {
        // sqlx holds a PostgreSQL advisory lock while migrating, so instances starting together
        // apply each migration once.
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn admit(&self, alert: &NewAlert) -> Result<Admission, JournalError> {
        let mut attempt = 1;
        loop {
            match self.try_admit(alert).await {
                Ok(Some(admission)) => return Ok(admission),
                Ok(None) if attempt < ADMIT_ATTEMPTS => {
                    tracing::debug!(alert_id = %alert.id, attempt, "dedupe key changed during admission; retrying");
                }
                Err(e) if attempt < ADMIT_ATTEMPTS && is_retryable(&e) => {
                    tracing::debug!(alert_id = %alert.id, attempt, error = %e, "admission conflicted with a concurrent one; retrying");
                }
                Err(e) => return Err(e.into()),
                Ok(None) => {
                    return Err(JournalError::Database(sqlx::Error::Protocol(format!(
                        "the dedupe key of alert {} kept changing during {ADMIT_ATTEMPTS} admission attempts",
                        alert.id
                    ))));
                }
            }
            // The conflicting transaction has ended; a short pause lets a burst of concurrent
            // deliveries spread out instead of colliding again.
            tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 5)).await;
            attempt += 1;
        }
    }

    async fn update_leg(
        &self,
        alert_id: &str,
        leg_no: u32,
        update: &LegUpdate,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        // The allowed previous statuses come from LegStatus, the single source of the rules.
        // A concurrent writer of the same leg holds its row lock; this UPDATE then re-checks the
        // guard against that writer's result, so a stale writer cannot move the leg backwards.
        let from: Vec<&str> = LegStatus::predecessors(update.status)
            .into_iter()
            .map(LegStatus::as_str)
            .collect();
        let result = sqlx::query(
            "UPDATE order_legs SET status = $1,
                    broker_order_id = COALESCE($2, broker_order_id),
                    fill_price = COALESCE($3, fill_price),
                    message = COALESCE($4, message),
                    updated_at = $5
             WHERE alert_id = $6 AND leg_no = $7 AND status = ANY($8)",
        )
        .bind(update.status.as_str())
        .bind(&update.broker_order_id)
        .bind(update.fill_price)
        .bind(&update.message)
        .bind(to_millis(now))
        .bind(alert_id)
        .bind(i64::from(leg_no))
        .bind(from)
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 1 {
            Ok(())
        } else {
            Err(JournalError::IllegalTransition {
                alert_id: alert_id.to_owned(),
                leg_no,
                to: update.status,
            })
        }
    }

    async fn set_alert_status(
        &self,
        alert_id: &str,
        status: AlertStatus,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        sqlx::query("UPDATE alerts SET status = $1, updated_at = $2 WHERE id = $3")
            .bind(status.as_str())
            .bind(to_millis(now))
            .bind(alert_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn alert(&self, alert_id: &str) -> Result<Option<AlertRecord>, JournalError> {
        let Some(row) = sqlx::query(
            "SELECT id, received_at, mode, status, duplicates, alert_type, route, queued_until
             FROM alerts WHERE id = $1",
        )
        .bind(alert_id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let legs = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ORDER_ROW_SELECT} WHERE l.alert_id = $1 ORDER BY l.leg_no"
        )))
        .bind(alert_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(super::order_row)
        .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(super::alert_record(&row, legs)?))
    }

    async fn recent_orders(&self, limit: u32) -> Result<Vec<OrderRow>, JournalError> {
        // alert_id is COLLATE "C" in the schema: the tie-break is byte order, as in SQLite.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ORDER_ROW_SELECT} ORDER BY l.created_at DESC, l.alert_id DESC, l.leg_no DESC LIMIT $1"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(super::order_row)
        .collect()
    }

    async fn legs_to_reconcile(&self, limit: u32) -> Result<Vec<OrderRow>, JournalError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ORDER_ROW_SELECT} WHERE l.status IN ('RECEIVED', 'SUBMITTING', 'UNKNOWN')
             ORDER BY l.created_at, l.alert_id, l.leg_no LIMIT $1"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(super::order_row)
        .collect()
    }

    async fn claim_resend(&self, alert_id: &str, leg_no: u32) -> Result<bool, JournalError> {
        // A concurrent claimer waits on the row lock, then re-checks `resends = 0` against the
        // committed increment and updates nothing.
        let result = sqlx::query(
            "UPDATE order_legs SET resends = resends + 1 WHERE alert_id = $1 AND leg_no = $2 AND resends = 0",
        )
        .bind(alert_id)
        .bind(i64::from(leg_no))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn next_queued_at(&self) -> Result<Option<DateTime<Utc>>, JournalError> {
        let next: Option<i64> =
            sqlx::query_scalar("SELECT MIN(queued_until) FROM alerts WHERE status = 'queued'")
                .fetch_one(&self.pool)
                .await?;
        Ok(next.map(from_millis))
    }

    async fn claim_due(&self, now: DateTime<Utc>) -> Result<Option<String>, JournalError> {
        // SKIP LOCKED: a row another runner is claiming right now is passed over (it is theirs),
        // and one they claimed since this statement began fails the re-check of
        // `status = 'queued'`, so the next due alert is taken instead.
        let claimed: Option<String> = sqlx::query_scalar(
            "UPDATE alerts SET status = 'processing', updated_at = $1, claimed_at = $1
             WHERE id = (SELECT id FROM alerts WHERE status = 'queued' AND queued_until <= $1
                         ORDER BY received_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
               AND status = 'queued'
             RETURNING id",
        )
        .bind(to_millis(now))
        .fetch_optional(&self.pool)
        .await?;
        Ok(claimed)
    }

    async fn requeue(
        &self,
        alert_id: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        sqlx::query(
            "UPDATE alerts SET status = 'queued', queued_until = $1, updated_at = $2 WHERE id = $3",
        )
        .bind(to_millis(until))
        .bind(to_millis(now))
        .bind(alert_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn recover_claims(
        &self,
        claimed_before: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, JournalError> {
        let result = sqlx::query(
            "UPDATE alerts SET status = 'queued', updated_at = $1, claimed_at = NULL
             WHERE status = 'processing' AND queued_until IS NOT NULL
               AND (claimed_at IS NULL OR claimed_at < $2)
               AND EXISTS (SELECT 1 FROM order_legs l WHERE l.alert_id = alerts.id AND l.status = 'QUEUED')",
        )
        .bind(to_millis(now))
        .bind(to_millis(claimed_before))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected())
    }

    async fn queue_summary(&self, limit: u32) -> Result<QueueSummary, JournalError> {
        let mut by_status = std::collections::BTreeMap::new();
        for row in sqlx::query(
            "SELECT status, COUNT(*) AS n FROM alerts WHERE queued_until IS NOT NULL GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await?
        {
            by_status.insert(row.try_get::<String, _>("status")?, row.try_get::<i64, _>("n")?);
        }
        let pending = sqlx::query(
            "SELECT id, received_at, queued_until, status, strategy FROM alerts
             WHERE status IN ('queued', 'processing') AND queued_until IS NOT NULL
             ORDER BY received_at, id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok(QueuedAlert {
                alert_id: r.try_get("id")?,
                received_at: from_millis(r.try_get("received_at")?),
                queued_until: r
                    .try_get::<Option<i64>, _>("queued_until")?
                    .map(from_millis),
                status: r.try_get("status")?,
                strategy: r.try_get("strategy")?,
            })
        })
        .collect::<Result<Vec<_>, JournalError>>()?;
        Ok(QueueSummary {
            by_status,
            next_due: self.next_queued_at().await?,
            pending,
        })
    }

    async fn check_writable(&self, now: DateTime<Utc>) -> Result<(), JournalError> {
        // ON CONFLICT DO UPDATE is atomic in PostgreSQL: instances checking at the same moment
        // both succeed (one after the other on the row lock).
        sqlx::query(
            "INSERT INTO heartbeat (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = EXCLUDED.at",
        )
        .bind(to_millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn load_token(&self, client_id: &str) -> Result<Option<StoredToken>, JournalError> {
        let row = sqlx::query(
            "SELECT token, expires_at, source, obtained_at FROM dhan_tokens WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(StoredToken {
                client_id: client_id.to_owned(),
                token: SecretString::from(r.try_get::<String, _>("token")?),
                expires_at: from_millis(r.try_get("expires_at")?),
                source: r.try_get("source")?,
                obtained_at: from_millis(r.try_get("obtained_at")?),
            })
        })
        .transpose()
    }

    async fn save_token(&self, token: &StoredToken) -> Result<(), JournalError> {
        sqlx::query(
            "INSERT INTO dhan_tokens (client_id, token, expires_at, source, obtained_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (client_id) DO UPDATE SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at,
                 source = EXCLUDED.source, obtained_at = EXCLUDED.obtained_at",
        )
        .bind(&token.client_id)
        .bind(token.token.expose_secret())
        .bind(to_millis(token.expires_at))
        .bind(&token.source)
        .bind(to_millis(token.obtained_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, JournalError> {
        let result = sqlx::query(
            "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
             WHERE leases.until <= $4 OR leases.holder = excluded.holder",
        )
        .bind(name)
        .bind(holder)
        .bind(to_millis(until))
        .bind(to_millis(now))
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), JournalError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
