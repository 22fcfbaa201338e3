//! The plan of a sync: the calls the input names read once each (reads only), and each row
//! decided against what its call holds and what the journal says the row owns.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
    /// For a delete, the note went with its call: the API says the call does not exist, to the
    /// key of every run of the journal, while the same plan read another call (so neither a
    /// gateway nor a key of another organization said it). Journaled as gone (forgotten, not a
    /// change an undo puts back), with no request.
    #[serde(skip)]
    pub(crate) gone_with_call: bool,
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
            gone_with_call: false,
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
    /// Adds in doubt of rows no longer on their calls, as the plan found them settled.
    pub(crate) settled: Vec<Settled>,
    /// For a first sync of a file, the file's import as the plan read it.
    pub(crate) import: Option<super::adopt::ImportGuard>,
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
            settled: Vec::new(),
            import: None,
        }
    }

    /// Writes the plan to `path`, a row a line with its action and the status `planned`: a
    /// workbook when `path` ends in `.xlsx`, else CSV (as a results file).
    pub fn write_report(&self, path: &std::path::Path) -> std::io::Result<()> {
        super::results::write_plan(path, self)
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
    let imported = super::adopt::from_import(sync, source, &rows, &state).await?;
    let wanted: HashMap<&str, &str> = rows
        .iter()
        .map(|r| (r.key.as_str(), r.call.as_str()))
        .collect();
    let mut calls: BTreeSet<String> = rows.iter().map(|r| r.call.to_string()).collect();
    for (key, owned) in &state.owned {
        let now = wanted.get(key.as_str());
        // Its old call, when the row moved (or, with prune, was removed).
        if now.is_some_and(|call| *call != owned.call) || (now.is_none() && sync.job.prune) {
            calls.insert(owned.call.clone());
        }
    }
    // The calls of adds in doubt of rows no longer on them (moved, or removed): a note found there
    // under one of their IDs is the row's, as if the add had been journaled done.
    let stays = |row: &str, call: &str| wanted.get(row) == Some(&call);
    let strays: Vec<(&String, &String, &super::journal::Pending)> = state
        .pending
        .iter()
        .filter(|((row, call), _)| !stays(row, call) && !state.owned.contains_key(row))
        .map(|((row, call), pending)| (row, call, pending))
        .collect();
    calls.extend(strays.iter().map(|(_, call, _)| (*call).clone()));
    wait_for_doubts(sync, state.doubts_settle_at(&sync.client, stays)).await;
    let (read, mut gone) = read_calls(sync, &calls).await?;
    // A call's 404 is heard as "gone" only by the key that made the journal's notes.
    if !state.only_key(&destination.key_hash) {
        gone.clear();
    }
    let (owned, settled) = with_strays(&state, &strays, &read, &gone);
    let decide = Decide {
        state: &state,
        owned: &owned,
        calls: &read,
        adopted: &imported.adopted,
        imported_pending: &imported.pending,
        // Taking over notes no sync made is for a first sync only.
        adopt_existing: sync.job.adopt_existing && state.runs.is_empty(),
        wanted: &wanted,
        gone: &gone,
        taken: RefCell::new(HashSet::new()),
    };
    let mut planned = Vec::new();
    for row in &rows {
        decide.row(row, &mut planned);
    }
    decide.removed(sync.job.prune, &mut planned);
    let mut plan = SyncPlan::new(planned, journal, state.entries);
    plan.calls_read = read.len() as u64;
    plan.settled = settled;
    plan.import = imported.guard.clone();
    refuse_unowned(&plan)?;
    Ok(plan)
}

/// A journal written for another API is not this one's.
pub(crate) fn check_destination(
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

/// Rows that would take a note this journal did not make: an add beside a note with the same
/// text that no sync made (an import's, or a sync's whose journal is gone), or an update of a
/// note that only its ID ties to the row (another sheet synced to the same calls under the same
/// keys). Refused before anything is sent, unless such notes are adopted.
fn refuse_unowned(plan: &SyncPlan) -> Result<(), BulkError> {
    let lines = |reason: &str| -> Vec<u64> {
        plan.rows
            .iter()
            .filter(|r| r.reason.as_deref() == Some(reason))
            .filter_map(|r| r.line)
            .collect()
    };
    let (twins, foreign) = (lines(TWIN), lines(FOREIGN));
    let (what, found) = match (twins.is_empty(), foreign.is_empty()) {
        (true, true) => return Ok(()),
        (false, _) => (
            "would get a second note: their calls already hold a note with the same text that no \
             sync of this journal made (an import's, or a sync's whose journal is gone)",
            twins,
        ),
        (true, false) => (
            "would change a note that carries this sync's ID for the row but that this journal \
             did not make (another sheet synced to the same calls under the same keys, or a sync \
             whose journal is gone)",
            foreign,
        ),
    };
    let shown: Vec<String> = found.iter().take(10).map(u64::to_string).collect();
    Err(BulkError::usage(format!(
        "{} row(s) (line {}{}) {what}; nothing was sent. If those notes are this sheet's, take \
         them over (Sync::adopt_existing, on a first sync); if the journal was moved, point at it \
         (JournalLocation::Path)",
        found.len(),
        shown.join(", "),
        if found.len() > 10 { ", ..." } else { "" }
    )))
}

/// The reason of an add beside an unowned note with the same text.
const TWIN: &str = "the call holds a note with this text that no sync made";
/// The reason of an update of a note this journal did not make.
const FOREIGN: &str = "a note with this row's ID that this journal did not make";

/// The notes of each call read, or why it could not be.
type Calls = HashMap<String, Result<Vec<Note>, Failure>>;

/// The notes the rows own: the journal's, and those of adds in doubt of rows no longer on their
/// call (`strays`) found on it under one of their IDs, with the text found; and how each stray
/// settled, for the apply to journal (its window is past: the plan waited it out).
fn with_strays(
    state: &SyncState,
    strays: &[(&String, &String, &super::journal::Pending)],
    read: &Calls,
    gone: &HashSet<String>,
) -> (BTreeMap<String, Owned>, Vec<Settled>) {
    let mut owned = state.owned.clone();
    let mut settled = Vec::new();
    for (row, call, pending) in strays {
        let notes = match read.get(*call) {
            Some(Ok(notes)) => notes.as_slice(),
            // The call is gone, and its notes with it (as `read_calls` hears a 404; any other
            // leaves the add in doubt).
            Some(Err(_)) if gone.contains(*call) => &[],
            _ => continue,
        };
        let found = notes
            .iter()
            .find(|n| n.id.as_ref().is_some_and(|id| pending.ids.contains(id)));
        let (note, text) = match found {
            Some(note) => (
                note.id.clone().unwrap_or_default(),
                Some(Text {
                    content: note.content.clone().unwrap_or_default(),
                    flagged: note.flagged,
                }),
            ),
            None => (pending.ids.first().cloned().unwrap_or_default(), None),
        };
        if let Some(text) = &text {
            let mine = Owned {
                call: (*call).clone(),
                note: note.clone(),
                text: text.clone(),
            };
            owned.insert((*row).clone(), mine);
        }
        settled.push(Settled {
            row: (*row).clone(),
            call: (*call).clone(),
            note,
            found: text,
        });
    }
    (owned, settled)
}

/// An add in doubt of a row no longer on its call, settled by the plan's read (see
/// `with_strays`): the apply journals it found (the row's note, with the text found) or absent.
#[derive(Debug, Clone)]
pub(crate) struct Settled {
    pub(crate) row: String,
    pub(crate) call: String,
    pub(crate) note: String,
    pub(crate) found: Option<Text>,
}

/// Waits, before the calls are read, `until` the changes of earlier runs whose outcome is
/// unknown can no longer land (see [`SyncState::doubts_settle_at`]): read before, a note would
/// show its old text, the plan would change it again, and the late change would then undo that
/// (or a late delete remove a note the plan found in place, or a late add leave a note no row
/// owns). A stop ends the wait, and the reads then stop too.
pub(crate) async fn wait_for_doubts(sync: &crate::Sync, until: Option<std::time::SystemTime>) {
    let Some(wait) = left(until) else {
        return;
    };
    tracing::info!(
        target: "happyrobot_bulk::sync",
        seconds = wait.as_secs_f64(),
        "an earlier sync's change has an unknown outcome and may still land: waiting {:.0} s \
         before reading the calls",
        wait.as_secs_f64().ceil()
    );
    let stop = sync.settings.stop.clone();
    tokio::select! {
        () = tokio::time::sleep(wait) => {}
        () = stop.cancelled() => {}
    }
}

/// How long from now `until` is, if it is ahead.
pub(crate) fn left(until: Option<std::time::SystemTime>) -> Option<std::time::Duration> {
    until?.duration_since(std::time::SystemTime::now()).ok()
}

/// Reads each call once, `concurrency` at a time, under the client's rate control. Gives too the
/// calls the API says do not exist ([`happyrobot::Error::is_call_not_found`]), when it read
/// another: a gateway that answers in JSON, or a key of another organization, says that of every
/// call.
async fn read_calls(
    sync: &crate::Sync,
    calls: &BTreeSet<String>,
) -> Result<(Calls, HashSet<String>), BulkError> {
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
    let mut gone = HashSet::new();
    while let Some(joined) = tasks.join_next().await {
        let (call, result) =
            joined.map_err(|e| BulkError::io(format!("reading a call failed: {e}")))?;
        let (notes, not_found) = result?;
        if not_found {
            gone.insert(call.clone());
        }
        read.insert(call, notes);
    }
    if !read.values().any(Result::is_ok) {
        gone.clear();
    }
    Ok((read, gone))
}

/// One call's notes; a call that does not exist is the rows' failure (and `true` when the API
/// itself says so), any other error stops the plan (nothing was sent).
async fn read_call(
    client: &happyrobot::Client,
    call: &str,
    stop: &happyrobot::CancellationToken,
) -> Result<(Result<Vec<Note>, Failure>, bool), BulkError> {
    let id = CallId::new(call).map_err(|e| BulkError::usage(e.to_string()))?;
    // No deadline: a rate limit makes a read wait its turn (one that asks for longer than the
    // retry policy waits stops the plan, nothing sent).
    let control = Control::new().stop(stop).deadline(std::time::Duration::MAX);
    match client.get_call_with(&id, &control).await {
        Ok(response) => Ok((
            match response.into_inner().notes {
                Some(notes) => Ok(notes),
                // What the call holds cannot be told: nothing is sent for its rows.
                None => Err(Failure {
                    status: None,
                    kind: FailureKind::Api,
                    reason: format!(
                        "the API's answer for call {call} lists no notes, so what it holds cannot be \
                     told; nothing is sent for its rows"
                    ),
                }),
            },
            false,
        )),
        Err(e) if FailureKind::of(&e) == FailureKind::NotFound => Ok((
            Err(Failure {
                status: e.status().map(|s| s.as_u16()),
                kind: FailureKind::NotFound,
                reason: e.to_string(),
            }),
            e.is_call_not_found(),
        )),
        Err(e) => Err(BulkError::api(
            &e,
            format!("reading call {call} for the plan failed: {e}; nothing was sent"),
        )),
    }
}

/// The decisions, from the journal and the calls as read.
struct Decide<'a> {
    state: &'a SyncState,
    /// Row key → the note it owns: the journal's, and adds in doubt found (see `with_strays`).
    owned: &'a BTreeMap<String, Owned>,
    calls: &'a Calls,
    /// Row key → the note ID an import recorded for it.
    adopted: &'a HashMap<String, String>,
    /// Row key → an import's add of it whose outcome is unknown.
    imported_pending: &'a HashMap<String, super::journal::Pending>,
    adopt_existing: bool,
    /// The input's row keys, with their calls.
    wanted: &'a HashMap<&'a str, &'a str>,
    /// The calls the API says do not exist (see `read_calls`).
    gone: &'a HashSet<String>,
    /// The notes a decision already claimed: a note belongs to one row.
    taken: RefCell<HashSet<String>>,
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
        let owned = self.owned.get(&row.key);
        if let Some(old) = owned.filter(|o| o.call != call) {
            self.moved_away(row, old, out);
        }
        let mine = self.mine(&row.key, call, notes);
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

    /// The notes on `call` that carry one of row `key`'s IDs (or its import's), not claimed yet;
    /// they are claimed.
    fn mine<'n>(&self, key: &str, call: &str, notes: &'n [Note]) -> Vec<&'n Note> {
        let mut candidates = self.state.candidates(key, call);
        candidates.extend(self.adopted.get(key).cloned());
        candidates.extend(
            self.imported_pending
                .get(key)
                .into_iter()
                .flat_map(|p| p.ids.iter().cloned()),
        );
        let mut taken = self.taken.borrow_mut();
        notes
            .iter()
            .filter(|n| {
                n.id.as_ref()
                    .is_some_and(|id| candidates.contains(id) && taken.insert(id.clone()))
            })
            .collect()
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
        let id = note.id.clone().unwrap_or_default();
        let adopting = owned.is_none_or(|o| o.note != id);
        let recorded = self.state.knows(&row.key, row.call.as_str(), &id)
            || self.adopted.get(&row.key) == Some(&id)
            || self
                .imported_pending
                .get(&row.key)
                .is_some_and(|pending| pending.ids.contains(&id));
        let action = match (same_text && same_flag, adopting) {
            (true, false) => SyncAction::Unchanged,
            (true, true) => SyncAction::Adopt,
            (false, _) => SyncAction::Update,
        };
        let mut planned = PlannedRow::new(row, action);
        planned.note_id = note.id.clone();
        if action == SyncAction::Update && !recorded && !self.adopt_existing {
            planned.reason = Some(FOREIGN.to_string());
        } else if action == SyncAction::Update
            && owned.is_some_and(|o| o.text.content == row.content && o.text.flagged == row.flagged)
        {
            planned.reason = Some("changed in the app since the last sync; put back".to_string());
        }
        planned.old = Some(old);
        planned
    }

    /// The row has no note on its call: a note with its text taken over (from a row whose key
    /// changed, or asked for), else added (again, if the journal says it had one).
    fn absent(&self, row: &Row, notes: &[Note], owned: Option<&Owned>) -> PlannedRow {
        let call = row.call.as_str();
        let twin = notes.iter().find(|n| {
            n.content.as_deref() == Some(row.content.as_str())
                && row.flagged.is_none_or(|f| n.flagged.unwrap_or(false) == f)
                && n.id
                    .as_ref()
                    .is_some_and(|id| !self.taken.borrow().contains(id))
        });
        let rekeyed = twin.and_then(|twin| self.owner_removed(call, twin));
        if let Some(twin) = twin.filter(|_| rekeyed.is_some() || self.adopt_existing) {
            let mut planned = PlannedRow::new(row, SyncAction::Adopt);
            planned.note_id = twin.id.clone();
            if let (Some(id), Some(old_key)) = (&twin.id, rekeyed) {
                self.taken.borrow_mut().insert(id.clone());
                planned.reason = Some(format!("taken over from the row keyed {old_key:?}"));
            }
            return planned;
        }
        let mut planned = PlannedRow::new(row, SyncAction::Add);
        planned.k = self.state.next_k(&row.key, call);
        planned.note_id = Some(super::journal::note_id(call, &row.key, planned.k));
        planned.pending = self
            .state
            .pending
            .get(&(row.key.clone(), call.to_string()))
            .or_else(|| self.imported_pending.get(&row.key))
            .cloned();
        planned.reason = if planned.pending.is_some() {
            Some(
                "an earlier add's outcome is unknown: it is looked up first, and sent again only \
                 if certainly absent"
                    .to_string(),
            )
        } else if owned.is_some_and(|o| o.call == call) {
            Some("deleted in the app since the last sync; put back".to_string())
        } else if twin.is_some() {
            Some(TWIN.to_string())
        } else {
            None
        };
        planned
    }

    /// The key of a row removed from the input that owns `note` on `call` (a key that changed).
    fn owner_removed(&self, call: &str, note: &Note) -> Option<String> {
        let id = note.id.as_deref()?;
        self.owned
            .iter()
            .find(|(key, o)| {
                o.call == call && o.note == id && !self.wanted.contains_key(key.as_str())
            })
            .map(|(key, _)| key.clone())
    }

    /// The row's key moved to another call: its notes leave the old one.
    fn moved_away(&self, row: &Row, old: &Owned, out: &mut Vec<PlannedRow>) {
        let Some(Ok(notes)) = self.calls.get(&old.call) else {
            return;
        };
        for note in self.mine(&row.key, &old.call, notes) {
            let mut planned = delete(row, &old.call, note);
            planned.reason = Some(format!("the row moved to call {}", row.call));
            out.push(planned);
        }
    }

    /// The notes of rows the input no longer has: kept, or deleted with `prune` (with any copies;
    /// one already gone is deleted again, which a gone note answers as done, so that the journal
    /// forgets it).
    fn removed(&self, prune: bool, out: &mut Vec<PlannedRow>) {
        for (key, owned) in self.owned {
            if self.wanted.contains_key(key.as_str()) || self.taken.borrow().contains(&owned.note) {
                continue;
            }
            let Ok(call) = CallId::new(&owned.call) else {
                continue;
            };
            let row = Row {
                line: 0,
                key: key.clone(),
                call,
                content: owned.text.content.clone(),
                flagged: owned.text.flagged,
            };
            let gone = Note {
                id: Some(owned.note.clone()),
                content: Some(owned.text.content.clone()),
                flagged: owned.text.flagged,
                created_at: None,
                user_id: None,
            };
            let read = self.calls.get(&owned.call);
            let found = match read {
                Some(Ok(notes)) if prune => self.mine(key, &owned.call, notes),
                _ => Vec::new(),
            };
            let call_gone = self.gone.contains(&owned.call);
            let already_gone = found.is_empty();
            let notes: Vec<&Note> = if already_gone { vec![&gone] } else { found };
            for note in notes {
                let mut planned = if prune {
                    delete(&row, &owned.call, note)
                } else {
                    let mut kept = PlannedRow::new(&row, SyncAction::Keep);
                    kept.note_id = Some(owned.note.clone());
                    kept.new = None;
                    kept.old = Some(owned.text.clone().into());
                    kept
                };
                planned.line = None;
                if prune && already_gone {
                    planned.gone_with_call = call_gone;
                    planned.reason = Some(if call_gone {
                        format!(
                            "its call {} was not found (deleted in the app?): the note went with \
                             it; the journal forgets it",
                            owned.call
                        )
                    } else {
                        "already gone from its call; the journal forgets it".to_string()
                    });
                }
                out.push(planned);
            }
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
