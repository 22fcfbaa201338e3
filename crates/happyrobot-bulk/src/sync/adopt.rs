//! A first sync of a file that `notes import` added: the notes the import's journal records as
//! added are adopted (become the rows' own), never added again: those of rows as they are now,
//! and those of rows edited since (updated in place by the sync). The import's adds whose outcome
//! is unknown are the rows' adds in doubt: looked up before the sync adds anything for them.

use std::collections::{HashMap, HashSet};

use super::journal::{Attempt, Pending, SyncState};
use super::rows::Row;
use crate::journal::{JournalState, Keep, LineState};
use crate::record::LineKey;
use crate::session::JournalLocation;
use crate::{BulkError, Source};

/// What an import of the file did, as a first sync takes it over.
#[derive(Debug, Default)]
pub(crate) struct Imported {
    /// Row key → the note ID the import's journal records as added for the row (same call, text
    /// and flag).
    pub(crate) adopted: HashMap<String, String>,
    /// Row key → the import's add of the row (same call, text and flag) whose outcome is
    /// unknown: every ID it may have been sent with, and when.
    pub(crate) pending: HashMap<String, Pending>,
    /// What the apply checks against an import of the file started since the plan.
    pub(crate) guard: Option<ImportGuard>,
}

/// An import of the file a first sync plans from, as it stood: the apply takes the lock every
/// import of this content takes (so that none runs meanwhile) and checks that the import's
/// journal has not grown since the plan read it.
#[derive(Debug, Clone)]
pub(crate) struct ImportGuard {
    content: String,
    destination: crate::journal::Destination,
    journal: std::path::PathBuf,
    /// The import journal's length when the plan read it (0: none).
    length: u64,
}

impl ImportGuard {
    /// The locks that keep the file's imports out, held until dropped: the lock of its content
    /// (without a state directory, none: no import takes it either) and a shared lock of the
    /// import's journal, if there is one. Refused while another run of the file holds them, or
    /// once the import's journal changed since the plan (nothing was sent).
    pub(crate) fn hold(
        &self,
        state_dir: Option<&std::path::Path>,
    ) -> Result<ImportLocks, BulkError> {
        use crate::journal::locate::{Unlocked, lock_content};
        let content = match lock_content(&self.content, &self.destination, state_dir) {
            Ok(lock) => Some(lock),
            Err(Unlocked::Busy) => return Err(running(&self.journal)),
            Err(Unlocked::Unavailable) => None,
        };
        let journal = match shared(&self.journal) {
            Shared::Held => return Err(running(&self.journal)),
            Shared::Locked(file) => Some(file),
            Shared::None => None,
        };
        if length(&self.journal) != self.length {
            return Err(BulkError::usage(format!(
                "the import journal of this file, {}, changed since the plan was made (an import, \
                 or its undo, ran); nothing was sent. Make the plan again: it takes over what \
                 the import added",
                self.journal.display()
            )));
        }
        Ok(ImportLocks {
            _content: content,
            _journal: journal,
        })
    }
}

/// The locks [`ImportGuard::hold`] takes, released when dropped.
pub(crate) struct ImportLocks {
    _content: Option<crate::journal::locate::ContentLock>,
    _journal: Option<std::fs::File>,
}

/// The refusal of a first sync while another run of the file holds its import's locks.
fn running(journal: &std::path::Path) -> BulkError {
    BulkError::usage(format!(
        "another run of this file is going on (an import or its undo, whose journal is {}, or \
         another first sync): a sync now could add the notes it adds a second time; nothing was \
         sent. Wait for it to finish, then sync: the notes an import added are taken over, not \
         added again",
        journal.display()
    ))
}

/// The length of the file at `path` (0 when there is none).
fn length(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// What an import of the file did (see [`Imported`]). Empty once the sync has a journal of its
/// own, for records, or without an import; refused while an import of it runs (what it has not
/// added yet, the sync would add too).
pub(crate) async fn from_import(
    sync: &crate::Sync,
    source: &Source,
    rows: &[Row],
    state: &SyncState,
) -> Result<Imported, BulkError> {
    if !state.runs.is_empty() || source.path().is_none() {
        return Ok(Imported::default());
    }
    // The journal an import of this file would use (beside it, or found by its content).
    let mut settings = sync.settings.clone();
    settings.journal = JournalLocation::BesideInput;
    let Ok(prepared) = crate::session::prepare(&sync.client, source, &settings).await else {
        return Ok(Imported::default());
    };
    if held(&prepared.journal) {
        return Err(running(&prepared.journal));
    }
    let guard = Some(ImportGuard {
        content: prepared.content.clone(),
        destination: prepared.destination.clone(),
        journal: prepared.journal.clone(),
        length: length(&prepared.journal),
    });
    let Ok(import) = JournalState::load(&prepared.journal, &prepared.destination, Keep::default())
    else {
        return Ok(Imported {
            guard,
            ..Imported::default()
        });
    };
    let keys = line_keys(rows);
    let pending = rows
        .iter()
        .zip(&keys)
        .filter_map(|(row, &key)| {
            let standing = import.standing(key);
            let doubt = matches!(standing.state, Some(LineState::Unknown { .. }))
                || (standing.in_doubt && standing.state != Some(LineState::Done));
            let ids = import.candidates(key);
            (doubt && !ids.is_empty()).then(|| {
                let (at, took) = import.attempt(key);
                let pending = Pending {
                    ids,
                    last: Attempt::sent_at(at),
                    took,
                    own_first: false,
                };
                (row.key.clone(), pending)
            })
        })
        .collect();
    let mut adopted: HashMap<String, String> = rows
        .iter()
        .zip(&keys)
        .filter_map(|(row, &key)| {
            (import.standing(key).state == Some(LineState::Done))
                .then(|| import.done_id(key))
                .flatten()
                .map(|id| (row.key.clone(), id))
        })
        .collect();
    edited_since(&import, &prepared.journal, rows, &mut adopted);
    Ok(Imported {
        adopted,
        pending,
        guard,
    })
}

/// A shared lock of the journal at `path`.
enum Shared {
    /// Taken: released when the file is closed.
    Locked(std::fs::File),
    /// Another process holds the journal (a run of it is going on).
    Held,
    /// No journal there (or none that can be locked).
    None,
}

fn shared(path: &std::path::Path) -> Shared {
    let mut read = std::fs::OpenOptions::new();
    let Ok(file) = crate::journal::file::open_regular(path, read.read(true)) else {
        return Shared::None;
    };
    match fs4::fs_std::FileExt::try_lock_shared(&file) {
        Ok(true) => Shared::Locked(file),
        Ok(false) => Shared::Held,
        Err(_) => Shared::None,
    }
}

/// Whether another process holds the lock of the journal at `path` (a run of it is going on).
fn held(path: &std::path::Path) -> bool {
    match shared(path) {
        Shared::Locked(file) => {
            let _ = fs4::fs_std::FileExt::unlock(&file);
            false
        }
        Shared::Held => true,
        Shared::None => false,
    }
}

/// Each row's key as the import's journal knows its line: its fingerprint, and which copy of
/// that fingerprint it is in the input's order (two rows with the same call, text and flag are
/// two lines, two notes).
fn line_keys(rows: &[Row]) -> Vec<LineKey> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&index| rows[index].line);
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let mut keys = vec![(0, 0); rows.len()];
    for index in order {
        let fingerprint = fingerprint(&rows[index]);
        let copy = seen.entry(fingerprint).or_default();
        keys[index] = (fingerprint, *copy);
        *copy += 1;
    }
    keys
}

/// A row's fingerprint, as the import's journal knows lines.
fn fingerprint(row: &Row) -> u64 {
    crate::record::fingerprint(row.call.as_str(), &row.content, row.flagged)
}

/// Rows edited since the import: the import's note of a line the file no longer has, on the same
/// call, is the row's when it is the only such note for the only such row on that call, or when
/// it was imported from the same line. Adopted, the sync updates it in place.
fn edited_since(
    import: &JournalState,
    journal: &std::path::Path,
    rows: &[Row],
    adopted: &mut HashMap<String, String>,
) {
    let mut fingerprints: Vec<u64> = rows.iter().map(fingerprint).collect();
    fingerprints.sort_unstable();
    let gone: HashSet<LineKey> = import
        .missing_from(&fingerprints)
        .into_iter()
        .filter(|key| import.standing(*key).state == Some(LineState::Done))
        .collect();
    let Ok(calls) = crate::journal::calls_of(journal, &gone) else {
        return;
    };
    // Call → the notes of lines gone from the file: (line, note ID).
    let mut orphans: HashMap<&str, Vec<(u64, String)>> = HashMap::new();
    for (key, (call, line)) in &calls {
        if let Some(id) = import.done_id(*key) {
            orphans.entry(call.as_str()).or_default().push((*line, id));
        }
    }
    let mut waiting: HashMap<&str, Vec<&Row>> = HashMap::new();
    for row in rows.iter().filter(|r| !adopted.contains_key(&r.key)) {
        waiting.entry(row.call.as_str()).or_default().push(row);
    }
    for (call, rows) in waiting {
        let Some(notes) = orphans.get_mut(call) else {
            continue;
        };
        for row in &rows {
            let same_line = notes.iter().position(|(line, _)| *line == row.line);
            let only = (notes.len() == 1 && rows.len() == 1).then_some(0);
            if let Some(index) = same_line.or(only) {
                let (_, id) = notes.remove(index);
                adopted.insert(row.key.clone(), id);
            }
        }
    }
}
