//! Notifications: what the trader is told (Telegram, or a JSON webhook that Discord and Slack
//! accept), and the promise behind it.
//!
//! - **Truthful.** A message says "filled" only for a leg the broker filled, never for one it
//!   merely accepted; a rejection carries the broker's reason in its words.
//! - **Durable.** An event is written to the journal's outbox ([`crate::store::OutboxJournal`])
//!   where it happens; the notifier worker ([`crate::workers::notifier`]) delivers it at least
//!   once, with retries and backoff, in order per alert and channel, across restarts, and with
//!   several instances each message is sent by one of them. An order never waits for a
//!   notification to be *delivered*: only the outbox row is written on its path.
//! - **Safe.** Messages are built from journaled facts (symbols, sides, quantities, the
//!   broker's text), never from secrets; text is escaped for Telegram's HTML parse mode.
//!
//! [`events`] says which events exist and renders their text; [`channels`] sends one message.

pub mod channels;
pub mod events;

use std::sync::Arc;

use tokio::sync::Notify;

pub use channels::{Channel, ChannelError, Channels};
pub use events::{Event, EventKind, LegFacts};

use crate::{
    clock::Clock,
    domain::Mode,
    store::{LegStatus, NewNotification, OrderRow, OutboxJournal},
};

/// Puts events in the outbox. Cheap to clone; a no-op when no channel is configured or the
/// event's kind is switched off (`NOTIFY_EVENTS`).
#[derive(Debug, Clone)]
pub struct Notifier {
    outbox: Option<Arc<dyn OutboxJournal>>,
    channels: Vec<Channel>,
    enabled: Vec<EventKind>,
    mode: Mode,
    clock: Arc<dyn Clock>,
    /// Wakes the delivery worker.
    wake: Arc<Notify>,
}

impl Notifier {
    pub fn new(
        outbox: Arc<dyn OutboxJournal>,
        channels: Vec<Channel>,
        enabled: Vec<EventKind>,
        mode: Mode,
        clock: Arc<dyn Clock>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            outbox: Some(outbox),
            channels,
            enabled,
            mode,
            clock,
            wake,
        }
    }

    /// A notifier that tells nobody (tests, and services with no channel configured).
    pub fn off(clock: Arc<dyn Clock>) -> Self {
        Self {
            outbox: None,
            channels: Vec::new(),
            enabled: Vec::new(),
            mode: Mode::Paper,
            clock,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Records `event` for delivery on every configured channel. Never fails the caller: a
    /// journal error is logged (the order it reports on is journaled either way).
    pub async fn send(&self, event: Event) {
        let Some(outbox) = &self.outbox else { return };
        if self.channels.is_empty() || !self.enabled.contains(&event.kind()) {
            return;
        }
        let (title, body) = event.text(self.mode);
        let rows: Vec<NewNotification> = self
            .channels
            .iter()
            .map(|channel| NewNotification {
                channel: *channel,
                alert_id: event.alert_id().map(str::to_owned),
                kind: event.kind(),
                title: title.clone(),
                body: body.clone(),
            })
            .collect();
        match outbox.enqueue(&rows, self.clock.now()).await {
            Ok(()) => self.wake.notify_one(),
            Err(error) => {
                tracing::error!(kind = event.kind().as_str(), %error, "could not record a notification; it will not be sent");
            }
        }
    }

    /// Tells what a leg's new state means for the trader, if anything: filled, rejected, or
    /// left for a person to check. Other states (accepted, pending…) are not news.
    pub async fn leg_changed(&self, row: &OrderRow) {
        let leg = LegFacts {
            alert_id: row.alert_id.clone(),
            leg: row.leg,
            symbol: row
                .trading_symbol
                .clone()
                .unwrap_or_else(|| row.symbol.clone()),
            side: row.side,
            quantity: row.units.unwrap_or(row.quantity),
        };
        let event = match row.status {
            LegStatus::Filled => Event::Filled {
                leg,
                average_price: row.fill_price,
                order_id: row.order_id.clone(),
            },
            LegStatus::Rejected
                if row
                    .message
                    .as_deref()
                    .is_some_and(|m| m.starts_with(crate::domain::STATIC_IP_REFUSAL)) =>
            {
                Event::StaticIpRefused {
                    leg,
                    reason: row.message.clone().unwrap_or_default(),
                }
            }
            LegStatus::Rejected
            | LegStatus::Cancelled
            | LegStatus::Expired
            | LegStatus::Blocked => Event::Rejected {
                leg,
                ended: row.status,
                reason: row
                    .detail
                    .reason
                    .clone()
                    .or_else(|| row.message.clone())
                    .unwrap_or_else(|| "no reason given".to_owned()),
            },
            LegStatus::NeedsAttention => Event::NeedsAttention {
                leg,
                note: row.message.clone().unwrap_or_default(),
            },
            _ => return,
        };
        self.send(event).await;
    }
}
