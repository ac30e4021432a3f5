//! Following the scan tasks HSS made of our submissions (current API): after reconciliation,
//! each task of a target not yet seen to end is asked for its progress; the progress, and the
//! images the task says failed, are recorded against its batch. The images' own outcomes still
//! come from the listing (reconciliation); a task says how the call as a whole went.

use std::time::Duration;

use serde::Serialize;

use super::TargetApi;
use crate::domain::clock::ms;
use crate::domain::{Clock, TaskOutcome};
use crate::store::{Store, StoreError};

/// Tasks older than this are no longer asked about: HSS keeps at most 1000 tasks, so an old
/// one may be gone for good, and asking for it every sync would cost a call forever.
pub const FOLLOW_FOR: Duration = Duration::from_secs(7 * 24 * 3600);

/// What one round of following did for a target.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TasksFollowed {
    /// Tasks seen to end this round, by how.
    pub ended: Vec<TaskOutcome>,
    pub running: usize,
    /// Tasks HSS no longer lists.
    pub missing: usize,
    /// Why a task could not be read, if one could not.
    pub error: Option<String>,
}

/// Asks HSS for the progress of every open task of `api`'s target.
#[tracing::instrument(skip_all, fields(target = %api.target.name))]
pub async fn follow(
    store: &Store,
    api: &TargetApi,
    clock: &Clock,
) -> Result<TasksFollowed, StoreError> {
    let mut followed = TasksFollowed::default();
    let oldest = clock.now_ms().saturating_sub(ms(FOLLOW_FOR));
    for open in store.open_tasks(&api.target.name).await? {
        if open.created_at < oldest {
            continue;
        }
        match api.scans.task(&open.task_id).await {
            Ok(Some(task)) => {
                store.record_task(open.batch_id, &task).await?;
                match task.outcome() {
                    Some(outcome) => {
                        if outcome != TaskOutcome::Finished {
                            tracing::warn!(
                                task = %task.task_id,
                                batch = open.batch_id,
                                outcome = outcome.as_str(),
                                "an HSS scan task did not finish; the next syncs show which \
                                 images were scanned"
                            );
                        }
                        followed.ended.push(outcome);
                    }
                    None => followed.running += 1,
                }
            }
            Ok(None) => followed.missing += 1,
            Err(err) => {
                // The next sync asks again; one failure says the rest would fail too.
                followed.error = Some(format!("cannot read scan task {}: {err}", open.task_id));
                break;
            }
        }
    }
    Ok(followed)
}
