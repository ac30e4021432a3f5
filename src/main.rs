//! `hss-scand`: parse the command line, load the configuration, start logging, run the command.
//! Every outcome maps to one exit code from `cli::exit_code`.

use std::process::ExitCode;

use clap::Parser as _;
use hss_scand::cli::{Cli, Command, exit_code};
use hss_scand::config::Settings;
use hss_scand::{commands, telemetry};

fn main() -> ExitCode {
    // Before the runtime starts its threads.
    tune_malloc();
    raise_open_file_limit();
    tokio::runtime::Runtime::new().map_or_else(
        |err| {
            eprintln!("error: cannot start the async runtime: {err}");
            ExitCode::from(exit_code::RUNTIME_FAILURE)
        },
        |runtime| runtime.block_on(run()),
    )
}

/// Sets glibc's malloc up for this process, unless the operator set the same knobs through
/// glibc's own environment variables (which then win).
///
/// - Arenas: at most two. By default glibc keeps up to eight per core, one per thread that
///   ever allocated; for this process (a few tokio workers and sqlx's database threads) that
///   was a quarter of the peak memory of a 50,000-image scan, and arenas hold on to freed
///   memory for the life of a long-running daemon.
/// - Thresholds: fixed, which turns off glibc's dynamic ones. Freeing a large block (a sync's
///   index of known images, 25 MB at a million images) otherwise raises the mmap threshold to
///   32 MB and the trim threshold to 64 MB, and from then on the heap keeps up to 64 MB it
///   no longer uses. `once` at a million images peaked at 129–141 MB with the dynamic ones and
///   at 91–93 MB with these; at 100,000 images, 57 MB against 60; the CPU did not move.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// Blocks from 4 MiB up are mapped on their own and returned when freed; smaller ones
        /// (a listing page's body, a batch's rows) are reused from the heap.
        const MMAP_THRESHOLD: libc::c_int = 4 << 20;
        /// Free memory at the top of the heap beyond 2 MiB goes back to the system (8 MiB
        /// kept 6 MB more at a million images, and saved no measurable CPU).
        const TRIM_THRESHOLD: libc::c_int = 2 << 20;
        let unset = |name: &str| std::env::var_os(name).is_none();
        // SAFETY: mallopt only sets allocator parameters; called first thing in main, before
        // any other thread exists.
        unsafe {
            if unset("MALLOC_ARENA_MAX") {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
            if unset("MALLOC_MMAP_THRESHOLD_") && unset("MALLOC_TRIM_THRESHOLD_") {
                libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
                libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            }
        }
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
