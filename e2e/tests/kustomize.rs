//! `tagpin pin --krm` as kustomize runs it: an exec KRM function named in a transformer's
//! `config.kubernetes.io/function` annotation, rendered by the standalone `kustomize build
//! --enable-alpha-plugins --enable-exec` over images of the real TLS registry. kubectl's
//! embedded kustomize is checked too: it has no `--enable-exec` and skips the function
//! without a word, which is why the recipe names the standalone CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use tagpin_e2e::TestRegistry;
use tagpin_e2e::cluster::{kubectl_path, tools_env};
use tagpin_e2e::registry::unique_suffix;
use tagpin_e2e::tagpin::tagpin_bin;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The manifests kept in Git: a Deployment with an init container, and a ConfigMap the
/// function must pass through untouched.
fn app(web: &str, migrate: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      initContainers:\n      - name: migrate\n        image: {migrate}\n      containers:\n      - name: web\n        image: {web}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-settings\ndata:\n  image: not-an-image-field:1.0\n"
    )
}

/// A kustomization whose transformer runs `tagpin pin --krm` with the config beside it
/// (exec functions run in the kustomization's directory).
fn kustomization(dir: &Path, registry: &TestRegistry, app_yaml: &str) {
    let write = |name: &str, content: String| std::fs::write(dir.join(name), content).unwrap();
    write("docker-config.json", registry.docker_config_json());
    write(
        "tagpin.yaml",
        format!(
            "resolver:\n  dockerConfig: docker-config.json\n  registries:\n    \"{}\":\n      ca: {}\n",
            registry.host,
            registry.ca.as_ref().unwrap().display()
        ),
    );
    write("app.yaml", app_yaml.to_owned());
    write(
        "pin.yaml",
        format!(
            "apiVersion: tagpin.dev/v1\nkind: Pin\nmetadata:\n  name: pin\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: {}\n        args: [pin, --krm, --config, tagpin.yaml]\n",
            tagpin_bin().display()
        ),
    );
    write(
        "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- app.yaml\ntransformers:\n- pin.yaml\n".to_owned(),
    );
}

fn kustomize_build(dir: &Path) -> Output {
    Command::new(tools_env("TAGPIN_KUSTOMIZE"))
        .args(["build", "--enable-alpha-plugins", "--enable-exec"])
        .arg(dir)
        .output()
        .expect("kustomize runs (hack/tools.sh installs it)")
}

/// The rendered stream's documents, as JSON values.
fn documents(yaml: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .map(|d| serde_norway::from_str::<Value>(d).unwrap())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {docs:#?}"))
}

#[tokio::test]
async fn kustomize_build_pins_through_tagpin_as_an_exec_function() {
    let registry = TestRegistry::tls();
    let repo = format!("e2e/krm-{}", unique_suffix());
    let web = registry.push_image(&repo, "1.0", "krm-web").await.unwrap();
    let migrate = registry
        .push_image(&repo, "migrate-1", "krm-migrate")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    kustomization(
        dir.path(),
        &registry,
        &app(&web.reference, &migrate.reference),
    );

    let out = kustomize_build(dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rendered = text(&out.stdout);
    let docs = documents(&rendered);
    assert_eq!(
        docs.len(),
        2,
        "the function config is not rendered: {rendered}"
    );
    let pod = &of_kind(&docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        format!("{}@{}", web.reference, web.digest)
    );
    assert_eq!(
        pod["initContainers"][0]["image"],
        format!("{}@{}", migrate.reference, migrate.digest)
    );
    assert_eq!(
        of_kind(&docs, "ConfigMap")["data"]["image"],
        "not-an-image-field:1.0"
    );
    assert!(
        !rendered.contains("config.kubernetes.io"),
        "no function bookkeeping is left in the output: {rendered}"
    );

    // A tag the registry does not have: tagpin refuses, so the render fails with its message
    // and prints nothing to apply.
    let missing = format!("{}/{repo}:does-not-exist", registry.host);
    kustomization(dir.path(), &registry, &app(&web.reference, &missing));
    let out = kustomize_build(dir.path());
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("tagpin pin: ") && stderr.contains(&missing),
        "{stderr}"
    );

    // kubectl's embedded kustomize has no --enable-exec: with alpha plugins on it renders
    // without running the function, so its output keeps the tag unpinned.
    kustomization(
        dir.path(),
        &registry,
        &app(&web.reference, &migrate.reference),
    );
    let out = Command::new(kubectl_path())
        .args(["kustomize", "--enable-alpha-plugins"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let docs = documents(&text(&out.stdout));
    let pod = &of_kind(&docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["containers"][0]["image"], web.reference.as_str());
    let out = Command::new(kubectl_path())
        .args(["kustomize", "--enable-alpha-plugins", "--enable-exec"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("unknown flag: --enable-exec"),
        "{}",
        text(&out.stderr)
    );
}
