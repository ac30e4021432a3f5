//! `hss-scand`: parse the command line, load the configuration, start logging, run the command.
//! Every outcome maps to one exit code from `cli::exit_code`.

use std::process::ExitCode;

use clap::Parser as _;
use hss_scand::cli::{Cli, exit_code};
use hss_scand::config::Settings;
use hss_scand::{commands, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    // Usage errors, --help and --version are handled (and exit) inside clap.
    let cli = Cli::parse();

    let settings = match Settings::load(&cli.config) {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(exit_code::CONFIG);
        }
    };

    telemetry::init(&settings.log);

    match commands::run(cli.command, &cli.config, settings).await {
        Ok(()) => ExitCode::from(exit_code::OK),
        Err(err) => {
            // `{:#}` puts the whole anyhow chain on one line: "context: cause: cause".
            eprintln!("error: {err:#}");
            ExitCode::from(commands::exit_code_for(&err))
        }
    }
}
