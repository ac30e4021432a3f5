//! Crash safety of the real binary: `hss-scand once` killed with SIGKILL at random points.
//! The binary runs on the system clock, so this is the one place that waits in real time:
//! for the kill points, and for lost batches to become provably lost.

use std::time::Duration;

use hss_scand::domain::{Clock, ImageType};
use hss_scand::sim::SimConfig;
use hss_scand::store;

use crate::support::config::ConfigText;
use crate::support::rig::spawn_app;

#[tokio::test]
async fn sigkill_through_the_current_api_loses_nothing_and_pays_nothing_twice() {
    sigkill_at_random_points("current").await;
}

#[tokio::test]
async fn sigkill_through_the_deprecated_api_loses_nothing_and_pays_nothing_twice() {
    sigkill_at_random_points("legacy").await;
}

/// SIGKILL at random points of `hss-scand once` through `api`, at least 20 times; then the
/// database still opens, no image was submitted while an earlier submission of it was in
/// flight, and a final `once` leaves nothing due.
async fn sigkill_at_random_points(api: &str) {
    use rand::{Rng, SeedableRng};
    let mut sim = SimConfig {
        images: 600,
        ..SimConfig::default()
    };
    sim.lifecycle.queue_delay = Duration::from_millis(400);
    sim.lifecycle.scan_duration = Duration::from_millis(400);
    sim.lifecycle.failure_rate = 0.0;
    let r = spawn_app(sim, |c| c).await;
    let settings = |c: ConfigText| {
        c.set("hss.api", &format!("{api:?}"))
            .set("policy.batch_size", "40")
            .set("policy.submit_grace", r#""500ms""#)
    };
    // A killed run holds the lease until it expires: briefly, here. (A run that loses it
    // under load stops early, which is one more kind of interruption.)
    let config = r.config_file(|c| {
        settings(c)
            .set("daemon.lease_ttl", r#""100ms""#)
            .set("daemon.lease_renew_every", r#""30ms""#)
    });
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let d = SimConfig::default();
    let mut killed = 0;
    for _ in 0..30 {
        // New images each time, so that every run has something to submit.
        r.sim.add_images(ImageType::Private, 25);
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hss-scand"))
            .arg("--config")
            .arg(&config)
            .arg("once")
            .env_clear()
            .env("HUAWEICLOUD_SDK_AK", &d.ak)
            .env("HUAWEICLOUD_SDK_SK", &d.sk)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        tokio::time::sleep(Duration::from_millis(rng.random_range(1..160))).await;
        if child.try_wait().expect("poll").is_none() {
            child.start_kill().expect("SIGKILL");
            killed += 1;
        }
        child.wait().await.expect("reaped");
        // The killed run's lease expires before the next run starts.
        tokio::time::sleep(Duration::from_millis(110)).await;
    }
    assert!(
        killed >= 20,
        "{api}, seed {seed}: only {killed} runs were killed mid-way"
    );

    let store = store::open(&r.app.settings.database.url, Clock::system())
        .await
        .expect("the database opens");
    store.close().await;
    // Long enough for every lost batch to be provably lost, and every scan to finish.
    tokio::time::sleep(Duration::from_millis(900)).await;
    // The last run with the usual lease, which no load makes it lose.
    let config = r.config_file(settings);
    let last = r.cli(&config, &["once"]).await;
    assert_eq!(
        last.code,
        Some(0),
        "{api}, seed {seed}: {}\n{}",
        last.stdout,
        last.stderr
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let sync = r.cli(&config, &["sync"]).await;
    assert_eq!(sync.code, Some(0), "{}", sync.stderr);

    let stats = r.sim.stats();
    assert_eq!(
        stats.duplicate_submissions, 0,
        "{api}, seed {seed}: paid twice for an image in flight"
    );
    let plan = r.cli(&config, &["plan", "--output", "json"]).await;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&plan.stdout).expect("plan JSON");
    assert!(
        rows.is_empty(),
        "{api}, seed {seed}: still due after the final once: {}",
        plan.stdout
    );
    assert!(stats.images_submitted > 0);
}
