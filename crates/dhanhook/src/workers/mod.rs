//! The background workers: everything that runs on its own schedule rather than in answer to a
//! request.
//!
//! - [`queue`]: places queued alerts at their market's open, oldest first.
//! - [`reconciler`]: settles legs whose outcome is unknown by asking the broker; its start-up
//!   pass runs before new orders are sent.
//! - [`order_tracker`]: follows legs open at the broker to their final state by polling.
//! - [`order_feed`]: the same from Dhan's order-update WebSocket, as it happens (live mode).
//!   Both record through [`leg_progress`]; both use [`lease`] so that one instance does each.
//! - [`token_refresh`]: keeps the Dhan token alive (live mode only).
//! - [`scrip_master`]: keeps the scrip master fresh.
//! - [`notifier`]: delivers the notification outbox (when a channel is configured).
//! - [`daily_summary`]: the day's summary after the close (when a channel is configured).
//! - [`square_off`]: closes the day's intraday positions at `SQUARE_OFF_AT` (when set).
//!
//! `startup` builds them ([`Workers`]); they start when the application runs, not when it is
//! built, and each stops at the shutdown signal (their loops select on the stop token, so a
//! sleep, a cooldown or a retry pause never holds up shutdown; the caller bounds the wait).

pub mod daily_summary;
pub mod lease;
pub mod leg_progress;
pub mod notifier;
pub mod order_feed;
pub mod order_tracker;
pub mod queue;
pub mod reconciler;
pub mod scrip_master;
pub mod square_off;
pub mod token_refresh;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use self::{
    daily_summary::DailySummary, notifier::NotifierWorker, order_feed::OrderFeed,
    order_tracker::OrderTracker, queue::QueueRunner, reconciler::Reconciler,
    scrip_master::ScripMasterRefresher, token_refresh::TokenRefresher,
};

/// The workers of one application, ready to start.
#[derive(Debug)]
pub struct Workers {
    pub queue: QueueRunner,
    pub reconciler: Reconciler,
    pub order_tracker: OrderTracker,
    /// Live mode with a feed URL only.
    pub order_feed: Option<OrderFeed>,
    pub scrip_master: ScripMasterRefresher,
    /// Live mode only.
    pub token: Option<TokenRefresher>,
    /// Only when a notification channel is configured.
    pub notifier: Option<NotifierWorker>,
    /// Only when a notification channel is configured.
    pub daily_summary: Option<DailySummary>,
    /// Only with `SQUARE_OFF_AT`.
    pub square_off: Option<square_off::SquareOff>,
}

impl Workers {
    /// Starts every worker on `tasks`; each runs until `stop` is cancelled.
    pub fn start(self, tasks: &TaskTracker, stop: &CancellationToken) {
        if let Some(token) = self.token {
            tasks.spawn(token.run_until_stopped(stop.clone()));
        }
        tasks.spawn(self.scrip_master.run_until_stopped(stop.clone()));
        tasks.spawn(self.queue.run_until_stopped(stop.clone()));
        tasks.spawn(self.reconciler.run_until_stopped(stop.clone()));
        if let Some(notifier) = self.notifier {
            tasks.spawn(notifier.run_until_stopped(stop.clone()));
        }
        if let Some(summary) = self.daily_summary {
            tasks.spawn(summary.run_until_stopped(stop.clone()));
        }
        if let Some(square_off) = self.square_off {
            tasks.spawn(square_off.run_until_stopped(stop.clone()));
        }
        tasks.spawn(self.order_tracker.run_until_stopped(stop.clone()));
        if let Some(feed) = self.order_feed {
            tasks.spawn(feed.run_until_stopped(stop.clone()));
        }
    }
}
