//! How to reach one registry host: scheme, trusted CAs, timeouts; and TLS error classification.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

use crate::challenge::Challenge;
use crate::config::{RegistrySettings, TimeoutSettings};
use crate::error::ResolveError;

/// The scheme a request goes out with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// TLS, verified against system roots plus the registry's configured CA.
    Https,
    /// Plain HTTP: configured, or a loopback registry that does not speak TLS.
    Http,
}

const HTTPS: u8 = 0;
const HTTP: u8 = 1;

/// How long what a registry answered about the referrers API is believed: long enough that
/// verifications do not ask it twice, short enough that an upgraded registry is noticed.
const REFERRERS_API_MEMORY: Duration = Duration::from_secs(600);

/// One registry host with its HTTP connection pool. Carries no credentials, so
/// clients of different credentials may share it.
pub struct Endpoint {
    /// `host[:port]` as written in references.
    pub host: String,
    /// The connection pool, with this host's CA and timeouts.
    pub http: reqwest::Client,
    /// What `/v2/` asked for, learnt once for every credential: the same for all of them.
    pub challenge: OnceCell<Option<Challenge>>,
    loopback: bool,
    scheme: AtomicU8,
    /// Requests in flight to this host, whatever their credential.
    in_flight: Semaphore,
    /// Whether the host serves the OCI 1.1 referrers API, and since when that is known.
    referrers_api: Mutex<Option<(bool, Instant)>>,
}

impl Endpoint {
    /// Builds the endpoint for `host` from its settings.
    pub fn new(
        host: &str,
        settings: &RegistrySettings,
        timeouts: &TimeoutSettings,
    ) -> Result<Self, ResolveError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("tagpin/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeouts.connect())
            .read_timeout(timeouts.read())
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::limited(5));
        if let Some(ca) = &settings.ca {
            let pem = std::fs::read(ca).map_err(|e| {
                ResolveError::Config(format!(
                    "resolver.registries.\"{host}\".ca: cannot read {}: {e}",
                    ca.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                ResolveError::Config(format!(
                    "resolver.registries.\"{host}\".ca: {} is not a PEM certificate bundle: {e}",
                    ca.display()
                ))
            })?;
            if certs.is_empty() {
                return Err(ResolveError::Config(format!(
                    "resolver.registries.\"{host}\".ca: {} holds no certificate",
                    ca.display()
                )));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| {
            ResolveError::Config(format!(
                "registry {host}: cannot build an HTTP client: {}",
                crate::error::error_chain(&e)
            ))
        })?;
        Ok(Self {
            host: host.to_owned(),
            http,
            challenge: OnceCell::new(),
            loopback: is_loopback_host(host),
            scheme: AtomicU8::new(if settings.plain_http { HTTP } else { HTTPS }),
            in_flight: Semaphore::new(
                settings
                    .max_concurrent_requests
                    .clamp(1, Semaphore::MAX_PERMITS),
            ),
            referrers_api: Mutex::new(None),
        })
    }

    /// A slot for one request to this host; waits while `maxConcurrentRequests` are in flight.
    /// `None` when the semaphore is closed, which it never is.
    pub async fn slot(&self) -> Option<SemaphorePermit<'_>> {
        self.in_flight.acquire().await.ok()
    }

    /// Whether the host serves the OCI 1.1 referrers API, when it answered recently.
    pub fn referrers_api(&self) -> Option<bool> {
        let known = *self.referrers_api.lock().ok()?;
        known
            .filter(|(_, at)| at.elapsed() < REFERRERS_API_MEMORY)
            .map(|(served, _)| served)
    }

    /// Remembers whether the host serves the referrers API.
    pub fn learn_referrers_api(&self, served: bool) {
        if let Ok(mut known) = self.referrers_api.lock() {
            *known = Some((served, Instant::now()));
        }
    }

    /// The scheme requests use now.
    pub fn scheme(&self) -> Scheme {
        match self.scheme.load(Ordering::Relaxed) {
            HTTP => Scheme::Http,
            _ => Scheme::Https,
        }
    }

    /// Loopback registries may speak plain HTTP (Docker's convention): when a TLS
    /// handshake with one fails for a reason other than trust, switch to HTTP.
    pub fn fall_back_to_http(&self, e: &reqwest::Error) -> bool {
        if !self.loopback
            || self.scheme() != Scheme::Https
            || e.is_timeout()
            || tls_certificate_error(e).is_some()
            || connection_refused(e)
        {
            return false;
        }
        self.scheme.store(HTTP, Ordering::Relaxed);
        true
    }
}

/// The host that serves the registry API for a registry name.
pub fn api_host(registry: &str) -> &str {
    if registry == "docker.io" {
        "registry-1.docker.io"
    } else {
        registry
    }
}

/// True for `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    if bare.eq_ignore_ascii_case("localhost") {
        return true;
    }
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

fn sources<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        out.push(err);
        // io::Error's source() skips its own inner error; step into it explicitly.
        cur = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    out
}

/// The certificate problem behind a TLS failure, if that is what it was.
pub fn tls_certificate_error(e: &reqwest::Error) -> Option<String> {
    sources(e).into_iter().find_map(|s| {
        let tls = s.downcast_ref::<rustls::Error>()?;
        match tls {
            rustls::Error::InvalidCertificate(c) => Some(format!("invalid certificate: {c:?}")),
            rustls::Error::NoCertificatesPresented => Some("no certificate presented".into()),
            rustls::Error::InvalidCertRevocationList(_) => Some(tls.to_string()),
            _ => None,
        }
    })
}

/// Why a request got no answer, without the request's URL: its scheme may be only
/// tagpin's first guess for a loopback registry, and the registry is named by the caller.
pub fn transport_cause(e: &reqwest::Error) -> String {
    let chain = sources(e);
    let io_kind = chain
        .iter()
        .find_map(|s| s.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => return "connection refused".to_owned(),
        Some(std::io::ErrorKind::ConnectionReset) => return "connection reset".to_owned(),
        Some(std::io::ErrorKind::HostUnreachable) => return "host unreachable".to_owned(),
        Some(std::io::ErrorKind::NetworkUnreachable) => return "network unreachable".to_owned(),
        _ => {}
    }
    // reqwest's own layer only says which URL failed; hyper's "client error (…)" adds nothing.
    let mut out: Vec<String> = Vec::new();
    for text in chain.iter().skip(1).map(ToString::to_string) {
        if !text.starts_with("client error (") && !out.iter().any(|t| t.contains(&text)) {
            out.push(text);
        }
    }
    if out.is_empty() {
        let text = e.to_string();
        return match e.url() {
            Some(url) => text.replace(&format!(" for url ({url})"), ""),
            None => text,
        };
    }
    out.join(": ")
}

fn connection_refused(e: &reqwest::Error) -> bool {
    sources(e).into_iter().any(|s| {
        s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1",
            "127.1.2.3:80",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "registry.example",
            "10.0.0.1:5000",
            "[fe80::1]:5000",
            "localhost.example",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn docker_hub_api_host() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("ghcr.io"), "ghcr.io");
    }
}
