//! One alert's page: its legs, each leg's transitions, and the payload as received (secret
//! removed), every value escaped.

use super::*;

// ---- one alert -----------------------------------------------------------------------------

pub(super) async fn alert_page(
    session: UiSession,
    State(state): State<AppState>,
    Path(alert_id): Path<String>,
) -> Response {
    let read = state.inner.journal.alert_history(&alert_id);
    let (record, events) = match read.await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return page(
                StatusCode::NOT_FOUND,
                "No such alert",
                "<main class=\"narrow\"><p>No alert with this id.</p><p><a href=\"/ui\">Back</a></p></main>",
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "the dashboard could not read an alert");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Error",
                "<main class=\"narrow\"><p class=\"bad\">The journal could not be read.</p></main>",
            );
        }
    };
    let mut body = format!(
        "<header><h1><a href=\"/ui\">dhanhook</a> · alert</h1></header><main>\
         <section class=\"card\" id=\"alert\"><h2><code>{}</code></h2>\
         <p>Received {} IST · {} · {} mode · status <b id=\"alert-status\">{}</b> · duplicates {}</p></section>",
        esc(&record.id),
        esc(&ist_text(record.received_at)),
        esc(&record.alert_type),
        record.mode.as_str(),
        esc(crate::http::ops::shown_status(&record).as_str()),
        record.duplicates
    );
    if state.inner.mode == Mode::Paper && record.mode == Mode::Paper {
        body.push_str(&act_form(
            &format!("/ui/alerts/{}/replay", urlencode(&record.id)),
            &session.csrf,
            &[],
            "Replay this alert as a new one (paper)",
            "replay",
        ));
    }
    for leg in &record.legs {
        let _ = write!(
            body,
            "<section class=\"leg\"><h3>Leg {} · {} {} {} · <span class=\"{}\">{}</span></h3>\
             <p class=\"muted\">correlation id <code>{}</code>{}</p>{}\
             <table><tr><th>At (IST)</th><th>Source</th><th>Status</th><th>Filled</th><th>Message</th></tr>",
            leg.leg,
            esc(leg.side.as_str()),
            leg.quantity,
            esc(&leg.symbol),
            status_class(leg.status),
            leg.status.as_str(),
            esc(&leg.correlation_id),
            leg.order_id
                .as_deref()
                .map(|o| format!(" · Dhan order id <code>{}</code>", esc(o)))
                .unwrap_or_default(),
            leg.message
                .as_deref()
                .map(|m| format!("<p class=\"message\">{}</p>", esc(m)))
                .unwrap_or_default(),
        );
        for e in events.iter().filter(|e| e.leg == leg.leg) {
            let source = serde_json::to_value(e.source).unwrap_or_default();
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&ist_text(e.at)),
                esc(source.as_str().unwrap_or("")),
                e.status.as_str(),
                e.filled_qty.map(|q| q.to_string()).unwrap_or_default(),
                esc(e.message.as_deref().unwrap_or("")),
            );
        }
        body.push_str("</table></section>");
    }
    let pretty = serde_json::from_str::<serde_json::Value>(&record.payload)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| record.payload.clone());
    let _ = write!(
        body,
        "<section id=\"payload\"><h2>The alert as received (secret removed)</h2><pre>{}</pre></section></main>",
        esc(&pretty)
    );
    page(StatusCode::OK, "Alert", &body)
}
