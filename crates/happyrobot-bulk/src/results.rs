//! Results files: every input line with its original columns plus `status`, `note_id` and
//! `error`, as Salesforce's Data Loader writes success and error files: a workbook when the path
//! ends in `.xlsx` (one sheet, `results`, of text cells: see [`crate::spreadsheet::TextSheet`]),
//! else CSV (in the input's delimiter for a CSV input), each cell a spreadsheet would run as a
//! formula made inert with a leading apostrophe ([`crate::spreadsheet::inert`]; reading the file
//! back as an input takes it off again). [`default_path`] names one beside its input. A row's
//! status is what the journal says, so a results file written after a re-run is complete. It is
//! written to a temporary file beside the path and renamed over it when whole, so that a reader
//! never sees half of one.
//!
//! | status | meaning |
//! |---|---|
//! | `added` | added by this run |
//! | `already added` | added by an earlier run |
//! | `failed` | certainly not added (`error` says why); a re-run sends it again |
//! | `unknown` | may have been added (`error` says why); a re-run looks it up |
//! | `not sent` | the run stopped before it; a re-run sends it |
//! | `deleted` | an undo deleted its note (this run's or an earlier one's) |
//! | `not deleted` | an undo did not delete it (`error` says why when it tried) |
//! | `not added` | an undo found that its add, whose outcome was unknown, never happened |

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::journal::{JournalState, Keep, LineState};
use crate::plan::Plan;
use crate::read::{self, Input, Item};
use crate::record::Occurrences;
use crate::session::Prepared;
use crate::spreadsheet::TextSheet;
use crate::{BulkError, Source};

/// The three columns a results file adds to the input's.
const ADDED: [&str; 3] = ["status", "note_id", "error"];

/// Which run a results file describes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Import,
    Undo,
}

/// Writes the results file of a run of `kind`.
pub(crate) async fn write(
    source: &Source,
    prepared: &Prepared,
    plan: &Plan,
    path: &Path,
    kind: Kind,
) -> Result<(), BulkError> {
    let keep = Keep {
        done_notes: true,
        reasons: true,
    };
    let state = JournalState::load(&prepared.journal, &prepared.destination, keep)?;
    let (input, options) = (source.input.clone(), source.options.clone());
    let repeated = plan.repeated.clone();
    let path = path.to_path_buf();
    let run_since = prepared_run_seq(&state);
    tokio::task::spawn_blocking(move || {
        rows(&input, &options, &state, &repeated, kind, run_since)
            .and_then(|(header, delimiter, rows)| save(&path, &header, delimiter, &rows))
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

/// The place from which entries count as "this run": the journal's last `run` entry for this
/// destination. Without it, everything counts as this run's.
fn prepared_run_seq(state: &JournalState) -> u64 {
    state.last_run_seq().unwrap_or(0)
}

type Rows = (Vec<String>, u8, Vec<Vec<String>>);

/// The header of a results file: the input's columns `keys`, then the three added ones. Columns
/// named like those are renamed, so that no column is lost.
fn with_added(keys: &[String]) -> Vec<String> {
    let mut header = keys.to_vec();
    for added in ADDED {
        let mut name = added.to_string();
        while header
            .iter()
            .any(|h| read::normalize(h) == read::normalize(&name))
        {
            name = format!("result_{name}");
        }
        header.push(name);
    }
    header
}

/// A line's cells by name, and its status, note ID and error.
type Row = (Vec<(String, String)>, [String; 3]);

fn rows(
    input: &Input,
    options: &crate::ReadOptions,
    state: &JournalState,
    repeated: &std::collections::HashSet<u64>,
    kind: Kind,
    run_since: u64,
) -> std::io::Result<Rows> {
    let header = read::header(input, options)?;
    let mut keys: Vec<String> = header
        .as_ref()
        .map(|(names, _)| names.clone())
        .unwrap_or_default();
    let delimiter = header.as_ref().map_or(b',', |(_, d)| *d);
    let mut occurrences = Occurrences::new(repeated);
    let mut rows: Vec<Row> = Vec::new();
    for item in read::open(input, options, true)? {
        let Item::Valid(mut record) = item? else {
            continue;
        };
        let key = occurrences.key(&mut record);
        let status = status(state, key, kind, run_since);
        let cells = record.cells.take().unwrap_or_else(|| {
            vec![
                record.call_id.to_string(),
                record.note.content().to_string(),
                record
                    .note
                    .is_flagged()
                    .map(|f| f.to_string())
                    .unwrap_or_default(),
            ]
        });
        let names = record.keys.take().unwrap_or_else(|| {
            if keys.is_empty() {
                vec!["call_id".into(), "content".into(), "flagged".into()]
            } else {
                keys.clone()
            }
        });
        for name in &names {
            if !keys.contains(name) {
                keys.push(name.clone());
            }
        }
        rows.push((names.into_iter().zip(cells).collect(), status));
    }
    let header = with_added(&keys);
    let rows = rows
        .into_iter()
        .map(|(cells, status)| {
            let by_name: HashMap<&str, &str> = cells
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let mut row: Vec<String> = keys
                .iter()
                .map(|k| {
                    by_name
                        .get(k.as_str())
                        .map_or_else(String::new, |v| (*v).to_string())
                })
                .collect();
            row.extend(status);
            row
        })
        .collect();
    Ok((header, delimiter, rows))
}

/// A line's status, note ID and error, from the journal.
fn status(state: &JournalState, key: (u64, u32), kind: Kind, run_since: u64) -> [String; 3] {
    let standing = state.standing(key);
    let this_run = state.decided_at(key).is_some_and(|seq| seq > run_since);
    let reason = || state.reason(key).unwrap_or_default().to_string();
    let note = || state.done_id(key).unwrap_or_default();
    let (status, note_id, error) = if standing.in_doubt {
        (
            "unknown",
            String::new(),
            "the journal is damaged where it said more of this line".to_string(),
        )
    } else {
        match (standing.state, kind) {
            (Some(LineState::Done), Kind::Import) if this_run => ("added", note(), String::new()),
            (Some(LineState::Done), Kind::Import) => ("already added", note(), String::new()),
            (Some(LineState::Done), Kind::Undo) => ("not deleted", note(), String::new()),
            (Some(LineState::Failed), Kind::Import) => ("failed", String::new(), reason()),
            (Some(LineState::Failed), Kind::Undo) => ("not added", String::new(), reason()),
            (Some(LineState::Unknown { .. }), _) => ("unknown", String::new(), reason()),
            (Some(LineState::Undone), Kind::Undo) => ("deleted", String::new(), String::new()),
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

/// Writes the rows to a temporary file beside `path` and renames it over `path`: a workbook
/// ([`is_workbook`]), else CSV in `delimiter`, each cell made inert for a spreadsheet.
pub(crate) fn save(
    path: &Path,
    header: &[String],
    delimiter: u8,
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let temp = temporary(path);
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        if is_workbook(path) {
            let mut sheet = TextSheet::new("results", header);
            for row in rows {
                sheet.push(row.iter().map(String::as_str));
            }
            file.write_all(&sheet.to_xlsx()?)?;
            file.sync_all()?;
            return std::fs::rename(&temp, path);
        }
        write_csv(file, header, delimiter, rows)?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// The rows as CSV in `delimiter`, each cell made inert for a spreadsheet, synced to disk.
#[cfg(feature = "csv")]
fn write_csv(
    file: std::fs::File,
    header: &[String],
    delimiter: u8,
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(std::io::BufWriter::new(file));
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        writer
            .write_record(
                row.iter()
                    .map(|cell| crate::spreadsheet::inert(cell).into_owned()),
            )
            .map_err(std::io::Error::other)?;
    }
    let mut inner = writer
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    inner.flush()?;
    inner.get_ref().sync_all()
}

/// Without the `csv` feature, a CSV results file is refused (a workbook, `.xlsx`, needs the
/// `workbook` feature).
#[cfg(not(feature = "csv"))]
fn write_csv(
    _file: std::fs::File,
    _header: &[String],
    _delimiter: u8,
    _rows: &[Vec<String>],
) -> std::io::Result<()> {
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
    }
}
