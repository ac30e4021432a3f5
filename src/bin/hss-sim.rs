//! `hss-sim`: the HSS simulator as a process. Everything but the process setup lives in
//! `hss_scand::sim` (flags in `sim::cli`).

use clap::Parser;
use hss_scand::sim::cli::{SimArgs, run};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries only the base URL, for the process that started us.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    run(SimArgs::parse()).await
}
