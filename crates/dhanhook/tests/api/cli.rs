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
struct Served {
    child: Child,
    output: Arc<Mutex<String>>,
    base: String,
}

/// Starts the binary in `dir` with `vars`, waits for its "listening on" line.
fn serve(dir: &std::path::Path, vars: &[(&str, &str)]) -> Served {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        // Debug level for everything: no library may leak a secret either.
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
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
    /// SIGTERM, then the exit status and everything printed.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        let status = self.child.wait().expect("process exits");
        std::thread::sleep(Duration::from_millis(100)); // let the reader threads drain
        let out = self.output.lock().unwrap().clone();
        (status, out)
    }
}

fn run(dir: &std::path::Path, args: &[&str], vars: &[(&str, &str)]) -> (i32, String, String) {
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
    assert_eq!(first["legs"][0]["status"], "FILLED");
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
    let alert = json!({"secret": SECRET, "symbol": "NSE:SBIN", "action": "sell", "quantity": 3, "product": "delivery"});
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
            totp.to_vec(),
            "INSTRUMENTS_PATH: live mode needs Dhan's scrip master",
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
}
