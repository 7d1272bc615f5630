//! Signing certificates: chain validation to trust roots and Fulcio identities.

use rustls_pki_types::{CertificateDer, UnixTime};
use x509_cert::der::asn1::Utf8StringRef;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;

use crate::proofs::keys::PublicKey;
use crate::proofs::trust_root::TrustRoot;
use crate::proofs::x509::parse;

/// Fulcio's legacy OIDC-issuer extension (raw string value).
const FULCIO_ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";
/// Fulcio's OIDC-issuer extension (DER UTF8String value).
const FULCIO_ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
/// Subject alternative name.
const SUBJECT_ALT_NAME: &str = "2.5.29.17";
/// Extended key usage.
const EXTENDED_KEY_USAGE: &str = "2.5.29.37";
/// id-kp-codeSigning in dotted form.
const CODE_SIGNING: &str = "1.3.6.1.5.5.7.3.3";
/// id-kp-codeSigning (1.3.6.1.5.5.7.3.3), DER-encoded value. CA certificates
/// commonly carry no extended key usage, so the chain only rejects CAs that
/// restrict it to something else; the leaf's own usage is checked separately.
const EKU_CODE_SIGNING: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x03];

/// The parts of a signing certificate tagpin checks.
#[derive(Debug, Clone)]
pub struct SigningCertificate {
    /// The certificate in DER.
    pub der: Vec<u8>,
    /// The key the certificate binds.
    pub public_key: PublicKey,
    /// OIDC issuer from the Fulcio extension, if any.
    pub issuer: Option<String>,
    /// SAN email addresses and URIs.
    pub subjects: Vec<String>,
    /// Whether the extended key usage allows code signing.
    pub code_signing: bool,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
}

/// Decodes the leaf certificate's key, Fulcio issuer and SANs.
pub fn signing_certificate(der: &[u8]) -> Result<SigningCertificate, String> {
    let cert = parse(der)?;
    let tbs = cert.tbs_certificate();
    let spki = tbs
        .subject_public_key_info()
        .to_der()
        .map_err(|e| format!("certificate public key: {e}"))?;
    let public_key =
        PublicKey::from_spki_der(&spki).map_err(|e| format!("certificate public key: {e}"))?;
    let mut issuer_v1 = None;
    let mut issuer_v2 = None;
    let mut subjects = Vec::new();
    let mut code_signing = false;
    for ext in tbs.extensions().into_iter().flatten() {
        let value = ext.extn_value.as_bytes();
        match ext.extn_id.to_string().as_str() {
            FULCIO_ISSUER_V1 => issuer_v1 = Some(String::from_utf8_lossy(value).into_owned()),
            FULCIO_ISSUER_V2 => {
                let s = Utf8StringRef::from_der(value)
                    .map_err(|e| format!("Fulcio issuer extension is malformed: {e}"))?;
                issuer_v2 = Some(s.as_str().to_owned());
            }
            SUBJECT_ALT_NAME => {
                let names = Vec::<GeneralName>::from_der(value)
                    .map_err(|e| format!("subject alternative name is malformed: {e}"))?;
                for name in names {
                    match name {
                        GeneralName::Rfc822Name(s) | GeneralName::UniformResourceIdentifier(s) => {
                            subjects.push(s.as_str().to_owned())
                        }
                        _ => {}
                    }
                }
            }
            EXTENDED_KEY_USAGE => {
                let usages = Vec::<x509_cert::der::asn1::ObjectIdentifier>::from_der(value)
                    .map_err(|e| format!("extended key usage is malformed: {e}"))?;
                code_signing = usages.iter().any(|u| u.to_string() == CODE_SIGNING);
            }
            _ => {}
        }
    }
    let validity = tbs.validity();
    Ok(SigningCertificate {
        der: der.to_vec(),
        public_key,
        issuer: issuer_v2.or(issuer_v1),
        subjects,
        code_signing,
        not_before: unix(validity.not_before.to_unix_duration()),
        not_after: unix(validity.not_after.to_unix_duration()),
    })
}

fn unix(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Checks that `leaf` chains, at Unix time `at`, to a certificate authority of
/// `root` valid at that time, through the authority's intermediates and the
/// certificates the signature shipped (`extra`, untrusted). `when` says in
/// messages what `at` is ("at signing time", "at the current time").
pub fn verify_chain(
    leaf: &[u8],
    extra: &[Vec<u8>],
    root: &TrustRoot,
    at: i64,
    when: &str,
) -> Result<(), String> {
    let leaf_der = CertificateDer::from(leaf);
    let end_entity = webpki::EndEntityCert::try_from(&leaf_der)
        .map_err(|e| format!("signing certificate cannot be parsed for validation: {e:?}"))?;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(at).unwrap_or(0),
    ));
    let mut last_error = "no certificate authority is configured".to_owned();
    for ca in &root.authorities {
        if !ca.valid_for.contains(at) {
            last_error = format!("no certificate authority was valid {when}");
            continue;
        }
        let Some((anchor_der, ca_intermediates)) = ca.chain.split_last() else {
            continue;
        };
        let anchor_der = CertificateDer::from(anchor_der.as_slice());
        let anchor = match webpki::anchor_from_trusted_cert(&anchor_der) {
            Ok(a) => a,
            Err(e) => {
                last_error = format!("trust anchor cannot be used: {e:?}");
                continue;
            }
        };
        let intermediates: Vec<CertificateDer<'_>> = ca_intermediates
            .iter()
            .chain(extra.iter())
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        match end_entity.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &intermediates,
            time,
            webpki::KeyUsage::required_if_present(EKU_CODE_SIGNING),
            None,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(e) => last_error = format!("{e:?}"),
        }
    }
    Err(format!(
        "certificate does not chain to a trusted root {when}: {last_error}"
    ))
}
