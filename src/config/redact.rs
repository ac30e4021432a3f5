//! Keeping secrets out of what the daemon prints. Credentials never live in the configuration
//! (AK/SK come from the environment, files or the metadata service), so `config check` says
//! where they come from and whether they are there, never what they are; a password or token
//! inside a URL is replaced by `[redacted]` wherever a URL is displayed or serialised.

use std::path::Path;

use super::{CredentialSource, CredentialsSettings, PasswordSource, RegistrySettings, Settings};

/// What replaces a secret.
pub(super) const REDACTED: &str = "[redacted]";

/// Query parameters whose names contain one of these carry secrets (presigned URLs, tokens).
const SECRET_QUERY_WORDS: [&str; 7] = [
    "pass",
    "secret",
    "token",
    "key",
    "sig",
    "credential",
    "auth",
];

/// A URL for display: the password of its userinfo and secret-looking query values redacted.
pub(super) fn url(url: &url::Url) -> String {
    url_text(url.as_str())
}

/// [`url`] for text that may not parse as a URL (`database.url` is sqlx's to parse); works
/// on the text so that nothing is printed unredacted because it failed to parse.
pub fn url_text(text: &str) -> String {
    let (before_fragment, fragment) = match text.split_once('#') {
        Some((before, fragment)) => (before, Some(fragment)),
        None => (text, None),
    };
    let (base, query) = match before_fragment.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (before_fragment, None),
    };
    let mut redacted = redact_userinfo(base);
    if let Some(query) = query {
        redacted.push('?');
        redacted.push_str(&redact_query(query));
    }
    if let Some(fragment) = fragment {
        redacted.push('#');
        redacted.push_str(fragment);
    }
    redacted
}

/// `scheme://user:password@host/…` → `scheme://user:[redacted]@host/…`.
fn redact_userinfo(base: &str) -> String {
    let Some((scheme, rest)) = base.split_once("://") else {
        return base.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return base.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:{REDACTED}@{host}{path}"),
        None => base.to_owned(),
    }
}

fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _value)) if is_secret_name(name) => format!("{name}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_QUERY_WORDS.iter().any(|word| name.contains(word))
}

/// The effective configuration as TOML, preceded by comments that say how it was made and
/// where the credentials come from. Serialisation itself redacts URLs (see `values`).
pub(super) fn effective_toml(settings: &Settings) -> String {
    let body = toml::to_string(settings).unwrap_or_else(|err| {
        // Every field serialises to TOML; if a future field does not, say so instead of
        // printing half a configuration.
        format!("# the effective configuration could not be written as TOML: {err}\n")
    });
    // A target with its own account: where that account's keys come from, like [credentials].
    let target_credentials: String = settings
        .targets
        .with_reach()
        .filter_map(|(target, reach)| {
            let own = reach.credentials.as_ref()?;
            Some(format!(
                "# credentials of target {}: {}\n",
                target.name,
                credentials_summary(&own.resolve(&settings.credentials))
            ))
        })
        .collect();
    let registries: String = settings
        .registries
        .iter()
        .map(|registry| format!("# {}\n", registry_password_summary(registry)))
        .collect();
    format!(
        "# effective configuration: built-in defaults, then the configuration file, then HSS_SCAND__* environment variables\n\
         # secrets are never shown; a secret inside a value appears as \"{REDACTED}\"\n\
         # credentials: {}\n{target_credentials}{registries}\n{body}",
        credentials_summary(&settings.credentials)
    )
}

/// Where a registry's password comes from and whether it is there; never its value.
fn registry_password_summary(registry: &RegistrySettings) -> String {
    let source = match registry.password_source() {
        Some(PasswordSource::Env(name)) => {
            let set = std::env::var_os(name).is_some_and(|value| !value.is_empty());
            format!(
                "environment variable {name} ({})",
                if set { "set" } else { "NOT set" }
            )
        }
        Some(PasswordSource::File(path)) => describe_file("password_file", path),
        None => "nowhere".to_owned(),
    };
    format!(
        "registry {} of target {}: password from {source}",
        registry.name, registry.target
    )
}

/// Where the credentials come from and whether they are there; never their values.
pub(super) fn credentials_summary(credentials: &CredentialsSettings) -> String {
    match credentials.source {
        CredentialSource::Env => {
            let described = |name: &str, optional: bool| {
                let set = std::env::var_os(name).is_some_and(|value| !value.is_empty());
                match (set, optional) {
                    (true, _) => format!("{name} is set"),
                    (false, false) => format!("{name} is NOT set"),
                    (false, true) => format!("{name} is not set (optional)"),
                }
            };
            format!(
                "from the environment: {}, {}, {}",
                described(CredentialsSettings::AK_ENV, false),
                described(CredentialsSettings::SK_ENV, false),
                described(CredentialsSettings::SECURITY_TOKEN_ENV, true),
            )
        }
        CredentialSource::File => {
            let files = [
                ("ak_file", &credentials.ak_file),
                ("sk_file", &credentials.sk_file),
                ("security_token_file", &credentials.security_token_file),
            ];
            let described: Vec<String> = files
                .iter()
                .filter_map(|(key, path)| path.as_deref().map(|path| describe_file(key, path)))
                .collect();
            format!("from files: {}", described.join(", "))
        }
        CredentialSource::Metadata => format!(
            "temporary credentials of the ECS agency, from the metadata service at {}",
            url(&credentials.metadata_endpoint)
        ),
    }
}

/// Opens the file (reading nothing) to tell whether the daemon will be able to read it.
fn describe_file(key: &str, path: &Path) -> String {
    match std::fs::File::open(path) {
        Ok(_) => format!("{key} {} is readable", path.display()),
        Err(err) => format!("{key} {} is NOT readable ({err})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_redacted() {
        assert_eq!(
            url_text("https://admin:hunter2@hss.example.com:8443/v5?x=1"),
            "https://admin:[redacted]@hss.example.com:8443/v5?x=1"
        );
        assert_eq!(
            url_text("postgres://u:p@ss@db/x"),
            "postgres://u:[redacted]@db/x",
            "the last @ ends the userinfo"
        );
        let parsed: url::Url = "https://user:s3cret@example.com/".parse().unwrap();
        assert_eq!(url(&parsed), "https://user:[redacted]@example.com/");
    }

    #[test]
    fn secret_query_values_are_redacted_and_the_rest_kept() {
        assert_eq!(
            url_text("https://x.example.com/p?Signature=abc&page=2&X-Security-Token=t#frag"),
            "https://x.example.com/p?Signature=[redacted]&page=2&X-Security-Token=[redacted]#frag"
        );
    }

    #[test]
    fn urls_without_secrets_are_unchanged() {
        for text in [
            "sqlite://hss-scand.db",
            "sqlite::memory:",
            "https://user@example.com/a@b",
            "http://169.254.169.254",
            "",
        ] {
            assert_eq!(url_text(text), text);
        }
    }

    #[test]
    fn file_credentials_are_described_without_reading_them() {
        let dir = tempfile::tempdir().unwrap();
        let ak = dir.path().join("ak");
        std::fs::write(&ak, "AK-MARKER-VALUE").unwrap();
        let credentials = CredentialsSettings {
            source: CredentialSource::File,
            ak_file: Some(ak.clone()),
            sk_file: Some(dir.path().join("missing")),
            security_token_file: None,
            metadata_endpoint: "http://169.254.169.254".parse().unwrap(),
        };
        let summary = credentials_summary(&credentials);
        assert!(
            summary.contains(&format!("ak_file {} is readable", ak.display())),
            "{summary}"
        );
        assert!(
            summary.contains("sk_file") && summary.contains("is NOT readable"),
            "{summary}"
        );
        assert!(!summary.contains("AK-MARKER-VALUE"));
        assert!(!summary.contains("security_token_file"));
    }
}
