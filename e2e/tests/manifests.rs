//! What users install: the base manifests keep tagpin unprivileged and the webhook fail-closed.
//! (`hack/manifests.sh check`, run by `hack/test.sh`, dry-runs them against the API server.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use tagpin_e2e::env::repo_root;

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_root().join("manifests/base").join(file)).unwrap();
    text.split("\n---")
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|d| serde_norway::from_str::<Value>(d).unwrap())
        .collect()
}

fn one(file: &str, kind: &str) -> Value {
    documents(file)
        .into_iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {file}"))
}

#[test]
fn tagpin_runs_as_non_root_with_a_read_only_root_and_no_capabilities() {
    let deployment = one("deployment.yaml", "Deployment");
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
    let namespace = one("namespace.yaml", "Namespace");
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

#[test]
fn webhook_fails_closed_and_leaves_system_namespaces_alone() {
    let config = one("webhook.yaml", "MutatingWebhookConfiguration");
    for hook in config["webhooks"].as_array().unwrap() {
        assert_eq!(hook["failurePolicy"], "Fail");
        assert_eq!(hook["timeoutSeconds"], 10);
        assert_eq!(hook["sideEffects"], "None");
        assert_eq!(hook["reinvocationPolicy"], "IfNeeded");
        let selector = hook["namespaceSelector"].to_string();
        for ns in ["kube-system", "tagpin-system"] {
            assert!(selector.contains(ns), "{ns} is not excluded: {selector}");
        }
    }
}

/// The documents `kubectl kustomize` renders from `manifests/<dir>`.
fn rendered(dir: &str) -> Vec<Value> {
    let out = std::process::Command::new(tagpin_e2e::cluster::kubectl_path())
        .arg("kustomize")
        .arg(repo_root().join("manifests").join(dir))
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
