//! [`Client`]: the generated client, configured safely, behind one retry executor ([`Client::run`])
//! that every method goes through: the rate controller's turn, the caller's [`Control`], one
//! attempt inside an [`Exchange`] (so that the status, headers and body of every answer reach the
//! client whole), the [`RetryPolicy`]'s decision, and the deadline.

use std::fmt;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use happyrobot_sdk::hooks::Exchange;
use happyrobot_sdk::types::{Call, ErrorBody, Transcript};
use http::StatusCode;
use tracing::Instrument as _;

use crate::answer::{Settings, interpret, outcome, path_param};
use crate::control::Attempt;
use crate::error::Operation;
use crate::input::IntoApiKey;
use crate::rate::{Answer, Controller, NoTurn};
use crate::retry::{MIN_ATTEMPT, Next, StopReason, Tries};
use crate::{
    ApiKey, BaseUrl, CallId, ClientBuilder, Control, Error, NewNote, NoteChanges, NoteId,
    RateStats, Response, RetryPolicy,
};

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
/// Default least wait between the two looks of [`Client::settle_add`] and [`Client::find_note`].
pub const DEFAULT_RECONCILE_SETTLE: Duration = Duration::from_secs(2);
/// Default limit on the size of an answer.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = happyrobot_sdk::hooks::DEFAULT_MAX_RESPONSE_BYTES;

/// The HappyRobot API client.
///
/// Cheap to clone: clones share one connection pool and one rate controller. `Debug` never prints
/// the API key.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) api: happyrobot_sdk::Client,
    pub(crate) base_url: BaseUrl,
    pub(crate) api_key: ApiKey,
    pub(crate) retry: RetryPolicy,
    /// The attempt timeout: built into the reqwest client when this crate built it, else set on
    /// each request through `Inner::with_timeout`.
    pub(crate) timeout: Duration,
    pub(crate) deadline: Duration,
    pub(crate) client_note_ids: bool,
    pub(crate) reconcile_settle: Duration,
    pub(crate) rate: Controller,
    /// What no error may show: an answer may echo the key or a sensitive header.
    pub(crate) secrets: crate::error::Secrets,
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
            .field("rate", &self.shared.rate.stats())
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

/// A fresh note ID as text: [`NoteId::generate`](crate::NoteId::generate), which says what it is.
pub fn new_note_id() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
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

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.shared.base_url.as_str()
    }

    /// The base URL, checked, with whether it is on loopback.
    pub fn checked_base_url(&self) -> &BaseUrl {
        &self.shared.base_url
    }

    /// The API key this client sends. [`ApiKey`] never prints it; code that needs the text (to
    /// hash it, say) calls [`ApiKey::expose_secret`].
    pub fn api_key(&self) -> &ApiKey {
        &self.shared.api_key
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.shared.retry
    }

    /// The attempt timeout.
    pub fn timeout(&self) -> Duration {
        self.shared.timeout
    }

    /// What the rate controller (shared by this client and its clones) has seen and does now: how
    /// many requests went and how many the server refused with `429`, the pace, and the rate the
    /// server was measured to allow.
    pub fn rate_stats(&self) -> RateStats {
        self.shared.rate.stats()
    }

    /// Adds a note to a call and returns the call after the change, with the whole answer
    /// ([`Response`]).
    ///
    /// The note is checked first ([`NewNote::validate`]); nothing is sent when it is invalid. Unless
    /// the note has an ID or the client was built with
    /// [`client_note_ids(false)`](ClientBuilder::client_note_ids), it is sent with a fresh
    /// client-generated ID ([`Error::note_id`] gives it back when the outcome is unknown). Failures
    /// are retried as the [`RetryPolicy`] says: by default only when the note certainly was not
    /// added. A `409 Conflict` (a note with this ID is already on the call) means an earlier attempt
    /// added it: the error's [`outcome`](Error::outcome) is [`Outcome::Applied`](crate::Outcome::Applied).
    pub async fn add_note(&self, call_id: &CallId, note: NewNote) -> Result<Response<Call>, Error> {
        self.add_note_with(call_id, note, &Control::new()).await
    }

    /// [`add_note`](Self::add_note), carried out as `control` says (a stop token, an observer told
    /// of each attempt, a deadline of its own).
    pub async fn add_note_with(
        &self,
        call_id: &CallId,
        note: NewNote,
        control: &Control<'_>,
    ) -> Result<Response<Call>, Error> {
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
            content_len = body.content.len()
        );
        self.run(Operation::AddNote, span, control, move || {
            api.add_note_to_call(id, body)
        })
        .await
        .map_err(|e| e.with_note_id(body.id.clone()).with_call_id_hint(call_id))
    }

    /// Reads a call, notes included.
    ///
    /// Reading changes nothing, so every failure that may pass is retried as the policy allows.
    /// (The API lists this operation but its page is not public: its path and answer are inferred.)
    pub async fn get_call(&self, call_id: &CallId) -> Result<Response<Call>, Error> {
        self.get_call_with(call_id, &Control::new()).await
    }

    /// [`get_call`](Self::get_call), carried out as `control` says.
    pub async fn get_call_with(
        &self,
        call_id: &CallId,
        control: &Control<'_>,
    ) -> Result<Response<Call>, Error> {
        let id: happyrobot_sdk::types::GetCallId = path_param(call_id.as_str(), "call id")?;
        let api = &self.shared.api;
        let id = &id;
        let span = tracing::info_span!(
            "happyrobot.request",
            method = "GET",
            path = "/calls/{id}",
            call_id = %call_id
        );
        self.run(Operation::GetCall, span, control, move || api.get_call(id))
            .await
            .map_err(|e| e.with_call_id_hint(call_id))
    }

    /// Reads a call's transcript: what was said, in order, by whom, with tool calls and their
    /// answers. The typed [`Transcript`] keeps every documented member; the body exactly as the
    /// server sent it, unknown members included, is [`Response::raw_body`].
    ///
    /// Reading changes nothing, so every failure that may pass is retried as the policy allows. A
    /// call that does not exist answers `404` ([`Error::is_not_found`]).
    pub async fn get_transcript(&self, call_id: &CallId) -> Result<Response<Transcript>, Error> {
        self.get_transcript_with(call_id, &Control::new()).await
    }

    /// [`get_transcript`](Self::get_transcript), carried out as `control` says.
    pub async fn get_transcript_with(
        &self,
        call_id: &CallId,
        control: &Control<'_>,
    ) -> Result<Response<Transcript>, Error> {
        let id: happyrobot_sdk::types::GetTranscriptId = path_param(call_id.as_str(), "call id")?;
        let api = &self.shared.api;
        let id = &id;
        let span = tracing::info_span!(
            "happyrobot.request",
            method = "GET",
            path = "/calls/{id}/transcript",
            call_id = %call_id
        );
        self.run(Operation::GetTranscript, span, control, move || {
            api.get_transcript(id)
        })
        .await
        .map_err(|e| e.with_call_id_hint(call_id))
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
        self.update_note_with(call_id, note_id, changes, &Control::new())
            .await
    }

    /// [`update_note`](Self::update_note), carried out as `control` says.
    pub async fn update_note_with(
        &self,
        call_id: &CallId,
        note_id: &NoteId,
        changes: NoteChanges,
        control: &Control<'_>,
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
            note_id = %note_id
        );
        self.run(Operation::UpdateNote, span, control, move || {
            api.update_note(id, note, body)
        })
        .await
        .map_err(|e| e.with_call_id_hint(call_id))
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
        self.delete_note_with(call_id, note_id, &Control::new())
            .await
    }

    /// [`delete_note`](Self::delete_note), carried out as `control` says.
    pub async fn delete_note_with(
        &self,
        call_id: &CallId,
        note_id: &NoteId,
        control: &Control<'_>,
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
            note_id = %note_id
        );
        self.run(Operation::DeleteNote, span, control, move || {
            api.delete_note(id, note)
        })
        .await
        .map_err(|e| e.with_call_id_hint(call_id))
    }

    /// The one retry executor: sends a request as often as the retry policy allows within the
    /// deadline, each attempt in its turn under the rate controller, as `control` says.
    pub(crate) async fn run<T, R, F, Fut>(
        &self,
        op: Operation,
        span: tracing::Span,
        control: &Control<'_>,
        mut send: F,
    ) -> Result<Response<T>, Error>
    where
        T: serde::de::DeserializeOwned,
        F: FnMut() -> Fut,
        Fut: Future<
            Output = Result<happyrobot_sdk::ResponseValue<R>, happyrobot_sdk::Error<ErrorBody>>,
        >,
    {
        let started = Instant::now();
        let deadline = control.deadline.unwrap_or(self.shared.deadline);
        let mut tries = Tries::default();
        let mut last: Option<Error> = None;
        // Whether an attempt before may have been acted on (see `Error::after_unknown`), and the
        // one of those whose late apply would come last.
        let mut doubt = false;
        let mut doubtful: Option<(SystemTime, Duration)> = None;
        let result = loop {
            let told = Attempt {
                number: tries.attempt(),
                operation: op,
            };
            let made = told.number - 1;
            let ticket = match self.turn(&told, control, started, deadline).await {
                Ok(ticket) => ticket,
                Err(NoTurn::Stopped) => break Err(Error::stopped(op, last).with_attempts(made)),
                Err(NoTurn::Late) => break Err(Error::late(op, last, deadline).with_attempts(made)),
                Err(NoTurn::Held(left)) => {
                    let cap = self.shared.retry.retry_after_cap();
                    break Err(Error::held(op, last, left, cap).with_attempts(made));
                }
            };
            let budget = self.attempt_timeout(started, deadline, told.number);
            // Boxed once, here, so that the generated request future (a few kilobytes) is not
            // copied again into each future that wraps it.
            let request = Box::pin(outcome(send()));
            let error = match self
                .attempt::<T, _>(op, &span, ticket, budget, told.number, request)
                .await
            {
                Ok(response) => break Ok(response),
                Err(error) => error,
            };
            let left = deadline.saturating_sub(started.elapsed());
            let paced = self.shared.rate.learns();
            let after = match self.shared.retry.next(&error, tries, op, paced, left) {
                Next::Retry { after, reason } => {
                    tracing::warn!(
                        parent: &span,
                        attempt = told.number,
                        status = error.status().map(|s| s.as_u16()),
                        delay_ms = after.as_millis() as u64,
                        reason = reason.as_str(),
                        error = %error,
                        "request failed; retrying"
                    );
                    after
                }
                Next::Stop(reason) => {
                    break Err(not_retried(error, reason, &span).with_attempts(told.number));
                }
                Next::Late(after) => {
                    break Err(too_late(error, after, deadline, &span).with_attempts(told.number));
                }
            };
            if control.before_retry(&told, &error, after) == ControlFlow::Break(())
                || sleep_unless_stopped(after, control).await.is_err()
            {
                break Err(Error::stopped(op, Some(error)).with_attempts(told.number));
            }
            tries.count(&error);
            if error.outcome_unknown() {
                doubt = true;
                let ends = |(sent, took): (SystemTime, Duration)| sent + took;
                doubtful = match (doubtful, error.attempt()) {
                    (Some(was), Some(now)) if ends(was) > ends(now) => Some(was),
                    (was, now) => now.or(was),
                };
            }
            last = Some(error);
        };
        result.map_err(|error| {
            if doubt {
                error.after_unknown(doubtful)
            } else {
                error
            }
        })
    }

    /// Waits for the attempt's turn under the rate controller, then asks the control whether it
    /// may go.
    async fn turn(
        &self,
        told: &Attempt,
        control: &Control<'_>,
        started: Instant,
        deadline: Duration,
    ) -> Result<crate::rate::Ticket<'_>, NoTurn> {
        let until = tokio::time::Instant::from_std(started).checked_add(deadline);
        let ticket = self.shared.rate.acquire(control.stop, until).await?;
        if control.stopped() || control.before_attempt(told).is_break() {
            return Err(NoTurn::Stopped);
        }
        Ok(ticket)
    }

    /// The timeout of attempt `number`: the client's, or what the deadline leaves of it, and at
    /// least [`MIN_ATTEMPT`]. `None` when it is the client's own, which the request already
    /// carries (see `build`).
    fn attempt_timeout(
        &self,
        started: Instant,
        deadline: Duration,
        number: u32,
    ) -> Option<Duration> {
        let remaining = match number {
            1 => deadline,
            _ => deadline.saturating_sub(started.elapsed()),
        };
        let timeout = self.shared.timeout.min(remaining).max(MIN_ATTEMPT);
        (timeout != self.shared.timeout).then_some(timeout)
    }

    /// Sends one attempt, tells the rate controller how it was answered, and reads the answer.
    async fn attempt<T, Fut>(
        &self,
        op: Operation,
        span: &tracing::Span,
        ticket: crate::rate::Ticket<'_>,
        timeout: Option<Duration>,
        number: u32,
        request: std::pin::Pin<Box<Fut>>,
    ) -> Result<Response<T>, Error>
    where
        T: serde::de::DeserializeOwned,
        Fut: Future<Output = Result<(), Box<happyrobot_sdk::Error<ErrorBody>>>>,
    {
        let shared = &*self.shared;
        let attempt_span = tracing::debug_span!(
            parent: span,
            "happyrobot.attempt",
            attempt = number,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let begun = Instant::now();
        let (result, exchange) = Exchange::with_timeout(timeout)
            .scope(request)
            .instrument(attempt_span.clone())
            .await;
        let took = begun.elapsed();
        if !attempt_span.is_disabled() {
            attempt_span.record("duration_ms", took.as_millis() as u64);
            if let Some(status) = exchange.status {
                attempt_span.record("status", status.as_u16());
            }
        }
        shared.rate.observe(
            ticket,
            match exchange.status {
                Some(StatusCode::TOO_MANY_REQUESTS) => Answer::Throttled(&exchange.headers),
                Some(_) => Answer::Accepted(&exchange.headers),
                None => Answer::None,
            },
        );
        let settings = Settings {
            host: shared.base_url.host(),
            authority: shared.base_url.authority(),
            retry_after_cap: shared.retry.retry_after_cap(),
            secrets: &shared.secrets,
        };
        match interpret::<T>(op, result, exchange, &settings) {
            Ok(response) => {
                tracing::debug!(parent: &attempt_span, "request succeeded");
                Ok(response)
            }
            Err(error) => {
                let sent_at = SystemTime::now()
                    .checked_sub(took)
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                Err(error.with_attempt(sent_at, took).hiding(&shared.secrets))
            }
        }
    }
}

/// The error a call ends with when the policy does not retry it.
fn not_retried(error: Error, reason: StopReason, span: &tracing::Span) -> Error {
    tracing::debug!(
        parent: span,
        outcome = ?error.outcome(),
        stop = ?reason,
        error = %error,
        "request failed; not retrying"
    );
    error
}

/// The error a call ends with when waiting `after` for its retry would pass the deadline.
fn too_late(error: Error, after: Duration, deadline: Duration, span: &tracing::Span) -> Error {
    tracing::debug!(parent: span, error = %error, "not retrying: deadline");
    error.with_context(&format!(
        "It was not retried: waiting {} would pass the deadline of {} for one call.",
        crate::error::describe(after),
        crate::error::describe(deadline)
    ))
}

/// Waits `wait`, unless the control's stop token is cancelled first.
pub(crate) async fn sleep_unless_stopped(wait: Duration, control: &Control<'_>) -> Result<(), ()> {
    // No wait (a 429 paced by the rate control): no timer either.
    if wait.is_zero() {
        return if control.stopped() { Err(()) } else { Ok(()) };
    }
    match control.stop {
        Some(stop) => tokio::select! {
            () = tokio::time::sleep(wait) => Ok(()),
            () = stop.cancelled() => Err(()),
        },
        None => {
            tokio::time::sleep(wait).await;
            Ok(())
        }
    }
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
