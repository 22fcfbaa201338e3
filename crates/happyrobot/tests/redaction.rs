//! The API key and the note's text stay out of logs, errors and `Debug` output.
//!
//! It has a test binary of its own: `tracing` caches per call site whether anyone listens, so a
//! subscriber set for one test thread can miss events while other tests run in the same process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

mod support;

use std::time::Duration;

use happyrobot::{CallId, Client, NewNote, RetryPolicy};
use support::{CALL_ID, KEY, Recorded, Reply, TestServer, call_json};

#[tokio::test]
async fn neither_logs_nor_errors_show_the_key_or_the_note_text() {
    let (captured, _guard) = support::capture_logs();

    let server = TestServer::start(|i, r: &Recorded| {
        assert!(r.header("authorization").is_some());
        match i {
            0 => Reply::json(429, "{}").with_header("retry-after", "0"),
            1 => Reply::json(500, r#"{"message":"internal"}"#),
            _ => Reply::json(200, &call_json()),
        }
    })
    .await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&server.base_url)
        .retry(RetryPolicy::default().base_delay(Duration::from_millis(5)))
        .build()
        .unwrap();
    let note = NewNote::new("TOP-SECRET-NOTE-TEXT");
    let err = client
        .add_note(&CALL_ID.parse::<CallId>().unwrap(), note.clone())
        .await
        .unwrap_err();
    client
        .add_note(&CALL_ID.parse::<CallId>().unwrap(), note.clone())
        .await
        .unwrap();

    let logs = captured.text();
    assert!(logs.contains("retrying"), "the retry is visible: {logs}");
    assert!(logs.contains("attempt=2"), "{logs}");
    assert!(logs.contains("content_len=20"), "{logs}");
    for shown in [
        logs,
        format!("{err} {err:?}"),
        format!("{client:?}"),
        format!("{note:?}"),
    ] {
        assert!(!shown.contains(KEY), "{shown}");
        assert!(!shown.contains("SECRET_KEY"), "{shown}");
        assert!(!shown.contains("TOP-SECRET-NOTE-TEXT"), "{shown}");
    }
}
