//! The dashboard's charts of the last 24 hours, as inline SVG rendered here (no script, no
//! chart library): alerts per hour, the slowest answer per hour, legs by state.

use super::*;

// ---- charts (inline SVG, server-rendered) ---------------------------------------------------

/// A bar chart of `values` (one bar each, labelled under it), `unit` after the top value.
pub(super) fn bar_chart(id: &str, title: &str, values: &[(String, f64)], unit: &str) -> String {
    let (w, h, pad) = (480.0_f64, 140.0_f64, 18.0_f64);
    let max = values.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let n = values.len().max(1) as f64;
    let bar_w = (w - 2.0 * pad) / n;
    let mut svg = format!(
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>\
         <svg viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"{}\">",
        esc(title),
        h + 30.0,
        esc(title)
    );
    for (i, (label, v)) in values.iter().enumerate() {
        let bh = if max > 0.0 { v / max * (h - pad) } else { 0.0 };
        let x = pad + i as f64 * bar_w;
        let _ = write!(
            svg,
            "<rect class=\"bar\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\"><title>{}: {}</title></rect>",
            h - bh,
            (bar_w - 2.0).max(1.0),
            esc(label),
            trim_number(*v)
        );
        // Label every bar when few, else every third.
        if values.len() <= 13 || i % 3 == 0 {
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\">{}</text>",
                x + bar_w / 2.0,
                h + 14.0,
                esc(label)
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"{pad}\" y=\"12\" class=\"axis top\">max {}{}</text></svg></figure>",
        trim_number(max),
        esc(unit)
    );
    svg
}

pub(super) fn trim_number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

pub(super) fn charts(state: &AppState, rows: &[OrderRow], now: DateTime<Utc>, body: &mut String) {
    let day_ago = now - chrono::Duration::hours(24);
    // The last 24 hours by IST hour, oldest first.
    let hour_start = |t: DateTime<Utc>| {
        t.with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(t)
    };
    let first = hour_start(now) - chrono::Duration::hours(23);
    let slot = |t: DateTime<Utc>| -> Option<usize> {
        let i = (t - first).num_hours();
        (0..24).contains(&i).then_some(i as usize)
    };
    let hour_label = |i: usize| {
        ist(first + chrono::Duration::hours(i as i64))
            .format("%H")
            .to_string()
    };

    let mut alerts = [0.0_f64; 24];
    let mut seen = std::collections::HashSet::new();
    for r in rows.iter().filter(|r| r.received_at >= day_ago) {
        if seen.insert(&r.alert_id)
            && let Some(i) = slot(r.received_at)
        {
            alerts[i] += 1.0;
        }
    }
    let mut worst = [0.0_f64; 24];
    let answers = state.inner.metrics.recent_answers();
    for a in answers
        .iter()
        .filter(|a| a.outcome != WebhookOutcome::Unauthorized)
    {
        if let Some(i) = slot(a.at) {
            worst[i] = worst[i].max(a.seconds);
        }
    }
    let mut by_state: Vec<(String, f64)> = LegStatus::ALL
        .iter()
        .map(|st| {
            let n = rows
                .iter()
                .filter(|r| r.received_at >= day_ago && r.status == *st)
                .count();
            (st.as_str().to_owned(), n as f64)
        })
        .filter(|(_, n)| *n > 0.0)
        .collect();
    if by_state.is_empty() {
        by_state.push(("none yet".to_owned(), 0.0));
    }
    body.push_str("<section id=\"charts\"><h2>The last 24 hours</h2><div class=\"charts\">");
    body.push_str(&bar_chart(
        "chart-alerts",
        "Alerts per hour (IST)",
        &alerts
            .iter()
            .enumerate()
            .map(|(i, v)| (hour_label(i), *v))
            .collect::<Vec<_>>(),
        " alerts",
    ));
    body.push_str(&bar_chart(
        "chart-latency",
        "Slowest webhook answer per hour (since start)",
        &worst
            .iter()
            .enumerate()
            .map(|(i, v)| (hour_label(i), *v))
            .collect::<Vec<_>>(),
        " s",
    ));
    body.push_str(&bar_chart(
        "chart-outcomes",
        "Order legs by state",
        &by_state,
        " legs",
    ));
    body.push_str("</div></section>");
}
