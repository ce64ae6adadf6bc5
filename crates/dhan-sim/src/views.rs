//! The JSON views of the book as the REST host shows them: order rows (dhan-api.md §3.5,
//! with its sentinels and "CONFIRMED"), trade rows (§3.6) and position rows (§4).

use serde_json::{Value, json};

use crate::book::{Book, OrderRec};
use crate::clock::{NO_TIME, book_time};
use crate::orders::trading_symbol;

impl Book {
    pub(crate) fn order_json(&self, o: &OrderRec, client_id: &str) -> Value {
        let s = &o.spec;
        json!({
            "dhanClientId": client_id,
            "orderId": o.sim.order_id,
            "exchangeOrderId": o.sim.exchange_order_id.clone().unwrap_or_else(|| "NA".into()),
            "correlationId": o.correlation,
            "orderStatus": o.sim.status,
            "transactionType": s.transaction_type,
            "exchangeSegment": s.exchange_segment,
            "productType": s.product_type,
            "orderType": s.order_type,
            "validity": s.validity,
            "tradingSymbol": trading_symbol(&s.security_id),
            "securityId": s.security_id,
            "quantity": s.quantity,
            "disclosedQuantity": s.disclosed_quantity,
            "price": s.price,
            "triggerPrice": s.trigger_price,
            "afterMarketOrder": s.after_market_order,
            "boProfitValue": s.bo_profit_value,
            "boStopLossValue": s.bo_stop_loss_value,
            "legName": "NA",
            "createTime": book_time(o.sim.created_at),
            "updateTime": book_time(o.sim.updated_at),
            "exchangeTime": o.exchange_at.map(book_time).unwrap_or_else(|| NO_TIME.into()),
            "drvExpiryDate": NO_TIME,
            "drvOptionType": "NA",
            "drvStrikePrice": 0.0,
            "omsErrorCode": o.oms_error_code.clone().unwrap_or_else(|| "0".into()),
            "omsErrorDescription": o.sim.oms_error_description.clone().unwrap_or_else(|| "CONFIRMED".into()),
            "algoId": "0",
            "remainingQuantity": s.quantity.saturating_sub(o.sim.filled_qty),
            "averageTradedPrice": o.sim.average_traded_price,
            "filledQty": o.sim.filled_qty,
        })
    }

    pub(crate) fn trades_json(&self, client_id: &str, order_id: Option<&str>) -> Vec<Value> {
        self.trades
            .iter()
            .filter(|t| order_id.is_none_or(|id| t.order_id == id))
            .map(|t| {
                json!({
                    "dhanClientId": client_id,
                    "orderId": t.order_id,
                    "exchangeOrderId": t.exchange_order_id,
                    "exchangeTradeId": t.trade_id,
                    "transactionType": t.spec.transaction_type,
                    "exchangeSegment": t.spec.exchange_segment,
                    "productType": t.spec.product_type,
                    "orderType": t.spec.order_type,
                    "tradingSymbol": trading_symbol(&t.spec.security_id),
                    "securityId": t.spec.security_id,
                    "tradedQuantity": t.quantity,
                    "tradedPrice": t.price,
                    "createTime": book_time(t.at),
                    "updateTime": book_time(t.at),
                    "exchangeTime": book_time(t.at),
                    "drvExpiryDate": NO_TIME,
                    "drvOptionType": "NA",
                    "drvStrikePrice": 0.0,
                })
            })
            .collect()
    }

    pub(crate) fn positions_json(&self, client_id: &str) -> Vec<Value> {
        self.positions
            .iter()
            .map(|p| {
                let net = p.net();
                let buy_avg = if p.buy_qty > 0 {
                    p.buy_value / p.buy_qty as f64
                } else {
                    0.0
                };
                let sell_avg = if p.sell_qty > 0 {
                    p.sell_value / p.sell_qty as f64
                } else {
                    0.0
                };
                let matched = p.buy_qty.min(p.sell_qty) as f64;
                let realized = matched * (sell_avg - buy_avg);
                let (position_type, cost_price, unrealized) = match net {
                    n if n > 0 => ("LONG", buy_avg, n as f64 * (p.last_price - buy_avg)),
                    n if n < 0 => ("SHORT", sell_avg, (-n) as f64 * (sell_avg - p.last_price)),
                    _ => ("CLOSED", 0.0, 0.0),
                };
                json!({
                    "dhanClientId": client_id,
                    "tradingSymbol": trading_symbol(&p.security_id),
                    "securityId": p.security_id,
                    "positionType": position_type,
                    "exchangeSegment": p.exchange_segment,
                    "productType": p.product_type,
                    "buyAvg": buy_avg,
                    "costPrice": cost_price,
                    "buyQty": p.buy_qty,
                    "sellAvg": sell_avg,
                    "sellQty": p.sell_qty,
                    "netQty": i64::try_from(net).unwrap_or(0),
                    "realizedProfit": realized,
                    "unrealizedProfit": unrealized,
                    "rbiReferenceRate": 1.0,
                    "multiplier": 1,
                    "carryForwardBuyQty": 0,
                    "carryForwardSellQty": 0,
                    "carryForwardBuyValue": 0.0,
                    "carryForwardSellValue": 0.0,
                    "dayBuyQty": p.buy_qty,
                    "daySellQty": p.sell_qty,
                    "dayBuyValue": p.buy_value,
                    "daySellValue": p.sell_value,
                    "drvExpiryDate": NO_TIME,
                    "drvOptionType": "NA",
                    "drvStrikePrice": 0.0,
                    "crossCurrency": false,
                })
            })
            .collect()
    }
}
