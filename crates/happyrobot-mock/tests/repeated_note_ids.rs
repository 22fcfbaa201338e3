//! The switch that refuses a repeated client note id, seen from a real HTTP client: off by
//! default (the second note is added), and when on a `409` that adds nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a panic in a test helper is a test failure with a location, which is what we want"
)]

mod common;

use happyrobot_mock::{FIRST_CALL_ID, MockServer};
use happyrobot_sdk::types::Call;
use serde_json::{Value, json};

use common::client;

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

#[tokio::test]
async fn a_repeated_note_id_is_added_by_default() {
    let server = MockServer::start().await.unwrap();
    for _ in 0..2 {
        let response = add(
            &server,
            FIRST_CALL_ID,
            json!({ "id": "twice", "content": "x" }),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(
        count_with_id(&get_call(&server, FIRST_CALL_ID).await, "twice"),
        2
    );
}

#[tokio::test]
async fn a_repeated_note_id_is_refused_when_asked() {
    let server = MockServer::builder()
        .refuse_repeated_note_ids(true)
        .start()
        .await
        .unwrap();
    let body = json!({ "id": "once", "content": "first" });
    assert_eq!(
        add(&server, FIRST_CALL_ID, body.clone())
            .await
            .unwrap()
            .status(),
        200
    );
    let before = get_call(&server, FIRST_CALL_ID).await;

    let again = add(
        &server,
        FIRST_CALL_ID,
        json!({ "id": "once", "content": "second" }),
    )
    .await
    .unwrap();
    assert_eq!(again.status(), 409);
    assert_eq!(again.headers()["content-type"], "application/json");
    let error: Value = again.json().await.unwrap();
    assert_eq!(error["error"], "Conflict");
    assert_eq!(
        error["message"],
        "a note with id once already exists on this call"
    );
    assert_eq!(get_call(&server, FIRST_CALL_ID).await, before);
    assert_eq!(server.created_note_count(), 1);
    assert_eq!(server.operation_counts().add_note, 1);

    // A seeded note's id is refused too; another call, or no id at all, is fine.
    let seeded = server.notes(FIRST_CALL_ID)[0].id.clone().unwrap();
    let response = add(
        &server,
        FIRST_CALL_ID,
        json!({ "id": seeded, "content": "x" }),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 409);
    let other_call = server.call_ids()[1].clone();
    assert_eq!(
        add(&server, &other_call, body.clone())
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        add(&server, FIRST_CALL_ID, json!({ "content": "no id" }))
            .await
            .unwrap()
            .status(),
        200
    );

    // Once the note is deleted its id is free again.
    let deleted = client()
        .delete(format!(
            "{}/calls/{FIRST_CALL_ID}/notes/once",
            server.base_url()
        ))
        .bearer_auth(server.api_key())
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert_eq!(
        add(&server, FIRST_CALL_ID, body).await.unwrap().status(),
        200
    );
    assert_eq!(
        count_with_id(&get_call(&server, FIRST_CALL_ID).await, "once"),
        1
    );
}

/// A client's id that the mock ignores cannot repeat: nothing is refused.
#[tokio::test]
async fn ignored_client_ids_are_never_refused() {
    let server = MockServer::builder()
        .refuse_repeated_note_ids(true)
        .ignore_client_note_ids(true)
        .start()
        .await
        .unwrap();
    for _ in 0..2 {
        let response = add(
            &server,
            FIRST_CALL_ID,
            json!({ "id": "ignored", "content": "x" }),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(server.created_note_count(), 2);
}

/// The check and the add are one step: of many concurrent adds of one id, exactly one gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_of_one_id_let_exactly_one_in() {
    let server = std::sync::Arc::new(
        MockServer::builder()
            .refuse_repeated_note_ids(true)
            .start()
            .await
            .unwrap(),
    );
    let adds: Vec<_> = (0..16)
        .map(|n| {
            let server = std::sync::Arc::clone(&server);
            tokio::spawn(async move {
                let body = json!({ "id": "raced", "content": format!("copy {n}") });
                add(&server, FIRST_CALL_ID, body)
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for add in adds {
        statuses.push(add.await.unwrap());
    }
    statuses.sort_unstable();
    let mut expected = vec![409; 15];
    expected.insert(0, 200);
    assert_eq!(statuses, expected);
    assert_eq!(
        count_with_id(&get_call(&server, FIRST_CALL_ID).await, "raced"),
        1
    );
    assert_eq!(server.created_note_count(), 1);
}
