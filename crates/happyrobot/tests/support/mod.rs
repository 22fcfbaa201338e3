//! A scriptable HTTP/1.1 server on 127.0.0.1 for the client's tests: it answers each request as a
//! closure says, can break the connection or never answer, and records every request it received.

#![allow(
    dead_code,
    reason = "each test file uses a different part of this module"
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// Which TCP connection carried it, counting from 0 in the order they were accepted.
    pub connection: usize,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does with a request.
pub enum Reply {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Answer with a chunked body, which declares no length up front.
    Chunked { status: u16, body: Vec<u8> },
    /// Send the status line, headers declaring `declared` bytes, and only `body`; then close the
    /// connection (`hang: false`) or keep it open without a further byte (`hang: true`).
    Partial {
        status: u16,
        declared: usize,
        body: Vec<u8>,
        hang: bool,
    },
    /// A chunked 200 of `chunks` chunks of `chunk_size` bytes, written as fast as the client reads;
    /// the bytes actually written are added to `written`.
    Stream {
        chunk_size: usize,
        chunks: usize,
        written: Arc<std::sync::atomic::AtomicUsize>,
    },
    /// Close the connection without answering.
    Close,
    /// Never answer (until the client gives up).
    Hang,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Self {
        Self::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Self::Respond { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

type Handler = dyn Fn(usize, &Recorded) -> Reply + Send + Sync;

pub struct TestServer {
    pub base_url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts a server whose handler gets the 0-based index of each request and the request.
    pub async fn start(
        handler: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self {
        Self::start_on(0, handler).await
    }

    /// [`start`](Self::start) on a given port of 127.0.0.1 (0: any free one).
    pub async fn start_on(
        port: u16,
        handler: impl Fn(usize, &Recorded) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            for connection in 0.. {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(stream, connection, handler.clone(), recorded.clone()));
            }
        });
        Self {
            base_url: format!("http://{addr}/api/v1"),
            requests,
            task,
        }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    connection: usize,
    handler: Arc<Handler>,
    requests: Arc<Mutex<Vec<Recorded>>>,
) {
    let mut buffer = Vec::new();
    loop {
        // Read the head.
        let head_end = loop {
            if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let mut start = lines.next().unwrap_or_default().split(' ');
        let method = start.next().unwrap_or_default().to_string();
        let path = start.next().unwrap_or_default().to_string();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buffer[head_end..head_end + length].to_vec();
        buffer.drain(..head_end + length);
        let request = Recorded {
            method,
            path,
            headers,
            body,
            at: Instant::now(),
            connection,
        };
        let index = {
            let mut all = requests.lock().unwrap();
            all.push(request.clone());
            all.len() - 1
        };
        match handler(index, &request) {
            Reply::Close => return,
            Reply::Partial {
                status,
                declared,
                body,
                hang,
            } => {
                let mut bytes = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
                )
                .into_bytes();
                bytes.extend_from_slice(&body);
                let _ = stream.write_all(&bytes).await;
                let _ = stream.flush().await;
                if hang {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                return;
            }
            Reply::Stream {
                chunk_size,
                chunks,
                written,
            } => {
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut chunk = format!("{chunk_size:x}\r\n").into_bytes();
                chunk.extend(std::iter::repeat_n(b'x', chunk_size));
                chunk.extend_from_slice(b"\r\n");
                for _ in 0..chunks {
                    if stream.write_all(&chunk).await.is_err() {
                        return;
                    }
                    written.fetch_add(chunk_size, std::sync::atomic::Ordering::Relaxed);
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
                return;
            }
            Reply::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return;
            }
            Reply::Chunked { status, body } => {
                let mut bytes = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
                )
                .into_bytes();
                for chunk in body.chunks(16 * 1024) {
                    bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                    bytes.extend_from_slice(chunk);
                    bytes.extend_from_slice(b"\r\n");
                }
                bytes.extend_from_slice(b"0\r\n\r\n");
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Reply::Respond {
                status,
                headers,
                body,
            } => {
                let mut out = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                for (name, value) in headers {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
                out.push_str("\r\n");
                let mut bytes = out.into_bytes();
                bytes.extend_from_slice(&body);
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A valid call as the API returns it.
pub fn call_json() -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/call_full.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub const KEY: &str = "hr_test_SECRET_KEY_42";
pub const CALL_ID: &str = "65f1c0ffee0123456789abcd";

/// What a `tracing` subscriber wrote, for the tests that check logs never show a secret.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Logs everything, at every level, into the returned buffer until the guard is dropped.
pub fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// A client for the mock that retries quickly and settles unknown adds quickly.
pub fn mock_client(server: &happyrobot_mock::MockServer) -> happyrobot::Client {
    happyrobot::Client::builder()
        .api_key(server.api_key())
        .base_url(server.base_url())
        .timeout(Duration::from_secs(5))
        .retry(
            happyrobot::RetryPolicy::default()
                .base_delay(Duration::from_millis(5))
                .max_delay(Duration::from_millis(10)),
        )
        .reconcile_settle(Duration::from_millis(50))
        .build()
        .unwrap()
}
