//! Issue 21: the files operations teams really have (semicolons, UTF-16 with tabs, Windows-1252,
//! headers as people type them with extra columns, Excel workbooks), each imported with every note
//! once, and a results file back that lists every row with its status.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::Path;

use common::{assert_each_once, client, temp_dir};
use happyrobot_bulk::{BulkErrorKind, ColumnNames, Import, JournalLocation, ReadOptions, Source};
use happyrobot_mock::MockServer;

/// Imports `source` with a results file, twice (the second run sends nothing), and returns the
/// results file's rows (header first).
async fn import_with_results(server: &MockServer, source: Source, dir: &Path) -> Vec<Vec<String>> {
    let results = dir.join("results.csv");
    let import = Import::new(client(server), JournalLocation::BesideInput)
        .state_dir(Some(dir.join("state")))
        .results_file(&results);
    let report = import.run(source.clone(), |_| {}).await.unwrap();
    assert_eq!(
        (report.failed, report.unknown),
        (0, 0),
        "{:?}",
        report.failed_lines
    );
    let posts = server.created_note_count();
    let again = import.run(source, |_| {}).await.unwrap();
    assert_eq!(again.added, 0);
    assert_eq!(server.created_note_count(), posts);
    common::read_results(&results)
}

fn ids(server: &MockServer) -> Vec<String> {
    server.call_ids()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_semicolon_csv_is_read_and_its_results_are_comma_separated() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("semicolon");
    let file = dir.join("notes.csv");
    let ids = ids(&server);
    std::fs::write(
        &file,
        format!(
            "call_id;content;flagged\n{};semi 0;ja\n{};\"semi 1; with a semicolon\";\n{};semi 2;0\n",
            ids[0], ids[1], ids[2]
        )
        .replace(";ja", ";yes"),
    )
    .unwrap();
    let rows = import_with_results(&server, Source::file(&file), &dir).await;
    assert_eq!(
        rows[0],
        [
            "call_id",
            "content",
            "flagged",
            "result_row",
            "result_status",
            "result_note_id",
            "result_error"
        ]
    );
    assert_eq!(rows.len(), 4);
    assert!(
        rows[1..]
            .iter()
            .all(|r| r[4] == "already added" && r[5].len() == 24),
        "{rows:?}"
    );
    assert_eq!(
        rows[1..].iter().map(|r| r[3].as_str()).collect::<Vec<_>>(),
        ["2", "3", "4"]
    );
    assert_eq!(rows[2][1], "semi 1; with a semicolon");
    let held = common::held(&server);
    assert_eq!(held.get("semi 1; with a semicolon"), Some(&1));
    assert_eq!(held.get("semi 0"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excels_unicode_text_export_utf16_with_tabs_is_read() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("utf16");
    let file = dir.join("notes.tsv");
    let ids = ids(&server);
    let text = format!(
        "call_id\tcontent\r\n{}\tutf 0 naïve\r\n{}\tutf 1 ☎\r\n",
        ids[0], ids[1]
    );
    let bytes: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    std::fs::write(&file, bytes).unwrap();
    let rows = import_with_results(&server, Source::file(&file), &dir).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    let held = common::held(&server);
    assert_eq!(held.get("utf 0 naïve"), Some(&1));
    assert_eq!(held.get("utf 1 ☎"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_windows_1252_csv_is_read_with_its_encoding_and_refused_without() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("cp1252");
    let file = dir.join("notes.csv");
    let ids = ids(&server);
    let mut bytes = format!("call_id,content\n{},", ids[0]).into_bytes();
    bytes.extend_from_slice(b"Caf\xe9 \x80 12\n");
    std::fs::write(&file, bytes).unwrap();
    let plain = Import::new(client(&server), JournalLocation::BesideInput).state_dir(None);
    let error = plain.run(Source::file(&file), |_| {}).await.unwrap_err();
    // Refused once for the file (issue 28), not line by line.
    assert_eq!(error.kind(), BulkErrorKind::Refused);
    assert!(error.line_errors().is_empty());
    assert!(
        error
            .to_string()
            .contains("ReadOptions::encoding windows-1252"),
        "{error}"
    );
    // The option is typed, for a program that names it otherwise (a CLI's --encoding).
    assert_eq!(error.option(), Some(happyrobot_bulk::BulkOption::Encoding));
    let source =
        Source::file(&file).read_options(ReadOptions::new().encoding("windows-1252").unwrap());
    import_with_results(&server, source, &dir).await;
    assert_eq!(common::held(&server).get("Café € 12"), Some(&1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_as_people_type_them_with_extra_columns_map_by_name() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("mapped");
    let file = dir.join("export.csv");
    let ids = ids(&server);
    std::fs::write(
        &file,
        format!(
            "Call ID,Note,Flagged,Driver\n{},map 0,yes,Ann\n{},map 1,,Bob\n",
            ids[0], ids[1]
        ),
    )
    .unwrap();
    // Without a mapping, an unknown column is still refused: a misspelt name never passes.
    let plain = Import::new(client(&server), JournalLocation::BesideInput).state_dir(None);
    let error = plain.run(Source::file(&file), |_| {}).await.unwrap_err();
    assert!(
        error.line_errors()[0]
            .to_string()
            .contains("unknown column \"Driver\""),
        "{error}"
    );
    let columns = ColumnNames::new()
        .call_id("call id")
        .content("NOTE")
        .flagged(" Flagged ");
    let source = Source::file(&file).read_options(ReadOptions::new().columns(columns));
    let rows = import_with_results(&server, source, &dir).await;
    assert_eq!(
        rows[0],
        [
            "Call ID",
            "Note",
            "Flagged",
            "Driver",
            "result_row",
            "result_status",
            "result_note_id",
            "result_error"
        ]
    );
    assert_eq!(rows[1][3], "Ann", "the other columns are kept");
    assert_eq!(rows.len(), 3);
    let notes = server.notes(&ids[0]);
    let mapped = notes
        .iter()
        .find(|n| n.content.as_deref() == Some("map 0"))
        .unwrap();
    assert_eq!(mapped.flagged, Some(true));
    assert_each_once(&server, "map", 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xlsx_workbook_with_text_number_boolean_cells_and_an_empty_row() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("xlsx");
    let file = dir.join("review.xlsx");
    let ids = ids(&server);
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet().set_name("Review").unwrap();
    for (col, name) in ["Call ID", "Content", "Flagged", "Driver"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, col as u16, *name).unwrap();
    }
    sheet.write_string(1, 0, ids[0].as_str()).unwrap();
    sheet.write_string(1, 1, "xlsx text").unwrap();
    sheet.write_boolean(1, 2, true).unwrap();
    sheet.write_string(1, 3, "Ann").unwrap();
    // Row 3 is empty; row 4 has a number for its content.
    sheet.write_string(3, 0, ids[1].as_str()).unwrap();
    sheet.write_number(3, 1, 42.0).unwrap();
    sheet.write_boolean(3, 2, false).unwrap();
    workbook.save(&file).unwrap();
    let source = Source::file(&file).read_options(ReadOptions::new().ignore_other_columns(true));
    let rows = import_with_results(&server, source, &dir).await;
    assert_eq!(rows.len(), 3, "a header and two rows: {rows:?}");
    assert_eq!(rows[2][1], "42");
    let first = server.notes(&ids[0]);
    let note = first
        .iter()
        .find(|n| n.content.as_deref() == Some("xlsx text"))
        .unwrap();
    assert_eq!(note.flagged, Some(true));
    assert_eq!(common::held(&server).get("42"), Some(&1));
    // A call ID the workbook holds as a number is refused with why, by the sheet's row.
    let bad = dir.join("numbers.xlsx");
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.write_string(0, 0, "call_id").unwrap();
    sheet.write_string(0, 1, "content").unwrap();
    sheet.write_number(1, 0, 123456.0).unwrap();
    sheet.write_string(1, 1, "x").unwrap();
    workbook.save(&bad).unwrap();
    let error = Import::new(client(&server), JournalLocation::BesideInput)
        .state_dir(None)
        .run(Source::file(&bad), |_| {})
        .await
        .unwrap_err();
    let message = error.line_errors()[0].to_string();
    assert!(
        message.starts_with("row 2 of sheet \"Sheet1\": the call ID is a number"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_note_on_every_line_without_one() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("default-content");
    let file = dir.join("failed.csv");
    let ids = ids(&server);
    std::fs::write(
        &file,
        format!(
            "call_id,status,created\n{},Failed,x\n{},Failed,y\n",
            ids[0], ids[1]
        ),
    )
    .unwrap();
    let options = ReadOptions::new()
        .default_content("QA sweep")
        .ignore_other_columns(true);
    let rows = import_with_results(&server, Source::file(&file).read_options(options), &dir).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(common::held(&server).get("QA sweep"), Some(&2));
}

/// Issue 32: a CSV cell a spreadsheet would run is written with a leading apostrophe, and read
/// back without it; phone numbers, negative numbers and an apostrophe before ordinary text stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_cells_a_spreadsheet_would_run_are_written_inert_and_read_back_as_they_were() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("inert-csv");
    let file = dir.join("review.csv");
    let ids = ids(&server);
    // As `calls list --output csv` writes it: the server's `=HYPERLINK` made inert; the other
    // columns as a person typed them.
    std::fs::write(
        &file,
        format!(
            "call_id,content,from,to,'=header\n\
             {},\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",+13125550142,@SUM(1+1),-5\n\
             {},'tis a note,-12.5,\"+1 312\",'+13125550142\n\
             {},'@SUM(1+1),\t=cmd,-x,\n",
            ids[0], ids[1], ids[2]
        ),
    )
    .unwrap();
    let source = Source::file(&file).read_options(ReadOptions::new().ignore_other_columns(true));
    let rows = import_with_results(&server, source, &dir).await;
    let held = common::held(&server);
    assert_eq!(
        held.get("=HYPERLINK(\"http://x\",\"y\")"),
        Some(&1),
        "{held:?}"
    );
    assert_eq!(held.get("'tis a note"), Some(&1), "{held:?}");
    assert_eq!(held.get("@SUM(1+1)"), Some(&1), "{held:?}");
    // The results file, as a spreadsheet would see it.
    let text = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    let header = text.lines().next().unwrap();
    assert_eq!(
        header,
        "\u{feff}call_id,content,from,to,'=header,result_row,result_status,result_note_id,\
         result_error"
    );
    assert_eq!(
        rows[1][1..5],
        [
            "'=HYPERLINK(\"http://x\",\"y\")",
            "+13125550142",
            "'@SUM(1+1)",
            "-5"
        ]
    );
    assert_eq!(
        rows[2][1..5],
        ["'tis a note", "-12.5", "'+1 312", "'+13125550142"]
    );
    assert_eq!(rows[3][1..5], ["'@SUM(1+1)", "'\t=cmd", "'-x", ""]);
    // Every cell of the results file reads back as the input held it.
    for row in &rows {
        for cell in row {
            let read = happyrobot_bulk::spreadsheet::revived(cell);
            assert_eq!(happyrobot_bulk::spreadsheet::inert(read), *cell);
        }
    }
}

/// Issue 32: `--report` for a workbook input is a workbook of text cells with the same columns as
/// the CSV report; nothing in it is a formula.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workbook_input_gets_a_workbook_report_of_text_cells() {
    use calamine::{Data, Reader, Xlsx, open_workbook};

    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("xlsx-report");
    let file = dir.join("review.xlsx");
    let ids = ids(&server);
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (col, name) in ["call_id", "content", "from"].iter().enumerate() {
        sheet.write_string(0, col as u16, *name).unwrap();
    }
    sheet.write_string(1, 0, ids[0].as_str()).unwrap();
    sheet.write_string(1, 1, "=1+1 typed as text").unwrap();
    sheet
        .write_string(1, 2, "=HYPERLINK(\"http://x\",\"y\")")
        .unwrap();
    sheet.write_string(2, 0, ids[1].as_str()).unwrap();
    sheet.write_string(2, 1, "second").unwrap();
    sheet.write_string(2, 2, "+13125550142").unwrap();
    workbook.save(&file).unwrap();
    let report = happyrobot_bulk::results::default_path(&file);
    assert_eq!(report, dir.join("review.results.xlsx"));
    let import = Import::new(client(&server), JournalLocation::BesideInput)
        .state_dir(Some(dir.join("state")))
        .results_file(&report);
    let source = Source::file(&file).read_options(ReadOptions::new().ignore_other_columns(true));
    let done = import.run(source, |_| {}).await.unwrap();
    assert_eq!(done.added, 2);
    let mut book: Xlsx<_> = open_workbook(&report).unwrap();
    assert_eq!(book.sheet_names(), ["results"]);
    let formulas = book.worksheet_formula("results").unwrap();
    assert!(formulas.cells().all(|(_, _, f)| f.is_empty()), "no formula");
    let range = book.worksheet_range("results").unwrap();
    let rows: Vec<Vec<Data>> = range.rows().map(<[Data]>::to_vec).collect();
    let text = |row: &[Data]| -> Vec<String> {
        row.iter()
            .map(|cell| match cell {
                Data::String(s) => s.clone(),
                Data::Empty => String::new(),
                other => panic!("not a text cell: {other:?}"),
            })
            .collect()
    };
    assert_eq!(
        text(&rows[0]),
        [
            "call_id",
            "content",
            "from",
            "result_row",
            "result_status",
            "result_note_id",
            "result_error"
        ]
    );
    assert_eq!(
        text(&rows[1])[..5],
        [
            ids[0].as_str(),
            "=1+1 typed as text",
            "=HYPERLINK(\"http://x\",\"y\")",
            "2",
            "added"
        ]
    );
    assert_eq!(text(&rows[2])[2], "+13125550142");
    assert_eq!(text(&rows[2])[3], "3", "the sheet's row");
    assert_eq!(text(&rows[2])[5].len(), 24, "the note ID");
    assert_eq!(rows.len(), 3);
}
