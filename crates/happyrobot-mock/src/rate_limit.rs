//! Rate limiting: one token bucket in front of the five operations, so that a client's rate
//! control (pacing, backing off on `429`, reading `Retry-After` and the `RateLimit-*` headers) can
//! be tested, and measured, against a server that throttles the way real APIs do.
//!
//! The bucket holds up to `burst` tokens and refills continuously at `rate` tokens a second,
//! measured with tokio's monotonic clock; it starts full. Every request that passes the path,
//! method and key checks takes one token, whatever it asks for and however it is answered later;
//! a request that finds less than one token is answered `429` at once, and nothing else happens to
//! it (no fault is drawn for it, no operation carried out). So over any stretch of `t` seconds at
//! most `burst + rate * t` requests get through, and a client that keeps asking faster than `rate`
//! gets almost exactly that many.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use std::time::Duration;

use tokio::time::Instant;

use crate::lock;

/// The smallest rate a [`RateLimit`] takes, one request per 1,000 seconds: zero, negative and NaN
/// rates are taken as this, so that the time until the next token stays finite.
const MIN_RATE: f64 = 0.001;

/// The largest rate a [`RateLimit`] takes; larger ones (and infinity) are taken as this.
const MAX_RATE: f64 = 1e9;

/// How the mock throttles requests: a token bucket shared by every request to the server, for
/// [`MockServerBuilder::rate_limit`](crate::MockServerBuilder::rate_limit) (the command line's
/// `--rate-limit`).
///
/// The bucket holds up to [`burst`](RateLimit::burst) tokens (it starts full) and refills
/// continuously at [`per_second`](RateLimit::per_second) tokens a second. Every request that
/// passes the path, method and key checks takes a token; one that finds none is answered
/// `429 Too Many Requests` with a JSON error body (`"error": "Too Many Requests"`,
/// `"message": "rate limit exceeded: N requests per second"`) and is not carried out, and no fault
/// is drawn for it.
///
/// ```
/// use happyrobot_mock::{RateLimit, RateLimitHeaders};
///
/// let limit = RateLimit::per_second(10.0)
///     .burst(5)                             // default: 1 + rate / 10, rounded, at least 1
///     .retry_after(true)                    // default: 429s carry `Retry-After`
///     .headers(RateLimitHeaders::Ietf);     // default: RateLimitHeaders::None
/// assert_eq!(limit.rate(), 10.0);
/// assert_eq!(limit.burst_size(), 5);
/// assert_eq!(RateLimit::per_second(10.0).burst_size(), 2);
/// assert_eq!(RateLimit::per_second(0.5).burst_size(), 1);
/// assert_eq!(RateLimit::per_second(100.0).burst_size(), 11);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimit {
    rate: f64,
    /// `None` until set: the default depends on the rate.
    burst: Option<u32>,
    retry_after: bool,
    headers: RateLimitHeaders,
    /// A second rate, from this long after the server started on.
    change: Option<(Duration, f64)>,
}

impl RateLimit {
    /// A bucket that refills at `rate` requests a second (decimals allowed: `0.5` is one request
    /// every two seconds), with the default burst, `Retry-After` on every `429`, and no rate-limit
    /// headers.
    ///
    /// A rate that is not a positive number (zero, negative, NaN) is taken as one request per
    /// 1,000 seconds, and one above 10⁹ (or infinite) as 10⁹, so that the bucket's arithmetic stays
    /// finite.
    pub fn per_second(rate: f64) -> Self {
        let rate = if rate.is_nan() {
            MIN_RATE
        } else {
            rate.clamp(MIN_RATE, MAX_RATE)
        };
        Self {
            rate,
            burst: None,
            retry_after: true,
            headers: RateLimitHeaders::None,
            change: None,
        }
    }

    /// A limit that changes: from `after` the server started on, the bucket refills at `rate`
    /// (clamped as [`RateLimit::per_second`] says) instead, with the default burst for that rate
    /// unless one is [set](RateLimit::burst). The command line's `--rate-limit-after 10s:5`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use happyrobot_mock::RateLimit;
    ///
    /// let dropping = RateLimit::per_second(20.0).changing_after(Duration::from_secs(10), 5.0);
    /// assert_eq!(dropping.change(), Some((Duration::from_secs(10), 5.0)));
    /// ```
    pub fn changing_after(mut self, after: Duration, rate: f64) -> Self {
        self.change = Some((after, Self::per_second(rate).rate));
        self
    }

    /// When the limit changes and to what rate, if it does.
    pub fn change(&self) -> Option<(Duration, f64)> {
        self.change
    }

    /// The rate and the bucket's size `elapsed` after the server started.
    fn in_force(&self, elapsed: Duration) -> (f64, u32) {
        let rate = match self.change {
            Some((after, rate)) if elapsed >= after => rate,
            _ => self.rate,
        };
        (rate, self.burst.unwrap_or_else(|| default_burst(rate)))
    }

    /// How many requests can pass at once after a quiet spell: the bucket's size. The default is
    /// `1 + rate / 10`, rounded to the nearest whole number (so `2` at 10 a second, `11` at 100),
    /// and `0` is taken as `1`, since a bucket that cannot hold a token would refuse everything.
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst.max(1));
        self
    }

    /// Whether a `429` carries `Retry-After` (default `true`): the whole seconds until a token is
    /// available, rounded up, at least 1. `false` sends none, as some APIs do, so that a client's
    /// fallback can be tested.
    pub fn retry_after(mut self, send: bool) -> Self {
        self.retry_after = send;
        self
    }

    /// Which rate-limit headers go on every answer to a request that went through the bucket
    /// (default [`RateLimitHeaders::None`]).
    pub fn headers(mut self, headers: RateLimitHeaders) -> Self {
        self.headers = headers;
        self
    }

    /// The refill rate, in requests a second, after the clamping described at
    /// [`RateLimit::per_second`].
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The bucket's size: the burst set, or the default for the rate.
    pub fn burst_size(&self) -> u32 {
        self.burst.unwrap_or_else(|| default_burst(self.rate))
    }

    /// Whether a `429` carries `Retry-After`.
    pub fn sends_retry_after(&self) -> bool {
        self.retry_after
    }

    /// Which rate-limit headers the answers carry.
    pub fn header_style(&self) -> RateLimitHeaders {
        self.headers
    }
}

/// The burst when none is set: `1 + rate / 10`, rounded, at least 1.
fn default_burst(rate: f64) -> u32 {
    // The float-to-integer cast saturates, and the rate is at most MAX_RATE, so this cannot wrap.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let burst = (1.0 + rate / 10.0).round() as u32;
    burst.max(1)
}

/// Which rate-limit headers the mock sends, for [`RateLimit::headers`] (the command line's
/// `--rate-limit-headers`).
///
/// The headers go on every answer to a request that went through the bucket: successes, errors,
/// faults and the bucket's own `429`s alike (requests rejected earlier, for their path, method or
/// key, take no token and carry none). In both styles the limit is the bucket's size (the burst),
/// the remaining count is how many whole tokens are left after this request, and the reset is when
/// the bucket will be full again if no request comes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RateLimitHeaders {
    /// No rate-limit headers (the default); a `429` still carries `Retry-After` unless turned off.
    #[default]
    None,
    /// `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`, as in the IETF draft
    /// (draft-ietf-httpapi-ratelimit-headers): the reset is in seconds from now, a whole number
    /// rounded up, `0` when the bucket is full; and `RateLimit-Policy: Q;w=W`, the bucket's rate
    /// as a quota of `Q` requests in `W` seconds (the smallest whole window up to a minute that
    /// holds a whole number of requests: `10;w=1`, `1;w=2` for 0.5 a second, `5;w=2` for 2.5).
    Ietf,
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`, as GitHub and many
    /// other APIs send them: the reset is a Unix time, in whole seconds rounded up.
    X,
}

/// The bucket of a server with a [`RateLimit`], and the count of the requests it refused.
#[derive(Debug)]
pub(crate) struct Limiter {
    settings: RateLimit,
    /// When the server started: a [changing](RateLimit::changing_after) limit counts from there.
    started: Instant,
    bucket: Mutex<Bucket>,
    refused: AtomicUsize,
}

/// The tokens, as of `updated`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// What the bucket made of one request, with everything its headers need, worked out when the
/// request took (or failed to take) its token.
#[derive(Debug)]
pub(crate) struct Decision {
    pub(crate) allowed: bool,
    /// The rate and the bucket's size in force.
    rate: f64,
    burst: u32,
    /// Whole tokens left after this request.
    remaining: u64,
    /// Seconds until a token is available (`0.0` when one is).
    until_token: f64,
    /// Seconds until the bucket is full.
    until_full: f64,
    /// The Unix time at which it will be full, in whole seconds rounded up.
    full_at_unix: u64,
}

impl Bucket {
    /// Refills the bucket for the time since it was last touched, then takes a token if there is
    /// one. Every quantity is computed from floats, never through `Duration`, whose float
    /// constructors panic on values out of range.
    fn take(&mut self, now: Instant, rate: f64, capacity: f64) -> Decision {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(capacity);
        if now > self.updated {
            self.updated = now;
        }
        let allowed = self.tokens >= 1.0;
        if allowed {
            self.tokens -= 1.0;
        }
        let until_token = if self.tokens >= 1.0 {
            0.0
        } else {
            (1.0 - self.tokens) / rate
        };
        let until_full = ((capacity - self.tokens) / rate).max(0.0);
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Decision {
            allowed,
            rate,
            burst: 0,
            remaining: whole(self.tokens.floor()),
            until_token,
            until_full,
            full_at_unix: whole((now_unix + until_full).ceil()),
        }
    }
}

/// A non-negative whole float as an integer; the cast saturates, and NaN becomes 0.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn whole(value: f64) -> u64 {
    value as u64
}

impl Limiter {
    pub(crate) fn new(settings: RateLimit) -> Self {
        let now = Instant::now();
        Self {
            bucket: Mutex::new(Bucket {
                tokens: f64::from(settings.burst_size()),
                updated: now,
            }),
            settings,
            started: now,
            refused: AtomicUsize::new(0),
        }
    }

    /// Takes a token for one request, or counts it as refused.
    pub(crate) fn take(&self) -> Decision {
        let mut bucket = lock(&self.bucket);
        // The clock is read under the lock, so that the bucket sees the requests in time order.
        let now = Instant::now();
        let (rate, burst) = self
            .settings
            .in_force(now.saturating_duration_since(self.started));
        let mut decision = bucket.take(now, rate, f64::from(burst));
        decision.burst = burst;
        drop(bucket);
        if !decision.allowed {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        decision
    }

    /// How many requests the bucket refused so far.
    pub(crate) fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    /// The `429` for a request that found no token.
    pub(crate) fn refusal(&self, decision: &Decision) -> Response<Full<Bytes>> {
        let mut response = crate::service::error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("rate limit exceeded: {} requests per second", decision.rate),
        );
        if self.settings.retry_after {
            // Rounded up, so that a client that waits this long finds a token.
            let secs = whole(decision.until_token.ceil()).max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }

    /// Adds the rate-limit headers of the chosen style, if any, to an answer.
    pub(crate) fn add_headers(&self, decision: &Decision, headers: &mut HeaderMap) {
        let (limit, remaining, reset, reset_value) = match self.settings.headers {
            RateLimitHeaders::None => return,
            RateLimitHeaders::Ietf => (
                "ratelimit-limit",
                "ratelimit-remaining",
                "ratelimit-reset",
                whole(decision.until_full.ceil()),
            ),
            RateLimitHeaders::X => (
                "x-ratelimit-limit",
                "x-ratelimit-remaining",
                "x-ratelimit-reset",
                decision.full_at_unix,
            ),
        };
        for (name, value) in [
            (limit, u64::from(decision.burst)),
            (remaining, decision.remaining),
            (reset, reset_value),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
        if self.settings.headers == RateLimitHeaders::Ietf
            && let Ok(policy) = HeaderValue::from_str(&policy(decision.rate))
        {
            headers.insert(HeaderName::from_static("ratelimit-policy"), policy);
        }
    }
}

/// `RateLimit-Policy` for a rate: `Q;w=W`, with the smallest whole window up to a minute that
/// holds a whole number of requests (a minute, rounded, if none does).
fn policy(rate: f64) -> String {
    let window = (1..=60_u32)
        .find(|w| {
            let quota = rate * f64::from(*w);
            quota >= 1.0 && (quota - quota.round()).abs() < 1e-6
        })
        .unwrap_or(60);
    let quota = whole((rate * f64::from(window)).round()).max(1);
    format!("{quota};w={window}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(tokens: f64, updated: Instant) -> Bucket {
        Bucket { tokens, updated }
    }

    #[test]
    fn settings_and_their_defaults() {
        let limit = RateLimit::per_second(10.0);
        assert_eq!(limit.rate(), 10.0);
        assert_eq!(limit.burst_size(), 2);
        assert!(limit.sends_retry_after());
        assert_eq!(limit.header_style(), RateLimitHeaders::None);
        assert_eq!(RateLimit::per_second(14.9).burst_size(), 2);
        assert_eq!(RateLimit::per_second(15.0).burst_size(), 3);
        assert_eq!(RateLimit::per_second(0.2).burst_size(), 1);
        assert_eq!(limit.clone().burst(0).burst_size(), 1);
        assert_eq!(limit.burst(7).burst_size(), 7);
        for odd in [0.0, -3.0, f64::NAN, f64::NEG_INFINITY] {
            assert_eq!(RateLimit::per_second(odd).rate(), MIN_RATE, "{odd}");
        }
        assert_eq!(RateLimit::per_second(f64::INFINITY).rate(), MAX_RATE);
        assert_eq!(
            RateLimit::per_second(f64::INFINITY).burst_size(),
            100_000_001
        );
    }

    /// The bucket refills continuously: at 10 a second with room for 2, a request every 50 ms
    /// after the burst gets through every other time, and the waits it reports are exact. (The
    /// requests come 25 ms off the 100 ms marks, so that no comparison is a float's rounding away
    /// from a whole token.)
    #[test]
    fn the_bucket_refills_continuously() {
        let start = Instant::now();
        let mut b = bucket(2.0, start);
        let at = |ms: u64| start + Duration::from_millis(ms);
        let first = b.take(at(0), 10.0, 2.0);
        assert!(first.allowed);
        assert_eq!(first.remaining, 1);
        assert!((first.until_full - 0.1).abs() < 1e-9);
        assert!(b.take(at(0), 10.0, 2.0).allowed);
        let refused = b.take(at(0), 10.0, 2.0);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert!((refused.until_token - 0.1).abs() < 1e-9);
        assert!((refused.until_full - 0.2).abs() < 1e-9);
        let allowed: Vec<bool> = (1..=20)
            .map(|n| b.take(at(n * 50 - 25), 10.0, 2.0).allowed)
            .collect();
        // 975 ms at 10 a second earn 9.75 tokens.
        assert_eq!(allowed.iter().filter(|a| **a).count(), 9, "{allowed:?}");
        assert_eq!(&allowed[..4], [false, false, true, false]);
        // A long pause fills the bucket, and no further.
        let later = b.take(at(60_000), 10.0, 2.0);
        assert!(later.allowed);
        assert_eq!(later.remaining, 1);
        // A clock that seems to go back changes nothing.
        assert!(b.take(at(59_000), 10.0, 2.0).allowed);
        assert!(!b.take(at(59_000), 10.0, 2.0).allowed);
    }

    #[test]
    fn headers_of_each_style() {
        let headers_for = |style| {
            let limiter = Limiter::new(RateLimit::per_second(1.0).burst(3).headers(style));
            let decision = limiter.take();
            let mut headers = HeaderMap::new();
            limiter.add_headers(&decision, &mut headers);
            headers
        };
        assert!(headers_for(RateLimitHeaders::None).is_empty());
        let ietf = headers_for(RateLimitHeaders::Ietf);
        assert_eq!(ietf["ratelimit-limit"], "3");
        assert_eq!(ietf["ratelimit-remaining"], "2");
        assert_eq!(ietf["ratelimit-reset"], "1");
        assert_eq!(ietf["ratelimit-policy"], "1;w=1");
        assert!(
            headers_for(RateLimitHeaders::X)
                .get("ratelimit-policy")
                .is_none()
        );
        let x = headers_for(RateLimitHeaders::X);
        assert_eq!(x["x-ratelimit-limit"], "3");
        assert_eq!(x["x-ratelimit-remaining"], "2");
        let reset: u64 = x["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!((now..=now + 2).contains(&reset), "{reset} against {now}");
    }

    #[test]
    fn policies_name_the_rate_in_a_whole_window() {
        assert_eq!(policy(10.0), "10;w=1");
        assert_eq!(policy(0.5), "1;w=2");
        assert_eq!(policy(2.5), "5;w=2");
        assert_eq!(policy(0.001), "1;w=60");
    }

    #[test]
    fn a_changing_limit_refills_at_the_new_rate_after_the_change() {
        let limit = RateLimit::per_second(20.0).changing_after(Duration::from_secs(10), 5.0);
        assert_eq!(limit.in_force(Duration::from_millis(9_999)), (20.0, 3));
        assert_eq!(limit.in_force(Duration::from_secs(10)), (5.0, 2));
        assert_eq!(
            limit.clone().burst(7).in_force(Duration::from_secs(11)),
            (5.0, 7)
        );
        let limiter = Limiter::new(limit.headers(RateLimitHeaders::Ietf));
        let decision = limiter.take();
        assert_eq!((decision.rate, decision.burst), (20.0, 3));
        let mut headers = HeaderMap::new();
        limiter.add_headers(&decision, &mut headers);
        assert_eq!(headers["ratelimit-policy"], "20;w=1");
        assert_eq!(headers["ratelimit-limit"], "3");
        // After the change, the bucket refills at 5 a second: asked every 50 ms for ten
        // seconds, it lets about 50 through (and its 2 tokens).
        let start = Instant::now();
        let mut b = bucket(0.0, start);
        let allowed = (1..=200)
            .filter(|n| {
                b.take(start + Duration::from_millis(n * 50), 5.0, 2.0)
                    .allowed
            })
            .count();
        assert!((49..=51).contains(&allowed), "{allowed}");
    }

    #[test]
    fn a_refusal_says_when_to_come_back_unless_told_not_to() {
        let limiter = Limiter::new(RateLimit::per_second(0.25).burst(1));
        assert!(limiter.take().allowed);
        let decision = limiter.take();
        assert!(!decision.allowed);
        assert_eq!(limiter.refused(), 1);
        let response = limiter.refusal(&decision);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "4");
        let quiet = Limiter::new(RateLimit::per_second(0.25).burst(1).retry_after(false));
        let response = quiet.refusal(&quiet.take());
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
    }
}
