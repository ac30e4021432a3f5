//! Carrying out a parsed command line against a loaded configuration. One submodule per
//! command; this file only dispatches, so `main` stays a list of steps.

mod config_check;
mod db;
pub mod demo;
mod once;
mod output;

pub use output::printable;
mod plan;
mod registry;
mod run;
mod scan;
mod status;
mod sync;

use std::path::Path;

use crate::cli::{Command, ConfigCommand, DbCommand, exit_code};
use crate::config::Settings;
use crate::hss::transport::credentials::CredentialError;
use crate::leader::LeaseError;
use crate::startup::Startup;

/// Runs `command`; see [`exit_code_for`] for what its error means to the caller. `main`
/// starts the demo itself, before any configuration is read.
pub async fn run(command: Command, config_path: &Path, settings: Settings) -> anyhow::Result<()> {
    let startup = Startup::new(settings);
    match command {
        Command::Run => run::run(config_path, startup).await,
        Command::Demo => demo::run().await,
        Command::Sync => sync::run(startup).await,
        Command::Plan { output } => plan::run(&startup, output).await,
        Command::Scan { dry_run } => scan::run(startup, dry_run).await,
        Command::Once => once::run(startup).await,
        Command::Status { output, risky } => status::run(&startup, output, risky).await,
        Command::Config(ConfigCommand::Check) => config_check::run(config_path, startup.settings()),
        Command::Db(DbCommand::Copy { to }) => db::copy(&startup, &to).await,
        Command::Registry(command) => registry::run(command, &startup).await,
    }
}

/// A command line that parsed but cannot be run as given (a flag value out of range): exit
/// 2, like the usage errors clap finds itself.
#[derive(Debug, thiserror::Error)]
#[error("invalid arguments: {0}")]
pub struct UsageError(pub String);

/// The exit code for a failed command: a usage error is 2; the lease held by a daemon 75; missing or unreadable
/// credentials are a set-up problem that no retry fixes (78, so systemd stops restarting);
/// anything else is a runtime failure (1).
pub fn exit_code_for(err: &anyhow::Error) -> u8 {
    if err.chain().any(|cause| cause.is::<UsageError>()) {
        return exit_code::USAGE;
    }
    if err
        .chain()
        .any(|cause| matches!(cause.downcast_ref(), Some(LeaseError::HeldBy(_))))
    {
        return exit_code::LEASE_HELD;
    }
    let credentials_missing = err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<CredentialError>(),
            Some(
                CredentialError::MissingEnv(_)
                    | CredentialError::File { .. }
                    | CredentialError::EmptyFile { .. }
            )
        )
    });
    if credentials_missing {
        exit_code::CONFIG
    } else {
        exit_code::RUNTIME_FAILURE
    }
}
