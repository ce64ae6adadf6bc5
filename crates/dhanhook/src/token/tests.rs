//! The keeper against the simulated Dhan and a real SQLite journal, for what the pure policy
//! tests cannot show: how it behaves when the journal fails under it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dhan_sim::{Sim, SimConfig, SimHandle};
use secrecy::SecretString;

use super::*;
use crate::{
    clock::OffsetClock,
    dhan::DhanUrls,
    store::{
        JournalError, JournalLifecycle, Leases, StoredToken, TokenJournal, TokenStore,
        sqlite::SqliteJournal,
    },
};

/// A real SQLite journal whose `try_lease` fails while `fail` is set, as a database that is
/// locked, full or unreachable would.
#[derive(Debug)]
struct LeaseFails {
    inner: SqliteJournal,
    fail: AtomicBool,
}

#[async_trait]
impl TokenStore for LeaseFails {
    async fn load_token(&self, client_id: &str) -> Result<Option<StoredToken>, JournalError> {
        self.inner.load_token(client_id).await
    }
    async fn save_token(&self, token: &StoredToken) -> Result<(), JournalError> {
        self.inner.save_token(token).await
    }
}

#[async_trait]
impl Leases for LeaseFails {
    async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, JournalError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(JournalError::Database(sqlx::Error::PoolTimedOut));
        }
        self.inner.try_lease(name, holder, until, now).await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), JournalError> {
        self.inner.release_lease(name, holder).await
    }
}

fn keeper(sim: &SimHandle, journal: Arc<dyn TokenJournal>) -> TokenKeeper {
    let config = SimConfig::default();
    let client = DhanClient::new(
        DhanUrls {
            base: sim.base_url(),
            auth: sim.auth_url(),
        },
        config.client_id,
    )
    .unwrap();
    let creds = Credentials {
        pin: Some(SecretString::from(config.pin)),
        totp: Some(Totp::from_base32(&config.totp_secret).unwrap()),
        ..Credentials::default()
    };
    TokenKeeper::new(
        client,
        creds,
        TokenSettings::default(),
        journal,
        Arc::new(OffsetClock::starting_at(sim.now())),
        Arc::new(Calendar::builtin()),
    )
}

/// A journal that cannot be asked for the mint lease is not "another instance is minting":
/// the refresh fails at once, saying the journal is unavailable, and nothing is sent to Dhan.
/// (It used to wait 30 s for that phantom minter, then blame it.) It is no credential
/// failure, so nothing counts toward the halt, and once the journal answers a token is minted.
#[tokio::test]
async fn a_journal_error_on_the_mint_lease_fails_the_refresh_at_once_and_mints_nothing() {
    let sim = Sim::spawn(SimConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteJournal::open(&format!("sqlite://{}/journal.db", dir.path().display()))
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    let journal = Arc::new(LeaseFails {
        inner: sqlite,
        fail: AtomicBool::new(true),
    });
    let keeper = keeper(&sim, journal.clone());
    keeper.load().await.unwrap();

    let answer = tokio::time::timeout(Duration::from_secs(5), keeper.token())
        .await
        .expect("answered at once, not after waiting for a minter that does not exist");
    let error = answer.expect_err("no token without the lease");
    assert!(
        matches!(error, TokenError::JournalUnavailable(_)),
        "{error:?}"
    );
    assert!(error.to_string().contains("journal"), "{error}");
    assert_eq!(sim.mint_count(), 0, "nothing was sent to Dhan");
    let status = keeper.status();
    assert_eq!(status.consecutive_failures, 0);
    assert!(!status.minting_halted);
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("journal")),
        "{status:?}"
    );

    journal.fail.store(false, Ordering::SeqCst);
    let token = keeper
        .token()
        .await
        .expect("minted once the journal answers");
    assert_eq!(token.source, TokenSource::Minted);
    assert_eq!(sim.mint_count(), 1);
}
