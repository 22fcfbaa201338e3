//! [`Undo`]: deletes exactly the notes an import of a [`Source`] added to this API (by note ID,
//! copies included), and nothing else. It is journaled like the import: stopped or killed, run it
//! again to finish; run once more when done, it deletes nothing. Lines whose add outcome is unknown
//! are looked up on their calls first (found: deleted too; absent: nothing to delete), never
//! guessed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use happyrobot::{CancellationToken, Client};

use crate::driver::{self, Cut, Start};
use crate::journal::{JournalState, Keep, LineState};
use crate::line::{self, Done, Work};
use crate::plan::Plan;
use crate::record::{Occurrences, Record};
use crate::report::{Event, LineOutcome, Stop, Tally, UndoReport};
use crate::run::{self, JournalLocation, Prepared, Settings};
use crate::{BulkError, Source};

/// Deletes the notes an import of a [`Source`] added, and nothing else.
#[derive(Debug, Clone)]
pub struct Undo {
    client: Client,
    settings: Settings,
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
}

impl Undo {
    /// An undo through `client` of the import journaled at `journal`.
    pub fn new(client: Client, journal: JournalLocation) -> Self {
        Self {
            client,
            settings: Settings::new(journal),
        }
    }

    /// How many deletes are in flight at once; default 4.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.settings.concurrency = concurrency;
        self
    }

    /// Cancelling `token` stops the undo (see [`Import::stop`](crate::Import::stop)).
    pub fn stop(mut self, token: CancellationToken) -> Self {
        self.settings.stop = token;
        self
    }

    /// Whether lines whose add outcome is unknown are looked up first; default `true`. Without,
    /// they are listed as unknown.
    pub fn reconcile(mut self, on: bool) -> Self {
        self.settings.reconcile = on;
        self
    }

    /// Makes the journal durable against power loss too.
    pub fn fsync(mut self, on: bool) -> Self {
        self.settings.fsync = on;
        self
    }

    /// Where the index of journals and the content locks are kept (see
    /// [`Import::state_dir`](crate::Import::state_dir)).
    pub fn state_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.settings.state_dir = dir;
        self
    }

    /// Writes a results file when the undo ends.
    pub fn results_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.results = Some(path.into());
        self
    }

    /// Says what the undo would do, sending nothing. Refused as [`run`](Self::run) is when the
    /// journal records no import of this input to this API.
    pub async fn plan(&self, source: &Source) -> Result<UndoPlan, BulkError> {
        let prepared = run::prepare(&self.client, source, &self.settings).await?;
        let (plan, state) = run::validate(source, &prepared, Keep::default()).await?;
        run::refuse_invalid(&plan, &source.name, true)?;
        check(&state, &prepared, source)?;
        Ok(UndoPlan {
            to_delete: plan.done,
            already_deleted: plan.undone_before,
            unknown: plan.unknown_before + plan.in_doubt,
        })
    }

    /// Runs the undo; `on_event` hears of each line as its outcome is known. `Err` only before
    /// anything is sent.
    pub async fn run(
        &self,
        source: Source,
        mut on_event: impl FnMut(&Event) + Send,
    ) -> Result<UndoReport, BulkError> {
        let started = Instant::now();
        let prepared = run::prepare(&self.client, &source, &self.settings).await?;
        let (plan, state) = run::validate(&source, &prepared, Keep::default()).await?;
        // An undo reads an input that was imported: identical lines in it were allowed then.
        run::refuse_invalid(&plan, &source.name, true)?;
        check(&state, &prepared, &source)?;
        drop(state);
        let keep = Keep {
            done_notes: true,
            reasons: false,
        };
        let opened = run::open(&prepared, &self.settings, keep)?;
        run::write_run_entry(&opened, &source, &prepared, Some("undo"))?;
        on_event(&Event::Started {
            lines: plan.done + plan.unknown_before + plan.in_doubt + plan.undone_before,
        });
        let state = Arc::new(opened.state);
        let work = run::work(&self.client, opened.writer, &self.settings, false);
        let mut tally = Tally::default();
        let mut reap = |done: Result<Done, String>| {
            let done = done.unwrap_or_else(|message| Done {
                stop: Some(Stop::Worker(message)),
                ..Done::default()
            });
            for event in &done.events {
                tally.count(event);
                on_event(event);
            }
            if let Some(stop) = done.stop {
                work.stop.cancel();
                tally.stop(stop);
            }
        };
        let mut occurrences = Occurrences::new(&plan.repeated);
        let lines = Lines {
            work: &work,
            state: &state,
            reconcile: self.settings.reconcile,
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
        if let Err(e) = work.journal.sync() {
            tally.stop(Stop::Journal(format!("cannot write the journal: {e}")));
        }
        match cut {
            Some(Cut::Stopped) => tally.stop(Stop::Cancelled),
            Some(Cut::Changed(what)) => tally.stop(Stop::InputChanged(what)),
            Some(Cut::Unreadable(e)) => tally.stop(Stop::InputChanged(e.to_string())),
            None => {}
        }
        let report = report(&source, &prepared, &plan, tally, started);
        drop(work);
        if let Some(path) = &self.settings.results {
            crate::results::write_undo(&source, &prepared, &plan, path).await?;
        }
        Ok(report)
    }
}

fn report(
    source: &Source,
    prepared: &Prepared,
    plan: &Plan,
    tally: Tally,
    started: Instant,
) -> UndoReport {
    let to_delete = plan.done + tally.reconciled.found;
    UndoReport {
        file: source.name.clone(),
        journal: run::shown(&prepared.journal),
        undo: true,
        to_delete: to_delete + tally.already_deleted,
        deleted: tally.deleted,
        already_gone: tally.already_gone,
        skipped: tally.already_deleted,
        not_added: tally.not_added,
        failed: tally.failed,
        unknown: tally.unknown,
        not_deleted: tally.not_sent,
        reconciled: crate::report::Reconciled {
            sent_again: 0,
            ..tally.reconciled
        },
        copies_removed: tally.copies_removed,
        failed_lines: tally.failed_lines,
        unknown_lines: tally.unknown_lines,
        stopped: tally.stopped,
        elapsed: started.elapsed(),
    }
}

/// Refuses an undo whose journal does not record an import of this very content to this API:
/// nothing is sent.
fn check(state: &JournalState, prepared: &Prepared, source: &Source) -> Result<(), BulkError> {
    if state.contents.contains(&prepared.content) {
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
             added: give the journal's undamaged copy with --journal PATH, or delete the notes \
             with `happyrobot notes delete`"
        )
    } else if state.contents.is_empty() && !state.other_destinations.is_empty() {
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
            "the journal {journal} records imports of another file (other content) to {api}, not \
             of {file} as it is now; nothing was sent. Give the file exactly as it was imported, \
             or that file's journal with --journal PATH"
        )
    };
    Err(BulkError::usage(message))
}

/// How each line of an undo starts.
struct Lines<'a> {
    work: &'a Arc<Work>,
    state: &'a Arc<JournalState>,
    reconcile: bool,
    timeout: std::time::Duration,
}

type Job = std::pin::Pin<Box<dyn std::future::Future<Output = Done> + Send>>;
type SendJob = Box<dyn FnOnce(tokio::sync::OwnedSemaphorePermit) -> Job + Send>;

impl Lines<'_> {
    fn start(&self, record: Record) -> Start<Done, Job, SendJob> {
        let key = record.key();
        let standing = self.state.standing(key);
        let work = Arc::clone(self.work);
        let unknown =
            standing.in_doubt || matches!(standing.state, Some(LineState::Unknown { .. }));
        if unknown {
            let candidates = self.state.candidates(key);
            let pending = line::pending_from_journal(
                &record,
                &candidates,
                self.state.attempt(key),
                self.timeout,
            );
            return match pending {
                Some(pending) if self.reconcile => Start::Job(Box::pin(async move {
                    line::settle_for_undo(&work, &record, pending).await
                })),
                _ => Start::Now(Done::line(
                    &record,
                    line::unknown(
                        if self.reconcile {
                            "its add had an unknown outcome and the journal has no note ID to look it up by"
                                .to_string()
                        } else {
                            "its add had an unknown outcome (not looked up: reconciling is off)"
                                .to_string()
                        },
                        true,
                        false,
                    ),
                )),
            };
        }
        match standing.state {
            Some(LineState::Done) => {
                let Some(id) = self.state.done_id(key) else {
                    return Start::Now(Done::line(
                        &record,
                        LineOutcome::Failed(crate::report::Failure {
                            status: None,
                            kind: crate::report::FailureKind::Local,
                            reason: "the journal does not say which note this line was added as; \
                                     check its call"
                                .to_string(),
                        }),
                    ));
                };
                // Sent under several IDs: copies may be on the call too, and go with it.
                let copies: Vec<String> = if self.state.sends(key) > 1 {
                    self.state
                        .candidates(key)
                        .into_iter()
                        .filter(|c| *c != id)
                        .collect()
                } else {
                    Vec::new()
                };
                if copies.is_empty() {
                    return Start::Send(Box::new(move |permit| {
                        Box::pin(async move {
                            line::delete(&work, &record, (&id, &[]), false, Some(permit)).await
                        })
                    }));
                }
                Start::Job(Box::pin(async move {
                    let copies = present(&work, &record, copies).await;
                    line::delete(&work, &record, (&id, &copies), false, None).await
                }))
            }
            Some(LineState::Undone) => Start::Now(Done::line(&record, LineOutcome::AlreadyDeleted)),
            // Not added: nothing to delete, nothing to count.
            _ => Start::Now(Done::default()),
        }
    }
}

/// Of the candidate IDs `copies`, those on the call now.
async fn present(work: &Work, record: &Record, copies: Vec<String>) -> Vec<String> {
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
