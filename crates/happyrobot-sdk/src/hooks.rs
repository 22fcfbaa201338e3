//! What the generated [`crate::Client`] does around each request, through progenitor's
//! `ClientHooks`: the credential and `User-Agent` headers, no `api-version` header, a cap on response
//! bodies, and error bodies the generated code can always decode.

use std::fmt;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use progenitor_client::{ClientHooks, ClientInfo, OperationInfo};
use reqwest::header::{AUTHORIZATION, HeaderValue, USER_AGENT};

use crate::Client;
use crate::types::ErrorBody;

/// The default cap on a response body: a Call is a few kilobytes, one with thousands of notes a few
/// megabytes.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The most of a non-JSON error body kept as its message.
const ERROR_EXCERPT_CHARS: usize = 200;

/// Settings the generated client applies to every request; progenitor calls this the client's inner
/// type.
///
/// Its `Debug` never prints the credential.
#[derive(Clone)]
pub struct Inner {
    authorization: Option<HeaderValue>,
    user_agent: HeaderValue,
    max_response_bytes: usize,
    timeout: Option<std::time::Duration>,
}

/// Why a credential or user agent cannot be sent as an HTTP header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHeaderText {
    what: &'static str,
}

impl fmt::Display for InvalidHeaderText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the {} holds characters an HTTP header cannot carry (line breaks or control characters): \
             check for a stray newline or quote around it",
            self.what
        )
    }
}

impl std::error::Error for InvalidHeaderText {}

impl Default for Inner {
    fn default() -> Self {
        Self {
            authorization: None,
            user_agent: HeaderValue::from_static(concat!(
                "happyrobot-rust/",
                env!("CARGO_PKG_VERSION")
            )),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            timeout: None,
        }
    }
}

impl Inner {
    /// No credential, the default `User-Agent` and body cap.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `authorization: Bearer <api_key>` with every request. The header is marked sensitive, so
    /// reqwest and hyper never print it.
    pub fn with_api_key(mut self, api_key: &str) -> Result<Self, InvalidHeaderText> {
        let mut value = HeaderValue::try_from(format!("Bearer {api_key}"))
            .map_err(|_| InvalidHeaderText { what: "API key" })?;
        value.set_sensitive(true);
        self.authorization = Some(value);
        Ok(self)
    }

    /// Sends `User-Agent: <user_agent>` instead of the default `happyrobot-rust/<version>`.
    pub fn with_user_agent(mut self, user_agent: &str) -> Result<Self, InvalidHeaderText> {
        self.user_agent = HeaderValue::try_from(user_agent)
            .map_err(|_| InvalidHeaderText { what: "user agent" })?;
        Ok(self)
    }

    /// Fails any response whose body is larger than `bytes`, instead of reading it into memory.
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Limits each request, from sending it to reading the whole response, to `timeout`. It applies
    /// per request, so it holds even with a caller-supplied `reqwest::Client`.
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The per-request timeout, if one is set.
    pub fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout
    }

    /// The `User-Agent` sent.
    pub fn user_agent(&self) -> &str {
        self.user_agent.to_str().unwrap_or_default()
    }

    /// The cap on response bodies, in bytes.
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// Whether a credential is set.
    pub fn has_api_key(&self) -> bool {
        self.authorization.is_some()
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "Bearer [REDACTED]"),
            )
            .field("user_agent", &self.user_agent)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Returned in the source chain of a body read that went past [`Inner::with_max_response_bytes`].
pub use http_body_util::LengthLimitError;

impl ClientHooks<Inner> for Client {
    async fn pre<E>(
        &self,
        request: &mut reqwest::Request,
        _info: &OperationInfo,
    ) -> Result<(), progenitor_client::Error<E>> {
        let inner = self.inner();
        let headers = request.headers_mut();
        // progenitor adds `api-version: <info.version>`; the HappyRobot API never asked for it.
        headers.remove("api-version");
        if let Some(authorization) = &inner.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        headers.insert(USER_AGENT, inner.user_agent.clone());
        if let Some(timeout) = inner.timeout {
            *request.timeout_mut() = Some(timeout);
        }
        Ok(())
    }

    async fn exec(
        &self,
        request: reqwest::Request,
        _info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        let response = self.client().execute(request).await?;
        let limit = self.inner().max_response_bytes;
        if response.status().is_client_error() || response.status().is_server_error() {
            return Ok(normalize_error_body(response, limit).await);
        }
        // A declared length within the cap is enforced by hyper itself (a body cannot outgrow its
        // `content-length`), so the common case passes through untouched; rebuilding the response
        // costs about 10,000 instructions a request, measured with callgrind.
        if response
            .content_length()
            .is_some_and(|length| length <= limit as u64)
        {
            return Ok(response);
        }
        // Otherwise the body stays a stream: reading past the cap fails with `LengthLimitError` in
        // the error's source chain, and nothing past the cap is buffered.
        let response: http::Response<reqwest::Body> = response.into();
        Ok(response
            .map(|body| reqwest::Body::wrap(Limited::new(body, limit)))
            .into())
    }
}

/// The generated code decodes every 4xx and 5xx body as [`ErrorBody`] and, when that fails, returns
/// only the body, without the status. An error body that is not such JSON (an HTML page from a proxy,
/// plain text, an empty body) is therefore replaced by `{"message": <excerpt>}`, so that the status,
/// the headers and the gist of the body all reach the caller.
async fn normalize_error_body(response: reqwest::Response, limit: usize) -> reqwest::Response {
    let response: http::Response<reqwest::Body> = response.into();
    let (parts, body) = response.into_parts();
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        // A body that breaks off or is too large: its status and headers still tell what happened.
        Err(_) => Bytes::new(),
    };
    let bytes = if serde_json::from_slice::<ErrorBody>(&bytes).is_ok() {
        bytes
    } else {
        let body = ErrorBody {
            message: Some(excerpt(&bytes)).filter(|m| !m.is_empty()),
            error: None,
            status_code: None,
        };
        serde_json::to_vec(&body)
            .map(Bytes::from)
            .unwrap_or_default()
    };
    http::Response::from_parts(parts, reqwest::Body::from(bytes)).into()
}

/// The start of a body as one line of text: whitespace folded, at most [`ERROR_EXCERPT_CHARS`]
/// characters, invalid UTF-8 replaced.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (i, word) in text.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() > ERROR_EXCERPT_CHARS {
            break;
        }
    }
    if out.chars().count() > ERROR_EXCERPT_CHARS {
        out = out.chars().take(ERROR_EXCERPT_CHARS).collect();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_key() {
        let inner = Inner::new().with_api_key("hr_live_SECRET").unwrap();
        let debug = format!("{inner:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
    }

    #[test]
    fn rejects_keys_that_would_break_the_header() {
        let err = Inner::new().with_api_key("abc\ndef").unwrap_err();
        assert!(!err.to_string().contains("abc"), "{err}");
    }

    #[test]
    fn excerpt_folds_and_truncates() {
        assert_eq!(
            excerpt(b"<html>\n  <b>Bad   Gateway</b>\n</html>"),
            "<html> <b>Bad Gateway</b> </html>"
        );
        let long = "x".repeat(500);
        let e = excerpt(long.as_bytes());
        assert_eq!(e.chars().count(), ERROR_EXCERPT_CHARS + 1);
        assert!(e.ends_with('…'));
        assert_eq!(excerpt(b""), "");
    }
}
