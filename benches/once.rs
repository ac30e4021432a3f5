//! A whole `hss-scand once` (sync, plan, submit) against a fresh `hss-sim` and a fresh
//! database: `cargo bench --bench once` (add sizes to pick them: `-- 100000`).
//!
//! Prints the CPU seconds (user + system) and the peak RSS of the `hss-scand` process alone,
//! and its wall time; then, for the scan alone (`sync`, then `scan` measured), the database
//! reads per submitted image, which must not grow with the size of the database.
//!
//! Targets on a 2-core machine: `once` at 100,000 images ≤ 0.9 CPU-s and < 64 MiB; at
//! 1,000,000 ≤ 8.5 CPU-s and < 96 MiB.

#[path = "common/mod.rs"]
mod common;

use common::{bench_config, run, start_sim};

const TYPES: [&str; 3] = ["private_image", "shared_image", "instance_image"];

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let (once_sizes, read_sizes) = if sizes.is_empty() {
        (vec![100_000, 1_000_000], vec![65_000, 1_000_000])
    } else {
        (sizes.clone(), sizes)
    };
    println!(
        "{:>9}  {:<5}  {:>8}  {:>8}  {:>13}",
        "images", "run", "CPU s", "wall s", "peak RSS MiB"
    );
    for images in once_sizes {
        once(images);
    }
    println!(
        "\n{:>9}  {:>10}  {:>13}  {:>15}",
        "images", "submitted", "scan reads", "reads per image"
    );
    for images in read_sizes {
        scan_reads(images);
    }
}

fn once(images: usize) {
    let (mut sim, url) = start_sim(images, &["--queue-delay", "1h"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bench.toml");
    bench_config(dir.path(), &url, &TYPES).write(&config);
    let m = run(&config, &["once"]);
    println!(
        "{images:>9}  {:<5}  {:>8.2}  {:>8.2}  {:>13.1}",
        "once",
        m.cpu.as_secs_f64(),
        m.wall.as_secs_f64(),
        m.peak_rss_mib()
    );
    let _ = sim.kill();
    let _ = sim.wait();
}

/// `sync`, then `scan` measured: read calls per submitted image.
fn scan_reads(images: usize) {
    let (mut sim, url) = start_sim(images, &["--queue-delay", "1h"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bench.toml");
    bench_config(dir.path(), &url, &TYPES).write(&config);
    run(&config, &["sync"]);
    let scan = run(&config, &["scan"]);
    let submitted = submitted(&scan.tail);
    println!(
        "{images:>9}  {submitted:>10}  {:>13}  {:>15.2}",
        scan.read_calls,
        scan.read_calls as f64 / submitted.max(1) as f64
    );
    let _ = sim.kill();
    let _ = sim.wait();
}

/// The `N submitted` of `scan`'s total line.
fn submitted(stdout: &str) -> u64 {
    stdout
        .lines()
        .filter(|l| l.starts_with("scan:"))
        .find_map(|l| {
            let (before, _) = l.split_once(" submitted")?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .unwrap_or(0)
}
