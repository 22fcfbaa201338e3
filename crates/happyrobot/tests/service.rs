//! What a service built on the library does, against the mock: list calls under a control of its
//! own (stop token, observer, deadline on every page), for one day, without chrono or futures in
//! its own dependencies; act on a listed call by its typed ID; and read how many attempts a
//! failure took.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

mod support;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use happyrobot::types::CallStatus;
use happyrobot::{
    Attempt, AttemptObserver, CallExt as _, CallFilter, CancellationToken, Control, ErrorKind,
    NewNote, NoteExt as _, Operation, OwnedControl,
};
use happyrobot_mock::{Fault, MockServer};

use support::mock_client as client;

/// Counts the attempts of listing pages, and stops after `stop_after` of them.
struct Pages {
    attempts: AtomicU32,
    stop_after: u32,
}

impl AttemptObserver for Pages {
    fn before_attempt(&self, attempt: &Attempt) -> ControlFlow<()> {
        assert_eq!(attempt.operation, Operation::ListCalls);
        if self.attempts.fetch_add(1, Ordering::SeqCst) >= self.stop_after {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

#[tokio::test]
async fn one_day_listed_with_typed_ids_then_noted_and_deleted() {
    let server = MockServer::builder().seed_calls(30).start().await.unwrap();
    let client = client(&server);
    // Two failed calls on 2024-03-20 (after every seeded one), one just outside the day.
    let a = server.add_call_with(
        CallStatus::Failed,
        "2024-03-20T00:00:00Z"
            .parse::<happyrobot::types::Timestamp>()
            .unwrap(),
    );
    let b = server.add_call_with(
        CallStatus::Failed,
        "2024-03-20T23:59:59.999Z"
            .parse::<happyrobot::types::Timestamp>()
            .unwrap(),
    );
    let _c = server.add_call_with(
        CallStatus::Failed,
        "2024-03-21T00:00:00Z"
            .parse::<happyrobot::types::Timestamp>()
            .unwrap(),
    );
    let _d = server.add_call_with(
        CallStatus::Completed,
        "2024-03-20T12:00:00Z"
            .parse::<happyrobot::types::Timestamp>()
            .unwrap(),
    );

    let day = CallFilter::parse_day("2024-03-20").unwrap();
    let mut calls = client.list_calls(
        CallFilter::new()
            .day(day)
            .status(CallStatus::Failed)
            .page_size(1),
    );
    let found = calls.collect_calls(usize::MAX).await.unwrap();
    let ids: Vec<String> = found
        .iter()
        .map(|c| c.call_id().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        [b.clone(), a.clone()],
        "newest first, the whole day, nothing else"
    );
    assert_eq!(calls.pages(), 2);

    // Act on a listed call through its typed IDs: no parse at the caller.
    let call_id = found[0].call_id().unwrap();
    let added = client
        .add_note_settled(&call_id, NewNote::new("Called back"), &Control::new())
        .await
        .unwrap();
    let note_id = added.note.as_ref().unwrap().note_id().unwrap();
    let after = client.delete_note(&call_id, &note_id).await.unwrap();
    assert_eq!(
        after.call_id().unwrap(),
        call_id,
        "through Response's Deref"
    );
    assert!(server.deleted_notes(&b).len() == 1);
}

#[tokio::test]
async fn collect_calls_takes_at_most_its_limit_and_goes_on_where_it_stopped() {
    let server = MockServer::builder().seed_calls(7).start().await.unwrap();
    let client = client(&server);
    let mut calls = client.list_calls(CallFilter::new().page_size(3));
    assert_eq!(calls.collect_calls(4).await.unwrap().len(), 4);
    assert_eq!(calls.collect_calls(100).await.unwrap().len(), 3);
    assert!(calls.collect_calls(100).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_stream_s_control_reaches_every_page() {
    let server = MockServer::builder().seed_calls(10).start().await.unwrap();
    let client = client(&server);

    // The observer sees each page's attempt, and its Break stops the walk.
    let pages = Arc::new(Pages {
        attempts: AtomicU32::new(0),
        stop_after: 2,
    });
    let control = OwnedControl::new().observer(pages.clone());
    let mut calls = client.list_calls_with(CallFilter::new().page_size(3), control);
    let mut seen = 0;
    let error = loop {
        match calls.next_call().await.unwrap() {
            Ok(_) => seen += 1,
            Err(error) => break error,
        }
    };
    assert_eq!(seen, 6, "two pages, then the stop");
    assert_eq!(error.kind(), ErrorKind::Stopped, "{error}");
    assert!(calls.next_call().await.is_none(), "a stop ends the stream");
    assert_eq!(pages.attempts.load(Ordering::SeqCst), 3);

    // A cancelled token stops the walk before the next page is sent.
    let stop = CancellationToken::new();
    let mut calls = client
        .list_calls(CallFilter::new().page_size(3))
        .with_control(OwnedControl::new().stop(stop.clone()));
    assert_eq!(calls.collect_calls(3).await.unwrap().len(), 3);
    let before = server.operation_counts().list_calls;
    stop.cancel();
    let error = calls.collect_calls(100).await.unwrap_err();
    assert!(error.is_stopped(), "{error}");
    assert_eq!(
        server.operation_counts().list_calls,
        before,
        "nothing more was sent"
    );

    // The deadline bounds each page: a page that cannot be had in time fails, and says so.
    server.inject(Fault::Delay(Duration::from_secs(2)), 1);
    let mut calls = client.list_calls_with(
        CallFilter::new(),
        OwnedControl::new().deadline(Duration::from_millis(300)),
    );
    let error = calls.next_call().await.unwrap().unwrap_err();
    assert!(error.is_timeout(), "{error}");
}

#[tokio::test]
async fn an_error_after_retries_says_how_many_attempts_were_made() {
    let server = MockServer::start().await.unwrap();
    let client = client(&server);
    server.inject(Fault::Status(503), 3);
    let error = client
        .list_calls(CallFilter::new())
        .next_call()
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(error.attempts(), Some(3));
    assert!(
        error.to_string().contains("It failed after 3 attempts."),
        "{error}"
    );
    // One attempt: said by the accessor, not in the message.
    server.inject(Fault::Status(400), 1);
    let error = client
        .get_call(&server.call_ids()[0].parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(error.attempts(), Some(1));
    assert!(!error.to_string().contains("attempts"), "{error}");
}
