//! `leases`: the leader lease. Taken, renewed and released in write transactions, which on
//! SQLite hold the database's one write lock from their first statement: no two replicas
//! can both see a lease free and both take it.

use async_trait::async_trait;

use super::{Context, SqliteBackend};
use crate::store::{Fence, LeaseAttempt, LeaseState, Leases, StoreError};

/// The one lease there is.
pub(super) const LEADER: &str = "leader";

#[async_trait]
impl Leases for SqliteBackend {
    #[tracing::instrument(skip_all, err)]
    async fn acquire_lease(
        &self,
        holder: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<LeaseAttempt, StoreError> {
        let mut tx = self.write().await?;
        let current = read_lease(&mut tx).await?;
        let expires_at = now.saturating_add(ttl_ms);
        let term = match &current {
            // Ours and still valid: extended, same term.
            Some(lease) if lease.holder == holder && lease.expires_at > now => {
                sqlx::query("UPDATE leases SET expires_at = ? WHERE name = ?")
                    .bind(expires_at)
                    .bind(LEADER)
                    .execute(&mut *tx)
                    .await
                    .context("extend the lease")?;
                lease.term
            }
            // Someone else's and still valid.
            Some(lease) if lease.expires_at > now => {
                return Ok(LeaseAttempt::HeldBy(lease.clone()));
            }
            // Expired (ours too: a replica that lost it while paused starts a new term).
            Some(lease) => {
                let term = lease.term + 1;
                sqlx::query(
                    "UPDATE leases SET holder = ?, term = ?, acquired_at = ?, expires_at = ? \
                     WHERE name = ?",
                )
                .bind(holder)
                .bind(term)
                .bind(now)
                .bind(expires_at)
                .bind(LEADER)
                .execute(&mut *tx)
                .await
                .context("take over the lease")?;
                term
            }
            None => {
                sqlx::query(
                    "INSERT INTO leases (name, holder, term, acquired_at, expires_at) \
                     VALUES (?, ?, 1, ?, ?)",
                )
                .bind(LEADER)
                .bind(holder)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *tx)
                .await
                .context("take the lease")?;
                1
            }
        };
        tx.commit().await.context("take the lease")?;
        Ok(LeaseAttempt::Held(Fence {
            holder: holder.to_owned(),
            term,
            expires_at,
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn renew_lease(
        &self,
        fence: &Fence,
        ttl_ms: i64,
        now: i64,
    ) -> Result<Option<Fence>, StoreError> {
        let expires_at = now.saturating_add(ttl_ms);
        let mut tx = self.write().await?;
        let renewed = sqlx::query(
            "UPDATE leases SET expires_at = ? \
             WHERE name = ? AND holder = ? AND term = ? AND expires_at > ?",
        )
        .bind(expires_at)
        .bind(LEADER)
        .bind(&fence.holder)
        .bind(fence.term)
        .bind(now)
        .execute(&mut *tx)
        .await
        .context("renew the lease")?
        .rows_affected();
        tx.commit().await.context("renew the lease")?;
        Ok((renewed == 1).then(|| Fence {
            expires_at,
            ..fence.clone()
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn release_lease(&self, fence: &Fence, now: i64) -> Result<(), StoreError> {
        self.write_one(
            sqlx::query(
                "UPDATE leases SET expires_at = ? \
                 WHERE name = ? AND holder = ? AND term = ? AND expires_at > ?",
            )
            .bind(now)
            .bind(LEADER)
            .bind(&fence.holder)
            .bind(fence.term)
            .bind(now),
            "release the lease",
        )
        .await
    }

    #[tracing::instrument(skip_all, err)]
    async fn lease(&self) -> Result<Option<LeaseState>, StoreError> {
        let mut conn = self.reader.acquire().await.context("read the lease")?;
        read_lease(&mut conn).await
    }
}

/// The lease row, if anyone ever took it.
pub(super) async fn read_lease(
    conn: &mut sqlx::SqliteConnection,
) -> Result<Option<LeaseState>, StoreError> {
    sqlx::query_as("SELECT holder, term, acquired_at, expires_at FROM leases WHERE name = ?")
        .bind(LEADER)
        .fetch_optional(conn)
        .await
        .context("read the lease")
}

/// Whether `fence` holds the lease at `now`, read inside the caller's transaction: the check
/// and the write it guards commit together. The lease as it stands when it does not.
pub(super) async fn check_fence(
    conn: &mut sqlx::SqliteConnection,
    fence: &Fence,
    now: i64,
) -> Result<Result<(), Option<LeaseState>>, StoreError> {
    let lease = read_lease(conn).await?;
    Ok(match lease {
        Some(l) if l.is_held_by(fence, now) => Ok(()),
        other => Err(other),
    })
}
