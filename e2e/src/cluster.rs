//! The local control plane from a test's point of view: a kube client, the built `kubectl`,
//! throwaway namespaces, and waiting for a condition with a deadline.

use std::future::Future;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use crate::env::{TestEnv, repo_root};
use crate::registry::unique_suffix;

/// The label key prefix that scopes a test run's webhook to its own namespaces.
pub const RUN_LABEL_PREFIX: &str = "run.e2e.tagpin.dev/";

/// The admin kubeconfig that `hack/control-plane.sh` wrote.
pub fn kubeconfig() -> PathBuf {
    PathBuf::from(TestEnv::load().require("KUBECONFIG"))
}

/// The admin kubeconfig of the second control plane, for tests across clusters:
/// `KUBECONFIG_2`, or the `KUBECONFIG` of `$TAGPIN_STATE/control-plane-2.env`.
pub fn second_kubeconfig() -> PathBuf {
    let path = TestEnv::load().get("KUBECONFIG_2").unwrap_or_else(|| {
        panic!(
            "the second control plane is not running (no KUBECONFIG_2 and no control-plane-2.env): start it with TAGPIN_CP_INSTANCE=2 hack/control-plane.sh start"
        )
    });
    PathBuf::from(path)
}

/// A client of the local API server with the admin kubeconfig.
pub async fn client() -> Client {
    client_of(&kubeconfig()).await
}

/// A client of the second control plane ([`second_kubeconfig`]).
pub async fn second_client() -> Client {
    client_of(&second_kubeconfig()).await
}

async fn client_of(path: &std::path::Path) -> Client {
    // One crypto provider for every TLS user in the test process.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let kubeconfig = Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("reading kubeconfig {}: {e}", path.display()));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    Client::try_from(config).expect("kube client builds")
}

/// A path that `hack/tools.sh env` exports (`TAGPIN_K8S_BIN`, `TAGPIN_COSIGN_V2`, ...),
/// from the environment or else from the script itself.
pub fn tools_env(name: &str) -> PathBuf {
    if let Some(value) = TestEnv::load().get(name) {
        return PathBuf::from(value);
    }
    let out = Command::new("bash")
        .arg(repo_root().join("hack/tools.sh"))
        .arg("env")
        .output()
        .expect("hack/tools.sh env runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("export {name}=");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .map(|v| PathBuf::from(v.trim_matches('\'')))
        .unwrap_or_else(|| panic!("hack/tools.sh env does not name {name}"))
}

/// The `kubectl` that `hack/tools.sh` built.
pub fn kubectl_path() -> PathBuf {
    tools_env("TAGPIN_K8S_BIN").join("kubectl")
}

/// A `kubectl` command using the admin kubeconfig.
pub fn kubectl() -> Command {
    let mut cmd = Command::new(kubectl_path());
    cmd.arg("--kubeconfig").arg(kubeconfig());
    cmd
}

/// Runs `kubectl` with `args` and `stdin`, returning its output whatever the exit code.
pub fn kubectl_with_input(args: &[&str], stdin: &str) -> Output {
    use std::io::Write as _;
    let mut child = kubectl()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("writing kubectl's stdin");
    child.wait_with_output().expect("kubectl finishes")
}

/// A label unique to one test: its key scopes a webhook configuration to the namespaces
/// that carry it, so concurrent runs never call each other's tagpin.
#[derive(Debug, Clone)]
pub struct RunLabel {
    /// The label key, `run.e2e.tagpin.dev/<unique>`.
    pub key: String,
}

impl RunLabel {
    /// A fresh label key.
    pub fn new() -> Self {
        Self {
            key: format!("{RUN_LABEL_PREFIX}{}", unique_suffix()),
        }
    }
}

impl Default for RunLabel {
    fn default() -> Self {
        Self::new()
    }
}

/// The node selector (set by the API server's `PodNodeSelector` plugin from a namespace
/// annotation) that keeps a namespace's Pods off the node: they are stored and stay Pending.
pub const STORED_ONLY_NODE_SELECTOR: &str = "tagpin.dev/stored-only=true";

/// A namespace created for one test and deleted (without waiting) when dropped.
#[derive(Debug)]
pub struct TestNamespace {
    /// Its name.
    pub name: String,
    /// The kubeconfig of the cluster it lives in, to delete it there.
    kubeconfig: PathBuf,
}

impl TestNamespace {
    /// Creates `<prefix>-<unique>` with `labels`, and waits until Pods can be created in it
    /// (the ServiceAccount admission plugin wants the `default` ServiceAccount first).
    /// Its Pods are only stored: the kubelet never sees them, so a test that writes their
    /// status stands in for it undisturbed, and test images need not be runnable.
    pub async fn create(client: &Client, prefix: &str, labels: &[(&str, &str)]) -> Self {
        Self::create_with(
            client,
            kubeconfig(),
            prefix,
            labels,
            Some(STORED_ONLY_NODE_SELECTOR),
        )
        .await
    }

    /// Like [`TestNamespace::create`], but its Pods are scheduled onto the node and run.
    pub async fn create_on_node(client: &Client, prefix: &str, labels: &[(&str, &str)]) -> Self {
        Self::create_with(client, kubeconfig(), prefix, labels, None).await
    }

    /// As [`TestNamespace::create`], in the cluster of `client`, whose admin kubeconfig
    /// `kubeconfig` deletes it again.
    pub async fn create_in(
        client: &Client,
        kubeconfig: PathBuf,
        prefix: &str,
        labels: &[(&str, &str)],
    ) -> Self {
        Self::create_with(
            client,
            kubeconfig,
            prefix,
            labels,
            Some(STORED_ONLY_NODE_SELECTOR),
        )
        .await
    }

    async fn create_with(
        client: &Client,
        kubeconfig: PathBuf,
        prefix: &str,
        labels: &[(&str, &str)],
        node_selector: Option<&str>,
    ) -> Self {
        let name = format!("{prefix}-{}", unique_suffix());
        let labels: serde_json::Map<String, serde_json::Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        let annotations = match node_selector {
            Some(selector) => json!({"scheduler.alpha.kubernetes.io/node-selector": selector}),
            None => json!({}),
        };
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels, "annotations": annotations},
        }))
        .expect("namespace object");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &name);
        wait_for(
            &format!("the default ServiceAccount in {name}"),
            Duration::from_secs(60),
            || async { accounts.get_opt("default").await.ok().flatten() },
        )
        .await;
        Self { name, kubeconfig }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Drop cannot await; kubectl deletes without blocking on the namespace controller.
        let _ = Command::new(kubectl_path())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args([
                "delete",
                "namespace",
                &self.name,
                "--ignore-not-found",
                "--wait=false",
            ])
            .output();
    }
}

/// Polls `check` every 100ms until it returns `Some`, panicking after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
