//! Benchmark: the webhook's throughput and latency with the journal on disk, in live mode
//! against dhan-sim (issue 15, item 6).
//!
//! Run: `cargo run --release -p dhanhook --example bench_webhook [-- OPTIONS]`
//!
//! Options (defaults keep a run under about two minutes on a 2-core machine):
//! `--sequential N` (500), `--concurrent N` alerts per client-count phase (2000),
//! `--burst N` (100), `--fsync-sample N` alerts per strace phase (200),
//! `--data-dir DIR` (a temporary folder under /tmp), and `--postgres URL` (or the environment
//! variable `BENCH_POSTGRES_URL`) naming a PostgreSQL server, to run everything a second time
//! with the PostgreSQL journal (in a database of its own, created and dropped by the run);
//! `--rate-limited-burst N` (200; 0 skips it) alerts at once with the real rate limits, and
//! `--only-rate-limited` to run only that part (SQLite).
//!
//! What it does: starts dhan-sim and the real application in this process (the application in
//! its own tokio runtime, on threads named `dhanhook-app`, so its CPU time can be told apart
//! from the client's and the simulator's), with the SQLite journal in a folder on disk. Both
//! clocks say Tuesday 10:00 IST, so every alert is a live order placed at once. Dhanhook's
//! order rate limits and the simulator's are lifted: this measures dhanhook, not Dhan's caps.
//! The order-update feed is off (as whenever `DHAN_BASE_URL` is set without
//! `DHAN_ORDER_FEED_URL`), so fills do not add journal writes. Every alert has its own `id`: none
//! is a duplicate. Requests go over real HTTP on 127.0.0.1 through one keep-alive `reqwest`
//! client.
//!
//! What it measures:
//! - answer latency as the client sees it (send to full body read), one alert at a time, then
//!   with 10 and 50 clients sending concurrently (req/s = alerts / wall time of the phase);
//! - a burst: N alerts sent at once; the time from the moment the burst starts to each order's
//!   arrival at the simulator (its `created_at` on the simulator's clock, which runs at real
//!   speed, minus the simulator's clock read just before the first request is sent);
//! - CPU per alert: utime+stime of the application's threads (`dhanhook-app*` tokio workers and
//!   blocking pool, `sqlx-sqlite-wor*` SQLite workers) from `/proc/self/task/*/stat`, over the
//!   sequential and the 10-client phases; the whole process (client and simulator included) is
//!   printed beside it as an upper bound;
//! - fsyncs per alert: `strace -f -c -e trace=fsync,fdatasync -p <this process>` attached for a
//!   separate sample (sequential, then 10 clients); strace slows every traced thread, so those
//!   phases' timings are not reported. Without strace: "not measured";
//! - peak RSS: VmHWM of this process (application, simulator and client together), reset through
//!   `/proc/self/clear_refs` before each backend when the kernel allows it;
//! - with the real rate limits (issue 15, item 4): a fresh application and simulator, Dhan's caps
//!   (`10/s,250/m,1000/h,7000/d`, the simulator refusing more than 10 a second) and the default
//!   `ACK_DEADLINE_MS` (2 s); N alerts sent at once. Printed: the answers' latency p50/p99/max,
//!   how many were answered 200 (order at Dhan) and 202 (queued behind the limit, placement
//!   going on), then, once every order has reached the simulator, when the last one did, the
//!   most order writes it received in any second and how many it refused with 429.
//!
//! Figures, not asserts: BENCHMARKS.md records the output.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use dhanhook::{clock::OffsetClock, config::Settings, startup::Application};
use serde_json::{Value, json};

const SECRET: &str = "bench-webhook-secret-0123456789abcdef";
const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/scrip-master-sample.csv");
/// Thread name of the application's runtime; `comm` keeps 15 bytes, so prefixes are matched.
const APP_THREADS: &str = "dhanhook-app";
const BENCH_THREADS: &str = "bench-client";

/// Tuesday 2026-12-01 10:00 IST: NSE is open, so every alert is placed now.
fn market_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T10:00:00+05:30")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now())
}

struct Args {
    sequential: usize,
    concurrent: usize,
    burst: usize,
    fsync_sample: usize,
    data_dir: Option<PathBuf>,
    postgres: Option<String>,
    rate_limited_burst: usize,
    only_rate_limited: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        sequential: 500,
        concurrent: 2000,
        burst: 100,
        fsync_sample: 200,
        data_dir: None,
        rate_limited_burst: 200,
        only_rate_limited: false,
        postgres: std::env::var("BENCH_POSTGRES_URL")
            .ok()
            .filter(|v| !v.is_empty()),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--sequential" => args.sequential = value()?.parse()?,
            "--concurrent" => args.concurrent = value()?.parse()?,
            "--burst" => args.burst = value()?.parse()?,
            "--fsync-sample" => args.fsync_sample = value()?.parse()?,
            "--data-dir" => args.data_dir = Some(value()?.into()),
            "--postgres" => args.postgres = Some(value()?),
            "--rate-limited-burst" => args.rate_limited_burst = value()?.parse()?,
            "--only-rate-limited" => args.only_rate_limited = true,
            other => {
                anyhow::bail!("unknown option {other}; see the header of examples/bench_webhook.rs")
            }
        }
    }
    anyhow::ensure!(
        args.sequential > 0 && args.concurrent > 0 && args.burst > 0,
        "counts must be positive"
    );
    Ok(args)
}

// ---------------------------------------------------------------------------------------------
// /proc readings

/// Clock ticks per second for /proc's utime and stime: 100 on every Linux this runs on
/// (USER_HZ is fixed by the kernel ABI), and reading it properly needs libc's sysconf.
const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime in ticks from a `/proc/.../stat` line (fields 14 and 15, after the `(comm)`).
fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU ticks of the application's threads, and of the whole process.
fn cpu_ticks() -> (u64, u64) {
    let process = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| stat_ticks(&s))
        .unwrap_or(0);
    let mut app = 0;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.starts_with(APP_THREADS) || comm.starts_with("sqlx-sqlite") {
                app += std::fs::read_to_string(task.path().join("stat"))
                    .ok()
                    .and_then(|s| stat_ticks(&s))
                    .unwrap_or(0);
            }
        }
    }
    (app, process)
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets VmHWM to the current RSS (Linux 4.0+, "5" in clear_refs); false if refused.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(String::new(), |kib| {
            format!(", {} GiB RAM", kib / 1024 / 1024)
        });
    format!("{cores} cores (nproc), {model}{mem}")
}

/// 1-, 5- and 15-minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The file system type holding `path` (longest mount point prefix in /proc/mounts): the
/// journal must be on a real disk, not tmpfs, or fsync costs nothing.
fn fs_type(path: &std::path::Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, point, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(point)
                .then(|| (point.len(), kind.to_owned()))
        })
        .max()
        .map_or_else(|| "unknown".to_owned(), |(_, kind)| kind)
}

// ---------------------------------------------------------------------------------------------
// Statistics

struct Latencies(Vec<f64>);

impl Latencies {
    fn new(mut ms: Vec<f64>) -> Self {
        ms.sort_by(f64::total_cmp);
        Self(ms)
    }
    fn pct(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let i = ((self.0.len() as f64 - 1.0) * p).round() as usize;
        self.0[i.min(self.0.len() - 1)]
    }
    fn max(&self) -> f64 {
        self.0.last().copied().unwrap_or(f64::NAN)
    }
}

// ---------------------------------------------------------------------------------------------
// The client side

#[derive(Clone)]
struct Target {
    client: reqwest::Client,
    url: String,
    /// Unique per run and backend, so alerts never collide with a journal's earlier runs.
    prefix: String,
    next: Arc<AtomicUsize>,
    /// Answers that were not 200 "placed" (counted, reported; the run goes on).
    unexpected: Arc<AtomicUsize>,
}

impl Target {
    /// Sends one new alert; returns the answer's latency in ms.
    async fn send(&self) -> anyhow::Result<f64> {
        let (ms, status, body) = self.send_answered().await?;
        if (status != reqwest::StatusCode::OK || body["status"] != "placed")
            && self.unexpected.fetch_add(1, Ordering::Relaxed) == 0
        {
            eprintln!("  first unexpected answer: {status} {body}");
        }
        Ok(ms)
    }

    /// Sends one new alert; returns the answer's latency in ms, its status and its body.
    async fn send_answered(&self) -> anyhow::Result<(f64, reqwest::StatusCode, Value)> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let alert = json!({"secret": SECRET, "strategy": "bench", "id": format!("{}-{n}", self.prefix),
            "symbol": "NSE:RELIANCE", "action": "buy", "quantity": 1, "product": "intraday",
            "price": 2500});
        let started = Instant::now();
        let answer = self.client.post(&self.url).json(&alert).send().await?;
        let status = answer.status();
        let body: Value = answer.json().await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok((ms, status, body))
    }

    async fn sequential(&self, n: usize) -> anyhow::Result<Latencies> {
        let mut ms = Vec::with_capacity(n);
        for _ in 0..n {
            ms.push(self.send().await?);
        }
        Ok(Latencies::new(ms))
    }

    /// `clients` tasks take alerts from a shared count until `n` are sent; returns the
    /// latencies and the phase's wall time.
    async fn concurrent(&self, clients: usize, n: usize) -> anyhow::Result<(Latencies, Duration)> {
        let left = Arc::new(AtomicUsize::new(n));
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(clients);
        for _ in 0..clients {
            let (me, left) = (self.clone(), left.clone());
            tasks.push(tokio::spawn(async move {
                let mut ms = Vec::new();
                while left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| l.checked_sub(1))
                    .is_ok()
                {
                    ms.push(me.send().await?);
                }
                anyhow::Ok(ms)
            }));
        }
        let mut all = Vec::with_capacity(n);
        for task in tasks {
            all.extend(task.await??);
        }
        Ok((Latencies::new(all), started.elapsed()))
    }
}

/// fsyncs counted by strace attached to this process while `work` runs; None without strace.
async fn count_fsyncs<F: Future<Output = anyhow::Result<()>>>(
    work: F,
) -> anyhow::Result<Option<u64>> {
    let out = std::env::temp_dir().join(format!("bench-webhook-strace-{}", std::process::id()));
    let child = Command::new("strace")
        .args(["-f", "-c", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&out)
        .args(["-p", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        work.await?;
        return Ok(None);
    };
    // strace prints "Process N attached" per thread on stderr; give it time to attach to all
    // of them (it seizes the threads listed in /proc/N/task) before the measured work starts.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    if let Ok(Some(status)) = child.try_wait() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        eprintln!("  strace could not attach ({status}): {}", err.trim());
        work.await?;
        return Ok(None);
    }
    work.await?;
    // SIGINT makes strace detach and write its summary; kill(1) because std has no signal API.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await?;
    let summary = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    // Summary rows: "% time  seconds  usecs/call  calls  [errors]  syscall".
    let calls = summary
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let name = *f.last()?;
            (name == "fsync" || name == "fdatasync").then(|| f.get(3)?.parse::<u64>().ok())?
        })
        .sum();
    Ok(Some(calls))
}

// ---------------------------------------------------------------------------------------------
// A burst with the real rate limits (issue 15, item 4)

struct RateLimitedReport {
    answers: Latencies,
    /// The 200s and the 202s apart: a 200 waited for its order's turn within the deadline.
    answers_200: Latencies,
    answers_202: Latencies,
    ok: usize,
    accepted: usize,
    other: Vec<String>,
    orders_seen: usize,
    last_order_s: f64,
    most_in_a_second: usize,
    refused_429: usize,
}

async fn rate_limited_burst(
    args: &Args,
    app_rt: tokio::runtime::Handle,
) -> anyhow::Result<RateLimitedReport> {
    let n = args.rate_limited_burst;
    // Dhan's own caps at the simulator too (SimConfig's default: 10 orders a second).
    let sim = dhan_sim::Sim::spawn(dhan_sim::SimConfig {
        start_time: market_time(),
        ..dhan_sim::SimConfig::default()
    })
    .await?;
    let dir = match &args.data_dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    // No ORDER_RATE_LIMITS, no ACK_DEADLINE_MS: the defaults, as deployed.
    let env = live_env(&sim, dir.path());
    let (base, client, stop_tx) = start_app(&env, &app_rt).await?;
    let target = Target {
        client,
        url: format!("{base}/webhook"),
        prefix: format!(
            "bench-rl-{}-{}",
            std::process::id(),
            Utc::now().timestamp_millis()
        ),
        next: Arc::new(AtomicUsize::new(0)),
        unexpected: Arc::new(AtomicUsize::new(0)),
    };
    // One alert first (connections, the first statements prepared), then 1.2 s so its order
    // has left the 1-second window: the burst starts with all ten slots free.
    target.send_answered().await?;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let orders_before = sim.orders().len();
    let burst_start = sim.now();

    let answers = futures::future::join_all((0..n).map(|_| {
        let target = target.clone();
        tokio::spawn(async move { target.send_answered().await })
    }))
    .await;
    let (mut ms, mut ok, mut accepted, mut other) = (Vec::new(), 0, 0, Vec::new());
    let (mut ms_200, mut ms_202) = (Vec::new(), Vec::new());
    for answer in answers {
        let (latency, status, body) = answer??;
        ms.push(latency);
        match status.as_u16() {
            200 => {
                ok += 1;
                ms_200.push(latency);
            }
            202 => {
                accepted += 1;
                ms_202.push(latency);
            }
            code if other.len() < 3 => other.push(format!("{code} {body}")),
            _ => {}
        }
    }

    // The orders leave at 10 a second: wait for all of them (bounded), then read the
    // simulator's log of order writes.
    let waiting = Instant::now();
    let limit = Duration::from_secs(20) + Duration::from_millis(150) * n as u32;
    while sim.orders().len() < orders_before + n && waiting.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let orders: Vec<_> = sim
        .orders()
        .into_iter()
        .skip(orders_before)
        .filter(|o| o.created_at >= burst_start)
        .collect();
    let last_order_s = orders
        .iter()
        .map(|o| (o.created_at - burst_start).num_milliseconds() as f64 / 1000.0)
        .fold(f64::NAN, f64::max);
    let mut writes: Vec<_> = sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v2/orders" && r.at >= burst_start)
        .collect();
    writes.sort_by_key(|r| r.at);
    let most_in_a_second = (0..writes.len())
        .map(|i| {
            writes[i..]
                .iter()
                .take_while(|w| w.at - writes[i].at < chrono::Duration::seconds(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    let refused_429 = writes.iter().filter(|r| r.status == 429).count();
    let _ = stop_tx.send(());
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(dir);
    Ok(RateLimitedReport {
        answers: Latencies::new(ms),
        answers_200: Latencies::new(ms_200),
        answers_202: Latencies::new(ms_202),
        ok,
        accepted,
        other,
        orders_seen: orders.len(),
        last_order_s,
        most_in_a_second,
        refused_429,
    })
}

fn print_rate_limited(r: &RateLimitedReport, n: usize) {
    let ms = |v: f64| format!("{v:.2} ms");
    println!();
    println!(
        "## SQLite — a burst of {n} alerts with the real rate limits (10/s,250/m,1000/h,7000/d), ACK_DEADLINE_MS 2000"
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| answer p50 / p99 / max | {} / {} / {} |",
        ms(r.answers.pct(0.5)),
        ms(r.answers.pct(0.99)),
        ms(r.answers.max())
    );
    println!(
        "| answered 200: p50 / max; answered 202: p50 / max | {} / {}; {} / {} |",
        ms(r.answers_200.pct(0.5)),
        ms(r.answers_200.max()),
        ms(r.answers_202.pct(0.5)),
        ms(r.answers_202.max())
    );
    println!(
        "| answered within 100 ms (the issue's target: all) | {} of {n} |",
        r.answers.0.iter().filter(|ms| **ms <= 100.0).count()
    );
    println!(
        "| answered 200 / 202 / other | {} / {} / {} |",
        r.ok,
        r.accepted,
        n - r.ok - r.accepted
    );
    println!(
        "| orders at the simulator / last one after | {} of {n} / {:.1} s |",
        r.orders_seen, r.last_order_s
    );
    println!(
        "| most order writes in any second / refused 429 | {} / {} |",
        r.most_in_a_second, r.refused_429
    );
    for o in &r.other {
        println!("other answer: {o}");
    }
}

// ---------------------------------------------------------------------------------------------
// One backend's run

struct Report {
    backend: String,
    journal: String,
    seq: Latencies,
    seq_cpu_app: f64,
    seq_cpu_all: f64,
    conc: Vec<(usize, Latencies, Duration)>,
    conc10_cpu_app: f64,
    burst_answers: Latencies,
    burst_orders: Latencies,
    burst_orders_seen: usize,
    burst: usize,
    fsync_seq: Option<f64>,
    fsync_conc: Option<f64>,
    peak_rss_mib: Option<f64>,
    rss_reset: bool,
    unexpected: usize,
    total_alerts: usize,
}

/// A fresh database on the server `server_url` names, so no earlier run's journal (orders to
/// reconcile, a token sealed with another key) is part of the measure; dropped afterwards.
struct BenchDatabase {
    server: sqlx::postgres::PgConnectOptions,
    name: String,
    url: String,
}

impl BenchDatabase {
    async fn create(server_url: &str) -> anyhow::Result<Self> {
        use sqlx::{ConnectOptions as _, Connection as _, Executor as _};
        let server: sqlx::postgres::PgConnectOptions = server_url.parse()?;
        let name = format!("dhanhook_bench_{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect_with(&server).await?;
        conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE {name}"
        ))))
        .await?;
        let _ = conn.close().await;
        let url = server.clone().database(&name).to_url_lossy().to_string();
        Ok(Self { server, name, url })
    }

    async fn drop(self) {
        use sqlx::{Connection as _, Executor as _};
        let Ok(mut conn) = sqlx::PgConnection::connect_with(&self.server).await else {
            return;
        };
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = conn.execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql))).await {
            eprintln!("could not drop the benchmark database {}: {e}", self.name);
        }
        let _ = conn.close().await;
    }
}

/// The environment of a live run against `sim` with its journal in `dir` (SQLite unless
/// `DATABASE_URL` is added): the real rate limits unless `ORDER_RATE_LIMITS` is added.
fn live_env(sim: &dhan_sim::SimHandle, dir: &std::path::Path) -> Vec<(String, String)> {
    let c = dhan_sim::SimConfig::default();
    vec![
        ("HOST".into(), "127.0.0.1".into()),
        ("PORT".into(), "0".into()),
        ("DATA_DIR".into(), dir.display().to_string()),
        ("WEBHOOK_SECRET".into(), SECRET.into()),
        ("INSTRUMENTS_PATH".into(), SAMPLE.into()),
        ("INSTRUMENTS_URL".into(), "off".into()),
        ("ENABLE_DHAN".into(), "true".into()),
        ("DHAN_BASE_URL".into(), sim.base_url()),
        ("DHAN_AUTH_URL".into(), sim.auth_url()),
        ("DHAN_CLIENT_ID".into(), c.client_id),
        ("DHAN_PIN".into(), c.pin),
        ("DHAN_TOTP_SECRET".into(), c.totp_secret),
        ("MAX_ORDERS_PER_DAY".into(), "100000000".into()),
    ]
}

/// Starts the application on `app_rt` with `env` (later entries win) and waits until it is
/// ready; returns its base URL, a client for it, and the sender that stops it.
async fn start_app(
    env: &[(String, String)],
    app_rt: &tokio::runtime::Handle,
) -> anyhow::Result<(String, reqwest::Client, tokio::sync::oneshot::Sender<()>)> {
    let settings = Settings::from_lookup(|k| {
        env.iter()
            .rev()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    })?;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let base = app_rt
        .spawn(async move {
            let app =
                Application::build(settings, Arc::new(OffsetClock::starting_at(market_time())))
                    .await?;
            let base = format!("http://127.0.0.1:{}", app.port());
            tokio::spawn(app.run_until_stopped(async move {
                let _ = stop_rx.await;
            }));
            anyhow::Ok(base)
        })
        .await??;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    // The readiness check passes once the token is minted and the journal is open.
    let mut ready = false;
    for _ in 0..1000 {
        if client
            .get(format!("{base}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::ensure!(ready, "the application did not become ready");
    Ok((base, client, stop_tx))
}

async fn run_backend(
    args: &Args,
    postgres: Option<&str>,
    app_rt: tokio::runtime::Handle,
) -> anyhow::Result<Report> {
    let database = match postgres {
        Some(server) => Some(BenchDatabase::create(server).await?),
        None => None,
    };
    let report = measure_backend(args, database.as_ref().map(|d| d.url.as_str()), app_rt).await;
    if let Some(db) = database {
        db.drop().await;
    }
    report
}

async fn measure_backend(
    args: &Args,
    postgres: Option<&str>,
    app_rt: tokio::runtime::Handle,
) -> anyhow::Result<Report> {
    let rss_reset = reset_peak_rss();
    let sim = dhan_sim::Sim::spawn(dhan_sim::SimConfig {
        start_time: market_time(),
        orders_per_second: 1_000_000,
        ..dhan_sim::SimConfig::default()
    })
    .await?;
    let dir = match &args.data_dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let journal = match postgres {
        Some(_) => "PostgreSQL".to_owned(),
        None => format!(
            "SQLite in {} ({})",
            dir.path().display(),
            fs_type(dir.path())
        ),
    };
    let mut env = live_env(&sim, dir.path());
    // Lifted: the benchmark measures dhanhook's own cost, not Dhan's order caps.
    env.push(("ORDER_RATE_LIMITS".into(), "1000000/s".into()));
    if let Some(url) = postgres {
        env.push(("DATABASE_URL".into(), url.to_owned()));
        // Live mode on PostgreSQL stores the (simulated) Dhan token encrypted: a fresh random
        // key per run, never written anywhere.
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        use base64::Engine as _;
        env.push((
            "TOKEN_KEY".into(),
            base64::engine::general_purpose::STANDARD.encode(key),
        ));
    }
    let (base, client, stop_tx) = start_app(&env, &app_rt).await?;
    let target = Target {
        client,
        url: format!("{base}/webhook"),
        prefix: format!(
            "bench-{}-{}",
            std::process::id(),
            Utc::now().timestamp_millis()
        ),
        next: Arc::new(AtomicUsize::new(0)),
        unexpected: Arc::new(AtomicUsize::new(0)),
    };

    // Warm-up: connections, the instrument lookup, the first statements prepared.
    target.sequential(20).await?;

    println!("  sequential: {} alerts", args.sequential);
    let (app0, all0) = cpu_ticks();
    let seq = target.sequential(args.sequential).await?;
    let (app1, all1) = cpu_ticks();
    let per = |ticks: u64, n: usize| ticks as f64 / TICKS_PER_SEC * 1000.0 / n as f64;
    let seq_cpu_app = per(app1 - app0, args.sequential);
    let seq_cpu_all = per(all1 - all0, args.sequential);

    let mut conc = Vec::new();
    let mut conc10_cpu_app = f64::NAN;
    for clients in [10, 50] {
        println!("  {clients} clients: {} alerts", args.concurrent);
        let (a0, _) = cpu_ticks();
        let (lat, wall) = target.concurrent(clients, args.concurrent).await?;
        let (a1, _) = cpu_ticks();
        if clients == 10 {
            conc10_cpu_app = per(a1 - a0, args.concurrent);
        }
        conc.push((clients, lat, wall));
    }

    println!("  burst: {} alerts at once", args.burst);
    let orders_before = sim.orders().len();
    let burst_start = sim.now();
    let (burst_answers, _) = target.concurrent(args.burst, args.burst).await?;
    // The simulator records each order when it accepts it. An alert answered 200 "placed" has
    // its order there already; one answered 202 at the deadline may still be on its way, so
    // the orders are awaited (up to 10 s) before they are counted.
    let burst_orders_of = |orders: &[dhan_sim::SimOrder]| -> Vec<f64> {
        orders
            .iter()
            .skip(orders_before)
            .filter(|o| o.created_at >= burst_start)
            .map(|o| (o.created_at - burst_start).num_microseconds().unwrap_or(0) as f64 / 1000.0)
            .collect()
    };
    let waiting = Instant::now();
    let mut burst_orders = burst_orders_of(&sim.orders());
    while burst_orders.len() < args.burst && waiting.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        burst_orders = burst_orders_of(&sim.orders());
    }
    let burst_orders = Latencies::new(burst_orders);
    let burst_orders_seen = burst_orders.0.len();

    let (mut fsync_seq, mut fsync_conc) = (None, None);
    if args.fsync_sample > 0 {
        println!(
            "  fsyncs (strace attached): {} sequential, then {} with 10 clients",
            args.fsync_sample, args.fsync_sample
        );
        let n = args.fsync_sample;
        fsync_seq = count_fsyncs(async { target.sequential(n).await.map(drop) })
            .await?
            .map(|c| c as f64 / n as f64);
        fsync_conc = count_fsyncs(async { target.concurrent(10, n).await.map(drop) })
            .await?
            .map(|c| c as f64 / n as f64);
    }

    let peak_rss_mib = status_kib("VmHWM:").map(|k| k as f64 / 1024.0);
    let total_alerts = target.next.load(Ordering::Relaxed);
    let unexpected = target.unexpected.load(Ordering::Relaxed);
    let _ = stop_tx.send(());
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(dir);
    Ok(Report {
        backend: if postgres.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
        .to_owned(),
        journal,
        seq,
        seq_cpu_app,
        seq_cpu_all,
        conc,
        conc10_cpu_app,
        burst_answers,
        burst_orders,
        burst_orders_seen,
        burst: args.burst,
        fsync_seq,
        fsync_conc,
        peak_rss_mib,
        rss_reset,
        unexpected,
        total_alerts,
    })
}

fn print_report(r: &Report, args: &Args) {
    let ms = |v: f64| format!("{v:.2} ms");
    let fsync = |v: Option<f64>| match v {
        Some(v) => format!("{v:.2}"),
        None if args.fsync_sample == 0 => "not measured (--fsync-sample 0)".to_owned(),
        None => "not measured (strace not installed, or it could not attach)".to_owned(),
    };
    println!();
    println!("## {} — journal: {}", r.backend, r.journal);
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| sequential ({} alerts) answer p50 / p99 / max | {} / {} / {} |",
        args.sequential,
        ms(r.seq.pct(0.5)),
        ms(r.seq.pct(0.99)),
        ms(r.seq.max())
    );
    for (clients, lat, wall) in &r.conc {
        println!(
            "| {clients} clients ({} alerts) | {:.0} req/s, p50 {} / p99 {} / max {} |",
            lat.0.len(),
            lat.0.len() as f64 / wall.as_secs_f64(),
            ms(lat.pct(0.5)),
            ms(lat.pct(0.99)),
            ms(lat.max())
        );
    }
    println!(
        "| burst of {}: alert to order at the broker, first / p50 / last | {} / {} / {} ({} of {} orders) |",
        r.burst,
        ms(r.burst_orders.pct(0.0)),
        ms(r.burst_orders.pct(0.5)),
        ms(r.burst_orders.max()),
        r.burst_orders_seen,
        r.burst
    );
    println!(
        "| burst of {}: answer p50 / p99 / max | {} / {} / {} |",
        r.burst,
        ms(r.burst_answers.pct(0.5)),
        ms(r.burst_answers.pct(0.99)),
        ms(r.burst_answers.max())
    );
    println!(
        "| fsyncs per alert by this process, sequential / 10 clients | {} / {}{} |",
        fsync(r.fsync_seq),
        fsync(r.fsync_conc),
        if r.backend == "PostgreSQL" {
            " (the PostgreSQL server flushes its WAL itself: not counted)"
        } else {
            ""
        }
    );
    println!(
        "| CPU per alert, application threads: sequential / 10 clients | {} / {} |",
        ms(r.seq_cpu_app),
        ms(r.conc10_cpu_app)
    );
    println!(
        "| CPU per alert, whole process (with client and simulator), sequential | {} |",
        ms(r.seq_cpu_all)
    );
    println!(
        "| peak RSS (VmHWM, whole process{}) | {} |",
        if r.rss_reset {
            ""
        } else {
            ", not reset between backends"
        },
        r.peak_rss_mib
            .map_or_else(|| "unknown".to_owned(), |m| format!("{m:.1} MiB"))
    );
    println!(
        "| alerts sent / answers other than 200 \"placed\" | {} / {} |",
        r.total_alerts, r.unexpected
    );
}

/// A database URL's password is not printed: the output is meant to be pasted into BENCHMARKS.md.
fn redact(arg: String) -> String {
    match (arg.find("://"), arg.rfind('@')) {
        (Some(scheme), Some(at)) if scheme < at => match arg[scheme + 3..at].find(':') {
            Some(colon) => format!("{}:***{}", &arg[..scheme + 3 + colon], &arg[at..]),
            None => arg,
        },
        _ => arg,
    }
}

fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = parse_args()?;
    println!("# bench_webhook");
    println!();
    println!("machine: {}", machine());
    println!(
        "command: {}",
        std::env::args().map(redact).collect::<Vec<_>>().join(" ")
    );
    // Other work on the machine (a build, CI) competes for the same cores: shown, not hidden.
    let load_before = loadavg();
    // The client and the simulator run here; the application gets its own runtime (run_backend).
    let bench_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name(BENCH_THREADS)
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()?;
    let mut backends = Vec::new();
    if !args.only_rate_limited {
        backends.push(("SQLite", None));
        if let Some(url) = args.postgres.as_deref() {
            backends.push(("PostgreSQL", Some(url)));
        }
    }
    for (name, url) in backends {
        println!("{name}:");
        // The application's own runtime: its threads are named, so their CPU time can be read
        // apart from the client's; idle blocking threads are kept so their time is not lost on
        // exit. Built and shut down here, outside any async context, as tokio requires.
        let app_rt = tokio::runtime::Builder::new_multi_thread()
            .thread_name(APP_THREADS)
            .thread_keep_alive(Duration::from_secs(3600))
            .enable_all()
            .build()?;
        let report = bench_rt.block_on(run_backend(&args, url, app_rt.handle().clone()));
        app_rt.shutdown_timeout(Duration::from_millis(500));
        // Printed at once: a failing second backend does not lose the first one's figures.
        print_report(&report?, &args);
    }
    if args.rate_limited_burst > 0 {
        println!(
            "SQLite, real rate limits: {} alerts at once",
            args.rate_limited_burst
        );
        let app_rt = tokio::runtime::Builder::new_multi_thread()
            .thread_name(APP_THREADS)
            .enable_all()
            .build()?;
        let report = bench_rt.block_on(rate_limited_burst(&args, app_rt.handle().clone()));
        app_rt.shutdown_timeout(Duration::from_millis(500));
        print_rate_limited(&report?, args.rate_limited_burst);
    }
    println!();
    println!("load average before / after: {load_before} / {}", loadavg());
    Ok(())
}
