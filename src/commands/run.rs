//! `hss-scand run`: the daemon.

use std::path::Path;

use crate::daemon::{self, DaemonOptions};
use crate::startup::Startup;

pub(super) async fn run(config_path: &Path, startup: Startup) -> anyhow::Result<()> {
    daemon::run(config_path.to_owned(), startup, DaemonOptions::default()).await
}
