//! Spreadsheet workbooks through calamine: `.xlsx`, `.xlsm`, `.xls` and `.ods`. One sheet is read
//! (the one named, else the first); its first non-empty row is the header, mapped as a CSV's;
//! empty rows are skipped; cells may be text, numbers or booleans, and messages give the sheet's
//! own row numbers.

use std::io;
use std::path::Path;

use calamine::{Data, Range, Reader, open_workbook_auto};

use super::columns::{self, Columns};
use super::{Fields, Item, LineError, make_record, parse_flag, shorten};
use crate::ReadOptions;

/// The records of one sheet.
pub(crate) struct SheetRecords {
    sheet: String,
    range: Range<Data>,
    /// The sheet's row number of the range's first row, minus one.
    first_row: u64,
    /// The next row of the range to read, and the header's.
    next: usize,
    columns: Result<Columns, LineError>,
    options: ReadOptions,
    cells: bool,
    done: bool,
}

impl SheetRecords {
    pub(crate) fn open(path: &Path, options: &ReadOptions, cells: bool) -> io::Result<Self> {
        let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
        let mut workbook = open_workbook_auto(path)
            .map_err(|e| invalid(format!("it is not a workbook calamine can read ({e})")))?;
        let names = workbook.sheet_names();
        let sheet = match &options.sheet {
            Some(wanted) => names
                .iter()
                .find(|n| n.as_str() == wanted.as_str())
                .or_else(|| {
                    names
                        .iter()
                        .find(|n| n.trim().eq_ignore_ascii_case(wanted.trim()))
                })
                .cloned()
                .ok_or_else(|| {
                    invalid(format!(
                        "it has no sheet named {wanted:?} (its sheets: {}); give one of them with \
                         ReadOptions::sheet",
                        names
                            .iter()
                            .map(|n| format!("{n:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?,
            None => names
                .first()
                .cloned()
                .ok_or_else(|| invalid("the workbook has no sheet".to_string()))?,
        };
        let range = workbook
            .worksheet_range(&sheet)
            .map_err(|e| invalid(format!("its sheet {sheet:?} cannot be read ({e})")))?;
        Ok(Self::from_range(sheet, range, options, cells))
    }

    fn from_range(sheet: String, range: Range<Data>, options: &ReadOptions, cells: bool) -> Self {
        let first_row = range.start().map_or(0, |(row, _)| u64::from(row));
        let mut records = Self {
            sheet,
            range,
            first_row,
            next: 0,
            columns: Ok(Columns {
                call_id: 0,
                content: None,
                flagged: None,
                count: 0,
            }),
            options: options.clone(),
            cells,
            done: false,
        };
        records.columns = records.read_header();
        records
    }

    /// The header: the first row with a non-empty cell.
    fn read_header(&mut self) -> Result<Columns, LineError> {
        let found = self
            .range
            .rows()
            .enumerate()
            .find(|(_, row)| row.iter().any(|c| !is_blank(c)));
        let Some((index, row)) = found else {
            return Err(LineError::in_sheet(
                self.first_row + 1,
                &self.sheet,
                "the sheet is empty: its first row must name the columns (call_id, content and \
                 optionally flagged)",
            ));
        };
        let names: Vec<String> = row.iter().map(text_of).collect();
        self.next = index + 1;
        let line = self.first_row + index as u64 + 1;
        columns::map(&names, &self.options, "column")
            .map_err(|message| LineError::in_sheet(line, &self.sheet, message))
    }
}

/// A workbook sheet's header names.
pub(crate) fn header(path: &Path, options: &ReadOptions) -> io::Result<Vec<String>> {
    let records = SheetRecords::open(path, options, false)?;
    let found = records
        .range
        .rows()
        .find(|row| row.iter().any(|c| !is_blank(c)))
        .map(|row| row.iter().map(text_of).collect());
    Ok(found.unwrap_or_default())
}

/// The cell a row lacks.
static EMPTY: Data = Data::Empty;

fn is_blank(cell: &Data) -> bool {
    match cell {
        Data::Empty => true,
        Data::String(text) => text.trim().is_empty(),
        _ => false,
    }
}

/// A cell as text: numbers without a needless `.0`, booleans as `true`/`false`.
fn text_of(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        Data::String(text) => text.clone(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        other => other.to_string(),
    }
}

impl Iterator for SheetRecords {
    type Item = io::Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let columns = match &self.columns {
            Ok(columns) => columns.clone(),
            Err(error) => {
                self.done = true;
                return Some(Ok(Item::Invalid(error.clone())));
            }
        };
        let width = self.range.width();
        loop {
            if self.next >= self.range.height() {
                self.done = true;
                return None;
            }
            // Cells by position: `rows().nth(n)` would walk the sheet from its top for every row.
            let row: Vec<&Data> = (0..width)
                .map(|c| self.range.get((self.next, c)).unwrap_or(&EMPTY))
                .collect();
            let line = self.first_row + self.next as u64 + 1;
            self.next += 1;
            if row.iter().all(|c| is_blank(c)) {
                continue;
            }
            let cell =
                |index: Option<usize>| index.and_then(|i| row.get(i).copied()).unwrap_or(&EMPTY);
            let call_id = match cell(Some(columns.call_id)) {
                Data::String(text) => text.clone(),
                Data::Empty => String::new(),
                Data::Int(_) | Data::Float(_) => {
                    return Some(Ok(Item::Invalid(LineError::in_sheet(
                        line,
                        &self.sheet,
                        format!(
                            "the call ID is a number in the workbook ({}), which loses digits and \
                             leading zeros: format the call_id column as Text and type the IDs \
                             again (24 characters)",
                            shorten(&text_of(cell(Some(columns.call_id))))
                        ),
                    ))));
                }
                other => text_of(other),
            };
            let flagged = match cell(columns.flagged) {
                Data::Bool(flag) => Ok(Some(*flag)),
                Data::Empty => Ok(None),
                other => parse_flag(&text_of(other)),
            };
            let fields = Fields {
                call_id: &call_id,
                content: text_of(cell(columns.content)),
                flagged,
            };
            let item = match make_record(line, fields, &self.options) {
                Ok(mut record) => {
                    if self.cells {
                        record.cells = Some(row.iter().map(|c| text_of(c)).collect());
                    }
                    Item::Valid(record)
                }
                Err(message) => Item::Invalid(LineError::in_sheet(line, &self.sheet, message)),
            };
            return Some(Ok(item));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "65f1c0ffee0123456789abcd";

    fn range(rows: Vec<Vec<Data>>, at: (u32, u32)) -> Range<Data> {
        let height = rows.len() as u32;
        let width = rows.iter().map(Vec::len).max().unwrap_or(1) as u32;
        let mut range = Range::new(at, (at.0 + height - 1, at.1 + width - 1));
        for (r, row) in rows.into_iter().enumerate() {
            for (c, cell) in row.into_iter().enumerate() {
                range.set_value((at.0 + r as u32, at.1 + c as u32), cell);
            }
        }
        range
    }

    fn s(text: &str) -> Data {
        Data::String(text.into())
    }

    #[test]
    fn rows_are_numbered_as_the_sheet_numbers_them_and_cells_keep_their_types() {
        let rows = vec![
            vec![s("Call ID"), s("Content"), s("Flagged")],
            vec![s(ID), s("text"), Data::Bool(true)],
            vec![Data::Empty, Data::Empty, Data::Empty],
            vec![s(ID), Data::Float(42.0), Data::Int(0)],
            vec![Data::Float(65.0), s("a number ID"), Data::Empty],
        ];
        // The data starts on the sheet's third row.
        let records = SheetRecords::from_range(
            "Notes".into(),
            range(rows, (2, 0)),
            &ReadOptions::default(),
            false,
        );
        let items: Vec<Item> = records.map(|i| i.unwrap()).collect();
        let summary: Vec<String> = items
            .iter()
            .map(|item| match item {
                Item::Valid(r) => {
                    format!("{} {} {:?}", r.line, r.note.content(), r.note.is_flagged())
                }
                Item::Invalid(e) => e.to_string(),
            })
            .collect();
        assert_eq!(summary.len(), 3, "{summary:#?}");
        assert_eq!(summary[0], "4 text Some(true)");
        assert_eq!(summary[1], "6 42 Some(false)");
        assert!(
            summary[2].starts_with("row 7 of sheet \"Notes\": the call ID is a number"),
            "{}",
            summary[2]
        );
    }
}
