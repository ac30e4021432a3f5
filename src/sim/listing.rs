//! Answering a list request without walking the account each time: an unfiltered page is a
//! slice of a live list, and the result of a filtered or sorted listing is computed once and
//! kept (keyed by the filter and the order) while the account does not change and no scan in
//! the account reaches its next step. A client paging through 300,000 unscanned images costs
//! one pass, not one pass per page.

use std::sync::Arc;

use super::dataset::Dataset;
use super::filter::Filter;
use super::lock;

/// The order of a listing: by record id (the default), or by `latest_scan_time`
/// (`sort_key=latest_scan_time`), ties by record id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Order {
    Id,
    ScanTimeAsc,
    ScanTimeDesc,
}

/// How many distinct listings are kept. A client pages through a few at a time.
const CACHED: usize = 8;
/// Cached indices beyond twice the live images (plus this slack) evict the least recently
/// used listings: the cache may cost at most 8 bytes per image.
const SLACK: usize = 1 << 16;

struct Entry {
    filter: Filter,
    order: Order,
    /// The account version the entry was computed at.
    version: u64,
    /// The entry holds until this time (exclusive): a scan takes its next step then.
    valid_until: i64,
    last_used: u64,
    matches: Arc<Vec<u32>>,
}

/// Recently computed listings.
#[derive(Default)]
pub struct ListCache {
    entries: Vec<Entry>,
    uses: u64,
}

impl ListCache {
    fn get(
        &mut self,
        filter: &Filter,
        order: Order,
        version: u64,
        now_ms: i64,
    ) -> Option<Arc<Vec<u32>>> {
        self.uses += 1;
        let uses = self.uses;
        let entry = self.entries.iter_mut().find(|e| {
            e.order == order
                && e.version == version
                && now_ms < e.valid_until
                && e.filter == *filter
        })?;
        entry.last_used = uses;
        Some(Arc::clone(&entry.matches))
    }

    fn put(
        &mut self,
        filter: &Filter,
        order: Order,
        version: u64,
        valid_until: i64,
        matches: Arc<Vec<u32>>,
        budget: usize,
    ) {
        self.entries.retain(|e| e.version == version);
        let held = |entries: &[Entry]| entries.iter().map(|e| e.matches.len()).sum::<usize>();
        while self.entries.len() >= CACHED
            || (!self.entries.is_empty() && held(&self.entries) + matches.len() > budget)
        {
            let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(n, _)| n)
            else {
                break;
            };
            self.entries.swap_remove(oldest);
        }
        self.uses += 1;
        self.entries.push(Entry {
            filter: filter.clone(),
            order,
            version,
            valid_until,
            last_used: self.uses,
            matches,
        });
    }
}

impl Dataset {
    /// The live images that pass a filter, in `order`: the total, and the indices of the
    /// window `offset..offset + limit`.
    pub fn list(
        &self,
        filter: &Filter,
        order: Order,
        offset: usize,
        limit: usize,
        now_ms: i64,
    ) -> (usize, Vec<usize>) {
        if filter.is_never() {
            return (0, Vec::new());
        }
        if filter.is_trivial() && order == Order::Id {
            let live = self.live_list(filter.kind);
            let window = live.iter().skip(offset).take(limit);
            return (live.len(), window.map(|&i| i as usize).collect());
        }
        let matches = self.matching_cached(filter, order, now_ms);
        let window = matches.iter().skip(offset).take(limit);
        (matches.len(), window.map(|&i| i as usize).collect())
    }

    /// Every live image that passes a filter, in record-id order (the scan calls'
    /// server-side selection).
    pub fn matching(&self, filter: &Filter, now_ms: i64) -> Vec<usize> {
        self.list(filter, Order::Id, 0, usize::MAX, now_ms).1
    }

    fn matching_cached(&self, filter: &Filter, order: Order, now_ms: i64) -> Arc<Vec<u32>> {
        if let Some(hit) = lock(&self.cache).get(filter, order, self.version, now_ms) {
            return hit;
        }
        let (matches, valid_until) = self.compute(filter, order, now_ms);
        let matches = Arc::new(matches);
        let budget = self.live_total().saturating_mul(2).saturating_add(SLACK);
        lock(&self.cache).put(
            filter,
            order,
            self.version,
            valid_until,
            Arc::clone(&matches),
            budget,
        );
        matches
    }

    /// One pass over the live list: the matches in order, and until when they hold.
    fn compute(&self, filter: &Filter, order: Order, now_ms: i64) -> (Vec<u32>, i64) {
        let stateful = filter.depends_on_state() || order != Order::Id;
        let mut valid_until = i64::MAX;
        let mut matches = Vec::new();
        for &i in self.live_list(filter.kind) {
            let index = i as usize;
            if stateful && let Some(next) = self.next_transition(index, now_ms) {
                valid_until = valid_until.min(next);
            }
            if filter.matches(self, index, now_ms) {
                matches.push(i);
            }
        }
        if order != Order::Id {
            let mut keyed: Vec<(i64, u32)> = matches
                .iter()
                .map(|&i| (self.state(i as usize, now_ms).1, i))
                .collect();
            match order {
                Order::ScanTimeDesc => {
                    keyed.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
                }
                _ => keyed.sort_unstable(),
            }
            matches = keyed.into_iter().map(|(_, i)| i).collect();
        }
        (matches, valid_until)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sim::Lifecycle;
    use crate::sim::dataset::{Status, WireStyle};
    use crate::sim::filter::FilterSpec;
    use crate::sim::kind::Kind;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn a_cached_listing_follows_the_lifecycle_and_changes() {
        let lifecycle = Lifecycle {
            queue_delay: Duration::from_secs(1),
            scan_duration: Duration::from_secs(1),
            failure_rate: 0.0,
        };
        let mut ds = Dataset::new(500, 2, &lifecycle, WireStyle::default(), NOW);
        let spec = FilterSpec {
            kind: Some(Kind::Private),
            scan_status: Some(Status::Unscan),
            ..FilterSpec::default()
        };
        let filter = Filter::new(&spec, &ds);
        let (total, first) = ds.list(&filter, Order::Id, 0, 1, NOW);
        assert_eq!(ds.list(&filter, Order::Id, 0, 1, NOW).0, total, "cached");
        assert_eq!(
            ds.submit(first[0], NOW),
            crate::sim::dataset::Submitted::Queued
        );
        assert_eq!(ds.list(&filter, Order::Id, 0, 1, NOW).0, total - 1);
        let waiting = Filter::new(
            &FilterSpec {
                scan_status: Some(Status::WaitingForScan),
                ..spec.clone()
            },
            &ds,
        );
        let before = ds.list(&waiting, Order::Id, 0, 0, NOW + 10).0;
        // One second later the image scans: the cached answer must not outlive that step.
        assert_eq!(
            ds.list(&waiting, Order::Id, 0, 0, NOW + 1_000).0,
            before - 1
        );
    }

    #[test]
    fn the_cache_stays_within_its_count_and_size() {
        let mut cache = ListCache::default();
        let filter = |n: i64| {
            Filter::new(
                &FilterSpec {
                    image_size: Some(n),
                    ..FilterSpec::default()
                },
                &Dataset::new(0, 1, &Lifecycle::default(), WireStyle::default(), NOW),
            )
        };
        for n in 0..20 {
            cache.put(
                &filter(n),
                Order::Id,
                1,
                i64::MAX,
                Arc::new(vec![0; 10]),
                1_000,
            );
        }
        assert_eq!(cache.entries.len(), CACHED);
        assert!(cache.get(&filter(19), Order::Id, 1, NOW).is_some());
        assert!(
            cache.get(&filter(0), Order::Id, 1, NOW).is_none(),
            "evicted"
        );
        cache.put(
            &filter(99),
            Order::Id,
            1,
            i64::MAX,
            Arc::new(vec![0; 995]),
            1_000,
        );
        assert_eq!(cache.entries.len(), 1, "the big one pushed out the rest");
        assert!(
            cache.get(&filter(99), Order::Id, 2, NOW).is_none(),
            "another version"
        );
    }

    #[test]
    fn sorting_by_scan_time_is_total_and_stable() {
        let ds = Dataset::new(3_000, 4, &Lifecycle::default(), WireStyle::default(), NOW);
        let all = Filter::of_kind(None);
        let (total, asc) = ds.list(&all, Order::ScanTimeAsc, 0, usize::MAX, NOW);
        let (_, desc) = ds.list(&all, Order::ScanTimeDesc, 0, usize::MAX, NOW);
        assert_eq!((total, asc.len(), desc.len()), (3_000, 3_000, 3_000));
        let time = |i: &usize| ds.state(*i, NOW).1;
        assert!(
            asc.windows(2)
                .all(|w| time(&w[0]) < time(&w[1]) || (time(&w[0]) == time(&w[1]) && w[0] < w[1]))
        );
        assert!(desc.windows(2).all(|w| time(&w[0]) >= time(&w[1])));
        let (_, by_id) = ds.list(&all, Order::Id, 10, 5, NOW);
        assert_eq!(by_id, vec![10, 11, 12, 13, 14]);
    }
}
