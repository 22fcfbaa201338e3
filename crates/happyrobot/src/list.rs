//! Listing calls: `GET /calls` with a typed [`CallFilter`], one page at a time
//! ([`Client::list_calls_page`]) or as a [`CallStream`] of calls that fetches its pages as it is
//! consumed ([`Client::list_calls`]).
//!
//! The API pages by offset only (`limit` and `skip`, no cursor), over a list that changes while it
//! is walked. The stream therefore never trusts a page to be where it asked: it yields each call ID
//! once, advances by the calls that came (so a page size the server lowered is followed), and ends
//! at the server's `count`, on an empty page, or on a page that brings nothing new (how a server
//! that ignores `skip` and sends the same page forever is told apart from a long list).

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, TimeZone as _, Utc};
use happyrobot_sdk::types::{Call, CallPage, CallStatus, CallType, RatingEmoji, SortOrder};
use serde::Deserialize as _;

use crate::error::Operation;
use crate::{Client, Control, Error, OwnedControl, Response};

/// The page size [`Client::list_calls`] asks for unless told otherwise ([`CallFilter::page_size`]).
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// The largest page size a [`CallFilter`] asks for: the reference says `0 < limit < 2000`.
pub const MAX_PAGE_SIZE: u32 = 1999;

/// How many pages in a row may bring nothing new while `count` grew enough to explain it (calls
/// added at the head pushed the page's calls down onto ones already yielded) before the walk ends
/// all the same: an account that gains more calls than a page holds between every two requests can
/// never be walked to its end by offset.
const MAX_STALE_PAGES: u32 = 10;

/// Which calls to list, and how: the query of `GET /calls`, built up step by step.
///
/// Every filter is optional; values of one list (statuses, tags, ...) match any of them, and
/// different filters must all match. The API sends each list as one comma-separated parameter, so a
/// value may not hold a comma; values are trimmed, and empty ones are refused (the request then
/// fails with [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) before anything is sent).
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use happyrobot::CallFilter;
/// use happyrobot::types::{CallStatus, CallType, SortOrder};
///
/// let filter = CallFilter::new()
///     .call_type(CallType::Outbound)
///     .statuses([CallStatus::Failed, CallStatus::NoAnswer])
///     .campaign("65f1c0ffee0123456789ab30")
///     .from(Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap())
///     .sort(SortOrder::Asc)
///     .page_size(50);
/// # let _ = filter;
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallFilter {
    call_type: Option<CallType>,
    statuses: Vec<CallStatus>,
    tags: Vec<String>,
    models: Vec<String>,
    ratings: Vec<RatingEmoji>,
    use_cases: Vec<String>,
    campaigns: Vec<String>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    sort: Option<SortOrder>,
    search: Option<String>,
    transfer_contact_email: Option<String>,
    page_size: Option<u32>,
}

impl CallFilter {
    /// Every call, newest first (the server's default order), [`DEFAULT_PAGE_SIZE`] calls a page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only calls in this direction (`type`).
    pub fn call_type(mut self, call_type: CallType) -> Self {
        self.call_type = Some(call_type);
        self
    }

    /// Also calls with this status (`statuses`).
    pub fn status(mut self, status: CallStatus) -> Self {
        self.statuses.push(status);
        self
    }

    /// Also calls with any of these statuses (`statuses`).
    pub fn statuses(mut self, statuses: impl IntoIterator<Item = CallStatus>) -> Self {
        self.statuses.extend(statuses);
        self
    }

    /// Also calls with this tag in `metadata.tags` (`tags`).
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Also calls with any of these tags (`tags`).
    pub fn tags<S: Into<String>>(mut self, tags: impl IntoIterator<Item = S>) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    /// Also calls whose use case runs this model, such as `gpt-4o` (`models`).
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.models.push(model.into());
        self
    }

    /// Also calls rated with this emoji (`ratings`).
    pub fn rating(mut self, rating: RatingEmoji) -> Self {
        self.ratings.push(rating);
        self
    }

    /// Also calls of the use case with this ID (`use_cases`).
    pub fn use_case(mut self, use_case_id: impl Into<String>) -> Self {
        self.use_cases.push(use_case_id.into());
        self
    }

    /// Also calls of the campaign with this ID (`campaigns`).
    pub fn campaign(mut self, campaign_id: impl Into<String>) -> Self {
        self.campaigns.push(campaign_id.into());
        self
    }

    /// Only calls created at or after this time (`from`, sent as RFC 3339 in UTC).
    pub fn from(mut self, start: DateTime<Utc>) -> Self {
        self.from = Some(start);
        self
    }

    /// Only calls created at or before this time (`to`, sent as RFC 3339 in UTC). For a whole
    /// day, give the end of it: [`CallFilter::parse_to`] reads `2024-03-31` as its last millisecond.
    pub fn to(mut self, end: DateTime<Utc>) -> Self {
        self.to = Some(end);
        self
    }

    /// Only calls created on this calendar day in UTC: `from` its first instant (00:00:00Z) and `to`
    /// its last millisecond (23:59:59.999Z), as [`parse_from`](Self::parse_from) and
    /// [`parse_to`](Self::parse_to) read a plain date. [`NaiveDate`](crate::NaiveDate) is
    /// re-exported, so no direct dependency on chrono is needed; [`parse_day`](Self::parse_day)
    /// reads one as a person types it.
    ///
    /// ```
    /// use happyrobot::{CallFilter, NaiveDate};
    ///
    /// let day = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    /// assert_eq!(CallFilter::new().day(day), CallFilter::new().day(CallFilter::parse_day("2024-03-01")?));
    /// assert_eq!(
    ///     CallFilter::new().day(day),
    ///     CallFilter::new()
    ///         .from(CallFilter::parse_from("2024-03-01")?)
    ///         .to(CallFilter::parse_to("2024-03-01")?),
    /// );
    /// # Ok::<(), happyrobot::Error>(())
    /// ```
    pub fn day(self, day: NaiveDate) -> Self {
        let end_of_day = NaiveTime::from_hms_milli_opt(23, 59, 59, 999).unwrap_or(NaiveTime::MIN);
        self.from(Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN)))
            .to(Utc.from_utc_datetime(&day.and_time(end_of_day)))
    }

    /// A calendar day as a person types it, `2024-03-01` (surrounding spaces trimmed), for
    /// [`day`](Self::day).
    pub fn parse_day(text: &str) -> Result<NaiveDate, Error> {
        let text = text.trim();
        NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            Error::invalid_input(
                "day",
                format!("{text:?} is not a date written as year-month-day, such as 2024-03-01"),
            )
        })
    }

    /// The order: [`SortOrder::Desc`] (newest first, the server's default) or [`SortOrder::Asc`]
    /// (oldest first). The API does not document its sort key; it is taken to be `created`.
    pub fn sort(mut self, order: SortOrder) -> Self {
        self.sort = Some(order);
        self
    }

    /// Only calls whose extracted values or phone numbers hold this text (`search`); an empty text
    /// searches for nothing and is not sent.
    pub fn search(mut self, text: impl Into<String>) -> Self {
        self.search = Some(text.into());
        self
    }

    /// Only calls transferred to the contact with this email (`transfer_contact_email`).
    pub fn transfer_contact_email(mut self, email: impl Into<String>) -> Self {
        self.transfer_contact_email = Some(email.into());
        self
    }

    /// How many calls to ask for per page (`limit`), from 1 to [`MAX_PAGE_SIZE`] (values outside
    /// are brought inside); [`DEFAULT_PAGE_SIZE`] by default. The server may send fewer: the
    /// stream follows it.
    pub fn page_size(mut self, size: u32) -> Self {
        self.page_size = Some(size.clamp(1, MAX_PAGE_SIZE));
        self
    }

    /// The page size asked for.
    pub fn page_size_value(&self) -> u32 {
        self.page_size.unwrap_or(DEFAULT_PAGE_SIZE)
    }

    /// A status as a person types it: `Failed`, `in progress`, ` No Answer ` are the documented
    /// `Failed`, `In progress` and `No answer` (case and surrounding spaces do not matter); any other
    /// text is kept as [`CallStatus::Unknown`] and sent as typed (trimmed), for a status this
    /// version does not know.
    pub fn parse_status(text: &str) -> CallStatus {
        let text = text.trim();
        CallStatus::KNOWN
            .iter()
            .find(|known| known.eq_ignore_ascii_case(text))
            .map_or_else(|| CallStatus::from(text), |known| CallStatus::from(*known))
    }

    /// Comma-separated statuses as a person types them (`Failed, no answer`), each read with
    /// [`parse_status`](Self::parse_status); empty items are skipped.
    pub fn parse_statuses(list: &str) -> Vec<CallStatus> {
        list.split(',')
            .filter(|item| !item.trim().is_empty())
            .map(Self::parse_status)
            .collect()
    }

    /// A direction as a person types it: `inbound`, `Outbound` (any case); any other text is kept as
    /// [`CallType::Unknown`].
    pub fn parse_call_type(text: &str) -> CallType {
        let text = text.trim();
        CallType::KNOWN
            .iter()
            .find(|known| known.eq_ignore_ascii_case(text))
            .map_or_else(|| CallType::from(text), |known| CallType::from(*known))
    }

    /// An order as a person types it: `asc` or `desc` (any case), also `oldest` and `newest`.
    pub fn parse_sort(text: &str) -> Result<SortOrder, Error> {
        match text.trim().to_ascii_lowercase().as_str() {
            "asc" | "ascending" | "oldest" | "oldest-first" => Ok(SortOrder::Asc),
            "desc" | "descending" | "newest" | "newest-first" => Ok(SortOrder::Desc),
            _ => Err(Error::invalid_input(
                "sort order",
                format!("{:?} is neither `asc` nor `desc`", text.trim()),
            )),
        }
    }

    /// The start of a date range as a person types it: an RFC 3339 date-time with any offset
    /// (`2024-03-01T08:00:00-05:00`, converted to UTC; `Z` for UTC) or a plain date (`2024-03-01`:
    /// its first instant, 00:00:00 UTC).
    pub fn parse_from(text: &str) -> Result<DateTime<Utc>, Error> {
        parse_bound(text, "from", NaiveTime::MIN)
    }

    /// The end of a date range as a person types it: an RFC 3339 date-time as for
    /// [`parse_from`](Self::parse_from), or a plain date (`2024-03-31`: its last millisecond,
    /// 23:59:59.999 UTC, so that the whole day is included).
    pub fn parse_to(text: &str) -> Result<DateTime<Utc>, Error> {
        let end_of_day = NaiveTime::from_hms_milli_opt(23, 59, 59, 999).unwrap_or(NaiveTime::MIN);
        parse_bound(text, "to", end_of_day)
    }

    /// The query this filter sends, checked.
    fn query(&self) -> Result<Query, Error> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(Error::invalid_input(
                "date range",
                format!(
                    "`from` ({}) is after `to` ({})",
                    time_text(from),
                    time_text(to)
                ),
            ));
        }
        Ok(Query {
            call_type: self.call_type.clone(),
            limit: self.page_size_value().to_string(),
            statuses: join("statuses", self.statuses.iter().map(CallStatus::as_str))?,
            tags: join("tags", self.tags.iter().map(String::as_str))?,
            models: join("models", self.models.iter().map(String::as_str))?,
            ratings: join("ratings", self.ratings.iter().map(RatingEmoji::as_str))?,
            use_cases: join("use cases", self.use_cases.iter().map(String::as_str))?,
            campaigns: join("campaigns", self.campaigns.iter().map(String::as_str))?,
            from: self.from.map(time_text),
            to: self.to.map(time_text),
            sort: self.sort.clone(),
            search: self.search.clone().filter(|text| !text.is_empty()),
            transfer_contact_email: self
                .transfer_contact_email
                .as_deref()
                .map(str::trim)
                .filter(|email| !email.is_empty())
                .map(str::to_string),
        })
    }
}

/// A date or RFC 3339 date-time, as UTC; a plain date at `time` of that day.
fn parse_bound(text: &str, field: &str, time: NaiveTime) -> Result<DateTime<Utc>, Error> {
    let text = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&day.and_time(time)));
    }
    Err(Error::invalid_input(
        field,
        format!(
            "{text:?} is neither a date (2024-03-01) nor an RFC 3339 date-time \
             (2024-03-01T08:00:00Z, 2024-03-01T08:00:00-05:00)"
        ),
    ))
}

/// A time as the query sends it: RFC 3339 in UTC with `Z`, fractions only when there are any.
fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// The comma-separated parameter of a list, `None` when it is empty.
fn join<'a>(field: &str, values: impl Iterator<Item = &'a str>) -> Result<Option<String>, Error> {
    let mut joined = String::new();
    for value in values {
        let value = value.trim();
        if value.is_empty() {
            return Err(Error::invalid_input(
                field,
                "an empty value (the API would read nothing for it)",
            ));
        }
        if value.contains(',') {
            return Err(Error::invalid_input(
                field,
                format!("{value:?} holds a comma, which the API reads as two values"),
            ));
        }
        if !joined.is_empty() {
            joined.push(',');
        }
        joined.push_str(value);
    }
    Ok((!joined.is_empty()).then_some(joined))
}

/// A [`CallFilter`] as the query parameters it sends, checked once for a whole walk.
#[derive(Clone, Debug)]
struct Query {
    call_type: Option<CallType>,
    limit: String,
    statuses: Option<String>,
    tags: Option<String>,
    models: Option<String>,
    ratings: Option<String>,
    use_cases: Option<String>,
    campaigns: Option<String>,
    from: Option<String>,
    to: Option<String>,
    sort: Option<SortOrder>,
    search: Option<String>,
    transfer_contact_email: Option<String>,
}

impl Client {
    /// One page of the calls that match `filter`: the calls after the first `offset` of them, at
    /// most [`CallFilter::page_size`] (the server may send fewer), with the number of matching calls
    /// in all ([`CallPage::count`]).
    ///
    /// It is a read: every failure that may pass is retried as the [`RetryPolicy`](crate::RetryPolicy)
    /// allows, under the client's rate control and deadline, as for [`get_call`](Self::get_call).
    /// `count`, `limit` and `offset` are also read when the server sends them as numeric strings,
    /// and are `None` when it sends something else or nothing (an older rendering of the API
    /// answered `{calls, count, currentPage}`).
    pub async fn list_calls_page(
        &self,
        filter: &CallFilter,
        offset: u64,
    ) -> Result<Response<CallPage>, Error> {
        self.list_calls_page_with(filter, offset, &Control::new())
            .await
    }

    /// [`list_calls_page`](Self::list_calls_page), carried out as `control` says.
    pub async fn list_calls_page_with(
        &self,
        filter: &CallFilter,
        offset: u64,
        control: &Control<'_>,
    ) -> Result<Response<CallPage>, Error> {
        let query = filter.query()?;
        self.list_page(&query, offset, control).await
    }

    /// Every call that matches `filter`, one at a time, fetching a page whenever the calls of the
    /// one before are used up. Each page is a [`list_calls_page`](Self::list_calls_page), retried
    /// as it is; the first error ends the stream after it is yielded.
    ///
    /// No call ID is yielded twice. The walk ends at the server's `count`, on an empty page, or on
    /// a page that brings no call not yielded already. See [`CallStream`] for what an offset walk
    /// over a changing list can promise.
    ///
    /// ```no_run
    /// # async fn run(client: happyrobot::Client) -> Result<(), happyrobot::Error> {
    /// use happyrobot::CallFilter;
    /// use happyrobot::types::CallStatus;
    ///
    /// let mut calls = client.list_calls(CallFilter::new().status(CallStatus::Failed));
    /// while let Some(call) = calls.next_call().await {
    ///     let call = call?;
    ///     println!("{} {:?}", call.id, call.created);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn list_calls(&self, filter: CallFilter) -> CallStream {
        CallStream::new(self.clone(), &filter)
    }

    /// [`list_calls`](Self::list_calls), with a stop token, an observer and a deadline that reach
    /// every page's request ([`CallStream::with_control`]). The stream outlives any borrow, so
    /// they come as an [`OwnedControl`]: a [`Control`] that holds its own handles.
    ///
    /// ```no_run
    /// # async fn run(client: happyrobot::Client) -> Result<(), happyrobot::Error> {
    /// use std::time::Duration;
    /// use happyrobot::{CallFilter, CancellationToken, OwnedControl};
    ///
    /// let stop = CancellationToken::new();
    /// let control = OwnedControl::new().stop(stop.clone()).deadline(Duration::from_secs(30));
    /// let filter = CallFilter::new().day(CallFilter::parse_day("2024-03-01")?);
    /// let mut calls = client.list_calls_with(filter, control);
    /// let first = calls.collect_calls(10).await?;
    /// stop.cancel(); // a walk under way ends with ErrorKind::Stopped
    /// # let _ = first;
    /// # Ok(()) }
    /// ```
    pub fn list_calls_with(&self, filter: CallFilter, control: OwnedControl) -> CallStream {
        self.list_calls(filter).with_control(control)
    }

    async fn list_page(
        &self,
        query: &Query,
        offset: u64,
        control: &Control<'_>,
    ) -> Result<Response<CallPage>, Error> {
        let api = &self.shared().api;
        let skip = offset.to_string();
        let (query, skip) = (query, skip.as_str());
        let span = tracing::info_span!(
            "happyrobot.request",
            method = "GET",
            path = "/calls",
            offset,
            limit = %query.limit
        );
        let page: Response<WirePage> = self
            .run(Operation::ListCalls, span, control, move || {
                api.list_calls(
                    query.campaigns.as_deref(),
                    query.from.as_deref(),
                    Some(query.limit.as_str()),
                    query.models.as_deref(),
                    query.ratings.as_deref(),
                    query.search.as_deref(),
                    Some(skip),
                    query.sort.as_ref().map(SortOrder::as_str),
                    query.statuses.as_deref(),
                    query.tags.as_deref(),
                    query.to.as_deref(),
                    query.transfer_contact_email.as_deref(),
                    query.call_type.as_ref().map(CallType::as_str),
                    query.use_cases.as_deref(),
                )
            })
            .await?;
        let (status, headers) = (page.status(), page.headers().clone());
        let (wire, body) = page.into_parts();
        Ok(Response::new(wire.into_page(), status, headers, body))
    }
}

/// A page as decoded from the wire: the generated [`CallPage`]'s fields, with its numbers also
/// read from strings (a server that echoes its query parameters sends `"limit": "100"`).
#[derive(serde::Deserialize)]
struct WirePage {
    #[serde(default)]
    calls: Option<Vec<Call>>,
    #[serde(default, deserialize_with = "lenient_integer")]
    count: Option<i64>,
    #[serde(default, deserialize_with = "lenient_integer")]
    limit: Option<i64>,
    #[serde(default, deserialize_with = "lenient_integer")]
    offset: Option<i64>,
    #[serde(default, rename = "currentPage", deserialize_with = "lenient_integer")]
    current_page: Option<i64>,
}

impl WirePage {
    fn into_page(self) -> CallPage {
        CallPage {
            calls: self.calls,
            count: self.count,
            current_page: self.current_page,
            limit: self.limit,
            offset: self.offset,
        }
    }
}

/// An integer, a float without a fraction, or a string holding an integer; anything else (or an
/// integer beyond 64 bits) is `None` rather than a failure of the whole page.
fn lenient_integer<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    Ok(match value {
        Some(serde_json::Value::Number(number)) => number.as_i64().or_else(|| {
            number
                .as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                .map(|f| f as i64)
        }),
        Some(serde_json::Value::String(text)) => text.trim().parse().ok(),
        _ => None,
    })
}

/// The future of the page a [`CallStream`] waits for.
type PageFuture = Pin<Box<dyn Future<Output = Result<Response<CallPage>, Error>> + Send>>;

/// The calls of a listing, fetched page by page as they are consumed: a
/// [`futures_core::Stream`] of `Result<Call, Error>`, made by [`Client::list_calls`].
///
/// Use it with any stream combinator library, or without one through
/// [`next_call`](CallStream::next_call). Nothing is sent until it is first polled; dropping it
/// stops the walk (a page request under way is abandoned).
///
/// # What an offset walk can promise
///
/// The API pages by offset over a list that changes while it is walked, so the stream:
/// - **never yields a call ID twice** in one walk (it remembers every ID it yielded);
/// - advances the offset by the number of calls each page held, so a page size the server
///   lowered (silently or in the answer's `limit`) skips nothing;
/// - ends when the offset reaches the latest `count`, on an empty page, or on a page that holds
///   no call not yielded already.
///
/// In the default order (newest first), a call added during the walk lands at the head and pushes
/// every other call one place down: pages then repeat calls already yielded (dropped), and a call
/// that existed when the walk began and is still there at its end is **never skipped**, however
/// many calls are added meanwhile. Added calls themselves may or may not appear. A page that holds
/// only calls already yielded normally ends the walk; it does not when `count` grew since the
/// last page that brought something, by at least the calls of the repeating pages (more calls
/// were added between two pages than a page holds), up to 10 such pages in a row. An account that
/// gains calls faster than that can never be walked to its end by offset: list it oldest first
/// ([`SortOrder::Asc`]), where new calls arrive at the end. A call deleted during the walk moves
/// the ones after it up a place, which can make one of them be missed: offset pagination cannot
/// avoid that.
pub struct CallStream {
    client: Client,
    query: Result<Query, Option<Error>>,
    offset: u64,
    /// Calls taken from pages and not yet yielded, each with its JSON as the server sent it.
    buffer: VecDeque<(Call, Option<String>)>,
    seen: HashSet<String>,
    /// The `count` of the latest page that had one.
    count: Option<u64>,
    /// The `count` when the latest page that brought a new call came.
    count_at_progress: Option<u64>,
    /// Calls on the pages in a row that brought nothing new, and how many such pages.
    stale_calls: u64,
    stale_pages: u32,
    pages: u64,
    done: bool,
    fetching: Option<PageFuture>,
    /// Whether pages are split into each call's JSON: from the first [`CallStream::next_with_json`]
    /// on, so that a stream read otherwise does not parse every page twice.
    keep_json: bool,
    /// What every page's request is carried out with ([`CallStream::stop`], ...).
    control: OwnedControl,
}

impl fmt::Debug for CallStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallStream")
            .field("query", &self.query)
            .field("offset", &self.offset)
            .field("buffered", &self.buffer.len())
            .field("yielded", &self.seen.len())
            .field("count", &self.count)
            .field("pages", &self.pages)
            .field("done", &self.done)
            .field("fetching", &self.fetching.is_some())
            .finish()
    }
}

/// Compile-time proof that a stream can be moved to another task.
const _: fn() = || {
    fn assert_traits<T: Send + Unpin + 'static>() {}
    assert_traits::<CallStream>();
};

impl CallStream {
    fn new(client: Client, filter: &CallFilter) -> Self {
        Self {
            client,
            query: filter.query().map_err(Some),
            offset: 0,
            buffer: VecDeque::new(),
            seen: HashSet::new(),
            count: None,
            count_at_progress: None,
            stale_calls: 0,
            stale_pages: 0,
            pages: 0,
            done: false,
            fetching: None,
            keep_json: false,
            control: OwnedControl::default(),
        }
    }

    /// Carries out every page's request as `control` says: its stop token ends the walk (a page
    /// request waiting for its turn or for a retry ends at once, and the stream yields an error
    /// of kind [`ErrorKind::Stopped`](crate::ErrorKind::Stopped) and ends; a page already on its
    /// way is awaited first), its observer is told of every attempt
    /// ([`Operation::ListCalls`](crate::Operation::ListCalls)) and retry, and its deadline bounds
    /// each page's request, retries included. [`Client::list_calls_with`] is the same.
    pub fn with_control(mut self, control: OwnedControl) -> Self {
        self.control = control;
        self
    }

    /// Takes the next calls, at most `limit` of them (`usize::MAX` for every one), for code
    /// without a stream library. The first error is returned (the calls taken before it are
    /// dropped; use [`next_call`](Self::next_call) to keep them), and ends the stream. Called
    /// again, it goes on where it stopped.
    ///
    /// ```no_run
    /// # async fn run(client: happyrobot::Client) -> Result<(), happyrobot::Error> {
    /// let mut stream = client.list_calls(happyrobot::CallFilter::new());
    /// let first_250 = stream.collect_calls(250).await?;
    /// println!("{} of {:?} calls", first_250.len(), stream.count());
    /// # Ok(()) }
    /// ```
    pub async fn collect_calls(&mut self, limit: usize) -> Result<Vec<Call>, Error> {
        let mut calls = Vec::new();
        while calls.len() < limit {
            match self.next_call().await {
                Some(Ok(call)) => calls.push(call),
                Some(Err(error)) => return Err(error),
                None => break,
            }
        }
        Ok(calls)
    }

    /// The next call, or `None` at the end: the stream's next item, for code without a stream
    /// library.
    pub async fn next_call(&mut self) -> Option<Result<Call, Error>> {
        self.next_with_json()
            .await
            .map(|result| result.map(|(call, _)| call))
    }

    /// The next call with its JSON exactly as the server sent it (every member, known to this
    /// version or not, numbers as written), when the page's body could be split into its calls.
    /// Pages are split from the first call of this method on: calls of pages fetched before it
    /// come without their JSON.
    pub async fn next_with_json(&mut self) -> Option<Result<CallWithJson, Error>> {
        self.keep_json = true;
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next_call(cx)).await
    }

    /// How many calls the server said match, on the latest page that said it.
    pub fn count(&self) -> Option<u64> {
        self.count
    }

    /// The offset of the next page: how many calls the pages so far held.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How many pages were fetched so far.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// How many distinct calls the pages so far brought (yielded, or waiting to be).
    pub fn calls_seen(&self) -> usize {
        self.seen.len()
    }

    fn poll_next_call(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<CallWithJson, Error>>> {
        loop {
            if let Some(call) = self.buffer.pop_front() {
                return Poll::Ready(Some(Ok(call)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            let fetching = match &mut self.fetching {
                Some(fetching) => fetching,
                None => {
                    let query = match &mut self.query {
                        Ok(query) => query.clone(),
                        Err(error) => {
                            self.done = true;
                            return Poll::Ready(error.take().map(Err));
                        }
                    };
                    let (client, offset) = (self.client.clone(), self.offset);
                    let control = self.control.clone();
                    self.fetching.insert(Box::pin(async move {
                        client
                            .list_page(&query, offset, &control.as_control())
                            .await
                    }))
                }
            };
            let result = match fetching.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => result,
            };
            self.fetching = None;
            self.pages += 1;
            match result {
                Ok(page) => {
                    let (page, body) = page.into_parts();
                    self.take_page(page, &body);
                }
                Err(error) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
    }

    /// Takes a page's new calls into the buffer, advances the offset and decides whether the walk
    /// goes on.
    fn take_page(&mut self, page: CallPage, body: &[u8]) {
        let calls = page.calls.unwrap_or_default();
        let held = calls.len() as u64;
        let texts = if self.keep_json {
            raw_calls(body, calls.len())
        } else {
            Vec::new()
        };
        let mut texts = texts.into_iter();
        if let Some(count) = page.count.and_then(|count| u64::try_from(count).ok()) {
            self.count = Some(count);
        }
        let before = self.buffer.len();
        for call in calls {
            let text = texts.next().flatten();
            if self.seen.insert(call.id.clone()) {
                self.buffer.push_back((call, text));
            }
        }
        self.offset = self.offset.saturating_add(held);
        if held == 0 {
            self.done = true;
            return;
        }
        if self.buffer.len() > before {
            self.count_at_progress = self.count;
            self.stale_calls = 0;
            self.stale_pages = 0;
        } else {
            // Nothing new: the server ignores `skip`, or calls added at the head pushed this
            // page's calls down onto ones already yielded. Only growth of `count` explains the
            // second, by as many calls as the repeating pages held.
            self.stale_calls = self.stale_calls.saturating_add(held);
            self.stale_pages += 1;
            let grown = match (self.count, self.count_at_progress) {
                (Some(now), Some(then)) => now.saturating_sub(then),
                _ => 0,
            };
            if grown < self.stale_calls || self.stale_pages > MAX_STALE_PAGES {
                self.done = true;
                return;
            }
        }
        if self.count.is_some_and(|count| self.offset >= count) {
            self.done = true;
        }
    }
}

/// A listed call, and its JSON exactly as the server sent it when the page could be split.
pub type CallWithJson = (Call, Option<String>);

/// The JSON of each call of a page's body as the server sent it, when it holds `count` of them.
fn raw_calls(body: &[u8], count: usize) -> Vec<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        calls: Option<Vec<&'a serde_json::value::RawValue>>,
    }
    match serde_json::from_slice::<Page<'_>>(body) {
        Ok(Page { calls: Some(calls) }) if calls.len() == count => calls
            .into_iter()
            .map(|c| Some(c.get().to_string()))
            .collect(),
        _ => vec![None; count],
    }
}

impl futures_core::Stream for CallStream {
    type Item = Result<Call, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .poll_next_call(cx)
            .map(|item| item.map(|result| result.map(|(call, _)| call)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (
            self.buffer.len(),
            if self.done {
                Some(self.buffer.len())
            } else {
                None
            },
        )
    }
}

impl futures_core::FusedStream for CallStream {
    fn is_terminated(&self) -> bool {
        self.done && self.buffer.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(ids: &[&str], count: Option<i64>) -> CallPage {
        CallPage {
            calls: Some(
                ids.iter()
                    .map(|id| serde_json::from_value(serde_json::json!({ "id": id })).unwrap())
                    .collect(),
            ),
            count,
            ..CallPage::default()
        }
    }

    fn stream() -> CallStream {
        CallStream::new(Client::new("hr_test_key").unwrap(), &CallFilter::new())
    }

    fn drain(stream: &mut CallStream) -> Vec<String> {
        stream.buffer.drain(..).map(|(call, _)| call.id).collect()
    }

    #[test]
    fn statuses_and_types_read_as_people_type_them() {
        assert_eq!(
            CallFilter::parse_status("in progress"),
            CallStatus::InProgress
        );
        assert_eq!(
            CallFilter::parse_status(" No Answer "),
            CallStatus::NoAnswer
        );
        assert_eq!(
            CallFilter::parse_status("AMD terminated"),
            CallStatus::AmdTerminated
        );
        assert_eq!(
            CallFilter::parse_status("in-progress"),
            CallStatus::Unknown("in-progress".into())
        );
        assert_eq!(
            CallFilter::parse_statuses("Failed, no answer,,"),
            [CallStatus::Failed, CallStatus::NoAnswer]
        );
        assert_eq!(CallFilter::parse_call_type("INBOUND"), CallType::Inbound);
        assert_eq!(CallFilter::parse_sort("Oldest").unwrap(), SortOrder::Asc);
        assert!(
            CallFilter::parse_sort("sideways")
                .unwrap_err()
                .is_invalid_input()
        );
    }

    #[test]
    fn dates_and_date_times_read_as_utc() {
        let text = |at: DateTime<Utc>| time_text(at);
        assert_eq!(
            text(CallFilter::parse_from("2024-03-01").unwrap()),
            "2024-03-01T00:00:00Z"
        );
        assert_eq!(
            text(CallFilter::parse_to("2024-03-31").unwrap()),
            "2024-03-31T23:59:59.999Z"
        );
        assert_eq!(
            text(CallFilter::parse_from("2024-03-01T08:00:00-05:00").unwrap()),
            "2024-03-01T13:00:00Z"
        );
        assert_eq!(
            text(CallFilter::parse_to(" 2024-03-01T08:00:00.5Z ").unwrap()),
            "2024-03-01T08:00:00.500Z"
        );
        for bad in ["yesterday", "2024-02-30", "01/03/2024", ""] {
            let error = CallFilter::parse_from(bad).unwrap_err();
            assert!(error.is_invalid_input(), "{bad}");
        }
    }

    #[test]
    fn the_query_joins_lists_and_refuses_what_it_cannot_send() {
        let query = CallFilter::new()
            .statuses([CallStatus::InProgress, CallStatus::NoAnswer])
            .tags(["priority", " reefer "])
            .rating(RatingEmoji::CheckMark)
            .search("")
            .transfer_contact_email("  ")
            .page_size(0)
            .query()
            .unwrap();
        assert_eq!(query.statuses.as_deref(), Some("In progress,No answer"));
        assert_eq!(query.tags.as_deref(), Some("priority,reefer"));
        assert_eq!(query.ratings.as_deref(), Some("✅"));
        assert_eq!(query.limit, "1");
        assert_eq!((query.search, query.transfer_contact_email), (None, None));
        assert_eq!(query.models, None);
        assert_eq!(
            CallFilter::new().page_size(5000).query().unwrap().limit,
            "1999"
        );
        assert_eq!(CallFilter::new().query().unwrap().limit, "100");
        for filter in [
            CallFilter::new().tag("a,b"),
            CallFilter::new().campaign(" "),
            CallFilter::new().status(CallStatus::Unknown("x,y".into())),
            CallFilter::new()
                .from(CallFilter::parse_from("2024-03-02").unwrap())
                .to(CallFilter::parse_to("2024-03-01").unwrap()),
        ] {
            assert!(filter.query().unwrap_err().is_invalid_input(), "{filter:?}");
        }
    }

    #[test]
    fn pages_advance_by_what_came_and_never_repeat_a_call() {
        let mut s = stream();
        s.take_page(page(&["a", "b", "c"], Some(10)), b"");
        assert_eq!(drain(&mut s), ["a", "b", "c"]);
        assert_eq!(s.offset, 3);
        // A lowered page size and a repeat: only the new call, the offset by what came.
        s.take_page(page(&["c", "d"], Some(10)), b"");
        assert_eq!(drain(&mut s), ["d"]);
        assert_eq!((s.offset, s.done), (5, false));
        // A call twice on one page comes once; the offset still counts the places.
        s.take_page(page(&["e", "e", "f"], Some(10)), b"");
        assert_eq!(drain(&mut s), ["e", "f"]);
        assert_eq!(s.offset, 8);
        // The same page again (a server that ignores `skip`): the end.
        s.take_page(page(&["c", "d"], Some(10)), b"");
        assert!(drain(&mut s).is_empty());
        assert!(s.done);
    }

    #[test]
    fn the_walk_ends_at_count_and_on_an_empty_page() {
        let mut s = stream();
        s.take_page(page(&["a", "b"], Some(2)), b"");
        assert!(s.done);
        let mut s = stream();
        s.take_page(page(&["a", "b"], None), b"");
        assert!(!s.done);
        s.take_page(page(&[], None), b"");
        assert!(s.done);
        let mut s = stream();
        s.take_page(CallPage::default(), b"");
        assert!(s.done);
    }

    #[test]
    fn repeats_explained_by_a_growing_count_do_not_end_the_walk() {
        let mut s = stream();
        s.take_page(page(&["a", "b"], Some(10)), b"");
        // Two calls added at the head: the next page holds the same two.
        s.take_page(page(&["a", "b"], Some(12)), b"");
        assert!(!s.done);
        s.take_page(page(&["c", "d"], Some(12)), b"");
        assert_eq!(drain(&mut s), ["a", "b", "c", "d"]);
        // A repeat that the count's growth does not explain ends it.
        s.take_page(page(&["c", "d"], Some(13)), b"");
        assert!(s.done);
    }

    #[test]
    fn numbers_are_read_from_strings_and_anything_else_is_none() {
        let wire: WirePage = serde_json::from_str(
            r#"{"calls": null, "count": "12", "limit": 7.0, "offset": {"x": 1}, "currentPage": 18446744073709551616}"#,
        )
        .unwrap();
        let page = wire.into_page();
        assert_eq!(
            (page.count, page.limit, page.offset, page.current_page),
            (Some(12), Some(7), None, None)
        );
        assert!(page.calls.is_none());
    }
}
