//! What the generated [`crate::Client`] does around each request, through progenitor's
//! `ClientHooks`: the credential and `User-Agent` headers, no `api-version` header, a per-request
//! timeout, a cap on response bodies, and the [`Exchange`] record of what the server answered.
//!
//! The generated methods throw away most of an answer: the body of a success once it is decoded,
//! the status and headers of an error body that is not JSON, and the fact that a status line
//! arrived when the body then breaks off. A caller that needs those (the `happyrobot` crate always
//! does) runs the generated method inside [`Exchange::scope`]; the `exec` hook then reads the whole
//! answer into the exchange and hands the generated code an empty body.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::Limited;
use progenitor_client::{ClientHooks, ClientInfo, OperationInfo};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use reqwest::{ResponseBuilderExt as _, StatusCode, Url};

use crate::Client;

/// The header progenitor adds to every request, which the hook takes out again.
static API_VERSION: HeaderName = HeaderName::from_static("api-version");

/// The default cap on a response body: a Call is a few kilobytes, one with thousands of notes a few
/// megabytes.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Settings the generated client applies to every request; progenitor calls this the client's inner
/// type.
///
/// Its `Debug` never prints the credential.
#[derive(Clone)]
pub struct Inner {
    authorization: Option<HeaderValue>,
    user_agent: HeaderValue,
    max_response_bytes: usize,
    timeout: Option<Duration>,
    never_redirected: bool,
    /// Sent with every request besides the credential and `User-Agent`; values marked sensitive
    /// are never printed.
    headers: HeaderMap,
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
            never_redirected: false,
            headers: HeaderMap::new(),
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
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Says that the reqwest client given with this never follows a redirect (its redirect policy
    /// is `Policy::none()`), so that [`Exchange::redirected_to`] need not be checked: checking it
    /// keeps a copy of every request's URL. Unless this is set, every answer's URL is compared
    /// with the request's.
    pub fn with_redirects_never_followed(mut self) -> Self {
        self.never_redirected = true;
        self
    }

    /// Sends this header with every request as well (a second value of one name is sent as a
    /// second header line). Mark a secret value sensitive (`HeaderValue::set_sensitive`): then
    /// this type's `Debug`, reqwest and hyper never print it. The credential and `User-Agent`
    /// are set after these, so a header of either name here is replaced by them.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The headers sent with every request besides the credential and `User-Agent`.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The per-request timeout, if one is set.
    pub fn timeout(&self) -> Option<Duration> {
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
            .field("never_redirected", &self.never_redirected)
            .field("headers", &RedactedHeaders(&self.headers))
            .finish()
    }
}

/// Header names with their values, a sensitive value as `[REDACTED]`.
struct RedactedHeaders<'a>(&'a HeaderMap);

impl fmt::Debug for RedactedHeaders<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, value)| {
                let shown = if value.is_sensitive() {
                    "[REDACTED]"
                } else {
                    value.to_str().unwrap_or("[not text]")
                };
                (name.as_str(), shown)
            }))
            .finish()
    }
}

/// Returned in the source chain of a body read that went past [`Inner::with_max_response_bytes`].
pub use http_body_util::LengthLimitError;

/// Why the body of an answer could not be read, although its status line and headers arrived.
#[derive(Debug)]
#[non_exhaustive]
pub enum BodyError {
    /// The body is larger than the cap; it was not read (or read only up to the cap).
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The connection broke, or the timeout passed, while the body was arriving.
    Read(Box<dyn std::error::Error + Send + Sync>),
}

impl BodyError {
    /// Whether the body stopped arriving because a timeout passed (rather than the connection
    /// breaking).
    pub fn is_timeout(&self) -> bool {
        let Self::Read(source) = self else {
            return false;
        };
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
        while let Some(error) = current {
            let timed_out = error
                .downcast_ref::<ReadFailure>()
                .is_some_and(|failure| failure.0.is_timeout())
                || error
                    .downcast_ref::<reqwest::Error>()
                    .is_some_and(reqwest::Error::is_timeout)
                || error
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
            if timed_out {
                return true;
            }
            current = error.source();
        }
        false
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { limit } => write!(f, "the body is larger than {limit} bytes"),
            Self::Read(_) => f.write_str("the body could not be read to its end"),
        }
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::TooLarge { .. } => None,
            Self::Read(source) => Some(source.as_ref()),
        }
    }
}

/// What the server answered to one request, as the `exec` hook saw it.
///
/// Run a generated method inside [`Exchange::scope`] to get one. The generated method then sees
/// every answer with an empty body: decode [`Exchange::body`] instead.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Exchange {
    /// This request's timeout, replacing [`Inner::with_timeout`]'s (set before sending).
    pub timeout: Option<Duration>,
    /// The status of the answer; `None` when no answer arrived.
    pub status: Option<StatusCode>,
    /// The headers of the answer.
    pub headers: HeaderMap,
    /// The whole body, or why it could not be read; `None` when no answer arrived.
    pub body: Option<Result<Bytes, BodyError>>,
    /// Where the answer came from when a caller-supplied `reqwest::Client` followed a redirect
    /// (the clients this crate's users build never follow one).
    pub redirected_to: Option<Url>,
}

tokio::task_local! {
    // Boxed: a task-local's value is swapped in and out of its slot on every poll, and a pointer
    // is cheaper to swap than the exchange itself.
    static EXCHANGE: Box<RefCell<Exchange>>;
}

impl Exchange {
    /// An exchange whose request gets this timeout instead of the client's.
    pub fn with_timeout(timeout: Option<Duration>) -> Self {
        Self {
            timeout,
            ..Self::default()
        }
    }

    /// Runs `future` (a generated method's call) with this exchange, and returns its output and the
    /// exchange as the `exec` hook left it.
    pub async fn scope<F: Future>(self, future: F) -> (F::Output, Exchange) {
        // The exchange is taken out of the finished scope, not returned through it: what a future
        // returns is moved through every poll of the futures around it, so the output that passes
        // through the task-local is kept to `F::Output` alone.
        let mut scoped = std::pin::pin!(EXCHANGE.scope(Box::new(RefCell::new(self)), future));
        let output = scoped.as_mut().await;
        let exchange = scoped
            .as_mut()
            .take_value()
            .map(|cell| cell.into_inner())
            .unwrap_or_default();
        (output, exchange)
    }

    fn current_timeout() -> Option<Option<Duration>> {
        EXCHANGE.try_with(|cell| cell.borrow().timeout).ok()
    }
}

/// Reads the rest of a response's body, at most `limit` bytes of it, leaving the response in place
/// (status, URL, extensions) with its body used up.
///
/// A body that comes in one chunk, the usual case, is kept as that chunk, without a copy.
async fn read_body(response: &mut reqwest::Response, limit: usize) -> Result<Bytes, BodyError> {
    let declared = response.content_length();
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(error) => return Err(BodyError::Read(Box::new(ReadFailure(error)))),
        };
        total = total.saturating_add(chunk.len());
        if total > limit {
            return Err(BodyError::TooLarge { limit });
        }
        match (&mut first, &mut joined) {
            (None, None) => first = Some(chunk),
            (Some(_), None) => {
                let capacity = declared
                    .and_then(|length| usize::try_from(length).ok())
                    .unwrap_or(total)
                    .clamp(total, limit);
                let mut buffer = BytesMut::with_capacity(capacity);
                buffer.extend_from_slice(first.take().as_deref().unwrap_or_default());
                buffer.extend_from_slice(&chunk);
                joined = Some(buffer);
            }
            (_, Some(buffer)) => buffer.extend_from_slice(&chunk),
        }
    }
    Ok(match (first, joined) {
        (_, Some(buffer)) => buffer.freeze(),
        (Some(chunk), None) => chunk,
        (None, None) => Bytes::new(),
    })
}

/// A failure while a body arrived, as the transport reported it.
///
/// `Response::chunk` files every such failure under "error decoding response body", though nothing
/// was decoded: this shows the failure underneath instead, and keeps the rest of its chain.
struct ReadFailure(reqwest::Error);

impl ReadFailure {
    fn underneath(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0)
    }
}

impl fmt::Debug for ReadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.underneath() {
            Some(underneath) => fmt::Debug::fmt(underneath, f),
            None => fmt::Debug::fmt(&self.0, f),
        }
    }
}

impl fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.underneath() {
            Some(underneath) => fmt::Display::fmt(underneath, f),
            None => fmt::Display::fmt(&self.0, f),
        }
    }
}

impl std::error::Error for ReadFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self.underneath() {
            Some(underneath) => underneath.source(),
            None => None,
        }
    }
}

/// A response with the status and URL of the one given and nothing else: handed to the generated
/// code when the given one's body could not be read to its end, so that the generated code cannot
/// go on reading what the cap or a failure stopped.
fn emptied(status: StatusCode, url: &Url) -> reqwest::Response {
    let empty = http::Response::builder()
        .status(status)
        .url(url.clone())
        .body(reqwest::Body::from(Bytes::new()));
    match empty {
        Ok(response) => response.into(),
        // Cannot happen: the status came from a response. Hand back an empty 200 rather than
        // panic; the exchange holds the truth.
        Err(_) => http::Response::new(reqwest::Body::from(Bytes::new())).into(),
    }
}

impl ClientHooks<Inner> for Client {
    async fn pre<E>(
        &self,
        request: &mut reqwest::Request,
        _info: &OperationInfo,
    ) -> Result<(), progenitor_client::Error<E>> {
        let inner = self.inner();
        let headers = request.headers_mut();
        // progenitor adds `api-version: <info.version>`; the HappyRobot API never asked for it.
        // A `HeaderName` constant: removing by `&str` would parse the name on every request.
        headers.remove(&API_VERSION);
        for (name, value) in &inner.headers {
            headers.append(name, value.clone());
        }
        if let Some(authorization) = &inner.authorization {
            headers.insert(AUTHORIZATION, authorization.clone());
        }
        headers.insert(USER_AGENT, inner.user_agent.clone());
        let timeout = match Exchange::current_timeout() {
            Some(Some(timeout)) => Some(timeout),
            _ => inner.timeout,
        };
        if let Some(timeout) = timeout {
            *request.timeout_mut() = Some(timeout);
        }
        Ok(())
    }

    async fn exec(
        &self,
        request: reqwest::Request,
        _info: &OperationInfo,
    ) -> reqwest::Result<reqwest::Response> {
        let limit = self.inner().max_response_bytes;
        let in_scope = EXCHANGE.try_with(|_| ()).is_ok();
        if !in_scope {
            return self.exec_plain(request, limit).await;
        }
        let sent_to = (!self.inner().never_redirected).then(|| request.url().clone());
        let mut response = self.client().execute(request).await?;
        let status = response.status();
        let redirected_to = sent_to
            .filter(|sent_to| response.url() != sent_to)
            .map(|_| response.url().clone());
        let headers = std::mem::take(response.headers_mut());
        // A declared length over the cap is refused without reading a byte of it.
        let body = if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            Err(BodyError::TooLarge { limit })
        } else {
            read_body(&mut response, limit).await
        };
        // The generated code gets the status alone, with no headers and an empty body; the caller
        // reads the rest from the exchange. A body read to its end leaves the response empty as it
        // is; any other is replaced.
        let response = match &body {
            Ok(_) => response,
            Err(_) => emptied(status, response.url()),
        };
        EXCHANGE.with(|cell| {
            let mut exchange = cell.borrow_mut();
            exchange.status = Some(status);
            exchange.headers = headers;
            exchange.body = Some(body);
            exchange.redirected_to = redirected_to;
        });
        Ok(response)
    }
}

impl Client {
    /// `exec` outside an [`Exchange`]: the answer is passed on as it came, with its body capped.
    async fn exec_plain(
        &self,
        request: reqwest::Request,
        limit: usize,
    ) -> reqwest::Result<reqwest::Response> {
        let response = self.client().execute(request).await?;
        // A declared length within the cap is enforced by hyper itself (a body cannot outgrow its
        // `content-length`), so the common case passes through untouched.
        if response
            .content_length()
            .is_some_and(|length| length <= limit as u64)
        {
            return Ok(response);
        }
        // Otherwise the body stays a stream: reading past the cap fails with `LengthLimitError` in
        // the error's source chain, and nothing past the cap is buffered.
        let url = response.url().clone();
        let response: http::Response<reqwest::Body> = response.into();
        let (mut parts, body) = response.into_parts();
        parts.extensions.clear();
        let limited = reqwest::Body::wrap(Limited::new(body, limit));
        let mut rebuilt = http::Response::builder()
            .status(parts.status)
            .url(url)
            .body(limited)
            .unwrap_or_else(|_| http::Response::new(reqwest::Body::from(Bytes::new())));
        *rebuilt.headers_mut() = parts.headers;
        Ok(rebuilt.into())
    }
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
}
