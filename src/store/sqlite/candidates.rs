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
use crate::store::policy_fields::{ImageState, IndexedImage, PackedPolicyFields};
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
/// `[id, packed_policy_fields, latest_scan_time, updated_after_scan, digest_hash]`. Numbers
/// only: every text value SQLite escapes into JSON costs more than the numbers together. The
/// latest push time is sent only when it is later than the latest scan (the only case the
/// policy reads), so that most images carry a short `null` instead of a 13-digit time.
const CANDIDATES: &str = "SELECT json_group_array(json_array(id, packed_policy_fields, \
     latest_scan_time, \
     CASE WHEN latest_update_time > latest_scan_time THEN latest_update_time END, \
     digest_hash)) \
     FROM images INDEXED BY images_policy \
     WHERE target = ? AND id > ? AND id <= ? AND deleted_at IS NULL";

/// The same with namespace, name and tag appended, from the table itself (`+target` keeps
/// SQLite on the row-id range rather than an index on target).
const CANDIDATES_WITH_NAMES: &str = "SELECT json_group_array(json_array(id, \
     packed_policy_fields, latest_scan_time, \
     CASE WHEN latest_update_time > latest_scan_time THEN latest_update_time END, \
     digest_hash, namespace, image_name, image_version)) \
     FROM images WHERE +target = ? AND id > ? AND id <= ? AND deleted_at IS NULL";

/// Our bookkeeping on the images of the same row-id range (only images we submitted have
/// any), as `[image_row_id, last_submitted_at, failed_submissions, in_flight,
/// submitted_digest_hash]`, in row order.
const STATES: &str = "SELECT json_group_array(json_array(image_row_id, last_submitted_at, \
     failed_submissions, in_flight, submitted_digest_hash)) \
     FROM submission_state WHERE image_row_id > ? AND image_row_id <= ?";

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
                let until = after.saturating_add(CANDIDATE_CHUNK);
                // One snapshot for both reads: the images and our bookkeeping on them.
                let mut tx = reader.begin().await.context("read the inventory")?;
                let packed: Option<String> = sqlx::query_scalar(sql)
                    .bind(target)
                    .bind(after)
                    .bind(until)
                    .fetch_one(&mut *tx)
                    .await
                    .context("read the inventory")?;
                let states: Option<String> = sqlx::query_scalar(STATES)
                    .bind(after)
                    .bind(until)
                    .fetch_one(&mut *tx)
                    .await
                    .context("read the submission state")?;
                tx.commit().await.context("read the inventory")?;
                // Parsed here, on a runtime worker, so that chunks are unpacked in parallel.
                let Some(packed) = packed else {
                    return Ok(Vec::new());
                };
                let corrupt = |_| StoreError::Corrupt {
                    what: "the packed inventory",
                };
                let states: Vec<StateRow> = match states {
                    Some(states) => serde_json::from_str(&states).map_err(corrupt)?,
                    None => Vec::new(),
                };
                let mut states = States::new(states);
                let candidates = if with_names {
                    let rows: Vec<NamedCandidateRow<'_>> =
                        serde_json::from_str(&packed).map_err(corrupt)?;
                    rows.into_iter()
                        .map(|row| {
                            let state = states.of(row.0);
                            row.into_candidate(state)
                        })
                        .collect()
                } else {
                    let rows: Vec<CandidateRow> = serde_json::from_str(&packed).map_err(corrupt)?;
                    rows.into_iter()
                        .map(|row| {
                            let state = states.of(row.0);
                            row.into_candidate(state)
                        })
                        .collect()
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
    ///
    /// Read through the writer's connection, outside any transaction: a scan reads a batch
    /// here, then commits it through the writer, batch after batch. A reader's page cache is
    /// emptied by every commit of another connection, so each batch's read started cold and
    /// fetched the table's upper pages again from the file; the writer's own commits leave
    /// its cache as it is.
    #[tracing::instrument(skip_all, err, fields(images = planned.len()))]
    async fn due_images(&self, planned: &[Planned]) -> Result<Vec<DueImage>, StoreError> {
        let mut found: HashMap<i64, DueRow> = HashMap::with_capacity(planned.len());
        for chunk in planned.chunks(IDS_PER_READ) {
            let ids = serde_json::to_string(&chunk.iter().map(|p| p.row_id).collect::<Vec<_>>())
                .map_err(|_| StoreError::Corrupt { what: "an id list" })?;
            let packed: Option<String> = sqlx::query_scalar(
                "SELECT json_group_array(json_array(i.id, i.namespace, i.image_name, \
                 i.image_version, i.instance_id, i.instance_url, i.scan_status, \
                 i.latest_scan_time, s.last_submitted_at, i.hss_record_id, i.image_digest, \
                 i.registry_id, i.registry_name, i.registry_type, s.submitted_digest_hash, \
                 ifnull(i.latest_update_time, i.first_seen_at))) \
                 FROM images i LEFT JOIN submission_state s ON s.image_row_id = i.id \
                 WHERE i.id IN (SELECT value FROM json_each(?)) AND i.deleted_at IS NULL",
            )
            .bind(ids)
            .fetch_one(&self.writer)
            .await
            .context("read the due images")?;
            if let Some(packed) = packed {
                let rows: Vec<DueRow> =
                    serde_json::from_str(&packed).map_err(|_| StoreError::Corrupt {
                        what: "the packed due images",
                    })?;
                found.extend(rows.into_iter().map(|r| (r.0, r)));
            }
        }
        Ok(planned
            .iter()
            .filter_map(|p| {
                let DueRow(
                    _,
                    namespace,
                    image_name,
                    image_version,
                    instance_id,
                    instance_url,
                    scan_status,
                    latest_scan_time,
                    last_submitted_at,
                    hss_record_id,
                    image_digest,
                    registry_id,
                    registry_name,
                    registry_type,
                    submitted_digest_hash,
                    appeared_at,
                ) = found.remove(&p.row_id)?;
                Some(DueImage {
                    planned: p.clone(),
                    identity: ImageIdentity {
                        hss_record_id,
                        image_digest,
                        namespace,
                        image_name,
                        image_version,
                        instance_id,
                        instance_url,
                        registry_id,
                        registry_name,
                        registry_type,
                    },
                    scan_status: ScanStatus::from(scan_status.as_str()),
                    latest_scan_time,
                    last_submitted_at,
                    submitted_digest_hash,
                    appeared_at,
                })
            })
            .collect())
    }
}

/// One image as `visit_candidates` packs it without names: id, packed fields, latest scan
/// time, latest push time if later, digest hash.
#[derive(serde::Deserialize)]
struct CandidateRow(
    i64,
    PackedPolicyFields,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// One image as `visit_candidates` packs it with names. Text borrows from the packed chunk
/// unless JSON escaping forces a copy.
#[derive(serde::Deserialize)]
struct NamedCandidateRow<'a>(
    i64,
    PackedPolicyFields,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
);

/// Our bookkeeping on one image, as [`STATES`] packs it.
#[derive(serde::Deserialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
struct StateRow(i64, Option<i64>, i64, i64, Option<i64>);

/// The states of a chunk, in row order, consumed while its candidates go by in the same
/// order: a merge, not a lookup per image.
struct States {
    rows: std::vec::IntoIter<StateRow>,
    next: Option<StateRow>,
}

impl States {
    fn new(rows: Vec<StateRow>) -> Self {
        let mut rows = rows.into_iter();
        let next = rows.next();
        States { rows, next }
    }

    /// The state of image `id` (ids asked for in ascending order); the default (never
    /// submitted) when it has none.
    fn of(&mut self, id: i64) -> StateRow {
        while let Some(row) = self.next {
            if row.0 > id {
                break;
            }
            self.next = self.rows.next();
            if row.0 == id {
                return row;
            }
        }
        StateRow::default()
    }
}

impl CandidateRow {
    fn into_candidate(self, state: StateRow) -> Candidate {
        let CandidateRow(row_id, bits, latest_scan_time, updated_after_scan, digest_hash) = self;
        let StateRow(_, last_submitted_at, failed_submissions, in_flight, submitted_digest_hash) =
            state;
        bits.candidate(
            IndexedImage {
                row_id,
                latest_scan_time,
                updated_after_scan,
                digest_hash,
            },
            ImageState {
                last_submitted_at,
                failed_submissions,
                in_flight: in_flight != 0,
                submitted_digest_hash,
            },
        )
    }
}

impl NamedCandidateRow<'_> {
    fn into_candidate(self, state: StateRow) -> Candidate {
        let NamedCandidateRow(id, bits, scan, updated, digest, namespace, name, version) = self;
        Candidate {
            namespace: namespace.into_owned(),
            image_name: name.into_owned(),
            image_version: version.into_owned(),
            ..CandidateRow(id, bits, scan, updated, digest).into_candidate(state)
        }
    }
}

/// One image as `due_images` reads it: id, namespace, name, tag, instance id and URL, scan
/// status, latest scan time, last submission, HSS record id, digest, registry id, name and
/// type, the digest hash of the last submission, when it appeared.
#[derive(serde::Deserialize)]
struct DueRow(
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    String,
    String,
    String,
    String,
    Option<i64>,
    i64,
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Image;
    use crate::domain::{ImageType, Unsubmittable};
    use crate::store::conformance::assert_candidate_reads_back;
    use crate::store::policy_fields::{STATUS_DIGITS, TYPE_DIGITS};
    use crate::store::{Backend, Inventory, PreparedImage, digest_hash};

    /// A database made before migration 0011 gets, from the migration's SQL, the digest
    /// hashes the sync and the submissions compute in Rust: a re-pushed tag is recognised
    /// from the first plan after the upgrade, with no new submission or sync needed. The
    /// same rows then go through migration 0012's rebuild of `images`.
    #[tokio::test]
    async fn migration_0011_hashes_the_digests_of_an_existing_database_as_rust_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = dir.path().join("migrations");
        std::fs::create_dir(&old).expect("mkdir");
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        for entry in std::fs::read_dir(&shipped).expect("migrations") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".sql") && name.as_str() < "0011" {
                std::fs::copy(&path, old.join(&name)).expect("copy");
            }
        }
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
            .expect("url")
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.expect("open");
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .expect("old migrations")
            .run(&pool)
            .await
            .expect("migrate to before 0011");
        let hex = |c: &str| format!("sha256:{}", c.repeat(32));
        let (submitted, rejected, now) = (hex("0f"), hex("a5"), hex("9c"));
        for (id, digest) in [(1, now.as_str()), (2, "md5:not-a-sha256"), (3, "")] {
            sqlx::query(
                "INSERT INTO images (id, target, image_type, namespace, image_name, \
                 image_version, instance_id, key_hash, content_hash, instance_name, \
                 instance_url, hss_image_id, image_digest, scan_status, scan_failed_desc, \
                 domain_name, shared_status, first_seen_at, changed_at) \
                 VALUES (?, 't', 'private_image', 'ns', ?, 'v1', '', ?, 0, '', '', '', ?, \
                 'success', '', '', '', 0, 0)",
            )
            .bind(id)
            .bind(format!("app{id}"))
            .bind(id)
            .bind(digest)
            .execute(&pool)
            .await
            .expect("an image");
        }
        // Image 1: scanned after one submission, then a refused one of other content.
        sqlx::query(
            "INSERT INTO scan_batches (id, target, image_type, enterprise_project_id, owner, \
             created_at, status, items) VALUES (1, 't', 'private_image', '', 'x', 0, 'sent', 1), \
             (2, 't', 'private_image', '', 'x', 0, 'failed', 1)",
        )
        .execute(&pool)
        .await
        .expect("batches");
        sqlx::query(
            "INSERT INTO scan_items (id, batch_id, image_row_id, reason, priority, \
             status_before, image_digest, outcome) VALUES \
             (1, 1, 1, 'never_scanned', 0, 'unscan', ?, 'success'), \
             (2, 2, 1, 'stale', 0, 'success', ?, 'rejected')",
        )
        .bind(&submitted)
        .bind(&rejected)
        .execute(&pool)
        .await
        .expect("items");
        sqlx::query(
            "INSERT INTO submission_state (image_row_id, last_submitted_at, last_item_id) \
             VALUES (1, 5, 2)",
        )
        .execute(&pool)
        .await
        .expect("state");
        pool.close().await;

        let backend = SqliteBackend::open(&url, 0)
            .await
            .expect("migrate the rest");
        let hashes: Vec<(i64, Option<i64>)> =
            sqlx::query_as("SELECT id, digest_hash FROM images ORDER BY id")
                .fetch_all(&backend.reader)
                .await
                .expect("hashes");
        assert_eq!(
            hashes,
            [(1, digest_hash(&now)), (2, None), (3, None)],
            "sha256 digests as Rust hashes them; others unknown until rewritten"
        );
        let ours: Option<i64> =
            sqlx::query_scalar("SELECT submitted_digest_hash FROM submission_state")
                .fetch_one(&backend.reader)
                .await
                .expect("ours");
        assert_eq!(
            ours,
            digest_hash(&submitted),
            "the refused item does not count"
        );
        // Migration 0012 rebuilt `images` under these rows: ids kept, no reference left
        // dangling, the key unique, and foreign keys enforced again.
        let dangling = sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&backend.writer)
            .await
            .expect("check the foreign keys");
        assert!(
            dangling.is_empty(),
            "{} dangling references",
            dangling.len()
        );
        let enforced: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&backend.writer)
            .await
            .expect("read the pragma");
        assert_eq!(enforced, 1);
        let twice = sqlx::query(
            "INSERT INTO images (target, image_type, namespace, image_name, image_version, \
             instance_id, key_hash, content_hash, instance_name, instance_url, hss_image_id, \
             image_digest, scan_status, scan_failed_desc, domain_name, shared_status, \
             first_seen_at, changed_at) \
             VALUES ('t', 'private_image', 'ns', 'x', 'v1', '', 1, 0, '', '', '', '', \
             'success', '', '', '', 0, 0)",
        )
        .execute(&backend.writer)
        .await
        .expect_err("the key of image 1 again");
        assert!(twice.to_string().contains("UNIQUE"), "{twice}");
        let mut seen = Vec::new();
        backend
            .visit_candidates("t", false, &mut |c| seen.push(c.clone()))
            .await
            .expect("visit");
        assert!(seen[0].digest_changed, "other content than we submitted");
        assert!(
            !seen[1].digest_changed && !seen[2].digest_changed,
            "unknown"
        );
        Backend::close(&backend).await;
    }

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
        let mut prepared: Vec<PreparedImage> =
            want.iter().cloned().map(PreparedImage::new).collect();
        backend
            .upsert_images("t", &mut prepared, 1)
            .await
            .expect("upsert");
        sqlx::query(
            "INSERT INTO submission_state (image_row_id, in_flight) \
             SELECT id, 1 FROM images WHERE id % 3 = 0",
        )
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
            assert_candidate_reads_back(c, w, c.row_id % 3 == 0);
        }
        Backend::close(&backend).await;
    }
}
