//! `images`: the inventory.
//!
//! A sync never holds the image list in memory. It holds, per image of one target and type,
//! two 64-bit hashes ([`KnownImage`]): enough to tell new, changed, unchanged and vanished
//! images apart, at about 30 MB per million images. Unchanged images are not written at all;
//! the rest go in multi-row upserts, in transactions of a few thousand images.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::{QueryBuilder, Sqlite};
use xxhash_rust::xxh3::Xxh3;

use super::{Context, Store, StoreError, push_in_list};
use crate::domain::{Image, ImageType};

/// What the store knows of an image, keyed by [`PreparedImage::key_hash`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownImage {
    /// The row id, by which a vanished image is marked deleted.
    pub id: i64,
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
    fn finish(&self) -> i64 {
        // SQLite integers are signed; the bits are what matter.
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
        let key_hash = key.finish();
        let mut content = FieldHasher::new();
        content
            .text(image.image_type.as_str())
            .text(&image.namespace)
            .text(&image.image_name)
            .text(&image.image_version)
            .text(&image.instance_id)
            .number(image.id)
            .text(&image.instance_name)
            .text(&image.instance_url)
            .text(&image.image_id)
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
        PreparedImage {
            content_hash: content.finish(),
            key_hash,
            image,
        }
    }
}

/// Live images per target, type and scan status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ImageCount {
    pub target: String,
    pub image_type: String,
    pub scan_status: String,
    pub images: i64,
}

/// Rows per packed read of the inventory index.
const INDEX_CHUNK: i64 = 20_000;

/// Parses `id key_hash content_hash deleted …` into the map; `None` if it is not that.
fn unpack_index(packed: &str, known: &mut HashMap<i64, KnownImage>) -> Option<()> {
    let mut numbers = packed.split(' ').map(str::parse::<i64>);
    while let Some(id) = numbers.next() {
        let id = id.ok()?;
        let key_hash = numbers.next()?.ok()?;
        let content_hash = numbers.next()?.ok()?;
        let deleted = numbers.next()?.ok()? != 0;
        known.insert(
            key_hash,
            KnownImage {
                id,
                content_hash,
                deleted,
            },
        );
    }
    Some(())
}

/// Rows per upsert statement: 28 columns × 500 rows stays under SQLite's 32,766 variables.
const ROWS_PER_STATEMENT: usize = 500;

impl Store {
    /// Key hash → what is stored, for every image (present or deleted) of a target and type.
    ///
    /// Rows come packed, [`INDEX_CHUNK`] per query, as one text of numbers: sqlx spends about
    /// 3.5 µs on each row it hands over, which for this one bulk read was a third of an
    /// unchanged re-sync. Only one chunk is in memory at a time besides the map.
    #[tracing::instrument(skip_all, err, fields(target, image_type = %image_type))]
    pub async fn known_images(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<HashMap<i64, KnownImage>, StoreError> {
        let mut known = HashMap::new();
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
    pub async fn upsert_images(
        &self,
        target: &str,
        images: &[PreparedImage],
        now: i64,
    ) -> Result<(), StoreError> {
        if images.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        for chunk in images.chunks(ROWS_PER_STATEMENT) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO images (target, image_type, namespace, image_name, image_version, \
                 instance_id, key_hash, content_hash, hss_id, instance_name, instance_url, \
                 image_id, image_digest, latest_version, scan_status, scan_failed_desc, \
                 image_size, latest_update_time, latest_scan_time, vul_num, unsafe_setting_num, \
                 malicious_file_num, domain_name, shared_status, scannable, first_seen_at, \
                 changed_at, deleted_at) ",
            );
            q.push_values(chunk, |mut row, p| {
                let i = &p.image;
                row.push_bind(target.to_owned())
                    .push_bind(i.image_type.as_str().to_owned())
                    .push_bind(i.namespace.clone())
                    .push_bind(i.image_name.clone())
                    .push_bind(i.image_version.clone())
                    .push_bind(i.instance_id.clone())
                    .push_bind(p.key_hash)
                    .push_bind(p.content_hash)
                    .push_bind(i.id)
                    .push_bind(i.instance_name.clone())
                    .push_bind(i.instance_url.clone())
                    .push_bind(i.image_id.clone())
                    .push_bind(i.image_digest.clone())
                    .push_bind(i.latest_version)
                    .push_bind(i.scan_status.as_str().to_owned())
                    .push_bind(i.scan_failed_desc.clone())
                    .push_bind(i.image_size)
                    .push_bind(i.latest_update_time)
                    .push_bind(i.latest_scan_time)
                    .push_bind(i.vul_num)
                    .push_bind(i.unsafe_setting_num)
                    .push_bind(i.malicious_file_num)
                    .push_bind(i.domain_name.clone())
                    .push_bind(i.shared_status.clone())
                    .push_bind(i.scannable)
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(None::<i64>);
            });
            q.push(
                " ON CONFLICT (target, image_type, namespace, image_name, image_version, \
                 instance_id) DO UPDATE SET key_hash = excluded.key_hash, \
                 content_hash = excluded.content_hash, hss_id = excluded.hss_id, \
                 instance_name = excluded.instance_name, instance_url = excluded.instance_url, \
                 image_id = excluded.image_id, image_digest = excluded.image_digest, \
                 latest_version = excluded.latest_version, scan_status = excluded.scan_status, \
                 scan_failed_desc = excluded.scan_failed_desc, image_size = excluded.image_size, \
                 latest_update_time = excluded.latest_update_time, \
                 latest_scan_time = excluded.latest_scan_time, vul_num = excluded.vul_num, \
                 unsafe_setting_num = excluded.unsafe_setting_num, \
                 malicious_file_num = excluded.malicious_file_num, \
                 domain_name = excluded.domain_name, shared_status = excluded.shared_status, \
                 scannable = excluded.scannable, changed_at = excluded.changed_at, \
                 deleted_at = NULL \
                 WHERE images.content_hash <> excluded.content_hash \
                 OR images.deleted_at IS NOT NULL",
            );
            q.build()
                .execute(&mut *tx)
                .await
                .context("write a page of images")?;
        }
        tx.commit().await.context("write a page of images")
    }

    /// Marks the images with these row ids deleted; returns how many were present.
    #[tracing::instrument(skip_all, err, fields(candidates = ids.len()))]
    pub async fn mark_deleted(&self, ids: &[i64], now: i64) -> Result<u64, StoreError> {
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
    pub async fn image_counts(&self) -> Result<Vec<ImageCount>, StoreError> {
        sqlx::query_as(
            "SELECT target, image_type, scan_status, COUNT(*) AS images FROM images \
             WHERE deleted_at IS NULL GROUP BY target, image_type, scan_status \
             ORDER BY target, image_type, scan_status",
        )
        .fetch_all(&self.reader)
        .await
        .context("count images")
    }

    /// Present images of a target and type, in key order (for tests and tools; the policy
    /// reads its own projection).
    #[tracing::instrument(skip_all, err)]
    pub async fn present_images(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<Vec<Image>, StoreError> {
        let rows = sqlx::query_as::<_, ImageRow>(
            "SELECT image_type, namespace, image_name, image_version, instance_id, hss_id, \
             instance_name, instance_url, image_id, image_digest, latest_version, scan_status, \
             scan_failed_desc, image_size, latest_update_time, latest_scan_time, vul_num, \
             unsafe_setting_num, malicious_file_num, domain_name, shared_status, scannable \
             FROM images WHERE target = ? AND image_type = ? AND deleted_at IS NULL \
             ORDER BY namespace, image_name, image_version, instance_id",
        )
        .bind(target)
        .bind(image_type.as_str())
        .fetch_all(&self.reader)
        .await
        .context("read present images")?;
        Ok(rows.into_iter().map(Image::from).collect())
    }
}

#[derive(sqlx::FromRow)]
struct ImageRow {
    image_type: String,
    namespace: String,
    image_name: String,
    image_version: String,
    instance_id: String,
    hss_id: Option<i64>,
    instance_name: String,
    instance_url: String,
    image_id: String,
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
}

impl From<ImageRow> for Image {
    fn from(r: ImageRow) -> Self {
        Image {
            id: r.hss_id,
            image_type: ImageType::from(r.image_type.as_str()),
            namespace: r.namespace,
            image_name: r.image_name,
            image_version: r.image_version,
            instance_id: r.instance_id,
            instance_name: r.instance_name,
            instance_url: r.instance_url,
            image_id: r.image_id,
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ScanStatus;

    fn image() -> Image {
        Image {
            id: Some(1),
            image_type: ImageType::Private,
            namespace: "ns".into(),
            image_name: "app".into(),
            image_version: "v1".into(),
            instance_id: String::new(),
            instance_name: String::new(),
            instance_url: String::new(),
            image_id: "i".into(),
            image_digest: "sha256:x".into(),
            latest_version: Some(true),
            scan_status: ScanStatus::Success,
            scan_failed_desc: String::new(),
            image_size: Some(10),
            latest_update_time: Some(1),
            latest_scan_time: Some(2),
            vul_num: Some(0),
            unsafe_setting_num: None,
            malicious_file_num: None,
            domain_name: String::new(),
            shared_status: String::new(),
            scannable: Some(true),
        }
    }

    #[test]
    fn the_packed_index_unpacks_and_refuses_garbage() {
        let mut known = HashMap::new();
        unpack_index("1 -5 7 0 2 9 -9 1", &mut known).unwrap();
        assert_eq!(
            known[&-5],
            KnownImage {
                id: 1,
                content_hash: 7,
                deleted: false
            }
        );
        assert_eq!(
            known[&9],
            KnownImage {
                id: 2,
                content_hash: -9,
                deleted: true
            }
        );
        assert!(unpack_index("1 2 3", &mut known).is_none());
        assert!(unpack_index("1 x 3 0", &mut known).is_none());
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
    }

    /// `images.fits_batch_scan` (the migration's generated column) is the only check of the
    /// API's length limits on the way to a submission: it must count characters, not bytes,
    /// and refuse empty names, exactly at `domain::limits`.
    #[tokio::test]
    async fn fits_batch_scan_counts_characters_at_the_api_limits() {
        use crate::domain::limits;
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::open(&url).await.expect("store");
        let at = |n: usize, c: &str| c.repeat(n);
        type Change = Box<dyn Fn(&mut Image)>;
        let cases: Vec<(&str, Change, bool)> = vec![
            ("plain", Box::new(|_| {}), true),
            (
                "namespace at 64 two-byte characters",
                Box::new(move |i| i.namespace = at(limits::NAMESPACE, "é")),
                true,
            ),
            (
                "namespace at 65",
                Box::new(move |i| i.namespace = at(limits::NAMESPACE + 1, "n")),
                false,
            ),
            (
                "empty namespace",
                Box::new(|i| i.namespace = String::new()),
                false,
            ),
            (
                "name at 128",
                Box::new(move |i| i.image_name = at(limits::IMAGE_NAME, "a")),
                true,
            ),
            (
                "name at 129",
                Box::new(move |i| i.image_name = at(limits::IMAGE_NAME + 1, "a")),
                false,
            ),
            (
                "empty name",
                Box::new(|i| i.image_name = String::new()),
                false,
            ),
            (
                "tag at 129",
                Box::new(move |i| i.image_version = at(limits::IMAGE_VERSION + 1, "v")),
                false,
            ),
            (
                "empty tag",
                Box::new(|i| i.image_version = String::new()),
                false,
            ),
            (
                "instance id at 128",
                Box::new(move |i| i.instance_id = at(limits::INSTANCE_ID, "x")),
                true,
            ),
            (
                "instance id at 129",
                Box::new(move |i| i.instance_id = at(limits::INSTANCE_ID + 1, "x")),
                false,
            ),
            (
                "instance url at 256",
                Box::new(move |i| i.instance_url = at(limits::INSTANCE_URL, "u")),
                true,
            ),
            (
                "instance url at 257",
                Box::new(move |i| i.instance_url = at(limits::INSTANCE_URL + 1, "u")),
                false,
            ),
        ];
        for (n, (_, change, _)) in cases.iter().enumerate() {
            let mut i = image();
            i.id = None;
            change(&mut i);
            // A target per case keeps the keys apart without touching the fields under test.
            store
                .upsert_images(&format!("t{n}"), &[PreparedImage::new(i)], 1)
                .await
                .expect("upsert");
        }
        let rows: Vec<(i64, i64)> =
            sqlx::query_as("SELECT id, fits_batch_scan FROM images ORDER BY id")
                .fetch_all(&store.reader)
                .await
                .expect("read");
        assert_eq!(rows.len(), cases.len(), "one row per case");
        for ((name, _, want), (_, fits)) in cases.iter().zip(&rows) {
            assert_eq!(*fits != 0, *want, "{name}");
        }
        store.close().await;
    }

    /// `images.policy_bits` is encoded by SQL (migration 0003) and decoded in Rust
    /// (`PolicyBits`): every type, status and flag must come back as it went in.
    #[tokio::test]
    async fn the_policy_view_of_an_image_round_trips_through_policy_bits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::open(&url).await.expect("store");
        let types = [
            ImageType::Private,
            ImageType::Shared,
            ImageType::Instance,
            ImageType::from("enterprise_image"),
        ];
        let statuses = [
            ScanStatus::Unscan,
            ScanStatus::Scanning,
            ScanStatus::WaitingForScan,
            ScanStatus::Success,
            ScanStatus::Failed,
            ScanStatus::DownloadFailed,
            ScanStatus::ImageOversized,
            ScanStatus::from("quarantined"),
        ];
        let flags = [Some(true), Some(false), None];
        let mut want = Vec::new();
        let mut prepared = Vec::new();
        for image_type in &types {
            for status in &statuses {
                for scannable in flags {
                    for latest in flags {
                        let mut i = image();
                        i.id = None;
                        i.image_type = image_type.clone();
                        i.scan_status = status.clone();
                        i.scannable = scannable;
                        i.latest_version = latest;
                        i.image_name = format!("app{}", want.len());
                        // Every fourth has a namespace the API refuses.
                        if want.len() % 4 == 3 {
                            i.namespace = "n".repeat(65);
                        }
                        want.push(i.clone());
                        prepared.push(PreparedImage::new(i));
                    }
                }
            }
        }
        store
            .upsert_images("t", &prepared, 1)
            .await
            .expect("upsert");
        sqlx::query("UPDATE images SET in_flight = 1 WHERE id % 3 = 0")
            .execute(&store.writer)
            .await
            .expect("mark some in flight");

        let mut seen = Vec::new();
        store
            .visit_candidates("t", false, &mut |c| seen.push(c.clone()))
            .await
            .expect("visit");
        assert_eq!(seen.len(), want.len());
        let ids: Vec<(i64, String)> = sqlx::query_as("SELECT id, image_name FROM images")
            .fetch_all(&store.reader)
            .await
            .expect("ids");
        for c in &seen {
            let name = &ids.iter().find(|(id, _)| *id == c.id).expect("a row").1;
            let w = want
                .iter()
                .find(|w| w.image_name == *name)
                .expect("an image");
            // Unknown values decode as `Other` without their text, which the policy never reads.
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
            assert_eq!(c.in_flight, c.id % 3 == 0, "{name}: in flight");
            assert_eq!(c.fits_batch_scan, w.namespace.len() <= 64, "{name}: fits");
        }
        store.close().await;
    }
}
