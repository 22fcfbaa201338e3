//! [`Client`] and its [`ClientBuilder`]: the generated client, configured safely, plus retries,
//! an overall deadline, and the mapping of every answer to a [`Response`] or an [`Error`].
//!
//! Each attempt runs the generated method inside an [`Exchange`], so that the status, headers and
//! body of every answer reach this module whole: a success is decoded here (and its body kept), and
//! a failure is classified by what the server certainly did, might have done, or did not do.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use happyrobot_sdk::Inner;
use happyrobot_sdk::hooks::{BodyError, Exchange};
use happyrobot_sdk::types::{Call, ErrorBody, Note};
use http::StatusCode;
use http::header::{HeaderMap, LOCATION};
use reqwest::Url;
use tracing::Instrument as _;

use crate::error::{BoxError, Operation};
use crate::input::IntoApiKey;
use crate::retry::{RetryAction, parse_retry_after};
use crate::{ApiKey, CallId, Error, NewNote, NoteChanges, NoteId, Response, RetryPolicy};

/// The production API.
pub const DEFAULT_BASE_URL: &str = "https://app.happyrobot.ai/api/v1";
/// The environment variable [`Client::from_env`] reads the API key from.
pub const API_KEY_ENV: &str = "HAPPYROBOT_API_KEY";
/// The environment variable [`Client::from_env`] reads an alternative base URL from.
pub const BASE_URL_ENV: &str = "HAPPYROBOT_BASE_URL";
/// Default limit on connecting.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit on one attempt, from sending the request to reading the whole answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default limit on one call of a client method, every retry and wait included.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);
/// Default wait between the two looks of [`Client::find_note`].
pub const DEFAULT_RECONCILE_SETTLE: Duration = Duration::from_secs(2);
/// Default limit on the size of an answer.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = happyrobot_sdk::hooks::DEFAULT_MAX_RESPONSE_BYTES;

/// An attempt is not started, nor a retry waited for, with less than this left before the deadline.
const MIN_ATTEMPT: Duration = Duration::from_millis(100);

/// The HappyRobot API client.
///
/// Cheap to clone: clones share one connection pool. `Debug` never prints the API key.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

struct Shared {
    api: happyrobot_sdk::Client,
    base_url: String,
    retry: RetryPolicy,
    /// The attempt timeout: built into the reqwest client when this crate built it, else set on
    /// each request through `Inner::with_timeout`.
    timeout: Duration,
    deadline: Duration,
    client_note_ids: bool,
    reconcile_settle: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.shared.base_url)
            .field("api_key", &"[REDACTED]")
            .field("retry", &self.shared.retry)
            .field("timeout", &self.shared.timeout)
            .field("deadline", &self.shared.deadline)
            .field("client_note_ids", &self.shared.client_note_ids)
            .field("settings", self.shared.api.inner())
            .finish()
    }
}

/// Compile-time proof that clients and their futures travel across threads and tasks.
const _: fn() = || {
    fn assert_traits<T: Send + Sync + 'static>() {}
    assert_traits::<Client>();
    assert_traits::<ClientBuilder>();
};

use happyrobot_sdk::ClientInfo as _;

/// A fresh note ID: 24 lowercase hex digits shaped like a MongoDB ObjectId (8 digits of Unix time,
/// then 16 random ones), so that a note sent with it can be recognised on the call later.
pub fn new_note_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let value = (u128::from(secs & 0xffff_ffff) << 64) | u128::from(crate::retry::random_u64());
    // The 24 hex digits of the 96-bit value, written directly: this runs on every add, and going
    // through `format!` costs several times as much.
    let mut digits = [0u8; 24];
    for (place, digit) in digits.iter_mut().rev().enumerate() {
        *digit = b"0123456789abcdef"[((value >> (place * 4)) & 0xf) as usize];
    }
    // Hex digits are ASCII: this never falls back to the empty string.
    std::str::from_utf8(&digits)
        .map(str::to_owned)
        .unwrap_or_default()
}

impl Client {
    /// A client for the production API with this key and the default settings.
    pub fn new(api_key: impl IntoApiKey) -> Result<Self, Error> {
        Self::builder().api_key(api_key).build()
    }

    /// A client configured from the environment: the key from `HAPPYROBOT_API_KEY` (required) and the
    /// base URL from `HAPPYROBOT_BASE_URL` (optional).
    pub fn from_env() -> Result<Self, Error> {
        Self::builder().from_env().build()
    }

    /// A builder for every setting.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.shared.retry
    }

    /// Adds a note to a call and returns the call after the change, with the whole answer
    /// ([`Response`]).
    ///
    /// The note is checked first ([`NewNote::validate`]); nothing is sent when it is invalid. Unless
    /// the note has an ID or the client was built with
    /// [`client_note_ids(false)`](ClientBuilder::client_note_ids), it is sent with a fresh
    /// client-generated ID ([`Error::note_id`] gives it back when the outcome is unknown). Failures
    /// are retried as the [`RetryPolicy`] says: by default only when the note certainly was not added.
    pub async fn add_note(&self, call_id: &CallId, note: NewNote) -> Result<Response<Call>, Error> {
        let note = match note.id_ref() {
            None if self.shared.client_note_ids => note.id(new_note_id()),
            _ => note,
        };
        let body = note.into_body()?;
        // The call ID was checked when it was made; the generated path type checks it again.
        let id: happyrobot_sdk::types::AddNoteToCallId = path_param(call_id.as_str(), "call id")?;
        let api = &self.shared.api;
        let (id, body) = (&id, &body);
        let span = tracing::info_span!(
            "happyrobot.request",
            method = "POST",
            path = "/calls/{id}/notes",
            call_id = %call_id,
            content_len = body.content.len(),
            attempt = tracing::field::Empty,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        self.run(Operation::AddNote, span, move || {
            api.add_note_to_call(id, body)
        })
        .await
        .map_err(|e| e.with_note_id(body.id.clone()))
    }

    /// Reads a call, notes included.
    ///
    /// Reading changes nothing, so every failure that may pass is retried as the policy allows.
    /// (The API lists this operation but its page is not public: its path and answer are inferred.)
    pub async fn get_call(&self, call_id: &CallId) -> Result<Response<Call>, Error> {
        let id: happyrobot_sdk::types::GetCallId = path_param(call_id.as_str(), "call id")?;
        let api = &self.shared.api;
        let id = &id;
        let span = tracing::info_span!(
            "happyrobot.request",
            method = "GET",
            path = "/calls/{id}",
            call_id = %call_id,
            attempt = tracing::field::Empty,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        self.run(Operation::GetCall, span, move || api.get_call(id))
            .await
    }

    /// Changes a note and returns the call after the change. Only the fields set in `changes` are
    /// sent.
    ///
    /// An update with the same body is idempotent, so the default policy also retries it when the
    /// outcome is unknown (a timeout, a broken connection, a 500, 502, 503 or 504), which it never
    /// does for an add.
    pub async fn update_note(
        &self,
        call_id: &CallId,
        note_id: &NoteId,
        changes: NoteChanges,
    ) -> Result<Response<Call>, Error> {
        let body = changes.to_body()?;
        let id: happyrobot_sdk::types::UpdateNoteId = path_param(call_id.as_str(), "call id")?;
        let note: happyrobot_sdk::types::UpdateNoteNoteId =
            path_param(note_id.as_str(), "note id")?;
        let api = &self.shared.api;
        let (id, note, body) = (&id, &note, &body);
        let span = tracing::info_span!(
            "happyrobot.request",
            method = "PATCH",
            path = "/calls/{id}/notes/{noteId}",
            call_id = %call_id,
            note_id = %note_id,
            attempt = tracing::field::Empty,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        self.run(Operation::UpdateNote, span, move || {
            api.update_note(id, note, body)
        })
        .await
    }

    /// Deletes a note and returns the call after the change.
    ///
    /// A delete is idempotent, so the default policy also retries it when the outcome is unknown.
    /// A note that is already gone answers `404`: [`Error::is_note_not_found`] tells that apart from
    /// a call that does not exist, so that a caller can count it as done.
    pub async fn delete_note(
        &self,
        call_id: &CallId,
        note_id: &NoteId,
    ) -> Result<Response<Call>, Error> {
        let id: happyrobot_sdk::types::DeleteNoteId = path_param(call_id.as_str(), "call id")?;
        let note: happyrobot_sdk::types::DeleteNoteNoteId =
            path_param(note_id.as_str(), "note id")?;
        let api = &self.shared.api;
        let (id, note) = (&id, &note);
        let span = tracing::info_span!(
            "happyrobot.request",
            method = "DELETE",
            path = "/calls/{id}/notes/{noteId}",
            call_id = %call_id,
            note_id = %note_id,
            attempt = tracing::field::Empty,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        self.run(Operation::DeleteNote, span, move || {
            api.delete_note(id, note)
        })
        .await
    }

    /// Finds out whether a note whose add had an unknown outcome is on the call, by the ID it was
    /// sent with ([`Error::note_id`]) and its text.
    ///
    /// It never guesses. The note is [`NoteLookup::Found`] when a note with its ID is on the call.
    /// It is [`NoteLookup::Absent`] only when no note has its ID or its text, twice, with the
    /// settle delay ([`ClientBuilder::reconcile_settle`]) between the two looks, because the add
    /// may still be in flight at the server. Otherwise ([`NoteLookup::Undecided`]): a note with the
    /// same text but another ID may be this one, from a server that does not keep client IDs, or
    /// the answer did not list the notes.
    ///
    /// `Absent` rests on time: an add held somewhere (a queue, a stalled proxy) for longer than the
    /// attempt's timeout plus the settle delay can still be applied after the second look. A note
    /// then sent again (with the same ID, as the CLI does) is on the call twice unless the server
    /// refuses a second note with an ID it holds. Raise the settle delay for a server known to lag.
    pub async fn find_note(
        &self,
        call_id: &CallId,
        note_id: &str,
        content: &str,
    ) -> Result<NoteLookup, Error> {
        let first = self.look_for(call_id, note_id, content).await?;
        if first != Sighting::Nothing {
            return Ok(first.into_lookup());
        }
        tokio::time::sleep(self.shared.reconcile_settle).await;
        Ok(self
            .look_for(call_id, note_id, content)
            .await?
            .into_lookup())
    }

    async fn look_for(
        &self,
        call_id: &CallId,
        note_id: &str,
        content: &str,
    ) -> Result<Sighting, Error> {
        let call = self.get_call(call_id).await?.into_inner();
        let Some(notes) = call.notes else {
            return Ok(Sighting::Unclear);
        };
        if let Some(note) = notes.iter().find(|n| n.id.as_deref() == Some(note_id)) {
            return Ok(Sighting::Found(Box::new(note.clone())));
        }
        if notes.iter().any(|n| n.content.as_deref() == Some(content)) {
            return Ok(Sighting::Unclear);
        }
        Ok(Sighting::Nothing)
    }

    /// Sends a request as often as the retry policy allows within the deadline.
    async fn run<T, R, F, Fut>(
        &self,
        op: Operation,
        span: tracing::Span,
        mut send: F,
    ) -> Result<Response<T>, Error>
    where
        T: serde::de::DeserializeOwned,
        F: FnMut() -> Fut,
        Fut: Future<
            Output = Result<happyrobot_sdk::ResponseValue<R>, happyrobot_sdk::Error<ErrorBody>>,
        >,
    {
        let shared = &*self.shared;
        let started = Instant::now();
        let mut retries = 0;
        loop {
            let remaining = match retries {
                0 => shared.deadline,
                _ => shared.deadline.saturating_sub(started.elapsed()),
            };
            let timeout = shared.timeout.min(remaining).max(MIN_ATTEMPT);
            let attempt = retries + 1;
            span.record("attempt", attempt);
            // Timed only for a subscriber that records the span.
            let begun = (!span.is_disabled()).then(Instant::now);
            // The full timeout needs no repeating on the request (see `build`); only a shorter
            // one, which the deadline leaves, does.
            let own = (timeout != shared.timeout).then_some(timeout);
            // Boxed once, so that the generated request future (a few kilobytes) is not copied
            // again by each wrapper around it.
            let (result, exchange) = Exchange::with_timeout(own)
                .scope(Box::pin(outcome(send())))
                .instrument(span.clone())
                .await;
            if let Some(begun) = begun {
                span.record("duration_ms", begun.elapsed().as_millis() as u64);
            }
            if let Some(status) = exchange.status {
                span.record("status", status.as_u16());
            }
            let error = match self.interpret::<T>(op, result, exchange) {
                Ok(response) => {
                    tracing::debug!(parent: &span, "request succeeded");
                    return Ok(response);
                }
                Err(error) => error,
            };
            match shared.retry.decide_for(&error, retries, op.idempotent()) {
                RetryAction::Retry { after, reason } => {
                    let left = shared.deadline.saturating_sub(started.elapsed());
                    if after.saturating_add(MIN_ATTEMPT) > left {
                        tracing::debug!(parent: &span, attempt, error = %error, "not retrying: deadline");
                        return Err(error.with_context(&format!(
                            "It was not retried: waiting {} would pass the client's deadline of {} for one call.",
                            crate::error::describe(after),
                            crate::error::describe(shared.deadline)
                        )));
                    }
                    tracing::warn!(
                        parent: &span,
                        attempt,
                        status = error.status().map(|s| s.as_u16()),
                        delay_ms = after.as_millis() as u64,
                        reason = reason.as_str(),
                        error = %error,
                        "request failed; retrying"
                    );
                    tokio::time::sleep(after).await;
                    retries += 1;
                }
                RetryAction::Stop { reason } => {
                    tracing::debug!(
                        parent: &span,
                        attempt,
                        status = error.status().map(|s| s.as_u16()),
                        outcome = ?error.outcome(),
                        stop = ?reason,
                        error = %error,
                        "request failed; not retrying"
                    );
                    return Err(error);
                }
            }
        }
    }

    /// Turns what one attempt produced into a response or an error.
    fn interpret<T: serde::de::DeserializeOwned>(
        &self,
        op: Operation,
        result: Result<(), Box<happyrobot_sdk::Error<ErrorBody>>>,
        exchange: Exchange,
    ) -> Result<Response<T>, Error> {
        let Some(status) = exchange.status else {
            // No answer: the generated code failed before or while sending.
            return Err(match result {
                Err(error) => self.no_answer(op, *error),
                Ok(()) => Error::network(op, "the HTTP layer returned no answer".into()),
            });
        };
        // The request ID is copied out only for an error; a response reads it from its headers.
        if let Some(to) = &exchange.redirected_to {
            return Err(Error::followed_redirect(op, status, &safe_location(to))
                .with_request_id(request_id(&exchange.headers)));
        }
        let body = exchange.body.unwrap_or_else(|| Ok(Bytes::new()));
        if status.is_success() {
            let bytes = match body {
                Ok(bytes) => bytes,
                Err(error) => {
                    return Err(unreadable(op, status, error)
                        .with_request_id(request_id(&exchange.headers)));
                }
            };
            return match serde_json::from_slice::<T>(&bytes) {
                Ok(value) => Ok(Response::new(value, status, exchange.headers, bytes)),
                Err(_) => {
                    let what = decode_failure::<T>(&bytes);
                    Err(
                        Error::answer_unreadable(op, status, what, Some(bytes), None)
                            .with_request_id(request_id(&exchange.headers)),
                    )
                }
            };
        }
        if status.is_redirection() {
            let location = exchange
                .headers
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|text| match Url::parse(text) {
                    Ok(url) => safe_location(&url),
                    // A relative location: keep its path only.
                    Err(_) => text
                        .split(['?', '#'])
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                });
            return Err(Error::redirect(op, status, location)
                .with_request_id(request_id(&exchange.headers)));
        }
        // An error status: a JSON body may explain it; any other body is never shown.
        let parsed = body
            .as_ref()
            .ok()
            .and_then(|bytes| serde_json::from_slice::<ErrorBody>(bytes).ok());
        let message = parsed
            .as_ref()
            .and_then(|b| b.message.as_deref().or(b.error.as_deref()));
        let note_not_found = status == StatusCode::NOT_FOUND
            && matches!(op, Operation::UpdateNote | Operation::DeleteNote)
            && parsed.as_ref().is_some_and(mentions_a_note);
        let mut error = Error::api(op, status, message, note_not_found)
            .with_retry_after(
                parse_retry_after(&exchange.headers),
                self.shared.retry.retry_after_cap(),
            )
            .with_request_id(request_id(&exchange.headers));
        if let Err(body_error) = body {
            error = error.with_source(Box::new(body_error));
        }
        Err(error)
    }

    /// The generated code's error when no answer arrived.
    fn no_answer(&self, op: Operation, error: happyrobot_sdk::Error<ErrorBody>) -> Error {
        use happyrobot_sdk::Error as E;
        match error {
            E::CommunicationError(source) | E::InvalidUpgrade(source) => {
                transport_error(op, source)
            }
            E::ResponseBodyError(source) => transport_error(op, source),
            E::InvalidRequest(reason) => Error::invalid_input("request", reason),
            E::Custom(reason) => Error::config(reason),
            // An answer would have been recorded in the exchange; these cannot happen without one.
            E::ErrorResponse(_) | E::UnexpectedResponse(_) | E::InvalidResponsePayload(..) => {
                Error::network(op, "the HTTP layer lost the answer".into())
            }
        }
    }
}

/// What a generated method's future tells beyond the exchange: whether it failed before an answer
/// came. Its decoded value is dropped (the generated code sees empty bodies; the client decodes the
/// exchange's), and its error boxed, so that the futures around it move a pointer-sized output on
/// every poll instead of a `Call` of more than a kilobyte.
async fn outcome<R>(
    generated: impl Future<
        Output = Result<happyrobot_sdk::ResponseValue<R>, happyrobot_sdk::Error<ErrorBody>>,
    >,
) -> Result<(), Box<happyrobot_sdk::Error<ErrorBody>>> {
    use happyrobot_sdk::Error as E;
    match generated.await {
        Ok(_) => Ok(()),
        // These come only with an answer, which the exchange holds whole; the generated code's
        // view of it (an empty body, so usually a payload it cannot decode) says nothing more.
        Err(E::ErrorResponse(_) | E::UnexpectedResponse(_) | E::InvalidResponsePayload(..)) => {
            Ok(())
        }
        Err(error) => Err(Box::new(error)),
    }
}

/// A path parameter as the generated type, which checks it again (the caller's `CallId` or `NoteId`
/// already did).
fn path_param<T>(text: &str, field: &str) -> Result<T, Error>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    text.parse().map_err(|e| Error::invalid_input(field, e))
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
#[derive(Debug, PartialEq)]
enum Sighting {
    Found(Box<Note>),
    Unclear,
    Nothing,
}

impl Sighting {
    fn into_lookup(self) -> NoteLookup {
        match self {
            Self::Found(note) => NoteLookup::Found(note),
            Self::Unclear => NoteLookup::Undecided,
            Self::Nothing => NoteLookup::Absent,
        }
    }
}

/// Whether an error body speaks of a note (and not only of a call): how a `404` for a note that is
/// gone is told apart from one for a call that does not exist.
fn mentions_a_note(body: &ErrorBody) -> bool {
    [body.message.as_deref(), body.error.as_deref()]
        .into_iter()
        .flatten()
        .any(|text| text.to_ascii_lowercase().contains("note"))
}

/// A URL as safe to show: scheme, host, port and path; no user info, query or fragment.
fn safe_location(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// A success whose body could not be read.
fn unreadable(op: Operation, status: StatusCode, error: BodyError) -> Error {
    let what = match &error {
        BodyError::TooLarge { limit } => format!(
            "it is larger than {limit} bytes (raise ClientBuilder::max_response_bytes if this is expected)"
        ),
        BodyError::Read(source) => {
            let timed_out = error.is_timeout();
            format!(
                "{} ({})",
                if timed_out {
                    "it stalled past the timeout"
                } else {
                    "the connection broke while it arrived"
                },
                crate::error::chain(source.as_ref())
            )
        }
        _ => "it could not be read".to_string(),
    };
    Error::answer_unreadable(op, status, what, None, Some(Box::new(error)))
}

/// Where and why a success body does not decode as `T`: the JSON path and the category of the
/// problem, never the offending value, which is customer data.
fn decode_failure<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> String {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(deserializer) {
        Ok(_) => "it decodes only with another decoder".to_string(),
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            format!(
                "{} at `{path}` (line {} column {})",
                match inner.classify() {
                    serde_json::error::Category::Io => "read error",
                    serde_json::error::Category::Syntax => "invalid JSON",
                    serde_json::error::Category::Data => "unexpected value",
                    serde_json::error::Category::Eof => "the body ends too early",
                },
                inner.line(),
                inner.column()
            )
        }
    }
}

/// The request ID a server sent back, under the names servers commonly use.
fn request_id(headers: &HeaderMap) -> Option<String> {
    crate::response::request_id(headers).map(str::to_string)
}

/// Sorts a transport failure by whether the request can have reached the server.
fn transport_error(op: Operation, source: reqwest::Error) -> Error {
    // URLs in reqwest's messages are the request's; dropping them keeps errors short and keeps any
    // query out of logs.
    let source = source.without_url();
    if source.is_connect() {
        // Connecting failed (refused, DNS, TLS handshake, the connect timeout, or the proxy): the
        // request was never written.
        Error::connect(Box::new(source))
    } else if source.is_builder() {
        Error::config(format!(
            "the request could not be built: {}",
            crate::error::chain(&source)
        ))
    } else if source.is_timeout() {
        Error::timeout(op, Box::new(source))
    } else {
        Error::network(op, Box::new(source) as BoxError)
    }
}

/// Settings for a [`Client`]; made by [`Client::builder`].
#[derive(Default, Clone)]
pub struct ClientBuilder {
    api_key: Option<String>,
    base_url: Option<String>,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    user_agent: Option<String>,
    http_client: Option<reqwest::Client>,
    max_response_bytes: Option<usize>,
    deadline: Option<Duration>,
    client_note_ids: Option<bool>,
    root_certificates: Vec<Vec<u8>>,
    reconcile_settle: Option<Duration>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("user_agent", &self.user_agent)
            .field("http_client", &self.http_client.is_some())
            .field("max_response_bytes", &self.max_response_bytes)
            .field("deadline", &self.deadline)
            .field("client_note_ids", &self.client_note_ids)
            .field("root_certificates", &self.root_certificates.len())
            .field("reconcile_settle", &self.reconcile_settle)
            .finish()
    }
}

impl ClientBuilder {
    /// The API key (required): text, or an [`ApiKey`] already checked.
    pub fn api_key(mut self, api_key: impl IntoApiKey) -> Self {
        self.api_key = Some(api_key.into_key_text());
        self
    }

    /// Where to send requests; default [`DEFAULT_BASE_URL`]. It must be `https`, except for loopback
    /// addresses (`127.0.0.0/8`, `::1`, `localhost`), which may be `http` for tests and the mock server.
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// Takes the key from `HAPPYROBOT_API_KEY` and the base URL from `HAPPYROBOT_BASE_URL`, where set
    /// and not already given to this builder.
    pub fn from_env(mut self) -> Self {
        if self.api_key.is_none() {
            self.api_key = std::env::var(API_KEY_ENV).ok();
        }
        if self.base_url.is_none() {
            self.base_url = std::env::var(BASE_URL_ENV)
                .ok()
                .filter(|u| !u.trim().is_empty());
        }
        self
    }

    /// The limit on one attempt, from sending the request to reading the whole answer; default 60 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The limit on connecting; default 10 s. Ignored with `http_client`, whose own
    /// setting applies.
    pub fn connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = Some(connect_timeout);
        self
    }

    /// When to retry; default [`RetryPolicy::default`].
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Appended to the `User-Agent` (`happyrobot-rust/<version> <suffix>`), to name your application.
    pub fn user_agent(mut self, suffix: impl Into<String>) -> Self {
        self.user_agent = Some(suffix.into());
        self
    }

    /// The limit on one call of a client method, every retry and every wait included; default 120 s.
    /// A retry that would pass it is not made (the error says so), and each attempt's timeout is cut
    /// to what is left.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Whether [`Client::add_note`] gives a note without an ID a fresh client-generated one (24 hex
    /// digits) so that it can be looked up when the outcome of the add is unknown; default `true`.
    pub fn client_note_ids(mut self, on: bool) -> Self {
        self.client_note_ids = Some(on);
        self
    }

    /// How long [`Client::find_note`] waits between its two looks before it calls a note absent;
    /// default 2 s. An add still in flight at the server shows up within it.
    pub fn reconcile_settle(mut self, settle: Duration) -> Self {
        self.reconcile_settle = Some(settle);
        self
    }

    /// Trusts this root certificate (PEM) besides the platform's, for a server behind a private
    /// certificate authority or a self-signed test server. An invalid PEM fails [`build`](Self::build).
    pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Uses this `reqwest::Client` (its proxy, TLS and pool settings) instead of building one.
    ///
    /// Build it with `redirect(reqwest::redirect::Policy::none())`: a client that follows redirects
    /// can send a note (and the key) to wherever a redirect points. The SDK notices a followed
    /// redirect afterwards and reports it as [`ErrorKind::Redirect`](crate::ErrorKind::Redirect),
    /// but cannot undo it. The timeout and deadline still apply to each request; the connect
    /// timeout and root certificates are the client's own business (giving root certificates here
    /// as well fails [`build`](Self::build)).
    ///
    /// Needs the `reqwest-client` feature, which makes reqwest 0.13 part of this crate's API.
    #[cfg(feature = "reqwest-client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest-client")))]
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// The largest answer read, in bytes; default 16 MiB.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = Some(bytes);
        self
    }

    /// Checks the settings and makes the client. Nothing is sent.
    pub fn build(self) -> Result<Client, Error> {
        let api_key = ApiKey::new(self.api_key.ok_or_else(Error::missing_api_key)?)?;
        let (base_url, loopback) =
            check_base_url(self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL))?;
        let user_agent = match self.user_agent.as_deref().map(str::trim) {
            Some(suffix) if !suffix.is_empty() => {
                format!("happyrobot-rust/{} {suffix}", env!("CARGO_PKG_VERSION"))
            }
            _ => format!("happyrobot-rust/{}", env!("CARGO_PKG_VERSION")),
        };
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        let deadline = self.deadline.unwrap_or(DEFAULT_DEADLINE);
        if timeout.is_zero() || deadline.is_zero() {
            return Err(Error::config(
                "the timeout or deadline is zero: give it a positive duration",
            ));
        }
        let inner = Inner::new()
            .with_api_key(api_key.expose_secret())
            .map_err(Error::invalid_api_key)?
            .with_user_agent(&user_agent)
            .map_err(Error::config)?
            .with_max_response_bytes(
                self.max_response_bytes
                    .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
            );
        // Our own reqwest client carries the attempt timeout itself; a request then needs one of
        // its own (a per-request extension, a few allocations) only when the deadline cuts it
        // shorter. A caller's client may have any timeout or none, so every request gets ours.
        let (http, built_here) = match self.http_client {
            Some(_) if !self.root_certificates.is_empty() => {
                return Err(Error::config(
                    "root certificates were given with add_root_certificate_pem and a reqwest \
                     client with http_client, which would not use them: add them to that client \
                     (reqwest::ClientBuilder::add_root_certificate) instead",
                ));
            }
            Some(client) => (client, false),
            None => {
                // Connecting must fail before the attempt's timeout does, so that a connect timeout
                // is reported as "nothing was sent" rather than as an unknown outcome.
                let connect_timeout = self
                    .connect_timeout
                    .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
                    .min(timeout.mul_f64(0.9));
                let mut builder = crate::tls::client_builder(&base_url, &self.root_certificates)?
                    .connect_timeout(connect_timeout)
                    .timeout(timeout)
                    // A POST must never be re-sent somewhere else by the transport.
                    .redirect(reqwest::redirect::Policy::none());
                if loopback {
                    // A mock or test server on this machine: never through a proxy, which would
                    // also see the key in cleartext over http.
                    builder = builder.no_proxy();
                }
                let client = builder.build().map_err(|e| {
                    Error::config(format!(
                        "the HTTP client could not be built: {}",
                        crate::error::chain(&e)
                    ))
                })?;
                (client, true)
            }
        };
        let inner = if built_here {
            // With `Policy::none()` and the timeout.
            inner.with_redirects_never_followed()
        } else {
            inner.with_timeout(timeout)
        };
        let api = happyrobot_sdk::Client::new_with_client(&base_url, http, inner);
        Ok(Client {
            shared: Arc::new(Shared {
                api,
                base_url,
                retry: self.retry.unwrap_or_default(),
                timeout,
                deadline,
                client_note_ids: self.client_note_ids.unwrap_or(true),
                reconcile_settle: self.reconcile_settle.unwrap_or(DEFAULT_RECONCILE_SETTLE),
            }),
        })
    }
}

/// Accepts `https` URLs, and `http` only on loopback; returns the URL without a trailing slash, and
/// whether it is on loopback.
fn check_base_url(text: &str) -> Result<(String, bool), Error> {
    let url = Url::parse(text.trim()).map_err(|e| {
        Error::config(format!(
            "the base URL {text:?} is not a URL ({e}); it looks like {DEFAULT_BASE_URL}"
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(
            "the base URL holds a user name or password; give the API key with HAPPYROBOT_API_KEY instead",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::config(format!(
            "the base URL {text:?} has a query or fragment; give it as scheme, host and path only"
        )));
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(Error::config(format!(
                "the base URL {text:?} is plain http: the API key would cross the network unencrypted. \
                 Use https (http is allowed only for loopback addresses such as 127.0.0.1)"
            )));
        }
        other => {
            return Err(Error::config(format!(
                "the base URL {text:?} has scheme {other:?}; use https"
            )));
        }
    }
    Ok((url.as_str().trim_end_matches('/').to_string(), loopback))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_ids_are_object_id_shaped_with_the_time_first_and_never_repeat() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let ids: std::collections::BTreeSet<String> = (0..1000).map(|_| new_note_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            assert_eq!(id.len(), 24, "{id}");
            assert!(
                id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "{id}"
            );
            let secs = u64::from_str_radix(&id[..8], 16).unwrap();
            assert!(
                secs.abs_diff(before & 0xffff_ffff) <= 5,
                "{id}: time {secs}"
            );
        }
    }

    #[test]
    fn base_url_must_be_https_unless_loopback() {
        for ok in [
            "https://app.happyrobot.ai/api/v1",
            "https://app.happyrobot.ai/api/v1/",
            "http://127.0.0.1:8080/api/v1",
            "http://127.5.6.7/api/v1",
            "http://[::1]:9/api/v1",
            "http://localhost:3000/api/v1",
        ] {
            let (url, _) = check_base_url(ok).unwrap();
            assert!(!url.ends_with('/'), "{url}");
        }
        for bad in [
            "http://app.happyrobot.ai/api/v1",
            "http://10.0.0.1/api/v1",
            "ftp://app.happyrobot.ai",
            "app.happyrobot.ai/api/v1",
            "https://user:pass@app.happyrobot.ai/api/v1",
            "https://app.happyrobot.ai/api/v1?x=1",
            "",
        ] {
            let err = check_base_url(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{bad}: {err}");
        }
    }

    #[test]
    fn build_needs_a_key_and_says_how_to_set_it() {
        let err = Client::builder().build().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidApiKey);
        assert_eq!(
            err.to_string(),
            "no API key: set HAPPYROBOT_API_KEY or call Client::new"
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let client = Client::new("hr_live_SECRET").unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        let builder = format!("{:?}", Client::builder().api_key("hr_live_SECRET"));
        assert!(!builder.contains("SECRET"), "{builder}");
    }

    #[test]
    fn note_ids_look_like_object_ids_and_differ() {
        let a = new_note_id();
        let b = new_note_id();
        assert_eq!(a.len(), 24);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{a}"
        );
        assert_ne!(a, b);
    }
}
