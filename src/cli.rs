//! The command line: `hss-scand [--config PATH] COMMAND`. Only definitions live here;
//! `commands` carries them out. Help texts are the operator's manual, so they say what a
//! command does to the account, not how it is implemented.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::DEFAULT_CONFIG_PATH;

/// The process exit codes: the contract with systemd, scripts and CI.
pub mod exit_code {
    /// Everything succeeded.
    pub const OK: u8 = 0;
    /// A command failed while running (HSS unreachable, database error, …).
    pub const RUNTIME_FAILURE: u8 = 1;
    /// The command line was wrong; clap exits with this code by itself.
    pub const USAGE: u8 = 2;
    /// The configuration cannot be used (`EX_CONFIG` from sysexits.h, which systemd's
    /// `RestartPreventExitStatus=78` can use to stop restarting a misconfigured daemon).
    pub const CONFIG: u8 = 78;
}

/// Keeps every SWR container image of a Huawei Cloud account scanned by Host Security
/// Service (HSS), on a schedule and a budget you control.
#[derive(Debug, Parser)]
#[command(name = "hss-scand", version, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 ok, 1 runtime failure, 2 usage error, 78 configuration error."
)]
pub struct Cli {
    /// The configuration file (TOML). Keys it leaves out keep their documented defaults, and
    /// HSS_SCAND__SECTION__KEY environment variables override it.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "HSS_SCAND_CONFIG",
        default_value = DEFAULT_CONFIG_PATH
    )]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Refresh the inventory: list every image HSS knows for each target and image type and
    /// store what changed. Images a complete listing no longer shows are marked deleted; a
    /// listing that failed part-way deletes nothing. Submits no scans. Exits 1 unless every
    /// target and type synced completely.
    Sync,

    /// Dry run: list the images the next scan would submit, in submission order, each with
    /// its reason (never_scanned, failed_retry, stale, stuck), the rule that matched and its
    /// priority, after max_images_per_run and today's budget. Reads only the local database;
    /// submits nothing.
    Plan {
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },

    /// Submit the due images to HSS in batch-scan calls, from what the database holds now
    /// (run `sync` first, or use `once`). Every batch is recorded before it is sent. Exits 1
    /// unless every batch was accepted.
    Scan {
        /// Show the batches that would be sent, and send nothing.
        #[arg(long)]
        dry_run: bool,
    },

    /// One full cycle for every target: sync, then scan. Exits 0 only if every step
    /// succeeded.
    Once,

    /// Show the inventory by target, image type and scan status, what is due by reason,
    /// today's budget, and the latest syncs and batches. Reads only the local database.
    Status {
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },

    /// Work with the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// How a report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns, for people.
    Table,
    /// One JSON document, for tools.
    Json,
}

/// `hss-scand config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the configuration and print the effective one (defaults, file and environment
    /// combined), with secrets redacted and where the credentials come from. Exits 78 with a
    /// one-line message naming the file and key if anything is wrong. Contacts nothing.
    Check,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_check_parses_with_the_config_flag_before_or_after_the_command() {
        for args in [
            &["hss-scand", "--config", "/x.toml", "config", "check"][..],
            &["hss-scand", "config", "check", "--config", "/x.toml"][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            assert_eq!(cli.config, PathBuf::from("/x.toml"));
            assert!(matches!(cli.command, Command::Config(ConfigCommand::Check)));
        }
    }

    #[test]
    fn usage_errors_use_the_usage_exit_code() {
        let err = Cli::try_parse_from(["hss-scand", "frobnicate"]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(exit_code::USAGE));
    }
}
