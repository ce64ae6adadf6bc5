//! One step for every source that learns where an order stands at the broker: the order
//! tracker's polls and postback look-ups, and the order-update feed.
//!
//! A move is journaled with its source (only a move the leg's state machine allows: a late
//! PENDING never undoes a FILL), the alert's status is re-derived from its legs, and a leg
//! reaching its final state gets its CSV row and its notification. Kept in one place so that
//! two sources reporting the same fill record it once: the second finds the leg already
//! FILLED and records nothing.

use std::sync::Arc;

use crate::{
    broker::OrderState,
    clock::Clock,
    csvlog::CsvLog,
    notify::Notifier,
    store::{
        AlertJournal, AlertStatusChange, JournalError, LegDetail, LegSource, LegStatus, LegUpdate,
        OrderRow,
    },
};

/// Records what the broker says of a leg. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LegProgress {
    alerts: Arc<dyn AlertJournal>,
    csv: CsvLog,
    notifier: Notifier,
    clock: Arc<dyn Clock>,
}

impl LegProgress {
    pub fn new(
        alerts: Arc<dyn AlertJournal>,
        csv: CsvLog,
        notifier: Notifier,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            alerts,
            csv,
            notifier,
            clock,
        }
    }

    /// Journals `state` for `row` if it is a move (a new status, or more filled while
    /// PART_TRADED) that the leg may make. Returns the leg as journaled; `None` when there
    /// was nothing to record (no move, an illegal one, or another writer got there first).
    ///
    /// # Errors
    /// The journal failed.
    pub async fn record(
        &self,
        row: &OrderRow,
        state: &OrderState,
        source: LegSource,
    ) -> Result<Option<OrderRow>, JournalError> {
        let more_filled =
            state.status == LegStatus::PartTraded && state.filled_qty != row.detail.filled_qty;
        let moved = state.status != row.status || more_filled;
        if !moved || !row.status.can_become(state.status) {
            return Ok(None);
        }
        let update = LegUpdate {
            status: state.status,
            broker_order_id: None,
            fill_price: state.average_price,
            message: Some(state.message.clone()),
        };
        let detail = LegDetail {
            filled_qty: state.filled_qty,
            exchange_order_id: state.exchange_order_id.clone(),
            exchange_time: state.exchange_time,
            reason: state.reason.clone(),
        };
        let now = self.clock.now();
        // The leg's move and the alert's status derived from its legs: one commit.
        match self
            .alerts
            .transition_leg_and_alert(
                &row.alert_id,
                row.leg,
                &update,
                &detail,
                source,
                AlertStatusChange::FromLegs,
                now,
            )
            .await
        {
            Ok(()) => {}
            // Another writer moved the leg meanwhile: whoever looks next sees its new state.
            Err(JournalError::IllegalTransition { .. }) => return Ok(None),
            Err(e) => return Err(e),
        }
        tracing::info!(alert_id = %row.alert_id, leg = row.leg, status = %state.status, source = source.as_str(), "{}", state.message);
        let Some(record) = self.alerts.alert(&row.alert_id).await? else {
            return Ok(None);
        };
        let Some(out) = record.legs.into_iter().find(|l| l.leg == row.leg) else {
            return Ok(None);
        };
        if out.status.is_final() {
            // The final-state row of the CSV (see csvlog's module doc).
            self.csv.append(&record.alert_type, &out, now);
            self.notifier.leg_changed(&out).await;
        }
        Ok(Some(out))
    }
}
