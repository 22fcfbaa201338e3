#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "cli")]
#[cfg_attr(docsrs, doc(cfg(feature = "cli")))]
pub mod cli;
mod fault;
mod list;
mod rate_limit;
mod seed;
mod service;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;
mod transcript;

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use happyrobot_sdk::types::{Call, Note};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use fault::{Fault, LateAnswer, ParseFaultError};
pub use list::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
pub use rate_limit::{RateLimit, RateLimitHeaders};
pub use seed::{
    FIRST_CALL_ID, MOCK_USER_ID, SEED_CAMPAIGN_IDS, SEED_DATES_END, SEED_EXTRA_TAGS, seeded_call,
};
pub use service::{CALL_NOT_FOUND_ERROR, NOTE_NOT_FOUND_ERROR};

/// The API key the mock accepts unless told otherwise.
pub const DEFAULT_API_KEY: &str = "hr_mock_key";

/// How many calls the mock holds when it starts, unless told otherwise.
pub const DEFAULT_SEED_CALLS: usize = 3;

/// The largest request body the mock reads (1 MiB) unless told otherwise; larger ones get `413`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The response header that carries a unique id for every answered request.
pub const REQUEST_ID_HEADER: &str = service::REQUEST_ID_HEADER;

/// One request as the mock received it, with the API key taken out.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedRequest {
    /// The id sent back in the `x-request-id` response header (also kept when no response was sent).
    pub request_id: String,
    /// The HTTP method, such as `POST`.
    pub method: String,
    /// The path and query as sent, such as `/api/v1/calls/65f1c0ffee0123456789abcd/notes`.
    pub path: String,
    /// Every header in the order received, names in lower case. The `authorization` value is
    /// replaced by its scheme and `[REDACTED]` (`Bearer [REDACTED]`), and the API key is replaced by
    /// `[REDACTED]` wherever else it appears.
    pub headers: Vec<(String, String)>,
    /// The body, as text (invalid UTF-8 replaced), with the API key replaced by `[REDACTED]`; empty
    /// when the body was over the size limit.
    pub body: String,
    /// The status answered, or `None` when the connection was closed without a response (or the
    /// answer is still being prepared: during a [`Fault::Delay`], the
    /// [latency](MockServerBuilder::latency) or a [`Fault::LateApply`]'s wait). A request refused
    /// by the [rate limit](MockServerBuilder::rate_limit) has `429` here and no `fault`.
    pub status: Option<u16>,
    /// The fault this request got, if any.
    pub fault: Option<Fault>,
}

impl RecordedRequest {
    /// The value of the first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A call and its notes already encoded as JSON.
///
/// Every answer holds the whole call, notes included, so a call with many notes would otherwise be
/// encoded again in full for each new note: keeping each note's JSON from when it was added makes
/// an answer a copy of bytes instead, which keeps a thousand adds to one call fast. An update or a
/// delete re-encodes only the note it touches and splices the bytes.
struct StoredCall {
    call: Call,
    /// The encoded notes, comma-separated, without the brackets.
    notes_json: Vec<u8>,
    /// Where each note's JSON lies in `notes_json`, in the order of `call.notes`.
    spans: Vec<Range<usize>>,
}

impl StoredCall {
    fn new(call: Call) -> serde_json::Result<Self> {
        let mut stored = Self {
            call,
            notes_json: Vec::new(),
            spans: Vec::new(),
        };
        let notes = stored.call.notes.take();
        for note in notes.iter().flatten() {
            let span = push_json(&mut stored.notes_json, note)?;
            stored.spans.push(span);
        }
        stored.call.notes = notes;
        Ok(stored)
    }

    fn add_note(&mut self, note: Note) -> serde_json::Result<()> {
        let span = push_json(&mut self.notes_json, &note)?;
        self.spans.push(span);
        self.call.notes.get_or_insert_with(Vec::new).push(note);
        Ok(())
    }

    /// The place of the first note with this id, oldest first.
    fn find_note(&self, note_id: &str) -> Option<usize> {
        self.call
            .notes
            .as_ref()?
            .iter()
            .position(|note| note.id.as_deref() == Some(note_id))
    }

    /// Replaces the note at `index` (which `find_note` returned) and its JSON.
    fn replace_note(&mut self, index: usize, note: Note) -> serde_json::Result<()> {
        let (Some(notes), Some(span)) = (self.call.notes.as_mut(), self.spans.get(index).cloned())
        else {
            return Ok(());
        };
        let Some(slot) = notes.get_mut(index) else {
            return Ok(());
        };
        let json = serde_json::to_vec(&note)?;
        let new_end = span.start + json.len();
        self.notes_json.splice(span.clone(), json);
        *slot = note;
        self.spans[index].end = new_end;
        for later in &mut self.spans[index + 1..] {
            // The later notes move by the change in length, one way or the other.
            later.start = later.start + new_end - span.end;
            later.end = later.end + new_end - span.end;
        }
        Ok(())
    }

    /// Removes the note at `index` (which `find_note` returned) and its JSON, with one comma.
    fn remove_note(&mut self, index: usize) -> Option<Note> {
        let notes = self.call.notes.as_mut()?;
        if index >= notes.len() || index >= self.spans.len() {
            return None;
        }
        let span = self.spans[index].clone();
        // The comma before the note goes with it, or the one after it for the first note.
        let cut = match (index.checked_sub(1), self.spans.get(index + 1)) {
            (Some(before), _) => self.spans[before].end..span.end,
            (None, Some(after)) => span.start..after.start,
            (None, None) => 0..self.notes_json.len(),
        };
        let removed = cut.end - cut.start;
        self.notes_json.drain(cut);
        self.spans.remove(index);
        for later in &mut self.spans[index..] {
            later.start -= removed;
            later.end -= removed;
        }
        Some(notes.remove(index))
    }

    /// The call as JSON: the generated type's encoding without the notes, and the kept notes after.
    fn encode(&mut self) -> serde_json::Result<Vec<u8>> {
        let notes = self.call.notes.take();
        let head = serde_json::to_vec(&self.call);
        self.call.notes = notes;
        let mut json = head?;
        if self.call.notes.is_some() && json.last() == Some(&b'}') {
            json.pop();
            if json.len() > 1 {
                json.push(b',');
            }
            json.extend_from_slice(b"\"notes\":[");
            json.extend_from_slice(&self.notes_json);
            json.extend_from_slice(b"]}");
        }
        Ok(json)
    }
}

/// Appends `value`'s JSON to a comma-separated list and returns where it lies.
fn push_json(
    list: &mut Vec<u8>,
    value: &impl serde::Serialize,
) -> serde_json::Result<Range<usize>> {
    if !list.is_empty() {
        list.push(b',');
    }
    let start = list.len();
    if let Err(e) = serde_json::to_writer(&mut *list, value) {
        // Leave the list as it was, without the comma or half a value.
        list.truncate(start.saturating_sub(usize::from(start > 0)));
        return Err(e);
    }
    Ok(start..list.len())
}

/// How many operations the mock carried out, per kind, since it started.
///
/// An operation counts when it was applied: answered `200`, or carried out and then dropped by
/// [`Fault::SaveThenDrop`] (or answered late by [`Fault::Delay`], or carried out late by
/// [`Fault::LateApply`], counted when it is). Rejected requests (those refused by the rate limit,
/// or with a repeated note id, included), and requests that got any other fault, do not count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OperationCounts {
    /// `GET /calls/{id}` answered with the call.
    pub get_call: usize,
    /// `POST /calls/{id}/notes` that added a note.
    pub add_note: usize,
    /// `PATCH /calls/{id}/notes/{noteId}` that changed a note.
    pub update_note: usize,
    /// `DELETE /calls/{id}/notes/{noteId}` that removed a note.
    pub delete_note: usize,
    /// `GET /calls` answered with a page of calls.
    pub list_calls: usize,
    /// `GET /calls/{id}/transcript` answered with the call's transcript.
    pub get_transcript: usize,
}

/// The calls and what the API did to them.
#[derive(Default)]
struct Store {
    calls: HashMap<String, StoredCall>,
    /// Every call, in the order of a listing: oldest first, by creation time, then id.
    order: BTreeSet<list::SortKey>,
    created: HashMap<String, Vec<Note>>,
    created_total: usize,
    deleted: HashMap<String, Vec<Note>>,
    counts: OperationCounts,
}

/// Why an operation on a stored call did not happen.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// No call with that id.
    NoCall,
    /// The call exists but holds no note with that id.
    NoNote,
    /// The call already holds a note with the id of the note to add (only with
    /// `refuse_repeated_note_ids`).
    RepeatedNoteId(String),
    /// The call could not be encoded (not expected with the generated types).
    Encode(serde_json::Error),
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Encode(e)
    }
}

/// The fields a `PATCH` sets; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub(crate) struct NoteChanges {
    pub(crate) id: Option<String>,
    pub(crate) user_id: Option<String>,
    pub(crate) content: Option<String>,
    pub(crate) flagged: Option<bool>,
    pub(crate) created_at: Option<happyrobot_sdk::Timestamp>,
}

/// What the server's tasks and the handle share.
pub(crate) struct Shared {
    api_key: String,
    max_body_bytes: usize,
    record_requests: bool,
    ignore_client_note_ids: bool,
    refuse_repeated_note_ids: bool,
    /// Waited before every answer; zero (the default) waits not at all.
    latency: Duration,
    rate_limit: Option<rate_limit::Limiter>,
    store: Mutex<Store>,
    faults: Mutex<fault::FaultPlan>,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Changes to `true` (or its sender goes away) when the server stops, so that the late
    /// operations of [`Fault::LateApply`], which outlive their connections, stop too.
    shutdown: watch::Receiver<bool>,
}

/// Locks a mutex even if a thread panicked while holding it: the data is plain and stays usable,
/// and a test that panicked elsewhere should not make every later call panic too.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    /// Logs a request and returns its place in the log (`usize::MAX`, which matches nothing, when
    /// the log is off).
    fn record(&self, request: RecordedRequest) -> usize {
        if !self.record_requests {
            return usize::MAX;
        }
        let mut requests = lock(&self.requests);
        requests.push(request);
        requests.len() - 1
    }

    fn set_status(&self, index: usize, status: Option<u16>) {
        if let Some(request) = lock(&self.requests).get_mut(index) {
            request.status = status;
        }
    }

    fn set_fault(&self, index: usize, fault: Fault) {
        if let Some(request) = lock(&self.requests).get_mut(index) {
            request.fault = Some(fault);
        }
    }

    fn next_fault(&self) -> Option<Fault> {
        lock(&self.faults).next()
    }

    /// One page of the calls the query matches, as `{calls, count, limit, offset}`, under one lock
    /// so that the page and the count agree.
    fn list_calls(&self, query: &list::ListQuery) -> Result<Vec<u8>, StoreError> {
        let mut store = lock(&self.store);
        let store = &mut *store;
        let mut json = b"{\"calls\":[".to_vec();
        let mut count = 0usize;
        let mut sent = 0usize;
        let keys: Box<dyn Iterator<Item = &list::SortKey>> = if query.ascending {
            Box::new(store.order.iter())
        } else {
            Box::new(store.order.iter().rev())
        };
        // Without filters every call counts, and only the page's calls need to be looked at.
        let (keys, unfiltered) = if query.is_unfiltered() {
            count = store.order.len();
            (
                Box::new(keys.skip(query.skip).take(query.limit)) as Box<dyn Iterator<Item = _>>,
                true,
            )
        } else {
            (keys, false)
        };
        for (_, id) in keys {
            let Some(stored) = store.calls.get_mut(id) else {
                continue;
            };
            if !unfiltered && !query.matches(&stored.call) {
                continue;
            }
            if unfiltered || (count >= query.skip && sent < query.limit) {
                if sent > 0 {
                    json.push(b',');
                }
                json.extend_from_slice(&stored.encode()?);
                sent += 1;
            }
            if !unfiltered {
                count += 1;
            }
        }
        json.extend_from_slice(
            format!(
                "],\"count\":{count},\"limit\":{},\"offset\":{}}}",
                query.limit, query.skip
            )
            .as_bytes(),
        );
        store.counts.list_calls += 1;
        Ok(json)
    }

    /// The call as JSON, as the other operations answer it.
    fn get_call(&self, call_id: &str) -> Result<Vec<u8>, StoreError> {
        let mut store = lock(&self.store);
        let json = store
            .calls
            .get_mut(call_id)
            .ok_or(StoreError::NoCall)?
            .encode()?;
        store.counts.get_call += 1;
        Ok(json)
    }

    /// The call's transcript as JSON ([`transcript::of`]).
    fn get_transcript(&self, call_id: &str) -> Result<Vec<u8>, StoreError> {
        let mut store = lock(&self.store);
        let stored = store.calls.get(call_id).ok_or(StoreError::NoCall)?;
        let json = serde_json::to_vec(&transcript::of(&stored.call))?;
        store.counts.get_transcript += 1;
        Ok(json)
    }

    /// Appends the note and encodes the call after the change, both under one lock so that
    /// concurrent adds never lose a note and each answer shows the call as that add left it. With
    /// `refuse_repeated_note_ids`, a note whose id the call already holds is refused under the same
    /// lock, so that two concurrent adds of one id never both get in.
    fn append_note(&self, call_id: &str, note: Note) -> Result<Vec<u8>, StoreError> {
        let mut store = lock(&self.store);
        let store = &mut *store;
        let stored = store.calls.get_mut(call_id).ok_or(StoreError::NoCall)?;
        if self.refuse_repeated_note_ids
            && let Some(id) = note.id.as_deref()
            && stored.find_note(id).is_some()
        {
            return Err(StoreError::RepeatedNoteId(id.to_string()));
        }
        stored.add_note(note.clone())?;
        let json = stored.encode()?;
        store
            .created
            .entry(call_id.to_string())
            .or_default()
            .push(note);
        store.created_total += 1;
        store.counts.add_note += 1;
        Ok(json)
    }

    /// Sets the fields present in `changes` on the first note with this id (the others are kept)
    /// and encodes the call after the change, under one lock.
    fn update_note(
        &self,
        call_id: &str,
        note_id: &str,
        changes: NoteChanges,
    ) -> Result<Vec<u8>, StoreError> {
        let mut store = lock(&self.store);
        let stored = store.calls.get_mut(call_id).ok_or(StoreError::NoCall)?;
        let index = stored.find_note(note_id).ok_or(StoreError::NoNote)?;
        let mut note = stored
            .call
            .notes
            .as_ref()
            .and_then(|notes| notes.get(index))
            .cloned()
            .ok_or(StoreError::NoNote)?;
        if let Some(id) = changes.id.filter(|_| !self.ignore_client_note_ids) {
            note.id = Some(id);
        }
        if let Some(user_id) = changes.user_id {
            note.user_id = Some(user_id);
        }
        if let Some(content) = changes.content {
            note.content = Some(content);
        }
        if let Some(flagged) = changes.flagged {
            note.flagged = Some(flagged);
        }
        if let Some(created_at) = changes.created_at {
            note.created_at = Some(created_at);
        }
        stored.replace_note(index, note)?;
        let json = stored.encode()?;
        store.counts.update_note += 1;
        Ok(json)
    }

    /// Removes the first note with this id and encodes the call after the change, under one lock.
    fn delete_note(&self, call_id: &str, note_id: &str) -> Result<Vec<u8>, StoreError> {
        let mut store = lock(&self.store);
        let store = &mut *store;
        let stored = store.calls.get_mut(call_id).ok_or(StoreError::NoCall)?;
        let index = stored.find_note(note_id).ok_or(StoreError::NoNote)?;
        let note = stored.remove_note(index).ok_or(StoreError::NoNote)?;
        let json = stored.encode()?;
        store
            .deleted
            .entry(call_id.to_string())
            .or_default()
            .push(note);
        store.counts.delete_note += 1;
        Ok(json)
    }
}

/// Settings for a [`MockServer`]; made by [`MockServer::builder`].
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct MockServerBuilder {
    port: u16,
    api_key: String,
    seed_calls: usize,
    max_body_bytes: usize,
    record_requests: bool,
    ignore_client_note_ids: bool,
    refuse_repeated_note_ids: bool,
    latency: Duration,
    rate_limit: Option<RateLimit>,
}

impl Default for MockServerBuilder {
    fn default() -> Self {
        Self {
            port: 0,
            api_key: DEFAULT_API_KEY.to_string(),
            seed_calls: DEFAULT_SEED_CALLS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            record_requests: true,
            ignore_client_note_ids: false,
            refuse_repeated_note_ids: false,
            latency: Duration::ZERO,
            rate_limit: None,
        }
    }
}

impl MockServerBuilder {
    /// The port to listen on, on 127.0.0.1; `0` (the default) picks a free one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The API key to accept (default [`DEFAULT_API_KEY`]).
    pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = api_key.into();
        self
    }

    /// How many calls to start with (default [`DEFAULT_SEED_CALLS`]). The first has the id
    /// [`FIRST_CALL_ID`]; the ids are the same on every start.
    pub fn seed_calls(mut self, count: usize) -> Self {
        self.seed_calls = count;
        self
    }

    /// The largest request body accepted, in bytes (default [`DEFAULT_MAX_BODY_BYTES`]).
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.max_body_bytes = limit;
        self
    }

    /// Whether to keep every request for [`MockServer::requests`] (default `true`). Turn it off for
    /// long benchmarks, where the log would only grow.
    pub fn record_requests(mut self, record: bool) -> Self {
        self.record_requests = record;
        self
    }

    /// Whether to ignore a note `id` the client sends (default `false`).
    ///
    /// By default the mock keeps the `id` of a note the client adds, as the spec says the server
    /// assigns it only "when absent", and a `PATCH` that sends an `id` gives the note that id. With
    /// `true` the mock behaves like a server that does not honour client ids: every added note
    /// gets an id of the mock's choosing, and a `PATCH` leaves the note's id as it is. A client
    /// that finds its notes again by the id it chose must then cope without it.
    pub fn ignore_client_note_ids(mut self, ignore: bool) -> Self {
        self.ignore_client_note_ids = ignore;
        self
    }

    /// Whether to refuse a note whose `id` the call already holds (default `false`).
    ///
    /// By default the mock adds a second note with an id it already holds on that call, as it
    /// always did, so that a client's duplicate shows. With `true`, a `POST /calls/{id}/notes`
    /// whose note would get the id of a note on that call now is answered `409 Conflict`
    /// (`"error": "Conflict"`, `"message": "a note with id <ID> already exists on this call"`) and
    /// adds nothing, like an API that uses the client's id to make adds idempotent. The same holds
    /// for the late add of a [`Fault::LateApply`] and the add of a [`Fault::SaveThenDrop`]. Only
    /// notes on the call count (a deleted note's id can be used again), and with
    /// [`ignore_client_note_ids`](Self::ignore_client_note_ids) the client's id is not used, so
    /// nothing is refused.
    pub fn refuse_repeated_note_ids(mut self, refuse: bool) -> Self {
        self.refuse_repeated_note_ids = refuse;
        self
    }

    /// Throttles the server with a token bucket shared by all its requests (default: no limit).
    /// See [`RateLimit`] for how it counts, and [`MockServer::rate_limited_count`].
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Waits this long before every answer (default: no wait), so that a benchmark meets "a server
    /// that takes 50 ms per request".
    ///
    /// The request is handled first (checked, rate-limited, its fault drawn, the operation carried
    /// out), then the answer waits: a change is visible to other requests for `latency` before
    /// its client hears of it, as with a server whose answer is slow on the way back. The wait is
    /// for every answer, errors and `429`s included, and before a connection is closed on purpose
    /// ([`Fault::CloseBeforeResponse`], [`Fault::SaveThenDrop`]); it adds to a [`Fault::Delay`].
    /// Requests wait side by side, not one after the other. A [`Fault::LateApply`] keeps its own
    /// times, without it.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Binds 127.0.0.1 and starts serving on the current tokio runtime.
    ///
    /// The server runs as tasks of the runtime that awaits this, so that runtime must stay alive
    /// while the server is used (as it does for the length of a `#[tokio::test]`).
    ///
    /// # Errors
    /// When the port cannot be bound, for instance because it is taken.
    pub async fn start(self) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, self.port)).await?;
        let addr = listener.local_addr()?;
        let calls = seed::calls(self.seed_calls);
        let call_ids = calls.iter().map(|call| call.id.clone()).collect();
        let store = Store {
            order: calls.iter().map(list::sort_key).collect(),
            calls: calls
                .into_iter()
                .map(|call| Ok((call.id.clone(), StoredCall::new(call)?)))
                .collect::<serde_json::Result<_>>()?,
            ..Store::default()
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            api_key: self.api_key,
            max_body_bytes: self.max_body_bytes,
            record_requests: self.record_requests,
            ignore_client_note_ids: self.ignore_client_note_ids,
            refuse_repeated_note_ids: self.refuse_repeated_note_ids,
            latency: self.latency,
            rate_limit: self.rate_limit.map(rate_limit::Limiter::new),
            store: Mutex::new(store),
            faults: Mutex::new(fault::FaultPlan::default()),
            requests: Mutex::new(Vec::new()),
            shutdown: shutdown_rx.clone(),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared), shutdown_rx));
        Ok(MockServer {
            shared,
            addr,
            call_ids,
            shutdown,
            task: Some(task),
        })
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            // A value or a dropped sender both mean stop.
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else {
            // Accepting fails when the process runs out of file descriptors; wait a moment instead
            // of spinning, and keep serving the connections that exist.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        // Small requests and answers: send them at once rather than waiting to fill a packet.
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| service::handle(Arc::clone(&shared), request));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                // Errors here are the connection's own end (a client gone, an injected drop):
                // nothing to do about them but stop.
                _ = connection => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

/// A running mock HappyRobot API on 127.0.0.1; it stops when dropped.
///
/// See the [crate documentation](crate) for a tour.
#[derive(Debug)]
pub struct MockServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    call_ids: Vec<String>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is left out on purpose, so that a debug print of the server does not leak it.
        f.debug_struct("Shared")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl MockServer {
    /// Starts a mock with the defaults: a free port, [`DEFAULT_API_KEY`], [`DEFAULT_SEED_CALLS`]
    /// calls, bodies up to [`DEFAULT_MAX_BODY_BYTES`].
    ///
    /// # Errors
    /// When 127.0.0.1 cannot be bound.
    pub async fn start() -> std::io::Result<Self> {
        Self::builder().start().await
    }

    /// Settings for a mock other than the defaults.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::default()
    }

    /// The API's base URL, `http://127.0.0.1:PORT/api/v1`, to give to a client.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1", self.addr)
    }

    /// The address the mock listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API key the mock accepts.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// The ids of the seeded calls, in order; the first is [`FIRST_CALL_ID`].
    pub fn call_ids(&self) -> Vec<String> {
        self.call_ids.clone()
    }

    /// The call as it is now, with every note added so far; `None` for an unknown id.
    pub fn call(&self, id: &str) -> Option<Call> {
        lock(&self.shared.store)
            .calls
            .get(id)
            .map(|stored| stored.call.clone())
    }

    /// Adds a call, as if the API had just received it: from now on it is listed (in its place by
    /// `created`; a call created now comes first in the default order, newest first) and served
    /// like the seeded ones. `false`, and nothing changes, when the mock already holds a call with
    /// this id. [`seeded_call`] makes a realistic one:
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = happyrobot_mock::MockServer::start().await?; // calls 0, 1 and 2
    /// let mut call = happyrobot_mock::seeded_call(3); // a new id
    /// call.created = Some(happyrobot_sdk::Timestamp::now());
    /// assert!(server.add_call(call.clone()));
    /// assert!(!server.add_call(call)); // the id is taken
    /// # Ok(()) }
    /// ```
    pub fn add_call(&self, call: Call) -> bool {
        let mut store = lock(&self.shared.store);
        if store.calls.contains_key(&call.id) {
            return false;
        }
        let key = list::sort_key(&call);
        let Ok(stored) = StoredCall::new(call) else {
            return false;
        };
        store.calls.insert(key.1.clone(), stored);
        store.order.insert(key);
        true
    }

    /// Removes a call with its notes, as if it had been deleted in the app: from now on the API
    /// answers `404` for it (reading it, or adding, changing or deleting its notes) and no listing
    /// shows it. `false` when the mock holds no call with this id. ([`call_ids`](Self::call_ids)
    /// still lists a seeded call removed this way.)
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = happyrobot_mock::MockServer::start().await?; // calls 0, 1 and 2
    /// let first = server.call_ids()[0].clone();
    /// assert!(server.remove_call(&first));
    /// assert!(server.call(&first).is_none());
    /// assert!(!server.remove_call(&first)); // already gone
    /// assert_eq!(server.call_count(), 2);
    /// # Ok(()) }
    /// ```
    pub fn remove_call(&self, id: &str) -> bool {
        let mut store = lock(&self.shared.store);
        let Some(stored) = store.calls.remove(id) else {
            return false;
        };
        store.order.remove(&list::sort_key(&stored.call));
        true
    }

    /// Adds a realistic call ([`seeded_call`] at the next free index, so with a fresh id) with this
    /// status and creation time, and returns its id: a call for a test to find by a listing's
    /// status or date filter.
    ///
    /// ```
    /// use happyrobot_sdk::types::CallStatus;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = happyrobot_mock::MockServer::start().await?;
    /// let created: happyrobot_sdk::Timestamp = "2024-03-01T10:00:00Z".parse().unwrap();
    /// let id = server.add_call_with(CallStatus::Failed, created);
    /// let call = server.call(&id).unwrap();
    /// assert_eq!(call.status, Some(CallStatus::Failed));
    /// assert_eq!(call.created.unwrap().as_str(), "2024-03-01T10:00:00Z");
    /// assert_eq!(server.call_count(), 4);
    /// # Ok(()) }
    /// ```
    pub fn add_call_with(
        &self,
        status: happyrobot_sdk::types::CallStatus,
        created: impl Into<happyrobot_sdk::Timestamp>,
    ) -> String {
        let created = created.into();
        let mut index = self.call_count();
        loop {
            let mut call = seeded_call(index);
            call.status = Some(status.clone());
            call.created = Some(created.clone());
            let id = call.id.clone();
            // `add_call` checks the id and adds the call under one lock: an id taken meanwhile
            // (by a call added with an id of its own) moves on to the next one.
            if self.add_call(call) {
                return id;
            }
            index += 1;
        }
    }

    /// How many calls the mock holds: the seeded ones and those added with [`add_call`](Self::add_call).
    pub fn call_count(&self) -> usize {
        lock(&self.shared.store).calls.len()
    }

    /// Gives the next `count` requests this fault, after any already scripted. Faults are used up
    /// by requests to any of the five operations (list calls; get a call; add, update, delete a
    /// note) that
    /// pass the path, method and key checks.
    pub fn inject(&self, fault: Fault, count: usize) {
        lock(&self.shared.faults).inject(fault, count);
    }

    /// Gives each request this fault with the given probability (`0.0..=1.0`), drawn from a PRNG
    /// seeded with `seed`, so that the same seed hits the same requests (counted in arrival order)
    /// on every run. Scripted faults go first; with several rates, the first that hits wins.
    pub fn inject_rate(&self, fault: Fault, probability: f64, seed: u64) {
        lock(&self.shared.faults).inject_rate(fault, probability, seed);
    }

    /// Removes every scripted and rate fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// How many scripted faults are still waiting for a request.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).remaining_scripted()
    }

    /// Every request received so far, oldest first, with the API key redacted (none when built with
    /// `record_requests(false)`).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The notes created through the API on this call, oldest first, as they were when created:
    /// a record of the adds, which later updates and deletes do not change (seeded notes not
    /// included). [`MockServer::notes`] gives the notes the call holds now.
    pub fn created_notes(&self, call_id: &str) -> Vec<Note> {
        lock(&self.shared.store)
            .created
            .get(call_id)
            .cloned()
            .unwrap_or_default()
    }

    /// How many notes were created through the API, on all calls.
    pub fn created_note_count(&self) -> usize {
        lock(&self.shared.store).created_total
    }

    /// The notes the call holds now, in order (seeded, added, updated; deleted ones gone); empty
    /// for an unknown id or a call without notes.
    pub fn notes(&self, call_id: &str) -> Vec<Note> {
        lock(&self.shared.store)
            .calls
            .get(call_id)
            .and_then(|stored| stored.call.notes.clone())
            .unwrap_or_default()
    }

    /// How many notes with each text the mock holds now: on the call `call_id`, or with `None` on
    /// every call. What a test asserts "each note exactly once" with.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// let server = happyrobot_mock::MockServer::start().await?;
    /// let first = &server.call_ids()[0];
    /// let on_first: usize = server.notes_by_content(Some(first)).values().sum();
    /// assert_eq!(on_first, server.notes(first).len());
    /// let everywhere: usize = server.notes_by_content(None).values().sum();
    /// assert!(everywhere >= on_first);
    /// # Ok(()) }
    /// ```
    pub fn notes_by_content(&self, call_id: Option<&str>) -> HashMap<String, usize> {
        let store = lock(&self.shared.store);
        let mut counts = HashMap::new();
        let calls = store
            .calls
            .iter()
            .filter(|(id, _)| call_id.is_none_or(|wanted| wanted == id.as_str()));
        for (_, stored) in calls {
            for note in stored.call.notes.iter().flatten() {
                *counts
                    .entry(note.content.clone().unwrap_or_default())
                    .or_insert(0) += 1;
            }
        }
        counts
    }

    /// The notes deleted through the API from this call, as they were when deleted, in the order
    /// of deletion.
    pub fn deleted_notes(&self, call_id: &str) -> Vec<Note> {
        lock(&self.shared.store)
            .deleted
            .get(call_id)
            .cloned()
            .unwrap_or_default()
    }

    /// How many operations of each kind the mock carried out so far.
    pub fn operation_counts(&self) -> OperationCounts {
        lock(&self.shared.store).counts
    }

    /// How many requests the [rate limit](MockServerBuilder::rate_limit) refused with `429` so far
    /// (`0` without one). Requests that got a [`Fault::RateLimited`] are not counted here.
    pub fn rate_limited_count(&self) -> usize {
        self.shared
            .rate_limit
            .as_ref()
            .map_or(0, rate_limit::Limiter::refused)
    }

    /// Stops accepting connections, closes the open ones, and waits until the port is released.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        // The tasks see the signal (or the sender going away) and end by themselves; aborting the
        // accept loop as well releases the port even if the runtime never polls it again.
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn stored_calls_encode_like_the_generated_type() {
        for mut call in seed::calls(3) {
            let mut stored = StoredCall::new(call.clone()).unwrap();
            let note = Note {
                content: Some("added \"quoted\" ✅".to_string()),
                ..Note::default()
            };
            stored.add_note(note.clone()).unwrap();
            call.notes.get_or_insert_with(Vec::new).push(note);
            let json: serde_json::Value =
                serde_json::from_slice(&stored.encode().unwrap()).unwrap();
            assert_eq!(json, serde_json::to_value(&call).unwrap());
            assert_eq!(stored.call, call);
        }
        let mut without_notes = seed::calls(1).remove(0);
        without_notes.notes = None;
        let mut stored = StoredCall::new(without_notes.clone()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&stored.encode().unwrap()).unwrap();
        assert_eq!(json, serde_json::to_value(&without_notes).unwrap());
    }

    /// The stored call's JSON must stay the generated type's encoding however notes are replaced
    /// (longer and shorter) and removed (first, middle, last, only).
    #[test]
    fn stored_calls_encode_right_after_updates_and_deletes() {
        let check = |stored: &mut StoredCall| {
            let json: serde_json::Value =
                serde_json::from_slice(&stored.encode().unwrap()).unwrap();
            assert_eq!(json, serde_json::to_value(&stored.call).unwrap());
            assert_eq!(
                stored.spans.len(),
                stored.call.notes.as_ref().map_or(0, Vec::len)
            );
        };
        let note = |n: usize, text: &str| Note {
            id: Some(format!("n{n}")),
            content: Some(text.to_string()),
            ..Note::default()
        };
        let mut call = seed::calls(2).remove(1);
        call.notes = Some(Vec::new());
        let mut stored = StoredCall::new(call).unwrap();
        for n in 0..5 {
            stored.add_note(note(n, &"x".repeat(n + 1))).unwrap();
        }
        check(&mut stored);
        stored
            .replace_note(0, note(0, "a much longer text than before"))
            .unwrap();
        check(&mut stored);
        stored.replace_note(2, note(2, "")).unwrap();
        check(&mut stored);
        stored.replace_note(4, note(4, "last, longer")).unwrap();
        check(&mut stored);
        assert_eq!(stored.find_note("n2"), Some(2));
        assert_eq!(stored.find_note("n9"), None);
        for (index, id) in [(2, "n2"), (0, "n0"), (2, "n4"), (0, "n1"), (0, "n3")] {
            let removed = stored.remove_note(index).unwrap();
            assert_eq!(removed.id.as_deref(), Some(id));
            check(&mut stored);
        }
        assert!(stored.notes_json.is_empty());
        assert_eq!(stored.remove_note(0), None);
        stored.add_note(note(7, "again")).unwrap();
        check(&mut stored);
    }

    #[test]
    fn handle_is_send_and_sync() {
        assert_send_sync::<MockServer>();
        assert_send_sync::<MockServerBuilder>();
        assert_send_sync::<RecordedRequest>();
        assert_send_sync::<RateLimit>();
        assert_send_sync::<Fault>();
    }
}
