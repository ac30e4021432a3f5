//! Running the real `hss-scand` binary the way an operator does, in an environment the test
//! controls completely.

use std::path::Path;
use std::process::Command;

/// What a run of `hss-scand` did.
#[derive(Debug)]
pub struct Outcome {
    /// `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The lines written to stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().collect()
    }
}

/// Runs `hss-scand ARGS` with exactly `env` as its environment: nothing is inherited, so an
/// `HSS_SCAND__*`, `HUAWEICLOUD_SDK_*` or `RUST_LOG` on the test machine cannot change what
/// the test sees.
pub fn run_hss_scand(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let output = Command::new(env!("CARGO_BIN_EXE_hss-scand"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("the hss-scand binary runs");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `hss-scand --config PATH config check`.
pub fn config_check(path: &Path, env: &[(&str, &str)]) -> Outcome {
    let path = path.to_str().expect("temporary paths are UTF-8");
    run_hss_scand(&["--config", path, "config", "check"], env)
}

/// A configuration file with `text`, deleted when dropped.
pub fn config_file(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new()
        .prefix("hss-scand-")
        .suffix(".toml")
        .tempfile()
        .expect("a temporary file can be created");
    std::fs::write(file.path(), text).expect("the temporary file can be written");
    file
}

/// A file under `config/` (the shipped default and examples).
pub fn shipped_config(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
}
