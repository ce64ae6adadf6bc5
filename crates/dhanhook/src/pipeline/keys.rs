//! The identities an alert is given on its way in: the dedupe key (what makes two deliveries
//! the same alert) and each leg's `correlationId` (how its order is found again at the broker).
//! Pure functions of the signal and the time, so they are tested directly.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::{alert::Signal, clock::ist, store::DedupeKey};

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What makes two deliveries the same alert:
/// - `strategy` + explicit `id`: the sender says so; the key never expires;
/// - otherwise the normalised signal (secret excluded; numbers and spellings canonical, so
///   `"1"` and `1` agree). With `timenow` (TradingView's fire time) in it, the key never
///   expires: the same fire time is the same alert, whenever it arrives. Without, identical
///   alerts within `window` are one.
pub fn dedupe_key(signal: &Signal, now: DateTime<Utc>, window: Duration) -> DedupeKey {
    if let Some(id) = &signal.id {
        let ident = serde_json::json!([signal.strategy, id]).to_string();
        return DedupeKey {
            key: format!("id:{}", sha256_hex(ident.as_bytes())),
            expires_at: None,
        };
    }
    // Serialising a Signal cannot fail (plain data, string keys); an empty string would only
    // make every such alert share one key, which fails safe (duplicates, not double orders).
    let canonical = serde_json::to_string(signal).unwrap_or_default();
    let hash = sha256_hex(canonical.as_bytes());
    if signal.timenow.is_some() {
        DedupeKey {
            key: format!("tn:{hash}"),
            expires_at: None,
        }
    } else {
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::seconds(120));
        DedupeKey {
            key: format!("win:{hash}"),
            expires_at: Some(now + window),
        }
    }
}

/// The `correlationId` sent to the broker with a leg: `DH` + IST date + 12 hex digits of the
/// alert id's hash + `L` + leg number, e.g. `DH261128a1b2c3d4e5f6L1`. At most 24 characters of
/// `[A-Za-z0-9]` (Dhan accepts 25 of `[A-Za-z0-9 _-]`); the date makes it readable in Dhan's
/// order book and unique across days, as FIX practice advises for client order ids.
pub fn correlation_id(alert_id: &str, leg_no: u32, received_at: DateTime<Utc>) -> String {
    let hash = sha256_hex(alert_id.as_bytes());
    format!(
        "DH{}{}L{}",
        ist(received_at).format("%y%m%d"),
        &hash[..12],
        leg_no.min(99)
    )
}

/// Whether `id` has the shape of a [`correlation_id`] (so an order on the account may be one
/// of ours; the journal has the last word).
pub fn is_correlation_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("DH") else {
        return false;
    };
    // `get`, not slicing: the id comes from the broker and may hold any character.
    let (Some(head), Some(leg)) = (rest.get(..18), rest.get(18..)) else {
        return false;
    };
    let head = head.as_bytes();
    head[..6].iter().all(u8::is_ascii_digit)
        && head[6..].iter().all(u8::is_ascii_hexdigit)
        && leg
            .strip_prefix('L')
            .is_some_and(|n| !n.is_empty() && n.len() <= 2 && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::alert::parse_signal;

    fn signal(v: serde_json::Value) -> Signal {
        parse_signal(v.as_object().unwrap()).unwrap()
    }

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 4, 0, 0).unwrap()
    }

    #[test]
    fn correlation_ids_fit_dhans_limits_and_are_deterministic() {
        let cid = correlation_id("0193-some-alert-id", 20, at());
        assert!(cid.len() <= 25, "{cid}");
        assert!(
            cid.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        );
        assert!(cid.starts_with("DH261127"), "{cid}");
        assert_eq!(cid, correlation_id("0193-some-alert-id", 20, at()));
        assert_ne!(cid, correlation_id("0193-some-alert-id", 1, at()));
        assert_ne!(cid, correlation_id("another-alert", 20, at()));
    }

    #[test]
    fn equal_alerts_written_differently_share_a_key() {
        let a =
            signal(json!({"symbol":"NSE:SBIN","action":"buy","quantity":"1","product":"intraday"}));
        let b = signal(
            json!({"symbol":"SBIN","exchange":"NSE","action":"BUY","quantity":1,"product":"I"}),
        );
        let w = Duration::from_secs(120);
        assert_eq!(dedupe_key(&a, at(), w), dedupe_key(&b, at(), w));
        assert_eq!(
            dedupe_key(&a, at(), w).expires_at,
            Some(at() + chrono::Duration::seconds(120))
        );
    }

    #[test]
    fn timenow_and_id_make_permanent_keys() {
        let w = Duration::from_secs(120);
        let with_time = signal(
            json!({"symbol":"NSE:SBIN","action":"buy","quantity":1,"product":"I",
            "timenow":"2026-11-27T04:00:00Z"}),
        );
        let other_time = signal(
            json!({"symbol":"NSE:SBIN","action":"buy","quantity":1,"product":"I",
            "timenow":"2026-11-27T04:05:00Z"}),
        );
        assert_eq!(dedupe_key(&with_time, at(), w).expires_at, None);
        assert_ne!(
            dedupe_key(&with_time, at(), w).key,
            dedupe_key(&other_time, at(), w).key
        );

        let id_a = signal(
            json!({"id":"42","strategy":"s1","symbol":"NSE:SBIN","action":"buy","quantity":1,"product":"I"}),
        );
        let id_b = signal(
            json!({"id":"42","strategy":"s1","symbol":"NSE:TCS","action":"sell","quantity":9,"product":"I"}),
        );
        let id_c = signal(
            json!({"id":"42","strategy":"s2","symbol":"NSE:SBIN","action":"buy","quantity":1,"product":"I"}),
        );
        assert_eq!(
            dedupe_key(&id_a, at(), w),
            dedupe_key(&id_b, at(), w),
            "same strategy + id = same alert"
        );
        assert_ne!(
            dedupe_key(&id_a, at(), w).key,
            dedupe_key(&id_c, at(), w).key
        );
        assert_eq!(dedupe_key(&id_a, at(), w).expires_at, None);
    }

    #[test]
    fn our_correlation_ids_are_recognised_and_others_are_not() {
        let ours = correlation_id("a1", 2, at());
        assert!(is_correlation_id(&ours), "{ours}");
        assert!(is_correlation_id(&correlation_id("b", 99, at())));
        for other in [
            "",
            "DH",
            "OA12345",
            "DH261127zzzzzzzzzzzzL1",
            "DH261127a1b2c3d4e5f6",
            "DH261127a1b2c3d4e5f6L",
            "DH261127a1b2c3d4e5f6L123",
            "my-own-tag",
            "DH€€€€€€€€€€€€€€€€€€L1",
        ] {
            assert!(!is_correlation_id(other), "{other}");
        }
    }
}
