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
