//! Contract cases for the notification outbox: an alert's messages are claimed in order, one
//! holder at a time; a failed message is retried at its time or given up; a sent one is done.
//! Run on both backends by `contract!` in the parent module.

use std::sync::Arc;

use dhanhook::{
    domain::{Channel, EventKind},
    store::{Journal, NewNotification, OutboxJournal},
};

use super::{secs, t0};

fn message(alert: Option<&str>, title: &str) -> NewNotification {
    NewNotification {
        channel: Channel::Telegram,
        alert_id: alert.map(str::to_owned),
        kind: EventKind::Filled,
        title: title.to_owned(),
        body: "body".to_owned(),
    }
}

pub(super) async fn an_alerts_messages_are_claimed_in_order_by_one_holder(
    journal: Arc<dyn Journal>,
) {
    let outbox: Arc<dyn OutboxJournal> = journal.clone();
    outbox
        .enqueue(
            &[
                message(Some("a"), "a1"),
                message(Some("a"), "a2"),
                message(Some("b"), "b1"),
                message(None, "free"),
            ],
            t0(),
        )
        .await
        .unwrap();
    let hold = t0() + secs(60);
    let first = outbox
        .claim_notifications("x", t0(), hold, 10)
        .await
        .unwrap();
    let titles: Vec<&str> = first.iter().map(|n| n.title.as_str()).collect();
    assert_eq!(titles, ["a1", "b1", "free"], "a2 waits for a1");
    assert!(
        outbox
            .claim_notifications("y", t0(), hold, 10)
            .await
            .unwrap()
            .is_empty(),
        "held by x"
    );
    let a1 = first.iter().find(|n| n.title == "a1").unwrap();
    // Only the holder records the delivery.
    outbox.notification_sent(a1.id, "y", t0()).await.unwrap();
    assert!(
        outbox
            .claim_notifications("y", t0(), hold, 10)
            .await
            .unwrap()
            .is_empty()
    );
    outbox.notification_sent(a1.id, "x", t0()).await.unwrap();
    let next = outbox
        .claim_notifications("y", t0(), hold, 10)
        .await
        .unwrap();
    let titles: Vec<&str> = next.iter().map(|n| n.title.as_str()).collect();
    assert_eq!(titles, ["a2"], "a2 follows once a1 is sent");
    // A claim that lapses (its holder died) frees the message for another instance.
    let lapsed = outbox
        .claim_notifications("z", hold + secs(1), hold + secs(61), 10)
        .await
        .unwrap();
    let titles: Vec<&str> = lapsed.iter().map(|n| n.title.as_str()).collect();
    assert_eq!(titles, ["a2", "b1", "free"]);
}

pub(super) async fn a_failed_message_is_retried_at_its_time_or_given_up(journal: Arc<dyn Journal>) {
    let outbox: Arc<dyn OutboxJournal> = journal.clone();
    outbox
        .enqueue(&[message(Some("a"), "a1"), message(Some("a"), "a2")], t0())
        .await
        .unwrap();
    let hold = t0() + secs(60);
    let claimed = outbox
        .claim_notifications("x", t0(), hold, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempts, 0);
    outbox
        .notification_failed(
            claimed[0].id,
            "x",
            "telegram answered 500",
            Some(t0() + secs(5)),
            t0(),
        )
        .await
        .unwrap();
    // a2 is due but waits behind a1: the next claim is at a1's retry.
    assert_eq!(
        outbox.next_notification_at().await.unwrap(),
        Some(t0() + secs(5))
    );
    assert!(
        outbox
            .claim_notifications("x", t0() + secs(4), hold, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet, and a2 still waits behind it"
    );
    let again = outbox
        .claim_notifications("x", t0() + secs(5), hold, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].title.as_str(), again[0].attempts), ("a1", 1));
    // Given up: the next message of the alert goes on.
    outbox
        .notification_failed(again[0].id, "x", "chat not found", None, t0() + secs(5))
        .await
        .unwrap();
    let next = outbox
        .claim_notifications("x", t0() + secs(5), hold, 10)
        .await
        .unwrap();
    let titles: Vec<&str> = next.iter().map(|n| n.title.as_str()).collect();
    assert_eq!(titles, ["a2"]);
    outbox
        .notification_sent(next[0].id, "x", t0())
        .await
        .unwrap();
    assert_eq!(outbox.next_notification_at().await.unwrap(), None);
}
