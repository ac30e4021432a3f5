//! `hss-scand run`: the daemon.

use std::path::Path;

use crate::config::Settings;
use crate::daemon::{self, DaemonOptions};

pub(super) async fn run(config_path: &Path, settings: Settings) -> anyhow::Result<()> {
    daemon::run(config_path.to_owned(), settings, DaemonOptions::default()).await
}
