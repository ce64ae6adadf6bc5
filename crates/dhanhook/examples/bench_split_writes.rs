//! Benchmark: what a server that sends an answer's head and body in two writes costs the Dhan
//! client (issue 15, item 5; README "Performance notes", BENCHMARKS.md "Split-write servers").
//!
//! Run: `cargo run --release -p dhanhook --example bench_split_writes [-- --calls N]`
//! (`N` sequential calls per row, 300 by default).
//!
//! What it does: starts dhan-sim in this process twice, with `split_writes` off and on (on:
//! every response leaves in two writes with Nagle's algorithm on, see dhan-sim's `split.rs`),
//! and times `N` sequential calls on one kept-alive connection, send to full answer read:
//! - through dhanhook's real `DhanClient`: `POST /v2/orders` (an order placement, the
//!   simulator's order rate limit lifted) and `GET /v2/profile`;
//! - through a plain keep-alive reqwest client set up as `DhanClient` was before its transport
//!   re-armed `TCP_QUICKACK` (`GET /v2/profile`): the figures the client paid before.
//!
//! Prints p50, p99 and max per row. Figures, not asserts: BENCHMARKS.md records the output.

use std::time::{Duration, Instant};

use dhan_sim::{Sim, SimConfig};
use dhanhook::dhan::{DhanClient, DhanUrls, types::OrderBody};
use secrecy::{ExposeSecret, SecretString};

const CLIENT_ID: &str = "1000000001";

fn order(i: usize) -> OrderBody {
    OrderBody {
        dhan_client_id: CLIENT_ID.to_owned(),
        correlation_id: Some(format!("bench{i}")),
        transaction_type: "BUY",
        exchange_segment: "NSE_EQ".to_owned(),
        product_type: "INTRADAY",
        order_type: "LIMIT",
        validity: "DAY",
        security_id: "2885".to_owned(),
        quantity: 1,
        price: Some(2400.0),
        trigger_price: None,
        after_market_order: None,
        amo_time: None,
    }
}

/// `(p50, p99, max)` in milliseconds.
fn summary(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1e3
    };
    (at(0.50), at(0.99), at(1.0))
}

fn print_row(what: &str, samples: Vec<Duration>) {
    let n = samples.len();
    let (p50, p99, max) = summary(samples);
    println!("  {what:<46} n={n:<5} p50 {p50:>7.2} ms   p99 {p99:>7.2} ms   max {max:>7.2} ms");
}

async fn run(split_writes: bool, calls: usize) -> anyhow::Result<()> {
    let sim = Sim::spawn(SimConfig {
        split_writes,
        orders_per_second: 1_000_000,
        ..SimConfig::default()
    })
    .await?;
    println!(
        "dhan-sim with split_writes: {split_writes} ({})",
        if split_writes {
            "head and body in two writes, Nagle on"
        } else {
            "head and body in one write"
        }
    );
    let client = DhanClient::new(
        DhanUrls {
            base: sim.base_url(),
            auth: sim.auth_url(),
        },
        CLIENT_ID,
    )?;
    let token = client
        .generate_access_token(&SecretString::from("123456"), &sim.current_totp())
        .await?
        .access_token;

    // A first call opens the connection; every timed call reuses it.
    client.profile(&token).await?;
    let mut orders = Vec::with_capacity(calls);
    for i in 0..calls {
        let started = Instant::now();
        let ack = client.place_order(&token, &order(i)).await?;
        orders.push(started.elapsed());
        anyhow::ensure!(!ack.order_id.is_empty(), "an order id in every answer");
    }
    print_row("DhanClient: POST /v2/orders (order placement)", orders);
    let mut profiles = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        client.profile(&token).await?;
        profiles.push(started.elapsed());
    }
    print_row("DhanClient: GET /v2/profile", profiles);

    // reqwest as DhanClient used it before (keep-alive, TCP_NODELAY on, no QUICKACK).
    let before = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let url = format!("{}/profile", sim.base_url());
    let get = || {
        before
            .get(&url)
            .header("access-token", token.expose_secret())
            .header("client-id", CLIENT_ID)
    };
    get().send().await?.error_for_status()?.bytes().await?;
    let mut plain = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        get().send().await?.error_for_status()?.bytes().await?;
        plain.push(started.elapsed());
    }
    print_row("reqwest keep-alive (before): GET /v2/profile", plain);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut calls = 300;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--calls" => {
                calls = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--calls needs a value"))?
                    .parse()?;
            }
            other => anyhow::bail!("unknown option {other}; see examples/bench_split_writes.rs"),
        }
    }
    anyhow::ensure!(calls > 0, "--calls must be positive");
    let _ = rustls::crypto::ring::default_provider().install_default();
    println!(
        "{calls} sequential calls per row, one kept-alive connection each, on {} CPU(s)",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    for split in [false, true] {
        run(split, calls).await?;
    }
    Ok(())
}
