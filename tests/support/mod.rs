//! Shared test helpers: fixtures, simulators on port 0, configuration text, the real binary,
//! and `rig::spawn_app`, which puts them together.
#![allow(dead_code)]

use std::path::PathBuf;

/// A file under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}
pub mod cli;
pub mod client;
pub mod config;
pub mod postgres;
pub mod process;
pub mod rig;
pub mod sim;
