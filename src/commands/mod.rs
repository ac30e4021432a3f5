//! Carrying out a parsed command line against a loaded configuration. One submodule per
//! command; this file only dispatches, so `main` stays a list of steps.

mod config_check;

use std::path::Path;

use crate::cli::{Command, ConfigCommand};
use crate::config::Settings;

/// Runs `command`; the error, if any, is a runtime failure (exit code 1).
pub async fn run(command: Command, config_path: &Path, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Config(ConfigCommand::Check) => config_check::run(config_path, &settings),
    }
}
