//! `happyrobot calls list` against a seeded mock: the filters find what the mock holds, every
//! output format, and the round trip of issue 22: the calls of a filter as CSV, one note on each
//! with `notes import --content`, and `--undo`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::collections::HashSet;

use happyrobot_mock::MockServer;
use serde_json::Value;

async fn seeded() -> MockServer {
    MockServer::builder().seed_calls(300).start().await.unwrap()
}

/// The IDs of the mock's calls with this status.
fn with_status(server: &MockServer, status: &str) -> HashSet<String> {
    server
        .call_ids()
        .into_iter()
        .filter(|id| {
            server
                .call(id)
                .and_then(|c| c.status)
                .is_some_and(|s| s.to_string() == status)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_filter_finds_exactly_the_calls_the_mock_holds_in_every_format() {
    let server = seeded().await;
    let failed = with_status(&server, "Failed");
    assert!(failed.len() > 5, "the seed spreads statuses");
    let run = common::run_against(
        &server,
        &[
            "calls",
            "list",
            "--status",
            "failed",
            "--page-size",
            "7",
            "--output",
            "jsonl",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ids: Vec<String> = run
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), failed.len(), "each once");
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), failed);
    let run = common::run_against(
        &server,
        &["calls", "list", "--status", "Failed", "-o", "json"],
    )
    .await;
    let array: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(array.len(), failed.len());
    let run = common::run_against(
        &server,
        &["calls", "list", "--status", "Failed", "--limit", "3"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: Vec<&str> = run.stdout.lines().collect();
    assert!(rows[0].starts_with("CALL_ID"), "{}", run.stdout);
    assert_eq!(rows.len(), 4, "a header and 3 calls: {}", run.stdout);
    // Bad options are refused before anything is sent.
    let before = server.requests().len();
    let run = common::run_against(&server, &["calls", "list", "--from", "yesterday"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(server.requests().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calls_of_a_filter_get_one_note_each_and_it_is_undone() {
    let server = seeded().await;
    let failed = with_status(&server, "Failed");
    let dir = common::temp_dir("round-trip");
    let csv = dir.join("failed.csv");
    let run = common::run_against(
        &server,
        &["calls", "list", "--status", "Failed", "--output", "csv"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("call_id,"), "{}", run.stdout);
    std::fs::write(&csv, &run.stdout).unwrap();
    let file = csv.to_str().unwrap();
    let import = [
        "notes",
        "import",
        file,
        "--content",
        "QA sweep",
        "--ignore-other-columns",
    ];
    let run = common::run_against(&server, &import).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let sweep = |id: &String| {
        server
            .notes(id)
            .iter()
            .filter(|n| n.content.as_deref() == Some("QA sweep"))
            .count()
    };
    for id in &failed {
        assert_eq!(sweep(id), 1, "{id}: exactly one note");
    }
    let others: Vec<String> = server
        .call_ids()
        .into_iter()
        .filter(|id| !failed.contains(id))
        .collect();
    assert!(others.iter().all(|id| sweep(id) == 0));
    let mut undo = import.to_vec();
    undo.push("--undo");
    let run = common::run_against(&server, &undo).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(failed.iter().all(|id| sweep(id) == 0), "undone");
}

/// `calls transcript` prints the conversation in order, one message a line with its time and who
/// spoke; `--output json` prints the body exactly as the server sent it; a missing call exits 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_transcript_prints_the_conversation_and_the_json_as_sent() {
    let server = MockServer::start().await.unwrap();
    let id = server.call_ids()[0].clone();
    let run = common::run_against(&server, &["calls", "transcript", &id]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("Transcript of call {id}: 7 messages, started 20")),
        "{}",
        run.stdout
    );
    assert!(
        lines[1].starts_with("[00:00.4] agent: Thanks for calling"),
        "{}",
        run.stdout
    );
    assert!(
        lines[2].starts_with("[00:04.6] caller: Hi Kate"),
        "{}",
        run.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[00:08.9] agent calls find_load({\"reference_number\":")),
        "{}",
        run.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[00:10.3] find_load answered: {")),
        "{}",
        run.stdout
    );
    // Each message on one line, in order of time.
    assert_eq!(lines.len(), 1 + 7 + 1, "{}", run.stdout);

    let client = happyrobot::Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .build()
        .unwrap();
    let sent = client
        .get_transcript(&id.parse().unwrap())
        .await
        .unwrap()
        .raw_body()
        .to_vec();
    let run = common::run_against(&server, &["calls", "transcript", &id, "-o", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim_end().as_bytes(), &sent[..]);

    for output in ["text", "json"] {
        let run = common::run_against(
            &server,
            &[
                "calls",
                "transcript",
                "000000000000000000000000",
                "-o",
                output,
            ],
        )
        .await;
        assert_eq!(run.code, 4, "{}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
        assert!(run.stderr.contains("404"), "{}", run.stderr);
    }
}

/// A read that times out could not reach the API in time: exit 6 (network), as the help says,
/// for `calls get` and `calls transcript` alike (the exit code follows the library's category).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_times_out_exits_6() {
    let server = MockServer::start().await.unwrap();
    server.inject_rate(
        happyrobot_mock::Fault::Delay(std::time::Duration::from_secs(3)),
        1.0,
        1,
    );
    let id = server.call_ids()[0].clone();
    for command in ["get", "transcript"] {
        let run = common::run_against(
            &server,
            &[
                "--timeout",
                "0.3",
                "--max-retries",
                "0",
                "calls",
                command,
                &id,
            ],
        )
        .await;
        assert_eq!(run.code, 6, "{command}: {}", run.stderr);
        assert!(run.stderr.contains("timed out"), "{}", run.stderr);
    }
}
