#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod cli;
mod fault;
mod seed;
mod service;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use happyrobot_sdk::types::{Call, Note};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use fault::{Fault, ParseFaultError};
pub use seed::{FIRST_CALL_ID, MOCK_USER_ID};

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
    /// answer is still being prepared, during a [`Fault::Delay`]).
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
/// an answer a copy of bytes instead, which keeps a thousand adds to one call fast.
struct StoredCall {
    call: Call,
    /// The encoded notes, comma-separated, without the brackets.
    notes_json: Vec<u8>,
}

impl StoredCall {
    fn new(call: Call) -> serde_json::Result<Self> {
        let mut stored = Self {
            call,
            notes_json: Vec::new(),
        };
        for note in stored.call.notes.iter().flatten() {
            push_json(&mut stored.notes_json, note)?;
        }
        Ok(stored)
    }

    fn add_note(&mut self, note: Note) -> serde_json::Result<()> {
        push_json(&mut self.notes_json, &note)?;
        self.call.notes.get_or_insert_with(Vec::new).push(note);
        Ok(())
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

/// Appends `value`'s JSON to a comma-separated list.
fn push_json(list: &mut Vec<u8>, value: &impl serde::Serialize) -> serde_json::Result<()> {
    if !list.is_empty() {
        list.push(b',');
    }
    serde_json::to_writer(&mut *list, value)
}

/// The calls and what the API did to them.
#[derive(Default)]
struct Store {
    calls: HashMap<String, StoredCall>,
    created: HashMap<String, Vec<Note>>,
    created_total: usize,
}

/// What the server's tasks and the handle share.
pub(crate) struct Shared {
    api_key: String,
    max_body_bytes: usize,
    record_requests: bool,
    store: Mutex<Store>,
    faults: Mutex<fault::FaultPlan>,
    requests: Mutex<Vec<RecordedRequest>>,
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

    /// Appends the note and encodes the call after the change, both under one lock so that
    /// concurrent adds never lose a note and each answer shows the call as that add left it.
    /// `None` when there is no such call.
    fn append_note(&self, call_id: &str, note: Note) -> Option<serde_json::Result<Vec<u8>>> {
        let mut store = lock(&self.store);
        let store = &mut *store;
        let stored = store.calls.get_mut(call_id)?;
        if let Err(e) = stored.add_note(note.clone()) {
            return Some(Err(e));
        }
        let json = stored.encode();
        store
            .created
            .entry(call_id.to_string())
            .or_default()
            .push(note);
        store.created_total += 1;
        Some(json)
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
}

impl Default for MockServerBuilder {
    fn default() -> Self {
        Self {
            port: 0,
            api_key: DEFAULT_API_KEY.to_string(),
            seed_calls: DEFAULT_SEED_CALLS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            record_requests: true,
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
            calls: calls
                .into_iter()
                .map(|call| Ok((call.id.clone(), StoredCall::new(call)?)))
                .collect::<serde_json::Result<_>>()?,
            ..Store::default()
        };
        let shared = Arc::new(Shared {
            api_key: self.api_key,
            max_body_bytes: self.max_body_bytes,
            record_requests: self.record_requests,
            store: Mutex::new(store),
            faults: Mutex::new(fault::FaultPlan::default()),
            requests: Mutex::new(Vec::new()),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
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

    /// Gives the next `count` requests this fault, after any already scripted. Faults are used up
    /// only by requests to the notes endpoint that pass the path, method and key checks.
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

    /// The notes created through the API on this call, oldest first (seeded notes not included).
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

    #[test]
    fn handle_is_send_and_sync() {
        assert_send_sync::<MockServer>();
        assert_send_sync::<MockServerBuilder>();
        assert_send_sync::<RecordedRequest>();
    }
}
