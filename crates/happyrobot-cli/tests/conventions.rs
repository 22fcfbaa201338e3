//! Command-line conventions: shell completions, the API key from a file or stdin instead of the
//! command line, `HAPPYROBOT_API_KEY` through clap, `RUST_LOG`, and errors as JSON with
//! `--output json`. Every run is against a real mock server on 127.0.0.1.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location, helpers included"
)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use happyrobot_mock::{DEFAULT_API_KEY, FIRST_CALL_ID, MockServer};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};

const SECRET: &str = "hr_live_FILE_SECRET_7e3a";

async fn mock_with_secret() -> MockServer {
    MockServer::builder().api_key(SECRET).start().await.unwrap()
}

fn assert_no_secret(run: &common::Run) {
    assert!(
        !run.stdout.contains(SECRET),
        "key on stdout: {}",
        run.stdout
    );
    assert!(
        !run.stderr.contains(SECRET),
        "key on stderr: {}",
        run.stderr
    );
}

#[tokio::test]
async fn completions_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef happyrobot"),
        ("fish", "complete -c happyrobot"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let run = common::run(&["completions", shell]).await;
        assert_eq!(run.code, 0, "{shell}: {}", run.stderr);
        assert!(run.stderr.is_empty(), "{shell}: {}", run.stderr);
        assert!(run.stdout.contains(marker), "{shell}: no {marker:?}");
        // The script knows the subcommands and the options, global ones included.
        for word in ["notes", "import", "api-key-file", "output"] {
            assert!(run.stdout.contains(word), "{shell}: no {word}");
        }
    }
    let run = common::run(&["completions", "tcsh"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("powershell"), "{}", run.stderr);
}

/// The lines `happyrobot mock` prints on start (up to its first call ID), with `env` set.
async fn mock_start_lines(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = common::command(args);
    command.envs(env.iter().copied());
    let mut mock = command.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(mock.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let last = line.starts_with("call_id=");
            printed.push(line);
            if last {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .unwrap_or_else(|_| panic!("the mock printed no call ID: {printed:?}"));
    mock.kill().await.unwrap();
    printed.join("\n")
}

/// The real key in the environment, as a user's shell has it, is not the key a mock started with
/// `happyrobot mock` accepts and prints (clap hands the global `--api-key`'s value down to the
/// mock's option of the same name); one given to the mock on the command line is.
#[tokio::test]
async fn the_mock_never_takes_or_prints_the_key_in_the_environment() {
    let args = ["mock", "--port", "0", "--seed-calls", "1"];
    let printed = mock_start_lines(&args, &[("HAPPYROBOT_API_KEY", SECRET)]).await;
    assert!(!printed.contains(SECRET), "{printed}");
    assert!(
        printed.contains(&format!("api_key={DEFAULT_API_KEY}\n")),
        "{printed}"
    );
    let own = [&args[..], &["--api-key", "k1"]].concat();
    let printed = mock_start_lines(&own, &[("HAPPYROBOT_API_KEY", SECRET)]).await;
    assert!(printed.contains("api_key=k1\n"), "{printed}");
}

#[tokio::test]
async fn completions_help() {
    let run = common::run(&["completions", "--help"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!("completions_help", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_from_a_file_is_used_and_never_shown() {
    let server = mock_with_secret().await;
    let dir = common::temp_dir("key-file");
    let file = dir.join("key");
    // With the newline `echo` leaves, which is not part of the key.
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let base_url = server.base_url();
    let run = common::run(&[
        "--base-url",
        &base_url,
        "--api-key-file",
        file.to_str().unwrap(),
        "-vv",
        "notes",
        "add",
        FIRST_CALL_ID,
        "--content",
        "key from a file",
        "--output",
        "json",
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.created_note_count(), 1);
    assert_no_secret(&run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_from_stdin_is_used_and_never_shown() {
    let server = mock_with_secret().await;
    let base_url = server.base_url();
    let mut command = common::command(&[
        "--base-url",
        &base_url,
        "--api-key-file",
        "-",
        "notes",
        "add",
        FIRST_CALL_ID,
        "--content",
        "key from stdin",
    ]);
    command.stdin(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(SECRET.as_bytes()).await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(common::RUN_LIMIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let run = common::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.created_note_count(), 1);
    assert_no_secret(&run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_beats_the_environment_and_a_wrong_one_is_refused() {
    let server = mock_with_secret().await;
    let dir = common::temp_dir("key-file-env");
    let good = dir.join("good");
    std::fs::write(&good, SECRET).unwrap();
    let wrong = dir.join("wrong");
    std::fs::write(&wrong, "hr_live_WRONG_KEY").unwrap();
    let empty = dir.join("empty");
    std::fs::write(&empty, " \n").unwrap();
    let add = |file: &std::path::Path| {
        let mut command = common::command(&[
            "--api-key-file",
            file.to_str().unwrap(),
            "notes",
            "add",
            FIRST_CALL_ID,
            "--content",
            "x",
        ]);
        command
            .env("HAPPYROBOT_API_KEY", "hr_live_ENV_KEY")
            .env("HAPPYROBOT_BASE_URL", server.base_url());
        command
    };

    let run = common::run_command(add(&good)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.created_note_count(), 1);

    let run = common::run_command(add(&wrong)).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(!run.stderr.contains("hr_live_WRONG_KEY"), "{}", run.stderr);

    let run = common::run_command(add(&empty)).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("is empty"), "{}", run.stderr);

    let run = common::run_command(add(&dir.join("missing"))).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("could not read the API key file"),
        "{}",
        run.stderr
    );
    assert_eq!(
        server.created_note_count(),
        1,
        "only the good key added a note"
    );
}

#[tokio::test]
async fn the_key_is_given_once() {
    let run = common::run(&[
        "--api-key",
        "k1",
        "--api-key-file",
        "-",
        "--mock",
        "notes",
        "add",
        FIRST_CALL_ID,
        "--content",
        "x",
    ])
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("give the key once"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_base_url_variable_does_not_conflict_with_mock_but_the_flag_does() {
    let mut command = common::command(&["--mock", "notes", "add", FIRST_CALL_ID, "--content", "x"]);
    command.env("HAPPYROBOT_BASE_URL", "https://example.invalid/api/v1");
    let run = common::run_command(command).await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    let run = common::run(&[
        "--mock",
        "--base-url",
        "http://127.0.0.1:9/api/v1",
        "notes",
        "add",
        FIRST_CALL_ID,
        "--content",
        "x",
    ])
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--mock runs its own server"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_turns_on_logging_without_v_and_the_key_stays_out() {
    let server = mock_with_secret().await;
    let mut command = common::command(&["notes", "add", FIRST_CALL_ID, "--content", "logged"]);
    command
        .env("HAPPYROBOT_API_KEY", SECRET)
        .env("HAPPYROBOT_BASE_URL", server.base_url())
        .env("RUST_LOG", "trace");
    let run = common::run_command(command).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("request succeeded"),
        "no log line: {}",
        run.stderr
    );
    assert_no_secret(&run);

    // Without RUST_LOG and -v, nothing is logged.
    let mut command = common::command(&["notes", "add", FIRST_CALL_ID, "--content", "quiet"]);
    command
        .env("HAPPYROBOT_API_KEY", SECRET)
        .env("HAPPYROBOT_BASE_URL", server.base_url());
    let run = common::run_command(command).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("note added"), "{}", run.stderr);
}

/// The one JSON object an error prints on stderr with `--output json`: its last line (an import
/// prints its progress there first), or all of it for `notes add`.
fn json_error(run: &common::Run) -> serde_json::Value {
    let last = run.stderr.lines().last().unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("the last line of stderr is not JSON ({e}): {}", run.stderr));
    let error = &value["error"];
    assert_eq!(error["exit_code"], run.code, "{value}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{value}"
    );
    assert!(error["detail"].is_array(), "{value}");
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_output_json() {
    let server = mock_with_secret().await;
    let base_url = server.base_url();

    // An API error: the mock's request ID is in the object.
    let run = common::run(&[
        "--base-url",
        &base_url,
        "--api-key",
        SECRET,
        "notes",
        "add",
        "0123456789abcdef01234567",
        "--content",
        "x",
        "--output",
        "json",
    ])
    .await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    let value = json_error(&run);
    assert_eq!(value["error"]["kind"], "not_found", "{value}");
    let request_id = value["error"]["request_id"].as_str().unwrap();
    assert!(!request_id.is_empty());
    assert_no_secret(&run);

    // A usage error found before anything is sent: no request ID.
    let run = common::run(&[
        "--base-url",
        &base_url,
        "--api-key",
        SECRET,
        "notes",
        "add",
        "not-an-id",
        "--content",
        "x",
        "--output",
        "json",
    ])
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let value = json_error(&run);
    assert_eq!(value["error"]["kind"], "usage", "{value}");
    assert_eq!(value["error"]["request_id"], serde_json::Value::Null);

    // An import that cannot start (its own failures are in the summary JSON on stdout).
    let dir = common::temp_dir("json-error-import");
    let missing = dir.join("missing.csv");
    let run = common::run(&[
        "--base-url",
        &base_url,
        "--api-key",
        SECRET,
        "notes",
        "import",
        missing.to_str().unwrap(),
        "--output",
        "json",
    ])
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let value = json_error(&run);
    assert_eq!(value["error"]["kind"], "usage", "{value}");
    assert!(
        value["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing.csv"),
        "{value}"
    );

    // Text output keeps the `error: ...` line.
    let run = common::run(&[
        "--base-url",
        &base_url,
        "--api-key",
        SECRET,
        "notes",
        "add",
        "0123456789abcdef01234567",
        "--content",
        "x",
    ])
    .await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
}

#[test]
fn max_retries_defaults_to_the_library_default() {
    assert_eq!(happyrobot::RetryPolicy::default().retries(), 2);
}
