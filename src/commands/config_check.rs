//! `hss-scand config check`: the configuration was loaded and validated before dispatch (a
//! bad one never gets here: it exits 78), so this prints what the daemon would run with.

use std::path::Path;

use anyhow::Context as _;

use super::output::print;
use crate::config::{Settings, overriding_env_vars};

pub(super) fn run(config_path: &Path, settings: &Settings) -> anyhow::Result<()> {
    let mut text = format!("# configuration file: {}\n", config_path.display());
    let overrides = overriding_env_vars();
    if !overrides.is_empty() {
        text.push_str(&format!("# overridden by: {}\n", overrides.join(", ")));
    }
    text.push_str(&settings.redacted_toml());
    print(&text).context("could not print the effective configuration")
}
