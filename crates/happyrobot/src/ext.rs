//! Typed IDs of what the API sent: [`CallExt::call_id`] and [`NoteExt::note_id`] read a call's or a
//! note's ID as the [`CallId`] or [`NoteId`] the client's methods take, so that code that lists
//! calls and then acts on them never parses an ID itself.

use happyrobot_sdk::types::{Call, Note};

use crate::{CallId, Error, NoteId};

/// The typed ID of a call the API sent ([`Call`], and through `Deref` a
/// [`Response<Call>`](crate::Response) or a listed call).
///
/// ```
/// use happyrobot::CallExt as _;
/// use happyrobot::types::Call;
///
/// let call: Call = serde_json::from_str(r#"{"id": "65f1c0ffee0123456789abcd"}"#)?;
/// let id = call.call_id()?; // ready for client.add_note(&id, ...)
/// assert_eq!(id.as_str(), "65f1c0ffee0123456789abcd");
///
/// // An ID that breaks the rule is an error, never a panic.
/// let odd: Call = serde_json::from_str(r#"{"id": "../../admin"}"#)?;
/// let error = odd.call_id().unwrap_err();
/// assert!(error.is_invalid_input());
/// assert!(error.to_string().contains("The API sent this ID"), "{error}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait CallExt: sealed::Sealed {
    /// The call's ID as a [`CallId`], by the one rule every `CallId` follows (24 ASCII letters,
    /// digits, `-` or `_`), so that it can be given to any method of the client.
    ///
    /// Every call ID the API has sent follows it. One that does not (another length, a `/`, a
    /// space) cannot be put in a request's path as it is, so it is an error of kind
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) that says the API sent it,
    /// rather than an ID that would change the path (or a panic): nothing can be sent about that
    /// call through this client.
    fn call_id(&self) -> Result<CallId, Error>;
}

/// The typed ID of a note the API sent ([`Note`]).
///
/// ```
/// use happyrobot::NoteExt as _;
/// use happyrobot::types::Note;
///
/// let note: Note = serde_json::from_str(r#"{"id": "65f1d0c0de00000000000000", "content": "hi"}"#)?;
/// assert_eq!(note.note_id()?.as_str(), "65f1d0c0de00000000000000");
/// let without: Note = serde_json::from_str(r#"{"content": "hi"}"#)?;
/// assert!(without.note_id().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait NoteExt: sealed::Sealed {
    /// The note's ID as a [`NoteId`] (1 to 128 ASCII letters, digits, `-` or `_`), for
    /// [`Client::update_note`](crate::Client::update_note) and
    /// [`Client::delete_note`](crate::Client::delete_note). A note the API sent without an ID, or
    /// with one that breaks the rule, is an error of kind
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), never a panic.
    fn note_id(&self) -> Result<NoteId, Error>;
}

impl CallExt for Call {
    fn call_id(&self) -> Result<CallId, Error> {
        CallId::new(self.id.as_str()).map_err(|e| {
            sent_by_the_api(
                "call id",
                &e,
                "so nothing can be sent about this call through this client",
            )
        })
    }
}

impl NoteExt for Note {
    fn note_id(&self) -> Result<NoteId, Error> {
        let Some(id) = self.id.as_deref() else {
            return Err(Error::invalid_input(
                "note id",
                "the API sent a note without an ID, so it cannot be updated or deleted by its ID; \
                 read the call again to see whether it has one now",
            ));
        };
        NoteId::new(id).map_err(|e| {
            sent_by_the_api(
                "note id",
                &e,
                "so this note cannot be updated or deleted through this client",
            )
        })
    }
}

/// An ID the API sent that breaks its type's rule: the rule's error, saying who sent the ID.
fn sent_by_the_api(field: &str, error: &Error, consequence: &str) -> Error {
    let text = error.to_string();
    let reason = text
        .strip_prefix(&format!("invalid {field}: "))
        .unwrap_or(&text);
    Error::invalid_input(
        field,
        format!(
            "{reason}. The API sent this ID: it cannot be put in a request's path as it is, \
             {consequence}; report it to HappyRobot with the call as the API sent it"
        ),
    )
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for happyrobot_sdk::types::Call {}
    impl Sealed for happyrobot_sdk::types::Note {}
}
