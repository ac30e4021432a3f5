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
        updated_after_scan: None,
        digest_changed: false,
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
            "success, digest differs from our last submission: changed",
            with(Success, &|c| {
                c.latest_scan_time = Some(NOW - DAY);
                c.last_submitted_at = Some(NOW - DAY);
                c.digest_changed = true;
            }),
            due(DueReason::Changed),
        ),
        (
            "success, pushed after its scan, never submitted by us: changed",
            with(Success, &|c| {
                c.latest_scan_time = Some(NOW - DAY);
                c.updated_after_scan = Some(NOW - HOUR);
            }),
            due(DueReason::Changed),
        ),
        (
            "pushed after its scan, but we submitted it since the push: judged as usual",
            with(Success, &|c| {
                c.latest_scan_time = Some(NOW - DAY);
                c.updated_after_scan = Some(NOW - 2 * HOUR);
                c.last_submitted_at = Some(NOW - HOUR);
            }),
            Verdict::NotDue(NotDue::Fresh),
        ),
        (
            "pushed after a submission of ours: changed again",
            with(Success, &|c| {
                c.latest_scan_time = Some(NOW - DAY);
                c.last_submitted_at = Some(NOW - 2 * HOUR);
                c.updated_after_scan = Some(NOW - HOUR);
            }),
            due(DueReason::Changed),
        ),
        (
            "changed comes before stale",
            with(Success, &|c| {
                c.latest_scan_time = Some(NOW - 30 * DAY);
                c.digest_changed = true;
            }),
            due(DueReason::Changed),
        ),
        (
            "changed comes before the retry pause and its limit: other content",
            with(Failed, &|c| {
                c.failed_submissions = 3;
                c.last_submitted_at = Some(NOW - HOUR);
                c.digest_changed = true;
            }),
            due(DueReason::Changed),
        ),
        (
            "an oversized image pushed again may fit now",
            with(ImageOversized, &|c| {
                c.latest_scan_time = Some(NOW - DAY);
                c.updated_after_scan = Some(NOW - HOUR);
            }),
            due(DueReason::Changed),
        ),
        (
            "never scanned beats changed",
            with(Unscan, &|c| c.digest_changed = true),
            due(DueReason::NeverScanned),
        ),
        (
            "HSS scanning it now: not changed, whatever the digest",
            with(Scanning, &|c| c.digest_changed = true),
            Verdict::NotDue(NotDue::ScanningInHss),
        ),
        (
            "in flight beats changed",
            with(Success, &|c| {
                c.last_submitted_at = Some(NOW - HOUR);
                c.in_flight = true;
                c.digest_changed = true;
            }),
            Verdict::NotDue(NotDue::InFlight),
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
fn rescan_on_change_is_switched_globally_and_per_rule() {
    let mut c = image(1, ScanStatus::Success);
    c.latest_scan_time = Some(NOW - DAY);
    c.digest_changed = true;
    let off = policy("[policy]\nrescan_on_change = false\n");
    assert_eq!(
        assess(&target(), &c, &off, NOW),
        Verdict::NotDue(NotDue::Fresh),
        "off: a changed image is judged by its scan time"
    );
    let on_for_prod = policy(
        "[policy]\nrescan_on_change = false\n\
         [[policy.rules]]\nnamespace = \"prod-*\"\nrescan_on_change = true\n",
    );
    assert_eq!(
        assess(&target(), &c, &on_for_prod, NOW),
        Verdict::Due(Due {
            reason: DueReason::Changed,
            rule: Some(0),
            priority: 0
        }),
        "a rule turns it on for its images"
    );
    let off_for_prod =
        policy("[[policy.rules]]\nnamespace = \"prod-*\"\nrescan_on_change = false\n");
    assert_eq!(
        assess(&target(), &c, &off_for_prod, NOW),
        Verdict::NotDue(NotDue::Fresh),
        "a rule turns it off for its images"
    );
    c.namespace = "dev".into();
    assert_eq!(
        assess(&target(), &c, &off_for_prod, NOW),
        due(DueReason::Changed),
        "images no rule matches follow [policy]"
    );
}

#[test]
fn coverage_counts_fresh_scans_of_current_content_among_eligible_images() {
    let p = policy(
        "[[policy.rules]]\nnamespace = \"hot-*\"\nrescan_after = \"1d\"\n[[policy.rules]]\nnamespace = \"sandbox-*\"\nskip = true\n",
    );
    let name: Arc<str> = Arc::from("t");
    let mut planner = Planner::new(&p, None);
    let mut add = |id: i64, status: ScanStatus, ns: &str, f: &dyn Fn(&mut Candidate)| {
        let mut c = image(id, status);
        c.namespace = ns.into();
        f(&mut c);
        planner.add(&target(), &name, &c, &p, NOW);
    };
    // Covered: fresh under the global 7d, fresh under no time but our submission.
    add(1, ScanStatus::Success, "app", &|c| {
        c.latest_scan_time = Some(NOW - 6 * DAY)
    });
    add(2, ScanStatus::Success, "app", &|c| {
        c.last_submitted_at = Some(NOW - DAY)
    });
    // Not covered: stale under its rule's 1d, changed, never scanned, failed, in flight.
    add(3, ScanStatus::Success, "hot-a", &|c| {
        c.latest_scan_time = Some(NOW - 2 * DAY)
    });
    add(4, ScanStatus::Success, "app", &|c| {
        c.latest_scan_time = Some(NOW - HOUR);
        c.digest_changed = true;
    });
    add(5, ScanStatus::Unscan, "app", &|_| {});
    add(6, ScanStatus::Failed, "app", &|c| {
        c.latest_scan_time = Some(NOW - HOUR)
    });
    add(7, ScanStatus::Scanning, "app", &|c| {
        c.in_flight = true;
        c.last_submitted_at = Some(NOW - HOUR);
    });
    // Not eligible: skipped, unscannable. Their scans, however old, do not count.
    add(8, ScanStatus::Success, "sandbox-x", &|c| {
        c.latest_scan_time = Some(NOW - 90 * DAY)
    });
    add(9, ScanStatus::Success, "app", &|c| {
        c.scannable = Some(false);
        c.latest_scan_time = Some(NOW - 80 * DAY);
    });
    let plan = planner.finish();
    let tally = &plan.by_target[0].1;
    assert_eq!((tally.covered, tally.eligible()), (2, 7));
    assert!((tally.coverage_ratio() - 2.0 / 7.0).abs() < 1e-12);
    assert_eq!(
        tally.oldest_scan,
        Some(NOW - 6 * DAY),
        "the oldest successful scan of an eligible image"
    );
    assert_eq!(tally.oldest_scan_age(NOW), 6 * DAY);
    assert_eq!(plan.tally, *tally, "one target: the totals are its own");

    let empty = Tally::default();
    assert_eq!(
        (empty.coverage_ratio(), empty.oldest_scan_age(NOW)),
        (1.0, 0)
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
    let mut changed = image(7, ScanStatus::Success);
    changed.namespace = "cold".into();
    changed.latest_scan_time = Some(NOW - DAY);
    changed.digest_changed = true;
    planner.add(&target(), &Arc::from("t"), &changed, &p, NOW);
    let plan = planner.finish();
    let ids: Vec<i64> = plan.due.iter().map(|d| d.row_id).collect();
    assert_eq!(
        ids,
        [5, 3, 6, 7, 4, 2, 1],
        "changed right after never_scanned"
    );
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
        pushed_age in proptest::option::of(0i64..40 * 24),
        digest_changed in any::<bool>(),
    ) -> Candidate {
        let mut c = image(id, status);
        c.namespace = ns.into();
        c.latest_scan_time = scan_age.map(|d| NOW - d * DAY);
        c.last_submitted_at = submitted_age.map(|h| NOW - h * HOUR);
        // As the store gives it: only a push later than the scan.
        let pushed = pushed_age.map(|h| NOW - h * HOUR);
        c.updated_after_scan = pushed.filter(|at| c.latest_scan_time.is_some_and(|s| *at > s));
        c.digest_changed = digest_changed;
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
            if d.due.reason == DueReason::Changed {
                prop_assert!(c.scan_status.is_finished(), "changed while not finished");
                let pushed_since_ours = c
                    .updated_after_scan
                    .is_some_and(|at| c.last_submitted_at.is_none_or(|ours| ours < at));
                prop_assert!(c.digest_changed || pushed_since_ours, "changed without a change");
            }
            prop_assert!(!c.namespace.starts_with("sandbox-"), "a skipped image");
            prop_assert!(c.scannable != Some(false));
            // Never retried as it is; only other content gets another try.
            prop_assert!(
                c.scan_status != ScanStatus::ImageOversized || d.due.reason == DueReason::Changed
            );
            let recent = c.last_submitted_at.is_some_and(|at| NOW - at <= 6 * HOUR);
            prop_assert!(!(c.in_flight && recent), "an image in flight");
            prop_assert_eq!(d.latest_scan_time(), c.latest_scan_time);
        }
        // Everything due before the caps that was cut ranks after everything kept.
        let kept = plan.due.len();
        prop_assert!(kept <= plan.due_before_caps);

        // Coverage, by its definition: eligible images scanned successfully within their
        // rule's period (1d for prod-*, else 7d), of their current content.
        let covered = candidates
            .iter()
            .filter(|c| {
                let verdict = assess(&target(), c, &p, NOW);
                let period = if c.namespace.starts_with("prod-") { DAY } else { 7 * DAY };
                let scanned = c.latest_scan_time.or(c.last_submitted_at);
                !matches!(verdict, Verdict::Excluded(_))
                    && c.scan_status == ScanStatus::Success
                    && scanned.is_some_and(|at| NOW - at <= period)
                    && !(c.digest_changed
                        || c.updated_after_scan.is_some_and(|at| c.last_submitted_at.is_none_or(|ours| ours < at)))
            })
            .count() as u64;
        prop_assert_eq!(plan.tally.covered, covered);
        prop_assert!(plan.tally.covered <= plan.tally.eligible());
        let excluded: u64 = plan.tally.excluded.values().sum();
        prop_assert_eq!(plan.tally.eligible() + excluded, candidates.len() as u64);
    }

    /// With `rescan_on_change = false`, a change makes no difference to any verdict.
    #[test]
    fn without_rescan_on_change_a_change_changes_nothing(c in arb_candidate()) {
        let p = policy("[policy]\nrescan_on_change = false\n");
        let mut unchanged = c.clone();
        unchanged.digest_changed = false;
        unchanged.updated_after_scan = None;
        let verdict = assess(&target(), &c, &p, NOW);
        prop_assert_eq!(&verdict, &assess(&target(), &unchanged, &p, NOW));
        let changed = matches!(verdict, Verdict::Due(Due { reason: DueReason::Changed, .. }));
        prop_assert!(!changed, "changed: {:?}", verdict);
    }

    /// An image we submitted after its latest push, with the digest it has now, is never
    /// `changed`: one submission per change, however its scan ends.
    #[test]
    fn an_image_submitted_since_its_change_is_not_changed_again(mut c in arb_candidate()) {
        c.digest_changed = false;
        if let Some(pushed) = c.updated_after_scan {
            c.last_submitted_at = Some(c.last_submitted_at.map_or(pushed, |ours| ours.max(pushed)));
        }
        let verdict = assess(&target(), &c, &policy(""), NOW);
        let changed = matches!(verdict, Verdict::Due(Due { reason: DueReason::Changed, .. }));
        prop_assert!(!changed, "changed: {:?}", verdict);
    }
}
