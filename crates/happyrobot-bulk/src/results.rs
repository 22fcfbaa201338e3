//! Results files: every input line with its original columns plus [`RESULT_COLUMNS`] (the input's
//! row, and its status, note ID and error), as Salesforce's Data Loader writes success and error
//! files: a workbook when the path ends in `.xlsx` (one sheet, `results`, of text cells: see
//! [`crate::spreadsheet::TextSheet`]), else CSV in UTF-8 with a byte-order mark (so that Excel
//! reads its accents), comma-separated (tab-separated for a `.tsv` or `.txt` name), whatever the
//! input's delimiter, each cell a spreadsheet would run as a formula made inert with a leading
//! apostrophe ([`crate::spreadsheet::inert`]; reading the file back as an input takes it off
//! again). [`default_path`] names one beside its input. A row's status is what the journal says,
//! so a results file written after a re-run is complete. It is written to a temporary file beside
//! the path and renamed over it when whole, so that a reader never sees half of one.
//!
//! A results file is written for an input its check refuses too (invalid lines, or identical
//! lines not allowed): each invalid line with its error, the valid ones `not sent` (or as the
//! journal has them). The result columns have names of their own, so that they never collide with
//! the input's (a list of calls has a `status` column of its own); an input that has them already
//! (a results file imported again) gets them replaced by this run's.
//!
//! `result_row` is the line's place in the input as its messages give it: a workbook's row (the
//! header is row 1), a text file's line (the line a record starts on), a record's place from 1.
//!
//! | `result_status` | meaning |
//! |---|---|
//! | `added` | added by this run |
//! | `already added` | added by an earlier run |
//! | `failed` | certainly not added (`result_error` says why); a re-run sends it again |
//! | `unknown` | may have been added (`result_error` says why); a re-run looks it up. In an undo's file, also a note whose delete may have gone through; a re-run sends the delete again |
//! | `not sent` | the run stopped before it, or the input was refused; a re-run sends it |
//! | `invalid` | the input's check refused it (`result_error` says why); nothing was sent |
//! | `deleted` | an undo deleted its note (`result_note_id`: the note deleted) |
//! | `already gone` | an undo found its note gone, deleted in the app or with its call (`result_error` says which); nothing is left to delete |
//! | `not deleted` | an undo did not delete it (`result_error` says why when it tried) |
//! | `not added` | an undo found that its add, whose outcome was unknown, never happened |

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::journal::{JournalState, Keep, LineState};
use crate::line::Untold;
use crate::plan::Plan;
use crate::read::{self, Input, Item};
use crate::record::{LineKey, Occurrences, Record};
use crate::session::Prepared;
use crate::spreadsheet::TextSheet;
use crate::{BulkError, BulkOption, Source};

/// The columns a results file adds after the input's: the line's place in the input, and its
/// status, note ID and error. Their names are the same for every input.
pub const RESULT_COLUMNS: [&str; 4] = [
    "result_row",
    "result_status",
    "result_note_id",
    "result_error",
];

/// Which run a results file describes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Import,
    Undo,
}

/// What a results file describes, and how its messages name the library's options.
#[derive(Clone, Copy)]
pub(crate) struct Spec {
    pub(crate) kind: Kind,
    /// The input's check refused it: nothing was sent.
    pub(crate) refused: bool,
    /// Whether identical lines were allowed (else, in a refused input, the copies are invalid).
    pub(crate) duplicates_allowed: bool,
    /// How the errors name the library's options (a command line's flags), if not as the library.
    pub(crate) option_names: Option<fn(BulkOption) -> Option<&'static str>>,
}

/// Writes the results file described by `spec`; `doubts` are the lines this run left unknown or
/// failed (their journal key and why), which the journal alone may not tell.
pub(crate) async fn write(
    source: &Source,
    prepared: &Prepared,
    plan: &Plan,
    path: &Path,
    spec: Spec,
    doubts: HashMap<LineKey, Untold>,
) -> Result<(), BulkError> {
    let keep = Keep {
        done_notes: true,
        reasons: true,
    };
    let state = JournalState::load(&prepared.journal, &prepared.destination, keep)?;
    let (input, options) = (source.input.clone(), source.options.clone());
    let repeated = plan.repeated.clone();
    let path = path.to_path_buf();
    let run_since = state.last_run_seq().unwrap_or(0);
    tokio::task::spawn_blocking(move || {
        let context = Context {
            state: &state,
            spec,
            doubts: &doubts,
            run_since,
        };
        rows(&input, &options, &context, &repeated)
            .and_then(|(header, rows)| save(&path, &header, &rows))
            .map_err(|e| {
                BulkError::io(format!(
                    "cannot write the results file {}: {e} (the journal has every line's outcome)",
                    path.display()
                ))
            })
    })
    .await
    .map_err(|e| BulkError::io(format!("writing the results file failed: {e}")))?
}

/// What a line's status is read against.
struct Context<'a> {
    state: &'a JournalState,
    spec: Spec,
    /// The lines this run left unknown or failed that the journal cannot tell (an undo's delete
    /// that failed or is in doubt is not journaled: the line stays added, and a re-run sends the
    /// delete again), by their journal key, with why.
    doubts: &'a HashMap<LineKey, Untold>,
    /// The place from which entries count as "this run": the journal's last `run` entry for this
    /// destination (without it, everything counts as this run's).
    run_since: u64,
}

impl Context<'_> {
    /// A message of the library in the words of its caller.
    fn words(&self, message: &str) -> String {
        match self.spec.option_names {
            Some(names) => BulkOption::rename(message, names),
            None => message.to_string(),
        }
    }
}

/// The header and the rows of a results file.
type Rows = (Vec<String>, Vec<Vec<String>>);

/// The header of a results file: the input's columns `keys` (those named like a result column
/// left out: this run's replace them), then [`RESULT_COLUMNS`].
fn with_added(keys: &[String]) -> Vec<String> {
    let mut header: Vec<String> = keys.iter().filter(|k| !is_result(k)).cloned().collect();
    header.extend(RESULT_COLUMNS.map(String::from));
    header
}

/// Whether an input's column is named like a result column (a results file read back).
fn is_result(name: &str) -> bool {
    RESULT_COLUMNS
        .iter()
        .any(|r| read::normalize(r) == read::normalize(name))
}

/// A line's cells by name, and its result cells (row, status, note ID, error).
type Row = (Vec<(String, String)>, [String; 4]);

fn rows(
    input: &Input,
    options: &crate::ReadOptions,
    context: &Context<'_>,
    repeated: &HashSet<u64>,
) -> std::io::Result<Rows> {
    let mut keys: Vec<String> = read::header(input, options)?
        .map(|(names, _)| names)
        .unwrap_or_default();
    let mut occurrences = Occurrences::new(repeated);
    let mut first_of: HashMap<u64, u64> = HashMap::new();
    let mut rows: Vec<Row> = Vec::new();
    for item in read::open(input, options, true)? {
        let mut record = match item? {
            Item::Valid(record) => record,
            Item::Invalid(error) => {
                let message = context.words(error.message());
                rows.push((Vec::new(), result(error.line(), "invalid", "", message)));
                continue;
            }
        };
        let key = occurrences.key(&mut record);
        let [status, note_id, error] = outcome(context, &mut first_of, &record, key);
        let names = names_of(&mut record, &keys);
        for name in &names {
            if !keys.contains(name) {
                keys.push(name.clone());
            }
        }
        let cells = names.into_iter().zip(cells_of(&mut record)).collect();
        rows.push((cells, [record.line.to_string(), status, note_id, error]));
    }
    Ok(laid_out(&keys, rows))
}

/// The header and rows of a results file: the input's columns `keys` (but those named like a
/// result column) in order, each row's cells under them, then its result cells.
fn laid_out(keys: &[String], rows: Vec<Row>) -> Rows {
    let kept: Vec<&String> = keys.iter().filter(|k| !is_result(k)).collect();
    let rows = rows
        .into_iter()
        .map(|(cells, result)| {
            let by_name: HashMap<&str, &str> = cells
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut row: Vec<String> = kept
                .iter()
                .map(|k| {
                    by_name
                        .get(k.as_str())
                        .map_or_else(String::new, |v| (*v).to_string())
                })
                .collect();
            row.extend(result);
            row
        })
        .collect();
    (with_added(keys), rows)
}

/// A valid line's status, note ID and error: invalid when it is a copy a refused input did not
/// allow, else what the journal says.
fn outcome(
    context: &Context<'_>,
    first_of: &mut HashMap<u64, u64>,
    record: &Record,
    key: (u64, u32),
) -> [String; 3] {
    match first_copy(context, first_of, record) {
        Some(first) => {
            let message = crate::session::identical_message(first);
            [
                "invalid".to_string(),
                String::new(),
                context.words(&message),
            ]
        }
        None => status(context, key),
    }
}

/// The result cells of a line.
fn result(line: u64, status: &str, note_id: &str, error: String) -> [String; 4] {
    [
        line.to_string(),
        status.to_string(),
        note_id.to_string(),
        error,
    ]
}

/// In a refused input whose identical lines are not allowed, the line a copy repeats (the copy is
/// invalid); `None` for every other line.
fn first_copy(
    context: &Context<'_>,
    first_of: &mut HashMap<u64, u64>,
    record: &Record,
) -> Option<u64> {
    let spec = context.spec;
    if !spec.refused || spec.duplicates_allowed {
        return None;
    }
    if record.occurrence == 0 {
        first_of.entry(record.fingerprint).or_insert(record.line);
        return None;
    }
    first_of.get(&record.fingerprint).copied()
}

/// The names of a line's cells: its own (JSON Lines), else the header's, else the three fields.
fn names_of(record: &mut Record, keys: &[String]) -> Vec<String> {
    record.keys.take().unwrap_or_else(|| {
        if keys.is_empty() {
            vec!["call_id".into(), "content".into(), "flagged".into()]
        } else {
            keys.to_vec()
        }
    })
}

/// A line's cells as read, else (records a caller built) its three fields.
fn cells_of(record: &mut Record) -> Vec<String> {
    record.cells.take().unwrap_or_else(|| {
        vec![
            record.call_id.to_string(),
            record.note.content().to_string(),
            record
                .note
                .is_flagged()
                .map(|f| f.to_string())
                .unwrap_or_default(),
        ]
    })
}

/// A line's status, note ID and error, from the journal.
fn status(context: &Context<'_>, key: (u64, u32)) -> [String; 3] {
    let state = context.state;
    let standing = state.standing(key);
    let this_run = state
        .decided_at(key)
        .is_some_and(|seq| seq > context.run_since);
    let reason = || context.words(state.reason(key).unwrap_or_default());
    let note = || state.done_id(key).unwrap_or_default();
    let (status, note_id, error) = if standing.in_doubt {
        (
            "unknown",
            String::new(),
            "the journal is damaged where it said more of this line".to_string(),
        )
    } else {
        match (standing.state, context.spec.kind) {
            (Some(LineState::Done), Kind::Import) if this_run => ("added", note(), String::new()),
            (Some(LineState::Done), Kind::Import) => ("already added", note(), String::new()),
            // Its delete may have gone through, or failed (see `Context::doubts`).
            (Some(LineState::Done), Kind::Undo) => match context.doubts.get(&key) {
                Some(Untold::Unknown(why)) => ("unknown", note(), context.words(why)),
                Some(Untold::Failed(why)) => ("not deleted", note(), context.words(why)),
                None => ("not deleted", note(), String::new()),
            },
            (Some(LineState::Failed), Kind::Import) => ("failed", String::new(), reason()),
            (Some(LineState::Failed), Kind::Undo) => ("not added", String::new(), reason()),
            (Some(LineState::Unknown { .. }), _) => ("unknown", String::new(), reason()),
            // Found gone: the reason says how (the note, or its call).
            (Some(LineState::Undone), Kind::Undo) => match state.reason(key) {
                Some(_) => ("already gone", note(), reason()),
                None => ("deleted", note(), String::new()),
            },
            (Some(LineState::Undone), Kind::Import) => {
                ("not sent", String::new(), "deleted by an undo".to_string())
            }
            (None, Kind::Import) => ("not sent", String::new(), String::new()),
            (None, Kind::Undo) => ("not added", String::new(), String::new()),
        }
    };
    [status.to_string(), note_id, error]
}

/// Whether a results file at `path` is a workbook: its name ends in `.xlsx` (any case).
pub fn is_workbook(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"))
}

/// The results file of the input at `input` when the caller leaves its name to the library:
/// beside the input, its name with `.results.xlsx` for a workbook input (`.xlsx`, `.xlsm`,
/// `.xls`, `.ods`: a results file is always written as `.xlsx`), else `.results.csv`
/// (`review.xlsx` gives `review.results.xlsx`, `review.csv` gives `review.results.csv`).
pub fn default_path(input: &Path) -> PathBuf {
    let workbook = crate::Format::from_path(input) == Some(crate::Format::Workbook);
    let stem = input
        .file_stem()
        .map_or_else(|| "input".into(), std::ffi::OsStr::to_os_string);
    let mut name = stem;
    name.push(if workbook {
        ".results.xlsx"
    } else {
        ".results.csv"
    });
    input.with_file_name(name)
}

/// The delimiter of a CSV results file at `path`: a tab for a `.tsv` or `.txt` name (any case),
/// else a comma, whatever the input's.
pub fn delimiter_for(path: &Path) -> u8 {
    let tabbed = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv") || e.eq_ignore_ascii_case("txt"));
    if tabbed { b'\t' } else { b',' }
}

/// Writes the rows to `path` whole ([`write_whole`]): a workbook ([`is_workbook`]), else CSV
/// ([`delimiter_for`]) after a byte-order mark, each cell made inert for a spreadsheet.
pub(crate) fn save(path: &Path, header: &[String], rows: &[Vec<String>]) -> std::io::Result<()> {
    write_whole(path, |file| {
        if is_workbook(path) {
            let mut sheet = TextSheet::new("results", header);
            for row in rows {
                sheet.push(row.iter().map(String::as_str));
            }
            return file.write_all(&sheet.to_xlsx()?);
        }
        write_csv(file, header, delimiter_for(path), rows)
    })
}

/// Writes a file whole: `fill` writes a temporary file beside `path`, which is synced to disk and
/// then renamed over `path`. On any failure the temporary file is removed and `path` is left as it
/// was, so that a reader never sees half a file.
pub fn write_whole(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let temp = temporary(path);
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        fill(&mut file)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// The UTF-8 byte-order mark a CSV results file starts with: without it, Excel reads UTF-8 as
/// the local code page ("bestÃ¤tigt").
const BOM: &[u8] = "\u{feff}".as_bytes();

/// The rows as CSV in `delimiter` after a byte-order mark, each cell made inert for a
/// spreadsheet.
#[cfg(feature = "csv")]
fn write_csv(
    file: &mut std::fs::File,
    header: &[String],
    delimiter: u8,
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(file);
    out.write_all(BOM)?;
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(out);
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        writer
            .write_record(
                row.iter()
                    .map(|cell| crate::spreadsheet::inert(cell).into_owned()),
            )
            .map_err(std::io::Error::other)?;
    }
    writer
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .flush()
}

/// Without the `csv` feature, a CSV results file is refused (a workbook, `.xlsx`, needs the
/// `workbook` feature).
#[cfg(not(feature = "csv"))]
fn write_csv(
    _file: &mut std::fs::File,
    _header: &[String],
    _delimiter: u8,
    _rows: &[Vec<String>],
) -> std::io::Result<()> {
    let _ = BOM;
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "this build of happyrobot-bulk writes no CSV results files: turn on its `csv` cargo \
         feature (on by default), or name the results file .xlsx with the `workbook` feature",
    ))
}

fn temporary(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.tmp", std::process::id()));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workbook_input_gets_a_workbook_results_file() {
        for (input, results) in [
            ("/data/review.xlsx", "/data/review.results.xlsx"),
            ("/data/review.ODS", "/data/review.results.xlsx"),
            ("review.csv", "review.results.csv"),
            ("notes.jsonl", "notes.results.csv"),
            ("/data/no-extension", "/data/no-extension.results.csv"),
        ] {
            assert_eq!(
                default_path(Path::new(input)),
                Path::new(results),
                "{input}"
            );
        }
        assert!(is_workbook(Path::new("r.XLSX")));
        assert!(!is_workbook(Path::new("r.csv")));
        assert!(!is_workbook(Path::new("xlsx")));
        assert_eq!(delimiter_for(Path::new("r.csv")), b',');
        assert_eq!(delimiter_for(Path::new("r.TSV")), b'\t');
        assert_eq!(delimiter_for(Path::new("r")), b',');
    }

    #[test]
    fn result_columns_replace_those_of_a_results_file_read_back() {
        let keys: Vec<String> = ["call_id", "status", "Result Status", "result_row"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            with_added(&keys),
            [
                "call_id",
                "status",
                "result_row",
                "result_status",
                "result_note_id",
                "result_error"
            ]
        );
    }
}
