//! `happyrobot notes sync` against the mock: a plan first, then exactly that plan; edits updated
//! in place; JSON and a results file; refusals before anything is sent.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location, helpers included"
)]

mod common;

use happyrobot_mock::MockServer;

fn writes(server: &MockServer) -> (usize, usize, usize) {
    let c = server.operation_counts();
    (c.add_note, c.update_note, c.delete_note)
}

/// How many notes with each text call `index` holds now.
fn held(server: &MockServer, index: usize) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    for note in server.notes(&server.call_ids()[index]) {
        *counts.entry(note.content.unwrap_or_default()).or_insert(0) += 1;
    }
    counts
}

fn sheet(server: &MockServer, dir: &std::path::Path, rows: &[(usize, &str, &str)]) -> String {
    let mut text = String::from("call_id,content,flagged\n");
    for (call, content, flag) in rows {
        text.push_str(&format!("{},{content},{flag}\n", server.call_ids()[*call]));
    }
    let path = dir.join("review.csv");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn a_sheet_synced_with_a_plan_first_then_edited_and_undone() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("cli-sync");
    let file = sheet(
        &server,
        &dir,
        &[
            (0, "Driver confirmd pickup", ""),
            (1, "Dock 4", "no"),
            (2, "Call back at 5", ""),
        ],
    );
    let plan = common::run_against(&server, &["notes", "sync", &file, "--plan"]).await;
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert_eq!(plan.stderr.matches(" add ").count(), 3, "{}", plan.stderr);
    assert!(plan.stderr.contains("nothing was sent"), "{}", plan.stderr);
    assert_eq!(writes(&server), (0, 0, 0));

    let run = common::run_against(&server, &["notes", "sync", &file]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("3 added"), "{}", run.stderr);
    let again = common::run_against(&server, &["notes", "sync", &file, "-o", "json"]).await;
    let json: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(
        (json["added"].as_u64(), json["unchanged"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(writes(&server), (3, 0, 0), "a rerun only reads");

    // The typo fixed, a flag set, a row removed: a plan, then the run, with a results file.
    let file = sheet(
        &server,
        &dir,
        &[(0, "Driver confirmed pickup", ""), (1, "Dock 4", "x")],
    );
    let plan =
        common::run_against(&server, &["notes", "sync", &file, "--plan", "-o", "json"]).await;
    let json: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(
        (
            json["updated"].as_u64(),
            json["kept"].as_u64(),
            json["added"].as_u64()
        ),
        (Some(2), Some(1), Some(0)),
        "{json}"
    );
    assert_eq!(json["rows"][0]["old"]["content"], "Driver confirmd pickup");
    let report = dir.join("sync.results.csv");
    let run = common::run_against(
        &server,
        &["notes", "sync", &file, "--report", report.to_str().unwrap()],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(writes(&server), (3, 2, 0), "updated in place: no POST");
    let results = std::fs::read_to_string(&report).unwrap();
    assert!(results.contains(",update,done,"), "{results}");
    assert!(results.contains(",keep,done,"), "{results}");
    let texts = held(&server, 0);
    assert_eq!(texts.get("Driver confirmed pickup"), Some(&1), "{texts:?}");
    assert_eq!(texts.get("Driver confirmd pickup"), None, "{texts:?}");

    let undo = common::run_against(&server, &["notes", "sync", &file, "--undo"]).await;
    assert_eq!(undo.code, 0, "{}", undo.stderr);
    assert!(undo.stderr.contains("2 updated"), "{}", undo.stderr);
    let texts = held(&server, 0);
    assert_eq!(texts.get("Driver confirmd pickup"), Some(&1), "{texts:?}");
    let twice = common::run_against(&server, &["notes", "sync", &file, "--undo"]).await;
    assert!(twice.stderr.contains("Nothing to undo"), "{}", twice.stderr);
    assert_eq!(writes(&server), (3, 4, 0));
}

#[tokio::test]
async fn a_call_twice_without_a_key_column_is_refused_before_anything_is_read() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("cli-sync-twice");
    let file = sheet(&server, &dir, &[(0, "One", ""), (0, "Two", "")]);
    let run = common::run_against(&server, &["notes", "sync", &file]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--key-column"), "{}", run.stderr);
    assert!(!run.stderr.contains("Sync::"), "{}", run.stderr);
    assert_eq!(server.operation_counts().get_call, 0);
}

/// A `Retry-After` longer than `--max-retry-after` stops the sync: the refused row is not sent
/// (a rate limit fails no row), the exit is 5, and the sync left to wait (the default
/// `--max-retry-after`) then makes every change once.
#[tokio::test]
async fn a_retry_after_beyond_max_retry_after_stops_the_sync_and_fails_no_row() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("cli-sync-retry-after");
    let file = sheet(&server, &dir, &[(0, "One", ""), (1, "Two", "")]);
    // The plan's reads of the two calls pass; the first add is refused.
    server.inject(happyrobot_mock::Fault::Delay(std::time::Duration::ZERO), 2);
    server.inject(
        happyrobot_mock::Fault::RateLimited {
            retry_after_secs: 2,
        },
        1,
    );
    let args = ["--max-retry-after", "1", "notes", "sync", &file];
    let run = common::run_against(
        &server,
        &[&args[..], &["--concurrency", "1", "-o", "json"]].concat(),
    )
    .await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} {}", run.stdout, run.stderr));
    assert_eq!(
        (&summary["failed"], &summary["not_sent"]),
        (&0.into(), &2.into()),
        "{summary}"
    );
    assert_eq!(summary["retry_after_secs"], 2);
    assert_eq!(writes(&server), (0, 0, 0));

    // The same sync, left to wait what the server asked (within --max-retry-after's default).
    let run = common::run_against(&server, &args[2..]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("2 added"), "{}", run.stderr);
    assert_eq!(writes(&server), (2, 0, 0));
}

/// A `Retry-After` longer than `--max-retry-after` on a read of the plan: nothing is sent, the
/// exit is a refusal by the API's (5), and the message names the flag; the same sync left to
/// wait (the default) then makes every change.
#[tokio::test]
async fn a_retry_after_beyond_max_retry_after_on_the_plan_sends_nothing() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("cli-sync-plan-held");
    let file = sheet(&server, &dir, &[(0, "One", ""), (1, "Two", "")]);
    server.inject(
        happyrobot_mock::Fault::RateLimited {
            retry_after_secs: 2,
        },
        1,
    );
    let args = ["--max-retry-after", "1", "notes", "sync", &file];
    let run = common::run_against(&server, &args).await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("--max-retry-after"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was sent"), "{}", run.stderr);
    assert_eq!(writes(&server), (0, 0, 0));

    let run = common::run_against(&server, &args[2..]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(writes(&server), (2, 0, 0));
}

/// The same with every change in flight at once (the default concurrency) under a limit whose
/// `Retry-After` is beyond the run's 900 s: the rows waiting for their turn are not sent either,
/// none failed (a run stopped while they wait fails no row), and nothing waits out the hold.
#[tokio::test]
async fn rows_waiting_when_a_long_retry_after_stops_the_sync_are_not_sent() {
    use happyrobot_mock::RateLimit;
    let server = MockServer::builder()
        .rate_limit(RateLimit::per_second(0.001).burst(4))
        .start()
        .await
        .unwrap();
    let dir = common::temp_dir("cli-sync-held");
    let file = sheet(
        &server,
        &dir,
        &[(0, "One", ""), (1, "Two", ""), (2, "Three", "")],
    );
    let started = std::time::Instant::now();
    let run = common::run_against(&server, &["notes", "sync", &file, "-o", "json"]).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(run.code, 5, "{}", run.stderr);
    let summary: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("{e}: {} {}", run.stdout, run.stderr));
    let counts = (&summary["added"], &summary["failed"], &summary["not_sent"]);
    assert_eq!(counts, (&1.into(), &0.into(), &2.into()), "{summary}");
    assert!(
        summary["retry_after_secs"].as_u64().unwrap() > 900,
        "{summary}"
    );
    assert_eq!(writes(&server), (1, 0, 0));
}

#[tokio::test]
async fn a_refused_key_stops_the_plan_with_exit_3_and_nothing_sent() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("cli-sync-key");
    let file = sheet(&server, &dir, &[(0, "One", "")]);
    let run = common::run(&[
        "--base-url",
        &server.base_url(),
        "--api-key",
        "hr_wrong_key",
        "notes",
        "sync",
        &file,
    ])
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("nothing was sent"), "{}", run.stderr);
    assert!(!run.stderr.contains("hr_wrong_key"), "{}", run.stderr);
    assert_eq!(writes(&server), (0, 0, 0));
}

#[tokio::test]
async fn an_imported_sheet_is_adopted_by_its_first_sync() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("cli-sync-import");
    let file = sheet(&server, &dir, &[(0, "One", ""), (1, "Two", "yes")]);
    let state = dir.join("state");
    let mut import = common::command_against(&server, &["notes", "import", &file]);
    import.env("HAPPYROBOT_STATE_DIR", &state);
    assert_eq!(common::run_command(import).await.code, 0);
    let mut sync = common::command_against(&server, &["notes", "sync", &file, "--plan"]);
    sync.env("HAPPYROBOT_STATE_DIR", &state);
    let plan = common::run_command(sync).await;
    assert!(plan.stderr.contains("0 to add"), "{}", plan.stderr);
    assert!(plan.stderr.contains("2 adopted"), "{}", plan.stderr);
    let mut sync = common::command_against(&server, &["notes", "sync", &file]);
    sync.env("HAPPYROBOT_STATE_DIR", &state);
    assert_eq!(common::run_command(sync).await.code, 0);
    assert_eq!(writes(&server), (2, 0, 0));
}
