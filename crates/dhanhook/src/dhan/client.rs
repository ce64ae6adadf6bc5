//! The HTTP client for Dhan's two hosts: the auth host (token minting, consent flow) and the
//! REST API (`/v2/...`).
//!
//! Safety rules, each for a reason:
//! - redirects are never followed: a redirect could carry the `access-token` header to
//!   another origin;
//! - URLs of auth calls are never logged or put in an error (they carry the PIN and TOTP in
//!   the query string, as Dhan requires): transport errors carry no URL;
//! - fields that do not apply are omitted, never sent as `""` (Dhan refuses those);
//! - every call has a connect and a total timeout; nothing here retries an order write;
//! - answers are acknowledged at once (`TCP_QUICKACK`, see [`super::transport`]), so a server
//!   that sends an answer's head and body in two writes does not cost ~40 ms a call.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use http::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::metrics::Metrics;

use super::{
    error::{DhanError, DhanErrorKind},
    transport::{Request, SendError, Transport},
    types::{IssuedToken, OrderAck, OrderBody, OrderRecord, Profile, StaticIp, str_field},
};

/// Time to establish a connection. Dhan is in Mumbai; a healthy VPS connects in milliseconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for a whole call. Order writes answer in a few hundred milliseconds when Dhan is well.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);
/// Attempts at a read, and the first pause between them (doubled each time).
const READ_ATTEMPTS: u32 = 3;
const READ_RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// Where Dhan lives: production by default; the sandbox, or the simulator in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhanUrls {
    /// REST base including `/v2`, e.g. `https://api.dhan.co/v2`.
    pub base: String,
    /// Auth host, e.g. `https://auth.dhan.co`.
    pub auth: String,
}

impl DhanUrls {
    pub const LIVE_BASE: &'static str = "https://api.dhan.co/v2";
    pub const SANDBOX_BASE: &'static str = "https://sandbox.dhan.co/v2";
    pub const AUTH: &'static str = "https://auth.dhan.co";
}

/// A Dhan API client for one account. Cheap to clone (shares its connection pool).
#[derive(Debug, Clone)]
pub struct DhanClient {
    http: Transport,
    urls: DhanUrls,
    client_id: String,
    /// Where each call's round trip is recorded (set once by `startup`; shared by clones, so
    /// the token keeper's and the broker's copies report to the same place).
    metrics: Arc<OnceLock<Arc<Metrics>>>,
}

impl DhanClient {
    /// # Errors
    /// The HTTP client cannot be built (no TLS roots).
    pub fn new(urls: DhanUrls, client_id: impl Into<String>) -> Result<Self, DhanError> {
        // rustls needs a crypto provider chosen once per process; a second install is refused
        // harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // No redirect is ever followed (hyper's client follows none).
        let http = Transport::new(
            CONNECT_TIMEOUT,
            REQUEST_TIMEOUT,
            concat!("dhanhook/", env!("CARGO_PKG_VERSION")),
        )
        .map_err(|e| DhanError::transport(DhanErrorKind::Unknown, format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            urls: DhanUrls {
                base: urls.base.trim_end_matches('/').to_owned(),
                auth: urls.auth.trim_end_matches('/').to_owned(),
            },
            client_id: client_id.into(),
            metrics: Arc::default(),
        })
    }

    /// Records every call's round trip in `metrics` from now on (the first call wins).
    pub fn report_to(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// The metrics this client reports to, once set.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.get()
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn urls(&self) -> &DhanUrls {
        &self.urls
    }

    // ---- auth host ---------------------------------------------------------------------

    /// `POST /app/generateAccessToken` with the PIN and a TOTP code (headless minting).
    ///
    /// # Errors
    /// Dhan refused (wrong PIN/TOTP: [`DhanErrorKind::Auth`]; too soon: `RateLimit`) or the
    /// call failed.
    pub async fn generate_access_token(
        &self,
        pin: &SecretString,
        totp_code: &str,
    ) -> Result<IssuedToken, DhanError> {
        let req = self
            .http
            .request(
                Method::POST,
                &format!("{}/app/generateAccessToken", self.urls.auth),
            )
            .query(&[
                ("dhanClientId", self.client_id.as_str()),
                ("pin", pin.expose_secret()),
                ("totp", totp_code),
            ]);
        let v = self.call(req, "generateAccessToken").await?;
        IssuedToken::from_json(&v).ok_or_else(|| unexpected("generateAccessToken"))
    }

    /// Consent flow step 1: `POST /app/generate-consent`. Returns the `consentAppId`.
    ///
    /// # Errors
    /// Dhan refused (bad key/secret, `CONSENT_LIMIT_EXCEED`) or the call failed.
    pub async fn generate_consent(
        &self,
        api_key: &str,
        api_secret: &SecretString,
    ) -> Result<String, DhanError> {
        let req = self
            .http
            .request(
                Method::POST,
                &format!("{}/app/generate-consent", self.urls.auth),
            )
            .query(&[("client_id", self.client_id.as_str())])
            .header("app_id", api_key)
            .header("app_secret", api_secret.expose_secret());
        let v = self.call(req, "generate-consent").await?;
        str_field(&v, "consentAppId").ok_or_else(|| unexpected("generate-consent"))
    }

    /// Consent flow step 2 happens in the user's browser, on Dhan's login page.
    pub fn consent_login_url(&self, consent_app_id: &str) -> String {
        format!(
            "{}/login/consentApp-login?consentAppId={consent_app_id}",
            self.urls.auth
        )
    }

    /// Consent flow step 3: `consumeApp-consent` with the `tokenId` from the redirect.
    ///
    /// # Errors
    /// Dhan refused the tokenId or the call failed.
    pub async fn consume_consent(
        &self,
        api_key: &str,
        api_secret: &SecretString,
        token_id: &str,
    ) -> Result<IssuedToken, DhanError> {
        // Dhan's sources disagree on GET vs POST; the official SDK uses GET.
        let req = self
            .http
            .request(
                Method::GET,
                &format!("{}/app/consumeApp-consent", self.urls.auth),
            )
            .query(&[("tokenId", token_id)])
            .header("app_id", api_key)
            .header("app_secret", api_secret.expose_secret());
        let v = self.call(req, "consumeApp-consent").await?;
        IssuedToken::from_json(&v).ok_or_else(|| unexpected("consumeApp-consent"))
    }

    // ---- REST API ----------------------------------------------------------------------

    /// `GET /v2/RenewToken`: a new token for a web-generated (SELF) one; the old one expires.
    ///
    /// # Errors
    /// Dhan refused (not a web token, or already expired) or the call failed.
    pub async fn renew_token(&self, token: &SecretString) -> Result<IssuedToken, DhanError> {
        let req = self
            .api(Method::GET, "/RenewToken", token)
            .header("dhanClientId", &self.client_id);
        let v = self.call(req, "RenewToken").await?;
        IssuedToken::from_json(&v).ok_or_else(|| unexpected("RenewToken"))
    }

    /// `GET /v2/profile`: proves the token is accepted.
    ///
    /// # Errors
    /// The token was refused ([`DhanErrorKind::Auth`]) or the call failed.
    pub async fn profile(&self, token: &SecretString) -> Result<Profile, DhanError> {
        let v = self
            .read(
                || {
                    self.api(Method::GET, "/profile", token)
                        .header("dhanClientId", &self.client_id)
                },
                "profile",
            )
            .await?;
        Ok(Profile::from_json(&v))
    }

    /// `POST /v2/orders`. A success means Dhan *received* the order, nothing more.
    ///
    /// # Errors
    /// Dhan refused it, or the outcome is unknown ([`DhanErrorKind::Transient`]: the order
    /// may exist; look it up by correlationId, never resend blindly).
    pub async fn place_order(
        &self,
        token: &SecretString,
        body: &OrderBody,
    ) -> Result<OrderAck, DhanError> {
        let req = self.api(Method::POST, "/orders", token).json(body);
        let v = self.call(req, "place order").await?;
        OrderAck::from_json(&v).ok_or_else(|| unexpected("place order"))
    }

    /// `GET /v2/orders/{id}`; Dhan answers `[]` for an unknown id.
    ///
    /// # Errors
    /// The call failed.
    pub async fn order(
        &self,
        token: &SecretString,
        order_id: &str,
    ) -> Result<Option<OrderRecord>, DhanError> {
        let path = format!("/orders/{}", path_segment(order_id));
        let v = self
            .read(|| self.api(Method::GET, &path, token), "get order")
            .await?;
        Ok(first_record(&v))
    }

    /// `GET /v2/orders/external/{correlationId}`. `None` when Dhan does not (yet) show it: an
    /// order still in TRANSIT is also "not found", so absence is not proof it was never placed.
    ///
    /// # Errors
    /// The call failed.
    pub async fn order_by_correlation_id(
        &self,
        token: &SecretString,
        correlation_id: &str,
    ) -> Result<Option<OrderRecord>, DhanError> {
        let path = format!("/orders/external/{}", path_segment(correlation_id));
        match self
            .read(
                || self.api(Method::GET, &path, token),
                "get order by correlationId",
            )
            .await
        {
            Ok(v) => Ok(first_record(&v)),
            Err(e) if e.http_status == Some(404) && e.kind == DhanErrorKind::Order => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /v2/orders`: today's orders.
    ///
    /// # Errors
    /// The call failed.
    pub async fn order_book(&self, token: &SecretString) -> Result<Vec<OrderRecord>, DhanError> {
        let v = self
            .read(|| self.api(Method::GET, "/orders", token), "order book")
            .await?;
        Ok(records(&v))
    }

    /// `DELETE /v2/orders/{id}`.
    ///
    /// # Errors
    /// Dhan refused (e.g. the order is in TRANSIT or already final) or the call failed.
    pub async fn cancel_order(
        &self,
        token: &SecretString,
        order_id: &str,
    ) -> Result<OrderAck, DhanError> {
        let req = self.api(
            Method::DELETE,
            &format!("/orders/{}", path_segment(order_id)),
            token,
        );
        let v = self.call(req, "cancel order").await?;
        OrderAck::from_json(&v).ok_or_else(|| unexpected("cancel order"))
    }

    /// `GET /v2/trades`.
    ///
    /// # Errors
    /// The call failed.
    pub async fn trades(&self, token: &SecretString) -> Result<Vec<Value>, DhanError> {
        let v = self
            .read(|| self.api(Method::GET, "/trades", token), "trades")
            .await?;
        Ok(array(v))
    }

    /// `GET /v2/positions`.
    ///
    /// # Errors
    /// The call failed.
    pub async fn positions(&self, token: &SecretString) -> Result<Vec<Value>, DhanError> {
        let v = self
            .read(|| self.api(Method::GET, "/positions", token), "positions")
            .await?;
        Ok(array(v))
    }

    /// `DELETE /v2/positions`: Exit All. Dhan closes every open position and cancels every
    /// open order of the day; answers `{"status":"SUCCESS","message":...}`. An order write:
    /// never retried here.
    ///
    /// # Errors
    /// Dhan refused or the call failed (its outcome then unknown: look at the positions).
    pub async fn exit_all(&self, token: &SecretString) -> Result<Value, DhanError> {
        let req = self.api(Method::DELETE, "/positions", token);
        self.call(req, "exit all").await
    }

    /// `GET /v2/holdings`. Live Dhan answers an empty portfolio with HTTP 500 DH-1111; that is
    /// an empty list here, not an error.
    ///
    /// # Errors
    /// The call failed.
    pub async fn holdings(&self, token: &SecretString) -> Result<Vec<Value>, DhanError> {
        match self
            .read(|| self.api(Method::GET, "/holdings", token), "holdings")
            .await
        {
            Ok(v) => Ok(array(v)),
            Err(e) if e.code.as_deref() == Some("DH-1111") => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// `GET /v2/fundlimit` (note Dhan's spelling `availabelBalance` in the answer).
    ///
    /// # Errors
    /// The call failed.
    pub async fn fund_limit(&self, token: &SecretString) -> Result<Value, DhanError> {
        self.read(|| self.api(Method::GET, "/fundlimit", token), "fund limit")
            .await
    }

    /// `GET /v2/ip/getIP`: the whitelisted static IPs (order writes come only from these).
    ///
    /// # Errors
    /// The call failed.
    pub async fn static_ip(&self, token: &SecretString) -> Result<StaticIp, DhanError> {
        let v = self
            .read(|| self.api(Method::GET, "/ip/getIP", token), "static ip")
            .await?;
        Ok(StaticIp::from_json(&v))
    }

    /// `GET /v2/killswitch`: `ACTIVATE` or `DEACTIVATE`.
    ///
    /// # Errors
    /// The call failed.
    pub async fn kill_switch_status(&self, token: &SecretString) -> Result<String, DhanError> {
        let v = self
            .read(
                || self.api(Method::GET, "/killswitch", token),
                "kill switch",
            )
            .await?;
        str_field(&v, "killSwitchStatus").ok_or_else(|| unexpected("kill switch"))
    }

    /// `POST /v2/killswitch?killSwitchStatus=ACTIVATE|DEACTIVATE`.
    ///
    /// # Errors
    /// Dhan refused (open positions or pending orders block activation) or the call failed.
    pub async fn set_kill_switch(
        &self,
        token: &SecretString,
        active: bool,
    ) -> Result<Value, DhanError> {
        let status = if active { "ACTIVATE" } else { "DEACTIVATE" };
        let req = self
            .api(Method::POST, "/killswitch", token)
            .query(&[("killSwitchStatus", status)]);
        self.call(req, "set kill switch").await
    }

    // ---- plumbing ----------------------------------------------------------------------

    fn api(&self, method: Method, path: &str, token: &SecretString) -> Request {
        self.http
            .request(method, &format!("{}{path}", self.urls.base))
            .header("access-token", token.expose_secret())
            .header("client-id", &self.client_id)
            .header("Accept", "application/json")
    }

    /// A read (GET): retried with backoff when the failure is transient (5xx, timeout, reset,
    /// no connection). Reads change nothing at Dhan, so repeating them is safe; order writes
    /// never come through here.
    async fn read(
        &self,
        make: impl Fn() -> Request,
        what: &'static str,
    ) -> Result<Value, DhanError> {
        let mut wait = READ_RETRY_BACKOFF;
        let mut attempt = 1;
        loop {
            match self.call(make(), what).await {
                Err(e)
                    if attempt < READ_ATTEMPTS
                        && matches!(
                            e.kind,
                            DhanErrorKind::Transient | DhanErrorKind::Unreachable
                        ) =>
                {
                    tracing::debug!(call = what, attempt, error = %e, "read failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Sends a request and returns the JSON answer, or the classified error. `what` names the
    /// call in logs; URLs are never logged.
    async fn call(&self, req: Request, what: &'static str) -> Result<Value, DhanError> {
        let started = std::time::Instant::now();
        let result = self.call_timed(req, what, started).await;
        if let Some(m) = self.metrics.get() {
            m.broker_call(what, result.is_ok(), started.elapsed());
        }
        result
    }

    async fn call_timed(
        &self,
        req: Request,
        what: &'static str,
        started: std::time::Instant,
    ) -> Result<Value, DhanError> {
        let (status, text) = self
            .http
            .send(req)
            .await
            .map_err(|e| transport_error(e, what))?;
        tracing::debug!(
            call = what,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "dhan call"
        );
        let json: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(_) if status.is_success() => return Err(unexpected(what)),
                Err(_) => {
                    return Err(DhanError::from_response(
                        status.as_u16(),
                        None,
                        http_reason(status),
                    ));
                }
            }
        };
        if let Some(err) = error_in(status, &json) {
            return Err(err);
        }
        Ok(json)
    }
}

/// Whether a response is an error, by any of Dhan's envelopes (`dhan-api.md` §5.1): a non-2xx
/// status; `errorCode`/`errorType`; a `status` other than success; an array of `{status:ERROR}`;
/// or the data-API shape `{"status":"failed","data":{"808":"..."}}`.
fn error_in(status: StatusCode, v: &Value) -> Option<DhanError> {
    let obj = match v {
        Value::Array(items) => items.iter().find(|i| {
            i.get("status")
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case("error"))
                || i.get("errorCode").is_some()
        }),
        other => Some(other),
    };
    let code = obj.and_then(|o| str_field(o, "errorCode"));
    let message = obj
        .and_then(|o| {
            str_field(o, "errorMessage")
                .or_else(|| str_field(o, "message"))
                .or_else(|| str_field(o, "remarks"))
                .or_else(|| str_field(o, "error"))
        })
        .unwrap_or_default();
    let status_field = obj.and_then(|o| o.get("status")).and_then(Value::as_str);
    let failed_status = status_field.is_some_and(|s| {
        let s = s.to_ascii_lowercase();
        matches!(s.as_str(), "error" | "failed" | "failure")
    });
    // Data-API envelope: {"status":"failed","data":{"808":"Authentication Failed ..."}}.
    let (code, message) = match (
        code,
        obj.and_then(|o| o.get("data")).and_then(Value::as_object),
    ) {
        (None, Some(data)) if failed_status => match data.iter().next() {
            Some((k, v)) => (Some(k.clone()), v.as_str().unwrap_or_default().to_owned()),
            None => (None, message),
        },
        (code, _) => (code, message),
    };
    let has_error_fields = code.is_some() || obj.is_some_and(|o| o.get("errorType").is_some());
    if status.is_success() && !has_error_fields && !failed_status {
        return None;
    }
    let message = if message.is_empty() {
        http_reason(status)
    } else {
        message
    };
    Some(DhanError::from_response(status.as_u16(), code, message))
}

fn http_reason(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("error").to_owned()
}

/// A transport failure, without its URL (auth URLs carry the PIN and TOTP).
fn transport_error(e: SendError, what: &str) -> DhanError {
    let (kind, why) = match e {
        // Nothing was sent: the same as a call Dhan never saw.
        SendError::Connect => (DhanErrorKind::Unreachable, "could not connect"),
        SendError::Timeout => (DhanErrorKind::Transient, "timed out"),
        SendError::CutOff => (DhanErrorKind::Transient, "the response was cut off"),
        SendError::Failed => (DhanErrorKind::Transient, "the connection failed"),
        SendError::Invalid => (DhanErrorKind::Unknown, "the request could not be built"),
    };
    DhanError::transport(kind, format!("{what}: {why}"))
}

fn unexpected(what: &str) -> DhanError {
    DhanError::transport(
        DhanErrorKind::Unknown,
        format!("{what}: unexpected response from Dhan"),
    )
}

/// Ids we put in a path are ours or Dhan's (digits, letters, `-`, `_`); anything else is
/// percent-encoded so it cannot change the path.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

fn records(v: &Value) -> Vec<OrderRecord> {
    match v {
        Value::Array(items) => items.iter().filter_map(OrderRecord::from_json).collect(),
        other => OrderRecord::from_json(other).into_iter().collect(),
    }
}

fn first_record(v: &Value) -> Option<OrderRecord> {
    records(v).into_iter().next()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_error_envelope_is_recognised() {
        let e = error_in(
            StatusCode::OK,
            &json!({"status":"error","message":"Invalid TOTP"}),
        )
        .unwrap();
        assert_eq!(e.kind, DhanErrorKind::Auth);
        let e = error_in(
            StatusCode::UNAUTHORIZED,
            &json!({"status":"failed","data":{"808":"Authentication Failed - Client ID or Token invalid"}}),
        )
        .unwrap();
        assert_eq!(
            (e.kind, e.code.as_deref()),
            (DhanErrorKind::Auth, Some("808"))
        );
        let e = error_in(
            StatusCode::OK,
            &json!([{"message":"IP not set","status":"ERROR"}]),
        )
        .unwrap();
        assert_eq!(e.kind, DhanErrorKind::StaticIp);
        let e = error_in(
            StatusCode::BAD_REQUEST,
            &json!({"errorType":"Input_Exception","errorCode":"DH-905","errorMessage":"Invalid IP"}),
        )
        .unwrap();
        assert_eq!(e.kind, DhanErrorKind::StaticIp);
        let e = error_in(StatusCode::INTERNAL_SERVER_ERROR, &Value::Null).unwrap();
        assert_eq!(e.kind, DhanErrorKind::Transient);
        assert!(
            error_in(
                StatusCode::OK,
                &json!({"orderId":"1","orderStatus":"TRANSIT"})
            )
            .is_none()
        );
        assert!(error_in(StatusCode::OK, &json!({"status":"success","data":[]})).is_none());
        assert!(error_in(StatusCode::OK, &json!([])).is_none());
    }

    #[test]
    fn path_segments_cannot_escape() {
        assert_eq!(path_segment("DH261201abcL1"), "DH261201abcL1");
        assert_eq!(path_segment("../x?y"), "%2E%2E%2Fx%3Fy");
    }
}
