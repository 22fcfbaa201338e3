//! [`Error`]: every way a call to the client can fail, with accessors that answer the questions a
//! caller has: was it my input, may I retry, did the server act on the request?
//!
//! The error is opaque on purpose (as reqwest's is): its fields sit behind accessors and its kind is a
//! small `#[non_exhaustive]` enum, so that new failure modes can be told apart later without breaking
//! anyone's `match`.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

/// A failure boxed as a source, without exposing the transport's own error type.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What kind of failure an [`Error`] is. Match it with a wildcard arm: kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A call ID, note ID, note or other argument is invalid; nothing was sent.
    InvalidInput,
    /// The API key is missing or cannot be sent (empty, whitespace, control characters); nothing
    /// was sent.
    InvalidApiKey,
    /// The client's configuration is invalid (base URL, user agent, timeout, TLS); nothing was sent.
    Config,
    /// No connection could be made (refused, DNS, TLS handshake, connect timeout): the request was
    /// never sent.
    Connect,
    /// The request timed out before any answer arrived, after it may have been sent.
    Timeout,
    /// The connection failed after the request may have been sent, before any answer arrived.
    Network,
    /// The API answered with an error status (4xx or 5xx).
    Api,
    /// The API answered with a redirect (3xx), which the client never follows.
    Redirect,
    /// The API answered success (2xx), so it acted on the request, but the answer could not be read:
    /// the body broke off, stalled past the timeout, was larger than the cap, or did not decode.
    AnswerUnreadable,
    /// The caller stopped the call (its [`Control`](crate::Control)'s token, or its observer)
    /// before the next attempt was sent; [`Error::outcome`] is that of the attempt before, if any.
    Stopped,
}

/// What a failure means for whoever called: the one classification that a command line's exit
/// codes and a bulk run's failure kinds are both mapped from ([`Error::category`]).
///
/// Independent of it, [`Error::outcome`] says whether the server acted: a [`Category::Network`]
/// failure of an add can still have added the note ([`Outcome::Unknown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Category {
    /// The input (a call ID, a note, the API key's form) or the client's configuration is
    /// invalid; nothing was sent. Fix it and call again.
    InvalidInput,
    /// The API key is missing or was rejected (401, 403), or a proxy refused its credentials
    /// (407): every further request would fail the same way.
    Authentication,
    /// The API answered 404: no such call, or no such note on it.
    NotFound,
    /// The API could not be reached, or the connection failed or timed out before an answer:
    /// refused, DNS, TLS, a proxy's refusal, a timeout, a broken connection.
    Network,
    /// Any other answer: an error status of the API or of a gateway in front of it (400, 422,
    /// 429, 5xx), a redirect, or a success whose answer could not be read.
    Api,
    /// The caller stopped the call before its next attempt ([`Control`](crate::Control)).
    Stopped,
}

/// Why a connection could not be made, where it matters for what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConnectProblem {
    /// A proxy asked for credentials it was not given, or refused those it was (`407`).
    ProxyAuth(String),
    /// A proxy refused to open the tunnel to the API (a `403` to `CONNECT`, or another refusal).
    ProxyRefused(String),
    /// The server's certificate is not trusted (an unknown authority, a wrong name, expired).
    Certificate,
}

/// What became of a request that failed: did the server act on it?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The server certainly did not act: the note was not added (or the update or delete not
    /// applied). Sending the request again cannot duplicate anything.
    NotApplied,
    /// The server may or may not have acted. Check before sending again (for an add:
    /// [`Client::find_note`](crate::Client::find_note) with [`Error::note_id`]).
    Unknown,
    /// The server acted (a 2xx status arrived) but its answer could not be read. Do not send again.
    Applied,
}

/// Which of the API's operations a request is: what an [`AttemptObserver`](crate::AttemptObserver)
/// is told, and what an error's message speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// `POST /calls/{id}/notes`.
    AddNote,
    /// `GET /calls/{id}`.
    GetCall,
    /// `PATCH /calls/{id}/notes/{noteId}`.
    UpdateNote,
    /// `DELETE /calls/{id}/notes/{noteId}`.
    DeleteNote,
    /// `GET /calls`: one page of a call listing.
    ListCalls,
    /// `GET /calls/{id}/transcript`.
    GetTranscript,
}

impl Operation {
    /// "the note was added", "the note was updated", ...
    fn done(self) -> &'static str {
        match self {
            Self::AddNote => "the note was added",
            Self::GetCall => "the call was read",
            Self::UpdateNote => "the note was updated",
            Self::DeleteNote => "the note was deleted",
            Self::ListCalls => "the calls were listed",
            Self::GetTranscript => "the transcript was read",
        }
    }

    /// "the note may have been added", ...
    fn maybe(self) -> &'static str {
        match self {
            Self::AddNote => "the note may have been added",
            Self::GetCall => "nothing was changed",
            Self::UpdateNote => "the note may have been updated",
            Self::DeleteNote => "the note may have been deleted",
            Self::ListCalls | Self::GetTranscript => "nothing was changed",
        }
    }

    /// "the note was not added", ...
    fn not(self) -> &'static str {
        match self {
            Self::AddNote => "the note was not added",
            Self::GetCall => "nothing was changed",
            Self::UpdateNote => "the note was not updated",
            Self::DeleteNote => "the note was not deleted",
            Self::ListCalls | Self::GetTranscript => "nothing was changed",
        }
    }

    /// Whether the operation only reads: then a failure never leaves anything changed.
    pub(crate) fn is_read(self) -> bool {
        matches!(self, Self::GetCall | Self::ListCalls | Self::GetTranscript)
    }

    /// Whether sending this request twice can change more than sending it once.
    pub(crate) fn idempotent(self) -> bool {
        !matches!(self, Self::AddNote)
    }
}

/// Everything that can go wrong, as one type.
///
/// Ask it rather than take it apart: [`kind`](Error::kind), [`outcome`](Error::outcome),
/// [`status`](Error::status), [`request_id`](Error::request_id) and the `is_*` predicates keep working
/// as kinds are added. Its `Display` says what happened and what to do. Neither `Display` nor `Debug`
/// ever prints the API key, a note's text or any part of a response body.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    outcome: Outcome,
    message: String,
    status: Option<StatusCode>,
    request_id: Option<String>,
    retry_after: Option<Duration>,
    retry_after_too_long: bool,
    location: Option<String>,
    body: Option<Bytes>,
    note_id: Option<String>,
    note_not_found: bool,
    /// A `404` in the API's JSON (not a gateway's page) for an operation on one call, not about a
    /// note.
    call_not_found: bool,
    connect_problem: Option<ConnectProblem>,
    /// When the attempt this error is about was sent, and how long it took to fail.
    attempt: Option<(std::time::SystemTime, Duration)>,
    /// For [`Client::add_note_settled`](crate::Client::add_note_settled): the add's own error and
    /// why looking for the note did not settle it.
    unsettled: Option<(Error, Unsettled)>,
    /// How many attempts the call made, when the retry executor returned this error.
    attempts: Option<u32>,
    source: Option<BoxError>,
    /// What [`Error::causes`] hides besides URLs' user info: the client's secrets.
    secrets: Secrets,
    /// An attempt of the call before the one this error is about had an unknown outcome.
    earlier_unknown: bool,
}

impl Error {
    fn new(kind: ErrorKind, outcome: Outcome, message: String) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                outcome,
                message,
                status: None,
                request_id: None,
                retry_after: None,
                retry_after_too_long: false,
                location: None,
                body: None,
                note_id: None,
                note_not_found: false,
                call_not_found: false,
                connect_problem: None,
                attempt: None,
                unsettled: None,
                attempts: None,
                source: None,
                secrets: Secrets::default(),
                earlier_unknown: false,
            }),
        }
    }

    pub(crate) fn invalid_input(field: &str, reason: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::InvalidInput,
            Outcome::NotApplied,
            format!("invalid {field}: {reason}"),
        )
    }

    pub(crate) fn invalid_api_key(reason: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::InvalidApiKey,
            Outcome::NotApplied,
            format!("invalid API key: {reason}"),
        )
    }

    pub(crate) fn missing_api_key() -> Self {
        Self::new(
            ErrorKind::InvalidApiKey,
            Outcome::NotApplied,
            "no API key: set HAPPYROBOT_API_KEY or call Client::new".to_string(),
        )
    }

    pub(crate) fn config(reason: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::Config,
            Outcome::NotApplied,
            format!("invalid client configuration: {reason}"),
        )
    }

    pub(crate) fn connect(source: BoxError, host: &str) -> Self {
        let cause = chain(source.as_ref());
        let problem = connect_problem(&cause, host);
        let message = match &problem {
            Some(ConnectProblem::ProxyAuth(proxy)) => format!(
                "the proxy {proxy} refused the credentials it was given, or asked for some (407 \
                 Proxy Authentication Required). Nothing was sent to the API, and it is not \
                 retried: proxies often lock an account after a few failures. Check the user \
                 name and password in the proxy setting (HTTPS_PROXY or ALL_PROXY)"
            ),
            Some(ConnectProblem::ProxyRefused(proxy)) => format!(
                "the proxy {proxy} refused to open a connection to {host}. Nothing was \
                 sent, and it is not retried: the proxy's rules decide. Ask whoever runs the \
                 proxy to allow {host}, or set NO_PROXY={host} to go around it"
            ),
            Some(ConnectProblem::Certificate) => format!(
                "could not connect to {host}: its TLS certificate is not trusted ({cause}). \
                 Nothing was sent, and it is not retried. Behind a private certificate \
                 authority (a TLS-inspecting proxy or gateway), trust it: put its certificate \
                 in the system store, point SSL_CERT_FILE at a PEM bundle that holds it, or \
                 give it to ClientBuilder::add_root_certificate_pem (the CLI's --ca-cert FILE)"
            ),
            None => format!(
                "could not connect to the HappyRobot API at {host} ({cause}). Nothing was sent; \
                 check the base URL, the network and any proxy, then try again"
            ),
        };
        let mut error =
            Self::new(ErrorKind::Connect, Outcome::NotApplied, message).with_source(source);
        error.inner.connect_problem = problem;
        error
    }

    /// A call whose next attempt's turn under the rate limit would come after its deadline;
    /// `last` is the error of the attempt before, if any.
    pub(crate) fn late(op: Operation, last: Option<Error>, deadline: Duration) -> Self {
        let sentence = format!(
            "It was not sent again: its turn under the server's rate limit would come after the \
             deadline of {} for one call.",
            describe(deadline)
        );
        match last {
            Some(last) => last.with_context(&sentence),
            None => Self::new(
                ErrorKind::Timeout,
                Outcome::NotApplied,
                format!(
                    "{}: the request was not sent, because its turn under the server's rate \
                     limit would come after the deadline of {} for one call",
                    capitalize(op.not()),
                    describe(deadline)
                ),
            ),
        }
    }

    /// A call whose next attempt was not sent because the rate controller holds every request
    /// for `left` more (a `429`'s `Retry-After`, or a used-up quota's reset), longer than the
    /// retry policy's `cap` on a wait; `last` is the error of the attempt before, if any. As a
    /// refusal asking for that wait: [`Error::retry_after_too_long`], nothing sent.
    pub(crate) fn held(op: Operation, last: Option<Error>, left: Duration, cap: Duration) -> Self {
        let sentence = format!(
            "It was not sent again: the server's rate limit holds every request for {} more, \
             longer than RetryPolicy::max_retry_after ({}).",
            describe(left),
            describe(cap)
        );
        let mut error = match last {
            Some(last) => last.with_context(&sentence),
            None => Self::new(
                ErrorKind::Timeout,
                Outcome::NotApplied,
                format!(
                    "{}: the request was not sent, because the server's rate limit holds every \
                     request for {} more (a 429's Retry-After, or its quota's reset, given to this \
                     client or to another process sharing its pace), longer than \
                     RetryPolicy::max_retry_after ({})",
                    capitalize(op.not()),
                    describe(left),
                    describe(cap)
                ),
            ),
        };
        error.inner.retry_after = Some(left);
        error.inner.retry_after_too_long = true;
        error
    }

    /// A call stopped by its caller before the next attempt; `last` is the error of the attempt
    /// before, if any.
    pub(crate) fn stopped(op: Operation, last: Option<Error>) -> Self {
        let (outcome, message) = match &last {
            None => (
                Outcome::NotApplied,
                format!("stopped before the request was sent: {}", op.not()),
            ),
            Some(last) => (
                last.outcome(),
                format!("stopped before the request was sent again; the last attempt: {last}"),
            ),
        };
        let mut error = Self::new(ErrorKind::Stopped, outcome, message);
        if let Some(last) = last {
            error.inner.secrets = last.inner.secrets.clone();
            error.inner.status = last.inner.status;
            error.inner.note_id.clone_from(&last.inner.note_id);
            error.inner.attempt = last.inner.attempt;
            error.inner.source = Some(Box::new(last));
        }
        error
    }

    pub(crate) fn timeout(op: Operation, source: BoxError) -> Self {
        Self::unanswered(ErrorKind::Timeout, "the request timed out", op, source)
    }

    pub(crate) fn network(op: Operation, source: BoxError) -> Self {
        Self::unanswered(ErrorKind::Network, "the connection failed", op, source)
    }

    /// A request sent without an answer: unknown whether it was carried out, unless it was a read.
    fn unanswered(kind: ErrorKind, what: &str, op: Operation, source: BoxError) -> Self {
        let message = format!(
            "{what} before the API answered ({}); {}: check before sending it again",
            chain(source.as_ref()),
            op.maybe()
        );
        let outcome = if op.is_read() {
            Outcome::NotApplied
        } else {
            Outcome::Unknown
        };
        Self::new(kind, outcome, message).with_source(source)
    }

    /// An error status. `message` is the server's explanation from a JSON body, if any.
    #[cfg(test)]
    pub(crate) fn api(
        op: Operation,
        status: StatusCode,
        message: Option<&str>,
        note_not_found: bool,
    ) -> Self {
        Self::answered(op, status, message, note_not_found, None)
    }

    /// An error status from the API, or (`gateway` the host it came from) from something in front
    /// of it that answered without the API's JSON: a gateway, a load balancer, a proxy.
    pub(crate) fn answered(
        op: Operation,
        status: StatusCode,
        message: Option<&str>,
        note_not_found: bool,
        gateway: Option<&str>,
    ) -> Self {
        // A conflict on an add means a note with this ID is already on the call: an earlier
        // attempt of this very note added it (a note ID names one note).
        if op == Operation::AddNote && status == StatusCode::CONFLICT {
            let mut error = Self::new(
                ErrorKind::Api,
                Outcome::Applied,
                format!(
                    "HappyRobot API answered {status}: a note with this ID is already on the call, \
                     so an earlier attempt added it; do not send it again"
                ),
            );
            error.inner.status = Some(status);
            return error;
        }
        let outcome = answered_outcome(op, status);
        let reason = message
            .map(clean_message)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("no reason given")
                    .to_string()
            });
        let mut text = match gateway {
            // Its page is not shown (it may echo the request), and its status says all it does.
            Some(host) => format!(
                "the server at {host} answered {status} without the API's error body: a gateway \
                 or proxy in front of the API answered, not the API itself."
            ),
            None => format!("HappyRobot API answered {status}: {reason}."),
        };
        let hint = answered_hint(op, status, outcome, note_not_found, gateway.is_some());
        text.push_str(&hint);
        let mut error = Self::new(ErrorKind::Api, outcome, text);
        error.inner.status = Some(status);
        error.inner.note_not_found = note_not_found && status == StatusCode::NOT_FOUND;
        error.inner.call_not_found = status == StatusCode::NOT_FOUND
            && gateway.is_none()
            && !note_not_found
            && matches!(
                op,
                Operation::GetCall
                    | Operation::AddNote
                    | Operation::UpdateNote
                    | Operation::DeleteNote
            );
        error
    }

    /// A redirect, which is never followed: a `303` says the server acted on the request.
    pub(crate) fn redirect(op: Operation, status: StatusCode, location: Option<String>) -> Self {
        let outcome = if status == StatusCode::SEE_OTHER && !op.is_read() {
            Outcome::Unknown
        } else {
            Outcome::NotApplied
        };
        let to = location
            .as_deref()
            .map_or_else(String::new, |l| format!(" to {l}"));
        let what = if outcome == Outcome::Unknown {
            format!(
                "a 303 says the server acted on the request, so {}: check before sending it again",
                op.maybe()
            )
        } else {
            op.not().to_string()
        };
        let message = format!(
            "HappyRobot API answered {status} (a redirect{to}), which the client does not follow: \
             {what}. The base URL is probably wrong (it should look like {})",
            crate::DEFAULT_BASE_URL
        );
        let mut error = Self::new(ErrorKind::Redirect, outcome, message);
        error.inner.status = Some(status);
        error.inner.location = location;
        error
    }

    /// A caller-supplied HTTP client followed a redirect itself: the request may have gone anywhere.
    pub(crate) fn followed_redirect(op: Operation, status: StatusCode, to: &str) -> Self {
        let message = format!(
            "the HTTP client given with ClientBuilder::http_client followed a redirect to {to} and got \
             {status}: {}. Build that client with `redirect(reqwest::redirect::Policy::none())`, \
             and check the base URL",
            op.maybe()
        );
        let outcome = if op.is_read() {
            Outcome::NotApplied
        } else {
            Outcome::Unknown
        };
        let mut error = Self::new(ErrorKind::Redirect, outcome, message);
        error.inner.status = Some(status);
        error.inner.location = Some(to.to_string());
        error
    }

    /// A success status whose body could not be read or decoded.
    pub(crate) fn answer_unreadable(
        op: Operation,
        status: StatusCode,
        what: String,
        body: Option<Bytes>,
        source: Option<BoxError>,
    ) -> Self {
        let message = format!(
            "{} (the API answered {status}), but its answer could not be read: {what}. Do not send \
             the request again; update the happyrobot crate if the API has changed",
            capitalize(op.done())
        );
        let outcome = if op.is_read() {
            Outcome::NotApplied
        } else {
            Outcome::Applied
        };
        let mut error = Self::new(ErrorKind::AnswerUnreadable, outcome, message);
        error.inner.status = Some(status);
        error.inner.body = body;
        error.inner.source = source;
        error
    }

    /// Keeps the cause of the error (a transport error, or why an error body could not be read).
    pub(crate) fn with_source(mut self, source: BoxError) -> Self {
        self.inner.source = Some(source);
        self
    }

    pub(crate) fn with_request_id(mut self, request_id: Option<String>) -> Self {
        if let Some(id) = &request_id {
            self.inner.message.push_str(&format!(" (request ID {id})"));
        }
        self.inner.request_id = request_id;
        self
    }

    pub(crate) fn with_retry_after(mut self, retry_after: Option<Duration>, cap: Duration) -> Self {
        self.inner.retry_after = retry_after;
        if let Some(wait) = retry_after
            && self.inner.status == Some(StatusCode::TOO_MANY_REQUESTS)
        {
            if crate::retry::retry_after_too_long(Some(wait), cap) {
                self.inner.retry_after_too_long = true;
                self.inner.message.push_str(&format!(
                    " The server asked to wait {}, longer than RetryPolicy::max_retry_after ({}), \
                     so it was not retried.",
                    describe(wait),
                    describe(cap)
                ));
            } else {
                self.inner
                    .message
                    .push_str(&format!(" Retry after {}.", describe(wait)));
            }
        }
        self
    }

    pub(crate) fn with_attempt(mut self, sent_at: std::time::SystemTime, took: Duration) -> Self {
        self.inner.attempt = Some((sent_at, took));
        self
    }

    /// This error with every secret hidden from what it shows (its message, request ID and
    /// redirect location): an answer's text may echo the key or a sensitive header. Applied to
    /// each attempt's error as it is made, before any error wraps it (`stopped`,
    /// `into_unsettled`), which then carries the secrets on.
    pub(crate) fn hiding(mut self, secrets: &Secrets) -> Self {
        let inner = &mut *self.inner;
        if let Some(text) = secrets.hide(&inner.message) {
            inner.message = text;
        }
        for field in [&mut inner.request_id, &mut inner.location] {
            if let Some(text) = field.as_deref().and_then(|text| secrets.hide(text)) {
                *field = Some(text);
            }
        }
        inner.secrets = secrets.clone();
        self
    }

    /// Records how many attempts the call made; after more than one, the message says so.
    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        if attempts > 1 && self.inner.attempts.is_none() {
            self.inner
                .message
                .push_str(&format!(" It failed after {attempts} attempts."));
        }
        self.inner.attempts = Some(attempts);
        self
    }

    pub(crate) fn with_note_id(mut self, note_id: Option<String>) -> Self {
        self.inner.note_id = note_id;
        self
    }

    /// For an API's `404` about the call (not about a note), adds that HappyRobot's call IDs are
    /// usually 24 lower-case hexadecimal digits when `call_id` is not, naming its first character
    /// that is not one: a typo (`O` for `0`) is the likeliest cause. The ID itself was sent as
    /// given; this is a hint, never a refusal.
    pub(crate) fn with_call_id_hint(self, call_id: &crate::CallId) -> Self {
        let about_the_call = self.inner.kind == ErrorKind::Api
            && self.inner.status == Some(StatusCode::NOT_FOUND)
            && !self.inner.note_not_found;
        let Some(c) = about_the_call
            .then(|| call_id.unusual_character())
            .flatten()
        else {
            return self;
        };
        let hint = format!(
            " HappyRobot's call IDs are usually 24 lower-case hexadecimal digits (0-9, a-f), and \
             {c:?} in {:?} is not one: check the ID for a typo.",
            call_id.as_str()
        );
        // Before the request ID, which closes the message.
        let mut error = self;
        let message = &mut error.inner.message;
        let at = match &error.inner.request_id {
            Some(id) => message
                .rfind(&format!(" (request ID {id})"))
                .unwrap_or(message.len()),
            None => message.len(),
        };
        message.insert_str(at, &hint);
        error
    }

    /// An add whose outcome stayed unknown after [`Client::add_note_settled`](crate::Client::add_note_settled)
    /// looked for the note: the add's error (`self`) with why the look did not settle it.
    pub(crate) fn into_unsettled(self, why: Unsettled) -> Self {
        let note = self
            .inner
            .note_id
            .as_deref()
            .map_or_else(|| "the note".to_string(), |id| format!("note {id}"));
        let message = format!(
            "{} Looking for {note} on the call did not settle it: {}. Read the call \
             (Client::get_call) and look for the note before sending it again.",
            self.inner.message,
            why.reason()
        );
        let mut error = Self::new(self.inner.kind, self.inner.outcome, message);
        error.inner.status = self.inner.status;
        error.inner.request_id.clone_from(&self.inner.request_id);
        error.inner.retry_after = self.inner.retry_after;
        error.inner.note_id.clone_from(&self.inner.note_id);
        error.inner.attempt = self.inner.attempt;
        error.inner.attempts = self.inner.attempts;
        error.inner.earlier_unknown = self.inner.earlier_unknown;
        error.inner.secrets = self.inner.secrets.clone();
        error
            .inner
            .connect_problem
            .clone_from(&self.inner.connect_problem);
        error.inner.unsettled = Some((self, why));
        error
    }

    /// The error a call ends with after an earlier attempt's outcome was unknown (a timeout, a
    /// dropped connection, a gateway's `504`): the server may have acted on that attempt, so a
    /// later one that was certainly not acted on (a `429`, a stop before the next attempt) does
    /// not make the call's outcome "not applied". (Said so, as the outcome: a caller who took it
    /// for "not applied" would repeat an add, or report a delete that happened as not done.)
    /// `attempt` is that earlier attempt's (when it was sent, how long it took): the one whose
    /// late apply a lookup must wait out (see [`Error::attempt`]). A `404` for the note stays as
    /// it is: the note is not there, whatever the earlier attempt did.
    pub(crate) fn after_unknown(
        mut self,
        attempt: Option<(std::time::SystemTime, Duration)>,
    ) -> Self {
        self.inner.earlier_unknown = true;
        if self.inner.outcome != Outcome::NotApplied || self.is_note_not_found() {
            return self;
        }
        self.inner.outcome = Outcome::Unknown;
        if attempt.is_some() {
            self.inner.attempt = attempt;
        }
        self.with_context(
            "An earlier attempt's outcome is unknown: the server may have acted on it; check \
             before sending it again.",
        )
    }

    /// Appends a sentence to the message.
    pub(crate) fn with_context(mut self, sentence: &str) -> Self {
        self.inner.message.push(' ');
        self.inner.message.push_str(sentence);
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// What the failure means for the caller: the one classification a command line's exit
    /// codes and a bulk run's failure kinds are mapped from.
    pub fn category(&self) -> Category {
        match self.inner.kind {
            _ if self.is_unauthorized() || self.is_proxy_auth_required() => {
                Category::Authentication
            }
            ErrorKind::InvalidInput | ErrorKind::Config => Category::InvalidInput,
            _ if self.is_not_found() => Category::NotFound,
            // A request the rate limit holds longer than the policy waits: refused by the API,
            // as a `429` asking for that wait is.
            _ if self.inner.retry_after_too_long => Category::Api,
            ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::Network => Category::Network,
            ErrorKind::Stopped => Category::Stopped,
            ErrorKind::InvalidApiKey
            | ErrorKind::Api
            | ErrorKind::Redirect
            | ErrorKind::AnswerUnreadable => Category::Api,
        }
    }

    /// Whether the server acted on the request: not, maybe, or certainly.
    pub fn outcome(&self) -> Outcome {
        self.inner.outcome
    }

    /// The HTTP status of the answer, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// The request ID the server sent back, for HappyRobot's support.
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_id.as_deref()
    }

    /// The texts of the error's causes ([`source`](std::error::Error::source), then its source,
    /// and so on), each with the user name and password of any URL in it replaced by
    /// `[REDACTED]`, as this error's own message has them: for printing the chain, where a cause
    /// from a lower layer (an HTTP client, a proxy) might name a URL with credentials.
    pub fn causes(&self) -> Vec<String> {
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let text = redact_userinfo(&cause.to_string());
            causes.push(self.inner.secrets.hide(&text).unwrap_or(text));
            source = cause.source();
        }
        causes
    }

    /// The server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// Where a redirect pointed (without query string or user info), for [`ErrorKind::Redirect`].
    pub fn location(&self) -> Option<&str> {
        self.inner.location.as_deref()
    }

    /// The body of a success answer that could not be decoded ([`ErrorKind::AnswerUnreadable`]).
    /// It is customer data: it is never printed.
    pub fn raw_body(&self) -> Option<&[u8]> {
        self.inner.body.as_deref()
    }

    /// The ID of the note this request sent, when it had one (the client gives every new note an
    /// ID unless told not to): look the note up with it when the outcome is unknown.
    pub fn note_id(&self) -> Option<&str> {
        self.inner.note_id.as_deref()
    }

    /// When the attempt this error is about was sent, and how long it took to fail: how
    /// [`Client::settle_add`](crate::Client::settle_add) knows how long a late apply may still
    /// come.
    pub fn attempt(&self) -> Option<(std::time::SystemTime, Duration)> {
        self.inner.attempt
    }

    /// Why [`Client::add_note_settled`](crate::Client::add_note_settled) could not tell whether the
    /// note was added, when that is what this error is about (its outcome is then
    /// [`Outcome::Unknown`]); `None` for every other error.
    pub fn unsettled(&self) -> Option<&Unsettled> {
        self.inner.unsettled.as_ref().map(|(_, why)| why)
    }

    /// The error of the add itself, before [`Client::add_note_settled`](crate::Client::add_note_settled)
    /// looked for the note and could not settle it ([`unsettled`](Self::unsettled)); this error's
    /// message is that one's with a sentence about the look added.
    pub fn unsettled_add(&self) -> Option<&Error> {
        self.inner.unsettled.as_ref().map(|(add, _)| add)
    }

    /// How many attempts the call made before it failed: 1 when it was not retried, more after
    /// retries (the message then says how many: `It failed after 3 attempts.`), 0 when it was
    /// stopped or late before its first; `None` for an error that no request led to (invalid
    /// input, configuration).
    pub fn attempts(&self) -> Option<u32> {
        self.inner.attempts
    }

    /// The caller stopped the call before the next attempt ([`ErrorKind::Stopped`]).
    pub fn is_stopped(&self) -> bool {
        self.inner.kind == ErrorKind::Stopped
    }

    /// A proxy refused the credentials it was given, or asked for some (`407`). Nothing was
    /// sent; retrying would only count as more failed logins at the proxy.
    pub fn is_proxy_auth_required(&self) -> bool {
        matches!(
            self.inner.connect_problem,
            Some(ConnectProblem::ProxyAuth(_))
        )
    }

    /// A proxy refused to open the tunnel to the API. Nothing was sent.
    pub fn is_proxy_refused(&self) -> bool {
        matches!(
            self.inner.connect_problem,
            Some(ConnectProblem::ProxyRefused(_))
        )
    }

    /// The server's TLS certificate is not trusted. Nothing was sent; no retry can fix it.
    pub fn is_certificate_error(&self) -> bool {
        self.inner.connect_problem == Some(ConnectProblem::Certificate)
    }

    /// Every other request of a batch would fail the same way, so a batch should stop at once: the
    /// API rejected the key (401, 403), a proxy refused the credentials or the tunnel, or the
    /// server's certificate is not trusted.
    pub fn stops_a_batch(&self) -> bool {
        self.is_unauthorized() || self.inner.connect_problem.is_some()
    }

    /// The input (call ID, note, API key) or the configuration is invalid; nothing was sent.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self.inner.kind,
            ErrorKind::InvalidInput | ErrorKind::InvalidApiKey | ErrorKind::Config
        )
    }

    /// The API key is missing or malformed, or the API answered 401 or 403.
    pub fn is_unauthorized(&self) -> bool {
        self.inner.kind == ErrorKind::InvalidApiKey
            || matches!(self.status().map(|s| s.as_u16()), Some(401 | 403))
    }

    /// The API answered 404: no such call, or no such note ([`is_note_not_found`](Self::is_note_not_found)).
    pub fn is_not_found(&self) -> bool {
        self.inner.kind == ErrorKind::Api && self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// The API answered 404 because the call has no note with this ID, while the call exists: after
    /// a delete, the note is gone either way.
    pub fn is_note_not_found(&self) -> bool {
        self.is_not_found() && self.inner.note_not_found
    }

    /// [`is_note_not_found`](Self::is_note_not_found), and no earlier attempt of the call had an
    /// unknown outcome: the note was gone before the call, not removed by one of its own attempts
    /// (a delete that timed out, then found nothing to delete on its retry, may have deleted it
    /// itself).
    pub fn is_note_already_gone(&self) -> bool {
        self.is_note_not_found() && !self.inner.earlier_unknown
    }

    /// A `404` with a JSON body (not a gateway's page) for reading a call or for one of its notes,
    /// whose message does not mention a note: the API says the call does not exist for this key
    /// (deleted in the app, or never there). Surest for [`Client::get_call`](crate::Client::get_call):
    /// a note's `404` that says only "Not Found" reads as the call's. A gateway that answers in
    /// JSON, or a key of another organization, says the same of every call: before acting on it
    /// (counting the call's notes gone, say), make sure the same key can read another call.
    pub fn is_call_not_found(&self) -> bool {
        self.inner.call_not_found
    }

    /// The API asked to slow down (429).
    pub fn is_rate_limited(&self) -> bool {
        self.inner.kind == ErrorKind::Api && self.status() == Some(StatusCode::TOO_MANY_REQUESTS)
    }

    /// The request timed out (connecting, waiting for the answer, or reading it).
    pub fn is_timeout(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> =
            self.inner.source.as_deref().map(|e| e as _);
        while let Some(error) = source {
            if let Some(reqwest) = error.downcast_ref::<reqwest::Error>()
                && reqwest.is_timeout()
            {
                return true;
            }
            if let Some(body) = error.downcast_ref::<happyrobot_sdk::hooks::BodyError>()
                && body.is_timeout()
            {
                return true;
            }
            if let Some(io) = error.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::TimedOut
            {
                return true;
            }
            source = error.source();
        }
        self.inner.kind == ErrorKind::Timeout
    }

    /// A redirect (3xx) answered the request; see [`location`](Self::location).
    pub fn is_redirect(&self) -> bool {
        self.inner.kind == ErrorKind::Redirect
    }

    /// Sending the same request again is certain not to add a second note and may well succeed: no
    /// connection was made, or the API answered 429 with a wait the retry policy accepts.
    pub fn is_retryable(&self) -> bool {
        // After an attempt that may have been acted on (see `Error::after_unknown`), nothing is
        // certain.
        if self.inner.outcome != Outcome::NotApplied {
            return false;
        }
        if self.inner.retry_after_too_long {
            // Refused for longer than the policy waits, or held as long: not again soon.
            return false;
        }
        match self.inner.kind {
            ErrorKind::Connect => self.inner.connect_problem.is_none(),
            ErrorKind::Api => self.is_rate_limited(),
            _ => false,
        }
    }

    /// Whether the `Retry-After` of a 429 asked for a longer wait than the retry policy allows.
    pub fn retry_after_too_long(&self) -> bool {
        self.inner.retry_after_too_long
    }

    /// The request may have been processed: the note may or may not have been added (a timeout or a
    /// broken connection after sending, most 5xx answers, a 303). Check before sending it again.
    pub fn outcome_unknown(&self) -> bool {
        self.inner.outcome == Outcome::Unknown
    }

    /// The server certainly acted (the note was added), although its answer could not be read.
    pub fn note_was_added(&self) -> bool {
        self.inner.outcome == Outcome::Applied
    }
}

/// Why [`Client::add_note_settled`](crate::Client::add_note_settled) could not tell whether a note
/// whose add had an unknown outcome was added ([`Error::unsettled`]). Nothing more was sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum Unsettled {
    /// The note went without an ID (the client was built with
    /// [`client_note_ids(false)`](crate::ClientBuilder::client_note_ids)), so it cannot be looked
    /// up.
    NoNoteId,
    /// The call was read, and what it holds cannot tell ([`Undecided`](crate::Undecided)).
    Undecided(crate::Undecided),
    /// The call could not be read (or the look was stopped): this is that read's error.
    LookFailed(Error),
}

impl Unsettled {
    /// Why, as a phrase for messages: `the note had no ID to look it up by`, what
    /// [`Undecided::as_str`](crate::Undecided::as_str) says, or `the call could not be read (...)`.
    pub fn reason(&self) -> String {
        match self {
            Self::NoNoteId => "the note had no ID to look it up by".to_string(),
            Self::Undecided(why) => why.as_str().to_string(),
            Self::LookFailed(error) => format!("the call could not be read ({error})"),
        }
    }
}

/// Whether the server may have acted on a request it answered with an error `status`: never for
/// a read; maybe after a 5xx, except 501 and 505, which refuse the request as such before acting
/// on it; otherwise not.
fn answered_outcome(op: Operation, status: StatusCode) -> Outcome {
    if op.is_read() {
        Outcome::NotApplied
    } else if status.is_server_error()
        && status != StatusCode::NOT_IMPLEMENTED
        && status != StatusCode::HTTP_VERSION_NOT_SUPPORTED
    {
        Outcome::Unknown
    } else {
        Outcome::NotApplied
    }
}

/// What to do about an error answer, as a sentence to add to its message.
fn answered_hint(
    op: Operation,
    status: StatusCode,
    outcome: Outcome,
    note_not_found: bool,
    gateway: bool,
) -> String {
    match status.as_u16() {
        401 | 403 => {
            " Check the API key (HAPPYROBOT_API_KEY): it is missing, wrong or revoked.".to_string()
        }
        404 if note_not_found => {
            " No note with this ID is on the call (it may have been deleted already).".to_string()
        }
        404 if op == Operation::ListCalls => {
            " Check the base URL: the API lists no calls there.".to_string()
        }
        404 => " Check the call ID: no call with it exists for this API key's organization."
            .to_string(),
        400 | 422 => format!(" The API rejected the request as invalid; {}.", op.not()),
        429 => " Too many requests: slow down and try again later.".to_string(),
        _ if outcome == Outcome::Unknown && gateway => format!(
            " The API behind it may still be working on the request; {}: check before \
             sending it again.",
            op.maybe()
        ),
        _ if outcome == Outcome::Unknown => format!(
            " The API failed; {}: check before sending it again.",
            op.maybe()
        ),
        _ => String::new(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

/// Field by field, with the body as its length only: it is customer data.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Error")
            .field("kind", &inner.kind)
            .field("outcome", &inner.outcome)
            .field("status", &inner.status)
            .field("request_id", &inner.request_id)
            .field("retry_after", &inner.retry_after)
            .field("location", &inner.location)
            .field("body_len", &inner.body.as_ref().map(Bytes::len))
            .field("note_id", &inner.note_id)
            .field("message", &inner.message)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.inner.unsettled {
            Some((_, Unsettled::LookFailed(look))) => Some(look),
            Some((add, _)) => add.source(),
            None => self.inner.source.as_deref().map(|e| e as _),
        }
    }
}

/// Compile-time proof that errors travel across threads and tasks.
const _: fn() = || {
    fn assert_traits<T: Send + Sync + 'static>() {}
    assert_traits::<Error>();
};

/// The most characters of a server's message kept in an error.
pub(crate) const MAX_MESSAGE_CHARS: usize = 300;

/// A server's message as one safe line: control characters escaped, at most
/// [`MAX_MESSAGE_CHARS`] characters.
pub(crate) fn clean_message(message: &str) -> String {
    let mut out = String::new();
    for (count, c) in message.trim().chars().enumerate() {
        if count >= MAX_MESSAGE_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// An error and its causes on one line: reqwest's own message ("error sending request") says little
/// without the cause at the end of the chain ("Connection refused"). User info in any URL (a proxy's
/// credentials) is blanked out.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    redact_userinfo(&out)
}

/// Replaces `user:password@` in anything that looks like a URL with `[REDACTED]@`: everything
/// from the scheme to the URL's last `@`, since a password written without encoding may hold a
/// `/` (a URL with an `@` in its path loses its host and path to the redaction too).
pub(crate) fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let (before, after) = rest.split_at(scheme_end + 3);
        out.push_str(before);
        let authority_end = after
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\''))
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("[REDACTED]");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &after[authority_end..];
    }
    out.push_str(rest);
    out
}

/// What no message may show, by value: the API key, the values of sensitive headers and the
/// passwords of the proxies the environment names (as written there, and percent-decoded). An API
/// or a gateway in front of it may echo any of them in an error's message, and a password may hold
/// what ends a URL in a message (a quote, a bracket), where [`redact_userinfo`] would stop early.
#[derive(Clone, Default)]
pub(crate) struct Secrets(std::sync::Arc<[String]>);

/// The environment variables reqwest reads the proxy of an `https` URL from, in its order.
const HTTPS_PROXY_VARS: [&str; 4] = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];

/// Those of an `http` URL, besides `ALL_PROXY`.
const HTTP_PROXY_VARS: [&str; 2] = ["HTTP_PROXY", "http_proxy"];

impl Secrets {
    /// `values` (the key, sensitive headers), and the proxies' passwords `env` gives.
    pub(crate) fn new<'a>(
        values: impl IntoIterator<Item = &'a str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let mut all: Vec<String> = values.into_iter().map(str::to_string).collect();
        let names = HTTPS_PROXY_VARS.iter().chain(&HTTP_PROXY_VARS);
        for text in names.filter_map(|name| env(name)) {
            all.extend(proxy_password(text.trim()));
        }
        all.retain(|secret| !secret.is_empty());
        // The longest first, so that a secret holding another is hidden whole.
        all.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        all.dedup();
        Self(all.into())
    }

    /// `text` with every secret in it replaced by `[REDACTED]`, in any ASCII case (a server
    /// may echo a key upper-cased); `None` when it holds none.
    pub(crate) fn hide(&self, text: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for secret in self.0.iter() {
            if let Some(hidden) = hide_one(out.as_deref().unwrap_or(text), secret) {
                out = Some(hidden);
            }
        }
        out
    }
}

/// `text` with `secret` replaced by `[REDACTED]` in any ASCII case, if it is there. (Changing
/// the case of ASCII letters keeps every byte where it was, so the places found in the
/// lower-cased copies are the same in `text`.)
fn hide_one(text: &str, secret: &str) -> Option<String> {
    let (lower, wanted) = (text.to_ascii_lowercase(), secret.to_ascii_lowercase());
    if wanted.is_empty() || !lower.contains(&wanted) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for (at, _) in lower.match_indices(&wanted) {
        out.push_str(text.get(from..at)?);
        out.push_str("[REDACTED]");
        from = at + wanted.len();
    }
    out.push_str(text.get(from..)?);
    Some(out)
}

/// A proxy URL's password as written and percent-decoded (none when it has none, or is no URL).
fn proxy_password(text: &str) -> Vec<String> {
    let with_scheme = if text.contains("://") {
        text.to_string()
    } else {
        format!("http://{text}")
    };
    // As written: between the user's `:` and the last `@` of the authority.
    let mut found: Vec<String> = with_scheme
        .split_once("://")
        .and_then(|(_, rest)| rest[..rest.rfind('@')?].split_once(':'))
        .map(|(_, password)| password.to_string())
        .into_iter()
        .collect();
    if let Some(password) = url::Url::parse(&with_scheme)
        .ok()
        .and_then(|url| url.password().map(str::to_string))
    {
        let decoded = percent_encoding::percent_decode_str(&password)
            .decode_utf8_lossy()
            .into_owned();
        found.push(password);
        found.push(decoded);
    }
    found
}

/// A wait as people read it: `90 s`, or `3 days` for the absurd ones.
pub(crate) fn describe(wait: Duration) -> String {
    let secs = wait.as_secs();
    if secs >= 2 * 86_400 {
        format!("{} days", secs / 86_400)
    } else if secs >= 2 * 3600 {
        format!("{} hours", secs / 3600)
    } else if secs == 0 && !wait.is_zero() {
        format!("{} ms", wait.as_millis())
    } else {
        format!("{secs} s")
    }
}

/// What a connection failure's causes say about a proxy or a certificate. `cause` is the chain
/// of causes as [`chain`] prints it (credentials already blanked out).
fn connect_problem(cause: &str, host: &str) -> Option<ConnectProblem> {
    let lower = cause.to_ascii_lowercase();
    // hyper-util's tunnel errors, as reqwest passes them on.
    if lower.contains("proxy authorization required")
        || lower.contains("proxy authentication required")
    {
        return Some(ConnectProblem::ProxyAuth(proxy_for(host)));
    }
    if lower.contains("tunnel error: unsuccessful") {
        return Some(ConnectProblem::ProxyRefused(proxy_for(host)));
    }
    // rustls ("invalid peer certificate: UnknownIssuer") and OpenSSL ("certificate verify failed").
    if lower.contains("invalid peer certificate")
        || lower.contains("certificate verify failed")
        || lower.contains("unknownissuer")
    {
        return Some(ConnectProblem::Certificate);
    }
    None
}

/// The proxy the environment names for `host`'s scheme, as `host:port` (never its credentials),
/// for messages; "the proxy" when none can be read back.
fn proxy_for(_host: &str) -> String {
    HTTPS_PROXY_VARS
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        .and_then(|text| {
            let with_scheme = if text.contains("://") {
                text
            } else {
                format!("http://{text}")
            };
            let url = url::Url::parse(&with_scheme).ok()?;
            let host = url.host_str()?.to_string();
            Some(match url.port_or_known_default() {
                Some(port) => format!("at {host}:{port}"),
                None => format!("at {host}"),
            })
        })
        .unwrap_or_else(|| "in between".to_string())
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> Error {
        Error::api(
            Operation::AddNote,
            StatusCode::from_u16(status).unwrap(),
            Some("m"),
            false,
        )
    }

    #[test]
    fn secrets_are_hidden_by_value_wherever_an_answer_echoes_them() {
        let env = |name: &str| match name {
            "HTTPS_PROXY" => Some("http://me:pa'ss)word@proxy:3128".to_string()),
            "http_proxy" => Some("me:p%40ss%20w@proxy:3128".to_string()),
            "ALL_PROXY" => Some("socks5://proxy:1080".to_string()),
            _ => None,
        };
        let secrets = Secrets::new(["hr_live_KEY", "gw_TOKEN", ""], env);
        let echo = "key hr_live_KEY, token gw_TOKEN, proxy http://me:pa'ss)word@proxy:3128 and \
                    p@ss w and p%40ss%20w, upper-cased HR_LIVE_KEY";
        let error = Error::api(
            Operation::GetCall,
            StatusCode::UNAUTHORIZED,
            Some(echo),
            false,
        )
        .with_request_id(Some("req hr_live_KEY".into()))
        .hiding(&secrets);
        let shown = format!("{error} {error:?}");
        for secret in [
            "hr_live_KEY",
            "HR_LIVE_KEY",
            "gw_TOKEN",
            "pa'ss)word",
            "p@ss w",
            "p%40ss%20w",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(
            shown.contains("key [REDACTED], token [REDACTED]"),
            "{shown}"
        );
        assert_eq!(error.request_id(), Some("req [REDACTED]"));
        let with_cause = Error::network(
            Operation::GetCall,
            "tunnel via http://me:pa'ss)word@proxy:3128 failed".into(),
        )
        .hiding(&secrets);
        let causes = with_cause.causes().join(" ");
        assert!(!causes.contains("pa'ss)word"), "{causes}");
        // Errors that wrap it (a stop before a retry, an add that a look did not settle) hide
        // its causes too.
        let cause = || {
            Error::network(
                Operation::AddNote,
                "tunnel via http://me:pa'ss)word@proxy:3128 failed".into(),
            )
            .hiding(&secrets)
        };
        let wrapped = [
            Error::stopped(Operation::AddNote, Some(cause())),
            cause().into_unsettled(Unsettled::NoNoteId),
        ];
        for error in wrapped {
            let causes = error.causes().join(" ");
            assert!(causes.contains("tunnel via"), "{causes}");
            assert!(!causes.contains("pa'ss)word"), "{causes}");
        }
        // Nothing to hide: the same text back.
        assert_eq!(secrets.hide("nothing here"), None);
        assert_eq!(Secrets::new([], |_| None).hide("hr_live_KEY"), None);
    }

    #[test]
    fn server_errors_leave_the_outcome_unknown_except_refusals() {
        for status in [500, 502, 503, 504, 599] {
            assert!(api(status).outcome_unknown(), "{status}");
        }
        for status in [501, 505, 400, 404, 429] {
            assert!(!api(status).outcome_unknown(), "{status}");
            assert_eq!(api(status).outcome(), Outcome::NotApplied, "{status}");
        }
    }

    #[test]
    fn every_error_has_one_category() {
        let boxed = || -> BoxError { "x".into() };
        for (error, category) in [
            (Error::invalid_input("call id", "x"), Category::InvalidInput),
            (Error::config("x"), Category::InvalidInput),
            (Error::invalid_api_key("x"), Category::Authentication),
            (Error::missing_api_key(), Category::Authentication),
            (api(401), Category::Authentication),
            (api(403), Category::Authentication),
            (api(404), Category::NotFound),
            (api(400), Category::Api),
            (api(429), Category::Api),
            (api(503), Category::Api),
            (Error::connect(boxed(), "h"), Category::Network),
            (
                Error::timeout(Operation::GetCall, boxed()),
                Category::Network,
            ),
            (
                Error::network(Operation::AddNote, boxed()),
                Category::Network,
            ),
            (Error::stopped(Operation::GetCall, None), Category::Stopped),
        ] {
            assert_eq!(error.category(), category, "{error}");
        }
        // A stop after a failed attempt is still a stop, whatever the attempt was.
        assert_eq!(
            Error::stopped(Operation::GetCall, Some(api(503))).category(),
            Category::Stopped
        );
    }

    #[test]
    fn a_malformed_key_is_unauthorized() {
        assert!(Error::invalid_api_key("x").is_unauthorized());
        assert!(Error::missing_api_key().is_unauthorized());
        assert!(!Error::invalid_input("call id", "x").is_unauthorized());
        assert!(api(403).is_unauthorized());
    }

    #[test]
    fn messages_are_capped_and_escaped() {
        let long = "é".repeat(1000);
        let cleaned = clean_message(&long);
        assert_eq!(cleaned.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert_eq!(clean_message("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }

    #[test]
    fn causes_are_listed_with_user_info_redacted() {
        let inner = std::io::Error::other("tunnel via http://user:s3cret@proxy:3128 failed");
        let middle = Error::config("a lower layer failed").with_source(Box::new(inner));
        let error = Error::config("the call failed").with_source(Box::new(middle));
        let causes = error.causes();
        assert_eq!(causes.len(), 2, "{causes:?}");
        assert!(causes[0].starts_with("invalid client configuration: a lower layer failed"));
        assert_eq!(causes[1], "tunnel via http://[REDACTED]@proxy:3128 failed");
        // What `source` gives, unredacted, for comparison: the cause does hold the password.
        let raw = std::error::Error::source(&error)
            .and_then(std::error::Error::source)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(raw.contains("s3cret"), "{raw}");
    }

    #[test]
    fn user_info_is_redacted_from_urls() {
        assert_eq!(
            redact_userinfo("proxy http://user:s3cret@127.0.0.1:9/ failed (http://a/b)"),
            "proxy http://[REDACTED]@127.0.0.1:9/ failed (http://a/b)"
        );
        assert_eq!(redact_userinfo("no url"), "no url");
        // A password with a `/`, not encoded (the URL does not parse).
        assert_eq!(
            redact_userinfo("the base URL \"https://user:pa/ss@host/api\" is not a URL"),
            "the base URL \"https://[REDACTED]@host/api\" is not a URL"
        );
    }

    #[test]
    fn waits_read_well() {
        assert_eq!(describe(Duration::from_secs(45)), "45 s");
        assert_eq!(describe(Duration::from_secs(86_400 * 400)), "400 days");
        assert_eq!(
            describe(Duration::MAX),
            format!("{} days", u64::MAX / 86_400)
        );
    }
}
