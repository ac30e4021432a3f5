//! Planning and submission: `cargo bench --bench scan`.
//!
//! 1. `plan` over 1,000,000 images in the database (synced from a release `hss-sim`): the
//!    due list computed in-process (load, policy, order), and the `hss-scand plan` command.
//!    Target: under 1 s.
//! 2. 50,000 due images submitted by `hss-scand scan`: batch-scan calls, wall time and the
//!    peak RSS of the `hss-scand` process (from `wait4`). Target: 5 calls, under 50 MB.

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Instant;

use common::{ConfigText, bench_config, run, start_sim};
use hss_scand::config::Settings;
use hss_scand::domain::Clock;
use hss_scand::pipeline::plan::plan;
use hss_scand::store;

fn main() {
    // Children first: a child forked from this process starts with its resident pages, and
    // its peak RSS would include them once this process holds a million-image plan.
    submit_fifty_thousand();
    plan_over_a_million();
}

fn plan_over_a_million() {
    let (mut sim, url) = start_sim(1_000_000, &["--queue-delay", "1h"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let all = ["private_image", "shared_image", "instance_image"];
    let config = write_config(dir.path(), &url, &all, "default", |c| c);
    let synced = run(&config, &["sync"]);
    println!(
        "setup: synced 1,000,000 images in {:.1} s",
        synced.wall.as_secs_f64()
    );

    let cli = run(&config, &["plan", "--output", "json"]);
    println!(
        "hss-scand plan --output json, 1,000,000 images: {:.3} s wall (printing every due row), peak RSS {:.1} MiB",
        cli.wall.as_secs_f64(),
        cli.peak_rss_mib()
    );
    let capped = write_config(dir.path(), &url, &all, "capped", |c| {
        c.set("policy.max_images_per_run", "10000")
    });
    let cli = run(&capped, &["plan", "--output", "json"]);
    println!(
        "hss-scand plan --output json with max_images_per_run = 10000: {:.3} s wall, peak RSS {:.1} MiB",
        cli.wall.as_secs_f64(),
        cli.peak_rss_mib()
    );
    in_process(&config, "default policy");
    let with_rules = write_config(dir.path(), &url, &all, "rules", |c| {
        c.raw(
            "[[policy.rules]]\nnamespace = \"prod-*\"\npriority = 5\n\
             [[policy.rules]]\nimage = \"*-legacy\"\nskip = true\n",
        )
    });
    in_process(&with_rules, "two [[policy.rules]] (names read)");

    let _ = sim.kill();
    let _ = sim.wait();
}

/// `pipeline::plan::plan` in this process, three times (the first warms the page cache), then the
/// names of every due image read as `plan --output json` pages through them.
fn in_process(config: &Path, what: &str) {
    let settings = Settings::load(config).expect("bench config");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let clock = Clock::system();
        let store = store::open(&settings.database.url, clock.clone())
            .await
            .expect("store");
        let mut times = Vec::new();
        let mut last = None;
        for _ in 0..3 {
            let started = Instant::now();
            let plan = plan(&store, &settings.targets, &settings.policy, clock.now_ms())
                .await
                .expect("plan");
            times.push(started.elapsed().as_secs_f64());
            last = Some(plan);
        }
        let plan = last.expect("three plans");
        let started = Instant::now();
        let mut named = 0;
        for page in plan.due.chunks(10_000) {
            named += store.due_images(page).await.expect("names").len();
        }
        println!(
            "plan, in-process, 1,000,000 images, {what}: {} due in {:.3} / {:.3} / {:.3} s; \
             names of all {named} read in {:.3} s",
            plan.due.len(),
            times[0],
            times[1],
            times[2],
            started.elapsed().as_secs_f64()
        );
        store.close().await;
    });
}

fn submit_fifty_thousand() {
    // Enough private images that more than 50,000 are due; the cap takes exactly 50,000.
    let (mut sim, url) = start_sim(80_000, &["--queue-delay", "1h"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &url, &["private_image"], "scan", |c| {
        c.set("policy.max_images_per_run", "50000")
    });
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
        scan.peak_rss_mib()
    );
    assert!(submitted.contains("50000 submitted"), "{}", scan.stdout);
    let _ = sim.kill();
    let _ = sim.wait();
}

/// The benchmark's configuration for `types`, as `adjust` changes it, in a file of its own.
fn write_config(
    dir: &Path,
    url: &str,
    types: &[&str],
    name: &str,
    adjust: impl FnOnce(ConfigText) -> ConfigText,
) -> std::path::PathBuf {
    let path = dir.join(format!("bench-{name}.toml"));
    adjust(bench_config(dir, url, types)).write(&path);
    path
}
