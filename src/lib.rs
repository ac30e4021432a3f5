//! hss-scand: keeps every container image of a Huawei Cloud account scanned by Host Security
//! Service. Data flows one way: HSS → `pipeline::sync` → `pipeline::reconcile` →
//! `pipeline::plan` (the pure `policy`) → `pipeline::submit` → HSS. HSS sits behind the ports
//! of `hss`, the database behind the facade of `store`; `startup` wires them for every
//! command, the demo and the daemon, which only decide when the pipeline runs.
//!
//! Which error type goes where:
//! - at a module boundary, a `thiserror` enum that says what failed and whether trying again
//!   may help: `config::ConfigError` (exit 78, names the key), `store::StoreError`,
//!   `hss::transport::error::HssError` (with `is_retryable` and `outcome_unknown`), and the
//!   ports' `hss::SourceError` and `hss::SubmitError` (already classified by the adapter);
//! - inside jobs, commands and `main`, `anyhow` with a sentence of context, so the one line
//!   an operator sees says what was being done; `commands::exit_code_for` maps it to an exit
//!   code;
//! - a failure of one target or one batch is part of a report (`pipeline::report`), not an
//!   error: only what stops the whole job (the database) is returned as `Err`.

pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod hss;
pub mod leader;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod sim;
pub mod startup;
pub mod status;
pub mod store;
pub mod telemetry;
