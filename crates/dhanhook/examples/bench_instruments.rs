//! Benchmark: loading a scrip master the size of Dhan's (250,000 rows) and resolving tickers.
//!
//! Run: `cargo run --release -p dhanhook --example bench_instruments`
//! It writes a synthetic file of real-shaped rows (equities, index and stock futures and
//! options, MCX) to a temporary folder, then prints the load time (best of 3), the memory the
//! loaded index holds (resident set growth), and the time per resolution. Figures, not asserts:
//! BENCHMARKS.md records its output.

use std::{fmt::Write as _, io::Write as _, time::Instant};

use chrono::NaiveDate;
use dhanhook::{
    alert::parse_signal,
    instruments::{QuantityUnit, master},
};

const ROWS: usize = 250_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn synthetic_master() -> String {
    let mut out = String::with_capacity(ROWS * 130);
    out.push_str(master::SAMPLE.lines().next().unwrap_or_default());
    out.push('\n');
    let months = ["Dec2026", "Jan2027", "Feb2027"];
    let expiries = ["2026-12-29", "2027-01-26", "2027-02-23"];
    let mut id = 100_000u64;
    let mut n = 0;
    let mut underlying = 0;
    while n < ROWS {
        let name = format!("STOCK{underlying:05}");
        underlying += 1;
        let _ = writeln!(
            out,
            "NSE,E,{id},EQUITY,0,{name},1.0,{name} Ltd,,,,5.0000,NA,ES,EQ,{name} LIMITED"
        );
        id += 1;
        n += 1;
        for (m, e) in months.iter().zip(expiries) {
            let _ = writeln!(
                out,
                "NSE,D,{id},FUTSTK,0,{name}-{m}-FUT,500.0,{name} FUT,{e} 14:30:00,-0.01000,XX,10.0,M,FUT,,"
            );
            id += 1;
            n += 1;
            for strike in (1000..1400).step_by(50) {
                for kind in ["CE", "PE"] {
                    let _ = writeln!(
                        out,
                        "NSE,D,{id},OPTSTK,0,{name}-{m}-{strike}-{kind},500.0,{name} {strike} {kind},{e} 14:30:00,{strike}.00000,{kind},5.0000,M,OP,,"
                    );
                    id += 1;
                    n += 1;
                }
            }
        }
    }
    out
}

fn main() {
    let text = synthetic_master();
    let dir = std::env::temp_dir().join(format!("dhanhook-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("api-scrip-master.csv");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write file");
    let size_mb = text.len() as f64 / 1_048_576.0;
    drop(text);

    // Memory first, from a single load: the resident set before and after.
    let before = rss_kib();
    let instruments = master::load(&path).expect("load");
    let held_mib = rss_kib().saturating_sub(before) as f64 / 1024.0;
    let rows = instruments.len();

    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let loaded = master::load(&path).expect("load");
        best = best.min(started.elapsed().as_secs_f64());
        drop(loaded);
    }

    let today = NaiveDate::from_ymd_opt(2026, 12, 1).expect("date");
    let legs: Vec<_> = [
        "NSE:STOCK00042",
        "NSE:STOCK01234-Jan2027-FUT",
        "NSE:STOCK00007",
    ]
    .iter()
    .map(|s| {
        let v =
            serde_json::json!({"symbol": s, "action": "buy", "quantity": 1, "product": "intraday"});
        parse_signal(v.as_object().expect("object"))
            .expect("valid")
            .legs
            .remove(0)
    })
    .collect();
    let started = Instant::now();
    let iterations = 100_000;
    for i in 0..iterations {
        let leg = &legs[i % legs.len()];
        let _ = instruments
            .resolve(leg, today, QuantityUnit::Lots)
            .expect("resolves");
    }
    let per_resolve_us = started.elapsed().as_secs_f64() * 1e6 / iterations as f64;

    println!("scrip master: {rows} rows, {size_mb:.1} MB on disk");
    println!("load (best of 3): {:.0} ms", best * 1000.0);
    println!(
        "memory held by the loaded index: ~{held_mib:.0} MiB (resident set growth of one load)"
    );
    println!("resolve one ticker: {per_resolve_us:.2} µs");
    let _ = std::fs::remove_dir_all(&dir);
}
