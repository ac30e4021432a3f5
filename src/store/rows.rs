//! Rows as both backends return them, and what they become: the column types are the same
//! on SQLite and PostgreSQL (integers, text, booleans), so one `FromRow` serves both and a
//! change to a row is made once.

use sqlx::FromRow;

use super::policy_fields::RiskDigits;

use crate::domain::{Image, ImageType, ScanStatus, Unsubmittable};
use crate::store::{
    Batch, BatchStatus, JobRun, ListingKind, OpenItem, PastSync, RiskyImage, StoreError, SyncRun,
    SyncRunCounts, TargetFacts,
};

/// A value stored as JSON text, `NULL` for none.
pub(super) fn to_json<T: serde::Serialize>(
    value: &Option<T>,
) -> Result<Option<String>, StoreError> {
    value
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|_| StoreError::Corrupt {
            what: "a value to store as JSON",
        })
}

/// A row of `target_facts`: HSS's own scan policy and billing switch stored as JSON text.
#[derive(FromRow)]
pub(super) struct TargetFactsRow {
    target: String,
    api: String,
    fell_back_at: Option<i64>,
    native_policy: Option<String>,
    billing: Option<String>,
    checked_at: i64,
}

impl TryFrom<TargetFactsRow> for TargetFacts {
    type Error = StoreError;

    fn try_from(r: TargetFactsRow) -> Result<TargetFacts, StoreError> {
        let corrupt = |_| StoreError::Corrupt {
            what: "what a target's HSS project said",
        };
        Ok(TargetFacts {
            target: r.target,
            api: r.api,
            fell_back_at: r.fell_back_at,
            native_scan_policy: r
                .native_policy
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(corrupt)?,
            pay_per_scan: r
                .billing
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(corrupt)?,
            checked_at: r.checked_at,
        })
    }
}

/// A row of `sync_runs`, as either backend returns it.
#[derive(FromRow)]
pub(super) struct SyncRunRow {
    id: i64,
    target: String,
    image_type: String,
    started_at: i64,
    finished_at: Option<i64>,
    outcome: String,
    pages: i64,
    total_num: Option<i64>,
    seen: i64,
    new: i64,
    changed: i64,
    restored: i64,
    deleted: i64,
    held: i64,
    unreadable_fields: i64,
    error: Option<String>,
    listing: String,
    missed: i64,
}

impl TryFrom<SyncRunRow> for SyncRun {
    type Error = StoreError;

    fn try_from(r: SyncRunRow) -> Result<SyncRun, StoreError> {
        let listing = ListingKind::parse(&r.listing).ok_or(StoreError::Corrupt {
            what: "a sync run's listing",
        })?;
        Ok(SyncRun {
            id: r.id,
            target: r.target,
            image_type: r.image_type,
            started_at: r.started_at,
            finished_at: r.finished_at,
            outcome: r.outcome,
            counts: SyncRunCounts {
                pages: r.pages,
                total_num: r.total_num,
                seen: r.seen,
                new: r.new,
                changed: r.changed,
                restored: r.restored,
                deleted: r.deleted,
                held: r.held,
                unreadable_fields: r.unreadable_fields,
            },
            error: r.error,
            listing,
            missed: r.missed,
        })
    }
}

/// A past sync as the next one reads it to decide how to list.
#[derive(FromRow)]
pub(super) struct PastSyncRow {
    id: i64,
    started_at: i64,
    outcome: String,
    listing: String,
    window_start: Option<i64>,
    window_end: Option<i64>,
}

impl TryFrom<PastSyncRow> for PastSync {
    type Error = StoreError;

    fn try_from(r: PastSyncRow) -> Result<PastSync, StoreError> {
        Ok(PastSync {
            id: r.id,
            started_at: r.started_at,
            outcome: r.outcome,
            kind: ListingKind::parse(&r.listing).ok_or(StoreError::Corrupt {
                what: "a sync run's listing",
            })?,
            window_start: r.window_start,
            window_end: r.window_end,
        })
    }
}

/// A row of `job_runs`, as either backend returns it.
#[derive(FromRow)]
pub(super) struct JobRunRow {
    id: i64,
    job: String,
    run_id: String,
    trigger: String,
    started_at: i64,
    finished_at: Option<i64>,
    outcome: String,
    summary: Option<String>,
    error: Option<String>,
}

impl From<JobRunRow> for JobRun {
    fn from(r: JobRunRow) -> JobRun {
        JobRun {
            id: r.id,
            job: r.job,
            run_id: r.run_id,
            trigger: r.trigger,
            started_at: r.started_at,
            finished_at: r.finished_at,
            outcome: r.outcome,
            summary: r.summary,
            error: r.error,
        }
    }
}

/// An open item, as either backend returns it.
#[derive(FromRow)]
pub(super) struct OpenItemRow {
    item_id: i64,
    image_row_id: i64,
    batch_id: i64,
    batch_status: String,
    submitted_at: i64,
    status_before: String,
    scan_time_before: Option<i64>,
    scan_status: String,
    latest_scan_time: Option<i64>,
    deleted: bool,
    batch_term: Option<i64>,
}

impl OpenItemRow {
    pub(super) fn into_item(self) -> Result<OpenItem, StoreError> {
        Ok(OpenItem {
            item_id: self.item_id,
            image_row_id: self.image_row_id,
            batch_id: self.batch_id,
            batch_status: BatchStatus::parse(&self.batch_status).ok_or(StoreError::Corrupt {
                what: "the status of a batch",
            })?,
            submitted_at: self.submitted_at,
            status_before: ScanStatus::from(self.status_before.as_str()),
            scan_time_before: self.scan_time_before,
            scan_status: ScanStatus::from(self.scan_status.as_str()),
            latest_scan_time: self.latest_scan_time,
            deleted: self.deleted,
            batch_term: self.batch_term,
        })
    }
}

/// A row of `scan_batches`, as either backend returns it.
#[derive(FromRow)]
pub(super) struct BatchRow {
    id: i64,
    target: String,
    image_type: String,
    parent_id: Option<i64>,
    created_at: i64,
    answered_at: Option<i64>,
    status: String,
    items: i64,
    http_status: Option<i64>,
    error_code: Option<String>,
    request_id: Option<String>,
    error: Option<String>,
    api: String,
    task_id: Option<String>,
    task_progress: Option<i64>,
    task_succeeded: Option<i64>,
    task_failed: Option<i64>,
}

impl From<BatchRow> for Batch {
    fn from(r: BatchRow) -> Batch {
        Batch {
            id: r.id,
            target: r.target,
            image_type: r.image_type,
            parent_id: r.parent_id,
            created_at: r.created_at,
            answered_at: r.answered_at,
            status: r.status,
            items: r.items,
            http_status: r.http_status,
            error_code: r.error_code,
            request_id: r.request_id,
            error: r.error,
            api: r.api,
            task_id: r.task_id,
            task_progress: r.task_progress,
            task_succeeded: r.task_succeeded,
            task_failed: r.task_failed,
        }
    }
}

/// A row of [`Inventory::riskiest_images`].
#[derive(FromRow)]
pub(super) struct RiskyRow {
    target: String,
    image_type: String,
    namespace: String,
    image_name: String,
    image_version: String,
    registry_name: String,
    packed_risk: i64,
    vul_num: Option<i64>,
    malicious_file_num: Option<i64>,
    unsafe_setting_num: Option<i64>,
    latest_scan_time: Option<i64>,
}

impl From<RiskyRow> for RiskyImage {
    fn from(r: RiskyRow) -> RiskyImage {
        RiskyImage {
            target: r.target,
            image_type: r.image_type,
            namespace: r.namespace,
            image_name: r.image_name,
            image_version: r.image_version,
            registry_name: r.registry_name,
            severity: RiskDigits(r.packed_risk).severity(),
            vul_num: r.vul_num,
            malicious_file_num: r.malicious_file_num,
            unsafe_setting_num: r.unsafe_setting_num,
            latest_scan_time: r.latest_scan_time,
        }
    }
}

#[derive(FromRow)]
pub(super) struct ImageRow {
    image_type: String,
    namespace: String,
    image_name: String,
    image_version: String,
    instance_id: String,
    hss_record_id: Option<i64>,
    instance_name: String,
    instance_url: String,
    hss_image_id: String,
    image_digest: String,
    latest_version: Option<bool>,
    scan_status: String,
    scan_failed_desc: String,
    image_size: Option<i64>,
    latest_update_time: Option<i64>,
    latest_scan_time: Option<i64>,
    vul_num: Option<i64>,
    unsafe_setting_num: Option<i64>,
    malicious_file_num: Option<i64>,
    domain_name: String,
    shared_status: String,
    scannable: Option<bool>,
    registry_id: String,
    registry_name: String,
    registry_type: String,
    latest_sync_time: Option<i64>,
    scan_failed_code: String,
    severity_level: String,
    is_multiple_arch: Option<bool>,
    unsubmittable: i64,
}

impl From<ImageRow> for Image {
    fn from(r: ImageRow) -> Self {
        Image {
            hss_record_id: r.hss_record_id,
            image_type: ImageType::from(r.image_type.as_str()),
            namespace: r.namespace,
            image_name: r.image_name,
            image_version: r.image_version,
            instance_id: r.instance_id,
            instance_name: r.instance_name,
            instance_url: r.instance_url,
            hss_image_id: r.hss_image_id,
            image_digest: r.image_digest,
            latest_version: r.latest_version,
            scan_status: r.scan_status.as_str().into(),
            scan_failed_desc: r.scan_failed_desc,
            image_size: r.image_size,
            latest_update_time: r.latest_update_time,
            latest_scan_time: r.latest_scan_time,
            vul_num: r.vul_num,
            unsafe_setting_num: r.unsafe_setting_num,
            malicious_file_num: r.malicious_file_num,
            domain_name: r.domain_name,
            shared_status: r.shared_status,
            scannable: r.scannable,
            registry_id: r.registry_id,
            registry_name: r.registry_name,
            registry_type: r.registry_type,
            latest_sync_time: r.latest_sync_time,
            scan_failed_code: r.scan_failed_code,
            severity_level: r.severity_level,
            is_multiple_arch: r.is_multiple_arch,
            unsubmittable: u8::try_from(r.unsubmittable)
                .ok()
                .map_or(Some(Unsubmittable::FieldTooLong), Unsubmittable::from_code),
        }
    }
}
