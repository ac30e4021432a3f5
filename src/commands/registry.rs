//! `hss-scand registry add | upload-command | apply`: connect third-party registries (Harbor,
//! JFrog) to HSS and get the scanner upload command.
//!
//! Every value is checked before anything is sent, with the rules of `add_registry` that the
//! configuration uses too, and every bad flag is reported at once; that is a usage error
//! (exit 2), like the ones the parser reports itself.
//!
//! A registry password is a [`SecretString`] from the moment it is read (standard input, an
//! environment variable or a file) until the request is serialised. It never appears in a
//! flag, a log line, an error or the output: the client scrubs it from error messages and logs
//! only the path of the upload-command request, whose query carries it.

use std::fmt;
use std::io::{self, BufRead};
use std::path::Path;

use anyhow::Context as _;
use secrecy::SecretString;

use super::UsageError;
use super::output::{print, print_json};
use crate::cli::{
    Output, PasswordArgs, REGISTRY_PASSWORD_ENV, RegistryAddArgs, RegistryCommand,
    UploadCommandArgs,
};
use crate::config::{
    PasswordSource, RegistryApiVersion, RegistryProtocol, RegistrySettings, RegistrySpec,
    RegistryType, ScanImageChannel, Settings, registry_limits as limits,
};
use crate::hss::registries::{
    self, AddRegistryRequest, RegistryInfo, UploadCommand, UploadCommandRequest,
};
use crate::hss::transport::client::HssClient;
use crate::startup::Startup;

pub(super) async fn run(command: RegistryCommand, startup: &Startup) -> anyhow::Result<()> {
    match command {
        RegistryCommand::Add(args) => add(&args, startup).await,
        RegistryCommand::UploadCommand(args) => upload_command(&args, startup).await,
        RegistryCommand::Apply { dry_run } => apply(startup, dry_run).await,
    }
}

async fn add(args: &RegistryAddArgs, startup: &Startup) -> anyhow::Result<()> {
    let (spec, input) = check_add(args, startup.settings()).map_err(usage)?;
    let password = read_password(input).map_err(usage)?;
    let client = client_for(startup, &args.target)?;
    registries::add(&client, &add_request(&spec, password))
        .await
        .with_context(|| {
            format!(
                "target {}: HSS did not add registry {:?}",
                args.target, spec.name
            )
        })?;
    tracing::info!(
        hss_target = %args.target,
        registry = %spec.name,
        "registry added"
    );
    let mut text = format!(
        "registry {:?} added to target {}; HSS now connects it through cluster {}\n",
        spec.name, args.target, spec.cluster_id
    );
    if spec.channel == ScanImageChannel::Other {
        text.push_str(
            "its cluster does not pull the scanner image from SWR: upload it with the commands `hss-scand registry upload-command` prints\n",
        );
    }
    print(&text).context("could not print the result")
}

async fn upload_command(args: &UploadCommandArgs, startup: &Startup) -> anyhow::Result<()> {
    let settings = startup.settings();
    let input = check_upload(args, settings).map_err(usage)?;
    let password = read_password(input).map_err(usage)?;
    let client = client_for(startup, &args.target)?;
    let request = UploadCommandRequest {
        registry_addr: args.addr.clone(),
        namespace: args.namespace.clone(),
        username: args.username.clone(),
        password,
    };
    let command = registries::upload_command(&client, &request)
        .await
        .with_context(|| format!("target {}: HSS gave no upload command", args.target))?;
    match args.output {
        Output::Table => print(&upload_table(&command)),
        Output::Json => print_json(&(serde_json::to_string_pretty(&command)? + "\n")),
    }
    .context("could not print the upload command")
}

fn upload_table(command: &UploadCommand) -> String {
    [
        ("image_command", &command.image_command),
        ("images_download_url", &command.images_download_url),
        ("swr_image_pull_command", &command.swr_image_pull_command),
    ]
    .iter()
    .map(|(name, value)| format!("{:<24}{value}\n", format!("{name}:")))
    .collect()
}

/// What happened to one `[[registries]]` entry.
enum Applied {
    Exists { differs: Vec<&'static str> },
    WouldAdd { password: String },
    Added,
    Failed(anyhow::Error),
}

/// How many entries ended which way.
#[derive(Debug, Default)]
struct Tally {
    exist: usize,
    added: usize,
    would_add: usize,
    failed: usize,
}

impl Applied {
    /// The text of the entry's line; counted in `tally`.
    fn describe(&self, tally: &mut Tally) -> String {
        match self {
            Applied::Exists { differs } => {
                tally.exist += 1;
                if differs.is_empty() {
                    "exists".to_owned()
                } else {
                    format!(
                        "exists, but HSS differs from the configuration in {}; not changed",
                        differs.join(", ")
                    )
                }
            }
            Applied::WouldAdd { password } => {
                tally.would_add += 1;
                format!("would add (password from {password})")
            }
            Applied::Added => {
                tally.added += 1;
                "added".to_owned()
            }
            Applied::Failed(err) => {
                tally.failed += 1;
                format!("FAILED: {}", crate::telemetry::error_chain(err.as_ref()))
            }
        }
    }
}

async fn apply(startup: &Startup, dry_run: bool) -> anyhow::Result<()> {
    let settings = startup.settings();
    if settings.registries.is_empty() {
        return print("no [[registries]] configured; nothing to apply\n")
            .context("could not print the result");
    }
    let clients = startup.clients()?;
    let mut tally = Tally::default();
    for (target, client) in &clients {
        let target = &target.name;
        let wanted: Vec<(usize, &RegistrySettings)> = settings
            .registries
            .iter()
            .enumerate()
            .filter(|(_, registry)| &registry.target == target)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let present = registries::list(client).await.map_err(|err| {
            tracing::warn!(hss_target = %target, error = %err, "cannot list the registries HSS has");
            format!("cannot list the registries HSS has: {err}")
        });
        for (index, registry) in wanted {
            let outcome = match &present {
                Err(why) => Applied::Failed(anyhow::anyhow!("{why}")),
                Ok(present) => apply_one(client, present, index, registry, dry_run).await,
            };
            match &outcome {
                Applied::Added => {
                    tracing::info!(hss_target = %target, registry = %registry.name, "registry added");
                }
                Applied::Failed(err) => {
                    tracing::warn!(hss_target = %target, registry = %registry.name, error = %crate::telemetry::error_chain(err.as_ref()), "registry not added");
                }
                Applied::Exists { .. } | Applied::WouldAdd { .. } => {}
            }
            let line = format!(
                "{target}/{}: {}\n",
                registry.name,
                outcome.describe(&mut tally)
            );
            print(&line).context("could not print the result")?;
        }
    }
    let Tally {
        exist,
        added,
        would_add,
        failed,
    } = tally;
    let summary = if dry_run {
        format!(
            "registries: {exist} exist, {would_add} would be added (dry run: nothing was added), {failed} failed\n"
        )
    } else {
        format!("registries: {exist} exist, {added} added, {failed} failed\n")
    };
    print(&summary).context("could not print the result")?;
    if failed > 0 {
        anyhow::bail!(
            "registry apply: {failed} of {} registries FAILED (see above)",
            settings.registries.len()
        );
    }
    Ok(())
}

/// One entry, given what HSS has: present by name, or added (or, in a dry run, not).
async fn apply_one(
    client: &HssClient,
    present: &[RegistryInfo],
    index: usize,
    registry: &RegistrySettings,
    dry_run: bool,
) -> Applied {
    if let Some(found) = present.iter().find(|r| r.registry_name == registry.name) {
        return Applied::Exists {
            differs: differences(registry, found),
        };
    }
    if dry_run {
        return Applied::WouldAdd {
            password: password_availability(registry),
        };
    }
    match add_configured(client, index, registry).await {
        Ok(()) => Applied::Added,
        Err(err) => Applied::Failed(err),
    }
}

/// Adds the `index`th `[[registries]]` entry; the password is read here and only here.
async fn add_configured(
    client: &HssClient,
    index: usize,
    registry: &RegistrySettings,
) -> anyhow::Result<()> {
    let context = || format!("registries[{index}]");
    let password = configured_password(registry).with_context(context)?;
    registries::add(client, &add_request(&registry.spec(), password))
        .await
        .with_context(|| format!("{}: HSS did not add it", context()))
}

/// Reads the password of a `[[registries]]` entry, trimmed; errors name the source, never
/// the value.
fn configured_password(registry: &RegistrySettings) -> anyhow::Result<SecretString> {
    let source = registry
        .password_source()
        .context("neither password_env nor password_file is set")?;
    let text = match source {
        PasswordSource::Env(name) => match std::env::var(name) {
            Ok(value) => SecretString::from(value.trim()),
            Err(std::env::VarError::NotPresent) => {
                anyhow::bail!("the password's environment variable {name} is not set")
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                anyhow::bail!("the password's environment variable {name} is not UTF-8 text")
            }
        },
        PasswordSource::File(path) => read_password_file(path)?,
    };
    checked_password(text)
        .map_err(|problem| anyhow::anyhow!("the password from {source}: {problem}"))
}

fn read_password_file(path: &Path) -> anyhow::Result<SecretString> {
    // The error of read_to_string names no content; the path is named here.
    let text = std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("cannot read password_file {}: {err}", path.display()))?;
    Ok(SecretString::from(text.trim()))
}

/// Whether the password of an entry is there, without reading it (for `--dry-run`).
fn password_availability(registry: &RegistrySettings) -> String {
    match registry.password_source() {
        Some(PasswordSource::Env(name)) => {
            let set = std::env::var_os(name).is_some_and(|value| !value.is_empty());
            format!(
                "environment variable {name}, {}",
                if set { "set" } else { "NOT set" }
            )
        }
        Some(PasswordSource::File(path)) => match std::fs::File::open(path) {
            Ok(_) => format!("password_file {}, readable", path.display()),
            Err(err) => format!("password_file {}, NOT readable: {err}", path.display()),
        },
        None => "nowhere".to_owned(),
    }
}

/// The configuration keys whose value in HSS differs from the entry; a field HSS left out is
/// not a difference.
fn differences(wanted: &RegistrySettings, found: &RegistryInfo) -> Vec<&'static str> {
    let namespace = wanted.namespace.as_deref().unwrap_or_default();
    let pairs: [(&'static str, &str, &str, bool); 8] = [
        (
            "type",
            wanted.registry_type.wire(),
            &found.registry_type,
            true,
        ),
        ("addr", &wanted.addr, &found.registry_addr, false),
        (
            "username",
            &wanted.username,
            &found.registry_username,
            false,
        ),
        (
            "cluster_id",
            &wanted.cluster_id,
            &found.connect_cluster_id,
            false,
        ),
        (
            "channel",
            wanted.channel.wire(),
            &found.get_scan_image_channel,
            true,
        ),
        ("namespace", namespace, &found.namespace, false),
        ("protocol", wanted.protocol.wire(), &found.protocol, true),
        (
            "api_version",
            wanted.api_version.wire(),
            &found.api_version,
            true,
        ),
    ];
    pairs
        .into_iter()
        .filter(|(_, want, have, any_case)| {
            !have.is_empty()
                && if *any_case {
                    !want.eq_ignore_ascii_case(have)
                } else {
                    want != have
                }
        })
        .map(|(key, ..)| key)
        .collect()
}

fn add_request(spec: &RegistrySpec, password: SecretString) -> AddRegistryRequest {
    AddRegistryRequest {
        registry_name: spec.name.clone(),
        registry_type: spec.registry_type.wire().to_owned(),
        api_version: spec.api_version.wire().to_owned(),
        protocol: spec.protocol.wire().to_owned(),
        registry_addr: spec.addr.clone(),
        registry_username: spec.username.clone(),
        registry_password: password,
        namespace: spec.namespace.clone(),
        connect_cluster_id: spec.cluster_id.clone(),
        get_scan_image_channel: spec.channel.wire().to_owned(),
    }
}

/// The client of a configured target. Fails (exit 78) when the credentials are missing.
fn client_for(startup: &Startup, target: &str) -> anyhow::Result<HssClient> {
    startup
        .clients()?
        .into_iter()
        .find(|(configured, _)| configured.name == target)
        .map(|(_, client)| client)
        .with_context(|| format!("target {target} is not configured"))
}

/// Bad flags, each named; reported together.
#[derive(Debug, Default)]
struct Violations(Vec<(String, String)>);

/// The order flags are reported in: the order of the usage line.
const FLAG_ORDER: [&str; 13] = [
    "--target",
    "--name",
    "--type",
    "--addr",
    "--username",
    "--cluster-id",
    "--channel",
    "--namespace",
    "--protocol",
    "--api-version",
    "--password-stdin",
    REGISTRY_PASSWORD_ENV,
    "password",
];

impl Violations {
    fn flag(&mut self, flag: &str, problem: impl fmt::Display) {
        self.0.push((flag.to_owned(), problem.to_string()));
    }

    /// A problem reported by configuration key (`cluster_id`), named as its flag.
    fn key(&mut self, key: &str, problem: impl fmt::Display) {
        let flag = format!("--{}", key.replace('_', "-"));
        self.flag(&flag, problem);
    }

    fn into_result(mut self) -> Result<(), Violations> {
        if self.0.is_empty() {
            return Ok(());
        }
        let rank = |flag: &str| {
            FLAG_ORDER
                .iter()
                .position(|f| *f == flag)
                .unwrap_or(FLAG_ORDER.len())
        };
        self.0.sort_by_key(|(flag, _)| rank(flag));
        Err(self)
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let each: Vec<String> = self
            .0
            .iter()
            .map(|(flag, problem)| format!("{flag}: {problem}"))
            .collect();
        f.write_str(&each.join("; "))
    }
}

/// Every bad flag on one line; `main` exits 2 for it, as clap does for the errors it finds.
fn usage(violations: Violations) -> UsageError {
    UsageError(violations.to_string())
}

/// Where the password will be read from, once the flags are known to be good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PasswordInput {
    Stdin,
    Env,
}

fn check_target(violations: &mut Violations, target: &str, settings: &Settings) {
    if !settings.targets.iter().any(|t| t.name == target) {
        let names: Vec<&str> = settings.targets.iter().map(|t| t.name.as_str()).collect();
        violations.flag(
            "--target",
            format!(
                "{target:?} is not a configured target (configured: {})",
                names.join(", ")
            ),
        );
    }
}

fn check_password_input(violations: &mut Violations, args: &PasswordArgs) -> PasswordInput {
    if args.password_stdin {
        PasswordInput::Stdin
    } else {
        if std::env::var_os(REGISTRY_PASSWORD_ENV).is_none() {
            violations.flag(
                "password",
                format!(
                    "not given; pipe it to --password-stdin, or set the environment variable {REGISTRY_PASSWORD_ENV} (it is never taken from a flag)"
                ),
            );
        }
        PasswordInput::Env
    }
}

fn parse<T: std::str::FromStr<Err = String>>(
    violations: &mut Violations,
    flag: &str,
    text: &str,
) -> Option<T> {
    text.parse()
        .map_err(|problem| violations.flag(flag, problem))
        .ok()
}

/// Checks every flag of `registry add` and says where the password will come from.
fn check_add(
    args: &RegistryAddArgs,
    settings: &Settings,
) -> Result<(RegistrySpec, PasswordInput), Violations> {
    let mut violations = Violations::default();
    check_target(&mut violations, &args.target, settings);
    let registry_type = parse(&mut violations, "--type", &args.registry_type);
    let channel = parse(&mut violations, "--channel", &args.channel);
    let protocol = parse(&mut violations, "--protocol", &args.protocol);
    let api_version = parse(&mut violations, "--api-version", &args.api_version);
    // A word that did not parse is already reported; a stand-in lets the rest be checked.
    let spec = RegistrySpec {
        name: args.name.clone(),
        registry_type: registry_type.unwrap_or(RegistryType::Harbor),
        addr: args.addr.clone(),
        username: args.username.clone(),
        cluster_id: args.cluster_id.clone(),
        channel: channel.unwrap_or(ScanImageChannel::Swr),
        namespace: args.namespace.clone(),
        protocol: protocol.unwrap_or(RegistryProtocol::Https),
        api_version: api_version.unwrap_or(RegistryApiVersion::V2),
    };
    for (key, problem) in spec.problems() {
        violations.key(key, problem);
    }
    let input = check_password_input(&mut violations, &args.password);
    violations.into_result().map(|()| (spec, input))
}

/// Checks every flag of `registry upload-command` (the four query parameters are 1..=256 and
/// 1..=128 characters) and says where the password will come from.
fn check_upload(
    args: &UploadCommandArgs,
    settings: &Settings,
) -> Result<PasswordInput, Violations> {
    let mut violations = Violations::default();
    check_target(&mut violations, &args.target, settings);
    for (flag, value, max) in [
        ("--addr", &args.addr, limits::ADDR),
        ("--namespace", &args.namespace, limits::NAMESPACE),
        ("--username", &args.username, limits::USERNAME),
    ] {
        if let Err(problem) = crate::config::registry_length(value, max) {
            violations.flag(flag, problem);
        }
    }
    let input = check_password_input(&mut violations, &args.password);
    violations.into_result().map(|()| input)
}

/// Reads the password from where `input` says, and checks its length. The errors name the
/// source (the flag or the variable), never the value.
fn read_password(input: PasswordInput) -> Result<SecretString, Violations> {
    let mut violations = Violations::default();
    let (flag, read) = match input {
        PasswordInput::Stdin => (
            "--password-stdin",
            password_line(io::stdin().lock())
                .map_err(|err| format!("cannot read standard input: {err}")),
        ),
        PasswordInput::Env => (
            REGISTRY_PASSWORD_ENV,
            match std::env::var(REGISTRY_PASSWORD_ENV) {
                Ok(value) => Ok(SecretString::from(value.trim())),
                Err(std::env::VarError::NotPresent) => Err("not set".to_owned()),
                Err(std::env::VarError::NotUnicode(_)) => Err("not UTF-8 text".to_owned()),
            },
        ),
    };
    match read.and_then(checked_password) {
        Ok(password) => Ok(password),
        Err(problem) => {
            violations.flag(flag, problem);
            Err(violations)
        }
    }
}

/// The first line of `reader` without its line ending (`\n` or `\r\n`); nothing else is
/// trimmed, since a password may begin or end with a space.
fn password_line(mut reader: impl BufRead) -> io::Result<SecretString> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    Ok(SecretString::from(password))
}

/// 1..=128 characters, as HSS requires; the problem never quotes the password.
fn checked_password(password: SecretString) -> Result<SecretString, String> {
    use secrecy::ExposeSecret as _;
    crate::config::registry_length(password.expose_secret(), limits::PASSWORD)
        .map(|()| password)
        .map_err(|problem| format!("the password is {problem}"))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn the_password_line_loses_only_its_line_ending() {
        let read = |input: &str| {
            password_line(input.as_bytes())
                .unwrap()
                .expose_secret()
                .to_owned()
        };
        assert_eq!(read("s3cret\n"), "s3cret");
        assert_eq!(read("s3cret\r\n"), "s3cret");
        assert_eq!(read(" with spaces \nsecond line\n"), " with spaces ");
        assert_eq!(read("no newline"), "no newline");
        assert_eq!(read(""), "");
    }

    #[test]
    fn password_problems_never_quote_the_password() {
        let long = "p".repeat(129);
        let problem = checked_password(SecretString::from(long.as_str())).unwrap_err();
        assert!(problem.contains("129 characters"), "{problem}");
        assert!(!problem.contains(&long));
        assert!(checked_password(SecretString::from("")).is_err());
        assert!(checked_password(SecretString::from("p".repeat(128))).is_ok());
    }

    #[test]
    fn violations_are_reported_in_usage_order_on_one_line() {
        let mut violations = Violations::default();
        violations.flag("password", "not given");
        violations.key("cluster_id", "too long");
        violations.flag("--type", "bad");
        let text = violations.into_result().unwrap_err().to_string();
        assert_eq!(
            text,
            "--type: bad; --cluster-id: too long; password: not given"
        );
    }

    #[test]
    fn differences_ignore_fields_hss_left_out_and_the_case_of_words() {
        let registry: RegistrySettings = toml::from_str(
            r#"
target = "prod"
name = "h"
type = "harbor"
addr = "h.example.com"
username = "robot"
cluster_id = "c1"
channel = "swr"
password_env = "P"
"#,
        )
        .unwrap();
        let same = RegistryInfo {
            registry_name: "h".into(),
            registry_type: "Harbor".into(),
            registry_addr: "h.example.com".into(),
            api_version: "V2".into(),
            ..RegistryInfo::default()
        };
        assert!(differences(&registry, &same).is_empty());
        let changed = RegistryInfo {
            registry_addr: "other.example.com".into(),
            connect_cluster_id: "c2".into(),
            protocol: "http".into(),
            ..same
        };
        assert_eq!(
            differences(&registry, &changed),
            ["addr", "cluster_id", "protocol"]
        );
    }
}
