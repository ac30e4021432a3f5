//! The systemd notify protocol (`sd_notify(3)`), a no-op unless systemd set `NOTIFY_SOCKET`.
//! A failed notification is logged and otherwise ignored: the daemon's work does not depend
//! on it, and systemd reports a missing READY=1 by itself.
//!
//! Messages are sent on a non-blocking socket: `sd_notify::notify` blocks when the
//! receiver's queue is full (ten datagrams by default), and a notification must never stall
//! the runtime thread that sends it.

use std::io::{self, Write as _};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let mut message = Vec::new();
    for state in states {
        let _ = writeln!(message, "{state}");
    }
    if let Err(err) = send_to(&path, &message) {
        tracing::warn!(error = %err, "could not notify systemd");
    }
}

fn send_to(path: &std::ffi::OsStr, message: &[u8]) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path);
    match bytes.strip_prefix(b"@") {
        // An abstract socket (Linux): "@name" stands for a leading NUL byte.
        #[cfg(target_os = "linux")]
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(message, &address)?;
        }
        _ => {
            socket.send_to(message, path)?;
        }
    }
    Ok(())
}

/// Migrations ran, the configuration is valid, the endpoints listen.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload starts; systemd wants the monotonic time with it (`Type=notify-reload`).
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    send(&states);
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// How often to send WATCHDOG=1: half of `WATCHDOG_USEC`, when systemd asked for it.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}
