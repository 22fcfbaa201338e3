//! What a run tells its caller: an [`Event`] for each line as its outcome is known (and for the
//! notices before the run), and at the end a [`Report`] (import) or an [`UndoReport`] (undo),
//! counted from the same outcomes by one [`Tally`].

use std::time::Duration;

use serde::Serialize;

/// How many failed or unknown lines a report keeps (the journal has them all).
pub const MAX_LISTED: usize = 1000;

/// Something a run tells its caller as it goes.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// Before the first request: something the caller should know about the journal or the input.
    Notice(Notice),
    /// The input was checked and the run begins: this many lines will have an outcome (for a
    /// progress display).
    Started {
        /// How many line events will come.
        lines: u64,
    },
    /// One line's outcome.
    Line(LineEvent),
    /// Copies of a line's note (a late first attempt, or a note sent twice) were found on its call
    /// and deleted; the line keeps one note.
    CopiesRemoved {
        /// The input line.
        line: u64,
        /// The call.
        call_id: String,
        /// The IDs of the copies deleted.
        note_ids: Vec<String>,
    },
    /// One change of a sync (or of its undo), as it ended.
    Synced(Box<crate::SyncedRow>),
}

/// A notice before the run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The journal was found by the input's content (a renamed or copied file).
    ResumingByContent {
        /// The journal.
        journal: String,
    },
    /// Lines of the journal could not be read; what they may have said is looked up.
    DamagedJournalLines {
        /// The journal.
        journal: String,
        /// The journal's line numbers.
        lines: Vec<u64>,
    },
    /// Earlier runs to this API used another API key; what they added counts as added.
    OtherKey,
    /// The journal records imports of this input to other APIs (other base URLs) only, none to
    /// this one: its lines are sent as new. Should one of them be this API under another name
    /// (`localhost` and `127.0.0.1`, an alias), its notes are added a second time; an undo of
    /// this run against this base URL takes off exactly what it added.
    OtherApi {
        /// The base URLs the journal records, normalised.
        base_urls: Vec<String>,
        /// This run's base URL, normalised.
        base_url: String,
    },
    /// The journal records lines the input no longer has (edited or removed): an import does not
    /// send them; an undo deletes the notes of those it has as added too.
    Orphans {
        /// How many.
        count: u64,
    },
}

/// One line's outcome.
#[derive(Debug)]
#[non_exhaustive]
pub struct LineEvent {
    /// The input line (or a workbook's row, or a record's place), from 1.
    pub line: u64,
    /// The call.
    pub call_id: String,
    /// Whether its note is flagged.
    pub flagged: bool,
    /// What became of it.
    pub outcome: LineOutcome,
}

/// What became of one line.
#[derive(Debug)]
#[non_exhaustive]
pub enum LineOutcome {
    /// The note was added in this run (`reconciled`: found, or sent again, after an unknown
    /// outcome).
    Added {
        /// The note's ID.
        note_id: String,
        /// How an unknown outcome was settled, if it was one.
        reconciled: Option<Reconciliation>,
    },
    /// An earlier run had added it: the journal says so, or (`found`) an earlier unknown outcome
    /// was found on the call.
    AlreadyAdded {
        /// Whether it was looked up and found (a reconciled unknown outcome of an earlier run).
        found: bool,
    },
    /// Certainly not added.
    Failed(Failure),
    /// It may or may not have been added: a re-run looks it up. (Undo: its note may or may not
    /// have been deleted; a re-run sends the delete again, and one already gone counts.)
    Unknown(Unknown),
    /// Not sent: the run stopped first (a re-run sends it).
    NotSent,
    /// Undo: the note was deleted (or was already gone).
    Deleted {
        /// The note's ID.
        note_id: String,
        /// Whether it was already gone: a `404` for the note that no earlier attempt of this
        /// run's delete explains ([`happyrobot::Error::is_note_already_gone`]), or for its call,
        /// deleted in the app, when the journal's notes were all added under this API key and
        /// the API proves the call gone (asked again, it says the call does not exist, and says
        /// so again in every round of a proof in which it shows another call).
        already_gone: bool,
        /// Whether its add had an unknown outcome, and it was found on its call first.
        found: bool,
    },
    /// Undo: an earlier undo deleted it.
    AlreadyDeleted,
    /// Undo: its add had an unknown outcome and it is not on its call: nothing to delete.
    NotAdded,
}

/// How an unknown outcome was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reconciliation {
    /// The note was on its call.
    Found,
    /// It was certainly not, and was sent once more.
    SentAgain,
}

/// Why a line certainly failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Failure {
    /// The HTTP status, when there was an answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What kind of failure.
    pub kind: FailureKind,
    /// The message: what happened, who answered, what to do.
    pub reason: String,
}

/// What kind of failure, as a caller sorts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureKind {
    /// Something local: the journal does not say which note to delete, say.
    Local,
    /// The API rejected the key (401, 403), or a proxy the credentials (407).
    Unauthorized,
    /// No such call (404).
    NotFound,
    /// Any other answer of the API: 400, 422... (A `429` that asked to wait longer than the
    /// retry policy allows fails no line: the line is not sent, and the run stops.)
    Api,
    /// No connection could be made (refused, DNS, TLS, a proxy's refusal): nothing was sent.
    Network,
}

impl FailureKind {
    /// The kind of a client error: a map of [`happyrobot::Error::category`].
    pub fn of(error: &happyrobot::Error) -> Self {
        use happyrobot::Category as C;
        match error.category() {
            C::Authentication => Self::Unauthorized,
            C::NotFound => Self::NotFound,
            // A request stopped before it was sent again was not sent, as after a failed
            // connection: a re-run sends it.
            C::Network | C::Stopped => Self::Network,
            _ => Self::Api,
        }
    }

    /// The kind as a word (`unauthorized`, `not_found`, `api`, `network`, `local`), as the
    /// journal records it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::Api => "api",
            Self::Network => "network",
        }
    }
}

/// Why a line's outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Unknown {
    /// What happened, and what looking it up found.
    pub reason: String,
    /// Whether it became unknown in an earlier run (and stayed so in this one).
    pub earlier_run: bool,
    /// Whether it was looked up on its call without being settled.
    pub looked_up: bool,
    /// Whether looking it up failed because the call could not be read (an outage, a network
    /// failure): a later re-run looks it up again and can settle it, where sending it again
    /// could add it twice.
    pub lookup_failed: bool,
}

/// A failed line, in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FailedLine {
    /// The input line.
    pub line: u64,
    /// The call.
    pub call_id: String,
    /// Why.
    #[serde(flatten)]
    pub failure: Failure,
}

/// A line whose outcome is unknown, in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UnknownLine {
    /// The input line.
    pub line: u64,
    /// The call.
    pub call_id: String,
    /// Why.
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// What looking up unknown outcomes on their calls found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Reconciled {
    /// On the call: added.
    pub found: u64,
    /// Certainly not on the call: sent again once (an import), or nothing to delete (an undo,
    /// which counts them as `not_added` and never sends).
    pub sent_again: u64,
    /// Could not be told: still unknown.
    pub undecided: u64,
}

/// Why a run ended before every line was done.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// The caller's cancellation token.
    Cancelled,
    /// A failure every other line would share: the API rejected the key, a proxy the credentials
    /// or the tunnel, or the server's certificate is not trusted. The message is the first one.
    Refused(String),
    /// The API asked to wait longer than the retry policy allows.
    RetryAfterTooLong(Duration),
    /// The journal could not be written; nothing more was sent.
    Journal(String),
    /// The input changed while it was read again.
    InputChanged(String),
    /// A worker task failed (a bug): nothing more was sent.
    Worker(String),
}

impl Stop {
    /// The message of a stop for a local failure (the journal, the input, a worker).
    pub fn message(&self) -> Option<&str> {
        match self {
            Self::Journal(m) | Self::InputChanged(m) | Self::Worker(m) | Self::Refused(m) => {
                Some(m)
            }
            _ => None,
        }
    }
}

/// The outcome of an import.
#[derive(Debug, Default, Clone, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The input's name.
    pub file: String,
    /// The journal's path.
    pub journal: String,
    /// The input's format (`csv`, `jsonl`, `workbook`, `records`).
    pub format: &'static str,
    /// Valid lines in the input.
    pub lines: u64,
    /// Added in this run.
    pub added: u64,
    /// Of `added`: flagged notes.
    pub flagged: u64,
    /// Added by an earlier run.
    pub skipped: u64,
    /// Certainly not added.
    pub failed: u64,
    /// Maybe added.
    pub unknown: u64,
    /// Not sent because the run stopped early.
    pub not_sent: u64,
    /// Requests the server answered `429` during the run.
    pub rate_limited: u64,
    /// Unknown outcomes looked up on their calls.
    pub reconciled: Reconciled,
    /// Copies of notes found and deleted (see [`Event::CopiesRemoved`]).
    pub copies_removed: u64,
    /// The first [`MAX_LISTED`] failed lines.
    pub failed_lines: Vec<FailedLine>,
    /// The first [`MAX_LISTED`] unknown lines.
    pub unknown_lines: Vec<UnknownLine>,
    /// Lines sent whose outcome the journal could not record.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub journal_failures: Vec<String>,
    /// Why the run ended early, if it did.
    #[serde(skip)]
    pub stopped: Option<Stop>,
    /// How long the run took.
    #[serde(skip)]
    pub elapsed: Duration,
    /// The rate the server was measured to allow, if it limited the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub learned_rate: Option<f64>,
}

impl Report {
    /// Whether this run sent any request.
    pub fn sent(&self) -> bool {
        self.added > 0
            || self.failed > 0
            || self.rate_limited > 0
            || self.unknown_lines.iter().any(|u| !u.unknown.earlier_run)
    }

    /// The worst failure kind among the failed lines (by [`FailureKind`]'s order: network, then
    /// other API errors, then not found).
    pub fn worst_failure(&self) -> Option<FailureKind> {
        self.failed_lines.iter().map(|f| f.failure.kind).max()
    }

    /// Whether a line failed because the key (or a proxy's credentials) was refused.
    pub fn unauthorized(&self) -> bool {
        self.failed_lines
            .iter()
            .any(|f| f.failure.kind == FailureKind::Unauthorized)
    }
}

/// The outcome of an undo.
#[derive(Debug, Default, Clone, Serialize)]
#[non_exhaustive]
pub struct UndoReport {
    /// The input's name.
    pub file: String,
    /// The journal's path.
    pub journal: String,
    /// Always `true` (tells the JSON of an undo from an import's).
    pub undo: bool,
    /// Notes the journal records as added (before this run), unknown ones found added included,
    /// and those of lines the input no longer has.
    pub to_delete: u64,
    /// Of `to_delete`: notes of lines the input no longer has (edited or removed since they were
    /// imported), which the undo deletes too.
    pub removed_lines: u64,
    /// Deleted (already gone included).
    pub deleted: u64,
    /// Of `deleted`: already gone (a `404` for the note that no earlier attempt of this run's
    /// delete explains, or for its call: see [`LineOutcome::Deleted`]).
    pub already_gone: u64,
    /// Of `deleted`: flagged notes.
    pub flagged: u64,
    /// Deleted by an earlier undo.
    pub skipped: u64,
    /// Lines whose unknown outcome turned out to be "not added": nothing to delete.
    pub not_added: u64,
    /// Not deleted.
    pub failed: u64,
    /// Lines whose add outcome is still unknown, and deletes whose outcome is unknown.
    pub unknown: u64,
    /// Not deleted because the undo stopped early.
    pub not_deleted: u64,
    /// Unknown outcomes looked up on their calls (`sent_again` is always 0: an undo never sends a
    /// note; absent lines are its `not_added`).
    pub reconciled: Reconciled,
    /// Copies of notes found and deleted too.
    pub copies_removed: u64,
    /// The first [`MAX_LISTED`] failed lines.
    pub failed_lines: Vec<FailedLine>,
    /// The first [`MAX_LISTED`] unknown lines.
    pub unknown_lines: Vec<UnknownLine>,
    /// Why the undo ended early, if it did.
    #[serde(skip)]
    pub stopped: Option<Stop>,
    /// How long it took.
    #[serde(skip)]
    pub elapsed: Duration,
}

impl UndoReport {
    /// The worst failure kind among the failed lines.
    pub fn worst_failure(&self) -> Option<FailureKind> {
        self.failed_lines.iter().map(|f| f.failure.kind).max()
    }

    /// Whether a line failed because the key (or a proxy's credentials) was refused.
    pub fn unauthorized(&self) -> bool {
        self.failed_lines
            .iter()
            .any(|f| f.failure.kind == FailureKind::Unauthorized)
    }
}

/// Counts every outcome once, for both kinds of run: the one place a report is made from.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) added: u64,
    /// Added or deleted, flagged.
    pub(crate) flagged: u64,
    pub(crate) skipped: u64,
    pub(crate) failed: u64,
    pub(crate) unknown: u64,
    pub(crate) not_sent: u64,
    pub(crate) deleted: u64,
    pub(crate) already_gone: u64,
    pub(crate) already_deleted: u64,
    pub(crate) not_added: u64,
    pub(crate) copies_removed: u64,
    pub(crate) reconciled: Reconciled,
    pub(crate) failed_lines: Vec<FailedLine>,
    pub(crate) unknown_lines: Vec<UnknownLine>,
    pub(crate) journal_failures: Vec<String>,
    pub(crate) stopped: Option<Stop>,
    /// Every line left unknown or failed, by its journal key, with why (not capped as
    /// `unknown_lines`).
    pub(crate) doubts: std::collections::HashMap<crate::record::LineKey, crate::line::Untold>,
}

impl Tally {
    /// Counts one event.
    pub(crate) fn count(&mut self, event: &Event) {
        let line = match event {
            Event::Line(line) => line,
            Event::CopiesRemoved { note_ids, .. } => {
                self.copies_removed += note_ids.len() as u64;
                return;
            }
            Event::Notice(_) | Event::Started { .. } | Event::Synced(_) => return,
        };
        match &line.outcome {
            LineOutcome::Added { reconciled, .. } => {
                self.added += 1;
                self.flagged += u64::from(line.flagged);
                match reconciled {
                    Some(Reconciliation::Found) => self.reconciled.found += 1,
                    Some(Reconciliation::SentAgain) => self.reconciled.sent_again += 1,
                    None => {}
                }
            }
            LineOutcome::AlreadyAdded { found } => {
                self.skipped += 1;
                self.reconciled.found += u64::from(*found);
            }
            LineOutcome::Failed(failure) => {
                self.failed += 1;
                if self.failed_lines.len() < MAX_LISTED {
                    self.failed_lines.push(FailedLine {
                        line: line.line,
                        call_id: line.call_id.clone(),
                        failure: failure.clone(),
                    });
                }
            }
            LineOutcome::Unknown(unknown) => {
                self.unknown += 1;
                if unknown.looked_up {
                    self.reconciled.undecided += 1;
                }
                if self.unknown_lines.len() < MAX_LISTED {
                    self.unknown_lines.push(UnknownLine {
                        line: line.line,
                        call_id: line.call_id.clone(),
                        unknown: unknown.clone(),
                    });
                }
            }
            LineOutcome::NotSent => self.not_sent += 1,
            LineOutcome::Deleted {
                already_gone,
                found,
                ..
            } => {
                self.deleted += 1;
                self.flagged += u64::from(line.flagged);
                self.already_gone += u64::from(*already_gone);
                self.reconciled.found += u64::from(*found);
            }
            LineOutcome::AlreadyDeleted => self.already_deleted += 1,
            LineOutcome::NotAdded => self.not_added += 1,
        }
    }

    /// Records why the run ended early (the first reason wins).
    pub(crate) fn stop(&mut self, stop: Stop) {
        self.stopped.get_or_insert(stop);
    }

    /// Lines handled (every outcome but "not sent").
    pub(crate) fn handled(&self) -> u64 {
        self.added + self.skipped + self.failed + self.unknown
    }
}
