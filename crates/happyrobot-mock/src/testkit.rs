//! What the tests of this workspace share, and yours may use (the `testkit` feature): a fresh
//! directory per test, the notes a mock holds counted by text ([`crate::MockServer::notes_by_content`]
//! is always there), and a TLS acceptor with a self-signed certificate for servers on loopback
//! (a gateway in front of the mock, a TLS test server).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A new, empty directory under the system's temporary directory, named for `name`, the process
/// and a counter, so that tests running at once never share one.
///
/// The directories are left in place when the tests end (a failed test's files are there to be
/// read). The first call of a process removes those that processes no longer running made over
/// an hour ago (on Linux, where `/proc` says which run; the hour spares a process of another
/// container that shares the directory): the runs of a test suite do not pile up.
pub fn temp_dir(name: &str) -> std::io::Result<PathBuf> {
    static SWEPT: std::sync::Once = std::sync::Once::new();
    SWEPT.call_once(|| sweep(&std::env::temp_dir(), std::time::Duration::from_secs(3600)));
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

/// Removes the directories under `dir` that [`temp_dir`] made for processes that no longer run,
/// last changed more than `older_than` ago. Only where `/proc` tells (Linux); a directory that
/// cannot be read or removed is left.
fn sweep(dir: &std::path::Path, older_than: std::time::Duration) {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(maker_of) else {
            continue;
        };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|at| at.elapsed().ok())
            .is_some_and(|age| age >= older_than);
        let ended = !std::path::Path::new(&format!("/proc/{pid}")).exists();
        if old && ended && pid != std::process::id() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The process that made a directory named as [`temp_dir`] names them
/// (`happyrobot-test-{name}-{pid}-{nanos:x}-{counter}`), if `name` is one.
fn maker_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("happyrobot-test-")?;
    let mut parts = rest.rsplitn(4, '-');
    let (counter, nanos, pid, _name) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    counter.parse::<u64>().ok()?;
    u128::from_str_radix(nanos, 16).ok()?;
    pid.parse().ok()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_maker_of_a_directory_is_read_from_its_name() {
        assert_eq!(
            maker_of("happyrobot-test-fuzz-input-4242-1a2b3c-7"),
            Some(4242)
        );
        assert_eq!(maker_of("happyrobot-test-x-1-0-0"), Some(1));
        assert_eq!(maker_of("happyrobot-test-x-1-zz-0"), None);
        assert_eq!(maker_of("happyrobot-test-x-one-1a-0"), None);
        assert_eq!(maker_of("other-x-1-1a-0"), None);
        assert_eq!(maker_of("happyrobot-test-1-1a"), None);
    }

    #[test]
    fn directories_of_processes_that_ended_are_removed() {
        let root = temp_dir("sweep").unwrap();
        // No process runs with a pid this high (the kernel's limit is 2^22).
        let gone = root.join("happyrobot-test-old-4294967294-1a-0");
        let mine = root.join(format!("happyrobot-test-new-{}-1a-0", std::process::id()));
        let other = root.join("not-ours-4294967294-1a-0");
        for dir in [&gone, &mine, &other] {
            std::fs::create_dir_all(dir.join("inside")).unwrap();
        }
        // Not yet: they are younger than an hour.
        sweep(&root, std::time::Duration::from_secs(3600));
        assert!(gone.exists());
        sweep(&root, std::time::Duration::ZERO);
        if std::path::Path::new("/proc/self").exists() {
            assert!(!gone.exists());
        }
        assert!(mine.exists() && other.exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
