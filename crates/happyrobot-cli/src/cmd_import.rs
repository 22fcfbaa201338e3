//! `happyrobot notes import` and `notes import --undo`: turns the options into a
//! [`happyrobot_bulk::Import`] or [`happyrobot_bulk::Undo`], maps the signals onto its stop token,
//! shows its progress and notices, and prints its report. The engine decides everything else.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use happyrobot::CancellationToken;
use happyrobot_bulk::{Event, Import, JournalLocation, Notice, Source, Undo};

use crate::bulk_args::{FormatArg, PaceArgs, ReadArgs, bulk_error, exit_of, finish, flag};
use crate::command::RunCommand;
use crate::context::{Context, Needs};
use crate::exit::{CliError, Exit};
use crate::print::{self, Output};
use crate::progress::{Counts, Progress};
use crate::signals::Watch;
use crate::summary;

/// The text after the options in `notes import --help`.
pub(crate) const IMPORT_HELP: &str = "\
Examples:
  happyrobot notes import review.xlsx --dry-run   # check the file; send nothing
  happyrobot notes import review.xlsx --report    # send; results in review.results.xlsx
  happyrobot notes import review.xlsx             # again after a failure or Ctrl-C: the rest
  happyrobot notes import failed.csv --content \"QA sweep\"   # one text for each listed call
  happyrobot notes import review.xlsx --undo      # delete exactly the notes it added

Input:
  CSV with a header line naming the columns call_id, content and (optionally) flagged, in any
  order: comma, semicolon, tab or pipe separated (detected from the header; --delimiter forces
  one), UTF-8, or UTF-16 with a byte-order mark (Excel's \"Unicode Text\", a .txt, read tab
  separated), or any encoding given with --encoding (windows-1252 for Excel's older \"CSV (Comma
  delimited)\"). Or JSON Lines with the same keys, or an .xlsx, .xlsm, .xls or .ods workbook (the
  first sheet, or --sheet NAME), its cells read as the sheet shows them (a date as
  2024-03-14 08:30) and an error cell (#NAME?, #DIV/0!) refused. Names match without regard to
  case or spaces (Call ID is call_id), and the names sheets use are known: CallID; Note, Notes or
  Comment for content; Flag or Flag? for flagged. --call-id-column, --content-column and
  --flagged-column map others, and then (or with --ignore-other-columns) other columns are let
  through; a column that looks like one of the three but is not read is refused. flagged accepts
  true/false, 1/0, yes/no, y/n, x or a tick (flagged) or empty. The whole input is checked first;
  if any line is invalid, every problem is listed and nothing is sent. --dry-run shows which
  column feeds what and the first lines as they will be sent.

Journal:
  Every line is recorded in the journal (default: <FILE>.journal, or the journal of a file with
  the same rows imported to the same API, whatever its format, encoding or delimiter) before it
  is sent and again when its outcome is known. Re-running the same command skips the lines
  already added, even if the file was edited, renamed, copied or saved as another format; a
  journal counts only for the API it was written against. A journal the state directory names
  for these rows that is gone refuses the run (exit 2, nothing sent): restore it, give it with
  --journal, or start anew with --forget-lost-journal. Lines that certainly failed are sent
  again on every re-run. Only one import (or undo) runs on a journal at a time. Damage to a
  journal line costs at most what that line said: the lines it may have spoken of are looked up
  on their calls before anything is sent for them.

Rate limits:
  The client paces every request under the rate the server grants, measured from the answers it
  accepts before a 429 (or told by its rate-limit headers); a rate limit never fails a line. It
  keeps as many requests in flight as the pace needs at the answers' latency, up to
  --concurrency. --rate N is a ceiling the run never exceeds.

Unknown outcomes:
  A line whose outcome is unknown (timeout, dropped connection, 5xx, or a run killed while it
  was in flight) may have been added. The import looks the note up on its call by every note ID
  it was sent with, in this run and for the lines an earlier run left: found, the line is done;
  certainly absent (no earlier than three times as long after it was sent as it took to fail, for
  a gateway that gave up while the API went on), it is sent once more under a new note ID; else
  it stays unknown and is listed. Copies a very late first attempt leaves are found and deleted by
  the next run. --retry-unknown sends the undecided ones again; --no-reconcile lists every unknown
  line instead.

Undo (--undo):
  Deletes exactly the notes this file's journal records as added to this API, by note ID, and
  nothing else, those of rows since edited or removed from the file included; lines whose add
  outcome is unknown are looked up first, or listed. It is journaled too: stopped or killed, run
  it again to finish; once done it deletes nothing and exits 0. The notes of a call deleted in
  the app count as already gone when the journal's notes were all added under this key and the
  API, asked again, says the call does not exist, and says so again in each of five rounds after
  it shows another call of the file (else they fail, exit 4, and a re-run tries again). Refused (exit 2, nothing sent) when the journal records no
  import of this file's rows to this API.

Results file (--report [FILE]):
  Every input row with its own columns, then result_row (its sheet row or file line),
  result_status (added, already added, failed, unknown, not sent, invalid; for --undo deleted,
  already gone, not deleted, not added), result_note_id (for --undo, the note deleted) and
  result_error. Written whole when the run ends, interrupted or not, and also when the file is
  refused: each invalid row with its error, the others not sent. A workbook of text cells when FILE ends in .xlsx, else CSV
  in UTF-8 with a byte-order mark (Excel shows accents right), comma-separated (tab for .tsv),
  where a cell a spreadsheet would run as a formula (it begins with =, @, a tab, or + or - before
  something that is not a number) starts with an apostrophe ('). Without FILE it is written beside
  the input: review.xlsx gives review.results.xlsx, review.csv review.results.csv. Reading a CSV,
  notes import takes such an apostrophe off again; the result_ columns of a results file imported
  again are replaced.

Exit codes:
  0  every line added (or already added); with --undo, every added note deleted
  1  a local failure stopped the run (the journal could not be written, the file changed)
  2  invalid file or options; nothing was sent
  3  the API rejected the key, or a proxy its credentials; the run stopped
  4, 5, 6  some lines failed (the worst: 6 network, 5 other API error, 4 call not found); 5
     also when a Retry-After longer than --max-retry-after stopped the run (its lines not sent)
  7  some lines have an unknown outcome (this beats any failure); with --undo, also a delete
     whose outcome stayed unknown
  129, 130, 143  stopped by SIGHUP, Ctrl-C (SIGINT) or SIGTERM; re-run the command to continue";

/// Options of `notes import`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ImportArgs {
    /// The file of notes (.csv, .tsv, .txt, .jsonl, .ndjson, .xlsx, .xlsm, .xls, .ods; any other
    /// name with --format); - reads standard input (then give --format and --journal).
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// The file's format [default: from its extension].
    #[arg(long, value_enum)]
    pub(crate) format: Option<FormatArg>,

    #[command(flatten)]
    pub(crate) pace: PaceArgs,

    #[arg(
        long,
        value_name = "PATH",
        help = "Where the progress of the import is recorded [default: <FILE>.journal]"
    )]
    pub(crate) journal: Option<PathBuf>,

    /// Check the file and say how many lines would be sent, which column feeds what, and the first
    /// lines as they will be sent; send nothing.
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

    /// Start a new journal when the one the state directory names for this file's rows is gone
    /// (otherwise refused, exit 2): only when sure the notes it recorded are not on their calls,
    /// since every line is sent again.
    #[arg(long, conflicts_with = "journal")]
    pub(crate) forget_lost_journal: bool,

    #[command(flatten)]
    pub(crate) read: ReadArgs,

    /// Write every input row with its row number, status, note ID and error to this file when the
    /// run ends or the file is refused: a workbook if it ends in .xlsx, else CSV [default FILE:
    /// beside the input, <NAME>.results.xlsx for a workbook, else <NAME>.results.csv].
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    pub(crate) report: Option<Option<PathBuf>>,

    /// text: a summary on stderr; json: the summary as JSON on stdout as well.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}

/// Prints a notice about the journal or the input before the run (of an undo when `undo`).
fn notice(notice: &Notice, undo: bool) {
    match notice {
        Notice::ResumingByContent { journal } => print::err(&format!(
            "note: resuming the journal {journal} of a file with the same content"
        )),
        Notice::DamagedJournalLines { journal, lines } => {
            for line in lines {
                print::err(&format!(
                    "warning: line {line} of the journal {journal} is damaged and was skipped \
                     (the lines it may have spoken of are looked up on their calls first)"
                ));
            }
        }
        Notice::OtherKey => print::err(
            "note: earlier runs of this journal used another API key for this API; the lines they \
             added count as added (a note belongs to its call, whichever key added it)",
        ),
        Notice::OtherApi {
            base_urls,
            base_url,
        } => print::err(&format!(
            "warning: the journal records this file imported to {} only, not to {base_url}; its \
             lines are sent as new. If that is this API under another name (localhost and \
             127.0.0.1, an alias), its notes are added a second time: `happyrobot notes import \
             FILE --undo` with this --base-url takes off what this run adds",
            base_urls.join(", ")
        )),
        Notice::Orphans { count } if undo => print::err(&format!(
            "note: the journal records {count} line(s) this file no longer has (edited or \
             removed); the notes it records as added for them are deleted too"
        )),
        Notice::Orphans { count } => print::err(&format!(
            "note: the journal records {count} line(s) this file no longer has (edited or \
             removed); their notes stay as they were added, and an edited line is added as a new \
             note. To keep the calls' notes matching an edited sheet (edits updated in place, \
             removed rows kept or deleted), use `happyrobot notes sync FILE --plan`"
        )),
        _ => {}
    }
}

/// The input of `args` as a source, with the temporary copy it may be read from (kept until the
/// command ends) and its name as shown.
fn source(args: &ImportArgs) -> Result<(Source, crate::stdin::Input, String), CliError> {
    crate::bulk_args::source(&args.file, args.format, &args.read, args.journal.is_some())
}

impl RunCommand for ImportArgs {
    /// The options, the source, the temporary copy it may be read from (kept until the command
    /// ends) and its name as shown.
    type Input = (ImportArgs, Source, crate::stdin::Input, String);

    fn output(&self) -> Output {
        self.output
    }

    fn needs(&self) -> Needs {
        Needs {
            rate: self.pace.rate,
            dry_run: self.dry_run,
            run: true,
        }
    }

    fn check(mut self) -> Result<Self::Input, CliError> {
        self.report = crate::bulk_args::report_path(&self.file, &self.report)?.map(Some);
        let (source, input, shown) = source(&self)?;
        Ok((self, source, input, shown))
    }

    async fn run(input: Self::Input, context: Context) -> Result<Exit, CliError> {
        let (args, source, _input, shown) = input;
        run(context, args, source, shown).await
    }
}

async fn run(
    context: Context,
    args: ImportArgs,
    source: Source,
    shown: String,
) -> Result<Exit, CliError> {
    let journal = match &args.journal {
        Some(path) => JournalLocation::path(path),
        None => JournalLocation::BesideInput,
    };
    let token = CancellationToken::new();
    if args.undo {
        return undo(&context, &args, source, journal, token, &shown).await;
    }
    let mut import = Import::new(context.client.clone(), journal)
        .concurrency(usize::from(args.pace.concurrency))
        .reconcile(!args.no_reconcile)
        .retry_unknown(args.retry_unknown)
        .allow_duplicates(args.allow_duplicates)
        .fsync(args.fsync)
        .forget_lost_journal(args.forget_lost_journal)
        .option_names(flag)
        .stop(token.clone());
    if let Some(Some(report)) = &args.report {
        import = import.results_file(report);
    }
    if args.dry_run {
        let plan = import.plan(&source).await.map_err(bulk_error)?;
        print::err(&summary::import_plan(
            &shown,
            &plan,
            args.retry_unknown,
            !args.no_reconcile,
        ));
        crate::dry_run::print(&plan, args.read.content.as_deref());
        return Ok(Exit::Success);
    }
    let watch = Watch::start(
        token,
        "Interrupted: waiting for the requests in flight (interrupt again to quit now; they would \
         be reported as unknown on the next run)",
    )?;
    let counts = Arc::new(Counts::default());
    let progress = Progress::start(
        Arc::clone(&counts),
        context.client.clone(),
        context.verbose > 0,
        "added",
    );
    let result = import
        .run(source, |event| {
            counts.count(event);
            if let Event::Notice(n) = event {
                notice(n, false);
            }
        })
        .await;
    progress.finish().await;
    let report = result.map_err(bulk_error)?;
    present(&args, &report, watch.signal())
}

/// Prints an import's summary (and its JSON when asked) and gives the command's exit.
fn present(
    args: &ImportArgs,
    report: &happyrobot_bulk::Report,
    signal: Option<Exit>,
) -> Result<Exit, CliError> {
    let exit = exit_of(
        report.unknown,
        report.unauthorized(),
        report.stopped.as_ref(),
        report.worst_failure(),
        signal,
    );
    print::err(&summary::import_text(
        report,
        signal.is_some(),
        !args.no_reconcile,
    ));
    if args.output == Output::Json {
        print::out_json(&summary::import_json(report, exit, signal.is_some()));
    }
    finish(exit, report.stopped.as_ref())
}

async fn undo(
    context: &Context,
    args: &ImportArgs,
    source: Source,
    journal: JournalLocation,
    token: CancellationToken,
    shown: &str,
) -> Result<Exit, CliError> {
    let mut undo = Undo::new(context.client.clone(), journal)
        .concurrency(usize::from(args.pace.concurrency))
        .reconcile(!args.no_reconcile)
        .fsync(args.fsync)
        .forget_lost_journal(args.forget_lost_journal)
        .option_names(flag)
        .stop(token.clone());
    if let Some(Some(report)) = &args.report {
        undo = undo.results_file(report);
    }
    if args.dry_run {
        let plan = undo.plan(&source).await.map_err(bulk_error)?;
        print::err(&summary::undo_plan(shown, &plan, !args.no_reconcile));
        return Ok(Exit::Success);
    }
    let watch = Watch::start(
        token,
        "Interrupted: waiting for the requests in flight (interrupt again to quit now; a re-run \
         finishes the undo)",
    )?;
    let counts = Arc::new(Counts::default());
    let progress = Progress::start(
        Arc::clone(&counts),
        context.client.clone(),
        context.verbose > 0,
        "deleted",
    );
    let result = undo
        .run(source, |event| {
            counts.count(event);
            if let Event::Notice(n) = event {
                notice(n, true);
            }
        })
        .await;
    progress.finish().await;
    let report = result.map_err(bulk_error)?;
    let signal = watch.signal();
    let exit = exit_of(
        report.unknown,
        report.unauthorized(),
        report.stopped.as_ref(),
        report.worst_failure(),
        signal,
    );
    print::err(&summary::undo_text(&report, signal.is_some()));
    if args.output == Output::Json {
        print::out_json(&summary::undo_json(&report, exit, signal.is_some()));
    }
    finish(exit, report.stopped.as_ref())
}
