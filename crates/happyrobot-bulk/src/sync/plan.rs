//! The plan of a sync: the calls the input names read once each (reads only), and each row
//! decided against what its call holds and what the journal says the row owns.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use happyrobot::types::Note;
use happyrobot::{CallId, Control};
use serde::Serialize;
use tokio::sync::Semaphore;

use super::journal::{Owned, SyncState, Text};
use super::rows::{self, Row};
use crate::journal::Destination;
use crate::{BulkError, Failure, FailureKind, Source};

/// What a sync does to one row (or to the note of a row removed from the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SyncAction {
    /// The row has no note on its call: one is added.
    Add,
    /// The row's note differs in text or flag: it is changed in place (the same note ID).
    Update,
    /// The row's note already matches: nothing is sent.
    Unchanged,
    /// A note the sync did not make, with the row's text, becomes the row's (nothing is sent).
    Adopt,
    /// The row was removed from the input: its note stays (no prune).
    Keep,
    /// The note is deleted: its row was removed (prune), moved to another call, or it is a copy.
    Delete,
    /// Nothing can be done: the row's call could not be read (it does not exist, say).
    Fail,
}

impl SyncAction {
    /// The action's name, as reports and JSON write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Update => "update",
            Self::Unchanged => "unchanged",
            Self::Adopt => "adopt",
            Self::Keep => "keep",
            Self::Delete => "delete",
            Self::Fail => "fail",
        }
    }

    /// Whether it sends a request.
    pub fn writes(self) -> bool {
        matches!(self, Self::Add | Self::Update | Self::Delete)
    }
}

/// A note's text and flag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NoteText {
    /// The text.
    pub content: String,
    /// The flag (`None`: the row leaves it as it is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flagged: Option<bool>,
}

impl From<Text> for NoteText {
    fn from(text: Text) -> Self {
        Self {
            content: text.content,
            flagged: text.flagged,
        }
    }
}

impl From<&NoteText> for Text {
    fn from(text: &NoteText) -> Self {
        Self {
            content: text.content.clone(),
            flagged: text.flagged,
        }
    }
}

/// One decision of a plan.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PlannedRow {
    /// The input line (or sheet row); `None` for a row removed from the input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// The row's key.
    pub key: String,
    /// The call.
    pub call_id: String,
    /// What is done.
    pub action: SyncAction,
    /// The note: the one changed, deleted or kept, or the ID an add sends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note_id: Option<String>,
    /// The note as the call holds it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<NoteText>,
    /// The note as it will be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<NoteText>,
    /// Why, when it is not plain from the action (changed or deleted in the app, moved, a copy,
    /// the reason a row fails).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The add's counter (which of the row's note IDs it sends).
    #[serde(skip)]
    pub(crate) k: u32,
    /// For [`SyncAction::Fail`], the failure.
    #[serde(skip)]
    pub(crate) failure: Option<Failure>,
    /// For an add, the earlier adds of the row whose outcome is unknown: looked up (and waited
    /// for, as a late apply may still come) before anything is sent.
    #[serde(skip)]
    pub(crate) pending: Option<super::journal::Pending>,
}

impl PlannedRow {
    fn new(row: &Row, action: SyncAction) -> Self {
        Self {
            line: Some(row.line),
            key: row.key.clone(),
            call_id: row.call.to_string(),
            action,
            note_id: None,
            old: None,
            new: Some(NoteText {
                content: row.content.clone(),
                flagged: row.flagged,
            }),
            reason: None,
            k: 0,
            failure: None,
            pending: None,
        }
    }
}

/// How many of each action a plan holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SyncCounts {
    /// Notes to add.
    pub add: u64,
    /// Notes to update in place.
    pub update: u64,
    /// Rows already in step.
    pub unchanged: u64,
    /// Notes to adopt.
    pub adopt: u64,
    /// Notes of removed rows kept.
    pub keep: u64,
    /// Notes to delete.
    pub delete: u64,
    /// Rows that cannot be synced.
    pub fail: u64,
}

/// What a sync would do, decided from reads alone: a value a service can show, approve, and
/// hand to [`Sync::apply`](crate::Sync::apply).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SyncPlan {
    /// Every decision: the input's rows in order, then the notes of removed rows.
    pub rows: Vec<PlannedRow>,
    /// The counts of [`rows`](Self::rows).
    pub counts: SyncCounts,
    /// How many calls were read to make it.
    pub calls_read: u64,
    /// The journal.
    pub journal: PathBuf,
    /// Whether it is an undo's plan.
    pub undo: bool,
    /// How many entries the journal held when the plan was made.
    pub(crate) journal_entries: u64,
    /// The run an undo reverses.
    pub(crate) undoes: Option<u64>,
}

impl SyncPlan {
    pub(crate) fn new(rows: Vec<PlannedRow>, journal: PathBuf, entries: u64) -> Self {
        let mut counts = SyncCounts::default();
        for row in &rows {
            *match row.action {
                SyncAction::Add => &mut counts.add,
                SyncAction::Update => &mut counts.update,
                SyncAction::Unchanged => &mut counts.unchanged,
                SyncAction::Adopt => &mut counts.adopt,
                SyncAction::Keep => &mut counts.keep,
                SyncAction::Delete => &mut counts.delete,
                SyncAction::Fail => &mut counts.fail,
            } += 1;
        }
        Self {
            rows,
            counts,
            calls_read: 0,
            journal,
            undo: false,
            journal_entries: entries,
            undoes: None,
        }
    }

    /// Whether applying it would send nothing.
    pub fn is_empty(&self) -> bool {
        !self.rows.iter().any(|r| r.action.writes())
    }
}

/// Makes the plan of a sync of `source` with the journal at `journal`.
pub(crate) async fn make(
    sync: &crate::Sync,
    source: &Source,
    journal: PathBuf,
) -> Result<SyncPlan, BulkError> {
    let rows = rows::read(source, sync.job.key_column.as_deref()).await?;
    let state = SyncState::load(&journal)?;
    let destination = Destination::new(
        sync.client.base_url(),
        sync.client.api_key().expose_secret(),
    );
    check_destination(&state, &destination, &journal)?;
    let adopted = super::adopt::from_import(sync, source, &rows, &state).await;
    let wanted: HashSet<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let mut calls: BTreeSet<String> = rows.iter().map(|r| r.call.to_string()).collect();
    for (key, owned) in &state.owned {
        let moved_or_removed = !wanted.contains(key.as_str())
            || rows
                .iter()
                .any(|r| r.key == *key && r.call.as_str() != owned.call);
        if moved_or_removed && (sync.job.prune || wanted.contains(key.as_str())) {
            calls.insert(owned.call.clone());
        }
    }
    let read = read_calls(sync, &calls).await?;
    let decide = Decide {
        state: &state,
        calls: &read,
        adopted: &adopted,
        adopt_existing: sync.job.adopt_existing,
    };
    let mut planned = Vec::new();
    for row in &rows {
        decide.row(row, &mut planned);
    }
    decide.removed(&wanted, sync.job.prune, &mut planned);
    let mut plan = SyncPlan::new(planned, journal, state.entries);
    plan.calls_read = read.len() as u64;
    refuse_unowned_twins(&plan, &state, sync.job.adopt_existing)?;
    Ok(plan)
}

/// A journal written for another API is not this one's.
fn check_destination(
    state: &SyncState,
    destination: &Destination,
    journal: &std::path::Path,
) -> Result<(), BulkError> {
    match &state.base_url {
        Some(url) if *url != destination.base_url => Err(BulkError::usage(format!(
            "the sync journal {} records syncs to {url}, not to {}; nothing was sent. Give this \
             API a journal of its own (JournalLocation::Path)",
            journal.display(),
            destination.base_url
        ))),
        _ => Ok(()),
    }
}

/// A first sync (no journal) that would add a note beside one with the same text and flag that
/// no sync made: most likely an earlier sync or import whose journal is gone. Refused before
/// anything is sent, unless such notes are adopted.
fn refuse_unowned_twins(plan: &SyncPlan, state: &SyncState, adopt: bool) -> Result<(), BulkError> {
    if adopt || !state.runs.is_empty() {
        return Ok(());
    }
    let twins: Vec<u64> = plan
        .rows
        .iter()
        .filter(|r| r.action == SyncAction::Add && r.reason.as_deref() == Some(TWIN))
        .filter_map(|r| r.line)
        .collect();
    if twins.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = twins.iter().take(10).map(u64::to_string).collect();
    Err(BulkError::usage(format!(
        "{} row(s) (line {}{}) would get a second note: their calls already hold a note with the \
         same text that no sync of this journal made (an import's, or a sync's whose journal is \
         gone); nothing was sent. If those notes are this sheet's, take them over \
         (Sync::adopt_existing); if the journal was moved, point at it (JournalLocation::Path)",
        twins.len(),
        shown.join(", "),
        if twins.len() > 10 { ", ..." } else { "" }
    )))
}

/// The reason of an add beside an unowned note with the same text.
const TWIN: &str = "the call holds a note with this text that no sync made";

/// The notes of each call read, or why it could not be.
type Calls = HashMap<String, Result<Vec<Note>, Failure>>;

/// Reads each call once, `concurrency` at a time, under the client's rate control.
async fn read_calls(sync: &crate::Sync, calls: &BTreeSet<String>) -> Result<Calls, BulkError> {
    let slots = Arc::new(Semaphore::new(sync.settings.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for call in calls {
        let (client, slots, stop) = (
            sync.client.clone(),
            Arc::clone(&slots),
            sync.settings.stop.clone(),
        );
        let call = call.clone();
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let result = read_call(&client, &call, &stop).await;
            (call, result)
        });
    }
    let mut read = Calls::new();
    while let Some(joined) = tasks.join_next().await {
        let (call, result) =
            joined.map_err(|e| BulkError::io(format!("reading a call failed: {e}")))?;
        read.insert(call, result?);
    }
    Ok(read)
}

/// One call's notes; a call that does not exist is the rows' failure, any other error stops the
/// plan (nothing was sent).
async fn read_call(
    client: &happyrobot::Client,
    call: &str,
    stop: &happyrobot::CancellationToken,
) -> Result<Result<Vec<Note>, Failure>, BulkError> {
    let id = CallId::new(call).map_err(|e| BulkError::usage(e.to_string()))?;
    let control = Control::new().stop(stop);
    match client.get_call_with(&id, &control).await {
        Ok(response) => Ok(Ok(response.into_inner().notes.unwrap_or_default())),
        Err(e) if FailureKind::of(&e) == FailureKind::NotFound => Ok(Err(Failure {
            status: e.status().map(|s| s.as_u16()),
            kind: FailureKind::NotFound,
            reason: e.to_string(),
        })),
        Err(e) => Err(BulkError::api(
            &e,
            format!("reading call {call} for the plan failed: {e}; nothing was sent"),
        )),
    }
}

/// The decisions, from the journal and the calls as read.
struct Decide<'a> {
    state: &'a SyncState,
    calls: &'a Calls,
    /// Row key → the note ID an import recorded for it.
    adopted: &'a HashMap<String, String>,
    adopt_existing: bool,
}

impl Decide<'_> {
    /// The decisions for `row`: its note on its call, and its old note if it moved.
    fn row(&self, row: &Row, out: &mut Vec<PlannedRow>) {
        let call = row.call.as_str();
        let notes = match self.calls.get(call) {
            Some(Ok(notes)) => notes,
            Some(Err(failure)) => {
                let mut planned = PlannedRow::new(row, SyncAction::Fail);
                planned.reason = Some(failure.reason.clone());
                planned.failure = Some(failure.clone());
                out.push(planned);
                return;
            }
            None => return,
        };
        let owned = self.state.owned.get(&row.key);
        if let Some(old) = owned.filter(|o| o.call != call) {
            self.moved_away(row, old, out);
        }
        let mut candidates = self.state.candidates(&row.key, call);
        if let Some(id) = self.adopted.get(&row.key) {
            candidates.push(id.clone());
        }
        let mine: Vec<&Note> = notes
            .iter()
            .filter(|n| n.id.as_ref().is_some_and(|id| candidates.contains(id)))
            .collect();
        let keep = owned
            .filter(|o| o.call == call)
            .and_then(|o| mine.iter().find(|n| n.id.as_deref() == Some(&o.note)))
            .or_else(|| mine.first())
            .map(|note| &**note);
        match keep {
            Some(note) => out.push(self.compare(row, note, owned)),
            None => out.push(self.absent(row, notes, owned)),
        }
        for copy in mine
            .iter()
            .filter(|n| n.id != keep.and_then(|k| k.id.clone()))
        {
            let mut planned = delete(row, call, copy);
            planned.reason = Some("a copy of the row's note (sent twice)".to_string());
            out.push(planned);
        }
    }

    /// The row's note is on its call: unchanged, or updated.
    fn compare(&self, row: &Row, note: &Note, owned: Option<&Owned>) -> PlannedRow {
        let old = NoteText {
            content: note.content.clone().unwrap_or_default(),
            flagged: note.flagged,
        };
        let same_text = old.content == row.content;
        let same_flag = row
            .flagged
            .is_none_or(|f| note.flagged.unwrap_or(false) == f);
        let adopting = owned.is_none_or(|o| Some(&o.note) != note.id.as_ref());
        let action = match (same_text && same_flag, adopting) {
            (true, false) => SyncAction::Unchanged,
            (true, true) => SyncAction::Adopt,
            (false, _) => SyncAction::Update,
        };
        let mut planned = PlannedRow::new(row, action);
        planned.note_id = note.id.clone();
        if action == SyncAction::Update
            && owned.is_some_and(|o| o.text.content == row.content && o.text.flagged == row.flagged)
        {
            planned.reason = Some("changed in the app since the last sync; put back".to_string());
        }
        planned.old = Some(old);
        planned
    }

    /// The row has no note on its call: added (again, if the journal says it had one).
    fn absent(&self, row: &Row, notes: &[Note], owned: Option<&Owned>) -> PlannedRow {
        let call = row.call.as_str();
        let twin = notes.iter().find(|n| {
            n.content.as_deref() == Some(row.content.as_str())
                && row.flagged.is_none_or(|f| n.flagged.unwrap_or(false) == f)
        });
        if let (Some(twin), true) = (twin, self.adopt_existing) {
            let mut planned = PlannedRow::new(row, SyncAction::Adopt);
            planned.note_id = twin.id.clone();
            return planned;
        }
        let mut planned = PlannedRow::new(row, SyncAction::Add);
        planned.k = self.state.next_k(&row.key, call);
        planned.note_id = Some(super::journal::note_id(call, &row.key, planned.k));
        planned.pending = self
            .state
            .pending
            .get(&(row.key.clone(), call.to_string()))
            .cloned();
        if planned.pending.is_some() {
            planned.reason = Some(
                "an earlier add's outcome is unknown: it is looked up first, and sent again only \
                 if certainly absent"
                    .to_string(),
            );
        } else if owned.is_some_and(|o| o.call == call) {
            planned.reason = Some("deleted in the app since the last sync; put back".to_string());
        } else if twin.is_some() {
            planned.reason = Some(TWIN.to_string());
        }
        planned
    }

    /// The row's key moved to another call: its note leaves the old one, if it is still there.
    fn moved_away(&self, row: &Row, old: &Owned, out: &mut Vec<PlannedRow>) {
        let Some(Ok(notes)) = self.calls.get(&old.call) else {
            return;
        };
        if let Some(note) = notes.iter().find(|n| n.id.as_deref() == Some(&old.note)) {
            let mut planned = delete(row, &old.call, note);
            planned.reason = Some(format!("the row moved to call {}", row.call));
            out.push(planned);
        }
    }

    /// The notes of rows the input no longer has: kept, or deleted with `prune`.
    fn removed(&self, wanted: &HashSet<&str>, prune: bool, out: &mut Vec<PlannedRow>) {
        for (key, owned) in &self.state.owned {
            if wanted.contains(key.as_str()) {
                continue;
            }
            let row = Row {
                line: 0,
                key: key.clone(),
                call: match CallId::new(&owned.call) {
                    Ok(call) => call,
                    Err(_) => continue,
                },
                content: owned.text.content.clone(),
                flagged: owned.text.flagged,
            };
            let note = self.calls.get(&owned.call).and_then(|read| match read {
                Ok(notes) => notes.iter().find(|n| n.id.as_deref() == Some(&owned.note)),
                Err(_) => None,
            });
            let mut planned = match (prune, note) {
                (true, Some(note)) => delete(&row, &owned.call, note),
                // Pruned, and already gone: nothing to do.
                (true, None) => continue,
                (false, _) => {
                    let mut kept = PlannedRow::new(&row, SyncAction::Keep);
                    kept.note_id = Some(owned.note.clone());
                    kept.new = None;
                    kept.old = Some(owned.text.clone().into());
                    kept
                }
            };
            planned.line = None;
            out.push(planned);
        }
    }
}

/// The deletion of `note` on `call`, for `row`.
fn delete(row: &Row, call: &str, note: &Note) -> PlannedRow {
    let mut planned = PlannedRow::new(row, SyncAction::Delete);
    planned.call_id = call.to_string();
    planned.note_id = note.id.clone();
    planned.old = Some(NoteText {
        content: note.content.clone().unwrap_or_default(),
        flagged: note.flagged,
    });
    planned.new = None;
    planned
}
