//! Offline transparency-log proofs: Rekor signed entry timestamps (SETs),
//! Merkle inclusion proofs with signed checkpoints, and the binding of a log
//! entry to the signature it is supposed to record.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

use crate::proofs::keys::PublicKey;
use crate::proofs::trust_root::{TlogKey, TrustRoot};

/// An entry of a Rekor log as shipped next to a signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogEntry {
    /// The canonicalized entry body, base64 as the log signed it.
    pub body_b64: String,
    /// Time the log integrated the entry, Unix seconds.
    pub integrated_time: i64,
    /// Index of the entry in the log.
    pub log_index: i64,
    /// The log's ID (SHA-256 of its key's SPKI).
    pub log_id: Vec<u8>,
    /// The signed entry timestamp (inclusion promise), if shipped.
    pub set: Option<Vec<u8>>,
    /// A Merkle inclusion proof, if shipped.
    pub inclusion: Option<InclusionProof>,
}

/// A Merkle inclusion proof and the checkpoint that signs its root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// Index of the leaf in the tree the proof is for.
    pub log_index: u64,
    /// Size of that tree.
    pub tree_size: u64,
    /// Root hash of that tree.
    pub root_hash: Vec<u8>,
    /// Sibling hashes, leaf to root.
    pub hashes: Vec<Vec<u8>>,
    /// The signed checkpoint (note format); v0.1 bundles may ship none, and
    /// then the proof only counts next to a SET.
    pub checkpoint: Option<String>,
}

/// What a log entry must record to count for a signature.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The signature bytes.
    pub signature: &'a [u8],
    /// SHA-256 of the exact bytes signed (what `hashedrekord` entries record).
    pub signed_sha256: &'a [u8],
    /// The DSSE payload (what `dsse` and `intoto` entries hash); equal to
    /// the signed bytes for other signatures.
    pub payload: &'a [u8],
    /// The DER of the certificate or public key that verified the signature.
    pub verifier_der: &'a [u8],
}

/// Verifies one log entry offline. Returns the integration time when the log
/// vouched for it (a verified SET), `None` when only inclusion was proven.
pub fn verify_entry(
    entry: &TlogEntry,
    root: &TrustRoot,
    expected: Expected<'_>,
) -> Result<Option<i64>, String> {
    let key = root.tlog_key(&entry.log_id).ok_or_else(|| {
        format!(
            "transparency log {} is not in the trust root",
            hex::encode(&entry.log_id)
        )
    })?;
    if entry.log_index < 0 {
        return Err(format!(
            "transparency log entry has a negative log index ({})",
            entry.log_index
        ));
    }
    let body = STANDARD
        .decode(&entry.body_b64)
        .map_err(|e| format!("transparency log entry body is not base64: {e}"))?;
    let mut trusted_time = None;
    if let Some(set) = &entry.set {
        if !key.valid_for.contains(entry.integrated_time) {
            return Err(
                "transparency log key was not valid at the entry's integration time".into(),
            );
        }
        let signed = canonical_set_payload(entry);
        if !key.key.verifies(signed.as_bytes(), set) {
            return Err("signed entry timestamp does not verify with the log key".into());
        }
        trusted_time = Some(entry.integrated_time);
    }
    match &entry.inclusion {
        Some(proof) => {
            verify_inclusion(&body, proof, &NoteKey::of(key, &entry.log_id))?;
            if proof.checkpoint.is_none() && entry.set.is_none() {
                return Err(
                    "inclusion proof has no signed checkpoint and the entry no signed entry timestamp"
                        .into(),
                );
            }
        }
        None if entry.set.is_none() => {
            return Err(
                "transparency log entry has neither a signed entry timestamp nor an inclusion proof"
                    .into(),
            );
        }
        None => {}
    }
    check_body(&body, expected)?;
    Ok(trusted_time)
}

/// The JSON the log signs for a SET: keys sorted, no whitespace.
fn canonical_set_payload(entry: &TlogEntry) -> String {
    format!(
        "{{\"body\":{},\"integratedTime\":{},\"logID\":{},\"logIndex\":{}}}",
        serde_json::Value::String(entry.body_b64.clone()),
        entry.integrated_time,
        serde_json::Value::String(hex::encode(&entry.log_id)),
        entry.log_index
    )
}

fn leaf_hash(data: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().to_vec()
}

fn node_hash(l: &[u8], r: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().to_vec()
}

/// RFC 6962 / RFC 9162 inclusion proof verification.
fn root_from_inclusion(
    index: u64,
    size: u64,
    leaf: Vec<u8>,
    proof: &[Vec<u8>],
) -> Result<Vec<u8>, String> {
    if index >= size {
        return Err("inclusion proof index is outside the tree".into());
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = leaf;
    for p in proof {
        if sn == 0 {
            return Err("inclusion proof has too many hashes".into());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err("inclusion proof has too few hashes".into());
    }
    Ok(r)
}

/// The signed-note identity under which a log signs its checkpoints; a
/// signature line counts only when it carries this name and key ID.
struct NoteKey<'a> {
    /// The key name, which is also the checkpoint's origin line; `None` when
    /// the log's signatures are identified by key ID alone.
    name: Option<&'a str>,
    /// The 4-byte key ID (key hint) that starts each of its signatures.
    id: [u8; 4],
    /// The key itself.
    key: &'a PublicKey,
}

impl<'a> NoteKey<'a> {
    /// The identity `key` signs under for an entry naming its log `log_id`.
    fn of(key: &'a TlogKey, log_id: &[u8]) -> Self {
        match (&key.origin, &key.checkpoint_id) {
            // Named by its C2SP signed-note ID (Rekor v2): the origin is the
            // key name, and the key ID is derived from name and key.
            (Some(origin), Some(note_id)) if note_id.as_slice() == log_id => Self {
                name: Some(origin),
                id: first_four(note_id),
                key: &key.key,
            },
            // Rekor v1, and ECDSA logs: the key ID is the SHA-256 of the
            // key's SPKI, which identifies the key whatever the name (Rekor
            // v1 signs under its server's configured host name, which trust
            // roots do not record).
            _ => Self {
                name: None,
                id: first_four(&Sha256::digest(key.key.spki_der())),
                key: &key.key,
            },
        }
    }
}

/// A signed-note key ID: the first four bytes of a SHA-256 (always 32).
fn first_four(hash: &[u8]) -> [u8; 4] {
    hash.first_chunk::<4>().copied().unwrap_or_default()
}

fn verify_inclusion(body: &[u8], proof: &InclusionProof, log: &NoteKey<'_>) -> Result<(), String> {
    let root = root_from_inclusion(
        proof.log_index,
        proof.tree_size,
        leaf_hash(body),
        &proof.hashes,
    )?;
    if root != proof.root_hash {
        return Err("inclusion proof does not lead to the stated root hash".into());
    }
    let Some(checkpoint) = &proof.checkpoint else {
        return Ok(());
    };
    let (size, cp_root) = verify_checkpoint(checkpoint, log)?;
    if size != proof.tree_size || cp_root != proof.root_hash {
        return Err("checkpoint does not match the inclusion proof's tree".into());
    }
    Ok(())
}

/// Verifies a signed note checkpoint; returns its tree size and root hash.
fn verify_checkpoint(note: &str, log: &NoteKey<'_>) -> Result<(u64, Vec<u8>), String> {
    let (text, sigs) = note
        .split_once("\n\n")
        .ok_or_else(|| "checkpoint is not a signed note".to_string())?;
    let text = format!("{text}\n");
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() < 3 {
        return Err("checkpoint has fewer than three lines".into());
    }
    if let Some(origin) = log.name
        && lines[0] != origin
    {
        return Err(format!(
            "checkpoint is for log {:?}, not {origin:?}",
            lines[0]
        ));
    }
    let size: u64 = lines[1]
        .parse()
        .map_err(|_| "checkpoint tree size is not a number".to_string())?;
    let root = STANDARD
        .decode(lines[2])
        .map_err(|_| "checkpoint root hash is not base64".to_string())?;
    verify_note_signatures(&text, sigs, log)?;
    Ok((size, root))
}

/// The signed-note rule (c2sp.org/signed-note): each signature line is
/// `— <name> base64(<4-byte key ID><signature>)`. A line whose name or key ID
/// is not the log's is another key's (a witness, another log) and is
/// ignored, even if the log's key would verify it; a line that is the log's
/// must verify; and at least one must.
fn verify_note_signatures(text: &str, sigs: &str, log: &NoteKey<'_>) -> Result<(), String> {
    let mut verified = false;
    for line in sigs.lines() {
        let Some((name, sig_b64)) = line
            .strip_prefix("\u{2014} ")
            .and_then(|rest| rest.split_once(' '))
        else {
            continue;
        };
        let Ok(raw) = STANDARD.decode(sig_b64) else {
            continue;
        };
        let Some((id, signature)) = raw.split_first_chunk::<4>() else {
            continue;
        };
        if log.name.is_some_and(|n| n != name) || *id != log.id {
            continue;
        }
        if !log.key.verifies(text.as_bytes(), signature) {
            return Err("checkpoint signature of the transparency log key does not verify".into());
        }
        verified = true;
    }
    if verified {
        Ok(())
    } else {
        Err(
            "checkpoint is not signed by the transparency log key (no signature line carries its key name and key ID)"
                .into(),
        )
    }
}

fn str_field(v: &serde_json::Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().map(str::to_owned)
}

fn pem_or_der_matches(encoded_b64: &str, der: &[u8]) -> bool {
    let Ok(decoded) = STANDARD.decode(encoded_b64) else {
        return false;
    };
    if decoded == der {
        return true;
    }
    let text = String::from_utf8_lossy(&decoded);
    pem::parse_many(text.as_bytes())
        .map(|blocks| blocks.iter().any(|b| b.contents() == der))
        .unwrap_or(false)
}

fn sig_matches(encoded: &str, signature: &[u8]) -> bool {
    match STANDARD.decode(encoded) {
        Ok(d) if d == signature => true,
        // Some entry kinds store the signature base64-encoded twice.
        Ok(d) => STANDARD.decode(&d).is_ok_and(|dd| dd == signature),
        Err(_) => false,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A v0.0.2 verifier: a raw public key or certificate, base64 DER.
fn verifier_v2_matches(v: &serde_json::Value, der: &[u8]) -> bool {
    ["/publicKey/rawBytes", "/x509Certificate/rawBytes"]
        .iter()
        .filter_map(|p| v.pointer(p).and_then(|x| x.as_str()))
        .any(|b| STANDARD.decode(b).is_ok_and(|d| d == der))
}

/// A v0.0.2 hash: `{algorithm: SHA2_256, digest: base64}`.
fn hash_v2_is(v: Option<&serde_json::Value>, sha256: &[u8]) -> bool {
    let Some(v) = v else { return false };
    v.get("algorithm").and_then(|a| a.as_str()) == Some("SHA2_256")
        && v.get("digest")
            .and_then(|d| d.as_str())
            .and_then(|d| STANDARD.decode(d).ok())
            .is_some_and(|d| d == sha256)
}

/// Checks that the entry body records this signature, signer and payload.
fn check_body(body: &[u8], exp: Expected<'_>) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("transparency log entry body is not JSON: {e}"))?;
    let kind = v.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
    let version = v
        .get("apiVersion")
        .and_then(|k| k.as_str())
        .unwrap_or_default();
    let spec = v.get("spec").cloned().unwrap_or_default();
    let ok = match (kind, version) {
        ("hashedrekord", "0.0.2") => {
            let s = spec.get("hashedRekordV002").cloned().unwrap_or_default();
            str_field(&s, &["signature", "content"]).is_some_and(|x| sig_matches(&x, exp.signature))
                && s.pointer("/signature/verifier")
                    .is_some_and(|x| verifier_v2_matches(x, exp.verifier_der))
                && hash_v2_is(s.get("data"), exp.signed_sha256)
        }
        ("hashedrekord", _) => {
            str_field(&spec, &["signature", "content"])
                .is_some_and(|s| sig_matches(&s, exp.signature))
                && str_field(&spec, &["signature", "publicKey", "content"])
                    .is_some_and(|k| pem_or_der_matches(&k, exp.verifier_der))
                && str_field(&spec, &["data", "hash", "value"])
                    .is_some_and(|h| h == hex::encode(exp.signed_sha256))
        }
        ("dsse", "0.0.2") => {
            let s = spec.get("dsseV002").cloned().unwrap_or_default();
            let sigs = s
                .get("signatures")
                .and_then(|x| x.as_array())
                .cloned()
                .unwrap_or_default();
            sigs.iter().any(|x| {
                str_field(x, &["content"]).is_some_and(|c| sig_matches(&c, exp.signature))
                    && x.get("verifier")
                        .is_some_and(|v| verifier_v2_matches(v, exp.verifier_der))
            }) && hash_v2_is(s.get("payloadHash"), &Sha256::digest(exp.payload))
        }
        ("dsse", _) => {
            let sigs = spec
                .get("signatures")
                .and_then(|s| s.as_array())
                .cloned()
                .unwrap_or_default();
            sigs.iter().any(|s| {
                str_field(s, &["signature"]).is_some_and(|x| sig_matches(&x, exp.signature))
                    && str_field(s, &["verifier"])
                        .is_some_and(|k| pem_or_der_matches(&k, exp.verifier_der))
            }) && str_field(&spec, &["payloadHash", "value"])
                .is_some_and(|h| h == sha256_hex(exp.payload))
        }
        ("intoto", _) => {
            let content = spec.get("content").cloned().unwrap_or_default();
            let sigs = content
                .pointer("/envelope/signatures")
                .and_then(|s| s.as_array())
                .cloned()
                .unwrap_or_default();
            sigs.iter().any(|s| {
                str_field(s, &["sig"]).is_some_and(|x| sig_matches(&x, exp.signature))
                    && str_field(s, &["publicKey"])
                        .is_some_and(|k| pem_or_der_matches(&k, exp.verifier_der))
            }) && str_field(&content, &["payloadHash", "value"])
                .is_some_and(|h| h == sha256_hex(exp.payload))
        }
        (other, _) => {
            return Err(format!(
                "transparency log entry kind {other:?} is not supported"
            ));
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "transparency log entry ({kind}) records a different signature, signer or payload"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(leaves: &[&[u8]]) -> Vec<u8> {
        // Reference RFC 6962 tree hash for small trees.
        fn mth(l: &[Vec<u8>]) -> Vec<u8> {
            if l.len() == 1 {
                return l[0].clone();
            }
            let k = l.len().next_power_of_two() / 2;
            node_hash(&mth(&l[..k]), &mth(&l[k..]))
        }
        mth(&leaves.iter().map(|d| leaf_hash(d)).collect::<Vec<_>>())
    }

    #[test]
    fn inclusion_proof_of_three_leaf_tree() {
        let leaves: [&[u8]; 3] = [b"a", b"b", b"c"];
        let root = tree(&leaves);
        // Leaf 2 ("c") in a tree of 3: sibling is the hash of (a, b).
        let proof = vec![node_hash(&leaf_hash(b"a"), &leaf_hash(b"b"))];
        assert_eq!(
            root_from_inclusion(2, 3, leaf_hash(b"c"), &proof).unwrap(),
            root
        );
        // Leaf 0: siblings are leaf b, then leaf c.
        let proof = vec![leaf_hash(b"b"), leaf_hash(b"c")];
        assert_eq!(
            root_from_inclusion(0, 3, leaf_hash(b"a"), &proof).unwrap(),
            root
        );
        assert_ne!(
            root_from_inclusion(0, 3, leaf_hash(b"x"), &proof).unwrap(),
            root
        );
        assert!(root_from_inclusion(3, 3, leaf_hash(b"a"), &proof).is_err());
    }
}
