//! SIGHUP: re-read the configuration file. A valid one replaces the policy, targets, HSS
//! ports and schedules; an invalid one is logged with the key it is about, counted, and the
//! running configuration stays. A run in progress keeps the configuration it started with.

use std::sync::Arc;

use super::Daemon;
use super::notify;
use super::schedule::Schedules;
use crate::config::Settings;
use crate::startup::App;

impl Daemon {
    pub(super) async fn reload(self: &Arc<Self>, schedules: &mut Schedules) {
        notify::reloading();
        match self.try_reload(schedules).await {
            Ok(()) => {
                self.metrics.record_reload(true);
                tracing::info!(path = %self.config_path.display(), "configuration reloaded");
            }
            Err(err) => {
                self.metrics.record_reload(false);
                tracing::error!(path = %self.config_path.display(), error = %crate::telemetry::error_chain(err.as_ref()), "configuration reload rejected; the running configuration stays");
            }
        }
        notify::ready("running");
    }

    async fn try_reload(self: &Arc<Self>, schedules: &mut Schedules) -> anyhow::Result<()> {
        let settings = Settings::load(&self.config_path)?;
        let old = self.app();
        for (key, changed) in [
            (
                "database.url",
                settings.database.url != old.settings.database.url,
            ),
            (
                "server.listen",
                settings.server.listen != old.settings.server.listen,
            ),
        ] {
            if changed {
                tracing::warn!(key, "this key changed; it takes effect at the next restart");
            }
        }
        let startup = self.startup.for_settings(settings);
        let targets = startup.target_apis()?;
        schedules
            .replace(self, &startup.settings().schedule)
            .await?;
        self.metrics.add_targets(&startup.settings().targets);
        let app = Arc::new(App {
            settings: startup.settings().clone(),
            store: old.store.clone(),
            targets,
            clock: old.clock.clone(),
            started_at: old.started_at,
            // A reload is not a restart: the next syncs may stay incremental.
            listings: Arc::clone(&old.listings),
        });
        *self
            .app
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::clone(&app);
        self.refresh_status(&app).await;
        Ok(())
    }
}
