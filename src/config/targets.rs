//! `[[targets]]`: the accounts, regions and projects to keep scanned, and how each one's HSS
//! project is reached when that differs from `[hss] endpoint` and `[credentials]`.
//!
//! What a target *is* ([`Target`]: its name, region, project, image types) is a domain type
//! that the policy, the store and the metrics read; how it is *reached* (its own endpoint, its
//! own account's keys) matters only to the composition root that builds its HSS client. So
//! [`Targets`] keeps the two side by side and dereferences to the targets alone: everything
//! but `startup` sees a slice of [`Target`]s, as before there were several accounts.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

use super::{CredentialSource, CredentialsSettings, redact, values};
use crate::domain::{ApiChoice, ImageType, Target};

/// The configured targets, in file order, each with how it is reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    targets: Vec<Target>,
    /// One per target, at the same index.
    reach: Vec<TargetReach>,
}

/// How one target's HSS project is reached, where it differs from the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetReach {
    /// This target's own endpoint (a VPC endpoint of its region, say); `None`: `hss.endpoint`.
    pub endpoint: Option<Url>,
    /// This target's own account keys; `None`: `[credentials]`.
    pub credentials: Option<TargetCredentials>,
}

/// A target's own `credentials` table: the same choices as `[credentials]`, for another
/// account. Only `source` is required; the files are "" (not set) unless given, and
/// `metadata_endpoint` is `[credentials] metadata_endpoint` unless given (the metadata
/// service belongs to the machine, not to an account).
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetCredentials {
    pub source: CredentialSource,
    #[serde(
        default,
        with = "values::optional_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub ak_file: Option<PathBuf>,
    #[serde(
        default,
        with = "values::optional_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub sk_file: Option<PathBuf>,
    #[serde(
        default,
        with = "values::optional_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub security_token_file: Option<PathBuf>,
    #[serde(
        default,
        with = "values::optional_url",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata_endpoint: Option<Url>,
}

impl TargetCredentials {
    /// The complete credential settings this table stands for, `[credentials]` filling in the
    /// metadata endpoint it leaves out.
    pub fn resolve(&self, defaults: &CredentialsSettings) -> CredentialsSettings {
        CredentialsSettings {
            source: self.source,
            ak_file: self.ak_file.clone(),
            sk_file: self.sk_file.clone(),
            security_token_file: self.security_token_file.clone(),
            metadata_endpoint: self
                .metadata_endpoint
                .clone()
                .unwrap_or_else(|| defaults.metadata_endpoint.clone()),
        }
    }
}

// Hand-written so that logging a target never prints a password embedded in a URL.
impl std::fmt::Debug for TargetCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetCredentials")
            .field("source", &self.source)
            .field("ak_file", &self.ak_file)
            .field("sk_file", &self.sk_file)
            .field("security_token_file", &self.security_token_file)
            .field(
                "metadata_endpoint",
                &self.metadata_endpoint.as_ref().map(redact::url),
            )
            .finish()
    }
}

impl Targets {
    /// Targets reached the default way: `[hss] endpoint` and `[credentials]`.
    pub fn new(targets: Vec<Target>) -> Targets {
        let reach = vec![TargetReach::default(); targets.len()];
        Targets { targets, reach }
    }

    /// Each target with how it is reached.
    pub fn with_reach(&self) -> impl Iterator<Item = (&Target, &TargetReach)> {
        self.targets.iter().zip(&self.reach)
    }

    /// Adds a target.
    pub fn push(&mut self, target: Target, reach: TargetReach) {
        self.targets.push(target);
        self.reach.push(reach);
    }

    /// Removes every target.
    pub fn clear(&mut self) {
        self.targets.clear();
        self.reach.clear();
    }

    /// How the target at `index` is reached, to change it (tests of validation).
    pub fn reach_mut(&mut self, index: usize) -> Option<&mut TargetReach> {
        self.reach.get_mut(index)
    }
}

impl Deref for Targets {
    type Target = [Target];

    fn deref(&self) -> &[Target] {
        &self.targets
    }
}

impl DerefMut for Targets {
    fn deref_mut(&mut self) -> &mut [Target] {
        &mut self.targets
    }
}

impl<'a> IntoIterator for &'a Targets {
    type Item = &'a Target;
    type IntoIter = std::slice::Iter<'a, Target>;

    fn into_iter(self) -> Self::IntoIter {
        self.targets.iter()
    }
}

/// One `[[targets]]` entry as written. `enterprise_project_id` and `trigger_swr_sync` are
/// optional there (DESIGN: "optional; all_granted_eps for all"), which `domain::Target`,
/// shared with the store, does not express.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TargetEntry {
    name: String,
    region: String,
    project_id: String,
    #[serde(default)]
    enterprise_project_id: String,
    image_types: Vec<ImageType>,
    #[serde(default)]
    trigger_swr_sync: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api: Option<ApiChoice>,
    #[serde(
        default,
        with = "values::optional_url",
        skip_serializing_if = "Option::is_none"
    )]
    endpoint: Option<Url>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    credentials: Option<TargetCredentials>,
}

impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Targets, D::Error> {
        let entries = Vec::<TargetEntry>::deserialize(d)?;
        let mut targets = Targets::default();
        for entry in entries {
            targets.push(
                Target {
                    name: entry.name,
                    region: entry.region,
                    project_id: entry.project_id,
                    enterprise_project_id: entry.enterprise_project_id,
                    image_types: entry.image_types,
                    trigger_swr_sync: entry.trigger_swr_sync,
                    api: entry.api,
                },
                TargetReach {
                    endpoint: entry.endpoint,
                    credentials: entry.credentials,
                },
            );
        }
        Ok(targets)
    }
}

impl Serialize for Targets {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let entries: Vec<TargetEntry> = self
            .with_reach()
            .map(|(target, reach)| TargetEntry {
                name: target.name.clone(),
                region: target.region.clone(),
                project_id: target.project_id.clone(),
                enterprise_project_id: target.enterprise_project_id.clone(),
                image_types: target.image_types.clone(),
                trigger_swr_sync: target.trigger_swr_sync,
                api: target.api,
                endpoint: reach.endpoint.clone(),
                credentials: reach.credentials.clone(),
            })
            .collect();
        entries.serialize(s)
    }
}
