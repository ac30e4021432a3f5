//! Printing a command's result to stdout, and the pieces its human-readable forms share.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// Writes human-readable text to stdout, with every control character but the line break
/// shown escaped ([`printable`]); a closed pipe (`hss-scand status | head`) is not a failure.
pub(super) fn print(text: &str) -> io::Result<()> {
    print_exact(&printable(text))
}

/// Writes JSON to stdout as it is: serde escapes what JSON must, and the values stay exact.
pub(super) fn print_json(text: &str) -> io::Result<()> {
    print_exact(text)
}

/// Text for a terminal: names and messages come from HSS, so every control character but
/// the line break (escape sequences that move the cursor, recolour or rewrite the screen, a
/// carriage return, a tab that breaks a table's columns) is shown as `\u{1b}` instead.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\n') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_control() && c != '\n' {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn print_exact(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Prints a JSON array one element per line as the elements come, so that output of any
/// length needs no more memory than one element.
pub(super) struct JsonArrayWriter {
    out: io::BufWriter<io::StdoutLock<'static>>,
    first: bool,
}

impl JsonArrayWriter {
    pub(super) fn stdout() -> Self {
        JsonArrayWriter {
            out: io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
            first: true,
        }
    }

    /// Writes one element; `Ok(false)` when the reader went away (a closed pipe), so the
    /// caller can stop producing.
    pub(super) fn element(&mut self, value: &impl serde::Serialize) -> io::Result<bool> {
        let separator: &[u8] = if self.first { b"[\n  " } else { b",\n  " };
        self.first = false;
        let written = self
            .out
            .write_all(separator)
            .and_then(|()| serde_json::to_writer(&mut self.out, value).map_err(io::Error::from));
        quiet_broken_pipe(written)
    }

    /// Closes the array (`[]` when there was no element) and flushes.
    pub(super) fn finish(mut self) -> io::Result<()> {
        let end: &[u8] = if self.first { b"[]\n" } else { b"\n]\n" };
        let written = self.out.write_all(end).and_then(|()| self.out.flush());
        quiet_broken_pipe(written).map(|_| ())
    }
}

/// `Ok(true)` when written, `Ok(false)` on a closed pipe.
fn quiet_broken_pipe(result: io::Result<()>) -> io::Result<bool> {
    match result {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(err) => Err(err),
    }
}

/// Left-aligned columns, two spaces apart, one line per row. Cells are escaped (see
/// [`printable`]) before they are measured, so columns line up whatever HSS sent.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths = Widths::of(header);
    for row in rows {
        widths.fit(row);
    }
    let mut out = String::new();
    out.push_str(&widths.line(header));
    for row in rows {
        out.push_str(&widths.line(row));
    }
    out
}

/// The widths of a table's columns, grown to fit each row shown to them.
#[derive(Debug, Clone)]
pub(super) struct Widths(Vec<usize>);

impl Widths {
    pub(super) fn of(header: &[&str]) -> Self {
        Widths(
            header
                .iter()
                .map(|h| printable(h).chars().count())
                .collect(),
        )
    }

    pub(super) fn fit(&mut self, row: &[impl AsRef<str>]) {
        for (w, cell) in self.0.iter_mut().zip(row) {
            *w = (*w).max(printable(cell.as_ref()).chars().count());
        }
    }

    /// One line of the table, escaped and padded, with its line break.
    pub(super) fn line(&self, row: &[impl AsRef<str>]) -> String {
        let mut text = String::new();
        for (i, (cell, w)) in row.iter().zip(&self.0).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let _ = write!(text, "{:<w$}", printable(cell.as_ref()));
        }
        let mut line = text.trim_end().to_owned();
        line.push('\n');
        line
    }
}

/// A table written to stdout a row at a time, for tables too long to hold (a plan of a
/// million images): the caller measures every row first ([`Widths::fit`]), then writes.
pub(super) struct TableWriter {
    out: io::BufWriter<io::StdoutLock<'static>>,
    widths: Widths,
}

impl TableWriter {
    pub(super) fn stdout(widths: Widths) -> Self {
        TableWriter {
            out: io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
            widths,
        }
    }

    /// Writes one row; `Ok(false)` when the reader went away (a closed pipe).
    pub(super) fn row(&mut self, row: &[impl AsRef<str>]) -> io::Result<bool> {
        let line = self.widths.line(row);
        quiet_broken_pipe(self.out.write_all(line.as_bytes()))
    }

    /// Writes `text` as it is (escaped), then flushes.
    pub(super) fn finish(mut self, text: &str) -> io::Result<()> {
        let written = self
            .out
            .write_all(printable(text).as_bytes())
            .and_then(|()| self.out.flush());
        quiet_broken_pipe(written).map(|_| ())
    }
}

/// A serde enum's wire name (`field_too_long`), for a table.
pub(super) fn wire_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Milliseconds since the epoch as an RFC 3339 UTC time.
pub(super) fn rfc3339(ms: Option<i64>) -> Option<String> {
    ms.and_then(DateTime::<Utc>::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// [`rfc3339`], or `-` for no time.
pub(super) fn time_or_dash(ms: Option<i64>) -> String {
    rfc3339(ms).unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(printable("plain\nlines"), "plain\nlines");
        assert_eq!(
            printable("evil\u{1b}[2J\rname\tx\u{9b}31m"),
            "evil\\u{1b}[2J\\u{d}name\\u{9}x\\u{9b}31m"
        );
        assert!(matches!(printable("ok"), Cow::Borrowed(_)));
    }

    #[test]
    fn columns_line_up() {
        let t = table(&["A", "LONGER"], &[vec!["xxxx".into(), "y".into()]]);
        assert_eq!(t, "A     LONGER\nxxxx  y\n");
    }

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(time_or_dash(Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(time_or_dash(None), "-");
    }
}
