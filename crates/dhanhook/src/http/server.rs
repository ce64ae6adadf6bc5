//! Serving connections: hyper driven directly (not `axum::serve`) for what a public endpoint
//! needs: a header-read (and idle) timeout, a bounded header buffer, a cap on open connections,
//! and connections that end in order at shutdown (idle ones at once, busy ones after their
//! answer, stragglers when the deadline comes).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// How long a client may take to send a request's headers: on a new connection, and between
/// requests on a kept-alive one (hyper restarts the timer whenever it waits for a request, so
/// this is also the idle timeout). Senders that trickle or stop are closed after it.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The most a connection buffers while reading (request line and headers included); hyper
/// answers 431 to a header block that does not fit. Real alerts' headers are well under 2 KiB.
const MAX_CONNECTION_BUFFER: usize = 16 * 1024;

/// How often, at most, the connection-cap warning is repeated.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Raises the soft open-file limit to the hard one, so that the connection cap, not the
/// descriptor limit, is what bounds open sockets (the `rlimit` crate: a small, maintained
/// wrapper of `setrlimit`, which also knows macOS's `OPEN_MAX` ceiling).
pub fn raise_fd_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::debug!("open-file limit (RLIMIT_NOFILE) is {limit}");
            Some(limit)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            None
        }
    }
}

/// Descriptors kept free of client connections (journal, calls to Dhan, files).
pub(crate) const FD_HEADROOM: u64 = 256;

/// The open connections: a cap on how many, and the signals that end them at shutdown.
pub(crate) struct Connections {
    pub(crate) max: usize,
    pub(crate) permits: Arc<tokio::sync::Semaphore>,
    pub(crate) tracker: TaskTracker,
    /// Asks every connection to finish its request in progress and close.
    pub(crate) graceful: CancellationToken,
    /// Drops every connection at once (the end of the shutdown phase).
    pub(crate) kill: CancellationToken,
}

/// The connection-cap warning: once when the cap is first reached, then at most once a minute.
struct CapWarning {
    last: Option<tokio::time::Instant>,
    refused: u64,
}

impl CapWarning {
    fn refused(&mut self, max: usize) {
        self.refused += 1;
        let now = tokio::time::Instant::now();
        if self
            .last
            .is_none_or(|at| now.duration_since(at) >= CAP_WARNING_EVERY)
        {
            tracing::warn!(
                "connection cap of {max} reached; {} connections refused in the last minute \
                 (MAX_CONNECTIONS)",
                self.refused
            );
            self.last = Some(now);
            self.refused = 0;
        }
    }
}

impl Connections {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            permits: Arc::new(tokio::sync::Semaphore::new(max)),
            tracker: TaskTracker::new(),
            graceful: CancellationToken::new(),
            kill: CancellationToken::new(),
        }
    }

    /// Accepts connections until dropped, each served on its own task. At the cap a new
    /// connection is accepted and closed at once rather than left in the kernel's backlog:
    /// there it would wait behind the flood (and once the backlog is full, every newcomer's
    /// SYN is dropped, the alert's too), while a prompt close keeps the backlog moving and
    /// slots come back within `HEADER_READ_TIMEOUT` as idle connections are closed.
    pub(crate) async fn accept_loop(&self, listener: TcpListener, app: axum::Router) {
        let mut warning = CapWarning {
            last: None,
            refused: 0,
        };
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
                drop(stream);
                warning.refused(self.max);
                continue;
            };
            self.tracker.spawn(serve_connection(
                stream,
                peer,
                app.clone(),
                self.graceful.clone(),
                self.kill.clone(),
                permit,
            ));
        }
    }
}

/// Serves one connection with HTTP/1.1 keep-alive, a header-read (and idle) timeout and a
/// bounded buffer. `ConnectInfo<SocketAddr>` is put on each request for the handlers.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    graceful: CancellationToken,
    kill: CancellationToken,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let service =
        hyper::service::service_fn(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            tower::Service::call(&mut app.clone(), req)
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_CONNECTION_BUFFER)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        () = kill.cancelled() => return,
        () = graceful.cancelled() => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                ended = conn.as_mut() => ended,
                () = kill.cancelled() => return,
            }
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
