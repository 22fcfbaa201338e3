//! Settling an add whose outcome is unknown, once, for everyone: look the note up on its call by
//! every ID it may have been sent with; call it absent only after a second look made late enough
//! for a gateway that gave up while the API went on; and only then send it once more, under a new
//! ID, so that a late first copy and the second one can still be told apart (and the extra one
//! removed) by whoever looks again later.
//!
//! [`Client::settle_add`] is what `happyrobot notes add` and the `happyrobot-bulk` engine call;
//! [`Client::find_note`] is the older look-only form.

use std::time::{Duration, SystemTime};

use happyrobot_sdk::types::{Call, Note};

use crate::client::sleep_unless_stopped;
use crate::error::Operation;
use crate::{CallId, Client, Control, Error, NewNote, Response};

/// The note an add just put on `call`, found in the call the API answered with: the note with the
/// ID it was sent with (`sent_id`), else the newest with its text (a server may assign IDs of its
/// own; the API lists notes oldest first). The one rule `happyrobot notes add` and the bulk engine
/// use to tell which note is theirs.
///
/// ```
/// use happyrobot::added_note;
/// use happyrobot::types::Call;
///
/// let call: Call = serde_json::from_str(r#"{"id": "65f1c0ffee0123456789abcd", "notes": [
///     {"id": "a", "content": "Dock 4"}, {"id": "b", "content": "Dock 4"}]}"#)?;
/// assert_eq!(added_note(&call, Some("a"), "Dock 4").unwrap().id.as_deref(), Some("a"));
/// assert_eq!(added_note(&call, Some("zz"), "Dock 4").unwrap().id.as_deref(), Some("b"));
/// assert!(added_note(&call, None, "Dock 5").is_none());
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn added_note<'a>(call: &'a Call, sent_id: Option<&str>, content: &str) -> Option<&'a Note> {
    let notes = call.notes.as_deref().unwrap_or_default();
    sent_id
        .and_then(|id| notes.iter().find(|n| n.id.as_deref() == Some(id)))
        .or_else(|| {
            notes
                .iter()
                .rev()
                .find(|n| n.content.as_deref() == Some(content))
        })
}

/// How many times as long as the failed attempt took a late apply may still come after it was
/// sent: a gateway that gave up after 3 s in front of an API that went on is given 9 s.
const LATE_APPLY_FACTOR: u32 = 3;

/// An add whose outcome is unknown, to settle with [`Client::settle_add`]: the IDs the note may be
/// on its call under, its text, and when it was sent.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingAdd {
    note_ids: Vec<String>,
    content: String,
    sent_at: SystemTime,
    took: Duration,
}

impl PendingAdd {
    /// A note sent just now with this ID and text.
    pub fn new(note_id: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            note_ids: vec![note_id.into()],
            content: content.into(),
            sent_at: SystemTime::now(),
            took: Duration::ZERO,
        }
    }

    /// The add of `note` that failed with `error` (its note ID and when the attempt went, from the
    /// error); `None` when the note went without an ID, which cannot be looked up.
    pub fn from_error(note: &NewNote, error: &Error) -> Option<Self> {
        let note_id = error.note_id().or(note.id_ref())?;
        let mut pending = Self::new(note_id, note.content());
        if let Some((sent_at, took)) = error.attempt() {
            pending = pending.sent(sent_at, took);
        }
        Some(pending)
    }

    /// Another ID the note may be on the call under (an earlier attempt's).
    pub fn also_id(mut self, note_id: impl Into<String>) -> Self {
        let note_id = note_id.into();
        if !self.note_ids.contains(&note_id) {
            self.note_ids.push(note_id);
        }
        self
    }

    /// When the attempt in doubt was sent and how long it took to fail.
    pub fn sent(mut self, at: SystemTime, took: Duration) -> Self {
        self.sent_at = at;
        self.took = took;
        self
    }

    /// The IDs looked for.
    pub fn note_ids(&self) -> &[String] {
        &self.note_ids
    }

    /// The earliest instant a look that finds nothing may call the note absent.
    fn absent_from(&self, settle: Duration) -> SystemTime {
        let late = self.took.saturating_mul(LATE_APPLY_FACTOR).max(settle);
        self.sent_at.checked_add(late).unwrap_or(self.sent_at)
    }
}

/// What [`Client::settle_add`] found out, or did.
#[derive(Debug)]
#[non_exhaustive]
pub enum Settled {
    /// The note is on the call under one of its IDs: it was added.
    Found {
        /// The note as the call shows it.
        note: Box<Note>,
        /// Other IDs of the same [`PendingAdd`] that are on the call too: copies of the note (a
        /// late first attempt, for instance). The caller decides whether to delete them.
        copies: Vec<String>,
    },
    /// Certainly not on the call, and no note was given to send again.
    Absent,
    /// Certainly not on the call: the note given was sent once more, and this is how that went.
    SentAgain(Box<Result<Response<Call>, Error>>),
    /// It cannot be told; nothing was sent.
    Undecided(Undecided),
}

/// Why [`Client::settle_add`] could not tell whether a note was added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Undecided {
    /// The call holds a note with the same text under another ID: it may be this one, from a
    /// server that does not keep client-chosen IDs.
    SameTextOtherId,
    /// The call's answer lists no notes at all.
    NotesNotListed,
}

impl Undecided {
    /// A phrase for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SameTextOtherId => {
                "the call holds a note with the same text under another ID (a server that does \
                 not keep client note IDs)"
            }
            Self::NotesNotListed => "the call's answer lists no notes",
        }
    }
}

/// What [`Client::find_note`] found out.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum NoteLookup {
    /// The note is on the call: it was added.
    Found(Box<Note>),
    /// Neither its ID nor its text is on the call, twice, a settle delay apart: it was not added,
    /// and sending it again (with the same ID) adds it once.
    Absent,
    /// It cannot be told: a note with the same text but another ID is there, or the call's answer
    /// lists no notes. The outcome stays unknown.
    Undecided,
}

/// One look at the call.
#[derive(Debug)]
enum Sighting {
    Found(Box<Note>, Vec<String>),
    Unclear(Undecided),
    Nothing,
}

impl Client {
    /// Settles an add whose outcome is unknown: finds out whether the note is on its call and, only
    /// when it certainly is not, sends `resend` once (give it a new note ID: see below).
    ///
    /// It looks at the call at once: a note with one of the IDs of `pending` is
    /// [`Settled::Found`]; a note with the same text under another ID, or an answer without notes,
    /// is [`Settled::Undecided`]. When neither shows, it looks once more, no earlier than
    /// [`reconcile_settle`](crate::ClientBuilder::reconcile_settle) (2 s) after the first look and
    /// no earlier than three times as long after the add was sent as it took to fail (a gateway
    /// that answered `504` after 3 s, while the API behind it went on, is given 9 s). Nothing
    /// then is [`Settled::Absent`], and `resend`, if given, is sent: [`Settled::SentAgain`].
    ///
    /// Send again under a **new** note ID: then an apply later still than that (a queue, a stalled
    /// backend) leaves two notes that can be told apart, and a later `settle_add` with both IDs
    /// reports the extra one in [`Settled::Found::copies`]. With the same ID, a server that does not
    /// refuse a repeated ID would hold two notes nobody can tell apart.
    ///
    /// The reads are retried as for [`get_call`](Self::get_call); `Err` is a read that failed (or
    /// a stop through `control`), after which the outcome is still unknown.
    pub async fn settle_add(
        &self,
        call_id: &CallId,
        pending: &PendingAdd,
        resend: Option<NewNote>,
        control: &Control<'_>,
    ) -> Result<Settled, Error> {
        let settle = self.shared().reconcile_settle;
        match self.look(call_id, pending, control).await? {
            Sighting::Found(note, copies) => return Ok(Settled::Found { note, copies }),
            Sighting::Unclear(why) => return Ok(Settled::Undecided(why)),
            Sighting::Nothing => {}
        }
        let wait = pending
            .absent_from(settle)
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .max(settle);
        if sleep_unless_stopped(wait, control).await.is_err() {
            return Err(Error::stopped(Operation::GetCall, None));
        }
        match self.look(call_id, pending, control).await? {
            Sighting::Found(note, copies) => Ok(Settled::Found { note, copies }),
            Sighting::Unclear(why) => Ok(Settled::Undecided(why)),
            Sighting::Nothing => match resend {
                None => Ok(Settled::Absent),
                Some(note) => Ok(Settled::SentAgain(Box::new(
                    self.add_note_with(call_id, note, control).await,
                ))),
            },
        }
    }

    /// Looks at the call once: [`Settled::Found`] (with any copies) when a note with one of the
    /// IDs of `pending` is there, [`Settled::Undecided`] when one with its text under another ID
    /// is (or the answer lists no notes), else [`Settled::Absent`], which here means only "not
    /// there now": an add in flight may still arrive. For checking a note already known to be
    /// added for copies (a late first attempt); to settle an unknown outcome use
    /// [`settle_add`](Self::settle_add).
    pub async fn check_note(
        &self,
        call_id: &CallId,
        pending: &PendingAdd,
        control: &Control<'_>,
    ) -> Result<Settled, Error> {
        Ok(match self.look(call_id, pending, control).await? {
            Sighting::Found(note, copies) => Settled::Found { note, copies },
            Sighting::Unclear(why) => Settled::Undecided(why),
            Sighting::Nothing => Settled::Absent,
        })
    }

    /// Finds out whether a note whose add had an unknown outcome is on the call, by the ID it was
    /// sent with ([`Error::note_id`]) and its text.
    ///
    /// It never guesses. The note is [`NoteLookup::Found`] when a note with its ID is on the call.
    /// It is [`NoteLookup::Absent`] only when no note has its ID or its text, twice, with the
    /// settle delay ([`ClientBuilder::reconcile_settle`](crate::ClientBuilder::reconcile_settle))
    /// between the two looks. Otherwise ([`NoteLookup::Undecided`]): a note with the same text but
    /// another ID may be this one, from a server that does not keep client IDs, or the answer did
    /// not list the notes.
    ///
    /// It does not know when the add was sent, so it cannot wait for a gateway that gave up while
    /// the API went on: prefer [`settle_add`](Self::settle_add) with [`PendingAdd::from_error`].
    pub async fn find_note(
        &self,
        call_id: &CallId,
        note_id: &str,
        content: &str,
    ) -> Result<NoteLookup, Error> {
        let pending = PendingAdd::new(note_id, content);
        Ok(
            match self
                .settle_add(call_id, &pending, None, &Control::new())
                .await?
            {
                Settled::Found { note, .. } => NoteLookup::Found(note),
                Settled::Undecided(_) => NoteLookup::Undecided,
                _ => NoteLookup::Absent,
            },
        )
    }

    async fn look(
        &self,
        call_id: &CallId,
        pending: &PendingAdd,
        control: &Control<'_>,
    ) -> Result<Sighting, Error> {
        let call = self.get_call_with(call_id, control).await?.into_inner();
        let Some(notes) = call.notes else {
            return Ok(Sighting::Unclear(Undecided::NotesNotListed));
        };
        let mut found = notes.iter().filter(|n| {
            n.id.as_ref()
                .is_some_and(|id| pending.note_ids.contains(id))
        });
        if let Some(first) = found.next() {
            let copies = found.filter_map(|n| n.id.clone()).collect();
            return Ok(Sighting::Found(Box::new(first.clone()), copies));
        }
        if notes
            .iter()
            .any(|n| n.content.as_deref() == Some(pending.content.as_str()))
        {
            return Ok(Sighting::Unclear(Undecided::SameTextOtherId));
        }
        Ok(Sighting::Nothing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absence_waits_for_a_late_apply_in_proportion_to_the_attempt() {
        let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let settle = Duration::from_secs(2);
        let quick = PendingAdd::new("a", "t").sent(sent, Duration::from_millis(5));
        assert_eq!(quick.absent_from(settle), sent + settle);
        let gateway = PendingAdd::new("a", "t").sent(sent, Duration::from_secs(3));
        assert_eq!(gateway.absent_from(settle), sent + Duration::from_secs(9));
        let huge = PendingAdd::new("a", "t").sent(sent, Duration::MAX);
        assert!(huge.absent_from(settle) >= sent, "no overflow, no panic");
    }

    #[test]
    fn ids_are_kept_once() {
        let pending = PendingAdd::new("a", "t").also_id("b").also_id("a");
        assert_eq!(pending.note_ids(), ["a", "b"]);
    }
}
