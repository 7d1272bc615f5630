//! cosign "simple signing" payloads: what a container image signature says it signs.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The claims of a simple-signing payload tagpin checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleSigning {
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: String,
    /// `critical.identity.docker-reference`.
    pub docker_reference: String,
    /// `optional`, string values only (cosign's `-a key=value` annotations).
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct PayloadJson {
    critical: CriticalJson,
    #[serde(default)]
    optional: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct CriticalJson {
    identity: IdentityJson,
    image: ImageJson,
    #[serde(rename = "type")]
    type_: String,
}

#[derive(Deserialize)]
struct IdentityJson {
    #[serde(rename = "docker-reference", default)]
    docker_reference: String,
}

#[derive(Deserialize)]
struct ImageJson {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

impl SimpleSigning {
    /// Parses a payload and checks it is a container image signature.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let json: PayloadJson = serde_json::from_slice(bytes)
            .map_err(|e| format!("signature payload is not a simple-signing document: {e}"))?;
        if !json
            .critical
            .type_
            .eq_ignore_ascii_case("cosign container image signature")
        {
            return Err(format!(
                "signature payload type {:?} is not a cosign container image signature",
                json.critical.type_
            ));
        }
        let annotations = json
            .optional
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                _ => None,
            })
            .collect();
        Ok(Self {
            manifest_digest: json.critical.image.docker_manifest_digest,
            docker_reference: json.critical.identity.docker_reference,
            annotations,
        })
    }
}
