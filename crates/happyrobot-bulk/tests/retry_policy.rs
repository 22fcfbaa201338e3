//! Issue 25 (B): the engine keeps its promise whatever retry policy its client has. A client built
//! with `RetryPolicy::retry_outcome_unknown()` would send an add again after a failure that may
//! have added it (and the engine once journaled "certainly not added" before that retry): a run
//! killed while the retry waited left a journal that made the next run send the note again. The
//! engine now never lets such a retry through: it journals the outcome as unknown and looks the
//! note up. Each case kills a run right after its first add may have been applied, re-runs, and
//! finds every note on the mock exactly once.

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

use common::{assert_each_once, records, temp_dir};
use happyrobot::{CancellationToken, Client, RetryPolicy};
use happyrobot_bulk::{Import, JournalLocation, NoteRecord, Source};
use happyrobot_mock::{Fault, LateAnswer, MockServer};

/// A client whose policy retries adds with an unknown outcome, after a long wait (so that a run
/// killed after the failure is killed while the retry waits, where the journal used to say
/// "failed").
fn retrying_client(server: &MockServer) -> Client {
    let client = Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .timeout(Duration::from_secs(5))
        .reconcile_settle(Duration::from_millis(200))
        .retry(
            RetryPolicy::retry_outcome_unknown()
                .base_delay(Duration::from_secs(20))
                .max_delay(Duration::from_secs(20)),
        )
        .build()
        .unwrap();
    assert!(client.retry_policy().retries_outcome_unknown());
    client
}

fn import(client: &Client, journal: &std::path::Path) -> Import {
    Import::new(client.clone(), JournalLocation::path(journal))
        .concurrency(1)
        .state_dir(None)
}

/// Whether the mock has received a `POST` (an add).
fn posted(server: &MockServer) -> bool {
    server.requests().iter().any(|r| r.method == "POST")
}

/// Runs an import of `records` and kills it (drops its future, as a kill leaves it; or cancels
/// its stop token) `after` the mock received its first add.
async fn killed_run(
    server: &MockServer,
    client: &Client,
    journal: &std::path::Path,
    records: &[NoteRecord],
    after: Duration,
    cancel: bool,
) {
    let token = CancellationToken::new();
    let import = import(client, journal).stop(token.clone());
    let work = import.run(Source::records(records.to_vec()), |_| {});
    tokio::pin!(work);
    let kill = async {
        while !posted(server) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(after).await;
    };
    tokio::select! {
        report = &mut work => {
            // The run ended first: nothing to kill (the re-run still checks the journal).
            report.unwrap();
            return;
        }
        () = kill => {}
    }
    if cancel {
        token.cancel();
        let report = work.await.unwrap();
        assert!(report.stopped.is_some() || report.added + report.skipped == 3);
    }
    // Otherwise the future is dropped here, mid-flight.
}

/// Kills a run through `fault` at `after`, lets a late apply land, re-runs with the same client,
/// and checks every note is there once.
async fn killed_then_resumed(name: &str, fault: Fault, after: Duration, cancel: bool) {
    let server = MockServer::builder()
        .latency(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    let client = retrying_client(&server);
    let journal = temp_dir(name).join("j");
    let prefix = format!("policy-{name}");
    let records = records(&server, &prefix, 3);
    server.inject(fault, 1);
    killed_run(&server, &client, &journal, &records, after, cancel).await;
    // A late apply lands now, whatever the journal says.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.clear_faults();
    let report = import(&client, &journal)
        .run(Source::records(records.clone()), |_| {})
        .await
        .unwrap();
    assert_eq!(report.unknown, 0, "{name}: {:?}", report.unknown_lines);
    assert_eq!(report.added + report.skipped, 3, "{name}: {report:?}");
    assert_each_once(&server, &prefix, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_after_an_add_was_saved_and_its_answer_lost_sends_it_once() {
    // Saved at once, the connection closed 300 ms later (the latency), killed 150 ms after that:
    // the client's policy would be waiting to send it again.
    for cancel in [false, true] {
        killed_then_resumed(
            &format!("save-drop-{cancel}"),
            Fault::SaveThenDrop,
            Duration::from_millis(450),
            cancel,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_after_a_gateway_gave_up_on_an_add_applied_later_sends_it_once() {
    // The gateway answers 504 after 100 ms; the backend adds the note at 600 ms; the run is
    // killed at 300 ms.
    killed_then_resumed(
        "late-apply",
        Fault::LateApply {
            answer_after: Duration::from_millis(100),
            answer: LateAnswer::Status(504),
            apply_after: Duration::from_millis(600),
        },
        Duration::from_millis(300),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_after_a_server_error_on_an_add_sends_it_once() {
    killed_then_resumed(
        "status-503",
        Fault::Status(503),
        Duration::from_millis(450),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policys_retry_of_an_add_that_may_have_been_applied_is_a_lookup_instead() {
    // No kill: the add saved and dropped is found on its call, never sent again by the policy.
    let server = MockServer::start().await.unwrap();
    let client = retrying_client(&server);
    let journal = temp_dir("policy-no-kill").join("j");
    let records = records(&server, "policy-no-kill", 3);
    server.inject(Fault::SaveThenDrop, 1);
    let started = std::time::Instant::now();
    let report = import(&client, &journal)
        .run(Source::records(records.clone()), |_| {})
        .await
        .unwrap();
    assert_eq!((report.added, report.unknown), (3, 0));
    assert_eq!(report.reconciled.found, 1, "looked up, not retried");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the policy's 20 s retry wait was not taken"
    );
    assert_each_once(&server, "policy-no-kill", 3);
    let posts = server
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 3, "no add was sent twice");
}
