//! What the mock's own tests share.

#![allow(clippy::unwrap_used, reason = "tests")]

use std::time::Duration;

/// A raw HTTP client for the mock that never goes through a proxy, whatever the environment says
/// (`HTTPS_PROXY` on a CI machine must not reroute loopback requests).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}
