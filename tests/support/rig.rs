//! `spawn_app`: a simulated HSS account on port 0, a fresh database in a temporary
//! directory, the configuration that joins them, and the app built from it on a clock the
//! test moves — zero2prod's `spawn_app`, for hss-scand. The same rig runs the real binary
//! against the same simulator and database.

use std::path::PathBuf;
use std::time::Duration;

use hss_scand::domain::{Clock, Shutdown};
use hss_scand::hss::transport::credentials::{CredentialProvider, Credentials};
use hss_scand::pipeline::report::{ScanReport, SyncReport};
use hss_scand::policy::Plan;
use hss_scand::sim::{SimConfig, SimHandle};
use hss_scand::startup::{App, Startup};
use hss_scand::store::{Fence, LeaseAttempt};

use super::cli::{Outcome, run_hss_scand};
use super::config::ConfigText;
use super::sim::spawn_sim;

/// Everything one test runs against.
pub struct TestApp {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
    pub config: ConfigText,
    /// The app's clock: starts at the real time and moves only when the test says.
    pub clock: Clock,
    pub app: App,
}

/// A simulator with `sim`, and an app with one target, `prod` (private and shared images),
/// at that simulator, as `configure` adjusts it.
pub async fn spawn_app(
    sim: SimConfig,
    configure: impl FnOnce(ConfigText) -> ConfigText,
) -> TestApp {
    let sim = spawn_sim(sim).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    // The app's clock stands still while the simulator's runs (unless the test made it
    // manual), so an incremental window, which ends at the app's now, would not see what the
    // simulator did since: the rig lists fully unless a test turns incremental listing on
    // and keeps the two clocks in step (tests/integration/incremental.rs).
    let config = configure(
        ConfigText::new()
            .database(&dir.path().join("state.db"))
            .endpoint(&sim.base_url())
            .set("hss.requests_per_second", "1000")
            .set("sync.incremental", r#""off""#)
            .target("prod", sim.project_id(), &["private_image", "shared_image"]),
    );
    let clock = Clock::manual(chrono::Utc::now().timestamp_millis());
    let app = build(&config, &clock).await;
    TestApp {
        sim,
        dir,
        config,
        clock,
        app,
    }
}

async fn build(config: &ConfigText, clock: &Clock) -> App {
    let d = SimConfig::default();
    Startup::new(config.settings())
        .with_credentials(CredentialProvider::fixed(Credentials::new(
            &d.ak, &d.sk, None,
        )))
        .with_clock(clock.clone())
        .build()
        .await
        .expect("the app starts")
}

impl TestApp {
    /// Syncs every target.
    pub async fn sync(&self) -> Vec<SyncReport> {
        self.app
            .pipeline()
            .sync_all(&Shutdown::new())
            .await
            .expect("the database works")
            .reports
    }

    pub async fn plan(&self) -> Plan {
        self.app.pipeline().plan().await.expect("plan")
    }

    /// Plans and submits under the leader lease, as `hss-scand scan` does, and gives the
    /// lease up after.
    pub async fn scan(&self) -> ScanReport {
        let fence = self.lead().await;
        let report = self
            .app
            .pipeline()
            .scan(&Shutdown::new(), &fence)
            .await
            .expect("the database works");
        self.app
            .store
            .release_lease(&fence)
            .await
            .expect("the database works");
        report
    }

    /// The leader lease, taken (or kept) by the test for a day of the app's clock.
    pub async fn lead(&self) -> Fence {
        match self
            .app
            .store
            .acquire_lease("test-rig", Duration::from_secs(86_400))
            .await
            .expect("the database works")
        {
            LeaseAttempt::Held(fence) => fence,
            LeaseAttempt::HeldBy(other) => panic!("the lease is held by {other:?}"),
        }
    }

    /// Moves the app's clock on (the simulator keeps real time).
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// A new process on the same database and configuration: the store is closed and
    /// opened again.
    pub async fn restart(&mut self) {
        self.app.store.close().await;
        self.app = build(&self.config, &self.clock).await;
    }

    /// The configuration, as `adjust` changes it, written to `config.toml` in the test's
    /// directory.
    pub fn config_file(&self, adjust: impl FnOnce(ConfigText) -> ConfigText) -> PathBuf {
        let path = self.dir.path().join("config.toml");
        adjust(self.config.clone()).write(&path);
        path
    }

    /// Runs the real binary with `args` after `--config PATH`, with the simulator's keys.
    pub async fn cli(&self, config: &std::path::Path, args: &[&str]) -> Outcome {
        let d = SimConfig::default();
        let keys = [
            ("HUAWEICLOUD_SDK_AK", d.ak.as_str()),
            ("HUAWEICLOUD_SDK_SK", d.sk.as_str()),
        ];
        self.cli_with_env(config, args, &keys).await
    }

    /// [`TestApp::cli`] with exactly `env` as the environment. The binary runs off the async
    /// runtime, so that the in-process simulator keeps answering.
    pub async fn cli_with_env(
        &self,
        config: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Outcome {
        let mut all = vec!["--config".to_owned(), config.display().to_string()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = all.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            run_hss_scand(&args, &env)
        })
        .await
        .expect("the binary ran")
    }
}
