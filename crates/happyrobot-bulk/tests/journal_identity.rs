//! Issue 27 item 8 and issue 29 item 4, in-process against the mock: an undo deletes every note
//! its journal records as added, the rows since edited or removed included; an input is known by
//! its rows, not its bytes (a workbook saved as CSV, or as Windows-1252 with `;`, finds the same
//! journal and sends nothing; a file 0.1 knew by its bytes is still found and undone); a journal
//! the state directory names that is gone refuses the run before anything is sent; records carry
//! their journal; lock files do not pile up.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::Path;

use common::{client, records, temp_dir};
use happyrobot_bulk::{
    BulkErrorKind, BulkOption, Event, Import, JournalLocation, Notice, ReadOptions, Source, Undo,
};
use happyrobot_mock::MockServer;

/// An import of `server` with the journal beside the file, and the state directory `state`.
fn import(server: &MockServer, state: &Path) -> Import {
    Import::new(client(server), JournalLocation::BesideInput).state_dir(Some(state.to_path_buf()))
}

/// The rows a file of the mock's calls holds: (call, text, flag).
fn rows(server: &MockServer, count: usize) -> Vec<(String, String, bool)> {
    let calls = server.call_ids();
    (0..count)
        .map(|n| {
            (
                calls[n % calls.len()].clone(),
                format!("Fahrer bestätigt {n}"),
                n % 3 == 0,
            )
        })
        .collect()
}

/// The requests the mock answered that read or change notes.
fn sent(server: &MockServer) -> usize {
    let counts = server.operation_counts();
    counts.get_call + counts.add_note + counts.delete_note
}

fn write_csv(path: &Path, rows: &[(String, String, bool)]) {
    let mut text = String::from("call_id,content,flagged\n");
    for (call, content, flag) in rows {
        text.push_str(&format!("{call},{content},{flag}\n"));
    }
    std::fs::write(path, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_after_edits_and_removals_deletes_every_note_the_journal_records_as_added() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("undo-edited");
    let (file, state) = (dir.join("notes.csv"), dir.join("state"));
    let mut rows = rows(&server, 18);
    write_csv(&file, &rows);
    let first = import(&server, &state)
        .run(Source::file(&file), |_| {})
        .await
        .unwrap();
    assert_eq!(first.added, 18);
    // Two rows' text edited, one removed, then imported again: the two new texts are added.
    rows[3].1 = "edited 3".into();
    rows[7].1 = "edited 7".into();
    rows.remove(11);
    write_csv(&file, &rows);
    let second = import(&server, &state)
        .run(Source::file(&file), |_| {})
        .await
        .unwrap();
    assert_eq!((second.added, second.skipped), (2, 15));
    assert_eq!(server.created_note_count(), 20);
    let undo =
        Undo::new(client(&server), JournalLocation::BesideInput).state_dir(Some(state.clone()));
    let plan = undo.plan(&Source::file(&file)).await.unwrap();
    assert_eq!((plan.to_delete, plan.removed_lines), (20, 3));
    let report = undo.run(Source::file(&file), |_| {}).await.unwrap();
    assert_eq!(
        (
            report.to_delete,
            report.removed_lines,
            report.deleted,
            report.failed,
            report.unknown
        ),
        (20, 3, 20, 0, 0),
        "{report:?}"
    );
    let held = common::held(&server);
    let left: Vec<_> = held
        .keys()
        .filter(|text| text.starts_with("Fahrer") || text.starts_with("edited"))
        .collect();
    assert!(
        left.is_empty(),
        "every note the imports added is gone: {left:?}"
    );
    // Run again, it deletes nothing and counts them all as deleted before.
    let again = undo.run(Source::file(&file), |_| {}).await.unwrap();
    assert_eq!((again.deleted, again.skipped), (0, 20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_rows_as_a_workbook_then_as_csv_in_another_encoding_send_nothing_again() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("identity");
    let state = dir.join("state");
    let rows = rows(&server, 6);
    let workbook_path = dir.join("review.xlsx");
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    for (col, name) in ["Call ID", "Note", "Flag"].iter().enumerate() {
        sheet.write_string(0, col as u16, *name).unwrap();
    }
    for (n, (call, content, flag)) in rows.iter().enumerate() {
        let row = n as u32 + 1;
        sheet.write_string(row, 0, call.as_str()).unwrap();
        sheet.write_string(row, 1, content.as_str()).unwrap();
        sheet.write_boolean(row, 2, *flag).unwrap();
    }
    workbook.save(&workbook_path).unwrap();
    let report = import(&server, &state)
        .run(Source::file(&workbook_path), |_| {})
        .await
        .unwrap();
    assert_eq!(report.added, 6);
    let posts = server.created_note_count();
    // The same rows saved as CSV beside it: no journal beside the CSV, the workbook's is found.
    let csv = dir.join("review.csv");
    write_csv(&csv, &rows);
    let again = import(&server, &state)
        .run(Source::file(&csv), |_| {})
        .await
        .unwrap();
    assert_eq!((again.added, again.skipped), (0, 6), "{again:?}");
    // And as Windows-1252 with `;`, in another directory.
    let other = temp_dir("identity-1252").join("export.csv");
    let mut text = String::from("call_id;content;flagged\r\n");
    for (call, content, flag) in &rows {
        text.push_str(&format!(
            "{call};{content};{}\r\n",
            if *flag { "yes" } else { "no" }
        ));
    }
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(&text);
    std::fs::write(&other, &bytes).unwrap();
    let source =
        Source::file(&other).read_options(ReadOptions::new().encoding("windows-1252").unwrap());
    let third = import(&server, &state).run(source, |_| {}).await.unwrap();
    assert_eq!((third.added, third.skipped), (0, 6), "{third:?}");
    assert_eq!(server.created_note_count(), posts, "nothing sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_the_state_directory_names_that_is_gone_is_reported_before_anything_is_sent() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("gone");
    let (file, state) = (dir.join("notes.csv"), dir.join("state"));
    write_csv(&file, &rows(&server, 4));
    import(&server, &state)
        .run(Source::file(&file), |_| {})
        .await
        .unwrap();
    let journal = dir.join("notes.csv.journal");
    std::fs::remove_file(&journal).unwrap();
    let requests = sent(&server);
    for plan_only in [true, false] {
        let error = if plan_only {
            import(&server, &state)
                .plan(&Source::file(&file))
                .await
                .unwrap_err()
        } else {
            import(&server, &state)
                .run(Source::file(&file), |_| {})
                .await
                .unwrap_err()
        };
        assert_eq!(error.kind(), BulkErrorKind::Refused);
        let message = error.to_string();
        assert!(
            message.contains(&journal.display().to_string()),
            "{message}"
        );
        assert!(
            message.contains("cannot be told apart from new ones"),
            "{message}"
        );
        assert!(message.contains("nothing was sent"), "{message}");
        assert!(
            error.options().contains(&BulkOption::ForgetLostJournal),
            "{message}"
        );
        assert!(error.options().contains(&BulkOption::Journal), "{message}");
    }
    assert_eq!(sent(&server), requests, "nothing sent");
    assert!(!journal.exists(), "no new journal in its place");
    // The undo is refused the same way.
    let error = Undo::new(client(&server), JournalLocation::BesideInput)
        .state_dir(Some(state.clone()))
        .run(Source::file(&file), |_| {})
        .await
        .unwrap_err();
    assert!(error.to_string().contains("is gone"), "{error}");
    // Told to start anew, the run sends every line again, with a new journal.
    let report = import(&server, &state)
        .forget_lost_journal(true)
        .run(Source::file(&file), |_| {})
        .await
        .unwrap();
    assert_eq!(report.added, 4);
    assert!(journal.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_their_journal_and_leave_no_index_entry_nor_lock_file() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("records-journal");
    let (journal, state) = (dir.join("batch.journal"), dir.join("state"));
    let records = records(&server, "batch", 5);
    let import = import(&server, &state);
    let report = import
        .run(
            Source::records_with_journal(records.clone(), &journal),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(report.added, 5);
    assert!(journal.exists());
    let again = import
        .run(
            Source::records_with_journal(records.clone(), &journal),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(again.skipped, 5);
    // No index entry (the journal's path is given), and the lock file went with its run.
    assert!(!state.join("journals").exists());
    let locks: Vec<_> = std::fs::read_dir(state.join("locks")).unwrap().collect();
    assert!(locks.is_empty(), "{locks:?}");
    // Two journals named for the same records: refused, naming both.
    let error = Import::new(
        client(&server),
        JournalLocation::path(dir.join("other.journal")),
    )
    .run(Source::records_with_journal(records, &journal), |_| {})
    .await
    .unwrap_err();
    assert!(error.to_string().contains("two journals"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_import_leaves_no_lock_file_and_two_at_once_still_refuse_each_other() {
    // Slow answers keep the first run going while the second starts.
    let server = MockServer::builder()
        .latency(std::time::Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let dir = temp_dir("locks");
    let (file, state) = (dir.join("notes.csv"), dir.join("state"));
    write_csv(&file, &rows(&server, 30));
    let copy = dir.join("copy.csv");
    std::fs::copy(&file, &copy).unwrap();
    let first = import(&server, &state).concurrency(1);
    let running = tokio::spawn(async move { first.run(Source::file(&file), |_| {}).await });
    while server.created_note_count() == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // The same rows under another name and another journal: refused while the first runs.
    let error = import(&server, &state)
        .run(Source::file(&copy).name("copy"), |_| {})
        .await;
    let error = error.map(|_| ()).unwrap_err();
    assert!(error.to_string().contains("same content"), "{error}");
    running.await.unwrap().unwrap();
    let locks: Vec<_> = std::fs::read_dir(state.join("locks")).unwrap().collect();
    assert!(locks.is_empty(), "{locks:?}");
}

/// A hash as the engine writes them: 128 bits of BLAKE3, hex.
fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..32].to_string()
}

/// Rewrites the `run` entries of `journal` as release 0.1 wrote them: the input named by the hash
/// of its bytes, `content` (each entry's checksum made again).
fn as_written_by_0_1(journal: &Path, content: &str) {
    let text = std::fs::read_to_string(journal).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let mut entry: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(line).unwrap();
        if entry["event"] == "run" {
            entry.remove("crc");
            entry.insert("content".into(), content.into());
            let json = serde_json::to_string(&entry).unwrap();
            let crc = &blake3::hash(json.as_bytes()).to_hex()[..8];
            out.push_str(&format!(
                "{},\"crc\":\"{crc}\"}}\n",
                &json[..json.len() - 1]
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(journal, out).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_imported_by_0_1_is_still_found_by_its_bytes_and_can_be_undone() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("identity-0-1");
    let file = dir.join("notes.csv");
    write_csv(&file, &rows(&server, 5));
    import(&server, &dir.join("first-state"))
        .run(Source::file(&file), |_| {})
        .await
        .unwrap();
    let bytes = hash(&std::fs::read(&file).unwrap());
    let journal = dir.join("notes.csv.journal");
    as_written_by_0_1(&journal, &bytes);
    // The file renamed, and a state directory whose index names its journal by the file's bytes.
    let renamed = dir.join("renamed.csv");
    std::fs::rename(&file, &renamed).unwrap();
    let state = dir.join("state");
    std::fs::create_dir_all(state.join("journals")).unwrap();
    let mut key = blake3::Hasher::new();
    key.update(bytes.as_bytes());
    key.update(&[0xff]);
    key.update(server.base_url().as_bytes());
    let key = key.finalize().to_hex()[..32].to_string();
    let absolute = std::path::absolute(&journal).unwrap();
    std::fs::write(state.join("journals").join(key), absolute.to_str().unwrap()).unwrap();
    // An undo knows it by its bytes (its journal records no other identity yet).
    let plan = Undo::new(client(&server), JournalLocation::path(&journal))
        .state_dir(Some(state.clone()))
        .plan(&Source::file(&renamed))
        .await
        .unwrap();
    assert_eq!(plan.to_delete, 5);
    let mut resumed = false;
    let report = import(&server, &state)
        .run(Source::file(&renamed), |event| {
            resumed |= matches!(
                event,
                happyrobot_bulk::Event::Notice(happyrobot_bulk::Notice::ResumingByContent { .. })
            );
        })
        .await
        .unwrap();
    assert!(resumed);
    assert_eq!((report.added, report.skipped), (0, 5), "{report:?}");
    let undo = Undo::new(client(&server), JournalLocation::path(&journal))
        .state_dir(Some(state))
        .run(Source::file(&renamed), |_| {})
        .await
        .unwrap();
    assert_eq!(undo.deleted, 5, "{undo:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_imported_to_another_base_url_only_is_told_before_it_is_sent_as_new() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("other-api");
    let file = dir.join("notes.csv");
    write_csv(&file, &rows(&server, 2));
    let state = dir.join("state");
    let notices = |import: Import| {
        let file = file.clone();
        async move {
            let mut notices = Vec::new();
            let report = import
                .run(Source::file(&file), |event| {
                    if let Event::Notice(notice) = event {
                        notices.push(notice.clone());
                    }
                })
                .await
                .unwrap();
            (report.added, notices)
        }
    };
    let (added, first) = notices(import(&server, &state)).await;
    assert_eq!((added, first.len()), (2, 0), "{first:?}");
    // The same mock under another name: a new API to the journal, which says so first.
    let alias = server.base_url().replace("127.0.0.1", "localhost");
    let aliased = happyrobot::Client::builder()
        .api_key(server.api_key())
        .base_url(&alias)
        .build()
        .unwrap();
    let to_alias = || {
        Import::new(aliased.clone(), JournalLocation::BesideInput).state_dir(Some(state.clone()))
    };
    let (added, second) = notices(to_alias()).await;
    assert_eq!(added, 2);
    assert_eq!(
        second,
        [Notice::OtherApi {
            base_urls: vec![server.base_url().trim_end_matches('/').to_string()],
            base_url: alias.trim_end_matches('/').to_string(),
        }]
    );
    // Once the journal records this API too, it is not said again.
    let (added, third) = notices(to_alias()).await;
    assert_eq!((added, third.len()), (0, 0), "{third:?}");
}
