//! Delimited text: the delimiter detected from the header line (`,` `;` tab `|`) or given, the
//! columns mapped by name, quoted fields with delimiters and line breaks, CRLF or LF, and the line
//! each record starts on, which the csv crate does not report directly. A cell made inert for a
//! spreadsheet (`'=...`, see [`crate::spreadsheet`]) is read without its apostrophe.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use happyrobot::CallId;

use super::columns::{self, Columns};
use super::text::{self, ENCODING_HINT};
use super::{Fields, Item, LineError, make_record, parse_flag};
use crate::ReadOptions;
use crate::spreadsheet::revived;

/// The delimiters detected, in the order a tie is broken.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// A delimiter as people name it.
pub(crate) fn delimiter_name(delimiter: u8) -> String {
    match delimiter {
        b'\t' => "tab".to_string(),
        other => format!("{:?}", char::from(other)),
    }
}

/// The delimiter a header line uses: the candidate that occurs most often outside quotes (a comma
/// when none does: a single column).
fn detect(head: &[u8]) -> u8 {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for &byte in head {
        if byte == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = DELIMITERS.iter().position(|d| *d == byte) {
            counts[i] += 1;
        }
    }
    let mut best = 0;
    for i in 1..DELIMITERS.len() {
        if counts[i] > counts[best] {
            best = i;
        }
    }
    DELIMITERS[best]
}

/// The records of a delimited text file.
pub(crate) struct CsvRecords {
    reader: csv::Reader<EofReader>,
    columns: Result<Columns, LineError>,
    record: csv::StringRecord,
    eof: Arc<AtomicBool>,
    options: ReadOptions,
    cells: bool,
    done: bool,
    delimiter: u8,
}

/// A reader that notes when its source is exhausted: a CSV record read up to the end of the file
/// has no terminator, which the line numbering needs to know.
struct EofReader {
    inner: Box<dyn Read + Send>,
    eof: Arc<AtomicBool>,
}

impl Read for EofReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        if read == 0 && !buf.is_empty() {
            self.eof.store(true, Ordering::Relaxed);
        }
        Ok(read)
    }
}

impl CsvRecords {
    pub(crate) fn open(path: &Path, options: &ReadOptions, cells: bool) -> io::Result<Self> {
        let file = File::open(path)?;
        Self::from_reader(Box::new(file), options, cells)
    }

    /// Reads records from any reader (the tests' in-memory files).
    pub(crate) fn from_reader(
        reader: Box<dyn Read + Send>,
        options: &ReadOptions,
        cells: bool,
    ) -> io::Result<Self> {
        let decoded = text::decoded(reader, options.encoding);
        let (head, reader) = text::first_line(decoded)?;
        let delimiter = options.delimiter.unwrap_or_else(|| detect(&head));
        let eof = Arc::new(AtomicBool::new(false));
        // Only `\n` ends a record (a `\r` before it is taken off the last field below), so that
        // the reader's line count after a record is the same for LF and CRLF files, which the line
        // numbering relies on.
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .delimiter(delimiter)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_reader(EofReader {
                inner: reader,
                eof: Arc::clone(&eof),
            });
        let columns = match reader.headers() {
            Ok(header) => {
                let names: Vec<String> = header
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        // The header's last name carries the `\r` of a CRLF line.
                        let name = if i + 1 == header.len() {
                            name.strip_suffix('\r').unwrap_or(name)
                        } else {
                            name
                        };
                        revived(name).to_string()
                    })
                    .collect();
                columns::map(&names, options, "column").map_err(|message| {
                    LineError::new(1, with_delimiter_hint(message, &head, delimiter, options))
                })
            }
            Err(e) => Err(LineError::new(
                1,
                format!("the header line is unreadable: {}", reason(&e)),
            )),
        };
        Ok(Self {
            reader,
            columns,
            record: csv::StringRecord::new(),
            eof,
            options: options.clone(),
            cells,
            done: false,
            delimiter,
        })
    }
}

/// A CSV file's header names and its delimiter (detected as for reading).
pub(crate) fn header(path: &Path, options: &ReadOptions) -> io::Result<(Vec<String>, u8)> {
    let decoded = text::decoded(Box::new(File::open(path)?), options.encoding);
    let (head, _) = text::first_line(decoded)?;
    let delimiter = options.delimiter.unwrap_or_else(|| detect(&head));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(head.as_slice());
    let mut record = csv::StringRecord::new();
    reader.read_record(&mut record).map_err(io::Error::other)?;
    let names = record
        .iter()
        .map(|name| {
            revived(
                name.trim_start_matches('\u{feff}')
                    .trim_end_matches(['\r', '\n']),
            )
            .to_string()
        })
        .collect();
    Ok((names, delimiter))
}

/// A header problem's message, with the delimiter it was read with when another one appears in
/// the line: the likely cause of an unknown column such as `call_id;content;flagged`.
fn with_delimiter_hint(message: String, head: &[u8], used: u8, options: &ReadOptions) -> String {
    let others: Vec<String> = DELIMITERS
        .iter()
        .filter(|d| **d != used && head.contains(d))
        .map(|d| delimiter_name(*d))
        .collect();
    if others.is_empty() {
        return message;
    }
    format!(
        "{message} (the header was read with the delimiter {}{}, but it also holds {}: give the \
         delimiter with ReadOptions::delimiter)",
        delimiter_name(used),
        if options.delimiter.is_some() {
            " as given"
        } else {
            ", the most frequent"
        },
        others.join(" and ")
    )
}

/// A CSV error in words, without the position (the caller gives the line).
fn reason(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => format!("it is not valid UTF-8 text: {ENCODING_HINT}"),
        csv::ErrorKind::Io(e) => format!("read error: {e}"),
        _ => error.to_string(),
    }
}

impl Iterator for CsvRecords {
    type Item = io::Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match &self.columns {
            // A header problem leaves nothing sensible to read.
            Err(error) => {
                self.done = true;
                return Some(Ok(Item::Invalid(error.clone())));
            }
            Ok(columns) => self.next_record(&columns.clone()),
        };
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

impl CsvRecords {
    fn next_record(&mut self, columns: &Columns) -> Option<io::Result<Item>> {
        loop {
            let read = self.reader.read_record(&mut self.record);
            let line = self.record.position().map_or(0, csv::Position::line);
            match read {
                Ok(false) => return None,
                Ok(true) => {}
                Err(error) => {
                    if let csv::ErrorKind::Io(e) = error.kind() {
                        return Some(Err(io::Error::new(e.kind(), e.to_string())));
                    }
                    let line = error.position().map_or(line, csv::Position::line);
                    return Some(Ok(Item::Invalid(LineError::new(line, reason(&error)))));
                }
            }
            let line = self.start_line(line);
            let record = &self.record;
            // Rows of empty cells are what spreadsheets leave below the data: skip them.
            if record.iter().all(|field| field.trim().is_empty()) {
                continue;
            }
            if let Some(error) = self.misshapen(columns, line) {
                return Some(Ok(Item::Invalid(error)));
            }
            let last = record.len().saturating_sub(1);
            // A cell made inert for a spreadsheet (`'=...`) is read as it was before.
            let field = |index: usize| {
                let value = record.get(index).unwrap_or_default();
                revived(if index == last {
                    value.strip_suffix('\r').unwrap_or(value)
                } else {
                    value
                })
            };
            let fields = Fields {
                call_id: field(columns.call_id),
                content: columns
                    .content
                    .map(|i| field(i).to_string())
                    .unwrap_or_default(),
                flagged: columns.flagged.map_or(Ok(None), |i| parse_flag(field(i))),
            };
            let item = match make_record(line, fields, &self.options) {
                Ok(mut made) => {
                    if self.cells {
                        made.cells =
                            Some((0..record.len()).map(|i| field(i).to_string()).collect());
                    }
                    Item::Valid(made)
                }
                Err(message) => Item::Invalid(LineError::new(line, message)),
            };
            return Some(Ok(item));
        }
    }
}

impl CsvRecords {
    /// The line the record just read starts on (`line`: the csv crate's, at the least). The csv
    /// crate dates a record that follows blank lines from the first blank line, so the start line
    /// is worked out from where the record ends instead: the reader is on the line after its
    /// terminator (or on its last line, at the end of a file without a final newline), and the
    /// record spans as many lines as its quoted fields hold newlines, plus one.
    fn start_line(&self, line: u64) -> u64 {
        let embedded = self
            .record
            .iter()
            .map(|f| f.matches('\n').count() as u64)
            .sum::<u64>();
        let after = self.reader.position().line();
        let terminated = u64::from(!self.eof.load(Ordering::Relaxed));
        after.saturating_sub(embedded + terminated).max(line)
    }

    /// What is wrong with the shape of the record just read (starting on `line`), if anything:
    /// an unclosed quote that swallowed the rows after it, or a field count unlike the header's.
    fn misshapen(&self, columns: &Columns, line: u64) -> Option<LineError> {
        let record = &self.record;
        if let Some(swallowed) = swallowed_record(record, columns, line) {
            return Some(LineError::new(
                line,
                format!(
                    "a quoted field starting on this line runs on to line {swallowed}, which \
                     looks like a record of its own: is a closing quote (\") missing? Close the \
                     quote (a quote inside quoted text is written twice: \"\"); a note whose \
                     text really holds such lines can be imported as JSON Lines"
                ),
            ));
        }
        if record.len() == columns.count {
            return None;
        }
        let delimiters = match self.delimiter {
            b',' => "commas".to_string(),
            b';' => "semicolons".to_string(),
            b'\t' => "tabs".to_string(),
            b'|' => "pipes".to_string(),
            other => format!("the delimiter {:?}", char::from(other)),
        };
        Some(LineError::new(
            line,
            format!(
                "it has {} fields but the header has {} (quote text that holds {delimiters})",
                record.len(),
                columns.count,
            ),
        ))
    }
}

/// The first line inside a quoted field of `record` (which starts on `line`) that would be a
/// valid record on its own: the sign of an unclosed quote that swallowed the rows after it,
/// which would otherwise be sent silently merged into one note.
fn swallowed_record(record: &csv::StringRecord, columns: &Columns, line: u64) -> Option<u64> {
    let mut offset = 0u64;
    for field in record.iter() {
        let mut parts = field.split('\n');
        // The first part is on the line the field starts on.
        let _ = parts.next();
        for part in parts {
            offset += 1;
            let part = part.strip_suffix('\r').unwrap_or(part);
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(part.as_bytes());
            let mut row = csv::StringRecord::new();
            if reader.read_record(&mut row).unwrap_or(false)
                && row.len() == columns.count
                && row
                    .get(columns.call_id)
                    .is_some_and(|id| CallId::new(id.trim()).is_ok())
            {
                return Some(line + offset);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ColumnNames;

    const ID: &str = "65f1c0ffee0123456789abcd";

    fn read_with(bytes: Vec<u8>, options: &ReadOptions) -> Vec<Item> {
        CsvRecords::from_reader(Box::new(io::Cursor::new(bytes)), options, false)
            .unwrap()
            .map(|item| item.unwrap())
            .collect()
    }

    fn read(text: &str) -> Vec<Item> {
        read_with(text.as_bytes().to_vec(), &ReadOptions::default())
    }

    fn errors(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .filter_map(|item| match item {
                Item::Invalid(e) => Some(e.to_string()),
                Item::Valid(_) => None,
            })
            .collect()
    }

    fn valid(items: &[Item]) -> Vec<(u64, String, Option<bool>)> {
        items
            .iter()
            .filter_map(|item| match item {
                Item::Valid(r) => Some((r.line, r.note.content().to_string(), r.note.is_flagged())),
                Item::Invalid(_) => None,
            })
            .collect()
    }

    #[test]
    fn records_come_with_their_line_numbers() {
        let text = format!(
            "\u{feff}call_id,content,flagged\n{ID},first,true\n\n{ID},\"two\nlines, quoted\",\n{ID},third,NO\n,,\n{ID},fourth,1\n\n\n{ID},fifth,"
        );
        let items = read(&text);
        assert_eq!(errors(&items), Vec::<String>::new());
        assert_eq!(
            valid(&items),
            [
                (2, "first".into(), Some(true)),
                (4, "two\nlines, quoted".into(), None),
                (6, "third".into(), Some(false)),
                (8, "fourth".into(), Some(true)),
                (11, "fifth".into(), None),
            ]
        );
    }

    #[test]
    fn line_numbers_survive_crlf_and_trailing_blank_lines() {
        let text =
            format!("call_id,content\r\n{ID},a\r\n\r\n{ID},\"b\r\nc\"\r\n{ID},d\r\n\r\n\r\n");
        let lines: Vec<u64> = valid(&read(&text)).iter().map(|v| v.0).collect();
        assert_eq!(lines, [2, 4, 6]);
    }

    #[test]
    fn semicolons_tabs_and_pipes_are_detected_from_the_header() {
        for delimiter in [";", "\t", "|"] {
            let text = format!(
                "call_id{delimiter}content{delimiter}flagged\n{ID}{delimiter}\"a, b; c\"{delimiter}yes\n"
            );
            assert_eq!(
                valid(&read(&text)),
                [(2, "a, b; c".into(), Some(true))],
                "{delimiter:?}"
            );
        }
    }

    #[test]
    fn a_forced_delimiter_that_does_not_fit_is_named_in_the_message() {
        let options = ReadOptions {
            delimiter: Some(b','),
            ..ReadOptions::default()
        };
        let errors = errors(&read_with(
            format!("call_id;content;flagged\n{ID};a;\n").into_bytes(),
            &options,
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("unknown column \"call_id;content;flagged\""),
            "{}",
            errors[0]
        );
        assert!(
            errors[0].contains("read with the delimiter ',' as given, but it also holds ';'")
                && errors[0].contains("ReadOptions::delimiter"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn mapped_columns_and_other_columns() {
        let text = format!("Call ID,Note,Flagged,Driver\n{ID},Dock 4,yes,Ann\n");
        let refused = errors(&read(&text));
        assert!(
            refused[0].contains("unknown column \"Driver\""),
            "{refused:?}"
        );
        let options = ReadOptions {
            columns: ColumnNames {
                call_id: Some("call id".into()),
                content: Some("NOTE".into()),
                flagged: Some(" flagged ".into()),
                key: None,
            },
            ..ReadOptions::default()
        };
        let items = read_with(text.into_bytes(), &options);
        assert_eq!(valid(&items), [(2, "Dock 4".into(), Some(true))]);
    }

    #[test]
    fn an_unclosed_quote_that_swallows_records_is_refused_with_its_line() {
        let text = format!(
            "call_id,content,flagged\n{ID},\"fine\nstill the note, {ID}\",\n{ID},\"unclosed, quote,\n{ID},next,\n{ID},after,\n"
        );
        let items = read(&text);
        assert_eq!(valid(&items).len(), 1, "the multi-line note is fine");
        let errors = errors(&items);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("line 4: a quoted field starting on this line runs on to line 5"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number() {
        let text = format!(
            "call_id,content,flagged\n{ID},ok,\nabc,fine,\n{ID},   ,\n{ID},x,maybe\n{ID},too,many,fields\nshort,,nope\n"
        );
        let errors = errors(&read(&text));
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(
            errors[0].starts_with("line 3: invalid call id: \"abc\""),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].starts_with("line 4: invalid note content"),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].starts_with("line 5: flagged is \"maybe\""),
            "{}",
            errors[2]
        );
        assert!(
            errors[3].starts_with("line 6: it has 4 fields but the header has 3"),
            "{}",
            errors[3]
        );
        assert!(
            errors[4].starts_with("line 7: invalid call id"),
            "{}",
            errors[4]
        );
        assert!(errors[4].contains("flagged is \"nope\""), "{}", errors[4]);
    }

    #[test]
    fn header_problems_are_line_1() {
        for (header, expected) in [
            ("call_id,text\n", "unknown column \"text\""),
            ("call_id,flagged\n", "no column \"content\""),
            ("call_id,content,content\n", "twice"),
            (",,\n", "no header"),
        ] {
            let errors = errors(&read(&format!("{header}{ID},x\n")));
            assert_eq!(errors.len(), 1, "{header:?}: {errors:?}");
            assert!(errors[0].starts_with("line 1: "), "{}", errors[0]);
            assert!(errors[0].contains(expected), "{header:?}: {}", errors[0]);
        }
    }

    #[test]
    fn invalid_utf8_is_a_line_error_that_names_the_encoding_option() {
        let mut bytes = format!("call_id,content\n{ID},ok\n{ID},").into_bytes();
        bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
        bytes.extend_from_slice(format!("{ID},after\n").as_bytes());
        let items = read_with(bytes, &ReadOptions::default());
        let errors = errors(&items);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("line 3: it is not valid UTF-8 text")
                && errors[0].contains("ReadOptions::encoding"),
            "{}",
            errors[0]
        );
        assert_eq!(valid(&items).len(), 2);
    }

    #[test]
    fn windows_1252_and_utf16_are_read_as_text() {
        let mut latin = format!("call_id,content\n{ID},").into_bytes();
        latin.extend_from_slice(b"Caf\xe9 \x80 5\n");
        let options = ReadOptions {
            encoding: super::text::encoding("windows-1252"),
            ..ReadOptions::default()
        };
        assert_eq!(
            valid(&read_with(latin, &options)),
            [(2, "Café € 5".into(), None)]
        );
        let utf16: Vec<u8> = [0xff, 0xfe]
            .into_iter()
            .chain(
                format!("call_id\tcontent\r\n{ID}\tnaïve\r\n")
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        assert_eq!(
            valid(&read_with(utf16, &ReadOptions::default())),
            [(2, "naïve".into(), None)]
        );
    }
}
