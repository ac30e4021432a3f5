//! The SQLite backend: the embedded default. One file per table family; everything
//! SQLite-specific about how hss-scand stores its state lives in this folder.
//!
//! Set-up follows DESIGN section 3: WAL, `synchronous=NORMAL`, foreign keys, a busy timeout,
//! exactly one writer connection (so writers queue in the pool instead of failing with
//! `SQLITE_BUSY`), readers on their own pool, and write transactions that start with
//! `BEGIN IMMEDIATE` so that a transaction never has to upgrade its lock half-way.
//!
//! Its tricks, private to it: reads packed many rows to a query ([`candidates`],
//! [`images`]), a covering index of the policy's fields packed into one integer, a larger
//! page cache while a sync writes, and runs owned by `pid:start-time` so that a run left
//! `running` by a dead process is told apart from one in progress ([`owner`]).

mod candidates;
mod images;
mod owner;
mod runs;
mod submissions;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqlitePool, Transaction};

use self::owner::ProcessOwner;
use super::{Backend, StoreError};

/// How long a connection waits for a lock held by another process (a CLI command beside the
/// daemon) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Page cache of the writer, in KiB (SQLite's negative `cache_size`). A sync raises it to
/// [`BULK_WRITER_CACHE_KIB`] while it runs, because the default 2 MiB makes inserts into a
/// large inventory's indexes miss the cache, and keeping 16 MiB for the daemon's whole life
/// would be a third of a scan's peak memory.
const WRITER_CACHE_KIB: i64 = 4 * 1024;
const BULK_WRITER_CACHE_KIB: i64 = 16 * 1024;
const READER_CACHE_KIB: i64 = 2 * 1024;
const READERS: u32 = 4;

/// Adds what was being done to a sqlx error.
trait Context<T> {
    fn context(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, sqlx::Error> {
    fn context(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Query { what, source })
    }
}

/// An SQLite database, opened and migrated.
#[derive(Debug)]
pub(super) struct SqliteBackend {
    writer: SqlitePool,
    reader: SqlitePool,
    owner: ProcessOwner,
}

impl SqliteBackend {
    /// Opens (creating it if needed) and migrates the database at `url`
    /// (`sqlite://path/to/file.db`), then marks runs left `running` by a dead process as
    /// interrupted at `now`.
    #[tracing::instrument(skip_all, err, fields(url = %url))]
    pub(super) async fn open(url: &str, now: i64) -> Result<SqliteBackend, StoreError> {
        let open_err = |source| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("temp_store", "memory");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", format!("-{WRITER_CACHE_KIB}")),
            )
            .await
            .map_err(open_err)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|source| StoreError::Migrate {
                url: url.to_owned(),
                source,
            })?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(
                options
                    .read_only(true)
                    .pragma("cache_size", format!("-{READER_CACHE_KIB}")),
            )
            .await
            .map_err(open_err)?;
        let backend = SqliteBackend {
            writer,
            reader,
            owner: ProcessOwner::current(),
        };
        backend
            .close_runs_of_dead_processes(
                "sync_runs",
                "the process stopped while this sync ran",
                now,
            )
            .await?;
        backend
            .close_runs_of_dead_processes(
                "job_runs",
                "the process stopped while this run went on",
                now,
            )
            .await?;
        Ok(backend)
    }

    /// A write transaction that holds the write lock from its first statement.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context("begin a write transaction")
    }

    /// One statement in a write transaction of its own.
    async fn write_one(
        &self,
        query: sqlx::query::Query<'_, Sqlite, SqliteArguments>,
        what: &'static str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        query.execute(&mut *tx).await.context(what)?;
        tx.commit().await.context(what)
    }

    /// The writer's page cache for bulk writes (`true`, a sync) or everyday ones (`false`;
    /// SQLite frees the pages above the new size).
    async fn set_write_cache(&self, bulk: bool) -> Result<(), StoreError> {
        // The writer pool holds one connection, so the setting stays with it.
        sqlx::query(sqlx::AssertSqlSafe(write_cache_pragma(bulk)))
            .execute(&self.writer)
            .await
            .context("resize the write cache")?;
        Ok(())
    }

    /// Marks the `running` rows of `table` (`sync_runs`, `job_runs`) whose owning process
    /// is gone as `interrupted`, with `why` as their error.
    async fn close_runs_of_dead_processes(
        &self,
        table: &'static str,
        why: &'static str,
        now: i64,
    ) -> Result<(), StoreError> {
        let running: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, owner FROM {table} WHERE outcome = 'running'"
        )))
        .fetch_all(&self.writer)
        .await
        .context("find unfinished runs")?;
        let dead: Vec<i64> = running
            .into_iter()
            .filter(|(_, owner)| ProcessOwner::is_dead(owner))
            .map(|(id, _)| id)
            .collect();
        if dead.is_empty() {
            return Ok(());
        }
        let mut tx = self.write().await?;
        let mut q: sqlx::QueryBuilder<Sqlite> = sqlx::QueryBuilder::new(format!(
            "UPDATE {table} SET outcome = 'interrupted', finished_at = "
        ));
        q.push_bind(now)
            .push(", error = ")
            .push_bind(why)
            .push(" WHERE id");
        push_in_list(&mut q, dead.iter().copied());
        q.build()
            .execute(&mut *tx)
            .await
            .context("close interrupted runs")?;
        tx.commit().await.context("close interrupted runs")?;
        tracing::warn!(
            table,
            runs = dead.len(),
            "closed runs whose process had stopped"
        );
        Ok(())
    }
}

fn write_cache_pragma(bulk: bool) -> String {
    let kib = if bulk {
        BULK_WRITER_CACHE_KIB
    } else {
        WRITER_CACHE_KIB
    };
    format!("PRAGMA cache_size = -{kib}")
}

/// Appends ` IN (?, ?, …)` with one bound id each; the caller keeps chunks small enough for
/// SQLite's variable limit.
fn push_in_list(q: &mut sqlx::QueryBuilder<Sqlite>, ids: impl IntoIterator<Item = i64>) {
    q.push(" IN (");
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(id);
    }
    q.push(")");
}

// The rest of the facade's contract is carried out by this folder's files: `Inventory` in
// `images`, `Candidates` in `candidates`, `Submissions` in `submissions`, `RunLog` in `runs`.
#[async_trait]
impl Backend for SqliteBackend {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .context("reach the database")?;
        Ok(())
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}
