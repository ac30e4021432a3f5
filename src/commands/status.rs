//! `hss-scand status`: the local picture, from the database alone.

use anyhow::Context as _;

use super::output::print;
use crate::app;
use crate::cli::Output;
use crate::config::Settings;
use crate::status;

pub(super) async fn run(settings: &Settings, output: Output) -> anyhow::Result<()> {
    let store = app::open_store(settings).await?;
    let report = status::gather(&store, &settings.targets, &settings.policy).await?;
    store.close().await;
    let text = match output {
        Output::Table => report.to_table(),
        Output::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    print(&text).context("could not print the status")
}
