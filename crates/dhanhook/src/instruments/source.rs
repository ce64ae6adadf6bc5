//! Where the scrip master comes from, and keeping it fresh.
//!
//! - `INSTRUMENTS_PATH` set: that file is used as is (never downloaded over; the upstream's
//!   hand-copied CSV habit).
//! - Otherwise the compact file is downloaded from `INSTRUMENTS_URL` (Dhan's by default) into
//!   `DATA_DIR/instruments/` when the cached copy is older than today's refresh time (08:00
//!   IST by default: Dhan rebuilds the file each morning, and derivative ids change with every
//!   expiry), then daily at that time. The download goes to a temporary file, is parsed, and
//!   only then replaces the cache (atomic rename): a failed or truncated download never
//!   replaces the last good copy; the service keeps that copy and reports `stale`.
//! - Start-up never waits for the network: it loads the cache (or, in paper mode with no
//!   cache at all, the built-in sample) and downloads in the background.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use serde::Serialize;

use super::{Instruments, master};
use crate::clock::{Clock, ist, ist_offset};

/// Dhan's compact scrip master.
pub const DEFAULT_URL: &str = "https://images.dhan.co/api-data/api-scrip-master.csv";

/// How long a download may take: the file is tens of megabytes.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// `INSTRUMENTS_PATH`: a file to use as is.
    pub local_path: Option<PathBuf>,
    /// `INSTRUMENTS_URL`, or `None` (`off`) for no downloads.
    pub url: Option<String>,
    /// Where downloads are cached.
    pub cache_dir: PathBuf,
    /// IST time after which yesterday's file is stale.
    pub refresh_at: NaiveTime,
    /// Paper mode: with nothing else available, use the built-in sample.
    pub allow_sample: bool,
}

/// Where the scrip master in use stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Downloaded since the last refresh time.
    Fresh,
    /// Older than today's refresh and the download failed: still used, and reported.
    Stale,
    /// None loaded: symbols cannot be resolved.
    Missing,
    /// `INSTRUMENTS_PATH`, used as is.
    File,
    /// The built-in sample (paper mode only).
    Sample,
}

/// What `/ready` and `/` say about the scrip master.
#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    pub state: SourceState,
    pub rows: usize,
    /// When the copy in use was downloaded or loaded (IST).
    pub as_of: Option<String>,
    pub source: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone)]
struct Loaded {
    instruments: Arc<Instruments>,
    as_of: DateTime<Utc>,
    kind: LoadedKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoadedKind {
    File,
    Cache,
    Sample,
}

/// The scrip master in use, swappable while orders read it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct InstrumentSource {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: SourceConfig,
    clock: Arc<dyn Clock>,
    /// Read on every alert; replaced whole after a download (readers keep their `Arc`).
    current: RwLock<Option<Loaded>>,
    last_error: Mutex<Option<String>>,
    /// One download at a time.
    downloading: tokio::sync::Mutex<()>,
}

impl InstrumentSource {
    /// Loads what is available locally, without the network.
    ///
    /// # Errors
    /// `INSTRUMENTS_PATH` names a file that cannot be loaded (a configuration mistake worth
    /// stopping for). A bad cache is only logged.
    pub async fn start(
        config: SourceConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, master::MasterError> {
        let now = clock.now();
        // Reading and parsing tens of megabytes takes from hundreds of milliseconds to seconds:
        // on a runtime thread that would stall every task scheduled there (requests, timers).
        let (config, loaded) = {
            let span = tracing::Span::current();
            tokio::task::spawn_blocking(move || {
                let _in = span.enter();
                let loaded = load_local(&config, now);
                (config, loaded)
            })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
        };
        let loaded = loaded?;
        if let Some(l) = &loaded {
            tracing::info!(rows = l.instruments.len(), source = ?l.kind, "scrip master loaded");
        }
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                clock,
                current: RwLock::new(loaded),
                last_error: Mutex::new(None),
                downloading: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The scrip master in use, if any.
    pub fn current(&self) -> Option<Arc<Instruments>> {
        self.read().as_ref().map(|l| Arc::clone(&l.instruments))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<Loaded>> {
        self.inner.current.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The last refresh instant at or before `now` (today's refresh time, or yesterday's).
    fn last_refresh_point(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = ist(now).date_naive();
        let at = |d: chrono::NaiveDate| {
            ist_offset()
                .from_local_datetime(&d.and_time(self.inner.config.refresh_at))
                .single()
                .map_or(now, |t| t.with_timezone(&Utc))
        };
        let today_point = at(today);
        if today_point <= now {
            today_point
        } else {
            at(today - chrono::Duration::days(1))
        }
    }

    /// Whether a download is due: downloads are on, no local file is configured, and the copy
    /// in use predates the last refresh time.
    pub fn needs_download(&self, now: DateTime<Utc>) -> bool {
        if self.inner.config.local_path.is_some() || self.inner.config.url.is_none() {
            return false;
        }
        match self.read().as_ref() {
            Some(l) if l.kind == LoadedKind::Cache => l.as_of < self.last_refresh_point(now),
            _ => true,
        }
    }

    /// Downloads, checks and installs a fresh scrip master.
    ///
    /// # Errors
    /// Downloads are off, or the download or the file failed; the copy in use is kept.
    pub async fn download(&self) -> Result<usize, String> {
        let _one = self.inner.downloading.lock().await;
        let url = self
            .inner
            .config
            .url
            .clone()
            .ok_or("downloads are off (INSTRUMENTS_URL=off)")?;
        let result = self.download_from(&url).await;
        *self
            .inner
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = result.as_ref().err().cloned();
        match &result {
            Ok(rows) => tracing::info!(rows, "scrip master downloaded"),
            Err(e) => {
                tracing::warn!(error = %e, "scrip master download failed; keeping the copy in use")
            }
        }
        result
    }

    async fn download_from(&self, url: &str) -> Result<usize, String> {
        // Every message names the URL (which host, which file) and the cause, so /ready, the
        // log and `dhanhook instruments update` say what to fix.
        let shown = url_for_messages(url);
        let failed = |cause: String| format!("scrip master download from {shown} failed: {cause}");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(DOWNLOAD_TIMEOUT)
            .build()
            .map_err(|e| failed(error_chain(&e.without_url())))?;
        // `without_url`: reqwest would print the URL with its query string; `shown` has none.
        let resp = client
            .get(url)
            .send()
            .await
            .map_err(|e| failed(error_chain(&e.without_url())))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(failed(format!("HTTP {status}")));
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| failed(format!("cut off: {}", error_chain(&e.without_url()))))?;
        let dir = self.inner.config.cache_dir.clone();
        let now = self.inner.clock.now();
        // Parse before installing: a truncated or HTML error page never replaces a good copy.
        let (instruments, path) =
            tokio::task::spawn_blocking(move || -> Result<(Instruments, PathBuf), String> {
                // Named by its URL: "the scrip master https://... has no SEM_SEGMENT column".
                let parsed = master::parse(bytes.as_ref(), &shown).map_err(|e| e.to_string())?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let tmp = dir.join("api-scrip-master.csv.partial");
                std::fs::write(&tmp, &bytes)
                    .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
                let path = cache_file(&dir);
                std::fs::rename(&tmp, &path)
                    .map_err(|e| format!("cannot install {}: {e}", path.display()))?;
                write_stamp(&dir, now);
                Ok((parsed, path))
            })
            .await
            .map_err(|e| e.to_string())??;
        let rows = instruments.len();
        tracing::debug!(path = %path.display(), "scrip master cached");
        *self
            .inner
            .current
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(Loaded {
            instruments: Arc::new(instruments),
            as_of: now,
            kind: LoadedKind::Cache,
        });
        Ok(rows)
    }

    /// When the scrip master in use was loaded (its download time for a cached copy) and how
    /// many rows it has; `None` while there is none.
    pub fn loaded(&self) -> Option<(DateTime<Utc>, usize)> {
        self.read().as_ref().map(|l| (l.as_of, l.instruments.len()))
    }

    pub fn status(&self) -> SourceStatus {
        let now = self.inner.clock.now();
        let last_error = self
            .inner
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let guard = self.read();
        let Some(l) = guard.as_ref() else {
            return SourceStatus {
                state: SourceState::Missing,
                rows: 0,
                as_of: None,
                source: self.inner.config.url.as_deref().map(url_for_messages),
                last_error,
            };
        };
        let state = match l.kind {
            LoadedKind::File => SourceState::File,
            LoadedKind::Sample => SourceState::Sample,
            LoadedKind::Cache if l.as_of < self.last_refresh_point(now) => SourceState::Stale,
            LoadedKind::Cache => SourceState::Fresh,
        };
        SourceStatus {
            state,
            rows: l.instruments.len(),
            as_of: Some(ist(l.as_of).format("%Y-%m-%d %H:%M:%S").to_string()),
            source: match l.kind {
                LoadedKind::File => self
                    .inner
                    .config
                    .local_path
                    .as_ref()
                    .map(|p| p.display().to_string()),
                LoadedKind::Sample => Some("built-in sample".to_owned()),
                LoadedKind::Cache => Some(
                    cache_file(&self.inner.config.cache_dir)
                        .display()
                        .to_string(),
                ),
            },
            last_error,
        }
    }

    /// Whether this source downloads at all (no `INSTRUMENTS_PATH`, a URL set): the refresh
    /// worker stops when it does not.
    pub fn downloads(&self) -> bool {
        self.inner.config.url.is_some() && self.inner.config.local_path.is_none()
    }

    /// The next daily refresh after `now`.
    pub fn next_refresh(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.last_refresh_point(now) + chrono::Duration::days(1)
    }
}

/// What [`InstrumentSource::start`] finds on disk: `INSTRUMENTS_PATH`, else the cache, else (if
/// allowed) the built-in sample. Blocking: file reads and a full parse.
fn load_local(
    config: &SourceConfig,
    now: DateTime<Utc>,
) -> Result<Option<Loaded>, master::MasterError> {
    if let Some(path) = &config.local_path {
        return Ok(Some(Loaded {
            instruments: Arc::new(master::load(path)?),
            as_of: now,
            kind: LoadedKind::File,
        }));
    }
    let cached = cache_file(&config.cache_dir);
    let from_cache = cached
        .exists()
        .then(|| master::load(&cached))
        .and_then(|r| match r {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "the cached scrip master is unusable; it will be downloaded again");
                None
            }
        });
    Ok(match from_cache {
        Some(m) => Some(Loaded {
            instruments: Arc::new(m),
            as_of: read_stamp(&config.cache_dir).unwrap_or(DateTime::UNIX_EPOCH),
            kind: LoadedKind::Cache,
        }),
        None if config.allow_sample => Some(Loaded {
            instruments: Arc::new(master::parse(master::SAMPLE.as_bytes(), "built-in sample")?),
            as_of: now,
            kind: LoadedKind::Sample,
        }),
        None => None,
    })
}

/// `url` as shown in messages and on `/ready`: without a query string, fragment or user info,
/// which may carry a credential (Dhan's URL has none, a mirror's signed URL might).
fn url_for_messages(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            // Both fail only for URLs that cannot have user info; nothing to remove then.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        // Not a URL (the settings accept any http(s):// text): cut at the first ? or #, and
        // drop anything before an @.
        Err(_) => {
            let base = url.split(['?', '#']).next().unwrap_or_default();
            match base.split_once("://") {
                Some((scheme, rest)) => {
                    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                    let host = authority.rsplit('@').next().unwrap_or_default();
                    format!("{scheme}://{host}{path}")
                }
                None => base.to_owned(),
            }
        }
    }
}

/// An error and its causes on one line (`error sending request: ...: Connection refused`):
/// reqwest's own message alone ("error sending request") does not say what went wrong.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let part = cause.to_string();
        // Some errors repeat their source's message in their own: say each thing once.
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = cause.source();
    }
    text
}

fn cache_file(dir: &Path) -> PathBuf {
    dir.join("api-scrip-master.csv")
}

/// The download time, kept beside the cache (the file's mtime is not on the service's clock).
fn write_stamp(dir: &Path, at: DateTime<Utc>) {
    let _ = std::fs::write(dir.join("downloaded_at"), at.to_rfc3339());
}

fn read_stamp(dir: &Path) -> Option<DateTime<Utc>> {
    let text = std::fs::read_to_string(dir.join("downloaded_at")).ok()?;
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::clock::SystemClock;

    /// A real-sized scrip master (Dhan's has a few hundred thousand rows): index options with
    /// made-up strikes, in the compact file's columns.
    fn write_large_master(path: &Path) {
        const ROWS: u32 = 200_000;
        let header = master::SAMPLE.lines().next().unwrap();
        let mut text = String::with_capacity(ROWS as usize * 130);
        text.push_str(header);
        text.push('\n');
        for n in 0..ROWS {
            let strike = 10_000 + n;
            let (kind, word) = if n % 2 == 0 {
                ("CE", "CALL")
            } else {
                ("PE", "PUT")
            };
            text.push_str(&format!(
                "NSE,D,{id},OPTIDX,0,NIFTY-Dec2026-{strike}-{kind},65.0,NIFTY 01 DEC {strike} {word},\
                 2026-12-01 14:30:00,{strike}.00000,{kind},5.0000,W,OP,,\n",
                id = 100_000 + n,
            ));
        }
        std::fs::write(path, text).unwrap();
    }

    /// Starts a source on a current-thread runtime beside a task ticking every millisecond, and
    /// returns how many ticks that task saw while `start` was loading. A load done on the
    /// runtime's only thread starves the ticker: zero.
    async fn ticks_while_starting(config: SourceConfig) -> (InstrumentSource, usize) {
        let ticks = Arc::new(AtomicUsize::new(0));
        let ticker = tokio::spawn({
            let ticks = Arc::clone(&ticks);
            async move {
                let mut interval = tokio::time::interval(Duration::from_millis(1));
                // The first tick is immediate: count only ticks that needed time to pass.
                interval.tick().await;
                loop {
                    interval.tick().await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let source = InstrumentSource::start(config, Arc::new(SystemClock))
            .await
            .unwrap();
        // Read before anything else can run: only ticks from during the load count.
        let during = ticks.load(Ordering::SeqCst);
        ticker.abort();
        (source, during)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn loading_a_large_cache_leaves_the_runtime_running() {
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("instruments");
        std::fs::create_dir_all(&cache_dir).unwrap();
        write_large_master(&cache_file(&cache_dir));
        write_stamp(&cache_dir, Utc::now());
        let (source, ticks) = ticks_while_starting(SourceConfig {
            local_path: None,
            url: None,
            cache_dir,
            refresh_at: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            allow_sample: false,
        })
        .await;
        assert_eq!(source.status().state, SourceState::Fresh);
        assert_eq!(source.status().rows, 200_000);
        assert!(ticks > 0, "the runtime was blocked while the cache loaded");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn loading_a_large_instruments_path_leaves_the_runtime_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.csv");
        write_large_master(&path);
        let (source, ticks) = ticks_while_starting(SourceConfig {
            local_path: Some(path),
            url: None,
            cache_dir: dir.path().join("instruments"),
            refresh_at: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            allow_sample: false,
        })
        .await;
        assert_eq!(source.status().state, SourceState::File);
        assert_eq!(source.status().rows, 200_000);
        assert!(
            ticks > 0,
            "the runtime was blocked while INSTRUMENTS_PATH loaded"
        );
    }

    #[test]
    fn urls_in_messages_carry_no_query_fragment_or_user_info() {
        assert_eq!(
            url_for_messages("https://user:pw@files.example/master.csv?sig=abc#top"),
            "https://files.example/master.csv"
        );
        assert_eq!(
            url_for_messages("https://images.dhan.co/api-data/api-scrip-master.csv"),
            "https://images.dhan.co/api-data/api-scrip-master.csv"
        );
        assert_eq!(
            url_for_messages("http://us er:pw@bad host/a@b?token=1"),
            "http://bad host/a@b"
        );
    }

    #[test]
    fn an_error_chain_names_each_cause_once() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(
            error_chain(&Outer(refused)),
            "error sending request: refused"
        );
    }
}
