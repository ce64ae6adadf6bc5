//! Shared secrets: comparing them without leaking timing, and the generated webhook secret.
//!
//! Both sides of a comparison are hashed with SHA-256 first, so the constant-time comparison
//! always runs over 32 bytes and does not even reveal the secret's length.

use std::{
    fs::OpenOptions,
    io::{self, Read, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Whether `given` equals `expected`, in time independent of where they differ.
pub fn secrets_match(given: &str, expected: &SecretString) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.expose_secret().as_bytes());
    a.ct_eq(&b).into()
}

/// Bytes of randomness in a generated secret: 256 bits, above every bar in use (Standard
/// Webhooks asks for at least 192).
const GENERATED_SECRET_BYTES: usize = 32;

/// The shortest secret file we accept back (a hand-edited file could hold anything).
const MIN_STORED_SECRET_LEN: usize = 32;

/// Reads the webhook secret kept at `path`, or generates one and writes it there (mode 0600).
/// Returns the secret and whether it was generated just now.
///
/// # Errors
/// The file cannot be created or read, or holds something too short to be a strong secret.
// Blocking file calls, made from the async start-up (`Application::build`) on purpose: one
// 64-byte file, once, before the listener serves anything, so nothing waits on them.
pub fn load_or_generate(path: &Path) -> io::Result<(SecretString, bool)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            let mut bytes = [0u8; GENERATED_SECRET_BYTES];
            getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
            let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            file.write_all(secret.as_bytes())?;
            file.sync_all()?;
            Ok((SecretString::from(secret), true))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let mut file = OpenOptions::new().read(true).open(path)?;
            let mode = file.metadata()?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the webhook secret file is readable by other users; run: chmod 600 {}",
                    path.display()
                );
            }
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            let secret = text.trim().to_owned();
            if secret.len() < MIN_STORED_SECRET_LEN {
                return Err(io::Error::other(format!(
                    "{} holds fewer than {MIN_STORED_SECRET_LEN} characters; delete it to generate a new secret, or set WEBHOOK_SECRET",
                    path.display()
                )));
            }
            Ok((SecretString::from(secret), false))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_secret_matches() {
        let expected = SecretString::from("canary-secret-value-0123456789");
        assert!(secrets_match("canary-secret-value-0123456789", &expected));
        for wrong in [
            "",
            "canary-secret-value-012345678",
            "canary-secret-value-01234567890",
            "Canary-secret-value-0123456789",
            "canary-secret-value-0123456788",
            " canary-secret-value-0123456789",
        ] {
            assert!(!secrets_match(wrong, &expected), "{wrong:?} must not match");
        }
    }

    #[test]
    fn generated_secret_is_strong_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/webhook_secret");
        let (first, generated) = load_or_generate(&path).unwrap();
        assert!(generated);
        assert_eq!(first.expose_secret().len(), 64);
        assert!(first.expose_secret().chars().all(|c| c.is_ascii_hexdigit()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (again, generated) = load_or_generate(&path).unwrap();
        assert!(!generated);
        assert_eq!(again.expose_secret(), first.expose_secret());
    }

    #[test]
    fn a_weak_stored_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webhook_secret");
        std::fs::write(&path, "short").unwrap();
        let err = load_or_generate(&path).unwrap_err();
        assert!(err.to_string().contains("fewer than 32"), "{err}");
    }
}
