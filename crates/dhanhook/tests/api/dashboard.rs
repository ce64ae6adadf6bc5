//! The dashboard at `/ui`: sign-in and its cookie, CSRF refusals, escaping of alert fields,
//! and (when Debian's `chromium` and `chromium-driver` are installed, as `.ci/run` does) a real
//! browser that signs in, sees an alert, opens its history and works the kill switch.

use std::{os::unix::process::CommandExt, sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::helpers::{ADMIN_TOKEN, SECRET, TestApp, flat_alert, spawn_app, spawn_app_with};

/// An alert field that would run script if the page did not escape it, and a spreadsheet
/// formula.
const HOSTILE: &str = "<img src=x onerror=\"document.title='pwned'\">=HYPERLINK(1)";

/// A form body (`application/x-www-form-urlencoded`), as a browser sends it.
trait FormBody {
    fn form_of<V: AsRef<str>>(self, pairs: &[(&str, V)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_of<V: AsRef<str>>(self, pairs: &[(&str, V)]) -> Self {
        let enc = |t: &str| {
            t.bytes().fold(String::new(), |mut out, b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("%{b:02X}"));
                }
                out
            })
        };
        let body: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v.as_ref())))
            .collect();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"))
    }
}

fn no_redirects() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in with the admin token; returns the session cookie (`name=value`).
async fn sign_in(app: &TestApp, client: &reqwest::Client) -> String {
    let resp = client
        .post(app.url("/ui/login"))
        .form_of(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

async fn page(app: &TestApp, client: &reqwest::Client, cookie: &str, path: &str) -> String {
    let resp = client
        .get(app.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.text().await.unwrap()
}

/// The CSRF token in a dashboard page's forms.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..at + 64].to_owned()
}

async fn kill_switch_on(app: &TestApp) -> bool {
    let v: Value = app
        .get_admin("/kill-switch", ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    v["kill_switch"]["on"].as_bool().unwrap()
}

#[tokio::test]
async fn the_dashboard_asks_for_the_admin_token_and_keeps_the_session_in_a_strict_cookie() {
    let app = spawn_app().await;
    let client = no_redirects();

    let anonymous = client.get(app.url("/ui")).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/ui/login");
    let login = client.get(app.url("/ui/login")).send().await.unwrap();
    let csp = login.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    let wrong = client
        .post(app.url("/ui/login"))
        .form_of(&[("token", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    let right = client
        .post(app.url("/ui/login"))
        .form_of(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 303);
    let cookie = right.headers()["set-cookie"].to_str().unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(!cookie.contains(ADMIN_TOKEN), "the cookie is not the token");
    let session = cookie.split(';').next().unwrap();
    let home = page(&app, &client, session, "/ui").await;
    assert!(home.contains("paper mode"), "the mode is shown");
    assert!(!home.contains(ADMIN_TOKEN) && !home.contains(SECRET));
}

#[tokio::test]
async fn behind_a_trusted_https_proxy_the_cookie_is_secure() {
    let app = spawn_app_with(
        Arc::new(tempfile::tempdir().unwrap()),
        &[("TRUSTED_PROXIES", "127.0.0.1/32")],
    )
    .await;
    let resp = no_redirects()
        .post(app.url("/ui/login"))
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-for", "203.0.113.9")
        .form_of(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn a_post_without_the_sessions_csrf_token_or_from_another_site_changes_nothing() {
    let app = spawn_app().await;
    let client = no_redirects();
    let cookie = sign_in(&app, &client).await;
    let csrf = csrf_of(&page(&app, &client, &cookie, "/ui").await);
    let post = |form: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let mut req = client
            .post(app.url("/ui/kill-switch"))
            .header("cookie", &cookie)
            .form_of(&form);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };

    let forged = post(vec![("on", "true".into())], None).await.unwrap();
    assert_eq!(forged.status(), 403);
    assert!(forged.text().await.unwrap().contains("CSRF"));
    let wrong_token = post(vec![("on", "true".into()), ("csrf", "0".repeat(64))], None)
        .await
        .unwrap();
    assert_eq!(wrong_token.status(), 403);
    let other_site = post(
        vec![("on", "true".into()), ("csrf", csrf.clone())],
        Some("https://evil.example"),
    )
    .await
    .unwrap();
    assert_eq!(other_site.status(), 403);
    assert!(!kill_switch_on(&app).await, "nothing was switched");
    // No session at all: sent to the login page, nothing switched.
    let anonymous = no_redirects()
        .post(app.url("/ui/kill-switch"))
        .form_of(&[("on", "true"), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 303);
    assert!(!kill_switch_on(&app).await);

    let genuine = post(vec![("on", "true".into()), ("csrf", csrf)], None)
        .await
        .unwrap();
    assert_eq!(genuine.status(), 303);
    assert!(kill_switch_on(&app).await);
    let home = page(&app, &client, &cookie, "/ui").await;
    assert!(home.contains("ON: entries are refused, exits pass"));
}

#[tokio::test]
async fn alert_fields_are_shown_as_text_and_the_history_shows_the_payload_without_the_secret() {
    let app = spawn_app().await;
    let mut alert = flat_alert();
    alert["strategy"] = json!(HOSTILE);
    alert["id"] = json!("dash-1");
    let answer: Value = app.post_webhook(&alert).await.json().await.unwrap();
    let alert_id = answer["alert_id"].as_str().unwrap().to_owned();
    let status = answer["legs"][0]["status"].as_str().unwrap().to_owned();

    let client = no_redirects();
    let cookie = sign_in(&app, &client).await;
    let home = page(&app, &client, &cookie, "/ui").await;
    assert!(home.contains(&alert_id), "the alert is listed");
    assert!(home.contains(&format!("data-status=\"{status}\"")));
    assert!(!home.contains("<img src=x"), "the field is never markup");
    assert!(home.contains("&lt;img src=x onerror=&quot;document.title=&#39;pwned&#39;&quot;&gt;"));

    let history = page(&app, &client, &cookie, &format!("/ui/alerts/{alert_id}")).await;
    assert!(history.contains("<b id=\"alert-status\">"));
    assert!(history.contains(&status), "the leg's state");
    assert!(history.contains("&lt;img src=x"), "the payload, escaped");
    assert!(!history.contains("<img src=x"));
    assert!(history.contains("RELIANCE"));
    assert!(
        !history.contains(SECRET),
        "the secret is not in the payload"
    );
    assert!(history.contains("placement"), "each transition's source");
}

// ---- the browser ---------------------------------------------------------------------------

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: std::process::Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // chromedriver runs in a process group of its own, with the Chromium it started: end
        // the whole group, so a failed test leaves no browser behind.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

async fn start_driver() -> Option<Driver> {
    let driver = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.to_owned());
    if !std::path::Path::new(&driver).exists() || !std::path::Path::new(CHROMIUM).exists() {
        eprintln!(
            "SKIPPED the browser test: {driver} or {CHROMIUM} is missing \
             (apt-get install -y chromium chromium-driver; .ci/run installs them)"
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new(&driver)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let d = Driver { child, port };
    let client = crate::helpers::http_client();
    for _ in 0..200 {
        if client
            .get(format!("http://127.0.0.1:{port}/status"))
            .send()
            .await
            .is_ok()
        {
            return Some(d);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not answer on port {port}");
}

/// Where screenshots go: `DHANHOOK_SCREENSHOTS` (CI keeps that folder), else the temp dir.
fn screenshot_dir() -> std::path::PathBuf {
    std::env::var_os("DHANHOOK_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("dhanhook-screenshots"))
}

/// A headless Chromium session signed in to `app`'s dashboard through its login form (after
/// checking that a stranger is sent there).
async fn signed_in_browser(driver: &Driver, app: &TestApp) -> fantoccini::Client {
    use fantoccini::{ClientBuilder, Locator};
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--window-size=1280,1700"]}),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a chromium session");
    browser.goto(&app.url("/ui")).await.unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/ui/login")
    );
    browser
        .find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    browser
        .find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The form's POST and the redirect finish after the click returns: wait for the dashboard
    // (bounded by fantoccini's default wait) before looking at it.
    browser
        .wait()
        .for_element(Locator::Id("mode"))
        .await
        .expect("the dashboard after signing in");
    browser
}

#[tokio::test]
async fn in_a_real_browser_an_operator_signs_in_sees_the_alert_opens_its_history_and_works_the_kill_switch()
 {
    use fantoccini::Locator;

    let Some(driver) = start_driver().await else {
        return;
    };
    let app = spawn_app().await;
    let mut alert = flat_alert();
    alert["strategy"] = json!(HOSTILE);
    alert["id"] = json!("browser-1");
    let answer: Value = app.post_webhook(&alert).await.json().await.unwrap();
    let alert_id = answer["alert_id"].as_str().unwrap().to_owned();
    let leg_status = answer["legs"][0]["status"].as_str().unwrap().to_owned();

    let browser = signed_in_browser(&driver, &app).await;
    let mode = browser.find(Locator::Id("mode")).await.unwrap();
    assert_eq!(mode.text().await.unwrap(), "paper mode");

    // The alert sent a moment ago, with its leg's state and the hostile field as plain text.
    let row = browser
        .find(Locator::XPath(&format!(
            "//table[@id='legs']//tr[td/a[text()='{alert_id}']]"
        )))
        .await
        .expect("the alert's row");
    let row_text = row.text().await.unwrap();
    assert!(row_text.contains(&leg_status), "{row_text}");
    assert!(
        row_text.contains("<img src=x onerror="),
        "shown as text: {row_text}"
    );
    assert!(
        browser
            .find_all(Locator::Css("#legs img"))
            .await
            .unwrap()
            .is_empty(),
        "no image element was made from the field"
    );
    assert_ne!(browser.title().await.unwrap(), "pwned", "no script ran");
    std::fs::create_dir_all(screenshot_dir()).unwrap();
    let shot = screenshot_dir().join("dashboard.png");
    std::fs::write(&shot, browser.screenshot().await.unwrap()).unwrap();
    eprintln!("screenshot: {}", shot.display());

    // The filter hides rows of another status.
    let other = if leg_status == "REJECTED" {
        "FILLED"
    } else {
        "REJECTED"
    };
    browser
        .find(Locator::Id("f-status"))
        .await
        .unwrap()
        .select_by_value(other)
        .await
        .unwrap();
    assert!(!row.is_displayed().await.unwrap(), "filtered out");
    browser
        .find(Locator::Id("f-status"))
        .await
        .unwrap()
        .select_by_value(&leg_status)
        .await
        .unwrap();
    assert!(row.is_displayed().await.unwrap());

    // Its history.
    browser
        .find(Locator::LinkText(&alert_id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let payload = browser
        .wait()
        .for_element(Locator::Css("#payload pre"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(payload.contains("<img src=x"), "{payload}");
    assert!(!payload.contains(SECRET));
    assert!(
        browser
            .find(Locator::Css("#alert"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains(&alert_id)
    );
    std::fs::write(
        screenshot_dir().join("alert.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();

    // The kill switch on, then off, each confirmed in the browser's dialog.
    browser.goto(&app.url("/ui")).await.unwrap();
    browser
        .find(Locator::Css("button.kill-on"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.accept_alert().await.unwrap();
    browser
        .wait()
        .for_element(Locator::Css("button.kill-off"))
        .await
        .unwrap();
    assert!(
        browser
            .find(Locator::Id("kill-switch-state"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .starts_with("ON")
    );
    assert!(kill_switch_on(&app).await, "the service has it on");
    let mut while_killed = flat_alert();
    while_killed["id"] = json!("while-killed");
    let refused: Value = app.post_webhook(&while_killed).await.json().await.unwrap();
    assert_eq!(refused["legs"][0]["status"], "BLOCKED", "{refused}");
    browser
        .find(Locator::Css("button.kill-off"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    browser.accept_alert().await.unwrap();
    browser
        .wait()
        .for_element(Locator::Css("button.kill-on"))
        .await
        .unwrap();
    assert!(!kill_switch_on(&app).await);

    // A POST from script in the page without the form's CSRF token is refused.
    let status = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/ui/kill-switch', {method: 'POST', body: new URLSearchParams({on: 'true'})})
               .then((r) => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));
    assert!(!kill_switch_on(&app).await);

    browser.close().await.unwrap();
}

#[tokio::test]
async fn a_paper_alert_is_replayed_as_a_new_alert_from_its_history_page() {
    let app = spawn_app().await;
    let mut alert = flat_alert();
    alert["id"] = json!("to-replay");
    let first: Value = app.post_webhook(&alert).await.json().await.unwrap();
    let first_id = first["alert_id"].as_str().unwrap().to_owned();
    let client = no_redirects();
    let cookie = sign_in(&app, &client).await;
    let history = page(&app, &client, &cookie, &format!("/ui/alerts/{first_id}")).await;
    assert!(history.contains("Replay this alert"));
    let csrf = csrf_of(&history);

    let resp = client
        .post(app.url(&format!("/ui/alerts/{first_id}/replay")))
        .header("cookie", &cookie)
        .form_of(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 303);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let replay_id = location.strip_prefix("/ui/alerts/").unwrap();
    assert_ne!(replay_id, first_id, "a new alert, not a duplicate");
    let replayed: Value = app
        .get_admin(&format!("/orders/{replay_id}"), ADMIN_TOKEN)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(replayed["alert"]["mode"], "paper");
    assert_eq!(replayed["legs"][0]["symbol"], "RELIANCE");
    assert_eq!(replayed["legs"][0]["status"], first["legs"][0]["status"]);
    let rows = app.journal_orders().await;
    assert_eq!(rows.len(), 2, "the original and its replay");
}

#[tokio::test]
async fn in_live_mode_the_dashboard_never_replays_an_alert() {
    let t = crate::live::live(dhan_sim::SimConfig::default()).await;
    let (_, placed) = t.order("live-1").await;
    let alert_id = placed["alert_id"].as_str().unwrap().to_owned();
    assert_eq!(t.sim.orders().len(), 1);
    let client = no_redirects();
    let cookie = sign_in(&t.app, &client).await;
    let history = page(&t.app, &client, &cookie, &format!("/ui/alerts/{alert_id}")).await;
    assert!(!history.contains("Replay this alert"), "no replay button");
    let home = page(&t.app, &client, &cookie, "/ui").await;
    assert!(home.contains("live mode") && home.contains("id=\"token-state\">valid<"));
    assert!(home.contains("class=\"countdown\""), "the expiry countdown");

    let resp = client
        .post(t.app.url(&format!("/ui/alerts/{alert_id}/replay")))
        .header("cookie", &cookie)
        .form_of(&[("csrf", csrf_of(&home).as_str())])
        .send()
        .await
        .unwrap();

    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("paper mode only"));
    assert_eq!(t.sim.orders().len(), 1, "nothing was sent to Dhan");
}

#[tokio::test]
async fn in_a_real_browser_the_live_token_counts_down_to_its_expiry() {
    use fantoccini::Locator;

    let Some(driver) = start_driver().await else {
        return;
    };
    let t = crate::live::live(dhan_sim::SimConfig::default()).await;
    t.order("live-browser").await;
    let browser = signed_in_browser(&driver, &t.app).await;

    assert_eq!(
        browser
            .find(Locator::Id("token-state"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "valid"
    );
    let countdown = browser.find(Locator::Css(".countdown")).await.unwrap();
    let first = countdown.text().await.unwrap();
    assert!(first.contains('h') && first.ends_with('s'), "{first}");
    // The page's script (allowed by the CSP as /ui/app.js) moves it every second.
    let mut moved = false;
    // A bound, not a timing claim: generous for a loaded machine.
    for _ in 0..150 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if countdown.text().await.unwrap() != first {
            moved = true;
            break;
        }
    }
    assert!(moved, "the countdown ticks");
    std::fs::create_dir_all(screenshot_dir()).unwrap();
    std::fs::write(
        screenshot_dir().join("dashboard-live.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    browser.close().await.unwrap();
}
