//! hss-scand: keeps every SWR container image scanned by Huawei Cloud Host Security Service.
//! Data flows one way: HSS → sync → store → policy → submit → HSS.

pub mod cli;
pub mod commands;
pub mod config;
pub mod domain;
pub mod hss;
pub mod sim;
pub mod telemetry;
