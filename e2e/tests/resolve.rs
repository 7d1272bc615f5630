//! Tag-to-digest resolution against the real local registries (TLS + htpasswd, and a
//! plain-HTTP mirror) that `hack/registry.sh` starts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tagpin_e2e::registry::unique_suffix;
use tagpin_e2e::{Platform, TestRegistry};
use tagpin_resolver::{
    DockerConfig, ImageReference, Keychain, RegistrySettings, ResolveError, Resolver,
    ResolverConfig,
};

fn config(origin: &TestRegistry, mirrors: Vec<String>, ttl_seconds: f64) -> ResolverConfig {
    let mut c = ResolverConfig::default();
    c.registries.insert(
        origin.host.clone(),
        RegistrySettings {
            ca: origin.ca.clone(),
            mirrors,
            ..Default::default()
        },
    );
    c.cache.ttl_seconds = ttl_seconds;
    c.timeouts.deadline_seconds = 5.0;
    c
}

fn keychain(registry: &TestRegistry) -> Keychain {
    let dc = DockerConfig::parse(registry.docker_config_json().as_bytes()).expect("docker config");
    Keychain::new(vec![Arc::new(dc)])
}

fn image(s: &str) -> ImageReference {
    ImageReference::parse(s).expect("valid reference")
}

#[tokio::test]
async fn digest_is_the_registrys_and_head_is_enough() {
    let reg = TestRegistry::tls();
    let repo = format!("resolve/single-{}", unique_suffix());
    let pushed = reg.push_image(&repo, "1.0", "single").await.unwrap();
    let resolver = Resolver::new(config(&reg, vec![], 30.0)).unwrap();

    let r = resolver
        .resolve(&image(&pushed.reference), &keychain(&reg))
        .await
        .unwrap();
    assert_eq!(r.digest.to_string(), pushed.digest);
    assert_eq!(r.pinned, format!("{}@{}", pushed.reference, pushed.digest));
    assert_eq!(r.media_type, "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(reg.manifest_requests("HEAD", &repo, "1.0").await, 1);
    assert_eq!(
        reg.manifest_requests("GET", &repo, "1.0").await,
        0,
        "no manifest GET when HEAD carries Docker-Content-Digest"
    );
}

#[tokio::test]
async fn multi_arch_tag_pins_the_index_digest() {
    let reg = TestRegistry::tls();
    let repo = format!("resolve/multi-{}", unique_suffix());
    let pushed = reg
        .push_index(&repo, "2.0", "multi", &Platform::AMD64_AND_ARM64)
        .await
        .unwrap();
    let resolver = Resolver::new(config(&reg, vec![], 30.0)).unwrap();
    let r = resolver
        .resolve(&image(&pushed.reference), &keychain(&reg))
        .await
        .unwrap();
    assert_eq!(r.digest.to_string(), pushed.digest);
    assert_eq!(r.media_type, "application/vnd.oci.image.index.v1+json");
}

#[tokio::test]
async fn moved_tag_is_cached_until_the_ttl_then_re_resolved() {
    let reg = TestRegistry::tls();
    let repo = format!("resolve/moved-{}", unique_suffix());
    let first = reg.push_image(&repo, "stable", "first").await.unwrap();
    let resolver = Resolver::new(config(&reg, vec![], 1.5)).unwrap();
    let keys = keychain(&reg);
    let img = image(&first.reference);

    let started = Instant::now();
    let r1 = resolver.resolve(&img, &keys).await.unwrap();
    assert_eq!(r1.digest.to_string(), first.digest);
    let second = reg.push_image(&repo, "stable", "second").await.unwrap();
    assert_ne!(first.digest, second.digest);

    let r2 = resolver.resolve(&img, &keys).await.unwrap();
    // Inside the TTL the old digest comes from cache; only a slow machine gets past it here.
    assert!(
        (r2.cached && r2.digest.to_string() == first.digest)
            || started.elapsed() >= Duration::from_millis(1500),
        "a lookup inside the TTL must be the cached digest"
    );

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = resolver.resolve(&img, &keys).await.unwrap();
        if r.digest.to_string() == second.digest {
            assert!(!r.cached);
            assert!(
                started.elapsed() >= Duration::from_millis(1500),
                "new digest only after the TTL"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moved tag never re-resolved after the TTL"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn wrong_credentials_are_unauthorized_naming_the_registry() {
    let reg = TestRegistry::tls();
    let repo = format!("resolve/auth-{}", unique_suffix());
    let pushed = reg.push_image(&repo, "1", "auth").await.unwrap();
    let resolver = Resolver::new(config(&reg, vec![], 30.0)).unwrap();
    let wrong = DockerConfig::parse(
        format!(
            r#"{{"auths":{{"{}":{{"username":"tagpin","password":"not-the-password"}}}}}}"#,
            reg.host
        )
        .as_bytes(),
    )
    .unwrap();
    let err = resolver
        .resolve(
            &image(&pushed.reference),
            &Keychain::new(vec![Arc::new(wrong)]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&reg.host), "{err}");
    assert!(!err.to_string().contains("not-the-password"), "{err}");

    let anonymous = resolver
        .resolve(&image(&pushed.reference), &Keychain::anonymous())
        .await
        .unwrap_err();
    assert!(
        matches!(anonymous, ResolveError::Unauthorized { .. }),
        "{anonymous}"
    );

    // The right credentials still work: the failed ones did not poison a shared client.
    resolver
        .resolve(&image(&pushed.reference), &keychain(&reg))
        .await
        .unwrap();
}

#[tokio::test]
async fn untrusted_certificate_is_reported_as_tls() {
    let reg = TestRegistry::tls();
    let repo = format!("resolve/tls-{}", unique_suffix());
    let pushed = reg.push_image(&repo, "1", "tls").await.unwrap();
    let mut c = config(&reg, vec![], 30.0);
    c.registries.clear();
    let err = Resolver::new(c)
        .unwrap()
        .resolve(&image(&pushed.reference), &keychain(&reg))
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::TlsUntrusted { .. }), "{err}");
    assert!(
        err.to_string().ends_with(&format!(
            "; configure its CA under resolver.registries.\"{}\".ca",
            reg.host
        )),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_and_silent_registries_fail_within_the_deadline() {
    // Nothing listens here.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    // This one accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });

    let mut c = ResolverConfig::default();
    c.timeouts.deadline_seconds = 1.0;
    c.timeouts.read_seconds = 5.0;
    c.registries.insert(
        closed_addr.to_string(),
        RegistrySettings {
            plain_http: true,
            ..Default::default()
        },
    );
    c.registries.insert(
        silent_addr.to_string(),
        RegistrySettings {
            plain_http: true,
            ..Default::default()
        },
    );
    let resolver = Resolver::new(c).unwrap();

    let err = resolver
        .resolve(
            &image(&format!("{closed_addr}/app:1")),
            &Keychain::anonymous(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::Unreachable { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("{closed_addr}/app:1: registry {closed_addr} is unreachable: connection refused")
    );

    let started = Instant::now();
    let err = resolver
        .resolve(
            &image(&format!("{silent_addr}/app:1")),
            &Keychain::anonymous(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ResolveError::TimedOut { .. }), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    held.abort();
}

#[tokio::test]
async fn mirror_first_then_origin() {
    let origin = TestRegistry::tls();
    let mirror = TestRegistry::mirror();
    let repo = format!("resolve/mirror-{}", unique_suffix());
    let on_origin = origin
        .push_image(&repo, "both", "origin-copy")
        .await
        .unwrap();
    let on_mirror = mirror
        .push_image(&repo, "both", "mirror-copy")
        .await
        .unwrap();
    let only_origin = origin
        .push_image(&repo, "origin-only", "origin-only")
        .await
        .unwrap();
    assert_ne!(on_origin.digest, on_mirror.digest);

    let resolver = Resolver::new(config(&origin, vec![mirror.host.clone()], 30.0)).unwrap();
    let keys = keychain(&origin);
    let r = resolver
        .resolve(&image(&on_origin.reference), &keys)
        .await
        .unwrap();
    assert_eq!(
        r.digest.to_string(),
        on_mirror.digest,
        "the mirror answers first"
    );
    assert_eq!(r.source, mirror.host);
    assert_eq!(r.confirmed_by, None);

    let r = resolver
        .resolve(&image(&only_origin.reference), &keys)
        .await
        .unwrap();
    assert_eq!(
        r.digest.to_string(),
        only_origin.digest,
        "origin answers what the mirror lacks"
    );
    assert_eq!(r.source, origin.host);
    assert_eq!(
        mirror.manifest_requests("HEAD", &repo, "origin-only").await,
        1
    );
}

#[tokio::test]
async fn confirmed_mirrors_must_serve_the_origins_digest() {
    let origin = TestRegistry::tls();
    let mirror = TestRegistry::mirror();
    let repo = format!("resolve/confirm-{}", unique_suffix());
    // The mirror serves another image for this tag than the origin does.
    let on_origin = origin.push_image(&repo, "moved", "origin").await.unwrap();
    let on_mirror = mirror.push_image(&repo, "moved", "planted").await.unwrap();
    assert_ne!(on_origin.digest, on_mirror.digest);
    // Both serve the same image for this one.
    let same = origin.push_image(&repo, "same", "same").await.unwrap();
    let copy = mirror.push_image(&repo, "same", "same").await.unwrap();
    assert_eq!(same.digest, copy.digest);

    let mut c = config(&origin, vec![mirror.host.clone()], 30.0);
    let keys = keychain(&origin);
    let trusting = Resolver::new(c.clone()).unwrap();
    let r = trusting
        .resolve(&image(&on_origin.reference), &keys)
        .await
        .unwrap();
    assert_eq!(
        r.digest.to_string(),
        on_mirror.digest,
        "without confirmation the mirror's answer stands"
    );
    assert_eq!(
        (r.source.as_str(), r.confirmed_by),
        (mirror.host.as_str(), None)
    );

    for settings in c.registries.values_mut() {
        settings.confirm_mirrors = true;
    }
    let confirming = Resolver::new(c).unwrap();
    let err = confirming
        .resolve(&image(&on_origin.reference), &keys)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: mirror {} answered {}, which registry {} does not confirm: it serves {}",
            on_origin.reference, mirror.host, on_mirror.digest, origin.host, on_origin.digest
        )
    );
    assert_eq!(origin.manifest_requests("HEAD", &repo, "moved").await, 1);

    let r = confirming
        .resolve(&image(&same.reference), &keys)
        .await
        .unwrap();
    assert_eq!(r.digest.to_string(), same.digest);
    assert_eq!(r.source, mirror.host);
    assert_eq!(r.confirmed_by.as_deref(), Some(origin.host.as_str()));
}

#[tokio::test]
async fn an_unreachable_origin_leaves_a_real_mirrors_answer_unconfirmed() {
    let mirror = TestRegistry::mirror();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = closed.local_addr().unwrap().to_string();
    drop(closed);
    let repo = format!("resolve/airgap-{}", unique_suffix());
    let pushed = mirror.push_image(&repo, "1", "airgap").await.unwrap();

    let mut c = ResolverConfig::default();
    c.registries.insert(
        origin.clone(),
        RegistrySettings {
            mirrors: vec![mirror.host.clone()],
            confirm_mirrors: true,
            ..Default::default()
        },
    );
    let r = Resolver::new(c)
        .unwrap()
        .resolve(
            &image(&format!("{origin}/{repo}:1")),
            &Keychain::anonymous(),
        )
        .await
        .unwrap();
    assert_eq!(r.digest.to_string(), pushed.digest);
    assert_eq!(r.source, mirror.host);
    assert_eq!(r.confirmed_by, None);
}

#[tokio::test]
async fn concurrent_lookups_of_one_tag_make_one_request() {
    let reg = TestRegistry::tls();
    let repo = format!("resolve/burst-{}", unique_suffix());
    let pushed = reg.push_image(&repo, "hot", "burst").await.unwrap();
    let resolver = Resolver::new(config(&reg, vec![], 30.0)).unwrap();
    let keys = keychain(&reg);
    let img = image(&pushed.reference);

    let lookups = (0..100).map(|_| {
        let (resolver, keys, img) = (resolver.clone(), keys.clone(), img.clone());
        tokio::spawn(async move { resolver.resolve(&img, &keys).await })
    });
    for r in futures_join(lookups).await {
        assert_eq!(r.unwrap().digest.to_string(), pushed.digest);
    }
    assert_eq!(reg.manifest_requests("HEAD", &repo, "hot").await, 1);
    assert_eq!(reg.manifest_requests("GET", &repo, "hot").await, 0);
}

#[tokio::test]
async fn already_digested_references_are_not_re_resolved() {
    let reg = TestRegistry::tls();
    let repo = format!("resolve/pinned-{}", unique_suffix());
    let pushed = reg.push_image(&repo, "1", "pinned").await.unwrap();
    let resolver = Resolver::new(config(&reg, vec![], 30.0)).unwrap();
    let written = format!("{}@{}", pushed.reference, pushed.digest);
    let r = resolver
        .resolve(&image(&written), &keychain(&reg))
        .await
        .unwrap();
    assert_eq!(r.pinned, written);
    assert_eq!(reg.manifest_requests("HEAD", &repo, "1").await, 0);
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.expect("task completes"));
    }
    out
}
