//! What the tests of this workspace share, and yours may use (the `testkit` feature): a fresh
//! directory per test, the notes a mock holds counted by text ([`crate::MockServer::notes_by_content`]
//! is always there), and a TLS acceptor with a self-signed certificate for servers on loopback
//! (a gateway in front of the mock, a TLS test server).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A new, empty directory under the system's temporary directory, named for `name`, the process
/// and a counter, so that tests running at once never share one.
pub fn temp_dir(name: &str) -> std::io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "happyrobot-test-{name}-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A self-signed certificate for one host name and the TLS acceptor that serves it.
pub struct SelfSigned {
    /// The certificate in PEM: its own authority, to trust with
    /// `ClientBuilder::add_root_certificate_pem` or the command line's `--ca-cert`.
    pub cert_pem: String,
    /// Accepts TLS connections with that certificate (rustls, aws-lc-rs).
    pub acceptor: tokio_rustls::TlsAcceptor,
}

/// A certificate for `host` and an acceptor offering the ALPN protocols `alpn` (such as `h2` and
/// `http/1.1`), in that order.
pub fn self_signed(
    host: &str,
    alpn: &[&[u8]],
) -> Result<SelfSigned, Box<dyn std::error::Error + Send + Sync>> {
    let certified = rcgen::generate_simple_self_signed(vec![host.to_string()])?;
    let cert_pem = certified.cert.pem();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(SelfSigned {
        cert_pem,
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    })
}
