//! `serve` (used by `dhanhook sim`) and `Sim::spawn_at` answer on the address they are given.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use dhan_sim::{Sim, SimConfig};

/// A port that was free a moment ago (the OS picks it).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test]
async fn serve_answers_on_the_given_address() {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let server = tokio::spawn(dhan_sim::serve(addr, SimConfig::default()));
    let http = common::http();
    let url = format!("http://{addr}/v2/profile");
    let mut status = None;
    for _ in 0..200 {
        if let Ok(resp) = http.get(&url).send().await {
            status = Some(resp.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, Some(401), "a REST call without a token is refused");
    server.abort();
}

#[tokio::test]
async fn spawn_at_uses_the_given_address() {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let sim = Sim::spawn_at(addr, SimConfig::default())
        .await
        .expect("spawn");
    assert_eq!(sim.addr(), addr);
    assert_eq!(sim.base_url(), format!("http://{addr}/v2"));
    assert_eq!(sim.auth_url(), format!("http://{addr}"));
    let resp = common::http()
        .get(format!("{}/profile", sim.base_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);
}

/// `split_writes` changes how a response is written (head, then body), never what: answers
/// on a kept-alive connection arrive whole. How long the split costs a client is measured by
/// benchmarks, not asserted here.
#[tokio::test]
async fn split_writes_still_answer_whole_responses() {
    let sim = Sim::spawn(SimConfig {
        split_writes: true,
        ..SimConfig::default()
    })
    .await
    .expect("spawn");
    let http = common::http();
    for _ in 0..3 {
        let resp = http
            .get(format!("{}/profile", sim.base_url()))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 401);
        let body: serde_json::Value = resp.json().await.expect("a whole JSON body");
        assert!(body.is_object(), "{body}");
    }
}
