//! Start-up: from validated settings to the things the jobs use — the store, the credential
//! provider, one HSS client per target sharing one rate limit.

use std::sync::Arc;

use anyhow::Context as _;

use crate::config::{CredentialSource, CredentialsSettings, Settings};
use crate::domain::Target;
use crate::hss::client::{ApiObserver, ClientOptions, HssClient, rate_limiter};
use crate::hss::credentials::{CredentialError, CredentialProvider};
use crate::store::Store;

/// Caps glibc's malloc arenas at two. By default glibc keeps up to eight per core, one per
/// thread that ever allocated; for this process (a few tokio workers and sqlx's database
/// threads) that was a quarter of the peak memory of a 50,000-image scan, and arenas hold on
/// to freed memory for the life of a long-running daemon.
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called once, first thing in main,
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// A configured target and the client that talks to its HSS project.
#[derive(Debug, Clone)]
pub struct TargetClient {
    pub target: Target,
    pub client: HssClient,
}

/// Opens and migrates the configured database.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    Ok(Store::open(&settings.database.url).await?)
}

/// The credential provider `[credentials]` asks for. Reading the keys happens here, once, so
/// that a missing variable or file is reported before any work starts.
pub fn credentials(settings: &CredentialsSettings) -> Result<CredentialProvider, CredentialError> {
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

/// One client per target. Every client shares one rate limit, because HSS throttles the
/// account, not the target.
pub fn target_clients(
    settings: &Settings,
    credentials: &CredentialProvider,
    observer: Option<Arc<dyn ApiObserver>>,
) -> anyhow::Result<Vec<TargetClient>> {
    let limiter = rate_limiter(settings.hss.requests_per_second);
    settings
        .targets
        .iter()
        .map(|target| {
            let options = ClientOptions::for_target(
                target,
                settings.hss.endpoint.as_ref(),
                settings.hss.request_timeout,
                settings.hss.max_retries,
            )
            .map_err(|problem| anyhow::anyhow!("target {}: {problem}", target.name))?;
            let mut client = HssClient::new(options, credentials.clone(), limiter.clone())
                .with_context(|| format!("target {}: cannot build the HSS client", target.name))?;
            if let Some(observer) = &observer {
                client = client.with_observer(Arc::clone(observer));
            }
            Ok(TargetClient {
                target: target.clone(),
                client,
            })
        })
        .collect()
}

/// Everything a job needs: the settings it runs under, the store, and a client per target.
#[derive(Debug, Clone)]
pub struct App {
    pub settings: Settings,
    pub store: Store,
    pub clients: Vec<TargetClient>,
}

impl App {
    /// Resolves credentials (failing early if they are missing), opens the store and builds
    /// the clients.
    pub async fn start(
        settings: Settings,
        observer: Option<Arc<dyn ApiObserver>>,
    ) -> anyhow::Result<App> {
        let credentials = credentials(&settings.credentials)?;
        let store = open_store(&settings).await?;
        let clients = target_clients(&settings, &credentials, observer)?;
        Ok(App {
            settings,
            store,
            clients,
        })
    }

    pub fn targets(&self) -> Vec<Target> {
        self.clients.iter().map(|tc| tc.target.clone()).collect()
    }
}
