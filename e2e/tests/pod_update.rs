//! Pod updates behind the real API server: `kubectl set image pod/...` is pinned and
//! verified as a creation is, and updates that change no image never need a registry.
//!
//! Every test runs its own `tagpin serve` and its own webhook configuration, limited to a
//! namespace carrying a label unique to the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tagpin_e2e::cluster::{RunLabel, TestNamespace, client, kubectl, kubectl_with_input};
use tagpin_e2e::fake_registry::{FakeRegistry, MANIFEST, MANIFEST_TYPE, http, is_head};
use tagpin_e2e::registry::{sha256, unique_suffix};
use tagpin_e2e::tagpin::{KubeAccess, Tagpin, TagpinConfig};
use tagpin_e2e::webhook::{IMAGES_ANNOTATION, Webhook};
use tagpin_e2e::{PushedImage, TestRegistry};

/// A dry-run probe that tagpin denies without a registry.
const PROBE_IMAGE: &str = "TAGPIN-PROBE:invalid";

/// One enforce-mode namespace served by its own tagpin. Fields drop in order: the
/// webhook goes first.
struct Served {
    _webhook: Webhook,
    tagpin: Tagpin,
    namespace: TestNamespace,
    client: Client,
}

impl Served {
    async fn start(config: TagpinConfig) -> Self {
        let client = client().await;
        let run = RunLabel::new();
        let namespace =
            TestNamespace::create(&client, "e2e-update", &[(run.key.as_str(), "true")]).await;
        let tagpin = Tagpin::start(TagpinConfig {
            kube: KubeAccess::Admin,
            ..config
        })
        .await;
        let webhook = Webhook::register(&client, &tagpin, &run).await;
        webhook
            .wait_active(&client, &namespace.name, PROBE_IMAGE)
            .await;
        Self {
            _webhook: webhook,
            tagpin,
            namespace,
            client,
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace.name)
    }

    /// Creates Pod `name` with one container `c0` running `image`.
    async fn create_pod(&self, name: &str, image: &str) -> Pod {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c0", "image": image}]},
        }))
        .unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "creating {name} with {image}: {e}\n{}",
                    self.tagpin.log_tail()
                )
            })
    }

    /// Runs `kubectl ARGS -n NAMESPACE`: (success, stderr).
    fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let out = kubectl()
            .args(args)
            .args(["-n", &self.namespace.name])
            .output()
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn pinned(image: &PushedImage) -> String {
    format!("{}@{}", image.reference, image.digest)
}

fn image_of(pod: &Pod) -> String {
    pod.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

/// The `tagpin.dev/images` record of container `c0`.
fn record(pod: &Pod) -> Value {
    let text = pod
        .annotations()
        .get(IMAGES_ANNOTATION)
        .unwrap_or_else(|| panic!("{} has no {IMAGES_ANNOTATION}", pod.name_any()));
    let list: Vec<Value> = serde_json::from_str(text).unwrap();
    list.into_iter()
        .find(|r| r["path"] == "/spec/containers/0/image")
        .unwrap_or_else(|| panic!("no record of /spec/containers/0/image in {text}"))
}

async fn push(registry: &TestRegistry, repository: &str, tag: &str, seed: &str) -> PushedImage {
    registry.push_image(repository, tag, seed).await.unwrap()
}

#[tokio::test]
async fn set_image_on_a_pod_pins_the_new_tag_and_rewrites_its_record() {
    let registry = TestRegistry::tls();
    let repository = format!("e2e/update-{}", unique_suffix());
    let v1 = push(&registry, &repository, "1.0", "v1").await;
    let v2 = push(&registry, &repository, "2.0", "v2").await;
    let s = Served::start(TagpinConfig {
        registry_credentials: true,
        ..TagpinConfig::default()
    })
    .await;
    let created = s.create_pod("web", &v1.reference).await;
    assert_eq!(image_of(&created), pinned(&v1));

    let (ok, stderr) = s.kubectl(&["set", "image", "pod/web", &format!("c0={}", v2.reference)]);
    assert!(ok, "{stderr}\n{}", s.tagpin.log_tail());
    let stored = s.pods().get("web").await.unwrap();
    assert_eq!(image_of(&stored), pinned(&v2));
    let rec = record(&stored);
    assert_eq!(rec["original"], v2.reference.as_str());
    assert_eq!(rec["digest"], v2.digest.as_str());
    assert!(rec["resolvedAt"].is_string(), "{rec}");

    // The tag moves; writing it again (as `kubectl apply` of the same manifest does)
    // keeps the pin and the record: the running container is not replaced behind the
    // writer's back.
    let moved = push(&registry, &repository, "2.0", "v2-moved").await;
    assert_ne!(moved.digest, v2.digest);
    let (ok, stderr) = s.kubectl(&["set", "image", "pod/web", &format!("c0={}", v2.reference)]);
    assert!(ok, "{stderr}");
    let again = s.pods().get("web").await.unwrap();
    assert_eq!(image_of(&again), pinned(&v2));
    assert_eq!(record(&again), rec);
}

#[tokio::test]
async fn set_image_on_a_pod_to_a_tag_that_does_not_resolve_is_denied_in_enforce() {
    let registry = TestRegistry::tls();
    let repository = format!("e2e/update-{}", unique_suffix());
    let v1 = push(&registry, &repository, "1.0", "v1").await;
    let missing = format!("{}/{repository}:missing", registry.host);
    let s = Served::start(TagpinConfig {
        registry_credentials: true,
        ..TagpinConfig::default()
    })
    .await;
    s.create_pod("web", &v1.reference).await;

    let (ok, stderr) = s.kubectl(&["set", "image", "pod/web", &format!("c0={missing}")]);
    assert!(!ok, "enforce admitted {missing}");
    assert!(
        stderr.contains("tagpin denied this Pod") && stderr.contains(&missing),
        "{stderr}"
    );
    let stored = s.pods().get("web").await.unwrap();
    assert_eq!(image_of(&stored), pinned(&v1));
    assert_eq!(record(&stored)["digest"], v1.digest.as_str());
}

/// `kubectl apply` of the manifest a Pod was created from sends its tag again: the Pod
/// keeps the digest it was pinned to, even after the tag has moved.
#[tokio::test]
async fn reapplying_the_original_manifest_keeps_the_pod_on_its_pinned_digest() {
    let registry = TestRegistry::tls();
    let repository = format!("e2e/update-{}", unique_suffix());
    let v1 = push(&registry, &repository, "1.0", "v1").await;
    let s = Served::start(TagpinConfig {
        registry_credentials: true,
        ..TagpinConfig::default()
    })
    .await;
    let manifest = |labels: Value| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": s.namespace.name, "labels": labels},
            "spec": {"containers": [{"name": "c0", "image": v1.reference}]},
        })
        .to_string()
    };
    let out = kubectl_with_input(&["apply", "-f", "-"], &manifest(json!({"v": "1"})));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created = s.pods().get("web").await.unwrap();
    assert_eq!(image_of(&created), pinned(&v1));

    let moved = push(&registry, &repository, "1.0", "v1-moved").await;
    assert_ne!(moved.digest, v1.digest);
    let out = kubectl_with_input(&["apply", "-f", "-"], &manifest(json!({"v": "2"})));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let applied = s.pods().get("web").await.unwrap();
    assert_eq!(applied.labels()["v"], "2");
    assert_eq!(image_of(&applied), pinned(&v1));
    assert_eq!(record(&applied), record(&created));
    // kubectl did send the tag again, and tagpin put the pin back: both the creation and
    // the re-apply were answered with a patch.
    let patched = s
        .tagpin
        .log()
        .lines()
        .filter(|l| l.contains(r#""name":"web""#) && l.contains(r#""outcome":"patched""#))
        .count();
    assert_eq!(patched, 2, "{}", s.tagpin.log_tail());
}

/// A registry on loopback that serves one empty image under every tag, until stopped.
async fn registry_serving_one_image() -> (FakeRegistry, String) {
    let digest = sha256(MANIFEST.as_bytes());
    let answer = digest.clone();
    let registry = FakeRegistry::start(Arc::new(move |_, line| {
        http(
            "200 OK",
            &[
                ("Content-Type", MANIFEST_TYPE.into()),
                ("Docker-Content-Digest", answer.clone()),
            ],
            MANIFEST.as_bytes(),
            is_head(line),
        )
    }))
    .await;
    (registry, digest)
}

// Blocking kubectl calls must not stall the in-process registry: two worker threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_label_update_succeeds_while_the_registry_is_down() {
    let (mut registry, digest) = registry_serving_one_image().await;
    let image = format!("{}/e2e/app:1.0", registry.addr);
    let s = Served::start(TagpinConfig::default()).await;
    let created = s.create_pod("web", &image).await;
    assert_eq!(image_of(&created), format!("{image}@{digest}"));
    let rec = record(&created);

    registry.stop().await;
    let (ok, stderr) = s.kubectl(&["label", "pod/web", "team=payments"]);
    assert!(ok, "{stderr}\n{}", s.tagpin.log_tail());
    // An edited record is put back: the stored record is tagpin's.
    let (ok, stderr) = s.kubectl(&[
        "annotate",
        "--overwrite",
        "pod/web",
        &format!(
            r#"{IMAGES_ANNOTATION}=[{{"path":"/spec/containers/0/image","verdict":"verified"}}]"#
        ),
        "tagpin.dev/approved=true",
    ]);
    assert!(ok, "{stderr}");
    let stored = s.pods().get("web").await.unwrap();
    assert_eq!(stored.labels()["team"], "payments");
    assert_eq!(image_of(&stored), format!("{image}@{digest}"));
    assert_eq!(record(&stored), rec);
    assert!(!stored.annotations().contains_key("tagpin.dev/approved"));

    // The registry is down for tagpin indeed: a new tag cannot be pinned, so it is denied.
    let (ok, stderr) = s.kubectl(&[
        "set",
        "image",
        "pod/web",
        &format!("c0={}/e2e/app:2.0", registry.addr),
    ]);
    assert!(!ok, "an image tagpin could not resolve was admitted");
    assert!(
        stderr.contains("tagpin denied this Pod") && stderr.contains(&registry.addr),
        "{stderr}"
    );
}
