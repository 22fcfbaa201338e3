//! What a job supplies to the session ([`Job`]): what it does to one line, decided as a [`Step`]
//! from what the journal says of the line, and its few differences (what it keeps of the journal,
//! what refuses it, its report). [`launch`] turns a step into the driver's work: the one place
//! where a line's futures are made.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use happyrobot::PendingAdd;
use tokio::sync::OwnedSemaphorePermit;

use crate::driver::Start;
use crate::journal::{JournalState, Keep, Standing};
use crate::line::{self, Done, Work};
use crate::plan::Plan;
use crate::record::Record;
use crate::report::Tally;
use crate::{BulkError, Source};

use super::Prepared;

/// What a bulk job does; the session does the rest.
pub(crate) trait Job: Send + Sync {
    /// The report a run ends with.
    type Report;
    /// What a dry run says.
    type Plan;

    /// What the journal must keep of each line for this job's steps.
    fn keep(&self) -> Keep;

    /// Refuses the run before anything is sent: invalid lines (the validation pass's `plan`),
    /// or a journal (`state`, as it is now) that does not allow it.
    fn check(
        &self,
        plan: &Plan,
        state: &JournalState,
        prepared: &Prepared,
        source: &Source,
    ) -> Result<(), BulkError>;

    /// What a dry run says of the validation pass's `plan`.
    fn dry_run(&self, plan: Plan) -> Self::Plan;

    /// The `reason` of the job's `run` entries in the journal (`None` for an import).
    fn run_reason(&self) -> Option<&'static str>;

    /// How many line events the run will tell ([`crate::Event::Started`]).
    fn started_lines(&self, plan: &Plan) -> u64;

    /// Whether lines that looking up could not settle are sent again.
    fn retry_unknown(&self) -> bool {
        false
    }

    /// Whether the job acts on the lines the journal records that the input no longer has too
    /// (after the input's; their records are [`Record::removed`]).
    fn removed_lines(&self) -> bool {
        false
    }

    /// What to do with `record`, from what the journal says of it.
    fn step(&self, lines: &Lines<'_>, record: &Record) -> Step;

    /// The message of a stop because the input `name` changed (`what` changed) during the run.
    fn changed(&self, name: &str, what: &str) -> String;

    /// The report of a run that ended as `end` says.
    fn report(&self, end: End<'_>) -> Self::Report;

    /// Which results file the job writes.
    fn results(&self) -> crate::results::Kind;

    /// Whether identical lines (same call, text and flag) may run, each as a line of its own.
    fn duplicates_allowed(&self) -> bool;
}

/// What a job's [`Job::step`] sees of the run.
pub(crate) struct Lines<'a> {
    /// The journal as the run opened it.
    pub(crate) state: &'a JournalState,
    /// Whether unknown outcomes are looked up.
    pub(crate) reconcile: bool,
    /// The client's timeout: the longest an attempt cut off by a killed run can have taken.
    pub(crate) timeout: Duration,
}

impl Lines<'_> {
    /// What the journal says of `record`.
    pub(crate) fn standing(&self, record: &Record) -> Standing {
        self.state.standing(record.key())
    }

    /// The add of `record` to settle, from what the journal says of it; `None` when the journal
    /// has no note ID to look it up by.
    pub(crate) fn pending(&self, record: &Record) -> Option<PendingAdd> {
        let key = record.key();
        line::pending_from_journal(
            record,
            &self.state.candidates(key),
            self.state.attempt(key),
            self.timeout,
        )
    }
}

/// What a job does with one line: the explicit form of its state machine. Each step is one of
/// the line actions of [`crate::line`].
pub(crate) enum Step {
    /// Known without a request.
    Now(Box<Done>),
    /// Send it as send `k` (a note ID of its own), and settle an unknown outcome when `reconcile`.
    Send { k: u32, reconcile: bool },
    /// Settle an unknown outcome of an earlier run: look the note up by `pending`; found, done;
    /// certainly absent, send it as send `k + 1`.
    Settle {
        pending: PendingAdd,
        k: u32,
        reason: &'static str,
    },
    /// A line done, sent under several IDs: look for copies on its call and delete them.
    Verify { candidates: Vec<String> },
    /// Undo a line whose add outcome is unknown: look it up; found, delete it.
    SettleForUndo { pending: PendingAdd },
    /// Undo a line: delete note `id`, and those of `copies` that are on its call.
    Delete { id: String, copies: Vec<String> },
}

impl Step {
    /// The outcome of `record`, known without a request.
    pub(crate) fn now(record: &Record, outcome: crate::report::LineOutcome) -> Self {
        Self::Now(Box::new(Done::line(record, outcome)))
    }

    /// Nothing to do and nothing to tell.
    pub(crate) fn nothing() -> Self {
        Self::Now(Box::default())
    }
}

/// A line's job, as the driver runs it.
pub(crate) type LineJob = Pin<Box<dyn Future<Output = Done> + Send>>;
/// A line's job that sends, made once a send slot is free.
pub(crate) type SendJob = Box<dyn FnOnce(OwnedSemaphorePermit) -> LineJob + Send>;

/// Turns `step` into the driver's work for `record`.
pub(crate) fn launch(
    step: Step,
    work: &Arc<Work>,
    record: Record,
) -> Start<Done, LineJob, SendJob> {
    let work = Arc::clone(work);
    match step {
        Step::Now(done) => Start::Now(*done),
        Step::Send { k, reconcile } => Start::Send(Box::new(move |permit| {
            Box::pin(async move { line::send(&work, &record, k, reconcile, Some(permit)).await })
        })),
        Step::Settle { pending, k, reason } => Start::Job(Box::pin(async move {
            line::settle(&work, &record, pending, k, reason, true).await
        })),
        Step::Verify { candidates } => Start::Job(Box::pin(async move {
            line::verify(&work, &record, candidates).await
        })),
        Step::SettleForUndo { pending } => Start::Job(Box::pin(async move {
            line::settle_for_undo(&work, &record, pending).await
        })),
        Step::Delete { id, copies } if copies.is_empty() => Start::Send(Box::new(move |permit| {
            Box::pin(
                async move { line::delete(&work, &record, (&id, &[]), false, Some(permit)).await },
            )
        })),
        // Copies may be on the call too: those there go with it.
        Step::Delete { id, copies } => Start::Job(Box::pin(async move {
            let copies = line::present(&work, &record, copies).await;
            line::delete(&work, &record, (&id, &copies), false, None).await
        })),
    }
}

/// How a run ended, for its report.
pub(crate) struct End<'a> {
    pub(crate) source: &'a Source,
    pub(crate) journal: &'a Path,
    pub(crate) plan: &'a Plan,
    pub(crate) tally: Tally,
    pub(crate) elapsed: Duration,
    /// Requests the server answered `429` during the run.
    pub(crate) rate_limited: u64,
    pub(crate) learned_rate: Option<f64>,
}
