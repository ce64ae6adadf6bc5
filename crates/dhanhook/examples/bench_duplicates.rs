//! Benchmark: how fast a duplicate delivery is answered, in live mode against dhan-sim and in
//! paper mode.
//!
//! Run: `cargo run --release -p dhanhook --example bench_duplicates`
//! Each run starts the real application on 127.0.0.1 (a temporary data folder, SQLite), sends
//! one alert, waits for its answer (live: ACCEPTED at the simulated Dhan), then sends the same
//! alert again N times, one after another, and prints the latency of those answers as the
//! client sees them (p50, p90, p99, max) and how many calls reached the broker meanwhile
//! (none is the promise). Figures, not asserts: BENCHMARKS.md records its output.

use std::{sync::Arc, time::Instant};

use chrono::{DateTime, Utc};
use dhanhook::{clock::OffsetClock, config::Settings, startup::Application};
use serde_json::{Value, json};

const DUPLICATES: usize = 500;
const SECRET: &str = "bench-webhook-secret-0123456789abcdef";
const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/scrip-master-sample.csv");

/// Tuesday 2026-12-01 10:00 IST: NSE is open, so the alert is placed now.
fn market_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T10:00:00+05:30")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|_| Utc::now())
}

async fn start(vars: Vec<(&str, String)>) -> anyhow::Result<(String, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let mut env: Vec<(String, String)> = vec![
        ("HOST".into(), "127.0.0.1".into()),
        ("PORT".into(), "0".into()),
        ("DATA_DIR".into(), dir.path().display().to_string()),
        ("WEBHOOK_SECRET".into(), SECRET.into()),
        ("INSTRUMENTS_PATH".into(), SAMPLE.into()),
        ("INSTRUMENTS_URL".into(), "off".into()),
    ];
    env.extend(vars.into_iter().map(|(k, v)| (k.to_owned(), v)));
    let settings = Settings::from_lookup(|k| {
        env.iter()
            .rev()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    })?;
    let app =
        Application::build(settings, Arc::new(OffsetClock::starting_at(market_time()))).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Ok((base, dir))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Sends the alert once and then `DUPLICATES` times; returns the sorted latencies (ms) of the
/// duplicates, and how many requests the simulated Dhan got while they were answered.
async fn measure(
    client: &reqwest::Client,
    base: &str,
    sim: Option<&dhan_sim::SimHandle>,
) -> anyhow::Result<(Vec<f64>, usize)> {
    let alert = json!({"secret": SECRET, "strategy": "bench", "id": "dup-1",
        "symbol": "NSE:RELIANCE", "action": "buy", "quantity": 1, "product": "intraday",
        "price": 2500});
    // The readiness check passes once the token is minted (live) and the journal is open.
    for _ in 0..500 {
        let ready = client.get(format!("{base}/ready")).send().await?;
        if ready.status().is_success() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let send = || async {
        let answer: Value = client
            .post(format!("{base}/webhook"))
            .json(&alert)
            .send()
            .await?
            .json()
            .await?;
        anyhow::Ok(answer)
    };
    let first = send().await?;
    println!(
        "  first delivery: {} ({})",
        first["status"], first["legs"][0]["status"]
    );
    let requests = || sim.map_or(0, |s| s.requests().len());
    let before = requests();
    let mut ms = Vec::with_capacity(DUPLICATES);
    for _ in 0..DUPLICATES {
        let started = Instant::now();
        let answer = send().await?;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(answer["duplicate"] == true, "not a duplicate: {answer}");
    }
    ms.sort_by(f64::total_cmp);
    Ok((ms, requests() - before))
}

fn report(ms: &[f64]) {
    println!(
        "  {} duplicates: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms.len(),
        percentile(ms, 0.5),
        percentile(ms, 0.9),
        percentile(ms, 0.99),
        ms.last().copied().unwrap_or_default()
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();

    println!("live mode, against dhan-sim (ACCEPTED orders):");
    let sim = dhan_sim::Sim::spawn(dhan_sim::SimConfig {
        start_time: market_time(),
        ..dhan_sim::SimConfig::default()
    })
    .await?;
    let c = dhan_sim::SimConfig::default();
    let (base, _live_dir) = start(vec![
        ("ENABLE_DHAN", "true".into()),
        ("DHAN_BASE_URL", sim.base_url()),
        ("DHAN_AUTH_URL", sim.auth_url()),
        ("DHAN_CLIENT_ID", c.client_id.clone()),
        ("DHAN_PIN", c.pin.clone()),
        ("DHAN_TOTP_SECRET", c.totp_secret.clone()),
    ])
    .await?;
    let (ms, calls) = measure(&client, &base, Some(&sim)).await?;
    report(&ms);
    println!(
        "  orders at Dhan: {}; requests Dhan got while the duplicates were answered: {calls}",
        sim.orders().len()
    );

    println!("paper mode:");
    let (base, _paper_dir) = start(vec![]).await?;
    let (ms, _) = measure(&client, &base, None).await?;
    report(&ms);
    Ok(())
}
