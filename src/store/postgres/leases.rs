//! `leases`: the leader lease, with the semantics of `sqlite/leases.rs`. SQLite serialises
//! every writer; here many processes write at once, so each step is one atomic statement or
//! holds the lease row locked (River's `river_leader` does the same):
//! - taking it is one upsert that writes only when the lease is free, expired or already
//!   ours, and locks the row either way, so that reading who holds it after a refusal reads
//!   what refused it;
//! - renewing and releasing are single conditional updates;
//! - recording a batch reads the row `FOR UPDATE` ([`check_fence`]) and keeps it locked
//!   until the batch commits, so the lease cannot change hands in between.

use async_trait::async_trait;

use super::{Context, PgBackend};
use crate::store::{Fence, LeaseAttempt, LeaseState, Leases, StoreError};

/// The one lease there is.
const LEADER: &str = "leader";

/// Takes the lease for `$2` until `$4` at `$3`: a new row with term 1; or, when the row's
/// lease has expired or is already `$2`'s, the row rewritten — the same term and start when
/// `$2` extends a lease it still holds, the next term and a new start otherwise (another
/// holder, or `$2` coming back after its lease expired). Returns nothing when another holder's
/// lease is still valid. `ON CONFLICT DO UPDATE` locks the row even when its `WHERE` refuses.
const ACQUIRE: &str = "INSERT INTO leases (name, holder, term, acquired_at, expires_at) \
     VALUES ($1, $2, 1, $3, $4) \
     ON CONFLICT (name) DO UPDATE SET \
     term = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > $3 \
         THEN leases.term ELSE leases.term + 1 END, \
     acquired_at = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > $3 \
         THEN leases.acquired_at ELSE excluded.acquired_at END, \
     holder = excluded.holder, \
     expires_at = excluded.expires_at \
     WHERE leases.expires_at <= $3 OR leases.holder = excluded.holder \
     RETURNING term";

#[async_trait]
impl Leases for PgBackend {
    #[tracing::instrument(skip_all, err)]
    async fn acquire_lease(
        &self,
        holder: &str,
        ttl_ms: i64,
        now: i64,
    ) -> Result<LeaseAttempt, StoreError> {
        let expires_at = now.saturating_add(ttl_ms);
        let mut tx = self.pool.begin().await.context("take the lease")?;
        let term: Option<i64> = sqlx::query_scalar(ACQUIRE)
            .bind(LEADER)
            .bind(holder)
            .bind(now)
            .bind(expires_at)
            .fetch_optional(&mut *tx)
            .await
            .context("take the lease")?;
        let attempt = match term {
            Some(term) => LeaseAttempt::Held(Fence {
                holder: holder.to_owned(),
                term,
                expires_at,
            }),
            // Refused: the row exists, is locked by this transaction, and is another's.
            None => LeaseAttempt::HeldBy(read_lease(&mut tx, false).await?.ok_or(
                StoreError::Corrupt {
                    what: "the lease row that refused",
                },
            )?),
        };
        tx.commit().await.context("take the lease")?;
        Ok(attempt)
    }

    #[tracing::instrument(skip_all, err)]
    async fn renew_lease(
        &self,
        fence: &Fence,
        ttl_ms: i64,
        now: i64,
    ) -> Result<Option<Fence>, StoreError> {
        let expires_at = now.saturating_add(ttl_ms);
        let renewed = sqlx::query(
            "UPDATE leases SET expires_at = $1 \
             WHERE name = $2 AND holder = $3 AND term = $4 AND expires_at > $5",
        )
        .bind(expires_at)
        .bind(LEADER)
        .bind(&fence.holder)
        .bind(fence.term)
        .bind(now)
        .execute(&self.pool)
        .await
        .context("renew the lease")?
        .rows_affected();
        Ok((renewed == 1).then(|| Fence {
            expires_at,
            ..fence.clone()
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn release_lease(&self, fence: &Fence, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE leases SET expires_at = $1 \
             WHERE name = $2 AND holder = $3 AND term = $4 AND expires_at > $1",
        )
        .bind(now)
        .bind(LEADER)
        .bind(&fence.holder)
        .bind(fence.term)
        .execute(&self.pool)
        .await
        .context("release the lease")?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn lease(&self) -> Result<Option<LeaseState>, StoreError> {
        let mut conn = self.pool.acquire().await.context("read the lease")?;
        read_lease(&mut conn, false).await
    }
}

/// The lease row, if anyone ever took it; `lock`: and locked until the caller's transaction
/// ends.
async fn read_lease(
    conn: &mut sqlx::PgConnection,
    lock: bool,
) -> Result<Option<LeaseState>, StoreError> {
    let sql = if lock {
        "SELECT holder, term, acquired_at, expires_at FROM leases WHERE name = $1 FOR UPDATE"
    } else {
        "SELECT holder, term, acquired_at, expires_at FROM leases WHERE name = $1"
    };
    sqlx::query_as(sql)
        .bind(LEADER)
        .fetch_optional(conn)
        .await
        .context("read the lease")
}

/// Whether `fence` holds the lease at `now`, read inside the caller's transaction with the
/// row locked until it ends: the check and the write it guards commit together, and no
/// other process takes the lease in between. The lease as it stands when it does not.
pub(super) async fn check_fence(
    conn: &mut sqlx::PgConnection,
    fence: &Fence,
    now: i64,
) -> Result<Result<(), Option<LeaseState>>, StoreError> {
    let lease = read_lease(conn, true).await?;
    Ok(match lease {
        Some(l) if l.holder == fence.holder && l.term == fence.term && l.expires_at > now => Ok(()),
        other => Err(other),
    })
}
