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
//! page cache while a sync writes, a first load that builds the key index once at its end
//! ([`images`]), and runs owned by `pid:start-time` so that a run left `running` by a dead
//! process is told apart from one in progress ([`super::owner`]).

mod candidates;
mod export;
mod images;
mod leases;
mod listings;
mod runs;
mod submissions;

use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions as _, Sqlite, SqlitePool, Transaction};

use super::owner::ProcessOwner;
use super::{Backend, Context, StoreError};
use crate::config::redact::url_text;

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
/// When a writer's statement is slow enough to warn about. The writer's bulk statements (a
/// first load's index build, a migration's table rebuild) take seconds at a million images,
/// and sqlx's default of one second warned on every healthy first sync; readers keep it.
const WRITER_SLOW_STATEMENT: Duration = Duration::from_secs(10);
const READERS: u32 = 4;

/// An SQLite database, opened and migrated.
#[derive(Debug)]
pub(super) struct SqliteBackend {
    writer: SqlitePool,
    reader: SqlitePool,
    owner: ProcessOwner,
    /// This process dropped the key index for a first load and builds it when the load ends;
    /// still set if that build failed, so that its next sync builds it.
    first_load: AtomicBool,
}

impl SqliteBackend {
    /// Opens (creating it if needed) and migrates the database at `url`
    /// (`sqlite://path/to/file.db`), then marks runs left `running` by a dead process as
    /// interrupted at `now`.
    #[tracing::instrument(skip_all, err, fields(url = %url_text(url)))]
    pub(super) async fn open(url: &str, now: i64) -> Result<SqliteBackend, StoreError> {
        // The URL is named in errors and logs with any password in it redacted, as
        // `config check` shows it.
        let open_err = |source| StoreError::Open {
            url: url_text(url),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_err)?
            .create_if_missing(true)
            // A new database gets 16 KiB pages rather than 4: the scan and the sync move
            // through the inventory in row order, and a page read or written is a system
            // call, which at 4 KiB was a sixth of a million-image `once`. An existing
            // database keeps the page size it was created with.
            .page_size(16384)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("temp_store", "memory");
        create_private(options.get_filename()).map_err(|source| StoreError::Open {
            url: url_text(url),
            source: sqlx::Error::Io(source),
        })?;
        let writer = migrated_writer(&options, url).await?;
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
            first_load: AtomicBool::new(false),
        };
        backend.restore_key_index().await?;
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

/// Creates the database file readable and writable by its owner only, whatever the umask,
/// unless it exists. SQLite gives its `-wal` and `-shm` files the database file's
/// permissions, so they are private too. An in-memory database has no file.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if path.as_os_str().is_empty() || path == std::path::Path::new(":memory:") {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// The writer connection, with the schema migrated. Two commands started together on a new
/// database both create it and both migrate it. SQLite refuses the loser's lock upgrade at
/// once ("database is locked") instead of waiting, and a migration the other process applied
/// after this one read the list fails ("table images already exists"); either way that
/// attempt is made again, with a growing pause, for as long as a busy database is waited for
/// anywhere else. Retrying is safe: sqlx applies each migration and records it in one
/// transaction, so none is applied twice; the one migration that cannot run in a transaction
/// (0012, a table rebuild with foreign keys off) is harmless to apply twice.
async fn migrated_writer(
    options: &SqliteConnectOptions,
    url: &str,
) -> Result<SqlitePool, StoreError> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(20);
    loop {
        match try_migrated_writer(options, url).await {
            Ok(writer) => return Ok(writer),
            Err(Attempt { error, contended })
                if (contended || is_busy(&error)) && started.elapsed() < BUSY_TIMEOUT =>
            {
                tracing::debug!(error = %error, "another process is creating or migrating the database; waiting");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(Attempt { error, .. }) => return Err(error),
        }
    }
}

/// A failed attempt at [`try_migrated_writer`].
struct Attempt {
    error: StoreError,
    /// Another process applied migrations while this one tried: worth another try.
    contended: bool,
}

async fn try_migrated_writer(
    options: &SqliteConnectOptions,
    url: &str,
) -> Result<SqlitePool, Attempt> {
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            options
                .clone()
                .pragma("cache_size", format!("-{WRITER_CACHE_KIB}"))
                .log_slow_statements(log::LevelFilter::Warn, WRITER_SLOW_STATEMENT),
        )
        .await
        .map_err(|source| Attempt {
            error: StoreError::Open {
                url: url_text(url),
                source,
            },
            contended: false,
        })?;
    let applied_before = applied_migrations(&writer).await;
    let migrated = sqlx::migrate!("./migrations/sqlite").run(&writer).await;
    if let Err(source) = migrated {
        let contended = applied_migrations(&writer).await > applied_before;
        writer.close().await;
        return Err(Attempt {
            error: StoreError::Migrate {
                url: url_text(url),
                source,
            },
            contended,
        });
    }
    Ok(writer)
}

/// How many migrations the database has recorded (0 before the first).
async fn applied_migrations(writer: &SqlitePool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(writer)
        .await
        .unwrap_or(0)
}

/// SQLite's "database is locked" (SQLITE_BUSY), however sqlx wrapped it.
fn is_busy(err: &StoreError) -> bool {
    let text = match err {
        StoreError::Open { source, .. } => source.to_string(),
        StoreError::Migrate { source, .. } => source.to_string(),
        _ => return false,
    };
    text.contains("database is locked") || text.contains("database is busy")
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
// `images`, `Candidates` in `candidates`, `Submissions` in `submissions`, `RunLog` in `runs`,
// `Listings` in `listings`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Backend;

    async fn page_size(backend: &SqliteBackend) -> i64 {
        sqlx::query_scalar("PRAGMA page_size")
            .fetch_one(&backend.reader)
            .await
            .expect("read the page size")
    }

    /// A new database gets 16 KiB pages; one created with SQLite's default 4 KiB keeps them,
    /// and opens and migrates as before.
    #[tokio::test]
    async fn new_databases_get_16_kib_pages_and_existing_ones_keep_theirs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = |name: &str| format!("sqlite://{}", dir.path().join(name).display());

        let new = SqliteBackend::open(&url("new.db"), 0).await.expect("open");
        assert_eq!(page_size(&new).await, 16384);
        Backend::close(&new).await;

        let mut plain = SqliteConnectOptions::from_str(&url("old.db"))
            .expect("url")
            .create_if_missing(true)
            .connect()
            .await
            .expect("create with SQLite's defaults");
        sqlx::query("CREATE TABLE before_us (x)")
            .execute(&mut plain)
            .await
            .expect("write a page");
        sqlx::Connection::close(plain).await.expect("close");
        let old = SqliteBackend::open(&url("old.db"), 0)
            .await
            .expect("an existing database opens");
        assert_eq!(page_size(&old).await, 4096);
        Backend::close(&old).await;
    }

    /// The bundled SQLite is built without SQLITE_ENABLE_MEMORY_MANAGEMENT
    /// (`.cargo/config.toml`). With it, all connections share one page cache, and once the
    /// readers had filled it the writer kept none of its pages: every row it looked up read
    /// an index page again from the file.
    #[tokio::test]
    async fn sqlite_connections_keep_their_own_page_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("a.db").display());
        let backend = SqliteBackend::open(&url, 0).await.expect("open");
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(&backend.reader)
            .await
            .expect("read the compile options");
        assert!(
            options.iter().any(|o| o.starts_with("THREADSAFE=")),
            "the compile options were read: {options:?}"
        );
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "SQLite was built with ENABLE_MEMORY_MANAGEMENT: {options:?}"
        );
        Backend::close(&backend).await;
    }
}
