//! How a stop reaches a running job.
//!
//! A sync or scan must never stop half-way through a step that has side effects: a batch is
//! recorded `pending`, then sent, then its answer recorded, and a sync writes a page's images
//! in one transaction. So a stop is not an abort. When SIGTERM arrives the daemon calls
//! [`Shutdown::request`]; the jobs look at [`Shutdown::is_requested`] only *between* committed
//! steps (between two targets of a sync, between two batch-scan calls of a scan) and return
//! early from there, saying why in their report. The daemon then waits, bounded by
//! `daemon.shutdown_grace`, for the runs to return (the model is tokio-rs/mini-redis's
//! `Shutdown`; the signal itself is tokio-util's `CancellationToken`, which any number of
//! clones observe and which also offers a future for code that wants to wait for it).

use tokio_util::sync::CancellationToken;

/// The stop signal jobs observe. Cheap to clone; every clone sees the same request.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    /// A signal nobody has requested yet.
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks every holder to stop at its next committed step. Idempotent.
    pub fn request(&self) {
        self.0.cancel();
    }

    /// Whether a stop has been requested; jobs check this between committed steps.
    pub fn is_requested(&self) -> bool {
        self.0.is_cancelled()
    }

    /// Completes once a stop is requested (at once if it already was).
    pub async fn requested(&self) {
        self.0.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_one_request() {
        let shutdown = Shutdown::new();
        let job = shutdown.clone();
        assert!(!job.is_requested());
        shutdown.request();
        assert!(job.is_requested());
        // Already requested: the future completes at once.
        tokio::time::timeout(std::time::Duration::from_secs(1), job.requested())
            .await
            .expect("a requested stop is seen at once");
    }
}
