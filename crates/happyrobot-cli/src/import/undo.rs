//! `happyrobot notes import <FILE> --undo`: deletes exactly the notes the file's journal records
//! as added to this API (by note ID), and nothing else.
//!
//! The undo is journaled like the import: each note deleted (or found already gone) gets an
//! `undone` entry, so that a stopped or killed undo, run again, finishes the job, and an undo run
//! once more when done deletes nothing. Lines whose add outcome is still unknown are looked up on
//! their calls first (found: deleted too; absent: recorded as not added) or listed, never guessed.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use happyrobot::{CallId, NoteId, RetryAction, RetryReason};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::args::Format;
use super::dispatch::Signals;
use super::input::{Item, Occurrences, Records};
use super::journal::{Destination, Entry, Event, JournalState, LineKey, LineState, NoteRef};
use super::send::{Context, Lookup, journal_found, look_up};
use super::summary::{FailedLine, MAX_LISTED, Reconciled, UnknownLine, list_lines};
use crate::exit::{self, CliError, Exit};

/// Refuses an undo whose journal does not record an import of this very content to this API:
/// exit 2, before anything is sent.
pub(crate) fn check_journal(
    state: &JournalState,
    content: &str,
    destination: &Destination,
    file: &std::path::Path,
    journal: &std::path::Path,
) -> Result<(), CliError> {
    if state.contents.contains(content) {
        return Ok(());
    }
    let (file, journal, api) = (file.display(), journal.display(), &destination.base_url);
    let message = if state.contents.is_empty() && !state.other_destinations.is_empty() {
        format!(
            "the journal {journal} records imports to {} only, not to {api}; nothing was sent. \
             Run the undo against the API the file was imported to (the same --base-url, or \
             --mock for a trial run's in-process mock, which is gone)",
            state
                .other_destinations
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else if state.contents.is_empty() {
        format!(
            "no import of {file} to {api} is recorded (journal {journal}); nothing to undo and \
             nothing was sent. Give the journal of the import with --journal PATH"
        )
    } else {
        format!(
            "the journal {journal} records imports of another file (other content) to {api}, \
             not of {file} as it is now; nothing was sent. Give the file exactly as it was \
             imported, or that file's journal with --journal PATH"
        )
    };
    Err(CliError::usage(message))
}

/// The outcome of an undo.
#[derive(Debug, Default, Serialize)]
pub(crate) struct UndoSummary {
    pub(crate) file: String,
    pub(crate) journal: String,
    pub(crate) undo: bool,
    /// Notes the journal records as added (before this run), unknown ones found added included.
    pub(crate) to_delete: u64,
    pub(crate) deleted: u64,
    /// Of `deleted`: notes that were already gone (a `404` for the note).
    pub(crate) already_gone: u64,
    /// Lines an earlier undo already deleted.
    pub(crate) skipped: u64,
    /// Lines whose unknown outcome turned out to be "not added": nothing to delete.
    pub(crate) not_added: u64,
    pub(crate) failed: u64,
    /// Lines whose add outcome is still unknown, and deletes whose outcome is unknown.
    pub(crate) unknown: u64,
    /// Notes not deleted because the undo stopped early.
    pub(crate) not_deleted: u64,
    pub(crate) reconciled: Reconciled,
    pub(crate) interrupted: bool,
    pub(crate) exit_code: u8,
    pub(crate) failed_lines: Vec<FailedLine>,
    pub(crate) unknown_lines: Vec<UnknownLine>,
    #[serde(skip)]
    signal: Option<Exit>,
    #[serde(skip)]
    worst_failure: Option<Exit>,
    #[serde(skip)]
    auth_rejected: bool,
    #[serde(skip)]
    fatal: Option<CliError>,
}

impl UndoSummary {
    fn fail(&mut self, line: FailedLine, exit: Exit) {
        self.failed += 1;
        if exit == Exit::Auth {
            self.auth_rejected = true;
        }
        self.worst_failure = self.worst_failure.max(Some(exit));
        if self.failed_lines.len() < MAX_LISTED {
            self.failed_lines.push(line);
        }
    }

    fn unknown(&mut self, line: UnknownLine) {
        self.unknown += 1;
        if self.unknown_lines.len() < MAX_LISTED {
            self.unknown_lines.push(line);
        }
    }

    /// An empty summary of the undo of `file` with this journal.
    pub(crate) fn new(file: String, journal: String) -> Self {
        Self {
            file,
            journal,
            undo: true,
            ..Self::default()
        }
    }

    /// Records a failure of the undo itself (the first one wins).
    pub(crate) fn fatal_journal(&mut self, error: CliError) {
        self.fatal.get_or_insert(error);
    }

    /// The failure of the undo itself, if any, to report as the command's error.
    pub(crate) fn take_fatal(&mut self) -> Option<CliError> {
        self.fatal.take()
    }

    /// The exit code, with the same precedence as an import's.
    pub(crate) fn exit(&self) -> Exit {
        if self.unknown > 0 {
            Exit::Unknown
        } else if self.auth_rejected {
            Exit::Auth
        } else if self.interrupted {
            self.signal.unwrap_or(Exit::Interrupted)
        } else if let Some(error) = &self.fatal {
            error.exit
        } else {
            self.worst_failure.unwrap_or(Exit::Success)
        }
    }

    /// The text summary.
    pub(crate) fn render_text(&self) -> String {
        let mut out = vec![format!(
            "Undo of the import of {}: {} note{} to delete",
            self.file,
            self.to_delete,
            if self.to_delete == 1 { "" } else { "s" }
        )];
        out.push(format!(
            "  deleted:     {} ({} of them already gone)",
            self.deleted, self.already_gone
        ));
        out.push(format!(
            "  skipped:     {} (deleted by an earlier undo)",
            self.skipped
        ));
        if self.not_added > 0 {
            out.push(format!(
                "  not added:   {} (their outcome was unknown; they are not on their calls)",
                self.not_added
            ));
        }
        out.extend(
            self.reconciled
                .render_with(self.not_added, "not there (not added)"),
        );
        out.push(format!("  failed:      {}", self.failed));
        list_lines(
            &mut out,
            self.failed as usize,
            self.failed_lines
                .iter()
                .map(|f| (f.line, f.call_id.as_str(), f.reason.as_str())),
        );
        out.push(format!("  unknown:     {}", self.unknown));
        list_lines(
            &mut out,
            self.unknown as usize,
            self.unknown_lines
                .iter()
                .map(|u| (u.line, u.call_id.as_str(), u.reason.as_str())),
        );
        if self.unknown > 0 {
            out.push(
                "  These notes may or may not exist: check the calls (happyrobot calls get \
                 CALL_ID) and delete them with happyrobot notes delete if they are there."
                    .to_string(),
            );
        }
        if self.not_deleted > 0 {
            out.push(format!(
                "  not deleted: {} (the undo stopped early; run the same command to continue)",
                self.not_deleted
            ));
        }
        if self.failed > 0 {
            out.push(
                "  Failed notes were not deleted; running the same command tries them again."
                    .to_string(),
            );
        }
        out.push(format!("Journal: {}", self.journal));
        out.join("\n")
    }
}

/// What the undo reads: the input (for the text of lines in doubt), its format, which lines occur
/// more than once, and the journal as loaded with the notes of done lines.
pub(crate) struct UndoPass<'a> {
    pub(crate) input: &'a std::path::Path,
    pub(crate) format: Format,
    pub(crate) repeated: &'a HashSet<u64>,
    pub(crate) state: &'a JournalState,
    pub(crate) reconcile: bool,
    pub(crate) concurrency: u16,
}

/// What one task of the undo found.
enum Outcome {
    /// An unknown line looked up: found added (its note, to delete), not added, or still unknown.
    Found(LineKey, NoteRef),
    NotAdded,
    StillUnknown(UnknownLine),
    /// A delete: done (`true` when the note was already gone), failed, unknown, or not tried.
    Deleted {
        already_gone: bool,
    },
    Failed(FailedLine, Exit),
    DeleteUnknown(UnknownLine),
    NotTried,
    /// The journal could not be written.
    Journal(CliError),
}

/// Runs the undo: reconciles the lines in doubt, then deletes every note recorded as added.
pub(crate) async fn undo(
    pass: UndoPass<'_>,
    context: &Arc<Context>,
    summary: &mut UndoSummary,
    signals: &mut Signals,
) {
    let state = pass.state;
    let mut tasks: JoinSet<Outcome> = JoinSet::new();
    let mut to_delete: Vec<(LineKey, NoteRef)> = Vec::new();
    let mut in_doubt: HashSet<LineKey> = HashSet::new();
    for (key, line_state) in state.lines() {
        match line_state {
            LineState::Done => match state.note(key) {
                Some(note) => to_delete.push((key, note.clone())),
                None => summary.fail(
                    FailedLine {
                        line: 0,
                        call_id: String::new(),
                        status: None,
                        exit_code: Exit::Internal.code(),
                        reason: format!(
                            "the journal does not say which note line fingerprint {} was added as; \
                             check its call",
                            super::journal::format_fingerprint(key.0)
                        ),
                    },
                    Exit::Internal,
                ),
            },
            LineState::Undone => summary.skipped += 1,
            LineState::Unknown { .. } => {
                in_doubt.insert(key);
            }
            LineState::Failed => {}
        }
    }

    // 1. The lines in doubt are looked up on their calls, which needs their text: the file is
    //    read again for them.
    if !in_doubt.is_empty() {
        let lookups = Arc::new(Semaphore::new(usize::from(pass.concurrency).max(16)));
        let records = match Records::open(pass.input, pass.format) {
            Ok(records) => records,
            Err(e) => {
                summary.fatal = Some(CliError::internal(format!(
                    "cannot read the file again: {e}"
                )));
                return;
            }
        };
        let mut occurrences = Occurrences::new(pass.repeated);
        let mut seen: HashSet<LineKey> = HashSet::new();
        for item in records {
            let Ok(Item::Valid(mut record)) = item else {
                continue;
            };
            let key = occurrences.key(&mut record);
            if !in_doubt.contains(&key) {
                continue;
            }
            seen.insert(key);
            let note_id = state
                .note(key)
                .and_then(|n| n.note_id.clone())
                .filter(|_| pass.reconcile);
            let Some(note_id) = note_id else {
                summary.unknown(UnknownLine {
                    line: record.line,
                    call_id: record.call_id.to_string(),
                    reason: if pass.reconcile {
                        "its add had an unknown outcome and the journal has no note ID to look it \
                         up by"
                            .to_string()
                    } else {
                        "its add had an unknown outcome (not looked up: --no-reconcile)".to_string()
                    },
                    earlier_run: true,
                });
                continue;
            };
            let Ok(permit) = Arc::clone(&lookups).acquire_owned().await else {
                break;
            };
            let context = Arc::clone(context);
            tasks.spawn(async move {
                let outcome = reconcile_for_undo(&context, &record, key, &note_id).await;
                drop(permit);
                outcome
            });
        }
        for key in in_doubt.difference(&seen) {
            let note = state.note(*key);
            summary.unknown(UnknownLine {
                line: note.map_or(0, |n| n.line),
                call_id: note.map(|n| n.call_id.clone()).unwrap_or_default(),
                reason: "its add had an unknown outcome, and the file no longer has this line \
                         to look it up by"
                    .to_string(),
                earlier_run: true,
            });
        }
        let mut stop = false;
        loop {
            tokio::select! {
                done = tasks.join_next() => match done {
                    Some(Ok(Outcome::Found(key, note))) => to_delete.push((key, note)),
                    Some(Ok(outcome)) => record(summary, context, outcome),
                    Some(Err(e)) => {
                        summary.fatal.get_or_insert(CliError::internal(format!("a worker failed: {e}")));
                    }
                    None => break,
                },
                exit = signals.next(), if !stop => {
                    interrupted(summary, context, exit);
                    stop = true;
                }
            }
        }
    }
    summary.to_delete = to_delete.len() as u64 + summary.skipped;
    summary.reconciled = Reconciled::from_stats(&context.stats);

    // 2. The deletes, `--concurrency` at a time, in file order.
    to_delete.sort_by_key(|(_, note)| note.line);
    let semaphore = Arc::new(Semaphore::new(usize::from(pass.concurrency)));
    let mut pending = to_delete.into_iter();
    loop {
        while let Some(done) = tasks.try_join_next() {
            reap(done, summary, context);
        }
        if context.is_stopped() || summary.fatal.is_some() {
            break;
        }
        let Some((key, note)) = pending.next() else {
            break;
        };
        let permit = tokio::select! {
            exit = signals.next() => {
                interrupted(summary, context, exit);
                summary.not_deleted += 1;
                break;
            }
            permit = Arc::clone(&semaphore).acquire_owned() => permit,
        };
        let Ok(permit) = permit else {
            break;
        };
        let context = Arc::clone(context);
        tasks.spawn(async move {
            let outcome = delete(&context, key, &note).await;
            drop(permit);
            outcome
        });
    }
    summary.not_deleted += pending.len() as u64;
    let mut announced = false;
    loop {
        if summary.interrupted && !announced {
            announced = true;
            crate::output::err(
                "Interrupted: waiting for the requests in flight (interrupt again to quit now; a \
                 re-run finishes the undo)",
            );
        }
        tokio::select! {
            done = tasks.join_next() => match done {
                Some(done) => reap(done, summary, context),
                None => break,
            },
            exit = signals.next() => {
                if summary.interrupted {
                    crate::output::err("Interrupted again: quitting now");
                    std::process::exit(i32::from(exit.code()));
                }
                interrupted(summary, context, exit);
            }
        }
    }
}

fn interrupted(summary: &mut UndoSummary, context: &Context, exit: Exit) {
    summary.interrupted = true;
    summary.signal.get_or_insert(exit);
    context.stop();
}

fn reap(
    done: Result<Outcome, tokio::task::JoinError>,
    summary: &mut UndoSummary,
    context: &Context,
) {
    match done {
        Ok(outcome) => record(summary, context, outcome),
        Err(e) => {
            context.stop();
            summary
                .fatal
                .get_or_insert(CliError::internal(format!("a worker failed: {e}")));
        }
    }
}

fn record(summary: &mut UndoSummary, context: &Context, outcome: Outcome) {
    match outcome {
        Outcome::Found(..) => {}
        Outcome::NotAdded => summary.not_added += 1,
        Outcome::StillUnknown(line) | Outcome::DeleteUnknown(line) => summary.unknown(line),
        Outcome::Deleted { already_gone } => {
            summary.deleted += 1;
            if already_gone {
                summary.already_gone += 1;
            }
        }
        Outcome::Failed(line, exit) => {
            if exit == Exit::Auth {
                context.stop();
            }
            summary.fail(line, exit);
        }
        Outcome::NotTried => summary.not_deleted += 1,
        Outcome::Journal(error) => {
            context.stop();
            summary.fatal.get_or_insert(error);
        }
    }
}

fn journal_error(e: &std::io::Error, line: u64, what: &str) -> CliError {
    CliError::internal(format!(
        "cannot write the journal: {e}; the undo stopped (line {line} {what}). Run the same \
         command again when the journal can be written"
    ))
}

/// Looks up a line whose add had an unknown outcome, and journals what was found.
async fn reconcile_for_undo(
    context: &Context,
    record: &super::input::Record,
    key: LineKey,
    note_id: &str,
) -> Outcome {
    let call_id = record.call_id.to_string();
    match look_up(context, &record.call_id, note_id, record.note.content()).await {
        Lookup::Found(found) => {
            let note_id = found.unwrap_or_else(|| note_id.to_string());
            if let Err(e) = journal_found(context, record, key, &note_id) {
                return Outcome::Journal(journal_error(&e, record.line, "was found added"));
            }
            Outcome::Found(
                key,
                NoteRef {
                    line: record.line,
                    call_id,
                    note_id: Some(note_id),
                },
            )
        }
        // Counted as `not_added`, not as a reconciled absent line: an import sends those
        // again, an undo never does.
        Lookup::Absent => {
            let entry = Entry {
                call_id: Some(call_id),
                note_id: Some(note_id.to_string()),
                reason: Some("reconciled during an undo: the note is not on the call".to_string()),
                ..Entry::line(Event::Failed, record.line, key)
            };
            if let Err(e) = context.write(&entry) {
                return Outcome::Journal(journal_error(&e, record.line, "was found not added"));
            }
            Outcome::NotAdded
        }
        Lookup::Undecided(why) => {
            context
                .stats
                .reconciled_undecided
                .fetch_add(1, Ordering::Relaxed);
            Outcome::StillUnknown(UnknownLine {
                line: record.line,
                call_id,
                reason: format!(
                    "its add had an unknown outcome, and looking it up did not settle it: {why}"
                ),
                earlier_run: true,
            })
        }
    }
}

/// Deletes one note, retrying as the policy allows for an idempotent request, and journals it
/// as undone once it is gone.
async fn delete(context: &Context, key: LineKey, note: &NoteRef) -> Outcome {
    let failed = |reason: String, status: Option<u16>, exit: Exit| {
        Outcome::Failed(
            FailedLine {
                line: note.line,
                call_id: note.call_id.clone(),
                status,
                exit_code: exit.code(),
                reason,
            },
            exit,
        )
    };
    let call_id = match CallId::new(note.call_id.as_str()) {
        Ok(id) => id,
        Err(e) => {
            return failed(
                format!("the journal's call ID is invalid: {e}"),
                None,
                Exit::Internal,
            );
        }
    };
    let Some(note_id) = note.note_id.as_deref() else {
        return failed(
            "the journal does not say which note this line was added as; check the call".into(),
            None,
            Exit::Internal,
        );
    };
    let note_id = match NoteId::new(note_id) {
        Ok(id) => id,
        Err(e) => {
            return failed(
                format!("the journal's note ID is invalid: {e}"),
                None,
                Exit::Internal,
            );
        }
    };
    let mut retries = 0;
    loop {
        if !context.wait_turn().await {
            return Outcome::NotTried;
        }
        let (already_gone, error) = match context.client.delete_note(&call_id, &note_id).await {
            Ok(_) => (false, None),
            Err(e) if e.is_note_not_found() => (true, None),
            Err(e) => (false, Some(e)),
        };
        let Some(error) = error else {
            let entry = Entry {
                call_id: Some(note.call_id.clone()),
                note_id: Some(note_id.to_string()),
                reason: already_gone.then(|| "the note was already gone".to_string()),
                ..Entry::line(Event::Undone, note.line, key)
            };
            if let Err(e) = context.write(&entry) {
                return Outcome::Journal(journal_error(
                    &e,
                    note.line,
                    "was deleted but the journal could not record it; a re-run finds it gone",
                ));
            }
            return Outcome::Deleted { already_gone };
        };
        if let RetryAction::Retry { after, reason } =
            context.retry.decide_for(&error, retries, true)
        {
            if reason == RetryReason::RateLimited {
                context.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                context.gate.pause(after, context.max_retry_after);
            } else if !context.sleep(after).await {
                return Outcome::NotTried;
            }
            retries += 1;
            continue;
        }
        let code = exit::exit_for(&error);
        let status = error.status().map(|s| s.as_u16());
        if code == Exit::Unknown {
            return Outcome::DeleteUnknown(UnknownLine {
                line: note.line,
                call_id: note.call_id.clone(),
                reason: format!(
                    "deleting note {note_id}: {error} (a re-run tries the delete again, which is \
                     safe)"
                ),
                earlier_run: false,
            });
        }
        return failed(format!("deleting note {note_id}: {error}"), status, code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::journal::{JournalWriter, key_hash};

    fn destination(url: &str) -> Destination {
        Destination {
            base_url: url.into(),
            key_hash: key_hash("k"),
        }
    }

    #[test]
    fn an_undo_is_refused_unless_the_journal_imported_this_content_here() {
        let dir = crate::import::test_dir("undo-check");
        let journal = dir.join("notes.csv.journal");
        let file = dir.join("notes.csv");
        let here = destination("http://127.0.0.1:1/api/v1");
        let there = destination("http://127.0.0.1:2/api/v1");
        let refused = |state: &JournalState, content: &str| {
            check_journal(state, content, &here, &file, &journal)
                .unwrap_err()
                .message
        };
        let none = refused(&JournalState::default(), "c1");
        assert!(none.contains("nothing to undo"), "{none}");

        let (writer, _) = JournalWriter::open(&journal, &there, false).unwrap();
        writer
            .write(&Entry::run("notes.csv", "csv", "c1", &there))
            .unwrap();
        drop(writer);
        let state = JournalState::load(&journal, &here).unwrap();
        let elsewhere = refused(&state, "c1");
        assert!(
            elsewhere.contains("http://127.0.0.1:2/api/v1"),
            "{elsewhere}"
        );
        assert!(elsewhere.contains("nothing was sent"), "{elsewhere}");

        let (writer, _) = JournalWriter::open(&journal, &here, false).unwrap();
        writer
            .write(&Entry::run("notes.csv", "csv", "c1", &here))
            .unwrap();
        drop(writer);
        let state = JournalState::load(&journal, &here).unwrap();
        assert!(check_journal(&state, "c1", &here, &file, &journal).is_ok());
        let other_file = refused(&state, "c2");
        assert!(other_file.contains("another file"), "{other_file}");
    }

    #[test]
    fn unknown_beats_everything_and_a_clean_undo_exits_0() {
        let mut summary = UndoSummary::new("f".into(), "j".into());
        assert_eq!(summary.exit(), Exit::Success);
        summary.fail(
            FailedLine {
                line: 2,
                call_id: "c".into(),
                status: Some(404),
                exit_code: 4,
                reason: "no such call".into(),
            },
            Exit::NotFound,
        );
        assert_eq!(summary.exit(), Exit::NotFound);
        summary.unknown(UnknownLine {
            line: 3,
            call_id: "c".into(),
            reason: "r".into(),
            earlier_run: true,
        });
        assert_eq!(summary.exit(), Exit::Unknown);
        let text = summary.render_text();
        assert!(text.contains("line 3 (call c): r"), "{text}");
        assert!(text.contains("happyrobot calls get"), "{text}");
    }

    #[test]
    fn a_long_list_of_failures_says_how_many_more_the_journal_holds() {
        let mut summary = UndoSummary::new("f".into(), "j".into());
        for line in (2..=26).rev() {
            let failed = FailedLine {
                line,
                call_id: "c".into(),
                status: Some(500),
                exit_code: 5,
                reason: "r".into(),
            };
            summary.fail(failed, Exit::Api);
        }
        let text = summary.render_text();
        assert!(text.contains("    line 2 (call c): r"), "{text}");
        assert!(
            !text.contains("line 22 "),
            "20 are printed, in file order: {text}"
        );
        assert!(text.contains("... and 5 more (see the journal)"), "{text}");
    }
}
