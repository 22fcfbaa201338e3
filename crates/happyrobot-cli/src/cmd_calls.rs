//! `happyrobot calls get` (one call and its notes, as text or as the JSON the server sent),
//! `happyrobot calls transcript` (what was said on a call, one message a line, or the JSON) and
//! `happyrobot calls list` (the calls of a filter, every page walked by the library, as a table,
//! JSON, JSON Lines, a CSV whose first column is `call_id`, ready to import notes from, or a
//! workbook of text cells with `content` and `flagged` columns to fill in).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, Subcommand, ValueEnum};
use happyrobot::types::Call;
use happyrobot::{CallFilter, CallId};
use happyrobot_bulk::spreadsheet::{TextSheet, inert};

use crate::command::RunCommand;
use crate::context::Context;
use crate::exit::{CliError, EXIT_CODES_HELP, Exit};
use crate::print::{self, Output};

/// The `calls` commands.
#[derive(Debug, Subcommand)]
pub(crate) enum CallsCommand {
    /// Show a call and its notes.
    #[command(after_help = EXIT_CODES_HELP)]
    Get(GetArgs),
    /// Show what was said on a call: one message a line, with its time and who spoke.
    #[command(after_help = EXIT_CODES_HELP)]
    Transcript(TranscriptArgs),
    /// List the calls of a filter, every page of them (newest first).
    #[command(after_help = LIST_HELP)]
    List(Box<ListArgs>),
}

/// The text after the options in `calls list --help`.
const LIST_HELP: &str = "\
Notes for the calls of a filter:
  happyrobot calls list --status Failed --from 2024-03-01 --output csv > failed.csv
  happyrobot notes import failed.csv --content \"QA sweep\" --ignore-other-columns
  happyrobot notes import failed.csv --content \"QA sweep\" --ignore-other-columns --undo

A note per call, written in a spreadsheet:
  happyrobot calls list --status Failed --output xlsx > review.xlsx
  (open review.xlsx, write a note in the content column of each row; flagged: yes or no)
  happyrobot notes import review.xlsx --report     # results in review.results.xlsx

notes import reads a list of calls as it is: its own columns need no --ignore-other-columns.

Open the workbook (xlsx) in a spreadsheet: every cell is text, so a phone number keeps its +,
dates stay as the server wrote them (text, e.g. 2024-03-13T15:04:05Z), and nothing the server
sent runs as a formula. Feed csv, json or jsonl to scripts. In a CSV a cell a spreadsheet would
run (it begins with =, @, a tab, or + or - before something that is not a number) starts with an
apostrophe ('), which notes import takes off again. A workbook is written to standard output
only when it is not a terminal (redirect it), or to --output-file FILE.

Statuses as the app shows them (Failed, In progress, No answer...), in any case; --status may be
repeated or hold a comma-separated list. --from and --to take a date (2024-03-01: the whole day
for --to) or an RFC 3339 date-time. Each call is listed once, even while calls are added.

Exit codes:
  0  success
  2  invalid options; nothing was sent
  3  authentication: no API key, or the API rejected it (401/403)
  5  an error answer from the API (a listing changes nothing)
  6  network: the API could not be reached";

/// How `calls list` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ListOutput {
    /// A table: ID, created, status, type, from, to, campaign, notes.
    Text,
    /// A JSON array of the calls, each as the server sent it.
    Json,
    /// One call per line, whole, as the server sent it.
    Jsonl,
    /// CSV with call_id first, then the table's columns: add a content column and import it.
    Csv,
    /// A workbook of text cells: the CSV's columns, then content and flagged to fill in.
    Xlsx,
}

/// The sort orders of `calls list`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Sort {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

/// Options of `calls list`.
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Inbound or outbound calls only.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) call_type: Option<String>,

    /// Calls with this status (repeatable, or comma-separated).
    #[arg(long, value_name = "STATUS")]
    pub(crate) status: Vec<String>,

    /// Calls with this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    pub(crate) tag: Vec<String>,

    /// Calls of this use case (repeatable).
    #[arg(long, value_name = "ID")]
    pub(crate) use_case: Vec<String>,

    /// Calls of this campaign (repeatable).
    #[arg(long, value_name = "ID")]
    pub(crate) campaign: Vec<String>,

    /// Calls created at or after this date or date-time.
    #[arg(long, value_name = "DATE")]
    pub(crate) from: Option<String>,

    /// Calls created at or before this date (the whole day) or date-time.
    #[arg(long, value_name = "DATE")]
    pub(crate) to: Option<String>,

    /// The order [default: desc, newest first].
    #[arg(long, value_enum)]
    pub(crate) sort: Option<Sort>,

    /// Calls whose phone numbers or extracted values match this text.
    #[arg(long, value_name = "TEXT")]
    pub(crate) search: Option<String>,

    /// Calls transferred to this contact.
    #[arg(long, value_name = "EMAIL")]
    pub(crate) transfer_contact_email: Option<String>,

    /// The most calls to print [default: all].
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,

    /// How many calls each request asks for [default: 100].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(happyrobot::MAX_PAGE_SIZE)))]
    pub(crate) page_size: Option<u32>,

    /// How the calls are printed.
    #[arg(long, short = 'o', value_enum, default_value_t = ListOutput::Text)]
    pub(crate) output: ListOutput,

    /// Write the workbook of --output xlsx to this file instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub(crate) output_file: Option<PathBuf>,
}

impl ListArgs {
    /// The filter, checked before anything is sent.
    fn filter(&self) -> Result<CallFilter, CliError> {
        let invalid = |e: happyrobot::Error| CliError::from_api(&e);
        let mut filter = CallFilter::new();
        if let Some(text) = &self.call_type {
            filter = filter.call_type(CallFilter::parse_call_type(text));
        }
        for list in &self.status {
            filter = filter.statuses(CallFilter::parse_statuses(list));
        }
        for tag in &self.tag {
            filter = filter.tag(tag.clone());
        }
        for id in &self.use_case {
            filter = filter.use_case(id.clone());
        }
        for id in &self.campaign {
            filter = filter.campaign(id.clone());
        }
        if let Some(text) = &self.from {
            filter = filter.from(CallFilter::parse_from(text).map_err(invalid)?);
        }
        if let Some(text) = &self.to {
            filter = filter.to(CallFilter::parse_to(text).map_err(invalid)?);
        }
        if let Some(sort) = self.sort {
            let word = match sort {
                Sort::Asc => "asc",
                Sort::Desc => "desc",
            };
            filter = filter.sort(CallFilter::parse_sort(word).map_err(invalid)?);
        }
        if let Some(text) = &self.search {
            filter = filter.search(text.clone());
        }
        if let Some(email) = &self.transfer_contact_email {
            filter = filter.transfer_contact_email(email.clone());
        }
        if let Some(size) = self.page_size {
            filter = filter.page_size(size);
        }
        Ok(filter)
    }
}

/// Options of `calls get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The call's ID: 24 characters (letters, digits, - or _), sent as typed.
    #[arg(value_name = "CALL_ID")]
    pub(crate) call_id: String,

    /// text: the call and its notes; json: the whole call as the server sent it.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}

/// Options of `calls transcript`.
#[derive(Debug, Args)]
pub(crate) struct TranscriptArgs {
    /// The call's ID: 24 characters (letters, digits, - or _), sent as typed.
    #[arg(value_name = "CALL_ID")]
    pub(crate) call_id: String,

    /// text: one message a line, in order; json: the transcript exactly as the server sent it.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}

/// The columns of the table, the CSV and the workbook: those `notes import` knows as a list of
/// calls.
const COLUMNS: [&str; 8] = happyrobot_bulk::CALL_LIST_COLUMNS;

/// The columns a workbook adds after [`COLUMNS`], empty, for `notes import` to read once filled.
const TO_FILL: [&str; 2] = ["content", "flagged"];

/// A call's cells in [`COLUMNS`]' order.
fn cells(call: &Call) -> [String; 8] {
    let meta = call.metadata.as_ref();
    let text = |value: Option<&String>| value.cloned().unwrap_or_default();
    [
        call.id.clone(),
        call.created
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        call.status
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        call.type_
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        text(meta.and_then(|m| m.from.as_ref())),
        text(meta.and_then(|m| m.to.as_ref())),
        text(call.campaign_id.as_ref()),
        call.notes.as_ref().map_or(0, Vec::len).to_string(),
    ]
}

/// The next call of a listing, with its JSON as the server sent it when `json`.
async fn next_call(
    calls: &mut happyrobot::CallStream,
    json: bool,
) -> Result<Option<happyrobot::CallWithJson>, happyrobot::Error> {
    let next = if json {
        calls.next_with_json().await
    } else {
        calls
            .next_call()
            .await
            .map(|result| result.map(|call| (call, None)))
    };
    next.transpose()
}

async fn list(filter: CallFilter, args: &ListArgs, context: &Context) -> Result<Exit, CliError> {
    let mut calls = context.client.list_calls(filter);
    let json = matches!(args.output, ListOutput::Json | ListOutput::Jsonl);
    // The first page is fetched before anything is printed: a refused listing prints nothing,
    // not even a header.
    let mut next = match args.limit {
        Some(0) => None,
        _ => next_call(&mut calls, json).await?,
    };
    let mut printer = Printer::new(args.output);
    let (started, mut told) = (Instant::now(), Instant::now());
    let mut listed = 0u64;
    while let Some((call, raw)) = next.take() {
        printer.call(&call, raw.as_deref());
        listed += 1;
        // A long listing says how far it got, on stderr, every few seconds.
        if told.elapsed() > Duration::from_secs(2) {
            told = Instant::now();
            print::err(&format!(
                "listing: {listed} calls{} so far, {:.0}/s",
                calls
                    .count()
                    .map_or_else(String::new, |count| format!(" of {count}")),
                listed as f64 / started.elapsed().as_secs_f64().max(0.001)
            ));
        }
        if args.limit.is_some_and(|limit| listed >= limit) {
            break;
        }
        next = next_call(&mut calls, json).await?;
    }
    printer.finish(listed, calls.count(), args.output_file.as_deref())?;
    Ok(Exit::Success)
}

/// Prints a listing as it comes, in its output format (a workbook once whole).
struct Printer {
    output: ListOutput,
    first: bool,
    sheet: Option<TextSheet>,
    /// The table's rows, printed at the end with columns as wide as their widest cell.
    table: Vec<[String; 8]>,
}

/// One CSV record, quoted where it needs to be, with its line end; every cell a spreadsheet would
/// run as a formula made inert (`notes import` reads it back as it was).
fn csv_record(cells: &[impl AsRef<str>]) -> Vec<u8> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let _ = writer.write_record(cells.iter().map(|cell| inert(cell.as_ref()).into_owned()));
    writer.into_inner().unwrap_or_default()
}

/// The sheet of a workbook listing: the CSV's columns, then those to fill in (wide enough to
/// write in).
fn new_sheet() -> TextSheet {
    TextSheet::new("calls", COLUMNS.iter().chain(TO_FILL.iter()).copied())
        .min_width(COLUMNS.len(), 50)
        .min_width(COLUMNS.len() + 1, 8)
}

impl Printer {
    fn new(output: ListOutput) -> Self {
        if output == ListOutput::Csv {
            print::out_raw(&csv_record(&COLUMNS));
        }
        Self {
            output,
            first: true,
            sheet: (output == ListOutput::Xlsx).then(new_sheet),
            table: Vec::new(),
        }
    }

    fn call(&mut self, call: &Call, json: Option<&str>) {
        // The call as the server sent it, else as this version encodes it.
        let whole = || {
            json.map(str::to_string)
                .unwrap_or_else(|| serde_json::to_string(call).unwrap_or_default())
        };
        match self.output {
            ListOutput::Text => self.table.push(cells(call)),
            ListOutput::Jsonl => {
                let text = whole();
                // One line per call, even if the server's JSON held line breaks.
                if text.contains('\n') {
                    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                    print::out(&value.to_string());
                } else {
                    print::out(&text);
                }
            }
            ListOutput::Json => {
                print::out(&format!(
                    "{}{}",
                    if self.first { "[\n" } else { ",\n" },
                    whole()
                ));
            }
            ListOutput::Csv => print::out_raw(&csv_record(&cells(call))),
            ListOutput::Xlsx => {
                if let Some(sheet) = &mut self.sheet {
                    let empty = TO_FILL.map(|_| String::new());
                    sheet.push(cells(call).into_iter().chain(empty));
                }
            }
        }
        self.first = false;
    }

    /// Ends the listing: a workbook is written whole, to `file` or standard output; one that
    /// cannot be written is a local failure (exit 1).
    fn finish(self, listed: u64, count: Option<u64>, file: Option<&Path>) -> Result<(), CliError> {
        match self.output {
            ListOutput::Json => print::out(if self.first { "[]" } else { "\n]" }),
            ListOutput::Xlsx => {
                let sheet = self.sheet.unwrap_or_else(new_sheet);
                let written = sheet.to_xlsx().and_then(|bytes| match file {
                    Some(path) => write_whole(path, &bytes),
                    None => print::out_bytes(&bytes),
                });
                let place = file.map_or_else(
                    || "standard output".to_string(),
                    |path| path.display().to_string(),
                );
                written.map_err(|e| {
                    CliError::internal(format!("the workbook cannot be written to {place}: {e}"))
                })?;
                print::err(&format!(
                    "{listed} call{} written to {place}",
                    if listed == 1 { "" } else { "s" }
                ));
            }
            ListOutput::Csv => {}
            ListOutput::Text => {
                let header = COLUMNS.map(str::to_uppercase);
                for line in table(&header, &self.table) {
                    print::out(&line);
                }
                print::err(&format!(
                    "{listed} call{}{}",
                    if listed == 1 { "" } else { "s" },
                    count.map_or_else(String::new, |count| format!(" (the server counts {count})"))
                ));
            }
            ListOutput::Jsonl => {}
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` whole ([`happyrobot_bulk::results::write_whole`]): a workbook is
/// there whole or not at all (an earlier one at `path` stays until then).
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    happyrobot_bulk::results::write_whole(path, |file| std::io::Write::write_all(file, bytes))
}

/// The table's lines: the header, then the rows, each column as wide as its widest cell (in
/// characters), two spaces apart, the last one as it comes.
fn table(header: &[String; 8], rows: &[[String; 8]]) -> Vec<String> {
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    std::iter::once(header)
        .chain(rows)
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            line.trim_end().to_string()
        })
        .collect()
}

/// The values of `--status` and `--type` that no documented value matches (in any case), each
/// with a warning naming the known ones: they are still sent (the API may know more).
fn unknown_values(args: &ListArgs) -> Vec<String> {
    use happyrobot::types::{CallStatus, CallType};
    let known = |list: &[&str], text: &str| list.iter().any(|k| k.eq_ignore_ascii_case(text));
    let mut warnings = Vec::new();
    for item in args.status.iter().flat_map(|list| list.split(',')) {
        let item = item.trim();
        if !item.is_empty() && !known(CallStatus::KNOWN, item) {
            warnings.push(format!(
                "warning: --status {item:?} is none of the documented statuses ({}); it is sent \
                 as given, and matches no call unless the API knows it",
                CallStatus::KNOWN.join(", ")
            ));
        }
    }
    if let Some(text) = &args.call_type
        && !known(CallType::KNOWN, text.trim())
    {
        warnings.push(format!(
            "warning: --type {:?} is none of the documented types ({}); it is sent as given, and \
             matches no call unless the API knows it",
            text.trim(),
            CallType::KNOWN.join(", ")
        ));
    }
    warnings
}

impl RunCommand for GetArgs {
    type Input = (CallId, Output);

    fn output(&self) -> Output {
        self.output
    }

    fn check(self) -> Result<Self::Input, CliError> {
        Ok((self.call_id.parse()?, self.output))
    }

    async fn run((call_id, output): Self::Input, context: Context) -> Result<Exit, CliError> {
        let call = context.client.get_call(&call_id).await?;
        match output {
            Output::Json => print::out_raw(call.raw_body()),
            Output::Text => print::out(print::call_text(&call).trim_end()),
        }
        Ok(Exit::Success)
    }
}

impl RunCommand for TranscriptArgs {
    type Input = (CallId, Output);

    fn output(&self) -> Output {
        self.output
    }

    fn check(self) -> Result<Self::Input, CliError> {
        Ok((self.call_id.parse()?, self.output))
    }

    async fn run((call_id, output): Self::Input, context: Context) -> Result<Exit, CliError> {
        let transcript = context.client.get_transcript(&call_id).await?;
        match output {
            Output::Json => print::out_raw(transcript.raw_body()),
            Output::Text => {
                print::out(print::transcript_text(call_id.as_str(), &transcript).trim_end())
            }
        }
        Ok(Exit::Success)
    }
}

impl RunCommand for ListArgs {
    type Input = (CallFilter, ListArgs);

    fn output(&self) -> Output {
        match self.output {
            ListOutput::Json | ListOutput::Jsonl => Output::Json,
            ListOutput::Text | ListOutput::Csv | ListOutput::Xlsx => Output::Text,
        }
    }

    fn check(self) -> Result<Self::Input, CliError> {
        match (self.output, &self.output_file) {
            (ListOutput::Xlsx, None) if std::io::stdout().is_terminal() => {
                return Err(CliError::usage(
                    "a workbook is not written to a terminal: redirect it (> calls.xlsx) or give \
                     --output-file calls.xlsx",
                ));
            }
            (ListOutput::Xlsx, _) | (_, None) => {}
            (_, Some(_)) => {
                return Err(CliError::usage(
                    "--output-file is for --output xlsx; redirect the other outputs (> FILE)",
                ));
            }
        }
        let filter = self.filter()?;
        for warning in unknown_values(&self) {
            print::err(&warning);
        }
        Ok((filter, self))
    }

    async fn run((filter, args): Self::Input, context: Context) -> Result<Exit, CliError> {
        list(filter, &args, &context).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use happyrobot::types::Call;

    #[test]
    fn table_columns_are_as_wide_as_their_widest_cell() {
        let header = COLUMNS.map(str::to_uppercase);
        let mut row = header.clone().map(|_| String::new());
        row[0] = "65f1c0ffee0123456789abcd".into();
        row[2] = "In progress".into();
        row[7] = "2".into();
        let lines = table(&header, &[row]);
        assert_eq!(
            lines,
            [
                "CALL_ID                   CREATED  STATUS       TYPE  FROM  TO  CAMPAIGN  NOTES",
                "65f1c0ffee0123456789abcd           In progress                            2"
            ]
        );
    }

    #[test]
    fn renders_a_call_and_its_notes() {
        let call: Call = serde_json::from_value(serde_json::json!({
            "id": "65f1c0ffee0123456789abcd",
            "status": "Completed",
            "notes": [
                {"id": "a", "content": "one\ntwo", "flagged": true},
                {"content": "three"}
            ]
        }))
        .unwrap();
        assert_eq!(
            print::call_text(&call),
            "Call 65f1c0ffee0123456789abcd: (unknown) (unknown) call, Completed, (unknown), \
             created (unknown), 2 notes\n  note a (flagged), created (unknown)\n    | one\n    \
             | two\n  note (no id), created (unknown)\n    | three\n"
        );
    }
}
