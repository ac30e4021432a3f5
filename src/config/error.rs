//! [`ConfigError`]: the one line an operator reads when the configuration cannot be used. It
//! names where the bad value came from (the file, or the environment variable that overrode
//! it) and the key, so the fix needs no guessing. It never carries a secret: messages quote
//! values only where a value cannot be a secret, and URLs are never quoted.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The operator's file, as named to the loader (usually its path).
    File(String),
    /// An overriding `HSS_SCAND__SECTION__KEY` environment variable, by name.
    Environment(String),
    /// `config/default.toml` compiled into the binary; an error here is a bug in this build.
    Defaults,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(name) => f.write_str(name),
            Origin::Environment(var) => write!(f, "environment variable {var}"),
            Origin::Defaults => f.write_str("the built-in defaults"),
        }
    }
}

/// Why the configuration cannot be used. Every variant displays as a single line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all (missing, unreadable, not text).
    #[error("config error: {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },

    /// The text is not TOML.
    #[error("config error in {origin}: {}TOML parse error: {message}", position(*.line_column))]
    Syntax {
        origin: Origin,
        /// 1-based, when the parser could tell.
        line_column: Option<(usize, usize)>,
        message: String,
    },

    /// A key this version does not know, usually a typo.
    #[error("config error in {origin}: unknown key {key}{}", hint(.expected))]
    UnknownKey {
        origin: Origin,
        key: String,
        /// The keys allowed there, as serde lists them (`` one of `a`, `b` ``).
        expected: Option<String>,
    },

    /// A value of the wrong type, out of range, or breaking a rule; `key` is its full path,
    /// e.g. `targets[1].image_types[0]`.
    #[error("config error in {origin}: {key}: {problem}")]
    Invalid {
        origin: Origin,
        key: String,
        problem: String,
    },
}

fn position(line_column: Option<(usize, usize)>) -> String {
    match line_column {
        Some((line, column)) => format!("line {line} column {column}: "),
        None => String::new(),
    }
}

fn hint(expected: &Option<String>) -> String {
    match expected {
        Some(expected) => format!(" (expected {expected})"),
        None => String::new(),
    }
}

/// Joins the lines of a message so that the error stays one line in a journal.
pub(super) fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl ConfigError {
    pub(super) fn unreadable(path: &Path, err: &io::Error) -> ConfigError {
        let reason = match err.kind() {
            io::ErrorKind::NotFound => "file not found".to_owned(),
            io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            io::ErrorKind::InvalidData => "not UTF-8 text".to_owned(),
            io::ErrorKind::IsADirectory => "is a directory, not a file".to_owned(),
            _ => one_line(&err.to_string()),
        };
        ConfigError::Unreadable {
            path: path.to_owned(),
            reason,
        }
    }

    pub(super) fn invalid(origin: Origin, key: impl Into<String>, problem: &str) -> ConfigError {
        ConfigError::Invalid {
            origin,
            key: key.into(),
            problem: one_line(problem),
        }
    }

    /// The key the error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Unreadable { .. } | ConfigError::Syntax { .. } => None,
        }
    }

    /// Where the offending text came from, when it came from a known place.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            ConfigError::Syntax { origin, .. }
            | ConfigError::UnknownKey { origin, .. }
            | ConfigError::Invalid { origin, .. } => Some(origin),
            ConfigError::Unreadable { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_display_as_the_documented_single_lines() {
        let err = ConfigError::invalid(
            Origin::File("/etc/hss-scand/config.toml".into()),
            "policy.batch_size",
            "20000 is out of range 1..=10241",
        );
        assert_eq!(
            err.to_string(),
            "config error in /etc/hss-scand/config.toml: policy.batch_size: 20000 is out of range 1..=10241"
        );
        let err = ConfigError::unreadable(
            Path::new("/nope.toml"),
            &io::Error::from(io::ErrorKind::NotFound),
        );
        assert_eq!(err.to_string(), "config error: /nope.toml: file not found");
        let err = ConfigError::UnknownKey {
            origin: Origin::Environment("HSS_SCAND__POLICY__RESCAN_AFTR".into()),
            key: "policy.rescan_aftr".into(),
            expected: None,
        };
        assert_eq!(
            err.to_string(),
            "config error in environment variable HSS_SCAND__POLICY__RESCAN_AFTR: unknown key policy.rescan_aftr"
        );
    }

    #[test]
    fn multi_line_problems_are_joined_into_one_line() {
        let err = ConfigError::invalid(Origin::Defaults, "k", "first\n   second\n\nthird");
        assert_eq!(
            err.to_string(),
            "config error in the built-in defaults: k: first second third"
        );
    }
}
