//! A moving account: new pushes, re-pushed tags, deletions and scans HSS runs on its own,
//! applied to a share of the live images so that tests and benchmarks can follow a daemon
//! through an account that changes under it. Every change stamps the simulator's current
//! time in ms, so a client's time-window filters find exactly what changed — unless the
//! churn is backdated: then the changes appear now but carry an earlier time, as a record
//! does that HSS learns of late and stamps with the time its registry reported (the spec's
//! warning about `latest_update_time`). A client's windows cannot see such changes, which
//! is what a test of a client's self-check needs.
//!
//! Which images change is drawn from the seed and the number of churn calls so far, so two
//! simulators with the same seed that are asked the same things change the same images. A
//! change touches only the records it picks, plus one pass over the live lists to drop the
//! deleted ones: changing 1 % of a million images costs milliseconds, not a rebuild.

use serde::{Deserialize, Serialize};

use super::dataset::{Dataset, FRESH, MAX_ADDED, SUBMITTED, Status, unit};
use super::names::{self, hash};

/// What one churn does. `share` (0..=1) of the live images changes in all, split evenly
/// over the four kinds of change; counts add to that.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Churn {
    pub share: f64,
    /// New images pushed (same kinds and registries as the account already has).
    pub new: usize,
    /// Existing tags pushed again: new digest and image id, newer `latest_update_time`.
    pub repushed: usize,
    pub deleted: usize,
    /// Images HSS scanned on its own: a new `latest_scan_time` and outcome.
    pub rescanned: usize,
    /// Stamp the changes this long before now (ms, ≥ 0): they are visible at once but their
    /// `latest_update_time`, `latest_sync_time` and `latest_scan_time` lie in the past.
    pub backdate_ms: i64,
}

impl Churn {
    /// The counts, with the share resolved against `live` images.
    fn counts(&self, live: usize) -> [usize; 4] {
        let share = if self.share.is_finite() {
            self.share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let each = (live as f64 * share / 4.0).round() as usize;
        // Changes of existing images are bounded by the account; new ones by MAX_ADDED.
        [
            self.new.saturating_add(each).min(MAX_ADDED),
            self.repushed.saturating_add(each).min(live),
            self.deleted.saturating_add(each).min(live),
            self.rescanned.saturating_add(each).min(live),
        ]
    }
}

/// What a churn changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChurnReport {
    pub new: usize,
    pub repushed: usize,
    pub deleted: usize,
    pub rescanned: usize,
    /// Of the rescans, how many succeeded (billable scans).
    pub rescans_succeeded: usize,
    /// Live images afterwards.
    pub live: usize,
}

impl Dataset {
    /// Applies one churn at `now_ms`.
    pub fn churn(&mut self, churn: &Churn, failure_rate: f64, now_ms: i64) -> ChurnReport {
        let [new, repushed, deleted, rescanned] = churn.counts(self.live_total());
        let stamp = now_ms.saturating_sub(churn.backdate_ms.max(0));
        self.churn_round += 1;
        let round = self.churn_round;
        let mut report = ChurnReport::default();
        // Re-pushes and rescans first, then deletions of images this round left alone, new
        // images at the very end: every change of a round is visible after it.
        let mut touched = std::collections::HashSet::new();
        for index in self.pick(round, 1, repushed, |_, _| true) {
            touched.insert(index);
            let record = &mut self.records[index];
            record.generation = record.generation.wrapping_add(1);
            record.update_ms = stamp;
            record.flags |= FRESH;
            report.repushed += 1;
        }
        let idle =
            |ds: &Dataset, i: usize| ds.is_scannable(i) && !ds.state(i, now_ms).0.in_progress();
        let repushed_set = touched.clone();
        for index in self.pick(round, 2, rescanned, |ds, i| {
            !repushed_set.contains(&i) && idle(ds, i)
        }) {
            touched.insert(index);
            let draw = hash(
                self.naming.seed,
                index as u64,
                names::SALT_OUTCOME ^ (round << 20),
            );
            let record = &mut self.records[index];
            record.flags &= !SUBMITTED;
            record.attempts = record.attempts.saturating_add(1);
            record.latest_scan_ms = stamp;
            record.status = if unit(draw) < failure_rate {
                Status::Failed
            } else {
                report.rescans_succeeded += 1;
                Status::Success
            };
            report.rescanned += 1;
        }
        let victims = self.pick(round, 3, deleted, |_, i| !touched.contains(&i));
        report.deleted = self.delete_indices(&victims);
        let templates = self.pick_with_repeats(round, 4, new);
        for template in templates {
            self.push_like(template, stamp);
            report.new += 1;
        }
        self.version += 1;
        report.live = self.live_total();
        report
    }

    /// Up to `count` distinct live images that pass `accept`, drawn from the seed.
    fn pick(
        &self,
        round: u64,
        salt: u64,
        count: usize,
        accept: impl Fn(&Dataset, usize) -> bool,
    ) -> Vec<usize> {
        let live = self.live_list(None);
        if live.is_empty() || count == 0 {
            return Vec::new();
        }
        let count = count.min(live.len());
        let mut seen = std::collections::HashSet::with_capacity(count);
        let mut picked = Vec::with_capacity(count);
        // Random draws with a bounded number of tries, so a small account or a picky
        // `accept` ends the loop instead of spinning.
        let tries = count.saturating_mul(4).saturating_add(64);
        for n in 0..tries as u64 {
            if picked.len() == count {
                break;
            }
            let draw = hash(
                self.naming.seed,
                (round << 32) ^ n,
                names::SALT_CHURN ^ salt,
            );
            let index = live[(draw % live.len() as u64) as usize] as usize;
            if seen.insert(index) && accept(self, index) {
                picked.push(index);
            }
        }
        picked
    }

    /// `count` live images to copy the kind and registry of (repeats allowed).
    fn pick_with_repeats(&self, round: u64, salt: u64, count: usize) -> Vec<usize> {
        let live = self.live_list(None);
        if live.is_empty() {
            return Vec::new();
        }
        (0..count as u64)
            .map(|n| {
                let draw = hash(
                    self.naming.seed,
                    (round << 32) ^ n,
                    names::SALT_CHURN ^ salt,
                );
                live[(draw % live.len() as u64) as usize] as usize
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Lifecycle;
    use crate::sim::dataset::WireStyle;
    use crate::sim::filter::{Filter, FilterSpec, Window};
    use crate::sim::listing::Order;

    const NOW: i64 = 1_700_000_000_000;

    fn dataset(seed: u64) -> Dataset {
        Dataset::new(
            10_000,
            seed,
            &Lifecycle::default(),
            WireStyle::default(),
            NOW,
        )
    }

    #[test]
    fn a_share_changes_that_many_images_and_stamps_now() {
        let mut ds = dataset(5);
        let later = NOW + 60_000;
        let digest_before: Vec<String> = (0..10_000).map(|i| ds.digest(i)).collect();
        let report = ds.churn(
            &Churn {
                share: 0.04,
                ..Churn::default()
            },
            0.0,
            later,
        );
        assert_eq!(
            (
                report.new,
                report.repushed,
                report.deleted,
                report.rescanned
            ),
            (100, 100, 100, 100)
        );
        assert_eq!(report.live, 10_000);
        assert_eq!(report.rescans_succeeded, 100);
        let window = |update: bool, scan: bool| {
            let spec = FilterSpec {
                update: update.then_some(Window {
                    start: later,
                    end: None,
                }),
                scan: scan.then_some(Window {
                    start: later,
                    end: None,
                }),
                ..FilterSpec::default()
            };
            ds.list(&Filter::new(&spec, &ds), Order::Id, 0, usize::MAX, later)
                .0
        };
        assert_eq!(window(true, false), 200, "re-pushed and new");
        assert_eq!(window(false, true), 100, "rescanned");
        let changed_digests = (0..10_000)
            .filter(|&i| ds.is_live(i) && ds.digest(i) != digest_before[i])
            .count();
        assert_eq!(changed_digests, 100);
    }

    #[test]
    fn a_backdated_churn_is_visible_now_but_stamped_earlier() {
        let mut ds = dataset(6);
        let later = NOW + 3_600_000;
        let report = ds.churn(
            &Churn {
                new: 10,
                repushed: 10,
                rescanned: 10,
                backdate_ms: 1_800_000,
                ..Churn::default()
            },
            0.0,
            later,
        );
        assert_eq!(report.live, 10_010, "the new images are listed at once");
        let count = |start: i64| {
            let window = Some(Window { start, end: None });
            [
                FilterSpec {
                    update: window,
                    ..FilterSpec::default()
                },
                FilterSpec {
                    sync: window,
                    ..FilterSpec::default()
                },
                FilterSpec {
                    scan: window,
                    ..FilterSpec::default()
                },
            ]
            .map(|spec| {
                ds.list(&Filter::new(&spec, &ds), Order::Id, 0, usize::MAX, later)
                    .0
            })
        };
        assert_eq!(
            count(later - 60_000),
            [0, 0, 0],
            "no window of the last minute sees them"
        );
        assert_eq!(count(later - 1_800_000), [20, 20, 10]);
    }

    #[test]
    fn churn_is_deterministic_by_seed() {
        let run = |seed| {
            let mut ds = dataset(seed);
            ds.churn(
                &Churn {
                    deleted: 50,
                    ..Churn::default()
                },
                0.0,
                NOW,
            );
            (0..10_000).filter(|&i| !ds.is_live(i)).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        assert_eq!(run(1).len(), 50);
    }

    #[test]
    fn an_empty_account_churns_nothing() {
        let mut ds = Dataset::new(0, 1, &Lifecycle::default(), WireStyle::default(), NOW);
        let report = ds.churn(
            &Churn {
                share: 1.0,
                new: 5,
                deleted: 5,
                ..Churn::default()
            },
            0.0,
            NOW,
        );
        assert_eq!(report, ChurnReport::default());
        let absurd = Churn {
            share: 1.0,
            new: usize::MAX,
            deleted: usize::MAX,
            ..Churn::default()
        };
        assert_eq!(absurd.counts(10), [MAX_ADDED, 3, 10, 3]);
        assert!(
            Churn {
                share: f64::NAN,
                ..Churn::default()
            }
            .counts(10)
                == [0; 4]
        );
    }
}
