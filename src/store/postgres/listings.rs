//! What incremental listing keeps in PostgreSQL: how each sync listed (columns of
//! `sync_runs`, migration 0002), the history the next sync decides by, and the two narrow
//! reads an incremental sync and a full listing's self-check make of the inventory instead of
//! loading all of it. Same semantics as `sqlite/listings.rs`; here the ids and key hashes go
//! in as one array each (`= ANY($n)`), so there is no variable limit to chunk around.

use std::collections::HashMap;

use async_trait::async_trait;

use super::{Context, PgBackend};
use crate::domain::ImageType;
use crate::store::rows::PastSyncRow;
use crate::store::{
    KnownImage, ListingHistory, Listings, PastSync, StoreError, StoredTimes, SyncListing,
};

#[async_trait]
impl Listings for PgBackend {
    #[tracing::instrument(skip_all, err, fields(run = run_id))]
    async fn record_sync_listing(
        &self,
        run_id: i64,
        listing: &SyncListing,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sync_runs SET listing = $1, listing_reason = $2, window_start = $3, \
             window_end = $4, missed = $5 WHERE id = $6",
        )
        .bind(listing.kind.as_str())
        .bind(&listing.reason)
        .bind(listing.window_start)
        .bind(listing.window_end)
        .bind(listing.missed)
        .bind(run_id)
        .execute(&self.pool)
        .await
        .context("record how a sync listed")?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn listing_history(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<ListingHistory, StoreError> {
        // The three reads share one snapshot, so that a sync another replica starts or
        // finishes meanwhile cannot appear in one and not in the others.
        let mut tx = self.pool.begin().await.context("read the previous syncs")?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .context("read the previous syncs")?;
        let previous: Option<PastSyncRow> = sqlx::query_as(
            "SELECT id, started_at, outcome, listing, window_start, window_end FROM sync_runs \
             WHERE target = $1 AND image_type = $2 ORDER BY id DESC LIMIT 1",
        )
        .bind(target)
        .bind(image_type.as_str())
        .fetch_optional(&mut *tx)
        .await
        .context("read the previous sync")?;
        let (last_full, last_complete_full): (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT MAX(id), MAX(CASE WHEN outcome = 'complete' THEN started_at END) \
             FROM sync_runs WHERE target = $1 AND image_type = $2 AND listing = 'full'",
        )
        .bind(target)
        .bind(image_type.as_str())
        .fetch_one(&mut *tx)
        .await
        .context("read the last full listing")?;
        let since_full: Vec<PastSyncRow> = sqlx::query_as(
            "SELECT id, started_at, outcome, listing, window_start, window_end FROM sync_runs \
             WHERE target = $1 AND image_type = $2 AND id > $3 AND listing = 'incremental' \
             AND outcome = 'complete' ORDER BY id",
        )
        .bind(target)
        .bind(image_type.as_str())
        .bind(last_full.unwrap_or(0))
        .fetch_all(&mut *tx)
        .await
        .context("read the incremental listings since the last full one")?;
        tx.commit().await.context("read the previous syncs")?;
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
        // Served by the unique index on (target, key_hash).
        let rows: Vec<(i64, i64, i64, bool)> = sqlx::query_as(
            "SELECT key_hash, id, content_hash, deleted_at IS NOT NULL FROM images \
             WHERE target = $1 AND image_type = $2 AND key_hash = ANY($3)",
        )
        .bind(target)
        .bind(image_type.as_str())
        .bind(key_hashes)
        .fetch_all(&self.pool)
        .await
        .context("read what is known of listed images")?;
        Ok(rows
            .into_iter()
            .map(|(key, row_id, content_hash, deleted)| {
                (
                    key,
                    KnownImage {
                        row_id,
                        content_hash,
                        deleted,
                    },
                )
            })
            .collect())
    }

    async fn stored_times(&self, row_ids: &[i64]) -> Result<HashMap<i64, StoredTimes>, StoreError> {
        let rows: Vec<(i64, Option<i64>, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT id, latest_update_time, latest_sync_time, latest_scan_time FROM images \
             WHERE id = ANY($1)",
        )
        .bind(row_ids)
        .fetch_all(&self.pool)
        .await
        .context("read the stored change times of images")?;
        Ok(rows
            .into_iter()
            .map(|(id, update, sync, scan)| {
                (
                    id,
                    StoredTimes {
                        latest_update_time: update,
                        latest_sync_time: sync,
                        latest_scan_time: scan,
                    },
                )
            })
            .collect())
    }
}
