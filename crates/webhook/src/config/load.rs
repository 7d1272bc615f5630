//! Reading the configuration file and refusing values tagpin cannot use, naming the file
//! and the line.

use std::path::{Path, PathBuf};

use super::schema::Config;

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
            let field = super::line::field_path(&message);
            let message = match super::line::line_of(text, &field) {
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
        self.validate_label_overrides()?;
        self.resolver
            .validate()
            .map_err(|e| format!("resolver: {e}"))?;
        self.verification_policy().map(|_| ())
    }

    /// An override names a namespace of `namespaces:`; anything else is a typo that would
    /// silently do nothing.
    fn validate_label_overrides(&self) -> Result<(), String> {
        match self
            .namespace_label_overrides
            .iter()
            .find(|n| !self.namespaces.contains_key(n.as_str()))
        {
            Some(name) => Err(format!(
                "namespaceLabelOverrides: \"{name}\" is not named under namespaces: (the label of namespaces the config does not name is governed by namespaceLabels)"
            )),
            None => Ok(()),
        }
    }

    /// The compiled verification policy, if one is configured; reads the files it names.
    pub fn verification_policy(&self) -> Result<Option<tagpin_verifier::CompiledPolicy>, String> {
        self.verification
            .as_ref()
            .map(|p| p.compile().map_err(|e| format!("verification: {e}")))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{Mode, PinnedKind};

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
namespaceLabelOverrides: [scratch]
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
        assert_eq!(c.mode_for("scratch", Some("warn")).mode, Mode::Warn);
        assert_eq!(c.mode_for("other", Some("enforce")).mode, Mode::Enforce);
        assert_eq!(c.mode_for("other", None).mode, Mode::Warn);
        assert!(c.pins(PinnedKind::Deployment) && !c.pins(PinnedKind::Job));
        assert_eq!(c.server.address.port(), 9443);
        assert_eq!(c.deadline(), Duration::from_secs(5));
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
