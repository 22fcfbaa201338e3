//! Spreadsheet workbooks through calamine: `.xlsx`, `.xlsm`, `.xls` and `.ods`, read as what their
//! bytes say whatever their extension (see [`super::sniff`]). One sheet is read (the one named,
//! else the first; a first sheet without the columns names the sheet that has them); its first
//! non-empty row is the header, mapped as a CSV's; empty rows are skipped; every cell is read as
//! the text the workbook shows (see [`super::cells`]), an error cell refused; messages give the
//! sheet's own row numbers.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

use calamine::{Data, Range, Reader, Sheets};

use super::cells::{self, text_of};
use super::columns::{self, ColumnMapping, Columns, join_and};
use super::{Fields, Item, LineError, make_record, shorten};
use crate::ReadOptions;

/// The records of one sheet.
pub(crate) struct SheetRecords {
    sheet: String,
    range: Range<Data>,
    /// The sheet's row number of the range's first row, minus one.
    first_row: u64,
    /// The next row of the range to read, and the header's.
    next: usize,
    /// The header's names.
    names: Vec<String>,
    columns: Result<Columns, LineError>,
    options: ReadOptions,
    cells: bool,
    done: bool,
}

type Workbook = Sheets<BufReader<File>>;

impl SheetRecords {
    pub(crate) fn open(path: &Path, options: &ReadOptions, cells: bool) -> io::Result<Self> {
        let mut workbook = super::sniff::open(path)?;
        let names = workbook.sheet_names();
        let sheet = chosen_sheet(&names, options)?;
        let range = sheet_range(&mut workbook, &sheet)?;
        let mut records = Self::from_range(sheet, range, options, cells);
        if options.sheet.is_none()
            && names.len() > 1
            && let Err(error) = &records.columns
            && !has_the_columns(&records.names, options)
        {
            let error = error.clone();
            records.columns = Err(records.not_a_sheet_of_notes(&error, &mut workbook, &names));
        }
        Ok(records)
    }

    fn from_range(sheet: String, range: Range<Data>, options: &ReadOptions, cells: bool) -> Self {
        let first_row = range.start().map_or(0, |(row, _)| u64::from(row));
        let mut records = Self {
            sheet,
            range,
            first_row,
            next: 0,
            names: Vec::new(),
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
        let Some((index, names)) = header_row(&self.range) else {
            return Err(LineError::in_sheet(
                self.first_row + 1,
                &self.sheet,
                "the sheet is empty: its first row must name the columns (call_id, content and \
                 optionally flagged)",
            ));
        };
        self.next = index + 1;
        self.names = names;
        let line = self.first_row + index as u64 + 1;
        columns::map(&self.names, &self.options, "column")
            .map_err(|message| LineError::in_sheet(line, &self.sheet, message))
    }

    /// Which column feeds which field, when the header maps.
    pub(crate) fn mapping(&self) -> Option<ColumnMapping> {
        let columns = self.columns.as_ref().ok()?;
        Some(ColumnMapping::new(
            Some(self.sheet.clone()),
            &self.names,
            columns,
        ))
    }

    /// The refusal of a first sheet whose header does not map, in a workbook of several sheets:
    /// it names the sheets, and the one that has the columns if one does.
    fn not_a_sheet_of_notes(
        &self,
        error: &LineError,
        workbook: &mut Workbook,
        names: &[String],
    ) -> LineError {
        let fits = names.iter().find(|name| {
            **name != self.sheet
                && sheet_range(workbook, name).ok().is_some_and(|range| {
                    header_row(&range)
                        .is_some_and(|(_, header)| has_the_columns(&header, &self.options))
                })
        });
        let first: Vec<String> = self
            .names
            .iter()
            .filter(|n| !n.trim().is_empty())
            .map(|n| format!("{:?}", shorten(n.trim())))
            .collect();
        let sheets: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
        let holds = if first.is_empty() {
            "it is empty".to_string()
        } else {
            format!("its first row holds {}", join_and(&first))
        };
        let message = match fits {
            Some(other) => format!(
                "the workbook's first sheet, {:?}, is not a sheet of notes: {holds}, not the \
                 columns call_id, content and optionally flagged. The sheet {other:?} has them: \
                 read it by name (ReadOptions::sheet {other:?})",
                self.sheet,
            ),
            None => format!(
                "{} (the workbook's first sheet, {:?}, was read; its sheets are {}: name the \
                 sheet of notes with ReadOptions::sheet)",
                error.message(),
                self.sheet,
                join_and(&sheets),
            ),
        };
        LineError::in_sheet(error.line(), &self.sheet, message)
    }
}

/// Whether a header has the call ID's and the text's columns, whatever other columns it has.
fn has_the_columns(header: &[String], options: &ReadOptions) -> bool {
    let loose = options.clone().ignore_other_columns(true);
    columns::map(header, &loose, "column").is_ok()
}

/// The sheet to read: the one named (exactly, else without regard to case and surrounding
/// spaces), else the first.
fn chosen_sheet(names: &[String], options: &ReadOptions) -> io::Result<String> {
    let invalid = |e: String| io::Error::new(io::ErrorKind::InvalidData, e);
    let Some(wanted) = &options.sheet else {
        return names
            .first()
            .cloned()
            .ok_or_else(|| invalid("the workbook has no sheet".to_string()));
    };
    names
        .iter()
        .find(|n| n.as_str() == wanted.as_str())
        .or_else(|| {
            names
                .iter()
                .find(|n| n.trim().eq_ignore_ascii_case(wanted.trim()))
        })
        .cloned()
        .ok_or_else(|| {
            let list: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
            invalid(format!(
                "it has no sheet named {wanted:?} (its sheets: {}); give one of them with \
                 ReadOptions::sheet",
                list.join(", ")
            ))
        })
}

/// A sheet's cells, or why they cannot be read, in words.
fn sheet_range(workbook: &mut Workbook, sheet: &str) -> io::Result<Range<Data>> {
    workbook.worksheet_range(sheet).map_err(|e| {
        tracing::debug!("sheet {sheet:?}: {e}");
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "its sheet {sheet:?} cannot be read (a chart sheet, or damaged?): open the \
                 workbook in a spreadsheet and save it again, or read another sheet \
                 (ReadOptions::sheet)"
            ),
        )
    })
}

/// The first row with a non-empty cell: its index in the range and its cells as text.
fn header_row(range: &Range<Data>) -> Option<(usize, Vec<String>)> {
    range
        .rows()
        .enumerate()
        .find(|(_, row)| row.iter().any(|c| !is_blank(c)))
        .map(|(index, row)| (index, row.iter().map(text_of).collect()))
}

/// A workbook sheet's header names.
pub(crate) fn header(path: &Path, options: &ReadOptions) -> io::Result<Vec<String>> {
    Ok(SheetRecords::open(path, options, false)?.names)
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
            return Some(Ok(self.read_row(&row, line, &columns)));
        }
    }
}

impl SheetRecords {
    /// One row of cells, the sheet's row `line`, as a record or what is wrong with it.
    fn read_row(&self, row: &[&Data], line: u64, columns: &Columns) -> Item {
        let cell = |index: Option<usize>| index.and_then(|i| row.get(i).copied()).unwrap_or(&EMPTY);
        let fields = cells::fields(
            cell(Some(columns.call_id)),
            cell(columns.content),
            cell(columns.flagged),
        );
        let made = fields.and_then(|(call_id, content, flagged)| {
            let fields = Fields {
                call_id: &call_id,
                content,
                flagged,
            };
            make_record(line, fields, &self.options)
        });
        match made {
            Ok(mut record) => {
                if self.cells {
                    record.cells = Some(row.iter().map(|c| text_of(c)).collect());
                }
                Item::Valid(record)
            }
            Err(message) => Item::Invalid(LineError::in_sheet(line, &self.sheet, message)),
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
