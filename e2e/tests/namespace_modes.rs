//! Namespace modes behind the real API server: the webhook configuration leaves namespaces
//! out only by name, and tagpin alone decides what a `tagpin.dev/mode` label may do. A
//! tenant who may label its namespace cannot switch off a namespace the config enforces;
//! the config can allow it per namespace (`namespaceLabelOverrides`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tagpin_e2e::TestRegistry;
use tagpin_e2e::cluster::{RunLabel, TestNamespace, client};
use tagpin_e2e::env::repo_root;
use tagpin_e2e::registry::unique_suffix;
use tagpin_e2e::tagpin::{KubeAccess, Tagpin, TagpinConfig};
use tagpin_e2e::webhook::{IMAGES_ANNOTATION, Webhook, rendered_local_url_webhook};

/// A dry-run probe that tagpin denies in enforce without asking a registry.
const PROBE_IMAGE: &str = "TAGPIN-PROBE:invalid";

/// Namespaces of one test, each labelled for its webhook and `tagpin.dev/mode=off`, as a
/// tenant allowed to label its namespace would.
async fn labelled_off(client: &Client, run: &RunLabel, count: usize) -> Vec<TestNamespace> {
    let mut namespaces = Vec::new();
    for _ in 0..count {
        let labels = [(run.key.as_str(), "true"), ("tagpin.dev/mode", "off")];
        namespaces.push(TestNamespace::create(client, "e2e-modes", &labels).await);
    }
    namespaces
}

/// Starts tagpin with `config` (and the cluster's admin access) and registers its webhook.
async fn serve(client: &Client, run: &RunLabel, config: String) -> (Tagpin, Webhook) {
    let tagpin = Tagpin::start(TagpinConfig {
        extra: config,
        registry_credentials: true,
        kube: KubeAccess::Admin,
        ..TagpinConfig::default()
    })
    .await;
    let webhook = Webhook::register(client, &tagpin, run).await;
    (tagpin, webhook)
}

/// An image tagpin cannot resolve: the TLS registry has no such repository.
fn missing_image() -> String {
    let host = TestRegistry::tls().host;
    format!("{host}/e2e/missing-{}:1.0", unique_suffix())
}

fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c0", "image": image}]},
    }))
    .unwrap()
}

/// Creates a Pod with `image` in `namespace`: the stored Pod, or the API server's refusal.
async fn create(client: &Client, namespace: &str, image: &str) -> Result<Pod, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let name = format!("p-{}", unique_suffix());
    pods.create(&PostParams::default(), &pod(&name, image))
        .await
        .map_err(|e| e.to_string())
}

fn assert_denied(outcome: Result<Pod, String>, namespace: &str, image: &str) {
    match outcome {
        Ok(pod) => panic!(
            "{namespace} admitted unresolvable {image}: {:?}",
            pod.annotations()
        ),
        Err(e) => assert!(
            e.contains("tagpin denied this Pod") && e.contains(image),
            "{namespace}: {e}"
        ),
    }
}

#[tokio::test]
async fn a_tenant_label_cannot_switch_off_a_namespace_the_config_enforces() {
    let client = client().await;
    let run = RunLabel::new();
    let namespaces = labelled_off(&client, &run, 1).await;
    let ns = namespaces[0].name.as_str();
    let config = format!("namespaces:\n  {ns}: enforce\n");
    let (tagpin, webhook) = serve(&client, &run, config).await;
    // Before tagpin decided modes itself, the webhook configuration dropped this namespace
    // and the API server never called tagpin: this wait timed out.
    webhook.wait_active(&client, ns, PROBE_IMAGE).await;

    let image = missing_image();
    assert_denied(create(&client, ns, &image).await, ns, &image);
    assert!(
        tagpin.log().contains(&image),
        "tagpin did not deny {image} itself:\n{}",
        tagpin.log_tail()
    );
}

#[tokio::test]
async fn a_label_overrides_the_config_only_where_the_config_allows_it() {
    let client = client().await;
    let run = RunLabel::new();
    let namespaces = labelled_off(&client, &run, 3).await;
    let (allowed, named, unnamed) = (
        namespaces[0].name.as_str(),
        namespaces[1].name.as_str(),
        namespaces[2].name.as_str(),
    );
    let config = format!(
        "namespaceLabels: false\nnamespaces:\n  {allowed}: enforce\n  {named}: enforce\nnamespaceLabelOverrides: [{allowed}]\n"
    );
    let (_tagpin, webhook) = serve(&client, &run, config).await;
    webhook.wait_active(&client, named, PROBE_IMAGE).await;
    webhook.wait_active(&client, unnamed, PROBE_IMAGE).await;

    let image = missing_image();
    // Listed in namespaceLabelOverrides: its label `off` wins, the Pod is left as written.
    let stored = create(&client, allowed, &image)
        .await
        .unwrap_or_else(|e| panic!("{allowed} (label honoured, off) refused the Pod: {e}"));
    assert_eq!(
        stored.spec.as_ref().unwrap().containers[0].image.as_deref(),
        Some(image.as_str())
    );
    assert!(!stored.annotations().contains_key(IMAGES_ANNOTATION));
    // Named but not listed: the config's enforce wins over the label.
    assert_denied(create(&client, named, &image).await, named, &image);
    // Not named, with namespaceLabels: false: defaultMode (enforce) wins over the label.
    assert_denied(create(&client, unnamed, &image).await, unnamed, &image);
}

/// The webhook configuration users install (and the one every e2e test registers, through
/// `manifests/components/local-url`) selects namespaces by `kubernetes.io/metadata.name`
/// only: no label a tenant can set decides whether tagpin is called.
#[test]
fn webhook_leaves_namespaces_out_only_by_name() {
    let base =
        std::fs::read_to_string(repo_root().join("manifests/components/webhook/webhook.yaml"))
            .unwrap();
    let base: Value = serde_norway::from_str(&base).unwrap();
    for config in [base, rendered_local_url_webhook()] {
        for hook in config["webhooks"].as_array().unwrap() {
            let selector = &hook["namespaceSelector"];
            assert!(selector.get("matchLabels").is_none(), "{selector}");
            let expressions = selector["matchExpressions"].as_array().unwrap();
            assert!(!expressions.is_empty(), "{selector}");
            for e in expressions {
                assert_eq!(e["key"], "kubernetes.io/metadata.name", "{selector}");
                assert_eq!(e["operator"], "NotIn", "{selector}");
            }
            assert!(hook.get("objectSelector").is_none(), "{hook}");
        }
    }
}
