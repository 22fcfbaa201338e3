//! `happyrobot notes import` and `notes import --undo`: turns the options into a
//! [`happyrobot_bulk::Import`] or [`happyrobot_bulk::Undo`], maps the signals onto its stop token,
//! shows its progress and notices, and prints its report. The engine decides everything else.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, ValueEnum};
use happyrobot::CancellationToken;
use happyrobot_bulk::{
    BulkError, BulkErrorKind, BulkOption, ColumnNames, DEFAULT_CONCURRENCY, Event, FailureKind,
    Format, Import, JournalLocation, Notice, ReadOptions, Source, Stop, Undo,
};

use crate::command::RunCommand;
use crate::context::{Context, Needs, parse_rate};
use crate::exit::{CliError, Exit, RunEnd, run_exit};
use crate::print::{self, Output};
use crate::progress::{Counts, Progress};
use crate::signals::Watch;
use crate::summary;

/// The text after the options in `notes import --help`.
pub(crate) const IMPORT_HELP: &str = "\
Input:
  CSV with a header line naming the columns call_id, content and (optionally) flagged, in any
  order: comma, semicolon, tab or pipe separated (detected from the header; --delimiter forces
  one), UTF-8, or UTF-16 with a byte-order mark (Excel's \"Unicode Text\"), or any encoding given
  with --encoding (windows-1252 for Excel's older \"CSV (Comma delimited)\"). Or JSON Lines with
  the same keys, or an .xlsx, .xlsm, .xls or .ods workbook (the first sheet, or --sheet NAME). Names
  match without regard to case or spaces (Call ID is call_id), and the names sheets use are known:
  CallID; Note, Notes or Comment for content; Flag or Flag? for flagged. --call-id-column,
  --content-column and --flagged-column map others, and then (or with --ignore-other-columns)
  other columns are let through. flagged accepts true/false, 1/0, yes/no, y/n, x or a tick (flagged)
  or empty. The whole
  input is checked first; if any line is invalid, every problem is listed and nothing is sent.

Journal:
  Every line is recorded in the journal (default: <FILE>.journal, or the journal of a file with
  the same content imported to the same API) before it is sent and again when its outcome is
  known. Re-running the same command skips the lines already added, even if the file was
  edited, renamed or copied; a journal counts only for the API it was written against. Lines
  that certainly failed are sent again on every re-run. Only one import (or undo) runs on a
  journal at a time. Damage to a journal line costs at most what that line said: the lines it may
  have spoken of are looked up on their calls before anything is sent for them.

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
  nothing else; lines whose add outcome is unknown are looked up first, or listed. It is
  journaled too: stopped or killed, run it again to finish; once done it deletes nothing and
  exits 0. Refused (exit 2, nothing sent) when the journal records no import of this file's
  content to this API.

Results file (--report [FILE]):
  Every input row with its columns plus status (added, already added, failed, unknown, not sent;
  for --undo deleted, not deleted, not added), note_id and error, written whole when the run
  ends, interrupted or not: a workbook of text cells when FILE ends in .xlsx, else CSV in the
  input's delimiter, where a cell a spreadsheet would run as a formula (it begins with =, @, a
  tab, or + or - before something that is not a number) starts with an apostrophe ('). Without
  FILE it is written beside the input: review.xlsx gives review.results.xlsx, review.csv
  review.results.csv. Reading a CSV, notes import takes such an apostrophe off again.

Exit codes:
  0  every line added (or already added); with --undo, every added note deleted
  1  a local failure stopped the run (the journal could not be written, the file changed)
  2  invalid file or options; nothing was sent
  3  the API rejected the key, or a proxy its credentials; the run stopped
  4, 5, 6  some lines failed (the worst: 6 network, 5 other API error, 4 call not found)
  7  some lines have an unknown outcome (this beats any failure); with --undo, also a delete
     whose outcome stayed unknown
  129, 130, 143  stopped by SIGHUP, Ctrl-C (SIGINT) or SIGTERM; re-run the command to continue";

/// The input formats of `notes import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FormatArg {
    /// Delimited text with a header line.
    Csv,
    /// One JSON object per line (also .ndjson).
    Jsonl,
    /// An .xlsx, .xlsm, .xls or .ods workbook.
    Workbook,
}

/// Options of `notes import`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ImportArgs {
    /// The file of notes (.csv, .tsv, .jsonl, .ndjson, .xlsx, .xlsm, .xls, .ods; any other name
    /// with --format); - reads standard input (then give --format and --journal).
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,

    /// The file's format [default: from its extension].
    #[arg(long, value_enum)]
    pub(crate) format: Option<FormatArg>,

    /// The most requests in flight at once; under a rate limit the client keeps fewer, as many as
    /// the pace needs at the answers' latency.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) concurrency: u16,

    /// The most requests per second the run sends (decimals allowed) [default: as fast as the
    /// server allows].
    #[arg(long, value_name = "N", value_parser = parse_rate)]
    pub(crate) rate: Option<f64>,

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

    /// A CSV's delimiter: , ; tab or | [default: detected from the header line].
    #[arg(long, value_name = "C", value_parser = parse_delimiter)]
    pub(crate) delimiter: Option<u8>,

    /// The text's encoding when it has no byte-order mark (windows-1252, iso-8859-1, ...)
    /// [default: UTF-8].
    #[arg(long, value_name = "NAME")]
    pub(crate) encoding: Option<String>,

    /// The workbook sheet to read [default: the first].
    #[arg(long, value_name = "NAME")]
    pub(crate) sheet: Option<String>,

    /// The column (or JSON key) holding the call ID.
    #[arg(long, value_name = "NAME")]
    pub(crate) call_id_column: Option<String>,

    /// The column (or JSON key) holding the note's text.
    #[arg(long, value_name = "NAME")]
    pub(crate) content_column: Option<String>,

    /// The column (or JSON key) holding the flag.
    #[arg(long, value_name = "NAME")]
    pub(crate) flagged_column: Option<String>,

    /// Let columns other than the call ID, text and flag through (ignored for the note, kept in
    /// the --report file).
    #[arg(long)]
    pub(crate) ignore_other_columns: bool,

    /// The note's text for every line without one (or with no text column at all).
    #[arg(long, value_name = "TEXT")]
    pub(crate) content: Option<String>,

    /// Write every input row with its status, note ID and error to this file when the run ends: a
    /// workbook if it ends in .xlsx, else CSV [default FILE: beside the input, <NAME>.results.xlsx
    /// for a workbook, else <NAME>.results.csv].
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    pub(crate) report: Option<Option<PathBuf>>,

    /// text: a summary on stderr; json: the summary as JSON on stdout as well.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}

/// Reads `--delimiter`: one of the four, by character or name.
fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "," | "comma" => Ok(b','),
        ";" | "semicolon" => Ok(b';'),
        "\t" | "\\t" | "tab" => Ok(b'\t'),
        "|" | "pipe" => Ok(b'|'),
        _ => Err(format!("{text:?} is not a delimiter: give , ; tab or |")),
    }
}

impl ImportArgs {
    /// The results file asked for: the one named, else the library's name beside the input (a
    /// standard input has nothing to sit beside: it needs a name).
    fn report_path(&self) -> Result<Option<PathBuf>, CliError> {
        match &self.report {
            None => Ok(None),
            Some(Some(path)) => Ok(Some(path.clone())),
            Some(None) if self.file.as_os_str() == "-" => Err(CliError::usage(
                "--report needs a FILE when the input is standard input (--report results.csv)",
            )),
            Some(None) => Ok(Some(happyrobot_bulk::results::default_path(&self.file))),
        }
    }

    /// How the file's lines are read.
    fn read_options(&self) -> Result<ReadOptions, CliError> {
        let mut options = ReadOptions::new();
        if let Some(delimiter) = self.delimiter {
            options = options.delimiter(delimiter);
        }
        if let Some(label) = &self.encoding {
            options = options
                .encoding(label)
                .map_err(|e| CliError::usage(in_flags(&e.to_string())))?;
        }
        if let Some(sheet) = &self.sheet {
            options = options.sheet(sheet.clone());
        }
        let mut columns = ColumnNames::new();
        if let Some(name) = &self.call_id_column {
            columns = columns.call_id(name.clone());
        }
        if let Some(name) = &self.content_column {
            columns = columns.content(name.clone());
        }
        if let Some(name) = &self.flagged_column {
            columns = columns.flagged(name.clone());
        }
        options = options
            .columns(columns)
            .ignore_other_columns(self.ignore_other_columns);
        if let Some(content) = &self.content {
            options = options.default_content(content.clone());
        }
        Ok(options)
    }

    /// The input's format: given, else the extension's.
    fn format(&self) -> Result<Format, CliError> {
        match self.format {
            Some(FormatArg::Csv) => Ok(Format::Csv),
            Some(FormatArg::Jsonl) => Ok(Format::Jsonl),
            Some(FormatArg::Workbook) => Ok(Format::Workbook),
            None => Format::from_path(&self.file).ok_or_else(|| {
                let known: Vec<String> = Format::EXTENSIONS
                    .iter()
                    .map(|(extension, _)| format!(".{extension}"))
                    .collect();
                CliError::usage(format!(
                    "cannot tell the format of {} from its extension: name it {}, or pass \
                     --format csv|jsonl|workbook",
                    self.file.display(),
                    known.join(", ")
                ))
            }),
        }
    }
}

/// The flag of `notes import` that does what a library option does: the library's messages name
/// its options, the command's name its flags.
fn flag(option: BulkOption) -> Option<&'static str> {
    Some(match option {
        BulkOption::Journal => "--journal PATH",
        BulkOption::BaseUrl => {
            "--base-url, or --mock for a trial run's in-process mock, which is gone"
        }
        BulkOption::AllowDuplicates => "--allow-duplicates",
        BulkOption::Delimiter => "--delimiter",
        BulkOption::Encoding => "--encoding",
        BulkOption::Sheet => "--sheet",
        BulkOption::Columns => "--call-id-column, --content-column or --flagged-column",
        BulkOption::IgnoreOtherColumns => "--ignore-other-columns",
        _ => return None,
    })
}

/// A message of the library in the command's words (its flags for the library's options).
fn in_flags(message: &str) -> String {
    BulkOption::rename(message, flag)
}

/// A bulk error as the command's error.
fn bulk_error(error: BulkError) -> CliError {
    match error.kind() {
        BulkErrorKind::InvalidInput => {
            for line in error.line_errors() {
                print::err(&in_flags(&format!("error: {line}")));
            }
            let shown = error.line_errors().len() as u64;
            if error.invalid_lines() > shown {
                print::err(&format!(
                    "error: ... and {} more invalid line(s)",
                    error.invalid_lines() - shown
                ));
            }
            CliError::usage(in_flags(&error.to_string()))
        }
        BulkErrorKind::Io => CliError::internal(in_flags(&error.to_string())),
        _ => CliError::usage(in_flags(&error.to_string())),
    }
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
        Notice::Orphans { count } if undo => print::err(&format!(
            "note: the journal records {count} line(s) this file no longer has (edited or \
             removed); their notes are not deleted (undo the file as it was imported to delete \
             them)"
        )),
        Notice::Orphans { count } => print::err(&format!(
            "note: the journal records {count} line(s) this file no longer has (edited or \
             removed); they are not sent"
        )),
        _ => {}
    }
}

/// The input of `args` as a source, with the temporary copy it may be read from (kept until the
/// command ends) and its name as shown.
fn source(args: &ImportArgs) -> Result<(Source, crate::stdin::Input, String), CliError> {
    let options = args.read_options()?;
    let format = args.format()?;
    let input = crate::stdin::regular(&args.file, args.journal.is_some())?;
    let shown = args.file.display().to_string();
    let mut source = Source::file(&input.path)
        .format(format)
        .read_options(options);
    if input.copied {
        source = source.name(shown.clone());
    }
    Ok((source, input, shown))
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
            rate: self.rate,
            dry_run: self.dry_run,
        }
    }

    fn check(mut self) -> Result<Self::Input, CliError> {
        self.report = self.report_path()?.map(Some);
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
        .concurrency(usize::from(args.concurrency))
        .reconcile(!args.no_reconcile)
        .retry_unknown(args.retry_unknown)
        .allow_duplicates(args.allow_duplicates)
        .fsync(args.fsync)
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

/// The exit of an import or undo run that ended with `unknown` lines unknown, having `stopped`
/// as it did, with the worst failure `worst`, after `signal` if one came.
fn exit_of(
    unknown: u64,
    unauthorized: bool,
    stopped: Option<&Stop>,
    worst: Option<FailureKind>,
    signal: Option<Exit>,
) -> Exit {
    run_exit(RunEnd {
        unknown: unknown > 0,
        unauthorized,
        signal,
        local_failure: local_failure(stopped).is_some(),
        worst,
    })
}

/// The message of a stop for a local failure, which the command reports as its error.
fn local_failure(stop: Option<&Stop>) -> Option<&str> {
    match stop {
        Some(Stop::Journal(m) | Stop::InputChanged(m) | Stop::Worker(m)) => Some(m),
        _ => None,
    }
}

/// The command's result: its exit code, or its local failure with that code.
fn finish(exit: Exit, stop: Option<&Stop>) -> Result<Exit, CliError> {
    match local_failure(stop) {
        Some(message) => Err(CliError::new(exit, message)),
        None => Ok(exit),
    }
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
        .concurrency(usize::from(args.concurrency))
        .reconcile(!args.no_reconcile)
        .fsync(args.fsync)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option the library's messages may name is shown as the command's flag.
    #[test]
    fn library_options_are_shown_as_flags() {
        for option in BulkOption::ALL {
            let shown = in_flags(&format!("give it with {}", option.name()));
            assert!(
                shown.starts_with("give it with --") && !shown.contains("::"),
                "{option:?}: {shown}"
            );
        }
        assert_eq!(
            in_flags(
                "identical to line 2 (same call, text and flag); remove it, or allow identical \
                 lines (Import::allow_duplicates) to add it as one more note"
            ),
            "identical to line 2 (same call, text and flag); remove it, or allow identical lines \
             (--allow-duplicates) to add it as one more note"
        );
    }
}
