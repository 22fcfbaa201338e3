//! [`RetryPolicy`]: when a failed request is sent again, and how long the client waits first.
//!
//! The API has no idempotency keys, so sending a note twice adds it twice. The default policy
//! therefore retries only failures after which the server certainly did not act.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::Error;

/// When to retry a failed request.
///
/// The default retries, at most twice, only when the server certainly did not act: no connection
/// could be made, or it answered `429 Too Many Requests`. It waits with exponential backoff and full
/// jitter (base 0.5 s, cap 8 s), or for the server's `Retry-After` when that is at most 30 s (a longer
/// wait fails at once, with [`Error::retry_after`] telling how long).
///
/// ```
/// use std::time::Duration;
/// use happyrobot::RetryPolicy;
///
/// let patient = RetryPolicy::default().max_retries(5).max_retry_after(Duration::from_secs(120));
/// let never = RetryPolicy::none();
/// # let _ = (patient, never);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    base_delay: Duration,
    max_delay: Duration,
    max_retry_after: Duration,
    retry_outcome_unknown: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 2,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
            retry_outcome_unknown: false,
        }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub fn none() -> Self {
        Self::default().max_retries(0)
    }

    /// The default policy, but also retrying failures after which **the note may already have been
    /// added**: timeouts and broken connections after sending, and 500, 502, 503 and 504 answers.
    ///
    /// This can add the same note twice. Use it only where a duplicate note is better than a missing
    /// one.
    pub fn retry_outcome_unknown() -> Self {
        Self {
            retry_outcome_unknown: true,
            ..Self::default()
        }
    }

    /// How many times a request is sent again after the first try (0 turns retrying off).
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// The backoff before the first retry; it doubles for each further one, up to
    /// [`max_delay`](Self::max_delay), and a random part of it is waited (full jitter).
    pub fn base_delay(mut self, base_delay: Duration) -> Self {
        self.base_delay = base_delay;
        self
    }

    /// The longest backoff between two tries.
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// The longest `Retry-After` the client waits for; a server asking for longer gets an error at once.
    pub fn max_retry_after(mut self, max_retry_after: Duration) -> Self {
        self.max_retry_after = max_retry_after;
        self
    }

    /// Whether failures with an unknown outcome are retried (see [`RetryPolicy::retry_outcome_unknown`]).
    pub fn retries_outcome_unknown(&self) -> bool {
        self.retry_outcome_unknown
    }

    /// The most retries after the first try.
    pub fn retries(&self) -> u32 {
        self.max_retries
    }

    /// The longest `Retry-After` honoured.
    pub fn retry_after_cap(&self) -> Duration {
        self.max_retry_after
    }

    /// Whether `error`, after `retries_done` retries, is tried again, and after what wait and why.
    pub(crate) fn decide(
        &self,
        error: &Error,
        retries_done: u32,
    ) -> Option<(Duration, &'static str)> {
        if retries_done >= self.max_retries {
            return None;
        }
        let reason = if error.is_retryable() {
            if error.is_rate_limited() {
                "rate limited (429)"
            } else {
                "connection failed before the request was sent"
            }
        } else if self.retry_outcome_unknown && retryable_unknown(error) {
            "outcome unknown, retried by policy (may duplicate the note)"
        } else {
            return None;
        };
        let delay = match error.retry_after() {
            Some(wait) if wait <= self.max_retry_after => wait,
            _ => self.backoff(retries_done),
        };
        Some((delay, reason))
    }

    /// Full jitter: a uniformly random wait between zero and the exponential backoff for this retry.
    fn backoff(&self, retries_done: u32) -> Duration {
        let exponential = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retries_done.min(30)))
            .min(self.max_delay);
        let nanos = u64::try_from(exponential.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }
}

/// Failures whose outcome is unknown and that the opt-in policy retries: timeouts and broken
/// connections after sending, and the 5xx answers that usually mean a passing fault.
fn retryable_unknown(error: &Error) -> bool {
    match error {
        Error::Timeout { .. } | Error::Network { .. } => true,
        Error::Api { status, .. } => matches!(status.as_u16(), 500 | 502 | 503 | 504),
        _ => false,
    }
}

/// Reads `Retry-After` as seconds or as an HTTP date.
pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(text).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    fn api(status: u16, retry_after: Option<u64>) -> Error {
        Error::Api {
            status: StatusCode::from_u16(status).unwrap(),
            message: String::new(),
            request_id: None,
            retry_after: retry_after.map(Duration::from_secs),
            retry_after_too_long: false,
        }
    }

    #[test]
    fn default_retries_429_but_not_5xx() {
        let policy = RetryPolicy::default();
        assert!(policy.decide(&api(429, None), 0).is_some());
        for status in [500, 502, 503, 504, 400, 401, 404] {
            assert!(policy.decide(&api(status, None), 0).is_none(), "{status}");
        }
        assert!(
            policy.decide(&api(429, None), 2).is_none(),
            "only two retries"
        );
    }

    #[test]
    fn opt_in_retries_5xx() {
        let policy = RetryPolicy::retry_outcome_unknown();
        for status in [500, 502, 503, 504] {
            assert!(policy.decide(&api(status, None), 0).is_some(), "{status}");
        }
        assert!(policy.decide(&api(501, None), 0).is_none());
    }

    #[test]
    fn none_never_retries() {
        assert!(RetryPolicy::none().decide(&api(429, None), 0).is_none());
    }

    #[test]
    fn retry_after_is_honoured() {
        let (delay, _) = RetryPolicy::default()
            .decide(&api(429, Some(3)), 0)
            .unwrap();
        assert_eq!(delay, Duration::from_secs(3));
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let policy = RetryPolicy::default().max_retries(100);
        for retry in 0..40 {
            let cap = Duration::from_millis(500)
                .saturating_mul(1 << retry.min(20))
                .min(Duration::from_secs(8));
            assert!(policy.backoff(retry) <= cap);
        }
        let samples: std::collections::BTreeSet<_> = (0..20).map(|_| policy.backoff(3)).collect();
        assert!(samples.len() > 1, "jitter varies the wait");
    }

    #[test]
    fn parses_retry_after_forms() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        headers.insert(RETRY_AFTER, httpdate::fmt_http_date(later).parse().unwrap());
        let wait = parse_retry_after(&headers).unwrap();
        assert!(
            wait > Duration::from_secs(110) && wait <= Duration::from_secs(120),
            "{wait:?}"
        );
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(parse_retry_after(&headers), None);
    }
}
