//! `spawn_app`: the real application on 127.0.0.1:0 with a temporary data folder, a manual
//! clock and obviously fake secrets; plus helpers to read what a user would observe (HTTP
//! answers, journal rows, CSV lines).

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use chrono::{TimeZone, Utc};
use dhanhook::{
    clock::ManualClock,
    config::Settings,
    startup::Application,
    store::{Journal, OrderRow, sqlite::SqliteJournal},
};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::{sync::oneshot, task::JoinHandle};

/// Fake values, recognisable in any output they might leak into.
pub const SECRET: &str = "canary-webhook-secret-7f3a9c2e5b1d4f60";
pub const ADMIN_TOKEN: &str = "canary-admin-token-2b8e6d4a1c9f7e35";
/// base64 of 32 bytes: `canary-token-key-for-tests-only!`.
pub const TEST_TOKEN_KEY: &str = "Y2FuYXJ5LXRva2VuLWtleS1mb3ItdGVzdHMtb25seSE=";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: ManualClock,
    /// Kept alive for the app's lifetime; shared so a restart can reuse the folder.
    pub dir: Arc<TempDir>,
    /// The journal's URL when not the default SQLite file (PostgreSQL runs).
    pub database_url: Option<String>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

/// An IST wall-clock time as UTC.
pub fn ist_time(y: i32, m: u32, d: u32, h: u32, min: u32) -> chrono::DateTime<Utc> {
    dhanhook::clock::ist_offset()
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

/// A time inside NSE market hours (Tuesday 2026-12-01 10:00 IST) for a deterministic start.
pub fn market_time() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 4, 30, 0).unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Arc::new(tempfile::tempdir().unwrap()), &[]).await
}

/// Starts the app in `dir` with the default test settings overridden by `vars`
/// (a value of `""` removes a default, e.g. `("WEBHOOK_SECRET", "")`).
pub async fn spawn_app_with(dir: Arc<TempDir>, vars: &[(&str, &str)]) -> TestApp {
    spawn_app_at(dir, vars, market_time()).await
}

/// Like [`spawn_app_with`], with the app's clock starting at `start`.
pub async fn spawn_app_at(
    dir: Arc<TempDir>,
    vars: &[(&str, &str)],
    start: chrono::DateTime<Utc>,
) -> TestApp {
    let mut env: HashMap<String, String> = HashMap::from([
        ("HOST".to_owned(), "127.0.0.1".to_owned()),
        ("PORT".to_owned(), "0".to_owned()),
        ("DATA_DIR".to_owned(), dir.path().display().to_string()),
        ("WEBHOOK_SECRET".to_owned(), SECRET.to_owned()),
        ("ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
        // Tests never reach the network: paper mode uses the built-in sample scrip master.
        ("INSTRUMENTS_URL".to_owned(), "off".to_owned()),
        // A loaded CI machine must not turn a 200 into a 202; the deadline has its own test.
        ("ACK_DEADLINE_MS".to_owned(), "30000".to_owned()),
        // One (fake) key for every instance of a test, as a PostgreSQL journal needs.
        ("TOKEN_KEY".to_owned(), TEST_TOKEN_KEY.to_owned()),
    ]);
    if let Some(url) = test_database_url(&dir).await {
        env.insert("DATABASE_URL".to_owned(), url);
    }
    for (k, v) in vars {
        env.insert((*k).to_owned(), (*v).to_owned());
    }
    let settings = Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings are valid");
    let database_url = env.get("DATABASE_URL").cloned();
    let clock = ManualClock::new(start);
    let app = Application::build(settings, Arc::new(clock.clone()))
        .await
        .expect("the app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        client: http_client(),
        clock,
        dir,
        database_url,
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// The backend the API tests run against: SQLite (the default), or PostgreSQL when
/// `DHANHOOK_TEST_BACKEND=postgres` (with `DHANHOOK_TEST_POSTGRES_URL` naming the server), so
/// the same suite proves both. Each data folder gets its own database, remembered in the
/// folder so a restart in the same folder finds the same journal.
pub async fn test_database_url(dir: &TempDir) -> Option<String> {
    if std::env::var("DHANHOOK_TEST_BACKEND").ok().as_deref() != Some("postgres") {
        return None;
    }
    let server = std::env::var(crate::journal_contract::PG_URL_VAR)
        .expect("DHANHOOK_TEST_BACKEND=postgres needs DHANHOOK_TEST_POSTGRES_URL");
    let remembered = dir.path().join(".test_database_url");
    if let Ok(url) = std::fs::read_to_string(&remembered) {
        return Some(url);
    }
    let db = crate::journal_contract::TestDatabase::create(&server).await;
    let url = secrecy::ExposeSecret::expose_secret(&db.url).to_owned();
    std::fs::write(&remembered, &url).expect("remember the test database");
    Some(url)
}

/// Runs raw SQL on the journal of the data folder `dir` (SQLite file or PostgreSQL database),
/// to put it in a state a test needs (a crash's leftovers, a refusing disk).
pub async fn journal_sql(dir: &TempDir, sql: &str) {
    use sqlx::Executor;
    let remembered = dir.path().join(".test_database_url");
    match std::fs::read_to_string(&remembered) {
        Ok(url) => {
            let pool = sqlx::PgPool::connect(&url).await.expect("test database");
            pool.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())))
                .await
                .expect("journal SQL");
            pool.close().await;
        }
        Err(_) => {
            let url = format!("sqlite://{}", dir.path().join("dhanhook.db").display());
            let pool = sqlx::SqlitePool::connect(&url)
                .await
                .expect("test database");
            pool.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())))
                .await
                .expect("journal SQL");
            pool.close().await;
        }
    }
}

/// Makes the journal refuse `event` (`INSERT` or `UPDATE`) on `table`, as a full disk would.
/// File modes do not stop root (tests may run as root), so a trigger makes the database itself
/// refuse; [`allow_writes`] lifts it.
pub async fn refuse_writes(dir: &TempDir, table: &str, event: &str) {
    let name = trigger_name(table, event);
    let sql = if on_postgres() {
        format!(
            "CREATE OR REPLACE FUNCTION refuse_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$;
             CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION refuse_write();"
        )
    } else {
        format!(
            "CREATE TRIGGER {name} BEFORE {event} ON {table} BEGIN SELECT RAISE(ABORT, 'disk full'); END;"
        )
    };
    journal_sql(dir, &sql).await;
}

pub async fn allow_writes(dir: &TempDir, table: &str, event: &str) {
    let name = trigger_name(table, event);
    let sql = if on_postgres() {
        format!("DROP TRIGGER {name} ON {table};")
    } else {
        format!("DROP TRIGGER {name};")
    };
    journal_sql(dir, &sql).await;
}

fn trigger_name(table: &str, event: &str) -> String {
    format!("refuse_{table}_{}", event.to_ascii_lowercase())
}

/// A stalled journal: another connection holds a transaction that blocks every insert into
/// `alerts` (as a long lock, a slow disk or a slow network to PostgreSQL would) until
/// [`JournalStall::release`]. Reads still work.
pub enum JournalStall {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

pub async fn stall_journal(dir: &TempDir) -> JournalStall {
    use sqlx::{Connection, Executor};
    match std::fs::read_to_string(dir.path().join(".test_database_url")) {
        Ok(url) => {
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .expect("test database");
            conn.execute("BEGIN; LOCK TABLE alerts IN SHARE ROW EXCLUSIVE MODE")
                .await
                .expect("lock the alerts table");
            JournalStall::Postgres(conn)
        }
        Err(_) => {
            let url = format!("sqlite://{}", dir.path().join("dhanhook.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&url)
                .await
                .expect("test database");
            conn.execute("BEGIN IMMEDIATE")
                .await
                .expect("take the write lock");
            JournalStall::Sqlite(conn)
        }
    }
}

impl JournalStall {
    pub async fn release(self) {
        use sqlx::{Connection, Executor};
        match self {
            JournalStall::Sqlite(mut c) => {
                c.execute("ROLLBACK").await.expect("release");
                c.close().await.expect("close");
            }
            JournalStall::Postgres(mut c) => {
                c.execute("ROLLBACK").await.expect("release");
                c.close().await.expect("close");
            }
        }
    }
}

/// Whether the API tests run on PostgreSQL (see [`test_database_url`]).
pub fn on_postgres() -> bool {
    std::env::var("DHANHOOK_TEST_BACKEND").ok().as_deref() == Some("postgres")
}

/// A reqwest client for tests. reqwest is built with `rustls-no-provider` (dhanhook picks the
/// ring provider at run time), so the provider is installed before any client exists.
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A valid flat-format alert with the test secret.
pub fn flat_alert() -> Value {
    json!({"secret": SECRET, "symbol": "NSE:RELIANCE", "action": "buy", "quantity": "1",
           "product": "intraday", "price": "2500.5"})
}

/// A valid Dhan-format alert (as Dhan's web UI writes it) with the test secret. (Its CNC leg
/// is a BUY: a delivery SELL needs holdings, which a paper session has none of.)
pub fn dhan_alert() -> Value {
    json!({"secret": SECRET, "alertType": "multi_leg_order", "order_legs": [
        {"transactionType":"B","orderType":"LMT","quantity":"5","exchange":"NSE","symbol":"TCS",
         "instrument":"EQ","productType":"C","sort_order":"2","price":"4100.25"},
        {"transactionType":"B","orderType":"MKT","quantity":"10","exchange":"NSE","symbol":"INFY",
         "instrument":"EQ","productType":"I","sort_order":"1","price":"0"}],
      "meta": {"interval":"5","time":"2026-12-01T04:25:00Z","timenow":"2026-12-01T04:30:01Z"}})
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post_webhook(&self, body: &Value) -> reqwest::Response {
        self.post_raw(body.to_string(), "application/json").await
    }

    pub async fn post_raw(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/webhook"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// `POST path` with the test admin token.
    pub async fn post_admin(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn get_admin(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Every order leg in the journal, read straight from the database file.
    pub async fn journal_orders(&self) -> Vec<OrderRow> {
        let journal: Box<dyn Journal> = match &self.database_url {
            Some(url) if url.starts_with("postgres") => Box::new(
                dhanhook::store::postgres::PgJournal::open(&secrecy::SecretString::from(
                    url.clone(),
                ))
                .await
                .expect("journal opens"),
            ),
            _ => {
                let url = format!("sqlite://{}", self.data_dir().join("dhanhook.db").display());
                Box::new(SqliteJournal::open(&url).await.expect("journal opens"))
            }
        };
        let rows = journal
            .recent_orders(10_000)
            .await
            .expect("journal readable");
        journal.close().await;
        rows
    }

    /// The CSV order log as (header, rows) of fields, once it holds at least `rows` rows.
    /// Rows are written off the request path (usually before the answer, but the answer does
    /// not wait for them), so this polls as a user reading the file a moment later would; the
    /// bound is generous so a loaded machine does not fail the test.
    pub async fn csv_rows(&self, rows: usize) -> (Vec<String>, Vec<HashMap<String, String>>) {
        for _ in 0..1000 {
            let (header, found) = self.csv();
            if found.len() >= rows {
                return (header, found);
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let (_, found) = self.csv();
        panic!(
            "the CSV log has {} rows after 10 s, not {rows}: {found:?}",
            found.len()
        );
    }

    /// The CSV order log as (header, rows) of fields, as it is on disk now.
    pub fn csv(&self) -> (Vec<String>, Vec<HashMap<String, String>>) {
        let path = self.data_dir().join("webhook_orders.csv");
        let mut reader = csv::Reader::from_path(path).expect("CSV log exists");
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        let rows = reader
            .records()
            .map(|r| {
                let r = r.expect("well-formed CSV row");
                header
                    .iter()
                    .cloned()
                    .zip(r.iter().map(str::to_owned))
                    .collect()
            })
            .collect();
        (header, rows)
    }

    /// Graceful shutdown; returns the data folder for a restart.
    pub async fn stop(mut self) -> Arc<TempDir> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        Arc::clone(&self.dir)
    }
}
