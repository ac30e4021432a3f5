//! `images`: the inventory, in PostgreSQL.
//!
//! As on SQLite, a sync holds two hashes per image ([`KnownImage`]), writes only what
//! changed, and writes it in transactions of a few thousand images. Here the index comes back
//! packed, one `bytea` per chunk of rows, and a page of images goes in as one `INSERT … SELECT
//! FROM UNNEST(…)` of one array per column: one statement however many rows, with no
//! per-row parsing or binding on either side.

use std::collections::HashMap;

use async_trait::async_trait;

use super::{Context, PgBackend};
use crate::domain::{Image, ImageType, Unsubmittable};
use crate::store::policy_fields::{count_risks, packed_type_and_status, sort_counts};
use crate::store::rows::{ImageRow, RiskyRow};
use crate::store::{
    ImageCount, Inventory, KnownImage, PreparedImage, RiskCounts, RiskyImage, StoreError,
};

/// Rows per read of the inventory index.
const INDEX_CHUNK: i64 = 50_000;

/// Bytes per packed row of the inventory index: id, key hash, content hash, deleted.
const PACKED_ROW: usize = 25;

/// Rows per upsert statement: a sync sends a few thousand per transaction, which this keeps
/// to one statement while bounding the arrays of a caller that sends more.
const ROWS_PER_STATEMENT: usize = 5_000;

const UPSERT: &str = concat!(
    "INSERT INTO images (target, first_seen_at, changed_at, image_type, \
     namespace, image_name, image_version, instance_id, key_hash, content_hash, hss_record_id, \
     instance_name, instance_url, hss_image_id, image_digest, latest_version, scan_status, \
     scan_failed_desc, image_size, latest_update_time, latest_scan_time, vul_num, \
     unsafe_setting_num, malicious_file_num, domain_name, shared_status, scannable, registry_id, \
     registry_name, registry_type, latest_sync_time, scan_failed_code, severity_level, \
     is_multiple_arch, unsubmittable, digest_hash) \
     SELECT $1, $2, $2, u.* FROM UNNEST($3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], \
     $7::TEXT[], $8::BIGINT[], $9::BIGINT[], $10::BIGINT[], $11::TEXT[], $12::TEXT[], \
     $13::TEXT[], $14::TEXT[], $15::BOOLEAN[], $16::TEXT[], $17::TEXT[], $18::BIGINT[], \
     $19::BIGINT[], $20::BIGINT[], $21::BIGINT[], $22::BIGINT[], $23::BIGINT[], $24::TEXT[], \
     $25::TEXT[], $26::BOOLEAN[], $27::TEXT[], $28::TEXT[], $29::TEXT[], $30::BIGINT[], \
     $31::TEXT[], $32::TEXT[], $33::BOOLEAN[], $34::BIGINT[], $35::BIGINT[]) AS u",
    crate::store::image_upsert_on_conflict!()
);

/// One array per column of a page of images, in the order of [`UPSERT`]'s `UNNEST`.
#[derive(Default)]
struct Columns {
    image_type: Vec<String>,
    namespace: Vec<String>,
    image_name: Vec<String>,
    image_version: Vec<String>,
    instance_id: Vec<String>,
    key_hash: Vec<i64>,
    content_hash: Vec<i64>,
    hss_record_id: Vec<Option<i64>>,
    instance_name: Vec<String>,
    instance_url: Vec<String>,
    hss_image_id: Vec<String>,
    image_digest: Vec<String>,
    latest_version: Vec<Option<bool>>,
    scan_status: Vec<String>,
    scan_failed_desc: Vec<String>,
    image_size: Vec<Option<i64>>,
    latest_update_time: Vec<Option<i64>>,
    latest_scan_time: Vec<Option<i64>>,
    vul_num: Vec<Option<i64>>,
    unsafe_setting_num: Vec<Option<i64>>,
    malicious_file_num: Vec<Option<i64>>,
    domain_name: Vec<String>,
    shared_status: Vec<String>,
    scannable: Vec<Option<bool>>,
    registry_id: Vec<String>,
    registry_name: Vec<String>,
    registry_type: Vec<String>,
    latest_sync_time: Vec<Option<i64>>,
    scan_failed_code: Vec<String>,
    severity_level: Vec<String>,
    is_multiple_arch: Vec<Option<bool>>,
    unsubmittable: Vec<i64>,
    digest_hash: Vec<Option<i64>>,
}

impl Columns {
    fn push(&mut self, p: &PreparedImage) {
        let i = &p.image;
        self.image_type.push(i.image_type.as_str().to_owned());
        self.namespace.push(i.namespace.clone());
        self.image_name.push(i.image_name.clone());
        self.image_version.push(i.image_version.clone());
        self.instance_id.push(i.instance_id.clone());
        self.key_hash.push(p.key_hash);
        self.content_hash.push(p.content_hash);
        self.hss_record_id.push(i.hss_record_id);
        self.instance_name.push(i.instance_name.clone());
        self.instance_url.push(i.instance_url.clone());
        self.hss_image_id.push(i.hss_image_id.clone());
        self.image_digest.push(i.image_digest.clone());
        self.latest_version.push(i.latest_version);
        self.scan_status.push(i.scan_status.as_str().to_owned());
        self.scan_failed_desc.push(i.scan_failed_desc.clone());
        self.image_size.push(i.image_size);
        self.latest_update_time.push(i.latest_update_time);
        self.latest_scan_time.push(i.latest_scan_time);
        self.vul_num.push(i.vul_num);
        self.unsafe_setting_num.push(i.unsafe_setting_num);
        self.malicious_file_num.push(i.malicious_file_num);
        self.domain_name.push(i.domain_name.clone());
        self.shared_status.push(i.shared_status.clone());
        self.scannable.push(i.scannable);
        self.registry_id.push(i.registry_id.clone());
        self.registry_name.push(i.registry_name.clone());
        self.registry_type.push(i.registry_type.clone());
        self.latest_sync_time.push(i.latest_sync_time);
        self.scan_failed_code.push(i.scan_failed_code.clone());
        self.severity_level.push(i.severity_level.clone());
        self.is_multiple_arch.push(i.is_multiple_arch);
        self.unsubmittable
            .push(i64::from(i.unsubmittable.map_or(0, Unsubmittable::code)));
        self.digest_hash.push(p.digest_hash);
    }
}

/// The images of `images` with the last of each key hash kept: PostgreSQL refuses an
/// upsert that would write one row twice, where SQLite's multi-row insert writes it twice
/// and keeps the last.
fn last_of_each_key(images: &[PreparedImage]) -> Vec<&PreparedImage> {
    let mut last: HashMap<i64, usize> = HashMap::with_capacity(images.len());
    for (n, p) in images.iter().enumerate() {
        last.insert(p.key_hash, n);
    }
    images
        .iter()
        .enumerate()
        .filter(|(n, p)| last[&p.key_hash] == *n)
        .map(|(_, p)| p)
        .collect()
}

#[async_trait]
impl Inventory for PgBackend {
    /// Key hash and what is stored, in row order, for every image (present or deleted) of a
    /// target and type, read [`INDEX_CHUNK`] rows at a time, each chunk packed by PostgreSQL
    /// into one `bytea` of [`PACKED_ROW`] bytes a row (see `candidates` for why not arrays
    /// or rows).
    #[tracing::instrument(skip_all, err, fields(target, image_type = %image_type))]
    async fn known_images(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<Vec<(i64, KnownImage)>, StoreError> {
        let corrupt = || StoreError::Corrupt {
            what: "the inventory index",
        };
        let mut known = Vec::new();
        let mut after = 0i64;
        loop {
            let packed: Option<Vec<u8>> = sqlx::query_scalar(
                "SELECT string_agg(int8send(id) || int8send(key_hash) || int8send(content_hash) \
                 || boolsend(deleted_at IS NOT NULL), ''::BYTEA) \
                 FROM (SELECT id, key_hash, content_hash, deleted_at FROM images \
                 WHERE target = $1 AND image_type = $2 AND id > $3 ORDER BY id LIMIT $4) AS chunk",
            )
            .bind(target)
            .bind(image_type.as_str())
            .bind(after)
            .bind(INDEX_CHUNK)
            .fetch_one(&self.pool)
            .await
            .context("read the inventory index")?;
            let Some(packed) = packed else {
                break;
            };
            if packed.is_empty() || packed.len() % PACKED_ROW != 0 {
                return Err(corrupt());
            }
            let number = |row: &[u8], at: usize| {
                let mut be = [0u8; 8];
                be.copy_from_slice(&row[at..at + 8]);
                i64::from_be_bytes(be)
            };
            for row in packed.chunks_exact(PACKED_ROW) {
                let row_id = number(row, 0);
                after = after.max(row_id);
                let stored = KnownImage {
                    row_id,
                    content_hash: number(row, 16),
                    deleted: row[24] != 0,
                };
                known.push((number(row, 8), stored));
            }
            if ((packed.len() / PACKED_ROW) as i64) < INDEX_CHUNK {
                break;
            }
        }
        Ok(known)
    }

    /// Inserts new images and rewrites changed or returning ones, in one transaction. A row
    /// whose content hash is unchanged and which is present is left untouched by the `WHERE`
    /// of the upsert, even if the caller sends it.
    #[tracing::instrument(skip_all, err, fields(target, rows = images.len()))]
    async fn upsert_images(
        &self,
        target: &str,
        images: &mut Vec<PreparedImage>,
        now: i64,
    ) -> Result<(), StoreError> {
        let rows = last_of_each_key(images);
        let mut tx = self.pool.begin().await.context("write a page of images")?;
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut c = Columns::default();
            chunk.iter().for_each(|p| c.push(p));
            sqlx::query(UPSERT)
                .bind(target)
                .bind(now)
                .bind(c.image_type)
                .bind(c.namespace)
                .bind(c.image_name)
                .bind(c.image_version)
                .bind(c.instance_id)
                .bind(c.key_hash)
                .bind(c.content_hash)
                .bind(c.hss_record_id)
                .bind(c.instance_name)
                .bind(c.instance_url)
                .bind(c.hss_image_id)
                .bind(c.image_digest)
                .bind(c.latest_version)
                .bind(c.scan_status)
                .bind(c.scan_failed_desc)
                .bind(c.image_size)
                .bind(c.latest_update_time)
                .bind(c.latest_scan_time)
                .bind(c.vul_num)
                .bind(c.unsafe_setting_num)
                .bind(c.malicious_file_num)
                .bind(c.domain_name)
                .bind(c.shared_status)
                .bind(c.scannable)
                .bind(c.registry_id)
                .bind(c.registry_name)
                .bind(c.registry_type)
                .bind(c.latest_sync_time)
                .bind(c.scan_failed_code)
                .bind(c.severity_level)
                .bind(c.is_multiple_arch)
                .bind(c.unsubmittable)
                .bind(c.digest_hash)
                .execute(&mut *tx)
                .await
                .context("write a page of images")?;
        }
        tx.commit().await.context("write a page of images")?;
        images.clear();
        Ok(())
    }

    /// Marks the images with these row ids deleted; returns how many were present.
    #[tracing::instrument(skip_all, err, fields(candidates = ids.len()))]
    async fn mark_deleted(&self, ids: &[i64], now: i64) -> Result<u64, StoreError> {
        let deleted = sqlx::query(
            "UPDATE images SET deleted_at = $1 WHERE deleted_at IS NULL AND id = ANY($2)",
        )
        .bind(now)
        .bind(ids)
        .execute(&self.pool)
        .await
        .context("mark vanished images deleted")?
        .rows_affected();
        Ok(deleted)
    }

    /// Present images per target, type and scan status, in byte order (as on SQLite). Type
    /// and status are the low two digits of the packed policy fields, so the policy index
    /// answers; only the rare unknown types and statuses (digit 7) are named from the table.
    #[tracing::instrument(skip_all, err)]
    async fn image_counts(&self) -> Result<Vec<ImageCount>, StoreError> {
        let packed: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT target, packed_policy_fields % 64 AS digits, COUNT(*) \
             FROM images WHERE deleted_at IS NULL GROUP BY target, digits",
        )
        .fetch_all(&self.pool)
        .await
        .context("count images")?;
        let mut counts: Vec<ImageCount> = Vec::with_capacity(packed.len());
        for (target, digits, images) in packed {
            if let Some((image_type, scan_status)) = packed_type_and_status(digits) {
                counts.push(ImageCount {
                    target,
                    image_type,
                    scan_status,
                    images,
                });
                continue;
            }
            let named: Vec<(String, String, i64)> = sqlx::query_as(
                "SELECT image_type, scan_status, COUNT(*) FROM images \
                 WHERE target = $1 AND deleted_at IS NULL AND packed_policy_fields % 64 = $2 \
                 GROUP BY image_type, scan_status",
            )
            .bind(&target)
            .bind(digits)
            .fetch_all(&self.pool)
            .await
            .context("count images")?;
            counts.extend(
                named
                    .into_iter()
                    .map(|(image_type, scan_status, images)| ImageCount {
                        target: target.clone(),
                        image_type,
                        scan_status,
                        images,
                    }),
            );
        }
        sort_counts(&mut counts);
        Ok(counts)
    }

    /// What each target's present images were found to have, from the `packed_risk` numbers
    /// of the policy index: a few groups per target, however many images.
    #[tracing::instrument(skip_all, err)]
    async fn risk_counts(&self) -> Result<Vec<RiskCounts>, StoreError> {
        let groups: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT target, packed_risk, COUNT(*) FROM images WHERE deleted_at IS NULL \
             GROUP BY target, packed_risk ORDER BY target COLLATE \"C\"",
        )
        .fetch_all(&self.pool)
        .await
        .context("count images with findings")?;
        Ok(count_risks(groups))
    }

    /// The riskiest present images, most severe first, then by vulnerabilities, malicious
    /// files and unsafe settings: a pass over the table, for a command.
    #[tracing::instrument(skip_all, err)]
    async fn riskiest_images(&self, limit: i64) -> Result<Vec<RiskyImage>, StoreError> {
        let rows: Vec<RiskyRow> = sqlx::query_as(
            "SELECT target, image_type, namespace, image_name, image_version, registry_name, \
             packed_risk, vul_num, malicious_file_num, unsafe_setting_num, latest_scan_time \
             FROM images WHERE deleted_at IS NULL \
             AND (packed_risk % 8 > 1 OR packed_risk >= 8 OR COALESCE(vul_num, 0) > 0) \
             ORDER BY packed_risk % 8 DESC, COALESCE(vul_num, 0) DESC, \
             COALESCE(malicious_file_num, 0) DESC, COALESCE(unsafe_setting_num, 0) DESC, id \
             LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .context("read the riskiest images")?;
        Ok(rows.into_iter().map(RiskyImage::from).collect())
    }

    /// Present images of a target and type, in key order (byte order, as on SQLite).
    #[tracing::instrument(skip_all, err)]
    async fn present_images(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<Vec<Image>, StoreError> {
        let rows = sqlx::query_as::<_, ImageRow>(
            "SELECT image_type, namespace, image_name, image_version, instance_id, hss_record_id, \
             instance_name, instance_url, hss_image_id, image_digest, latest_version, scan_status, \
             scan_failed_desc, image_size, latest_update_time, latest_scan_time, vul_num, \
             unsafe_setting_num, malicious_file_num, domain_name, shared_status, scannable, \
             registry_id, registry_name, registry_type, latest_sync_time, scan_failed_code, \
             severity_level, is_multiple_arch, unsubmittable FROM images \
             WHERE target = $1 AND image_type = $2 AND deleted_at IS NULL \
             ORDER BY namespace COLLATE \"C\", image_name COLLATE \"C\", \
             image_version COLLATE \"C\", instance_id COLLATE \"C\"",
        )
        .bind(target)
        .bind(image_type.as_str())
        .fetch_all(&self.pool)
        .await
        .context("read present images")?;
        Ok(rows.into_iter().map(Image::from).collect())
    }

    async fn held_deletions(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<Vec<i64>, StoreError> {
        sqlx::query_scalar(
            "SELECT image_row_id FROM held_deletions WHERE target = $1 AND image_type = $2 \
             ORDER BY image_row_id",
        )
        .bind(target)
        .bind(image_type.as_str())
        .fetch_all(&self.pool)
        .await
        .context("read the held-back deletions")
    }

    async fn hold_deletions(
        &self,
        target: &str,
        image_type: &ImageType,
        row_ids: &[i64],
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .context("replace the held-back deletions")?;
        sqlx::query("DELETE FROM held_deletions WHERE target = $1 AND image_type = $2")
            .bind(target)
            .bind(image_type.as_str())
            .execute(&mut *tx)
            .await
            .context("replace the held-back deletions")?;
        sqlx::query(
            "INSERT INTO held_deletions (target, image_type, image_row_id) \
             SELECT $1, $2, id FROM UNNEST($3::BIGINT[]) AS id",
        )
        .bind(target)
        .bind(image_type.as_str())
        .bind(row_ids)
        .execute(&mut *tx)
        .await
        .context("hold deletions back")?;
        tx.commit().await.context("replace the held-back deletions")
    }

    async fn images_changed_since(&self, since: i64) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM images WHERE changed_at >= $1")
            .bind(since)
            .fetch_one(&self.pool)
            .await
            .context("count changed images")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Nothing to tune before: SQLite grows its writer's page cache for a sync, but
    /// PostgreSQL's cache is the server's shared buffers, sized by its administrator for
    /// every client. After, the inventory's statistics are brought up to date (see
    /// [`analyze_images`]).
    async fn bulk_writes(&self, bulk: bool) -> Result<(), StoreError> {
        if !bulk {
            analyze_images(&self.pool).await;
        }
        Ok(())
    }

    fn end_bulk_writes_in_background(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let pool = self.pool.clone();
            runtime.spawn(async move { analyze_images(&pool).await });
        }
    }
}

/// Brings the planner's statistics of `images` up to date after a sync wrote it.
///
/// Without them, right after a first load PostgreSQL took the table for one row and
/// claimed each batch's images by walking the whole policy index (`images_policy` is in
/// (target, id) order, which the claim's `ORDER BY id` asks for): 235 ms a batch at 60,000
/// images, against 3 ms once analyzed, growing with the inventory, until autovacuum got to
/// it a minute or so later. `ANALYZE` samples a fixed number of rows, about a tenth of a
/// second at a million. A failure (a role that does not own the table) is logged: the
/// autovacuum daemon still gets there.
async fn analyze_images(pool: &sqlx::PgPool) {
    if let Err(err) = sqlx::query("ANALYZE images").execute(pool).await {
        tracing::warn!(error = %err, "cannot update the inventory's statistics after a sync");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upsert_keeps_the_last_image_of_each_key() {
        let mut first = crate::domain::Image::example("a");
        first.vul_num = Some(1);
        let mut again = first.clone();
        again.vul_num = Some(2);
        let images = [
            PreparedImage::new(first),
            PreparedImage::new(crate::domain::Image::example("b")),
            PreparedImage::new(again),
        ];
        let kept = last_of_each_key(&images);
        let names: Vec<(&str, Option<i64>)> = kept
            .iter()
            .map(|p| (p.image.image_name.as_str(), p.image.vul_num))
            .collect();
        assert_eq!(names, [("b", images[1].image.vul_num), ("a", Some(2))]);
    }
}
