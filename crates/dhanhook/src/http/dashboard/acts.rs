//! The dashboard's buttons: the kill switch, a new token, running the queue, and replaying an
//! alert (paper mode only). Each checks the session's CSRF token first.

use super::session::{csrf_ok, forbidden_csrf};

use super::*;

// ---- acts ----------------------------------------------------------------------------------

/// The outcome of an act: back to the dashboard when it worked, else a page saying why.
pub(super) fn act_result(result: Result<(), String>) -> Response {
    match result {
        Ok(()) => Redirect::to("/ui").into_response(),
        Err(problem) => page(
            StatusCode::OK,
            "Not done",
            &format!(
                "<main class=\"narrow\"><p class=\"bad\">{}</p><p><a href=\"/ui\">Back to the dashboard</a></p></main>",
                esc(&problem)
            ),
        ),
    }
}

pub(super) async fn kill_switch(
    session: UiSession,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&session, &headers, &form) {
        return forbidden_csrf();
    }
    let on = form.get("on").map(String::as_str) == Some("true");
    let by = state.client_ip(peer.ip(), &headers).to_string();
    let change = KillSwitchChange {
        on,
        flatten: false,
        broker: false,
        note: Some("from the dashboard".to_owned()),
    };
    act_result(
        state
            .inner
            .kill_switch
            .apply(&change, &by)
            .await
            .map(|_| ())
            .map_err(|e| {
                tracing::error!(error = %e, "the kill switch change was not journaled");
                "The journal did not record the change; nothing was done.".to_owned()
            }),
    )
}

pub(super) async fn refresh_token(
    session: UiSession,
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&session, &headers, &form) {
        return forbidden_csrf();
    }
    let Some(keeper) = &state.inner.keeper else {
        return act_result(Err("Paper mode has no Dhan token.".to_owned()));
    };
    act_result(
        keeper
            .refresh_now()
            .await
            .map(|_| ())
            .map_err(|e| format!("No new token: {e}")),
    )
}

pub(super) async fn process_queue(
    session: UiSession,
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&session, &headers, &form) {
        return forbidden_csrf();
    }
    act_result(
        state
            .inner
            .queue
            .process_due()
            .await
            .map(|_| ())
            .map_err(|e| {
                tracing::error!(error = %e, "processing the queue failed");
                "The queue could not be processed; see the service log.".to_owned()
            }),
    )
}

/// Replays a stored alert as a new alert (a fresh `id`, so it is not its own duplicate),
/// **in paper mode only**: a replay in live mode would place a real order again. It runs in
/// a tracked task like a webhook's placement, so a closed tab does not cut it short.
pub(super) async fn replay(
    session: UiSession,
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(alert_id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !csrf_ok(&session, &headers, &form) {
        return forbidden_csrf();
    }
    if state.inner.mode != Mode::Paper {
        return act_result(Err(
            "Replay is for paper mode only: in live mode it would place a real order again."
                .to_owned(),
        ));
    }
    let record = match state.inner.journal.alert(&alert_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return act_result(Err("No alert with this id.".to_owned())),
        Err(e) => {
            tracing::error!(error = %e, "the dashboard could not read an alert to replay");
            return act_result(Err("The journal could not be read.".to_owned()));
        }
    };
    if record.mode != Mode::Paper {
        return act_result(Err(
            "This alert was journaled in live mode; only paper alerts are replayed.".to_owned(),
        ));
    }
    let Ok(serde_json::Value::Object(mut map)) =
        serde_json::from_str::<serde_json::Value>(&record.payload)
    else {
        return act_result(Err("The stored alert is not a JSON object.".to_owned()));
    };
    map.insert(
        "id".to_owned(),
        serde_json::Value::String(format!("replay-{}", uuid::Uuid::now_v7())),
    );
    let signal = match crate::alert::parse_signal(&map) {
        Ok(s) => s,
        Err(problems) => {
            let list: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", p.field, p.problem))
                .collect();
            return act_result(Err(format!(
                "The stored alert no longer passes the checks: {}",
                list.join("; ")
            )));
        }
    };
    let intake = crate::pipeline::Intake {
        client_ip: Some(state.client_ip(peer.ip(), &headers)),
        payload: serde_json::Value::Object(map),
    };
    let pipeline = state.inner.pipeline.clone();
    let handled = state
        .inner
        .tasks
        .spawn(async move { pipeline.handle(signal, intake).await })
        .await;
    match handled {
        Ok(Ok(h)) => {
            tracing::info!(from = %record.id, alert_id = %h.record.id, "alert replayed from the dashboard (paper)");
            Redirect::to(&format!("/ui/alerts/{}", urlencode(&h.record.id))).into_response()
        }
        Ok(Err(e)) => act_result(Err(format!("The replay was refused: {e}"))),
        Err(e) => {
            tracing::error!(error = %e, "the replay task failed");
            act_result(Err("The replay failed; see the service log.".to_owned()))
        }
    }
}
