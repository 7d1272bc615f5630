//! Registry credentials: docker `config.json` / `.dockerconfigjson` parsing and the
//! ordered keychain that picks a credential for a registry as the kubelet does.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;
use sha2::Digest as _;

/// One credential for one registry. Its `Debug` never shows secret values.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// Username and password, sent as Basic auth or exchanged for a bearer token.
    Basic {
        /// The user name.
        username: String,
        /// The password or access token.
        password: String,
    },
    /// An OAuth2 refresh token exchanged at the registry's token endpoint.
    IdentityToken(String),
}

impl Credential {
    /// A stable, non-reversible identifier used to keep clients and cache entries apart.
    pub fn fingerprint(&self) -> String {
        let mut h = sha2::Sha256::new();
        match self {
            Self::Basic { username, password } => {
                h.update(b"basic\0");
                h.update(username.as_bytes());
                h.update(b"\0");
                h.update(password.as_bytes());
            }
            Self::IdentityToken(t) => {
                h.update(b"identity\0");
                h.update(t.as_bytes());
            }
        }
        hex::encode(&h.finalize()[..16])
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

/// Why a docker config could not be used. Never carries secret values.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CredentialError {
    /// The file could not be read.
    #[error("cannot read docker config {path}: {cause}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        cause: String,
    },
    /// The JSON is not a docker config.
    #[error("{source_name} is not a valid docker config: {cause}")]
    Parse {
        /// Where the bytes came from.
        source_name: String,
        /// What is wrong (line and column, never the content).
        cause: String,
    },
    /// An `auth` entry is not base64 of `user:password`.
    #[error("{source_name}: the auth entry for {registry} is not base64 of user:password")]
    BadAuth {
        /// Where the bytes came from.
        source_name: String,
        /// The registry key of the bad entry.
        registry: String,
    },
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    auths: BTreeMap<String, RawAuth>,
}

#[derive(Deserialize, Default)]
struct RawAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Credentials by registry, from one docker config.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DockerConfig {
    auths: BTreeMap<String, Credential>,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DockerConfig")
            .field("registries", &self.auths.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl DockerConfig {
    /// Parses a docker `config.json` or a `.dockerconfigjson` secret value (`{"auths": {...}}`).
    pub fn parse(bytes: &[u8]) -> Result<Self, CredentialError> {
        Self::parse_named(bytes, "docker config")
    }

    /// Like [`DockerConfig::parse`], naming the source in errors (a file or a Secret).
    pub fn parse_named(bytes: &[u8], source_name: &str) -> Result<Self, CredentialError> {
        let raw: RawConfig =
            serde_json::from_slice(bytes).map_err(|e| parse_error(source_name, &e))?;
        Self::from_raw(raw.auths, source_name)
    }

    /// Parses a legacy `.dockercfg` value (the `auths` map without the wrapper).
    pub fn parse_legacy_dockercfg(
        bytes: &[u8],
        source_name: &str,
    ) -> Result<Self, CredentialError> {
        let auths: BTreeMap<String, RawAuth> =
            serde_json::from_slice(bytes).map_err(|e| parse_error(source_name, &e))?;
        Self::from_raw(auths, source_name)
    }

    /// Reads and parses a docker config file.
    pub fn from_file(path: &Path) -> Result<Self, CredentialError> {
        let bytes = std::fs::read(path).map_err(|e| CredentialError::Read {
            path: path.display().to_string(),
            cause: e.to_string(),
        })?;
        Self::parse_named(&bytes, &path.display().to_string())
    }

    fn from_raw(
        raw: BTreeMap<String, RawAuth>,
        source_name: &str,
    ) -> Result<Self, CredentialError> {
        let mut auths = BTreeMap::new();
        for (key, entry) in raw {
            let registry = normalize_registry_key(&key);
            let cred = if let Some(token) = entry.identitytoken.filter(|t| !t.is_empty()) {
                Some(Credential::IdentityToken(token))
            } else if let Some(auth) = entry.auth.filter(|a| !a.is_empty()) {
                let bad = || CredentialError::BadAuth {
                    source_name: source_name.to_owned(),
                    registry: registry.clone(),
                };
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|_| bad())?;
                let text = String::from_utf8(decoded).map_err(|_| bad())?;
                let (u, p) = text.split_once(':').ok_or_else(bad)?;
                Some(Credential::Basic {
                    username: u.to_owned(),
                    password: p.to_owned(),
                })
            } else {
                match (entry.username, entry.password) {
                    (Some(username), Some(password)) => {
                        Some(Credential::Basic { username, password })
                    }
                    _ => None,
                }
            };
            if let Some(c) = cred {
                auths.insert(registry, c);
            }
        }
        Ok(Self { auths })
    }

    /// The credential for `registry` (`host[:port]`), matching `*.domain` wildcards too.
    pub fn credential_for(&self, registry: &str) -> Option<&Credential> {
        let registry = normalize_registry_key(registry);
        if let Some(c) = self.auths.get(&registry) {
            return Some(c);
        }
        self.auths.iter().find_map(|(key, c)| {
            let suffix = key.strip_prefix("*.")?;
            let (host, port) = split_port(&registry);
            let (khost, kport) = split_port(suffix);
            let host_matches = host.ends_with(&format!(".{khost}"));
            (host_matches && port == kport).then_some(c)
        })
    }

    /// The registries this config has credentials for.
    pub fn registries(&self) -> impl Iterator<Item = &str> {
        self.auths.keys().map(String::as_str)
    }

    /// True when it holds no usable credential.
    pub fn is_empty(&self) -> bool {
        self.auths.is_empty()
    }
}

fn parse_error(source_name: &str, e: &serde_json::Error) -> CredentialError {
    // serde_json's message can quote input; keep only the position.
    CredentialError::Parse {
        source_name: source_name.to_owned(),
        cause: format!(
            "{:?} error at line {} column {}",
            e.classify(),
            e.line(),
            e.column()
        ),
    }
}

fn split_port(host: &str) -> (&str, Option<&str>) {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => (&host[..=end], host[end + 1..].strip_prefix(':')),
            None => (host, None),
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host, None),
    }
}

/// Reduces a docker config key (`https://index.docker.io/v1/`, `ghcr.io`, ...) to the
/// registry host as it appears in normalized image references (see
/// [`normalize_host`](crate::reference::normalize_host)).
pub fn normalize_registry_key(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let host = crate::reference::normalize_host(k.split('/').next().unwrap_or(k));
    // The docker CLI's legacy name for Docker Hub, seen only in docker configs.
    if host == "registry.hub.docker.com" {
        return "docker.io".into();
    }
    host
}

/// Ordered credential sources; the first that has a credential for a registry wins,
/// and with none the registry is asked anonymously.
#[derive(Debug, Clone, Default)]
pub struct Keychain {
    sources: Vec<Arc<DockerConfig>>,
}

impl Keychain {
    /// No credentials at all.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A keychain trying `sources` in order.
    pub fn new(sources: Vec<Arc<DockerConfig>>) -> Self {
        Self { sources }
    }

    /// Appends a source tried after the existing ones.
    pub fn push(&mut self, source: Arc<DockerConfig>) {
        self.sources.push(source);
    }

    /// The credential for `registry`, if any source has one.
    pub fn credential_for(&self, registry: &str) -> Option<&Credential> {
        self.sources.iter().find_map(|s| s.credential_for(registry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn parses_auth_and_username_forms() {
        let json = format!(
            r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"r.example:5000":{{"username":"u","password":"p"}}}}}}"#,
            b64("alice:s3cr:et")
        );
        let c = DockerConfig::parse(json.as_bytes()).unwrap();
        assert_eq!(
            c.credential_for("docker.io"),
            Some(&Credential::Basic {
                username: "alice".into(),
                password: "s3cr:et".into()
            })
        );
        assert!(c.credential_for("r.example:5000").is_some());
        assert!(c.credential_for("r.example").is_none());
    }

    #[test]
    fn keys_match_however_the_host_is_written() {
        let json = format!(
            r#"{{"auths":{{"Registry.Example.com:443":{{"auth":"{}"}},"registry-1.docker.io":{{"auth":"{}"}}}}}}"#,
            b64("u:p"),
            b64("hub:p")
        );
        let c = DockerConfig::parse(json.as_bytes()).unwrap();
        for host in [
            "registry.example.com",
            "REGISTRY.EXAMPLE.COM",
            "registry.example.com:443",
        ] {
            assert!(c.credential_for(host).is_some(), "{host}");
        }
        assert!(c.credential_for("registry.example.com:8443").is_none());
        assert!(c.credential_for("docker.io").is_some());
        assert!(c.credential_for("index.docker.io").is_some());
    }

    #[test]
    fn wildcard_keys_match_subdomains_only() {
        let json = format!(
            r#"{{"auths":{{"*.corp.example":{{"auth":"{}"}}}}}}"#,
            b64("u:p")
        );
        let c = DockerConfig::parse(json.as_bytes()).unwrap();
        assert!(c.credential_for("reg.corp.example").is_some());
        assert!(c.credential_for("corp.example").is_none());
        assert!(c.credential_for("evilcorp.example").is_none());
    }

    #[test]
    fn errors_never_echo_secrets() {
        let err =
            DockerConfig::parse(br#"{"auths":{"r":{"auth":"hunter2-not-base64!"}}}"#).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = DockerConfig::parse(br#"{"auths": "hunter2"}"#).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let dbg = format!(
            "{:?}",
            Credential::Basic {
                username: "u".into(),
                password: "hunter2".into()
            }
        );
        assert!(!dbg.contains("hunter2"));
    }

    #[test]
    fn keychain_takes_first_match() {
        let a = DockerConfig::parse(
            format!(r#"{{"auths":{{"r":{{"auth":"{}"}}}}}}"#, b64("a:1")).as_bytes(),
        )
        .unwrap();
        let b = DockerConfig::parse(
            format!(
                r#"{{"auths":{{"r":{{"auth":"{}"}},"s":{{"auth":"{}"}}}}}}"#,
                b64("b:2"),
                b64("b:3")
            )
            .as_bytes(),
        )
        .unwrap();
        let k = Keychain::new(vec![Arc::new(a), Arc::new(b)]);
        assert_eq!(
            k.credential_for("r").map(Credential::fingerprint),
            Some(
                Credential::Basic {
                    username: "a".into(),
                    password: "1".into()
                }
                .fingerprint()
            )
        );
        assert!(k.credential_for("s").is_some());
        assert!(Keychain::anonymous().credential_for("r").is_none());
    }
}
