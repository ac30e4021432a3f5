//! The list filters of both image list calls and of the scan calls' server-side selection,
//! parsed once into numbers so that a filtered pass over a million images compares integers
//! instead of formatting strings. A parsed [`Filter`] is also the key of the listing cache,
//! so it holds nothing that changes between two requests asking the same question.

use super::dataset::{Dataset, Severity, Status};
use super::kind::Kind;
use super::names::{self, Naming, Oversize};

/// A time window on one of the records' times, in epoch ms. HSS documents "a missing end
/// means now, a missing start means 0" and not whether the bounds are inclusive; the
/// simulator includes both, which is what a client that overlaps its windows expects. An
/// image never scanned has `latest_scan_time` 0, so a scan window without a start holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub start: i64,
    /// `None`: up to the time of the request.
    pub end: Option<i64>,
}

impl Window {
    /// The window of two optional bounds; `None` when neither is given.
    pub fn of(start: Option<i64>, end: Option<i64>) -> Option<Window> {
        (start.is_some() || end.is_some()).then(|| Window {
            start: start.unwrap_or(0),
            end,
        })
    }

    fn contains(&self, value: i64, now_ms: i64) -> bool {
        value >= self.start && value <= self.end.unwrap_or(now_ms)
    }
}

/// The filters as received. Values are expected to be validated already.
#[derive(Debug, Clone, Default)]
pub struct FilterSpec<'a> {
    /// `None`: every kind (only the current list call allows that).
    pub kind: Option<Kind>,
    pub namespace: Option<&'a str>,
    pub image_name: Option<&'a str>,
    pub image_version: Option<&'a str>,
    pub scan_status: Option<Status>,
    pub latest_version: Option<bool>,
    pub instance_id: Option<&'a str>,
    pub instance_name: Option<&'a str>,
    pub registry_name: Option<&'a str>,
    pub multi_arch: Option<bool>,
    pub severity: Option<Severity>,
    pub has_vul: Option<bool>,
    pub has_unsafe_setting: Option<bool>,
    pub has_malicious_file: Option<bool>,
    pub risky: Option<bool>,
    pub image_size: Option<i64>,
    pub update: Option<Window>,
    pub scan: Option<Window>,
    pub sync: Option<Window>,
}

/// A parsed filter. Name filters match exactly, as the deprecated call's do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filter {
    pub(super) kind: Option<Kind>,
    /// A filter value no image can have: the result is empty.
    never: bool,
    team: Option<(usize, bool)>,
    name: Option<(usize, bool)>,
    slot: Option<usize>,
    status: Option<Status>,
    latest: Option<bool>,
    instance: Option<usize>,
    registry: Option<u16>,
    multi_arch: Option<bool>,
    severity: Option<Severity>,
    has_vul: Option<bool>,
    has_unsafe_setting: Option<bool>,
    has_malicious_file: Option<bool>,
    risky: Option<bool>,
    image_size: Option<i64>,
    update: Option<Window>,
    scan: Option<Window>,
    sync: Option<Window>,
}

impl Filter {
    /// Every live image of a kind (`None`: of every kind).
    pub fn of_kind(kind: Option<Kind>) -> Self {
        Filter {
            kind,
            ..Filter::default()
        }
    }

    pub fn new(spec: &FilterSpec<'_>, dataset: &Dataset) -> Self {
        let naming = &dataset.naming;
        let mut filter = Filter {
            kind: spec.kind,
            status: spec.scan_status,
            latest: spec.latest_version,
            multi_arch: spec.multi_arch,
            severity: spec.severity,
            has_vul: spec.has_vul,
            has_unsafe_setting: spec.has_unsafe_setting,
            has_malicious_file: spec.has_malicious_file,
            risky: spec.risky,
            image_size: spec.image_size,
            update: spec.update,
            scan: spec.scan,
            sync: spec.sync,
            ..Filter::default()
        };
        if let Some(ns) = spec.namespace {
            filter.team = Naming::parse_namespace(ns);
            filter.never |= filter.team.is_none();
        }
        if let Some(name) = spec.image_name {
            filter.name = Naming::parse_image_name(name);
            filter.never |= filter.name.is_none();
        }
        if let Some(version) = spec.image_version {
            filter.slot = Naming::parse_image_version(version);
            filter.never |= filter.slot.is_none();
        }
        if let Some(id) = spec.instance_id.filter(|id| !id.is_empty()) {
            filter.instance = naming.parse_instance_id(id);
            filter.never |= filter.instance.is_none();
        }
        if let Some(name) = spec.instance_name.filter(|n| !n.is_empty()) {
            let instance = Naming::parse_instance_name(name);
            // Both instance filters given and naming different instances: nothing matches.
            filter.never |=
                instance.is_none() || filter.instance.is_some_and(|i| Some(i) != instance);
            filter.instance = instance;
        }
        if let Some(name) = spec.registry_name {
            filter.registry = dataset
                .registry_by_name(name)
                .and_then(|slot| u16::try_from(slot).ok());
            filter.never |= filter.registry.is_none();
        }
        filter
    }

    /// A value no image can have: nothing matches, no pass needed.
    pub fn is_never(&self) -> bool {
        self.never
    }

    /// Only a kind: the listing is a slice of a live list, no pass needed.
    pub fn is_trivial(&self) -> bool {
        *self == Filter::of_kind(self.kind)
    }

    /// Whether the answer can change without the account changing, as the clock passes a
    /// scan's next step. Filters on names alone cannot.
    pub fn depends_on_state(&self) -> bool {
        self.status.is_some()
            || self.scan.is_some()
            || self.severity.is_some()
            || self.has_vul.is_some()
            || self.has_unsafe_setting.is_some()
            || self.has_malicious_file.is_some()
            || self.risky.is_some()
            || self.image_size.is_some()
    }

    pub fn matches(&self, dataset: &Dataset, index: usize, now_ms: i64) -> bool {
        if self.never {
            return false;
        }
        let record = dataset.record(index);
        if self.kind.is_some_and(|k| k.code() != record.kind) {
            return false;
        }
        let repo = Naming::repo(index);
        let oversize = || dataset.naming.oversize(repo);
        if let Some((team, long)) = self.team
            && (repo % names::TEAMS != team || (oversize() == Oversize::Namespace) != long)
        {
            return false;
        }
        if let Some((quotient, long)) = self.name
            && (repo / names::TEAMS != quotient || (oversize() == Oversize::Name) != long)
        {
            return false;
        }
        if self.slot.is_some_and(|slot| Naming::slot(index) != slot)
            || self
                .latest
                .is_some_and(|latest| Naming::is_latest(index) != latest)
            || self.registry.is_some_and(|r| r != record.registry)
            || self
                .multi_arch
                .is_some_and(|m| dataset.is_multi_arch(index) != m)
        {
            return false;
        }
        if let Some(instance) = self.instance
            && (Kind::from_code(record.kind) != Kind::Instance
                || Naming::instance_of(index) != instance)
        {
            return false;
        }
        if self
            .update
            .is_some_and(|w| !w.contains(dataset.update_ms(index), now_ms))
            || self
                .sync
                .is_some_and(|w| !w.contains(dataset.sync_ms(index), now_ms))
        {
            return false;
        }
        if !self.depends_on_state() {
            return true;
        }
        let (status, latest_scan_ms) = dataset.state(index, now_ms);
        if self
            .status
            .is_some_and(|s| dataset.reported_status(index, now_ms) != Some(s))
            || self
                .scan
                .is_some_and(|w| !w.contains(latest_scan_ms, now_ms))
            || self
                .image_size
                .is_some_and(|size| dataset.image_size(index, status) != size)
        {
            return false;
        }
        // Findings and severity exist only once a scan succeeded.
        let findings = (status == Status::Success).then(|| dataset.findings(index));
        let has = |f: fn(&super::dataset::Findings) -> bool| findings.as_ref().is_some_and(f);
        self.severity
            .is_none_or(|s| findings.is_some_and(|f| f.severity() == s))
            && self.has_vul.is_none_or(|b| has(|f| f.vul > 0) == b)
            && self
                .has_unsafe_setting
                .is_none_or(|b| has(|f| f.unsafe_settings > 0) == b)
            && self
                .has_malicious_file
                .is_none_or(|b| has(|f| f.malicious > 0) == b)
            && self.risky.is_none_or(|b| has(|f| f.risky()) == b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Lifecycle;
    use crate::sim::dataset::WireStyle;

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn windows_are_inclusive_and_default_to_now() {
        let w = Window::of(Some(10), None).unwrap();
        assert!(w.contains(10, 20) && w.contains(20, 20) && !w.contains(21, 20));
        let w = Window::of(None, Some(5)).unwrap();
        assert!(w.contains(0, 100) && w.contains(5, 100) && !w.contains(6, 100));
        assert_eq!(Window::of(None, None), None);
    }

    #[test]
    fn findings_filters_only_match_scanned_images() {
        let ds = Dataset::new(2_000, 3, &Lifecycle::default(), WireStyle::default(), NOW);
        let spec = FilterSpec {
            severity: Some(Severity::High),
            ..FilterSpec::default()
        };
        let high = Filter::new(&spec, &ds);
        let risky = Filter::new(
            &FilterSpec {
                risky: Some(true),
                ..FilterSpec::default()
            },
            &ds,
        );
        let mut highs = 0;
        for i in 0..2_000 {
            let success = ds.state(i, NOW).0 == Status::Success;
            if high.matches(&ds, i, NOW) {
                highs += 1;
                assert!(success && risky.matches(&ds, i, NOW));
            }
            if !success {
                assert!(!risky.matches(&ds, i, NOW));
            }
        }
        assert!(highs > 50, "{highs}");
        let unknown = Filter::new(
            &FilterSpec {
                registry_name: Some("no-such-registry"),
                ..FilterSpec::default()
            },
            &ds,
        );
        assert!(!unknown.matches(&ds, 0, NOW));
    }
}
