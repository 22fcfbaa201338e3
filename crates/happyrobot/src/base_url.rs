//! [`BaseUrl`]: where requests go, checked once, by the one rule every caller shares: `https`, or
//! `http` on loopback only; no credentials, query, fragment, control characters or empty text.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use url::Url;

use crate::{DEFAULT_BASE_URL, Error};

/// A base URL as a message shows it, quoted: without its query and fragment, which may hold a key
/// (`?api_key=...`), and not at all when it holds an `@`, which may end a user name and password
/// (parsed as such or not: `user:secret@host` parses as the scheme `user`).
fn shown(text: &str) -> String {
    if text.contains('@') {
        return "(not shown: it holds an @, as a user name and password would)".to_string();
    }
    let without = text.find(['?', '#']).map_or(text, |at| &text[..at]);
    format!("{without:?}")
}

/// A checked base URL: `https`, or `http` on a loopback address (`127.0.0.0/8`, `::1`, an
/// IPv4-mapped `::ffff:127.x.y.z`, `localhost`) for tests and mock servers. It holds no user name
/// or password (the API key goes in a header), no query or fragment, and no control characters;
/// it is kept without a trailing slash.
///
/// [`ClientBuilder::build`](crate::ClientBuilder::build) checks its base URL with this;
/// code that needs the same answer before making a client (a dry run, a command line) parses one.
///
/// ```
/// use happyrobot::BaseUrl;
///
/// let url: BaseUrl = "http://127.0.0.1:8080/api/v1/".parse()?;
/// assert_eq!(url.as_str(), "http://127.0.0.1:8080/api/v1");
/// assert!(url.is_loopback());
/// assert!("http://app.happyrobot.ai/api/v1".parse::<BaseUrl>().is_err()); // plain http
/// assert!("".parse::<BaseUrl>().is_err());
/// # Ok::<(), happyrobot::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BaseUrl {
    text: String,
    host: String,
    authority: String,
    loopback: bool,
}

impl BaseUrl {
    /// Checks `text` (surrounding spaces are ignored).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(Error::config(format!(
                "the base URL is empty: give one such as {DEFAULT_BASE_URL}, or leave it unset \
                 to use that one"
            )));
        }
        // URL parsing drops tabs and line breaks silently, which would send requests to another
        // path than the one written: refused instead.
        if trimmed.chars().any(char::is_control) {
            return Err(Error::config(
                "the base URL holds control characters (a line break or tab?): give it on one \
                 line, as scheme, host and path",
            ));
        }
        let url = Url::parse(trimmed).map_err(|e| {
            Error::config(format!(
                "the base URL {} is not a URL ({e}); it looks like {DEFAULT_BASE_URL}",
                shown(trimmed)
            ))
        })?;
        // Never echoed: the text holds a password.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Error::config(
                "the base URL holds a user name or password; give the API key with \
                 HAPPYROBOT_API_KEY instead (and a proxy's credentials in HTTPS_PROXY)",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::config(format!(
                "the base URL {} has a query or fragment; give it as scheme, host and path only",
                shown(trimmed)
            )));
        }
        let loopback = is_loopback(&url);
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(Error::config(format!(
                    "the base URL {} is plain http: the API key would cross the network \
                     unencrypted. Use https (http is allowed only for loopback addresses such as \
                     127.0.0.1)",
                    shown(trimmed)
                )));
            }
            other => {
                return Err(Error::config(format!(
                    "the base URL {} has scheme {other:?}; use https",
                    shown(trimmed)
                )));
            }
        }
        Ok(Self {
            text: url.as_str().trim_end_matches('/').to_string(),
            host: url.host_str().unwrap_or_default().to_string(),
            authority: match url.port() {
                Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
                None => url.host_str().unwrap_or_default().to_string(),
            },
            loopback,
        })
    }

    /// The URL, without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host, as named in the URL.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host with the port when the URL names one (`127.0.0.1:8080`), for messages about who
    /// answered.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Whether the URL points at this machine (a mock or test server, never the real API).
    pub fn is_loopback(&self) -> bool {
        self.loopback
    }
}

impl Default for BaseUrl {
    /// The production API, [`DEFAULT_BASE_URL`].
    fn default() -> Self {
        Self {
            text: DEFAULT_BASE_URL.to_string(),
            host: "app.happyrobot.ai".to_string(),
            authority: "app.happyrobot.ai".to_string(),
            loopback: false,
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

impl FromStr for BaseUrl {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        Self::parse(text)
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BaseUrl").field(&self.text).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_http_only_on_loopback() {
        for (ok, loopback) in [
            ("https://app.happyrobot.ai/api/v1", false),
            ("https://app.happyrobot.ai/api/v1/", false),
            ("http://127.0.0.1:8080/api/v1", true),
            ("http://127.5.6.7/api/v1", true),
            ("http://[::1]:9/api/v1", true),
            ("http://[::ffff:127.0.0.1]:9/api/v1", true),
            ("http://localhost:3000/api/v1", true),
            (" https://example.test/api/v1 ", false),
        ] {
            let url = BaseUrl::parse(ok).unwrap();
            assert!(!url.as_str().ends_with('/'), "{url}");
            assert_eq!(url.is_loopback(), loopback, "{ok}");
        }
        for bad in [
            "http://app.happyrobot.ai/api/v1",
            "http://10.0.0.1/api/v1",
            "http://[::ffff:10.0.0.1]/api/v1",
            "ftp://app.happyrobot.ai",
            "app.happyrobot.ai/api/v1",
            "https://app.happyrobot.ai/api/v1?x=1",
            "",
            "   ",
            "https://app.happyrobot.ai/api/\r\nv1",
            "https://app.happyrobot.ai/a\tpi/v1",
        ] {
            let error = BaseUrl::parse(bad).unwrap_err();
            assert_eq!(error.kind(), crate::ErrorKind::Config, "{bad:?}: {error}");
        }
    }

    #[test]
    fn credentials_are_refused_and_never_echoed() {
        for bad in [
            "https://user:s3cret@app.happyrobot.ai/api/v1",
            "http://user:s3cret@127.0.0.1:1/api/v1",
            "https://s3cret@app.happyrobot.ai/api/v1",
            "https://user:s3cret@/broken",
            // Not URLs, or not with credentials as such: a `/` in the password, no scheme.
            "https://user:pa/s3cret@app.happyrobot.ai/api/v1",
            "user:s3cret@app.happyrobot.ai",
            "ftp://user:s3cret@app.happyrobot.ai",
            // A key in the query or the fragment.
            "https://app.happyrobot.ai/api/v1?api_key=s3cret",
            "http://app.happyrobot.ai/api/v1?api_key=s3cret",
            "https://app.happyrobot.ai/api/v1#s3cret",
            "not a url ?s3cret",
        ] {
            let error = BaseUrl::parse(bad).unwrap_err().to_string();
            assert!(!error.contains("s3cret"), "{error}");
        }
        // What is safe to show still is, to find a typo by.
        let error = BaseUrl::parse("http://app.happyrobot.ai/api/v1?k=s3cret")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("\"http://app.happyrobot.ai/api/v1\""),
            "{error}"
        );
    }
}
