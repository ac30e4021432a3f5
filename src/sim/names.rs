//! The synthetic account's strings, derived from an image's index and the seed instead of
//! stored: a million images must cost a few bytes each, and a batch-scan item must be mapped
//! back to its image by parsing its names, not by a map of strings.
//!
//! Image `i` belongs to repository `i / VERSIONS` and is its version `i % VERSIONS`. A
//! repository's team is `repo % TEAMS` (namespace `prod-team00`, `staging-team01`, …) and its
//! name is `svc-{repo / TEAMS:03}`. The last version of every repository is `latest` with
//! `latest_version = true`; the others are `v1.0.{slot}`. About one repository in 500 has a
//! namespace longer than 64 or a name longer than 128 characters: HSS lists such images but
//! batch-scan rejects them, and the daemon must notice that.

use std::fmt::Write as _;

use super::kind::Kind;

/// Versions per repository; the last one is `latest`.
pub const VERSIONS: usize = 8;
/// Teams, i.e. namespaces of ordinary length.
pub const TEAMS: usize = 24;
const PREFIXES: [&str; 3] = ["prod", "staging", "dev"];
const LATEST: &str = "latest";
/// Appended to a namespace to push it past the 64 characters batch-scan accepts.
const LONG_NAMESPACE_SUFFIX: &str = "archive-of-the-legacy-on-premises-registry-migrated-in-2019";
/// Appended to an image name to push it past the 128 characters batch-scan accepts.
const LONG_NAME_SUFFIX: &str = concat!(
    "built-by-a-pipeline-that-appends-the-whole-branch-name-",
    "feature-migrate-every-service-to-the-new-build-system-and-keep-the-old-one"
);
/// SWR enterprise instances that instance images are spread over.
pub const INSTANCES: usize = 3;

// Salts keep the hashes of different properties of the same index independent.
pub(crate) const SALT_TYPE: u64 = 1;
pub(crate) const SALT_OVERSIZE: u64 = 2;
pub(crate) const SALT_STATUS: u64 = 3;
pub(crate) const SALT_SCAN_TIME: u64 = 4;
pub(crate) const SALT_UPDATE_TIME: u64 = 5;
pub(crate) const SALT_SIZE: u64 = 6;
pub(crate) const SALT_DIGEST: u64 = 7;
pub(crate) const SALT_IMAGE_ID: u64 = 8;
pub(crate) const SALT_FINDINGS: u64 = 9;
pub(crate) const SALT_OUTCOME: u64 = 10;
pub(crate) const SALT_INSTANCE: u64 = 11;
pub(crate) const SALT_SCANNABLE: u64 = 13;
pub(crate) const SALT_ARCH: u64 = 15;
pub(crate) const SALT_EXPIRED: u64 = 16;
pub(crate) const SALT_SYNC_TIME: u64 = 17;
pub(crate) const SALT_CHURN: u64 = 18;
pub(crate) const SALT_REGISTRY: u64 = 19;
pub(crate) const SALT_TASK: u64 = 20;

/// splitmix64's finaliser: a cheap, well-mixed bijection on u64.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A deterministic hash of (seed, value, salt).
pub fn hash(seed: u64, value: u64, salt: u64) -> u64 {
    mix(mix(seed ^ salt.wrapping_mul(0xA24B_AED4_963E_E407)) ^ value)
}

/// Which of an image's identifying fields is too long to be submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    None,
    Namespace,
    Name,
}

/// Derives and parses the names of one seed's images.
#[derive(Debug, Clone, Copy)]
pub struct Naming {
    pub seed: u64,
}

impl Naming {
    pub fn repo(index: usize) -> usize {
        index / VERSIONS
    }

    pub fn slot(index: usize) -> usize {
        index % VERSIONS
    }

    pub fn is_latest(index: usize) -> bool {
        Self::slot(index) == VERSIONS - 1
    }

    /// The type an image of the initial account gets (images added later choose their own).
    pub fn initial_type(&self, index: usize) -> Kind {
        match hash(self.seed, Self::repo(index) as u64, SALT_TYPE) % 100 {
            0..80 => Kind::Private,
            80..95 => Kind::Shared,
            _ => Kind::Instance,
        }
    }

    pub fn oversize(&self, repo: usize) -> Oversize {
        match hash(self.seed, repo as u64, SALT_OVERSIZE) % 1000 {
            0 => Oversize::Namespace,
            1 => Oversize::Name,
            _ => Oversize::None,
        }
    }

    pub fn write_namespace(&self, index: usize, out: &mut String) {
        let repo = Self::repo(index);
        let team = repo % TEAMS;
        let _ = write!(out, "{}-team{team:02}", PREFIXES[team % PREFIXES.len()]);
        if self.oversize(repo) == Oversize::Namespace {
            out.push('-');
            out.push_str(LONG_NAMESPACE_SUFFIX);
        }
    }

    pub fn write_image_name(&self, index: usize, out: &mut String) {
        let repo = Self::repo(index);
        let _ = write!(out, "svc-{:03}", repo / TEAMS);
        if self.oversize(repo) == Oversize::Name {
            out.push('-');
            out.push_str(LONG_NAME_SUFFIX);
        }
    }

    pub fn write_image_version(index: usize, out: &mut String) {
        if Self::is_latest(index) {
            out.push_str(LATEST);
        } else {
            let _ = write!(out, "v1.0.{}", Self::slot(index));
        }
    }

    pub fn namespace(&self, index: usize) -> String {
        let mut s = String::with_capacity(16);
        self.write_namespace(index, &mut s);
        s
    }

    pub fn image_name(&self, index: usize) -> String {
        let mut s = String::with_capacity(8);
        self.write_image_name(index, &mut s);
        s
    }

    pub fn image_version(index: usize) -> String {
        let mut s = String::with_capacity(8);
        Self::write_image_version(index, &mut s);
        s
    }

    /// The SWR enterprise instance an instance image lives in.
    pub fn instance_of(index: usize) -> usize {
        Self::repo(index) % INSTANCES
    }

    pub fn instance_id(&self, instance: usize) -> String {
        let a = hash(self.seed, instance as u64, SALT_INSTANCE);
        let b = mix(a);
        format!(
            "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            (b >> 52) & 0xfff,
            b & 0xffff_ffff_ffff
        )
    }

    pub fn instance_name(instance: usize) -> String {
        format!("swr-ee-{instance:02}")
    }

    pub fn instance_url(instance: usize) -> String {
        format!("https://swr-ee-{instance:02}.swr.sim.invalid")
    }

    /// The instance with this name, if any.
    pub fn parse_instance_name(name: &str) -> Option<usize> {
        (0..INSTANCES).find(|&n| Self::instance_name(n) == name)
    }

    /// The instance whose id this is, if any.
    pub fn parse_instance_id(&self, id: &str) -> Option<usize> {
        (0..INSTANCES).find(|&n| self.instance_id(n) == id)
    }

    /// Parses a namespace into (team, long), without checking it against any repository.
    pub fn parse_namespace(namespace: &str) -> Option<(usize, bool)> {
        let (body, long) = match namespace.strip_suffix(LONG_NAMESPACE_SUFFIX) {
            Some(body) => (body.strip_suffix('-')?, true),
            None => (namespace, false),
        };
        let (prefix, team) = body.split_once("-team")?;
        let team = parse_digits(team)?;
        (team < TEAMS && PREFIXES[team % PREFIXES.len()] == prefix).then_some((team, long))
    }

    /// Parses an image name into (repo / TEAMS, long).
    pub fn parse_image_name(name: &str) -> Option<(usize, bool)> {
        let (body, long) = match name.strip_suffix(LONG_NAME_SUFFIX) {
            Some(body) => (body.strip_suffix('-')?, true),
            None => (name, false),
        };
        Some((parse_digits(body.strip_prefix("svc-")?)?, long))
    }

    /// Parses a version into its slot within the repository.
    pub fn parse_image_version(version: &str) -> Option<usize> {
        if version == LATEST {
            return Some(VERSIONS - 1);
        }
        parse_digits(version.strip_prefix("v1.0.")?).filter(|&slot| slot < VERSIONS - 1)
    }

    /// The index whose names are exactly these, if the scheme can produce them. The caller still
    /// checks that the index exists, has the right type and is not deleted.
    pub fn locate(&self, namespace: &str, image_name: &str, image_version: &str) -> Option<usize> {
        let (team, _) = Self::parse_namespace(namespace)?;
        let (quotient, _) = Self::parse_image_name(image_name)?;
        let slot = Self::parse_image_version(image_version)?;
        let repo = quotient.checked_mul(TEAMS)?.checked_add(team)?;
        let index = repo.checked_mul(VERSIONS)?.checked_add(slot)?;
        // Regenerating catches everything parsing let through: leading zeros, a long suffix on
        // a repository that has none, a prefix that belongs to another team.
        (self.namespace(index) == namespace
            && self.image_name(index) == image_name
            && Self::image_version(index) == image_version)
            .then_some(index)
    }
}

/// A non-empty run of ASCII digits, without the sign `str::parse` would accept.
fn parse_digits(text: &str) -> Option<usize> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_round_trips_through_its_names() {
        let naming = Naming { seed: 7 };
        for index in (0..200_000).step_by(37) {
            let (ns, name, version) = (
                naming.namespace(index),
                naming.image_name(index),
                Naming::image_version(index),
            );
            assert_eq!(
                naming.locate(&ns, &name, &version),
                Some(index),
                "{ns}/{name}:{version}"
            );
        }
    }

    #[test]
    fn names_look_like_an_account() {
        let naming = Naming { seed: 1 };
        let ns = naming.namespace(0);
        assert!(ns.starts_with("prod-team00"), "{ns}");
        assert_eq!(Naming::image_version(3), "v1.0.3");
        assert_eq!(Naming::image_version(VERSIONS - 1), "latest");
        assert_eq!(
            naming.namespace(VERSIONS * 7).get(..14),
            Some("staging-team07")
        );
    }

    #[test]
    fn about_one_repository_in_500_is_too_long_to_submit() {
        let naming = Naming { seed: 1 };
        let long = (0..100_000)
            .filter(|&repo| naming.oversize(repo) != Oversize::None)
            .count();
        assert!((100..300).contains(&long), "{long}");
        let repo = (0..100_000)
            .find(|&r| naming.oversize(r) == Oversize::Namespace)
            .expect("one exists");
        assert!(naming.namespace(repo * VERSIONS).len() > 64);
        let repo = (0..100_000)
            .find(|&r| naming.oversize(r) == Oversize::Name)
            .expect("one exists");
        assert!(naming.image_name(repo * VERSIONS).len() > 128);
    }

    #[test]
    fn near_misses_are_not_found() {
        let naming = Naming { seed: 1 };
        for (ns, name, version) in [
            ("prod-team00", "svc-0", "v1.0.0"),
            ("prod-team00", "svc-000", "v1.0.7"),
            ("prod-team00", "svc-+00", "v1.0.0"),
            ("staging-team00", "svc-000", "v1.0.0"),
            ("prod-team99", "svc-000", "v1.0.0"),
            ("", "", ""),
            ("prod-team00", "svc-99999999999999999999", "latest"),
        ] {
            assert_eq!(
                naming.locate(ns, name, version),
                None,
                "{ns}/{name}:{version}"
            );
        }
        assert_eq!(naming.locate("prod-team00", "svc-000", "v1.0.0"), Some(0));
    }

    #[test]
    fn instance_ids_parse_back() {
        let naming = Naming { seed: 3 };
        for n in 0..INSTANCES {
            assert_eq!(naming.parse_instance_id(&naming.instance_id(n)), Some(n));
        }
        assert_eq!(naming.parse_instance_id("nope"), None);
    }
}
