//! `cancel_order`: cancel the open orders dhanhook placed on an instrument, and nothing else.
//!
//! Our orders are found in the journal (legs not final, on the instrument, in this mode), so
//! an order placed by hand or by another tool is never touched: each carries our
//! `correlationId` and broker order id. Each cancel's result is reported; a cancelled leg is
//! journaled CANCELLED at once (the order tracker would see it later), and a leg still waiting
//! in the queue, never sent, becomes REJECTED "not sent: cancelled …".

use serde::Serialize;

use super::positions::PositionDesk;
use crate::{
    broker::CancelOutcome,
    store::{LegDetail, LegSource, LegStatus, LegUpdate, OrderRow, ResolvedLeg},
};

/// What a `cancel_order` alert did to one of our open orders (returned in the answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CancelReport {
    /// The alert and leg that placed the order.
    pub alert_id: String,
    pub leg: u32,
    pub symbol: String,
    pub order_id: Option<String>,
    /// `cancelled`, `refused` (the broker said no), `unknown` (no answer: the order tracker
    /// will see what happened) or `skipped` (the order's fate at the broker is not known yet).
    pub result: &'static str,
    pub message: String,
}

impl PositionDesk {
    /// Cancels the open orders dhanhook placed on the instruments in `resolved`, in this mode,
    /// and journals each one cancelled (CANCELLED; a leg still queued, never sent, becomes
    /// REJECTED "not sent: cancelled …").
    ///
    /// # Errors
    /// The journal could not list the open legs: nothing was cancelled.
    pub(crate) async fn cancel_open(
        &self,
        alert_id: &str,
        resolved: &[ResolvedLeg],
    ) -> Result<Vec<CancelReport>, String> {
        let mut reports = Vec::new();
        for (_, rows) in self.our_open_legs(resolved).await? {
            for row in rows {
                reports.push(self.cancel_one(alert_id, &row).await);
            }
        }
        Ok(reports)
    }

    async fn cancel_one(&self, by: &str, row: &OrderRow) -> CancelReport {
        let report = |result, message: String| CancelReport {
            alert_id: row.alert_id.clone(),
            leg: row.leg,
            symbol: row.symbol.clone(),
            order_id: row.order_id.clone(),
            result,
            message,
        };
        let journal = |status, message: String| {
            let update = LegUpdate {
                status,
                broker_order_id: row.order_id.clone(),
                fill_price: None,
                message: Some(message),
            };
            async move {
                self.journal
                    .transition_leg(
                        &row.alert_id,
                        row.leg,
                        &update,
                        &LegDetail {
                            reason: update.message.clone(),
                            ..LegDetail::default()
                        },
                        LegSource::Placement,
                        self.clock.now(),
                    )
                    .await
            }
        };
        match (row.status, row.order_id.as_deref()) {
            (LegStatus::Queued, _) => {
                let message = format!("not sent: cancelled by cancel_order alert {by}");
                match journal(LegStatus::Rejected, message.clone()).await {
                    Ok(()) => report("cancelled", "was queued; will not be sent".to_owned()),
                    Err(e) => report(
                        "unknown",
                        format!("the journal could not record the cancel: {e}"),
                    ),
                }
            }
            (status, Some(order_id)) if status.is_open_at_broker() => {
                match self.broker.cancel(order_id).await {
                    Ok(CancelOutcome::Cancelled) => {
                        let message = format!("cancelled by cancel_order alert {by}");
                        if let Err(e) = journal(LegStatus::Cancelled, message).await {
                            // The order tracker will journal it from the broker's book.
                            tracing::warn!(alert_id = %row.alert_id, leg = row.leg, error = %e, "cancelled at the broker; not journaled yet");
                        }
                        report("cancelled", "cancelled at the broker".to_owned())
                    }
                    Ok(CancelOutcome::Refused(why)) => report("refused", why),
                    Err(e) => report("unknown", e.to_string()),
                }
            }
            (status, _) => report(
                "skipped",
                format!(
                    "not cancelled: the order is {status}, its fate at the broker is not known yet"
                ),
            ),
        }
    }
}
