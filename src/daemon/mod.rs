//! `hss-scand run`: the long-running service. It schedules the sync and scan jobs, serves
//! `/metrics`, `/healthz`, `/readyz` and `/status`, reloads its configuration on SIGHUP,
//! speaks systemd's notify protocol, and on SIGTERM or SIGINT lets the running job reach a
//! committed step before it exits 0.
//!
//! This file holds the lifecycle (start, signals, stop); [`runner`] runs one job at a time
//! per job and records it; [`reload`] replaces the configuration; [`schedule`] holds the
//! cron side; [`http`] the endpoints; [`notify`] the systemd protocol. It is the only part of
//! the program that spawns long-lived tasks.

mod http;
mod lease;
mod listener;
mod notify;
mod reload;
mod runner;
mod schedule;

use std::future::IntoFuture as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::UnboundedSender;

use crate::domain::{Clock, Job, JobOutcome, Shutdown};
use crate::hss::transport::client::ApiObserver;
use crate::leader::{Leadership, replica_id};
use crate::metrics::Metrics;
use crate::startup::{App, Startup};
use crate::status;

use schedule::Schedules;

/// One finished (or skipped) job run, for whoever watches the daemon from inside the
/// process (the demo prints these).
#[derive(Debug, Clone)]
pub struct JobEvent {
    pub job: Job,
    pub run_id: String,
    pub outcome: JobOutcome,
    /// The run's one-line summary of counts.
    pub summary: String,
}

/// What a caller other than `hss-scand run` may set instead of the configuration.
#[derive(Debug, Default)]
pub struct DaemonOptions {
    /// A bound listener to serve on instead of `server.listen`.
    pub listener: Option<tokio::net::TcpListener>,
    /// Told of every job run.
    pub events: Option<UnboundedSender<JobEvent>>,
}

/// The scheduler's heartbeat job runs this often; `/healthz` and the systemd watchdog fail
/// when it has not run for [`HEARTBEAT_STALE`].
const HEARTBEAT: &str = "*/5 * * * * *";
const HEARTBEAT_STALE: Duration = Duration::from_secs(30);

/// The state the scheduled jobs, the HTTP handlers and the signal loop share.
pub struct Daemon {
    config_path: PathBuf,
    /// How the parts are built (with the caller's overrides), for reloads.
    startup: Startup,
    /// Replaced whole by a successful reload; a running job keeps the one it started with.
    app: RwLock<Arc<App>>,
    metrics: Arc<Metrics>,
    /// One per [`Job`]: held while a run goes on.
    running: [tokio::sync::Mutex<()>; 2],
    shutdown: Shutdown,
    clock: Clock,
    /// When the scheduler last ran the heartbeat job (ms since the epoch).
    heartbeat_ms: AtomicI64,
    ready: AtomicBool,
    events: Option<UnboundedSender<JobEvent>>,
    /// This replica's hold on the leader lease: only the holder runs jobs.
    leadership: Leadership,
    /// The lease term this replica last saw (-1: none yet), to tell a new holder.
    seen_term: AtomicI64,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

/// Runs the daemon until SIGTERM or SIGINT; `Ok` after a clean stop.
pub async fn run(
    config_path: PathBuf,
    startup: Startup,
    options: DaemonOptions,
) -> anyhow::Result<()> {
    let settings = startup.settings();
    let metrics = Arc::new(Metrics::new(&settings.targets));
    let observer: Arc<dyn ApiObserver> = metrics.clone();
    let startup = startup.with_observer(observer);
    let listen = startup.settings().server.listen;
    let app = Arc::new(startup.clone().build().await?);
    let listener = match options.listener {
        Some(listener) => listener,
        None => tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("server.listen: cannot listen on {listen}"))?,
    };
    let address = listener
        .local_addr()
        .context("server.listen: no local address")?;
    let clock = app.clock.clone();
    let daemon = Arc::new(Daemon {
        config_path,
        startup,
        app: RwLock::new(Arc::clone(&app)),
        metrics,
        running: [tokio::sync::Mutex::new(()), tokio::sync::Mutex::new(())],
        shutdown: Shutdown::new(),
        heartbeat_ms: AtomicI64::new(clock.now_ms()),
        clock,
        ready: AtomicBool::new(false),
        events: options.events,
        leadership: Leadership::new(replica_id(), &app.settings.daemon),
        seen_term: AtomicI64::new(-1),
    });
    daemon.restore_metrics(&app).await;

    let server_stop = Shutdown::new();
    let server_stopped = server_stop.clone();
    let server = tokio::spawn(
        axum::serve(
            listener::BoundedListener::new(listener),
            http::router(Arc::clone(&daemon)),
        )
        .with_graceful_shutdown(async move { server_stopped.requested().await })
        .into_future(),
    );

    let mut schedules = Schedules::start(&daemon, &app.settings.schedule, HEARTBEAT).await?;
    daemon.ready.store(true, Ordering::SeqCst);
    notify::ready("running");
    tracing::info!(
        %address,
        sync = %app.settings.schedule.sync,
        scan = %app.settings.schedule.scan,
        "hss-scand is running: /metrics, /healthz, /readyz and /status are served"
    );
    let watchdog = notify::watchdog_interval().map(|every| {
        let daemon = Arc::clone(&daemon);
        tokio::spawn(async move { daemon.feed_watchdog(every).await })
    });
    // The first look at the lease: a replica alone takes it now, and (with
    // daemon.sync_on_start) syncs at once; the start-up sync reads what each project says
    // about itself first. A replica standing by only surveys.
    daemon.refresh_lease(true).await;
    if !(app.settings.daemon.sync_on_start && daemon.is_leader()) {
        let daemon = Arc::clone(&daemon);
        tokio::spawn(async move { daemon.survey().await });
    }
    let lease_keeper = tokio::spawn(Arc::clone(&daemon).keep_lease());

    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    let signal_name = loop {
        tokio::select! {
            _ = terminate.recv() => break "SIGTERM",
            _ = interrupt.recv() => break "SIGINT",
            _ = hangup.recv() => daemon.reload(&mut schedules).await,
        }
    };

    notify::stopping();
    tracing::info!(signal = signal_name, grace = ?daemon.app().settings.daemon.shutdown_grace, "stopping: no new runs; waiting for the running job to reach a committed step");
    daemon.ready.store(false, Ordering::SeqCst);
    daemon.shutdown.request();
    schedules.shutdown().await;
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    daemon.wait_for_running_jobs().await;
    let _ = lease_keeper.await;
    // Given up rather than left to expire: a standby replica takes over at once.
    daemon.leadership.release(&daemon.app().store).await;
    server_stop.request();
    match tokio::time::timeout(Duration::from_secs(5), server).await {
        Ok(Ok(Err(err))) => tracing::warn!(error = %err, "the HTTP server stopped with an error"),
        Err(_) => tracing::warn!("the HTTP server did not stop within 5 s"),
        _ => {}
    }
    daemon.app().store.close().await;
    tracing::info!("stopped");
    Ok(())
}

impl Daemon {
    /// The configuration and HSS ports in force now.
    pub fn app(&self) -> Arc<App> {
        Arc::clone(
            &self
                .app
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    /// The lock a run of `job` holds.
    fn running(&self, job: Job) -> &tokio::sync::Mutex<()> {
        match job {
            Job::Sync => &self.running[0],
            Job::Scan => &self.running[1],
        }
    }

    /// Whether this replica holds the leader lease now.
    fn is_leader(&self) -> bool {
        self.leadership.fence(self.clock.now_ms()).is_some()
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Why the scheduler looks stuck, or `None` when its heartbeat is recent.
    fn scheduler_stalled(&self) -> Option<String> {
        let age = self
            .clock
            .now_ms()
            .saturating_sub(self.heartbeat_ms.load(Ordering::SeqCst));
        let stale = i64::try_from(HEARTBEAT_STALE.as_millis()).unwrap_or(i64::MAX);
        (age > stale).then(|| format!("the scheduler loop has not ticked for {} s", age / 1000))
    }

    fn heartbeat(&self) {
        self.heartbeat_ms
            .store(self.clock.now_ms(), Ordering::SeqCst);
    }

    /// WATCHDOG=1 every `every`, as long as the scheduler ticks: a stuck scheduler gets the
    /// process restarted by systemd.
    async fn feed_watchdog(&self, every: Duration) {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            match self.scheduler_stalled() {
                None => notify::watchdog(),
                Some(why) => tracing::error!(why, "not feeding the systemd watchdog"),
            }
        }
    }

    /// Metrics that must survive a restart come from the database: when each job last
    /// succeeded and each target last synced completely; the gauges from a fresh status.
    async fn restore_metrics(&self, app: &App) {
        for job in Job::ALL {
            if let Ok(Some(at)) = app.store.last_job_success(job).await {
                self.metrics.set_last_job_success(job, at);
            }
        }
        for target in &app.settings.targets {
            if let Ok(Some(at)) = app.store.last_complete_sync(&target.name).await {
                self.metrics.set_last_successful_sync(&target.name, at);
            }
        }
        if let Ok(facts) = app.store.target_facts().await {
            for facts in facts
                .iter()
                .filter(|f| app.settings.targets.iter().any(|t| t.name == f.target))
            {
                self.metrics.set_target_facts(facts);
            }
        }
        self.refresh_status(app).await;
    }

    /// Reads what each target's project says about itself, outside a sync (at start-up).
    async fn survey(&self) {
        let app = self.app();
        match app.pipeline().survey_all().await {
            Ok(surveys) => {
                for survey in surveys {
                    self.metrics.set_target_facts(&survey.facts);
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot record what the HSS projects say"),
        }
    }

    /// The status report as the database stands now.
    async fn status(&self, app: &App) -> Result<status::StatusReport, crate::store::StoreError> {
        status::gather(
            &app.store,
            &app.targets(),
            &app.settings.policy,
            self.clock.now_ms(),
        )
        .await
    }

    /// Inventory, due and budget gauges from the database as it is now.
    async fn refresh_status(&self, app: &App) {
        match self.status(app).await {
            Ok(report) => self.metrics.set_status(&report),
            Err(err) => tracing::warn!(error = %err, "cannot refresh the inventory metrics"),
        }
    }

    /// Waits up to `daemon.shutdown_grace` for the running jobs to stop at a committed step.
    async fn wait_for_running_jobs(&self) {
        let grace = self.app().settings.daemon.shutdown_grace;
        let all_idle = async {
            for running in &self.running {
                let _ = running.lock().await;
            }
        };
        if tokio::time::timeout(grace, all_idle).await.is_err() {
            tracing::warn!(
                ?grace,
                "daemon.shutdown_grace ran out with a job still running; exiting anyway \
                 (a scan call without its answer stays pending and the next syncs reconcile it)"
            );
        }
    }
}
