//! One session for every bulk job: [`Bulk`] holds the options every job shares (set once, in
//! `impl<J> Bulk<J>` below), and its runner does what every job does: prepare (the input's
//! identity, the destination, the journal's location), validate, let the job refuse the run, open
//! and lock the journal, tell the notices, write the `run` entry, drive the pass, drain it, say why
//! it stopped, write the results file and make the report. A job ([`crate::ImportJob`],
//! [`crate::UndoJob`]) supplies only what it does to one line and its few differences
//! ([`Job`]).

mod job;
mod prepare;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use happyrobot::{CancellationToken, Client};

use crate::driver::{self, Cut};
use crate::journal::{JournalWriter, Keep, locate};
use crate::line::{self, Done, Work};
use crate::plan::Plan;
use crate::record::{Occurrences, Record};
use crate::report::{Event, Stop, Tally};
use crate::{BulkError, Source};

pub(crate) use self::job::{End, Job, Lines, Step};
pub(crate) use self::prepare::{
    Prepared, format_name, identical_message, prepare, records_journal, refuse_invalid,
};

/// Where a run's journal is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum JournalLocation {
    /// The input's own journal. For a file: beside it (`<FILE>.journal`) if it exists there, else
    /// the journal of an input with the same rows imported to the same API (found through the
    /// state directory's index: a renamed, copied or symlinked file, or the same rows saved as
    /// another format or encoding, resumes), else a new `<FILE>.journal`; a journal the index
    /// names that is gone refuses the run (see [`Bulk::forget_lost_journal`]). For records: the
    /// journal they were built with ([`Source::records_with_journal`]).
    #[default]
    BesideInput,
    /// This path.
    Path(PathBuf),
}

impl JournalLocation {
    /// The journal at `path`.
    pub fn path(path: impl Into<PathBuf>) -> Self {
        Self::Path(path.into())
    }
}

/// The most concurrent requests a run may have.
pub const MAX_CONCURRENCY: usize = 256;

/// The concurrency a run has unless told otherwise: a ceiling, not a target. Under a rate limit
/// the client keeps only as many requests in flight as its pace needs at the answers' latency
/// (see `happyrobot`'s `RateStats::in_flight_limit`); 32 carry 100 requests a second behind
/// answers that take 300 ms, where the earlier default of 4 carried 13.
pub const DEFAULT_CONCURRENCY: usize = 32;

/// The options every job shares.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) journal: JournalLocation,
    pub(crate) concurrency: usize,
    pub(crate) reconcile: bool,
    pub(crate) fsync: bool,
    pub(crate) stop: CancellationToken,
    pub(crate) state_dir: Option<PathBuf>,
    pub(crate) results: Option<PathBuf>,
    pub(crate) forget_lost_journal: bool,
    pub(crate) option_names: Option<fn(crate::BulkOption) -> Option<&'static str>>,
}

impl Settings {
    fn new(journal: JournalLocation) -> Self {
        Self {
            journal,
            concurrency: DEFAULT_CONCURRENCY,
            reconcile: true,
            fsync: false,
            stop: CancellationToken::new(),
            state_dir: locate::state_dir_from_env(),
            results: None,
            forget_lost_journal: false,
            option_names: None,
        }
    }
}

/// A bulk job through a client, journaled: [`Import`](crate::Import) (`Bulk<ImportJob>`) or
/// [`Undo`](crate::Undo) (`Bulk<UndoJob>`). The options every job shares are set here, once for
/// all of them; a job's own options are on its alias ([`Import::retry_unknown`](crate::Import),
/// for one).
#[derive(Debug, Clone)]
pub struct Bulk<J> {
    pub(crate) client: Client,
    pub(crate) settings: Settings,
    pub(crate) job: J,
}

impl<J> Bulk<J> {
    /// A run of `job` through `client`, journaled at `journal`.
    pub(crate) fn with_job(client: Client, journal: JournalLocation, job: J) -> Self {
        Self {
            client,
            settings: Settings::new(journal),
            job,
        }
    }

    /// How many requests (adds, deletes) are in flight at once, at most; default
    /// [`DEFAULT_CONCURRENCY`] (at most [`MAX_CONCURRENCY`]). When the server limits the rate, the
    /// client's rate control paces them and keeps only as many in flight as the pace needs at
    /// the answers' latency.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.settings.concurrency = concurrency;
        self
    }

    /// Cancelling `token` stops the run: no new line is sent, lines waiting for their turn give
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

    /// Writes a results file when the run ends, and when the input's check refuses it (every
    /// input line with its row, status, note ID and error: [`crate::results::RESULT_COLUMNS`]): a
    /// workbook when `path` ends in `.xlsx`, else CSV in UTF-8 with a byte-order mark, every cell
    /// a spreadsheet could run made inert; see [`crate::results`]
    /// ([`crate::results::default_path`] names one beside the input).
    pub fn results_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.results = Some(path.into());
        self
    }

    /// Starts a new journal when the state directory names one for this input that is gone;
    /// default `false`: such a run is refused before anything is sent, since the notes the lost
    /// journal recorded as added cannot be told apart from new ones and every line would be sent
    /// again. Turn it on only when sure those notes are not on their calls (or wanted twice);
    /// better, restore the journal, or give it ([`JournalLocation::Path`]).
    pub fn forget_lost_journal(mut self, on: bool) -> Self {
        self.settings.forget_lost_journal = on;
        self
    }

    /// How the results file's errors name this library's options: a program built on it gives
    /// its own names (a command line its flags), as [`crate::BulkOption::rename`] does for its
    /// messages. Default: the library's names (`ReadOptions::delimiter`).
    pub fn option_names(mut self, names: fn(crate::BulkOption) -> Option<&'static str>) -> Self {
        self.settings.option_names = Some(names);
        self
    }

    /// The journal this run would use for `source`.
    pub async fn journal_path(&self, source: &Source) -> Result<PathBuf, BulkError> {
        Ok(prepare::prepare(&self.client, source, &self.settings)
            .await?
            .journal)
    }
}

/// What the pass hands back to the session.
struct Passed {
    tally: Tally,
    rate_limited: u64,
}

impl<J> Bulk<J> {
    /// The session of this run.
    pub(crate) fn session(&self) -> Session<'_, J> {
        Session { bulk: self }
    }
}

/// One run of a job: the runner every job shares.
pub(crate) struct Session<'a, J> {
    bulk: &'a Bulk<J>,
}

impl<J> std::ops::Deref for Session<'_, J> {
    type Target = Bulk<J>;

    fn deref(&self) -> &Bulk<J> {
        self.bulk
    }
}

impl<J: Job> Session<'_, J> {
    /// Checks the input and asks the job whether it may run, against the journal as it is now.
    /// With `results`, an input refused for its lines still gets its results file (each invalid
    /// line with its error), written before the error is returned.
    async fn checked(&self, source: &Source, results: bool) -> Result<(Prepared, Plan), BulkError> {
        let prepared = prepare::prepare(&self.client, source, &self.settings).await?;
        let (plan, state) = prepare::validate(source, &prepared, Keep::default()).await?;
        match self.job.check(&plan, &state, &prepared, source) {
            Ok(()) => Ok((prepared, plan)),
            Err(error) if results && error.kind() == crate::BulkErrorKind::InvalidInput => {
                Err(self.refused_results(source, &prepared, &plan, error).await)
            }
            Err(error) => Err(error),
        }
    }

    /// The results file of an input refused for its lines, if one is asked for: `error`, which
    /// then says where the file is (or why it could not be written).
    async fn refused_results(
        &self,
        source: &Source,
        prepared: &Prepared,
        plan: &Plan,
        error: BulkError,
    ) -> BulkError {
        let Some(path) = &self.settings.results else {
            return error;
        };
        let spec = self.results_spec(true);
        match crate::results::write(source, prepared, plan, path, spec, HashMap::new()).await {
            Ok(()) => error.also(&format!(
                "each line's error is in the results file {}",
                path.display()
            )),
            Err(failed) => error.also(&failed.to_string()),
        }
    }

    /// How this job's results file is written (`refused`: for an input its check refused).
    fn results_spec(&self, refused: bool) -> crate::results::Spec {
        crate::results::Spec {
            kind: self.job.results(),
            refused,
            duplicates_allowed: self.job.duplicates_allowed(),
            option_names: self.settings.option_names,
        }
    }

    /// A dry run: what the run would do, sending nothing and writing nothing.
    pub(crate) async fn dry_run(&self, source: &Source) -> Result<J::Plan, BulkError> {
        let (_, plan) = self.checked(source, false).await?;
        Ok(self.job.dry_run(plan))
    }

    /// The session: `Err` only before anything is sent; once requests went out, the report says
    /// what became of every line.
    pub(crate) async fn run(
        &self,
        source: Source,
        mut on_event: impl FnMut(&Event) + Send,
    ) -> Result<J::Report, BulkError> {
        let started = Instant::now();
        let (prepared, plan) = self.checked(&source, true).await?;
        let opened = prepare::open(&prepared, &self.settings, self.job.keep())?;
        // Asked again under the locks: another process (a sync of the file, say) may have run
        // since the first check.
        self.job.check(&plan, &opened.state, &prepared, &source)?;
        for notice in prepare::notices(&prepared, &opened.state, &plan) {
            on_event(&notice);
        }
        on_event(&Event::Started {
            lines: self.job.started_lines(&plan),
        });
        prepare::write_run_entry(&opened, &source, &prepared, self.job.run_reason())?;
        // Records carry their journal's path: the index serves only files.
        if source.path.is_some() {
            locate::remember(
                &prepared.content,
                &prepared.destination,
                &prepared.journal,
                self.settings.state_dir.as_deref(),
            );
        }
        // The content's lock is held until the results file is written.
        let prepare::Opened {
            writer,
            state,
            content_lock: _lock,
        } = opened;
        let mut passed = self
            .pass(&source, &plan, (writer, state), &mut on_event)
            .await;
        let doubts = std::mem::take(&mut passed.tally.doubts);
        let report = self.job.report(End {
            source: &source,
            journal: &prepared.journal,
            plan: &plan,
            tally: passed.tally,
            elapsed: started.elapsed(),
            rate_limited: passed.rate_limited,
            learned_rate: self.client.rate_stats().learned,
        });
        if let Some(path) = &self.settings.results {
            let spec = self.results_spec(false);
            crate::results::write(&source, &prepared, &plan, path, spec, doubts).await?;
        }
        Ok(report)
    }

    /// The pass: every line of the input started as the job says, every outcome counted and
    /// handed to `on_event`, then the jobs in flight drained, the copies of lines sent again
    /// looked for, the journal synced and the stop reason told.
    async fn pass(
        &self,
        source: &Source,
        plan: &Plan,
        (writer, state): (JournalWriter, crate::journal::JournalState),
        on_event: &mut (impl FnMut(&Event) + Send),
    ) -> Passed {
        let throttled_before = self.client.rate_stats().throttled;
        let work = prepare::work(
            &self.client,
            writer,
            &self.settings,
            self.job.retry_unknown(),
        );
        let lines = Lines {
            state: &state,
            reconcile: self.settings.reconcile,
            timeout: self.client.timeout(),
        };
        let mut tally = Tally::default();
        let mut later = Later::default();
        let mut read = 0u64;
        let mut occurrences = Occurrences::new(&plan.repeated);
        let mut cut = driver::run(
            driver::Feed::Input(&source.input, &source.options),
            (prepare::max_jobs(&self.settings), &work.sends),
            &work.stop,
            |mut record| {
                read += 1;
                occurrences.key(&mut record);
                let step = self.job.step(&lines, &record);
                job::launch(step, &work, record)
            },
            |done| absorb(&mut tally, &work, done, on_event, &mut later),
        )
        .await;
        if cut.is_none() && self.job.removed_lines() && !plan.orphan_keys.is_empty() {
            cut = driver::run(
                driver::Feed::Lines(removed_lines(&work, plan, &mut tally, on_event)),
                (prepare::max_jobs(&self.settings), &work.sends),
                &work.stop,
                |record| job::launch(self.job.step(&lines, &record), &work, record),
                |done| absorb(&mut tally, &work, done, on_event, &mut later),
            )
            .await;
        }
        let gone = line::settle_gone_calls(&work, !state.added_by_other_key, later.gone).await;
        for done in gone {
            absorb(&mut tally, &work, Ok(done), on_event, &mut Later::default());
        }
        verify_resent(&work, later.resent, &mut tally, on_event).await;
        self.finish(
            &mut tally,
            &work,
            cut,
            plan.lines.saturating_sub(read),
            source,
        );
        Passed {
            tally,
            rate_limited: self.client.rate_stats().throttled - throttled_before,
        }
    }

    /// Ends the pass: syncs the journal, and says why the run stopped, if it did (`unread` valid
    /// lines the pass never reached).
    fn finish(
        &self,
        tally: &mut Tally,
        work: &Work,
        cut: Option<Cut>,
        unread: u64,
        source: &Source,
    ) {
        if let Err(e) = work.journal.sync() {
            tally.stop(Stop::Journal(format!(
                "cannot write the journal {}: {e}",
                work.journal.path().display()
            )));
        }
        let changed = |what: String| Stop::InputChanged(self.job.changed(&source.name, &what));
        match cut {
            Some(Cut::Stopped) => tally.stop(Stop::Cancelled),
            Some(Cut::Changed(what)) => tally.stop(changed(what)),
            Some(Cut::Unreadable(e)) => tally.stop(changed(format!("it could not be read: {e}"))),
            // Read to its end, with lines left over: the input got shorter while it was read.
            None if unread > 0 => tally.stop(changed(format!("it ended {unread} line(s) early"))),
            None => {}
        }
    }
}

/// The lines the journal records that the input no longer has, rebuilt from the journal (their
/// call and key), for a job that acts on them too. A line whose call the journal does not say
/// (or that cannot be read) is told as failed.
fn removed_lines(
    work: &Work,
    plan: &Plan,
    tally: &mut Tally,
    on_event: &mut impl FnMut(&Event),
) -> Vec<Record> {
    let path = work.journal.path();
    let keys = plan.orphan_keys.iter().copied().collect();
    let calls = crate::journal::calls_of(path, &keys).unwrap_or_else(|e| {
        tracing::warn!(error = %e, journal = %path.display(), "cannot read the journal again");
        Default::default()
    });
    let mut records = Vec::new();
    for key in &plan.orphan_keys {
        let found = calls
            .get(key)
            .and_then(|(call, line)| Some((call.parse().ok()?, *line)));
        match found {
            Some((call, line)) => records.push(Record::removed(line, call, *key)),
            None => {
                let event = Event::Line(crate::report::LineEvent {
                    line: 0,
                    call_id: String::new(),
                    flagged: false,
                    outcome: crate::report::LineOutcome::Failed(crate::report::Failure {
                        status: None,
                        kind: crate::report::FailureKind::Local,
                        reason: format!(
                            "a line the input no longer has (fingerprint {:016x}): the journal {} \
                             does not say its call; look for its note by hand",
                            key.0,
                            path.display()
                        ),
                    }),
                });
                tally.count(&event);
                on_event(&event);
            }
        }
    }
    records
}

/// What the pass settles once every line has had its turn.
#[derive(Default)]
struct Later {
    /// Lines sent again, with every ID they went under (see [`verify_resent`]).
    resent: Vec<(Record, Vec<String>)>,
    /// An undo's deletes whose calls the API says do not exist (see
    /// [`line::settle_gone_calls`]).
    gone: Vec<line::CallGone>,
}

/// Counts a job's events, hands them to the caller, and notes why the run must stop.
fn absorb(
    tally: &mut Tally,
    work: &Work,
    done: Result<Done, String>,
    on_event: &mut impl FnMut(&Event),
    later: &mut Later,
) {
    let done = done.unwrap_or_else(|message| Done {
        stop: Some(Stop::Worker(message)),
        ..Done::default()
    });
    for event in &done.events {
        tally.count(event);
        on_event(event);
    }
    later.resent.extend(done.resent);
    later.gone.extend(done.call_gone);
    tally.doubts.extend(done.doubts);
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
