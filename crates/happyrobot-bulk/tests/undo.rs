//! Undo in-process against the mock: exactly what the import added goes, nothing else; resumable;
//! refused for another API or another input.

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

use std::time::Duration;

use common::{client, held, import, records, run, temp_dir};
use happyrobot::{CancellationToken, NewNote};
use happyrobot_bulk::{
    BulkErrorKind, Event, JournalLocation, NoteRecord, Notice, Source, Stop, Undo, UndoReport,
};
use happyrobot_mock::{Fault, MockServer};

fn undo(server: &MockServer, journal: &std::path::Path) -> Undo {
    Undo::new(client(server), JournalLocation::path(journal))
        .state_dir(Some(journal.with_extension("state")))
}

/// Undoes `records` from `journal`, with at most `concurrency` requests at once if given.
async fn undo_records(
    server: &MockServer,
    journal: &std::path::Path,
    records: &[NoteRecord],
    concurrency: Option<usize>,
) -> UndoReport {
    let undo = undo(server, journal);
    let undo = match concurrency {
        Some(n) => undo.concurrency(n),
        None => undo,
    };
    undo.run(Source::records(records.to_vec()), |_| {})
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_deletes_exactly_the_imported_notes_and_is_done_once() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("undo").join("j");
    let records = records(&server, "u", 60);
    let (report, _) = run(&import(&server, &journal).concurrency(8), &records).await;
    assert_eq!(report.added, 60);
    // Notes added by other means, one with the same text as an imported one, stay.
    let c = client(&server);
    let call: happyrobot::CallId = server.call_ids()[0].parse().unwrap();
    c.add_note(&call, NewNote::new("u 0")).await.unwrap();
    c.add_note(&call, NewNote::new("by hand")).await.unwrap();
    let before = held(&server);
    let report = undo_records(&server, &journal, &records, Some(8)).await;
    assert_eq!(
        (
            report.to_delete,
            report.deleted,
            report.failed,
            report.unknown
        ),
        (60, 60, 0, 0)
    );
    let after = held(&server);
    assert_eq!(after.get("u 0"), Some(&1), "the note added by hand stays");
    assert_eq!(after.get("by hand"), Some(&1));
    for n in 1..60 {
        assert_eq!(after.get(&format!("u {n}")), None, "u {n} was deleted");
    }
    assert_eq!(
        before.values().sum::<usize>() - after.values().sum::<usize>(),
        60
    );
    // Once done, an undo deletes nothing.
    let deletes = server.operation_counts();
    let again = undo_records(&server, &journal, &records, None).await;
    assert_eq!((again.deleted, again.skipped), (0, 60));
    assert_eq!(server.operation_counts(), deletes);
    // A later import sends the undone lines again.
    let (reimport, _) = run(&import(&server, &journal), &records).await;
    assert_eq!(reimport.added, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_undo_resumes_and_deletes_every_note_once() {
    let server = MockServer::builder()
        .latency(Duration::from_millis(30))
        .start()
        .await
        .unwrap();
    let journal = temp_dir("undo-stop").join("j");
    let records = records(&server, "us", 80);
    run(&import(&server, &journal).concurrency(8), &records).await;
    let token = CancellationToken::new();
    let stopper = {
        let token = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            token.cancel();
        })
    };
    let first = undo(&server, &journal)
        .concurrency(2)
        .stop(token)
        .run(Source::records(records.clone()), |_| {})
        .await
        .unwrap();
    stopper.await.unwrap();
    assert_eq!(first.stopped, Some(Stop::Cancelled));
    assert!(first.deleted > 0 && first.deleted < 80, "{}", first.deleted);
    let second = undo_records(&server, &journal, &records, Some(8)).await;
    assert_eq!(first.deleted + second.deleted, 80);
    assert_eq!(second.skipped, first.deleted);
    assert!(held(&server).keys().all(|k| !k.starts_with("us ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_whose_retry_finds_it_gone_after_its_answer_was_lost_is_deleted_not_already_gone()
{
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("undo-retry-gone").join("j");
    let records = records(&server, "ur", 1);
    run(&import(&server, &journal), &records).await;
    // The delete goes through, its answer lost; the retry finds the note gone: this run's own
    // first attempt deleted it.
    server.inject(Fault::SaveThenDrop, 1);
    let report = undo_records(&server, &journal, &records, None).await;
    assert_eq!(
        (report.deleted, report.already_gone, report.unknown),
        (1, 0, 0),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_may_have_happened_is_unknown_and_a_rerun_settles_it() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("undo-maybe").join("j");
    let records = records(&server, "um", 3);
    run(&import(&server, &journal).concurrency(1), &records).await;
    // The first delete goes through but its answer is lost; its retry is refused with a wait
    // longer than the client's max_retry_after: the run stops there.
    server.inject(Fault::SaveThenDrop, 1);
    server.inject(
        Fault::RateLimited {
            retry_after_secs: 120,
        },
        1,
    );
    let first = undo_records(&server, &journal, &records, Some(1)).await;
    assert!(
        matches!(first.stopped, Some(Stop::RetryAfterTooLong(_))),
        "{:?}",
        first.stopped
    );
    assert_eq!(
        (
            first.deleted,
            first.unknown,
            first.not_deleted,
            first.failed
        ),
        (0, 1, 2, 0),
        "the delete that went through is unknown, not \"not deleted\""
    );
    assert_eq!(
        held(&server)
            .keys()
            .filter(|k| k.starts_with("um "))
            .count(),
        2
    );
    // A re-run (its pace not held by the first run's wait) sends the delete again: gone.
    let second = Undo::new(client(&server), JournalLocation::path(&journal))
        .state_dir(Some(journal.with_extension("state2")))
        .run(Source::records(records.clone()), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (second.deleted, second.already_gone, second.unknown),
        (3, 1, 0)
    );
    assert!(held(&server).keys().all(|k| !k.starts_with("um ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notes_of_a_call_deleted_in_the_app_are_already_gone_once_another_call_is_seen() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("undo-call-gone").join("j");
    // A line for a call that never existed: the journal names it, and it is read (not found).
    let mut records = records(&server, "cg", 6);
    records.push(NoteRecord::new(
        "65f1c0ffee00000000000bad".parse().unwrap(),
        NewNote::new("cg never"),
    ));
    run(&import(&server, &journal).concurrency(2), &records).await;
    let ids = server.call_ids();
    let calls: Vec<_> = ids.iter().map(|id| server.call(id).unwrap()).collect();
    // Every call not found (as a gateway answering in JSON, or a key that sees none, says it):
    // nothing tells a deleted call, so every line fails, and a re-run tries them again.
    for id in &ids {
        assert!(server.remove_call(id));
    }
    let report = undo_records(&server, &journal, &records, None).await;
    assert_eq!(
        (report.deleted, report.already_gone, report.failed),
        (0, 0, 6),
        "{report:?}"
    );
    assert!(
        report.failed_lines[0]
            .failure
            .reason
            .contains("not counted gone"),
        "{report:?}"
    );
    // The calls back but the first, deleted in the app: another call of the import is seen, so
    // the first call's two notes went with it (already gone); the others are deleted.
    for call in calls.into_iter().skip(1) {
        assert!(server.add_call(call));
    }
    let report = undo_records(&server, &journal, &records, None).await;
    assert_eq!(
        (report.deleted, report.already_gone, report.failed),
        (6, 2, 0),
        "{report:?}"
    );
    assert!(held(&server).keys().all(|k| !k.starts_with("cg ")));
    // Done: a re-run sends nothing and fails nothing.
    let again = undo_records(&server, &journal, &records, None).await;
    assert_eq!((again.skipped, again.failed), (6, 0), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_left_with_only_lines_of_a_deleted_call_reads_another_call_of_the_journal() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("undo-call-gone-alone").join("j");
    let records = records(&server, "ca", 6);
    run(&import(&server, &journal).concurrency(1), &records).await;
    // The first line's delete is refused (400: not retried), the others go.
    server.inject(Fault::Status(400), 1);
    let first = undo_records(&server, &journal, &records, Some(1)).await;
    assert_eq!((first.deleted, first.failed), (5, 1), "{first:?}");
    // Its call is then deleted in the app: the run that is left has nothing else to delete, so
    // it reads a call the journal names, finds it, and reads the deleted one again.
    assert!(server.remove_call(&server.call_ids()[0]));
    let reads = server.operation_counts().get_call;
    let report = undo_records(&server, &journal, &records, None).await;
    assert_eq!(
        (
            report.deleted,
            report.already_gone,
            report.skipped,
            report.failed
        ),
        (1, 1, 5, 0),
        "{report:?}"
    );
    // Another call of the journal read and found once or twice in each round of the proof (the
    // deleted one's reads are 404s, which the mock does not count).
    let witness_reads = server.operation_counts().get_call - reads;
    assert!((5..=10).contains(&witness_reads), "{witness_reads}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_answered_404_for_a_call_that_reads_fine_fails_and_is_tried_again() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("undo-call-404").join("j");
    let records = records(&server, "c4", 6);
    run(&import(&server, &journal).concurrency(2), &records).await;
    // The first delete is answered 404 in JSON about no note (as a gateway in front of one route
    // may answer): its call, read again, is there, so its note is not counted gone.
    server.inject(Fault::Status(404), 1);
    let report = undo_records(&server, &journal, &records, Some(1)).await;
    assert_eq!(
        (report.deleted, report.already_gone, report.failed),
        (5, 0, 1),
        "{report:?}"
    );
    assert!(
        report.failed_lines[0]
            .failure
            .reason
            .contains("not counted gone"),
        "{report:?}"
    );
    assert_eq!(
        held(&server)
            .keys()
            .filter(|k| k.starts_with("c4 "))
            .count(),
        1
    );
    let again = undo_records(&server, &journal, &records, None).await;
    assert_eq!(
        (again.deleted, again.skipped, again.failed),
        (1, 5, 0),
        "{again:?}"
    );
    assert!(held(&server).keys().all(|k| !k.starts_with("c4 ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_that_answers_404_for_every_call_from_mid_run_proves_no_call_gone() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("undo-call-outage").join("j");
    let records = records(&server, "co", 2);
    run(&import(&server, &journal).concurrency(1), &records).await;
    // The first delete goes through (its call is seen); from then on every request is answered
    // 404 in JSON about no note (an outage, a key that lost its access): the second line's call
    // is not counted gone on the strength of the first call, seen before the outage.
    server.inject(Fault::Delay(Duration::ZERO), 1);
    server.inject(Fault::Status(404), 50);
    let report = undo_records(&server, &journal, &records, Some(1)).await;
    assert_eq!(
        (report.deleted, report.already_gone, report.failed),
        (1, 0, 1),
        "{report:?}"
    );
    assert!(
        report.failed_lines[0]
            .failure
            .reason
            .contains("not counted gone"),
        "{report:?}"
    );
    // Once the API answers again, the note still there is deleted.
    server.clear_faults();
    let again = undo_records(&server, &journal, &records, None).await;
    assert_eq!(
        (again.deleted, again.already_gone, again.skipped),
        (1, 0, 1),
        "{again:?}"
    );
    assert!(held(&server).keys().all(|k| !k.starts_with("co ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_answered_404_now_and_then_is_not_counted_gone() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("undo-call-flaky").join("j");
    let records = records(&server, "cf", 2);
    run(&import(&server, &journal).concurrency(1), &records).await;
    // The first delete goes; the second, and the first read of its call, are answered 404 in
    // JSON about no note; the first call then reads fine, and so does the second, read again.
    server.inject(Fault::Delay(Duration::ZERO), 1);
    server.inject(Fault::Status(404), 2);
    let report = undo_records(&server, &journal, &records, Some(1)).await;
    assert_eq!(
        (report.deleted, report.already_gone, report.failed),
        (1, 0, 1),
        "{report:?}"
    );
    assert_eq!(server.pending_faults(), 0);
    assert_eq!(
        held(&server)
            .keys()
            .filter(|k| k.starts_with("cf "))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_an_undo_wrongly_counted_gone_is_looked_up_before_an_import_sends_it() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("undo-gone-unseen").join("j");
    let records = records(&server, "gu", 2);
    run(&import(&server, &journal).concurrency(1), &records).await;
    // The second call is deleted in the app: the undo counts its note gone with it. Then the app
    // brings the call back, note and all (or the API's word was wrong): the note is there while
    // the journal says it was undone.
    let second = server.call_ids()[1].clone();
    let saved = server.call(&second).unwrap();
    assert!(server.remove_call(&second));
    let report = undo_records(&server, &journal, &records, Some(1)).await;
    assert_eq!(
        (report.deleted, report.already_gone, report.failed),
        (2, 1, 0),
        "{report:?}"
    );
    assert!(server.add_call(saved));
    assert_eq!(held(&server).get("gu 1"), Some(&1));
    // Imported again without looking anything up: the line counted gone is listed unknown, not
    // sent; the line the undo deleted is added again.
    let no_lookup = import(&server, &journal).concurrency(1).reconcile(false);
    let (blind, _) = run(&no_lookup, &records).await;
    assert_eq!((blind.added, blind.unknown), (1, 1), "{blind:?}");
    common::assert_each_once(&server, "gu", 2);
    // Imported again: the line counted gone is looked up first and found, not added twice.
    let (again, _) = run(&import(&server, &journal).concurrency(1), &records).await;
    assert_eq!((again.added, again.reconciled.found), (0, 1), "{again:?}");
    common::assert_each_once(&server, "gu", 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_answered_not_found_while_its_call_lists_it_is_not_counted_gone() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("undo-note-contradicted").join("j");
    let records = records(&server, "nc", 2);
    run(&import(&server, &journal).concurrency(1), &records).await;
    // The first delete is answered 404 for the note, which its call still lists.
    server.inject(Fault::NoteNotFound, 1);
    let report = undo_records(&server, &journal, &records, Some(1)).await;
    assert_eq!(
        (report.deleted, report.already_gone, report.failed),
        (1, 0, 1),
        "{report:?}"
    );
    assert!(
        report.failed_lines[0]
            .failure
            .reason
            .contains("still lists the note"),
        "{report:?}"
    );
    assert_eq!(held(&server).get("nc 0"), Some(&1));
    let again = undo_records(&server, &journal, &records, None).await;
    assert_eq!((again.deleted, again.already_gone), (1, 0), "{again:?}");
    assert!(held(&server).keys().all(|k| !k.starts_with("nc ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_of_a_call_deleted_in_the_app_imported_again_sends_nothing() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("undo-gone-reimport").join("j");
    let records = records(&server, "gr", 2);
    run(&import(&server, &journal).concurrency(1), &records).await;
    assert!(server.remove_call(&server.call_ids()[1]));
    let report = undo_records(&server, &journal, &records, Some(1)).await;
    assert_eq!((report.deleted, report.already_gone), (2, 1), "{report:?}");
    let posts = || {
        server
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count()
    };
    let before = posts();
    let (again, _) = run(&import(&server, &journal).concurrency(1), &records).await;
    // The first line is added again; the second's call, looked up, is not there: nothing is
    // sent for it, and the report says why.
    assert_eq!(again.added, 1, "{again:?}");
    assert_eq!(again.unknown + again.failed, 1, "{again:?}");
    assert_eq!(posts(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_answered_unreadably_is_deleted() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("undo-unreadable").join("j");
    let records = records(&server, "uu", 2);
    run(&import(&server, &journal).concurrency(1), &records).await;
    // Deleted, and answered 200 with a body cut short.
    server.inject(Fault::InvalidJson, 1);
    let report = undo_records(&server, &journal, &records, Some(1)).await;
    assert_eq!((report.deleted, report.failed, report.unknown), (2, 0, 0));
    assert!(held(&server).keys().all(|k| !k.starts_with("uu ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_settles_lines_in_doubt_first() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("undo-doubt").join("j");
    let records = records(&server, "ud", 5);
    // One add saved but its answer lost, and reconciling off: the import leaves it unknown.
    server.inject(Fault::SaveThenDrop, 1);
    let (report, _) = run(
        &import(&server, &journal).concurrency(1).reconcile(false),
        &records,
    )
    .await;
    assert_eq!((report.added, report.unknown), (4, 1));
    let report = undo_records(&server, &journal, &records, None).await;
    assert_eq!(
        (report.deleted, report.reconciled.found, report.unknown),
        (5, 1, 0)
    );
    assert!(held(&server).keys().all(|k| !k.starts_with("ud ")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undo_is_refused_for_another_api_or_other_records() {
    let server = MockServer::start().await.unwrap();
    let other = MockServer::start().await.unwrap();
    let journal = temp_dir("undo-refused").join("j");
    let records = records(&server, "ur", 3);
    run(&import(&server, &journal), &records).await;
    let error = undo(&other, &journal)
        .run(Source::records(records.clone()), |_| {})
        .await
        .unwrap_err();
    assert_eq!(error.kind(), BulkErrorKind::Refused);
    assert!(error.to_string().contains("records imports to"), "{error}");
    assert_eq!(error.option(), Some(happyrobot_bulk::BulkOption::BaseUrl));
    let mut changed = records.clone();
    changed.pop();
    let error = undo(&server, &journal)
        .run(Source::records(changed), |_| {})
        .await
        .unwrap_err();
    assert!(error.to_string().contains("another file"), "{error}");
    let error = undo(&server, &temp_dir("none").join("j"))
        .run(Source::records(records), |_| {})
        .await
        .unwrap_err();
    assert!(error.to_string().contains("nothing to undo"), "{error}");
    assert_eq!(error.option(), Some(happyrobot_bulk::BulkOption::Journal));
    assert_eq!(
        held(&server)
            .keys()
            .filter(|k| k.starts_with("ur "))
            .count(),
        3
    );
}

/// Issue 25: an undo tells its notices as an import does; a damaged journal is reported, and the
/// lines the damage may have spoken of are looked up on their calls (found, deleted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undo_over_a_damaged_journal_reports_its_notices() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("undo-damaged").join("j");
    let records = records(&server, "udmg", 10);
    let (report, _) = run(&import(&server, &journal), &records).await;
    assert_eq!(report.added, 10);
    let text = std::fs::read_to_string(&journal).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    // The journal's line 6, an entry of some line: garbled past reading.
    lines[5] = "GARBAGE{{{".to_string();
    std::fs::write(&journal, format!("{}\n", lines.join("\n"))).unwrap();
    let mut notices = Vec::new();
    let report = undo(&server, &journal)
        .run(Source::records(records.clone()), |event| {
            if let Event::Notice(notice) = event {
                notices.push(notice.clone());
            }
        })
        .await
        .unwrap();
    assert!(
        notices.iter().any(|n| matches!(
            n,
            Notice::DamagedJournalLines { lines, journal: j }
                if lines == &vec![6] && j.ends_with("j")
        )),
        "{notices:?}"
    );
    assert_eq!((report.deleted, report.unknown, report.failed), (10, 0, 0));
    assert!(held(&server).keys().all(|k| !k.starts_with("udmg ")));
}
