//! Offline trust roots: Sigstore `trusted_root.json` files and private CAs.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use x509_cert::der::Tag;

use crate::proofs::der_walk::encode;
use crate::proofs::keys::PublicKey;

/// A time window in Unix seconds; `None` ends are open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// First second of validity.
    pub start: Option<i64>,
    /// Last second of validity.
    pub end: Option<i64>,
}

impl Window {
    /// True when `at` lies inside the window.
    pub fn contains(&self, at: i64) -> bool {
        self.start.is_none_or(|s| at >= s) && self.end.is_none_or(|e| at <= e)
    }
}

/// A certificate authority: its chain (leaf-most first, root last) and validity.
#[derive(Debug, Clone)]
pub struct CertificateAuthority {
    /// DER certificates, intermediates first and the root last.
    pub chain: Vec<Vec<u8>>,
    /// When the CA may have issued signing certificates.
    pub valid_for: Window,
}

/// A transparency-log (Rekor) key.
#[derive(Debug, Clone)]
pub struct TlogKey {
    /// The log ID: SHA-256 of the key's SPKI DER.
    pub log_id: Vec<u8>,
    /// The log's ID in signed-note form (what Rekor v2 entries carry), when
    /// the trust root names the log's URL.
    pub checkpoint_id: Option<Vec<u8>>,
    /// The origin line the log's checkpoints carry, with `checkpoint_id`.
    pub origin: Option<String>,
    /// The log's signing key.
    pub key: PublicKey,
    /// When entries signed by this key are accepted.
    pub valid_for: Window,
}

/// Certificate authorities and transparency-log keys trusted together.
#[derive(Debug, Clone, Default)]
pub struct TrustRoot {
    /// Authorities certificates must chain to.
    pub authorities: Vec<CertificateAuthority>,
    /// Keys whose signed entry timestamps and checkpoints are trusted.
    pub tlog_keys: Vec<TlogKey>,
    /// RFC 3161 timestamp authorities: each chain starts with the signing
    /// certificate and ends with the root.
    pub timestamp_authorities: Vec<CertificateAuthority>,
    /// Certificate transparency logs; when there are any, signing
    /// certificates must carry a signed certificate timestamp from one.
    pub ct_logs: Vec<TlogKey>,
}

/// Why a trust root could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TrustRootError(pub String);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrustedRootJson {
    #[serde(default)]
    tlogs: Vec<TlogJson>,
    #[serde(default)]
    certificate_authorities: Vec<CaJson>,
    #[serde(default)]
    timestamp_authorities: Vec<CaJson>,
    #[serde(default)]
    ctlogs: Vec<TlogJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlogJson {
    #[serde(default)]
    base_url: Option<String>,
    public_key: PublicKeyJson,
    log_id: LogIdJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicKeyJson {
    raw_bytes: String,
    #[serde(default)]
    key_details: String,
    #[serde(default)]
    valid_for: Option<ValidForJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LogIdJson {
    key_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CaJson {
    #[serde(default)]
    cert_chain: CertChainJson,
    #[serde(default)]
    valid_for: Option<ValidForJson>,
}

#[derive(Deserialize, Default)]
struct CertChainJson {
    #[serde(default)]
    certificates: Vec<RawBytesJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytesJson {
    raw_bytes: String,
}

#[derive(Deserialize)]
struct ValidForJson {
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
}

/// Parses an RFC 3339 timestamp into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, TrustRootError> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp())
        .map_err(|e| TrustRootError(format!("invalid timestamp {s:?}: {e}")))
}

/// A `validFor` time range. Its start is required (only the end may stay
/// open), so a range without one is malformed rather than valid since ever.
fn window(v: Option<&ValidForJson>, what: &str) -> Result<Window, TrustRootError> {
    let Some(v) = v else {
        return Ok(Window::default());
    };
    let start = v.start.as_deref().ok_or_else(|| {
        TrustRootError(format!(
            "{what}: validFor has no start; a trusted root must say when it became valid"
        ))
    })?;
    Ok(Window {
        start: Some(parse_rfc3339(start)?),
        end: v.end.as_deref().map(parse_rfc3339).transpose()?,
    })
}

/// A log key's `validFor`: required, since a log key is trusted only for the
/// entries it signed while it was current.
fn log_window(k: &PublicKeyJson, what: &str) -> Result<Window, TrustRootError> {
    if k.valid_for.is_none() {
        return Err(TrustRootError(format!(
            "{what}: publicKey has no validFor; a trusted root must say when each log key became valid"
        )));
    }
    window(k.valid_for.as_ref(), what)
}

fn b64(s: &str, what: &str) -> Result<Vec<u8>, TrustRootError> {
    STANDARD
        .decode(s)
        .map_err(|e| TrustRootError(format!("{what} is not valid base64: {e}")))
}

/// A log key as SubjectPublicKeyInfo DER: `PKCS1_RSA_*` keys arrive as a
/// bare RSAPublicKey and are wrapped.
fn log_key(k: &PublicKeyJson, what: &str) -> Result<Vec<u8>, TrustRootError> {
    let der = b64(&k.raw_bytes, what)?;
    if !k.key_details.starts_with("PKCS1_RSA") {
        return Ok(der);
    }
    // AlgorithmIdentifier { rsaEncryption, NULL }
    const RSA_ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let wrap = || -> Result<Vec<u8>, String> {
        let mut bits = vec![0u8];
        bits.extend(&der);
        let mut content = RSA_ALGORITHM.to_vec();
        content.extend(encode(Tag::BitString, &bits, what)?);
        encode(Tag::Sequence, &content, what)
    };
    wrap().map_err(TrustRootError)
}

fn authority(ca: &CaJson, what: &str) -> Result<CertificateAuthority, TrustRootError> {
    let chain = ca
        .cert_chain
        .certificates
        .iter()
        .map(|c| b64(&c.raw_bytes, "certificate"))
        .collect::<Result<Vec<_>, _>>()?;
    if chain.is_empty() {
        return Err(TrustRootError(format!("{what} has an empty certChain")));
    }
    Ok(CertificateAuthority {
        chain,
        valid_for: window(ca.valid_for.as_ref(), what)?,
    })
}

/// A log's checkpoint origin: its URL without scheme or trailing slash.
fn origin(base_url: &str) -> &str {
    let rest = base_url.split_once("://").map_or(base_url, |(_, r)| r);
    rest.trim_end_matches('/')
}

/// The C2SP signed-note key ID of an Ed25519 log key named `origin`:
/// SHA-256 over the name, a newline, the signature type 0x01 and the raw key.
/// Other keys have none of their own: an ECDSA key's signed-note ID is the
/// SHA-256 of its SPKI (c2sp.org/signed-note, type 0x02), its log ID already.
fn checkpoint_key_id(origin: &str, key: &PublicKey) -> Option<Vec<u8>> {
    const ED25519_SPKI_PREFIX: &[u8] = &[
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    use sha2::Digest as _;
    let raw = key.spki_der().strip_prefix(ED25519_SPKI_PREFIX)?;
    let mut h = sha2::Sha256::new();
    h.update(origin.as_bytes());
    h.update(b"\n");
    h.update([0x01]);
    h.update(raw);
    Some(h.finalize().to_vec())
}

/// How messages name a log of the trusted root: its URL, else its ID.
fn log_name(kind: &str, log: &TlogJson) -> String {
    match &log.base_url {
        Some(url) => format!("{kind} {url}"),
        None => format!("{kind} {}", log.log_id.key_id),
    }
}

/// One transparency (Rekor) log of a trusted root.
fn tlog_key(tlog: &TlogJson) -> Result<TlogKey, TrustRootError> {
    let what = log_name("transparency log", tlog);
    let der = log_key(&tlog.public_key, &what)?;
    let key = PublicKey::from_spki_der(&der).map_err(|e| TrustRootError(format!("{what}: {e}")))?;
    let origin = tlog.base_url.as_deref().map(origin);
    Ok(TlogKey {
        log_id: b64(&tlog.log_id.key_id, "transparency log ID")?,
        checkpoint_id: origin.and_then(|o| checkpoint_key_id(o, &key)),
        origin: origin.map(str::to_owned),
        key,
        valid_for: log_window(&tlog.public_key, &what)?,
    })
}

/// One certificate transparency log of a trusted root.
fn ct_log(log: &TlogJson) -> Result<TlogKey, TrustRootError> {
    let what = log_name("certificate transparency log", log);
    let der = log_key(&log.public_key, &what)?;
    let key = PublicKey::from_spki_der(&der).map_err(|e| TrustRootError(format!("{what}: {e}")))?;
    Ok(TlogKey {
        log_id: b64(&log.log_id.key_id, "certificate transparency log ID")?,
        checkpoint_id: None,
        origin: None,
        key,
        valid_for: log_window(&log.public_key, &what)?,
    })
}

impl TrustRoot {
    /// Parses a Sigstore `trusted_root.json` document (no network access).
    pub fn from_trusted_root_json(bytes: &[u8]) -> Result<Self, TrustRootError> {
        let doc: TrustedRootJson = serde_json::from_slice(bytes)
            .map_err(|e| TrustRootError(format!("not a Sigstore trusted_root.json: {e}")))?;
        let mut root = TrustRoot::default();
        for ca in &doc.certificate_authorities {
            root.authorities
                .push(authority(ca, "a certificate authority")?);
        }
        for tsa in &doc.timestamp_authorities {
            // An authority without certificates can vouch for nothing; it is
            // kept so that it can never lend its validity to another's stamp.
            root.timestamp_authorities
                .push(if tsa.cert_chain.certificates.is_empty() {
                    CertificateAuthority {
                        chain: Vec::new(),
                        valid_for: window(tsa.valid_for.as_ref(), "a timestamp authority")?,
                    }
                } else {
                    authority(tsa, "a timestamp authority")?
                });
        }
        root.tlog_keys = doc.tlogs.iter().map(tlog_key).collect::<Result<_, _>>()?;
        root.ct_logs = doc.ctlogs.iter().map(ct_log).collect::<Result<_, _>>()?;
        Ok(root)
    }

    /// Adds the certificates of a PEM bundle as one private CA, valid forever.
    pub fn add_ca_pem(&mut self, pem_text: &str) -> Result<(), TrustRootError> {
        let blocks = pem::parse_many(pem_text)
            .map_err(|e| TrustRootError(format!("CA bundle is not valid PEM: {e}")))?;
        let chain: Vec<Vec<u8>> = blocks
            .into_iter()
            .filter(|b| b.tag() == "CERTIFICATE")
            .map(|b| b.into_contents())
            .collect();
        if chain.is_empty() {
            return Err(TrustRootError(
                "CA bundle contains no CERTIFICATE block".into(),
            ));
        }
        for der in &chain {
            crate::proofs::x509::parse(der)
                .map_err(|e| TrustRootError(format!("CA bundle: {e}")))?;
        }
        // Each certificate is a trust anchor on its own: a private CA file
        // usually lists roots, and anchoring an intermediate is the operator's call.
        for der in chain {
            self.authorities.push(CertificateAuthority {
                chain: vec![der],
                valid_for: Window::default(),
            });
        }
        Ok(())
    }

    /// Adds a PEM Rekor public key; its log ID is derived from the key.
    pub fn add_rekor_key_pem(&mut self, pem_text: &str) -> Result<(), TrustRootError> {
        let key =
            PublicKey::from_pem(pem_text).map_err(|e| TrustRootError(format!("Rekor key: {e}")))?;
        use sha2::Digest as _;
        let log_id = sha2::Sha256::digest(key.spki_der()).to_vec();
        self.tlog_keys.push(TlogKey {
            log_id,
            checkpoint_id: None,
            origin: None,
            key,
            valid_for: Window::default(),
        });
        Ok(())
    }

    /// The Rekor key with this log ID, if trusted.
    pub fn tlog_key(&self, log_id: &[u8]) -> Option<&TlogKey> {
        self.tlog_keys
            .iter()
            .find(|k| k.log_id == log_id || k.checkpoint_id.as_deref() == Some(log_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC_GOOD: &[u8] =
        include_bytes!("../../tests/fixtures/conformance/trusted_root.public_good.json");
    const STAGING: &[u8] =
        include_bytes!("../../tests/fixtures/conformance/trusted_root.staging.json");

    /// The public-good root with one JSON object edited.
    fn edited(
        pointer: &str,
        edit: impl Fn(&mut serde_json::Map<String, serde_json::Value>),
    ) -> Result<TrustRoot, TrustRootError> {
        let mut doc: serde_json::Value = serde_json::from_slice(PUBLIC_GOOD).unwrap_or_default();
        if let Some(object) = doc.pointer_mut(pointer).and_then(|v| v.as_object_mut()) {
            edit(object);
        }
        TrustRoot::from_trusted_root_json(&serde_json::to_vec(&doc).unwrap_or_default())
    }

    #[test]
    fn a_validity_without_start_is_malformed_for_every_kind() {
        assert!(TrustRoot::from_trusted_root_json(PUBLIC_GOOD).is_ok());
        for pointer in [
            "/tlogs/0/publicKey/validFor",
            "/ctlogs/1/publicKey/validFor",
            "/certificateAuthorities/0/validFor",
            "/timestampAuthorities/0/validFor",
        ] {
            let err = edited(pointer, |o| {
                o.remove("start");
            })
            .map(|_| ())
            .unwrap_err();
            assert!(err.0.contains("validFor has no start"), "{pointer}: {err}");
        }
    }

    #[test]
    fn log_keys_must_say_when_they_became_valid() {
        for pointer in ["/tlogs/1/publicKey", "/ctlogs/0/publicKey"] {
            let err = edited(pointer, |o| {
                o.remove("validFor");
            })
            .map(|_| ())
            .unwrap_err();
            assert!(
                err.0.contains("publicKey has no validFor"),
                "{pointer}: {err}"
            );
        }
        // Authorities may leave it out: their certificates' own validity
        // still bounds them, as sigstore-go reads them too.
        for pointer in ["/certificateAuthorities/1", "/timestampAuthorities/0"] {
            let root = edited(pointer, |o| {
                o.remove("validFor");
            });
            assert!(root.is_ok(), "{pointer}: {root:?}");
        }
    }

    #[test]
    fn an_ed25519_log_is_found_by_its_signed_note_key_id() {
        let root = TrustRoot::from_trusted_root_json(STAGING).unwrap_or_default();
        let [ecdsa, ed25519] = root.tlog_keys.as_slice() else {
            panic!("the staging root lists two logs");
        };
        // Rekor v2 entries name the log by its C2SP key ID.
        let note_id = STANDARD
            .decode("8w1amZ2S5mJIQkQmPxdMuOrL/oJkvFg9MnQXmeOCXck=")
            .unwrap_or_default();
        assert_eq!(ed25519.checkpoint_id.as_ref(), Some(&note_id));
        assert!(
            root.tlog_key(&note_id)
                .is_some_and(|k| k.key == ed25519.key)
        );
        assert_eq!(
            ed25519.origin.as_deref(),
            Some("log2025-alpha1.rekor.sigstage.dev")
        );
        // An ECDSA log's signed-note ID is its SPKI hash: its log ID.
        assert_eq!(ecdsa.checkpoint_id, None);
    }
}
