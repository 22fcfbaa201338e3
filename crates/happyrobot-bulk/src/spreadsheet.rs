//! Files meant to be opened in a spreadsheet: CSV cells a spreadsheet cannot run, and workbooks of
//! text cells.
//!
//! **CSV.** A spreadsheet runs a CSV cell that begins with `=`, `@`, `+` or `-` as a formula
//! (CSV injection: `=HYPERLINK(...)`, DDE), and some also one that begins with a tab or a carriage
//! return. [`inert`] makes such a cell text with a leading apostrophe, as OWASP recommends, before
//! it is written; [`revived`] takes that apostrophe off again when a CSV is read, so that a file
//! written here reads back as it was. A phone number (`+` and digits) and a negative number are
//! left as they are; an apostrophe before ordinary text is never taken off. Every CSV this crate
//! writes (results files) and reads goes through them, and so does every CSV the `happyrobot`
//! command writes.
//!
//! **Workbooks.** [`TextSheet`] writes one sheet of text cells (an `.xlsx` workbook): nothing in it
//! is a formula, a phone number keeps its `+`, and a call ID keeps every digit. Its header row is
//! bold, frozen and filtered, and its columns are as wide as their text.

use std::borrow::Cow;

/// Whether a spreadsheet would run `cell` (or, for a cell that begins with an apostrophe, whether
/// the rest would be made inert: an apostrophe written before such text must survive being read).
fn runnable(cell: &str) -> bool {
    let mut chars = cell.chars();
    match chars.next() {
        Some('=' | '@' | '\t' | '\r') => true,
        Some('+' | '-') => {
            let rest = chars.as_str();
            !rest.is_empty() && !is_number(rest)
        }
        Some('\'') => runnable(chars.as_str()),
        _ => false,
    }
}

/// Digits, with at most one decimal point among or before them: what follows the sign of a phone
/// number or a negative number.
fn is_number(text: &str) -> bool {
    let mut digits = 0;
    let mut points = 0;
    for c in text.chars() {
        match c {
            '0'..='9' => digits += 1,
            '.' => points += 1,
            _ => return false,
        }
    }
    digits > 0 && points <= 1
}

/// `cell` as written to a CSV meant for a spreadsheet: with a leading apostrophe when a spreadsheet
/// would run it as a formula (it begins with `=`, `@`, a tab or a carriage return, or with `+` or
/// `-` followed by something that is not a number), else as it is. [`revived`] undoes it.
///
/// ```
/// use happyrobot_bulk::spreadsheet::{inert, revived};
///
/// assert_eq!(inert("=HYPERLINK(\"http://x\",\"y\")"), "'=HYPERLINK(\"http://x\",\"y\")");
/// assert_eq!(inert("@SUM(1+1)"), "'@SUM(1+1)");
/// assert_eq!(inert("+13125550142"), "+13125550142"); // a phone number
/// assert_eq!(inert("-12.5"), "-12.5");
/// assert_eq!(inert("-1+2"), "'-1+2");
/// assert_eq!(revived("'=1+1"), "=1+1");
/// assert_eq!(revived("'tis"), "'tis"); // an apostrophe before ordinary text stays
/// ```
pub fn inert(cell: &str) -> Cow<'_, str> {
    if runnable(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// A CSV cell as read: without the apostrophe [`inert`] put before text a spreadsheet would run,
/// else as it is (an apostrophe before ordinary text is the cell's own).
pub fn revived(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if runnable(rest) => rest,
        _ => cell,
    }
}

/// The most characters Excel holds in a cell.
pub const MAX_CELL_CHARS: usize = 32_767;

/// The widest a column is made, in characters (a long note wraps its column no wider).
#[cfg_attr(not(feature = "workbook"), allow(dead_code))]
const MAX_WIDTH: usize = 60;

/// One sheet of text cells, written as an `.xlsx` workbook: a bold header row that stays visible
/// (frozen) with a filter, columns as wide as their text (at least as wide as asked), and every
/// cell text, formatted as text so that what is typed into it later stays text too.
///
/// ```
/// use happyrobot_bulk::spreadsheet::TextSheet;
///
/// let mut sheet = TextSheet::new("calls", ["call_id", "from", "content"]).min_width(2, 40);
/// sheet.push(["65f1c0ffee0123456789abcd", "+13125550142", ""]);
/// let bytes: Vec<u8> = sheet.to_xlsx()?;
/// assert!(bytes.starts_with(b"PK")); // a workbook is a zip archive
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "workbook"), allow(dead_code))]
pub struct TextSheet {
    name: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    min_widths: Vec<usize>,
}

impl TextSheet {
    /// A sheet named `name` (at most 31 characters, none of `[]:*?/\`) with this header row.
    pub fn new<S: Into<String>>(
        name: impl Into<String>,
        header: impl IntoIterator<Item = S>,
    ) -> Self {
        let header: Vec<String> = header.into_iter().map(Into::into).collect();
        Self {
            name: name.into(),
            min_widths: vec![0; header.len()],
            header,
            rows: Vec::new(),
        }
    }

    /// Makes column `column` (from 0) at least `width` characters wide: a column to fill in.
    pub fn min_width(mut self, column: usize, width: usize) -> Self {
        if let Some(min) = self.min_widths.get_mut(column) {
            *min = width;
        }
        self
    }

    /// Adds a row below the others.
    pub fn push<S: Into<String>>(&mut self, row: impl IntoIterator<Item = S>) {
        self.rows.push(row.into_iter().map(Into::into).collect());
    }

    /// How many rows were added (the header not counted).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The workbook's bytes. Fails (with [`std::io::ErrorKind::InvalidData`]) when a cell holds
    /// more than [`MAX_CELL_CHARS`] characters, or the sheet more rows than a workbook holds
    /// (1,048,575 below the header).
    pub fn to_xlsx(&self) -> std::io::Result<Vec<u8>> {
        self.build()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    #[cfg(not(feature = "workbook"))]
    fn build(&self) -> Result<Vec<u8>, String> {
        Err(
            "this build of happyrobot-bulk writes no workbooks: turn on its `workbook` cargo \
             feature (on by default)"
                .to_string(),
        )
    }

    #[cfg(feature = "workbook")]
    fn build(&self) -> Result<Vec<u8>, String> {
        use rust_xlsxwriter::{Format, Workbook};

        let text = Format::new().set_num_format("@");
        let bold = Format::new().set_num_format("@").set_bold();
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet();
        sheet
            .set_name(&self.name)
            .map_err(|e| format!("the sheet cannot be named {:?}: {e}", self.name))?;
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        let too_wide = || format!("{columns} columns are more than a sheet holds");
        let last_col = u16::try_from(columns.saturating_sub(1)).map_err(|_| too_wide())?;
        let mut widths: Vec<usize> = (0..columns)
            .map(|c| self.min_widths.get(c).copied().unwrap_or(0))
            .collect();
        for (row_index, row) in std::iter::once(&self.header)
            .chain(self.rows.iter())
            .enumerate()
        {
            let row_number = u32::try_from(row_index)
                .map_err(|_| format!("{} rows are more than a sheet holds", self.rows.len()))?;
            for (col_index, cell) in row.iter().enumerate() {
                let chars = cell.chars().count();
                if chars > MAX_CELL_CHARS {
                    return Err(format!(
                        "row {} has a cell of {chars} characters, more than a workbook's cell \
                         holds ({MAX_CELL_CHARS})",
                        row_index + 1
                    ));
                }
                let col = u16::try_from(col_index).map_err(|_| too_wide())?;
                let format = if row_index == 0 { &bold } else { &text };
                sheet
                    .write_string_with_format(row_number, col, cell.as_str(), format)
                    .map_err(|e| format!("row {} cannot be written: {e}", row_index + 1))?;
                let width = cell.lines().map(|l| l.chars().count()).max().unwrap_or(0);
                widths[col_index] = widths[col_index].max(width.min(MAX_WIDTH));
            }
        }
        for (col_index, width) in widths.iter().enumerate() {
            let col = u16::try_from(col_index).map_err(|_| too_wide())?;
            // Two characters of margin, as a spreadsheet's own "fit" leaves.
            sheet
                .set_column_width(col, (width + 2) as f64)
                .and_then(|s| s.set_column_format(col, &text))
                .map_err(|e| format!("column {} cannot be sized: {e}", col_index + 1))?;
        }
        if columns > 0 {
            let last_row = u32::try_from(self.rows.len())
                .map_err(|_| format!("{} rows are more than a sheet holds", self.rows.len()))?;
            sheet
                .set_freeze_panes(1, 0)
                .and_then(|s| s.autofilter(0, 0, last_row, last_col))
                .map_err(|e| format!("the header row cannot be frozen: {e}"))?;
        }
        workbook
            .save_to_buffer()
            .map_err(|e| format!("the workbook cannot be written: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_a_spreadsheet_would_run_are_made_inert() {
        for (cell, written) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("@SUM(1+1)", "'@SUM(1+1)"),
            ("\tcmd", "'\tcmd"),
            ("\r=1", "'\r=1"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-2+3", "'-2+3"),
            ("+1 312 555 0142", "'+1 312 555 0142"),
            ("'=1+1", "''=1+1"),
            ("''@x", "'''@x"),
        ] {
            assert_eq!(inert(cell), written, "{cell:?}");
        }
        for cell in [
            "+13125550142",
            "-12",
            "-12.5",
            "+.5",
            "-",
            "+",
            "",
            "plain text",
            "a=b",
            "'tis",
            "'+13125550142",
            "65f1c0ffee0123456789abcd",
            "2024-03-13T15:04:05Z",
        ] {
            assert_eq!(inert(cell), cell, "{cell:?} stays as it is");
        }
    }

    #[test]
    fn every_cell_reads_back_as_it_was_written() {
        for cell in [
            "=1", "@a", "\t", "\r", "+a", "-a", "+1", "-1.5", "'", "'=1", "''=1", "'tis", "'+1",
            "x", "", "-1..2", "+1e5", "'\t",
        ] {
            assert_eq!(revived(&inert(cell)), cell, "{cell:?}");
        }
        // An apostrophe a person typed before ordinary text is theirs.
        assert_eq!(revived("'tis"), "'tis");
        assert_eq!(revived("'+13125550142"), "'+13125550142");
        assert_eq!(revived("'=SUM(A1)"), "=SUM(A1)");
    }

    #[test]
    #[cfg(not(feature = "workbook"))]
    fn without_the_workbook_feature_a_sheet_says_which_feature_writes_it() {
        let error = TextSheet::new("s", &["a".to_string()])
            .to_xlsx()
            .unwrap_err();
        assert!(error.to_string().contains("`workbook`"), "{error}");
    }

    #[test]
    #[cfg(feature = "workbook")]
    fn a_sheet_is_a_workbook_and_refuses_a_cell_too_long() {
        let mut sheet = TextSheet::new("calls", ["call_id", "content"]).min_width(1, 40);
        sheet.push(["65f1c0ffee0123456789abcd", "=1+1"]);
        assert_eq!(sheet.len(), 1);
        assert!(sheet.to_xlsx().unwrap().starts_with(b"PK"));
        sheet.push([
            "65f1c0ffee0123456789abcd".to_string(),
            "x".repeat(MAX_CELL_CHARS + 1),
        ]);
        let error = sheet.to_xlsx().unwrap_err();
        assert!(error.to_string().contains("32767"), "{error}");
        assert!(TextSheet::new("bad/name", ["a"]).to_xlsx().is_err());
    }
}
