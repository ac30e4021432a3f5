//! The rules a configuration must follow beyond the types of its values: ranges, names that
//! end up in metrics and URLs, cron expressions the scheduler will accept, log filters. Each
//! rule reports the full key path it is about, so the error points at one line of the file.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use croner::parser::{CronParser, Seconds};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

use crate::domain::{ApiChoice, ImageType, Target};
use crate::hss::legacy::limits;

use super::{
    CredentialSource, CredentialsSettings, DaemonSettings, HssSettings, PolicySettings, Settings,
    Targets,
};

/// One broken rule: the key and what is wrong with its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Invalid {
    pub key: String,
    pub problem: String,
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

type Checked = Result<(), Invalid>;

/// Checks the whole configuration; the first broken rule, in file order, is reported.
pub(super) fn settings(settings: &Settings) -> Checked {
    database_url(&settings.database.url)?;
    hss(&settings.hss)?;
    credentials(&settings.credentials)?;
    targets(&settings.targets)?;
    target_reach(&settings.targets)?;
    apis(settings)?;
    super::registries::validate(&settings.registries, &settings.targets)?;
    cron("schedule.sync", &settings.schedule.sync)?;
    cron("schedule.scan", &settings.schedule.scan)?;
    share("sync.max_delete_share", settings.sync.max_delete_share)?;
    positive("sync.overlap", settings.sync.overlap)?;
    positive("sync.full_every", settings.sync.full_every)?;
    if settings.sync.overlap >= settings.sync.full_every {
        return Err(invalid(
            "sync.overlap",
            format!(
                "is {}, not shorter than sync.full_every ({}): every incremental window would \
                 reach back past the full listing before it; make it a few minutes",
                humantime::format_duration(settings.sync.overlap),
                humantime::format_duration(settings.sync.full_every)
            ),
        ));
    }
    policy(&settings.policy)?;
    positive("daemon.shutdown_grace", settings.daemon.shutdown_grace)?;
    lease(&settings.daemon)?;
    log_level(&settings.log.level).map_err(|problem| invalid("log.level", problem))
}

fn database_url(url: &str) -> Checked {
    // Say which databases there are here rather than at the first query. The URL is not
    // quoted back: a URL may carry a password.
    const EXAMPLES: &str = "write e.g. sqlite:///var/lib/hss-scand/hss-scand.db or \
                            postgres://hss-scand@db.example.com:5432/hss_scand";
    if url.trim().is_empty() {
        return Err(invalid("database.url", format!("empty; {EXAMPLES}")));
    }
    let scheme = url
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("sqlite" | "postgres" | "postgresql") => Ok(()),
        _ => Err(invalid(
            "database.url",
            format!("only SQLite (sqlite:) and PostgreSQL (postgres:) are supported; {EXAMPLES}"),
        )),
    }
}

/// The leader must be able to miss a renewal and still hold its lease.
fn lease(daemon: &DaemonSettings) -> Checked {
    positive("daemon.lease_ttl", daemon.lease_ttl)?;
    positive("daemon.lease_renew_every", daemon.lease_renew_every)?;
    if daemon.lease_renew_every * 2 > daemon.lease_ttl {
        return Err(invalid(
            "daemon.lease_renew_every",
            format!(
                "is {}, more than half of daemon.lease_ttl ({}): one late renewal would lose \
                 the lease; renew at most every third of the TTL",
                humantime::format_duration(daemon.lease_renew_every),
                humantime::format_duration(daemon.lease_ttl)
            ),
        ));
    }
    Ok(())
}

fn hss(hss: &HssSettings) -> Checked {
    if let Some(endpoint) = &hss.endpoint {
        http_url("hss.endpoint", endpoint)?;
        origin_only("hss.endpoint", endpoint)?;
    }
    positive("hss.request_timeout", hss.request_timeout)?;
    positive("hss.signed_request_lifetime", hss.signed_request_lifetime)?;
    in_range(
        "hss.page_size",
        hss.page_size.into(),
        1,
        limits::PAGE_SIZE.into(),
    )?;
    in_range("hss.max_retries", hss.max_retries.into(), 0, 20)
}

fn credentials(credentials: &CredentialsSettings) -> Checked {
    credential_files(
        "credentials",
        credentials.source,
        credentials.ak_file.is_some(),
        credentials.sk_file.is_some(),
    )?;
    http_url(
        "credentials.metadata_endpoint",
        &credentials.metadata_endpoint,
    )
}

/// `source = "file"` needs both key files; `section` is `credentials` or
/// `targets[N].credentials`.
fn credential_files(section: &str, source: CredentialSource, ak: bool, sk: bool) -> Checked {
    if source == CredentialSource::File {
        let required = format!("required when {section}.source = \"file\"");
        if !ak {
            return Err(invalid(format!("{section}.ak_file"), required));
        }
        if !sk {
            return Err(invalid(format!("{section}.sk_file"), required));
        }
    }
    Ok(())
}

/// A target's own endpoint follows the rules of `hss.endpoint`, its own credentials those of
/// `[credentials]`.
fn target_reach(targets: &Targets) -> Checked {
    for (index, (_, reach)) in targets.with_reach().enumerate() {
        if let Some(endpoint) = &reach.endpoint {
            let key = format!("targets[{index}].endpoint");
            http_url(&key, endpoint)?;
            origin_only(&key, endpoint)?;
        }
        if let Some(credentials) = &reach.credentials {
            let section = format!("targets[{index}].credentials");
            credential_files(
                &section,
                credentials.source,
                credentials.ak_file.is_some(),
                credentials.sk_file.is_some(),
            )?;
            if let Some(endpoint) = &credentials.metadata_endpoint {
                http_url(&format!("{section}.metadata_endpoint"), endpoint)?;
            }
        }
    }
    Ok(())
}

fn http_url(key: &str, url: &url::Url) -> Checked {
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid(
            key,
            "must be an http:// or https:// URL with a host",
        ));
    }
    Ok(())
}

/// HSS checks the signature against the path it receives, and the signature covers the whole
/// path sent. A proxy prefix therefore cannot be honoured: a proxy that strips it hands HSS a
/// path that was not signed, one that keeps it asks HSS for a path that does not exist. Refused
/// rather than silently dropped, as it was before.
fn origin_only(key: &str, url: &url::Url) -> Checked {
    let path = url.path();
    if !(path.is_empty() || path == "/") {
        return Err(invalid(
            key,
            format!(
                "has a path ({path:?}); write only scheme://host[:port]. HSS verifies the \
                 signature over the path it receives, so a path prefix for a proxy cannot work; \
                 give the proxy its own host name and forward paths unchanged"
            ),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            key,
            "has a query or fragment; write only scheme://host[:port]",
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            key,
            "carries credentials in the URL; HSS takes AK/SK only through [credentials]",
        ));
    }
    Ok(())
}

fn targets(targets: &[Target]) -> Checked {
    if targets.is_empty() {
        return Err(invalid(
            "targets",
            "no [[targets]] configured; at least one is required",
        ));
    }
    let mut first_with_name: HashMap<&str, usize> = HashMap::new();
    for (index, target) in targets.iter().enumerate() {
        let key = |field: &str| format!("targets[{index}].{field}");
        target_name(&target.name).map_err(|problem| invalid(key("name"), problem))?;
        if let Some(first) = first_with_name.insert(&target.name, index) {
            return Err(invalid(
                key("name"),
                format!(
                    "{:?} is already the name of targets[{first}]; names must be unique",
                    target.name
                ),
            ));
        }
        region(&target.region).map_err(|problem| invalid(key("region"), problem))?;
        project_id(&target.project_id).map_err(|problem| invalid(key("project_id"), problem))?;
        image_types(&target.image_types).map_err(|(at, problem)| match at {
            Some(i) => invalid(key(&format!("image_types[{i}]")), problem),
            None => invalid(key("image_types"), problem),
        })?;
    }
    Ok(())
}

/// Names become metric labels, log fields and database keys: keep them plain.
fn target_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty; every target needs a name".to_owned());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c)))
    {
        return Err(format!(
            "{name:?} contains {bad:?}; use only letters, digits, '_', '.' and '-'"
        ));
    }
    Ok(())
}

/// The region is part of the endpoint's host name (`hss.{region}.myhuaweicloud.com`).
fn region(region: &str) -> Result<(), String> {
    if region.is_empty() {
        return Err("empty; write a region id such as ap-southeast-1".to_owned());
    }
    if !region
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(format!(
            "{region:?} is not a region id such as ap-southeast-1 (letters, digits and '-')"
        ));
    }
    Ok(())
}

/// The project id is part of every request path.
fn project_id(project_id: &str) -> Result<(), String> {
    if project_id.is_empty() {
        return Err("empty; write the project id of the target's region".to_owned());
    }
    if project_id
        .chars()
        .any(|c| c.is_whitespace() || c == '/' || c == '?' || c == '#')
    {
        return Err(format!("{project_id:?} is not a project id"));
    }
    Ok(())
}

/// `Err((Some(index), problem))` names one entry, `Err((None, problem))` the list.
fn image_types(types: &[ImageType]) -> Result<(), (Option<usize>, String)> {
    if types.is_empty() {
        return Err((
            None,
            format!("empty; list at least one of {}", known_image_types()),
        ));
    }
    for (index, image_type) in types.iter().enumerate() {
        if !image_type.is_known() {
            return Err((
                Some(index),
                format!(
                    "unknown image type {:?}; expected one of {}",
                    image_type.as_str(),
                    known_image_types()
                ),
            ));
        }
        if types[..index].contains(image_type) {
            return Err((
                Some(index),
                format!("{:?} is listed twice", image_type.as_str()),
            ));
        }
    }
    Ok(())
}

fn known_image_types() -> String {
    ImageType::KNOWN
        .iter()
        .map(|known| format!("{:?}", known.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Accepts exactly what tokio-cron-scheduler 0.15 accepts (same parser, same options), and
/// only the 6-field form, so that every schedule reads the same way: seconds first.
fn cron(key: &str, expression: &str) -> Checked {
    let fields = expression.split_whitespace().count();
    if fields != 6 {
        return Err(invalid(
            key,
            format!(
                "{expression:?} has {fields} fields, a schedule needs 6: second minute hour day-of-month month day-of-week (e.g. \"0 */30 * * * *\")"
            ),
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expression)
        .map(drop)
        .map_err(|err| {
            invalid(
                key,
                format!("{expression:?} is not a valid cron expression ({err})"),
            )
        })
}

/// Harbor and JFrog images are listed and scanned only by the current API: a target that
/// asks for them through the deprecated one could never sync them.
fn apis(settings: &Settings) -> Checked {
    for (index, target) in settings.targets.iter().enumerate() {
        if settings.api_for(target) != ApiChoice::Legacy {
            continue;
        }
        let whose = if target.api.is_some() {
            format!("targets[{index}].api")
        } else {
            "hss.api".to_owned()
        };
        if let Some((at, image_type)) = target
            .image_types
            .iter()
            .enumerate()
            .find(|(_, t)| t.is_third_party())
        {
            return Err(invalid(
                format!("targets[{index}].image_types[{at}]"),
                format!(
                    "{:?} images are listed and scanned only by HSS's current API, but {whose} \
                     is \"legacy\"; use \"auto\" or \"current\", or remove the type",
                    image_type.as_str()
                ),
            ));
        }
    }
    Ok(())
}

fn policy(policy: &PolicySettings) -> Checked {
    positive("policy.rescan_after", policy.rescan_after)?;
    positive("policy.scanning_timeout", policy.scanning_timeout)?;
    in_range(
        "policy.batch_size",
        policy.batch_size as u64,
        1,
        limits::BATCH_ITEMS as u64,
    )?;
    in_range(
        "policy.third_party_rate_limit",
        policy.third_party_rate_limit.into(),
        0,
        crate::hss::current::limits::MAX_RATE_LIMIT.into(),
    )?;
    if policy.rules.len() > crate::domain::MAX_RULES {
        return Err(invalid(
            "policy.rules",
            format!(
                "{} rules; at most {} are allowed",
                policy.rules.len(),
                crate::domain::MAX_RULES
            ),
        ));
    }
    for (index, rule) in policy.rules.iter().enumerate() {
        if let Some(rescan_after) = rule.rescan_after {
            positive(&format!("policy.rules[{index}].rescan_after"), rescan_after)?;
        }
    }
    Ok(())
}

/// A tracing `EnvFilter`. A bare word is taken by `EnvFilter` as a target name, which would
/// silently turn a misspelt level (`inof`) into "log nothing"; so a bare word must be a level.
fn log_level(level: &str) -> Result<(), String> {
    if level.trim().is_empty() {
        return Err("empty; write a level such as info".to_owned());
    }
    // Module paths and levels are ASCII, and tracing-subscriber's parser panics on some
    // non-ASCII input (a proptest found one), so such input never reaches it.
    if !level.is_ascii() {
        return Err(format!(
            "{level:?} contains characters that are not ASCII; a filter is levels and module paths"
        ));
    }
    for directive in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !directive.contains('=') && !directive.contains('[');
        if bare && LevelFilter::from_str(directive).is_err() {
            return Err(format!(
                "{directive:?} is not a level (trace, debug, info, warn, error, off); for one module write module=level, e.g. hss_scand::hss=debug"
            ));
        }
    }
    EnvFilter::builder()
        .parse(level)
        .map(drop)
        .map_err(|err| format!("{level:?} is not a valid log filter ({err})"))
}

/// A share, 0..=1.
fn share(key: &str, value: f64) -> Checked {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{value} is out of range; a share is from 0 to 1"),
        ))
    }
}

fn positive(key: &str, duration: Duration) -> Checked {
    if duration.is_zero() {
        return Err(invalid(key, "must be longer than 0s"));
    }
    Ok(())
}

fn in_range(key: &str, value: u64, min: u64, max: u64) -> Checked {
    if !(min..=max).contains(&value) {
        return Err(invalid(
            key,
            format!("{value} is out of range {min}..={max}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_non_ascii_filter_is_refused_before_the_parser_can_panic_on_it() {
        // The input a proptest found to panic tracing-subscriber's directive parser.
        let err = log_level(" i\u{2098}\u{1031e}D}'\u{2eb3}=").unwrap_err();
        assert!(err.contains("not ASCII"), "{err}");
    }

    use std::path::PathBuf;

    use super::super::load::{EnvOverrides, layered};
    use super::super::{Glob, Rule};
    use super::*;

    /// The defaults with two targets: valid, and the base every case below breaks once.
    fn valid() -> Settings {
        let text = r#"
[[targets]]
name = "prod"
region = "ap-southeast-1"
project_id = "0123456789abcdef0123456789abcdef"
image_types = ["private_image", "shared_image"]

[[targets]]
name = "staging.eu-1"
region = "eu-west-101"
project_id = "fedcba9876543210fedcba9876543210"
image_types = ["instance_image"]
"#;
        layered(text, "test.toml", &EnvOverrides::from_pairs(&[])).unwrap()
    }

    fn rejected(change: impl FnOnce(&mut Settings)) -> Invalid {
        let mut s = valid();
        change(&mut s);
        settings(&s).expect_err("the change should be rejected")
    }

    fn assert_rejected(key: &str, problem_contains: &str, change: impl FnOnce(&mut Settings)) {
        let err = rejected(change);
        assert_eq!(err.key, key, "{err:?}");
        assert!(err.problem.contains(problem_contains), "{err:?}");
    }

    #[test]
    fn the_base_configuration_is_valid() {
        assert_eq!(settings(&valid()), Ok(()));
    }

    #[test]
    fn page_size_is_1_to_200() {
        assert_rejected("hss.page_size", "500 is out of range 1..=200", |s| {
            s.hss.page_size = 500
        });
        assert_rejected("hss.page_size", "0 is out of range", |s| {
            s.hss.page_size = 0
        });
        let mut s = valid();
        s.hss.page_size = 200;
        assert_eq!(settings(&s), Ok(()));
    }

    #[test]
    fn batch_size_is_1_to_10241() {
        assert_rejected(
            "policy.batch_size",
            "20000 is out of range 1..=10241",
            |s| s.policy.batch_size = 20000,
        );
        assert_rejected("policy.batch_size", "0 is out of range", |s| {
            s.policy.batch_size = 0
        });
    }

    #[test]
    fn max_retries_is_at_most_20() {
        assert_rejected("hss.max_retries", "21 is out of range 0..=20", |s| {
            s.hss.max_retries = 21
        });
    }

    #[test]
    fn durations_that_cannot_be_zero_are_rejected_at_zero() {
        assert_rejected("policy.rescan_after", "longer than 0s", |s| {
            s.policy.rescan_after = Duration::ZERO
        });
        assert_rejected("policy.scanning_timeout", "longer than 0s", |s| {
            s.policy.scanning_timeout = Duration::ZERO
        });
        assert_rejected("hss.request_timeout", "longer than 0s", |s| {
            s.hss.request_timeout = Duration::ZERO
        });
        assert_rejected("policy.rules[1].rescan_after", "longer than 0s", |s| {
            let rule = Rule {
                namespace: Glob::any(),
                image: Glob::any(),
                tag: Glob::any(),
                rescan_after: Some(Duration::ZERO),
                rescan_on_change: None,
                priority: 0,
                skip: false,
            };
            s.policy.rules = vec![
                Rule {
                    rescan_after: None,
                    ..rule.clone()
                },
                rule,
            ];
        });
    }

    #[test]
    fn more_rules_than_a_plan_can_number_are_rejected() {
        let rule = Rule {
            namespace: Glob::any(),
            image: Glob::any(),
            tag: Glob::any(),
            rescan_after: None,
            rescan_on_change: None,
            priority: 0,
            skip: false,
        };
        assert_rejected("policy.rules", "65536 rules; at most 65535", |s| {
            s.policy.rules = vec![rule.clone(); crate::domain::MAX_RULES + 1];
        });
    }

    #[test]
    fn incremental_windows_need_an_overlap_shorter_than_the_full_listing_interval() {
        assert_rejected("sync.overlap", "longer than 0s", |s| {
            s.sync.overlap = Duration::ZERO
        });
        assert_rejected("sync.full_every", "longer than 0s", |s| {
            s.sync.full_every = Duration::ZERO
        });
        assert_rejected(
            "sync.overlap",
            "not shorter than sync.full_every (1h)",
            |s| {
                s.sync.overlap = Duration::from_secs(3600);
                s.sync.full_every = Duration::from_secs(3600);
            },
        );
        let mut fine = valid();
        fine.sync.overlap = Duration::from_secs(60);
        fine.sync.full_every = Duration::from_secs(3600);
        assert_eq!(settings(&fine), Ok(()));
    }

    #[test]
    fn targets_are_required_and_named_uniquely_and_plainly() {
        assert_rejected("targets", "at least one", |s| s.targets.clear());
        assert_rejected("targets[1].name", "already the name of targets[0]", |s| {
            s.targets[1].name = "prod".into()
        });
        assert_rejected("targets[0].name", "empty", |s| s.targets[0].name.clear());
        assert_rejected("targets[1].name", "contains ' '", |s| {
            s.targets[1].name = "my prod".into()
        });
        assert_rejected("targets[0].region", "empty", |s| {
            s.targets[0].region.clear()
        });
        assert_rejected("targets[0].region", "not a region id", |s| {
            s.targets[0].region = "ap/southeast".into()
        });
        assert_rejected("targets[1].project_id", "empty", |s| {
            s.targets[1].project_id.clear()
        });
        assert_rejected("targets[1].project_id", "not a project id", |s| {
            s.targets[1].project_id = "a/b".into()
        });
    }

    #[test]
    fn third_party_images_need_the_current_api() {
        assert_rejected(
            "targets[0].image_types[1]",
            "\"harbor\" images are listed and scanned only by HSS's current API, but hss.api is \"legacy\"",
            |s| {
                s.hss.api = ApiChoice::Legacy;
                s.targets[0].image_types[1] = ImageType::Harbor;
            },
        );
        assert_rejected(
            "targets[1].image_types[0]",
            "but targets[1].api is \"legacy\"",
            |s| {
                s.targets[1].api = Some(ApiChoice::Legacy);
                s.targets[1].image_types[0] = ImageType::Jfrog;
            },
        );
        let mut ok = valid();
        ok.hss.api = ApiChoice::Legacy;
        ok.targets[0].api = Some(ApiChoice::Auto);
        ok.targets[0].image_types[1] = ImageType::Harbor;
        assert_eq!(
            settings(&ok),
            Ok(()),
            "a target's own api wins over hss.api"
        );
    }

    #[test]
    fn the_third_party_rate_limit_is_0_to_1000() {
        assert_rejected("policy.third_party_rate_limit", "1001", |s| {
            s.policy.third_party_rate_limit = 1001
        });
        let mut ok = valid();
        ok.policy.third_party_rate_limit = 1000;
        assert_eq!(settings(&ok), Ok(()));
    }

    #[test]
    fn image_types_must_be_known_and_listed_once() {
        assert_rejected(
            "targets[0].image_types[1]",
            "unknown image type \"public_image\"; expected one of \"private_image\", \"shared_image\", \"instance_image\"",
            |s| s.targets[0].image_types[1] = ImageType::from("public_image"),
        );
        assert_rejected("targets[1].image_types", "empty", |s| {
            s.targets[1].image_types.clear()
        });
        assert_rejected("targets[0].image_types[1]", "listed twice", |s| {
            s.targets[0].image_types[1] = ImageType::Private
        });
    }

    #[test]
    fn schedules_are_six_field_cron_expressions() {
        assert_rejected("schedule.sync", "has 5 fields", |s| {
            s.schedule.sync = "*/30 * * * *".into()
        });
        assert_rejected("schedule.scan", "not a valid cron expression", |s| {
            s.schedule.scan = "a b c d e f".into()
        });
        assert_rejected("schedule.scan", "not a valid cron expression", |s| {
            s.schedule.scan = "0 61 * * * *".into()
        });
        assert_rejected("schedule.sync", "has 1 fields", |s| {
            s.schedule.sync = "@hourly".into()
        });
        let mut s = valid();
        s.schedule.sync = "0 0 3 * * MON-FRI".into();
        s.schedule.scan = "*/10 * * * * *".into();
        assert_eq!(settings(&s), Ok(()));
    }

    #[test]
    fn log_level_is_a_level_or_a_filter() {
        for good in [
            "info",
            "DEBUG",
            "warn,hss_scand::hss=trace",
            "off",
            "hss_scand=debug",
        ] {
            assert_eq!(log_level(good), Ok(()), "{good}");
        }
        for bad in ["", "inof", "info,verbose", "hss_scand=loud"] {
            assert!(log_level(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_credentials_need_both_files() {
        assert_rejected(
            "credentials.ak_file",
            "required when credentials.source = \"file\"",
            |s| {
                s.credentials.source = CredentialSource::File;
                s.credentials.sk_file = Some(PathBuf::from("/run/credentials/sk"));
            },
        );
        assert_rejected("credentials.sk_file", "required", |s| {
            s.credentials.source = CredentialSource::File;
            s.credentials.ak_file = Some(PathBuf::from("/run/credentials/ak"));
        });
        let mut s = valid();
        s.credentials.source = CredentialSource::File;
        s.credentials.ak_file = Some(PathBuf::from("/run/credentials/ak"));
        s.credentials.sk_file = Some(PathBuf::from("/run/credentials/sk"));
        assert_eq!(settings(&s), Ok(()));
    }

    #[test]
    fn urls_must_be_what_they_are_used_for() {
        assert_rejected(
            "database.url",
            "only SQLite (sqlite:) and PostgreSQL",
            |s| s.database.url = "mysql://db/x".into(),
        );
        assert_rejected("database.url", "only SQLite", |s| {
            s.database.url = "hss-scand.db".into()
        });
        for url in [
            "postgres://hss@db/x",
            "postgresql://hss:pw@db:5432/x?sslmode=require",
            "POSTGRES://db/x",
        ] {
            let mut s = valid();
            s.database.url = url.into();
            assert_eq!(settings(&s), Ok(()), "{url}");
        }
        assert_rejected("database.url", "empty", |s| s.database.url.clear());
        assert_rejected("hss.endpoint", "http:// or https://", |s| {
            s.hss.endpoint = Some("ftp://hss.example.com".parse().unwrap())
        });
        assert_rejected("hss.endpoint", "has a path (\"/hss/\")", |s| {
            s.hss.endpoint = Some("https://proxy.example.com/hss/".parse().unwrap())
        });
        assert_rejected("hss.endpoint", "query or fragment", |s| {
            s.hss.endpoint = Some("https://proxy.example.com/?a=b".parse().unwrap())
        });
        assert_rejected("hss.endpoint", "credentials in the URL", |s| {
            s.hss.endpoint = Some("https://u:p@proxy.example.com".parse().unwrap())
        });
        let mut accepted = valid();
        accepted.hss.endpoint = Some("https://hss.example.com:8443/".parse().unwrap());
        assert_eq!(settings(&accepted), Ok(()));
        assert_rejected(
            "credentials.metadata_endpoint",
            "http:// or https://",
            |s| s.credentials.metadata_endpoint = "file:///etc/passwd".parse().unwrap(),
        );
    }

    proptest::proptest! {
        // Whatever the operator writes, validation answers without panicking, and a refusal
        // names the key and quotes the value, so the one line in the journal points at it.
        #[test]
        fn any_schedule_or_log_level_is_answered_and_a_refusal_names_the_key(
            text in "\\PC{0,40}"
        ) {
            match cron("schedule.sync", &text) {
                Ok(()) => proptest::prop_assert_eq!(text.split_whitespace().count(), 6),
                Err(refused) => {
                    proptest::prop_assert_eq!(refused.key.as_str(), "schedule.sync");
                    let quoted = format!("{text:?}");
                    proptest::prop_assert!(refused.problem.contains(&quoted));
                }
            }
            if let Err(problem) = log_level(&text) {
                proptest::prop_assert!(!problem.is_empty());
            }
        }

        // A six-field expression is accepted exactly when the scheduler's own parser accepts
        // it, so a schedule that validates can always be scheduled.
        #[test]
        fn a_six_field_schedule_is_accepted_exactly_when_the_scheduler_accepts_it(
            fields in proptest::collection::vec("[0-9*/,LW#?A-Z-]{1,6}", 6)
        ) {
            let expression = fields.join(" ");
            let scheduler = tokio_cron_scheduler::Job::new(expression.as_str(), |_, _| {});
            proptest::prop_assert_eq!(
                cron("schedule.sync", &expression).is_ok(),
                scheduler.is_ok(),
                "{:?}", expression
            );
        }
    }
}
