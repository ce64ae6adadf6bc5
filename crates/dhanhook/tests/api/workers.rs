//! The reconciler worker on its own, with a movable clock, a real SQLite journal and a broker
//! that answers as each test needs: what the end-to-end tests cannot arrange, such as a journal
//! that fails only on the reconciler's lease, or lookups slow enough to outlast that lease.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use dhanhook::{
    broker::{Broker, BrokerError, Lookup, OrderRequest, Placement},
    clock::{Clock, ManualClock},
    csvlog::CsvLog,
    domain::AmoTime,
    pipeline::LegPlacer,
    store::{Journal, JournalError, JournalLifecycle, Leases, LegStatus, sqlite::SqliteJournal},
    workers::reconciler::{ReconcileRules, Reconciler, ReconcilerJournal},
};
use tokio_util::sync::CancellationToken;

use crate::journal_contract::{admitted, alert, move_leg, t0};

/// A journal in a temporary folder, and the folder (kept alive with it).
async fn journal() -> (Arc<dyn Journal>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteJournal::open(&format!("sqlite://{}/journal.db", dir.path().display()))
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    (Arc::new(sqlite), dir)
}

fn rules() -> ReconcileRules {
    ReconcileRules {
        max_age: std::time::Duration::from_secs(96 * 3600),
        resend_unknown: false,
        unknown_settle: std::time::Duration::from_secs(30),
    }
}

/// A broker that has never seen any order; each lookup takes `lookup_takes` of the service's
/// clock (a slow Dhan), during which another instance tries to take the reconciler lease.
#[derive(Debug)]
struct SlowBroker {
    clock: Arc<ManualClock>,
    lookup_takes: Duration,
    journal: Arc<dyn Journal>,
    /// What the other instance got each time it asked for the lease mid-pass.
    other_got_lease: Mutex<Vec<bool>>,
}

#[async_trait]
impl Broker for SlowBroker {
    fn name(&self) -> &'static str {
        "slow"
    }
    async fn place(&self, _order: OrderRequest<'_>) -> Result<Placement, BrokerError> {
        Err(BrokerError::Unknown("not expected in this test".to_owned()))
    }
    async fn lookup(&self, _correlation_id: &str) -> Result<Lookup, BrokerError> {
        self.clock.advance(self.lookup_takes);
        let now = self.clock.now();
        let got = self
            .journal
            .try_lease(
                "reconciler",
                "other-instance",
                now + Duration::seconds(30),
                now,
            )
            .await
            .unwrap();
        self.other_got_lease.lock().unwrap().push(got);
        Ok(Lookup::Absent)
    }
}

fn placer(
    journal: &Arc<dyn Journal>,
    broker: Arc<dyn Broker>,
    clock: Arc<dyn Clock>,
    dir: &tempfile::TempDir,
) -> LegPlacer {
    let (_tx, rx) = tokio::sync::watch::channel(true);
    let clock_for_notifier = Arc::clone(&clock);
    LegPlacer::new(
        journal.clone(),
        broker,
        CsvLog::open(&dir.path().join("orders.csv")).unwrap(),
        clock,
        AmoTime::Open,
        rx,
        dhanhook::notify::Notifier::off(clock_for_notifier),
    )
}

/// A pass of slow lookups (20 s each, against a 30 s lease) keeps the lease to itself: it is
/// renewed as the pass goes, so a second instance cannot start a pass over the same legs.
#[tokio::test]
async fn the_reconciler_lease_is_renewed_during_a_long_pass() {
    let (journal, dir) = journal().await;
    let clock = Arc::new(ManualClock::new(t0()));
    for id in ["a1", "a2", "a3", "a4"] {
        admitted(&journal, &alert(id, t0())).await;
        move_leg(&journal, id, 1, LegStatus::Submitting).await;
        move_leg(&journal, id, 1, LegStatus::Unknown).await;
    }
    clock.advance(Duration::seconds(60));
    let broker = Arc::new(SlowBroker {
        clock: clock.clone(),
        lookup_takes: Duration::seconds(20),
        journal: journal.clone(),
        other_got_lease: Mutex::new(Vec::new()),
    });
    let (reconciled, _rx) = tokio::sync::watch::channel(false);
    let reconciler = Reconciler::new(
        ReconcilerJournal::of(&journal),
        broker.clone(),
        placer(&journal, broker.clone(), clock.clone(), &dir),
        clock.clone(),
        rules(),
        reconciled,
    );
    // The pass starts as the loop starts it: with the lease just taken for 30 s.
    let now = clock.now();
    let lease_until = now + Duration::seconds(30);
    assert!(
        journal
            .try_lease("reconciler", reconciler.instance(), lease_until, now)
            .await
            .unwrap()
    );
    let done = reconciler.reconcile_once(None, lease_until).await.unwrap();
    assert_eq!(done.len(), 4, "every leg was looked at: {done:?}");
    assert_eq!(
        *broker.other_got_lease.lock().unwrap(),
        vec![false; 4],
        "another instance never got the lease during the pass"
    );
}

/// The journal's lease table fails; everything else works.
#[derive(Debug)]
struct FailingLeases {
    fail: AtomicBool,
    calls: AtomicUsize,
    inner: Arc<dyn Journal>,
}

#[async_trait]
impl Leases for FailingLeases {
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, JournalError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(JournalError::Database(sqlx::Error::PoolTimedOut));
        }
        self.inner.try_lease(name, holder, until, now).await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), JournalError> {
        self.inner.release_lease(name, holder).await
    }
}

/// Waits (in real time, bounded) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A journal error on the reconciler's lease is not "another instance reconciles": the
/// start-up pass is not counted as done (new orders are not told the unknown legs were looked
/// up), and it runs once the journal answers.
#[tokio::test]
async fn a_journal_error_on_the_reconciler_lease_does_not_count_as_reconciled() {
    let (journal, dir) = journal().await;
    let clock = Arc::new(ManualClock::new(t0()));
    admitted(&journal, &alert("u1", t0())).await;
    move_leg(&journal, "u1", 1, LegStatus::Submitting).await;
    move_leg(&journal, "u1", 1, LegStatus::Unknown).await;
    let leases = Arc::new(FailingLeases {
        fail: AtomicBool::new(true),
        calls: AtomicUsize::new(0),
        inner: journal.clone(),
    });
    let broker = Arc::new(SlowBroker {
        clock: clock.clone(),
        lookup_takes: Duration::seconds(1),
        journal: journal.clone(),
        other_got_lease: Mutex::new(Vec::new()),
    });
    let (reconciled, mut reconciled_rx) = tokio::sync::watch::channel(false);
    let reconciler = Reconciler::new(
        ReconcilerJournal {
            legs: journal.clone(),
            alerts: journal.clone(),
            leases: leases.clone(),
        },
        broker.clone(),
        placer(&journal, broker.clone(), clock.clone(), &dir),
        clock.clone(),
        rules(),
        reconciled,
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(reconciler.run_until_stopped(stop.clone()));

    // Two attempts, both refused by the journal: the first loop turn is over by the second.
    until("the first lease attempt", || {
        leases.calls.load(Ordering::SeqCst) >= 1
    })
    .await;
    clock.advance(Duration::seconds(5));
    until("the second lease attempt", || {
        leases.calls.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert!(
        !*reconciled_rx.borrow(),
        "a lease the journal could not grant must not open the gate as if reconciled"
    );
    assert!(
        broker.other_got_lease.lock().unwrap().is_empty(),
        "no pass ran without the lease"
    );

    // The journal answers again: the start-up pass runs (the leg from before boot is looked
    // up) and the gate opens.
    leases.fail.store(false, Ordering::SeqCst);
    clock.advance(Duration::seconds(5));
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reconciled_rx.wait_for(|done| *done),
    )
    .await
    .expect("reconciled once the journal answers")
    .unwrap();
    assert_eq!(
        broker.other_got_lease.lock().unwrap().len(),
        1,
        "the start-up pass looked the UNKNOWN leg up"
    );
    stop.cancel();
    task.await.unwrap();
}
