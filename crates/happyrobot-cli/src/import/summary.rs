//! The summary of an import: what became of every line, the exit code that follows from it, and
//! how it is shown (text on stderr, JSON on stdout).

use std::sync::atomic::Ordering;

use serde::Serialize;

use super::Stats;
use crate::exit::{CliError, Exit};

/// How many failed or unknown lines the summary keeps in memory (the journal has them all).
pub(crate) const MAX_LISTED: usize = 1000;
/// How many of them the text summary prints.
const MAX_PRINTED: usize = 20;

/// Lists up to [`MAX_PRINTED`] of `count` lines (line number, call, reason) in file order, and says
/// how many more the journal holds.
pub(crate) fn list_lines<'a>(
    out: &mut Vec<String>,
    count: usize,
    listed: impl Iterator<Item = (u64, &'a str, &'a str)>,
) {
    let mut listed: Vec<_> = listed.collect();
    listed.sort_by_key(|(line, _, _)| *line);
    for (line, call_id, reason) in listed.iter().take(MAX_PRINTED) {
        out.push(format!("    line {line} (call {call_id}): {reason}"));
    }
    if count > MAX_PRINTED {
        out.push(format!(
            "    ... and {} more (see the journal)",
            count - MAX_PRINTED
        ));
    }
}

/// A failed line, for the summary.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct FailedLine {
    pub(crate) line: u64,
    pub(crate) call_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<u16>,
    pub(crate) exit_code: u8,
    pub(crate) reason: String,
}

/// A line whose outcome is unknown, for the summary.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UnknownLine {
    pub(crate) line: u64,
    pub(crate) call_id: String,
    pub(crate) reason: String,
    /// Whether it became unknown in an earlier run (and was not sent again in this one).
    pub(crate) earlier_run: bool,
}

/// What looking up unknown outcomes on their calls found.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub(crate) struct Reconciled {
    /// On the call: added (counted as added, or as skipped for an earlier run's line).
    pub(crate) found: u64,
    /// Not on the call: sent again once, with the same note ID (always 0 in an undo, which sends
    /// nothing again: its absent lines are its `not_added`).
    pub(crate) sent_again: u64,
    /// Could not be told: still unknown.
    pub(crate) undecided: u64,
}

impl Reconciled {
    pub(crate) fn from_stats(stats: &Stats) -> Self {
        Self {
            found: stats.reconciled_found.load(Ordering::Relaxed),
            sent_again: stats.reconciled_absent.load(Ordering::Relaxed),
            undecided: stats.reconciled_undecided.load(Ordering::Relaxed),
        }
    }

    /// The summary line of an import, when anything was looked up.
    pub(crate) fn render(&self) -> Option<String> {
        self.render_with(self.sent_again, "not there and sent again once")
    }

    /// The summary line, with `absent` lookups that found the note not there, described as
    /// `absent_label` (an import sends them again; an undo has nothing to delete for them).
    pub(crate) fn render_with(&self, absent: u64, absent_label: &str) -> Option<String> {
        let total = self.found + absent + self.undecided;
        (total > 0).then(|| {
            format!(
                "  reconciled: {total} (unknown outcomes looked up on their calls: {} found \
                 added, {absent} {absent_label}, {} still undecided)",
                self.found, self.undecided
            )
        })
    }
}

/// What became of one line.
pub(crate) enum LineResult {
    Added,
    /// An earlier run's line whose unknown outcome turned out to be "added".
    AlreadyAdded,
    Failed(FailedLine, Exit),
    Unknown(UnknownLine),
    /// Not sent, because the import stopped first (its journal says "not started" or "failed",
    /// so a re-run sends it).
    NotSent,
    /// The journal could not be written: `result` says what became of the line all the same.
    JournalFailed {
        /// What became of the line all the same.
        result: Box<LineResult>,
        error: CliError,
    },
}

/// The outcome of the whole import.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Summary {
    pub(crate) file: String,
    pub(crate) journal: String,
    pub(crate) format: &'static str,
    /// Valid lines in the file.
    pub(crate) lines: u64,
    pub(crate) added: u64,
    /// Lines an earlier run had already added.
    pub(crate) skipped: u64,
    pub(crate) failed: u64,
    pub(crate) unknown: u64,
    /// Lines not sent because the import stopped early.
    pub(crate) not_sent: u64,
    pub(crate) rate_limited: u64,
    /// Lines whose unknown outcome was looked up on their calls.
    pub(crate) reconciled: Reconciled,
    pub(crate) interrupted: bool,
    /// The signal that interrupted the import, as its exit code.
    #[serde(skip)]
    pub(crate) signal: Option<Exit>,
    pub(crate) exit_code: u8,
    pub(crate) failed_lines: Vec<FailedLine>,
    pub(crate) unknown_lines: Vec<UnknownLine>,
    /// Lines that were sent but whose outcome the journal could not record.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) journal_failures: Vec<String>,
    #[serde(skip)]
    pub(crate) worst_failure: Option<Exit>,
    #[serde(skip)]
    pub(crate) auth_rejected: bool,
}

impl Summary {
    pub(crate) fn record(&mut self, result: LineResult, stats: &Stats) -> Option<CliError> {
        stats.processed.fetch_add(1, Ordering::Relaxed);
        match result {
            LineResult::Added => {
                self.added += 1;
                stats.added.fetch_add(1, Ordering::Relaxed);
            }
            LineResult::AlreadyAdded => self.skipped += 1,
            LineResult::Failed(line, exit) => {
                self.failed += 1;
                stats.failed.fetch_add(1, Ordering::Relaxed);
                if exit == Exit::Auth {
                    self.auth_rejected = true;
                }
                self.worst_failure = self.worst_failure.max(Some(exit));
                if self.failed_lines.len() < MAX_LISTED {
                    self.failed_lines.push(line);
                }
            }
            LineResult::Unknown(line) => self.unknown(line, stats),
            LineResult::NotSent => {}
            LineResult::JournalFailed { result, error } => {
                // The line's outcome counts as it was (an added note is added, whatever the
                // journal could record); the processed counter was already moved once.
                stats.processed.fetch_sub(1, Ordering::Relaxed);
                let sent = !matches!(*result, LineResult::NotSent);
                self.record(*result, stats);
                // Several workers can hit a full disk at once: every line that was sent is
                // named, not only the first error to arrive.
                if sent && self.journal_failures.len() < MAX_LISTED {
                    self.journal_failures.push(error.message.clone());
                }
                return Some(error);
            }
        }
        None
    }

    pub(crate) fn unknown(&mut self, line: UnknownLine, stats: &Stats) {
        self.unknown += 1;
        stats.unknown.fetch_add(1, Ordering::Relaxed);
        if self.unknown_lines.len() < MAX_LISTED {
            self.unknown_lines.push(line);
        }
    }

    /// Whether this run sent any request (so that exit 2, "nothing was sent", is ruled out).
    pub(crate) fn sent(&self) -> bool {
        self.added > 0
            || self.failed > 0
            || self.unknown_lines.iter().any(|u| !u.earlier_run)
            || self.rate_limited > 0
    }

    /// The exit code: unknown outcomes first (they need a person to look), then a rejected key,
    /// an interruption, and the worst failure.
    pub(crate) fn exit(&self) -> Exit {
        if self.unknown > 0 {
            Exit::Unknown
        } else if self.auth_rejected {
            Exit::Auth
        } else if self.interrupted {
            self.signal.unwrap_or(Exit::Interrupted)
        } else {
            self.worst_failure.unwrap_or(Exit::Success)
        }
    }

    /// Prints the text summary on stderr.
    pub(crate) fn print_text(&self) {
        crate::output::err(&self.render_text());
    }

    /// The text summary, one line per count and listed line.
    pub(crate) fn render_text(&self) -> String {
        let mut lines = vec![format!(
            "Import of {} ({}): {} line{}",
            self.file,
            self.format,
            self.lines,
            if self.lines == 1 { "" } else { "s" }
        )];
        lines.push(format!("  added:    {}", self.added));
        lines.push(format!(
            "  skipped:  {} (already added by an earlier run)",
            self.skipped
        ));
        lines.push(format!("  failed:   {}", self.failed));
        list_lines(
            &mut lines,
            self.failed as usize,
            self.failed_lines
                .iter()
                .map(|f| (f.line, f.call_id.as_str(), f.reason.as_str())),
        );
        lines.extend(self.reconciled.render());
        lines.push(format!("  unknown:  {}", self.unknown));
        list_lines(
            &mut lines,
            self.unknown as usize,
            self.unknown_lines
                .iter()
                .map(|u| (u.line, u.call_id.as_str(), u.reason.as_str())),
        );
        if self.unknown > 0 {
            lines.push(
                "  These notes may have been added: check the calls, then run the same command \
                 with --retry-unknown to send them again if they are missing."
                    .to_string(),
            );
        }
        if self.not_sent > 0 {
            lines.push(format!(
                "  not sent: {} (the import stopped early; run the same command to continue)",
                self.not_sent
            ));
        }
        if self.rate_limited > 0 {
            lines.push(format!(
                "  rate limited {} time{} (all requests paused as the API asked)",
                self.rate_limited,
                if self.rate_limited == 1 { "" } else { "s" }
            ));
        }
        if self.interrupted {
            lines.push("  interrupted: run the same command to continue".to_string());
        }
        if self.failed > 0 {
            lines.push(
                "  Failed lines were certainly not added; a re-run sends them again.".to_string(),
            );
        }
        for failure in self.journal_failures.iter().take(MAX_PRINTED) {
            lines.push(format!("  journal not written: {failure}"));
        }
        lines.push(format!("Journal: {}", self.journal));
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(line: u64, exit: Exit) -> LineResult {
        LineResult::Failed(
            FailedLine {
                line,
                call_id: "c".into(),
                status: Some(404),
                exit_code: exit.code(),
                reason: "no such call".into(),
            },
            exit,
        )
    }

    #[test]
    fn unknown_beats_a_rejected_key_which_beats_failures() {
        let stats = Stats::default();
        let mut summary = Summary::default();
        assert_eq!(summary.exit(), Exit::Success);
        summary.record(LineResult::Added, &stats);
        summary.record(failed(3, Exit::NotFound), &stats);
        summary.record(failed(4, Exit::Network), &stats);
        assert_eq!(summary.exit(), Exit::Network, "the worst failure");
        summary.interrupted = true;
        assert_eq!(summary.exit(), Exit::Interrupted);
        summary.record(failed(5, Exit::Auth), &stats);
        assert_eq!(summary.exit(), Exit::Auth);
        summary.record(
            LineResult::Unknown(UnknownLine {
                line: 6,
                call_id: "c".into(),
                reason: "timeout".into(),
                earlier_run: false,
            }),
            &stats,
        );
        assert_eq!(summary.exit(), Exit::Unknown);
        assert_eq!(stats.processed.load(Ordering::Relaxed), 5);
    }

    #[test]
    fn the_text_lists_failed_lines_in_file_order() {
        let stats = Stats::default();
        let mut summary = Summary {
            file: "notes.csv".into(),
            journal: "notes.csv.journal".into(),
            format: "csv",
            lines: 3,
            ..Summary::default()
        };
        summary.record(failed(9, Exit::NotFound), &stats);
        summary.record(failed(4, Exit::NotFound), &stats);
        let text = summary.render_text();
        let nine = text.find("line 9").unwrap();
        let four = text.find("line 4").unwrap();
        assert!(four < nine, "{text}");
        assert!(
            text.starts_with("Import of notes.csv (csv): 3 lines"),
            "{text}"
        );
        assert!(text.contains("a re-run sends them again"), "{text}");
        assert!(text.ends_with("Journal: notes.csv.journal"), "{text}");
    }
}
