//! The SQLite journal: the embedded default, nothing to install.
//!
//! Durability settings: WAL (readers never block the writer), `synchronous=FULL` (a committed
//! transaction is on disk before `admit` returns, so an acknowledged alert survives a power
//! cut), foreign keys on. Writes that must not interleave (`admit`) start with
//! `BEGIN IMMEDIATE`, which takes SQLite's write lock up front: concurrent deliveries of one
//! alert queue on the lock (bounded by the busy timeout) instead of racing.
//!
//! Only what differs from PostgreSQL is here; the journal's SQL is shared (`shared.rs`).

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{Admission, JournalError, NewAlert, shared::Backend};
use crate::clock::to_millis;

/// How long a writer waits for SQLite's write lock before giving up. Admission transactions
/// take well under a millisecond, so this only runs out when the disk is stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections in the pool: SQLite has one writer at a time anyway; a few connections let
/// readers (`/logs`, duplicate lookups) proceed beside it.
const MAX_CONNECTIONS: u32 = 4;

#[derive(Debug, Clone)]
pub struct SqliteJournal {
    pub(super) pool: SqlitePool,
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
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| JournalError::Open(format!("cannot create {}: {e}", dir.display())))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        // The journal holds the Dhan access token and order history: owner-only. SQLite gives
        // its -wal and -shm files the database file's mode.
        if tokio::fs::try_exists(&file).await.unwrap_or(false) {
            use std::os::unix::fs::PermissionsExt;
            if let Err(e) =
                tokio::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).await
            {
                tracing::warn!(path = %file.display(), error = %e, "could not make the journal owner-only");
            }
        }
        Ok(Self { pool })
    }
}

#[async_trait]
impl Backend for SqliteJournal {
    // One writer at a time: the claiming UPDATE cannot interleave with another.
    const CLAIM_LOCK: &'static str = "";
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";

    async fn apply_migrations(&self) -> Result<(), JournalError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    /// Read, then decide, then write: safe here because `BEGIN IMMEDIATE` holds the single
    /// write lock for the whole transaction.
    async fn admit_alert(&self, alert: &NewAlert) -> Result<Admission, JournalError> {
        let now = to_millis(alert.received_at);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if let Some(alert_id) = Self::live_key(&mut tx, &alert.dedupe.key, now).await? {
            Self::count_duplicate(&mut tx, &alert_id).await?;
            tx.commit().await?;
            return Ok(Admission::Duplicate { alert_id });
        }
        Self::delete_expired_key(&mut tx, &alert.dedupe.key, now).await?;
        // The key's foreign key is checked at once in SQLite: the alert comes first.
        Self::insert_alert(&mut tx, alert).await?;
        if !Self::insert_key(&mut tx, alert).await? {
            // Cannot happen under the write lock: no live key, the expired one deleted.
            return Err(JournalError::Corrupt(format!(
                "dedupe key of alert {} appeared during its admission",
                alert.id
            )));
        }
        tx.commit().await?;
        Ok(Admission::Admitted)
    }

    async fn token_saved(&self) -> Result<(), JournalError> {
        // The previous token's row lingers in the write-ahead log until a checkpoint: fold it
        // into the database now (the value is sealed anyway; this keeps old ones from piling up).
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
