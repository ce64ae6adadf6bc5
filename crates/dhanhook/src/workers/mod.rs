//! The background workers: everything that runs on its own schedule rather than in answer to a
//! request.
//!
//! - [`queue`]: places queued alerts at their market's open, oldest first.
//! - [`reconciler`]: settles legs whose outcome is unknown by asking the broker; its start-up
//!   pass runs before new orders are sent.
//! - [`order_tracker`]: follows legs open at the broker to their final state by polling.
//! - [`token_refresh`]: keeps the Dhan token alive (live mode only).
//! - [`scrip_master`]: keeps the scrip master fresh.
//!
//! `startup` builds them ([`Workers`]); they start when the application runs, not when it is
//! built, and each stops at the shutdown signal (their loops select on the stop token, so a
//! sleep, a cooldown or a retry pause never holds up shutdown; the caller bounds the wait).

pub mod order_tracker;
pub mod queue;
pub mod reconciler;
pub mod scrip_master;
pub mod token_refresh;

use tokio_util::{sync::CancellationToken, task::TaskTracker};

use self::{
    order_tracker::OrderTracker, queue::QueueRunner, reconciler::Reconciler,
    scrip_master::ScripMasterRefresher, token_refresh::TokenRefresher,
};

/// The workers of one application, ready to start.
#[derive(Debug)]
pub struct Workers {
    pub queue: QueueRunner,
    pub reconciler: Reconciler,
    pub order_tracker: OrderTracker,
    pub scrip_master: ScripMasterRefresher,
    /// Live mode only.
    pub token: Option<TokenRefresher>,
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
        tasks.spawn(self.order_tracker.run_until_stopped(stop.clone()));
    }
}
