//! What every job does before its pass: the input's identity (a hash of its rows), the destination,
//! the journal's location and lock, the validation pass, the `run` entry and the notices.

use std::path::PathBuf;
use std::sync::Arc;

use happyrobot::Client;
use tokio::sync::Semaphore;

use crate::journal::locate::{self, Located};
use crate::journal::{self, Destination, Entry, JournalState, JournalWriter, Keep};
use crate::line::Work;
use crate::plan::{self, Plan};
use crate::read::Input;
use crate::report::{Event, Notice};

use super::{JournalLocation, MAX_CONCURRENCY, Settings};
use crate::{BulkError, Source};

/// A run's identity, found before anything else.
pub(crate) struct Prepared {
    pub(crate) destination: Destination,
    /// The input's identity: a hash of its rows (see [`rows_hash`]).
    pub(crate) content: String,
    /// For a file, the identity releases up to 0.1 gave it (a hash of its bytes), by which the
    /// journals and the state directory they wrote still know it.
    pub(crate) byte_content: Option<String>,
    pub(crate) journal: PathBuf,
    pub(crate) found_by_content: bool,
}

impl Prepared {
    /// The input's identities, the current one first.
    pub(crate) fn identities(&self) -> Vec<&str> {
        std::iter::once(self.content.as_str())
            .chain(self.byte_content.as_deref())
            .collect()
    }

    /// Whether a journal recording `contents` recorded this input (by either identity).
    pub(crate) fn known_to(&self, contents: &std::collections::BTreeSet<String>) -> bool {
        self.identities().iter().any(|id| contents.contains(*id))
    }
}

/// The identity of rows: a hash of their fingerprints (call, text and flag) in order, so that the
/// same rows are the same input whatever file holds them (CSV, a workbook, another encoding or
/// delimiter) and whatever else the file holds.
fn rows_hash(fingerprints: impl Iterator<Item = u64>) -> String {
    let mut hasher = blake3::Hasher::new();
    for fp in fingerprints {
        hasher.update(&fp.to_le_bytes());
    }
    hasher.finalize().to_hex()[..32].to_string()
}

/// A file's rows as [`rows_hash`] knows them (valid lines only: an input with invalid lines is
/// refused before anything is sent), read as a stream, and the hash of its bytes.
fn file_identity(input: &Input, options: &crate::ReadOptions) -> std::io::Result<(String, String)> {
    let mut error = None;
    let fingerprints = crate::read::open(input, options, false)?
        .map_while(|item| item.map_err(|e| error = Some(e)).ok())
        .filter_map(|item| match item {
            crate::read::Item::Valid(record) => Some(record.fingerprint),
            crate::read::Item::Invalid(_) => None,
        });
    let rows = rows_hash(fingerprints);
    if let Some(e) = error {
        return Err(e);
    }
    let bytes = match input {
        Input::File { path, .. } => locate::content_hash(path)?,
        Input::Records(_) => String::new(),
    };
    Ok((rows, bytes))
}

/// The input's identities: its rows' hash, and for a file the hash of its bytes.
async fn content_of(source: &Source) -> Result<(String, Option<String>), BulkError> {
    match &source.input {
        Input::File { .. } => {
            let (input, options, name) = (
                source.input.clone(),
                source.options.clone(),
                source.name.clone(),
            );
            let (rows, bytes) =
                tokio::task::spawn_blocking(move || file_identity(&input, &options))
                    .await
                    .map_err(|e| BulkError::io(format!("reading the input failed: {e}")))?
                    .map_err(|e| {
                        BulkError::usage(format!("cannot read {name}: {e}; nothing was sent"))
                    })?;
            Ok((rows, Some(bytes)))
        }
        // As the records are given (their default content not yet applied): the identity the
        // journals of records have always held.
        Input::Records(records) => Ok((
            rows_hash(records.iter().map(|record| {
                crate::record::fingerprint(
                    record.call_id().as_str(),
                    record.note().content(),
                    record.note().is_flagged(),
                )
            })),
            None,
        )),
    }
}

/// Refuses an input that is not a regular file.
fn check_file(source: &Source) -> Result<(), BulkError> {
    let Input::File { path, .. } = &source.input else {
        return Ok(());
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(meta) if meta.is_dir() => Err(BulkError::usage(format!(
            "cannot read {}: it is a directory; give the file of notes",
            path.display()
        ))),
        Ok(_) => Err(BulkError::usage(format!(
            "cannot read {}: it is not a regular file (a pipe?); copy it to a file first",
            path.display()
        ))),
        Err(e) => Err(BulkError::usage(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Finds the input's identity, the destination and the journal.
pub(crate) async fn prepare(
    client: &Client,
    source: &Source,
    settings: &Settings,
) -> Result<Prepared, BulkError> {
    source.options.check()?;
    if settings.concurrency == 0 || settings.concurrency > MAX_CONCURRENCY {
        return Err(BulkError::usage(format!(
            "the concurrency is {}: give 1 to {MAX_CONCURRENCY} requests at once",
            settings.concurrency
        )));
    }
    check_file(source)?;
    let (content, byte_content) = content_of(source).await?;
    let mut prepared = Prepared {
        destination: Destination::new(client.base_url(), client.api_key().expose_secret()),
        content,
        byte_content,
        journal: PathBuf::new(),
        found_by_content: false,
    };
    (prepared.journal, prepared.found_by_content) = journal_of(source, settings, &prepared)?;
    Ok(prepared)
}

/// The journal of a run, and whether it was found by the input's rows.
fn journal_of(
    source: &Source,
    settings: &Settings,
    prepared: &Prepared,
) -> Result<(PathBuf, bool), BulkError> {
    if let Some(own) = records_journal(&settings.journal, source)? {
        return Ok((own, false));
    }
    match (&settings.journal, &source.path) {
        (JournalLocation::Path(path), _) => Ok((path.clone(), false)),
        (JournalLocation::BesideInput, Some(file)) => {
            let found = locate::find(
                file,
                &prepared.identities(),
                &prepared.destination,
                settings.state_dir.as_deref(),
            );
            match found {
                Located::Beside(path) => Ok((path, false)),
                Located::ByContent(path) => Ok((path, true)),
                Located::Gone { beside, .. } if settings.forget_lost_journal => Ok((beside, false)),
                Located::Gone { expected, .. } => Err(journal_gone(source, &expected, settings)),
            }
        }
        (JournalLocation::BesideInput, None) => Err(BulkError::usage(
            "records built in memory have no file for the journal to sit beside: give the \
             journal's path (Source::records_with_journal, or JournalLocation::Path)",
        )),
    }
}

/// The journal records were built with ([`Source::records_with_journal`]), which a job built with
/// [`JournalLocation::BesideInput`] (or the same path) uses; `None` for a file, or records built
/// without one. Refused when the job names another path.
pub(crate) fn records_journal(
    location: &JournalLocation,
    source: &Source,
) -> Result<Option<PathBuf>, BulkError> {
    let Some(own) = &source.journal else {
        return Ok(None);
    };
    match location {
        JournalLocation::Path(given) if given != own => Err(BulkError::usage(format!(
            "two journals are named for these records: {} (JournalLocation::Path) and {} (the \
             one they were built with); nothing was sent. Name one of them",
            given.display(),
            own.display()
        ))),
        _ => Ok(Some(own.clone())),
    }
}

/// The refusal of a run whose journal, as the state directory names it, is gone.
fn journal_gone(source: &Source, expected: &std::path::Path, settings: &Settings) -> BulkError {
    let state = settings
        .state_dir
        .as_deref()
        .map_or_else(String::new, |dir| format!(" ({})", dir.display()));
    BulkError::usage(format!(
        "the journal of {name} is gone: the state directory{state} records that these rows were \
         imported to this API with the journal {journal}, which no longer exists; nothing was \
         sent. Without it, the notes that import added cannot be told apart from new ones, and \
         every line would be sent again. Restore {journal} (from a backup or the trash) and run \
         this again, or give its new place (JournalLocation::Path); only if you are sure those \
         notes are not on their calls (or want them twice), start a new journal \
         (Bulk::forget_lost_journal)",
        name = source.name,
        journal = expected.display(),
    ))
}

/// The validation pass, on a blocking thread, against the journal as it is now.
pub(crate) async fn validate(
    source: &Source,
    prepared: &Prepared,
    keep: Keep,
) -> Result<(Plan, JournalState), BulkError> {
    let state = JournalState::load(&prepared.journal, &prepared.destination, keep)?;
    let (input, options, name) = (
        source.input.clone(),
        source.options.clone(),
        source.name.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let plan = plan::validate(&input, &options, &state, &name)?;
        Ok((plan, state))
    })
    .await
    .map_err(|e| BulkError::io(format!("the validation failed: {e}")))?
}

/// Why a line identical to line `first` is refused when identical lines are not allowed.
pub(crate) fn identical_message(first: u64) -> String {
    format!(
        "identical to line {first} (same call, text and flag); remove it, or allow identical \
         lines (Import::allow_duplicates) to add it as one more note"
    )
}

/// The error for invalid lines (or identical ones not allowed): nothing is sent.
pub(crate) fn refuse_invalid(
    plan: &Plan,
    name: &str,
    duplicates_allowed: bool,
) -> Result<(), BulkError> {
    let mut errors = plan.errors.clone();
    let mut invalid = plan.invalid;
    if !duplicates_allowed && plan.duplicate_count > 0 {
        invalid += plan.duplicate_count;
        for (line, first) in &plan.duplicates {
            if errors.len() < plan::MAX_SHOWN_ERRORS {
                errors.push(crate::read::LineError::new(
                    *line,
                    identical_message(*first),
                ));
            }
        }
        errors.sort_by_key(crate::read::LineError::line);
    }
    if invalid == 0 {
        return Ok(());
    }
    let one = invalid == 1;
    Err(BulkError::with_invalid_lines(
        format!(
            "{invalid} line{} of {name} {} invalid; nothing was sent. Fix {} and run the command \
             again (lines already added are not sent again)",
            if one { "" } else { "s" },
            if one { "is" } else { "are" },
            if one { "it" } else { "them" }
        ),
        invalid,
        errors,
    ))
}

/// The locks and the journal of a run that sends: the content's lock (one run of this input to
/// this API at a time, whatever the journal), then the journal's, taken before it is read again,
/// so that what it says cannot change under the run.
pub(crate) struct Opened {
    pub(crate) writer: JournalWriter,
    pub(crate) state: JournalState,
    /// Held until the run ends (its results file written).
    pub(crate) content_lock: Option<locate::ContentLock>,
}

pub(crate) fn open(
    prepared: &Prepared,
    settings: &Settings,
    keep: Keep,
) -> Result<Opened, BulkError> {
    let lock = match locate::lock_content(
        &prepared.content,
        &prepared.destination,
        settings.state_dir.as_deref(),
    ) {
        Ok(file) => Some(file),
        Err(locate::Unlocked::Busy) => {
            return Err(BulkError::usage(
                "another import of a file with the same content (or its undo, or a first sync of \
                 it) is going on; nothing was sent. Wait for it to finish (or stop it with \
                 Ctrl-C), then run this command again",
            ));
        }
        Err(locate::Unlocked::Unavailable) => None,
    };
    let (writer, state) = JournalWriter::open(
        &prepared.journal,
        &prepared.destination,
        settings.fsync,
        keep,
    )?;
    Ok(Opened {
        writer,
        state,
        content_lock: lock,
    })
}

/// Writes the `run` entry, which comes before anything is sent.
pub(crate) fn write_run_entry(
    opened: &Opened,
    source: &Source,
    prepared: &Prepared,
    reason: Option<&str>,
) -> Result<(), BulkError> {
    let entry = Entry {
        event: Some(journal::Event::Run),
        file: Some(source.journal_name.clone()),
        format: Some(format_name(source).to_string()),
        version: Some(journal::VERSION),
        content: Some(prepared.content.clone()),
        base_url: Some(prepared.destination.base_url.clone()),
        key: Some(prepared.destination.key_hash.clone()),
        reason: reason.map(str::to_string),
        ..Entry::default()
    };
    opened.writer.write(&entry).map_err(|e| {
        BulkError::io(format!(
            "cannot write the journal {}: {e}; nothing was sent",
            prepared.journal.display()
        ))
    })
}

/// The input's format as the journal and the report name it.
pub(crate) fn format_name(source: &Source) -> &'static str {
    match &source.input {
        Input::File { format, .. } => format.as_str(),
        Input::Records(_) => "records",
    }
}

/// The notices of a run about to send.
pub(crate) fn notices(prepared: &Prepared, state: &JournalState, plan: &Plan) -> Vec<Event> {
    let journal = prepared.journal.display().to_string();
    let mut notices = Vec::new();
    if prepared.found_by_content {
        notices.push(Notice::ResumingByContent {
            journal: journal.clone(),
        });
    }
    if !state.damaged.is_empty() {
        notices.push(Notice::DamagedJournalLines {
            journal,
            lines: state.damaged.clone(),
        });
    }
    if state.other_key {
        notices.push(Notice::OtherKey);
    }
    if state.contents.is_empty() && !state.other_destinations.is_empty() {
        notices.push(Notice::OtherApi {
            base_urls: state.other_destinations.iter().cloned().collect(),
            base_url: prepared.destination.base_url.clone(),
        });
    }
    if plan.orphans > 0 {
        notices.push(Notice::Orphans {
            count: plan.orphans,
        });
    }
    notices.into_iter().map(Event::Notice).collect()
}

/// What the jobs of a run share.
pub(crate) fn work(
    client: &Client,
    writer: JournalWriter,
    settings: &Settings,
    retry_unknown: bool,
) -> Arc<Work> {
    Arc::new(Work {
        client: client.clone(),
        journal: writer,
        stop: settings.stop.child_token(),
        sends: Arc::new(Semaphore::new(settings.concurrency)),
        lookups: Semaphore::new((settings.concurrency * 4).max(32)),
        retry_unknown,
        call_seen: std::sync::OnceLock::new(),
    })
}

/// How many jobs a pass keeps alive: every send and lookup slot busy, and as many again waiting.
pub(crate) fn max_jobs(settings: &Settings) -> usize {
    (settings.concurrency * 4).max(32) * 2 + settings.concurrency
}
