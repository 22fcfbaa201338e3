//! `happyrobot notes import` end to end against the mock server in this process: validation,
//! rate limits, unknown outcomes, and a run killed with SIGKILL then resumed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location, helpers included"
)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use happyrobot_mock::{FIRST_CALL_ID, Fault, MockServer};
use serde_json::Value;

/// Makes the mock answer the next request `429` with `Retry-After: <secs>`.
fn refuse_next(server: &MockServer, secs: u64) {
    server.inject(
        Fault::RateLimited {
            retry_after_secs: secs,
        },
        1,
    );
}

/// Writes a CSV of `count` notes on the first call, with texts `note 1`, `note 2`, ...; line
/// `n + 1` of the file holds `note n`.
fn write_csv(dir: &Path, count: usize) -> PathBuf {
    let path = dir.join("notes.csv");
    let mut text = String::from("call_id,content,flagged\n");
    for n in 1..=count {
        text.push_str(&format!(
            "{FIRST_CALL_ID},note {n},{}\n",
            if n % 7 == 0 { "yes" } else { "" }
        ));
    }
    std::fs::write(&path, text).unwrap();
    path
}

fn lines_of(list: &Value) -> BTreeSet<u64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_u64().unwrap())
        .collect()
}

/// The input lines the journal shows as started without an outcome: in flight when the run died.
fn in_flight(journal: &Path) -> BTreeSet<u64> {
    let mut state: HashMap<u64, String> = HashMap::new();
    for line in std::fs::read_to_string(journal).unwrap().lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue; // a line cut by the kill
        };
        if let Some(n) = entry["line"].as_u64() {
            state.insert(n, entry["event"].as_str().unwrap().to_string());
        }
    }
    state
        .into_iter()
        .filter(|(_, event)| event == "start")
        .map(|(n, _)| n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_1000_lines_through_rate_limits_exactly_once() {
    let server = MockServer::start().await.unwrap();
    // One 429 asking for a 1 s pause first, then 429s at random (asking for no wait) on 5% of
    // the requests.
    refuse_next(&server, 1);
    server.inject_rate(
        Fault::RateLimited {
            retry_after_secs: 0,
        },
        0.05,
        7,
    );
    let dir = common::temp_dir("thousand");
    let file = write_csv(&dir, 1000);
    let started = Instant::now();
    let run = common::run_against(
        &server,
        &[
            "--max-retries",
            "10",
            "notes",
            "import",
            file.to_str().unwrap(),
            "--concurrency",
            "8",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the Retry-After pause was honoured"
    );
    let counts = common::counts_by_content(&server, FIRST_CALL_ID);
    assert_eq!(server.created_note_count(), 1000);
    assert_eq!(counts.len(), 1000);
    assert!(counts.values().all(|c| *c == 1));
    assert_eq!(
        server
            .created_notes(FIRST_CALL_ID)
            .iter()
            .filter(|n| n.flagged == Some(true))
            .count(),
        142
    );
    let summary = common::summary_of(&run);
    assert_eq!(summary["added"], 1000);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["unknown"], 0);
    let rate_limited = summary["rate_limited"].as_u64().unwrap();
    let answered_429 = server
        .requests()
        .iter()
        .filter(|r| r.status == Some(429))
        .count() as u64;
    assert!(
        rate_limited >= 1 && rate_limited == answered_429,
        "{rate_limited} vs {answered_429}"
    );
    // Its pace is shared through the state directory, for other commands under the same key:
    // a file named by a hash, with neither the key nor the server in it.
    let shared: Vec<String> = std::fs::read_dir(common::state_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("rate-")
        })
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    assert!(!shared.is_empty());
    for text in &shared {
        assert!(
            !text.contains(server.api_key()) && !text.contains(&server.base_url()),
            "{text}"
        );
    }

    // Running it again sends nothing: every line is done.
    let requests = server.requests().len();
    let again = common::run_against(
        &server,
        &["notes", "import", file.to_str().unwrap(), "-o", "json"],
    )
    .await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(common::summary_of(&again)["skipped"], 1000);
    assert_eq!(server.requests().len(), requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_import_resumes_without_sending_any_line_twice() {
    let server = MockServer::start().await.unwrap();
    // Every request takes 100 ms, so the run is slow enough to be killed in the middle.
    server.inject_rate(Fault::Delay(Duration::from_millis(100)), 1.0, 1);
    let dir = common::temp_dir("kill");
    let total = 150;
    let file = write_csv(&dir, total);
    let file_arg = file.to_str().unwrap().to_string();
    let mut child = common::command_against(
        &server,
        &["notes", "import", &file_arg, "--concurrency", "4"],
    )
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.created_note_count() < 20 {
        assert!(Instant::now() < deadline, "the import made no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before it was killed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().await.unwrap(); // SIGKILL: no chance to write anything more
    let journal = dir.join("notes.csv.journal");
    let interrupted = in_flight(&journal);
    assert!(
        !interrupted.is_empty(),
        "requests were in flight at the kill"
    );
    assert!(
        interrupted.len() <= 4,
        "at most --concurrency lines in flight: {interrupted:?}"
    );
    // Let the requests the kill cut off finish on the server (or not), as a real API would.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.clear_faults();

    // Re-run without reconciliation: the lines in flight are reported unknown and not sent;
    // everything else is added. (With it, they are looked up: see the reconciliation tests.)
    let run = common::run_against(
        &server,
        &["notes", "import", &file_arg, "--no-reconcile", "-o", "json"],
    )
    .await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    let summary = common::summary_of(&run);
    let unknown = lines_of(&summary["unknown_lines"]);
    assert_eq!(unknown, interrupted);
    assert!(
        summary["unknown_lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["earlier_run"] == true)
    );
    assert_eq!(summary["unknown"], interrupted.len());
    assert!(run.stderr.contains("--retry-unknown"), "{}", run.stderr);
    let counts = common::counts_by_content(&server, FIRST_CALL_ID);
    for n in 1..=total {
        let line = n as u64 + 1;
        let count = counts.get(&format!("note {n}")).copied().unwrap_or(0);
        if unknown.contains(&line) {
            assert!(count <= 1, "line {line} sent {count} times");
        } else {
            assert_eq!(count, 1, "line {line} must be added exactly once");
        }
    }
    assert_eq!(
        summary["added"].as_u64().unwrap() + summary["skipped"].as_u64().unwrap(),
        (total - interrupted.len()) as u64
    );

    // Re-running again changes nothing and still reports them.
    let before = server.created_note_count();
    let run = common::run_against(
        &server,
        &["notes", "import", &file_arg, "--no-reconcile", "-o", "json"],
    )
    .await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert_eq!(server.created_note_count(), before);

    // --retry-unknown sends exactly those lines again, on purpose.
    let run = common::run_against(
        &server,
        &[
            "notes",
            "import",
            &file_arg,
            "--retry-unknown",
            "--no-reconcile",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(common::summary_of(&run)["added"], interrupted.len());
    let counts = common::counts_by_content(&server, FIRST_CALL_ID);
    for n in 1..=total {
        let line = n as u64 + 1;
        let count = counts.get(&format!("note {n}")).copied().unwrap_or(0);
        assert!(count >= 1, "line {line} was never added");
        if count > 1 {
            assert!(
                interrupted.contains(&line) && count == 2,
                "line {line} duplicated without --retry-unknown"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_then_dropped_is_unknown_and_not_duplicated() {
    let server = MockServer::start().await.unwrap();
    server.inject(Fault::SaveThenDrop, 1);
    let dir = common::temp_dir("dropped");
    let file = write_csv(&dir, 5);
    let file_arg = file.to_str().unwrap();
    let run = common::run_against(
        &server,
        &[
            "notes",
            "import",
            file_arg,
            "--concurrency",
            "1",
            "--no-reconcile",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    let summary = common::summary_of(&run);
    assert_eq!(summary["added"], 4);
    assert_eq!(lines_of(&summary["unknown_lines"]), BTreeSet::from([2]));
    assert_eq!(server.created_note_count(), 5, "the dropped one was saved");
    let journal = std::fs::read_to_string(dir.join("notes.csv.journal")).unwrap();
    assert!(
        journal
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|e| e["event"] == "unknown" && e["line"] == 2),
        "{journal}"
    );

    // A plain re-run without reconciliation does not send it again.
    let run = common::run_against(
        &server,
        &["notes", "import", file_arg, "--no-reconcile", "-o", "json"],
    )
    .await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert_eq!(common::summary_of(&run)["skipped"], 4);
    assert_eq!(server.created_note_count(), 5);
    let text = common::redact_dir(&common::without_progress(&run.stderr), &dir);
    insta::assert_snapshot!("import_unknown_summary", text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_reported_with_lines_and_resent_on_a_rerun() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("failures");
    let file = dir.join("notes.jsonl");
    let unknown_call = "0123456789abcdef01234567";
    std::fs::write(
        &file,
        format!(
            "{{\"call_id\":\"{FIRST_CALL_ID}\",\"content\":\"ok 1\"}}\n\
             {{\"call_id\":\"{unknown_call}\",\"content\":\"nowhere\",\"flagged\":true}}\n\
             {{\"call_id\":\"{FIRST_CALL_ID}\",\"content\":\"ok 2\",\"flagged\":\"no\"}}\n"
        ),
    )
    .unwrap();
    let file_arg = file.to_str().unwrap();
    let run = common::run_against(
        &server,
        &["notes", "import", file_arg, "--concurrency", "1"],
    )
    .await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    let text = common::redact_request_ids(&common::redact_dir(
        &common::without_progress(&run.stderr),
        &dir,
    ));
    insta::assert_snapshot!("import_failure_summary", text);
    // Certain failures are sent again on a re-run; the done lines are not.
    let run = common::run_against(&server, &["notes", "import", file_arg, "-o", "json"]).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    let summary = common::summary_of(&run);
    assert_eq!(summary["skipped"], 2);
    assert_eq!(lines_of(&summary["failed_lines"]), BTreeSet::from([2]));
    assert_eq!(summary["failed_lines"][0]["status"], 404);
    assert_eq!(summary["failed_lines"][0]["exit_code"], 4);
    let posts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.contains(unknown_call))
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(server.created_note_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_make_lines_unknown_and_exit_7() {
    let server = MockServer::start().await.unwrap();
    server.inject(Fault::Status(503), 1);
    server.inject(Fault::Status(400), 1);
    let dir = common::temp_dir("server-errors");
    let file = write_csv(&dir, 4);
    let run = common::run_against(
        &server,
        &[
            "notes",
            "import",
            file.to_str().unwrap(),
            "--concurrency",
            "1",
            "--no-reconcile",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 7, "unknown beats failures: {}", run.stderr);
    let summary = common::summary_of(&run);
    assert_eq!(lines_of(&summary["unknown_lines"]), BTreeSet::from([2]));
    assert_eq!(lines_of(&summary["failed_lines"]), BTreeSet::from([3]));
    assert_eq!(summary["failed_lines"][0]["exit_code"], 5);
    assert_eq!(summary["added"], 2);
    assert_eq!(summary["exit_code"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_file_is_reported_whole_and_nothing_is_sent() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("invalid");
    let file = dir.join("review.csv");
    std::fs::write(
        &file,
        format!(
            "call_id,content,flagged\n\
             {FIRST_CALL_ID},fine,\n\
             not-an-id,text,\n\
             {FIRST_CALL_ID},,\n\
             {FIRST_CALL_ID},text,maybe\n\
             {FIRST_CALL_ID},\"unclosed, quote\n"
        ),
    )
    .unwrap();
    let run = common::run_against(&server, &["notes", "import", file.to_str().unwrap()]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    insta::assert_snapshot!("import_invalid", common::redact_dir(&run.stderr, &dir));
    assert!(server.requests().is_empty());
    assert!(
        !dir.join("review.csv.journal").exists(),
        "no journal for a refused file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_counts_and_sends_nothing() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("dry");
    let file = write_csv(&dir, 12);
    let run = common::run(&["notes", "import", file.to_str().unwrap(), "--dry-run"]).await;
    assert_eq!(run.code, 0, "a dry run needs no key: {}", run.stderr);
    insta::assert_snapshot!("import_dry_run", common::redact_dir(&run.stderr, &dir));
    assert!(server.requests().is_empty());
    assert!(!dir.join("notes.csv.journal").exists());
}

/// Failure 3: after a line fails and is corrected, a re-run was refused (exit 2), and the advice
/// (a new --journal) re-sent every line. Now the fixed line is sent, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_line_is_sent_and_nothing_already_added() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("fixed");
    let file = dir.join("notes.csv");
    let wrong = "0123456789abcdef01234567";
    std::fs::write(
        &file,
        format!("call_id,content\n{FIRST_CALL_ID},one\n{wrong},two\n{FIRST_CALL_ID},three\n"),
    )
    .unwrap();
    let file_arg = file.to_str().unwrap();
    let run = common::run_against(&server, &["notes", "import", file_arg, "-o", "json"]).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert_eq!(server.created_note_count(), 2);
    // The line is corrected (and another line added at the top, shifting every line number).
    std::fs::write(
        &file,
        format!(
            "call_id,content\n{FIRST_CALL_ID},zero\n{FIRST_CALL_ID},one\n{FIRST_CALL_ID},two\n{FIRST_CALL_ID},three\n"
        ),
    )
    .unwrap();
    let run = common::run_against(&server, &["notes", "import", file_arg, "-o", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let summary = common::summary_of(&run);
    assert_eq!(summary["added"], 2, "{summary}");
    assert_eq!(summary["skipped"], 2, "{summary}");
    let counts = common::counts_by_content(&server, FIRST_CALL_ID);
    for text in ["zero", "one", "two", "three"] {
        assert_eq!(counts.get(text), Some(&1), "{text}: {counts:?}");
    }
}

/// Failure 1: a trial run against a mock marked every line done, and the real run then skipped
/// them all with exit 0. Now the journal counts only for the API it was written against.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trial_run_on_a_mock_does_not_mark_lines_done_for_the_real_api() {
    let real = MockServer::start().await.unwrap();
    let staging = MockServer::start().await.unwrap();
    let dir = common::temp_dir("destination");
    let file = write_csv(&dir, 5);
    let file_arg = file.to_str().unwrap();
    let trial = common::run(&["--mock", "notes", "import", file_arg, "-o", "json"]).await;
    assert_eq!(trial.code, 0, "{}", trial.stderr);
    assert_eq!(common::summary_of(&trial)["added"], 5);
    let run = common::run_against(&staging, &["notes", "import", file_arg, "-o", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(common::summary_of(&run)["added"], 5);
    let run = common::run_against(&real, &["notes", "import", file_arg, "-o", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(common::summary_of(&run)["added"], 5, "{}", run.stderr);
    assert_eq!(real.created_note_count(), 5);
    // The journal records where each run went, and a hash of the key, never the key.
    let journal = std::fs::read_to_string(dir.join("notes.csv.journal")).unwrap();
    assert!(journal.contains(&real.base_url()), "{journal}");
    assert!(!journal.contains(real.api_key()), "{journal}");
    // And each destination keeps its own progress.
    let run = common::run_against(&staging, &["notes", "import", file_arg, "-o", "json"]).await;
    assert_eq!(common::summary_of(&run)["skipped"], 5);
    assert_eq!(staging.created_note_count(), 5);
}

/// Failure 4: a copy, rename or symlink of the file re-sent everything (the journal was found by
/// path). Now it is found by the file's content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_copied_or_symlinked_file_resumes() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("renamed");
    let file = write_csv(&dir, 6);
    let run = common::run_against(&server, &["notes", "import", file.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let renamed = dir.join("renamed.csv");
    std::fs::rename(&file, &renamed).unwrap();
    let copy_dir = common::temp_dir("renamed-copy");
    let copy = copy_dir.join("copy.csv");
    std::fs::copy(&renamed, &copy).unwrap();
    let link = copy_dir.join("link.csv");
    std::os::unix::fs::symlink(&renamed, &link).unwrap();
    for path in [&renamed, &copy, &link] {
        let run = common::run_against(
            &server,
            &["notes", "import", path.to_str().unwrap(), "-o", "json"],
        )
        .await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(
            common::summary_of(&run)["skipped"],
            6,
            "{}: {}",
            path.display(),
            run.stderr
        );
        assert!(run.stderr.contains("same content"), "{}", run.stderr);
    }
    assert_eq!(server.created_note_count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_stops_the_import_with_exit_3() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("badkey");
    let file = write_csv(&dir, 50);
    let base_url = server.base_url();
    let run = common::run(&[
        "--base-url",
        &base_url,
        "--api-key",
        "wrong_key",
        "notes",
        "import",
        file.to_str().unwrap(),
        "-o",
        "json",
    ])
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        server.requests().len() <= 4,
        "it stops at the first 401s: {}",
        server.requests().len()
    );
    let summary = common::summary_of(&run);
    assert!(summary["not_sent"].as_u64().unwrap() >= 46, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_format_comes_from_the_extension_or_the_flag() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("formats");
    let ndjson = dir.join("a.ndjson");
    std::fs::write(
        &ndjson,
        format!("{{\"call_id\":\"{FIRST_CALL_ID}\",\"content\":\"nd\"}}\n"),
    )
    .unwrap();
    // A .txt is delimited text (issue 28: Excel's "Unicode Text"); another extension needs
    // --format.
    let txt = dir.join("a.txt");
    std::fs::write(&txt, format!("call_id,content\n{FIRST_CALL_ID},tx\n")).unwrap();
    let dat = dir.join("a.dat");
    std::fs::write(&dat, format!("call_id,content\n{FIRST_CALL_ID},dat\n")).unwrap();
    let run = common::run_against(&server, &["notes", "import", ndjson.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = common::run_against(&server, &["notes", "import", txt.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = common::run_against(&server, &["notes", "import", dat.to_str().unwrap()]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--format"), "{}", run.stderr);
    let run = common::run_against(
        &server,
        &["notes", "import", dat.to_str().unwrap(), "--format", "csv"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.created_note_count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_finishes_the_lines_in_flight_and_exits_130() {
    let server = MockServer::start().await.unwrap();
    server.inject_rate(Fault::Delay(Duration::from_millis(100)), 1.0, 3);
    let dir = common::temp_dir("sigint");
    let file = write_csv(&dir, 100);
    let file_arg = file.to_str().unwrap().to_string();
    let child = common::command_against(&server, &["notes", "import", &file_arg, "-o", "json"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.created_note_count() < 8 {
        assert!(Instant::now() < deadline, "the import made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let output = tokio::time::timeout(common::RUN_LIMIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["interrupted"], true);
    assert_eq!(summary["unknown"], 0, "the lines in flight were waited for");
    let added = summary["added"].as_u64().unwrap();
    assert!((8..100).contains(&added), "{summary}");
    assert_eq!(summary["not_sent"].as_u64().unwrap(), 100 - added);
    // Everything in flight was finished and journaled: nothing is unknown on the next run.
    assert!(in_flight(&dir.join("notes.csv.journal")).is_empty());
    server.clear_faults();
    let run = common::run_against(&server, &["notes", "import", &file_arg, "-o", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(common::summary_of(&run)["skipped"], added);
    assert_eq!(common::counts_by_content(&server, FIRST_CALL_ID).len(), 100);
    assert_eq!(server.created_note_count(), 100);
}

/// Failure 2: two overlapping imports of one file added 68 notes for 40 lines. Now the second
/// is refused at once and sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_import_of_the_same_file_is_refused_while_one_runs() {
    let server = MockServer::start().await.unwrap();
    server.inject_rate(Fault::Delay(Duration::from_millis(200)), 1.0, 1);
    let dir = common::temp_dir("concurrent");
    let file = write_csv(&dir, 40);
    let file_arg = file.to_str().unwrap().to_string();
    let first = common::command_against(
        &server,
        &["notes", "import", &file_arg, "--concurrency", "2"],
    )
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.created_note_count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the first import made no progress"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The same journal, and the same file under another journal: both refused.
    let journal = dir.join("other.journal");
    for extra in [&[][..], &["--journal", journal.to_str().unwrap()][..]] {
        let mut second = vec!["notes", "import", file_arg.as_str()];
        second.extend_from_slice(extra);
        let started = Instant::now();
        let run = common::run_against(&server, &second).await;
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains("another import"), "{}", run.stderr);
        assert!(run.stderr.contains("nothing was sent"), "{}", run.stderr);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "refused at once"
        );
    }
    // The first run was busy all along: slow requests, 40 lines, two at a time (about 4 s).
    assert!(
        server.created_note_count() < 40,
        "the first import was still running"
    );
    let output = first.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(0));
    server.clear_faults();
    let counts = common::counts_by_content(&server, FIRST_CALL_ID);
    assert_eq!(server.created_note_count(), 40);
    assert!(counts.values().all(|c| *c == 1), "no duplicates");
}

/// Failure 5: an unclosed CSV quote silently merged the following rows into one note; exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unclosed_quote_is_refused_with_its_line_and_nothing_is_sent() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("quote");
    let file = dir.join("notes.csv");
    std::fs::write(
        &file,
        format!(
            "call_id,content\n{FIRST_CALL_ID},first\n{FIRST_CALL_ID},\"carrier said \"\"ok\"\", then\n{FIRST_CALL_ID},third\n{FIRST_CALL_ID},fourth\n"
        ),
    )
    .unwrap();
    let run = common::run_against(&server, &["notes", "import", file.to_str().unwrap()]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("line 3: a quoted field"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("line 4"), "{}", run.stderr);
    assert!(server.requests().is_empty());
}

/// Identical lines are reported before sending, and sent only with --allow-duplicates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_lines_are_refused_unless_allowed() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("duplicates");
    let file = dir.join("notes.csv");
    std::fs::write(
        &file,
        format!(
            "call_id,content\n{FIRST_CALL_ID},same\n{FIRST_CALL_ID},other\n{FIRST_CALL_ID},same\n"
        ),
    )
    .unwrap();
    let file_arg = file.to_str().unwrap();
    let run = common::run_against(&server, &["notes", "import", file_arg]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("line 4: identical to line 2"),
        "{}",
        run.stderr
    );
    assert!(server.requests().is_empty());
    let run = common::run_against(
        &server,
        &[
            "notes",
            "import",
            file_arg,
            "--allow-duplicates",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(common::summary_of(&run)["added"], 3);
    // A re-run knows both copies are done.
    let run = common::run_against(
        &server,
        &[
            "notes",
            "import",
            file_arg,
            "--allow-duplicates",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(common::summary_of(&run)["skipped"], 3);
    assert_eq!(common::counts_by_content(&server, FIRST_CALL_ID)["same"], 2);
}

/// Failure 9 (part): standard input and pipes were refused with "no such file".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_input_is_read_with_a_journal() {
    use tokio::io::AsyncWriteExt as _;
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("stdin");
    let text = format!("call_id,content\n{FIRST_CALL_ID},piped one\n{FIRST_CALL_ID},piped two\n");
    let run = common::run_against(&server, &["notes", "import", "-", "--format", "csv"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--journal"), "{}", run.stderr);
    let journal = dir.join("stdin.journal");
    for expected_added in [2, 0] {
        let mut args = common::mock_args(&server);
        args.extend(
            [
                "notes",
                "import",
                "-",
                "--format",
                "csv",
                "--journal",
                journal.to_str().unwrap(),
                "-o",
                "json",
            ]
            .map(String::from),
        );
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut command = common::command(&args);
        command.stdin(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).await.unwrap();
        drop(stdin);
        let output = child.wait_with_output().await.unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(summary["added"], expected_added, "{stderr}");
    }
    assert_eq!(server.created_note_count(), 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&journal).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the journal is private");
    }
}

/// Failure 9 (part): one damaged line in the middle made the journal unusable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_journal_line_is_reported_and_skipped() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("damaged");
    let file = write_csv(&dir, 4);
    let file_arg = file.to_str().unwrap();
    let run = common::run_against(&server, &["notes", "import", file_arg]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let journal = dir.join("notes.csv.journal");
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(3, "\u{0}\u{0}garbage from a disk error");
    std::fs::write(&journal, lines.join("\n") + "\n").unwrap();
    let run = common::run_against(&server, &["notes", "import", file_arg, "-o", "json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("line 4 of the journal"),
        "{}",
        run.stderr
    );
    assert_eq!(common::summary_of(&run)["skipped"], 4);
    assert_eq!(server.created_note_count(), 4);
}

/// Failure 7: a huge Retry-After panicked (Instant overflow), a long one hung the import. Now
/// the import stops; the refused line is not sent (a rate limit fails no line), and the summary
/// names the wait the server asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_retry_after_neither_panics_nor_hangs() {
    let server = MockServer::start().await.unwrap();
    refuse_next(&server, u64::MAX);
    let dir = common::temp_dir("retry-after");
    let file = write_csv(&dir, 5);
    let file_arg = file.to_str().unwrap();
    let started = Instant::now();
    let run = common::run_against(
        &server,
        &[
            "notes",
            "import",
            file_arg,
            "--concurrency",
            "1",
            "-o",
            "json",
        ],
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(run.code, 5, "{}", run.stderr);
    let summary = common::summary_of(&run);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["not_sent"], 5);
    assert_eq!(summary["unknown"], 0);
    // A day at most: the wait the hold keeps.
    assert!(summary["retry_after_secs"].as_u64().unwrap() > 86_000);
    // A run started while the hold is shared (within seconds) sends nothing either, and says why.
    let args = ["notes", "import", file_arg, "-o", "json"];
    let run = common::run_against(&server, &args).await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("asks to wait"), "{}", run.stderr);
    assert_eq!(server.created_note_count(), 0);
    // A run later sends them all.
    let run = common::run_later_against(&server, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.created_note_count(), 5);
}

/// A bulk run waits out a `Retry-After` up to `--max-retry-after` (15 minutes unless told): one
/// that asks for longer stops the run, fails no line (they are not sent, and a re-run sends
/// them), and exits 5, as a refusal of the API, not 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_beyond_max_retry_after_stops_the_run_and_fails_no_line() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("max-retry-after");
    let file = write_csv(&dir, 4);
    let file_arg = file.to_str().unwrap();
    let import = |wait| {
        [
            "--max-retry-after",
            wait,
            "notes",
            "import",
            file_arg,
            "--concurrency",
            "1",
            "-o",
            "json",
        ]
    };
    refuse_next(&server, 2);
    let run = common::run_against(&server, &import("1.5")).await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    let summary = common::summary_of(&run);
    assert_eq!(
        (&summary["failed"], &summary["not_sent"], &summary["added"]),
        (&0.into(), &4.into(), &0.into())
    );
    assert_eq!(summary["retry_after_secs"], 2);
    assert!(run.stderr.contains("--max-retry-after"), "{}", run.stderr);
    assert_eq!(server.created_note_count(), 0);

    // Allowed the wait, the same run waits it out and sends every line once.
    refuse_next(&server, 2);
    let started = Instant::now();
    let run = common::run_against(&server, &import("3")).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(started.elapsed() >= Duration::from_secs(2));
    let summary = common::summary_of(&run);
    assert_eq!(
        (&summary["added"], &summary["rate_limited"]),
        (&4.into(), &1.into())
    );
    assert!(summary.get("retry_after_secs").is_none(), "{summary}");
    assert_eq!(server.created_note_count(), 4);
}

/// While a `429`'s `Retry-After` of seconds holds every request, the progress says so, and how
/// long is left, rather than a pace nothing goes at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_says_when_the_run_waits_as_the_server_asked() {
    let server = MockServer::builder()
        .rate_limit(happyrobot_mock::RateLimit::per_second(0.25))
        .start()
        .await
        .unwrap();
    let dir = common::temp_dir("progress-wait");
    let file = write_csv(&dir, 2);
    let run = common::run_against(&server, &["notes", "import", file.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("progress:") && l.contains("s as the server asked")),
        "{}",
        run.stderr
    );
    assert_eq!(server.created_note_count(), 2);
}

/// Failure 8 (part): a journal that cannot be written (the disk is full before the first entry):
/// nothing is sent, and the message says so. (A journal that is a device, such as `/dev/full`, is
/// refused before anything is read: issue 20.)
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_before_sending_sends_nothing() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("full");
    let file = write_csv(&dir, 3);
    std::os::unix::fs::symlink("/dev/full", dir.join("notes.csv.journal")).unwrap();
    let run = common::run_against(&server, &["notes", "import", file.to_str().unwrap()]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    assert!(run.stderr.contains("nothing was sent"), "{}", run.stderr);
    assert!(server.requests().is_empty());
    if !have_prlimit() {
        eprintln!("prlimit is not installed: the full disk itself is skipped");
        return;
    }
    // A file size limit of 10 bytes: the journal's first entry cannot be written.
    std::fs::remove_file(dir.join("notes.csv.journal")).unwrap();
    let mut args = vec![
        "-c".to_string(),
        "trap '' XFSZ; exec prlimit --fsize=10:10 \"$0\" \"$@\"".to_string(),
        env!("CARGO_BIN_EXE_happyrobot").to_string(),
    ];
    args.extend(common::mock_args(&server));
    args.extend(["notes", "import", file.to_str().unwrap()].map(String::from));
    let mut command = tokio::process::Command::new("sh");
    command
        .args(&args)
        .env("HAPPYROBOT_STATE_DIR", common::state_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let run = common::run_command(command).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("nothing was sent"), "{}", run.stderr);
    assert!(server.requests().is_empty());
}

fn send_signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Starts an import of `file` against `server`, with the given extra options.
fn spawn_import(server: &MockServer, file: &Path, extra: &[&str]) -> tokio::process::Child {
    let mut args = vec!["notes", "import", file.to_str().unwrap(), "-o", "json"];
    args.extend(extra);
    common::command_against(server, &args).spawn().unwrap()
}

/// Whether `prlimit` (util-linux), which the full-disk tests cap the journal's size with, is here.
fn have_prlimit() -> bool {
    std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok()
}

async fn wait_for_requests(server: &MockServer, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.requests().len() < count {
        assert!(Instant::now() < deadline, "the import made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Failure 6: SIGTERM and SIGHUP left no summary. Now they stop the import like Ctrl-C, with
/// exit 143 and 129.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sighup_finish_the_lines_in_flight_and_print_the_summary() {
    for (signal, code) in [("TERM", 143), ("HUP", 129)] {
        let server = MockServer::start().await.unwrap();
        server.inject_rate(Fault::Delay(Duration::from_millis(100)), 1.0, 3);
        let dir = common::temp_dir(&format!("sig{signal}"));
        let file = write_csv(&dir, 60);
        let child = spawn_import(&server, &file, &[]);
        wait_for_requests(&server, 6).await;
        send_signal(child.id().unwrap(), signal);
        let output = tokio::time::timeout(common::RUN_LIMIT, child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{signal}: {stderr}");
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(summary["interrupted"], true);
        assert_eq!(summary["unknown"], 0, "the lines in flight were waited for");
        assert!(stderr.contains("Import of"), "the text summary: {stderr}");
        server.clear_faults();
        let run = common::run_against(&server, &["notes", "import", file.to_str().unwrap()]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(server.created_note_count(), 60);
        assert_eq!(common::counts_by_content(&server, FIRST_CALL_ID).len(), 60);
    }
}

/// Failure 6: SIGINT was ignored once the file was read, and a kill during a 429 pause turned
/// lines that were certainly not sent into "unknown". Now Ctrl-C during the pause stops at once,
/// and the next run sends those lines, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_rate_limit_pause_leaves_nothing_unknown() {
    let server = MockServer::start().await.unwrap();
    refuse_next(&server, 25);
    let dir = common::temp_dir("pause");
    let file = write_csv(&dir, 6);
    let child = spawn_import(&server, &file, &["--concurrency", "1"]);
    wait_for_requests(&server, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    send_signal(child.id().unwrap(), "INT");
    let output = tokio::time::timeout(common::RUN_LIMIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "Ctrl-C does not wait out the pause"
    );
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["unknown"], 0, "{summary}");
    assert_eq!(summary["not_sent"], 6, "{summary}");
    assert!(in_flight(&dir.join("notes.csv.journal")).is_empty());
    let run = common::run_against(&server, &["notes", "import", file.to_str().unwrap()]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.created_note_count(), 6);
    assert!(
        common::counts_by_content(&server, FIRST_CALL_ID)
            .values()
            .all(|c| *c == 1)
    );
}

/// Failure 6: with stderr closed (Ctrl-C on `... 2>&1 | tee log`), printing panicked: exit 101.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stderr_and_stdout_never_make_it_panic() {
    let server = MockServer::start().await.unwrap();
    server.inject_rate(Fault::Delay(Duration::from_millis(100)), 1.0, 3);
    let dir = common::temp_dir("closed");
    let file = write_csv(&dir, 40);
    let mut child = spawn_import(&server, &file, &[]);
    drop(child.stderr.take());
    drop(child.stdout.take());
    wait_for_requests(&server, 4).await;
    send_signal(child.id().unwrap(), "INT");
    let status = tokio::time::timeout(common::RUN_LIMIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(130));
}

/// A second Ctrl-C quits at once; what was in flight is reported unknown on the next run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_quits_at_once() {
    let server = MockServer::start().await.unwrap();
    server.inject_rate(Fault::Delay(Duration::from_secs(5)), 1.0, 3);
    let dir = common::temp_dir("twice");
    let file = write_csv(&dir, 10);
    let child = spawn_import(&server, &file, &["--concurrency", "2"]);
    wait_for_requests(&server, 2).await;
    let started = Instant::now();
    let pid = child.id().unwrap();
    send_signal(pid, "INT");
    tokio::time::sleep(Duration::from_millis(300)).await;
    send_signal(pid, "INT");
    let output = tokio::time::timeout(common::RUN_LIMIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(130));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "it did not wait"
    );
    // Every add the server received is journaled as done or, when its answer never came, as in
    // flight (a `start` with no outcome), which the next run settles. The client's slow start
    // sends its first requests one at a time, so how many were in flight depends on timing.
    let journal = dir.join("notes.csv.journal");
    let posts = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    let unanswered = in_flight(&journal).len();
    let done = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""event":"done""#))
        .count();
    assert!(unanswered >= 1, "nothing was in flight");
    assert_eq!(unanswered + done, posts, "every add sent is journaled");
}

/// Failure 8: the disk filling up while the journal is written. The line whose note was added
/// but whose `done` entry could not be written counts as added, the error names it, and the
/// next run lists it as unknown (never "not sent"). The journal is capped with a file size
/// limit (prlimit), exactly at the byte where that entry ends.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_after_a_note_was_added_counts_it_as_added() {
    if !have_prlimit() {
        eprintln!("prlimit is not installed: skipped");
        return;
    }
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("diskfull");
    let file = write_csv(&dir, 3);
    let file_arg = file.to_str().unwrap();
    // A first run measures the entries' sizes (they do not vary between runs).
    let j1 = dir.join("j1.journal");
    let run = common::run_against(
        &server,
        &[
            "notes",
            "import",
            file_arg,
            "--concurrency",
            "1",
            "--journal",
            j1.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let sizes: Vec<u64> = std::fs::read_to_string(&j1)
        .unwrap()
        .lines()
        .map(|l| l.len() as u64 + 1)
        .collect();
    assert_eq!(sizes.len(), 7, "run, then start and done for 3 lines");
    // Room for the run entry, line 2, and line 3's start; its done entry is cut before its `}`.
    let limit = sizes[..4].iter().sum::<u64>() + sizes[4] - 2;
    let j2 = dir.join("j2.journal");
    let mut args = vec![
        "-c".to_string(),
        format!("trap '' XFSZ; exec prlimit --fsize={limit}:{limit} \"$0\" \"$@\""),
        env!("CARGO_BIN_EXE_happyrobot").to_string(),
    ];
    args.extend(common::mock_args(&server));
    args.extend(
        [
            "notes",
            "import",
            file_arg,
            "--concurrency",
            "1",
            "--journal",
            j2.to_str().unwrap(),
            "-o",
            "json",
        ]
        .map(String::from),
    );
    let mut command = tokio::process::Command::new("sh");
    command
        .args(&args)
        .env("HAPPYROBOT_STATE_DIR", common::state_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let run = common::run_command(command).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("Line 3 was added"), "{}", run.stderr);
    let first = common::summary_of(&run);
    assert_eq!(first["added"], 2, "{first}");
    assert!(
        first["journal_failures"][0]
            .as_str()
            .unwrap()
            .contains("Line 3 was added"),
        "{first}"
    );
    assert_eq!(first["not_sent"], 1, "{first}");
    assert_eq!(server.created_note_count(), 3 + 2);
    // The next run: line 3 is unknown in the journal, so it is looked up on the call (it was
    // added: skipped, never sent again), and line 4 is sent.
    let run = common::run_against(
        &server,
        &[
            "notes",
            "import",
            file_arg,
            "--journal",
            j2.to_str().unwrap(),
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let second = common::summary_of(&run);
    assert_eq!(second["unknown"], 0, "{second}");
    assert_eq!(second["skipped"], 2, "{second}");
    assert_eq!(second["reconciled"]["found"], 1, "{second}");
    assert_eq!(second["added"], 1);
    assert_eq!(server.created_note_count(), 3 + 3);
}

/// Failure 9: exit 2 ("nothing was sent") after notes were sent. A file changed in the middle of
/// an import (a later line made invalid) stops it, with exit 1, never 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_during_the_import_never_exits_2_after_sending() {
    use std::io::{Seek as _, SeekFrom, Write as _};
    let server = MockServer::start().await.unwrap();
    server.inject_rate(Fault::Delay(Duration::from_millis(5)), 1.0, 1);
    let dir = common::temp_dir("changed");
    // Long enough that the reader (at most a few hundred lines ahead) has not reached line 551.
    let file = write_csv(&dir, 600);
    let child = spawn_import(&server, &file, &["--concurrency", "1"]);
    while server.created_note_count() < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Line 551 (note 550) gets an invalid call ID, in place: same length, same offsets.
    let text = std::fs::read_to_string(&file).unwrap();
    let offset = text.find(&format!("{FIRST_CALL_ID},note 550,")).unwrap();
    let mut handle = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    handle.seek(SeekFrom::Start(offset as u64)).unwrap();
    handle.write_all(b"??").unwrap();
    drop(handle);
    let output = tokio::time::timeout(common::RUN_LIMIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("changed while it was being imported"),
        "{stderr}"
    );
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["exit_code"], 1);
    assert!(summary["added"].as_u64().unwrap() >= 3);
}
