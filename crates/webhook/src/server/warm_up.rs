//! The one-time work of a first request, done before `/readyz` says ready so that no
//! admission pays for it: seeding the crypto provider's randomness (aws-lc starts its jitter
//! entropy source on first use, tens of milliseconds), a TLS handshake with the serving
//! configuration (key exchange, the key's first signature), the registry clients of the
//! configured credentials, and one admission review that needs no registry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tagpin_resolver::{DockerConfig, Resolver};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::admission::Admitter;

/// Longest the in-memory handshake may take; it never touches the network.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(5);

/// A review tagpin answers without looking at images: it exercises parsing, planning and
/// encoding, and nothing else.
const DELETE_REVIEW: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"tagpin-warm-up","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"name":"warm-up","namespace":"default","operation":"DELETE","userInfo":{"username":"tagpin"},"oldObject":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"warm-up","namespace":"default"},"spec":{"containers":[{"name":"c","image":"registry.example/warm-up:1"}]}},"dryRun":true}}"#;

/// What the warm-up uses.
pub struct WarmUp<'a> {
    /// The serving certificate's acceptor.
    pub acceptor: TlsAcceptor,
    /// The admitter of the loaded config.
    pub admitter: &'a Admitter,
    /// The resolver whose clients are built.
    pub resolver: &'a Resolver,
    /// The configured docker config, whose registries get their clients now.
    pub docker: Option<&'a DockerConfig>,
}

impl WarmUp<'_> {
    /// Does every step; a step that fails is logged and skipped, never fatal: the work it
    /// stood for is then done by the first request instead. Returns how long it took.
    pub async fn run(self) -> Duration {
        let started = Instant::now();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut seed = [0u8; 32];
        if provider.secure_random.fill(&mut seed).is_err() {
            tracing::warn!("warm-up: the crypto provider has no randomness yet");
        }
        handshake(self.acceptor, provider).await;
        if let Some(docker) = self.docker {
            for host in docker.registries() {
                if let Err(e) = self.resolver.client(host, docker.credential_for(host)) {
                    tracing::warn!(registry = host, error = %e, "warm-up: no registry client");
                }
            }
        }
        if let Err(e) = self.admitter.review(DELETE_REVIEW.as_bytes()).await {
            tracing::warn!(error = %e, "warm-up: the sample review was refused");
        }
        started.elapsed()
    }
}

/// One TLS handshake between the serving configuration and a client in memory. It may fail
/// (a client certificate may be required); by then both sides have done their crypto.
async fn handshake(acceptor: TlsAcceptor, provider: Arc<CryptoProvider>) {
    let config = match ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        Err(e) => {
            tracing::warn!(error = %e, "warm-up: no TLS client configuration");
            return;
        }
    };
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let both = async {
        tokio::join!(
            acceptor.accept(server_io),
            connector.connect(name, client_io)
        )
    };
    match tokio::time::timeout(HANDSHAKE_LIMIT, both).await {
        Ok((Ok(_), Ok(_))) => {}
        Ok((server, client)) => tracing::debug!(
            server = ?server.err(),
            client = ?client.err(),
            "warm-up: the TLS handshake did not complete"
        ),
        Err(_) => tracing::warn!("warm-up: the in-memory TLS handshake did not finish"),
    }
}

/// Trusts any certificate, checking only the handshake's signature: the warm-up client
/// talks to this process's own serving configuration over memory and sends nothing.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
