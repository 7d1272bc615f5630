//! Messages quote the image as this request wrote it, once: a verdict cached for one
//! spelling of an image is told in another's, and a digest is never said twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;
use tagpin_resolver::ImageReference;
use tagpin_verifier::{Outcome, Verifier, VerifyError, verify_uncached};

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

fn parse(s: &str) -> ImageReference {
    ImageReference::parse(s).unwrap()
}

#[tokio::test]
async fn a_cached_failure_is_told_in_each_requests_spelling() {
    let verifier = Verifier::new(MemoryRegistry::default());
    let policy = policy(KEYED);
    let d = d1();
    let first = verifier
        .verify(&policy, &parse("127.0.0.1:5443/team/app"), &d)
        .await
        .unwrap();
    assert_eq!(first.outcome, Outcome::Failed);
    let reason = first.reason.unwrap();
    let cause = reason
        .strip_prefix(&format!("127.0.0.1:5443/team/app@{d} (rule \"team\"): "))
        .unwrap_or_else(|| panic!("{reason}"))
        .to_owned();

    // Same repository and digest, so the cached verdict answers; in this spelling.
    let written = format!("127.0.0.1:5443/team/app:latest@{d}");
    let second = verifier
        .verify(&policy, &parse(&written), &d)
        .await
        .unwrap();
    assert_eq!(
        second.reason.unwrap(),
        format!("{written} (rule \"team\"): {cause}")
    );
}

#[tokio::test]
async fn no_rule_reason_names_the_digest_once() {
    let d = d1();
    let written = format!("127.0.0.1:5443/other/app@{d}");
    let v = verify_uncached(
        &MemoryRegistry::default(),
        &policy(KEYED),
        &parse(&written),
        &d,
    )
    .await
    .unwrap();
    assert_eq!(v.outcome, Outcome::NoRuleMatchedDenied);
    assert_eq!(
        v.reason.unwrap(),
        format!(
            "{written}: no verification rule matches 127.0.0.1:5443/other/app and unmatched images are denied"
        )
    );
}

#[tokio::test]
async fn registry_error_for_an_image_given_by_digest_names_it_once() {
    let reg = MemoryRegistry::default();
    *reg.fail.lock().unwrap() = Some("unreachable: connection refused".into());
    let d = d1();
    let written = format!("127.0.0.1:5443/team/app@{d}");
    let err = verify_uncached(&reg, &policy(KEYED), &parse(&written), &d)
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Registry { .. }));
    assert_eq!(
        err.to_string(),
        format!(
            "cannot verify {written}: registry error while fetching signatures: registry 127.0.0.1:5443: unreachable: connection refused"
        )
    );
}

const BY_HOST: &str = r#"
noMatch: deny
rules:
  - name: team
    images: ["registry.example.com/team/*"]
    signatures:
      anyOf:
        - key: {file: "$FIXTURES/cosign.pub"}
          tlog: waived
  - name: hub
    images: ["docker.io/library/*"]
    signatures:
      anyOf:
        - key: {file: "$FIXTURES/cosign.pub"}
          tlog: waived
"#;

#[tokio::test]
async fn rules_match_every_spelling_of_the_registry_host() {
    let d = d1();
    let policy = policy(BY_HOST);
    for (written, rule) in [
        ("registry.example.com/team/app:1.0", "team"),
        ("REGISTRY.EXAMPLE.COM/team/app:1.0", "team"),
        ("registry.example.com:443/team/app:1.0", "team"),
        ("Registry.Example.Com:443/team/app:1.0", "team"),
        ("nginx:1.25", "hub"),
        ("docker.io/library/nginx:1.25", "hub"),
        ("index.docker.io/library/nginx:1.25", "hub"),
        ("registry-1.docker.io/library/nginx:1.25", "hub"),
        ("registry-1.docker.io/nginx:1.25", "hub"),
    ] {
        let v = verify_uncached(&MemoryRegistry::default(), &policy, &parse(written), &d)
            .await
            .unwrap();
        assert_eq!(v.outcome, Outcome::Failed, "{written}: {v:?}");
        assert_eq!(v.rule, rule, "{written}");
        let reason = v.reason.unwrap();
        assert!(
            reason.starts_with(&format!("{written}@{d} (rule \"{rule}\"): ")),
            "{reason}"
        );
    }
    // Another port is another registry.
    let v = verify_uncached(
        &MemoryRegistry::default(),
        &policy,
        &parse("registry.example.com:8443/team/app:1.0"),
        &d,
    )
    .await
    .unwrap();
    assert_eq!(v.outcome, Outcome::NoRuleMatchedDenied);
}
