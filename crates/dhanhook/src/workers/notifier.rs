//! The notifier worker: delivers the outbox's messages (see [`crate::notify`]).
//!
//! It claims a batch (one instance per message, held for [`HOLD`]), sends each on its channel,
//! and records the result: sent; failed and tried again with backoff; or, for a request the
//! channel refuses outright (a wrong bot token or chat id) or after [`MAX_ATTEMPTS`], given up
//! and logged. It wakes when a message is written, at the next retry, and at least every
//! [`IDLE_CHECK`] (for messages written by another instance).

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    clock::Clock,
    notify::Channels,
    store::{OutboxJournal, PendingNotification},
};

/// How long a claim keeps a message from other instances (longer than a send's timeout).
const HOLD: chrono::Duration = chrono::Duration::seconds(60);
/// Messages claimed at once.
const BATCH: u32 = 20;
/// Deliveries tried before a message is given up.
const MAX_ATTEMPTS: i64 = 20;
/// The first retry's delay; it doubles with each failure, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: chrono::Duration = chrono::Duration::seconds(5);
const MAX_BACKOFF: chrono::Duration = chrono::Duration::minutes(10);
/// Longest sleep with nothing due.
const IDLE_CHECK: chrono::Duration = chrono::Duration::seconds(30);
/// Shortest sleep when nothing could be claimed.
const MIN_SLEEP: chrono::Duration = chrono::Duration::seconds(1);
/// Pause after the journal failed.
const JOURNAL_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// Delivers notifications until stopped.
#[derive(Debug)]
pub struct NotifierWorker {
    outbox: Arc<dyn OutboxJournal>,
    channels: Channels,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    instance: String,
}

impl NotifierWorker {
    pub fn new(
        outbox: Arc<dyn OutboxJournal>,
        channels: Channels,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            outbox,
            channels,
            clock,
            wake,
            instance: uuid::Uuid::now_v7().to_string(),
        }
    }

    pub async fn run_until_stopped(self, stop: CancellationToken) {
        loop {
            let now = self.clock.now();
            let claimed = self
                .outbox
                .claim_notifications(&self.instance, now, now + HOLD, BATCH)
                .await;
            let batch = match claimed {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(%error, "could not read the notification outbox; retrying shortly");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(JOURNAL_RETRY) => continue,
                    }
                }
            };
            if !batch.is_empty() {
                for message in batch {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = self.deliver(message) => {}
                    }
                }
                // An alert's next message becomes eligible once this one is sent.
                continue;
            }
            let now = self.clock.now();
            let at = match self.outbox.next_notification_at().await {
                // Never sooner than a moment from now: nothing was claimable just now, so a
                // "due" time in the past (a clock step between two instances) must not spin.
                Ok(Some(next)) => next.min(now + IDLE_CHECK).max(now + MIN_SLEEP),
                _ => now + IDLE_CHECK,
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.wake.notified() => {}
                () = self.clock.sleep_until(at) => {}
            }
        }
    }

    async fn deliver(&self, message: PendingNotification) {
        let sent = self
            .channels
            .send(message.channel, &message.title, &message.body)
            .await;
        let now = self.clock.now();
        let recorded = match sent {
            Ok(()) => {
                tracing::info!(
                    id = message.id,
                    channel = message.channel.as_str(),
                    kind = message.kind.as_str(),
                    "notification sent"
                );
                self.outbox
                    .notification_sent(message.id, &self.instance, now)
                    .await
            }
            Err(error) => {
                let attempts = message.attempts + 1;
                let retry_at =
                    (error.retryable && attempts < MAX_ATTEMPTS).then(|| now + backoff(attempts));
                match retry_at {
                    Some(at) => {
                        tracing::warn!(id = message.id, channel = message.channel.as_str(), %error, attempts, "notification not delivered; retrying at {at}")
                    }
                    None => {
                        tracing::error!(id = message.id, channel = message.channel.as_str(), %error, attempts, "notification given up")
                    }
                }
                self.outbox
                    .notification_failed(message.id, &self.instance, &error.message, retry_at, now)
                    .await
            }
        };
        if let Err(error) = recorded {
            // The claim lapses and the message is tried again: at least once, never lost.
            tracing::error!(id = message.id, %error, "could not record a notification's delivery");
        }
    }
}

/// The delay before attempt `attempts + 1`: 5 s, 10 s, 20 s … up to 10 min.
fn backoff(attempts: i64) -> chrono::Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    (FIRST_BACKOFF * 2i32.pow(doublings)).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        assert_eq!(backoff(1), chrono::Duration::seconds(5));
        assert_eq!(backoff(2), chrono::Duration::seconds(10));
        assert_eq!(backoff(4), chrono::Duration::seconds(40));
        assert_eq!(backoff(19), chrono::Duration::minutes(10));
    }
}
