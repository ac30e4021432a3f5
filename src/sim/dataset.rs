//! The synthetic account: one compact record per image, strings derived on demand
//! ([`names`](super::names)), and the scan lifecycle computed lazily from the submission time,
//! so no background task ever has to walk a million images.
//!
//! Records are never removed: a deleted image keeps its index (and so its record id) and is
//! only left out of the live lists. The live lists are kept in index order, which is also
//! record-id order, so the unfiltered listing is a slice of one of them.

use std::sync::Mutex;

use super::config::Lifecycle;
use super::kind::Kind;
use super::listing::ListCache;
use super::names::{self, Naming, hash};

/// A scan status as the simulator stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

    pub fn in_progress(self) -> bool {
        matches!(self, Status::Scanning | Status::WaitingForScan)
    }
}

pub(super) const DELETED: u8 = 1;
/// Submitted at least once: the lifecycle, not `status`, says where it is.
pub(super) const SUBMITTED: u8 = 2;
pub(super) const UNSCANNABLE: u8 = 4;
/// Too big to scan; every scan of it ends `image_oversized` again.
pub(super) const OVERSIZED: u8 = 8;
/// Pushed or re-pushed while the simulator ran: it was synced the moment it changed, so its
/// `latest_sync_time` is its `latest_update_time`.
pub(super) const FRESH: u8 = 16;

pub(super) const DAY_MS: i64 = 86_400_000;

/// The first record id; record `i` has id `ID_BASE + i`, so index order is id order. Above
/// `i32::MAX` on purpose: a client that reads ids into 32 bits breaks on the first record.
pub const ID_BASE: i64 = 3_000_000_000;

/// Most images one call may add (`add`, a connected registry, a churn's new pushes): a
/// control request with an absurd count must not take the simulator's memory with it.
pub const MAX_ADDED: usize = 10_000_000;

/// Everything stored per image: 32 bytes, so a million images take 32 MB (plus 8 bytes in
/// the two live lists).
#[derive(Debug, Clone, Copy)]
pub(super) struct Record {
    /// The last finished scan before the current submission (0 = never).
    pub latest_scan_ms: i64,
    /// When the current submission enters the queue; may be in the future when a task's
    /// `rate_limit` paces it.
    pub submitted_ms: i64,
    /// `latest_update_time`: the last push of this tag.
    pub update_ms: i64,
    /// Index into [`Dataset::registries`].
    pub registry: u16,
    pub kind: u8,
    /// The status before the current submission.
    pub status: Status,
    pub flags: u8,
    pub attempts: u8,
    /// Bumped by every re-push: the digest and image id derive from it.
    pub generation: u8,
}

/// A registry the account's images live in: the three SWR ones, then every connected
/// third-party registry, in the order they were added.
#[derive(Debug, Clone)]
pub struct RegistrySlot {
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub added_ms: i64,
    /// The last finished sync.
    pub synced_ms: i64,
    /// A sync task still running ends at this time.
    pub sync_until: Option<i64>,
    /// Live images in it.
    pub live: u32,
}

impl RegistrySlot {
    pub fn latest_sync_ms(&self, now_ms: i64) -> i64 {
        match self.sync_until {
            Some(end) if end <= now_ms => end,
            _ => self.synced_ms,
        }
    }
}

/// How the wire view bends the numbers (see [`SimConfig`](super::SimConfig)).
#[derive(Debug, Clone, Copy, Default)]
pub struct WireStyle {
    pub numbers_as_strings: bool,
    pub junk_number_every: usize,
    pub unknown_status_every: usize,
}

/// Shares of the account with properties that make an image unsubmittable.
#[derive(Debug, Clone, Copy)]
pub struct Shares {
    /// Multi-architecture images (`is_multiple_arch`, with `association_images`).
    pub multi_arch: f64,
    /// Shared images whose `shared_status` is `expired`.
    pub expired_shared: f64,
}

impl Default for Shares {
    fn default() -> Self {
        Self {
            multi_arch: 0.02,
            expired_shared: 0.05,
        }
    }
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

/// Findings of an image's last scan, derived from its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Findings {
    pub vul: u32,
    pub unsafe_settings: u32,
    pub malicious: u32,
}

impl Findings {
    pub fn risky(self) -> bool {
        self.vul > 0 || self.unsafe_settings > 0 || self.malicious > 0
    }

    pub fn severity(self) -> Severity {
        if self.malicious > 0 || self.vul > 150 {
            Severity::High
        } else if self.vul > 60 {
            Severity::Medium
        } else if self.risky() {
            Severity::Low
        } else {
            Severity::Security
        }
    }
}

/// `severity_level` after a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Security,
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Security => "Security",
            Severity::Low => "Low",
            Severity::Medium => "Medium",
            Severity::High => "High",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        [
            Severity::Security,
            Severity::Low,
            Severity::Medium,
            Severity::High,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

pub struct Dataset {
    pub(super) naming: Naming,
    pub(super) created_ms: i64,
    pub(super) records: Vec<Record>,
    /// Live indices per kind, in index order.
    live: [Vec<u32>; 5],
    /// Live indices of every kind, in index order.
    live_all: Vec<u32>,
    pub(super) registries: Vec<RegistrySlot>,
    queue_ms: i64,
    scan_ms: i64,
    failure_rate: f64,
    pub(super) wire: WireStyle,
    pub(super) shares: Shares,
    /// Bumped by every change, so cached listings know they are stale.
    pub(super) version: u64,
    pub(super) cache: Mutex<ListCache>,
    /// Churn calls so far; seeds which images the next one picks.
    pub(super) churn_round: u64,
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
            live: Default::default(),
            live_all: Vec::with_capacity(images),
            registries: Vec::new(),
            queue_ms: millis(lifecycle.queue_delay),
            scan_ms: millis(lifecycle.scan_duration),
            failure_rate: lifecycle.failure_rate,
            wire,
            shares: Shares::default(),
            version: 0,
            cache: Mutex::new(ListCache::default()),
            churn_round: 0,
        };
        // The SWR registries are slots 0..3, one per SWR kind, so an SWR record's registry is
        // its kind code.
        for (n, kind) in Kind::SWR.into_iter().enumerate() {
            let name = match kind {
                Kind::Private => "SWR-private",
                Kind::Shared => "SWR-shared",
                _ => "SWR-enterprise",
            };
            let synced_ms =
                now_ms - (hash(seed, n as u64, names::SALT_SYNC_TIME) % DAY_MS as u64) as i64;
            dataset.registries.push(RegistrySlot {
                id: registry_id(seed, n as u64),
                name: name.to_owned(),
                kind,
                added_ms: now_ms - 365 * DAY_MS,
                synced_ms,
                sync_until: None,
                live: 0,
            });
        }
        for index in 0..images {
            let kind = naming.initial_type(index);
            let record = dataset.initial_record(index, kind, kind.code().into(), true);
            dataset.push(record);
        }
        dataset
    }

    pub fn with_shares(mut self, shares: Shares) -> Self {
        self.shares = shares;
        self
    }

    /// The record an image starts with when it is brought in by the initial account or a
    /// registry being connected: update times 30 to 120 days back and, with `history`, a
    /// spread of statuses with scan times over the last 30 days (one image in a hundred
    /// unscannable either way). Without history every image is unscanned.
    fn initial_record(&self, index: usize, kind: Kind, registry: u16, history: bool) -> Record {
        let seed = self.naming.seed;
        let i = index as u64;
        let status = if !history {
            Status::Unscan
        } else {
            match hash(seed, i, names::SALT_STATUS) % 1000 {
                0..310 => Status::Unscan,
                310..830 => Status::Success,
                830..910 => Status::Failed,
                910..930 => Status::DownloadFailed,
                930..940 => Status::ImageOversized,
                940..970 => Status::Scanning,
                _ => Status::WaitingForScan,
            }
        };
        let latest_scan_ms = match status {
            Status::Unscan => 0,
            _ => {
                self.created_ms
                    - (hash(seed, i, names::SALT_SCAN_TIME) % (30 * DAY_MS as u64)) as i64
            }
        };
        let update_ms = self.created_ms
            - (hash(seed, i, names::SALT_UPDATE_TIME) % (90 * DAY_MS as u64)) as i64
            - 30 * DAY_MS;
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
            update_ms,
            registry,
            kind: kind.code(),
            status,
            flags,
            attempts: 0,
            generation: 0,
        }
    }

    fn push(&mut self, record: Record) {
        let index = self.records.len() as u32;
        if record.flags & DELETED == 0 {
            self.live[usize::from(record.kind)].push(index);
            self.live_all.push(index);
            if let Some(slot) = self.registries.get_mut(usize::from(record.registry)) {
                slot.live += 1;
            }
        }
        self.records.push(record);
        self.version += 1;
    }

    pub fn live_count(&self, kind: Kind) -> usize {
        self.live[usize::from(kind.code())].len()
    }

    pub fn live_total(&self) -> usize {
        self.live_all.len()
    }

    /// The live indices of one kind (`None`: of every kind), in record-id order.
    pub(super) fn live_list(&self, kind: Option<Kind>) -> &[u32] {
        match kind {
            Some(kind) => &self.live[usize::from(kind.code())],
            None => &self.live_all,
        }
    }

    pub(super) fn record(&self, index: usize) -> &Record {
        &self.records[index]
    }

    pub fn kind(&self, index: usize) -> Kind {
        Kind::from_code(self.records[index].kind)
    }

    pub fn is_live(&self, index: usize) -> bool {
        self.records
            .get(index)
            .is_some_and(|r| r.flags & DELETED == 0)
    }

    pub fn registry_of(&self, index: usize) -> &RegistrySlot {
        let slot = usize::from(self.records[index].registry);
        &self.registries[slot.min(self.registries.len() - 1)]
    }

    /// The registry slot images of `kind` go to when nothing says which: the SWR one, or the
    /// first connected registry of that type.
    pub fn default_registry(&self, kind: Kind) -> Option<u16> {
        self.registries
            .iter()
            .position(|r| r.kind == kind)
            .and_then(|p| u16::try_from(p).ok())
    }

    /// Appends `count` new, never-scanned images of a type to its default registry; returns
    /// how many were added (0 when no registry of that type is connected).
    pub fn add(&mut self, kind: Kind, count: usize, now_ms: i64) -> usize {
        let Some(registry) = self.default_registry(kind) else {
            return 0;
        };
        let count = count.min(MAX_ADDED);
        for _ in 0..count {
            self.push(Record {
                latest_scan_ms: 0,
                submitted_ms: 0,
                update_ms: now_ms,
                registry,
                kind: kind.code(),
                status: Status::Unscan,
                flags: FRESH,
                attempts: 0,
                generation: 0,
            });
        }
        count
    }

    /// A new image like an existing one: same kind and registry, pushed now.
    pub(super) fn push_like(&mut self, template: usize, now_ms: i64) {
        let Record { kind, registry, .. } = self.records[template];
        self.push(Record {
            latest_scan_ms: 0,
            submitted_ms: 0,
            update_ms: now_ms,
            registry,
            kind,
            status: Status::Unscan,
            flags: FRESH,
            attempts: 0,
            generation: 0,
        });
    }

    /// Connects a registry: a new slot and `images` images in it. `history` gives them the
    /// initial account's spread of statuses (a registry connected long ago); without it they
    /// are all unscanned. Returns the slot.
    pub fn add_registry(
        &mut self,
        id: String,
        name: String,
        kind: Kind,
        images: usize,
        history: bool,
        now_ms: i64,
    ) -> Option<u16> {
        let slot = u16::try_from(self.registries.len()).ok()?;
        self.registries.push(RegistrySlot {
            id,
            name,
            kind,
            added_ms: now_ms,
            synced_ms: now_ms,
            sync_until: None,
            live: 0,
        });
        for _ in 0..images.min(MAX_ADDED) {
            let index = self.records.len();
            let record = self.initial_record(index, kind, slot, history);
            self.push(record);
        }
        Some(slot)
    }

    /// Deletes the last `count` live images of a type; returns how many were deleted.
    pub fn delete(&mut self, kind: Kind, count: usize) -> usize {
        let list = &self.live[usize::from(kind.code())];
        let keep = list.len().saturating_sub(count);
        let victims: Vec<usize> = list[keep..].iter().map(|&i| i as usize).collect();
        self.delete_indices(&victims)
    }

    /// Marks these live images deleted and drops them from the live lists in one pass each;
    /// returns how many were live.
    pub(super) fn delete_indices(&mut self, indices: &[usize]) -> usize {
        let mut deleted = 0;
        for &i in indices {
            let Some(record) = self.records.get_mut(i) else {
                continue;
            };
            if record.flags & DELETED == 0 {
                record.flags |= DELETED;
                deleted += 1;
                if let Some(slot) = self.registries.get_mut(usize::from(record.registry)) {
                    slot.live = slot.live.saturating_sub(1);
                }
            }
        }
        if deleted > 0 {
            let records = &self.records;
            let alive = |i: &u32| records[*i as usize].flags & DELETED == 0;
            for list in &mut self.live {
                list.retain(alive);
            }
            self.live_all.retain(alive);
            self.version += 1;
        }
        deleted
    }

    /// Brings every deleted image of a type back; returns how many came back.
    pub fn restore(&mut self, kind: Kind) -> usize {
        let code = kind.code();
        let mut restored = 0;
        for record in &mut self.records {
            if record.kind == code && record.flags & DELETED != 0 {
                record.flags &= !DELETED;
                restored += 1;
                if let Some(slot) = self.registries.get_mut(usize::from(record.registry)) {
                    slot.live += 1;
                }
            }
        }
        if restored > 0 {
            // Restored images sit anywhere in index order: rebuild the two lists they join.
            let live: Vec<u32> = (0..self.records.len() as u32)
                .filter(|&i| {
                    let r = &self.records[i as usize];
                    r.kind == code && r.flags & DELETED == 0
                })
                .collect();
            self.live[usize::from(code)] = live;
            self.live_all = (0..self.records.len() as u32)
                .filter(|&i| self.records[i as usize].flags & DELETED == 0)
                .collect();
            self.version += 1;
        }
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
            (self.outcome(index, record), self.finish_ms(record))
        }
    }

    /// When the current submission of a record finishes.
    fn finish_ms(&self, record: &Record) -> i64 {
        record
            .submitted_ms
            .saturating_add(self.queue_ms)
            .saturating_add(self.scan_ms)
    }

    /// The next time `state` of this record changes by itself, if it still will.
    pub(super) fn next_transition(&self, index: usize, now_ms: i64) -> Option<i64> {
        let record = &self.records[index];
        if record.flags & SUBMITTED == 0 {
            return None;
        }
        let scanning_from = record.submitted_ms.saturating_add(self.queue_ms);
        let finish = self.finish_ms(record);
        if now_ms < scanning_from {
            Some(scanning_from)
        } else if now_ms < finish {
            Some(finish)
        } else {
            None
        }
    }

    /// How and when the current submission of an image ends.
    pub fn pending_outcome(&self, index: usize) -> (i64, Status) {
        let record = &self.records[index];
        (self.finish_ms(record), self.outcome(index, record))
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

    pub fn is_multi_arch(&self, index: usize) -> bool {
        unit(hash(self.naming.seed, index as u64, names::SALT_ARCH)) < self.shares.multi_arch
    }

    /// A shared image whose sharing has expired (HSS cannot scan it).
    pub fn is_expired(&self, index: usize) -> bool {
        self.kind(index) == Kind::Shared
            && unit(hash(self.naming.seed, index as u64, names::SALT_EXPIRED))
                < self.shares.expired_shared
    }

    /// The findings of the image's latest scan (meaningful once it succeeded); a new scan or
    /// a re-push draws new ones.
    pub fn findings(&self, index: usize) -> Findings {
        let record = &self.records[index];
        let salt = names::SALT_FINDINGS
            ^ (u64::from(record.attempts) << 32)
            ^ (u64::from(record.generation) << 40);
        let h = hash(self.naming.seed, index as u64, salt);
        Findings {
            vul: (h % 200) as u32,
            unsafe_settings: ((h >> 8) % 6) as u32,
            malicious: u32::from((h >> 16).is_multiple_of(100)),
        }
    }

    /// `latest_update_time`.
    pub fn update_ms(&self, index: usize) -> i64 {
        self.records[index].update_ms
    }

    /// `latest_sync_time` of a record: when a sync last brought it in or changed it.
    pub fn sync_ms(&self, index: usize) -> i64 {
        let record = &self.records[index];
        if record.flags & FRESH != 0 {
            return record.update_ms;
        }
        let registry = self.registry_of(index);
        if registry.kind.is_third_party() {
            return registry.added_ms;
        }
        let span = (self.created_ms - record.update_ms).max(1) as u64;
        record.update_ms
            + (hash(self.naming.seed, index as u64, names::SALT_SYNC_TIME) % span) as i64
    }

    /// The live image of this type with exactly these identifying fields. An empty
    /// `instance_id` matches any instance.
    pub fn find(
        &self,
        kind: Kind,
        namespace: &str,
        image_name: &str,
        image_version: &str,
        instance_id: &str,
    ) -> Option<usize> {
        let index = self.naming.locate(namespace, image_name, image_version)?;
        let record = self.records.get(index)?;
        if record.kind != kind.code() || record.flags & DELETED != 0 {
            return None;
        }
        if !instance_id.is_empty() {
            let instance = (kind == Kind::Instance)
                .then(|| self.naming.instance_id(Naming::instance_of(index)));
            if instance.as_deref() != Some(instance_id) {
                return None;
            }
        }
        Some(index)
    }

    /// The live image with this record id.
    pub fn by_id(&self, id: i64) -> Option<usize> {
        let index = usize::try_from(id.checked_sub(ID_BASE)?).ok()?;
        self.is_live(index).then_some(index)
    }

    /// Puts one image into the scan lifecycle, entering the queue now.
    pub fn submit(&mut self, index: usize, now_ms: i64) -> Submitted {
        self.submit_at(index, now_ms, now_ms)
    }

    /// [`Dataset::submit`] for a submission that is paced to enter the queue at `start_ms`
    /// (≥ `now_ms`).
    pub fn submit_at(&mut self, index: usize, now_ms: i64, start_ms: i64) -> Submitted {
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
        record.submitted_ms = start_ms.max(now_ms);
        record.attempts = record.attempts.saturating_add(1);
        self.version += 1;
        Submitted::Queued
    }

    /// Withdraws a submission that has not finished (a stopped task): the image goes back to
    /// what it showed before. Only if `submitted_ms` is still that submission's.
    pub fn withdraw(&mut self, index: usize, submitted_ms: i64, now_ms: i64) -> bool {
        let Some(record) = self.records.get(index) else {
            return false;
        };
        if record.flags & SUBMITTED == 0
            || record.submitted_ms != submitted_ms
            || self.finish_ms(record) <= now_ms
        {
            return false;
        }
        let record = &mut self.records[index];
        record.flags &= !SUBMITTED;
        self.version += 1;
        true
    }

    /// The submission time a record's current submission has (for a task to recognise it).
    pub fn submitted_ms(&self, index: usize) -> i64 {
        self.records[index].submitted_ms
    }

    /// Moves a registry's `latest_sync_time`: a sync of it runs from now until `until`.
    pub fn start_sync(&mut self, slot: usize, now_ms: i64, until: i64) {
        if let Some(registry) = self.registries.get_mut(slot) {
            registry.synced_ms = registry.latest_sync_ms(now_ms);
            registry.sync_until = Some(until);
            self.version += 1;
        }
    }

    /// The index of the registry with this id, if any.
    pub fn registry_by_id(&self, id: &str) -> Option<usize> {
        self.registries.iter().position(|r| r.id == id)
    }

    pub fn registry_by_name(&self, name: &str) -> Option<usize> {
        self.registries.iter().position(|r| r.name == name)
    }
}

/// A registry id in the shape HSS uses (a UUID), derived from the seed and the slot.
pub fn registry_id(seed: u64, n: u64) -> String {
    let h = hash(seed, n, names::SALT_REGISTRY);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        0x8000 | (n & 0x3fff),
        names::mix(h) & 0xffff_ffff_ffff
    )
}

pub(super) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A hash mapped onto [0, 1).
pub(super) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::filter::{Filter, FilterSpec};
    use super::super::listing::Order;
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

    fn list(ds: &Dataset, filter: &Filter, offset: usize, limit: usize) -> (usize, Vec<usize>) {
        ds.list(filter, Order::Id, offset, limit, NOW)
    }

    #[test]
    fn types_and_statuses_are_spread_as_documented() {
        let ds = dataset(100_000, Lifecycle::default());
        let share = |kind| ds.live_count(kind) as f64 / 100_000.0;
        assert!((0.75..0.85).contains(&share(Kind::Private)));
        assert!((0.11..0.19).contains(&share(Kind::Shared)));
        assert!((0.02..0.08).contains(&share(Kind::Instance)));
        let unscan = (0..100_000)
            .filter(|&i| ds.state(i, NOW).0 == Status::Unscan)
            .count();
        assert!((29_000..33_000).contains(&unscan), "{unscan}");
        assert_eq!(std::mem::size_of::<Record>(), 32);
        let swr: u32 = ds.registries.iter().map(|r| r.live).sum();
        assert_eq!(swr, 100_000);
    }

    #[test]
    fn a_submission_waits_scans_then_finishes() {
        let mut ds = dataset(64, lifecycle(2, 5, 0.0));
        let i = (0..64)
            .find(|&i| ds.is_scannable(i) && ds.record(i).flags & OVERSIZED == 0)
            .unwrap();
        assert_eq!(ds.submit(i, NOW), Submitted::Queued);
        assert_eq!(ds.state(i, NOW + 1_000).0, Status::WaitingForScan);
        assert_eq!(ds.next_transition(i, NOW + 1_000), Some(NOW + 2_000));
        assert_eq!(ds.submit(i, NOW + 1_000), Submitted::Duplicate);
        assert_eq!(ds.state(i, NOW + 3_000).0, Status::Scanning);
        assert_eq!(ds.state(i, NOW + 7_000), (Status::Success, NOW + 7_000));
        assert_eq!(ds.next_transition(i, NOW + 7_000), None);
        assert_eq!(ds.submit(i, NOW + 8_000), Submitted::Queued);
        assert_eq!(
            ds.state(i, NOW + 8_000),
            (Status::WaitingForScan, NOW + 7_000)
        );
    }

    #[test]
    fn a_paced_submission_waits_until_its_start_and_can_be_withdrawn() {
        let mut ds = dataset(64, lifecycle(0, 1, 0.0));
        let i = (0..64)
            .find(|&i| ds.is_scannable(i) && ds.record(i).flags & OVERSIZED == 0)
            .unwrap();
        let before = ds.state(i, NOW);
        assert_eq!(ds.submit_at(i, NOW, NOW + 60_000), Submitted::Queued);
        assert_eq!(ds.state(i, NOW + 59_000).0, Status::WaitingForScan);
        assert!(ds.withdraw(i, NOW + 60_000, NOW + 1));
        assert_eq!(ds.state(i, NOW + 70_000), before);
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
        let private = Filter::of_kind(Some(Kind::Private));
        let before = ds.live_count(Kind::Private);
        let (_, window) = list(&ds, &private, before - 1, 10);
        let last = window[0];
        assert_eq!(ds.delete(Kind::Private, 3), 3);
        assert_eq!(ds.live_count(Kind::Private), before - 3);
        assert_eq!(ds.live_total(), 997);
        let (ns, name, version) = (
            ds.naming.namespace(last),
            ds.naming.image_name(last),
            Naming::image_version(last),
        );
        assert_eq!(ds.find(Kind::Private, &ns, &name, &version, ""), None);
        assert_eq!(ds.by_id(ID_BASE + last as i64), None);
        assert_eq!(ds.restore(Kind::Private), 3);
        assert_eq!(ds.find(Kind::Private, &ns, &name, &version, ""), Some(last));
        assert_eq!(ds.by_id(ID_BASE + last as i64), Some(last));
        assert_eq!(ds.add(Kind::Private, 2, NOW), 2);
        assert_eq!(ds.live_count(Kind::Private), before + 2);
        assert_eq!(ds.add(Kind::Harbor, 2, NOW), 0, "no Harbor registry yet");
    }

    #[test]
    fn a_connected_registry_brings_its_images() {
        let mut ds = dataset(100, Lifecycle::default());
        let slot = ds
            .add_registry("r".into(), "harbor-a".into(), Kind::Harbor, 40, false, NOW)
            .unwrap();
        assert_eq!(ds.live_count(Kind::Harbor), 40);
        assert_eq!(ds.registries[usize::from(slot)].live, 40);
        let first = 100;
        assert_eq!(ds.kind(first), Kind::Harbor);
        assert_eq!(ds.state(first, NOW).0, Status::Unscan);
        assert_eq!(ds.sync_ms(first), NOW);
        assert_eq!(ds.add(Kind::Harbor, 1, NOW), 1);
        assert_eq!(ds.registries[usize::from(slot)].live, 41);
    }

    #[test]
    fn filters_agree_with_the_strings() {
        let ds = dataset(20_000, Lifecycle::default());
        let naming = ds.naming;
        let ns = naming.namespace(8 * 5);
        for kind in Kind::SWR {
            let spec = FilterSpec {
                kind: Some(kind),
                namespace: Some(&ns),
                latest_version: Some(true),
                ..FilterSpec::default()
            };
            let filter = Filter::new(&spec, &ds);
            let (total, window) = list(&ds, &filter, 0, usize::MAX);
            assert_eq!(total, window.len());
            let expected: Vec<usize> = (0..ds.records.len())
                .filter(|&i| {
                    ds.kind(i) == kind && naming.namespace(i) == ns && Naming::is_latest(i)
                })
                .collect();
            assert_eq!(window, expected);
        }
        let nothing = Filter::new(
            &FilterSpec {
                kind: Some(Kind::Private),
                image_name: Some("no-such"),
                ..FilterSpec::default()
            },
            &ds,
        );
        assert_eq!(list(&ds, &nothing, 0, 10).0, 0);
    }
}
