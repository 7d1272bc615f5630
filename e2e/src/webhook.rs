//! Registers a test's tagpin with the API server: the MutatingWebhookConfiguration that
//! `manifests/components/local-url` renders, renamed, pointed at the test's tagpin, and
//! narrowed to the namespaces carrying the test's run label.

use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use crate::cluster::{RunLabel, kubectl, wait_for};
use crate::manifests;
use crate::registry::unique_suffix;
use crate::tagpin::Tagpin;

/// The annotation tagpin writes on every object it pinned.
pub const IMAGES_ANNOTATION: &str = "tagpin.dev/images";

/// A MutatingWebhookConfiguration of one test, deleted when dropped.
#[derive(Debug)]
pub struct Webhook {
    /// Its name (unique per test).
    pub name: String,
}

impl Webhook {
    /// Renders the local-url component and registers its webhook for `tagpin`, limited to
    /// namespaces labelled with `run`'s key.
    pub async fn register(client: &Client, tagpin: &Tagpin, run: &RunLabel) -> Self {
        let name = format!("tagpin-e2e-{}", unique_suffix());
        let mut config = rendered_local_url_webhook();
        config["metadata"]["name"] = json!(name);
        let hook = &mut config["webhooks"][0];
        hook["clientConfig"] = json!({
            "url": tagpin.url("/mutate"),
            "caBundle": base64::engine::general_purpose::STANDARD.encode(tagpin.ca_pem()),
        });
        let expressions = hook["namespaceSelector"]["matchExpressions"]
            .as_array_mut()
            .expect("the base webhook selects namespaces by expressions");
        expressions.push(json!({"key": run.key, "operator": "Exists"}));
        let config: MutatingWebhookConfiguration =
            serde_json::from_value(config).expect("rendered webhook configuration");
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .create(&PostParams::default(), &config)
            .await
            .unwrap_or_else(|e| panic!("registering webhook configuration {name}: {e}"));
        Self { name }
    }

    /// Waits until the API server calls tagpin for `namespace`: a dry-run Pod with `image`
    /// comes back annotated by tagpin, or denied by it.
    pub async fn wait_active(&self, client: &Client, namespace: &str, image: &str) {
        let pods = Api::<Pod>::namespaced(client.clone(), namespace);
        let probe: Pod = serde_json::from_value(json!({
            "metadata": {"name": "tagpin-probe"},
            "spec": {"containers": [{"name": "probe", "image": image}]},
        }))
        .expect("probe pod");
        let dry_run = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        wait_for(
            &format!("webhook {} to call tagpin for {namespace}", self.name),
            Duration::from_secs(30),
            || async {
                match pods.create(&dry_run, &probe).await {
                    Ok(pod) => pod
                        .metadata
                        .annotations
                        .as_ref()?
                        .contains_key(IMAGES_ANNOTATION)
                        .then_some(()),
                    Err(e) => e.to_string().contains("tagpin denied").then_some(()),
                }
            },
        )
        .await;
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        // Drop cannot await; kubectl removes the configuration synchronously.
        let _ = kubectl()
            .args([
                "delete",
                "mutatingwebhookconfiguration",
                &self.name,
                "--ignore-not-found",
            ])
            .output();
    }
}

/// The MutatingWebhookConfiguration of the base with `manifests/components/local-url`, composed
/// as `hack/manifests.sh local-webhook` composes it (its URL and caBundle are the caller's).
pub fn rendered_local_url_webhook() -> Value {
    let dir = tempfile::tempdir().expect("temporary directory");
    let objects = manifests::compose(dir.path(), &["local-url"], "")
        .unwrap_or_else(|e| panic!("manifests/components/local-url does not render: {e}"));
    manifests::find(&objects, "MutatingWebhookConfiguration")
        .cloned()
        .expect("manifests/components/local-url renders a MutatingWebhookConfiguration")
}
