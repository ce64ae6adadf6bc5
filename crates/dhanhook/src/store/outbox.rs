//! The notification outbox: the journal's part that [`crate::notify`] writes and the notifier
//! worker delivers from. Its SQL is written once for both backends (`outbox_journal!`, like the
//! rest of the journal in `shared.rs`); only the claim's row lock differs.
//!
//! A message is eligible when it is due (`next_at`), not sent or given up, not held by a live
//! claim, and no earlier message of the same alert on the same channel is still undelivered:
//! so an alert's messages arrive in the order they were written.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::JournalError;
use crate::{
    clock::to_millis,
    domain::{Channel, EventKind},
};

/// A message to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub channel: Channel,
    /// Messages of one alert are delivered in order.
    pub alert_id: Option<String>,
    pub kind: EventKind,
    pub title: String,
    pub body: String,
}

/// A message claimed for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNotification {
    pub id: i64,
    pub channel: Channel,
    pub alert_id: Option<String>,
    pub kind: EventKind,
    pub title: String,
    pub body: String,
    /// Failed deliveries so far.
    pub attempts: i64,
}

/// The outbox's operations.
#[async_trait]
pub trait OutboxJournal: Send + Sync + std::fmt::Debug {
    /// Writes messages, due at once.
    async fn enqueue(
        &self,
        messages: &[NewNotification],
        now: DateTime<Utc>,
    ) -> Result<(), JournalError>;

    /// Claims up to `limit` eligible messages for `holder` until `held_until`, oldest first.
    async fn claim_notifications(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        held_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PendingNotification>, JournalError>;

    /// Records a delivery (only by the holder of its claim).
    async fn notification_sent(
        &self,
        id: i64,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError>;

    /// Records a failed delivery: tried again at `retry_at`, or given up when `None`.
    async fn notification_failed(
        &self,
        id: i64,
        holder: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), JournalError>;

    /// When the next undelivered message can be claimed, if any.
    async fn next_notification_at(&self) -> Result<Option<DateTime<Utc>>, JournalError>;
}

/// The claim: pick eligible rows (with the backend's row lock), then mark them held.
const CLAIM: &str = "UPDATE notifications SET holder = $1, held_until = $2
     WHERE id IN (
         SELECT n.id FROM notifications n
          WHERE n.sent_at IS NULL AND n.failed_at IS NULL AND n.next_at <= $3
            AND (n.held_until IS NULL OR n.held_until < $3)
            AND NOT EXISTS (
                SELECT 1 FROM notifications e
                 WHERE e.alert_id = n.alert_id AND e.channel = n.channel AND e.id < n.id
                   AND e.sent_at IS NULL AND e.failed_at IS NULL)
          ORDER BY n.id LIMIT $4 {lock})
     RETURNING id, channel, alert_id, kind, title, body, attempts";

/// When the next message can be claimed: the earliest head of its alert's line (a message
/// behind an undelivered one waits for it), no earlier than its current claim lapses.
const NEXT_DUE: &str = "SELECT MIN(CASE WHEN n.held_until IS NOT NULL AND n.held_until > n.next_at
                                THEN n.held_until ELSE n.next_at END)
       FROM notifications n
      WHERE n.sent_at IS NULL AND n.failed_at IS NULL
        AND NOT EXISTS (
            SELECT 1 FROM notifications e
             WHERE e.alert_id = n.alert_id AND e.channel = n.channel AND e.id < n.id
               AND e.sent_at IS NULL AND e.failed_at IS NULL)";

fn pending<'r, R>(row: &'r R) -> Result<PendingNotification, JournalError>
where
    R: Row,
    &'static str: sqlx::ColumnIndex<R>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let channel: String = row.try_get("channel")?;
    let kind: String = row.try_get("kind")?;
    Ok(PendingNotification {
        id: row.try_get("id")?,
        channel: Channel::parse(&channel)
            .ok_or_else(|| JournalError::Corrupt(format!("notification channel {channel}")))?,
        alert_id: row.try_get("alert_id")?,
        kind: EventKind::parse(&kind)
            .ok_or_else(|| JournalError::Corrupt(format!("notification kind {kind}")))?,
        title: row.try_get("title")?,
        body: row.try_get("body")?,
        attempts: row.try_get("attempts")?,
    })
}

/// Implements [`OutboxJournal`] for `$journal` (a struct with a `pool` field); `$lock` is the
/// row-lock clause of the claim's SELECT.
macro_rules! outbox_journal {
    ($journal:ty, $lock:expr) => {
        #[async_trait]
        impl OutboxJournal for $journal {
            async fn enqueue(
                &self,
                messages: &[NewNotification],
                now: DateTime<Utc>,
            ) -> Result<(), JournalError> {
                let messages = messages.to_vec();
                self.write(move |conn| {
                    Box::pin(async move {
                        for m in &messages {
                            sqlx::query(
                                "INSERT INTO notifications
                             (channel, alert_id, kind, title, body, created_at, next_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $6)",
                            )
                            .bind(m.channel.as_str())
                            .bind(&m.alert_id)
                            .bind(m.kind.as_str())
                            .bind(&m.title)
                            .bind(&m.body)
                            .bind(to_millis(now))
                            .execute(&mut *conn)
                            .await?;
                        }
                        Ok(())
                    })
                })
                .await
            }

            async fn claim_notifications(
                &self,
                holder: &str,
                now: DateTime<Utc>,
                held_until: DateTime<Utc>,
                limit: u32,
            ) -> Result<Vec<PendingNotification>, JournalError> {
                let holder = holder.to_owned();
                let rows = self
                    .write(move |conn| {
                        Box::pin(async move {
                            Ok(
                                sqlx::query(sqlx::AssertSqlSafe(CLAIM.replace("{lock}", $lock)))
                                    .bind(&holder)
                                    .bind(to_millis(held_until))
                                    .bind(to_millis(now))
                                    .bind(i64::from(limit))
                                    .fetch_all(&mut *conn)
                                    .await?,
                            )
                        })
                    })
                    .await?;
                let mut out = rows.iter().map(pending).collect::<Result<Vec<_>, _>>()?;
                // RETURNING promises no order.
                out.sort_by_key(|n| n.id);
                Ok(out)
            }

            async fn notification_sent(
                &self,
                id: i64,
                holder: &str,
                now: DateTime<Utc>,
            ) -> Result<(), JournalError> {
                let holder = holder.to_owned();
                self.write(move |conn| {
                    Box::pin(async move {
                        sqlx::query(
                            "UPDATE notifications SET sent_at = $1, holder = NULL, held_until = NULL
                      WHERE id = $2 AND holder = $3",
                        )
                        .bind(to_millis(now))
                        .bind(id)
                        .bind(&holder)
                        .execute(&mut *conn)
                        .await?;
                        Ok(())
                    })
                })
                .await
            }

            async fn notification_failed(
                &self,
                id: i64,
                holder: &str,
                error: &str,
                retry_at: Option<DateTime<Utc>>,
                now: DateTime<Utc>,
            ) -> Result<(), JournalError> {
                let (next_at, failed_at) = match retry_at {
                    Some(at) => (Some(to_millis(at)), None),
                    None => (None, Some(to_millis(now))),
                };
                let (holder, error) = (holder.to_owned(), error.to_owned());
                self.write(move |conn| {
                    Box::pin(async move {
                        sqlx::query(
                            "UPDATE notifications
                        SET attempts = attempts + 1, last_error = $1,
                            next_at = COALESCE($2, next_at), failed_at = $3,
                            holder = NULL, held_until = NULL
                      WHERE id = $4 AND holder = $5",
                        )
                        .bind(&error)
                        .bind(next_at)
                        .bind(failed_at)
                        .bind(id)
                        .bind(&holder)
                        .execute(&mut *conn)
                        .await?;
                        Ok(())
                    })
                })
                .await
            }

            async fn next_notification_at(&self) -> Result<Option<DateTime<Utc>>, JournalError> {
                let next: Option<i64> = sqlx::query_scalar(NEXT_DUE).fetch_one(&self.pool).await?;
                Ok(next.map(crate::clock::from_millis))
            }
        }
    };
}

outbox_journal!(super::sqlite::SqliteJournal, "");
outbox_journal!(super::postgres::PgJournal, "FOR UPDATE SKIP LOCKED");
