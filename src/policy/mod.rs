//! Which images are due, in which order — DESIGN section 1, "Which images are due". Pure: no
//! I/O, no clock; the caller passes the images, the settings, `now` and what is left of the
//! budget, so every rule can be tested by table and property.
//!
//! An image goes through three gates. *Eligible*: present in the inventory, scannable, of a
//! configured type, not skipped by a rule, and acceptable to the scan call of the API that
//! listed it. *Not in flight*: not submitted by us less than `scanning_timeout` ago and still
//! unfinished. *Due*: the first of `never_scanned`, `changed`, `failed_retry`, `stale`,
//! `stuck` that applies. The due list is then ordered and cut by `max_images_per_run` and the
//! daily budget.
//!
//! `changed` (switched by `rescan_on_change`, globally or per rule): the tag points at other
//! content than its last scan saw, and that scan, finished (success, failed, download_failed
//! or image_oversized), says nothing about the new content. Either its digest differs from
//! the digest of our last submission of it, or HSS dates its latest push after its latest
//! scan and we have not submitted it since that push. The second test needs no submission of
//! ours (it catches images HSS scanned on its own) and the first no times from HSS; the
//! "since that push" keeps an image whose new scan failed without a new scan time from being
//! resubmitted on every run: once submitted, it is judged by the other reasons again
//! (`failed_retry` and its limits). A `changed` submission starts its consecutive failures
//! afresh, since they were failures of other content.
//!
//! The same pass measures *coverage* per target: of the eligible images, those whose last
//! successful scan is within their rule's `rescan_after` (and, where `rescan_on_change`
//! applies, of their current content), and the oldest successful scan among them.

use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::{PolicySettings, Rule};
use crate::domain::clock::ms;
use crate::domain::{
    Candidate, Due, DueReason, ImageType, PlanGroup, Planned, ScanStatus, Target, Unsubmittable,
};

/// Why an eligible image is not due now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotDue {
    /// Submitted by us and not finished yet.
    InFlight,
    /// Scanned successfully, not stale yet.
    Fresh,
    /// Failed, but the retry pause since our last submission has not passed.
    RetryLater,
    /// Failed `max_failed_attempts` times in a row after our submissions.
    RetriesExhausted,
    /// `image_oversized`: a retry would fail the same way.
    Oversized,
    /// HSS is scanning it on its own (not ours), or ours is not yet past the timeout.
    ScanningInHss,
    /// A status this version does not know.
    UnknownStatus,
}

/// Why an image can never be submitted as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Excluded {
    /// HSS says `scannable: false`.
    Unscannable,
    /// A rule with `skip = true` matches it.
    SkippedByRule,
    /// `latest_only` is set and this is not the latest version.
    NotLatest,
    /// Its type is not in the target's `image_types`.
    TypeNotConfigured,
    /// A namespace, name, tag or instance field is empty or longer than the scan call of
    /// the API that listed it accepts.
    FieldTooLong,
    /// A multi-architecture image: HSS cannot scan it.
    MultiArchitecture,
    /// A shared image whose share expired: HSS scans shared images only while valid.
    ExpiredShare,
    /// The listing record lacks the id, digest or registry the scan call needs.
    IncompleteIdentity,
}

impl From<Unsubmittable> for Excluded {
    fn from(why: Unsubmittable) -> Excluded {
        match why {
            Unsubmittable::FieldTooLong => Excluded::FieldTooLong,
            Unsubmittable::MultiArchitecture => Excluded::MultiArchitecture,
            Unsubmittable::ExpiredShare => Excluded::ExpiredShare,
            Unsubmittable::IncompleteIdentity => Excluded::IncompleteIdentity,
        }
    }
}

/// The policy's decision on one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Due(Due),
    NotDue(NotDue),
    Excluded(Excluded),
}

/// `true` when `at` is more than `age` before `now`.
fn older_than(at: i64, age: Duration, now: i64) -> bool {
    now.saturating_sub(at) > ms(age)
}

/// The tag points at other content than its last scan saw (see the module documentation).
fn changed(c: &Candidate) -> bool {
    let pushed_since_our_submission = c
        .updated_after_scan
        .is_some_and(|pushed| c.last_submitted_at.is_none_or(|ours| ours < pushed));
    c.digest_changed || pushed_since_our_submission
}

/// The rescan period of an image under `rule` (if one matched).
fn rule_rescan_after(rule: Option<&Rule>, policy: &PolicySettings) -> Duration {
    rule.and_then(|r| r.rescan_after)
        .unwrap_or(policy.rescan_after)
}

/// A successful scan within `rescan_after`. Without a scan time from HSS, our own last
/// submission stands in for it, so that an image HSS never dates is rescanned once per
/// period, not on every run.
fn fresh(c: &Candidate, rescan_after: Duration, now: i64) -> bool {
    c.scan_status == ScanStatus::Success
        && c.latest_scan_time
            .or(c.last_submitted_at)
            .is_some_and(|at| !older_than(at, rescan_after, now))
}

/// The verdict on one image of `target`.
pub fn assess(target: &Target, c: &Candidate, policy: &PolicySettings, now: i64) -> Verdict {
    judge(target, c, policy, now).0
}

/// What an eligible image adds to its target's coverage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// Scanned successfully within its rule's `rescan_after`, and (where `rescan_on_change`
    /// applies) not changed since.
    pub covered: bool,
    /// Its last successful scan (ms), when HSS dates it.
    pub scanned_at: Option<i64>,
}

/// The verdict on one image and, unless it is excluded, what it adds to coverage: one rule
/// lookup for both.
fn judge(
    target: &Target,
    c: &Candidate,
    policy: &PolicySettings,
    now: i64,
) -> (Verdict, Option<Coverage>) {
    let excluded = |why| (Verdict::Excluded(why), None);
    if !target.image_types.contains(&c.image_type) {
        return excluded(Excluded::TypeNotConfigured);
    }
    if c.scannable == Some(false) {
        return excluded(Excluded::Unscannable);
    }
    if policy.latest_only && c.latest_version != Some(true) {
        return excluded(Excluded::NotLatest);
    }
    if let Some(why) = c.unsubmittable {
        return excluded(why.into());
    }
    let (rule_index, rule) = match policy
        .rules
        .iter()
        .enumerate()
        .find(|(_, r)| r.matches(&c.namespace, &c.image_name, &c.image_version))
    {
        // Validation keeps the rules within `MAX_RULES`, so every index fits.
        Some((i, rule)) => (u16::try_from(i).ok(), Some(rule)),
        None => (None, None),
    };
    if rule.is_some_and(|r| r.skip) {
        return excluded(Excluded::SkippedByRule);
    }
    let submitted_recently = |age: Duration| {
        c.last_submitted_at
            .is_some_and(|at| !older_than(at, age, now))
    };
    let rescan_on_change = rule
        .and_then(|r| r.rescan_on_change)
        .unwrap_or(policy.rescan_on_change);
    let rescan_after = rule_rescan_after(rule, policy);
    let is_changed = rescan_on_change && changed(c);
    let coverage = Coverage {
        covered: fresh(c, rescan_after, now) && !is_changed,
        scanned_at: c
            .latest_scan_time
            .filter(|_| c.scan_status == ScanStatus::Success),
    };
    if c.in_flight && submitted_recently(policy.scanning_timeout) {
        return (Verdict::NotDue(NotDue::InFlight), Some(coverage));
    }
    let due = |reason| {
        Verdict::Due(Due {
            reason,
            rule: rule_index,
            priority: rule.map_or(0, |r| r.priority),
        })
    };
    let verdict = match &c.scan_status {
        ScanStatus::Unscan => due(DueReason::NeverScanned),
        status if status.is_finished() && is_changed => due(DueReason::Changed),
        ScanStatus::Failed | ScanStatus::DownloadFailed => {
            if c.failed_submissions >= policy.max_failed_attempts {
                Verdict::NotDue(NotDue::RetriesExhausted)
            } else if submitted_recently(policy.retry_failed_after) {
                Verdict::NotDue(NotDue::RetryLater)
            } else {
                due(DueReason::FailedRetry)
            }
        }
        ScanStatus::ImageOversized => Verdict::NotDue(NotDue::Oversized),
        ScanStatus::Success => {
            if fresh(c, rescan_after, now) {
                Verdict::NotDue(NotDue::Fresh)
            } else {
                due(DueReason::Stale)
            }
        }
        ScanStatus::Scanning | ScanStatus::WaitingForScan => {
            // Only our own submissions can be stuck: HSS's own scans are its business.
            match c.last_submitted_at {
                Some(at) if older_than(at, policy.scanning_timeout, now) => due(DueReason::Stuck),
                _ => Verdict::NotDue(NotDue::ScanningInHss),
            }
        }
        ScanStatus::Other(_) => Verdict::NotDue(NotDue::UnknownStatus),
    };
    (verdict, Some(coverage))
}

/// Which cap ended the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cap {
    MaxImagesPerRun,
    DailyBudget,
}

/// Counts of every verdict, and the coverage of the eligible images, for `status` and
/// metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub due: BTreeMap<DueReason, u64>,
    pub not_due: BTreeMap<NotDue, u64>,
    pub excluded: BTreeMap<Excluded, u64>,
    /// Eligible images (due or not due, not excluded) scanned successfully within their
    /// rule's `rescan_after`, of their current content.
    pub covered: u64,
    /// The oldest last successful scan (ms) of an eligible image, among those HSS dates.
    pub oldest_scan: Option<i64>,
}

impl Tally {
    pub fn count(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Due(d) => *self.due.entry(d.reason).or_default() += 1,
            Verdict::NotDue(n) => *self.not_due.entry(*n).or_default() += 1,
            Verdict::Excluded(e) => *self.excluded.entry(*e).or_default() += 1,
        }
    }

    /// Adds what an eligible image adds to coverage.
    pub fn cover(&mut self, coverage: Coverage) {
        self.covered += u64::from(coverage.covered);
        if let Some(at) = coverage.scanned_at {
            self.oldest_scan = Some(self.oldest_scan.map_or(at, |oldest| oldest.min(at)));
        }
    }

    pub fn due_total(&self) -> u64 {
        self.due.values().sum()
    }

    /// The images coverage is the share of: present, scannable, of a configured type,
    /// submittable and not skipped by a rule or `latest_only`.
    pub fn eligible(&self) -> u64 {
        self.due_total() + self.not_due.values().sum::<u64>()
    }

    /// The share (0..=1) of eligible images that are covered; 1 when there are none, since
    /// nothing is left unscanned.
    pub fn coverage_ratio(&self) -> f64 {
        match self.eligible() {
            0 => 1.0,
            eligible => self.covered as f64 / eligible as f64,
        }
    }

    /// How old (ms) the oldest successful scan is at `now`; 0 when no image has one.
    pub fn oldest_scan_age(&self, now: i64) -> i64 {
        self.oldest_scan
            .map_or(0, |oldest| now.saturating_sub(oldest).max(0))
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &Tally) {
        fn add<K: Ord + Copy>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
            for (k, n) in from {
                *into.entry(*k).or_default() += n;
            }
        }
        add(&mut self.due, &other.due);
        add(&mut self.not_due, &other.not_due);
        add(&mut self.excluded, &other.excluded);
        self.covered += other.covered;
        self.oldest_scan = match (self.oldest_scan, other.oldest_scan) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

/// The due images in submission order, after the caps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub due: Vec<Planned>,
    /// How many were due before the caps.
    pub due_before_caps: usize,
    pub cut_by: Option<Cap>,
    /// Every verdict, over all targets.
    pub tally: Tally,
    /// Every verdict, per target, in the order the targets were planned.
    pub by_target: Vec<(Arc<str>, Tally)>,
}

/// Collects verdicts across targets, then orders and cuts the due list.
///
/// With a cap (`max_images_per_run`, or the daily budget), only the best `cap` images are
/// kept while collecting, in a max-heap on the submission order: a million-image inventory
/// then costs memory for the images that will be submitted, not for all that are due.
#[derive(Debug)]
pub struct Planner {
    kept: BinaryHeap<Ranked>,
    limit: Option<(usize, Cap)>,
    /// Per target; targets are planned one after the other, so the last entry is current.
    by_target: Vec<(Arc<str>, Tally)>,
    /// The target and type pairs seen so far, shared by their due images.
    groups: Vec<Arc<PlanGroup>>,
}

/// A due image ordered by [`order_key`], so that the heap's top is the one to drop first.
#[derive(Debug)]
struct Ranked(Planned);

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        order_key(&self.0) == order_key(&other.0)
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        order_key(&self.0).cmp(&order_key(&other.0))
    }
}

impl Planner {
    /// A planner for a run under `policy` with `budget_left` of today's budget (`None`: no
    /// daily budget).
    pub fn new(policy: &PolicySettings, budget_left: Option<u64>) -> Self {
        let as_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let run = policy
            .images_per_run_cap()
            .map(|cap| (as_usize(cap), Cap::MaxImagesPerRun));
        let budget = budget_left.map(|left| (as_usize(left), Cap::DailyBudget));
        // The smaller cap binds; at a tie the per-run cap is the one named.
        let limit = match (run, budget) {
            (Some(r), Some(b)) => Some(if b.0 < r.0 { b } else { r }),
            (r, b) => r.or(b),
        };
        Planner {
            kept: BinaryHeap::new(),
            limit,
            by_target: Vec::new(),
            groups: Vec::new(),
        }
    }

    /// Judges `c`, an image of `target` (whose name the caller shares as `target_name`).
    pub fn add(
        &mut self,
        target: &Target,
        target_name: &Arc<str>,
        c: &Candidate,
        policy: &PolicySettings,
        now: i64,
    ) {
        let (verdict, coverage) = judge(target, c, policy, now);
        let same_target =
            matches!(self.by_target.last(), Some((name, _)) if Arc::ptr_eq(name, target_name));
        if !same_target {
            self.by_target
                .push((Arc::clone(target_name), Tally::default()));
        }
        if let Some((_, tally)) = self.by_target.last_mut() {
            tally.count(&verdict);
            if let Some(coverage) = coverage {
                tally.cover(coverage);
            }
        }
        if let Verdict::Due(due) = verdict {
            let group = self.group(target_name, &c.image_type);
            let planned = Planned::new(
                c.row_id,
                group,
                due,
                c.latest_scan_time,
                c.last_submitted_at,
            );
            if let Some((limit, _)) = self.limit
                && self.kept.len() >= limit
            {
                // Full: the newcomer replaces the worst kept one only if it ranks before it.
                match self.kept.peek() {
                    Some(worst) if order_key(&planned) < order_key(&worst.0) => {
                        self.kept.pop();
                    }
                    _ => return,
                }
            }
            self.kept.push(Ranked(planned));
        }
    }

    /// The shared group of `target` and `image_type`: the last one asked for, as a rule,
    /// since candidates come a target and a type at a time.
    fn group(&mut self, target: &Arc<str>, image_type: &ImageType) -> Arc<PlanGroup> {
        let found = self
            .groups
            .iter()
            .rev()
            .find(|g| Arc::ptr_eq(&g.target, target) && g.image_type == *image_type);
        match found {
            Some(group) => Arc::clone(group),
            None => {
                let group = Arc::new(PlanGroup {
                    target: Arc::clone(target),
                    image_type: image_type.clone(),
                });
                self.groups.push(Arc::clone(&group));
                group
            }
        }
    }

    /// The due list in submission order — priority (high first), reason, oldest scan (never
    /// scanned first), id — cut to the caps.
    pub fn finish(self) -> Plan {
        let mut due: Vec<Planned> = self.kept.into_vec().into_iter().map(|r| r.0).collect();
        // Ids are unique, so no two keys are equal and the unstable sort is deterministic.
        due.sort_unstable_by_key(order_key);
        let mut tally = Tally::default();
        for (_, t) in &self.by_target {
            tally.merge(t);
        }
        let due_before_caps = usize::try_from(tally.due_total()).unwrap_or(usize::MAX);
        let cut_by = self
            .limit
            .filter(|(limit, _)| due_before_caps > *limit)
            .map(|(_, cap)| cap);
        Plan {
            due,
            due_before_caps,
            cut_by,
            tally,
            by_target: self.by_target,
        }
    }
}

/// Ascending order = submission order. `None` scan times (never scanned) sort first.
fn order_key(d: &Planned) -> (std::cmp::Reverse<i64>, DueReason, Option<i64>, i64) {
    (
        std::cmp::Reverse(d.due.priority),
        d.due.reason,
        d.latest_scan_time(),
        d.row_id,
    )
}

#[cfg(test)]
mod tests;
