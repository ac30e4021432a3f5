//! Planning and submission: `cargo bench --bench scan`.
//!
//! 1. 50,000 due images submitted by `hss-scand scan`: batch-scan calls, wall time and the
//!    peak RSS of the `hss-scand` process (from `wait4`). Target: one call per
//!    `policy.batch_size` images (50 at the default 1,000), under 50 MB.
//! 2. `plan` over 1,000,000 images in the database (synced from a release `hss-sim`): the
//!    due list computed in-process (load, policy, order), and the `hss-scand plan` command.
//!    Target: under 1 s.
//!
//! With HSS_SCAND_BENCH_POSTGRES_URL set (a server whose role may create databases) both run
//! on SQLite and on a fresh PostgreSQL database, and each figure is printed for both, side by
//! side. Target: PostgreSQL within 3× of SQLite for the plan.

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Instant;

use common::{BenchDb, ConfigText, bench_config, run, start_sim};
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

/// One figure per database, printed as one line.
struct Row {
    what: String,
    by_db: Vec<(&'static str, String)>,
    /// Seconds on each database, for the PostgreSQL / SQLite ratio.
    seconds: Vec<f64>,
}

impl Row {
    fn print(&self) {
        let cells: Vec<String> = self
            .by_db
            .iter()
            .map(|(db, figure)| format!("{db}: {figure}"))
            .collect();
        let ratio = match self.seconds[..] {
            [sqlite, postgres] => format!("  (postgres / sqlite = {:.2})", postgres / sqlite),
            _ => String::new(),
        };
        println!("{}\n    {}{ratio}", self.what, cells.join("  |  "));
    }
}

fn print_rows(rows: &[Row]) {
    for row in rows {
        row.print();
    }
}

/// Adds `figure` (and its `seconds`) on `db` to the row `what`, creating the row.
fn record(rows: &mut Vec<Row>, what: &str, db: &BenchDb, seconds: f64, figure: String) {
    let at = match rows.iter().position(|r| r.what == what) {
        Some(at) => at,
        None => {
            rows.push(Row {
                what: what.to_owned(),
                by_db: Vec::new(),
                seconds: Vec::new(),
            });
            rows.len() - 1
        }
    };
    rows[at].by_db.push((db.label(), figure));
    rows[at].seconds.push(seconds);
}

fn plan_over_a_million() {
    let (mut sim, url) = start_sim(1_000_000, &["--queue-delay", "1h"]);
    let all = ["private_image", "shared_image", "instance_image"];
    let mut rows = Vec::new();
    // Every child process on every database first (see `main`), then the in-process plans.
    let mut synced = Vec::new();
    for db in BenchDb::all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = write_config(dir.path(), &db, &url, &all, "default", |c| c);
        let sync = run(&config, &["sync"]);
        let s = sync.wall.as_secs_f64();
        record(
            &mut rows,
            "setup: sync of 1,000,000 images",
            &db,
            s,
            format!("{s:.1} s"),
        );

        let cli = run(&config, &["plan", "--output", "json"]);
        let s = cli.wall.as_secs_f64();
        record(
            &mut rows,
            "hss-scand plan --output json, 1,000,000 images (printing every due row)",
            &db,
            s,
            format!("{s:.3} s wall, peak RSS {:.1} MiB", cli.peak_rss_mib()),
        );
        let capped = write_config(dir.path(), &db, &url, &all, "capped", |c| {
            c.set("policy.max_images_per_run", "10000")
        });
        let cli = run(&capped, &["plan", "--output", "json"]);
        let s = cli.wall.as_secs_f64();
        record(
            &mut rows,
            "hss-scand plan --output json with max_images_per_run = 10000",
            &db,
            s,
            format!("{s:.3} s wall, peak RSS {:.1} MiB", cli.peak_rss_mib()),
        );
        let with_rules = write_config(dir.path(), &db, &url, &all, "rules", |c| {
            c.raw(
                "[[policy.rules]]\nnamespace = \"prod-*\"\npriority = 5\n\
                 [[policy.rules]]\nimage = \"*-legacy\"\nskip = true\n",
            )
        });
        synced.push((db, dir, config, with_rules));
    }
    for (db, _dir, config, with_rules) in &synced {
        in_process(&mut rows, db, config, "default policy");
        in_process(
            &mut rows,
            db,
            with_rules,
            "two [[policy.rules]] (names read)",
        );
    }
    print_rows(&rows);
    let _ = sim.kill();
    let _ = sim.wait();
}

/// `pipeline::plan::plan` in this process, three times (the first warms the caches), then
/// the names of every due image read as `plan --output json` pages through them.
fn in_process(rows: &mut Vec<Row>, db: &BenchDb, config: &Path, what: &str) {
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
        let names = started.elapsed().as_secs_f64();
        record(
            rows,
            &format!("plan, in-process, 1,000,000 images, {what}"),
            db,
            times[2],
            format!(
                "{} due in {:.3} / {:.3} / {:.3} s",
                plan.due.len(),
                times[0],
                times[1],
                times[2]
            ),
        );
        record(
            rows,
            &format!("names of every due image, {what}"),
            db,
            names,
            format!("{named} read in {names:.3} s"),
        );
        store.close().await;
    });
}

fn submit_fifty_thousand() {
    // Enough private images that more than 50,000 are due; the cap takes exactly 50,000.
    let (mut sim, url) = start_sim(80_000, &["--queue-delay", "1h"]);
    let mut rows = Vec::new();
    for db in BenchDb::all() {
        // A fresh simulator per database: the first run's submissions made its images not
        // due any more.
        let (mut sim, url) = if db.label() == "sqlite" {
            (None, url.clone())
        } else {
            let (sim, url) = start_sim(80_000, &["--queue-delay", "1h"]);
            (Some(sim), url)
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let config = write_config(dir.path(), &db, &url, &["private_image"], "scan", |c| {
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
        assert!(submitted.contains("50000 submitted"), "{}", scan.stdout);
        let s = scan.wall.as_secs_f64();
        record(
            &mut rows,
            "hss-scand scan of 50,000 due images",
            &db,
            s,
            format!(
                "{calls} batch-scan calls, {s:.2} s wall, peak RSS {:.1} MiB ({submitted})",
                scan.peak_rss_mib()
            ),
        );
        if let Some(sim) = sim.as_mut() {
            let _ = sim.kill();
            let _ = sim.wait();
        }
    }
    print_rows(&rows);
    let _ = sim.kill();
    let _ = sim.wait();
}

/// The benchmark's configuration for `types` on `db`, as `adjust` changes it, in a file of
/// its own.
fn write_config(
    dir: &Path,
    db: &BenchDb,
    url: &str,
    types: &[&str],
    name: &str,
    adjust: impl FnOnce(ConfigText) -> ConfigText,
) -> std::path::PathBuf {
    let path = dir.join(format!("bench-{name}.toml"));
    adjust(db.configure(bench_config(dir, url, types))).write(&path);
    path
}
