//! `images`: the inventory, in SQLite.
//!
//! A sync never holds the image list in memory. It holds, per image of one target and type,
//! two 64-bit hashes ([`KnownImage`]): enough to tell new, changed, unchanged and vanished
//! images apart, at about 30 MB per million images. Unchanged images are not written at all;
//! the rest go in multi-row upserts, in transactions of a few thousand images.
//!
//! A first load (a sync into an empty inventory) writes without the key index
//! `images_by_key` and builds it once at its end. That index is keyed by a hash, so every
//! row lands on a random page of it: kept up row by row, it was nearly half of the CPU of a
//! first sync of a million images (each commit rewrote most of its pages to the WAL), and
//! built once, by sorting, it costs about a second. Every image of a first load is new, so
//! its inserts need no conflict clause. While the index is down nothing else may write
//! images: the load takes it down only if the table is empty and the index is there, in one
//! write transaction, so two processes never both load; another process's upsert meanwhile
//! fails on its conflict clause rather than writing a duplicate; and any process that opens
//! the database builds the index if it is missing, which repairs a load that crashed.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Arguments as _, QueryBuilder, Sqlite};

use super::{Context, SqliteBackend, push_in_list};
use crate::domain::{Image, ImageType, Unsubmittable};
use crate::store::policy_fields::{count_risks, sort_counts};
use crate::store::rows::{ImageRow, RiskyRow};
use crate::store::{
    ImageCount, Inventory, KnownImage, PreparedImage, RiskCounts, RiskyImage, StoreError,
};

/// Rows per packed read of the inventory index.
const INDEX_CHUNK: i64 = 20_000;

/// Parses `id key_hash content_hash deleted …` onto `known`; `None` if it is not that.
fn unpack_index(packed: &str, known: &mut Vec<(i64, KnownImage)>) -> Option<()> {
    let mut numbers = packed.split(' ').map(str::parse::<i64>);
    while let Some(id) = numbers.next() {
        let id = id.ok()?;
        let key_hash = numbers.next()?.ok()?;
        let content_hash = numbers.next()?.ok()?;
        let deleted = numbers.next()?.ok()? != 0;
        let stored = KnownImage {
            row_id: id,
            content_hash,
            deleted,
        };
        known.push((key_hash, stored));
    }
    Some(())
}

/// Ids per statement of the id lists below (well under SQLite's 32,766 variables).
const ROWS_PER_STATEMENT: usize = 500;

/// Images per upsert statement (36 variables each). Fewer than the 910 SQLite's variable
/// limit allows: the compiled statement grows with its rows, and at 500 it cost 4 MB of peak
/// for 3 % of a first sync's CPU.
const IMAGES_PER_UPSERT: usize = 200;

/// The columns an upsert binds for each image besides the target and the time, in
/// [`bind_row`]'s order, and whether each is text.
///
/// An empty text is bound as NULL and turned back into `''` by the statement: binding a text
/// costs three allocations and a copy in sqlx and SQLite, a NULL none, and a third of a
/// listed image's text fields are typically empty (no instance, no share, no failure).
/// Binding was a quarter of a first sync's CPU.
const ROW_COLUMNS: [(&str, bool); 33] = [
    ("image_type", true),
    ("namespace", true),
    ("image_name", true),
    ("image_version", true),
    ("instance_id", true),
    ("key_hash", false),
    ("content_hash", false),
    ("hss_record_id", false),
    ("instance_name", true),
    ("instance_url", true),
    ("hss_image_id", true),
    ("image_digest", true),
    ("latest_version", false),
    ("scan_status", true),
    ("scan_failed_desc", true),
    ("image_size", false),
    ("latest_update_time", false),
    ("latest_scan_time", false),
    ("vul_num", false),
    ("unsafe_setting_num", false),
    ("malicious_file_num", false),
    ("domain_name", true),
    ("shared_status", true),
    ("scannable", false),
    ("registry_id", true),
    ("registry_name", true),
    ("registry_type", true),
    ("latest_sync_time", false),
    ("scan_failed_code", true),
    ("severity_level", true),
    ("is_multiple_arch", false),
    ("unsubmittable", false),
    ("digest_hash", false),
];

/// Binds one image's [`ROW_COLUMNS`]. Its strings move into the arguments: bound by
/// reference, sqlx would copy each.
fn bind_row(args: &mut SqliteArguments, prepared: PreparedImage) -> Result<(), StoreError> {
    let PreparedImage {
        image: i,
        key_hash,
        content_hash,
        digest_hash,
    } = prepared;
    bind_text(args, i.image_type.as_str().to_owned())?;
    bind_text(args, i.namespace)?;
    bind_text(args, i.image_name)?;
    bind_text(args, i.image_version)?;
    bind_text(args, i.instance_id)?;
    bind(args, key_hash)?;
    bind(args, content_hash)?;
    bind(args, i.hss_record_id)?;
    bind_text(args, i.instance_name)?;
    bind_text(args, i.instance_url)?;
    bind_text(args, i.hss_image_id)?;
    bind_text(args, i.image_digest)?;
    bind(args, i.latest_version)?;
    bind_text(args, i.scan_status.as_str().to_owned())?;
    bind_text(args, i.scan_failed_desc)?;
    bind(args, i.image_size)?;
    bind(args, i.latest_update_time)?;
    bind(args, i.latest_scan_time)?;
    bind(args, i.vul_num)?;
    bind(args, i.unsafe_setting_num)?;
    bind(args, i.malicious_file_num)?;
    bind_text(args, i.domain_name)?;
    bind_text(args, i.shared_status)?;
    bind(args, i.scannable)?;
    bind_text(args, i.registry_id)?;
    bind_text(args, i.registry_name)?;
    bind_text(args, i.registry_type)?;
    bind(args, i.latest_sync_time)?;
    bind_text(args, i.scan_failed_code)?;
    bind_text(args, i.severity_level)?;
    bind(args, i.is_multiple_arch)?;
    bind(
        args,
        i64::from(i.unsubmittable.map_or(0, Unsubmittable::code)),
    )?;
    bind(args, digest_hash)
}

fn bind<'q, T>(args: &mut SqliteArguments, value: T) -> Result<(), StoreError>
where
    T: sqlx::Encode<'q, Sqlite> + sqlx::Type<Sqlite> + 'q,
{
    args.add(value).map_err(|err| StoreError::Query {
        what: "bind an image's fields",
        source: sqlx::Error::Encode(err),
    })
}

/// A text column of [`ROW_COLUMNS`]: empty is bound as NULL (the statement restores `''`).
fn bind_text(args: &mut SqliteArguments, value: String) -> Result<(), StoreError> {
    if value.is_empty() {
        bind(args, None::<String>)
    } else {
        bind(args, value)
    }
}

/// The upsert statement for a number of rows. Every full statement of a sync has the same
/// text, built once; a sync's last statement, shorter, is built when needed.
fn upsert_sql(rows: usize, first_load: bool) -> std::borrow::Cow<'static, str> {
    static FULL: [std::sync::OnceLock<String>; 2] =
        [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
    if rows == IMAGES_PER_UPSERT {
        let full = &FULL[usize::from(first_load)];
        return full
            .get_or_init(|| build_upsert_sql(rows, first_load))
            .as_str()
            .into();
    }
    build_upsert_sql(rows, first_load).into()
}

/// `INSERT INTO images (…) VALUES (?, coalesce(?, ''), …, ?, ?, NULL), …` and the conflict
/// clause unless this is a first load (which has no key index to conflict on).
fn build_upsert_sql(rows: usize, first_load: bool) -> String {
    let names: Vec<&str> = ROW_COLUMNS.iter().map(|(name, _)| *name).collect();
    let values: Vec<&str> = ROW_COLUMNS
        .iter()
        .map(|(_, text)| if *text { "coalesce(?, '')" } else { "?" })
        .collect();
    let row = format!("(?, {}, ?, ?, NULL)", values.join(", "));
    let mut sql = format!(
        "INSERT INTO images (target, {}, first_seen_at, changed_at, deleted_at) VALUES {}",
        names.join(", "),
        vec![row.as_str(); rows].join(", "),
    );
    if !first_load {
        sql.push_str(crate::store::image_upsert_on_conflict!());
    }
    sql
}

/// The inventory's key (migration 0012), built when missing.
const KEY_INDEX: &str =
    "CREATE UNIQUE INDEX IF NOT EXISTS images_by_key ON images (target, key_hash)";
/// Whether the key index is there (SQL, true or false).
const KEY_INDEX_PRESENT: &str =
    "EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'images_by_key')";

/// Builds the key index, sorting in temporary files: in memory (the connection's
/// `temp_store`), the sort of a million keys was 35 MB of peak. Deployments give SQLite a
/// writable temporary directory (`SQLITE_TMPDIR`).
async fn build_key_index(writer: &sqlx::SqlitePool) -> Result<(), StoreError> {
    let mut conn = writer
        .acquire()
        .await
        .context("build the inventory's key index")?;
    sqlx::query("PRAGMA temp_store = FILE")
        .execute(&mut *conn)
        .await
        .context("build the inventory's key index")?;
    let built = sqlx::query(KEY_INDEX).execute(&mut *conn).await;
    let restored = sqlx::query("PRAGMA temp_store = MEMORY")
        .execute(&mut *conn)
        .await;
    built.context("build the inventory's key index")?;
    restored.context("build the inventory's key index")?;
    Ok(())
}

impl SqliteBackend {
    /// Builds the key index if it is missing: a first load that crashed, or one another
    /// process is running (which then carries on with the index in place, only slower).
    pub(super) async fn restore_key_index(&self) -> Result<(), StoreError> {
        let present: bool =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {KEY_INDEX_PRESENT}")))
                .fetch_one(&self.writer)
                .await
                .context("look for the inventory's key index")?;
        if !present {
            tracing::warn!("building the inventory's key index, which a first load left down");
            self.build_key_index().await?;
        }
        Ok(())
    }

    async fn build_key_index(&self) -> Result<(), StoreError> {
        build_key_index(&self.writer).await
    }

    /// Takes the key index down if the inventory is empty; returns whether it did.
    async fn start_first_load(&self) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let empty: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT NOT EXISTS (SELECT 1 FROM images) AND {KEY_INDEX_PRESENT}"
        )))
        .fetch_one(&mut *tx)
        .await
        .context("check whether the inventory is empty")?;
        if empty {
            sqlx::query("DROP INDEX images_by_key")
                .execute(&mut *tx)
                .await
                .context("start a first load")?;
        }
        tx.commit().await.context("start a first load")?;
        self.first_load.store(empty, Ordering::SeqCst);
        Ok(empty)
    }

    /// Ends a first load, if one is running: builds the key index.
    async fn finish_first_load(&self) -> Result<(), StoreError> {
        if self.first_load.load(Ordering::SeqCst) {
            let started = std::time::Instant::now();
            self.build_key_index().await?;
            self.first_load.store(false, Ordering::SeqCst);
            tracing::info!(took = ?started.elapsed(), "built the inventory's key index after its first load");
        }
        Ok(())
    }
}

#[async_trait]
impl Inventory for SqliteBackend {
    /// Key hash and what is stored, in row order, for every image (present or deleted) of a
    /// target and type.
    ///
    /// Rows come packed, [`INDEX_CHUNK`] per query, as one text of numbers: sqlx spends about
    /// 3.5 µs on each row it hands over, which for this one bulk read was a third of an
    /// unchanged re-sync. Only one chunk is in memory at a time besides the list.
    #[tracing::instrument(skip_all, err, fields(target, image_type = %image_type))]
    async fn known_images(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<Vec<(i64, KnownImage)>, StoreError> {
        let mut known = Vec::new();
        let mut after = 0i64;
        loop {
            let (rows, last, packed): (i64, Option<i64>, Option<String>) = sqlx::query_as(
                "SELECT COUNT(*), MAX(id), group_concat(id || ' ' || key_hash || ' ' || \
                 content_hash || ' ' || (deleted_at IS NOT NULL), ' ') \
                 FROM (SELECT id, key_hash, content_hash, deleted_at FROM images \
                 INDEXED BY images_sync_index \
                 WHERE target = ? AND image_type = ? AND id > ? ORDER BY id LIMIT ?)",
            )
            .bind(target)
            .bind(image_type.as_str())
            .bind(after)
            .bind(INDEX_CHUNK)
            .fetch_one(&self.reader)
            .await
            .context("read the inventory index")?;
            let (Some(last), Some(packed)) = (last, packed) else {
                break;
            };
            unpack_index(&packed, &mut known).ok_or(StoreError::Corrupt {
                what: "the packed inventory index",
            })?;
            after = last;
            if rows < INDEX_CHUNK {
                break;
            }
        }
        Ok(known)
    }

    /// Inserts new images and rewrites changed or returning ones, in one transaction. A row
    /// whose content hash is unchanged and which is present is left untouched by the
    /// `WHERE` of the upsert, even if the caller sends it.
    #[tracing::instrument(skip_all, err, fields(target, rows = images.len()))]
    async fn upsert_images(
        &self,
        target: &str,
        images: &mut Vec<PreparedImage>,
        now: i64,
    ) -> Result<(), StoreError> {
        let first_load = self.first_load.load(Ordering::SeqCst);
        let mut tx = self.write().await?;
        let mut images = images.drain(..).peekable();
        while images.peek().is_some() {
            let mut args = SqliteArguments::default();
            let mut rows = 0;
            for prepared in images.by_ref().take(IMAGES_PER_UPSERT) {
                bind(&mut args, target)?;
                bind_row(&mut args, prepared)?;
                bind(&mut args, now)?;
                bind(&mut args, now)?;
                rows += 1;
            }
            let sql = upsert_sql(rows, first_load);
            // Only full statements are kept prepared: a sync's last statement has a length of
            // its own, and sqlx's cache of a hundred such was megabytes of compiled SQL.
            let written = sqlx::query_with(sqlx::AssertSqlSafe(sql), args)
                .persistent(rows == IMAGES_PER_UPSERT)
                .execute(&mut *tx)
                .await;
            written.map_err(|source| {
                // The key index is down: another process is loading the empty inventory.
                let what = if source
                    .to_string()
                    .contains("ON CONFLICT clause does not match")
                {
                    "write a page of images while another process loads the empty inventory \
                     (this sync fails; the next one, after that load, works)"
                } else {
                    "write a page of images"
                };
                StoreError::Query { what, source }
            })?;
        }
        tx.commit().await.context("write a page of images")
    }

    /// Marks the images with these row ids deleted; returns how many were present.
    #[tracing::instrument(skip_all, err, fields(candidates = ids.len()))]
    async fn mark_deleted(&self, ids: &[i64], now: i64) -> Result<u64, StoreError> {
        let mut deleted = 0;
        let mut tx = self.write().await?;
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("UPDATE images SET deleted_at = ");
            q.push_bind(now).push(" WHERE deleted_at IS NULL AND id");
            push_in_list(&mut q, chunk.iter().copied());
            deleted += q
                .build()
                .execute(&mut *tx)
                .await
                .context("mark vanished images deleted")?
                .rows_affected();
        }
        tx.commit().await.context("mark vanished images deleted")?;
        Ok(deleted)
    }

    /// Present images per target, type and scan status.
    #[tracing::instrument(skip_all, err)]
    async fn image_counts(&self) -> Result<Vec<ImageCount>, StoreError> {
        // Type and status are the low two digits of the packed policy fields, so the narrow
        // policy index answers; only the rare unknown types and statuses (digit 7) are named
        // from the table.
        let packed: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT target, packed_policy_fields % 64 AS digits, COUNT(*) \
             FROM images INDEXED BY images_policy WHERE deleted_at IS NULL \
             GROUP BY target, digits",
        )
        .fetch_all(&self.reader)
        .await
        .context("count images")?;
        let mut counts: Vec<ImageCount> = Vec::with_capacity(packed.len());
        for (target, digits, images) in packed {
            match crate::store::policy_fields::packed_type_and_status(digits) {
                Some((image_type, scan_status)) => counts.push(ImageCount {
                    target,
                    image_type,
                    scan_status,
                    images,
                }),
                None => {
                    let named: Vec<(String, String, i64)> = sqlx::query_as(
                        "SELECT image_type, scan_status, COUNT(*) FROM images \
                         INDEXED BY images_policy WHERE target = ? AND deleted_at IS NULL \
                         AND packed_policy_fields % 64 = ? GROUP BY image_type, scan_status",
                    )
                    .bind(&target)
                    .bind(digits)
                    .fetch_all(&self.reader)
                    .await
                    .context("count images")?;
                    counts.extend(named.into_iter().map(|(image_type, scan_status, images)| {
                        ImageCount {
                            target: target.clone(),
                            image_type,
                            scan_status,
                            images,
                        }
                    }));
                }
            }
        }
        sort_counts(&mut counts);
        Ok(counts)
    }

    /// What each target's present images were found to have, from the `packed_risk` digits of
    /// the policy index: a few groups per target, however many images.
    #[tracing::instrument(skip_all, err)]
    async fn risk_counts(&self) -> Result<Vec<RiskCounts>, StoreError> {
        let groups: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT target, packed_risk, COUNT(*) FROM images INDEXED BY images_policy \
             WHERE deleted_at IS NULL GROUP BY target, packed_risk ORDER BY target",
        )
        .fetch_all(&self.reader)
        .await
        .context("count images with findings")?;
        Ok(count_risks(groups))
    }

    /// The riskiest present images: a pass over the table, for a command, ordered by the
    /// severity digit of `packed_risk`, then vulnerabilities.
    #[tracing::instrument(skip_all, err)]
    async fn riskiest_images(&self, limit: i64) -> Result<Vec<RiskyImage>, StoreError> {
        let rows: Vec<RiskyRow> = sqlx::query_as(
            "SELECT target, image_type, namespace, image_name, image_version, registry_name, \
             packed_risk, vul_num, malicious_file_num, unsafe_setting_num, latest_scan_time \
             FROM images WHERE deleted_at IS NULL \
             AND (packed_risk % 8 > 1 OR packed_risk >= 8 OR ifnull(vul_num, 0) > 0) \
             ORDER BY packed_risk % 8 DESC, ifnull(vul_num, 0) DESC, \
             ifnull(malicious_file_num, 0) DESC, ifnull(unsafe_setting_num, 0) DESC, id \
             LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await
        .context("read the riskiest images")?;
        Ok(rows.into_iter().map(RiskyImage::from).collect())
    }

    /// Present images of a target and type, in key order (for tests and tools; the policy
    /// reads its own projection).
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
             severity_level, is_multiple_arch, unsubmittable FROM images WHERE target = ? AND image_type = ? AND deleted_at IS NULL \
             ORDER BY namespace, image_name, image_version, instance_id",
        )
        .bind(target)
        .bind(image_type.as_str())
        .fetch_all(&self.reader)
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
            "SELECT image_row_id FROM held_deletions WHERE target = ? AND image_type = ?",
        )
        .bind(target)
        .bind(image_type.as_str())
        .fetch_all(&self.reader)
        .await
        .context("read the held-back deletions")
    }

    async fn hold_deletions(
        &self,
        target: &str,
        image_type: &ImageType,
        row_ids: &[i64],
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query("DELETE FROM held_deletions WHERE target = ? AND image_type = ?")
            .bind(target)
            .bind(image_type.as_str())
            .execute(&mut *tx)
            .await
            .context("replace the held-back deletions")?;
        for chunk in row_ids.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO held_deletions (target, image_type, image_row_id) ");
            q.push_values(chunk, |mut row, id| {
                row.push_bind(target.to_owned())
                    .push_bind(image_type.as_str().to_owned())
                    .push_bind(*id);
            });
            q.build()
                .execute(&mut *tx)
                .await
                .context("hold deletions back")?;
        }
        tx.commit().await.context("replace the held-back deletions")
    }

    async fn images_changed_since(&self, since: i64) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM images WHERE changed_at >= ?")
            .bind(since)
            .fetch_one(&self.reader)
            .await
            .context("count changed images")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn bulk_writes(&self, bulk: bool) -> Result<(), StoreError> {
        if bulk {
            self.set_write_cache(true).await?;
            // This process's own build at the end of its last load failed (a full disk), so
            // the index is still down and the upserts below need it. (An index that is down
            // because another process is loading is left alone: that process goes on.)
            if self.first_load.load(Ordering::SeqCst) {
                self.restore_key_index().await?;
            }
            if self.start_first_load().await? {
                tracing::info!("the inventory is empty: loading it, then building its key index");
            }
            Ok(())
        } else {
            // The index is sorted with the large cache still in place.
            let built = self.finish_first_load().await;
            let shrunk = self.set_write_cache(false).await;
            built.and(shrunk)
        }
    }

    fn end_bulk_writes_in_background(&self) {
        // A guard dropped on an early return or a panic: queue the reset behind whatever the
        // writer is doing, if there is still a runtime to run it on.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let writer = self.writer.clone();
            // The flag stays set: if this build fails, the next sync builds the index.
            let first_load = self.first_load.load(Ordering::SeqCst);
            runtime.spawn(async move {
                if first_load && let Err(err) = build_key_index(&writer).await {
                    tracing::warn!(error = %err, "cannot build the inventory's key index after a first load; the next sync or start builds it");
                }
                let reset = sqlx::query(sqlx::AssertSqlSafe(super::write_cache_pragma(false)))
                    .execute(&writer)
                    .await;
                if let Err(err) = reset {
                    tracing::warn!(error = %err, "cannot shrink the write cache after a sync");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Backend;

    async fn key_index_exists(backend: &SqliteBackend) -> bool {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {KEY_INDEX_PRESENT}")))
            .fetch_one(&backend.writer)
            .await
            .expect("read the schema")
    }

    async fn rows(backend: &SqliteBackend) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM images")
            .fetch_one(&backend.writer)
            .await
            .expect("count")
    }

    /// A directory for a new database file, and the file's URL.
    fn database() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        (dir, url)
    }

    fn images(names: &[&str]) -> Vec<PreparedImage> {
        names
            .iter()
            .map(|n| PreparedImage::new(Image::example(n)))
            .collect()
    }

    /// A sync into an empty inventory loads without the key index and builds it at its end;
    /// the next sync upserts against it, so the same images are rewritten, not duplicated.
    #[tokio::test]
    async fn a_first_load_builds_the_key_index_at_its_end_and_later_syncs_upsert() {
        let (_dir, url) = database();
        let backend = SqliteBackend::open(&url, 0).await.expect("open");
        assert!(key_index_exists(&backend).await, "migrated with the index");

        backend.bulk_writes(true).await.expect("start");
        assert!(!key_index_exists(&backend).await, "down for the first load");
        backend
            .upsert_images("t", &mut images(&["a", "b"]), 1)
            .await
            .expect("load");
        backend.bulk_writes(false).await.expect("finish");
        assert!(key_index_exists(&backend).await, "built at the end");

        // Not empty any more: the next sync keeps the index and upserts.
        backend.bulk_writes(true).await.expect("start");
        assert!(key_index_exists(&backend).await, "kept for a later sync");
        let mut changed = images(&["a", "c"]);
        changed[0].image.vul_num = Some(7);
        changed[0] = PreparedImage::new(changed[0].image.clone());
        backend
            .upsert_images("t", &mut changed, 2)
            .await
            .expect("upsert");
        backend.bulk_writes(false).await.expect("finish");
        assert_eq!(rows(&backend).await, 3, "a, b and c once each");
        let vul: Option<i64> =
            sqlx::query_scalar("SELECT vul_num FROM images WHERE image_name = 'a'")
                .fetch_one(&backend.writer)
                .await
                .expect("read a");
        assert_eq!(vul, Some(7), "a was rewritten in place");
        Backend::close(&backend).await;
    }

    /// A build that failed at the end of this process's load (here: the index dropped by
    /// hand, the load still marked) is repaired by its next sync, which then upserts.
    #[tokio::test]
    async fn the_next_sync_builds_a_key_index_left_down_by_a_failed_build() {
        let (_dir, url) = database();
        let backend = SqliteBackend::open(&url, 0).await.expect("open");
        backend
            .upsert_images("t", &mut images(&["a"]), 1)
            .await
            .expect("insert");
        sqlx::query("DROP INDEX images_by_key")
            .execute(&backend.writer)
            .await
            .expect("drop");
        backend.first_load.store(true, Ordering::SeqCst);
        backend.bulk_writes(true).await.expect("start");
        assert!(key_index_exists(&backend).await, "built again");
        assert!(
            !backend.first_load.load(Ordering::SeqCst),
            "not a first load"
        );
        backend
            .upsert_images("t", &mut images(&["a", "b"]), 2)
            .await
            .expect("upsert");
        backend.bulk_writes(false).await.expect("finish");
        assert_eq!(rows(&backend).await, 2);
        Backend::close(&backend).await;
    }

    /// While one process loads without the key index, another cannot load too, and its
    /// upsert fails instead of writing a duplicate; a process that opens the database builds
    /// a missing index, which is how a first load that crashed is repaired.
    #[tokio::test]
    async fn while_the_key_index_is_down_no_duplicate_can_be_written_and_opening_rebuilds_it() {
        let (_dir, url) = database();
        let loading = SqliteBackend::open(&url, 0).await.expect("open");
        let other = SqliteBackend::open(&url, 0).await.expect("open");
        loading.bulk_writes(true).await.expect("start");
        loading
            .upsert_images("t", &mut images(&["a"]), 1)
            .await
            .expect("load");

        other.bulk_writes(true).await.expect("start");
        assert!(
            !other.first_load.load(Ordering::SeqCst),
            "only one process loads"
        );
        let refused = other
            .upsert_images("t", &mut images(&["a"]), 1)
            .await
            .expect_err("no conflict target while the index is down");
        assert!(
            refused.to_string().contains("another process loads"),
            "{refused}"
        );
        assert_eq!(rows(&loading).await, 1, "nothing written twice");

        // The loading process dies without building the index; the next one to open builds it.
        Backend::close(&other).await;
        drop(loading);
        let reopened = SqliteBackend::open(&url, 0).await.expect("reopen");
        assert!(key_index_exists(&reopened).await, "rebuilt on open");
        reopened
            .upsert_images("t", &mut images(&["a"]), 2)
            .await
            .expect("upsert after the repair");
        assert_eq!(rows(&reopened).await, 1);
        Backend::close(&reopened).await;
    }

    #[test]
    fn the_packed_index_unpacks_and_refuses_garbage() {
        let mut known = Vec::new();
        unpack_index("1 -5 7 0 2 9 -9 1", &mut known).unwrap();
        assert_eq!(
            known,
            vec![
                (
                    -5,
                    KnownImage {
                        row_id: 1,
                        content_hash: 7,
                        deleted: false
                    }
                ),
                (
                    9,
                    KnownImage {
                        row_id: 2,
                        content_hash: -9,
                        deleted: true
                    }
                )
            ]
        );
        assert!(unpack_index("1 2 3", &mut known).is_none());
        assert!(unpack_index("1 x 3 0", &mut known).is_none());
    }
}
