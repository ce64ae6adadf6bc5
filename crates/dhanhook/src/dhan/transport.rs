//! The HTTP transport under [`DhanClient`](super::DhanClient): hyper's pooled HTTP/1 client
//! over rustls, on TCP connections that acknowledge what they receive at once (issue 15,
//! item 5).
//!
//! Why not reqwest, as the rest of dhanhook uses: some HTTP servers send a response's head and
//! body in two `write`s with Nagle's algorithm on. The body then waits in the server until the
//! head is acknowledged, and a client that keeps its connection alive acknowledges late: Linux
//! delays the ACK (up to ~40 ms) hoping to send it with the next request, which will not come
//! before the body. Each call then costs ~40 ms more (dhan-sim's `split_writes` option shows
//! it; `examples/bench_split_writes.rs` measures it). The client-side cure is `TCP_QUICKACK`,
//! re-armed on the TCP socket around every read (the kernel clears it as it goes). That needs
//! the socket, under TLS; reqwest gives no access to it (its `connector_layer` sees the
//! connection only after TLS, as an opaque type). hyper, which reqwest itself runs on, takes any
//! connector: here hyper-util's `HttpConnector` (TCP, `TCP_NODELAY` on, connect timeout),
//! wrapped by [`QuickAckConnector`], under hyper-rustls (TLS with the platform's roots, as
//! reqwest's rustls set-up verifies). Plain `http://` (the simulator) goes through the same
//! wrapper.
//!
//! Otherwise it keeps reqwest's behaviour that the client relied on: no redirect is followed,
//! idle connections are pooled, a request is retried by hyper only when the pooled connection
//! was found closed before anything was sent, and URLs never appear in errors.
//!
//! One exception: when the environment names an HTTP(S) proxy (`HTTPS_PROXY`, `HTTP_PROXY`,
//! `ALL_PROXY`, either case), calls go through reqwest as before, which honours those variables
//! (and `NO_PROXY`); this transport does not speak to proxies, and a user who routes Dhan calls
//! through one (e.g. for a whitelisted static IP) must keep doing so. Such calls do without the
//! `TCP_QUICKACK` cure.

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::{
    client::legacy::{
        Client,
        connect::{Connected, Connection, HttpConnector},
    },
    rt::{TokioExecutor, TokioIo},
};
use tokio::net::TcpStream;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A TCP connection that sets `TCP_QUICKACK` after every read attempt.
///
/// Linux leaves quick-ack mode by itself (after a few segments, or when data is sent soon
/// after data was received, as a keep-alive client does), so the flag is set again each time:
/// after a read that returned data, setting it sends at once an ACK the kernel was holding back;
/// before waiting for more (a read that found nothing), it takes the socket out of the
/// "interactive" mode in which ACKs wait for outgoing data. One `setsockopt` per read, about a
/// microsecond, against a 40 ms stall. Elsewhere than Linux the option does not exist and this
/// is a plain connection.
#[derive(Debug)]
pub(super) struct QuickAckStream {
    io: TokioIo<TcpStream>,
}

impl QuickAckStream {
    fn rearm(&self) {
        #[cfg(target_os = "linux")]
        {
            // A failure (the socket already closed) shows on the next read or write anyway.
            let _ = self.io.inner().set_quickack(true);
        }
    }

    /// The TCP stream (for tests that look at its options).
    #[cfg(test)]
    pub(super) fn tcp(&self) -> &TcpStream {
        self.io.inner()
    }
}

impl Read for QuickAckStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        this.rearm();
        polled
    }
}

impl Write for QuickAckStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

impl Connection for QuickAckStream {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

/// hyper-util's TCP connector, handing out [`QuickAckStream`]s.
#[derive(Debug, Clone)]
pub(super) struct QuickAckConnector {
    http: HttpConnector,
}

impl QuickAckConnector {
    pub(super) fn new(connect_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        // hyper-rustls above decides the scheme; this one only makes TCP connections.
        http.enforce_http(false);
        // Our requests leave at once (a request is one write; Nagle would only delay a
        // second one), as reqwest's default did.
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        Self { http }
    }
}

impl tower::Service<Uri> for QuickAckConnector {
    type Response = QuickAckStream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<QuickAckStream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.http.call(dst);
        Box::pin(async move {
            let io = connecting.await?;
            let stream = QuickAckStream { io };
            stream.rearm();
            Ok(stream)
        })
    }
}

/// Why a request got no complete answer. Never carries the URL (auth URLs hold the PIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SendError {
    /// The request could not be built (a header value with a line break, a bad URL).
    Invalid,
    /// No connection could be made.
    Connect,
    /// No complete answer within the call's time limit.
    Timeout,
    /// The answer started but its body was cut off.
    CutOff,
    /// The connection failed while sending or waiting for the answer's head.
    Failed,
}

/// A pooled client for Dhan's hosts.
#[derive(Debug, Clone)]
pub(super) struct Transport {
    client: Client<hyper_rustls::HttpsConnector<QuickAckConnector>, Full<Bytes>>,
    /// Set when the environment names a proxy: every call then goes through it, with reqwest
    /// (see the module doc).
    proxied: Option<reqwest::Client>,
    user_agent: HeaderValue,
    timeout: Duration,
}

/// Whether `lookup` (the environment) names an HTTP(S) proxy, as reqwest reads them.
fn proxy_named(lookup: impl Fn(&str) -> Option<String>) -> bool {
    [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .any(|k| lookup(k).is_some_and(|v| !v.trim().is_empty()))
}

/// A reqwest error as a [`SendError`] (proxied calls).
fn reqwest_error(e: &reqwest::Error) -> SendError {
    if e.is_connect() {
        SendError::Connect
    } else if e.is_timeout() {
        SendError::Timeout
    } else if e.is_body() || e.is_decode() {
        SendError::CutOff
    } else if e.is_builder() {
        SendError::Invalid
    } else {
        SendError::Failed
    }
}

impl Transport {
    /// # Errors
    /// The platform's TLS roots cannot be loaded.
    pub(super) fn new(
        connect_timeout: Duration,
        timeout: Duration,
        user_agent: &'static str,
    ) -> Result<Self, String> {
        Self::build(
            connect_timeout,
            timeout,
            user_agent,
            proxy_named(|k| std::env::var(k).ok()),
        )
    }

    fn build(
        connect_timeout: Duration,
        timeout: Duration,
        user_agent: &'static str,
        proxied: bool,
    ) -> Result<Self, String> {
        use rustls_platform_verifier::ConfigVerifierExt;
        let proxied = if proxied {
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(connect_timeout)
                .timeout(timeout)
                .build()
                .map_err(|e| e.without_url().to_string())?;
            Some(client)
        } else {
            None
        };
        // The process-wide crypto provider (ring, installed by the caller).
        let tls = rustls::ClientConfig::with_platform_verifier()
            .map_err(|e| format!("TLS roots: {e}"))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(QuickAckConnector::new(connect_timeout));
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
            proxied,
            user_agent: HeaderValue::from_static(user_agent),
            timeout,
        })
    }

    pub(super) fn request(&self, method: Method, url: &str) -> Request {
        Request {
            method,
            url: url::Url::parse(url).map_err(|_| SendError::Invalid),
            headers: Vec::new(),
            body: None,
        }
    }

    /// Sends `req`; the answer's status and body (as text), within the time limit.
    ///
    /// # Errors
    /// See [`SendError`].
    pub(super) async fn send(&self, req: Request) -> Result<(StatusCode, String), SendError> {
        let req = req.into_http(&self.user_agent)?;
        if let Some(client) = &self.proxied {
            let req = reqwest::Request::try_from(req).map_err(|_| SendError::Invalid)?;
            let resp = client.execute(req).await.map_err(|e| reqwest_error(&e))?;
            let status = resp.status();
            let text = resp.text().await.map_err(|e| reqwest_error(&e))?;
            return Ok((status, text));
        }
        let req = req.map(Full::new);
        let call = async {
            let resp = self.client.request(req).await.map_err(|e| {
                if e.is_connect() {
                    SendError::Connect
                } else {
                    SendError::Failed
                }
            })?;
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|_| SendError::CutOff)?
                .to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(SendError::Timeout))
    }
}

/// A request being built: the few things the Dhan client sets.
#[derive(Debug)]
pub(super) struct Request {
    method: Method,
    url: Result<url::Url, SendError>,
    headers: Vec<Result<(HeaderName, HeaderValue), SendError>>,
    body: Option<Vec<u8>>,
}

impl Request {
    /// Adds a header. Values are marked sensitive (tokens, secrets): hyper keeps them out of
    /// its debug output.
    pub(super) fn header(mut self, name: &str, value: &str) -> Self {
        let header = match (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            (Ok(name), Ok(mut value)) => {
                value.set_sensitive(true);
                Ok((name, value))
            }
            _ => Err(SendError::Invalid),
        };
        self.headers.push(header);
        self
    }

    /// Appends `pairs` to the query string, percent-encoded.
    pub(super) fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        if let Ok(url) = &mut self.url {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        self
    }

    /// Sets a JSON body.
    pub(super) fn json<T: serde::Serialize>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.body = Some(bytes);
                self.headers.push(Ok((
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )));
            }
            Err(_) => self.headers.push(Err(SendError::Invalid)),
        }
        self
    }

    fn into_http(self, user_agent: &HeaderValue) -> Result<http::Request<Bytes>, SendError> {
        let uri = Uri::try_from(self.url?.as_str()).map_err(|_| SendError::Invalid)?;
        let mut req = http::Request::builder()
            .method(self.method)
            .uri(uri)
            .header(header::USER_AGENT, user_agent.clone());
        for header in self.headers {
            let (name, value) = header?;
            req = req.header(name, value);
        }
        req.body(Bytes::from(self.body.unwrap_or_default()))
            .map_err(|_| SendError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// The mechanism itself, deterministically: a connection the kernel has put in its
    /// "interactive" mode (quick-ack off, as after a request sent right after an answer) is
    /// back in quick-ack mode once a read has gone through the wrapper.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_read_through_the_wrapper_rearms_quickack_on_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0_u8; 4];
            socket.read_exact(&mut buf).await.unwrap();
            socket.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
            socket.read_exact(&mut buf).await.unwrap();
        });
        let mut connector = QuickAckConnector::new(Duration::from_secs(3));
        let uri: Uri = format!("http://{addr}/").parse().unwrap();
        let stream = tower::Service::call(&mut connector, uri).await.unwrap();
        assert!(
            stream.tcp().nodelay().unwrap(),
            "TCP_NODELAY on for our requests"
        );

        stream.tcp().set_quickack(false).unwrap();
        assert!(
            !stream.tcp().quickack().unwrap(),
            "off, as the kernel may leave it"
        );
        let mut io = TokioIo::new(stream);
        io.write_all(b"ping").await.unwrap();
        let mut head = [0_u8; 19];
        io.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200 OK\r\n\r\n");
        let stream = io.into_inner();
        assert!(
            stream.tcp().quickack().unwrap(),
            "the read re-armed TCP_QUICKACK"
        );
        let mut io = TokioIo::new(stream);
        io.write_all(b"done").await.unwrap();
        server.await.unwrap();
    }

    #[test]
    fn a_header_value_with_a_line_break_is_refused_not_sent() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let t = Transport::new(Duration::from_secs(1), Duration::from_secs(1), "test").unwrap();
        let req = t
            .request(Method::GET, "http://127.0.0.1:9/x")
            .header("access-token", "a\r\nInjected: yes");
        assert_eq!(
            req.into_http(&HeaderValue::from_static("t")).unwrap_err(),
            SendError::Invalid
        );
        let req = t
            .request(Method::POST, "http://127.0.0.1:9/app/x")
            .query(&[("pin", "12 34&x=y")]);
        let http = req.into_http(&HeaderValue::from_static("t")).unwrap();
        assert_eq!(http.uri().query(), Some("pin=12+34%26x%3Dy"));
    }

    #[test]
    fn a_proxy_in_the_environment_is_noticed_in_any_case() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(!proxy_named(env(&[])));
        assert!(!proxy_named(env(&[
            ("HTTPS_PROXY", " "),
            ("NO_PROXY", "*")
        ])));
        assert!(proxy_named(env(&[("https_proxy", "http://10.0.0.1:3128")])));
        assert!(proxy_named(env(&[("ALL_PROXY", "socks5://10.0.0.1")])));
        assert!(proxy_named(env(&[("HTTP_PROXY", "http://10.0.0.1:3128")])));
    }

    /// The proxied path sends the same request and reads the same answer (here straight to a
    /// local server: the test's environment names no proxy, so reqwest connects directly).
    #[tokio::test]
    async fn the_reqwest_path_sends_the_same_request_and_reads_the_answer() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut buf = [0_u8; 1024];
            while !String::from_utf8_lossy(&seen).contains("{\"a\":1}") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(
                    n > 0,
                    "request cut short: {}",
                    String::from_utf8_lossy(&seen)
                );
                seen.extend_from_slice(&buf[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 201 Created\r\ncontent-length: 11\r\n\r\n{\"ok\":true}")
                .await
                .unwrap();
            String::from_utf8(seen).unwrap()
        });
        let t =
            Transport::build(Duration::from_secs(3), Duration::from_secs(5), "ua/1", true).unwrap();
        assert!(t.proxied.is_some());
        let req = t
            .request(Method::POST, &format!("http://{addr}/v2/orders"))
            .query(&[("q", "a b")])
            .header("access-token", "tok")
            .json(&serde_json::json!({"a": 1}));
        let (status, text) = t.send(req).await.unwrap();
        assert_eq!((status.as_u16(), text.as_str()), (201, "{\"ok\":true}"));
        let seen = server.await.unwrap().to_ascii_lowercase();
        assert!(
            seen.starts_with("post /v2/orders?q=a+b http/1.1\r\n"),
            "{seen}"
        );
        assert!(seen.contains("access-token: tok\r\n"), "{seen}");
        assert!(
            seen.contains("content-type: application/json\r\n"),
            "{seen}"
        );
        assert!(seen.contains("user-agent: ua/1\r\n"), "{seen}");
    }
}
