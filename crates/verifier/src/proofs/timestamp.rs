//! RFC 3161 signed timestamps: a timestamp authority's proof that a signature
//! existed at a time, checked offline against the authorities of a trust root.
//!
//! Only what a Sigstore verifier needs is read: the stamped hash, the time,
//! the signed attributes and the CMS signature. Everything is DER.

use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, UnixTime};
use sha2::Digest as _;
use x509_cert::der::asn1::{AnyRef, ObjectIdentifier};
use x509_cert::der::{Encode, Tag, Tagged};

use crate::proofs::der_walk::{algorithm, context, encode, err, expect, items, oid, one};

use crate::proofs::trust_root::{CertificateAuthority, TrustRoot};

const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const TST_INFO: &str = "1.2.840.113549.1.9.16.1.4";
const ATTR_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const ATTR_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
/// id-kp-timeStamping (1.3.6.1.5.5.7.3.8), DER-encoded value.
const EKU_TIME_STAMPING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x08];

/// Hash algorithms a timestamp may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_oid(oid: &ObjectIdentifier) -> Result<Self, String> {
        match oid.to_string().as_str() {
            "2.16.840.1.101.3.4.2.1" => Ok(Hash::Sha256),
            "2.16.840.1.101.3.4.2.2" => Ok(Hash::Sha384),
            "2.16.840.1.101.3.4.2.3" => Ok(Hash::Sha512),
            other => Err(format!("hash algorithm {other} is not supported")),
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// The parts of a timestamp token that verification reads.
#[derive(Debug)]
struct Token<'a> {
    /// The encapsulated TSTInfo, as signed.
    tst_info: &'a [u8],
    imprint_hash: Hash,
    imprint: &'a [u8],
    gen_time: i64,
    digest_hash: Hash,
    /// Contents of the `[0] IMPLICIT` signed attributes.
    signed_attrs: &'a [u8],
    signature_alg: ObjectIdentifier,
    signature: &'a [u8],
    /// Certificates shipped inside the token (DER), untrusted.
    certificates: Vec<Vec<u8>>,
}

/// Parses a GeneralizedTime value (`YYYYMMDDHHMMSS[.f*]Z`) to Unix seconds.
fn generalized_time(value: &[u8]) -> Result<i64, String> {
    let text = std::str::from_utf8(value).map_err(|_| "timestamp time is not ASCII")?;
    let body = text
        .strip_suffix('Z')
        .ok_or_else(|| format!("timestamp time {text:?} is not in UTC"))?;
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    if whole.len() != 14 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("timestamp time {text:?} is malformed"));
    }
    chrono::NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S")
        .map(|t| t.and_utc().timestamp())
        .map_err(|e| format!("timestamp time {text:?} is malformed: {e}"))
}

/// Accepts a TimeStampResp (as Sigstore bundles carry) or a bare token.
fn content_info(der: &[u8]) -> Result<AnyRef<'_>, String> {
    let outer = one(der, "timestamp response")?;
    expect(&outer, Tag::Sequence, "timestamp response")?;
    let parts = items(outer.value(), "timestamp response")?;
    match parts.first().map(|p| p.tag()) {
        Some(Tag::ObjectIdentifier) => Ok(outer),
        Some(Tag::Sequence) => {
            let status = items(parts[0].value(), "timestamp status")?;
            let granted = status
                .first()
                .map(|s| s.tag() == Tag::Integer && matches!(s.value(), [0] | [1]))
                .unwrap_or(false);
            if !granted {
                return Err("timestamp response does not grant a timestamp".into());
            }
            parts
                .get(1)
                .copied()
                .ok_or_else(|| "timestamp response carries no token".to_string())
        }
        _ => Err("timestamp is neither a response nor a token".into()),
    }
}

fn parse(der: &[u8]) -> Result<Token<'_>, String> {
    let sd = signed_data(der)?;
    let tst_info = encapsulated_tst_info(&sd)?;
    let (certificates, signer) = certificates_and_signer(&sd[3..])?;
    let signer = signer_info(&signer)?;
    let tst = tst_info_fields(tst_info)?;
    Ok(Token {
        tst_info,
        imprint_hash: Hash::from_oid(&algorithm(&tst.imprint_alg, "timestamp message imprint")?)?,
        imprint: tst.imprint.value(),
        gen_time: generalized_time(tst.gen_time.value())?,
        digest_hash: Hash::from_oid(&algorithm(
            &signer.digest_alg,
            "timestamp digest algorithm",
        )?)?,
        signed_attrs: signer.attrs.value(),
        signature_alg: algorithm(&signer.sig_alg, "timestamp signature algorithm")?,
        signature: signer.signature.value(),
        // DER has one encoding, so re-encoding yields the shipped bytes.
        certificates: certificates
            .iter()
            .map(|c| c.to_der().map_err(err("timestamp certificate")))
            .collect::<Result<_, _>>()?,
    })
}

/// The fields of the CMS SignedData inside the token: version, digestAlgorithms,
/// encapContentInfo, `[0]` certificates?, `[1]` crls?, signerInfos.
fn signed_data(der: &[u8]) -> Result<Vec<AnyRef<'_>>, String> {
    let ci = content_info(der)?;
    let ci = items(ci.value(), "timestamp token")?;
    let [content_type, content] = ci.as_slice() else {
        return Err("timestamp token is not a CMS ContentInfo".into());
    };
    if oid(content_type, "timestamp content type")?.to_string() != SIGNED_DATA {
        return Err("timestamp token is not CMS signed data".into());
    }
    expect(content, context(0, true), "timestamp content")?;
    let sd = one(content.value(), "timestamp signed data")?;
    expect(&sd, Tag::Sequence, "timestamp signed data")?;
    items(sd.value(), "timestamp signed data")
}

/// The DER of the TSTInfo the signed data encapsulates, as signed.
fn encapsulated_tst_info<'a>(sd: &[AnyRef<'a>]) -> Result<&'a [u8], String> {
    let encap = sd.get(2).ok_or("timestamp signed data is truncated")?;
    let encap = items(encap.value(), "timestamp encapsulated content")?;
    let [e_type, e_content] = encap.as_slice() else {
        return Err("timestamp carries no TSTInfo".into());
    };
    if oid(e_type, "timestamp encapsulated content type")?.to_string() != TST_INFO {
        return Err("timestamp content is not a TSTInfo".into());
    }
    expect(
        e_content,
        context(0, true),
        "timestamp encapsulated content",
    )?;
    let octets = one(e_content.value(), "timestamp encapsulated content")?;
    expect(&octets, Tag::OctetString, "timestamp encapsulated content")?;
    Ok(octets.value())
}

/// The shipped certificates and the one signer info, from the fields after the
/// encapsulated content.
fn certificates_and_signer<'a>(
    rest: &[AnyRef<'a>],
) -> Result<(Vec<AnyRef<'a>>, AnyRef<'a>), String> {
    let mut certificates = Vec::new();
    let mut signer_infos = None;
    for item in rest {
        if item.tag() == context(0, true) {
            for c in items(item.value(), "timestamp certificates")? {
                if c.tag() == Tag::Sequence {
                    certificates.push(c);
                }
            }
        } else if item.tag() == Tag::Set {
            signer_infos = Some(items(item.value(), "timestamp signer infos")?);
        }
    }
    let signer_infos = signer_infos.ok_or("timestamp has no signer")?;
    let [signer] = signer_infos.as_slice() else {
        return Err(format!(
            "timestamp has {} signers, expected exactly one",
            signer_infos.len()
        ));
    };
    Ok((certificates, *signer))
}

/// The fields of a signer info that verification reads.
struct SignerInfo<'a> {
    digest_alg: AnyRef<'a>,
    attrs: AnyRef<'a>,
    sig_alg: AnyRef<'a>,
    signature: AnyRef<'a>,
}

fn signer_info<'a>(signer: &AnyRef<'a>) -> Result<SignerInfo<'a>, String> {
    let si = items(signer.value(), "timestamp signer info")?;
    // version, sid, digestAlgorithm, [0] signedAttrs, signatureAlgorithm, signature
    let [_, _, digest_alg, attrs, sig_alg, signature, ..] = si.as_slice() else {
        return Err("timestamp signer info is truncated".into());
    };
    expect(attrs, context(0, true), "timestamp signed attributes")?;
    expect(signature, Tag::OctetString, "timestamp signature")?;
    Ok(SignerInfo {
        digest_alg: *digest_alg,
        attrs: *attrs,
        sig_alg: *sig_alg,
        signature: *signature,
    })
}

/// The fields of a TSTInfo that verification reads.
struct TstInfo<'a> {
    imprint_alg: AnyRef<'a>,
    imprint: AnyRef<'a>,
    gen_time: AnyRef<'a>,
}

fn tst_info_fields(tst_info: &[u8]) -> Result<TstInfo<'_>, String> {
    let tst = one(tst_info, "timestamp TSTInfo")?;
    expect(&tst, Tag::Sequence, "timestamp TSTInfo")?;
    let tst = items(tst.value(), "timestamp TSTInfo")?;
    // version, policy, messageImprint, serialNumber, genTime, ...
    let [_, _, imprint, _, gen_time, ..] = tst.as_slice() else {
        return Err("timestamp TSTInfo is truncated".into());
    };
    let imprint = items(imprint.value(), "timestamp message imprint")?;
    let [imprint_alg, imprint_value] = imprint.as_slice() else {
        return Err("timestamp message imprint is malformed".into());
    };
    expect(imprint_value, Tag::OctetString, "timestamp message imprint")?;
    expect(gen_time, Tag::GeneralizedTime, "timestamp time")?;
    Ok(TstInfo {
        imprint_alg: *imprint_alg,
        imprint: *imprint_value,
        gen_time: *gen_time,
    })
}

/// Checks the signed attributes: they must name a TSTInfo and hash this one.
fn check_signed_attrs(token: &Token<'_>) -> Result<(), String> {
    let mut content_type_ok = false;
    let mut digest_ok = false;
    for attr in items(token.signed_attrs, "timestamp signed attributes")? {
        let parts = items(attr.value(), "timestamp signed attribute")?;
        let [attr_type, values] = parts.as_slice() else {
            return Err("timestamp signed attribute is malformed".into());
        };
        let values = items(values.value(), "timestamp signed attribute values")?;
        match oid(attr_type, "timestamp signed attribute")?
            .to_string()
            .as_str()
        {
            ATTR_CONTENT_TYPE => {
                content_type_ok = values.len() == 1
                    && oid(&values[0], "timestamp content type attribute")?.to_string() == TST_INFO;
            }
            ATTR_MESSAGE_DIGEST => {
                digest_ok = values.len() == 1
                    && values[0].tag() == Tag::OctetString
                    && values[0].value() == token.digest_hash.digest(token.tst_info).as_slice();
            }
            _ => {}
        }
    }
    if !content_type_ok {
        return Err("timestamp's signed attributes do not name a TSTInfo".into());
    }
    if !digest_ok {
        return Err("timestamp's signed attributes do not match its TSTInfo".into());
    }
    Ok(())
}

/// Candidate algorithms for a CMS signature algorithm and digest.
fn algorithms(
    sig_alg: &ObjectIdentifier,
    hash: Hash,
) -> Result<Vec<&'static dyn SignatureVerificationAlgorithm>, String> {
    use webpki::aws_lc_rs as a;
    let hash = match sig_alg.to_string().as_str() {
        "1.2.840.10045.4.3.2" | "1.2.840.113549.1.1.11" => Hash::Sha256,
        "1.2.840.10045.4.3.3" | "1.2.840.113549.1.1.12" => Hash::Sha384,
        "1.2.840.10045.4.3.4" | "1.2.840.113549.1.1.13" => Hash::Sha512,
        // Bare key algorithms take the hash from the digest algorithm.
        "1.2.840.10045.2.1" | "1.2.840.113549.1.1.1" => hash,
        "1.3.101.112" => return Ok(vec![a::ED25519]),
        other => {
            return Err(format!(
                "timestamp signature algorithm {other} is not supported"
            ));
        }
    };
    let ecdsa = sig_alg.to_string().starts_with("1.2.840.10045");
    Ok(match (ecdsa, hash) {
        (true, Hash::Sha256) => vec![a::ECDSA_P256_SHA256, a::ECDSA_P384_SHA256],
        (true, Hash::Sha384) => vec![a::ECDSA_P256_SHA384, a::ECDSA_P384_SHA384],
        (true, Hash::Sha512) => vec![a::ECDSA_P521_SHA512],
        (false, Hash::Sha256) => vec![a::RSA_PKCS1_2048_8192_SHA256],
        (false, Hash::Sha384) => vec![a::RSA_PKCS1_2048_8192_SHA384],
        (false, Hash::Sha512) => vec![a::RSA_PKCS1_2048_8192_SHA512],
    })
}

fn unix_time(at: i64) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(at).unwrap_or(0),
    ))
}

/// Checks the token against one authority: its signing certificate, chained
/// to the authority's root at the stamped time, signed the attributes.
fn signed_by(token: &Token<'_>, signed: &[u8], tsa: &CertificateAuthority) -> Result<(), String> {
    let Some((root, rest)) = tsa.chain.split_last() else {
        return Err("timestamp authority has no certificates".into());
    };
    if !tsa.valid_for.contains(token.gen_time) {
        return Err("timestamp authority was not valid at the stamped time".into());
    }
    let algs = algorithms(&token.signature_alg, token.digest_hash)?;
    // The signer is the authority's leaf, or a certificate the token ships
    // that chains to the authority's root.
    let mut leaves: Vec<&[u8]> = Vec::new();
    if let Some(first) = rest.first() {
        leaves.push(first);
    }
    leaves.extend(token.certificates.iter().map(Vec::as_slice));
    if leaves.is_empty() {
        leaves.push(root);
    }
    let anchor_der = CertificateDer::from(root.as_slice());
    let anchor = webpki::anchor_from_trusted_cert(&anchor_der)
        .map_err(|e| format!("timestamp authority root cannot be used: {e:?}"))?;
    let intermediates: Vec<CertificateDer<'_>> = rest
        .iter()
        .skip(1)
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    let mut last = "no certificate of the timestamp authority signed it".to_owned();
    for leaf in leaves {
        let leaf_der = CertificateDer::from(leaf);
        let Ok(ee) = webpki::EndEntityCert::try_from(&leaf_der) else {
            continue;
        };
        if !algs
            .iter()
            .any(|alg| ee.verify_signature(*alg, signed, token.signature).is_ok())
        {
            continue;
        }
        if leaf == root.as_slice() {
            return Ok(());
        }
        match ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            std::slice::from_ref(&anchor),
            &intermediates,
            unix_time(token.gen_time),
            webpki::KeyUsage::required(EKU_TIME_STAMPING),
            None,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(e) => {
                last = format!("timestamp certificate does not chain to the authority: {e:?}")
            }
        }
    }
    Err(last)
}

/// Verifies an RFC 3161 timestamp over `signature` against the timestamp
/// authorities of `root`; returns the stamped time in Unix seconds.
pub fn verify(der: &[u8], signature: &[u8], root: &TrustRoot) -> Result<i64, String> {
    let token = parse(der)?;
    if token.imprint != token.imprint_hash.digest(signature).as_slice() {
        return Err("timestamp is not over this signature".into());
    }
    check_signed_attrs(&token)?;
    let signed = encode(Tag::Set, token.signed_attrs, "timestamp signed attributes")?;
    if root.timestamp_authorities.is_empty() {
        return Err("no timestamp authority is trusted".into());
    }
    let mut last = "no timestamp authority has certificates".to_owned();
    // An authority without certificates can sign nothing, so it can neither
    // vouch for a timestamp nor lend its validity to another authority's.
    for tsa in root
        .timestamp_authorities
        .iter()
        .filter(|t| !t.chain.is_empty())
    {
        match signed_by(&token, &signed, tsa) {
            Ok(()) => return Ok(token.gen_time),
            Err(e) => last = e,
        }
    }
    Err(format!("timestamp is not from a trusted authority: {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generalized_time_with_and_without_fraction() {
        assert_eq!(generalized_time(b"20250725195304Z").unwrap(), 1_753_473_184);
        assert_eq!(
            generalized_time(b"20250725195304.123Z").unwrap(),
            1_753_473_184
        );
        assert!(generalized_time(b"20250725195304").is_err());
        assert!(generalized_time(b"2025072519530Z").is_err());
        assert!(generalized_time(b"20250725195304.1xZ").is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x00",
            b"\x30\x03\x02\x01\x00",
            b"\x04\x00",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
