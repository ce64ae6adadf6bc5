//! The journal contract: every [`Journal`] backend behaves the same.
//!
//! Each case is written once, against `Arc<dyn Journal>`, and the `contract!` macro runs it on
//! both backends: `journal_contract::sqlite::<case>` (always) and
//! `journal_contract::postgres::<case>` (when `DHANHOOK_TEST_POSTGRES_URL` names a server, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`; otherwise the case says it is skipped and
//! passes). Every PostgreSQL case gets a fresh database of its own, dropped afterwards, so
//! cases run in parallel without seeing each other's rows.
//!
//! The concurrency cases run on a multi-threaded runtime with many tasks at once: that is
//! where the backends differ (one SQLite writer, many PostgreSQL writers) and where the rules
//! (one alert per dedupe key, one claim per queued alert, one re-send per leg) must still hold.

use std::{
    collections::{BTreeMap, HashSet},
    future::Future,
    panic::AssertUnwindSafe,
    str::FromStr,
    sync::Arc,
};

use chrono::{DateTime, Duration, TimeZone, Utc};
use dhanhook::{
    alert::{AmoTime, LegOrder, OrderType, Side, Validity, parse_signal},
    config::Mode,
    store::{
        Admission, AlertStatus, DedupeKey, Journal, JournalError, JournalLifecycle, LegDetail,
        LegStatus, LegUpdate, NewAlert, NewLeg, OrderRow, QueueSummary, ResolvedLeg, StoredToken,
        postgres::PgJournal, sqlite::SqliteJournal,
    },
};
use futures::FutureExt;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sqlx::{
    ConnectOptions, Connection,
    postgres::{PgConnectOptions, PgConnection},
};
use tokio::task::JoinSet;

mod lifecycle;
use lifecycle::{
    a_transition_is_journaled_with_its_time_source_and_detail,
    legs_to_track_are_the_open_legs_with_an_order_id,
};
mod claims;
mod outbox;
mod sending;
use claims::{
    a_claim_is_exclusive_until_its_holder_releases_it,
    a_stale_claim_is_recovered_for_another_runner, the_end_of_a_run_and_a_requeue_end_the_claim,
};
use outbox::{
    a_failed_message_is_retried_at_its_time_or_given_up,
    an_alerts_messages_are_claimed_in_order_by_one_holder,
};
use sending::the_days_sent_count_counts_each_leg_once;

// ---------------------------------------------------------------------------------------------
// Running a case on each backend
// ---------------------------------------------------------------------------------------------

/// The holder the single-runner queue cases claim as.
const RUNNER: &str = "runner-1";

pub(crate) const PG_URL_VAR: &str = "DHANHOOK_TEST_POSTGRES_URL";

/// PostgreSQL cases running at once. Each holds a pool of up to 8 connections plus one to
/// create its database; the server's default limit is 100 connections, and a machine with
/// many cores would otherwise run enough cases in parallel to exceed it.
static PG_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// Writes each case once as an `async fn(Arc<dyn Journal>)` and generates one test per backend.
macro_rules! contract {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::on_sqlite(super::$case).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::on_postgres(super::$case).await;
                }
            )+
        }
    };
}

contract!(
    admits_once_and_answers_redeliveries_as_duplicates,
    a_key_without_expiry_never_gives_way,
    an_expired_key_gives_way_to_a_new_alert,
    a_hundred_concurrent_deliveries_admit_exactly_one,
    concurrent_copies_of_the_same_alert_admit_exactly_one,
    concurrent_deliveries_after_expiry_admit_exactly_one_new_alert,
    concurrent_deliveries_with_skewed_clocks_are_all_answered,
    leg_statuses_move_only_along_legal_transitions,
    a_missing_leg_cannot_transition,
    every_field_of_a_leg_round_trips,
    recent_orders_are_newest_first_and_limited,
    legs_to_reconcile_are_received_submitting_and_unknown_oldest_first,
    a_resend_is_claimed_once,
    a_resend_is_claimed_once_under_concurrency,
    tokens_are_saved_loaded_and_overwritten,
    the_journal_is_writable,
    queued_alerts_are_claimed_when_due_oldest_first,
    twenty_runners_claim_each_due_alert_exactly_once,
    recover_claims_requeues_only_alerts_with_queued_legs,
    queue_summary_counts_and_lists_the_queue,
    a_claim_is_exclusive_until_its_holder_releases_it,
    the_end_of_a_run_and_a_requeue_end_the_claim,
    a_stale_claim_is_recovered_for_another_runner,
    an_alerts_messages_are_claimed_in_order_by_one_holder,
    a_failed_message_is_retried_at_its_time_or_given_up,
    a_transition_is_journaled_with_its_time_source_and_detail,
    legs_to_track_are_the_open_legs_with_an_order_id,
    the_days_sent_count_counts_each_leg_once,
);

async fn on_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn Journal>) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = format!("sqlite://{}", dir.path().join("journal.db").display());
    let journal = SqliteJournal::open(&url)
        .await
        .expect("the SQLite journal opens");
    journal
        .migrate()
        .await
        .expect("the SQLite migrations apply");
    let journal: Arc<dyn Journal> = Arc::new(journal);
    case(Arc::clone(&journal)).await;
    journal.close().await;
}

async fn on_postgres<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn Journal>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(server) = std::env::var(PG_URL_VAR).ok().filter(|v| !v.is_empty()) else {
        eprintln!("skipping PostgreSQL journal tests: {PG_URL_VAR} is not set");
        return;
    };
    let _slot = PG_SLOTS
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let db = TestDatabase::create(&server).await;
    let journal = PgJournal::open(&db.url)
        .await
        .expect("the PostgreSQL journal opens");
    journal
        .migrate()
        .await
        .expect("the PostgreSQL migrations apply");
    let journal: Arc<dyn Journal> = Arc::new(journal);
    // Catch a failing case so its database is dropped anyway, then fail as it did.
    let outcome = AssertUnwindSafe(case(Arc::clone(&journal)))
        .catch_unwind()
        .await;
    journal.close().await;
    db.drop().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A database of its own for one PostgreSQL case.
pub(crate) struct TestDatabase {
    server: PgConnectOptions,
    name: String,
    pub(crate) url: SecretString,
}

impl TestDatabase {
    pub(crate) async fn create(server_url: &str) -> Self {
        let server = PgConnectOptions::from_str(server_url)
            .unwrap_or_else(|e| panic!("{PG_URL_VAR} is not a PostgreSQL URL: {e}"));
        let name = format!("dhanhook_test_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect_with(&server)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the server named by {PG_URL_VAR}: {e}"));
        // Prefer a locale that does not sort like bytes (ICU en-US puts "a" before "B"), so the
        // ordering cases prove the journal does not depend on the server's locale. A server
        // without ICU (or without a C.UTF-8 locale) gets a database with its defaults.
        let icu = format!(
            "CREATE DATABASE {name} TEMPLATE template0 \
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        );
        if sqlx::raw_sql(sqlx::AssertSqlSafe(icu))
            .execute(&mut conn)
            .await
            .is_err()
        {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        }
        let _ = conn.close().await;
        let url = SecretString::from(server.clone().database(&name).to_url_lossy().to_string());
        Self { server, name, url }
    }

    /// Best effort: a leftover database is only clutter (its name says where it came from).
    pub(crate) async fn drop(self) {
        let Ok(mut conn) = PgConnection::connect_with(&self.server).await else {
            return;
        };
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
        {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
        let _ = conn.close().await;
    }
}

// ---------------------------------------------------------------------------------------------
// Opening the PostgreSQL journal from the settings (not part of the contract: SQLite's path is
// covered by every other test of this binary)
// ---------------------------------------------------------------------------------------------

/// A password recognisable in any message it might leak into.
const PG_PASSWORD: &str = "canary-pg-password-5d1c9e";

fn settings_with_database(url: &str, dir: &tempfile::TempDir) -> dhanhook::config::Settings {
    let env = std::collections::HashMap::from([
        ("DATA_DIR", dir.path().display().to_string()),
        (
            "WEBHOOK_SECRET",
            "canary-webhook-secret-7f3a9c2e5b1d4f60".to_owned(),
        ),
        ("INSTRUMENTS_URL", "off".to_owned()),
        ("DATABASE_URL", url.to_owned()),
    ]);
    dhanhook::config::Settings::from_lookup(|k| env.get(k).cloned()).expect("valid settings")
}

fn assert_no_password(err: &anyhow::Error) {
    for shown in [format!("{err}"), format!("{err:#}"), format!("{err:?}")] {
        assert!(
            !shown.contains(PG_PASSWORD),
            "the database password leaked: {shown}"
        );
    }
}

#[tokio::test]
async fn a_postgres_url_that_cannot_be_used_is_reported_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://dhanhook:{PG_PASSWORD}@127.0.0.1:notaport/dhanhook");
    let err = dhanhook::startup::open_journal(&settings_with_database(&url, &dir))
        .await
        .expect_err("a URL with a bad port cannot be opened");
    assert_no_password(&err);
}

#[tokio::test]
async fn open_journal_opens_and_migrates_a_postgres_journal() {
    let Some(server) = std::env::var(PG_URL_VAR).ok().filter(|v| !v.is_empty()) else {
        eprintln!("skipping PostgreSQL journal tests: {PG_URL_VAR} is not set");
        return;
    };
    let _slot = PG_SLOTS
        .acquire()
        .await
        .expect("the semaphore is never closed");
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(&server).await;

    let journal =
        dhanhook::startup::open_journal(&settings_with_database(db.url.expose_secret(), &dir))
            .await
            .expect("the PostgreSQL journal opens and migrates");
    journal.check_writable(t0()).await.unwrap();
    admitted(&journal, &alert("alert-1", t0())).await;
    journal.close().await;
    // Opening again (as a restart or a second instance does) finds the schema up to date.
    let again =
        dhanhook::startup::open_journal(&settings_with_database(db.url.expose_secret(), &dir))
            .await
            .expect("the PostgreSQL journal opens a second time");
    assert_eq!(record(&again, "alert-1").await.legs.len(), 1);
    again.close().await;

    // A server-side refusal (here: no such database) names the problem, never the password.
    let mut missing = PgConnectOptions::from_str(&server)
        .unwrap()
        .database("dhanhook_no_such_database")
        .password(PG_PASSWORD)
        .to_url_lossy();
    missing.set_query(None);
    let err = dhanhook::startup::open_journal(&settings_with_database(missing.as_str(), &dir))
        .await
        .expect_err("a missing database cannot be opened");
    assert!(
        format!("{err:#}").contains("dhanhook_no_such_database"),
        "{err:#}"
    );
    assert_no_password(&err);

    db.drop().await;
}

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// Tuesday 2026-12-01 10:00 IST.
pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 4, 30, 0).unwrap()
}

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

fn hours(n: i64) -> Duration {
    Duration::hours(n)
}

/// A plain market buy of one SBIN share, as the flat-format parser builds it.
fn leg_order() -> LegOrder {
    let body = json!({"symbol":"NSE:SBIN","action":"buy","quantity":1,"product":"intraday"});
    let signal = parse_signal(body.as_object().unwrap()).expect("a valid flat alert");
    signal.legs.into_iter().next().expect("one leg")
}

fn new_leg(alert_id: &str, leg_no: u32) -> NewLeg {
    NewLeg {
        leg_no,
        correlation_id: format!("{alert_id}-L{leg_no}"),
        order: leg_order(),
        resolved: ResolvedLeg {
            security_id: "3045".to_owned(),
            exchange_segment: "NSE_EQ".to_owned(),
            trading_symbol: "SBIN".to_owned(),
            lot_size: 1,
            units: 1,
        },
        refused: None,
    }
}

/// An alert with `legs` legs to be placed now, whose dedupe key `key` lives 60 s.
fn alert_with(id: &str, key: &str, at: DateTime<Utc>, legs: u32) -> NewAlert {
    NewAlert {
        id: id.to_owned(),
        received_at: at,
        client_ip: Some("203.0.113.7".to_owned()),
        format: "flat",
        alert_type: "flat".to_owned(),
        strategy: Some("ema-cross".to_owned()),
        dedupe: DedupeKey {
            key: key.to_owned(),
            expires_at: Some(at + secs(60)),
        },
        payload: r#"{"symbol":"NSE:SBIN","action":"buy","quantity":1}"#.to_owned(),
        mode: Mode::Paper,
        legs: (1..=legs).map(|n| new_leg(id, n)).collect(),
        route: r#"{"route":"now"}"#.to_owned(),
        queued_until: None,
        initial_status: LegStatus::Received,
        initial_message: None,
        on_leg_reject: dhanhook::domain::OnLegReject::Continue,
    }
}

/// A one-leg alert with its own dedupe key (its id).
pub(crate) fn alert(id: &str, at: DateTime<Utc>) -> NewAlert {
    alert_with(id, &format!("key-{id}"), at, 1)
}

/// An alert held in the queue until `until`.
fn queued(id: &str, at: DateTime<Utc>, until: DateTime<Utc>, legs: u32) -> NewAlert {
    NewAlert {
        route: format!(r#"{{"route":"queue","until":"{}"}}"#, until.to_rfc3339()),
        queued_until: Some(until),
        initial_status: LegStatus::Queued,
        initial_message: Some("queued until the market opens".to_owned()),
        ..alert_with(id, &format!("key-{id}"), at, legs)
    }
}

pub(crate) async fn admitted(journal: &Arc<dyn Journal>, alert: &NewAlert) {
    assert_eq!(
        journal.admit(alert).await.expect("admit"),
        Admission::Admitted,
        "alert {} is new",
        alert.id
    );
}

fn to(status: LegStatus) -> LegUpdate {
    LegUpdate {
        status,
        broker_order_id: None,
        fill_price: None,
        message: None,
    }
}

pub(crate) async fn move_leg(journal: &Arc<dyn Journal>, id: &str, leg: u32, status: LegStatus) {
    journal
        .update_leg(id, leg, &to(status), t0())
        .await
        .unwrap_or_else(|e| panic!("{id} leg {leg} → {status}: {e}"));
}

async fn record(journal: &Arc<dyn Journal>, id: &str) -> dhanhook::store::AlertRecord {
    journal
        .alert(id)
        .await
        .expect("alert readable")
        .unwrap_or_else(|| panic!("alert {id} exists"))
}

async fn leg_status(journal: &Arc<dyn Journal>, id: &str, leg: u32) -> LegStatus {
    let rec = record(journal, id).await;
    rec.legs
        .iter()
        .find(|l| l.leg == leg)
        .unwrap_or_else(|| panic!("{id} has leg {leg}"))
        .status
}

/// The queue's counts by status, keyed by the status's spelling (as `/queue-stats` shows them).
fn counts(summary: &QueueSummary) -> BTreeMap<String, i64> {
    summary
        .by_status
        .iter()
        .map(|(status, n)| (status.as_str().to_owned(), *n))
        .collect()
}

fn keys(rows: &[OrderRow]) -> Vec<(String, u32)> {
    rows.iter().map(|r| (r.alert_id.clone(), r.leg)).collect()
}

fn key(id: &str, leg: u32) -> (String, u32) {
    (id.to_owned(), leg)
}

// ---------------------------------------------------------------------------------------------
// Admission and dedupe
// ---------------------------------------------------------------------------------------------

async fn admits_once_and_answers_redeliveries_as_duplicates(journal: Arc<dyn Journal>) {
    let first = alert_with("alert-1", "k", t0(), 2);
    admitted(&journal, &first).await;

    // A redelivery gets a new id from the pipeline; the key is what makes it the same alert.
    let again = alert_with("alert-2", "k", t0() + secs(10), 2);
    assert_eq!(
        journal.admit(&again).await.unwrap(),
        Admission::Duplicate {
            alert_id: "alert-1".to_owned()
        }
    );
    // The very same alert again (same id too) is a duplicate as well, not an error.
    assert_eq!(
        journal.admit(&first).await.unwrap(),
        Admission::Duplicate {
            alert_id: "alert-1".to_owned()
        }
    );

    let rec = record(&journal, "alert-1").await;
    assert_eq!(rec.duplicates, 2);
    assert_eq!(rec.legs.len(), 2);
    assert!(
        journal.alert("alert-2").await.unwrap().is_none(),
        "a duplicate writes no alert"
    );
    assert!(journal.alert("no-such-alert").await.unwrap().is_none());
    let rows = journal.recent_orders(100).await.unwrap();
    assert_eq!(rows.len(), 2, "only the first delivery's legs");
    assert!(rows.iter().all(|r| r.duplicates == 2));
}

async fn a_key_without_expiry_never_gives_way(journal: Arc<dyn Journal>) {
    let mut first = alert_with("alert-1", "strategy:id-42", t0(), 1);
    first.dedupe.expires_at = None;
    admitted(&journal, &first).await;

    let mut much_later = alert_with("alert-2", "strategy:id-42", t0() + Duration::days(400), 1);
    much_later.dedupe.expires_at = None;
    assert_eq!(
        journal.admit(&much_later).await.unwrap(),
        Admission::Duplicate {
            alert_id: "alert-1".to_owned()
        }
    );
    assert_eq!(record(&journal, "alert-1").await.duplicates, 1);
}

async fn an_expired_key_gives_way_to_a_new_alert(journal: Arc<dyn Journal>) {
    // alert-1's key lives until t0 + 60 s: live strictly before that instant.
    admitted(&journal, &alert_with("alert-1", "k", t0(), 1)).await;
    let just_before = alert_with("alert-2", "k", t0() + Duration::milliseconds(59_999), 1);
    assert_eq!(
        journal.admit(&just_before).await.unwrap(),
        Admission::Duplicate {
            alert_id: "alert-1".to_owned()
        }
    );

    // At t0 + 60 s the key has expired: the same payload is a new alert, with a new key.
    admitted(&journal, &alert_with("alert-3", "k", t0() + secs(60), 1)).await;
    let after = alert_with("alert-4", "k", t0() + secs(61), 1);
    assert_eq!(
        journal.admit(&after).await.unwrap(),
        Admission::Duplicate {
            alert_id: "alert-3".to_owned()
        },
        "the new key points at the new alert"
    );

    assert_eq!(record(&journal, "alert-1").await.duplicates, 1);
    assert_eq!(record(&journal, "alert-3").await.duplicates, 1);
    assert_eq!(journal.recent_orders(100).await.unwrap().len(), 2);
}

/// Admits every alert at once; returns the answers.
async fn admit_concurrently(journal: &Arc<dyn Journal>, alerts: Vec<NewAlert>) -> Vec<Admission> {
    let mut tasks = JoinSet::new();
    for alert in alerts {
        let journal = Arc::clone(journal);
        tasks.spawn(async move { journal.admit(&alert).await });
    }
    let mut answers = Vec::new();
    while let Some(done) = tasks.join_next().await {
        answers.push(
            done.expect("admit task")
                .expect("no delivery is answered with an error"),
        );
    }
    answers
}

/// Exactly one answer is `Admitted` and every other one is a duplicate of `winner`.
fn assert_one_admitted(answers: &[Admission], winner: &str) {
    let admitted = answers
        .iter()
        .filter(|a| **a == Admission::Admitted)
        .count();
    assert_eq!(admitted, 1, "exactly one delivery is admitted: {answers:?}");
    let duplicate = Admission::Duplicate {
        alert_id: winner.to_owned(),
    };
    assert_eq!(
        answers.iter().filter(|a| **a == duplicate).count(),
        answers.len() - 1,
        "every other delivery is a duplicate of {winner}: {answers:?}"
    );
}

async fn a_hundred_concurrent_deliveries_admit_exactly_one(journal: Arc<dyn Journal>) {
    let alerts: Vec<NewAlert> = (0..100)
        .map(|i| alert_with(&format!("delivery-{i:03}"), "same-key", t0(), 2))
        .collect();
    let answers = admit_concurrently(&journal, alerts).await;

    let rows = journal.recent_orders(1000).await.unwrap();
    assert_eq!(rows.len(), 2, "one alert with two legs: {:?}", keys(&rows));
    let winner = rows[0].alert_id.clone();
    assert_one_admitted(&answers, &winner);
    let rec = record(&journal, &winner).await;
    assert_eq!(rec.duplicates, 99);
}

async fn concurrent_copies_of_the_same_alert_admit_exactly_one(journal: Arc<dyn Journal>) {
    let copy = alert_with("alert-1", "same-key", t0(), 1);
    let answers = admit_concurrently(&journal, vec![copy; 30]).await;
    assert_one_admitted(&answers, "alert-1");
    assert_eq!(record(&journal, "alert-1").await.duplicates, 29);
}

async fn concurrent_deliveries_after_expiry_admit_exactly_one_new_alert(journal: Arc<dyn Journal>) {
    admitted(&journal, &alert_with("old", "same-key", t0(), 1)).await;
    // Every delivery finds the old key expired; exactly one of them may replace it.
    let later = t0() + secs(120);
    let alerts: Vec<NewAlert> = (0..100)
        .map(|i| alert_with(&format!("delivery-{i:03}"), "same-key", later, 1))
        .collect();
    let answers = admit_concurrently(&journal, alerts).await;

    let rows = journal.recent_orders(1000).await.unwrap();
    assert_eq!(rows.len(), 2, "the old alert and one new one");
    let winner = rows
        .iter()
        .map(|r| r.alert_id.clone())
        .find(|id| id != "old")
        .unwrap();
    assert_one_admitted(&answers, &winner);
    assert_eq!(record(&journal, &winner).await.duplicates, 99);
    assert_eq!(record(&journal, "old").await.duplicates, 0);
}

async fn concurrent_deliveries_with_skewed_clocks_are_all_answered(journal: Arc<dyn Journal>) {
    // Two groups of instances whose clocks are 80 s apart, with a 60 s window: the later group
    // sees the earlier group's key as expired. Which group wins first is up to the scheduler,
    // so one or two alerts are admitted; what must hold is that every delivery is answered
    // (never an error) and every duplicate is counted on the alert it names.
    let alerts: Vec<NewAlert> = (0..100)
        .map(|i| {
            let at = t0() + secs(if i % 2 == 0 { 0 } else { 80 });
            alert_with(&format!("delivery-{i:03}"), "same-key", at, 1)
        })
        .collect();
    let answers = admit_concurrently(&journal, alerts).await;

    let admitted: HashSet<String> = journal
        .recent_orders(1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.alert_id)
        .collect();
    let firsts = answers
        .iter()
        .filter(|a| **a == Admission::Admitted)
        .count();
    assert_eq!(firsts, admitted.len(), "{answers:?}");
    assert!((1..=2).contains(&firsts), "{answers:?}");
    let mut counted = 0;
    for id in &admitted {
        let rec = record(&journal, id).await;
        let named = answers
            .iter()
            .filter(|a| matches!(a, Admission::Duplicate { alert_id } if alert_id == id))
            .count();
        assert_eq!(rec.duplicates, i64::try_from(named).unwrap(), "alert {id}");
        counted += named;
    }
    assert_eq!(
        counted + firsts,
        answers.len(),
        "every duplicate names an admitted alert"
    );
}

// ---------------------------------------------------------------------------------------------
// Leg transitions
// ---------------------------------------------------------------------------------------------

/// A way to bring a fresh leg to `target`: the status it is admitted in, then the legal
/// steps (breadth-first over `LegStatus::can_become`).
fn path_to(target: LegStatus) -> Vec<LegStatus> {
    let starts = [LegStatus::Received, LegStatus::Queued, LegStatus::Rejected];
    let mut paths: Vec<Vec<LegStatus>> = starts.iter().map(|s| vec![*s]).collect();
    let mut seen: HashSet<&str> = starts.iter().map(|s| s.as_str()).collect();
    let mut i = 0;
    while i < paths.len() {
        let path = paths[i].clone();
        let last = *path.last().unwrap();
        if last == target {
            return path;
        }
        for next in LegStatus::ALL {
            if last.can_become(next) && seen.insert(next.as_str()) {
                let mut longer = path.clone();
                longer.push(next);
                paths.push(longer);
            }
        }
        i += 1;
    }
    panic!("no status leads to {target}");
}

async fn leg_statuses_move_only_along_legal_transitions(journal: Arc<dyn Journal>) {
    // Every (from, to) pair: the journal allows exactly what LegStatus::can_become allows.
    let mut n = 0;
    for from in LegStatus::ALL {
        let path = path_to(from);
        for next in LegStatus::ALL {
            n += 1;
            let id = format!("alert-{n:03}");
            let mut new = alert(&id, t0());
            new.initial_status = path[0];
            admitted(&journal, &new).await;
            for step in &path[1..] {
                move_leg(&journal, &id, 1, *step).await;
            }
            assert_eq!(leg_status(&journal, &id, 1).await, from);

            let result = journal.update_leg(&id, 1, &to(next), t0()).await;
            if from.can_become(next) {
                assert!(result.is_ok(), "{from} → {next} is legal: {result:?}");
                assert_eq!(leg_status(&journal, &id, 1).await, next);
            } else {
                match result {
                    Err(JournalError::IllegalTransition {
                        alert_id,
                        leg_no,
                        to,
                    }) => {
                        assert_eq!((alert_id.as_str(), leg_no, to), (id.as_str(), 1, next));
                    }
                    other => panic!("{from} → {next} must be refused: {other:?}"),
                }
                assert_eq!(
                    leg_status(&journal, &id, 1).await,
                    from,
                    "a refused transition changes nothing"
                );
            }
        }
    }

    // The classic stale writer: a filled order must never go back to SUBMITTING.
    admitted(&journal, &alert("filled", t0())).await;
    for step in [
        LegStatus::Submitting,
        LegStatus::Accepted,
        LegStatus::Filled,
    ] {
        move_leg(&journal, "filled", 1, step).await;
    }
    let stale = journal
        .update_leg("filled", 1, &to(LegStatus::Submitting), t0())
        .await;
    assert!(
        matches!(stale, Err(JournalError::IllegalTransition { .. })),
        "{stale:?}"
    );
}

async fn a_missing_leg_cannot_transition(journal: Arc<dyn Journal>) {
    admitted(&journal, &alert("alert-1", t0())).await;
    for (id, leg) in [("alert-1", 2), ("no-such-alert", 1)] {
        let result = journal
            .update_leg(id, leg, &to(LegStatus::Submitting), t0())
            .await;
        assert!(
            matches!(result, Err(JournalError::IllegalTransition { .. })),
            "{id} leg {leg}: {result:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What is read back
// ---------------------------------------------------------------------------------------------

/// The row `admit` should produce for `leg` of `alert`, before any update.
fn expected_row(alert: &NewAlert, leg: &NewLeg) -> OrderRow {
    let o = &leg.order;
    OrderRow {
        alert_id: alert.id.clone(),
        received_at: alert.received_at,
        strategy: alert.strategy.clone(),
        client_ip: alert.client_ip.clone(),
        duplicates: 0,
        leg: leg.leg_no,
        correlation_id: leg.correlation_id.clone(),
        symbol: o.symbol.clone(),
        exchange: o.exchange,
        side: o.side,
        quantity: i64::from(o.quantity),
        order_type: o.order_type,
        product: o.product,
        validity: o.validity,
        price: o.price,
        trigger_price: o.trigger_price,
        amo: o.amo,
        amo_time: o.amo_time,
        closes: o.closes,
        security_id: Some(leg.resolved.security_id.clone()),
        exchange_segment: Some(leg.resolved.exchange_segment.clone()),
        trading_symbol: Some(leg.resolved.trading_symbol.clone()),
        units: Some(i64::from(leg.resolved.units)),
        lot_size: Some(i64::from(leg.resolved.lot_size)),
        mode: alert.mode,
        status: alert.initial_status,
        order_id: None,
        fill_price: None,
        message: alert.initial_message.clone(),
        detail: LegDetail::default(),
        updated_at: alert.received_at,
    }
}

/// Compares every field (OrderRow has no PartialEq; its JSON form shows every field).
fn assert_rows_eq(actual: &[OrderRow], expected: &[OrderRow]) {
    let actual = serde_json::to_value(actual).unwrap();
    let expected = serde_json::to_value(expected).unwrap();
    assert_eq!(actual, expected);
}

async fn every_field_of_a_leg_round_trips(journal: Arc<dyn Journal>) {
    // Two legs exercising every column: a limit AMO sell of NIFTY futures lots with
    // prices that are not exact in binary, and a stop-loss leg.
    let mut full = alert_with("alert-full", "k-full", t0(), 2);
    full.mode = Mode::Live;
    full.initial_message = Some("received; market is open".to_owned());
    {
        let leg = &mut full.legs[0];
        leg.order.side = Side::Sell;
        leg.order.quantity = 2;
        leg.order.order_type = OrderType::Limit;
        leg.order.validity = Validity::Ioc;
        leg.order.price = Some(24_567.05);
        leg.order.amo = true;
        leg.order.amo_time = Some(AmoTime::Open30);
        leg.resolved = ResolvedLeg {
            security_id: "35001".to_owned(),
            exchange_segment: "NSE_FNO".to_owned(),
            trading_symbol: "NIFTY-Dec2026-FUT".to_owned(),
            lot_size: 75,
            units: 150,
        };
    }
    {
        let leg = &mut full.legs[1];
        leg.order.order_type = OrderType::StopLoss;
        leg.order.price = Some(0.1 + 0.2);
        leg.order.trigger_price = Some(812.35);
    }
    admitted(&journal, &full).await;

    // NULLs where the alert had nothing.
    let mut bare = alert("alert-bare", t0() + secs(1));
    bare.client_ip = None;
    bare.strategy = None;
    admitted(&journal, &bare).await;

    let mut expected: Vec<OrderRow> = full.legs.iter().map(|l| expected_row(&full, l)).collect();
    assert_rows_eq(&record(&journal, "alert-full").await.legs, &expected);
    assert_rows_eq(
        &record(&journal, "alert-bare").await.legs,
        &[expected_row(&bare, &bare.legs[0])],
    );

    // Updates: values are kept when a later update leaves them out (COALESCE).
    let t1 = t0() + secs(2);
    let t2 = t0() + secs(3);
    let t3 = t0() + secs(4);
    move_leg(&journal, "alert-full", 1, LegStatus::Submitting).await;
    let accepted = LegUpdate {
        status: LegStatus::Accepted,
        broker_order_id: Some("112111182198".to_owned()),
        fill_price: None,
        message: Some("TRANSIT".to_owned()),
    };
    journal
        .update_leg("alert-full", 1, &accepted, t1)
        .await
        .unwrap();
    let filled = LegUpdate {
        status: LegStatus::Filled,
        broker_order_id: None,
        fill_price: Some(24_567.15),
        message: None,
    };
    journal
        .update_leg("alert-full", 1, &filled, t2)
        .await
        .unwrap();
    let rejected = LegUpdate {
        status: LegStatus::Rejected,
        broker_order_id: None,
        fill_price: None,
        message: Some("RMS: margin exceeds".to_owned()),
    };
    journal
        .update_leg("alert-full", 2, &rejected, t3)
        .await
        .unwrap();
    journal
        .set_alert_status("alert-full", AlertStatus::Partial, t3)
        .await
        .unwrap();
    // A redelivery shows on every leg of the alert.
    let again = alert_with("alert-again", "k-full", t0() + secs(5), 2);
    assert_eq!(
        journal.admit(&again).await.unwrap(),
        Admission::Duplicate {
            alert_id: "alert-full".to_owned()
        }
    );

    expected[0].status = LegStatus::Filled;
    expected[0].order_id = Some("112111182198".to_owned());
    expected[0].fill_price = Some(24_567.15);
    expected[0].message = Some("TRANSIT".to_owned());
    expected[0].updated_at = t2;
    expected[1].status = LegStatus::Rejected;
    expected[1].message = Some("RMS: margin exceeds".to_owned());
    expected[1].updated_at = t3;
    for row in &mut expected {
        row.duplicates = 1;
    }

    let rec = record(&journal, "alert-full").await;
    assert_eq!(rec.id, "alert-full");
    assert_eq!(rec.received_at, t0());
    assert_eq!(rec.alert_type, "flat");
    assert_eq!(rec.route.as_deref(), Some(r#"{"route":"now"}"#));
    assert_eq!(rec.queued_until, None);
    assert_eq!(rec.mode.as_str(), "live");
    assert_eq!(rec.status.as_str(), "partial");
    assert_eq!(rec.duplicates, 1);
    assert_rows_eq(&rec.legs, &expected);

    // recent_orders: newest first, the same rows.
    let mut newest_first = vec![expected_row(&bare, &bare.legs[0])];
    newest_first.extend(expected.into_iter().rev());
    assert_rows_eq(&journal.recent_orders(10).await.unwrap(), &newest_first);

    // A queued alert keeps its instant and route.
    let until = t0() + Duration::hours(20);
    let q = queued("alert-queued", t0(), until, 1);
    admitted(&journal, &q).await;
    let rec = record(&journal, "alert-queued").await;
    assert_eq!(rec.queued_until, Some(until));
    assert_eq!(rec.status.as_str(), "queued");
    assert_eq!(rec.route.as_deref(), Some(q.route.as_str()));
    assert_eq!(rec.legs[0].status, LegStatus::Queued);
    assert_eq!(
        rec.legs[0].message.as_deref(),
        Some("queued until the market opens")
    );
}

async fn recent_orders_are_newest_first_and_limited(journal: Arc<dyn Journal>) {
    admitted(&journal, &alert_with("x", "kx", t0(), 2)).await;
    admitted(&journal, &alert("y", t0() + secs(1))).await;
    // Same instant: ties are broken by alert id in byte order ('B' < 'a'), as SQLite's BINARY
    // collation does, whatever the PostgreSQL server's locale.
    admitted(&journal, &alert("alert-B", t0() + secs(2))).await;
    admitted(&journal, &alert("alert-a", t0() + secs(2))).await;

    let all = keys(&journal.recent_orders(100).await.unwrap());
    assert_eq!(
        all,
        vec![
            key("alert-a", 1),
            key("alert-B", 1),
            key("y", 1),
            key("x", 2),
            key("x", 1)
        ]
    );
    assert_eq!(
        keys(&journal.recent_orders(3).await.unwrap()),
        all[..3].to_vec()
    );
    assert!(journal.recent_orders(0).await.unwrap().is_empty());
}

async fn legs_to_reconcile_are_received_submitting_and_unknown_oldest_first(
    journal: Arc<dyn Journal>,
) {
    assert!(journal.legs_to_reconcile(10).await.unwrap().is_empty());
    // b (t0): leg 1 UNKNOWN, leg 2 SUBMITTING; B (t0, sorts before b): leg 1 SUBMITTING;
    // c (t0+1): UNKNOWN; "received" (t0+2): RECEIVED, maybe interrupted before sending;
    // then legs that are not in doubt.
    admitted(&journal, &alert_with("b", "kb", t0(), 2)).await;
    admitted(&journal, &alert("B", t0())).await;
    admitted(&journal, &alert("c", t0() + secs(1))).await;
    admitted(&journal, &alert("received", t0() + secs(2))).await;
    admitted(&journal, &alert("filled", t0() + secs(3))).await;
    admitted(&journal, &alert("attention", t0() + secs(4))).await;
    admitted(&journal, &queued("queued", t0(), t0() + secs(60), 1)).await;

    for (id, leg, path) in [
        ("b", 1, &[LegStatus::Submitting, LegStatus::Unknown][..]),
        ("b", 2, &[LegStatus::Submitting][..]),
        ("B", 1, &[LegStatus::Submitting][..]),
        ("c", 1, &[LegStatus::Submitting, LegStatus::Unknown][..]),
        ("filled", 1, &[LegStatus::Submitting, LegStatus::Filled][..]),
        (
            "attention",
            1,
            &[
                LegStatus::Submitting,
                LegStatus::Unknown,
                LegStatus::NeedsAttention,
            ][..],
        ),
    ] {
        for step in path {
            move_leg(&journal, id, leg, *step).await;
        }
    }

    let legs = journal.legs_to_reconcile(10).await.unwrap();
    assert_eq!(
        keys(&legs),
        vec![
            key("B", 1),
            key("b", 1),
            key("b", 2),
            key("c", 1),
            key("received", 1)
        ]
    );
    assert_eq!(legs[1].status, LegStatus::Unknown);
    assert_eq!(legs[2].status, LegStatus::Submitting);
    assert_eq!(
        keys(&journal.legs_to_reconcile(2).await.unwrap()),
        vec![key("B", 1), key("b", 1)]
    );
}

// ---------------------------------------------------------------------------------------------
// Re-sends, tokens, heartbeat
// ---------------------------------------------------------------------------------------------

async fn a_resend_is_claimed_once(journal: Arc<dyn Journal>) {
    admitted(&journal, &alert_with("alert-1", "k", t0(), 2)).await;
    assert!(journal.claim_resend("alert-1", 1).await.unwrap());
    assert!(!journal.claim_resend("alert-1", 1).await.unwrap());
    assert!(!journal.claim_resend("alert-1", 1).await.unwrap());
    assert!(
        journal.claim_resend("alert-1", 2).await.unwrap(),
        "each leg has its own"
    );
    assert!(!journal.claim_resend("alert-1", 3).await.unwrap());
    assert!(!journal.claim_resend("no-such-alert", 1).await.unwrap());
}

async fn a_resend_is_claimed_once_under_concurrency(journal: Arc<dyn Journal>) {
    admitted(&journal, &alert("alert-1", t0())).await;
    let mut tasks = JoinSet::new();
    for _ in 0..20 {
        let journal = Arc::clone(&journal);
        tasks.spawn(async move { journal.claim_resend("alert-1", 1).await });
    }
    let mut granted = 0;
    while let Some(done) = tasks.join_next().await {
        if done.unwrap().expect("claim_resend") {
            granted += 1;
        }
    }
    assert_eq!(granted, 1);
}

async fn tokens_are_saved_loaded_and_overwritten(journal: Arc<dyn Journal>) {
    assert!(journal.load_token("1000000001").await.unwrap().is_none());

    let first = StoredToken {
        client_id: "1000000001".to_owned(),
        token: SecretString::from("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.first"),
        expires_at: t0() + Duration::hours(24),
        source: "minted".to_owned(),
        obtained_at: t0(),
    };
    journal.save_token(&first).await.unwrap();
    let other = StoredToken {
        client_id: "1000000002".to_owned(),
        token: SecretString::from("other-client-token"),
        source: "env".to_owned(),
        ..first.clone()
    };
    journal.save_token(&other).await.unwrap();

    let loaded = journal.load_token("1000000001").await.unwrap().unwrap();
    assert_eq!(loaded.client_id, first.client_id);
    assert_eq!(loaded.token.expose_secret(), first.token.expose_secret());
    assert_eq!(loaded.expires_at, first.expires_at);
    assert_eq!(loaded.source, "minted");
    assert_eq!(loaded.obtained_at, first.obtained_at);

    let renewed = StoredToken {
        client_id: "1000000001".to_owned(),
        token: SecretString::from("eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzUxMiJ9.renewed"),
        expires_at: t0() + Duration::hours(48) + Duration::milliseconds(123),
        source: "renewed".to_owned(),
        obtained_at: t0() + Duration::hours(24),
    };
    journal.save_token(&renewed).await.unwrap();
    let loaded = journal.load_token("1000000001").await.unwrap().unwrap();
    assert_eq!(loaded.token.expose_secret(), renewed.token.expose_secret());
    assert_eq!(loaded.expires_at, renewed.expires_at);
    assert_eq!(loaded.source, "renewed");
    assert_eq!(loaded.obtained_at, renewed.obtained_at);

    let untouched = journal.load_token("1000000002").await.unwrap().unwrap();
    assert_eq!(untouched.token.expose_secret(), "other-client-token");
    assert_eq!(untouched.source, "env");
}

async fn the_journal_is_writable(journal: Arc<dyn Journal>) {
    journal.check_writable(t0()).await.unwrap();
    journal.check_writable(t0() + secs(5)).await.unwrap();
    let mut tasks = JoinSet::new();
    for i in 0..10 {
        let journal = Arc::clone(&journal);
        tasks.spawn(async move { journal.check_writable(t0() + secs(10 + i)).await });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap()
            .expect("concurrent readiness checks all succeed");
    }
}

// ---------------------------------------------------------------------------------------------
// The queue
// ---------------------------------------------------------------------------------------------

async fn queued_alerts_are_claimed_when_due_oldest_first(journal: Arc<dyn Journal>) {
    assert_eq!(journal.next_queued_at().await.unwrap(), None);
    assert_eq!(journal.claim_due(RUNNER, t0()).await.unwrap(), None);

    admitted(&journal, &queued("q-late", t0(), t0() + hours(2), 1)).await;
    admitted(
        &journal,
        &queued("q-old", t0() + secs(60), t0() + hours(1), 1),
    )
    .await;
    admitted(
        &journal,
        &queued("q-new", t0() + secs(120), t0() + hours(1), 2),
    )
    .await;
    // Same instant: byte order of ids ('B' < 'a').
    admitted(
        &journal,
        &queued("tie-a", t0() + secs(180), t0() + hours(1), 1),
    )
    .await;
    admitted(
        &journal,
        &queued("tie-B", t0() + secs(180), t0() + hours(1), 1),
    )
    .await;
    admitted(&journal, &alert("not-queued", t0())).await;

    assert_eq!(
        journal.next_queued_at().await.unwrap(),
        Some(t0() + hours(1))
    );
    assert_eq!(
        journal
            .claim_due(RUNNER, t0() + hours(1) - secs(1))
            .await
            .unwrap(),
        None,
        "nothing is due yet"
    );
    let mut claimed = Vec::new();
    while let Some(id) = journal.claim_due(RUNNER, t0() + hours(1)).await.unwrap() {
        claimed.push(id);
    }
    assert_eq!(claimed, vec!["q-old", "q-new", "tie-B", "tie-a"]);
    assert_eq!(
        record(&journal, "q-old").await.status.as_str(),
        "processing"
    );
    assert_eq!(
        record(&journal, "q-old").await.legs[0].status,
        LegStatus::Queued,
        "claiming moves the alert, not its legs"
    );
    assert_eq!(
        journal.next_queued_at().await.unwrap(),
        Some(t0() + hours(2))
    );

    // Requeue: back in the queue until its new instant.
    journal
        .requeue("q-old", t0() + hours(5), t0() + hours(3))
        .await
        .unwrap();
    let rec = record(&journal, "q-old").await;
    assert_eq!(rec.status.as_str(), "queued");
    assert_eq!(rec.queued_until, Some(t0() + hours(5)));

    assert_eq!(
        journal
            .claim_due(RUNNER, t0() + hours(3))
            .await
            .unwrap()
            .as_deref(),
        Some("q-late")
    );
    assert_eq!(
        journal.next_queued_at().await.unwrap(),
        Some(t0() + hours(5))
    );
    assert_eq!(
        journal.claim_due(RUNNER, t0() + hours(4)).await.unwrap(),
        None
    );
    assert_eq!(
        journal
            .claim_due(RUNNER, t0() + hours(5))
            .await
            .unwrap()
            .as_deref(),
        Some("q-old")
    );
    assert_eq!(journal.next_queued_at().await.unwrap(), None);
    assert_eq!(
        journal.claim_due(RUNNER, t0() + hours(9)).await.unwrap(),
        None
    );
}

async fn twenty_runners_claim_each_due_alert_exactly_once(journal: Arc<dyn Journal>) {
    let due = t0() + Duration::hours(1);
    let mut ids = Vec::new();
    for i in 0..60 {
        let id = format!("q-{i:03}");
        admitted(&journal, &queued(&id, t0() + secs(i), due, 1)).await;
        ids.push(id);
    }
    // One that is not due must stay.
    admitted(&journal, &queued("later", t0(), due + secs(1), 1)).await;

    let mut runners = JoinSet::new();
    for r in 0..20 {
        let journal = Arc::clone(&journal);
        let runner = format!("runner-{r}");
        runners.spawn(async move {
            let mut mine = Vec::new();
            while let Some(id) = journal.claim_due(&runner, due).await.expect("claim_due") {
                mine.push(id);
            }
            mine
        });
    }
    let mut claimed = Vec::new();
    while let Some(done) = runners.join_next().await {
        claimed.extend(done.unwrap());
    }
    claimed.sort();
    assert_eq!(claimed, ids, "every due alert claimed exactly once");
    assert_eq!(journal.next_queued_at().await.unwrap(), Some(due + secs(1)));
    let summary = journal.queue_summary(100).await.unwrap();
    assert_eq!(
        counts(&summary),
        BTreeMap::from([("processing".to_owned(), 60), ("queued".to_owned(), 1)])
    );
}

async fn recover_claims_requeues_only_alerts_with_queued_legs(journal: Arc<dyn Journal>) {
    let due = t0() + Duration::hours(1);
    // Claimed, legs never sent: a crashed run's claim, recovered.
    admitted(&journal, &queued("untouched-legs", t0(), due, 2)).await;
    // Claimed, one leg sent, the other not yet: recovered (it still has a QUEUED leg).
    admitted(&journal, &queued("half-sent", t0() + secs(1), due, 2)).await;
    // Claimed, every leg on its way: not recovered (re-running could place them twice).
    admitted(&journal, &queued("sent", t0() + secs(2), due, 1)).await;
    // Still queued, not claimed: not counted.
    admitted(
        &journal,
        &queued("waiting", t0() + secs(3), due + secs(60), 1),
    )
    .await;
    // Never queued, in flight: not the queue's business.
    admitted(&journal, &alert("placed-now", t0())).await;

    for _ in 0..3 {
        assert!(journal.claim_due(RUNNER, due).await.unwrap().is_some());
    }
    move_leg(&journal, "half-sent", 1, LegStatus::Submitting).await;
    move_leg(&journal, "sent", 1, LegStatus::Submitting).await;

    let later = due + secs(30);
    // The reconciler settling a leg refreshes the alert's status after the claim; the claim's
    // age is still the claim's, or a restarted run would wait on its own dead claim.
    journal
        .set_alert_status("half-sent", AlertStatus::Processing, later)
        .await
        .unwrap();
    // Claims made at `due` are not older than `due`: a live run could own them.
    assert_eq!(
        journal.recover_claims(due, later).await.unwrap(),
        0,
        "fresh claims are left alone"
    );
    assert_eq!(journal.recover_claims(later, later).await.unwrap(), 2);
    let status = |id: &'static str| {
        let journal = Arc::clone(&journal);
        async move { record(&journal, id).await.status.as_str() }
    };
    assert_eq!(status("untouched-legs").await, "queued");
    assert_eq!(status("half-sent").await, "queued");
    assert_eq!(status("sent").await, "processing");
    assert_eq!(status("waiting").await, "queued");
    assert_eq!(status("placed-now").await, "processing");
    assert_eq!(
        leg_status(&journal, "half-sent", 1).await,
        LegStatus::Submitting,
        "legs are not touched"
    );
    assert_eq!(
        journal.recover_claims(later, later).await.unwrap(),
        0,
        "nothing left to recover"
    );
    // Recovered alerts are claimable again, oldest first.
    assert_eq!(
        journal.claim_due(RUNNER, later).await.unwrap().as_deref(),
        Some("untouched-legs")
    );
}

async fn queue_summary_counts_and_lists_the_queue(journal: Arc<dyn Journal>) {
    let empty = journal.queue_summary(10).await.unwrap();
    assert!(empty.by_status.is_empty());
    assert_eq!(empty.next_due, None);
    assert!(empty.pending.is_empty());

    let due = t0() + Duration::hours(1);
    admitted(&journal, &queued("q-1", t0(), due, 1)).await;
    admitted(&journal, &queued("q-2", t0() + secs(1), due, 1)).await;
    let mut third = queued("q-3", t0() + secs(2), due + secs(60), 1);
    third.strategy = None;
    admitted(&journal, &third).await;
    admitted(&journal, &queued("q-4", t0() + secs(3), due + secs(120), 1)).await;
    admitted(&journal, &alert("not-queued", t0())).await;

    // q-1 and q-2 claimed; q-1 then placed; q-2 stays in flight.
    assert_eq!(
        journal.claim_due(RUNNER, due).await.unwrap().as_deref(),
        Some("q-1")
    );
    assert_eq!(
        journal.claim_due(RUNNER, due).await.unwrap().as_deref(),
        Some("q-2")
    );
    journal
        .set_alert_status("q-1", AlertStatus::Placed, due)
        .await
        .unwrap();

    let summary = journal.queue_summary(10).await.unwrap();
    assert_eq!(
        counts(&summary),
        BTreeMap::from([
            ("placed".to_owned(), 1),
            ("processing".to_owned(), 1),
            ("queued".to_owned(), 2),
        ]),
        "only alerts that were ever queued"
    );
    assert_eq!(summary.next_due, Some(due + secs(60)));
    let pending: Vec<(&str, &str)> = summary
        .pending
        .iter()
        .map(|p| (p.alert_id.as_str(), p.status.as_str()))
        .collect();
    assert_eq!(
        pending,
        vec![("q-2", "processing"), ("q-3", "queued"), ("q-4", "queued")]
    );
    let q2 = &summary.pending[0];
    assert_eq!(q2.received_at, t0() + secs(1));
    assert_eq!(q2.queued_until, Some(due));
    assert_eq!(q2.strategy.as_deref(), Some("ema-cross"));
    assert_eq!(summary.pending[1].strategy, None);
    assert_eq!(summary.pending[1].queued_until, Some(due + secs(60)));

    let limited = journal.queue_summary(1).await.unwrap();
    assert_eq!(limited.pending.len(), 1);
    assert_eq!(limited.pending[0].alert_id, "q-2");
    assert_eq!(
        limited.by_status, summary.by_status,
        "counts are not limited"
    );
}
