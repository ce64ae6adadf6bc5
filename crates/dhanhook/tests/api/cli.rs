//! The real binary as a user runs it: start-up lines, configuration errors, the CLI commands,
//! graceful shutdown on SIGTERM, and that no secret ever reaches its output.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, SECRET};

const BIN: &str = env!("CARGO_BIN_EXE_dhanhook");

/// A running `dhanhook serve` whose combined output is collected.
pub(crate) struct Served {
    child: Child,
    output: Arc<Mutex<String>>,
    pub(crate) base: String,
}

/// Starts the binary in `dir` with `vars` (a value of `""` removes a default, e.g.
/// `("RUST_LOG", "")` for the default filter), waits for its "listening on" line.
pub(crate) fn serve(dir: &std::path::Path, vars: &[(&str, &str)]) -> Served {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        // Debug level for everything: no library may leak a secret either.
        .env("RUST_LOG", "debug")
        // Never the network: the built-in sample (paper) or INSTRUMENTS_PATH (live).
        .env("INSTRUMENTS_URL", "off")
        .env("ACK_DEADLINE_MS", "30000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    let mut child = cmd.spawn().expect("binary starts");
    let output = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let output = Arc::clone(&output);
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                output.lock().unwrap().push_str(&line);
                output.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
    }
    let port = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a 'listening on' line");
        if let Some(rest) = line.split("listening on http://127.0.0.1:").nth(1) {
            break rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .to_owned();
        }
    };
    Served {
        child,
        output,
        base: format!("http://127.0.0.1:{port}"),
    }
}

impl Served {
    /// `GET path`: the status and the JSON body.
    pub(crate) async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = crate::helpers::http_client()
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request sent");
        (
            resp.status().as_u16(),
            resp.json().await.expect("a JSON body"),
        )
    }

    /// `POST /webhook` with `alert`: the status and the JSON body.
    pub(crate) async fn post_alert(&self, alert: &Value) -> (u16, Value) {
        let resp = crate::helpers::http_client()
            .post(format!("{}/webhook", self.base))
            .body(alert.to_string())
            .send()
            .await
            .expect("request sent");
        (
            resp.status().as_u16(),
            resp.json().await.expect("a JSON body"),
        )
    }

    /// Everything printed so far.
    pub(crate) fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits (bounded) until the output contains `text`; returns the output.
    pub(crate) fn wait_for_output(&self, text: &str) -> String {
        for _ in 0..3000 {
            let out = self.output();
            if out.contains(text) {
                return out;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("never printed {text:?}:\n{}", self.output());
    }

    /// Waits for the process to end by itself (e.g. a crash point), with what it printed.
    pub(crate) fn wait_exit(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("process exits");
        std::thread::sleep(Duration::from_millis(100)); // let the reader threads drain
        let out = self.output.lock().unwrap().clone();
        (status, out)
    }

    /// SIGKILL (`kill -9`): no shutdown at all, like a power cut of the process.
    pub(crate) fn kill9(mut self) {
        self.child.kill().expect("SIGKILL sent");
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status and everything printed.
    pub(crate) fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        // A bound for a hang, not a timing claim: a process that ignores SIGTERM is killed and
        // the test fails instead of hanging.
        let mut status = None;
        for _ in 0..600 {
            status = self.child.try_wait().expect("process state");
            if status.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let Some(status) = status else {
            let _ = self.child.kill();
            let _ = self.child.wait();
            panic!(
                "still running 30 s after SIGTERM:\n{}",
                self.output.lock().unwrap()
            );
        };
        std::thread::sleep(Duration::from_millis(100)); // let the reader threads drain
        let out = self.output.lock().unwrap().clone();
        (status, out)
    }
}

pub(crate) fn run(
    dir: &std::path::Path,
    args: &[&str],
    vars: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir).env_clear();
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_new_user_run_prints_url_mode_and_secret_file_and_never_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), &[("ADMIN_TOKEN", ADMIN_TOKEN)]);
    let client = crate::helpers::http_client();
    let secret = std::fs::read_to_string(dir.path().join("data/webhook_secret")).unwrap();

    // What a new user does: the README's curl, again, a wrong secret, a bad alert, /logs.
    let alert = json!({"secret": secret, "symbol": "NSE:RELIANCE", "action": "buy", "quantity": 1,
                       "product": "intraday", "price": 2500});
    let first: Value = client
        .post(format!("{}/webhook", served.base))
        .body(alert.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The real clock decides the route: filled in market hours, a pending AMO or a queued
    // order otherwise. Whatever it is, the answer says so consistently.
    let expected = match first["route"]["route"].as_str() {
        Some("now") => "FILLED",
        Some("amo") => "PENDING",
        Some("queue") => "QUEUED",
        other => panic!("unexpected route {other:?}: {first}"),
    };
    assert_eq!(first["legs"][0]["status"], expected, "{first}");
    let again: Value = client
        .post(format!("{}/webhook", served.base))
        .body(alert.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["duplicate"], true);
    let mut wrong = alert.clone();
    wrong["secret"] = json!(SECRET);
    let resp = client
        .post(format!("{}/webhook", served.base))
        .body(wrong.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let mut bad = alert.clone();
    bad["quantity"] = json!("1.5");
    let resp = client
        .post(format!("{}/webhook", served.base))
        .body(bad.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let logs: Value = client
        .get(format!("{}/logs", served.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(logs["count"], 1, "exactly one order");

    let (status, out) = served.terminate();
    assert!(
        status.success(),
        "graceful exit on SIGTERM: {status:?}\n{out}"
    );
    assert!(out.contains("(mode: paper"), "{out}");
    assert!(
        out.contains("webhook secret: generated and saved in ./data/webhook_secret"),
        "{out}"
    );
    assert!(
        out.contains("curl -s -X POST http://127.0.0.1:"),
        "a ready-to-paste example: {out}"
    );
    assert!(out.contains("journal closed"), "{out}");
    for canary in [secret.trim(), ADMIN_TOKEN, SECRET] {
        assert!(!out.contains(canary), "a secret leaked into the output");
    }
    let journal = std::fs::read(dir.path().join("data/dhanhook.db")).unwrap();
    let journal = String::from_utf8_lossy(&journal);
    assert!(
        !journal.contains(secret.trim()),
        "the journal keeps payloads without the secret"
    );
    let csv = std::fs::read_to_string(dir.path().join("data/webhook_orders.csv")).unwrap();
    assert!(!csv.contains(secret.trim()));
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_carry_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(
        dir.path(),
        &[
            ("WEBHOOK_SECRET", SECRET),
            ("LOG_FORMAT", "json"),
            ("RUST_LOG", "info"),
        ],
    );
    let client = crate::helpers::http_client();
    let alert = json!({"secret": SECRET, "symbol": "NSE:SBIN", "action": "buy", "quantity": 3, "product": "delivery"});
    let resp = client
        .post(format!("{}/webhook", served.base))
        .body(alert.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (_, out) = served.terminate();
    assert!(!out.contains(SECRET));
    let lines: Vec<Value> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "leg placed" && l["span"]["mode"] == "paper"),
        "{out}"
    );
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(dir.path(), &["serve"], &[("PORT", "eighty")]);
    assert_eq!(code, 2);
    assert_eq!(
        err.trim(),
        "configuration error: PORT: 'eighty' is not a port number (0-65535)"
    );
}

#[test]
fn live_mode_without_what_it_needs_refuses_to_start_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let live = [("ENABLE_DHAN", "true"), ("PORT", "0")];
    let totp = [
        ("DHAN_CLIENT_ID", "1000000001"),
        ("DHAN_PIN", "123456"),
        ("DHAN_TOTP_SECRET", "JBSWY3DPEHPK3PXP"),
    ];
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![],
            "DHAN_CLIENT_ID: live mode needs your Dhan client id",
        ),
        (
            vec![("DHAN_CLIENT_ID", "1000000001")],
            "live mode needs a way to get a Dhan access token",
        ),
        (
            [&totp[..], &[("WEBHOOK_SECRET", "short")]].concat(),
            "WEBHOOK_SECRET: live mode refuses a secret shorter than 32 characters",
        ),
        (
            [&totp[..], &[("INSTRUMENTS_URL", "off")]].concat(),
            "INSTRUMENTS_URL=off needs INSTRUMENTS_PATH in live mode",
        ),
        (
            [&totp[..], &[("ADMIN_TOKEN", "a")]].concat(),
            "ADMIN_TOKEN: live mode refuses an admin token shorter than 32 characters",
        ),
        (
            [
                &totp[..],
                &[("DATABASE_URL", "postgres://u@127.0.0.1:9/nowhere")],
            ]
            .concat(),
            "TOKEN_KEY: with a PostgreSQL journal live mode needs TOKEN_KEY",
        ),
    ];
    for (extra, expected) in cases {
        let vars: Vec<(&str, &str)> = live.iter().chain(extra.iter()).copied().collect();
        let (code, _, err) = run(dir.path(), &["serve"], &vars);
        assert_eq!(code, 1, "{expected}");
        assert!(err.contains(expected), "expected {expected:?} in {err}");
        assert!(
            !err.contains("JBSWY3DPEHPK3PXP") && !err.contains("123456"),
            "no secret in: {err}"
        );
    }
    assert!(
        !dir.path().join("data/webhook_secret").exists(),
        "nothing was set up"
    );
}

#[tokio::test]
async fn migrate_and_orders_commands_read_the_same_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(dir.path(), &["migrate"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("journal is up to date"), "{out}");

    let (_, out, _) = run(dir.path(), &["orders"], &[]);
    assert!(out.contains("(no orders yet)"), "{out}");

    let served = serve(dir.path(), &[("WEBHOOK_SECRET", SECRET)]);
    let alert = json!({"secret": SECRET, "symbol": "BSE:TCS", "action": "buy", "quantity": 7,
                       "product": "delivery", "order_type": "limit", "price": "4000"});
    let resp = crate::helpers::http_client()
        .post(format!("{}/webhook", served.base))
        .body(alert.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    served.terminate();

    let (code, out, _) = run(dir.path(), &["orders", "--limit", "5"], &[]);
    assert_eq!(code, 0);
    let line = out
        .lines()
        .find(|l| l.contains("TCS"))
        .expect("the order is listed");
    assert!(
        line.contains("BUY")
            && line.contains("BSE")
            && line.contains("PENDING")
            && line.contains("PAPER-"),
        "{line}"
    );
    assert_columns_line_up(&out, "PENDING");

    // The longest status must not push the order id out of its column either.
    let db = format!("sqlite://{}", dir.path().join("data/dhanhook.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::query("UPDATE order_legs SET status = 'NEEDS_ATTENTION'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (code, out, _) = run(dir.path(), &["orders"], &[]);
    assert_eq!(code, 0);
    assert_columns_line_up(&out, "NEEDS_ATTENTION");

    for bad in ["0", "1001"] {
        let (code, out, err) = run(dir.path(), &["orders", "--limit", bad], &[]);
        assert_eq!(code, 2, "a usage error: {out}{err}");
        assert!(out.is_empty(), "no table is printed: {out}");
        assert!(
            err.contains("--limit") && err.contains("1..=1000"),
            "the message names the option and its range: {err}"
        );
    }
}

/// `dhanhook orders` shows each leg's filled quantity, average price and the broker's reason.
#[tokio::test]
async fn orders_show_the_filled_quantity_average_price_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    // A generous answer deadline: on a loaded machine the first alert after start-up may wait
    // for the start-up reconciliation longer than the default 2 s (a 202 is not this test's
    // subject; the printed table is).
    let served = serve(
        dir.path(),
        &[("WEBHOOK_SECRET", SECRET), ("ACK_DEADLINE_MS", "15000")],
    );
    let alert = json!({"secret": SECRET, "symbol": "BSE:TCS", "action": "buy", "quantity": 7,
                       "product": "delivery", "price": "4000.25"});
    let resp = crate::helpers::http_client()
        .post(format!("{}/webhook", served.base))
        .body(alert.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    served.terminate();

    // What the order tracker journals for a filled order (the served clock is the real one,
    // so the market may be closed: the values are written here).
    let db = format!("sqlite://{}", dir.path().join("data/dhanhook.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::query("UPDATE order_legs SET status = 'FILLED', filled_qty = 7, fill_price = 4000.25")
        .execute(&pool)
        .await
        .unwrap();
    let (code, out, _) = run(dir.path(), &["orders"], &[]);
    assert_eq!(code, 0);
    let header = out.lines().next().unwrap();
    let line = out.lines().find(|l| l.contains("TCS")).expect("listed");
    let filled_at = header.find("FILLED").expect("a FILLED column");
    let avg_at = header.find("AVG PRICE").expect("an AVG PRICE column");
    assert_eq!(line.get(filled_at..filled_at + 2), Some("7 "), "{out}");
    assert_eq!(line.get(avg_at..avg_at + 7), Some("4000.25"), "{out}");

    sqlx::query(
        "UPDATE order_legs SET status = 'REJECTED', message = 'rejected at Dhan', reason = 'RMS: margin exceeds'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let (_, out, _) = run(dir.path(), &["orders"], &[]);
    let line = out.lines().find(|l| l.contains("TCS")).expect("listed");
    assert!(
        line.ends_with("rejected at Dhan (reason: RMS: margin exceeds)"),
        "{out}"
    );
}

/// In `dhanhook orders`' table, the STATUS and ORDER ID columns of every row start where their
/// headers do.
fn assert_columns_line_up(table: &str, status: &str) {
    let mut lines = table.lines();
    let header = lines.next().expect("a header line");
    let status_at = header.find("STATUS").expect("a STATUS column");
    let order_id_at = header.find("ORDER ID").expect("an ORDER ID column");
    let rows: Vec<&str> = lines.collect();
    assert!(!rows.is_empty(), "{table}");
    for row in rows {
        assert_eq!(row.find(status), Some(status_at), "STATUS column:\n{table}");
        assert_eq!(
            row.find("PAPER-"),
            Some(order_id_at),
            "ORDER ID column:\n{table}"
        );
    }
}

// The binary is run with blocking calls while the local server answers from this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instruments_update_names_the_url_and_the_cause_of_a_failed_download() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // A file host with one file that is not a scrip master; any other path is a 404.
    let app = axum::Router::new().route(
        "/maintenance.csv",
        axum::routing::get(|| async { "<html>maintenance</html>" }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    for (url, cause) in [
        (
            format!("http://{closed}/api-scrip-master.csv"),
            "connection refused",
        ),
        (format!("http://{host}/api-scrip-master.csv"), "http 404"),
        (format!("http://{host}/maintenance.csv"), "column"),
    ] {
        // A signed mirror URL's query string is a credential: never printed.
        let with_query = format!("{url}?signature=canary-signature-5d2c");
        let (code, out, err) = run(
            dir.path(),
            &["instruments", "update"],
            &[("INSTRUMENTS_URL", &with_query)],
        );
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            err.contains(&url) && err.to_lowercase().contains(cause),
            "expected {url} and {cause:?} in: {err}"
        );
        assert!(
            !out.contains("canary-signature") && !err.contains("canary-signature"),
            "no query string in: {out}{err}"
        );
    }
}

/// The simulator's fake account, as the binary's environment.
pub(crate) fn sim_env(sim: &dhan_sim::SimHandle) -> Vec<(String, String)> {
    let c = dhan_sim::SimConfig::default();
    vec![
        ("DHAN_BASE_URL".into(), sim.base_url()),
        ("DHAN_AUTH_URL".into(), sim.auth_url()),
        ("DHAN_CLIENT_ID".into(), c.client_id),
        ("DHAN_PIN".into(), c.pin),
        ("DHAN_TOTP_SECRET".into(), c.totp_secret),
    ]
}

pub(crate) fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter()
        .map(|(k, val)| (k.as_str(), val.as_str()))
        .collect()
}

#[test]
fn totp_prints_the_code_an_independent_rfc6238_implementation_computes() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "JBSWY3DPEHPK3PXP";
    let before = chrono::Utc::now().timestamp();
    let (code, out, err) = run(dir.path(), &["totp"], &[("DHAN_TOTP_SECRET", secret)]);
    let after = chrono::Utc::now().timestamp();
    assert_eq!(code, 0, "{err}");
    let printed = out.split_whitespace().next().unwrap().to_owned();
    // dhan-sim's TOTP is a separate implementation; the step may have turned during the run.
    let expected: Vec<String> = [before, after]
        .iter()
        .map(|t| dhan_sim::totp::generate(secret, *t).unwrap())
        .collect();
    assert!(
        expected.contains(&printed),
        "printed {printed}, expected one of {expected:?}"
    );
    assert!(out.contains("more seconds"), "{out}");
    let (code, _, err) = run(dir.path(), &["totp"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("DHAN_TOTP_SECRET is not set"), "{err}");
}

// The binary is run with blocking calls while the simulator serves from this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_gets_a_token_checks_it_and_prints_it_masked_with_its_expiry() {
    let sim = dhan_sim::Sim::spawn(dhan_sim::SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = sim_env(&sim);

    let (code, out, err) = run(dir.path(), &["token"], &as_refs(&env));

    assert_eq!(code, 0, "{out}{err}");
    let token = sim.active_token().expect("the simulator issued a token");
    assert!(
        !out.contains(&token) && !err.contains(&token),
        "the token is never printed whole"
    );
    let masked = format!("{}…{}", &token[..4], &token[token.len() - 4..]);
    assert!(out.contains(&masked), "{out}");
    assert!(out.contains("Source:   minted"), "{out}");
    assert!(
        out.contains("IST (24.0 hours left)") || out.contains("IST (23.9 hours left)"),
        "{out}"
    );
    assert!(out.contains("accepted by Dhan"), "{out}");
    assert_eq!(sim.mint_count(), 1);

    // Again: the stored token is reused, not minted.
    let (code, out, _) = run(dir.path(), &["token"], &as_refs(&env));
    assert_eq!(code, 0);
    assert!(out.contains(&masked), "{out}");
    assert_eq!(sim.mint_count(), 1);
}

// The binary is run with blocking calls while the simulator serves from this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_fails_with_the_classified_reason() {
    let sim = dhan_sim::Sim::spawn(dhan_sim::SimConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut env = sim_env(&sim);
    env.retain(|(k, _)| k != "DHAN_PIN");
    env.push(("DHAN_PIN".into(), "654321".into()));
    let (code, out, err) = run(dir.path(), &["token"], &as_refs(&env));
    assert_ne!(code, 0);
    assert!(
        err.contains("no valid Dhan token") && err.contains("Invalid Pin"),
        "{out}{err}"
    );
    // Dhan's message once, not once per link of the error chain.
    assert_eq!(
        err.trim(),
        "error: no valid Dhan token: Dhan refused to issue a token: DH-906: Invalid Pin",
        "{out}"
    );
    assert!(
        !out.contains("no valid Dhan token: "),
        "the fatal error is not repeated in the log: {out}"
    );
    assert!(!err.contains("654321"), "the PIN is never printed");
}

#[test]
fn a_fatal_error_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let live = [
        ("ENABLE_DHAN", "true"),
        ("PORT", "0"),
        ("DHAN_CLIENT_ID", "1000000001"),
        ("DHAN_PIN", "123456"),
        ("DHAN_TOTP_SECRET", "JBSWY3DPEHPK3PXP"),
        ("INSTRUMENTS_URL", "off"),
    ];
    let message = "INSTRUMENTS_URL=off needs INSTRUMENTS_PATH in live mode";

    // At a terminal: on stderr, once, and not in the log lines on stdout.
    let (code, out, err) = run(dir.path(), &["serve"], &live);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        format!("{out}{err}").matches(message).count(),
        1,
        "stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(err.starts_with(&format!("error: {message}")), "{err}");

    // For a log collector: one JSON line at level ERROR, and nothing else.
    let vars: Vec<(&str, &str)> = live
        .iter()
        .copied()
        .chain([("LOG_FORMAT", "json")])
        .collect();
    let (code, out, err) = run(dir.path(), &["serve"], &vars);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        format!("{out}{err}").matches(message).count(),
        1,
        "stdout:\n{out}\nstderr:\n{err}"
    );
    let line = out
        .lines()
        .find(|l| l.contains(message))
        .expect("the error is logged");
    let line: Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(line["level"], "ERROR", "{line}");
}

#[tokio::test]
async fn sim_command_serves_a_simulator_that_prints_its_fake_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["sim", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_clear()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first
        .split("listening on ")
        .nth(1)
        .expect("an address")
        .trim()
        .to_owned();
    // The banner, up to its last line (the command to run).
    let mut rest: Vec<String> = Vec::new();
    while !rest.last().is_some_and(|l| l.contains("-- serve")) {
        rest.push(lines.next().expect("the whole banner").unwrap());
        assert!(rest.len() < 20, "no serve command in {rest:?}");
    }
    assert!(
        rest.iter().any(|l| l.contains("DHAN_PIN=123456")),
        "{rest:?}"
    );
    // Its own data folder, as the README says, so it does not share the paper journal.
    assert!(
        rest.iter().any(|l| l.contains("DATA_DIR=./data/sim")),
        "{rest:?}"
    );
    // Usable from any working directory (this test runs in a temporary one).
    let instruments = rest
        .iter()
        .find_map(|l| l.split("INSTRUMENTS_PATH=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_else(|| panic!("an INSTRUMENTS_PATH in {rest:?}"));
    let instruments = std::path::Path::new(instruments);
    assert!(instruments.is_absolute(), "{}", instruments.display());
    assert!(instruments.is_file(), "{} exists", instruments.display());

    let totp =
        dhan_sim::totp::generate("JBSWY3DPEHPK3PXP", chrono::Utc::now().timestamp()).unwrap();
    let resp = crate::helpers::http_client()
        .post(format!(
            "{base}/app/generateAccessToken?dhanClientId=1000000001&pin=123456&totp={totp}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

// The binary is run with blocking calls while the simulator serves from this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_from_ready_is_logged_as_a_warning_not_an_error() {
    let sim = dhan_sim::Sim::spawn(dhan_sim::SimConfig::default())
        .await
        .unwrap();
    // Live mode whose scrip master host is down: no copy, so /ready is 503 (by design).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut env = sim_env(&sim);
    env.extend([
        ("ENABLE_DHAN".to_owned(), "true".to_owned()),
        ("WEBHOOK_SECRET".to_owned(), SECRET.to_owned()),
        (
            "INSTRUMENTS_URL".to_owned(),
            format!("http://{closed}/api-scrip-master.csv"),
        ),
        // The default filter, as a user runs it.
        ("RUST_LOG".to_owned(), String::new()),
    ]);
    let served = serve(dir.path(), &as_refs(&env));

    let resp = crate::helpers::http_client()
        .get(format!("{}/ready", served.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["checks"]["instruments"]["state"], "missing", "{v}");

    let (_, out) = served.terminate();
    assert!(
        !out.lines().any(|l| l.contains("ERROR")),
        "nothing failed that needs a person: {out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("WARN") && l.contains("/ready") && l.contains("503")),
        "the 503 is still logged, as a warning: {out}"
    );
}

// The binary is run with blocking calls while the simulator serves from this runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_mode_logs_no_credential_at_any_level() {
    let sim = dhan_sim::Sim::spawn(dhan_sim::SimConfig {
        api_key: "canary-api-key-3e1f".into(),
        api_secret: "canary-api-secret-9b7d5c3a".into(),
        ..dhan_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut env = sim_env(&sim);
    env.extend([
        ("ENABLE_DHAN".to_owned(), "true".to_owned()),
        ("WEBHOOK_SECRET".to_owned(), SECRET.to_owned()),
        ("ADMIN_TOKEN".to_owned(), ADMIN_TOKEN.to_owned()),
        ("DHAN_API_KEY".to_owned(), "canary-api-key-3e1f".to_owned()),
        (
            "DHAN_API_SECRET".to_owned(),
            "canary-api-secret-9b7d5c3a".to_owned(),
        ),
        (
            "INSTRUMENTS_PATH".to_owned(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/data/scrip-master-sample.csv").to_owned(),
        ),
        ("RUST_LOG".to_owned(), "trace".to_owned()),
    ]);
    let served = serve(dir.path(), &as_refs(&env));
    let client = crate::helpers::http_client();
    let alert = json!({"secret": SECRET, "symbol": "NSE:RELIANCE", "action": "buy", "quantity": 1, "product": "intraday"});
    let v: Value = client
        .post(format!("{}/webhook", served.base))
        .body(alert.to_string())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["legs"][0]["status"], "ACCEPTED", "{v}");
    // The consent flow too (its calls carry the API key and secret in headers).
    let started = client
        .post(format!("{}/auth/consent", served.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    let token = sim.active_token().expect("a token was minted");

    let (_, out) = served.terminate();
    for (name, canary) in [
        ("the access token", token.as_str()),
        ("the TOTP secret", "JBSWY3DPEHPK3PXP"),
        ("the API secret", "canary-api-secret-9b7d5c3a"),
        ("the webhook secret", SECRET),
        ("the admin token", ADMIN_TOKEN),
        ("the PIN in a query string", "pin=123456"),
        ("a TOTP code in a query string", "totp="),
    ] {
        assert!(
            !out.contains(canary),
            "{name} appeared in the trace-level output"
        );
    }
    assert!(
        out.contains("New token generated"),
        "the log says what happened: {out}"
    );
    assert!(
        out.contains("TRACE") && out.contains("dhan call"),
        "trace and debug lines were written"
    );
}

/// SIGTERM while the token keeper waits out Dhan's mint cooldown, an order is stuck at a slow
/// Dhan, one client connection is idle and another has sent half its headers: the process
/// still exits 0 within 10 s (`SHUTDOWN_TIMEOUT`, default 8 s; Cloud Run kills at 10 s), and
/// the order cut short is left SUBMITTING for the reconciler at the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_mint_cooldown_ends_the_process_within_10_s() {
    use std::io::Write as _;

    let start = crate::helpers::market_time();
    let sim = dhan_sim::Sim::spawn(dhan_sim::SimConfig {
        start_time: start,
        ..dhan_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut env = sim_env(&sim);
    env.extend([
        ("ENABLE_DHAN".to_owned(), "true".to_owned()),
        ("WEBHOOK_SECRET".to_owned(), SECRET.to_owned()),
        (
            "INSTRUMENTS_PATH".to_owned(),
            crate::live::FIXTURE.to_owned(),
        ),
        ("DHANHOOK_CLOCK_START".to_owned(), start.to_rfc3339()),
        ("RUST_LOG".to_owned(), String::new()),
    ]);
    let served = serve(dir.path(), &as_refs(&env));
    served.wait_for_output("New token generated");
    let alert = |id: &str| {
        json!({"secret": SECRET, "id": id, "symbol": "NSE:RELIANCE", "action": "buy",
            "quantity": 1, "product": "intraday"})
    };

    // An order Dhan sits on for a minute.
    sim.inject(dhan_sim::Fault::OrderDelay(Duration::from_secs(60)), 1);
    let stuck = {
        let request = crate::helpers::http_client()
            .post(format!("{}/webhook", served.base))
            .body(alert("stuck").to_string());
        tokio::spawn(request.send())
    };
    served.wait_for_output("alert journaled");
    // The order must be at Dhan (in its delay) before the token dies: SUBMITTING is journaled
    // just before the request leaves.
    let path = std::env::var("PATH").unwrap_or_default();
    for _ in 0..300 {
        let (_, table, _) = run(dir.path(), &["orders"], &[("PATH", &path)]);
        if table.contains("SUBMITTING") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another login kills the token inside the cooldown: the next order learns it, and the
    // keeper waits out the 2 minutes before it may mint.
    sim.issue_web_token();
    let (_, refused) = served.post_alert(&alert("refused")).await;
    assert!(
        refused["legs"][0]["message"]
            .as_str()
            .unwrap()
            .contains("next can be had in"),
        "{refused}"
    );
    served.wait_for_output("waiting for the mint cooldown");
    // An idle connection and one that sent half its headers.
    let addr = served.base.trim_start_matches("http://").to_owned();
    let _idle = std::net::TcpStream::connect(&addr).unwrap();
    let mut half = std::net::TcpStream::connect(&addr).unwrap();
    half.write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Le")
        .unwrap();

    let signalled = std::time::Instant::now();
    let (status, out) = served.terminate();
    let took = signalled.elapsed();

    assert!(status.success(), "exit status {status:?}:\n{out}");
    assert!(took < Duration::from_secs(10), "took {took:?}:\n{out}");
    assert!(out.contains("SHUTDOWN_TIMEOUT"), "{out}");
    stuck.abort();
    let (code, table, _) = run(
        dir.path(),
        &["orders"],
        &[("PATH", &std::env::var("PATH").unwrap_or_default())],
    );
    assert_eq!(code, 0);
    // Still at Dhan when the process ended (SUBMITTING), or its answer timed out first
    // (UNKNOWN): either way the reconciler looks it up at the next start, never re-sends it
    // blindly.
    assert!(
        table
            .lines()
            .any(|l| l.contains("SUBMITTING") || l.contains("UNKNOWN")),
        "the cut-short order is left for the reconciler:\n{table}"
    );
}

/// `dhanhook health` (a container's HEALTHCHECK: no shell, no curl) asks the server on PORT.
#[test]
fn health_asks_the_running_server_and_sets_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), &[]);
    let port = served.base.rsplit(':').next().unwrap().to_owned();
    let (code, out, err) = run(dir.path(), &["health"], &[("PORT", &port)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("healthy"), "{out}");
    let (status, _) = served.terminate();
    assert!(status.success());

    let (code, _, err) = run(dir.path(), &["health"], &[("PORT", &port)]);
    assert_ne!(code, 0, "nothing listens any more");
    assert!(err.contains("did not answer"), "{err}");
}

/// 500 wrong secrets make a handful of log lines, not 500 (one per refusal filled disks).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secrets_are_logged_as_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(dir.path(), &[("WEBHOOK_SECRET", SECRET), ("RUST_LOG", "")]);
    let alert = json!({"secret": "wrong", "symbol": "NSE:SBIN", "action": "buy", "quantity": 1,
        "product": "intraday"});
    let mut codes = std::collections::BTreeMap::new();
    for _ in 0..500 {
        let (code, _) = served.post_alert(&alert).await;
        *codes.entry(code).or_insert(0) += 1;
    }
    assert_eq!(codes.get(&401), Some(&20), "{codes:?}");
    assert_eq!(codes.get(&429), Some(&480), "{codes:?}");
    let (status, out) = served.terminate();
    assert!(status.success());
    let lines = out
        .lines()
        .filter(|l| l.contains("refused") || l.contains("/webhook"))
        .count();
    assert!(lines < 10, "{lines} lines about refusals:\n{out}");
}
