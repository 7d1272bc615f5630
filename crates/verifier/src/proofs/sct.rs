//! Signed certificate timestamps (RFC 6962) embedded in signing certificates:
//! a certificate transparency log's promise that it published the
//! certificate, so a mis-issued one cannot stay secret.

use x509_cert::der::asn1::ObjectIdentifier;
use x509_cert::der::{Encode, Tag, Tagged};

use crate::proofs::der_walk::{context, encode, expect, items, oid, one};
use crate::proofs::trust_root::TrustRoot;

/// The embedded SCT list extension.
const SCT_LIST: &str = "1.3.6.1.4.1.11129.2.4.2";

/// One SCT, as the log signed it.
#[derive(Debug)]
struct Sct<'a> {
    log_id: &'a [u8],
    timestamp_ms: u64,
    extensions: &'a [u8],
    hash_alg: u8,
    signature: &'a [u8],
}

/// A leaf split for SCT checks: its issuer's name, its TBS without the SCT
/// extension (the precertificate the log signed) and the SCT list.
struct Precert {
    issuer_name: Vec<u8>,
    tbs: Vec<u8>,
    scts: Vec<u8>,
}

fn precert(leaf: &[u8]) -> Result<Precert, String> {
    let cert = one(leaf, "certificate")?;
    expect(&cert, Tag::Sequence, "certificate")?;
    let parts = items(cert.value(), "certificate")?;
    let tbs = parts.first().ok_or("certificate is empty")?;
    let fields = items(tbs.value(), "certificate")?;
    // [0] version, serial, signature, issuer, validity, subject, spki, ...
    let issuer_at = usize::from(fields.first().map(|f| f.tag()) == Some(context(0, true))) + 2;
    let issuer_name = fields
        .get(issuer_at)
        .ok_or("certificate has no issuer")?
        .to_der()
        .map_err(|e| format!("certificate issuer: {e}"))?;
    let mut scts = None;
    let mut rebuilt = Vec::new();
    for field in &fields {
        if field.tag() != context(3, true) {
            rebuilt.extend(field.to_der().map_err(|e| format!("certificate: {e}"))?);
            continue;
        }
        let list = one(field.value(), "certificate extensions")?;
        let mut kept = Vec::new();
        for ext in items(list.value(), "certificate extensions")? {
            let ext_parts = items(ext.value(), "certificate extension")?;
            let id: ObjectIdentifier = match ext_parts.first() {
                Some(first) => oid(first, "certificate extension")?,
                None => return Err("certificate extension is empty".into()),
            };
            if id.to_string() == SCT_LIST {
                let value = ext_parts.last().ok_or("SCT extension is empty")?;
                let inner = one(value.value(), "SCT extension")?;
                expect(&inner, Tag::OctetString, "SCT extension")?;
                scts = Some(inner.value().to_vec());
            } else {
                kept.extend(
                    ext.to_der()
                        .map_err(|e| format!("certificate extension: {e}"))?,
                );
            }
        }
        let list = encode(Tag::Sequence, &kept, "certificate extensions")?;
        rebuilt.extend(encode(context(3, true), &list, "certificate extensions")?);
    }
    Ok(Precert {
        issuer_name,
        tbs: encode(Tag::Sequence, &rebuilt, "certificate")?,
        scts: scts.ok_or("certificate carries no signed certificate timestamp")?,
    })
}

/// Reads a big-endian length-prefixed field.
fn field<'a>(data: &mut &'a [u8], len_bytes: usize) -> Result<&'a [u8], String> {
    let truncated = || "signed certificate timestamp list is truncated".to_string();
    let (len, rest) = data.split_at_checked(len_bytes).ok_or_else(truncated)?;
    let len = len.iter().fold(0usize, |n, b| (n << 8) | usize::from(*b));
    let (value, rest) = rest.split_at_checked(len).ok_or_else(truncated)?;
    *data = rest;
    Ok(value)
}

fn take<'a>(data: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    let (value, rest) = data
        .split_at_checked(n)
        .ok_or("signed certificate timestamp is truncated")?;
    *data = rest;
    Ok(value)
}

fn parse_list(list: &[u8]) -> Result<Vec<Sct<'_>>, String> {
    let mut outer = list;
    let mut entries = field(&mut outer, 2)?;
    let mut out = Vec::new();
    while !entries.is_empty() {
        let mut sct = field(&mut entries, 2)?;
        if take(&mut sct, 1)? != [0] {
            // Only v1 exists; anything else cannot be checked and is skipped.
            continue;
        }
        let log_id = take(&mut sct, 32)?;
        let ts = take(&mut sct, 8)?;
        let timestamp_ms = ts.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
        let extensions = field(&mut sct, 2)?;
        let algs = take(&mut sct, 2)?;
        let signature = field(&mut sct, 2)?;
        out.push(Sct {
            log_id,
            timestamp_ms,
            extensions,
            hash_alg: algs[0],
            signature,
        });
    }
    Ok(out)
}

/// What the log signed for a precertificate entry (RFC 6962 §3.2).
fn signed_data(sct: &Sct<'_>, issuer_key_hash: &[u8], tbs: &[u8]) -> Result<Vec<u8>, String> {
    let tbs_len = u32::try_from(tbs.len())
        .ok()
        .filter(|n| *n < 1 << 24)
        .ok_or("certificate is too large for a transparency log")?;
    let ext_len = u16::try_from(sct.extensions.len()).map_err(|_| "SCT extensions too large")?;
    let mut out = Vec::with_capacity(tbs.len() + 64);
    out.extend([0u8, 0u8]); // v1, certificate_timestamp
    out.extend(sct.timestamp_ms.to_be_bytes());
    out.extend([0u8, 1u8]); // precert_entry
    out.extend(issuer_key_hash);
    out.extend(&tbs_len.to_be_bytes()[1..]);
    out.extend(tbs);
    out.extend(ext_len.to_be_bytes());
    out.extend(sct.extensions);
    Ok(out)
}

/// SHA-256 of the SubjectPublicKeyInfo of each candidate issuer whose
/// subject is `issuer_name`.
fn issuer_key_hashes(issuer_name: &[u8], candidates: &[&[u8]]) -> Vec<Vec<u8>> {
    use sha2::Digest as _;
    candidates
        .iter()
        .filter_map(|der| crate::proofs::x509::parse(der).ok())
        .filter(|c| c.tbs_certificate().subject().to_der().ok().as_deref() == Some(issuer_name))
        .filter_map(|c| c.tbs_certificate().subject_public_key_info().to_der().ok())
        .map(|spki| sha2::Sha256::digest(spki).to_vec())
        .collect()
}

/// Checks that `leaf` carries an SCT from a certificate transparency log of
/// `root`, signed over the leaf as issued by one of `issuers` (DER).
pub fn verify(leaf: &[u8], issuers: &[&[u8]], root: &TrustRoot) -> Result<(), String> {
    let pre = precert(leaf)?;
    let hashes = issuer_key_hashes(&pre.issuer_name, issuers);
    if hashes.is_empty() {
        return Err("the certificate's issuer is not among the trusted certificates".into());
    }
    let mut last = "no signed certificate timestamp is from a trusted log".to_owned();
    for sct in parse_list(&pre.scts)? {
        let Some(log) = root.ct_logs.iter().find(|l| l.log_id == sct.log_id) else {
            continue;
        };
        let at = i64::try_from(sct.timestamp_ms / 1000).unwrap_or(i64::MAX);
        if !log.valid_for.contains(at) {
            last = "the certificate transparency log was not valid at the SCT's time".into();
            continue;
        }
        if sct.hash_alg != 4 {
            last = format!("SCT hash algorithm {} is not SHA-256", sct.hash_alg);
            continue;
        }
        for hash in &hashes {
            let signed = signed_data(&sct, hash, &pre.tbs)?;
            if log.key.verifies(&signed, sct.signature) {
                return Ok(());
            }
        }
        last = "signed certificate timestamp does not verify with its log's key".into();
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_lists_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"\x00",
            b"\x00\x05\x00\x03\x00",
            b"\x00\x02\x00\x09",
        ] {
            assert!(parse_list(bad).is_err(), "{bad:?}");
        }
        assert!(parse_list(b"\x00\x00").unwrap().is_empty());
    }
}
