//! The client over TLS through rustls, against a server on 127.0.0.1 with a self-signed
//! certificate: trusted with `ClientBuilder::add_root_certificate_pem`, it negotiates HTTP/2;
//! untrusted, the handshake fails and the error says nothing was sent.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails by panicking, with the location"
)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use happyrobot::{CallId, Client, ErrorKind, NewNote, Outcome, RetryPolicy};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{CALL_ID, KEY, call_json};
use tokio::net::TcpListener;

/// A TLS server for `localhost` that answers every request with the full call and records the HTTP
/// version of each request. Returns the base URL, the certificate (PEM) and the record.
async fn tls_server() -> (String, String, Arc<Mutex<Vec<hyper::Version>>>) {
    let happyrobot_mock::testkit::SelfSigned { cert_pem, acceptor } =
        happyrobot_mock::testkit::self_signed("localhost", &[b"h2", b"http/1.1"]).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let versions = Arc::new(Mutex::new(Vec::new()));
    let seen = versions.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let seen = seen.clone();
                    async move {
                        seen.lock().unwrap().push(request.version());
                        let _ = request.into_body().collect().await;
                        let response = hyper::Response::builder()
                            .header("content-type", "application/json")
                            .header("x-request-id", "tls-1")
                            .body(Full::new(Bytes::from(call_json())))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (
        format!("https://localhost:{port}/api/v1"),
        cert_pem,
        versions,
    )
}

#[tokio::test]
async fn a_trusted_self_signed_server_is_reached_over_http2() {
    let (base_url, cert_pem, versions) = tls_server().await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&base_url)
        .add_root_certificate_pem(cert_pem)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let id: CallId = CALL_ID.parse().unwrap();
    let response = client
        .add_note(&id, NewNote::new("over TLS"))
        .await
        .unwrap();
    assert_eq!(response.id, CALL_ID);
    assert_eq!(response.request_id(), Some("tls-1"));
    assert_eq!(*versions.lock().unwrap(), [hyper::Version::HTTP_2]);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_handshake_and_nothing_is_sent() {
    let (base_url, _, versions) = tls_server().await;
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&base_url)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let id: CallId = CALL_ID.parse().unwrap();
    let err = client
        .add_note(&id, NewNote::new("over TLS"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert_eq!(err.outcome(), Outcome::NotApplied);
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(
        versions.lock().unwrap().is_empty(),
        "no request reached the server"
    );
}

#[test]
fn an_invalid_root_certificate_fails_at_build() {
    let err = Client::builder()
        .api_key(KEY)
        .add_root_certificate_pem("not a certificate")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

// `ClientBuilder::http_client` needs the feature (the crate's dev-dependency on itself turns it on).
// With `rustls-ring`, a plain `reqwest::Client::new()` panics for want of a process-wide crypto
// provider (the trap the crate README describes), so the test builds none there.
#[cfg(all(feature = "reqwest-client", not(feature = "rustls-ring")))]
#[test]
fn root_certificates_for_a_caller_supplied_client_are_refused_not_ignored() {
    let err = Client::builder()
        .api_key(KEY)
        .http_client(reqwest::Client::new())
        .add_root_certificate_pem("any certificate")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("http_client"), "{err}");
}
