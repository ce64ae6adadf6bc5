//! Unit tests of the store's typed boundary: status spellings, the order of `/queue-stats`
//! counts, a value the code does not know read back as corrupt, and a part of the journal made
//! from the whole by upcasting. (The backends' behaviour is the contract suite's, in
//! `tests/api/journal_contract.rs`.)

use std::{collections::BTreeMap, sync::Arc};

use super::{
    AlertJournal, AlertStatus, Journal, JournalError, JournalLifecycle, QueueJournal,
    sqlite::SqliteJournal,
};

#[test]
fn alert_statuses_read_back_as_written() {
    for status in AlertStatus::ALL {
        assert_eq!(AlertStatus::parse(status.as_str()), Some(status));
    }
    assert_eq!(AlertStatus::parse("Queued"), None);
}

#[test]
fn queue_counts_serialise_as_they_did_keyed_by_strings() {
    let typed: BTreeMap<AlertStatus, i64> = AlertStatus::ALL.into_iter().zip(1..).collect();
    let text: BTreeMap<String, i64> = typed
        .iter()
        .map(|(status, n)| (status.as_str().to_owned(), *n))
        .collect();
    assert_eq!(
        serde_json::to_string(&typed).unwrap(),
        serde_json::to_string(&text).unwrap()
    );
}

async fn journal(dir: &tempfile::TempDir) -> SqliteJournal {
    let url = format!("sqlite://{}", dir.path().join("journal.db").display());
    let journal = SqliteJournal::open(&url).await.unwrap();
    journal.migrate().await.unwrap();
    journal
}

/// Writes an alert with one leg whose `side` is `side`, bypassing the typed API.
async fn raw_alert(journal: &SqliteJournal, id: &str, mode: &str, side: &str) {
    sqlx::query(
        "INSERT INTO alerts (id, received_at, format, alert_type, dedupe_key, payload, mode, status, updated_at)
         VALUES ($1, 0, 'flat', 'entry', $1, '{}', $2, 'placed', 0)",
    )
    .bind(id)
    .bind(mode)
    .execute(&journal.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO order_legs (alert_id, leg_no, correlation_id, symbol, exchange, side, quantity,
             order_type, product, validity, amo, mode, status, created_at, updated_at)
         VALUES ($1, 1, $1, 'RELIANCE', 'NSE', $2, 1, 'MARKET', 'INTRADAY', 'DAY', 0, 'paper',
                 'FILLED', 0, 0)",
    )
    .bind(id)
    .bind(side)
    .execute(&journal.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_stored_value_the_code_does_not_know_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let journal = journal(&dir).await;
    raw_alert(&journal, "fine", "paper", "BUY").await;
    raw_alert(&journal, "odd-side", "paper", "SIDEWAYS").await;
    raw_alert(&journal, "odd-mode", "demo", "SELL").await;

    let fine = journal.alert("fine").await.unwrap().unwrap();
    assert_eq!(fine.legs[0].side, crate::domain::Side::Buy);
    for (id, what) in [("odd-side", "SIDEWAYS"), ("odd-mode", "demo")] {
        match journal.alert(id).await {
            Err(JournalError::Corrupt(msg)) => assert!(msg.contains(what), "{msg}"),
            other => panic!("{id}: {other:?}"),
        }
    }
    assert!(matches!(
        journal.recent_orders(10).await,
        Err(JournalError::Corrupt(_))
    ));
    journal.close().await;
}

#[tokio::test]
async fn a_part_of_the_journal_is_made_from_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let whole: Arc<dyn Journal> = Arc::new(journal(&dir).await);
    // Trait upcasting (Rust 1.86+): what a component that only runs the queue is given.
    let queue: Arc<dyn QueueJournal> = whole.clone();
    assert_eq!(queue.next_queued_at().await.unwrap(), None);
    whole.close().await;
}

#[test]
fn an_alert_with_cancelled_or_expired_legs_counts_them_as_not_placed() {
    use super::LegStatus::*;
    let of = |legs: &[super::LegStatus]| AlertStatus::from_legs(legs.iter().copied());
    assert_eq!(of(&[PartTraded]), AlertStatus::Placed, "open at the broker");
    assert_eq!(of(&[Filled, PartTraded]), AlertStatus::Placed);
    assert_eq!(of(&[Cancelled]), AlertStatus::Rejected);
    assert_eq!(of(&[Expired, Rejected]), AlertStatus::Rejected);
    assert_eq!(of(&[Filled, Cancelled]), AlertStatus::Partial);
    assert_eq!(of(&[Expired, Submitting]), AlertStatus::Processing);
}

#[test]
fn final_states_are_final_and_part_traded_moves_on() {
    use super::LegStatus::{self, *};
    for status in LegStatus::ALL {
        assert_eq!(LegStatus::parse(status.as_str()), Some(status));
        if status.is_final() {
            assert!(
                LegStatus::ALL.iter().all(|next| !status.can_become(*next)),
                "{status} is final"
            );
        }
    }
    for next in [PartTraded, Filled, Cancelled, Expired] {
        assert!(PartTraded.can_become(next), "PART_TRADED → {next}");
    }
    assert!(!PartTraded.can_become(Pending));
    assert!(Accepted.can_become(PartTraded) && Pending.can_become(Expired));
}
