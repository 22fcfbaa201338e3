//! [`Client`] and its [`ClientBuilder`]: the generated client, configured safely, plus retries and
//! error mapping.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use happyrobot_sdk::Inner;
use happyrobot_sdk::types::{Call, ErrorBody};
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use tracing::Instrument as _;

use crate::error::RawBody;
use crate::retry::parse_retry_after;
use crate::{ApiKey, CallId, Error, NewNote, RetryPolicy};

/// The production API.
pub const DEFAULT_BASE_URL: &str = "https://app.happyrobot.ai/api/v1";
/// The environment variable [`Client::from_env`] reads the API key from.
pub const API_KEY_ENV: &str = "HAPPYROBOT_API_KEY";
/// The environment variable [`Client::from_env`] reads an alternative base URL from.
pub const BASE_URL_ENV: &str = "HAPPYROBOT_BASE_URL";
/// Default limit on connecting.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default limit on a whole request, from sending it to reading the answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default limit on the size of an answer.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = happyrobot_sdk::hooks::DEFAULT_MAX_RESPONSE_BYTES;

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
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.shared.base_url)
            .field("api_key", &"[REDACTED]")
            .field("retry", &self.shared.retry)
            .field("settings", self.shared.api.inner())
            .finish()
    }
}

use happyrobot_sdk::ClientInfo as _;

impl Client {
    /// A client for the production API with this key and the default settings.
    pub fn new(api_key: impl Into<String>) -> Result<Self, Error> {
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

    /// Adds a note to a call and returns the call after the change.
    ///
    /// The note is checked first ([`NewNote::validate`]); nothing is sent when it is invalid. Failures
    /// are retried as the [`RetryPolicy`] says: by default only when the note certainly was not added.
    pub async fn add_note(&self, call_id: &CallId, note: NewNote) -> Result<Call, Error> {
        let body = note.to_body()?;
        // The call ID was checked when it was made; the generated path type checks it again.
        let id: happyrobot_sdk::types::AddNoteToCallId = call_id
            .as_str()
            .parse()
            .map_err(|e| Error::invalid_input("call id", format!("{e}")))?;
        let policy = &self.shared.retry;
        let mut retries = 0;
        loop {
            let attempt = retries + 1;
            let span = tracing::info_span!(
                "happyrobot.request",
                method = "POST",
                path = "/calls/{id}/notes",
                call_id = %call_id,
                content_len = body.content.len(),
                attempt,
                status = tracing::field::Empty,
                duration_ms = tracing::field::Empty,
            );
            let started = Instant::now();
            let result = self
                .shared
                .api
                .add_note_to_call(&id, &body)
                .instrument(span.clone())
                .await;
            let elapsed = started.elapsed();
            span.record("duration_ms", elapsed.as_millis() as u64);
            // The success path returns the call straight away: a `Call` is a large value, and each
            // move through another future or `Result` is a memcpy (seen in callgrind profiles).
            let error = match result {
                Ok(value) => {
                    span.record("status", value.status().as_u16());
                    tracing::debug!(parent: &span, "note added");
                    return Ok(value.into_inner());
                }
                Err(error) => match self.map_error(error).await {
                    Ok(call) => return Ok(call),
                    Err(error) => error,
                },
            };
            let status = error.status();
            if let Some(status) = status {
                span.record("status", status.as_u16());
            }
            match policy.decide(&error, retries) {
                Some((delay, reason)) => {
                    tracing::warn!(
                        parent: &span,
                        attempt,
                        status = status.map(|s| s.as_u16()),
                        delay_ms = delay.as_millis() as u64,
                        reason,
                        error = %error,
                        "request failed; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    retries += 1;
                }
                None => {
                    tracing::debug!(
                        parent: &span,
                        attempt,
                        status = status.map(|s| s.as_u16()),
                        outcome_unknown = error.outcome_unknown(),
                        error = %error,
                        "request failed; not retrying"
                    );
                    return Err(error);
                }
            }
        }
    }

    /// Turns the generated client's error into ours; a success it did not recognise (a 2xx other
    /// than 200) still yields the call.
    async fn map_error(&self, error: happyrobot_sdk::Error<ErrorBody>) -> Result<Call, Error> {
        use happyrobot_sdk::Error as E;
        let limit = self.shared.api.inner().max_response_bytes();
        match error {
            E::ErrorResponse(value) => {
                let status = value.status();
                let headers = value.headers().clone();
                let body = value.into_inner();
                Err(self.api_error(status, &headers, body.message.or(body.error)))
            }
            E::UnexpectedResponse(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                let bytes = read_capped(response, limit).await?;
                if status.is_success() {
                    // A success the spec does not list (201, say): the note was added, so decode it.
                    return decode_call(status, &headers, bytes);
                }
                let message = serde_json::from_slice::<ErrorBody>(&bytes)
                    .ok()
                    .and_then(|b| b.message.or(b.error));
                Err(self.api_error(status, &headers, message))
            }
            E::InvalidResponsePayload(bytes, _) => {
                // The hooks turn every 4xx and 5xx body into JSON that decodes, so only a 200 gets here.
                decode_call(StatusCode::OK, &HeaderMap::new(), bytes)
            }
            E::CommunicationError(source) | E::InvalidUpgrade(source) => {
                Err(transport_error(source, false))
            }
            E::ResponseBodyError(source) => {
                if has_source::<happyrobot_sdk::hooks::LengthLimitError>(&source) {
                    Err(Error::BodyTooLarge {
                        limit,
                        status: Some(StatusCode::OK),
                    })
                } else {
                    Err(transport_error(source, true))
                }
            }
            E::InvalidRequest(reason) => Err(Error::invalid_input("request", reason)),
            E::Custom(reason) => Err(Error::Config(reason)),
        }
    }

    fn api_error(&self, status: StatusCode, headers: &HeaderMap, message: Option<String>) -> Error {
        let retry_after = parse_retry_after(headers);
        let policy = &self.shared.retry;
        Error::Api {
            status,
            message: message.filter(|m| !m.trim().is_empty()).unwrap_or_else(|| {
                status
                    .canonical_reason()
                    .unwrap_or("no reason given")
                    .to_string()
            }),
            request_id: request_id(headers),
            retry_after,
            retry_after_too_long: status == StatusCode::TOO_MANY_REQUESTS
                && policy.retries() > 0
                && retry_after.is_some_and(|wait| wait > policy.retry_after_cap()),
        }
    }
}

/// The request ID a server sent back, under the names servers commonly use.
fn request_id(headers: &HeaderMap) -> Option<String> {
    ["x-request-id", "request-id", "x-amzn-requestid", "cf-ray"]
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Decodes a success body as a call; on failure, says where (the note was added all the same).
fn decode_call(
    status: StatusCode,
    headers: &HeaderMap,
    bytes: bytes::Bytes,
) -> Result<Call, Error> {
    let deserializer = &mut serde_json::Deserializer::from_slice(&bytes);
    match serde_path_to_error::deserialize::<_, Call>(deserializer) {
        Ok(call) => Ok(call),
        Err(error) => {
            let path = error.path().to_string();
            let inner = error.into_inner();
            // serde_json's message can quote the offending value, which is customer data: keep its
            // category and position only.
            let reason = format!(
                "{} at line {} column {}",
                match inner.classify() {
                    serde_json::error::Category::Io => "read error",
                    serde_json::error::Category::Syntax => "invalid JSON",
                    serde_json::error::Category::Data => "unexpected value or missing field",
                    serde_json::error::Category::Eof => "the body ends too early",
                },
                inner.line(),
                inner.column()
            );
            Err(Error::Decode {
                status,
                path,
                reason,
                request_id: request_id(headers),
                body: RawBody(bytes),
            })
        }
    }
}

/// Reads a body, at most `limit` bytes of it.
async fn read_capped(mut response: reqwest::Response, limit: usize) -> Result<bytes::Bytes, Error> {
    let status = response.status();
    let mut out = bytes::BytesMut::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if out.len() + chunk.len() > limit {
                    return Err(Error::BodyTooLarge {
                        limit,
                        status: Some(status),
                    });
                }
                out.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(out.freeze()),
            // The hooks' cap cuts off a body that declared no length, before the check above.
            Err(source) if has_source::<happyrobot_sdk::hooks::LengthLimitError>(&source) => {
                return Err(Error::BodyTooLarge {
                    limit,
                    status: Some(status),
                });
            }
            Err(source) => return Err(transport_error(source, true)),
        }
    }
}

/// Sorts a transport failure by whether the request can have reached the server.
fn transport_error(source: reqwest::Error, response_started: bool) -> Error {
    if !response_started && source.is_connect() {
        // Connecting failed (refused, DNS, TLS handshake, or the connect timeout): nothing was sent.
        Error::Connect { source }
    } else if source.is_timeout() {
        Error::Timeout { source }
    } else if source.is_builder() {
        Error::Config(format!("the request could not be built: {source}"))
    } else {
        Error::Network { source }
    }
}

fn has_source<T: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<T>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// Settings for a [`Client`]; made by [`Client::builder`].
#[derive(Default)]
pub struct ClientBuilder {
    api_key: Option<String>,
    base_url: Option<String>,
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    user_agent: Option<String>,
    http_client: Option<reqwest::Client>,
    max_response_bytes: Option<usize>,
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
            .finish()
    }
}

impl ClientBuilder {
    /// The API key (required).
    pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = Some(api_key.into());
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

    /// The limit on a whole request, from sending it to reading the answer; default 60 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The limit on connecting; default 10 s. Ignored with [`http_client`](Self::http_client), whose own
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

    /// Uses this `reqwest::Client` (its proxy, TLS and pool settings) instead of building one.
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
        let api_key = ApiKey::new(self.api_key.ok_or(Error::MissingApiKey)?)?;
        let base_url = check_base_url(self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL))?;
        let user_agent = match self.user_agent.as_deref().map(str::trim) {
            Some(suffix) if !suffix.is_empty() => {
                format!("happyrobot-rust/{} {suffix}", env!("CARGO_PKG_VERSION"))
            }
            _ => format!("happyrobot-rust/{}", env!("CARGO_PKG_VERSION")),
        };
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            return Err(Error::Config(
                "the timeout is zero: give it a positive duration".into(),
            ));
        }
        let inner = Inner::new()
            .with_api_key(api_key.expose_secret())
            .map_err(|e| Error::invalid_input("API key", e.to_string()))?
            .with_user_agent(&user_agent)
            .map_err(|e| Error::Config(e.to_string()))?
            .with_max_response_bytes(
                self.max_response_bytes
                    .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
            )
            .with_timeout(timeout);
        let http = match self.http_client {
            Some(client) => client,
            None => crate::tls::client_builder(&base_url)?
                .connect_timeout(self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT))
                .build()
                .map_err(|e| Error::Config(format!("the HTTP client could not be built: {e}")))?,
        };
        let api = happyrobot_sdk::Client::new_with_client(&base_url, http, inner);
        Ok(Client {
            shared: Arc::new(Shared {
                api,
                base_url,
                retry: self.retry.unwrap_or_default(),
            }),
        })
    }
}

/// Accepts `https` URLs, and `http` only on loopback; returns the URL without a trailing slash.
fn check_base_url(text: &str) -> Result<String, Error> {
    let url = Url::parse(text.trim()).map_err(|e| {
        Error::Config(format!(
            "the base URL {text:?} is not a URL ({e}); it looks like {DEFAULT_BASE_URL}"
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::Config(
            "the base URL holds a user name or password; give the API key with HAPPYROBOT_API_KEY instead"
                .into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::Config(format!(
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
            return Err(Error::Config(format!(
                "the base URL {text:?} is plain http: the API key would cross the network unencrypted. \
                 Use https (http is allowed only for loopback addresses such as 127.0.0.1)"
            )));
        }
        other => {
            return Err(Error::Config(format!(
                "the base URL {text:?} has scheme {other:?}; use https"
            )));
        }
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            let url = check_base_url(ok).unwrap();
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
            assert!(matches!(err, Error::Config(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn build_needs_a_key_and_says_how_to_set_it() {
        let err = Client::builder().build().unwrap_err();
        assert!(matches!(err, Error::MissingApiKey));
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
    fn client_is_send_sync_and_cheap_to_clone() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Client>();
    }
}
