//! `calls get`, `notes update`, `notes delete`, and `notes add` finding out what became of a note
//! whose add had an unknown outcome, against the mock server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

mod common;

use common::run_against;
use happyrobot_mock::{Fault, MockServer};

fn note_ids_with(server: &MockServer, call_id: &str, content: &str) -> Vec<String> {
    server
        .notes(call_id)
        .into_iter()
        .filter(|n| n.content.as_deref() == Some(content))
        .filter_map(|n| n.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_three_update_one_delete_one_and_read_the_call() {
    let server = MockServer::start().await.unwrap();
    let call = server.call_ids()[0].clone();
    for text in ["first", "second", "third"] {
        let run = run_against(&server, &["notes", "add", &call, "--content", text]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let first = note_ids_with(&server, &call, "first").pop().unwrap();
    let second = note_ids_with(&server, &call, "second").pop().unwrap();

    let run = run_against(
        &server,
        &[
            "notes",
            "update",
            &call,
            &first,
            "--content",
            "first, fixed",
            "--flagged",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.starts_with(&format!("Updated note {first}")),
        "{}",
        run.stdout
    );

    let run = run_against(&server, &["notes", "delete", &call, &second]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    let run = run_against(&server, &["calls", "get", &call]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains(&format!("note {first} (flagged)"))
            && run.stdout.contains("| first, fixed")
            && run.stdout.contains("| third")
            && !run.stdout.contains(&second),
        "{}",
        run.stdout
    );

    let run = run_against(&server, &["calls", "get", &call, "--output", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["id"], call.as_str());

    // Deleting it again: the note is gone, which is exit 4 (not found), with a message that says so.
    let run = run_against(&server, &["notes", "delete", &call, &second]).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("deleted already"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_exits_2_and_sends_nothing() {
    let server = MockServer::start().await.unwrap();
    let call = server.call_ids()[0].clone();
    for args in [
        vec![
            "notes",
            "update",
            &call,
            "65f1d0c0de00000000000000",
            "--content",
            "  ",
        ],
        vec!["notes", "update", &call, "65f1d0c0de00000000000000"],
        vec!["notes", "update", &call, "../x", "--flagged"],
        vec!["notes", "delete", &call, "a/b"],
        vec!["notes", "delete", "short", "65f1d0c0de00000000000000"],
        vec!["calls", "get", "short"],
    ] {
        let run = run_against(&server, &args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    }
    assert!(server.requests().is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_add_is_reconciled_instead_of_exit_7() {
    let server = MockServer::start().await.unwrap();
    let call = server.call_ids()[0].clone();

    // Saved, answer lost: found on the call, exit 0, added once.
    server.inject(Fault::SaveThenDrop, 1);
    let run = run_against(&server, &["notes", "add", &call, "--content", "saved"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("it was added"), "{}", run.stderr);
    assert_eq!(note_ids_with(&server, &call, "saved").len(), 1);

    // Dropped before saving: absent, sent again once, exit 0, added once.
    server.inject(Fault::CloseBeforeResponse, 1);
    let run = run_against(&server, &["notes", "add", &call, "--content", "dropped"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("sending it again, once"),
        "{}",
        run.stderr
    );
    assert_eq!(note_ids_with(&server, &call, "dropped").len(), 1);

    // Turned off: exit 7 and nothing more is sent.
    server.inject(Fault::CloseBeforeResponse, 1);
    let before = server.requests().len();
    let run = run_against(
        &server,
        &["notes", "add", &call, "--content", "off", "--no-reconcile"],
    )
    .await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert_eq!(server.requests().len(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_client_ids_leaves_exit_7_and_no_resend() {
    let server = MockServer::builder()
        .ignore_client_note_ids(true)
        .start()
        .await
        .unwrap();
    let call = server.call_ids()[0].clone();
    server.inject(Fault::SaveThenDrop, 1);
    let run = run_against(&server, &["notes", "add", &call, "--content", "ambiguous"]).await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(run.stderr.contains("did not settle it"), "{}", run.stderr);
    assert_eq!(
        note_ids_with(&server, &call, "ambiguous").len(),
        1,
        "never sent twice"
    );
}
