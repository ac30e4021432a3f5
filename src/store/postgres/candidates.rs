//! The policy's view of the inventory, read fast: every present image of a target as a
//! [`Candidate`], and the identities of planned images a batch at a time.
//!
//! Candidates come a range of row ids at a time, each range as one row of arrays (one array
//! per field) that PostgreSQL aggregates from the `images_policy` covering index: decoding
//! an array of numbers costs nanoseconds an element, where a row costs sqlx about a
//! microsecond. So the inventory streams through the policy a chunk at a time, never whole,
//! and the next chunks are read on other connections while this one is judged.

use std::collections::{HashMap, VecDeque};

use async_trait::async_trait;
use tokio_util::task::AbortOnDropHandle;

use super::{Context, PgBackend};
use crate::domain::{Candidate, ImageIdentity, Planned, ScanStatus};
use crate::store::policy_fields::PackedPolicyFields;
use crate::store::{Candidates, DueImage, StoreError};

/// Row ids per read of candidates.
const CANDIDATE_CHUNK: i64 = 50_000;

/// Chunks read at once, each on its own connection, while the policy judges the one before.
const CHUNKS_AHEAD: usize = 2;

/// One chunk of candidates: id, packed fields, latest scan, last submission, failures.
const CANDIDATES: &str = "SELECT array_agg(id), array_agg(packed_policy_fields), \
     array_agg(latest_scan_time), array_agg(last_submitted_at), array_agg(failed_submissions) \
     FROM images WHERE target = $1 AND id > $2 AND id <= $3 AND deleted_at IS NULL";

/// The same with namespace, name and tag.
const CANDIDATES_WITH_NAMES: &str = "SELECT array_agg(id), array_agg(packed_policy_fields), \
     array_agg(latest_scan_time), array_agg(last_submitted_at), array_agg(failed_submissions), \
     array_agg(namespace), array_agg(image_name), array_agg(image_version) \
     FROM images WHERE target = $1 AND id > $2 AND id <= $3 AND deleted_at IS NULL";

/// A chunk as PostgreSQL returns it: `NULL` arrays for a range without present images.
type Chunk = (
    Option<Vec<i64>>,
    Option<Vec<i64>>,
    Option<Vec<Option<i64>>>,
    Option<Vec<Option<i64>>>,
    Option<Vec<i64>>,
    Option<Vec<String>>,
    Option<Vec<String>>,
    Option<Vec<String>>,
);

#[async_trait]
impl Candidates for PgBackend {
    /// Every present image of `target`, as the policy sees it, handed to `visit` one by one
    /// in row-id order, [`CANDIDATE_CHUNK`] ids per read. An early return drops (and so
    /// aborts) the reads ahead.
    #[tracing::instrument(skip_all, err, fields(target))]
    async fn visit_candidates(
        &self,
        target: &str,
        with_names: bool,
        visit: &mut (dyn for<'c> FnMut(&'c Candidate) + Send),
    ) -> Result<(), StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM images")
            .fetch_one(&self.pool)
            .await
            .context("read the inventory")?;
        let last = last.unwrap_or(0);
        let fetch = |after: i64| {
            let pool = self.pool.clone();
            let target = target.to_owned();
            AbortOnDropHandle::new(tokio::spawn(async move {
                let chunk: Chunk = if with_names {
                    sqlx::query_as(CANDIDATES_WITH_NAMES)
                        .bind(target)
                        .bind(after)
                        .bind(after.saturating_add(CANDIDATE_CHUNK))
                        .fetch_one(&pool)
                        .await
                        .context("read the inventory")?
                } else {
                    let (ids, fields, scans, submissions, failures) = sqlx::query_as(CANDIDATES)
                        .bind(target)
                        .bind(after)
                        .bind(after.saturating_add(CANDIDATE_CHUNK))
                        .fetch_one(&pool)
                        .await
                        .context("read the inventory")?;
                    (ids, fields, scans, submissions, failures, None, None, None)
                };
                // Unpacked here, on a runtime worker, so that chunks are decoded in parallel.
                unpack(chunk)
            }))
        };
        let chunks = (0..=last / CANDIDATE_CHUNK).map(|n| n * CANDIDATE_CHUNK);
        let mut chunks = chunks.take_while(|after| *after < last);
        let mut ahead: VecDeque<_> = chunks.by_ref().take(CHUNKS_AHEAD).map(fetch).collect();
        while let Some(pending) = ahead.pop_front() {
            let candidates = pending.await.map_err(|_| StoreError::Corrupt {
                what: "a read of the inventory that was cancelled",
            })??;
            ahead.extend(chunks.next().map(fetch));
            candidates.iter().for_each(&mut *visit);
        }
        Ok(())
    }

    /// The identities and current state of `planned` images, in the same order. Images
    /// deleted since the plan was made are left out.
    #[tracing::instrument(skip_all, err, fields(images = planned.len()))]
    async fn due_images(&self, planned: &[Planned]) -> Result<Vec<DueImage>, StoreError> {
        let ids: Vec<i64> = planned.iter().map(|p| p.row_id).collect();
        let rows: Vec<DueRow> = sqlx::query_as(
            "SELECT id, namespace, image_name, image_version, instance_id, instance_url, \
             scan_status, latest_scan_time, last_submitted_at, hss_record_id, image_digest, \
             registry_id, registry_name, registry_type \
             FROM images WHERE id = ANY($1) AND deleted_at IS NULL",
        )
        .bind(ids)
        .fetch_all(&self.pool)
        .await
        .context("read the due images")?;
        let mut found: HashMap<i64, DueRow> = rows.into_iter().map(|r| (r.id, r)).collect();
        Ok(planned
            .iter()
            .filter_map(|p| {
                let r = found.remove(&p.row_id)?;
                Some(DueImage {
                    planned: p.clone(),
                    identity: ImageIdentity {
                        hss_record_id: r.hss_record_id,
                        image_digest: r.image_digest,
                        namespace: r.namespace,
                        image_name: r.image_name,
                        image_version: r.image_version,
                        instance_id: r.instance_id,
                        instance_url: r.instance_url,
                        registry_id: r.registry_id,
                        registry_name: r.registry_name,
                        registry_type: r.registry_type,
                    },
                    scan_status: ScanStatus::from(r.scan_status.as_str()),
                    latest_scan_time: r.latest_scan_time,
                    last_submitted_at: r.last_submitted_at,
                })
            })
            .collect())
    }
}

/// The candidates of a chunk, in row-id order; an error if its arrays do not line up.
fn unpack(chunk: Chunk) -> Result<Vec<Candidate>, StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: "a chunk of the inventory",
    };
    let (ids, fields, scans, submissions, failures, namespaces, names, versions) = chunk;
    let (Some(ids), Some(fields), Some(scans), Some(submissions), Some(failures)) =
        (ids, fields, scans, submissions, failures)
    else {
        return Ok(Vec::new());
    };
    let rows = ids.len();
    if [fields.len(), scans.len(), submissions.len(), failures.len()]
        .iter()
        .any(|n| *n != rows)
    {
        return Err(corrupt());
    }
    let mut candidates = Vec::with_capacity(rows);
    for n in 0..rows {
        let packed = u32::try_from(fields[n]).map_err(|_| corrupt())?;
        candidates.push(PackedPolicyFields(packed).candidate(
            ids[n],
            scans[n],
            submissions[n],
            failures[n],
        ));
    }
    if let (Some(namespaces), Some(names), Some(versions)) = (namespaces, names, versions) {
        if [namespaces.len(), names.len(), versions.len()]
            .iter()
            .any(|n| *n != rows)
        {
            return Err(corrupt());
        }
        for (((c, namespace), name), version) in candidates
            .iter_mut()
            .zip(namespaces)
            .zip(names)
            .zip(versions)
        {
            c.namespace = namespace;
            c.image_name = name;
            c.image_version = version;
        }
    }
    // `array_agg` keeps the order rows came in, which a parallel scan need not make id
    // order; the policy's tie-break is the id, and a visit in id order keeps runs repeatable.
    if candidates.windows(2).any(|w| w[0].row_id > w[1].row_id) {
        candidates.sort_unstable_by_key(|c| c.row_id);
    }
    Ok(candidates)
}

/// One image as `due_images` reads it.
#[derive(sqlx::FromRow)]
struct DueRow {
    id: i64,
    namespace: String,
    image_name: String,
    image_version: String,
    instance_id: String,
    instance_url: String,
    scan_status: String,
    latest_scan_time: Option<i64>,
    last_submitted_at: Option<i64>,
    hss_record_id: Option<i64>,
    image_digest: String,
    registry_id: String,
    registry_name: String,
    registry_type: String,
}
