//! Sending one line: the shared 429 pause, the journal entry before each try (with the note ID
//! the client chose), the request, retries of what certainly was not applied, and the journal
//! entry of its outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use happyrobot::{Client, RetryAction, RetryPolicy, RetryReason};
use tokio::sync::watch;

use super::Stats;
use super::gate::Gate;
use super::input::Record;
use super::journal::{Entry, Event, JournalWriter, LineKey};
use super::summary::{FailedLine, LineResult, UnknownLine};
use crate::exit::{self, CliError, Exit};

/// What the workers share.
pub(crate) struct Context {
    pub(crate) client: Client,
    pub(crate) journal: JournalWriter,
    pub(crate) gate: Arc<Gate>,
    /// The library's retry policy, asked after every failure: the same rules, caps and backoff as
    /// a single add. (The client itself does not retry, so that a 429 pauses every worker.)
    pub(crate) retry: RetryPolicy,
    /// The longest `Retry-After` waited for (the policy's cap); a longer one stops the import.
    pub(crate) max_retry_after: Duration,
    pub(crate) fsync: bool,
    pub(crate) stats: Arc<Stats>,
    /// Set when no further line should be sent (a signal, a rejected key, the journal failed).
    stop: AtomicBool,
    /// The same, for the workers waiting out a 429 pause.
    stopped: watch::Sender<bool>,
}

impl Context {
    pub(crate) fn new(
        client: Client,
        journal: JournalWriter,
        retry: RetryPolicy,
        fsync: bool,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            client,
            journal,
            gate: Arc::new(Gate::default()),
            max_retry_after: retry.retry_after_cap(),
            retry,
            fsync,
            stats,
            stop: AtomicBool::new(false),
            stopped: watch::Sender::new(false),
        }
    }

    /// Stops the import: no line is sent any more, and the lines waiting out a pause give up.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.stopped.send_replace(true);
    }

    /// Whether the import was stopped.
    pub(crate) fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Waits until the pause, if any, is over; `false` if the import stopped meanwhile.
    pub(crate) async fn wait_turn(&self) -> bool {
        let mut stopped = self.stopped.subscribe();
        tokio::select! {
            () = self.gate.wait() => !self.is_stopped(),
            _ = stopped.wait_for(|stopped| *stopped) => false,
        }
    }

    /// Waits `wait`; `false` if the import stopped meanwhile.
    pub(crate) async fn sleep(&self, wait: Duration) -> bool {
        let mut stopped = self.stopped.subscribe();
        tokio::select! {
            () = tokio::time::sleep(wait) => !self.is_stopped(),
            _ = stopped.wait_for(|stopped| *stopped) => false,
        }
    }

    /// Writes a journal entry. With fsync each write waits for the disk, so it is moved off the
    /// async worker threads' hot path; without, it is a plain write to the OS, in microseconds.
    pub(crate) fn write(&self, entry: &Entry) -> std::io::Result<()> {
        if self.fsync {
            tokio::task::block_in_place(|| self.journal.write(entry))
        } else {
            self.journal.write(entry)
        }
    }
}

/// Sends one line as a new note (with a fresh client-chosen note ID), retrying only what
/// certainly was not applied, and journals it before each try and after. Returns the note ID
/// with the result, for reconciliation when the outcome is unknown.
pub(crate) async fn send_line(context: &Context, record: &Record) -> (LineResult, String) {
    let note_id = happyrobot::new_note_id();
    let result = send_as(context, record, &note_id).await;
    (result, note_id)
}

/// Sends one line as the note `note_id` (a new one, or one reconciliation found absent).
async fn send_as(context: &Context, record: &Record, note_id: &str) -> LineResult {
    let call_id = record.call_id.to_string();
    let key: LineKey = (record.fingerprint, record.occurrence);
    let note_id = note_id.to_string();
    let note = record.note.clone().id(note_id.clone());
    let not_sent = |e: std::io::Error, what: &str| {
        context.stop();
        LineResult::JournalFailed {
            result: Box::new(LineResult::NotSent),
            error: CliError::internal(format!(
                "cannot write the journal: {e}; the import stopped (line {} was {what})",
                record.line
            )),
        }
    };
    let mut retries = 0;
    let (event, result) = loop {
        // A line waiting out a pause has not been sent: when the import stops meanwhile, its
        // journal says "not started" or "failed", never "in flight".
        if !context.wait_turn().await {
            return LineResult::NotSent;
        }
        let start = Entry {
            call_id: Some(call_id.clone()),
            note_id: Some(note_id.clone()),
            ..Entry::line(Event::Start, record.line, key)
        };
        if let Err(e) = context.write(&start) {
            return not_sent(e, "not sent");
        }
        let error = match context.client.add_note(&record.call_id, note.clone()).await {
            Ok(call) => {
                let notes = call.notes.as_deref().unwrap_or_default();
                // The note with the ID it was sent with; else (a server that assigns its own IDs)
                // the newest with its text.
                let added = notes
                    .iter()
                    .find(|n| n.id.as_deref() == Some(note_id.as_str()))
                    .or_else(|| {
                        notes
                            .iter()
                            .rev()
                            .find(|n| n.content.as_deref() == Some(record.note.content()))
                    });
                break (
                    Entry {
                        call_id: Some(call_id.clone()),
                        note_id: added.and_then(|n| n.id.clone()),
                        ..Entry::line(Event::Done, record.line, key)
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
                    call_id: Some(call_id.clone()),
                    note_id: Some(note_id.clone()),
                    reason: Some(error.to_string()),
                    ..Entry::line(Event::Done, record.line, key)
                },
                LineResult::Added,
            );
        }
        if let RetryAction::Retry { after, reason } = context.retry.decide(&error, retries) {
            // Certainly not applied: journaled as failed before waiting, so that a run killed
            // during the wait sends the line again instead of calling it unknown.
            let entry = Entry {
                status: error.status().map(|s| s.as_u16()),
                reason: Some(format!("will be retried: {error}")),
                ..Entry::line(Event::Failed, record.line, key)
            };
            if let Err(e) = context.write(&entry) {
                return not_sent(e, "not added (it will be sent again)");
            }
            if reason == RetryReason::RateLimited {
                context.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    line = record.line,
                    wait_ms = after.as_millis() as u64,
                    "rate limited; pausing every request"
                );
                context.gate.pause(after, context.max_retry_after);
            } else {
                tracing::info!(line = record.line, wait_ms = after.as_millis() as u64, reason = reason.as_str(), error = %error, "retrying");
                if !context.sleep(after).await {
                    return LineResult::NotSent;
                }
            }
            retries += 1;
            continue;
        }
        let mut reason = error.to_string();
        let status = error.status().map(|s| s.as_u16());
        let code = exit::exit_for(&error);
        if exit::outcome_unknown(&error) {
            break (
                Entry {
                    status,
                    reason: Some(reason.clone()),
                    call_id: Some(call_id.clone()),
                    note_id: Some(note_id.clone()),
                    ..Entry::line(Event::Unknown, record.line, key)
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
            context.stop();
        }
        if error.is_rate_limited()
            && let Some(wait) = error.retry_after()
            && wait > context.max_retry_after
        {
            // The API asks to come back much later: every other line would get the same answer.
            context.stop();
            reason = format!(
                "not added: the API asked to wait {} s before the next request (Retry-After), more \
                 than the {} s an import waits; the import stopped. Run the same command later",
                wait.as_secs(),
                context.max_retry_after.as_secs()
            );
        }
        break (
            Entry {
                status,
                exit: Some(code.code()),
                reason: Some(reason.clone()),
                ..Entry::line(Event::Failed, record.line, key)
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
        // The line stays "started" in the journal, so a re-run reports it as unknown: safe. Its
        // outcome in this run is still counted as it was.
        context.stop();
        tracing::error!(error = %e, "cannot write the journal");
        let what = match &result {
            LineResult::Added => format!("was added (note {note_id}) but"),
            LineResult::Failed(..) => "was not added but".to_string(),
            _ => "has an unknown outcome, which".to_string(),
        };
        return LineResult::JournalFailed {
            error: CliError::internal(format!(
                "cannot write the journal: {e}; the import stopped. Line {} {what} the journal \
                 could not record it: the next run may list it as unknown (do not send it again \
                 with --retry-unknown if it was added)",
                record.line
            )),
            result: Box::new(result),
        };
    }
    result
}

/// What looking a note up on its call found.
pub(crate) enum Lookup {
    /// The note is on the call (its ID there, if the answer showed one).
    Found(Option<String>),
    /// Not on the call, twice, a settle delay apart: it was not added.
    Absent,
    /// It cannot be told; why.
    Undecided(String),
}

/// Looks for the note `note_id` with this text on its call ([`Client::find_note`]), retrying a
/// failed read as the policy allows for a request that changes nothing.
pub(crate) async fn look_up(
    context: &Context,
    call_id: &happyrobot::CallId,
    note_id: &str,
    content: &str,
) -> Lookup {
    let mut retries = 0;
    loop {
        let error = match context.client.find_note(call_id, note_id, content).await {
            Ok(happyrobot::NoteLookup::Found(note)) => return Lookup::Found(note.id.clone()),
            Ok(happyrobot::NoteLookup::Absent) => return Lookup::Absent,
            Ok(_) => {
                return Lookup::Undecided(
                    "the call holds a note with the same text under another ID (a server that \
                     does not keep client note IDs), or lists no notes"
                        .to_string(),
                );
            }
            Err(error) => error,
        };
        match context.retry.decide_for(&error, retries, true) {
            RetryAction::Retry { after, .. } => {
                if !context.sleep(after.min(context.max_retry_after)).await {
                    return Lookup::Undecided(format!(
                        "the call could not be read before the import stopped ({error})"
                    ));
                }
                retries += 1;
            }
            _ => return Lookup::Undecided(format!("the call could not be read ({error})")),
        }
    }
}

/// Counts a line in doubt that was found on its call (as `note_id`) and journals it as done.
pub(crate) fn journal_found(
    context: &Context,
    record: &Record,
    key: LineKey,
    note_id: &str,
) -> std::io::Result<()> {
    context
        .stats
        .reconciled_found
        .fetch_add(1, Ordering::Relaxed);
    context.write(&Entry {
        call_id: Some(record.call_id.to_string()),
        note_id: Some(note_id.to_string()),
        reason: Some("reconciled: the note is on the call".to_string()),
        ..Entry::line(Event::Done, record.line, key)
    })
}

/// Settles a line whose add had an unknown outcome (in this run, or in an earlier one when
/// `earlier_run`) by looking its note up on the call: found, the line is done (added, or for an
/// earlier run's line already added); absent, it is sent once more with the same note ID;
/// undecided, it stays unknown. Each finding is journaled, so that a re-run does not repeat it.
pub(crate) async fn reconcile_line(
    context: &Context,
    record: &Record,
    note_id: &str,
    earlier_run: bool,
    reason: &str,
) -> LineResult {
    let call_id = record.call_id.to_string();
    let key: LineKey = (record.fingerprint, record.occurrence);
    let journal_failed = |e: std::io::Error, result: LineResult, what: &str| {
        context.stop();
        LineResult::JournalFailed {
            result: Box::new(result),
            error: CliError::internal(format!(
                "cannot write the journal: {e}; the import stopped (line {} {what})",
                record.line
            )),
        }
    };
    match look_up(context, &record.call_id, note_id, record.note.content()).await {
        Lookup::Found(found) => {
            let note_id = found.unwrap_or_else(|| note_id.to_string());
            let result = if earlier_run {
                LineResult::AlreadyAdded
            } else {
                LineResult::Added
            };
            match journal_found(context, record, key, &note_id) {
                Ok(()) => result,
                Err(e) => journal_failed(e, result, "was found added but"),
            }
        }
        Lookup::Absent if context.is_stopped() => {
            // Certainly not added, and no new request once the import stops: a re-run sends it.
            let entry = Entry {
                call_id: Some(call_id),
                note_id: Some(note_id.to_string()),
                reason: Some("reconciled: the note is not on the call".to_string()),
                ..Entry::line(Event::Failed, record.line, key)
            };
            match context.write(&entry) {
                Ok(()) => LineResult::NotSent,
                Err(e) => journal_failed(e, LineResult::NotSent, "was found not added but"),
            }
        }
        Lookup::Absent => {
            context
                .stats
                .reconciled_absent
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                line = record.line,
                note_id,
                "not on the call; sending it again once"
            );
            match send_as(context, record, note_id).await {
                LineResult::Unknown(mut line) => {
                    line.reason = format!(
                        "it was not on the call, was sent again once with the same note ID, and \
                         that outcome is unknown too: {}",
                        line.reason
                    );
                    LineResult::Unknown(line)
                }
                other => other,
            }
        }
        Lookup::Undecided(why) => {
            context
                .stats
                .reconciled_undecided
                .fetch_add(1, Ordering::Relaxed);
            let reason = format!("{reason}; looking it up did not settle it: {why}");
            let entry = Entry {
                call_id: Some(call_id.clone()),
                note_id: Some(note_id.to_string()),
                reason: Some(reason.clone()),
                ..Entry::line(Event::Unknown, record.line, key)
            };
            let result = LineResult::Unknown(UnknownLine {
                line: record.line,
                call_id,
                reason,
                earlier_run,
            });
            match context.write(&entry) {
                Ok(()) => result,
                Err(e) => journal_failed(e, result, "is still unknown and"),
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::import::journal::{Destination, JournalState, LineState, key_hash, normalize_url};
    use happyrobot::{CallId, NewNote, RetryPolicy};
    use happyrobot_mock::{FIRST_CALL_ID, Fault, MockServer};

    pub(crate) fn destination(server: &MockServer) -> Destination {
        Destination {
            base_url: normalize_url(&server.base_url()),
            key_hash: key_hash(server.api_key()),
        }
    }

    pub(crate) fn context(server: &MockServer, journal: &std::path::Path) -> Arc<Context> {
        let client = Client::builder()
            .api_key(server.api_key())
            .base_url(server.base_url())
            .retry(RetryPolicy::none())
            .build()
            .unwrap();
        let (writer, _) = JournalWriter::open(journal, &destination(server), false).unwrap();
        let context = Context::new(
            client,
            writer,
            RetryPolicy::default().max_retries(3),
            false,
            Arc::new(Stats::default()),
        );
        context
            .journal
            .write(&Entry::run("f", "csv", "c", &destination(server)))
            .unwrap();
        Arc::new(context)
    }

    fn record(line: u64, content: &str) -> Record {
        Record {
            line,
            call_id: CallId::new(FIRST_CALL_ID).unwrap(),
            note: NewNote::new(content),
            fingerprint: line,
            occurrence: 0,
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
            send_line(&context, &record(2, "hello")).await.0,
            LineResult::Added
        ));
        assert_eq!(server.created_note_count(), 1);
        assert_eq!(context.stats.rate_limited.load(Ordering::Relaxed), 1);
        server.inject(Fault::Status(503), 1);
        assert!(matches!(
            send_line(&context, &record(3, "maybe")).await.0,
            LineResult::Unknown(_)
        ));
        let state = JournalState::load(&journal, &destination(&server)).unwrap();
        assert_eq!(state.get((2, 0)), Some(LineState::Done));
        assert_eq!(
            state.get((3, 0)),
            Some(LineState::Unknown { interrupted: false })
        );
        // Every start names the note ID it was sent with, and the note has it.
        let text = std::fs::read_to_string(&journal).unwrap();
        let start: Entry = text
            .lines()
            .map(|l| serde_json::from_str::<Entry>(l).unwrap())
            .find(|e| e.event == Event::Start)
            .unwrap();
        let id = start.note_id.unwrap();
        assert_eq!(id.len(), 24);
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert!(
            server
                .created_notes(FIRST_CALL_ID)
                .iter()
                .any(|n| n.id.as_deref() == Some(id.as_str()))
        );
    }
}
