#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod driver;
mod error;
mod gone;
mod import;
mod journal;
mod line;
mod options;
mod plan;
mod read;
mod record;
mod report;
pub mod results;
mod session;
pub mod spreadsheet;
mod sync;
mod undo;

pub use error::{BulkError, BulkErrorKind, BulkOption};
pub use import::{Import, ImportJob};
pub use journal::locate::state_dir_from_env;
pub use options::{ColumnNames, ReadOptions, Source};
pub use plan::{MAX_SHOWN_ERRORS, PREVIEW_LINES, Plan, PreviewLine};
pub use read::{CALL_LIST_COLUMNS, ColumnMapping, Format, LineError};
pub use record::NoteRecord;
pub use report::{
    Event, FailedLine, Failure, FailureKind, LineEvent, LineOutcome, MAX_LISTED, Notice,
    Reconciled, Reconciliation, Report, Stop, UndoReport, Unknown, UnknownLine,
};
pub use session::{Bulk, DEFAULT_CONCURRENCY, JournalLocation, MAX_CONCURRENCY};
pub use sync::{
    NoteText, PlannedRow, RowStatus, Sync, SyncAction, SyncCounts, SyncJob, SyncPlan, SyncReport,
    SyncedRow,
};
pub use undo::{Undo, UndoJob, UndoPlan};
