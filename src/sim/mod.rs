//! `hss-sim`: a faithful simulator of the HSS image APIs the daemon uses, for tests,
//! benchmarks and the demo (DESIGN.md section 5).
//!
//! It verifies AK/SK signatures like API Gateway, pages a deterministic synthetic account of
//! any size (a million images take about 40 MB of memory), moves submitted images through the scan
//! lifecycle, enforces the documented limits, and injects faults on demand. Tests drive it
//! through [`SimHandle`]; other processes use the same controls over HTTP under `/sim/`.
//!
//! Layout: [`names`] and [`dataset`] hold the account, [`auth`] checks signatures,
//! [`faults`] decides injected answers, [`routes`] is the request pipeline, [`admin`] the
//! control API, [`stats`] the counters, [`cli`] the binary's flags.

mod admin;
mod auth;
pub mod cli;
pub mod config;
mod dataset;
pub mod endpoint;
pub mod error;
pub mod faults;
mod image_view;
mod images_api;
pub mod names;
mod params;
mod registries;
mod routes;
pub mod stats;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::domain::ImageType;

pub use config::{Lifecycle, SimConfig};
pub use endpoint::Endpoint;
pub use faults::{FaultKind, Faults, ScriptedFault};
pub use stats::SimStats;

use auth::Credentials;
use dataset::{Dataset, WireStyle, kind_of};
use faults::FaultInjector;
use registries::Registries;
use stats::StatsRecorder;

/// The simulator's state, shared by every request.
pub(crate) struct Sim {
    project_id: String,
    seed: u64,
    dataset: RwLock<Dataset>,
    registries: Mutex<Registries>,
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
        let dataset = Dataset::new(
            config.images,
            config.seed,
            &config.lifecycle,
            wire,
            now_ms(),
        );
        Self {
            credentials: Credentials::new(&config.ak, &config.sk, config.security_token.as_deref()),
            faults: FaultInjector::new(config.faults, config.seed),
            registries: Mutex::new(Registries::new(config.seed)),
            dataset: RwLock::new(dataset),
            stats: StatsRecorder::default(),
            request_ids: AtomicU64::new(0),
            project_id: config.project_id,
            seed: config.seed,
            shutdown,
        }
    }

    /// A fresh request id: 32 hex digits, unique per simulator (the hash is a bijection).
    fn next_request_id(&self) -> String {
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
        let h = names::hash(self.seed, n, 0x7265_7169);
        format!("{h:016x}{:016x}", names::mix(h))
    }

    fn add_images(&self, image_type: &ImageType, count: usize) -> usize {
        kind_of(image_type).map_or(0, |kind| write(&self.dataset).add(kind, count, now_ms()))
    }

    fn delete_images(&self, image_type: &ImageType, count: usize) -> usize {
        kind_of(image_type).map_or(0, |kind| write(&self.dataset).delete(kind, count))
    }

    fn restore_images(&self, image_type: &ImageType) -> usize {
        kind_of(image_type).map_or(0, |kind| write(&self.dataset).restore(kind))
    }

    fn live_images(&self, image_type: &ImageType) -> usize {
        kind_of(image_type).map_or(0, |kind| read(&self.dataset).live_count(kind))
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
    let sim = Arc::new(tokio::task::spawn_blocking(move || Sim::new(config, rx)).await?);
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

    /// Appends `count` never-scanned images of a type; returns how many were added
    /// (0 for `local_image` and unknown types).
    pub fn add_images(&self, image_type: ImageType, count: usize) -> usize {
        self.sim.add_images(&image_type, count)
    }

    /// Deletes the last `count` live images of a type; returns how many were deleted.
    pub fn delete_images(&self, image_type: ImageType, count: usize) -> usize {
        self.sim.delete_images(&image_type, count)
    }

    /// Brings back every deleted image of a type; returns how many came back.
    pub fn restore_images(&self, image_type: ImageType) -> usize {
        self.sim.restore_images(&image_type)
    }

    /// How many images of a type are listed now (without filters).
    pub fn live_images(&self, image_type: ImageType) -> usize {
        self.sim.live_images(&image_type)
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

/// The server clock in epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
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
