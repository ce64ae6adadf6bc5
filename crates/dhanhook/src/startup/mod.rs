//! Building and running the application: used by `dhanhook serve` and by the tests, which bind
//! port 0 and pass their own clock and shutdown signal.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::{Context, bail};
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

mod public;

use public::{announce, public_config};

use crate::{
    broker::{Broker, live::DhanBroker, paper::PaperBroker},
    clock::Clock,
    config::{DatabaseUrl, Mode, OrderFeedSetting, Settings},
    csvlog::CsvLog,
    dhan::DhanClient,
    http::{
        AppParts, AppState, router,
        server::{Connections, FD_HEADROOM, raise_fd_limit},
    },
    instruments::source::{InstrumentSource, SourceConfig},
    market::Calendar,
    metrics::Metrics,
    notify::{Channels, Notifier},
    pipeline::{
        AdmissionRules, Admitter, Controls, KillSwitchControl, LegPlacer, Pipeline, PositionDesk,
    },
    secrets,
    store::{Journal, sqlite::SqliteJournal},
    token::{Credentials, TokenKeeper},
    totp::Totp,
    workers::{
        Workers,
        daily_summary::DailySummary,
        leg_progress::LegProgress,
        notifier::NotifierWorker,
        order_feed::{FeedJournal, OrderFeed},
        order_tracker::{OrderTracker, TrackRules, TrackerJournal},
        queue::{QueueRules, QueueRunner},
        reconciler::{ReconcileRules, Reconciler, ReconcilerJournal},
        scrip_master::ScripMasterRefresher,
        token_refresh::TokenRefresher,
    },
};

/// A built application: journal open and migrated, listener bound, not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    journal: Arc<dyn Journal>,
    /// The CSV order log, flushed at shutdown (its rows are written off the request path).
    csv: CsvLog,
    tasks: TaskTracker,
    /// The background workers, started when the application runs.
    workers: Workers,
    /// Stops background work (the workers) at shutdown.
    stop: CancellationToken,
    /// `SHUTDOWN_TIMEOUT`: the longest shutdown may take after the signal.
    shutdown_timeout: std::time::Duration,
    /// `MAX_CONNECTIONS`: connections served at once.
    max_connections: usize,
}

/// Where the webhook secret came from (shown on `/` and at start-up, never the value).
#[derive(Debug, Clone)]
enum SecretSource {
    Env,
    File { path: String, generated: bool },
}

/// Opens the journal named by the settings and applies its migrations.
///
/// # Errors
/// The database cannot be opened or migrated, or its kind is not supported yet.
pub async fn open_journal(settings: &Settings) -> anyhow::Result<Arc<dyn Journal>> {
    let journal: Arc<dyn Journal> = match &settings.database_url {
        DatabaseUrl::Sqlite(url) => Arc::new(
            SqliteJournal::open(url)
                .await
                .with_context(|| format!("opening the journal {url}"))?,
        ),
        // The URL carries a password: the context names the database only as `describe()`
        // does (redacted), and the driver's errors never include the URL.
        DatabaseUrl::Postgres(url) => Arc::new(
            crate::store::postgres::PgJournal::open(url)
                .await
                .with_context(|| {
                    format!(
                        "opening the PostgreSQL journal {}",
                        settings.database_url.describe()
                    )
                })?,
        ),
    };
    journal.migrate().await.context("migrating the journal")?;
    Ok(journal)
}

impl Application {
    /// Builds everything and binds the listener (port 0 picks a free port; see [`Self::port`]).
    ///
    /// # Errors
    /// A setting that cannot work (live mode is not available yet), the journal, the CSV log,
    /// the webhook secret file or the listener.
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        if settings.mode == Mode::Live {
            check_live_settings(&settings)?;
        }
        let fd_limit = raise_fd_limit();
        let journal = open_journal(&settings).await?;

        let (webhook_secret, source) = match &settings.webhook_secret {
            Some(s) => (s.clone(), SecretSource::Env),
            None => {
                let path = settings.generated_secret_path();
                let (secret, generated) = secrets::load_or_generate(&path)
                    .with_context(|| format!("webhook secret file {}", path.display()))?;
                (
                    secret,
                    SecretSource::File {
                        path: path.display().to_string(),
                        generated,
                    },
                )
            }
        };
        if matches!(source, SecretSource::Env) && secret_is_short(&webhook_secret) {
            tracing::warn!(
                "WEBHOOK_SECRET is shorter than 32 characters; anyone who guesses it can place orders. \
                 Use a long random value (e.g. `openssl rand -hex 32`)"
            );
        }
        // Live mode refuses a short admin token (check_live_settings); paper mode warns.
        if settings.admin_token.as_ref().is_some_and(secret_is_short) {
            tracing::warn!(
                "ADMIN_TOKEN is shorter than 32 characters; it guards the journal and the token \
                 endpoints. Use a long random value (e.g. `openssl rand -hex 32`)"
            );
        }

        let csv = CsvLog::open(&settings.csv_log_path).with_context(|| {
            format!(
                "opening the CSV order log {}",
                settings.csv_log_path.display()
            )
        })?;
        let instruments = InstrumentSource::start(
            scrip_master_source(&settings, settings.mode == Mode::Paper),
            Arc::clone(&clock),
        )
        .await
        .context("INSTRUMENTS_PATH")?;
        let calendar = market_calendar(&settings)?;
        let (broker, keeper): (Arc<dyn Broker>, Option<TokenKeeper>) = match settings.mode {
            Mode::Paper => (Arc::new(PaperBroker::default()), None),
            Mode::Live => {
                let keeper = token_keeper(
                    &settings,
                    Arc::clone(&journal),
                    Arc::clone(&clock),
                    Arc::clone(&calendar),
                )
                .await?;
                let limiter = Arc::new(crate::ratelimit::RateLimiter::new(
                    settings.routing.order_rate_limits.clone(),
                ));
                (
                    Arc::new(DhanBroker::new(keeper.clone(), limiter)),
                    Some(keeper),
                )
            }
        };
        let (notifier, notifier_worker) = notifications(&settings, &journal, &clock)?;
        // One registry per application (tests run many in one process).
        let metrics = Metrics::new(settings.mode.as_str());
        if let Some(keeper) = &keeper {
            keeper.notify_with(notifier.clone());
            keeper.client().report_to(Arc::clone(&metrics));
        }
        let summary_notifier = notifier.clone();
        // The start-up reconciliation opens the gate for new orders (see LegPlacer).
        let (reconciled_tx, reconciled_rx) = tokio::sync::watch::channel(false);
        // Every source of order updates records them through this one step.
        let progress = LegProgress::new(
            journal.clone(),
            csv.clone(),
            notifier.clone(),
            Arc::clone(&clock),
        );
        let order_feed = order_feed(&settings, keeper.as_ref(), &journal, &progress, &clock);
        let tracker = OrderTracker::new(
            TrackerJournal::of(&journal),
            Arc::clone(&broker),
            Arc::clone(&calendar),
            Arc::clone(&clock),
            TRACK_RULES,
            progress,
        );
        // Postbacks are hints for the tracker (live mode, with DHAN_POSTBACK_SECRET).
        let postback = match (settings.mode, &settings.dhan.postback_secret) {
            (Mode::Live, Some(secret)) => Some((secret.clone(), tracker.postback_hints())),
            _ => None,
        };
        let placer = LegPlacer::new(
            journal.clone(),
            Arc::clone(&broker),
            csv.clone(),
            Arc::clone(&clock),
            settings.routing.amo_time,
            reconciled_rx,
            notifier.clone(),
        )
        .with_controls(Controls::new(
            journal.clone(),
            settings.controls.clone(),
            Arc::clone(&clock),
        ));
        let kill_switch = KillSwitchControl::new(
            journal.clone(),
            Some(Arc::clone(&broker)),
            notifier,
            Arc::clone(&clock),
            settings.controls.kill_switch_mode,
        );
        let queue_wake = Arc::new(tokio::sync::Notify::new());
        let pipeline = Pipeline::new(
            Admitter {
                journal: journal.clone(),
                clock: Arc::clone(&clock),
                mode: settings.mode,
                dedup_window: settings.dedup_window,
                instruments: instruments.clone(),
                quantity_unit: settings.instruments.quantity_unit,
                eq_product_cnc: settings.instruments.eq_product_cnc,
                calendar: Arc::clone(&calendar),
                rules: AdmissionRules {
                    when_closed: settings.routing.when_closed,
                    amo_time: settings.routing.amo_time,
                    amo_window: settings.routing.amo_window,
                    max_alert_age: settings.routing.max_alert_age,
                    on_leg_reject: settings.controls.on_leg_reject,
                },
                queue_wake: Arc::clone(&queue_wake),
                positions: Arc::new(PositionDesk::new(
                    journal.clone(),
                    Arc::clone(&broker),
                    Arc::clone(&clock),
                    Arc::clone(&calendar),
                    settings.mode,
                    settings.instruments.quantity_unit,
                    settings.routing.allow_short,
                )),
                metrics: Some(Arc::clone(&metrics)),
            },
            placer.clone(),
        );
        let queue = QueueRunner::new(
            journal.clone(),
            journal.clone(),
            placer.clone(),
            Arc::clone(&clock),
            Arc::clone(&calendar),
            QueueRules {
                max_age: settings.routing.queue_max_age,
                amo_window: settings.routing.amo_window,
                amo_time: settings.routing.amo_time,
            },
            queue_wake,
        );
        let workers = Workers {
            queue: queue.clone(),
            reconciler: Reconciler::new(
                ReconcilerJournal::of(&journal),
                Arc::clone(&broker),
                placer,
                Arc::clone(&clock),
                ReconcileRules {
                    max_age: settings.routing.queue_max_age,
                    resend_unknown: settings.routing.resend_unknown,
                    unknown_settle: settings.routing.unknown_settle,
                },
                reconciled_tx,
            ),
            order_tracker: tracker,
            order_feed,
            scrip_master: ScripMasterRefresher::new(instruments.clone(), Arc::clone(&clock)),
            token: keeper.clone().map(TokenRefresher::new),
            daily_summary: notifier_worker.is_some().then(|| {
                DailySummary::new(
                    journal.clone(),
                    journal.clone(),
                    summary_notifier.clone(),
                    Arc::clone(&clock),
                    Arc::clone(&calendar),
                )
            }),
            notifier: notifier_worker,
            square_off: settings.routing.square_off_at.map(|at| {
                crate::workers::square_off::SquareOff::new(
                    journal.clone(),
                    pipeline.clone(),
                    Arc::clone(&clock),
                    Arc::clone(&calendar),
                    settings.mode,
                    at,
                )
            }),
        };

        let listener = TcpListener::bind((settings.host, settings.port))
            .await
            .with_context(|| format!("binding {}:{}", settings.host, settings.port))?;
        let addr = listener.local_addr().context("reading the bound address")?;

        let public_config = public_config(&settings, &source, broker.name(), addr.port());
        let tasks = TaskTracker::new();
        let state = AppState::new(AppParts {
            pipeline,
            queue,
            calendar,
            routing: settings.routing.clone(),
            journal: Arc::clone(&journal),
            clock,
            mode: settings.mode,
            webhook_secret,
            admin_token: settings.admin_token.clone(),
            public_config,
            tasks: tasks.clone(),
            keeper,
            instruments,
            allowed_ips: settings.allowed_ips.clone(),
            trusted_proxies: settings.trusted_proxies.clone(),
            postback,
            kill_switch,
            metrics,
            metrics_token: settings.metrics_token.clone(),
            metrics_allowed_ips: settings.metrics_allowed_ips.clone(),
        });
        announce(&settings, &source, addr);
        Ok(Self {
            listener,
            addr,
            state,
            journal,
            csv,
            tasks,
            workers,
            stop: CancellationToken::new(),
            shutdown_timeout: settings.shutdown_timeout,
            // Never more connections than descriptors, with room for the journal, the calls to
            // Dhan and files.
            max_connections: match fd_limit {
                Some(limit) => settings
                    .max_connections
                    .min(usize::try_from(limit.saturating_sub(FD_HEADROOM)).unwrap_or(usize::MAX))
                    .max(16),
                None => settings.max_connections,
            },
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight requests and
    /// alert tasks finish, and closes the journal — all within `SHUTDOWN_TIMEOUT` of the
    /// signal, whatever is still going on (a token cooldown, a slow broker, idle or half-sent
    /// connections): platforms kill a process that outstays its grace period (Cloud Run after
    /// 10 s), and a kill mid-write is worse than an orderly stop. A placement cut short is left
    /// SUBMITTING in the journal, where the start-up reconciliation looks it up.
    ///
    /// # Errors
    /// The server failed.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let app = router(self.state);
        self.workers.start(&self.tasks, &self.stop);
        // Background work (token keeper, queue, reconciler, scrip master) stops at the signal,
        // not after the connections have drained.
        let stop = self.stop.clone();
        let (signalled_tx, signalled) = tokio::sync::watch::channel(None);
        let signal = async move {
            shutdown.await;
            signalled_tx.send_replace(Some(tokio::time::Instant::now()));
            stop.cancel();
        };
        let grace = self.shutdown_timeout;
        // Each phase ends by its share of SHUTDOWN_TIMEOUT after the signal (at once if that has
        // passed), so a connection that never closes cannot leave the journal no time to close:
        // connections by 3/4 of it, alert tasks (which run apart from their connections) by
        // 7/8, the journal by the whole of it.
        let deadline = |share: f64| {
            let grace = grace.mul_f64(share);
            let mut signalled = signalled.clone();
            async move {
                // The guard is dropped at once: it must not live across the sleep.
                let at = signalled
                    .wait_for(Option::is_some)
                    .await
                    .map(|at| at.unwrap_or_else(tokio::time::Instant::now));
                match at {
                    Ok(at) => tokio::time::sleep_until(at + grace).await,
                    Err(_) => std::future::pending().await,
                }
            }
        };
        let connections = Connections::new(self.max_connections);
        tokio::select! {
            // Dropping the accept loop drops the listener: nothing new is accepted.
            () = signal => {}
            () = connections.accept_loop(self.listener, app) => {}
        }
        // Idle connections close at once; a request in progress is answered first.
        connections.graceful.cancel();
        connections.tracker.close();
        tokio::select! {
            () = connections.tracker.wait() => {}
            () = deadline(0.75) => {
                tracing::warn!(
                    "connections still open near the end of SHUTDOWN_TIMEOUT ({} s); closing them",
                    grace.as_secs()
                );
                connections.kill.cancel();
            }
        }
        tracing::info!("stopped accepting requests; finishing in-flight alerts");
        self.stop.cancel();
        self.tasks.close();
        tokio::select! {
            () = self.tasks.wait() => {}
            () = deadline(0.875) => tracing::warn!(
                "alert processing still running at the end of SHUTDOWN_TIMEOUT; legs left SUBMITTING are looked up at the next start"
            ),
        }
        // Every alert task and worker has stopped: no more CSV rows. The ones still queued are
        // written and synced while the journal closes.
        tokio::select! {
            ((), ()) = async { tokio::join!(self.journal.close(), self.csv.flush()) } => {
                tracing::info!("journal closed; bye");
            }
            () = deadline(1.0) => tracing::warn!(
                "the journal or the CSV log did not close within SHUTDOWN_TIMEOUT; exiting"
            ),
        }
        Ok(())
    }
}

/// Live mode refuses to start without what it needs, with one line saying what is missing.
pub(crate) fn check_live_settings(settings: &Settings) -> anyhow::Result<()> {
    let dhan = &settings.dhan;
    if dhan.client_id.is_none() {
        bail!("DHAN_CLIENT_ID: live mode needs your Dhan client id (web.dhan.co > My Profile)");
    }
    if !dhan.has_token_route() {
        bail!(
            "live mode needs a way to get a Dhan access token: DHAN_PIN + DHAN_TOTP_SECRET (recommended: \
             renews itself), or DHAN_ACCESS_TOKEN, or DHAN_API_KEY + DHAN_API_SECRET (consent flow)"
        );
    }
    if settings
        .webhook_secret
        .as_ref()
        .is_some_and(secret_is_short)
    {
        bail!(
            "WEBHOOK_SECRET: live mode refuses a secret shorter than 32 characters; use a long random value \
             (e.g. openssl rand -hex 32), or unset it to have one generated"
        );
    }
    if matches!(settings.database_url, DatabaseUrl::Postgres(_)) && dhan.token_key.is_none() {
        bail!(
            "TOKEN_KEY: with a PostgreSQL journal live mode needs TOKEN_KEY (32 random bytes in base64, \
             e.g. openssl rand -base64 32), the same for every instance: the stored Dhan token is \
             encrypted with it"
        );
    }
    if settings.admin_token.as_ref().is_some_and(secret_is_short) {
        bail!(
            "ADMIN_TOKEN: live mode refuses an admin token shorter than 32 characters (it guards /logs, \
             /refresh-token and the consent flow); use a long random value (e.g. openssl rand -hex 32), \
             or unset it to turn the admin endpoints off"
        );
    }
    if settings.instruments.path.is_none() && settings.instruments.url.is_none() {
        bail!(
            "INSTRUMENTS_URL=off needs INSTRUMENTS_PATH in live mode: security ids come from Dhan's scrip \
             master (https://images.dhan.co/api-data/api-scrip-master.csv)"
        );
    }
    // Without a PIN the token keeper's start-up line says all of this and what to add.
    if dhan.pin.is_some() {
        for var in &dhan.unused_login_vars {
            tracing::warn!(
                "{var} is set but no Dhan API uses it: token minting needs DHAN_PIN and DHAN_TOTP_SECRET"
            );
        }
    }
    Ok(())
}

/// The token keeper for the configured Dhan account, with its starting token loaded (no mint).
///
/// # Errors
/// No client id, or the journal cannot be read.
pub async fn token_keeper(
    settings: &Settings,
    journal: Arc<dyn Journal>,
    clock: Arc<dyn Clock>,
    calendar: Arc<Calendar>,
) -> anyhow::Result<TokenKeeper> {
    let dhan = &settings.dhan;
    let client_id = dhan
        .client_id
        .clone()
        .context("DHAN_CLIENT_ID is not set")?;
    let client = DhanClient::new(dhan.urls.clone(), client_id)?;
    let totp = match &dhan.totp_secret {
        Some(s) => Some(Totp::from_base32(secrecy::ExposeSecret::expose_secret(s))?),
        None => None,
    };
    let vault = match &dhan.token_key {
        Some(key) => {
            crate::vault::TokenVault::from_base64(secrecy::ExposeSecret::expose_secret(key))
                .context("TOKEN_KEY")?
        }
        None => {
            let path = settings.data_dir.join("token_key");
            let (vault, generated) = crate::vault::TokenVault::load_or_generate(&path)
                .with_context(|| format!("the token key file {}", path.display()))?;
            if generated {
                tracing::info!(
                    "generated a key for the stored Dhan token in {} (set TOKEN_KEY to use your own)",
                    path.display()
                );
            }
            vault
        }
    };
    let creds = Credentials {
        vault: Some(vault),
        pin: dhan.pin.clone(),
        totp,
        access_token: dhan.access_token.clone(),
        api_key: dhan.api_key.clone(),
        api_secret: dhan.api_secret.clone(),
    };
    // The pre-market check needs the trading days (HOLIDAYS_PATH's overrides too).
    let keeper = TokenKeeper::new(client, creds, dhan.token.clone(), journal, clock, calendar);
    keeper.load().await.context("reading the stored token")?;
    Ok(keeper)
}

fn secret_is_short(secret: &SecretString) -> bool {
    use secrecy::ExposeSecret;
    secret.expose_secret().len() < 32
}

/// Where the scrip master comes from, by the settings: the cache lives in
/// `DATA_DIR/instruments`; `allow_sample` (paper mode) falls back to the built-in sample.
pub fn scrip_master_source(settings: &Settings, allow_sample: bool) -> SourceConfig {
    SourceConfig {
        local_path: settings.instruments.path.clone(),
        url: settings.instruments.url.clone(),
        cache_dir: settings.data_dir.join("instruments"),
        refresh_at: settings.instruments.refresh_at,
        allow_sample,
    }
}

/// The order-update feed, in live mode when `DHAN_ORDER_FEED_URL` (or its default) gives one.
fn order_feed(
    settings: &Settings,
    keeper: Option<&TokenKeeper>,
    journal: &Arc<dyn Journal>,
    progress: &LegProgress,
    clock: &Arc<dyn Clock>,
) -> Option<OrderFeed> {
    let keeper = keeper?;
    match &settings.dhan.order_feed {
        OrderFeedSetting::On(url) => Some(OrderFeed::new(
            url.clone(),
            keeper.clone(),
            FeedJournal::of(journal),
            progress.clone(),
            Arc::clone(clock),
        )),
        OrderFeedSetting::Off(why) => {
            tracing::info!("order feed: off ({why}); orders are followed by polling");
            None
        }
    }
}

/// How legs open at the broker are polled: first look 2 s after a leg moves (Dhan's TRANSIT
/// usually resolves within a second or two), then doubling up to a minute; the order book in
/// one call when more than five are due; looked at until 30 min after their day's close.
const TRACK_RULES: TrackRules = TrackRules {
    first_look: std::time::Duration::from_secs(2),
    max_interval: std::time::Duration::from_secs(60),
    book_above: 5,
    after_close: std::time::Duration::from_secs(30 * 60),
};

/// The market calendar: the built-in holidays, or `HOLIDAYS_PATH`'s.
///
/// # Errors
/// `HOLIDAYS_PATH` cannot be read.
pub fn market_calendar(settings: &Settings) -> anyhow::Result<Arc<Calendar>> {
    Ok(Arc::new(match &settings.routing.holidays_path {
        Some(dir) => Calendar::with_overrides(dir).context("HOLIDAYS_PATH")?,
        None => Calendar::builtin(),
    }))
}

/// The notifier (what puts events in the outbox) and, when a channel is configured, the
/// worker that delivers them.
///
/// # Errors
/// The HTTP client for the channels cannot be built.
pub fn notifications(
    settings: &Settings,
    journal: &Arc<dyn Journal>,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<(Notifier, Option<NotifierWorker>)> {
    let n = &settings.notify;
    if n.telegram_bot_token.is_some() != n.telegram_chat_id.is_some() {
        tracing::warn!(
            "Telegram is off: set both TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID to receive messages"
        );
    }
    // No channel, no HTTP client to build and no worker to run.
    if n.telegram().is_none() && n.webhook_url.is_none() {
        return Ok((Notifier::off(Arc::clone(clock)), None));
    }
    let channels = Channels::new(
        n.telegram(),
        n.telegram_api_url.clone(),
        n.webhook_url.clone(),
    )
    .context("building the notification client")?;
    let configured = channels.configured();
    let wake = Arc::new(tokio::sync::Notify::new());
    let notifier = Notifier::new(
        journal.clone(),
        configured,
        n.events.clone(),
        settings.mode,
        Arc::clone(clock),
        Arc::clone(&wake),
    );
    let worker = NotifierWorker::new(journal.clone(), channels, Arc::clone(clock), wake);
    Ok((notifier, Some(worker)))
}
