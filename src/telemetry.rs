//! Logging: tracing events to stderr (stdout is for command output), as text or JSON lines,
//! filtered by `log.level` unless `RUST_LOG` is set, which wins so that an operator can raise
//! the level for one run without editing the configuration.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Calling it again (as tests do) leaves the first one.
pub fn init(settings: &LogSettings) {
    let (filter, rejected_rust_log) = filter(settings);
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never into journald or a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter);
    // Ignoring the error is deliberate: it only says a subscriber was already installed.
    let _ = match settings.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if let Some(err) = rejected_rust_log {
        tracing::warn!(%err, level = %settings.level, "RUST_LOG is not a valid filter; using log.level");
    }
}

/// `RUST_LOG` when set and valid, else `log.level` (validated when the configuration was
/// loaded); the second value is why `RUST_LOG` was not used, to be logged once logging works.
fn filter(settings: &LogSettings) -> (EnvFilter, Option<String>) {
    let rust_log = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .filter(|value| !value.trim().is_empty());
    let mut rejected = None;
    if let Some(directives) = rust_log {
        // The parser panics on some non-ASCII input; a filter is ASCII anyway.
        if !directives.is_ascii() {
            rejected = Some("it contains characters that are not ASCII".to_owned());
        } else {
            match EnvFilter::builder().parse(&directives) {
                Ok(filter) => return (filter, None),
                Err(err) => rejected = Some(err.to_string()),
            }
        }
    }
    let filter = EnvFilter::builder()
        .parse(&settings.level)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    (filter, rejected)
}

/// An error and its causes on one line, `what: cause: cause`, as anyhow's `{:#}` prints it,
/// but without a cause the message before it already quotes: several errors (sqlx's, ours
/// wrapping them) repeat their source in their own message, and the chain printed every
/// cause two or three times.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(current) = cause {
        let message = current.to_string();
        if !message.is_empty() && !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = current.source();
    }
    text
}

#[cfg(test)]
mod error_chain_tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the database x: {source}")]
    struct Quoting {
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open the database x")]
    struct Silent {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_printed_once() {
        let io = || std::io::Error::other("no such file");
        assert_eq!(
            error_chain(&Quoting { source: io() }),
            "cannot open the database x: no such file"
        );
        assert_eq!(
            error_chain(&Silent { source: io() }),
            "cannot open the database x: no such file"
        );
        let wrapped = anyhow::Error::new(Quoting { source: io() }).context("plan");
        assert_eq!(
            error_chain(wrapped.as_ref()),
            "plan: cannot open the database x: no such file"
        );
    }
}
