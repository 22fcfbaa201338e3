//! Issue 20's failures, against the mock: whatever one damaged journal line, a re-run sends no note
//! twice and loses none; only a regular file is a journal.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]
// These tests give records' journal to the job (JournalLocation::Path) with `Source::records`,
// the form of earlier releases, deprecated but kept working.
#![allow(deprecated)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{assert_each_once, import, records, run, temp_dir};
use happyrobot_bulk::{BulkErrorKind, Source};
use happyrobot_mock::MockServer;

fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, format!("{}\n", lines.join("\n"))).unwrap();
}

/// Imports 20 records (the last 5 left for the re-run), damages the journal with `damage`, and
/// re-runs with all 20: every note is then on the mock exactly once.
async fn survives(name: &str, damage: impl Fn(&mut Vec<String>)) {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir(name).join("j");
    let prefix = format!("dmg-{name}");
    let all = records(&server, &prefix, 20);
    let (report, _) = run(&import(&server, &journal).concurrency(4), &all[..15]).await;
    assert_eq!(report.added, 15);
    let mut lines = lines_of(&journal);
    damage(&mut lines);
    write_lines(&journal, &lines);
    let (report, _) = run(&import(&server, &journal).concurrency(4), &all).await;
    assert_eq!(report.unknown, 0, "{name}: {:?}", report.unknown_lines);
    assert_eq!(report.added + report.skipped, 20, "{name}");
    assert_each_once(&server, &prefix, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_to_the_first_line_re_sends_nothing() {
    survives("garbage", |lines| lines[0] = "GARBAGE{{{".into()).await;
    survives("cut", |lines| lines[0].truncate(30)).await;
    survives("deleted", |lines| {
        lines.remove(0);
    })
    .await;
    survives("emptied", |lines| lines[0].clear()).await;
    survives("swapped", |lines| lines.swap(0, 7)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_done_entry_is_looked_up_not_left_unknown() {
    survives("done", |lines| {
        let done = lines
            .iter()
            .position(|l| l.contains("\"event\":\"done\""))
            .unwrap();
        lines[done] = lines[done].replace("\"done\"", "\"d0ne\"");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_garbled_middle_entry_puts_lines_in_doubt_and_they_settle() {
    survives("middle-deleted", |lines| {
        lines.remove(9);
    })
    .await;
    survives("middle-garbage", |lines| {
        lines[9] = "\u{0}\u{1}\u{2}".into()
    })
    .await;
    survives("two-runs", |lines| {
        // Every `run` entry damaged: the entries still say where they went.
        for line in lines.iter_mut().filter(|l| l.contains("\"event\":\"run\"")) {
            *line = "x".repeat(40);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_journal_is_one_with_no_line_sent() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("empty-journal").join("j");
    std::fs::write(&journal, "").unwrap();
    let all = records(&server, "empty", 5);
    let (report, _) = run(&import(&server, &journal), &all).await;
    assert_eq!(report.added, 5);
    assert_each_once(&server, "empty", 5);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_files_are_refused_at_once_and_nothing_is_sent() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("special");
    let null = dir.join("null");
    std::os::unix::fs::symlink("/dev/null", &null).unwrap();
    let zero = dir.join("zero");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let fifo = dir.join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for journal in [null, zero, fifo, dir.clone()] {
        let started = Instant::now();
        let plan = import(&server, &journal)
            .plan(&Source::records(records(&server, "sp", 3)))
            .await;
        let error = import(&server, &journal)
            .run(Source::records(records(&server, "sp", 3)), |_| {})
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1), "{journal:?}");
        assert_eq!(error.kind(), BulkErrorKind::Refused, "{journal:?}: {error}");
        assert!(error.to_string().contains("nothing was sent"), "{error}");
        assert!(plan.is_err(), "a dry run refuses it too: {journal:?}");
    }
    assert_eq!(server.created_note_count(), 0);
}
