//! Issue 28 through the command: spreadsheets as Excel makes them, read side. The dry run shows
//! which column feeds what and the first lines as they will be sent; every message about a file
//! is in the command's words (its flags, never a library's option or crate), once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::Path;

use happyrobot_mock::MockServer;
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

/// The words no message may hold: the library's option names, the crates underneath.
fn assert_users_words(text: &str) {
    for word in [
        "ReadOptions",
        "ignore_other_columns",
        "Source::",
        "calamine",
        "EOCD",
        "Invalid OLE",
        "zip",
        "happyrobot_bulk",
    ] {
        assert!(!text.contains(word), "{word:?} in: {text}");
    }
}

/// A workbook with an instructions sheet first and a "Review" sheet of notes: a date-time cell,
/// an `X` flag, a mapped `Note` beside `Flag?`, a column not read.
fn review_workbook(dir: &Path, ids: &[String]) -> std::path::PathBuf {
    let path = dir.join("review.xlsx");
    let mut workbook = Workbook::new();
    let help = workbook.add_worksheet().set_name("Instructions").unwrap();
    help.write_string(0, 0, "Fill the Review sheet, one note per row")
        .unwrap();
    let sheet = workbook.add_worksheet().set_name("Review").unwrap();
    for (col, name) in ["Call Id", "Note", "Flag?", "Driver"].iter().enumerate() {
        sheet.write_string(0, col as u16, *name).unwrap();
    }
    let moment = ExcelDateTime::from_ymd(2024, 3, 14)
        .unwrap()
        .and_hms(8, 30, 0)
        .unwrap();
    sheet.write_string(1, 0, ids[0].as_str()).unwrap();
    sheet
        .write_datetime_with_format(
            1,
            1,
            &moment,
            &Format::new().set_num_format("dd/mm/yy hh:mm"),
        )
        .unwrap();
    sheet.write_string(1, 2, "X").unwrap();
    sheet.write_string(1, 3, "Ann").unwrap();
    sheet.write_string(2, 0, ids[1].as_str()).unwrap();
    sheet.write_number(2, 1, 12.0).unwrap();
    sheet.write_string(2, 3, "Bob").unwrap();
    sheet.write_string(3, 0, ids[2].as_str()).unwrap();
    sheet.write_string(3, 1, "dock 4 closed").unwrap();
    sheet.write_string(4, 0, ids[0].as_str()).unwrap();
    sheet.write_string(4, 1, "a fourth, not previewed").unwrap();
    workbook.save(&path).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_shows_the_columns_and_the_first_lines_as_sent() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("sheets-dry-run");
    let ids = server.call_ids();
    let file = review_workbook(&dir, &ids);
    let file = file.to_str().unwrap();
    // The first sheet is instructions: the sheets are named, and the one with the columns.
    let run = common::run(&["notes", "import", file, "--dry-run"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("The sheet \"Review\" has them: read it by name (--sheet \"Review\")"),
        "{}",
        run.stderr
    );
    assert_users_words(&run.stderr);
    let run = common::run(&[
        "notes",
        "import",
        file,
        "--sheet",
        "Review",
        "--content-column",
        "Note",
        "--dry-run",
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let shown = common::redact_dir(&run.stderr, &dir);
    let shown = ids.iter().take(3).enumerate().fold(shown, |text, (n, id)| {
        text.replace(id.as_str(), &format!("[CALL {n}]"))
    });
    insta::assert_snapshot!("sheets_dry_run", shown);
    assert!(server.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_every_unknown_column_and_the_flags_to_use() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("sheets-refusals");
    let ids = server.call_ids();
    let csv = dir.join("export.csv");
    std::fs::write(
        &csv,
        format!("call_id,content,Driver,Dock\n{},a,Ann,4\n", ids[0]),
    )
    .unwrap();
    let run = common::run_against(&server, &["notes", "import", csv.to_str().unwrap()]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("unknown columns \"Driver\" and \"Dock\": ")
            && run.stderr.contains("(--ignore-other-columns)"),
        "{}",
        run.stderr
    );
    assert_users_words(&run.stderr);
    // Windows-1252 text: one message for the file, with the flag that reads it.
    let latin = dir.join("latin.csv");
    let mut bytes = b"call_id,content\n".to_vec();
    for id in ids.iter().take(3) {
        bytes.extend_from_slice(id.as_bytes());
        bytes.extend_from_slice(b",Caf\xe9\n");
    }
    std::fs::write(&latin, bytes).unwrap();
    let run = common::run_against(&server, &["notes", "import", latin.to_str().unwrap()]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("it is not UTF-8 text: 3 lines"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("--encoding windows-1252"),
        "{}",
        run.stderr
    );
    assert_users_words(&run.stderr);
    let run = common::run_against(
        &server,
        &[
            "notes",
            "import",
            latin.to_str().unwrap(),
            "--encoding",
            "windows-1252",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Excel's lock file, CSV text named .xlsx, an .xlsx saved as .xls.
    let lock = dir.join("~$review.xlsx");
    std::fs::write(&lock, [&[3u8][..], b"Ann", &[0x20; 161]].concat()).unwrap();
    let run = common::run_against(&server, &["notes", "import", lock.to_str().unwrap()]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "it is the lock file Excel keeps while review.xlsx is open, not a workbook: import \
             review.xlsx"
        ),
        "{}",
        run.stderr
    );
    assert_users_words(&run.stderr);
    let named = dir.join("notes.xlsx");
    std::fs::write(&named, format!("call_id,content\n{},a\n", ids[0])).unwrap();
    let run = common::run_against(&server, &["notes", "import", named.to_str().unwrap()]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("Rename it notes.csv and import that"),
        "{}",
        run.stderr
    );
    assert_users_words(&run.stderr);
    let renamed = dir.join("renamed.xls");
    std::fs::copy(review_workbook(&dir, &ids), &renamed).unwrap();
    let run = common::run(&[
        "notes",
        "import",
        renamed.to_str().unwrap(),
        "--sheet",
        "Review",
        "--ignore-other-columns",
        "--dry-run",
    ])
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("4 valid lines"), "{}", run.stderr);
}

/// The tool's own `calls list --output csv`, with a note for each call, imports as it is: its
/// columns need no --ignore-other-columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csv_of_calls_list_imports_as_it_is() {
    let server = MockServer::start().await.unwrap();
    let dir = common::temp_dir("sheets-calls-list");
    let run = common::run_against(&server, &["calls", "list", "--output", "csv"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listed = dir.join("calls.csv");
    std::fs::write(&listed, &run.stdout).unwrap();
    let calls = run.stdout.lines().count() - 1;
    assert!(calls > 0, "{}", run.stdout);
    let file = listed.to_str().unwrap();
    let run = common::run_against(
        &server,
        &[
            "notes",
            "import",
            file,
            "--content",
            "QA sweep",
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("text \"QA sweep\" (--content)")
            && run
                .stderr
                .contains("not read:         \"created\", \"status\""),
        "{}",
        run.stderr
    );
    let run =
        common::run_against(&server, &["notes", "import", file, "--content", "QA sweep"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let swept: usize = server
        .call_ids()
        .iter()
        .map(|id| {
            common::counts_by_content(&server, id)
                .get("QA sweep")
                .copied()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(swept, calls);
}
