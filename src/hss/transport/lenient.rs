//! Reading HSS's JSON leniently, because the API is loose: the seed page's own example sends
//! `"id": "111 (example …)"` for an int64, numbers arrive as strings, and enum values appear
//! without notice.
//!
//! * An int64 field accepts a JSON number or a numeric string; anything else leaves the field
//!   empty and is counted as unreadable by the adapter, never fatal.
//! * A text field accepts a string or a number printed as text.
//! * `null` and an absent field are the same: empty, and not unreadable.
//!
//! Every adapter's wire model is built from these pieces.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A field read leniently: absent (or `null`), a usable value, or present but unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lenient<T> {
    #[default]
    Missing,
    Value(T),
    Unreadable,
}

impl<T> Lenient<T> {
    pub fn value(self) -> Option<T> {
        match self {
            Lenient::Value(v) => Some(v),
            _ => None,
        }
    }

    /// 1 when the field was present but unreadable, for counting.
    pub fn unreadable(&self) -> u32 {
        u32::from(matches!(self, Lenient::Unreadable))
    }
}

// Visitors rather than a detour through `serde_json::Value`: a page has 200 images of 20
// fields each, and building a `Value` per field made parsing the slowest step of a re-sync.

/// Reads any JSON value, keeping what fits and marking the rest unreadable.
macro_rules! lenient_visitor {
    ($visitor:ident, $out:ty, $expecting:literal,
     missing => $missing:expr, unreadable => $unreadable:expr,
     $($method:ident($arg:ident: $ty:ty) => $body:expr),* $(,)?) => {
        struct $visitor;
        impl<'de> Visitor<'de> for $visitor {
            type Value = $out;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str($expecting)
            }
            fn visit_unit<E: de::Error>(self) -> Result<$out, E> {
                Ok($missing)
            }
            fn visit_none<E: de::Error>(self) -> Result<$out, E> {
                Ok($missing)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<$out, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<$out, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok($unreadable)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<$out, A::Error> {
                while map.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
                Ok($unreadable)
            }
            $(fn $method<E: de::Error>(self, $arg: $ty) -> Result<$out, E> {
                Ok($body)
            })*
        }
    };
}

lenient_visitor!(NumberVisitor, Lenient<i64>, "an integer or a numeric string",
    missing => Lenient::Missing, unreadable => Lenient::Unreadable,
    visit_bool(_v: bool) => Lenient::Unreadable,
    visit_i64(v: i64) => Lenient::Value(v),
    visit_u64(v: u64) => i64::try_from(v).map_or(Lenient::Unreadable, Lenient::Value),
    // An integral float (`1.0`) is a number in JSON's eyes; `1.5` is not an id.
    visit_f64(v: f64) => if v.fract() == 0.0 && v.abs() < 9.0e18 {
        Lenient::Value(v as i64)
    } else {
        Lenient::Unreadable
    },
    visit_str(v: &str) => v.trim().parse().map_or(Lenient::Unreadable, Lenient::Value),
);

lenient_visitor!(FlagVisitor, Lenient<bool>, "a boolean",
    missing => Lenient::Missing, unreadable => Lenient::Unreadable,
    visit_bool(v: bool) => Lenient::Value(v),
    visit_i64(_v: i64) => Lenient::Unreadable,
    visit_u64(_v: u64) => Lenient::Unreadable,
    visit_f64(_v: f64) => Lenient::Unreadable,
    visit_str(v: &str) => if v.eq_ignore_ascii_case("true") {
        Lenient::Value(true)
    } else if v.eq_ignore_ascii_case("false") {
        Lenient::Value(false)
    } else {
        Lenient::Unreadable
    },
);

lenient_visitor!(TextVisitor, Text, "a string",
    missing => Text::default(), unreadable => Text { value: String::new(), unreadable: true },
    visit_bool(v: bool) => Text { value: v.to_string(), unreadable: false },
    visit_i64(v: i64) => Text { value: v.to_string(), unreadable: false },
    visit_u64(v: u64) => Text { value: v.to_string(), unreadable: false },
    visit_f64(v: f64) => Text { value: v.to_string(), unreadable: false },
    visit_str(v: &str) => Text { value: v.to_owned(), unreadable: false },
    visit_string(v: String) => Text { value: v, unreadable: false },
);

impl<'de> Deserialize<'de> for Lenient<i64> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberVisitor)
    }
}

impl<'de> Deserialize<'de> for Lenient<bool> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FlagVisitor)
    }
}

/// A text field: a string, or a number printed as text; `null`/absent is empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text {
    pub value: String,
    unreadable: bool,
}

impl Text {
    /// 1 when the field was present but could not be read as text, for counting.
    pub fn unreadable(&self) -> u32 {
        u32::from(self.unreadable)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

/// A list that may be `null`: read as empty.
pub fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A lenient text field as a plain `String` (empty when absent or unreadable).
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Text::deserialize(d).map(|text| text.value)
}

/// A lenient integer field as an `Option` (`None` when absent or unreadable).
pub fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Lenient::<i64>::deserialize(d).map(Lenient::value)
}

/// The error bodies the SDK's `DefaultExceptionHandler` recognises, tried in its order:
/// `error_code/error_msg`, `errorCode/errorMsg`, `code/message`, then one level down.
pub fn parse_error_body(body: &[u8]) -> Option<(String, String)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    fn text(v: Option<&Value>) -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    fn shapes(obj: &serde_json::Map<String, Value>) -> Option<(String, String)> {
        for (code, msg) in [
            ("error_code", "error_msg"),
            ("errorCode", "errorMsg"),
            ("code", "message"),
        ] {
            if let Some(code) = text(obj.get(code)) {
                return Some((code, text(obj.get(msg)).unwrap_or_default()));
            }
        }
        None
    }
    let obj = value.as_object()?;
    shapes(obj).or_else(|| obj.values().filter_map(Value::as_object).find_map(shapes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_in_every_sdk_shape() {
        type Case<'a> = (&'a [u8], Option<(&'a str, &'a str)>);
        let cases: [Case; 6] = [
            (
                br#"{"error_code":"APIGW.0301","error_msg":"bad sig"}"#,
                Some(("APIGW.0301", "bad sig")),
            ),
            (br#"{"errorCode":"X.1","errorMsg":"m"}"#, Some(("X.1", "m"))),
            (br#"{"code":"C","message":"m2"}"#, Some(("C", "m2"))),
            (
                br#"{"error":{"code":"N","message":"nested"}}"#,
                Some(("N", "nested")),
            ),
            (br#"{"error_code": 5}"#, Some(("5", ""))),
            (b"<html>", None),
        ];
        for (body, want) in cases {
            let got = parse_error_body(body);
            assert_eq!(
                got.as_ref().map(|(c, m)| (c.as_str(), m.as_str())),
                want,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
