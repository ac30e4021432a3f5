//! The pipeline, in data-flow order: [`account`] reads what each target's HSS project says
//! about itself, [`sync`] pages HSS's image list into the inventory (all of it, or what
//! changed, as [`listing`] decides), [`reconcile`] moves our submissions on after a complete
//! sync and [`tasks`] follows the scan tasks HSS made of them, [`plan`] streams the inventory through the pure policy, and [`submit`] cuts the plan
//! into batches for HSS. No stage imports a later one; this file is the only place that
//! sequences them, and the daemon and the CLI only decide when.

pub mod account;
pub mod listing;
pub mod plan;
pub mod reconcile;
pub mod report;
pub mod submit;
pub mod sync;
pub mod tasks;

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Settings;
use crate::domain::{Clock, Shutdown, Target};
use crate::hss::{AccountFacts, ImageSource, ScanSubmitter};
use crate::policy::Plan;
use crate::store::{Fence, Store, StoreError};

use report::{ScanReport, SyncAllReport};

/// A configured target and the ports that reach its HSS project.
#[derive(Clone)]
pub struct TargetApi {
    pub target: Target,
    pub images: Arc<dyn ImageSource>,
    pub scans: Arc<dyn ScanSubmitter>,
    pub facts: Arc<dyn AccountFacts>,
}

impl fmt::Debug for TargetApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargetApi")
            .field("target", &self.target.name)
            .finish_non_exhaustive()
    }
}

/// What the jobs run against: the settings in force, the store, every target's ports, the
/// clock, when this process started (ms), and what it remembers of its listings.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline<'a> {
    pub settings: &'a Settings,
    pub store: &'a Store,
    pub targets: &'a [TargetApi],
    pub clock: &'a Clock,
    pub started_at: i64,
    pub listings: &'a listing::ListingMemory,
}

impl Pipeline<'_> {
    /// Syncs every target, one after the other, and reconciles each complete listing. A
    /// target whose listing fails does not stop the others; only a database failure does.
    pub async fn sync_all(&self, shutdown: &Shutdown) -> Result<SyncAllReport, StoreError> {
        let bulk = self.store.bulk_writes().await?;
        let result = self.sync_targets(shutdown).await;
        // The sync's own error, if any, is the one worth reporting.
        let restored = bulk.finish().await;
        result.and_then(|all| restored.map(|()| all))
    }

    async fn sync_targets(&self, shutdown: &Shutdown) -> Result<SyncAllReport, StoreError> {
        let mut all = SyncAllReport::default();
        let grace = self.settings.policy.submit_grace;
        let options = sync::SyncOptions::from_settings(self.settings);
        for api in self.targets {
            if shutdown.is_requested() {
                all.stopped_before.push(api.target.name.clone());
                continue;
            }
            let started = Instant::now();
            all.surveys
                .push(account::survey(self.store, api, self.clock, self.started_at).await?);
            let reports = sync::sync_target(
                self.store,
                &api.images,
                &api.target,
                options,
                self.clock,
                self.listings,
            )
            .await?;
            for mut report in reports {
                if report.outcome == crate::store::SyncOutcome::Complete {
                    let seen = match report.listing.kind {
                        crate::store::ListingKind::Full => reconcile::Seen::Everything,
                        crate::store::ListingKind::Incremental => reconcile::Seen::Changes,
                    };
                    report.reconciled = Some(
                        reconcile::reconcile(
                            self.store,
                            &report.target,
                            &report.image_type,
                            report.started_at,
                            grace,
                            self.settings.hss.signed_request_lifetime,
                            seen,
                        )
                        .await?,
                    );
                }
                all.reports.push(report);
            }
            let followed = tasks::follow(self.store, api, self.clock).await?;
            all.tasks.push((api.target.name.clone(), followed));
            all.took.push((api.target.name.clone(), started.elapsed()));
        }
        Ok(all)
    }

    /// Reads what every target's project says about itself (at start-up; every sync does it
    /// too). A failure is logged: it stops nothing.
    pub async fn survey_all(&self) -> Result<Vec<account::Survey>, StoreError> {
        let mut surveys = Vec::with_capacity(self.targets.len());
        for api in self.targets {
            surveys.push(account::survey(self.store, api, self.clock, self.started_at).await?);
        }
        Ok(surveys)
    }

    /// The plan from what the database holds now.
    pub async fn plan(&self) -> Result<Plan, StoreError> {
        let targets: Vec<Target> = self.targets.iter().map(|t| t.target.clone()).collect();
        plan::plan(
            self.store,
            &targets,
            &self.settings.policy,
            self.clock.now_ms(),
        )
        .await
    }

    /// Plans from the database and submits the due images, as the holder of the leader
    /// lease `fence` names.
    pub async fn scan(&self, shutdown: &Shutdown, fence: &Fence) -> Result<ScanReport, StoreError> {
        let plan = self.plan().await?;
        let report = submit::submit(
            self.store,
            self.targets,
            plan,
            self.settings.policy.batch_size,
            fence,
            shutdown,
        )
        .await?;
        tracing::info!(
            due = report.due,
            due_before_caps = report.due_before_caps,
            batches = report.batches.len(),
            submitted = report.submitted(),
            stopped = report.stopped.as_deref().unwrap_or(""),
            "scan finished"
        );
        Ok(report)
    }
}

#[cfg(test)]
mod tests;
