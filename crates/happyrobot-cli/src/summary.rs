//! How the reports of `notes import` and `notes import --undo` are shown: as text on stderr, and
//! with `--output json` as JSON on stdout, whose field names scripts rely on. Nothing here decides
//! anything: the library counted, `exit::run_exit` chose the exit code.

use happyrobot_bulk::{FailedLine, Plan, Report, Stop, UndoPlan, UndoReport, UnknownLine};
use serde_json::{Value, json};

use crate::exit::{Exit, exit_for_kind, in_cli_words};

/// How many failed or unknown lines the text summary prints.
const MAX_PRINTED: usize = 20;

/// Lists up to [`MAX_PRINTED`] of `count` lines (line number, call, reason) in input order, and
/// says how many more the journal holds.
fn list_lines<'a>(
    out: &mut Vec<String>,
    count: u64,
    listed: impl Iterator<Item = (u64, &'a str, &'a str)>,
) {
    let mut listed: Vec<_> = listed.collect();
    listed.sort_by_key(|(line, _, _)| *line);
    for (line, call_id, reason) in listed.iter().take(MAX_PRINTED) {
        let reason = in_cli_words(reason);
        out.push(format!("    line {line} (call {call_id}): {reason}"));
    }
    if count as usize > MAX_PRINTED {
        out.push(format!(
            "    ... and {} more (see the journal)",
            count as usize - MAX_PRINTED
        ));
    }
}

fn failed(lines: &[FailedLine]) -> impl Iterator<Item = (u64, &str, &str)> {
    lines
        .iter()
        .map(|f| (f.line, f.call_id.as_str(), f.failure.reason.as_str()))
}

fn unknown(lines: &[UnknownLine]) -> impl Iterator<Item = (u64, &str, &str)> {
    lines
        .iter()
        .map(|u| (u.line, u.call_id.as_str(), u.unknown.reason.as_str()))
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// How many of `count` notes were flagged, when any were: " (3 flagged)".
fn flagged_of(count: u64, flagged: u64) -> String {
    if count > 0 && flagged > 0 {
        format!(" ({flagged} flagged)")
    } else {
        String::new()
    }
}

/// The reconciliation line, when anything was looked up.
fn reconciled_line(found: u64, absent: u64, absent_label: &str, undecided: u64) -> Option<String> {
    let total = found + absent + undecided;
    (total > 0).then(|| {
        format!(
            "  reconciled: {total} (unknown outcomes looked up on their calls: {found} found \
             added, {absent} {absent_label}, {undecided} still undecided)"
        )
    })
}

/// What to do about unknown lines, as their case says: a plain re-run when it can settle them
/// (they were not looked up, or their calls could not be read: an outage); `--retry-unknown`,
/// which can add a note twice, only for those that looking up could not tell.
fn unknown_advice(lines: &[UnknownLine], undo: bool, reconcile: bool) -> &'static str {
    let undecided = lines
        .iter()
        .any(|u| u.unknown.looked_up && !u.unknown.lookup_failed);
    let unreadable = lines.iter().any(|u| u.unknown.lookup_failed);
    match (undo, undecided, unreadable, reconcile) {
        (true, false, _, _) => {
            "  These notes may or may not exist. Run the same command again (later, if the \
             server was failing): it settles them, and deletes each note once (one whose add was \
             in doubt is looked up on its call first; a delete in doubt is sent again, and a \
             note already gone counts as deleted)."
        }
        (true, true, _, _) => {
            "  These notes may or may not exist, and looking them up could not tell: check the \
             calls (happyrobot calls get CALL_ID) and delete them with happyrobot notes delete if \
             they are there."
        }
        (false, false, true, _) => {
            "  These notes may have been added, and their calls could not be read to tell. Run \
             the same command again later: it looks them up first and sends only those certainly \
             not added (nothing is sent twice). --retry-unknown would send them blind, and can \
             add them twice."
        }
        (false, false, false, true) => {
            "  These notes may have been added. Run the same command again: it looks them up on \
             their calls and settles them (nothing is sent twice)."
        }
        (false, false, false, false) => {
            "  These notes may have been added. Run the command again without --no-reconcile: it \
             looks them up on their calls and settles them (nothing is sent twice). \
             --retry-unknown would send them again, and can add them twice."
        }
        (false, true, _, _) => {
            "  These notes may have been added, and looking them up could not tell (see the \
             reasons): check the calls, then run the same command with --retry-unknown to send \
             them again if they are missing. Lines whose calls could not be read are settled by \
             a plain re-run."
        }
    }
}

/// The rate-limit line of a run the server refused `refused` requests with 429: sent again in
/// their turn, unless a 429 asked for a wait longer than the run waits (`stopped`), which ended
/// the run.
fn rate_limited_line(refused: u64, learned: Option<f64>, stopped: Option<&Stop>) -> String {
    let allows = learned.map_or_else(String::new, |rate| {
        format!(" (it allows about {rate:.1} requests/s)")
    });
    let then = match stopped {
        Some(Stop::RetryAfterTooLong(wait)) => format!(
            "; the last asked to wait {} s, longer than a run waits (--max-retry-after), and \
             stopped the run",
            wait.as_secs()
        ),
        _ => "; they were sent again in their turn".to_string(),
    };
    format!(
        "  rate limited: the server refused {refused} request{} with 429{allows}{then}",
        plural(refused)
    )
}

/// The line of a run stopped because the API asked to wait too long.
pub(crate) fn waited_too_long(stopped: Option<&Stop>) -> Option<String> {
    match stopped {
        Some(Stop::RetryAfterTooLong(wait)) => Some(format!(
            "  stopped: the server's rate limit asks to wait {} s before the next request (a \
             Retry-After or a quota's reset, given to this run or to another command under the \
             same key), longer than --max-retry-after; run the same command later: it sends \
             what is not done (not sent, or failed), and only that",
            wait.as_secs()
        )),
        _ => None,
    }
}

/// A run's JSON summary `value`, with `retry_after_secs` when a `Retry-After` longer than the run
/// waits (`--max-retry-after`) stopped it: the wait the server asked for.
pub(crate) fn with_stop(mut value: Value, stopped: Option<&Stop>) -> Value {
    if let Some(Stop::RetryAfterTooLong(wait)) = stopped {
        value["retry_after_secs"] = json!(wait.as_secs());
    }
    value
}

/// The text summary of an import.
pub(crate) fn import_text(report: &Report, interrupted: bool, reconcile: bool) -> String {
    let mut lines = vec![format!(
        "Import of {} ({}): {} line{}",
        report.file,
        report.format,
        report.lines,
        plural(report.lines)
    )];
    lines.push(format!(
        "  added:    {}{}",
        report.added,
        flagged_of(report.added, report.flagged)
    ));
    lines.push(format!(
        "  skipped:  {} (already added by an earlier run)",
        report.skipped
    ));
    lines.push(format!("  failed:   {}", report.failed));
    list_lines(&mut lines, report.failed, failed(&report.failed_lines));
    let r = report.reconciled;
    lines.extend(reconciled_line(
        r.found,
        r.sent_again,
        "not there and sent again once",
        r.undecided,
    ));
    lines.push(format!("  unknown:  {}", report.unknown));
    list_lines(&mut lines, report.unknown, unknown(&report.unknown_lines));
    if report.unknown > 0 {
        lines.push(unknown_advice(&report.unknown_lines, false, reconcile).to_string());
    }
    if report.copies_removed > 0 {
        lines.push(format!(
            "  copies removed: {} (a first attempt applied late, after its note was sent again; \
             the extra note was deleted)",
            report.copies_removed
        ));
    }
    if report.not_sent > 0 {
        lines.push(format!(
            "  not sent: {} (the import stopped early; run the same command to continue)",
            report.not_sent
        ));
    }
    if report.rate_limited > 0 {
        lines.push(rate_limited_line(
            report.rate_limited,
            report.learned_rate,
            report.stopped.as_ref(),
        ));
    }
    lines.extend(waited_too_long(report.stopped.as_ref()));
    if interrupted {
        lines.push("  interrupted: run the same command to continue".to_string());
    }
    if report.failed > 0 {
        lines.push(
            "  Failed lines were certainly not added; a re-run sends them again.".to_string(),
        );
    }
    for failure in report.journal_failures.iter().take(MAX_PRINTED) {
        lines.push(format!("  journal not written: {failure}"));
    }
    lines.push(format!("Journal: {}", report.journal));
    lines.join("\n")
}

fn failed_json(lines: &[FailedLine]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|f| {
                let mut line = json!({
                    "line": f.line,
                    "call_id": f.call_id,
                    "exit_code": exit_for_kind(f.failure.kind).code(),
                    "kind": f.failure.kind,
                    "reason": in_cli_words(&f.failure.reason),
                });
                if let Some(status) = f.failure.status {
                    line["status"] = json!(status);
                }
                line
            })
            .collect(),
    )
}

/// The unknown lines as JSON: each as the library serializes it, its reason in the command's
/// words.
fn unknown_json(lines: &[UnknownLine]) -> Value {
    Value::Array(
        lines
            .iter()
            .map(|u| {
                let mut line = json!(u);
                line["reason"] = json!(in_cli_words(&u.unknown.reason));
                line
            })
            .collect(),
    )
}

/// The JSON summary of an import.
pub(crate) fn import_json(report: &Report, exit: Exit, interrupted: bool) -> Value {
    let mut value = json!({
        "file": report.file,
        "journal": report.journal,
        "format": report.format,
        "lines": report.lines,
        "added": report.added,
        "flagged": report.flagged,
        "skipped": report.skipped,
        "failed": report.failed,
        "unknown": report.unknown,
        "not_sent": report.not_sent,
        "rate_limited": report.rate_limited,
        "reconciled": report.reconciled,
        "copies_removed": report.copies_removed,
        "interrupted": interrupted,
        "exit_code": exit.code(),
        "failed_lines": failed_json(&report.failed_lines),
        "unknown_lines": unknown_json(&report.unknown_lines),
    });
    if !report.journal_failures.is_empty() {
        value["journal_failures"] = json!(report.journal_failures);
    }
    if let Some(rate) = report.learned_rate {
        value["learned_rate"] = json!(rate);
    }
    with_stop(value, report.stopped.as_ref())
}

/// The text summary of an undo.
pub(crate) fn undo_text(report: &UndoReport, interrupted: bool) -> String {
    let mut out = vec![format!(
        "Undo of the import of {}: {} note{} to delete",
        report.file,
        report.to_delete,
        plural(report.to_delete)
    )];
    if report.removed_lines > 0 {
        out[0].push_str(&format!(
            " ({} of lines this file no longer has: edited or removed since)",
            report.removed_lines
        ));
    }
    out.push(deleted_line(report));
    out.push(format!(
        "  skipped:     {} (deleted by an earlier undo)",
        report.skipped
    ));
    if report.not_added > 0 {
        out.push(format!(
            "  not added:   {} (their outcome was unknown; they are not on their calls)",
            report.not_added
        ));
    }
    let r = report.reconciled;
    out.extend(reconciled_line(
        r.found,
        report.not_added,
        "not there (not added)",
        r.undecided,
    ));
    out.push(format!("  failed:      {}", report.failed));
    list_lines(&mut out, report.failed, failed(&report.failed_lines));
    out.push(format!("  unknown:     {}", report.unknown));
    list_lines(&mut out, report.unknown, unknown(&report.unknown_lines));
    if report.unknown > 0 {
        out.push(unknown_advice(&report.unknown_lines, true, true).to_string());
    }
    if report.copies_removed > 0 {
        out.push(format!("  copies deleted too: {}", report.copies_removed));
    }
    if report.not_deleted > 0 {
        out.push(format!(
            "  not deleted: {} (the undo stopped early; run the same command to continue)",
            report.not_deleted
        ));
    }
    out.extend(waited_too_long(report.stopped.as_ref()));
    if interrupted {
        out.push("  interrupted: run the same command to continue".to_string());
    }
    if report.failed > 0 {
        out.push(
            "  Failed notes were not deleted; running the same command tries them again."
                .to_string(),
        );
    }
    out.push(undo_left(report, interrupted));
    out.push(format!("Journal: {}", report.journal));
    out.join("\n")
}

/// An undo's count of deleted notes, with how many were already gone and how many flagged.
fn deleted_line(report: &UndoReport) -> String {
    let flagged = if report.flagged > 0 {
        format!(", {} flagged", report.flagged)
    } else {
        String::new()
    };
    format!(
        "  deleted:     {} ({} of them already gone{flagged})",
        report.deleted, report.already_gone
    )
}

/// What is left to do after an undo, in one line, as the import's summary says it.
fn undo_left(report: &UndoReport, interrupted: bool) -> String {
    let left = report.failed + report.unknown + report.not_deleted;
    if left == 0 && !interrupted && report.stopped.is_none() {
        return "  Nothing left to do: every note the import added is deleted (running the same \
                command again deletes nothing)."
            .to_string();
    }
    format!(
        "  Left to do: {left} note{} may still be on {} call{}: {}",
        plural(left),
        if left == 1 { "its" } else { "their" },
        plural(left),
        if report.unknown > 0 && report.failed + report.not_deleted == 0 {
            "see the advice above"
        } else {
            "run the same command again to finish the undo"
        }
    )
}

/// The JSON summary of an undo.
pub(crate) fn undo_json(report: &UndoReport, exit: Exit, interrupted: bool) -> Value {
    let value = json!({
        "file": report.file,
        "journal": report.journal,
        "undo": true,
        "to_delete": report.to_delete,
        "removed_lines": report.removed_lines,
        "deleted": report.deleted,
        "already_gone": report.already_gone,
        "flagged": report.flagged,
        "skipped": report.skipped,
        "not_added": report.not_added,
        "failed": report.failed,
        "unknown": report.unknown,
        "not_deleted": report.not_deleted,
        "reconciled": report.reconciled,
        "copies_removed": report.copies_removed,
        "interrupted": interrupted,
        "exit_code": exit.code(),
        "failed_lines": failed_json(&report.failed_lines),
        "unknown_lines": unknown_json(&report.unknown_lines),
    });
    with_stop(value, report.stopped.as_ref())
}

/// The dry run of an import.
pub(crate) fn import_plan(file: &str, plan: &Plan, retry_unknown: bool, reconcile: bool) -> String {
    let unknown = plan.unknown_before + plan.in_doubt;
    let sent_unknown = if retry_unknown { unknown } else { 0 };
    let new = plan.new_lines();
    let to_send = new + plan.failed_before + sent_unknown;
    let mut text = format!(
        "Dry run of {file}: {} valid line{}; nothing was sent.\n  \
         would be sent:    {to_send} ({new} new, {} that failed before{})\n  \
         already added:    {}\n  \
         unknown outcome:  {unknown} ({})",
        plan.lines,
        plural(plan.lines),
        plan.failed_before,
        if retry_unknown {
            format!(", {unknown} with an unknown outcome")
        } else {
            String::new()
        },
        plan.done,
        match (reconcile, retry_unknown) {
            (false, true) => "sent again because of --retry-unknown",
            (false, false) => "not sent; --retry-unknown would send them",
            (true, true) => {
                "looked up on their calls first; the undecided ones sent again because of \
                 --retry-unknown"
            }
            (true, false) =>
                "looked up on their calls first; --retry-unknown would send the undecided ones",
        }
    );
    if plan.in_doubt > 0 {
        text.push_str(&format!(
            "\n  in doubt:         {} (the journal is damaged where it may have said more of them: \
             looked up on their calls first)",
            plan.in_doubt
        ));
    }
    text
}

/// The dry run of an undo.
pub(crate) fn undo_plan(file: &str, plan: &UndoPlan, reconcile: bool) -> String {
    format!(
        "Dry run of the undo of {file}: nothing was sent.\n  \
         would be deleted: {}{}\n  \
         already deleted:  {}\n  \
         unknown outcome:  {} (looked up on their calls first{})",
        plan.to_delete,
        if plan.removed_lines > 0 {
            format!(
                " ({} of lines this file no longer has: edited or removed since)",
                plan.removed_lines
            )
        } else {
            String::new()
        },
        plan.already_deleted,
        plan.unknown,
        if reconcile {
            ""
        } else {
            "; not with --no-reconcile"
        }
    )
}
