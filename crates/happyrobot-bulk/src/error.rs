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
}

/// Why a run could not start. Nothing was sent.
#[derive(Debug)]
pub struct BulkError {
    kind: BulkErrorKind,
    message: String,
    invalid: u64,
    line_errors: Vec<LineError>,
}

impl BulkError {
    pub(crate) fn new(kind: BulkErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            invalid: 0,
            line_errors: Vec::new(),
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
            message,
            invalid,
            line_errors,
        }
    }

    /// What kind of failure.
    pub fn kind(&self) -> BulkErrorKind {
        self.kind
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
