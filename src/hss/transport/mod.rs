//! What every HSS call shares, whatever the API generation: signing requests exactly as the
//! official SDK does, credentials, one rate limit, retries that never resend a billed POST,
//! one error type, and reading loose JSON leniently. The adapters (`legacy`, and later
//! others) build their requests and wire models on top of this and nothing else.

pub mod body;
pub mod client;
pub mod credentials;
pub mod error;
pub mod lenient;
pub mod signer;
pub mod wire_json;
