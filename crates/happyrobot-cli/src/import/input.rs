//! Reading an import file one record at a time (CSV or JSON Lines), checking each line as the
//! client would, with the line number in every message. Nothing here holds more than one record.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use happyrobot::{CallId, NewNote};
use serde_json::Value;

use super::args::Format;
use super::journal::LineKey;

/// One valid line of the file.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// The line the record starts on, counting from 1 (the CSV header is line 1).
    pub(crate) line: u64,
    pub(crate) call_id: CallId,
    pub(crate) note: NewNote,
    /// A digest of the call ID, text and flag, to tell this line from another in the journal.
    pub(crate) fingerprint: u64,
    /// Which occurrence of this fingerprint in the file it is (0 for the first); set by
    /// [`Occurrences::key`] in the passes that send.
    pub(crate) occurrence: u32,
}

/// Numbers the copies of a line the file holds more than once (only `--allow-duplicates` lets
/// them through), so that each copy has its own journal key: the first copy is occurrence 0.
pub(crate) struct Occurrences<'a> {
    repeated: &'a HashSet<u64>,
    seen: HashMap<u64, u32>,
}

impl<'a> Occurrences<'a> {
    /// Numbering for a file whose repeated fingerprints are `repeated`.
    pub(crate) fn new(repeated: &'a HashSet<u64>) -> Self {
        Self {
            repeated,
            seen: HashMap::new(),
        }
    }

    /// Sets `record.occurrence` (records must come in file order) and returns its journal key.
    pub(crate) fn key(&mut self, record: &mut Record) -> LineKey {
        if self.repeated.contains(&record.fingerprint) {
            let seen = self.seen.entry(record.fingerprint).or_insert(0);
            record.occurrence = *seen;
            *seen += 1;
        }
        (record.fingerprint, record.occurrence)
    }
}

/// One line that cannot be sent, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineError {
    pub(crate) line: u64,
    pub(crate) message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// What reading a line gives.
#[derive(Debug)]
pub(crate) enum Item {
    Valid(Record),
    Invalid(LineError),
}

/// The format given, else the one the file's extension names.
pub(crate) fn detect_format(path: &Path, given: Option<Format>) -> Result<Format, String> {
    if let Some(format) = given {
        return Ok(format);
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("csv") => Ok(Format::Csv),
        Some("jsonl" | "ndjson") => Ok(Format::Jsonl),
        _ => Err(format!(
            "cannot tell the format of {} from its extension: name it .csv, .jsonl or .ndjson, \
             or pass --format csv|jsonl",
            path.display()
        )),
    }
}

/// FNV-1a, 64 bits: stable across Rust versions and platforms (unlike `DefaultHasher`), which a
/// journal that outlives the binary needs. It only has to tell lines apart, not resist attackers.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The fingerprint of a line: its call ID, text and flag. `0xff` never occurs in UTF-8, so it
/// separates the fields unambiguously.
pub(crate) fn fingerprint(call_id: &str, content: &str, flagged: Option<bool>) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325;
    hash = fnv1a(hash, call_id.as_bytes());
    hash = fnv1a(hash, &[0xff]);
    hash = fnv1a(hash, content.as_bytes());
    hash = fnv1a(hash, &[0xff]);
    fnv1a(
        hash,
        &[match flagged {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        }],
    )
}

/// Reads a `flagged` cell: true/false, 1/0, yes/no (any case), or empty for "not set".
fn parse_flag(text: &str) -> Result<Option<bool>, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "true" | "1" | "yes" => Ok(Some(true)),
        "false" | "0" | "no" => Ok(Some(false)),
        _ => Err(format!(
            "flagged is {:?}: use true/false, 1/0, yes/no, or leave it empty",
            shorten(text)
        )),
    }
}

/// At most 40 characters of a value, for messages that stay on one line.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 40 {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(40).collect();
        short.push('…');
        short
    }
}

/// Checks the fields of one line and makes the record, or says everything wrong with it.
fn make_record(
    line: u64,
    call_id: &str,
    content: String,
    flagged: Result<Option<bool>, String>,
) -> Item {
    let mut problems = Vec::new();
    let id = match CallId::new(call_id.trim()) {
        Ok(id) => Some(id),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let flag = match flagged {
        Ok(flag) => flag,
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    let fingerprint = fingerprint(call_id.trim(), &content, flag);
    let mut note = NewNote::new(content);
    if let Some(flag) = flag {
        note = note.flagged(flag);
    }
    if let Err(e) = note.validate() {
        problems.push(e.to_string());
    }
    match id {
        Some(call_id) if problems.is_empty() => Item::Valid(Record {
            line,
            call_id,
            note,
            fingerprint,
            occurrence: 0,
        }),
        _ => Item::Invalid(LineError {
            line,
            message: problems.join("; "),
        }),
    }
}

/// The records of a file, one at a time. `Err` is a failure to read the file at all (I/O), after
/// which it stops; problems with a line are `Ok(Item::Invalid)` and reading goes on.
pub(crate) struct Records {
    inner: Inner,
    done: bool,
}

enum Inner {
    Csv {
        reader: csv::Reader<EofReader>,
        columns: Result<Columns, LineError>,
        record: csv::StringRecord,
        eof: Arc<AtomicBool>,
    },
    Jsonl {
        reader: BufReader<Box<dyn Read + Send>>,
        line: u64,
        buffer: Vec<u8>,
    },
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

/// Where the known columns are in a CSV file.
#[derive(Debug, Clone, Copy)]
struct Columns {
    call_id: usize,
    content: usize,
    flagged: Option<usize>,
    count: usize,
}

const COLUMNS: &str = "call_id, content and optionally flagged";

/// Reads the header line, naming what is missing, repeated or unknown.
fn columns(header: &csv::StringRecord) -> Result<Columns, LineError> {
    let error = |message: String| LineError { line: 1, message };
    if header.iter().all(|h| h.trim().is_empty()) {
        return Err(error(format!(
            "the file has no header line: the first line must name the columns ({COLUMNS})"
        )));
    }
    let (mut call_id, mut content, mut flagged) = (None, None, None);
    for (index, name) in header.iter().enumerate() {
        // Spreadsheets often save a byte-order mark before the first name.
        let name = name
            .trim_start_matches('\u{feff}')
            .trim()
            .to_ascii_lowercase();
        let slot = match name.as_str() {
            "call_id" => &mut call_id,
            "content" => &mut content,
            "flagged" => &mut flagged,
            other => {
                return Err(error(format!(
                    "unknown column {:?} in the header: the columns are {COLUMNS} \
                     (remove the others, so that a misspelt name is not silently ignored)",
                    shorten(other)
                )));
            }
        };
        if slot.replace(index).is_some() {
            return Err(error(format!("the header names the column {name:?} twice")));
        }
    }
    match (call_id, content) {
        (Some(call_id), Some(content)) => Ok(Columns {
            call_id,
            content,
            flagged,
            count: header.len(),
        }),
        _ => Err(error(format!(
            "the header lacks {}: the columns are {COLUMNS}",
            if call_id.is_none() {
                "call_id"
            } else {
                "content"
            }
        ))),
    }
}

impl Records {
    /// Opens the file.
    pub(crate) fn open(path: &Path, format: Format) -> io::Result<Self> {
        let file = File::open(path)?;
        Ok(Self::from_reader(Box::new(file), format))
    }

    /// Reads records from any reader (the tests' in-memory files).
    pub(crate) fn from_reader(reader: Box<dyn Read + Send>, format: Format) -> Self {
        let inner = match format {
            Format::Csv => {
                let eof = Arc::new(AtomicBool::new(false));
                // Only `\n` ends a record (a `\r` before it is taken off the last field below),
                // so that the reader's line count after a record is the same for LF and CRLF
                // files, which the line numbering relies on.
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .flexible(true)
                    .terminator(csv::Terminator::Any(b'\n'))
                    .from_reader(EofReader {
                        inner: reader,
                        eof: Arc::clone(&eof),
                    });
                let columns = match reader.headers() {
                    Ok(header) => columns(header),
                    Err(e) => Err(LineError {
                        line: 1,
                        message: format!("the header line is unreadable: {}", csv_reason(&e)),
                    }),
                };
                Inner::Csv {
                    reader,
                    columns,
                    record: csv::StringRecord::new(),
                    eof,
                }
            }
            Format::Jsonl => Inner::Jsonl {
                reader: BufReader::with_capacity(64 * 1024, reader),
                line: 0,
                buffer: Vec::new(),
            },
        };
        Self { inner, done: false }
    }
}

/// A CSV error in words, without the position (the caller gives the line).
fn csv_reason(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => "it is not valid UTF-8 text (save the file as UTF-8)".into(),
        csv::ErrorKind::Io(e) => format!("read error: {e}"),
        _ => error.to_string(),
    }
}

impl Iterator for Records {
    type Item = io::Result<Item>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match &mut self.inner {
            Inner::Csv {
                reader,
                columns,
                record,
                eof,
            } => next_csv(reader, columns, record, eof),
            Inner::Jsonl {
                reader,
                line,
                buffer,
            } => next_jsonl(reader, line, buffer),
        };
        match item {
            Some(Ok(_)) => {}
            // A header problem or an I/O error leaves nothing sensible to read.
            Some(Err(_)) | None => self.done = true,
        }
        if let Inner::Csv {
            columns: Err(_), ..
        } = &self.inner
        {
            self.done = true;
        }
        item
    }
}

fn next_csv(
    reader: &mut csv::Reader<EofReader>,
    columns: &Result<Columns, LineError>,
    record: &mut csv::StringRecord,
    eof: &AtomicBool,
) -> Option<io::Result<Item>> {
    let columns = match columns {
        Ok(columns) => *columns,
        Err(error) => return Some(Ok(Item::Invalid(error.clone()))),
    };
    loop {
        let read = reader.read_record(record);
        let line = record.position().map_or(0, csv::Position::line);
        match read {
            Ok(false) => return None,
            Ok(true) => {}
            Err(error) => {
                if let csv::ErrorKind::Io(e) = error.kind() {
                    return Some(Err(io::Error::new(e.kind(), e.to_string())));
                }
                let line = error.position().map_or(line, csv::Position::line);
                return Some(Ok(Item::Invalid(LineError {
                    line,
                    message: csv_reason(&error),
                })));
            }
        }
        // The csv crate dates a record that follows blank lines from the first blank line, so the
        // start line is worked out from where the record ends instead: the reader is on the line
        // after its terminator (or on its last line, at the end of a file without a final
        // newline), and the record spans as many lines as its quoted fields hold newlines, plus one.
        let embedded = record
            .iter()
            .map(|f| f.matches('\n').count() as u64)
            .sum::<u64>();
        let after = reader.position().line();
        let terminated = u64::from(!eof.load(Ordering::Relaxed));
        let line = after.saturating_sub(embedded + terminated).max(line);
        // Rows of empty cells are what spreadsheets leave below the data: skip them.
        if record.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        if let Some(swallowed) = swallowed_record(record, &columns, line) {
            return Some(Ok(Item::Invalid(LineError {
                line,
                message: format!(
                    "a quoted field starting on this line runs on to line {swallowed}, which looks \
                     like a record of its own: is a closing quote (\") missing? Close the quote \
                     (a quote inside quoted text is written twice: \"\"); a note whose text really \
                     holds such lines can be imported as JSON Lines"
                ),
            })));
        }
        if record.len() != columns.count {
            return Some(Ok(Item::Invalid(LineError {
                line,
                message: format!(
                    "it has {} fields but the header has {} (quote text that holds commas)",
                    record.len(),
                    columns.count
                ),
            })));
        }
        let last = record.len().saturating_sub(1);
        let field = |index: usize| {
            let value = record.get(index).unwrap_or_default();
            if index == last {
                value.strip_suffix('\r').unwrap_or(value)
            } else {
                value
            }
        };
        let flagged = columns.flagged.map_or(Ok(None), |i| parse_flag(field(i)));
        return Some(Ok(make_record(
            line,
            field(columns.call_id),
            field(columns.content).to_string(),
            flagged,
        )));
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

fn next_jsonl(
    reader: &mut BufReader<Box<dyn Read + Send>>,
    line: &mut u64,
    buffer: &mut Vec<u8>,
) -> Option<io::Result<Item>> {
    loop {
        buffer.clear();
        match reader.read_until(b'\n', buffer) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => return Some(Err(e)),
        }
        *line += 1;
        let line = *line;
        let invalid = |message: String| Some(Ok(Item::Invalid(LineError { line, message })));
        let Ok(text) = std::str::from_utf8(buffer) else {
            return invalid("it is not valid UTF-8 text (save the file as UTF-8)".into());
        };
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            continue;
        }
        let value = match serde_json::from_str::<Value>(text) {
            Ok(value) => value,
            Err(e) => return invalid(format!("invalid JSON: {e}")),
        };
        let Value::Object(fields) = value else {
            return invalid(
                "it is not a JSON object such as {\"call_id\": \"...\", \"content\": \"...\"}"
                    .into(),
            );
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !matches!(k.as_str(), "call_id" | "content" | "flagged"))
        {
            return invalid(format!(
                "unknown key {:?}: the keys are {COLUMNS}",
                shorten(unknown)
            ));
        }
        let string = |name: &str| match fields.get(name) {
            Some(Value::String(text)) => Ok(text.clone()),
            None | Some(Value::Null) => Err(format!("{name} is missing")),
            Some(_) => Err(format!("{name} must be a string")),
        };
        let (call_id, content) = match (string("call_id"), string("content")) {
            (Ok(call_id), Ok(content)) => (call_id, content),
            (Err(a), Err(b)) => return invalid(format!("{a}; {b}")),
            (Err(problem), _) | (_, Err(problem)) => return invalid(problem),
        };
        let flagged = match fields.get("flagged") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(Value::String(text)) => parse_flag(text),
            Some(Value::Number(n)) => parse_flag(&n.to_string()),
            Some(_) => Err("flagged must be true or false".to_string()),
        };
        return Some(Ok(make_record(line, &call_id, content, flagged)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "65f1c0ffee0123456789abcd";

    fn read(format: Format, text: &str) -> Vec<Item> {
        Records::from_reader(Box::new(io::Cursor::new(text.as_bytes().to_vec())), format)
            .map(|item| item.unwrap())
            .collect()
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
    fn csv_reads_records_with_their_line_numbers() {
        let text = format!(
            "\u{feff}call_id,content,flagged\n{ID},first,true\n\n{ID},\"two\nlines, quoted\",\n{ID},third,NO\n,,\n{ID},fourth,1\n\n\n{ID},fifth,"
        );
        let items = read(Format::Csv, &text);
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
    fn csv_line_numbers_survive_crlf_and_trailing_blank_lines() {
        let text =
            format!("call_id,content\r\n{ID},a\r\n\r\n{ID},\"b\r\nc\"\r\n{ID},d\r\n\r\n\r\n");
        let lines: Vec<u64> = valid(&read(Format::Csv, &text))
            .iter()
            .map(|v| v.0)
            .collect();
        assert_eq!(lines, [2, 4, 6]);
    }

    #[test]
    fn an_unclosed_quote_that_swallows_records_is_refused_with_its_line() {
        let text = format!(
            "call_id,content,flagged\n{ID},\"fine\nstill the note, {ID}\",\n{ID},\"unclosed, quote,\n{ID},next,\n{ID},after,\n"
        );
        let items = read(Format::Csv, &text);
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
    fn csv_columns_may_come_in_any_order_and_flagged_is_optional() {
        let items = read(Format::Csv, &format!("content,call_id\nhello,{ID}\n"));
        assert_eq!(valid(&items), [(2, "hello".into(), None)]);
    }

    #[test]
    fn csv_reports_every_bad_line_with_its_number() {
        let text = format!(
            "call_id,content,flagged\n{ID},ok,\nabc,fine,\n{ID},   ,\n{ID},x,maybe\n{ID},too,many,fields\nshort,,nope\n"
        );
        let errors = errors(&read(Format::Csv, &text));
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
        // Every problem of a line is reported at once.
        assert!(
            errors[4].starts_with("line 7: invalid call id"),
            "{}",
            errors[4]
        );
        assert!(errors[4].contains("empty"), "{}", errors[4]);
        assert!(errors[4].contains("flagged is \"nope\""), "{}", errors[4]);
    }

    #[test]
    fn csv_header_problems_are_line_1() {
        for (header, expected) in [
            ("call_id,text\n", "unknown column \"text\""),
            ("call_id,flagged\n", "lacks content"),
            ("call_id,content,content\n", "twice"),
            (",,\n", "no header line"),
        ] {
            let errors = errors(&read(Format::Csv, &format!("{header}{ID},x\n")));
            assert_eq!(errors.len(), 1, "{header:?}: {errors:?}");
            assert!(errors[0].starts_with("line 1: "), "{}", errors[0]);
            assert!(errors[0].contains(expected), "{header:?}: {}", errors[0]);
        }
    }

    #[test]
    fn csv_invalid_utf8_is_a_line_error() {
        let mut bytes = format!("call_id,content\n{ID},ok\n{ID},").into_bytes();
        bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
        bytes.extend_from_slice(format!("{ID},after\n").as_bytes());
        let items: Vec<Item> = Records::from_reader(Box::new(io::Cursor::new(bytes)), Format::Csv)
            .map(|i| i.unwrap())
            .collect();
        assert_eq!(
            errors(&items),
            ["line 3: it is not valid UTF-8 text (save the file as UTF-8)"]
        );
        assert_eq!(valid(&items).len(), 2);
    }

    #[test]
    fn jsonl_reads_records_and_reports_bad_lines() {
        let text = format!(
            "{{\"call_id\":\"{ID}\",\"content\":\"a\",\"flagged\":true}}\n\
             \n\
             {{\"call_id\":\"{ID}\",\"content\":\"b\",\"flagged\":\"yes\"}}\r\n\
             {{\"call_id\":\"{ID}\",\"content\":\"c\",\"flagged\":null}}\n\
             not json\n\
             [1,2]\n\
             {{\"call_id\":\"{ID}\"}}\n\
             {{\"call_id\":\"{ID}\",\"content\":\"d\",\"extra\":1}}\n\
             {{\"call_id\":7,\"content\":\"\"}}\n\
             {{\"call_id\":\"{ID}\",\"content\":\"e\",\"flagged\":0}}"
        );
        let items = read(Format::Jsonl, &text);
        assert_eq!(
            valid(&items),
            [
                (1, "a".into(), Some(true)),
                (3, "b".into(), Some(true)),
                (4, "c".into(), None),
                (10, "e".into(), Some(false)),
            ]
        );
        let errors = errors(&items);
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(
            errors[0].starts_with("line 5: invalid JSON"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].starts_with("line 6: it is not a JSON object"),
            "{}",
            errors[1]
        );
        assert_eq!(errors[2], "line 7: content is missing");
        assert!(
            errors[3].starts_with("line 8: unknown key \"extra\""),
            "{}",
            errors[3]
        );
        assert_eq!(errors[4], "line 9: call_id must be a string");
    }

    #[test]
    fn fingerprints_tell_lines_apart_and_are_stable() {
        let a = fingerprint(ID, "hello", None);
        assert_eq!(a, fingerprint(ID, "hello", None));
        assert_ne!(a, fingerprint(ID, "hello", Some(false)));
        assert_ne!(a, fingerprint(ID, "hell", None));
        assert_ne!(fingerprint("ab", "c", None), fingerprint("a", "bc", None));
        // A fixed value: journals written by earlier versions must still match.
        assert_eq!(
            format!("{:016x}", fingerprint(ID, "hello", Some(true))),
            "99669d47527a2a71"
        );
    }

    #[test]
    fn formats_come_from_the_extension() {
        assert_eq!(detect_format(Path::new("a.CSV"), None), Ok(Format::Csv));
        assert_eq!(
            detect_format(Path::new("a.ndjson"), None),
            Ok(Format::Jsonl)
        );
        assert_eq!(detect_format(Path::new("a.jsonl"), None), Ok(Format::Jsonl));
        assert_eq!(
            detect_format(Path::new("a.txt"), Some(Format::Csv)),
            Ok(Format::Csv)
        );
        assert!(
            detect_format(Path::new("a.txt"), None)
                .unwrap_err()
                .contains("--format")
        );
    }
}
