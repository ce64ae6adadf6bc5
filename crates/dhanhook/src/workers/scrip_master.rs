//! The scrip-master worker: downloads Dhan's scrip master when the cached copy is older than
//! today's refresh time (at once at start-up if so), then every day at that time, and retries
//! a failed download every 10 minutes while the last good copy stays in use. See
//! [`crate::instruments::source`] for where the file comes from and how a download replaces
//! the cache.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::{clock::Clock, instruments::source::InstrumentSource};

/// Retry a failed download after this long (the cached copy stays in use meanwhile).
const RETRY_AFTER: chrono::Duration = chrono::Duration::minutes(10);

/// Keeps the scrip master fresh.
#[derive(Debug)]
pub struct ScripMasterRefresher {
    source: InstrumentSource,
    clock: Arc<dyn Clock>,
}

impl ScripMasterRefresher {
    pub fn new(source: InstrumentSource, clock: Arc<dyn Clock>) -> Self {
        Self { source, clock }
    }

    /// Downloads when due, then sleeps until the next refresh (or retry) until `stop`.
    pub async fn run_until_stopped(self, stop: CancellationToken) {
        loop {
            let now = self.clock.now();
            let retry_at = if self.source.needs_download(now) {
                match self.source.download().await {
                    Ok(_) => None,
                    Err(_) => Some(self.clock.now() + RETRY_AFTER),
                }
            } else {
                None
            };
            if !self.source.downloads() {
                return;
            }
            let next = retry_at.unwrap_or_else(|| self.source.next_refresh(self.clock.now()));
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.clock.sleep_until(next) => {}
            }
        }
    }
}
