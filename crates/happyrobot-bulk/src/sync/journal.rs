//! The sync journal: one JSON object a line, appended under the journal's lock. A `run` entry
//! opens each run; every change is written as an `intent` before its request and as `done` (or
//! `failed`, `unknown`) after. Folded, it says which note each row key owns on which call, which
//! note IDs were ever sent for a row, and what each run changed (for an undo).
//!
//! A sync's note IDs are derived from the call, the row's key and a counter ([`note_id`]), not
//! from the journal: a sync whose journal was lost finds the notes it made on their calls.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::BulkError;
use crate::journal::Destination;

/// The version of the entries this release writes.
const VERSION: u32 = 1;
/// How many counters a lookup tries beyond the highest the journal knows (a lost journal knows
/// none): each resend after a certain absence takes the next.
pub(crate) const SPARE_COUNTERS: u32 = 4;

/// The note ID a sync sends for row `key` on `call`, its `k`-th: 24 hexadecimal digits.
pub(crate) fn note_id(call: &str, key: &str, k: u32) -> String {
    let mut hasher = blake3::Hasher::new_derive_key("happyrobot-bulk 2026-12 sync note id v1");
    hasher.update(call.as_bytes());
    hasher.update(&[0xff]);
    hasher.update(key.as_bytes());
    hasher.update(&[0xff]);
    hasher.update(&k.to_le_bytes());
    hasher.finalize().to_hex()[..24].to_string()
}

/// The longest client timeout a run's entry is believed for (see [`Attempt`]'s `timeout`): a
/// day; a longer one is a damaged or edited entry, and this client's counts.
const MAX_RUN_TIMEOUT: Duration = Duration::from_secs(86_400);

/// What a change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Op {
    Add,
    Update,
    Delete,
    /// A note the sync did not add is taken over as a row's (from an import's journal, or
    /// asked for): nothing is sent.
    Adopt,
}

/// A note's text and flag, as a row wants it or as a call held it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Text {
    pub(crate) content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) flagged: Option<bool>,
}

/// One line of the journal.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) v: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) run: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) undoes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) base_url: Option<String>,
    /// A run's API key, as its hash (never the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
    /// A run's client timeout, in milliseconds: how long an attempt of it may have taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) op: Option<Op>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) row: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) line: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) call: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) before: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) at: Option<u64>,
}

/// The note a row owns, as the journal last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owned {
    pub(crate) call: String,
    pub(crate) note: String,
    pub(crate) text: Text,
}

/// A change a run made (a `done` entry), for an undo.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) op: Op,
    pub(crate) row: String,
    pub(crate) line: Option<u64>,
    pub(crate) call: String,
    pub(crate) note: String,
    pub(crate) text: Option<Text>,
    pub(crate) before: Option<Text>,
    /// Announced by an `intent` whose outcome no entry settled (a run killed, or unknown): it may
    /// have been made, or not.
    pub(crate) in_doubt: bool,
}

/// What the journal says, folded.
#[derive(Debug, Default)]
pub(crate) struct SyncState {
    /// Row key → the note it owns.
    pub(crate) owned: BTreeMap<String, Owned>,
    /// (row, call) → the highest counter sent.
    counters: HashMap<(String, String), u32>,
    /// (row, call) → every note ID sent or adopted for it.
    ids: HashMap<(String, String), Vec<String>>,
    /// (row, call) → the adds sent whose outcome no entry settled (a run killed, or unknown):
    /// their note IDs and when the last went.
    pub(crate) pending: HashMap<(String, String), Pending>,
    /// Note ID → the update or delete of it last sent whose outcome no entry settled (a run
    /// killed, or unknown): it may still land (see [`SyncState::doubts_settle_at`]).
    doubts: HashMap<String, Attempt>,
    /// Each run: its number, reason, what it undoes, and its changes.
    pub(crate) runs: Vec<RunRecord>,
    /// The base URL of the journal's runs.
    pub(crate) base_url: Option<String>,
    /// The notes forgotten as gone with their calls (`gone` entries): nothing of them to undo.
    gone: HashSet<String>,
    /// How many entries it holds: a plan records it, an apply checks nothing was added since.
    pub(crate) entries: u64,
    /// Lines that could not be read.
    pub(crate) damaged: Vec<u64>,
    /// Run → when it wrote its last entry (seconds since the epoch).
    last_at: HashMap<u64, u64>,
}

/// Adds in doubt for one row on one call.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pending {
    pub(crate) ids: Vec<String>,
    /// The last one's attempt.
    pub(crate) last: Attempt,
    /// How long that attempt took, when the journal that records it says (an import's).
    pub(crate) took: Option<Duration>,
    /// For an undo's add back of a note whose delete was in doubt: `ids[0]` is that note's own
    /// ID, and found under it the note was never deleted (nothing is added).
    pub(crate) own_first: bool,
}

impl Pending {
    /// Its last attempt, for a look that waits for a late apply (see [`last_attempt`]).
    pub(crate) fn attempt(&self, timeout: Duration) -> (SystemTime, Duration) {
        last_attempt(&self.last, self.took, timeout)
    }
}

/// The last attempt of a change in doubt (an add, an update or a delete).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Attempt {
    /// When it was sent (seconds since the epoch), at the latest: for one in flight when its run
    /// was killed, when that run wrote its last entry, as far as anything says.
    at: u64,
    /// When it ended unknown, if an entry says (seconds since the epoch).
    ended: Option<u64>,
    /// The run that sent it.
    run: Option<u64>,
    /// That run's client timeout, when the journal says: how long the attempt may have taken.
    timeout: Option<Duration>,
}

impl Attempt {
    /// An attempt sent at `at` (seconds since the epoch) by no run of this journal (an import's).
    pub(crate) fn sent_at(at: u64) -> Self {
        Self {
            at,
            ..Self::default()
        }
    }

    /// The attempt an `intent` entry announces.
    fn of(intent: &Entry) -> Self {
        Self {
            at: intent.at.unwrap_or_default(),
            ended: None,
            run: intent.run,
            timeout: None,
        }
    }

    /// An `unknown` entry ends it, when the run that sent it wrote it: a later run's look-up
    /// that could not tell (stopped, undecided) ends nothing.
    fn end(&mut self, unknown: &Entry) {
        if self.run == unknown.run {
            self.ended = unknown.at;
        }
    }

    /// Of two attempts, the one that went or ended last.
    pub(crate) fn latest_of(a: Self, b: Self) -> Self {
        let last = |x: &Self| x.ended.unwrap_or(x.at).max(x.at);
        if last(&b) > last(&a) { b } else { a }
    }

    /// It may have been sent again after its intent (a retry, after a timeout or a `429`, which
    /// a `sent` entry dates): one that no entry ended went at the latest when its run wrote its
    /// last entry (`last_at`), as far as the journal says (a run killed meanwhile writes no more).
    fn latest(&mut self, last_at: &HashMap<u64, u64>) {
        if self.ended.is_none()
            && let Some(last) = self.run.and_then(|run| last_at.get(&run))
        {
            self.at = self.at.max(*last);
        }
    }
}

/// The last attempt of a change in doubt, sent (`sent`, the journal's seconds) and perhaps ended
/// unknown, as [`happyrobot::Client::late_apply_until`] takes it: (sent, took), so that
/// it may land until `sent + max(3 × took, settle)`. One that no entry ended may have taken the
/// client's whole `timeout` (or `took`, an import's recorded time, if longer) from `sent`. One
/// that ended took at most that before it ended (the attempts before it, retries, are not in
/// doubt), and may land until twice its time after its end, or the settle delay after it: given
/// as sent at its end, taking two thirds of its time. A time past the clock's range (a damaged or
/// edited journal), or ahead of the clock, counts from now.
fn last_attempt(
    sent: &Attempt,
    took: Option<Duration>,
    timeout: Duration,
) -> (SystemTime, Duration) {
    let now = SystemTime::now();
    // The longer of this client's timeout and the one of the run that sent it.
    let timeout = sent.timeout.map_or(timeout, |then| then.max(timeout));
    let longest = took.map_or(timeout, |took| took.max(timeout));
    // The journal's whole seconds, taken at their latest.
    let at = |seconds: u64| {
        seconds
            .checked_add(1)
            .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
            .map_or(now, |at| at.min(now))
    };
    match sent.ended {
        Some(ended) => {
            let took =
                Duration::from_secs(ended.saturating_sub(sent.at).saturating_add(1)).min(longest);
            (at(ended), took * 2 / 3)
        }
        None => (at(sent.at), longest),
    }
}

/// One run of the journal.
#[derive(Debug, Clone)]
pub(crate) struct RunRecord {
    pub(crate) run: u64,
    pub(crate) undo: bool,
    pub(crate) undoes: Option<u64>,
    /// The hash of its API key (`None`: a run journaled by an earlier version, which did not
    /// record it).
    key: Option<String>,
    /// Its client's timeout, when its entry says (and is believable, see [`MAX_RUN_TIMEOUT`]).
    timeout: Option<Duration>,
    /// Its changes made (`done` entries).
    pub(crate) changes: Vec<Change>,
    /// Its changes announced (`intent` entries), settled or not.
    intents: Vec<Change>,
    /// The changes whose outcome it journaled (`done` or `failed`), by operation and note.
    ended: HashSet<(Op, String)>,
}

impl SyncState {
    /// Reads the journal at `path` (none yet: empty).
    pub(crate) fn load(path: &Path) -> Result<Self, BulkError> {
        let file = match crate::journal::file::open_regular(path, OpenOptions::new().read(true)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(BulkError::usage(format!(
                    "cannot read the sync journal {}: {e}; nothing was sent",
                    path.display()
                )));
            }
        };
        let mut state = Self::default();
        // Bytes, not text: a line cut short by a kill may end inside a character.
        for (index, line) in BufReader::new(file).split(b'\n').enumerate() {
            let line = line.map_err(|e| {
                BulkError::usage(format!(
                    "cannot read the sync journal {}: {e}; nothing was sent",
                    path.display()
                ))
            })?;
            state.entries += 1;
            match serde_json::from_slice::<Entry>(&line) {
                Ok(entry) => state.apply(&entry),
                // A line cut short by a kill: what it said is looked up on the calls.
                Err(_) if !line.trim_ascii().is_empty() => state.damaged.push(index as u64 + 1),
                Err(_) => {}
            }
        }
        state.latest_sends();
        Ok(state)
    }

    /// Dates every change in doubt at the latest (see [`Attempt::latest`]), once every entry is
    /// read.
    fn latest_sends(&mut self) {
        let runs = &self.runs;
        let attempts = self.pending.values_mut().map(|pending| &mut pending.last);
        for attempt in attempts.chain(self.doubts.values_mut()) {
            attempt.latest(&self.last_at);
            let run = runs.iter().find(|r| Some(r.run) == attempt.run);
            attempt.timeout = run.and_then(|r| r.timeout);
        }
    }

    fn apply(&mut self, entry: &Entry) {
        if let (Some(run), Some(at)) = (entry.run, entry.at) {
            let last = self.last_at.entry(run).or_default();
            *last = (*last).max(at);
        }
        if entry.event == "sent" {
            // An attempt of a change announced before went out later: the change's time, as its
            // run's last entry (see `Attempt::latest`).
            return;
        }
        if entry.event == "run" {
            self.base_url = self.base_url.take().or_else(|| entry.base_url.clone());
            self.runs.push(RunRecord {
                run: entry.run.unwrap_or_default(),
                undo: entry.reason.as_deref() == Some("undo"),
                undoes: entry.undoes,
                key: entry.key.clone(),
                timeout: entry
                    .timeout_ms
                    .map(Duration::from_millis)
                    .filter(|timeout| *timeout <= MAX_RUN_TIMEOUT),
                changes: Vec::new(),
                intents: Vec::new(),
                ended: HashSet::new(),
            });
            return;
        }
        let (Some(op), Some(row), Some(call), Some(note)) =
            (entry.op, &entry.row, &entry.call, &entry.note)
        else {
            return;
        };
        let slot = (row.clone(), call.clone());
        if let Some(k) = entry.k {
            let highest = self.counters.entry(slot.clone()).or_insert(k);
            *highest = (*highest).max(k);
        }
        if let Some(run) = self.runs.last_mut().filter(|r| entry.run == Some(r.run)) {
            match entry.event.as_str() {
                "intent" => run.intents.push(Change {
                    in_doubt: true,
                    ..change(entry, op, row, call, note)
                }),
                "done" | "failed" => {
                    run.ended.insert((op, note.clone()));
                }
                _ => {}
            }
        }
        let ids = self.ids.entry(slot.clone()).or_default();
        if !ids.contains(note) {
            ids.push(note.clone());
        }
        if matches!(op, Op::Update | Op::Delete) {
            match entry.event.as_str() {
                "intent" => {
                    self.doubts.insert(note.clone(), Attempt::of(entry));
                }
                "unknown" => {
                    if let Some(doubt) = self.doubts.get_mut(note) {
                        doubt.end(entry);
                    }
                }
                _ => {
                    self.doubts.remove(note);
                }
            }
        }
        if op == Op::Add {
            match entry.event.as_str() {
                "intent" => {
                    let pending = self.pending.entry(slot).or_default();
                    pending.ids.push(note.clone());
                    pending.last = Attempt::of(entry);
                }
                "unknown" => {
                    if let Some(pending) = self.pending.get_mut(&slot) {
                        pending.last.end(entry);
                    }
                }
                "done" | "failed" => {
                    self.pending.remove(&slot);
                }
                _ => {}
            }
        }
        if entry.event == "gone" {
            // A note that went with its call (see `PlannedRow::gone_with_call`): forgotten, not
            // a change of the run (an undo has nothing to put back).
            if self.owned.get(row).is_some_and(|o| o.note == *note) {
                self.owned.remove(row);
            }
            self.gone.insert(note.clone());
            return;
        }
        if entry.event == "settled" {
            // An add in doubt a plan found settled on its call (see `plan::Settled`): the row's
            // note, which no run changed (an undo leaves it).
            self.pending
                .retain(|_, pending| !pending.ids.contains(note));
            if let Some(text) = &entry.text {
                self.own(row, call, note, text);
            }
            return;
        }
        if entry.event == "done" {
            if matches!(op, Op::Delete | Op::Adopt) {
                // An add in doubt whose note was found and deleted, or taken over by another row.
                self.pending
                    .retain(|_, pending| !pending.ids.contains(note));
            }
            self.done(entry, op, row, call, note);
        }
    }

    fn done(&mut self, entry: &Entry, op: Op, row: &str, call: &str, note: &str) {
        match (op, &entry.text) {
            (Op::Add | Op::Update | Op::Adopt, Some(text)) => self.own(row, call, note, text),
            (Op::Delete, _) if self.owned.get(row).is_some_and(|o| o.note == note) => {
                self.owned.remove(row);
            }
            _ => {}
        }
        if let Some(run) = self.runs.last_mut() {
            run.changes.push(change(entry, op, row, call, note));
        }
    }

    /// Row `row` owns `note` on `call`, holding `text`.
    fn own(&mut self, row: &str, call: &str, note: &str, text: &Text) {
        // A note belongs to one row: a row that takes it over (a changed key) releases it.
        self.owned.retain(|key, o| key == row || o.note != note);
        self.owned.insert(
            row.to_string(),
            Owned {
                call: call.to_string(),
                note: note.to_string(),
                text: text.clone(),
            },
        );
    }

    /// When every update and delete in doubt (see `doubts`), and every add in doubt of a row that
    /// is no longer on that call (`stays(row, call)` false: it moved, or was removed), can no
    /// longer land, by `client`'s rule ([`happyrobot::Client::late_apply_until`]; the journal's
    /// whole seconds taken at their latest); `None` when none is in doubt. (An add in doubt of a
    /// row still on its call is looked up when the sync would send it again.)
    pub(crate) fn doubts_settle_at(
        &self,
        client: &happyrobot::Client,
        stays: impl Fn(&str, &str) -> bool,
    ) -> Option<SystemTime> {
        let timeout = client.timeout();
        let until = |(sent, took)| client.late_apply_until(sent, took);
        let strays = self
            .pending
            .iter()
            .filter(|((row, call), _)| !stays(row, call))
            .map(|(_, pending)| until(pending.attempt(timeout)));
        self.doubts
            .values()
            .map(|doubt| until(last_attempt(doubt, None, timeout)))
            .chain(strays)
            .max()
    }

    /// The next counter for row `row` on `call`.
    pub(crate) fn next_k(&self, row: &str, call: &str) -> u32 {
        self.counters
            .get(&(row.to_string(), call.to_string()))
            .map_or(0, |k| k + 1)
    }

    /// Every note ID row `row` may own on `call`: those the journal knows, and those a sync
    /// derives for it (a few beyond the highest counter, for a journal that lost its end).
    pub(crate) fn candidates(&self, row: &str, call: &str) -> Vec<String> {
        let slot = (row.to_string(), call.to_string());
        let mut ids = self.ids.get(&slot).cloned().unwrap_or_default();
        let top = self.counters.get(&slot).map_or(0, |k| k + 1) + SPARE_COUNTERS;
        for k in 0..top {
            let id = note_id(call, row, k);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// Whether the journal ever sent (or adopted) note `id` for row `row` on `call`.
    pub(crate) fn knows(&self, row: &str, call: &str, id: &str) -> bool {
        self.ids
            .get(&(row.to_string(), call.to_string()))
            .is_some_and(|ids| ids.iter().any(|known| known == id))
            || self.owned.get(row).is_some_and(|o| o.note == id)
    }

    /// Whether every run of the journal used the API key whose hash is `key`: what the API says
    /// of the journal's calls is then said to the key that made its notes.
    pub(crate) fn only_key(&self, key: &str) -> bool {
        !self.runs.is_empty() && self.runs.iter().all(|r| r.key.as_deref() == Some(key))
    }

    /// The number of the next run.
    pub(crate) fn next_run(&self) -> u64 {
        self.runs.iter().map(|r| r.run).max().map_or(1, |r| r + 1)
    }

    /// The last sync run that changed something, or may have (a change in doubt), or that an undo
    /// undid, with the changes no undo has reversed yet: those it made, then those in doubt. An
    /// undo that stopped part-way (killed, failures, unknown outcomes) is finished by the next;
    /// once every change is reversed there is nothing to undo (never the run before).
    pub(crate) fn undoable(&self) -> Option<(&RunRecord, Vec<&Change>)> {
        let undone = |run: u64| self.runs.iter().any(|r| r.undoes == Some(run));
        let last = self.runs.iter().rev().find(|r| {
            !r.undo && (!r.changes.is_empty() || in_doubt(r).next().is_some() || undone(r.run))
        })?;
        let reversals: Vec<&Change> = self
            .runs
            .iter()
            .filter(|r| r.undoes == Some(last.run))
            .flat_map(|r| &r.changes)
            .collect();
        let left: Vec<&Change> = last
            .changes
            .iter()
            .chain(in_doubt(last))
            .filter(|change| !self.gone.contains(&change.note))
            .filter(|change| !reversals.iter().any(|r| reverses(r, change)))
            .collect();
        (!left.is_empty()).then_some((last, left))
    }

    /// The last attempt of the update or delete of note `note` whose outcome is in doubt.
    pub(crate) fn doubt(&self, note: &str) -> Option<Attempt> {
        self.doubts.get(note).copied()
    }
}

/// The changes `run` announced and never journaled the outcome of (killed, or unknown), each
/// once: by its own entries, which no later run changes (a later run's look-up, or an undo's
/// reversal, settles what the server holds, not what this run did).
fn in_doubt(run: &RunRecord) -> impl Iterator<Item = &Change> {
    let mut seen = HashSet::new();
    run.intents.iter().filter(move |c| {
        c.op != Op::Adopt
            && !run.ended.contains(&(c.op, c.note.clone()))
            && seen.insert((c.op, c.note.clone()))
    })
}

/// The change an entry about `note` names.
fn change(entry: &Entry, op: Op, row: &str, call: &str, note: &str) -> Change {
    Change {
        op,
        row: row.to_string(),
        line: entry.line,
        call: call.to_string(),
        note: note.to_string(),
        text: entry.text.clone(),
        before: entry.before.clone(),
        in_doubt: false,
    }
}

/// Whether `reversal` (a change of an undo run) reverses `change`.
fn reverses(reversal: &Change, change: &Change) -> bool {
    let same_note = reversal.note == change.note && reversal.call == change.call;
    match (change.op, reversal.op) {
        (Op::Add, Op::Delete) | (Op::Update, Op::Update) => same_note,
        // A deleted note comes back under a new ID: the same row on the same call.
        (Op::Delete, Op::Add) => reversal.row == change.row && reversal.call == change.call,
        // A note the run added and then updated is deleted by the undo: both are undone.
        (Op::Update, Op::Delete) => same_note,
        _ => false,
    }
}

/// Appends entries under the journal's lock, held until dropped.
#[derive(Debug)]
pub(crate) struct SyncWriter {
    file: Mutex<File>,
    path: PathBuf,
    fsync: bool,
}

impl SyncWriter {
    /// Opens (or creates, readable by its owner only) the journal and takes its lock; refused
    /// at once when another run holds it.
    pub(crate) fn open(path: &Path, fsync: bool) -> Result<Self, BulkError> {
        let failed = |e: io::Error| {
            BulkError::io(format!(
                "cannot open the sync journal {}: {e}; nothing was sent",
                path.display()
            ))
        };
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = crate::journal::file::open_regular(path, &mut options).map_err(failed)?;
        match fs4::fs_std::FileExt::try_lock_exclusive(&file) {
            Ok(true) => {}
            Ok(false) => {
                return Err(BulkError::usage(format!(
                    "another sync of this file is running (it holds the journal {}); nothing was \
                     sent. Wait for it to finish, then run this again: it plans from what that \
                     one did",
                    path.display()
                )));
            }
            Err(e) => return Err(failed(e)),
        }
        end_line(&file).map_err(failed)?;
        Ok(Self {
            file: Mutex::new(file),
            path: path.to_path_buf(),
            fsync,
        })
    }

    /// Writes `entry` whole and flushes it to the OS (and the disk, with fsync).
    pub(crate) fn write(&self, entry: &Entry) -> io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(io::Error::other)?;
        line.push(b'\n');
        let file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        (&*file).write_all(&line)?;
        if self.fsync {
            file.sync_data()?;
        }
        Ok(())
    }

    /// The journal's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Ends a last line a kill cut short, so that the next entry starts a line of its own (the cut
/// line stays unreadable, and is counted as damaged).
fn end_line(file: &File) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut last = [0u8; 1];
    let mut reader = file;
    reader.seek(SeekFrom::Start(len - 1))?;
    reader.read_exact(&mut last)?;
    if last[0] != b'\n' {
        (&*file).write_all(b"\n")?;
    }
    Ok(())
}

/// The `run` entry of run `run` to `destination`.
pub(crate) fn run_entry(
    run: u64,
    destination: &Destination,
    file: &str,
    undoes: Option<u64>,
    timeout: Duration,
) -> Entry {
    Entry {
        event: "run".to_string(),
        v: Some(VERSION),
        run: Some(run),
        reason: Some(if undoes.is_some() { "undo" } else { "sync" }.to_string()),
        undoes,
        base_url: Some(destination.base_url.clone()),
        key: Some(destination.key_hash.clone()),
        timeout_ms: Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
        file: Some(file.to_string()),
        at: Some(crate::journal::now()),
        ..Entry::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

    use super::*;

    fn client() -> happyrobot::Client {
        happyrobot::Client::builder()
            .api_key("hr_test")
            .base_url("http://127.0.0.1:9/api/v1")
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap()
    }

    fn state_with(entries: &[Entry]) -> SyncState {
        let mut state = SyncState::default();
        for entry in entries {
            state.apply(entry);
        }
        state.latest_sends();
        state
    }

    fn update(event: &str, at: u64) -> Entry {
        Entry {
            event: event.to_string(),
            run: Some(1),
            op: Some(Op::Update),
            row: Some("r1".to_string()),
            call: Some("65f1c0ffee0123456789abcd".to_string()),
            note: Some("n1".to_string()),
            at: Some(at),
            ..Entry::default()
        }
    }

    #[test]
    fn a_change_in_doubt_is_waited_for_from_its_last_attempt_and_never_past_a_cap() {
        let client = client();
        let now = crate::journal::now();
        // A while ago (a time ahead of the clock is capped, see below).
        let then = now - 1000;
        // Ended unknown 100 s after its intent (retries): its last attempt took at most the
        // client's 2 s, so it may land until some 4 s after it ended, not 300 s.
        let state = state_with(&[update("intent", then), update("unknown", then + 100)]);
        let until = state.doubts_settle_at(&client, |_, _| true).unwrap();
        let ended = UNIX_EPOCH + Duration::from_secs(then + 101);
        assert!(until <= ended + Duration::from_secs(5), "{until:?}");
        assert!(until >= ended + Duration::from_secs(3), "{until:?}");
        // A killed run's: from its last entry, which a retry may have followed.
        let mut killed = update("intent", then);
        killed.note = Some("n2".to_string());
        let later = Entry {
            event: "done".to_string(),
            run: Some(1),
            at: Some(then + 30),
            ..Entry::default()
        };
        let state = state_with(&[killed, later]);
        let until = state.doubts_settle_at(&client, |_, _| true).unwrap();
        assert!(
            until >= UNIX_EPOCH + Duration::from_secs(then + 31 + 6),
            "{until:?}"
        );
        // A time past the clock's range, or far ahead of it: no panic, and no wait longer than a
        // change sent now could take to land.
        for at in [u64::MAX, u64::MAX / 2, now + 86_400] {
            let state = state_with(&[update("intent", at)]);
            let until = state.doubts_settle_at(&client, |_, _| true);
            let cap = client.late_apply_until(SystemTime::now(), client.timeout());
            assert!(until.is_none_or(|until| until <= cap), "{at}: {until:?}");
        }
        // Settled by a later entry: nothing to wait for.
        let state = state_with(&[update("intent", then), update("done", then + 1)]);
        assert_eq!(state.doubts_settle_at(&client, |_, _| true), None);
    }

    #[test]
    fn an_attempt_journaled_as_sent_later_dates_its_change_and_settles_nothing() {
        let client = client();
        let then = crate::journal::now() - 1000;
        // Held 600 s by a rate limit, then sent, and the run killed: it may land until some 6 s
        // (three times the client's 2 s) after it went, not after its intent.
        let sent = Entry {
            event: "sent".to_string(),
            run: Some(1),
            at: Some(then + 600),
            ..Entry::default()
        };
        let state = state_with(&[update("intent", then), sent.clone()]);
        let until = state.doubts_settle_at(&client, |_, _| true).unwrap();
        assert!(
            until >= UNIX_EPOCH + Duration::from_secs(then + 606),
            "{until:?}"
        );
        let state = state_with(&[add("intent", then), sent]);
        let pending = state.pending.values().next().unwrap();
        let (sent, _) = pending.attempt(client.timeout());
        assert!(
            sent >= UNIX_EPOCH + Duration::from_secs(then + 600),
            "{sent:?}"
        );
    }

    fn run(run: u64, undoes: Option<u64>) -> Entry {
        Entry {
            event: "run".to_string(),
            run: Some(run),
            reason: Some(if undoes.is_some() { "undo" } else { "sync" }.to_string()),
            undoes,
            ..Entry::default()
        }
    }

    /// `update(event)` by run `run`.
    fn update_by(run: u64, event: &str) -> Entry {
        Entry {
            run: Some(run),
            ..update(event, crate::journal::now() - 100)
        }
    }

    #[test]
    fn an_undo_of_a_killed_run_is_finished_by_the_next_and_never_reaches_the_run_before() {
        let added = Entry {
            op: Some(Op::Add),
            ..update_by(1, "done")
        };
        // Run 2 killed with its update in doubt; an undo of it killed as well.
        let mut entries = vec![
            run(1, None),
            added,
            run(2, None),
            update_by(2, "intent"),
            run(3, Some(2)),
            update_by(3, "intent"),
        ];
        let undoable = |entries: &[Entry]| {
            state_with(entries)
                .undoable()
                .map(|(run, left)| (run.run, left.len()))
        };
        assert_eq!(undoable(&entries), Some((2, 1)));
        // The next undo puts it back: nothing is left, and run 1 is not undone.
        entries.extend([
            run(4, Some(2)),
            update_by(4, "intent"),
            update_by(4, "done"),
        ]);
        assert_eq!(undoable(&entries), None);
        // An add of run 2 in doubt that a later sync found on its call (its row removed since)
        // and changed nothing else: undoing is undoing run 2, which added it.
        let add_by = |run: u64, event: &str| Entry {
            op: Some(Op::Add),
            note: Some("a2".to_string()),
            text: Some(Text {
                content: "late".to_string(),
                flagged: None,
            }),
            ..update_by(run, event)
        };
        let entries = [
            run(1, None),
            add_by(1, "intent"),
            add_by(1, "done"),
            run(2, None),
            add_by(2, "intent"),
            run(3, None),
            add_by(3, "settled"),
        ];
        let entries = entries.map(|mut e| {
            if e.run == Some(1) && e.op.is_some() {
                e.note = Some("a1".to_string());
            }
            e
        });
        assert_eq!(undoable(&entries), Some((2, 1)));
    }

    #[test]
    fn a_change_in_doubt_may_take_as_long_as_its_own_run_let_it() {
        let then = crate::journal::now() - 10;
        // When a killed run's update (this client gives 2 s) may land until, its run giving
        // `timeout_ms`.
        let until = |timeout_ms: u64| {
            let run = Entry {
                timeout_ms: Some(timeout_ms),
                ..run(1, None)
            };
            let state = state_with(&[run, update("intent", then)]);
            state.doubts_settle_at(&client(), |_, _| true).unwrap()
        };
        let after = |secs: u64| UNIX_EPOCH + Duration::from_secs(then + secs);
        // Its run gave 300 s (`--timeout 300`): until some 900 s after it went, not 6 s.
        assert!(until(300_000) >= after(900));
        // Its run gave less than this client: this client's.
        assert!(until(100) >= after(6) && until(100) < after(60));
    }

    #[test]
    fn only_the_key_of_every_run_hears_a_404_as_gone() {
        let keyed = |run_number: u64, key: Option<&str>| Entry {
            key: key.map(str::to_string),
            ..run(run_number, None)
        };
        let state = state_with(&[keyed(1, Some("a")), keyed(2, Some("a"))]);
        assert!(state.only_key("a") && !state.only_key("b"));
        // Another key once, or a run of an earlier version that did not say.
        assert!(!state_with(&[keyed(1, Some("a")), keyed(2, Some("b"))]).only_key("a"));
        assert!(!state_with(&[keyed(1, None), keyed(2, Some("a"))]).only_key("a"));
        assert!(!state_with(&[]).only_key("a"));
    }

    fn add(event: &str, at: u64) -> Entry {
        Entry {
            op: Some(Op::Add),
            note: Some("a1".to_string()),
            ..update(event, at)
        }
    }

    #[test]
    fn an_add_that_ended_unknown_early_in_a_long_run_is_dated_by_its_end() {
        let then = crate::journal::now() - 5000;
        let much_later = Entry {
            event: "done".to_string(),
            run: Some(1),
            at: Some(then + 3000),
            ..Entry::default()
        };
        let state = state_with(&[
            add("intent", then),
            add("unknown", then + 1),
            much_later.clone(),
        ]);
        let pending = state.pending.values().next().unwrap();
        let (sent, took) = pending.attempt(Duration::from_secs(2));
        assert!(
            sent <= UNIX_EPOCH + Duration::from_secs(then + 2),
            "{sent:?}"
        );
        // Twice its time from its end: as sent at its end, taking two thirds of it.
        assert_eq!(took, Duration::from_secs(2) * 2 / 3);
        // Killed instead: from the run's last entry.
        let state = state_with(&[add("intent", then), much_later.clone()]);
        let pending = state.pending.values().next().unwrap();
        let (sent, _) = pending.attempt(Duration::from_secs(2));
        assert!(
            sent >= UNIX_EPOCH + Duration::from_secs(then + 3000),
            "{sent:?}"
        );
        // Killed, then a later run's look-up that could not tell (stopped): that ends nothing,
        // the attempt may have taken the whole timeout from the killed run's last entry.
        let looked = Entry {
            run: Some(2),
            ..add("unknown", then + 3010)
        };
        let state = state_with(&[add("intent", then), much_later.clone(), looked]);
        let pending = state.pending.values().next().unwrap();
        let (sent, took) = pending.attempt(Duration::from_secs(2));
        assert!(
            sent >= UNIX_EPOCH + Duration::from_secs(then + 3000),
            "{sent:?}"
        );
        assert_eq!(took, Duration::from_secs(2));
    }

    #[test]
    fn an_add_in_doubt_a_plan_found_settled_is_owned_and_no_change_of_the_run() {
        let then = crate::journal::now() - 5000;
        let run = Entry {
            event: "run".to_string(),
            run: Some(2),
            ..Entry::default()
        };
        let settled = Entry {
            event: "settled".to_string(),
            run: Some(2),
            op: Some(Op::Adopt),
            text: Some(Text {
                content: "found".to_string(),
                flagged: None,
            }),
            ..add("settled", then + 10)
        };
        let state = state_with(&[add("intent", then), run, settled]);
        assert!(state.pending.is_empty(), "{:?}", state.pending);
        assert_eq!(state.owned.get("r1").map(|o| o.note.as_str()), Some("a1"));
        assert!(state.undoable().is_none(), "a settle is no change to undo");
    }
}
