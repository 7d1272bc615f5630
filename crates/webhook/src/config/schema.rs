//! The configuration file's schema: every field, its meaning and its default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tagpin_resolver::ResolverConfig;

use super::kinds::PinnedKind;
use super::modes::Mode;

/// The whole configuration file; every field is optional.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Config {
    /// Mode of every namespace that neither config nor label names.
    pub default_mode: Mode,
    /// tagpin's own namespace, always left alone so tagpin can always start.
    pub own_namespace: String,
    /// Namespaces always left alone (besides the own namespace).
    pub excluded_namespaces: Vec<String>,
    /// Per-namespace modes; they win over the namespace label (see
    /// `namespace_label_overrides`).
    pub namespaces: BTreeMap<String, Mode>,
    /// Whether the `tagpin.dev/mode` label sets the mode of namespaces that `namespaces`
    /// does not name.
    pub namespace_labels: bool,
    /// Namespaces named in `namespaces` whose `tagpin.dev/mode` label still wins over the
    /// config's mode (by default a named namespace ignores its label).
    pub namespace_label_overrides: Vec<String>,
    /// Kinds whose pod specs are pinned.
    pub kinds: Vec<PinnedKind>,
    /// Time budget of one admission request, below the webhook's timeout.
    pub deadline_seconds: f64,
    /// The HTTPS server.
    pub server: ServerConfig,
    /// Registries: TLS, mirrors, credentials file, cache and timeouts.
    pub resolver: ResolverConfig,
    /// Signature and attestation policy; without it digests are pinned unverified.
    pub verification: Option<tagpin_verifier::Policy>,
    /// What `tagpin pin` pins besides the webhook's kinds (custom resources).
    pub pin: crate::pin::custom::PinConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            default_mode: Mode::Enforce,
            own_namespace: "tagpin-system".to_owned(),
            excluded_namespaces: vec!["kube-system".to_owned()],
            namespaces: BTreeMap::new(),
            namespace_labels: true,
            namespace_label_overrides: Vec::new(),
            kinds: PinnedKind::ALL.to_vec(),
            deadline_seconds: 8.0,
            server: ServerConfig::default(),
            resolver: ResolverConfig::default(),
            verification: None,
            pin: crate::pin::custom::PinConfig::default(),
        }
    }
}

impl Config {
    /// The internal admission deadline.
    pub fn deadline(&self) -> Duration {
        Duration::from_secs_f64(self.deadline_seconds)
    }

    /// Whether objects of `kind` are pinned.
    pub fn pins(&self, kind: PinnedKind) -> bool {
        self.kinds.contains(&kind)
    }
}

/// Settings of `tagpin serve`'s HTTPS listener.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub address: SocketAddr,
    /// PEM certificate chain served to clients; reloaded when it changes.
    pub cert_file: PathBuf,
    /// PEM private key of the certificate; reloaded when it changes.
    pub key_file: PathBuf,
    /// PEM CA bundle; when set, clients must present a certificate it signed.
    pub client_ca_file: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Admission reviews answered at once; as many more may wait briefly for a slot, the
    /// rest are answered as overloaded without waiting.
    pub max_concurrent_reviews: usize,
    /// How often the certificate files are checked for changes, in seconds.
    pub reload_interval_seconds: f64,
    /// How long in-flight requests may take to finish after SIGTERM, in seconds.
    pub shutdown_grace_seconds: f64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            address: SocketAddr::from(([0, 0, 0, 0], 8443)),
            cert_file: PathBuf::from("/etc/tagpin/tls/tls.crt"),
            key_file: PathBuf::from("/etc/tagpin/tls/tls.key"),
            client_ca_file: None,
            max_body_bytes: 3 * 1024 * 1024,
            max_concurrent_reviews: 256,
            reload_interval_seconds: 2.0,
            shutdown_grace_seconds: 25.0,
        }
    }
}
