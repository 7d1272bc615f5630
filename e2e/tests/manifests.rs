//! What users install: the base manifests keep tagpin unprivileged, the webhook fail-closed,
//! and no kustomization registers that webhook without the certificate source it needs.
//! (`hack/manifests.sh check`, run by `hack/test.sh`, dry-runs them against the API server.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;
use tagpin_e2e::manifests::{create_tagpin_namespace, find, manifests_dir, render, server_dry_run};
use tagpin_e2e::tagpin::tagpin_bin;

fn documents(path: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(manifests_dir().join(path)).unwrap();
    text.split("\n---")
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|d| serde_norway::from_str::<Value>(d).unwrap())
        .collect()
}

fn one(path: &str, kind: &str) -> Value {
    documents(path)
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {path}"))
}

/// Every kustomization a user can apply on its own (the base and each overlay), and the
/// cert-manager install as the README writes it (the base with its component), rendered.
fn installable() -> Vec<(String, Vec<Value>)> {
    let mut dirs = vec!["base".to_owned()];
    for entry in std::fs::read_dir(manifests_dir().join("overlays")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        dirs.push(format!("overlays/{name}"));
    }
    let mut rendered: Vec<(String, Vec<Value>)> = dirs
        .into_iter()
        .map(|d| {
            let objects = render(&manifests_dir().join(&d))
                .unwrap_or_else(|e| panic!("manifests/{d} does not render: {e}"));
            (d, objects)
        })
        .collect();
    let install = tempfile::tempdir().unwrap();
    // kustomize takes only relative paths to other kustomizations.
    let up = "../".repeat(install.path().components().count() - 1);
    let manifests = manifests_dir().canonicalize().unwrap();
    let from_root = manifests.strip_prefix("/").unwrap().display().to_string();
    std::fs::write(
        install.path().join("kustomization.yaml"),
        format!(
            "resources: [{up}{from_root}/base]\ncomponents: [{up}{from_root}/components/cert-manager]\n"
        ),
    )
    .unwrap();
    let objects = render(install.path())
        .unwrap_or_else(|e| panic!("the README's cert-manager install does not render: {e}"));
    rendered.push(("base + components/cert-manager".to_owned(), objects));
    rendered
}

/// The names a webhook's namespaceSelector leaves out by `kubernetes.io/metadata.name`.
fn excluded_namespaces(hook: &Value) -> Vec<String> {
    hook["namespaceSelector"]["matchExpressions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["key"] == "kubernetes.io/metadata.name" && e["operator"] == "NotIn")
        .flat_map(|e| e["values"].as_array().unwrap().clone())
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The bytes of base64 `data` as the API server reads them (kustomize wraps long values).
fn decode(data: &str) -> Result<Vec<u8>, String> {
    let data: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| format!("not base64: {e}"))
}

/// The PEM certificates in a base64 `caBundle`, or why it is not one.
fn bundle_certificates(bundle: &str) -> Result<usize, String> {
    let pem = decode(bundle).map_err(|e| format!("caBundle: {e}"))?;
    let pem = String::from_utf8(pem).map_err(|e| format!("caBundle is not PEM: {e}"))?;
    let count = pem.matches("-----BEGIN CERTIFICATE-----").count();
    if count == 0 {
        return Err(format!("caBundle holds no certificate: {pem}"));
    }
    Ok(count)
}

#[test]
fn tagpin_runs_as_non_root_with_a_read_only_root_and_no_capabilities() {
    let deployment = one("base/deployment.yaml", "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let containers = pod["containers"].as_array().unwrap();
    assert!(!containers.is_empty());
    for c in containers {
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{}", c["name"]);
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{}", c["name"]);
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{}",
            c["name"]
        );
        assert!(sc["capabilities"]["add"].is_null(), "{}", c["name"]);
        assert_ne!(sc["privileged"], true, "{}", c["name"]);
        assert!(
            c["resources"]["limits"]["memory"].is_string(),
            "{}",
            c["name"]
        );
    }
    assert_eq!(deployment["spec"]["replicas"], 3);
    let namespace = one("base/namespace.yaml", "Namespace");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn webhook_fails_closed_and_leaves_system_namespaces_alone() {
    let config = one(
        "components/webhook/webhook.yaml",
        "MutatingWebhookConfiguration",
    );
    for hook in config["webhooks"].as_array().unwrap() {
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["timeoutSeconds"], 10);
        assert_eq!(hook["sideEffects"], "None");
        assert_eq!(hook["reinvocationPolicy"], "IfNeeded");
        let excluded = excluded_namespaces(hook);
        for ns in ["kube-system", "tagpin-system"] {
            assert!(
                excluded.iter().any(|e| e == ns),
                "{ns} is not excluded: {excluded:?}"
            );
        }
    }
}

/// Applied alone, the base registers no webhook: nothing it installs can block a Pod.
#[test]
fn the_base_installs_no_webhook() {
    let base = render(&manifests_dir().join("base")).unwrap();
    assert!(find(&base, "MutatingWebhookConfiguration").is_none());
    assert!(find(&base, "ValidatingWebhookConfiguration").is_none());
    assert!(find(&base, "Deployment").is_some());
}

/// Each overlay's fail-closed webhook comes with its certificate source, and never sits in
/// the path that brings tagpin or its certificate back.
#[test]
fn every_overlays_webhook_comes_with_its_certificate_source() {
    let mut webhooks = 0;
    for (dir, objects) in installable() {
        for config in objects
            .iter()
            .filter(|o| o["kind"] == "MutatingWebhookConfiguration")
        {
            webhooks += 1;
            let injected = &config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"];
            for hook in config["webhooks"].as_array().unwrap() {
                let excluded = excluded_namespaces(hook);
                let own = hook["clientConfig"]["service"]["namespace"]
                    .as_str()
                    .unwrap_or("tagpin-system");
                for ns in [own, "tagpin-system", "kube-system"] {
                    assert!(
                        excluded.iter().any(|e| e == ns),
                        "manifests/{dir}: {ns} is not excluded: {excluded:?}"
                    );
                }
                if let Some(source) = injected.as_str() {
                    assert!(
                        objects.iter().any(|o| o["kind"] == "Certificate"
                            && format!(
                                "{}/{}",
                                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                                o["metadata"]["name"].as_str().unwrap_or_default()
                            ) == source),
                        "manifests/{dir}: no Certificate {source} for the CA injector"
                    );
                    assert!(
                        excluded.iter().any(|e| e == "cert-manager"),
                        "manifests/{dir}: the cert-manager namespace is not excluded: {excluded:?}"
                    );
                } else {
                    let bundle = hook["clientConfig"]["caBundle"]
                        .as_str()
                        .unwrap_or_else(|| {
                            panic!("manifests/{dir}: webhook without caBundle or CA injection")
                        });
                    bundle_certificates(bundle).unwrap_or_else(|e| panic!("manifests/{dir}: {e}"));
                }
            }
        }
    }
    assert!(webhooks > 0, "no overlay installs the webhook");
}

/// A component carrying the webhook does not build on its own (it needs the base's Service
/// and its certificate source); the others carry no webhook.
#[test]
fn no_component_registers_the_webhook_alone() {
    for entry in std::fs::read_dir(manifests_dir().join("components")).unwrap() {
        let dir = entry.unwrap().path();
        if let Ok(objects) = render(&dir) {
            assert!(
                find(&objects, "MutatingWebhookConfiguration").is_none(),
                "{} renders a webhook on its own",
                dir.display()
            );
        }
    }
    for carrier in ["webhook", "self-signed", "local-url", "cert-manager"] {
        assert!(
            render(&manifests_dir().join("components").join(carrier)).is_err(),
            "manifests/components/{carrier} builds alone"
        );
    }
}

/// tagpin runs from one image, pinned by digest, in every Deployment of every overlay.
#[test]
fn tagpin_runs_from_its_image_pinned_by_digest() {
    let mut images = Vec::new();
    for (dir, objects) in installable() {
        for d in objects.iter().filter(|o| o["kind"] == "Deployment") {
            for c in d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
            {
                let image = c["image"].as_str().unwrap().to_owned();
                assert!(
                    is_pinned_by_digest(&image),
                    "manifests/{dir}: {image} is not NAME@sha256:<64 hex>"
                );
                images.push(image);
            }
        }
    }
    images.sort();
    images.dedup();
    assert_eq!(images.len(), 1, "more than one tagpin image: {images:?}");
    assert!(
        images[0].starts_with("ghcr.io/tagpin/tagpin@"),
        "{images:?}"
    );
}

fn is_pinned_by_digest(image: &str) -> bool {
    image.split_once("@sha256:").is_some_and(|(name, hex)| {
        !name.is_empty()
            && hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn run_certs(dir: &Path, image: &str) {
    let out = Command::new(tagpin_bin())
        .args(["certs", "--kustomize", "--out"])
        .arg(dir)
        .arg("--manifests")
        .arg(manifests_dir())
        .args(["--image", image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tagpin certs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The decoded `key` of the generated `tagpin-tls-<hash>` Secret among `objects`.
fn secret_data(objects: &[Value], key: &str) -> Vec<u8> {
    let secret = objects
        .iter()
        .find(|o| {
            o["kind"] == "Secret"
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("tagpin-tls-"))
        })
        .expect("a generated tagpin-tls Secret");
    decode(secret["data"][key].as_str().unwrap()).unwrap()
}

/// The decoded caBundle of the first webhook of the MutatingWebhookConfiguration in `objects`.
fn ca_bundle(objects: &[Value]) -> Vec<u8> {
    let webhook = find(objects, "MutatingWebhookConfiguration").expect("a webhook configuration");
    decode(
        webhook["webhooks"][0]["clientConfig"]["caBundle"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

/// The README's self-signed install, as written: `tagpin certs --out my-install --kustomize
/// --image ...` then `kubectl apply -k my-install`, here a server-side dry run against the
/// local API server. The webhook trusts exactly the generated CA, the Secret holds the
/// certificate tagpin serves, and a second run (renewal) trusts the new and the old CA.
#[test]
fn the_readmes_self_signed_install_applies_with_its_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let install = tmp.path().join("my-install");
    let image = format!("127.0.0.1:5443/tagpin/tagpin@sha256:{}", "ab".repeat(32));
    run_certs(&install, &image);

    let objects = render(&install).unwrap();
    let ca = std::fs::read(install.join("ca.crt")).unwrap();
    let cert = std::fs::read(install.join("tls.crt")).unwrap();
    assert_eq!(ca_bundle(&objects), ca);
    assert_eq!(secret_data(&objects, "tls.crt"), cert);
    assert_eq!(
        secret_data(&objects, "tls.key"),
        std::fs::read(install.join("tls.key")).unwrap()
    );
    let deployment = find(&objects, "Deployment").unwrap();
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        image.as_str()
    );

    create_tagpin_namespace();
    let applied = server_dry_run(&install)
        .unwrap_or_else(|e| panic!("the API server rejects the self-signed install: {e}"));
    assert_eq!(ca_bundle(&applied), ca);
    assert_eq!(secret_data(&applied, "tls.crt"), cert);

    // Renewal: the new CA first, the replaced one after it.
    let old_ca = String::from_utf8(ca).unwrap();
    run_certs(&install, &image);
    let new_ca = std::fs::read_to_string(install.join("ca.crt")).unwrap();
    assert_ne!(old_ca, new_ca);
    let bundle = String::from_utf8(ca_bundle(&render(&install).unwrap())).unwrap();
    assert_eq!(bundle, format!("{new_ca}{old_ca}"));
    assert_eq!(bundle.matches("-----BEGIN CERTIFICATE-----").count(), 2);
}

/// The documents `kubectl kustomize` renders from `manifests/<dir>`.
fn rendered(dir: &str) -> Vec<Value> {
    let out = Command::new(tagpin_e2e::cluster::kubectl_path())
        .arg("kustomize")
        .arg(manifests_dir().join(dir))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "manifests/{dir} does not render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split("\n---\n")
        .map(|d| serde_norway::from_str::<Value>(d).unwrap())
        .collect()
}

/// Whether `selector`'s `matchLabels` all hold in `labels`.
fn selects(selector: &Value, labels: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| &labels[k] == v))
}

#[test]
fn every_deployment_of_more_than_one_replica_has_a_budget_that_keeps_one_and_lets_one_go() {
    let docs = rendered("overlays/drift-watch");
    let deployments: Vec<&Value> = docs.iter().filter(|d| d["kind"] == "Deployment").collect();
    let names: Vec<&str> = deployments
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["tagpin", "tagpin-watch"]);
    for deployment in deployments {
        let name = &deployment["metadata"]["name"];
        let replicas = deployment["spec"]["replicas"].as_i64().unwrap();
        assert!(replicas > 1, "{name}");
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        let budgets: Vec<&Value> = docs
            .iter()
            .filter(|d| {
                d["kind"] == "PodDisruptionBudget"
                    && d["metadata"]["namespace"] == deployment["metadata"]["namespace"]
                    && selects(&d["spec"]["selector"], labels)
            })
            .collect();
        // Two budgets over the same Pods make every eviction of them fail.
        assert_eq!(budgets.len(), 1, "{name}: {budgets:#?}");
        let spec = &budgets[0]["spec"];
        let (kept, let_go) = match (
            spec["minAvailable"].as_i64(),
            spec["maxUnavailable"].as_i64(),
        ) {
            (Some(min), None) => (min, replicas - min),
            (None, Some(max)) => (replicas - max, max),
            _ => panic!("{name}: a budget with one whole-number bound: {spec}"),
        };
        assert!(kept >= 1, "{name}: a drain may take every replica: {spec}");
        assert!(let_go >= 1, "{name}: a drain can never evict one: {spec}");
    }
}
