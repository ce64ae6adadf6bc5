//! The CSV log's writer: one thread that owns the file and writes the rows, in the order they
//! were handed to it, off the request path (issue 15, item 3).
//!
//! `append` only serialises a row and sends the bytes down a channel; it never waits for the
//! disk. The writer thread sleeps on the channel; when woken it takes everything queued (up to
//! [`MAX_BATCH_BYTES`]) and writes it with one `write_all`: a reader of the file sees the row
//! at once. A quiet service writes each row at once; under a burst many rows share one write.
//!
//! Syncs are spaced ([`SYNC_EVERY`]): the rows written are `sync_data`ed at most once a
//! second, when the writer falls idle with rows unsynced, on [`RowWriter::flush`] and at the
//! end. The journal is the durable record (each alert's commits are synced before it is
//! answered); the CSV is its spreadsheet copy, and a sync per row doubled the fsyncs of every
//! alert. A power cut can cost the CSV the rows of its last second, never the journal.
//!
//! Why a dedicated std thread rather than a tokio task:
//! - writing and syncing a file block; on a tokio worker they would stall other requests, and
//!   a `spawn_blocking` per row (what this replaced) costs a hand-off to the blocking pool and
//!   a mutex per row, awaited by the request;
//! - a `spawn_blocking` loop would hold a blocking-pool thread forever anyway, and would tie the
//!   writer to the runtime that opened the log; a plain thread needs no runtime, so `append` can
//!   be called from any task (or none);
//! - one owner of the file needs no lock: rows cannot interleave, because each is one message
//!   and only this thread writes.
//!
//! Order: the channel is first-in first-out, so an `append` that returns before another starts
//! lands first; concurrent appends land in some order, each line whole.
//!
//! Nothing queued is lost at shutdown: [`RowWriter::flush`] queues a marker behind every row
//! sent so far and waits until the thread has written and synced them all. When every handle
//! is dropped the thread writes what is left and ends.

use std::{
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::mpsc::{self, RecvTimeoutError},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

/// The most bytes written in one go. Large enough that a burst of hundreds of rows (about 300
/// bytes each) is one write and one sync; bounded so that a never-ending stream of rows still
/// gets written and synced regularly.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// Longest a written row stays unsynced (see the module header).
const SYNC_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
enum Message {
    /// One whole CSV line, newline included.
    Row(Vec<u8>),
    /// Answered once every row sent before it is written and synced (or failed and logged).
    Flush(oneshot::Sender<()>),
}

/// A handle on the writer thread. Cheap to clone; the thread ends when the last is dropped.
#[derive(Debug, Clone)]
pub(super) struct RowWriter {
    /// Unbounded on purpose: `append` must never block a request. Rows come at the pace of
    /// orders (Dhan's rate limits bound that to tens a second), and the thread writes them as
    /// fast as the disk allows; a disk that stops answering stalls the journal first.
    tx: mpsc::Sender<Message>,
}

impl RowWriter {
    /// Starts the thread that owns `file` (opened for appending). `path` is for messages.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub(super) fn start(file: File, path: PathBuf) -> io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("csv-log".to_owned())
            .spawn(move || run(file, &path, &rx))?;
        Ok(Self { tx })
    }

    /// Queues one line. False if the writer thread is gone (it panicked): the row is lost.
    pub(super) fn send(&self, line: Vec<u8>) -> bool {
        self.tx.send(Message::Row(line)).is_ok()
    }

    /// Waits until every line sent before this call is written and synced.
    pub(super) async fn flush(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Message::Flush(ack)).is_ok() {
            // An error means the thread is gone; nothing more can be written either way.
            let _ = done.await;
        }
    }
}

/// The writer thread: until every handle is dropped, take what is queued and write it; sync
/// as the module header says, then answer the flushes that were queued behind it.
fn run(mut file: File, path: &Path, rx: &mpsc::Receiver<Message>) {
    let mut batch: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut flushes = Vec::new();
    // Rows written since the last sync, and when that was.
    let mut unsynced = false;
    let mut synced_at = Instant::now();
    loop {
        // `recv` sleeps until a message comes, and fails only once every sender is gone and
        // the queue is empty: nothing sent is left behind. With rows unsynced, the sleep
        // ends in time to sync them.
        let first = if unsynced {
            match rx.recv_timeout(SYNC_EVERY.saturating_sub(synced_at.elapsed())) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => {
                    sync(&file, path);
                    (unsynced, synced_at) = (false, Instant::now());
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(message) => message,
                Err(_) => break,
            }
        };
        let mut rows = 0_usize;
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Row(line) => {
                    batch.extend_from_slice(&line);
                    rows += 1;
                }
                Message::Flush(ack) => flushes.push(ack),
            }
            next = if batch.len() < MAX_BATCH_BYTES {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        if !batch.is_empty() {
            unsynced = true;
            if let Err(error) = file.write_all(&batch) {
                // The journal is the source of truth: the rows are there, the CSV misses them.
                tracing::warn!(
                    path = %path.display(),
                    %error,
                    rows,
                    "could not append to the CSV order log"
                );
            }
            batch.clear();
            // A burst may have grown the buffer far beyond a row's size: give it back.
            batch.shrink_to(64 * 1024);
        }
        if unsynced && (!flushes.is_empty() || synced_at.elapsed() >= SYNC_EVERY) {
            sync(&file, path);
            (unsynced, synced_at) = (false, Instant::now());
        }
        for ack in flushes.drain(..) {
            let _ = ack.send(());
        }
    }
    if unsynced {
        sync(&file, path);
    }
}

/// Puts the rows written so far on disk (the file is unbuffered: each `write_all` of whole
/// lines on the `O_APPEND` file already reached the kernel).
fn sync(file: &File, path: &Path) {
    if let Err(error) = file.sync_data() {
        tracing::warn!(path = %path.display(), %error, "could not sync the CSV order log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(path: &Path) -> File {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
    }

    /// Many tasks appending at once: every line exactly once, whole; each task's own lines in
    /// the order it sent them; all on disk once `flush` returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_lines_arrive_once_whole_and_in_each_senders_order() {
        const TASKS: usize = 16;
        const LINES: usize = 250;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        let writer = RowWriter::start(open(&path), path.clone()).unwrap();

        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    for i in 0..LINES {
                        // Long lines, so a torn write would show.
                        let line = format!("{t},{i},{}\n", "x".repeat(200));
                        assert!(writer.send(line.into_bytes()));
                        if i % 50 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        writer.flush().await;

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        let mut next = [0_usize; TASKS];
        for line in text.lines() {
            let mut fields = line.split(',');
            let t: usize = fields.next().unwrap().parse().unwrap();
            let i: usize = fields.next().unwrap().parse().unwrap();
            assert_eq!(fields.next().unwrap(), "x".repeat(200), "a whole line");
            assert_eq!(fields.next(), None, "a whole line");
            assert_eq!(i, next[t], "task {t}'s lines in the order it sent them");
            next[t] += 1;
        }
        assert_eq!(next, [LINES; TASKS], "every line exactly once");
    }

    #[tokio::test]
    async fn sequential_lines_are_written_in_call_order_and_the_thread_ends_with_its_handles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rows.csv");
        let writer = RowWriter::start(open(&path), path.clone()).unwrap();
        for i in 0..1000 {
            writer.send(format!("{i}\n").into_bytes());
        }
        writer.flush().await;
        let lines: Vec<usize> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(lines, (0..1000).collect::<Vec<_>>());

        // Rows sent just before the last handle goes are still written: the thread drains the
        // queue before it ends. Dropping the handle is the signal; the file is then read once
        // the thread has gone (a clone's flush would keep it alive, so wait on the file).
        writer.send(b"last\n".to_vec());
        drop(writer);
        let mut seen = String::new();
        for _ in 0..500 {
            seen = std::fs::read_to_string(&path).unwrap();
            if seen.ends_with("last\n") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            seen.ends_with("999\nlast\n"),
            "{}",
            &seen[seen.len() - 20..]
        );
    }
}
