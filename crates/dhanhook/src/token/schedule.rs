//! The keeper's background task: checks the starting token with Dhan, says in one line what
//! the token situation is, then refreshes on [`plan_refresh`]'s schedule and proves the token
//! with periodic health checks, until stopped.

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{
    TokenCheck, TokenKeeper, hours_left,
    policy::{Patience, Reason, plan_refresh},
    to_chrono,
};

/// How often a token Dhan could not be asked about (network) is checked again.
const RECHECK_UNCHECKED: chrono::Duration = chrono::Duration::seconds(60);

impl TokenKeeper {
    /// Checks the starting token with Dhan, says in one line what the token situation is, then
    /// runs the refresh schedule and health checks until `stop` is cancelled.
    pub async fn run_until_stopped(self, stop: CancellationToken) {
        tokio::select! {
            () = stop.cancelled() => return,
            () = self.check_current() => {}
        }
        self.announce();
        let mut next_health = self.next_health_check();
        loop {
            self.tell_trouble().await;
            let now = self.now();
            let refresh_at = plan_refresh(
                now,
                self.usable().as_ref(),
                &self.inner.settings,
                self.halted() || !self.renewable(),
                &self.inner.calendar,
            );
            let (at, health) = match (refresh_at, next_health) {
                (Some(r), Some(h)) if h < r => (Some(h), true),
                (None, Some(h)) => (Some(h), true),
                (r, _) => (r, false),
            };
            let sleep = async {
                match at {
                    Some(at) => self.inner.clock.sleep_until(at).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.inner.replan.notified() => continue,
                () = sleep => {}
            }
            if health {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = self.health_check() => {}
                }
                next_health = self.next_health_check();
            } else {
                let reason = if self.usable().is_some() {
                    Reason::Scheduled
                } else {
                    Reason::Missing
                };
                // A refresh may wait out Dhan's mint cooldown (minutes): shutdown does not.
                let refreshed = tokio::select! {
                    () = stop.cancelled() => return,
                    r = self.refresh(reason, None, Patience::WaitOutCooldown) => r,
                };
                if let Err(e) = refreshed {
                    tracing::error!("scheduled token refresh failed: {e}");
                    self.tell_trouble().await;
                    // Backoff and halts are enforced in refresh(); re-plan after the cooldown.
                    let retry = self.now() + to_chrono(self.inner.settings.mint_cooldown);
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = self.inner.replan.notified() => {}
                        () = self.inner.clock.sleep_until(retry) => {}
                    }
                }
            }
        }
    }

    /// The next health check: the configured interval, or soon while the token in use could
    /// not be checked yet (Dhan was unreachable at start-up).
    fn next_health_check(&self) -> Option<DateTime<Utc>> {
        let unchecked = self
            .current()
            .is_some_and(|t| t.check == TokenCheck::Unchecked);
        if unchecked {
            return Some(self.now() + RECHECK_UNCHECKED);
        }
        self.inner
            .settings
            .health_check
            .map(|every| self.now() + to_chrono(every))
    }

    /// Asks Dhan about a token loaded at start-up (`GET /v2/profile`) before anything reports
    /// it valid.
    async fn check_current(&self) {
        let Some(token) = self.current().filter(|t| t.check == TokenCheck::Unchecked) else {
            return;
        };
        match self.inner.client.profile(&token.value).await {
            Ok(_) => {
                self.count_check("ok");
                self.mark_accepted(&token);
                tracing::info!(
                    source = token.source.as_str(),
                    "Token valid ({:.1} hours remaining)",
                    hours_left(token.expires_at, self.now())
                );
            }
            Err(e) if e.is_auth() => {
                self.count_check("refused");
                self.mark_refused(&token, &e.to_string());
            }
            Err(e) => {
                self.count_check("unreachable");
                tracing::warn!(
                    "could not check the Dhan token with Dhan ({e}); it is used meanwhile and checked again in a minute"
                );
            }
        }
    }

    /// The start-up line for a token dhanhook cannot renew by itself: what is missing and how
    /// to add it (a token that renews itself needs no line of its own).
    fn announce(&self) {
        if self.renewable() {
            return;
        }
        let status = self.status();
        let problem = status.problem.clone().unwrap_or_default();
        if status.usable() {
            tracing::warn!(
                "Token valid ({:.1} hours remaining), but {problem}",
                status.hours_left.unwrap_or_default()
            );
        } else if status.state == super::TokenState::Unchecked {
            tracing::warn!("Dhan token {problem}");
        } else {
            tracing::error!("No usable Dhan token ({}): {problem}", status.state);
        }
    }

    /// Counts a token check (start-up or periodic) in the metrics, when they are kept.
    fn count_check(&self, result: &'static str) {
        if let Some(m) = self.inner.client.metrics() {
            m.health_check(result);
        }
    }

    fn halted(&self) -> bool {
        self.inner
            .report
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .halted
    }

    /// `GET /v2/profile` with the current token: logs its state, refreshes if Dhan refuses it.
    async fn health_check(&self) {
        let Some(token) = self.current().filter(|t| !t.refused()) else {
            self.count_check("no_token");
            tracing::warn!(
                "Periodic health check: no usable Dhan token ({})",
                self.status().state
            );
            return;
        };
        match self.inner.client.profile(&token.value).await {
            Ok(_) => {
                self.count_check("ok");
                self.mark_accepted(&token);
                tracing::info!(
                    "Periodic health check: Token valid ({:.1} hours remaining)",
                    hours_left(token.expires_at, self.now())
                );
            }
            Err(e) if e.is_auth() => {
                self.count_check("refused");
                tracing::warn!("Periodic health check: Dhan refused the token ({e})");
                if let Err(e) = self.refresh_after_refusal(&token, &e.to_string()).await {
                    tracing::error!("token refresh after a failed health check failed: {e}");
                }
            }
            Err(e) => {
                self.count_check("unreachable");
                tracing::warn!("Periodic health check: could not reach Dhan ({e})");
            }
        }
    }
}
