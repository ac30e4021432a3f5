//! Printing a command's result to stdout.

use std::io::{self, Write};

/// Writes to stdout; a closed pipe (`hss-scand status | head`) is not a failure.
pub(super) fn print(text: &str) -> io::Result<()> {
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
