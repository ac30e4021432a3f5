//! The leader lease as processes use it: which one of several `hss-scand run` replicas (and
//! one-shot `scan` or `once` commands) on one database may sync and submit.
//!
//! The lease is a row in the database (River's `river_leader`): taken when free or expired,
//! with a term that grows with every new holder, and renewed by its holder. The term is a
//! fencing token (Kleppmann): the transaction that records a batch checks that the lease is
//! still held with it, so a holder that was paused past its lease and wakes up submits
//! nothing. This module decides when to take, renew and give up the lease; the store keeps
//! it and checks it.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::task::AbortOnDropHandle;

use crate::config::DaemonSettings;
use crate::store::{Fence, LeaseAttempt, LeaseState, Store, StoreError};

/// This process's name in the lease: the host, the pid and a random part. Replicas in pods
/// are all pid 1, and a restarted process must not pass for the one before it.
pub fn replica_id() -> String {
    let host = hostname().unwrap_or_else(|| "unknown-host".to_owned());
    format!(
        "{host}/{}/{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

fn hostname() -> Option<String> {
    let mut buf = [0_u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).trim().to_owned();
    (!name.is_empty()).then_some(name)
}

/// An instant of the lease (ms) as operators read it.
pub fn lease_time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

/// Why a one-shot command could not take the lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "the leader lease is held by {} (term {}) until {}: an `hss-scand run` replica is \
         active on this database and submits what is due on its schedule; stop it to scan by \
         hand, or try again after it expires",
        .0.holder, .0.term, lease_time(.0.expires_at)
    )]
    HeldBy(LeaseState),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A one-shot command's hold on the lease for the length of its run: renewed in the
/// background while held, released when the run ends.
#[derive(Debug)]
pub struct RunLease {
    store: Store,
    fence: Fence,
    _renewer: AbortOnDropHandle<()>,
}

impl RunLease {
    /// Takes the lease as `holder`, or says who holds it.
    pub async fn take(
        store: &Store,
        holder: &str,
        settings: &DaemonSettings,
    ) -> Result<RunLease, LeaseError> {
        let fence = match store.acquire_lease(holder, settings.lease_ttl).await? {
            LeaseAttempt::Held(fence) => fence,
            LeaseAttempt::HeldBy(state) => return Err(LeaseError::HeldBy(state)),
        };
        tracing::info!(term = fence.term, "took the leader lease for this run");
        let renewer = tokio::spawn(renew_until_lost(
            store.clone(),
            fence.clone(),
            settings.lease_ttl,
            settings.lease_renew_every,
        ));
        Ok(RunLease {
            store: store.clone(),
            fence,
            _renewer: AbortOnDropHandle::new(renewer),
        })
    }

    /// The fencing token to record batches with.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Gives the lease up at once, so that a daemon replica need not wait for it to expire.
    pub async fn release(self) {
        if let Err(err) = self.store.release_lease(&self.fence).await {
            tracing::warn!(error = %err, "could not give up the leader lease; it expires on its own");
        }
    }
}

/// Renews `fence` every `every` until it is lost (then says so: the store refuses the
/// holder's batches from then on).
async fn renew_until_lost(store: Store, fence: Fence, ttl: Duration, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        match store.renew_lease(&fence, ttl).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::warn!(
                    term = fence.term,
                    "this run lost the leader lease; it submits nothing more"
                );
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not renew the leader lease; trying again")
            }
        }
    }
}

/// How a daemon replica's lease stands after [`Leadership::refresh`].
#[derive(Debug)]
pub enum Turn {
    /// This replica took the lease: a new term.
    Became(Fence),
    /// This replica still holds it.
    Kept(Fence),
    /// This replica held it and no longer does: it expired or another replica took it.
    Lost { term: i64, now: Option<LeaseState> },
    /// Another replica holds it.
    Standby(LeaseState),
    /// The database could not be asked. The lease this replica may hold is trusted until
    /// its expiry as this replica's clock reads it, no longer.
    Unknown(StoreError),
}

/// A daemon replica's side of the lease: what it holds, as far as it knows.
#[derive(Debug)]
pub struct Leadership {
    holder: String,
    ttl: Duration,
    held: Mutex<Option<Fence>>,
}

impl Leadership {
    pub fn new(holder: String, settings: &DaemonSettings) -> Leadership {
        Leadership {
            holder,
            ttl: settings.lease_ttl,
            held: Mutex::new(None),
        }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<Fence>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lease this replica holds at `now` (ms), if it holds one: the fence for a run.
    /// A lease whose renewal could not be confirmed ends at its expiry here too, so a
    /// replica cut off from the database stops starting runs when the others may take over.
    pub fn fence(&self, now: i64) -> Option<Fence> {
        self.held().clone().filter(|f| f.expires_at > now)
    }

    /// Renews the lease this replica holds, or tries to take it.
    pub async fn refresh(&self, store: &Store) -> Turn {
        let held = self.held().clone();
        match held {
            Some(fence) => match store.renew_lease(&fence, self.ttl).await {
                Ok(Some(renewed)) => {
                    *self.held() = Some(renewed.clone());
                    Turn::Kept(renewed)
                }
                Ok(None) => {
                    *self.held() = None;
                    Turn::Lost {
                        term: fence.term,
                        now: store.lease().await.ok().flatten(),
                    }
                }
                Err(err) => Turn::Unknown(err),
            },
            None => match store.acquire_lease(&self.holder, self.ttl).await {
                Ok(LeaseAttempt::Held(fence)) => {
                    *self.held() = Some(fence.clone());
                    Turn::Became(fence)
                }
                Ok(LeaseAttempt::HeldBy(state)) => Turn::Standby(state),
                Err(err) => Turn::Unknown(err),
            },
        }
    }

    /// Gives up the lease this replica holds (a clean stop), so that another takes over at
    /// once rather than after the TTL.
    pub async fn release(&self, store: &Store) {
        let held = self.held().take();
        if let Some(fence) = held
            && let Err(err) = store.release_lease(&fence).await
        {
            tracing::warn!(error = %err, "could not give up the leader lease; it expires on its own");
        }
    }
}
