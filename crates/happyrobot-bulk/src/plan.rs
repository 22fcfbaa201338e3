//! The validation pass: reads the whole input once, checks every line, finds identical lines and
//! counts what the journal says about each, before anything is sent. A dry run is this pass alone.

use std::collections::{HashMap, HashSet};
use std::io;

use crate::journal::{JournalState, LineState};
use crate::read::{self, ColumnMapping, Input, Item, LineError};
use crate::{BulkError, NoteRecord, ReadOptions};

/// How many invalid lines a plan keeps to show; the rest are only counted.
pub const MAX_SHOWN_ERRORS: usize = 20;

/// How many of the first valid lines a plan keeps, as they will be sent ([`Plan::preview`]).
pub const PREVIEW_LINES: usize = 3;

/// A line as it will be sent, for a dry run to show.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PreviewLine {
    /// The line (or a workbook's sheet row) it is on.
    pub line: u64,
    /// The call and the note, as sent.
    pub record: NoteRecord,
}

/// What the validation pass found: the input's lines and what the journal says about them.
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct Plan {
    /// Valid lines.
    pub lines: u64,
    /// Invalid lines.
    pub invalid: u64,
    /// The first invalid lines, to show.
    pub errors: Vec<LineError>,
    /// The first lines identical to an earlier one (same call, text and flag), as (line, earlier
    /// line), in input order.
    pub duplicates: Vec<(u64, u64)>,
    /// How many lines are identical to an earlier one.
    pub duplicate_count: u64,
    /// Lines the journal has as added.
    pub done: u64,
    /// Lines the journal has as certainly not added (sent again).
    pub failed_before: u64,
    /// Lines whose outcome is unknown (looked up on their calls before anything else).
    pub unknown_before: u64,
    /// Lines an undo deleted.
    pub undone_before: u64,
    /// Lines that damage in the journal leaves in doubt (looked up on their calls first).
    pub in_doubt: u64,
    /// Lines the journal records that the input no longer has (edited or removed).
    pub orphans: u64,
    /// Which column feeds which field and which are ignored (`None` for JSON Lines, records, or
    /// a header that does not map).
    pub columns: Option<ColumnMapping>,
    /// The first valid lines (at most [`PREVIEW_LINES`]), as they will be sent.
    pub preview: Vec<PreviewLine>,
    /// Of [`orphans`](Self::orphans), those the journal has as added: an undo deletes their
    /// notes too.
    pub orphans_added: u64,
    /// Of [`orphans`](Self::orphans), those whose add outcome is unknown (or in doubt).
    pub orphans_unknown: u64,
    /// Of [`orphans`](Self::orphans), those an undo deleted.
    pub orphans_undone: u64,
    /// The journal keys of [`orphans`](Self::orphans), sorted.
    pub(crate) orphan_keys: Vec<crate::record::LineKey>,
    /// The fingerprints that occur more than once.
    pub(crate) repeated: HashSet<u64>,
}

impl Plan {
    /// Lines the journal does not mention (or an undo deleted): sent as new.
    pub fn new_lines(&self) -> u64 {
        self.lines
            .saturating_sub(self.done + self.failed_before + self.unknown_before + self.in_doubt)
    }
}

/// Reads the whole input once, checking every line, finding identical lines, and counting what the
/// journal says about each. Memory: 8 bytes per valid line (a million lines: 8 MB); when identical
/// lines exist, a second pass finds their line numbers.
pub(crate) fn validate(
    input: &Input,
    options: &ReadOptions,
    state: &JournalState,
    name: &str,
) -> Result<Plan, BulkError> {
    let read_error =
        |e: io::Error| BulkError::usage(format!("cannot read {name}: {e}; nothing was sent"));
    let mut plan = Plan::default();
    let mut fingerprints: Vec<u64> = Vec::new();
    read::check(input, options).map_err(read_error)?;
    for item in read::open(input, options, false).map_err(read_error)? {
        match item.map_err(read_error)? {
            Item::Invalid(error) => {
                plan.invalid += 1;
                if plan.errors.len() < MAX_SHOWN_ERRORS {
                    plan.errors.push(error);
                }
            }
            Item::Valid(record) => {
                plan.lines += 1;
                fingerprints.push(record.fingerprint);
                if plan.preview.len() < PREVIEW_LINES {
                    plan.preview.push(PreviewLine {
                        line: record.line,
                        record: NoteRecord::new(record.call_id, record.note),
                    });
                }
            }
        }
    }
    plan.columns = read::mapping(input, options).map_err(read_error)?;
    // Sorted, identical lines are neighbours; the k-th copy of a line is its occurrence k in the
    // journal (which copy is which does not matter for counting).
    fingerprints.sort_unstable();
    let mut matched = 0usize;
    let mut previous: Option<(u64, u32)> = None;
    for &fingerprint in &fingerprints {
        let occurrence = match previous {
            Some((fp, n)) if fp == fingerprint => {
                plan.repeated.insert(fingerprint);
                plan.duplicate_count += 1;
                n + 1
            }
            _ => 0,
        };
        previous = Some((fingerprint, occurrence));
        let standing = state.standing((fingerprint, occurrence));
        if standing.state.is_some() {
            matched += 1;
        }
        if standing.in_doubt {
            plan.in_doubt += 1;
            continue;
        }
        match standing.state {
            Some(LineState::Done) => plan.done += 1,
            Some(LineState::Failed) => plan.failed_before += 1,
            Some(LineState::Unknown { .. }) => plan.unknown_before += 1,
            Some(LineState::Undone) => plan.undone_before += 1,
            None => {}
        }
    }
    plan.orphan_keys = state.missing_from(&fingerprints);
    drop(fingerprints);
    plan.orphans = state.len().saturating_sub(matched) as u64;
    count_orphans(&mut plan, state);
    if !plan.repeated.is_empty() {
        plan.duplicates = first_copies(input, options, &plan.repeated).map_err(read_error)?;
    }
    Ok(plan)
}

/// Counts the orphans by what the journal says of them.
fn count_orphans(plan: &mut Plan, state: &JournalState) {
    for key in &plan.orphan_keys {
        let standing = state.standing(*key);
        match standing.state {
            _ if standing.in_doubt => plan.orphans_unknown += 1,
            Some(LineState::Done) => plan.orphans_added += 1,
            Some(LineState::Unknown { .. }) => plan.orphans_unknown += 1,
            Some(LineState::Undone) => plan.orphans_undone += 1,
            Some(LineState::Failed) | None => {}
        }
    }
}

/// The first [`MAX_SHOWN_ERRORS`] lines identical to an earlier one, with that earlier line.
fn first_copies(
    input: &Input,
    options: &ReadOptions,
    repeated: &HashSet<u64>,
) -> io::Result<Vec<(u64, u64)>> {
    let mut first: HashMap<u64, u64> = HashMap::new();
    let mut copies = Vec::new();
    for item in read::open(input, options, false)? {
        let Item::Valid(record) = item? else {
            continue;
        };
        if !repeated.contains(&record.fingerprint) {
            continue;
        }
        match first.get(&record.fingerprint) {
            Some(&line) if copies.len() < MAX_SHOWN_ERRORS => copies.push((record.line, line)),
            Some(_) => break,
            None => {
                first.insert(record.fingerprint, record.line);
            }
        }
    }
    Ok(copies)
}
