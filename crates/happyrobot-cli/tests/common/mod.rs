//! Helpers shared by the end-to-end tests: running the built binary with a time limit, temporary
//! directories, and redactions that make outputs deterministic for snapshots.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

/// The longest any single run of the binary may take in a test.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// What a finished run of the binary left.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The binary with a clean environment: no key or URL from the developer's shell leaks in.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_happyrobot"));
    command
        .args(args)
        .env_remove("HAPPYROBOT_API_KEY")
        .env_remove("HAPPYROBOT_BASE_URL")
        .env_remove("RUST_LOG")
        // The index of journals by content and the content locks: one directory per test
        // process, never the developer's own.
        .env("HAPPYROBOT_STATE_DIR", state_dir())
        // The keys `auth login` stores: none, unless a test stores some in a directory of its own;
        // never the developer's.
        .env("XDG_CONFIG_HOME", config_home())
        .env("COLUMNS", "100")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// The state directory the binary uses in these tests: one a test process, made by the mock's
/// `testkit::temp_dir` (which a later test run sweeps away once this one has ended).
pub fn state_dir() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| happyrobot_mock::testkit::temp_dir("cli-state").unwrap())
        .clone()
}

/// The configuration home (`XDG_CONFIG_HOME`) the binary uses in these tests, unless a test gives
/// its own: it holds no stored key. One a test process, as [`state_dir`].
pub fn config_home() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| happyrobot_mock::testkit::temp_dir("cli-config").unwrap())
        .clone()
}

/// Runs the binary to the end, within [`RUN_LIMIT`].
pub async fn run(args: &[&str]) -> Run {
    run_command(command(args)).await
}

pub async fn run_command(mut command: Command) -> Run {
    let child = command.spawn().expect("the binary starts");
    let output = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .expect("the binary finishes within the limit")
        .expect("the binary's output is readable");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The options that point the binary at a mock.
pub fn mock_args(server: &happyrobot_mock::MockServer) -> Vec<String> {
    vec![
        "--base-url".into(),
        server.base_url(),
        "--api-key".into(),
        server.api_key().to_string(),
    ]
}

/// The binary pointed at a mock: the mock's options first, then `args` (to spawn, for a test that
/// interrupts or kills the run).
pub fn command_against(server: &happyrobot_mock::MockServer, args: &[&str]) -> Command {
    let mut all = mock_args(server);
    all.extend(args.iter().map(|a| (*a).to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    command(&all)
}

/// Runs the binary against a mock: the mock's options first, then `args`.
pub async fn run_against(server: &happyrobot_mock::MockServer, args: &[&str]) -> Run {
    run_command(command_against(server, args)).await
}

/// Runs the binary against a mock as a run that starts once the pace other runs share (and a
/// hold of the server's, in it) is stale: in a state directory of its own.
pub async fn run_later_against(server: &happyrobot_mock::MockServer, args: &[&str]) -> Run {
    let mut command = command_against(server, args);
    command.env("HAPPYROBOT_STATE_DIR", temp_dir("later-state"));
    run_command(command).await
}

/// A new empty directory for one test (the shared test kit's).
pub fn temp_dir(name: &str) -> PathBuf {
    happyrobot_mock::testkit::temp_dir(name).unwrap()
}

/// Replaces every `request ID req_...` by a fixed text: the mock numbers requests per process.
pub fn redact_request_ids(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(index) = rest.find("req_") {
        out.push_str(&rest[..index]);
        let end = rest[index..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(rest.len(), |e| index + e);
        out.push_str("[REQUEST_ID]");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// Drops the periodic `progress:` lines, whose number depends on timing.
pub fn without_progress(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("progress: "))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Replaces a directory's path in a text.
pub fn redact_dir(text: &str, dir: &Path) -> String {
    text.replace(&dir.display().to_string(), "[DIR]")
}

/// How many notes with each text the mock created on a call.
pub fn counts_by_content(
    server: &happyrobot_mock::MockServer,
    call_id: &str,
) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    for note in server.created_notes(call_id) {
        *counts.entry(note.content.unwrap_or_default()).or_insert(0) += 1;
    }
    counts
}

/// Whether util-linux's `script` is there to give the command a terminal; when it is not, says
/// that the test is skipped.
pub fn have_terminal() -> bool {
    let there = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok();
    if !there {
        eprintln!("skipped: no `script` to give the command a terminal");
    }
    there
}

/// Runs the shell `line` on a pseudo-terminal (`script`), with this test run's state and
/// configuration directories; its exit code and everything the terminal showed.
pub async fn run_on_terminal(line: &str) -> (Option<i32>, String) {
    let mut command = Command::new("script");
    command
        .args(["-qec", line, "/dev/null"])
        .env("HAPPYROBOT_STATE_DIR", state_dir())
        .env("XDG_CONFIG_HOME", config_home())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .expect("the command on a terminal did not finish in time")
        .expect("`script` could not be run");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The JSON a run printed on standard output (its `--output json` summary).
pub fn summary_of(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\n{}", run.stdout, run.stderr))
}
