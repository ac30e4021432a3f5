//! Reading request parameters the way the service validates them: every failure is a 400
//! that names the parameter, and nothing here can panic on what a client sends.

use std::ops::RangeInclusive;

use serde_json::{Map, Value};

use super::error::ApiError;

/// Decoded query parameters. A repeated key counts by its first value.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        Self {
            pairs: crate::hss::signer::parse_query(raw.unwrap_or("")),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An integer within `range`, or `default` when absent.
    pub fn int(
        &self,
        name: &str,
        range: RangeInclusive<i64>,
        default: i64,
    ) -> Result<i64, ApiError> {
        let Some(text) = self.get(name) else {
            return Ok(default);
        };
        let value: i64 = text
            .parse()
            .map_err(|_| ApiError::invalid(name, "must be an integer"))?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ApiError::invalid(
                name,
                format!("must be between {} and {}", range.start(), range.end()),
            ))
        }
    }

    /// An optional integer within `range`.
    pub fn opt_int(&self, name: &str, range: RangeInclusive<i64>) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(_) => self.int(name, range, 0).map(Some),
        }
    }

    /// An optional value that must be one of `allowed`.
    pub fn one_of(&self, name: &str, allowed: &[&str]) -> Result<Option<&str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) if allowed.contains(&v) => Ok(Some(v)),
            Some(_) => Err(ApiError::invalid(
                name,
                format!("must be one of {}", allowed.join(", ")),
            )),
        }
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::invalid(name, "must be true or false")),
        }
    }

    pub fn string(&self, name: &str, len: RangeInclusive<usize>) -> Result<Option<&str>, ApiError> {
        self.get(name).map(|v| check_len(name, v, &len)).transpose()
    }

    pub fn required(&self, name: &str, len: RangeInclusive<usize>) -> Result<&str, ApiError> {
        self.string(name, len)?
            .ok_or_else(|| ApiError::invalid(name, "is required"))
    }
}

/// A JSON object body, or one object inside it; `path` prefixes field names in errors
/// (`image_info_list[3].namespace`).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a, 'p> {
    map: &'a Map<String, Value>,
    path: &'p str,
}

/// Parses a request body that must be a JSON object. An empty body is an empty object.
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid("body", "must be a JSON object")),
        Err(e) => Err(ApiError::invalid(
            "body",
            format!("is not valid JSON ({e})"),
        )),
    }
}

impl<'a, 'p> Fields<'a, 'p> {
    pub fn new(map: &'a Map<String, Value>, path: &'p str) -> Self {
        Self { map, path }
    }

    fn name(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    /// A field that is present and not null.
    fn value(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    pub fn string(
        &self,
        field: &str,
        len: RangeInclusive<usize>,
    ) -> Result<Option<&'a str>, ApiError> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::String(s)) => check_len(&self.name(field), s, &len).map(Some),
            Some(_) => Err(ApiError::invalid(&self.name(field), "must be a string")),
        }
    }

    pub fn required(&self, field: &str, len: RangeInclusive<usize>) -> Result<&'a str, ApiError> {
        self.string(field, len)?
            .ok_or_else(|| ApiError::invalid(&self.name(field), "is required"))
    }

    /// A required string that must be one of `allowed`.
    pub fn one_of(&self, field: &str, allowed: &[&str]) -> Result<&'a str, ApiError> {
        let value = self.required(field, 1..=usize::MAX)?;
        if allowed.contains(&value) {
            Ok(value)
        } else {
            Err(ApiError::invalid(
                &self.name(field),
                format!("must be one of {}", allowed.join(", ")),
            ))
        }
    }

    pub fn bool(&self, field: &str) -> Result<Option<bool>, ApiError> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::invalid(
                &self.name(field),
                "must be true or false",
            )),
        }
    }

    pub fn int(&self, field: &str) -> Result<Option<i64>, ApiError> {
        match self.value(field) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::invalid(&self.name(field), "must be an integer")),
        }
    }

    /// An optional integer within `range`.
    pub fn int_in(&self, field: &str, range: RangeInclusive<i64>) -> Result<Option<i64>, ApiError> {
        match self.int(field)? {
            Some(v) if !range.contains(&v) => Err(ApiError::invalid(
                &self.name(field),
                format!("must be between {} and {}", range.start(), range.end()),
            )),
            v => Ok(v),
        }
    }

    /// An optional string that must be one of `allowed`.
    pub fn opt_one_of(&self, field: &str, allowed: &[&str]) -> Result<Option<&'a str>, ApiError> {
        match self.string(field, 0..=usize::MAX)? {
            Some(v) if !allowed.contains(&v) => Err(ApiError::invalid(
                &self.name(field),
                format!("must be one of {}", allowed.join(", ")),
            )),
            v => Ok(v),
        }
    }

    /// An optional nested object.
    pub fn object(&self, field: &str) -> Result<Option<&'a Map<String, Value>>, ApiError> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(_) => Err(ApiError::invalid(&self.name(field), "must be an object")),
        }
    }

    pub fn array(&self, field: &str) -> Result<Option<&'a Vec<Value>>, ApiError> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(ApiError::invalid(&self.name(field), "must be an array")),
        }
    }
}

/// Lengths are counted in characters, as the service documents them.
fn check_len<'v>(
    name: &str,
    value: &'v str,
    len: &RangeInclusive<usize>,
) -> Result<&'v str, ApiError> {
    let chars = value.chars().count();
    if len.contains(&chars) {
        Ok(value)
    } else if *len.end() == usize::MAX {
        Err(ApiError::invalid(
            name,
            format!("must be at least {} characters", len.start()),
        ))
    } else {
        Err(ApiError::invalid(
            name,
            format!("must be {} to {} characters long", len.start(), len.end()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_ranges_and_defaults() {
        let q = Query::parse(Some("limit=0&offset=5&flag=yes&name=%E4%BB%93"));
        assert_eq!(q.int("offset", 0..=10, 0), Ok(5));
        assert_eq!(q.int("absent", 0..=10, 7), Ok(7));
        assert!(
            q.int("limit", 1..=200, 10)
                .unwrap_err()
                .message
                .contains("limit")
        );
        assert!(q.bool("flag").is_err());
        assert_eq!(q.string("name", 1..=1), Ok(Some("仓")));
        assert!(
            q.required("missing", 1..=5)
                .unwrap_err()
                .message
                .contains("missing")
        );
    }

    #[test]
    fn body_fields_name_themselves_in_errors() {
        let map = json_object(br#"{"a": 1, "b": "", "c": "x", "d": null}"#).unwrap();
        let f = Fields::new(&map, "item[2]");
        assert!(
            f.string("a", 1..=5)
                .unwrap_err()
                .message
                .contains("item[2].a")
        );
        assert!(f.required("b", 1..=5).is_err());
        assert_eq!(f.string("d", 1..=5), Ok(None));
        assert!(
            f.one_of("c", &["y", "z"])
                .unwrap_err()
                .message
                .contains("y, z")
        );
        assert!(json_object(b"[1]").is_err() && json_object(b"{").is_err());
        assert!(json_object(b"").unwrap().is_empty());
    }
}
