//! `GET /calls`: the query of a call listing, read as leniently as the spec allows, and the calls
//! it matches.
//!
//! The spec declares every parameter a plain string, so every string is a valid value: a value the
//! mock cannot read (a `limit` that is not a number, a `from` that is not a date) is ignored and
//! answered `200`, never `400`. Only a parameter given twice is refused (`400`), since the spec
//! allows one value per parameter.

use happyrobot_sdk::Timestamp;
use happyrobot_sdk::types::Call;
use serde_json::Value;

/// The page size when a request asks for none (or for one that is not a positive number).
pub const DEFAULT_LIST_LIMIT: usize = 100;

/// The largest page the mock sends, whatever `limit` asks for.
pub const MAX_LIST_LIMIT: usize = 1000;

/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;

/// Where a call stands in the order of a listing: its creation time (microseconds since the
/// epoch; `None` when it has none the mock can read, which sorts as the oldest), then its id.
pub(crate) type SortKey = (Option<i64>, String);

/// The sort key of a call.
pub(crate) fn sort_key(call: &Call) -> SortKey {
    (created_micros(call), call.id.clone())
}

fn created_micros(call: &Call) -> Option<i64> {
    call.created
        .as_ref()
        .and_then(Timestamp::to_utc)
        .map(|at| at.timestamp_micros())
}

/// A listing's query as the mock reads it.
#[derive(Debug, Default)]
pub(crate) struct ListQuery {
    pub(crate) limit: usize,
    pub(crate) skip: usize,
    pub(crate) ascending: bool,
    call_type: Option<String>,
    statuses: Vec<String>,
    tags: Vec<String>,
    models: Vec<String>,
    ratings: Vec<String>,
    use_cases: Vec<String>,
    campaigns: Vec<String>,
    /// Inclusive bounds on the creation time, in microseconds.
    from: Option<i64>,
    to: Option<i64>,
    /// Lower case.
    search: Option<String>,
    transfer_contact_email: Option<String>,
}

/// The parameters the mock reads; others are ignored.
const KNOWN: [&str; 14] = [
    "type",
    "limit",
    "skip",
    "statuses",
    "tags",
    "models",
    "ratings",
    "use_cases",
    "campaigns",
    "from",
    "to",
    "sort",
    "search",
    "transfer_contact_email",
];

impl ListQuery {
    /// Reads a raw query string (`limit=7&statuses=In+progress%2CFailed`); `Err` with a message
    /// only for a parameter given twice.
    pub(crate) fn parse(raw: &str) -> Result<Self, String> {
        let mut query = Self {
            limit: DEFAULT_LIST_LIMIT,
            ..Self::default()
        };
        let mut given: Vec<&str> = Vec::new();
        for pair in raw.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = form_decode(name);
            let Some(known) = KNOWN.iter().find(|known| **known == name) else {
                continue;
            };
            if given.contains(known) {
                return Err(format!(
                    "The query parameter `{known}` was given twice; give it once (lists are \
                     comma-separated values of one parameter)"
                ));
            }
            given.push(known);
            query.set(known, &form_decode(value));
        }
        Ok(query)
    }

    fn set(&mut self, name: &str, value: &str) {
        let text = value.trim();
        match name {
            "type" => self.call_type = (!text.is_empty()).then(|| text.to_string()),
            "limit" => {
                self.limit = match whole_number(text) {
                    None | Some(0) => DEFAULT_LIST_LIMIT,
                    Some(n) => n.min(MAX_LIST_LIMIT),
                };
            }
            "skip" => self.skip = whole_number(text).unwrap_or(0),
            "statuses" => self.statuses = list(text),
            "tags" => self.tags = list(text),
            "models" => self.models = list(text),
            "ratings" => self.ratings = list(text),
            "use_cases" => self.use_cases = list(text),
            "campaigns" => self.campaigns = list(text),
            "from" => self.from = instant(text, false),
            "to" => self.to = instant(text, true),
            "sort" => self.ascending = text.eq_ignore_ascii_case("asc"),
            "search" => self.search = (!text.is_empty()).then(|| text.to_lowercase()),
            "transfer_contact_email" => {
                self.transfer_contact_email = (!text.is_empty()).then(|| text.to_string());
            }
            _ => {}
        }
    }

    /// Whether the query filters nothing out: every call matches.
    pub(crate) fn is_unfiltered(&self) -> bool {
        self.call_type.is_none()
            && self.statuses.is_empty()
            && self.tags.is_empty()
            && self.models.is_empty()
            && self.ratings.is_empty()
            && self.use_cases.is_empty()
            && self.campaigns.is_empty()
            && self.from.is_none()
            && self.to.is_none()
            && self.search.is_none()
            && self.transfer_contact_email.is_none()
    }

    /// Whether the call matches every filter of the query.
    pub(crate) fn matches(&self, call: &Call) -> bool {
        let any = |wanted: &[String], value: Option<&str>| {
            wanted.is_empty() || value.is_some_and(|value| wanted.iter().any(|w| w == value))
        };
        let metadata = call.metadata.as_ref();
        let use_case = call.use_case.as_ref();
        let tags = metadata.and_then(|m| m.tags.as_deref()).unwrap_or_default();
        let ratings = call.ratings.as_deref().unwrap_or_default();
        self.call_type
            .as_deref()
            .is_none_or(|wanted| call.type_.as_ref().is_some_and(|t| t.as_str() == wanted))
            && any(&self.statuses, call.status.as_ref().map(|s| s.as_str()))
            && (self.tags.is_empty() || tags.iter().any(|tag| self.tags.contains(tag)))
            && any(&self.models, use_case.and_then(|u| u.model.as_deref()))
            && (self.ratings.is_empty()
                || ratings
                    .iter()
                    .any(|rating| any(&self.ratings, rating.emoji.as_ref().map(|e| e.as_str()))))
            && any(&self.use_cases, use_case.and_then(|u| u.id.as_deref()))
            && any(&self.campaigns, call.campaign_id.as_deref())
            && self.in_range(call)
            && self.transfer_contact_email.as_deref().is_none_or(|wanted| {
                call.transfer_contact_email
                    .as_deref()
                    .is_some_and(|email| email.eq_ignore_ascii_case(wanted))
            })
            && self
                .search
                .as_deref()
                .is_none_or(|needle| found(call, needle))
    }

    fn in_range(&self, call: &Call) -> bool {
        if self.from.is_none() && self.to.is_none() {
            return true;
        }
        created_micros(call).is_some_and(|at| {
            self.from.is_none_or(|from| at >= from) && self.to.is_none_or(|to| at <= to)
        })
    }
}

/// A string of decimal digits as a number, a larger one than fits as the largest; `None` for
/// anything else (a sign, a fraction, other characters, nothing).
fn whole_number(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse().unwrap_or(usize::MAX))
}

/// The items of a comma-separated list, trimmed, without empty ones.
fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect()
}

/// An RFC 3339 date-time, or a plain date (`2024-03-01`): its first microsecond for a start
/// (`end: false`), its last for an end. `None` for anything else, which is then ignored.
fn instant(text: &str, end: bool) -> Option<i64> {
    let is_date = text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    if is_date {
        let start = Timestamp::from_raw(format!("{text}T00:00:00Z"))
            .to_utc()?
            .timestamp_micros();
        return Some(if end { start + DAY_MICROS - 1 } else { start });
    }
    Timestamp::from_raw(text)
        .to_datetime()
        .map(|at| at.timestamp_micros())
}

/// Whether the needle (lower case) is in the call's phone numbers or extracted values.
fn found(call: &Call, needle: &str) -> bool {
    let metadata = call.metadata.as_ref();
    let numbers = [
        metadata.and_then(|m| m.from.as_deref()),
        metadata.and_then(|m| m.to.as_deref()),
    ];
    numbers
        .into_iter()
        .flatten()
        .any(|number| number.to_lowercase().contains(needle))
        || call
            .extraction
            .as_ref()
            .is_some_and(|values| values.values().any(|value| value_holds(value, needle)))
}

fn value_holds(value: &Value, needle: &str) -> bool {
    match value {
        Value::String(text) => text.to_lowercase().contains(needle),
        Value::Number(number) => number.to_string().contains(needle),
        Value::Bool(flag) => flag.to_string() == needle,
        Value::Array(items) => items.iter().any(|item| value_holds(item, needle)),
        Value::Object(map) => map.values().any(|item| value_holds(item, needle)),
        Value::Null => false,
    }
}

/// Decodes a query component: `+` is a space, `%XX` a byte; invalid UTF-8 is replaced.
fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(json: serde_json::Value) -> Call {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn query_components_decode_like_forms() {
        assert_eq!(
            form_decode("In+progress%2CNo%20answer"),
            "In progress,No answer"
        );
        assert_eq!(form_decode("%E2%9C%85"), "✅");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz%4"), "%zz%4");
        assert_eq!(form_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn values_it_cannot_read_are_ignored_and_repeats_refused() {
        let query =
            ListQuery::parse("limit=abc&skip=-3&from=yesterday&sort=sideways&x=1&x=2").unwrap();
        assert_eq!(
            (query.limit, query.skip, query.ascending),
            (DEFAULT_LIST_LIMIT, 0, false)
        );
        assert_eq!((query.from, query.to), (None, None));
        let query = ListQuery::parse("limit=0").unwrap();
        assert_eq!(query.limit, DEFAULT_LIST_LIMIT);
        let query = ListQuery::parse("limit=99999999999999999999999&skip=12&sort=ASC").unwrap();
        assert_eq!(
            (query.limit, query.skip, query.ascending),
            (MAX_LIST_LIMIT, 12, true)
        );
        assert!(
            ListQuery::parse("limit=7&tags=a&limit=8")
                .unwrap_err()
                .contains("`limit`")
        );
        assert!(ListQuery::parse("statuses&statuses=").is_err());
    }

    #[test]
    fn dates_bound_the_creation_time_inclusively() {
        let at = |created: &str| call(serde_json::json!({"id": "a", "created": created}));
        let query = ListQuery::parse("from=2024-03-01&to=2024-03-31").unwrap();
        assert!(query.matches(&at("2024-03-01T00:00:00Z")));
        assert!(query.matches(&at("2024-03-31T23:59:59.999999Z")));
        assert!(!query.matches(&at("2024-04-01T00:00:00Z")));
        assert!(!query.matches(&at("2024-02-29T23:59:59Z")));
        assert!(!query.matches(&call(serde_json::json!({"id": "a"}))));
        let query =
            ListQuery::parse("from=2024-03-01T08:00:00-05:00&to=2024-03-01T13:00:00Z").unwrap();
        assert!(query.matches(&at("2024-03-01T13:00:00Z")));
        assert!(!query.matches(&at("2024-03-01T12:59:59Z")));
        assert!(ListQuery::parse("from=2024-02-30").unwrap().from.is_none());
    }

    #[test]
    fn filters_match_what_the_call_holds() {
        let c = call(serde_json::json!({
            "id": "a",
            "type": "Outbound",
            "status": "No answer",
            "metadata": {"from": "+13125550142", "to": "+18005550199", "tags": ["reefer", "priority"]},
            "use_case": {"id": "uc1", "model": "gpt-4o"},
            "ratings": [{"emoji": "👎"}],
            "campaign_id": "c1",
            "transfer_contact_email": "Lead@Example.com",
            "extraction": {"load": {"number": "LD-42"}, "rate": 1850}
        }));
        for yes in [
            "",
            "type=Outbound",
            "statuses=Failed%2CNo+answer",
            "tags=priority",
            "models=gpt-4o,gpt-4o-mini",
            "ratings=%F0%9F%91%8E",
            "use_cases=uc1",
            "campaigns=c2,c1",
            "search=5550142",
            "search=ld-4",
            "search=1850",
            "transfer_contact_email=lead@example.com",
            "statuses=,",
        ] {
            assert!(ListQuery::parse(yes).unwrap().matches(&c), "{yes}");
        }
        for no in [
            "type=Inbound",
            "type=outbound",
            "statuses=Failed",
            "tags=carrier",
            "ratings=%E2%9C%85",
            "campaigns=c2",
            "search=9999",
            "transfer_contact_email=other@example.com",
            "type=Outbound&statuses=Completed",
        ] {
            assert!(!ListQuery::parse(no).unwrap().matches(&c), "{no}");
        }
    }
}
