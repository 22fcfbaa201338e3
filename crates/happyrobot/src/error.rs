//! [`Error`]: every way a call to the client can fail, with accessors that answer the questions a
//! caller has (was it my input, may I retry, did the note get added?).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;

/// Everything that can go wrong, as one type.
///
/// Ask it rather than matching on it: [`status`](Error::status), [`is_retryable`](Error::is_retryable),
/// [`outcome_unknown`](Error::outcome_unknown) and the other accessors keep working when variants are
/// added. Its `Display` says what happened and what to do; neither `Display` nor `Debug` ever prints
/// the API key or a response body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller's input is invalid; nothing was sent.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// What was invalid (`call id`, `note content`, `API key`, ...).
        field: &'static str,
        /// Why, and what to do.
        reason: String,
    },

    /// No API key was given.
    #[error("no API key: set HAPPYROBOT_API_KEY or call Client::new")]
    MissingApiKey,

    /// The client's configuration is invalid (base URL, user agent, TLS); nothing was sent.
    #[error("invalid client configuration: {0}")]
    Config(String),

    /// The API answered with an error status (4xx or 5xx, or a status it should not send).
    #[error("{}", api_message(*status, message, request_id.as_deref(), *retry_after, *retry_after_too_long))]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The server's explanation (`message` or `error` of a JSON body, or the start of another
        /// body), or the status's reason phrase when it gave none.
        message: String,
        /// The request ID the server sent back (`x-request-id` or `request-id`), for support.
        request_id: Option<String>,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// Whether a retry was not attempted because `Retry-After` asked for a longer wait than the
        /// retry policy allows.
        retry_after_too_long: bool,
    },

    /// No connection could be made (refused, DNS, TLS handshake, connect timeout): the request was
    /// never sent, so nothing happened on the server.
    #[error(
        "could not connect to the HappyRobot API ({}). Nothing was sent; check the base URL and the network, then try again",
        chain(source)
    )]
    Connect {
        /// The transport's error.
        #[source]
        source: reqwest::Error,
    },

    /// The request timed out after it was sent: the note may or may not have been added.
    #[error(
        "the request timed out after it was sent ({}); the note may have been added: check the call before sending it again",
        chain(source)
    )]
    Timeout {
        /// The transport's error.
        #[source]
        source: reqwest::Error,
    },

    /// The connection failed after the request was sent (reset, closed before the answer): the note
    /// may or may not have been added.
    #[error(
        "the connection failed after the request was sent ({}); the note may have been added: check the call before sending it again",
        chain(source)
    )]
    Network {
        /// The transport's error.
        #[source]
        source: reqwest::Error,
    },

    /// The API answered success, so **the note was added**, but the answer could not be decoded as a
    /// call. Never retried. The body is kept ([`Error::raw_body`]) but never printed: it is customer
    /// data.
    #[error("the note was added, but the API's answer could not be decoded at `{path}`: {reason}. Do not send the note again; update the happyrobot crate if the API has changed, or report this with the request ID {}", request_id.as_deref().unwrap_or("(none)"))]
    Decode {
        /// The HTTP status (a success).
        status: StatusCode,
        /// The JSON path where decoding failed, such as `notes[3].flagged`.
        path: String,
        /// What was wrong there.
        reason: String,
        /// The request ID the server sent back, if any.
        request_id: Option<String>,
        /// The undecodable body.
        body: RawBody,
    },

    /// The answer was larger than the client accepts: it was not read. If the status was a success,
    /// the note was added.
    #[error("the API's answer is larger than {limit} bytes and was not read{}; raise the limit with ClientBuilder::max_response_bytes if this is expected", status.map(|s| format!(" (status {s}{})", if s.is_success() { ", so the note was added" } else { "" })).unwrap_or_default())]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: usize,
        /// The status of the answer, when known.
        status: Option<StatusCode>,
    },
}

/// An error and its causes on one line: reqwest's own message ("error sending request") says little
/// without the cause at the end of the chain ("Connection refused").
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
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
    out
}

fn api_message(
    status: StatusCode,
    message: &str,
    request_id: Option<&str>,
    retry_after: Option<Duration>,
    too_long: bool,
) -> String {
    let mut out = format!("HappyRobot API answered {status}: {message}");
    let hint = match status.as_u16() {
        401 | 403 => " Check the API key (HAPPYROBOT_API_KEY): it is missing, wrong or revoked.",
        404 => " Check the call ID: no call with it exists for this API key's organization.",
        400 | 422 => " The API rejected the request as invalid.",
        429 => " Too many requests: slow down and try again later.",
        500..=599 => {
            " The API failed; the note may have been added: check the call before sending it again."
        }
        _ => "",
    };
    out.push('.');
    out.push_str(hint);
    if let Some(wait) = retry_after {
        if too_long {
            out.push_str(&format!(
                " The server asked to wait {} s, longer than the retry policy allows, so it was not retried.",
                wait.as_secs()
            ));
        } else {
            out.push_str(&format!(" Retry after {} s.", wait.as_secs()));
        }
    }
    if let Some(id) = request_id {
        out.push_str(&format!(" (request ID {id})"));
    }
    out
}

/// A response body kept for inspection. `Debug` shows its length only: it is customer data.
#[derive(Clone, PartialEq, Eq)]
pub struct RawBody(pub(crate) Bytes);

impl RawBody {
    /// The bytes as received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for RawBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawBody(<{} bytes>)", self.0.len())
    }
}

impl Error {
    pub(crate) fn invalid_input(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// The HTTP status of the answer, when there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } | Self::Decode { status, .. } => Some(*status),
            Self::BodyTooLarge { status, .. } => *status,
            Self::Connect { source } | Self::Timeout { source } | Self::Network { source } => {
                source.status()
            }
            Self::InvalidInput { .. } | Self::MissingApiKey | Self::Config(_) => None,
        }
    }

    /// The request ID the server sent back, for HappyRobot's support.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Api { request_id, .. } | Self::Decode { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The body of a success answer that could not be decoded (see [`Error::Decode`]).
    pub fn raw_body(&self) -> Option<&[u8]> {
        match self {
            Self::Decode { body, .. } => Some(body.as_bytes()),
            _ => None,
        }
    }

    /// The input (call ID, note, API key) or the configuration is invalid; nothing was sent.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Self::InvalidInput { .. } | Self::MissingApiKey | Self::Config(_)
        )
    }

    /// The API key is missing, malformed, wrong or not allowed (401 or 403).
    pub fn is_unauthorized(&self) -> bool {
        matches!(
            self,
            Self::MissingApiKey
                | Self::InvalidInput {
                    field: "API key",
                    ..
                }
        ) || matches!(self.status().map(|s| s.as_u16()), Some(401 | 403))
    }

    /// No call with this ID exists (404).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(StatusCode::NOT_FOUND)
    }

    /// The API asked to slow down (429).
    pub fn is_rate_limited(&self) -> bool {
        self.status() == Some(StatusCode::TOO_MANY_REQUESTS)
    }

    /// The request timed out (connecting, or waiting for the answer).
    pub fn is_timeout(&self) -> bool {
        match self {
            Self::Connect { source } | Self::Timeout { source } | Self::Network { source } => {
                source.is_timeout()
            }
            _ => false,
        }
    }

    /// Sending the same request again is certain not to add a second note: the server did not act
    /// (no connection was made, or it answered 429). The default retry policy retries exactly these.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } => true,
            Self::Api {
                status,
                retry_after_too_long,
                ..
            } => *status == StatusCode::TOO_MANY_REQUESTS && !retry_after_too_long,
            _ => false,
        }
    }

    /// The request may have been processed: the note may or may not have been added (a timeout or a
    /// broken connection after sending, or a 5xx answer). Check the call before sending it again.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Network { .. } => true,
            // 501 and 505 say the server refused the request as such, before acting on it.
            Self::Api { status, .. } => {
                status.is_server_error()
                    && *status != StatusCode::NOT_IMPLEMENTED
                    && *status != StatusCode::HTTP_VERSION_NOT_SUPPORTED
            }
            _ => false,
        }
    }

    /// The note was certainly added, although this call failed (the answer could not be decoded or
    /// was too large).
    pub fn note_was_added(&self) -> bool {
        match self {
            Self::Decode { .. } => true,
            Self::BodyTooLarge { status, .. } => status.is_some_and(|s| s.is_success()),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> Error {
        Error::Api {
            status: StatusCode::from_u16(status).unwrap(),
            message: "m".into(),
            request_id: None,
            retry_after: None,
            retry_after_too_long: false,
        }
    }

    #[test]
    fn server_errors_leave_the_outcome_unknown_except_refusals() {
        for status in [500, 502, 503, 504, 599] {
            assert!(api(status).outcome_unknown(), "{status}");
        }
        for status in [501, 505, 400, 404, 429] {
            assert!(!api(status).outcome_unknown(), "{status}");
        }
    }

    #[test]
    fn a_malformed_key_is_unauthorized() {
        assert!(Error::invalid_input("API key", "x").is_unauthorized());
        assert!(Error::MissingApiKey.is_unauthorized());
        assert!(!Error::invalid_input("call id", "x").is_unauthorized());
        assert!(api(403).is_unauthorized());
    }
}
