//! `happyrobot notes sync`: turns the options into a [`happyrobot_bulk::Sync`], shows its plan
//! (`--plan`) or applies it, maps the signals onto its stop token, and prints its report. The
//! engine decides everything else.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use happyrobot::CancellationToken;
use happyrobot_bulk::{JournalLocation, Source, Stop, Sync, SyncPlan, SyncReport};

use crate::bulk_args::{FormatArg, PaceArgs, ReadArgs, bulk_error, exit_of, finish, flag};
use crate::command::RunCommand;
use crate::context::{Context, Needs};
use crate::exit::{CliError, Exit};
use crate::print::{self, Output};
use crate::progress::{Counts, Progress};
use crate::signals::Watch;
use crate::sync_summary;

/// The text after the options in `notes sync --help`.
pub(crate) const SYNC_HELP: &str = "\
Examples:
  happyrobot notes sync review.xlsx --plan        # what a sync would change; sends nothing
  happyrobot notes sync review.xlsx               # make the calls' notes match the sheet
  happyrobot notes sync review.xlsx --prune       # ...and delete the notes of removed rows
  happyrobot notes sync review.xlsx --undo        # change back what the last sync changed
  happyrobot notes sync loads.csv --key-column load_id

What a sync does:
  Each row's note is found on its call: missing, it is added; its text or flag differ, it is
  updated in place (the same note); the same, nothing is sent. Rows are known by their call, or
  with --key-column by a column of your own (an external ID), which a call may have several of
  and which may move to another call. The notes of rows removed from the file are kept and listed,
  or deleted with --prune. Only notes a sync added (or adopted) are ever changed or deleted: notes
  written in the app or by other tools are never touched. A synced note changed or deleted in the
  app is put back to the file's version. The file is read in full and every call it names is read
  once before anything is sent; --plan stops there.

Journal:
  <FILE>.sync.journal beside the file (or --journal PATH) records every change before it is sent
  and when its outcome is known, so that an interrupted or repeated sync sends nothing twice; it is
  found again after any edit of the file. The note IDs a sync sends derive from the call and the
  row's key, so that a sync whose journal was lost finds its notes on their calls. A file imported
  with notes import is adopted by its first sync (the import's notes are not added again); a first
  sync that would put a second note with the same text beside one it did not make is refused,
  unless --adopt-existing takes such notes over.

Exit codes: as notes import (0 done, 2 invalid file or options and nothing sent, 3 key refused,
  4-6 some rows failed, 5 also a Retry-After longer than --max-retry-after that stopped the run,
  7 some outcomes unknown: run the same command again, it reads first).";

/// Options of `notes sync`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SyncArgs {
    /// The file of notes (.csv, .tsv, .txt, .jsonl, .ndjson, .xlsx, .xlsm, .xls, .ods; any other
    /// name with --format); - reads standard input (then give --format and --journal).
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// The file's format [default: from its extension].
    #[arg(long, value_enum)]
    pub(crate) format: Option<FormatArg>,

    /// The column whose value identifies a row across edits (an external ID) [default: the call
    /// ID, which then may appear only once].
    #[arg(long, value_name = "NAME")]
    pub(crate) key_column: Option<String>,

    /// Show what a sync would do, row by row, and send nothing (reads the calls only).
    #[arg(long)]
    pub(crate) plan: bool,

    /// Delete the notes of rows removed from the file (they are kept without it).
    #[arg(long)]
    pub(crate) prune: bool,

    /// Change back everything the last sync changed (updates, adds, prunes).
    #[arg(long, conflicts_with_all = ["prune", "adopt_existing"])]
    pub(crate) undo: bool,

    /// On a first sync, take over notes with a row's text that no sync made, instead of refusing.
    #[arg(long)]
    pub(crate) adopt_existing: bool,

    #[command(flatten)]
    pub(crate) pace: PaceArgs,

    /// Where the sync's progress is recorded [default: <FILE>.sync.journal].
    #[arg(long, value_name = "PATH")]
    pub(crate) journal: Option<PathBuf>,

    /// Make the journal durable against power loss too (fsync after every entry; slower).
    #[arg(long)]
    pub(crate) fsync: bool,

    #[command(flatten)]
    pub(crate) read: ReadArgs,

    /// Write every row with its action, status (done, already done, updated instead, failed,
    /// unknown, not sent; planned with --plan), note ID and error to this file when the run ends:
    /// a workbook if it ends in .xlsx, else CSV [default FILE: beside the input,
    /// <NAME>.results.xlsx for a workbook, else <NAME>.results.csv].
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    pub(crate) report: Option<Option<PathBuf>>,

    /// text: the plan or summary on stderr; json: as JSON on stdout as well.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}

impl RunCommand for SyncArgs {
    /// The options, the source, the temporary copy it may be read from (kept until the command
    /// ends) and its name as shown.
    type Input = (SyncArgs, Source, crate::stdin::Input, String);

    fn output(&self) -> Output {
        self.output
    }

    fn needs(&self) -> Needs {
        Needs {
            rate: self.pace.rate,
            dry_run: false,
            run: true,
        }
    }

    fn check(mut self) -> Result<Self::Input, CliError> {
        self.report = crate::bulk_args::report_path(&self.file, &self.report)?.map(Some);
        let (source, input, shown) =
            crate::bulk_args::source(&self.file, self.format, &self.read, self.journal.is_some())?;
        Ok((self, source, input, shown))
    }

    async fn run(input: Self::Input, context: Context) -> Result<Exit, CliError> {
        let (args, source, _input, shown) = input;
        run(context, args, source, shown).await
    }
}

/// The sync the options ask for.
fn sync(context: &Context, args: &SyncArgs, token: &CancellationToken) -> Sync {
    let journal = match &args.journal {
        Some(path) => JournalLocation::path(path),
        None => JournalLocation::BesideInput,
    };
    let mut sync = Sync::new(context.client.clone(), journal)
        .concurrency(usize::from(args.pace.concurrency))
        .prune(args.prune)
        .adopt_existing(args.adopt_existing)
        .fsync(args.fsync)
        .option_names(flag)
        .stop(token.clone());
    if let Some(column) = &args.key_column {
        sync = sync.key_column(column.clone());
    }
    if let Some(Some(report)) = &args.report {
        sync = sync.results_file(report);
    }
    sync
}

async fn run(
    context: Context,
    args: SyncArgs,
    source: Source,
    shown: String,
) -> Result<Exit, CliError> {
    let token = CancellationToken::new();
    let sync = sync(&context, &args, &token);
    let waits = if args.undo {
        sync.undo_plan_waits(&source)
    } else {
        sync.plan_waits(&source).await
    };
    if let Ok(Some(wait)) = waits {
        print::err(&format!(
            "Waiting {} s before planning: an earlier sync's change has an unknown outcome and \
             may still land (Ctrl-C stops; nothing is sent)",
            wait.as_secs() + 1
        ));
    }
    let plan = if args.undo {
        sync.undo_plan(&source).await
    } else {
        sync.plan(&source).await
    }
    .map_err(bulk_error)?;
    if args.plan {
        return show_plan(&args, &shown, &plan);
    }
    let watch = Watch::start(
        token,
        "Interrupted: waiting for the requests in flight (interrupt again to quit now; run the \
         same command again to finish)",
    )?;
    let counts = Arc::new(Counts::default());
    let progress = Progress::start(
        Arc::clone(&counts),
        context.client.clone(),
        context.verbose > 0,
        "changed",
    );
    let result = sync.apply(&source, plan, |event| counts.count(event)).await;
    progress.finish().await;
    let report = result.map_err(bulk_error)?;
    present(&args, &shown, &report, watch.signal())
}

/// Prints a plan (and its JSON when asked, and writes it to --report's file); nothing was sent.
fn show_plan(args: &SyncArgs, shown: &str, plan: &SyncPlan) -> Result<Exit, CliError> {
    print::err(&sync_summary::plan_text(shown, plan, args.prune));
    if args.output == Output::Json {
        print::out_json(&sync_summary::plan_json(plan));
    }
    if let Some(Some(path)) = &args.report {
        plan.write_report(path).map_err(|e| {
            CliError::internal(format!(
                "cannot write the results file {}: {e}",
                path.display()
            ))
        })?;
    }
    Ok(Exit::Success)
}

/// Prints a run's summary (and its JSON when asked) and gives the command's exit.
fn present(
    args: &SyncArgs,
    shown: &str,
    report: &SyncReport,
    signal: Option<Exit>,
) -> Result<Exit, CliError> {
    let mut exit = exit_of(
        report.unknown,
        report.unauthorized(),
        report.stopped.as_ref(),
        report.worst_failure(),
        signal,
    );
    // The API answered in a way that stops a sync (it does not keep note IDs): not a success.
    if exit == Exit::Success && matches!(report.stopped, Some(Stop::Refused(_))) {
        exit = Exit::Api;
    }
    print::err(&sync_summary::report_text(shown, report, signal.is_some()));
    if let Some(error) = &report.results_error {
        print::err(&format!("warning: {error}"));
    }
    if args.output == Output::Json {
        print::out_json(&sync_summary::report_json(report, exit));
    }
    finish(exit, report.stopped.as_ref())
}
