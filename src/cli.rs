//! The command line: `hss-scand [--config PATH] COMMAND`. Only definitions live here;
//! `commands` carries them out. Help texts are the operator's manual, so they say what a
//! command does to the account, not how it is implemented.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::DEFAULT_CONFIG_PATH;

/// The process exit codes: the contract with systemd, scripts and CI.
pub mod exit_code {
    /// Everything succeeded.
    pub const OK: u8 = 0;
    /// A command failed while running (HSS unreachable, database error, …).
    pub const RUNTIME_FAILURE: u8 = 1;
    /// The command line was wrong; clap exits with this code by itself.
    pub const USAGE: u8 = 2;
    /// `scan` or `once` found the leader lease held by a daemon replica, and did nothing
    /// (`EX_TEMPFAIL`: try again later; a systemd timer beside the daemon can list it in
    /// `SuccessExitStatus=`).
    pub const LEASE_HELD: u8 = 75;
    /// The configuration cannot be used (`EX_CONFIG` from sysexits.h, which systemd's
    /// `RestartPreventExitStatus=78` can use to stop restarting a misconfigured daemon).
    pub const CONFIG: u8 = 78;
}

/// Keeps every container image of a Huawei Cloud account (SWR, and the Harbor and JFrog
/// registries connected to HSS) scanned by Host Security Service (HSS), on a schedule and a
/// budget you control.
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
    /// Run as a service: sync and scan on the [schedule] cron expressions (UTC), serve
    /// /metrics, /healthz, /readyz and /status on server.listen, reload the configuration on
    /// SIGHUP, and stop cleanly on SIGTERM or SIGINT (within daemon.shutdown_grace). Speaks
    /// systemd's notify protocol (READY, WATCHDOG, RELOADING, STOPPING) when NOTIFY_SOCKET
    /// is set.
    Run,

    /// Try hss-scand in one command: start a simulated HSS account of 20,000 images in this
    /// process and run the daemon against it with schedules of a few seconds. Prints where
    /// /metrics and /status are and one line per job run; Ctrl-C stops it. Needs no
    /// configuration file and no credentials, and touches no real account.
    Demo,

    /// Refresh the inventory: list every image HSS knows for each target and image type and
    /// store what changed. Images a complete listing no longer shows are marked deleted; a
    /// listing that failed part-way deletes nothing. Also reads what each target's HSS project
    /// says about itself (its own periodic scan policy, pay-per-scan figures) and follows the
    /// scan tasks of earlier submissions. Submits no scans. Exits 1 unless every target and
    /// type synced completely.
    Sync,

    /// Dry run: list the images the next scan would submit, in submission order, each with
    /// its reason (never_scanned, changed, failed_retry, stale, stuck), the rule that matched and its
    /// priority, after max_images_per_run and today's budget. Reads only the local database;
    /// submits nothing.
    Plan {
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },

    /// Submit the due images to HSS, from what the database holds now (run `sync` first, or
    /// use `once`): in scan tasks on HSS's current API, in batch-scan calls on the deprecated
    /// one. Every batch is recorded before it is sent. Exits 1 unless every batch was
    /// accepted (a scan while HSS's pay-per-scan switch is off fails and says so).
    Scan {
        /// Show the batches that would be sent, and send nothing.
        #[arg(long)]
        dry_run: bool,
    },

    /// One full cycle for every target: sync, then scan. Exits 0 only if every step
    /// succeeded.
    Once,

    /// Show each target's coverage (the share of its images scanned within rescan_after, and
    /// its oldest scan) and findings, its API and what its HSS project said at the last sync
    /// (its own periodic scan, pay-per-scan), the inventory by target, image type and scan
    /// status, what is due by reason, today's budget, and the latest syncs and batches with
    /// their scan tasks. Reads only the local database.
    Status {
        #[arg(long, value_enum, default_value_t = Output::Table)]
        output: Output,
        /// Also list the N riskiest present images (10 if N is left out): by severity, then
        /// vulnerability count, with their findings and last scan time.
        #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "10",
              value_parser = clap::value_parser!(u32).range(1..=10_000))]
        risky: Option<u32>,
    },

    /// Work with the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),

    /// Work with the database.
    #[command(subcommand)]
    Db(DbCommand),

    /// Connect third-party registries (Harbor, JFrog) to HSS.
    ///
    /// Add one, get the command that uploads the HSS scanner image to one, or add the
    /// [[registries]] of the configuration. Registry passwords are read from standard input
    /// (--password-stdin), the environment or a file, never from a flag, and are never
    /// printed or logged.
    #[command(subcommand)]
    Registry(RegistryCommand),
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

/// The environment variable `db copy` reads its target from when `--to` is not given (the
/// environment of a process is private to its user; its arguments are not).
pub const DB_COPY_TO_ENV: &str = "HSS_SCAND_DB_COPY_TO";

/// `hss-scand db …`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy the configured SQLite database into an empty PostgreSQL database.
    ///
    /// Copies everything hss-scand knows — the inventory (deleted images too), the sync and
    /// job runs, every batch and image submitted (those still in flight too, so that nothing
    /// is submitted twice after the move) and what each target's HSS project said — keeping
    /// every id, in one transaction: the target is filled whole or not at all. The leader
    /// lease is not copied. The target is migrated first and must have no rows; the copy
    /// refuses, naming the table, if it has. Prints the rows copied per table. Stop the
    /// daemon first: what it writes after the copy starts is not copied. Then point
    /// database.url at the PostgreSQL database.
    #[command(
        after_help = "Example:\n  HSS_SCAND_DB_COPY_TO='postgres://hss-scand:…@db.example.com:5432/hss_scand?sslmode=require' \\\n    hss-scand db copy"
    )]
    Copy {
        /// The PostgreSQL database to fill: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE,
        /// with libpq's parameters such as sslmode=require. Without this flag it is taken
        /// from HSS_SCAND_DB_COPY_TO; the password may also come from PGPASSWORD or
        /// ~/.pgpass. It is never printed.
        #[arg(long, value_name = "URL", env = DB_COPY_TO_ENV, hide_env_values = true)]
        to: String,
    },
}

/// The environment variable `registry add` and `registry upload-command` read the registry
/// password from when `--password-stdin` is not given.
pub const REGISTRY_PASSWORD_ENV: &str = "HSS_SCAND_REGISTRY_PASSWORD";

/// `hss-scand registry …`
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Connect a Harbor or JFrog registry to a target's HSS project.
    ///
    /// HSS reaches the registry through a cluster already connected to HSS
    /// (POST /image/registries). Every flag is checked before anything is sent; bad ones exit
    /// 2, all named on one line. The password comes from --password-stdin or
    /// HSS_SCAND_REGISTRY_PASSWORD.
    #[command(
        after_help = "Example:\n  printf '%s\\n' \"$HARBOR_PASSWORD\" | hss-scand registry add --target prod \\\n    --name harbor-prod --type harbor --addr harbor.example.com:8443 --username robot-hss \\\n    --cluster-id 6b1c4a5e-0d2f-11ef-9a4b-0255ac100b07 --channel swr --password-stdin"
    )]
    Add(Box<RegistryAddArgs>),

    /// Print the commands that upload the HSS scanner image to a registry.
    ///
    /// For a registry whose cluster cannot pull the scanner from SWR (channel "other"): prints
    /// image_command, images_download_url and swr_image_pull_command
    /// (GET /image/registries/image-upload-command). The password goes to HSS in the request's
    /// query, so that request is never logged; the answer is printed to stdout only. The
    /// password comes from --password-stdin or HSS_SCAND_REGISTRY_PASSWORD.
    UploadCommand(UploadCommandArgs),

    /// Add the [[registries]] of the configuration that HSS does not have yet.
    ///
    /// Lists each target's registries (GET /image/registries) and adds those missing by name;
    /// changes and removes nothing else, so running it again adds nothing. A password is read
    /// (password_env or password_file) only when its registry is added. Prints one line per
    /// registry: exists, added, would add, or FAILED. Exits 1 unless every missing registry
    /// was added.
    Apply {
        /// List what HSS has and print what would be added; add nothing and read no password.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Where the registry password comes from. There is deliberately no flag that takes the
/// password itself: process arguments are visible to every user of the machine.
#[derive(Debug, Clone, Args)]
pub struct PasswordArgs {
    /// Read the registry password from the first line of standard input (without its line
    /// ending). Without this flag, the password is taken from the environment variable
    /// HSS_SCAND_REGISTRY_PASSWORD.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `hss-scand registry add`. Values are checked by the command (not by the parser) so that
/// every bad flag is reported at once.
#[derive(Debug, Clone, Args)]
pub struct RegistryAddArgs {
    /// The configured target ([[targets]] name) whose HSS project gets the registry.
    #[arg(long, value_name = "NAME")]
    pub target: String,
    /// The registry's name in HSS, 1..=128 characters.
    #[arg(long)]
    pub name: String,
    /// The kind of registry: harbor or jfrog.
    #[arg(long = "type", value_name = "harbor|jfrog")]
    pub registry_type: String,
    /// The registry's address, host[:port] without a scheme (e.g. harbor.example.com:8443),
    /// 1..=256 characters.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub addr: String,
    /// The account HSS uses to read the registry, 1..=128 characters.
    #[arg(long)]
    pub username: String,
    /// The HSS-connected cluster that runs the registry's sync and scan jobs, 1..=64
    /// characters.
    #[arg(long, value_name = "ID")]
    pub cluster_id: String,
    /// Where that cluster gets the HSS scanner image: swr (pulled from SWR), or other (you
    /// upload it to the registry; see `registry upload-command`).
    #[arg(long, value_name = "swr|other")]
    pub channel: String,
    /// The registry project the scanner image is uploaded to, 1..=128 characters; required
    /// with --channel other.
    #[arg(long)]
    pub namespace: Option<String>,
    /// How HSS reaches the registry: https or http.
    #[arg(long, value_name = "https|http", default_value = "https")]
    pub protocol: String,
    /// The registry's API version: v2 or v1.
    #[arg(long, value_name = "v2|v1", default_value = "v2")]
    pub api_version: String,
    #[command(flatten)]
    pub password: PasswordArgs,
}

/// `hss-scand registry upload-command`.
#[derive(Debug, Clone, Args)]
pub struct UploadCommandArgs {
    /// The configured target ([[targets]] name) whose HSS project is asked.
    #[arg(long, value_name = "NAME")]
    pub target: String,
    /// The registry's address, host[:port], 1..=256 characters.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub addr: String,
    /// The registry project the scanner image is uploaded to, 1..=128 characters.
    #[arg(long)]
    pub namespace: String,
    /// The registry account that uploads it, 1..=128 characters.
    #[arg(long)]
    pub username: String,
    #[command(flatten)]
    pub password: PasswordArgs,
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
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
    fn db_copy_takes_its_target_from_the_flag() {
        let cli =
            Cli::try_parse_from(["hss-scand", "db", "copy", "--to", "postgres://db/x"]).unwrap();
        assert!(
            matches!(cli.command, Command::Db(DbCommand::Copy { ref to }) if to == "postgres://db/x")
        );
    }

    #[test]
    fn usage_errors_use_the_usage_exit_code() {
        let err = Cli::try_parse_from(["hss-scand", "frobnicate"]).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(exit_code::USAGE));
    }
}
