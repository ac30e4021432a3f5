//! `hss-scand db copy`: an SQLite database's state, moved into an empty PostgreSQL database,
//! for an operator who starts with the embedded default and later runs replicas.
//!
//! Every table is copied with its ids — the inventory (deleted images too) and its held-back
//! deletions, the run log, every batch and item (open ones included, with the
//! `submission_state` of their images that points at them), and what the
//! targets' projects said — except the leader lease, which belongs to the processes of the
//! old database. The source is read in one read transaction, so the copy is one consistent
//! moment of it even while a daemon writes; the target is written in one transaction, so it
//! is filled whole or not at all. [`TABLES`] says which columns each table has; a test
//! checks it against both schemas, so that a column added later is not silently left behind.

use futures::TryStreamExt as _;

use super::postgres::PgBackend;
use super::sqlite::SqliteBackend;
use super::{Backend, StoreError, scheme};
use crate::config::redact::url_text;
use crate::domain::Clock;

/// How a column's values travel: SQLite's integers, texts, and 0/1 flags that PostgreSQL
/// keeps as booleans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Int,
    Text,
    Bool,
    /// Text naming the process that wrote the row (`pid:start-time`), which PostgreSQL keeps
    /// with the name of the machine before it: the copy runs where the SQLite file is, so
    /// this machine is the one those processes ran on.
    Owner,
}

/// A table to copy: its columns (the stored ones; generated columns are computed again), and
/// the order to read it in, which puts every row after the rows it refers to.
#[derive(Debug)]
pub(super) struct Table {
    pub(super) name: &'static str,
    pub(super) columns: &'static [(&'static str, Kind)],
    pub(super) order_by: &'static str,
    /// Whether `id` is an identity column whose sequence must move past the copied ids.
    pub(super) has_id: bool,
}

use Kind::{Bool, Int, Owner, Text};

/// Every table but the lease, parents before children.
pub(super) const TABLES: [Table; 8] = [
    Table {
        name: "images",
        columns: &[
            ("id", Int),
            ("target", Text),
            ("image_type", Text),
            ("namespace", Text),
            ("image_name", Text),
            ("image_version", Text),
            ("instance_id", Text),
            ("key_hash", Int),
            ("content_hash", Int),
            ("hss_record_id", Int),
            ("instance_name", Text),
            ("instance_url", Text),
            ("hss_image_id", Text),
            ("image_digest", Text),
            ("latest_version", Bool),
            ("scan_status", Text),
            ("scan_failed_desc", Text),
            ("image_size", Int),
            ("latest_update_time", Int),
            ("latest_scan_time", Int),
            ("vul_num", Int),
            ("unsafe_setting_num", Int),
            ("malicious_file_num", Int),
            ("domain_name", Text),
            ("shared_status", Text),
            ("scannable", Bool),
            ("registry_id", Text),
            ("registry_name", Text),
            ("registry_type", Text),
            ("latest_sync_time", Int),
            ("scan_failed_code", Text),
            ("severity_level", Text),
            ("is_multiple_arch", Bool),
            ("unsubmittable", Int),
            ("first_seen_at", Int),
            ("changed_at", Int),
            ("deleted_at", Int),
            ("digest_hash", Int),
        ],
        order_by: "id",
        has_id: true,
    },
    Table {
        name: "submission_state",
        columns: &[
            ("image_row_id", Int),
            ("last_submitted_at", Int),
            ("last_item_id", Int),
            ("in_flight", Bool),
            ("failed_submissions", Int),
            ("submitted_digest_hash", Int),
        ],
        order_by: "image_row_id",
        has_id: false,
    },
    Table {
        name: "held_deletions",
        columns: &[
            ("target", Text),
            ("image_type", Text),
            ("image_row_id", Int),
        ],
        order_by: "target, image_type, image_row_id",
        has_id: false,
    },
    Table {
        name: "sync_runs",
        columns: &[
            ("id", Int),
            ("target", Text),
            ("image_type", Text),
            ("owner", Owner),
            ("started_at", Int),
            ("finished_at", Int),
            ("outcome", Text),
            ("pages", Int),
            ("total_num", Int),
            ("seen", Int),
            ("new", Int),
            ("changed", Int),
            ("restored", Int),
            ("deleted", Int),
            ("unreadable_fields", Int),
            ("error", Text),
            ("held", Int),
            ("listing", Text),
            ("listing_reason", Text),
            ("window_start", Int),
            ("window_end", Int),
            ("missed", Int),
        ],
        order_by: "id",
        has_id: true,
    },
    Table {
        name: "job_runs",
        columns: &[
            ("id", Int),
            ("job", Text),
            ("run_id", Text),
            ("trigger", Text),
            ("owner", Owner),
            ("started_at", Int),
            ("finished_at", Int),
            ("outcome", Text),
            ("summary", Text),
            ("error", Text),
        ],
        order_by: "id",
        has_id: true,
    },
    Table {
        name: "scan_batches",
        columns: &[
            ("id", Int),
            ("target", Text),
            ("image_type", Text),
            ("enterprise_project_id", Text),
            ("owner", Owner),
            ("parent_id", Int),
            ("created_at", Int),
            ("answered_at", Int),
            ("status", Text),
            ("items", Int),
            ("http_status", Int),
            ("error_code", Text),
            ("request_id", Text),
            ("error", Text),
            ("api", Text),
            ("task_id", Text),
            ("task_progress", Int),
            ("task_succeeded", Int),
            ("task_failed", Int),
            ("task_checked_at", Int),
            ("task_ended_at", Int),
            ("lease_term", Int),
        ],
        // A split batch's parent was recorded before it.
        order_by: "id",
        has_id: true,
    },
    Table {
        name: "scan_items",
        columns: &[
            ("id", Int),
            ("batch_id", Int),
            ("image_row_id", Int),
            ("reason", Text),
            ("rule", Int),
            ("priority", Int),
            ("status_before", Text),
            ("scan_time_before", Int),
            ("submitted_before", Int),
            ("image_digest", Text),
            ("digest_hash", Int),
            ("digest_hash_before", Int),
            ("outcome", Text),
            ("finished_at", Int),
            ("task_failure", Text),
        ],
        order_by: "id",
        has_id: true,
    },
    Table {
        name: "target_facts",
        columns: &[
            ("target", Text),
            ("api", Text),
            ("fell_back_at", Int),
            ("native_policy", Text),
            ("billing", Text),
            ("checked_at", Int),
        ],
        order_by: "target",
        has_id: false,
    },
];

/// The tables of a database that are not copied: the lease, and sqlx's record of migrations
/// (the target has its own).
#[cfg(test)]
pub(super) const NOT_COPIED: [&str; 2] = ["leases", "_sqlx_migrations"];

/// Rows per read from the source and per write to the target.
pub(super) const ROWS_PER_CHUNK: usize = 5_000;

/// One column of a chunk of rows.
#[derive(Debug)]
pub(super) enum Column {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
}

/// A chunk of a table's rows, one vector per column in [`Table::columns`] order.
#[derive(Debug)]
pub(super) struct Rows {
    pub(super) columns: Vec<Column>,
    pub(super) len: usize,
}

/// How many rows of one table were copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: &'static str,
    pub rows: u64,
}

/// Why a copy did not happen. Nothing was written to the target in any case.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(
        "database.url: db copy reads an SQLite database (sqlite://…), and this one is {scheme:?}"
    )]
    SourceNotSqlite { scheme: String },
    #[error("--to: {scheme:?} is not PostgreSQL; write postgres://user@host:5432/database")]
    TargetNotPostgres { scheme: String },
    #[error(
        "{url}: table {table} already has rows; db copy fills only an empty database (create a new one, or drop these tables)"
    )]
    NotEmpty { url: String, table: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Copies every table of the SQLite database `from` (except the lease) into the PostgreSQL
/// database `to`, which is migrated first and must hold no rows in any of them. Returns the
/// rows copied per table, in [`TABLES`] order.
pub async fn sqlite_to_postgres(
    from: &str,
    to: &str,
    clock: &Clock,
) -> Result<Vec<Copied>, CopyError> {
    if scheme(from) != "sqlite" {
        return Err(CopyError::SourceNotSqlite {
            scheme: scheme(from),
        });
    }
    if !matches!(scheme(to).as_str(), "postgres" | "postgresql") {
        return Err(CopyError::TargetNotPostgres { scheme: scheme(to) });
    }
    let source = SqliteBackend::open(from, clock.now_ms()).await?;
    let target = match PgBackend::open(to, clock.now_ms()).await {
        Ok(target) => target,
        Err(err) => {
            Backend::close(&source).await;
            return Err(err.into());
        }
    };
    let copied = copy_tables(&source, &target, to).await;
    Backend::close(&source).await;
    Backend::close(&target).await;
    copied
}

async fn copy_tables(
    source: &SqliteBackend,
    target: &PgBackend,
    to: &str,
) -> Result<Vec<Copied>, CopyError> {
    let mut import = target.import().await?;
    for table in &TABLES {
        if import.has_rows(table).await? {
            return Err(CopyError::NotEmpty {
                url: url_text(to),
                table: table.name,
            });
        }
    }
    let mut export = source.export().await?;
    let mut copied = Vec::with_capacity(TABLES.len());
    for table in &TABLES {
        let mut rows = 0u64;
        let mut chunks = export.rows(table);
        while let Some(chunk) = chunks.try_next().await? {
            rows += chunk.len as u64;
            import.write(table, chunk).await?;
        }
        drop(chunks);
        import.finish(table).await?;
        copied.push(Copied {
            table: table.name,
            rows,
        });
    }
    import.commit().await?;
    Ok(copied)
}
