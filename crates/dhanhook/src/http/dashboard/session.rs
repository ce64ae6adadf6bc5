//! Dashboard sessions: signing in with the admin token, the session cookie, and the CSRF
//! check every state-changing form passes.

use super::*;

// ---- sessions ------------------------------------------------------------------------------

/// The signed-in dashboard sessions, in memory.
#[derive(Debug, Default)]
pub(in crate::http) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

#[derive(Debug, Clone)]
pub(super) struct Session {
    csrf: String,
    expires: Instant,
}

pub(super) fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    // The OS's randomness failing is not something to serve a page without.
    if getrandom::fill(&mut bytes).is_err() {
        tracing::error!("the system's random source failed; no session was made");
        return String::new();
    }
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

impl Sessions {
    fn create(&self) -> Option<(String, Session)> {
        let id = random_hex();
        let csrf = random_hex();
        if id.is_empty() || csrf.is_empty() {
            return None;
        }
        let session = Session {
            csrf,
            expires: Instant::now() + SESSION_TTL,
        };
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), session.clone());
        Some((id, session))
    }

    fn get(&self, id: &str) -> Option<Session> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        // The map's lookup compares ids by hash first; ids are 256 random bits, so timing
        // reveals nothing usable.
        map.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

pub(super) fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A signed-in dashboard user. Without a valid session, pages redirect to the login form.
pub(super) struct UiSession {
    pub(super) id: String,
    pub(super) csrf: String,
}

impl FromRequestParts<AppState> for UiSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let id = cookie_value(&parts.headers, COOKIE).unwrap_or("");
        match state.inner.sessions.get(id) {
            Some(s) if !id.is_empty() => Ok(UiSession {
                id: id.to_owned(),
                csrf: s.csrf,
            }),
            _ => Err(Redirect::to("/ui/login").into_response()),
        }
    }
}

/// Whether the request came over HTTPS: a trusted proxy said so (`X-Forwarded-Proto`).
pub(super) fn over_https(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> bool {
    let from_proxy = state
        .inner
        .trusted_proxies
        .iter()
        .any(|net| net.contains(&peer.ip()));
    from_proxy
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// The checks every dashboard POST passes before it acts: the session's CSRF token in the
/// form, and no cross-site `Origin`.
pub(super) fn csrf_ok(
    session: &UiSession,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        // The host the browser used: `Host`, or `X-Forwarded-Host` behind a proxy that
        // rewrites `Host` (nginx does by default). A cross-site form cannot set either header.
        let ours = [header::HOST.as_str(), "x-forwarded-host"]
            .iter()
            .flat_map(|name| headers.get_all(*name).iter())
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|h| h.trim().eq_ignore_ascii_case(origin_host));
        if !ours {
            return false;
        }
    }
    let given = form.get("csrf").map_or("", String::as_str);
    !given.is_empty() && secrets_match(given, &secrecy::SecretString::from(session.csrf.clone()))
}

pub(super) fn forbidden_csrf() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Refused",
        "<p class=\"bad\">This form was not sent from the dashboard (its CSRF token is missing or \
         wrong), so nothing was done. Reload the dashboard and try again.</p>\
         <p><a href=\"/ui\">Back to the dashboard</a></p>",
    )
}

// ---- login ---------------------------------------------------------------------------------

pub(super) async fn login_page(State(state): State<AppState>) -> Response {
    login_form(&state, StatusCode::OK, None)
}

pub(super) fn login_form(state: &AppState, status: StatusCode, problem: Option<&str>) -> Response {
    let body = if state.inner.admin_token.is_none() {
        "<main class=\"narrow\"><h1>dhanhook</h1><p class=\"bad\">The dashboard is off: set \
         ADMIN_TOKEN to a long random value (e.g. <code>openssl rand -hex 32</code>) and restart.</p></main>"
            .to_owned()
    } else {
        format!(
            "<main class=\"narrow\"><h1>dhanhook</h1><p>Sign in with the admin token \
             (<code>ADMIN_TOKEN</code>).</p>{}<form method=\"post\" action=\"/ui/login\">\
             <label>Admin token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" required></label> \
             <button type=\"submit\" id=\"sign-in\">Sign in</button></form></main>",
            problem.map_or(String::new(), |p| format!(
                "<p class=\"bad\">{}</p>",
                esc(p)
            ))
        )
    };
    page(status, "Sign in", &body)
}

pub(super) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(expected) = &state.inner.admin_token else {
        return login_form(&state, StatusCode::FORBIDDEN, None);
    };
    let given = form.get("token").map_or("", |t| t.trim());
    if given.is_empty() || !secrets_match(given, expected) {
        let ip = state.client_ip(peer.ip(), &headers);
        return match state.inner.guard.wrong(ip, "admin token (dashboard)") {
            Verdict::Throttled(wait) => login_form(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                Some(&format!(
                    "Too many wrong tokens from this address; try again in {} s.",
                    wait.as_secs().max(1)
                )),
            ),
            Verdict::Unauthorized => login_form(
                &state,
                StatusCode::UNAUTHORIZED,
                Some("That is not the admin token."),
            ),
        };
    }
    let Some((id, _)) = state.inner.sessions.create() else {
        return page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "<p class=\"bad\">No session could be made (the system's random source failed).</p>",
        );
    };
    let secure = if over_https(&state, peer, &headers) {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_TTL.as_secs()
    );
    let mut response = Redirect::to("/ui").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, v);
    }
    response
}

pub(super) async fn logout(
    session: UiSession,
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&session, &headers, &form) {
        return forbidden_csrf();
    }
    state.inner.sessions.remove(&session.id);
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static(
            "dhanhook_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; dhanhook_session=abc; b=2"),
        );
        assert_eq!(cookie_value(&h, COOKIE), Some("abc"));
        assert_eq!(cookie_value(&h, "dhanhook"), None);
    }

    #[test]
    fn sessions_expire_and_can_be_removed() {
        let sessions = Sessions::default();
        let (id, s) = sessions.create().unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, s.csrf);
        assert!(sessions.get(&id).is_some());
        sessions.remove(&id);
        assert!(sessions.get(&id).is_none());
        assert!(sessions.get("").is_none());
    }

    fn form(csrf: &str) -> HashMap<String, String> {
        HashMap::from([("csrf".to_owned(), csrf.to_owned())])
    }

    #[test]
    fn the_csrf_check_wants_the_token_and_a_same_site_origin() {
        let session = UiSession {
            id: "s".to_owned(),
            csrf: "c".repeat(64),
        };
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(csrf_ok(&session, &h, &form(&"c".repeat(64))));
        assert!(!csrf_ok(&session, &h, &form("")));
        assert!(!csrf_ok(&session, &h, &form(&"d".repeat(64))));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(csrf_ok(&session, &h, &form(&"c".repeat(64))));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!csrf_ok(&session, &h, &form(&"c".repeat(64))));
        // Behind a proxy that rewrites Host, the browser's host is in X-Forwarded-Host.
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://trade.example.com"),
        );
        assert!(!csrf_ok(&session, &h, &form(&"c".repeat(64))));
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("trade.example.com"),
        );
        assert!(csrf_ok(&session, &h, &form(&"c".repeat(64))));
    }
}
