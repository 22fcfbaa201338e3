//! The quickstart example as a user runs it: without a key against the embedded mock server, and with
//! `HAPPYROBOT_API_KEY`/`HAPPYROBOT_BASE_URL` (so through `Client::from_env`) against a server of ours.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

use std::path::PathBuf;
use std::process::{Command, Output};

use happyrobot_mock::MockServer;

/// `cargo test` builds the examples next to the test binaries: `target/<profile>/examples/`.
fn quickstart() -> Command {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let exe: PathBuf = deps.parent().unwrap().join("examples").join("quickstart");
    assert!(
        exe.exists(),
        "{} is missing: run `cargo test` to build the examples",
        exe.display()
    );
    let mut command = Command::new(exe);
    for var in [
        "HAPPYROBOT_API_KEY",
        "HAPPYROBOT_BASE_URL",
        "HAPPYROBOT_CALL_ID",
    ] {
        command.env_remove(var);
    }
    command
}

async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_key_it_uses_the_embedded_mock() {
    let output = run(quickstart()).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("HAPPYROBOT_API_KEY is not set"), "{stderr}");
    assert!(
        stdout.contains("newest note") && stdout.contains("Driver confirmed pickup"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_key_it_uses_the_environment() {
    let mock = MockServer::start().await.unwrap();
    let id = mock.call_ids()[1].clone();
    let mut command = quickstart();
    command
        .env("HAPPYROBOT_API_KEY", mock.api_key())
        .env("HAPPYROBOT_BASE_URL", mock.base_url())
        .env("HAPPYROBOT_CALL_ID", &id);
    let output = run(command).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created = mock.created_notes(&id);
    assert_eq!(created.len(), 1);
    assert_eq!(
        created[0].content.as_deref(),
        Some("Driver confirmed pickup")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_key_fails_clearly_without_showing_it() {
    let mock = MockServer::start().await.unwrap();
    let mut command = quickstart();
    command
        .env("HAPPYROBOT_API_KEY", "hr_wrong_SECRET")
        .env("HAPPYROBOT_BASE_URL", mock.base_url())
        .env("HAPPYROBOT_CALL_ID", &mock.call_ids()[0]);
    let output = run(command).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("401") && stderr.contains("HAPPYROBOT_API_KEY"),
        "{stderr}"
    );
    assert!(!stderr.contains("SECRET"), "{stderr}");
    assert_eq!(mock.created_note_count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_without_a_call_id_says_what_to_set() {
    let mut command = quickstart();
    command.env("HAPPYROBOT_API_KEY", "hr_live_x");
    let output = run(command).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("HAPPYROBOT_CALL_ID"), "{stderr}");
}
