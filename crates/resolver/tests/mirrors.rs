//! Mirrors and the origin, with registries the test controls: a mirror's answer stands
//! alone unless `confirmMirrors` asks the origin, which then must serve the same digest
//! when it is reachable. Also the exact error messages of the failures involved.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use tagpin_e2e::fake_registry::{FakeRegistry, MANIFEST_TYPE, Script, faults, http, is_head};
use tagpin_resolver::{
    ImageReference, Keychain, RegistrySettings, ResolveError, Resolver, ResolverConfig,
};

const DIGEST_M: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const DIGEST_O: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// Answers every manifest HEAD with `digest`.
fn serving(digest: &'static str) -> Script {
    Arc::new(move |_, line| {
        http(
            "200 OK",
            &[
                ("Docker-Content-Digest", digest.into()),
                ("Content-Type", MANIFEST_TYPE.into()),
            ],
            b"",
            is_head(line),
        )
    })
}

fn not_found() -> Script {
    Arc::new(|_, line| http("404 Not Found", &[], b"", is_head(line)))
}

fn resolver(origin: &str, mirror: &str, confirm: bool) -> Resolver {
    let mut c = ResolverConfig::default();
    c.registries.insert(
        origin.to_owned(),
        RegistrySettings {
            plain_http: true,
            mirrors: vec![mirror.to_owned()],
            confirm_mirrors: confirm,
            ..Default::default()
        },
    );
    c.registries.insert(
        mirror.to_owned(),
        RegistrySettings {
            plain_http: true,
            ..Default::default()
        },
    );
    c.timeouts.deadline_seconds = 3.0;
    Resolver::new(c).unwrap()
}

fn image(s: &str) -> ImageReference {
    ImageReference::parse(s).unwrap()
}

#[tokio::test]
async fn without_confirmation_the_mirrors_answer_stands_alone() {
    let origin = FakeRegistry::start(serving(DIGEST_O)).await;
    let mirror = FakeRegistry::start(serving(DIGEST_M)).await;
    let r = resolver(&origin.addr, &mirror.addr, false)
        .resolve(
            &image(&format!("{}/team/app:1.0", origin.addr)),
            &Keychain::anonymous(),
        )
        .await
        .unwrap();
    assert_eq!(r.digest.to_string(), DIGEST_M);
    assert_eq!(r.source, mirror.addr);
    assert_eq!(r.confirmed_by, None);
    assert_eq!(origin.requests(), 0, "the origin is not asked");
}

#[tokio::test]
async fn a_mirror_that_disagrees_with_the_origin_is_refused() {
    let origin = FakeRegistry::start(serving(DIGEST_O)).await;
    let mirror = FakeRegistry::start(serving(DIGEST_M)).await;
    let written = format!("{}/team/app:1.0", origin.addr);
    let err = resolver(&origin.addr, &mirror.addr, true)
        .resolve(&image(&written), &Keychain::anonymous())
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::Unconfirmed { .. }), "{err}");
    assert_eq!(err.kind(), "unconfirmed");
    assert_eq!(
        err.to_string(),
        format!(
            "{written}: mirror {} answered {DIGEST_M}, which registry {} does not confirm: it serves {DIGEST_O}",
            mirror.addr, origin.addr
        )
    );
}

#[tokio::test]
async fn a_tag_the_origin_does_not_have_is_not_confirmed() {
    let origin = FakeRegistry::start(not_found()).await;
    let mirror = FakeRegistry::start(serving(DIGEST_M)).await;
    let written = format!("{}/team/app:1.0", origin.addr);
    let err = resolver(&origin.addr, &mirror.addr, true)
        .resolve(&image(&written), &Keychain::anonymous())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{written}: mirror {} answered {DIGEST_M}, which registry {} does not confirm: not found",
            mirror.addr, origin.addr
        )
    );
}

#[tokio::test]
async fn the_origin_confirms_the_same_digest() {
    let origin = FakeRegistry::start(serving(DIGEST_M)).await;
    let mirror = FakeRegistry::start(serving(DIGEST_M)).await;
    let r = resolver(&origin.addr, &mirror.addr, true)
        .resolve(
            &image(&format!("{}/team/app:1.0", origin.addr)),
            &Keychain::anonymous(),
        )
        .await
        .unwrap();
    assert_eq!(r.digest.to_string(), DIGEST_M);
    assert_eq!(r.source, mirror.addr);
    assert_eq!(r.confirmed_by.as_deref(), Some(origin.addr.as_str()));
}

#[tokio::test]
async fn an_unreachable_origin_leaves_the_mirrors_answer_unconfirmed() {
    let origin = FakeRegistry::refusing();
    let mirror = FakeRegistry::start(serving(DIGEST_M)).await;
    let r = resolver(&origin.addr, &mirror.addr, true)
        .resolve(
            &image(&format!("{}/team/app:1.0", origin.addr)),
            &Keychain::anonymous(),
        )
        .await
        .unwrap();
    assert_eq!(r.digest.to_string(), DIGEST_M);
    assert_eq!(r.source, mirror.addr);
    assert_eq!(r.confirmed_by, None);
}

#[tokio::test]
async fn a_refused_loopback_registry_is_unreachable_in_one_clause() {
    // No configuration: a loopback registry is tried over HTTPS first, a guess the
    // message must not repeat as a URL.
    let reg = FakeRegistry::refusing();
    let written = format!("{}/team/app:1.0", reg.addr);
    let err = Resolver::new(ResolverConfig::default())
        .unwrap()
        .resolve(&image(&written), &Keychain::anonymous())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{written}: registry {} is unreachable: connection refused",
            reg.addr
        )
    );
    assert_eq!(err.cause(), "unreachable: connection refused");
}

#[tokio::test]
async fn a_shared_failure_is_told_in_each_spelling() {
    let reg = FakeRegistry::start(faults::silence()).await;
    let mut c = ResolverConfig::default();
    c.registries.insert(
        reg.addr.clone(),
        RegistrySettings {
            plain_http: true,
            ..Default::default()
        },
    );
    c.timeouts.deadline_seconds = 1.0;
    c.timeouts.read_seconds = 5.0;
    let resolver = Resolver::new(c).unwrap();
    let (short, long) = (
        format!("{}/team/app", reg.addr),
        format!("{}/team/app:latest", reg.addr),
    );
    let keys = Keychain::anonymous();
    let (short_ref, long_ref) = (image(&short), image(&long));
    let (a, b) = tokio::join!(
        resolver.resolve(&short_ref, &keys),
        resolver.resolve(&long_ref, &keys)
    );
    for (written, err) in [(&short, a.unwrap_err()), (&long, b.unwrap_err())] {
        assert_eq!(
            err.to_string(),
            format!(
                "{written}: registry {} did not answer within the 1.0s deadline",
                reg.addr
            )
        );
    }
    assert_eq!(reg.requests(), 1, "one lookup for both spellings");
}
