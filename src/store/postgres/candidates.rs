//! The policy's view of the inventory, read fast: every present image of a target as a
//! [`Candidate`], and the identities of planned images a batch at a time.
//!
//! Candidates come a range of row ids at a time, from the `images_policy` covering index,
//! each range as one value: PostgreSQL packs the five numbers of each row into 40 bytes of a
//! `bytea` (`int8send`, big-endian), which is decoded here at the cost of a copy. As arrays
//! of numbers, sqlx spends about 250 ns on every element, most of a plan's time; as rows, a
//! microsecond on every row. So the inventory streams through the policy a chunk at a time,
//! never whole, and the next chunks are read on other connections while this one is judged.

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

/// Bytes per packed candidate: id, packed fields, latest scan, last submission, failures.
const PACKED_ROW: usize = 40;

/// What stands for a time that is `NULL` in a packed row: no time is this.
const NO_TIME: i64 = i64::MIN;

/// One chunk of candidates, packed ([`PACKED_ROW`] bytes a row).
const CANDIDATES: &str = "SELECT string_agg(int8send(id) || int8send(packed_policy_fields) \
     || int8send(COALESCE(latest_scan_time, -9223372036854775808)) \
     || int8send(COALESCE(last_submitted_at, -9223372036854775808)) \
     || int8send(failed_submissions), ''::BYTEA), NULL::TEXT[], NULL::TEXT[], NULL::TEXT[] \
     FROM images WHERE target = $1 AND id > $2 AND id <= $3 AND deleted_at IS NULL";

/// The same with namespace, name and tag, as arrays in the same row order (aggregates of one
/// query see the rows in one order).
const CANDIDATES_WITH_NAMES: &str = "SELECT string_agg(int8send(id) \
     || int8send(packed_policy_fields) \
     || int8send(COALESCE(latest_scan_time, -9223372036854775808)) \
     || int8send(COALESCE(last_submitted_at, -9223372036854775808)) \
     || int8send(failed_submissions), ''::BYTEA), \
     array_agg(namespace), array_agg(image_name), array_agg(image_version) \
     FROM images WHERE target = $1 AND id > $2 AND id <= $3 AND deleted_at IS NULL";

/// A chunk as PostgreSQL returns it: `NULL` for a range without present images.
type Chunk = (
    Option<Vec<u8>>,
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
        let sql = if with_names {
            CANDIDATES_WITH_NAMES
        } else {
            CANDIDATES
        };
        let fetch = |after: i64| {
            let pool = self.pool.clone();
            let target = target.to_owned();
            AbortOnDropHandle::new(tokio::spawn(async move {
                let chunk: Chunk = sqlx::query_as(sql)
                    .bind(target)
                    .bind(after)
                    .bind(after.saturating_add(CANDIDATE_CHUNK))
                    .fetch_one(&pool)
                    .await
                    .context("read the inventory")?;
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

/// The candidates of a chunk, in row-id order; an error if it is not what was asked for.
fn unpack(chunk: Chunk) -> Result<Vec<Candidate>, StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: "a chunk of the inventory",
    };
    let (packed, namespaces, names, versions) = chunk;
    let Some(packed) = packed else {
        return Ok(Vec::new());
    };
    if packed.len() % PACKED_ROW != 0 {
        return Err(corrupt());
    }
    let number = |bytes: &[u8], at: usize| {
        let mut be = [0u8; 8];
        be.copy_from_slice(&bytes[at..at + 8]);
        i64::from_be_bytes(be)
    };
    let time = |t: i64| (t != NO_TIME).then_some(t);
    let mut candidates = Vec::with_capacity(packed.len() / PACKED_ROW);
    for row in packed.chunks_exact(PACKED_ROW) {
        let fields = u32::try_from(number(row, 8)).map_err(|_| corrupt())?;
        candidates.push(PackedPolicyFields(fields).candidate(
            number(row, 0),
            time(number(row, 16)),
            time(number(row, 24)),
            number(row, 32),
        ));
    }
    if let (Some(namespaces), Some(names), Some(versions)) = (namespaces, names, versions) {
        let rows = candidates.len();
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
    // Aggregates take rows in the order the scan gives them, which need not be id order; the
    // policy's tie-break is the id, and a visit in id order keeps runs repeatable.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, fields: i64, scan: i64, submitted: i64, failures: i64) -> Vec<u8> {
        [id, fields, scan, submitted, failures]
            .iter()
            .flat_map(|n| n.to_be_bytes())
            .collect()
    }

    #[test]
    fn a_packed_chunk_unpacks_in_id_order_and_refuses_garbage() {
        let mut packed = row(9, 3 + 8 * 4, NO_TIME, 1_700, 2);
        packed.extend(row(4, 0, 1_600, NO_TIME, 0));
        let names = |a: &str, b: &str| Some(vec![a.to_owned(), b.to_owned()]);
        let seen = unpack((
            Some(packed.clone()),
            names("n9", "n4"),
            names("i9", "i4"),
            names("v9", "v4"),
        ))
        .expect("unpacks");
        assert_eq!(seen.iter().map(|c| c.row_id).collect::<Vec<_>>(), [4, 9]);
        let (four, nine) = (&seen[0], &seen[1]);
        assert_eq!(
            (four.latest_scan_time, four.last_submitted_at),
            (Some(1_600), None)
        );
        assert_eq!(
            (nine.latest_scan_time, nine.last_submitted_at),
            (None, Some(1_700))
        );
        assert_eq!(nine.failed_submissions, 2);
        assert_eq!(nine.scan_status, ScanStatus::Failed);
        assert_eq!(
            (nine.namespace.as_str(), four.image_version.as_str()),
            ("n9", "v4")
        );

        assert!(unpack((None, None, None, None)).expect("empty").is_empty());
        assert!(unpack((Some(packed[..39].to_vec()), None, None, None)).is_err());
        assert!(unpack((Some(row(1, -1, 0, 0, 0)), None, None, None)).is_err());
        assert!(
            unpack((
                Some(packed),
                names("one", "two"),
                names("x", "y"),
                Some(vec![])
            ))
            .is_err()
        );
    }
}
