//! The dashboard's main page: status, token, market, controls, legs needing attention, the
//! charts, the queue and the recent legs.

use super::*;

// ---- the dashboard -------------------------------------------------------------------------

pub(super) async fn home(session: UiSession, State(state): State<AppState>) -> Response {
    let s = &state.inner;
    let now = s.clock.now();
    let mut body = String::new();

    // Mode and readiness, from /ready itself.
    let ready = crate::http::ops::ready(State(state.clone())).await;
    let ready_ok = ready.status().is_success();
    let ready_json: serde_json::Value = axum::body::to_bytes(ready.into_body(), 1 << 20)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let _ = write!(
        body,
        "<header><h1>dhanhook</h1><span class=\"pill {mode_class}\" id=\"mode\">{mode} mode</span>\
         <span class=\"pill {ready_class}\" id=\"readiness\">{ready_text}</span>\
         <span class=\"muted\">{time} IST</span>{logout}</header><main>",
        mode_class = if s.mode == Mode::Live { "bad" } else { "meh" },
        mode = s.mode.as_str(),
        ready_class = if ready_ok { "good" } else { "bad" },
        ready_text = if ready_ok { "ready" } else { "not ready" },
        time = ist_text(now),
        logout = act_form("/ui/logout", &session.csrf, &[], "Sign out", "plain"),
    );
    if !ready_ok && let Some(checks) = ready_json["checks"].as_object() {
        let failing: Vec<String> = checks
            .iter()
            .filter(|(_, v)| v.get("ok") == Some(&serde_json::Value::Bool(false)))
            .map(|(k, v)| {
                let detail = v
                    .get("problem")
                    .or_else(|| v.get("error"))
                    .and_then(|p| p.as_str())
                    .unwrap_or("");
                format!("<li><b>{}</b> {}</li>", esc(k), esc(detail))
            })
            .collect();
        let _ = write!(
            body,
            "<section class=\"warn\"><h2>Not ready</h2><ul>{}</ul></section>",
            failing.join("")
        );
    }

    body.push_str("<div class=\"grid\">");
    token_card(&state, now, &mut body);
    market_card(&state, &mut body).await;
    controls_card(&state, &session, &mut body).await;
    body.push_str("</div>");

    let rows = match s.journal.recent_orders(RECENT_LEGS).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "the dashboard could not read the journal");
            let _ = write!(
                body,
                "<section class=\"warn\"><p>The journal could not be read; see the service log.</p></section>"
            );
            Vec::new()
        }
    };
    attention_card(&rows, &mut body);
    super::charts::charts(&state, &rows, now, &mut body);
    queue_card(&state, &session, &mut body).await;
    recent_table(&rows, &mut body);
    body.push_str("</main>");
    page(StatusCode::OK, "Dashboard", &body)
}

pub(super) fn token_card(state: &AppState, now: DateTime<Utc>, body: &mut String) {
    let s = &state.inner;
    body.push_str("<section class=\"card\" id=\"token\"><h2>Dhan token</h2>");
    let Some(keeper) = &s.keeper else {
        body.push_str("<p class=\"muted\">Paper mode: no Dhan token is used.</p></section>");
        return;
    };
    let t = keeper.status();
    let class = if t.usable() { "good" } else { "bad" };
    let _ = write!(
        body,
        "<p><span class=\"pill {class}\" id=\"token-state\">{}</span></p>",
        esc(t.state.as_str())
    );
    if let Some((_, expires)) = keeper.token_times() {
        let left = (expires - now).num_seconds();
        let _ = write!(
            body,
            "<p>Expires {} IST, in <b class=\"countdown\" data-seconds=\"{left}\">{}</b></p>",
            esc(&ist_text(expires)),
            esc(&duration_text(left))
        );
    }
    let _ = write!(
        body,
        "<p class=\"muted\">{} · consecutive failures: {}</p>",
        if t.renewable {
            "renews by itself"
        } else {
            "cannot renew by itself"
        },
        t.consecutive_failures
    );
    if let Some(problem) = &t.problem {
        let _ = write!(body, "<p class=\"bad\">{}</p>", esc(problem));
    }
    body.push_str("</section>");
}

pub(super) fn duration_text(secs: i64) -> String {
    if secs <= 0 {
        return "expired".to_owned();
    }
    format!(
        "{}h {:02}m {:02}s",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

pub(super) async fn market_card(state: &AppState, body: &mut String) {
    let v = crate::http::market::status(State(state.clone())).await.0;
    let nse = &v["venues"]["NSE_EQ"];
    let open = v["market"]["status"] == "open";
    let _ = write!(
        body,
        "<section class=\"card\" id=\"market\"><h2>Market (NSE)</h2>\
         <p><span class=\"pill {}\">{}</span></p><p>Next session opens: {} IST</p>\
         <p>AMO: {} <span class=\"muted\">({})</span></p><p class=\"muted\">An alert while closed: {} (WHEN_CLOSED)</p></section>",
        if open { "good" } else { "meh" },
        if open { "open" } else { "closed" },
        esc(nse["next_open"].as_str().unwrap_or("unknown")),
        if v["amo"]["accepted_now"] == true {
            "accepted now"
        } else {
            "not accepted now"
        },
        esc(v["amo"]["window_ist"].as_str().unwrap_or("")),
        esc(v["when_closed"].as_str().unwrap_or("")),
    );
}

pub(super) async fn controls_card(state: &AppState, session: &UiSession, body: &mut String) {
    let s = &state.inner;
    body.push_str("<section class=\"card\" id=\"controls\"><h2>Controls</h2>");
    match s.kill_switch.status().await {
        Ok(k) => {
            let _ = write!(
                body,
                "<p>Kill switch: <span class=\"pill {}\" id=\"kill-switch-state\">{}</span></p>",
                if k.on { "bad" } else { "good" },
                match (k.on, s.kill_switch.mode()) {
                    (false, _) => "off",
                    // KILL_SWITCH_MODE=entries lets exits and cancels through.
                    (true, crate::config::KillSwitchMode::Entries) => {
                        "ON: entries are refused, exits pass"
                    }
                    (true, crate::config::KillSwitchMode::All) => "ON: every order is refused",
                }
            );
            if let Some(since) = k.since {
                let _ = write!(
                    body,
                    "<p class=\"muted\">since {} IST by {}</p>",
                    esc(&ist_text(since)),
                    esc(k.by.as_deref().unwrap_or("?"))
                );
            }
            body.push_str(&if k.on {
                act_form(
                    "/ui/kill-switch",
                    &session.csrf,
                    &[("on", "false")],
                    "Turn the kill switch off",
                    "kill-off",
                )
            } else {
                act_form(
                    "/ui/kill-switch",
                    &session.csrf,
                    &[("on", "true")],
                    "Turn the kill switch on",
                    "kill-on danger",
                )
            });
        }
        Err(e) => {
            tracing::error!(error = %e, "reading the kill switch failed");
            body.push_str("<p class=\"bad\">The kill switch could not be read.</p>");
        }
    }
    if s.keeper.is_some() {
        body.push_str(&act_form(
            "/ui/refresh-token",
            &session.csrf,
            &[],
            "Get a new token now",
            "refresh-token",
        ));
    }
    body.push_str("</section>");
}

pub(super) fn attention_card(rows: &[OrderRow], body: &mut String) {
    let open: Vec<&OrderRow> = rows
        .iter()
        .filter(|r| matches!(r.status, LegStatus::NeedsAttention | LegStatus::Unknown))
        .collect();
    if open.is_empty() {
        return;
    }
    let _ = write!(
        body,
        "<section class=\"warn\" id=\"attention\"><h2>Needs your attention</h2><p>dhanhook could not \
         settle these legs by itself: check them in <a href=\"{DHAN_ORDER_BOOK}\" rel=\"noreferrer\" \
         target=\"_blank\">Dhan's order book</a> (Orders) by their correlation id.</p><table><tr>\
         <th>Alert</th><th>Leg</th><th>Symbol</th><th>Status</th><th>Correlation id</th><th>Message</th></tr>"
    );
    for r in open {
        let _ = write!(
            body,
            "<tr><td><a href=\"/ui/alerts/{id}\">{id_text}</a></td><td>{}</td><td>{}</td><td class=\"bad\">{}</td><td><code>{}</code></td><td>{}</td></tr>",
            r.leg,
            esc(&r.symbol),
            r.status.as_str(),
            esc(&r.correlation_id),
            esc(r.message.as_deref().unwrap_or("")),
            id = esc(&urlencode(&r.alert_id)),
            id_text = esc(&r.alert_id),
        );
    }
    body.push_str("</table></section>");
}

pub(super) async fn queue_card(state: &AppState, session: &UiSession, body: &mut String) {
    body.push_str("<section id=\"queue\"><h2>Queue</h2>");
    match state.inner.journal.queue_summary(50).await {
        Ok(q) if q.pending.is_empty() => {
            body.push_str("<p class=\"muted\">No alert is waiting for the market to open.</p>");
        }
        Ok(q) => {
            let _ = write!(
                body,
                "<p>{} alert(s) waiting{}.</p><table><tr><th>Alert</th><th>Received (IST)</th><th>Until (IST)</th><th>Strategy</th><th>Status</th></tr>",
                q.pending.len(),
                q.next_due
                    .map(|d| format!("; the next is due {} IST", ist_text(d)))
                    .unwrap_or_default()
            );
            for a in &q.pending {
                let _ = write!(
                    body,
                    "<tr><td><a href=\"/ui/alerts/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&urlencode(&a.alert_id)),
                    esc(&a.alert_id),
                    esc(&ist_text(a.received_at)),
                    esc(&a.queued_until.map(ist_text).unwrap_or_default()),
                    esc(a.strategy.as_deref().unwrap_or("")),
                    esc(a.status.as_str()),
                );
            }
            body.push_str("</table>");
        }
        Err(e) => {
            tracing::error!(error = %e, "the dashboard could not read the queue");
            body.push_str("<p class=\"bad\">The queue could not be read.</p>");
        }
    }
    body.push_str(&act_form(
        "/ui/process-queue",
        &session.csrf,
        &[],
        "Run the queued alerts that are due",
        "process-queue",
    ));
    body.push_str("</section>");
}

pub(super) fn recent_table(rows: &[OrderRow], body: &mut String) {
    body.push_str(
        "<section id=\"recent\"><h2>Recent alerts and their legs</h2>\
         <div class=\"filters\"><label>Status <select id=\"f-status\"><option value=\"\">any</option>",
    );
    for st in LegStatus::ALL {
        let _ = write!(body, "<option value=\"{0}\">{0}</option>", st.as_str());
    }
    body.push_str(
        "</select></label> <label>Symbol <input id=\"f-symbol\" size=\"12\"></label> \
         <label>Strategy <input id=\"f-strategy\" size=\"12\"></label> \
         <label>Date <input id=\"f-date\" type=\"date\"></label></div>",
    );
    if rows.is_empty() {
        body.push_str("<p class=\"muted\">No alert yet. Send one to <code>POST /webhook</code>.</p></section>");
        return;
    }
    body.push_str(
        "<table id=\"legs\"><thead><tr><th>Received (IST)</th><th>Alert</th><th>Strategy</th><th>Leg</th>\
         <th>Symbol</th><th>Side</th><th>Qty</th><th>Status</th><th>Message</th></tr></thead><tbody>",
    );
    for r in rows {
        let received = ist_text(r.received_at);
        let strategy = r.strategy.as_deref().unwrap_or("");
        let _ = write!(
            body,
            "<tr data-status=\"{status}\" data-symbol=\"{symbol}\" data-strategy=\"{strategy}\" data-date=\"{date}\">\
             <td>{received}</td><td><a href=\"/ui/alerts/{link}\">{id}</a></td><td>{strategy}</td><td>{leg}</td>\
             <td>{symbol}</td><td>{side}</td><td>{qty}</td><td class=\"{class}\">{status}</td><td>{message}</td></tr>",
            status = r.status.as_str(),
            symbol = esc(&r.symbol),
            strategy = esc(strategy),
            date = esc(received.get(..10).unwrap_or("")),
            received = esc(&received),
            link = esc(&urlencode(&r.alert_id)),
            id = esc(&r.alert_id),
            leg = r.leg,
            side = esc(r.side.as_str()),
            qty = r.quantity,
            class = status_class(r.status),
            message = esc(r.message.as_deref().unwrap_or("")),
        );
    }
    body.push_str("</tbody></table></section>");
}
