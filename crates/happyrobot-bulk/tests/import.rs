//! The engine in-process against the mock: every note once, through faults, rate limits, late
//! applies, stops, and two runs at once.

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

use common::{assert_each_once, client, import, records, run, temp_dir};
use happyrobot::CancellationToken;
use happyrobot_bulk::{BulkErrorKind, Event, Import, JournalLocation, Source, Stop};
use happyrobot_mock::{Fault, LateAnswer, MockServer, RateLimit};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_added_once_and_a_rerun_sends_nothing() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("once").join("j");
    let records = records(&server, "once", 50);
    let (report, lines) = run(&import(&server, &journal).concurrency(8), &records).await;
    assert_eq!(
        (report.lines, report.added, report.failed, report.unknown),
        (50, 50, 0, 0)
    );
    assert_eq!(lines.len(), 50);
    assert!(report.stopped.is_none(), "{:?}", report.stopped);
    assert_each_once(&server, "once", 50);
    let posts = server.created_note_count();
    let (again, _) = run(&import(&server, &journal), &records).await;
    assert_eq!((again.added, again.skipped), (0, 50));
    assert_eq!(server.created_note_count(), posts, "nothing sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_saved_then_dropped_is_found_and_never_sent_twice() {
    // Faults hit the next requests of any operation, lookups included: one at a time.
    let server = MockServer::start().await.unwrap();
    server.inject(Fault::SaveThenDrop, 1);
    let journal = temp_dir("save-drop").join("j");
    let records = records(&server, "sd", 10);
    let (report, lines) = run(&import(&server, &journal).concurrency(1), &records).await;
    assert_eq!(report.added, 10, "{lines:?}");
    assert_eq!(report.reconciled.found, 1);
    assert_eq!(report.reconciled.sent_again, 0);
    assert_each_once(&server, "sd", 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_request_is_found_absent_and_sent_again_once_under_a_new_id() {
    let server = MockServer::start().await.unwrap();
    server.inject(Fault::CloseBeforeResponse, 1);
    let journal = temp_dir("close").join("j");
    let records = records(&server, "cb", 6);
    let (report, _) = run(&import(&server, &journal).concurrency(1), &records).await;
    assert_eq!((report.added, report.reconciled.sent_again), (6, 1));
    assert_each_once(&server, "cb", 6);
    // The note sent again went under a new ID: the first attempt's and the second's differ.
    let posts: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    let ids: std::collections::HashSet<String> = posts
        .iter()
        .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.body).ok())
        .filter_map(|v| v["id"].as_str().map(String::from))
        .collect();
    assert_eq!(ids.len(), posts.len(), "no note ID was sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_client_ids_a_dropped_add_stays_unknown_and_is_never_resent() {
    let server = MockServer::builder()
        .ignore_client_note_ids(true)
        .start()
        .await
        .unwrap();
    server.inject(Fault::SaveThenDrop, 1);
    let journal = temp_dir("ignore").join("j");
    let records = records(&server, "ig", 3);
    let (report, _) = run(&import(&server, &journal).concurrency(1), &records).await;
    assert_eq!((report.added, report.unknown), (2, 1));
    assert_eq!(report.reconciled.undecided, 1);
    assert_each_once(&server, "ig", 3);
    // A re-run looks again and still cannot tell: it lists it, and sends nothing.
    let posts = server.created_note_count();
    let (again, _) = run(&import(&server, &journal), &records).await;
    assert_eq!(again.unknown, 1);
    assert_eq!(server.created_note_count(), posts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_gives_up_while_the_api_goes_on_leaves_no_second_note() {
    // Issue 19: the gateway answers 504 after 1 s, the backend adds the note 2.5 s after the
    // request arrived. The client waits three times as long as the attempt took before it calls
    // the note absent, so it finds it.
    for refuse in [false, true] {
        let server = MockServer::builder()
            .refuse_repeated_note_ids(refuse)
            .start()
            .await
            .unwrap();
        server.inject(
            Fault::LateApply {
                answer_after: Duration::from_secs(1),
                answer: LateAnswer::Status(504),
                apply_after: Duration::from_millis(2500),
            },
            1,
        );
        let journal = temp_dir("late").join("j");
        let records = records(&server, "late", 6);
        let (report, lines) = run(&import(&server, &journal).concurrency(1), &records).await;
        assert_eq!(report.added, 6, "{lines:?}");
        assert_eq!(report.reconciled.found, 1, "{lines:?}");
        assert_eq!(report.reconciled.sent_again, 0);
        // The late notes have landed by now; none is there twice.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_each_once(&server, "late", 6);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_left_by_an_apply_later_than_any_wait_is_removed_by_the_next_run() {
    // The backend applies the first attempt 4 s after it arrived, long after the gateway's
    // 100 ms answer: the client's wait (three times 100 ms, at least the settle delay) is over,
    // so the note is sent again under a new ID, and the late first one lands as well. The next
    // run finds both IDs on the call and deletes the copy.
    let server = MockServer::start().await.unwrap();
    server.inject(
        Fault::LateApply {
            answer_after: Duration::from_millis(100),
            answer: LateAnswer::Status(504),
            apply_after: Duration::from_secs(4),
        },
        1,
    );
    let journal = temp_dir("later").join("j");
    let records = records(&server, "later", 3);
    let (report, _) = run(&import(&server, &journal).concurrency(1), &records).await;
    assert_eq!((report.added, report.reconciled.sent_again), (3, 1));
    tokio::time::sleep(Duration::from_secs(5)).await;
    let held = common::held(&server);
    let twice: Vec<_> = held
        .iter()
        .filter(|(text, n)| text.starts_with("later ") && **n == 2)
        .collect();
    assert_eq!(twice.len(), 1, "the late first copy landed: {held:?}");
    let mut removed = 0;
    let report = import(&server, &journal)
        .run(Source::records(records.clone()), |event| {
            if let Event::CopiesRemoved { note_ids, .. } = event {
                removed += note_ids.len();
            }
        })
        .await
        .unwrap();
    assert_eq!((report.skipped, report.copies_removed, removed), (3, 1, 1));
    assert_each_once(&server, "later", 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_slows_the_import_down_and_fails_no_line() {
    let server = MockServer::builder()
        .rate_limit(RateLimit::per_second(20.0))
        .start()
        .await
        .unwrap();
    let journal = temp_dir("rate").join("j");
    let records = records(&server, "rate", 100);
    let started = std::time::Instant::now();
    let (report, _) = run(&import(&server, &journal).concurrency(16), &records).await;
    let took = started.elapsed();
    assert_eq!((report.added, report.failed, report.unknown), (100, 0, 0));
    assert_each_once(&server, "rate", 100);
    let refused = server.rate_limited_count();
    println!(
        "100 lines at 20/s: {took:?}, {refused} refused, learned {:?}",
        report.learned_rate
    );
    assert!(
        refused <= 15,
        "the pace follows the limit: {refused} refused"
    );
    assert_eq!(report.rate_limited, refused as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_finishes_what_is_in_flight_and_a_rerun_completes() {
    let server = MockServer::builder()
        .latency(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let journal = temp_dir("stop").join("j");
    let records = records(&server, "stop", 200);
    let token = CancellationToken::new();
    let import = common::import(&server, &journal)
        .concurrency(4)
        .stop(token.clone());
    let stopper = {
        let token = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            token.cancel();
        })
    };
    let (report, _) = run(&import, &records).await;
    stopper.await.unwrap();
    assert_eq!(report.stopped, Some(Stop::Cancelled));
    assert!(report.added > 0 && report.added < 200, "{}", report.added);
    assert_eq!(report.unknown, 0, "the requests in flight finished");
    assert_eq!(report.added + report.not_sent, 200);
    let (again, _) = run(&common::import(&server, &journal).concurrency(8), &records).await;
    assert_eq!(again.added + again.skipped, 200);
    assert_each_once(&server, "stop", 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_of_the_same_journal_is_refused_while_one_runs() {
    let server = MockServer::builder()
        .latency(Duration::from_millis(100))
        .start()
        .await
        .unwrap();
    let dir = temp_dir("two");
    let journal = dir.join("j");
    let records = records(&server, "two", 40);
    let first = {
        let import = common::import(&server, &journal);
        let records = records.clone();
        tokio::spawn(async move { run(&import, &records).await.0 })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let error = common::import(&server, &journal)
        .run(Source::records(records.clone()), |_| {})
        .await
        .unwrap_err();
    assert_eq!(error.kind(), BulkErrorKind::Refused);
    assert!(error.to_string().contains("another import"), "{error}");
    // Another journal, same records, same API: the content's lock refuses it too.
    let error = common::import(&server, &dir.join("other"))
        .state_dir(Some(journal.with_extension("state")))
        .run(Source::records(records.clone()), |_| {})
        .await
        .unwrap_err();
    assert!(error.to_string().contains("same content"), "{error}");
    assert_eq!(first.await.unwrap().added, 40);
    assert_each_once(&server, "two", 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_stops_the_import_at_once() {
    let server = MockServer::start().await.unwrap();
    let wrong = happyrobot::Client::builder()
        .api_key("hr_wrong")
        .base_url(server.base_url())
        .build()
        .unwrap();
    let journal = temp_dir("key").join("j");
    let report = Import::new(wrong, JournalLocation::path(&journal))
        .concurrency(1)
        .state_dir(None)
        .run(Source::records(records(&server, "key", 30)), |_| {})
        .await
        .unwrap();
    assert!(
        matches!(report.stopped, Some(Stop::Refused(_))),
        "{:?}",
        report.stopped
    );
    assert!(report.unauthorized());
    assert!(
        report.failed <= 2,
        "stopped after the first refusal: {}",
        report.failed
    );
    assert_eq!(server.created_note_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_without_a_journal_path_and_invalid_records_are_refused_before_sending() {
    let server = MockServer::start().await.unwrap();
    let error = Import::new(client(&server), JournalLocation::BesideInput)
        .run(Source::records(records(&server, "x", 2)), |_| {})
        .await
        .unwrap_err();
    assert_eq!(error.kind(), BulkErrorKind::Refused);
    let mut bad = records(&server, "bad", 3);
    bad.push(happyrobot_bulk::NoteRecord::new(
        server.call_ids()[0].parse().unwrap(),
        happyrobot::NewNote::new("   "),
    ));
    let journal = temp_dir("bad").join("j");
    let error = import(&server, &journal)
        .run(Source::records(bad), |_| {})
        .await
        .unwrap_err();
    assert_eq!(error.kind(), BulkErrorKind::InvalidInput);
    assert_eq!(error.invalid_lines(), 1);
    assert_eq!(error.line_errors()[0].line(), 4);
    assert_eq!(server.created_note_count(), 0, "nothing was sent");
}

/// A call ID by the documented rule only (24 characters, not hexadecimal) goes through the engine
/// as given: added once, found by the journal on a rerun.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_id_that_is_not_hexadecimal_is_sent_as_given_and_journaled() {
    let server = MockServer::start().await.unwrap();
    let mut call = happyrobot_mock::seeded_call(3);
    call.id = "s90000000000000000000001".to_string();
    assert!(server.add_call(call));
    let id: happyrobot::CallId = "s90000000000000000000001".parse().unwrap();
    let records: Vec<_> = (0..3)
        .map(|n| {
            happyrobot_bulk::NoteRecord::new(
                id.clone(),
                happyrobot::NewNote::new(format!("odd id {n}")),
            )
        })
        .collect();
    let journal = temp_dir("odd-id").join("j");
    let (report, _) = run(&import(&server, &journal), &records).await;
    assert_eq!((report.added, report.failed), (3, 0));
    let odd = |server: &MockServer| {
        server
            .notes("s90000000000000000000001")
            .iter()
            .filter(|n| {
                n.content
                    .as_deref()
                    .is_some_and(|c| c.starts_with("odd id"))
            })
            .count()
    };
    assert_eq!(odd(&server), 3);
    let (again, _) = run(&import(&server, &journal), &records).await;
    assert_eq!((again.added, again.skipped), (0, 3));
    assert_eq!(odd(&server), 3, "nothing sent again");
}

/// The release before this one lower-cased hexadecimal call IDs before they reached its journal:
/// its journal of a file typed in upper case holds the lower-case form. The same lines typed in
/// upper case are found in it, so resuming sends nothing twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_of_the_last_release_still_knows_upper_case_ids() {
    let server = MockServer::start().await.unwrap();
    let journal = temp_dir("legacy-case").join("j");
    // What the last release journaled for `65F1C0FFEE...` lines: the lower-case ID.
    let lower = records(&server, "case", 4);
    let (first, _) = run(&import(&server, &journal), &lower).await;
    assert_eq!(first.added, 4);
    let upper: Vec<_> = lower
        .iter()
        .map(|record| {
            let typed = record.call_id().as_str().to_ascii_uppercase();
            happyrobot_bulk::NoteRecord::new(typed.parse().unwrap(), record.note().clone())
        })
        .collect();
    assert_ne!(upper[0].call_id(), lower[0].call_id());
    let (resumed, _) = run(&import(&server, &journal), &upper).await;
    assert_eq!((resumed.skipped, resumed.added, resumed.failed), (4, 0, 0));
    assert_eq!(server.created_note_count(), 4, "nothing sent again");
    // (Nothing was sent at all: the mock, which compares IDs as text, would have answered 404.)
    assert!(server.requests().iter().all(|r| !r.path.contains("65F1")));
}

/// A nightly job: the same note for the same call in two batches, each with its own journal (as
/// the README's first example names them), is added in each; a batch run again adds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_batch_with_its_own_journal_adds_the_same_note_again() {
    let server = MockServer::start().await.unwrap();
    let dir = temp_dir("batches");
    let records = records(&server, "nightly check", 1);
    let text = "nightly check 0";
    for (night, batch) in ["2026-12-06", "2026-12-07"].into_iter().enumerate() {
        let journal = dir.join(format!("nightly-{batch}.journal"));
        let (report, _) = run(&import(&server, &journal), &records).await;
        assert_eq!(report.added, 1, "{batch}");
        let (again, _) = run(&import(&server, &journal), &records).await;
        assert_eq!((again.added, again.skipped), (0, 1), "{batch} run again");
        assert_eq!(common::held(&server).get(text), Some(&(night + 1)));
    }
    // One journal for both nights would have skipped the second note: the rule the README states.
    let shared = dir.join("one.journal");
    let (first, _) = run(&import(&server, &shared), &records).await;
    let (second, _) = run(&import(&server, &shared), &records).await;
    assert_eq!((first.added, second.added, second.skipped), (1, 0, 1));
}
