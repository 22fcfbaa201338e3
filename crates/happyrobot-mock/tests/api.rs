//! The mock seen from a real HTTP client: the endpoint, every error, every fault, the request log,
//! determinism and concurrency.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a panic in a test helper is a test failure with a location, which is what we want"
)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use happyrobot_mock::{
    CALL_NOT_FOUND_ERROR, DEFAULT_API_KEY, FIRST_CALL_ID, Fault, MOCK_USER_ID, MockServer,
    NOTE_NOT_FOUND_ERROR, OperationCounts,
};
use happyrobot_sdk::types::{Call, ErrorBody};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::client;

/// The id of the first seeded note of the first seeded call (the spec's `noteId` example).
const SEEDED_NOTE_ID: &str = "65f1d0c0de00000000000000";
/// The id of its second seeded note.
const SECOND_SEEDED_NOTE_ID: &str = "65f1d0c0de00000000000001";

fn notes_url(server: &MockServer, id: &str) -> String {
    format!("{}/calls/{id}/notes", server.base_url())
}

fn is_24_hex(id: &str) -> bool {
    id.len() == 24
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Sends `body` as JSON to the first call's notes with the server's key.
async fn post(server: &MockServer, body: Value) -> reqwest::Result<reqwest::Response> {
    client()
        .post(notes_url(server, FIRST_CALL_ID))
        .bearer_auth(server.api_key())
        .json(&body)
        .send()
        .await
}

/// Checks an error answer: the status, a JSON `ErrorBody` repeating it, and a message containing
/// `needle`.
async fn assert_error(response: reqwest::Response, status: u16, needle: &str) -> ErrorBody {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert!(response.headers().contains_key("x-request-id"));
    let body: ErrorBody = response.json().await.unwrap();
    assert_eq!(body.status_code, Some(i64::from(status)));
    let reason = reqwest::StatusCode::from_u16(status)
        .unwrap()
        .canonical_reason()
        .unwrap();
    assert_eq!(body.error.as_deref(), Some(reason));
    let message = body.message.clone().unwrap();
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    body
}

#[tokio::test]
async fn adding_a_note_returns_the_whole_updated_call() {
    let server = MockServer::start().await.unwrap();
    let before = server.call(FIRST_CALL_ID).unwrap();
    let started = chrono_now_secs();
    let response = post(
        &server,
        json!({ "content": "Driver confirmed pickup at 14:00.", "flagged": true }),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert!(!response.headers()["x-request-id"].is_empty());
    let call: Call = response.json().await.unwrap();

    let notes = call.notes.clone().unwrap();
    assert_eq!(notes.len(), before.notes.as_ref().unwrap().len() + 1);
    let note = notes.last().unwrap();
    assert_eq!(
        note.content.as_deref(),
        Some("Driver confirmed pickup at 14:00.")
    );
    assert_eq!(note.flagged, Some(true));
    assert_eq!(note.user_id.as_deref(), Some(MOCK_USER_ID));
    assert!(is_24_hex(note.id.as_deref().unwrap()), "{:?}", note.id);
    let created = note.created_at.as_ref().unwrap();
    assert!(created.as_str().ends_with('Z'), "{created}");
    let created_secs = created.to_utc().unwrap().timestamp();
    assert!((started - 2..=started + 60).contains(&created_secs));

    // Everything but the notes is as seeded, and the store agrees with the answer.
    let mut unchanged = call.clone();
    unchanged.notes = before.notes.clone();
    assert_eq!(unchanged, before);
    assert_eq!(server.call(FIRST_CALL_ID).unwrap(), call);
    assert_eq!(server.created_notes(FIRST_CALL_ID), vec![note.clone()]);
    assert_eq!(server.created_note_count(), 1);
    assert!(server.created_notes(&server.call_ids()[1]).is_empty());

    // A note without `flagged` is stored unflagged, and each gets its own id.
    let call: Call = post(&server, json!({ "content": "second" }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second = call.notes.unwrap().pop().unwrap();
    assert_eq!(second.flagged, Some(false));
    assert_ne!(second.id, note.id);
    assert_eq!(server.created_note_count(), 2);
}

fn chrono_now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn fields_the_client_sends_are_kept() {
    let server = MockServer::start().await.unwrap();
    let id = server.call_ids()[1].clone();
    let response = client()
        .post(notes_url(&server, &id))
        .bearer_auth(DEFAULT_API_KEY)
        .json(&json!({
            "id": "client-chosen-id",
            "user_id": "65f1c0ffee0123456789ffff",
            "created_at": "2024-05-01T12:00:00+02:00",
            "content": "kept",
            "unknown_field": [1, 2, 3]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let note = server.created_notes(&id).pop().unwrap();
    assert_eq!(note.id.as_deref(), Some("client-chosen-id"));
    assert_eq!(note.user_id.as_deref(), Some("65f1c0ffee0123456789ffff"));
    assert_eq!(
        note.created_at.unwrap().as_str(),
        "2024-05-01T12:00:00+02:00"
    );
}

#[tokio::test]
async fn authorization_is_required_and_checked() {
    let server = MockServer::builder()
        .api_key("sk_test_right")
        .start()
        .await
        .unwrap();
    let url = notes_url(&server, FIRST_CALL_ID);
    let body = json!({ "content": "x" });

    let missing = client().post(&url).json(&body).send().await.unwrap();
    assert!(missing.headers().contains_key("www-authenticate"));
    assert_error(missing, 401, "authorization").await;
    for malformed in [
        "sk_test_right",
        "Basic sk_test_right",
        "Bearer",
        "Bearer ",
        "Bearer sk_test right",
        "Token sk_test_right",
    ] {
        let response = client()
            .post(&url)
            .header("authorization", malformed)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "Malformed").await;
    }
    let wrong = client()
        .post(&url)
        .bearer_auth("sk_test_wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(wrong, 401, "Invalid API key").await;
    assert_eq!(server.created_note_count(), 0);

    // The right key works, with the scheme in any case.
    let ok = client()
        .post(&url)
        .header("authorization", "bearer sk_test_right")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// Sends a raw HTTP/1.1 request, so that header names keep the case written here.
async fn raw_request(server: &MockServer, head: &str, body: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let request = format!(
        "{head}\r\nhost: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        server.addr(),
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

#[tokio::test]
async fn header_names_are_case_insensitive() {
    let server = MockServer::start().await.unwrap();
    let answer = raw_request(
        &server,
        &format!(
            "POST /api/v1/calls/{FIRST_CALL_ID}/notes HTTP/1.1\r\nAUTHORIZATION: Bearer {DEFAULT_API_KEY}\r\nContent-Type: application/json"
        ),
        r#"{"content":"shouting headers"}"#,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert_eq!(server.created_note_count(), 1);
}

#[tokio::test]
async fn the_call_id_must_have_24_characters_and_exist() {
    let server = MockServer::start().await.unwrap();
    for bad in ["65f1c0ffee0123456789abc", "65f1c0ffee0123456789abcde", "x"] {
        let response = client()
            .post(notes_url(&server, bad))
            .bearer_auth(DEFAULT_API_KEY)
            .json(&json!({ "content": "x" }))
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "24 characters").await;
    }
    // 24 characters after percent-decoding count as a well-formed id, and then it must exist.
    for unknown in [
        "ffffffffffffffffffffffff",
        "%C3%A9%C3%A9eeeeeeeeeeeeeeeeeeeeee",
    ] {
        let response = client()
            .post(notes_url(&server, unknown))
            .bearer_auth(DEFAULT_API_KEY)
            .json(&json!({ "content": "x" }))
            .send()
            .await
            .unwrap();
        assert_error(response, 404, "Call not found").await;
    }
    assert_eq!(server.created_note_count(), 0);
}

#[tokio::test]
async fn bad_bodies_are_rejected() {
    let server = MockServer::start().await.unwrap();
    let cases: [(&str, &str); 14] = [
        ("", "body is required"),
        ("   ", "body is required"),
        ("{\"content\": ", "not valid JSON"),
        ("not json", "not valid JSON"),
        ("[{\"content\": \"x\"}]", "JSON object"),
        ("\"content\"", "JSON object"),
        ("{}", "`content` is required"),
        ("{\"content\": null}", "`content` is required"),
        ("{\"content\": 5}", "`content` must be a string"),
        ("{\"content\": \"\"}", "must not be empty"),
        ("{\"content\": \" \\n\\t \"}", "must not be empty"),
        (
            "{\"content\": \"x\", \"flagged\": \"yes\"}",
            "`flagged` must be a boolean",
        ),
        (
            "{\"content\": \"x\", \"flagged\": null}",
            "`flagged` must be a boolean",
        ),
        (
            "{\"content\": \"x\", \"created_at\": \"yesterday\"}",
            "`created_at` must be an RFC 3339",
        ),
    ];
    for (body, needle) in cases {
        let response = client()
            .post(notes_url(&server, FIRST_CALL_ID))
            .bearer_auth(DEFAULT_API_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(response, 400, needle).await;
    }
    for body in [
        json!({ "content": "x", "user_id": 7 }),
        json!({ "content": "x", "id": false }),
    ] {
        assert_error(post(&server, body).await.unwrap(), 400, "must be a string").await;
    }
    let text = client()
        .post(notes_url(&server, FIRST_CALL_ID))
        .bearer_auth(DEFAULT_API_KEY)
        .header("content-type", "text/plain")
        .body(r#"{"content": "x"}"#)
        .send()
        .await
        .unwrap();
    assert_error(text, 415, "application/json").await;
    assert_eq!(server.created_note_count(), 0);
}

#[tokio::test]
async fn wrong_methods_and_unknown_paths() {
    use reqwest::Method;
    let server = MockServer::start().await.unwrap();
    let base = server.base_url();
    let paths: [(String, &str, &[Method]); 4] = [
        (
            format!("{base}/calls"),
            "GET",
            &[Method::POST, Method::PUT, Method::PATCH, Method::DELETE],
        ),
        (
            format!("{base}/calls/{FIRST_CALL_ID}"),
            "GET",
            &[Method::POST, Method::PUT, Method::PATCH, Method::DELETE],
        ),
        (
            notes_url(&server, FIRST_CALL_ID),
            "POST",
            &[Method::GET, Method::PUT, Method::PATCH, Method::DELETE],
        ),
        (
            format!("{base}/calls/{FIRST_CALL_ID}/notes/{SEEDED_NOTE_ID}"),
            "PATCH, DELETE",
            &[Method::GET, Method::POST, Method::PUT, Method::OPTIONS],
        ),
    ];
    for (url, allow, wrong) in paths {
        for method in wrong {
            let response = client()
                .request(method.clone(), &url)
                .bearer_auth(DEFAULT_API_KEY)
                .send()
                .await
                .unwrap();
            assert_eq!(response.headers()["allow"], allow, "{method} {url}");
            assert_error(response, 405, method.as_str()).await;
        }
    }
    assert_eq!(server.operation_counts(), OperationCounts::default());
    assert_eq!(server.notes(FIRST_CALL_ID).len(), 2);
    let root = server.base_url().replace("/api/v1", "");
    for path in [
        format!("{}/calls/", server.base_url()),
        format!("{}/callsx", server.base_url()),
        format!("{}/calls/{FIRST_CALL_ID}/", server.base_url()),
        format!("{}/calls/{FIRST_CALL_ID}/notes/", server.base_url()),
        format!(
            "{}/calls/{FIRST_CALL_ID}/notes/extra/more",
            server.base_url()
        ),
        format!("{}/calls/{FIRST_CALL_ID}/ratings", server.base_url()),
        format!("{root}/calls/{FIRST_CALL_ID}/notes"),
        format!("{root}/"),
    ] {
        let response = client()
            .post(&path)
            .bearer_auth(DEFAULT_API_KEY)
            .json(&json!({ "content": "x" }))
            .send()
            .await
            .unwrap();
        assert_error(response, 404, "Cannot POST").await;
    }
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let server = MockServer::start().await.unwrap();
    let huge = format!(r#"{{"content": "{}"}}"#, "a".repeat(1024 * 1024));
    let response = client()
        .post(notes_url(&server, FIRST_CALL_ID))
        .bearer_auth(DEFAULT_API_KEY)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "too large").await;

    let small = MockServer::builder()
        .max_body_bytes(32)
        .start()
        .await
        .unwrap();
    let body_of = |len: usize| format!(r#"{{"content": "{}"}}"#, "a".repeat(len - 15));
    let fits = body_of(32);
    assert_eq!(fits.len(), 32);
    let send = |body: String| {
        client()
            .post(notes_url(&small, FIRST_CALL_ID))
            .bearer_auth(DEFAULT_API_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(send(fits).await.unwrap().status(), 200);
    let over = send(body_of(33)).await.unwrap();
    assert_error(over, 413, "too large").await;
    assert_eq!(small.created_note_count(), 1);
    assert_eq!(server.created_note_count(), 0);
}

#[tokio::test]
async fn checks_run_in_the_documented_order() {
    let server = MockServer::start().await.unwrap();
    let c = client();
    // Path before auth.
    let r = c
        .post(format!("{}/nope", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // Method before auth.
    let r = c.get(notes_url(&server, "short")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // Auth before id.
    let r = c
        .post(notes_url(&server, "short"))
        .body("junk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Id before body.
    let r = c
        .post(notes_url(&server, "short"))
        .bearer_auth(DEFAULT_API_KEY)
        .body("junk")
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "24 characters").await;
    // Body before the call's existence.
    let r = c
        .post(notes_url(&server, "ffffffffffffffffffffffff"))
        .bearer_auth(DEFAULT_API_KEY)
        .body("junk")
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "not valid JSON").await;
}

#[tokio::test]
async fn rate_limit_fault_sends_retry_after_and_saves_nothing() {
    let server = MockServer::start().await.unwrap();
    server.inject(
        Fault::RateLimited {
            retry_after_secs: 3,
        },
        2,
    );
    assert_eq!(server.pending_faults(), 2);
    for _ in 0..2 {
        let response = post(&server, json!({ "content": "x" })).await.unwrap();
        assert_eq!(response.headers()["retry-after"], "3");
        assert_error(response, 429, "Rate limit").await;
    }
    assert_eq!(server.pending_faults(), 0);
    assert_eq!(server.created_note_count(), 0);
    // The faults are used up: the next request goes through.
    assert_eq!(
        post(&server, json!({ "content": "x" }))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(server.created_note_count(), 1);
}

#[tokio::test]
async fn status_faults_answer_with_their_code() {
    let server = MockServer::start().await.unwrap();
    for code in [500, 502, 503] {
        server.inject(Fault::Status(code), 1);
    }
    for code in [500, 502, 503] {
        let response = post(&server, json!({ "content": "x" })).await.unwrap();
        assert_error(response, code, "Injected failure").await;
    }
    assert_eq!(server.created_note_count(), 0);
    let statuses: Vec<Option<u16>> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(500), Some(502), Some(503)]);
    assert_eq!(server.requests()[1].fault, Some(Fault::Status(502)));
}

#[tokio::test]
async fn faults_are_not_used_up_by_rejected_requests() {
    let server = MockServer::start().await.unwrap();
    server.inject(Fault::Status(500), 1);
    let wrong_key = client()
        .post(notes_url(&server, FIRST_CALL_ID))
        .bearer_auth("nope")
        .json(&json!({ "content": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_key.status(), 401);
    let elsewhere = client()
        .post(format!("{}/elsewhere", server.base_url()))
        .bearer_auth(DEFAULT_API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404);
    assert_eq!(server.pending_faults(), 1);
    let response = post(&server, json!({ "content": "x" })).await.unwrap();
    assert_eq!(response.status(), 500);

    server.inject(Fault::Status(503), 5);
    server.inject_rate(Fault::Status(502), 1.0, 1);
    server.clear_faults();
    assert_eq!(server.pending_faults(), 0);
    let response = post(&server, json!({ "content": "x" })).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn delay_fault_waits_then_answers_normally() {
    let server = MockServer::start().await.unwrap();
    server.inject(Fault::Delay(Duration::from_millis(400)), 1);
    let started = Instant::now();
    let response = post(&server, json!({ "content": "slow" })).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 200);
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert_eq!(server.created_note_count(), 1);
    // Without the fault the same request is fast.
    let started = Instant::now();
    post(&server, json!({ "content": "fast" })).await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(400));
}

#[tokio::test]
async fn invalid_json_fault_is_a_200_that_does_not_parse_but_saves_the_note() {
    let server = MockServer::start().await.unwrap();
    server.inject(Fault::InvalidJson, 1);
    let response = post(&server, json!({ "content": "x" })).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    // A 200 means the server acted: the note is there, as it would be behind a broken proxy.
    assert_eq!(server.created_note_count(), 1);
    assert_eq!(server.call(FIRST_CALL_ID).unwrap().notes.unwrap().len(), 3);
}

#[tokio::test]
async fn close_before_response_is_a_connection_error_and_saves_nothing() {
    let server = MockServer::start().await.unwrap();
    server.inject(Fault::CloseBeforeResponse, 1);
    let error = post(&server, json!({ "content": "x" })).await.unwrap_err();
    assert!(!error.is_timeout() && !error.is_status(), "{error:?}");
    assert_eq!(server.created_note_count(), 0);
    let log = server.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, None);
    assert_eq!(log[0].fault, Some(Fault::CloseBeforeResponse));
    // The server keeps serving.
    assert_eq!(
        post(&server, json!({ "content": "x" }))
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn save_then_drop_saves_exactly_one_note_and_sends_no_response() {
    let server = MockServer::start().await.unwrap();
    server.inject(Fault::SaveThenDrop, 1);
    let error = post(&server, json!({ "content": "lost answer" }))
        .await
        .unwrap_err();
    assert!(!error.is_timeout() && !error.is_status(), "{error:?}");
    let created = server.created_notes(FIRST_CALL_ID);
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].content.as_deref(), Some("lost answer"));
    assert_eq!(server.created_note_count(), 1);
    assert_eq!(server.requests()[0].status, None);
    // A client retrying now would add the same note a second time: the mock does not deduplicate.
    post(&server, json!({ "content": "lost answer" }))
        .await
        .unwrap();
    assert_eq!(server.created_notes(FIRST_CALL_ID).len(), 2);
}

/// The statuses of `count` sequential requests to a fresh server with one rate fault.
async fn statuses_with_rate(probability: f64, seed: u64, count: usize) -> Vec<u16> {
    let server = MockServer::start().await.unwrap();
    server.inject_rate(Fault::Status(503), probability, seed);
    let mut statuses = Vec::new();
    for _ in 0..count {
        statuses.push(
            post(&server, json!({ "content": "x" }))
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(server.created_note_count(), ok);
    statuses
}

#[tokio::test]
async fn rate_faults_are_deterministic_for_a_seed() {
    let first = statuses_with_rate(0.5, 42, 40).await;
    let again = statuses_with_rate(0.5, 42, 40).await;
    let other_seed = statuses_with_rate(0.5, 43, 40).await;
    assert_eq!(first, again);
    assert_ne!(first, other_seed);
    assert!(first.contains(&200) && first.contains(&503), "{first:?}");
    assert!(
        statuses_with_rate(0.0, 42, 10)
            .await
            .iter()
            .all(|s| *s == 200)
    );
    assert!(
        statuses_with_rate(1.0, 42, 10)
            .await
            .iter()
            .all(|s| *s == 503)
    );
}

#[tokio::test]
async fn the_request_log_keeps_requests_but_not_the_key() {
    let key = "sk_live_do_not_leak_0123";
    let server = MockServer::builder().api_key(key).start().await.unwrap();
    let body = json!({ "content": format!("my key is {key}") });
    client()
        .post(notes_url(&server, FIRST_CALL_ID))
        .bearer_auth(key)
        .header("x-echo", format!("again {key}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    client()
        .post(notes_url(&server, FIRST_CALL_ID))
        .header("authorization", "sk_live_wrong_key_9999")
        .json(&json!({ "content": "x" }))
        .send()
        .await
        .unwrap();
    let log = server.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].method, "POST");
    assert_eq!(log[0].path, format!("/api/v1/calls/{FIRST_CALL_ID}/notes"));
    assert_eq!(log[0].header("Authorization"), Some("Bearer [REDACTED]"));
    assert_eq!(log[0].header("x-echo"), Some("again [REDACTED]"));
    assert_eq!(log[0].header("content-type"), Some("application/json"));
    assert_eq!(log[0].body, r#"{"content":"my key is [REDACTED]"}"#);
    assert_eq!(log[0].status, Some(200));
    assert_eq!(log[1].header("authorization"), Some("[REDACTED]"));
    assert_eq!(log[1].status, Some(401));
    let everything = format!("{log:?} {server:?}");
    assert!(!everything.contains(key), "{everything}");
    assert!(!everything.contains("sk_live_wrong_key_9999"));
    assert_ne!(log[0].request_id, log[1].request_id);
}

#[tokio::test]
async fn the_request_log_can_be_turned_off() {
    let server = MockServer::builder()
        .record_requests(false)
        .start()
        .await
        .unwrap();
    server.inject(Fault::Status(502), 1);
    assert_eq!(
        post(&server, json!({ "content": "x" }))
            .await
            .unwrap()
            .status(),
        502
    );
    assert_eq!(
        post(&server, json!({ "content": "x" }))
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(server.requests().is_empty());
    assert_eq!(server.created_note_count(), 1);
}

#[tokio::test]
async fn request_ids_are_unique() {
    let server = MockServer::start().await.unwrap();
    let mut ids = HashSet::new();
    for _ in 0..20 {
        let response = post(&server, json!({ "content": "x" })).await.unwrap();
        ids.insert(
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(ids.len(), 20);
}

#[tokio::test]
async fn seeded_ids_are_the_same_on_every_start() {
    let a = MockServer::start().await.unwrap();
    let b = MockServer::start().await.unwrap();
    assert_ne!(a.addr(), b.addr());
    assert_eq!(a.call_ids(), b.call_ids());
    assert_eq!(a.call_ids().len(), 3);
    assert_eq!(a.call_ids()[0], FIRST_CALL_ID);
    assert!(a.call_ids().iter().all(|id| is_24_hex(id)));
    for id in a.call_ids() {
        assert_eq!(a.call(&id), b.call(&id));
        assert!(a.call(&id).is_some());
    }
    let many = MockServer::builder().seed_calls(10).start().await.unwrap();
    assert_eq!(many.call_ids().len(), 10);
    assert_eq!(many.call_ids()[..3], a.call_ids()[..]);
    assert_eq!(many.call_ids().iter().collect::<HashSet<_>>().len(), 10);
    assert!(many.call("ffffffffffffffffffffffff").is_none());
    assert!(a.base_url().starts_with("http://127.0.0.1:"));
    assert!(a.base_url().ends_with("/api/v1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_adds_leave_a_thousand_notes() {
    let server = std::sync::Arc::new(MockServer::start().await.unwrap());
    let seeded = server.call(FIRST_CALL_ID).unwrap().notes.unwrap().len();
    let started = Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|task| {
            let server = std::sync::Arc::clone(&server);
            tokio::spawn(async move {
                let client = client();
                for n in 0..20 {
                    let response = client
                        .post(notes_url(&server, FIRST_CALL_ID))
                        .bearer_auth(DEFAULT_API_KEY)
                        .json(&json!({ "content": format!("task {task} note {n}") }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    assert_eq!(server.created_note_count(), 1000);
    let created = server.created_notes(FIRST_CALL_ID);
    assert_eq!(created.len(), 1000);
    let notes = server.call(FIRST_CALL_ID).unwrap().notes.unwrap();
    assert_eq!(notes.len(), seeded + 1000);
    let ids: HashSet<_> = notes.iter().map(|n| n.id.clone().unwrap()).collect();
    assert_eq!(ids.len(), seeded + 1000);
    let contents: HashSet<_> = created.iter().map(|n| n.content.clone().unwrap()).collect();
    assert_eq!(contents.len(), 1000);
}

#[tokio::test]
async fn shutdown_releases_the_port() {
    let server = MockServer::start().await.unwrap();
    let addr = server.addr();
    assert_eq!(
        post(&server, json!({ "content": "x" }))
            .await
            .unwrap()
            .status(),
        200
    );
    server.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());

    let dropped = MockServer::start().await.unwrap();
    let addr = dropped.addr();
    drop(dropped);
    tokio::task::yield_now().await;
    // The port is free again, so it can be bound anew.
    let again = MockServer::builder()
        .port(addr.port())
        .start()
        .await
        .unwrap();
    assert_eq!(again.addr(), addr);
}

// ---- GET /calls/{id}, PATCH and DELETE /calls/{id}/notes/{noteId} ----

fn call_url(server: &MockServer, id: &str) -> String {
    format!("{}/calls/{id}", server.base_url())
}

fn note_url(server: &MockServer, call_id: &str, note_id: &str) -> String {
    format!("{}/calls/{call_id}/notes/{note_id}", server.base_url())
}

async fn get_call(server: &MockServer, id: &str) -> reqwest::Result<reqwest::Response> {
    client()
        .get(call_url(server, id))
        .bearer_auth(server.api_key())
        .send()
        .await
}

async fn patch(
    server: &MockServer,
    call_id: &str,
    note_id: &str,
    body: Value,
) -> reqwest::Result<reqwest::Response> {
    client()
        .patch(note_url(server, call_id, note_id))
        .bearer_auth(server.api_key())
        .json(&body)
        .send()
        .await
}

async fn delete(
    server: &MockServer,
    call_id: &str,
    note_id: &str,
) -> reqwest::Result<reqwest::Response> {
    client()
        .delete(note_url(server, call_id, note_id))
        .bearer_auth(server.api_key())
        .send()
        .await
}

/// The operation counts as `[get_call, add_note, update_note, delete_note]`.
fn counts(server: &MockServer) -> [usize; 4] {
    let c = server.operation_counts();
    [c.get_call, c.add_note, c.update_note, c.delete_note]
}

/// Checks a `200` answer: JSON, and the whole call as the mock holds it now, byte for byte the
/// same encoding as a `GET`.
async fn assert_call_answer(server: &MockServer, response: reqwest::Response, id: &str) -> Call {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    let call: Call = serde_json::from_str(&text).unwrap();
    assert_eq!(Some(&call), server.call(id).as_ref());
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        serde_json::to_value(server.call(id).unwrap()).unwrap()
    );
    call
}

/// Checks a `404` for a call that does not exist.
async fn assert_call_404(response: reqwest::Response) {
    let body = assert_error(response, 404, "Call not found").await;
    assert_eq!(body.error.as_deref(), Some(CALL_NOT_FOUND_ERROR));
}

/// Checks a `404` for a note that the call does not hold: not the call's `404`.
async fn assert_note_404(response: reqwest::Response) {
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "message": "Note not found", "error": NOTE_NOT_FOUND_ERROR, "statusCode": 404 })
    );
    assert_ne!(NOTE_NOT_FOUND_ERROR, CALL_NOT_FOUND_ERROR);
}

#[tokio::test]
async fn get_returns_the_call_as_stored_and_as_the_add_answers_it() {
    let server = MockServer::start().await.unwrap();
    for id in server.call_ids() {
        let response = get_call(&server, &id).await.unwrap();
        assert!(response.headers().contains_key("x-request-id"));
        let call = assert_call_answer(&server, response, &id).await;
        assert_eq!(call.id, id);
    }
    // After an add, the GET shows the note, in the same bytes as the add's answer.
    let added = post(&server, json!({ "content": "seen by GET" }))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let got = get_call(&server, FIRST_CALL_ID)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(added, got);
    let call: Call = serde_json::from_slice(&got).unwrap();
    assert_eq!(
        call.notes.unwrap().last().unwrap().content.as_deref(),
        Some("seen by GET")
    );

    assert_call_404(get_call(&server, "ffffffffffffffffffffffff").await.unwrap()).await;
    let short = get_call(&server, "65f1c0ffee").await.unwrap();
    assert_error(short, 400, "24 characters").await;
    let no_key = client()
        .get(call_url(&server, FIRST_CALL_ID))
        .send()
        .await
        .unwrap();
    assert_error(no_key, 401, "authorization").await;
    assert_eq!(server.operation_counts().get_call, 4);
    assert_eq!(server.operation_counts().add_note, 1);
}

#[tokio::test]
async fn update_changes_the_fields_sent_and_keeps_the_others() {
    let server = MockServer::start().await.unwrap();
    let before = server.notes(FIRST_CALL_ID);
    assert_eq!(before[0].id.as_deref(), Some(SEEDED_NOTE_ID));
    assert_eq!(before[0].flagged, Some(false));

    let response = patch(
        &server,
        FIRST_CALL_ID,
        SEEDED_NOTE_ID,
        json!({ "flagged": true }),
    )
    .await
    .unwrap();
    let call = assert_call_answer(&server, response, FIRST_CALL_ID).await;
    let notes = call.notes.unwrap();
    let mut expected = before.clone();
    expected[0].flagged = Some(true);
    assert_eq!(notes, expected);

    let response = patch(
        &server,
        FIRST_CALL_ID,
        SEEDED_NOTE_ID,
        json!({ "content": "Lumper receipt received.", "created_at": "2024-03-14T09:00:00-05:00" }),
    )
    .await
    .unwrap();
    let call = assert_call_answer(&server, response, FIRST_CALL_ID).await;
    expected[0].content = Some("Lumper receipt received.".to_string());
    expected[0].created_at = Some("2024-03-14T09:00:00-05:00".parse().unwrap());
    assert_eq!(call.notes.unwrap(), expected);
    // The same update again changes nothing more.
    let again = patch(
        &server,
        FIRST_CALL_ID,
        SEEDED_NOTE_ID,
        json!({ "content": "Lumper receipt received.", "created_at": "2024-03-14T09:00:00-05:00" }),
    )
    .await
    .unwrap();
    assert_eq!(
        assert_call_answer(&server, again, FIRST_CALL_ID)
            .await
            .notes
            .unwrap(),
        expected
    );
    // An empty body is a valid `NoteUpdate` and changes nothing.
    let empty = patch(&server, FIRST_CALL_ID, SEEDED_NOTE_ID, json!({}))
        .await
        .unwrap();
    assert_call_answer(&server, empty, FIRST_CALL_ID).await;
    assert_eq!(server.notes(FIRST_CALL_ID), expected);

    // Everything but the notes is untouched, adds are still on record as they were, and the
    // other calls did not change.
    let mut rest = server.call(FIRST_CALL_ID).unwrap();
    rest.notes = None;
    let mut seeded = MockServer::start()
        .await
        .unwrap()
        .call(FIRST_CALL_ID)
        .unwrap();
    seeded.notes = None;
    assert_eq!(rest, seeded);
    assert!(server.created_notes(FIRST_CALL_ID).is_empty());
    assert_eq!(server.operation_counts().update_note, 4);
}

#[tokio::test]
async fn an_added_note_can_be_updated_and_the_add_record_keeps_what_was_added() {
    let server = MockServer::start().await.unwrap();
    let call_id = &server.call_ids()[1];
    let response = client()
        .post(notes_url(&server, call_id))
        .bearer_auth(DEFAULT_API_KEY)
        .json(&json!({ "content": "first text" }))
        .send()
        .await
        .unwrap();
    let added: Call = response.json().await.unwrap();
    let note_id = added.notes.unwrap()[0].id.clone().unwrap();
    let response = patch(
        &server,
        call_id,
        &note_id,
        json!({ "content": "second text" }),
    )
    .await
    .unwrap();
    let call = assert_call_answer(&server, response, call_id).await;
    let note = &call.notes.unwrap()[0];
    assert_eq!(note.content.as_deref(), Some("second text"));
    assert_eq!(note.id.as_deref(), Some(note_id.as_str()));
    assert_eq!(note.user_id.as_deref(), Some(MOCK_USER_ID));
    assert_eq!(note.flagged, Some(false));
    assert_eq!(
        server.created_notes(call_id)[0].content.as_deref(),
        Some("first text")
    );
    assert_eq!(server.notes(call_id), vec![note.clone()]);
}

#[tokio::test]
async fn bad_updates_are_rejected_and_change_nothing() {
    let server = MockServer::start().await.unwrap();
    let before = server.call(FIRST_CALL_ID).unwrap();
    let url = note_url(&server, FIRST_CALL_ID, SEEDED_NOTE_ID);
    let cases: [(&str, &str); 11] = [
        ("", "body is required"),
        ("not json", "not valid JSON"),
        ("[]", "JSON object"),
        ("{\"content\": \"\"}", "must not be empty"),
        ("{\"content\": \" \\t\"}", "must not be empty"),
        ("{\"content\": null}", "`content` must be a string"),
        ("{\"content\": 3}", "`content` must be a string"),
        ("{\"flagged\": \"yes\"}", "`flagged` must be a boolean"),
        ("{\"flagged\": null}", "`flagged` must be a boolean"),
        ("{\"user_id\": 5}", "must be a string"),
        (
            "{\"created_at\": \"soon\"}",
            "`created_at` must be an RFC 3339",
        ),
    ];
    for (body, needle) in cases {
        let response = client()
            .patch(&url)
            .bearer_auth(DEFAULT_API_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_error(response, 400, needle).await;
    }
    let text = client()
        .patch(&url)
        .bearer_auth(DEFAULT_API_KEY)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(text, 415, "application/json").await;
    let small = MockServer::builder()
        .max_body_bytes(16)
        .start()
        .await
        .unwrap();
    let big = patch(
        &small,
        FIRST_CALL_ID,
        SEEDED_NOTE_ID,
        json!({ "content": "far more than sixteen bytes" }),
    )
    .await
    .unwrap();
    assert_error(big, 413, "too large").await;
    assert_eq!(server.call(FIRST_CALL_ID).unwrap(), before);
    assert_eq!(server.operation_counts(), OperationCounts::default());
}

#[tokio::test]
async fn delete_removes_the_note_and_a_repeated_delete_is_a_note_404() {
    let server = MockServer::start().await.unwrap();
    let before = server.notes(FIRST_CALL_ID);
    let response = delete(&server, FIRST_CALL_ID, SEEDED_NOTE_ID)
        .await
        .unwrap();
    let call = assert_call_answer(&server, response, FIRST_CALL_ID).await;
    assert_eq!(call.notes.unwrap(), before[1..].to_vec());
    assert_eq!(server.deleted_notes(FIRST_CALL_ID), before[..1].to_vec());

    // Already gone: a 404 that names the note, not the call.
    assert_note_404(
        delete(&server, FIRST_CALL_ID, SEEDED_NOTE_ID)
            .await
            .unwrap(),
    )
    .await;
    assert_note_404(
        patch(
            &server,
            FIRST_CALL_ID,
            SEEDED_NOTE_ID,
            json!({ "flagged": true }),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(server.notes(FIRST_CALL_ID), before[1..].to_vec());

    // The last note goes too, and the call keeps an empty list.
    let response = delete(&server, FIRST_CALL_ID, SECOND_SEEDED_NOTE_ID)
        .await
        .unwrap();
    let call = assert_call_answer(&server, response, FIRST_CALL_ID).await;
    assert_eq!(call.notes, Some(Vec::new()));
    assert_eq!(server.deleted_notes(FIRST_CALL_ID), before);
    assert_eq!(counts(&server), [0, 0, 0, 2]);
    // A note added afterwards encodes cleanly into the emptied list.
    let response = post(&server, json!({ "content": "after the deletes" }))
        .await
        .unwrap();
    let call = assert_call_answer(&server, response, FIRST_CALL_ID).await;
    assert_eq!(call.notes.unwrap().len(), 1);
}

#[tokio::test]
async fn an_unknown_call_and_an_unknown_note_are_told_apart() {
    let server = MockServer::start().await.unwrap();
    let nowhere = "ffffffffffffffffffffffff";
    assert_call_404(delete(&server, nowhere, SEEDED_NOTE_ID).await.unwrap()).await;
    assert_call_404(
        patch(&server, nowhere, SEEDED_NOTE_ID, json!({ "flagged": true }))
            .await
            .unwrap(),
    )
    .await;
    // A note of another call is not on this one.
    let other = &server.call_ids()[2];
    assert_note_404(delete(&server, other, SEEDED_NOTE_ID).await.unwrap()).await;
    assert_note_404(
        delete(&server, FIRST_CALL_ID, "no-such-note")
            .await
            .unwrap(),
    )
    .await;
    assert_note_404(
        patch(
            &server,
            FIRST_CALL_ID,
            "no-such-note",
            json!({ "flagged": true }),
        )
        .await
        .unwrap(),
    )
    .await;
    // The call id is checked first, as for the add.
    let short = delete(&server, "short", SEEDED_NOTE_ID).await.unwrap();
    assert_error(short, 400, "24 characters").await;
    assert_eq!(server.notes(FIRST_CALL_ID).len(), 2);
    assert!(server.deleted_notes(other).is_empty());
}

#[tokio::test]
async fn note_ids_in_the_path_are_percent_decoded() {
    let server = MockServer::start().await.unwrap();
    post(&server, json!({ "content": "odd id", "id": "note 1/ä" }))
        .await
        .unwrap();
    let response = patch(
        &server,
        FIRST_CALL_ID,
        "note%201%2F%C3%A4",
        json!({ "flagged": true }),
    )
    .await
    .unwrap();
    let call = assert_call_answer(&server, response, FIRST_CALL_ID).await;
    assert_eq!(call.notes.unwrap()[2].flagged, Some(true));
    let bad_utf8 = delete(&server, FIRST_CALL_ID, "%ff").await.unwrap();
    assert_error(bad_utf8, 400, "UTF-8").await;
    let response = delete(&server, FIRST_CALL_ID, "note%201%2F%C3%A4")
        .await
        .unwrap();
    assert_call_answer(&server, response, FIRST_CALL_ID).await;
    assert_eq!(server.notes(FIRST_CALL_ID).len(), 2);
}

#[tokio::test]
async fn client_note_ids_are_kept_by_default_and_ignored_when_asked() {
    let body = json!({ "content": "mine", "id": "65f1c11e0000000000000001" });
    let keeping = MockServer::start().await.unwrap();
    post(&keeping, body.clone()).await.unwrap();
    assert_eq!(
        keeping.created_notes(FIRST_CALL_ID)[0].id.as_deref(),
        Some("65f1c11e0000000000000001")
    );
    // An update that sends an id gives the note that id.
    let response = patch(
        &keeping,
        FIRST_CALL_ID,
        "65f1c11e0000000000000001",
        json!({ "id": "65f1c11e0000000000000002" }),
    )
    .await
    .unwrap();
    assert_call_answer(&keeping, response, FIRST_CALL_ID).await;
    assert_eq!(
        keeping.notes(FIRST_CALL_ID)[2].id.as_deref(),
        Some("65f1c11e0000000000000002")
    );

    let ignoring = MockServer::builder()
        .ignore_client_note_ids(true)
        .start()
        .await
        .unwrap();
    let call: Call = post(&ignoring, body.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let note = call.notes.unwrap().pop().unwrap();
    let id = note.id.unwrap();
    assert_ne!(id, "65f1c11e0000000000000001");
    assert!(is_24_hex(&id), "{id}");
    assert_eq!(
        ignoring.created_notes(FIRST_CALL_ID)[0].id.as_deref(),
        Some(id.as_str())
    );
    assert_note_404(
        delete(&ignoring, FIRST_CALL_ID, "65f1c11e0000000000000001")
            .await
            .unwrap(),
    )
    .await;
    // An update's id is ignored too; the other fields still apply.
    let response = patch(
        &ignoring,
        FIRST_CALL_ID,
        &id,
        json!({ "id": "65f1c11e0000000000000002", "flagged": true }),
    )
    .await
    .unwrap();
    let call = assert_call_answer(&ignoring, response, FIRST_CALL_ID).await;
    let note = call.notes.unwrap().pop().unwrap();
    assert_eq!(note.id.as_deref(), Some(id.as_str()));
    assert_eq!(note.flagged, Some(true));

    // The command line's switch does the same.
    #[cfg(feature = "cli")]
    {
        let args = <happyrobot_mock::cli::Args as clap::Parser>::try_parse_from([
            "happyrobot-mock",
            "--ignore-client-note-ids",
        ])
        .unwrap();
        let from_cli = args.start_server().await.unwrap();
        post(&from_cli, body.clone()).await.unwrap();
        assert_ne!(
            from_cli.created_notes(FIRST_CALL_ID)[0].id.as_deref(),
            Some("65f1c11e0000000000000001")
        );
        let args =
            <happyrobot_mock::cli::Args as clap::Parser>::try_parse_from(["happyrobot-mock"])
                .unwrap();
        let from_cli = args.start_server().await.unwrap();
        post(&from_cli, body).await.unwrap();
        assert_eq!(
            from_cli.created_notes(FIRST_CALL_ID)[0].id.as_deref(),
            Some("65f1c11e0000000000000001")
        );
    }
}

#[tokio::test]
async fn faults_apply_to_get_update_and_delete() {
    let server = MockServer::start().await.unwrap();
    let seeded = server.call(FIRST_CALL_ID).unwrap();

    // Status and rate-limit faults answer for every operation and change nothing.
    server.inject(Fault::Status(503), 3);
    server.inject(
        Fault::RateLimited {
            retry_after_secs: 4,
        },
        1,
    );
    assert_error(
        get_call(&server, FIRST_CALL_ID).await.unwrap(),
        503,
        "Injected",
    )
    .await;
    let r = patch(
        &server,
        FIRST_CALL_ID,
        SEEDED_NOTE_ID,
        json!({ "flagged": true }),
    )
    .await
    .unwrap();
    assert_error(r, 503, "Injected").await;
    let r = delete(&server, FIRST_CALL_ID, SEEDED_NOTE_ID)
        .await
        .unwrap();
    assert_error(r, 503, "Injected").await;
    let r = delete(&server, FIRST_CALL_ID, SEEDED_NOTE_ID)
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "4");
    assert_error(r, 429, "Rate limit").await;
    assert_eq!(server.call(FIRST_CALL_ID).unwrap(), seeded);

    // Invalid JSON on a read changes nothing; a closed connection changes nothing either. (On a
    // change, invalid JSON follows the change: see the PATCH below, after the counts.)
    server.inject(Fault::InvalidJson, 1);
    let r = get_call(&server, FIRST_CALL_ID).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());
    server.inject(Fault::CloseBeforeResponse, 2);
    assert!(
        delete(&server, FIRST_CALL_ID, SEEDED_NOTE_ID)
            .await
            .is_err()
    );
    assert!(
        patch(
            &server,
            FIRST_CALL_ID,
            SEEDED_NOTE_ID,
            json!({ "flagged": true })
        )
        .await
        .is_err()
    );
    assert_eq!(server.call(FIRST_CALL_ID).unwrap(), seeded);
    assert_eq!(server.operation_counts().update_note, 0);
    assert_eq!(server.operation_counts().delete_note, 0);

    // Invalid JSON after a change: the change is made, and its 200 answer does not parse.
    server.inject(Fault::InvalidJson, 1);
    let r = patch(
        &server,
        FIRST_CALL_ID,
        SEEDED_NOTE_ID,
        json!({ "flagged": false }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_err());
    assert_eq!(server.operation_counts().update_note, 1);

    // Save-then-drop carries the update and the delete out, and loses the answers.
    server.inject(Fault::SaveThenDrop, 3);
    assert!(
        patch(
            &server,
            FIRST_CALL_ID,
            SEEDED_NOTE_ID,
            json!({ "flagged": true })
        )
        .await
        .is_err()
    );
    assert_eq!(server.notes(FIRST_CALL_ID)[0].flagged, Some(true));
    assert!(
        delete(&server, FIRST_CALL_ID, SEEDED_NOTE_ID)
            .await
            .is_err()
    );
    assert_eq!(server.notes(FIRST_CALL_ID).len(), 1);
    assert_eq!(server.deleted_notes(FIRST_CALL_ID).len(), 1);
    assert!(get_call(&server, FIRST_CALL_ID).await.is_err());
    // The client retrying the delete finds the note gone, which the 404 says.
    assert_note_404(
        delete(&server, FIRST_CALL_ID, SEEDED_NOTE_ID)
            .await
            .unwrap(),
    )
    .await;
    // The read and the update behind the invalid JSON count too.
    assert_eq!(counts(&server), [2, 0, 2, 1]);

    // A delay answers normally, later.
    server.inject(Fault::Delay(Duration::from_millis(300)), 1);
    let started = Instant::now();
    let r = get_call(&server, FIRST_CALL_ID).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_call_answer(&server, r, FIRST_CALL_ID).await;

    let faults: Vec<(String, Option<Fault>)> = server
        .requests()
        .into_iter()
        .map(|r| (r.method, r.fault))
        .collect();
    assert_eq!(faults[0], ("GET".to_string(), Some(Fault::Status(503))));
    assert_eq!(faults[2].0, "DELETE");
    assert_eq!(
        faults.last().unwrap().1,
        Some(Fault::Delay(Duration::from_millis(300)))
    );
}

#[tokio::test]
async fn checks_run_in_the_documented_order_for_updates() {
    let server = MockServer::start().await.unwrap();
    let c = client();
    // Method before auth.
    let r = c.get(note_url(&server, "short", "n")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // Auth before id.
    let r = c
        .patch(note_url(&server, "short", "n"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Id before body.
    let r = c
        .patch(note_url(&server, "short", "n"))
        .bearer_auth(DEFAULT_API_KEY)
        .body("junk")
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "24 characters").await;
    // Body before the call's and the note's existence.
    for (call, note) in [("ffffffffffffffffffffffff", "n"), (FIRST_CALL_ID, "n")] {
        let r = c
            .patch(note_url(&server, call, note))
            .bearer_auth(DEFAULT_API_KEY)
            .body("junk")
            .send()
            .await
            .unwrap();
        assert_error(r, 400, "not valid JSON").await;
    }
    // A delete has no body to check: whatever is sent is ignored.
    let r = c
        .delete(note_url(&server, FIRST_CALL_ID, SEEDED_NOTE_ID))
        .bearer_auth(DEFAULT_API_KEY)
        .body("junk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_updates_and_deletes_lose_nothing() {
    let server = std::sync::Arc::new(MockServer::start().await.unwrap());
    let seeded = server.notes(FIRST_CALL_ID);
    // Each task adds notes with ids of its own, flags every one, and deletes every other one,
    // while the other tasks do the same on the same call.
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let server = std::sync::Arc::clone(&server);
            tokio::spawn(async move {
                // One client per task, so that its connection is reused.
                let client = client();
                let send =
                    |request: reqwest::RequestBuilder| request.bearer_auth(DEFAULT_API_KEY).send();
                for n in 0..25 {
                    let id = format!("65f1c0c0{task:08x}{n:08x}");
                    let r = send(
                        client
                            .post(notes_url(&server, FIRST_CALL_ID))
                            .json(&json!({ "content": format!("{task}/{n}"), "id": id })),
                    )
                    .await
                    .unwrap();
                    assert_eq!(r.status(), 200);
                    let url = note_url(&server, FIRST_CALL_ID, &id);
                    let r = send(client.patch(&url).json(&json!({ "flagged": true })))
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    if n % 2 == 0 {
                        let r = send(client.delete(&url)).await.unwrap();
                        assert_eq!(r.status(), 200);
                        // Every answer is whole JSON, however the notes around it moved.
                        let call: Call = r.json().await.unwrap();
                        assert!(
                            call.notes
                                .unwrap()
                                .iter()
                                .all(|n| n.id.as_deref() != Some(&id))
                        );
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let notes = server.notes(FIRST_CALL_ID);
    assert_eq!(notes.len(), seeded.len() + 16 * 12);
    assert_eq!(notes[..2], seeded[..]);
    let kept: HashSet<String> = notes[2..].iter().map(|n| n.id.clone().unwrap()).collect();
    let expected: HashSet<String> = (0..16)
        .flat_map(|task| {
            (0..25)
                .filter(|n| n % 2 == 1)
                .map(move |n| format!("65f1c0c0{task:08x}{n:08x}"))
        })
        .collect();
    assert_eq!(kept, expected);
    assert!(notes[2..].iter().all(|n| n.flagged == Some(true)));
    assert_eq!(server.deleted_notes(FIRST_CALL_ID).len(), 16 * 13);
    assert_eq!(server.created_note_count(), 400);
    assert_eq!(counts(&server), [0, 400, 400, 208]);
    // The encoded call agrees with the stored one after all that splicing.
    let response = get_call(&server, FIRST_CALL_ID).await.unwrap();
    assert_call_answer(&server, response, FIRST_CALL_ID).await;
}
