//! End-to-end verification over an in-memory registry with real cosign
//! signatures, attestations and certificate fixtures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::*;
use tagpin_resolver::Digest;
use tagpin_verifier::{
    ArtifactSource, CacheTtl, CompiledPolicy, Outcome, VerdictCache, Verifier, VerifyError,
    verify_uncached,
};

const KEYED: &str = r#"
noMatch: deny
rules:
  - name: team
    images: ["127.0.0.1:5443/team/*"]
    signatures:
      anyOf:
        - key: {file: "$FIXTURES/cosign.pub"}
          tlog: waived
"#;

async fn run(reg: &MemoryRegistry, policy: &CompiledPolicy) -> tagpin_verifier::Verdict {
    verify_uncached(reg, policy, &image(), &d1()).await.unwrap()
}

fn signed_registry(payload: &str, sig: &str) -> MemoryRegistry {
    let reg = MemoryRegistry::default();
    let layer = sig_layer(&reg, &fixture(payload), &fixture_text(sig), json!({}));
    reg.put_v2_tag(&d1(), "sig", vec![layer]);
    reg
}

fn cosign_fingerprint() -> String {
    tagpin_verifier::PublicKey::from_pem(&fixture_text("cosign.pub"))
        .unwrap()
        .fingerprint()
}

#[tokio::test]
async fn keyed_v2_signature_is_verified() {
    let reg = signed_registry("payload.json", "payload.json.sig");
    let v = run(&reg, &policy(KEYED)).await;
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
    assert_eq!(v.rule, "team");
    assert_eq!(v.signers, vec![cosign_fingerprint()]);
    assert!(v.reason.is_none());
}

#[tokio::test]
async fn unsigned_image_is_rejected_as_unsigned() {
    let reg = MemoryRegistry::default();
    let v = run(&reg, &policy(KEYED)).await;
    assert_eq!(v.outcome, Outcome::Failed);
    let reason = v.reason.unwrap();
    assert!(reason.contains("not signed"), "{reason}");
    assert!(reason.contains(&d1().to_string()), "{reason}");
    assert!(reason.contains("127.0.0.1:5443/team/app:v1"), "{reason}");
    assert!(reason.contains("team"), "{reason}");
}

#[tokio::test]
async fn wrong_key_is_rejected() {
    let reg = signed_registry("payload.json", "payload.json.sig");
    let p = policy(&KEYED.replace("cosign.pub", "other.pub"));
    let v = run(&reg, &p).await;
    assert_eq!(v.outcome, Outcome::Failed);
    assert!(v.reason.unwrap().contains("does not verify with key"));
}

#[tokio::test]
async fn tampered_payload_is_rejected() {
    let reg = signed_registry("payload-tampered.json", "payload.json.sig");
    let v = run(&reg, &policy(KEYED)).await;
    assert_eq!(v.outcome, Outcome::Failed);
    assert!(v.reason.unwrap().contains("signature does not verify"));
}

#[tokio::test]
async fn signature_copied_from_another_digest_is_rejected() {
    let reg = signed_registry("payload-other.json", "payload-other.json.sig");
    let v = run(&reg, &policy(KEYED)).await;
    assert_eq!(v.outcome, Outcome::Failed);
    let reason = v.reason.unwrap();
    assert!(
        reason.contains(&format!("signs digest {}, not {}", d2(), d1())),
        "{reason}"
    );
}

#[tokio::test]
async fn docker_reference_must_name_the_repository_or_an_equivalent() {
    let reg = signed_registry("payload-elsewhere.json", "payload-elsewhere.json.sig");
    let v = run(&reg, &policy(KEYED)).await;
    assert_eq!(v.outcome, Outcome::Failed);
    assert!(v.reason.unwrap().contains("names repository"));
    let mirrored = KEYED.replace(
        "noMatch: deny",
        "noMatch: deny\nequivalentRepositories:\n  - [127.0.0.1:5443/elsewhere/app, 127.0.0.1:5443/team/app]",
    );
    let v = run(&reg, &policy(&mirrored)).await;
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
}

#[tokio::test]
async fn registry_error_is_not_reported_as_unsigned() {
    let reg = signed_registry("payload.json", "payload.json.sig");
    *reg.fail.lock().unwrap() = Some("connection refused".into());
    let err = verify_uncached(&reg, &policy(KEYED), &image(), &d1())
        .await
        .unwrap_err();
    let VerifyError::Registry { source, digest, .. } = &err;
    assert_eq!(digest, &d1());
    assert_eq!(source.cause, "connection refused");
    let text = err.to_string();
    assert!(
        text.contains("registry error") && !text.contains("not signed"),
        "{text}"
    );
}

#[tokio::test]
async fn one_signature_must_meet_key_and_annotations_together() {
    let reg = MemoryRegistry::default();
    // Layer 1: right key, annotation env=prod. Layer 2: wrong signature, env=prod.
    let good = sig_layer(
        &reg,
        &fixture("payload.json"),
        &fixture_text("payload.json.sig"),
        json!({}),
    );
    reg.put_v2_tag(&d1(), "sig", vec![good]);
    let with = |v: &str| {
        KEYED.replace(
            "tlog: waived",
            &format!("tlog: waived\n          annotations: {{env: {v}}}"),
        )
    };
    assert_eq!(
        run(&reg, &policy(&with("prod"))).await.outcome,
        Outcome::Verified
    );
    let v = run(&reg, &policy(&with("staging"))).await;
    assert_eq!(v.outcome, Outcome::Failed);
    assert!(
        v.reason
            .unwrap()
            .contains("annotation env=\"staging\" is missing")
    );
}

#[tokio::test]
async fn p384_ed25519_and_rsa_keys_verify() {
    let g = generated();
    for alg in ["p384", "ed25519", "rsa"] {
        let reg = MemoryRegistry::default();
        let sig = g["keys"][alg]["signature"].as_str().unwrap();
        let layer = sig_layer(&reg, &fixture("payload.json"), sig, json!({}));
        reg.put_v2_tag(&d1(), "sig", vec![layer]);
        let pem = g["keys"][alg]["pub"].as_str().unwrap();
        let yaml = format!(
            "noMatch: deny\nrules:\n  - name: r\n    images: [\"**\"]\n    signatures:\n      anyOf:\n        - key: {{pem: {}}}\n          tlog: waived\n",
            serde_json::to_string(pem).unwrap()
        );
        let v = run(&reg, &policy(&yaml)).await;
        assert_eq!(v.outcome, Outcome::Verified, "{alg}: {v:?}");
    }
}

#[tokio::test]
async fn threshold_counts_distinct_authorities() {
    let g = generated();
    let reg = MemoryRegistry::default();
    let a = sig_layer(
        &reg,
        &fixture("payload.json"),
        &fixture_text("payload.json.sig"),
        json!({}),
    );
    let b = sig_layer(
        &reg,
        &fixture("payload.json"),
        g["keys"]["p384"]["signature"].as_str().unwrap(),
        json!({}),
    );
    reg.put_v2_tag(&d1(), "sig", vec![a, b]);
    let p384 = serde_json::to_string(g["keys"]["p384"]["pub"].as_str().unwrap()).unwrap();
    let yaml = |second: &str| {
        format!(
            "noMatch: deny\nrules:\n  - name: two\n    images: [\"**\"]\n    signatures:\n      threshold:\n        count: 2\n        of:\n          - key: {{file: \"$FIXTURES/cosign.pub\"}}\n            tlog: waived\n          - key: {second}\n            tlog: waived\n"
        )
    };
    let v = run(&reg, &policy(&yaml(&format!("{{pem: {p384}}}")))).await;
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
    assert_eq!(v.signers.len(), 2);
    let v = run(&reg, &policy(&yaml("{file: \"$FIXTURES/other.pub\"}"))).await;
    assert_eq!(v.outcome, Outcome::Failed);
    assert!(
        v.reason
            .unwrap()
            .contains("1 of 2 authorities satisfied, 2 required")
    );
}

const ATTESTED: &str = r#"
noMatch: deny
rules:
  - name: provenance
    images: ["127.0.0.1:5443/team/app"]
    attestations:
      - predicateType: https://slsa.dev/provenance/v1
        conditions:
          - predicate.runDetails.builder.id == "https://github.com/tagpin/app/.github/workflows/release.yml@refs/heads/main"
        signedBy:
          anyOf:
            - key: {file: "$FIXTURES/cosign.pub"}
              tlog: waived
"#;

fn attested_registry(envelope: &str) -> MemoryRegistry {
    let reg = MemoryRegistry::default();
    let layer = att_layer(&reg, &fixture(envelope));
    reg.put_v2_tag(&d1(), "att", vec![layer]);
    reg
}

#[tokio::test]
async fn slsa_v1_attestation_with_true_condition_is_verified() {
    let reg = attested_registry("att-slsa-v1.json");
    let v = run(&reg, &policy(ATTESTED)).await;
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
    assert_eq!(v.attestations, vec!["https://slsa.dev/provenance/v1"]);
    assert_eq!(v.signers, vec![cosign_fingerprint()]);
}

#[tokio::test]
async fn false_cel_condition_is_rejected() {
    let reg = attested_registry("att-slsa-v1.json");
    let p = policy(&ATTESTED.replace("refs/heads/main\"", "refs/heads/dev\""));
    let v = run(&reg, &p).await;
    assert_eq!(v.outcome, Outcome::Failed);
    let reason = v.reason.unwrap();
    assert!(reason.contains("is false"), "{reason}");
}

#[tokio::test]
async fn slsa_v02_predicate_uses_builder_id() {
    let reg = attested_registry("att-slsa-v02.json");
    let p = policy(
        &ATTESTED
            .replace(
                "https://slsa.dev/provenance/v1",
                "https://slsa.dev/provenance/v0.2",
            )
            .replace("predicate.runDetails.builder.id", "predicate.builder.id"),
    );
    let v = run(&reg, &p).await;
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
}

#[tokio::test]
async fn attestation_about_another_digest_is_rejected() {
    let reg = attested_registry("att-slsa-v1-other.json");
    let v = run(&reg, &policy(ATTESTED)).await;
    assert_eq!(v.outcome, Outcome::Failed);
    assert!(v.reason.unwrap().contains("does not name"));
}

#[tokio::test]
async fn missing_attestation_is_named() {
    let reg = signed_registry("payload.json", "payload.json.sig");
    let v = run(&reg, &policy(ATTESTED)).await;
    assert_eq!(v.outcome, Outcome::Failed);
    assert!(v.reason.unwrap().contains("no attestation of type"));
}

#[tokio::test]
async fn v3_referrer_bundles_carry_signatures_and_attestations() {
    let reg = MemoryRegistry::default();
    reg.put_bundle_referrers(
        &d1(),
        &[
            dsse_bundle(&fixture("sign-v3.json")),
            dsse_bundle(&fixture("att-slsa-v1.json")),
        ],
    );
    let yaml = ATTESTED.replace(
        "    attestations:",
        "    signatures:\n      anyOf:\n        - key: {file: \"$FIXTURES/cosign.pub\"}\n          tlog: waived\n    attestations:",
    );
    let v = run(&reg, &policy(&yaml)).await;
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
    assert_eq!(v.attestations, vec!["https://slsa.dev/provenance/v1"]);
    // An attestation alone is not an image signature.
    let reg = MemoryRegistry::default();
    reg.put_bundle_referrers(&d1(), &[dsse_bundle(&fixture("att-slsa-v1.json"))]);
    let v = run(&reg, &policy(&yaml)).await;
    assert_eq!(v.outcome, Outcome::Failed, "{v:?}");
}

fn keyless_policy(extra: &str) -> String {
    format!(
        r#"
noMatch: deny
trustRoots:
  test:
    trustedRoot: "$FIXTURES/trusted_root.json"
rules:
  - name: keyless
    images: ["127.0.0.1:5443/team/*"]
    signatures:
      anyOf:
        - keyless:
            roots: test
{extra}
"#
    )
}

const IDENTITY: &str = "            issuer: https://token.actions.githubusercontent.com\n            subject: https://github.com/tagpin/app/.github/workflows/release.yml@refs/heads/main";

fn keyless_registry(which: &str, tamper_set: bool) -> MemoryRegistry {
    let g = generated();
    let k = &g[which];
    let mut bundle = k["bundle"].clone();
    if tamper_set {
        bundle["Payload"]["logIndex"] = json!(1);
    }
    let reg = MemoryRegistry::default();
    let layer = sig_layer(
        &reg,
        &fixture("payload.json"),
        k["signature"].as_str().unwrap(),
        json!({
            "dev.sigstore.cosign/certificate": k["certificate"],
            "dev.sigstore.cosign/chain": k["chain"],
            "dev.sigstore.cosign/bundle": serde_json::to_string(&bundle).unwrap(),
        }),
    );
    reg.put_v2_tag(&d1(), "sig", vec![layer]);
    reg
}

#[tokio::test]
async fn keyless_signature_with_fulcio_identity_and_set_is_verified() {
    let reg = keyless_registry("trusted", false);
    let v = run(&reg, &policy(&keyless_policy(IDENTITY))).await;
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
    assert_eq!(
        v.signers,
        vec![
            "https://token.actions.githubusercontent.com/https://github.com/tagpin/app/.github/workflows/release.yml@refs/heads/main"
        ]
    );
    let regex = IDENTITY.replace(
        "subject: https://github.com/tagpin/app/.github/workflows/release.yml@refs/heads/main",
        "subjectRegExp: https://github\\.com/tagpin/.*",
    );
    let v = run(&reg, &policy(&keyless_policy(&regex))).await;
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
}

#[tokio::test]
async fn identity_or_issuer_mismatch_is_rejected() {
    let reg = keyless_registry("trusted", false);
    let wrong_subject = IDENTITY.replace("refs/heads/main", "refs/heads/dev");
    let v = run(&reg, &policy(&keyless_policy(&wrong_subject))).await;
    assert_eq!(v.outcome, Outcome::Failed);
    assert!(v.reason.unwrap().contains("certificate subject"));
    let wrong_issuer = IDENTITY.replace("token.actions", "accounts.example");
    let v = run(&reg, &policy(&keyless_policy(&wrong_issuer))).await;
    assert_eq!(v.outcome, Outcome::Failed);
    assert!(v.reason.unwrap().contains("certificate issuer"));
    // A regex is anchored: a prefix match is not enough.
    let prefix = IDENTITY.replace(
        "subject: https://github.com/tagpin/app/.github/workflows/release.yml@refs/heads/main",
        "subjectRegExp: https://github\\.com/tagpin",
    );
    let v = run(&reg, &policy(&keyless_policy(&prefix))).await;
    assert_eq!(v.outcome, Outcome::Failed);
}

#[tokio::test]
async fn untrusted_certificate_chain_is_rejected() {
    let reg = keyless_registry("untrusted", false);
    let v = run(&reg, &policy(&keyless_policy(IDENTITY))).await;
    assert_eq!(v.outcome, Outcome::Failed);
    let reason = v.reason.unwrap();
    assert!(
        reason.contains("does not chain to a trusted root"),
        "{reason}"
    );
}

#[tokio::test]
async fn tampered_transparency_log_proof_is_rejected() {
    let reg = keyless_registry("trusted", true);
    let v = run(&reg, &policy(&keyless_policy(IDENTITY))).await;
    assert_eq!(v.outcome, Outcome::Failed);
    assert!(
        v.reason
            .unwrap()
            .contains("signed entry timestamp does not verify")
    );
}

#[tokio::test]
async fn private_ca_with_waived_tlog_is_verified() {
    let reg = keyless_registry("trusted", false);
    let yaml = keyless_policy(&format!("{IDENTITY}\n          tlog: waived")).replace(
        "    trustedRoot: \"$FIXTURES/trusted_root.json\"",
        "    caFile: \"$FIXTURES/ca-root.pem\"",
    );
    let v = run(&reg, &policy(&yaml)).await;
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
}

#[tokio::test]
async fn keyed_signature_with_required_tlog_needs_a_log_entry() {
    let reg = signed_registry("payload.json", "payload.json.sig");
    let yaml = KEYED
        .replace("tlog: waived", "trustRoot: test")
        .replace(
            "noMatch: deny",
            "noMatch: deny\ntrustRoots:\n  test:\n    rekorKeys:\n      - |\n        REKOR",
        )
        .replace(
            "REKOR",
            &fixture_text("rekor.pub").trim().replace('\n', "\n        "),
        );
    let v = run(&reg, &policy(&yaml)).await;
    assert_eq!(v.outcome, Outcome::Failed);
    assert!(v.reason.unwrap().contains("no transparency-log entry"));
}

const NO_MATCH: &str = r#"
noMatch: MODE
rules:
  - name: other
    images: ["reg.example/**"]
    signatures:
      anyOf:
        - key: {file: "$FIXTURES/cosign.pub"}
          tlog: waived
"#;

#[tokio::test]
async fn unmatched_images_follow_no_match() {
    let reg = MemoryRegistry::default();
    for (mode, outcome) in [
        ("allow", Outcome::NoRuleMatchedAllowed),
        ("warn", Outcome::NoRuleMatchedWarn),
        ("deny", Outcome::NoRuleMatchedDenied),
    ] {
        let v = run(&reg, &policy(&NO_MATCH.replace("MODE", mode))).await;
        assert_eq!(v.outcome, outcome);
        assert_eq!(v.outcome.admits(), mode != "deny");
    }
}

#[tokio::test]
async fn most_specific_rule_wins() {
    let reg = signed_registry("payload.json", "payload.json.sig");
    let yaml = r#"
noMatch: deny
rules:
  - name: broad
    images: ["**"]
    signatures:
      anyOf:
        - key: {file: "$FIXTURES/other.pub"}
          tlog: waived
  - name: exact
    images: ["127.0.0.1:5443/team/app"]
    signatures:
      anyOf:
        - key: {file: "$FIXTURES/cosign.pub"}
          tlog: waived
"#;
    let v = run(&reg, &policy(yaml)).await;
    assert_eq!(v.rule, "exact");
    assert_eq!(v.outcome, Outcome::Verified);
}

#[tokio::test]
async fn index_signature_required_unless_platform_signatures_accepted() {
    let reg = MemoryRegistry::default();
    // An index whose only platform manifest is d1, signed; the index is not.
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d1().to_string(), "size": 1, "platform": {"architecture": "amd64", "os": "linux"}}],
    });
    let index_digest = reg.put_manifest(
        None,
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&index).unwrap(),
    );
    let layer = sig_layer(
        &reg,
        &fixture("payload.json"),
        &fixture_text("payload.json.sig"),
        json!({}),
    );
    reg.put_v2_tag(&d1(), "sig", vec![layer]);
    let v = verify_uncached(&reg, &policy(KEYED), &image(), &index_digest)
        .await
        .unwrap();
    assert_eq!(v.outcome, Outcome::Failed);
    let accepting = KEYED.replace(
        "noMatch: deny",
        "noMatch: deny\nacceptPlatformSignatures: true",
    );
    let v = verify_uncached(&reg, &policy(&accepting), &image(), &index_digest)
        .await
        .unwrap();
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
}

#[tokio::test]
async fn verdicts_are_cached_by_digest_and_policy_version() {
    let reg = signed_registry("payload.json", "payload.json.sig");
    let verifier = Verifier::new(reg);
    let p = policy(KEYED);
    let v = verifier.verify(&p, &image(), &d1()).await.unwrap();
    assert_eq!(v.outcome, Outcome::Verified);
    // The signature disappears: the cached success still answers for d1...
    verifier
        .source()
        .delete_tag(&format!("sha256-{}.sig", d1().hex()));
    let v = verifier.verify(&p, &image(), &d1()).await.unwrap();
    assert_eq!(v.outcome, Outcome::Verified);
    // ...but never for another digest (a moved tag), nor under another policy.
    let v = verifier.verify(&p, &image(), &d2()).await.unwrap();
    assert_eq!(v.outcome, Outcome::Failed);
    let p2 = policy(&KEYED.replace("name: team", "name: team2"));
    assert_ne!(p.version(), p2.version());
    let v = verifier.verify(&p2, &image(), &d1()).await.unwrap();
    assert_eq!(v.outcome, Outcome::Failed);
}

#[tokio::test]
async fn failures_are_not_cached_beyond_their_ttl() {
    let reg = MemoryRegistry::default();
    let cache = VerdictCache::new(
        CacheTtl {
            success: std::time::Duration::from_secs(300),
            failure: std::time::Duration::ZERO,
        },
        100,
    );
    let verifier = Verifier::with_cache(reg, cache);
    let p = policy(KEYED);
    assert_eq!(
        verifier.verify(&p, &image(), &d1()).await.unwrap().outcome,
        Outcome::Failed
    );
    let layer = sig_layer(
        verifier.source(),
        &fixture("payload.json"),
        &fixture_text("payload.json.sig"),
        json!({}),
    );
    verifier.source().put_v2_tag(&d1(), "sig", vec![layer]);
    assert_eq!(
        verifier.verify(&p, &image(), &d1()).await.unwrap().outcome,
        Outcome::Verified
    );
}

const CAPTURED: &str = r#"
noMatch: deny
rules:
  - name: captured
    images: ["127.0.0.1:5080/tagpin-verifier-fixtures/**"]
    signatures:
      anyOf:
        - key: {file: "$FIXTURES/captured/cosign.pub"}
          tlog: waived
    attestations:
      - predicateType: https://slsa.dev/provenance/v1
        conditions:
          - predicate.runDetails.builder.id.startsWith("https://github.com/tagpin/")
        signedBy:
          anyOf:
            - key: {file: "$FIXTURES/captured/cosign.pub"}
              tlog: waived
"#;

#[tokio::test]
async fn real_cosign_v2_and_v3_layouts_verify() {
    let reg = MemoryRegistry::captured();
    let (image, v2, v3, _, oci11) = captured_images();
    let p = policy(CAPTURED);
    for (layout, digest) in [("v2", &v2), ("v3", &v3), ("v2 OCI 1.1 mode", &oci11)] {
        let v = verify_uncached(&reg, &p, &image, digest).await.unwrap();
        assert_eq!(v.outcome, Outcome::Verified, "{layout}: {v:?}");
        assert_eq!(
            v.attestations,
            vec!["https://slsa.dev/provenance/v1"],
            "{layout}"
        );
        assert_eq!(v.signers.len(), 1, "{layout}");
    }
    // cosign -a env=prod on the v2 signature is checked with the key.
    let annotated = CAPTURED.replacen(
        "tlog: waived",
        "tlog: waived\n          annotations: {env: prod}",
        1,
    );
    let v = verify_uncached(&reg, &policy(&annotated), &image, &v2)
        .await
        .unwrap();
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
    // Another key is rejected on both layouts.
    let wrong_key = CAPTURED.replace("captured/cosign.pub", "cosign.pub");
    for digest in [&v2, &v3, &oci11] {
        let v = verify_uncached(&reg, &policy(&wrong_key), &image, digest)
            .await
            .unwrap();
        assert_eq!(v.outcome, Outcome::Failed);
    }
}

#[tokio::test]
async fn v3_message_signature_over_the_manifest_verifies() {
    let reg = MemoryRegistry::default();
    reg.put_manifest(
        None,
        "application/vnd.oci.image.manifest.v1+json",
        &fixture("manifest.json"),
    );
    reg.put_bundle_referrers(&d1(), &[fixture("manifest.json.sigstore.json")]);
    let v = run(&reg, &policy(KEYED)).await;
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
    // The same bundle attached to another image does not sign that image.
    let reg = MemoryRegistry::default();
    reg.put_manifest(
        None,
        "application/vnd.oci.image.manifest.v1+json",
        &fixture("manifest-other.json"),
    );
    reg.put_bundle_referrers(&d2(), &[fixture("manifest.json.sigstore.json")]);
    let v = verify_uncached(&reg, &policy(KEYED), &image(), &d2())
        .await
        .unwrap();
    assert_eq!(v.outcome, Outcome::Failed);
    let reason = v.reason.unwrap();
    assert!(reason.contains("message digest does not match"), "{reason}");
}

#[tokio::test]
async fn real_cosign_signature_with_test_ca_certificate_is_matched_by_identity() {
    let reg = MemoryRegistry::captured();
    let (image, _, _, ca, _) = captured_images();
    let yaml = |subject: &str, root: &str| {
        format!(
            r#"
noMatch: deny
trustRoots:
  corp:
    caFile: "$FIXTURES/{root}"
rules:
  - name: ca
    images: ["127.0.0.1:5080/tagpin-verifier-fixtures/app"]
    signatures:
      anyOf:
        - keyless:
            roots: corp
            issuer: https://token.actions.githubusercontent.com
            subject: {subject}
          tlog: waived
    attestations:
      - predicateType: https://slsa.dev/provenance/v1
        signedBy:
          anyOf:
            - keyless:
                roots: corp
                issuer: https://token.actions.githubusercontent.com
                subject: {subject}
              tlog: waived
"#
        )
    };
    let subject = "https://github.com/tagpin/app/.github/workflows/release.yml@refs/heads/main";
    let v = verify_uncached(
        &reg,
        &policy(&yaml(subject, "captured/ca-root.pem")),
        &image,
        &ca,
    )
    .await
    .unwrap();
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
    assert_eq!(
        v.signers,
        vec![format!(
            "https://token.actions.githubusercontent.com/{subject}"
        )]
    );
    let v = verify_uncached(
        &reg,
        &policy(&yaml(
            "https://github.com/tagpin/other",
            "captured/ca-root.pem",
        )),
        &image,
        &ca,
    )
    .await
    .unwrap();
    assert_eq!(v.outcome, Outcome::Failed);
    let v = verify_uncached(
        &reg,
        &policy(&yaml(subject, "ca-untrusted.pem")),
        &image,
        &ca,
    )
    .await
    .unwrap();
    assert_eq!(v.outcome, Outcome::Failed);
    assert!(
        v.reason
            .unwrap()
            .contains("does not chain to a trusted root")
    );
}

// A message signature binds to the image it is attached to.

/// The attack: a trusted key once signed the empty message (by mistake, or
/// a test run of a signing tool). That one bundle, without a message digest,
/// is attached as a referrer to an image the key never signed.
#[tokio::test]
async fn empty_message_bundle_does_not_sign_an_unsigned_image() {
    let key = TestKey::new();
    let bundle = message_bundle(&key.sign(b""), None);
    let reg = MemoryRegistry::default();
    let unsigned = reg.put_image("never signed");
    reg.put_bundle_referrers(&unsigned, &[bundle]);
    let v = verify_uncached(&reg, &policy(&key.policy()), &image(), &unsigned)
        .await
        .unwrap();
    assert_eq!(v.outcome, Outcome::Failed, "{v:?}");
    assert!(v.signers.is_empty());
    let reason = v.reason.unwrap();
    assert!(
        reason.contains("signature does not verify with key")
            && reason.contains(&format!("over {unsigned} (the artifact it is attached to)")),
        "{reason}"
    );
}

/// Without a message digest a bundle still signs the manifest's bytes: it
/// verifies for the image it signed and for no other.
#[tokio::test]
async fn message_bundle_without_digest_is_checked_over_the_manifest() {
    let key = TestKey::new();
    let reg = MemoryRegistry::default();
    let signed = reg.put_image("signed");
    let manifest = reg.manifest(&image(), &signed.to_string()).await.unwrap();
    let bundle = message_bundle(&key.sign(&manifest.unwrap().bytes), None);
    reg.put_bundle_referrers(&signed, std::slice::from_ref(&bundle));
    let p = policy(&key.policy());
    let v = verify_uncached(&reg, &p, &image(), &signed).await.unwrap();
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
    let other = reg.put_image("other");
    reg.put_bundle_referrers(&other, &[bundle]);
    let v = verify_uncached(&reg, &p, &image(), &other).await.unwrap();
    assert_eq!(v.outcome, Outcome::Failed, "{v:?}");
}

/// A subject manifest the registry serves with bytes that do not hash to
/// its digest signs nothing.
#[tokio::test]
async fn message_bundle_needs_the_subject_manifest_bytes() {
    let key = TestKey::new();
    let reg = MemoryRegistry::default();
    let missing = Digest::sha256(b"not stored");
    reg.put_bundle_referrers(&missing, &[message_bundle(&key.sign(b"x"), None)]);
    let v = verify_uncached(&reg, &policy(&key.policy()), &image(), &missing)
        .await
        .unwrap();
    assert_eq!(v.outcome, Outcome::Failed);
    let reason = v.reason.unwrap();
    assert!(reason.contains("is not found"), "{reason}");
}

/// A registry that serves other bytes under the image's digest cannot make
/// a signature over those bytes sign the image.
#[tokio::test]
async fn message_bundle_over_bytes_that_are_not_the_digest_is_refused() {
    let key = TestKey::new();
    let reg = MemoryRegistry::default();
    let image_digest = Digest::sha256(b"the real manifest");
    let other = b"{\"schemaVersion\":2}";
    reg.put_raw(
        &image_digest.to_string(),
        "application/vnd.oci.image.manifest.v1+json",
        other,
    );
    reg.put_bundle_referrers(&image_digest, &[message_bundle(&key.sign(other), None)]);
    let v = verify_uncached(&reg, &policy(&key.policy()), &image(), &image_digest)
        .await
        .unwrap();
    assert_eq!(v.outcome, Outcome::Failed, "{v:?}");
    let reason = v.reason.unwrap();
    assert!(reason.contains("does not hash to it"), "{reason}");
}

/// The same attack through the standalone bundle check: an empty-message
/// bundle verifies no artifact, by bytes or by digest.
#[test]
fn empty_message_bundle_verifies_no_artifact() {
    use tagpin_verifier::{Artifact, verify_bundle};
    let key = TestKey::new();
    let p = policy(&key.policy());
    let set = p.rule("r").unwrap().signatures().unwrap();
    let manifest = fixture("manifest.json");
    let empty = message_bundle(&key.sign(b""), None);
    let now = 1_800_000_000;
    let err = verify_bundle(&empty, Artifact::Bytes(&manifest), set, now).unwrap_err();
    assert!(err.contains("signature does not verify"), "{err}");
    let err = verify_bundle(&empty, Artifact::Digest(&d1()), set, now).unwrap_err();
    assert!(err.contains("signature does not verify"), "{err}");
    // The real signature over the manifest verifies both ways.
    let good = message_bundle(&key.sign(&manifest), None);
    assert!(verify_bundle(&good, Artifact::Bytes(&manifest), set, now).is_ok());
    assert!(verify_bundle(&good, Artifact::Digest(&d1()), set, now).is_ok());
    assert!(verify_bundle(&good, Artifact::Digest(&d2()), set, now).is_err());
}

// Platform signatures: every runnable platform, and at least one.

fn accepting_platforms(key: &TestKey) -> String {
    key.policy().replace(
        "noMatch: deny",
        "noMatch: deny\nacceptPlatformSignatures: true",
    )
}

/// Signs image manifest `digest` with `key` (message-signature referrer).
async fn sign_image(reg: &MemoryRegistry, key: &TestKey, digest: &Digest) {
    let manifest = reg.manifest(&image(), &digest.to_string()).await.unwrap();
    let bundle = message_bundle(&key.sign(&manifest.unwrap().bytes), None);
    reg.put_bundle_referrers(digest, &[bundle]);
}

/// The attack: an unsigned amd64 image annotated as a build attestation was
/// skipped, and an index of skipped entries verified with no signer.
#[tokio::test]
async fn annotated_unsigned_platform_is_verified_not_skipped() {
    let key = TestKey::new();
    let reg = MemoryRegistry::default();
    let amd64 = reg.put_image("amd64, unsigned");
    let index = reg.put_index(vec![index_entry(
        &amd64,
        "linux",
        "amd64",
        json!({"vnd.docker.reference.type": "attestation-manifest"}),
    )]);
    let p = policy(&accepting_platforms(&key));
    let v = verify_uncached(&reg, &p, &image(), &index).await.unwrap();
    assert_eq!(v.outcome, Outcome::Failed, "{v:?}");
    let reason = v.reason.unwrap();
    assert!(
        reason.contains(&format!("platform manifest {amd64}")),
        "{reason}"
    );
}

/// Build attestations (`unknown/unknown` and annotated) are skipped, but an
/// index needs at least one runnable platform, and every one must verify.
#[tokio::test]
async fn platform_signatures_need_every_runnable_platform() {
    let key = TestKey::new();
    let reg = MemoryRegistry::default();
    let attestation = json!({"vnd.docker.reference.type": "attestation-manifest"});
    let build = reg.put_image("build attestation");
    let only_attestations = reg.put_index(vec![index_entry(
        &build,
        "unknown",
        "unknown",
        attestation.clone(),
    )]);
    let p = policy(&accepting_platforms(&key));
    let v = verify_uncached(&reg, &p, &image(), &only_attestations)
        .await
        .unwrap();
    assert_eq!(v.outcome, Outcome::Failed, "{v:?}");
    assert!(v.reason.unwrap().contains("no runnable platform"));
    let amd64 = reg.put_image("amd64");
    let arm64 = reg.put_image("arm64");
    sign_image(&reg, &key, &amd64).await;
    let entries = vec![
        index_entry(&amd64, "linux", "amd64", json!({})),
        index_entry(&build, "unknown", "unknown", attestation),
    ];
    let index = reg.put_index(entries.clone());
    let v = verify_uncached(&reg, &p, &image(), &index).await.unwrap();
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
    assert_eq!(v.signers.len(), 1);
    let mut with_unsigned = entries;
    with_unsigned.push(index_entry(&arm64, "linux", "arm64", json!({})));
    let index = reg.put_index(with_unsigned);
    let v = verify_uncached(&reg, &p, &image(), &index).await.unwrap();
    assert_eq!(v.outcome, Outcome::Failed, "{v:?}");
}

// Thresholds count distinct signatures.

fn two_identities(combination: &str) -> String {
    keyless_policy("").replace(
        "      anyOf:\n        - keyless:\n            roots: test\n",
        &format!(
            "      {combination}\n          - keyless:\n              roots: test\n              issuer: https://token.actions.githubusercontent.com\n              subject: https://github.com/tagpin/app/.github/workflows/release.yml@refs/heads/main\n          - keyless:\n              roots: test\n              issuer: https://token.actions.githubusercontent.com\n              subjectRegExp: https://github\\.com/tagpin/.*\n"
        ),
    )
}

/// The attack: one signature met both a `subject` and a `subjectRegExp`
/// authority and passed `threshold: 2` (and `allOf`) alone.
#[tokio::test]
async fn one_signature_does_not_meet_threshold_two() {
    let reg = keyless_registry("trusted", false);
    for combination in ["threshold:\n        count: 2\n        of:", "allOf:"] {
        let yaml = two_identities(combination);
        let v = run(&reg, &policy(&yaml)).await;
        assert_eq!(v.outcome, Outcome::Failed, "{combination}: {v:?}");
        let reason = v.reason.unwrap();
        assert!(
            reason.contains("1 of 2 authorities satisfied, 2 required")
                && reason.contains("counted for other authorities"),
            "{reason}"
        );
        // One of the two is enough for anyOf.
        let any = yaml.replace(combination, "anyOf:");
        assert_eq!(run(&reg, &policy(&any)).await.outcome, Outcome::Verified);
    }
}

/// A copy of the signature (a second layer with the same bytes) is the same
/// signature, not a second one.
#[tokio::test]
async fn a_copied_signature_counts_once() {
    let g = generated();
    let k = &g["trusted"];
    let reg = MemoryRegistry::default();
    let annotations = json!({
        "dev.sigstore.cosign/certificate": k["certificate"],
        "dev.sigstore.cosign/chain": k["chain"],
        "dev.sigstore.cosign/bundle": serde_json::to_string(&k["bundle"]).unwrap(),
    });
    let layer = |reg: &MemoryRegistry| {
        sig_layer(
            reg,
            &fixture("payload.json"),
            k["signature"].as_str().unwrap(),
            annotations.clone(),
        )
    };
    let layers = vec![layer(&reg), layer(&reg)];
    reg.put_v2_tag(&d1(), "sig", layers);
    let yaml = two_identities("threshold:\n        count: 2\n        of:");
    let v = run(&reg, &policy(&yaml)).await;
    assert_eq!(v.outcome, Outcome::Failed, "{v:?}");
}

/// Without a proven signing time (`tlog: waived`, no timestamp) an expired
/// certificate is said to be checked at the current time.
#[test]
fn expired_certificate_without_signing_time_is_checked_now() {
    use tagpin_verifier::{Artifact, verify_bundle};
    let g = generated();
    let k = &g["trusted"];
    let der = |pem_text: &str| b64(pem::parse(pem_text).unwrap().contents());
    let bundle = serde_json::to_vec(&json!({
        "mediaType": BUNDLE_TYPE,
        "verificationMaterial": {
            "x509CertificateChain": {"certificates": [
                {"rawBytes": der(k["certificate"].as_str().unwrap())},
                {"rawBytes": der(k["chain"].as_str().unwrap())},
            ]},
            "tlogEntries": [],
        },
        "messageSignature": {"signature": k["signature"]},
    }))
    .unwrap();
    let yaml = keyless_policy(&format!("{IDENTITY}\n          tlog: waived")).replace(
        "    trustedRoot: \"$FIXTURES/trusted_root.json\"",
        "    caFile: \"$FIXTURES/ca-root.pem\"",
    );
    let p = policy(&yaml);
    let set = p.rule("keyless").unwrap().signatures().unwrap();
    let payload = fixture("payload.json");
    let valid_now = 1_800_000_000;
    verify_bundle(&bundle, Artifact::Bytes(&payload), set, valid_now).unwrap();
    let after_expiry = 4_102_444_801;
    let err = verify_bundle(&bundle, Artifact::Bytes(&payload), set, after_expiry).unwrap_err();
    assert!(
        err.contains("not valid at the current time") && !err.contains("signing time"),
        "{err}"
    );
}
