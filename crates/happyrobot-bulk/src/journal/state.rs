//! What a journal says about one destination: each line's standing, the note IDs it may be on its
//! call under, and where damage leaves it in doubt.
//!
//! Entries stand on their own (version 3): each names its destination and carries its place
//! (`seq`) and a checksum. The entry with the highest place decides a line's state, whatever order
//! the file holds them in. A damaged entry costs at most what it said: if its fingerprint still
//! reads, its line is in doubt from that place on; if not (or an entry is missing: a gap in the
//! places), every line whose standing it might have changed is in doubt: every line last written
//! before it, and every line never written at all. A line in doubt is looked up on its call before
//! anything is sent for it, by every note ID it may have been sent with, which are derived from the
//! journal's salt and so can be told even when the entry that named one is gone.
//!
//! Version 2 journals (written before) are read as they were: a `run` entry says which destination
//! the entries after it are about. Entries that follow damage where that `run` entry was, whose
//! destination cannot be told, put their lines in doubt instead of being ignored.

use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use super::entry::{self, Entry, Event, Read};
use super::{Destination, JournalError, VERSION, ids};
use crate::record::LineKey;

/// Where a line stands according to the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineState {
    /// Added: never sent again.
    Done,
    /// Certainly not added: sent again on a re-run.
    Failed,
    /// Maybe added: looked up on its call (reconciled) before anything else. `interrupted` when
    /// the run stopped while the request was in flight (a `start` with no outcome).
    Unknown { interrupted: bool },
    /// Added, then deleted by an undo: an import sends it again.
    Undone,
}

/// A line's standing: its state, if the journal mentions it, and whether damage leaves it in doubt
/// (then it must be looked up before anything is sent for it, whatever its state says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Standing {
    pub(crate) state: Option<LineState>,
    pub(crate) in_doubt: bool,
}

/// An entry's place in the journal: version 2 entries by their order in the file, all before every
/// version 3 entry, which go by their `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct Pos(u8, u64);

#[derive(Debug, Clone, Copy, Default)]
struct LineInfo {
    state: Option<LineState>,
    /// The place of the entry that set `state`.
    pos: Pos,
    /// The highest send (`k`) any entry of the line names.
    max_k: Option<u32>,
    /// The send a new send may use again: the last entry was a failure that certainly was not
    /// applied, so its note ID is on no call.
    reuse_k: Option<u32>,
    /// The send that was found (or answered) added.
    done_k: Option<u32>,
    /// The line's salt, as an index into `JournalState::salts`.
    salt: Option<u16>,
    /// When the entry that set `state` was written (seconds since the epoch, as 32 bits: enough
    /// until 2106), and for an `unknown` entry how long its attempt took (milliseconds).
    at: u32,
    took_ms: Option<u32>,
    /// Its state came from an undo that counted its note gone without deleting it (a `404` for
    /// the note or its call), and no add has been seen since: an import looks before it sends.
    gone_unseen: bool,
}

/// What must be kept as text about a line: note IDs that cannot be derived (version 2's, or one a
/// server assigned), copies deleted, and the reason of a failure for a results file.
#[derive(Debug, Clone, Default)]
struct LineNotes {
    ids: Vec<String>,
    done_id: Option<String>,
    removed: Vec<String>,
    reason: Option<String>,
}

/// What to keep beyond what an import needs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Keep {
    /// The note IDs of lines that are done (an undo deletes them).
    pub(crate) done_notes: bool,
    /// The reason of every failed or unknown line (a results file lists them).
    pub(crate) reasons: bool,
}

/// What a journal says about one destination.
#[derive(Debug, Default)]
pub(crate) struct JournalState {
    lines: HashMap<LineKey, LineInfo>,
    notes: HashMap<LineKey, LineNotes>,
    keep: Keep,
    salts: Vec<String>,
    /// The content hashes of the inputs imported into this destination.
    pub(crate) contents: BTreeSet<String>,
    /// The other base URLs the journal records, whose entries are ignored.
    pub(crate) other_destinations: BTreeSet<String>,
    /// Whether earlier runs to this destination used another API key.
    pub(crate) other_key: bool,
    /// Whether a note the journal records as added may have been added under another API key
    /// than this one (its run used another, or its run's entry cannot be read).
    pub(crate) added_by_other_key: bool,
    /// The place of each `run` entry of this destination → whether it used this API key.
    run_keys: HashMap<u64, bool>,
    /// Journal lines that could not be read (their numbers).
    pub(crate) damaged: Vec<u64>,
    /// The latest place of damage that cannot be tied to a line.
    blind: Option<Pos>,
    /// Fingerprints that damaged entries still name, with the latest such place.
    doubtful: HashMap<u64, Pos>,
    /// The highest `seq` in the file, damaged entries included.
    pub(crate) max_seq: u64,
    /// The place of the last `run` entry for this destination (version 3).
    last_run: Option<u64>,
    /// The time of the latest entry (seconds since the epoch): about when the last run stopped.
    last_at: u64,
    /// Whether the journal has line entries for this destination (or that may be).
    pub(crate) has_lines: bool,
    /// The length of the complete entries, when the last one was cut short by a kill mid-write.
    pub(crate) truncate_to: Option<u64>,
    /// Whether the last entry is complete but lacks its newline.
    pub(crate) needs_newline: bool,
}

/// A growable set of `seq` numbers.
#[derive(Default)]
struct Seen(Vec<u64>);

impl Seen {
    fn insert(&mut self, seq: u64) {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        // A damaged huge `seq` must not make the set huge: places past a billion are not tracked.
        if word > (1 << 24) {
            return;
        }
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    fn contains(&self, seq: u64) -> bool {
        let word = (seq / 64) as usize;
        self.0.get(word).is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }
}

/// What reading a journal keeps from one entry to the next.
#[derive(Default)]
struct Scan {
    /// The destination being read for.
    dest_id: String,
    /// The places of the version 3 entries read.
    seen: Seen,
    /// Places that entries name as their run's `run` entry.
    runs: std::collections::HashSet<u64>,
    /// Places of damage that nothing could tie to a line: damage at a `run` entry's place costs no
    /// line anything.
    blind_at: Vec<u64>,
    /// Version 2: whether the entries being read belong to the destination, as the last `run`
    /// entry said (`None`: no readable `run` entry came before them).
    v2_ours: Option<bool>,
    /// The place of the last whole version 3 entry, for damage between two of them.
    last_seq: u64,
}

impl Scan {
    /// A whole version 3 entry: its place.
    fn checked(&mut self, state: &mut JournalState, entry: &Entry) -> Pos {
        let seq = entry.seq.unwrap_or(0);
        self.seen.insert(seq);
        self.runs.extend(entry.r);
        state.max_seq = state.max_seq.max(seq);
        self.last_seq = seq;
        Pos(1, seq)
    }

    /// A damaged entry (entry `number` of the file) that is not the last: what it may have said
    /// about a line is in doubt.
    fn damaged(&mut self, state: &mut JournalState, salvage: &entry::Salvage, number: u64) {
        state.damaged.push(number);
        if let Some(seq) = salvage.seq {
            self.seen.insert(seq);
            state.max_seq = state.max_seq.max(seq);
        }
        let v3 = salvage.seq.is_some() || salvage.dest.is_some() || self.last_seq > 0;
        let pos = match salvage.seq {
            Some(seq) => Pos(1, seq),
            None if v3 => Pos(1, self.last_seq + 1),
            None => Pos(0, number),
        };
        let foreign = salvage.dest.as_ref().is_some_and(|d| *d != self.dest_id)
            || (!v3 && self.v2_ours == Some(false));
        if foreign || salvage.event.as_deref() == Some("run") {
            // Another destination's entry, or a `run` entry: no line of this destination
            // depends on it.
        } else if let Some(fp) = salvage.fp {
            let place = state.doubtful.entry(fp).or_default();
            *place = (*place).max(pos);
            state.has_lines = true;
        } else if v3 {
            self.blind_at.push(pos.1);
        }
        // Damage in a version 2 journal that names no line cannot be tied to anything and, as
        // version 2 did, is reported and skipped.
    }

    /// A version 2 entry (entry `number` of the file).
    fn unchecked(
        &mut self,
        state: &mut JournalState,
        entry: &Entry,
        number: u64,
        destination: &Destination,
        path: &Path,
    ) -> Result<(), JournalError> {
        let pos = Pos(0, number);
        if entry.event == Some(Event::Run) {
            self.v2_ours = Some(state.take_v2_run(entry, destination, path)?);
            return Ok(());
        }
        let Some(key) = entry.key() else {
            return Ok(());
        };
        match self.v2_ours {
            Some(true) => state.apply(entry, key, pos),
            Some(false) => {}
            // No `run` entry says where it went: its line is in doubt.
            None => {
                let place = state.doubtful.entry(key.0).or_default();
                *place = (*place).max(pos);
                state.has_lines = true;
                if let Some(id) = &entry.note_id {
                    state.note_ids(key).push(id.clone());
                }
            }
        }
        Ok(())
    }

    /// After the last entry: a missing place is an entry that is gone, and whatever it said is in
    /// doubt, unless it was a `run` entry (another entry names it as its run's).
    fn finish(self, state: &mut JournalState) {
        let gap = (1..=state.max_seq.min(1 << 30))
            .rev()
            .find(|s| !self.seen.contains(*s) && !self.runs.contains(s));
        let damage = self
            .blind_at
            .into_iter()
            .filter(|s| !self.runs.contains(s))
            .max();
        if let Some(at) = gap.max(damage) {
            state.blind = Some(Pos(1, at));
            state.has_lines = true;
        }
    }
}

impl JournalState {
    /// Reads a journal for `destination`; an absent or empty file is an empty journal. Anything
    /// but a regular file is refused.
    pub(crate) fn load(
        path: &Path,
        destination: &Destination,
        keep: Keep,
    ) -> Result<Self, JournalError> {
        let file = match super::file::open_regular(path, OpenOptions::new().read(true)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Self {
                    keep,
                    ..Self::default()
                });
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                return Err(JournalError::NotRegular(path.to_path_buf(), e));
            }
            Err(e) => return Err(JournalError::Io(path.to_path_buf(), e)),
        };
        Self::read(BufReader::new(file), path, destination, keep)
    }

    /// Reads a journal from the start of an open file.
    pub(crate) fn read_file(
        file: &File,
        path: &Path,
        destination: &Destination,
        keep: Keep,
    ) -> Result<Self, JournalError> {
        Self::read(BufReader::new(file), path, destination, keep)
    }

    fn read(
        mut reader: impl BufRead,
        path: &Path,
        destination: &Destination,
        keep: Keep,
    ) -> Result<Self, JournalError> {
        let io_error = |e| JournalError::Io(path.to_path_buf(), e);
        let mut state = Self {
            keep,
            ..Self::default()
        };
        let mut scan = Scan {
            dest_id: destination.id(),
            ..Scan::default()
        };
        let mut buffer = Vec::new();
        let (mut offset, mut number) = (0u64, 0u64);
        loop {
            buffer.clear();
            let read = reader.read_until(b'\n', &mut buffer).map_err(io_error)?;
            if read == 0 {
                break;
            }
            number += 1;
            let complete = buffer.last() == Some(&b'\n');
            let line = if complete {
                &buffer[..buffer.len() - 1]
            } else {
                &buffer[..]
            };
            match entry::read(line) {
                Read::Blank => state.needs_newline = !complete && !line.is_empty(),
                // A cut-off last entry is what a kill in the middle of a write leaves. Its request
                // was never sent (entries are written before sending), so it is dropped.
                Read::Damaged(_) if !complete => {
                    state.truncate_to = Some(offset);
                    break;
                }
                Read::Damaged(salvage) => {
                    scan.damaged(&mut state, &salvage, number);
                    state.needs_newline = false;
                }
                Read::Checked(entry) => {
                    let pos = scan.checked(&mut state, &entry);
                    let ours = entry.dest.as_deref() == Some(scan.dest_id.as_str());
                    state.take(&entry, pos, ours, destination, path)?;
                    state.needs_newline = !complete;
                }
                Read::Unchecked(entry) => {
                    scan.unchecked(&mut state, &entry, number, destination, path)?;
                    state.needs_newline = !complete;
                }
            }
            offset += read as u64;
        }
        scan.finish(&mut state);
        Ok(state)
    }

    /// A whole version 3 entry.
    fn take(
        &mut self,
        entry: &Entry,
        pos: Pos,
        ours: bool,
        destination: &Destination,
        path: &Path,
    ) -> Result<(), JournalError> {
        if entry.event == Some(Event::Run) {
            let version = entry.version.unwrap_or(VERSION);
            if version > VERSION {
                return Err(JournalError::Version {
                    path: path.to_path_buf(),
                    version,
                });
            }
            if ours {
                self.take_run(entry, destination);
                self.last_run = self.last_run.max(Some(pos.1));
                if let Some(seq) = entry.seq {
                    let same = entry.key.as_deref() == Some(destination.key_hash.as_str());
                    self.run_keys.insert(seq, same);
                }
            } else if let Some(url) = &entry.base_url {
                self.other_destinations.insert(super::normalize_url(url));
            }
            return Ok(());
        }
        if ours && let Some(key) = entry.key() {
            self.apply(entry, key, pos);
        }
        Ok(())
    }

    /// A version 2 `run` entry: refused if written by another version, else it says which
    /// destination the entries after it are about.
    fn take_v2_run(
        &mut self,
        entry: &Entry,
        destination: &Destination,
        path: &Path,
    ) -> Result<bool, JournalError> {
        let version = entry.version.unwrap_or(1);
        if version != 2 {
            return Err(JournalError::Version {
                path: path.to_path_buf(),
                version,
            });
        }
        let url = entry.base_url.as_deref().map(super::normalize_url);
        let ours = url.as_deref() == Some(destination.base_url.as_str());
        if ours {
            self.take_run(entry, destination);
        } else if let Some(url) = url {
            self.other_destinations.insert(url);
        }
        Ok(ours)
    }

    fn take_run(&mut self, entry: &Entry, destination: &Destination) {
        if entry.key.as_deref() != Some(destination.key_hash.as_str()) {
            self.other_key = true;
        }
        self.contents.extend(entry.content.clone());
        if let Some(salt) = &entry.j {
            self.salt_index(salt);
        }
    }

    fn salt_index(&mut self, salt: &str) -> u16 {
        match self.salts.iter().position(|s| s == salt) {
            Some(index) => index as u16,
            None => {
                self.salts.push(salt.to_string());
                (self.salts.len() - 1) as u16
            }
        }
    }

    fn note_ids(&mut self, key: LineKey) -> &mut Vec<String> {
        &mut self.notes.entry(key).or_default().ids
    }

    /// An entry of this destination about line `key`.
    fn apply(&mut self, entry: &Entry, key: LineKey, pos: Pos) {
        let Some(event) = entry.event else {
            return;
        };
        self.last_at = self.last_at.max(entry.at);
        self.has_lines = true;
        let salt = entry.j.as_deref().map(|s| self.salt_index(s));
        let info = self.lines.entry(key).or_default();
        if let Some(k) = entry.k {
            info.max_k = info.max_k.max(Some(k));
        }
        if event == Event::Removed {
            if let Some(id) = &entry.note_id {
                self.notes.entry(key).or_default().removed.push(id.clone());
            }
            return;
        }
        let latest = info.state.is_none() || pos > info.pos;
        if latest {
            info.state = Some(match event {
                Event::Start => LineState::Unknown { interrupted: true },
                Event::Done => LineState::Done,
                Event::Failed => LineState::Failed,
                Event::Unknown => LineState::Unknown { interrupted: false },
                Event::Undone => LineState::Undone,
                Event::Run | Event::Removed => return,
            });
            info.pos = pos;
            match event {
                Event::Undone => info.gone_unseen = entry.reason.is_some(),
                Event::Done => info.gone_unseen = false,
                _ => {}
            }
            info.at = u32::try_from(entry.at).unwrap_or(u32::MAX);
            info.took_ms = entry.took.map(|t| u32::try_from(t).unwrap_or(u32::MAX));
            info.reuse_k = match event {
                Event::Failed if entry.kind.as_deref() != Some("absent") => entry.k,
                _ => None,
            };
            if salt.is_some() {
                info.salt = salt;
            }
            if event == Event::Done {
                info.done_k = entry.k;
                let by_this_key = entry.r.and_then(|r| self.run_keys.get(&r)) == Some(&true);
                self.added_by_other_key |= !by_this_key;
            }
        } else if info.salt.is_none() {
            info.salt = salt;
        }
        let info = *info;
        self.keep_text(entry, event, key, info, latest);
    }

    /// Keeps what cannot be derived again: note IDs of version 2 (while the line is in doubt, or
    /// done for an undo), an ID a server chose itself, and reasons for a results file.
    fn keep_text(
        &mut self,
        entry: &Entry,
        event: Event,
        key: LineKey,
        info: LineInfo,
        latest: bool,
    ) {
        let derived = match (info.salt, entry.k) {
            (Some(salt), Some(k)) => Some(ids::note_id(&self.salts[usize::from(salt)], key, k)),
            _ => None,
        };
        let keep = self.keep;
        let notes = self.notes.entry(key).or_default();
        if let Some(id) = &entry.note_id
            && derived.as_deref() != Some(id.as_str())
            && !notes.ids.contains(id)
        {
            notes.ids.push(id.clone());
        }
        if latest {
            if event == Event::Done {
                notes.done_id = entry
                    .note_id
                    .clone()
                    .filter(|id| derived.as_deref() != Some(id.as_str()))
                    .or_else(|| match (derived.is_none(), notes.ids.last()) {
                        // Version 2: the ID it was last sent with.
                        (true, Some(last)) => Some(last.clone()),
                        _ => None,
                    });
            }
            notes.reason = match event {
                Event::Failed | Event::Unknown | Event::Undone if keep.reasons => {
                    entry.reason.clone()
                }
                _ => None,
            };
        }
        // Version 2 IDs of a line no longer in doubt (and not wanted for an undo) are dropped, so
        // that memory follows the lines in doubt, as it did.
        let in_doubt = matches!(info.state, Some(LineState::Unknown { .. }));
        let done_kept = info.state == Some(LineState::Done) && keep.done_notes;
        if entry.k.is_none() && !in_doubt && !done_kept {
            notes.ids.clear();
            notes.done_id = None;
        }
        if notes.ids.is_empty()
            && notes.done_id.is_none()
            && notes.removed.is_empty()
            && notes.reason.is_none()
        {
            self.notes.remove(&key);
        }
    }

    /// A line's standing.
    pub(crate) fn standing(&self, key: LineKey) -> Standing {
        let info = self.lines.get(&key);
        let damage = self.blind.max(self.doubtful.get(&key.0).copied());
        let in_doubt = match (info, damage) {
            (_, None) => false,
            (Some(info), Some(at)) if info.state.is_some() => info.pos < at,
            (_, Some(_)) => true,
        };
        Standing {
            state: info.and_then(|i| i.state),
            in_doubt,
        }
    }

    /// Every note ID line `key` was or may have been sent with, copies already deleted left out.
    pub(crate) fn candidates(&self, key: LineKey) -> Vec<String> {
        let info = self.lines.get(&key).copied().unwrap_or_default();
        let in_doubt = self.standing(key).in_doubt;
        let mut ids: Vec<String> = Vec::new();
        let mut push = |id: String| {
            if !ids.contains(&id) {
                ids.push(id);
            }
        };
        match (info.salt, info.max_k) {
            (Some(salt), max_k) => {
                let salt = &self.salts[usize::from(salt)];
                // A damaged entry may have been one more send.
                let last = max_k.map_or(0, |k| k + u32::from(in_doubt));
                for k in 0..=last {
                    push(ids::note_id(salt, key, k));
                }
            }
            // A line the journal does not tie to a salt, in doubt: its first send under any salt.
            (None, _) if in_doubt => {
                for salt in &self.salts {
                    push(ids::note_id(salt, key, 0));
                }
            }
            _ => {}
        }
        if let Some(notes) = self.notes.get(&key) {
            for id in &notes.ids {
                push(id.clone());
            }
            ids.retain(|id| !notes.removed.contains(id));
        }
        ids
    }

    /// The ID of the note a done line was added as, for an undo.
    pub(crate) fn done_id(&self, key: LineKey) -> Option<String> {
        let info = self.lines.get(&key)?;
        if let Some(id) = self.notes.get(&key).and_then(|n| n.done_id.clone()) {
            return Some(id);
        }
        let salt = self.salts.get(usize::from(info.salt?))?;
        Some(ids::note_id(salt, key, info.done_k?))
    }

    /// Which send a new send of line `key` is: the last one again when it certainly failed, else
    /// one more than any the journal names.
    pub(crate) fn next_k(&self, key: LineKey) -> u32 {
        match self.lines.get(&key) {
            Some(info) if info.reuse_k.is_some() && info.salt.is_some() => {
                info.reuse_k.unwrap_or(0)
            }
            Some(info) => info.max_k.map_or(0, |k| k + 1),
            None => 0,
        }
    }

    /// Whether line `key`'s note was last counted gone by an undo that did not delete it (see
    /// `LineInfo::gone_unseen`): the API's word, which a server in trouble may get wrong.
    pub(crate) fn gone_unseen(&self, key: LineKey) -> bool {
        self.lines.get(&key).is_some_and(|info| info.gone_unseen)
    }

    /// How many note IDs line `key` was sent with: more than one means a copy may be on its call.
    pub(crate) fn sends(&self, key: LineKey) -> usize {
        let info = self.lines.get(&key).copied().unwrap_or_default();
        match info.salt {
            // An ID a server chose itself is no second send.
            Some(_) => info.max_k.map_or(0, |k| k as usize + 1),
            None => self.notes.get(&key).map_or(0, |n| n.ids.len()),
        }
    }

    /// When the attempt in doubt of line `key` was sent (seconds since the epoch), and how long it
    /// took to fail: as the journal says, or, for one in flight when its run stopped, until the
    /// run's last entry (about when it stopped), a second more for the entries' whole seconds.
    pub(crate) fn attempt(&self, key: LineKey) -> (u64, Option<std::time::Duration>) {
        let info = self.lines.get(&key).copied().unwrap_or_default();
        if info.at == 0 {
            // No entry with a time: a line damage leaves in doubt that the journal never names,
            // or one of a journal without times. Nothing says it was sent lately.
            return (0, Some(std::time::Duration::ZERO));
        }
        let took = match info.took_ms {
            Some(ms) => std::time::Duration::from_millis(u64::from(ms)),
            None => {
                std::time::Duration::from_secs(self.last_at.saturating_sub(u64::from(info.at)) + 1)
            }
        };
        let sent = u64::from(info.at).saturating_sub(took.as_secs());
        (sent, Some(took))
    }

    /// The place of the last `run` entry for this destination, when it is a version 3 entry.
    pub(crate) fn last_run_seq(&self) -> Option<u64> {
        self.last_run
    }

    /// The place of the entry that decides line `key`'s state, when it is a version 3 entry.
    pub(crate) fn decided_at(&self, key: LineKey) -> Option<u64> {
        let info = self.lines.get(&key)?;
        (info.pos.0 == 1).then_some(info.pos.1)
    }

    /// The reason the journal gives for a failed or unknown line (when reasons were kept).
    pub(crate) fn reason(&self, key: LineKey) -> Option<&str> {
        self.notes.get(&key)?.reason.as_deref()
    }

    /// The salt new entries are written with: the newest the journal holds for this
    /// destination, else a new one.
    pub(crate) fn salt(&self) -> String {
        self.salts.last().cloned().unwrap_or_else(ids::new_salt)
    }

    /// The lines the journal mentions that `sorted` (an input's fingerprints, sorted; a
    /// fingerprint there n times is occurrences 0 to n - 1) does not have.
    pub(crate) fn missing_from(&self, sorted: &[u64]) -> Vec<LineKey> {
        let mut missing: Vec<LineKey> = self
            .lines
            .keys()
            .filter(|(fp, n)| {
                let count =
                    sorted.partition_point(|x| x <= fp) - sorted.partition_point(|x| x < fp);
                *n as usize >= count
            })
            .copied()
            .collect();
        missing.sort_unstable();
        missing
    }

    /// How many lines the journal mentions for this destination.
    pub(crate) fn len(&self) -> usize {
        self.lines.len()
    }
}
