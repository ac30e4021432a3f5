//! `hss-scand`: parse the command line, load the configuration, start logging, run the command.
//! Every outcome maps to one exit code from `cli::exit_code`.

use std::process::ExitCode;

use clap::Parser as _;
use hss_scand::cli::{Cli, Command, exit_code};
use hss_scand::config::Settings;
use hss_scand::{commands, telemetry};

fn main() -> ExitCode {
    // Before the runtime starts its threads.
    limit_malloc_arenas();
    raise_open_file_limit();
    tokio::runtime::Runtime::new().map_or_else(
        |err| {
            eprintln!("error: cannot start the async runtime: {err}");
            ExitCode::from(exit_code::RUNTIME_FAILURE)
        },
        |runtime| runtime.block_on(run()),
    )
}

/// Caps glibc's malloc arenas at two. By default glibc keeps up to eight per core, one per
/// thread that ever allocated; for this process (a few tokio workers and sqlx's database
/// threads) that was a quarter of the peak memory of a 50,000-image scan, and arenas hold on
/// to freed memory for the life of a long-running daemon.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called once, first thing in main,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Raises the soft limit of open files to the hard limit. The soft limit (often 1,024) is a
/// legacy default for select(2); this process uses epoll, and the HTTP server's connections,
/// the database's files and HSS's connections share that one budget. Failure is harmless:
/// the listener bounds its connections below the soft limit anyway.
fn raise_open_file_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) == 0
                && limit.rlim_cur < limit.rlim_max
            {
                limit.rlim_cur = limit.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit);
            }
        }
    }
}

async fn run() -> ExitCode {
    // Usage errors, --help and --version are handled (and exit) inside clap.
    let cli = Cli::parse();

    // The demo brings its own configuration and credentials: none are read.
    if matches!(cli.command, Command::Demo) {
        telemetry::init(&commands::demo::log_settings());
        return match commands::demo::run().await {
            Ok(()) => ExitCode::from(exit_code::OK),
            Err(err) => {
                eprintln!("error: {}", telemetry::error_chain(err.as_ref()));
                ExitCode::from(exit_code::RUNTIME_FAILURE)
            }
        };
    }

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
            // The whole chain on one line: "context: cause: cause". It may
            // quote HSS, so control characters are shown, not obeyed.
            eprintln!(
                "error: {}",
                commands::printable(&telemetry::error_chain(err.as_ref()))
            );
            ExitCode::from(commands::exit_code_for(&err))
        }
    }
}
