//! What the bulk commands (`notes import`, `notes sync`) share: how a file's lines are read
//! (its options, its format, standard input), the library's messages in the commands' words, and
//! the exit code a run ends with.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use happyrobot_bulk::{
    BulkError, BulkErrorKind, BulkOption, ColumnNames, DEFAULT_CONCURRENCY, FailureKind, Format,
    ReadOptions, Source, Stop,
};

use crate::context::parse_rate;
use crate::exit::{CliError, Exit, RunEnd, in_cli_words, run_exit};
use crate::print;

/// The input formats of the bulk commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FormatArg {
    /// Delimited text with a header line.
    Csv,
    /// One JSON object per line (also .ndjson).
    Jsonl,
    /// An .xlsx, .xlsm, .xls or .ods workbook.
    Workbook,
}

/// How fast a bulk command sends: the most requests in flight and per second.
#[derive(Debug, Clone, Args)]
pub(crate) struct PaceArgs {
    /// The most requests in flight at once; under a rate limit the client keeps fewer, as many as
    /// the pace needs at the answers' latency.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) concurrency: u16,

    /// The most requests per second the run sends (decimals allowed) [default: as fast as the
    /// server allows].
    #[arg(long, value_name = "N", value_parser = parse_rate)]
    pub(crate) rate: Option<f64>,
}

/// How a file's lines are read: the options every bulk command takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReadArgs {
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
}

impl ReadArgs {
    /// How the file's lines are read.
    pub(crate) fn read_options(&self) -> Result<ReadOptions, CliError> {
        let mut options = ReadOptions::new();
        if let Some(delimiter) = self.delimiter {
            options = options.delimiter(delimiter);
        }
        if let Some(label) = &self.encoding {
            options = options
                .encoding(label)
                .map_err(|e| CliError::usage(in_cli_words(&e.to_string())))?;
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
}

/// The format of `file`: `given`, else its extension's.
fn format_of(file: &Path, given: Option<FormatArg>) -> Result<Format, CliError> {
    match given {
        Some(FormatArg::Csv) => Ok(Format::Csv),
        Some(FormatArg::Jsonl) => Ok(Format::Jsonl),
        Some(FormatArg::Workbook) => Ok(Format::Workbook),
        None => Format::from_path(file).ok_or_else(|| {
            let known: Vec<String> = Format::EXTENSIONS
                .iter()
                .map(|(extension, _)| format!(".{extension}"))
                .collect();
            CliError::usage(format!(
                "cannot tell the format of {} from its extension: name it {}, or pass \
                 --format csv|jsonl|workbook",
                file.display(),
                known.join(", ")
            ))
        }),
    }
}

/// The input of a bulk command as a source: `file` (or standard input, `-`, copied to a file,
/// which needs `journal_given`), with the copy it may be read from (kept until the command ends)
/// and its name as shown.
pub(crate) fn source(
    file: &Path,
    format: Option<FormatArg>,
    read: &ReadArgs,
    journal_given: bool,
) -> Result<(Source, crate::stdin::Input, String), CliError> {
    let options = read.read_options()?;
    let format = format_of(file, format)?;
    let input = crate::stdin::regular(file, journal_given)?;
    let shown = file.display().to_string();
    let mut source = Source::file(&input.path)
        .format(format)
        .read_options(options);
    if input.copied {
        source = source.name(shown.clone());
    }
    Ok((source, input, shown))
}

/// The results file `--report` asks for: the one named, else the library's name beside `file` (a
/// standard input has nothing to sit beside: it needs a name).
pub(crate) fn report_path(
    file: &Path,
    report: &Option<Option<PathBuf>>,
) -> Result<Option<PathBuf>, CliError> {
    match report {
        None => Ok(None),
        Some(Some(path)) => Ok(Some(path.clone())),
        Some(None) if file.as_os_str() == "-" => Err(CliError::usage(
            "--report needs a FILE when the input is standard input (--report results.csv)",
        )),
        Some(None) => Ok(Some(happyrobot_bulk::results::default_path(file))),
    }
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

/// The flag that does what a library option does: the libraries' messages name their options,
/// the command's name its flags (see [`in_cli_words`]).
pub(crate) fn flag(option: BulkOption) -> Option<&'static str> {
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
        BulkOption::KeyColumn => "--key-column",
        BulkOption::AdoptExisting => "--adopt-existing",
        BulkOption::ForgetLostJournal => "--forget-lost-journal",
        BulkOption::MaxRetryAfter => "--max-retry-after",
        _ => return None,
    })
}

/// A bulk error as the command's error.
pub(crate) fn bulk_error(error: BulkError) -> CliError {
    match error.kind() {
        BulkErrorKind::InvalidInput => {
            for line in error.line_errors() {
                print::err(&in_cli_words(&format!("error: {line}")));
            }
            let shown = error.line_errors().len() as u64;
            if error.invalid_lines() > shown {
                print::err(&format!(
                    "error: ... and {} more invalid line(s)",
                    error.invalid_lines() - shown
                ));
            }
            CliError::usage(in_cli_words(&error.to_string()))
        }
        BulkErrorKind::Io => CliError::internal(in_cli_words(&error.to_string())),
        // A read before anything was sent (a sync's plan): the exit a failed line of that kind
        // gives.
        BulkErrorKind::Api => {
            let exit = exit_of(0, false, None, error.failure_kind(), None);
            CliError::new(exit, in_cli_words(&error.to_string()))
        }
        _ => CliError::usage(in_cli_words(&error.to_string())),
    }
}

/// The exit of an import or undo run that ended with `unknown` lines unknown, having `stopped`
/// as it did, with the worst failure `worst`, after `signal` if one came.
pub(crate) fn exit_of(
    unknown: u64,
    unauthorized: bool,
    stopped: Option<&Stop>,
    worst: Option<FailureKind>,
    signal: Option<Exit>,
) -> Exit {
    // A rate limit that asked for a longer wait than the run allows fails no line (they are not
    // sent), but the run is not done: the exit of a refusal by the API.
    let deferred = matches!(stopped, Some(Stop::RetryAfterTooLong(_)));
    run_exit(RunEnd {
        unknown: unknown > 0,
        unauthorized,
        signal,
        local_failure: local_failure(stopped).is_some(),
        worst: worst.max(deferred.then_some(FailureKind::Api)),
    })
}

/// The message of a stop for a local failure, which the command reports as its error.
pub(crate) fn local_failure(stop: Option<&Stop>) -> Option<&str> {
    match stop {
        Some(Stop::Journal(m) | Stop::InputChanged(m) | Stop::Worker(m)) => Some(m),
        _ => None,
    }
}

/// The command's result: its exit code, or its local failure with that code.
pub(crate) fn finish(exit: Exit, stop: Option<&Stop>) -> Result<Exit, CliError> {
    match local_failure(stop) {
        Some(message) => Err(CliError::new(exit, message)),
        None => Ok(exit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every option the library's messages may name is shown as the command's flag.
    #[test]
    fn library_options_are_shown_as_flags() {
        for option in BulkOption::ALL {
            let shown = in_cli_words(&format!("give it with {}", option.name()));
            assert!(
                shown.starts_with("give it with --") && !shown.contains("::"),
                "{option:?}: {shown}"
            );
        }
        assert_eq!(
            in_cli_words(
                "identical to line 2 (same call, text and flag); remove it, or allow identical \
                 lines (Import::allow_duplicates) to add it as one more note"
            ),
            "identical to line 2 (same call, text and flag); remove it, or allow identical lines \
             (--allow-duplicates) to add it as one more note"
        );
    }
}
