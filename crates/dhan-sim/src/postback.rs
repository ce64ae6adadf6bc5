//! The postback sender (dhan-api.md §8): on every order status change the simulator
//! POSTs the order-book row plus `filled_qty` as JSON to the configured postback URL.
//!
//! Deviation from Dhan, on purpose: Dhan never calls `localhost` or `127.0.0.1` URLs; the
//! simulator does, because tests run on loopback. Only `http://` URLs are supported.
//!
//! Delivery is best effort, as on Dhan: one task sends the events in order, each with a
//! short timeout, apart from the order state machine (which only publishes to a channel
//! and never waits). Failures are recorded for tests ([`crate::SimHandle::postbacks`]) and
//! otherwise ignored; nothing is retried.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::broadcast::{Receiver, error::RecvError};

use crate::state::{PostbackAttempt, Shared};

/// Connecting, sending and reading the status of one postback together take at most this.
const POSTBACK_TIMEOUT: Duration = Duration::from_secs(2);

/// How many attempts the record keeps.
const RECORD_CAP: usize = 10_000;

/// Sends postbacks for the events on `events` until the simulator goes away.
pub(crate) async fn run(shared: Arc<Shared>, mut events: Receiver<Value>) {
    loop {
        let mut row = match events.recv().await {
            Ok(row) => row,
            Err(RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "dhan-sim: postback sender fell behind");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(url) = shared.lock().postback_url.clone() else {
            continue;
        };
        if let Some(obj) = row.as_object_mut() {
            let filled = obj.get("filledQty").cloned().unwrap_or(Value::from(0));
            obj.insert("filled_qty".into(), filled);
        }
        let mut attempt = PostbackAttempt {
            url: url.clone(),
            order_id: row["orderId"].as_str().unwrap_or_default().to_owned(),
            order_status: row["orderStatus"].as_str().unwrap_or_default().to_owned(),
            status: None,
            error: None,
        };
        match tokio::time::timeout(POSTBACK_TIMEOUT, post(&url, &row)).await {
            Ok(Ok(status)) => attempt.status = Some(status),
            Ok(Err(e)) => attempt.error = Some(e),
            Err(_) => attempt.error = Some("timed out".into()),
        }
        let mut state = shared.lock();
        if state.postbacks.len() >= RECORD_CAP {
            state.postbacks.pop_front();
        }
        state.postbacks.push_back(attempt);
    }
}

/// One HTTP/1.1 POST; returns the receiver's status.
async fn post(url: &str, body: &Value) -> Result<u16, String> {
    let uri: Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("only http:// postback URLs are supported by the simulator".into());
    }
    let authority = uri.authority().ok_or("URL has no host")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((authority.host(), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::post(path)
        .header(HOST, authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| format!("request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    Ok(response.status().as_u16())
}
