//! How a sync lists, decided before it starts: every image (a full listing), or only the
//! images whose last update, last sync or last completed scan lies in a window since the
//! previous sync (an incremental listing, on HSS's current API), and the self-check every
//! full listing makes of the incremental ones before it.
//!
//! The product's rule stays whole: an image is marked deleted only after a complete listing
//! of every image, so incremental listings never delete, and a full listing runs
//!
//! - every `sync.full_every`, and at the first sync of a target and type in a process (a
//!   restart may follow a crash, a new version or a long stop: start from what HSS says);
//! - after any listing of that target and type that did not complete (a partial window
//!   proves nothing about the images it did not reach, so the next window would start too
//!   late);
//! - while a scan call's outcome is unknown and no complete full listing has judged it since
//!   `policy.submit_grace`: only a listing of every image can show that HSS never received a
//!   submission (its images look exactly as before), and waiting for the daily full listing
//!   would leave those images in flight for hours;
//! - always with `sync.incremental = "off"` or on the deprecated API, which has no time
//!   filters; and, with `"auto"`, for a target whose incremental listings were found to miss
//!   changes, until the process restarts.
//!
//! An incremental listing reads three windows, each `[previous start − overlap, now]`: by
//! update time (new and re-pushed tags), by sync time (what HSS's syncs with the registries
//! brought, whose update time may be older than the previous sync), and by scan time
//! (completed scans, ours and HSS's own). The scan window also reaches back to the oldest
//! submission of ours still open (at most `policy.scanning_timeout`): whatever time HSS
//! stamps on a completed scan of ours, it is no earlier than our submission, so every image
//! in flight is read again when its scan completes, at no cost while scans complete within
//! minutes. While an image waits or scans nothing is learnt from reading it.
//!
//! The filters' semantics are documented only briefly (spec section 3.2, 3.7), hence the
//! self-check: a full listing after incremental ones counts the images it finds new or
//! changed whose change time says the incremental listings should have read them — see
//! [`missed_change`].

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use super::reconcile::LostAfter;
use crate::config::IncrementalListing;
use crate::domain::clock::ms;
use crate::domain::{Image, ImageType};
use crate::hss::{ChangeTime, ChangeWindow};
use crate::store::{BatchStatus, ListingHistory, ListingKind, OpenItem, StoredTimes, SyncListing};

/// Why a sync lists every image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FullBecause {
    /// `sync.incremental = "off"`.
    Disabled,
    /// The first sync of this target and type in this process.
    FirstOfProcess,
    /// The API in use has no time filters (the deprecated one).
    NoTimeFilters,
    /// The previous listing of this target and type ended so (`partial`, `failed`,
    /// `interrupted`, or still `running` in another process).
    PreviousIncomplete(String),
    /// No complete full listing is recorded.
    NoCompleteFull,
    /// The last complete full listing started this long ago (ms), `sync.full_every` or more.
    FullDue(i64),
    /// `"auto"`: a full listing of this target found this many changes the incremental
    /// listings missed.
    FellBack(u64),
    /// Submissions whose outcome is unknown wait for a full listing to tell whether HSS
    /// received them.
    UnsettledSubmissions(usize),
}

impl fmt::Display for FullBecause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FullBecause::Disabled => f.write_str("sync.incremental is off"),
            FullBecause::FirstOfProcess => f.write_str("first sync of this process"),
            FullBecause::NoTimeFilters => {
                f.write_str("the deprecated API has no time filters to list changes with")
            }
            FullBecause::PreviousIncomplete(outcome) => {
                write!(f, "the previous listing did not complete ({outcome})")
            }
            FullBecause::NoCompleteFull => f.write_str("no complete full listing yet"),
            FullBecause::FullDue(ago) => write!(
                f,
                "the last complete full listing is {} old (sync.full_every)",
                humantime::format_duration(Duration::from_secs(
                    u64::try_from(*ago / 1000).unwrap_or(0)
                ))
            ),
            FullBecause::FellBack(missed) => write!(
                f,
                "incremental listings missed {missed} change(s); full listings until restart"
            ),
            FullBecause::UnsettledSubmissions(items) => write!(
                f,
                "{items} submitted image(s) of a scan call whose outcome is unknown"
            ),
        }
    }
}

/// How one sync lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Full {
        why: FullBecause,
        /// Set when incremental listings ran since the previous full listing: they are
        /// checked by this one.
        check: Option<MissCheck>,
    },
    Incremental {
        /// Update, sync and scan windows, in the order they are read.
        windows: Vec<ChangeWindow>,
        /// The update and sync windows' start, and every window's end (ms).
        since: i64,
        until: i64,
    },
}

impl Plan {
    pub fn kind(&self) -> ListingKind {
        match self {
            Plan::Full { .. } => ListingKind::Full,
            Plan::Incremental { .. } => ListingKind::Incremental,
        }
    }

    /// The listing as recorded with its run, with `missed` changes found by the check.
    pub fn record(&self, missed: u64) -> SyncListing {
        match self {
            Plan::Full { why, .. } => SyncListing {
                kind: ListingKind::Full,
                reason: why.to_string(),
                window_start: None,
                window_end: None,
                missed: i64::try_from(missed).unwrap_or(i64::MAX),
            },
            Plan::Incremental {
                windows,
                since,
                until,
            } => {
                let scan_since = windows
                    .iter()
                    .find(|w| w.time == ChangeTime::Scan)
                    .map_or(*since, |w| w.start);
                let mut reason = format!("changes since {}", timestamp(*since));
                if scan_since < *since {
                    reason.push_str(&format!(
                        "; scans since {}, when the oldest open submission was made",
                        timestamp(scan_since)
                    ));
                }
                SyncListing {
                    kind: ListingKind::Incremental,
                    reason,
                    window_start: Some(*since),
                    window_end: Some(*until),
                    missed: 0,
                }
            }
        }
    }
}

/// A time (ms) as people read it in a report line: UTC, to the second.
pub fn timestamp(at_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(at_ms).map_or_else(
        || at_ms.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    )
}

/// What the decision needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub setting: IncrementalListing,
    /// The source takes change windows now (the current API).
    pub lists_changes: bool,
    pub first_of_process: bool,
    /// `Some(missed)` when this target fell back to full listings in this process.
    pub fell_back: Option<u64>,
    pub history: &'a ListingHistory,
    pub now: i64,
    pub overlap: Duration,
    pub full_every: Duration,
    /// Open items of a scan call whose outcome is unknown that a full listing should judge.
    pub unsettled: usize,
    /// When the oldest open submission of this target and type was made.
    pub oldest_in_flight: Option<i64>,
    pub scanning_timeout: Duration,
}

/// How the next sync of one target and type lists.
pub fn plan(i: &Inputs<'_>) -> Plan {
    let full = |why: FullBecause| Plan::Full {
        check: MissCheck::after(i.history, i.overlap),
        why,
    };
    if i.setting == IncrementalListing::Off {
        return full(FullBecause::Disabled);
    }
    if i.first_of_process {
        return full(FullBecause::FirstOfProcess);
    }
    if !i.lists_changes {
        return full(FullBecause::NoTimeFilters);
    }
    let Some(previous) = i.history.previous.as_ref() else {
        return full(FullBecause::NoCompleteFull);
    };
    if !previous.complete() {
        return full(FullBecause::PreviousIncomplete(previous.outcome.clone()));
    }
    let Some(last_full) = i.history.last_complete_full else {
        return full(FullBecause::NoCompleteFull);
    };
    let age = i.now.saturating_sub(last_full);
    if age >= ms(i.full_every) {
        return full(FullBecause::FullDue(age));
    }
    if i.setting == IncrementalListing::Auto
        && let Some(missed) = i.fell_back
    {
        return full(FullBecause::FellBack(missed));
    }
    if i.unsettled > 0 {
        return full(FullBecause::UnsettledSubmissions(i.unsettled));
    }
    let overlap = ms(i.overlap);
    let until = i.now;
    // A clock that went back would give a window that ends before it starts.
    let since = previous.started_at.saturating_sub(overlap).clamp(0, until);
    let scan_since = match i.oldest_in_flight {
        Some(submitted) => {
            let oldest_followed = i.now.saturating_sub(ms(i.scanning_timeout));
            since.min(
                submitted
                    .max(oldest_followed)
                    .saturating_sub(overlap)
                    .max(0),
            )
        }
        None => since,
    };
    let windows = ChangeTime::ALL
        .into_iter()
        .map(|time| ChangeWindow {
            time,
            start: if time == ChangeTime::Scan {
                scan_since
            } else {
                since
            },
            end: until,
        })
        .collect();
    Plan::Incremental {
        windows,
        since,
        until,
    }
}

/// Open items of a scan call whose outcome is unknown (`pending`) that could be judged lost
/// by `now` ([`LostAfter::from`]: after their grace, and for an earlier lease holder's batch
/// once its signed request has expired), and that no complete full listing has judged since:
/// each needs one full listing to tell received from lost.
pub fn unsettled(
    items: &[OpenItem],
    last_complete_full: Option<i64>,
    now: i64,
    lost_after: &LostAfter,
) -> usize {
    items
        .iter()
        .filter(|item| item.batch_status == BatchStatus::Pending)
        .filter(|item| {
            let judgeable_from = lost_after.from(item);
            judgeable_from <= now && last_complete_full.is_none_or(|full| full < judgeable_from)
        })
        .count()
}

/// The check a full listing makes of the incremental listings since the previous full one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissCheck {
    /// Changes stamped before this (ms) should have been read: the last incremental listing
    /// started at `before + overlap`, and every change up to `overlap` before it was inside
    /// some window that was read at least `overlap` after the change — time enough for HSS
    /// to show it.
    pub before: i64,
    /// Incremental listings checked.
    pub listings: usize,
    pub missed: u64,
    /// A few of the missed images, for the warning.
    pub examples: Vec<String>,
}

/// How many missed images a warning names.
const EXAMPLES: usize = 5;

impl MissCheck {
    /// The check of the incremental listings in `history`; `None` when there were none.
    pub fn after(history: &ListingHistory, overlap: Duration) -> Option<MissCheck> {
        let last = history.incremental_since_full.last()?;
        Some(MissCheck {
            before: last.started_at.saturating_sub(ms(overlap)),
            listings: history.incremental_since_full.len(),
            missed: 0,
            examples: Vec::new(),
        })
    }

    /// Whether a listed image could be a missed change at all (one of its times is early
    /// enough): only those are looked up in the store.
    pub fn could_have_missed(&self, image: &Image) -> bool {
        times_of(image)
            .into_iter()
            .flatten()
            .any(|t| t < self.before)
    }

    /// Judges a listed image that is new to the store (`stored` is `None`) or that changed
    /// or came back (`stored` holds what the store had), and counts it if it was missed.
    pub fn judge(&mut self, image: &Image, stored: Option<&StoredTimes>) {
        let stored = stored.map(|s| [s.latest_update_time, s.latest_sync_time, s.latest_scan_time]);
        if let Some(at) = missed_change(&times_of(image), stored.as_ref(), self.before) {
            self.missed += 1;
            if self.examples.len() < EXAMPLES {
                self.examples.push(format!(
                    "{}/{}:{} (changed {})",
                    image.namespace,
                    image.image_name,
                    image.image_version,
                    timestamp(at)
                ));
            }
        }
    }
}

/// An image's update, sync and scan times, in [`ChangeTime::ALL`]'s order.
fn times_of(image: &Image) -> [Option<i64>; 3] {
    ChangeTime::ALL.map(|time| time.of(image))
}

/// When a listed image changed in a way the incremental windows should have read, if it did:
/// its change times are, for an image new to the store, every time it has, and for one the
/// store has, the times that moved on since (a change that moved none of them, a status
/// going from `unscan` to `scanning`, is not something the windows promise to see). The
/// change was missed when it has change times and the latest is before `before`; a later
/// one may be a change made after the last incremental listing read.
pub fn missed_change(
    listed: &[Option<i64>; 3],
    stored: Option<&[Option<i64>; 3]>,
    before: i64,
) -> Option<i64> {
    let latest = (0..3)
        .filter_map(|n| {
            let time = listed[n]?;
            match stored {
                None => Some(time),
                Some(stored) => stored[n].is_none_or(|was| time > was).then_some(time),
            }
        })
        .max()?;
    (latest < before).then_some(latest)
}

/// What a process remembers between its syncs: which targets and types it has listed, and
/// which targets fell back to full listings. A reload keeps it; a restart starts afresh,
/// which is the point.
#[derive(Debug, Default)]
pub struct ListingMemory {
    inner: Mutex<Remembered>,
}

#[derive(Debug, Default)]
struct Remembered {
    listed: HashSet<(String, ImageType)>,
    fell_back: HashMap<String, u64>,
    told_no_filters: HashSet<String>,
}

impl ListingMemory {
    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether this is the first listing of `target` and `image_type` in this process;
    /// remembers that it no longer is.
    pub fn first_listing(&self, target: &str, image_type: &ImageType) -> bool {
        self.lock()
            .listed
            .insert((target.to_owned(), image_type.clone()))
    }

    /// The missed changes that made `target` fall back to full listings, if it did.
    pub fn fell_back(&self, target: &str) -> Option<u64> {
        self.lock().fell_back.get(target).copied()
    }

    /// `target` lists fully from now on (under `"auto"`), because of `missed` changes.
    pub fn fall_back(&self, target: &str, missed: u64) {
        *self.lock().fell_back.entry(target.to_owned()).or_default() += missed;
    }

    /// Whether `target`'s lack of time filters has not been told yet; remembers it has.
    pub fn tell_no_filters(&self, target: &str) -> bool {
        self.lock().told_no_filters.insert(target.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PastSync;

    const NOW: i64 = 1_800_000_000_000;
    const MIN: i64 = 60_000;

    fn past(id: i64, started_at: i64, outcome: &str, kind: ListingKind) -> PastSync {
        PastSync {
            id,
            started_at,
            outcome: outcome.into(),
            kind,
            window_start: None,
            window_end: None,
        }
    }

    /// A full listing an hour ago and an incremental one five minutes ago, both complete.
    fn history() -> ListingHistory {
        let incremental = past(2, NOW - 5 * MIN, "complete", ListingKind::Incremental);
        ListingHistory {
            previous: Some(incremental.clone()),
            last_complete_full: Some(NOW - 60 * MIN),
            incremental_since_full: vec![incremental],
        }
    }

    fn inputs(history: &ListingHistory) -> Inputs<'_> {
        Inputs {
            setting: IncrementalListing::Auto,
            lists_changes: true,
            first_of_process: false,
            fell_back: None,
            history,
            now: NOW,
            overlap: Duration::from_secs(600),
            full_every: Duration::from_secs(86_400),
            unsettled: 0,
            oldest_in_flight: None,
            scanning_timeout: Duration::from_secs(6 * 3600),
        }
    }

    fn why(plan: &Plan) -> Option<&FullBecause> {
        match plan {
            Plan::Full { why, .. } => Some(why),
            Plan::Incremental { .. } => None,
        }
    }

    #[test]
    fn between_full_listings_a_sync_reads_three_windows_since_the_previous_start() {
        let history = history();
        let plan = plan(&inputs(&history));
        let Plan::Incremental {
            windows,
            since,
            until,
        } = &plan
        else {
            panic!("{plan:?}");
        };
        assert_eq!((*since, *until), (NOW - 15 * MIN, NOW));
        assert_eq!(
            windows
                .iter()
                .map(|w| (w.time, w.start, w.end))
                .collect::<Vec<_>>(),
            [
                (ChangeTime::Update, NOW - 15 * MIN, NOW),
                (ChangeTime::Sync, NOW - 15 * MIN, NOW),
                (ChangeTime::Scan, NOW - 15 * MIN, NOW),
            ]
        );
        let record = plan.record(0);
        assert_eq!(record.kind, ListingKind::Incremental);
        assert_eq!(
            (record.window_start, record.window_end),
            (Some(NOW - 15 * MIN), Some(NOW))
        );
    }

    #[test]
    fn the_scan_window_reaches_back_to_the_oldest_open_submission_within_the_timeout() {
        let history = history();
        let scan_start = |oldest| {
            let plan = plan(&Inputs {
                oldest_in_flight: oldest,
                ..inputs(&history)
            });
            match plan {
                Plan::Incremental { windows, .. } => windows[2].start,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(scan_start(None), NOW - 15 * MIN);
        assert_eq!(
            scan_start(Some(NOW - MIN)),
            NOW - 15 * MIN,
            "recent: no change"
        );
        assert_eq!(scan_start(Some(NOW - 120 * MIN)), NOW - 130 * MIN);
        assert_eq!(
            scan_start(Some(NOW - 48 * 60 * MIN)),
            NOW - 6 * 60 * MIN - 10 * MIN,
            "no further back than the scanning timeout"
        );
    }

    #[test]
    fn a_full_listing_runs_when_the_rules_say_and_says_why() {
        let history = history();
        let base = inputs(&history);
        let cases: Vec<(&str, Inputs<'_>, FullBecause)> = vec![
            (
                "off",
                Inputs {
                    setting: IncrementalListing::Off,
                    ..base
                },
                FullBecause::Disabled,
            ),
            (
                "restart",
                Inputs {
                    first_of_process: true,
                    ..base
                },
                FullBecause::FirstOfProcess,
            ),
            (
                "legacy",
                Inputs {
                    lists_changes: false,
                    setting: IncrementalListing::On,
                    ..base
                },
                FullBecause::NoTimeFilters,
            ),
            (
                "due",
                Inputs {
                    now: NOW - 60 * MIN + 86_400_000,
                    ..base
                },
                FullBecause::FullDue(86_400_000),
            ),
            (
                "fell back",
                Inputs {
                    fell_back: Some(3),
                    ..base
                },
                FullBecause::FellBack(3),
            ),
            (
                "unknown outcome",
                Inputs {
                    unsettled: 2,
                    ..base
                },
                FullBecause::UnsettledSubmissions(2),
            ),
        ];
        for (name, inputs, want) in cases {
            assert_eq!(why(&plan(&inputs)), Some(&want), "{name}");
        }
        // "on" does not fall back.
        let on = plan(&Inputs {
            setting: IncrementalListing::On,
            fell_back: Some(3),
            ..base
        });
        assert_eq!(why(&on), None);
        // Just short of full_every: still incremental.
        let almost = plan(&Inputs {
            now: NOW - 60 * MIN + 86_399_999,
            ..base
        });
        assert_eq!(why(&almost), None);

        let mut partial = history.clone();
        partial.previous = Some(past(3, NOW - 5 * MIN, "partial", ListingKind::Incremental));
        assert_eq!(
            why(&plan(&inputs(&partial))),
            Some(&FullBecause::PreviousIncomplete("partial".into()))
        );
        let never = ListingHistory::default();
        assert_eq!(
            why(&plan(&inputs(&never))),
            Some(&FullBecause::NoCompleteFull)
        );
        let mut no_full = history.clone();
        no_full.last_complete_full = None;
        assert_eq!(
            why(&plan(&inputs(&no_full))),
            Some(&FullBecause::NoCompleteFull)
        );
    }

    #[test]
    fn a_full_listing_after_incremental_ones_checks_them() {
        let history = history();
        let plan = plan(&Inputs {
            first_of_process: true,
            ..inputs(&history)
        });
        let Plan::Full { check, .. } = plan else {
            panic!("full");
        };
        let check = check.expect("a check");
        assert_eq!((check.before, check.listings), (NOW - 15 * MIN, 1));
        let only_full = ListingHistory {
            incremental_since_full: Vec::new(),
            ..history
        };
        assert_eq!(MissCheck::after(&only_full, Duration::from_secs(600)), None);
    }

    #[test]
    fn a_missed_change_moved_a_time_the_windows_cover_and_is_not_recent() {
        const BEFORE: i64 = 1_000;
        /// The three change times (update, sync, scan) as listed, then as stored.
        type Times = [Option<i64>; 3];
        // name, listed, stored (None: a new image), the change it missed
        let cases: [(&str, Times, Option<Times>, Option<i64>); 8] = [
            ("new, old times", [Some(10), Some(20), None], None, Some(20)),
            (
                "new, a recent time",
                [Some(10), Some(1_000), None],
                None,
                None,
            ),
            ("new, no times at all", [None, None, None], None, None),
            (
                "re-pushed before",
                [Some(500), Some(500), Some(5)],
                Some([Some(1), Some(2), Some(5)]),
                Some(500),
            ),
            (
                "re-pushed after",
                [Some(1_500), Some(2), Some(5)],
                Some([Some(1), Some(2), Some(5)]),
                None,
            ),
            (
                "scanned for the first time",
                [Some(1), Some(2), Some(900)],
                Some([Some(1), Some(2), None]),
                Some(900),
            ),
            (
                "status only: no time moved",
                [Some(1), Some(2), Some(5)],
                Some([Some(1), Some(2), Some(5)]),
                None,
            ),
            (
                "an old re-push, then a scan after",
                [Some(500), Some(2), Some(1_200)],
                Some([Some(1), Some(2), Some(5)]),
                None,
            ),
        ];
        for (name, listed, stored, want) in cases {
            assert_eq!(
                missed_change(&listed, stored.as_ref(), BEFORE),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn the_check_counts_and_names_examples() {
        let mut check = MissCheck {
            before: 1_000,
            listings: 2,
            missed: 0,
            examples: Vec::new(),
        };
        let mut image = Image::example("app");
        image.latest_update_time = Some(500);
        assert!(check.could_have_missed(&image));
        check.judge(&image, None);
        let stored = StoredTimes {
            latest_update_time: Some(500),
            ..StoredTimes::default()
        };
        check.judge(&image, Some(&stored));
        assert_eq!(check.missed, 1, "what the store has was not missed");
        assert!(check.examples[0].contains("app") && check.examples[0].contains("1970"));
        image.latest_update_time = Some(2_000);
        assert!(!check.could_have_missed(&image));
    }

    #[test]
    fn unsettled_submissions_wait_for_one_full_listing_after_their_grace() {
        let item = |status, submitted_at| OpenItem {
            item_id: 1,
            image_row_id: 1,
            batch_id: 1,
            batch_status: status,
            submitted_at,
            status_before: "unscan".into(),
            scan_time_before: None,
            scan_status: "unscan".into(),
            latest_scan_time: None,
            deleted: false,
            batch_term: None,
        };
        let grace = LostAfter {
            submit_grace: Duration::from_secs(120),
            signed_request_lifetime: Duration::from_secs(900),
            lease: None,
        };
        let items = [
            item(BatchStatus::Pending, NOW - 5 * MIN),
            item(BatchStatus::Pending, NOW - MIN),
            item(BatchStatus::Sent, NOW - 5 * MIN),
        ];
        assert_eq!(
            unsettled(&items, None, NOW, &grace),
            1,
            "only one past its grace"
        );
        assert_eq!(unsettled(&items, Some(NOW - 4 * MIN), NOW, &grace), 1);
        assert_eq!(
            unsettled(&items, Some(NOW - 3 * MIN), NOW, &grace),
            0,
            "a full listing judged it"
        );
    }

    #[test]
    fn the_memory_remembers_per_process() {
        let memory = ListingMemory::default();
        assert!(memory.first_listing("a", &ImageType::Private));
        assert!(!memory.first_listing("a", &ImageType::Private));
        assert!(memory.first_listing("a", &ImageType::Shared));
        assert_eq!(memory.fell_back("a"), None);
        memory.fall_back("a", 2);
        memory.fall_back("a", 3);
        assert_eq!(
            (memory.fell_back("a"), memory.fell_back("b")),
            (Some(5), None)
        );
        assert!(memory.tell_no_filters("a") && !memory.tell_no_filters("a"));
    }
}
