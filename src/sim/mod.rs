//! `hss-sim`: a faithful simulator of the HSS image APIs the daemon uses, for tests,
//! benchmarks and the demo (DESIGN.md section 5).
//!
//! It serves both API generations: the deprecated SWR calls (list, batch scan, synchronize)
//! and the current ones that replace them (list registry images, scan and sync tasks, the
//! scan policy, pay-per-scan usage and switches), each of which can be made to vanish behind
//! the gateway's 404 so a client's fallback can be tested both ways. It verifies AK/SK
//! signatures like API Gateway, pages a deterministic synthetic account of any size (a
//! million images take about 45 MB of memory), moves submitted images through the scan
//! lifecycle, changes the account on demand (churn), enforces the documented limits, and
//! injects faults, hostile pages included. The simulator has its own types ([`kind`],
//! [`limits`]) rather than the daemon's, so the two can disagree. Tests drive it through
//! [`SimHandle`]; other processes use the same controls over HTTP under `/sim/`.
//!
//! Layout: [`names`] and [`dataset`] hold the account, [`filter`] and [`listing`] answer
//! list questions, [`churn`] moves the account, [`tasks`] and [`submission`] hold scan and
//! sync tasks, [`policy`] and [`billing`] the scan policy and pay-per-scan state, [`auth`]
//! checks signatures, [`faults`] and [`page_faults`] decide injected answers, [`routes`] is
//! the request pipeline, [`admin`] the control API, [`stats`] the counters, [`cli`] the
//! binary's flags.

mod admin;
mod auth;
mod billing;
pub mod churn;
pub mod cli;
mod clock;
pub mod config;
mod dataset;
pub mod endpoint;
pub mod error;
pub mod faults;
mod filter;
mod image_view;
mod images_api;
pub mod kind;
pub mod limits;
mod listing;
pub mod names;
mod page_faults;
mod params;
pub mod policy;
mod registries;
mod registry_images_api;
mod routes;
pub mod stats;
mod submission;
mod tasks;
mod tasks_api;

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use churn::{Churn, ChurnReport};
pub use clock::SimClock;
pub use config::{Lifecycle, SimConfig};
pub use endpoint::Endpoint;
pub use faults::{FaultKind, Faults, ScriptedFault};
pub use kind::Kind;
pub use page_faults::Identity;
pub use policy::ScanPolicy;
pub use stats::SimStats;

use auth::Credentials;
use billing::Billing;
use dataset::{Dataset, Shares, WireStyle};
use faults::FaultInjector;
use policy::PolicyState;
use registries::Registries;
use stats::StatsRecorder;
use tasks::Tasks;

/// Settings the admin API can change while the simulator runs.
pub(crate) struct Settings {
    registry_images: AtomicUsize,
    /// 0: no limit.
    max_scan_task_items: AtomicUsize,
    deprecated_removed: AtomicBool,
    current_missing: AtomicBool,
    /// How long a sync task runs: the lifecycle's scan duration.
    sync_ms: i64,
    /// The lifecycle's failure rate, for HSS's own rescans.
    failure_rate: f64,
}

impl Settings {
    pub fn max_scan_task_items(&self) -> Option<usize> {
        match self.max_scan_task_items.load(Ordering::Relaxed) {
            0 => None,
            n => Some(n),
        }
    }

    fn set_max_scan_task_items(&self, max: Option<usize>) {
        self.max_scan_task_items
            .store(max.unwrap_or(0), Ordering::Relaxed);
    }

    pub fn sync_ms(&self) -> i64 {
        self.sync_ms
    }

    pub fn registry_images(&self) -> usize {
        self.registry_images.load(Ordering::Relaxed)
    }

    pub fn deprecated_removed(&self) -> bool {
        self.deprecated_removed.load(Ordering::Relaxed)
    }

    pub fn current_missing(&self) -> bool {
        self.current_missing.load(Ordering::Relaxed)
    }
}

/// The simulator's state, shared by every request. Locks are taken in the order
/// `registries`, `policy`, `dataset`, `tasks`, `billing`, and never the other way round.
pub(crate) struct Sim {
    project_id: String,
    seed: u64,
    /// The time every change is stamped with and every filter judged by.
    clock: SimClock,
    dataset: RwLock<Dataset>,
    registries: Mutex<Registries>,
    tasks: Mutex<Tasks>,
    policy: Mutex<PolicyState>,
    billing: Mutex<Billing>,
    settings: Settings,
    credentials: Credentials,
    faults: FaultInjector,
    stats: StatsRecorder,
    request_ids: AtomicU64,
    /// Becomes true at shutdown; hung requests wait for it so shutdown never waits for them.
    shutdown: watch::Receiver<bool>,
}

impl Sim {
    fn new(config: SimConfig, shutdown: watch::Receiver<bool>) -> Self {
        let wire = WireStyle {
            numbers_as_strings: config.numbers_as_strings,
            junk_number_every: config.junk_number_every,
            unknown_status_every: config.unknown_status_every,
        };
        let clock = SimClock::new(config.manual_clock);
        let now = clock.now_ms();
        let mut dataset = Dataset::new(config.images, config.seed, &config.lifecycle, wire, now)
            .with_shares(Shares {
                multi_arch: config.multi_arch_share,
                expired_shared: config.expired_shared_share,
            });
        let mut registries = Registries::new(config.seed);
        for _ in 0..config.third_party_registries {
            let r = registries.preconnect(now);
            let kind = Kind::from_registry_type(&r.registry_type).unwrap_or(Kind::Harbor);
            dataset.add_registry(
                r.id,
                r.registry_name,
                kind,
                config.registry_images,
                true,
                now,
            );
        }
        let mut policy = PolicyState::new(config.scan_policy.clone(), config.seed);
        policy.set(config.scan_policy.clone(), now);
        Self {
            credentials: Credentials::new(&config.ak, &config.sk, config.security_token.as_deref())
                .with_max_skew(config.max_clock_skew),
            faults: FaultInjector::new(config.faults, config.seed),
            registries: Mutex::new(registries),
            dataset: RwLock::new(dataset),
            tasks: Mutex::new(Tasks::new(config.seed)),
            policy: Mutex::new(policy),
            billing: Mutex::new(Billing::new(config.pay_per_scan)),
            settings: Settings {
                registry_images: AtomicUsize::new(config.registry_images),
                max_scan_task_items: AtomicUsize::new(config.max_scan_task_items.unwrap_or(0)),
                deprecated_removed: AtomicBool::new(config.deprecated_apis_removed),
                current_missing: AtomicBool::new(config.current_apis_missing),
                sync_ms: dataset::millis(config.lifecycle.scan_duration),
                failure_rate: config.lifecycle.failure_rate,
            },
            stats: StatsRecorder::default(),
            request_ids: AtomicU64::new(0),
            project_id: config.project_id,
            seed: config.seed,
            clock,
            shutdown,
        }
    }

    /// A fresh request id: 32 hex digits, unique per simulator (the hash is a bijection).
    fn next_request_id(&self) -> String {
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
        let h = names::hash(self.seed, n, 0x7265_7169);
        format!("{h:016x}{:016x}", names::mix(h))
    }

    /// Now, by the simulator's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn add_images(&self, kind: Kind, count: usize) -> usize {
        write(&self.dataset).add(kind, count, self.now_ms())
    }

    fn delete_images(&self, kind: Kind, count: usize) -> usize {
        write(&self.dataset).delete(kind, count)
    }

    fn restore_images(&self, kind: Kind) -> usize {
        write(&self.dataset).restore(kind)
    }

    fn live_images(&self, kind: Kind) -> usize {
        read(&self.dataset).live_count(kind)
    }

    fn churn(&self, churn: &Churn) -> ChurnReport {
        let now = self.now_ms();
        let report = write(&self.dataset).churn(churn, self.settings.failure_rate, now);
        lock(&self.billing).add_completed(report.rescans_succeeded as u64);
        self.stats.update(|s| s.churns += 1);
        report
    }

    fn set_scan_policy(&self, policy: ScanPolicy) -> Result<(), error::ApiError> {
        policy.validate()?;
        lock(&self.policy).set(policy, self.now_ms());
        Ok(())
    }
}

/// Changes `per_hour` images an hour, in steps of at least one image, until shutdown.
async fn churn_ticker(sim: Arc<Sim>, per_hour: u64, mut shutdown: watch::Receiver<bool>) {
    let started = tokio::time::Instant::now();
    let mut applied: u64 = 0;
    let mut turn: usize = 0;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let owed = (u128::from(per_hour) * started.elapsed().as_millis() / 3_600_000) as u64;
        let due = owed.saturating_sub(applied);
        if due == 0 {
            continue;
        }
        // Round robin over the four kinds of change, so a slow rate still does all of them.
        let mut counts = [0usize; 4];
        for _ in 0..due {
            counts[turn % 4] += 1;
            turn += 1;
        }
        let churn = Churn {
            new: counts[0],
            repushed: counts[1],
            deleted: counts[2],
            rescanned: counts[3],
            ..Churn::default()
        };
        let sim = Arc::clone(&sim);
        let report = tokio::task::spawn_blocking(move || sim.churn(&churn)).await;
        applied += due;
        tracing::debug!(?report, "churned");
    }
}

/// Starts a simulator on `listen` (port 0 picks a free port) and serves it on a tokio task.
pub async fn spawn(config: SimConfig, listen: SocketAddr) -> anyhow::Result<SimHandle> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr().context("no local address")?;
    let images = config.images;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // Building a large account takes a moment of CPU; keep it off the async workers.
    let rx = shutdown_rx.clone();
    let churn_per_hour = config.churn_per_hour;
    let sim = Arc::new(tokio::task::spawn_blocking(move || Sim::new(config, rx)).await?);
    if churn_per_hour > 0 {
        tokio::spawn(churn_ticker(
            Arc::clone(&sim),
            churn_per_hour,
            shutdown_rx.clone(),
        ));
    }
    let app = routes::router(Arc::clone(&sim));
    let mut signal = shutdown_rx;
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = signal.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(%error, "simulator server failed");
        }
    });
    tracing::info!(%addr, images, "hss-sim listening");
    Ok(SimHandle {
        addr,
        sim,
        shutdown: shutdown_tx,
        task: Some(task),
    })
}

/// A running simulator. Dropping it stops the server too; [`SimHandle::shutdown`] also waits.
pub struct SimHandle {
    addr: SocketAddr,
    sim: Arc<Sim>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (a wildcard listen address is reached through loopback).
    pub fn base_url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    }

    pub fn project_id(&self) -> &str {
        &self.sim.project_id
    }

    pub fn stats(&self) -> SimStats {
        self.sim.stats.snapshot()
    }

    pub fn faults(&self) -> Faults {
        self.sim.faults.faults()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.sim.faults.set_faults(faults);
    }

    /// The next `fault.count` requests to `fault.endpoint` answer `fault.kind`. Replaces any
    /// unused scripted fault for the same endpoint (count 0 only cancels). An unknown endpoint
    /// name would never match, so it is logged.
    pub fn fail_next(&self, fault: ScriptedFault) {
        if let Some(name) = fault.endpoint.as_deref()
            && Endpoint::from_name(name).is_none()
        {
            tracing::warn!(
                endpoint = name,
                "scripted fault for an unknown endpoint never fires"
            );
        }
        self.sim.faults.push(fault);
    }

    /// Accepts another key pair, e.g. temporary credentials with their security token.
    pub fn add_credential(&self, ak: &str, sk: &str, token: Option<&str>) {
        self.sim.credentials.add(ak, sk, token);
    }

    /// Appends `count` never-scanned images of a type to its SWR registry or its first
    /// connected registry; returns how many were added (0 for `local_image`, unknown types
    /// and types with no registry).
    ///
    /// Image types are given by their wire name (`"private_image"`, `"harbor"`, …): anything
    /// that displays as one will do, so a `&str` works and so does a client's own enum,
    /// without the simulator knowing that enum.
    pub fn add_images(&self, image_type: impl fmt::Display, count: usize) -> usize {
        wire_kind(image_type).map_or(0, |kind| self.sim.add_images(kind, count))
    }

    /// Deletes the last `count` live images of a type; returns how many were deleted.
    pub fn delete_images(&self, image_type: impl fmt::Display, count: usize) -> usize {
        wire_kind(image_type).map_or(0, |kind| self.sim.delete_images(kind, count))
    }

    /// Brings back every deleted image of a type; returns how many came back.
    pub fn restore_images(&self, image_type: impl fmt::Display) -> usize {
        wire_kind(image_type).map_or(0, |kind| self.sim.restore_images(kind))
    }

    /// How many images of a type are listed now (without filters); 0 for unknown types.
    pub fn live_images(&self, image_type: impl fmt::Display) -> usize {
        wire_kind(image_type).map_or(0, |kind| self.sim.live_images(kind))
    }

    /// Changes the account: new pushes, re-pushes, deletions, HSS's own rescans.
    pub fn churn(&self, churn: &Churn) -> ChurnReport {
        self.sim.churn(churn)
    }

    /// Now, by the simulator's clock (epoch ms).
    pub fn now_ms(&self) -> i64 {
        self.sim.now_ms()
    }

    /// Moves the simulator's clock forward by `by`; returns the new now (epoch ms). With
    /// [`SimConfig::manual_clock`] this is the only way its time moves, so a test that also
    /// moves the daemon's manual clock by `by` keeps the two in step.
    pub fn advance_clock(&self, by: Duration) -> i64 {
        self.sim
            .clock
            .advance(i64::try_from(by.as_millis()).unwrap_or(i64::MAX))
    }

    /// Turns the `image_pay_per_scan` switch on or off.
    pub fn set_pay_per_scan(&self, enabled: bool) {
        lock(&self.sim.billing).set_switch(billing::PAY_PER_SCAN, enabled);
    }

    /// While true, the deprecated calls answer 404 `APIGW.0101`, as for an API that does not
    /// exist.
    pub fn set_deprecated_apis_removed(&self, removed: bool) {
        self.sim
            .settings
            .deprecated_removed
            .store(removed, Ordering::Relaxed);
    }

    /// While true, the current calls answer 404 `APIGW.0101` (a region without them).
    pub fn set_current_apis_missing(&self, missing: bool) {
        self.sim
            .settings
            .current_missing
            .store(missing, Ordering::Relaxed);
    }

    /// Replaces HSS's periodic scan policy; an enabled policy runs at the next request.
    pub fn set_scan_policy(&self, policy: ScanPolicy) -> Result<(), String> {
        self.sim.set_scan_policy(policy).map_err(|e| e.message)
    }

    /// Caps the `image_info` items of one create-scan-task call (`None`: no cap).
    pub fn set_max_scan_task_items(&self, max: Option<usize>) {
        self.sim.settings.set_max_scan_task_items(max);
    }

    /// Successful image scans billed so far (`repository_scan_num`).
    pub fn billed_scans(&self) -> u64 {
        lock(&self.sim.billing).successful_scans(self.sim.now_ms())
    }

    /// Stops accepting, releases hung requests, and waits (at most 5 s) for the server task.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// The kind a wire name names, from anything that displays as one.
fn wire_kind(image_type: impl fmt::Display) -> Option<Kind> {
    Kind::parse(&image_type.to_string())
}

// Lock helpers: a panic while holding a lock must not turn every later request into a panic,
// and the data behind these locks stays consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}
