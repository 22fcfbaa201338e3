//! The rows of a sync's input, each with its key: read whole and checked before anything else.
//! Invalid rows, a key column that is missing or empty, and rows that share a key refuse the sync
//! with every problem listed, as an import's invalid lines do.

use std::collections::HashMap;
use std::io;

use happyrobot::CallId;

use crate::plan::{MAX_SHOWN_ERRORS, Plan};
use crate::read::{self, Input, Item, LineError, columns::normalize};
use crate::{BulkError, Source};

/// One row of the input, as a sync wants it.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Its line (or sheet row).
    pub(crate) line: u64,
    /// What identifies it across runs: the key column's value, a record's key, or the call ID.
    pub(crate) key: String,
    pub(crate) call: CallId,
    pub(crate) content: String,
    pub(crate) flagged: Option<bool>,
}

/// Reads every row of `source`, keyed by `key_column` (or the call).
pub(crate) async fn read(source: &Source, key_column: Option<&str>) -> Result<Vec<Row>, BulkError> {
    source.options.check()?;
    let (source, key_column) = (source.clone(), key_column.map(str::to_string));
    tokio::task::spawn_blocking(move || read_blocking(&source, key_column.as_deref()))
        .await
        .map_err(|e| BulkError::io(format!("reading the input failed: {e}")))?
}

fn read_blocking(source: &Source, key_column: Option<&str>) -> Result<Vec<Row>, BulkError> {
    let name = &source.name;
    let read_error =
        |e: io::Error| BulkError::usage(format!("cannot read {name}: {e}; nothing was sent"));
    let mut options = source.options.clone();
    options.columns.key = key_column.map(str::to_string);
    let key_index = match key_column {
        Some(column) => Some(key_place(source, &options, column)?),
        None => None,
    };
    let mut rows = Vec::new();
    let mut refused = Refused::default();
    let keys_of_records = records_keys(&source.input);
    for item in read::open(&source.input, &options, key_index.is_some()).map_err(read_error)? {
        match item.map_err(read_error)? {
            Item::Invalid(error) => refused.push(error),
            Item::Valid(record) => {
                let key = match (&key_index, &keys_of_records) {
                    (Some(place), _) => cell(&record, place),
                    (None, Some(keys)) => keys
                        .get(record.line as usize - 1)
                        .cloned()
                        .flatten()
                        .or_else(|| Some(record.call_id.to_string())),
                    (None, None) => Some(record.call_id.to_string()),
                };
                let Some(key) = key.filter(|k| !k.trim().is_empty()) else {
                    refused.push(LineError::new(
                        record.line,
                        format!(
                            "the key column {:?} is empty: every row needs a key",
                            key_column.unwrap_or_default()
                        ),
                    ));
                    continue;
                };
                rows.push(Row {
                    line: record.line,
                    key: key.trim().to_string(),
                    content: record.note.content().to_string(),
                    flagged: record.note.is_flagged(),
                    call: record.call_id,
                });
            }
        }
    }
    refused.repeated_keys(&rows, key_column.is_some());
    refused.into_result(name)?;
    Ok(rows)
}

/// Where the key is among a record's cells: its index in the header, or its name for an input
/// whose lines name their own fields.
enum Place {
    Index(usize),
    Named(String),
}

/// Finds the key column; refused when the header has no such column.
fn key_place(
    source: &Source,
    options: &crate::ReadOptions,
    column: &str,
) -> Result<Place, BulkError> {
    let header = read::header(&source.input, options).map_err(|e| {
        BulkError::usage(format!(
            "cannot read {}: {e}; nothing was sent",
            source.name
        ))
    })?;
    let Some((names, _)) = header else {
        return Ok(Place::Named(normalize(column)));
    };
    match names.iter().position(|n| normalize(n) == normalize(column)) {
        Some(index) => Ok(Place::Index(index)),
        None => Err(BulkError::usage(format!(
            "the header of {} has no key column {column:?} (Sync::key_column); it has {}",
            source.name,
            names
                .iter()
                .map(|n| format!("{:?}", read::shorten(n.trim())))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The key cell of `record`.
fn cell(record: &crate::record::Record, place: &Place) -> Option<String> {
    let cells = record.cells.as_ref()?;
    let index = match place {
        Place::Index(index) => *index,
        Place::Named(name) => record
            .keys
            .as_ref()?
            .iter()
            .position(|k| normalize(k) == *name)?,
    };
    cells.get(index).cloned()
}

/// The keys records built in memory carry, in order.
fn records_keys(input: &Input) -> Option<Vec<Option<String>>> {
    match input {
        Input::Records(records) => Some(
            records
                .iter()
                .map(|r| r.sync_key().map(str::to_string))
                .collect(),
        ),
        Input::File { .. } => None,
    }
}

/// The problems found so far, as an import's validation counts them.
#[derive(Default)]
struct Refused {
    invalid: u64,
    errors: Vec<LineError>,
}

impl Refused {
    fn push(&mut self, error: LineError) {
        self.invalid += 1;
        if self.errors.len() < MAX_SHOWN_ERRORS {
            self.errors.push(error);
        }
    }

    /// Rows whose key an earlier row has.
    fn repeated_keys(&mut self, rows: &[Row], key_column: bool) {
        let mut first: HashMap<&str, u64> = HashMap::new();
        for row in rows {
            let Some(&earlier) = first.get(row.key.as_str()) else {
                first.insert(&row.key, row.line);
                continue;
            };
            let message = if key_column {
                format!(
                    "the key {:?} is on line {earlier} too: each row needs a key of its own",
                    read::shorten(&row.key)
                )
            } else {
                format!(
                    "call {} is on line {earlier} too: without a key column a sync knows a row by \
                     its call; name a column whose value tells the rows apart (Sync::key_column)",
                    row.call
                )
            };
            self.push(LineError::new(row.line, message));
        }
        self.errors.sort_by_key(LineError::line);
    }

    fn into_result(self, name: &str) -> Result<(), BulkError> {
        let plan = Plan {
            invalid: self.invalid,
            errors: self.errors,
            ..Plan::default()
        };
        crate::session::refuse_invalid(&plan, name, true)
    }
}
