//! tagpin's YAML configuration: policy modes, pinned kinds, deadlines, server and registries.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tagpin_resolver::ResolverConfig;

/// The namespace label that sets a namespace's mode.
pub const MODE_LABEL: &str = "tagpin.dev/mode";

/// What tagpin does with the images of one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Pin every image; deny what cannot be pinned.
    Enforce,
    /// Pin what can be pinned; admit the rest unpinned with a warning.
    Warn,
    /// Leave the namespace alone.
    Off,
}

impl Mode {
    /// Parses a mode as written in a namespace label.
    pub fn from_label(value: &str) -> Option<Self> {
        match value {
            "enforce" => Some(Self::Enforce),
            "warn" => Some(Self::Warn),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    /// The mode's name as written in config and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enforce => "enforce",
            Self::Warn => "warn",
            Self::Off => "off",
        }
    }
}

/// A kind of object whose pod spec tagpin pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum PinnedKind {
    /// `v1/Pod`: `spec`.
    Pod,
    /// `v1/PodTemplate`: `template.spec`.
    PodTemplate,
    /// `apps/v1/Deployment`: `spec.template.spec`.
    Deployment,
    /// `apps/v1/StatefulSet`: `spec.template.spec`.
    StatefulSet,
    /// `apps/v1/DaemonSet`: `spec.template.spec`.
    DaemonSet,
    /// `apps/v1/ReplicaSet`: `spec.template.spec`.
    ReplicaSet,
    /// `v1/ReplicationController`: `spec.template.spec`.
    ReplicationController,
    /// `batch/v1/Job`: `spec.template.spec`.
    Job,
    /// `batch/v1/CronJob`: `spec.jobTemplate.spec.template.spec`.
    CronJob,
}

impl PinnedKind {
    /// Every kind tagpin knows how to pin.
    pub const ALL: [PinnedKind; 9] = [
        Self::Pod,
        Self::PodTemplate,
        Self::Deployment,
        Self::StatefulSet,
        Self::DaemonSet,
        Self::ReplicaSet,
        Self::ReplicationController,
        Self::Job,
        Self::CronJob,
    ];

    /// The kind for an API group and kind name, if tagpin pins it.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Self> {
        let found = match (group, kind) {
            ("", "Pod") => Self::Pod,
            ("", "PodTemplate") => Self::PodTemplate,
            ("", "ReplicationController") => Self::ReplicationController,
            ("apps", "Deployment") => Self::Deployment,
            ("apps", "StatefulSet") => Self::StatefulSet,
            ("apps", "DaemonSet") => Self::DaemonSet,
            ("apps", "ReplicaSet") => Self::ReplicaSet,
            ("batch", "Job") => Self::Job,
            ("batch", "CronJob") => Self::CronJob,
            _ => return None,
        };
        Some(found)
    }

    /// The kind's name as Kubernetes writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pod => "Pod",
            Self::PodTemplate => "PodTemplate",
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::ReplicaSet => "ReplicaSet",
            Self::ReplicationController => "ReplicationController",
            Self::Job => "Job",
            Self::CronJob => "CronJob",
        }
    }

    /// JSON object keys from the object's root to its pod spec.
    pub fn pod_spec_path(self) -> &'static [&'static str] {
        match self {
            Self::Pod => &["spec"],
            Self::PodTemplate => &["template", "spec"],
            Self::CronJob => &["spec", "jobTemplate", "spec", "template", "spec"],
            _ => &["spec", "template", "spec"],
        }
    }
}

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
    /// Per-namespace modes; they win over the namespace label.
    pub namespaces: BTreeMap<String, Mode>,
    /// Whether the `tagpin.dev/mode` namespace label is honoured.
    pub namespace_labels: bool,
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
            kinds: PinnedKind::ALL.to_vec(),
            deadline_seconds: 8.0,
            server: ServerConfig::default(),
            resolver: ResolverConfig::default(),
            verification: None,
            pin: crate::pin::custom::PinConfig::default(),
        }
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

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        cause: std::io::Error,
    },
    /// The file is not valid YAML or has unknown or mistyped fields.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong and where (line and column).
        message: String,
    },
    /// A field has a value tagpin cannot use.
    #[error("config file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which field and why.
        message: String,
    },
}

impl Config {
    /// Loads `path`, or the embedded default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_owned(),
            cause,
        })?;
        Self::parse(&text, path)
    }

    /// Parses YAML `text`; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        // An empty file (or one with only comments) means "all defaults".
        let config: Config = if text.trim().lines().all(|l| l.trim_start().starts_with('#')) {
            Self::default()
        } else {
            serde_norway::from_str(text).map_err(|e| ConfigError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?
        };
        config.validate().map_err(|message| {
            let field = crate::config_line::field_path(&message);
            let message = match crate::config_line::line_of(text, &field) {
                Some(line) => format!("line {line}: {message}"),
                None => message,
            };
            ConfigError::Invalid {
                path: path.to_owned(),
                message,
            }
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if !(self.deadline_seconds.is_finite() && self.deadline_seconds > 0.0) {
            return Err(format!(
                "deadlineSeconds must be a positive number of seconds, not {}",
                self.deadline_seconds
            ));
        }
        if self.deadline_seconds >= 30.0 {
            return Err(format!(
                "deadlineSeconds must stay below the API server's 30s webhook timeout, not {}",
                self.deadline_seconds
            ));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(format!(
                "server.maxBodyBytes must be at least 1024, not {}",
                self.server.max_body_bytes
            ));
        }
        if self.server.max_concurrent_reviews == 0 {
            return Err("server.maxConcurrentReviews must be at least 1".to_owned());
        }
        for (name, v) in [
            (
                "server.reloadIntervalSeconds",
                self.server.reload_interval_seconds,
            ),
            (
                "server.shutdownGraceSeconds",
                self.server.shutdown_grace_seconds,
            ),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} must be a positive number, not {v}"));
            }
        }
        self.resolver
            .validate()
            .map_err(|e| format!("resolver: {e}"))?;
        self.verification_policy().map(|_| ())
    }

    /// The compiled verification policy, if one is configured; reads the files it names.
    pub fn verification_policy(&self) -> Result<Option<tagpin_verifier::CompiledPolicy>, String> {
        self.verification
            .as_ref()
            .map(|p| p.compile().map_err(|e| format!("verification: {e}")))
            .transpose()
    }

    /// The internal admission deadline.
    pub fn deadline(&self) -> Duration {
        Duration::from_secs_f64(self.deadline_seconds)
    }

    /// Whether objects of `kind` are pinned.
    pub fn pins(&self, kind: PinnedKind) -> bool {
        self.kinds.contains(&kind)
    }

    /// The mode of `namespace`, given the value of its `tagpin.dev/mode` label if known.
    pub fn mode_for(&self, namespace: &str, label: Option<&str>) -> ModeDecision {
        if namespace == self.own_namespace
            || self.excluded_namespaces.iter().any(|n| n == namespace)
        {
            return ModeDecision::new(Mode::Off, "excluded namespace");
        }
        if let Some(mode) = self.namespaces.get(namespace) {
            return ModeDecision::new(*mode, "config");
        }
        if self.namespace_labels
            && let Some(value) = label
        {
            match Mode::from_label(value) {
                Some(mode) => return ModeDecision::new(mode, "namespace label"),
                None => {
                    // A typo in the label must not switch enforcement off.
                    return ModeDecision::new(
                        self.default_mode,
                        "default (invalid namespace label)",
                    );
                }
            }
        }
        ModeDecision::new(self.default_mode, "default")
    }
}

/// A namespace's mode and where it came from, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeDecision {
    /// The mode.
    pub mode: Mode,
    /// Which setting decided it.
    pub source: &'static str,
}

impl ModeDecision {
    fn new(mode: Mode, source: &'static str) -> Self {
        Self { mode, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("tagpin.yaml"))
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(parse("# nothing\n").unwrap(), Config::default());
    }

    #[test]
    fn default_enforces_all_kinds_and_excludes_system_namespaces() {
        let c = Config::default();
        assert_eq!(c.default_mode, Mode::Enforce);
        assert_eq!(c.kinds.len(), 9);
        assert_eq!(c.mode_for("kube-system", None).mode, Mode::Off);
        assert_eq!(c.mode_for("tagpin-system", Some("enforce")).mode, Mode::Off);
        assert_eq!(c.mode_for("apps", None).mode, Mode::Enforce);
        assert_eq!(c.deadline(), Duration::from_secs(8));
        assert_eq!(c.server.max_body_bytes, 3 * 1024 * 1024);
    }

    #[test]
    fn parses_every_field() {
        let c = parse(
            r#"
defaultMode: warn
ownNamespace: pins
excludedNamespaces: [kube-system, kube-public]
namespaces:
  prod: enforce
  scratch: off
namespaceLabels: true
kinds: [Pod, Deployment]
deadlineSeconds: 5
server:
  address: 127.0.0.1:9443
  certFile: /tls/tls.crt
  keyFile: /tls/tls.key
  clientCaFile: /tls/client-ca.crt
  maxBodyBytes: 1048576
  reloadIntervalSeconds: 1
  shutdownGraceSeconds: 10
resolver: {}
"#,
        )
        .unwrap();
        assert_eq!(c.default_mode, Mode::Warn);
        assert_eq!(c.mode_for("pins", None).mode, Mode::Off);
        assert_eq!(c.mode_for("kube-public", None).mode, Mode::Off);
        assert_eq!(c.mode_for("prod", Some("off")).mode, Mode::Enforce);
        assert_eq!(c.mode_for("scratch", None).mode, Mode::Off);
        assert_eq!(c.mode_for("other", Some("enforce")).mode, Mode::Enforce);
        assert_eq!(c.mode_for("other", None).mode, Mode::Warn);
        assert!(c.pins(PinnedKind::Deployment) && !c.pins(PinnedKind::Job));
        assert_eq!(c.server.address.port(), 9443);
        assert_eq!(c.deadline(), Duration::from_secs(5));
    }

    #[test]
    fn invalid_label_falls_back_to_default_not_off() {
        let c = Config::default();
        let d = c.mode_for("apps", Some("disabled"));
        assert_eq!(d.mode, Mode::Enforce);
        let no_labels = Config {
            namespace_labels: false,
            ..Config::default()
        };
        assert_eq!(no_labels.mode_for("apps", Some("off")).mode, Mode::Enforce);
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let err = parse("defaultMode: warn\nkindz: [Pod]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tagpin.yaml"), "{err}");
        assert!(err.contains("kindz"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn bad_mode_names_line() {
        let err = parse("namespaces:\n  prod: enforcing\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("enforcing"), "{err}");
    }

    #[test]
    fn rejects_deadline_at_or_above_webhook_limit() {
        let err = parse("deadlineSeconds: 30\n").unwrap_err().to_string();
        assert!(err.contains("deadlineSeconds"), "{err}");
        assert!(parse("deadlineSeconds: 0\n").is_err());
    }

    #[test]
    fn unknown_kind_is_rejected() {
        let err = parse("kinds: [Pod, Service]\n").unwrap_err().to_string();
        assert!(err.contains("Service"), "{err}");
    }

    #[test]
    fn verification_policy_is_parsed_and_checked_at_load() {
        let c = parse("verification:\n  noMatch: deny\n").unwrap();
        assert!(c.verification_policy().unwrap().is_some());
        assert!(Config::default().verification_policy().unwrap().is_none());
        let err = parse("verification:\n  rules: []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("noMatch"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = Config::load(Some(Path::new("/nonexistent/tagpin.yaml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/tagpin.yaml"), "{err}");
    }
}
