//! The PostgreSQL backend: for several replicas (or a database run by someone else). One
//! file per table family, as in `sqlite/`; everything PostgreSQL-specific about how
//! hss-scand stores its state lives in this folder.
//!
//! Set-up: a pool of [`POOL_SIZE`] connections whose acquisition gives up after
//! [`ACQUIRE_TIMEOUT`], so that while the database is down every call fails (and `/readyz`
//! says so) instead of hanging; a lock wait and an idle transaction are bounded on the server
//! too ([`SESSION_SETTINGS`]). Migrations run at open under sqlx's advisory migration lock, so
//! replicas that start together migrate once.
//!
//! Its tricks, private to it: many rows read as a few arrays ([`images`], [`candidates`]) and
//! written with `UNNEST` (one statement per few thousand rows, whatever the count, with none
//! of SQLite's variable limits); the lease taken by one atomic upsert and checked under a row
//! lock inside the transaction that records a batch ([`leases`]); and runs owned by
//! `host/pid:start-time`, so that only this machine's dead processes have their runs closed
//! ([`owner`]).

mod candidates;
mod images;
mod import;
mod leases;
mod listings;
mod owner;
mod runs;
mod submissions;

// The integration tests' and benchmarks' helper, so that the three create and drop test
// databases the same way.
#[cfg(test)]
#[path = "../../../tests/support/postgres.rs"]
#[allow(dead_code)]
pub(crate) mod testing;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, PgPool};

use self::owner::RunOwner;
use super::{Backend, Context, StoreError};
use crate::config::redact::url_text;

/// Connections per process: the sync writes from one task and reads the plan two chunks
/// ahead; the daemon's HTTP endpoints and a job may read at the same time.
const POOL_SIZE: u32 = 8;
/// How long a call waits for a connection (and, at open, for the database to answer) before
/// it fails: a database that is down makes calls fail within this, not hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `/readyz` waits for the database to answer (a connection to a host that
/// vanished does not fail, it waits; and while the database is down, acquiring one waits
/// [`ACQUIRE_TIMEOUT`]). Well under the HTTP server's 5 s idle cut and a probe's timeout, so
/// that the probe gets its "not ready" rather than a dropped connection.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Set on every connection. `idle_in_transaction_session_timeout`: the server ends the
/// session of a process paused (SIGSTOP, a VM frozen) or cut off inside a transaction, so
/// that its locks — the lease row above all — are gone within seconds, well inside the
/// default 20 s lease TTL, and another replica can take over. No transaction of hss-scand
/// waits between its statements for anything but the database (or, in `db copy`, a chunk of
/// the SQLite file), so a few seconds never cut a healthy one. `lock_timeout`: a call waiting
/// for a row lock held by a process that hangs outside a transaction's idle time fails
/// rather than waiting forever.
const SESSION_SETTINGS: &str =
    "SET lock_timeout = '10s'; SET idle_in_transaction_session_timeout = '5s'";

/// A PostgreSQL database, opened and migrated.
#[derive(Debug)]
pub(super) struct PgBackend {
    pool: PgPool,
    owner: RunOwner,
}

impl PgBackend {
    /// Opens and migrates the database at `url` (`postgres://user:password@host/db`, with
    /// libpq's parameters such as `sslmode=require`), then marks runs left `running` by a
    /// dead process of this machine as interrupted at `now`.
    #[tracing::instrument(skip_all, err, fields(url = %url_text(url)))]
    pub(super) async fn open(url: &str, now: i64) -> Result<PgBackend, StoreError> {
        let pool = connect(url, ACQUIRE_TIMEOUT).await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate {
                url: url_text(url),
                source,
            })?;
        let backend = PgBackend {
            pool,
            owner: RunOwner::current(),
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

    /// Marks the `running` rows of `table` (`sync_runs`, `job_runs`) whose owning process
    /// ran on this machine and is gone as `interrupted`, with `why` as their error. Runs of
    /// other machines are left alone: whether their process lives cannot be known from here,
    /// and each machine closes its own when hss-scand starts there again.
    async fn close_runs_of_dead_processes(
        &self,
        table: &'static str,
        why: &'static str,
        now: i64,
    ) -> Result<(), StoreError> {
        let running: Vec<(i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, owner FROM {table} WHERE outcome = 'running' AND starts_with(owner, $1)"
        )))
        .bind(self.owner.host_prefix())
        .fetch_all(&self.pool)
        .await
        .context("find unfinished runs")?;
        let dead: Vec<i64> = running
            .into_iter()
            .filter(|(_, owner)| self.owner.is_dead_here(owner))
            .map(|(id, _)| id)
            .collect();
        if dead.is_empty() {
            return Ok(());
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET outcome = 'interrupted', finished_at = $1, error = $2 \
             WHERE id = ANY($3) AND outcome = 'running'"
        )))
        .bind(now)
        .bind(why)
        .bind(&dead)
        .execute(&self.pool)
        .await
        .context("close interrupted runs")?;
        tracing::warn!(
            table,
            runs = dead.len(),
            "closed runs whose process had stopped"
        );
        Ok(())
    }
}

/// The pool for `url`, with one connection made (and kept, for the migration). A database
/// that cannot be reached, or refuses the login, is an error naming it (with any password
/// redacted) and saying why. A refused connection is tried again until `acquire_timeout`
/// (the database may be starting beside hss-scand); the pool then says only that it timed
/// out, so one more attempt finds the reason to report.
async fn connect(url: &str, acquire_timeout: Duration) -> Result<PgPool, StoreError> {
    let open_err = |source| StoreError::Open {
        url: url_text(url),
        source,
    };
    let options = connect_options(url).map_err(open_err)?;
    let pool = pool_options(acquire_timeout).connect_lazy_with(options.clone());
    let first = pool.acquire().await;
    match first {
        Ok(_returned_to_the_pool) => Ok(pool),
        Err(sqlx::Error::PoolTimedOut) => {
            pool.close().await;
            let why = match tokio::time::timeout(acquire_timeout, options.connect()).await {
                Ok(Err(err)) => err,
                Ok(Ok(conn)) => {
                    // Up just now: not worth a second wait; the next start will do.
                    let _ = conn.close().await;
                    sqlx::Error::PoolTimedOut
                }
                Err(_) => sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", acquire_timeout.as_secs_f32()),
                )),
            };
            Err(open_err(why))
        }
        Err(err) => {
            pool.close().await;
            Err(open_err(err))
        }
    }
}

fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url)?
        .application_name("hss-scand")
        // Statements are logged by hss-scand's own spans; sqlx would log each at info.
        .disable_statement_logging())
}

fn pool_options(acquire_timeout: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .min_connections(0)
        .acquire_timeout(acquire_timeout)
        // A connection the server or a proxy closed while idle is found out before use.
        .test_before_acquire(true)
        .idle_timeout(Duration::from_secs(300))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                sqlx::raw_sql(SESSION_SETTINGS).execute(&mut *conn).await?;
                Ok(())
            })
        })
}

// The rest of the facade's contract is carried out by this folder's files: `Inventory` in
// `images`, `Candidates` in `candidates`, `Submissions` in `submissions`, `RunLog` in `runs`,
// `Leases` in `leases`, `Listings` in `listings`.
#[async_trait]
impl Backend for PgBackend {
    async fn ping(&self) -> Result<(), StoreError> {
        let ping = sqlx::query("SELECT 1").execute(&self.pool);
        tokio::time::timeout(PING_TIMEOUT, ping)
            .await
            .map_err(|_| StoreError::Timeout {
                what: "reach the database",
                seconds: PING_TIMEOUT.as_secs(),
            })?
            .context("reach the database")?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener that takes connections and never answers: a database host that went
    /// silent (a cut network, a frozen server), the worst case for a pool.
    async fn silent_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        (address, task)
    }

    #[tokio::test]
    async fn a_call_on_a_silent_database_fails_within_the_acquire_timeout() {
        let (address, server) = silent_server().await;
        let url = format!("postgres://hss:secret@{address}/hss");
        let timeout = Duration::from_millis(500);
        let backend = PgBackend {
            pool: pool_options(timeout).connect_lazy_with(connect_options(&url).expect("url")),
            owner: RunOwner::current(),
        };
        let started = std::time::Instant::now();
        let err = backend.ping().await.expect_err("no answer");
        assert!(started.elapsed() < timeout * 4, "{:?}", started.elapsed());
        assert!(matches!(err, StoreError::Query { .. }), "{err}");
        let started = std::time::Instant::now();
        let err = super::super::Inventory::image_counts(&backend)
            .await
            .expect_err("no answer");
        assert!(started.elapsed() < timeout * 4, "{:?}", started.elapsed());
        assert!(err.to_string().contains("count images"), "{err}");
        server.abort();
    }

    #[tokio::test]
    async fn a_database_that_cannot_be_reached_at_open_is_named_with_why_and_without_its_password()
    {
        // A port nothing listens on: refused, again and again until the timeout.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("address")
            .port();
        let url = format!("postgres://hss:s3cret@127.0.0.1:{port}/hss");
        let started = std::time::Instant::now();
        let err = connect(&url, Duration::from_millis(500))
            .await
            .expect_err("refused");
        let text = err.to_string();
        assert!(matches!(err, StoreError::Open { .. }), "{text}");
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(text.to_lowercase().contains("refused"), "says why: {text}");
        assert!(
            text.contains("[redacted]") && !text.contains("s3cret"),
            "{text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );

        // A server that takes the connection and never answers.
        let (address, server) = silent_server().await;
        let silent = format!("postgres://hss:s3cret@{address}/hss");
        let err = connect(&silent, Duration::from_millis(300))
            .await
            .expect_err("silent");
        let text = err.to_string();
        assert!(text.contains("no answer within 0.3 s"), "{text}");
        assert!(
            text.contains("[redacted]") && !text.contains("s3cret"),
            "{text}"
        );
        server.abort();
    }
}
