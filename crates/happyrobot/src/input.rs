//! What callers hand the client: the [`CallId`] of a call, the [`NewNote`] to add, and the [`ApiKey`].
//! Each is checked when it is made or before anything is sent, so bad input never reaches the network.

use std::fmt;
use std::str::FromStr;

use happyrobot_sdk::Timestamp;
use happyrobot_sdk::types::{NoteInput, NoteInputContent, NoteUpdate, NoteUpdateContent};

use crate::Error;

/// The ID of a call: exactly 24 ASCII letters, digits, `-` or `_`, kept exactly as given.
///
/// The API documents one rule for a call's ID: 24 characters. Every ID it has shown is 24 lower-case
/// hexadecimal digits (a MongoDB ObjectId), but that is an inference, not a contract (the spec's
/// PROVENANCE.md says so), so an ID of another shape is accepted and sent as it was typed: upper
/// case stays upper case. Only characters that could change the request's path (`/`, `?`, `#`,
/// `%`, spaces, control characters, anything outside ASCII) and other lengths are refused, before
/// a request is sent. When the API answers `404` for an ID that is not 24 lower-case hex digits,
/// the error says so and names the first character that is not one
/// ([`CallId::unusual_character`]).
///
/// ```
/// use happyrobot::CallId;
///
/// let id: CallId = "65F1C0FFEE0123456789ABCD".parse()?;
/// assert_eq!(id.as_str(), "65F1C0FFEE0123456789ABCD"); // sent as typed
/// assert!("s90000000000000000000001".parse::<CallId>().is_ok());
/// assert!("../../admin/000000000000000".parse::<CallId>().is_err());
/// assert!("65f1c0ffee0123456789abc".parse::<CallId>().is_err()); // 23 characters
/// # Ok::<(), happyrobot::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(String);

impl CallId {
    /// The length every call ID has (documented).
    pub const LEN: usize = 24;

    /// Checks `id` against the documented rule and wraps it unchanged.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        // The common case, checked byte by byte; the words for a refusal are found after.
        if id.len() == Self::LEN && id.bytes().all(is_id_byte) {
            return Ok(Self(id));
        }
        // Past the fast path, either a character or the length is wrong.
        let problem = if id.is_empty() {
            "it is empty".to_string()
        } else if let Some(c) = id.chars().find(|&c| !is_id_char(c)) {
            format!("{c:?} may not appear in a call ID (ASCII letters, digits, `-` and `_` only)")
        } else {
            format!("it has {} characters", id.len())
        };
        Err(Error::invalid_input(
            "call id",
            format!(
                "{:?} is not a call ID: {problem}; a call ID is exactly 24 characters, as shown \
                 in the HappyRobot app or returned by the API",
                shorten(&id)
            ),
        ))
    }

    /// The ID as text, exactly as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first character that is not a lower-case hexadecimal digit, the shape of every call ID
    /// HappyRobot has shown (an inference, not documented); `None` for an ID of that shape. An ID
    /// with such a character is still sent as given: this only explains a `404`.
    ///
    /// ```
    /// use happyrobot::CallId;
    ///
    /// let typo: CallId = "65f1c0ffee0123456789abcO".parse()?;
    /// assert_eq!(typo.unusual_character(), Some('O'));
    /// let usual: CallId = "65f1c0ffee0123456789abcd".parse()?;
    /// assert_eq!(usual.unusual_character(), None);
    /// # Ok::<(), happyrobot::Error>(())
    /// ```
    pub fn unusual_character(&self) -> Option<char> {
        self.0.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f'))
    }
}

/// The characters the documented rule lets into a call ID (and the lenient rule into a note ID):
/// none of them can change a request's path.
fn is_id_char(c: char) -> bool {
    u8::try_from(c).is_ok_and(is_id_byte)
}

/// [`is_id_char`] for one byte of UTF-8 text: no byte of a multi-byte character passes.
fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// At most 40 characters of a rejected input, so that an error message stays one readable line.
fn shorten(text: &str) -> String {
    if text.chars().count() <= 40 {
        text.to_string()
    } else {
        let mut short: String = text.chars().take(40).collect();
        short.push('…');
        short
    }
}

/// The traits both checked ID types share: shown as their text, parsed and deserialized through
/// their checking `new`, so that no unchecked ID can be made.
macro_rules! checked_id_traits {
    ($name:ident) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0).finish()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;

            fn try_from(value: &str) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                Self::new(text).map_err(serde::de::Error::custom)
            }
        }
    };
}

checked_id_traits!(CallId);

/// A note to add to a call: its text, and optionally a flag and the fields the server otherwise
/// assigns.
///
/// ```
/// use happyrobot::NewNote;
///
/// let note = NewNote::new("Driver confirmed pickup").flagged(true);
/// assert_eq!(note.content(), "Driver confirmed pickup");
/// ```
#[derive(Clone, PartialEq)]
pub struct NewNote {
    content: String,
    flagged: Option<bool>,
    id: Option<String>,
    user_id: Option<String>,
    created_at: Option<Timestamp>,
}

impl NewNote {
    /// A note with this text. The text must not be empty or only whitespace; that is checked before
    /// the note is sent.
    pub fn new(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            flagged: None,
            id: None,
            user_id: None,
            created_at: None,
        }
    }

    /// Flags the note for attention (or explicitly not, with `false`).
    pub fn flagged(mut self, flagged: bool) -> Self {
        self.flagged = Some(flagged);
        self
    }

    /// Attributes the note to this user ID instead of the API key's user.
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Gives the note this ID instead of one the server assigns (`note.id(NoteId::generate())`
    /// makes one the way the client does). It must not be empty; an ID that breaks [`NoteId`]'s
    /// rule (1 to 128 ASCII letters, digits, `-` or `_`) is sent, but this SDK cannot update or
    /// delete that note by it later.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Dates the note instead of letting the server use the time it receives it.
    pub fn created_at(mut self, created_at: impl Into<Timestamp>) -> Self {
        self.created_at = Some(created_at.into());
        self
    }

    /// The note's text.
    pub fn content(&self) -> &str {
        &self.content
    }

    /// The note's ID, if one was set.
    pub fn id_ref(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Whether the note is flagged, if that was set.
    pub fn is_flagged(&self) -> Option<bool> {
        self.flagged
    }

    /// Checks the note as [`Client::add_note`](crate::Client::add_note) does before sending it.
    pub fn validate(&self) -> Result<(), Error> {
        self.to_body().map(drop)
    }

    /// The request body as the spec defines it, after the checks of [`NewNote::validate`].
    pub fn to_body(&self) -> Result<NoteInput, Error> {
        self.clone().into_body()
    }

    /// As [`NewNote::to_body`], moving the text instead of copying it.
    pub(crate) fn into_body(self) -> Result<NoteInput, Error> {
        if self.content.trim().is_empty() {
            return Err(Error::invalid_input(
                "note content",
                "the note's text is empty or only whitespace; give it some text",
            ));
        }
        if self.user_id.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(Error::invalid_input(
                "note user_id",
                "it is empty; leave it unset to let the server assign it",
            ));
        }
        // The API documents no rule for a note's ID, which goes in the body: only an empty one is
        // refused. (An ID that breaks `NoteId`'s rule cannot be updated or deleted through this
        // SDK later; `NoteId::generate` makes every ID the SDK chooses.)
        if self.id.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(Error::invalid_input(
                "note id",
                "it is empty; leave it unset to let the server assign it",
            ));
        }
        let content = NoteInputContent::try_from(self.content)
            .map_err(|e| Error::invalid_input("note content", e.to_string()))?;
        Ok(NoteInput {
            content,
            flagged: self.flagged,
            id: self.id,
            user_id: self.user_id,
            created_at: self.created_at,
        })
    }
}

/// Note text is customer data: `Debug` shows its length, not the text.
impl fmt::Debug for NewNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewNote")
            .field("content_len", &self.content.len())
            .field("flagged", &self.flagged)
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// The ID of a note on a call: 1 to 128 ASCII letters, digits, `-` or `_` (HappyRobot's are 24 hex
/// digits; the API documents no format).
///
/// As with [`CallId`], checking the characters means nothing passed as an ID can change the path of
/// the request.
///
/// ```
/// use happyrobot::NoteId;
///
/// let id: NoteId = "65f1d0c0de00000000000000".parse()?;
/// assert_eq!(id.as_str(), "65f1d0c0de00000000000000");
/// assert!("../x".parse::<NoteId>().is_err());
/// # Ok::<(), happyrobot::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NoteId(String);

impl NoteId {
    /// The longest note ID accepted.
    pub const MAX_LEN: usize = 128;

    /// Checks `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        Self::check(&id)?;
        Ok(Self(id))
    }

    /// The one rule of a note's ID, checked without copying it (a new note's ID is checked on
    /// every add).
    fn check(id: &str) -> Result<(), Error> {
        let problem = if id.is_empty() {
            Some("it is empty".to_string())
        } else if id.len() > Self::MAX_LEN {
            Some(format!("it is longer than {} characters", Self::MAX_LEN))
        } else if !id.bytes().all(is_id_byte) {
            Some("it holds characters other than ASCII letters, digits, `-` and `_`".to_string())
        } else {
            None
        };
        match problem {
            Some(problem) => Err(Error::invalid_input(
                "note id",
                format!(
                    "{:?} is not a note ID: {problem}; use the `id` of a note as the API returns it",
                    shorten(id)
                ),
            )),
            None => Ok(()),
        }
    }

    /// A fresh note ID for a note about to be added: 24 lower-case hex digits shaped like a
    /// MongoDB ObjectId (8 digits of Unix time, then 16 random ones), so that a note sent with it
    /// can be recognised on its call later. Every ID the client and the bulk engine give a note
    /// comes from here.
    ///
    /// ```
    /// let id = happyrobot::NoteId::generate();
    /// assert_eq!(id.as_str().len(), 24);
    /// assert_ne!(id, happyrobot::NoteId::generate());
    /// ```
    pub fn generate() -> Self {
        Self(crate::client::new_note_id())
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The ID as an owned `String`.
    pub fn into_string(self) -> String {
        self.0
    }
}

checked_id_traits!(NoteId);

/// What to change in a note: only the fields set here are sent (the API does not document what
/// happens to the ones left out, so none is sent that the caller did not set).
///
/// ```
/// use happyrobot::NoteChanges;
///
/// let changes = NoteChanges::new().content("Pickup moved to 15:00").flagged(false);
/// assert!(changes.validate().is_ok());
/// assert!(NoteChanges::new().validate().is_err(), "an update must change something");
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct NoteChanges {
    content: Option<String>,
    flagged: Option<bool>,
    user_id: Option<String>,
    created_at: Option<Timestamp>,
}

impl NoteChanges {
    /// No changes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the note's text (not empty or whitespace only).
    pub fn content(mut self, content: impl Into<String>) -> Self {
        self.content = Some(content.into());
        self
    }

    /// Flags or unflags the note.
    pub fn flagged(mut self, flagged: bool) -> Self {
        self.flagged = Some(flagged);
        self
    }

    /// Attributes the note to another user ID.
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Re-dates the note.
    pub fn created_at(mut self, created_at: impl Into<Timestamp>) -> Self {
        self.created_at = Some(created_at.into());
        self
    }

    /// Checks the changes as [`Client::update_note`](crate::Client::update_note) does before
    /// sending them.
    pub fn validate(&self) -> Result<(), Error> {
        self.to_body().map(drop)
    }

    /// The request body as the spec defines it, after the checks of [`NoteChanges::validate`].
    pub fn to_body(&self) -> Result<NoteUpdate, Error> {
        if self.content.is_none()
            && self.flagged.is_none()
            && self.user_id.is_none()
            && self.created_at.is_none()
        {
            return Err(Error::invalid_input(
                "note update",
                "it changes nothing: set the content, the flag, the user ID or the date",
            ));
        }
        let content = match &self.content {
            Some(text) if text.trim().is_empty() => {
                return Err(Error::invalid_input(
                    "note content",
                    "the note's new text is empty or only whitespace; give it some text, or \
                     delete the note instead",
                ));
            }
            Some(text) => Some(
                NoteUpdateContent::try_from(text.clone())
                    .map_err(|e| Error::invalid_input("note content", e))?,
            ),
            None => None,
        };
        if self.user_id.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(Error::invalid_input(
                "note user_id",
                "it is empty; leave it unset to keep the note's user",
            ));
        }
        Ok(NoteUpdate {
            content,
            flagged: self.flagged,
            id: None,
            user_id: self.user_id.clone(),
            created_at: self.created_at.clone(),
        })
    }
}

/// Note text is customer data: `Debug` shows its length, not the text.
impl fmt::Debug for NoteChanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteChanges")
            .field("content_len", &self.content.as_ref().map(String::len))
            .field("flagged", &self.flagged)
            .field("user_id", &self.user_id)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// What [`ClientBuilder::api_key`](crate::ClientBuilder::api_key) accepts: the key as text (`&str`,
/// `String`), or an [`ApiKey`] already checked. Sealed: only this crate implements it.
pub trait IntoApiKey: sealed::Sealed {
    /// The key's text, checked again when the client is built.
    #[doc(hidden)]
    fn into_key_text(self) -> String;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for String {}
    impl Sealed for &str {}
    impl Sealed for &String {}
    impl Sealed for super::ApiKey {}
    impl Sealed for &super::ApiKey {}
}

impl IntoApiKey for String {
    fn into_key_text(self) -> String {
        self
    }
}

impl IntoApiKey for &str {
    fn into_key_text(self) -> String {
        self.to_string()
    }
}

impl IntoApiKey for &String {
    fn into_key_text(self) -> String {
        self.clone()
    }
}

impl IntoApiKey for ApiKey {
    fn into_key_text(self) -> String {
        self.0
    }
}

impl IntoApiKey for &ApiKey {
    fn into_key_text(self) -> String {
        self.0.clone()
    }
}

/// A HappyRobot API key. `Debug` and `Display` never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Checks and wraps a key: not empty, and no whitespace or control characters, which would break
    /// the `authorization` header (a common copy-and-paste slip).
    pub fn new(key: impl Into<String>) -> Result<Self, Error> {
        let key = key.into();
        if key.trim().is_empty() {
            return Err(Error::invalid_api_key(
                "it is empty: set HAPPYROBOT_API_KEY to the key from the HappyRobot app",
            ));
        }
        if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::invalid_api_key(
                "it holds whitespace or control characters: check for a stray space, newline or \
                 quote around it",
            ));
        }
        Ok(Self(key))
    }

    /// The key itself, for sending. Keep what this returns out of logs.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl FromStr for ApiKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_id_accepts_24_characters_of_the_documented_rule_as_given() {
        for given in [
            "65f1c0ffee0123456789abcd",
            "65F1C0FFEE0123456789ABCD",
            "000000000000000000000000",
            "s90000000000000000000001",
            "call_0123456789-abcdefgh",
            "ABCDEFGHIJKLMNOPQRSTUVWX",
        ] {
            assert_eq!(given.parse::<CallId>().unwrap().as_str(), given);
        }
    }

    #[test]
    fn unusual_character_names_the_first_that_is_not_lower_case_hex() {
        for (id, unusual) in [
            ("65f1c0ffee0123456789abcd", None),
            ("65F1C0FFEE0123456789ABCD", Some('F')),
            ("s90000000000000000000001", Some('s')),
            ("65f1c0ffee0123456789abc_", Some('_')),
        ] {
            assert_eq!(
                CallId::new(id).unwrap().unusual_character(),
                unusual,
                "{id}"
            );
        }
    }

    #[test]
    fn call_id_rejects_anything_that_could_change_the_path() {
        for bad in [
            "",
            "65f1c0ffee0123456789abc",
            "65f1c0ffee0123456789abcde",
            "../../../../../../../../a",
            "65f1c0ffee012345/789abcd",
            "65f1c0ffee0123%2F789abcd",
            "65f1c0ffee01234 6789abcd",
            "65f1c0ffee0123456789abc?",
            "65f1c0ffee0123456789abc#",
            "65f1c0ffee0123456789abé",
            "65f1c0ffee0123456789abc.",
            "65f1c0ffee0123456789abc\n",
            "65f1c0ffee0123456789abc\u{0}",
            "65f1c0ffee0123456789ab\\d",
        ] {
            let err = bad.parse::<CallId>().unwrap_err();
            assert!(err.is_invalid_input(), "{bad:?}: {err}");
            assert!(err.to_string().contains("call ID"), "{err}");
        }
    }

    #[test]
    fn call_id_serde_checks_too() {
        let id: CallId = serde_json::from_str("\"65f1c0ffee0123456789abcd\"").unwrap();
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "\"65f1c0ffee0123456789abcd\""
        );
        assert!(serde_json::from_str::<CallId>("\"../etc/passwd\"").is_err());
    }

    #[test]
    fn note_content_must_have_text() {
        for bad in ["", "   ", "\n\t"] {
            let err = NewNote::new(bad).validate().unwrap_err();
            assert!(err.is_invalid_input());
            assert!(err.to_string().contains("empty"), "{err}");
        }
        NewNote::new(" x ").validate().unwrap();
        assert!(NewNote::new("x").user_id(" ").validate().is_err());
    }

    #[test]
    fn a_new_notes_id_is_refused_only_when_empty() {
        for bad in ["", " "] {
            let err = NewNote::new("x").id(bad).validate().unwrap_err();
            assert!(err.to_string().contains("note id"), "{bad:?}: {err}");
        }
        // The API documents no rule for it: anything else goes out as given.
        for ok in ["a.b", "note:1", "é"] {
            NewNote::new("x").id(ok).validate().unwrap();
        }
        NewNote::new("x").id(NoteId::generate()).validate().unwrap();
        NewNote::new("x").id("note_1-x").validate().unwrap();
    }

    #[test]
    fn note_debug_hides_the_text() {
        let debug = format!("{:?}", NewNote::new("customer said their PIN is 1234"));
        assert!(!debug.contains("PIN"), "{debug}");
        assert!(debug.contains("content_len"), "{debug}");
    }

    #[test]
    fn note_ids_are_checked() {
        for ok in ["65f1d0c0de00000000000000", "a", "note_1-x"] {
            assert_eq!(NoteId::new(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "../x", "a/b", "a b", "%2F", &"x".repeat(129)] {
            let err = NoteId::new(bad).unwrap_err();
            assert!(err.is_invalid_input(), "{bad:?}");
            assert!(err.to_string().contains("note ID"), "{err}");
        }
    }

    #[test]
    fn note_changes_must_change_something_sensible() {
        assert!(NoteChanges::new().validate().is_err());
        assert!(NoteChanges::new().content("  ").validate().is_err());
        let body = NoteChanges::new().flagged(true).to_body().unwrap();
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"flagged": true}),
            "only what was set"
        );
    }

    #[test]
    fn api_key_is_redacted_and_checked() {
        let key = ApiKey::new("hr_live_SECRET").unwrap();
        assert!(!format!("{key:?} {key}").contains("SECRET"));
        assert!(ApiKey::new("").is_err());
        let err = ApiKey::new("hr_live_SECRET\n").unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }
}
