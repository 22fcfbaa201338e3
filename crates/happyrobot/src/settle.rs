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
use crate::error::{Operation, Unsettled};
use crate::{CallId, Client, Control, Error, NewNote, NoteId, Response, SettleStep};

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

/// A note [`Client::add_note_settled`] added: the call after it, the note as the call shows it,
/// and how it was known to be added.
#[derive(Debug)]
#[non_exhaustive]
pub struct AddedNote {
    /// The call with the note on it, with the whole answer: that of the add, or of the read that
    /// found the note.
    pub call: Response<Call>,
    /// The ID the note is on the call under: the one it was (last) sent with, or, when the
    /// client chose none ([`client_note_ids(false)`](crate::ClientBuilder::client_note_ids)),
    /// the one the server gave it; `None` when neither is known.
    pub note_id: Option<String>,
    /// The note as the call shows it ([`added_note`]); `None` when the answer does not show it
    /// (the API answered success, so it was added all the same).
    pub note: Option<Note>,
    /// How it is known that the note was added.
    pub how: HowAdded,
}

/// How [`Client::add_note_settled`] knows that the note was added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HowAdded {
    /// The API answered the add with success.
    Answered,
    /// The add's outcome was unknown, and the note was found on the call by its ID.
    Found {
        /// Other IDs the same note is on the call under (see [`Settled::Found::copies`]).
        copies: Vec<String>,
    },
    /// The add's outcome was unknown, the note was certainly not on the call, and it was sent once
    /// more, under a new ID ([`AddedNote::note_id`]), which the API answered with success.
    SentAgain {
        /// The ID of the first send, which did not add it.
        first_id: String,
    },
}

impl AddedNote {
    fn answered(
        call: Response<Call>,
        sent_id: Option<String>,
        content: &str,
        how: HowAdded,
    ) -> Self {
        let note = added_note(&call, sent_id.as_deref(), content).cloned();
        let note_id = sent_id.or_else(|| note.as_ref().and_then(|n| n.id.clone()));
        Self {
            call,
            note_id,
            note,
            how,
        }
    }
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
        self.settle(call_id, pending, resend, control)
            .await
            .map(|(settled, _)| settled)
    }

    /// Until when a write with an unknown outcome, sent at `sent` and failed after `took` (the
    /// client's [`timeout`](Self::timeout) for one whose end nobody saw), may still land: by
    /// the rule [`settle_add`](Self::settle_add) waits by, three times as long after it was sent
    /// as it took to fail, and at least the settle delay
    /// ([`ClientBuilder::reconcile_settle`](crate::ClientBuilder::reconcile_settle)). For a
    /// caller that must not read a note as settled, or change it again, before an earlier change
    /// to it could have landed: a late update would undo the later one.
    pub fn late_apply_until(&self, sent: SystemTime, took: Duration) -> SystemTime {
        PendingAdd::new(String::new(), String::new())
            .sent(sent, took)
            .absent_from(self.shared().reconcile_settle)
    }

    /// Adds a note to a call and, when the outcome of the add is unknown (a timeout, a broken
    /// connection, a `5xx`), settles it as `happyrobot notes add` does: it looks the note up on its
    /// call by the ID it was sent with ([`settle_add`](Self::settle_add), which waits long enough
    /// for a gateway that gave up while the API went on), and sends it once more, with every field
    /// kept and under a new ID ([`NoteId::generate`]), only when it is certainly not there. It
    /// never sends the note a third time.
    ///
    /// `Ok` is a note that is on the call: [`AddedNote`] holds the call, the note and its ID, and
    /// [`HowAdded`] says how that is known. `Err` is the add's error when it certainly did not add
    /// the note, or the error of the second send; or, when the look could not tell, the add's
    /// error (its outcome still [`Outcome::Unknown`](crate::Outcome::Unknown)) with why:
    /// [`Error::unsettled`], and the add's own error in [`Error::unsettled_add`]. An
    /// [`AttemptObserver`](crate::AttemptObserver) in `control` is told each step
    /// ([`AttemptObserver::settle_step`](crate::AttemptObserver::settle_step)).
    ///
    /// A note without an ID is given one (unless the client was built with
    /// [`client_note_ids(false)`](crate::ClientBuilder::client_note_ids): such a note cannot be
    /// looked up, and an unknown outcome stays unknown).
    pub async fn add_note_settled(
        &self,
        call_id: &CallId,
        note: NewNote,
        control: &Control<'_>,
    ) -> Result<AddedNote, Error> {
        let note = match note.id_ref() {
            None if self.shared().client_note_ids => note.id(NoteId::generate().into_string()),
            _ => note,
        };
        let sent_id = note.id_ref().map(str::to_string);
        let error = match self.add_note_with(call_id, note.clone(), control).await {
            Ok(call) => {
                return Ok(AddedNote::answered(
                    call,
                    sent_id,
                    note.content(),
                    HowAdded::Answered,
                ));
            }
            Err(error) if error.outcome_unknown() => error,
            Err(error) => return Err(error),
        };
        control.settle_step(&SettleStep::Looking { error: &error });
        let (Some(pending), Some(first_id)) = (PendingAdd::from_error(&note, &error), sent_id)
        else {
            return Err(error.into_unsettled(Unsettled::NoNoteId));
        };
        let resend_id = NoteId::generate().into_string();
        let resend = note.clone().id(resend_id.clone());
        match self.settle(call_id, &pending, Some(resend), control).await {
            Ok((
                Settled::Found {
                    note: found,
                    copies,
                },
                Some(call),
            )) => {
                let note_id = found.id.clone().unwrap_or(first_id);
                control.settle_step(&SettleStep::Found { note_id: &note_id });
                Ok(AddedNote {
                    call,
                    note_id: Some(note_id),
                    note: Some(*found),
                    how: HowAdded::Found { copies },
                })
            }
            Ok((Settled::SentAgain(result), _)) => Ok(AddedNote::answered(
                (*result)?,
                Some(resend_id),
                note.content(),
                HowAdded::SentAgain { first_id },
            )),
            Ok((Settled::Undecided(why), _)) => {
                Err(error.into_unsettled(Unsettled::Undecided(why)))
            }
            // `Found` always comes with the call, and `Absent` only without a note to resend.
            Ok(_) => Err(error.into_unsettled(Unsettled::Undecided(Undecided::NotesNotListed))),
            Err(look) => Err(error.into_unsettled(Unsettled::LookFailed(look))),
        }
    }

    /// [`settle_add`](Self::settle_add), with the call as the look that found the note read it.
    async fn settle(
        &self,
        call_id: &CallId,
        pending: &PendingAdd,
        resend: Option<NewNote>,
        control: &Control<'_>,
    ) -> Result<(Settled, Option<Response<Call>>), Error> {
        let settle = self.shared().reconcile_settle;
        match self.look(call_id, pending, control).await? {
            (Sighting::Found(note, copies), call) => {
                return Ok((Settled::Found { note, copies }, Some(call)));
            }
            (Sighting::Unclear(why), _) => return Ok((Settled::Undecided(why), None)),
            (Sighting::Nothing, _) => {}
        }
        let wait = pending
            .absent_from(settle)
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .max(settle);
        if sleep_unless_stopped(wait, control).await.is_err() {
            return Err(Error::stopped(Operation::GetCall, None));
        }
        Ok(match self.look(call_id, pending, control).await? {
            (Sighting::Found(note, copies), call) => (Settled::Found { note, copies }, Some(call)),
            (Sighting::Unclear(why), _) => (Settled::Undecided(why), None),
            (Sighting::Nothing, _) => match resend {
                None => (Settled::Absent, None),
                Some(note) => {
                    if let Some(id) = note.id_ref() {
                        control.settle_step(&SettleStep::SendingAgain { resend_id: id });
                    }
                    (
                        Settled::SentAgain(Box::new(
                            self.add_note_with(call_id, note, control).await,
                        )),
                        None,
                    )
                }
            },
        })
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
        Ok(match self.look(call_id, pending, control).await?.0 {
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
    ) -> Result<(Sighting, Response<Call>), Error> {
        let response = self.get_call_with(call_id, control).await?;
        let sighting = sighting(&response, pending);
        Ok((sighting, response))
    }
}

/// What one look at `call` says about `pending`.
fn sighting(call: &Call, pending: &PendingAdd) -> Sighting {
    let Some(notes) = &call.notes else {
        return Sighting::Unclear(Undecided::NotesNotListed);
    };
    let mut found = notes.iter().filter(|n| {
        n.id.as_ref()
            .is_some_and(|id| pending.note_ids.contains(id))
    });
    if let Some(first) = found.next() {
        let copies = found.filter_map(|n| n.id.clone()).collect();
        return Sighting::Found(Box::new(first.clone()), copies);
    }
    if notes
        .iter()
        .any(|n| n.content.as_deref() == Some(pending.content.as_str()))
    {
        return Sighting::Unclear(Undecided::SameTextOtherId);
    }
    Sighting::Nothing
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
