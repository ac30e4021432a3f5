//! The composition root: from validated settings to the parts every command, the demo and the
//! daemon run on — the store (chosen by the scheme of `database.url`), one pair of HSS ports
//! per target, and the metrics observer — in one place (zero2prod's `startup.rs`). Callers
//! that need to differ (the demo's simulator keys, the daemon's metrics, a test's clock) say
//! so to the [`Startup`] builder.
//!
//! Targets reach HSS with the keys of an account: `[credentials]`, or a target's own
//! `credentials` table for another account. Targets with the same credentials share one
//! credential provider (one read of the key files, one refresh of temporary keys) and one
//! rate limiter of `hss.requests_per_second`: HSS throttles each account on its own, so the
//! targets of one account must share that account's budget of calls, while another account's
//! calls neither wait for it nor use it up.

use std::sync::Arc;

use anyhow::Context as _;

use crate::config::{CredentialSource, CredentialsSettings, Settings};
use crate::domain::{ApiChoice, Clock, Target};
use crate::hss::auto::AutoApi;
use crate::hss::current::{CurrentApi, ScanOptions};
use crate::hss::legacy::LegacyApi;
use crate::hss::transport::client::{
    ApiObserver, ClientOptions, HssClient, SharedRateLimiter, rate_limiter,
};
use crate::hss::transport::credentials::{CredentialError, CredentialProvider};
use crate::pipeline::{Pipeline, TargetApi};
use crate::store::{self, Store};

/// How to build the parts: the settings, and what a caller puts in place of the defaults.
#[derive(Debug, Clone)]
pub struct Startup {
    settings: Settings,
    credentials: Option<CredentialProvider>,
    observer: Option<Arc<dyn ApiObserver>>,
    clock: Clock,
}

impl Startup {
    /// The parts as `settings` describe them, on the system clock.
    pub fn new(settings: Settings) -> Startup {
        Startup {
            settings,
            credentials: None,
            observer: None,
            clock: Clock::system(),
        }
    }

    /// Use these credentials instead of `[credentials]` (the demo's simulator keys). Targets
    /// with their own `credentials` table keep theirs.
    pub fn with_credentials(mut self, credentials: CredentialProvider) -> Startup {
        self.credentials = Some(credentials);
        self
    }

    /// Tell `observer` of every HSS call (the daemon's metrics).
    pub fn with_observer(mut self, observer: Arc<dyn ApiObserver>) -> Startup {
        self.observer = Some(observer);
        self
    }

    /// Decide and record times by `clock` (tests).
    pub fn with_clock(mut self, clock: Clock) -> Startup {
        self.clock = clock;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The same overrides, for other settings (a reload).
    pub fn for_settings(&self, settings: Settings) -> Startup {
        Startup {
            settings,
            ..self.clone()
        }
    }

    /// Opens and migrates the configured database. Enough for the commands that only read
    /// it (`plan`, `status`, `scan --dry-run`), which therefore need no credentials.
    pub async fn open_store(&self) -> anyhow::Result<Store> {
        Ok(store::open(&self.settings.database.url, self.clock.clone()).await?)
    }

    /// The default credential provider (`[credentials]`, or what the caller put in its
    /// place). Reading the keys happens here, once, so that a missing variable or file is
    /// reported before any work starts.
    pub fn credentials(&self) -> Result<CredentialProvider, CredentialError> {
        match &self.credentials {
            Some(credentials) => Ok(credentials.clone()),
            None => credentials_from(&self.settings.credentials),
        }
    }

    /// An HSS client for each target, in configuration order, each at its own endpoint if it
    /// has one and with its own account's keys if it has them. Targets with the same
    /// credentials share one provider and one rate limit (see the module documentation).
    pub fn clients(&self) -> anyhow::Result<Vec<(Target, HssClient)>> {
        // The default account's provider is read only if a target uses it, so that a
        // configuration whose every target brings its own keys needs no `[credentials]` keys.
        let mut default: Option<(CredentialProvider, SharedRateLimiter)> = None;
        let mut accounts: Vec<(CredentialsSettings, CredentialProvider, SharedRateLimiter)> =
            Vec::new();
        let per_second = self.settings.hss.requests_per_second;
        let mut clients = Vec::with_capacity(self.settings.targets.len());
        for (target, reach) in self.settings.targets.with_reach() {
            let (credentials, limiter) = match &reach.credentials {
                None => match &default {
                    Some(account) => account.clone(),
                    None => {
                        let account = (self.credentials()?, rate_limiter(per_second));
                        default = Some(account.clone());
                        account
                    }
                },
                Some(own) => {
                    let own = own.resolve(&self.settings.credentials);
                    match accounts.iter().find(|(settings, ..)| *settings == own) {
                        Some((_, provider, limiter)) => (provider.clone(), Arc::clone(limiter)),
                        None => {
                            let provider = credentials_from(&own).with_context(|| {
                                format!("target {}: its own credentials", target.name)
                            })?;
                            let limiter = rate_limiter(per_second);
                            accounts.push((own, provider.clone(), Arc::clone(&limiter)));
                            (provider, limiter)
                        }
                    }
                }
            };
            let endpoint = reach
                .endpoint
                .as_ref()
                .or(self.settings.hss.endpoint.as_ref());
            let client = self.client(target, endpoint, &credentials, &limiter)?;
            clients.push((target.clone(), client));
        }
        Ok(clients)
    }

    fn client(
        &self,
        target: &Target,
        endpoint: Option<&url::Url>,
        credentials: &CredentialProvider,
        limiter: &SharedRateLimiter,
    ) -> anyhow::Result<HssClient> {
        let hss = &self.settings.hss;
        let options =
            ClientOptions::for_target(target, endpoint, hss.request_timeout, hss.max_retries)
                .map_err(|problem| anyhow::anyhow!("target {}: {problem}", target.name))?;
        let mut client = HssClient::new(options, credentials.clone(), Arc::clone(limiter))
            .with_context(|| format!("target {}: cannot build the HSS client", target.name))?;
        if let Some(observer) = &self.observer {
            client = client.with_observer(Arc::clone(observer));
        }
        Ok(client)
    }

    /// Each target's HSS ports: one adapter, chosen by the target's `api` or `hss.api`.
    pub fn target_apis(&self) -> anyhow::Result<Vec<TargetApi>> {
        let policy = &self.settings.policy;
        let options = ScanOptions {
            scan_scope: policy.scan_scope.bitmask(),
            third_party_rate_limit: policy.third_party_rate_limit,
        };
        Ok(self
            .clients()?
            .into_iter()
            .map(|(target, client)| match self.settings.api_for(&target) {
                ApiChoice::Legacy => ports(target, Arc::new(LegacyApi::new(client))),
                ApiChoice::Current => ports(target, Arc::new(CurrentApi::new(client, options))),
                ApiChoice::Auto => {
                    let auto = AutoApi::new(
                        &target.name,
                        CurrentApi::new(client.clone(), options),
                        LegacyApi::new(client),
                    );
                    ports(target, Arc::new(auto))
                }
            })
            .collect())
    }

    /// Everything a job needs. Credentials are resolved first, so that missing keys are
    /// reported before the database is touched.
    pub async fn build(self) -> anyhow::Result<App> {
        let targets = self.target_apis()?;
        let store = self.open_store().await?;
        Ok(App {
            started_at: self.clock.now_ms(),
            settings: self.settings,
            store,
            targets,
            clock: self.clock,
        })
    }
}

/// A target's ports, all served by one adapter.
fn ports<A>(target: Target, adapter: Arc<A>) -> TargetApi
where
    A: crate::hss::ImageSource + crate::hss::ScanSubmitter + crate::hss::AccountFacts + 'static,
{
    TargetApi {
        target,
        images: adapter.clone(),
        scans: adapter.clone(),
        facts: adapter,
    }
}

/// The credential provider `[credentials]` asks for.
fn credentials_from(settings: &CredentialsSettings) -> Result<CredentialProvider, CredentialError> {
    match settings.source {
        CredentialSource::Env => CredentialProvider::from_env(),
        CredentialSource::File => {
            // Validation guarantees both paths for source = "file"; an empty path would only
            // produce a clear "cannot read" error naming it.
            let ak = settings.ak_file.clone().unwrap_or_default();
            let sk = settings.sk_file.clone().unwrap_or_default();
            CredentialProvider::from_files(&ak, &sk, settings.security_token_file.as_deref())
        }
        CredentialSource::Metadata => Ok(CredentialProvider::metadata(&settings.metadata_endpoint)),
    }
}

/// Everything a job needs: the settings it runs under, the store, each target's HSS ports
/// and the clock.
#[derive(Debug, Clone)]
pub struct App {
    pub settings: Settings,
    pub store: Store,
    pub targets: Vec<TargetApi>,
    pub clock: Clock,
    /// When this process started (ms).
    pub started_at: i64,
}

impl App {
    /// The pipeline over these parts.
    pub fn pipeline(&self) -> Pipeline<'_> {
        Pipeline {
            settings: &self.settings,
            store: &self.store,
            targets: &self.targets,
            clock: &self.clock,
            started_at: self.started_at,
        }
    }

    /// The configured targets.
    pub fn targets(&self) -> Vec<Target> {
        self.targets.iter().map(|t| t.target.clone()).collect()
    }
}
