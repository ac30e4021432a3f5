use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::config::Settings;
use crate::domain::ImageType;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
const NOW: i64 = 1_800_000_000_000;

/// Defaults from `config/default.toml` (rescan 7d, retry 6h × 3, timeout 6h), plus `extra`.
fn policy(extra: &str) -> PolicySettings {
    let text = format!(
        "[[targets]]\nname = \"t\"\nregion = \"r-1\"\nproject_id = \"p\"\n\
         image_types = [\"private_image\", \"shared_image\"]\n{extra}"
    );
    Settings::from_toml_str(&text, "test.toml")
        .expect("valid test settings")
        .policy
}

fn target() -> Target {
    Target {
        name: "t".into(),
        region: "r-1".into(),
        project_id: "p".into(),
        enterprise_project_id: String::new(),
        image_types: vec![ImageType::Private, ImageType::Shared],
        trigger_swr_sync: false,
        api: None,
    }
}

fn image(id: i64, status: ScanStatus) -> Candidate {
    Candidate {
        row_id: id,
        image_type: ImageType::Private,
        namespace: "prod-web".into(),
        image_name: "api".into(),
        image_version: "v1".into(),
        unsubmittable: None,
        scan_status: status,
        latest_scan_time: None,
        scannable: Some(true),
        latest_version: Some(true),
        last_submitted_at: None,
        in_flight: false,
        failed_submissions: 0,
    }
}

fn due(reason: DueReason) -> Verdict {
    Verdict::Due(Due {
        reason,
        rule: None,
        priority: 0,
    })
}

#[test]
fn the_due_rules_table() {
    use ScanStatus::*;
    let p = policy("");
    let with = |status: ScanStatus, f: &dyn Fn(&mut Candidate)| {
        let mut c = image(1, status);
        f(&mut c);
        c
    };
    let cases: Vec<(&str, Candidate, Verdict)> = vec![
        (
            "unscan is never_scanned",
            with(Unscan, &|_| {}),
            due(DueReason::NeverScanned),
        ),
        (
            "failed, never submitted by us: retried at once",
            with(Failed, &|_| {}),
            due(DueReason::FailedRetry),
        ),
        (
            "download_failed counts as failed",
            with(DownloadFailed, &|c| {
                c.last_submitted_at = Some(NOW - 7 * HOUR)
            }),
            due(DueReason::FailedRetry),
        ),
        (
            "failed, our submission 5h ago: wait for retry_failed_after",
            with(Failed, &|c| c.last_submitted_at = Some(NOW - 5 * HOUR)),
            Verdict::NotDue(NotDue::RetryLater),
        ),
        (
            "failed 3 times in a row after our submissions: give up",
            with(Failed, &|c| {
                c.failed_submissions = 3;
                c.last_submitted_at = Some(NOW - 30 * DAY);
            }),
            Verdict::NotDue(NotDue::RetriesExhausted),
        ),
        (
            "failed twice: one more try",
            with(Failed, &|c| {
                c.failed_submissions = 2;
                c.last_submitted_at = Some(NOW - 7 * HOUR);
            }),
            due(DueReason::FailedRetry),
        ),
        (
            "image_oversized is never retried",
            with(ImageOversized, &|_| {}),
            Verdict::NotDue(NotDue::Oversized),
        ),
        (
            "success 8 days ago is stale",
            with(Success, &|c| c.latest_scan_time = Some(NOW - 8 * DAY)),
            due(DueReason::Stale),
        ),
        (
            "success 6 days ago is fresh",
            with(Success, &|c| c.latest_scan_time = Some(NOW - 6 * DAY)),
            Verdict::NotDue(NotDue::Fresh),
        ),
        (
            "success without a scan time: our submission stands in",
            with(Success, &|c| c.last_submitted_at = Some(NOW - DAY)),
            Verdict::NotDue(NotDue::Fresh),
        ),
        (
            "success without any time: stale once",
            with(Success, &|_| {}),
            due(DueReason::Stale),
        ),
        (
            "scanning by HSS on its own is not ours to judge",
            with(Scanning, &|_| {}),
            Verdict::NotDue(NotDue::ScanningInHss),
        ),
        (
            "ours, scanning for 7h: stuck",
            with(Scanning, &|c| {
                c.last_submitted_at = Some(NOW - 7 * HOUR);
                c.in_flight = true;
            }),
            due(DueReason::Stuck),
        ),
        (
            "ours, waiting for 1h: in flight",
            with(WaitingForScan, &|c| {
                c.last_submitted_at = Some(NOW - HOUR);
                c.in_flight = true;
            }),
            Verdict::NotDue(NotDue::InFlight),
        ),
        (
            "in flight beats every reason, even unscan",
            with(Unscan, &|c| {
                c.last_submitted_at = Some(NOW - HOUR);
                c.in_flight = true;
            }),
            Verdict::NotDue(NotDue::InFlight),
        ),
        (
            "in flight for longer than scanning_timeout: due again by its status",
            with(Unscan, &|c| {
                c.last_submitted_at = Some(NOW - 7 * HOUR);
                c.in_flight = true;
            }),
            due(DueReason::NeverScanned),
        ),
        (
            "an unknown status is counted, not due",
            with(Other("quarantined".into()), &|_| {}),
            Verdict::NotDue(NotDue::UnknownStatus),
        ),
        (
            "scannable=false is excluded",
            with(Unscan, &|c| c.scannable = Some(false)),
            Verdict::Excluded(Excluded::Unscannable),
        ),
        (
            "scannable unknown is eligible",
            with(Unscan, &|c| c.scannable = None),
            due(DueReason::NeverScanned),
        ),
        (
            "a type the target does not scan",
            with(Unscan, &|c| c.image_type = ImageType::Instance),
            Verdict::Excluded(Excluded::TypeNotConfigured),
        ),
        (
            "a field the batch-scan call would refuse",
            with(Unscan, &|c| {
                c.unsubmittable = Some(Unsubmittable::FieldTooLong)
            }),
            Verdict::Excluded(Excluded::FieldTooLong),
        ),
    ];
    for (name, candidate, want) in cases {
        assert_eq!(assess(&target(), &candidate, &p, NOW), want, "{name}");
    }
}

#[test]
fn rules_match_first_and_set_rescan_priority_and_skip() {
    let p = policy(
        r#"
[[policy.rules]]
namespace = "prod-*"
rescan_after = "1d"
priority = 10
[[policy.rules]]
namespace = "prod-*"
priority = 99
[[policy.rules]]
namespace = "sandbox-*"
skip = true
[[policy.rules]]
tag = "*-rc*"
priority = -5
"#,
    );
    let mut c = image(1, ScanStatus::Success);
    c.latest_scan_time = Some(NOW - 2 * DAY);
    assert_eq!(
        assess(&target(), &c, &p, NOW),
        Verdict::Due(Due {
            reason: DueReason::Stale,
            rule: Some(0),
            priority: 10
        }),
        "the first matching rule wins, with its own rescan_after"
    );
    c.namespace = "sandbox-x".into();
    assert_eq!(
        assess(&target(), &c, &p, NOW),
        Verdict::Excluded(Excluded::SkippedByRule)
    );
    c.namespace = "dev".into();
    assert_eq!(
        assess(&target(), &c, &p, NOW),
        Verdict::NotDue(NotDue::Fresh),
        "global 7d"
    );
    c.image_version = "2.0-rc1".into();
    c.scan_status = ScanStatus::Unscan;
    assert_eq!(
        assess(&target(), &c, &p, NOW),
        Verdict::Due(Due {
            reason: DueReason::NeverScanned,
            rule: Some(3),
            priority: -5
        })
    );
}

#[test]
fn latest_only_excludes_older_versions() {
    let p = policy("[policy]\nlatest_only = true\n");
    let mut c = image(1, ScanStatus::Unscan);
    c.latest_version = Some(false);
    assert_eq!(
        assess(&target(), &c, &p, NOW),
        Verdict::Excluded(Excluded::NotLatest)
    );
    c.latest_version = None;
    assert_eq!(
        assess(&target(), &c, &p, NOW),
        Verdict::Excluded(Excluded::NotLatest)
    );
    c.latest_version = Some(true);
    assert_eq!(assess(&target(), &c, &p, NOW), due(DueReason::NeverScanned));
}

#[test]
fn order_is_priority_then_reason_then_oldest_scan_then_id() {
    let p = policy("[[policy.rules]]\nnamespace = \"hot\"\npriority = 5\n");
    let mut planner = Planner::new(&p, None);
    let mut add = |id: i64, status: ScanStatus, ns: &str, scan: Option<i64>| {
        let mut c = image(id, status);
        c.namespace = ns.into();
        c.latest_scan_time = scan;
        planner.add(&target(), &Arc::from("t"), &c, &p, NOW);
    };
    add(1, ScanStatus::Success, "cold", Some(NOW - 20 * DAY));
    add(2, ScanStatus::Success, "cold", Some(NOW - 30 * DAY));
    add(3, ScanStatus::Unscan, "cold", None);
    add(4, ScanStatus::Failed, "cold", Some(NOW - 9 * DAY));
    add(5, ScanStatus::Success, "hot", Some(NOW - 8 * DAY));
    add(6, ScanStatus::Unscan, "cold", None);
    let plan = planner.finish();
    let ids: Vec<i64> = plan.due.iter().map(|d| d.row_id).collect();
    assert_eq!(ids, [5, 3, 6, 4, 2, 1]);
}

#[test]
fn caps_cut_the_ordered_list_and_say_which() {
    let p = policy("[policy]\nmax_images_per_run = 3\n");
    let mut planner = Planner::new(&p, Some(2));
    for id in (0..10).rev() {
        planner.add(
            &target(),
            &Arc::from("t"),
            &image(id, ScanStatus::Unscan),
            &p,
            NOW,
        );
    }
    let plan = planner.finish();
    assert_eq!(plan.due.len(), 2);
    assert_eq!(plan.due_before_caps, 10);
    assert_eq!(plan.cut_by, Some(Cap::DailyBudget));
    assert_eq!(plan.tally.due_total(), 10);

    let mut planner = Planner::new(&p, Some(100));
    for id in [7, 2, 9, 0, 5, 1, 3, 8, 6, 4] {
        planner.add(
            &target(),
            &Arc::from("t"),
            &image(id, ScanStatus::Unscan),
            &p,
            NOW,
        );
    }
    let plan = planner.finish();
    assert_eq!(
        (plan.due.len(), plan.cut_by),
        (3, Some(Cap::MaxImagesPerRun))
    );
    let ids: Vec<i64> = plan.due.iter().map(|d| d.row_id).collect();
    assert_eq!(ids, [0, 1, 2], "the first in order are kept");
}

fn arb_status() -> impl Strategy<Value = ScanStatus> {
    prop_oneof![
        Just(ScanStatus::Unscan),
        Just(ScanStatus::Success),
        Just(ScanStatus::Failed),
        Just(ScanStatus::DownloadFailed),
        Just(ScanStatus::ImageOversized),
        Just(ScanStatus::Scanning),
        Just(ScanStatus::WaitingForScan),
        Just(ScanStatus::Other("x".into())),
    ]
}

prop_compose! {
    fn arb_candidate()(
        id in 0i64..400,
        status in arb_status(),
        ns in prop_oneof![Just("prod-a"), Just("dev-b"), Just("sandbox-c")],
        scan_age in proptest::option::of(0i64..40),
        submitted_age in proptest::option::of(0i64..40 * 24),
        in_flight in any::<bool>(),
        failed in 0u32..5,
        scannable in proptest::option::of(any::<bool>()),
    ) -> Candidate {
        let mut c = image(id, status);
        c.namespace = ns.into();
        c.latest_scan_time = scan_age.map(|d| NOW - d * DAY);
        c.last_submitted_at = submitted_age.map(|h| NOW - h * HOUR);
        c.in_flight = in_flight;
        c.failed_submissions = failed;
        c.scannable = scannable;
        c
    }
}

proptest! {
    #[test]
    fn plans_never_repeat_an_image_respect_caps_and_keep_order(
        candidates in proptest::collection::vec(arb_candidate(), 0..200),
        max_per_run in 0u64..50,
        budget_left in proptest::option::of(0u64..50),
    ) {
        let p = policy(&format!(
            "[policy]\nmax_images_per_run = {max_per_run}\n\
             [[policy.rules]]\nnamespace = \"prod-*\"\npriority = 3\nrescan_after = \"1d\"\n\
             [[policy.rules]]\nnamespace = \"sandbox-*\"\nskip = true\n"
        ));
        // The store never yields the same row twice; model that.
        let mut seen = HashSet::new();
        let candidates: Vec<Candidate> =
            candidates.into_iter().filter(|c| seen.insert(c.row_id)).collect();
        let name: Arc<str> = Arc::from("t");
        let mut planner = Planner::new(&p, budget_left);
        for c in &candidates {
            planner.add(&target(), &name, c, &p, NOW);
        }
        let plan = planner.finish();

        // The bounded planner keeps exactly the head of the full, uncapped order.
        let mut everything = Planner::new(&policy(""), None);
        for c in &candidates {
            everything.add(&target(), &name, c, &p, NOW);
        }
        let full: Vec<i64> = everything.finish().due.iter().map(|d| d.row_id).collect();
        let kept: Vec<i64> = plan.due.iter().map(|d| d.row_id).collect();
        prop_assert_eq!(&full[..kept.len()], &kept[..]);

        let ids: HashSet<i64> = plan.due.iter().map(|d| d.row_id).collect();
        prop_assert_eq!(ids.len(), plan.due.len(), "an image twice");
        if max_per_run > 0 {
            prop_assert!(plan.due.len() as u64 <= max_per_run);
        }
        if let Some(left) = budget_left {
            prop_assert!(plan.due.len() as u64 <= left);
        }
        prop_assert_eq!(plan.tally.due_total() as usize, plan.due_before_caps);
        for pair in plan.due.windows(2) {
            prop_assert!(order_key(&pair[0]) <= order_key(&pair[1]), "out of order");
        }
        for d in &plan.due {
            let c = candidates.iter().find(|c| c.row_id == d.row_id).expect("a planned image is a candidate");
            prop_assert!(!c.namespace.starts_with("sandbox-"), "a skipped image");
            prop_assert!(c.scannable != Some(false));
            prop_assert!(c.scan_status != ScanStatus::ImageOversized);
            let recent = c.last_submitted_at.is_some_and(|at| NOW - at <= 6 * HOUR);
            prop_assert!(!(c.in_flight && recent), "an image in flight");
            prop_assert_eq!(d.latest_scan_time, c.latest_scan_time);
        }
        // Everything due before the caps that was cut ranks after everything kept.
        let kept = plan.due.len();
        prop_assert!(kept <= plan.due_before_caps);
    }
}
