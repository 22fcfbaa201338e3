//! The command line of `notes import`: its options and the help text after them.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::output::Output;

/// The text after the options in `notes import --help`.
pub(crate) const IMPORT_HELP: &str = "\
Input:
  CSV with a header line naming the columns call_id, content and (optionally) flagged, or JSON
  Lines with the same keys. flagged accepts true/false, 1/0, yes/no or empty. The whole file is
  checked first; if any line is invalid, every problem is listed and nothing is sent.

Journal:
  Every line is recorded in the journal (default: <FILE>.journal, or the journal of a file with
  the same content imported to the same API) before it is sent and again when its outcome is
  known. Re-running the same command skips the lines already added, even if the file was
  edited, renamed or copied; a journal counts only for the API it was written against. Lines
  that certainly failed (4xx, or rate limits and connection failures after every retry) are
  sent again on every re-run. Only one import (or undo) runs on a journal at a time.

Unknown outcomes:
  A line whose outcome is unknown (timeout, dropped connection, 5xx, or a run killed while it
  was in flight) may have been added. Each note is sent with a client-chosen note ID, recorded
  in the journal, so the import looks the note up on its call (reconciles it), in this run and
  for the lines an earlier run left: found, the line is done; absent (twice, a few seconds
  apart), it is sent once more with the same ID; otherwise it stays unknown and is listed (a
  server that does not keep client IDs, with a note of the same text on the call). Such lines
  are sent again only with --retry-unknown. --no-reconcile lists every unknown line instead.

Undo (--undo):
  Deletes exactly the notes this file's journal records as added to this API, by note ID, and
  nothing else; lines whose add outcome is unknown are reconciled first, or listed. It is
  journaled too: stopped or killed, run it again to finish; once done it deletes nothing and
  exits 0. A note already gone counts as deleted. Refused (exit 2, nothing sent) when the
  journal records no import of this file's content to this API. A later import sends the
  undone lines again.

Exit codes:
  0  every line added (or already added); with --undo, every added note deleted
  2  invalid file or options; nothing was sent
  3  the API rejected the key; the import stopped
  4, 5, 6  some lines failed (the worst: 6 network, 5 other API error, 4 call not found)
  7  some lines have an unknown outcome (this beats any failure); with --undo, also a delete
     whose outcome stayed unknown
  129, 130, 143  stopped by SIGHUP, Ctrl-C (SIGINT) or SIGTERM; re-run the command to continue";

/// The input formats of `notes import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Comma-separated values with a header line.
    Csv,
    /// One JSON object per line (also .ndjson).
    Jsonl,
}

/// Options of `notes import`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ImportArgs {
    /// The file of notes (.csv, .jsonl or .ndjson); - reads standard input (then give --format
    /// and --journal).
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// The file's format [default: from its extension].
    #[arg(long, value_enum)]
    pub(crate) format: Option<Format>,

    /// How many requests are in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) concurrency: u16,

    #[arg(
        long,
        value_name = "PATH",
        help = "Where the progress of the import is recorded [default: <FILE>.journal]"
    )]
    pub(crate) journal: Option<PathBuf>,

    /// Check the file and say how many lines would be sent; send nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Also send again the lines whose outcome is unknown and could not be settled by looking at
    /// their calls (they may then be added twice).
    #[arg(long)]
    pub(crate) retry_unknown: bool,

    /// Do not look up lines whose outcome is unknown on their calls: list them (exit 7).
    #[arg(long)]
    pub(crate) no_reconcile: bool,

    /// Delete the notes this file's journal records as added (and nothing else), instead of
    /// importing.
    #[arg(long, conflicts_with_all = ["retry_unknown", "allow_duplicates"])]
    pub(crate) undo: bool,

    /// Send identical lines (same call, text and flag) as separate notes instead of refusing the
    /// file.
    #[arg(long)]
    pub(crate) allow_duplicates: bool,

    /// Make the journal durable against power loss too (fsync after every entry; slower).
    #[arg(long)]
    pub(crate) fsync: bool,

    /// text: a summary on stderr; json: the summary as JSON on stdout as well.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}
