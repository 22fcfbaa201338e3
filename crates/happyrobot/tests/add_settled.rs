//! `Client::add_note_settled` against the mock: one call that adds a note and settles an unknown
//! outcome (found by its ID, or certainly absent and sent once more with every field kept), and
//! says why when it cannot.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

use std::sync::Mutex;
use std::time::Duration;

use happyrobot::{
    AttemptObserver, CallId, Client, Control, HowAdded, NewNote, Outcome, SettleStep, Undecided,
    Unsettled,
};
use happyrobot_mock::{Fault, MockServer};

fn client(server: &MockServer) -> Client {
    Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .timeout(Duration::from_secs(5))
        .reconcile_settle(Duration::from_millis(50))
        .build()
        .unwrap()
}

fn first_call(server: &MockServer) -> CallId {
    server.call_ids()[0].parse().unwrap()
}

/// Remembers the steps it is told, as text.
#[derive(Default)]
struct Steps(Mutex<Vec<String>>);

impl AttemptObserver for Steps {
    fn settle_step(&self, step: &SettleStep<'_>) {
        let text = match step {
            SettleStep::Looking { error } => format!("looking ({:?})", error.outcome()),
            SettleStep::Found { note_id } => format!("found {note_id}"),
            SettleStep::SendingAgain { resend_id } => format!("again {resend_id}"),
            _ => "other".to_string(),
        };
        self.0.lock().unwrap().push(text);
    }
}

#[tokio::test]
async fn a_plain_add_returns_the_call_and_the_note() {
    let server = MockServer::start().await.unwrap();
    let (client, call) = (client(&server), first_call(&server));
    let added = client
        .add_note_settled(&call, NewNote::new("Dock 4").flagged(true), &Control::new())
        .await
        .unwrap();
    assert_eq!(added.how, HowAdded::Answered);
    let note = added.note.unwrap();
    assert_eq!(note.content.as_deref(), Some("Dock 4"));
    assert_eq!(note.flagged, Some(true));
    assert_eq!(note.id, added.note_id, "sent with a client ID, kept");
    assert_eq!(added.call.status(), 200);
    assert_eq!(server.notes_by_content(None).get("Dock 4"), Some(&1));
}

#[tokio::test]
async fn saved_then_dropped_is_found_and_not_sent_again() {
    let server = MockServer::start().await.unwrap();
    let (client, call) = (client(&server), first_call(&server));
    server.inject(Fault::SaveThenDrop, 1);
    let steps = Steps::default();
    let control = Control::new().observer(&steps);
    let added = client
        .add_note_settled(&call, NewNote::new("saved"), &control)
        .await
        .unwrap();
    assert_eq!(added.how, HowAdded::Found { copies: vec![] });
    let id = added.note_id.clone().unwrap();
    assert_eq!(added.note.unwrap().id.as_deref(), Some(id.as_str()));
    // The call as the look read it, with the note on it.
    assert!(
        added
            .call
            .notes
            .iter()
            .flatten()
            .any(|n| n.id.as_deref() == Some(id.as_str()))
    );
    assert_eq!(server.notes_by_content(None).get("saved"), Some(&1));
    assert_eq!(
        *steps.0.lock().unwrap(),
        ["looking (Unknown)".to_string(), format!("found {id}")]
    );
}

#[tokio::test]
async fn dropped_before_saving_is_sent_once_more_with_every_field_kept() {
    let server = MockServer::start().await.unwrap();
    let (client, call) = (client(&server), first_call(&server));
    server.inject(Fault::CloseBeforeResponse, 1);
    let steps = Steps::default();
    let note = NewNote::new("dropped")
        .flagged(true)
        .user_id("65f1c0ffee0123456789ab77")
        .created_at(
            "2024-03-01T10:00:00Z"
                .parse::<happyrobot::types::Timestamp>()
                .unwrap(),
        );
    let added = client
        .add_note_settled(&call, note, &Control::new().observer(&steps))
        .await
        .unwrap();
    let HowAdded::SentAgain { first_id } = &added.how else {
        panic!("{:?}", added.how);
    };
    let resent_id = added.note_id.clone().unwrap();
    assert_ne!(first_id, &resent_id, "sent again under a new ID");
    let notes = server.notes(call.as_str());
    let resent: Vec<_> = notes
        .iter()
        .filter(|n| n.content.as_deref() == Some("dropped"))
        .collect();
    assert_eq!(resent.len(), 1, "added once");
    let resent = resent[0];
    assert_eq!(resent.id.as_deref(), Some(resent_id.as_str()));
    assert_eq!(resent.flagged, Some(true));
    assert_eq!(resent.user_id.as_deref(), Some("65f1c0ffee0123456789ab77"));
    assert_eq!(
        resent.created_at.as_ref().map(|t| t.as_str()),
        Some("2024-03-01T10:00:00Z")
    );
    assert_eq!(
        *steps.0.lock().unwrap(),
        [
            "looking (Unknown)".to_string(),
            format!("again {resent_id}")
        ]
    );
}

#[tokio::test]
async fn a_server_that_ignores_client_ids_leaves_it_unsettled_and_says_why() {
    let server = MockServer::builder()
        .ignore_client_note_ids(true)
        .start()
        .await
        .unwrap();
    let (client, call) = (client(&server), first_call(&server));
    server.inject(Fault::SaveThenDrop, 1);
    let error = client
        .add_note_settled(&call, NewNote::new("ambiguous"), &Control::new())
        .await
        .unwrap_err();
    assert_eq!(error.outcome(), Outcome::Unknown);
    assert!(matches!(
        error.unsettled(),
        Some(Unsettled::Undecided(Undecided::SameTextOtherId))
    ));
    let add = error.unsettled_add().unwrap();
    assert_eq!(add.note_id(), error.note_id());
    assert!(error.to_string().starts_with(&add.to_string()), "{error}");
    assert!(error.to_string().contains("did not settle it"), "{error}");
    assert_eq!(
        server.notes_by_content(None).get("ambiguous"),
        Some(&1),
        "never sent twice"
    );
}

#[tokio::test]
async fn a_certain_failure_is_returned_as_it_is() {
    let server = MockServer::start().await.unwrap();
    let client = client(&server);
    let missing: CallId = "65f1c0ffee0123456789ffff".parse().unwrap();
    let error = client
        .add_note_settled(&missing, NewNote::new("x"), &Control::new())
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error}");
    assert!(error.unsettled().is_none());
}
