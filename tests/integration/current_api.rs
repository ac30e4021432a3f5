//! HSS's current image APIs end to end against `hss-sim`: Harbor and JFrog images listed and
//! scanned through scan tasks that are found and followed, `auto` and its fall-back, the
//! pay-per-scan switch, HSS's own periodic policy, and what HSS cannot scan.

use std::time::Duration;

use hss_scand::domain::ImageType;
use hss_scand::policy::Excluded;
use hss_scand::sim::{ScanPolicy, SimConfig};
use hss_scand::status;
use hss_scand::store::SyncOutcome;

use crate::support::rig::{TestApp, spawn_app};
use crate::support::sim::{SimClient, test_config};

/// An instant account with `registries` third-party registries connected.
fn with_registries(registries: usize) -> SimConfig {
    SimConfig {
        third_party_registries: registries,
        registry_images: 120,
        ..test_config(600)
    }
}

async fn status_of(r: &TestApp) -> status::StatusReport {
    let app = &r.app;
    status::gather(
        &app.store,
        &app.targets(),
        &app.settings.policy,
        r.clock.now_ms(),
    )
    .await
    .expect("status")
}

#[tokio::test]
async fn harbor_and_jfrog_images_are_listed_beside_swr_ones() {
    let r = spawn_app(with_registries(3), |c| {
        c.target("all", "sim-project", &["private_image", "harbor", "jfrog"])
    })
    .await;
    let reports = r.sync().await;
    let of = |target: &str, t: &str| {
        reports
            .iter()
            .find(|r| r.target == target && r.image_type.as_str() == t)
            .expect("a report")
    };
    for t in ["private_image", "harbor", "jfrog"] {
        let report = of("all", t);
        assert_eq!(report.outcome, SyncOutcome::Complete, "{report:?}");
        assert_eq!(report.counts.seen as usize, r.sim.live_images(t), "{t}");
    }
    let harbor = r
        .app
        .store
        .present_images("all", &ImageType::Harbor)
        .await
        .expect("present");
    assert_eq!(harbor.len(), r.sim.live_images("harbor"));
    let registries: std::collections::BTreeSet<&str> =
        harbor.iter().map(|i| i.registry_name.as_str()).collect();
    assert_eq!(registries.len(), 2, "two Harbor registries: {registries:?}");
    assert!(harbor.iter().all(|i| i.hss_record_id.is_some()
        && !i.image_digest.is_empty()
        && i.registry_type == "Harbor"
        && i.latest_sync_time.is_some()));
    let status = status_of(&r).await;
    assert!(
        status.targets.iter().all(|t| t.api == "current"),
        "{:?}",
        status.targets
    );
}

#[tokio::test]
async fn a_scan_task_is_found_recorded_and_followed_until_it_ends() {
    let r = spawn_app(with_registries(1), |c| {
        c.set("hss.api", r#""current""#)
            .set("policy.max_images_per_run", "30")
            .target("reg", "sim-project", &["harbor"])
    })
    .await;
    r.sync().await;
    let report = r.scan().await;
    assert!(report.succeeded(), "{report:?}");
    assert!(
        report.batches.iter().all(|b| b.task_id.is_some()),
        "every batch's task was found: {:?}",
        report.batches
    );
    let stats = r.sim.stats();
    assert_eq!(stats.images_submitted, 30);
    assert_eq!(stats.duplicate_submissions, 0);
    assert_eq!(stats.batch_scan_calls, 0, "only the current API");
    let before = r.app.store.recent_batches(10).await.expect("batches");
    assert!(
        before
            .iter()
            .all(|b| b.api == "current" && b.task_id.is_some())
    );

    // The instant lifecycle has finished every scan: the next sync sees the tasks end.
    r.advance(Duration::from_secs(180));
    r.sync().await;
    let after = r.app.store.recent_batches(10).await.expect("batches");
    assert!(
        after.iter().all(|b| b.task_progress == Some(100)),
        "{after:?}"
    );
    assert!(
        r.app
            .store
            .open_tasks("prod")
            .await
            .expect("open")
            .is_empty()
    );
}

#[tokio::test]
async fn auto_falls_back_only_when_the_current_api_does_not_exist() {
    let r = spawn_app(test_config(400), |c| c).await;
    r.sim.set_current_apis_missing(true);
    let reports = r.sync().await;
    assert!(
        reports.iter().all(|r| r.outcome == SyncOutcome::Complete),
        "listed through the deprecated API: {reports:?}"
    );
    let report = r.scan().await;
    assert!(report.succeeded() && report.submitted() > 0, "{report:?}");
    let stats = r.sim.stats();
    assert!(stats.batch_scan_calls > 0 && stats.scan_task_calls == 0);
    let status = status_of(&r).await;
    assert_eq!(status.targets[0].api, "legacy_fallback");
    assert!(status.targets[0].fell_back_at.is_some());
    let batches = r.app.store.recent_batches(100).await.expect("batches");
    assert!(batches.iter().all(|b| b.api == "legacy"));
}

#[tokio::test]
async fn a_failing_current_api_is_not_taken_for_a_missing_one() {
    let r = spawn_app(test_config(400), |c| c.set("hss.max_retries", "0")).await;
    r.sim.fail_next(hss_scand::sim::ScriptedFault::status(
        "list_registry_images",
        20,
        503,
    ));
    let reports = r.sync().await;
    assert!(reports.iter().all(|r| r.outcome == SyncOutcome::Failed));
    assert_eq!(
        status_of(&r).await.targets[0].api,
        "undecided",
        "a 503 decides nothing"
    );
    // A count of 0 cancels what is left of the fault.
    r.sim.fail_next(hss_scand::sim::ScriptedFault::status(
        "list_registry_images",
        0,
        503,
    ));
    let reports = r.sync().await;
    assert!(
        reports.iter().all(|r| r.outcome == SyncOutcome::Complete),
        "{reports:?}"
    );
    assert_eq!(status_of(&r).await.targets[0].api, "current");
}

#[tokio::test]
async fn each_api_choice_uses_only_its_own_endpoints() {
    // `current` never falls back; `legacy` never tries the current API.
    let r = spawn_app(test_config(300), |c| {
        c.set("hss.api", r#""current""#).set("hss.max_retries", "0")
    })
    .await;
    r.sim.set_current_apis_missing(true);
    assert!(
        r.sync()
            .await
            .iter()
            .all(|r| r.outcome == SyncOutcome::Failed)
    );
    assert_eq!(r.sim.stats().requests.get("list_swr_images"), None);

    let r = spawn_app(test_config(300), |c| c.set("hss.api", r#""legacy""#)).await;
    r.sim.set_deprecated_apis_removed(true);
    assert!(
        r.sync()
            .await
            .iter()
            .all(|r| r.outcome == SyncOutcome::Failed)
    );
    assert_eq!(r.sim.stats().requests.get("list_registry_images"), None);

    let r = spawn_app(test_config(300), |c| c).await;
    r.sim.set_deprecated_apis_removed(true);
    assert!(
        r.sync()
            .await
            .iter()
            .all(|r| r.outcome == SyncOutcome::Complete),
        "auto on a region without the deprecated APIs"
    );
}

#[tokio::test]
async fn a_scan_while_pay_per_scan_is_off_fails_and_says_so() {
    let r = spawn_app(test_config(300), |c| c).await;
    r.sync().await;
    r.sim.set_pay_per_scan(false);
    let report = r.scan().await;
    assert!(!report.succeeded());
    assert!(report.batches.is_empty(), "nothing was sent: {report:?}");
    let why = report.stopped.unwrap_or_default();
    assert!(why.contains("switched off"), "{why}");
    assert_eq!(r.sim.stats().scan_task_calls, 0);

    let config = r.config_file(|c| c);
    let out = r.cli(&config, &["scan"]).await;
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("switched off"), "{}", out.stderr);
    // The next sync reads the switch for `status`.
    r.sync().await;
    let status = r.cli(&config, &["status"]).await;
    assert!(
        status
            .stdout
            .contains("pay-per-use image scanning is switched off"),
        "{}",
        status.stdout
    );
}

#[tokio::test]
async fn hss_own_periodic_scan_is_warned_about_and_shown() {
    let r = spawn_app(with_registries(1), |c| c).await;
    r.sim
        .set_scan_policy(ScanPolicy {
            enabled: true,
            scan_cycle: 3,
            registries: vec!["harbor-01".into()],
            ..ScanPolicy::default()
        })
        .expect("a valid policy");
    let config = r.config_file(|c| c);
    let out = r.cli(&config, &["sync"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("HSS's own periodic image scan is on"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", out.stderr);
    assert!(
        warnings[0].contains("every 3 days") && warnings[0].contains("harbor-01"),
        "{}",
        warnings[0]
    );
    let json = r.cli(&config, &["status", "--output", "json"]).await;
    let status: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let policy = &status["targets"][0]["native_scan_policy"];
    assert_eq!(policy["enabled"], true, "{policy}");
    assert_eq!(policy["scan_cycle_days"], 3);
    let table = r.cli(&config, &["status"]).await;
    assert!(
        table.stdout.contains("ON: every 3 days"),
        "{}",
        table.stdout
    );
}

#[tokio::test]
async fn what_hss_cannot_scan_is_counted_under_its_reason_and_never_submitted() {
    let r = spawn_app(
        SimConfig {
            multi_arch_share: 0.2,
            expired_shared_share: 0.3,
            ..test_config(1_500)
        },
        |c| c,
    )
    .await;
    r.sync().await;
    let plan = r.plan().await;
    let excluded = |why| plan.tally.excluded.get(&why).copied().unwrap_or(0);
    assert!(
        excluded(Excluded::MultiArchitecture) > 0,
        "{:?}",
        plan.tally
    );
    assert!(excluded(Excluded::ExpiredShare) > 0, "{:?}", plan.tally);
    let report = r.scan().await;
    assert!(report.succeeded(), "{report:?}");
    let stats = r.sim.stats();
    assert_eq!(stats.refused_submissions, 0, "none submitted");
    assert_eq!(stats.unknown_images, 0, "every record named as listed");
}

/// Issue 12's loop: `registry add` connects a Harbor registry, the next sync lists its
/// images, and the next scan submits the due ones through a scan task with the configured
/// rate limit.
#[tokio::test]
async fn a_harbor_registry_added_is_listed_and_scanned_at_the_configured_rate() {
    let r = spawn_app(test_config(200), |c| {
        c.target("harbors", "sim-project", &["harbor"])
            .set("policy.third_party_rate_limit", "120")
    })
    .await;
    let config = r.config_file(|c| c);
    let add = r
        .cli_with_env(
            &config,
            &[
                "registry",
                "add",
                "--target",
                "harbors",
                "--name",
                "harbor-prod",
                "--type",
                "harbor",
                "--addr",
                "harbor.example.com",
                "--username",
                "robot",
                "--cluster-id",
                "cluster-1",
                "--channel",
                "swr",
            ],
            &[
                ("HUAWEICLOUD_SDK_AK", "sim-ak"),
                ("HUAWEICLOUD_SDK_SK", "sim-sk"),
                ("HSS_SCAND_REGISTRY_PASSWORD", "s3cret-pw"),
            ],
        )
        .await;
    assert_eq!(add.code, Some(0), "{}", add.stderr);

    let reports = r.sync().await;
    let harbor = reports
        .iter()
        .find(|r| r.target == "harbors")
        .expect("a harbor listing");
    assert_eq!(harbor.outcome, SyncOutcome::Complete);
    assert_eq!(harbor.counts.new as usize, r.sim.live_images("harbor"));
    assert!(harbor.counts.new > 0);

    let report = r.scan().await;
    assert!(report.succeeded(), "{report:?}");
    let harbor_batches: Vec<_> = report
        .batches
        .iter()
        .filter(|b| b.target == "harbors")
        .collect();
    assert!(!harbor_batches.is_empty());
    assert!(harbor_batches.iter().all(|b| b.task_id.is_some()));

    // HSS's task list says each harbor task runs at 120 images an hour; SWR ones unlimited.
    let client = SimClient::new(&r.sim, &SimConfig::default());
    let tasks = client
        .get(
            "image/tasks",
            &[
                ("type", "image_scan"),
                ("limit", "200"),
                ("task_type", "manual"),
            ],
        )
        .await;
    assert_eq!(tasks.status, 200, "{}", tasks.text);
    let listed = tasks.json["data_list"].as_array().expect("tasks");
    for batch in &report.batches {
        let task_id = batch.task_id.as_deref().expect("a task");
        let task = listed
            .iter()
            .find(|t| t["task_id"] == task_id)
            .expect("the task is listed");
        let want = if batch.target == "harbors" { 120 } else { 0 };
        assert_eq!(task["rate_limit"], want, "{task}");
        assert_eq!(task["total_num"], batch.items as i64);
    }
}
