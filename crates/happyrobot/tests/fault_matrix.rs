//! The fault matrix for a single add: every fault the mock injects, under the default policy and
//! the most eager one, checked against what the mock recorded. Whatever happens, there is no panic,
//! no hang, the note is never added twice, and the reported outcome matches the mock's record:
//! added (or `Applied`) means exactly one note, `NotApplied` means none, and `Unknown` is settled
//! by `find_note` to what the mock holds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

use std::time::Duration;

use happyrobot::{CallId, Client, NewNote, NoteLookup, Outcome, RetryPolicy};
use happyrobot_mock::{Fault, MockServer};

fn faults() -> Vec<Fault> {
    vec![
        Fault::RateLimited {
            retry_after_secs: 0,
        },
        Fault::RateLimited {
            retry_after_secs: 100_000,
        },
        Fault::Status(400),
        Fault::Status(404),
        Fault::Status(500),
        Fault::Status(501),
        Fault::Status(502),
        Fault::Status(503),
        Fault::Delay(Duration::from_millis(900)),
        Fault::InvalidJson,
        Fault::CloseBeforeResponse,
        Fault::SaveThenDrop,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_once_then_success_never_duplicates_and_reports_truthfully() {
    // `RetryPolicy::retry_outcome_unknown()` is left out on purpose: it is the documented opt-in that
    // re-sends after an unknown outcome, and so can add a note twice (it does, after save-then-drop).
    for (policy_name, policy) in [
        ("default", RetryPolicy::default()),
        ("none", RetryPolicy::none()),
        (
            "patient",
            RetryPolicy::default()
                .max_retries(5)
                .max_retry_after(Duration::from_secs(1)),
        ),
    ] {
        for fault in faults() {
            let server = MockServer::start().await.unwrap();
            let client = Client::builder()
                .api_key(server.api_key())
                .base_url(server.base_url())
                .timeout(Duration::from_millis(500))
                .retry(
                    policy
                        .clone()
                        .base_delay(Duration::from_millis(5))
                        .max_delay(Duration::from_millis(10)),
                )
                .reconcile_settle(Duration::from_millis(50))
                .build()
                .unwrap();
            let call: CallId = server.call_ids()[0].parse().unwrap();
            let content = format!("{policy_name} {fault:?}");
            server.inject(fault.clone(), 1);
            let result = tokio::time::timeout(
                Duration::from_secs(20),
                client.add_note(&call, NewNote::new(content.clone())),
            )
            .await
            .unwrap_or_else(|_| panic!("{content}: hangs"));
            // Let a delayed request finish at the server before counting.
            tokio::time::sleep(Duration::from_millis(600)).await;
            let stored = server
                .created_notes(call.as_str())
                .iter()
                .filter(|n| n.content.as_deref() == Some(content.as_str()))
                .count();
            let what = match &result {
                Ok(_) => "added".to_string(),
                Err(e) => format!("{:?} ({e})", e.outcome()),
            };
            assert!(stored <= 1, "{content}: added {stored} times");
            match &result {
                Ok(_) => assert_eq!(stored, 1, "{content}: {what}"),
                Err(e) => match e.outcome() {
                    Outcome::Applied => assert_eq!(stored, 1, "{content}: {what}"),
                    Outcome::NotApplied => assert_eq!(stored, 0, "{content}: {what}"),
                    Outcome::Unknown => {
                        let id = e.note_id().unwrap();
                        let lookup = client.find_note(&call, id, &content).await.unwrap();
                        match lookup {
                            NoteLookup::Found(_) => assert_eq!(stored, 1, "{content}"),
                            NoteLookup::Absent => assert_eq!(stored, 0, "{content}"),
                            other => panic!("{content}: {other:?} although the mock keeps IDs"),
                        }
                    }
                    other => panic!("{content}: {other:?}"),
                },
            }
        }
    }
}
