//! [`Response`]: a successful answer, decoded, with everything the server sent kept beside it: the
//! status, the headers, the request ID and the body exactly as it arrived.
//!
//! The API adds, drops and renames fields without notice. The typed value shows what this version
//! of the SDK knows; [`Response::raw_body`] and [`Response::json`] reach every member the server sent,
//! including the ones the spec does not name, with numbers and nesting unchanged.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, StatusCode};

/// A successful answer: the decoded value (reach it through `Deref`, or take it with
/// [`into_inner`](Response::into_inner)) and what came with it.
///
/// ```no_run
/// # async fn run(client: happyrobot::Client, id: happyrobot::CallId) -> Result<(), Box<dyn std::error::Error>> {
/// let call = client.add_note(&id, happyrobot::NewNote::new("Checked in")).await?;
/// println!("{} notes; request {:?}", call.notes.as_ref().map_or(0, Vec::len), call.request_id());
/// // Every member the server sent, known to this SDK or not:
/// let whole: serde_json::Value = call.json()?;
/// # let _ = whole; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Response<T> {
    // Boxed: a `Call` is over a kilobyte, and a response is moved several times on its way to the
    // caller; moving a pointer is cheaper (measured with callgrind, see BENCHMARKS.md).
    value: Box<T>,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

/// Compile-time proof that a response travels across threads and tasks (README, "Stability").
const _: fn() = || {
    fn assert_traits<T: Send + Sync + 'static>() {}
    assert_traits::<Response<crate::types::Call>>();
};

impl<T> Response<T> {
    pub(crate) fn new(value: T, status: StatusCode, headers: HeaderMap, body: Bytes) -> Self {
        Self {
            value: Box::new(value),
            status,
            headers,
            body,
        }
    }

    /// The decoded value.
    pub fn into_inner(self) -> T {
        *self.value
    }

    /// The decoded value, by reference (also reachable through `Deref`).
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The HTTP status (a success: 200, or another 2xx).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The request ID the server sent back (`x-request-id`, `request-id`, ...), for support.
    pub fn request_id(&self) -> Option<&str> {
        request_id(&self.headers)
    }

    /// The body exactly as the server sent it: every member, including those this SDK does not know.
    pub fn raw_body(&self) -> &[u8] {
        &self.body
    }

    /// The body decoded again as any type: `serde_json::Value` to walk every member, or a struct of
    /// your own for fields the API added after this SDK was released.
    pub fn json<U: serde::de::DeserializeOwned>(&self) -> Result<U, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The value and the raw body, for callers that keep both.
    pub fn into_parts(self) -> (T, Bytes) {
        (*self.value, self.body)
    }
}

impl<T> Deref for Response<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

/// The value's own `Debug`, then the metadata; the body as its length only.
impl<T: fmt::Debug> fmt::Debug for Response<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("value", &self.value)
            .field("status", &self.status)
            .field("request_id", &self.request_id())
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The request ID the server sent, from the first of the headers APIs and proxies use for it, cut to
/// [`MAX_MESSAGE_CHARS`](crate::error::MAX_MESSAGE_CHARS) characters; `None` unless it is visible
/// ASCII. Errors show it with the client's secrets hidden (see `answer::request_id`).
pub(crate) fn request_id(headers: &HeaderMap) -> Option<&str> {
    let id = full_request_id(headers)?;
    // `to_str` admits visible ASCII and tabs only: any byte index is a character boundary.
    Some(&id[..id.len().min(crate::error::MAX_MESSAGE_CHARS)])
}

/// The request ID as the server sent it, uncut (for hiding a secret in it before it is cut).
pub(crate) fn full_request_id(headers: &HeaderMap) -> Option<&str> {
    // Header names made once: looking up by `&str` would parse the name on every response.
    static NAMES: [HeaderName; 4] = [
        HeaderName::from_static("x-request-id"),
        HeaderName::from_static("request-id"),
        HeaderName::from_static("x-amzn-requestid"),
        HeaderName::from_static("cf-ray"),
    ];
    NAMES
        .iter()
        .find_map(|name| headers.get(name))?
        .to_str()
        .ok()
}
