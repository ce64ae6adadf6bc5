//! The daily-summary worker: after the NSE equity close on each trading day (at
//! [`SUMMARY_AT`] IST), tells the trader what the day held: alerts, fills, rejections, orders
//! still open, and any whose outcome is unknown. One instance sends it per day (a journal
//! lease named after the date, held until the day is over), also across restarts.

use std::sync::Arc;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use tokio_util::sync::CancellationToken;

use crate::{
    clock::{Clock, ist, ist_offset},
    market::{Calendar, Venue},
    notify::{Event, Notifier},
    store::{Leases, LegStatus, ReportJournal},
};

/// When the summary goes out: after the 15:30 close and the closing session.
const SUMMARY_AT: NaiveTime = match NaiveTime::from_hms_opt(15, 45, 0) {
    Some(t) => t,
    None => panic!("15:45 is a valid time"),
};

/// Sends the summary after each trading day's close.
#[derive(Debug)]
pub struct DailySummary {
    reports: Arc<dyn ReportJournal>,
    leases: Arc<dyn Leases>,
    notifier: Notifier,
    clock: Arc<dyn Clock>,
    calendar: Arc<Calendar>,
    instance: String,
}

impl DailySummary {
    pub fn new(
        reports: Arc<dyn ReportJournal>,
        leases: Arc<dyn Leases>,
        notifier: Notifier,
        clock: Arc<dyn Clock>,
        calendar: Arc<Calendar>,
    ) -> Self {
        Self {
            reports,
            leases,
            notifier,
            clock,
            calendar,
            instance: uuid::Uuid::now_v7().to_string(),
        }
    }

    pub async fn run_until_stopped(self, stop: CancellationToken) {
        loop {
            let Some(at) = self.next_summary(self.clock.now()) else {
                return;
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.clock.sleep_until(at) => {}
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.send(at) => {}
            }
        }
    }

    /// The next summary time strictly after `now`: today's or a following trading day's.
    fn next_summary(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let today = ist(now).date_naive();
        (0..15).find_map(|d| {
            let day = today + chrono::Duration::days(d);
            if !self.calendar.is_trading_day(Venue::NseEquity, day) {
                return None;
            }
            let at = ist_offset()
                .from_local_datetime(&day.and_time(SUMMARY_AT))
                .single()?
                .with_timezone(&Utc);
            (at > now).then_some(at)
        })
    }

    async fn send(&self, at: DateTime<Utc>) {
        let day = ist(at).date_naive();
        let Some(start) = ist_offset()
            .from_local_datetime(&day.and_time(NaiveTime::MIN))
            .single()
            .map(|t| t.with_timezone(&Utc))
        else {
            return;
        };
        let end = start + chrono::Duration::days(1);
        // One summary per day across instances and restarts: the lease outlives the day.
        let lease = format!("daily-summary:{day}");
        match self.leases.try_lease(&lease, &self.instance, end, at).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::error!(%error, "could not take the daily-summary lease; no summary today");
                return;
            }
        }
        let counts = match self.reports.day_counts(start, end).await {
            Ok(c) => c,
            Err(error) => {
                tracing::error!(%error, "could not read the day's orders for the summary");
                return;
            }
        };
        self.notifier
            .send(Event::DailySummary {
                date: day.to_string(),
                alerts: counts.alerts,
                filled: counts.legs_in(LegStatus::Filled),
                rejected: counts.legs_in(LegStatus::Rejected),
                open: counts.legs_in(LegStatus::Accepted)
                    + counts.legs_in(LegStatus::Pending)
                    + counts.legs_in(LegStatus::PartTraded),
                ended: counts.legs_in(LegStatus::Cancelled) + counts.legs_in(LegStatus::Expired),
                blocked: counts.legs_in(LegStatus::Blocked),
                unsettled: counts.legs_in(LegStatus::Unknown)
                    + counts.legs_in(LegStatus::NeedsAttention)
                    + counts.legs_in(LegStatus::Submitting),
                queued: counts.legs_in(LegStatus::Queued),
            })
            .await;
    }
}
