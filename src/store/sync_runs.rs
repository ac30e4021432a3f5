//! `sync_runs`: one row per sync of one target and image type.

use serde::Serialize;
use sqlx::FromRow;

use super::{Context, Store, StoreError, now_ms};
use crate::domain::ImageType;

/// How a sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    /// Every page was listed and `total_num` held still: absent images were marked deleted.
    Complete,
    /// Some pages were written but the listing cannot be proved whole: nothing was deleted.
    Partial,
    /// Nothing could be listed.
    Failed,
}

impl SyncOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncOutcome::Complete => "complete",
            SyncOutcome::Partial => "partial",
            SyncOutcome::Failed => "failed",
        }
    }
}

/// What one sync counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SyncRunCounts {
    pub pages: i64,
    pub total_num: Option<i64>,
    pub seen: i64,
    pub new: i64,
    pub changed: i64,
    pub restored: i64,
    pub deleted: i64,
    pub unreadable_fields: i64,
}

/// A row of `sync_runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct SyncRun {
    pub id: i64,
    pub target: String,
    pub image_type: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub outcome: String,
    pub pages: i64,
    pub total_num: Option<i64>,
    pub seen: i64,
    pub new: i64,
    pub changed: i64,
    pub restored: i64,
    pub deleted: i64,
    pub unreadable_fields: i64,
    pub error: Option<String>,
}

impl Store {
    /// Records the start of a sync; the row stays `running` until [`Store::finish_sync_run`].
    #[tracing::instrument(skip_all, err)]
    pub async fn start_sync_run(
        &self,
        target: &str,
        image_type: &ImageType,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write().await?;
        let id = sqlx::query_scalar(
            "INSERT INTO sync_runs (target, image_type, owner, started_at) \
             VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(target)
        .bind(image_type.as_str())
        .bind(self.owner.as_str())
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await
        .context("record the start of a sync")?;
        tx.commit().await.context("record the start of a sync")?;
        Ok(id)
    }

    #[tracing::instrument(skip_all, err, fields(run = id))]
    pub async fn finish_sync_run(
        &self,
        id: i64,
        outcome: SyncOutcome,
        counts: &SyncRunCounts,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        sqlx::query(
            "UPDATE sync_runs SET finished_at = ?, outcome = ?, pages = ?, total_num = ?, \
             seen = ?, new = ?, changed = ?, restored = ?, deleted = ?, unreadable_fields = ?, \
             error = ? WHERE id = ?",
        )
        .bind(now_ms())
        .bind(outcome.as_str())
        .bind(counts.pages)
        .bind(counts.total_num)
        .bind(counts.seen)
        .bind(counts.new)
        .bind(counts.changed)
        .bind(counts.restored)
        .bind(counts.deleted)
        .bind(counts.unreadable_fields)
        .bind(error)
        .bind(id)
        .execute(&mut *tx)
        .await
        .context("record the end of a sync")?;
        tx.commit().await.context("record the end of a sync")
    }

    /// The latest `limit` sync runs, newest first.
    #[tracing::instrument(skip_all, err)]
    pub async fn recent_sync_runs(&self, limit: i64) -> Result<Vec<SyncRun>, StoreError> {
        sqlx::query_as(
            "SELECT id, target, image_type, started_at, finished_at, outcome, pages, total_num, \
             seen, new, changed, restored, deleted, unreadable_fields, error \
             FROM sync_runs ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.reader)
        .await
        .context("read the latest sync runs")
    }

    /// Marks sync runs whose process died while they ran as `interrupted`.
    pub(super) async fn close_dead_runs(&self) -> Result<(), StoreError> {
        self.close_runs_of_dead_processes("sync_runs", "the process stopped while this sync ran")
            .await
    }
}
