//! `hss-scand demo`: the daemon against a simulated account, in one process, with nothing
//! to set up. Everything it writes goes to a temporary directory that is removed at exit.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::Context as _;

use crate::config::Settings;
use crate::daemon::{self, DaemonOptions, JobEvent};
use crate::hss::transport::credentials::{CredentialProvider, Credentials};
use crate::sim::config::Lifecycle;
use crate::sim::{self, SimConfig};
use crate::startup::Startup;

/// SWR images in the simulated account.
const IMAGES: usize = 20_000;
/// Images of the Harbor registry connected to it.
const HARBOR_IMAGES: usize = 400;

/// The port the demo prefers for its endpoints (the daemon's default); a free one otherwise.
const PORT: u16 = 9794;

/// The demo's configuration, over the embedded defaults: fast schedules, a budget small
/// enough to be seen working, the simulator as the endpoint.
fn settings(endpoint: &str, database: &str) -> anyhow::Result<Settings> {
    let text = format!(
        r#"
[database]
url = "sqlite://{database}"
[hss]
endpoint = "{endpoint}"
requests_per_second = 50
[[targets]]
name = "demo"
region = "ap-southeast-1"
project_id = "sim-project"
image_types = ["private_image", "shared_image", "instance_image", "harbor"]
[schedule]
sync = "*/10 * * * * *"
scan = "5/10 * * * * *"
[policy]
max_images_per_run = 4000
daily_budget = 18000
scanning_timeout = "1m"
retry_failed_after = "20s"
[[policy.rules]]
namespace = "prod*"
priority = 10
"#
    );
    Ok(Settings::from_toml_str(&text, "the demo configuration")?)
}

/// How the demo logs (warnings only, so its progress lines stand out), for `main` to start
/// logging before [`run`]; the demo's configuration leaves `[log]` at its defaults, unused.
pub fn log_settings() -> crate::config::LogSettings {
    crate::config::LogSettings {
        format: crate::config::LogFormat::Text,
        level: "warn".to_owned(),
    }
}

pub async fn run() -> anyhow::Result<()> {
    let sim = sim::spawn(
        SimConfig {
            images: IMAGES,
            third_party_registries: 1,
            registry_images: HARBOR_IMAGES,
            lifecycle: Lifecycle {
                queue_delay: std::time::Duration::from_secs(2),
                scan_duration: std::time::Duration::from_secs(4),
                failure_rate: 0.05,
            },
            ..SimConfig::default()
        },
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
    )
    .await
    .context("cannot start the simulated HSS")?;
    let dir = std::env::temp_dir().join(format!("hss-scand-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let database = dir.join("demo.db");
    let settings = settings(&sim.base_url(), &database.display().to_string())?;

    let listener = match tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, PORT)).await {
        Ok(listener) => listener,
        Err(_) => tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("cannot listen on a local port")?,
    };
    let address = listener.local_addr().context("no local address")?;
    println!(
        "hss-scand demo: a simulated HSS account of {IMAGES} SWR images and a Harbor registry \
         of {HARBOR_IMAGES} at {}, through HSS's current image API",
        sim.base_url()
    );
    println!("  metrics: http://{address}/metrics");
    println!("  status:  http://{address}/status");
    println!(
        "  schedules: sync {}, scan {} (UTC); max 4000 images per scan, 18000 a day",
        settings.schedule.sync, settings.schedule.scan
    );
    println!("  Ctrl-C stops it.");

    let (events, mut received) = tokio::sync::mpsc::unbounded_channel::<JobEvent>();
    let printer = tokio::spawn(async move {
        while let Some(event) = received.recv().await {
            println!(
                "[{}] {} {}: {}",
                chrono::Utc::now().format("%H:%M:%S"),
                event.job.as_str(),
                event.run_id,
                event.summary
            );
        }
    });
    let startup = Startup::new(settings).with_credentials(CredentialProvider::fixed(
        Credentials::new("sim-ak", "sim-sk", None),
    ));
    let options = DaemonOptions {
        listener: Some(listener),
        events: Some(events),
    };
    let result = daemon::run(dir.join("none.toml"), startup, options).await;
    printer.abort();
    sim.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    if result.is_ok() {
        println!("demo stopped; its database was removed.");
    }
    result
}
