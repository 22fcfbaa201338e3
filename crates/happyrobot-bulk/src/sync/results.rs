//! A sync's results file: every planned row with its action, status, note ID and error. A row's
//! status is `planned` (a plan's file), `done`, `already done` (found made before the run: a note
//! to delete already gone, one to put back still there), `updated instead` (an undo's add back
//! found the note never deleted and put its text back in place), `failed`, `unknown` or `not
//! sent`.

use std::path::Path;

use super::{RowStatus, SyncPlan, SyncReport, SyncedRow};
use crate::BulkOption;

/// How the caller names the library's options (see [`crate::Bulk::option_names`]).
type Names = Option<fn(BulkOption) -> Option<&'static str>>;

/// The columns of a sync's results file.
const HEADER: [&str; 11] = [
    "line",
    "key",
    "call_id",
    "action",
    "status",
    "note_id",
    "old_content",
    "old_flagged",
    "new_content",
    "new_flagged",
    "error",
];

/// Writes `plan`'s rows to `path` (a workbook for `.xlsx`, else CSV), each with the status
/// `planned`.
pub(crate) fn write_plan(path: &Path, plan: &SyncPlan) -> std::io::Result<()> {
    let report = SyncReport {
        rows: plan
            .rows
            .iter()
            .map(|row| SyncedRow::new(row.clone(), RowStatus::NotSent))
            .collect(),
        ..SyncReport::default()
    };
    write_rows(path, &report, "planned", None)
}

/// Writes `report`'s rows to `path` (a workbook for `.xlsx`, else CSV as an import's results file
/// is: UTF-8 with a byte-order mark, comma-separated), the errors naming options as `names` does.
pub(crate) fn write(path: &Path, report: &SyncReport, names: Names) -> std::io::Result<()> {
    write_rows(path, report, "not sent", names)
}

/// The rows, a row that was not sent given the status `not_sent`.
fn write_rows(
    path: &Path,
    report: &SyncReport,
    not_sent: &str,
    names: Names,
) -> std::io::Result<()> {
    let words = |message: &str| match names {
        Some(names) => BulkOption::rename(message, names),
        None => message.to_string(),
    };
    let header: Vec<String> = HEADER.iter().map(|h| (*h).to_string()).collect();
    let flag = |f: Option<bool>| f.map(|f| f.to_string()).unwrap_or_default();
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|row| {
            let planned = &row.planned;
            let (status, error) = match &row.status {
                // Made before this run (a note already gone, one to put back still there).
                RowStatus::Done if row.already => ("already done", String::new()),
                RowStatus::Done if row.updated_instead => ("updated instead", String::new()),
                RowStatus::Done => ("done", String::new()),
                RowStatus::Failed(f) => ("failed", words(&f.reason)),
                RowStatus::Unknown(reason) => ("unknown", words(reason)),
                RowStatus::NotSent => (not_sent, String::new()),
            };
            let old = planned.old.as_ref();
            let new = planned.new.as_ref();
            vec![
                planned.line.map(|l| l.to_string()).unwrap_or_default(),
                planned.key.clone(),
                planned.call_id.clone(),
                planned.action.as_str().to_string(),
                status.to_string(),
                row.note_id.clone().unwrap_or_default(),
                old.map(|t| t.content.clone()).unwrap_or_default(),
                flag(old.and_then(|t| t.flagged)),
                new.map(|t| t.content.clone()).unwrap_or_default(),
                flag(new.and_then(|t| t.flagged)),
                error,
            ]
        })
        .collect();
    crate::results::save(path, &header, &rows)
}
