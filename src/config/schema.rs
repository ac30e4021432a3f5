//! The type of every key, read from `config/default.toml`, and the check that the operator's
//! file and `HSS_SCAND__…` variables give each key a value of that type.
//!
//! The config crate converts between scalar types without a word: `batch_size = 2.5` runs
//! with a rounded count, `batch_size = true` with 1, `latest_only = "yes"` with true,
//! `name = 123` with "123". An operator who wrote one of those meant something the daemon did
//! not do, so each is an error here. default.toml already defines every key (a test proves it
//! lists each one and no other, the keys of `[[targets]]`, `[[registries]]` and
//! `[[policy.rules]]` in its commented examples), so it also defines each key's type: a new
//! key is checked as soon as it is documented, and there is no second list to keep in step.
//!
//! Only a scalar where a scalar of another type belongs is this check's business. Arrays,
//! tables, and keys that take either a string or a list (`policy.scan_scope`) are left to
//! serde, which knows what such a key accepts.

use std::collections::BTreeMap;

use toml::Value;

use super::validate::Invalid;

/// The headers of the arrays of tables that default.toml documents as commented examples.
/// `[targets.credentials]` continues the `[[targets]]` example before it.
const EXAMPLE_HEADERS: [&str; 4] = [
    "[[targets]]",
    "[targets.credentials]",
    "[[registries]]",
    "[[policy.rules]]",
];

/// The TOML of the commented-out `[[targets]]`, `[[registries]]` and `[[policy.rules]]`
/// examples in `text` (default.toml): each header and the `key = value` lines under it,
/// uncommented. Prose comments end an example.
pub(super) fn commented_examples(text: &str) -> String {
    let mut examples = String::new();
    let mut in_example = false;
    for line in text.lines() {
        let uncommented = line.strip_prefix("# ").unwrap_or("");
        let is_header = EXAMPLE_HEADERS.contains(&uncommented.trim());
        let is_key = uncommented.split_once(" = ").is_some_and(|(key, _)| {
            !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        });
        if is_header || (in_example && is_key) {
            in_example = true;
            examples.push_str(uncommented);
            examples.push('\n');
        } else {
            in_example = false;
        }
    }
    examples
}

/// The scalar types TOML has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scalar {
    String,
    Integer,
    Float,
    Boolean,
    Datetime,
}

impl Scalar {
    fn of(value: &Value) -> Option<Scalar> {
        match value {
            Value::String(_) => Some(Scalar::String),
            Value::Integer(_) => Some(Scalar::Integer),
            Value::Float(_) => Some(Scalar::Float),
            Value::Boolean(_) => Some(Scalar::Boolean),
            Value::Datetime(_) => Some(Scalar::Datetime),
            Value::Array(_) | Value::Table(_) => None,
        }
    }

    /// Whether a value of type `found` may be given where `self` is expected. A float key
    /// takes an integer, because `max_delete_share = 1` cannot mean anything but 1.0.
    fn accepts(self, found: Scalar) -> bool {
        self == found || (self == Scalar::Float && found == Scalar::Integer)
    }

    /// "an integer": what an error says was found.
    fn described(self) -> &'static str {
        match self {
            Scalar::String => "a string",
            Scalar::Integer => "an integer",
            Scalar::Float => "a float",
            Scalar::Boolean => "a boolean",
            Scalar::Datetime => "a date-time",
        }
    }

    /// What an error says is expected: as found, except that a float key takes any number.
    fn expected(self) -> &'static str {
        match self {
            Scalar::Float => "a number",
            other => other.described(),
        }
    }
}

/// What the value of a key is, as far as this check is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Scalar(Scalar),
    /// A section (`[policy]`), with its keys.
    Table(Keys),
    /// An array of tables (`[[targets]]`); every entry has (some of) these keys.
    Tables(Keys),
    /// Anything else (a plain array, a table whose examples disagree): serde's business.
    Unchecked,
}

type Keys = BTreeMap<String, Shape>;

/// The type of every key, as default.toml writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Schema(Keys);

impl Schema {
    /// From default.toml's values (`defaults`) and its commented examples (`examples`, the
    /// TOML of [`commented_examples`]); an example's array replaces the empty array that
    /// default.toml gives the same key (`policy.rules = []`).
    pub(super) fn new(mut defaults: toml::Table, examples: toml::Table) -> Schema {
        merge(&mut defaults, examples);
        Schema(keys_of(&defaults))
    }

    /// The first key of `table` (the operator's file) whose value is a scalar of another
    /// type than its key's. Keys this schema does not know are skipped: they are unknown to
    /// serde too, which names them.
    pub(super) fn check_table(&self, table: &toml::Table) -> Result<(), Invalid> {
        check_keys(&self.0, table, "")
    }

    /// The scalar type of `key` (`policy.batch_size`), when it is a scalar key of a section;
    /// environment variables cannot reach into an array of tables.
    pub(super) fn scalar_at(&self, key: &str) -> Option<Scalar> {
        let mut keys = &self.0;
        let mut names = key.split('.').peekable();
        while let Some(name) = names.next() {
            match (keys.get(name)?, names.peek()) {
                (Shape::Scalar(scalar), None) => return Some(*scalar),
                (Shape::Table(inner), Some(_)) => keys = inner,
                _ => return None,
            }
        }
        None
    }
}

/// Whether `text`, the value of an environment variable, is a value of type `expected`, in
/// the words of the problem when it is not. Environment values are all text, so a string
/// key takes any. The others take what the loader reads as their type and nothing it would
/// have to convert: integers in decimal (`12`, `-3`), numbers, and `true` or `false` (in any
/// case, as the config crate reads them).
pub(super) fn check_text(expected: Scalar, text: &str) -> Result<(), String> {
    let fits = match expected {
        Scalar::String | Scalar::Datetime => true,
        Scalar::Integer => text.parse::<i64>().is_ok(),
        Scalar::Float => text.parse::<f64>().is_ok(),
        Scalar::Boolean => text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false"),
    };
    if fits {
        return Ok(());
    }
    let expected = match expected {
        Scalar::Integer if is_decimal(text) => {
            "an integer from -9223372036854775808 to 9223372036854775807"
        }
        Scalar::Boolean => "true or false",
        other => other.expected(),
    };
    Err(format!("expected {expected}, found {text:?}"))
}

/// Digits with an optional sign: an integer, if one too large for 64 bits.
fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn check_keys(keys: &Keys, table: &toml::Table, path: &str) -> Result<(), Invalid> {
    for (name, value) in table {
        let Some(shape) = keys.get(name) else {
            continue;
        };
        let key = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        match (shape, value) {
            (Shape::Scalar(expected), value) => check_scalar(*expected, value, key)?,
            (Shape::Table(keys), Value::Table(table)) => check_keys(keys, table, &key)?,
            (Shape::Tables(keys), Value::Array(entries)) => {
                for (index, entry) in entries.iter().enumerate() {
                    if let Value::Table(table) = entry {
                        check_keys(keys, table, &format!("{key}[{index}]"))?;
                    }
                }
            }
            // A table where a scalar belongs, a scalar where an array of tables does, …:
            // serde says what it expected there.
            _ => {}
        }
    }
    Ok(())
}

fn check_scalar(expected: Scalar, value: &Value, key: String) -> Result<(), Invalid> {
    let Some(found) = Scalar::of(value) else {
        // An array or a table: serde knows whether this key also takes one (scan_scope).
        return Ok(());
    };
    if expected.accepts(found) {
        return Ok(());
    }
    Err(Invalid {
        key,
        problem: format!(
            "expected {}, found {} ({value})",
            expected.expected(),
            found.described()
        ),
    })
}

/// Puts `from` into `into`, descending into tables both have and replacing everything else.
fn merge(into: &mut toml::Table, from: toml::Table) {
    for (name, value) in from {
        match (into.get_mut(&name), value) {
            (Some(Value::Table(inner)), Value::Table(value)) => merge(inner, value),
            (_, value) => {
                into.insert(name, value);
            }
        }
    }
}

fn keys_of(table: &toml::Table) -> Keys {
    table
        .iter()
        .map(|(name, value)| (name.clone(), shape_of(value)))
        .collect()
}

fn shape_of(value: &Value) -> Shape {
    if let Some(scalar) = Scalar::of(value) {
        return Shape::Scalar(scalar);
    }
    match value {
        Value::Table(table) => Shape::Table(keys_of(table)),
        Value::Array(entries) if !entries.is_empty() => {
            // The keys of every example entry: the two `[[registries]]` examples show one
            // password source each. A key the examples give two shapes is left unchecked.
            let mut keys = Keys::new();
            for entry in entries {
                let Value::Table(table) = entry else {
                    return Shape::Unchecked;
                };
                for (name, shape) in keys_of(table) {
                    let known = keys.entry(name).or_insert_with(|| shape.clone());
                    if *known != shape {
                        *known = Shape::Unchecked;
                    }
                }
            }
            Shape::Tables(keys)
        }
        _ => Shape::Unchecked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULTS_TOML;

    fn schema() -> Schema {
        Schema::new(
            DEFAULTS_TOML.parse().unwrap(),
            commented_examples(DEFAULTS_TOML).parse().unwrap(),
        )
    }

    fn check(text: &str) -> Result<(), String> {
        let table: toml::Table = text.parse().unwrap();
        schema()
            .check_table(&table)
            .map_err(|invalid| format!("{}: {}", invalid.key, invalid.problem))
    }

    #[test]
    fn the_type_of_each_key_is_the_type_of_its_default_or_example() {
        let schema = schema();
        for (key, scalar) in [
            ("policy.batch_size", Scalar::Integer),
            ("policy.latest_only", Scalar::Boolean),
            ("policy.scan_scope", Scalar::String),
            ("sync.max_delete_share", Scalar::Float),
            ("hss.endpoint", Scalar::String),
        ] {
            assert_eq!(schema.scalar_at(key), Some(scalar), "{key}");
        }
        for not_a_scalar_key in ["policy", "policy.rules", "targets", "policy.nope", "x.y.z"] {
            assert_eq!(
                schema.scalar_at(not_a_scalar_key),
                None,
                "{not_a_scalar_key}"
            );
        }
        let Shape::Tables(target) = &schema.0["targets"] else {
            panic!("targets is an array of tables: {:?}", schema.0["targets"]);
        };
        assert_eq!(target["trigger_swr_sync"], Shape::Scalar(Scalar::Boolean));
        assert_eq!(target["image_types"], Shape::Unchecked);
        let Shape::Table(policy) = &schema.0["policy"] else {
            panic!("policy is a table");
        };
        let Shape::Tables(rule) = &policy["rules"] else {
            panic!("policy.rules is an array of tables: {:?}", policy["rules"]);
        };
        assert_eq!(rule["priority"], Shape::Scalar(Scalar::Integer));
        let Shape::Tables(registry) = &schema.0["registries"] else {
            panic!("registries is an array of tables");
        };
        assert!(
            registry.contains_key("password_env") && registry.contains_key("password_file"),
            "the keys of both registry examples: {registry:?}"
        );
    }

    #[test]
    fn a_scalar_of_another_type_is_named_with_both_types_and_the_value() {
        assert_eq!(
            check("[policy]\nbatch_size = 2.5\n").unwrap_err(),
            "policy.batch_size: expected an integer, found a float (2.5)"
        );
        assert_eq!(
            check("[policy]\nbatch_size = true\n").unwrap_err(),
            "policy.batch_size: expected an integer, found a boolean (true)"
        );
        assert_eq!(
            check("[policy]\nlatest_only = \"yes\"\n").unwrap_err(),
            "policy.latest_only: expected a boolean, found a string (\"yes\")"
        );
        assert_eq!(
            check("[log]\nlevel = 5\n").unwrap_err(),
            "log.level: expected a string, found an integer (5)"
        );
        assert_eq!(
            check("[sync]\nmax_delete_share = \"0.5\"\n").unwrap_err(),
            "sync.max_delete_share: expected a number, found a string (\"0.5\")"
        );
        assert_eq!(
            check("[daemon]\nshutdown_grace = 1979-05-27\n").unwrap_err(),
            "daemon.shutdown_grace: expected a string, found a date-time (1979-05-27)"
        );
    }

    #[test]
    fn keys_of_array_entries_are_named_with_their_index() {
        let target = "[[targets]]\nname = \"a\"\n";
        assert_eq!(
            check(&format!("{target}{target}trigger_swr_sync = \"yes\"\n")).unwrap_err(),
            "targets[1].trigger_swr_sync: expected a boolean, found a string (\"yes\")"
        );
        assert_eq!(
            check("[[policy.rules]]\npriority = 1.5\n").unwrap_err(),
            "policy.rules[0].priority: expected an integer, found a float (1.5)"
        );
        assert_eq!(
            check("[[policy.rules]]\nskip = false\n[[policy.rules]]\nskip = 1\n").unwrap_err(),
            "policy.rules[1].skip: expected a boolean, found an integer (1)"
        );
        assert_eq!(
            check("[[registries]]\npassword_file = 7\n").unwrap_err(),
            "registries[0].password_file: expected a string, found an integer (7)"
        );
    }

    #[test]
    fn values_of_the_right_type_and_what_serde_decides_pass() {
        for good in [
            "[policy]\nbatch_size = 12\nlatest_only = true\nscan_scope = \"all\"\n",
            "[policy]\nscan_scope = [\"baseline\"]\n",
            // a float key takes an integer
            "[sync]\nmax_delete_share = 1\n",
            "[sync]\nmax_delete_share = 0.5\n",
            "[[policy.rules]]\npriority = -3\nskip = true\n",
            // arrays, tables and unknown keys are serde's to judge
            "[policy]\nbatch_size = [1]\n",
            "[policy.batch_size]\nx = 1\n",
            "[policy]\nbatch_sise = 2.5\n",
            "targets = 5\n",
            "policy = 5\n",
            "[[targets]]\nimage_types = \"private_image\"\ncolour = 1.5\n",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
    }

    #[test]
    fn environment_text_is_checked_as_the_loader_reads_it() {
        assert_eq!(check_text(Scalar::Integer, "12"), Ok(()));
        assert_eq!(check_text(Scalar::Integer, "-3"), Ok(()));
        assert_eq!(
            check_text(Scalar::Integer, "2.5"),
            Err("expected an integer, found \"2.5\"".to_owned())
        );
        for not_an_integer in ["true", "1e3", "0x10", "1_000", " 12", ""] {
            assert!(
                check_text(Scalar::Integer, not_an_integer).is_err(),
                "{not_an_integer:?}"
            );
        }
        assert_eq!(
            check_text(Scalar::Integer, "99999999999999999999"),
            Err(
                "expected an integer from -9223372036854775808 to 9223372036854775807, \
                 found \"99999999999999999999\""
                    .to_owned()
            )
        );
        for boolean in ["true", "false", "TRUE", "False"] {
            assert_eq!(check_text(Scalar::Boolean, boolean), Ok(()), "{boolean}");
        }
        assert_eq!(
            check_text(Scalar::Boolean, "yes"),
            Err("expected true or false, found \"yes\"".to_owned())
        );
        assert!(check_text(Scalar::Boolean, "1").is_err());
        assert_eq!(check_text(Scalar::Float, "1"), Ok(()));
        assert_eq!(check_text(Scalar::Float, "0.25"), Ok(()));
        assert_eq!(
            check_text(Scalar::Float, "half"),
            Err("expected a number, found \"half\"".to_owned())
        );
        assert_eq!(check_text(Scalar::String, "12"), Ok(()));
    }

    #[test]
    fn examples_are_the_key_lines_under_a_commented_header() {
        let text = "# prose\n# [[targets]]\n# name = \"a\"   # why\n# Not = a key\n\
                    # image = \"b\"\n[real]\n# [[policy.rules]]\n#\n# skip = true\n";
        assert_eq!(
            commented_examples(text),
            "[[targets]]\nname = \"a\"   # why\n[[policy.rules]]\n"
        );
    }
}
