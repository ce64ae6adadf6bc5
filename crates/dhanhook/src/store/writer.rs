//! The SQLite journal's single writer, with group commit.
//!
//! Every write to the SQLite journal is a *job* handed to one task that owns one connection.
//! The task takes the first job waiting, then every other job already queued (up to
//! [`MAX_BATCH`]), and runs them all in one `BEGIN IMMEDIATE … COMMIT`: one fsync of the
//! write-ahead log for the whole batch. Each job runs inside its own savepoint, so a job that
//! fails is rolled back alone and the others still commit. A job's caller is answered only
//! after the batch's `COMMIT` returned: an acknowledged write is on disk
//! (`synchronous=FULL`), exactly as when each write was its own transaction.
//!
//! Why: with a pool of connections, concurrent writers fought for SQLite's single write lock
//! and lost time in its busy handler (sleeps of 1 to 100 ms), and each of them paid its own
//! fsync. One writer has no lock to fight, and the batches grow by themselves with the load:
//! while one batch is being synced, the next one queues. Reads stay on the pool and run
//! beside the writer (WAL readers never wait for it).
//!
//! A job is a closure over the connection that owns everything it needs (`'static`), so a
//! caller that stops waiting (a request past its deadline) leaves its job to complete or fail
//! on its own: never half-written. A job that panics (a bug in the code it runs, such as the
//! send gate's rule) fails alone, like a job that returns an error: its writes are undone and
//! the writer goes on, rather than every later write of the service failing.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use futures_util::{FutureExt, future::BoxFuture};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::JournalError;

/// Most jobs committed together. A batch that large only forms under a burst; the limit keeps
/// one transaction (and its callers' wait) short.
const MAX_BATCH: usize = 64;

/// Jobs waiting for the writer. Callers wait for room beyond this (back-pressure), which at
/// thousands of writes per second is a few milliseconds.
const QUEUE: usize = 1024;

/// One piece of work for the writer: statements on its connection, inside the batch's
/// transaction.
pub(super) type Work<T> = Box<
    dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, JournalError>> + Send,
>;

/// A job with its result type erased, so jobs of all kinds share one queue.
trait Job: Send {
    /// Runs the work; `true` if it succeeded (its savepoint is then kept).
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool>;
    /// Answers the caller once the batch's fate is known: `commit` is the batch's commit error,
    /// if it failed.
    fn finish(self: Box<Self>, commit: Option<&str>);
}

struct Typed<T> {
    work: Option<Work<T>>,
    outcome: Option<Result<T, JournalError>>,
    reply: oneshot::Sender<Result<T, JournalError>>,
}

impl<T: Send + 'static> Job for Typed<T> {
    fn run<'c>(&'c mut self, conn: &'c mut SqliteConnection) -> BoxFuture<'c, bool> {
        Box::pin(async move {
            let Some(work) = self.work.take() else {
                return false;
            };
            let outcome = match std::panic::AssertUnwindSafe(work(conn))
                .catch_unwind()
                .await
            {
                Ok(outcome) => outcome,
                Err(_) => {
                    tracing::error!("a journal write panicked; it is undone, the writer goes on");
                    Err(JournalError::NotCommitted(
                        "the write failed inside the journal (a bug: see the log)".to_owned(),
                    ))
                }
            };
            let ok = outcome.is_ok();
            self.outcome = Some(outcome);
            ok
        })
    }

    fn finish(self: Box<Self>, commit: Option<&str>) {
        let result = match (self.outcome, commit) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), None) => Ok(value),
            (Some(Ok(_)), Some(why)) | (None, Some(why)) => {
                Err(JournalError::NotCommitted(why.to_owned()))
            }
            (None, None) => Err(JournalError::NotCommitted(
                "the write was never run".to_owned(),
            )),
        };
        // The caller may have stopped waiting (its request ended); the write stands anyway.
        let _ = self.reply.send(result);
    }
}

enum Message {
    Job(Box<dyn Job>),
    /// Finish what is queued, close the connection, then answer.
    Close(oneshot::Sender<()>),
}

/// The handle every clone of the journal shares.
#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Message>,
    stats: Arc<Stats>,
}

/// What the writer has done: jobs run and transactions committed (their ratio is the group
/// commit's effect).
#[derive(Debug, Default)]
pub(super) struct Stats {
    pub jobs: AtomicU64,
    pub batches: AtomicU64,
}

impl fmt::Debug for Writer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("queued", &(QUEUE - self.queue.capacity()))
            .field("stats", &self.stats)
            .finish()
    }
}

impl Writer {
    /// Starts the writer task on `conn` (on the current tokio runtime).
    pub(super) fn start(conn: SqliteConnection) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let stats = Arc::new(Stats::default());
        tokio::spawn(run(conn, jobs, Arc::clone(&stats)));
        Self { queue, stats }
    }

    /// Jobs run and batches committed so far.
    #[cfg(test)]
    pub(super) fn stats(&self) -> (u64, u64) {
        (
            self.stats.jobs.load(Ordering::Relaxed),
            self.stats.batches.load(Ordering::Relaxed),
        )
    }

    /// Runs `work` in the writer's next batch and returns its result once the batch is
    /// committed.
    ///
    /// # Errors
    /// The work's own error (its writes were rolled back), or the batch could not be committed
    /// ([`JournalError::NotCommitted`]: nothing of it was written), or the writer has stopped.
    pub(super) async fn write<T: Send + 'static>(&self, work: Work<T>) -> Result<T, JournalError> {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Typed {
            work: Some(work),
            outcome: None,
            reply,
        });
        self.queue
            .send(Message::Job(job))
            .await
            .map_err(|_| JournalError::NotCommitted("the journal is closed".to_owned()))?;
        answer.await.map_err(|_| {
            JournalError::NotCommitted("the journal writer stopped before committing".to_owned())
        })?
    }

    /// Lets the queued jobs finish, then closes the writer's connection.
    pub(super) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.queue.send(Message::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

async fn run(mut conn: SqliteConnection, mut queue: mpsc::Receiver<Message>, stats: Arc<Stats>) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    let mut closing = None;
    while closing.is_none() {
        let Some(first) = queue.recv().await else {
            break;
        };
        match first {
            Message::Job(job) => batch.push(job),
            Message::Close(done) => closing = Some(done),
        }
        while batch.len() < MAX_BATCH && closing.is_none() {
            match queue.try_recv() {
                Ok(Message::Job(job)) => batch.push(job),
                Ok(Message::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            stats.jobs.fetch_add(batch.len() as u64, Ordering::Relaxed);
            stats.batches.fetch_add(1, Ordering::Relaxed);
            commit_batch(&mut conn, &mut batch).await;
        }
    }
    let _ = conn.close().await;
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Runs `batch` in one transaction, each job in its own savepoint, and answers every job.
async fn commit_batch(conn: &mut SqliteConnection, batch: &mut Vec<Box<dyn Job>>) {
    let failure = match run_batch(conn, batch).await {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(error = %e, jobs = batch.len(), "journal batch not committed");
            // Whatever state the connection is in, no transaction may stay open.
            let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
            Some(e.to_string())
        }
    };
    for job in batch.drain(..) {
        job.finish(failure.as_deref());
    }
}

async fn run_batch(
    conn: &mut SqliteConnection,
    batch: &mut [Box<dyn Job>],
) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    if let [only] = batch {
        // One job: the transaction is its savepoint.
        if only.run(conn).await {
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
        } else {
            sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await?;
        }
        return Ok(());
    }
    for job in batch.iter_mut() {
        sqlx::raw_sql("SAVEPOINT job").execute(&mut *conn).await?;
        if !job.run(conn).await {
            sqlx::raw_sql("ROLLBACK TO job").execute(&mut *conn).await?;
        }
        sqlx::raw_sql("RELEASE job").execute(&mut *conn).await?;
    }
    sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sqlx::{Connection, SqliteConnection, sqlite::SqliteConnectOptions};

    use super::*;

    async fn writer(dir: &tempfile::TempDir) -> (Writer, sqlx::SqlitePool) {
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("w.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let mut setup = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .execute(&mut setup)
            .await
            .unwrap();
        setup.close().await.unwrap();
        let conn = SqliteConnection::connect_with(&options).await.unwrap();
        let reader = sqlx::SqlitePool::connect_with(options).await.unwrap();
        (Writer::start(conn), reader)
    }

    fn insert(id: i64) -> Work<()> {
        Box::new(move |conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t (id, v) VALUES ($1, 'x')")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
    }

    async fn ids(reader: &sqlx::SqlitePool) -> Vec<i64> {
        sqlx::query_scalar("SELECT id FROM t ORDER BY id")
            .fetch_all(reader)
            .await
            .unwrap()
    }

    /// Writes that queue while the writer is busy are committed together, and a write that
    /// fails inside such a batch is undone alone: the others stand, its caller gets its error.
    #[tokio::test]
    async fn queued_writes_commit_together_and_a_failing_one_is_undone_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, reader) = writer(&dir).await;
        // Hold the writer busy so the next writes queue behind it.
        let (release, hold) = tokio::sync::oneshot::channel::<()>();
        let busy = {
            let w = writer.clone();
            tokio::spawn(async move {
                w.write::<()>(Box::new(move |conn| {
                    Box::pin(async move {
                        sqlx::query("INSERT INTO t (id, v) VALUES (0, 'first')")
                            .execute(&mut *conn)
                            .await?;
                        let _ = hold.await;
                        Ok(())
                    })
                }))
                .await
            })
        };
        while writer.stats().0 < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut pending = Vec::new();
        for id in 1..=20 {
            let w = writer.clone();
            // Id 7 collides with id 0's row once both are in: the 7th write fails.
            let id_to_write = if id == 7 { 0 } else { id };
            pending.push(tokio::spawn(
                async move { w.write(insert(id_to_write)).await },
            ));
        }
        // Every write is queued before the busy one ends.
        while writer.queue.capacity() > QUEUE - 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        let mut failed = 0;
        for (i, p) in pending.into_iter().enumerate() {
            match p.await.unwrap() {
                Ok(()) => assert_ne!(i + 1, 7, "the colliding write must fail"),
                Err(e) => {
                    assert_eq!(i + 1, 7, "only the colliding write fails: {e}");
                    failed += 1;
                }
            }
        }
        assert_eq!(failed, 1);
        let mut expected: Vec<i64> = (0..=20).filter(|i| *i != 7).collect();
        expected.sort_unstable();
        assert_eq!(ids(&reader).await, expected);
        let (jobs, batches) = writer.stats();
        assert_eq!(jobs, 21);
        assert_eq!(
            batches, 2,
            "the busy write, then the 20 queued behind it in one commit"
        );
    }

    /// A write that panics halfway is undone and reported; the writer goes on.
    #[tokio::test]
    async fn a_panicking_write_is_undone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, reader) = writer(&dir).await;
        let panics: Work<()> = Box::new(|conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t (id, v) VALUES (1, 'half')")
                    .execute(&mut *conn)
                    .await?;
                panic!("a bug in the job");
            })
        });
        assert!(matches!(
            writer.write(panics).await,
            Err(JournalError::NotCommitted(_))
        ));
        writer.write(insert(2)).await.unwrap();
        assert_eq!(ids(&reader).await, vec![2]);
    }

    /// A failing write on its own is rolled back; the writer goes on.
    #[tokio::test]
    async fn a_failing_write_leaves_nothing_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, reader) = writer(&dir).await;
        let half: Work<()> = Box::new(|conn| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t (id, v) VALUES (1, 'half')")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("INSERT INTO t (id, v) VALUES (1, 'again')")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        });
        assert!(writer.write(half).await.is_err());
        writer.write(insert(2)).await.unwrap();
        assert_eq!(ids(&reader).await, vec![2]);
        writer.close().await;
        assert!(matches!(
            writer.write(insert(3)).await,
            Err(JournalError::NotCommitted(_))
        ));
    }
}
