//! The `hss-sim` binary's flags and its run loop, kept here so `src/bin/hss-sim.rs` is only
//! the process entry point.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use super::{Faults, Lifecycle, SimConfig, spawn};

/// A faithful simulator of the Huawei Cloud HSS container-image APIs (list SWR images,
/// synchronize, batch scan, registries, upload command), with AK/SK signature verification,
/// a deterministic synthetic account, the scan lifecycle and switchable faults.
///
/// Prints its base URL (`http://127.0.0.1:PORT`) as the first line of stdout; logs go to
/// stderr. Test controls are served unauthenticated under /sim/ (stats, faults, fail-next,
/// images/add|delete|restore, credentials).
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
        assert!(SimArgs::try_parse_from(["hss-sim", "--error-rate", "2"]).is_err());
    }
}
