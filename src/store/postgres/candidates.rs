//! The policy's view of the inventory, read fast: every present image of a target as a
//! [`Candidate`], and the identities of planned images a batch at a time.
//!
//! Candidates come a range of row ids at a time, from the `images_policy` covering index
//! and our bookkeeping on the same range (`submission_state`, only images we submitted have
//! a row), both read by one statement so that they are one snapshot. Each comes as one
//! value: PostgreSQL packs the numbers of each row into a `bytea` (`int8send`, big-endian),
//! which is decoded here at the cost of a copy. As arrays of numbers, sqlx spends about
//! 250 ns on every element, most of a plan's time; as rows, a microsecond on every row. So
//! the inventory streams through the policy a chunk at a time, never whole, and the next
//! chunks are read on other connections while this one is judged.

use std::collections::{HashMap, VecDeque};

use async_trait::async_trait;
use tokio_util::task::AbortOnDropHandle;

use super::{Context, PgBackend};
use crate::domain::{Candidate, ImageIdentity, Planned, ScanStatus};
use crate::store::policy_fields::{ImageState, IndexedImage, PackedPolicyFields};
use crate::store::{Candidates, DueImage, StoreError};

/// Row ids per read of candidates.
const CANDIDATE_CHUNK: i64 = 50_000;

/// Chunks read at once, each on its own connection, while the policy judges the one before.
const CHUNKS_AHEAD: usize = 2;

/// Bytes per packed image: id, packed fields, latest scan, latest push if later than the
/// scan, digest hash (8 each), and whether the digest hash is known (1).
const PACKED_IMAGE: usize = 41;

/// Bytes per packed state: image row id, last submission, failures (8 each), in flight (1),
/// submitted digest hash (8) and whether it is known (1).
const PACKED_STATE: usize = 34;

/// What stands for a time that is `NULL` in a packed row: no time is this. (A digest hash
/// may be any number, so its `NULL` is a flag of its own.)
const NO_TIME: i64 = i64::MIN;

/// One image of a chunk, packed ([`PACKED_IMAGE`] bytes).
const PACKED_IMAGE_SQL: &str = "int8send(id) || int8send(packed_policy_fields) \
     || int8send(COALESCE(latest_scan_time, -9223372036854775808)) \
     || int8send(CASE WHEN latest_update_time > latest_scan_time THEN latest_update_time \
        ELSE -9223372036854775808 END) \
     || int8send(COALESCE(digest_hash, 0)) || boolsend(digest_hash IS NOT NULL)";

/// Our bookkeeping on the images of the same range, packed ([`PACKED_STATE`] bytes a row), in
/// row order.
const STATES_SQL: &str = "(SELECT string_agg(int8send(image_row_id) \
     || int8send(COALESCE(last_submitted_at, -9223372036854775808)) \
     || int8send(failed_submissions) || boolsend(in_flight) \
     || int8send(COALESCE(submitted_digest_hash, 0)) \
     || boolsend(submitted_digest_hash IS NOT NULL), ''::BYTEA ORDER BY image_row_id) \
     FROM submission_state WHERE image_row_id > $2 AND image_row_id <= $3)";

/// A chunk as PostgreSQL returns it: packed images, namespaces, names, tags (`NULL` unless
/// asked for), packed states; `NULL` for a range without any.
type Chunk = (
    Option<Vec<u8>>,
    Option<Vec<String>>,
    Option<Vec<String>>,
    Option<Vec<String>>,
    Option<Vec<u8>>,
);

/// The read of one chunk, with or without names. The names are arrays in the packed rows'
/// order: the aggregates of one query take its rows in one order.
fn chunk_sql(with_names: bool) -> String {
    let names = if with_names {
        "array_agg(namespace), array_agg(image_name), array_agg(image_version)"
    } else {
        "NULL::TEXT[], NULL::TEXT[], NULL::TEXT[]"
    };
    format!(
        "SELECT string_agg({PACKED_IMAGE_SQL}, ''::BYTEA), {names}, {STATES_SQL} \
         FROM images WHERE target = $1 AND id > $2 AND id <= $3 AND deleted_at IS NULL"
    )
}

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
        let sql = chunk_sql(with_names);
        let fetch = |after: i64| {
            let pool = self.pool.clone();
            let target = target.to_owned();
            let sql = sql.clone();
            AbortOnDropHandle::new(tokio::spawn(async move {
                let chunk: Chunk = sqlx::query_as(sqlx::AssertSqlSafe(sql))
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
            "SELECT i.id, i.namespace, i.image_name, i.image_version, i.instance_id, \
             i.instance_url, i.scan_status, i.latest_scan_time, s.last_submitted_at, \
             i.hss_record_id, i.image_digest, i.registry_id, i.registry_name, i.registry_type, \
             s.submitted_digest_hash, COALESCE(i.latest_update_time, i.first_seen_at) \
             AS appeared_at \
             FROM images i LEFT JOIN submission_state s ON s.image_row_id = i.id \
             WHERE i.id = ANY($1) AND i.deleted_at IS NULL",
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
                    submitted_digest_hash: r.submitted_digest_hash,
                    appeared_at: r.appeared_at,
                })
            })
            .collect())
    }
}

/// A big-endian number at `at` of a packed row.
fn number(row: &[u8], at: usize) -> i64 {
    let mut be = [0u8; 8];
    be.copy_from_slice(&row[at..at + 8]);
    i64::from_be_bytes(be)
}

fn time(t: i64) -> Option<i64> {
    (t != NO_TIME).then_some(t)
}

/// The candidates of a chunk, in row-id order, each with its state merged in by row order
/// (a merge, not a lookup per image); an error if the chunk is not what was asked for.
fn unpack(chunk: Chunk) -> Result<Vec<Candidate>, StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: "a chunk of the inventory",
    };
    let (packed, namespaces, names, versions, states) = chunk;
    let Some(packed) = packed else {
        return Ok(Vec::new());
    };
    let states = states.unwrap_or_default();
    if packed.len() % PACKED_IMAGE != 0 || states.len() % PACKED_STATE != 0 {
        return Err(corrupt());
    }
    let mut rows: Vec<(IndexedImage, PackedPolicyFields, usize)> =
        Vec::with_capacity(packed.len() / PACKED_IMAGE);
    for (n, row) in packed.chunks_exact(PACKED_IMAGE).enumerate() {
        let fields = u32::try_from(number(row, 8)).map_err(|_| corrupt())?;
        let image = IndexedImage {
            row_id: number(row, 0),
            latest_scan_time: time(number(row, 16)),
            updated_after_scan: time(number(row, 24)),
            digest_hash: (row[40] != 0).then(|| number(row, 32)),
        };
        rows.push((image, PackedPolicyFields(fields), n));
    }
    // Aggregates take rows in the order the scan gives them, which need not be id order; the
    // merge needs it, the policy's tie-break is the id, and a visit in id order keeps runs
    // repeatable.
    if rows.windows(2).any(|w| w[0].0.row_id > w[1].0.row_id) {
        rows.sort_unstable_by_key(|r| r.0.row_id);
    }
    let mut states = states.chunks_exact(PACKED_STATE).peekable();
    let mut candidates = Vec::with_capacity(rows.len());
    for (image, fields, _) in &rows {
        let mut state = ImageState::default();
        while let Some(row) = states.peek() {
            let id = number(row, 0);
            if id > image.row_id {
                break;
            }
            if id == image.row_id {
                state = ImageState {
                    last_submitted_at: time(number(row, 8)),
                    failed_submissions: number(row, 16),
                    in_flight: row[24] != 0,
                    submitted_digest_hash: (row[33] != 0).then(|| number(row, 25)),
                };
            }
            states.next();
        }
        candidates.push(fields.candidate(*image, state));
    }
    if let (Some(namespaces), Some(names), Some(versions)) = (namespaces, names, versions) {
        let count = rows.len();
        if [namespaces.len(), names.len(), versions.len()]
            .iter()
            .any(|n| *n != count)
        {
            return Err(corrupt());
        }
        let mut named: Vec<Option<(String, String, String)>> = namespaces
            .into_iter()
            .zip(names)
            .zip(versions)
            .map(|((namespace, name), version)| Some((namespace, name, version)))
            .collect();
        for (c, (_, _, at)) in candidates.iter_mut().zip(&rows) {
            let (namespace, name, version) = named[*at].take().ok_or_else(corrupt)?;
            c.namespace = namespace;
            c.image_name = name;
            c.image_version = version;
        }
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
    submitted_digest_hash: Option<i64>,
    appeared_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: i64, fields: i64, scan: i64, updated: i64, digest: Option<i64>) -> Vec<u8> {
        let mut row: Vec<u8> = [id, fields, scan, updated, digest.unwrap_or(0)]
            .iter()
            .flat_map(|n| n.to_be_bytes())
            .collect();
        row.push(u8::from(digest.is_some()));
        row
    }

    fn state(
        id: i64,
        submitted: i64,
        failures: i64,
        in_flight: bool,
        digest: Option<i64>,
    ) -> Vec<u8> {
        let mut row: Vec<u8> = [id, submitted, failures]
            .iter()
            .flat_map(|n| n.to_be_bytes())
            .collect();
        row.push(u8::from(in_flight));
        row.extend(digest.unwrap_or(0).to_be_bytes());
        row.push(u8::from(digest.is_some()));
        row
    }

    #[test]
    fn a_packed_chunk_unpacks_in_id_order_with_its_states_and_refuses_garbage() {
        // Out of id order, as a parallel scan may give them; 7 has no state row.
        let mut packed = image(9, 3 + 8 * 4, NO_TIME, NO_TIME, Some(-5));
        packed.extend(image(4, 0, 1_600, 1_650, None));
        packed.extend(image(7, 0, 1_600, NO_TIME, Some(8)));
        let mut states = state(4, NO_TIME, 0, false, Some(1));
        states.extend(state(5, 1_000, 0, false, None));
        states.extend(state(9, 1_700, 2, true, Some(-6)));
        let names = |a: &str, b: &str, c: &str| Some(vec![a.into(), b.into(), c.into()]);
        let seen = unpack((
            Some(packed.clone()),
            names("n9", "n4", "n7"),
            names("i9", "i4", "i7"),
            names("v9", "v4", "v7"),
            Some(states.clone()),
        ))
        .expect("unpacks");
        assert_eq!(seen.iter().map(|c| c.row_id).collect::<Vec<_>>(), [4, 7, 9]);
        let (four, seven, nine) = (&seen[0], &seen[1], &seen[2]);
        assert_eq!(
            (
                four.latest_scan_time,
                four.updated_after_scan,
                four.last_submitted_at
            ),
            (Some(1_600), Some(1_650), None)
        );
        // An unknown digest on either side is no change.
        assert!(!four.digest_changed && !seven.digest_changed);
        assert_eq!(seven.last_submitted_at, None);
        assert_eq!(
            (
                nine.latest_scan_time,
                nine.last_submitted_at,
                nine.in_flight
            ),
            (None, Some(1_700), true)
        );
        assert!(nine.digest_changed);
        assert_eq!(nine.failed_submissions, 2);
        assert_eq!(nine.scan_status, ScanStatus::Failed);
        assert_eq!(
            (
                nine.namespace.as_str(),
                four.image_version.as_str(),
                seven.image_name.as_str()
            ),
            ("n9", "v4", "i7")
        );

        assert!(
            unpack((None, None, None, None, None))
                .expect("empty")
                .is_empty()
        );
        assert!(unpack((Some(packed[..40].to_vec()), None, None, None, None)).is_err());
        assert!(
            unpack((
                Some(packed.clone()),
                None,
                None,
                None,
                Some(states[..33].to_vec())
            ))
            .is_err()
        );
        assert!(unpack((Some(image(1, -1, 0, 0, None)), None, None, None, None)).is_err());
        assert!(
            unpack((
                Some(packed),
                names("one", "two", "three"),
                names("x", "y", "z"),
                Some(vec![]),
                None,
            ))
            .is_err()
        );
    }
}
