//! How a referrers index lists an artifact: cosign v2 (go-containerregistry before v0.21)
//! writes the referrers tag-schema index itself and lists a bundle under its config's
//! media type, the OCI empty config, instead of the manifest's `artifactType`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::*;
use tagpin_resolver::{Digest, ImageReference};
use tagpin_verifier::{ArtifactSource, Fetched, Outcome, SourceError, verify_uncached};

const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// A registry whose referrers index lists every entry under `listed_as`.
struct Relisted {
    inner: MemoryRegistry,
    listed_as: &'static str,
}

impl ArtifactSource for Relisted {
    async fn manifest(
        &self,
        image: &ImageReference,
        reference: &str,
    ) -> Result<Option<Fetched>, SourceError> {
        self.inner.manifest(image, reference).await
    }

    async fn blob(&self, image: &ImageReference, digest: &Digest) -> Result<Vec<u8>, SourceError> {
        self.inner.blob(image, digest).await
    }

    async fn referrers(
        &self,
        image: &ImageReference,
        digest: &Digest,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        let Some(index) = self.inner.referrers(image, digest).await? else {
            return Ok(None);
        };
        let mut index: Value = serde_json::from_slice(&index).unwrap();
        for entry in index["manifests"].as_array_mut().unwrap() {
            entry["artifactType"] = Value::from(self.listed_as);
        }
        Ok(Some(serde_json::to_vec(&index).unwrap()))
    }
}

const SIGNED_AND_ATTESTED: &str = r#"
noMatch: deny
rules:
  - name: provenance
    images: ["127.0.0.1:5443/team/app"]
    signatures:
      anyOf:
        - key: {file: "$FIXTURES/cosign.pub"}
          tlog: waived
    attestations:
      - predicateType: https://slsa.dev/provenance/v1
        conditions:
          - predicate.runDetails.builder.id == "https://github.com/tagpin/app/.github/workflows/release.yml@refs/heads/main"
        signedBy:
          anyOf:
            - key: {file: "$FIXTURES/cosign.pub"}
              tlog: waived
"#;

fn relisted(listed_as: &'static str) -> Relisted {
    let inner = MemoryRegistry::default();
    inner.put_bundle_referrers(
        &d1(),
        &[
            dsse_bundle(&fixture("sign-v3.json")),
            dsse_bundle(&fixture("att-slsa-v1.json")),
        ],
    );
    Relisted { inner, listed_as }
}

#[tokio::test]
async fn bundles_listed_under_the_empty_config_type_are_found() {
    let reg = relisted(EMPTY_CONFIG);
    let v = verify_uncached(&reg, &policy(SIGNED_AND_ATTESTED), &image(), &d1())
        .await
        .unwrap();
    assert_eq!(v.outcome, Outcome::Verified, "{v:?}");
    assert_eq!(v.attestations, vec!["https://slsa.dev/provenance/v1"]);
}

#[tokio::test]
async fn referrers_listed_under_another_type_are_not_read() {
    let reg = relisted("application/vnd.example.sbom");
    let v = verify_uncached(&reg, &policy(SIGNED_AND_ATTESTED), &image(), &d1())
        .await
        .unwrap();
    assert_eq!(v.outcome, Outcome::Failed, "{v:?}");
}
