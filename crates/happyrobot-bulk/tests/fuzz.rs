//! Property tests of the readers, bounded in time (`PROPTEST_CASES`, default 64 per property):
//! any bytes as a journal or an input never panic; any one damaged line of a real journal never
//! makes a line it recorded count as new (it is what it was, or in doubt); every input error names
//! its line.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use happyrobot::Client;
use happyrobot_bulk::{BulkErrorKind, Import, JournalLocation, Source};
use proptest::prelude::*;

/// A client for a loopback URL where nothing listens: a plan sends nothing.
fn offline() -> Client {
    Client::builder()
        .api_key("hr_fuzz")
        .base_url("http://127.0.0.1:9/api/v1")
        .build()
        .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

const ID: &str = "65f1c0ffee0123456789abcd";

/// A CSV of 20 lines and the journal of a real import of its first 15 to the mock, made once.
fn sample() -> &'static (PathBuf, Vec<u8>) {
    static SAMPLE: OnceLock<(PathBuf, Vec<u8>)> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        runtime().block_on(async {
            let server = happyrobot_mock::MockServer::start().await.unwrap();
            let dir = common::temp_dir("fuzz-sample");
            let first = dir.join("first.csv");
            let mut text = String::from("call_id,content\n");
            for n in 0..15 {
                text.push_str(&format!("{ID},fuzz {n}\n"));
            }
            std::fs::write(&first, &text).unwrap();
            let journal = dir.join("j");
            let client = Client::builder()
                .api_key(server.api_key())
                .base_url(server.base_url())
                .build()
                .unwrap();
            Import::new(client, JournalLocation::path(&journal))
                .state_dir(None)
                .run(Source::file(&first), |_| {})
                .await
                .unwrap();
            for n in 15..20 {
                text.push_str(&format!("{ID},fuzz {n}\n"));
            }
            let all = dir.join("all.csv");
            std::fs::write(&all, text).unwrap();
            (all, std::fs::read(&journal).unwrap())
        })
    })
}

fn plan_of(
    input: &Path,
    journal: &Path,
) -> Result<happyrobot_bulk::Plan, happyrobot_bulk::BulkError> {
    runtime().block_on(
        Import::new(offline(), JournalLocation::path(journal))
            .state_dir(None)
            .plan(&Source::file(input)),
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_as_a_journal_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let (input, _) = sample();
        let journal = common::temp_dir("fuzz-bytes").join("j");
        std::fs::write(&journal, &bytes).unwrap();
        let _ = plan_of(input, &journal);
    }

    #[test]
    fn any_bytes_as_an_input_never_panic_and_errors_name_their_line(
        bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        jsonl in any::<bool>(),
    ) {
        let dir = common::temp_dir("fuzz-input");
        let input = dir.join(if jsonl { "in.jsonl" } else { "in.csv" });
        let mut with_header = if jsonl { Vec::new() } else { b"call_id,content\n".to_vec() };
        with_header.extend_from_slice(&bytes);
        std::fs::write(&input, &with_header).unwrap();
        match plan_of(&input, &dir.join("j")) {
            Ok(_) => {}
            Err(error) if error.kind() == BulkErrorKind::InvalidInput => {
                for line in error.line_errors() {
                    prop_assert!(line.line() >= 1, "{line}");
                }
            }
            Err(error) => prop_assert!(error.kind() == BulkErrorKind::Refused, "{error}"),
        }
    }
}

/// One way to damage a journal line.
#[derive(Debug, Clone)]
enum Damage {
    /// Overwrite `len` bytes at `at` (a share of the line) with `byte`.
    Overwrite {
        at: f64,
        len: usize,
        byte: u8,
    },
    /// Cut the line at a share of it.
    Cut(f64),
    Delete,
    Empty,
    /// Swap it with another line, `by` lines on.
    Swap(usize),
    Duplicate,
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0.0..1.0f64, 1..20usize, any::<u8>()).prop_map(|(at, len, byte)| Damage::Overwrite {
            at,
            len,
            byte
        }),
        (0.0..1.0f64).prop_map(Damage::Cut),
        Just(Damage::Delete),
        Just(Damage::Empty),
        (1..10usize).prop_map(Damage::Swap),
        Just(Damage::Duplicate),
    ]
}

fn apply(lines: &mut Vec<Vec<u8>>, index: usize, damage: &Damage) {
    let index = index % lines.len();
    match damage {
        Damage::Overwrite { at, len, byte } => {
            let line = &mut lines[index];
            let start = ((line.len() as f64) * at) as usize;
            for b in line.iter_mut().skip(start).take(*len) {
                // A newline would split the line in two: that is two damaged lines, not one.
                *b = if *byte == b'\n' { b'x' } else { *byte };
            }
        }
        Damage::Cut(at) => {
            let line = &mut lines[index];
            let keep = ((line.len() as f64) * at) as usize;
            line.truncate(keep);
        }
        Damage::Delete => {
            lines.remove(index);
        }
        Damage::Empty => lines[index].clear(),
        Damage::Swap(by) => {
            let other = (index + by) % lines.len();
            lines.swap(index, other);
        }
        Damage::Duplicate => {
            let copy = lines[index].clone();
            lines.insert(index, copy);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn one_damaged_line_never_makes_a_recorded_line_new(index in 0..200usize, damage in damage()) {
        let (input, journal) = sample();
        let mut lines: Vec<Vec<u8>> = journal.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
        apply(&mut lines, index, &damage);
        let mut bytes = lines.join(&b'\n');
        bytes.push(b'\n');
        let path = common::temp_dir("fuzz-damage").join("j");
        std::fs::write(&path, &bytes).unwrap();
        let plan = plan_mock(input, &path);
        // The journal recorded 15 lines as added: each is still added, unknown or in doubt (both
        // looked up on their calls before anything is sent), never new or failed; only the 5 it
        // never saw can be new.
        prop_assert!(plan.new_lines() <= 5, "{damage:?} at {index}: {plan:?}");
        prop_assert!(plan.failed_before == 0, "{damage:?} at {index}: {plan:?}");
        prop_assert!(
            plan.done + plan.in_doubt + plan.unknown_before >= 15,
            "{damage:?} at {index}: {plan:?}"
        );
    }
}

/// A plan against the destination the sample journal was written for.
fn plan_mock(input: &Path, journal: &Path) -> happyrobot_bulk::Plan {
    let (url, key) = sample_destination();
    let client = Client::builder()
        .api_key(key)
        .base_url(url)
        .build()
        .unwrap();
    runtime()
        .block_on(
            Import::new(client, JournalLocation::path(journal))
                .state_dir(None)
                .plan(&Source::file(input)),
        )
        .unwrap()
}

/// The base URL and key of the mock the sample was imported to: read back from the journal's
/// `run` entry (the mock itself is gone; a plan needs only the destination).
fn sample_destination() -> (String, String) {
    let (_, journal) = sample();
    let text = String::from_utf8_lossy(journal);
    let run: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    (
        run["base_url"].as_str().unwrap().to_string(),
        happyrobot_mock::DEFAULT_API_KEY.to_string(),
    )
}
