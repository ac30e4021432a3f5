//! The inventory sync against `hss-sim`: many targets, types and pages; a second sync that
//! changes nothing; deletions and restorations; faults mid-listing; lenient fields.

use std::sync::Arc;
use std::time::Duration;

use hss_scand::domain::{ImageType, ScanStatus, Target};
use hss_scand::hss::ImageSource;
use hss_scand::hss::legacy::LegacyApi;
use hss_scand::hss::legacy::model::{BatchScanItem, BatchScanRequest};
use hss_scand::pipeline::report::SyncReport;
use hss_scand::pipeline::sync::{SyncOptions, sync_target};
use hss_scand::sim::{FaultKind, Faults, ScriptedFault, SimConfig};
use hss_scand::store::{Store, SyncOutcome};

use crate::support::client::{client_with, legacy_api};
use crate::support::rig::{TestApp, spawn_app};
use crate::support::sim::{spawn_sim, test_config};

const ALL_TYPES: [ImageType; 3] = [ImageType::Private, ImageType::Shared, ImageType::Instance];

fn target(name: &str, types: &[ImageType]) -> Target {
    Target {
        name: name.into(),
        region: "ap-southeast-1".into(),
        project_id: SimConfig::default().project_id,
        enterprise_project_id: String::new(),
        image_types: types.to_vec(),
        trigger_swr_sync: false,
        api: None,
    }
}

/// Syncs `target` through `source`, `page_size` images a page, into the rig's store.
async fn sync(r: &TestApp, source: LegacyApi, target: &Target, page_size: u32) -> Vec<SyncReport> {
    let source: Arc<dyn ImageSource> = Arc::new(source);
    let options = SyncOptions {
        page_size,
        max_delete_share: 1.0,
        ..SyncOptions::from_settings(&r.app.settings)
    };
    sync_target(
        &r.app.store,
        &source,
        target,
        options,
        &r.clock,
        &r.app.listings,
    )
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
    let r = spawn_app(
        SimConfig {
            images: 2_000,
            ..SimConfig::default()
        },
        |c| c,
    )
    .await;
    let a = &r.sim;
    let b = spawn_sim(SimConfig {
        images: 700,
        seed: 9,
        ..SimConfig::default()
    })
    .await;
    let (ta, tb) = (
        target("alpha", &ALL_TYPES),
        target("beta", &[ImageType::Private]),
    );
    let ra = sync(&r, legacy_api(a), &ta, 50).await;
    let rb = sync(&r, legacy_api(&b), &tb, 50).await;

    for (sim, reports, t) in [(a, &ra, &ta), (&b, &rb, &tb)] {
        for image_type in &t.image_types {
            let one = report(reports, image_type);
            assert_eq!(one.outcome, SyncOutcome::Complete, "{one:?}");
            let live = sim.live_images(image_type.clone()) as i64;
            assert_eq!(one.counts.total_num, Some(live));
            assert_eq!((one.counts.seen, one.counts.new), (live, live));
            assert_eq!(one.counts.pages, ((live + 49) / 50).max(1));
            assert_eq!(
                present(&r.app.store, &t.name, image_type).await as i64,
                live
            );
        }
    }
    assert!(
        report(&ra, &ImageType::Private).counts.pages > 20,
        "many pages"
    );
    let counts = r.app.store.image_counts().await.expect("counts");
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
    let r = spawn_app(SimConfig::default(), |c| c).await;
    let t = target("prod", &ALL_TYPES);
    sync(&r, legacy_api(&r.sim), &t, 200).await;
    let before = r
        .app
        .store
        .present_images("prod", &ImageType::Private)
        .await
        .unwrap();
    r.advance(Duration::from_secs(1));
    let second_started = r.clock.now_ms();

    let again = sync(&r, legacy_api(&r.sim), &t, 200).await;
    for one in &again {
        assert_eq!(one.outcome, SyncOutcome::Complete);
        let c = one.counts;
        assert_eq!(
            (c.new, c.changed, c.restored, c.deleted),
            (0, 0, 0, 0),
            "{one:?}"
        );
    }
    assert_eq!(
        r.app
            .store
            .present_images("prod", &ImageType::Private)
            .await
            .unwrap(),
        before
    );
    assert_eq!(
        r.app
            .store
            .images_changed_since(second_started)
            .await
            .unwrap(),
        0,
        "no row rewritten"
    );
}

#[tokio::test]
async fn scans_finishing_in_hss_show_up_as_changes() {
    let r = spawn_app(test_config(SimConfig::default().images), |c| c).await;
    let t = target("prod", &[ImageType::Private]);
    sync(&r, legacy_api(&r.sim), &t, 200).await;
    let unscanned: Vec<_> = r
        .app
        .store
        .present_images("prod", &ImageType::Private)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.scan_status == ScanStatus::Unscan && i.namespace.len() <= 64)
        .take(3)
        .map(|i| i.identity())
        .collect();
    legacy_api(&r.sim)
        .batch_scan(&BatchScanRequest {
            image_info_list: unscanned.iter().map(BatchScanItem::for_image).collect(),
            operate_all: false,
            image_type: ImageType::Private,
        })
        .await
        .expect("submitted");
    let synced = sync(&r, legacy_api(&r.sim), &t, 200).await;
    assert_eq!(synced[0].counts.changed, 3);
    let now_scanned = r
        .app
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
    let r = spawn_app(SimConfig::default(), |c| c).await;
    let sim = &r.sim;
    let t = target("prod", &[ImageType::Private, ImageType::Shared]);
    let client = || legacy_api(sim);
    sync(&r, client(), &t, 100).await;
    let private_before = present(&r.app.store, "prod", &ImageType::Private).await;

    assert_eq!(sim.delete_images(ImageType::Private, 7), 7);
    let synced = sync(&r, client(), &t, 100).await;
    assert_eq!(report(&synced, &ImageType::Private).counts.deleted, 7);
    assert_eq!(
        report(&synced, &ImageType::Shared).counts.deleted,
        0,
        "other types untouched"
    );
    assert_eq!(
        present(&r.app.store, "prod", &ImageType::Private).await,
        private_before - 7
    );

    sim.restore_images(ImageType::Private);
    let synced = sync(&r, client(), &t, 100).await;
    let c = report(&synced, &ImageType::Private).counts;
    assert_eq!((c.restored, c.new, c.deleted), (7, 0, 0));
    assert_eq!(
        present(&r.app.store, "prod", &ImageType::Private).await,
        private_before
    );
}

#[tokio::test]
async fn a_listing_that_fails_part_way_deletes_nothing_and_says_why() {
    let r = spawn_app(SimConfig::default(), |c| c).await;
    let sim = &r.sim;
    let t = target("prod", &[ImageType::Private]);
    let client = || LegacyApi::new(client_with(sim, |o| o.max_retries = 1));
    sync(&r, client(), &t, 100).await;
    let before = present(&r.app.store, "prod", &ImageType::Private).await;

    sim.delete_images(ImageType::Private, 5);
    sim.fail_next(ScriptedFault::status("list_swr_images", 5, 503).after(2));
    let synced = sync(&r, client(), &t, 100).await;
    assert_eq!(synced[0].outcome, SyncOutcome::Partial);
    assert_eq!(synced[0].counts.deleted, 0);
    let error = synced[0].error.as_deref().unwrap_or_default();
    assert!(error.contains("503"), "{error}");
    assert_eq!(
        present(&r.app.store, "prod", &ImageType::Private).await,
        before
    );

    let runs = r.app.store.recent_sync_runs(1).await.unwrap();
    assert_eq!(runs[0].outcome, "partial");
    assert!(runs[0].error.as_deref().unwrap_or_default().contains("503"));
}

#[tokio::test]
async fn a_first_page_that_fails_is_a_failed_sync() {
    let r = spawn_app(SimConfig::default(), |c| c).await;
    let sim = &r.sim;
    let client = || LegacyApi::new(client_with(sim, |o| o.max_retries = 0));
    sim.fail_next(ScriptedFault::status("list_swr_images", 1, 500));
    let synced = sync(&r, client(), &target("prod", &[ImageType::Private]), 100).await;
    assert_eq!(synced[0].outcome, SyncOutcome::Failed);
    assert_eq!(synced[0].counts.pages, 0);
    assert!(!synced[0].succeeded());
}

#[tokio::test]
async fn transient_5xx_and_429_mid_listing_are_retried_to_a_complete_sync() {
    let r = spawn_app(SimConfig::default(), |c| c).await;
    let sim = &r.sim;
    let t = target("prod", &[ImageType::Private]);
    let client = || legacy_api(sim);
    sim.fail_next(ScriptedFault::status("list_swr_images", 2, 503).after(3));
    let synced = sync(&r, client(), &t, 100).await;
    assert_eq!(synced[0].outcome, SyncOutcome::Complete, "{synced:?}");

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
    let synced = sync(&r, client(), &t, 100).await;
    assert_eq!(synced[0].outcome, SyncOutcome::Complete, "{synced:?}");
    assert_eq!(
        synced[0].counts.deleted, 1,
        "a recovered listing is a complete one"
    );
    assert_eq!(sim.stats().throttled, 1);
}

#[tokio::test]
async fn total_num_changing_mid_listing_deletes_nothing() {
    let r = spawn_app(SimConfig::default(), |c| c).await;
    let sim = &r.sim;
    let t = target("prod", &[ImageType::Private]);
    let client = || legacy_api(sim);
    sync(&r, client(), &t, 100).await;

    sim.delete_images(ImageType::Private, 3);
    sim.set_faults(Faults {
        total_drift: true,
        ..Faults::default()
    });
    let synced = sync(&r, client(), &t, 100).await;
    assert_eq!(synced[0].outcome, SyncOutcome::Partial);
    assert_eq!(synced[0].counts.deleted, 0);
    assert!(
        synced[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("total_num changed")
    );
}

#[tokio::test]
async fn lenient_wire_fields_flow_into_the_database() {
    let r = spawn_app(
        SimConfig {
            numbers_as_strings: true,
            junk_number_every: 10,
            unknown_status_every: 25,
            ..SimConfig::default()
        },
        |c| c,
    )
    .await;
    let synced = sync(
        &r,
        legacy_api(&r.sim),
        &target("prod", &[ImageType::Private]),
        200,
    )
    .await;
    assert_eq!(synced[0].outcome, SyncOutcome::Complete);
    assert!(synced[0].counts.unreadable_fields > 0);
    let images = r
        .app
        .store
        .present_images("prod", &ImageType::Private)
        .await
        .unwrap();
    assert!(images.iter().filter(|i| i.image_size.is_some()).count() > images.len() / 2);
    assert!(
        images.iter().any(|i| i.image_size.is_none()),
        "junk sizes stored as NULL"
    );
    let counts = r.app.store.image_counts().await.unwrap();
    assert!(
        counts
            .iter()
            .any(|c| c.scan_status == "quarantined" && c.images > 0),
        "an unknown status is kept as text and counted"
    );
    let runs = r.app.store.recent_sync_runs(1).await.unwrap();
    assert_eq!(
        runs[0].counts.unreadable_fields,
        synced[0].counts.unreadable_fields
    );
}

/// The command line: `hss-scand sync` then `status --output json`.
#[tokio::test]
async fn the_sync_command_and_status_report() {
    let r = spawn_app(SimConfig::default(), |c| c).await;
    let config = r.config_file(|c| c.target_key("trigger_swr_sync", "true"));
    let out = r.cli(&config, &["sync"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout.lines().count(),
        2,
        "one line per type: {}",
        out.stdout
    );
    assert!(out.stdout.contains("complete"), "{}", out.stdout);
    assert_eq!(
        r.sim.stats().sync_task_calls,
        2,
        "trigger_swr_sync asked for an image-sync task per type (current API, the default)"
    );

    let out = r
        .cli_with_env(&config, &["status", "--output", "json"], &[])
        .await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let status: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let listed: i64 = status["inventory"]
        .as_array()
        .expect("inventory")
        .iter()
        .map(|c| c["images"].as_i64().unwrap_or(0))
        .sum();
    let live =
        (r.sim.live_images(ImageType::Private) + r.sim.live_images(ImageType::Shared)) as i64;
    assert_eq!(listed, live);
    assert_eq!(status["sync_runs"].as_array().map(Vec::len), Some(2));

    let table = r.cli_with_env(&config, &["status"], &[]).await;
    assert!(table.stdout.contains("RECENT SYNCS") && table.stdout.contains("private_image"));
}

#[tokio::test]
async fn a_sync_that_fails_exits_1_and_missing_credentials_exit_78() {
    let r = spawn_app(SimConfig::default(), |c| c).await;
    let config = r.config_file(|c| c);
    let out = r.cli_with_env(&config, &["sync"], &[]).await;
    assert_eq!(out.code, Some(78), "{}", out.stderr);
    assert!(out.stderr.contains("HUAWEICLOUD_SDK_AK"), "{}", out.stderr);

    let env = [
        ("HUAWEICLOUD_SDK_AK", "sim-ak"),
        ("HUAWEICLOUD_SDK_SK", "wrong"),
    ];
    let out = r.cli_with_env(&config, &["sync"], &env).await;
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stdout.contains("APIGW.0301"), "{}", out.stdout);
    assert!(!out.stdout.contains("wrong") && !out.stderr.contains("wrong"));
}
