//! The journal's SQL, written once for both backends.
//!
//! Every statement, its binds and the reading of its rows are here, in one `macro_rules!`
//! (`shared_journal!`) that expands them for the SQLite and the PostgreSQL journal. A macro
//! rather than functions generic over `sqlx::Database`: those need a bound for every type
//! bound or read, repeated on every function (Rust does not carry such bounds from a trait to
//! its users), which would bury the SQL. The statements use `$1`-style placeholders, which
//! sqlx accepts on SQLite too, and SQL both servers read the same way.
//!
//! What really differs stays with each backend, behind [`Backend`]: opening the database, the
//! migrations folder, the order and locking of the admission steps (the steps themselves are
//! shared too, in `admission.rs`), the lock taken while picking an alert to claim, and
//! SQLite's checkpoint after a token is written.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use super::{
    Admission, AlertJournal, AlertRecord, AlertStatus, AlertStatusChange, Gate, GateSpec,
    JournalError, JournalLifecycle, Leases, LegDetail, LegEvent, LegSource, LegStatus, LegUpdate,
    NewAlert, OrderRow, QueueJournal, QueueSummary, ReconcileJournal, StoredToken, TokenStore,
    TrackJournal,
    rows::{self, ALERT_RECORD_SELECT, ORDER_ROW_SELECT, reported_status, waiting},
};
use crate::clock::{from_millis, to_millis};

/// What a backend adds to the shared SQL: the steps that differ between SQLite and PostgreSQL.
#[async_trait]
pub(super) trait Backend {
    /// The locking clause of the query that picks the alert to claim.
    const CLAIM_LOCK: &'static str;

    /// Applies the backend's migrations.
    async fn apply_migrations(&self) -> Result<(), JournalError>;

    /// [`AlertJournal::admit_gated`]: the shared steps (`live_key`, `delete_expired_key`,
    /// `insert_key`, `count_duplicate`, `insert_alert`) in the order and transaction the
    /// backend's concurrency needs, then the gate of `gate`'s leg in the same transaction.
    async fn admit_alert(
        &self,
        alert: &NewAlert,
        gate: Option<GateSpec>,
    ) -> Result<(Admission, Option<Gate>), JournalError>;

    /// Runs after a token was written.
    async fn token_saved(&self) -> Result<(), JournalError>;
}

/// An alert's overall status (`$1`) at `$2`: `set_alert_status`, and a leg's move that
/// carries it (`transition_leg_and_alert`).
const SET_ALERT_STATUS: &str = "UPDATE alerts SET status = $1, updated_at = $2 WHERE id = $3";

/// `SELECT MIN(queued_until)` over the waiting alerts.
const NEXT_DUE: &str = concat!(
    "SELECT MIN(a.queued_until) FROM alerts a WHERE ",
    waiting!()
);

/// Alerts ever queued, counted by the status they are reported with.
const COUNT_BY_STATUS: &str = concat!(
    "SELECT status, COUNT(*) AS n FROM (SELECT ",
    reported_status!(),
    " AS status FROM alerts a WHERE a.queued_until IS NOT NULL) s GROUP BY status"
);

/// The waiting and claimed alerts, oldest first.
const PENDING: &str = concat!(
    "SELECT id, received_at, queued_until, status, strategy FROM (
         SELECT a.id, a.received_at, a.queued_until, a.strategy, ",
    reported_status!(),
    " AS status FROM alerts a WHERE a.queued_until IS NOT NULL) s
     WHERE status IN ('queued', 'processing')
     ORDER BY received_at, id LIMIT $1"
);

/// Implements every journal trait for `$journal` (a struct with a `pool` field for reads and a
/// `write` method running a closure as one committed transaction on a `$connection`,
/// implementing [`Backend`]). Write closures own what they bind (`to_owned`): on SQLite they
/// run in the writer task.
macro_rules! shared_journal {
    ($journal:ty, $connection:ty) => {
        #[async_trait]
        impl AlertJournal for $journal {
            async fn admit(&self, alert: &NewAlert) -> Result<Admission, JournalError> {
                Ok(self.admit_alert(alert, None).await?.0)
            }

            async fn admit_gated(
                &self,
                alert: &NewAlert,
                gate: Option<GateSpec>,
            ) -> Result<(Admission, Option<Gate>), JournalError> {
                self.admit_alert(alert, gate).await
            }

            async fn transition_leg(
                &self,
                alert_id: &str,
                leg_no: u32,
                update: &LegUpdate,
                detail: &LegDetail,
                source: LegSource,
                now: DateTime<Utc>,
            ) -> Result<(), JournalError> {
                self.transition_leg_and_alert(
                    alert_id,
                    leg_no,
                    update,
                    detail,
                    source,
                    AlertStatusChange::Keep,
                    now,
                )
                .await
            }

            async fn transition_leg_and_alert(
                &self,
                alert_id: &str,
                leg_no: u32,
                update: &LegUpdate,
                detail: &LegDetail,
                source: LegSource,
                alert: AlertStatusChange,
                now: DateTime<Utc>,
            ) -> Result<(), JournalError> {
                let (alert_id, update, detail) =
                    (alert_id.to_owned(), update.clone(), detail.clone());
                let illegal = {
                    let (alert_id, to) = (alert_id.clone(), update.status);
                    move || JournalError::IllegalTransition {
                        alert_id,
                        leg_no,
                        to,
                    }
                };
                // The allowed previous statuses come from LegStatus, the single source of the
                // rules. They are fixed spellings, so they are written into the statement: no
                // way of binding a list reads the same on both backends.
                let from: Vec<String> = LegStatus::predecessors(update.status)
                    .into_iter()
                    .map(|s| format!("'{}'", s.as_str()))
                    .collect();
                if from.is_empty() {
                    return Err(illegal());
                }
                // On PostgreSQL a concurrent writer of the same leg holds its row lock; this
                // UPDATE then re-checks the guard against that writer's result, so a stale
                // writer cannot move the leg backwards.
                self.write(move |conn| Box::pin(async move {
                let result = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE order_legs SET status = $1,
                            broker_order_id = COALESCE($2, broker_order_id),
                            fill_price = COALESCE($3, fill_price),
                            message = COALESCE($4, message),
                            updated_at = $5,
                            filled_qty = COALESCE($8, filled_qty),
                            exchange_order_id = COALESCE($9, exchange_order_id),
                            exchange_time = COALESCE($10, exchange_time),
                            reason = COALESCE($11, reason)
                     WHERE alert_id = $6 AND leg_no = $7 AND status IN ({})",
                    from.join(", ")
                )))
                .bind(update.status.as_str())
                .bind(&update.broker_order_id)
                .bind(update.fill_price)
                .bind(&update.message)
                .bind(to_millis(now))
                .bind(&alert_id)
                .bind(i64::from(leg_no))
                .bind(detail.filled_qty)
                .bind(&detail.exchange_order_id)
                .bind(detail.exchange_time.map(to_millis))
                .bind(&detail.reason)
                .execute(&mut *conn)
                .await?;
                if result.rows_affected() != 1 {
                    return Err(illegal());
                }
                sqlx::query(
                    "INSERT INTO leg_events (alert_id, leg_no, at, source, status, filled_qty, fill_price, message)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&alert_id)
                .bind(i64::from(leg_no))
                .bind(to_millis(now))
                .bind(source.as_str())
                .bind(update.status.as_str())
                .bind(detail.filled_qty)
                .bind(update.fill_price)
                .bind(update.message.as_ref().or(detail.reason.as_ref()))
                .execute(&mut *conn)
                .await?;
                let status = match alert {
                    AlertStatusChange::Keep => None,
                    AlertStatusChange::Set(status) => Some(status),
                    AlertStatusChange::FromLegs => {
                        // The alert's row lock first (PostgreSQL): a concurrent move of
                        // another of its legs commits before the legs are read here, so the
                        // status derived last sees both moves.
                        sqlx::query("UPDATE alerts SET updated_at = $1 WHERE id = $2")
                            .bind(to_millis(now))
                            .bind(&alert_id)
                            .execute(&mut *conn)
                            .await?;
                        let legs: Vec<String> =
                            sqlx::query_scalar("SELECT status FROM order_legs WHERE alert_id = $1")
                                .bind(&alert_id)
                                .fetch_all(&mut *conn)
                                .await?;
                        let legs = legs
                            .iter()
                            .map(|s| {
                                LegStatus::parse(s).ok_or_else(|| {
                                    JournalError::Corrupt(format!("leg status {s:?}"))
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        Some(AlertStatus::from_legs(legs))
                    }
                };
                if let Some(status) = status {
                    sqlx::query(SET_ALERT_STATUS)
                        .bind(status.as_str())
                        .bind(to_millis(now))
                        .bind(&alert_id)
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
                }))
                .await
            }

            async fn leg_events(&self, alert_id: &str) -> Result<Vec<LegEvent>, JournalError> {
                sqlx::query(
                    "SELECT leg_no, at, source, status, filled_qty, fill_price, message
                     FROM leg_events WHERE alert_id = $1 ORDER BY leg_no, id",
                )
                .bind(alert_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(rows::leg_event)
                .collect()
            }

            async fn set_alert_status(
                &self,
                alert_id: &str,
                status: AlertStatus,
                now: DateTime<Utc>,
            ) -> Result<(), JournalError> {
                let alert_id = alert_id.to_owned();
                self.write(move |conn| {
                    Box::pin(async move {
                        sqlx::query(SET_ALERT_STATUS)
                            .bind(status.as_str())
                            .bind(to_millis(now))
                            .bind(&alert_id)
                            .execute(&mut *conn)
                            .await?;
                        Ok(())
                    })
                })
                .await
            }

            async fn alert(&self, alert_id: &str) -> Result<Option<AlertRecord>, JournalError> {
                let Some(row) = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{ALERT_RECORD_SELECT} WHERE a.id = $1"
                )))
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
                .map(rows::order_row)
                .collect::<Result<Vec<_>, _>>()?;
                Ok(Some(rows::alert_record(&row, legs)?))
            }

            async fn recent_orders(&self, limit: u32) -> Result<Vec<OrderRow>, JournalError> {
                // alert_id is COLLATE "C" in the PostgreSQL schema: the tie-break is byte
                // order, as in SQLite.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{ORDER_ROW_SELECT} ORDER BY l.created_at DESC, l.alert_id DESC, l.leg_no DESC LIMIT $1"
                )))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(rows::order_row)
                .collect()
            }
            async fn open_legs_on(
                &self,
                security_id: &str,
                exchange_segment: &str,
            ) -> Result<Vec<OrderRow>, JournalError> {
                let open: Vec<String> = LegStatus::ALL
                    .into_iter()
                    .filter(|s| !s.is_final())
                    .map(|s| format!("'{}'", s.as_str()))
                    .collect();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{ORDER_ROW_SELECT} WHERE l.security_id = $1 AND l.exchange_segment = $2
                       AND l.status IN ({})
                     ORDER BY l.created_at, l.alert_id, l.leg_no",
                    open.join(", ")
                )))
                .bind(security_id)
                .bind(exchange_segment)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(rows::order_row)
                .collect()
            }
        }

        #[async_trait]
        impl ReconcileJournal for $journal {
            async fn legs_to_reconcile(&self, limit: u32) -> Result<Vec<OrderRow>, JournalError> {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{ORDER_ROW_SELECT} WHERE l.status IN ('RECEIVED', 'SUBMITTING', 'UNKNOWN')
                     ORDER BY l.created_at, l.alert_id, l.leg_no LIMIT $1"
                )))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(rows::order_row)
                .collect()
            }

            async fn claim_resend(&self, alert_id: &str, leg_no: u32) -> Result<bool, JournalError> {
                // A concurrent claimer (PostgreSQL) waits on the row lock, then re-checks
                // `resends = 0` against the committed increment and updates nothing.
                let alert_id = alert_id.to_owned();
                self.write(move |conn| {
                    Box::pin(async move {
                        let result = sqlx::query(
                            "UPDATE order_legs SET resends = resends + 1 WHERE alert_id = $1 AND leg_no = $2 AND resends = 0",
                        )
                        .bind(&alert_id)
                        .bind(i64::from(leg_no))
                        .execute(&mut *conn)
                        .await?;
                        Ok(result.rows_affected() == 1)
                    })
                })
                .await
            }
        }

        #[async_trait]
        impl TrackJournal for $journal {
            async fn legs_to_track(
                &self,
                since: DateTime<Utc>,
                limit: u32,
            ) -> Result<Vec<OrderRow>, JournalError> {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{ORDER_ROW_SELECT} WHERE l.status IN ('ACCEPTED', 'PENDING', 'PART_TRADED')
                       AND l.broker_order_id IS NOT NULL AND l.updated_at >= $1
                     ORDER BY l.updated_at DESC, l.alert_id, l.leg_no LIMIT $2"
                )))
                .bind(to_millis(since))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(rows::order_row)
                .collect()
            }

            async fn leg_by_correlation(
                &self,
                correlation_id: &str,
            ) -> Result<Option<OrderRow>, JournalError> {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{ORDER_ROW_SELECT} WHERE l.correlation_id = $1"
                )))
                .bind(correlation_id)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(rows::order_row)
                .transpose()
            }
        }

        #[async_trait]
        impl QueueJournal for $journal {
            async fn next_queued_at(&self) -> Result<Option<DateTime<Utc>>, JournalError> {
                let next: Option<i64> = sqlx::query_scalar(NEXT_DUE).fetch_one(&self.pool).await?;
                Ok(next.map(from_millis))
            }

            async fn claim_due(
                &self,
                holder: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<String>, JournalError> {
                // One statement: the pick and the claim cannot be separated by another runner.
                // The outer re-check of `claim_holder IS NULL` makes a row claimed meanwhile
                // yield nothing rather than a second claim.
                let holder = holder.to_owned();
                self.write(move |conn| Box::pin(async move {
                let claimed: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "UPDATE alerts SET claim_holder = $2, claimed_at = $1, updated_at = $1
                     WHERE id = (SELECT a.id FROM alerts a WHERE {} AND a.queued_until <= $1
                                 ORDER BY a.received_at, a.id LIMIT 1 {})
                       AND claim_holder IS NULL
                     RETURNING id",
                    waiting!(),
                    <$journal as Backend>::CLAIM_LOCK,
                )))
                .bind(to_millis(now))
                .bind(&holder)
                .fetch_optional(&mut *conn)
                .await?;
                Ok(claimed)
                }))
                .await
            }

            async fn requeue(
                &self,
                alert_id: &str,
                until: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> Result<(), JournalError> {
                let alert_id = alert_id.to_owned();
                self.write(move |conn| Box::pin(async move {
                sqlx::query(
                    "UPDATE alerts SET queued_until = $1, updated_at = $2, claim_holder = NULL, claimed_at = NULL
                     WHERE id = $3",
                )
                .bind(to_millis(until))
                .bind(to_millis(now))
                .bind(&alert_id)
                .execute(&mut *conn)
                .await?;
                Ok(())
                }))
                .await
            }

            async fn release_claim(&self, alert_id: &str, holder: &str) -> Result<(), JournalError> {
                let (alert_id, holder) = (alert_id.to_owned(), holder.to_owned());
                self.write(move |conn| Box::pin(async move {
                sqlx::query(
                    "UPDATE alerts SET claim_holder = NULL, claimed_at = NULL
                     WHERE id = $1 AND claim_holder = $2",
                )
                .bind(&alert_id)
                .bind(&holder)
                .execute(&mut *conn)
                .await?;
                Ok(())
                }))
                .await
            }

            async fn recover_claims(
                &self,
                claimed_before: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> Result<u64, JournalError> {
                // A claim whose instant is unknown (NULL) is older than any cut-off.
                self.write(move |conn| Box::pin(async move {
                let result = sqlx::query(
                    "UPDATE alerts SET claim_holder = NULL, claimed_at = NULL, updated_at = $1
                     WHERE claim_holder IS NOT NULL AND queued_until IS NOT NULL
                       AND (claimed_at IS NULL OR claimed_at < $2)
                       AND EXISTS (SELECT 1 FROM order_legs l WHERE l.alert_id = alerts.id AND l.status = 'QUEUED')",
                )
                .bind(to_millis(now))
                .bind(to_millis(claimed_before))
                .execute(&mut *conn)
                .await?;
                Ok(result.rows_affected())
                }))
                .await
            }

            async fn queue_summary(&self, limit: u32) -> Result<QueueSummary, JournalError> {
                let by_status = sqlx::query(COUNT_BY_STATUS)
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(rows::status_count)
                    .collect::<Result<BTreeMap<_, _>, _>>()?;
                let pending = sqlx::query(PENDING)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(rows::queued_alert)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(QueueSummary {
                    by_status,
                    next_due: self.next_queued_at().await?,
                    pending,
                })
            }
        }

        #[async_trait]
        impl TokenStore for $journal {
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
                let token = token.clone();
                self.write(move |conn| Box::pin(async move {
                sqlx::query(
                    "INSERT INTO dhan_tokens (client_id, token, expires_at, source, obtained_at) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (client_id) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at,
                         source = excluded.source, obtained_at = excluded.obtained_at",
                )
                .bind(&token.client_id)
                .bind(token.token.expose_secret())
                .bind(to_millis(token.expires_at))
                .bind(&token.source)
                .bind(to_millis(token.obtained_at))
                .execute(&mut *conn)
                .await?;
                Ok(())
                }))
                .await?;
                self.token_saved().await
            }
        }

        #[async_trait]
        impl Leases for $journal {
            async fn try_lease(
                &self,
                name: &str,
                holder: &str,
                until: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> Result<bool, JournalError> {
                let (name, holder) = (name.to_owned(), holder.to_owned());
                self.write(move |conn| Box::pin(async move {
                let result = sqlx::query(
                    "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
                     WHERE leases.until <= $4 OR leases.holder = excluded.holder",
                )
                .bind(&name)
                .bind(&holder)
                .bind(to_millis(until))
                .bind(to_millis(now))
                .execute(&mut *conn)
                .await?;
                Ok(result.rows_affected() == 1)
                }))
                .await
            }

            async fn release_lease(&self, name: &str, holder: &str) -> Result<(), JournalError> {
                let (name, holder) = (name.to_owned(), holder.to_owned());
                self.write(move |conn| Box::pin(async move {
                sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                    .bind(&name)
                    .bind(&holder)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
                }))
                .await
            }
        }

        #[async_trait]
        impl JournalLifecycle for $journal {
            async fn migrate(&self) -> Result<(), JournalError> {
                self.apply_migrations().await
            }

            async fn check_writable(&self, now: DateTime<Utc>) -> Result<(), JournalError> {
                // ON CONFLICT DO UPDATE is atomic on both backends: instances checking at the
                // same moment both succeed (one after the other on the row lock).
                self.write(move |conn| Box::pin(async move {
                sqlx::query(
                    "INSERT INTO heartbeat (id, at) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                )
                .bind(to_millis(now))
                .execute(&mut *conn)
                .await?;
                Ok(())
                }))
                .await
            }

            async fn close(&self) {
                self.close_all().await;
            }
        }
    };
}

shared_journal!(super::sqlite::SqliteJournal, sqlx::SqliteConnection);
shared_journal!(super::postgres::PgJournal, sqlx::PgConnection);
