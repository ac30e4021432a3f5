//! Planning and submission: `cargo bench --bench scan`.
//!
//! 1. `plan` over 1,000,000 images in the database (synced from a release `hss-sim`): the
//!    due list computed in-process (load, policy, order), and the `hss-scand plan` command.
//!    Target: under 1 s.
//! 2. 50,000 due images submitted by `hss-scand scan`: batch-scan calls, wall time and the
//!    peak RSS of the `hss-scand` process (from `wait4`). Target: 5 calls, under 50 MB.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hss_scand::config::Settings;
use hss_scand::store::{Store, now_ms};

const AK: &str = "bench-ak";
const SK: &str = "bench-sk";
const PROJECT: &str = "bench-project";

fn main() {
    // Children first: a child forked from this process starts with its resident pages, and
    // its peak RSS would include them once this process holds a million-image plan.
    submit_fifty_thousand();
    plan_over_a_million();
}

fn plan_over_a_million() {
    let (mut sim, url) = start_sim(1_000_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &url,
        &["private_image", "shared_image", "instance_image"],
        "",
    );
    let synced = run(&config, &["sync"]);
    println!(
        "setup: synced 1,000,000 images in {:.1} s",
        synced.wall.as_secs_f64()
    );

    let cli = run(&config, &["plan", "--output", "json"]);
    println!(
        "hss-scand plan --output json, 1,000,000 images: {:.3} s wall (printing every due row), peak RSS {:.1} MiB",
        cli.wall.as_secs_f64(),
        cli.peak_rss_kib as f64 / 1024.0
    );
    let capped = write_config(
        dir.path(),
        &url,
        &["private_image", "shared_image", "instance_image"],
        "[policy]\nmax_images_per_run = 10000\n",
    );
    let cli = run(&capped, &["plan", "--output", "json"]);
    println!(
        "hss-scand plan --output json with max_images_per_run = 10000: {:.3} s wall, peak RSS {:.1} MiB",
        cli.wall.as_secs_f64(),
        cli.peak_rss_kib as f64 / 1024.0
    );
    let settings = Settings::load(&config).expect("bench config");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (due, took) = runtime.block_on(async {
        let store = Store::open(&settings.database.url).await.expect("store");
        let started = Instant::now();
        let plan = hss_scand::submit::plan(&store, &settings.targets, &settings.policy, now_ms())
            .await
            .expect("plan");
        let took = started.elapsed();
        store.close().await;
        (plan.due.len(), took)
    });
    println!(
        "plan, in-process, 1,000,000 images: {due} due in {:.3} s",
        took.as_secs_f64()
    );

    let _ = sim.kill();
    let _ = sim.wait();
}

fn submit_fifty_thousand() {
    // Enough private images that more than 50,000 are due; the cap takes exactly 50,000.
    let (mut sim, url) = start_sim(80_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &url,
        &["private_image"],
        "[policy]\nmax_images_per_run = 50000\n",
    );
    run(&config, &["sync"]);
    let scan = run(&config, &["scan"]);
    let calls = scan
        .stdout
        .lines()
        .filter(|l| l.starts_with("batch "))
        .count();
    let submitted = scan
        .stdout
        .lines()
        .find(|l| l.starts_with("scan:"))
        .unwrap_or_default()
        .to_owned();
    println!(
        "hss-scand scan: {calls} batch-scan calls, {:.2} s wall, peak RSS {:.1} MiB ({submitted})",
        scan.wall.as_secs_f64(),
        scan.peak_rss_kib as f64 / 1024.0
    );
    assert!(submitted.contains("50000 submitted"), "{}", scan.stdout);
    let _ = sim.kill();
    let _ = sim.wait();
}

fn write_config(dir: &Path, url: &str, types: &[&str], extra: &str) -> std::path::PathBuf {
    let path = dir.join(format!("bench-{}.toml", extra.len()));
    let types: Vec<String> = types.iter().map(|t| format!("\"{t}\"")).collect();
    std::fs::write(
        &path,
        format!(
            "[database]\nurl = \"sqlite://{db}\"\n[hss]\nendpoint = \"{url}\"\n\
             requests_per_second = 100000\n[[targets]]\nname = \"bench\"\n\
             region = \"ap-southeast-1\"\nproject_id = \"{PROJECT}\"\nimage_types = [{}]\n\
             [log]\nlevel = \"warn\"\n{extra}",
            types.join(", "),
            db = dir.join("bench.db").display(),
        ),
    )
    .expect("write config");
    path
}

fn start_sim(images: usize) -> (Child, String) {
    let mut sim = Command::new(env!("CARGO_BIN_EXE_hss-sim"))
        .args(["--listen", "127.0.0.1:0", "--images", &images.to_string()])
        .args(["--ak", AK, "--sk", SK, "--project-id", PROJECT])
        .args(["--queue-delay", "1h"])
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

struct Measured {
    wall: Duration,
    peak_rss_kib: i64,
    stdout: String,
}

/// Runs `hss-scand` with `args` and measures that process alone.
// The child is reaped by `libc::wait4` (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run(config: &Path, args: &[&str]) -> Measured {
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
    // Read everything (it may be large) but keep only what the report needs.
    let mut kept = String::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = stdout.read(&mut buffer).expect("read stdout");
        if n == 0 {
            break;
        }
        if kept.len() < 64 * 1024 {
            kept.push_str(&String::from_utf8_lossy(&buffer[..n]));
        }
    }
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
    Measured {
        wall,
        peak_rss_kib: usage.ru_maxrss,
        stdout: kept,
    }
}
