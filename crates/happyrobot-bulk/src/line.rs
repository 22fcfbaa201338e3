//! What happens to one line: sending it (journaled before every attempt, and as "certainly not
//! added" before every retry after a failure that certainly did not add it; a retry the client's
//! policy would make after a failure that may have added it is stopped, and the outcome settled by
//! looking the note up instead), settling an unknown outcome through the client's
//! [`settle_add`](happyrobot::Client::settle_add), deleting copies a late apply left, and deleting
//! it for an undo. Each returns the line's outcome as a value; nothing here counts or prints.

use std::collections::HashSet;
use std::io;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use happyrobot::types::Call;
use happyrobot::{
    Attempt, AttemptObserver, CancellationToken, Client, Control, NewNote, NoteId, Operation,
    PendingAdd, Settled,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::journal::{Entry, Event, JournalWriter, note_id};
use crate::record::Record;
use crate::report::{
    Event as RunEvent, Failure, FailureKind, LineEvent, LineOutcome, Reconciliation, Stop, Unknown,
};

/// What every job of a run shares.
pub(crate) struct Work {
    pub(crate) client: Client,
    pub(crate) journal: JournalWriter,
    /// The run's own token: a child of the caller's, so that the run can stop itself (a refused
    /// key) without cancelling the caller's token.
    pub(crate) stop: CancellationToken,
    /// Sends and deletes in flight.
    pub(crate) sends: Arc<Semaphore>,
    /// Lookups of unknown outcomes in flight (mostly waiting, so more of them).
    pub(crate) lookups: Semaphore,
    pub(crate) retry_unknown: bool,
    /// A call an undo's delete found there in this run (answered, or `404` for the note only):
    /// the first read to show that the API still shows this key a call (see
    /// [`settle_gone_calls`]).
    pub(crate) call_seen: std::sync::OnceLock<String>,
}

/// What one job tells the run: the events of its line, and why the run must stop, if it must.
#[derive(Debug, Default)]
pub(crate) struct Done {
    pub(crate) events: Vec<RunEvent>,
    pub(crate) stop: Option<Stop>,
    /// A line sent whose outcome the journal could not record.
    pub(crate) journal_failure: Option<String>,
    /// A line sent again after it was found absent, with every ID it went under: looked for
    /// copies once more at the end of the run.
    pub(crate) resent: Option<(Record, Vec<String>)>,
    /// The lines this job left unknown or failed, by their journal key, with why: a results
    /// file tells them by it (an undo's failed or doubtful delete is not journaled).
    pub(crate) doubts: Vec<(crate::record::LineKey, Untold)>,
    /// An undo's delete answered that its call does not exist: settled after the pass (see
    /// [`settle_gone_calls`]).
    pub(crate) call_gone: Option<CallGone>,
}

/// What became of a line in this run that the journal may not tell (an undo's failed or doubtful
/// delete is not journaled: the line stays added), with why.
#[derive(Debug, Clone)]
pub(crate) enum Untold {
    Unknown(String),
    Failed(String),
}

impl Done {
    /// An undo's line that failed: its reason kept for the results file, since a failed delete
    /// is not journaled.
    fn undo_failed(record: &Record, outcome: LineOutcome) -> Self {
        let mut done = Self::line(record, outcome);
        for event in &done.events {
            if let RunEvent::Line(LineEvent {
                outcome: LineOutcome::Failed(failure),
                ..
            }) = event
            {
                done.doubts
                    .push((record.key(), Untold::Failed(failure.reason.clone())));
            }
        }
        done
    }

    pub(crate) fn line(record: &Record, outcome: LineOutcome) -> Self {
        let mut done = Self::default();
        done.push(record, outcome);
        done
    }

    fn push(&mut self, record: &Record, outcome: LineOutcome) {
        if let LineOutcome::Unknown(unknown) = &outcome {
            self.doubts
                .push((record.key(), Untold::Unknown(unknown.reason.clone())));
        }
        self.events.push(RunEvent::Line(LineEvent {
            line: record.line,
            call_id: record.call_id.to_string(),
            flagged: record.note.is_flagged() == Some(true),
            outcome,
        }));
    }

    /// The outcome of a line whose journal could not be written: it counts as it was, and the
    /// run stops.
    fn journal_failed(
        record: &Record,
        outcome: LineOutcome,
        error: &io::Error,
        what: &str,
    ) -> Self {
        let message = format!(
            "cannot write the journal: {error}; the run stopped. Line {} {what}",
            record.line
        );
        let sent = !matches!(outcome, LineOutcome::NotSent);
        let mut done = Self::line(record, outcome);
        done.stop = Some(Stop::Journal(message.clone()));
        if sent {
            done.journal_failure = Some(message);
        }
        done
    }
}

/// The control of every request a job makes: the run's stop token, no deadline (a rate limit
/// makes a line wait its turn, never fail), and the observer, if any.
fn control<'a>(work: &'a Work, observer: Option<&'a dyn AttemptObserver>) -> Control<'a> {
    let control = Control::new().stop(&work.stop).deadline(Duration::MAX);
    match observer {
        Some(observer) => control.observer(observer),
        None => control,
    }
}

/// Journals an add's attempts: `start` (with the note ID) before each, and `failed` before each
/// retry after a failure that certainly did not add the note, so that a run killed while waiting
/// leaves the line "failed", never "in flight". A retry after a failure that may have added it
/// (a client built with `RetryPolicy::retry_outcome_unknown`) is never let through: it could add
/// the note twice, and "failed" would be a lie in the journal. The call stops there, with the
/// attempt's unknown outcome, which the job journals and settles by looking the note up.
/// Other operations (the lookups of a settle) pass.
struct Journaled<'a> {
    work: &'a Work,
    record: &'a Record,
    note_id: String,
    k: u32,
    /// The first write that failed: the observer stops the call, and the job reports it.
    failed: Mutex<Option<io::Error>>,
    /// The failure after which the client's policy would have sent the add again although it
    /// may have been applied: the observer stopped the call instead.
    held_back: Mutex<Option<String>>,
}

impl<'a> Journaled<'a> {
    fn new(work: &'a Work, record: &'a Record, k: u32) -> Self {
        Self {
            work,
            record,
            note_id: note_id(work.journal.salt(), record.key(), k),
            k,
            failed: Mutex::new(None),
            held_back: Mutex::new(None),
        }
    }

    fn entry(&self, event: Event) -> Entry {
        Entry {
            call_id: Some(self.record.call_id.to_string()),
            note_id: Some(self.note_id.clone()),
            k: Some(self.k),
            ..Entry::line(event, self.record.line, self.record.key())
        }
    }

    fn write(&self, entry: &Entry) -> ControlFlow<()> {
        match write(self.work, entry) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                self.failed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
                ControlFlow::Break(())
            }
        }
    }

    fn take_failure(&self) -> Option<io::Error> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Why the outcome of `error` is unknown, in words: the failure itself when the observer held
    /// back the client's retry of it.
    fn unknown_reason(&self, error: &happyrobot::Error) -> String {
        match self
            .held_back
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(held_back) => format!(
                "{held_back} (not sent again as the client's retry policy asks: it may have been \
                 added; it is looked up on its call instead)"
            ),
            None => error.to_string(),
        }
    }

    /// The note as it is sent.
    fn note(&self) -> NewNote {
        self.record.note.clone().id(self.note_id.clone())
    }
}

impl AttemptObserver for Journaled<'_> {
    fn before_attempt(&self, attempt: &Attempt) -> ControlFlow<()> {
        if attempt.operation != Operation::AddNote {
            return ControlFlow::Continue(());
        }
        self.write(&self.entry(Event::Start))
    }

    fn before_retry(
        &self,
        attempt: &Attempt,
        error: &happyrobot::Error,
        _wait: Duration,
    ) -> ControlFlow<()> {
        if attempt.operation != Operation::AddNote {
            return ControlFlow::Continue(());
        }
        if error.outcome() != happyrobot::Outcome::NotApplied {
            // The policy retries an add that may have been applied: never. The call ends here
            // with this attempt's outcome (unknown), which is journaled and looked up.
            self.held_back
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| error.to_string());
            return ControlFlow::Break(());
        }
        let entry = Entry {
            status: error.status().map(|s| s.as_u16()),
            reason: Some(format!("will be retried: {error}")),
            ..self.entry(Event::Failed)
        };
        self.write(&entry)
    }
}

/// Writes a journal entry. With fsync each write waits for the disk, so it is moved off the async
/// worker threads when the runtime has several (a current-thread runtime has no other thread).
pub(crate) fn write(work: &Work, entry: &Entry) -> io::Result<()> {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if work.journal.fsyncs() && multi_thread {
        tokio::task::block_in_place(|| work.journal.write(entry))
    } else {
        work.journal.write(entry)
    }
}

/// The note ID an answer shows for the note just added ([`happyrobot::added_note`]).
fn added_id(call: &Call, sent: &str, content: &str) -> Option<String> {
    happyrobot::added_note(call, Some(sent), content).and_then(|n| n.id.clone())
}

/// A client error as a line's failure.
pub(crate) fn failure(error: &happyrobot::Error) -> Failure {
    Failure {
        status: error.status().map(|s| s.as_u16()),
        kind: FailureKind::of(error),
        reason: error.to_string(),
    }
}

/// Whether the server's rate limit asked `error`'s request to wait longer than the client's
/// retry policy allows (its `max_retry_after`): certainly not applied, yet no failure of the line
/// (a rate limit never fails one): it is reported *not sent*, journaled as failed (which a re-run
/// sends), and the run stops ([`stop_for`]).
pub(crate) fn deferred(error: &happyrobot::Error) -> bool {
    error.retry_after_too_long()
}

/// The outcome of a line whose request ended with `error`, certainly not applied: `failure`, or
/// not sent when the rate limit deferred it (see [`deferred`]).
fn not_applied(error: &happyrobot::Error, failure: Failure) -> LineOutcome {
    if deferred(error) {
        LineOutcome::NotSent
    } else {
        LineOutcome::Failed(failure)
    }
}

/// Why a failure stops the whole run, if it does.
pub(crate) fn stop_for(error: &happyrobot::Error) -> Option<Stop> {
    if error.stops_a_batch() {
        return Some(Stop::Refused(error.to_string()));
    }
    if deferred(error) {
        return Some(Stop::RetryAfterTooLong(
            error.retry_after().unwrap_or_default(),
        ));
    }
    None
}

/// Sends line `record` as send `k` of it, in the send slot `permit` (or one it waits for), and
/// settles the outcome if it is unknown (when `reconcile`).
pub(crate) async fn send(
    work: &Work,
    record: &Record,
    k: u32,
    reconcile: bool,
    permit: Option<OwnedSemaphorePermit>,
) -> Done {
    let Some(permit) = send_slot(work, permit).await else {
        return Done::line(record, LineOutcome::NotSent);
    };
    let journaled = Journaled::new(work, record, k);
    let result = work
        .client
        .add_note_with(
            &record.call_id,
            journaled.note(),
            &control(work, Some(&journaled)),
        )
        .await;
    if let Some(e) = journaled.take_failure() {
        // The observer stopped the call: nothing was sent after the failed write.
        let outcome = match &result {
            Err(error) if error.outcome() == happyrobot::Outcome::NotApplied => {
                LineOutcome::NotSent
            }
            Err(error) => unknown(error.to_string(), false, false),
            Ok(_) => LineOutcome::NotSent,
        };
        return Done::journal_failed(record, outcome, &e, "was not sent");
    }
    match result {
        Ok(call) => {
            let id = added_id(&call, &journaled.note_id, record.note.content());
            added(
                work,
                record,
                id.unwrap_or(journaled.note_id.clone()),
                Some(k),
                None,
                None,
            )
        }
        Err(error) => after_error(work, record, &journaled, error, (reconcile, Some(permit))).await,
    }
}

/// What a failed add leads to. The send slot `permit` is held until the outcome is journaled (so
/// that no more lines are ever "in flight" in the journal than there are slots), and freed before
/// a lookup of an unknown outcome, which mostly waits.
async fn after_error(
    work: &Work,
    record: &Record,
    journaled: &Journaled<'_>,
    error: happyrobot::Error,
    (reconcile, permit): (bool, Option<OwnedSemaphorePermit>),
) -> Done {
    if error.note_was_added() {
        tracing::warn!(line = record.line, error = %error, "note added, answer unreadable");
        return added(
            work,
            record,
            journaled.note_id.clone(),
            Some(journaled.k),
            Some(&error),
            None,
        );
    }
    if error.is_stopped() && error.outcome() == happyrobot::Outcome::NotApplied {
        // Stopped before an attempt (or while waiting to retry, with "failed" journaled).
        return Done::line(record, LineOutcome::NotSent);
    }
    if error.outcome_unknown() {
        let reason = journaled.unknown_reason(&error);
        let entry = Entry {
            status: error.status().map(|s| s.as_u16()),
            took: error.attempt().map(|(_, took)| took.as_millis() as u64),
            reason: Some(reason.clone()),
            ..journaled.entry(Event::Unknown)
        };
        if let Err(e) = write(work, &entry) {
            let outcome = unknown(reason, false, false);
            return Done::journal_failed(
                record,
                outcome,
                &e,
                "has an unknown outcome, which the journal could not record",
            );
        }
        drop(permit);
        let pending = PendingAdd::from_error(&journaled.note(), &error)
            .unwrap_or_else(|| PendingAdd::new(journaled.note_id.clone(), record.note.content()));
        if !reconcile {
            return Done::line(record, unknown(reason, false, false));
        }
        return Box::pin(settle(work, record, pending, journaled.k, &reason, false)).await;
    }
    let failure = failure(&error);
    let entry = Entry {
        status: failure.status,
        kind: Some(failure.kind.as_str().to_string()),
        reason: Some(failure.reason.clone()),
        ..journaled.entry(Event::Failed)
    };
    let outcome = not_applied(&error, failure);
    let mut done = match write(work, &entry) {
        Ok(()) => Done::line(record, outcome),
        Err(e) => Done::journal_failed(record, outcome, &e, "was not added, but"),
    };
    if let Some(stop) = stop_for(&error) {
        work.stop.cancel();
        done.stop.get_or_insert(stop);
    }
    done
}

/// Journals a line as added (with the ID the call shows) and removes copies found with it.
fn added(
    work: &Work,
    record: &Record,
    note_id: String,
    k: Option<u32>,
    answer_error: Option<&happyrobot::Error>,
    reconciled: Option<Reconciliation>,
) -> Done {
    let entry = Entry {
        call_id: Some(record.call_id.to_string()),
        note_id: Some(note_id.clone()),
        k,
        reason: answer_error
            .map(ToString::to_string)
            .or_else(|| reconciled.map(|_| "reconciled: the note is on the call".to_string())),
        ..Entry::line(Event::Done, record.line, record.key())
    };
    let outcome = LineOutcome::Added {
        note_id: note_id.clone(),
        reconciled,
    };
    match write(work, &entry) {
        Ok(()) => Done::line(record, outcome),
        Err(e) => Done::journal_failed(
            record,
            outcome,
            &e,
            &format!(
                "was added (note {note_id}) but the journal could not record it: the next run looks it up"
            ),
        ),
    }
}

/// Settles a line whose add had an unknown outcome (in this run, or in an earlier one when
/// `earlier_run`): found, it is done; certainly absent, it is sent once more as send `k + 1` (a
/// new note ID, so that a late first copy can still be told apart); undecided, it stays unknown.
pub(crate) async fn settle(
    work: &Work,
    record: &Record,
    pending: PendingAdd,
    k: u32,
    reason: &str,
    earlier_run: bool,
) -> Done {
    let Ok(permit) = until_stopped(work, work.lookups.acquire()).await else {
        return Done::line(record, unknown(reason.to_string(), earlier_run, false));
    };
    let resend = Journaled::new(work, record, k + 1);
    let offer = (!work.stop.is_cancelled()).then(|| resend.note());
    let settled = work
        .client
        .settle_add(
            &record.call_id,
            &pending,
            offer,
            &control(work, Some(&resend)),
        )
        .await;
    drop(permit);
    if let Some(e) = resend.take_failure() {
        let outcome = unknown(reason.to_string(), earlier_run, true);
        return Done::journal_failed(record, outcome, &e, "was not sent again");
    }
    let why = match settled {
        Ok(Settled::Found { note, copies }) => {
            let id = note.id.clone().unwrap_or_default();
            let mut done = found(work, record, &id, k + 1, earlier_run);
            remove_copies(work, record, &copies, &mut done).await;
            return done;
        }
        Ok(Settled::Absent) => return found_absent(work, record, &resend),
        Ok(Settled::SentAgain(result)) => {
            tracing::info!(line = record.line, "not on the call; sent again once");
            return match *result {
                Ok(call) => sent_again(work, record, &pending, &resend, &call),
                Err(error) => sent_again_failed(work, record, &resend, error).await,
            };
        }
        Ok(Settled::Undecided(why)) => (why.as_str().to_string(), false),
        Ok(_) => ("the client could not tell".to_string(), false),
        Err(error) if error.is_stopped() => {
            return Done::line(record, unknown(reason.to_string(), earlier_run, false));
        }
        Err(error) => (format!("the call could not be read ({error})"), true),
    };
    let (why, unreadable) = why;
    let reason = format!("{reason}; looking it up did not settle it: {why}");
    if work.retry_unknown && !work.stop.is_cancelled() {
        // Sent again on purpose, as asked: it may then be on the call twice.
        return Box::pin(send(work, record, k + 1, false, None)).await;
    }
    still_unknown(work, record, reason, (earlier_run, unreadable))
}

/// A settled line's note was found on the call under `id` (one of sends `0..=up_to`).
fn found(work: &Work, record: &Record, id: &str, up_to: u32, earlier_run: bool) -> Done {
    let k = found_k(work, record, id, up_to);
    if !earlier_run {
        return added(
            work,
            record,
            id.to_string(),
            k,
            None,
            Some(Reconciliation::Found),
        );
    }
    let outcome = LineOutcome::AlreadyAdded { found: true };
    match write(work, &found_entry(record, id, k)) {
        Ok(()) => Done::line(record, outcome),
        Err(e) => Done::journal_failed(record, outcome, &e, "was found added but"),
    }
}

/// Certainly not added, and not sent again because the run stopped: a re-run sends it, under a
/// new ID.
fn found_absent(work: &Work, record: &Record, resend: &Journaled<'_>) -> Done {
    let entry = Entry {
        kind: Some("absent".to_string()),
        reason: Some("reconciled: the note is not on the call".to_string()),
        ..resend.entry(Event::Failed)
    };
    match write(work, &entry) {
        Ok(()) => Done::line(record, LineOutcome::NotSent),
        Err(e) => Done::journal_failed(record, LineOutcome::NotSent, &e, "was found not added but"),
    }
}

/// The note was certainly absent and its resend was added: done, and both IDs are kept for the
/// check for a late first copy.
fn sent_again(
    work: &Work,
    record: &Record,
    pending: &PendingAdd,
    resend: &Journaled<'_>,
    call: &Call,
) -> Done {
    let id = added_id(call, &resend.note_id, record.note.content());
    let mut done = added(
        work,
        record,
        id.unwrap_or(resend.note_id.clone()),
        Some(resend.k),
        None,
        Some(Reconciliation::SentAgain),
    );
    let mut ids = pending.note_ids().to_vec();
    ids.push(resend.note_id.clone());
    done.resent = Some((record.clone(), ids));
    done
}

/// Looking the line up did not settle it: it stays unknown. No note ID or send: the entry only
/// says that the line is still in doubt.
/// `(earlier_run, unreadable)`: whether it became unknown in an earlier run, and whether the call
/// could not be read (a re-run later can settle it).
fn still_unknown(
    work: &Work,
    record: &Record,
    reason: String,
    (earlier_run, unreadable): (bool, bool),
) -> Done {
    let entry = Entry {
        call_id: Some(record.call_id.to_string()),
        reason: Some(reason.clone()),
        ..Entry::line(Event::Unknown, record.line, record.key())
    };
    let outcome = looked_up_unknown(reason, earlier_run, unreadable);
    match write(work, &entry) {
        Ok(()) => Done::line(record, outcome),
        Err(e) => Done::journal_failed(record, outcome, &e, "is still unknown and"),
    }
}

/// The resend of a settle failed: as a send's failure, except that an unknown outcome is not
/// settled again in this run (both IDs are journaled; the next run looks for either).
async fn sent_again_failed(
    work: &Work,
    record: &Record,
    resend: &Journaled<'_>,
    error: happyrobot::Error,
) -> Done {
    let mut done = after_error(work, record, resend, error, (false, None)).await;
    for event in &mut done.events {
        if let RunEvent::Line(LineEvent {
            outcome: LineOutcome::Unknown(unknown),
            ..
        }) = event
        {
            unknown.reason = format!(
                "it was not on the call, was sent again once under a new note ID, and that \
                 outcome is unknown too: {}",
                unknown.reason
            );
        }
    }
    done
}

/// Which send of the line a found note ID is, when it is one of the derived ones.
fn found_k(work: &Work, record: &Record, id: &str, up_to: u32) -> Option<u32> {
    (0..=up_to).find(|k| note_id(work.journal.salt(), record.key(), *k) == id)
}

fn found_entry(record: &Record, id: &str, k: Option<u32>) -> Entry {
    Entry {
        call_id: Some(record.call_id.to_string()),
        note_id: Some(id.to_string()),
        k,
        reason: Some("reconciled: the note is on the call".to_string()),
        ..Entry::line(Event::Done, record.line, record.key())
    }
}

/// Looks a done line up for copies of its note (it was sent under more than one ID) and deletes
/// them.
pub(crate) async fn verify(work: &Work, record: &Record, candidates: Vec<String>) -> Done {
    let mut done = Done::line(record, LineOutcome::AlreadyAdded { found: false });
    let Some(first) = candidates.first() else {
        return done;
    };
    let Ok(_permit) = until_stopped(work, work.lookups.acquire()).await else {
        return done;
    };
    let mut pending = PendingAdd::new(first.clone(), record.note.content());
    for id in &candidates[1..] {
        pending = pending.also_id(id.clone());
    }
    if let Ok(Settled::Found { copies, .. }) = work
        .client
        .check_note(&record.call_id, &pending, &control(work, None))
        .await
    {
        remove_copies(work, record, &copies, &mut done).await;
    }
    done
}

/// Deletes the copies of a line's note and journals each one removed.
async fn remove_copies(work: &Work, record: &Record, copies: &[String], done: &mut Done) {
    let mut removed = Vec::new();
    for copy in copies {
        let Ok(note_id) = NoteId::new(copy.as_str()) else {
            continue;
        };
        match work
            .client
            .delete_note_with(&record.call_id, &note_id, &control(work, None))
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_note_not_found() => {}
            Err(e) => {
                tracing::warn!(line = record.line, note_id = copy, error = %e, "a copy could not be deleted; a re-run tries again");
                continue;
            }
        }
        let entry = Entry {
            call_id: Some(record.call_id.to_string()),
            note_id: Some(copy.clone()),
            reason: Some("a copy of the line's note (a late first attempt): deleted".to_string()),
            ..Entry::line(Event::Removed, record.line, record.key())
        };
        if let Err(e) = write(work, &entry) {
            done.stop.get_or_insert(Stop::Journal(format!(
                "cannot write the journal: {e}; the run stopped (a copy of line {}'s note was deleted)",
                record.line
            )));
        }
        removed.push(copy.clone());
    }
    if !removed.is_empty() {
        tracing::warn!(
            line = record.line,
            copies = removed.len(),
            "copies of a note deleted"
        );
        done.events.push(RunEvent::CopiesRemoved {
            line: record.line,
            call_id: record.call_id.to_string(),
            note_ids: removed,
        });
    }
}

/// Deletes note `id` of a line for an undo (and its copies, `copies`), and journals it undone.
pub(crate) async fn delete(
    work: &Work,
    record: &Record,
    (id, copies): (&str, &[String]),
    found: bool,
    permit: Option<OwnedSemaphorePermit>,
) -> Done {
    let Ok(note_id) = NoteId::new(id) else {
        return Done::line(
            record,
            LineOutcome::Failed(Failure {
                status: None,
                kind: FailureKind::Local,
                reason: format!("the journal's note ID {id:?} is not a note ID; check the call"),
            }),
        );
    };
    let Some(permit) = send_slot(work, permit).await else {
        return Done::line(record, LineOutcome::NotSent);
    };
    // Deleted: whether the note was already gone (a `404` that no earlier attempt explains).
    let result: Result<bool, happyrobot::Error> = match work
        .client
        .delete_note_with(&record.call_id, &note_id, &control(work, None))
        .await
    {
        Ok(_) => Ok(false),
        // The API's word that the note was gone before, checked against the call's notes: a
        // server may answer so of a note it holds.
        Err(e) if e.is_note_already_gone() && lists(work, record, id).await != Some(false) => {
            let mut failure = failure(&e);
            failure.reason = format!(
                "deleting note {id}: {}{}",
                failure.reason,
                " (not counted gone: the call, read again, still lists the note, or could not be \
                 read; a re-run tries again)"
            );
            return Done::undo_failed(record, LineOutcome::Failed(failure));
        }
        Err(e) if e.is_note_not_found() => Ok(e.is_note_already_gone()),
        Err(e) => Err(e),
    };
    if result.is_ok() {
        let _ = work.call_seen.set(record.call_id.to_string());
    }
    // The slot stays held until the outcome is journaled.
    let _permit = permit;
    match result {
        Ok(already_gone) => {
            let mut done = deleted(
                work,
                record,
                id,
                already_gone.then_some(ALREADY_GONE),
                found,
            );
            remove_copies(work, record, copies, &mut done).await;
            done
        }
        // Gone with its call, if the API shows another call: told once the pass is over.
        Err(error) if error.is_call_not_found() => {
            let mut failure = failure(&error);
            failure.reason = format!("deleting note {id}: {}", failure.reason);
            Done {
                call_gone: Some(CallGone {
                    record: record.clone(),
                    note: id.to_string(),
                    found,
                    failure,
                }),
                ..Done::default()
            }
        }
        // Answered, but not readably: deleted all the same.
        Err(error) if error.outcome() == happyrobot::Outcome::Applied => {
            let mut done = deleted(work, record, id, None, found);
            remove_copies(work, record, copies, &mut done).await;
            done
        }
        Err(error) if error.is_stopped() && error.outcome() == happyrobot::Outcome::NotApplied => {
            Done::line(record, LineOutcome::NotSent)
        }
        // Stopped, or refused, after an attempt that may have deleted it: unknown, not "not
        // sent" (a re-run sends the delete again, which settles it: a `404` is "already gone").
        Err(error) if error.outcome_unknown() => {
            let mut done = Done::line(
                record,
                unknown(
                    format!(
                        "deleting note {id}: {error} (a re-run tries the delete again, which is \
                         safe)"
                    ),
                    false,
                    false,
                ),
            );
            if let Some(stop) = stop_for(&error) {
                work.stop.cancel();
                done.stop = Some(stop);
            }
            done
        }
        Err(error) => {
            let mut failure = failure(&error);
            failure.reason = format!("deleting note {id}: {}", failure.reason);
            let mut done = Done::undo_failed(record, not_applied(&error, failure));
            if let Some(stop) = stop_for(&error) {
                work.stop.cancel();
                done.stop = Some(stop);
            }
            done
        }
    }
}

/// Whether `record`'s call, read now, lists note `id`; `None` when it cannot be told.
async fn lists(work: &Work, record: &Record, id: &str) -> Option<bool> {
    let call = work
        .client
        .get_call_with(&record.call_id, &control(work, None))
        .await
        .ok()?;
    let notes = call.into_inner().notes?;
    Some(notes.iter().any(|note| note.id.as_deref() == Some(id)))
}

/// Why an undo found a note already gone: its delete was answered `404` for the note.
const ALREADY_GONE: &str = "the note was already gone";
/// Why an undo found a note already gone: the API says its call does not exist.
const GONE_WITH_CALL: &str =
    "the call is gone (the API says it does not exist), and its notes with it";

/// Journals note `id` of a line deleted by an undo (`already_gone`: why it was found gone, if it
/// was; `found`: its add's unknown outcome was looked up and found).
fn deleted(
    work: &Work,
    record: &Record,
    id: &str,
    already_gone: Option<&str>,
    found: bool,
) -> Done {
    let entry = Entry {
        call_id: Some(record.call_id.to_string()),
        note_id: Some(id.to_string()),
        reason: already_gone.map(str::to_string),
        ..Entry::line(Event::Undone, record.line, record.key())
    };
    let outcome = LineOutcome::Deleted {
        note_id: id.to_string(),
        already_gone: already_gone.is_some(),
        found,
    };
    match write(work, &entry) {
        Ok(()) => Done::line(record, outcome),
        Err(e) => Done::journal_failed(
            record,
            outcome,
            &e,
            "was deleted but the journal could not record it; a re-run finds it gone",
        ),
    }
}

/// An undo's delete answered that its call does not exist
/// ([`happyrobot::Error::is_call_not_found`]).
#[derive(Debug)]
pub(crate) struct CallGone {
    record: Record,
    note: String,
    /// Its add's unknown outcome was looked up and found.
    found: bool,
    /// The delete's failure, as the line ends when the call cannot be told gone.
    failure: Failure,
}

/// Settles the lines whose calls the API says do not exist (deleted in the app): their notes went
/// with them, journaled as already gone, when every note the journal records as added was added
/// under this API key (`same_key`) and the API proves the calls gone (see [`crate::gone`]). A
/// gateway that answers in JSON, or a key that cannot see the calls, says that of every call (and
/// a gateway may say it of one route only): then the lines fail, as their deletes did, and a
/// re-run tries them again.
pub(crate) async fn settle_gone_calls(
    work: &Work,
    same_key: bool,
    gone: Vec<CallGone>,
) -> Vec<Done> {
    if gone.is_empty() {
        return Vec::new();
    }
    let calls: HashSet<String> = gone.iter().map(|g| g.record.call_id.to_string()).collect();
    let confirmed = if same_key && !work.stop.is_cancelled() {
        let at_once = work.sends.available_permits().max(1);
        crate::gone::confirmed(&work.client, &work.stop, at_once, &calls, || {
            witnesses(work, &calls)
        })
        .await
    } else {
        HashSet::new()
    };
    let hint = if work.stop.is_cancelled() {
        ""
    } else if !same_key {
        " (the journal records notes added under another API key, or a run it cannot read: this \
         key may be one that cannot see the call; run the undo with the key of the import, or \
         check the call in the app)"
    } else {
        " (not counted gone: reading the call, and another call of the import, could not tell a \
         call deleted in the app from a gateway or key that sees none; check the call in the app; \
         a re-run tries again)"
    };
    gone.into_iter()
        .map(|g| {
            if confirmed.contains(&g.record.call_id.to_string()) {
                deleted(work, &g.record, &g.note, Some(GONE_WITH_CALL), g.found)
            } else {
                let mut failure = g.failure;
                failure.reason.push_str(hint);
                Done::undo_failed(&g.record, LineOutcome::Failed(failure))
            }
        })
        .collect()
}

/// Calls to read as another call in the proof (see [`crate::gone`]): the first an undo's delete
/// found in this run, then the last three the journal names for this API (read from the journal
/// only if that one is not shown).
fn witnesses<'a>(work: &'a Work, gone: &'a HashSet<String>) -> impl Iterator<Item = String> + 'a {
    let seen = work.call_seen.get().filter(|call| !gone.contains(*call));
    let journal = std::iter::once_with(move || {
        let path = work.journal.path();
        crate::journal::other_calls(path, work.journal.dest(), gone, 3).unwrap_or_else(|e| {
            tracing::warn!(error = %e, journal = %path.display(), "cannot read the journal again");
            Vec::new()
        })
    });
    seen.cloned()
        .into_iter()
        .chain(journal.flatten().filter(move |call| Some(call) != seen))
}

/// Settles a line in doubt for an undo: found, its note (and copies) are deleted; certainly
/// absent, there is nothing to delete; undecided, it stays unknown. Nothing is ever sent.
pub(crate) async fn settle_for_undo(work: &Work, record: &Record, pending: PendingAdd) -> Done {
    let Ok(permit) = until_stopped(work, work.lookups.acquire()).await else {
        return Done::line(record, LineOutcome::NotSent);
    };
    let settled = work
        .client
        .settle_add(&record.call_id, &pending, None, &control(work, None))
        .await;
    drop(permit);
    let why = match settled {
        Ok(Settled::Found { note, copies }) => {
            let id = note.id.clone().unwrap_or_default();
            let entry = found_entry(record, &id, None);
            if let Err(e) = write(work, &entry) {
                return Done::journal_failed(
                    record,
                    LineOutcome::NotSent,
                    &e,
                    "was found added, but",
                );
            }
            return Box::pin(delete(work, record, (&id, &copies), true, None)).await;
        }
        Ok(Settled::Absent) => {
            let entry = Entry {
                call_id: Some(record.call_id.to_string()),
                kind: Some("absent".to_string()),
                reason: Some("reconciled during an undo: the note is not on the call".to_string()),
                ..Entry::line(Event::Failed, record.line, record.key())
            };
            return match write(work, &entry) {
                Ok(()) => Done::line(record, LineOutcome::NotAdded),
                Err(e) => Done::journal_failed(
                    record,
                    LineOutcome::NotAdded,
                    &e,
                    "was found not added, but",
                ),
            };
        }
        Ok(Settled::Undecided(why)) => (why.as_str().to_string(), false),
        Ok(_) => ("the client could not tell".to_string(), false),
        Err(error) if error.is_stopped() => return Done::line(record, LineOutcome::NotSent),
        Err(error) => (format!("the call could not be read ({error})"), true),
    };
    let (why, unreadable) = why;
    Done::line(
        record,
        looked_up_unknown(
            format!("its add had an unknown outcome, and looking it up did not settle it: {why}"),
            true,
            unreadable,
        ),
    )
}

/// An unknown outcome.
pub(crate) fn unknown(reason: String, earlier_run: bool, looked_up: bool) -> LineOutcome {
    LineOutcome::Unknown(Unknown {
        reason,
        earlier_run,
        looked_up,
        lookup_failed: false,
    })
}

/// An unknown outcome that looking up did not settle; `unreadable`: the call could not be read.
fn looked_up_unknown(reason: String, earlier_run: bool, unreadable: bool) -> LineOutcome {
    LineOutcome::Unknown(Unknown {
        reason,
        earlier_run,
        looked_up: true,
        lookup_failed: unreadable,
    })
}

/// A pending add from what the journal says of a line: its candidate IDs, sent at `sent`
/// (seconds), its attempt taking `took` to fail, or (`None`: it was in flight when its run
/// stopped) as long as the client's timeout, the most it can have taken.
pub(crate) fn pending_from_journal(
    record: &Record,
    candidates: &[String],
    (sent, took): (u64, Option<Duration>),
    timeout: Duration,
) -> Option<PendingAdd> {
    let (first, rest) = candidates.split_first()?;
    let mut pending = PendingAdd::new(first.clone(), record.note.content());
    for id in rest {
        pending = pending.also_id(id.clone());
    }
    let sent = UNIX_EPOCH + Duration::from_secs(sent);
    Some(pending.sent(sent.min(SystemTime::now()), took.unwrap_or(timeout)))
}

/// The send slot to send in: `given`, or one waited for; `None` once the run stops (nothing is
/// sent then).
async fn send_slot(
    work: &Work,
    given: Option<OwnedSemaphorePermit>,
) -> Option<OwnedSemaphorePermit> {
    let permit = match given {
        Some(permit) => permit,
        None => until_stopped(work, Arc::clone(&work.sends).acquire_owned())
            .await
            .ok()?,
    };
    (!work.stop.is_cancelled()).then_some(permit)
}

/// Waits for a permit unless the run stops first.
async fn until_stopped<P>(
    work: &Work,
    acquire: impl std::future::Future<Output = Result<P, tokio::sync::AcquireError>>,
) -> Result<P, ()> {
    tokio::select! {
        permit = acquire => permit.map_err(|_| ()),
        () = work.stop.cancelled() => Err(()),
    }
}

/// Of the candidate IDs `copies`, those on the call now.
pub(crate) async fn present(work: &Work, record: &Record, copies: Vec<String>) -> Vec<String> {
    let Some(first) = copies.first() else {
        return copies;
    };
    let mut pending = happyrobot::PendingAdd::new(first.clone(), record.note.content());
    for id in &copies[1..] {
        pending = pending.also_id(id.clone());
    }
    let control = happyrobot::Control::new().stop(&work.stop);
    match work
        .client
        .check_note(&record.call_id, &pending, &control)
        .await
    {
        Ok(happyrobot::Settled::Found { note, mut copies }) => {
            copies.extend(note.id.clone());
            copies
        }
        _ => Vec::new(),
    }
}
