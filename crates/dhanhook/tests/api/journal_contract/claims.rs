//! Contract cases for the queue's claim columns (`claim_holder`, `claimed_at`): a claim is
//! exclusive, the end of a run or a requeue ends it, a stale one is recovered, and none of it
//! touches the alert's own status. Run on both backends by `contract!` in the parent module.
//!
//! The cases work through `Arc<dyn QueueJournal>` made from the `Arc<dyn Journal>` by trait
//! upcasting, the way a component that only runs the queue would be given the journal.

use std::{collections::BTreeMap, sync::Arc};

use chrono::Duration;
use dhanhook::store::{AlertStatus, Journal, LegStatus, QueueJournal};

use super::{admitted, counts, move_leg, queued, record, secs, t0};

const A: &str = "runner-a";
const B: &str = "runner-b";

pub(super) async fn a_claim_is_exclusive_until_its_holder_releases_it(journal: Arc<dyn Journal>) {
    let queue: Arc<dyn QueueJournal> = journal.clone();
    let due = t0() + Duration::hours(1);
    admitted(&journal, &queued("q", t0(), due, 2)).await;

    assert_eq!(queue.claim_due(A, due).await.unwrap().as_deref(), Some("q"));
    assert_eq!(queue.claim_due(B, due).await.unwrap(), None, "claimed by A");
    assert_eq!(queue.next_queued_at().await.unwrap(), None, "nothing waits");
    assert_eq!(record(&journal, "q").await.status.as_str(), "processing");

    // Only the holder ends its claim.
    queue.release_claim("q", B).await.unwrap();
    assert_eq!(queue.claim_due(B, due).await.unwrap(), None, "still A's");

    // A run that ends with legs still QUEUED (nothing could be sent) leaves the alert waiting.
    queue.release_claim("q", A).await.unwrap();
    assert_eq!(record(&journal, "q").await.status.as_str(), "queued");
    assert_eq!(queue.next_queued_at().await.unwrap(), Some(due));
    assert_eq!(queue.claim_due(B, due).await.unwrap().as_deref(), Some("q"));
}

pub(super) async fn the_end_of_a_run_and_a_requeue_end_the_claim(journal: Arc<dyn Journal>) {
    let queue: Arc<dyn QueueJournal> = journal.clone();
    let due = t0() + Duration::hours(1);
    admitted(&journal, &queued("run", t0(), due, 1)).await;
    admitted(&journal, &queued("closed", t0() + secs(1), due, 1)).await;

    // `run` is run to the end: its leg placed, its status recorded, its claim released.
    assert_eq!(
        queue.claim_due(A, due).await.unwrap().as_deref(),
        Some("run")
    );
    move_leg(&journal, "run", 1, LegStatus::Submitting).await;
    move_leg(&journal, "run", 1, LegStatus::Accepted).await;
    journal
        .set_alert_status("run", AlertStatus::Placed, due)
        .await
        .unwrap();
    queue.release_claim("run", A).await.unwrap();
    assert_eq!(record(&journal, "run").await.status.as_str(), "placed");

    // `closed` finds its market closed: back in the queue, unclaimed, until its new instant.
    assert_eq!(
        queue.claim_due(A, due).await.unwrap().as_deref(),
        Some("closed")
    );
    let later = due + Duration::hours(20);
    queue.requeue("closed", later, due).await.unwrap();
    assert_eq!(record(&journal, "closed").await.status.as_str(), "queued");
    assert_eq!(queue.next_queued_at().await.unwrap(), Some(later));
    assert_eq!(queue.claim_due(B, later - secs(1)).await.unwrap(), None);

    // Neither is left for recovery, and the finished one is never claimed again.
    assert_eq!(queue.recover_claims(later, later).await.unwrap(), 0);
    assert_eq!(
        queue.claim_due(B, later).await.unwrap().as_deref(),
        Some("closed")
    );
    assert_eq!(queue.claim_due(B, later).await.unwrap(), None);
    assert_eq!(
        counts(&queue.queue_summary(10).await.unwrap()),
        BTreeMap::from([("placed".to_owned(), 1), ("processing".to_owned(), 1)])
    );
}

pub(super) async fn a_stale_claim_is_recovered_for_another_runner(journal: Arc<dyn Journal>) {
    let queue: Arc<dyn QueueJournal> = journal.clone();
    let due = t0() + Duration::hours(1);
    admitted(&journal, &queued("crashed", t0(), due, 2)).await;

    // A claims, sends the first leg, and dies.
    assert_eq!(
        queue.claim_due(A, due).await.unwrap().as_deref(),
        Some("crashed")
    );
    move_leg(&journal, "crashed", 1, LegStatus::Submitting).await;

    let later = due + secs(30);
    assert_eq!(queue.recover_claims(due, later).await.unwrap(), 0, "fresh");
    assert_eq!(queue.claim_due(B, later).await.unwrap(), None, "still A's");
    assert_eq!(queue.recover_claims(later, later).await.unwrap(), 1);
    assert_eq!(record(&journal, "crashed").await.status.as_str(), "queued");

    // The reconciler settles the sent leg and records what the legs say; the alert still
    // waits for its QUEUED leg, and B takes it over.
    move_leg(&journal, "crashed", 1, LegStatus::Filled).await;
    journal
        .set_alert_status("crashed", AlertStatus::Processing, later)
        .await
        .unwrap();
    assert_eq!(record(&journal, "crashed").await.status.as_str(), "queued");
    assert_eq!(
        queue.claim_due(B, later).await.unwrap().as_deref(),
        Some("crashed")
    );
    assert_eq!(
        record(&journal, "crashed").await.status.as_str(),
        "processing"
    );
    // B's claim is its own: A's late release does not end it.
    queue.release_claim("crashed", A).await.unwrap();
    assert_eq!(queue.recover_claims(later, later).await.unwrap(), 0);
    assert_eq!(queue.next_queued_at().await.unwrap(), None);
}

/// A SQLite journal written before the claim columns existed (migrations up to 0007) upgrades
/// with its queue intact: a waiting alert is claimed as before, and an alert a run had claimed
/// the old way (status `processing`) stays claimed until that claim is stale, then is
/// recovered and run. Nothing waiting in a user's queue is lost or run twice by the upgrade.
#[tokio::test]
async fn a_journal_from_before_the_claim_columns_upgrades_with_its_queue_intact() {
    use dhanhook::store::{JournalLifecycle, sqlite::SqliteJournal};
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("journal.db").display());
    let options: SqliteConnectOptions = url
        .parse::<SqliteConnectOptions>()
        .unwrap()
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .unwrap();
    sqlx::migrate!("./migrations/sqlite")
        .run_to(7, &pool)
        .await
        .unwrap();

    // Written the old way, by the SQL of that schema (today's admission writes columns added
    // since), and the old claim was a status.
    let due = t0() + Duration::hours(1);
    for id in ["waiting", "claimed"] {
        old_queued_alert(&pool, id, due).await;
    }
    sqlx::query("UPDATE alerts SET status = 'processing', claimed_at = $1 WHERE id = 'claimed'")
        .bind(dhanhook::clock::to_millis(t0()))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let journal = SqliteJournal::open(&url).await.unwrap();
    journal.migrate().await.unwrap();
    let journal: Arc<dyn Journal> = Arc::new(journal);
    let queue: Arc<dyn QueueJournal> = journal.clone();
    assert_eq!(
        record(&journal, "claimed").await.status,
        AlertStatus::Processing
    );
    assert_eq!(
        queue.claim_due(A, due).await.unwrap().as_deref(),
        Some("waiting"),
        "the waiting alert is claimed as before"
    );
    assert_eq!(
        queue.claim_due(A, due).await.unwrap(),
        None,
        "the old claim holds"
    );
    // The old claim (taken at t0) is left alone while it may be live, and recovered once
    // stale; A's fresh claim is not touched.
    assert_eq!(queue.recover_claims(t0() - secs(1), due).await.unwrap(), 0);
    assert_eq!(queue.recover_claims(due - secs(1), due).await.unwrap(), 1);
    assert_eq!(
        queue.claim_due(B, due).await.unwrap().as_deref(),
        Some("claimed"),
        "the recovered alert runs once more (its legs were never sent)"
    );
    journal.close().await;
}

/// An alert queued until `due` with one QUEUED leg, as admission wrote it at migration 0007.
async fn old_queued_alert(pool: &sqlx::SqlitePool, id: &str, due: chrono::DateTime<chrono::Utc>) {
    let at = dhanhook::clock::to_millis(t0());
    sqlx::query(
        "INSERT INTO alerts (id, received_at, client_ip, format, alert_type, strategy, dedupe_key,
                             payload, mode, status, duplicates, updated_at, route, queued_until)
         VALUES ($1, $2, NULL, 'flat', 'flat', NULL, $3, '{}', 'paper', 'queued', 0, $2,
                 '{\"route\":\"queue\"}', $4)",
    )
    .bind(id)
    .bind(at)
    .bind(format!("key-{id}"))
    .bind(dhanhook::clock::to_millis(due))
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO dedupe_keys (key, alert_id, expires_at) VALUES ($1, $2, NULL)")
        .bind(format!("key-{id}"))
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO order_legs (alert_id, leg_no, correlation_id, symbol, exchange, side, quantity,
             order_type, product, validity, amo, mode, status, created_at, updated_at,
             security_id, exchange_segment, trading_symbol, lot_size, units)
         VALUES ($1, 1, $2, 'SBIN', 'NSE', 'BUY', 1, 'MARKET', 'INTRADAY', 'DAY', 0, 'paper',
                 'QUEUED', $3, $3, '3045', 'NSE_EQ', 'SBIN', 1, 1)",
    )
    .bind(id)
    .bind(format!("{id}-L1"))
    .bind(at)
    .execute(pool)
    .await
    .unwrap();
}
