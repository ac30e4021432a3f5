//! `hss-scand config check` end to end: the real binary, real files, a controlled
//! environment. A good configuration prints the effective one and exits 0; every kind of bad
//! one exits 78 with exactly one line naming the file (or environment variable) and the key.

use crate::support::cli::{Outcome, config_check, config_file, run_hss_scand, shipped_config};

const TARGET: &str = r#"
[[targets]]
name = "prod"
region = "ap-southeast-1"
project_id = "0123456789abcdef0123456789abcdef"
image_types = ["private_image"]
"#;

/// Exit 78, nothing on stdout, and one stderr line that starts with the origin and names the key.
fn assert_config_error(outcome: &Outcome, origin: &str, key: &str) {
    assert_eq!(outcome.code, Some(78), "{outcome:#?}");
    assert_eq!(outcome.stdout, "", "{outcome:#?}");
    let lines = outcome.stderr_lines();
    assert_eq!(lines.len(), 1, "exactly one line expected: {outcome:#?}");
    assert!(
        lines[0].starts_with(&format!("config error in {origin}: ")),
        "should name {origin}: {}",
        lines[0]
    );
    assert!(lines[0].contains(key), "should name {key}: {}", lines[0]);
}

/// `config check` of TARGET plus `extra`, expected to fail on `key` in that file.
fn assert_rejected(extra: &str, key: &str) -> String {
    let file = config_file(&format!("{TARGET}\n{extra}"));
    let outcome = config_check(file.path(), &[]);
    assert_config_error(&outcome, &file.path().display().to_string(), key);
    outcome.stderr
}

#[test]
fn the_production_example_is_accepted_and_its_values_printed() {
    let outcome = config_check(&shipped_config("examples/production.toml"), &[]);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    for effective in [
        "name = \"prod-sg\"",
        "name = \"prod-eu\"",
        "rescan_after = \"14d\"",
        "daily_budget = 20000",
        "tag = \"{latest,stable,v*}\"",
        "format = \"json\"",
        // not in the file: a default
        "scanning_timeout = \"6h\"",
    ] {
        assert!(
            outcome.stdout.contains(effective),
            "missing {effective}:\n{}",
            outcome.stdout
        );
    }
}

#[test]
fn the_minimal_example_is_accepted_with_the_defaults() {
    let outcome = config_check(&shipped_config("examples/minimal.toml"), &[]);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    assert!(
        outcome.stdout.contains("page_size = 200"),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.stdout.contains("sync = \"0 */30 * * * *\""),
        "{}",
        outcome.stdout
    );
}

#[test]
fn the_printed_configuration_is_itself_a_valid_configuration_file() {
    let first = config_check(&shipped_config("examples/production.toml"), &[]);
    let printed = config_file(&first.stdout);
    let second = config_check(printed.path(), &[]);
    assert_eq!(second.code, Some(0), "{second:#?}");
    let body = |text: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(body(&second.stdout), body(&first.stdout));
}

#[test]
fn a_toml_syntax_error_gives_file_line_and_column() {
    let stderr = assert_rejected("[policy]\nbatch_size = \n", "TOML parse error");
    assert!(stderr.contains("line 9 column 14"), "{stderr}");
}

#[test]
fn an_unknown_key_is_named_by_its_path() {
    assert_rejected(
        "[policy]\nrescan_aftr = \"3d\"\n",
        "unknown key policy.rescan_aftr",
    );
}

#[test]
fn an_out_of_range_value_is_named_with_the_range() {
    let stderr = assert_rejected(
        "[hss]\npage_size = 500\n",
        "hss.page_size: 500 is out of range 1..=200",
    );
    assert!(!stderr.contains('\t'));
}

#[test]
fn a_bad_duration_is_named() {
    assert_rejected(
        "[policy]\nrescan_after = \"7 dayz\"\n",
        "policy.rescan_after: \"7 dayz\" is not a duration",
    );
}

#[test]
fn a_five_field_cron_expression_is_rejected() {
    assert_rejected(
        "[schedule]\nsync = \"*/30 * * * *\"\n",
        "schedule.sync: \"*/30 * * * *\" has 5 fields",
    );
}

#[test]
fn a_garbage_cron_expression_is_rejected() {
    assert_rejected(
        "[schedule]\nscan = \"every half hour on the dot\"\n",
        "schedule.scan: \"every half hour on the dot\" is not a valid cron expression",
    );
}

#[test]
fn an_unknown_image_type_is_named_with_the_allowed_ones() {
    let file = config_file(&TARGET.replace(
        "[\"private_image\"]",
        "[\"private_image\", \"public_image\"]",
    ));
    let outcome = config_check(file.path(), &[]);
    assert_config_error(
        &outcome,
        &file.path().display().to_string(),
        "targets[0].image_types[1]",
    );
    assert!(
        outcome.stderr.contains("\"public_image\""),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("\"instance_image\""),
        "{}",
        outcome.stderr
    );
}

#[test]
fn duplicate_target_names_are_rejected() {
    assert_rejected(
        TARGET,
        "targets[1].name: \"prod\" is already the name of targets[0]",
    );
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let outcome = config_check(&missing, &[]);
    assert_eq!(outcome.code, Some(78), "{outcome:#?}");
    assert_eq!(
        outcome.stderr_lines(),
        [format!(
            "config error: {}: file not found",
            missing.display()
        )]
    );
}

#[test]
fn the_config_path_defaults_to_the_environment_then_etc() {
    let file = config_file(TARGET);
    let path = file.path().to_str().unwrap();
    let outcome = run_hss_scand(&["config", "check"], &[("HSS_SCAND_CONFIG", path)]);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    assert!(outcome.stdout.contains(path), "{}", outcome.stdout);

    let outcome = run_hss_scand(&["config", "check"], &[]);
    if !std::path::Path::new("/etc/hss-scand/config.toml").exists() {
        assert_eq!(outcome.code, Some(78), "{outcome:#?}");
        assert_eq!(
            outcome.stderr,
            "config error: /etc/hss-scand/config.toml: file not found\n"
        );
    }
}

#[test]
fn an_environment_variable_overrides_the_file() {
    let file = config_file(&format!("{TARGET}\n[policy]\nrescan_after = \"1d\"\n"));
    let outcome = config_check(file.path(), &[]);
    assert!(
        outcome.stdout.contains("rescan_after = \"1d\""),
        "{}",
        outcome.stdout
    );

    let outcome = config_check(file.path(), &[("HSS_SCAND__POLICY__RESCAN_AFTER", "3d")]);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    assert!(
        outcome.stdout.contains("rescan_after = \"3d\""),
        "{}",
        outcome.stdout
    );
    assert!(
        !outcome.stdout.contains("rescan_after = \"1d\""),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.stdout.contains("HSS_SCAND__POLICY__RESCAN_AFTER"),
        "the override is listed"
    );
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let file = config_file(TARGET);
    let outcome = config_check(file.path(), &[("HSS_SCAND__POLICY__RESCAN_AFTER", "soon")]);
    assert_config_error(
        &outcome,
        "environment variable HSS_SCAND__POLICY__RESCAN_AFTER",
        "policy.rescan_after",
    );
    let outcome = config_check(file.path(), &[("HSS_SCAND__HSS__PAGE_SIZE", "0")]);
    assert_config_error(
        &outcome,
        "environment variable HSS_SCAND__HSS__PAGE_SIZE",
        "hss.page_size",
    );
}

/// `config check` of TARGET plus `extra`: exit 78 and exactly `problem` after the file's name.
fn assert_rejected_with(extra: &str, problem: &str) {
    let file = config_file(&format!("{TARGET}\n{extra}"));
    let outcome = config_check(file.path(), &[]);
    assert_eq!(outcome.code, Some(78), "{outcome:#?}");
    assert_eq!(outcome.stdout, "", "{outcome:#?}");
    assert_eq!(
        outcome.stderr,
        format!("config error in {}: {problem}\n", file.path().display())
    );
}

#[test]
fn a_value_of_another_type_is_rejected_not_converted() {
    assert_rejected_with(
        "[policy]\nbatch_size = 2.5\n",
        "policy.batch_size: expected an integer, found a float (2.5)",
    );
    assert_rejected_with(
        "[policy]\nbatch_size = true\n",
        "policy.batch_size: expected an integer, found a boolean (true)",
    );
    assert_rejected_with(
        "[policy]\ndaily_budget = 2.5\n",
        "policy.daily_budget: expected an integer, found a float (2.5)",
    );
    assert_rejected_with(
        "[policy]\nlatest_only = \"yes\"\n",
        "policy.latest_only: expected a boolean, found a string (\"yes\")",
    );
}

#[test]
fn keys_of_targets_and_rules_are_checked_for_their_type() {
    assert_rejected_with(
        "trigger_swr_sync = \"yes\"\n",
        "targets[0].trigger_swr_sync: expected a boolean, found a string (\"yes\")",
    );
    assert_rejected_with(
        "[[policy.rules]]\nnamespace = \"ci-*\"\npriority = 1.5\n",
        "policy.rules[0].priority: expected an integer, found a float (1.5)",
    );
    assert_rejected_with(
        "[[policy.rules]]\nnamespace = \"ci-*\"\nskip = 1\n",
        "policy.rules[0].skip: expected a boolean, found an integer (1)",
    );
}

#[test]
fn an_environment_value_of_another_type_names_the_variable() {
    let file = config_file(TARGET);
    let outcome = config_check(file.path(), &[("HSS_SCAND__POLICY__BATCH_SIZE", "2.5")]);
    assert_config_error(
        &outcome,
        "environment variable HSS_SCAND__POLICY__BATCH_SIZE",
        "policy.batch_size: expected an integer, found \"2.5\"",
    );
    let outcome = config_check(file.path(), &[("HSS_SCAND__POLICY__LATEST_ONLY", "yes")]);
    assert_config_error(
        &outcome,
        "environment variable HSS_SCAND__POLICY__LATEST_ONLY",
        "policy.latest_only: expected true or false, found \"yes\"",
    );

    let env = [
        ("HSS_SCAND__POLICY__BATCH_SIZE", "12"),
        ("HSS_SCAND__POLICY__LATEST_ONLY", "true"),
    ];
    let outcome = config_check(file.path(), &env);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    for effective in ["batch_size = 12\n", "latest_only = true\n"] {
        assert!(
            outcome.stdout.contains(effective),
            "missing {effective}:\n{}",
            outcome.stdout
        );
    }
}

#[test]
fn values_of_their_keys_type_are_accepted() {
    for (extra, effective) in [
        ("[policy]\nscan_scope = \"all\"\n", "scan_scope = \"all\"\n"),
        (
            "[policy]\nscan_scope = [\"vulnerabilities\", \"baseline\"]\n",
            "scan_scope = [\"vulnerabilities\", \"baseline\"]\n",
        ),
        // A float key takes an integer.
        ("[sync]\nmax_delete_share = 1\n", "max_delete_share = 1.0\n"),
        (
            "[policy]\nbatch_size = 12\ndaily_budget = 30\nlatest_only = true\n",
            "daily_budget = 30\n",
        ),
        (
            "trigger_swr_sync = true\n[[policy.rules]]\npriority = -2\nskip = true\n",
            "priority = -2\n",
        ),
    ] {
        let file = config_file(&format!("{TARGET}{extra}"));
        let outcome = config_check(file.path(), &[]);
        assert_eq!(outcome.code, Some(0), "{extra}: {outcome:#?}");
        assert!(
            outcome.stdout.contains(effective),
            "missing {effective}:\n{}",
            outcome.stdout
        );
    }
}

#[test]
fn credentials_in_the_environment_are_reported_but_never_printed() {
    const AK: &str = "AK-MARKER-7f3a9c";
    const SK: &str = "SK-MARKER-c91e2b";
    let env = [
        ("HUAWEICLOUD_SDK_AK", AK),
        ("HUAWEICLOUD_SDK_SK", SK),
        ("RUST_LOG", "trace"),
    ];
    let outcome = config_check(&shipped_config("examples/minimal.toml"), &env);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    for marker in [AK, SK] {
        assert!(
            !outcome.stdout.contains(marker) && !outcome.stderr.contains(marker),
            "{outcome:#?}"
        );
    }
    assert!(
        outcome
            .stdout
            .contains("HUAWEICLOUD_SDK_AK is set, HUAWEICLOUD_SDK_SK is set"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn a_password_in_a_url_is_never_printed() {
    const PASSWORD: &str = "PASSWORD-MARKER-55d1";
    // HSS takes AK/SK only: credentials in hss.endpoint are refused, by name, unprinted.
    let file = config_file(&format!(
        "{TARGET}\n[hss]\nendpoint = \"https://operator:{PASSWORD}@hss.example.com/\"\n"
    ));
    let outcome = config_check(file.path(), &[]);
    assert_eq!(outcome.code, Some(78), "{outcome:#?}");
    assert!(
        outcome.stderr.contains("hss.endpoint"),
        "{}",
        outcome.stderr
    );
    assert!(
        !outcome.stdout.contains(PASSWORD) && !outcome.stderr.contains(PASSWORD),
        "{outcome:#?}"
    );

    // The same from the environment, in a configuration rejected for another key.
    let endpoint = format!("https://operator:{PASSWORD}@hss.example.com/");
    let env = [
        ("HSS_SCAND__HSS__ENDPOINT", endpoint.as_str()),
        ("HSS_SCAND__HSS__PAGE_SIZE", "999"),
    ];
    let outcome = config_check(file.path(), &env);
    assert_eq!(outcome.code, Some(78), "{outcome:#?}");
    assert!(
        !outcome.stdout.contains(PASSWORD) && !outcome.stderr.contains(PASSWORD),
        "{outcome:#?}"
    );

    // A database URL may carry one; the effective configuration shows it redacted.
    let file = config_file(&format!(
        "{TARGET}\n[database]\nurl = \"sqlite:///var/lib/x.db?mode=rwc&password={PASSWORD}\"\n"
    ));
    let outcome = config_check(file.path(), &[]);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    assert!(
        !outcome.stdout.contains(PASSWORD) && !outcome.stderr.contains(PASSWORD),
        "{outcome:#?}"
    );
    assert!(
        outcome
            .stdout
            .contains("url = \"sqlite:///var/lib/x.db?mode=rwc&password=[redacted]\""),
        "{}",
        outcome.stdout
    );
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    assert_eq!(run_hss_scand(&["frobnicate"], &[]).code, Some(2));
    assert_eq!(run_hss_scand(&["config", "frobnicate"], &[]).code, Some(2));
    assert_eq!(run_hss_scand(&["config"], &[]).code, Some(2));
    assert_eq!(
        run_hss_scand(&["--no-such-flag", "config", "check"], &[]).code,
        Some(2)
    );
}

#[test]
fn help_explains_the_commands_and_exits_0() {
    let outcome = run_hss_scand(&["--help"], &[]);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    assert!(
        outcome.stdout.contains("--config <PATH>"),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.stdout.contains("HSS_SCAND_CONFIG"),
        "{}",
        outcome.stdout
    );
    let outcome = run_hss_scand(&["config", "check", "--help"], &[]);
    assert_eq!(outcome.code, Some(0), "{outcome:#?}");
    assert!(
        outcome.stdout.contains("secrets redacted"),
        "{}",
        outcome.stdout
    );
}
