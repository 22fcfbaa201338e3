//! What `notes sync` prints: a plan row by row, a run's summary, and both as JSON. JSON members
//! `added`, `updated`, `deleted` and `unchanged` are integers in both (for a plan, what a run
//! would do); a run's summary also has `already`, the changes found made by nothing it sent.

use happyrobot_bulk::{NoteText, PlannedRow, RowStatus, SyncAction, SyncPlan, SyncReport};
use serde_json::{Value, json};

use crate::exit::{Exit, in_cli_words};

/// How many rows a text plan or summary lists; `-o json` and `--report` list them all.
const SHOWN: usize = 50;

/// A plan as text: each row that changes something, then the counts.
pub(crate) fn plan_text(file: &str, plan: &SyncPlan, prune: bool) -> String {
    let what = if plan.undo { "Undo plan" } else { "Plan" };
    let mut text = format!(
        "{what} for {file} ({} call(s) read; journal {}); nothing was sent:\n",
        plan.calls_read,
        plan.journal.display()
    );
    let changes: Vec<&PlannedRow> = plan
        .rows
        .iter()
        .filter(|r| r.action != SyncAction::Unchanged)
        .collect();
    for row in changes.iter().take(SHOWN) {
        text.push_str(&format!("  {}\n", row_text(row)));
    }
    if changes.len() > SHOWN {
        text.push_str(&format!(
            "  ... and {} more (-o json or --report lists every row)\n",
            changes.len() - SHOWN
        ));
    }
    let c = plan.counts;
    text.push_str(&format!(
        "{} to add, {} to update, {} to delete, {} unchanged",
        c.add,
        c.update,
        c.delete,
        c.unchanged + c.adopt
    ));
    if c.adopt > 0 {
        text.push_str(&format!(" ({} adopted)", c.adopt));
    }
    if c.keep > 0 {
        text.push_str(&format!(
            ", {} kept (removed from the file{})",
            c.keep,
            if prune { "" } else { "; --prune deletes them" }
        ));
    }
    if c.fail > 0 {
        text.push_str(&format!(", {} that cannot be synced", c.fail));
    }
    text.push('.');
    if plan.undo && plan.is_empty() {
        text.push_str(" Nothing to undo: the last sync changed nothing, or was undone already.");
    }
    text
}

/// One row of a plan: where, what, the text before and after, and why.
fn row_text(row: &PlannedRow) -> String {
    let mut text = row_head(row);
    if let Some(reason) = &row.reason {
        text.push_str(&format!(" ({})", in_cli_words(reason)));
    }
    text
}

/// One row of a plan without the reason: where, what, and the text before and after.
fn row_head(row: &PlannedRow) -> String {
    let place = match row.line {
        Some(line) => format!("line {line}"),
        None => "removed".to_string(),
    };
    let key = if row.key == row.call_id {
        String::new()
    } else {
        format!(" key {}", row.key)
    };
    format!(
        "{place:<10} {:<9} call {}{key}: {}",
        row.action.as_str(),
        row.call_id,
        change(row.old.as_ref(), row.new.as_ref())
    )
}

/// The change from `old` to `new`, in words.
fn change(old: Option<&NoteText>, new: Option<&NoteText>) -> String {
    let flag = |t: &NoteText| match t.flagged {
        Some(true) => " [flagged]",
        _ => "",
    };
    match (old, new) {
        // The same text, and a flag the row leaves as it is or sets as it was.
        (Some(old), Some(new))
            if old.content == new.content
                && new
                    .flagged
                    .is_none_or(|f| old.flagged.unwrap_or(false) == f) =>
        {
            format!("{:?}{}", short(&new.content), flag(new))
        }
        (Some(old), Some(new)) if old.content == new.content => format!(
            "{:?} flag {} -> {}",
            short(&new.content),
            old.flagged.unwrap_or(false),
            new.flagged.unwrap_or(false)
        ),
        (Some(old), Some(new)) => format!(
            "{:?}{} -> {:?}{}",
            short(&old.content),
            flag(old),
            short(&new.content),
            flag(new)
        ),
        (None, Some(new)) => format!("{:?}{}", short(&new.content), flag(new)),
        (Some(old), None) => format!("{:?}{}", short(&old.content), flag(old)),
        (None, None) => String::new(),
    }
}

/// A text on one line, at most 60 characters.
fn short(text: &str) -> String {
    crate::print::one_line(text, 60)
}

/// A plan as JSON.
pub(crate) fn plan_json(plan: &SyncPlan) -> Value {
    let c = plan.counts;
    json!({
        "plan": true,
        "undo": plan.undo,
        "added": c.add,
        "updated": c.update,
        "deleted": c.delete,
        "unchanged": c.unchanged + c.adopt,
        "adopted": c.adopt,
        "kept": c.keep,
        "failed": c.fail,
        "calls_read": plan.calls_read,
        "journal": plan.journal.display().to_string(),
        "rows": plan.rows,
    })
}

/// A run's summary: the counts, the rows that did not end well, and what to do.
pub(crate) fn report_text(file: &str, report: &SyncReport, interrupted: bool) -> String {
    if report.undo && report.rows.is_empty() {
        return format!(
            "Nothing to undo for {file}: the last sync changed nothing, or it was undone already."
        );
    }
    let verb = if report.undo {
        "Undid the last sync of"
    } else {
        "Synced"
    };
    let mut text = format!(
        "{verb} {file}: {} added, {} updated, {} deleted, {} unchanged",
        report.added, report.updated, report.deleted, report.unchanged
    );
    if report.kept > 0 {
        text.push_str(&format!(
            ", {} kept (removed from the file; --prune deletes them)",
            report.kept
        ));
    }
    if report.already > 0 {
        text.push_str(&format!(
            ", {} found already done (a note already gone, or one to put back still there)",
            report.already
        ));
    }
    text.push('.');
    let trouble: Vec<String> = report
        .rows
        .iter()
        .filter_map(|row| {
            let what = match &row.status {
                RowStatus::Failed(f) => format!("failed: {}", in_cli_words(&f.reason)),
                RowStatus::Unknown(reason) => format!("unknown: {}", in_cli_words(reason)),
                _ => return None,
            };
            Some(format!("\n  {}: {what}", row_head(&row.planned)))
        })
        .collect();
    for line in trouble.iter().take(SHOWN) {
        text.push_str(line);
    }
    if trouble.len() > SHOWN {
        text.push_str(&format!("\n  ... and {} more", trouble.len() - SHOWN));
    }
    text.push_str(&advice(report, interrupted));
    text
}

/// What to do next, from how the run ended.
fn advice(report: &SyncReport, interrupted: bool) -> String {
    let mut text = String::new();
    if report.not_sent > 0 {
        text.push_str(&format!(
            "\n{} change(s) were not sent{}: run the same command again to make them.",
            report.not_sent,
            if interrupted { " (interrupted)" } else { "" }
        ));
    }
    if report.unknown > 0 {
        text.push_str(&format!(
            "\n{} change(s) have an unknown outcome: run the same command again; it reads the \
             calls first and sends only what is missing.",
            report.unknown
        ));
    }
    if report.failed > 0 {
        text.push_str(&format!(
            "\n{} change(s) failed: fix what the messages say and run the same command again.",
            report.failed
        ));
    }
    if let Some(message) = report.stopped.as_ref().and_then(|s| s.message()) {
        text.push_str(&format!("\nThe run stopped: {}", in_cli_words(message)));
    }
    if let Some(line) = crate::summary::waited_too_long(report.stopped.as_ref()) {
        text.push_str(&format!("\n{}", line.trim_start()));
    }
    text
}

/// A run's summary as JSON.
pub(crate) fn report_json(report: &SyncReport, exit: Exit) -> Value {
    let rows: Vec<Value> = report
        .rows
        .iter()
        .map(|row| {
            let mut value = serde_json::to_value(&row.planned).unwrap_or(Value::Null);
            let (status, error) = match &row.status {
                RowStatus::Done => ("done", None),
                RowStatus::Failed(f) => ("failed", Some(in_cli_words(&f.reason))),
                RowStatus::Unknown(reason) => ("unknown", Some(in_cli_words(reason))),
                RowStatus::NotSent => ("not_sent", None),
                _ => ("unknown", None),
            };
            if let Value::Object(map) = &mut value {
                map.insert("status".into(), json!(status));
                map.insert("note_id".into(), json!(row.note_id));
                if row.already {
                    map.insert("already".into(), json!(true));
                }
                if row.updated_instead {
                    map.insert("updated_instead".into(), json!(true));
                }
                if let Some(error) = error {
                    map.insert("error".into(), json!(error));
                }
            }
            value
        })
        .collect();
    let value = json!({
        "plan": false,
        "undo": report.undo,
        "added": report.added,
        "updated": report.updated,
        "deleted": report.deleted,
        "unchanged": report.unchanged,
        "kept": report.kept,
        "failed": report.failed,
        "unknown": report.unknown,
        "already": report.already,
        "not_sent": report.not_sent,
        "exit_code": exit.code(),
        "journal": report.journal.display().to_string(),
        "rows": rows,
    });
    crate::summary::with_stop(value, report.stopped.as_ref())
}
