//! Contract cases for a leg's life after placement (migration 0009): the broker's detail on
//! the leg (filled quantity, exchange order id and time, reason), the `leg_events` history
//! written with each transition (time and source), and the legs the order tracker follows.
//! Run on both backends by `contract!` in the parent module.

use std::sync::Arc;

use dhanhook::store::{
    Journal, JournalError, LegDetail, LegEvent, LegSource, LegStatus, LegUpdate, TrackJournal,
};

use super::{admitted, alert, alert_with, hours, move_leg, record, secs, t0, to};

fn with(status: LegStatus, order_id: Option<&str>, price: Option<f64>, msg: &str) -> LegUpdate {
    LegUpdate {
        status,
        broker_order_id: order_id.map(str::to_owned),
        fill_price: price,
        message: Some(msg.to_owned()),
    }
}

pub(super) async fn a_transition_is_journaled_with_its_time_source_and_detail(
    journal: Arc<dyn Journal>,
) {
    admitted(&journal, &alert_with("life", "k-life", t0(), 2)).await;
    journal
        .update_leg("life", 1, &to(LegStatus::Submitting), t0() + secs(1))
        .await
        .unwrap();
    let none = LegDetail::default();
    let accepted = with(LegStatus::Accepted, Some("5123"), None, "received by Dhan");
    journal
        .transition_leg(
            "life",
            1,
            &accepted,
            &none,
            LegSource::Placement,
            t0() + secs(2),
        )
        .await
        .unwrap();
    let part = LegDetail {
        filled_qty: Some(40),
        exchange_order_id: Some("1100000000000001".to_owned()),
        exchange_time: Some(t0() + secs(3)),
        reason: None,
    };
    let part_traded = with(
        LegStatus::PartTraded,
        None,
        Some(101.25),
        "PART_TRADED at Dhan",
    );
    journal
        .transition_leg(
            "life",
            1,
            &part_traded,
            &part,
            LegSource::Poll,
            t0() + secs(4),
        )
        .await
        .unwrap();
    // PART_TRADED may repeat as more fills; detail left out keeps its value.
    let more = LegDetail {
        filled_qty: Some(75),
        ..LegDetail::default()
    };
    journal
        .transition_leg(
            "life",
            1,
            &part_traded,
            &more,
            LegSource::Poll,
            t0() + secs(5),
        )
        .await
        .unwrap();
    let cancelled = LegDetail {
        reason: Some("cancelled by the user".to_owned()),
        ..LegDetail::default()
    };
    journal
        .transition_leg(
            "life",
            1,
            &with(LegStatus::Cancelled, None, None, "cancelled at Dhan"),
            &cancelled,
            LegSource::Poll,
            t0() + secs(6),
        )
        .await
        .unwrap();
    // A refused transition writes nothing, not even history.
    let refused = journal
        .transition_leg(
            "life",
            1,
            &to(LegStatus::Filled),
            &none,
            LegSource::Poll,
            t0() + secs(7),
        )
        .await;
    assert!(
        matches!(refused, Err(JournalError::IllegalTransition { .. })),
        "{refused:?}"
    );
    // Leg 2: rejected by the reconciler with a reason.
    move_leg(&journal, "life", 2, LegStatus::Submitting).await;
    journal
        .transition_leg(
            "life",
            2,
            &with(
                LegStatus::Rejected,
                Some("5124"),
                None,
                "rejected at Dhan: RMS",
            ),
            &LegDetail {
                reason: Some("RMS: margin exceeds".to_owned()),
                ..LegDetail::default()
            },
            LegSource::Reconciler,
            t0() + secs(8),
        )
        .await
        .unwrap();

    let rec = record(&journal, "life").await;
    let leg = &rec.legs[0];
    assert_eq!(leg.status, LegStatus::Cancelled);
    assert_eq!(leg.order_id.as_deref(), Some("5123"));
    assert_eq!(leg.fill_price, Some(101.25));
    assert_eq!(
        leg.detail,
        LegDetail {
            filled_qty: Some(75),
            exchange_order_id: Some("1100000000000001".to_owned()),
            exchange_time: Some(t0() + secs(3)),
            reason: Some("cancelled by the user".to_owned()),
        }
    );
    assert_eq!(leg.updated_at, t0() + secs(6));
    assert_eq!(
        rec.legs[1].detail.reason.as_deref(),
        Some("RMS: margin exceeds")
    );

    let event = |leg, s, status, at, filled, price, msg: &str| LegEvent {
        leg,
        at: t0() + secs(at),
        source: s,
        status,
        filled_qty: filled,
        fill_price: price,
        message: (!msg.is_empty()).then(|| msg.to_owned()),
    };
    use LegSource::{Placement, Poll, Reconciler};
    use LegStatus::*;
    assert_eq!(
        journal.leg_events("life").await.unwrap(),
        vec![
            event(1, Placement, Submitting, 1, None, None, ""),
            event(1, Placement, Accepted, 2, None, None, "received by Dhan"),
            event(
                1,
                Poll,
                PartTraded,
                4,
                Some(40),
                Some(101.25),
                "PART_TRADED at Dhan"
            ),
            event(
                1,
                Poll,
                PartTraded,
                5,
                Some(75),
                Some(101.25),
                "PART_TRADED at Dhan"
            ),
            event(1, Poll, Cancelled, 6, None, None, "cancelled at Dhan"),
            event(2, Placement, Submitting, 0, None, None, ""),
            event(
                2,
                Reconciler,
                Rejected,
                8,
                None,
                None,
                "rejected at Dhan: RMS"
            ),
        ]
    );
    assert!(journal.leg_events("no-such").await.unwrap().is_empty());
}

pub(super) async fn legs_to_track_are_the_open_legs_with_an_order_id(journal: Arc<dyn Journal>) {
    let track: Arc<dyn TrackJournal> = journal.clone();
    let step = |id: &str, status, order_id: Option<&str>| {
        let journal = journal.clone();
        let (id, order_id) = (id.to_owned(), order_id.map(str::to_owned));
        async move {
            let update = LegUpdate {
                status,
                broker_order_id: order_id,
                fill_price: None,
                message: None,
            };
            journal.update_leg(&id, 1, &update, t0()).await.unwrap();
        }
    };
    for (n, (id, path)) in [
        ("accepted", vec![LegStatus::Accepted]),
        ("pending", vec![LegStatus::Pending]),
        ("part", vec![LegStatus::Accepted, LegStatus::PartTraded]),
        ("filled", vec![LegStatus::Accepted, LegStatus::Filled]),
        ("rejected", vec![LegStatus::Rejected]),
        ("unknown", vec![]),
    ]
    .into_iter()
    .enumerate()
    {
        admitted(&journal, &alert(id, t0() + secs(n as i64))).await;
        move_leg(&journal, id, 1, LegStatus::Submitting).await;
        if path.is_empty() {
            move_leg(&journal, id, 1, LegStatus::Unknown).await;
        }
        for status in path {
            step(id, status, Some(&format!("order-{id}"))).await;
        }
    }
    // Accepted without an order id: nothing to look up by.
    admitted(&journal, &alert("no-id", t0())).await;
    move_leg(&journal, "no-id", 1, LegStatus::Submitting).await;
    step("no-id", LegStatus::Accepted, None).await;
    // Moved later than the others: first (most recently moved first).
    admitted(&journal, &alert("later", t0())).await;
    move_leg(&journal, "later", 1, LegStatus::Submitting).await;
    journal
        .update_leg(
            "later",
            1,
            &LegUpdate {
                status: LegStatus::Accepted,
                broker_order_id: Some("order-later".to_owned()),
                fill_price: None,
                message: None,
            },
            t0() + hours(1),
        )
        .await
        .unwrap();

    let ids = |rows: Vec<dhanhook::store::OrderRow>| {
        rows.into_iter().map(|r| r.alert_id).collect::<Vec<_>>()
    };
    let all = ids(track.legs_to_track(t0(), 10).await.unwrap());
    assert_eq!(all[0], "later");
    let mut rest = all[1..].to_vec();
    rest.sort();
    assert_eq!(rest, ["accepted", "part", "pending"]);
    assert_eq!(
        ids(track.legs_to_track(t0() + secs(1), 10).await.unwrap()),
        ["later"],
        "legs that moved before `since` are left out"
    );
    assert_eq!(ids(track.legs_to_track(t0(), 1).await.unwrap()), ["later"]);
}
