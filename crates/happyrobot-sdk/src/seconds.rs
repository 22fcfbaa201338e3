//! Reading a [`Seconds`] value, which the API sends as a number or as numeric text.

use chrono::{DateTime, Utc};

use crate::Timestamp;
use crate::generated::types::Seconds;

impl Seconds {
    /// The number of seconds: the number as sent, or the text read as a number (surrounding
    /// whitespace ignored). `None` for text that is not a finite number; the value itself is kept
    /// either way, so nothing the server sent is lost.
    ///
    /// ```
    /// use happyrobot_sdk::types::Seconds;
    ///
    /// assert_eq!(Seconds::Number(3.5).as_f64(), Some(3.5));
    /// assert_eq!(Seconds::String(" 12.25 ".into()).as_f64(), Some(12.25));
    /// assert_eq!(Seconds::String("soon".into()).as_f64(), None);
    /// ```
    pub fn as_f64(&self) -> Option<f64> {
        let value = match self {
            Self::Number(value) => *value,
            Self::String(text) => text.trim().parse().ok()?,
        };
        value.is_finite().then_some(value)
    }

    /// The value read as a Unix time (seconds since 1970-01-01 UTC), as a [`Timestamp`] in RFC
    /// 3339; `None` when it is not a number or is outside the dates chrono can represent.
    ///
    /// ```
    /// use happyrobot_sdk::types::Seconds;
    ///
    /// let start = Seconds::Number(1710320400.0).to_unix_time().unwrap();
    /// assert_eq!(start.as_str(), "2024-03-13T09:00:00Z");
    /// ```
    pub fn to_unix_time(&self) -> Option<Timestamp> {
        let seconds = self.as_f64()?;
        let whole = seconds.floor();
        if !(-8.2e12..8.2e12).contains(&whole) {
            return None;
        }
        // In range, so the casts are exact: whole seconds, and nanoseconds below a billion.
        let nanos = ((seconds - whole) * 1e9).round().min(999_999_999.0) as u32;
        DateTime::<Utc>::from_timestamp(whole as i64, nanos).map(Timestamp::from)
    }
}
