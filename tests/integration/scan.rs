//! Policy and submission against `hss-sim`, through the scan lifecycle: batches and their
//! limits, a scan right after a scan, HSS.0006, throttling, answers that never came or got
//! lost, budgets across restarts, consecutive failures, stuck scans, and SIGKILL at random
//! points of `hss-scand once`.

use std::time::Duration;

use hss_scand::app::TargetClient;
use hss_scand::config::Settings;
use hss_scand::domain::{DueReason, ImageType};
use hss_scand::jobs::StopFlag;
use hss_scand::policy::{Excluded, NotDue, Plan};
use hss_scand::sim::{FaultKind, ScriptedFault, SimConfig, SimHandle};
use hss_scand::store::{Store, now_ms};
use hss_scand::submit::{self, BatchState, ScanReport};
use hss_scand::sync::{SyncOptions, SyncReport, sync_target};

use crate::support::client::{client_for, spawn_sim};

struct Rig {
    dir: tempfile::TempDir,
    sim: SimHandle,
    store: Store,
    settings: Settings,
    clients: Vec<TargetClient>,
}

/// A simulator, a database and settings for one target (`prod`, private and shared images),
/// with `extra` TOML appended.
async fn rig(sim: SimConfig, extra: &str) -> Rig {
    let sim = spawn_sim(sim).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        "[database]\nurl = \"sqlite://{db}\"\n\
         [[targets]]\nname = \"prod\"\nregion = \"ap-southeast-1\"\nproject_id = \"{project}\"\n\
         image_types = [\"private_image\", \"shared_image\"]\n{extra}",
        db = dir.path().join("state.db").display(),
        project = sim.project_id(),
    );
    let settings = Settings::from_toml_str(&text, "test.toml").expect("valid settings");
    let store = Store::open(&settings.database.url).await.expect("store");
    let clients = settings
        .targets
        .iter()
        .map(|target| TargetClient {
            target: target.clone(),
            client: client_for(&sim),
        })
        .collect();
    Rig {
        dir,
        sim,
        store,
        settings,
        clients,
    }
}

impl Rig {
    async fn sync(&self) -> Vec<SyncReport> {
        let options = SyncOptions {
            page_size: 200,
            submit_grace: self.settings.policy.submit_grace,
        };
        let tc = &self.clients[0];
        sync_target(&self.store, &tc.client, &tc.target, options)
            .await
            .expect("sync")
    }

    async fn plan(&self) -> Plan {
        submit::plan(
            &self.store,
            &self.settings.targets,
            &self.settings.policy,
            now_ms(),
        )
        .await
        .expect("plan")
    }

    async fn scan(&self) -> ScanReport {
        let plan = self.plan().await;
        submit::submit(
            &self.store,
            &self.clients,
            plan,
            self.settings.policy.batch_size,
            &StopFlag::default(),
        )
        .await
        .expect("submit")
    }
}

/// A lifecycle that finishes every scan at once, successfully.
fn instant() -> SimConfig {
    let mut config = SimConfig::default();
    config.lifecycle.queue_delay = Duration::ZERO;
    config.lifecycle.scan_duration = Duration::ZERO;
    config.lifecycle.failure_rate = 0.0;
    config
}

#[tokio::test]
async fn batches_respect_the_size_and_type_and_a_second_scan_submits_nothing() {
    let r = rig(instant(), "[policy]\nbatch_size = 97\n").await;
    r.sync().await;
    let plan = r.plan().await;
    let due = plan.due.len();
    assert!(due > 300, "the synthetic account has work: {due}");

    let report = r.scan().await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.submitted(), due);
    for b in &report.batches {
        assert!(b.items <= 97, "batch {} has {} items", b.batch_id, b.items);
    }
    let stats = r.sim.stats();
    assert_eq!(stats.images_submitted as usize, due);
    assert_eq!(stats.batch_scan_calls as usize, report.batches.len());
    let batches = r.store.recent_batches(1000).await.unwrap();
    assert!(batches.iter().all(|b| b.status == "sent" && b.items <= 97));
    let types: std::collections::HashSet<_> = batches.iter().map(|b| &b.image_type).collect();
    assert_eq!(types.len(), 2, "one type per batch, both types covered");

    let again = r.scan().await;
    assert!(
        again.batches.is_empty(),
        "a scan right after a scan: {again:?}"
    );
    assert_eq!(r.sim.stats().batch_scan_calls, stats.batch_scan_calls);
}

#[tokio::test]
async fn hss_0006_splits_the_batch_and_sends_both_halves() {
    let r = rig(instant(), "[policy]\nmax_images_per_run = 40\n").await;
    r.sync().await;
    r.sim.fail_next(ScriptedFault::new(
        Some("batch_scan"),
        1,
        FaultKind::Status {
            status: 400,
            error_code: "HSS.0006".into(),
            retry_after: None,
        },
    ));
    let report = r.scan().await;
    let states: Vec<BatchState> = report.batches.iter().map(|b| b.state).collect();
    assert_eq!(
        states,
        [BatchState::Split, BatchState::Sent, BatchState::Sent]
    );
    assert_eq!(report.submitted(), 40);
    assert_eq!(r.sim.stats().images_submitted, 40);
    let batches = r.store.recent_batches(10).await.unwrap();
    let parent = batches
        .iter()
        .find(|b| b.status == "failed")
        .expect("the split one");
    assert_eq!(parent.error_code.as_deref(), Some("HSS.0006"));
    let children: Vec<_> = batches
        .iter()
        .filter(|b| b.parent_id == Some(parent.id))
        .collect();
    assert_eq!(children.len(), 2);
    assert_eq!(children.iter().map(|b| b.items).sum::<i64>(), 40);
}

#[tokio::test]
async fn throttling_is_waited_out_and_the_batch_goes_through() {
    let r = rig(instant(), "[policy]\nmax_images_per_run = 10\n").await;
    r.sync().await;
    r.sim.fail_next(ScriptedFault::new(
        Some("batch_scan"),
        1,
        FaultKind::Status {
            status: 429,
            error_code: "APIG.0308".into(),
            retry_after: Some(1),
        },
    ));
    let report = r.scan().await;
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(r.sim.stats().throttled, 1);
    assert_eq!(r.sim.stats().images_submitted, 10);
}

#[tokio::test]
async fn an_unanswered_batch_hss_never_got_is_found_lost_and_submitted_again() {
    let r = rig(
        instant(),
        "[policy]\nmax_images_per_run = 12\nsubmit_grace = \"300ms\"\n",
    )
    .await;
    r.sync().await;
    let ids = |plan: &Plan| -> Vec<i64> { plan.due.iter().map(|d| d.id).collect() };
    let unanswered = ids(&r.plan().await);
    r.sim.fail_next(ScriptedFault::status("batch_scan", 1, 503));
    let first = r.scan().await;
    assert_eq!(first.batches[0].state, BatchState::Unknown);
    assert_eq!(
        r.sim.stats().images_submitted,
        0,
        "the 503 came before HSS took it"
    );

    let next = ids(&r.plan().await);
    assert!(
        next.iter().all(|id| !unanswered.contains(id)),
        "never resent blindly while the outcome is unknown"
    );

    tokio::time::sleep(Duration::from_millis(350)).await;
    let synced = r.sync().await;
    let lost: usize = synced
        .iter()
        .filter_map(|s| s.reconciled.as_ref())
        .map(|c| c.lost)
        .sum();
    assert_eq!(lost, 12);

    assert_eq!(
        ids(&r.plan().await),
        unanswered,
        "due again, in the same place of the order"
    );
    let again = r.scan().await;
    assert_eq!(again.submitted(), 12);
    assert_eq!(r.sim.stats().images_submitted, 12);
    assert_eq!(r.sim.stats().duplicate_submissions, 0);
}

#[tokio::test]
async fn an_unanswered_batch_hss_did_get_is_never_sent_twice() {
    let mut sim = SimConfig::default();
    sim.lifecycle.queue_delay = Duration::from_secs(3);
    sim.lifecycle.scan_duration = Duration::from_secs(3);
    let r = rig(
        sim,
        "[policy]\nmax_images_per_run = 12\nsubmit_grace = \"300ms\"\n",
    )
    .await;
    r.sync().await;
    r.sim.fail_next(ScriptedFault::new(
        Some("batch_scan"),
        1,
        FaultKind::LoseAnswer,
    ));
    let first = r.scan().await;
    assert_eq!(first.batches[0].state, BatchState::Unknown);
    assert_eq!(
        r.sim.stats().images_submitted,
        12,
        "HSS took it; only the answer was lost"
    );

    tokio::time::sleep(Duration::from_millis(350)).await;
    let synced = r.sync().await;
    let lost: usize = synced
        .iter()
        .filter_map(|s| s.reconciled.as_ref())
        .map(|c| c.lost)
        .sum();
    assert_eq!(lost, 0, "they moved to waiting_for_scan: received");
    let next = r.scan().await;
    let resent: usize = next.submitted();
    assert!(
        r.plan()
            .await
            .tally
            .not_due
            .get(&NotDue::InFlight)
            .copied()
            .unwrap_or(0)
            >= 12,
        "still in flight"
    );
    assert_eq!(r.sim.stats().duplicate_submissions, 0, "resent {resent}");
}

#[tokio::test]
async fn a_rejected_batch_leaves_its_images_due() {
    let r = rig(instant(), "[policy]\nmax_images_per_run = 8\n").await;
    r.sync().await;
    r.sim.fail_next(ScriptedFault::status("batch_scan", 1, 400));
    let first = r.scan().await;
    assert_eq!(first.batches[0].state, BatchState::Failed);
    assert!(!first.succeeded());
    let second = r.scan().await;
    assert_eq!(
        second.submitted(),
        8,
        "rejected means not taken: due at once"
    );
}

#[tokio::test]
async fn the_daily_budget_holds_across_restarts_and_caps_cut_in_order() {
    let r = rig(
        instant(),
        "[policy]\ndaily_budget = 30\nmax_images_per_run = 20\n",
    )
    .await;
    r.sync().await;
    let full = r.plan().await;
    assert_eq!(full.due.len(), 20);
    assert_eq!(full.cut_by, Some(hss_scand::policy::Cap::MaxImagesPerRun));
    assert_eq!(r.scan().await.submitted(), 20);

    // A new process: the budget used today is read back from the database.
    r.store.close().await;
    let store = Store::open(&r.settings.database.url).await.expect("reopen");
    let plan = submit::plan(&store, &r.settings.targets, &r.settings.policy, now_ms())
        .await
        .unwrap();
    assert_eq!(plan.due.len(), 10, "30 a day, 20 used");
    assert_eq!(plan.cut_by, Some(hss_scand::policy::Cap::DailyBudget));
    let report = submit::submit(&store, &r.clients, plan, 10241, &StopFlag::default())
        .await
        .unwrap();
    assert_eq!(report.submitted(), 10);
    let plan = submit::plan(&store, &r.settings.targets, &r.settings.policy, now_ms())
        .await
        .unwrap();
    assert!(
        plan.due.is_empty() && plan.due_before_caps > 0,
        "budget spent"
    );
    assert_eq!(
        submit::budget_left(&store, &r.settings.policy, now_ms())
            .await
            .unwrap(),
        Some(0)
    );
}

#[tokio::test]
async fn failures_are_counted_in_a_row_and_retries_stop() {
    let mut sim = instant();
    sim.lifecycle.failure_rate = 1.0;
    let r = rig(
        sim,
        "[policy]\nretry_failed_after = \"1ms\"\nmax_failed_attempts = 2\nsubmit_grace = \"1ms\"\n",
    )
    .await;
    r.sync().await;
    // Every due image is submitted, and every scan fails.
    let submitted = r.scan().await.submitted();
    assert!(submitted > 100);

    for round in 1..=2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let synced = r.sync().await;
        let failed: usize = synced
            .iter()
            .filter_map(|s| s.reconciled.as_ref())
            .map(|c| c.failed)
            .sum();
        assert_eq!(failed, submitted, "round {round}: every scan failed");
        let tally = r.plan().await.tally;
        let retry = tally.due.get(&DueReason::FailedRetry).copied().unwrap_or(0) as usize;
        let exhausted = tally
            .not_due
            .get(&NotDue::RetriesExhausted)
            .copied()
            .unwrap_or(0) as usize;
        if round == 1 {
            assert_eq!(
                (retry, exhausted),
                (submitted, 0),
                "one failure: retried: {tally:?}"
            );
            assert_eq!(r.scan().await.submitted(), submitted);
        } else {
            assert_eq!(
                (retry, exhausted),
                (0, submitted),
                "two in a row: given up: {tally:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_scan_that_never_finishes_becomes_stuck() {
    let mut sim = SimConfig::default();
    sim.lifecycle.queue_delay = Duration::from_secs(3600);
    let r = rig(
        sim,
        "[policy]\nmax_images_per_run = 4\nscanning_timeout = \"1s\"\nsubmit_grace = \"1ms\"\n",
    )
    .await;
    r.sync().await;
    assert_eq!(r.scan().await.submitted(), 4);
    tokio::time::sleep(Duration::from_millis(20)).await;
    r.sync().await;
    assert_eq!(
        r.plan().await.tally.not_due.get(&NotDue::InFlight),
        Some(&4)
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tally = r.plan().await.tally;
    assert_eq!(tally.due.get(&DueReason::Stuck), Some(&4), "{tally:?}");
    assert_eq!(tally.not_due.get(&NotDue::InFlight), None);
}

#[tokio::test]
async fn overlong_names_are_never_submitted_and_are_counted() {
    // About one repository (8 images) in 500 has an overlong name.
    let r = rig(
        SimConfig {
            images: 12_000,
            ..instant()
        },
        "",
    )
    .await;
    r.sync().await;
    let plan = r.plan().await;
    let too_long = plan
        .tally
        .excluded
        .get(&Excluded::FieldTooLong)
        .copied()
        .unwrap_or(0);
    assert!(
        too_long > 0,
        "the synthetic account has some: {:?}",
        plan.tally
    );
    let due = r.store.due_images(&plan.due).await.expect("due images");
    assert_eq!(due.len(), plan.due.len());
    assert!(due.iter().all(|d| d.namespace.chars().count() <= 64
        && d.image_name.chars().count() <= 128
        && d.image_version.chars().count() <= 128));
    r.scan().await;
    assert_eq!(r.sim.stats().unknown_images, 0);
}

/// Writes a configuration for the binary.
fn config_for(r: &Rig, extra: &str) -> String {
    let path = r.dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[database]\nurl = \"{db}\"\n[hss]\nendpoint = \"{url}\"\nrequests_per_second = 1000\n\
             [[targets]]\nname = \"prod\"\nregion = \"ap-southeast-1\"\nproject_id = \"{project}\"\n\
             image_types = [\"private_image\", \"shared_image\"]\n{extra}",
            db = r.settings.database.url,
            url = r.sim.base_url(),
            project = r.sim.project_id(),
        ),
    )
    .expect("write config");
    path.display().to_string()
}

async fn run(args: Vec<String>) -> crate::support::app::Outcome {
    let d = SimConfig::default();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::support::app::run_hss_scand(
            &args,
            &[
                ("HUAWEICLOUD_SDK_AK", d.ak.as_str()),
                ("HUAWEICLOUD_SDK_SK", d.sk.as_str()),
            ],
        )
    })
    .await
    .expect("ran")
}

#[tokio::test]
async fn plan_json_then_scan_submits_exactly_the_plan() {
    let r = rig(instant(), "").await;
    let config = config_for(&r, "[policy]\nmax_images_per_run = 25\n");
    let sync = run(vec!["--config".into(), config.clone(), "sync".into()]).await;
    assert_eq!(sync.code, Some(0), "{}", sync.stderr);

    let plan = run(vec![
        "--config".into(),
        config.clone(),
        "plan".into(),
        "--output".into(),
        "json".into(),
    ])
    .await;
    assert_eq!(plan.code, Some(0), "{}", plan.stderr);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&plan.stdout).expect("JSON array");
    assert_eq!(rows.len(), 25);
    for row in &rows {
        for key in [
            "target",
            "image_type",
            "namespace",
            "image_name",
            "image_version",
            "instance_id",
            "reason",
            "rule",
            "priority",
        ] {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
    }
    let reasons: Vec<&str> = rows.iter().filter_map(|r| r["reason"].as_str()).collect();
    let rank = |r: &str| DueReason::parse(r).expect("a known reason");
    assert!(
        reasons.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
        "order: {reasons:?}"
    );
    assert_eq!(r.sim.stats().batch_scan_calls, 0, "plan submits nothing");

    let dry = run(vec![
        "--config".into(),
        config.clone(),
        "scan".into(),
        "--dry-run".into(),
    ])
    .await;
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    assert!(dry.stdout.contains("25 due"), "{}", dry.stdout);
    assert_eq!(
        r.sim.stats().batch_scan_calls,
        0,
        "a dry run submits nothing"
    );

    let scan = run(vec!["--config".into(), config.clone(), "scan".into()]).await;
    assert_eq!(scan.code, Some(0), "{}", scan.stderr);
    assert_eq!(r.sim.stats().images_submitted, 25);

    let status = run(vec![
        "--config".into(),
        config,
        "status".into(),
        "--output".into(),
        "json".into(),
    ])
    .await;
    let status: serde_json::Value = serde_json::from_str(&status.stdout).expect("status JSON");
    assert_eq!(status["budget"]["used_today"], 25);
    let items: i64 = status["batches"]
        .as_array()
        .expect("batches")
        .iter()
        .map(|b| b["items"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(items, 25);
    assert!(
        status["policy"]["due"]
            .as_object()
            .is_some_and(|d| !d.is_empty())
    );
}

/// SIGKILL at random points of `hss-scand once`, at least 20 times; then the database still opens, no
/// image was submitted while an earlier submission of it was in flight, and a final `once`
/// leaves nothing due.
#[tokio::test]
async fn sigkill_at_random_points_loses_nothing_and_pays_nothing_twice() {
    use rand::{Rng, SeedableRng};
    let mut sim = SimConfig {
        images: 600,
        ..SimConfig::default()
    };
    sim.lifecycle.queue_delay = Duration::from_millis(400);
    sim.lifecycle.scan_duration = Duration::from_millis(400);
    sim.lifecycle.failure_rate = 0.0;
    let r = rig(sim, "").await;
    let config = config_for(&r, "[policy]\nbatch_size = 40\nsubmit_grace = \"500ms\"\n");
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let d = SimConfig::default();
    let mut killed = 0;
    for _ in 0..30 {
        // New images each time, so that every run has something to submit.
        r.sim.add_images(ImageType::Private, 25);
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hss-scand"))
            .args(["--config", &config, "once"])
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
    }
    assert!(
        killed >= 20,
        "seed {seed}: only {killed} runs were killed mid-way"
    );

    let store = Store::open(&r.settings.database.url)
        .await
        .expect("the database opens");
    store.close().await;
    // Long enough for every lost batch to be provably lost, and every scan to finish.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let last = run(vec!["--config".into(), config.clone(), "once".into()]).await;
    assert_eq!(
        last.code,
        Some(0),
        "seed {seed}: {}\n{}",
        last.stdout,
        last.stderr
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let sync = run(vec!["--config".into(), config.clone(), "sync".into()]).await;
    assert_eq!(sync.code, Some(0), "{}", sync.stderr);

    let stats = r.sim.stats();
    assert_eq!(
        stats.duplicate_submissions, 0,
        "seed {seed}: paid twice for an image in flight"
    );
    let plan = run(vec![
        "--config".into(),
        config,
        "plan".into(),
        "--output".into(),
        "json".into(),
    ])
    .await;
    let rows: Vec<serde_json::Value> = serde_json::from_str(&plan.stdout).expect("plan JSON");
    assert!(
        rows.is_empty(),
        "seed {seed}: still due after the final once: {}",
        plan.stdout
    );
    assert!(stats.images_submitted > 0);
}
