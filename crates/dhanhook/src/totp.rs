//! TOTP codes (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits) from a base32 secret, as Dhan's
//! authenticator setup and `generateAccessToken` use them.
//!
//! Written by hand on `hmac` + `sha1` (about 30 lines) rather than with a TOTP crate: it saves a
//! dependency tree and is checked against RFC 6238 Appendix B, and against dhan-sim's own
//! independent implementation in the integration tests.

use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha1::Sha1;

/// Seconds per TOTP step.
pub const STEP_SECS: i64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error(
        "DHAN_TOTP_SECRET is not valid base32 (letters A-Z and digits 2-7; spaces and '=' are ignored)"
    )]
    NotBase32,
    #[error("DHAN_TOTP_SECRET is too short to be a TOTP secret (fewer than 10 bytes)")]
    TooShort,
}

/// A TOTP secret. The key bytes are zeroed on drop and never printed.
#[derive(Clone)]
pub struct Totp {
    key: SecretSlice<u8>,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Totp([REDACTED])")
    }
}

impl Totp {
    /// Reads a base32 secret as authenticator apps show it: upper or lower case, with or
    /// without spaces and `=` padding.
    ///
    /// # Errors
    /// The text is not base32, or decodes to fewer than 80 bits.
    pub fn from_base32(text: &str) -> Result<Self, TotpError> {
        let key = decode_base32(text)?;
        if key.len() < 10 {
            return Err(TotpError::TooShort);
        }
        Ok(Self {
            key: SecretSlice::from(key),
        })
    }

    /// The 6-digit code for the step containing `unix_secs`.
    pub fn code_at(&self, unix_secs: i64) -> String {
        let counter = u64::try_from(unix_secs.div_euclid(STEP_SECS)).unwrap_or(0);
        format!("{:06}", hotp(self.key.expose_secret(), counter, 6))
    }

    /// Seconds until the code for `unix_secs` changes.
    pub fn seconds_left(unix_secs: i64) -> i64 {
        STEP_SECS - unix_secs.rem_euclid(STEP_SECS)
    }
}

/// RFC 4226 HOTP: HMAC-SHA1 of the big-endian counter, dynamic truncation, `digits` digits.
fn hotp(key: &[u8], counter: u64, digits: u32) -> u32 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let binary = u32::from_be_bytes([
        hash[offset],
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]) & 0x7fff_ffff;
    binary % 10u32.pow(digits)
}

/// RFC 4648 base32 (the alphabet A-Z, 2-7), ignoring case, spaces, dashes and padding.
fn decode_base32(text: &str) -> Result<Vec<u8>, TotpError> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=' && *c != '-')
    {
        let value = match c.to_ascii_uppercase() {
            u @ 'A'..='Z' => u as u32 - 'A' as u32,
            d @ '2'..='7' => d as u32 - '2' as u32 + 26,
            _ => return Err(TotpError::NotBase32),
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).unwrap_or(0));
        }
    }
    if out.is_empty() {
        return Err(TotpError::NotBase32);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows: the key is the ASCII "12345678901234567890".
    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let key = b"12345678901234567890";
        for (time, expected) in [
            (59_u64, 94_287_082),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(hotp(key, time / 30, 8), expected, "T={time}");
        }
    }

    #[test]
    fn six_digit_codes_from_a_base32_secret_match_the_rfc() {
        // Base32 of "12345678901234567890".
        let totp = Totp::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(totp.code_at(59), "287082");
        assert_eq!(totp.code_at(1_111_111_109), "081804");
        assert_eq!(totp.code_at(2_000_000_000), "279037");
    }

    #[test]
    fn secrets_are_read_as_authenticator_apps_show_them() {
        let canonical = Totp::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        for spelling in [
            "gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====",
        ] {
            assert_eq!(
                Totp::from_base32(spelling).unwrap().code_at(59),
                canonical.code_at(59),
                "{spelling}"
            );
        }
        assert_eq!(
            Totp::from_base32("not base32!").unwrap_err(),
            TotpError::NotBase32
        );
        assert_eq!(Totp::from_base32("GEZDG").unwrap_err(), TotpError::TooShort);
    }

    #[test]
    fn seconds_left_counts_down_within_a_step() {
        assert_eq!(Totp::seconds_left(60), 30);
        assert_eq!(Totp::seconds_left(89), 1);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let totp = Totp::from_base32("JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(format!("{totp:?}"), "Totp([REDACTED])");
    }
}
