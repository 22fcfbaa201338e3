//! The client against servers that misbehave on the wire: redirects, answers that break off after a
//! success status, bodies that stall, error bodies that echo secrets, absurd `Retry-After` values,
//! and connections that never complete. Each test checks the three promises: the note is sent at
//! most once, the outcome is reported truthfully, and nothing secret is shown.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

mod support;

use std::time::{Duration, Instant};

use happyrobot::types::Call;
use happyrobot::{CallId, Client, Error, ErrorKind, NewNote, Outcome, Response, RetryPolicy};
use support::{CALL_ID, KEY, Reply, TestServer, call_json};

fn client_with(base_url: &str, retry: RetryPolicy) -> Client {
    Client::builder()
        .api_key(KEY)
        .base_url(base_url)
        .retry(retry)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// The most eager policy there is: if anything could make the client send twice, this would.
fn eager() -> RetryPolicy {
    RetryPolicy::retry_outcome_unknown()
        .max_retries(3)
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(10))
}

async fn add(client: &Client) -> Result<Response<Call>, Error> {
    let id: CallId = CALL_ID.parse().unwrap();
    client
        .add_note(&id, NewNote::new("Gate code is 4471"))
        .await
}

#[tokio::test]
async fn redirects_are_never_followed_and_report_the_right_outcome() {
    // A second server the redirects point at: it must never see a request (nor the key).
    let elsewhere = TestServer::start(|_, _| Reply::json(200, &call_json())).await;
    let target = elsewhere
        .base_url
        .replace("http://", "http://user:hunter2@")
        + "/calls/x/notes?token=abc#frag";
    for (status, outcome) in [
        (301, Outcome::NotApplied),
        (302, Outcome::NotApplied),
        (303, Outcome::Unknown),
        (307, Outcome::NotApplied),
        (308, Outcome::NotApplied),
    ] {
        let location = target.clone();
        let server = TestServer::start(move |_, _| Reply::Respond {
            status,
            headers: vec![("location".into(), location.clone())],
            body: b"<html>moved</html>".to_vec(),
        })
        .await;
        let err = add(&client_with(&server.base_url, eager()))
            .await
            .unwrap_err();
        assert_eq!(server.count(), 1, "{status}: never retried");
        assert_eq!(err.kind(), ErrorKind::Redirect, "{status}");
        assert!(err.is_redirect());
        assert_eq!(err.outcome(), outcome, "{status}");
        assert_eq!(err.status().map(|s| s.as_u16()), Some(status));
        let location = err.location().unwrap();
        assert!(location.ends_with("/calls/x/notes"), "{location}");
        let shown = format!("{err} {err:?}");
        for secret in ["hunter2", "token=abc", "frag", "html", KEY] {
            assert!(!shown.contains(secret), "{status} shows {secret}: {shown}");
        }
        assert!(shown.contains("base URL"), "says what to do: {shown}");
    }
    assert_eq!(elsewhere.count(), 0, "no redirect was followed");
}

// `ClientBuilder::http_client` needs the feature (the crate's dev-dependency on itself turns it on).
#[cfg(feature = "reqwest-client")]
#[tokio::test]
async fn a_caller_client_that_follows_redirects_is_caught() {
    let elsewhere = TestServer::start(|_, _| Reply::json(200, &call_json())).await;
    let location = format!("{}/calls/{CALL_ID}/notes", elsewhere.base_url);
    let server = TestServer::start(move |_, _| Reply::Respond {
        status: 307,
        headers: vec![("location".into(), location.clone())],
        body: vec![],
    })
    .await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&server.base_url)
        .http_client(reqwest::Client::new())
        .retry(eager())
        .build()
        .unwrap();
    let err = add(&client).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Redirect, "{err}");
    assert_eq!(err.outcome(), Outcome::Unknown, "{err}");
    assert!(err.to_string().contains("Policy::none"), "{err}");
    assert_eq!(
        elsewhere.count(),
        1,
        "followed once by the caller's client, not again"
    );
}

#[tokio::test]
async fn a_reset_after_a_200_means_added_and_is_never_retried() {
    let server = TestServer::start(|_, _| Reply::Partial {
        status: 200,
        declared: 5000,
        body: br#"{"id":"65f1c0ffee0123456789abcd","notes":[{"#.to_vec(),
        hang: false,
    })
    .await;
    let err = add(&client_with(&server.base_url, eager()))
        .await
        .unwrap_err();
    assert_eq!(server.count(), 1, "never sent again");
    assert_eq!(err.kind(), ErrorKind::AnswerUnreadable, "{err:?}");
    assert_eq!(err.outcome(), Outcome::Applied);
    assert!(err.note_was_added() && !err.outcome_unknown());
    assert!(err.to_string().contains("The note was added"), "{err}");
}

#[tokio::test]
async fn a_body_that_stalls_after_a_200_means_added_and_ends_at_the_timeout() {
    let server = TestServer::start(|_, _| Reply::Partial {
        status: 200,
        declared: 5000,
        body: br#"{"id":"65f1c0ffee0123456789abcd","#.to_vec(),
        hang: true,
    })
    .await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&server.base_url)
        .retry(eager())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = add(&client).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "no hang: {took:?}");
    assert_eq!(server.count(), 1);
    assert_eq!(err.kind(), ErrorKind::AnswerUnreadable, "{err:?}");
    assert!(err.note_was_added());
    assert!(err.is_timeout(), "{err:?}");
}

#[tokio::test]
async fn error_bodies_never_reach_messages_and_json_messages_are_capped() {
    let server = TestServer::start(|i, r| {
        if i == 0 {
            // A proxy page that echoes the request, key and note included.
            let echo = format!(
                "<html>{} {}</html>",
                r.header("authorization").unwrap_or_default(),
                String::from_utf8_lossy(&r.body)
            );
            Reply::Respond {
                status: 502,
                headers: vec![("content-type".into(), "text/html".into())],
                body: echo.into_bytes(),
            }
        } else {
            let message = format!("line one\nline two\u{1b}[31m {}", "y".repeat(5000));
            Reply::json(400, &serde_json::json!({ "message": message }).to_string())
        }
    })
    .await;
    let client = client_with(&server.base_url, RetryPolicy::none());
    let err = add(&client).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    for secret in [KEY, "Gate code", "4471", "html"] {
        assert!(!shown.contains(secret), "shows {secret}: {shown}");
    }
    assert!(err.outcome_unknown(), "a 502 may have been applied");

    let err = add(&client).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("line one\\nline two\\u{1b}[31m"), "{text}");
    assert!(!text.contains('\n') && !text.contains('\u{1b}'), "{text}");
    assert!(text.len() < 1000, "capped: {} bytes", text.len());
}

#[tokio::test]
async fn a_429_without_retry_after_waits_its_turn_or_at_least_a_second() {
    let answers = |i: usize, _: &_| {
        if i == 0 {
            Reply::json(429, "{}")
        } else {
            Reply::json(200, &call_json())
        }
    };
    // With rate control (the default), the retry waits its turn at the pace the controller
    // starts from after a first 429: at most one request a second, growing.
    let server = TestServer::start(answers).await;
    let client = client_with(
        &server.base_url,
        RetryPolicy::default().base_delay(Duration::from_millis(1)),
    );
    add(&client).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_millis(500), "{waited:?}");
    assert_eq!(client.rate_stats().throttled, 1);
    // Without it, the retry policy waits at least a second.
    let server = TestServer::start(answers).await;
    let client = happyrobot::Client::builder()
        .api_key(support::KEY)
        .base_url(&server.base_url)
        .retry(RetryPolicy::default().base_delay(Duration::from_millis(1)))
        .rate_control(happyrobot::RateControl::off())
        .build()
        .unwrap();
    add(&client).await.unwrap();
    let requests = server.requests();
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_millis(990), "{waited:?}");
}

#[tokio::test]
async fn absurd_retry_after_values_fail_fast_without_panicking() {
    for value in [
        "99999999999999999999999999999",
        "18446744073709551615",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "31536000",
    ] {
        let header = value.to_string();
        let server = TestServer::start(move |_, _| {
            Reply::json(429, "{}").with_header("retry-after", &header)
        })
        .await;
        let started = Instant::now();
        let err = add(&client_with(&server.base_url, RetryPolicy::default()))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{value}");
        assert_eq!(server.count(), 1, "{value}");
        assert!(err.is_rate_limited() && !err.is_retryable(), "{value}");
        assert!(err.retry_after_too_long(), "{value}");
        assert!(err.to_string().contains("days"), "{value}: {err}");
    }
}

#[tokio::test]
async fn the_deadline_bounds_a_call_with_its_retries() {
    let server =
        TestServer::start(|_, _| Reply::json(429, "{}").with_header("retry-after", "1")).await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&server.base_url)
        .retry(RetryPolicy::default().max_retries(10))
        .deadline(Duration::from_millis(1500))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = add(&client).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "{took:?}");
    assert_eq!(
        server.count(),
        2,
        "one retry fits in 1.5 s, a second does not"
    );
    assert!(err.to_string().contains("deadline"), "{err}");
}

/// A listener whose accept queue is full drops new connection attempts, so connecting hangs until
/// the connect timeout: nothing was sent, and that is what the error says.
#[tokio::test]
async fn a_connect_timeout_means_not_sent() {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fill the queue; nobody ever accepts.
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            fillers.push(stream);
        }
    }
    let client = Client::builder()
        .api_key(KEY)
        .base_url(format!("http://{addr}/api/v1"))
        .connect_timeout(Duration::from_millis(300))
        .timeout(Duration::from_secs(2))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let started = Instant::now();
    let err = add(&client).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
    assert_eq!(err.outcome(), Outcome::NotApplied);
    assert!(err.is_timeout(), "{err:?}");
    drop(listener);
}
