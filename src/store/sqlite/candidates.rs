//! The policy's view of the inventory, read fast: every present image of a target as a
//! [`Candidate`], and the identities of planned images a batch at a time.
//!
//! Both reads come packed, many rows per query, as one JSON text SQLite builds (sqlx spends
//! about 3.5 µs on each row it hands over, which for a million images was most of a plan).
//! The candidate read touches only a covering index of small numbers, the
//! [`PackedPolicyFields`] among them.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

use async_trait::async_trait;
use tokio_util::task::AbortOnDropHandle;

use super::{Context, SqliteBackend};
use crate::domain::{Candidate, ImageIdentity, Planned, ScanStatus};
use crate::store::policy_fields::PackedPolicyFields;
use crate::store::{Candidates, DueImage, StoreError};

/// Row ids per packed read of candidates.
const CANDIDATE_CHUNK: i64 = 20_000;

/// Ids per read of due images' identities (one bound JSON array, so no variable limit
/// applies).
const IDS_PER_READ: usize = 5000;

/// Chunks read at once: SQLite packs each on its own connection's thread, and the runtime
/// unpacks them, so the plan uses every core.
const CHUNKS_AHEAD: usize = 2;

/// One chunk of candidates from the `images_policy` covering index, as
/// `[id, packed_policy_fields, latest_scan_time, last_submitted_at, failed_submissions]`.
/// Numbers only: every text value SQLite escapes into JSON costs more than the five numbers
/// together.
const CANDIDATES: &str = "SELECT json_group_array(json_array(id, packed_policy_fields, \
     latest_scan_time, last_submitted_at, failed_submissions)) \
     FROM images INDEXED BY images_policy \
     WHERE target = ? AND id > ? AND id <= ? AND deleted_at IS NULL";

/// The same with namespace, name and tag appended, from the table itself (`+target` keeps
/// SQLite on the row-id range rather than an index on target).
const CANDIDATES_WITH_NAMES: &str = "SELECT json_group_array(json_array(id, \
     packed_policy_fields, latest_scan_time, last_submitted_at, failed_submissions, namespace, \
     image_name, image_version)) FROM images WHERE +target = ? AND id > ? AND id <= ? \
     AND deleted_at IS NULL";

#[async_trait]
impl Candidates for SqliteBackend {
    /// Every present image of `target`, as the policy sees it, handed to `visit` one by one
    /// so that the inventory is never held in memory as a whole. `with_names`: fill in
    /// namespace, name and tag (only `[[policy.rules]]` need them).
    ///
    /// Read in row-id order, [`CANDIDATE_CHUNK`] ids per query, each chunk packed by SQLite
    /// as one JSON array: one value for sqlx to hand over instead of a row per image (about
    /// 3.5 µs each). Without names the query reads only the `images_policy` covering index,
    /// a tenth of the table. The next chunk is read by another connection while this one is
    /// judged, so SQLite and the policy share the cores; an early return drops (and so aborts)
    /// the reads ahead.
    #[tracing::instrument(skip_all, err, fields(target))]
    async fn visit_candidates(
        &self,
        target: &str,
        with_names: bool,
        visit: &mut (dyn for<'c> FnMut(&'c Candidate) + Send),
    ) -> Result<(), StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM images")
            .fetch_one(&self.reader)
            .await
            .context("read the inventory")?;
        let last = last.unwrap_or(0);
        let sql = if with_names {
            CANDIDATES_WITH_NAMES
        } else {
            CANDIDATES
        };
        let fetch = |after: i64| {
            let reader = self.reader.clone();
            let target = target.to_owned();
            AbortOnDropHandle::new(tokio::spawn(async move {
                let packed: Option<String> = sqlx::query_scalar(sql)
                    .bind(target)
                    .bind(after)
                    .bind(after.saturating_add(CANDIDATE_CHUNK))
                    .fetch_one(&reader)
                    .await
                    .context("read the inventory")?;
                // Parsed here, on a runtime worker, so that chunks are unpacked in parallel.
                let Some(packed) = packed else {
                    return Ok(Vec::new());
                };
                let corrupt = |_| StoreError::Corrupt {
                    what: "the packed inventory",
                };
                let candidates = if with_names {
                    let rows: Vec<NamedCandidateRow<'_>> =
                        serde_json::from_str(&packed).map_err(corrupt)?;
                    rows.into_iter()
                        .map(NamedCandidateRow::into_candidate)
                        .collect()
                } else {
                    let rows: Vec<CandidateRow> = serde_json::from_str(&packed).map_err(corrupt)?;
                    rows.into_iter().map(CandidateRow::into_candidate).collect()
                };
                Ok::<Vec<Candidate>, StoreError>(candidates)
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

    /// The identities and current state of `planned` images, in the same order, for a batch or a
    /// page of output. Images deleted since the plan was made are left out.
    #[tracing::instrument(skip_all, err, fields(images = planned.len()))]
    async fn due_images(&self, planned: &[Planned]) -> Result<Vec<DueImage>, StoreError> {
        let mut found: HashMap<i64, DueRow> = HashMap::with_capacity(planned.len());
        for chunk in planned.chunks(IDS_PER_READ) {
            let ids = serde_json::to_string(&chunk.iter().map(|p| p.row_id).collect::<Vec<_>>())
                .map_err(|_| StoreError::Corrupt { what: "an id list" })?;
            let packed: Option<String> = sqlx::query_scalar(
                "SELECT json_group_array(json_object('id', id, 'namespace', namespace, \
                 'image_name', image_name, 'image_version', image_version, \
                 'instance_id', instance_id, 'instance_url', instance_url, \
                 'scan_status', scan_status, 'latest_scan_time', latest_scan_time, \
                 'last_submitted_at', last_submitted_at, 'hss_record_id', hss_record_id, \
                 'image_digest', image_digest, 'registry_id', registry_id, \
                 'registry_name', registry_name, 'registry_type', registry_type)) \
                 FROM images WHERE id IN (SELECT value FROM json_each(?)) AND deleted_at IS NULL",
            )
            .bind(ids)
            .fetch_one(&self.reader)
            .await
            .context("read the due images")?;
            if let Some(packed) = packed {
                let rows: Vec<DueRow> =
                    serde_json::from_str(&packed).map_err(|_| StoreError::Corrupt {
                        what: "the packed due images",
                    })?;
                found.extend(rows.into_iter().map(|r| (r.id, r)));
            }
        }
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

/// One image as `visit_candidates` packs it without names.
#[derive(serde::Deserialize)]
struct CandidateRow(i64, PackedPolicyFields, Option<i64>, Option<i64>, i64);

/// One image as `visit_candidates` packs it with names. Text borrows from the packed chunk
/// unless JSON escaping forces a copy.
#[derive(serde::Deserialize)]
struct NamedCandidateRow<'a>(
    i64,
    PackedPolicyFields,
    Option<i64>,
    Option<i64>,
    i64,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
);

impl CandidateRow {
    fn into_candidate(self) -> Candidate {
        let CandidateRow(id, bits, latest_scan_time, last_submitted_at, failed_submissions) = self;
        bits.candidate(id, latest_scan_time, last_submitted_at, failed_submissions)
    }
}

impl NamedCandidateRow<'_> {
    fn into_candidate(self) -> Candidate {
        let NamedCandidateRow(id, bits, scan, submitted, failed, namespace, name, version) = self;
        Candidate {
            namespace: namespace.into_owned(),
            image_name: name.into_owned(),
            image_version: version.into_owned(),
            ..CandidateRow(id, bits, scan, submitted, failed).into_candidate()
        }
    }
}

/// One image as `due_images` reads it: named, because its text fields are many and alike (a
/// batch at a time, the names cost little here, unlike in the candidate read).
#[derive(serde::Deserialize)]
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
    use crate::domain::{Image, ImageType, Unsubmittable};
    use crate::store::policy_fields::{STATUS_DIGITS, TYPE_DIGITS};
    use crate::store::{Backend, Inventory, PreparedImage};

    fn image(n: usize) -> Image {
        let mut image = Image::example(&format!("app{n}"));
        image.latest_version = None;
        image.scannable = None;
        image
    }

    /// `images.packed_policy_fields` is encoded by SQL (migration 0005) and decoded in Rust
    /// ([`PackedPolicyFields`]): every type, status, flag and verdict must come back as it
    /// went in.
    #[tokio::test]
    async fn the_policy_fields_round_trip_through_their_packed_code() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let backend = SqliteBackend::open(&url, 0).await.expect("open");
        let mut types: Vec<ImageType> = TYPE_DIGITS.iter().map(|t| ImageType::from(*t)).collect();
        types.push(ImageType::from("enterprise_image"));
        let mut statuses = STATUS_DIGITS.to_vec();
        statuses.push(ScanStatus::from("quarantined"));
        let flags = [Some(true), Some(false), None];
        let verdicts = [None, Some(Unsubmittable::FieldTooLong)];
        let mut want = Vec::new();
        for image_type in &types {
            for status in &statuses {
                for scannable in flags {
                    for latest in flags {
                        for unsubmittable in verdicts {
                            let mut i = image(want.len());
                            i.image_type = image_type.clone();
                            i.scan_status = status.clone();
                            i.scannable = scannable;
                            i.latest_version = latest;
                            i.unsubmittable = unsubmittable;
                            want.push(i);
                        }
                    }
                }
            }
        }
        let prepared: Vec<PreparedImage> = want.iter().cloned().map(PreparedImage::new).collect();
        backend
            .upsert_images("t", &prepared, 1)
            .await
            .expect("upsert");
        sqlx::query("UPDATE images SET in_flight = 1 WHERE id % 3 = 0")
            .execute(&backend.writer)
            .await
            .expect("mark some in flight");

        let mut seen = Vec::new();
        backend
            .visit_candidates("t", true, &mut |c| seen.push(c.clone()))
            .await
            .expect("visit");
        assert_eq!(seen.len(), want.len());
        for c in &seen {
            let w = want
                .iter()
                .find(|w| w.image_name == c.image_name)
                .expect("an image");
            let name = &w.image_name;
            // Unknown values decode as `Other` without their text, which the policy never
            // reads.
            let same_type = c.image_type == w.image_type
                || matches!(
                    (&c.image_type, &w.image_type),
                    (ImageType::Other(_), ImageType::Other(_))
                );
            let same_status = c.scan_status == w.scan_status
                || matches!(
                    (&c.scan_status, &w.scan_status),
                    (ScanStatus::Other(_), ScanStatus::Other(_))
                );
            assert!(
                same_type,
                "{name}: type {:?} for {:?}",
                c.image_type, w.image_type
            );
            assert!(
                same_status,
                "{name}: status {:?} for {:?}",
                c.scan_status, w.scan_status
            );
            assert_eq!(c.scannable, w.scannable, "{name}: scannable");
            assert_eq!(c.latest_version, w.latest_version, "{name}: latest");
            assert_eq!(c.unsubmittable, w.unsubmittable, "{name}: verdict");
            assert_eq!(c.in_flight, c.row_id % 3 == 0, "{name}: in flight");
        }
        Backend::close(&backend).await;
    }
}
