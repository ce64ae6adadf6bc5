//! TOTP (RFC 6238) as Dhan's `generateAccessToken` checks it: HMAC-SHA1, 30 s step,
//! 6 digits, Base32 secret.
//!
//! Written here from the RFCs on purpose, without sharing code with dhanhook: the
//! simulator is the independent check of dhanhook's own TOTP generator, so a bug in one
//! cannot hide the same bug in the other.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Length of one TOTP time step in seconds (RFC 6238 default, used by Dhan).
pub const STEP_SECONDS: i64 = 30;

/// Number of digits in a Dhan TOTP code.
pub const DIGITS: u32 = 6;

/// Why a secret or a code could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    /// The secret contains a character outside the RFC 4648 Base32 alphabet.
    #[error("invalid base32 character {0:?} in TOTP secret")]
    InvalidBase32(char),
    /// The secret decodes to no bytes at all.
    #[error("TOTP secret is empty")]
    EmptySecret,
    /// The time is before the Unix epoch, where RFC 6238 defines no counter.
    #[error("time is before the Unix epoch")]
    NegativeTime,
}

/// Decodes RFC 4648 Base32, the way authenticator apps accept secrets: case-insensitive,
/// spaces and `-` ignored, `=` padding optional. Trailing bits that do not fill a byte
/// are dropped (RFC 4648 §6).
pub fn decode_base32(secret: &str) -> Result<Vec<u8>, TotpError> {
    let mut out = Vec::with_capacity(secret.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for c in secret.chars() {
        let value = match c {
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32,
            '2'..='7' => c as u32 - '2' as u32 + 26,
            ' ' | '-' | '=' | '\t' => continue,
            other => return Err(TotpError::InvalidBase32(other)),
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            // Masking to a byte makes the truncation explicit.
            out.push(((buffer >> bits) & 0xff) as u8);
        }
        // Keep only the bits not yet emitted so the buffer never overflows.
        buffer &= (1 << bits) - 1;
    }
    if out.is_empty() {
        return Err(TotpError::EmptySecret);
    }
    Ok(out)
}

/// RFC 4226 HOTP with HMAC-SHA1 and dynamic truncation, `digits` long (zero-padded).
pub fn hotp(key: &[u8], counter: u64, digits: u32) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back to an empty key
    // rather than panic if a future version of the crate thinks otherwise.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = (u32::from(digest[offset] & 0x7f) << 24)
        | (u32::from(digest[offset + 1]) << 16)
        | (u32::from(digest[offset + 2]) << 8)
        | u32::from(digest[offset + 3]);
    let modulus = 10u64.pow(digits);
    let code = u64::from(binary) % modulus;
    format!("{code:0width$}", width = digits as usize)
}

/// The RFC 6238 code for raw key bytes at `unix_seconds`, with `digits` digits.
pub fn totp_raw(key: &[u8], unix_seconds: i64, digits: u32) -> Result<String, TotpError> {
    let counter = u64::try_from(unix_seconds.div_euclid(STEP_SECONDS))
        .map_err(|_| TotpError::NegativeTime)?;
    Ok(hotp(key, counter, digits))
}

/// The 6-digit code for a Base32 secret at `unix_seconds`, as an authenticator app shows it.
pub fn generate(secret_base32: &str, unix_seconds: i64) -> Result<String, TotpError> {
    let key = decode_base32(secret_base32)?;
    totp_raw(&key, unix_seconds, DIGITS)
}

/// Whether `code` is valid for the secret at `unix_seconds`, accepting the current step
/// and one step either side (the usual allowance for clock skew).
pub fn verify(secret_base32: &str, code: &str, unix_seconds: i64) -> bool {
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(key) = decode_base32(secret_base32) else {
        return false;
    };
    [-STEP_SECONDS, 0, STEP_SECONDS].iter().any(|delta| {
        totp_raw(&key, unix_seconds.saturating_add(*delta), DIGITS).is_ok_and(|c| c == code)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows: the seed is the ASCII string "12345678901234567890".
    const RFC_SEED: &[u8] = b"12345678901234567890";
    const RFC_VECTORS: [(i64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    #[test]
    fn rfc6238_sha1_vectors_eight_digits() {
        for (t, expected) in RFC_VECTORS {
            assert_eq!(totp_raw(RFC_SEED, t, 8).unwrap(), expected, "T={t}");
        }
    }

    #[test]
    fn rfc6238_sha1_vectors_six_digits_are_the_last_six() {
        for (t, expected) in RFC_VECTORS {
            assert_eq!(totp_raw(RFC_SEED, t, 6).unwrap(), &expected[2..], "T={t}");
        }
    }

    #[test]
    fn base32_of_the_rfc_seed_gives_the_same_codes() {
        // "12345678901234567890" in Base32.
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(decode_base32(secret).unwrap(), RFC_SEED);
        assert_eq!(generate(secret, 59).unwrap(), "287082");
        assert_eq!(generate(secret, 1_111_111_109).unwrap(), "081804");
    }

    #[test]
    fn base32_accepts_lower_case_spaces_and_padding() {
        let canonical = decode_base32("JBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(canonical, b"Hello!\xde\xad\xbe\xef");
        assert_eq!(decode_base32("jbsw y3dp ehpk 3pxp").unwrap(), canonical);
        assert_eq!(decode_base32("JBSWY3DPEHPK3PXP====").unwrap(), canonical);
        assert_eq!(decode_base32("MZXW6===").unwrap(), b"foo");
        assert_eq!(decode_base32("MZXW6YTBOI").unwrap(), b"foobar");
    }

    #[test]
    fn base32_rejects_bad_input_without_panicking() {
        assert_eq!(decode_base32("JBSW1"), Err(TotpError::InvalidBase32('1')));
        assert_eq!(decode_base32(""), Err(TotpError::EmptySecret));
        assert_eq!(decode_base32("===="), Err(TotpError::EmptySecret));
        assert_eq!(decode_base32("ü"), Err(TotpError::InvalidBase32('ü')));
    }

    #[test]
    fn verify_accepts_one_step_either_side_only() {
        let secret = "JBSWY3DPEHPK3PXP";
        let t = 1_700_000_000;
        let now = generate(secret, t).unwrap();
        let prev = generate(secret, t - 30).unwrap();
        let next = generate(secret, t + 30).unwrap();
        let far = generate(secret, t + 90).unwrap();
        assert!(verify(secret, &now, t));
        assert!(verify(secret, &prev, t));
        assert!(verify(secret, &next, t));
        if far != now && far != prev && far != next {
            assert!(!verify(secret, &far, t));
        }
        assert!(!verify(secret, "12345", t));
        assert!(!verify(secret, "abcdef", t));
        assert!(!verify(secret, "1234567", t));
    }

    #[test]
    fn negative_time_is_an_error() {
        assert_eq!(totp_raw(RFC_SEED, -1, 6), Err(TotpError::NegativeTime));
    }
}
