//! A sheet as the desired state: [`Sync`] makes the notes on the calls match the rows of a file
//! (or of records), row by row, found again by a key across edits. A sync first makes a
//! [`SyncPlan`] with reads only (each call the input names, once), and then applies exactly that
//! plan, journaled, so that every add is sent once through unknown outcomes, kills and reruns.
//!
//! - [`rows`]: the input's rows with their keys, checked whole before anything else.
//! - [`journal`]: what earlier syncs did, per row key: the note each owns, and each run's changes.
//! - [`plan`]: the reads and the decision per row.
//! - [`apply`]: the writes of a plan, and of an undo.

mod adopt;
mod apply;
mod journal;
mod plan;
mod results;
mod rows;
mod undo;

use std::path::{Path, PathBuf};

use happyrobot::Client;

use crate::session::{Bulk, JournalLocation};
use crate::{BulkError, Event, Source, Stop};

pub use self::plan::{NoteText, PlannedRow, SyncAction, SyncCounts, SyncPlan};

/// A sync: the notes on the calls made to match an input, with a plan first.
///
/// ```no_run
/// use happyrobot::Client;
/// use happyrobot_bulk::{JournalLocation, Source, Sync};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let sync = Sync::new(Client::from_env()?, JournalLocation::BesideInput).prune(true);
/// let source = Source::file("review.xlsx");
/// let plan = sync.plan(&source).await?;              // reads only
/// println!("{} to add, {} to update", plan.counts.add, plan.counts.update);
/// let report = sync.apply(&source, plan, |_| {}).await?; // exactly what the plan says
/// println!("added {}, updated {}", report.added, report.updated);
/// # Ok(()) }
/// ```
pub type Sync = Bulk<SyncJob>;

/// What a [`Sync`] does, beyond what every bulk job shares.
#[derive(Debug, Clone, Default)]
pub struct SyncJob {
    key_column: Option<String>,
    prune: bool,
    adopt_existing: bool,
}

impl Bulk<SyncJob> {
    /// A sync through `client`, its journal at `journal`: beside a file input
    /// (`<FILE>.sync.journal`, found again after any edit of the file), or at a path (records,
    /// or standard input).
    pub fn new(client: Client, journal: JournalLocation) -> Self {
        Bulk::with_job(client, journal, SyncJob::default())
    }

    /// The column whose value identifies a row across edits (an external ID). Without it the
    /// call ID is the row's key, which needs each call at most once in the input.
    pub fn key_column(mut self, name: impl Into<String>) -> Self {
        self.job.key_column = Some(name.into());
        self
    }

    /// Whether the notes of rows removed from the input are deleted; default `false` (they are
    /// kept, and listed as kept).
    pub fn prune(mut self, on: bool) -> Self {
        self.job.prune = on;
        self
    }

    /// On a first sync (no journal yet), whether a note on a row's call with the row's text and
    /// flag, which no sync made, is taken over as the row's note (adopted) instead of refusing
    /// the run; default `false`. Adopted notes are then updated and pruned like the sync's own.
    pub fn adopt_existing(mut self, on: bool) -> Self {
        self.job.adopt_existing = on;
        self
    }

    /// What a sync of `source` would do now: reads each call the input names once (and, with
    /// [`prune`](Self::prune), the calls of rows removed since, and the calls of earlier adds in
    /// doubt of rows that moved or were removed); sends no `POST`, `PATCH` or `DELETE` and
    /// writes nothing. Invalid rows, or rows that share a key, refuse it.
    ///
    /// When an earlier run's update or delete has an unknown outcome (a timeout, a gateway's
    /// `504`, a killed run), or its add of a row that has since moved to another call or left
    /// the input, it first waits until that change can no longer land
    /// ([`happyrobot::Client::late_apply_until`]; a stop ends the wait): read before, a note
    /// would show its old text, and the late change would undo the one this sync makes (or a
    /// late add leave a note no row owns). [`plan_waits`](Self::plan_waits) says how long.
    pub async fn plan(&self, source: &Source) -> Result<SyncPlan, BulkError> {
        let journal = self.sync_journal(source)?;
        plan::make(self, source, journal).await
    }

    /// How long [`undo_plan`](Self::undo_plan) would wait now, for a change whose outcome is
    /// unknown; `None` when it would not wait.
    pub fn undo_plan_waits(
        &self,
        source: &Source,
    ) -> Result<Option<std::time::Duration>, BulkError> {
        let journal = self.sync_journal(source)?;
        let state = journal::SyncState::load(&journal)?;
        Ok(plan::left(undo::waits(&state, &self.client)))
    }

    /// How long [`plan`](Self::plan) would wait now before reading the calls, for an earlier
    /// run's change whose outcome is unknown; `None` when it would not wait. For a program to say
    /// why a plan takes long.
    pub async fn plan_waits(
        &self,
        source: &Source,
    ) -> Result<Option<std::time::Duration>, BulkError> {
        let journal = self.sync_journal(source)?;
        let rows = rows::read(source, self.job.key_column.as_deref()).await?;
        let state = journal::SyncState::load(&journal)?;
        let stays =
            |row: &str, call: &str| rows.iter().any(|r| r.key == row && r.call.as_str() == call);
        Ok(plan::left(state.doubts_settle_at(&self.client, stays)))
    }

    /// Applies `plan` (made by [`plan`](Self::plan) for `source`): exactly its actions, each
    /// journaled before it is sent. Refused, with nothing sent, when the journal changed since
    /// the plan (another run applied meanwhile), or while another run holds it. `Err` only
    /// before anything is sent; once requests went out, the report says what became of each row.
    pub async fn apply(
        &self,
        source: &Source,
        plan: SyncPlan,
        on_event: impl FnMut(&Event) + Send,
    ) -> Result<SyncReport, BulkError> {
        apply::apply(self, source, plan, on_event).await
    }

    /// Plans and applies: [`plan`](Self::plan) then [`apply`](Self::apply).
    pub async fn run(
        &self,
        source: &Source,
        on_event: impl FnMut(&Event) + Send,
    ) -> Result<SyncReport, BulkError> {
        let plan = self.plan(source).await?;
        self.apply(source, plan, on_event).await
    }

    /// What [`undo`](Self::undo) would change back, as a plan: the last sync run's changes,
    /// reversed (an added note deleted, an update's old text and flag put back, a pruned note
    /// added again). The last run is the last that changed something or may have: one killed
    /// (or that ended unknown) with changes in doubt is undone, not the run before it; each
    /// change in doubt is undone where it was made (a delete of an add that never landed finds
    /// it gone, an update puts back the text the note held, a note whose delete never landed is
    /// found and not added again). Reads no call; when a change has an unknown outcome, waits
    /// first until it can no longer land, as [`plan`](Self::plan) does
    /// ([`undo_plan_waits`](Self::undo_plan_waits) says how long).
    pub async fn undo_plan(&self, source: &Source) -> Result<SyncPlan, BulkError> {
        let journal = self.sync_journal(source)?;
        undo::plan(self, source, journal).await
    }

    /// Changes back everything the last sync run changed (see [`undo_plan`](Self::undo_plan)).
    /// Journaled: a second undo changes nothing.
    pub async fn undo(
        &self,
        source: &Source,
        on_event: impl FnMut(&Event) + Send,
    ) -> Result<SyncReport, BulkError> {
        let plan = self.undo_plan(source).await?;
        apply::apply(self, source, plan, on_event).await
    }

    /// The sync journal of `source`: the path given (or records were built with), else
    /// `<FILE>.sync.journal` beside the file.
    fn sync_journal(&self, source: &Source) -> Result<PathBuf, BulkError> {
        if let Some(own) = crate::session::records_journal(&self.settings.journal, source)? {
            return Ok(own);
        }
        match (&self.settings.journal, source.path()) {
            (JournalLocation::Path(path), _) => Ok(path.clone()),
            (JournalLocation::BesideInput, Some(file)) => Ok(beside(file)),
            (JournalLocation::BesideInput, None) => Err(BulkError::usage(
                "records built in memory have no file for the sync journal to sit beside: give \
                 the journal's path (Source::records_with_journal, or JournalLocation::Path)",
            )),
        }
    }
}

/// A refusal when `source` is a file a sync of `destination` journaled beside it: an import of it
/// would add its notes a second time (its journal knows none of them).
pub(crate) fn refuse_synced(
    source: &Source,
    destination: &crate::journal::Destination,
) -> Result<(), BulkError> {
    let Some(file) = source.path() else {
        return Ok(());
    };
    let journal = beside(file);
    // No journal there: an empty state.
    let state = journal::SyncState::load(&journal)?;
    if state.runs.is_empty() || state.base_url.as_deref() != Some(destination.base_url.as_str()) {
        return Ok(());
    }
    Err(BulkError::usage(format!(
        "{} is synced to this API (its sync journal {} records {} run(s)): an import would add \
         its notes a second time; nothing was sent. Sync it again to change its notes; to add \
         them once more all the same, move that journal away first",
        file.display(),
        journal.display(),
        state.runs.len()
    )))
}

/// `<FILE>.sync.journal`.
fn beside(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sync.journal");
    PathBuf::from(name)
}

/// What became of each row of a sync (or an undo), and the counts.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SyncReport {
    /// Notes added.
    pub added: u64,
    /// Notes updated in place.
    pub updated: u64,
    /// Notes deleted (pruned, moved away from a call, copies, or undone adds).
    pub deleted: u64,
    /// Rows whose note already matched.
    pub unchanged: u64,
    /// Rows removed from the input whose notes were kept (no prune).
    pub kept: u64,
    /// Changes that certainly did not happen.
    pub failed: u64,
    /// Changes whose outcome is unknown (a re-run settles them, reading the calls first).
    pub unknown: u64,
    /// Changes found made before this run: a note to delete already gone
    /// (deleted in the app, gone with its call, or an add in doubt that never landed), a note
    /// to put back still there (its delete in doubt never landed). Counted here, not as added
    /// or deleted.
    pub already: u64,
    /// Changes not made because the run stopped first.
    pub not_sent: u64,
    /// Every planned row with what became of it, in the plan's order.
    pub rows: Vec<SyncedRow>,
    /// Why the run stopped early, if it did.
    pub stopped: Option<Stop>,
    /// The journal.
    pub journal: PathBuf,
    /// Whether this was an undo.
    pub undo: bool,
    /// The results file could not be written (the run itself went as the rows say).
    pub results_error: Option<String>,
}

impl SyncReport {
    /// The worst failure among the rows, for an exit code.
    pub fn worst_failure(&self) -> Option<crate::FailureKind> {
        self.rows
            .iter()
            .filter_map(|row| match &row.status {
                RowStatus::Failed(failure) => Some(failure.kind),
                _ => None,
            })
            .max()
    }

    /// Whether the API refused the key.
    pub fn unauthorized(&self) -> bool {
        self.rows.iter().any(|row| {
            matches!(&row.status, RowStatus::Failed(f) if f.kind == crate::FailureKind::Unauthorized)
        })
    }
}

/// One planned row and its outcome.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SyncedRow {
    /// The row as planned.
    pub planned: PlannedRow,
    /// What became of it.
    pub status: RowStatus,
    /// The note the change ended on: for an add, the ID it was added under (which an add sent
    /// again after a certain absence changes); else the planned note's.
    pub note_id: Option<String>,
    /// Done, and found so: the change was made before this run (see [`SyncReport::already`]).
    pub already: bool,
    /// Planned as an undo's add back, done as an update: the note was never deleted, and its
    /// text was put back in place (counted in [`SyncReport::updated`]).
    pub updated_instead: bool,
}

/// What became of one planned change.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RowStatus {
    /// Done (or nothing was needed).
    Done,
    /// Certainly not done.
    Failed(crate::Failure),
    /// It may have been done; a re-run finds out.
    Unknown(String),
    /// Not sent: the run stopped first.
    NotSent,
}
