//! What one line of an input is: the [`NoteRecord`] a caller builds, and the [`Record`] the engine
//! reads (with its line number and its identity for the journal: a fingerprint of the call ID,
//! text and flag, and which copy of that line it is).

use std::collections::{HashMap, HashSet};

use happyrobot::{CallId, NewNote};

/// A note to add to a call: one line of an import.
///
/// ```
/// use happyrobot::{CallId, NewNote};
/// use happyrobot_bulk::NoteRecord;
///
/// let call: CallId = "65f1c0ffee0123456789abcd".parse()?;
/// let record = NoteRecord::new(call, NewNote::new("Driver confirmed pickup").flagged(true));
/// # let _ = record;
/// # Ok::<(), happyrobot::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NoteRecord {
    call_id: CallId,
    note: NewNote,
    key: Option<String>,
}

impl NoteRecord {
    /// The note `note` for the call `call_id`. The note's own ID, if it has one, is ignored: the
    /// engine chooses the IDs it sends, so that it can look every note up later.
    pub fn new(call_id: CallId, note: NewNote) -> Self {
        Self {
            call_id,
            note,
            key: None,
        }
    }

    /// The record's key for a sync ([`crate::Sync`]): what identifies it across runs when its
    /// text, flag or call changes (an external ID). Without one, a sync knows a record by its
    /// call. An import ignores it.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The record's key for a sync, if it has one.
    pub fn sync_key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The call.
    pub fn call_id(&self) -> &CallId {
        &self.call_id
    }

    /// The note.
    pub fn note(&self) -> &NewNote {
        &self.note
    }
}

/// What identifies one line to the journal: its fingerprint, and which occurrence of that
/// fingerprint it is (0 unless identical lines are sent on purpose).
pub(crate) type LineKey = (u64, u32);

/// One valid line of an input.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// The line (or a workbook's row) the record starts on, counting from 1; for records a caller
    /// built, its place in the list, from 1.
    pub(crate) line: u64,
    pub(crate) call_id: CallId,
    pub(crate) note: NewNote,
    /// A digest of the call ID, text and flag, to tell this line from another in the journal.
    pub(crate) fingerprint: u64,
    /// Which occurrence of this fingerprint in the input it is (0 for the first); set by
    /// [`Occurrences::key`] in the passes that send.
    pub(crate) occurrence: u32,
    /// The line's cells as read, for a results file (only when asked for).
    pub(crate) cells: Option<Vec<String>>,
    /// For an input whose lines name their own fields (JSON Lines), the names of `cells`.
    pub(crate) keys: Option<Vec<String>>,
}

impl Record {
    pub(crate) fn new(line: u64, call_id: CallId, note: NewNote) -> Self {
        let fingerprint = fingerprint(call_id.as_str(), note.content(), note.is_flagged());
        Self {
            line,
            call_id,
            note,
            fingerprint,
            occurrence: 0,
            cells: None,
            keys: None,
        }
    }

    /// Its journal key (after [`Occurrences::key`] set the occurrence).
    pub(crate) fn key(&self) -> LineKey {
        (self.fingerprint, self.occurrence)
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
/// separates the fields unambiguously. Journals written by earlier releases hold these values, so
/// they never change.
///
/// A call ID of 24 hexadecimal digits counts in lower case: releases up to 0.1 lower-cased such
/// IDs before they reached the fingerprint (and sent them so), and their journals must still know
/// a file whose IDs are typed in upper case. Any other ID counts exactly as given.
pub(crate) fn fingerprint(call_id: &str, content: &str, flagged: Option<bool>) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325;
    hash = if call_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        call_id
            .bytes()
            .fold(hash, |h, b| fnv1a(h, &[b.to_ascii_lowercase()]))
    } else {
        fnv1a(hash, call_id.as_bytes())
    };
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

/// Numbers the copies of a line an input holds more than once (only `allow_duplicates` lets them
/// through), so that each copy has its own journal key: the first copy is occurrence 0.
pub(crate) struct Occurrences<'a> {
    repeated: &'a HashSet<u64>,
    seen: HashMap<u64, u32>,
}

impl<'a> Occurrences<'a> {
    /// Numbering for an input whose repeated fingerprints are `repeated`.
    pub(crate) fn new(repeated: &'a HashSet<u64>) -> Self {
        Self {
            repeated,
            seen: HashMap::new(),
        }
    }

    /// Sets `record.occurrence` (records must come in input order) and returns its journal key.
    pub(crate) fn key(&mut self, record: &mut Record) -> LineKey {
        if self.repeated.contains(&record.fingerprint) {
            let seen = self.seen.entry(record.fingerprint).or_insert(0);
            record.occurrence = *seen;
            *seen += 1;
        }
        record.key()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "65f1c0ffee0123456789abcd";

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
    fn a_hexadecimal_call_id_counts_in_lower_case_and_any_other_as_given() {
        // The last release lower-cased 24 hex digits before fingerprinting: its journals must
        // still know a file that types them in upper case.
        assert_eq!(
            fingerprint("65F1C0FFEE0123456789ABCD", "hello", Some(true)),
            fingerprint(ID, "hello", Some(true))
        );
        assert_ne!(
            fingerprint("S90000000000000000000001", "hello", None),
            fingerprint("s90000000000000000000001", "hello", None)
        );
    }

    #[test]
    fn copies_of_a_repeated_line_are_numbered_in_order() {
        let call: CallId = ID.parse().unwrap();
        let mut a = Record::new(2, call.clone(), NewNote::new("a"));
        let mut b = Record::new(3, call.clone(), NewNote::new("a"));
        let mut c = Record::new(4, call, NewNote::new("c"));
        let repeated: HashSet<u64> = [a.fingerprint].into();
        let mut occurrences = Occurrences::new(&repeated);
        assert_eq!(occurrences.key(&mut a).1, 0);
        assert_eq!(occurrences.key(&mut b).1, 1);
        assert_eq!(occurrences.key(&mut c).1, 0);
    }
}
