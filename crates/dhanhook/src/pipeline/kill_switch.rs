//! The kill switch: a persistent pause, shared by every instance through the journal, that
//! `POST /kill-switch` and `dhanhook kill-switch` turn on and off.
//!
//! Turning it on is recorded first (so the very next leg is judged by it, on every instance),
//! then the optional steps run in the order Dhan needs: `flatten` (Dhan's Exit All closes every
//! position and cancels every open order), then `broker` (Dhan's own kill switch, which Dhan
//! refuses while positions or orders are open). A failed step does not undo the switch: a
//! pause that is on is the safe state; the answer and the notification say what failed.
//!
//! Every change is journaled with who made it (the client's IP, or `cli`) and when, and told
//! to the trader (`NOTIFY_EVENTS` kind `kill_switch`). The upstream's `/kill-switch` was open to
//! anyone on the internet; this one needs the admin token.

use std::sync::Arc;

use serde::Serialize;

use crate::{
    broker::Broker,
    clock::Clock,
    config::KillSwitchMode,
    notify::{Event, Notifier},
    store::{ControlJournal, JournalError, KillSwitch},
};

/// A change asked for.
#[derive(Debug, Clone, Default)]
pub struct KillSwitchChange {
    pub on: bool,
    /// Close every position and cancel open orders at the broker (only with `on`).
    pub flatten: bool,
    /// Also switch the broker's own kill switch (Dhan: ACTIVATE blocks the account for the day).
    pub broker: bool,
    /// Why, in the operator's words (kept in the journal and the notification).
    pub note: Option<String>,
}

/// What one optional step did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepOutcome {
    pub ok: bool,
    pub message: String,
}

/// What a change did.
#[derive(Debug, Clone, Serialize)]
pub struct KillSwitchOutcome {
    pub kill_switch: KillSwitch,
    /// `entries` or `all`: what it refuses while on.
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flatten: Option<StepOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker: Option<StepOutcome>,
}

/// Turns the switch. Cheap to clone.
#[derive(Debug, Clone)]
pub struct KillSwitchControl {
    journal: Arc<dyn ControlJournal>,
    /// `None` from the CLI, which reaches the journal but not the broker.
    broker: Option<Arc<dyn Broker>>,
    notifier: Notifier,
    clock: Arc<dyn Clock>,
    mode: KillSwitchMode,
}

impl KillSwitchControl {
    pub fn new(
        journal: Arc<dyn ControlJournal>,
        broker: Option<Arc<dyn Broker>>,
        notifier: Notifier,
        clock: Arc<dyn Clock>,
        mode: KillSwitchMode,
    ) -> Self {
        Self {
            journal,
            broker,
            notifier,
            clock,
            mode,
        }
    }

    pub fn mode(&self) -> KillSwitchMode {
        self.mode
    }

    /// `state` in two lines for a terminal (`dhanhook kill-switch`).
    pub fn report(&self, state: &KillSwitch) -> String {
        let since = state.since.map_or_else(
            || "never switched".to_owned(),
            |t| {
                format!(
                    "since {} IST",
                    crate::clock::ist(t).format("%Y-%m-%d %H:%M:%S")
                )
            },
        );
        let mut out = format!(
            "kill switch: {} ({since}, by {}){}\n",
            if state.on { "ON" } else { "off" },
            state.by.as_deref().unwrap_or("-"),
            state
                .note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        );
        if state.on {
            out.push_str(match self.mode {
                KillSwitchMode::Entries => "refusing: new entries (exits pass)\n",
                KillSwitchMode::All => "refusing: every order (KILL_SWITCH_MODE=all)\n",
            });
        }
        out
    }

    /// The broker's own kill switch, as the broker reports it (`None` from the CLI).
    pub async fn broker_status(&self) -> Option<StepOutcome> {
        let broker = self.broker.as_ref()?;
        Some(step(broker.kill_switch_status().await))
    }

    /// The switch as journaled.
    ///
    /// # Errors
    /// The journal could not be read.
    pub async fn status(&self) -> Result<KillSwitch, JournalError> {
        self.journal.kill_switch().await
    }

    /// Applies `change` on behalf of `by` (an IP, or `cli`).
    ///
    /// # Errors
    /// The journal did not record the change: nothing else was done.
    pub async fn apply(
        &self,
        change: &KillSwitchChange,
        by: &str,
    ) -> Result<KillSwitchOutcome, JournalError> {
        let kill_switch = self
            .journal
            .set_kill_switch(change.on, by, change.note.as_deref(), self.clock.now())
            .await?;
        tracing::warn!(on = change.on, %by, flatten = change.flatten, broker = change.broker, "kill switch changed");
        let no_broker = || {
            Err(
                "not available here (the CLI reaches the journal only): use POST /kill-switch"
                    .to_owned(),
            )
        };
        let flatten = if change.on && change.flatten {
            Some(step(match &self.broker {
                Some(b) => b.exit_all().await,
                None => no_broker(),
            }))
        } else {
            None
        };
        let broker = if change.broker {
            Some(step(match &self.broker {
                Some(b) => b.set_kill_switch(change.on).await,
                None => no_broker(),
            }))
        } else {
            None
        };
        for (what, outcome) in [("flatten", &flatten), ("broker kill switch", &broker)] {
            if let Some(o) = outcome.as_ref().filter(|o| !o.ok) {
                tracing::error!(step = what, message = %o.message, "kill switch step failed");
            }
        }
        self.notifier
            .send(Event::KillSwitch {
                on: change.on,
                all: self.mode == KillSwitchMode::All,
                by: by.to_owned(),
                note: change.note.clone(),
                flatten: flatten.as_ref().map(describe),
                broker: broker.as_ref().map(describe),
            })
            .await;
        Ok(KillSwitchOutcome {
            kill_switch,
            mode: self.mode.as_str(),
            flatten,
            broker,
        })
    }
}

fn step(result: Result<String, String>) -> StepOutcome {
    match result {
        Ok(message) => StepOutcome { ok: true, message },
        Err(message) => StepOutcome { ok: false, message },
    }
}

fn describe(o: &StepOutcome) -> String {
    if o.ok {
        o.message.clone()
    } else {
        format!("FAILED: {}", o.message)
    }
}
