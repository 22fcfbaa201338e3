//! A gateway that gives up while the backend goes on ([`Fault::LateApply`]) seen from a real HTTP
//! client: what the client gets and when, what the call holds before and after the late change,
//! and what becomes of a late add whose note the client sent again meanwhile.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a panic in a test helper is a test failure with a location, which is what we want"
)]

mod common;

use std::time::Duration;

use happyrobot_mock::{FIRST_CALL_ID, Fault, LateAnswer, MockServer};
use happyrobot_sdk::types::Call;
use serde_json::{Value, json};
use tokio::time::Instant;

use common::client;

fn late(answer: LateAnswer, answer_after_ms: u64, apply_after_ms: u64) -> Fault {
    Fault::LateApply {
        answer_after: Duration::from_millis(answer_after_ms),
        answer,
        apply_after: Duration::from_millis(apply_after_ms),
    }
}

async fn add(
    server: &MockServer,
    call_id: &str,
    body: Value,
) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{}/calls/{call_id}/notes", server.base_url()))
        .bearer_auth(server.api_key())
        .json(&body)
        .send()
        .await
}

/// The call as a client reads it over HTTP.
async fn get_call(server: &MockServer, call_id: &str) -> Call {
    let response = client()
        .get(format!("{}/calls/{call_id}", server.base_url()))
        .bearer_auth(server.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn count_with_id(call: &Call, id: &str) -> usize {
    call.notes
        .iter()
        .flatten()
        .filter(|note| note.id.as_deref() == Some(id))
        .count()
}

/// Reads the call over HTTP until `done` holds, and returns how long after `since` it first did.
async fn wait_until(server: &MockServer, since: Instant, done: impl Fn(&Call) -> bool) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if done(&get_call(server, FIRST_CALL_ID).await) {
            return since.elapsed();
        }
        assert!(Instant::now() < deadline, "not so within 10 s");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The case: the gateway answers `504` (its HTML page) after `answer_after`; right after,
/// the call does not hold the note; `apply_after` after the request, it does.
#[tokio::test]
async fn a_gateway_504_comes_first_and_the_note_is_added_later() {
    let server = MockServer::start().await.unwrap();
    let fault = late(LateAnswer::Status(504), 500, 1500);
    server.inject(fault.clone(), 1);
    let sent = Instant::now();
    let response = add(
        &server,
        FIRST_CALL_ID,
        json!({ "id": "late-note-1", "content": "Dock 4" }),
    )
    .await
    .unwrap();
    let answered = sent.elapsed();
    assert_eq!(response.status(), 504);
    assert!(answered >= Duration::from_millis(500), "{answered:?}");
    assert!(answered < Duration::from_millis(1500), "{answered:?}");
    assert_eq!(response.headers()["content-type"], "text/html");
    let page = response.text().await.unwrap();
    assert!(page.starts_with("<html>"), "{page}");
    assert!(
        page.contains("<title>504 Gateway Time-out</title>"),
        "{page}"
    );
    assert!(serde_json::from_str::<Value>(&page).is_err());

    // Right after the answer, the note is not there.
    let call = get_call(&server, FIRST_CALL_ID).await;
    assert_eq!(count_with_id(&call, "late-note-1"), 0);
    assert_eq!(server.created_note_count(), 0);
    let log = server.requests();
    assert_eq!(log[0].status, Some(504));
    assert_eq!(log[0].fault, Some(fault));

    // Then it is, and no sooner than `apply_after` after the request was sent.
    let applied = wait_until(&server, sent, |call| {
        count_with_id(call, "late-note-1") == 1
    })
    .await;
    eprintln!("late apply: 504 after {answered:?}, note seen after {applied:?}");
    assert!(applied >= Duration::from_millis(1500), "{applied:?}");
    assert_eq!(server.created_note_count(), 1);
    assert_eq!(server.operation_counts().add_note, 1);
    let note = server.created_notes(FIRST_CALL_ID).pop().unwrap();
    assert_eq!(note.content.as_deref(), Some("Dock 4"));
}

/// `answer=drop`: the connection closes without an answer, and the change comes later all the same.
#[tokio::test]
async fn a_dropped_answer_and_a_later_change() {
    let server = MockServer::start().await.unwrap();
    server.inject(late(LateAnswer::Drop, 300, 900), 1);
    let sent = Instant::now();
    let error = add(
        &server,
        FIRST_CALL_ID,
        json!({ "content": "lost, then kept" }),
    )
    .await
    .unwrap_err();
    assert!(!error.is_timeout() && !error.is_status(), "{error:?}");
    assert!(sent.elapsed() >= Duration::from_millis(300));
    assert_eq!(server.created_note_count(), 0);
    assert_eq!(server.requests()[0].status, None);
    let applied = wait_until(&server, sent, |call| {
        call.notes
            .iter()
            .flatten()
            .any(|note| note.content.as_deref() == Some("lost, then kept"))
    })
    .await;
    assert!(applied >= Duration::from_millis(900), "{applied:?}");
}

/// An update and a delete are applied late too.
#[tokio::test]
async fn updates_and_deletes_are_applied_late() {
    let server = MockServer::start().await.unwrap();
    let notes = server.notes(FIRST_CALL_ID);
    let (first, second) = (notes[0].id.clone().unwrap(), notes[1].id.clone().unwrap());
    let note_url = |id: &str| format!("{}/calls/{FIRST_CALL_ID}/notes/{id}", server.base_url());
    server.inject(late(LateAnswer::Status(502), 200, 700), 2);
    let sent = Instant::now();
    let update = client()
        .patch(note_url(&first))
        .bearer_auth(server.api_key())
        .json(&json!({ "content": "changed late" }))
        .send()
        .await
        .unwrap();
    assert_eq!(update.status(), 502);
    assert!(update.text().await.unwrap().contains("502 Bad Gateway"));
    let delete = client()
        .delete(note_url(&second))
        .bearer_auth(server.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 502);
    assert_eq!(server.notes(FIRST_CALL_ID), notes);
    wait_until(&server, sent, |call| {
        let notes = call.notes.clone().unwrap_or_default();
        notes.len() == 1 && notes[0].content.as_deref() == Some("changed late")
    })
    .await;
    assert_eq!(server.deleted_notes(FIRST_CALL_ID).len(), 1);
    let counts = server.operation_counts();
    assert_eq!((counts.update_note, counts.delete_note), (1, 1));
}

/// The change may also come before the gateway gives up: both times count from the arrival.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_may_come_before_the_answer() {
    let server = std::sync::Arc::new(MockServer::start().await.unwrap());
    server.inject(late(LateAnswer::Status(504), 1200, 100), 1);
    let sent = Instant::now();
    let adding = {
        let server = std::sync::Arc::clone(&server);
        tokio::spawn(async move {
            add(&server, FIRST_CALL_ID, json!({ "content": "early" }))
                .await
                .unwrap()
                .status()
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(server.created_note_count(), 1);
    assert!(!adding.is_finished());
    assert_eq!(adding.await.unwrap(), 504);
    assert!(sent.elapsed() >= Duration::from_millis(1200));
}

/// With `inject_rate`, a seeded share of the requests gets the fault: those are answered `504`
/// and applied later, the others at once, and in the end every request was applied.
#[tokio::test]
async fn late_applies_at_a_seeded_rate() {
    let statuses = |seed| async move {
        let server = MockServer::start().await.unwrap();
        server.inject_rate(late(LateAnswer::Status(504), 50, 300), 0.5, seed);
        let mut statuses = Vec::new();
        for n in 0..12 {
            let response = add(
                &server,
                FIRST_CALL_ID,
                json!({ "content": format!("n{n}") }),
            )
            .await
            .unwrap();
            statuses.push(response.status().as_u16());
        }
        let late = statuses.iter().filter(|s| **s == 504).count();
        assert_eq!(late + statuses.iter().filter(|s| **s == 200).count(), 12);
        // The fault hits reads too, so the notes are read from the server's side here.
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.notes(FIRST_CALL_ID).len() < 2 + 12 {
            assert!(Instant::now() < deadline, "the late adds did not all come");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(server.created_note_count(), 12);
        statuses
    };
    let first = statuses(11).await;
    assert!(first.contains(&200) && first.contains(&504), "{first:?}");
    assert_eq!(statuses(11).await, first);
}

/// The double note: the gateway answers `504`, the client sends the note again with the
/// same id and gets it added, then the backend's late add comes. By default the call ends up with
/// the note twice; with `refuse_repeated_note_ids`, the late add finds the id and is dropped.
async fn retry_after_a_gateway_timeout(refuse: bool) -> usize {
    let server = MockServer::builder()
        .refuse_repeated_note_ids(refuse)
        .start()
        .await
        .unwrap();
    server.inject(late(LateAnswer::Status(504), 200, 900), 1);
    let body = json!({ "id": "retried", "content": "Driver confirmed pickup" });
    let sent = Instant::now();
    assert_eq!(
        add(&server, FIRST_CALL_ID, body.clone())
            .await
            .unwrap()
            .status(),
        504
    );
    assert_eq!(
        add(&server, FIRST_CALL_ID, body).await.unwrap().status(),
        200
    );
    assert_eq!(
        count_with_id(&get_call(&server, FIRST_CALL_ID).await, "retried"),
        1
    );
    if refuse {
        // Nothing shows when the late add is dropped, so wait well past its time.
        tokio::time::sleep_until(sent + Duration::from_millis(2000)).await;
        assert_eq!(server.created_note_count(), 1);
        assert_eq!(server.operation_counts().add_note, 1);
    } else {
        wait_until(&server, sent, |call| count_with_id(call, "retried") == 2).await;
        assert_eq!(server.created_note_count(), 2);
    }
    count_with_id(&get_call(&server, FIRST_CALL_ID).await, "retried")
}

#[tokio::test]
async fn a_late_add_of_an_id_already_on_the_call_is_dropped_when_repeats_are_refused() {
    assert_eq!(retry_after_a_gateway_timeout(true).await, 1);
}

#[tokio::test]
async fn a_late_add_of_an_id_already_on_the_call_is_added_again_by_default() {
    assert_eq!(retry_after_a_gateway_timeout(false).await, 2);
}
