//! Everything about talking to HSS, nothing about policy.

pub mod client;
pub mod credentials;
pub mod error;
pub mod model;
pub mod signer;
pub mod wire_json;
