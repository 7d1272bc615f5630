//! Serving certificate that follows its files: rotated certificates are picked up while serving.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;

/// Why the certificate files cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// A file holds no usable PEM item of the expected kind.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is missing or wrong.
        what: String,
    },
    /// rustls refused the certificate, key or CA (e.g. the key does not match the certificate).
    #[error("cannot use certificate {cert} with key {key}: {cause}")]
    Rustls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The rustls error.
        cause: rustls::Error,
    },
    /// The client CA bundle cannot verify clients.
    #[error("cannot use client CA bundle {path}: {message}")]
    ClientCa {
        /// The CA file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The certificate, key and optional client CA files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA bundle clients must be signed by, if client certificates are required.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn paths(&self) -> Vec<&Path> {
        let mut p = vec![self.cert.as_path(), self.key.as_path()];
        if let Some(ca) = &self.client_ca {
            p.push(ca);
        }
        p
    }

    fn read_all(&self) -> Result<Vec<Vec<u8>>, TlsError> {
        self.paths()
            .into_iter()
            .map(|p| {
                std::fs::read(p).map_err(|cause| TlsError::Read {
                    path: p.to_owned(),
                    cause,
                })
            })
            .collect()
    }
}

/// A TLS server configuration rebuilt whenever its files change.
#[derive(Debug)]
pub struct ReloadingTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    loaded: Mutex<Vec<Vec<u8>>>,
}

impl ReloadingTls {
    /// Loads the files once; fails when they are unusable.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let contents = files.read_all()?;
        let config = build(&files, &contents)?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(Arc::new(config)),
            loaded: Mutex::new(contents),
        }))
    }

    /// An acceptor with the newest good configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        TlsAcceptor::from(config)
    }

    /// Rebuilds the configuration if any file changed. A broken new set of files (for
    /// example a certificate written before its key) keeps the previous configuration.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let contents = self.files.read_all()?;
        let mut loaded = match self.loaded.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        if *loaded == contents {
            return Ok(false);
        }
        let config = build(&self.files, &contents)?;
        match self.current.write() {
            Ok(mut c) => *c = Arc::new(config),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(config),
        }
        *loaded = contents;
        Ok(true)
    }

    /// Checks the files every `interval` for as long as the process runs.
    pub fn watch(self: Arc<Self>, interval: Duration) {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_error: Option<String> = None;
            loop {
                ticker.tick().await;
                match self.reload_if_changed() {
                    Ok(true) => {
                        last_error = None;
                        tracing::info!(cert = %self.files.cert.display(), "reloaded the serving certificate");
                    }
                    Ok(false) => last_error = None,
                    Err(e) => {
                        let message = e.to_string();
                        // Log each distinct problem once, not every tick.
                        if last_error.as_deref() != Some(message.as_str()) {
                            tracing::warn!(error = %message, "keeping the previous serving certificate");
                            last_error = Some(message);
                        }
                    }
                }
            }
        });
    }
}

fn build(files: &TlsFiles, contents: &[Vec<u8>]) -> Result<ServerConfig, TlsError> {
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(contents[0].as_slice()))
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(&files.cert, format!("invalid PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error(
            &files.cert,
            "contains no PEM certificate".to_owned(),
        ));
    }
    let key = rustls_pemfile::private_key(&mut BufReader::new(contents[1].as_slice()))
        .map_err(|e| pem_error(&files.key, format!("invalid PEM private key: {e}")))?
        .ok_or_else(|| pem_error(&files.key, "contains no PEM private key".to_owned()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let rustls_error = |cause| TlsError::Rustls {
        cert: files.cert.clone(),
        key: files.key.clone(),
        cause,
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(rustls_error)?;
    let builder = match (&files.client_ca, contents.get(2)) {
        (Some(path), Some(pem)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut BufReader::new(pem.as_slice())) {
                let cert =
                    cert.map_err(|e| pem_error(path, format!("invalid PEM certificate: {e}")))?;
                roots.add(cert).map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(rustls_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn pem_error(path: &Path, what: String) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        what,
    }
}
