//! Layering: the built-in defaults, then the operator's file, then `HSS_SCAND__SECTION__KEY`
//! environment variables; then deserialising with the exact key path of any failure, then
//! checking that every value the operator gave has its key's type (the config crate would
//! convert it), then validating. Errors name the environment variable when the failing key
//! was overridden by one, because that is where the operator has to look.

use std::collections::BTreeMap;
use std::ffi::OsString;

use config::{Config, Environment, File, FileFormat};

use super::error::one_line;
use super::schema::{self, Scalar, Schema};
use super::{ConfigError, DEFAULTS_TOML, ENV_PREFIX, ENV_SEPARATOR, Origin, Settings, validate};

/// The `HSS_SCAND__…` environment variables, read once so that the values the loader layers
/// and the names its errors cite are the same.
pub(super) struct EnvOverrides {
    /// Variable name as set → value.
    vars: BTreeMap<String, String>,
    /// Variables whose value is not UTF-8; they cannot be used and must not be ignored silently.
    not_unicode: Vec<String>,
}

impl EnvOverrides {
    pub(super) fn from_process() -> EnvOverrides {
        Self::from_os_pairs(std::env::vars_os())
    }

    fn from_os_pairs(pairs: impl IntoIterator<Item = (OsString, OsString)>) -> EnvOverrides {
        let mut overrides = EnvOverrides {
            vars: BTreeMap::new(),
            not_unicode: Vec::new(),
        };
        for (name, value) in pairs {
            // A name that is not UTF-8 cannot spell one of our keys.
            let Ok(name) = name.into_string() else {
                continue;
            };
            if key_of_var(&name).is_none() {
                continue;
            }
            match value.into_string() {
                Ok(value) => {
                    overrides.vars.insert(name, value);
                }
                Err(_) => overrides.not_unicode.push(name),
            }
        }
        overrides
    }

    #[cfg(test)]
    pub(super) fn from_pairs(pairs: &[(&str, &str)]) -> EnvOverrides {
        Self::from_os_pairs(
            pairs
                .iter()
                .map(|(name, value)| (OsString::from(name), OsString::from(value))),
        )
    }

    /// The config-crate sources for these variables (not the live process environment, so the
    /// loader sees exactly what [`EnvOverrides::origin_of`] reasons about): the variables of
    /// string keys as written, the others parsed into booleans and numbers. Parsing a string
    /// key's value would change it (`007` would become `7`, `TRUE` `true`).
    fn sources(&self, schema: &Schema) -> [Environment; 2] {
        let (text, parsed): (Vec<_>, Vec<_>) = self
            .vars
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .partition(|(name, _)| {
                key_of_var(name).and_then(|key| schema.scalar_at(&key)) == Some(Scalar::String)
            });
        let source = |vars: Vec<(String, String)>, try_parsing: bool| {
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator(ENV_SEPARATOR)
                .separator(ENV_SEPARATOR)
                .try_parsing(try_parsing)
                .source(Some(vars.into_iter().collect()))
        };
        [source(text, false), source(parsed, true)]
    }

    /// The first variable whose value is not of its key's type: what the config crate would
    /// otherwise convert (`HSS_SCAND__POLICY__BATCH_SIZE=2.5` to a count, `=yes` to true).
    fn check(&self, schema: &Schema) -> Result<(), ConfigError> {
        for (name, value) in &self.vars {
            let Some(key) = key_of_var(name) else {
                continue;
            };
            let Some(expected) = schema.scalar_at(&key) else {
                continue;
            };
            if let Err(problem) = schema::check_text(expected, value) {
                return Err(ConfigError::invalid(
                    Origin::Environment(name.clone()),
                    key,
                    &problem,
                ));
            }
        }
        Ok(())
    }

    /// Where the value of `key` came from: the variable that overrides it (or a key inside
    /// it), else the file.
    fn origin_of(&self, key: &str, file: &Origin) -> Origin {
        let deeper = format!("{key}.");
        self.vars
            .keys()
            .find(|name| {
                key_of_var(name)
                    .is_some_and(|var_key| var_key == key || var_key.starts_with(&deeper))
            })
            .map_or_else(|| file.clone(), |name| Origin::Environment(name.clone()))
    }
}

/// The key path a `HSS_SCAND__SECTION__KEY` variable overrides (`section.key`), or `None` when
/// the variable is not one of ours. Matching is case-insensitive, like the config crate's.
fn key_of_var(name: &str) -> Option<String> {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}").to_ascii_lowercase();
    let lower = name.to_ascii_lowercase();
    let rest = lower.strip_prefix(&prefix)?;
    (!rest.is_empty()).then(|| rest.replace(ENV_SEPARATOR, "."))
}

/// The names of the `HSS_SCAND__…` variables set in this process, sorted; `config check`
/// lists them so an operator sees why a value differs from the file.
pub fn overriding_env_vars() -> Vec<String> {
    let env = EnvOverrides::from_process();
    env.vars.into_keys().chain(env.not_unicode).collect()
}

/// Defaults < `text` (named `origin` in errors) < `env`, deserialised and validated.
pub(super) fn layered(
    text: &str,
    origin: &str,
    env: &EnvOverrides,
) -> Result<Settings, ConfigError> {
    let file = Origin::File(origin.to_owned());
    if let Some(name) = env.not_unicode.first() {
        return Err(ConfigError::invalid(
            Origin::Environment(name.clone()),
            key_of_var(name).unwrap_or_default(),
            "the value is not UTF-8 text",
        ));
    }
    let defaults = parse(DEFAULTS_TOML, &Origin::Defaults)?;
    // The keys of `[[targets]]`, `[[registries]]` and `[[policy.rules]]` and their types are
    // documented only in default.toml's commented examples (a test keeps them valid TOML).
    let examples = parse(
        &schema::commented_examples(DEFAULTS_TOML),
        &Origin::Defaults,
    )?;
    let operator = parse(text, &file)?;
    let schema = Schema::new(defaults, examples);

    let [env_text, env_parsed] = env.sources(&schema);
    let config = Config::builder()
        .add_source(File::from_str(DEFAULTS_TOML, FileFormat::Toml))
        .add_source(File::from_str(text, FileFormat::Toml))
        .add_source(env_text)
        .add_source(env_parsed)
        .build()
        .map_err(|err| layering_error(&err, &file))?;

    let settings: Settings = serde_path_to_error::deserialize(config)
        .map_err(|err| deserialize_error(err, &file, env))?;

    // Only after serde has accepted the values: what serde rejects, it names better than a
    // type can (scan_scope's "all" or a list, a duration, a URL), so this reports only what
    // serde accepted because the config crate had converted it. The file is checked whole,
    // even the keys a variable overrides: it is wrong as written, and will be read as such
    // once the variable is gone.
    schema
        .check_table(&operator)
        .map_err(|invalid| ConfigError::invalid(file.clone(), invalid.key, &invalid.problem))?;
    env.check(&schema)?;

    validate::settings(&settings).map_err(|invalid| {
        let origin = env.origin_of(&invalid.key, &file);
        ConfigError::invalid(origin, invalid.key, &invalid.problem)
    })?;
    Ok(settings)
}

/// Parses `text` as TOML, to check the types of its values and to report a syntax error with
/// its line and column; the config crate's own report is many lines long and has no position
/// we can reach.
fn parse(text: &str, origin: &Origin) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|err| ConfigError::Syntax {
            origin: origin.clone(),
            line_column: err.span().map(|span| line_column(text, span.start)),
            message: one_line(err.message()),
        })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// A failure of the config crate to merge the layers (rare: the texts were already parsed).
fn layering_error(err: &config::ConfigError, file: &Origin) -> ConfigError {
    match err {
        config::ConfigError::FileParse { cause, .. } => ConfigError::Syntax {
            origin: file.clone(),
            line_column: None,
            message: one_line(&cause.to_string()),
        },
        other => ConfigError::Invalid {
            origin: file.clone(),
            key: "(configuration)".to_owned(),
            problem: one_line(&describe(other)),
        },
    }
}

/// Turns a deserialisation failure into the error for its key.
fn deserialize_error(
    err: serde_path_to_error::Error<config::ConfigError>,
    file: &Origin,
    env: &EnvOverrides,
) -> ConfigError {
    let path = key_path(err.path());
    let message = describe(err.inner());

    // serde's wording for deny_unknown_fields: "unknown field `x`, expected one of `a`, `b`".
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, tail)) = rest.split_once('`')
    {
        let key = if path.rsplit('.').next() == Some(field) {
            path
        } else {
            join(&path, field)
        };
        return ConfigError::UnknownKey {
            origin: env.origin_of(&key, file),
            expected: tail.strip_prefix(", expected ").map(str::to_owned),
            key,
        };
    }

    // A required key is absent. Only keys without a default can be missing, because the
    // defaults layer provides every other one.
    if let Some(field) = missing_field(err.inner(), &message) {
        let key = join(&path, &field);
        let problem = if key == "targets" {
            "no [[targets]] configured; at least one is required"
        } else {
            "missing; this key has no default and must be set"
        };
        return ConfigError::invalid(file.clone(), key, problem);
    }

    let key = if path.is_empty() {
        "(top level)".to_owned()
    } else {
        path
    };
    ConfigError::invalid(env.origin_of(&key, file), key, &message)
}

/// The name of the missing field, if that is the error. The config crate reports it as
/// `NotFound` with its own, dot-less key path (`targets[0]project_id`); serde's generic
/// wording is "missing field `x`".
fn missing_field(err: &config::ConfigError, message: &str) -> Option<String> {
    match err {
        config::ConfigError::NotFound(key) => key.rsplit(['.', ']']).next().map(str::to_owned),
        config::ConfigError::At { error, .. } => missing_field(error, message),
        _ => message
            .strip_prefix("missing field `")
            .map(|rest| rest.trim_end_matches('`').to_owned()),
    }
}

/// `targets[1].image_types[0]` from serde_path_to_error's segments; empty at the top level.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;

    let mut key = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => key.push_str(&format!("[{index}]")),
            Segment::Map { key: name } | Segment::Enum { variant: name } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            Segment::Unknown => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push('?');
            }
        }
    }
    key
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// What went wrong with a value, without the config crate's own key and origin (ours are
/// more precise) so the key is not named twice.
fn describe(err: &config::ConfigError) -> String {
    match err {
        config::ConfigError::Type {
            unexpected,
            expected,
            ..
        } => format!("expected {expected}, found {unexpected}"),
        config::ConfigError::At { error, .. } => describe(error),
        config::ConfigError::Message(message) => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: &str = r#"
[[targets]]
name = "prod"
region = "ap-southeast-1"
project_id = "0123456789abcdef0123456789abcdef"
image_types = ["private_image"]
"#;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        layered(text, "x.toml", &EnvOverrides::from_pairs(env))
    }

    fn load_err(text: &str, env: &[(&str, &str)]) -> String {
        let err = load(text, env).expect_err("the configuration should be rejected");
        let line = err.to_string();
        assert!(!line.contains('\n'), "not one line: {line}");
        line
    }

    #[test]
    fn the_defaults_plus_one_target_are_a_valid_configuration() {
        let settings = load(TARGET, &[]).unwrap();
        assert_eq!(settings.targets[0].name, "prod");
        assert_eq!(settings.targets[0].enterprise_project_id, "");
        assert!(!settings.targets[0].trigger_swr_sync);
        assert_eq!(settings.hss.page_size, 200);
        assert_eq!(settings.policy.batch_size, 1000);
        assert_eq!(settings.hss.api, crate::domain::ApiChoice::Auto);
        assert_eq!(settings.targets[0].api, None);
        assert_eq!(settings.policy.scan_scope.bitmask(), 0x7fff_ffff);
        assert_eq!(settings.policy.third_party_rate_limit, 0);
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let text = format!("{TARGET}\n[policy]\nrescan_after = \"1d\"\n");
        let settings = load(
            &text,
            &[
                ("HSS_SCAND__POLICY__RESCAN_AFTER", "3d"),
                ("HSS_SCAND__HSS__PAGE_SIZE", "50"),
                ("HSS_SCAND__LOG__FORMAT", "json"),
                ("HSS_SCAND_CONFIG", "/not/an/override.toml"),
            ],
        )
        .unwrap();
        assert_eq!(settings.policy.rescan_after.as_secs(), 3 * 86_400);
        assert_eq!(settings.hss.page_size, 50);
        assert_eq!(settings.log.format, super::super::LogFormat::Json);
    }

    #[test]
    fn syntax_errors_give_line_and_column() {
        let line = load_err("[policy]\nbatch_size = 1\n= oops\n", &[]);
        assert!(
            line.starts_with("config error in x.toml: line 3 column 1: TOML parse error"),
            "{line}"
        );
    }

    #[test]
    fn unknown_keys_are_named_by_their_full_path() {
        let text = format!("{TARGET}\n[policy]\nrescan_aftr = \"1d\"\n");
        let line = load_err(&text, &[]);
        assert!(
            line.starts_with(
                "config error in x.toml: unknown key policy.rescan_aftr (expected one of"
            ),
            "{line}"
        );
        let line = load_err(&format!("{TARGET}\n[polcy]\n"), &[]);
        assert!(line.contains("unknown key polcy "), "{line}");
        let text = format!("{TARGET}colour = \"blue\"\n");
        assert!(load_err(&text, &[]).contains("unknown key targets[0].colour"));
    }

    #[test]
    fn unknown_keys_from_the_environment_name_the_variable() {
        let line = load_err(TARGET, &[("HSS_SCAND__POLICY__RESCAN_AFTR", "3d")]);
        assert!(
            line.starts_with(
                "config error in environment variable HSS_SCAND__POLICY__RESCAN_AFTR: unknown key policy.rescan_aftr"
            ),
            "{line}"
        );
    }

    #[test]
    fn bad_values_name_the_key_and_where_it_came_from() {
        let text = format!("{TARGET}\n[hss]\npage_size = \"many\"\n");
        let line = load_err(&text, &[]);
        assert!(
            line.starts_with("config error in x.toml: hss.page_size: expected"),
            "{line}"
        );

        let line = load_err(TARGET, &[("HSS_SCAND__POLICY__RESCAN_AFTER", "soon")]);
        assert!(
            line.starts_with(
                "config error in environment variable HSS_SCAND__POLICY__RESCAN_AFTER: policy.rescan_after: \"soon\" is not a duration"
            ),
            "{line}"
        );

        let line = load_err(TARGET, &[("HSS_SCAND__HSS__PAGE_SIZE", "500")]);
        assert_eq!(
            line,
            "config error in environment variable HSS_SCAND__HSS__PAGE_SIZE: hss.page_size: 500 is out of range 1..=200"
        );
    }

    #[test]
    fn the_incremental_keys_load_and_a_bad_value_names_its_key() {
        let settings = load(TARGET, &[]).unwrap();
        assert_eq!(
            (
                settings.sync.incremental,
                settings.sync.overlap,
                settings.sync.full_every
            ),
            (
                crate::config::IncrementalListing::Auto,
                std::time::Duration::from_secs(600),
                std::time::Duration::from_secs(86_400)
            )
        );
        let text = format!("{TARGET}\n[sync]\nincremental = \"off\"\nfull_every = \"6h\"\n");
        let settings = load(&text, &[("HSS_SCAND__SYNC__OVERLAP", "2m")]).unwrap();
        assert_eq!(
            settings.sync.incremental,
            crate::config::IncrementalListing::Off
        );
        assert_eq!(
            settings.sync.full_every,
            std::time::Duration::from_secs(6 * 3600)
        );
        assert_eq!(settings.sync.overlap, std::time::Duration::from_secs(120));

        let line = load_err(&format!("{TARGET}\n[sync]\nincremental = \"yes\"\n"), &[]);
        assert!(
            line.starts_with("config error in x.toml: sync.incremental:") && line.contains("auto"),
            "{line}"
        );
        let line = load_err(TARGET, &[("HSS_SCAND__SYNC__FULL_EVERY", "daily")]);
        assert!(
            line.contains("sync.full_every: \"daily\" is not a duration"),
            "{line}"
        );
    }

    #[test]
    fn the_scan_scope_is_all_or_a_list_of_risks() {
        let scope = |text: &str| {
            load(&format!("{TARGET}\n[policy]\nscan_scope = {text}\n"), &[])
                .map(|s| s.policy.scan_scope.bitmask())
        };
        assert_eq!(scope(r#""all""#).unwrap(), 0x7fff_ffff);
        assert_eq!(
            scope(r#"["vulnerabilities", "malicious_files", "vulnerabilities"]"#).unwrap(),
            0x000f_0f00
        );
        assert_eq!(
            scope(
                r#"["baseline", "vulnerabilities", "malicious_files", "sensitive_information",
                    "software_compliance"]"#
            )
            .unwrap(),
            0x7fff_ffff,
            "every risk listed is all"
        );
        for bad in [r#""everything""#, "[]", r#"["viruses"]"#, "7"] {
            let line = load_err(&format!("{TARGET}\n[policy]\nscan_scope = {bad}\n"), &[]);
            assert!(
                line.contains("policy.scan_scope") && line.contains("\"all\" or a list of"),
                "{bad}: {line}"
            );
        }
    }

    #[test]
    fn a_value_of_another_type_is_an_error_not_a_conversion() {
        let policy = |line: &str| load_err(&format!("{TARGET}\n[policy]\n{line}\n"), &[]);
        assert_eq!(
            policy("batch_size = 2.5"),
            "config error in x.toml: policy.batch_size: expected an integer, found a float (2.5)"
        );
        assert_eq!(
            policy("batch_size = true"),
            "config error in x.toml: policy.batch_size: expected an integer, found a boolean (true)"
        );
        assert_eq!(
            policy("daily_budget = 2.5"),
            "config error in x.toml: policy.daily_budget: expected an integer, found a float (2.5)"
        );
        assert_eq!(
            policy("latest_only = \"yes\""),
            "config error in x.toml: policy.latest_only: expected a boolean, found a string (\"yes\")"
        );
        assert_eq!(
            policy("batch_size = \"12\""),
            "config error in x.toml: policy.batch_size: expected an integer, found a string (\"12\")"
        );
        let line = load_err(&TARGET.replace("\"prod\"", "123"), &[]);
        assert_eq!(
            line,
            "config error in x.toml: targets[0].name: expected a string, found an integer (123)"
        );
    }

    #[test]
    fn keys_of_targets_and_rules_must_have_their_type_too() {
        let line = load_err(&format!("{TARGET}trigger_swr_sync = \"yes\"\n"), &[]);
        assert_eq!(
            line,
            "config error in x.toml: targets[0].trigger_swr_sync: expected a boolean, found a string (\"yes\")"
        );
        let rules = |rule: &str| {
            load_err(
                &format!("{TARGET}\n[[policy.rules]]\nskip = true\n[[policy.rules]]\n{rule}\n"),
                &[],
            )
        };
        assert_eq!(
            rules("priority = 1.5"),
            "config error in x.toml: policy.rules[1].priority: expected an integer, found a float (1.5)"
        );
        assert_eq!(
            rules("skip = 1"),
            "config error in x.toml: policy.rules[1].skip: expected a boolean, found an integer (1)"
        );
    }

    #[test]
    fn values_of_their_keys_type_still_load() {
        let text = format!(
            "{TARGET}trigger_swr_sync = true\n\n[sync]\nmax_delete_share = 1\n\n\
             [policy]\nbatch_size = 12\ndaily_budget = 30\nlatest_only = true\n\
             scan_scope = [\"baseline\"]\n\n[[policy.rules]]\npriority = -2\nskip = true\n"
        );
        let settings = load(&text, &[]).unwrap();
        assert!(settings.targets[0].trigger_swr_sync);
        assert_eq!(settings.sync.max_delete_share, 1.0);
        assert_eq!(settings.policy.batch_size, 12);
        assert_eq!(settings.policy.daily_budget, 30);
        assert!(settings.policy.latest_only);
        assert_eq!(settings.policy.scan_scope.bitmask(), 0x0000_f000);
        assert_eq!(
            (
                settings.policy.rules[0].priority,
                settings.policy.rules[0].skip
            ),
            (-2, true)
        );

        let text =
            format!("{TARGET}\n[sync]\nmax_delete_share = 0.5\n[policy]\nscan_scope = \"all\"\n");
        let settings = load(&text, &[]).unwrap();
        assert_eq!(settings.sync.max_delete_share, 0.5);
        assert_eq!(settings.policy.scan_scope.bitmask(), 0x7fff_ffff);
    }

    #[test]
    fn environment_values_must_be_of_their_keys_type() {
        assert_eq!(
            load_err(TARGET, &[("HSS_SCAND__POLICY__BATCH_SIZE", "2.5")]),
            "config error in environment variable HSS_SCAND__POLICY__BATCH_SIZE: policy.batch_size: expected an integer, found \"2.5\""
        );
        assert_eq!(
            load_err(TARGET, &[("HSS_SCAND__POLICY__LATEST_ONLY", "yes")]),
            "config error in environment variable HSS_SCAND__POLICY__LATEST_ONLY: policy.latest_only: expected true or false, found \"yes\""
        );
        let line = load_err(TARGET, &[("HSS_SCAND__DAEMON__SYNC_ON_START", "0")]);
        assert!(
            line.contains(
                "HSS_SCAND__DAEMON__SYNC_ON_START: daemon.sync_on_start: expected true or false"
            ),
            "{line}"
        );

        let settings = load(
            TARGET,
            &[
                ("HSS_SCAND__POLICY__BATCH_SIZE", "12"),
                ("HSS_SCAND__POLICY__LATEST_ONLY", "true"),
                ("HSS_SCAND__DAEMON__SYNC_ON_START", "false"),
                ("HSS_SCAND__SYNC__MAX_DELETE_SHARE", "1"),
            ],
        )
        .unwrap();
        assert_eq!(settings.policy.batch_size, 12);
        assert!(settings.policy.latest_only);
        assert!(!settings.daemon.sync_on_start);
        assert_eq!(settings.sync.max_delete_share, 1.0);
    }

    #[test]
    fn environment_values_of_string_keys_are_taken_as_written() {
        let settings = load(
            TARGET,
            &[
                ("HSS_SCAND__CREDENTIALS__AK_FILE", "007"),
                ("HSS_SCAND__CREDENTIALS__SK_FILE", "TRUE"),
            ],
        )
        .unwrap();
        assert_eq!(settings.credentials.ak_file, Some("007".into()));
        assert_eq!(settings.credentials.sk_file, Some("TRUE".into()));
    }

    #[test]
    fn a_file_value_of_another_type_is_an_error_even_when_a_variable_overrides_it() {
        let text = format!("{TARGET}\n[policy]\nbatch_size = 2.5\n");
        let line = load_err(&text, &[("HSS_SCAND__POLICY__BATCH_SIZE", "12")]);
        assert_eq!(
            line,
            "config error in x.toml: policy.batch_size: expected an integer, found a float (2.5)"
        );
    }

    #[test]
    fn counts_that_must_be_positive_say_so() {
        let line = load_err(TARGET, &[("HSS_SCAND__HSS__REQUESTS_PER_SECOND", "0")]);
        assert_eq!(
            line,
            "config error in environment variable HSS_SCAND__HSS__REQUESTS_PER_SECOND: hss.requests_per_second: 0 is out of range; it must be at least 1"
        );
        let line = load_err(&format!("{TARGET}[hss]\nmax_retries = -1\n"), &[]);
        assert!(
            line.starts_with("config error in x.toml: hss.max_retries: expected"),
            "{line}"
        );
    }

    #[test]
    fn a_missing_target_key_is_named() {
        let line = load_err(
            "[[targets]]\nname = \"prod\"\nregion = \"r\"\nimage_types = [\"private_image\"]\n",
            &[],
        );
        assert_eq!(
            line,
            "config error in x.toml: targets[0].project_id: missing; this key has no default and must be set"
        );
    }

    #[test]
    fn a_file_without_targets_says_one_is_required() {
        let line = load_err("", &[]);
        assert_eq!(
            line,
            "config error in x.toml: targets: no [[targets]] configured; at least one is required"
        );
    }

    #[test]
    fn a_value_that_is_not_utf8_in_the_environment_is_an_error() {
        use std::os::unix::ffi::OsStringExt;

        let env = EnvOverrides::from_os_pairs([(
            OsString::from("HSS_SCAND__LOG__LEVEL"),
            OsString::from_vec(vec![0xff, 0xfe]),
        )]);
        let err = layered(TARGET, "x.toml", &env).unwrap_err();
        assert_eq!(
            err.to_string(),
            "config error in environment variable HSS_SCAND__LOG__LEVEL: log.level: the value is not UTF-8 text"
        );
    }

    #[test]
    fn env_variable_names_map_to_key_paths() {
        assert_eq!(
            key_of_var("HSS_SCAND__POLICY__RESCAN_AFTER").as_deref(),
            Some("policy.rescan_after")
        );
        assert_eq!(
            key_of_var("hss_scand__hss__page_size").as_deref(),
            Some("hss.page_size")
        );
        assert_eq!(key_of_var("HSS_SCAND_CONFIG"), None);
        assert_eq!(key_of_var("HSS_SCAND__"), None);
        assert_eq!(key_of_var("PATH"), None);
    }

    #[test]
    fn line_and_column_count_characters_from_one() {
        assert_eq!(line_column("ab\ncdé\nx", 0), (1, 1));
        assert_eq!(line_column("ab\ncdé\nx", 3), (2, 1));
        assert_eq!(line_column("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_column("ab\ncdé\nx", 7), (2, 4));
    }
}
