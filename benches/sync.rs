//! Sync throughput and memory: `cargo bench --bench sync` (add `-- 100000` to pick sizes).
//!
//! For each size, starts a release `hss-sim` on loopback with that many images, then runs the
//! real `hss-scand sync` twice against it — a fresh sync into an empty database and an
//! unchanged re-sync — and prints wall time, images per second and the peak RSS of the
//! `hss-scand` process alone (from `wait4`, so neither the simulator's memory nor a database
//! server's is counted). With HSS_SCAND_BENCH_POSTGRES_URL set (a server whose role may create
//! databases) each size runs on SQLite and on a fresh PostgreSQL database, side by side.
//!
//! Targets on a 2-core machine: fresh 100k < 5 s; re-sync ≤ 1/3 of fresh; 1M with peak RSS
//! under 150 MB; PostgreSQL within 3× of SQLite for a fresh sync of 100k.

#[path = "common/mod.rs"]
mod common;

use common::{BenchDb, Measured, bench_config, run, start_sim};

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
        "{:>9}  {:<8}  {:<7}  {:>8}  {:>12}  {:>13}",
        "images", "database", "sync", "wall s", "images/s", "peak RSS MiB"
    );
    for images in sizes {
        bench(images);
    }
}

fn bench(images: usize) {
    let (mut sim, url) = start_sim(images, &[]);
    let mut fresh_by_db = Vec::new();
    for db in BenchDb::all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("bench.toml");
        db.configure(
            bench_config(
                dir.path(),
                &url,
                &["private_image", "shared_image", "instance_image"],
            )
            .set("hss.page_size", "200"),
        )
        .write(&config);

        let fresh = run(&config, &["sync"]);
        let resync = run(&config, &["sync"]);
        for (label, m) in [("fresh", &fresh), ("resync", &resync)] {
            println!(
                "{images:>9}  {:<8}  {label:<7}  {:>8.2}  {:>12.0}  {:>13.1}",
                db.label(),
                m.wall.as_secs_f64(),
                images as f64 / m.wall.as_secs_f64(),
                m.peak_rss_mib(),
            );
        }
        println!(
            "{images:>9}  {:<8}  re-sync / fresh = {:.2}",
            db.label(),
            resync.wall.as_secs_f64() / fresh.wall.as_secs_f64()
        );
        assert_no_op(&resync);
        fresh_by_db.push((db.label(), fresh));
    }
    if let [(_, sqlite), (_, postgres)] = &fresh_by_db[..] {
        println!(
            "{images:>9}  postgres / sqlite, fresh sync = {:.2}",
            postgres.wall.as_secs_f64() / sqlite.wall.as_secs_f64()
        );
    }
    let _ = sim.kill();
    let _ = sim.wait();
}

fn assert_no_op(resync: &Measured) {
    assert!(
        resync
            .stdout
            .lines()
            .all(|l| l.contains("0 new, 0 changed")),
        "the re-sync was not a no-op:\n{}",
        resync.stdout
    );
}
