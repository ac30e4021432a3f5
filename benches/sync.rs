//! Sync throughput and memory: `cargo bench --bench sync` (add `-- 100000` to pick sizes).
//!
//! For each size, starts a release `hss-sim` on loopback with that many images, then runs the
//! real `hss-scand sync` twice against it — a fresh sync into an empty database and an
//! unchanged re-sync — and prints wall time, images per second and the peak RSS of the
//! `hss-scand` process alone (from `wait4`, so the simulator's memory is not counted).
//!
//! Targets on a 2-core machine: fresh 100k < 5 s; re-sync ≤ 1/3 of fresh; 1M with peak RSS
//! under 150 MB.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AK: &str = "bench-ak";
const SK: &str = "bench-sk";
const PROJECT: &str = "bench-project";

struct Measured {
    wall: Duration,
    peak_rss_kib: i64,
    stdout: String,
}

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100_000, 1_000_000]
    } else {
        sizes
    };
    println!(
        "{:>9}  {:<7}  {:>8}  {:>12}  {:>13}",
        "images", "sync", "wall s", "images/s", "peak RSS MiB"
    );
    for images in sizes {
        bench(images);
    }
}

fn bench(images: usize) {
    let (mut sim, url) = start_sim(images);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[database]
url = "sqlite://{db}"
[hss]
endpoint = "{url}"
page_size = 200
requests_per_second = 100000
[[targets]]
name = "bench"
region = "ap-southeast-1"
project_id = "{PROJECT}"
image_types = ["private_image", "shared_image", "instance_image"]
[log]
level = "warn"
"#,
            db = dir.path().join("bench.db").display(),
        ),
    )
    .expect("write config");

    let fresh = sync(&config);
    let resync = sync(&config);
    for (label, m) in [("fresh", &fresh), ("resync", &resync)] {
        println!(
            "{images:>9}  {label:<7}  {:>8.2}  {:>12.0}  {:>13.1}",
            m.wall.as_secs_f64(),
            images as f64 / m.wall.as_secs_f64(),
            m.peak_rss_kib as f64 / 1024.0,
        );
    }
    println!(
        "{images:>9}  re-sync / fresh = {:.2}",
        resync.wall.as_secs_f64() / fresh.wall.as_secs_f64()
    );
    assert!(
        resync
            .stdout
            .lines()
            .all(|l| l.contains("0 new, 0 changed")),
        "the re-sync was not a no-op:\n{}",
        resync.stdout
    );
    let _ = sim.kill();
    let _ = sim.wait();
}

fn start_sim(images: usize) -> (Child, String) {
    let mut sim = Command::new(env!("CARGO_BIN_EXE_hss-sim"))
        .args(["--listen", "127.0.0.1:0", "--images", &images.to_string()])
        .args(["--ak", AK, "--sk", SK, "--project-id", PROJECT])
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

/// Runs `hss-scand sync` and measures it alone.
// The child is reaped by `libc::wait4` (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn sync(config: &std::path::Path) -> Measured {
    let started = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_hss-scand"))
        .arg("--config")
        .arg(config)
        .arg("sync")
        .env("HUAWEICLOUD_SDK_AK", AK)
        .env("HUAWEICLOUD_SDK_SK", SK)
        .stdout(Stdio::piped())
        .spawn()
        .expect("hss-scand starts");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("stdout");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut text).expect("read stdout");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet waited for; both pointers are valid.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(waited, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "hss-scand sync failed:\n{text}"
    );
    Measured {
        wall,
        peak_rss_kib: usage.ru_maxrss,
        stdout: text,
    }
}
