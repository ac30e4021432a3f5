//! Shared test helpers: fixtures, simulators and apps started on port 0.
#![allow(dead_code)]

use std::path::PathBuf;

/// A file under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
pub mod app;
pub mod client;
pub mod process;
pub mod sim;
