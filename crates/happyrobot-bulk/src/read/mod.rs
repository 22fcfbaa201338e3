//! Reading an input one record at a time, checking each line as the client would, with the line
//! number in every message: CSV (any of four delimiters, any encoding, columns mapped by name),
//! JSON Lines, spreadsheet workbooks (`.xlsx`, `.xls`, `.ods`), or records a caller built.
//!
//! Nothing here holds more than one record at a time, except a workbook's sheet, which the
//! workbook format makes whole.

#[cfg_attr(not(any(feature = "csv", feature = "workbook")), allow(dead_code))]
pub(crate) mod columns;
#[cfg(feature = "csv")]
mod csv;
mod jsonl;
#[cfg(feature = "workbook")]
mod sheet;
mod text;

use std::io;
use std::path::Path;

use happyrobot::{CallId, NewNote};

pub use self::columns::CALL_LIST_COLUMNS;
pub(crate) use self::columns::normalize;
pub(crate) use self::text::encoding as text_encoding;
use crate::record::Record;
use crate::{NoteRecord, ReadOptions};

/// The formats an input can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// Delimited text with a header line: comma, semicolon, tab or pipe separated.
    Csv,
    /// One JSON object per line.
    Jsonl,
    /// An Excel or OpenDocument workbook (`.xlsx`, `.xlsm`, `.xls`, `.ods`); one sheet is read.
    Workbook,
}

impl Format {
    /// The format's name, as the journal records it: `csv`, `jsonl`, `workbook`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Jsonl => "jsonl",
            Self::Workbook => "workbook",
        }
    }

    /// The format a file's extension names: `.csv` and `.tsv` (delimited text), `.jsonl` and
    /// `.ndjson`, `.xlsx`, `.xlsm`, `.xls` and `.ods`. (Excel's "Unicode Text" export is a `.txt`,
    /// which says nothing of its format: name it `.tsv`, or give the format.)
    pub fn from_path(path: &Path) -> Option<Self> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        Self::EXTENSIONS
            .iter()
            .find(|(known, _)| *known == extension)
            .map(|(_, format)| *format)
    }

    /// Every file extension a format is known by (lower case, without the dot), in the order a
    /// help text lists them: the one list [`Format::from_path`] reads and a command line names.
    pub const EXTENSIONS: [(&'static str, Format); 8] = [
        ("csv", Self::Csv),
        ("tsv", Self::Csv),
        ("jsonl", Self::Jsonl),
        ("ndjson", Self::Jsonl),
        ("xlsx", Self::Workbook),
        ("xlsm", Self::Workbook),
        ("xls", Self::Workbook),
        ("ods", Self::Workbook),
    ];
}

/// One line that cannot be sent, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    line: u64,
    message: String,
    /// "line", or "row N of sheet S" for a workbook.
    place: Option<String>,
}

impl LineError {
    pub(crate) fn new(line: u64, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
            place: None,
        }
    }

    #[cfg_attr(not(feature = "workbook"), allow(dead_code))]
    pub(crate) fn in_sheet(line: u64, sheet: &str, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
            place: Some(format!("row {line} of sheet {sheet:?}")),
        }
    }

    /// The line (or row) it is on, counting from 1.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// What is wrong, without the place.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The option the message names first, if it names one (see [`crate::BulkOption`]).
    pub fn option(&self) -> Option<crate::BulkOption> {
        self.options().first().copied()
    }

    /// Every option the message names.
    pub fn options(&self) -> Vec<crate::BulkOption> {
        crate::BulkOption::named_in(&self.message)
    }
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.place {
            Some(place) => write!(f, "{place}: {}", self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// What reading a line gives.
#[derive(Debug)]
pub(crate) enum Item {
    Valid(Record),
    Invalid(LineError),
}

/// The records of an input, one at a time. `Err` is a failure to read the input at all (I/O),
/// after which it stops; problems with a line are `Ok(Item::Invalid)` and reading goes on.
pub(crate) type Records = Box<dyn Iterator<Item = io::Result<Item>> + Send>;

/// Where an input's records come from.
#[derive(Debug, Clone)]
pub(crate) enum Input {
    File {
        path: std::path::PathBuf,
        format: Format,
    },
    Records(std::sync::Arc<Vec<NoteRecord>>),
}

/// Opens an input for one pass. With `cells`, each record keeps the cells of its line, for a
/// results file.
pub(crate) fn open(input: &Input, options: &ReadOptions, cells: bool) -> io::Result<Records> {
    match input {
        Input::File { path, format } => match format {
            #[cfg(feature = "csv")]
            Format::Csv => Ok(Box::new(csv::CsvRecords::open(path, options, cells)?)),
            Format::Jsonl => Ok(Box::new(jsonl::JsonlRecords::open(path, options, cells)?)),
            #[cfg(feature = "workbook")]
            Format::Workbook => Ok(Box::new(sheet::SheetRecords::open(path, options, cells)?)),
            #[allow(unreachable_patterns, reason = "with every format's feature on")]
            other => Err(without_feature(*other)),
        },
        Input::Records(records) => {
            let records = std::sync::Arc::clone(records);
            let options = options.clone();
            Ok(Box::new((0..records.len()).map(move |index| {
                let record = &records[index];
                let line = index as u64 + 1;
                let content = match record.note().content() {
                    text if text.trim().is_empty() => options
                        .default_content
                        .clone()
                        .unwrap_or_else(|| text.to_string()),
                    text => text.to_string(),
                };
                let mut note = NewNote::new(content);
                if let Some(flag) = record.note().is_flagged() {
                    note = note.flagged(flag);
                }
                Ok(match note.validate() {
                    Ok(()) => Item::Valid(Record::new(line, record.call_id().clone(), note)),
                    Err(e) => Item::Invalid(LineError::new(line, e.to_string())),
                })
            })))
        }
    }
}

/// A file input's header (its names) and, for a CSV, its delimiter: the columns a results file
/// repeats. `None` for inputs whose lines name their own fields.
pub(crate) fn header(
    input: &Input,
    options: &ReadOptions,
) -> io::Result<Option<(Vec<String>, u8)>> {
    let _ = options; // read only by the formats this build has
    match input {
        #[cfg(feature = "csv")]
        Input::File {
            path,
            format: Format::Csv,
        } => csv::header(path, options).map(Some),
        #[cfg(feature = "workbook")]
        Input::File {
            path,
            format: Format::Workbook,
        } => sheet::header(path, options).map(|names| Some((names, b','))),
        // Reached only for a format whose reader this build leaves out.
        #[allow(unreachable_patterns, reason = "with every format's feature on")]
        Input::File {
            format: format @ (Format::Csv | Format::Workbook),
            ..
        } => Err(without_feature(*format)),
        _ => Ok(None),
    }
}

/// The refusal of a file whose format this build does not read.
fn without_feature(format: Format) -> io::Error {
    let feature = match format {
        Format::Workbook => "workbook",
        Format::Csv | Format::Jsonl => "csv",
    };
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "this build of happyrobot-bulk reads no {} files: turn on its `{feature}` cargo \
             feature (on by default), or give the notes as JSON Lines or as records",
            format.as_str()
        ),
    )
}

/// Reads a `flagged` cell: true/false, 1/0, yes/no or y/n (any case), `x` or a tick (flagged), or
/// empty for "not set".
pub(crate) fn parse_flag(text: &str) -> Result<Option<bool>, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        // The marks people put in a flag column: a cross or a tick means flagged.
        "true" | "1" | "yes" | "y" | "x" | "\u{2713}" | "\u{2714}" => Ok(Some(true)),
        "false" | "0" | "no" | "n" => Ok(Some(false)),
        _ => Err(format!(
            "flagged is {:?}: use true/false, 1/0, yes/no, x or \u{2713} (flagged), or leave it \
             empty",
            shorten(text)
        )),
    }
}

/// At most 40 characters of a value, for messages that stay on one line.
pub(crate) fn shorten(text: &str) -> String {
    if text.chars().count() <= 40 {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(40).collect();
        short.push('…');
        short
    }
}

/// The fields of one line as read: the call ID's text, the note's text (the default content when
/// the cell is empty), the flag.
pub(crate) struct Fields<'a> {
    pub(crate) call_id: &'a str,
    pub(crate) content: String,
    pub(crate) flagged: Result<Option<bool>, String>,
}

/// Checks the fields of one line and makes the record, or says everything wrong with it.
pub(crate) fn make_record(
    line: u64,
    fields: Fields<'_>,
    options: &ReadOptions,
) -> Result<Record, String> {
    let mut problems = Vec::new();
    let id = match CallId::new(fields.call_id.trim()) {
        Ok(id) => Some(id),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let flag = match fields.flagged {
        Ok(flag) => flag,
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    let content = match (&options.default_content, fields.content.trim().is_empty()) {
        (Some(default), true) => default.clone(),
        _ => fields.content,
    };
    let mut note = NewNote::new(content);
    if let Some(flag) = flag {
        note = note.flagged(flag);
    }
    if let Err(e) = note.validate() {
        problems.push(e.to_string());
    }
    match id {
        Some(call_id) if problems.is_empty() => Ok(Record::new(line, call_id, note)),
        _ => Err(problems.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_marks_people_use_are_read() {
        for mark in [
            "x", "X", "\u{2713}", "\u{2714}", "yes", "YES", "y", "True", "1",
        ] {
            assert_eq!(parse_flag(mark), Ok(Some(true)), "{mark}");
        }
        for mark in ["no", "No", "n", "false", "0"] {
            assert_eq!(parse_flag(mark), Ok(Some(false)), "{mark}");
        }
        assert_eq!(parse_flag("  "), Ok(None));
        assert!(parse_flag("maybe").unwrap_err().contains("x or"));
    }

    #[test]
    fn a_format_this_build_does_not_read_is_refused_with_the_feature_named() {
        for (format, feature) in [(Format::Csv, "`csv`"), (Format::Workbook, "`workbook`")] {
            let error = without_feature(format);
            assert_eq!(error.kind(), io::ErrorKind::Unsupported);
            assert!(error.to_string().contains(feature), "{error}");
        }
    }

    #[test]
    fn formats_come_from_the_extension() {
        for (name, format) in [
            ("a.CSV", Some(Format::Csv)),
            ("a.tsv", Some(Format::Csv)),
            ("a.txt", None),
            ("a.ndjson", Some(Format::Jsonl)),
            ("a.jsonl", Some(Format::Jsonl)),
            ("a.xlsx", Some(Format::Workbook)),
            ("a.ods", Some(Format::Workbook)),
            ("a.xls", Some(Format::Workbook)),
            ("a.pdf", None),
            ("a", None),
        ] {
            assert_eq!(Format::from_path(Path::new(name)), format, "{name}");
        }
    }
}
