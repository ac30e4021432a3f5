//! `hss-scand once`: sync every target, then scan; for cron, CI, or a first run by hand.

use crate::startup::Startup;

pub(super) async fn run(startup: Startup) -> anyhow::Result<()> {
    let app = startup.build().await?;
    // The lease for the whole run: a daemon replica that holds it syncs and scans itself.
    let lease = match super::scan::take_lease(&app).await {
        Ok(lease) => lease,
        Err(err) => {
            app.store.close().await;
            return Err(err);
        }
    };
    // The scan runs even when a sync did not complete: it submits only what the database
    // proves due, and a partial sync never makes an image look due that is not.
    let synced = super::sync::sync_and_report(&app).await;
    let scanned = super::scan::scan_and_report(&app, lease.fence()).await;
    lease.release().await;
    app.store.close().await;
    match (synced, scanned) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(sync), Ok(())) => Err(sync),
        (Ok(()), Err(scan)) => Err(scan),
        (Err(sync), Err(scan)) => Err(sync.context(format!("and the scan failed too: {scan:#}"))),
    }
}
