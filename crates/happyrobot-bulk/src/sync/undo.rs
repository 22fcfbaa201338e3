//! The undo of a sync: the last sync run's changes reversed, as a plan that
//! [`apply`](super::apply) carries out like any other. An added note is deleted, an update's old
//! text and flag are put back, a deleted note is added again (under the row's next ID).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use super::journal::{Attempt, Change, Op, Pending, SyncState};
use super::plan::{NoteText, PlannedRow, SyncAction, SyncPlan};
use crate::journal::Destination;
use crate::{BulkError, Source};

/// The plan of an undo of the last sync run the journal at `journal` records.
pub(crate) async fn plan(
    sync: &crate::Sync,
    source: &Source,
    journal: PathBuf,
) -> Result<SyncPlan, BulkError> {
    let _ = source;
    if !journal.exists() {
        return Err(BulkError::usage(format!(
            "there is no sync journal {}: nothing was synced from this file (or the journal was \
             moved: point at it with JournalLocation::Path); nothing was sent",
            journal.display()
        )));
    }
    let state = SyncState::load(&journal)?;
    let destination = Destination::new(
        sync.client.base_url(),
        sync.client.api_key().expose_secret(),
    );
    super::plan::check_destination(&state, &destination, &journal)?;
    let Some((run, left)) = state.undoable() else {
        let mut plan = SyncPlan::new(Vec::new(), journal, state.entries);
        plan.undo = true;
        return Ok(plan);
    };
    // Each note added back takes the next of its row's IDs on its call.
    let mut counters: HashMap<(String, String), u32> = HashMap::new();
    // A note the run added and then changed (an earlier add found late, then updated) is deleted,
    // not also put back: the two would race.
    let added: HashSet<&str> = left
        .iter()
        .filter(|change| change.op == Op::Add)
        .map(|change| change.note.as_str())
        .collect();
    let rows = left
        .iter()
        .rev()
        .filter(|change| !(change.op == Op::Update && added.contains(change.note.as_str())))
        .filter_map(|change| {
            let next = counters
                .entry((change.row.clone(), change.call.clone()))
                .or_insert_with(|| state.next_k(&change.row, &change.call));
            let mut row = reverse(change, *next)?;
            if row.action == SyncAction::Add {
                *next += 1;
                row.pending = looked_up_first(&state, change);
            }
            Some(row)
        })
        .collect();
    // A change in doubt that lands after the undo's would undo it: waited out first.
    super::plan::wait_for_doubts(sync, waits(&state, &sync.client)).await;
    let mut plan = SyncPlan::new(rows, journal, state.entries);
    plan.undo = true;
    plan.undoes = Some(run.run);
    Ok(plan)
}

/// What the note added back for a deleted one is looked up as first, and sent only if certainly
/// absent: an undo before this one that was stopped or killed while adding it back; and, when the
/// delete's outcome is in doubt, the note itself (still there: nothing to add back).
fn looked_up_first(state: &SyncState, change: &Change) -> Option<Pending> {
    let earlier = state
        .pending
        .get(&(change.row.clone(), change.call.clone()))
        .cloned();
    if !change.in_doubt {
        return earlier;
    }
    let mut pending = earlier.unwrap_or_default();
    pending.ids.insert(0, change.note.clone());
    pending.own_first = true;
    if let Some(attempt) = state.doubt(&change.note) {
        pending.last = Attempt::latest_of(pending.last, attempt);
    }
    Some(pending)
}

/// Until when the undo of the last run the journal `state` records waits, before it plans, for
/// the updates and deletes in doubt (see [`SyncState::doubts_settle_at`]); `None` when it does not
/// (nothing to undo, or nothing in doubt).
pub(crate) fn waits(
    state: &SyncState,
    client: &happyrobot::Client,
) -> Option<std::time::SystemTime> {
    state.undoable()?;
    // Every change in doubt, adds included: one that lands after the undo's would undo it.
    state.doubts_settle_at(client, |_, _| false)
}

/// The change that reverses `change` (an add back as the row's `k`-th ID); `None` for one that
/// changed nothing on the server.
fn reverse(change: &Change, k: u32) -> Option<PlannedRow> {
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
        reason: Some(
            if change.in_doubt {
                "undoing the last sync, whose change here may have been made or not (its outcome \
                 was unknown): undone where it was made"
            } else {
                "undoing the last sync"
            }
            .to_string(),
        ),
        k,
        failure: None,
        pending: None,
        gone_with_call: false,
    })
}
