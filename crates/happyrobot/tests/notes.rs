//! The notes resource against the mock server: read a call, update and delete notes, retries by
//! method, and finding out what became of an add whose outcome was unknown.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

mod support;

use happyrobot::{CallId, ErrorKind, NewNote, NoteChanges, NoteId, NoteLookup, Outcome};
use happyrobot_mock::{Fault, MockServer};

use support::mock_client as client;

fn first_call(server: &MockServer) -> CallId {
    server.call_ids()[0].parse().unwrap()
}

/// A note added to the first call: the call and the note's ID.
async fn a_note(server: &MockServer, client: &happyrobot::Client) -> (CallId, NoteId) {
    let call = first_call(server);
    let note_id = happyrobot::new_note_id();
    client
        .add_note(&call, NewNote::new("delete me").id(note_id.clone()))
        .await
        .unwrap();
    (call, NoteId::new(note_id).unwrap())
}

#[tokio::test]
async fn add_update_delete_and_read_back() {
    let server = MockServer::start().await.unwrap();
    let client = client(&server);
    let call = first_call(&server);
    let before = client.get_call(&call).await.unwrap();
    let seeded = before.notes.as_ref().map_or(0, Vec::len);

    let mut ids = Vec::new();
    for text in ["one", "two", "three"] {
        let note_id = happyrobot::new_note_id();
        client
            .add_note(&call, NewNote::new(text).id(note_id.clone()))
            .await
            .unwrap();
        ids.push(NoteId::new(note_id).unwrap());
    }
    let updated = client
        .update_note(
            &call,
            &ids[0],
            NoteChanges::new().content("one, corrected").flagged(true),
        )
        .await
        .unwrap();
    let note = updated
        .notes
        .as_ref()
        .unwrap()
        .iter()
        .find(|n| n.id.as_deref() == Some(ids[0].as_str()))
        .unwrap();
    assert_eq!(note.content.as_deref(), Some("one, corrected"));
    assert_eq!(note.flagged, Some(true));

    let after_delete = client.delete_note(&call, &ids[1]).await.unwrap();
    assert_eq!(after_delete.status().as_u16(), 200);

    let now = client.get_call(&call).await.unwrap();
    let notes = now.notes.as_ref().unwrap();
    assert_eq!(notes.len(), seeded + 2);
    let texts: Vec<_> = notes
        .iter()
        .filter(|n| ids.iter().any(|id| n.id.as_deref() == Some(id.as_str())))
        .map(|n| n.content.clone().unwrap())
        .collect();
    assert_eq!(texts, ["one, corrected", "three"]);
    assert_eq!(
        now.raw_body(),
        after_delete.raw_body(),
        "GET shows the same call"
    );
}

#[tokio::test]
async fn a_gone_note_is_told_apart_from_a_missing_call() {
    let server = MockServer::start().await.unwrap();
    let client = client(&server);
    let (call, note) = a_note(&server, &client).await;
    client.delete_note(&call, &note).await.unwrap();
    let again = client.delete_note(&call, &note).await.unwrap_err();
    assert!(again.is_not_found() && again.is_note_not_found(), "{again}");
    assert!(!again.is_call_not_found(), "{again}");
    assert!(again.to_string().contains("deleted already"), "{again}");

    let nowhere: CallId = "000000000000000000000000".parse().unwrap();
    let missing = client.delete_note(&nowhere, &note).await.unwrap_err();
    assert!(
        missing.is_call_not_found() && !missing.is_note_not_found(),
        "{missing}"
    );
}

#[tokio::test]
async fn a_delete_that_finds_nothing_after_its_own_attempt_in_doubt_is_not_already_gone() {
    let server = MockServer::start().await.unwrap();
    let client = client(&server);
    let (call, note) = a_note(&server, &client).await;
    // Deleted, the answer lost: the retry finds nothing, which its own first attempt explains.
    server.inject(Fault::SaveThenDrop, 1);
    let err = client.delete_note(&call, &note).await.unwrap_err();
    assert!(err.is_note_not_found(), "{err}");
    assert!(!err.is_note_already_gone(), "{err}");
    // A delete of a note gone before it.
    let again = client.delete_note(&call, &note).await.unwrap_err();
    assert!(again.is_note_already_gone(), "{again}");
}

#[tokio::test]
async fn a_call_refused_after_an_attempt_with_an_unknown_outcome_is_unknown_not_refused() {
    let server = MockServer::start().await.unwrap();
    let client = client(&server);
    let (call, note) = a_note(&server, &client).await;
    let note_id = note.as_str().to_string();

    // Deleted, the answer lost; the retry refused with a wait longer than the policy's.
    server.inject(Fault::SaveThenDrop, 1);
    server.inject(
        Fault::RateLimited {
            retry_after_secs: 120,
        },
        1,
    );
    let err = client.delete_note(&call, &note).await.unwrap_err();
    assert!(err.retry_after_too_long(), "{err}");
    assert_eq!(err.outcome(), Outcome::Unknown, "{err}");
    assert!(err.to_string().contains("earlier attempt"), "{err}");
    let deleted = server.deleted_notes(call.as_str());
    assert!(
        deleted
            .iter()
            .any(|n| n.id.as_deref() == Some(note_id.as_str())),
        "the first attempt deleted it"
    );
}

#[tokio::test]
async fn bad_input_is_refused_before_sending() {
    let server = MockServer::start().await.unwrap();
    let client = client(&server);
    let call = first_call(&server);
    let note = NoteId::new("65f1d0c0de00000000000000").unwrap();
    for changes in [NoteChanges::new(), NoteChanges::new().content(" \n ")] {
        let err = client.update_note(&call, &note, changes).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
    assert!("a/b".parse::<NoteId>().is_err());
    assert!(server.requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn updates_and_deletes_are_retried_when_the_outcome_is_unknown_but_adds_are_not() {
    let server = MockServer::start().await.unwrap();
    let client = client(&server);
    let call = first_call(&server);
    let note_id = happyrobot::new_note_id();
    client
        .add_note(&call, NewNote::new("retry me").id(note_id.clone()))
        .await
        .unwrap();
    let note = NoteId::new(note_id).unwrap();

    server.inject(Fault::Status(503), 1);
    client
        .update_note(&call, &note, NoteChanges::new().flagged(true))
        .await
        .unwrap();
    server.inject(Fault::CloseBeforeResponse, 1);
    client.delete_note(&call, &note).await.unwrap();

    server.inject(Fault::Status(503), 1);
    let err = client
        .add_note(&call, NewNote::new("not twice"))
        .await
        .unwrap_err();
    assert_eq!(err.outcome(), Outcome::Unknown);
    let adds = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(adds, 2, "the first add and the failed one, never retried");
}

#[tokio::test]
async fn an_unknown_add_is_found_or_found_absent_by_its_id() {
    let server = MockServer::start().await.unwrap();
    let client = client(&server);
    let call = first_call(&server);

    // Saved, then the answer lost: the note is there.
    server.inject(Fault::SaveThenDrop, 1);
    let err = client
        .add_note(&call, NewNote::new("saved then dropped"))
        .await
        .unwrap_err();
    assert!(err.outcome_unknown(), "{err}");
    let note_id = err.note_id().unwrap().to_string();
    let found = client
        .find_note(&call, &note_id, "saved then dropped")
        .await
        .unwrap();
    assert!(
        matches!(found, NoteLookup::Found(note) if note.id.as_deref() == Some(note_id.as_str()))
    );

    // Dropped before it was saved: absent, and sending it again adds it once.
    server.inject(Fault::CloseBeforeResponse, 1);
    let err = client
        .add_note(&call, NewNote::new("never saved"))
        .await
        .unwrap_err();
    let note_id = err.note_id().unwrap().to_string();
    let lookup = client
        .find_note(&call, &note_id, "never saved")
        .await
        .unwrap();
    assert_eq!(lookup, NoteLookup::Absent);
}

#[tokio::test]
async fn a_server_that_ignores_client_ids_leaves_the_outcome_undecided() {
    let server = MockServer::builder()
        .ignore_client_note_ids(true)
        .start()
        .await
        .unwrap();
    let client = client(&server);
    let call = first_call(&server);
    server.inject(Fault::SaveThenDrop, 1);
    let err = client
        .add_note(&call, NewNote::new("which one?"))
        .await
        .unwrap_err();
    let note_id = err.note_id().unwrap().to_string();
    let lookup = client
        .find_note(&call, &note_id, "which one?")
        .await
        .unwrap();
    assert_eq!(lookup, NoteLookup::Undecided, "it never guesses");
}
