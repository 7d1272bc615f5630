//! Fuzzes the AdmissionReview request to response path of `tagpin review` and `/mutate`:
//! the body comes from the API server, and the object in it from any user who can create a
//! workload. A fake resolver answers a fixed digest, or an error for images tagged `:fail`.

#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use futures::future::BoxFuture;
use libfuzzer_sys::fuzz_target;
use tagpin::admission::{Admitter, encode_review, parse_review};
use tagpin::config::Config;
use tagpin::credentials::Offline;
use tagpin::resolving::{ImageResolver, ResolveFailure};
use tagpin_resolver::{Digest, ImageReference, Keychain, Resolution, ResolverStats};

const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Resolves every tag to `DIGEST`, except `:fail` tags, which fail like an unreachable registry.
struct FixedResolver;

impl ImageResolver for FixedResolver {
    fn resolve<'a>(
        &'a self,
        image: &'a ImageReference,
        _keychain: &'a Keychain,
    ) -> BoxFuture<'a, Result<Resolution, ResolveFailure>> {
        Box::pin(async move {
            if image.tag() == Some("fail") {
                return Err(ResolveFailure {
                    kind: "unreachable",
                    message: format!("{}: registry is unreachable", image.as_written()),
                });
            }
            let digest: Digest = DIGEST.parse().map_err(|_| ResolveFailure {
                kind: "internal",
                message: "bad fixed digest".to_owned(),
            })?;
            Ok(Resolution {
                image: image.clone(),
                pinned: image.pinned(&digest),
                digest,
                media_type: "application/vnd.oci.image.index.v1+json".to_owned(),
                resolved_at: SystemTime::UNIX_EPOCH,
                cached: false,
                source: image.registry().to_owned(),
                confirmed_by: None,
            })
        })
    }

    fn stats(&self) -> Option<ResolverStats> {
        None
    }
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    admitter: Admitter,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| Harness {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap(),
        admitter: Admitter::new(
            Arc::new(Config::default()),
            Arc::new(FixedResolver),
            Arc::new(Offline::new(None)),
        ),
    })
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    // What tagpin reads of the input: unknown fields are skipped unread, so the input need
    // not be valid JSON text everywhere for tagpin to answer it.
    let Ok(request) = parse_review(data) else {
        assert!(h.runtime.block_on(h.admitter.review(data)).is_err());
        return;
    };
    let (review, _decision) = h
        .runtime
        .block_on(h.admitter.review(data))
        .expect("a parsed review is answered");
    let encoded = encode_review(review.clone()).expect("a response AdmissionReview always encodes");
    let answer: serde_json::Value = serde_json::from_slice(&encoded).expect("the response is JSON");
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    let response = &answer["response"];
    assert!(response["allowed"].is_boolean(), "{answer}");
    assert_eq!(
        response["uid"].as_str(),
        Some(request.uid.as_str()),
        "the response answers another request"
    );
    if let Some(patch) = response["patch"].as_str() {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .expect("the patch is base64");
        serde_json::from_slice::<Vec<serde_json::Value>>(&bytes).expect("the patch is a JSON list");
    }
});
