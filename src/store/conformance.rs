//! One suite of store tests, written against the facade only, that every backend must pass
//! (garage's `db::test_suite`): what goes in comes out, deletions and restorations, the
//! policy's view, the submission protocol, the run log. A new backend adds one test that
//! opens it and calls [`suite`].

use std::sync::Arc;
use std::time::Duration;

use super::{
    BatchStatus, Claim, Fence, ItemOutcome, LeaseAttempt, ListingHistory, ListingKind, NewBatch,
    PreparedImage, Store, StoredTimes, SyncListing, SyncOutcome, SyncRunCounts, TargetFacts,
    digest_hash,
};
use crate::domain::{
    BatchFailure, Candidate, Clock, Due, DueReason, Image, ImageType, Job, JobOutcome,
    NativeScanPolicy, PayPerScan, PlanGroup, Planned, ScanStatus, ScanTask, Severity,
    Unsubmittable,
};

/// Where the suite's clock starts (2027-01-15, well away from any day boundary).
pub(crate) const START: i64 = 1_800_000_000_000;

/// Runs every check against `store`, which must be empty and opened on a manual clock at
/// [`START`].
pub(crate) async fn suite(store: Store) {
    inventory(&store).await;
    policy_view(&store).await;
    submissions(&store).await;
    policy_codes(&store).await;
    changes_and_findings(&store).await;
    leases(&store).await;
    run_log(&store).await;
    listings(&store).await;
    store.ping().await.expect("the database answers");
    store
        .bulk_writes()
        .await
        .expect("bulk on")
        .finish()
        .await
        .expect("bulk off");
}

fn image(name: &str, status: ScanStatus) -> Image {
    let mut image = Image::example(name);
    image.hss_record_id = Some(7);
    image.hss_image_id = "img".into();
    image.image_digest = "sha256:aa".into();
    image.scan_status = status;
    image.image_size = Some(10);
    image.latest_update_time = Some(5);
    image.vul_num = Some(1);
    image.malicious_file_num = Some(0);
    image.domain_name = "d".into();
    image
}

/// Takes (or keeps) the leader lease as `holder`, for a day of the suite's clock.
async fn lead(store: &Store, holder: &str) -> Fence {
    match store
        .acquire_lease(holder, Duration::from_secs(86_400))
        .await
        .expect("lease")
    {
        LeaseAttempt::Held(fence) => fence,
        LeaseAttempt::HeldBy(other) => panic!("{holder} cannot lead: {other:?}"),
    }
}

/// The lease: one holder at a time, a new term per new holder, renewals only by the holder
/// of the term, and batches recorded only under the term that holds it.
async fn leases(store: &Store) {
    let clock = store.clock().clone();
    let ttl = Duration::from_secs(20);
    // The submissions' holder gives it up: free at once.
    let suite = lead(store, "suite").await;
    store.release_lease(&suite).await.expect("released");
    let LeaseAttempt::Held(a) = store.acquire_lease("a", ttl).await.expect("take") else {
        panic!("a free lease is taken");
    };
    assert_eq!(a.term, suite.term + 1, "a new holder, a new term");
    assert_eq!(a.expires_at, clock.now_ms() + 20_000);
    // Another replica cannot take it while it lasts, and learns who holds it.
    match store.acquire_lease("b", ttl).await.expect("try") {
        LeaseAttempt::HeldBy(state) => {
            assert_eq!((state.holder.as_str(), state.term), ("a", a.term));
        }
        held => panic!("two holders: {held:?}"),
    }
    // Its holder renews it, the term unchanged; taking it again extends it too.
    clock.advance(Duration::from_secs(5));
    let renewed = store
        .renew_lease(&a, ttl)
        .await
        .expect("renew")
        .expect("held");
    assert_eq!(
        (renewed.term, renewed.expires_at),
        (a.term, clock.now_ms() + 20_000)
    );
    let LeaseAttempt::Held(again) = store.acquire_lease("a", ttl).await.expect("again") else {
        panic!("its holder keeps it");
    };
    assert_eq!(again.term, a.term);

    // Past its expiry the holder cannot renew, and another takes it with a new term.
    clock.advance(Duration::from_secs(21));
    assert_eq!(store.renew_lease(&a, ttl).await.expect("renew"), None);
    let LeaseAttempt::Held(b) = store.acquire_lease("b", ttl).await.expect("take") else {
        panic!("an expired lease is taken");
    };
    assert_eq!(b.term, a.term + 1);
    let lease = store.lease().await.expect("read").expect("held");
    assert_eq!((lease.holder.as_str(), lease.term), ("b", b.term));

    // The old holder, awake again, records nothing, and learns who holds the lease.
    let target = "fenced";
    store
        .upsert_images(
            target,
            &mut vec![PreparedImage::new(image("f", ScanStatus::Unscan))],
        )
        .await
        .expect("insert");
    let seen = candidates(store, target, false).await;
    let plan = vec![planned(&seen[0], target, DueReason::NeverScanned)];
    let due = store.due_images(&plan).await.expect("due");
    let batch = NewBatch {
        target,
        image_type: &ImageType::Private,
        enterprise_project_id: "",
        parent_id: None,
        api: "current",
    };
    let batches_before = store.recent_batches(1000).await.expect("batches").len();
    match store
        .record_pending_batch(&batch, &due, &a)
        .await
        .expect("record")
    {
        Claim::Fenced(Some(now)) => assert_eq!(now.holder, "b"),
        other => panic!("a stale term recorded a batch: {other:?}"),
    }
    assert_eq!(
        store.recent_batches(1000).await.expect("batches").len(),
        batches_before,
        "nothing recorded"
    );
    assert!(!candidates(store, target, false).await[0].in_flight);
    // The holder's term records it; a release by the stale term changes nothing.
    store.release_lease(&a).await.expect("no-op");
    assert!(matches!(
        store
            .record_pending_batch(&batch, &due, &b)
            .await
            .expect("record"),
        Claim::Claimed(_)
    ));
    // A released lease is free at once: the next holder need not wait for the TTL.
    store.release_lease(&b).await.expect("released");
    let LeaseAttempt::Held(c) = store.acquire_lease("c", ttl).await.expect("take") else {
        panic!("a released lease is free");
    };
    assert_eq!(c.term, b.term + 1);
    store.release_lease(&c).await.expect("released");
}

async fn candidates(store: &Store, target: &str, with_names: bool) -> Vec<Candidate> {
    let mut seen = Vec::new();
    store
        .visit_candidates(target, with_names, &mut |c| seen.push(c.clone()))
        .await
        .expect("visit");
    seen.sort_by_key(|c| c.row_id);
    seen
}

async fn inventory(store: &Store) {
    let t = ImageType::Private;
    let mut refused = image("b", ScanStatus::Success);
    refused.unsubmittable = Some(Unsubmittable::FieldTooLong);
    refused.latest_scan_time = Some(9);
    let first = [
        PreparedImage::new(image("a", ScanStatus::Unscan)),
        PreparedImage::new(refused.clone()),
    ];
    store
        .upsert_images("inv", &mut first.to_vec())
        .await
        .expect("insert");
    let known = known_by_key(store, &t).await;
    assert_eq!(known.len(), 2);
    for p in &first {
        let k = known[&p.key_hash];
        assert_eq!((k.content_hash, k.deleted), (p.content_hash, false));
    }
    let present = store.present_images("inv", &t).await.expect("present");
    assert_eq!(
        present,
        vec![first[0].image.clone(), refused],
        "every field comes back"
    );
    assert!(
        store
            .present_images("other", &t)
            .await
            .expect("present")
            .is_empty(),
        "targets are kept apart"
    );

    // Writing the same content again rewrites nothing; a change is written.
    let clock = store.clock().clone();
    clock.advance(Duration::from_secs(1));
    let second = clock.now_ms();
    store
        .upsert_images("inv", &mut first.to_vec())
        .await
        .expect("same again");
    assert_eq!(
        store.images_changed_since(second).await.expect("changed"),
        0
    );
    let mut scanned = image("a", ScanStatus::Success);
    scanned.latest_scan_time = Some(42);
    store
        .upsert_images("inv", &mut vec![PreparedImage::new(scanned.clone())])
        .await
        .expect("update");
    assert_eq!(
        store.images_changed_since(second).await.expect("changed"),
        1
    );
    let row_a = known[&first[0].key_hash].row_id;
    assert_eq!(store.mark_deleted(&[row_a]).await.expect("delete"), 1);
    assert_eq!(
        store.mark_deleted(&[row_a]).await.expect("delete again"),
        0,
        "only present images count"
    );
    let known = known_by_key(store, &t).await;
    assert!(known[&first[0].key_hash].deleted);
    assert_eq!(
        store
            .present_images("inv", &t)
            .await
            .expect("present")
            .len(),
        1
    );
    store
        .upsert_images("inv", &mut vec![PreparedImage::new(scanned.clone())])
        .await
        .expect("restore");
    let present = store.present_images("inv", &t).await.expect("present");
    assert_eq!(present[0], scanned, "restored with its new content");
    let counts = store.image_counts().await.expect("counts");
    let inv: Vec<(&str, i64)> = counts
        .iter()
        .filter(|c| c.target == "inv")
        .map(|c| (c.scan_status.as_str(), c.images))
        .collect();
    assert_eq!(inv, [("success", 2)]);
    round_trip_across_statements(store).await;
}

/// Every field of every image comes back as written, empty or not, however many images a
/// write holds (a backend may cut it into statements of its own size, and bind an empty
/// text differently from a set one), both when inserted and when rewritten.
async fn round_trip_across_statements(store: &Store) {
    let t = ImageType::Private;
    let every_field = |n: usize| {
        let mut i = image(&format!("full-{n:04}"), ScanStatus::Failed);
        i.instance_id = format!("inst-{n}");
        i.instance_name = "instance".into();
        i.instance_url = "swr.example.com".into();
        i.scan_failed_desc = "it failed".into();
        i.shared_status = "valid".into();
        i.registry_id = format!("reg-{n}");
        i.registry_name = "registry".into();
        i.registry_type = "SwrPrivate".into();
        i.latest_sync_time = Some(n as i64);
        i.scan_failed_code = "download_failed".into();
        i.severity_level = "High".into();
        i.is_multiple_arch = Some(false);
        i.latest_scan_time = Some(3);
        i.unsafe_setting_num = Some(2);
        i
    };
    let fewest_fields = |n: usize| {
        let mut i = Image::example(&format!("bare-{n:04}"));
        i.hss_record_id = None;
        i.latest_version = None;
        i.scannable = None;
        i
    };
    let mut want: Vec<Image> = (0..451)
        .map(|n| {
            if n % 2 == 0 {
                every_field(n)
            } else {
                fewest_fields(n)
            }
        })
        .collect();
    let mut prepared: Vec<PreparedImage> = want.iter().cloned().map(PreparedImage::new).collect();
    store
        .upsert_images("many", &mut prepared)
        .await
        .expect("insert");
    assert!(prepared.is_empty(), "the write takes the images");
    // The store lists them by name; the names sort as their numbers within each kind.
    let by_name = |images: &[Image]| {
        let mut sorted = images.to_vec();
        sorted.sort_by(|a, b| a.image_name.cmp(&b.image_name));
        sorted
    };
    let present = store.present_images("many", &t).await.expect("present");
    assert_eq!(
        present,
        by_name(&want),
        "every field of 451 images, as written"
    );

    // Rewritten: set fields emptied and empty ones set, in a write of another size.
    for image in want.iter_mut().take(301) {
        let was_bare = image.instance_id.is_empty();
        image.vul_num = Some(99);
        image.domain_name = if was_bare {
            "now set".into()
        } else {
            String::new()
        };
    }
    let mut prepared: Vec<PreparedImage> = want
        .iter()
        .take(301)
        .cloned()
        .map(PreparedImage::new)
        .collect();
    store
        .upsert_images("many", &mut prepared)
        .await
        .expect("rewrite");
    let present = store.present_images("many", &t).await.expect("present");
    assert_eq!(present, by_name(&want), "every field after the rewrite");
}

async fn policy_view(store: &Store) {
    let mut refused = image("b", ScanStatus::Failed);
    refused.unsubmittable = Some(Unsubmittable::FieldTooLong);
    refused.scannable = None;
    refused.latest_version = Some(false);
    store
        .upsert_images(
            "pol",
            &mut vec![
                PreparedImage::new(image("a", ScanStatus::Unscan)),
                PreparedImage::new(refused),
            ],
        )
        .await
        .expect("insert");
    let seen = candidates(store, "pol", false).await;
    assert_eq!(seen.len(), 2);
    let (a, b) = (&seen[0], &seen[1]);
    assert_eq!(a.image_type, ImageType::Private);
    assert_eq!(
        (
            &a.scan_status,
            a.unsubmittable,
            a.scannable,
            a.latest_version
        ),
        (&ScanStatus::Unscan, None, Some(true), Some(true))
    );
    assert_eq!(a.namespace, "", "names only when asked for");
    assert_eq!(
        (
            &b.scan_status,
            b.unsubmittable,
            b.scannable,
            b.latest_version
        ),
        (
            &ScanStatus::Failed,
            Some(Unsubmittable::FieldTooLong),
            None,
            Some(false)
        )
    );
    assert!(!a.in_flight && a.last_submitted_at.is_none() && a.failed_submissions == 0);
    let named = candidates(store, "pol", true).await;
    assert_eq!(
        (
            named[1].namespace.as_str(),
            named[1].image_name.as_str(),
            named[1].image_version.as_str()
        ),
        ("ns", "b", "v1")
    );
}

/// Every image type, scan status, flag and verdict the policy reads comes back as it went in,
/// in flight and out of it (each backend packs them its own way).
async fn policy_codes(store: &Store) {
    let target = "codes";
    let types = [
        ImageType::Private,
        ImageType::Shared,
        ImageType::Instance,
        ImageType::Harbor,
        ImageType::Jfrog,
        ImageType::from("enterprise_image"),
    ];
    let statuses = [
        ScanStatus::Unscan,
        ScanStatus::Scanning,
        ScanStatus::WaitingForScan,
        ScanStatus::Success,
        ScanStatus::Failed,
        ScanStatus::DownloadFailed,
        ScanStatus::ImageOversized,
        ScanStatus::from("quarantined"),
    ];
    let flags = [Some(true), Some(false), None];
    let verdicts = std::iter::once(None).chain(Unsubmittable::ALL.map(Some));
    let verdicts: Vec<Option<Unsubmittable>> = verdicts.collect();
    let mut want = Vec::new();
    for image_type in &types {
        for status in &statuses {
            for scannable in flags {
                for latest in flags {
                    for unsubmittable in &verdicts {
                        let mut i = image(&format!("code{}", want.len()), status.clone());
                        i.image_type = image_type.clone();
                        i.scannable = scannable;
                        i.latest_version = latest;
                        i.unsubmittable = *unsubmittable;
                        want.push(i);
                    }
                }
            }
        }
    }
    let prepared: Vec<PreparedImage> = want.iter().cloned().map(PreparedImage::new).collect();
    store
        .upsert_images(target, &mut prepared.clone())
        .await
        .expect("insert");

    // A third of them in flight, through a batch, as a scan puts them there.
    let fence = lead(store, "suite").await;
    let seen = candidates(store, target, false).await;
    let plan: Vec<Planned> = seen
        .iter()
        .step_by(3)
        .map(|c| planned(c, target, DueReason::NeverScanned))
        .collect();
    let due = store.due_images(&plan).await.expect("due");
    let batch = NewBatch {
        target,
        image_type: &ImageType::Private,
        enterprise_project_id: "",
        parent_id: None,
        api: "current",
    };
    let claimed = store
        .record_pending_batch(&batch, &due, &fence)
        .await
        .expect("record")
        .into_claimed()
        .expect("claimed");
    assert!(claimed.left_out.is_empty());
    assert_eq!(claimed.kept(&due).len(), plan.len());
    let flying: std::collections::HashSet<i64> = plan.iter().map(|p| p.row_id).collect();

    let by_name = |c: &Candidate| {
        want.iter()
            .find(|w| w.image_name == c.image_name)
            .expect("an image")
            .clone()
    };
    let check = |seen: &[Candidate], in_flight: &dyn Fn(i64) -> bool| {
        assert_eq!(seen.len(), want.len());
        for c in seen {
            assert_candidate_reads_back(c, &by_name(c), in_flight(c.row_id));
        }
    };
    check(&candidates(store, target, true).await, &|id| {
        flying.contains(&id)
    });
    // Refused: every image out of flight again.
    let refused = BatchFailure {
        http_status: Some(400),
        message: "refused".into(),
        ..BatchFailure::default()
    };
    store
        .mark_batch_failed(claimed.batch_id, &refused)
        .await
        .expect("failed");
    check(&candidates(store, target, true).await, &|_| false);
}

/// Asserts that candidate `c` carries what was stored of `w`: type, status, flags, verdict,
/// and whether it is `in_flight`. Unknown types and statuses come back as `Other` without
/// their text, which the policy never reads.
pub(super) fn assert_candidate_reads_back(c: &Candidate, w: &Image, in_flight: bool) {
    let name = &w.image_name;
    let same_type = c.image_type == w.image_type
        || matches!(
            (&c.image_type, &w.image_type),
            (ImageType::Other(_), ImageType::Other(_))
        );
    let same_status = c.scan_status == w.scan_status
        || matches!(
            (&c.scan_status, &w.scan_status),
            (ScanStatus::Other(_), ScanStatus::Other(_))
        );
    assert!(
        same_type,
        "{name}: type {:?} for {:?}",
        c.image_type, w.image_type
    );
    assert!(
        same_status,
        "{name}: status {:?} for {:?}",
        c.scan_status, w.scan_status
    );
    assert_eq!(c.scannable, w.scannable, "{name}: scannable");
    assert_eq!(c.latest_version, w.latest_version, "{name}: latest");
    assert_eq!(c.unsubmittable, w.unsubmittable, "{name}: verdict");
    assert_eq!(c.in_flight, in_flight, "{name}: in flight");
}

/// What the store knows of target `inv`'s images of type `t`, by key hash.
async fn known_by_key(
    store: &Store,
    t: &ImageType,
) -> std::collections::HashMap<i64, crate::store::KnownImage> {
    let known = store.known_images("inv", t).await.expect("known");
    known.into_iter().collect()
}

fn planned(c: &Candidate, target: &str, reason: DueReason) -> Planned {
    let group = PlanGroup {
        target: target.into(),
        image_type: c.image_type.clone(),
    };
    let due = Due {
        reason,
        rule: Some(0),
        priority: 3,
    };
    Planned::new(
        c.row_id,
        Arc::new(group),
        due,
        c.latest_scan_time,
        c.last_submitted_at,
    )
}

async fn submissions(store: &Store) {
    let clock = store.clock().clone();
    let fence = lead(store, "suite").await;
    let target = "sub";
    let mut enterprise = image("a", ScanStatus::Unscan);
    enterprise.instance_id = "inst".into();
    enterprise.instance_url = "https://e".into();
    store
        .upsert_images(
            target,
            &mut vec![
                PreparedImage::new(enterprise),
                PreparedImage::new(image("b", ScanStatus::Success)),
            ],
        )
        .await
        .expect("insert");
    let seen = candidates(store, target, false).await;
    let plan = vec![
        planned(&seen[1], target, DueReason::Stale),
        planned(&seen[0], target, DueReason::NeverScanned),
    ];
    let due = store.due_images(&plan).await.expect("due images");
    assert_eq!(due.len(), 2, "in plan order");
    assert_eq!(due[0].identity.image_name, "b");
    assert_eq!(
        (
            due[1].identity.instance_id.as_str(),
            due[1].identity.instance_url.as_str()
        ),
        ("inst", "https://e")
    );
    assert_eq!(due[1].scan_status, ScanStatus::Unscan);

    // A batch is recorded pending before its call, its images in flight.
    let batch = NewBatch {
        target,
        image_type: &ImageType::Private,
        enterprise_project_id: "",
        parent_id: None,
        api: "current",
    };
    let submitted_at = clock.now_ms();
    let first = store
        .record_pending_batch(&batch, &due, &fence)
        .await
        .expect("record")
        .into_claimed()
        .expect("both claimed");
    assert!(first.left_out.is_empty());
    assert_eq!(first.kept(&due), due, "every image claimed, in order");
    let first = first.batch_id;
    assert_eq!(store.submitted_since(submitted_at).await.expect("used"), 2);
    let in_flight = candidates(store, target, false).await;
    assert!(
        in_flight
            .iter()
            .all(|c| c.in_flight && c.last_submitted_at == Some(submitted_at))
    );
    let open = store
        .open_items(target, &ImageType::Private)
        .await
        .expect("open");
    assert_eq!(open.len(), 2);
    assert!(open.iter().all(|i| i.batch_id == first
        && i.batch_status == BatchStatus::Pending
        && i.submitted_at == submitted_at));
    let b = open
        .iter()
        .find(|i| i.image_row_id == seen[1].row_id)
        .expect("b");
    assert_eq!(
        (&b.status_before, &b.scan_status),
        (&ScanStatus::Success, &ScanStatus::Success)
    );

    // Accepted; then one scanned successfully, the other never received.
    clock.advance(Duration::from_secs(1));
    store
        .mark_batch_sent(first, Some("task-1"))
        .await
        .expect("sent");
    let batches = store.recent_batches(10).await.expect("batches");
    assert_eq!(
        (batches[0].id, batches[0].status.as_str(), batches[0].items),
        (first, "sent", 2)
    );
    assert_eq!(
        (batches[0].api.as_str(), batches[0].task_id.as_deref()),
        ("current", Some("task-1"))
    );
    assert_eq!(store.submitted_total(target).await.expect("total"), 2);

    // The task is followed until it ends; the images it says failed are noted.
    let open = store.open_tasks(target).await.expect("open tasks");
    assert_eq!(
        open.iter().map(|t| t.task_id.as_str()).collect::<Vec<_>>(),
        ["task-1"]
    );
    let mut task = ScanTask {
        task_id: "task-1".into(),
        progress: 50,
        total: Some(2),
        succeeded: Some(1),
        failed: None,
        failed_images: Vec::new(),
    };
    store.record_task(first, &task).await.expect("progress");
    assert_eq!(store.open_tasks(target).await.expect("open").len(), 1);
    task.progress = 100;
    task.failed = Some(1);
    task.failed_images = vec![(Some(7), "download_failed".into())];
    store.record_task(first, &task).await.expect("ended");
    assert!(store.open_tasks(target).await.expect("open").is_empty());
    let batches = store.recent_batches(1).await.expect("batches");
    assert_eq!(
        (
            batches[0].task_progress,
            batches[0].task_succeeded,
            batches[0].task_failed
        ),
        (Some(100), Some(1), Some(1))
    );
    assert_eq!(batches[0].answered_at, Some(submitted_at + 1000));
    let open = store
        .open_items(target, &ImageType::Private)
        .await
        .expect("open");
    assert!(open.iter().all(|i| i.batch_status == BatchStatus::Sent));
    let outcomes: Vec<_> = open
        .into_iter()
        .map(|item| {
            let outcome = if item.image_row_id == seen[0].row_id {
                ItemOutcome::Success
            } else {
                ItemOutcome::Lost
            };
            (item, outcome)
        })
        .collect();
    store.close_items(&outcomes).await.expect("close");
    let after = candidates(store, target, false).await;
    assert!(after.iter().all(|c| !c.in_flight), "closed: out of flight");
    assert_eq!(after[0].last_submitted_at, Some(submitted_at));
    assert_eq!(
        after[1].last_submitted_at, None,
        "lost: the earlier submission time comes back"
    );
    assert!(
        store
            .open_items(target, &ImageType::Private)
            .await
            .expect("open")
            .is_empty()
    );

    // A refused batch releases its images; an unanswered one stays pending with its error.
    // (A new plan: the first one was read before these images were last submitted.)
    let seen = candidates(store, target, false).await;
    let plan = vec![
        planned(&seen[1], target, DueReason::Stale),
        planned(&seen[0], target, DueReason::Stale),
    ];
    let due = store.due_images(&plan).await.expect("due images");
    let refused = store
        .record_pending_batch(&batch, &due[..1], &fence)
        .await
        .expect("record")
        .into_claimed()
        .expect("claimed")
        .batch_id;
    let failure = BatchFailure {
        http_status: Some(400),
        error_code: Some("HSS.0001".into()),
        request_id: Some("rid".into()),
        message: "refused".into(),
    };
    store
        .mark_batch_failed(refused, &failure)
        .await
        .expect("failed");
    let released = candidates(store, target, false).await;
    assert!(!released[1].in_flight);
    assert_eq!(
        released[1].last_submitted_at, None,
        "a refused submission never counted"
    );
    let unanswered = store
        .record_pending_batch(&batch, &due[1..], &fence)
        .await
        .expect("record")
        .into_claimed()
        .expect("claimed")
        .batch_id;
    let timeout = BatchFailure {
        message: "no answer".into(),
        ..BatchFailure::default()
    };
    store
        .mark_batch_unknown(unanswered, &timeout)
        .await
        .expect("unknown");
    let batches = store.recent_batches(2).await.expect("batches");
    assert_eq!(
        (
            batches[0].status.as_str(),
            batches[0].error.as_deref(),
            batches[0].answered_at.is_some()
        ),
        ("pending", Some("no answer"), true)
    );
    assert_eq!(
        (
            batches[1].status.as_str(),
            batches[1].error_code.as_deref(),
            batches[1].http_status,
            batches[1].request_id.as_deref()
        ),
        ("failed", Some("HSS.0001"), Some(400), Some("rid"))
    );
    assert!(candidates(store, target, false).await[0].in_flight);
    assert_eq!(
        store.submitted_since(submitted_at).await.expect("used"),
        3,
        "refused batches do not use the budget"
    );
    // Read before that batch claimed it, the image is another process's now: not claimed
    // twice, and no batch is recorded for nothing.
    let batches_before = store.recent_batches(100).await.expect("batches").len();
    assert_eq!(
        store
            .record_pending_batch(&batch, &due[1..], &fence)
            .await
            .expect("record"),
        Claim::NothingLeft
    );
    let claimed = store
        .record_pending_batch(&batch, &due, &fence)
        .await
        .expect("record")
        .into_claimed()
        .expect("one left");
    assert_eq!(claimed.left_out, [due[1].planned.row_id]);
    assert_eq!(claimed.kept(&due), due[..1], "only the unclaimed image");
    store
        .mark_batch_failed(claimed.batch_id, &failure)
        .await
        .expect("failed");
    assert_eq!(
        store.recent_batches(100).await.expect("batches").len(),
        batches_before + 1
    );
    // The split child of a batch names its parent.
    let child = NewBatch {
        parent_id: Some(refused),
        ..batch
    };
    let split = store
        .record_pending_batch(&child, &due[..1], &fence)
        .await
        .expect("record")
        .into_claimed()
        .expect("claimed")
        .batch_id;
    let batches = store.recent_batches(1).await.expect("batches");
    assert_eq!(
        (batches[0].id, batches[0].parent_id),
        (split, Some(refused))
    );
}

/// What a re-pushed tag and the findings need: the latest push when it is later than the
/// scan, whether the digest differs from our last submission's (kept, and given back when a
/// submission never counted), when an image appeared, and the findings counted per target.
async fn changes_and_findings(store: &Store) {
    let clock = store.clock().clone();
    let fence = lead(store, "suite").await;
    let target = "chg";
    let digest = |c: char| format!("sha256:{}", c.to_string().repeat(64));
    let mut pushed = image("a", ScanStatus::Success);
    pushed.image_digest = digest('1');
    pushed.latest_scan_time = Some(100);
    pushed.latest_update_time = Some(200);
    pushed.severity_level = "Low".into();
    pushed.unsafe_setting_num = Some(2);
    let mut scanned = image("b", ScanStatus::Success);
    scanned.image_digest = digest('2');
    scanned.latest_scan_time = Some(300);
    scanned.latest_update_time = Some(200);
    scanned.severity_level = "High".into();
    scanned.malicious_file_num = Some(1);
    let mut undated = image("c", ScanStatus::Unscan);
    undated.latest_update_time = None;
    undated.vul_num = None;
    let first_seen = clock.now_ms();
    store
        .upsert_images(
            target,
            &mut vec![
                PreparedImage::new(pushed),
                PreparedImage::new(scanned.clone()),
                PreparedImage::new(undated),
            ],
        )
        .await
        .expect("insert");
    let seen = candidates(store, target, false).await;
    assert_eq!(
        (seen[0].updated_after_scan, seen[1].updated_after_scan),
        (Some(200), None),
        "the latest push only when it is later than the scan"
    );
    assert!(seen.iter().all(|c| !c.digest_changed), "never submitted");

    // The findings, counted per target; a deleted image no longer counts.
    let risks = store.risk_counts().await.expect("risks");
    let chg = risks.iter().find(|r| r.target == target).expect("chg");
    assert_eq!(
        chg.by_severity
            .iter()
            .map(|(s, n)| (*s, *n))
            .collect::<Vec<_>>(),
        [(Severity::Low, 1), (Severity::High, 1)]
    );
    assert_eq!((chg.with_malicious_files, chg.with_unsafe_settings), (1, 1));
    let riskiest: Vec<_> = store
        .riskiest_images(1000)
        .await
        .expect("riskiest")
        .into_iter()
        .filter(|r| r.target == target)
        .collect();
    assert_eq!(
        riskiest
            .iter()
            .map(|r| (r.image_name.as_str(), r.severity))
            .collect::<Vec<_>>(),
        [("b", Some(Severity::High)), ("a", Some(Severity::Low))],
        "most severe first; an image without findings is not listed"
    );
    assert_eq!(riskiest[0].latest_scan_time, Some(300));

    // When each appeared: HSS's latest push, else when the sync first saw it.
    let plan = vec![
        planned(&seen[1], target, DueReason::Stale),
        planned(&seen[2], target, DueReason::NeverScanned),
    ];
    let due = store.due_images(&plan).await.expect("due");
    assert_eq!((due[0].appeared_at, due[1].appeared_at), (200, first_seen));
    assert_eq!(
        (due[0].last_submitted_at, due[0].submitted_digest_hash),
        (None, None)
    );

    // Submitted, scanned and failed: the digest it had is ours now, and a failure counted.
    let batch = NewBatch {
        target,
        image_type: &ImageType::Private,
        enterprise_project_id: "",
        parent_id: None,
        api: "current",
    };
    let first = store
        .record_pending_batch(&batch, &due[..1], &fence)
        .await
        .expect("record")
        .into_claimed()
        .expect("claimed")
        .batch_id;
    store.mark_batch_sent(first, None).await.expect("sent");
    let open = store
        .open_items(target, &ImageType::Private)
        .await
        .expect("open");
    let outcomes: Vec<_> = open
        .into_iter()
        .map(|item| (item, ItemOutcome::Failed))
        .collect();
    store.close_items(&outcomes).await.expect("close");
    let b = &candidates(store, target, false).await[1];
    assert_eq!((b.digest_changed, b.failed_submissions), (false, 1));

    // Pushed again: other content than we submitted.
    clock.advance(Duration::from_secs(1));
    let mut repushed = scanned.clone();
    repushed.image_digest = digest('3');
    store
        .upsert_images(target, &mut vec![PreparedImage::new(repushed)])
        .await
        .expect("re-push");
    let seen = candidates(store, target, false).await;
    assert!(seen[1].digest_changed, "a new digest is a change");
    let due = store
        .due_images(&[planned(&seen[1], target, DueReason::Changed)])
        .await
        .expect("due");
    assert_eq!(due[0].submitted_digest_hash, digest_hash(&digest('2')));

    // A changed submission starts the count of failures afresh and makes the digest ours.
    let changed = store
        .record_pending_batch(&batch, &due, &fence)
        .await
        .expect("record")
        .into_claimed()
        .expect("claimed")
        .batch_id;
    let b = &candidates(store, target, false).await[1];
    assert_eq!(
        (b.digest_changed, b.failed_submissions, b.in_flight),
        (false, 0, true)
    );
    // HSS refused it: the digest of the submission before comes back, still a change.
    let failure = BatchFailure {
        message: "refused".into(),
        ..BatchFailure::default()
    };
    store
        .mark_batch_failed(changed, &failure)
        .await
        .expect("failed");
    let b = &candidates(store, target, false).await[1];
    assert!(b.digest_changed && !b.in_flight, "{b:?}");
    assert_eq!(
        b.last_submitted_at,
        Some(due[0].last_submitted_at.expect("ours"))
    );

    assert_eq!(
        store.mark_deleted(&[seen[1].row_id]).await.expect("delete"),
        1
    );
    let risks = store.risk_counts().await.expect("risks");
    let chg = risks.iter().find(|r| r.target == target).expect("chg");
    assert_eq!(
        (
            chg.by_severity.get(&Severity::High),
            chg.with_malicious_files
        ),
        (None, 0),
        "deleted images are not counted"
    );
}

async fn run_log(store: &Store) {
    let clock = store.clock().clone();
    let run = store
        .start_sync_run("runs", &ImageType::Shared)
        .await
        .expect("start");
    let started = clock.now_ms();
    clock.advance(Duration::from_secs(3));
    let counts = SyncRunCounts {
        pages: 2,
        total_num: Some(300),
        seen: 300,
        new: 10,
        changed: 5,
        restored: 1,
        deleted: 2,
        held: 3,
        unreadable_fields: 4,
    };
    store
        .finish_sync_run(run, SyncOutcome::Complete, &counts, Some("note"))
        .await
        .expect("finish");
    let runs = store.recent_sync_runs(5).await.expect("runs");
    let last = &runs[0];
    assert_eq!(
        (
            last.id,
            last.target.as_str(),
            last.image_type.as_str(),
            last.outcome.as_str()
        ),
        (run, "runs", "shared_image", "complete")
    );
    assert_eq!(
        (last.started_at, last.finished_at),
        (started, Some(started + 3000))
    );
    assert_eq!((last.counts, last.error.as_deref()), (counts, Some("note")));
    assert_eq!(
        store.last_complete_sync("runs").await.expect("last"),
        Some(started + 3000)
    );
    assert_eq!(store.last_complete_sync("none").await.expect("last"), None);

    let job = store
        .start_job_run(Job::Scan, "r1", "schedule")
        .await
        .expect("start");
    store
        .record_skipped_run(Job::Scan, "r2", "schedule")
        .await
        .expect("skipped");
    clock.advance(Duration::from_secs(1));
    store
        .finish_job_run(job, JobOutcome::Success, "all done", None)
        .await
        .expect("finish");
    let jobs = store.recent_job_runs(5).await.expect("jobs");
    let outcomes: Vec<(&str, &str, &str)> = jobs
        .iter()
        .map(|j| (j.run_id.as_str(), j.job.as_str(), j.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [("r2", "scan", "skipped"), ("r1", "scan", "success")]
    );
    assert_eq!(jobs[1].summary.as_deref(), Some("all done"));
    assert_eq!(
        store.last_job_success(Job::Scan).await.expect("last"),
        jobs[1].finished_at
    );
    assert_eq!(store.last_job_success(Job::Sync).await.expect("last"), None);

    // What a target's project said: replaced whole, read back as written.
    assert!(store.target_facts().await.expect("facts").is_empty());
    let mut facts = TargetFacts {
        target: "runs".into(),
        api: "legacy_fallback".into(),
        fell_back_at: Some(clock.now_ms()),
        native_scan_policy: None,
        pay_per_scan: None,
        checked_at: clock.now_ms(),
    };
    store.record_target_facts(&facts).await.expect("record");
    facts.api = "current".into();
    facts.fell_back_at = None;
    facts.native_scan_policy = Some(NativeScanPolicy {
        enabled: true,
        scan_cycle_days: Some(7),
        time_scope_days: Some(0),
        all_registries: false,
        rate_limit: None,
        registries: vec!["harbor-prod".into()],
    });
    facts.pay_per_scan = Some(PayPerScan {
        enabled: Some(false),
        repository_scans: Some(12),
        ..PayPerScan::default()
    });
    store.record_target_facts(&facts).await.expect("replace");
    assert_eq!(store.target_facts().await.expect("facts"), [facts]);
}

/// How syncs listed, the history the next one decides by, and the narrow inventory reads.
async fn listings(store: &Store) {
    let clock = store.clock().clone();
    let private_type = ImageType::Private;
    let private = &private_type;
    assert_eq!(
        store
            .listing_history("listings", private)
            .await
            .expect("history"),
        ListingHistory::default()
    );
    let sync = |kind: ListingKind, outcome: SyncOutcome, window: Option<(i64, i64)>| {
        let clock = clock.clone();
        async move {
            let run = store
                .start_sync_run("listings", private)
                .await
                .expect("start");
            let started = clock.now_ms();
            let listing = SyncListing {
                kind,
                reason: format!("{} for the suite", kind.as_str()),
                window_start: window.map(|w| w.0),
                window_end: window.map(|w| w.1),
                missed: 0,
            };
            store
                .record_sync_listing(run, &listing)
                .await
                .expect("listing");
            clock.advance(Duration::from_secs(60));
            store
                .finish_sync_run(run, outcome, &SyncRunCounts::default(), None)
                .await
                .expect("finish");
            (run, started)
        }
    };
    let (_, full_at) = sync(ListingKind::Full, SyncOutcome::Complete, None).await;
    let (second, second_at) = sync(
        ListingKind::Incremental,
        SyncOutcome::Complete,
        Some((full_at - 600_000, full_at + 60_000)),
    )
    .await;
    let (third, third_at) = sync(
        ListingKind::Incremental,
        SyncOutcome::Partial,
        Some((second_at - 600_000, second_at)),
    )
    .await;
    let history = store
        .listing_history("listings", private)
        .await
        .expect("history");
    let previous = history.previous.clone().expect("a previous sync");
    assert_eq!(
        (
            previous.id,
            previous.started_at,
            previous.kind,
            previous.complete()
        ),
        (third, third_at, ListingKind::Incremental, false)
    );
    assert_eq!(history.last_complete_full, Some(full_at));
    assert_eq!(
        history
            .incremental_since_full
            .iter()
            .map(|p| (p.id, p.window_start, p.window_end))
            .collect::<Vec<_>>(),
        [(second, Some(full_at - 600_000), Some(full_at + 60_000))],
        "only complete incremental listings count"
    );
    assert!(
        store
            .listing_history("listings", &ImageType::Shared)
            .await
            .expect("history")
            .previous
            .is_none(),
        "per image type"
    );
    // A full listing that did not complete still starts a new stretch of incremental ones.
    let (partial_full, _) = sync(ListingKind::Full, SyncOutcome::Partial, None).await;
    let history = store
        .listing_history("listings", private)
        .await
        .expect("history");
    assert_eq!(history.previous.map(|p| p.id), Some(partial_full));
    assert_eq!(history.last_complete_full, Some(full_at));
    assert!(history.incremental_since_full.is_empty());
    // The self-check's finding is recorded at the end and shown with the run.
    store
        .record_sync_listing(
            partial_full,
            &SyncListing {
                kind: ListingKind::Full,
                reason: "checked".into(),
                window_start: None,
                window_end: None,
                missed: 7,
            },
        )
        .await
        .expect("listing");
    let runs = store.recent_sync_runs(2).await.expect("runs");
    assert_eq!(
        (runs[0].listing, runs[0].missed, runs[1].listing),
        (ListingKind::Full, 7, ListingKind::Incremental)
    );

    let mut first = image("listed-1", ScanStatus::Success);
    first.latest_scan_time = Some(40);
    first.latest_sync_time = Some(30);
    let prepared = [
        PreparedImage::new(first),
        PreparedImage::new(image("listed-2", ScanStatus::Unscan)),
    ];
    store
        .upsert_images("listings", &mut prepared.to_vec())
        .await
        .expect("upsert");
    let unknown_key = 12345;
    let keys = [prepared[0].key_hash, prepared[1].key_hash, unknown_key];
    let known = store
        .known_images_by_key("listings", private, &keys)
        .await
        .expect("by key");
    assert_eq!(known.len(), 2, "{known:?}");
    let one = known[&prepared[0].key_hash];
    assert_eq!(
        (one.content_hash, one.deleted),
        (prepared[0].content_hash, false)
    );
    assert!(
        store
            .known_images_by_key("other", private, &keys)
            .await
            .expect("by key")
            .is_empty(),
        "per target"
    );
    let times = store.stored_times(&[one.row_id, -1]).await.expect("times");
    assert_eq!(
        times.into_iter().collect::<Vec<_>>(),
        [(
            one.row_id,
            StoredTimes {
                latest_update_time: Some(5),
                latest_sync_time: Some(30),
                latest_scan_time: Some(40),
            }
        )]
    );
}

#[tokio::test]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("suite.db").display());
    let store = super::open(&url, Clock::manual(START)).await.expect("open");
    suite(store.clone()).await;
    store.close().await;
}

#[tokio::test]
async fn an_unknown_scheme_is_refused_by_name() {
    let err = super::open("mysql://db/hss", Clock::system())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("\"mysql\""), "{err}");
}

#[tokio::test]
async fn sqlite_is_exclusive_across_processes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("contention.db").display());
    let clock = Clock::manual(START);
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(super::open(&url, clock.clone()).await.expect("open"));
    }
    contention(&stores).await;
    for store in stores {
        store.close().await;
    }
}

/// Several processes (each its own store, its own connections) on one empty database at
/// once: one of them takes a free lease, and of the same images claimed by all of them at
/// once, each goes to exactly one batch.
pub(crate) async fn contention(stores: &[Store]) {
    let ttl = Duration::from_secs(60);
    let attempts = futures::future::join_all(
        stores
            .iter()
            .enumerate()
            .map(|(n, s)| async move { s.acquire_lease(&format!("process-{n}"), ttl).await }),
    )
    .await;
    let fences: Vec<Fence> = attempts
        .into_iter()
        .filter_map(|a| match a.expect("an answer") {
            LeaseAttempt::Held(fence) => Some(fence),
            LeaseAttempt::HeldBy(_) => None,
        })
        .collect();
    assert_eq!(fences.len(), 1, "one holder: {fences:?}");
    let fence = &fences[0];
    assert_eq!(fence.term, 1);

    let target = "contended";
    let images: Vec<PreparedImage> = (0..200)
        .map(|n| PreparedImage::new(image(&format!("c{n}"), ScanStatus::Unscan)))
        .collect();
    stores[0]
        .upsert_images(target, &mut images.clone())
        .await
        .expect("insert");
    let seen = candidates(&stores[0], target, false).await;
    let plan: Vec<Planned> = seen
        .iter()
        .map(|c| planned(c, target, DueReason::NeverScanned))
        .collect();
    let due = stores[0].due_images(&plan).await.expect("due");
    let batch = NewBatch {
        target,
        image_type: &ImageType::Private,
        enterprise_project_id: "",
        parent_id: None,
        api: "legacy",
    };
    // Every process claims every image at once, each in its own order, as two replicas
    // that both believe they lead would.
    let claims = futures::future::join_all(stores.iter().enumerate().map(|(n, s)| {
        let mut mine = due.clone();
        mine.rotate_left(n * due.len() / stores.len());
        let batch = &batch;
        async move {
            let claim = s.record_pending_batch(batch, &mine, fence).await;
            (mine, claim)
        }
    }))
    .await;
    let mut claimed: Vec<i64> = Vec::new();
    for (offered, claim) in claims {
        match claim.expect("recorded or refused") {
            Claim::Claimed(c) => {
                claimed.extend(c.kept(&offered).iter().map(|d| d.planned.row_id));
            }
            Claim::NothingLeft => {}
            Claim::Fenced(lease) => panic!("the holder was fenced: {lease:?}"),
        }
    }
    claimed.sort_unstable();
    let mut all: Vec<i64> = seen.iter().map(|c| c.row_id).collect();
    all.sort_unstable();
    assert_eq!(claimed, all, "every image claimed exactly once");
    let open = stores[0]
        .open_items(target, &ImageType::Private)
        .await
        .expect("open");
    assert_eq!(open.len(), all.len(), "one open item per image");

    // Read a page at a time and closed as each page is read, as reconciliation does: every
    // item comes once, in image row order, and closing one page moves no other.
    let mut pages = stores[1].open_item_pages(target, &ImageType::Private, 7);
    let mut paged = Vec::new();
    while let Some(page) = pages.next_page().await.expect("a page") {
        assert!(page.len() <= 7);
        paged.extend(page.iter().map(|item| item.image_row_id));
        let closing: Vec<_> = page
            .into_iter()
            .map(|item| (item, ItemOutcome::Success))
            .collect();
        stores[1].close_items(&closing).await.expect("close");
    }
    assert_eq!(paged, all, "each item once, in image row order");
    assert!(
        stores[0]
            .open_items(target, &ImageType::Private)
            .await
            .expect("open")
            .is_empty()
    );
}

#[tokio::test]
#[ignore = "needs PostgreSQL: .ci/run starts one and sets HSS_SCAND_TEST_POSTGRES_URL"]
async fn postgres_passes_the_conformance_suite() {
    let db = super::postgres::testing::TestDatabase::create(super::postgres::testing::TEST_URL_VAR)
        .await;
    let store = super::open(&db.url, Clock::manual(START))
        .await
        .expect("open");
    suite(store.clone()).await;
    store.close().await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL: .ci/run starts one and sets HSS_SCAND_TEST_POSTGRES_URL"]
async fn postgres_is_exclusive_across_processes() {
    let db = super::postgres::testing::TestDatabase::create(super::postgres::testing::TEST_URL_VAR)
        .await;
    let clock = Clock::manual(START);
    // Opened together, as replicas starting at once: the migration runs once.
    let opened = futures::future::join_all((0..4).map(|_| super::open(&db.url, clock.clone())));
    let stores: Vec<Store> = opened.await.into_iter().map(|s| s.expect("open")).collect();
    contention(&stores).await;
    for store in stores {
        store.close().await;
    }
}
