//! One integration-test crate for the whole project (one link step, one binary to run).
//! Each module tests one capability end to end; `support` starts simulators and apps on port 0.

#[path = "../support/mod.rs"]
mod support;

mod client;
mod config;
mod crash;
mod credentials;
mod current_api;
mod daemon;
mod failover;
mod hardening;
mod incremental;
mod operators;
mod postgres;
mod registry;
mod scan;
mod signing_vectors;
mod sim;
mod sync;
