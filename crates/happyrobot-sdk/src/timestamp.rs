//! [`Timestamp`]: what every `format: date-time` field of the spec decodes into.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, NaiveDateTime, SecondsFormat, TimeZone, Utc};

/// A point in time as the API wrote it.
///
/// The text is kept exactly as received, so a response re-encodes unchanged, and a value in a shape
/// this SDK cannot read (no zone, another format) does not fail the whole response. Read it as a
/// date with [`Timestamp::to_utc`] or [`Timestamp::to_datetime`].
///
/// ```
/// use happyrobot_sdk::Timestamp;
///
/// let t: Timestamp = "2024-01-01T03:01:01.250+02:00".parse().unwrap();
/// assert_eq!(t.as_str(), "2024-01-01T03:01:01.250+02:00");
/// assert_eq!(t.to_utc().unwrap().to_rfc3339(), "2024-01-01T01:01:01.250+00:00");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(String);

impl Timestamp {
    /// The current time, in RFC 3339 with a `Z` zone.
    pub fn now() -> Self {
        // `SystemTime` rather than `Utc::now()`, which needs chrono's `clock` feature and with it a
        // time-zone crate that nothing else here uses.
        DateTime::<Utc>::from(std::time::SystemTime::now()).into()
    }

    /// Wraps text as the server sent it, without checking it.
    pub fn from_raw(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text as received or given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The time with its offset, when the text is RFC 3339 (fractional seconds and any offset allowed).
    pub fn to_datetime(&self) -> Option<DateTime<FixedOffset>> {
        DateTime::parse_from_rfc3339(&self.0).ok()
    }

    /// The time in UTC. Besides RFC 3339 this reads a time without a zone (`2024-01-01T01:01:01`,
    /// with `T` or a space) as UTC, which is how the API means it; `None` for anything else.
    pub fn to_utc(&self) -> Option<DateTime<Utc>> {
        if let Some(with_offset) = self.to_datetime() {
            return Some(with_offset.with_timezone(&Utc));
        }
        ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
            .iter()
            .find_map(|format| NaiveDateTime::parse_from_str(&self.0, format).ok())
            .map(|naive| Utc.from_utc_datetime(&naive))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a text is not an RFC 3339 timestamp; returned by [`Timestamp::from_str`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampError {
    text: String,
}

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an RFC 3339 timestamp: write it like 2024-01-01T01:01:01Z",
            self.text
        )
    }
}

impl std::error::Error for TimestampError {}

/// Parsing checks the text: what a caller sends must be RFC 3339. Decoding a response does not.
impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match DateTime::parse_from_rfc3339(text) {
            Ok(_) => Ok(Self(text.to_string())),
            Err(_) => Err(TimestampError {
                text: text.to_string(),
            }),
        }
    }
}

impl<Tz: TimeZone> From<DateTime<Tz>> for Timestamp {
    fn from(value: DateTime<Tz>) -> Self {
        Self(
            value
                .with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        )
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

#[cfg(feature = "schemars")]
impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> String {
        "Timestamp".to_string()
    }

    fn json_schema(_: &mut schemars::r#gen::SchemaGenerator) -> schemars::schema::Schema {
        schemars::schema::SchemaObject {
            instance_type: Some(schemars::schema::InstanceType::String.into()),
            format: Some("date-time".to_string()),
            ..Default::default()
        }
        .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_text_and_reads_every_valid_shape() {
        for (text, utc) in [
            ("2024-01-01T01:01:01Z", "2024-01-01T01:01:01+00:00"),
            (
                "2024-01-01T01:01:01.123456Z",
                "2024-01-01T01:01:01.123456+00:00",
            ),
            ("2024-01-01T03:01:01+02:00", "2024-01-01T01:01:01+00:00"),
            ("2024-01-01T01:01:01", "2024-01-01T01:01:01+00:00"),
            ("2024-01-01 01:01:01", "2024-01-01T01:01:01+00:00"),
        ] {
            let t: Timestamp = serde_json::from_value(serde_json::json!(text)).unwrap();
            assert_eq!(t.as_str(), text);
            assert_eq!(t.to_utc().unwrap().to_rfc3339(), utc, "{text}");
            assert_eq!(serde_json::to_value(&t).unwrap(), serde_json::json!(text));
        }
    }

    #[test]
    fn unreadable_text_still_decodes_and_is_kept() {
        let t: Timestamp = serde_json::from_str("\"last tuesday\"").unwrap();
        assert_eq!(t.to_utc(), None);
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"last tuesday\"");
    }

    #[test]
    fn parsing_is_strict() {
        let err = "yesterday".parse::<Timestamp>().unwrap_err();
        assert!(err.to_string().contains("2024-01-01T01:01:01Z"), "{err}");
        assert!("2024-01-01T01:01:01Z".parse::<Timestamp>().is_ok());
    }
}
