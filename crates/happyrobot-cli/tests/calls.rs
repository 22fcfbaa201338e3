//! `happyrobot calls list` against a seeded mock: the filters find what the mock holds, every
//! output format, and the round trip of issue 22: the calls of a filter as CSV, one note on each
//! with `notes import --content`, and `--undo`; and that of issue 32: the calls as a workbook of
//! text cells (nothing the server sent runs as a formula), a note written in each row, imported
//! back once, with a workbook report; and CSV cells a spreadsheet would run made inert.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::collections::HashSet;
use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
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

/// The text a call's `from` and `to` hold in the issue: a formula, and a function call.
const HYPERLINK: &str = "=HYPERLINK(\"http://x\",\"y\")";
const SUM: &str = "@SUM(1+1)";

/// A mock whose first call was placed from a formula to a function call, and whose second call
/// has a phone number.
async fn with_formulas() -> (MockServer, String, String) {
    let server = MockServer::start().await.unwrap();
    let mut call = happyrobot_mock::seeded_call(3);
    let metadata = call.metadata.get_or_insert_with(Default::default);
    metadata.from = Some(HYPERLINK.to_string());
    metadata.to = Some(SUM.to_string());
    let formula_id = call.id.clone();
    assert!(server.add_call(call));
    let mut call = happyrobot_mock::seeded_call(4);
    call.metadata.get_or_insert_with(Default::default).from = Some("+13125550142".to_string());
    let phone_id = call.id.clone();
    assert!(server.add_call(call));
    (server, formula_id, phone_id)
}

/// The rows of a workbook's one sheet, `name`, each cell text (anything else fails the test),
/// after checking that no cell holds a formula.
fn text_rows(bytes: Vec<u8>, name: &str) -> Vec<Vec<String>> {
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).unwrap();
    assert_eq!(book.sheet_names(), [name]);
    let formulas = book.worksheet_formula(name).unwrap();
    assert!(
        formulas.cells().all(|(_, _, f)| f.is_empty()),
        "no cell is a formula"
    );
    let range = book.worksheet_range(name).unwrap();
    range
        .rows()
        .map(|row| {
            row.iter()
                .map(|cell| match cell {
                    Data::String(text) => text.clone(),
                    Data::Empty => String::new(),
                    other => panic!("not a text cell: {other:?}"),
                })
                .collect()
        })
        .collect()
}

/// The row of a call in a listing's rows.
fn row_of<'a>(rows: &'a [Vec<String>], id: &str) -> &'a [String] {
    rows.iter().find(|r| r[0] == id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workbook_of_calls_to_a_pipe_holds_text_cells_and_no_formula() {
    let (server, formula_id, phone_id) = with_formulas().await;
    // Standard output is a pipe here: the workbook is written to it.
    let output = common::command_against(&server, &["calls", "list", "--output", "xlsx"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("5 calls written to standard output"),
        "{stderr}"
    );
    let rows = text_rows(output.stdout, "calls");
    assert_eq!(
        rows[0],
        [
            "call_id", "created", "status", "type", "from", "to", "campaign", "notes", "content",
            "flagged"
        ]
    );
    assert_eq!(rows.len(), 6, "a header and the five calls");
    let row = row_of(&rows, &formula_id);
    assert_eq!((row[4].as_str(), row[5].as_str()), (HYPERLINK, SUM));
    assert_eq!(row_of(&rows, &phone_id)[4], "+13125550142");
    // The dates as the server wrote them.
    let call = server.call(&phone_id).unwrap();
    assert_eq!(
        row_of(&rows, &phone_id)[1],
        call.created.unwrap().to_string()
    );
    // --output-file is for the workbook only.
    let run = common::run_against(
        &server,
        &[
            "calls",
            "list",
            "--output",
            "csv",
            "--output-file",
            "x.xlsx",
        ],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--output-file is for --output xlsx"),
        "{}",
        run.stderr
    );
    // A workbook that cannot be written is a local failure.
    let run = common::run_against(
        &server,
        &[
            "calls",
            "list",
            "-o",
            "xlsx",
            "--output-file",
            "/nonexistent-dir/calls.xlsx",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the workbook cannot be written to /nonexistent-dir/calls.xlsx"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_of_calls_makes_formulas_inert_and_keeps_phone_numbers() {
    let (server, formula_id, phone_id) = with_formulas().await;
    let run = common::run_against(&server, &["calls", "list", "--output", "csv"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut reader = csv::Reader::from_reader(run.stdout.as_bytes());
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    let row = row_of(&rows, &formula_id);
    assert_eq!(row[4], format!("'{HYPERLINK}"));
    assert_eq!(row[5], format!("'{SUM}"));
    assert_eq!(row_of(&rows, &phone_id)[4], "+13125550142");
    // Read back by notes import, each cell is what the server sent: the report says so.
    let dir = common::temp_dir("inert-list");
    let file = dir.join("calls.csv");
    std::fs::write(&file, &run.stdout).unwrap();
    let report = dir.join("report.csv");
    let run = common::run_against(
        &server,
        &[
            "notes",
            "import",
            file.to_str().unwrap(),
            "--content",
            "checked",
            "--ignore-other-columns",
            "--report",
            report.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let text = std::fs::read_to_string(&report).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    let row = row_of(&rows, &formula_id);
    assert_eq!(row[4], format!("'{HYPERLINK}"), "inert in the report too");
    // The listing's own columns, then the result columns: its row, its status.
    assert_eq!(row[9], "added");
    assert_eq!(server.notes_by_content(None).get("checked"), Some(&5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workbook_of_calls_filled_in_imports_back_each_note_once_with_a_workbook_report() {
    let server = seeded().await;
    let failed = with_status(&server, "Failed");
    let dir = common::temp_dir("workbook-loop");
    let listed = dir.join("failed.xlsx");
    let run = common::run_against(
        &server,
        &[
            "calls",
            "list",
            "--status",
            "Failed",
            "--output",
            "xlsx",
            "--output-file",
            listed.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let mut rows = text_rows(std::fs::read(&listed).unwrap(), "calls");
    assert_eq!(rows.len(), failed.len() + 1);
    // A note in each row, as a person would write it (one of them a formula, typed as text), and
    // the workbook saved again.
    let content = rows[0].iter().position(|c| c == "content").unwrap();
    for row in &mut rows[1..] {
        row[content] = format!("Reviewed {}", row[0]);
    }
    rows[1][content] = "=1+1 is not a formula here".to_string();
    let mut sheet = happyrobot_bulk::spreadsheet::TextSheet::new("calls", rows[0].clone());
    for row in &rows[1..] {
        sheet.push(row.clone());
    }
    let review = dir.join("review.xlsx");
    std::fs::write(&review, sheet.to_xlsx().unwrap()).unwrap();
    let import = ["notes", "import", review.to_str().unwrap(), "--report"];
    let run = common::run_against(&server, &import).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let held = server.notes_by_content(None);
    for row in &rows[1..] {
        assert_eq!(held.get(&row[content]), Some(&1), "{}: once", row[0]);
    }
    assert_eq!(server.created_note_count(), failed.len(), "no other note");
    // The report is a workbook beside the input, with the input's columns, in text cells.
    let report = text_rows(
        std::fs::read(dir.join("review.results.xlsx")).unwrap(),
        "results",
    );
    assert_eq!(report[0][..rows[0].len()], rows[0][..]);
    // The listing has a status column (the call's): the result columns never collide with it.
    assert_eq!(
        report[0][rows[0].len()..],
        [
            "result_row",
            "result_status",
            "result_note_id",
            "result_error"
        ]
    );
    assert_eq!(report[1][content], "=1+1 is not a formula here");
    assert_eq!(report[1][rows[0].len()], "2", "the sheet's row");
    assert!(report[1..].iter().all(|r| r[rows[0].len() + 1] == "added"));
    // Once more: nothing is sent again.
    let run = common::run_against(&server, &import).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.notes_by_content(None), held);
    let report = text_rows(
        std::fs::read(dir.join("review.results.xlsx")).unwrap(),
        "results",
    );
    assert!(
        report[1..]
            .iter()
            .all(|r| r[rows[0].len() + 1] == "already added")
    );
}

/// On a terminal a workbook is refused before anything is sent, with the redirect to use. The
/// terminal is a pseudo-terminal from util-linux's `script`; without it the test says so and
/// passes.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workbook_is_refused_on_a_terminal_before_anything_is_sent() {
    if !common::have_terminal() {
        return;
    }
    let server = MockServer::start().await.unwrap();
    let line = format!(
        "{} --base-url {} --api-key {} calls list --output xlsx",
        env!("CARGO_BIN_EXE_happyrobot"),
        server.base_url(),
        server.api_key()
    );
    let (code, shown) = common::run_on_terminal(&line).await;
    assert_eq!(code, Some(2), "{shown}");
    assert!(
        shown.contains("a workbook is not written to a terminal: redirect it (> calls.xlsx)"),
        "{shown}"
    );
    assert!(server.requests().is_empty(), "nothing was sent");
}

/// `--report` without a FILE names the results file beside the input; standard input has nothing
/// to sit beside, so it needs one (exit 2, nothing read or sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_without_a_name_sits_beside_its_input() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("report-beside");
    let file = dir.join("review.csv");
    let id = &server.call_ids()[0];
    std::fs::write(&file, format!("call_id,content\n{id},=beside\n")).unwrap();
    let run = common::run_against(
        &server,
        &["notes", "import", file.to_str().unwrap(), "--report"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = std::fs::read_to_string(dir.join("review.results.csv")).unwrap();
    assert!(
        report.starts_with(
            "\u{feff}call_id,content,result_row,result_status,result_note_id,result_error\n"
        ),
        "{report}"
    );
    assert!(
        report.contains(&format!("{id},'=beside,2,added,")),
        "{report}"
    );
    let journal = dir.join("stdin.journal");
    let run = common::run_against(
        &server,
        &[
            "notes",
            "import",
            "-",
            "--format",
            "csv",
            "--journal",
            journal.to_str().unwrap(),
            "--report",
        ],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("--report needs a FILE"),
        "{}",
        run.stderr
    );
}
