//! Resolver settings: per-registry TLS, plain HTTP, mirrors; cache and timeouts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::reference::normalize_host;

/// Everything the resolver needs to know about registries, read from tagpin's YAML config.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResolverConfig {
    /// Settings per registry host (`host` or `host:port`); keys are matched after the
    /// same normalization as image references (lowercase, no `:443`, Docker Hub's aliases).
    pub registries: BTreeMap<String, RegistrySettings>,
    /// A docker `config.json` whose `auths` are tried after pull secrets.
    pub docker_config: Option<PathBuf>,
    /// The tag-to-digest cache.
    pub cache: CacheSettings,
    /// Deadlines and timeouts of one lookup.
    pub timeouts: TimeoutSettings,
}

/// How to reach one registry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// PEM bundle of CAs trusted for this registry, in addition to the system roots.
    pub ca: Option<PathBuf>,
    /// Speak plain HTTP to this registry (never needed for loopback registries).
    pub plain_http: bool,
    /// Mirrors tried in order before the registry itself, as `host[:port]`.
    pub mirrors: Vec<String>,
    /// Ask the origin to confirm a mirror's tag-to-digest answer: when the origin is
    /// reachable and answers otherwise (another digest, no such tag, an error status),
    /// the lookup fails; when it is unreachable, the mirror's answer stands, unconfirmed.
    pub confirm_mirrors: bool,
    /// Most requests in flight to this host at once, over every credential; more wait.
    pub max_concurrent_requests: usize,
}

/// Requests in flight per registry host unless configured: one verified admission of ten
/// images asks for about forty artifacts at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 64;

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            ca: None,
            plain_http: false,
            mirrors: Vec::new(),
            confirm_mirrors: false,
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
        }
    }
}

/// Size and lifetime of cached tag-to-digest answers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CacheSettings {
    /// How long a resolved digest is served from cache, in seconds (0 disables the cache).
    pub ttl_seconds: f64,
    /// Most entries kept; the oldest are dropped beyond it.
    pub max_entries: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            ttl_seconds: 30.0,
            max_entries: 10_000,
        }
    }
}

impl CacheSettings {
    /// The TTL as a duration.
    pub fn ttl(&self) -> Duration {
        secs(self.ttl_seconds)
    }
}

/// Deadline of one lookup and the timeouts inside it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct TimeoutSettings {
    /// Whole lookup, retries and mirrors included, in seconds.
    pub deadline_seconds: f64,
    /// TCP and TLS connect, in seconds.
    pub connect_seconds: f64,
    /// Longest wait for the next bytes of a response, in seconds.
    pub read_seconds: f64,
}

impl Default for TimeoutSettings {
    fn default() -> Self {
        Self {
            deadline_seconds: 6.0,
            connect_seconds: 2.0,
            read_seconds: 3.0,
        }
    }
}

impl TimeoutSettings {
    /// The whole-lookup deadline.
    pub fn deadline(&self) -> Duration {
        secs(self.deadline_seconds)
    }
    /// The connect timeout.
    pub fn connect(&self) -> Duration {
        secs(self.connect_seconds)
    }
    /// The read timeout.
    pub fn read(&self) -> Duration {
        secs(self.read_seconds)
    }
}

fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

impl ResolverConfig {
    /// Rejects settings that cannot work, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let t = &self.timeouts;
        for (name, v) in [
            ("timeouts.deadlineSeconds", t.deadline_seconds),
            ("timeouts.connectSeconds", t.connect_seconds),
            ("timeouts.readSeconds", t.read_seconds),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!(
                    "{name} must be a positive number of seconds, got {v}"
                ));
            }
        }
        if !(self.cache.ttl_seconds.is_finite() && self.cache.ttl_seconds >= 0.0) {
            return Err(format!(
                "cache.ttlSeconds must be zero or positive, got {}",
                self.cache.ttl_seconds
            ));
        }
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (host, settings) in &self.registries {
            validate_host(host).map_err(|e| format!("registries.{host:?}: {e}"))?;
            if settings.max_concurrent_requests == 0 {
                return Err(format!(
                    "registries.{host:?}.maxConcurrentRequests must be at least 1"
                ));
            }
            for m in &settings.mirrors {
                validate_host(m).map_err(|e| format!("registries.{host:?}.mirrors: {e}"))?;
            }
            if let Some(other) = seen.insert(normalize_host(host), host) {
                return Err(format!(
                    "registries.{host:?} and registries.{other:?} name the same registry {:?}; keep one",
                    normalize_host(host)
                ));
            }
        }
        Ok(())
    }

    /// The settings of `host` (compared normalized), or the defaults when it is not configured.
    pub fn registry(&self, host: &str) -> RegistrySettings {
        if let Some(s) = self.registries.get(host) {
            return s.clone();
        }
        let wanted = normalize_host(host);
        self.registries
            .iter()
            .find(|(key, _)| normalize_host(key) == wanted)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }
}

fn validate_host(host: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && !host.contains("://")
        && !host.contains('/')
        && !host.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{host:?} is not a registry host (write host or host:port, without scheme or path)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_yaml_with_defaults() {
        let c: ResolverConfig = serde_norway::from_str(
            "registries:\n  registry.example.com:\n    ca: /etc/ca.pem\n    mirrors: [mirror.local:5000]\ncache:\n  ttlSeconds: 5\n",
        )
        .unwrap();
        assert_eq!(c.cache.ttl(), Duration::from_secs(5));
        assert_eq!(c.cache.max_entries, 10_000);
        assert_eq!(
            c.registry("registry.example.com").mirrors,
            vec!["mirror.local:5000"]
        );
        assert!(!c.registry("other").plain_http);
        c.validate().unwrap();
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values() {
        assert!(serde_norway::from_str::<ResolverConfig>("registry: {}").is_err());
        let mut c = ResolverConfig::default();
        c.timeouts.deadline_seconds = 0.0;
        assert!(c.validate().unwrap_err().contains("deadlineSeconds"));
        let mut c = ResolverConfig::default();
        c.registries
            .insert("https://r.example".into(), RegistrySettings::default());
        assert!(c.validate().unwrap_err().contains("without scheme"));
        let c: ResolverConfig =
            serde_norway::from_str("registries:\n  r.example: {maxConcurrentRequests: 0}\n")
                .unwrap();
        assert!(c.validate().unwrap_err().contains("maxConcurrentRequests"));
        assert_eq!(
            ResolverConfig::default()
                .registry("r.example")
                .max_concurrent_requests,
            DEFAULT_MAX_CONCURRENT_REQUESTS
        );
    }

    #[test]
    fn registry_keys_match_however_the_host_is_written() {
        let c: ResolverConfig = serde_norway::from_str(
            "registries:\n  Registry.Example.com:443:\n    confirmMirrors: true\n    mirrors: [m.local:5000]\n  index.docker.io:\n    plainHttp: true\n",
        )
        .unwrap();
        c.validate().unwrap();
        for host in [
            "registry.example.com",
            "REGISTRY.EXAMPLE.COM",
            "registry.example.com:443",
        ] {
            let s = c.registry(host);
            assert!(s.confirm_mirrors, "{host}");
            assert_eq!(s.mirrors, vec!["m.local:5000"], "{host}");
        }
        assert!(!c.registry("registry.example.com:8443").confirm_mirrors);
        assert!(c.registry("docker.io").plain_http);
        assert!(c.registry("registry-1.docker.io").plain_http);

        let twice: ResolverConfig = serde_norway::from_str(
            "registries:\n  registry.example.com: {}\n  REGISTRY.example.com:443: {}\n",
        )
        .unwrap();
        let err = twice.validate().unwrap_err();
        assert!(err.contains("name the same registry"), "{err}");
    }
}
