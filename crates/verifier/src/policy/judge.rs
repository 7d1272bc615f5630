//! Judging evidence against authorities: every constraint of one authority
//! (key or certificate identity, transparency log, annotations, claims) must
//! be met by one and the same signature.

use tagpin_resolver::Digest;

use crate::formats::evidence::{COSIGN_SIGN_PREDICATE, Claims, Evidence};
use crate::policy::repository::same_repository;
use crate::policy::{
    AttestationRequirement, Authority, AuthoritySet, Combination, Matcher, Signer, TlogMode,
};
use crate::proofs::certificate::{self, SigningCertificate};
use crate::proofs::keys::PublicKey;
use crate::proofs::rekor::{self, Expected};
use crate::proofs::sct;
use crate::proofs::timestamp;
use crate::proofs::trust_root::TrustRoot;
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

/// A signature that satisfied an authority.
#[derive(Debug, Clone)]
struct Satisfied {
    /// The signer's name: a key fingerprint or `issuer/subject`.
    signer: String,
    /// What makes it one signature: the verifying key and the signed
    /// content. Copies of a signature, or a second (malleated or re-made)
    /// signature by the same key over the same content, are the same signature.
    identity: (Vec<u8>, Vec<u8>),
}

/// Judges one candidate against one authority.
fn judge(
    ev: &Evidence,
    auth: &Authority,
    t: &Target<'_>,
    claims: &dyn Fn(&Evidence) -> Result<(), String>,
) -> Result<Satisfied, Miss> {
    // 1. The signature itself, with the authority's key or the certificate's.
    let cert = check_signature(ev, auth, t)?;
    // 2. What it signs.
    claims(ev).map_err(|e| miss(2, e))?;
    // 3. Annotations on the same signature.
    check_annotations(ev, auth)?;
    // 4. Transparency log, bound to this signature and signer.
    let signed_at = check_tlog(ev, auth, cert.as_ref())?;
    let (signer, key) = match (&auth.signer, cert) {
        (Signer::Key(k), _) => (k.fingerprint(), k.spki_der().to_vec()),
        (
            Signer::Identity {
                issuer,
                subject,
                roots,
            },
            Some(cert),
        ) => {
            // 5. Certificate chain, at every time the signature is proven
            // to have existed; 6. the identity it certifies.
            check_certificate(ev, &cert, roots, signed_at, t.now)?;
            let who = check_identity(ev, &cert, issuer, subject)?;
            (who, cert.public_key.spki_der().to_vec())
        }
        (Signer::Identity { .. }, None) => return Err(miss(1, "certificate missing")),
    };
    Ok(Satisfied {
        signer,
        identity: (key, signed_content(ev)),
    })
}

/// The SHA-256 of what a signature is over.
fn signed_content(ev: &Evidence) -> Vec<u8> {
    match &ev.signed_digest {
        Some(d) => d.clone(),
        None => Sha256::digest(&ev.signed_bytes).to_vec(),
    }
}

/// Stage 1: the signature verifies with the authority's key, or with the
/// certificate it carries (returned for the later stages).
fn check_signature(
    ev: &Evidence,
    auth: &Authority,
    t: &Target<'_>,
) -> Result<Option<SigningCertificate>, Miss> {
    // A message signature carries no payload naming what it signs: say
    // what it was checked over.
    let over = match ev.claims {
        Claims::ManifestSignature => format!(" over {} (the artifact it is attached to)", t.digest),
        _ => String::new(),
    };
    if ev.signed_digest.is_none() && ev.signed_bytes.is_empty() {
        // Nothing a signature over nothing could be about: never a match.
        return Err(miss(
            1,
            format!("{}: signature is over no content", ev.origin),
        ));
    }
    match &auth.signer {
        Signer::Key(key) => {
            if !signature_verifies(key, ev) {
                return Err(miss(
                    1,
                    format!(
                        "{}: signature does not verify with {}{over}",
                        ev.origin, auth.name
                    ),
                ));
            }
            Ok(None)
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
                        "{}: signature does not verify with its certificate{over}",
                        ev.origin
                    ),
                ));
            }
            Ok(Some(cert))
        }
    }
}

/// Stage 3: the authority's annotations are on the same signature.
fn check_annotations(ev: &Evidence, auth: &Authority) -> Result<(), Miss> {
    let annotations = ev.annotations();
    for (k, v) in &auth.annotations {
        if annotations.get(k) != Some(v) {
            return Err(miss(
                3,
                format!("{}: annotation {k}={v:?} is missing", ev.origin),
            ));
        }
    }
    Ok(())
}

/// Stage 4: when the authority requires it, a transparency-log entry for
/// this signature by this signer; returns the signing time it proves.
fn check_tlog(
    ev: &Evidence,
    auth: &Authority,
    cert: Option<&SigningCertificate>,
) -> Result<Option<i64>, Miss> {
    if auth.tlog != TlogMode::Required {
        return Ok(None);
    }
    let Some(root) = &auth.tlog_root else {
        return Err(miss(4, "no transparency log is configured"));
    };
    let verifier_der: &[u8] = match (&auth.signer, cert) {
        (Signer::Key(k), _) => k.spki_der(),
        (_, Some(c)) => &c.der,
        (_, None) => &[],
    };
    let signed_sha256 = signed_content(ev);
    let mut last = format!(
        "{}: no transparency-log entry shipped with the signature",
        ev.origin
    );
    for entry in &ev.tlog {
        let expected = Expected {
            signature: &ev.signature,
            signed_sha256: &signed_sha256,
            payload: &ev.tlog_payload,
            verifier_der,
        };
        match rekor::verify_entry(entry, root, expected) {
            Ok(time) => return Ok(time),
            Err(e) => last = format!("{}: {e}", ev.origin),
        }
    }
    Err(miss(4, last))
}

/// Stage 5: the certificate is for code signing, valid and chained to the
/// roots at every time the signature is proven to have existed (the log's
/// and each trusted timestamp's); with none proven, at the current time.
fn check_certificate(
    ev: &Evidence,
    cert: &SigningCertificate,
    roots: &TrustRoot,
    signed_at: Option<i64>,
    now: i64,
) -> Result<(), Miss> {
    if !cert.code_signing {
        return Err(miss(
            5,
            format!("{}: certificate is not for code signing", ev.origin),
        ));
    }
    let mut times: Vec<i64> = signed_at.into_iter().collect();
    times.extend(timestamps(ev, roots));
    // Without a proven signing time the certificate is checked now, and the
    // message says so rather than claim a signing time nobody proved.
    let (when, invalid) = if times.is_empty() {
        times.push(now);
        (
            "at the current time",
            "certificate is not valid at the current time, and no transparency-log entry \
             or trusted timestamp proves when it signed",
        )
    } else {
        (
            "at signing time",
            "certificate was not valid at signing time",
        )
    };
    for at in times {
        if at < cert.not_before || at > cert.not_after {
            return Err(miss(5, format!("{}: {invalid}", ev.origin)));
        }
        certificate::verify_chain(&cert.der, &ev.chain, roots, at, when)
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
        sct::verify(&cert.der, &issuers, roots)
            .map_err(|e| miss(5, format!("{}: certificate transparency: {e}", ev.origin)))?;
    }
    Ok(())
}

/// Stage 6: the certificate's OIDC issuer and subject match the authority;
/// returns `issuer/subject`.
fn check_identity(
    ev: &Evidence,
    cert: &SigningCertificate,
    issuer: &Matcher,
    subject: &Matcher,
) -> Result<String, Miss> {
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

/// What one authority made of the candidates: the distinct signatures that
/// satisfy it (indexes into the set's signature list), or its best miss.
struct AuthorityFindings {
    satisfied_by: Vec<usize>,
    best: Option<Miss>,
}

/// Evaluates one authority set over candidates. Each satisfied authority
/// needs a signature of its own: a signature that meets several authorities
/// counts for one of them only, so `threshold` and `allOf` count distinct
/// signatures, not authorities.
fn evaluate_set(
    set: &AuthoritySet,
    candidates: &[Evidence],
    t: &Target<'_>,
    claims: &dyn Fn(&Evidence) -> Result<(), String>,
    nothing_found: &str,
) -> SetResult {
    // An authority with as many signatures as there are authorities always
    // gets one of its own; for anyOf, one satisfied authority is enough.
    let enough = match set.combination {
        Combination::AnyOf => 1,
        _ => set.authorities.len(),
    };
    let mut signatures: Vec<Satisfied> = Vec::new();
    let findings: Vec<AuthorityFindings> = set
        .authorities
        .iter()
        .map(|auth| judge_authority(auth, candidates, t, claims, enough, &mut signatures))
        .collect();
    let edges: Vec<Vec<usize>> = findings.iter().map(|f| f.satisfied_by.clone()).collect();
    let assigned = assign_distinct(&edges, signatures.len());
    let mut signers = Vec::new();
    let mut misses = Vec::new();
    for ((auth, found), sig) in set.authorities.iter().zip(&findings).zip(&assigned) {
        match (sig, &found.best) {
            (Some(i), _) => {
                if let Some(s) = signatures.get(*i)
                    && !signers.contains(&s.signer)
                {
                    signers.push(s.signer.clone());
                }
            }
            (None, _) if !found.satisfied_by.is_empty() => misses.push(format!(
                "{}: the signatures that meet it are counted for other authorities; \
                 each authority needs a signature of its own",
                auth.name
            )),
            (None, Some(m)) => misses.push(format!("{}: {}", auth.name, m.reason)),
            (None, None) => misses.push(format!("{}: {nothing_found}", auth.name)),
        }
    }
    let satisfied = assigned.iter().flatten().count();
    let needed = match set.combination {
        Combination::AnyOf => 1,
        Combination::AllOf => set.authorities.len(),
        Combination::Threshold(n) => n,
    };
    if satisfied >= needed && !signers.is_empty() {
        Ok(signers)
    } else {
        Err(format!(
            "{satisfied} of {} authorities satisfied, {needed} required ({})",
            set.authorities.len(),
            misses.join("; ")
        ))
    }
}

/// Judges candidates against one authority until `enough` distinct
/// signatures satisfy it, recording them in `signatures`.
fn judge_authority(
    auth: &Authority,
    candidates: &[Evidence],
    t: &Target<'_>,
    claims: &dyn Fn(&Evidence) -> Result<(), String>,
    enough: usize,
    signatures: &mut Vec<Satisfied>,
) -> AuthorityFindings {
    let mut found = AuthorityFindings {
        satisfied_by: Vec::new(),
        best: None,
    };
    for ev in candidates {
        match judge(ev, auth, t, claims) {
            Ok(s) => {
                let i = match signatures.iter().position(|o| o.identity == s.identity) {
                    Some(i) => i,
                    None => {
                        signatures.push(s);
                        signatures.len() - 1
                    }
                };
                if !found.satisfied_by.contains(&i) {
                    found.satisfied_by.push(i);
                    if found.satisfied_by.len() >= enough {
                        break;
                    }
                }
            }
            Err(m) => {
                if found.best.as_ref().is_none_or(|b| m.stage > b.stage) {
                    found.best = Some(m);
                }
            }
        }
    }
    found
}

/// Assigns distinct signatures to as many authorities as possible (a maximum
/// bipartite matching; `edges[a]` lists the signatures authority `a`
/// accepts). Returns each authority's signature, if it got one.
fn assign_distinct(edges: &[Vec<usize>], signatures: usize) -> Vec<Option<usize>> {
    let mut owner: Vec<Option<usize>> = vec![None; signatures];
    for a in 0..edges.len() {
        let mut seen = vec![false; signatures];
        augment(a, edges, &mut owner, &mut seen);
    }
    let mut assigned = vec![None; edges.len()];
    for (sig, a) in owner.iter().enumerate() {
        if let Some(a) = a {
            assigned[*a] = Some(sig);
        }
    }
    assigned
}

/// Finds a signature for authority `a`, moving earlier assignments along
/// alternating paths when that frees one (Kuhn's algorithm).
fn augment(a: usize, edges: &[Vec<usize>], owner: &mut [Option<usize>], seen: &mut [bool]) -> bool {
    for &sig in &edges[a] {
        if seen[sig] {
            continue;
        }
        seen[sig] = true;
        if owner[sig].is_none_or(|b| augment(b, edges, owner, seen)) {
            owner[sig] = Some(a);
            return true;
        }
    }
    false
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

#[cfg(test)]
mod tests {
    use super::assign_distinct;

    #[test]
    fn each_authority_gets_a_signature_of_its_own() {
        // Two authorities, one signature: one of them only.
        assert_eq!(assign_distinct(&[vec![0], vec![0]], 1), vec![Some(0), None]);
        // The first takes signature 0, then gives it up for the second.
        assert_eq!(
            assign_distinct(&[vec![0, 1], vec![0]], 2),
            vec![Some(1), Some(0)]
        );
        assert_eq!(assign_distinct(&[vec![], vec![1]], 2), vec![None, Some(1)]);
    }
}
