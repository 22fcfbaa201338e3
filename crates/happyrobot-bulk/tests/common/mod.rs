//! What the engine's tests share: a client for a mock, records spread over its calls, and counts
//! of the notes the mock holds.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
// These tests give records' journal to the job (JournalLocation::Path) with `Source::records`,
// the form of earlier releases, deprecated but kept working.
#![allow(deprecated)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use happyrobot::{CallId, Client, NewNote};
use happyrobot_bulk::{Event, Import, JournalLocation, LineOutcome, NoteRecord, Report, Source};
use happyrobot_mock::MockServer;

/// A client for `server` that settles unknown outcomes quickly.
pub fn client(server: &MockServer) -> Client {
    Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .timeout(Duration::from_secs(5))
        .reconcile_settle(Duration::from_millis(200))
        .build()
        .unwrap()
}

/// `count` records with texts `<prefix> <n>`, spread over the mock's calls.
pub fn records(server: &MockServer, prefix: &str, count: usize) -> Vec<NoteRecord> {
    let calls: Vec<CallId> = server
        .call_ids()
        .iter()
        .map(|id| id.parse().unwrap())
        .collect();
    (0..count)
        .map(|n| {
            NoteRecord::new(
                calls[n % calls.len()].clone(),
                NewNote::new(format!("{prefix} {n}")),
            )
        })
        .collect()
}

/// How many notes with each text the mock holds now, on all its calls.
pub fn held(server: &MockServer) -> HashMap<String, usize> {
    server.notes_by_content(None)
}

/// Every note `<prefix> 0..count` is on the mock exactly once.
pub fn assert_each_once(server: &MockServer, prefix: &str, count: usize) {
    let held = held(server);
    let mut wrong = Vec::new();
    for n in 0..count {
        let text = format!("{prefix} {n}");
        let times = held.get(&text).copied().unwrap_or(0);
        if times != 1 {
            wrong.push((text, times));
        }
    }
    assert!(wrong.is_empty(), "notes not there exactly once: {wrong:?}");
}

/// A new directory for one test (the shared test kit's).
pub fn temp_dir(name: &str) -> PathBuf {
    happyrobot_mock::testkit::temp_dir(name).unwrap()
}

/// An import of `server` journaled at `journal`, with its own state directory.
pub fn import(server: &MockServer, journal: &std::path::Path) -> Import {
    Import::new(client(server), JournalLocation::path(journal))
        .state_dir(Some(journal.with_extension("state")))
}

/// Runs `import` on `records` and returns the report, with every line event.
pub async fn run(import: &Import, records: &[NoteRecord]) -> (Report, Vec<(u64, String)>) {
    let mut lines = Vec::new();
    let report = import
        .run(Source::records(records.to_vec()), |event| {
            if let Event::Line(line) = event {
                lines.push((line.line, outcome_word(&line.outcome)));
            }
        })
        .await
        .unwrap();
    (report, lines)
}

/// An outcome as a word, for assertions.
pub fn outcome_word(outcome: &LineOutcome) -> String {
    match outcome {
        LineOutcome::Added {
            reconciled: None, ..
        } => "added".into(),
        LineOutcome::Added {
            reconciled: Some(how),
            ..
        } => format!("added ({how:?})"),
        LineOutcome::AlreadyAdded { .. } => "already added".into(),
        LineOutcome::Failed(f) => format!("failed ({:?})", f.kind),
        LineOutcome::Unknown(_) => "unknown".into(),
        LineOutcome::NotSent => "not sent".into(),
        LineOutcome::Deleted { .. } => "deleted".into(),
        LineOutcome::AlreadyDeleted => "already deleted".into(),
        LineOutcome::NotAdded => "not added".into(),
        other => format!("{other:?}"),
    }
}

/// The rows of a CSV results file (header first), read back as a spreadsheet would: it must start
/// with UTF-8's byte-order mark, and be comma-separated.
#[cfg(feature = "csv")]
pub fn read_results(path: &std::path::Path) -> Vec<Vec<String>> {
    let bytes = std::fs::read(path).unwrap();
    let text = bytes
        .strip_prefix("\u{feff}".as_bytes())
        .unwrap_or_else(|| panic!("{} has no byte-order mark", path.display()));
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text)
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}
