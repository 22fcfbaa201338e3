//! `happyrobot notes add` against servers that are not the mock: answers with surprising shapes
//! (printed whole with `--output json`), answers that break off after a success status (exit 8,
//! never 5, 6 or 7), and proxy variables (loopback goes direct; a proxy's credentials never show).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{command, run, run_command};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CALL_ID: &str = "65f1c0ffee0123456789abcd";

/// A one-answer-fits-all HTTP/1.1 server: every request gets `response` (raw bytes, status line
/// included) and the connection is closed. Counts the requests.
async fn raw_server(response: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let response = Arc::new(response);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            let response = response.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then the body by its content-length.
                let head_end = loop {
                    if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buffer.len() < head_end + length {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(&response).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (base_url, count)
}

fn ok_response(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../happyrobot/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn add_json(base_url: &str) -> common::Run {
    run(&[
        "--base-url",
        base_url,
        "--api-key",
        "k",
        "notes",
        "add",
        CALL_ID,
        "--content",
        "hi",
        "--output",
        "json",
        // These tests count the requests of one add; looking a note up is tested elsewhere.
        "--no-reconcile",
    ])
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_json_prints_every_member_the_server_sent() {
    for name in [
        "drift_only_id.json",
        "drift_documented_required_missing.json",
        "drift_documented_required_null.json",
        "drift_unknown_members_and_big_numbers.json",
        "drift_unknown_fields.json",
        "drift_nulls.json",
        "call_full.json",
    ] {
        let body = fixture(name);
        let (base_url, count) = raw_server(ok_response(&body)).await;
        let run = add_json(&base_url).await;
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert_eq!(count.load(Ordering::SeqCst), 1, "{name}");
        let mut expected = String::from_utf8(body).unwrap();
        if !expected.ends_with('\n') {
            expected.push('\n');
        }
        assert_eq!(run.stdout, expected, "{name}: printed byte for byte");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_output_copes_with_a_call_that_has_only_an_id() {
    let (base_url, _) = raw_server(ok_response(&fixture("drift_only_id.json"))).await;
    let run = run(&[
        "--base-url",
        &base_url,
        "--api-key",
        "k",
        "notes",
        "add",
        CALL_ID,
        "--content",
        "hi",
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("Added the note to call"),
        "{}",
        run.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_breaks_off_after_200_exits_8_and_is_sent_once() {
    let mut response =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 4000\r\n\r\n"
            .to_vec();
    response.extend_from_slice(br#"{"id":"65f1c0ffee0123456789abcd","notes":["#);
    let (base_url, count) = raw_server(response).await;
    let run = add_json(&base_url).await;
    assert_eq!(run.code, 8, "{}", run.stderr);
    assert_eq!(count.load(Ordering::SeqCst), 1, "never sent again");
    assert!(run.stderr.contains("The note was added"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_not_followed_and_does_not_invite_a_resend() {
    for (status, code) in [(302, 5), (303, 7), (307, 5)] {
        let response = format!(
            "HTTP/1.1 {status} X\r\nlocation: http://127.0.0.1:9/elsewhere?key=abc\r\ncontent-length: 0\r\n\r\n"
        )
        .into_bytes();
        let (base_url, count) = raw_server(response).await;
        // Without reconciliation, so that the server sees the POST alone (a reconciling GET would
        // get the same redirect, and the outcome would stay unknown: exit 7 all the same).
        let run = run(&[
            "--base-url",
            &base_url,
            "--api-key",
            "k",
            "notes",
            "add",
            CALL_ID,
            "--content",
            "hi",
            "--no-reconcile",
        ])
        .await;
        assert_eq!(run.code, code, "{status}: {}", run.stderr);
        assert_eq!(count.load(Ordering::SeqCst), 1, "{status}");
        assert!(!run.stderr.contains("key=abc"), "{}", run.stderr);
    }
}

/// A closed port: a proxy that is down.
fn dead_proxy() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://proxyuser:pr0xy-s3cret@127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_goes_direct_and_proxy_credentials_never_show() {
    let proxy = dead_proxy();
    let server = happyrobot_mock::MockServer::start().await.unwrap();
    let mut loopback = command(&[
        "--base-url",
        &server.base_url(),
        "--api-key",
        server.api_key(),
        "notes",
        "add",
        CALL_ID,
        "--content",
        "through no proxy",
    ]);
    for name in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "all_proxy",
    ] {
        loopback.env(name, &proxy);
    }
    loopback.env_remove("NO_PROXY").env_remove("no_proxy");
    let run = run_command(loopback).await;
    assert_eq!(
        run.code, 0,
        "a loopback base URL ignores the proxy: {}",
        run.stderr
    );
    assert_eq!(server.created_notes(CALL_ID).len(), 1);

    // The real API through a proxy that is down: nothing was sent (exit 6), and the proxy's
    // password is not printed.
    let mut remote = command(&[
        "--api-key",
        "hr_live_key",
        "notes",
        "add",
        CALL_ID,
        "--content",
        "hi",
        "-v",
    ]);
    remote
        .env("HTTPS_PROXY", &proxy)
        .env("ALL_PROXY", &proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    let run = run_command(remote).await;
    assert_eq!(run.code, 6, "{}", run.stderr);
    let shown = format!("{}{}", run.stdout, run.stderr);
    assert!(!shown.contains("pr0xy-s3cret"), "{shown}");
    assert!(!shown.contains("hr_live_key"), "{shown}");
}
