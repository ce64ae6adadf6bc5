//! The steps of admitting an alert, written once for both backends: reading and writing its
//! dedupe key, counting a redelivery, writing the alert and its legs. Each backend's
//! `Backend::admit_alert` (`sqlite.rs`, `postgres.rs`) runs them in its own order and
//! transaction, which is where the backends really differ; this macro expands the steps for
//! each backend's connection type (see `shared.rs` for why a macro).

use super::NewAlert;
use crate::clock::to_millis;

/// Adds the admission steps to `$journal`, whose connections are `$connection`.
macro_rules! admission_steps {
    ($journal:ty, $connection:ty) => {
        impl $journal {
            /// The alert a live dedupe key (at `now`) points at, if the key exists and is live.
            pub(super) async fn live_key(
                conn: &mut $connection,
                key: &str,
                now: i64,
            ) -> Result<Option<String>, sqlx::Error> {
                let existing: Option<(String, Option<i64>)> =
                    sqlx::query_as("SELECT alert_id, expires_at FROM dedupe_keys WHERE key = $1")
                        .bind(key)
                        .fetch_optional(&mut *conn)
                        .await?;
                Ok(existing
                    .filter(|(_, expires_at)| expires_at.is_none_or(|at| at > now))
                    .map(|(alert_id, _)| alert_id))
            }

            /// An expired key (same payload, outside the window) gives way to the new alert.
            /// A key with no expiry (NULL) never does.
            pub(super) async fn delete_expired_key(
                conn: &mut $connection,
                key: &str,
                now: i64,
            ) -> Result<(), sqlx::Error> {
                sqlx::query("DELETE FROM dedupe_keys WHERE key = $1 AND expires_at <= $2")
                    .bind(key)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// Writes the alert's dedupe key; `false` when the key exists already.
            pub(super) async fn insert_key(
                conn: &mut $connection,
                alert: &NewAlert,
            ) -> Result<bool, sqlx::Error> {
                let written: Option<String> = sqlx::query_scalar(
                    "INSERT INTO dedupe_keys (key, alert_id, expires_at) VALUES ($1, $2, $3)
                     ON CONFLICT (key) DO NOTHING RETURNING alert_id",
                )
                .bind(&alert.dedupe.key)
                .bind(&alert.id)
                .bind(alert.dedupe.expires_at.map(to_millis))
                .fetch_optional(&mut *conn)
                .await?;
                Ok(written.is_some())
            }

            /// Counts a redelivery on the alert it repeats.
            pub(super) async fn count_duplicate(
                conn: &mut $connection,
                alert_id: &str,
            ) -> Result<(), sqlx::Error> {
                sqlx::query("UPDATE alerts SET duplicates = duplicates + 1 WHERE id = $1")
                    .bind(alert_id)
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            }

            /// Writes the alert and its legs.
            pub(super) async fn insert_alert(
                conn: &mut $connection,
                alert: &NewAlert,
            ) -> Result<(), sqlx::Error> {
                let now = to_millis(alert.received_at);
                sqlx::query(
                    "INSERT INTO alerts (id, received_at, client_ip, format, alert_type, strategy, dedupe_key,
                                         payload, mode, status, duplicates, updated_at, route, queued_until,
                                         on_leg_reject)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $2, $11, $12, $13)",
                )
                .bind(&alert.id)
                .bind(now)
                .bind(&alert.client_ip)
                .bind(alert.format)
                .bind(&alert.alert_type)
                .bind(&alert.strategy)
                .bind(&alert.dedupe.key)
                .bind(&alert.payload)
                .bind(alert.mode.as_str())
                .bind(alert.status().as_str())
                .bind(&alert.route)
                .bind(alert.queued_until.map(to_millis))
                .bind(alert.on_leg_reject.as_str())
                .execute(&mut *conn)
                .await?;
                for leg in &alert.legs {
                    let o = &leg.order;
                    sqlx::query(
                        "INSERT INTO order_legs (alert_id, leg_no, correlation_id, symbol, exchange, side, quantity,
                             order_type, product, validity, price, trigger_price, instrument, option_type,
                             strike_price, expiry_date, amo, amo_time, mode, status, created_at, updated_at,
                             security_id, exchange_segment, trading_symbol, lot_size, units, message, closes)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                                 $19, $20, $21, $21, $22, $23, $24, $25, $26, $27, $28)",
                    )
                    .bind(&alert.id)
                    .bind(i64::from(leg.leg_no))
                    .bind(&leg.correlation_id)
                    .bind(&o.symbol)
                    .bind(o.exchange.as_str())
                    .bind(o.side.as_str())
                    .bind(i64::from(o.quantity))
                    .bind(o.order_type.as_str())
                    .bind(o.product.as_str())
                    .bind(o.validity.as_str())
                    .bind(o.price)
                    .bind(o.trigger_price)
                    .bind(o.instrument.map(|i| i.as_str()))
                    .bind(o.option.as_ref().map(|c| c.kind.as_str()))
                    .bind(o.option.as_ref().map(|c| c.strike))
                    .bind(o.option.as_ref().map(|c| c.expiry.to_string()))
                    .bind(o.amo)
                    .bind(o.amo_time.map(|t| t.as_str()))
                    .bind(alert.mode.as_str())
                    .bind(alert.leg_status(leg).as_str())
                    .bind(now)
                    .bind(&leg.resolved.security_id)
                    .bind(&leg.resolved.exchange_segment)
                    .bind(&leg.resolved.trading_symbol)
                    .bind(i64::from(leg.resolved.lot_size))
                    .bind(i64::from(leg.resolved.units))
                    .bind(alert.leg_message(leg))
                    .bind(o.closes)
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            }
        }
    };
}

admission_steps!(super::sqlite::SqliteJournal, sqlx::SqliteConnection);
admission_steps!(super::postgres::PgJournal, sqlx::PgConnection);
