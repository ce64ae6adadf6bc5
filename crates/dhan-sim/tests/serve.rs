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
