//! HTTP plumbing: the accept loop, turning a hyper request into a [`Req`], recording it
//! (secrets masked), routing it to the auth or REST host, the order-update WebSocket or
//! the `/sim/` controls, and writing the [`Reply`].
//!
//! hyper is driven directly (not through a framework) for one reason: the
//! `OrderDropAfterAccept` fault must close the TCP connection *before* any response
//! bytes are written, which needs control over each connection's task.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use chrono::SecondsFormat;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::error::ApiError;
use crate::split::SplitWrites;
use crate::state::{RecordedRequest, Shared};
use crate::{auth, control, feed, rest};

/// The order-update WebSocket's path (dhan-api.md §9 serves it on its own host).
pub(crate) const ORDER_UPDATE_PATH: &str = "/order-update";

/// Request bodies larger than this are refused (orders are a few hundred bytes).
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Query parameters whose values are secrets and never enter the request log.
const MASKED_QUERY_KEYS: &[&str] = &["pin", "totp"];

/// A request reduced to what the handlers need.
#[derive(Debug)]
pub(crate) struct Req {
    pub(crate) method: Method,
    pub(crate) path: String,
    /// Path segments after the leading `/`, percent-decoded.
    pub(crate) segments: Vec<String>,
    /// Query pairs, decoded as `application/x-www-form-urlencoded`.
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// The address the request came from: the IP "Dhan sees" for the static-IP check.
    pub(crate) peer: std::net::IpAddr,
}

impl Req {
    pub(crate) fn query_param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A header as text; a header that is not valid UTF-8 counts as absent.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What a handler wants sent back.
#[derive(Debug)]
pub(crate) enum Reply {
    Json(u16, Value),
    /// 302 to this location (the consent login page).
    Redirect(String),
    /// Close the connection without answering.
    Drop,
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply::Json(e.status, e.body)
    }
}

impl Reply {
    pub(crate) fn ok(body: Value) -> Self {
        Reply::Json(200, body)
    }

    fn status(&self) -> u16 {
        match self {
            Reply::Json(status, _) => *status,
            Reply::Redirect(_) => 302,
            Reply::Drop => 0,
        }
    }
}

/// The API gateway's own error shape, used for unknown paths and wrong methods.
pub(crate) fn gateway_error(shared: &Shared, status: u16, error: &str, path: &str) -> Reply {
    let now = shared.lock().now();
    Reply::Json(
        status,
        json!({
            "timestamp": now.to_rfc3339_opts(SecondsFormat::Millis, false),
            "status": status,
            "error": error,
            "path": path,
        }),
    )
}

/// Accepts connections forever, serving each on its own task.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(serve_connection(stream, peer.ip(), shared.clone()));
            }
            Err(e) => {
                // Usually running out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "dhan-sim: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: std::net::IpAddr,
    shared: Arc<Shared>,
) {
    // A handler that wants the connection dropped signals here; dropping the connection
    // future then closes the socket with nothing written.
    let kill = Arc::new(Notify::new());
    let split = shared.config.split_writes;
    let service = {
        let kill = kill.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            let kill = kill.clone();
            async move { Ok::<_, Infallible>(handle(shared, kill, peer, req).await) }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new());
    // Upgrades: the order-update WebSocket is served on the same listener.
    let conn = builder
        .serve_connection(TokioIo::new(SplitWrites::new(stream, split)), service)
        .with_upgrades();
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "dhan-sim: connection ended with an error");
            }
        }
        () = kill.notified() => {
            tracing::debug!("dhan-sim: dropping connection (injected fault)");
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    kill: Arc<Notify>,
    peer: std::net::IpAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let at = shared.lock().now();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or("").to_owned();

    if path == ORDER_UPDATE_PATH {
        let method = parts.method.to_string();
        let (status, response) = feed::upgrade(shared.clone(), parts).await;
        shared.lock().record(RecordedRequest {
            method,
            path,
            query: mask_query(&raw_query),
            status,
            at,
        });
        return response;
    }

    let reply = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => {
            let req = Req {
                method: parts.method.clone(),
                segments: path
                    .trim_start_matches('/')
                    .split('/')
                    .map(|s| percent_decode(s, false))
                    .collect(),
                path: path.clone(),
                query: parse_query(&raw_query),
                headers: parts.headers,
                body: collected.to_bytes(),
                peer,
            };
            dispatch(&shared, &req).await
        }
        Err(_) => ApiError::dh(413, "Input_Exception", "DH-905", "Request body too large").into(),
    };

    shared.lock().record(RecordedRequest {
        method: parts.method.to_string(),
        path,
        query: mask_query(&raw_query),
        status: reply.status(),
        at,
    });

    match reply {
        Reply::Json(status, body) => json_response(status, &body),
        Reply::Redirect(location) => {
            let mut resp = json_response(302, &json!({"status": "redirect"}));
            if let Ok(value) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(LOCATION, value);
            }
            resp
        }
        Reply::Drop => {
            kill.notify_one();
            // Never answer: the connection task drops this future with the connection.
            std::future::pending().await
        }
    }
}

fn json_response(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Both hosts share one listener; their paths do not overlap.
async fn dispatch(shared: &Arc<Shared>, req: &Req) -> Reply {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    match segs.as_slice() {
        ["v2", rest @ ..] => rest::dispatch(shared, req, rest).await,
        ["app", "generateAccessToken"] => {
            only(shared, req, &[Method::POST], auth::generate_access_token)
        }
        ["app", "generate-consent"] => only(shared, req, &[Method::POST], auth::generate_consent),
        ["login", "consentApp-login"] => only(shared, req, &[Method::GET], auth::consent_login),
        // The method is disputed (dhan-api.md §2.3); working clients use both.
        ["app", "consumeApp-consent"] => only(
            shared,
            req,
            &[Method::GET, Method::POST],
            auth::consume_consent,
        ),
        // Not a Dhan path: lets a person trying dhanhook look at the simulated order book
        // without a token (`curl http://127.0.0.1:9000/sim/orders`).
        ["sim", "orders"] => only(shared, req, &[Method::GET], sim_orders),
        ["sim", "telegram", "messages"] => {
            only(shared, req, &[Method::GET], crate::telegram::messages)
        }
        ["sim", "telegram", bot, "sendMessage"] if bot.starts_with("bot") => {
            only(shared, req, &[Method::POST], crate::telegram::send_message)
        }
        ["sim", rest @ ..] => control::dispatch(shared, req, rest)
            .unwrap_or_else(|| gateway_error(shared, 404, "Not Found", &req.path)),
        _ => gateway_error(shared, 404, "Not Found", &req.path),
    }
}

fn sim_orders(shared: &Shared, _req: &Req) -> Reply {
    let orders: Vec<crate::SimOrder> = shared
        .lock()
        .book
        .orders
        .iter()
        .map(|o| o.sim.clone())
        .collect();
    Reply::Json(200, serde_json::to_value(orders).unwrap_or(Value::Null))
}

fn only(
    shared: &Shared,
    req: &Req,
    methods: &[Method],
    handler: fn(&Shared, &Req) -> Reply,
) -> Reply {
    if methods.contains(&req.method) {
        handler(shared, req)
    } else {
        gateway_error(shared, 405, "Method Not Allowed", &req.path)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s`; malformed escapes are kept as they are, invalid UTF-8 is replaced.
pub(crate) fn percent_decode(s: &str, plus_as_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                match (
                    bytes.get(i + 1).copied().and_then(hex_value),
                    bytes.get(i + 2).copied().and_then(hex_value),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_as_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string as `application/x-www-form-urlencoded`.
pub(crate) fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// The raw query with the values of secret parameters replaced by `***`.
pub(crate) fn mask_query(raw: &str) -> String {
    raw.split('&')
        .map(|pair| {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            let decoded = percent_decode(key, true);
            if MASKED_QUERY_KEYS
                .iter()
                .any(|m| m.eq_ignore_ascii_case(decoded.trim()))
            {
                format!("{key}=***")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_pin_and_totp_only() {
        assert_eq!(
            mask_query("dhanClientId=1000000001&pin=123456&totp=654321"),
            "dhanClientId=1000000001&pin=***&totp=***"
        );
        assert_eq!(mask_query("PIN=1&%74otp=2&x=3"), "PIN=***&%74otp=***&x=3");
        assert_eq!(mask_query("pin"), "pin=***");
        assert_eq!(mask_query(""), "");
    }

    #[test]
    fn decodes_queries_and_survives_bad_escapes() {
        assert_eq!(
            parse_query("a=1%202&b=x+y&c&d=%zz&e=%4"),
            vec![
                ("a".into(), "1 2".into()),
                ("b".into(), "x y".into()),
                ("c".into(), String::new()),
                ("d".into(), "%zz".into()),
                ("e".into(), "%4".into()),
            ]
        );
        assert_eq!(percent_decode("tv%201%ff", false), "tv 1\u{fffd}");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("%", false), "%");
    }
}
