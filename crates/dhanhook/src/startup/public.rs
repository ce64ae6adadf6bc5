//! What the service says about itself at start-up: the configuration shown on `/` (everything an
//! operator needs to check, nothing secret) and the start-up log lines.

use std::net::SocketAddr;

use serde_json::json;

use super::SecretSource;
use crate::config::Settings;

/// The configuration shown on `/`: everything an operator needs to check, nothing secret.
pub(super) fn public_config(
    settings: &Settings,
    source: &SecretSource,
    broker: &str,
    port: u16,
) -> serde_json::Value {
    json!({
        "broker": broker,
        "host": settings.host.to_string(),
        "port": port,
        "database": settings.database_url.kind(),
        "database_location": settings.database_url.describe(),
        "csv_log_path": settings.csv_log_path.display().to_string(),
        "dedup_window_secs": settings.dedup_window.as_secs(),
        "when_closed": settings.routing.when_closed.as_str(),
        "amo_time": settings.routing.amo_time.as_str(),
        "amo_window_ist": format!(
            "{} to {} (next trading day)",
            settings.routing.amo_window.opens.format("%H:%M"),
            settings.routing.amo_window.closes.format("%H:%M")
        ),
        "queue_max_age_secs": settings.routing.queue_max_age.as_secs(),
        "holidays": settings.routing.holidays_path.as_ref().map_or_else(
            || "built-in".to_owned(),
            |p| p.display().to_string()
        ),
        "webhook_secret": match source {
            SecretSource::Env => "from WEBHOOK_SECRET".to_owned(),
            SecretSource::File { path, .. } => format!("generated, in {path}"),
        },
        "admin_endpoints": if settings.admin_token.is_some() { "enabled" } else { "disabled (set ADMIN_TOKEN)" },
        "notifications": {
            "telegram": settings.notify.telegram().is_some(),
            "webhook": settings.notify.webhook_url.is_some(),
            "events": settings.notify.events.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        },
        "controls": controls(&settings.controls),
        "auto_health_check": settings.auto_health_check,
        // Seconds, under the upstream's name (its guide checks `.config.health_check_interval`).
        "health_check_interval": settings.health_check_interval.as_secs(),
        "dhan": {
            "env": settings.dhan.env.as_str(),
            "api": settings.dhan.urls.base,
            "auth": settings.dhan.urls.auth,
            "client_id": settings.dhan.client_id.as_deref().map(mask_client_id),
            "token_routes": token_routes(&settings.dhan),
            "refresh_margin_secs": settings.dhan.token.refresh_margin.as_secs(),
            "quantity_unit_fno": match settings.instruments.quantity_unit {
                crate::instruments::QuantityUnit::Lots => "lots",
                crate::instruments::QuantityUnit::Units => "units",
            },
            "eq_product": if settings.instruments.eq_product_cnc { "cnc" } else { "as_sent" },
        },
    })
}

/// The risk rails, the kill switch's mode and the multi-leg policy, as set (`null`: off).
fn controls(c: &crate::config::ControlSettings) -> serde_json::Value {
    let r = &c.rails;
    json!({
        "max_qty_per_leg": r.max_qty_per_leg,
        "max_lots_per_leg": r.max_lots_per_leg,
        "max_order_value": r.max_order_value,
        "max_orders_per_day": r.max_orders_per_day,
        "max_orders_per_day_per_strategy": r.max_orders_per_day_per_strategy,
        "max_open_positions": r.max_open_positions,
        "symbol_allowlist": r.symbol_allowlist,
        "symbol_denylist": r.symbol_denylist,
        "entry_window_ist": r.entry_window.map(|w| format!("{}-{}", w.from.format("%H:%M"), w.until.format("%H:%M"))),
        "kill_switch_mode": c.kill_switch_mode.as_str(),
        "on_leg_reject": c.on_leg_reject.as_str(),
    })
}

/// The configured ways to get a token (names only).
fn token_routes(d: &crate::config::DhanSettings) -> Vec<&'static str> {
    let mut routes = Vec::new();
    if d.pin.is_some() && d.totp_secret.is_some() {
        routes.push("pin+totp");
    }
    if d.access_token.is_some() {
        routes.push("access_token");
    }
    if d.api_key.is_some() && d.api_secret.is_some() {
        routes.push("consent");
    }
    routes
}

/// A client id is not a secret, but there is no need to publish it whole.
fn mask_client_id(id: &str) -> String {
    let tail: String = id
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("******{tail}")
}

/// The start-up lines: where to send alerts, in which mode, and where the secret comes from.
pub(super) fn announce(settings: &Settings, source: &SecretSource, addr: SocketAddr) {
    let local = SocketAddr::from(([127, 0, 0, 1], addr.port()));
    tracing::info!(
        mode = settings.mode.as_str(),
        "dhanhook {} listening on http://{addr} (mode: {}; journal: {})",
        env!("CARGO_PKG_VERSION"),
        settings.mode,
        settings.database_url.describe(),
    );
    if settings.admin_token.is_some() {
        tracing::info!(
            "dashboard: http://{local}/ui (sign in with ADMIN_TOKEN); metrics: http://{local}/metrics"
        );
    } else {
        tracing::info!(
            "dashboard and metrics are off: set ADMIN_TOKEN (and METRICS_TOKEN for a scraper) to use http://{local}/ui and /metrics"
        );
    }
    match source {
        SecretSource::Env => tracing::info!("webhook secret: from WEBHOOK_SECRET"),
        SecretSource::File { path, generated } => {
            let how = if *generated {
                "generated and saved"
            } else {
                "read"
            };
            tracing::info!(
                "webhook secret: {how} in {path} (set WEBHOOK_SECRET to use your own). Try it:\n  \
                 curl -s -X POST http://{local}/webhook -d \"{{\\\"secret\\\":\\\"$(cat {path})\\\",\
                 \\\"symbol\\\":\\\"NSE:RELIANCE\\\",\\\"action\\\":\\\"buy\\\",\\\"quantity\\\":1,\
                 \\\"product\\\":\\\"intraday\\\",\\\"price\\\":2500}}\""
            );
        }
    }
}
