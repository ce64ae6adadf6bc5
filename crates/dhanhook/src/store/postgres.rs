//! The PostgreSQL journal: for several dhanhook instances sharing one database (or an operator
//! who already runs PostgreSQL and backs it up).
//!
//! It behaves exactly like the SQLite journal ([`super::sqlite`]): same tables, same instants
//! (BIGINT milliseconds), same rules. What differs is concurrency. SQLite has a single writer,
//! so `BEGIN IMMEDIATE` serialises everything; PostgreSQL has real concurrent writers, possibly
//! in other processes on other machines, so every rule that must hold under concurrency is
//! carried by a row lock or a unique index, never by "read, then decide, then write":
//!
//! - [`AlertJournal::admit`] *claims the dedupe key first* (`INSERT … ON CONFLICT (key) DO NOTHING`).
//!   The primary key on `dedupe_keys` picks exactly one winner among concurrent deliveries; a
//!   loser waits for the winner's transaction to end and then sees its key, so it answers
//!   "duplicate" without writing an alert. The key's foreign key to `alerts` is checked at
//!   commit (`DEFERRABLE INITIALLY DEFERRED`), which is what lets the key come before its alert.
//!   The few errors concurrency can still cause (serialization failure, deadlock, unique
//!   violation) retry the whole transaction, so a redelivery is never answered with an error.
//! - [`AlertJournal::update_leg`] and [`ReconcileJournal::claim_resend`] are single guarded `UPDATE`s: the
//!   row lock makes a second writer re-check the guard against the first writer's result.
//! - [`QueueJournal::claim_due`] picks its alert with `FOR UPDATE SKIP LOCKED`: concurrent runners
//!   pass over each other's rows instead of claiming the same alert or waiting in line.
//!
//! - A leg to be sent at once is gated (the kill-switch row `FOR UPDATE`, then the counts and
//!   the SUBMITTING mark) inside its alert's admission transaction: one commit, not two.
//!
//! Transactions use PostgreSQL's default READ COMMITTED isolation: each statement sees what
//! other transactions committed before it started, which is what the steps above rely on.
//! Durability: a committed transaction is flushed before `COMMIT` returns (with the server's
//! default `synchronous_commit = on`), so an acknowledged alert survives a crash.
//!
//! The URL carries a password: it is only ever exposed to the driver, never put in an error.
//!
//! Only what differs from SQLite is here; the journal's SQL is shared (`shared.rs`).
//!
//! [`AlertJournal::admit`]: super::AlertJournal::admit
//! [`AlertJournal::update_leg`]: super::AlertJournal::update_leg
//! [`ReconcileJournal::claim_resend`]: super::ReconcileJournal::claim_resend
//! [`QueueJournal::claim_due`]: super::QueueJournal::claim_due

use std::{str::FromStr, time::Duration};

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use sqlx::{
    Connection,
    postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions},
};

use super::{Admission, Gate, GateSpec, JournalError, NewAlert, shared::Backend};
use crate::clock::to_millis;

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
    pub(super) pool: PgPool,
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

    /// Runs `work` in one transaction on a pooled connection, committed if it succeeds.
    ///
    /// # Errors
    /// The work's own error (the transaction is rolled back) or a failed commit.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, JournalError>
    where
        T: Send,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T, JournalError>> + Send,
    {
        let mut tx = self.pool.begin().await?;
        let value = work(&mut tx).await?;
        tx.commit().await?;
        Ok(value)
    }

    /// Closes the pool (no writer of its own: see [`PgJournal::write`]).
    pub(super) async fn close_all(&self) {
        self.pool.close().await;
    }

    /// One attempt at admitting `alert` (and gating `gate`'s leg). `Ok(None)`: the dedupe key
    /// changed under us between two statements (it expired or was replaced); the caller runs
    /// the attempt again.
    async fn try_admit(
        &self,
        alert: &NewAlert,
        gate: Option<&GateSpec>,
    ) -> Result<Option<(Admission, Option<Gate>)>, JournalError> {
        let now = to_millis(alert.received_at);
        let mut tx = self.pool.begin().await?;
        Self::delete_expired_key(&mut tx, &alert.dedupe.key, now).await?;
        // Claim the key. If another transaction holds it uncommitted, this waits for it to end:
        // committed, it conflicts (nothing written); rolled back, this insert wins.
        if !Self::insert_key(&mut tx, alert).await? {
            // READ COMMITTED: this statement sees the key that made the insert conflict. Gone
            // again, or a key that is already expired at our `now` (written by a delivery with
            // an earlier clock): start over, the DELETE above will deal with it.
            let Some(alert_id) = Self::live_key(&mut tx, &alert.dedupe.key, now).await? else {
                tx.rollback().await?;
                return Ok(None);
            };
            Self::count_duplicate(&mut tx, &alert_id).await?;
            tx.commit().await?;
            return Ok(Some((Admission::Duplicate { alert_id }, None)));
        }
        Self::insert_alert(&mut tx, alert).await?;
        let gate = match gate {
            Some(spec) => Some(Self::gate_steps(&mut tx, &alert.id, spec, "FOR UPDATE").await?),
            None => None,
        };
        // The deferred foreign key (dedupe key → alert) is checked here.
        tx.commit().await?;
        Ok(Some((Admission::Admitted, gate)))
    }
}

/// The error is a conflict with a concurrent transaction, which a retry resolves. Connection
/// errors are deliberately not retried: a commit whose answer was lost may have happened, and
/// a retry would then report the alert as a duplicate of itself (and it would never be placed).
fn is_retryable(e: &JournalError) -> bool {
    match e {
        JournalError::Database(sqlx::Error::Database(db)) => {
            db.code().is_some_and(|code| RETRYABLE.contains(&&*code))
        }
        _ => false,
    }
}

#[async_trait]
impl Backend for PgJournal {
    // SKIP LOCKED: a row another runner is claiming right now is passed over (it is theirs), and
    // one they claimed since the statement began fails the re-check of the claim, so concurrent
    // runners neither claim the same alert nor wait in line for it.
    const CLAIM_LOCK: &'static str = "FOR UPDATE SKIP LOCKED";

    async fn apply_migrations(&self) -> Result<(), JournalError> {
        // sqlx holds a PostgreSQL advisory lock while migrating, so instances starting together
        // apply each migration once.
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn admit_alert(
        &self,
        alert: &NewAlert,
        gate: Option<GateSpec>,
    ) -> Result<(Admission, Option<Gate>), JournalError> {
        let mut attempt = 1;
        loop {
            match self.try_admit(alert, gate.as_ref()).await {
                Ok(Some(admission)) => return Ok(admission),
                Ok(None) if attempt < ADMIT_ATTEMPTS => {
                    tracing::debug!(alert_id = %alert.id, attempt, "dedupe key changed during admission; retrying");
                }
                Err(e) if attempt < ADMIT_ATTEMPTS && is_retryable(&e) => {
                    tracing::debug!(alert_id = %alert.id, attempt, error = %e, "admission conflicted with a concurrent one; retrying");
                }
                Err(e) => return Err(e),
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

    async fn token_saved(&self) -> Result<(), JournalError> {
        Ok(())
    }
}
