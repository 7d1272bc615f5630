//! Signature layouts against real registries: real cosign v2 and v3 sign and attest test
//! images, key-based and without a transparency log, in each place a registry lets them
//! store signatures; `tagpin verify` must find them there, name the signer, deny another
//! key and evaluate the attestation.
//!
//! - the referrers-API registry (`hack/oci-registry`): cosign v3 bundles and cosign v2's
//!   OCI 1.1 mode, listed by `GET /v2/<name>/referrers/<digest>`;
//! - distribution 2.8 (no referrers API): cosign v3 falls back to the referrers tag schema,
//!   an index tagged `sha256-<hex>`.

// Test code: a failed setup step is a failed test, so panicking with context is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;
use sha2::Digest as _;
use tagpin_e2e::cosign::{Cosign, Release};
use tagpin_e2e::registry::{OCI_INDEX, docker_config_json, unique_suffix};
use tagpin_e2e::tagpin::tagpin_bin;
use tagpin_e2e::{PushedImage, TestRegistry};

/// Artifact type of a Sigstore bundle referrer (cosign v3, and v2's `--new-bundle-format`).
const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Artifact type of a cosign v2 signature manifest stored as a referrer.
const COSIGN_V2_SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
/// The OCI empty config's media type.
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// The predicate type of `cosign attest --type slsaprovenance1`.
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
const BUILDER: &str = "https://tagpin.dev/e2e/builder";

/// Where a registry kept the signatures of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// Listed by the OCI 1.1 referrers API; no `sha256-<hex>` fallback tag.
    ReferrersApi,
    /// No referrers API; an index tagged `sha256-<hex>` lists them.
    TagSchema,
}

/// An image pushed and then signed and attested with one key.
struct Signed {
    repository: String,
    image: PushedImage,
}

impl Signed {
    fn by_digest(&self, registry: &TestRegistry) -> String {
        format!(
            "{}/{}@{}",
            registry.host, self.repository, self.image.digest
        )
    }

    fn fallback_tag(&self) -> String {
        self.image.digest.replacen(':', "-", 1)
    }
}

/// Pushes a fresh image to `registry`, signs it and attests a SLSA v1 provenance about it.
async fn sign_and_attest(
    registry: &TestRegistry,
    cosign: &Cosign,
    sign_flags: &[&str],
    attest_flags: &[&str],
) -> Signed {
    let repository = format!("e2e/layouts-{}", unique_suffix());
    let image = registry
        .push_image(&repository, "1.0", &repository)
        .await
        .unwrap();
    let signed = Signed { repository, image };
    let target = signed.by_digest(registry);
    cosign.sign_with(&target, sign_flags);
    let predicate = serde_json::json!({
        "buildDefinition": {
            "buildType": "https://tagpin.dev/e2e/build@v1",
            "externalParameters": {"repository": signed.repository},
        },
        "runDetails": {"builder": {"id": BUILDER}},
    });
    cosign.attest_with(
        &target,
        "slsaprovenance1",
        &predicate.to_string(),
        attest_flags,
    );
    signed
}

/// The artifact types of the referrers of the signed image, read where `storage` says,
/// after checking that the other place is empty.
async fn stored_artifact_types(
    registry: &TestRegistry,
    signed: &Signed,
    storage: Storage,
) -> Vec<String> {
    let (api_status, api_body) = registry
        .get_referrers(&signed.repository, &signed.image.digest)
        .await
        .unwrap();
    let (tag_status, tag_body) = registry
        .get_manifest(&signed.repository, &signed.fallback_tag(), OCI_INDEX)
        .await
        .unwrap();
    let (legacy_status, _) = registry
        .get_manifest(
            &signed.repository,
            &format!("{}.sig", signed.fallback_tag()),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await
        .unwrap();
    assert_eq!(
        legacy_status,
        reqwest::StatusCode::NOT_FOUND,
        "cosign wrote the v2 .sig tag layout"
    );
    let index = match storage {
        Storage::ReferrersApi => {
            assert!(api_status.is_success(), "referrers API: {api_status}");
            assert_eq!(
                tag_status,
                reqwest::StatusCode::NOT_FOUND,
                "cosign wrote a fallback tag beside a referrers API"
            );
            api_body
        }
        Storage::TagSchema => {
            assert_eq!(
                api_status,
                reqwest::StatusCode::NOT_FOUND,
                "distribution 2.8 answered the referrers API"
            );
            assert!(tag_status.is_success(), "fallback tag: {tag_status}");
            tag_body
        }
    };
    let index: Value = serde_json::from_slice(&index).unwrap();
    let mut types: Vec<String> = index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("referrers index has no manifests: {index}"))
        .iter()
        .map(|d| d["artifactType"].as_str().unwrap_or_default().to_owned())
        .collect();
    types.sort();
    types
}

/// `sha256:<hex>` of the key's SPKI, the signer name tagpin reports for keys.
fn fingerprint(public_key: &Path) -> String {
    let pem = std::fs::read_to_string(public_key).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(der)))
}

/// A policy whose one rule wants a signature by `key` and a SLSA v1 provenance signed by
/// `key` whose builder is `builder`.
fn policy(registry: &TestRegistry, repository: &str, key: &Path, builder: &str) -> String {
    let key = key.display();
    format!(
        r#"verification:
  noMatch: deny
  rules:
    - name: layouts
      images: ["{host}/{repository}"]
      signatures:
        anyOf:
          - key: {{file: {key}}}
            tlog: waived
      attestations:
        - predicateType: {SLSA_V1}
          conditions:
            - predicate.runDetails.builder.id == "{builder}"
          signedBy:
            anyOf:
              - key: {{file: {key}}}
                tlog: waived
"#,
        host = registry.host,
    )
}

/// Runs `tagpin verify --output json` on `image` with `policy`; its one result.
fn tagpin_verify(registry: &TestRegistry, policy: &str, image: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let docker = dir.path().join("docker-config.json");
    std::fs::write(&docker, docker_config_json(&[registry])).unwrap();
    let ca = registry.ca.as_ref().expect("the registry has a test CA");
    let config = dir.path().join("tagpin.yaml");
    std::fs::write(
        &config,
        format!(
            "resolver:\n  registries:\n    \"{}\":\n      ca: {}\n  dockerConfig: {}\n{policy}",
            registry.host,
            ca.display(),
            docker.display()
        ),
    )
    .unwrap();
    let out = Command::new(tagpin_bin())
        .args(["verify", "--output", "json", "--config"])
        .arg(&config)
        .arg(image)
        .env_remove("TAGPIN_LOG")
        .output()
        .expect("tagpin runs");
    let results: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "tagpin verify printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let result = results[0].clone();
    let verified = result["verdict"]["outcome"] == "verified";
    assert_eq!(
        out.status.success(),
        verified,
        "exit status disagrees with {result}"
    );
    result
}

/// tagpin verifies the image with the signing key (signer and attestation named), and
/// fails it with another key or with a provenance condition the attestation does not meet.
fn assert_verdicts(registry: &TestRegistry, cosign: &Cosign, other: &Cosign, signed: &Signed) {
    let image = &signed.image.reference;
    let key = cosign.public_key();

    let ok = tagpin_verify(
        registry,
        &policy(registry, &signed.repository, &key, BUILDER),
        image,
    );
    let verdict = &ok["verdict"];
    assert_eq!(verdict["outcome"], "verified", "{ok}");
    assert_eq!(verdict["rule"], "layouts", "{ok}");
    assert_eq!(
        verdict["signers"],
        serde_json::json!([fingerprint(&key)]),
        "{ok}"
    );
    assert_eq!(
        verdict["attestations"],
        serde_json::json!([SLSA_V1]),
        "{ok}"
    );
    assert_eq!(
        ok["pinned"],
        format!("{image}@{}", signed.image.digest),
        "{ok}"
    );

    let other_key = tagpin_verify(
        registry,
        &policy(registry, &signed.repository, &other.public_key(), BUILDER),
        image,
    );
    assert_eq!(other_key["verdict"]["outcome"], "failed", "{other_key}");
    assert_eq!(
        other_key["verdict"]["signers"],
        serde_json::json!([]),
        "{other_key}"
    );

    let other_builder = tagpin_verify(
        registry,
        &policy(
            registry,
            &signed.repository,
            &key,
            "https://tagpin.dev/e2e/another-builder",
        ),
        image,
    );
    assert_eq!(
        other_builder["verdict"]["outcome"], "failed",
        "{other_builder}"
    );
    let reason = other_builder["verdict"]["reason"].as_str().unwrap_or("");
    assert!(reason.contains(SLSA_V1), "{other_builder}");
}

/// How one case signs: the cosign release, and whether it runs in cosign v2's OCI 1.1 mode
/// (signature manifests as referrers, attestations as Sigstore bundles).
#[derive(Clone, Copy)]
enum Signer {
    V3,
    V2Referrers,
}

/// Signs and attests an image on `registry` as `signer` does, checks where the artifacts
/// landed (`storage`, listed as `expected`), and checks tagpin's verdicts.
async fn layout_case(registry: TestRegistry, signer: Signer, storage: Storage, expected: &[&str]) {
    let (cosign, other, sign_flags, attest_flags): (_, _, &[&str], &[&str]) = match signer {
        Signer::V3 => (
            Cosign::generate_for(Release::V3, &[&registry]),
            Cosign::generate_for(Release::V3, &[&registry]),
            &[],
            &[],
        ),
        Signer::V2Referrers => (
            Cosign::generate_for(Release::V2, &[&registry]).with_env("COSIGN_EXPERIMENTAL", "1"),
            Cosign::generate_for(Release::V2, &[&registry]),
            &["--registry-referrers-mode=oci-1-1"],
            &["--new-bundle-format"],
        ),
    };
    let signed = sign_and_attest(&registry, &cosign, sign_flags, attest_flags).await;
    assert_eq!(
        stored_artifact_types(&registry, &signed, storage).await,
        expected.to_vec()
    );
    assert_verdicts(&registry, &cosign, &other, &signed);
}

#[tokio::test]
async fn cosign_v3_bundles_verify_through_the_referrers_api() {
    layout_case(
        TestRegistry::referrers(),
        Signer::V3,
        Storage::ReferrersApi,
        &[BUNDLE, BUNDLE],
    )
    .await;
}

#[tokio::test]
async fn cosign_v3_bundles_on_distribution_2_8_verify_through_the_referrers_tag_schema() {
    layout_case(
        TestRegistry::tls(),
        Signer::V3,
        Storage::TagSchema,
        &[BUNDLE, BUNDLE],
    )
    .await;
}

#[tokio::test]
async fn cosign_v2_oci_1_1_mode_verifies_through_the_referrers_api() {
    layout_case(
        TestRegistry::referrers(),
        Signer::V2Referrers,
        Storage::ReferrersApi,
        &[COSIGN_V2_SIG, BUNDLE],
    )
    .await;
}

#[tokio::test]
async fn cosign_v2_oci_1_1_mode_on_distribution_2_8_verifies_through_the_referrers_tag_schema() {
    // cosign v2's registry library lists the bundle in the tag-schema index under its
    // config's media type, not its artifactType: tagpin reads the manifest to learn it.
    layout_case(
        TestRegistry::tls(),
        Signer::V2Referrers,
        Storage::TagSchema,
        &[COSIGN_V2_SIG, EMPTY_CONFIG],
    )
    .await;
}
