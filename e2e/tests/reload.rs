//! Revoking a key without a restart: the verification key lives in a directory laid out as
//! Kubernetes mounts a Secret or ConfigMap (files are symlinks through `..data`, which
//! points at a timestamped directory and is replaced by an atomic rename), and a running
//! `tagpin serve` follows each swap. A broken new key keeps the running config serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tagpin_e2e::cosign::Cosign;
use tagpin_e2e::mount::Mount;
use tagpin_e2e::registry::unique_suffix;
use tagpin_e2e::tagpin::{Tagpin, TagpinConfig};
use tagpin_e2e::{PushedImage, TestRegistry};

const KEY: &str = "release.pub";
const WAIT: Duration = Duration::from_secs(30);

fn pod_review(image: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("uid-{}", unique_suffix()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "p",
            "namespace": "apps",
            "operation": "CREATE",
            "userInfo": {"username": "e2e"},
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "apps"},
                "spec": {"containers": [{"name": "c0", "image": image}]},
            },
            "dryRun": false,
        }
    })
}

/// Whether tagpin admits `image` now.
async fn admitted(tagpin: &Tagpin, image: &PushedImage) -> bool {
    let answer = tagpin.review(&pod_review(&image.reference)).await;
    answer["response"]["allowed"] == true
}

/// Polls until tagpin admits (or denies) `image`, within `WAIT`.
async fn wait_admission(tagpin: &Tagpin, image: &PushedImage, admit: bool) {
    let deadline = Instant::now() + WAIT;
    while admitted(tagpin, image).await != admit {
        assert!(
            Instant::now() < deadline,
            "{} still {} after {WAIT:?}:\n{}",
            image.reference,
            if admit { "denied" } else { "admitted" },
            tagpin.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metrics(tagpin: &Tagpin) -> String {
    let client = tagpin.client().build().unwrap();
    let r = client.get(tagpin.url("/metrics")).send().await.unwrap();
    r.text().await.unwrap()
}

#[tokio::test]
async fn a_key_swapped_in_a_mounted_secret_takes_effect_without_restart() {
    let registry = TestRegistry::tls();
    let base = format!("e2e/reload-{}", unique_suffix());
    let old_image = registry
        .push_image(&format!("{base}/old"), "1.0", "old")
        .await
        .unwrap();
    let new_image = registry
        .push_image(&format!("{base}/new"), "1.0", "new")
        .await
        .unwrap();
    let old_key = Cosign::generate(&registry);
    let new_key = Cosign::generate(&registry);
    for (cosign, name, image) in [(&old_key, "old", &old_image), (&new_key, "new", &new_image)] {
        let by_digest = format!("{}/{base}/{name}@{}", registry.host, image.digest);
        cosign.sign(&registry, &by_digest);
    }
    let keys = tempfile::tempdir().unwrap();
    let mut mount = Mount::new(
        &keys.path().join("keys"),
        &[(KEY, &std::fs::read(old_key.public_key()).unwrap())],
    );
    let policy = format!(
        "verification:\n  noMatch: deny\n  rules:\n    - name: release\n      images: [\"{}/{base}/**\"]\n      signatures:\n        anyOf:\n          - name: release-key\n            key: {{file: {}}}\n            tlog: waived\n",
        registry.host,
        mount.path(KEY).display()
    );
    let tagpin = Tagpin::start(TagpinConfig {
        extra: policy,
        registry_credentials: true,
        ..TagpinConfig::default()
    })
    .await;
    assert!(admitted(&tagpin, &old_image).await, "{}", tagpin.log_tail());
    assert!(
        !admitted(&tagpin, &new_image).await,
        "{}",
        tagpin.log_tail()
    );

    // Revoke the old key: the Secret now holds the new one.
    mount.swap(&[(KEY, &std::fs::read(new_key.public_key()).unwrap())]);
    wait_admission(&tagpin, &old_image, false).await;
    assert!(admitted(&tagpin, &new_image).await, "{}", tagpin.log_tail());
    assert!(
        tagpin.log().contains("reloaded the config"),
        "{}",
        tagpin.log_tail()
    );

    // A broken key: the running policy keeps serving, the error is logged and counted.
    mount.swap(&[(
        KEY,
        b"-----BEGIN PUBLIC KEY-----\nbroken\n-----END PUBLIC KEY-----\n",
    )]);
    let deadline = Instant::now() + WAIT;
    loop {
        let text = metrics(&tagpin).await;
        if text.contains("tagpin_config_reloads_total{result=\"error\"} 1")
            && text.contains("tagpin_config_reload_failing 1")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no failed reload counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        tagpin
            .log()
            .contains("cannot reload the config; keeping the running config")
            && tagpin
                .log()
                .contains(&mount.path(KEY).display().to_string()),
        "{}",
        tagpin.log_tail()
    );
    assert!(admitted(&tagpin, &new_image).await, "{}", tagpin.log_tail());
    assert!(
        !admitted(&tagpin, &old_image).await,
        "{}",
        tagpin.log_tail()
    );

    // Fixed again: reloads, and the failure gauge clears.
    mount.swap(&[(KEY, &std::fs::read(new_key.public_key()).unwrap())]);
    let deadline = Instant::now() + WAIT;
    while !metrics(&tagpin)
        .await
        .contains("tagpin_config_reload_failing 0")
    {
        assert!(Instant::now() < deadline, "{}", tagpin.log_tail());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(admitted(&tagpin, &new_image).await, "{}", tagpin.log_tail());
}
