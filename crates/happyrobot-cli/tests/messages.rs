//! Issue 28, items 5-7: what the command says is true. The two misleading summaries reproduced
//! against the mock (a `Retry-After: 1000` that stopped the run; a 503 outage), the undo's summary
//! saying what is left, flagged counts; `calls list` warnings for a status or type no documented
//! value matches, and nothing printed before its first page; `--mock` with calls to list; and a
//! refused file's results file from the command line.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location, helpers included"
)]

mod common;

use std::path::{Path, PathBuf};

use happyrobot_mock::{FIRST_CALL_ID, Fault, MockServer};

/// A CSV of `count` notes on the first call, every third flagged.
fn write_csv(dir: &Path, count: usize) -> PathBuf {
    let path = dir.join("notes.csv");
    let mut text = String::from("call_id,content,flagged\n");
    for n in 1..=count {
        let flag = if n % 3 == 0 { "x" } else { "" };
        text.push_str(&format!("{FIRST_CALL_ID},note {n},{flag}\n"));
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// A single command refused with a `Retry-After` longer than it waits says so in the command's
/// words (its flag, not the library's option).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_too_long_for_a_single_command_names_the_flag() {
    let server = MockServer::start().await.unwrap();
    server.inject(
        Fault::RateLimited {
            retry_after_secs: 100,
        },
        1,
    );
    let run = common::run_against(&server, &["calls", "get", FIRST_CALL_ID]).await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        run.stderr.contains("--max-retry-after (30 s)"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("max_retry_after"), "{}", run.stderr);
}

/// A `Retry-After` longer than a run waits unless told (900 s) stops it, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_that_stops_the_run_is_not_said_to_have_been_sent_again() {
    let server = MockServer::start().await.unwrap();
    server.inject(
        Fault::RateLimited {
            retry_after_secs: 1000,
        },
        1,
    );
    let dir = common::temp_dir("msg-retry-after");
    let file = write_csv(&dir, 4);
    let file = file.to_str().unwrap();
    let args = ["notes", "import", file, "--concurrency", "1"];
    let run = common::run_against(&server, &args).await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(
        !run.stderr.contains("sent again in their turn"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("the last asked to wait 1000 s, longer than a run waits")
            && run
                .stderr
                .contains("run the same command later: it sends what is not done"),
        "{}",
        run.stderr
    );
    assert_eq!(server.created_note_count(), 0);
    // As said: the same command, later, sends them.
    let run = common::run_later_against(&server, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.created_note_count(), 4);
    assert!(
        run.stderr.contains("added:    4 (1 flagged)"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_an_outage_the_advice_is_a_plain_re_run_later_and_it_settles_every_line() {
    let server = MockServer::start().await.unwrap();
    // Every request fails with 503 for a while: the adds and the lookups after them.
    server.inject(Fault::Status(503), 1000);
    let dir = common::temp_dir("msg-outage");
    let file = write_csv(&dir, 3);
    let file = file.to_str().unwrap();
    let args = [
        "--max-retries",
        "0",
        "notes",
        "import",
        file,
        "--concurrency",
        "1",
    ];
    let run = common::run_against(&server, &args).await;
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(
        run.stderr.contains("Run the same command again later"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr
            .contains("run the same command with --retry-unknown"),
        "no advice that risks duplicates: {}",
        run.stderr
    );
    // The outage ends; the plain re-run settles every line, each note once.
    server.clear_faults();
    let run = common::run_against(&server, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let counts = common::counts_by_content(&server, FIRST_CALL_ID);
    for n in 1..=3 {
        assert!(
            counts.get(&format!("note {n}")).copied().unwrap_or(0) <= 1,
            "{counts:?}"
        );
    }
    let held = server.notes_by_content(Some(FIRST_CALL_ID));
    for n in 1..=3 {
        assert_eq!(held.get(&format!("note {n}")), Some(&1), "{held:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_undo_summary_says_what_is_left_to_do() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("msg-undo");
    let file = write_csv(&dir, 3);
    let file = file.to_str().unwrap();
    let run = common::run_against(&server, &["notes", "import", file]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // One delete fails: something is left, and the summary says what to do about it.
    server.inject(Fault::Status(400), 1);
    let undo = ["notes", "import", file, "--undo", "--concurrency", "1"];
    let run = common::run_against(&server, &undo).await;
    assert_eq!(run.code, 5, "{}", run.stderr);
    // Line 2 failed; lines 3 and 4 were deleted, the note of line 4 flagged.
    assert!(
        run.stderr
            .contains("deleted:     2 (0 of them already gone, 1 flagged)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "Left to do: 1 note may still be on its call: run the same command again to finish \
             the undo"
        ),
        "{}",
        run.stderr
    );
    let run = common::run_against(&server, &undo).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("Nothing left to do"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_file_gets_its_results_file_in_the_commands_words() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("msg-refused-results");
    let file = dir.join("review.csv");
    std::fs::write(
        &file,
        format!("call_id,content\n{FIRST_CALL_ID},same\n{FIRST_CALL_ID},same\nbad id,x\n"),
    )
    .unwrap();
    let run = common::run_against(
        &server,
        &["notes", "import", file.to_str().unwrap(), "--report"],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let results = dir.join("review.results.csv");
    assert!(
        run.stderr.contains(&format!(
            "each line's error is in the results file {}",
            results.display()
        )),
        "{}",
        run.stderr
    );
    assert!(server.requests().is_empty());
    let text = std::fs::read_to_string(&results).unwrap();
    assert!(text.starts_with('\u{feff}'), "a byte-order mark");
    let lines: Vec<&str> = text.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        lines[0],
        "call_id,content,result_row,result_status,result_note_id,result_error"
    );
    assert!(lines[1].ends_with(",same,2,not sent,,"), "{}", lines[1]);
    assert!(
        lines[2].contains(",same,3,invalid,,") && lines[2].contains("--allow-duplicates"),
        "the command's flag, not the library's option: {}",
        lines[2]
    );
    assert!(lines[3].starts_with(",,4,invalid,,"), "{}", lines[3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_list_warns_of_a_status_or_type_no_documented_value_matches() {
    let server = MockServer::builder().seed_calls(30).start().await.unwrap();
    let run = common::run_against(
        &server,
        &[
            "calls",
            "list",
            "--status",
            "Faild,no ANSWER",
            "--type",
            "phone",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "the value is still sent: {}", run.stderr);
    assert!(
        run.stderr
            .contains("warning: --status \"Faild\" is none of the documented statuses")
            && run.stderr.contains("No answer, Canceled, Failed"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("\"no ANSWER\""), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "warning: --type \"phone\" is none of the documented types (Inbound, Outbound)"
        ),
        "{}",
        run.stderr
    );
    let query = server
        .requests()
        .into_iter()
        .map(|r| r.path)
        .find(|p| p.contains("/calls?"))
        .unwrap_or_default();
    assert!(query.contains("Faild"), "sent as given: {query}");
    // A documented value in any case gets no warning.
    let run = common::run_against(&server, &["calls", "list", "--status", "failed"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("warning"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_listing_prints_nothing_not_even_a_header() {
    let server = MockServer::start().await.unwrap();
    server.inject(Fault::Status(500), 100);
    for output in ["csv", "text", "json"] {
        let run = common::run_against(
            &server,
            &["--max-retries", "0", "calls", "list", "--output", output],
        )
        .await;
        assert_eq!(run.code, 5, "{output}: {}", run.stderr);
        assert_eq!(run.stdout, "", "{output}: nothing on stdout");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_of_a_trial_run_has_failed_calls_to_list() {
    let run = common::run(&["--mock", "calls", "list", "--status", "Failed"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rows: Vec<&str> = run.stdout.lines().skip(1).collect();
    assert!(rows.len() >= 2, "{}", run.stdout);
    assert!(rows.iter().all(|r| r.contains("Failed")), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("for this command only (nothing is kept after it)"),
        "{}",
        run.stderr
    );
    let run = common::run(&["--mock", "calls", "list"]).await;
    let statuses: std::collections::HashSet<&str> = happyrobot::types::CallStatus::KNOWN
        .iter()
        .copied()
        .filter(|s| run.stdout.contains(s))
        .collect();
    assert_eq!(
        statuses.len(),
        happyrobot::types::CallStatus::KNOWN.len(),
        "every status: {}",
        run.stdout
    );
}

/// A terminal's output as the lines a person sees drawn: escape sequences taken out, split at
/// every carriage return and line feed.
fn drawn(output: &str) -> Vec<String> {
    let mut text = String::new();
    let mut chars = output.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, then one final byte in @..~.
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        text.push(c);
    }
    text.split(['\r', '\n']).map(str::to_string).collect()
}

/// On a terminal of 100 columns (a pseudo-terminal from util-linux's `script`), the progress line
/// never goes past the width (so it never wraps), and shows the last server error as it happens. Without `script` the test says so and passes.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_100_columns_the_progress_line_never_wraps_and_shows_the_last_error() {
    if !common::have_terminal() {
        return;
    }
    let server = MockServer::start().await.unwrap();
    server.inject(Fault::Status(400), 1);
    server.inject_rate(Fault::Delay(std::time::Duration::from_millis(120)), 1.0, 1);
    let dir = common::temp_dir("msg-progress");
    let file = write_csv(&dir, 20);
    let line = format!(
        "stty cols 100 rows 40; {} --base-url {} --api-key {} notes import {} --concurrency 1",
        env!("CARGO_BIN_EXE_happyrobot"),
        server.base_url(),
        server.api_key(),
        file.display()
    );
    let (code, shown) = common::run_on_terminal(&line).await;
    assert_eq!(code, Some(5), "{shown}");
    let bars: Vec<String> = drawn(&shown)
        .into_iter()
        .filter(|l| l.starts_with('[') && l.contains("/20 "))
        .collect();
    assert!(bars.len() > 3, "the progress line was drawn: {shown}");
    for bar in &bars {
        // The drawing pads the row with spaces to the terminal's width, never past it; the text
        // itself stops short of the last column.
        let (row, text) = (bar.chars().count(), bar.trim_end().chars().count());
        assert!(row <= 100, "{row} columns: {bar}");
        assert!(text < 100, "{text} columns of text: {bar}");
    }
    assert!(
        bars.iter()
            .any(|b| b.contains("failed 1; last error: line 2: 400 Bad Request")),
        "{bars:#?}"
    );
    // The summary comes after the display was cleared: its first line starts a line of its own.
    assert!(
        drawn(&shown).iter().any(|l| l.starts_with("Import of ")),
        "{shown}"
    );
}
