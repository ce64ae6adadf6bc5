//! The SQLite journal: the embedded default, nothing to install.
//!
//! Durability settings: WAL (readers never block the writer), `synchronous=FULL` (a committed
//! transaction is on disk before `admit` returns, so an acknowledged alert survives a power
//! cut), foreign keys on. Every write goes through one writer ([`super::writer`]): a
//! dedicated connection that runs concurrent writes in one `BEGIN IMMEDIATE` transaction and
//! one fsync (group commit), so writers never fight for SQLite's lock. Reads use a small pool
//! beside it.
//!
//! Only what differs from PostgreSQL is here; the journal's SQL is shared (`shared.rs`).

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::{
    Connection, SqliteConnection,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

use super::{Admission, JournalError, NewAlert, shared::Backend, writer::Writer};
use crate::{
    clock::to_millis,
    store::{Gate, GateSpec},
};

/// How long the writer waits for SQLite's write lock before giving up. Inside one process
/// nothing else takes it; another process on the same file (a `dhanhook` command, a backup)
/// may hold it for a moment, so this only runs out when the disk is stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections in the read pool: readers (`/logs`, duplicate lookups, the workers' scans)
/// proceed beside the writer.
const MAX_CONNECTIONS: u32 = 4;

#[derive(Debug, Clone)]
pub struct SqliteJournal {
    /// Reads (and the rare maintenance statement that is not a transaction: migrations, the
    /// checkpoint after a token is saved).
    pub(super) pool: SqlitePool,
    /// Every write.
    writer: Writer,
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
            .connect_with(options.clone())
            .await?;
        let writer = Writer::start(SqliteConnection::connect_with(&options).await?);
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
        Ok(Self { pool, writer })
    }

    /// Runs `work` as (part of) one committed write transaction, through the single writer.
    ///
    /// # Errors
    /// The work's own error (its writes are rolled back) or a failed commit.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, JournalError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, JournalError>>
            + Send
            + 'static,
    {
        self.writer.write(Box::new(work)).await
    }

    /// Stops the writer after what is queued, then closes the read pool.
    pub(super) async fn close_all(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

#[async_trait]
impl Backend for SqliteJournal {
    // One writer at a time: the claiming UPDATE cannot interleave with another.
    const CLAIM_LOCK: &'static str = "";

    async fn apply_migrations(&self) -> Result<(), JournalError> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    /// Read, then decide, then write: safe here because the single writer runs one job at a
    /// time inside its `BEGIN IMMEDIATE` transaction.
    async fn admit_alert(
        &self,
        alert: &NewAlert,
        gate: Option<GateSpec>,
    ) -> Result<(Admission, Option<Gate>), JournalError> {
        let alert = alert.clone();
        self.write(move |conn| {
            Box::pin(async move {
                let now = to_millis(alert.received_at);
                if let Some(alert_id) = Self::live_key(conn, &alert.dedupe.key, now).await? {
                    Self::count_duplicate(conn, &alert_id).await?;
                    return Ok((Admission::Duplicate { alert_id }, None));
                }
                Self::delete_expired_key(conn, &alert.dedupe.key, now).await?;
                // The key's foreign key is checked at once in SQLite: the alert comes first.
                Self::insert_alert(conn, &alert).await?;
                if !Self::insert_key(conn, &alert).await? {
                    // Cannot happen under the write lock: no live key, the expired one deleted.
                    return Err(JournalError::Corrupt(format!(
                        "dedupe key of alert {} appeared during its admission",
                        alert.id
                    )));
                }
                let gate = match gate {
                    Some(spec) => Some(Self::gate_steps(conn, &alert.id, &spec, "").await?),
                    None => None,
                };
                Ok((Admission::Admitted, gate))
            })
        })
        .await
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
