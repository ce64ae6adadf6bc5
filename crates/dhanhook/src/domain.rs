//! Domain types: the closed sets of values an order is made of (side, order type, product,
//! validity, exchange, instrument kind, option kind, AMO time), what to do when a market is
//! closed, the trading mode, and what a notification is about and where it goes.
//!
//! They sit below every other module: the alert parser, the market router, the journal, the
//! broker and the settings all use them, and this module uses none of those. That keeps the
//! dependency graph free of cycles (see `docs/ARCHITECTURE.md`).

use std::fmt;

use serde::Serialize;

/// Declares a closed set of values with their canonical spelling, the spellings accepted from
/// alerts, and the list shown in error messages. One place per enum, so parser, journal and
/// display cannot drift apart.
macro_rules! closed_set {
    ($(#[$meta:meta])* $name:ident, accepted: $accepted:literal, {
        $($variant:ident => $canonical:literal $(| $alias:literal)*),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum $name {
            $(#[serde(rename = $canonical)] $variant),+
        }

        impl $name {
            /// The spellings accepted in alerts, for error messages.
            pub const ACCEPTED: &'static str = $accepted;

            /// The canonical spelling (what the journal stores and responses show).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $canonical),+
                }
            }

            /// Parses an upper-cased spelling, canonical or alias.
            pub fn parse(s: &str) -> Option<Self> {
                match s {
                    $($canonical $(| $alias)* => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

closed_set!(
    /// Buy or sell. Canonical spellings are Dhan's `transactionType` values.
    Side, accepted: "BUY or SELL (B or S)", {
        Buy => "BUY" | "B",
        Sell => "SELL" | "S",
    }
);

closed_set!(
    /// Order type; canonical spellings are Dhan's `orderType` values.
    OrderType, accepted: "MARKET, LIMIT, SL or SL-M (MKT, LMT)", {
        Market => "MARKET" | "MKT",
        Limit => "LIMIT" | "LMT",
        StopLoss => "STOP_LOSS" | "SL",
        StopLossMarket => "STOP_LOSS_MARKET" | "SL-M" | "SLM" | "SL_M",
    }
);

closed_set!(
    /// Product; canonical spellings are Dhan's `productType` values.
    Product, accepted: "INTRADAY, DELIVERY, MARGIN or MTF (I, C, M, CNC)", {
        Intraday => "INTRADAY" | "I" | "MIS" | "INTRA",
        Delivery => "CNC" | "C" | "DELIVERY",
        Margin => "MARGIN" | "M" | "NRML",
        Mtf => "MTF",
    }
);

closed_set!(
    /// Order validity; Dhan's `validity` values.
    Validity, accepted: "DAY or IOC", {
        Day => "DAY",
        Ioc => "IOC",
    }
);

closed_set!(
    /// When Dhan releases an after-market order (Dhan's `amoTime`).
    AmoTime, accepted: "PRE_OPEN, OPEN, OPEN_30 or OPEN_60", {
        PreOpen => "PRE_OPEN",
        Open => "OPEN",
        Open30 => "OPEN_30",
        Open60 => "OPEN_60",
    }
);

closed_set!(
    /// The exchange as TradingView names it. Dhan segment names (`NSE_EQ`, `NSE_FNO`...) and
    /// TradingView's delayed-feed suffixes (`NSE_DLY`, `NSE_DL`) are accepted too.
    Exchange, accepted: "NSE, BSE, NFO, BFO or MCX", {
        Nse => "NSE" | "NSE_EQ" | "NSE_DLY" | "NSE_DL",
        Bse => "BSE" | "BSE_EQ" | "BSE_DLY" | "BSE_DL",
        Nfo => "NFO" | "NSE_FNO" | "NFO_DLY" | "NFO_DL",
        Bfo => "BFO" | "BSE_FNO" | "BFO_DLY" | "BFO_DL",
        Mcx => "MCX" | "MCX_COMM" | "MCX_DLY" | "MCX_DL",
    }
);

closed_set!(
    /// The kind of instrument (Dhan format `instrument`).
    Instrument, accepted: "EQ, FUT, OPT, CE or PE (FUTIDX, FUTSTK, FUTCOM, OPTIDX, OPTSTK, OPTFUT)", {
        Equity => "EQ" | "EQUITY",
        Future => "FUT" | "FUTIDX" | "FUTSTK" | "FUTCOM",
        Option => "OPT" | "OPTIDX" | "OPTSTK" | "OPTFUT",
    }
);

closed_set!(
    /// Call or put.
    OptionKind, accepted: "CE or PE (CALL, PUT)", {
        Call => "CE" | "CALL" | "C",
        Put => "PE" | "PUT" | "P",
    }
);

/// What to do with an alert whose market is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenClosed {
    /// Send an after-market order when Dhan takes one; otherwise queue.
    Amo,
    /// Hold the alert and place it when every venue is open.
    Queue,
    /// Refuse the alert.
    Reject,
}

impl WhenClosed {
    /// `amo`, `queue` or `reject`, in any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "amo" => Some(WhenClosed::Amo),
            "queue" => Some(WhenClosed::Queue),
            "reject" => Some(WhenClosed::Reject),
            _ => None,
        }
    }

    /// The canonical spelling (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            WhenClosed::Amo => "amo",
            WhenClosed::Queue => "queue",
            WhenClosed::Reject => "reject",
        }
    }
}

impl std::fmt::Display for WhenClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Paper trading (nothing reaches Dhan) or live trading (`ENABLE_DHAN=true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Paper,
    Live,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Paper => "paper",
            Mode::Live => "live",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Mode {
    /// `paper` or `live` (as stored in the journal).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "paper" => Some(Mode::Paper),
            "live" => Some(Mode::Live),
            _ => None,
        }
    }
}

/// What happens to the remaining legs of an alert when one is refused (`on_leg_reject` in the
/// alert, `ON_LEG_REJECT` in the environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnLegReject {
    /// Send every leg whatever became of the others (the upstream's behaviour).
    #[default]
    Continue,
    /// Send a leg only while every earlier leg of its alert is at the broker (accepted, open
    /// or filled): for hedges, where one leg alone is a naked position.
    Stop,
}

impl OnLegReject {
    pub const ACCEPTED: &'static str = "continue or stop";

    pub fn as_str(self) -> &'static str {
        match self {
            OnLegReject::Continue => "continue",
            OnLegReject::Stop => "stop",
        }
    }

    /// `continue` or `stop`, in any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "continue" => Some(OnLegReject::Continue),
            "stop" => Some(OnLegReject::Stop),
            _ => None,
        }
    }
}

/// How derivative quantities in alerts are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QuantityUnit {
    /// Units (shares, barrels…), as Dhan's API and the upstream service take them: must be a
    /// whole number of lots, so a wrong guess is refused, never multiplied.
    #[default]
    Units,
    /// Contracts (lots), as TradingView strategies count them: units = lots × lot size.
    Lots,
}

/// The kinds of events a trader is told about (see `notify`), as `NOTIFY_EVENTS` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A leg the broker filled.
    Filled,
    /// A leg the broker (or dhanhook, before sending) refused.
    Rejected,
    /// A leg whose fate a person must check at the broker.
    NeedsAttention,
    /// Dhan refused an order because this server's address is not the account's static IP:
    /// every order will be refused until a person fixes it.
    StaticIp,
    /// A queued alert that was too old when its market opened.
    QueueExpired,
    /// No usable Dhan token and none can be had without a person; and its recovery.
    Token,
    /// After the close: the day's alerts, fills and rejections.
    DailySummary,
    /// `dhanhook notify-test`.
    Test,
    /// The kill switch was turned on or off (and what flattening did).
    KillSwitch,
}

impl EventKind {
    pub const ALL: [EventKind; 9] = [
        EventKind::Filled,
        EventKind::Rejected,
        EventKind::NeedsAttention,
        EventKind::StaticIp,
        EventKind::QueueExpired,
        EventKind::Token,
        EventKind::DailySummary,
        EventKind::Test,
        EventKind::KillSwitch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Filled => "filled",
            EventKind::Rejected => "rejected",
            EventKind::NeedsAttention => "needs_attention",
            EventKind::StaticIp => "static_ip",
            EventKind::QueueExpired => "queue_expired",
            EventKind::Token => "token",
            EventKind::DailySummary => "daily_summary",
            EventKind::Test => "test",
            EventKind::KillSwitch => "kill_switch",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// How a leg's message starts when Dhan refused it for the static IP (written by the broker,
/// read by the notifier, which tells it as its own event).
pub const STATIC_IP_REFUSAL: &str = "refused by Dhan (static IP)";

/// Where a notification goes (stored with each outbox row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Telegram,
    Webhook,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Telegram => "telegram",
            Channel::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "telegram" => Some(Channel::Telegram),
            "webhook" => Some(Channel::Webhook),
            _ => None,
        }
    }
}
