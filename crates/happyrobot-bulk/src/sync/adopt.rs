//! A first sync of a file that `notes import` added: the notes the import's journal records as
//! added, for rows as they are now, are adopted (become the rows' own), never added again.

use std::collections::HashMap;

use super::journal::SyncState;
use super::rows::Row;
use crate::Source;
use crate::journal::{JournalState, Keep, LineState};
use crate::session::JournalLocation;

/// Row key → the note ID the import's journal records as added for the row (same call, text and
/// flag). Empty once the sync has a journal of its own, for records, or without an import.
pub(crate) async fn from_import(
    sync: &crate::Sync,
    source: &Source,
    rows: &[Row],
    state: &SyncState,
) -> HashMap<String, String> {
    if !state.runs.is_empty() || source.path().is_none() {
        return HashMap::new();
    }
    // The journal an import of this file would use (beside it, or found by its content).
    let mut settings = sync.settings.clone();
    settings.journal = JournalLocation::BesideInput;
    let Ok(prepared) = crate::session::prepare(&sync.client, source, &settings).await else {
        return HashMap::new();
    };
    let Ok(import) = JournalState::load(&prepared.journal, &prepared.destination, Keep::default())
    else {
        return HashMap::new();
    };
    rows.iter()
        .filter_map(|row| {
            let fingerprint =
                crate::record::fingerprint(row.call.as_str(), &row.content, row.flagged);
            let key = (fingerprint, 0);
            (import.standing(key).state == Some(LineState::Done))
                .then(|| import.done_id(key))
                .flatten()
                .map(|id| (row.key.clone(), id))
        })
        .collect()
}
