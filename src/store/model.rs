//! The rows the store hands out and takes in, the same for every backend. Backends convert
//! their own representations (packed reads, column types) into these and keep them private.

use serde::Serialize;
use xxhash_rust::xxh3::Xxh3;

use std::collections::BTreeMap;

use crate::domain::{
    Image, ImageIdentity, ImageType, NativeScanPolicy, PayPerScan, Planned, ScanStatus, Severity,
};

/// What the store knows of an image, keyed by [`PreparedImage::key_hash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownImage {
    /// The row, by which a vanished image is marked deleted.
    pub row_id: i64,
    pub content_hash: i64,
    pub deleted: bool,
}

/// An image with its hashes, ready to be compared with the store and written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedImage {
    pub image: Image,
    /// Hash of the inventory key (type, namespace, name, version, instance id).
    pub key_hash: i64,
    /// Hash of every stored field: equal hashes mean nothing to write.
    pub content_hash: i64,
    /// [`digest_hash`] of the image's digest.
    pub digest_hash: Option<i64>,
}

/// A 64-bit hash of an image digest, for telling a re-pushed tag from the content we last
/// submitted without keeping 71-character texts in the policy index: the first 16 hex digits
/// of a `sha256:` digest (itself a hash, and computable in SQL, so that migration 0011 gave
/// rows stored before it the same number), else xxh3-64 of the text. `None` for no digest.
pub fn digest_hash(digest: &str) -> Option<i64> {
    if digest.is_empty() {
        return None;
    }
    if let Some(hex) = digest.strip_prefix("sha256:")
        && hex.len() == 64
        && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && let Ok(prefix) = u64::from_str_radix(&hex[..16], 16)
    {
        // Databases store signed 64-bit integers; the bits are what matter.
        return Some(prefix as i64);
    }
    let mut hasher = FieldHasher::new();
    hasher.text(digest);
    Some(hasher.finish())
}

/// Feeds fields into a hash, each followed by a separator byte that UTF-8 never contains,
/// so that `("ab", "c")` and `("a", "bc")` differ.
struct FieldHasher(Xxh3);

impl FieldHasher {
    fn new() -> Self {
        FieldHasher(Xxh3::new())
    }
    fn text(&mut self, value: &str) -> &mut Self {
        self.0.update(value.as_bytes());
        self.0.update(&[0xFF]);
        self
    }
    fn number(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(v) => {
                self.0.update(&[1]);
                self.0.update(&v.to_le_bytes());
            }
            None => self.0.update(&[0]),
        }
        self
    }
    fn flag(&mut self, value: Option<bool>) -> &mut Self {
        self.number(value.map(i64::from))
    }
    /// A field only the current API lists: hashed, with its tag, only when present, so that
    /// the hashes of images stored before it existed stay as they were.
    fn optional_text(&mut self, tag: u8, value: &str) -> &mut Self {
        if !value.is_empty() {
            self.0.update(&[0xFE, tag]);
            self.text(value);
        }
        self
    }
    fn optional_number(&mut self, tag: u8, value: Option<i64>) -> &mut Self {
        if let Some(v) = value {
            self.0.update(&[0xFE, tag]);
            self.number(Some(v));
        }
        self
    }
    fn finish(&self) -> i64 {
        // Databases store signed 64-bit integers; the bits are what matter.
        self.0.digest() as i64
    }
}

impl PreparedImage {
    pub fn new(image: Image) -> Self {
        let mut key = FieldHasher::new();
        key.text(image.image_type.as_str())
            .text(&image.namespace)
            .text(&image.image_name)
            .text(&image.image_version)
            .text(&image.instance_id);
        // The same name and tag in two third-party registries are two images. SWR images
        // keep the key they always had: an account has one registry of each SWR type, and
        // the deprecated API, which has no registries, listed them by the same key.
        if image.image_type.is_third_party() {
            key.text(&image.registry_id);
        }
        let key_hash = key.finish();
        let mut content = FieldHasher::new();
        content
            .text(image.image_type.as_str())
            .text(&image.namespace)
            .text(&image.image_name)
            .text(&image.image_version)
            .text(&image.instance_id)
            .number(image.hss_record_id)
            .text(&image.instance_name)
            .text(&image.instance_url)
            .text(&image.hss_image_id)
            .text(&image.image_digest)
            .flag(image.latest_version)
            .text(image.scan_status.as_str())
            .text(&image.scan_failed_desc)
            .number(image.image_size)
            .number(image.latest_update_time)
            .number(image.latest_scan_time)
            .number(image.vul_num)
            .number(image.unsafe_setting_num)
            .number(image.malicious_file_num)
            .text(&image.domain_name)
            .text(&image.shared_status)
            .flag(image.scannable);
        // Only a reason is hashed, so that the hashes of submittable images stored before
        // adapters judged submittability stay as they were (no needless rewrite).
        if let Some(why) = image.unsubmittable {
            content.number(Some(i64::from(why.code())));
        }
        content
            .optional_text(1, &image.registry_id)
            .optional_text(2, &image.registry_name)
            .optional_text(3, &image.registry_type)
            .optional_number(4, image.latest_sync_time)
            .optional_text(5, &image.scan_failed_code)
            .optional_text(6, &image.severity_level)
            .optional_number(7, image.is_multiple_arch.map(i64::from));
        PreparedImage {
            content_hash: content.finish(),
            key_hash,
            digest_hash: digest_hash(&image.image_digest),
            image,
        }
    }
}

/// Live images per target, type and scan status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageCount {
    pub target: String,
    pub image_type: String,
    pub scan_status: String,
    pub images: i64,
}

/// What the listing says a target's present images were found to have at their last scan,
/// counted: no image is named, so a metric of it has a handful of series per target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RiskCounts {
    pub target: String,
    /// Images by `severity_level`; levels no image has are left out.
    pub by_severity: BTreeMap<Severity, u64>,
    /// Images in which the scan found malicious files.
    pub with_malicious_files: u64,
    /// Images in which the scan found unsafe settings.
    pub with_unsafe_settings: u64,
}

/// A present image with findings, for `status --risky`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RiskyImage {
    pub target: String,
    pub image_type: String,
    pub namespace: String,
    pub image_name: String,
    pub image_version: String,
    /// The registry it is listed under (current API only).
    pub registry_name: String,
    pub severity: Option<Severity>,
    pub vul_num: Option<i64>,
    pub malicious_file_num: Option<i64>,
    pub unsafe_setting_num: Option<i64>,
    /// When HSS last scanned it (ms).
    pub latest_scan_time: Option<i64>,
}

/// A planned image with what the scan call and the audit trail need, read from the store just
/// before its batch is recorded ([`super::Store::due_images`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DueImage {
    pub planned: Planned,
    pub identity: ImageIdentity,
    pub scan_status: ScanStatus,
    pub latest_scan_time: Option<i64>,
    /// Our last submission of it (ms); `None`: this would be our first.
    pub last_submitted_at: Option<i64>,
    /// [`digest_hash`] of the digest of that last submission.
    pub submitted_digest_hash: Option<i64>,
    /// When the image appeared (ms): HSS's `latest_update_time`, else when a sync first saw
    /// it. The start of its time to our first submission.
    pub appeared_at: i64,
}

/// A batch about to be recorded `pending`.
#[derive(Debug, Clone, Copy)]
pub struct NewBatch<'a> {
    pub target: &'a str,
    pub image_type: &'a ImageType,
    pub enterprise_project_id: &'a str,
    /// The batch this one was split from, after HSS said it was too large.
    pub parent_id: Option<i64>,
    /// The API generation it goes through (`legacy`, `current`).
    pub api: &'a str,
}

/// A batch as recorded: its id, and the row ids of the request's images it left out (another
/// process submitted them, or they were deleted, since they were read). The rest of the
/// request, in its order, is the batch: nearly always all of it, so it is not copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub batch_id: i64,
    pub left_out: Vec<i64>,
}

impl Claimed {
    /// The images of `offered`, the request this claim answered, that the batch holds.
    pub fn kept(&self, offered: &[DueImage]) -> Vec<DueImage> {
        offered
            .iter()
            .filter(|d| !self.left_out.contains(&d.planned.row_id))
            .cloned()
            .collect()
    }
}

/// Where a batch stands in the audit trail (`scan_batches.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    /// Recorded before its call, or answered in a way that does not tell whether HSS took
    /// it (reported as "unknown"): never resent blindly.
    Pending,
    /// HSS accepted it.
    Sent,
    /// HSS certainly did not take it (refused, or too large and split).
    Failed,
}

impl BatchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BatchStatus::Pending => "pending",
            BatchStatus::Sent => "sent",
            BatchStatus::Failed => "failed",
        }
    }

    /// The status a stored text stands for; `None` for a text no version wrote.
    pub fn parse(text: &str) -> Option<BatchStatus> {
        [BatchStatus::Pending, BatchStatus::Sent, BatchStatus::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// An open item of a target and type, with what reconciliation needs to decide on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenItem {
    pub item_id: i64,
    pub image_row_id: i64,
    pub batch_id: i64,
    /// `Pending` or `Sent`: items of failed batches are never open.
    pub batch_status: BatchStatus,
    /// When the batch was committed: the submission time.
    pub submitted_at: i64,
    pub status_before: ScanStatus,
    pub scan_time_before: Option<i64>,
    pub scan_status: ScanStatus,
    pub latest_scan_time: Option<i64>,
    pub deleted: bool,
    /// The term of the leader lease the batch was recorded under; `None` before leases.
    pub batch_term: Option<i64>,
}

/// How an item ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemOutcome {
    /// HSS scanned it successfully.
    Success,
    /// HSS scanned it and the scan failed.
    Failed,
    /// HSS never received it (its batch's answer never came and nothing moved).
    Lost,
    /// A complete sync no longer lists the image.
    Vanished,
}

impl ItemOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemOutcome::Success => "success",
            ItemOutcome::Failed => "failed",
            ItemOutcome::Lost => "lost",
            ItemOutcome::Vanished => "vanished",
        }
    }
}

/// A row of `scan_batches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Batch {
    pub id: i64,
    pub target: String,
    pub image_type: String,
    pub parent_id: Option<i64>,
    pub created_at: i64,
    pub answered_at: Option<i64>,
    pub status: String,
    pub items: i64,
    pub http_status: Option<i64>,
    pub error_code: Option<String>,
    pub request_id: Option<String>,
    pub error: Option<String>,
    /// `legacy` or `current`.
    pub api: String,
    /// The scan task HSS made of it, once found (current API).
    pub task_id: Option<String>,
    /// The task's progress as last seen: 0..=100, or -1 stopped, -2 timed out, -3 error.
    pub task_progress: Option<i64>,
    pub task_succeeded: Option<i64>,
    pub task_failed: Option<i64>,
}

/// A scan task still to follow: its batch, and when the batch was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenTask {
    pub batch_id: i64,
    pub task_id: String,
    pub created_at: i64,
}

/// What a target's HSS project said about itself at the last sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetFacts {
    pub target: String,
    /// The API in use (`current`, `legacy`, `legacy_fallback`, `undecided`).
    pub api: String,
    /// When `auto` found the current API missing and fell back (ms).
    pub fell_back_at: Option<i64>,
    pub native_scan_policy: Option<NativeScanPolicy>,
    pub pay_per_scan: Option<PayPerScan>,
    pub checked_at: i64,
}

/// How a sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    /// Every page was listed and `total_num` held still: absent images were marked deleted.
    Complete,
    /// Some pages were written but the listing cannot be proved whole: nothing was deleted.
    Partial,
    /// Nothing could be listed.
    Failed,
}

impl SyncOutcome {
    pub const ALL: [SyncOutcome; 3] = [
        SyncOutcome::Complete,
        SyncOutcome::Partial,
        SyncOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::Complete => "complete",
            SyncOutcome::Partial => "partial",
            SyncOutcome::Failed => "failed",
        }
    }
}

/// What one sync counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncRunCounts {
    pub pages: i64,
    pub total_num: Option<i64>,
    pub seen: i64,
    pub new: i64,
    pub changed: i64,
    pub restored: i64,
    pub deleted: i64,
    /// Vanished images whose deletion was held back (see `sync.max_delete_share`).
    pub held: i64,
    pub unreadable_fields: i64,
}

/// A row of `sync_runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncRun {
    pub id: i64,
    pub target: String,
    pub image_type: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub outcome: String,
    #[serde(flatten)]
    pub counts: SyncRunCounts,
    pub error: Option<String>,
    /// Whether it listed every image or only those that changed.
    pub listing: ListingKind,
    /// A full listing: changes the incremental listings before it missed.
    pub missed: i64,
}

/// How a sync read HSS's list (`sync_runs.listing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListingKind {
    /// Every image: the only listing that can show an image is gone.
    Full,
    /// Only the images whose update, sync or scan time lies in a window.
    Incremental,
}

impl ListingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListingKind::Full => "full",
            ListingKind::Incremental => "incremental",
        }
    }

    /// The kind a stored text stands for; `None` for a text no version wrote.
    pub fn parse(text: &str) -> Option<ListingKind> {
        [ListingKind::Full, ListingKind::Incremental]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// How one sync listed, as recorded with its run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncListing {
    pub kind: ListingKind,
    /// Why a full listing ran, or what an incremental one read, in words.
    pub reason: String,
    /// An incremental listing's windows: changes from `window_start` to `window_end` (ms).
    pub window_start: Option<i64>,
    pub window_end: Option<i64>,
    /// A full listing: images whose changes the incremental listings since the previous full
    /// listing missed.
    pub missed: i64,
}

/// A past sync of one target and type, as the next one sees it when it decides how to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastSync {
    pub id: i64,
    pub started_at: i64,
    /// `complete`, `partial`, `failed`, `running` or `interrupted`.
    pub outcome: String,
    pub kind: ListingKind,
    pub window_start: Option<i64>,
    pub window_end: Option<i64>,
}

impl PastSync {
    pub fn complete(&self) -> bool {
        self.outcome == SyncOutcome::Complete.as_str()
    }
}

/// What the syncs of one target and type so far say about how the next one should list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListingHistory {
    /// The latest sync, whatever its outcome.
    pub previous: Option<PastSync>,
    /// When the latest complete full listing started.
    pub last_complete_full: Option<i64>,
    /// The complete incremental listings since the latest full listing (of any outcome),
    /// oldest first: what a full listing now checks.
    pub incremental_since_full: Vec<PastSync>,
}

/// An image's change times as the store holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredTimes {
    pub latest_update_time: Option<i64>,
    pub latest_sync_time: Option<i64>,
    pub latest_scan_time: Option<i64>,
}

/// A row of `job_runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobRun {
    pub id: i64,
    pub job: String,
    pub run_id: String,
    pub trigger: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// `running`, `success`, `failure`, `skipped` or `interrupted`.
    pub outcome: String,
    pub summary: Option<String>,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Unsubmittable;

    fn image() -> Image {
        let mut image = Image::example("app");
        image.hss_image_id = "i".into();
        image.image_digest = "sha256:x".into();
        image.scan_status = ScanStatus::Success;
        image.image_size = Some(10);
        image.latest_update_time = Some(1);
        image.latest_scan_time = Some(2);
        image.vul_num = Some(0);
        image
    }

    #[test]
    fn content_hash_sees_every_change_and_key_hash_only_the_key() {
        let base = PreparedImage::new(image());
        let mut scanned = image();
        scanned.latest_scan_time = Some(3);
        let scanned = PreparedImage::new(scanned);
        assert_eq!(base.key_hash, scanned.key_hash);
        assert_ne!(base.content_hash, scanned.content_hash);

        let mut unknown_size = image();
        unknown_size.unsafe_setting_num = Some(0);
        assert_ne!(
            PreparedImage::new(unknown_size).content_hash,
            base.content_hash,
            "None ≠ 0"
        );

        let mut shifted = image();
        shifted.namespace = "nsa".into();
        shifted.image_name = "pp".into();
        assert_ne!(
            PreparedImage::new(shifted).key_hash,
            base.key_hash,
            "field boundaries count"
        );

        let mut refused = image();
        refused.unsubmittable = Some(Unsubmittable::FieldTooLong);
        assert_ne!(
            PreparedImage::new(refused).content_hash,
            base.content_hash,
            "an adapter's verdict is content"
        );

        // The current API's fields: each counts, and two of them with the same value do not
        // look alike.
        let mut named = image();
        named.registry_name = "x".into();
        let mut coded = image();
        coded.scan_failed_code = "x".into();
        let (named, coded) = (PreparedImage::new(named), PreparedImage::new(coded));
        assert_ne!(named.content_hash, base.content_hash);
        assert_ne!(named.content_hash, coded.content_hash);
        assert_eq!(
            named.key_hash, base.key_hash,
            "SWR keys ignore the registry"
        );
    }

    #[test]
    fn a_sha256_digest_hashes_to_its_first_64_bits_and_any_other_text_to_xxh3() {
        let digest = format!("sha256:{}{}", "ffeeddccbbaa9988", "0".repeat(48));
        assert_eq!(digest_hash(&digest), Some(0xffee_ddcc_bbaa_9988_u64 as i64));
        assert_eq!(
            digest_hash(&format!("sha256:{}{}", "0000000000000001", "f".repeat(48))),
            Some(1)
        );
        // Not the canonical form: upper case, short, another algorithm. Still hashed, and
        // told apart.
        let upper = digest_hash(&digest.to_uppercase()).expect("a hash");
        let short = digest_hash("sha256:ffeeddccbbaa9988").expect("a hash");
        let sha512 = digest_hash(&format!("sha512:{}", "a".repeat(128))).expect("a hash");
        assert_ne!(upper, short);
        assert_ne!(short, 0xffee_ddcc_bbaa_9988_u64 as i64);
        assert_ne!(sha512, upper);
        assert_eq!(digest_hash(""), None);
        let mut repushed = image();
        repushed.image_digest = digest.clone();
        let prepared = PreparedImage::new(repushed);
        assert_eq!(prepared.digest_hash, digest_hash(&digest));
    }

    #[test]
    fn the_same_tag_in_two_third_party_registries_is_two_images() {
        let harbor = |registry: &str| {
            let mut image = image();
            image.image_type = ImageType::Harbor;
            image.registry_id = registry.into();
            PreparedImage::new(image).key_hash
        };
        assert_ne!(harbor("r-1"), harbor("r-2"));
        assert_eq!(harbor("r-1"), harbor("r-1"));
    }

    #[test]
    fn batch_statuses_round_trip_through_their_text() {
        for status in [BatchStatus::Pending, BatchStatus::Sent, BatchStatus::Failed] {
            assert_eq!(BatchStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(BatchStatus::parse("unknown"), None);
    }
}

/// Who holds the leader lease, under which term, and until when (ms); a row of `leases` as
/// either backend returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LeaseState {
    pub holder: String,
    pub term: i64,
    pub acquired_at: i64,
    pub expires_at: i64,
}

impl LeaseState {
    /// Whether this is the lease `fence` was given, still valid at `now`: what every batch
    /// is recorded and sent under.
    pub fn is_held_by(&self, fence: &Fence, now: i64) -> bool {
        self.holder == fence.holder && self.term == fence.term && self.expires_at > now
    }
}

/// This replica's hold on the leader lease: the fencing token every batch is recorded with.
/// The store refuses a batch whose fence is no longer the lease's holder and term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub holder: String,
    pub term: i64,
    /// Until when the lease is ours unless renewed (ms), as this replica's clock reads it.
    pub expires_at: i64,
}

/// The answer to an attempt at the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAttempt {
    /// Ours: newly taken (a new term) or extended (the same term).
    Held(Fence),
    /// Another replica holds it and it has not expired.
    HeldBy(LeaseState),
}

/// What recording a batch came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The batch is recorded `pending` with these images, the rest having been submitted by
    /// another process since the plan was read.
    Claimed(Claimed),
    /// Every image was submitted by another process since the plan was read.
    NothingLeft,
    /// This replica no longer holds the lease with its term: nothing was recorded, and
    /// nothing may be sent.
    Fenced(Option<LeaseState>),
}

impl Claim {
    /// The recorded batch, if one was.
    pub fn into_claimed(self) -> Option<Claimed> {
        match self {
            Claim::Claimed(claimed) => Some(claimed),
            Claim::NothingLeft | Claim::Fenced(_) => None,
        }
    }
}
