//! The sigstore-conformance bundle-verify cases that tagpin can check offline
//! (see tests/fixtures/conformance/README.md), run through the bundle check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use support::*;
use tagpin_resolver::Digest;
use tagpin_verifier::{Artifact, verify_bundle};

const A_TXT: &str = "sha256:a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf";
const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

/// Verifies a case's bundle with its key (or the default identity) and its
/// trust root (or the public-good root), the way the suite's harness does.
fn verify_case(case: &str, bundle: &[u8], digest: &str) -> Result<Vec<String>, String> {
    let dir = fixture_path(&format!("conformance/{case}"));
    let root = if std::path::Path::new(&format!("{dir}/trusted_root.json")).exists() {
        format!("{dir}/trusted_root.json")
    } else if case.starts_with("rekor2-") {
        // The suite runs its Rekor v2 cases against the staging instance.
        fixture_path("conformance/trusted_root.staging.json")
    } else {
        fixture_path("conformance/trusted_root.public_good.json")
    };
    verify_with_root(case, bundle, digest, &root)
}

fn verify_with_root(
    case: &str,
    bundle: &[u8],
    digest: &str,
    root: &str,
) -> Result<Vec<String>, String> {
    let dir = fixture_path(&format!("conformance/{case}"));
    let has_key = std::path::Path::new(&format!("{dir}/key.pub")).exists();
    let authority = if has_key {
        format!("key: {{file: \"{dir}/key.pub\"}}\n          trustRoot: root")
    } else {
        format!("keyless: {{roots: root, issuer: \"{ISSUER}\", subject: \"{IDENTITY}\"}}")
    };
    let yaml = format!(
        "noMatch: deny\ntrustRoots:\n  root:\n    trustedRoot: \"{root}\"\nrules:\n  - name: bundle\n    images: [\"**\"]\n    signatures:\n      anyOf:\n        - {authority}\n"
    );
    let policy = policy(&yaml);
    let set = policy.rule("bundle").unwrap().signatures().unwrap();
    let digest: Digest = digest.parse().unwrap();
    verify_bundle(bundle, Artifact::Digest(&digest), set, 0)
}

fn bundle(case: &str) -> Vec<u8> {
    fixture(&format!("conformance/{case}/bundle.sigstore.json"))
}

#[test]
fn intoto_canonical_log_entry_verifies() {
    let case = "intoto-canonical-log-entry";
    let signers = verify_case(case, &bundle(case), A_TXT).unwrap();
    assert_eq!(signers.len(), 1);
    // Bound to the artifact: another digest fails.
    let other = format!("sha256:{}", "0".repeat(64));
    assert!(verify_case(case, &bundle(case), &other).is_err());
    // The checkpoint is the only proof here: a forged one fails.
    let mut b: serde_json::Value = serde_json::from_slice(&bundle(case)).unwrap();
    let cp = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]["envelope"];
    *cp = cp
        .as_str()
        .unwrap()
        .replace("rekor.test\n1\n", "rekor.test\n2\n")
        .into();
    let err = verify_case(case, &serde_json::to_vec(&b).unwrap(), A_TXT).unwrap_err();
    assert!(err.contains("checkpoint"), "{err}");
}

#[test]
fn dsse_statement_missing_type_fails() {
    let case = "dsse-statement-missing-type_fail";
    let err = verify_case(case, &bundle(case), A_TXT).unwrap_err();
    assert!(err.contains("in-toto statement"), "{err}");
}

#[test]
fn dsse_statement_unknown_type_fails() {
    let case = "dsse-statement-unknown-type_fail";
    let err = verify_case(case, &bundle(case), A_TXT).unwrap_err();
    assert!(err.contains("not supported"), "{err}");
}

const HAPPY: &str = "dsse-with-hashedrekord-happy-path";
const HAPPY_DIGEST: &str =
    "sha256:70ed0277251d0cf2eb5eda8b574ce012de485e39a3de1fb4b1e0717e14b02d6a";

#[test]
fn public_good_keyless_dsse_with_hashedrekord_verifies() {
    let signers = verify_case(HAPPY, &bundle(HAPPY), HAPPY_DIGEST).unwrap();
    assert_eq!(signers, vec![format!("{ISSUER}/{IDENTITY}")]);
}

#[test]
fn public_good_bundle_fails_once_altered() {
    let original: serde_json::Value = serde_json::from_slice(&bundle(HAPPY)).unwrap();
    // A different payload: the signature no longer verifies.
    let mut b = original.clone();
    let payload = STANDARD
        .decode(b["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let altered = String::from_utf8(payload)
        .unwrap()
        .replace("DSSE bundle", "DSSE bundlE");
    b["dsseEnvelope"]["payload"] = STANDARD.encode(altered).into();
    assert!(verify_case(HAPPY, &serde_json::to_vec(&b).unwrap(), HAPPY_DIGEST).is_err());
    // A different log entry time: the SET no longer verifies.
    let mut b = original.clone();
    b["verificationMaterial"]["tlogEntries"][0]["integratedTime"] = "1778701654".into();
    let err = verify_case(HAPPY, &serde_json::to_vec(&b).unwrap(), HAPPY_DIGEST).unwrap_err();
    assert!(err.contains("signed entry timestamp"), "{err}");
    // Another identity: rejected even though everything else holds.
    let p = policy(&format!(
        "noMatch: deny\ntrustRoots:\n  root:\n    trustedRoot: \"{}\"\nrules:\n  - name: bundle\n    images: [\"**\"]\n    signatures:\n      anyOf:\n        - keyless: {{roots: root, issuer: \"{ISSUER}\", subject: \"https://github.com/someone/else\"}}\n",
        fixture_path("conformance/trusted_root.public_good.json")
    ));
    let digest: Digest = HAPPY_DIGEST.parse().unwrap();
    let err = verify_bundle(
        &bundle(HAPPY),
        Artifact::Digest(&digest),
        p.rule("bundle").unwrap().signatures().unwrap(),
        0,
    )
    .unwrap_err();
    assert!(err.contains("certificate subject"), "{err}");
}

/// Every `_fail` case vendored, with what its failure must be about.
#[test]
fn failing_cases_fail_for_their_reason() {
    let cases = [
        // The envelope signature is another key's.
        (
            "dsse-with-hashedrekord-invalid-sig_fail",
            HAPPY_DIGEST,
            "does not verify with its certificate",
        ),
        (
            "rekor2-dsse-invalid-sig_fail",
            A_TXT,
            "does not verify with its certificate",
        ),
        // A valid envelope, but not the one the log recorded.
        (
            "dsse-with-hashedrekord-mismatch-envelope_fail",
            HAPPY_DIGEST,
            "transparency log entry",
        ),
        (
            "rekor2-dsse-mismatch-envelope_fail",
            A_TXT,
            "transparency log entry",
        ),
        // The same payload signed again: the log holds the other signature.
        (
            "dsse-with-hashedrekord-mismatch-sig_fail",
            HAPPY_DIGEST,
            "transparency log entry",
        ),
        (
            "rekor2-dsse-mismatch-sig_fail",
            A_TXT,
            "transparency log entry",
        ),
        // cosign's legacy bundle with a swapped log entry is not a Sigstore
        // bundle at all; tagpin never reads that format.
        (
            "cve-2022-36056-swapped-tlog-entry_fail",
            A_TXT,
            "not a Sigstore bundle",
        ),
    ];
    for (case, digest, reason) in cases {
        let err = verify_case(case, &bundle(case), digest).unwrap_err();
        assert!(err.contains(reason), "{case}: {err}");
    }
}

const REKOR2: &str = "rekor2-dsse-happy-path";

#[test]
fn rekor_v2_dsse_with_timestamp_verifies() {
    let signers = verify_case(REKOR2, &bundle(REKOR2), A_TXT).unwrap();
    assert_eq!(signers, vec![format!("{ISSUER}/{IDENTITY}")]);
    // Another artifact: rejected.
    let other = format!("sha256:{}", "0".repeat(64));
    assert!(verify_case(REKOR2, &bundle(REKOR2), &other).is_err());
}

#[test]
fn rekor_v2_bundle_fails_once_altered() {
    let original: serde_json::Value = serde_json::from_slice(&bundle(REKOR2)).unwrap();
    let check = |b: &serde_json::Value, reason: &str| {
        let err = verify_case(REKOR2, &serde_json::to_vec(b).unwrap(), A_TXT).unwrap_err();
        assert!(err.contains(reason), "{err}");
    };
    // The timestamp is the only proof of when the short-lived certificate
    // signed: without it, the certificate is judged now, long expired.
    let mut b = original.clone();
    b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"] =
        serde_json::json!([]);
    check(&b, "certificate is not valid at the current time");
    // A timestamp whose signed content was altered proves nothing.
    let mut b = original.clone();
    let ts = &mut b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"][0]["signedTimestamp"];
    let mut der = STANDARD.decode(ts.as_str().unwrap()).unwrap();
    // The generation time's last digit, inside the signed TSTInfo.
    let at = der
        .windows(15)
        .position(|w| w == b"20250725195304Z")
        .unwrap();
    der[at + 13] = b'5';
    *ts = STANDARD.encode(&der).into();
    check(&b, "certificate is not valid at the current time");
    // A checkpoint for another log origin.
    let mut b = original.clone();
    let cp = &mut b["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["checkpoint"]["envelope"];
    *cp = cp
        .as_str()
        .unwrap()
        .replacen(
            "log2025-alpha1.rekor.sigstage.dev\n",
            "log2025-alpha9.rekor.sigstage.dev\n",
            1,
        )
        .into();
    check(&b, "checkpoint is for log");
    // The public-good root does not know the staging log.
    let err = verify_with_root(
        REKOR2,
        &bundle(REKOR2),
        A_TXT,
        &fixture_path("conformance/trusted_root.public_good.json"),
    )
    .unwrap_err();
    assert!(err.contains("is not in the trust root"), "{err}");
}

#[test]
fn public_good_timestamp_verifies() {
    use tagpin_verifier::TrustRoot;
    use tagpin_verifier::verify_timestamp;
    let b: serde_json::Value = serde_json::from_slice(&bundle(HAPPY)).unwrap();
    let field = |p: &str| {
        STANDARD
            .decode(b.pointer(p).unwrap().as_str().unwrap())
            .unwrap()
    };
    let ts = field(
        "/verificationMaterial/timestampVerificationData/rfc3161Timestamps/0/signedTimestamp",
    );
    let sig = field("/dsseEnvelope/signatures/0/sig");
    let root =
        TrustRoot::from_trusted_root_json(&fixture("conformance/trusted_root.public_good.json"))
            .unwrap();
    // 2026-05-13T19:47:33Z, from timestamp.sigstore.dev.
    assert_eq!(verify_timestamp(&ts, &sig, &root), Ok(1_778_701_653));
    let err = verify_timestamp(&ts, b"another signature", &root).unwrap_err();
    assert!(err.contains("not over this signature"), "{err}");
    let staging =
        TrustRoot::from_trusted_root_json(&fixture("conformance/trusted_root.staging.json"))
            .unwrap();
    let err = verify_timestamp(&ts, &sig, &staging).unwrap_err();
    assert!(err.contains("not from a trusted authority"), "{err}");
}

const TWO_STAMPS: &str = "rekor2-multiple-timestamps-one-outside-cert-validity_fail";

#[test]
fn every_timestamp_must_fall_inside_the_certificate() {
    // A message signature over a.txt, checked by its digest: the second of
    // two valid timestamps was issued after the certificate expired.
    let err = verify_case(TWO_STAMPS, &bundle(TWO_STAMPS), A_TXT).unwrap_err();
    assert!(
        err.contains("certificate was not valid at signing time"),
        "{err}"
    );
    // With only the first timestamp, the same bundle verifies.
    let mut b: serde_json::Value = serde_json::from_slice(&bundle(TWO_STAMPS)).unwrap();
    let stamps = b["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
        .as_array_mut()
        .unwrap();
    assert_eq!(stamps.len(), 2);
    stamps.truncate(1);
    let signers = verify_case(TWO_STAMPS, &serde_json::to_vec(&b).unwrap(), A_TXT).unwrap();
    assert_eq!(signers, vec![format!("{ISSUER}/{IDENTITY}")]);
    // The message digest binds the artifact.
    let other = format!("sha256:{}", "0".repeat(64));
    let err = verify_case(TWO_STAMPS, &serde_json::to_vec(&b).unwrap(), &other).unwrap_err();
    assert!(err.contains("message digest does not match"), "{err}");
}

#[test]
fn keyless_needs_a_certificate_transparency_proof_when_the_root_has_logs() {
    let mut root: serde_json::Value =
        serde_json::from_slice(&fixture("conformance/trusted_root.public_good.json")).unwrap();
    let dir = tempfile_dir();
    let write = |root: &serde_json::Value, name: &str| {
        let path = format!("{dir}/{name}");
        std::fs::write(&path, serde_json::to_vec(root).unwrap()).unwrap();
        path
    };
    // Only the log that retired in 2022: the 2026 certificate's SCT is from
    // a log this root does not trust.
    root["ctlogs"].as_array_mut().unwrap().truncate(1);
    let path = write(&root, "old-ctlog.json");
    let err = verify_with_root(HAPPY, &bundle(HAPPY), HAPPY_DIGEST, &path).unwrap_err();
    assert!(err.contains("certificate transparency"), "{err}");
    // A root without certificate transparency logs (a private CA) asks for none.
    root["ctlogs"] = serde_json::json!([]);
    let path = write(&root, "no-ctlogs.json");
    verify_with_root(HAPPY, &bundle(HAPPY), HAPPY_DIGEST, &path).unwrap();
}

fn tempfile_dir() -> String {
    let dir = std::env::temp_dir().join(format!("tagpin-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.to_string_lossy().into_owned()
}

const D_TXT: &str = "sha256:330a043220fa13e01d68a7db39c89e12b0c4c3b6a0346fe624b0903f1303b5b2";

/// The suite's older single-file assets (`test/assets/*.sigstore`): message
/// signatures over a.txt against the public-good root, and DSSE bundles over
/// d.txt against a mock trust root.
fn verify_asset(name: &str, digest: &str, root: &str) -> Result<Vec<String>, String> {
    let b = fixture(&format!("conformance/assets/{name}"));
    let root = fixture_path(&format!("conformance/{root}"));
    let yaml = format!(
        "noMatch: deny\ntrustRoots:\n  root:\n    trustedRoot: \"{root}\"\nrules:\n  - name: bundle\n    images: [\"**\"]\n    signatures:\n      anyOf:\n        - keyless: {{roots: root, issuer: \"{ISSUER}\", subject: \"{IDENTITY}\"}}\n"
    );
    let policy = policy(&yaml);
    let digest: Digest = digest.parse().unwrap();
    verify_bundle(
        &b,
        Artifact::Digest(&digest),
        policy.rule("bundle").unwrap().signatures().unwrap(),
        0,
    )
}

#[test]
fn suite_assets_verify_or_fail_for_their_reason() {
    const PG: &str = "trusted_root.public_good.json";
    const MOCK: &str = "assets/trusted_root.d.json";
    assert_eq!(
        verify_asset("a.txt.sigstore", A_TXT, PG).unwrap(),
        vec![format!("{ISSUER}/{IDENTITY}")]
    );
    assert_eq!(
        verify_asset("d.txt.good.sigstore", D_TXT, MOCK).unwrap(),
        vec![format!("{ISSUER}/{IDENTITY}")]
    );
    let failing = [
        (
            "a.txt.invalid_digest.sigstore",
            A_TXT,
            PG,
            "message digest does not match",
        ),
        (
            "a.txt.invalid_signature.sigstore",
            A_TXT,
            PG,
            "does not verify with its certificate",
        ),
        (
            "a.txt.invalid_set.sigstore",
            A_TXT,
            PG,
            "signed entry timestamp",
        ),
        (
            "a.txt.invalid_inclusion_proof.sigstore",
            A_TXT,
            PG,
            "inclusion proof",
        ),
        ("a.txt.staging.sigstore", A_TXT, PG, "not in the trust root"),
        (
            "d.txt.cert-expired.sigstore",
            D_TXT,
            MOCK,
            "not valid at signing time",
        ),
        (
            "d.txt.no-inclusion-proof.sigstore",
            D_TXT,
            MOCK,
            "inclusion proof",
        ),
        (
            "d.txt.tlog-timestamp-error.sigstore",
            D_TXT,
            MOCK,
            "not valid at signing time",
        ),
        (
            "d.txt.tlog-body-error.sigstore",
            D_TXT,
            MOCK,
            "transparency log entry",
        ),
    ];
    for (name, digest, root, reason) in failing {
        let err = verify_asset(name, digest, root).expect_err(name);
        assert!(err.contains(reason), "{name}: {err}");
    }
}

/// The suite's `rekor2-timestamp-wrong-tsa-validity-borrow_fail`, rebuilt from
/// its README on the Rekor v2 happy path (its bundle is not vendored): the
/// authority that signed the timestamp had expired, and an unrelated
/// authority without certificates covers the time. Validity is never borrowed.
#[test]
fn a_timestamp_authority_validity_is_never_borrowed() {
    let mut root: serde_json::Value =
        serde_json::from_slice(&fixture("conformance/trusted_root.staging.json")).unwrap();
    let tsas = root["timestampAuthorities"].as_array_mut().unwrap();
    tsas[0]["validFor"]["end"] = "2025-07-01T00:00:00Z".into();
    tsas.push(serde_json::json!({
        "subject": {"organization": "unrelated", "commonName": "unrelated"},
        "certChain": {"certificates": []},
        "validFor": {"start": "2025-07-01T00:00:00Z", "end": "2025-08-01T00:00:00Z"}
    }));
    let dir = tempfile_dir();
    let path = format!("{dir}/borrowed-tsa-validity.json");
    std::fs::write(&path, serde_json::to_vec(&root).unwrap()).unwrap();
    // Without a trusted time, the short-lived certificate is judged now.
    let err = verify_with_root(REKOR2, &bundle(REKOR2), A_TXT, &path).unwrap_err();
    assert!(
        err.contains("certificate is not valid at the current time"),
        "{err}"
    );
    let b: serde_json::Value = serde_json::from_slice(&bundle(REKOR2)).unwrap();
    let field = |p: &str| {
        STANDARD
            .decode(b.pointer(p).unwrap().as_str().unwrap())
            .unwrap()
    };
    let root =
        tagpin_verifier::TrustRoot::from_trusted_root_json(&std::fs::read(&path).unwrap()).unwrap();
    let err = tagpin_verifier::verify_timestamp(
        &field(
            "/verificationMaterial/timestampVerificationData/rfc3161Timestamps/0/signedTimestamp",
        ),
        &field("/dsseEnvelope/signatures/0/sig"),
        &root,
    )
    .unwrap_err();
    assert!(err.contains("not valid at the stamped time"), "{err}");
}

/// Where the whole vendored bundle-verify set lives (see its SOURCE.md).
const SUITE: &str = "conformance/bundle-verify";

/// Runs one case of the vendored set by the suite's own protocol (its
/// README.md): the case's `artifact` or `a.txt`; its `identity`/`issuer` or
/// the defaults; its `key.pub` instead of an identity; its
/// `trusted_root.json` or the public-good root. A policy that does not load
/// (a malformed trust root) is a failure like any other.
fn run_suite_case(case: &str) -> Result<Vec<String>, String> {
    run_suite_bundle(case, &suite_file(case, "bundle.sigstore.json"))
}

/// A file of a case of the vendored set.
fn suite_file(case: &str, name: &str) -> Vec<u8> {
    fixture(&format!("{SUITE}/{case}/{name}"))
}

/// Runs `bundle` (a case's bundle, possibly altered) as `case` would be run.
fn run_suite_bundle(case: &str, bundle: &[u8]) -> Result<Vec<String>, String> {
    let dir = std::path::PathBuf::from(fixture_path(&format!("{SUITE}/{case}")));
    let optional = |name: &str| std::fs::read(dir.join(name)).ok();
    let text = |name: &str, default: &str| {
        optional(name).map_or(default.to_owned(), |b| {
            String::from_utf8(b).unwrap().trim().to_owned()
        })
    };
    let artifact = optional("artifact").unwrap_or_else(|| fixture(&format!("{SUITE}/a.txt")));
    let root = if dir.join("trusted_root.json").exists() {
        dir.join("trusted_root.json").to_string_lossy().into_owned()
    } else {
        fixture_path("conformance/trusted_root.public_good.json")
    };
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let authority = if dir.join("key.pub").exists() {
        let key = dir.join("key.pub").to_string_lossy().into_owned();
        format!("key: {{file: {}}}\n          trustRoot: root", quote(&key))
    } else {
        format!(
            "keyless: {{roots: root, issuer: {}, subject: {}}}",
            quote(&text("issuer", ISSUER)),
            quote(&text("identity", IDENTITY))
        )
    };
    let yaml = format!(
        "noMatch: deny\ntrustRoots:\n  root:\n    trustedRoot: {}\nrules:\n  - name: bundle\n    images: [\"**\"]\n    signatures:\n      anyOf:\n        - {authority}\n",
        quote(&root)
    );
    let policy = try_policy(&yaml)?;
    let set = policy.rule("bundle").unwrap().signatures().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    verify_bundle(bundle, Artifact::Bytes(&artifact), set, now)
}

/// Every case directory of the vendored set, sorted.
fn suite_cases() -> Vec<String> {
    let mut cases: Vec<String> = std::fs::read_dir(fixture_path(SUITE))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    cases
}

/// What each `_fail` case of the vendored set must fail for: a fragment of
/// tagpin's message, matching the reason the case's README gives.
const SUITE_FAILURES: [(&str, &str); 49] = [
    (
        "bundle-empty-certificate-chain_fail",
        "signature carries no certificate",
    ),
    (
        "bundle-from-wrong-instance_fail",
        "is not in the trust root",
    ),
    (
        "bundle-invalid-base64-signature_fail",
        "signature is not base64",
    ),
    ("bundle-malformed-json_fail", "not a Sigstore bundle"),
    ("bundle-negative-log-index_fail", "negative log index"),
    ("bundle-unknown-version_fail", "is not supported"),
    // A shipped root is only ever an untrusted intermediate to tagpin (trust
    // anchors come from the trust root alone); this bundle fails anyway, as
    // its P-384 certificate's SHA-256 message signature does not verify.
    (
        "bundle-with-root-cert_fail",
        "does not verify with its certificate",
    ),
    (
        "checkpoint-bad-keyhint_fail",
        "no signature line carries its key name and key ID",
    ),
    (
        "checkpoint-wrong-roothash_fail",
        "checkpoint does not match the inclusion proof's tree",
    ),
    (
        "dsse-invalid-sig_fail",
        "does not verify with its certificate",
    ),
    (
        "dsse-mismatch-envelope_fail",
        "transparency log entry (dsse) records a different",
    ),
    (
        "dsse-mismatch-sig_fail",
        "transparency log entry (dsse) records a different",
    ),
    (
        "inclusion-proof-corrupted-hash_fail",
        "inclusion proof does not lead to the stated root hash",
    ),
    // The altered entry is not the one the log signed.
    (
        "incorrect-public-key_fail",
        "signed entry timestamp does not verify",
    ),
    (
        "integrated-time-in-future_fail",
        "certificate was not valid at signing time",
    ),
    (
        "intoto-expired-certificate_fail",
        "certificate was not valid at signing time",
    ),
    (
        "intoto-log-entry-mismatch_fail",
        "transparency log entry (intoto) records a different",
    ),
    (
        "intoto-missing-inclusion-proof_fail",
        "carries no inclusion proof",
    ),
    (
        "intoto-set-outside-signing-cert-validity_fail",
        "certificate was not valid at signing time",
    ),
    (
        "intoto-tsa-timestamp-outside-cert-validity_fail",
        "certificate was not valid at signing time",
    ),
    (
        "invalid-checkpoint-signature_fail",
        "checkpoint signature of the transparency log key does not verify",
    ),
    ("invalid-ct-key_fail", "certificate transparency"),
    (
        "invalid-inclusion-proof_fail",
        "inclusion proof does not lead to the stated root hash",
    ),
    (
        "managed-key-no-key_fail",
        "signature carries no certificate",
    ),
    ("managed-key-wrong-key_fail", "not a PEM public key"),
    (
        "message-digest-mismatch_fail",
        "message digest does not match",
    ),
    (
        "rekor2-checkpoint-missing-log-signature_fail",
        "not signed by the transparency log key",
    ),
    (
        "rekor2-checkpoint-missing-origin_fail",
        "checkpoint has fewer than three lines",
    ),
    (
        "rekor2-checkpoint-missing-root-hash_fail",
        "checkpoint has fewer than three lines",
    ),
    (
        "rekor2-checkpoint-missing-size_fail",
        "checkpoint has fewer than three lines",
    ),
    (
        "rekor2-checkpoint-no-matching-signature_fail",
        "checkpoint is for log",
    ),
    (
        "rekor2-dsse-invalid-sig_fail",
        "does not verify with its certificate",
    ),
    (
        "rekor2-dsse-mismatch-envelope_fail",
        "transparency log entry (hashedrekord) records a different",
    ),
    (
        "rekor2-dsse-mismatch-sig_fail",
        "transparency log entry (hashedrekord) records a different",
    ),
    (
        "rekor2-no-inclusion-proof_fail",
        "carries no inclusion proof",
    ),
    // Without a trusted timestamp a Rekor v2 entry proves no time, and the
    // short-lived certificate is judged now. Why each timestamp proves
    // nothing is checked in `suite_timestamps_fail_for_their_reason`.
    (
        "rekor2-no-timestamp_fail",
        "certificate is not valid at the current time",
    ),
    (
        "rekor2-timestamp-outside-trust-root-tsa-validity_fail",
        "certificate is not valid at the current time",
    ),
    (
        "rekor2-timestamp-outside-tsa-cert-validity_fail",
        "certificate is not valid at the current time",
    ),
    (
        "rekor2-timestamp-payload-mismatch_fail",
        "certificate is not valid at the current time",
    ),
    (
        "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail",
        "certificate is not valid at the current time",
    ),
    (
        "rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail",
        "certificate is not valid at the current time",
    ),
    // Its timestamp is base64 wrapped over lines, which tagpin does not read;
    // unwrapped, it fails for the README's reason (see the timestamp test).
    (
        "rekor2-timestamp-with-incorrect-time_fail",
        "signed timestamp is not base64",
    ),
    (
        "set-invalid-signature_fail",
        "signed entry timestamp does not verify",
    ),
    (
        "signature-mismatch_fail",
        "does not verify with its certificate",
    ),
    (
        "trust-root-tlog-missing-validity-start_fail",
        "validFor has no start",
    ),
    (
        "wrong-hashedrekord-artifact_fail",
        "transparency log entry (hashedrekord) records a different",
    ),
    (
        "wrong-hashedrekord-cert-and-sig_fail",
        "transparency log entry (hashedrekord) records a different",
    ),
    (
        "wrong-hashedrekord-entry_fail",
        "transparency log entry (hashedrekord) records a different",
    ),
    ("wrong-material_fail", "message digest does not match"),
];

/// The signer a passing case of the vendored set must report.
fn suite_signer(case: &str) -> String {
    let dir = std::path::PathBuf::from(fixture_path(&format!("{SUITE}/{case}")));
    match std::fs::read_to_string(dir.join("key.pub")) {
        Ok(pem) => tagpin_verifier::PublicKey::from_pem(&pem)
            .unwrap()
            .fingerprint(),
        Err(_) => format!("{ISSUER}/{IDENTITY}"),
    }
}

/// The whole public bundle-verify set, by the suite's protocol: every case
/// without `_fail` verifies with the expected signer, every `_fail` case
/// fails, and for the reason listed in `SUITE_FAILURES`.
#[test]
fn every_bundle_verify_case_passes() {
    let cases = suite_cases();
    assert_eq!(cases.len(), 70, "{cases:?}");
    let mut wrong = Vec::new();
    for case in &cases {
        let reason = SUITE_FAILURES.iter().find(|(c, _)| c == case).map(|r| r.1);
        match (case.ends_with("_fail"), reason, run_suite_case(case)) {
            (false, None, Ok(signers)) if signers == vec![suite_signer(case)] => {}
            (true, Some(reason), Err(e)) if e.contains(reason) => {}
            (true, None, _) | (false, Some(_), _) => {
                wrong.push(format!("{case}: listed wrongly in SUITE_FAILURES"));
            }
            (_, _, outcome) => wrong.push(format!("{case}: {outcome:?}")),
        }
    }
    let listed = SUITE_FAILURES
        .iter()
        .filter(|(c, _)| !cases.iter().any(|x| x == c));
    wrong.extend(listed.map(|(c, _)| format!("{c}: listed but not vendored")));
    assert!(
        wrong.is_empty(),
        "{} cases wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// The suite's Rekor v2 timestamp cases fail because their timestamp proves
/// no time; this checks why each proves nothing, as its README says.
#[test]
fn suite_timestamps_fail_for_their_reason() {
    use tagpin_verifier::TrustRoot;
    use tagpin_verifier::verify_timestamp;
    let stamp_and_signature = |bundle: &serde_json::Value| {
        let field = |p: &str| {
            let text = bundle
                .pointer(p)
                .unwrap()
                .as_str()
                .unwrap()
                .replace('\n', "");
            STANDARD.decode(text).unwrap()
        };
        (
            field(
                "/verificationMaterial/timestampVerificationData/rfc3161Timestamps/0/signedTimestamp",
            ),
            field("/messageSignature/signature"),
        )
    };
    let cases = [
        (
            "rekor2-timestamp-outside-trust-root-tsa-validity_fail",
            "not valid at the stamped time",
        ),
        (
            "rekor2-timestamp-outside-tsa-cert-validity_fail",
            "CertExpired",
        ),
        (
            "rekor2-timestamp-payload-mismatch_fail",
            "not over this signature",
        ),
        (
            "rekor2-timestamp-untrusted-tsa-with-embedded-cert_fail",
            "not from a trusted authority",
        ),
        (
            "rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail",
            "not from a trusted authority",
        ),
    ];
    for (case, reason) in cases {
        let root =
            TrustRoot::from_trusted_root_json(&suite_file(case, "trusted_root.json")).unwrap();
        let bundle = serde_json::from_slice(&suite_file(case, "bundle.sigstore.json")).unwrap();
        let (ts, sig) = stamp_and_signature(&bundle);
        let err = verify_timestamp(&ts, &sig, &root).unwrap_err();
        assert!(err.contains(reason), "{case}: {err}");
    }
    // A valid timestamp, wrapped over lines, for a time the short-lived
    // certificate does not cover: unwrapped, it is read and proves that time,
    // and the certificate was not valid then.
    let case = "rekor2-timestamp-with-incorrect-time_fail";
    let mut bundle: serde_json::Value =
        serde_json::from_slice(&suite_file(case, "bundle.sigstore.json")).unwrap();
    let (ts, sig) = stamp_and_signature(&bundle);
    let root = TrustRoot::from_trusted_root_json(&suite_file(case, "trusted_root.json")).unwrap();
    let at = verify_timestamp(&ts, &sig, &root).unwrap();
    let stamp = bundle
        .pointer_mut(
            "/verificationMaterial/timestampVerificationData/rfc3161Timestamps/0/signedTimestamp",
        )
        .unwrap();
    *stamp = STANDARD.encode(&ts).into();
    let err = run_suite_bundle(case, &serde_json::to_vec(&bundle).unwrap()).unwrap_err();
    assert!(
        err.contains("certificate was not valid at signing time"),
        "{case} at {at}: {err}"
    );
}

/// The signed-note rule for checkpoints: a signature line counts only under
/// the log's key name and key ID; lines of other keys are ignored; a line of
/// the log that does not verify rejects the checkpoint.
#[test]
fn a_checkpoint_signature_counts_only_under_the_logs_name_and_key_id() {
    const CHECKPOINT: &str =
        "/verificationMaterial/tlogEntries/0/inclusionProof/checkpoint/envelope";
    let with_checkpoint = |case: &str, edit: &dyn Fn(&str) -> String| {
        let mut b: serde_json::Value =
            serde_json::from_slice(&suite_file(case, "bundle.sigstore.json")).unwrap();
        let cp = b.pointer_mut(CHECKPOINT).unwrap();
        *cp = edit(cp.as_str().unwrap()).into();
        run_suite_bundle(case, &serde_json::to_vec(&b).unwrap())
    };
    // Rekor v1: with the key ID Rekor gives (the SPKI hash), the otherwise
    // unchanged signature of `checkpoint-bad-keyhint_fail` verifies; the
    // key ID alone made it fail.
    let fixed = with_checkpoint("checkpoint-bad-keyhint_fail", &|cp| {
        cp.replace(
            "\u{2014} rekor.sigstore.dev xNI9aj",
            "\u{2014} rekor.sigstore.dev wNI9aj",
        )
    });
    assert_eq!(fixed.unwrap(), vec![format!("{ISSUER}/{IDENTITY}")]);
    // Rekor v2: the log's one signature line, `— <name> <id+sig>`.
    let case = "rekor2-happy-path";
    const NAME: &str = "log2025-alpha1.rekor.sigstage.dev";
    let edit_line = |cp: &str, f: &dyn Fn(&str, Vec<u8>) -> String| -> String {
        let (text, sigs) = cp.split_once("\n\n").unwrap();
        let line = sigs.lines().find(|l| l.contains(NAME)).unwrap();
        let raw = STANDARD.decode(line.rsplit(' ').next().unwrap()).unwrap();
        format!("{text}\n\n{}", sigs.replace(line, &f(line, raw)))
    };
    let line = |name: &str, raw: &[u8]| format!("\u{2014} {name} {}", STANDARD.encode(raw));
    // Under another name (the origin line untouched): not the log's.
    let err = with_checkpoint(case, &|cp| {
        edit_line(cp, &|_, raw| {
            line("log2025-alpha9.rekor.sigstage.dev", &raw)
        })
    })
    .unwrap_err();
    assert!(
        err.contains("no signature line carries its key name and key ID"),
        "{err}"
    );
    // Under another key ID: not the log's.
    let err = with_checkpoint(case, &|cp| {
        edit_line(cp, &|_, mut raw| {
            raw[0] ^= 1;
            line(NAME, &raw)
        })
    })
    .unwrap_err();
    assert!(
        err.contains("no signature line carries its key name and key ID"),
        "{err}"
    );
    // Another key's line next to the log's is ignored, even a garbled one.
    let ok = with_checkpoint(case, &|cp| {
        edit_line(cp, &|l, mut raw| {
            raw[0] ^= 1;
            let last = raw.len() - 1;
            raw[last] ^= 1;
            format!("{l}\n{}", line(NAME, &raw))
        })
    });
    assert_eq!(ok.unwrap(), vec![format!("{ISSUER}/{IDENTITY}")]);
    // A second line under the log's name and key ID must verify too.
    let err = with_checkpoint(case, &|cp| {
        edit_line(cp, &|l, mut raw| {
            let last = raw.len() - 1;
            raw[last] ^= 1;
            format!("{l}\n{}", line(NAME, &raw))
        })
    })
    .unwrap_err();
    assert!(
        err.contains("checkpoint signature of the transparency log key does not verify"),
        "{err}"
    );
}
