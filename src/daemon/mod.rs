//! `hss-scand run`: the long-running service. It schedules the sync and scan jobs, serves
//! `/metrics`, `/healthz`, `/readyz` and `/status`, reloads its configuration on SIGHUP,
//! speaks systemd's notify protocol, and on SIGTERM or SIGINT lets the running job reach a
//! committed step before it exits 0.
//!
//! A job never runs twice at once: a tick that finds the previous run still going is
//! skipped, recorded and counted. Every run is a row of `job_runs` and a tracing span with
//! its run id, and ends with one log line of its counts.

mod http;
mod notify;
mod schedule;

use std::future::IntoFuture as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::UnboundedSender;
use tracing::Instrument as _;

use crate::app::{self, App};
use crate::config::Settings;
use crate::hss::client::ApiObserver;
use crate::hss::credentials::CredentialProvider;
use crate::jobs::{self, StopFlag};
use crate::metrics::{JobOutcome, Metrics};
use crate::status;
use crate::store::{SyncOutcome, now_ms};
use crate::submit::BatchState;

use schedule::Schedules;

/// The jobs the daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    Sync,
    Scan,
}

impl Job {
    pub fn as_str(self) -> &'static str {
        match self {
            Job::Sync => "sync",
            Job::Scan => "scan",
        }
    }

    fn index(self) -> usize {
        match self {
            Job::Sync => 0,
            Job::Scan => 1,
        }
    }
}

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
    /// Credentials to use instead of `[credentials]` (the demo's simulator keys).
    pub credentials: Option<CredentialProvider>,
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
    /// Replaced whole by a successful reload; a running job keeps the one it started with.
    app: RwLock<Arc<App>>,
    credentials_override: Option<CredentialProvider>,
    metrics: Arc<Metrics>,
    /// One per [`Job`]: held while a run goes on.
    running: [tokio::sync::Mutex<()>; 2],
    stop: StopFlag,
    /// When the scheduler last ran the heartbeat job (ms since the epoch).
    heartbeat_ms: AtomicI64,
    ready: AtomicBool,
    events: Option<UnboundedSender<JobEvent>>,
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
    settings: Settings,
    options: DaemonOptions,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new(&settings.targets));
    let credentials = match &options.credentials {
        Some(credentials) => credentials.clone(),
        None => app::credentials(&settings.credentials)?,
    };
    let store = app::open_store(&settings).await?;
    let observer: Arc<dyn ApiObserver> = metrics.clone();
    let clients = app::target_clients(&settings, &credentials, Some(observer))?;
    let listener = match options.listener {
        Some(listener) => listener,
        None => tokio::net::TcpListener::bind(settings.server.listen)
            .await
            .with_context(|| {
                format!("server.listen: cannot listen on {}", settings.server.listen)
            })?,
    };
    let address = listener
        .local_addr()
        .context("server.listen: no local address")?;
    let sync_on_start = settings.daemon.sync_on_start;
    let app = Arc::new(App {
        settings,
        store,
        clients,
    });
    let daemon = Arc::new(Daemon {
        config_path,
        app: RwLock::new(Arc::clone(&app)),
        credentials_override: options.credentials,
        metrics,
        running: [tokio::sync::Mutex::new(()), tokio::sync::Mutex::new(())],
        stop: StopFlag::default(),
        heartbeat_ms: AtomicI64::new(now_ms()),
        ready: AtomicBool::new(false),
        events: options.events,
    });
    daemon.restore_metrics(&app).await;

    let server_stop = tokio::sync::watch::channel(false);
    let mut server_stopped = server_stop.1.clone();
    let server = tokio::spawn(
        axum::serve(listener, http::router(Arc::clone(&daemon)))
            .with_graceful_shutdown(async move {
                let _ = server_stopped.wait_for(|stop| *stop).await;
            })
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
    if sync_on_start {
        tokio::spawn(Arc::clone(&daemon).run_job(Job::Sync, "startup"));
    }

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
    daemon.stop.stop();
    schedules.shutdown().await;
    if let Some(watchdog) = watchdog {
        watchdog.abort();
    }
    daemon.wait_for_running_jobs().await;
    let _ = server_stop.0.send(true);
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
    /// The configuration and clients in force now.
    pub fn app(&self) -> Arc<App> {
        Arc::clone(
            &self
                .app
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Why the scheduler looks stuck, or `None` when its heartbeat is recent.
    fn scheduler_stalled(&self) -> Option<String> {
        let age = now_ms().saturating_sub(self.heartbeat_ms.load(Ordering::SeqCst));
        let stale = i64::try_from(HEARTBEAT_STALE.as_millis()).unwrap_or(i64::MAX);
        (age > stale).then(|| format!("the scheduler loop has not ticked for {} s", age / 1000))
    }

    fn heartbeat(&self) {
        self.heartbeat_ms.store(now_ms(), Ordering::SeqCst);
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
        for job in [Job::Sync, Job::Scan] {
            if let Ok(Some(at)) = app.store.last_job_success(job.as_str()).await {
                self.metrics.set_last_job_success(job.as_str(), at);
            }
        }
        for target in &app.settings.targets {
            if let Ok(Some(at)) = app.store.last_complete_sync(&target.name).await {
                self.metrics.set_last_successful_sync(&target.name, at);
            }
        }
        self.refresh_status(app).await;
    }

    /// Inventory, due and budget gauges from the database as it is now.
    async fn refresh_status(&self, app: &App) {
        match status::gather(&app.store, &app.targets(), &app.settings.policy).await {
            Ok(report) => self.metrics.set_status(&report),
            Err(err) => tracing::warn!(error = %err, "cannot refresh the inventory metrics"),
        }
    }

    /// One run of `job`, unless the previous one is still going.
    async fn run_job(self: Arc<Self>, job: Job, trigger: &'static str) {
        let run_id = format!("{:08x}", rand::random::<u32>());
        let span = tracing::info_span!("job", job = job.as_str(), run_id = %run_id, trigger);
        self.run_job_in_span(job, trigger, run_id)
            .instrument(span)
            .await;
    }

    async fn run_job_in_span(&self, job: Job, trigger: &'static str, run_id: String) {
        if self.stop.is_stopped() {
            return;
        }
        let app = self.app();
        let Ok(_running) = self.running[job.index()].try_lock() else {
            tracing::warn!("the previous run is still going; this tick is skipped");
            self.metrics
                .record_job(job.as_str(), JobOutcome::Skipped, now_ms());
            if let Err(err) = app
                .store
                .record_skipped_run(job.as_str(), &run_id, trigger)
                .await
            {
                tracing::error!(error = %err, "cannot record the skipped run");
            }
            self.tell(
                job,
                run_id,
                JobOutcome::Skipped,
                "skipped: the previous run is still going".into(),
            );
            return;
        };
        let row = match app
            .store
            .start_job_run(job.as_str(), &run_id, trigger)
            .await
        {
            Ok(id) => Some(id),
            Err(err) => {
                tracing::error!(error = %err, "cannot record the start of the run; running it anyway");
                None
            }
        };
        let (outcome, summary) = match job {
            Job::Sync => self.sync(&app).await,
            Job::Scan => self.scan(&app).await,
        };
        if let Some(id) = row {
            let error = (outcome == JobOutcome::Failure).then_some(summary.as_str());
            if let Err(err) = app
                .store
                .finish_job_run(id, outcome.as_str(), &summary, error)
                .await
            {
                tracing::error!(error = %err, "cannot record the end of the run");
            }
        }
        self.metrics.record_job(job.as_str(), outcome, now_ms());
        match outcome {
            JobOutcome::Success => tracing::info!(outcome = outcome.as_str(), "{summary}"),
            _ => tracing::warn!(outcome = outcome.as_str(), "{summary}"),
        }
        self.refresh_status(&app).await;
        self.tell(job, run_id, outcome, summary);
    }

    fn tell(&self, job: Job, run_id: String, outcome: JobOutcome, summary: String) {
        if let Some(events) = &self.events {
            let _ = events.send(JobEvent {
                job,
                run_id,
                outcome,
                summary,
            });
        }
    }

    /// The sync job: every target, with metrics; succeeds when every listing completed.
    async fn sync(&self, app: &App) -> (JobOutcome, String) {
        let all = match jobs::sync_all(app, &self.stop).await {
            Ok(all) => all,
            Err(err) => return (JobOutcome::Failure, format!("sync failed: {err}")),
        };
        self.metrics.record_sync(&all.reports, &all.took);
        let finished = now_ms();
        for target in &app.settings.targets {
            let mut reports = all
                .reports
                .iter()
                .filter(|r| r.target == target.name)
                .peekable();
            if reports.peek().is_some() && reports.all(|r| r.outcome == SyncOutcome::Complete) {
                self.metrics
                    .set_last_successful_sync(&target.name, finished);
            }
        }
        let count = |outcome| all.reports.iter().filter(|r| r.outcome == outcome).count();
        let sum = |f: fn(&crate::store::SyncRunCounts) -> i64| -> i64 {
            all.reports.iter().map(|r| f(&r.counts)).sum()
        };
        let mut summary = format!(
            "sync finished: {} listing(s), {} complete, {} partial, {} failed; {} images seen, {} new, {} changed, {} deleted",
            all.reports.len(),
            count(SyncOutcome::Complete),
            count(SyncOutcome::Partial),
            count(SyncOutcome::Failed),
            sum(|c| c.seen),
            sum(|c| c.new),
            sum(|c| c.changed),
            sum(|c| c.deleted),
        );
        if !all.stopped_before.is_empty() {
            summary.push_str(&format!(
                "; stopped before {} target(s) for shutdown",
                all.stopped_before.len()
            ));
        }
        let ok = all.stopped_before.is_empty()
            && all
                .reports
                .iter()
                .all(|r| r.outcome == SyncOutcome::Complete);
        (
            if ok {
                JobOutcome::Success
            } else {
                JobOutcome::Failure
            },
            summary,
        )
    }

    /// The scan job: plan and submit, with metrics; succeeds when every batch was accepted.
    async fn scan(&self, app: &App) -> (JobOutcome, String) {
        let report = match jobs::scan(app, &self.stop).await {
            Ok(report) => report,
            Err(err) => return (JobOutcome::Failure, format!("scan failed: {err}")),
        };
        self.metrics.record_scan(&report);
        let mut summary = format!(
            "scan finished: {} due ({} before caps), {} submitted in {} batch(es), {} failed, {} unknown",
            report.due,
            report.due_before_caps,
            report.submitted(),
            report
                .batches
                .iter()
                .filter(|b| b.state == BatchState::Sent)
                .count(),
            report.count(BatchState::Failed),
            report.count(BatchState::Unknown),
        );
        if let Some(why) = &report.stopped {
            summary.push_str(&format!("; stopped: {why}"));
        }
        let outcome = if report.succeeded() {
            JobOutcome::Success
        } else {
            JobOutcome::Failure
        };
        (outcome, summary)
    }

    /// SIGHUP: re-read the configuration file. A valid one replaces the policy, targets,
    /// clients and schedules; an invalid one is logged with the key it is about and the
    /// running configuration stays.
    async fn reload(self: &Arc<Self>, schedules: &mut Schedules) {
        notify::reloading();
        match self.try_reload(schedules).await {
            Ok(()) => {
                self.metrics.record_reload(true);
                tracing::info!(path = %self.config_path.display(), "configuration reloaded");
            }
            Err(err) => {
                self.metrics.record_reload(false);
                tracing::error!(path = %self.config_path.display(), error = %format!("{err:#}"), "configuration reload rejected; the running configuration stays");
            }
        }
        notify::ready("running");
    }

    async fn try_reload(self: &Arc<Self>, schedules: &mut Schedules) -> anyhow::Result<()> {
        let settings = Settings::load(&self.config_path)?;
        let old = self.app();
        for (key, changed) in [
            (
                "database.url",
                settings.database.url != old.settings.database.url,
            ),
            (
                "server.listen",
                settings.server.listen != old.settings.server.listen,
            ),
        ] {
            if changed {
                tracing::warn!(key, "this key changed; it takes effect at the next restart");
            }
        }
        let credentials = match &self.credentials_override {
            Some(credentials) => credentials.clone(),
            None => app::credentials(&settings.credentials)?,
        };
        let observer: Arc<dyn ApiObserver> = self.metrics.clone();
        let clients = app::target_clients(&settings, &credentials, Some(observer))?;
        schedules.replace(self, &settings.schedule).await?;
        self.metrics.add_targets(&settings.targets);
        let app = Arc::new(App {
            settings,
            store: old.store.clone(),
            clients,
        });
        *self
            .app
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::clone(&app);
        self.refresh_status(&app).await;
        Ok(())
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
                 (a batch-scan call without its answer stays pending and the next syncs reconcile it)"
            );
        }
    }
}
