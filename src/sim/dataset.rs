//! The synthetic account: one compact record per image, strings derived on demand
//! ([`names`](super::names)), and the scan lifecycle computed lazily from the submission time,
//! so no background task ever has to walk a million images.

use crate::domain::ImageType;

use super::config::Lifecycle;
use super::names::{self, Naming, Oversize, hash};

/// A scan status as the simulator stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Unscan,
    Success,
    Scanning,
    Failed,
    DownloadFailed,
    ImageOversized,
    WaitingForScan,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unscan => "unscan",
            Status::Success => "success",
            Status::Scanning => "scanning",
            Status::Failed => "failed",
            Status::DownloadFailed => "download_failed",
            Status::ImageOversized => "image_oversized",
            Status::WaitingForScan => "waiting_for_scan",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        [
            Status::Unscan,
            Status::Success,
            Status::Scanning,
            Status::Failed,
            Status::DownloadFailed,
            Status::ImageOversized,
            Status::WaitingForScan,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    fn in_progress(self) -> bool {
        matches!(self, Status::Scanning | Status::WaitingForScan)
    }
}

/// The image types the account holds, in record order. `local_image` is a valid list type
/// with nothing in it.
pub const KINDS: [ImageType; 3] = [ImageType::Private, ImageType::Shared, ImageType::Instance];

pub fn kind_of(image_type: &ImageType) -> Option<u8> {
    KINDS.iter().position(|k| k == image_type).map(|k| k as u8)
}

const DELETED: u8 = 1;
/// Submitted at least once: the lifecycle, not `status`, says where it is.
const SUBMITTED: u8 = 2;
const UNSCANNABLE: u8 = 4;
/// Too big to scan; every scan of it ends `image_oversized` again.
const OVERSIZED: u8 = 8;

const DAY_MS: i64 = 86_400_000;

/// Everything stored per image: 24 bytes, so a million images take 24 MB.
#[derive(Debug, Clone, Copy)]
pub(super) struct Record {
    /// The last finished scan before the current submission (0 = never).
    pub latest_scan_ms: i64,
    pub submitted_ms: i64,
    /// `latest_update_time` relative to the dataset's creation, in seconds.
    pub update_offset_s: i32,
    pub kind: u8,
    /// The status before the current submission.
    pub status: Status,
    pub flags: u8,
    pub attempts: u8,
}

/// Per image type: every index of that type, and the live (not deleted) ones, in order.
#[derive(Debug, Default)]
struct TypeIndex {
    all: Vec<u32>,
    live: Vec<u32>,
}

/// How the wire view bends the numbers (see [`SimConfig`](super::SimConfig)).
#[derive(Debug, Clone, Copy, Default)]
pub struct WireStyle {
    pub numbers_as_strings: bool,
    pub junk_number_every: usize,
    pub unknown_status_every: usize,
}

/// What happened to one submitted image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// Entered the lifecycle.
    Queued,
    /// Still waiting or scanning from an earlier submission; nothing changes.
    Duplicate,
    /// `scannable = false`; HSS leaves it as it is.
    Unscannable,
}

pub struct Dataset {
    pub(super) naming: Naming,
    pub(super) created_ms: i64,
    pub(super) records: Vec<Record>,
    types: [TypeIndex; 3],
    queue_ms: i64,
    scan_ms: i64,
    failure_rate: f64,
    pub(super) wire: WireStyle,
}

impl Dataset {
    pub fn new(
        images: usize,
        seed: u64,
        lifecycle: &Lifecycle,
        wire: WireStyle,
        now_ms: i64,
    ) -> Self {
        let naming = Naming { seed };
        let mut dataset = Self {
            naming,
            created_ms: now_ms,
            records: Vec::with_capacity(images),
            types: Default::default(),
            queue_ms: millis(lifecycle.queue_delay),
            scan_ms: millis(lifecycle.scan_duration),
            failure_rate: lifecycle.failure_rate,
            wire,
        };
        for index in 0..images {
            let kind = kind_of(&naming.initial_type(index)).unwrap_or(0);
            let record = dataset.initial_record(index, kind);
            dataset.push(record);
        }
        dataset
    }

    /// The record an image of the initial account starts with: a spread of statuses, scan
    /// times over the last 30 days, one image in a hundred unscannable.
    fn initial_record(&self, index: usize, kind: u8) -> Record {
        let seed = self.naming.seed;
        let i = index as u64;
        let status = match hash(seed, i, names::SALT_STATUS) % 1000 {
            0..310 => Status::Unscan,
            310..830 => Status::Success,
            830..910 => Status::Failed,
            910..930 => Status::DownloadFailed,
            930..940 => Status::ImageOversized,
            940..970 => Status::Scanning,
            _ => Status::WaitingForScan,
        };
        let latest_scan_ms = match status {
            Status::Unscan => 0,
            _ => {
                self.created_ms
                    - (hash(seed, i, names::SALT_SCAN_TIME) % (30 * DAY_MS as u64)) as i64
            }
        };
        let update_offset_s =
            -((hash(seed, i, names::SALT_UPDATE_TIME) % (90 * 86_400)) as i32) - 30 * 86_400;
        let mut flags = 0;
        if hash(seed, i, names::SALT_SCANNABLE).is_multiple_of(100) {
            flags |= UNSCANNABLE;
        }
        if status == Status::ImageOversized {
            flags |= OVERSIZED;
        }
        Record {
            latest_scan_ms,
            submitted_ms: 0,
            update_offset_s,
            kind,
            status,
            flags,
            attempts: 0,
        }
    }

    fn push(&mut self, record: Record) {
        let index = self.records.len() as u32;
        let kind = &mut self.types[usize::from(record.kind)];
        kind.all.push(index);
        if record.flags & DELETED == 0 {
            kind.live.push(index);
        }
        self.records.push(record);
    }

    pub fn live_count(&self, kind: u8) -> usize {
        self.types
            .get(usize::from(kind))
            .map_or(0, |t| t.live.len())
    }

    pub(super) fn record(&self, index: usize) -> &Record {
        &self.records[index]
    }

    /// Appends `count` new, never-scanned images of a type; returns how many were added.
    pub fn add(&mut self, kind: u8, count: usize, now_ms: i64) -> usize {
        if usize::from(kind) >= KINDS.len() {
            return 0;
        }
        let update_offset_s =
            ((now_ms - self.created_ms) / 1000).clamp(0, i64::from(i32::MAX)) as i32;
        for _ in 0..count {
            self.push(Record {
                latest_scan_ms: 0,
                submitted_ms: 0,
                update_offset_s,
                kind,
                status: Status::Unscan,
                flags: 0,
                attempts: 0,
            });
        }
        count
    }

    /// Deletes the last `count` live images of a type; returns how many were deleted.
    pub fn delete(&mut self, kind: u8, count: usize) -> usize {
        let Some(index) = self.types.get_mut(usize::from(kind)) else {
            return 0;
        };
        let keep = index.live.len().saturating_sub(count);
        let removed = index.live.split_off(keep);
        for &i in &removed {
            self.records[i as usize].flags |= DELETED;
        }
        removed.len()
    }

    /// Brings every deleted image of a type back; returns how many came back.
    pub fn restore(&mut self, kind: u8) -> usize {
        let Some(index) = self.types.get_mut(usize::from(kind)) else {
            return 0;
        };
        let mut restored = 0;
        for &i in &index.all {
            let record = &mut self.records[i as usize];
            if record.flags & DELETED != 0 {
                record.flags &= !DELETED;
                restored += 1;
            }
        }
        index.live.clone_from(&index.all);
        restored
    }

    /// The status and last scan time HSS reports now, after any submission's lifecycle.
    pub fn state(&self, index: usize, now_ms: i64) -> (Status, i64) {
        let record = &self.records[index];
        if record.flags & SUBMITTED == 0 {
            return (record.status, record.latest_scan_ms);
        }
        let elapsed = now_ms.saturating_sub(record.submitted_ms);
        if elapsed < self.queue_ms {
            (Status::WaitingForScan, record.latest_scan_ms)
        } else if elapsed < self.queue_ms.saturating_add(self.scan_ms) {
            (Status::Scanning, record.latest_scan_ms)
        } else {
            let finished = record
                .submitted_ms
                .saturating_add(self.queue_ms)
                .saturating_add(self.scan_ms);
            (self.outcome(index, record), finished)
        }
    }

    /// The status as reported on the wire: `None` for the configured unknown status.
    pub fn reported_status(&self, index: usize, now_ms: i64) -> Option<Status> {
        let every = self.wire.unknown_status_every;
        if every > 0 && (index + 1).is_multiple_of(every) {
            return None;
        }
        Some(self.state(index, now_ms).0)
    }

    /// How a submission ends, decided by a hash so a rerun with the same seed agrees.
    fn outcome(&self, index: usize, record: &Record) -> Status {
        if record.flags & OVERSIZED != 0 {
            return Status::ImageOversized;
        }
        let draw = hash(
            self.naming.seed,
            index as u64,
            names::SALT_OUTCOME ^ (u64::from(record.attempts) << 32),
        );
        if unit(draw) < self.failure_rate {
            Status::Failed
        } else {
            Status::Success
        }
    }

    pub fn is_scannable(&self, index: usize) -> bool {
        self.records[index].flags & UNSCANNABLE == 0
    }

    /// The live image of this type with exactly these identifying fields. An empty
    /// `instance_id` matches any instance.
    pub fn find(
        &self,
        kind: u8,
        namespace: &str,
        image_name: &str,
        image_version: &str,
        instance_id: &str,
    ) -> Option<usize> {
        let index = self.naming.locate(namespace, image_name, image_version)?;
        let record = self.records.get(index)?;
        if record.kind != kind || record.flags & DELETED != 0 {
            return None;
        }
        if !instance_id.is_empty() {
            let instance = (KINDS[usize::from(kind)] == ImageType::Instance)
                .then(|| self.naming.instance_id(Naming::instance_of(index)));
            if instance.as_deref() != Some(instance_id) {
                return None;
            }
        }
        Some(index)
    }

    /// Puts one image into the scan lifecycle.
    pub fn submit(&mut self, index: usize, now_ms: i64) -> Submitted {
        if !self.is_scannable(index) {
            return Submitted::Unscannable;
        }
        let (status, latest_scan_ms) = self.state(index, now_ms);
        let record = &mut self.records[index];
        if record.flags & SUBMITTED != 0 && status.in_progress() {
            return Submitted::Duplicate;
        }
        // Freeze the previous outcome: while the new scan runs, HSS still shows the last one's time.
        record.status = status;
        record.latest_scan_ms = latest_scan_ms;
        record.flags |= SUBMITTED;
        record.submitted_ms = now_ms;
        record.attempts = record.attempts.saturating_add(1);
        Submitted::Queued
    }

    /// The live images of a type that pass a filter, in list order: the total, and the
    /// indices of the window `offset..offset + limit`.
    pub fn list(
        &self,
        kind: u8,
        filter: &Filter,
        offset: usize,
        limit: usize,
        now_ms: i64,
    ) -> (usize, Vec<usize>) {
        let Some(index) = self.types.get(usize::from(kind)) else {
            return (0, Vec::new());
        };
        if filter.is_empty() {
            let window = index.live.iter().skip(offset).take(limit);
            return (index.live.len(), window.map(|&i| i as usize).collect());
        }
        let mut total = 0;
        let mut window = Vec::with_capacity(limit.min(256));
        for &i in &index.live {
            let i = i as usize;
            if filter.matches(self, i, now_ms) {
                if total >= offset && window.len() < limit {
                    window.push(i);
                }
                total += 1;
            }
        }
        (total, window)
    }

    /// Every live image of a type that passes a filter (batch-scan with `operate_all`).
    pub fn matching(&self, kind: u8, filter: &Filter, now_ms: i64) -> Vec<usize> {
        self.list(kind, filter, 0, usize::MAX, now_ms).1
    }
}

/// The list and batch-scan filters, parsed once into numbers so that a filtered pass over a
/// million images compares integers instead of formatting strings.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A filter value no image can have: the result is empty.
    never: bool,
    team: Option<(usize, bool)>,
    name: Option<(usize, bool)>,
    slot: Option<usize>,
    status: Option<Status>,
    latest: Option<bool>,
    instance: Option<usize>,
}

/// The filters as received. Values are expected to be validated already.
#[derive(Debug, Clone, Default)]
pub struct FilterSpec<'a> {
    pub namespace: Option<&'a str>,
    pub image_name: Option<&'a str>,
    pub image_version: Option<&'a str>,
    pub scan_status: Option<Status>,
    pub latest_version: Option<bool>,
    pub instance_id: Option<&'a str>,
}

impl Filter {
    pub fn new(spec: &FilterSpec<'_>, naming: &Naming) -> Self {
        let mut filter = Filter {
            status: spec.scan_status,
            latest: spec.latest_version,
            ..Filter::default()
        };
        if let Some(ns) = spec.namespace {
            filter.team = Naming::parse_namespace(ns);
            filter.never |= filter.team.is_none();
        }
        if let Some(name) = spec.image_name {
            filter.name = Naming::parse_image_name(name);
            filter.never |= filter.name.is_none();
        }
        if let Some(version) = spec.image_version {
            filter.slot = Naming::parse_image_version(version);
            filter.never |= filter.slot.is_none();
        }
        if let Some(id) = spec.instance_id.filter(|id| !id.is_empty()) {
            filter.instance = naming.parse_instance_id(id);
            filter.never |= filter.instance.is_none();
        }
        filter
    }

    fn is_empty(&self) -> bool {
        !self.never
            && self.team.is_none()
            && self.name.is_none()
            && self.slot.is_none()
            && self.status.is_none()
            && self.latest.is_none()
            && self.instance.is_none()
    }

    fn matches(&self, dataset: &Dataset, index: usize, now_ms: i64) -> bool {
        if self.never {
            return false;
        }
        let repo = Naming::repo(index);
        let oversize = || dataset.naming.oversize(repo);
        if let Some((team, long)) = self.team
            && (repo % names::TEAMS != team || (oversize() == Oversize::Namespace) != long)
        {
            return false;
        }
        if let Some((quotient, long)) = self.name
            && (repo / names::TEAMS != quotient || (oversize() == Oversize::Name) != long)
        {
            return false;
        }
        if self.slot.is_some_and(|slot| Naming::slot(index) != slot)
            || self
                .latest
                .is_some_and(|latest| Naming::is_latest(index) != latest)
        {
            return false;
        }
        if let Some(instance) = self.instance
            && (KINDS[usize::from(dataset.records[index].kind)] != ImageType::Instance
                || Naming::instance_of(index) != instance)
        {
            return false;
        }
        self.status
            .is_none_or(|status| dataset.reported_status(index, now_ms) == Some(status))
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A hash mapped onto [0, 1).
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn dataset(images: usize, lifecycle: Lifecycle) -> Dataset {
        Dataset::new(images, 1, &lifecycle, WireStyle::default(), NOW)
    }

    fn lifecycle(queue_s: u64, scan_s: u64, failure_rate: f64) -> Lifecycle {
        Lifecycle {
            queue_delay: Duration::from_secs(queue_s),
            scan_duration: Duration::from_secs(scan_s),
            failure_rate,
        }
    }

    #[test]
    fn types_and_statuses_are_spread_as_documented() {
        let ds = dataset(100_000, Lifecycle::default());
        let share = |kind| ds.live_count(kind) as f64 / 100_000.0;
        assert!((0.75..0.85).contains(&share(0)), "private {}", share(0));
        assert!((0.11..0.19).contains(&share(1)), "shared {}", share(1));
        assert!((0.02..0.08).contains(&share(2)), "instance {}", share(2));
        let unscan = (0..100_000)
            .filter(|&i| ds.state(i, NOW).0 == Status::Unscan)
            .count();
        assert!((29_000..33_000).contains(&unscan), "{unscan}");
        assert_eq!(std::mem::size_of::<Record>(), 24);
    }

    #[test]
    fn a_submission_waits_scans_then_finishes() {
        let mut ds = dataset(64, lifecycle(2, 5, 0.0));
        let i = (0..64)
            .find(|&i| ds.is_scannable(i) && ds.record(i).flags & OVERSIZED == 0)
            .unwrap();
        assert_eq!(ds.submit(i, NOW), Submitted::Queued);
        assert_eq!(ds.state(i, NOW + 1_000).0, Status::WaitingForScan);
        assert_eq!(ds.submit(i, NOW + 1_000), Submitted::Duplicate);
        assert_eq!(ds.state(i, NOW + 3_000).0, Status::Scanning);
        assert_eq!(ds.state(i, NOW + 7_000), (Status::Success, NOW + 7_000));
        assert_eq!(ds.submit(i, NOW + 8_000), Submitted::Queued);
        assert_eq!(
            ds.state(i, NOW + 8_000),
            (Status::WaitingForScan, NOW + 7_000)
        );
    }

    #[test]
    fn failure_rate_one_always_fails() {
        let mut ds = dataset(64, lifecycle(0, 0, 1.0));
        let i = (0..64)
            .find(|&i| ds.is_scannable(i) && ds.record(i).flags & OVERSIZED == 0)
            .unwrap();
        ds.submit(i, NOW);
        assert_eq!(ds.state(i, NOW).0, Status::Failed);
    }

    #[test]
    fn delete_and_restore_work_from_the_end() {
        let mut ds = dataset(1_000, Lifecycle::default());
        let before = ds.live_count(0);
        let (_, window) = ds.list(0, &Filter::default(), before - 1, 10, NOW);
        let last = window[0];
        assert_eq!(ds.delete(0, 3), 3);
        assert_eq!(ds.live_count(0), before - 3);
        let (ns, name, version) = (
            ds.naming.namespace(last),
            ds.naming.image_name(last),
            Naming::image_version(last),
        );
        assert_eq!(ds.find(0, &ns, &name, &version, ""), None);
        assert_eq!(ds.restore(0), 3);
        assert_eq!(ds.find(0, &ns, &name, &version, ""), Some(last));
        assert_eq!(ds.add(0, 2, NOW), 2);
        assert_eq!(ds.live_count(0), before + 2);
    }

    #[test]
    fn filters_agree_with_the_strings() {
        let ds = dataset(20_000, Lifecycle::default());
        let naming = ds.naming;
        let ns = naming.namespace(8 * 5);
        let spec = FilterSpec {
            namespace: Some(&ns),
            latest_version: Some(true),
            ..FilterSpec::default()
        };
        let filter = Filter::new(&spec, &naming);
        for kind in 0..3 {
            let (total, window) = ds.list(kind, &filter, 0, usize::MAX, NOW);
            assert_eq!(total, window.len());
            let expected: Vec<usize> = (0..ds.records.len())
                .filter(|&i| {
                    usize::from(ds.record(i).kind) == usize::from(kind)
                        && naming.namespace(i) == ns
                        && Naming::is_latest(i)
                })
                .collect();
            assert_eq!(window, expected);
        }
        let nothing = Filter::new(
            &FilterSpec {
                image_name: Some("no-such"),
                ..FilterSpec::default()
            },
            &naming,
        );
        assert_eq!(ds.list(0, &nothing, 0, 10, NOW).0, 0);
    }
}
