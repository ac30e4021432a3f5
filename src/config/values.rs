//! How individual values are written in TOML: durations as humantime strings, URLs and paths
//! where `""` means "not set", rule globs, and `[[targets]]` entries. Deserialisation errors
//! here say what was wrong with the value; the loader adds which key and which file.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::redact;

/// Parses a humantime duration (`90s`, `6h`, `7d`, `1d 12h`).
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|err| format!("{text:?} is not a duration like 90s, 6h or 7d ({err})"))
}

/// Writes a duration in the largest unit that represents it exactly, so that what an operator
/// wrote (`7d`, `90s`, `36h`) is printed back as written, and parses back to the same value.
pub(super) fn format_duration(duration: Duration) -> String {
    const UNITS: [(&str, u128); 7] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    let (suffix, size) = UNITS
        .iter()
        .find(|(_, size)| nanos.is_multiple_of(*size))
        .copied()
        .unwrap_or(("ns", 1));
    format!("{}{suffix}", nanos / size)
}

/// `Duration` as a humantime string.
pub(super) mod duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map_err(D::Error::custom)
    }

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*value))
    }
}

/// `Option<Duration>` for keys that may be omitted (only in `[[policy.rules]]`).
pub(super) mod optional_duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => super::duration::serialize(duration, s),
            None => s.serialize_none(),
        }
    }
}

/// Parses a URL without echoing it: a URL may carry a password.
fn parse_url(text: &str) -> Result<::url::Url, String> {
    ::url::Url::parse(text.trim()).map_err(|err| format!("not a valid URL ({err})"))
}

/// A required URL; printed with any password redacted.
pub(super) mod url {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<::url::Url, D::Error> {
        let text = String::deserialize(d)?;
        parse_url(&text).map_err(D::Error::custom)
    }

    pub fn serialize<S: Serializer>(value: &::url::Url, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&redact::url(value))
    }
}

/// A URL where `""` means "not set"; printed with any password redacted.
pub(super) mod optional_url {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<::url::Url>, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        parse_url(&text).map(Some).map_err(D::Error::custom)
    }

    pub fn serialize<S: Serializer>(value: &Option<::url::Url>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(url) => s.serialize_str(&redact::url(url)),
            None => s.serialize_str(""),
        }
    }
}

/// A path where `""` means "not set".
pub(super) mod optional_path {
    use std::path::PathBuf;

    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        let text = String::deserialize(d)?;
        Ok((!text.is_empty()).then(|| PathBuf::from(text)))
    }

    pub fn serialize<S: Serializer>(value: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(path) => s.serialize_str(&path.to_string_lossy()),
            None => s.serialize_str(""),
        }
    }
}

/// A free-text URL (`database.url`, which sqlx parses itself), printed with any password redacted.
pub(super) fn serialize_redacted_url_text<S: Serializer>(
    value: &str,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact::url_text(value))
}

/// A count that must be at least 1, with an error that says so in those words.
pub(super) fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<NonZeroU32, D::Error> {
    let value = u32::deserialize(d)?;
    NonZeroU32::new(value)
        .ok_or_else(|| D::Error::custom("0 is out of range; it must be at least 1"))
}

/// A shell-style glob on a namespace, image name or tag (`*`, `?`, `[abc]`, `{a,b}`);
/// `*` also matches `/`, so `team/*` matches `team/a/b`. Compiled once, when loaded.
#[derive(Clone)]
pub struct Glob {
    text: String,
    matcher: globset::GlobMatcher,
}

impl Glob {
    /// Compiles a glob; the error says why it is not one.
    pub fn new(text: &str) -> Result<Glob, String> {
        let glob = globset::Glob::new(text)
            .map_err(|err| format!("{text:?} is not a valid glob ({})", err.kind()))?;
        Ok(Glob {
            text: text.to_owned(),
            matcher: glob.compile_matcher(),
        })
    }

    /// `*`: matches anything, the value of an omitted rule key.
    pub fn any() -> Glob {
        Glob::new("*").unwrap_or_else(|_| unreachable!("`*` is a valid glob"))
    }

    /// Whether `candidate` matches the whole glob.
    pub fn is_match(&self, candidate: &str) -> bool {
        self.matcher.is_match(candidate)
    }

    /// The glob as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Glob {}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.text)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Glob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Glob::new(&text).map_err(D::Error::custom)
    }
}

impl Serialize for Glob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_back_as_operators_write_them() {
        for written in ["7d", "90s", "36h", "2m", "6h", "1500ms", "1ns"] {
            let parsed = parse_duration(written).unwrap();
            assert_eq!(format_duration(parsed), written);
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(parse_duration("1d 12h").unwrap()), "36h");
    }

    #[test]
    fn a_duration_without_a_unit_is_rejected_with_the_value_and_an_example() {
        let err = parse_duration("30").unwrap_err();
        assert!(err.contains("\"30\"") && err.contains("7d"), "{err}");
        assert!(parse_duration("7 dayz").is_err());
        assert!(parse_duration("").is_err());
    }

    proptest::proptest! {
        #[test]
        fn every_duration_round_trips_through_its_printed_form(secs in 0u64..10_000_000_000, nanos in 0u32..1_000_000_000) {
            let duration = Duration::new(secs, nanos);
            proptest::prop_assert_eq!(parse_duration(&format_duration(duration)).unwrap(), duration);
        }
    }

    #[test]
    fn globs_match_whole_values_and_star_crosses_slashes() {
        let glob = Glob::new("prod-*").unwrap();
        assert!(glob.is_match("prod-eu"));
        assert!(!glob.is_match("staging-prod-eu"));
        assert!(Glob::new("team/*").unwrap().is_match("team/a/b"));
        assert!(Glob::any().is_match(""));
        assert!(Glob::new("v1.?").unwrap().is_match("v1.2"));
        assert!(Glob::new("{latest,stable}").unwrap().is_match("stable"));
    }

    #[test]
    fn a_broken_glob_is_rejected_with_its_text() {
        let err = Glob::new("[abc").unwrap_err();
        assert!(err.contains("\"[abc\""), "{err}");
    }
}
