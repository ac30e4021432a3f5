//! Third-party registries against `hss-sim`: `registry add`, `registry upload-command` and
//! `registry apply` run as the real binary; every validation error named and sending nothing;
//! `apply` adding only what is missing; and a registry password never showing up in a log
//! line at any level, an error, the output of `config check`, or the simulator's own logs.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use hss_scand::hss::registries::{
    self, AddRegistryRequest, RegistryInfo, UploadCommand, UploadCommandRequest,
};
use hss_scand::sim::{ScriptedFault, SimConfig, SimHandle};
use tracing_subscriber::fmt::MakeWriter;

use crate::support::cli::{Outcome, config_check, run_hss_scand};
use crate::support::client::client_for;
use crate::support::config::ConfigText;
use crate::support::process::{SimProcess, run_hss_scand_with_stdin};
use crate::support::sim::spawn_sim;

/// The password every test uses, so that any leak is found by one search. The characters
/// after the word change when percent-encoded, the word does not: searching for the word
/// finds the password raw and encoded.
const MARKER: &str = "MARKERPW";
const PASSWORD: &str = "MARKERPW-s3cret!@ #%&=+";
const PASSWORD_ENV: &str = "HSS_SCAND_REGISTRY_PASSWORD";

fn sim_config() -> SimConfig {
    SimConfig {
        images: 10,
        ..SimConfig::default()
    }
}

/// A configuration directory for one simulator: target `prod` is the simulator's project.
struct Fixture {
    dir: tempfile::TempDir,
    config: String,
}

impl Fixture {
    fn new(base_url: &str, project_id: &str, extra: &str) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config.toml");
        ConfigText::new()
            .database(&dir.path().join("state.db"))
            .endpoint(base_url)
            .set("hss.requests_per_second", "1000")
            .set("hss.max_retries", "1")
            .target("prod", project_id, &["private_image"])
            .raw(extra)
            .write(&config);
        Fixture {
            config: config.display().to_string(),
            dir,
        }
    }

    fn for_sim(sim: &SimHandle, extra: &str) -> Fixture {
        Fixture::new(&sim.base_url(), sim.project_id(), extra)
    }

    /// A file in the fixture's directory holding `text`.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write file");
        path.display().to_string()
    }
}

/// The simulator's keys, plus `extra`.
fn env_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("HUAWEICLOUD_SDK_AK", "sim-ak"),
        ("HUAWEICLOUD_SDK_SK", "sim-sk"),
    ];
    env.extend_from_slice(extra);
    env
}

/// Runs the binary off the async runtime, so the in-process simulator keeps answering.
async fn run(args: &[String], env: &[(&str, &str)], stdin: Option<&str>) -> Outcome {
    let args = args.to_vec();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        match stdin {
            Some(stdin) => run_hss_scand_with_stdin(&args, &env, &stdin),
            None => run_hss_scand(&args, &env),
        }
    })
    .await
    .expect("the command ran")
}

/// Flags as (flag, value); `None` is a flag without a value.
type Flags = Vec<(String, Option<String>)>;

/// Changes for [`with`], and the flag the error must name.
type Case<'a> = (&'a str, Vec<(&'a str, Option<&'a str>)>);

fn harbor_flags() -> Flags {
    [
        ("--target", "prod"),
        ("--name", "harbor-prod"),
        ("--type", "harbor"),
        ("--addr", "harbor.example.com:8443"),
        ("--username", "robot"),
        ("--cluster-id", "cluster-1"),
        ("--channel", "swr"),
    ]
    .iter()
    .map(|(f, v)| ((*f).to_owned(), Some((*v).to_owned())))
    .collect()
}

fn upload_flags() -> Flags {
    [
        ("--target", "prod"),
        ("--addr", "harbor.example.com:8443"),
        ("--namespace", "security"),
        ("--username", "robot"),
    ]
    .iter()
    .map(|(f, v)| ((*f).to_owned(), Some((*v).to_owned())))
    .collect()
}

/// `flags` with `changes` applied: a new value, `Some("")` for an empty one, a flag without a
/// value (`--password-stdin`) given as `(flag, None)` added, and `("-flag", _)` removing it.
fn with(mut flags: Flags, changes: &[(&str, Option<&str>)]) -> Flags {
    for (flag, value) in changes {
        if let Some(removed) = flag.strip_prefix("-").filter(|f| f.starts_with("--")) {
            flags.retain(|(f, _)| f != removed);
            continue;
        }
        let value = value.map(str::to_owned);
        match flags.iter_mut().find(|(f, _)| f == flag) {
            Some(existing) => existing.1 = value,
            None => flags.push(((*flag).to_owned(), value)),
        }
    }
    flags
}

fn command(config: &str, words: &[&str], flags: &Flags) -> Vec<String> {
    let mut args = vec!["--config".to_owned(), config.to_owned()];
    args.extend(words.iter().map(|w| (*w).to_owned()));
    for (flag, value) in flags {
        args.push(flag.clone());
        if let Some(value) = value {
            args.push(value.clone());
        }
    }
    args
}

fn add(config: &str, flags: &Flags) -> Vec<String> {
    command(config, &["registry", "add"], flags)
}

fn upload(config: &str, flags: &Flags) -> Vec<String> {
    command(config, &["registry", "upload-command"], flags)
}

fn apply(config: &str, dry_run: bool) -> Vec<String> {
    let mut args = command(config, &["registry", "apply"], &Vec::new());
    if dry_run {
        args.push("--dry-run".to_owned());
    }
    args
}

fn assert_no_password(outcome: &Outcome) {
    for (stream, text) in [("stdout", &outcome.stdout), ("stderr", &outcome.stderr)] {
        assert!(
            !text.contains(MARKER),
            "the password is in {stream}:\n{text}"
        );
    }
}

async fn registries(sim: &SimHandle) -> Vec<RegistryInfo> {
    registries::list(&client_for(sim))
        .await
        .expect("the registries are listed")
}

async fn registry(sim: &SimHandle, name: &str) -> RegistryInfo {
    registries(sim)
        .await
        .into_iter()
        .find(|r| r.registry_name == name)
        .unwrap_or_else(|| panic!("HSS has no registry {name}"))
}

/// Adds a registry straight through the client, as if someone had done it before.
async fn add_directly(sim: &SimHandle, name: &str) {
    registries::add(
        &client_for(sim),
        &AddRegistryRequest {
            registry_name: name.into(),
            registry_type: "Harbor".into(),
            api_version: "V2".into(),
            protocol: "https".into(),
            registry_addr: "harbor.example.com".into(),
            registry_username: "robot".into(),
            registry_password: "set-up-password".into(),
            namespace: None,
            connect_cluster_id: "cluster-1".into(),
            get_scan_image_channel: "Swr".into(),
        },
    )
    .await
    .expect("the registry is added");
}

#[tokio::test]
async fn add_sends_the_wire_spellings_and_the_defaults() {
    let sim = spawn_sim(sim_config()).await;
    let f = Fixture::for_sim(&sim, "");

    let jfrog = with(
        harbor_flags(),
        &[
            ("--name", Some("jfrog-eu")),
            ("--type", Some("jfrog")),
            ("--channel", Some("Other")),
            ("--namespace", Some("security-tools")),
            ("--protocol", Some("http")),
            ("--api-version", Some("v1")),
            ("--password-stdin", None),
        ],
    );
    let out = run(
        &add(&f.config, &jfrog),
        &env_with(&[]),
        Some(&format!("{PASSWORD}\n")),
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains("registry \"jfrog-eu\" added to target prod"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("upload-command"),
        "channel other says what to do next"
    );
    assert_no_password(&out);

    let stored = registry(&sim, "jfrog-eu").await;
    assert_eq!(
        (
            stored.registry_type.as_str(),
            stored.get_scan_image_channel.as_str(),
            stored.namespace.as_str(),
            stored.protocol.as_str(),
            stored.api_version.as_str(),
        ),
        ("Jfrog", "Other", "security-tools", "http", "V1")
    );
    assert_eq!(
        (
            stored.registry_addr.as_str(),
            stored.registry_username.as_str(),
            stored.connect_cluster_id.as_str()
        ),
        ("harbor.example.com:8443", "robot", "cluster-1")
    );

    let out = run(
        &add(&f.config, &harbor_flags()),
        &env_with(&[(PASSWORD_ENV, PASSWORD)]),
        None,
    )
    .await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_no_password(&out);
    let stored = registry(&sim, "harbor-prod").await;
    assert_eq!(
        (
            stored.registry_type.as_str(),
            stored.get_scan_image_channel.as_str(),
            stored.protocol.as_str(),
            stored.api_version.as_str(),
            stored.namespace.as_str(),
        ),
        ("Harbor", "Swr", "https", "V2", ""),
        "protocol and api-version default to https and v2"
    );
    assert_eq!(sim.stats().registries_added, 2);
    assert_eq!(sim.stats().auth_failures, 0);
}

#[tokio::test]
async fn a_128_character_password_fits_once_its_line_ending_is_removed() {
    let sim = spawn_sim(sim_config()).await;
    let f = Fixture::for_sim(&sim, "");
    let longest = format!("{MARKER}{}", "p".repeat(128 - MARKER.len()));
    for (name, ending) in [("unix", "\n"), ("windows", "\r\n"), ("none", "")] {
        let flags = with(
            harbor_flags(),
            &[("--name", Some(name)), ("--password-stdin", None)],
        );
        // Only the first line is the password.
        let rest = if ending.is_empty() {
            ""
        } else {
            "second line\n"
        };
        let out = run(
            &add(&f.config, &flags),
            &env_with(&[]),
            Some(&format!("{longest}{ending}{rest}")),
        )
        .await;
        assert_eq!(out.code, Some(0), "{name}: {out:?}");
        assert_no_password(&out);
    }
    let out = run(
        &add(
            &f.config,
            &with(harbor_flags(), &[("--name", Some("from-env"))]),
        ),
        &env_with(&[(PASSWORD_ENV, &format!("{longest}\n"))]),
        None,
    )
    .await;
    assert_eq!(out.code, Some(0), "the variable is trimmed: {out:?}");
    assert_eq!(sim.stats().registries_added, 4);
}

#[tokio::test]
async fn without_a_password_add_names_both_ways_and_sends_nothing() {
    let sim = spawn_sim(sim_config()).await;
    let f = Fixture::for_sim(&sim, "");
    for args in [
        add(&f.config, &harbor_flags()),
        upload(&f.config, &upload_flags()),
    ] {
        let out = run(&args, &env_with(&[]), None).await;
        assert_eq!(out.code, Some(2), "{out:?}");
        assert!(out.stderr.contains("--password-stdin"), "{}", out.stderr);
        assert!(out.stderr.contains(PASSWORD_ENV), "{}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "one line: {}", out.stderr);
    }
    assert!(sim.stats().requests.is_empty(), "{:?}", sim.stats());
}

#[tokio::test]
async fn there_is_no_flag_that_takes_the_password() {
    let sim = spawn_sim(sim_config()).await;
    let f = Fixture::for_sim(&sim, "");
    for flag in ["--password", "--registry-password"] {
        let flags = with(harbor_flags(), &[(flag, Some(PASSWORD))]);
        let out = run(&add(&f.config, &flags), &env_with(&[]), None).await;
        assert_eq!(out.code, Some(2), "{out:?}");
        assert!(out.stderr.contains("unexpected argument"), "{}", out.stderr);
    }
    assert!(sim.stats().requests.is_empty());
}

/// Each case breaks one thing; the error must name `flag`, exit 2, and send nothing.
#[tokio::test]
async fn every_invalid_add_flag_is_named_and_nothing_is_sent() {
    let sim = spawn_sim(sim_config()).await;
    let f = Fixture::for_sim(&sim, "");
    let long = |n: usize| "x".repeat(n);
    let (name_129, addr_257, user_129, cluster_65, ns_129) =
        (long(129), long(257), long(129), long(65), long(129));
    let cases: Vec<Case> = vec![
        ("--target", vec![("--target", Some("staging"))]),
        ("--name", vec![("--name", Some(""))]),
        ("--name", vec![("--name", Some(&name_129))]),
        ("--type", vec![("--type", Some("quay"))]),
        ("--addr", vec![("--addr", Some(""))]),
        ("--addr", vec![("--addr", Some(&addr_257))]),
        (
            "--addr",
            vec![("--addr", Some("https://harbor.example.com"))],
        ),
        (
            "--addr",
            vec![("--addr", Some("harbor.example.com/library"))],
        ),
        ("--addr", vec![("--addr", Some("harbor.example.com:http"))]),
        ("--username", vec![("--username", Some(""))]),
        ("--username", vec![("--username", Some(&user_129))]),
        ("--cluster-id", vec![("--cluster-id", Some(""))]),
        ("--cluster-id", vec![("--cluster-id", Some(&cluster_65))]),
        ("--channel", vec![("--channel", Some("ftp"))]),
        ("--namespace", vec![("--channel", Some("other"))]),
        ("--namespace", vec![("--namespace", Some(""))]),
        ("--namespace", vec![("--namespace", Some(&ns_129))]),
        ("--protocol", vec![("--protocol", Some("ftp"))]),
        ("--api-version", vec![("--api-version", Some("v3"))]),
        // Missing flags are the parser's to report, with the same exit code.
        ("--cluster-id", vec![("---cluster-id", None)]),
        ("--name", vec![("---name", None)]),
    ];
    for (flag, changes) in &cases {
        let flags = with(harbor_flags(), changes);
        let out = run(
            &add(&f.config, &flags),
            &env_with(&[(PASSWORD_ENV, PASSWORD)]),
            None,
        )
        .await;
        assert_eq!(out.code, Some(2), "{flag} {changes:?}: {out:?}");
        assert!(
            out.stderr.contains(&format!("{flag} ")) || out.stderr.contains(&format!("{flag}:")),
            "{flag} {changes:?} is not named: {}",
            out.stderr
        );
        assert_no_password(&out);
        assert!(
            sim.stats().requests.is_empty(),
            "{flag} {changes:?} sent a request: {:?}",
            sim.stats().requests
        );
    }
    assert_eq!(sim.stats().registries_added, 0);
}

#[tokio::test]
async fn a_bad_password_is_named_by_its_source_and_never_shown() {
    let sim = spawn_sim(sim_config()).await;
    let f = Fixture::for_sim(&sim, "");
    let too_long = format!("{PASSWORD}{}", "p".repeat(128));
    let stdin = with(harbor_flags(), &[("--password-stdin", None)]);
    // (the source the error names, standard input if any, environment)
    type PasswordCase<'a> = (&'a str, Option<&'a str>, &'a [(&'a str, &'a str)]);
    let cases: [PasswordCase; 4] = [
        ("--password-stdin", Some(""), &[]),
        ("--password-stdin", Some(&too_long), &[]),
        (PASSWORD_ENV, None, &[(PASSWORD_ENV, "")]),
        (PASSWORD_ENV, None, &[(PASSWORD_ENV, &too_long)]),
    ];
    for (source, input, env) in cases {
        let flags = if input.is_some() {
            stdin.clone()
        } else {
            harbor_flags()
        };
        let out = run(&add(&f.config, &flags), &env_with(env), input).await;
        assert_eq!(out.code, Some(2), "{source}: {out:?}");
        assert!(
            out.stderr.contains(&format!("{source}: the password is")),
            "{source}: {}",
            out.stderr
        );
        assert_no_password(&out);
    }
    assert!(sim.stats().requests.is_empty());
}

#[tokio::test]
async fn every_violation_is_reported_in_one_line() {
    let sim = spawn_sim(sim_config()).await;
    let f = Fixture::for_sim(&sim, "");
    let flags = with(
        harbor_flags(),
        &[
            ("--target", Some("nope")),
            ("--type", Some("quay")),
            ("--addr", Some("https://x")),
            ("--channel", Some("other")),
            ("--api-version", Some("v9")),
        ],
    );
    let out = run(&add(&f.config, &flags), &env_with(&[]), None).await;
    assert_eq!(out.code, Some(2), "{out:?}");
    let line = out.stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "{line}");
    let named: Vec<usize> = [
        "--target:",
        "--type:",
        "--addr:",
        "--namespace:",
        "--api-version:",
        "password:",
    ]
    .iter()
    .map(|flag| {
        line.find(flag)
            .unwrap_or_else(|| panic!("{flag} missing: {line}"))
    })
    .collect();
    assert!(named.is_sorted(), "in the order of the usage line: {line}");
    assert!(sim.stats().requests.is_empty());
}

#[tokio::test]
async fn hss_rejecting_a_registry_fails_without_showing_the_password() {
    let sim = spawn_sim(sim_config()).await;
    let f = Fixture::for_sim(&sim, "");
    let env = env_with(&[(PASSWORD_ENV, PASSWORD)]);
    let first = run(&add(&f.config, &harbor_flags()), &env, None).await;
    assert_eq!(first.code, Some(0), "{first:?}");

    let again = run(&add(&f.config, &harbor_flags()), &env, None).await;
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(
        again
            .stderr
            .contains("HSS did not add registry \"harbor-prod\"")
            && again.stderr.contains("registry_name")
            && again.stderr.contains("already exists"),
        "{}",
        again.stderr
    );
    assert_no_password(&again);

    // A 500 to a POST is not retried: HSS may have received it.
    sim.fail_next(ScriptedFault::status("add_registry", 1, 500));
    let flags = with(harbor_flags(), &[("--name", Some("harbor-2"))]);
    let failed = run(&add(&f.config, &flags), &env, None).await;
    assert_eq!(failed.code, Some(1), "{failed:?}");
    assert!(failed.stderr.contains("500"), "{}", failed.stderr);
    assert_no_password(&failed);
    assert_eq!(sim.stats().requests["add_registry"], 3);
    assert_eq!(sim.stats().registries_added, 1);
}

#[tokio::test]
async fn missing_hss_credentials_are_a_configuration_error_after_the_flags() {
    let sim = spawn_sim(sim_config()).await;
    let f = Fixture::for_sim(&sim, "");
    let out = run(
        &add(&f.config, &harbor_flags()),
        &[(PASSWORD_ENV, PASSWORD)],
        None,
    )
    .await;
    assert_eq!(out.code, Some(78), "{out:?}");
    assert!(out.stderr.contains("HUAWEICLOUD_SDK_AK"), "{}", out.stderr);
    assert_no_password(&out);
    assert!(sim.stats().requests.is_empty());
}

#[tokio::test]
async fn upload_command_prints_the_three_fields_as_a_table_and_as_json() {
    let sim = spawn_sim(sim_config()).await;
    let f = Fixture::for_sim(&sim, "");
    let expected = registries::upload_command(
        &client_for(&sim),
        &UploadCommandRequest {
            registry_addr: "harbor.example.com:8443".into(),
            namespace: "security".into(),
            username: "robot".into(),
            password: "any".into(),
        },
    )
    .await
    .expect("the simulator answers");
    assert!(
        expected
            .image_command
            .contains("harbor.example.com:8443/security")
    );

    let table = run(
        &upload(
            &f.config,
            &with(upload_flags(), &[("--password-stdin", None)]),
        ),
        &env_with(&[]),
        Some(&format!("{PASSWORD}\n")),
    )
    .await;
    assert_eq!(table.code, Some(0), "{table:?}");
    for (name, value) in [
        ("image_command:", &expected.image_command),
        ("images_download_url:", &expected.images_download_url),
        ("swr_image_pull_command:", &expected.swr_image_pull_command),
    ] {
        assert!(
            table
                .stdout
                .lines()
                .any(|line| line.starts_with(name) && line.ends_with(value.as_str())),
            "{name} {value}: {}",
            table.stdout
        );
    }
    assert_no_password(&table);

    let json = run(
        &upload(
            &f.config,
            &with(upload_flags(), &[("--output", Some("json"))]),
        ),
        &env_with(&[(PASSWORD_ENV, PASSWORD)]),
        None,
    )
    .await;
    assert_eq!(json.code, Some(0), "{json:?}");
    let printed: UploadCommand = serde_json::from_str(&json.stdout).expect("JSON");
    assert_eq!(printed, expected);
    assert_no_password(&json);
    assert_eq!(sim.stats().requests["upload_command"], 3);
}

#[tokio::test]
async fn every_invalid_upload_command_flag_is_named_and_nothing_is_sent() {
    let sim = spawn_sim(sim_config()).await;
    let f = Fixture::for_sim(&sim, "");
    let (addr_257, ns_129, user_129) = ("a".repeat(257), "n".repeat(129), "u".repeat(129));
    let cases: Vec<Case> = vec![
        ("--target", vec![("--target", Some("staging"))]),
        ("--addr", vec![("--addr", Some(""))]),
        ("--addr", vec![("--addr", Some(&addr_257))]),
        ("--namespace", vec![("--namespace", Some(""))]),
        ("--namespace", vec![("--namespace", Some(&ns_129))]),
        ("--username", vec![("--username", Some(""))]),
        ("--username", vec![("--username", Some(&user_129))]),
        ("--output", vec![("--output", Some("yaml"))]),
        ("--namespace", vec![("---namespace", None)]),
    ];
    for (flag, changes) in &cases {
        let flags = with(upload_flags(), changes);
        let out = run(
            &upload(&f.config, &flags),
            &env_with(&[(PASSWORD_ENV, PASSWORD)]),
            None,
        )
        .await;
        assert_eq!(out.code, Some(2), "{flag} {changes:?}: {out:?}");
        assert!(
            out.stderr.contains(&format!("{flag} ")) || out.stderr.contains(&format!("{flag}:")),
            "{flag} {changes:?} is not named: {}",
            out.stderr
        );
        assert_no_password(&out);
    }
    let too_long = format!("{PASSWORD}{}", "p".repeat(128));
    let out = run(
        &upload(&f.config, &upload_flags()),
        &env_with(&[(PASSWORD_ENV, &too_long)]),
        None,
    )
    .await;
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains(PASSWORD_ENV), "{}", out.stderr);
    assert_no_password(&out);
    assert!(sim.stats().requests.is_empty(), "{:?}", sim.stats());
}

/// `[[registries]]` for target prod; each entry is `(name, password line)`.
fn registries_toml(entries: &[(&str, &str)]) -> String {
    entries
        .iter()
        .map(|(name, password)| {
            format!(
                r#"
[[registries]]
target = "prod"
name = "{name}"
type = "harbor"
addr = "harbor.example.com"
username = "robot"
cluster_id = "cluster-1"
channel = "swr"
{password}
"#
            )
        })
        .collect()
}

#[tokio::test]
async fn apply_adds_only_what_is_missing_and_a_second_run_adds_nothing() {
    let sim = spawn_sim(sim_config()).await;
    add_directly(&sim, "harbor-existing").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let password_file = dir.path().join("harbor-file.password");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).expect("write");
    let jfrog = r#"
[[registries]]
target = "prod"
name = "jfrog-new"
type = "jfrog"
addr = "jfrog.example.com:8081"
username = "hss"
cluster_id = "cluster-2"
channel = "other"
namespace = "tools"
api_version = "v1"
password_env = "JFROG_PASSWORD"
"#;
    let f = Fixture::for_sim(
        &sim,
        &format!(
            "{}{jfrog}{}",
            // Exists already: its variable is not even set, because it is never read.
            registries_toml(&[("harbor-existing", "password_env = \"UNSET_PASSWORD\"")]),
            registries_toml(&[(
                "harbor-file",
                &format!("password_file = \"{}\"", password_file.display())
            )]),
        ),
    );
    let env = env_with(&[("JFROG_PASSWORD", PASSWORD)]);
    let lines = |out: &Outcome| -> BTreeSet<String> {
        out.stdout
            .lines()
            .filter(|l| l.starts_with("prod/"))
            .map(str::to_owned)
            .collect()
    };

    let dry = run(&apply(&f.config, true), &env, None).await;
    assert_eq!(dry.code, Some(0), "{dry:?}");
    assert_eq!(
        lines(&dry),
        BTreeSet::from([
            "prod/harbor-existing: exists".to_owned(),
            "prod/jfrog-new: would add (password from environment variable JFROG_PASSWORD, set)"
                .to_owned(),
            format!(
                "prod/harbor-file: would add (password from password_file {}, readable)",
                password_file.display()
            ),
        ]),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("2 would be added (dry run"),
        "{}",
        dry.stdout
    );
    assert_no_password(&dry);
    let stats = sim.stats();
    assert_eq!(stats.registries_added, 1, "the dry run added nothing");
    assert_eq!(stats.requests["add_registry"], 1, "only the set-up");
    assert_eq!(stats.requests["list_registries"], 1);

    let applied = run(&apply(&f.config, false), &env, None).await;
    assert_eq!(applied.code, Some(0), "{applied:?}");
    assert_eq!(
        lines(&applied),
        BTreeSet::from([
            "prod/harbor-existing: exists".to_owned(),
            "prod/jfrog-new: added".to_owned(),
            "prod/harbor-file: added".to_owned(),
        ]),
        "{}",
        applied.stdout
    );
    assert!(
        applied
            .stdout
            .contains("registries: 1 exist, 2 added, 0 failed")
    );
    assert_no_password(&applied);
    assert_eq!(sim.stats().registries_added, 3);
    let jfrog = registry(&sim, "jfrog-new").await;
    assert_eq!(
        (
            jfrog.registry_type.as_str(),
            jfrog.get_scan_image_channel.as_str(),
            jfrog.namespace.as_str(),
            jfrog.api_version.as_str(),
            jfrog.protocol.as_str(),
            jfrog.connect_cluster_id.as_str(),
        ),
        ("Jfrog", "Other", "tools", "V1", "https", "cluster-2")
    );

    let again = run(&apply(&f.config, false), &env, None).await;
    assert_eq!(again.code, Some(0), "{again:?}");
    assert!(
        lines(&again).iter().all(|l| l.ends_with(": exists")),
        "{}",
        again.stdout
    );
    assert!(
        again
            .stdout
            .contains("registries: 3 exist, 0 added, 0 failed")
    );
    assert_eq!(
        sim.stats().registries_added,
        3,
        "the second run added nothing"
    );
    assert_eq!(sim.stats().requests["add_registry"], 3);
}

#[tokio::test]
async fn apply_names_the_registry_and_the_source_of_a_missing_password() {
    let sim = spawn_sim(sim_config()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let missing_file = dir.path().join("missing.password");
    let f = Fixture::for_sim(
        &sim,
        &registries_toml(&[
            ("no-variable", "password_env = \"UNSET_PASSWORD\""),
            (
                "no-file",
                &format!("password_file = \"{}\"", missing_file.display()),
            ),
            ("fine", "password_env = \"FINE_PASSWORD\""),
        ]),
    );
    let out = run(
        &apply(&f.config, false),
        &env_with(&[("FINE_PASSWORD", PASSWORD)]),
        None,
    )
    .await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout.contains(
            "prod/no-variable: FAILED: registries[0]: the password's environment variable UNSET_PASSWORD is not set"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "prod/no-file: FAILED: registries[1]: cannot read password_file {}",
            missing_file.display()
        )),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("prod/fine: added"), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("registry apply: 2 of 3 registries FAILED"),
        "{}",
        out.stderr
    );
    assert_no_password(&out);
    assert_eq!(sim.stats().registries_added, 1);
}

#[tokio::test]
async fn apply_lists_only_targets_with_registries_and_reports_a_listing_failure() {
    let sim = spawn_sim(sim_config()).await;
    // A second target in a project the simulator does not serve: listing it fails (404).
    let elsewhere = r#"
[[targets]]
name = "elsewhere"
region = "ap-southeast-1"
project_id = "not-the-simulators-project"
image_types = ["private_image"]
"#;
    let prod = registries_toml(&[("harbor-prod", "password_env = \"P\"")]);
    let env = env_with(&[("P", PASSWORD)]);

    let f = Fixture::for_sim(&sim, &format!("{elsewhere}{prod}"));
    let out = run(&apply(&f.config, false), &env, None).await;
    assert_eq!(out.code, Some(0), "elsewhere has no registries: {out:?}");
    assert_eq!(sim.stats().requests["list_registries"], 1);

    let broken = prod.replace("target = \"prod\"", "target = \"elsewhere\"");
    let f = Fixture::for_sim(&sim, &format!("{elsewhere}{broken}"));
    let out = run(&apply(&f.config, false), &env, None).await;
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout
            .contains("elsewhere/harbor-prod: FAILED: cannot list the registries HSS has"),
        "{}",
        out.stdout
    );
    assert_no_password(&out);
    assert_eq!(sim.stats().registries_added, 1);
}

#[tokio::test]
async fn apply_without_registries_says_so_and_sends_nothing() {
    let sim = spawn_sim(sim_config()).await;
    let f = Fixture::for_sim(&sim, "");
    let out = run(&apply(&f.config, false), &env_with(&[]), None).await;
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("no [[registries]] configured"),
        "{}",
        out.stdout
    );
    assert!(sim.stats().requests.is_empty());
}

#[test]
fn config_check_names_password_sources_and_never_shows_a_password() {
    let f = Fixture::new("http://127.0.0.1:9", "p", "");
    let file = f.file("harbor.password", PASSWORD);
    let text = format!(
        "{}{}",
        std::fs::read_to_string(&f.config).expect("read"),
        registries_toml(&[
            ("from-env", "password_env = \"HARBOR_PASSWORD\""),
            ("from-file", &format!("password_file = \"{file}\"")),
        ])
    );
    std::fs::write(&f.config, text).expect("write");
    let out = config_check(
        std::path::Path::new(&f.config),
        &[("HARBOR_PASSWORD", PASSWORD), (PASSWORD_ENV, PASSWORD)],
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    for expected in [
        "password_env = \"HARBOR_PASSWORD\"",
        &format!("password_file = \"{file}\""),
        "registry from-env of target prod: password from environment variable HARBOR_PASSWORD (set)",
        &format!(
            "registry from-file of target prod: password from password_file {file} is readable"
        ),
        "[[registries]]",
    ] {
        assert!(out.stdout.contains(expected), "{expected}: {}", out.stdout);
    }
    assert_no_password(&out);
}

#[test]
fn a_bad_registry_in_the_configuration_is_a_configuration_error_naming_its_key() {
    let cases = [
        (
            "channel = \"swr\"",
            "channel = \"ftp\"",
            "registries[0].channel",
        ),
        (
            "target = \"prod\"",
            "target = \"nope\"",
            "registries[0].target",
        ),
        ("password_env = \"P\"", "", "registries[0].password_env"),
        (
            "password_env = \"P\"",
            "password_env = \"P\"\npassword_file = \"/run/p\"",
            "registries[0].password_file",
        ),
        (
            "channel = \"swr\"",
            "channel = \"other\"",
            "registries[0].namespace",
        ),
    ];
    for (from, to, key) in cases {
        let registry = registries_toml(&[("harbor", "password_env = \"P\"")]).replace(from, to);
        let f = Fixture::new("http://127.0.0.1:9", "p", &registry);
        let out = config_check(std::path::Path::new(&f.config), &[]);
        assert_eq!(out.code, Some(78), "{key}: {out:?}");
        assert!(
            out.stderr.contains(&format!(": {key}: ")),
            "{key}: {}",
            out.stderr
        );
        // Every registry command refuses the configuration the same way.
        let out = run_hss_scand(
            &["--config", &f.config, "registry", "apply", "--dry-run"],
            &[],
        );
        assert_eq!(out.code, Some(78), "{key}: {out:?}");
    }
}

/// The three commands, and HSS rejecting a call, at TRACE level: the password shows up in no
/// log line, error or output of hss-scand, and the upload-command URL is never logged.
#[tokio::test]
async fn trace_logs_of_every_registry_command_never_contain_the_password() {
    let sim = spawn_sim(sim_config()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let password_file = dir.path().join("p");
    std::fs::write(&password_file, PASSWORD).expect("write");
    let f = Fixture::for_sim(
        &sim,
        &registries_toml(&[
            ("apply-env", "password_env = \"P\""),
            (
                "apply-file",
                &format!("password_file = \"{}\"", password_file.display()),
            ),
        ]),
    );
    let trace = [("RUST_LOG", "trace")];
    let env = env_with(&[
        ("RUST_LOG", "trace"),
        ("P", PASSWORD),
        (PASSWORD_ENV, PASSWORD),
    ]);
    let stdin = format!("{PASSWORD}\n");
    let runs = [
        run(
            &add(
                &f.config,
                &with(harbor_flags(), &[("--password-stdin", None)]),
            ),
            &env_with(&trace),
            Some(&stdin),
        )
        .await,
        // HSS rejects it: the name is taken.
        run(&add(&f.config, &harbor_flags()), &env, None).await,
        run(
            &upload(
                &f.config,
                &with(upload_flags(), &[("--password-stdin", None)]),
            ),
            &env_with(&trace),
            Some(&stdin),
        )
        .await,
        run(
            &upload(
                &f.config,
                &with(upload_flags(), &[("--output", Some("json"))]),
            ),
            &env,
            None,
        )
        .await,
        run(&apply(&f.config, true), &env, None).await,
        run(&apply(&f.config, false), &env, None).await,
        // A validation error.
        run(
            &add(
                &f.config,
                &with(harbor_flags(), &[("--type", Some("quay"))]),
            ),
            &env,
            None,
        )
        .await,
    ];
    let codes: Vec<Option<i32>> = runs.iter().map(|o| o.code).collect();
    assert_eq!(
        codes,
        [
            Some(0),
            Some(1),
            Some(0),
            Some(0),
            Some(0),
            Some(0),
            Some(2)
        ],
        "{runs:?}"
    );
    let logs: String = runs.iter().map(|o| o.stderr.as_str()).collect();
    // Proof that trace logging was on and covered the calls, so the searches below mean
    // something.
    for expected in [
        "TRACE",
        "call=\"add_registry\"",
        "call=\"image_upload_command\"",
        "call=\"list_registries\"",
        "registry added",
    ] {
        assert!(
            logs.contains(expected),
            "no {expected:?} in the logs:\n{logs}"
        );
    }
    for run in &runs {
        assert_no_password(run);
    }
    assert!(
        !logs.contains("password="),
        "a URL with the password query was logged"
    );
    assert!(
        !logs.contains("image-upload-command?"),
        "the upload-command URL was logged"
    );
}

/// The simulator as a process, logging at TRACE: its logs never contain the password either.
#[test]
fn the_simulators_own_logs_never_contain_the_password() {
    let sim = SimProcess::start(&["--images", "10"], &[("RUST_LOG", "trace")]);
    let f = Fixture::new(
        &sim.base_url,
        &SimConfig::default().project_id,
        &registries_toml(&[("apply-env", "password_env = \"P\"")]),
    );
    let env = env_with(&[("P", PASSWORD), (PASSWORD_ENV, PASSWORD)]);
    let stdin = format!("{PASSWORD}\n");
    let outcomes = [
        run_hss_scand_with_stdin(
            &args_of(&add(
                &f.config,
                &with(harbor_flags(), &[("--password-stdin", None)]),
            )),
            &env_with(&[]),
            &stdin,
        ),
        run_hss_scand(&args_of(&add(&f.config, &harbor_flags())), &env),
        run_hss_scand(&args_of(&upload(&f.config, &upload_flags())), &env),
        run_hss_scand(&args_of(&apply(&f.config, false)), &env),
    ];
    let codes: Vec<Option<i32>> = outcomes.iter().map(|o| o.code).collect();
    assert_eq!(codes, [Some(0), Some(1), Some(0), Some(0)], "{outcomes:?}");
    for outcome in &outcomes {
        assert_no_password(outcome);
    }
    let logs = sim.stop();
    for expected in ["TRACE", "image/registries/image-upload-command", "answered"] {
        assert!(
            logs.contains(expected),
            "no {expected:?} in the simulator's logs:\n{logs}"
        );
    }
    assert!(
        !logs.contains(MARKER),
        "the simulator logged the password:\n{logs}"
    );
}

fn args_of(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A tracing writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

thread_local! {
    /// Where the events of this thread go, while a test captures them.
    static CAPTURE: std::cell::RefCell<Option<Captured>> = const { std::cell::RefCell::new(None) };
}

/// A writer into the current thread's capture, if any.
#[derive(Clone, Copy)]
struct ThreadCapture;

impl std::io::Write for ThreadCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|capture| match capture.borrow_mut().as_mut() {
            Some(captured) => captured.write(buf),
            None => Ok(buf.len()),
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ThreadCapture {
    type Writer = ThreadCapture;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Captures, at TRACE, every event of the current thread until the returned guard is
/// dropped. The subscriber is the process-wide default with a filter that asks the thread at
/// every event: a scoped (`set_default`) subscriber missed the events of call sites that
/// tests on other threads had registered first.
fn capture_this_thread() -> (Captured, impl Drop) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::{Layer as _, filter};

    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(ThreadCapture)
            .with_ansi(false)
            // Dynamic: asked at every event, never cached per call site, because the
            // answer depends on the thread.
            .with_filter(filter::dynamic_filter_fn(|_, _| {
                CAPTURE.with(|capture| capture.borrow().is_some())
            }));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("no other test installs a global subscriber");
    });
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            CAPTURE.with(|capture| capture.borrow_mut().take());
        }
    }
    let captured = Captured::default();
    CAPTURE.with(|capture| *capture.borrow_mut() = Some(captured.clone()));
    // A call site another thread was registering while the subscriber was being installed
    // may have cached "never"; ask every call site again.
    tracing::callsite::rebuild_interest_cache();
    (captured, Stop)
}

/// The client and the in-process simulator on one thread, with every event captured at TRACE:
/// the password is in no event of either, while the calls themselves are.
#[tokio::test(flavor = "current_thread")]
async fn the_client_and_the_simulator_log_no_password_at_trace_level() {
    let (captured, guard) = capture_this_thread();
    let sim = spawn_sim(sim_config()).await;
    let client = client_for(&sim);
    let request = |name: &str| AddRegistryRequest {
        registry_name: name.into(),
        registry_type: "Harbor".into(),
        api_version: "V2".into(),
        protocol: "https".into(),
        registry_addr: "harbor.example.com".into(),
        registry_username: "robot".into(),
        registry_password: PASSWORD.into(),
        namespace: None,
        connect_cluster_id: "cluster-1".into(),
        get_scan_image_channel: "Swr".into(),
    };
    registries::add(&client, &request("a"))
        .await
        .expect("added");
    let rejected = registries::add(&client, &request("a"))
        .await
        .expect_err("the name is taken");
    assert!(!format!("{rejected} {rejected:?}").contains(MARKER));
    registries::upload_command(
        &client,
        &UploadCommandRequest {
            registry_addr: "harbor.example.com".into(),
            namespace: "ns".into(),
            username: "robot".into(),
            password: PASSWORD.into(),
        },
    )
    .await
    .expect("upload command");
    assert_eq!(registries::list(&client).await.expect("listed").len(), 1);
    drop(guard);

    let logs = String::from_utf8_lossy(&captured.0.lock().expect("lock")).into_owned();
    for expected in [
        "call=\"add_registry\"",
        "call=\"image_upload_command\"",
        "call=\"list_registries\"",
        "answered",
        "TRACE",
    ] {
        assert!(logs.contains(expected), "no {expected:?} in:\n{logs}");
    }
    assert!(!logs.contains(MARKER), "a password was logged:\n{logs}");
}

/// More registries than one page holds are all listed, page by page.
#[tokio::test]
async fn list_registries_reads_every_page() {
    let sim = spawn_sim(sim_config()).await;
    for n in 0..230 {
        add_directly(&sim, &format!("registry-{n:03}")).await;
    }
    let listed = registries(&sim).await;
    let names: BTreeSet<String> = listed.iter().map(|r| r.registry_name.clone()).collect();
    assert_eq!(names.len(), 230);
    assert!(listed.iter().all(|r| !r.id.is_empty()));
    assert_eq!(
        sim.stats().requests["list_registries"],
        2,
        "limit 200: two pages"
    );
}
