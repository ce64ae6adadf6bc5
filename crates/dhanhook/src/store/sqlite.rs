//! The SQLite journal: the embedded default, nothing to install.
//!
//! Durability settings: WAL (readers never block the writer), `synchronous=FULL` (a committed
//! transaction is on disk before `admit` returns, so an acknowledged alert survives a power
//! cut), foreign keys on. Writes that must not interleave (`admit`) start with
//! `BEGIN IMMEDIATE`, which takes SQLite's write lock up front: concurrent deliveries of one
//! alert queue on the lock (bounded by the busy timeout) instead of racing.

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::{
    Row,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

use super::{
    Admission, AlertRecord, AlertStatus, Journal, JournalError, LegStatus, LegUpdate, NewAlert,
    OrderRow, QueueSummary, QueuedAlert, StoredToken,
};
use crate::clock::{from_millis, to_millis};

/// How long a writer waits for SQLite's write lock before giving up. Admission transactions
/// take well under a millisecond, so this only runs out when the disk is stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections in the pool: SQLite has one writer at a time anyway; a few connections let
/// readers (`/logs`, duplicate lookups) proceed beside it.
const MAX_CONNECTIONS: u32 = 4;

#[derive(Debug, Clone)]
pub struct SqliteJournal {
    pool: SqlitePool,
}

impl SqliteJournal {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or `sqlite:path`),
    /// creating the parent folder too.
    ///
    /// # Errors
    /// The URL cannot be parsed, the folder cannot be created, or SQLite refuses the file.
    pub async fn open(url: &str) -> Result<Self, JournalError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| JournalError::Open(format!("{url}: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let file = options.get_filename().to_owned();
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| JournalError::Open(format!("cannot create {}: {e}", dir.display())))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        // The journal holds the Dhan access token and order history: owner-only. SQLite gives
        // its -wal and -shm files the database file's mode.
        if file.exists() {
            use std::os::unix::fs::PermissionsExt;
            if let Err(e) = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
            {
                tracing::warn!(path = %file.display(), error = %e, "could not make the journal owner-only");
            }
        }
        Ok(Self { pool })
    }
}

use super::ORDER_ROW_SELECT;

#[async_trait]
impl Journal for SqliteJournal {
    async fn migrate(&self) -> Result<(), JournalError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn admit(&self, alert: &NewAlert) -> Result<Admission, JournalError> {
        let now = to_millis(alert.received_at);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;

        let live: Option<String> = sqlx::query_scalar(
            "SELECT alert_id FROM dedupe_keys WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
        )
        .bind(&alert.dedupe.key)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(alert_id) = live {
            sqlx::query("UPDATE alerts SET duplicates = duplicates + 1 WHERE id = ?1")
                .bind(&alert_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Admission::Duplicate { alert_id });
        }

        // An expired key (same payload, outside the window) gives way to the new alert.
        sqlx::query("DELETE FROM dedupe_keys WHERE key = ?1")
            .bind(&alert.dedupe.key)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO alerts (id, received_at, client_ip, format, alert_type, strategy, dedupe_key,
                                 payload, mode, status, duplicates, updated_at, route, queued_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?2, ?11, ?12)",
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
        sqlx::query("INSERT INTO dedupe_keys (key, alert_id, expires_at) VALUES (?1, ?2, ?3)")
            .bind(&alert.dedupe.key)
            .bind(&alert.id)
            .bind(alert.dedupe.expires_at.map(to_millis))
            .execute(&mut *tx)
            .await?;
        for leg in &alert.legs {
            let o = &leg.order;
            sqlx::query(
                "INSERT INTO order_legs (alert_id, leg_no, correlation_id, symbol, exchange, side, quantity,
                     order_type, product, validity, price, trigger_price, instrument, option_type,
                     strike_price, expiry_date, amo, amo_time, mode, status, created_at, updated_at,
                     security_id, exchange_segment, trading_symbol, lot_size, units, message)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                         ?19, ?20, ?21, ?21, ?22, ?23, ?24, ?25, ?26, ?27)",
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
        tx.commit().await?;
        Ok(Admission::Admitted)
    }

    async fn update_leg(
        &self,
        alert_id: &str,
        leg_no: u32,
        update: &LegUpdate,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError> {
        // The allowed previous statuses come from LegStatus, the single source of the rules.
        let from: Vec<&str> = LegStatus::predecessors(update.status)
            .into_iter()
            .map(LegStatus::as_str)
            .collect();
        let from_json =
            serde_json::to_string(&from).map_err(|e| JournalError::Corrupt(e.to_string()))?;
        let result = sqlx::query(
            "UPDATE order_legs SET status = ?1,
                    broker_order_id = COALESCE(?2, broker_order_id),
                    fill_price = COALESCE(?3, fill_price),
                    message = COALESCE(?4, message),
                    updated_at = ?5
             WHERE alert_id = ?6 AND leg_no = ?7 AND status IN (SELECT value FROM json_each(?8))",
        )
        .bind(update.status.as_str())
        .bind(&update.broker_order_id)
        .bind(update.fill_price)
        .bind(&update.message)
        .bind(to_millis(now))
        .bind(alert_id)
        .bind(i64::from(leg_no))
        .bind(from_json)
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
        sqlx::query("UPDATE alerts SET status = ?1, updated_at = ?2 WHERE id = ?3")
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
             FROM alerts WHERE id = ?1",
        )
        .bind(alert_id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let legs = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ORDER_ROW_SELECT} WHERE l.alert_id = ?1 ORDER BY l.leg_no"
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
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "{ORDER_ROW_SELECT} ORDER BY l.created_at DESC, l.alert_id DESC, l.leg_no DESC LIMIT ?1"
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
             ORDER BY l.created_at, l.alert_id, l.leg_no LIMIT ?1"
        )))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(super::order_row)
        .collect()
    }

    async fn claim_resend(&self, alert_id: &str, leg_no: u32) -> Result<bool, JournalError> {
        let result = sqlx::query(
            "UPDATE order_legs SET resends = resends + 1 WHERE alert_id = ?1 AND leg_no = ?2 AND resends = 0",
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
        let claimed: Option<String> = sqlx::query_scalar(
            "UPDATE alerts SET status = 'processing', updated_at = ?1, claimed_at = ?1
             WHERE id = (SELECT id FROM alerts WHERE status = 'queued' AND queued_until <= ?1
                         ORDER BY received_at, id LIMIT 1)
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
            "UPDATE alerts SET status = 'queued', queued_until = ?1, updated_at = ?2 WHERE id = ?3",
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
            "UPDATE alerts SET status = 'queued', updated_at = ?1, claimed_at = NULL
             WHERE status = 'processing' AND queued_until IS NOT NULL
               AND (claimed_at IS NULL OR claimed_at < ?2)
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
             ORDER BY received_at, id LIMIT ?1",
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
        sqlx::query("INSERT INTO heartbeat (id, at) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET at = excluded.at")
            .bind(to_millis(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn load_token(&self, client_id: &str) -> Result<Option<StoredToken>, JournalError> {
        let row = sqlx::query(
            "SELECT token, expires_at, source, obtained_at FROM dhan_tokens WHERE client_id = ?1",
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
            "INSERT INTO dhan_tokens (client_id, token, expires_at, source, obtained_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (client_id) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at,
                 source = excluded.source, obtained_at = excluded.obtained_at",
        )
        .bind(&token.client_id)
        .bind(token.token.expose_secret())
        .bind(to_millis(token.expires_at))
        .bind(&token.source)
        .bind(to_millis(token.obtained_at))
        .execute(&self.pool)
        .await?;
        // The previous token's row lingers in the write-ahead log until a checkpoint: fold it
        // into the database now (the value is sealed anyway; this keeps old ones from piling up).
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
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
            "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
             WHERE leases.until <= ?4 OR leases.holder = excluded.holder",
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
        sqlx::query("DELETE FROM leases WHERE name = ?1 AND holder = ?2")
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
