//! Request bodies serialised byte for byte as the official Python SDK sends them
//! (`simplejson.dumps` defaults: `", "` and `": "` separators, every non-ASCII character as a
//! `\uXXXX` escape).
//!
//! The gateway signs whatever bytes arrive, so compact JSON would be accepted too. Matching the
//! SDK exactly lets the tests compare our requests with the SDK's recorded ones in full: URL,
//! headers, body and signature, not only the signature algorithm.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};

/// The `simplejson.dumps` formatter.
#[derive(Debug, Default, Clone, Copy)]
pub struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    /// `ensure_ascii=True`: anything outside printable ASCII becomes `\uXXXX` (UTF-16 units,
    /// lower-case hex, as Python writes them). serde_json hands over quotes, backslashes and
    /// C0 controls through `write_char_escape`, which already matches Python.
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (at, ch) in fragment.char_indices() {
            if (' '..='~').contains(&ch) {
                continue;
            }
            writer.write_all(&fragment.as_bytes()[start..at])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(writer, "\\u{unit:04x}")?;
            }
            start = at + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        let text: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"\\/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => return write!(writer, "\\u{byte:04x}"),
        };
        writer.write_all(text)
    }
}

/// Serialises `value` as the Python SDK would.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    value.serialize(&mut Serializer::with_formatter(&mut out, PythonFormatter))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(v: &serde_json::Value) -> String {
        String::from_utf8(to_vec(v).unwrap()).unwrap()
    }

    #[test]
    fn separators_are_pythons() {
        let v = json!({"a": [1, 2, {"b": false}], "c": null});
        assert_eq!(text(&v), r#"{"a": [1, 2, {"b": false}], "c": null}"#);
        assert_eq!(text(&json!({})), "{}");
        assert_eq!(text(&json!([])), "[]");
    }

    #[test]
    fn non_ascii_is_escaped_like_ensure_ascii() {
        assert_eq!(text(&json!("é仓")), r#""\u00e9\u4ed3""#);
        assert_eq!(
            text(&json!("😀")),
            r#""\ud83d\ude00""#,
            "astral: surrogate pair"
        );
        assert_eq!(
            text(&json!("\u{7f}")),
            r#""\u007f""#,
            "DEL is not printable"
        );
        assert_eq!(text(&json!("a\"\\\n\u{1}/")), r#""a\"\\\n\u0001/""#);
    }
}
