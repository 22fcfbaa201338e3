//! The HTTP side: routing, checks, faults and the five operations, one request at a time.
//!
//! | path under `/api/v1` | methods |
//! |---|---|
//! | `/calls` | `GET`: a page of the calls that match the query |
//! | `/calls/{id}` | `GET`: the call |
//! | `/calls/{id}/transcript` | `GET`: the call's transcript |
//! | `/calls/{id}/notes` | `POST`: add a note |
//! | `/calls/{id}/notes/{noteId}` | `PATCH`: update the note; `DELETE`: delete it |
//!
//! Checks run in this order, and the first that fails answers:
//! 1. path (`404`), then method (`405` with `allow` listing the path's methods);
//! 2. the `authorization` header (`401`);
//! 3. the rate limit, when there is one (`429`; a request that passes takes a token, and its
//!    answer, whatever it is, carries the rate-limit headers asked for);
//! 4. the fault plan (a fault drawn here replaces or wraps what follows);
//! 5. for `GET /calls`, the query: a parameter given twice (`400`); values it cannot read are
//!    ignored (see the `list` module), and the page is answered (`200`);
//!    otherwise the call id: exactly 24 characters after percent-decoding (`400`); the note id:
//!    UTF-8 after percent-decoding (`400`);
//! 6. for `POST` and `PATCH`, the body: size (`413`), content type (`415`), a JSON object with
//!    correctly typed fields and, for `POST`, a `content` (`400`);
//! 7. the call's existence (`404`, `"error": "Not Found"`), then the note's (`404`,
//!    `"error": "Note Not Found"`), then, for `POST` with `refuse_repeated_note_ids`, the note id's
//!    (`409`), then the operation, which answers the whole call (`200`).
//!
//! Then the answer waits for the latency, if one is set, and goes.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use happyrobot_sdk::Timestamp;
use happyrobot_sdk::types::{ErrorBody, Note};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value};
use tokio::time::Instant;

use crate::fault::{Fault, LateAnswer};
use crate::list::ListQuery;
use crate::seed::MOCK_USER_ID;
use crate::{NoteChanges, RecordedRequest, Shared, StoreError};

/// What the service returns to make hyper close the connection without any response.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("happyrobot-mock closed the connection on purpose (fault injection)")
    }
}

impl std::error::Error for DropConnection {}

/// The response header that carries each request's unique id.
pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";

/// Counters shared by every mock in the process, so that ids stay unique even across servers.
static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(1);
static NOTE_COUNTER: AtomicU64 = AtomicU64::new(1);

fn next_request_id() -> String {
    let n = REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("req_{:x}_{n:06}", std::process::id())
}

/// A new note id: 24 hex digits like a MongoDB ObjectId, a timestamp followed by a process-wide
/// counter, so it never repeats within a process and sorts by creation.
fn next_note_id() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let n = NOTE_COUNTER.fetch_add(1, Ordering::Relaxed);
    // Only the low 32 bits of the time fit the first 8 digits, as in an ObjectId.
    format!("{:08x}{n:016x}", secs & 0xffff_ffff)
}

/// The body as read: whole, or cut off because it passed the limit.
enum ReadBody {
    Complete(Bytes),
    TooLarge,
}

/// Bodies past the limit are still read and thrown away up to this many times the limit (at least
/// 64 MiB) so that the client, still sending, reads the `413` instead of a broken pipe.
const DRAIN_FACTOR: usize = 16;
const MIN_DRAIN_BYTES: usize = 64 * 1024 * 1024;

async fn read_body(mut body: Incoming, limit: usize) -> Result<ReadBody, DropConnection> {
    let declared_too_large = body
        .size_hint()
        .exact()
        .is_some_and(|len| len > limit as u64);
    let drain_cap = limit.saturating_mul(DRAIN_FACTOR).max(MIN_DRAIN_BYTES);
    let mut kept = BytesMut::new();
    let mut seen = 0usize;
    let mut too_large = declared_too_large;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| DropConnection)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > limit {
            too_large = true;
        }
        if too_large {
            if seen > drain_cap {
                break;
            }
        } else {
            kept.extend_from_slice(&data);
        }
    }
    Ok(if too_large {
        ReadBody::TooLarge
    } else {
        ReadBody::Complete(kept.freeze())
    })
}

/// What became of a request.
enum Outcome {
    Respond(Response<Full<Bytes>>),
    Drop,
    /// Answered (`Some`) or dropped (`None`) by the gateway of a [`Fault::LateApply`], at the time
    /// the fault says: the latency is not added.
    Gateway(Option<Response<Full<Bytes>>>),
}

impl Outcome {
    fn response_mut(&mut self) -> Option<&mut Response<Full<Bytes>>> {
        match self {
            Self::Respond(response) | Self::Gateway(Some(response)) => Some(response),
            Self::Drop | Self::Gateway(None) => None,
        }
    }
}

/// Handles one request. It never fails except on purpose: `Err` tells hyper to close the
/// connection with no response.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    // The request's arrival, from which a late apply's times are measured.
    let arrived = Instant::now();
    let request_id = next_request_id();
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_string());
    // The body is read before anything is checked so that the log holds every request whole and
    // the connection can be reused whatever the answer.
    let body = read_body(body, shared.max_body_bytes).await?;
    let logged_body = match &body {
        ReadBody::Complete(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        ReadBody::TooLarge => String::new(),
    };
    let index = shared.record(RecordedRequest {
        request_id: request_id.clone(),
        method: parts.method.to_string(),
        path: path_and_query,
        headers: redacted_headers(&parts.headers, &shared.api_key),
        body: redact(&logged_body, &shared.api_key),
        status: None,
        fault: None,
    });
    let request = Received {
        arrived,
        index,
        method: &parts.method,
        path: &path,
        query: &query,
        headers: &parts.headers,
    };
    let outcome = route(&shared, request, body).await;
    if !matches!(outcome, Outcome::Gateway(_)) && !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    match outcome {
        Outcome::Respond(mut response) | Outcome::Gateway(Some(mut response)) => {
            shared.set_status(index, Some(response.status().as_u16()));
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
            }
            Ok(response)
        }
        Outcome::Drop | Outcome::Gateway(None) => Err(DropConnection),
    }
}

/// What [`route`] needs to know of a request besides its body.
#[derive(Clone, Copy)]
struct Received<'a> {
    arrived: Instant,
    /// Its place in the request log.
    index: usize,
    method: &'a Method,
    path: &'a str,
    /// The raw query string, without the `?`; empty when there is none.
    query: &'a str,
    headers: &'a HeaderMap,
}

/// The `error` member of the `404` for a call that does not exist.
pub const CALL_NOT_FOUND_ERROR: &str = "Not Found";

/// The `error` member of the `404` for a note that the call does not hold (never added, or
/// already deleted), so that a client can tell it from a call that does not exist.
pub const NOTE_NOT_FOUND_ERROR: &str = "Note Not Found";

/// The paths the mock serves, with the raw (still percent-encoded) ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route<'a> {
    /// `/api/v1/calls`
    Calls,
    /// `/api/v1/calls/{id}`
    Call { call: &'a str },
    /// `/api/v1/calls/{id}/notes`
    Notes { call: &'a str },
    /// `/api/v1/calls/{id}/transcript`
    Transcript { call: &'a str },
    /// `/api/v1/calls/{id}/notes/{noteId}`
    Note { call: &'a str, note: &'a str },
}

/// What a request asks for once its path and method are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    ListCalls,
    GetCall,
    GetTranscript,
    AddNote,
    UpdateNote,
    DeleteNote,
}

impl<'a> Route<'a> {
    /// The route of a path, or `None` for a path the mock does not serve.
    fn parse(path: &'a str) -> Option<Self> {
        if path == "/api/v1/calls" {
            return Some(Self::Calls);
        }
        let rest = path.strip_prefix("/api/v1/calls/")?;
        let mut segments = rest.split('/');
        let call = segments.next()?;
        match (segments.next(), segments.next(), segments.next()) {
            // `/calls/` (with the slash) is neither the list nor a call.
            (None, _, _) if !call.is_empty() => Some(Self::Call { call }),
            (Some("notes"), None, _) => Some(Self::Notes { call }),
            (Some("transcript"), None, _) => Some(Self::Transcript { call }),
            (Some("notes"), Some(note), None) if !note.is_empty() => {
                Some(Self::Note { call, note })
            }
            _ => None,
        }
    }

    /// The methods this path accepts, as the `allow` header lists them.
    fn allow(self) -> &'static str {
        match self {
            Self::Calls | Self::Call { .. } | Self::Transcript { .. } => "GET",
            Self::Notes { .. } => "POST",
            Self::Note { .. } => "PATCH, DELETE",
        }
    }

    fn operation(self, method: &Method) -> Option<Operation> {
        match (self, method) {
            (Self::Calls, &Method::GET) => Some(Operation::ListCalls),
            (Self::Call { .. }, &Method::GET) => Some(Operation::GetCall),
            (Self::Transcript { .. }, &Method::GET) => Some(Operation::GetTranscript),
            (Self::Notes { .. }, &Method::POST) => Some(Operation::AddNote),
            (Self::Note { .. }, &Method::PATCH) => Some(Operation::UpdateNote),
            (Self::Note { .. }, &Method::DELETE) => Some(Operation::DeleteNote),
            _ => None,
        }
    }

    fn raw_call_id(self) -> &'a str {
        match self {
            Self::Calls => "",
            Self::Call { call }
            | Self::Notes { call }
            | Self::Transcript { call }
            | Self::Note { call, .. } => call,
        }
    }
}

async fn route(shared: &Arc<Shared>, request: Received<'_>, body: ReadBody) -> Outcome {
    let Received {
        method,
        path,
        headers,
        ..
    } = request;
    let Some(route) = Route::parse(path) else {
        return Outcome::Respond(error(
            StatusCode::NOT_FOUND,
            &format!("Cannot {method} {path}"),
        ));
    };
    let Some(operation) = route.operation(method) else {
        let allow = route.allow();
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("Method {method} is not allowed on {path}; use {allow}"),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        return Outcome::Respond(response);
    };
    if let Err(rejection) = check_auth(headers, &shared.api_key) {
        return Outcome::Respond(rejection.into_response());
    }
    let Some(limiter) = &shared.rate_limit else {
        return with_faults(shared, request, operation, route, body).await;
    };
    // The bucket stands in front of everything else, as an API gateway's limiter does: a request
    // it refuses draws no fault and reaches no operation.
    let decision = limiter.take();
    let mut outcome = if decision.allowed {
        with_faults(shared, request, operation, route, body).await
    } else {
        Outcome::Respond(limiter.refusal(&decision))
    };
    if let Some(response) = outcome.response_mut() {
        limiter.add_headers(&decision, response.headers_mut());
    }
    outcome
}

/// Draws the request's fault, if any, and handles the request as it says.
async fn with_faults(
    shared: &Arc<Shared>,
    request: Received<'_>,
    operation: Operation,
    route: Route<'_>,
    body: ReadBody,
) -> Outcome {
    let headers = request.headers;
    let fault = shared.next_fault();
    if let Some(fault) = &fault {
        shared.set_fault(request.index, fault.clone());
    }
    match fault {
        None => Outcome::Respond(perform(
            shared,
            operation,
            route,
            request.query,
            headers,
            body,
        )),
        Some(Fault::RateLimited { retry_after_secs }) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Rate limit exceeded; retry after {retry_after_secs} s"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            Outcome::Respond(response)
        }
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code)
                .ok()
                .filter(|s| s.is_client_error() || s.is_server_error())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Outcome::Respond(error(
                status,
                &format!("Injected failure: {}", reason(status)),
            ))
        }
        Some(Fault::NoteNotFound) => Outcome::Respond(error_named(
            StatusCode::NOT_FOUND,
            NOTE_NOT_FOUND_ERROR,
            "Note not found",
        )),
        Some(Fault::Delay(duration)) => {
            tokio::time::sleep(duration).await;
            Outcome::Respond(perform(
                shared,
                operation,
                route,
                request.query,
                headers,
                body,
            ))
        }
        Some(Fault::InvalidJson) => {
            // The operation is carried out, and its `200` answer is cut short in the middle of the
            // call object, as a broken proxy would send it: a `200` always means the server acted,
            // so a client must report the change as made. An operation that fails answers its error.
            let response = perform(shared, operation, route, request.query, headers, body);
            if response.status() != StatusCode::OK {
                return Outcome::Respond(response);
            }
            let broken = match route {
                Route::Calls => format!(
                    "{{\"calls\":[{{\"id\":\"{}\",\"status\":\"Compl",
                    crate::FIRST_CALL_ID
                ),
                _ => format!("{{\"id\":\"{}\",\"status\":\"Compl", route.raw_call_id()),
            };
            Outcome::Respond(json_response(StatusCode::OK, Bytes::from(broken)))
        }
        Some(Fault::CloseBeforeResponse) => Outcome::Drop,
        Some(Fault::SaveThenDrop) => {
            // The operation is carried out as usual (normally a change is made), and its answer
            // is lost.
            let _ = perform(shared, operation, route, request.query, headers, body);
            Outcome::Drop
        }
        Some(Fault::LateApply {
            answer_after,
            answer,
            apply_after,
        }) => {
            apply_late(shared, request, operation, body, apply_after);
            // The gateway's clock runs from the arrival too, whatever the body took to come.
            tokio::time::sleep(answer_after.saturating_sub(request.arrived.elapsed())).await;
            Outcome::Gateway(match answer {
                LateAnswer::Status(code) => Some(gateway_page(code)),
                LateAnswer::Drop => None,
            })
        }
    }
}

/// Carries the request out `apply_after` after it arrived, in a task of its own: the backend
/// behind a gateway goes on after the gateway gave up, and after the client went away, so the
/// operation must not depend on the connection's task, which ends with the answer (or the drop).
fn apply_late(
    shared: &Arc<Shared>,
    request: Received<'_>,
    operation: Operation,
    body: ReadBody,
    apply_after: Duration,
) {
    let shared = Arc::clone(shared);
    let path = request.path.to_string();
    let query = request.query.to_string();
    let headers = request.headers.clone();
    let arrived = request.arrived;
    let mut stop = shared.shutdown.clone();
    tokio::spawn(async move {
        // `sleep` takes any duration (a huge one waits "forever"), unlike adding it to an instant.
        let wait = tokio::time::sleep(apply_after.saturating_sub(arrived.elapsed()));
        tokio::select! {
            // A stopped server changes nothing more; the sender going away means the same.
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = wait => {}
        }
        // The path was parsed once already; it parses the same way again.
        if let Some(route) = Route::parse(&path) {
            // Nobody waits for this answer: the client had the gateway's.
            let _ = perform(&shared, operation, route, &query, &headers, body);
        }
    });
}

/// The page a gateway (nginx, here) sends when it gives up on the backend: HTML, not the API's
/// JSON, since the API never answered.
fn gateway_page(code: u16) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(code)
        .ok()
        .filter(|s| s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::GATEWAY_TIMEOUT);
    // nginx's own reason phrases, where they differ from the standard ones.
    let phrase = match status.as_u16() {
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        _ => reason(status),
    };
    let title = format!("{} {phrase}", status.as_u16());
    let page = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n\
         <center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n\
         </body>\r\n</html>\r\n"
    );
    let mut response = Response::new(Full::new(Bytes::from(page)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

/// The normal handling of an operation: steps 5 to 7 of the module's order.
fn perform(
    shared: &Shared,
    operation: Operation,
    route: Route<'_>,
    query: &str,
    headers: &HeaderMap,
    body: ReadBody,
) -> Response<Full<Bytes>> {
    if operation == Operation::ListCalls {
        // No call id to check.
        return list_page(shared, query);
    }
    let Some(call_id) = percent_decode(route.raw_call_id()).filter(|id| id.chars().count() == 24)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "The call id must be exactly 24 characters",
        );
    };
    let note_id = match route {
        Route::Note { note, .. } => match percent_decode(note) {
            Some(note_id) => note_id,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "The note id must be UTF-8 after percent-decoding",
                );
            }
        },
        Route::Calls | Route::Call { .. } | Route::Notes { .. } | Route::Transcript { .. } => {
            String::new()
        }
    };
    let result = match operation {
        Operation::ListCalls => return list_page(shared, query),
        Operation::GetCall => shared.get_call(&call_id),
        Operation::GetTranscript => shared.get_transcript(&call_id),
        Operation::AddNote => match parse_note(headers, body) {
            Ok(input) => shared.append_note(&call_id, new_note(shared, input)),
            Err(rejection) => return rejection.into_response(),
        },
        Operation::UpdateNote => match parse_note_update(headers, body) {
            Ok(changes) => shared.update_note(&call_id, &note_id, changes),
            Err(rejection) => return rejection.into_response(),
        },
        Operation::DeleteNote => shared.delete_note(&call_id, &note_id),
    };
    match result {
        Ok(json) => json_response(StatusCode::OK, Bytes::from(json)),
        Err(StoreError::NoCall) => error_named(
            StatusCode::NOT_FOUND,
            CALL_NOT_FOUND_ERROR,
            "Call not found",
        ),
        Err(StoreError::NoNote) => error_named(
            StatusCode::NOT_FOUND,
            NOTE_NOT_FOUND_ERROR,
            "Note not found",
        ),
        Err(StoreError::RepeatedNoteId(id)) => error(
            StatusCode::CONFLICT,
            &format!("a note with id {id} already exists on this call"),
        ),
        Err(StoreError::Encode(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Could not encode the call: {e}"),
        ),
    }
}

/// `GET /calls`: one page of the calls the query matches.
fn list_page(shared: &Shared, query: &str) -> Response<Full<Bytes>> {
    let query = match ListQuery::parse(query) {
        Ok(query) => query,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    match shared.list_calls(&query) {
        Ok(json) => json_response(StatusCode::OK, Bytes::from(json)),
        Err(StoreError::Encode(e)) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Could not encode the calls: {e}"),
        ),
        Err(other) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("Could not list the calls: {other:?}"),
        ),
    }
}

/// The note to store for an add. Fields the client sent are kept, as the spec says they are
/// assigned "when absent"; the id too, unless the mock was told to ignore client ids.
fn new_note(shared: &Shared, input: NoteRequest) -> Note {
    let id = input.id.filter(|_| !shared.ignore_client_note_ids);
    Note {
        id: Some(id.unwrap_or_else(next_note_id)),
        user_id: Some(input.user_id.unwrap_or_else(|| MOCK_USER_ID.to_string())),
        content: Some(input.content),
        flagged: Some(input.flagged.unwrap_or(false)),
        created_at: Some(input.created_at.unwrap_or_else(Timestamp::now)),
    }
}

/// A rejected request: its status and what to tell the client.
struct Rejection {
    status: StatusCode,
    message: String,
}

impl Rejection {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = error(self.status, &self.message);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"happyrobot-mock\""),
            );
        }
        response
    }
}

fn check_auth(headers: &HeaderMap, api_key: &str) -> Result<(), Rejection> {
    const HINT: &str = "send `authorization: Bearer <API key>`";
    let unauthorized = |message: String| Rejection::new(StatusCode::UNAUTHORIZED, message);
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(unauthorized(format!(
            "Missing authorization header (or more than one): {HINT}"
        )));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|text| text.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty() && !token.contains(char::is_whitespace));
    match token {
        None => Err(unauthorized(format!(
            "Malformed authorization header: {HINT}"
        ))),
        Some(token) if token != api_key => Err(unauthorized("Invalid API key".to_string())),
        Some(_) => Ok(()),
    }
}

/// Decodes `%XX` escapes; `None` when the result is not UTF-8. A `%` not followed by two hex digits
/// is kept as it is, as lenient servers do.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            // Two hex digits make at most 255, so the value fits a byte.
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// A note as the client asked for it, checked against the spec's `NoteInput`.
struct NoteRequest {
    content: String,
    flagged: Option<bool>,
    id: Option<String>,
    user_id: Option<String>,
    created_at: Option<Timestamp>,
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        // No content type at all: read the body as JSON, as most JSON APIs do.
        return true;
    };
    let Ok(text) = value.to_str() else {
        return false;
    };
    let essence = text
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The fields of a JSON object body, after the size, content type and syntax checks; `example`
/// shows what a body should look like.
fn parse_object(
    headers: &HeaderMap,
    body: ReadBody,
    example: &str,
) -> Result<Map<String, Value>, Rejection> {
    let bad = |message: &str| Rejection::bad_request(message);
    let bytes = match body {
        ReadBody::TooLarge => {
            return Err(Rejection::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body is too large",
            ));
        }
        ReadBody::Complete(bytes) => bytes,
    };
    if !is_json_content_type(headers) {
        return Err(Rejection::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The body must be JSON: send `content-type: application/json`",
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad(&format!("A JSON body is required, such as {example}")));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| bad(&format!("The body is not valid JSON: {e}")))?;
    match value {
        Value::Object(fields) => Ok(fields),
        _ => Err(bad("The body must be a JSON object")),
    }
}

fn parse_note(headers: &HeaderMap, body: ReadBody) -> Result<NoteRequest, Rejection> {
    let bad = |message: &str| Rejection::bad_request(message);
    let fields = parse_object(headers, body, "{\"content\": \"...\"}")?;
    let content = match fields.get("content") {
        None | Some(Value::Null) => return Err(bad("`content` is required")),
        Some(Value::String(text)) if is_blank(text) => {
            return Err(bad("`content` must not be empty or only whitespace"));
        }
        Some(Value::String(text)) => text.clone(),
        Some(_) => return Err(bad("`content` must be a string")),
    };
    let OptionalFields {
        id,
        user_id,
        flagged,
        created_at,
    } = optional_fields(&fields)?;
    Ok(NoteRequest {
        content,
        flagged,
        id,
        user_id,
        created_at,
    })
}

/// The fields of `NoteInput` and `NoteUpdate` that are optional in both.
struct OptionalFields {
    id: Option<String>,
    user_id: Option<String>,
    flagged: Option<bool>,
    created_at: Option<Timestamp>,
}

fn optional_fields(fields: &Map<String, Value>) -> Result<OptionalFields, Rejection> {
    let bad = |message: &str| Rejection::bad_request(message);
    let flagged = match fields.get("flagged") {
        None => None,
        Some(Value::Bool(flag)) => Some(*flag),
        Some(_) => return Err(bad("`flagged` must be a boolean")),
    };
    let id = optional_string(fields, "id").map_err(|m| bad(&m))?;
    let user_id = optional_string(fields, "user_id").map_err(|m| bad(&m))?;
    let created_at = match optional_string(fields, "created_at").map_err(|m| bad(&m))? {
        None => None,
        Some(text) => Some(
            text.parse::<Timestamp>()
                .map_err(|e| bad(&format!("`created_at` must be an RFC 3339 date-time: {e}")))?,
        ),
    };
    Ok(OptionalFields {
        id,
        user_id,
        flagged,
        created_at,
    })
}

/// The changes a `PATCH` asks for, checked against the spec's `NoteUpdate`: every field optional,
/// and `content`, when present, a string that is not blank.
fn parse_note_update(headers: &HeaderMap, body: ReadBody) -> Result<NoteChanges, Rejection> {
    let fields = parse_object(headers, body, "{\"content\": \"...\", \"flagged\": true}")?;
    let content = match fields.get("content") {
        None => None,
        Some(Value::String(text)) if is_blank(text) => {
            return Err(Rejection::bad_request(
                "`content` must not be empty or only whitespace; leave it out to keep the text",
            ));
        }
        Some(Value::String(text)) => Some(text.clone()),
        Some(_) => {
            return Err(Rejection::bad_request(
                "`content` must be a string; leave it out to keep the text",
            ));
        }
    };
    let OptionalFields {
        id,
        user_id,
        flagged,
        created_at,
    } = optional_fields(&fields)?;
    Ok(NoteChanges {
        id,
        user_id,
        content,
        flagged,
        created_at,
    })
}

/// Whether a text has nothing but whitespace. Besides Unicode whitespace (what `str::trim` removes)
/// this counts the ASCII separators U+001C to U+001F, as Python's `\s` does, so that the mock agrees
/// with spec tools such as Schemathesis on what `pattern: "\\S"` (at least one non-whitespace
/// character) accepts.
fn is_blank(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

fn optional_string(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(format!("`{name}` must be a string")),
    }
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error answer in the spec's `ErrorBody` shape, like HappyRobot's sibling APIs send.
pub(crate) fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    error_named(status, reason(status), message)
}

/// An error answer whose `error` member is `name` instead of the status's reason phrase.
fn error_named(status: StatusCode, name: &str, message: &str) -> Response<Full<Bytes>> {
    let body = ErrorBody {
        message: Some(message.to_string()),
        error: Some(name.to_string()),
        status_code: Some(i64::from(status.as_u16())),
    };
    // Encoding a struct of strings and an integer cannot fail; an empty object is the fallback.
    let json = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    json_response(status, Bytes::from(json))
}

/// Replaces the API key wherever it appears, so that no log ever holds it.
fn redact(text: &str, api_key: &str) -> String {
    if api_key.is_empty() {
        text.to_string()
    } else {
        text.replace(api_key, "[REDACTED]")
    }
}

fn redacted_headers(headers: &HeaderMap, api_key: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let text = String::from_utf8_lossy(value.as_bytes());
            let shown = if name == header::AUTHORIZATION {
                // Keep the scheme, which tells a test the header's shape, and drop the secret.
                match text.trim().split_once(' ') {
                    Some((scheme, _)) => format!("{scheme} [REDACTED]"),
                    None => "[REDACTED]".to_string(),
                }
            } else {
                redact(&text, api_key)
            };
            (name.as_str().to_string(), shown)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("abc%20d").as_deref(), Some("abc d"));
        assert_eq!(percent_decode("%E2%9C%85").as_deref(), Some("✅"));
        assert_eq!(percent_decode("100%").as_deref(), Some("100%"));
        assert_eq!(percent_decode("%zz1").as_deref(), Some("%zz1"));
        assert_eq!(percent_decode("%ff"), None);
    }

    #[test]
    fn blank_texts() {
        for blank in [
            "",
            " ",
            "\t\n\r\u{b}\u{c}",
            "\u{a0}\u{2003}\u{3000}",
            "\u{85}",
            "\u{1c}\u{1f}",
        ] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for text in ["x", " x ", "\u{feff}", "\u{0}", "✅"] {
            assert!(!is_blank(text), "{text:?}");
        }
    }

    #[test]
    fn routes() {
        let parse = Route::parse;
        assert_eq!(
            parse("/api/v1/calls/abc/notes"),
            Some(Route::Notes { call: "abc" })
        );
        assert_eq!(
            parse("/api/v1/calls//notes"),
            Some(Route::Notes { call: "" })
        );
        assert_eq!(
            parse("/api/v1/calls/abc"),
            Some(Route::Call { call: "abc" })
        );
        assert_eq!(
            parse("/api/v1/calls/abc/notes/n1"),
            Some(Route::Note {
                call: "abc",
                note: "n1"
            })
        );
        assert_eq!(parse("/api/v1/calls"), Some(Route::Calls));
        assert_eq!(Route::Calls.allow(), "GET");
        assert_eq!(
            Route::Calls.operation(&Method::GET),
            Some(Operation::ListCalls)
        );
        assert_eq!(Route::Calls.operation(&Method::POST), None);
        for none in [
            "/api/v1/calls/",
            "/api/v1/callsx",
            "/api/v1/calls/a/b/notes",
            "/api/v1/calls/abc/notes/",
            "/api/v1/calls/abc/notes/n1/",
            "/api/v1/calls/abc/notes/n1/x",
            "/api/v1/calls/abc/",
            "/api/v1/calls/abc/other",
            "/calls/abc/notes",
        ] {
            assert_eq!(parse(none), None, "{none}");
        }
        let note = Route::Note { call: "", note: "" };
        assert_eq!(note.allow(), "PATCH, DELETE");
        assert_eq!(note.operation(&Method::DELETE), Some(Operation::DeleteNote));
        assert_eq!(note.operation(&Method::PATCH), Some(Operation::UpdateNote));
        assert_eq!(note.operation(&Method::GET), None);
        assert_eq!(Route::Call { call: "" }.operation(&Method::POST), None);
        assert_eq!(
            Route::Call { call: "" }.operation(&Method::GET),
            Some(Operation::GetCall)
        );
    }

    #[tokio::test]
    async fn gateway_pages_are_nginx_html() {
        let page = gateway_page(504);
        assert_eq!(page.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html");
        let body = page.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            body,
            "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n\
             <center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx</center>\r\n\
             </body>\r\n</html>\r\n"
        );
        assert_eq!(gateway_page(503).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(gateway_page(200).status(), StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn note_ids_are_24_hex_and_unique() {
        let a = next_note_id();
        let b = next_note_id();
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 24);
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
        }
    }
}
