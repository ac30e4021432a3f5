//! The inventory sync against `hss-sim`: many targets, types and pages; a second sync that
//! changes nothing; deletions and restorations; faults mid-listing; lenient fields.

use hss_scand::domain::{ImageType, ScanStatus, Target};
use hss_scand::hss::client::HssClient;
use hss_scand::sim::{FaultKind, Faults, ScriptedFault, SimConfig, SimHandle};
use hss_scand::store::{Store, SyncOutcome};
use hss_scand::sync::{SyncOptions, SyncReport, sync_target};

use crate::support::client::{client_for, client_with, spawn_sim};

const ALL_TYPES: [ImageType; 3] = [ImageType::Private, ImageType::Shared, ImageType::Instance];

fn target(name: &str, types: &[ImageType]) -> Target {
    Target {
        name: name.into(),
        region: "ap-southeast-1".into(),
        project_id: SimConfig::default().project_id,
        enterprise_project_id: String::new(),
        image_types: types.to_vec(),
        trigger_swr_sync: false,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    url: String,
    store: Store,
}

async fn store() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("inventory.db").display());
    let store = Store::open(&url).await.expect("store opens");
    Fixture {
        _dir: dir,
        url,
        store,
    }
}

async fn sync(
    store: &Store,
    client: &HssClient,
    target: &Target,
    page_size: u32,
) -> Vec<SyncReport> {
    let options = SyncOptions {
        page_size,
        submit_grace: std::time::Duration::from_secs(120),
    };
    sync_target(store, client, target, options)
        .await
        .expect("the database works")
}

fn report<'a>(reports: &'a [SyncReport], image_type: &ImageType) -> &'a SyncReport {
    reports
        .iter()
        .find(|r| &r.image_type == image_type)
        .expect("a report per type")
}

async fn present(store: &Store, target: &str, image_type: &ImageType) -> usize {
    store
        .present_images(target, image_type)
        .await
        .expect("read")
        .len()
}

#[tokio::test]
async fn several_targets_and_types_across_many_pages() {
    let f = store().await;
    let (a, b) = (
        spawn_sim(SimConfig {
            images: 2_000,
            ..SimConfig::default()
        })
        .await,
        spawn_sim(SimConfig {
            images: 700,
            seed: 9,
            ..SimConfig::default()
        })
        .await,
    );
    let (ta, tb) = (
        target("alpha", &ALL_TYPES),
        target("beta", &[ImageType::Private]),
    );
    let ra = sync(&f.store, &client_for(&a), &ta, 50).await;
    let rb = sync(&f.store, &client_for(&b), &tb, 50).await;

    for (sim, reports, t) in [(&a, &ra, &ta), (&b, &rb, &tb)] {
        for image_type in &t.image_types {
            let r = report(reports, image_type);
            assert_eq!(r.outcome, SyncOutcome::Complete, "{r:?}");
            let live = sim.live_images(image_type.clone()) as i64;
            assert_eq!(r.counts.total_num, Some(live));
            assert_eq!((r.counts.seen, r.counts.new), (live, live));
            assert_eq!(r.counts.pages, ((live + 49) / 50).max(1));
            assert_eq!(present(&f.store, &t.name, image_type).await as i64, live);
        }
    }
    assert!(
        report(&ra, &ImageType::Private).counts.pages > 20,
        "many pages"
    );
    let counts = f.store.image_counts().await.expect("counts");
    let beta: i64 = counts
        .iter()
        .filter(|c| c.target == "beta")
        .map(|c| c.images)
        .sum();
    assert_eq!(
        beta,
        b.live_images(ImageType::Private) as i64,
        "targets kept apart"
    );
}

#[tokio::test]
async fn a_second_sync_changes_nothing_and_rewrites_no_row() {
    let f = store().await;
    let sim = spawn_sim(SimConfig::default()).await;
    let t = target("prod", &ALL_TYPES);
    let client = client_for(&sim);
    sync(&f.store, &client, &t, 200).await;
    let before = f
        .store
        .present_images("prod", &ImageType::Private)
        .await
        .unwrap();
    let changed_at_before = changed_at(&f.url).await;

    let again = sync(&f.store, &client, &t, 200).await;
    for r in &again {
        assert_eq!(r.outcome, SyncOutcome::Complete);
        let c = r.counts;
        assert_eq!(
            (c.new, c.changed, c.restored, c.deleted),
            (0, 0, 0, 0),
            "{r:?}"
        );
    }
    assert_eq!(
        f.store
            .present_images("prod", &ImageType::Private)
            .await
            .unwrap(),
        before
    );
    assert_eq!(
        changed_at(&f.url).await,
        changed_at_before,
        "no row rewritten"
    );
}

/// Every row's `changed_at`, which an upsert that rewrote a row would move, read through a
/// connection of the test's own.
async fn changed_at(url: &str) -> Vec<(i64, i64)> {
    let pool = sqlx::SqlitePool::connect(url).await.expect("open");
    let rows = sqlx::query_as("SELECT id, changed_at FROM images ORDER BY id")
        .fetch_all(&pool)
        .await
        .expect("read");
    pool.close().await;
    assert!(!rows.is_empty());
    rows
}

#[tokio::test]
async fn scans_finishing_in_hss_show_up_as_changes() {
    let f = store().await;
    let mut config = SimConfig::default();
    config.lifecycle.queue_delay = std::time::Duration::ZERO;
    config.lifecycle.scan_duration = std::time::Duration::ZERO;
    config.lifecycle.failure_rate = 0.0;
    let sim = spawn_sim(config).await;
    let t = target("prod", &[ImageType::Private]);
    let client = client_for(&sim);
    sync(&f.store, &client, &t, 200).await;
    let unscanned: Vec<_> = f
        .store
        .present_images("prod", &ImageType::Private)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.scan_status == ScanStatus::Unscan && i.namespace.len() <= 64)
        .take(3)
        .collect();
    client
        .batch_scan(&hss_scand::hss::model::BatchScanRequest {
            image_info_list: unscanned
                .iter()
                .map(hss_scand::hss::model::BatchScanItem::for_image)
                .collect(),
            operate_all: false,
            image_type: ImageType::Private,
        })
        .await
        .expect("submitted");
    let r = sync(&f.store, &client, &t, 200).await;
    assert_eq!(r[0].counts.changed, 3);
    let now_scanned = f
        .store
        .present_images("prod", &ImageType::Private)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| {
            unscanned.iter().any(|u| {
                u.image_name == i.image_name
                    && u.image_version == i.image_version
                    && u.namespace == i.namespace
            })
        })
        .filter(|i| i.scan_status == ScanStatus::Success && i.latest_scan_time.is_some())
        .count();
    assert_eq!(now_scanned, 3);
}

#[tokio::test]
async fn vanished_images_are_deleted_and_restored_when_they_return() {
    let f = store().await;
    let sim = spawn_sim(SimConfig::default()).await;
    let t = target("prod", &[ImageType::Private, ImageType::Shared]);
    let client = client_for(&sim);
    sync(&f.store, &client, &t, 100).await;
    let private_before = present(&f.store, "prod", &ImageType::Private).await;

    assert_eq!(sim.delete_images(ImageType::Private, 7), 7);
    let r = sync(&f.store, &client, &t, 100).await;
    assert_eq!(report(&r, &ImageType::Private).counts.deleted, 7);
    assert_eq!(
        report(&r, &ImageType::Shared).counts.deleted,
        0,
        "other types untouched"
    );
    assert_eq!(
        present(&f.store, "prod", &ImageType::Private).await,
        private_before - 7
    );

    sim.restore_images(ImageType::Private);
    let r = sync(&f.store, &client, &t, 100).await;
    let c = report(&r, &ImageType::Private).counts;
    assert_eq!((c.restored, c.new, c.deleted), (7, 0, 0));
    assert_eq!(
        present(&f.store, "prod", &ImageType::Private).await,
        private_before
    );
}

#[tokio::test]
async fn a_listing_that_fails_part_way_deletes_nothing_and_says_why() {
    let f = store().await;
    let sim = spawn_sim(SimConfig::default()).await;
    let t = target("prod", &[ImageType::Private]);
    let client = client_with(&sim, |o| o.max_retries = 1);
    sync(&f.store, &client, &t, 100).await;
    let before = present(&f.store, "prod", &ImageType::Private).await;

    sim.delete_images(ImageType::Private, 5);
    sim.fail_next(ScriptedFault::status("list_swr_images", 5, 503).after(2));
    let r = sync(&f.store, &client, &t, 100).await;
    assert_eq!(r[0].outcome, SyncOutcome::Partial);
    assert_eq!(r[0].counts.deleted, 0);
    let error = r[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("503"), "{error}");
    assert_eq!(present(&f.store, "prod", &ImageType::Private).await, before);

    let runs = f.store.recent_sync_runs(1).await.unwrap();
    assert_eq!(runs[0].outcome, "partial");
    assert!(runs[0].error.as_deref().unwrap_or_default().contains("503"));
}

#[tokio::test]
async fn a_first_page_that_fails_is_a_failed_sync() {
    let f = store().await;
    let sim = spawn_sim(SimConfig::default()).await;
    let client = client_with(&sim, |o| o.max_retries = 0);
    sim.fail_next(ScriptedFault::status("list_swr_images", 1, 500));
    let r = sync(
        &f.store,
        &client,
        &target("prod", &[ImageType::Private]),
        100,
    )
    .await;
    assert_eq!(r[0].outcome, SyncOutcome::Failed);
    assert_eq!(r[0].counts.pages, 0);
    assert!(!r[0].succeeded());
}

#[tokio::test]
async fn transient_5xx_and_429_mid_listing_are_retried_to_a_complete_sync() {
    let f = store().await;
    let sim = spawn_sim(SimConfig::default()).await;
    let t = target("prod", &[ImageType::Private]);
    let client = client_for(&sim);
    sim.fail_next(ScriptedFault::status("list_swr_images", 2, 503).after(3));
    let r = sync(&f.store, &client, &t, 100).await;
    assert_eq!(r[0].outcome, SyncOutcome::Complete, "{r:?}");

    sim.delete_images(ImageType::Private, 1);
    sim.fail_next(
        ScriptedFault::new(
            Some("list_swr_images"),
            1,
            FaultKind::Status {
                status: 429,
                error_code: "APIG.0308".into(),
                retry_after: Some(1),
            },
        )
        .after(4),
    );
    let r = sync(&f.store, &client, &t, 100).await;
    assert_eq!(r[0].outcome, SyncOutcome::Complete, "{r:?}");
    assert_eq!(
        r[0].counts.deleted, 1,
        "a recovered listing is a complete one"
    );
    assert_eq!(sim.stats().throttled, 1);
}

#[tokio::test]
async fn total_num_changing_mid_listing_deletes_nothing() {
    let f = store().await;
    let sim = spawn_sim(SimConfig::default()).await;
    let t = target("prod", &[ImageType::Private]);
    let client = client_for(&sim);
    sync(&f.store, &client, &t, 100).await;

    sim.delete_images(ImageType::Private, 3);
    sim.set_faults(Faults {
        total_drift: true,
        ..Faults::default()
    });
    let r = sync(&f.store, &client, &t, 100).await;
    assert_eq!(r[0].outcome, SyncOutcome::Partial);
    assert_eq!(r[0].counts.deleted, 0);
    assert!(
        r[0].error
            .as_deref()
            .unwrap_or_default()
            .contains("total_num changed")
    );
}

#[tokio::test]
async fn lenient_wire_fields_flow_into_the_database() {
    let f = store().await;
    let sim = spawn_sim(SimConfig {
        numbers_as_strings: true,
        junk_number_every: 10,
        unknown_status_every: 25,
        ..SimConfig::default()
    })
    .await;
    let r = sync(
        &f.store,
        &client_for(&sim),
        &target("prod", &[ImageType::Private]),
        200,
    )
    .await;
    assert_eq!(r[0].outcome, SyncOutcome::Complete);
    assert!(r[0].counts.unreadable_fields > 0);
    let images = f
        .store
        .present_images("prod", &ImageType::Private)
        .await
        .unwrap();
    assert!(images.iter().filter(|i| i.image_size.is_some()).count() > images.len() / 2);
    assert!(
        images.iter().any(|i| i.image_size.is_none()),
        "junk sizes stored as NULL"
    );
    let counts = f.store.image_counts().await.unwrap();
    assert!(
        counts
            .iter()
            .any(|c| c.scan_status == "quarantined" && c.images > 0),
        "an unknown status is kept as text and counted"
    );
    let runs = f.store.recent_sync_runs(1).await.unwrap();
    assert_eq!(runs[0].unreadable_fields, r[0].counts.unreadable_fields);
}

/// The command line: `hss-scand sync` then `status --output json`.
#[tokio::test]
async fn the_sync_command_and_status_report() {
    let sim = spawn_sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(&dir, &sim, true);
    let d = SimConfig::default();
    let env = [
        ("HUAWEICLOUD_SDK_AK", d.ak.as_str()),
        ("HUAWEICLOUD_SDK_SK", d.sk.as_str()),
    ];
    let out = run(&["--config", &config, "sync"], &env).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout.lines().count(),
        2,
        "one line per type: {}",
        out.stdout
    );
    assert!(out.stdout.contains("complete"), "{}", out.stdout);
    assert_eq!(
        sim.stats().sync_calls,
        2,
        "trigger_swr_sync called synchronize per type"
    );

    let out = run(&["--config", &config, "status", "--output", "json"], &[]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let listed: i64 = status["inventory"]
        .as_array()
        .expect("inventory")
        .iter()
        .map(|c| c["images"].as_i64().unwrap_or(0))
        .sum();
    let live = (sim.live_images(ImageType::Private) + sim.live_images(ImageType::Shared)) as i64;
    assert_eq!(listed, live);
    assert_eq!(status["sync_runs"].as_array().map(Vec::len), Some(2));

    let table = run(&["--config", &config, "status"], &[]).await;
    assert!(table.stdout.contains("RECENT SYNCS") && table.stdout.contains("private_image"));
}

#[tokio::test]
async fn a_sync_that_fails_exits_1_and_missing_credentials_exit_78() {
    let sim = spawn_sim(SimConfig::default()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(&dir, &sim, false);
    let out = run(&["--config", &config, "sync"], &[]).await;
    assert_eq!(out.code, Some(78), "{}", out.stderr);
    assert!(out.stderr.contains("HUAWEICLOUD_SDK_AK"), "{}", out.stderr);

    let env = [
        ("HUAWEICLOUD_SDK_AK", "sim-ak"),
        ("HUAWEICLOUD_SDK_SK", "wrong"),
    ];
    let out = run(&["--config", &config, "sync"], &env).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stdout.contains("APIGW.0301"), "{}", out.stdout);
    assert!(!out.stdout.contains("wrong") && !out.stderr.contains("wrong"));
}

fn write_config(dir: &tempfile::TempDir, sim: &SimHandle, trigger: bool) -> String {
    let path = dir.path().join("config.toml");
    let text = format!(
        r#"
[database]
url = "sqlite://{db}"
[hss]
endpoint = "{url}"
requests_per_second = 1000
[[targets]]
name = "prod"
region = "ap-southeast-1"
project_id = "{project}"
image_types = ["private_image", "shared_image"]
trigger_swr_sync = {trigger}
"#,
        db = dir.path().join("state.db").display(),
        url = sim.base_url(),
        project = sim.project_id(),
    );
    std::fs::write(&path, text).expect("write config");
    path.display().to_string()
}

/// Runs the binary off the async runtime, so the in-process simulator keeps answering.
async fn run(args: &[&str], env: &[(&str, &str)]) -> crate::support::app::Outcome {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        crate::support::app::run_hss_scand(&args, &env)
    })
    .await
    .expect("the command ran")
}
