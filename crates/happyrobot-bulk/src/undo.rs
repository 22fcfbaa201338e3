//! [`Undo`]: deletes exactly the notes an import of a [`Source`] added to this API (by note ID,
//! copies included), and nothing else. It is journaled like the import: stopped or killed, run it
//! again to finish; run once more when done, it deletes nothing. Lines whose add outcome is unknown
//! are looked up on their calls first (found: deleted too; absent: nothing to delete), never
//! guessed. The session ([`Bulk`]) does what every job does; [`UndoJob`] says what an undo does to
//! one line.

use happyrobot::Client;

use crate::journal::{JournalState, Keep, LineState};
use crate::line;
use crate::plan::Plan;
use crate::record::Record;
use crate::report::{Event, Failure, FailureKind, LineOutcome, Reconciled, UndoReport};
use crate::session::{Bulk, End, Job, JournalLocation, Lines, Prepared, Step};
use crate::{BulkError, Source};

/// Deletes the notes an import of a [`Source`] added, and nothing else.
///
/// Its options are those every job shares, [`Bulk`]'s ([`concurrency`](Bulk::concurrency),
/// [`stop`](Bulk::stop), [`reconcile`](Bulk::reconcile), ...).
///
/// ```no_run
/// use happyrobot::Client;
/// use happyrobot_bulk::{JournalLocation, Source, Undo};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let report = Undo::new(Client::from_env()?, JournalLocation::BesideInput)
///     .concurrency(8)
///     .run(Source::file("review.csv"), |event| println!("{event:?}"))
///     .await?;
/// println!("deleted {}, failed {}, unknown {}", report.deleted, report.failed, report.unknown);
/// # Ok(()) }
/// ```
pub type Undo = Bulk<UndoJob>;

/// What an undo does to each line; its options are the session's ([`Bulk`]).
#[derive(Debug, Clone, Default)]
pub struct UndoJob {
    _private: (),
}

/// What an undo would do (a dry run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UndoPlan {
    /// Notes the journal records as added: they would be deleted.
    pub to_delete: u64,
    /// Notes an earlier undo deleted.
    pub already_deleted: u64,
    /// Lines whose add outcome is unknown (or in doubt): looked up first.
    pub unknown: u64,
    /// Of `to_delete`: notes of lines the input no longer has (edited or removed since they were
    /// imported).
    pub removed_lines: u64,
}

impl Undo {
    /// An undo through `client` of the import journaled at `journal`.
    pub fn new(client: Client, journal: JournalLocation) -> Self {
        Bulk::with_job(client, journal, UndoJob::default())
    }

    /// Says what the undo would do, sending nothing. Refused as [`run`](Self::run) is when the
    /// journal records no import of this input to this API.
    pub async fn plan(&self, source: &Source) -> Result<UndoPlan, BulkError> {
        self.session().dry_run(source).await
    }

    /// Runs the undo: `on_event` hears of the notices first (a damaged journal, lines the input
    /// no longer has...), then of each line as its outcome is known. `Err` only before anything
    /// is sent.
    pub async fn run(
        &self,
        source: Source,
        on_event: impl FnMut(&Event) + Send,
    ) -> Result<UndoReport, BulkError> {
        self.session().run(source, on_event).await
    }
}

impl Job for UndoJob {
    type Report = UndoReport;
    type Plan = UndoPlan;

    fn keep(&self) -> Keep {
        Keep {
            done_notes: true,
            reasons: false,
        }
    }

    fn check(
        &self,
        plan: &Plan,
        state: &JournalState,
        prepared: &Prepared,
        source: &Source,
    ) -> Result<(), BulkError> {
        crate::session::refuse_invalid(plan, &source.name, self.duplicates_allowed())?;
        check(state, prepared, source)
    }

    fn dry_run(&self, plan: Plan) -> UndoPlan {
        UndoPlan {
            to_delete: plan.done + plan.orphans_added,
            already_deleted: plan.undone_before + plan.orphans_undone,
            unknown: plan.unknown_before + plan.in_doubt + plan.orphans_unknown,
            removed_lines: plan.orphans_added,
        }
    }

    fn run_reason(&self) -> Option<&'static str> {
        Some("undo")
    }

    fn started_lines(&self, plan: &Plan) -> u64 {
        plan.done
            + plan.unknown_before
            + plan.in_doubt
            + plan.undone_before
            + plan.orphans_added
            + plan.orphans_unknown
            + plan.orphans_undone
    }

    fn removed_lines(&self) -> bool {
        true
    }

    fn step(&self, lines: &Lines<'_>, record: &Record) -> Step {
        let standing = lines.standing(record);
        let unknown =
            standing.in_doubt || matches!(standing.state, Some(LineState::Unknown { .. }));
        if unknown && record.removed {
            // Its text is not known, so it cannot be looked up by it: the call is named instead.
            let why = format!(
                "a line the input no longer has (edited or removed) whose add had an unknown \
                 outcome; look on call {} for a note with one of the IDs {}",
                record.call_id,
                lines.state.candidates(record.key()).join(", ")
            );
            return Step::now(record, line::unknown(why, true, false));
        }
        if unknown {
            return match lines.pending(record) {
                Some(pending) if lines.reconcile => Step::SettleForUndo { pending },
                _ => {
                    let why = if lines.reconcile {
                        "its add had an unknown outcome and the journal has no note ID to look \
                         it up by"
                    } else {
                        "its add had an unknown outcome (not looked up: reconciling is off)"
                    };
                    Step::now(record, line::unknown(why.to_string(), true, false))
                }
            };
        }
        match standing.state {
            Some(LineState::Done) => delete_step(lines, record),
            Some(LineState::Undone) => Step::now(record, LineOutcome::AlreadyDeleted),
            // Not added: nothing to delete, nothing to count.
            _ => Step::nothing(),
        }
    }

    fn changed(&self, name: &str, what: &str) -> String {
        format!(
            "{name} changed while its notes were being deleted ({what}); the undo stopped. Put \
             it back as it was imported, then run the undo again: the notes already deleted are \
             not deleted again"
        )
    }

    fn report(&self, end: End<'_>) -> UndoReport {
        let (plan, tally) = (end.plan, end.tally);
        let to_delete = plan.done + plan.orphans_added + tally.reconciled.found;
        // A run that stopped early never reached some lines, which give no outcome: the notes to
        // delete that got none are not deleted either. (Failed and unknown lines may include
        // lookups of adds, not deletes: this can count too few, never too many.)
        let ended = tally.deleted + tally.failed + tally.unknown;
        let not_deleted = tally.not_sent.max(to_delete.saturating_sub(ended));
        UndoReport {
            file: end.source.name.clone(),
            journal: end.journal.display().to_string(),
            undo: true,
            to_delete: to_delete + tally.already_deleted,
            removed_lines: plan.orphans_added,
            deleted: tally.deleted,
            already_gone: tally.already_gone,
            flagged: tally.flagged,
            skipped: tally.already_deleted,
            not_added: tally.not_added,
            failed: tally.failed,
            unknown: tally.unknown,
            not_deleted,
            reconciled: Reconciled {
                sent_again: 0,
                ..tally.reconciled
            },
            copies_removed: tally.copies_removed,
            failed_lines: tally.failed_lines,
            unknown_lines: tally.unknown_lines,
            stopped: tally.stopped,
            elapsed: end.elapsed,
        }
    }

    fn results(&self) -> crate::results::Kind {
        crate::results::Kind::Undo
    }

    /// An undo reads an input that was imported: identical lines in it were allowed then.
    fn duplicates_allowed(&self) -> bool {
        true
    }
}

/// A line the journal has as added: its note is deleted, with the copies sent under its other IDs
/// that are on the call.
fn delete_step(lines: &Lines<'_>, record: &Record) -> Step {
    let key = record.key();
    let Some(id) = lines.state.done_id(key) else {
        return Step::now(
            record,
            LineOutcome::Failed(Failure {
                status: None,
                kind: FailureKind::Local,
                reason: "the journal does not say which note this line was added as; check its \
                         call"
                    .to_string(),
            }),
        );
    };
    // Sent under several IDs: copies may be on the call too, and go with it.
    let copies = if lines.state.sends(key) > 1 {
        lines
            .state
            .candidates(key)
            .into_iter()
            .filter(|c| *c != id)
            .collect()
    } else {
        Vec::new()
    };
    Step::Delete { id, copies }
}

/// Refuses an undo whose journal does not record an import of this very content to this API:
/// nothing is sent.
fn check(state: &JournalState, prepared: &Prepared, source: &Source) -> Result<(), BulkError> {
    if prepared.known_to(&state.contents) {
        return Ok(());
    }
    let (file, journal, api) = (
        &source.name,
        prepared.journal.display(),
        &prepared.destination.base_url,
    );
    let message = if state.contents.is_empty() && state.has_lines && !state.damaged.is_empty() {
        format!(
            "the journal {journal} is damaged where it said which input it imported to {api}; \
             nothing was sent. Undo needs that record to be sure it deletes only what the import \
             added: give the journal's undamaged copy (JournalLocation::Path), or delete the \
             notes one by one"
        )
    } else if state.contents.is_empty() && !state.other_destinations.is_empty() {
        format!(
            "the journal {journal} records imports to {} only, not to {api}; nothing was sent. \
             Run the undo against the API the file was imported to (the same \
             ClientBuilder::base_url)",
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
             nothing was sent. Give the journal of the import (JournalLocation::Path)"
        )
    } else {
        format!(
            "the journal {journal} records imports of another file (other content) to {api}, not \
             of {file} as it is now; nothing was sent. Give the file exactly as it was imported, \
             or that file's journal (JournalLocation::Path)"
        )
    };
    Err(BulkError::usage(message))
}
