//! The `hss-sim` binary's flags and its run loop, kept here so `src/bin/hss-sim.rs` is only
//! the process entry point.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use super::{Faults, Lifecycle, ScanPolicy, SimConfig, limits, spawn};

/// A faithful simulator of the Huawei Cloud HSS container-image APIs: the deprecated ones
/// (list SWR images, synchronize, batch scan), the current ones (list registry images, scan
/// and sync tasks, scan policy, pay-per-scan statistics and switch), registries and the
/// upload command, with AK/SK signature verification, a deterministic synthetic account that
/// can change over time, the scan lifecycle and switchable faults.
///
/// Prints its base URL (`http://127.0.0.1:PORT`) as the first line of stdout; logs go to
/// stderr. Test controls are served unauthenticated under /sim/ (stats, faults, fail-next,
/// images/add|delete|restore, churn, clock, credentials, pay-per-scan, apis, scan-policy,
/// settings).
#[derive(Debug, Clone, Parser)]
#[command(name = "hss-sim", version)]
pub struct SimArgs {
    /// Address to listen on; port 0 picks a free port (read the URL from stdout).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Images in the synthetic account (about 80% private, 15% shared, 5% instance).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub images: usize,
    /// Seed of the account's names, statuses and digests, and of the random faults.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Access key that requests must be signed with.
    #[arg(long, env = "HSS_SIM_AK", default_value = "sim-ak")]
    pub ak: String,
    /// Secret key that requests must be signed with.
    #[arg(
        long,
        env = "HSS_SIM_SK",
        default_value = "sim-sk",
        hide_env_values = true
    )]
    pub sk: String,
    /// The project id the API answers under; other ids get the gateway's 404.
    #[arg(long, default_value = "sim-project")]
    pub project_id: String,
    /// Require this X-Security-Token (temporary credentials) on requests signed with --ak.
    #[arg(long, env = "HSS_SIM_SECURITY_TOKEN", hide_env_values = true)]
    pub security_token: Option<String>,
    /// Delay added to every API answer, e.g. 20ms.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    pub latency: Duration,
    /// Share (0..=1) of API requests answered 500 or 503.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub error_rate: f64,
    /// Share (0..=1) of API requests answered 429 APIG.0308 with Retry-After.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub throttle_rate: f64,
    /// Retry-After seconds sent with random 429 answers.
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    pub retry_after: u64,
    /// Share (0..=1) of API requests answered 200 with a truncated or non-JSON body.
    #[arg(long, value_name = "RATE", default_value_t = 0.0, value_parser = rate)]
    pub malformed_rate: f64,
    /// Add one image before every list page with offset > 0, so total_num changes mid-listing.
    #[arg(long)]
    pub total_drift: bool,
    /// How long a submitted image stays waiting_for_scan.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    pub queue_delay: Duration,
    /// How long it then stays scanning before it finishes.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub scan_duration: Duration,
    /// Share (0..=1) of finished scans that end failed instead of success.
    #[arg(long, value_name = "RATE", default_value_t = 0.05, value_parser = rate)]
    pub failure_rate: f64,
    /// Send id, image_size and the times as numeric JSON strings instead of numbers.
    #[arg(long)]
    pub numbers_as_strings: bool,
    /// Every Nth image gets the documentation's junk numbers ("1000 (Bytes)"); 0 = none.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub junk_number_every: usize,
    /// Every Nth image reports the unknown scan status "quarantined"; 0 = none.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub unknown_status_every: usize,
    /// Images a third-party registry brings when add_registry connects it.
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub registry_images: usize,
    /// Third-party registries connected from the start (harbor-01, jfrog-02, …), each with
    /// --registry-images images.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub third_party_registries: usize,
    /// Share (0..=1) of images that are multi-architecture (HSS cannot scan them).
    #[arg(long, value_name = "RATE", default_value_t = 0.02, value_parser = rate)]
    pub multi_arch_share: f64,
    /// Share (0..=1) of shared images whose sharing has expired (HSS cannot scan them).
    #[arg(long, value_name = "RATE", default_value_t = 0.05, value_parser = rate)]
    pub expired_shared_share: f64,
    /// Most image_info items one create-scan-task call may carry (400 HSS.0006 above);
    /// unlimited when absent, as documented.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_scan_task_items: Option<u64>,
    /// Start with the image_pay_per_scan switch off: scan tasks are refused (HSS.1002).
    #[arg(long)]
    pub pay_per_scan_off: bool,
    /// The deprecated calls (swr-repository, batch-scan, synchronize) answer 404 APIGW.0101.
    #[arg(long)]
    pub deprecated_apis_removed: bool,
    /// The current calls answer 404 APIGW.0101, as in a region that does not have them yet.
    #[arg(long)]
    pub current_apis_missing: bool,
    /// Turn HSS's own periodic scan policy on, every DAYS days (3, 7 or 14).
    #[arg(long, value_name = "DAYS", value_parser = ["3", "7", "14"])]
    pub scan_policy_cycle: Option<String>,
    /// Registries (names or ids, comma-separated) the policy scans; all when absent.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        requires = "scan_policy_cycle"
    )]
    pub scan_policy_registries: Vec<String>,
    /// Risk-type bitmask the policy scans for.
    #[arg(long, value_name = "MASK", default_value_t = limits::SCAN_SCOPE_ALL,
          value_parser = clap::value_parser!(i64).range(0..=limits::SCAN_SCOPE_ALL))]
    pub scan_policy_scope: i64,
    /// Images per hour the policy scans (0 = unlimited).
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(i64).range(0..=limits::MAX_RATE_LIMIT))]
    pub scan_policy_rate_limit: i64,
    /// Only images updated in the last N days (0 = all; 1, 3 or 7).
    #[arg(long, value_name = "DAYS", default_value = "0", value_parser = ["0", "1", "3", "7"])]
    pub scan_policy_time_scope: String,
    /// Images changed per hour in the background (new, re-pushed, deleted, rescanned by
    /// HSS in turn); 0 = a still account.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub churn_per_hour: u64,
    /// Keep the simulator's clock still: it moves only by POST /sim/clock {"advance_ms": N},
    /// so a client that runs on a clock of its own (a benchmark simulating hours) can keep it
    /// in step. Without it the clock is the machine's (POST /sim/clock still moves it ahead).
    #[arg(long)]
    pub manual_clock: bool,
    /// How far a request's X-Sdk-Date may be from the simulator's clock before the gateway
    /// refuses it (HSS: 15 minutes); what a client paused after signing can still send.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = humantime::parse_duration)]
    pub max_clock_skew: Duration,
}

fn rate(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be between 0 and 1".into())
    }
}

impl SimArgs {
    pub fn config(&self) -> SimConfig {
        SimConfig {
            images: self.images,
            seed: self.seed,
            ak: self.ak.clone(),
            sk: self.sk.clone(),
            project_id: self.project_id.clone(),
            security_token: self.security_token.clone(),
            faults: Faults {
                latency: self.latency,
                error_rate: self.error_rate,
                throttle_rate: self.throttle_rate,
                retry_after_secs: self.retry_after,
                malformed_rate: self.malformed_rate,
                total_drift: self.total_drift,
            },
            lifecycle: Lifecycle {
                queue_delay: self.queue_delay,
                scan_duration: self.scan_duration,
                failure_rate: self.failure_rate,
            },
            numbers_as_strings: self.numbers_as_strings,
            junk_number_every: self.junk_number_every,
            unknown_status_every: self.unknown_status_every,
            registry_images: self.registry_images,
            third_party_registries: self.third_party_registries,
            multi_arch_share: self.multi_arch_share,
            expired_shared_share: self.expired_shared_share,
            max_scan_task_items: self
                .max_scan_task_items
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            pay_per_scan: !self.pay_per_scan_off,
            deprecated_apis_removed: self.deprecated_apis_removed,
            current_apis_missing: self.current_apis_missing,
            scan_policy: ScanPolicy {
                enabled: self.scan_policy_cycle.is_some(),
                scan_cycle: self
                    .scan_policy_cycle
                    .as_deref()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(7),
                scan_scope: self.scan_policy_scope,
                rate_limit: self.scan_policy_rate_limit,
                time_scope: self.scan_policy_time_scope.parse().unwrap_or(0),
                registries: self.scan_policy_registries.clone(),
            },
            churn_per_hour: self.churn_per_hour,
            manual_clock: self.manual_clock,
            max_clock_skew: self.max_clock_skew,
        }
    }
}

/// Serves until SIGINT or SIGTERM, printing the base URL first so a parent process can read it.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let config = args.config();
    tracing::info!(?config, "starting");
    let handle = spawn(config, args.listen).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", handle.base_url())?;
    stdout.flush()?;
    drop(stdout);
    shutdown_signal().await;
    tracing::info!("shutting down");
    handle.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_map_onto_the_config() {
        SimArgs::command().debug_assert();
        let args = SimArgs::try_parse_from([
            "hss-sim",
            "--listen",
            "127.0.0.1:0",
            "--images",
            "5",
            "--latency",
            "20ms",
            "--throttle-rate",
            "0.5",
            "--total-drift",
            "--queue-delay",
            "0s",
            "--junk-number-every",
            "7",
        ])
        .unwrap();
        let config = args.config();
        assert_eq!(config.images, 5);
        assert_eq!(config.faults.latency, Duration::from_millis(20));
        assert!(config.faults.total_drift && config.faults.throttle_rate == 0.5);
        assert_eq!(config.lifecycle.queue_delay, Duration::ZERO);
        assert_eq!(config.junk_number_every, 7);
        assert!(config.pay_per_scan && !config.scan_policy.enabled);
        assert_eq!(config.max_scan_task_items, None);
        assert!(SimArgs::try_parse_from(["hss-sim", "--error-rate", "2"]).is_err());
    }

    #[test]
    fn current_api_flags_map_onto_the_config() {
        let args = SimArgs::try_parse_from([
            "hss-sim",
            "--third-party-registries",
            "2",
            "--registry-images",
            "40",
            "--multi-arch-share",
            "0.1",
            "--expired-shared-share",
            "0.5",
            "--max-scan-task-items",
            "100",
            "--pay-per-scan-off",
            "--deprecated-apis-removed",
            "--current-apis-missing",
            "--scan-policy-cycle",
            "3",
            "--scan-policy-registries",
            "harbor-01,jfrog-02",
            "--scan-policy-rate-limit",
            "60",
            "--scan-policy-time-scope",
            "7",
            "--churn-per-hour",
            "3600",
            "--manual-clock",
        ])
        .unwrap();
        let c = args.config();
        assert_eq!((c.third_party_registries, c.registry_images), (2, 40));
        assert_eq!((c.multi_arch_share, c.expired_shared_share), (0.1, 0.5));
        assert_eq!(c.max_scan_task_items, Some(100));
        assert!(!c.pay_per_scan && c.deprecated_apis_removed && c.current_apis_missing);
        assert_eq!(
            c.scan_policy,
            ScanPolicy {
                enabled: true,
                scan_cycle: 3,
                scan_scope: limits::SCAN_SCOPE_ALL,
                rate_limit: 60,
                time_scope: 7,
                registries: vec!["harbor-01".into(), "jfrog-02".into()],
            }
        );
        assert_eq!(c.churn_per_hour, 3600);
        assert!(c.manual_clock);
        assert!(
            !SimArgs::try_parse_from(["hss-sim"])
                .unwrap()
                .config()
                .manual_clock
        );
        for bad in [
            &["hss-sim", "--scan-policy-cycle", "5"][..],
            &["hss-sim", "--max-scan-task-items", "0"],
            &["hss-sim", "--scan-policy-registries", "x"],
            &["hss-sim", "--scan-policy-rate-limit", "1001"],
        ] {
            assert!(SimArgs::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}
