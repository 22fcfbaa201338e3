//! A sync's results file: every planned row with its action, status, note ID and error.

use std::path::Path;

use super::{RowStatus, SyncReport};

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

/// Writes `report`'s rows to `path` (a workbook for `.xlsx`, else CSV as an import's results file
/// is: UTF-8 with a byte-order mark, comma-separated).
pub(crate) fn write(path: &Path, report: &SyncReport) -> std::io::Result<()> {
    let header: Vec<String> = HEADER.iter().map(|h| (*h).to_string()).collect();
    let flag = |f: Option<bool>| f.map(|f| f.to_string()).unwrap_or_default();
    let rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|row| {
            let planned = &row.planned;
            let (status, error) = match &row.status {
                RowStatus::Done => ("done", String::new()),
                RowStatus::Failed(f) => ("failed", f.reason.clone()),
                RowStatus::Unknown(reason) => ("unknown", reason.clone()),
                RowStatus::NotSent => ("not sent", String::new()),
            };
            let old = planned.old.as_ref();
            let new = planned.new.as_ref();
            vec![
                planned.line.map(|l| l.to_string()).unwrap_or_default(),
                planned.key.clone(),
                planned.call_id.clone(),
                planned.action.as_str().to_string(),
                status.to_string(),
                planned.note_id.clone().unwrap_or_default(),
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
