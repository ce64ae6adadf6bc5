//! The Dhan token at rest. A token gives 24 hours of trading on the account, so the journal
//! never holds it in clear: it is sealed with XChaCha20-Poly1305 (RustCrypto) under
//! `TOKEN_KEY`, bound to the client id, as `v1:` + base64(nonce ‖ ciphertext). A copied data
//! folder or a read of the shared PostgreSQL database yields nothing usable without the key.
//!
//! The key is 32 random bytes in base64 (`openssl rand -base64 32`). With SQLite and no
//! `TOKEN_KEY` one is generated into `DATA_DIR/token_key` (mode 0600); with PostgreSQL in live
//! mode it must be given, the same to every instance.

use std::{
    fs,
    io::{self, Write},
    path::Path,
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, Payload},
};
use secrecy::{ExposeSecret, SecretString};

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;

/// Seals and opens stored tokens. `Debug` never shows the key.
#[derive(Clone)]
pub struct TokenVault {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for TokenVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenVault([key redacted])")
    }
}

/// Why a stored token could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    #[error("TOKEN_KEY must be 32 random bytes in base64 (e.g. openssl rand -base64 32)")]
    BadKey,
    #[error(
        "the stored token cannot be decrypted with this TOKEN_KEY (the key changed, or the value was altered)"
    )]
    Undecryptable,
}

/// What a stored value turned out to be.
#[derive(Debug)]
pub enum Opened {
    /// Sealed by a vault with this key.
    Sealed(SecretString),
    /// Stored in clear by a version before the vault: usable, and sealed when stored again.
    Legacy(SecretString),
}

impl TokenVault {
    /// From `TOKEN_KEY`'s value.
    ///
    /// # Errors
    /// Not base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, VaultError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| VaultError::BadKey)?;
        if bytes.len() != 32 {
            return Err(VaultError::BadKey);
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| VaultError::BadKey)?;
        Ok(Self { cipher })
    }

    /// The key kept in `path`, or a new random one written there (mode 0600, never replaced).
    /// Returns the vault and whether the key was generated now.
    ///
    /// # Errors
    /// The file cannot be read or created, or holds no valid key.
    // Blocking file calls, made from async code (`startup::token_keeper`) on purpose: one
    // 44-byte file, once, at start-up before the listener serves anything or in a one-shot
    // CLI command, so nothing waits on them.
    pub fn load_or_generate(path: &Path) -> io::Result<(Self, bool)> {
        match fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text)
                .map(|v| (v, false))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    fs::create_dir_all(dir)?;
                }
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| io::Error::other(e.to_string()))?;
                let text = STANDARD.encode(key);
                let mut file = {
                    use std::os::unix::fs::OpenOptionsExt;
                    fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(path)?
                };
                file.write_all(text.as_bytes())?;
                file.sync_all()?;
                let vault = Self::from_base64(&text)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                Ok((vault, true))
            }
            Err(e) => Err(e),
        }
    }

    /// The token sealed for storage, bound to `client_id`.
    pub fn seal(&self, token: &SecretString, client_id: &str) -> SecretString {
        let mut nonce = [0u8; NONCE_LEN];
        // A failing OS random source is not something to store a token around.
        if getrandom::fill(&mut nonce).is_err() {
            tracing::error!("no randomness for the token's nonce; the token is not stored");
            return SecretString::from(String::new());
        }
        let sealed = self.cipher.encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: token.expose_secret().as_bytes(),
                aad: client_id.as_bytes(),
            },
        );
        match sealed {
            Ok(ciphertext) => {
                let mut out = nonce.to_vec();
                out.extend_from_slice(&ciphertext);
                SecretString::from(format!("{PREFIX}{}", STANDARD.encode(out)))
            }
            Err(_) => SecretString::from(String::new()),
        }
    }

    /// Opens a stored value: a sealed token, or a legacy one stored in clear.
    ///
    /// # Errors
    /// Sealed under another key (or for another client id), or altered.
    pub fn open(&self, stored: &SecretString, client_id: &str) -> Result<Opened, VaultError> {
        let text = stored.expose_secret();
        let Some(encoded) = text.strip_prefix(PREFIX) else {
            return Ok(Opened::Legacy(stored.clone()));
        };
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| VaultError::Undecryptable)?;
        if bytes.len() <= NONCE_LEN {
            return Err(VaultError::Undecryptable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| VaultError::Undecryptable)?;
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: client_id.as_bytes(),
                },
            )
            .map_err(|_| VaultError::Undecryptable)?;
        String::from_utf8(plain)
            .map(|s| Opened::Sealed(SecretString::from(s)))
            .map_err(|_| VaultError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> TokenVault {
        TokenVault::from_base64(&STANDARD.encode([7u8; 32])).unwrap()
    }

    #[test]
    fn a_sealed_token_opens_only_with_its_key_and_client_id() {
        let token = SecretString::from("eyJ.fake-token-canary.sig".to_owned());
        let sealed = vault().seal(&token, "1000000001");
        assert!(sealed.expose_secret().starts_with("v1:"));
        assert!(!sealed.expose_secret().contains("fake-token-canary"));
        match vault().open(&sealed, "1000000001").unwrap() {
            Opened::Sealed(t) => assert_eq!(t.expose_secret(), token.expose_secret()),
            Opened::Legacy(_) => panic!("sealed"),
        }
        let other = TokenVault::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert_eq!(
            other.open(&sealed, "1000000001").unwrap_err(),
            VaultError::Undecryptable
        );
        assert_eq!(
            vault().open(&sealed, "1000000002").unwrap_err(),
            VaultError::Undecryptable,
            "bound to the client id"
        );
        // Two seals of one token differ (random nonces).
        assert_ne!(
            vault().seal(&token, "1000000001").expose_secret(),
            sealed.expose_secret()
        );
    }

    #[test]
    fn keys_are_checked_and_a_clear_legacy_value_is_read_as_such() {
        assert_eq!(
            TokenVault::from_base64("c2hvcnQ=").unwrap_err(),
            VaultError::BadKey
        );
        assert_eq!(
            TokenVault::from_base64("not base64!").unwrap_err(),
            VaultError::BadKey
        );
        let legacy = SecretString::from("eyJ.plain.token".to_owned());
        assert!(matches!(
            vault().open(&legacy, "1000000001"),
            Ok(Opened::Legacy(_))
        ));
        assert!(!format!("{:?}", vault()).contains('7'));
    }

    #[test]
    fn a_generated_key_is_kept_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token_key");
        let (first, generated) = TokenVault::load_or_generate(&path).unwrap();
        assert!(generated);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, generated) = TokenVault::load_or_generate(&path).unwrap();
        assert!(!generated);
        let token = SecretString::from("t".to_owned());
        let sealed = first.seal(&token, "c");
        assert!(matches!(second.open(&sealed, "c"), Ok(Opened::Sealed(_))));
    }
}
