//! tagpin installed in the local cluster the way the README tells a user: its own image
//! (`hack/image.sh`), certificates from `tagpin certs --kustomize` and the image pinned by
//! digest (`hack/install-overlay.sh`), then `kubectl apply -k`. The test overlay on top adds
//! only what this cluster needs: the policy, the local registry's CA, and a namespace
//! selector that keeps the installed webhook to the namespaces of the tests that use it.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::cluster::{kubectl, wait_for};
use crate::env::{TestEnv, repo_root};
use crate::registry::TestRegistry;
use crate::tagpin::tagpin_bin;

/// The namespace the manifests install tagpin into.
pub const NAMESPACE: &str = "tagpin-system";
/// The label that puts a namespace in the installed webhook's scope.
pub const SCOPE_LABEL: &str = "node.e2e.tagpin.dev/scope";
/// The pull secret [`pull_secret`] creates in a test namespace.
pub const PULL_SECRET: &str = "registry";
/// Replicas of the installed Deployment (manifests/base).
pub const REPLICAS: i32 = 3;

/// How long a rollout of the installed Deployment may take on this machine.
pub const ROLLOUT: Duration = Duration::from_secs(240);

/// The policy of the installed tagpin: enforce everywhere it is called; the local registry
/// over TLS with the test CA; credentials only from each Pod's pull secrets.
fn config(registry: &str) -> String {
    format!(
        "defaultMode: enforce\n\
         resolver:\n  registries:\n    \"{registry}\":\n      ca: /etc/tagpin/registry-ca.pem\n"
    )
}

/// One install at a time in this process: a second apply would rotate the certificates and
/// roll the Deployment under the first test's feet.
static INSTALLING: Mutex<()> = Mutex::new(());

/// Installs tagpin unless the same image already runs, and waits for every replica to be
/// ready. Safe to call from every test: the first call installs, the others wait.
pub async fn install(client: &Client) {
    let env = TestEnv::load();
    let image = node_image(&env);
    {
        let _one = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
        let running = kubectl()
            .args(["-n", NAMESPACE, "get", "deployment", "tagpin", "-o"])
            .arg("jsonpath={.spec.template.spec.containers[0].image}")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        if running != image {
            apply(&env, &image);
        }
    }
    wait_ready(client).await;
}

/// Waits until the installed Deployment has all its replicas ready and up to date.
pub async fn wait_ready(client: &Client) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    wait_for(
        &format!("{REPLICAS} ready replicas of deployment/tagpin"),
        ROLLOUT,
        || async {
            let d = deployments.get_opt("tagpin").await.ok().flatten()?;
            let status = d.status?;
            let generation = d.metadata.generation?;
            (status.observed_generation == Some(generation)
                && status.ready_replicas == Some(REPLICAS)
                && status.updated_replicas == Some(REPLICAS)
                && status.replicas == Some(REPLICAS))
            .then_some(())
        },
    )
    .await;
}

/// tagpin's image under the registry name the node pulls from, pinned by digest.
fn node_image(env: &TestEnv) -> String {
    let pushed = env.require("TAGPIN_IMAGE");
    let local = env.require("TAGPIN_REGISTRY");
    let node = env.require("TAGPIN_NODE_REGISTRY");
    match pushed.strip_prefix(&format!("{local}/")) {
        Some(rest) => format!("{node}/{rest}"),
        None => pushed,
    }
}

fn apply(env: &TestEnv, image: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let install = dir.path().join("install");
    let node_registry = env.require("TAGPIN_NODE_REGISTRY");
    let out = Command::new("bash")
        .arg(repo_root().join("hack/install-overlay.sh"))
        .env("TAGPIN_IMAGE", image)
        .env("TAGPIN_INSTALL_DIR", &install)
        .env("TAGPIN_BIN", tagpin_bin())
        .output()
        .expect("hack/install-overlay.sh runs");
    assert!(
        out.status.success(),
        "hack/install-overlay.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    write_test_overlay(dir.path(), env, &node_registry);
    let out = kubectl()
        .args(["apply", "--server-side", "--force-conflicts", "-k"])
        .arg(dir.path())
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl apply -k: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_test_overlay(dir: &Path, env: &TestEnv, registry: &str) {
    let ca = std::fs::read_to_string(env.require("TAGPIN_REGISTRY_CA")).expect("registry CA");
    let configmap = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "tagpin-config", "namespace": NAMESPACE},
        "data": {"config.yaml": config(registry), "registry-ca.pem": ca},
    });
    std::fs::write(
        dir.join("configmap.yaml"),
        serde_json::to_vec(&configmap).expect("json"),
    )
    .expect("writing configmap.yaml");
    let kustomization = format!(
        r#"# The test overlay: the README's install (install/) plus this cluster's policy and CA,
# and the webhook kept to the node tests' namespaces (other tests share this cluster).
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - install
patches:
  - path: configmap.yaml
  - target:
      kind: Deployment
      name: tagpin
    patch: |-
      - op: add
        path: /spec/template/spec/volumes/0/projected/sources/0/configMap/items/-
        value: {{key: registry-ca.pem, path: registry-ca.pem}}
  - target:
      group: admissionregistration.k8s.io
      kind: MutatingWebhookConfiguration
      name: tagpin
    patch: |-
      - op: add
        path: /webhooks/0/namespaceSelector/matchLabels
        value: {{"{SCOPE_LABEL}": "true"}}
"#
    );
    std::fs::write(dir.join("kustomization.yaml"), kustomization)
        .expect("writing kustomization.yaml");
}

/// Creates the `kubernetes.io/dockerconfigjson` Secret [`PULL_SECRET`] for `registry` in
/// `namespace`: what both tagpin and the kubelet use to reach a private repository.
pub async fn pull_secret(client: &Client, namespace: &str, registry: &TestRegistry) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": PULL_SECRET},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": registry.docker_config_json()},
    }))
    .expect("secret");
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|e| panic!("creating the pull secret in {namespace}: {e}"));
}

/// `kubectl` output of `args`, asserting success.
pub fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl().args(args).output().expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
