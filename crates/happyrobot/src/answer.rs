//! How one attempt's answer becomes a [`Response`] or an [`Error`]: the exchange the SDK's hook
//! recorded (status, headers, the whole body) read as a success, a redirect, an error status from
//! the API or from a gateway in front of it, or a transport failure sorted by whether the request
//! can have reached the server.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use happyrobot_sdk::hooks::{BodyError, Exchange};
use happyrobot_sdk::types::ErrorBody;
use http::StatusCode;
use http::header::{HeaderMap, LOCATION};
use reqwest::Url;

use crate::error::{BoxError, Operation, Secrets};
use crate::retry::parse_retry_after;
use crate::{Error, Response};

/// What interpreting an answer needs from the client's settings.
pub(crate) struct Settings<'a> {
    /// The API's host, for messages about connecting to it.
    pub(crate) host: &'a str,
    /// The host and port, for messages about who answered.
    pub(crate) authority: &'a str,
    /// The longest `Retry-After` the retry policy honours.
    pub(crate) retry_after_cap: Duration,
    /// What no error may show, hidden in the server's texts before they are cut to length.
    pub(crate) secrets: &'a Secrets,
}

/// Turns what one attempt produced into a response or an error.
pub(crate) fn interpret<T: serde::de::DeserializeOwned>(
    op: Operation,
    result: Result<(), Box<happyrobot_sdk::Error<ErrorBody>>>,
    exchange: Exchange,
    settings: &Settings<'_>,
) -> Result<Response<T>, Error> {
    let Some(status) = exchange.status else {
        // No answer: the generated code failed before or while sending.
        return Err(match result {
            Err(error) => no_answer(op, *error, settings.host),
            Ok(()) => Error::network(op, "the HTTP layer returned no answer".into()),
        });
    };
    // The request ID is copied out only for an error; a response reads it from its headers.
    if let Some(to) = &exchange.redirected_to {
        return Err(Error::followed_redirect(op, status, &safe_location(to))
            .with_request_id(request_id(&exchange.headers, settings)));
    }
    let body = exchange.body.unwrap_or_else(|| Ok(Bytes::new()));
    if status.is_success() {
        return success(op, status, exchange.headers, body, settings);
    }
    let error = if status.is_redirection() {
        Error::redirect(op, status, redirect_location(&exchange.headers))
    } else {
        error_status(op, status, &exchange.headers, body, settings)
    };
    Err(error.with_request_id(request_id(&exchange.headers, settings)))
}

/// A 2xx: the decoded answer, or an error that says the server acted but its answer could not
/// be read.
fn success<T: serde::de::DeserializeOwned>(
    op: Operation,
    status: StatusCode,
    headers: HeaderMap,
    body: Result<Bytes, BodyError>,
    settings: &Settings<'_>,
) -> Result<Response<T>, Error> {
    let id = || request_id(&headers, settings);
    let bytes = match body {
        Ok(bytes) => bytes,
        Err(error) => return Err(unreadable(op, status, error).with_request_id(id())),
    };
    match serde_json::from_slice::<T>(&bytes) {
        Ok(value) => Ok(Response::new(value, status, headers, bytes)),
        Err(_) => {
            let what = decode_failure::<T>(&bytes);
            Err(Error::answer_unreadable(op, status, what, Some(bytes), None).with_request_id(id()))
        }
    }
}

/// Where a redirect pointed, without a query string or user info (a relative one: its path).
fn redirect_location(headers: &HeaderMap) -> Option<String> {
    headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|text| match Url::parse(text) {
            Ok(url) => safe_location(&url),
            Err(_) => text
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .to_string(),
        })
}

/// An error status: a JSON body may explain it; any other body is never shown, and says that
/// something in front of the API answered (a gateway's HTML page).
fn error_status(
    op: Operation,
    status: StatusCode,
    headers: &HeaderMap,
    body: Result<Bytes, BodyError>,
    settings: &Settings<'_>,
) -> Error {
    let parsed = body
        .as_ref()
        .ok()
        .and_then(|bytes| serde_json::from_slice::<ErrorBody>(bytes).ok());
    let message = parsed
        .as_ref()
        .and_then(|b| b.message.as_deref().or(b.error.as_deref()))
        .map(|text| {
            settings
                .secrets
                .hide(text)
                .unwrap_or_else(|| text.to_string())
        });
    let note_not_found = status == StatusCode::NOT_FOUND
        && matches!(op, Operation::UpdateNote | Operation::DeleteNote)
        && parsed.as_ref().is_some_and(mentions_a_note);
    let gateway = parsed.is_none().then_some(settings.authority);
    let error = Error::answered(op, status, message.as_deref(), note_not_found, gateway)
        .with_retry_after(parse_retry_after(headers), settings.retry_after_cap);
    match body {
        Err(body_error) => error.with_source(Box::new(body_error)),
        Ok(_) => error,
    }
}

/// The generated code's error when no answer arrived.
fn no_answer(op: Operation, error: happyrobot_sdk::Error<ErrorBody>, host: &str) -> Error {
    use happyrobot_sdk::Error as E;
    match error {
        E::CommunicationError(source) | E::InvalidUpgrade(source) => {
            transport_error(op, source, host)
        }
        E::ResponseBodyError(source) => transport_error(op, source, host),
        E::InvalidRequest(reason) => Error::invalid_input("request", reason),
        E::Custom(reason) => Error::config(reason),
        // An answer would have been recorded in the exchange; these cannot happen without one.
        E::ErrorResponse(_) | E::UnexpectedResponse(_) | E::InvalidResponsePayload(..) => {
            Error::network(op, "the HTTP layer lost the answer".into())
        }
    }
}

/// What a generated method's future tells beyond the exchange: whether it failed before an answer
/// came. Its decoded value is dropped (the generated code sees empty bodies; the client decodes the
/// exchange's), and its error boxed, so that the futures around it move a pointer-sized output on
/// every poll instead of a `Call` of more than a kilobyte.
pub(crate) async fn outcome<R>(
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
pub(crate) fn path_param<T>(text: &str, field: &str) -> Result<T, Error>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    text.parse().map_err(|e| Error::invalid_input(field, e))
}

/// Whether an error body speaks of a note (and not only of a call): how a `404` for a note that is
/// gone is told apart from one for a call that does not exist. A path the body quotes does not
/// count: a server without the route answers `Cannot DELETE /calls/…/notes/…`, which says nothing
/// of the note.
fn mentions_a_note(body: &ErrorBody) -> bool {
    [body.message.as_deref(), body.error.as_deref()]
        .into_iter()
        .flatten()
        .flat_map(str::split_whitespace)
        .filter(|word| !word.contains('/'))
        .any(|word| word.to_ascii_lowercase().contains("note"))
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

/// The request ID a server sent back, under the names servers commonly use, with any secret in it
/// hidden before it is cut to length.
fn request_id(headers: &HeaderMap, settings: &Settings<'_>) -> Option<String> {
    let id = crate::response::full_request_id(headers)?;
    let id = settings.secrets.hide(id).unwrap_or_else(|| id.to_string());
    let cut = id
        .char_indices()
        .nth(crate::error::MAX_MESSAGE_CHARS)
        .map_or(id.len(), |(at, _)| at);
    Some(id[..cut].to_string())
}

/// Sorts a transport failure by whether the request can have reached the server.
fn transport_error(op: Operation, source: reqwest::Error, host: &str) -> Error {
    // URLs in reqwest's messages are the request's; dropping them keeps errors short and keeps any
    // query out of logs.
    let source = source.without_url();
    if source.is_connect() {
        // Connecting failed (refused, DNS, TLS handshake, the connect timeout, or the proxy): the
        // request was never written.
        Error::connect(Box::new(source), host)
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
