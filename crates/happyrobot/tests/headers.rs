//! Default headers (`ClientBuilder::default_header`, `sensitive_header`) reach a real loopback
//! server on every request and retry, a sensitive value shows in no log, error or `Debug`, and
//! `build` refuses what it must.
//!
//! A test binary of its own, for its `tracing` subscriber (see tests/redaction.rs).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

mod support;

use std::time::Duration;

use happyrobot::{CallFilter, CallId, Client, ErrorKind, NewNote, RetryPolicy};
use support::{CALL_ID, KEY, Recorded, Reply, TestServer, call_json};

const GATEWAY_SECRET: &str = "gw_TOKEN_d41d8cd98f00b204";

#[tokio::test]
async fn default_headers_reach_every_request_and_a_sensitive_value_is_never_shown() {
    let (captured, _guard) = support::capture_logs();

    let server = TestServer::start(|i, _r: &Recorded| match i {
        // The add: a 503 first (its error is checked below), then a 429 that is retried.
        0 => Reply::json(503, r#"{"message":"busy"}"#),
        1 => Reply::json(429, "{}").with_header("retry-after", "0"),
        2 => Reply::json(200, &call_json()),
        // The read: a 500 retried (a read is idempotent), then the call.
        3 => Reply::json(500, "{}"),
        4 => Reply::json(200, &call_json()),
        // A listing page.
        _ => Reply::json(
            200,
            &format!(r#"{{"calls": [{}], "count": 1}}"#, call_json()),
        ),
    })
    .await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&server.base_url)
        .retry(RetryPolicy::default().base_delay(Duration::from_millis(5)))
        .default_header("X-Tenant", "acme-logistics")
        .default_header("x-trace", "one")
        .default_header("x-trace", "two")
        .sensitive_header("x-gateway-token", GATEWAY_SECRET)
        .build()
        .unwrap();
    let call: CallId = CALL_ID.parse().unwrap();

    let failed = client
        .add_note(&call, NewNote::new("first"))
        .await
        .unwrap_err();
    client
        .add_note(&call, NewNote::new("second"))
        .await
        .unwrap();
    client.get_call(&call).await.unwrap();
    let listed = client
        .list_calls(CallFilter::new())
        .collect_calls(10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);

    let requests = server.requests();
    assert_eq!(requests.len(), 6);
    for request in &requests {
        let what = format!("{} {}", request.method, request.path);
        assert_eq!(request.header("x-tenant"), Some("acme-logistics"), "{what}");
        assert_eq!(
            request.header("x-gateway-token"),
            Some(GATEWAY_SECRET),
            "{what}"
        );
        let traces: Vec<&str> = request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("x-trace"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(traces, ["one", "two"], "{what}");
        // The client's own headers are still its own.
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert!(
            request
                .header("user-agent")
                .unwrap()
                .starts_with("happyrobot-rust/")
        );
    }

    let logs = captured.text();
    assert!(logs.contains("retrying"), "the retries are logged: {logs}");
    for shown in [
        logs,
        format!("{failed} {failed:?}"),
        format!("{client:?}"),
        format!(
            "{:?}",
            Client::builder().sensitive_header("x-gateway-token", GATEWAY_SECRET)
        ),
    ] {
        assert!(!shown.contains(GATEWAY_SECRET), "{shown}");
        assert!(!shown.contains("d41d8cd98f00b204"), "{shown}");
        assert!(!shown.contains(KEY), "{shown}");
    }
    // What is not secret is shown where the settings are.
    assert!(format!("{client:?}").contains("acme-logistics"));
}

#[test]
fn build_refuses_reserved_and_invalid_headers_and_never_shows_the_value() {
    let build = |name: &str, value: &str| {
        Client::builder()
            .api_key(KEY)
            .sensitive_header(name, value)
            .build()
            .unwrap_err()
    };
    for name in [
        "authorization",
        "Authorization",
        "USER-AGENT",
        "host",
        "content-type",
    ] {
        let error = build(name, GATEWAY_SECRET);
        assert_eq!(error.kind(), ErrorKind::Config, "{name}");
        assert!(error.is_invalid_input());
        let text = error.to_string();
        assert!(
            text.contains(&name.to_ascii_lowercase()),
            "the header is named: {text}"
        );
        assert!(!text.contains(GATEWAY_SECRET), "{text}");
    }
    let error = build("x bad name", "v");
    assert!(
        error.to_string().contains("not a valid HTTP header name"),
        "{error}"
    );
    for value in [
        format!("{GATEWAY_SECRET}\r\nx-injected: 1"),
        format!("{GATEWAY_SECRET}\n"),
        format!("{GATEWAY_SECRET}\u{0}"),
        format!("{GATEWAY_SECRET}é"),
    ] {
        let error = build("x-gateway-token", &value);
        let text = format!("{error} {error:?}");
        assert!(text.contains("x-gateway-token"), "{text}");
        assert!(text.contains("cannot carry"), "{text}");
        assert!(!text.contains(GATEWAY_SECRET), "{text}");
    }
    // A plain value is refused as clearly, and the builder's `Debug` shows it.
    let error = Client::builder()
        .api_key(KEY)
        .default_header("x-tenant", "a\nb")
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("x-tenant"), "{error}");
}
