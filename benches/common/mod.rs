//! What both benchmarks need: a release `hss-sim` on loopback, its configuration (from the
//! tests' configuration builder), and `hss-scand` runs measured alone (wall time and the peak
//! RSS of that process, from `wait4`).

#[path = "../../tests/support/config.rs"]
#[allow(dead_code)]
mod config;
#[path = "../../tests/support/postgres.rs"]
#[allow(dead_code)]
mod postgres;

pub use config::ConfigText;
use postgres::TestDatabase;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const AK: &str = "bench-ak";
pub const SK: &str = "bench-sk";
pub const PROJECT: &str = "bench-project";

/// Starts `hss-sim` with `images` images (and `extra` flags); returns it and its URL.
pub fn start_sim(images: usize, extra: &[&str]) -> (Child, String) {
    let mut sim = Command::new(env!("CARGO_BIN_EXE_hss-sim"))
        .args(["--listen", "127.0.0.1:0", "--images", &images.to_string()])
        .args(["--ak", AK, "--sk", SK, "--project-id", PROJECT])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("hss-sim starts");
    let mut first = String::new();
    BufReader::new(sim.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("hss-sim prints its address");
    (sim, first.trim().to_owned())
}

// Each benchmark reads the measures it reports, not all of them.
#[allow(dead_code)]
pub struct Measured {
    pub wall: Duration,
    /// User plus system CPU time of the `hss-scand` process alone.
    pub cpu: Duration,
    pub peak_rss_kib: i64,
    /// Read system calls (`syscr` of `/proc/PID/io`): SQLite reads its pages one `pread` at
    /// a time, so this counts the database reads whether the page cache had them or not.
    pub read_calls: u64,
    /// The first 64 KiB of what it printed.
    pub stdout: String,
    /// The last 4 KiB or so of what it printed (where totals are).
    pub tail: String,
}

impl Measured {
    pub fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }
}

/// Runs `hss-scand --config CONFIG ARGS…` and measures that process alone. Panics unless it
/// exits 0.
// The child is reaped by `libc::wait4` (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
pub fn run(config: &Path, args: &[&str]) -> Measured {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_hss-scand"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("HUAWEICLOUD_SDK_AK", AK)
        .env("HUAWEICLOUD_SDK_SK", SK)
        .stdout(Stdio::piped())
        .spawn()
        .expect("hss-scand starts");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("stdout");
    // Read everything (a plan can be large) but keep only what a report needs.
    let mut kept = String::new();
    let mut tail: Vec<u8> = Vec::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = stdout.read(&mut buffer).expect("read stdout");
        if n == 0 {
            break;
        }
        if kept.len() < 64 * 1024 {
            kept.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
        tail.extend_from_slice(&buffer[..n]);
        if tail.len() > 8 * 1024 {
            tail.drain(..tail.len() - 4 * 1024);
        }
    }
    let read_calls = read_calls_at_exit(pid);
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet waited for; both pointers are valid.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(waited, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "hss-scand {args:?} failed:\n{kept}"
    );
    let seconds = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Measured {
        wall,
        cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        peak_rss_kib: usage.ru_maxrss,
        read_calls,
        stdout: kept,
        tail: String::from_utf8_lossy(&tail).into_owned(),
    }
}

/// Names a PostgreSQL server (whose role may create databases) to run every benchmark on a
/// fresh database there too, beside SQLite.
// `once` runs on SQLite only (it measures the process, not the database), hence the allows.
#[allow(dead_code)]
pub const POSTGRES_VAR: &str = "HSS_SCAND_BENCH_POSTGRES_URL";

/// The database one run of a benchmark uses: an SQLite file in the run's directory, or a
/// fresh PostgreSQL database, dropped with the value.
#[allow(dead_code)]
pub enum BenchDb {
    Sqlite,
    Postgres(TestDatabase),
}

#[allow(dead_code)]
impl BenchDb {
    /// SQLite, and a fresh PostgreSQL database when [`POSTGRES_VAR`] is set.
    pub fn all() -> Vec<BenchDb> {
        let mut all = vec![BenchDb::Sqlite];
        if let Some(admin) = std::env::var(POSTGRES_VAR).ok().filter(|v| !v.is_empty()) {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            all.push(BenchDb::Postgres(
                runtime.block_on(TestDatabase::create_on(&admin)),
            ));
        }
        all
    }

    pub fn label(&self) -> &'static str {
        match self {
            BenchDb::Sqlite => "sqlite",
            BenchDb::Postgres(_) => "postgres",
        }
    }

    /// `config` on this database.
    pub fn configure(&self, config: ConfigText) -> ConfigText {
        match self {
            BenchDb::Sqlite => config,
            BenchDb::Postgres(db) => config.set("database.url", &db.toml()),
        }
    }
}

/// Waits for `pid` to exit without reaping it, and reads its I/O counters while it is a
/// zombie (they are gone once it is reaped).
fn read_calls_at_exit(pid: libc::pid_t) -> u64 {
    // SAFETY: an all-zero siginfo_t is a valid value for waitid to fill in.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child; WNOWAIT leaves it to be reaped by wait4.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    assert_eq!(rc, 0, "waitid failed");
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("syscr: ")?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The benchmarks' configuration: a database in `dir`, the simulator at `url` without a rate
/// limit worth the name, one target `bench` with `types`, warnings only.
pub fn bench_config(dir: &Path, url: &str, types: &[&str]) -> ConfigText {
    ConfigText::new()
        .database(&dir.join("bench.db"))
        .endpoint(url)
        .set("hss.requests_per_second", "100000")
        .target("bench", PROJECT, types)
        .set("log.level", r#""warn""#)
}
