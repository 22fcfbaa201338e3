//! How an input is read ([`ReadOptions`]) and where it comes from ([`Source`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use encoding_rs::Encoding;

use crate::NoteRecord;
use crate::error::BulkError;
use crate::read::{Format, Input};

/// Which columns (or JSON keys) hold the call ID, the note's text and its flag, when they are not
/// named `call_id`, `content` and `flagged`. Names match without regard to case, surrounding spaces,
/// or spaces, hyphens and underscores between words.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ColumnNames {
    /// The column of the call ID.
    pub call_id: Option<String>,
    /// The column of the note's text.
    pub content: Option<String>,
    /// The column of the flag.
    pub flagged: Option<String>,
    /// The column whose value identifies a row across edits, for a sync
    /// ([`Sync::key_column`](crate::Sync::key_column)); read by no other job.
    pub key: Option<String>,
}

impl ColumnNames {
    /// No mapping: the columns are `call_id`, `content` and `flagged`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The call ID is in column `name`.
    pub fn call_id(mut self, name: impl Into<String>) -> Self {
        self.call_id = Some(name.into());
        self
    }

    /// The note's text is in column `name`.
    pub fn content(mut self, name: impl Into<String>) -> Self {
        self.content = Some(name.into());
        self
    }

    /// The flag is in column `name`.
    pub fn flagged(mut self, name: impl Into<String>) -> Self {
        self.flagged = Some(name.into());
        self
    }

    /// The row's key is in column `name` (a sync's external ID).
    pub fn key(mut self, name: impl Into<String>) -> Self {
        self.key = Some(name.into());
        self
    }

    /// Whether any column is mapped.
    pub fn is_empty(&self) -> bool {
        self.call_id.is_none() && self.content.is_none() && self.flagged.is_none()
    }
}

/// How an input's lines are read.
///
/// ```
/// use happyrobot_bulk::{ColumnNames, ReadOptions};
///
/// let options = ReadOptions::new()
///     .delimiter(b';')
///     .encoding("windows-1252")?
///     .columns(ColumnNames::new().call_id("Call ID").content("Note"))
///     .ignore_other_columns(true);
/// # let _ = options;
/// # Ok::<(), happyrobot_bulk::BulkError>(())
/// ```
#[derive(Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ReadOptions {
    /// A CSV's delimiter; `None`: the most frequent of `,` `;` tab `|` in the header line.
    pub delimiter: Option<u8>,
    /// The text's encoding when it has no byte-order mark; `None`: UTF-8.
    pub encoding: Option<&'static Encoding>,
    /// The workbook sheet to read; `None`: the first.
    pub sheet: Option<String>,
    /// Columns named otherwise than `call_id`, `content`, `flagged`.
    pub columns: ColumnNames,
    /// Let columns other than the three through (ignored for the note, kept in a results file).
    /// A mapping in [`columns`](Self::columns) lets them through as well, and a list of calls
    /// lets its own through ([`CALL_LIST_COLUMNS`](crate::CALL_LIST_COLUMNS)).
    pub ignore_other_columns: bool,
    /// The text of every line that has none (or no content column at all): "the same note on all
    /// of these".
    pub default_content: Option<String>,
}

impl std::fmt::Debug for ReadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOptions")
            .field("delimiter", &self.delimiter.map(char::from))
            .field("encoding", &self.encoding.map(Encoding::name))
            .field("sheet", &self.sheet)
            .field("columns", &self.columns)
            .field("ignore_other_columns", &self.ignore_other_columns)
            .field(
                "default_content",
                &self.default_content.as_ref().map(String::len),
            )
            .finish()
    }
}

impl ReadOptions {
    /// The defaults: the delimiter detected, UTF-8 unless a byte-order mark says otherwise, the
    /// first sheet, the columns `call_id`, `content` and `flagged` and no others.
    pub fn new() -> Self {
        Self::default()
    }

    /// A CSV's delimiter: one of `,` `;` `\t` `|` (or any other ASCII character but a quote or a
    /// line break).
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = Some(delimiter);
        self
    }

    /// The encoding of text without a byte-order mark, by its label (`windows-1252`, `latin1`,
    /// `iso-8859-15`, `shift_jis`...: the WHATWG labels). An unknown label is an error.
    pub fn encoding(mut self, label: &str) -> Result<Self, BulkError> {
        self.encoding = Some(crate::read::text_encoding(label).ok_or_else(|| {
            BulkError::usage(format!(
                "{label:?} is not an encoding this reader knows: give a label such as utf-8, \
                 windows-1252, iso-8859-1, utf-16le or shift_jis"
            ))
        })?);
        Ok(self)
    }

    /// The workbook sheet to read, by name.
    pub fn sheet(mut self, name: impl Into<String>) -> Self {
        self.sheet = Some(name.into());
        self
    }

    /// Columns named otherwise.
    pub fn columns(mut self, columns: ColumnNames) -> Self {
        self.columns = columns;
        self
    }

    /// Lets other columns through.
    pub fn ignore_other_columns(mut self, on: bool) -> Self {
        self.ignore_other_columns = on;
        self
    }

    /// The text of every line without one.
    pub fn default_content(mut self, content: impl Into<String>) -> Self {
        self.default_content = Some(content.into());
        self
    }

    /// Checks the options before anything is read.
    pub(crate) fn check(&self) -> Result<(), BulkError> {
        if let Some(delimiter) = self.delimiter
            && (!delimiter.is_ascii() || matches!(delimiter, b'"' | b'\n' | b'\r'))
        {
            return Err(BulkError::usage(format!(
                "{:?} cannot be a delimiter (ReadOptions::delimiter): give , ; tab or |",
                char::from(delimiter)
            )));
        }
        if let Some(content) = &self.default_content
            && content.trim().is_empty()
        {
            return Err(BulkError::usage(
                "the default content is empty: give the note's text",
            ));
        }
        Ok(())
    }
}

/// Where an import's lines come from: a file (read again for each pass, so it is never held in
/// memory) or records built in memory.
#[derive(Debug, Clone)]
pub struct Source {
    pub(crate) input: Input,
    /// The name of the input in messages and reports (a file's path as given, by default).
    pub(crate) name: String,
    /// Its name in the journal's `run` entries (a file's absolute path, by default).
    pub(crate) journal_name: String,
    /// The file as the caller named it, for the journal beside it.
    pub(crate) path: Option<PathBuf>,
    pub(crate) options: ReadOptions,
}

impl Source {
    /// A file, in the format its extension names (`.csv`, `.tsv`, `.txt`, `.jsonl`, `.ndjson`,
    /// `.xlsx`, `.xlsm`, `.xls`, `.ods`) unless [`format`](Self::format) says otherwise.
    pub fn file(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref().to_path_buf();
        let journal_name = std::path::absolute(&path)
            .unwrap_or_else(|_| path.clone())
            .display()
            .to_string();
        let format = Format::from_path(&path).unwrap_or(Format::Csv);
        Self {
            input: Input::File {
                path: path.clone(),
                format,
            },
            name: path.display().to_string(),
            journal_name,
            path: Some(path),
            options: ReadOptions::default(),
        }
    }

    /// Records built in memory, in this order. They are held for the run (each is needed again
    /// for the pass that sends it, and to look it up if its outcome is unknown); a journal path
    /// is needed, since there is no file to sit beside.
    pub fn records(records: impl IntoIterator<Item = NoteRecord>) -> Self {
        Self {
            input: Input::Records(Arc::new(records.into_iter().collect())),
            name: "records".to_string(),
            journal_name: "records".to_string(),
            path: None,
            options: ReadOptions::default(),
        }
    }

    /// Records from a stream, collected first (see [`records`](Self::records)).
    pub async fn stream(stream: impl futures_core::Stream<Item = NoteRecord>) -> Self {
        let mut stream = std::pin::pin!(stream);
        let mut records = Vec::new();
        while let Some(record) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            records.push(record);
        }
        Self::records(records)
    }

    /// The file's format, whatever its extension says.
    pub fn format(mut self, format: Format) -> Self {
        if let Input::File { format: f, .. } = &mut self.input {
            *f = format;
        }
        self
    }

    /// How its lines are read.
    pub fn read_options(mut self, options: ReadOptions) -> Self {
        self.options = options;
        self
    }

    /// The name the journal and the messages give the input (a copy of standard input, say).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self.journal_name.clone_from(&self.name);
        self
    }

    /// The name the journal and the messages give the input.
    pub fn display_name(&self) -> &str {
        &self.name
    }

    /// The input's format: [`Format::Jsonl`] for records built in memory.
    pub fn input_format(&self) -> Format {
        match &self.input {
            Input::File { format, .. } => *format,
            Input::Records(_) => Format::Jsonl,
        }
    }

    /// The file, for a file source.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}
