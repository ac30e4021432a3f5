//! Third-party registries (Harbor, JFrog) connected to HSS: the `[[registries]]` entries that
//! `hss-scand registry apply` adds, and the rules of `add_registry` (spec section 2.2) that
//! both those entries and the `registry add` command line must follow, so that the two refuse
//! the same things with the same words before anything is sent.
//!
//! A registry password never lives in the configuration: an entry names the environment
//! variable (`password_env`) or the file (`password_file`) that holds it, and the password is
//! read only when the registry is actually added.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::Target;

use super::validate::Invalid;

/// The lengths `add_registry` and `show_image_upload_command` allow, in characters.
pub mod limits {
    pub const NAME: usize = 128;
    pub const ADDR: usize = 256;
    pub const USERNAME: usize = 128;
    pub const PASSWORD: usize = 128;
    pub const NAMESPACE: usize = 128;
    pub const CLUSTER_ID: usize = 64;
}

/// Declares a closed set of words: written in lower case in the configuration and on the
/// command line (any case is accepted), and spelt as HSS wants it on the wire.
macro_rules! choice {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident => ($text:literal, $wire:literal) ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// As written in the configuration and on the command line.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// As HSS spells it on the wire.
            pub fn wire(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire, )+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;

            /// Case-insensitive, so that the wire spelling (`Harbor`, `V2`) is accepted too.
            fn from_str(text: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|choice| choice.as_str().eq_ignore_ascii_case(text))
                    .ok_or_else(|| {
                        let all: Vec<&str> = Self::ALL.iter().map(|c| c.as_str()).collect();
                        format!("{text:?} is not one of {}", all.join(", "))
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(D::Error::custom)
            }
        }
    };
}

choice! {
    /// `registry_type`: the kind of registry.
    pub enum RegistryType {
        Harbor => ("harbor", "Harbor"),
        Jfrog => ("jfrog", "Jfrog"),
    }
}

choice! {
    /// `get_scan_image_channel`: where the cluster gets the scanner component image.
    pub enum ScanImageChannel {
        /// Pulled from SWR.
        Swr => ("swr", "Swr"),
        /// Uploaded to the registry by the operator (`hss-scand registry upload-command`).
        Other => ("other", "Other"),
    }
}

choice! {
    /// `protocol`: how HSS reaches the registry.
    #[derive(Default)]
    pub enum RegistryProtocol {
        #[default]
        Https => ("https", "https"),
        Http => ("http", "http"),
    }
}

choice! {
    /// `api_version`: the registry's API version.
    #[derive(Default)]
    pub enum RegistryApiVersion {
        #[default]
        V2 => ("v2", "V2"),
        V1 => ("v1", "V1"),
    }
}

/// A registry as HSS is asked to connect it, without its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrySpec {
    pub name: String,
    pub registry_type: RegistryType,
    /// `host[:port]`.
    pub addr: String,
    pub username: String,
    /// An HSS-connected cluster that runs the registry's sync and scan jobs.
    pub cluster_id: String,
    pub channel: ScanImageChannel,
    /// Required with [`ScanImageChannel::Other`].
    pub namespace: Option<String>,
    pub protocol: RegistryProtocol,
    pub api_version: RegistryApiVersion,
}

impl RegistrySpec {
    /// Every rule of `add_registry` this registry breaks, as (configuration key, problem), in
    /// the order of the keys; empty when HSS should accept it. The command line names the
    /// same keys as flags (`cluster_id` is `--cluster-id`).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let mut check = |key: &'static str, result: Result<(), String>| {
            if let Err(problem) = result {
                problems.push((key, problem));
            }
        };
        check("name", length(&self.name, limits::NAME));
        check(
            "addr",
            length(&self.addr, limits::ADDR).and_then(|()| host_port(&self.addr)),
        );
        check("username", length(&self.username, limits::USERNAME));
        check("cluster_id", length(&self.cluster_id, limits::CLUSTER_ID));
        match &self.namespace {
            Some(namespace) => check("namespace", length(namespace, limits::NAMESPACE)),
            None if self.channel == ScanImageChannel::Other => check(
                "namespace",
                Err("required when the channel is \"other\": the registry project the scanner image is uploaded to".to_owned()),
            ),
            None => {}
        }
        problems
    }
}

/// 1..=`max` characters.
pub fn length(value: &str, max: usize) -> Result<(), String> {
    let count = value.chars().count();
    if count == 0 {
        Err(format!("empty; it must be 1..={max} characters"))
    } else if count > max {
        Err(format!("{count} characters; at most {max} are allowed"))
    } else {
        Ok(())
    }
}

/// `host[:port]` (spec: "e.g. myharbor.com"): no scheme, no path, no spaces, a numeric port.
pub fn host_port(addr: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "{addr:?} is not host[:port], e.g. harbor.example.com:8443"
        ))
    };
    if addr.contains("://") || addr.contains('/') || addr.chars().any(char::is_whitespace) {
        return bad();
    }
    // One colon separates a port; more than one is an IPv6 literal, left alone.
    if let Some((host, port)) = addr.rsplit_once(':')
        && !host.contains(':')
        && (host.is_empty() || port.parse::<u16>().is_err())
    {
        return bad();
    }
    Ok(())
}

/// `[[registries]]`: one registry that `hss-scand registry apply` makes sure HSS has.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySettings {
    /// The `[[targets]]` name whose HSS project gets the registry.
    pub target: String,
    /// The registry's name in HSS; `apply` matches registries by it.
    pub name: String,
    #[serde(rename = "type")]
    pub registry_type: RegistryType,
    pub addr: String,
    pub username: String,
    pub cluster_id: String,
    pub channel: ScanImageChannel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default)]
    pub protocol: RegistryProtocol,
    #[serde(default)]
    pub api_version: RegistryApiVersion,
    /// The name of the environment variable holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// The file holding the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
}

/// Where a registry's password is; never the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource<'a> {
    Env(&'a str),
    File(&'a Path),
}

impl fmt::Display for PasswordSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::Env(name) => write!(f, "environment variable {name}"),
            PasswordSource::File(path) => write!(f, "password_file {}", path.display()),
        }
    }
}

impl RegistrySettings {
    /// The registry as HSS is asked to connect it.
    pub fn spec(&self) -> RegistrySpec {
        RegistrySpec {
            name: self.name.clone(),
            registry_type: self.registry_type,
            addr: self.addr.clone(),
            username: self.username.clone(),
            cluster_id: self.cluster_id.clone(),
            channel: self.channel,
            namespace: self.namespace.clone(),
            protocol: self.protocol,
            api_version: self.api_version,
        }
    }

    /// Where the password is. Validation guarantees exactly one source; `None` only for an
    /// entry that was never validated.
    pub fn password_source(&self) -> Option<PasswordSource<'_>> {
        match (&self.password_env, &self.password_file) {
            (Some(name), _) => Some(PasswordSource::Env(name)),
            (None, Some(path)) => Some(PasswordSource::File(path)),
            (None, None) => None,
        }
    }
}

/// Checks every entry: a configured target, the rules of `add_registry`, names unique per
/// target, and exactly one password source. The first broken rule is reported.
pub(super) fn validate(registries: &[RegistrySettings], targets: &[Target]) -> Result<(), Invalid> {
    let mut first_with_name: HashMap<(&str, &str), usize> = HashMap::new();
    for (index, registry) in registries.iter().enumerate() {
        let key = |field: &str| format!("registries[{index}].{field}");
        if !targets.iter().any(|target| target.name == registry.target) {
            let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
            return Err(Invalid {
                key: key("target"),
                problem: format!(
                    "{:?} is not the name of a [[targets]] entry (configured: {})",
                    registry.target,
                    names.join(", ")
                ),
            });
        }
        if let Some((field, problem)) = registry.spec().problems().into_iter().next() {
            return Err(Invalid {
                key: key(field),
                problem,
            });
        }
        if let Some(first) = first_with_name.insert((&registry.target, &registry.name), index) {
            return Err(Invalid {
                key: key("name"),
                problem: format!(
                    "{:?} is already the name of registries[{first}] of target {}; HSS knows registries by name, so names must be unique per target",
                    registry.name, registry.target
                ),
            });
        }
        password_source(registry).map_err(|(field, problem)| Invalid {
            key: key(field),
            problem,
        })?;
    }
    Ok(())
}

fn password_source(registry: &RegistrySettings) -> Result<(), (&'static str, String)> {
    match (&registry.password_env, &registry.password_file) {
        (None, None) => Err((
            "password_env",
            "missing; set password_env (the name of an environment variable holding the password) or password_file (a file holding it)".to_owned(),
        )),
        (Some(_), Some(_)) => Err((
            "password_file",
            "password_env is set too; set only one of password_env and password_file".to_owned(),
        )),
        (Some(name), None) => env_var_name(name).map_err(|problem| ("password_env", problem)),
        (None, Some(path)) if path.as_os_str().is_empty() => Err((
            "password_file",
            "empty; write the path of the file holding the password".to_owned(),
        )),
        (None, Some(_)) => Ok(()),
    }
}

/// The name of an environment variable, not its value: letters, digits and `_`, not starting
/// with a digit. (A value pasted here by mistake is refused without being quoted back.)
fn env_var_name(name: &str) -> Result<(), String> {
    let plain = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let starts_well = name.chars().next().is_some_and(|c| !c.is_ascii_digit());
    if plain && starts_well {
        Ok(())
    } else {
        Err("is not the name of an environment variable (letters, digits and '_', not starting with a digit); write the variable's name, never the password".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::super::load::{EnvOverrides, layered};
    use super::*;

    const TARGETS: &str = r#"
[[targets]]
name = "prod"
region = "ap-southeast-1"
project_id = "0123456789abcdef0123456789abcdef"
image_types = ["private_image"]

[[targets]]
name = "staging"
region = "ap-southeast-1"
project_id = "fedcba9876543210fedcba9876543210"
image_types = ["private_image"]
"#;

    const HARBOR: &str = r#"
[[registries]]
target = "prod"
name = "harbor-prod"
type = "harbor"
addr = "harbor.example.com:8443"
username = "robot"
cluster_id = "cluster-1"
channel = "swr"
password_env = "HARBOR_PASSWORD"
"#;

    fn load(registries: &str) -> Result<super::super::Settings, super::super::ConfigError> {
        layered(
            &format!("{TARGETS}{registries}"),
            "x.toml",
            &EnvOverrides::from_pairs(&[]),
        )
    }

    /// `HARBOR` with `key = value` lines replaced (`None` removes the key) and `extra` added.
    fn harbor(changes: &[(&str, Option<&str>)]) -> String {
        let mut text = HARBOR.to_owned();
        for (key, value) in changes {
            let line = text
                .lines()
                .find(|line| line.starts_with(&format!("{key} = ")))
                .map(str::to_owned);
            let replacement = value.map_or_else(String::new, |v| format!("{key} = {v}"));
            match line {
                Some(line) => {
                    text = text.replace(&format!("{line}\n"), &format!("{replacement}\n"))
                }
                None => text.push_str(&format!("{replacement}\n")),
            }
        }
        text
    }

    fn rejected(registries: &str, key: &str, problem: &str) {
        let err = load(registries).expect_err("the registry should be rejected");
        let line = err.to_string();
        assert_eq!(err.key(), Some(key), "{line}");
        assert!(line.contains(problem), "{line}");
        assert!(!line.contains('\n'), "one line: {line}");
    }

    #[test]
    fn a_registry_loads_with_its_defaults() {
        let settings = load(HARBOR).unwrap();
        let registry = &settings.registries[0];
        assert_eq!(registry.protocol, RegistryProtocol::Https);
        assert_eq!(registry.api_version, RegistryApiVersion::V2);
        assert_eq!(registry.namespace, None);
        assert_eq!(
            registry.password_source(),
            Some(PasswordSource::Env("HARBOR_PASSWORD"))
        );
        assert!(load("").unwrap().registries.is_empty(), "none by default");
    }

    #[test]
    fn every_broken_rule_is_named_by_its_key_path() {
        rejected(
            &harbor(&[("channel", Some("\"ftp\""))]),
            "registries[0].channel",
            "\"ftp\" is not one of swr, other",
        );
        rejected(
            &harbor(&[("type", Some("\"quay\""))]),
            "registries[0].type",
            "not one of harbor, jfrog",
        );
        rejected(
            &harbor(&[("protocol", Some("\"ftp\""))]),
            "registries[0].protocol",
            "not one of https, http",
        );
        rejected(
            &harbor(&[("api_version", Some("\"v3\""))]),
            "registries[0].api_version",
            "not one of v2, v1",
        );
        rejected(
            &harbor(&[("target", Some("\"nope\""))]),
            "registries[0].target",
            "not the name of a [[targets]] entry (configured: prod, staging)",
        );
        rejected(
            &harbor(&[("name", Some(&format!("\"{}\"", "n".repeat(129))))]),
            "registries[0].name",
            "129 characters; at most 128",
        );
        rejected(
            &harbor(&[("addr", Some("\"https://harbor.example.com\""))]),
            "registries[0].addr",
            "host[:port]",
        );
        rejected(
            &harbor(&[("username", Some("\"\""))]),
            "registries[0].username",
            "empty",
        );
        rejected(
            &harbor(&[("cluster_id", Some(&format!("\"{}\"", "c".repeat(65))))]),
            "registries[0].cluster_id",
            "at most 64",
        );
        rejected(
            &harbor(&[("channel", Some("\"other\""))]),
            "registries[0].namespace",
            "required when the channel is \"other\"",
        );
        rejected(
            &harbor(&[("namespace", Some("\"\""))]),
            "registries[0].namespace",
            "empty",
        );
        rejected(
            &harbor(&[("cluster_id", None)]),
            "registries[0].cluster_id",
            "missing",
        );
        rejected(
            &harbor(&[("colour", Some("\"blue\""))]),
            "registries[0].colour",
            "unknown key",
        );
    }

    #[test]
    fn exactly_one_password_source_is_required() {
        rejected(
            &harbor(&[("password_env", None)]),
            "registries[0].password_env",
            "missing; set password_env",
        );
        rejected(
            &harbor(&[("password_file", Some("\"/run/pw\""))]),
            "registries[0].password_file",
            "set only one of password_env and password_file",
        );
        rejected(
            &harbor(&[("password_env", Some("\"hunter2 pass!\""))]),
            "registries[0].password_env",
            "is not the name of an environment variable",
        );
        rejected(
            &harbor(&[("password_env", None), ("password_file", Some("\"\""))]),
            "registries[0].password_file",
            "empty",
        );
        let file = harbor(&[
            ("password_env", None),
            ("password_file", Some("\"/run/pw\"")),
        ]);
        let settings = load(&file).unwrap();
        assert_eq!(
            settings.registries[0].password_source(),
            Some(PasswordSource::File(Path::new("/run/pw")))
        );
    }

    #[test]
    fn names_are_unique_per_target() {
        rejected(
            &format!("{HARBOR}{HARBOR}"),
            "registries[1].name",
            "already the name of registries[0] of target prod",
        );
        let other_target = harbor(&[("target", Some("\"staging\""))]);
        assert_eq!(
            load(&format!("{HARBOR}{other_target}"))
                .unwrap()
                .registries
                .len(),
            2
        );
    }

    fn spec() -> RegistrySpec {
        RegistrySpec {
            name: "harbor-prod".into(),
            registry_type: RegistryType::Harbor,
            addr: "harbor.example.com:8443".into(),
            username: "robot".into(),
            cluster_id: "cluster-1".into(),
            channel: ScanImageChannel::Swr,
            namespace: None,
            protocol: RegistryProtocol::default(),
            api_version: RegistryApiVersion::default(),
        }
    }

    #[test]
    fn choices_accept_any_case_and_map_to_the_wire_spelling() {
        assert_eq!("Harbor".parse(), Ok(RegistryType::Harbor));
        assert_eq!(
            "JFROG".parse::<RegistryType>().map(|t| t.wire()),
            Ok("Jfrog")
        );
        assert_eq!(
            "other".parse::<ScanImageChannel>().map(|c| c.wire()),
            Ok("Other")
        );
        assert_eq!(
            "v1".parse::<RegistryApiVersion>().map(|v| v.wire()),
            Ok("V1")
        );
        assert_eq!(
            "HTTP".parse::<RegistryProtocol>().map(|p| p.wire()),
            Ok("http")
        );
        assert_eq!(
            "quay".parse::<RegistryType>(),
            Err("\"quay\" is not one of harbor, jfrog".to_owned())
        );
        assert_eq!(RegistryProtocol::default().wire(), "https");
        assert_eq!(RegistryApiVersion::default().wire(), "V2");
    }

    #[test]
    fn a_valid_registry_has_no_problems() {
        assert!(spec().problems().is_empty());
        let mut ipv6 = spec();
        ipv6.addr = "[fd00::1]:5000".into();
        assert!(ipv6.problems().is_empty(), "{:?}", ipv6.problems());
    }

    #[test]
    fn every_rule_is_reported_with_its_key() {
        let mut bad = spec();
        bad.name = "n".repeat(129);
        bad.addr = "https://harbor.example.com".into();
        bad.username = String::new();
        bad.cluster_id = "c".repeat(65);
        bad.channel = ScanImageChannel::Other;
        let keys: Vec<&str> = bad.problems().iter().map(|(key, _)| *key).collect();
        assert_eq!(
            keys,
            ["name", "addr", "username", "cluster_id", "namespace"]
        );

        let mut long_namespace = spec();
        long_namespace.namespace = Some("n".repeat(129));
        assert_eq!(long_namespace.problems()[0].0, "namespace");
        assert!(
            length(&"é".repeat(128), 128).is_ok(),
            "characters, not bytes"
        );
    }

    #[test]
    fn addresses_are_host_and_optional_port() {
        for good in ["harbor", "harbor.example.com", "10.0.0.1:5000", "[fd00::1]"] {
            assert_eq!(host_port(good), Ok(()), "{good}");
        }
        for bad in [
            "https://harbor",
            "harbor/path",
            "harbor:port",
            "harbor:99999",
            ":80",
            "har bor",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn environment_variable_names_are_plain() {
        assert!(env_var_name("HARBOR_PASSWORD_1").is_ok());
        for bad in ["", "1X", "MY VAR", "s3cr3t!pass"] {
            let problem = env_var_name(bad).expect_err(bad);
            assert!(!problem.contains("s3cr3t"), "never quoted back: {problem}");
        }
    }
}
