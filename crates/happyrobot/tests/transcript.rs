//! The documented contract against real servers on 127.0.0.1: call IDs by the documented rule
//! (24 characters, sent exactly as given, with a hint on a `404` for an unusual one), and
//! `GET /calls/{id}/transcript` with every transcript fixture, through the client and the mock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

mod support;

use happyrobot::types::{MessageRole, Seconds};
use happyrobot::{CallId, Client, NewNote, Outcome, RetryPolicy};
use happyrobot_mock::MockServer;
use support::{KEY, Reply, TestServer, call_json};

fn client(base_url: &str, key: &str) -> Client {
    Client::builder()
        .api_key(key)
        .base_url(base_url)
        .retry(RetryPolicy::default().max_retries(0))
        .build()
        .unwrap()
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = format!("{}/tests/fixtures/transcripts", env!("CARGO_MANIFEST_DIR"));
    let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let body = std::fs::read(format!("{dir}/{name}")).unwrap();
            (name, body)
        })
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn an_id_by_the_documented_rule_reaches_the_server_exactly_as_given() {
    let server = TestServer::start(|_, _| Reply::json(200, &call_json())).await;
    let client = client(&server.base_url, KEY);
    for typed in [
        "s90000000000000000000001",
        "65F1C0FFEE0123456789ABCD",
        "call_0123456789-abcdefgh",
    ] {
        let id: CallId = typed.parse().unwrap();
        client.get_call(&id).await.unwrap();
        client.add_note(&id, NewNote::new("x")).await.unwrap();
    }
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/calls/s90000000000000000000001",
            "/api/v1/calls/s90000000000000000000001/notes",
            "/api/v1/calls/65F1C0FFEE0123456789ABCD",
            "/api/v1/calls/65F1C0FFEE0123456789ABCD/notes",
            "/api/v1/calls/call_0123456789-abcdefgh",
            "/api/v1/calls/call_0123456789-abcdefgh/notes",
        ]
    );
}

#[tokio::test]
async fn path_changing_characters_and_other_lengths_are_refused_with_nothing_sent() {
    let server = TestServer::start(|_, _| Reply::json(200, &call_json())).await;
    for bad in [
        "s9000000000000000000001",
        "s900000000000000000000001",
        "s9000000000000000000000/",
        "s9000000000000000000000?",
        "s9000000000000000000000#",
        "s900000000000000000000%2",
        "s9000000000000000000000 ",
        "s9000000000000000000000\n",
        "s9000000000000000000000.",
        "",
    ] {
        let err = bad.parse::<CallId>().unwrap_err();
        assert!(err.is_invalid_input(), "{bad:?}: {err}");
        assert!(err.to_string().contains("24 characters"), "{err}");
    }
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn a_404_for_an_unusual_id_says_call_ids_are_usually_hexadecimal() {
    let server = TestServer::start(|_, _| {
        Reply::json(404, r#"{"error":"Not Found","message":"Call not found"}"#)
            .with_header("x-request-id", "req-404")
    })
    .await;
    let client = client(&server.base_url, KEY);
    let odd: CallId = "65f1c0ffee0123456789abcO".parse().unwrap();
    for err in [
        client.get_call(&odd).await.unwrap_err(),
        client.get_transcript(&odd).await.unwrap_err(),
        client.add_note(&odd, NewNote::new("x")).await.unwrap_err(),
    ] {
        assert!(err.is_not_found(), "{err}");
        assert_eq!(err.outcome(), Outcome::NotApplied);
        let text = err.to_string();
        assert!(
            text.contains("usually 24 lower-case hexadecimal digits")
                && text.contains("'O' in \"65f1c0ffee0123456789abcO\" is not one"),
            "{text}"
        );
        assert!(text.ends_with("(request ID req-404)"), "{text}");
    }
    // An ID of the usual shape gets no such hint: the ID is not the likely problem.
    let usual: CallId = "65f1c0ffee0123456789abcd".parse().unwrap();
    let err = client.get_transcript(&usual).await.unwrap_err();
    assert!(err.is_not_found());
    assert!(!err.to_string().contains("hexadecimal"), "{err}");
}

#[tokio::test]
async fn every_transcript_fixture_decodes_whole_through_the_client() {
    let all = fixtures();
    assert!(all.len() >= 8);
    for (name, body) in all {
        let sent = body.clone();
        let server = TestServer::start(move |_, _| Reply::Respond {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: sent.clone(),
        })
        .await;
        let id: CallId = "65f1c0ffee0123456789abcd".parse().unwrap();
        let response = client(&server.base_url, KEY)
            .get_transcript(&id)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(response.raw_body(), &body[..], "{name}: kept byte for byte");
        let request = &server.requests()[0];
        assert_eq!(request.method, "GET");
        assert_eq!(
            request.path,
            "/api/v1/calls/65f1c0ffee0123456789abcd/transcript"
        );
        assert_eq!(
            request.header("authorization"),
            Some(&*format!("Bearer {KEY}"))
        );
    }
}

#[tokio::test]
async fn a_transcript_failure_is_a_read_that_changed_nothing() {
    let server = TestServer::start(|i, _| match i {
        0 => Reply::json(503, r#"{"message":"busy"}"#),
        _ => Reply::json(200, r#"{"messages":[]}"#),
    })
    .await;
    let id: CallId = "65f1c0ffee0123456789abcd".parse().unwrap();
    let err = client(&server.base_url, KEY)
        .get_transcript(&id)
        .await
        .unwrap_err();
    assert_eq!(err.outcome(), Outcome::NotApplied, "{err}");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    // The default policy retries a read after a 503.
    let retried = Client::builder()
        .api_key(KEY)
        .base_url(&server.base_url)
        .retry(
            RetryPolicy::default()
                .base_delay(std::time::Duration::from_millis(5))
                .max_delay(std::time::Duration::from_millis(10)),
        )
        .build()
        .unwrap()
        .get_transcript(&id)
        .await
        .unwrap();
    assert_eq!(retried.into_inner().messages, Some(vec![]));
}

#[tokio::test]
async fn the_mock_serves_each_seeded_call_its_transcript_and_404_for_an_unknown_call() {
    let server = MockServer::start().await.unwrap();
    let client = client(&server.base_url(), server.api_key());
    let first: CallId = server.call_ids()[0].parse().unwrap();
    let response = client.get_transcript(&first).await.unwrap();
    let raw = response.raw_body().to_vec();
    let transcript = response.into_inner();
    assert_eq!(transcript.call_id.as_deref(), Some(first.as_str()));
    let messages = transcript.messages.unwrap();
    assert!(messages.len() >= 5);
    assert!(messages.iter().any(|m| m.tool_calls.is_some()));
    assert!(
        messages
            .iter()
            .any(|m| m.role == Some(MessageRole::Tool) && m.tool_call_id.is_some())
    );
    assert!(
        messages
            .iter()
            .all(|m| m.start.as_ref().and_then(Seconds::as_f64).is_some())
    );
    // The same on every start.
    let again = MockServer::start().await.unwrap();
    let raw_again = client_for(&again).get_transcript(&first).await.unwrap();
    assert_eq!(raw_again.raw_body(), &raw[..]);
    assert_eq!(server.operation_counts().get_transcript, 1);

    let unknown: CallId = "000000000000000000000000".parse().unwrap();
    let err = client.get_transcript(&unknown).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(!err.is_note_not_found());
}

fn client_for(server: &MockServer) -> Client {
    client(&server.base_url(), server.api_key())
}
