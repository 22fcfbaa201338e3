//! [`Import`]: adds the notes of a [`Source`] exactly once. The input is checked whole first; then
//! each line is journaled and sent with bounded concurrency under the client's rate control;
//! unknown outcomes (in this run, or left by an earlier one) are settled on their calls; copies a
//! late apply left are removed; and a re-run skips every line already added. The session
//! ([`Bulk`]) does what every job does; [`ImportJob`] says what an import does to one line.

use crate::journal::{JournalState, Keep, LineState, Standing};
use crate::line;
use crate::plan::Plan;
use crate::record::Record;
use crate::report::{Event, LineOutcome, Report};
use crate::session::{Bulk, End, Job, JournalLocation, Lines, Prepared, Step};
use crate::{BulkError, Source};
use happyrobot::Client;

/// Adds the notes of a [`Source`] to their calls, exactly once, resumably.
///
/// The options every job shares ([`concurrency`](Bulk::concurrency), [`stop`](Bulk::stop),
/// [`reconcile`](Bulk::reconcile), [`fsync`](Bulk::fsync), [`state_dir`](Bulk::state_dir),
/// [`results_file`](Bulk::results_file)) are [`Bulk`]'s; an import's own are below.
///
/// ```no_run
/// use happyrobot::{CallId, Client, NewNote};
/// use happyrobot_bulk::{Import, JournalLocation, NoteRecord, Source};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::from_env()?;
/// let call: CallId = "65f1c0ffee0123456789abcd".parse()?;
/// let records = vec![NoteRecord::new(call, NewNote::new("Dock 4"))];
/// // Records carry their journal: one per batch.
/// let source = Source::records_with_journal(records, "batches/2026-12-06.journal");
/// let report = Import::new(client, JournalLocation::BesideInput)
///     .concurrency(8)
///     .run(source, |event| println!("{event:?}"))
///     .await?;
/// println!("added {}, failed {}, unknown {}", report.added, report.failed, report.unknown);
/// # Ok(()) }
/// ```
pub type Import = Bulk<ImportJob>;

/// What an import does to each line, and its own options ([`Import::retry_unknown`],
/// [`Import::allow_duplicates`]); the rest is the session's ([`Bulk`]).
#[derive(Debug, Clone, Default)]
pub struct ImportJob {
    retry_unknown: bool,
    allow_duplicates: bool,
}

impl Import {
    /// An import through `client`, journaled at `journal`.
    pub fn new(client: Client, journal: JournalLocation) -> Self {
        Bulk::with_job(client, journal, ImportJob::default())
    }

    /// Sends again the lines whose outcome is unknown and that looking up could not settle (or,
    /// without reconciling, every unknown line). They may then be added twice: this is for a
    /// person who checked the calls.
    pub fn retry_unknown(mut self, on: bool) -> Self {
        self.job.retry_unknown = on;
        self
    }

    /// Sends identical lines (same call, text and flag) as notes of their own instead of
    /// refusing the input.
    pub fn allow_duplicates(mut self, on: bool) -> Self {
        self.job.allow_duplicates = on;
        self
    }

    /// Checks the input and says what a run would do, without sending anything or writing the
    /// journal (a dry run). Invalid lines are an error, as for [`run`](Self::run).
    pub async fn plan(&self, source: &Source) -> Result<Plan, BulkError> {
        self.session().dry_run(source).await
    }

    /// Runs the import: `on_event` hears of the notices first, then of each line as its outcome
    /// is known. `Err` only before anything is sent (an invalid input, a journal held by another
    /// run...); once requests went out, the report says what became of every line.
    pub async fn run(
        &self,
        source: Source,
        on_event: impl FnMut(&Event) + Send,
    ) -> Result<Report, BulkError> {
        self.session().run(source, on_event).await
    }
}

impl Job for ImportJob {
    type Report = Report;
    type Plan = Plan;

    fn keep(&self) -> Keep {
        Keep::default()
    }

    fn check(
        &self,
        plan: &Plan,
        _: &JournalState,
        prepared: &Prepared,
        source: &Source,
    ) -> Result<(), BulkError> {
        crate::sync::refuse_synced(source, &prepared.destination)?;
        crate::session::refuse_invalid(plan, &source.name, self.duplicates_allowed())
    }

    fn dry_run(&self, plan: Plan) -> Plan {
        plan
    }

    fn run_reason(&self) -> Option<&'static str> {
        None
    }

    fn started_lines(&self, plan: &Plan) -> u64 {
        plan.lines
    }

    fn retry_unknown(&self) -> bool {
        self.retry_unknown
    }

    fn step(&self, lines: &Lines<'_>, record: &Record) -> Step {
        let key = record.key();
        let standing = lines.standing(record);
        if let Some(reason) = unknown_reason(standing) {
            return self.step_unknown(lines, record, reason);
        }
        match standing.state {
            Some(LineState::Done) if lines.state.sends(key) > 1 => Step::Verify {
                candidates: lines.state.candidates(key),
            },
            Some(LineState::Done) => Step::now(record, LineOutcome::AlreadyAdded { found: false }),
            // The API's word that its note was gone may have been wrong: a note added again
            // would be a second one. Looked up first, as a line whose outcome is unknown.
            Some(LineState::Undone | LineState::Failed) if lines.state.gone_unseen(key) => self
                .step_unknown(
                    lines,
                    record,
                    "an undo counted its note gone without deleting it (the API said it was not \
                     found)",
                ),
            _ => Step::Send {
                k: lines.state.next_k(key),
                reconcile: lines.reconcile,
            },
        }
    }

    fn changed(&self, name: &str, what: &str) -> String {
        format!(
            "{name} changed while it was being imported ({what}); the import stopped. Run the \
             same command again: the lines already added are not sent again"
        )
    }

    fn report(&self, end: End<'_>) -> Report {
        let (plan, tally) = (end.plan, end.tally);
        Report {
            file: end.source.name.clone(),
            journal: end.journal.display().to_string(),
            format: crate::session::format_name(end.source),
            lines: plan.lines,
            added: tally.added,
            flagged: tally.flagged,
            skipped: tally.skipped,
            failed: tally.failed,
            unknown: tally.unknown,
            not_sent: plan.lines.saturating_sub(tally.handled()),
            rate_limited: end.rate_limited,
            reconciled: tally.reconciled,
            copies_removed: tally.copies_removed,
            failed_lines: tally.failed_lines,
            unknown_lines: tally.unknown_lines,
            journal_failures: tally.journal_failures,
            stopped: tally.stopped,
            elapsed: end.elapsed,
            learned_rate: end.learned_rate,
        }
    }

    fn results(&self) -> crate::results::Kind {
        crate::results::Kind::Import
    }

    fn duplicates_allowed(&self) -> bool {
        self.allow_duplicates
    }
}

/// Why a line must be looked up before anything is sent for it, if it must: damage leaves it in
/// doubt, or its outcome is unknown.
fn unknown_reason(standing: Standing) -> Option<&'static str> {
    match standing.state {
        _ if standing.in_doubt => {
            Some("the journal is damaged where it may have said more of this line")
        }
        Some(LineState::Unknown { interrupted: true }) => {
            Some("an earlier run stopped while it was being sent")
        }
        Some(LineState::Unknown { .. }) => {
            Some("an earlier run could not tell whether it was added")
        }
        _ => None,
    }
}

impl ImportJob {
    /// A line in doubt or unknown: looked up first by every ID it may be under; without a note ID
    /// to look it up by (or without reconciling), sent again only when asked, else listed as
    /// unknown.
    fn step_unknown(&self, lines: &Lines<'_>, record: &Record, reason: &'static str) -> Step {
        let next_k = lines.state.next_k(record.key());
        match lines.pending(record) {
            Some(pending) if lines.reconcile => Step::Settle {
                pending,
                k: next_k.saturating_sub(1),
                reason,
            },
            _ if self.retry_unknown => Step::Send {
                k: next_k,
                reconcile: false,
            },
            _ => {
                let why = if lines.reconcile {
                    format!("{reason}, and the journal has no note ID to look it up by")
                } else {
                    format!("{reason} (not looked up: reconciling is off)")
                };
                Step::now(record, line::unknown(why, true, false))
            }
        }
    }
}
