//! The HSS client against `hss-sim`: every call, paging, and each failure the client must
//! survive or report (throttling, 5xx, timeouts, bad signatures, unreadable answers).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hss_scand::domain::{ImageIdentity, ImageType, ScanStatus};
use hss_scand::hss::legacy::LegacyApi;
use hss_scand::hss::legacy::model::{
    BatchScanItem, BatchScanRequest, ListSwrImages, ListSwrImagesResponse,
};
use hss_scand::hss::registries::{self, AddRegistryRequest, UploadCommandRequest};
use hss_scand::hss::transport::client::{ApiObserver, HssClient};
use hss_scand::hss::transport::error::HssError;
use hss_scand::sim::{FaultKind, ScriptedFault, SimConfig};

use crate::support::client::{client_for, client_with};
use crate::support::sim::spawn_sim;

/// The deprecated endpoints' adapter over `client`.
fn api(client: &HssClient) -> LegacyApi {
    LegacyApi::new(client.clone())
}

fn first_page(limit: u32, offset: u32) -> ListSwrImages {
    ListSwrImages {
        image_type: ImageType::Private,
        offset,
        limit,
        enterprise_project_id: String::new(),
        latest_version: None,
        scan_status: None,
    }
}

fn status(status: u16, code: &str, retry_after: Option<u64>) -> FaultKind {
    FaultKind::Status {
        status,
        error_code: code.to_owned(),
        retry_after,
    }
}

fn scripted(endpoint: &str, count: u32, kind: FaultKind) -> ScriptedFault {
    ScriptedFault::new(Some(endpoint), count, kind)
}

/// Records what the client reports, to assert on retries by reason.
#[derive(Debug, Default)]
struct Recorder {
    attempts: Mutex<Vec<(String, String)>>,
    retries: Mutex<Vec<(String, String)>>,
}

impl ApiObserver for Recorder {
    fn attempt(&self, call: &'static str, code: &str, _: Duration) {
        self.attempts
            .lock()
            .unwrap()
            .push((call.into(), code.into()));
    }
    fn retry(&self, call: &'static str, reason: &'static str, _: Duration) {
        self.retries
            .lock()
            .unwrap()
            .push((call.into(), reason.into()));
    }
}

/// The identities of two images a batch scan takes.
fn two_identities(page: &[hss_scand::domain::Image]) -> Vec<ImageIdentity> {
    page.iter()
        .filter(|i| i.namespace.len() <= 64 && i.image_name.len() <= 128)
        .take(2)
        .map(|i| i.identity())
        .collect()
}

fn items(identities: &[ImageIdentity]) -> Vec<BatchScanItem<'_>> {
    identities.iter().map(BatchScanItem::for_image).collect()
}

#[tokio::test]
async fn every_call_works_against_the_simulator() {
    let sim = spawn_sim(SimConfig::default()).await;
    let client = client_for(&sim);

    let page = api(&client)
        .list_swr_images(&first_page(50, 0))
        .await
        .expect("list");
    assert_eq!(page.images.len(), 50);
    assert!(page.total_num.unwrap_or(0) > 50);
    assert_eq!(page.unreadable_fields, 0);

    api(&client)
        .synchronize(&ImageType::Private)
        .await
        .expect("synchronize");

    let identities = two_identities(&page.images);
    api(&client)
        .batch_scan(&BatchScanRequest {
            image_info_list: items(&identities),
            operate_all: false,
            image_type: ImageType::Private,
        })
        .await
        .expect("batch scan");

    registries::add(
        &client,
        &AddRegistryRequest {
            registry_name: "harbor-1".into(),
            registry_type: "Harbor".into(),
            api_version: "V2".into(),
            protocol: "https".into(),
            registry_addr: "harbor.example.com".into(),
            registry_username: "robot".into(),
            registry_password: "s3cret".into(),
            namespace: None,
            connect_cluster_id: "cluster-1".into(),
            get_scan_image_channel: "Swr".into(),
        },
    )
    .await
    .expect("add registry");

    let command = registries::upload_command(
        &client,
        &UploadCommandRequest {
            registry_addr: "harbor.example.com".into(),
            namespace: "library".into(),
            username: "robot".into(),
            password: "s3cret".into(),
        },
    )
    .await
    .expect("upload command");
    assert!(!command.image_command.is_empty());
    assert!(!command.images_download_url.is_empty());
    assert!(!command.swr_image_pull_command.is_empty());
    assert!(!format!("{command:?}").contains("s3cret"));

    let stats = sim.stats();
    assert_eq!(stats.auth_failures, 0, "every call verified");
    assert_eq!(stats.images_submitted, 2);
    assert_eq!(stats.sync_calls, 1);
    assert_eq!(stats.registries_added, 1);
}

#[tokio::test]
async fn paging_reaches_the_last_page_without_gaps() {
    let sim = spawn_sim(SimConfig {
        images: 1234,
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim);
    let (mut offset, mut seen, mut keys) = (0u32, 0usize, std::collections::HashSet::new());
    let total = loop {
        let page = api(&client)
            .list_swr_images(&first_page(200, offset))
            .await
            .expect("page");
        let total = page.total_num.expect("total_num") as u32;
        seen += page.images.len();
        for image in page.images {
            let key = (
                image.namespace,
                image.image_name,
                image.image_version,
                image.instance_id,
            );
            assert!(keys.insert(key), "an image listed twice");
        }
        offset += 200;
        if offset >= total {
            break total;
        }
    };
    assert_eq!(seen as u32, total);
    assert!(
        total > 200 && total % 200 != 0,
        "the last page is a short one ({total})"
    );
    assert_eq!(sim.stats().list_pages, u64::from(total.div_ceil(200)));
}

#[tokio::test]
async fn throttling_is_waited_out_honouring_retry_after() {
    let sim = spawn_sim(SimConfig::default()).await;
    let recorder = std::sync::Arc::new(Recorder::default());
    let client = client_for(&sim).with_observer(recorder.clone());
    sim.fail_next(scripted(
        "list_swr_images",
        1,
        status(429, "APIG.0308", Some(1)),
    ));

    let started = Instant::now();
    api(&client)
        .list_swr_images(&first_page(10, 0))
        .await
        .expect("recovered");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "paused at least the 2 s floor, not just Retry-After's 1 s"
    );
    assert_eq!(
        *recorder.retries.lock().unwrap(),
        vec![("list_swr_images".to_owned(), "throttled".to_owned())]
    );
    let codes: Vec<_> = recorder
        .attempts
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.1.clone())
        .collect();
    assert_eq!(codes, ["429", "200"]);
    assert_eq!(sim.stats().throttled, 1);
}

#[tokio::test]
async fn throttling_a_post_is_retried_because_it_was_not_accepted() {
    let sim = spawn_sim(SimConfig::default()).await;
    let client = client_for(&sim);
    let page = api(&client)
        .list_swr_images(&first_page(20, 0))
        .await
        .expect("list");
    let identities = two_identities(&page.images);
    sim.fail_next(scripted("batch_scan", 1, status(429, "APIGW.0308", None)));
    api(&client)
        .batch_scan(&BatchScanRequest {
            image_info_list: items(&identities),
            operate_all: false,
            image_type: ImageType::Private,
        })
        .await
        .expect("accepted on the second attempt");
    assert_eq!(sim.stats().images_submitted, 2);
}

#[tokio::test]
async fn a_5xx_is_retried_for_a_get() {
    let sim = spawn_sim(SimConfig::default()).await;
    let client = client_for(&sim);
    sim.fail_next(scripted(
        "list_swr_images",
        2,
        status(503, "HSS.0500", None),
    ));
    api(&client)
        .list_swr_images(&first_page(10, 0))
        .await
        .expect("third attempt succeeds");
    assert_eq!(sim.stats().requests.get("list_swr_images"), Some(&3));
}

#[tokio::test]
async fn a_5xx_is_not_retried_for_a_post_and_its_outcome_is_unknown() {
    let sim = spawn_sim(SimConfig::default()).await;
    let client = client_for(&sim);
    let page = api(&client)
        .list_swr_images(&first_page(20, 0))
        .await
        .expect("list");
    let identities = two_identities(&page.images);
    sim.fail_next(scripted("batch_scan", 1, status(500, "HSS.0500", None)));
    let err = api(&client)
        .batch_scan(&BatchScanRequest {
            image_info_list: items(&identities),
            operate_all: false,
            image_type: ImageType::Private,
        })
        .await
        .expect_err("the 500 comes back");
    assert!(!err.is_retryable());
    assert!(err.outcome_unknown(), "HSS may have acted on it: {err}");
    let api = err.api().expect("an API error");
    assert_eq!((api.status, api.error_code.as_str()), (500, "HSS.0500"));
    assert!(api.request_id.is_some(), "X-Request-Id is kept for support");
    assert_eq!(
        sim.stats().requests.get("batch_scan"),
        Some(&1),
        "sent once"
    );
}

#[tokio::test]
async fn a_timeout_is_retried_for_a_get_and_not_for_a_post() {
    let sim = spawn_sim(SimConfig::default()).await;
    let client = client_with(&sim, |o| o.request_timeout = Duration::from_millis(700));
    sim.fail_next(scripted("list_swr_images", 1, FaultKind::Hang));
    let page = api(&client)
        .list_swr_images(&first_page(20, 0))
        .await
        .expect("retried");
    let identities = two_identities(&page.images);

    sim.fail_next(scripted("batch_scan", 1, FaultKind::Hang));
    let err = api(&client)
        .batch_scan(&BatchScanRequest {
            image_info_list: items(&identities),
            operate_all: false,
            image_type: ImageType::Private,
        })
        .await
        .expect_err("times out");
    assert!(matches!(err, HssError::Timeout { .. }), "{err:?}");
    assert!(err.outcome_unknown() && !err.is_retryable());
    assert_eq!(sim.stats().requests.get("batch_scan"), Some(&1));
}

#[tokio::test]
async fn a_bad_signature_is_final_and_names_apigw_0301() {
    let sim = spawn_sim(SimConfig::default()).await;
    let client = crate::support::client::client_with_keys(&sim, "sim-ak", "not-the-secret");
    let err = api(&client)
        .list_swr_images(&first_page(10, 0))
        .await
        .expect_err("rejected");
    assert!(!err.is_retryable());
    assert_eq!(err.error_code(), Some("APIGW.0301"));
    assert_eq!(err.api().map(|a| a.status), Some(401));
    assert!(err.to_string().contains("APIGW.0301"), "{err}");
    assert!(!err.to_string().contains("not-the-secret"));
    assert_eq!(sim.stats().auth_failures, 1, "not retried");
}

#[tokio::test]
async fn a_malformed_answer_is_an_error_not_a_panic() {
    let sim = spawn_sim(SimConfig::default()).await;
    let client = client_with(&sim, |o| o.max_retries = 2);
    sim.fail_next(scripted("list_swr_images", 10, FaultKind::Malformed));
    let err = api(&client)
        .list_swr_images(&first_page(10, 0))
        .await
        .expect_err("unreadable every time");
    assert!(
        matches!(err, HssError::Malformed { status: 200, .. }),
        "{err:?}"
    );
    assert_eq!(
        sim.stats().requests.get("list_swr_images"),
        Some(&3),
        "1 + 2 retries"
    );

    sim.fail_next(scripted("list_swr_images", 1, FaultKind::Malformed));
    api(&client)
        .list_swr_images(&first_page(10, 0))
        .await
        .expect("one bad answer is retried away");
}

#[tokio::test]
async fn synchronize_failing_inside_a_200_is_an_error() {
    let sim = spawn_sim(SimConfig::default()).await;
    let client = client_for(&sim);
    sim.fail_next(scripted("synchronize", 1, FaultKind::SyncErrorInBody));
    let err = api(&client)
        .synchronize(&ImageType::Shared)
        .await
        .expect_err("error_code 1 in the body");
    assert!(
        matches!(err, HssError::FailedInBody { error_code: 1, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_batch_over_10241_items_is_rejected_as_too_large() {
    let sim = spawn_sim(SimConfig::default()).await;
    let client = client_for(&sim);
    let item = BatchScanItem {
        namespace: "ns",
        image_name: "app",
        image_version: "v1",
        instance_id: None,
        instance_url: None,
    };
    let err = api(&client)
        .batch_scan(&BatchScanRequest {
            image_info_list: vec![item; 10_242],
            operate_all: false,
            image_type: ImageType::Private,
        })
        .await
        .expect_err("too large");
    assert!(err.is_request_too_large(), "{err}");
    assert!(!err.outcome_unknown(), "rejected, so nothing was scanned");
}

#[tokio::test]
async fn loose_numbers_and_unknown_statuses_are_read_leniently() {
    let sim = spawn_sim(SimConfig {
        numbers_as_strings: true,
        junk_number_every: 7,
        unknown_status_every: 5,
        ..SimConfig::default()
    })
    .await;
    let client = client_for(&sim);
    let page = api(&client)
        .list_swr_images(&first_page(200, 0))
        .await
        .expect("parses");
    assert_eq!(page.images.len(), 200);
    assert!(page.unreadable_fields > 0, "the junk numbers were counted");
    let with_numbers = page
        .images
        .iter()
        .filter(|i| i.hss_record_id.is_some() && i.latest_update_time.is_some())
        .count();
    assert!(with_numbers > 100, "numeric strings were read as numbers");
    assert!(
        page.images
            .iter()
            .any(|i| i.scan_status == ScanStatus::Other("quarantined".into())),
        "an unknown status is kept as text"
    );
}

#[tokio::test]
async fn the_client_shares_one_rate_limit() {
    let sim = spawn_sim(SimConfig::default()).await;
    let limiter =
        hss_scand::hss::transport::client::rate_limiter(std::num::NonZeroU32::new(5).unwrap());
    let client: HssClient = crate::support::client::client_with_limiter(&sim, limiter.clone());
    let other: HssClient = crate::support::client::client_with_limiter(&sim, limiter);
    let started = Instant::now();
    for i in 0..8u32 {
        let c = if i % 2 == 0 { &client } else { &other };
        api(c)
            .list_swr_images(&first_page(1, i))
            .await
            .expect("list");
    }
    // A burst of 5, then 3 more at 5/s: at least 0.4 s even on the fastest machine.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

/// The example answer printed on the seed page of the list call, verbatim: its `id` and
/// `image_size` are strings such as `"111 (example for private images)"`.
#[test]
fn the_seed_pages_example_answer_parses() {
    let text =
        std::fs::read_to_string(crate::support::fixture("seed-list-swr-images-example.json"))
            .expect("fixture");
    let wire: ListSwrImagesResponse = serde_json::from_str(&text).expect("parses");
    let page = wire.into_page(&ImageType::Private);
    assert_eq!(page.total_num, Some(3));
    assert_eq!(page.images.len(), 3);
    assert_eq!(
        page.unreadable_fields, 6,
        "id and image_size of each of the three images"
    );
    let first = &page.images[0];
    assert_eq!((first.hss_record_id, first.image_size), (None, None));
    assert_eq!(first.latest_scan_time, Some(1_691_748_641_788));
    assert_eq!(first.scan_status, ScanStatus::Success);
    assert_eq!(page.images[1].image_type, ImageType::Shared);
    assert_eq!(page.images[1].domain_name, "scc_cgs_XXX");
}
