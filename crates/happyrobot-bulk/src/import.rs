//! [`Import`]: adds the notes of a [`Source`] exactly once. The input is checked whole first; then
//! each line is journaled and sent with bounded concurrency under the client's rate control;
//! unknown outcomes (in this run, or left by an earlier one) are settled on their calls; copies a
//! late apply left are removed; and a re-run skips every line already added.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use happyrobot::{CancellationToken, Client};

use crate::driver::{self, Cut, Start};
use crate::journal::{Keep, LineState, locate};
use crate::line::{self, Done, Work};
use crate::plan::Plan;
use crate::record::{Occurrences, Record};
use crate::report::{Event, LineOutcome, Report, Stop, Tally};
use crate::run::{self, JournalLocation, Settings};
use crate::{BulkError, Source};

/// Adds the notes of a [`Source`] to their calls, exactly once, resumably.
///
/// ```no_run
/// use happyrobot::{CallId, Client, NewNote};
/// use happyrobot_bulk::{Import, JournalLocation, NoteRecord, Source};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::from_env()?;
/// let call: CallId = "65f1c0ffee0123456789abcd".parse()?;
/// let records = vec![NoteRecord::new(call, NewNote::new("Dock 4"))];
/// let report = Import::new(client, JournalLocation::path("nightly.journal"))
///     .concurrency(8)
///     .run(Source::records(records), |event| println!("{event:?}"))
///     .await?;
/// println!("added {}, failed {}, unknown {}", report.added, report.failed, report.unknown);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Import {
    client: Client,
    settings: Settings,
    retry_unknown: bool,
    allow_duplicates: bool,
}

impl Import {
    /// An import through `client`, journaled at `journal`.
    pub fn new(client: Client, journal: JournalLocation) -> Self {
        Self {
            client,
            settings: Settings::new(journal),
            retry_unknown: false,
            allow_duplicates: false,
        }
    }

    /// How many adds are in flight at once; default 4 (at most [`crate::MAX_CONCURRENCY`]).
    /// The client's rate control paces them when the server limits the rate.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.settings.concurrency = concurrency;
        self
    }

    /// Cancelling `token` stops the import: no new line is sent, lines waiting for their turn give
    /// up (they were not sent: a re-run sends them), the requests in flight finish and are
    /// journaled, and the run returns its report. Dropping the run's future instead stops it at
    /// once, as a kill would: the journal then lists the lines in flight as unknown, and a re-run
    /// settles them.
    pub fn stop(mut self, token: CancellationToken) -> Self {
        self.settings.stop = token;
        self
    }

    /// Whether unknown outcomes are looked up on their calls (reconciled); default `true`.
    /// Without, they are listed as unknown.
    pub fn reconcile(mut self, on: bool) -> Self {
        self.settings.reconcile = on;
        self
    }

    /// Sends again the lines whose outcome is unknown and that looking up could not settle (or,
    /// without reconciling, every unknown line). They may then be added twice: this is for a
    /// person who checked the calls.
    pub fn retry_unknown(mut self, on: bool) -> Self {
        self.retry_unknown = on;
        self
    }

    /// Sends identical lines (same call, text and flag) as notes of their own instead of
    /// refusing the input.
    pub fn allow_duplicates(mut self, on: bool) -> Self {
        self.allow_duplicates = on;
        self
    }

    /// Makes the journal durable against power loss too (a sync after every entry; slower).
    pub fn fsync(mut self, on: bool) -> Self {
        self.settings.fsync = on;
        self
    }

    /// Where the index of journals by content and the content locks are kept; default the
    /// environment's (`HAPPYROBOT_STATE_DIR`, `XDG_STATE_HOME/happyrobot`,
    /// `~/.local/state/happyrobot`), `None` for none.
    pub fn state_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.settings.state_dir = dir;
        self
    }

    /// Writes a results file when the run ends (every input line with its status, note ID and
    /// error; see [`crate::results`]).
    pub fn results_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.results = Some(path.into());
        self
    }

    /// Checks the input and says what a run would do, without sending anything or writing the
    /// journal (a dry run). Invalid lines are an error, as for [`run`](Self::run).
    pub async fn plan(&self, source: &Source) -> Result<Plan, BulkError> {
        let prepared = run::prepare(&self.client, source, &self.settings).await?;
        let (plan, _) = run::validate(source, &prepared, Keep::default()).await?;
        run::refuse_invalid(&plan, &source.name, self.allow_duplicates)?;
        Ok(plan)
    }

    /// The journal this import would use for `source`.
    pub async fn journal_path(&self, source: &Source) -> Result<PathBuf, BulkError> {
        Ok(run::prepare(&self.client, source, &self.settings)
            .await?
            .journal)
    }

    /// The report of a run that counted `tally`.
    fn report(
        &self,
        source: &Source,
        prepared: &run::Prepared,
        plan: &Plan,
        tally: Tally,
        rate_limited: u64,
        started: Instant,
    ) -> Report {
        Report {
            file: source.name.clone(),
            journal: run::shown(&prepared.journal),
            format: run::format_name(source),
            lines: plan.lines,
            added: tally.added,
            skipped: tally.skipped,
            failed: tally.failed,
            unknown: tally.unknown,
            not_sent: plan.lines.saturating_sub(tally.handled()),
            rate_limited,
            reconciled: tally.reconciled,
            copies_removed: tally.copies_removed,
            failed_lines: tally.failed_lines,
            unknown_lines: tally.unknown_lines,
            journal_failures: tally.journal_failures,
            stopped: tally.stopped,
            elapsed: started.elapsed(),
            learned_rate: self.client.rate_stats().learned,
        }
    }

    /// Runs the import: `on_event` hears of the notices first, then of each line as its outcome
    /// is known. `Err` only before anything is sent (an invalid input, a journal held by another
    /// run...); once requests went out, the report says what became of every line.
    pub async fn run(
        &self,
        source: Source,
        mut on_event: impl FnMut(&Event) + Send,
    ) -> Result<Report, BulkError> {
        let started = Instant::now();
        let prepared = run::prepare(&self.client, &source, &self.settings).await?;
        let (plan, _) = run::validate(&source, &prepared, Keep::default()).await?;
        run::refuse_invalid(&plan, &source.name, self.allow_duplicates)?;
        let opened = run::open(&prepared, &self.settings, Keep::default())?;
        for notice in run::notices(&prepared, &opened.state, &plan) {
            on_event(&notice);
        }
        on_event(&Event::Started { lines: plan.lines });
        run::write_run_entry(&opened, &source, &prepared, None)?;
        locate::remember(
            &prepared.content,
            &prepared.destination,
            &prepared.journal,
            self.settings.state_dir.as_deref(),
        );
        let throttled_before = self.client.rate_stats().throttled;
        let state = Arc::new(opened.state);
        let work = run::work(
            &self.client,
            opened.writer,
            &self.settings,
            self.retry_unknown,
        );
        let mut tally = Tally::default();
        let mut resent: Vec<(Record, Vec<String>)> = Vec::new();
        let mut reap = |done: Result<Done, String>| {
            let done = done.unwrap_or_else(|message| Done {
                stop: Some(Stop::Worker(message)),
                ..Done::default()
            });
            absorb(&mut tally, &work, done, &mut on_event, &mut resent);
        };
        let mut occurrences = Occurrences::new(&plan.repeated);
        let lines = Lines {
            work: &work,
            state: &state,
            reconcile: self.settings.reconcile,
            retry_unknown: self.retry_unknown,
            timeout: self.client.timeout(),
        };
        let cut = driver::run(
            &source.input,
            &source.options,
            (run::max_jobs(&self.settings), &work.sends),
            &work.stop,
            |mut record| {
                occurrences.key(&mut record);
                lines.start(record)
            },
            &mut reap,
        )
        .await;
        verify_resent(&work, resent, &mut tally, &mut on_event).await;
        finish(&mut tally, &work, cut, &plan, &source.name);
        let rate_limited = self.client.rate_stats().throttled - throttled_before;
        let report = self.report(&source, &prepared, &plan, tally, rate_limited, started);
        drop(work);
        if let Some(path) = &self.settings.results {
            crate::results::write_import(&source, &prepared, &plan, path).await?;
        }
        Ok(report)
    }
}

/// Copies a late first attempt left, for the lines sent again in this run: looked for once more
/// now, a while after the resend.
async fn verify_resent(
    work: &Work,
    resent: Vec<(Record, Vec<String>)>,
    tally: &mut Tally,
    on_event: &mut (impl FnMut(&Event) + Send),
) {
    for (record, candidates) in resent {
        let done = line::verify(work, &record, candidates).await;
        let copies = done
            .events
            .into_iter()
            .filter(|e| matches!(e, Event::CopiesRemoved { .. }));
        for event in copies {
            tally.count(&event);
            on_event(&event);
        }
    }
}

/// Counts a job's events, hands them to the caller, and notes why the run must stop.
fn absorb(
    tally: &mut Tally,
    work: &Work,
    done: Done,
    on_event: &mut impl FnMut(&Event),
    resent: &mut Vec<(Record, Vec<String>)>,
) {
    for event in &done.events {
        tally.count(event);
        on_event(event);
    }
    resent.extend(done.resent);
    if let Some(message) = done.journal_failure
        && tally.journal_failures.len() < crate::report::MAX_LISTED
    {
        tally.journal_failures.push(message);
    }
    if let Some(stop) = done.stop {
        work.stop.cancel();
        tally.stop(stop);
    }
}

/// Ends the pass: syncs the journal, and says why the run stopped, if it did.
fn finish(tally: &mut Tally, work: &Work, cut: Option<Cut>, plan: &Plan, name: &str) {
    if let Err(e) = work.journal.sync() {
        tally.stop(Stop::Journal(format!(
            "cannot write the journal {}: {e}",
            work.journal.path().display()
        )));
    }
    let changed = |what: String| {
        Stop::InputChanged(format!(
            "{name} changed while it was being imported ({what}); the import stopped. Run the same \
             command again: the lines already added are not sent again"
        ))
    };
    match cut {
        Some(Cut::Stopped) => tally.stop(Stop::Cancelled),
        Some(Cut::Changed(what)) => tally.stop(changed(what)),
        Some(Cut::Unreadable(e)) => tally.stop(changed(format!("it could not be read: {e}"))),
        None => {}
    }
    // Lines left over with nothing to explain them: the input got shorter while it was read.
    let left = plan.lines.saturating_sub(tally.handled() + tally.not_sent);
    if left > 0 && tally.stopped.is_none() {
        tally.stop(changed(format!("it ended {left} line(s) early")));
    }
}

/// How each line of an import starts.
struct Lines<'a> {
    work: &'a Arc<Work>,
    state: &'a Arc<crate::journal::JournalState>,
    reconcile: bool,
    retry_unknown: bool,
    timeout: std::time::Duration,
}

type Job = std::pin::Pin<Box<dyn std::future::Future<Output = Done> + Send>>;
type SendJob = Box<dyn FnOnce(tokio::sync::OwnedSemaphorePermit) -> Job + Send>;

impl Lines<'_> {
    fn start(&self, record: Record) -> Start<Done, Job, SendJob> {
        let key = record.key();
        let standing = self.state.standing(key);
        let candidates = || self.state.candidates(key);
        let work = Arc::clone(self.work);
        // In doubt (damage), or unknown: looked up first, by every ID it may be under.
        let unknown =
            standing.in_doubt || matches!(standing.state, Some(LineState::Unknown { .. }));
        if unknown {
            let reason = match standing.state {
                _ if standing.in_doubt => {
                    "the journal is damaged where it may have said more of this line"
                }
                Some(LineState::Unknown { interrupted: true }) => {
                    "an earlier run stopped while it was being sent"
                }
                _ => "an earlier run could not tell whether it was added",
            };
            let k = self.state.next_k(key).saturating_sub(1);
            let pending = line::pending_from_journal(
                &record,
                &candidates(),
                self.state.attempt(key),
                self.timeout,
            );
            return match pending {
                Some(pending) if self.reconcile => Start::Job(Box::pin(async move {
                    line::settle(&work, &record, pending, k, reason, true).await
                })),
                _ if self.retry_unknown => {
                    let k = self.state.next_k(key);
                    Start::Send(Box::new(move |permit| {
                        Box::pin(
                            async move { line::send(&work, &record, k, false, Some(permit)).await },
                        )
                    }))
                }
                _ => Start::Now(Done::line(
                    &record,
                    line::unknown(
                        if self.reconcile {
                            format!("{reason}, and the journal has no note ID to look it up by")
                        } else {
                            format!("{reason} (not looked up: reconciling is off)")
                        },
                        true,
                        false,
                    ),
                )),
            };
        }
        match standing.state {
            Some(LineState::Done) if self.state.sends(key) > 1 => {
                let candidates = candidates();
                Start::Job(Box::pin(async move {
                    line::verify(&work, &record, candidates).await
                }))
            }
            Some(LineState::Done) => Start::Now(Done::line(
                &record,
                LineOutcome::AlreadyAdded { found: false },
            )),
            _ => {
                let k = self.state.next_k(key);
                let reconcile = self.reconcile;
                Start::Send(Box::new(move |permit| {
                    Box::pin(
                        async move { line::send(&work, &record, k, reconcile, Some(permit)).await },
                    )
                }))
            }
        }
    }
}
