//! Judging evidence against authorities: every constraint of one authority
//! (key or certificate identity, transparency log, annotations, claims) must
//! be met by one and the same signature.

use tagpin_resolver::Digest;

use crate::certificate::{self, SigningCertificate};
use crate::evidence::{COSIGN_SIGN_PREDICATE, Claims, Evidence};
use crate::keys::PublicKey;
use crate::policy::{
    AttestationRequirement, Authority, AuthoritySet, Combination, Signer, TlogMode,
};
use crate::rekor::{self, Expected};
use crate::repository::same_repository;
use crate::sct;
use crate::timestamp;
use crate::trust_root::TrustRoot;
use sha2::{Digest as _, Sha256};

/// The image being verified.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// `registry/repository` of the image.
    pub name: &'a str,
    /// The digest being verified (and pinned).
    pub digest: &'a Digest,
    /// Configured equivalent repositories.
    pub equivalents: &'a [Vec<String>],
    /// Current time, Unix seconds, for signatures without a log timestamp.
    pub now: i64,
}

/// How far a candidate got; the furthest failure is the one reported.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Miss {
    stage: u8,
    reason: String,
}

fn miss(stage: u8, reason: impl Into<String>) -> Miss {
    Miss {
        stage,
        reason: reason.into(),
    }
}

/// Checks what a signature claims: that it is about this digest.
fn signature_claims(ev: &Evidence, t: &Target<'_>) -> Result<(), String> {
    match &ev.claims {
        Claims::ImageSignature(p) => {
            if p.manifest_digest != t.digest.to_string() {
                return Err(format!(
                    "{} signs digest {}, not {}",
                    ev.origin, p.manifest_digest, t.digest
                ));
            }
            if !same_repository(&p.docker_reference, t.name, t.equivalents) {
                return Err(format!(
                    "{} names repository {:?}, not {} or a repository configured as equivalent",
                    ev.origin, p.docker_reference, t.name
                ));
            }
            Ok(())
        }
        Claims::Statement(s) if s.predicate_type == COSIGN_SIGN_PREDICATE => {
            if s.has_subject(t.digest) {
                Ok(())
            } else {
                Err(format!(
                    "{} does not name {} as its subject",
                    ev.origin, t.digest
                ))
            }
        }
        Claims::Statement(s) => Err(format!(
            "{} is an attestation of type {:?}, not an image signature",
            ev.origin, s.predicate_type
        )),
        Claims::ManifestSignature => Ok(()),
        Claims::Unreadable(why) => Err(format!("{}: {why}", ev.origin)),
    }
}

/// Checks an attestation's statement against a requirement.
fn attestation_claims(
    ev: &Evidence,
    req: &AttestationRequirement,
    t: &Target<'_>,
) -> Result<(), String> {
    let Claims::Statement(s) = &ev.claims else {
        return Err(format!("{} is not an in-toto attestation", ev.origin));
    };
    if s.predicate_type != req.predicate_type {
        return Err(format!(
            "{} has predicate type {:?}, not {:?}",
            ev.origin, s.predicate_type, req.predicate_type
        ));
    }
    if !s.has_subject(t.digest) {
        return Err(format!(
            "{} does not name {} as its subject",
            ev.origin, t.digest
        ));
    }
    for c in &req.conditions {
        c.holds(&s.predicate)
            .map_err(|e| format!("{}: {e}", ev.origin))?;
    }
    Ok(())
}

/// Judges one candidate against one authority; returns the signer's name.
fn judge(
    ev: &Evidence,
    auth: &Authority,
    t: &Target<'_>,
    claims: &dyn Fn(&Evidence) -> Result<(), String>,
) -> Result<String, Miss> {
    // 1. The signature itself, with the authority's key or the certificate's.
    let cert: Option<SigningCertificate> = match &auth.signer {
        Signer::Key(key) => {
            if !signature_verifies(key, ev) {
                return Err(miss(
                    1,
                    format!(
                        "{}: signature does not verify with {}",
                        ev.origin, auth.name
                    ),
                ));
            }
            None
        }
        Signer::Identity { .. } => {
            let der = ev.certificate.as_ref().ok_or_else(|| {
                miss(
                    1,
                    format!("{}: signature carries no certificate", ev.origin),
                )
            })?;
            let cert = certificate::signing_certificate(der)
                .map_err(|e| miss(1, format!("{}: {e}", ev.origin)))?;
            if !signature_verifies(&cert.public_key, ev) {
                return Err(miss(
                    1,
                    format!(
                        "{}: signature does not verify with its certificate",
                        ev.origin
                    ),
                ));
            }
            Some(cert)
        }
    };
    // 2. What it signs.
    claims(ev).map_err(|e| miss(2, e))?;
    // 3. Annotations on the same signature.
    let annotations = ev.annotations();
    for (k, v) in &auth.annotations {
        if annotations.get(k) != Some(v) {
            return Err(miss(
                3,
                format!("{}: annotation {k}={v:?} is missing", ev.origin),
            ));
        }
    }
    // 4. Transparency log, bound to this signature and signer.
    let verifier_der: &[u8] = match (&auth.signer, &cert) {
        (Signer::Key(k), _) => k.spki_der(),
        (_, Some(c)) => &c.der,
        (_, None) => &[],
    };
    let mut signed_at = None;
    let mut logged = false;
    if auth.tlog == TlogMode::Required {
        let Some(root) = &auth.tlog_root else {
            return Err(miss(4, "no transparency log is configured"));
        };
        let mut last = format!(
            "{}: no transparency-log entry shipped with the signature",
            ev.origin
        );
        let signed_sha256 = match &ev.signed_digest {
            Some(d) => d.clone(),
            None => Sha256::digest(&ev.signed_bytes).to_vec(),
        };
        for entry in &ev.tlog {
            let expected = Expected {
                signature: &ev.signature,
                signed_sha256: &signed_sha256,
                payload: &ev.tlog_payload,
                verifier_der,
            };
            match rekor::verify_entry(entry, root, expected) {
                Ok(time) => {
                    signed_at = time;
                    logged = true;
                    break;
                }
                Err(e) => last = format!("{}: {e}", ev.origin),
            }
        }
        if !logged {
            return Err(miss(4, last));
        }
    }
    // 5. Certificate chain and identity, at every time the signature is
    // proven to have existed: the log's and each trusted timestamp's.
    match (&auth.signer, cert) {
        (Signer::Key(k), _) => Ok(k.fingerprint()),
        (
            Signer::Identity {
                issuer,
                subject,
                roots,
            },
            Some(cert),
        ) => {
            if !cert.code_signing {
                return Err(miss(
                    5,
                    format!("{}: certificate is not for code signing", ev.origin),
                ));
            }
            let mut times: Vec<i64> = signed_at.into_iter().collect();
            times.extend(timestamps(ev, roots));
            if times.is_empty() {
                times.push(t.now);
            }
            for at in times {
                if at < cert.not_before || at > cert.not_after {
                    return Err(miss(
                        5,
                        format!("{}: certificate was not valid at signing time", ev.origin),
                    ));
                }
                certificate::verify_chain(&cert.der, &ev.chain, roots, at)
                    .map_err(|e| miss(5, format!("{}: {e}", ev.origin)))?;
            }
            if !roots.ct_logs.is_empty() {
                let issuers: Vec<&[u8]> = roots
                    .authorities
                    .iter()
                    .flat_map(|ca| &ca.chain)
                    .chain(&ev.chain)
                    .map(Vec::as_slice)
                    .collect();
                sct::verify(&cert.der, &issuers, roots).map_err(|e| {
                    miss(5, format!("{}: certificate transparency: {e}", ev.origin))
                })?;
            }
            let Some(cert_issuer) = &cert.issuer else {
                return Err(miss(
                    6,
                    format!("{}: certificate has no OIDC issuer extension", ev.origin),
                ));
            };
            if !issuer.matches(cert_issuer) {
                return Err(miss(
                    6,
                    format!(
                        "{}: certificate issuer {cert_issuer:?} does not match {}",
                        ev.origin,
                        issuer.describe()
                    ),
                ));
            }
            let Some(who) = cert.subjects.iter().find(|s| subject.matches(s)) else {
                return Err(miss(
                    6,
                    format!(
                        "{}: certificate subject {:?} does not match {}",
                        ev.origin,
                        cert.subjects,
                        subject.describe()
                    ),
                ));
            };
            Ok(format!("{cert_issuer}/{who}"))
        }
        (Signer::Identity { .. }, None) => Err(miss(1, "certificate missing")),
    }
}

/// Checks the signature over the signed bytes, or over their digest when
/// only that is known.
fn signature_verifies(key: &PublicKey, ev: &Evidence) -> bool {
    match &ev.signed_digest {
        Some(d) => key.verifies_prehashed(d, &ev.signature),
        None => key.verifies(&ev.signed_bytes, &ev.signature),
    }
}

/// Times vouched for by the signature's RFC 3161 timestamps. A timestamp no
/// authority of `root` signed, or one over another signature, proves nothing
/// and is left out; it cannot make a signature pass.
fn timestamps<'a>(ev: &'a Evidence, root: &'a TrustRoot) -> impl Iterator<Item = i64> + 'a {
    ev.timestamps
        .iter()
        .filter_map(|ts| timestamp::verify(ts, &ev.signature, root).ok())
}

/// The outcome of an authority set: the signers, or why it was not satisfied.
pub type SetResult = Result<Vec<String>, String>;

/// Evaluates one authority set over candidates, each authority needing one
/// candidate that meets all its constraints.
fn evaluate_set(
    set: &AuthoritySet,
    candidates: &[Evidence],
    t: &Target<'_>,
    claims: &dyn Fn(&Evidence) -> Result<(), String>,
    nothing_found: &str,
) -> SetResult {
    let mut signers = Vec::new();
    let mut misses = Vec::new();
    for auth in &set.authorities {
        let mut best: Option<Miss> = None;
        let mut ok = None;
        for ev in candidates {
            match judge(ev, auth, t, claims) {
                Ok(s) => {
                    ok = Some(s);
                    break;
                }
                Err(m) => {
                    if best.as_ref().is_none_or(|b| m.stage > b.stage) {
                        best = Some(m);
                    }
                }
            }
        }
        match ok {
            Some(s) => {
                if !signers.contains(&s) {
                    signers.push(s);
                }
            }
            None => misses.push(match best {
                Some(m) => format!("{}: {}", auth.name, m.reason),
                None => format!("{}: {nothing_found}", auth.name),
            }),
        }
    }
    let satisfied = set.authorities.len() - misses.len();
    let needed = match set.combination {
        Combination::AnyOf => 1,
        Combination::AllOf => set.authorities.len(),
        Combination::Threshold(n) => n,
    };
    if satisfied >= needed {
        Ok(signers)
    } else {
        Err(format!(
            "{satisfied} of {} authorities satisfied, {needed} required ({})",
            set.authorities.len(),
            misses.join("; ")
        ))
    }
}

/// Evaluates an authority set with caller-supplied claim checks.
pub fn any_claims(
    set: &AuthoritySet,
    found: &[Evidence],
    t: &Target<'_>,
    claims: &dyn Fn(&Evidence) -> Result<(), String>,
) -> SetResult {
    evaluate_set(set, found, t, claims, "nothing to verify")
}

/// Evaluates the signature requirement of a rule.
pub fn signatures(set: &AuthoritySet, found: &[Evidence], t: &Target<'_>) -> SetResult {
    evaluate_set(
        set,
        found,
        t,
        &|ev| signature_claims(ev, t),
        "the image is not signed (no signatures found)",
    )
}

/// Evaluates one attestation requirement.
pub fn attestation(req: &AttestationRequirement, found: &[Evidence], t: &Target<'_>) -> SetResult {
    let nothing = format!("no attestation of type {:?} found", req.predicate_type);
    evaluate_set(
        &req.signed_by,
        found,
        t,
        &|ev| attestation_claims(ev, req, t),
        &nothing,
    )
    .map_err(|e| format!("attestation {:?}: {e}", req.name))
}
