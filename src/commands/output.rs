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
