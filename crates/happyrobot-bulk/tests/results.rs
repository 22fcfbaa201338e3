//! Issue 28: results files as Excel reads them. Read back: a CSV results file starts with UTF-8's
//! byte-order mark and is comma-separated whatever the input's delimiter; its result columns
//! never collide with the sheet's own (a `status` column stays as it is); every row has its input
//! row number; an undo's rows name the note each deleted; and an input refused by its check still
//! gets one, each invalid row with its error.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::Path;

use common::{client, read_results, temp_dir};
use happyrobot_bulk::{
    BulkErrorKind, BulkOption, Import, JournalLocation, ReadOptions, Source, Undo, UndoReport,
};
use happyrobot_mock::{Fault, MockServer};

/// The result cells of `rows` (header first), by name.
/// A directory `name` with `review.csv`: two lines, "one" and "two", on the mock's first two
/// calls.
fn two_lines(server: &MockServer, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir(name);
    let file = dir.join("review.csv");
    let ids = server.call_ids();
    std::fs::write(
        &file,
        format!("call_id,content\n{},one\n{},two\n", ids[0], ids[1]),
    )
    .unwrap();
    (dir, file)
}

/// Imports `file` to `server`, its state in `dir`.
async fn imported(server: &MockServer, dir: &Path, file: &Path) {
    Import::new(client(server), JournalLocation::BesideInput)
        .state_dir(Some(dir.join("state")))
        .run(Source::file(file), |_| {})
        .await
        .unwrap();
}

/// Undoes the import of `file`, one request at a time, writing the results file `undone`.
async fn undone_one_at_a_time(
    server: &MockServer,
    dir: &Path,
    file: &Path,
    undone: &Path,
) -> UndoReport {
    Undo::new(client(server), JournalLocation::BesideInput)
        .state_dir(Some(dir.join("state")))
        .concurrency(1)
        .results_file(undone)
        .run(Source::file(file), |_| {})
        .await
        .unwrap()
}

fn column<'a>(rows: &'a [Vec<String>], name: &str) -> Vec<&'a str> {
    let index = rows[0]
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}: {:?}", rows[0]));
    rows[1..].iter().map(|r| r[index].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_separated_csv_with_a_status_column_gets_a_comma_separated_results_file_with_a_bom() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("results-bom");
    let file = dir.join("review.csv");
    let ids = server.call_ids();
    // Tabs in a .csv, a `status` column of the sheet's own, an accent, and a blank line: the
    // rows are on file lines 2, 4 and 5.
    std::fs::write(
        &file,
        format!(
            "call_id\tcontent\tstatus\n{}\tbestätigt\tFailed\n\n{}\tzweite\tBusy\n{}\tdritte\t\n",
            ids[0], ids[1], ids[2]
        ),
    )
    .unwrap();
    let results = dir.join("review.results.csv");
    let import = Import::new(client(&server), JournalLocation::BesideInput)
        .state_dir(Some(dir.join("state")))
        .results_file(&results);
    let source = Source::file(&file).read_options(ReadOptions::new().ignore_other_columns(true));
    let report = import.run(source, |_| {}).await.unwrap();
    assert_eq!(report.added, 3);
    let rows = read_results(&results);
    assert_eq!(
        rows[0],
        [
            "call_id",
            "content",
            "status",
            "result_row",
            "result_status",
            "result_note_id",
            "result_error"
        ]
    );
    assert_eq!(column(&rows, "content")[0], "bestätigt");
    assert_eq!(column(&rows, "status"), ["Failed", "Busy", ""]);
    assert_eq!(column(&rows, "result_row"), ["2", "4", "5"]);
    assert_eq!(column(&rows, "result_status"), ["added"; 3]);
    let notes = column(&rows, "result_note_id");
    for (id, note) in ids.iter().zip(&notes) {
        assert!(
            server
                .notes(id)
                .iter()
                .any(|n| n.id.as_deref() == Some(*note)),
            "note {note} is on call {id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_results_file_imported_again_gets_its_result_columns_replaced() {
    let server = MockServer::start().await.unwrap();
    let (dir, file) = two_lines(&server, "results-again");
    let first = dir.join("first.csv");
    let options = ReadOptions::new().ignore_other_columns(true);
    let journal = dir.join("review.journal");
    let import = |results: &std::path::Path| {
        Import::new(client(&server), JournalLocation::path(&journal))
            .state_dir(Some(dir.join("state")))
            .results_file(results)
    };
    let source = |input: &std::path::Path| Source::file(input).read_options(options.clone());
    import(&first).run(source(&file), |_| {}).await.unwrap();
    let second = dir.join("second.csv");
    let report = import(&second).run(source(&first), |_| {}).await.unwrap();
    assert_eq!(report.added, 0, "the same lines, in the same journal");
    let rows = read_results(&second);
    assert_eq!(
        rows[0],
        [
            "call_id",
            "content",
            "result_row",
            "result_status",
            "result_note_id",
            "result_error"
        ]
    );
    assert_eq!(column(&rows, "result_status"), ["already added"; 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_file_gets_a_results_file_with_each_invalid_row_and_its_error() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("results-refused");
    let file = dir.join("review.csv");
    let id = &server.call_ids()[0];
    std::fs::write(
        &file,
        format!(
            "call_id,content,flagged\n\
             {id},fine,\n\
             not-an-id,text,\n\
             {id},flag,maybe\n\
             {id},fine,\n\
             {id},also fine,yes\n"
        ),
    )
    .unwrap();
    let results = dir.join("review.results.csv");
    let flag = |option| match option {
        BulkOption::AllowDuplicates => Some("--allow-duplicates"),
        _ => None,
    };
    let error = Import::new(client(&server), JournalLocation::BesideInput)
        .state_dir(Some(dir.join("state")))
        .results_file(&results)
        .option_names(flag)
        .run(Source::file(&file), |_| {})
        .await
        .unwrap_err();
    assert_eq!(error.kind(), BulkErrorKind::InvalidInput);
    assert!(
        error.to_string().contains(&format!(
            "each line's error is in the results file {}",
            results.display()
        )),
        "{error}"
    );
    assert!(server.requests().is_empty(), "nothing was sent");
    let rows = read_results(&results);
    assert_eq!(column(&rows, "result_row"), ["2", "3", "4", "5", "6"]);
    assert_eq!(
        column(&rows, "result_status"),
        ["not sent", "invalid", "invalid", "invalid", "not sent"]
    );
    let errors = column(&rows, "result_error");
    assert_eq!(errors[0], "");
    assert!(errors[1].contains("call ID"), "{}", errors[1]);
    assert!(errors[2].contains("flagged is \"maybe\""), "{}", errors[2]);
    assert!(
        errors[3].starts_with("identical to line 2") && errors[3].contains("--allow-duplicates"),
        "the caller's words: {}",
        errors[3]
    );
    // The valid rows keep their cells.
    assert_eq!(column(&rows, "content")[0], "fine");
    // Nothing else was written: no journal for a refused file.
    assert!(!dir.join("review.csv.journal").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_results_file_names_each_deleted_note() {
    let server = MockServer::start().await.unwrap();
    let (dir, file) = two_lines(&server, "results-undo");
    let imported = dir.join("imported.csv");
    Import::new(client(&server), JournalLocation::BesideInput)
        .state_dir(Some(dir.join("state")))
        .results_file(&imported)
        .run(Source::file(&file), |_| {})
        .await
        .unwrap();
    let imported = read_results(&imported);
    let added = column(&imported, "result_note_id");
    assert!(added.iter().all(|id| id.len() == 24), "{added:?}");
    let undone = dir.join("undone.csv");
    let report = Undo::new(client(&server), JournalLocation::BesideInput)
        .state_dir(Some(dir.join("state")))
        .results_file(&undone)
        .run(Source::file(&file), |_| {})
        .await
        .unwrap();
    assert_eq!(report.deleted, 2);
    let rows = read_results(&undone);
    assert_eq!(column(&rows, "result_status"), ["deleted"; 2]);
    assert_eq!(column(&rows, "result_note_id"), added);
    assert_eq!(column(&rows, "result_row"), ["2", "3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_results_file_says_unknown_for_a_delete_that_may_have_gone_through() {
    let server = MockServer::start().await.unwrap();
    let (dir, file) = two_lines(&server, "results-undo-maybe");
    imported(&server, &dir, &file).await;
    // The first delete goes through, its answer lost; its retry is asked to wait too long.
    server.inject(Fault::SaveThenDrop, 1);
    server.inject(
        Fault::RateLimited {
            retry_after_secs: 120,
        },
        1,
    );
    let undone = dir.join("undone.csv");
    let report = undone_one_at_a_time(&server, &dir, &file, &undone).await;
    assert_eq!((report.unknown, report.not_deleted), (1, 1));
    let rows = read_results(&undone);
    assert_eq!(column(&rows, "result_status"), ["unknown", "not deleted"]);
    let errors = column(&rows, "result_error");
    assert!(
        errors[0].contains("re-run tries the delete again"),
        "{errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_results_file_says_why_a_delete_failed() {
    let server = MockServer::start().await.unwrap();
    let (dir, file) = two_lines(&server, "results-undo-failed");
    imported(&server, &dir, &file).await;
    // The first delete is refused (not journaled: the line stays added).
    server.inject(Fault::Status(400), 1);
    let undone = dir.join("undone.csv");
    let report = undone_one_at_a_time(&server, &dir, &file, &undone).await;
    assert_eq!((report.deleted, report.failed), (1, 1));
    let rows = read_results(&undone);
    assert_eq!(column(&rows, "result_status"), ["not deleted", "deleted"]);
    let errors = column(&rows, "result_error");
    assert!(errors[0].contains("400"), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_results_file_tells_a_note_found_gone_from_one_it_deleted() {
    let server = MockServer::start().await.unwrap();
    let (dir, file) = two_lines(&server, "results-undo-gone");
    imported(&server, &dir, &file).await;
    // The first line's call is deleted in the app, its note with it.
    assert!(server.remove_call(&server.call_ids()[0]));
    let undone = dir.join("undone.csv");
    let report = undone_one_at_a_time(&server, &dir, &file, &undone).await;
    assert_eq!((report.deleted, report.already_gone), (2, 1));
    let rows = read_results(&undone);
    assert_eq!(column(&rows, "result_status"), ["already gone", "deleted"]);
    let errors = column(&rows, "result_error");
    assert!(errors[0].contains("the call is gone"), "{errors:?}");
    assert_eq!(errors[1], "");
    assert_eq!(column(&rows, "result_note_id")[0].len(), 24);
}
