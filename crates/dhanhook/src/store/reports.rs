//! Read-only reports over the journal: what one day looked like (the daily summary). The SQL
//! is written once for both backends (`reports_journal!`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{JournalError, LegStatus};
use crate::clock::to_millis;

/// What a span of time held: alerts received and their legs by status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayCounts {
    pub alerts: i64,
    pub legs: Vec<(LegStatus, i64)>,
}

impl DayCounts {
    pub fn legs_in(&self, status: LegStatus) -> i64 {
        self.legs
            .iter()
            .filter(|(s, _)| *s == status)
            .map(|(_, n)| n)
            .sum()
    }
}

#[async_trait]
pub trait ReportJournal: Send + Sync + std::fmt::Debug {
    /// Alerts received in `[from, to)` and their legs by status.
    async fn day_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<DayCounts, JournalError>;
}

macro_rules! reports_journal {
    ($journal:ty) => {
        #[async_trait]
        impl ReportJournal for $journal {
            async fn day_counts(
                &self,
                from: DateTime<Utc>,
                to: DateTime<Utc>,
            ) -> Result<DayCounts, JournalError> {
                let alerts: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM alerts WHERE received_at >= $1 AND received_at < $2",
                )
                .bind(to_millis(from))
                .bind(to_millis(to))
                .fetch_one(&self.pool)
                .await?;
                let rows = sqlx::query(
                    "SELECT l.status, COUNT(*) AS n FROM order_legs l JOIN alerts a ON a.id = l.alert_id
                      WHERE a.received_at >= $1 AND a.received_at < $2 GROUP BY l.status",
                )
                .bind(to_millis(from))
                .bind(to_millis(to))
                .fetch_all(&self.pool)
                .await?;
                let mut legs = Vec::new();
                for row in rows {
                    let status: String = row.try_get("status")?;
                    let status = LegStatus::parse(&status)
                        .ok_or_else(|| JournalError::Corrupt(format!("leg status {status}")))?;
                    legs.push((status, row.try_get::<i64, _>("n")?));
                }
                Ok(DayCounts { alerts, legs })
            }
        }
    };
}

reports_journal!(super::sqlite::SqliteJournal);
reports_journal!(super::postgres::PgJournal);
