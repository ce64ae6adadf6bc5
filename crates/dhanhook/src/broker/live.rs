//! The live broker: places each leg at Dhan with its deterministic `correlationId`.
//!
//! Per leg: resolve the security id from the scrip master → build the order (fields that do
//! not apply are left out) → get a token from the keeper → `POST /v2/orders`. Dhan's answer
//! decides the leg's state:
//! - 200 → ACCEPTED (Dhan received it; the exchange's verdict comes later);
//! - a definite refusal (bad input, closed market, static IP, rate limit) → REJECTED with
//!   Dhan's message (the static-IP message says how to fix it);
//! - the token refused → one refresh (single-flight), then the order is looked up by its
//!   correlationId and re-sent once only if Dhan does not have it;
//! - timeout, reset or 5xx → outcome unknown: the leg stays SUBMITTING and is never re-sent
//!   blindly.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;

use super::{
    BookOrder, Broker, BrokerError, CancelOutcome, Holding, Lookup, NetPosition, OrderRequest,
    OrderState, Placement,
};
use crate::{
    alert::{AmoTime, LegOrder, OrderType},
    dhan::{
        DhanError, DhanErrorKind,
        types::{OrderAck, OrderBody, OrderRecord, num_field, parse_ist, str_field},
    },
    ratelimit::{RateLimiter, TurnReporter},
    store::{LegStatus, ResolvedLeg},
    token::{Token, TokenKeeper},
};

#[derive(Debug, Clone)]
pub struct DhanBroker {
    keeper: TokenKeeper,
    /// Shared by every order write (first sends, re-sends after a refusal or a 429).
    limiter: Arc<RateLimiter>,
}

/// Attempts at an order Dhan answers with 429 / DH-904 (Dhan has no Retry-After header).
const RATE_LIMIT_ATTEMPTS: u32 = 3;
/// First wait after a 429; doubled each time.
const RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(1);

impl DhanBroker {
    pub fn new(keeper: TokenKeeper, limiter: Arc<RateLimiter>) -> Self {
        Self { keeper, limiter }
    }

    /// The order body for a leg: only the fields that apply (Dhan refuses empty strings).
    fn order_body(
        &self,
        correlation_id: &str,
        leg: &LegOrder,
        resolved: &ResolvedLeg,
        amo: Option<AmoTime>,
    ) -> OrderBody {
        let needs_price = matches!(leg.order_type, OrderType::Limit | OrderType::StopLoss);
        let needs_trigger = matches!(
            leg.order_type,
            OrderType::StopLoss | OrderType::StopLossMarket
        );
        OrderBody {
            dhan_client_id: self.keeper.client().client_id().to_owned(),
            correlation_id: Some(correlation_id.to_owned()),
            transaction_type: leg.side.as_str(),
            exchange_segment: resolved.exchange_segment.clone(),
            product_type: leg.product.as_str(),
            order_type: leg.order_type.as_str(),
            validity: leg.validity.as_str(),
            security_id: resolved.security_id.clone(),
            quantity: resolved.units,
            price: leg.price.filter(|_| needs_price),
            trigger_price: leg.trigger_price.filter(|_| needs_trigger),
            after_market_order: amo.map(|_| true),
            amo_time: amo.map(AmoTime::as_str),
        }
    }

    async fn send(&self, token: &Token, body: &OrderBody) -> Result<OrderAck, DhanError> {
        let waited = std::time::Instant::now();
        // The turn is known as the order joins the limiter: told to the webhook handler waiting
        // for this alert (if any), which answers 202 at once when the turn is more than a
        // moment away rather than holding the connection until then.
        let turn = self.limiter.reserve();
        TurnReporter::report(body.correlation_id.as_deref().unwrap_or_default(), turn);
        turn.wait().await;
        // The time actually spent waiting (not the forecast).
        if let Some(m) = self.keeper.client().metrics() {
            m.rate_limit_wait(waited.elapsed());
        }
        self.keeper.client().place_order(&token.value, body).await
    }

    /// Sends an order; a 429 / DH-904 (not accepted) is retried with backoff, each time only
    /// after the order is confirmed absent by its correlationId.
    async fn send_with_retries(
        &self,
        token: &Token,
        body: &OrderBody,
    ) -> Result<Result<OrderAck, Placement>, DhanError> {
        let cid = body.correlation_id.as_deref().unwrap_or_default();
        let mut wait = RATE_LIMIT_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.send(token, body).await {
                Err(e) if e.kind == DhanErrorKind::RateLimit && attempt < RATE_LIMIT_ATTEMPTS => {
                    tracing::warn!(attempt, "Dhan rate-limited an order; backing off");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                    if let Some(existing) = self
                        .keeper
                        .client()
                        .order_by_correlation_id(&token.value, cid)
                        .await?
                    {
                        return Ok(Err(from_record(existing)));
                    }
                }
                other => return other.map(Ok),
            }
        }
    }
}

#[async_trait]
impl Broker for DhanBroker {
    fn name(&self) -> &'static str {
        "dhan"
    }

    async fn lookup(&self, correlation_id: &str) -> Result<Lookup, BrokerError> {
        let token = self
            .keeper
            .token()
            .await
            .map_err(|e| BrokerError::Unknown(format!("no token to look the order up: {e}")))?;
        let found = match self.find(&token, correlation_id).await {
            Err(e) if e.is_auth() => {
                let fresh = self
                    .keeper
                    .refresh_after_refusal(&token, &e.to_string())
                    .await
                    .map_err(|e| {
                        BrokerError::Unknown(format!("no token to look the order up: {e}"))
                    })?;
                self.find(&fresh, correlation_id).await
            }
            other => other,
        }
        .map_err(|e| BrokerError::Unknown(format!("lookup failed: {e}")))?;
        Ok(found.map_or(Lookup::Absent, |r| Lookup::Found(order_state(&r))))
    }

    async fn order_state(&self, order_id: &str) -> Result<Option<OrderState>, BrokerError> {
        // Polling never mints: a refused token fails the look (the tracker retries later),
        // and the token is renewed by its schedule or by the next order. A background read
        // must not spend Dhan's mint allowance or change the path an order takes.
        let token = self.read_token().await?;
        let found = self
            .keeper
            .client()
            .order(&token.value, order_id)
            .await
            .map_err(|e| BrokerError::Unknown(format!("order lookup failed: {e}")))?;
        // `GET /orders/{id}` answers `200 []` for an id it does not know.
        Ok(found
            .filter(|r| r.order_id == order_id)
            .map(|r| order_state(&r)))
    }

    async fn order_states(&self) -> Result<Vec<OrderState>, BrokerError> {
        // As `order_state`: never mints.
        let token = self.read_token().await?;
        let book = self
            .keeper
            .client()
            .order_book(&token.value)
            .await
            .map_err(|e| BrokerError::Unknown(format!("order book failed: {e}")))?;
        Ok(book.iter().map(order_state).collect())
    }

    async fn exit_all(&self) -> Result<String, String> {
        let token = self
            .keeper
            .token()
            .await
            .map_err(|e| format!("no usable Dhan access token: {e}"))?;
        let answer = self
            .keeper
            .client()
            .exit_all(&token.value)
            .await
            .map_err(|e| format!("Dhan's exit all (DELETE /v2/positions) failed: {e}"))?;
        Ok(str_field(&answer, "message")
            .or_else(|| str_field(&answer, "status"))
            .unwrap_or_else(|| "exit all accepted".to_owned()))
    }

    async fn kill_switch_status(&self) -> Result<String, String> {
        // A read: the token in hand, never a mint.
        let token = self.read_token().await.map_err(|e| e.to_string())?;
        self.keeper
            .client()
            .kill_switch_status(&token.value)
            .await
            .map_err(|e| format!("Dhan's kill switch status (GET /v2/killswitch) failed: {e}"))
    }

    async fn set_kill_switch(&self, on: bool) -> Result<String, String> {
        let token = self
            .keeper
            .token()
            .await
            .map_err(|e| format!("no usable Dhan access token: {e}"))?;
        let answer = self
            .keeper
            .client()
            .set_kill_switch(&token.value, on)
            .await
            .map_err(|e| format!("Dhan's kill switch (POST /v2/killswitch) failed: {e}"))?;
        Ok(str_field(&answer, "killSwitchStatus")
            .unwrap_or_else(|| "kill switch changed at Dhan".to_owned()))
    }

    async fn positions(&self) -> Result<Vec<NetPosition>, BrokerError> {
        let token = self.alert_token("read positions").await?;
        let rows = self
            .keeper
            .client()
            .positions(&token.value)
            .await
            .map_err(|e| BrokerError::Unknown(format!("positions could not be read: {e}")))?;
        rows.iter().map(net_position).collect()
    }

    async fn holdings(&self) -> Result<Vec<Holding>, BrokerError> {
        let token = self.alert_token("read holdings").await?;
        // The client reads Dhan's "no holdings" (HTTP 500 DH-1111) as an empty list.
        let rows = self
            .keeper
            .client()
            .holdings(&token.value)
            .await
            .map_err(|e| BrokerError::Unknown(format!("holdings could not be read: {e}")))?;
        rows.iter()
            .map(|r| {
                let unreadable =
                    || BrokerError::Unknown(format!("a holdings row could not be read: {r}"));
                Ok(Holding {
                    security_id: str_field(r, "securityId").ok_or_else(unreadable)?,
                    available_qty: num_field(r, "availableQty")
                        .map(|q| q.round() as i64)
                        .ok_or_else(unreadable)?,
                })
            })
            .collect()
    }

    async fn book(&self) -> Result<Vec<BookOrder>, BrokerError> {
        let token = self.alert_token("read the order book").await?;
        let book = self
            .keeper
            .client()
            .order_book(&token.value)
            .await
            .map_err(|e| BrokerError::Unknown(format!("the order book could not be read: {e}")))?;
        Ok(book
            .iter()
            .filter_map(|r| {
                let state = order_state(r);
                Some(BookOrder {
                    correlation_id: r.correlation_id.clone()?,
                    order_id: r.order_id.clone(),
                    status: state.status,
                    quantity: r.quantity.map_or(0, |q| q.round() as i64),
                    filled_qty: state.filled_qty.unwrap_or(0),
                })
            })
            .collect())
    }

    async fn cancel(&self, order_id: &str) -> Result<CancelOutcome, BrokerError> {
        let token = self.alert_token("cancel the order").await?;
        match self
            .keeper
            .client()
            .cancel_order(&token.value, order_id)
            .await
        {
            Ok(_) => Ok(CancelOutcome::Cancelled),
            Err(e) => match e.kind {
                // The request may have reached Dhan: the order tracker will see what it did.
                DhanErrorKind::Transient | DhanErrorKind::Unknown => {
                    Err(BrokerError::Unknown(format!("cancel outcome unknown: {e}")))
                }
                _ => Ok(CancelOutcome::Refused(format!("refused by Dhan: {e}"))),
            },
        }
    }

    async fn place(&self, order: OrderRequest<'_>) -> Result<Placement, BrokerError> {
        let body = self.order_body(order.correlation_id, order.leg, order.resolved, order.amo);
        let token = match self.keeper.token().await {
            Ok(t) => t,
            Err(e) => {
                return Ok(rejected(
                    None,
                    format!("not sent: no usable Dhan access token: {e}"),
                ));
            }
        };
        match self.send_with_retries(&token, &body).await {
            Ok(Ok(ack)) => Ok(accepted(ack)),
            Ok(Err(found)) => Ok(found),
            Err(e) if e.is_auth() => self.after_auth_refusal(&token, &e, &body).await,
            Err(e) => outcome_of_error(e),
        }
    }
}

impl DhanBroker {
    /// A token for a call an alert needs now (positions, holdings, a cancel): may mint, as
    /// an order would.
    async fn alert_token(&self, what: &str) -> Result<Token, BrokerError> {
        self.keeper
            .token()
            .await
            .map_err(|e| BrokerError::Unknown(format!("no usable Dhan token to {what}: {e}")))
    }
}

/// One row of `GET /v2/positions`; a row that cannot be read fails the whole read (it might
/// be the position an alert is about).
fn net_position(r: &serde_json::Value) -> Result<NetPosition, BrokerError> {
    let unreadable = || BrokerError::Unknown(format!("a position row could not be read: {r}"));
    Ok(NetPosition {
        security_id: str_field(r, "securityId").ok_or_else(unreadable)?,
        exchange_segment: str_field(r, "exchangeSegment").ok_or_else(unreadable)?,
        product: str_field(r, "productType").ok_or_else(unreadable)?,
        net_qty: num_field(r, "netQty")
            .map(|q| q.round() as i64)
            .ok_or_else(unreadable)?,
    })
}

impl DhanBroker {
    /// The token in hand for a background read (the order tracker's lookups): never a mint.
    async fn read_token(&self) -> Result<Token, BrokerError> {
        self.keeper.usable().ok_or_else(|| {
            BrokerError::Unknown("no usable Dhan token in hand to look the order up".to_owned())
        })
    }

    /// Looks an order up by correlationId, then in the day's order book (the lookup answers
    /// 404 for an order still in TRANSIT).
    async fn find(&self, token: &Token, cid: &str) -> Result<Option<OrderRecord>, DhanError> {
        if let Some(found) = self
            .keeper
            .client()
            .order_by_correlation_id(&token.value, cid)
            .await?
        {
            return Ok(Some(found));
        }
        let book = self.keeper.client().order_book(&token.value).await?;
        Ok(book
            .into_iter()
            .find(|o| o.correlation_id.as_deref() == Some(cid)))
    }

    /// Dhan refused the token: get a new one, make sure the order is not already there, and
    /// send it once more.
    async fn after_auth_refusal(
        &self,
        refused: &Token,
        why: &DhanError,
        body: &OrderBody,
    ) -> Result<Placement, BrokerError> {
        let token = match self
            .keeper
            .refresh_after_refusal(refused, &why.to_string())
            .await
        {
            Ok(t) => t,
            Err(e) => {
                return Ok(rejected(
                    None,
                    format!(
                        "not placed: Dhan refused the access token ({why}) and no new one could be had: {e}"
                    ),
                ));
            }
        };
        let cid = body.correlation_id.as_deref().unwrap_or_default();
        match self
            .keeper
            .client()
            .order_by_correlation_id(&token.value, cid)
            .await
        {
            Ok(Some(existing)) => return Ok(from_record(existing)),
            Ok(None) => {}
            Err(e) => {
                return Err(BrokerError::Unknown(format!(
                    "the token was refused and the order could not be looked up afterwards: {e}"
                )));
            }
        }
        match self.send_with_retries(&token, body).await {
            Ok(Ok(ack)) => Ok(accepted(ack)),
            Ok(Err(found)) => Ok(found),
            Err(e) => outcome_of_error(e),
        }
    }
}

fn accepted(ack: OrderAck) -> Placement {
    if ack.order_status.eq_ignore_ascii_case("REJECTED") {
        return rejected(Some(ack.order_id), "rejected by Dhan".to_owned());
    }
    Placement::Accepted {
        message: format!(
            "received by Dhan ({})",
            if ack.order_status.is_empty() {
                "TRANSIT"
            } else {
                &ack.order_status
            }
        ),
        order_id: ack.order_id,
    }
}

fn rejected(order_id: Option<String>, message: String) -> Placement {
    Placement::Rejected { order_id, message }
}

/// An order found at Dhan by its correlationId.
fn from_record(r: OrderRecord) -> Placement {
    match r.order_status.to_ascii_uppercase().as_str() {
        "TRADED" => Placement::Filled {
            order_id: r.order_id,
            fill_price: r.average_traded_price.filter(|p| *p > 0.0),
            message: "executed at Dhan".to_owned(),
        },
        "REJECTED" | "CANCELLED" | "EXPIRED" => rejected(
            Some(r.order_id),
            format!(
                "{} at Dhan: {}",
                r.order_status.to_ascii_lowercase(),
                r.oms_error_description.unwrap_or_default()
            ),
        ),
        "PENDING" | "PART_TRADED" => Placement::Pending {
            order_id: r.order_id,
            message: format!("open at Dhan ({})", r.order_status),
        },
        _ => Placement::Accepted {
            order_id: r.order_id,
            message: format!("received by Dhan ({})", r.order_status),
        },
    }
}

/// Dhan's order object as the broker's view of the order (§3.5 of the API notes: times are
/// IST with the sentinel `0001-01-01 00:00:00`, `"NA"` means absent, and
/// `omsErrorDescription` is only a reason when the order was refused, cancelled or expired).
pub(crate) fn order_state(r: &OrderRecord) -> OrderState {
    let dhan_status = r.order_status.to_ascii_uppercase();
    let status = match dhan_status.as_str() {
        "PENDING" => LegStatus::Pending,
        "PART_TRADED" => LegStatus::PartTraded,
        "TRADED" => LegStatus::Filled,
        "REJECTED" => LegStatus::Rejected,
        "CANCELLED" => LegStatus::Cancelled,
        "EXPIRED" => LegStatus::Expired,
        // TRANSIT, or a status this version does not know: received, verdict to come.
        _ => LegStatus::Accepted,
    };
    let reason = status
        .is_final()
        .then(|| r.oms_error_description.clone())
        .flatten()
        .filter(|_| status != LegStatus::Filled);
    let filled_qty = r.filled_qty.map(|q| q.round() as i64);
    let average_price = r.average_traded_price.filter(|p| *p > 0.0);
    let message = match (&reason, average_price) {
        (Some(why), _) => format!("{} at Dhan: {why}", dhan_status.to_ascii_lowercase()),
        (None, Some(p)) => format!(
            "{dhan_status} at Dhan: {} filled at an average of {p}",
            filled_qty.unwrap_or_default()
        ),
        (None, None) => format!("{dhan_status} at Dhan"),
    };
    OrderState {
        order_id: r.order_id.clone(),
        status,
        filled_qty,
        average_price,
        exchange_order_id: str_field(&r.raw, "exchangeOrderId").filter(|id| id != "NA"),
        exchange_time: str_field(&r.raw, "exchangeTime")
            .and_then(|t| parse_ist(&t))
            .filter(|t| t.timestamp() > 0),
        reason,
        message,
    }
}

/// What a failed order write means for the leg.
fn outcome_of_error(e: DhanError) -> Result<Placement, BrokerError> {
    match e.kind {
        // The request may have reached Dhan: its fate must be looked up, never guessed.
        DhanErrorKind::Transient | DhanErrorKind::Unknown => {
            Err(BrokerError::Unknown(e.to_string()))
        }
        DhanErrorKind::Unreachable => Ok(rejected(None, format!("not sent: {e}"))),
        DhanErrorKind::RateLimit => Ok(rejected(
            None,
            format!("not placed: Dhan's rate limit ({e})"),
        )),
        DhanErrorKind::StaticIp => Ok(rejected(
            None,
            format!("{}: {e}", crate::domain::STATIC_IP_REFUSAL),
        )),
        DhanErrorKind::Auth | DhanErrorKind::Input | DhanErrorKind::Order => {
            Ok(rejected(None, format!("refused by Dhan: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn state(v: &serde_json::Value) -> OrderState {
        order_state(&OrderRecord::from_json(v).expect("an order object"))
    }

    #[test]
    fn a_traded_order_is_filled_with_its_average_price_and_no_reason() {
        let s = state(
            &json!({"orderId":"52","orderStatus":"TRADED","filledQty":75,
            "averageTradedPrice":101.5,"omsErrorDescription":"CONFIRMED",
            "exchangeOrderId":"1100000000000001","exchangeTime":"2026-12-01 10:00:05"}),
        );
        assert_eq!(s.status, LegStatus::Filled);
        assert_eq!((s.filled_qty, s.average_price), (Some(75), Some(101.5)));
        assert_eq!(s.reason, None, "CONFIRMED is not a reason");
        assert_eq!(s.exchange_order_id.as_deref(), Some("1100000000000001"));
        assert_eq!(
            s.exchange_time,
            Some(crate::dhan::types::parse_ist("2026-12-01 10:00:05").unwrap())
        );
    }

    #[test]
    fn transit_and_sentinels_are_accepted_with_nothing_known() {
        let s = state(
            &json!({"orderId":"53","orderStatus":"TRANSIT","filledQty":0,
            "averageTradedPrice":0,"omsErrorDescription":"CONFIRMED",
            "exchangeOrderId":"NA","exchangeTime":"0001-01-01 00:00:00"}),
        );
        assert_eq!(s.status, LegStatus::Accepted);
        assert_eq!(
            (s.average_price, s.exchange_order_id, s.exchange_time),
            (None, None, None)
        );
        assert_eq!(s.reason, None);
    }

    #[test]
    fn refusals_cancellations_and_expiries_carry_dhans_reason() {
        for (dhan, ours) in [
            ("REJECTED", LegStatus::Rejected),
            ("CANCELLED", LegStatus::Cancelled),
            ("EXPIRED", LegStatus::Expired),
        ] {
            let s = state(&json!({"orderId":"54","orderStatus":dhan,
                "omsErrorDescription":"RMS:54:Margin Exceeds"}));
            assert_eq!(s.status, ours);
            assert_eq!(s.reason.as_deref(), Some("RMS:54:Margin Exceeds"));
            assert!(s.message.contains("RMS:54:Margin Exceeds"), "{}", s.message);
        }
        let part = state(
            &json!({"orderId":"55","orderStatus":"PART_TRADED","filledQty":"25",
            "averageTradedPrice":"99.5","omsErrorDescription":"CONFIRMED"}),
        );
        assert_eq!(part.status, LegStatus::PartTraded);
        assert_eq!((part.filled_qty, part.reason), (Some(25), None));
    }
}
