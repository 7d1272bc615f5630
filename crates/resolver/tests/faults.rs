//! Registry faults: a misbehaving registry the test controls, one scenario per fault.
//! Each lookup must end before its deadline with an error naming the cause, and never
//! yield a digest the registry did not confirm.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tagpin_e2e::fake_registry::{
    DIGEST_A, FakeRegistry, MANIFEST, MANIFEST_TYPE, faults, http, is_head,
};
use tagpin_resolver::{
    ImageReference, Keychain, RegistrySettings, ResolveError, Resolver, ResolverConfig,
};

fn resolver(addr: &str, deadline: f64) -> Resolver {
    let mut c = ResolverConfig::default();
    c.registries.insert(
        addr.to_owned(),
        RegistrySettings {
            plain_http: true,
            ..Default::default()
        },
    );
    c.timeouts.deadline_seconds = deadline;
    c.timeouts.read_seconds = 10.0;
    Resolver::new(c).unwrap()
}

async fn resolve(
    reg: &FakeRegistry,
    deadline: f64,
) -> (Result<tagpin_resolver::Resolution, ResolveError>, Duration) {
    let image = ImageReference::parse(&format!("{}/team/app:1.0", reg.addr)).unwrap();
    let started = Instant::now();
    let r = resolver(&reg.addr, deadline)
        .resolve(&image, &Keychain::anonymous())
        .await;
    (r, started.elapsed())
}

#[tokio::test]
async fn accepted_but_never_answered_times_out_within_the_deadline() {
    let reg = FakeRegistry::start(faults::silence()).await;
    let (r, took) = resolve(&reg, 1.0).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ResolveError::TimedOut { .. }), "{err}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(err.to_string().contains(&reg.addr));
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_with_the_status() {
    for status in [
        "500 Internal Server Error",
        "502 Bad Gateway",
        "503 Service Unavailable",
    ] {
        let reg = FakeRegistry::start(faults::status_forever(status)).await;
        let (r, took) = resolve(&reg, 1.5).await;
        let err = r.unwrap_err();
        let code: u16 = status[..3].parse().unwrap();
        assert!(
            matches!(err, ResolveError::Registry { status, .. } if status == code),
            "{err}"
        );
        assert!(err.to_string().contains("gave up after"), "{err}");
        assert!(reg.requests() > 1, "{status} was not retried");
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }
}

#[tokio::test]
async fn transient_errors_recover_within_the_deadline() {
    let reg = FakeRegistry::start(Arc::new(|n, line| {
        if n < 2 {
            http("503 Service Unavailable", &[], b"", is_head(line))
        } else {
            http(
                "200 OK",
                &[
                    ("Docker-Content-Digest", DIGEST_A.into()),
                    ("Content-Type", MANIFEST_TYPE.into()),
                ],
                b"",
                true,
            )
        }
    }))
    .await;
    let (r, _) = resolve(&reg, 5.0).await;
    assert_eq!(r.unwrap().digest.to_string(), DIGEST_A);
    assert_eq!(reg.requests(), 3);
}

#[tokio::test]
async fn rate_limits_honour_retry_after_only_while_the_deadline_allows() {
    let reg = FakeRegistry::start(Arc::new(|n, line| {
        if n == 0 {
            http(
                "429 Too Many Requests",
                &[("Retry-After", "1".into())],
                b"",
                is_head(line),
            )
        } else {
            http(
                "200 OK",
                &[("Docker-Content-Digest", DIGEST_A.into())],
                b"",
                true,
            )
        }
    }))
    .await;
    let (r, took) = resolve(&reg, 5.0).await;
    assert_eq!(r.unwrap().digest.to_string(), DIGEST_A);
    assert!(
        took >= Duration::from_millis(900),
        "Retry-After was not honoured: {took:?}"
    );

    let reg = FakeRegistry::start(faults::rate_limited("60")).await;
    let (r, took) = resolve(&reg, 2.0).await;
    let err = r.unwrap_err();
    assert!(
        matches!(err, ResolveError::Registry { status: 429, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("retry after 60.0s"), "{err}");
    assert!(
        took < Duration::from_secs(1),
        "waited although Retry-After exceeds the deadline: {took:?}"
    );
}

#[tokio::test]
async fn unauthorized_on_every_attempt() {
    let reg = FakeRegistry::start(faults::unauthorized()).await;
    let (r, _) = resolve(&reg, 2.0).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ResolveError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&reg.addr), "{err}");
}

#[tokio::test]
async fn malformed_digest_header_is_rejected() {
    for bad in [
        "sha256:abc",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "SHA256:AAAA",
        "garbage",
    ] {
        let reg = FakeRegistry::start(faults::malformed_digest(bad)).await;
        let (r, _) = resolve(&reg, 2.0).await;
        let err = r.unwrap_err();
        assert!(
            matches!(err, ResolveError::InvalidResponse { .. }),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains("Docker-Content-Digest"), "{err}");
    }
}

#[tokio::test]
async fn header_that_contradicts_the_body_is_rejected() {
    // No digest on HEAD, so tagpin GETs and hashes; the GET's header names another digest.
    let reg = FakeRegistry::start(faults::contradicting_digest()).await;
    let (r, _) = resolve(&reg, 2.0).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ResolveError::InvalidResponse { .. }), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[tokio::test]
async fn missing_header_means_get_and_hash() {
    let reg = FakeRegistry::start(Arc::new(|_, line| {
        http(
            "200 OK",
            &[("Content-Type", MANIFEST_TYPE.into())],
            MANIFEST.as_bytes(),
            is_head(line),
        )
    }))
    .await;
    let (r, _) = resolve(&reg, 2.0).await;
    let r = r.unwrap();
    assert_eq!(
        r.digest,
        tagpin_resolver::Digest::sha256(MANIFEST.as_bytes())
    );
    assert_eq!(reg.requests(), 2, "one HEAD, one GET");
}

#[tokio::test]
async fn oversized_manifest_is_rejected() {
    let reg = FakeRegistry::start(faults::oversized_manifest()).await;
    let (r, _) = resolve(&reg, 5.0).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ResolveError::InvalidResponse { .. }), "{err}");
    assert!(err.to_string().contains("larger than"), "{err}");
}

#[tokio::test]
async fn redirect_loop_is_rejected() {
    let reg = FakeRegistry::start(faults::redirect_loop()).await;
    let (r, took) = resolve(&reg, 3.0).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ResolveError::InvalidResponse { .. }), "{err}");
    assert!(err.to_string().contains("redirect"), "{err}");
    assert!(took < Duration::from_secs(3));
}

#[tokio::test]
async fn connection_dropped_mid_body_is_an_error() {
    let reg = FakeRegistry::start(faults::dropped_mid_body()).await;
    let (r, _) = resolve(&reg, 2.0).await;
    let err = r.unwrap_err();
    assert!(
        matches!(
            err,
            ResolveError::InvalidResponse { .. } | ResolveError::Unreachable { .. }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn refused_connection_is_unreachable() {
    let reg = FakeRegistry::refusing();
    let (r, _) = resolve(&reg, 2.0).await;
    let err = r.unwrap_err();
    assert!(matches!(err, ResolveError::Unreachable { .. }), "{err}");
}
