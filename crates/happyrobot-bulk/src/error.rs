//! [`BulkError`]: why a run could not start. Once a request has gone out, a run always ends with a
//! report instead, which says what became of every line and why it stopped.

use std::fmt;

use crate::read::LineError;

/// What kind of failure a [`BulkError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BulkErrorKind {
    /// Lines of the input are invalid (see [`BulkError::line_errors`]); nothing was sent.
    InvalidInput,
    /// The input, the options or the journal do not allow the run (an unreadable input, a
    /// journal that another run holds or that is not a regular file, an undo of another file...);
    /// nothing was sent.
    Refused,
    /// A local failure (the journal cannot be written, say); nothing was sent.
    Io,
    /// The client's configuration is invalid; nothing was sent.
    Client,
    /// A read made before anything was sent (a sync's plan reads the calls) failed: the API
    /// refused the key, or could not be reached ([`BulkError::failure_kind`] says which).
    /// Nothing was sent.
    Api,
}

/// An option of this library that a message names, by its name in the library's API
/// ([`name`](Self::name)): so that a program built on it (a command-line tool, a service) can name
/// its own instead, with [`BulkError::options`], [`LineError::options`] and [`rename`](Self::rename).
/// Messages name no option of any program built on the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BulkOption {
    /// Where the journal is: [`JournalLocation::Path`](crate::JournalLocation::Path).
    Journal,
    /// The client's base URL: [`happyrobot::ClientBuilder::base_url`].
    BaseUrl,
    /// [`Import::allow_duplicates`](crate::Import::allow_duplicates).
    AllowDuplicates,
    /// [`ReadOptions::delimiter`](crate::ReadOptions::delimiter).
    Delimiter,
    /// [`ReadOptions::encoding`](crate::ReadOptions::encoding).
    Encoding,
    /// [`ReadOptions::sheet`](crate::ReadOptions::sheet).
    Sheet,
    /// [`ReadOptions::columns`](crate::ReadOptions::columns).
    Columns,
    /// [`ReadOptions::ignore_other_columns`](crate::ReadOptions::ignore_other_columns).
    IgnoreOtherColumns,
    /// [`Sync::key_column`](crate::Sync::key_column).
    KeyColumn,
    /// [`Sync::adopt_existing`](crate::Sync::adopt_existing).
    AdoptExisting,
    /// [`Bulk::forget_lost_journal`](crate::Bulk::forget_lost_journal).
    ForgetLostJournal,
    /// The client's longest wait for a rate limit: [`happyrobot::RetryPolicy::max_retry_after`]
    /// (a line that the server asks to wait longer stops the run, see
    /// [`Stop::RetryAfterTooLong`](crate::Stop::RetryAfterTooLong)).
    MaxRetryAfter,
}

impl BulkOption {
    /// Every option a message may name.
    pub const ALL: [Self; 12] = [
        Self::Journal,
        Self::BaseUrl,
        Self::AllowDuplicates,
        Self::Delimiter,
        Self::Encoding,
        Self::Sheet,
        Self::Columns,
        Self::IgnoreOtherColumns,
        Self::KeyColumn,
        Self::AdoptExisting,
        Self::ForgetLostJournal,
        Self::MaxRetryAfter,
    ];

    /// The option's name as messages write it: `JournalLocation::Path`,
    /// `ClientBuilder::base_url`, `Import::allow_duplicates`, `ReadOptions::delimiter`...
    pub fn name(self) -> &'static str {
        match self {
            Self::Journal => "JournalLocation::Path",
            Self::BaseUrl => "ClientBuilder::base_url",
            Self::AllowDuplicates => "Import::allow_duplicates",
            Self::Delimiter => "ReadOptions::delimiter",
            Self::Encoding => "ReadOptions::encoding",
            Self::Sheet => "ReadOptions::sheet",
            Self::Columns => "ReadOptions::columns",
            Self::IgnoreOtherColumns => "ReadOptions::ignore_other_columns",
            Self::KeyColumn => "Sync::key_column",
            Self::AdoptExisting => "Sync::adopt_existing",
            Self::ForgetLostJournal => "Bulk::forget_lost_journal",
            Self::MaxRetryAfter => "RetryPolicy::max_retry_after",
        }
    }

    /// The options `text` names, in [`ALL`](Self::ALL)'s order.
    pub fn named_in(text: &str) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|option| text.contains(option.name()))
            .collect()
    }

    /// `text` (a message of this library) with every option it names renamed as `rename` says;
    /// an option `rename` gives `None` for keeps its name.
    ///
    /// ```
    /// use happyrobot_bulk::BulkOption;
    ///
    /// let flag = |option| match option {
    ///     BulkOption::Delimiter => Some("--delimiter"),
    ///     _ => None,
    /// };
    /// let text = "give the delimiter with ReadOptions::delimiter";
    /// assert_eq!(BulkOption::rename(text, flag), "give the delimiter with --delimiter");
    /// ```
    pub fn rename<'a>(text: &str, rename: impl Fn(Self) -> Option<&'a str>) -> String {
        let mut text = text.to_string();
        for option in Self::named_in(&text) {
            if let Some(own) = rename(option) {
                text = text.replace(option.name(), own);
            }
        }
        text
    }
}

/// Why a run could not start. Nothing was sent.
#[derive(Debug)]
pub struct BulkError {
    kind: BulkErrorKind,
    message: String,
    options: Vec<BulkOption>,
    invalid: u64,
    line_errors: Vec<LineError>,
    failure: Option<crate::FailureKind>,
}

impl BulkError {
    /// A read before anything was sent failed with `error`; `message` says what was read.
    pub(crate) fn api(error: &happyrobot::Error, message: impl Into<String>) -> Self {
        let mut this = Self::new(BulkErrorKind::Api, message);
        this.failure = Some(crate::FailureKind::of(error));
        this
    }

    /// For [`BulkErrorKind::Api`], what kind of failure it was (the key refused, the network...).
    pub fn failure_kind(&self) -> Option<crate::FailureKind> {
        self.failure
    }

    pub(crate) fn new(kind: BulkErrorKind, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            kind,
            options: BulkOption::named_in(&message),
            message,
            invalid: 0,
            line_errors: Vec::new(),
            failure: None,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::new(BulkErrorKind::Refused, message)
    }

    pub(crate) fn io(message: impl Into<String>) -> Self {
        Self::new(BulkErrorKind::Io, message)
    }

    pub(crate) fn with_invalid_lines(
        message: String,
        invalid: u64,
        line_errors: Vec<LineError>,
    ) -> Self {
        Self {
            kind: BulkErrorKind::InvalidInput,
            options: BulkOption::named_in(&message),
            message,
            invalid,
            line_errors,
            failure: None,
        }
    }

    /// The error with `sentence` added to its message (what was done about it: a results file
    /// written, say).
    pub(crate) fn also(mut self, sentence: &str) -> Self {
        self.message = format!("{}; {sentence}", self.message.trim_end_matches('.'));
        self.options = BulkOption::named_in(&self.message);
        self
    }

    /// What kind of failure.
    pub fn kind(&self) -> BulkErrorKind {
        self.kind
    }

    /// The option the message names first, if it names one (what to change, often): a program
    /// built on the library can name its own instead (see [`BulkOption::rename`]).
    pub fn option(&self) -> Option<BulkOption> {
        self.options.first().copied()
    }

    /// Every option the message names (not those of [`line_errors`](Self::line_errors), which
    /// say their own).
    pub fn options(&self) -> &[BulkOption] {
        &self.options
    }

    /// The first invalid lines (at most [`crate::MAX_SHOWN_ERRORS`]), in input order.
    pub fn line_errors(&self) -> &[LineError] {
        &self.line_errors
    }

    /// How many lines are invalid in all.
    pub fn invalid_lines(&self) -> u64 {
        self.invalid
    }
}

impl fmt::Display for BulkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BulkError {}

impl From<crate::journal::JournalError> for BulkError {
    fn from(error: crate::journal::JournalError) -> Self {
        use crate::journal::JournalError as E;
        match &error {
            E::Io(..) => Self::io(format!(
                "{error}; nothing was sent. Check that the path can be written (its directory, \
                 its permissions, the free space), then run the same command again"
            )),
            _ => Self::usage(error.to_string()),
        }
    }
}

impl From<happyrobot::Error> for BulkError {
    fn from(error: happyrobot::Error) -> Self {
        Self::new(BulkErrorKind::Client, error.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

    use super::*;

    /// Every line of the crate's code (comments and tests aside) that names a command-line flag.
    fn flags_in(dir: &std::path::Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                flags_in(&path, found);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // The code, without its tests (which may speak of a program's flags).
            let code = text.lines().take_while(|l| l.trim() != "#[cfg(test)]");
            for (n, line) in code.enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                let flag = code
                    .match_indices("--")
                    .any(|(i, _)| code[i + 2..].starts_with(|c: char| c.is_ascii_lowercase()));
                if flag {
                    found.push(format!("{}:{}: {line}", path.display(), n + 1));
                }
            }
        }
    }

    #[test]
    fn messages_name_the_librarys_options_never_a_programs_flags() {
        let mut found = Vec::new();
        flags_in(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn an_error_carries_the_options_its_message_names() {
        let error = BulkError::usage(
            "give the journal (JournalLocation::Path) against the same ClientBuilder::base_url",
        );
        assert_eq!(error.option(), Some(BulkOption::Journal));
        assert_eq!(error.options(), [BulkOption::Journal, BulkOption::BaseUrl]);
        assert_eq!(BulkError::usage("nothing was sent").option(), None);
        let flag = |option| match option {
            BulkOption::Journal => Some("--journal PATH"),
            _ => None,
        };
        assert_eq!(
            BulkOption::rename(&error.to_string(), flag),
            "give the journal (--journal PATH) against the same ClientBuilder::base_url"
        );
        for option in BulkOption::ALL {
            assert_eq!(BulkOption::named_in(option.name()), [option], "{option:?}");
        }
    }
}
