//! The canary test (issue 10, point 9): the real binary runs its live-mode flows against
//! dhan-sim over real HTTP with recognisable secret values and logs at `trace`, in both log
//! formats; then every output is scanned for every secret, and none may appear:
//!
//! - every line the service and the CLI commands (`token`, `orders`, `check`, `notify-test`)
//!   print;
//! - every HTTP response's status line, headers and body;
//! - every file in the service's folder, as raw bytes, while it runs (the SQLite journal's
//!   `dhanhook.db`, `-wal`, `-shm`, the CSV order log) and again after it and the CLI stopped.
//!
//! The flows: the start-up mint (or a pasted `DHAN_ACCESS_TOKEN`), a flat alert, a Dhan-format
//! multi-leg alert, a duplicate, a wrong secret, `POST /refresh-token`, the consent flow
//! (`/auth/consent`, the login page, `/auth/callback`), `/auth/status`, `/ready`, `/`, `/logs`,
//! `/queue-stats`, `/market-status`, SIGTERM.
//!
//! The API key is not scanned: in Dhan's model it is an identifier (`DHAN_API_KEY` is a plain
//! setting), the API secret is the secret. TOTP codes are not scanned: six digits would match
//! by chance.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use base64::Engine as _;
use chrono::{TimeZone as _, Utc};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_dhanhook");
const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/scrip-master-sample.csv");

const PIN: &str = "975310";
/// Valid Base32 (A-Z, 2-7; 32 characters, 20 bytes).
const TOTP_SECRET: &str = "CANARYTOTPSECRETKNSWY3DPEHPK3PXP";
const API_KEY: &str = "canary-api-key-4c1e8a";
const API_SECRET: &str = "canary-api-secret-d93b17f2a6";
const WEBHOOK_SECRET: &str = "canary-webhook-secret-0e5f27c9b4a3d816";
const ADMIN_TOKEN: &str = "canary-admin-token-8a61f3d09c2e7b45";
/// Telegram's bot token and a webhook URL's secret path: notifications go to a closed port, so
/// every delivery fails and is logged (with retries) without either ever showing.
const TELEGRAM_BOT_TOKEN: &str = "424242:canary-telegram-bot-token-7d3e";
const NOTIFY_WEBHOOK_SECRET: &str = "canary-notify-webhook-path-5b8c1f";
/// The 32 raw bytes behind `TOKEN_KEY`.
const TOKEN_KEY_BYTES: &[u8; 32] = b"canary-token-key-32-bytes-abcdef";

/// Everything the test saw, by where it came from.
#[derive(Default)]
struct Outputs(Vec<(String, Vec<u8>)>);

impl Outputs {
    fn add(&mut self, source: impl Into<String>, bytes: impl Into<Vec<u8>>) {
        self.0.push((source.into(), bytes.into()));
    }
}

/// A running `dhanhook serve` whose combined output is collected.
struct Served {
    child: Child,
    output: Arc<Mutex<String>>,
    base: String,
}

fn serve(dir: &Path, vars: &[(String, String)]) -> Served {
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .current_dir(dir)
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
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
                let mut out = output.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
                drop(out);
                let _ = tx.send(line);
            }
        });
    }
    let port = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("a 'listening on' line:\n{}", output.lock().unwrap()));
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
    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn wait_for_output(&self, text: &str) {
        for _ in 0..3000 {
            if self.output().contains(text) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("never printed {text:?}:\n{}", self.output());
    }

    /// SIGTERM, then the exit status and everything printed.
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
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
            panic!("still running 30 s after SIGTERM:\n{}", self.output());
        };
        std::thread::sleep(Duration::from_millis(100)); // let the reader threads drain
        (status, self.output())
    }
}

/// Runs a CLI command to its end: exit code, stdout, stderr.
fn run(dir: &Path, args: &[&str], vars: &[(String, String)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One HTTP exchange, recorded whole (status, every header, the body); returns status and body.
async fn call(outputs: &mut Outputs, req: reqwest::RequestBuilder, label: &str) -> (u16, String) {
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let mut text = format!("HTTP {status}\n");
    for (name, value) in resp.headers() {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    let body = resp.text().await.expect("a body");
    text.push('\n');
    text.push_str(&body);
    outputs.add(format!("response to {label}"), text);
    (status, body)
}

/// Every file under `dir`, as raw bytes.
fn files(dir: &Path, outputs: &mut Outputs, when: &str, seen: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, outputs, when, seen);
        } else {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            outputs.add(
                format!("file {name} ({when})"),
                std::fs::read(&path).unwrap(),
            );
            seen.push(name);
        }
    }
}

/// Runs every flow once with `log_format`; returns the outputs and the access tokens seen.
/// `pasted`: start from a `DHAN_ACCESS_TOKEN` the sim issued instead of a start-up mint.
async fn flows(log_format: &str, pasted: bool) -> (Outputs, Vec<String>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let start = Utc.with_ymd_and_hms(2026, 12, 1, 4, 30, 0).unwrap(); // 10:00 IST, a Tuesday
    let sim = dhan_sim::Sim::spawn(dhan_sim::SimConfig {
        pin: PIN.into(),
        totp_secret: TOTP_SECRET.into(),
        api_key: API_KEY.into(),
        api_secret: API_SECRET.into(),
        start_time: start,
        ..dhan_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = [
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("HOST", "127.0.0.1".into()),
        ("PORT", "0".into()),
        ("RUST_LOG", "trace".into()),
        ("LOG_FORMAT", log_format.into()),
        ("INSTRUMENTS_URL", "off".into()),
        ("INSTRUMENTS_PATH", FIXTURE.into()),
        ("ACK_DEADLINE_MS", "30000".into()),
        ("DHANHOOK_CLOCK_START", start.to_rfc3339()),
        ("ENABLE_DHAN", "true".into()),
        ("DHAN_BASE_URL", sim.base_url()),
        ("DHAN_AUTH_URL", sim.auth_url()),
        ("DHAN_CLIENT_ID", dhan_sim::SimConfig::default().client_id),
        ("DHAN_PIN", PIN.into()),
        ("DHAN_TOTP_SECRET", TOTP_SECRET.into()),
        ("DHAN_API_KEY", API_KEY.into()),
        ("DHAN_API_SECRET", API_SECRET.into()),
        ("WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        ("ADMIN_TOKEN", ADMIN_TOKEN.into()),
        ("TELEGRAM_BOT_TOKEN", TELEGRAM_BOT_TOKEN.into()),
        ("TELEGRAM_CHAT_ID", "-100777".into()),
        ("TELEGRAM_API_URL", "http://127.0.0.1:9".into()),
        (
            "NOTIFY_WEBHOOK_URL",
            format!("http://127.0.0.1:9/hooks/{NOTIFY_WEBHOOK_SECRET}"),
        ),
        (
            "TOKEN_KEY",
            base64::engine::general_purpose::STANDARD.encode(TOKEN_KEY_BYTES),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut tokens = Vec::new();
    if pasted {
        let token = sim.issue_app_token();
        env.push(("DHAN_ACCESS_TOKEN".into(), token.clone()));
        tokens.push(token);
    }
    let mut outputs = Outputs::default();
    let served = {
        let (dir, env) = (dir.path().to_owned(), env.clone());
        tokio::task::spawn_blocking(move || serve(&dir, &env))
            .await
            .unwrap()
    };
    if !pasted {
        let served = &served;
        tokio::task::block_in_place(|| served.wait_for_output("New token generated"));
    }
    tokens.extend(sim.active_token());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |path: &str| format!("{}{path}", served.base);
    let c = &client;

    // Alerts: flat, again (a duplicate), Dhan's multi-leg format, a wrong secret.
    let flat = json!({"secret": WEBHOOK_SECRET, "symbol": "NSE:RELIANCE", "action": "buy",
                      "quantity": 1, "product": "intraday"});
    let (status, body) = call(
        &mut outputs,
        c.post(url("/webhook")).body(flat.to_string()),
        "a flat alert",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["legs"][0]["status"], "ACCEPTED", "{v}");
    let (_, body) = call(
        &mut outputs,
        c.post(url("/webhook")).body(flat.to_string()),
        "a duplicate alert",
    )
    .await;
    assert!(body.to_lowercase().contains("duplicate"), "{body}");
    let multi = json!({"secret": WEBHOOK_SECRET, "alertType": "multi_leg_order", "order_legs": [
        {"transactionType":"S","orderType":"LMT","quantity":"5","exchange":"NSE","symbol":"TCS",
         "instrument":"EQ","productType":"C","sort_order":"2","price":"4100.25"},
        {"transactionType":"B","orderType":"MKT","quantity":"10","exchange":"NSE","symbol":"INFY",
         "instrument":"EQ","productType":"I","sort_order":"1","price":"0"}]});
    let (status, body) = call(
        &mut outputs,
        c.post(url("/webhook")).body(multi.to_string()),
        "a Dhan-format multi-leg alert",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let wrong = json!({"secret": "not-the-secret-but-long-enough-0000", "symbol": "NSE:TCS",
                       "action": "buy", "quantity": 1, "product": "intraday"});
    let (status, _) = call(
        &mut outputs,
        c.post(url("/webhook")).body(wrong.to_string()),
        "a wrong-secret alert",
    )
    .await;
    assert_eq!(status, 401);

    // A refresh: 200 with a pasted token, 429 inside the cooldown after a start-up mint.
    let (status, body) = call(
        &mut outputs,
        c.post(url("/refresh-token")).bearer_auth(ADMIN_TOKEN),
        "POST /refresh-token",
    )
    .await;
    assert!(status == 200 || status == 429, "{status} {body}");
    tokens.extend(sim.active_token());

    // The consent flow: start it, "log in" at Dhan, come back with the tokenId.
    let (status, body) = call(
        &mut outputs,
        c.post(url("/auth/consent")).bearer_auth(ADMIN_TOKEN),
        "POST /auth/consent",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let started: Value = serde_json::from_str(&body).unwrap();
    let login_url = started["login_url"]
        .as_str()
        .expect("a login url")
        .to_owned();
    let resp = c.get(&login_url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let token_id = location.split("tokenId=").nth(1).unwrap().to_owned();
    let (status, body) = call(
        &mut outputs,
        c.get(url(&format!("/auth/callback?tokenId={token_id}"))),
        "GET /auth/callback",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    tokens.extend(sim.active_token());

    // The read-only pages, public and admin.
    for (path, admin) in [
        ("/auth/status", true),
        ("/ready", false),
        ("/", false),
        ("/health", false),
        ("/market-status", false),
        ("/logs", true),
        ("/queue-stats", true),
    ] {
        let mut req = c.get(url(path));
        if admin {
            req = req.bearer_auth(ADMIN_TOKEN);
        }
        let (status, body) = call(&mut outputs, req, &format!("GET {path}")).await;
        assert_eq!(status, 200, "{path}: {body}");
    }

    // The journal while the service runs: the WAL and shared-memory files exist only now
    // (a clean shutdown checkpoints and removes them).
    let mut seen = Vec::new();
    files(dir.path(), &mut outputs, "while running", &mut seen);
    assert!(
        seen.iter().any(|n| n == "dhanhook.db-wal"),
        "the WAL is among {seen:?}"
    );

    let (status, out) = tokio::task::spawn_blocking(move || served.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{out}");
    assert!(out.contains("TRACE"), "trace lines were written");
    outputs.add(format!("the service's output ({log_format})"), out);

    // The CLI in the same folder, same environment.
    for args in [&["token"][..], &["orders"], &["check"], &["notify-test"]] {
        let (dir, env) = (dir.path().to_owned(), env.clone());
        let (code, out, err) = tokio::task::spawn_blocking(move || run(&dir, args, &env))
            .await
            .unwrap();
        match args[0] {
            "token" => assert!(code == 0 && out.contains(" characters)"), "{out}{err}"),
            "orders" => assert!(code == 0 && out.contains("RELIANCE"), "{out}{err}"),
            // Both channels point at a closed port: each failure is printed, at trace level too.
            "notify-test" => assert!(
                code != 0
                    && out.contains("✗ telegram: telegram unreachable")
                    && out.contains("✗ webhook"),
                "{out}{err}"
            ),
            _ => {} // `check` may find something to fix; its output is what matters here
        }
        outputs.add(format!("`dhanhook {}` stdout", args.join(" ")), out);
        outputs.add(format!("`dhanhook {}` stderr", args.join(" ")), err);
    }
    tokens.extend(sim.active_token());

    let mut seen = Vec::new();
    files(dir.path(), &mut outputs, "after the end", &mut seen);
    for expected in ["webhook_orders.csv", "dhanhook.db"] {
        assert!(
            seen.iter().any(|n| n == expected),
            "{expected} is among {seen:?}"
        );
    }
    tokens.sort();
    tokens.dedup();
    (outputs, tokens)
}

/// Where `needle` occurs in `haystack`, with a little context and the needle masked.
fn hits(haystack: &[u8], needle: &[u8]) -> Vec<String> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return Vec::new();
    }
    (0..=haystack.len() - needle.len())
        .filter(|&i| &haystack[i..i + needle.len()] == needle)
        .map(|i| {
            let before = &haystack[i.saturating_sub(24)..i];
            let after = &haystack[i + needle.len()..(i + needle.len() + 24).min(haystack.len())];
            format!(
                "at byte {i}: {:?}<SECRET>{:?}",
                String::from_utf8_lossy(before),
                String::from_utf8_lossy(after)
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_any_output_log_response_csv_or_journal_byte() {
    let token_key_b64 = base64::engine::general_purpose::STANDARD.encode(TOKEN_KEY_BYTES);
    let mut report = Vec::new();
    for (format, pasted) in [("pretty", false), ("json", true)] {
        let (outputs, tokens) = flows(format, pasted).await;
        assert!(!tokens.is_empty(), "the sim issued a token");
        let mut canaries: Vec<(String, Vec<u8>)> = vec![
            ("the PIN".into(), PIN.into()),
            ("the TOTP secret".into(), TOTP_SECRET.into()),
            (
                "the TOTP secret, lower case".into(),
                TOTP_SECRET.to_lowercase().into(),
            ),
            ("the API secret".into(), API_SECRET.into()),
            ("the webhook secret".into(), WEBHOOK_SECRET.into()),
            ("the admin token".into(), ADMIN_TOKEN.into()),
            ("the Telegram bot token".into(), TELEGRAM_BOT_TOKEN.into()),
            (
                "the notify webhook's path".into(),
                NOTIFY_WEBHOOK_SECRET.into(),
            ),
            ("TOKEN_KEY (base64)".into(), token_key_b64.clone().into()),
            ("TOKEN_KEY (raw bytes)".into(), TOKEN_KEY_BYTES.to_vec()),
        ];
        for (n, token) in tokens.iter().enumerate() {
            canaries.push((format!("Dhan access token #{n}"), token.clone().into()));
            // The signature alone (64 random bytes): a token cut or re-encoded still shows it.
            let signature = token.rsplit('.').next().unwrap();
            canaries.push((
                format!("Dhan access token #{n}'s signature"),
                signature.into(),
            ));
        }
        for (source, bytes) in &outputs.0 {
            for (name, canary) in &canaries {
                for hit in hits(bytes, canary) {
                    report.push(format!("[{format}] {name} in {source} {hit}"));
                }
            }
        }
        eprintln!(
            "[{format}] scanned {} outputs ({} bytes) for {} canaries",
            outputs.0.len(),
            outputs.0.iter().map(|(_, b)| b.len()).sum::<usize>(),
            canaries.len()
        );
    }
    assert!(
        report.is_empty(),
        "secrets found in outputs:\n{}",
        report.join("\n")
    );
}
