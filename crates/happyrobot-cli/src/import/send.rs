//! Sending one line: the journal entry before, the request, retries of what certainly was not
//! applied (with the shared 429 pause), and the journal entry of its outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use happyrobot::Client;

use super::Stats;
use super::gate::Gate;
use super::input::Record;
use super::journal::{Entry, Event, JournalWriter};
use super::summary::{FailedLine, LineResult, UnknownLine};
use crate::exit::{self, CliError, Exit};

/// What the workers share.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) journal: JournalWriter,
    pub(crate) gate: Arc<Gate>,
    pub(crate) max_retries: u32,
    pub(crate) fsync: bool,
    pub(crate) stats: Arc<Stats>,
    /// Set when no further line should be sent (the key was rejected, the journal failed).
    pub(crate) stop: AtomicBool,
}

impl Context {
    /// Writes a journal entry. With fsync each write waits for the disk, so it is moved off the
    /// async worker threads' hot path; without, it is a plain write to the OS, in microseconds.
    fn write(&self, entry: &Entry) -> std::io::Result<()> {
        if self.fsync {
            tokio::task::block_in_place(|| self.journal.write(entry))
        } else {
            self.journal.write(entry)
        }
    }
}

/// A random wait in `[0, base * 2^retries]`, capped: backoff with full jitter, so that workers
/// retrying together do not hit the API again at the same instant.
fn backoff(retries: u32) -> Duration {
    let cap = Duration::from_millis(250)
        .saturating_mul(2u32.saturating_pow(retries.min(16)))
        .min(Duration::from_secs(8));
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(fastrand::u64(nanos / 2..=nanos))
}

/// Sends one line, retrying only what certainly was not applied, and journals it before and after.
pub(crate) async fn send_line(context: Arc<Context>, record: Record) -> LineResult {
    let call_id = record.call_id.to_string();
    let mut start = Entry::line(Event::Start, record.line, record.fingerprint);
    start.call_id = Some(call_id.clone());
    if let Err(e) = context.write(&start) {
        context.stop.store(true, Ordering::Relaxed);
        return LineResult::JournalFailed(CliError::internal(format!(
            "cannot write the journal: {e}; the import stopped (line {} was not sent)",
            record.line
        )));
    }
    let mut retries = 0;
    let (event, result) = loop {
        context.gate.wait().await;
        if context.stop.load(Ordering::Relaxed) {
            let entry = Entry {
                reason: Some("not sent: the import stopped".to_string()),
                ..Entry::line(Event::Failed, record.line, record.fingerprint)
            };
            break (entry, LineResult::NotSent);
        }
        let error = match context
            .client
            .add_note(&record.call_id, record.note.clone())
            .await
        {
            Ok(call) => {
                let note_id = call
                    .notes
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .rev()
                    .find_map(|n| {
                        (n.content.as_deref() == Some(record.note.content()))
                            .then(|| n.id.clone())
                            .flatten()
                    });
                break (
                    Entry {
                        note_id,
                        ..Entry::line(Event::Done, record.line, record.fingerprint)
                    },
                    LineResult::Added,
                );
            }
            Err(error) => error,
        };
        if error.note_was_added() {
            tracing::warn!(line = record.line, error = %error, "note added, answer unreadable");
            break (
                Entry {
                    reason: Some(error.to_string()),
                    ..Entry::line(Event::Done, record.line, record.fingerprint)
                },
                LineResult::Added,
            );
        }
        if error.is_retryable() && retries < context.max_retries {
            if error.is_rate_limited() {
                context.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                let wait = error.retry_after().unwrap_or_else(|| backoff(retries + 1));
                tracing::info!(
                    line = record.line,
                    wait_ms = wait.as_millis() as u64,
                    "rate limited; pausing every request"
                );
                context.gate.pause(wait);
            } else {
                let wait = backoff(retries);
                tracing::info!(line = record.line, wait_ms = wait.as_millis() as u64, error = %error, "connection failed; retrying");
                tokio::time::sleep(wait).await;
            }
            retries += 1;
            continue;
        }
        let reason = error.to_string();
        let status = error.status().map(|s| s.as_u16());
        let code = exit::exit_for(&error);
        if exit::outcome_unknown(&error) {
            break (
                Entry {
                    status,
                    reason: Some(reason.clone()),
                    call_id: Some(call_id.clone()),
                    ..Entry::line(Event::Unknown, record.line, record.fingerprint)
                },
                LineResult::Unknown(UnknownLine {
                    line: record.line,
                    call_id,
                    reason,
                    earlier_run: false,
                }),
            );
        }
        if code == Exit::Auth {
            // Every other line would be rejected the same way: stop sending.
            context.stop.store(true, Ordering::Relaxed);
        }
        break (
            Entry {
                status,
                exit: Some(code.code()),
                reason: Some(reason.clone()),
                ..Entry::line(Event::Failed, record.line, record.fingerprint)
            },
            LineResult::Failed(
                FailedLine {
                    line: record.line,
                    call_id,
                    status,
                    exit_code: code.code(),
                    reason,
                },
                code,
            ),
        );
    };
    if let Err(e) = context.write(&event) {
        // The line stays "started" in the journal, so a re-run reports it as unknown: safe.
        context.stop.store(true, Ordering::Relaxed);
        tracing::error!(error = %e, "cannot write the journal");
        return LineResult::JournalFailed(CliError::internal(format!(
            "cannot write the journal: {e}; the import stopped (line {} is recorded as in flight)",
            record.line
        )));
    }
    result
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::import::journal::{JournalState, LineState};
    use happyrobot::{CallId, NewNote, RetryPolicy};
    use happyrobot_mock::{FIRST_CALL_ID, Fault, MockServer};

    #[test]
    fn backoff_grows_and_is_capped() {
        for retries in 0..40 {
            let cap = Duration::from_millis(250)
                .saturating_mul(2u32.saturating_pow(retries.min(16)))
                .min(Duration::from_secs(8));
            let wait = backoff(retries);
            assert!(wait >= cap / 2 && wait <= cap, "{retries}: {wait:?}");
        }
    }

    pub(crate) fn context(server: &MockServer, journal: &std::path::Path) -> Arc<Context> {
        let client = Client::builder()
            .api_key(server.api_key())
            .base_url(server.base_url())
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        Arc::new(Context {
            client,
            journal: JournalWriter::open(journal, &JournalState::default(), false).unwrap(),
            gate: Arc::new(Gate::default()),
            max_retries: 3,
            fsync: false,
            stats: Arc::new(Stats::default()),
            stop: AtomicBool::new(false),
        })
    }

    fn record(line: u64, content: &str) -> Record {
        Record {
            line,
            call_id: CallId::new(FIRST_CALL_ID).unwrap(),
            note: NewNote::new(content),
            fingerprint: line,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_line_is_journaled_before_and_after_and_429_is_retried() {
        let server = MockServer::start().await.unwrap();
        server.inject(
            Fault::RateLimited {
                retry_after_secs: 0,
            },
            1,
        );
        let dir = crate::import::test_dir("send");
        let journal = dir.join("j");
        let context = context(&server, &journal);
        assert!(matches!(
            send_line(Arc::clone(&context), record(2, "hello")).await,
            LineResult::Added
        ));
        assert_eq!(server.created_note_count(), 1);
        assert_eq!(context.stats.rate_limited.load(Ordering::Relaxed), 1);
        server.inject(Fault::Status(503), 1);
        assert!(matches!(
            send_line(Arc::clone(&context), record(3, "maybe")).await,
            LineResult::Unknown(_)
        ));
        let state = JournalState::load(&journal).unwrap();
        assert_eq!(state.get(2), Some((2, LineState::Done)));
        assert_eq!(
            state.get(3),
            Some((3, LineState::Unknown { interrupted: false }))
        );
    }
}
