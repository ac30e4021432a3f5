//! Processes the plain helpers do not cover: `hss-scand` fed on standard input, and the
//! `hss-sim` binary with everything it logs captured.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use super::cli::Outcome;

/// [`super::cli::run_hss_scand`] with `stdin` written to the process's standard input.
pub fn run_hss_scand_with_stdin(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hss-scand"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the hss-scand binary runs");
    let mut input = child.stdin.take().expect("a stdin pipe");
    // A process that exits without reading closes the pipe; that is its answer, not an error.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let output = child.wait_with_output().expect("hss-scand finishes");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A running `hss-sim` binary on a free loopback port, its logs going to a file (a pipe
/// nobody reads would fill up and stall it). Killed when dropped.
pub struct SimProcess {
    child: Child,
    pub base_url: String,
    log: tempfile::NamedTempFile,
}

impl SimProcess {
    /// Starts `hss-sim --listen 127.0.0.1:0 ARGS` with exactly `env` as its environment.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> SimProcess {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hss-sim"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log.reopen().expect("the log file reopens"))
            .spawn()
            .expect("the hss-sim binary runs");
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().expect("a stdout pipe"))
            .read_line(&mut first_line)
            .expect("hss-sim prints its address");
        SimProcess {
            child,
            base_url: first_line.trim().to_owned(),
            log,
        }
    }

    /// Stops the simulator and returns everything it logged.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::read_to_string(self.log.path()).expect("the log file is readable")
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
