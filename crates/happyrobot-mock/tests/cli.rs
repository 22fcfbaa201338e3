//! The `happyrobot-mock` binary: what it prints, that it serves, and that it stops on SIGTERM.

#![cfg(feature = "cli")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a panic in a test helper is a test failure with a location, which is what we want"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_happyrobot-mock");

#[cfg(unix)]
#[tokio::test]
async fn binary_prints_its_facts_serves_and_stops_on_sigterm() {
    let mut child = Command::new(BIN)
        .args([
            "--api-key",
            "sk_cli_test",
            "--seed-calls",
            "4",
            "--fault",
            "503",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Read the first six lines on a thread, so that a silent binary fails the test instead of
    // hanging it.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().take(6) {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let lines: Vec<String> = (0..6)
        .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
        .collect();
    let base_url = lines[0].strip_prefix("base_url=").unwrap().to_string();
    assert!(base_url.starts_with("http://127.0.0.1:"), "{base_url}");
    assert!(base_url.ends_with("/api/v1"), "{base_url}");
    assert_eq!(lines[1], "api_key=sk_cli_test");
    let ids: Vec<&str> = lines[2..]
        .iter()
        .map(|line| line.strip_prefix("call_id=").unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
    assert_eq!(ids[0], happyrobot_mock::FIRST_CALL_ID);

    // It serves, with the fault given on the command line first.
    let client = common::client();
    let send = || {
        client
            .post(format!("{base_url}/calls/{}/notes", ids[1]))
            .bearer_auth("sk_cli_test")
            .json(&serde_json::json!({ "content": "from the CLI test" }))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 503);
    assert_eq!(send().await.unwrap().status(), 200);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("happyrobot-mock did not stop within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(send().await.is_err(), "still serving after SIGTERM");
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let output = Command::new(BIN)
        .args(["--fault", "teapot"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("save-then-drop"), "{stderr}");

    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--port",
        "--api-key",
        "--seed-calls",
        "--max-body-bytes",
        "--fault-rate",
        "base_url=",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

/// Starts the binary with `args` and returns it with its base URL, read from its first line.
#[cfg(unix)]
fn start_binary(args: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // The first line is the base URL. The pipe is read to its end, after the receiver is gone
        // too: closing it early would make the binary's next line fail and the binary exit.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let base_url = first.strip_prefix("base_url=").unwrap().to_string();
    (child, base_url)
}

/// The rate-limit, latency, note-id and late-apply options reach the server the binary runs.
#[cfg(unix)]
#[tokio::test]
async fn binary_takes_the_rate_limit_latency_note_id_and_late_apply_options() {
    let (mut child, base_url) = start_binary(&[
        "--rate-limit",
        "0.2",
        "--rate-limit-burst",
        "3",
        "--rate-limit-headers",
        "ietf",
        "--latency",
        "100ms",
        "--refuse-repeated-note-ids",
        "--fault",
        "late-apply:answer=504,after=100ms,apply=400ms",
    ]);
    let client = common::client();
    let call_id = happyrobot_mock::FIRST_CALL_ID;
    let add = || {
        client
            .post(format!("{base_url}/calls/{call_id}/notes"))
            .bearer_auth(happyrobot_mock::DEFAULT_API_KEY)
            .json(&serde_json::json!({ "id": "from-the-cli", "content": "late" }))
            .send()
    };

    let gateway = add().await.unwrap();
    assert_eq!(gateway.status(), 504);
    assert_eq!(gateway.headers()["content-type"], "text/html");
    assert_eq!(gateway.headers()["ratelimit-remaining"], "2");

    // After the late add, the same id again is refused; the answer waited for the latency.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let started = Instant::now();
    let repeated = add().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(repeated.status(), 409);
    assert_eq!(repeated.headers()["ratelimit-limit"], "3");
    assert_eq!(repeated.headers()["ratelimit-remaining"], "1");

    assert_eq!(add().await.unwrap().status(), 409);
    let throttled = add().await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert!(throttled.headers().contains_key("retry-after"));
    assert_eq!(throttled.headers()["ratelimit-remaining"], "0");

    child.kill().unwrap();
    child.wait().unwrap();
}
