//! The TLS of the HTTP client that [`ClientBuilder::build`](crate::ClientBuilder::build) makes,
//! chosen by the crate's features, and the check that it can reach the base URL at all.
//!
//! - `rustls` (the default): reqwest's rustls with aws-lc-rs.
//! - `rustls-ring`: rustls with *ring*, handed to reqwest as a ready `ClientConfig`, so that no
//!   process-wide crypto provider is installed behind the application's back. It wins over the
//!   others when several are on.
//! - `native-tls`: the platform's library.
//! - none: only `http` on loopback works, and an `https` base URL is refused when the client is built
//!   instead of failing on the first request.
//!
//! Root certificates given with
//! [`ClientBuilder::add_root_certificate_pem`](crate::ClientBuilder::add_root_certificate_pem) are
//! trusted besides the platform's with every TLS choice.

use crate::Error;

/// A `reqwest::ClientBuilder` with this build's TLS, trusting the root certificates `root_pems` (PEM)
/// besides the platform's, or an error if `base_url` needs TLS and the crate was compiled without any.
pub(crate) fn client_builder(
    base_url: &str,
    root_pems: &[Vec<u8>],
) -> Result<reqwest::ClientBuilder, Error> {
    check_tls_available(base_url)?;
    with_tls(reqwest::Client::builder(), root_pems)
}

/// The error for a root certificate that cannot be read.
#[cfg(any(feature = "rustls", feature = "rustls-ring", feature = "native-tls"))]
fn invalid_root(why: String) -> Error {
    Error::config(format!(
        "a root certificate given with add_root_certificate_pem is not valid: {why}; \
         give the certificate in PEM form (-----BEGIN CERTIFICATE-----)"
    ))
}

#[cfg(any(feature = "rustls", feature = "rustls-ring", feature = "native-tls"))]
fn check_tls_available(_base_url: &str) -> Result<(), Error> {
    Ok(())
}

#[cfg(not(any(feature = "rustls", feature = "rustls-ring", feature = "native-tls")))]
fn check_tls_available(base_url: &str) -> Result<(), Error> {
    if base_url
        .get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https:"))
    {
        return Err(Error::config(format!(
            "the base URL {base_url:?} is https, but happyrobot was compiled without TLS: turn on \
             one of its features `rustls` (the default), `rustls-ring` or `native-tls`"
        )));
    }
    Ok(())
}

/// rustls with *ring*, the platform's verifier, and the extra roots.
#[cfg(feature = "rustls-ring")]
fn with_tls(
    builder: reqwest::ClientBuilder,
    root_pems: &[Vec<u8>],
) -> Result<reqwest::ClientBuilder, Error> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    let mut roots: Vec<CertificateDer<'static>> = Vec::new();
    for pem in root_pems {
        let before = roots.len();
        for certificate in CertificateDer::pem_slice_iter(pem) {
            roots.push(certificate.map_err(|e| invalid_root(format!("{e:?}")))?);
        }
        if roots.len() == before {
            return Err(invalid_root("it holds no certificate".to_string()));
        }
    }
    let setup = |e: rustls::Error| {
        Error::config(format!(
            "TLS with the ring provider could not be set up: {e}"
        ))
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    // With extra roots, a failure here is theirs: a PEM block whose contents are no certificate.
    let given = !roots.is_empty();
    let verifier = platform_verifier(roots, provider.clone()).map_err(|e| {
        if given {
            invalid_root(e.to_string())
        } else {
            setup(e)
        }
    })?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .dangerous()
        // The operating system's certificate verifier, as reqwest's own rustls setup uses.
        .with_custom_certificate_verifier(std::sync::Arc::new(verifier))
        .with_no_client_auth();
    // reqwest offers HTTP/2 and HTTP/1.1 through ALPN when it builds the config itself; a
    // preconfigured one is used as given.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(builder.tls_backend_preconfigured(config))
}

/// The platform's verifier, trusting `roots` as well.
#[cfg(feature = "rustls-ring")]
fn platform_verifier(
    roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
) -> Result<rustls_platform_verifier::Verifier, rustls::Error> {
    if roots.is_empty() {
        rustls_platform_verifier::Verifier::new(provider)
    } else {
        with_extra_roots(roots, provider)
    }
}

#[cfg(all(feature = "rustls-ring", not(target_os = "android")))]
fn with_extra_roots(
    roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
) -> Result<rustls_platform_verifier::Verifier, rustls::Error> {
    rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider)
}

/// Android's verifier takes no extra roots: asking for them is refused, never ignored.
#[cfg(all(feature = "rustls-ring", target_os = "android"))]
fn with_extra_roots(
    _roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    _provider: std::sync::Arc<rustls::crypto::CryptoProvider>,
) -> Result<rustls_platform_verifier::Verifier, rustls::Error> {
    Err(rustls::Error::General(
        "extra root certificates are not supported on Android with `rustls-ring`; use the \
         default `rustls` feature"
            .into(),
    ))
}

/// reqwest's own TLS (rustls with aws-lc-rs, or native-tls), trusting the extra roots.
#[cfg(all(
    not(feature = "rustls-ring"),
    any(feature = "rustls", feature = "native-tls")
))]
fn with_tls(
    mut builder: reqwest::ClientBuilder,
    root_pems: &[Vec<u8>],
) -> Result<reqwest::ClientBuilder, Error> {
    for pem in root_pems {
        let certificates = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| invalid_root(crate::error::chain(&e)))?;
        if certificates.is_empty() {
            return Err(invalid_root("it holds no certificate".to_string()));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    Ok(builder)
}

/// Without TLS there is nothing to trust a certificate for: asking to is a configuration error.
#[cfg(not(any(feature = "rustls", feature = "rustls-ring", feature = "native-tls")))]
fn with_tls(
    builder: reqwest::ClientBuilder,
    root_pems: &[Vec<u8>],
) -> Result<reqwest::ClientBuilder, Error> {
    if root_pems.is_empty() {
        Ok(builder)
    } else {
        Err(Error::config(
            "a root certificate was given, but happyrobot was compiled without TLS: turn on one of \
             its features `rustls` (the default), `rustls-ring` or `native-tls`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TLS: bool = cfg!(any(
        feature = "rustls",
        feature = "rustls-ring",
        feature = "native-tls"
    ));

    #[test]
    fn an_https_client_builds_exactly_when_there_is_tls() {
        let built = client_builder("https://app.happyrobot.ai/api/v1", &[]).map(|b| b.build());
        match (built, TLS) {
            // reqwest refuses a preconfigured TLS config of a rustls version it does not use.
            (Ok(client), true) => assert!(client.is_ok(), "reqwest refused the TLS setup"),
            (Ok(_), false) => panic!("built an https client without TLS"),
            (Err(e), true) => panic!("refused although TLS is compiled in: {e}"),
            (Err(e), false) => {
                let message = e.to_string();
                assert!(message.contains("compiled without TLS"), "{message}");
                assert!(message.contains("`rustls-ring`"), "{message}");
            }
        }
    }

    #[test]
    fn loopback_http_needs_no_tls() {
        let client = client_builder("http://127.0.0.1:8080/api/v1", &[]).map(|b| b.build());
        assert!(matches!(client, Ok(Ok(_))));
    }
}
