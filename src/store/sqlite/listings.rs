//! What incremental listing keeps in SQLite: how each sync listed (columns of `sync_runs`),
//! the history the next sync decides by, and the two narrow reads an incremental sync and a
//! full listing's self-check make of the inventory instead of loading all of it.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{QueryBuilder, Sqlite};

use super::{Context, SqliteBackend, push_in_list};
use crate::domain::ImageType;
use crate::store::rows::PastSyncRow;
use crate::store::{
    KnownImage, ListingHistory, Listings, PastSync, StoreError, StoredTimes, SyncListing,
};

/// Ids or key hashes per `IN (…)` list: far below SQLite's limit on bound variables.
const IN_CHUNK: usize = 500;

#[async_trait]
impl Listings for SqliteBackend {
    #[tracing::instrument(skip_all, err, fields(run = run_id))]
    async fn record_sync_listing(
        &self,
        run_id: i64,
        listing: &SyncListing,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE sync_runs SET listing = ?, listing_reason = ?, window_start = ?, \
             window_end = ?, missed = ? WHERE id = ?",
        )
        .bind(listing.kind.as_str())
        .bind(&listing.reason)
        .bind(listing.window_start)
        .bind(listing.window_end)
        .bind(listing.missed)
        .bind(run_id);
        self.write_one(query, "record how a sync listed").await
    }

    #[tracing::instrument(skip_all, err)]
    async fn listing_history(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<ListingHistory, StoreError> {
        let previous: Option<PastSyncRow> = sqlx::query_as(
            "SELECT id, started_at, outcome, listing, window_start, window_end FROM sync_runs \
             WHERE target = ? AND image_type = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(target)
        .bind(image_type.as_str())
        .fetch_optional(&self.reader)
        .await
        .context("read the previous sync")?;
        let (last_full, last_complete_full): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT MAX(id), MAX(CASE WHEN outcome = 'complete' THEN started_at END) \
             FROM sync_runs WHERE target = ? AND image_type = ? AND listing = 'full'",
        )
        .bind(target)
        .bind(image_type.as_str())
        .fetch_one(&self.reader)
        .await
        .context("read the last full listing")?;
        let since_full: Vec<PastSyncRow> = sqlx::query_as(
            "SELECT id, started_at, outcome, listing, window_start, window_end FROM sync_runs \
             WHERE target = ? AND image_type = ? AND id > ? AND listing = 'incremental' \
             AND outcome = 'complete' ORDER BY id",
        )
        .bind(target)
        .bind(image_type.as_str())
        .bind(last_full.unwrap_or(0))
        .fetch_all(&self.reader)
        .await
        .context("read the incremental listings since the last full one")?;
        Ok(ListingHistory {
            previous: previous.map(PastSync::try_from).transpose()?,
            last_complete_full,
            incremental_since_full: since_full
                .into_iter()
                .map(PastSync::try_from)
                .collect::<Result<_, _>>()?,
        })
    }

    async fn known_images_by_key(
        &self,
        target: &str,
        image_type: &ImageType,
        key_hashes: &[i64],
    ) -> Result<HashMap<i64, KnownImage>, StoreError> {
        let mut known = HashMap::with_capacity(key_hashes.len());
        for chunk in key_hashes.chunks(IN_CHUNK) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT key_hash, id, content_hash, deleted_at IS NOT NULL FROM images \
                 WHERE target = ",
            );
            q.push_bind(target)
                .push(" AND image_type = ")
                .push_bind(image_type.as_str())
                .push(" AND key_hash");
            push_in_list(&mut q, chunk.iter().copied());
            let rows: Vec<(i64, i64, i64, bool)> = q
                .build_query_as()
                .fetch_all(&self.reader)
                .await
                .context("read what is known of listed images")?;
            known.extend(
                rows.into_iter()
                    .map(|(key, row_id, content_hash, deleted)| {
                        (
                            key,
                            KnownImage {
                                row_id,
                                content_hash,
                                deleted,
                            },
                        )
                    }),
            );
        }
        Ok(known)
    }

    async fn stored_times(&self, row_ids: &[i64]) -> Result<HashMap<i64, StoredTimes>, StoreError> {
        let mut times = HashMap::with_capacity(row_ids.len());
        for chunk in row_ids.chunks(IN_CHUNK) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "SELECT id, latest_update_time, latest_sync_time, latest_scan_time FROM images \
                 WHERE id",
            );
            push_in_list(&mut q, chunk.iter().copied());
            let rows: Vec<(i64, Option<i64>, Option<i64>, Option<i64>)> = q
                .build_query_as()
                .fetch_all(&self.reader)
                .await
                .context("read the stored change times of images")?;
            times.extend(rows.into_iter().map(|(id, update, sync, scan)| {
                (
                    id,
                    StoredTimes {
                        latest_update_time: update,
                        latest_sync_time: sync,
                        latest_scan_time: scan,
                    },
                )
            }));
        }
        Ok(times)
    }
}
