//! Seeded chaos: imports through every fault the mock has (answers lost after the note was saved,
//! connections closed before it was, server errors, rate limits, answers slower than the timeout,
//! gateways that give up while the backend goes on), each run killed at a random moment (its
//! future dropped, as a kill leaves it, or its stop token cancelled), resumed from the journal
//! until it ends; then every note is on the mock exactly once.
//!
//! `HAPPYROBOT_CHAOS_SEEDS` (default 3) and `HAPPYROBOT_CHAOS_LINES` (default 300) size it.

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
use happyrobot::{CancellationToken, Client};
use happyrobot_bulk::{Import, JournalLocation, Source};
use happyrobot_mock::{Fault, LateAnswer, MockServer};

/// A small deterministic generator (xorshift), so that a seed always makes the same choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One seed: returns (runs, kills that landed mid-run).
async fn chaos(seed: u64, lines: usize) -> (usize, usize) {
    let server = MockServer::start().await.unwrap();
    let faults = [
        Fault::SaveThenDrop,
        Fault::CloseBeforeResponse,
        Fault::Status(500),
        Fault::RateLimited {
            retry_after_secs: 0,
        },
        Fault::Delay(Duration::from_millis(2500)),
        Fault::LateApply {
            answer_after: Duration::from_millis(300),
            answer: LateAnswer::Status(504),
            apply_after: Duration::from_millis(1200),
        },
    ];
    for (i, fault) in faults.into_iter().enumerate() {
        server.inject_rate(fault, 0.03, seed * 31 + i as u64);
    }
    let client = Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .timeout(Duration::from_secs(2))
        .reconcile_settle(Duration::from_millis(200))
        .build()
        .unwrap();
    let journal = temp_dir(&format!("chaos-{seed}")).join("j");
    let prefix = format!("chaos{seed}");
    let records = records(&server, &prefix, lines);
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let (mut runs, mut kills) = (0, 0);
    loop {
        runs += 1;
        assert!(runs < 30, "seed {seed}: no end after {runs} runs");
        let token = CancellationToken::new();
        let import = Import::new(client.clone(), JournalLocation::path(&journal))
            .concurrency(8)
            .state_dir(None)
            .stop(token.clone());
        let work = import.run(Source::records(records.clone()), |_| {});
        // Three runs are killed, at a random moment within the first two seconds.
        if kills < 3 {
            let after = Duration::from_millis(100 + rng.below(1900));
            let cancel = rng.below(2) == 0;
            tokio::select! {
                report = work => {
                    let report = report.unwrap();
                    if report.unknown == 0 && report.stopped.is_none() {
                        break;
                    }
                }
                () = tokio::time::sleep(after) => {
                    kills += 1;
                    if cancel {
                        token.cancel();
                    }
                    // Otherwise the run's future is dropped here, mid-flight, as a kill leaves it.
                }
            }
            continue;
        }
        let report = work.await.unwrap();
        if report.unknown == 0 && report.stopped.is_none() {
            break;
        }
    }
    // Let late applies land, then one more run verifies: copies they left are removed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.clear_faults();
    let report = Import::new(client, JournalLocation::path(&journal))
        .state_dir(None)
        .run(Source::records(records.clone()), |_| {})
        .await
        .unwrap();
    assert_eq!(
        report.skipped as usize, lines,
        "seed {seed}: every line done"
    );
    assert_each_once(&server, &prefix, lines);
    (runs, kills)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_runs_end_with_every_note_exactly_once() {
    let seeds = env("HAPPYROBOT_CHAOS_SEEDS", 3) as u64;
    let lines = env("HAPPYROBOT_CHAOS_LINES", 300);
    let started = std::time::Instant::now();
    let mut total = (0, 0);
    for seed in 1..=seeds {
        let (runs, kills) = chaos(seed, lines).await;
        total = (total.0 + runs, total.1 + kills);
    }
    println!(
        "{seeds} seeds of {lines} lines: {} runs, {} killed mid-run, {:?}",
        total.0,
        total.1,
        started.elapsed()
    );
}
