//! The events a trader is told about, and their text. Each message is a title and a body of
//! plain text (the channels escape it), built only from journaled facts.

pub use crate::domain::EventKind;
use crate::{
    domain::{Mode, Side},
    store::LegStatus,
};

/// One leg, as a message names it.
#[derive(Debug, Clone, PartialEq)]
pub struct LegFacts {
    pub alert_id: String,
    pub leg: u32,
    /// What the leg trades (`NIFTY-Dec2026-FUT`, `RELIANCE`).
    pub symbol: String,
    pub side: Side,
    /// Units.
    pub quantity: i64,
}

/// Something the trader is told.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Filled {
        leg: LegFacts,
        average_price: Option<f64>,
        order_id: Option<String>,
    },
    /// Refused, cancelled or expired: not (fully) filled, and final.
    Rejected {
        leg: LegFacts,
        /// REJECTED, CANCELLED or EXPIRED.
        ended: LegStatus,
        reason: String,
    },
    NeedsAttention {
        leg: LegFacts,
        note: String,
    },
    /// Refused by Dhan because this server's address is not the account's static IP.
    StaticIpRefused {
        leg: LegFacts,
        reason: String,
    },
    QueueExpired {
        alert_id: String,
        detail: String,
    },
    /// No usable Dhan token, and none without a person (`state`: refused, expired, none).
    TokenTrouble {
        state: String,
        problem: String,
    },
    /// A usable token is back.
    TokenRecovered {
        hours_left: f64,
    },
    /// The day after the close.
    DailySummary {
        /// `2026-12-01`.
        date: String,
        alerts: i64,
        filled: i64,
        rejected: i64,
        /// Still open at the broker (accepted, pending).
        open: i64,
        /// Outcome unknown or left for a person.
        unsettled: i64,
        /// Waiting in the queue.
        queued: i64,
        /// Cancelled or expired at the exchange.
        ended: i64,
        /// Refused by dhanhook's own controls (risk rails, kill switch, SELL checks).
        blocked: i64,
    },
    /// An alert refused before anything was journaled or sent (its position could not be
    /// read): nothing exists to point at, so the event says what was asked.
    NotPlaced {
        /// What the alert asked, e.g. `target RELIANCE`.
        what: String,
        why: String,
    },
    Test,
    /// The kill switch was turned on or off, with what flattening and the broker's own switch
    /// did (when asked).
    KillSwitch {
        on: bool,
        /// `KILL_SWITCH_MODE=all`: every order is refused, exits too.
        all: bool,
        by: String,
        note: Option<String>,
        flatten: Option<String>,
        broker: Option<String>,
    },
}

impl Event {
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Filled { .. } => EventKind::Filled,
            Event::Rejected { .. } | Event::NotPlaced { .. } => EventKind::Rejected,
            Event::NeedsAttention { .. } => EventKind::NeedsAttention,
            Event::StaticIpRefused { .. } => EventKind::StaticIp,
            Event::QueueExpired { .. } => EventKind::QueueExpired,
            Event::TokenTrouble { .. } | Event::TokenRecovered { .. } => EventKind::Token,
            Event::DailySummary { .. } => EventKind::DailySummary,
            Event::Test => EventKind::Test,
            Event::KillSwitch { .. } => EventKind::KillSwitch,
        }
    }

    /// The alert this event belongs to: its messages are delivered in order.
    pub fn alert_id(&self) -> Option<&str> {
        match self {
            Event::Filled { leg, .. }
            | Event::Rejected { leg, .. }
            | Event::NeedsAttention { leg, .. }
            | Event::StaticIpRefused { leg, .. } => Some(&leg.alert_id),
            Event::QueueExpired { alert_id, .. } => Some(alert_id),
            Event::TokenTrouble { .. }
            | Event::TokenRecovered { .. }
            | Event::DailySummary { .. }
            | Event::NotPlaced { .. }
            | Event::Test
            | Event::KillSwitch { .. } => None,
        }
    }

    /// Title and body, plain text; `mode` marks paper trades as such.
    pub fn text(&self, mode: Mode) -> (String, String) {
        let paper = |_: &LegFacts| match mode {
            Mode::Paper => " (paper)",
            Mode::Live => "",
        };
        let side = |leg: &LegFacts| match leg.side {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        };
        match self {
            Event::Filled {
                leg,
                average_price,
                order_id,
            } => (
                format!(
                    "✅ Filled{}: {} {} {}",
                    paper(leg),
                    side(leg),
                    leg.quantity,
                    leg.symbol
                ),
                format!(
                    "{}Alert {} leg {}{}",
                    average_price
                        .map(|p| format!("Average price {p:.2}\n"))
                        .unwrap_or_default(),
                    leg.alert_id,
                    leg.leg,
                    order_id
                        .as_deref()
                        .map(|o| format!(", order {o}"))
                        .unwrap_or_default()
                ),
            ),
            Event::Rejected { leg, ended, reason } => (
                format!(
                    "❌ {}{}: {} {} {}",
                    match ended {
                        LegStatus::Cancelled => "Cancelled",
                        LegStatus::Expired => "Expired",
                        LegStatus::Blocked => "Blocked by dhanhook",
                        _ => "Rejected",
                    },
                    paper(leg),
                    side(leg),
                    leg.quantity,
                    leg.symbol
                ),
                format!("{reason}\nAlert {} leg {}", leg.alert_id, leg.leg),
            ),
            Event::NeedsAttention { leg, note } => (
                format!(
                    "⚠️ Check at Dhan{}: {} {} {}",
                    paper(leg),
                    side(leg),
                    leg.quantity,
                    leg.symbol
                ),
                format!(
                    "dhanhook cannot tell whether this order exists: {note}\nAlert {} leg {}",
                    leg.alert_id, leg.leg
                ),
            ),
            Event::StaticIpRefused { leg, reason } => (
                format!(
                    "🛑 Refused by Dhan, static IP{}: {} {} {}",
                    paper(leg),
                    side(leg),
                    leg.quantity,
                    leg.symbol
                ),
                format!(
                    "{reason}\nEvery order is refused until this server's address is the static IP set \
                     for your account at Dhan.\nAlert {} leg {}",
                    leg.alert_id, leg.leg
                ),
            ),
            Event::QueueExpired { alert_id, detail } => (
                "⌛ Queued alert expired, not placed".to_owned(),
                format!("{detail}\nAlert {alert_id}"),
            ),
            Event::TokenTrouble { state, problem } => (
                format!("🔴 No usable Dhan token ({state})"),
                format!("{problem}\nOrders are refused until a token is back."),
            ),
            Event::TokenRecovered { hours_left } => (
                "🟢 Dhan token usable again".to_owned(),
                format!("Valid for {hours_left:.1} more hours. Orders go through again."),
            ),
            Event::DailySummary {
                date,
                alerts,
                filled,
                rejected,
                open,
                unsettled,
                queued,
                ended,
                blocked,
            } => (
                format!("📊 {date}{}: {alerts} alerts", paper_day(mode)),
                format!(
                    "Filled {filled} · Rejected {rejected} · Open at the broker {open} · Queued {queued}{}{}{}",
                    if *ended > 0 {
                        format!(" · Cancelled or expired {ended}")
                    } else {
                        String::new()
                    },
                    if *blocked > 0 {
                        format!(" · Blocked by dhanhook {blocked}")
                    } else {
                        String::new()
                    },
                    if *unsettled > 0 {
                        format!(
                            "\n⚠️ {unsettled} order(s) with an unknown outcome: check Dhan's order book"
                        )
                    } else {
                        String::new()
                    }
                ),
            ),
            Event::NotPlaced { what, why } => (
                format!("❌ Not placed{}: {what}", paper_day(mode)),
                format!(
                    "{why}\nNothing was sent. TradingView's resend, or the next alert, is safe."
                ),
            ),
            Event::Test => (
                "dhanhook test message".to_owned(),
                "Notifications reach this chat. Nothing was traded.".to_owned(),
            ),
            Event::KillSwitch {
                on,
                all,
                by,
                note,
                flatten,
                broker,
            } => {
                let mut body = if *on && *all {
                    format!("Turned on by {by}. Every order is refused, exits too.")
                } else if *on {
                    format!("Turned on by {by}. New entries are refused; exits still pass.")
                } else {
                    format!("Turned off by {by}. Orders go through again.")
                };
                if let Some(n) = note {
                    body.push_str(&format!("\nNote: {n}"));
                }
                if let Some(f) = flatten {
                    body.push_str(&format!("\nFlatten: {f}"));
                }
                if let Some(b) = broker {
                    body.push_str(&format!("\nDhan's kill switch: {b}"));
                }
                (
                    format!(
                        "{} Kill switch {}{}",
                        if *on { "🛑" } else { "▶️" },
                        if *on { "ON" } else { "OFF" },
                        paper_day(mode)
                    ),
                    body,
                )
            }
        }
    }
}

fn paper_day(mode: Mode) -> &'static str {
    match mode {
        Mode::Paper => " (paper)",
        Mode::Live => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg() -> LegFacts {
        LegFacts {
            alert_id: "a1".to_owned(),
            leg: 1,
            symbol: "RELIANCE".to_owned(),
            side: Side::Buy,
            quantity: 10,
        }
    }

    #[test]
    fn a_blocked_leg_and_the_kill_switch_say_what_happened_and_what_failed() {
        let (title, body) = Event::Rejected {
            leg: leg(),
            ended: LegStatus::Blocked,
            reason: "blocked by MAX_QTY_PER_LEG: 11 units, limit 10".to_owned(),
        }
        .text(Mode::Live);
        assert_eq!(title, "❌ Blocked by dhanhook: BUY 10 RELIANCE");
        assert!(body.starts_with("blocked by MAX_QTY_PER_LEG"), "{body}");

        let on = Event::KillSwitch {
            on: true,
            all: false,
            by: "203.0.113.9".to_owned(),
            note: Some("drawdown".to_owned()),
            flatten: Some("FAILED: no usable Dhan access token".to_owned()),
            broker: None,
        };
        let (title, body) = on.text(Mode::Paper);
        assert_eq!(title, "🛑 Kill switch ON (paper)");
        assert_eq!(
            body,
            "Turned on by 203.0.113.9. New entries are refused; exits still pass.\nNote: drawdown\nFlatten: FAILED: no usable Dhan access token"
        );
        assert_eq!(on.kind(), EventKind::KillSwitch);
        assert_eq!(on.alert_id(), None);
        let (title, body) = Event::KillSwitch {
            on: false,
            all: true,
            by: "cli".to_owned(),
            note: None,
            flatten: None,
            broker: None,
        }
        .text(Mode::Live);
        assert_eq!(title, "▶️ Kill switch OFF");
        assert_eq!(body, "Turned off by cli. Orders go through again.");
    }

    #[test]
    fn only_a_fill_says_filled() {
        let filled = Event::Filled {
            leg: leg(),
            average_price: Some(1234.5),
            order_id: Some("112111182198".to_owned()),
        };
        let (title, body) = filled.text(Mode::Live);
        assert_eq!(title, "✅ Filled: BUY 10 RELIANCE");
        assert!(body.contains("Average price 1234.50"), "{body}");
        for other in [
            Event::Rejected {
                leg: leg(),
                ended: LegStatus::Rejected,
                reason: "RMS:Margin Exceeds".to_owned(),
            },
            Event::NeedsAttention {
                leg: leg(),
                note: "not found".to_owned(),
            },
        ] {
            let (title, body) = other.text(Mode::Live);
            assert!(
                !title.to_lowercase().contains("fill") && !title.contains('✅'),
                "{title}"
            );
            assert!(!body.to_lowercase().contains("filled"), "{body}");
        }
    }

    #[test]
    fn a_rejection_carries_the_brokers_reason_and_paper_says_so() {
        let (title, body) = Event::Rejected {
            leg: leg(),
            ended: LegStatus::Rejected,
            reason: "RMS:Margin Exceeds,Cash Available:0.00".to_owned(),
        }
        .text(Mode::Paper);
        assert_eq!(title, "❌ Rejected (paper): BUY 10 RELIANCE");
        assert!(
            body.starts_with("RMS:Margin Exceeds,Cash Available:0.00"),
            "{body}"
        );
    }

    #[test]
    fn kinds_round_trip_their_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("everything"), None);
    }

    #[test]
    fn the_daily_summary_counts_what_dhanhook_blocked_only_when_there_was_any() {
        let day = |blocked| Event::DailySummary {
            date: "2026-12-01".to_owned(),
            alerts: 4,
            filled: 1,
            rejected: 1,
            open: 0,
            unsettled: 0,
            queued: 0,
            ended: 0,
            blocked,
        };
        let (_, body) = day(2).text(Mode::Live);
        assert_eq!(
            body,
            "Filled 1 · Rejected 1 · Open at the broker 0 · Queued 0 · Blocked by dhanhook 2"
        );
        let (_, body) = day(0).text(Mode::Live);
        assert!(!body.contains("Blocked"), "{body}");
    }
}
