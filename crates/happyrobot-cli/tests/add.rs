//! `happyrobot notes add` end to end, against the mock server in this process: both outputs, and
//! every exit code of the documented table.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location, helpers included"
)]

mod common;

use std::time::Duration;

use happyrobot_mock::{FIRST_CALL_ID, Fault, MockServer};

/// Replaces what changes from run to run (the note's id and time) by fixed markers.
fn redact_note(text: &str, server: &MockServer) -> String {
    let notes = server.created_notes(FIRST_CALL_ID);
    let note = notes.last().expect("a note was created");
    text.replace(note.id.as_deref().unwrap(), "[NOTE_ID]")
        .replace(
            &note.created_at.as_ref().unwrap().to_string(),
            "[CREATED_AT]",
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_a_note_and_prints_text() {
    let server = MockServer::start().await.unwrap();
    let run = common::run_against(
        &server,
        &[
            "notes",
            "add",
            FIRST_CALL_ID,
            "--content",
            "Driver confirmed pickup at 14:00.",
            "--flagged",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "");
    let notes = server.created_notes(FIRST_CALL_ID);
    assert_eq!(notes.len(), 1);
    assert_eq!(
        notes[0].content.as_deref(),
        Some("Driver confirmed pickup at 14:00.")
    );
    assert_eq!(notes[0].flagged, Some(true));
    insta::assert_snapshot!("add_text", redact_note(&run.stdout, &server));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adds_a_note_and_prints_the_call_as_json() {
    let server = MockServer::start().await.unwrap();
    let run = common::run_against(
        &server,
        &[
            "notes",
            "add",
            FIRST_CALL_ID,
            "-c",
            "hello",
            "--output",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let call: serde_json::Value = serde_json::from_str(&run.stdout).expect("stdout is JSON");
    assert_eq!(call["id"], FIRST_CALL_ID);
    let last = call["notes"].as_array().unwrap().last().unwrap();
    assert_eq!(last["content"], "hello");
    assert_eq!(last["flagged"], false);
    // The whole call, exactly as the API returned it: the mock's own record of it.
    let expected = serde_json::to_value(server.call(FIRST_CALL_ID).unwrap()).unwrap();
    assert_eq!(call, expected);
    assert!(
        run.stdout.ends_with("}\n"),
        "pretty JSON with a final newline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_flag_works_without_a_key() {
    let run = common::run(&["--mock", "notes", "add", FIRST_CALL_ID, "--content", "hi"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("Added note "), "{}", run.stdout);
    assert!(
        run.stderr.contains("built-in mock server"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_base_url_without_a_key_uses_the_mock_key() {
    let server = MockServer::start().await.unwrap();
    let base_url = server.base_url();
    let run = common::run(&[
        "--base-url",
        &base_url,
        "notes",
        "add",
        FIRST_CALL_ID,
        "--content",
        "hi",
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.created_note_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_environment_supplies_key_and_url() {
    let server = MockServer::builder()
        .api_key("env_key_123")
        .start()
        .await
        .unwrap();
    let mut command = common::command(&["notes", "add", FIRST_CALL_ID, "--content", "from env"]);
    command
        .env("HAPPYROBOT_API_KEY", "env_key_123")
        .env("HAPPYROBOT_BASE_URL", server.base_url());
    let run = common::run_command(command).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.created_note_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_2_for_invalid_input_and_nothing_is_sent() {
    let server = MockServer::start().await.unwrap();
    let run =
        common::run_against(&server, &["notes", "add", "../../admin", "--content", "x"]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("error: invalid call id: \"../../admin\""),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    let run =
        common::run_against(&server, &["notes", "add", FIRST_CALL_ID, "--content", "  "]).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.starts_with("error: invalid note content"),
        "{}",
        run.stderr
    );
    assert!(server.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_3_for_a_missing_or_rejected_key_which_is_never_printed() {
    let run = common::run(&["notes", "add", FIRST_CALL_ID, "--content", "x"]).await;
    assert_eq!(run.code, 3);
    assert!(run.stderr.contains("HAPPYROBOT_API_KEY"), "{}", run.stderr);
    assert!(run.stderr.contains("--mock"), "{}", run.stderr);

    let server = MockServer::start().await.unwrap();
    let secret = "hr_live_TOPSECRET";
    let base_url = server.base_url();
    for verbose in [&[][..], &["-vv"]] {
        let mut args = vec!["--base-url", base_url.as_str(), "--api-key", secret];
        args.extend_from_slice(verbose);
        args.extend_from_slice(&["notes", "add", FIRST_CALL_ID, "--content", "x"]);
        let run = common::run(&args).await;
        assert_eq!(run.code, 3, "{}", run.stderr);
        assert!(run.stderr.contains("401"), "{}", run.stderr);
        assert!(
            !run.stderr.contains("TOPSECRET"),
            "the key leaked: {}",
            run.stderr
        );
        assert!(
            !run.stdout.contains("TOPSECRET"),
            "the key leaked: {}",
            run.stdout
        );
    }
    assert_eq!(server.created_note_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_4_for_an_unknown_call() {
    let server = MockServer::start().await.unwrap();
    let run = common::run_against(
        &server,
        &["notes", "add", "0123456789abcdef01234567", "--content", "x"],
    )
    .await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    insta::assert_snapshot!("add_not_found", common::redact_request_ids(&run.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_5_for_other_api_errors() {
    let server = MockServer::start().await.unwrap();
    for status in [400, 422, 501] {
        server.inject(Fault::Status(status), 1);
        let run =
            common::run_against(&server, &["notes", "add", FIRST_CALL_ID, "--content", "x"]).await;
        assert_eq!(run.code, 5, "{status}: {}", run.stderr);
        assert!(run.stderr.contains(&status.to_string()), "{}", run.stderr);
    }
    assert_eq!(server.created_note_count(), 0);
    assert_eq!(server.requests().len(), 3, "none of them is retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_6_when_the_api_cannot_be_reached() {
    // A port that was just free: nothing listens there, so connecting is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let base_url = format!("http://127.0.0.1:{port}/api/v1");
    let run = common::run(&[
        "--base-url",
        &base_url,
        "--api-key",
        "k",
        "--max-retries",
        "1",
        "notes",
        "add",
        FIRST_CALL_ID,
        "-c",
        "x",
    ])
    .await;
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert!(
        run.stderr.starts_with("error: could not connect"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Nothing was sent"), "{}", run.stderr);
}

/// Without reconciliation (tested in its own tests), an unknown outcome is exit 7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_7_when_the_outcome_is_unknown() {
    let server = MockServer::start().await.unwrap();
    server.inject(Fault::Status(500), 1);
    let run = common::run_against(
        &server,
        &[
            "notes",
            "add",
            FIRST_CALL_ID,
            "--content",
            "a",
            "--no-reconcile",
        ],
    )
    .await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(run.stderr.contains("may have been added"), "{}", run.stderr);

    // Saved, then the connection dropped: the note exists; without reconciliation the CLI cannot
    // know, and it does not send it again (which would add it twice). (With it, tests/notes.rs.)
    server.inject(Fault::SaveThenDrop, 1);
    let run = common::run_against(
        &server,
        &[
            "notes",
            "add",
            FIRST_CALL_ID,
            "--content",
            "b",
            "--no-reconcile",
        ],
    )
    .await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert_eq!(
        common::counts_by_content(&server, FIRST_CALL_ID).get("b"),
        Some(&1)
    );

    // A timeout after sending.
    server.inject(Fault::Delay(Duration::from_secs(3)), 1);
    let run = common::run_against(
        &server,
        &[
            "--timeout",
            "0.3",
            "notes",
            "add",
            FIRST_CALL_ID,
            "--content",
            "c",
            "--no-reconcile",
        ],
    )
    .await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(run.stderr.contains("timed out"), "{}", run.stderr);
    assert_eq!(
        server.requests().len(),
        3,
        "unknown outcomes are never retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_retried_for_a_single_add() {
    let server = MockServer::start().await.unwrap();
    server.inject(
        Fault::RateLimited {
            retry_after_secs: 0,
        },
        2,
    );
    let run =
        common::run_against(&server, &["notes", "add", FIRST_CALL_ID, "--content", "x"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.requests().len(), 3);
    assert_eq!(server.created_note_count(), 1);
}
