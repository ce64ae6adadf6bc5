//! The token worker: checks the starting Dhan token with Dhan, says in one line what the token
//! situation is, then refreshes it on schedule (before expiry, and pre-market when it would not
//! last the session) and runs the periodic health check. The policy and the schedule live in
//! [`crate::token`]; this is where they run.

use tokio_util::sync::CancellationToken;

use crate::token::TokenKeeper;

/// Runs the token keeper's schedule.
#[derive(Debug)]
pub struct TokenRefresher {
    keeper: TokenKeeper,
}

impl TokenRefresher {
    pub fn new(keeper: TokenKeeper) -> Self {
        Self { keeper }
    }

    pub async fn run_until_stopped(self, stop: CancellationToken) {
        self.keeper.run_until_stopped(stop).await;
    }
}
