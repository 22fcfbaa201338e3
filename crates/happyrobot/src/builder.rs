//! [`ClientBuilder`]: every setting of a [`Client`], checked when it is built (nothing is sent).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use happyrobot_sdk::Inner;
use http::{HeaderName, HeaderValue};

use crate::client::{
    API_KEY_ENV, BASE_URL_ENV, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DEADLINE,
    DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_RECONCILE_SETTLE, DEFAULT_TIMEOUT, Shared,
};
use crate::input::IntoApiKey;
use crate::rate::{Controller, Lane};
use crate::{ApiKey, BaseUrl, Client, Error, RateControl, RetryPolicy};

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
    rate_control: Option<RateControl>,
    /// Where the pace is shared with the clients of other processes (feature `shared-rate`).
    #[cfg(feature = "shared-rate")]
    rate_share_dir: Option<std::path::PathBuf>,
    /// Headers for every request, in order: name, value, whether the value is a secret.
    headers: Vec<(String, String, bool)>,
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
            .field("rate_control", &self.rate_control)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, value, sensitive)| {
                        (
                            name.as_str(),
                            if *sensitive {
                                "[REDACTED]"
                            } else {
                                value.as_str()
                            },
                        )
                    })
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The file in `dir` of the pace shared under `base_url` and `api_key`.
#[cfg(feature = "shared-rate")]
fn lane_in(dir: &std::path::Path, base_url: &BaseUrl, api_key: &ApiKey) -> Lane {
    let name = crate::rate::lane_file(base_url.as_str(), api_key.expose_secret());
    Lane::new(dir.join(name))
}

impl ClientBuilder {
    /// The API key (required): text, or an [`ApiKey`] already checked.
    pub fn api_key(mut self, api_key: impl IntoApiKey) -> Self {
        self.api_key = Some(api_key.into_key_text());
        self
    }

    /// Where to send requests; default [`DEFAULT_BASE_URL`](crate::DEFAULT_BASE_URL). It must be `https`, except for loopback
    /// addresses (`127.0.0.0/8`, `::1`, `localhost`), which may be `http` for tests and the mock server.
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// Takes the key from `HAPPYROBOT_API_KEY` and the base URL from `HAPPYROBOT_BASE_URL`, where set
    /// and not already given to this builder. A variable set to an empty value counts as set:
    /// [`build`](Self::build) refuses an empty base URL rather than silently using the production
    /// API.
    pub fn from_env(mut self) -> Self {
        if self.api_key.is_none() {
            self.api_key = std::env::var(API_KEY_ENV).ok();
        }
        if self.base_url.is_none() {
            self.base_url = std::env::var(BASE_URL_ENV).ok();
        }
        self
    }

    /// How requests are paced; default [`RateControl::adaptive`]: nothing until the server answers
    /// `429`, then every request of this client and its clones is spaced to just under the rate
    /// the server was measured to allow. [`RateControl::off`] turns it off; `max_rate` sets a
    /// ceiling.
    pub fn rate_control(mut self, control: RateControl) -> Self {
        self.rate_control = Some(control);
        self
    }

    /// Shares this client's pace with the clients of other processes on this machine that use the
    /// same base URL and API key and name the same `dir` (feature `shared-rate`; the `happyrobot`
    /// command shares through its state directory): under one rate limit they pace as one
    /// client. A process that starts while another already paces takes its turns from that pace
    /// at once, instead of finding the limit used up and learning a share from scratch; a refusal
    /// cuts the one pace; when one ends, the others go on at the whole pace.
    ///
    /// The state is a small file in `dir` (both made if missing, and on Unix for their owner
    /// only), named by a hash of the base URL and the key: no key is written. The client looks for
    /// it at each request of its slow start (until 64 answers were accepted or the server limited
    /// the rate), and reads and writes it under a lock at each decision once it
    /// paces (after the server limited the rate); a file that cannot be used leaves the client
    /// pacing on its own. A client with a ceiling ([`RateControl::max_rate`]) does not share: its
    /// spacing is its own. Without this, each process measures the share it is granted, which is
    /// slower to settle (see the crate's "Rate limits").
    #[cfg(feature = "shared-rate")]
    #[cfg_attr(docsrs, doc(cfg(feature = "shared-rate")))]
    pub fn share_rate_limit(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.rate_share_dir = Some(dir.into());
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

    /// How long [`Client::settle_add`] and [`Client::find_note`] wait at least between their two
    /// looks before they call a note absent; default 2 s. `settle_add` also waits until three
    /// times as long after the add was sent as the add took to fail, for a gateway that gave up
    /// while the API went on.
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
    /// Errors hide the passwords of the proxies named by `HTTPS_PROXY`, `HTTP_PROXY` and
    /// `ALL_PROXY`, and any URL's user info; a password given to this client's
    /// `reqwest::Proxy` by other means is not known to them, beyond that.
    ///
    /// Needs the `reqwest-client` feature, which makes reqwest 0.13 part of this crate's API.
    #[cfg(feature = "reqwest-client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "reqwest-client")))]
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Sends this header with every request (a tenant or a tracing header a gateway in front of
    /// the API wants, say). Each call adds one: a name given twice is sent twice. The value is
    /// shown where the client's settings are (`Debug`); give a secret with
    /// [`sensitive_header`](Self::sensitive_header) instead.
    ///
    /// [`build`](Self::build) refuses a name or value that HTTP cannot carry, and the headers the
    /// client sets itself: `authorization` (the API key: [`api_key`](Self::api_key)),
    /// `user-agent` ([`user_agent`](Self::user_agent)), `proxy-authorization` (the proxy's
    /// credentials go in `HTTPS_PROXY`), `host`, `accept`, `content-type`, `content-length`,
    /// `transfer-encoding`, `te` and `connection`.
    ///
    /// ```
    /// let client = happyrobot::Client::builder()
    ///     .api_key("hr_live_...")
    ///     .default_header("x-tenant", "acme-logistics")
    ///     .sensitive_header("x-gateway-token", "gw_SECRET")
    ///     .build()?;
    /// assert!(!format!("{client:?}").contains("gw_SECRET"));
    /// assert!(happyrobot::Client::builder().api_key("k").default_header("Authorization", "x").build().is_err());
    /// # Ok::<(), happyrobot::Error>(())
    /// ```
    pub fn default_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into(), false));
        self
    }

    /// As [`default_header`](Self::default_header), for a secret: the value is marked sensitive
    /// (HTTP/2 never puts it in its compression tables), and no `Debug`, log or error of this
    /// crate prints it; an error about it names the header, never its value.
    pub fn sensitive_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into(), true));
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
        let base_url = match self.base_url.as_deref() {
            Some(text) => BaseUrl::parse(text)?,
            None => BaseUrl::default(),
        };
        let rate_control = self.rate_control.unwrap_or_default();
        rate_control.check().map_err(Error::config)?;
        #[cfg(feature = "shared-rate")]
        let lane = (self.rate_share_dir.as_deref()).map(|dir| lane_in(dir, &base_url, &api_key));
        #[cfg(not(feature = "shared-rate"))]
        let lane: Option<Lane> = None;
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
        let mut inner = Inner::new()
            .with_api_key(api_key.expose_secret())
            .map_err(Error::invalid_api_key)?
            .with_user_agent(&user_agent)
            .map_err(Error::config)?
            .with_max_response_bytes(
                self.max_response_bytes
                    .unwrap_or(DEFAULT_MAX_RESPONSE_BYTES),
            );
        for (name, value, sensitive) in &self.headers {
            let (name, value) = header(name, value, *sensitive)?;
            inner = inner.with_header(name, value);
        }
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
            None => (
                own_http_client(
                    &base_url,
                    &self.root_certificates,
                    self.connect_timeout,
                    timeout,
                )?,
                true,
            ),
        };
        let inner = if built_here {
            // With `Policy::none()` and the timeout.
            inner.with_redirects_never_followed()
        } else {
            inner.with_timeout(timeout)
        };
        let secrets = crate::error::Secrets::new(
            std::iter::once(api_key.expose_secret()).chain(
                self.headers
                    .iter()
                    .filter(|(_, _, sensitive)| *sensitive)
                    // As given, and as a server that trims it would echo it.
                    .flat_map(|(_, value, _)| [value.as_str(), value.trim()]),
            ),
            |name| std::env::var(name).ok(),
        );
        let api = happyrobot_sdk::Client::new_with_client(base_url.as_str(), http, inner);
        let retry = self.retry.unwrap_or_default();
        let max_hold = retry.retry_after_cap();
        Ok(Client::from_shared(Arc::new(Shared {
            api,
            base_url,
            api_key,
            retry,
            timeout,
            deadline,
            client_note_ids: self.client_note_ids.unwrap_or(true),
            reconcile_settle: self.reconcile_settle.unwrap_or(DEFAULT_RECONCILE_SETTLE),
            rate: Controller::new(rate_control, lane, max_hold),
            secrets,
        })))
    }
}

/// The headers a caller may not set with `default_header`: the client sets them itself, or they
/// would break the request.
const RESERVED_HEADERS: [(&str, &str); 10] = [
    (
        "authorization",
        "the API key goes in it: give it with ClientBuilder::api_key",
    ),
    (
        "proxy-authorization",
        "give the proxy's credentials in HTTPS_PROXY (https://user:password@host:port)",
    ),
    (
        "user-agent",
        "name your application with ClientBuilder::user_agent",
    ),
    ("host", "it follows from the base URL"),
    ("accept", "the client asks for JSON"),
    ("content-type", "the client sends JSON"),
    ("content-length", "the client sets it from the body"),
    ("transfer-encoding", "the client sets it from the body"),
    ("connection", "the connection pool manages it"),
    ("te", "the transport manages it"),
];

/// A header of `default_header` or `sensitive_header`, checked. An error names the header and
/// why, never the value (which may be a secret, or hold one).
fn header(name: &str, value: &str, sensitive: bool) -> Result<(HeaderName, HeaderValue), Error> {
    // A whole header line given as the name (`x-token: SECRET`) must not echo its value.
    let shown: String = name
        .split([':', ' ', '\t'])
        .next()
        .unwrap_or_default()
        .chars()
        .take(60)
        .collect();
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| {
        Error::config(format!(
            "the header name {shown:?} is not a valid HTTP header name (letters, digits and \
             !#$%&'*+-.^_`|~ only, no spaces or colons)"
        ))
    })?;
    if let Some((_, why)) = RESERVED_HEADERS.iter().find(|(n, _)| *n == name.as_str()) {
        return Err(Error::config(format!(
            "the header {name} cannot be set with default_header or sensitive_header: {why}"
        )));
    }
    // Visible ASCII, spaces and tabs only: `HeaderValue` lets other bytes through as obsolete
    // text, which servers read in different ways.
    let printable = value.chars().all(|c| c == '\t' || (' '..='~').contains(&c));
    let mut value = HeaderValue::from_str(value).ok().filter(|_| printable).ok_or_else(|| {
        Error::config(format!(
            "the value given for the header {name} holds characters an HTTP header cannot carry \
             (line breaks, control characters, or text outside ASCII): check for a stray \
             newline or quote around it"
        ))
    })?;
    value.set_sensitive(sensitive);
    Ok((name, value))
}

/// The reqwest client the builder makes when the caller gives none: TLS with the given extra
/// roots, the attempt timeout, a connect timeout shorter than it, redirects never followed, and no
/// proxy for a loopback base URL.
fn own_http_client(
    base_url: &BaseUrl,
    roots: &[Vec<u8>],
    connect_timeout: Option<Duration>,
    timeout: Duration,
) -> Result<reqwest::Client, Error> {
    // Connecting must fail before the attempt's timeout does, so that a connect timeout is
    // reported as "nothing was sent" rather than as an unknown outcome.
    let connect_timeout = connect_timeout
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT)
        .min(timeout.mul_f64(0.9));
    let mut builder = crate::tls::client_builder(base_url.as_str(), roots)?
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        // A POST must never be re-sent somewhere else by the transport.
        .redirect(reqwest::redirect::Policy::none());
    if base_url.is_loopback() {
        // A mock or test server on this machine: never through a proxy, which would also see the
        // key in cleartext over http.
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| {
        Error::config(format!(
            "the HTTP client could not be built: {}",
            crate::error::chain(&e)
        ))
    })
}
