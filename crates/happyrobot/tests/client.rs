//! The client against real HTTP servers on 127.0.0.1: what it sends, how it maps every failure, which
//! failures it retries, and that the key and note text stay out of errors and logs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

mod support;

use std::time::{Duration, Instant};

use happyrobot::types::Call;
use happyrobot::{
    CallId, Client, Error, ErrorKind, NewNote, NoteId, Outcome, Response, RetryPolicy, StatusCode,
};
use support::{CALL_ID, KEY, Reply, TestServer, call_json};

fn client(server: &TestServer) -> Client {
    client_with(server, RetryPolicy::default())
}

fn client_with(server: &TestServer, retry: RetryPolicy) -> Client {
    Client::builder()
        .api_key(KEY)
        .base_url(&server.base_url)
        .retry(retry)
        .build()
        .unwrap()
}

/// Retries without waiting long, so that the tests stay fast.
fn fast_retries() -> RetryPolicy {
    RetryPolicy::default()
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
}

/// A 2 MiB answer, against [`capped_client`]'s 64 KiB cap.
fn big_body() -> String {
    format!(
        r#"{{"id":"{CALL_ID}","padding":"{}"}}"#,
        "x".repeat(2 * 1024 * 1024)
    )
}

fn capped_client(server: &TestServer) -> Client {
    Client::builder()
        .api_key(KEY)
        .base_url(&server.base_url)
        .max_response_bytes(64 * 1024)
        .build()
        .unwrap()
}

fn id() -> CallId {
    CALL_ID.parse().unwrap()
}

async fn add(client: &Client) -> Result<Response<Call>, Error> {
    client
        .add_note(&id(), NewNote::new("Driver confirmed pickup").flagged(true))
        .await
}

#[tokio::test]
async fn sends_the_documented_request_and_returns_the_call() {
    let server = TestServer::start(|_, _| Reply::json(200, &call_json())).await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(format!("{}/", server.base_url))
        .user_agent("dispatch-bot/2.1")
        .build()
        .unwrap();
    let call = add(&client).await.unwrap();
    assert_eq!(call.id, CALL_ID);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/api/v1/calls/{CALL_ID}/notes"));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert_eq!(
        r.header("user-agent"),
        Some(
            format!(
                "happyrobot-rust/{} dispatch-bot/2.1",
                env!("CARGO_PKG_VERSION")
            )
            .as_str()
        )
    );
    assert_eq!(
        r.header("api-version"),
        None,
        "progenitor's api-version header is not sent"
    );
    let mut body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    // Every note goes out with a client-generated ID, so that it can be found again.
    let note_id = body["id"].take();
    let note_id = note_id.as_str().unwrap();
    assert!(
        note_id.len() == 24 && note_id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{note_id}"
    );
    assert_eq!(
        body,
        serde_json::json!({"id": null, "content": "Driver confirmed pickup", "flagged": true})
    );
}

#[tokio::test]
async fn client_note_ids_can_be_turned_off_and_a_callers_id_is_kept() {
    let server = TestServer::start(|_, _| Reply::json(200, &call_json())).await;
    let plain = Client::builder()
        .api_key(KEY)
        .base_url(&server.base_url)
        .client_note_ids(false)
        .build()
        .unwrap();
    add(&plain).await.unwrap();
    client(&server)
        .add_note(&id(), NewNote::new("x").id("mine"))
        .await
        .unwrap();
    let bodies: Vec<serde_json::Value> = server
        .requests()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert!(bodies[0].get("id").is_none(), "{}", bodies[0]);
    assert_eq!(bodies[1]["id"], "mine");
}

#[tokio::test]
async fn a_success_carries_status_request_id_and_the_body_as_sent() {
    let body = call_json();
    let sent = body.clone();
    let server = TestServer::start(move |_, _| {
        Reply::json(200, &sent).with_header("x-request-id", "req-77")
    })
    .await;
    let response = add(&client(&server)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.request_id(), Some("req-77"));
    assert_eq!(response.raw_body(), body.as_bytes());
    let whole: serde_json::Value = response.json().unwrap();
    assert_eq!(
        whole,
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    );
    assert_eq!(response.into_inner().id, CALL_ID);
}

/// Every drift fixture: the client decodes it, and the body it keeps is the fixture byte for byte.
#[tokio::test]
async fn every_drift_fixture_decodes_through_the_client_and_is_kept_whole() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let body = std::fs::read(format!("{dir}/{name}")).unwrap();
        let sent = body.clone();
        let server = TestServer::start(move |_, _| Reply::Respond {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: sent.clone(),
        })
        .await;
        let response = add(&client(&server))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(response.raw_body(), &body[..], "{name}");
    }
}

#[tokio::test]
async fn clones_share_one_connection_pool() {
    let server = TestServer::start(|_, _| Reply::json(200, &call_json())).await;
    let client = client(&server);
    let clone = client.clone();
    add(&client).await.unwrap();
    add(&clone).await.unwrap();
    add(&client).await.unwrap();
    // One kept-alive TCP connection carried all three requests.
    let connections: Vec<usize> = server.requests().iter().map(|r| r.connection).collect();
    assert_eq!(connections, [0, 0, 0]);
}

#[tokio::test]
async fn invalid_input_sends_nothing() {
    let server = TestServer::start(|_, _| Reply::json(200, &call_json())).await;
    let client = client(&server);
    for content in ["", "   ", "\n"] {
        let err = client
            .add_note(&id(), NewNote::new(content))
            .await
            .unwrap_err();
        assert!(err.is_invalid_input(), "{err}");
        assert!(!err.is_retryable());
    }
    for bad in [
        "../../../../../../../../x",
        "65f1c0ffee0123%2F789abcd",
        "65f1c0ffee0123456789abc/",
        "",
    ] {
        assert!(bad.parse::<CallId>().is_err(), "{bad:?}");
    }
    assert_eq!(server.count(), 0);
}

#[tokio::test]
async fn a_404_is_about_the_call_only_when_the_api_itself_says_so() {
    let server = TestServer::start(|i, _| match i {
        0 => Reply::Respond {
            status: 404,
            headers: vec![("content-type".into(), "text/html".into())],
            body: b"<html><body>404 Not Found</body></html>".to_vec(),
        },
        1 => Reply::json(404, r#"{"message":"Note not found","statusCode":404}"#),
        _ => Reply::json(
            404,
            r#"{"message":"Cannot DELETE /api/v1/calls/65f1c0ffee0123456789abcd/notes/n-1","error":"Not Found","statusCode":404}"#,
        ),
    })
    .await;
    let client = client(&server);
    let note = NoteId::new("n-1").unwrap();
    // A gateway's page: a 404, but nothing says the call is gone.
    let err = client.delete_note(&id(), &note).await.unwrap_err();
    assert!(err.is_not_found() && !err.is_call_not_found(), "{err}");
    // The API's, about the note.
    let err = client.delete_note(&id(), &note).await.unwrap_err();
    assert!(err.is_note_not_found() && !err.is_call_not_found(), "{err}");
    // A server without the route, quoting the path: nothing about the note.
    let err = client.delete_note(&id(), &note).await.unwrap_err();
    assert!(err.is_not_found() && !err.is_note_not_found(), "{err}");
}

#[tokio::test]
async fn api_errors_carry_status_message_and_request_id() {
    let server = TestServer::start(|i, _| match i {
        0 => Reply::json(401, r#"{"message":"Invalid API key","statusCode":401}"#)
            .with_header("x-request-id", "req-123"),
        1 => Reply::json(404, r#"{"error":"Not Found"}"#),
        2 => Reply::Respond {
            status: 400,
            headers: vec![("content-type".into(), "text/html".into())],
            body: b"<html>\n<body>Bad   request from edge-7 BODYTEXT</body></html>".to_vec(),
        },
        3 => Reply::Respond {
            status: 403,
            headers: vec![],
            body: vec![],
        },
        _ => Reply::json(422, r#"["not", "an", "object"]"#),
    })
    .await;
    let client = client(&server);

    let err = add(&client).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    assert!(err.is_unauthorized() && !err.is_retryable() && !err.outcome_unknown());
    assert_eq!(err.request_id(), Some("req-123"));
    let text = err.to_string();
    assert!(
        text.contains("Invalid API key")
            && text.contains("HAPPYROBOT_API_KEY")
            && text.contains("req-123"),
        "{text}"
    );

    let err = add(&client).await.unwrap_err();
    assert!(err.is_not_found() && err.is_call_not_found(), "{err}");
    assert!(err.to_string().contains("Not Found"), "{err}");

    let err = add(&client).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(StatusCode::BAD_REQUEST),
        "a non-JSON error body keeps its status"
    );
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("BODYTEXT") && !shown.contains("html") && !shown.contains("edge-7"),
        "no part of a non-JSON body is shown: {shown}"
    );
    assert!(err.to_string().contains("Bad Request"), "{err}");
    // Without the API's JSON, the message says that something in front of the API answered.
    assert!(
        err.to_string().starts_with(&format!(
            "the server at {} answered 400 Bad Request",
            server
                .base_url
                .trim_start_matches("http://")
                .trim_end_matches("/api/v1")
        )) && err.to_string().contains("not the API itself"),
        "{err}"
    );

    let err = add(&client).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    assert!(
        err.to_string().contains("Forbidden"),
        "an empty body falls back to the reason phrase: {err}"
    );

    let err = add(&client).await.unwrap_err();
    assert_eq!(
        err.status(),
        Some(StatusCode::UNPROCESSABLE_ENTITY),
        "{err}"
    );
    assert_eq!(server.count(), 5, "no client error is retried");
}

#[tokio::test]
async fn a_500_on_post_is_sent_exactly_once_by_default() {
    for status in [500u16, 502, 503, 504] {
        let server =
            TestServer::start(move |_, _| Reply::json(status, r#"{"message":"boom"}"#)).await;
        let err = add(&client_with(&server, fast_retries()))
            .await
            .unwrap_err();
        assert_eq!(server.count(), 1, "{status} must not be retried by default");
        assert!(err.outcome_unknown(), "{status}: {err}");
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("may have been added"), "{err}");
    }
}

#[tokio::test]
async fn opt_in_policy_retries_5xx() {
    let server = TestServer::start(|i, _| {
        if i < 2 {
            Reply::json(503, "{}")
        } else {
            Reply::json(200, &call_json())
        }
    })
    .await;
    let policy = RetryPolicy::retry_outcome_unknown().base_delay(Duration::from_millis(5));
    add(&client_with(&server, policy)).await.unwrap();
    assert_eq!(server.count(), 3);
}

#[tokio::test]
async fn a_429_with_retry_after_1_is_retried_after_about_a_second() {
    let server = TestServer::start(|i, _| {
        if i == 0 {
            Reply::json(429, r#"{"message":"slow down"}"#).with_header("retry-after", "1")
        } else {
            Reply::json(200, &call_json())
        }
    })
    .await;
    add(&client(&server)).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_429_with_an_http_date_retry_after_is_honoured() {
    let server = TestServer::start(|i, _| {
        if i == 0 {
            let when = std::time::SystemTime::now() + Duration::from_secs(2);
            Reply::json(429, "{}").with_header("retry-after", &httpdate::fmt_http_date(when))
        } else {
            Reply::json(200, &call_json())
        }
    })
    .await;
    add(&client(&server)).await.unwrap();
    let requests = server.requests();
    let waited = requests[1].at - requests[0].at;
    // HTTP dates have whole seconds, so the wait is between 1 and 2 seconds.
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[tokio::test]
async fn a_long_retry_after_fails_fast() {
    let server =
        TestServer::start(|_, _| Reply::json(429, "{}").with_header("retry-after", "120")).await;
    let started = Instant::now();
    let err = add(&client(&server)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(server.count(), 1);
    assert!(err.is_rate_limited() && !err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(120)));
    assert!(err.to_string().contains("120 s"), "{err}");
}

#[tokio::test]
async fn repeated_429s_are_retried_until_the_deadline_or_the_policys_cap() {
    // A rate limit slows a call down: it is retried (paced) as long as the deadline allows. (A
    // server that refuses everything grants nothing to measure: the pace starts at one request
    // a second and slows with every refusal, so the deadline leaves room for a few.)
    let server = TestServer::start(|_, _| Reply::json(429, "{}")).await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&server.base_url)
        .retry(fast_retries())
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = add(&client).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the deadline holds"
    );
    assert!(
        server.count() > 3,
        "more than max_retries: {}",
        server.count()
    );
    assert!(err.is_rate_limited() && err.is_retryable());
    assert!(err.to_string().contains("deadline"), "{err}");
    assert_eq!(client.rate_stats().throttled, server.count() as u64);

    let server = TestServer::start(|_, _| Reply::json(429, "{}")).await;
    let capped = fast_retries().max_rate_limited_retries(2);
    add(&client_with(&server, capped)).await.unwrap_err();
    assert_eq!(server.count(), 3, "the first try and two retries");

    let server = TestServer::start(|_, _| Reply::json(429, "{}")).await;
    add(&client_with(&server, RetryPolicy::none()))
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1, "retrying can be turned off");
}

fn closed_port() -> u16 {
    // Bind then drop a listener: its port is now closed.
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn connection_refused_is_retried_and_reported_as_not_sent() {
    let port = closed_port();
    let client = Client::builder()
        .api_key(KEY)
        .base_url(format!("http://127.0.0.1:{port}/api/v1"))
        .retry(fast_retries())
        .build()
        .unwrap();
    let err = add(&client).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
    assert_eq!(err.outcome(), Outcome::NotApplied);
    assert!(err.is_retryable() && !err.outcome_unknown());
    assert!(err.to_string().contains("Nothing was sent"), "{err}");

    // The retry really happens: a server that comes up on that port after the first, refused
    // attempt gets the note, once.
    let port = closed_port();
    let client = Client::builder()
        .api_key(KEY)
        .base_url(format!("http://127.0.0.1:{port}/api/v1"))
        .retry(
            RetryPolicy::default()
                .base_delay(Duration::from_millis(400))
                .max_delay(Duration::from_millis(400))
                .max_retries(8),
        )
        .build()
        .unwrap();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(150)).await;
        TestServer::start_on(port, |_, _| Reply::json(200, &call_json())).await
    });
    let response = add(&client).await.unwrap();
    let server = later.await.unwrap();
    assert_eq!(response.id, CALL_ID);
    assert_eq!(server.count(), 1, "sent once, after the refused attempt");
}

#[tokio::test]
async fn a_connection_closed_after_sending_is_not_retried() {
    let server = TestServer::start(|_, _| Reply::Close).await;
    let err = add(&client_with(&server, fast_retries()))
        .await
        .unwrap_err();
    assert_eq!(
        server.count(),
        1,
        "the server may have added the note: no retry"
    );
    assert!(err.outcome_unknown(), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_timeout_after_sending_is_not_retried() {
    let server = TestServer::start(|_, _| Reply::Hang).await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&server.base_url)
        .timeout(Duration::from_millis(300))
        .retry(fast_retries())
        .build()
        .unwrap();
    let started = Instant::now();
    let err = add(&client).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(server.count(), 1);
    assert!(err.is_timeout() && err.outcome_unknown(), "{err:?}");
    assert!(!err.is_retryable());
}

// `ClientBuilder::http_client` needs the feature (the crate's dev-dependency on itself turns it on).
#[cfg(feature = "reqwest-client")]
#[tokio::test]
async fn the_timeout_also_applies_to_a_caller_supplied_reqwest_client() {
    let server = TestServer::start(|_, _| Reply::Hang).await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&server.base_url)
        .http_client(reqwest::Client::new())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = add(&client).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
}

#[tokio::test]
async fn a_body_over_the_cap_is_an_error_not_an_allocation() {
    let big = big_body();
    let server = TestServer::start(move |_, _| Reply::json(200, &big)).await;
    let client = capped_client(&server);
    let err = add(&client).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AnswerUnreadable, "{err:?}");
    assert!(err.to_string().contains("65536"), "{err}");
    assert!(err.note_was_added(), "a 200 means the note was added");
    assert_eq!(server.count(), 1);
}

/// Memory stays bounded: against a 256 MiB streamed answer, the client stops reading at its cap,
/// so the server manages to write only a small part of it.
#[tokio::test]
async fn a_huge_streamed_answer_is_not_read_past_the_cap() {
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = written.clone();
    let server = TestServer::start(move |_, _| Reply::Stream {
        chunk_size: 64 * 1024,
        chunks: 4096,
        written: counter.clone(),
    })
    .await;
    let err = add(&capped_client(&server)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AnswerUnreadable, "{err:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let total = 64 * 1024 * 4096;
    let sent = written.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        sent < total / 8,
        "the server wrote {sent} of {total} bytes: the client read on past its cap"
    );
}

#[tokio::test]
async fn a_chunked_body_over_the_cap_is_cut_off_too() {
    let big = big_body();
    let server = TestServer::start(move |_, _| Reply::Chunked {
        status: 200,
        body: big.clone().into_bytes(),
    })
    .await;
    let client = capped_client(&server);
    let err = add(&client).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AnswerUnreadable, "{err:?}");
    assert!(err.to_string().contains("65536"), "{err}");

    // A chunked body within the cap decodes as usual.
    let call = call_json();
    let server = TestServer::start(move |_, _| Reply::Chunked {
        status: 200,
        body: call.clone().into_bytes(),
    })
    .await;
    add(&client_with(&server, RetryPolicy::none()))
        .await
        .unwrap();
}

#[tokio::test]
async fn an_undecodable_success_says_the_note_was_added_and_hides_the_body() {
    let mut call: serde_json::Value = serde_json::from_str(&call_json()).unwrap();
    call["notes"][0]["flagged"] = serde_json::json!("CUSTOMER-SECRET-NOTE");
    let body = call.to_string();
    let server =
        TestServer::start(move |_, _| Reply::json(200, &body).with_header("x-request-id", "req-9"))
            .await;
    let err = add(&client_with(&server, RetryPolicy::retry_outcome_unknown()))
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1, "never retried");
    assert!(err.note_was_added());
    assert_eq!(err.kind(), ErrorKind::AnswerUnreadable);
    assert_eq!(
        err.request_id(),
        Some("req-9"),
        "the decode error keeps the request ID"
    );
    assert!(err.to_string().contains("`notes[0].flagged`"), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("CUSTOMER-SECRET-NOTE"), "{shown}");
    assert!(shown.contains("The note was added"), "{shown}");
    assert!(String::from_utf8_lossy(err.raw_body().unwrap()).contains("CUSTOMER-SECRET-NOTE"));
}

#[tokio::test]
async fn a_success_status_the_spec_does_not_list_still_returns_the_call() {
    let server = TestServer::start(|_, _| Reply::json(201, &call_json())).await;
    let call = add(&client(&server)).await.unwrap();
    assert_eq!(call.id, CALL_ID);
}

#[tokio::test]
async fn the_add_note_future_can_be_spawned() {
    let server = TestServer::start(|_, _| Reply::json(200, &call_json())).await;
    let client = client(&server);
    let handle = tokio::spawn(async move { add(&client).await });
    handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn transport_errors_name_their_cause() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = Client::builder()
        .api_key(KEY)
        .base_url(format!("http://127.0.0.1:{port}/api/v1"))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = add(&client).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
}

/// A server that asks for a wait of seconds (`Retry-After: 2`, a token every two seconds) gets no
/// request before then from any of the client's tasks: one refusal holds them all, and the pace
/// after it is a request per that wait. Before, each task went on at the pace and met a refusal
/// of its own (6 refusals for 6 notes, 16 s); holding alone left 4 (12 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_of_seconds_holds_every_task_of_the_client() {
    use happyrobot_mock::{MockServer, RateLimit};
    let server = MockServer::builder()
        .rate_limit(RateLimit::per_second(0.5))
        .start()
        .await
        .unwrap();
    let client = Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .build()
        .unwrap();
    let call: happyrobot::CallId = server.call_ids()[0].parse().unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|n| {
            let (client, call) = (client.clone(), call.clone());
            tokio::spawn(async move {
                client
                    .add_note(&call, happyrobot::NewNote::new(format!("held {n}")))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // Six notes at a token every two seconds (the first from the full bucket): ten seconds at
    // least.
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(9), "{took:?}");
    let refused = server.rate_limited_count();
    assert!(refused <= 3, "{refused} refusals in {took:?}");
    assert_eq!(server.created_note_count(), 6);
}

/// An API (or a gateway answering in its JSON) that echoes the key or a sensitive header in its
/// message, or in a request ID, has it hidden from the error: the error is printed and journaled.
#[tokio::test]
async fn an_answer_that_echoes_the_key_or_a_sensitive_header_has_them_hidden() {
    const TOKEN: &str = "gw_TOKEN_0d1e2f";
    // The second answer's message is long: the key stands where the error cuts it to length.
    let long = format!(r#"{{"message":"{} {KEY}"}}"#, "x".repeat(290));
    let echo = format!(r#"{{"message":"invalid key {KEY} (x-gateway-token: {TOKEN})"}}"#);
    let server = TestServer::start(move |i, _: &support::Recorded| match i {
        0 => Reply::json(401, &echo).with_header("x-request-id", &format!("req-{KEY}")),
        _ => Reply::json(401, &long)
            .with_header("x-request-id", &format!("{}{KEY}", "r".repeat(290))),
    })
    .await;
    let client = Client::builder()
        .api_key(KEY)
        // Given with a space a server trims before it echoes the value.
        .sensitive_header("x-gateway-token", format!("{TOKEN} "))
        .base_url(&server.base_url)
        .build()
        .unwrap();
    let err = client
        .get_call(&CALL_ID.parse::<CallId>().unwrap())
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(KEY), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("invalid key [REDACTED]"), "{shown}");
    assert_eq!(err.request_id(), Some("req-[REDACTED]"));
    let cut = client
        .get_call(&CALL_ID.parse::<CallId>().unwrap())
        .await
        .unwrap_err();
    let shown = format!("{cut} {cut:?}");
    assert!(!shown.contains(&KEY[..8]), "no part of the key: {shown}");
}
