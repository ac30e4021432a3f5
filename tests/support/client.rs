//! HSS clients pointed at a simulator.

use std::num::NonZeroU32;
use std::time::Duration;

use hss_scand::hss::legacy::LegacyApi;
use hss_scand::hss::transport::client::{
    ClientOptions, HssClient, SharedRateLimiter, rate_limiter,
};
use hss_scand::hss::transport::credentials::{CredentialProvider, Credentials};
use hss_scand::sim::{SimConfig, SimHandle};

/// Options for the simulator's project: short timeout, a few fast retries.
pub fn options_for(sim: &SimHandle) -> ClientOptions {
    ClientOptions {
        endpoint: url::Url::parse(&sim.base_url()).expect("sim url"),
        region: "ap-southeast-1".into(),
        project_id: SimConfig::default().project_id,
        enterprise_project_id: String::new(),
        request_timeout: Duration::from_secs(5),
        max_retries: 3,
        user_agent: "hss-scand-tests".into(),
    }
}

fn unlimited() -> SharedRateLimiter {
    rate_limiter(NonZeroU32::new(10_000).expect("non-zero"))
}

pub fn client_with_all(
    sim: &SimHandle,
    credentials: CredentialProvider,
    limiter: SharedRateLimiter,
    tweak: impl FnOnce(&mut ClientOptions),
) -> HssClient {
    let mut options = options_for(sim);
    tweak(&mut options);
    HssClient::new(options, credentials, limiter).expect("client builds")
}

pub fn client_with_keys(sim: &SimHandle, ak: &str, sk: &str) -> HssClient {
    let keys = CredentialProvider::fixed(Credentials::new(ak, sk, None));
    client_with_all(sim, keys, unlimited(), |_| {})
}

pub fn client_with(sim: &SimHandle, tweak: impl FnOnce(&mut ClientOptions)) -> HssClient {
    let d = SimConfig::default();
    let keys = CredentialProvider::fixed(Credentials::new(&d.ak, &d.sk, None));
    client_with_all(sim, keys, unlimited(), tweak)
}

pub fn client_for(sim: &SimHandle) -> HssClient {
    client_with(sim, |_| {})
}

pub fn client_with_limiter(sim: &SimHandle, limiter: SharedRateLimiter) -> HssClient {
    let d = SimConfig::default();
    let keys = CredentialProvider::fixed(Credentials::new(&d.ak, &d.sk, None));
    client_with_all(sim, keys, limiter, |_| {})
}

/// The deprecated-API adapter over [`client_for`].
pub fn legacy_api(sim: &SimHandle) -> LegacyApi {
    LegacyApi::new(client_for(sim))
}
