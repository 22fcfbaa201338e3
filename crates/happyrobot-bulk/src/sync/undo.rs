//! The undo of a sync: the last sync run's changes reversed, as a plan that
//! [`apply`](super::apply) carries out like any other. An added note is deleted, an update's old
//! text and flag are put back, a deleted note is added again (under the row's next ID).

use std::path::PathBuf;

use super::journal::{Change, Op, SyncState};
use super::plan::{NoteText, PlannedRow, SyncAction, SyncPlan};
use crate::{BulkError, Source};

/// The plan of an undo of the last sync run the journal at `journal` records.
pub(crate) async fn plan(
    sync: &crate::Sync,
    source: &Source,
    journal: PathBuf,
) -> Result<SyncPlan, BulkError> {
    let _ = (sync, source);
    if !journal.exists() {
        return Err(BulkError::usage(format!(
            "there is no sync journal {}: nothing was synced from this file (or the journal was \
             moved: point at it with JournalLocation::Path); nothing was sent",
            journal.display()
        )));
    }
    let state = SyncState::load(&journal)?;
    let rows = match state.undoable() {
        Some(run) => run
            .changes
            .iter()
            .rev()
            .filter_map(|c| reverse(&state, c))
            .collect(),
        None => Vec::new(),
    };
    let mut plan = SyncPlan::new(rows, journal, state.entries);
    plan.undo = true;
    plan.undoes = state.undoable().map(|run| run.run);
    Ok(plan)
}

/// The change that reverses `change`; `None` for one that changed nothing on the server.
fn reverse(state: &SyncState, change: &Change) -> Option<PlannedRow> {
    let (action, new, old, note, k) = match change.op {
        Op::Add => (
            SyncAction::Delete,
            None,
            change.text.clone(),
            change.note.clone(),
            0,
        ),
        Op::Update => (
            SyncAction::Update,
            change.before.clone(),
            change.text.clone(),
            change.note.clone(),
            0,
        ),
        Op::Delete => {
            let k = state.next_k(&change.row, &change.call);
            let id = super::journal::note_id(&change.call, &change.row, k);
            (SyncAction::Add, change.before.clone(), None, id, k)
        }
        Op::Adopt => return None,
    };
    Some(PlannedRow {
        line: change.line,
        key: change.row.clone(),
        call_id: change.call.clone(),
        action,
        note_id: Some(note),
        old: old.map(NoteText::from),
        new: new.map(NoteText::from),
        reason: Some("undoing the last sync".to_string()),
        k,
        failure: None,
        pending: None,
    })
}
