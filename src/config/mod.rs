//! The operator's configuration: what `config/default.toml` documents, read from three layers
//! (the built-in defaults, the operator's file, `HSS_SCAND__SECTION__KEY` environment
//! variables), checked as a whole before anything runs, and printable with secrets redacted.
//!
//! Loading never panics and every failure is one [`ConfigError`] line that names the file or
//! environment variable and the key, because that line is all an operator sees in a journal.
//!
//! - `load`: layering and turning deserialisation failures into [`ConfigError`]s;
//! - `schema`: the type of every key, read from `config/default.toml`, which the operator's
//!   values must have (the config crate would silently convert them);
//! - `validate`: the rules a value must follow beyond its type (ranges, names, cron);
//! - `values`: how durations, URLs, paths and rule globs are written in TOML;
//! - `redact`: the effective configuration as TOML without secrets (`config check`).

mod error;
mod load;
pub mod redact;
mod registries;
mod schema;
mod targets;
mod validate;
mod values;

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::domain::{ApiChoice, Target};

pub use targets::{TargetCredentials, TargetReach, Targets};

pub use error::{ConfigError, Origin};
pub use load::overriding_env_vars;
pub use registries::{
    PasswordSource, RegistryApiVersion, RegistryProtocol, RegistrySettings, RegistrySpec,
    RegistryType, ScanImageChannel, length as registry_length, limits as registry_limits,
};
pub use values::Glob;

/// The documented defaults; they are the only defaults (the structs below have none of their
/// own), so what `config/default.toml` says is what the daemon does.
pub const DEFAULTS_TOML: &str = include_str!("../../config/default.toml");

/// Where `--config` points when neither the flag nor `HSS_SCAND_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hss-scand/config.toml";

/// Prefix of the environment variables that override file values (`HSS_SCAND__POLICY__BATCH_SIZE`).
pub const ENV_PREFIX: &str = "HSS_SCAND";

/// Separator between the prefix, the section and the key of an overriding environment variable.
pub const ENV_SEPARATOR: &str = "__";

/// The whole configuration, one field per TOML section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub hss: HssSettings,
    pub credentials: CredentialsSettings,
    /// At least one; names are unique. Dereferences to the [`Target`]s; how each is reached
    /// (its own endpoint and credentials) is there for `startup`.
    pub targets: Targets,
    /// `[[registries]]`: third-party registries `hss-scand registry apply` connects to HSS.
    /// None by default (documented as a commented example in `config/default.toml`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub registries: Vec<RegistrySettings>,
    pub schedule: ScheduleSettings,
    pub sync: SyncSettings,
    pub policy: PolicySettings,
    pub daemon: DaemonSettings,
    pub server: ServerSettings,
    pub log: LogSettings,
}

impl Settings {
    /// Reads the operator's file at `path`, layers it over the defaults and under the
    /// environment, and validates the result.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|err| ConfigError::unreadable(path, &err))?;
        Self::from_toml_str(&text, &path.display().to_string())
    }

    /// Like [`Settings::load`] for text that is already in memory; `origin` names it in errors.
    /// Environment overrides still apply.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Settings, ConfigError> {
        load::layered(text, origin, &load::EnvOverrides::from_process())
    }

    /// The effective configuration as TOML, for `config check`: secrets are `[redacted]` and
    /// credentials are described by where they come from, never by their values.
    pub fn redacted_toml(&self) -> String {
        redact::effective_toml(self)
    }
}

/// `[database]`
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    /// An sqlx SQLite URL, e.g. `sqlite:///var/lib/hss-scand/hss-scand.db`.
    #[serde(serialize_with = "values::serialize_redacted_url_text")]
    pub url: String,
}

/// `[hss]`: how the daemon talks to the HSS API.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HssSettings {
    /// `None` (written `""`): `https://hss.{region}.myhuaweicloud.com` for each target.
    #[serde(with = "values::optional_url")]
    pub endpoint: Option<Url>,
    #[serde(with = "values::duration")]
    pub request_timeout: Duration,
    /// How long the gateway accepts a signed request after its `X-Sdk-Date`: what a replica
    /// that lost the lease could still send.
    #[serde(with = "values::duration")]
    pub signed_request_lifetime: Duration,
    /// Images per list call, 1..=200.
    pub page_size: u32,
    pub max_retries: u32,
    /// Client-side rate limit across all calls.
    #[serde(deserialize_with = "values::at_least_one")]
    pub requests_per_second: NonZeroU32,
    /// Which generation of HSS's image APIs to use; a target may choose its own.
    pub api: ApiChoice,
}

impl Settings {
    /// The API `target` is reached through: its own choice, else `hss.api`.
    pub fn api_for(&self, target: &Target) -> ApiChoice {
        target.api.unwrap_or(self.hss.api)
    }
}

/// `credentials.source`: where the AK/SK come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialSource {
    /// `HUAWEICLOUD_SDK_AK`, `HUAWEICLOUD_SDK_SK` and optionally `HUAWEICLOUD_SDK_SECURITY_TOKEN`.
    Env,
    /// `ak_file`, `sk_file` and optionally `security_token_file` (e.g. systemd `LoadCredential`).
    File,
    /// The temporary credentials of the ECS agency, from the metadata service.
    Metadata,
}

/// `[credentials]`: where the secrets are, never the secrets themselves.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsSettings {
    pub source: CredentialSource,
    /// Required when `source` is `file`; `None` is written `""`.
    #[serde(with = "values::optional_path")]
    pub ak_file: Option<PathBuf>,
    /// Required when `source` is `file`; `None` is written `""`.
    #[serde(with = "values::optional_path")]
    pub sk_file: Option<PathBuf>,
    /// Optional with `source = "file"`; `None` is written `""`.
    #[serde(with = "values::optional_path")]
    pub security_token_file: Option<PathBuf>,
    /// Used when `source` is `metadata`.
    #[serde(with = "values::url")]
    pub metadata_endpoint: Url,
}

impl CredentialsSettings {
    /// The access key id with `source = "env"`.
    pub const AK_ENV: &'static str = "HUAWEICLOUD_SDK_AK";
    /// The secret access key with `source = "env"`.
    pub const SK_ENV: &'static str = "HUAWEICLOUD_SDK_SK";
    /// The security token of temporary credentials with `source = "env"`; optional.
    pub const SECURITY_TOKEN_ENV: &'static str = "HUAWEICLOUD_SDK_SECURITY_TOKEN";
}

/// `[schedule]`: 6-field cron expressions, seconds first, evaluated in UTC; validated with
/// the parser tokio-cron-scheduler uses, so a value accepted here is accepted there.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSettings {
    pub sync: String,
    pub scan: String,
}

/// `[sync]`: how listings are trusted, and when a sync reads only what changed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSettings {
    /// The largest share (0..=1) of a target's present images of one type that one complete
    /// listing may mark deleted; more waits for the next complete listing to confirm it.
    pub max_delete_share: f64,
    /// Whether syncs between two full listings read only what changed (current API only).
    pub incremental: IncrementalListing,
    /// How far an incremental sync's windows reach back before the previous sync's start.
    #[serde(with = "values::duration")]
    pub overlap: Duration,
    /// A full listing at least this often (and after a restart, and after any listing that
    /// did not complete).
    #[serde(with = "values::duration")]
    pub full_every: Duration,
}

/// `sync.incremental`: whether syncs between two full listings read only what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IncrementalListing {
    /// Incremental, until a full listing finds changes the incremental syncs missed; then
    /// that target lists fully until the process restarts.
    Auto,
    /// Incremental, whatever the full listings find.
    On,
    /// Every sync is a full listing.
    Off,
}

impl IncrementalListing {
    const ALL: [IncrementalListing; 3] = [
        IncrementalListing::Auto,
        IncrementalListing::On,
        IncrementalListing::Off,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncrementalListing::Auto => "auto",
            IncrementalListing::On => "on",
            IncrementalListing::Off => "off",
        }
    }
}

// By hand, so that a wrong value is answered with the values that are right.
impl<'de> Deserialize<'de> for IncrementalListing {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        IncrementalListing::ALL
            .into_iter()
            .find(|mode| mode.as_str() == text)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not one of \"auto\", \"on\", \"off\""
                ))
            })
    }
}

// A share is validated to be 0..=1, so never NaN: equality is total.
impl Eq for SyncSettings {}

/// `[policy]`: which images are due, and how many may be submitted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// A successful scan older than this is stale.
    #[serde(with = "values::duration")]
    pub rescan_after: Duration,
    /// An image whose tag now points at other content than its last scan saw is due
    /// (`changed`); a rule may say otherwise for its images.
    pub rescan_on_change: bool,
    /// A failed scan of ours is retried after this…
    #[serde(with = "values::duration")]
    pub retry_failed_after: Duration,
    /// …at most this many times in a row.
    pub max_failed_attempts: u32,
    /// Our submission still not finished after this: resubmit.
    #[serde(with = "values::duration")]
    pub scanning_timeout: Duration,
    /// How long HSS may take to show that it received a submission.
    #[serde(with = "values::duration")]
    pub submit_grace: Duration,
    /// Images per scan call, 1..=10241.
    pub batch_size: usize,
    /// What HSS looks for in a scan (the current API's `scan_scope`).
    pub scan_scope: ScanScope,
    /// Images per hour HSS scans of each Harbor or JFrog task; 0 = unlimited (0..=1000).
    pub third_party_rate_limit: u32,
    /// 0 = no cap; see [`PolicySettings::images_per_run_cap`].
    pub max_images_per_run: u64,
    /// Scans submitted per UTC day; 0 = no cap; see [`PolicySettings::daily_budget_cap`].
    pub daily_budget: u64,
    /// Only the latest version of each image is a candidate.
    pub latest_only: bool,
    /// First matching rule wins; unmatched images use the values above.
    pub rules: Vec<Rule>,
}

impl PolicySettings {
    /// `max_images_per_run`, with the "0 = no cap" convention turned into `None`.
    pub fn images_per_run_cap(&self) -> Option<u64> {
        (self.max_images_per_run > 0).then_some(self.max_images_per_run)
    }

    /// `daily_budget`, with the "0 = no cap" convention turned into `None`.
    pub fn daily_budget_cap(&self) -> Option<u64> {
        (self.daily_budget > 0).then_some(self.daily_budget)
    }

    /// The first rule that matches the image, if any.
    pub fn rule_for(&self, namespace: &str, image: &str, tag: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|rule| rule.matches(namespace, image, tag))
    }
}

/// `policy.scan_scope`: the risks HSS looks for in a scan — `"all"`, or a list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanScope(Vec<Risk>);

/// One kind of risk a scan can look for, with its bits in the API's `scan_scope` mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Vulnerabilities,
    Baseline,
    MaliciousFiles,
    SensitiveInformation,
    SoftwareCompliance,
}

impl Risk {
    pub const ALL: [Risk; 5] = [
        Risk::Vulnerabilities,
        Risk::Baseline,
        Risk::MaliciousFiles,
        Risk::SensitiveInformation,
        Risk::SoftwareCompliance,
    ];

    fn bits(self) -> i64 {
        match self {
            Risk::Vulnerabilities => 0x000f_0000,
            Risk::Baseline => 0x0000_f000,
            Risk::MaliciousFiles => 0x0000_0f00,
            Risk::SensitiveInformation => 0x0000_00f0,
            Risk::SoftwareCompliance => 0x0000_000f,
        }
    }
}

impl ScanScope {
    /// Every risk.
    pub fn all() -> ScanScope {
        ScanScope(Risk::ALL.to_vec())
    }

    /// The API's mask: `0x7fffffff` for everything (as the SDK documents "all"), else the
    /// bits of each risk.
    pub fn bitmask(&self) -> i64 {
        if Risk::ALL.iter().all(|risk| self.0.contains(risk)) {
            0x7fff_ffff
        } else {
            self.0.iter().fold(0, |mask, risk| mask | risk.bits())
        }
    }

    pub fn risks(&self) -> &[Risk] {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ScanScope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ScanScope, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Word(String),
            List(Vec<Risk>),
        }
        let expected = "\"all\" or a list of \"vulnerabilities\", \"baseline\", \
                        \"malicious_files\", \"sensitive_information\", \"software_compliance\"";
        match Written::deserialize(d) {
            Ok(Written::Word(word)) if word == "all" => Ok(ScanScope::all()),
            Ok(Written::List(mut risks)) if !risks.is_empty() => {
                risks.sort();
                risks.dedup();
                Ok(ScanScope(risks))
            }
            _ => Err(serde::de::Error::custom(format!("expected {expected}"))),
        }
    }
}

impl Serialize for ScanScope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.bitmask() == 0x7fff_ffff {
            s.serialize_str("all")
        } else {
            self.0.serialize(s)
        }
    }
}

/// `[[policy.rules]]`: an override of the policy for the images whose namespace, name and tag
/// all match its globs. Every key is optional; an omitted glob matches anything.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default = "Glob::any")]
    pub namespace: Glob,
    #[serde(default = "Glob::any")]
    pub image: Glob,
    #[serde(default = "Glob::any")]
    pub tag: Glob,
    /// Replaces `policy.rescan_after` for the matched images.
    #[serde(
        default,
        with = "values::optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub rescan_after: Option<Duration>,
    /// Replaces `policy.rescan_on_change` for the matched images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rescan_on_change: Option<bool>,
    /// Higher is submitted first.
    #[serde(default)]
    pub priority: i64,
    /// Never submit the matched images.
    #[serde(default)]
    pub skip: bool,
}

impl Rule {
    /// Whether this rule applies to the image.
    pub fn matches(&self, namespace: &str, image: &str, tag: &str) -> bool {
        self.namespace.is_match(namespace) && self.image.is_match(image) && self.tag.is_match(tag)
    }
}

/// `[daemon]`: how `hss-scand run` starts and stops.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSettings {
    /// Sync every target once at start-up instead of waiting for the first scheduled sync.
    pub sync_on_start: bool,
    /// After SIGTERM, how long a running job may take to reach its next committed step.
    #[serde(with = "values::duration")]
    pub shutdown_grace: Duration,
    /// How long the leader lease lasts unless renewed: how long a dead leader's replicas wait
    /// before one takes over.
    #[serde(with = "values::duration")]
    pub lease_ttl: Duration,
    /// How often the leader renews its lease, and a standby replica tries to take it.
    #[serde(with = "values::duration")]
    pub lease_renew_every: Duration,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// Where `/metrics`, `/healthz`, `/readyz` and `/status` are served.
    pub listen: SocketAddr,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive, e.g. `info` or `info,hss_scand::hss=debug`.
    /// `RUST_LOG`, when set, replaces it.
    pub level: String,
}

/// `log.format`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, for a terminal or the journal.
    Text,
    /// One JSON object per line, for a log pipeline.
    Json,
}

// Hand-written so that logging a section never prints a password embedded in a URL.
impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &redact::url_text(&self.url))
            .finish()
    }
}

impl fmt::Debug for HssSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HssSettings")
            .field("endpoint", &self.endpoint.as_ref().map(redact::url))
            .field("request_timeout", &self.request_timeout)
            .field("signed_request_lifetime", &self.signed_request_lifetime)
            .field("page_size", &self.page_size)
            .field("max_retries", &self.max_retries)
            .field("requests_per_second", &self.requests_per_second)
            .field("api", &self.api)
            .finish()
    }
}

impl fmt::Debug for CredentialsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsSettings")
            .field("source", &self.source)
            .field("ak_file", &self.ak_file)
            .field("sk_file", &self.sk_file)
            .field("security_token_file", &self.security_token_file)
            .field("metadata_endpoint", &redact::url(&self.metadata_endpoint))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::load::{EnvOverrides, layered};
    use super::schema::{Schema, commented_examples};
    use super::*;

    fn keys(table: &toml::Table) -> BTreeSet<String> {
        table.keys().cloned().collect()
    }

    fn load(text: &str) -> Settings {
        layered(text, "test.toml", &EnvOverrides::from_pairs(&[])).unwrap()
    }

    /// default.toml, deserialised on its own (no layering) into structs that have no defaults
    /// and deny unknown keys, proves that it lists every key and no other; its commented
    /// examples must name every key of a target, of a registry (across its two examples, one
    /// per password source) and of a rule.
    #[test]
    fn default_toml_documents_every_key() {
        let examples = commented_examples(DEFAULTS_TOML);
        let text = format!(
            "{}\n{examples}",
            DEFAULTS_TOML.replace("\nrules = []\n", "\n")
        );
        let settings: Settings = toml::from_str(&text).unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(settings.targets.len(), 1);
        assert_eq!(settings.policy.rules.len(), 1);

        let written: toml::Table = toml::from_str(&examples).unwrap();
        let written_target = written["targets"][0].as_table().unwrap();
        let written_rule = written["policy"]["rules"][0].as_table().unwrap();
        let every_target_key = toml::Value::try_from(&settings.targets).unwrap()[0]
            .as_table()
            .unwrap()
            .clone();
        let every_rule_key = toml::Table::try_from(&settings.policy.rules[0]).unwrap();
        assert_eq!(keys(written_target), keys(&every_target_key));
        assert_eq!(keys(written_rule), keys(&every_rule_key));
        assert_eq!(
            keys(written_rule).len(),
            7,
            "rescan_after and rescan_on_change must be in the rule example"
        );
        // A target's own credentials take the keys of [credentials], every one of them
        // documented in the example.
        let defaults: toml::Table = DEFAULTS_TOML.parse().unwrap();
        assert_eq!(
            keys(written_target["credentials"].as_table().unwrap()),
            keys(defaults["credentials"].as_table().unwrap())
        );

        assert_eq!(settings.registries.len(), 2);
        let union = |tables: Vec<toml::Table>| -> BTreeSet<String> {
            tables.iter().flat_map(keys).collect()
        };
        let written_registries = union(
            written["registries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_table().unwrap().clone())
                .collect(),
        );
        let every_registry_key = union(
            settings
                .registries
                .iter()
                .map(|r| toml::Table::try_from(r).unwrap())
                .collect(),
        );
        assert_eq!(written_registries, every_registry_key);
        assert_eq!(
            every_registry_key.len(),
            12,
            "every optional key, and both password sources, must be in the registry examples"
        );
    }

    /// The type of each key is read from default.toml (`schema`), so each value there must be
    /// written in the type of its field: a float default written `1` would make every
    /// fraction an operator writes an error. Serialised, the settings give each field in its
    /// own type, and so must pass the check against default.toml's types.
    #[test]
    fn default_toml_writes_every_value_in_the_type_of_its_key() {
        let examples = commented_examples(DEFAULTS_TOML);
        let text = format!(
            "{}\n{examples}",
            DEFAULTS_TOML.replace("\nrules = []\n", "\n")
        );
        let settings: Settings = toml::from_str(&text).unwrap_or_else(|err| panic!("{err}"));
        let serialised = toml::Table::try_from(&settings).unwrap();
        let schema = Schema::new(DEFAULTS_TOML.parse().unwrap(), examples.parse().unwrap());
        schema
            .check_table(&serialised)
            .unwrap_or_else(|invalid| panic!("{}: {}", invalid.key, invalid.problem));

        // The check is not vacuous: a float key that default.toml wrote as an integer would fail.
        let integer_share = DEFAULTS_TOML.replace("max_delete_share = 0.2", "max_delete_share = 1");
        assert_ne!(integer_share, DEFAULTS_TOML);
        let schema = Schema::new(integer_share.parse().unwrap(), examples.parse().unwrap());
        let invalid = schema.check_table(&serialised).unwrap_err();
        assert_eq!(invalid.key, "sync.max_delete_share");
    }

    #[test]
    fn the_commented_target_example_is_itself_valid() {
        let examples = commented_examples(DEFAULTS_TOML);
        let settings = load(&examples);
        assert_eq!(settings.policy.rules[0].namespace.as_str(), "prod-*");
    }

    #[test]
    fn every_example_configuration_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|ext| ext == "toml") {
                let text = std::fs::read_to_string(&path).unwrap();
                layered(
                    &text,
                    &path.display().to_string(),
                    &EnvOverrides::from_pairs(&[]),
                )
                .unwrap_or_else(|err| panic!("{err}"));
                checked += 1;
            }
        }
        assert!(
            checked >= 2,
            "expected the production and minimal examples in {dir:?}"
        );
    }

    #[test]
    fn the_printed_configuration_loads_back_to_the_same_settings() {
        let text = include_str!("../../config/examples/production.toml");
        let settings = load(text);
        let printed = settings.redacted_toml();
        assert_eq!(load(&printed), settings, "{printed}");
        assert!(printed.contains("rescan_after = \"14d\""), "{printed}");
        assert!(
            printed.contains("tag = \"{latest,stable,v*}\""),
            "{printed}"
        );
    }

    #[test]
    fn url_passwords_are_redacted_in_print_and_debug_output() {
        let mut settings = load(include_str!("../../config/examples/minimal.toml"));
        settings.hss.endpoint = Some(
            "https://user:PASSWORD-MARKER@hss.example.com/"
                .parse()
                .unwrap(),
        );
        settings.database.url = "sqlite://user:PASSWORD-MARKER@localhost/x.db".into();
        for output in [settings.redacted_toml(), format!("{settings:?}")] {
            assert!(!output.contains("PASSWORD-MARKER"), "{output}");
            assert!(
                output.contains("user:[redacted]@hss.example.com"),
                "{output}"
            );
        }
    }

    #[test]
    fn the_first_matching_rule_applies() {
        let settings = load(include_str!("../../config/examples/production.toml"));
        let policy = &settings.policy;
        let rule = policy.rule_for("prod-web", "shop", "stable").unwrap();
        assert_eq!(
            (rule.priority, rule.rescan_after),
            (10, Some(Duration::from_secs(2 * 86_400)))
        );
        assert_eq!(
            policy
                .rule_for("prod-web", "shop", "sha-1234")
                .unwrap()
                .priority,
            5
        );
        assert!(policy.rule_for("ci-builds", "x", "1").unwrap().skip);
        assert!(policy.rule_for("team", "x", "1").is_none());
        assert_eq!(policy.images_per_run_cap(), Some(5000));
        assert_eq!(
            load(include_str!("../../config/examples/minimal.toml"))
                .policy
                .daily_budget_cap(),
            None
        );
    }
}
