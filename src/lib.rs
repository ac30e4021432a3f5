//! hss-scand: keeps every SWR container image scanned by Huawei Cloud Host Security Service.
//! Data flows one way: HSS → sync → store → policy → submit → HSS.

pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod hss;
pub mod jobs;
pub mod metrics;
pub mod policy;
pub mod sim;
pub mod status;
pub mod store;
pub mod submit;
pub mod sync;
pub mod telemetry;
