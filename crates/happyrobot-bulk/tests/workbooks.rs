//! Issue 28: spreadsheets as Excel makes them, read side. Workbooks written by a real writer
//! (rust_xlsxwriter): date cells, error cells, `X` flags, a mapped `Note` beside a `Flag?`, an
//! instructions sheet first, Excel's lock file, a renamed workbook, CSV text under a workbook's
//! name; and Excel's "Unicode text" export and Windows-1252 text. What is sent is what the sheet
//! shows; what is refused is said once, in the library's words.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::{Path, PathBuf};

use common::{client, temp_dir};
use happyrobot_bulk::{
    BulkError, BulkErrorKind, BulkOption, ColumnNames, Import, JournalLocation, Plan, ReadOptions,
    Source,
};
use happyrobot_mock::MockServer;
use rust_xlsxwriter::{ExcelDateTime, Format, Formula, Workbook, Worksheet};

fn import(server: &MockServer, dir: &Path) -> Import {
    Import::new(client(server), JournalLocation::BesideInput).state_dir(Some(dir.join("state")))
}

/// Writes `rows` of text (an empty string leaves the cell empty) from the sheet's first row.
fn write_rows(sheet: &mut Worksheet, rows: &[&[&str]]) {
    for (r, row) in rows.iter().enumerate() {
        for (c, text) in row.iter().enumerate() {
            if !text.is_empty() {
                sheet.write_string(r as u32, c as u16, *text).unwrap();
            }
        }
    }
}

/// A one-sheet workbook "Review" of text rows, at `dir/name`.
fn text_workbook(dir: &Path, name: &str, rows: &[&[&str]]) -> PathBuf {
    let path = dir.join(name);
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet().set_name("Review").unwrap();
    write_rows(sheet, rows);
    workbook.save(&path).unwrap();
    path
}

/// Whether the note with `content` on `call` is flagged (the server's default: not), if it is
/// there.
fn note_on(server: &MockServer, call: &str, content: &str) -> Option<bool> {
    server
        .notes(call)
        .iter()
        .find(|n| n.content.as_deref() == Some(content))
        .map(|n| n.flagged.unwrap_or(false))
}

/// The error a dry run of `source` ends with, as shown: the message, then each line error.
async fn refusal(server: &MockServer, dir: &Path, source: &Source) -> (BulkError, String) {
    let error = import(server, dir).plan(source).await.unwrap_err();
    let mut shown = error.to_string();
    for line in error.line_errors() {
        shown.push('\n');
        shown.push_str(&line.to_string());
    }
    (error, shown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_numbers_and_x_flags_are_sent_as_the_sheet_shows_them() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("shown");
    let ids = server.call_ids();
    let path = dir.join("review.xlsx");
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet().set_name("Review").unwrap();
    write_rows(
        sheet,
        &[
            &["Call Id", "Note", "Flag?"],
            &[&ids[0], "", "X"],
            &[&ids[1], "", "x"],
            &[&ids[2], "", "\u{2713}"],
            &[&ids[0], "", ""],
        ],
    );
    let moment = ExcelDateTime::from_ymd(2024, 3, 14)
        .unwrap()
        .and_hms(8, 30, 0)
        .unwrap();
    let shown_as = Format::new().set_num_format("dd/mm/yyyy hh:mm");
    sheet
        .write_datetime_with_format(1, 1, &moment, &shown_as)
        .unwrap();
    let day = ExcelDateTime::from_ymd(2024, 3, 14).unwrap();
    sheet
        .write_datetime_with_format(2, 1, &day, &Format::new().set_num_format("d mmm yyyy"))
        .unwrap();
    sheet.write_number(3, 1, 12.0).unwrap();
    sheet.write_number(4, 1, 0.1 + 0.2).unwrap();
    workbook.save(&path).unwrap();

    let source = Source::file(&path);
    let plan = import(&server, &dir).plan(&source).await.unwrap();
    assert_eq!(plan.lines, 4);
    let report = import(&server, &dir).run(source, |_| {}).await.unwrap();
    assert_eq!(report.added, 4, "{:?}", report.failed_lines);
    assert_eq!(note_on(&server, &ids[0], "2024-03-14 08:30"), Some(true));
    assert_eq!(note_on(&server, &ids[1], "2024-03-14"), Some(true));
    assert_eq!(note_on(&server, &ids[2], "12"), Some(true));
    assert_eq!(note_on(&server, &ids[0], "0.3"), Some(false));
    let held = common::held(&server);
    assert!(
        held.keys().all(|text| !text.starts_with("45365")),
        "no serial number is sent: {held:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_cells_are_refused_with_the_row_and_the_error_named() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("errors");
    let ids = server.call_ids();
    let path = dir.join("review.xlsx");
    let mut workbook = Workbook::new();
    let sheet = workbook.add_worksheet().set_name("Review").unwrap();
    write_rows(
        sheet,
        &[
            &["call_id", "content"],
            &[&ids[0], "fine"],
            &[&ids[1], ""],
            &[&ids[2], ""],
        ],
    );
    // What Excel stores for a note typed as `- driver late`, and for a failed formula.
    sheet
        .write_formula(2, 1, Formula::new("=-driver late").set_result("#NAME?"))
        .unwrap();
    sheet
        .write_formula(3, 1, Formula::new("=1/0").set_result("#DIV/0!"))
        .unwrap();
    workbook.save(&path).unwrap();
    let (error, shown) = refusal(&server, &dir, &Source::file(&path)).await;
    assert_eq!(error.kind(), BulkErrorKind::InvalidInput, "{shown}");
    assert_eq!(error.invalid_lines(), 2, "{shown}");
    let lines: Vec<String> = error.line_errors().iter().map(|e| e.to_string()).collect();
    assert!(
        lines[0].starts_with("row 3 of sheet \"Review\": the text cell shows the error #NAME?")
            && lines[0].contains("type it with an apostrophe first ('- driver late)"),
        "{shown}"
    );
    assert!(
        lines[1].starts_with("row 4 of sheet \"Review\": the text cell shows the error #DIV/0!"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_note_beside_a_flag_column_leaves_no_column_unread() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("mapped-note");
    let ids = server.call_ids();
    let path = text_workbook(
        &dir,
        "review.xlsx",
        &[
            &["Call ID", "Note", "Flag?", "Driver"],
            &[&ids[0], "dock 4", "X", "Ann"],
            &[&ids[1], "dock 5", "", "Bob"],
        ],
    );
    let mapped = ReadOptions::new().columns(ColumnNames::new().content("Note"));
    let source = Source::file(&path).read_options(mapped.clone());
    let plan: Plan = import(&server, &dir).plan(&source).await.unwrap();
    let columns = plan.columns.clone().expect("the mapping");
    assert_eq!(columns.sheet.as_deref(), Some("Review"));
    assert_eq!(columns.call_id, "Call ID");
    assert_eq!(columns.content.as_deref(), Some("Note"));
    assert_eq!(columns.flagged.as_deref(), Some("Flag?"));
    assert_eq!(columns.ignored, ["Driver"]);
    let preview: Vec<(u64, &str, Option<bool>)> = plan
        .preview
        .iter()
        .map(|p| {
            (
                p.line,
                p.record.note().content(),
                p.record.note().is_flagged(),
            )
        })
        .collect();
    assert_eq!(preview, [(2, "dock 4", Some(true)), (3, "dock 5", None)]);
    import(&server, &dir).run(source, |_| {}).await.unwrap();
    assert_eq!(note_on(&server, &ids[0], "dock 4"), Some(true));

    // A text column mapped elsewhere never leaves the `Note` column unread unseen.
    let other = text_workbook(
        &dir,
        "other.xlsx",
        &[
            &["Call ID", "Remark", "Note", "Shift", "Dock"],
            &[&ids[0], "a", "b", "c", "d"],
        ],
    );
    let remark = ReadOptions::new().columns(ColumnNames::new().content("Remark"));
    let (error, shown) = refusal(&server, &dir, &Source::file(&other).read_options(remark)).await;
    assert!(
        shown.contains(
            "row 1 of sheet \"Review\": the column \"Note\" looks like the text but is not read: \
             the text comes from \"Remark\""
        ),
        "{shown}"
    );
    assert_eq!(
        error.line_errors()[0].options(),
        [BulkOption::IgnoreOtherColumns]
    );
    // Without a mapping, every unknown column is named at once.
    let (_, shown) = refusal(&server, &dir, &Source::file(&other)).await;
    assert!(
        shown.contains("unknown columns \"Remark\", \"Shift\" and \"Dock\": "),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instructions_sheet_first_names_the_sheet_that_has_the_columns() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("instructions");
    let ids = server.call_ids();
    let path = dir.join("review.xlsx");
    let mut workbook = Workbook::new();
    let first = workbook.add_worksheet().set_name("Instructions").unwrap();
    write_rows(
        first,
        &[
            &["Fill the Review sheet: one note per row."],
            &[""],
            &["Mark a flag with X."],
        ],
    );
    let review = workbook.add_worksheet().set_name("Review").unwrap();
    write_rows(review, &[&["CallID", "Notes"], &[&ids[0], "from review"]]);
    workbook.save(&path).unwrap();
    let (error, shown) = refusal(&server, &dir, &Source::file(&path)).await;
    let line = error.line_errors()[0].to_string();
    assert!(
        line.starts_with(
            "row 1 of sheet \"Instructions\": the workbook's first sheet, \"Instructions\", is not \
             a sheet of notes: its first row holds \"Fill the Review sheet: one note per row.\", \
             not the columns"
        ) && line.ends_with(
            "The sheet \"Review\" has them: read it by name (ReadOptions::sheet \"Review\")"
        ),
        "{shown}"
    );
    assert_eq!(error.line_errors()[0].option(), Some(BulkOption::Sheet));
    let source = Source::file(&path).read_options(ReadOptions::new().sheet("Review"));
    let report = import(&server, &dir).run(source, |_| {}).await.unwrap();
    assert_eq!(report.added, 1);
    assert_eq!(note_on(&server, &ids[0], "from review"), Some(false));

    // An empty first sheet, as a new workbook has.
    let path = dir.join("empty-first.xlsx");
    let mut workbook = Workbook::new();
    workbook.add_worksheet();
    write_rows(
        workbook.add_worksheet().set_name("Review").unwrap(),
        &[&["call_id", "content"], &[&ids[0], "x"]],
    );
    workbook.save(&path).unwrap();
    let (_, shown) = refusal(&server, &dir, &Source::file(&path)).await;
    assert!(
        shown.contains(
            "the workbook's first sheet, \"Sheet1\", is not a sheet of notes: it is empty, not \
             the columns call_id, content and optionally flagged. The sheet \"Review\" has them"
        ),
        "{shown}"
    );

    // No sheet has the columns: the sheets are named, with the option.
    let path = dir.join("none.xlsx");
    let mut workbook = Workbook::new();
    write_rows(
        workbook.add_worksheet().set_name("Read me").unwrap(),
        &[&["Hello"]],
    );
    write_rows(
        workbook.add_worksheet().set_name("Data").unwrap(),
        &[&["id", "text"]],
    );
    workbook.save(&path).unwrap();
    let (_, shown) = refusal(&server, &dir, &Source::file(&path)).await;
    assert!(
        shown.contains("its sheets are \"Read me\" and \"Data\": name the sheet of notes with ReadOptions::sheet"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_file_text_under_a_workbooks_name_and_a_renamed_workbook() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("not-workbooks");
    let ids = server.call_ids();
    let words = |shown: &str| {
        for word in ["calamine", "EOCD", "OLE", "zip", "Zip"] {
            assert!(!shown.contains(word), "{word} in {shown}");
        }
    };
    // Excel's lock file: the owner's name, padded, 165 bytes.
    let lock = dir.join("~$review.xlsx");
    let mut owner = vec![4u8];
    owner.extend_from_slice(b"Ann ");
    owner.resize(165, 0x20);
    std::fs::write(&lock, owner).unwrap();
    let (error, shown) = refusal(&server, &dir, &Source::file(&lock)).await;
    assert_eq!(error.kind(), BulkErrorKind::Refused);
    assert!(
        shown.contains(
            "it is the lock file Excel keeps while review.xlsx is open, not a workbook: import \
             review.xlsx"
        ),
        "{shown}"
    );
    words(&shown);
    // CSV text saved under a workbook's name.
    let csv = dir.join("notes.xlsx");
    std::fs::write(&csv, format!("call_id,content\n{},a\n", ids[0])).unwrap();
    let (_, shown) = refusal(&server, &dir, &Source::file(&csv)).await;
    assert!(
        shown.contains("it holds text, not a workbook (its first line is \"call_id,content\")")
            && shown.contains("Rename it notes.csv and import that"),
        "{shown}"
    );
    words(&shown);
    // An empty file, and one that is neither.
    let empty = dir.join("empty.xlsx");
    std::fs::write(&empty, b"").unwrap();
    let (_, shown) = refusal(&server, &dir, &Source::file(&empty)).await;
    assert!(shown.contains("it is empty (0 bytes)"), "{shown}");
    let pdf = dir.join("scan.xls");
    std::fs::write(&pdf, b"%PDF-1.7\n\x00\x01\x02binary").unwrap();
    let (_, shown) = refusal(&server, &dir, &Source::file(&pdf)).await;
    assert!(
        shown.contains("it is not a workbook (.xlsx, .xlsm, .xls or .ods) nor text"),
        "{shown}"
    );
    words(&shown);
    // A truncated workbook.
    let whole = text_workbook(
        &dir,
        "whole.xlsx",
        &[&["call_id", "content"], &[&ids[0], "x"]],
    );
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.join("cut.xlsx");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (_, shown) = refusal(&server, &dir, &Source::file(&cut)).await;
    assert!(shown.contains("it may be damaged"), "{shown}");
    words(&shown);
    // An .xlsx saved as .xls (and as .ods) is read as what it is.
    for name in ["renamed.xls", "renamed.ods"] {
        let renamed = dir.join(name);
        std::fs::copy(&whole, &renamed).unwrap();
        let plan = import(&server, &dir)
            .plan(&Source::file(&renamed))
            .await
            .unwrap();
        assert_eq!(plan.lines, 1, "{name}");
    }
}

/// Excel's "Unicode text" export: `.txt`, UTF-16 LE with a byte-order mark, tabs, CRLF, quotes
/// around a cell that holds a tab or a line break.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excels_unicode_text_export_is_read_as_a_txt() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("unicode-text");
    let ids = server.call_ids();
    let text = format!(
        "Call ID\tNote, as typed\tFlag?\r\n{}\tnaïve, ☎\tX\r\n{}\t\"two\r\nlines\tand a tab\"\t\r\n",
        ids[0], ids[1]
    );
    let bytes: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let path = dir.join("review.txt");
    std::fs::write(&path, bytes).unwrap();
    let options = ReadOptions::new().columns(ColumnNames::new().content("Note, as typed"));
    let source = Source::file(&path).read_options(options);
    let report = import(&server, &dir).run(source, |_| {}).await.unwrap();
    assert_eq!(report.added, 2, "{:?}", report.failed_lines);
    assert_eq!(note_on(&server, &ids[0], "naïve, ☎"), Some(true));
    assert_eq!(
        note_on(&server, &ids[1], "two\r\nlines\tand a tab").or(note_on(
            &server,
            &ids[1],
            "two\nlines\tand a tab"
        )),
        Some(false)
    );
}

/// Windows-1252 text without its encoding is refused once for the file, with the fix; with it,
/// it is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_is_not_utf8_is_refused_once_with_the_encoding_to_give() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("not-utf8");
    let ids = server.call_ids();
    let mut bytes = b"call_id\tcontent\r\n".to_vec();
    for (i, id) in ids.iter().take(3).enumerate() {
        bytes.extend_from_slice(format!("{id}\tCaf").as_bytes());
        bytes.extend_from_slice(b"\xe9 \x80 ");
        bytes.extend_from_slice(format!("{i}\r\n").as_bytes());
    }
    let path = dir.join("review.txt");
    std::fs::write(&path, &bytes).unwrap();
    let (error, shown) = refusal(&server, &dir, &Source::file(&path)).await;
    assert_eq!(error.kind(), BulkErrorKind::Refused);
    assert!(error.line_errors().is_empty(), "once for the file: {shown}");
    assert!(
        shown.contains("it is not UTF-8 text: 3 lines hold bytes (the first: line 2)")
            && shown.contains("ReadOptions::encoding windows-1252"),
        "{shown}"
    );
    assert_eq!(error.option(), Some(BulkOption::Encoding));
    let options = ReadOptions::new().encoding("windows-1252").unwrap();
    let report = import(&server, &dir)
        .run(Source::file(&path).read_options(options), |_| {})
        .await
        .unwrap();
    assert_eq!(report.added, 3);
    assert_eq!(note_on(&server, &ids[0], "Café € 0"), Some(false));
}
