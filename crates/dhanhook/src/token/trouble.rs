//! Telling the trader when the keeper has no usable token and cannot get one by itself
//! (minting halted after repeated failures, or a refused token with no PIN + TOTP to replace
//! it), and once more when a usable token is back. While that lasts every order is refused, so
//! it is worth a message; a token that is being renewed by itself is not.

use std::sync::atomic::Ordering;

use super::{TokenKeeper, TokenState};
use crate::notify::{Event, Notifier};

impl TokenKeeper {
    /// Tells `notifier` about token trouble from now on.
    pub fn notify_with(&self, notifier: Notifier) {
        let _ = self.inner.notifier.set(notifier);
    }

    /// Compares the token's situation with what the trader was last told, and tells the
    /// change: trouble once when it starts, recovery once when a usable token is back.
    pub(super) async fn tell_trouble(&self) {
        let Some(notifier) = self.inner.notifier.get() else {
            return;
        };
        let status = self.status();
        let stuck = !status.usable()
            && !matches!(status.state, TokenState::Minting | TokenState::Unchecked)
            && (status.minting_halted || !status.renewable);
        let told = self.inner.trouble_told.load(Ordering::SeqCst);
        if stuck && !told {
            self.inner.trouble_told.store(true, Ordering::SeqCst);
            notifier
                .send(Event::TokenTrouble {
                    state: status.state.as_str().to_owned(),
                    problem: status.problem.unwrap_or_default(),
                })
                .await;
        } else if told && status.usable() {
            self.inner.trouble_told.store(false, Ordering::SeqCst);
            notifier
                .send(Event::TokenRecovered {
                    hours_left: status.hours_left.unwrap_or_default(),
                })
                .await;
        }
    }
}
