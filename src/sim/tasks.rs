//! Scan and sync tasks, as `list_image_scan_task` reports them. A task stores, per image,
//! only when its scan ends and how (both fixed when it is submitted, the lifecycle being
//! deterministic), so its progress is computed when it is read and no timer walks the tasks.
//! HSS documents at most 1000 tasks; the oldest go first.

use std::collections::VecDeque;

use serde::Serialize;

use super::dataset::{Dataset, Status};
use super::kind::Kind;
use super::limits;
use super::names::{self, Naming, hash};

/// The `type` of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `image_scan`
    Scan,
    /// `image_sync`
    Sync,
}

impl Family {
    pub fn parse(text: &str) -> Option<Family> {
        match text {
            "image_scan" => Some(Family::Scan),
            "image_sync" => Some(Family::Sync),
            _ => None,
        }
    }
}

/// One image of a scan task: its submission, and how and when that ends.
#[derive(Debug, Clone, Copy)]
pub struct Item {
    pub index: u32,
    pub submitted_ms: i64,
    pub finish_ms: i64,
    pub outcome: Status,
    pub risky: bool,
    /// Taken back by a stop before it finished.
    pub withdrawn: bool,
}

/// An image the task refused at once, with the reason `failed_images` gives.
#[derive(Debug, Clone, Copy)]
pub struct Refused {
    pub index: u32,
    pub reason: &'static str,
}

/// How a scan task ends once its last image has: normally (100), or, when a test asks for
/// it, timed out (-2) or in error (-3), with its images' outcomes counted all the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Ending {
    #[default]
    Normal,
    TimedOut,
    Error,
}

/// A registry a sync task covers.
#[derive(Debug, Clone)]
pub struct SyncedRegistry {
    pub id: String,
    pub name: String,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub name: String,
    pub family: Family,
    /// `manual`, `cycle`, `manualSync` or `autoSync`.
    pub task_type: &'static str,
    pub policy_id: String,
    pub begin_ms: i64,
    pub scan_scope: i64,
    pub rate_limit: i64,
    pub is_all: bool,
    pub items: Vec<Item>,
    pub refused: Vec<Refused>,
    pub registries: Vec<SyncedRegistry>,
    /// Sync tasks: when the sync ends.
    pub sync_end_ms: i64,
    pub stopped_ms: Option<i64>,
    pub ending: Ending,
}

/// A task's counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub total: usize,
    pub success: usize,
    pub failed: usize,
    pub risky: usize,
    /// `task_status`: 0..=100, or -1 when stopped.
    pub status: i64,
    pub end_ms: i64,
    pub remain_min: i64,
}

impl Task {
    pub fn progress(&self, now_ms: i64) -> Progress {
        if self.family == Family::Sync {
            let done = now_ms >= self.sync_end_ms;
            let total = self.registries.len();
            return Progress {
                total,
                success: if done { total } else { 0 },
                status: if done { 100 } else { 0 },
                end_ms: if done { self.sync_end_ms } else { 0 },
                remain_min: if done {
                    0
                } else {
                    ceil_minutes(self.sync_end_ms - now_ms)
                },
                ..Progress::default()
            };
        }
        let total = self.items.len() + self.refused.len();
        let mut p = Progress {
            total,
            failed: self.refused.len(),
            ..Progress::default()
        };
        let mut last_finish = self.begin_ms;
        let mut pending = 0;
        for item in &self.items {
            if item.withdrawn {
                continue;
            }
            if item.finish_ms > now_ms {
                pending += 1;
                last_finish = last_finish.max(item.finish_ms);
                continue;
            }
            last_finish = last_finish.max(item.finish_ms);
            if item.outcome == Status::Success {
                p.success += 1;
                p.risky += usize::from(item.risky);
            } else {
                p.failed += 1;
            }
        }
        if let Some(stopped) = self.stopped_ms {
            p.status = -1;
            p.end_ms = stopped;
        } else if pending == 0 {
            p.status = match self.ending {
                Ending::Normal => 100,
                Ending::TimedOut => -2,
                Ending::Error => -3,
            };
            p.end_ms = last_finish;
        } else {
            // Below 100 until the last image ends, however many are done.
            p.status = ((p.success + p.failed) * 100 / total.max(1)).min(99) as i64;
            p.remain_min = ceil_minutes(last_finish - now_ms);
        }
        p
    }

    /// Finished, stopped or otherwise over: `task_status=finished`.
    pub fn is_finished(&self, now_ms: i64) -> bool {
        let status = self.progress(now_ms).status;
        status == 100 || status < 0
    }
}

fn ceil_minutes(ms: i64) -> i64 {
    (ms.max(0) + 59_999) / 60_000
}

/// `ImageScanTaskInfoFailedImages`.
#[derive(Debug, Serialize)]
pub struct FailedImage {
    pub id: i64,
    pub registry_id: String,
    pub registry_name: String,
    pub image_name: String,
    pub image_version: String,
    pub namespace: String,
    pub registry_type: &'static str,
    pub failed_reason: &'static str,
}

/// `ImageScanTaskInfo`, every field in its order.
#[derive(Debug, Serialize)]
pub struct TaskView {
    pub task_id: String,
    pub policy_id: String,
    pub task_name: String,
    pub begin_time: i64,
    pub end_time: i64,
    pub remain_min: i64,
    pub task_type: &'static str,
    pub image_type: &'static str,
    pub task_status: i64,
    pub scan_scope: i64,
    pub rate_limit: i64,
    pub is_all: bool,
    pub failed_num: usize,
    pub success_num: usize,
    pub total_num: usize,
    pub risky_num: usize,
    pub sync_task_type: &'static str,
    pub failed_reason: &'static str,
    pub failed_images: Vec<FailedImage>,
}

/// Why a lifecycle failure failed, as `failed_reason` says it.
fn reason_of(outcome: Status) -> &'static str {
    match outcome {
        Status::ImageOversized => "image_over_sized",
        _ => "failed_to_scan_vulnerability",
    }
}

impl Task {
    pub fn view(&self, dataset: &Dataset, now_ms: i64) -> TaskView {
        let p = self.progress(now_ms);
        let failed_image = |index: u32, reason: &'static str| {
            let i = index as usize;
            let registry = dataset.registry_of(i);
            FailedImage {
                id: Dataset::record_id(i),
                registry_id: registry.id.clone(),
                registry_name: registry.name.clone(),
                image_name: dataset.naming.image_name(i),
                image_version: Naming::image_version(i),
                namespace: dataset.naming.namespace(i),
                registry_type: dataset.kind(i).registry_type(),
                failed_reason: reason,
            }
        };
        let mut failed_images: Vec<FailedImage> = self
            .refused
            .iter()
            .map(|r| failed_image(r.index, r.reason))
            .collect();
        failed_images.extend(
            self.items
                .iter()
                .filter(|i| !i.withdrawn && i.finish_ms <= now_ms && i.outcome != Status::Success)
                .map(|i| failed_image(i.index, reason_of(i.outcome))),
        );
        TaskView {
            task_id: self.id.clone(),
            policy_id: self.policy_id.clone(),
            task_name: self.name.clone(),
            begin_time: self.begin_ms,
            end_time: p.end_ms,
            remain_min: p.remain_min,
            task_type: self.task_type,
            image_type: "registry",
            task_status: p.status,
            scan_scope: self.scan_scope,
            rate_limit: self.rate_limit,
            is_all: self.is_all,
            failed_num: p.failed,
            success_num: p.success,
            total_num: p.total,
            risky_num: p.risky,
            sync_task_type: if self.family == Family::Sync {
                self.task_type
            } else {
                ""
            },
            failed_reason: match p.status {
                -1 => "stopped by the user",
                -2 => "response_timed_out",
                -3 => "database_error",
                _ => "",
            },
            failed_images,
        }
    }
}

/// The filters of `list_image_scan_task`, validated.
#[derive(Debug, Clone, Default)]
pub struct TaskQuery<'a> {
    pub family: Option<Family>,
    pub task_type: Option<&'a str>,
    pub task_name: Option<&'a str>,
    pub task_id: Option<&'a str>,
    /// Tasks that began at or after this time (the documentation does not say whether it is
    /// an exact match or a bound; a lower bound is what a poller can use).
    pub created_from: Option<i64>,
    /// Tasks that ended at or before this time (running tasks have not ended).
    pub ended_by: Option<i64>,
    /// `Some(true)`: only finished (or stopped) tasks; `Some(false)`: only running ones.
    pub finished: Option<bool>,
    pub scan_scope: Option<i64>,
}

/// Every task, newest last.
#[derive(Debug)]
pub struct Tasks {
    list: VecDeque<Task>,
    created: u64,
    seed: u64,
}

impl Tasks {
    pub fn new(seed: u64) -> Self {
        Self {
            list: VecDeque::new(),
            created: 0,
            seed,
        }
    }

    /// A fresh task id (a UUID, unique per simulator).
    pub fn next_id(&mut self) -> String {
        self.created += 1;
        let h = hash(self.seed, self.created, names::SALT_TASK);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            h >> 32,
            (h >> 16) & 0xffff,
            h & 0xfff,
            0x8000 | (self.created & 0x3fff),
            names::mix(h) & 0xffff_ffff_ffff
        )
    }

    pub fn push(&mut self, task: Task) {
        self.list.push_back(task);
        while self.list.len() > limits::MAX_TASKS {
            self.list.pop_front();
        }
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Task> {
        self.list.iter_mut().find(|t| t.id == id)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Matching tasks, newest first.
    pub fn matching<'t>(
        &'t self,
        q: &'t TaskQuery<'_>,
        now_ms: i64,
    ) -> impl Iterator<Item = &'t Task> + 't {
        self.list.iter().rev().filter(move |t| {
            q.family.is_none_or(|f| t.family == f)
                && q.task_type.is_none_or(|tt| t.task_type == tt)
                && q.task_name.is_none_or(|n| t.name.contains(n))
                && q.task_id.is_none_or(|id| t.id == id)
                && q.created_from.is_none_or(|c| t.begin_ms >= c)
                && q.scan_scope.is_none_or(|s| t.scan_scope == s)
                && q.ended_by.is_none_or(|e| {
                    let end = t.progress(now_ms).end_ms;
                    end > 0 && end <= e
                })
                && q.finished.is_none_or(|f| t.is_finished(now_ms) == f)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(items: Vec<Item>) -> Task {
        Task {
            id: "t".into(),
            name: "n".into(),
            family: Family::Scan,
            task_type: "manual",
            policy_id: String::new(),
            begin_ms: 0,
            scan_scope: limits::SCAN_SCOPE_ALL,
            rate_limit: 0,
            is_all: false,
            items,
            refused: vec![Refused {
                index: 9,
                reason: "multi-architecture images cannot be scanned",
            }],
            registries: Vec::new(),
            sync_end_ms: 0,
            stopped_ms: None,
            ending: Ending::Normal,
        }
    }

    fn item(finish_ms: i64, outcome: Status) -> Item {
        Item {
            index: 0,
            submitted_ms: 0,
            finish_ms,
            outcome,
            risky: true,
            withdrawn: false,
        }
    }

    #[test]
    fn progress_counts_what_has_ended() {
        let t = task(vec![
            item(10, Status::Success),
            item(20, Status::Failed),
            item(30, Status::Success),
        ]);
        assert_eq!(
            t.progress(15),
            Progress {
                total: 4,
                success: 1,
                failed: 1,
                risky: 1,
                status: 50,
                end_ms: 0,
                remain_min: 1,
            }
        );
        let done = t.progress(30);
        assert_eq!(
            (done.status, done.success, done.failed, done.end_ms),
            (100, 2, 2, 30)
        );
        assert!(t.is_finished(30) && !t.is_finished(29));
        let mut stopped = t.clone();
        stopped.stopped_ms = Some(12);
        stopped.items[2].withdrawn = true;
        assert_eq!(stopped.progress(40).status, -1);
        assert_eq!(stopped.progress(40).success, 1);
        let mut timed_out = t.clone();
        timed_out.ending = Ending::TimedOut;
        assert_eq!(
            (timed_out.progress(29).status, timed_out.progress(30).status),
            (75, -2)
        );
        timed_out.ending = Ending::Error;
        assert!(timed_out.is_finished(30));
        assert_eq!(timed_out.progress(30).status, -3);
    }

    #[test]
    fn at_most_the_documented_number_of_tasks_is_kept() {
        let mut tasks = Tasks::new(1);
        for _ in 0..limits::MAX_TASKS + 5 {
            let mut t = task(Vec::new());
            t.id = tasks.next_id();
            tasks.push(t);
        }
        assert_eq!(tasks.len(), limits::MAX_TASKS);
        let q = TaskQuery::default();
        let ids: Vec<&str> = tasks.matching(&q, 0).map(|t| t.id.as_str()).collect();
        let unique: std::collections::HashSet<&&str> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }
}
