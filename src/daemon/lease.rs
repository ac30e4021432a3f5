//! The daemon's side of the leader lease: renew it (or try to take it) every
//! `daemon.lease_renew_every`, say when it changes hands, and sync on taking it over so that
//! the new leader starts from what HSS shows (and reconciles what the last leader sent).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Daemon;
use crate::domain::Job;
use crate::leader::{Turn, lease_time};

impl Daemon {
    /// One look at the lease: renewed, taken, lost or held by another; metrics and logs
    /// follow. `startup`: the first look, whose sync follows `daemon.sync_on_start`.
    pub(super) async fn refresh_lease(self: &Arc<Self>, startup: bool) {
        let app = self.app();
        let turn = self.leadership.refresh(&app.store).await;
        let last_term = self
            .seen_term
            .swap(term_of(&turn).unwrap_or(-1), Ordering::SeqCst);
        match turn {
            Turn::Became(fence) => {
                tracing::info!(
                    term = fence.term,
                    holder = self.leadership.holder(),
                    "this replica is now the leader: it syncs and scans"
                );
                self.metrics.set_lease(true, fence.term, true);
                if !startup || app.settings.daemon.sync_on_start {
                    let trigger = if startup { "startup" } else { "leader" };
                    tokio::spawn(Arc::clone(self).run_job(Job::Sync, trigger));
                }
            }
            Turn::Kept(fence) => self.metrics.set_lease(true, fence.term, false),
            Turn::Lost { term, now } => {
                match &now {
                    Some(lease) if lease.holder != self.leadership.holder() => tracing::warn!(
                        term,
                        leader = %lease.holder,
                        leader_term = lease.term,
                        "this replica lost the leader lease to another; it stands by"
                    ),
                    _ => tracing::warn!(
                        term,
                        "this replica's leader lease expired before it was renewed; it stands by"
                    ),
                }
                let seen = now.as_ref().map_or(term, |l| l.term);
                self.metrics.set_lease(false, seen, seen != term);
            }
            Turn::Standby(lease) => {
                let changed = lease.term != last_term;
                if changed {
                    tracing::info!(
                        leader = %lease.holder,
                        term = lease.term,
                        until = %lease_time(lease.expires_at),
                        "another replica is the leader; this one stands by"
                    );
                }
                self.metrics
                    .set_lease(false, lease.term, changed && last_term >= 0);
            }
            Turn::Unknown(err) => {
                // Keep the term seen before: nothing is known to have changed.
                self.seen_term.store(last_term, Ordering::SeqCst);
                let holding = self.leadership.fence(self.clock.now_ms()).is_some();
                tracing::warn!(
                    error = %err,
                    holding,
                    "cannot reach the database to renew or take the leader lease; trying again"
                );
                self.metrics.set_lease(holding, last_term.max(0), false);
            }
        }
    }

    /// Looks at the lease every `daemon.lease_renew_every` until the daemon stops.
    pub(super) async fn keep_lease(self: Arc<Self>) {
        loop {
            let every = self.app().settings.daemon.lease_renew_every;
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = self.shutdown.requested() => return,
            }
            self.refresh_lease(false).await;
        }
    }
}

fn term_of(turn: &Turn) -> Option<i64> {
    match turn {
        Turn::Became(f) | Turn::Kept(f) => Some(f.term),
        Turn::Lost { term, now } => Some(now.as_ref().map_or(*term, |l| l.term)),
        Turn::Standby(l) => Some(l.term),
        Turn::Unknown(_) => None,
    }
}
