//! AdmissionReview request bodies shaped like what the API server sends for a Pod.

use bytes::Bytes;
use serde_json::{Value, json};

/// Namespace of every bench Pod (tagpin's default mode, enforce, applies).
const NAMESPACE: &str = "bench";

/// A container as a Deployment's Pod would carry it: ports, env, resources, probes, mounts.
fn container(name: &str, image: &str) -> Value {
    json!({
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
        "env": [
            {"name": "LOG_LEVEL", "value": "info"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        ],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10},
        "volumeMounts": [{"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    })
}

/// A Pod whose init container runs `images[0]` and whose containers run the rest.
pub fn pod(name: &str, images: &[String]) -> Value {
    let (init, rest) = images
        .split_first()
        .map_or((&[][..], images), |(first, rest)| {
            (std::slice::from_ref(first), rest)
        });
    let init: Vec<Value> = init.iter().map(|i| container("init", i)).collect();
    let containers: Vec<Value> = rest
        .iter()
        .enumerate()
        .map(|(n, i)| container(&format!("c{n}"), i))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "generateName": "web-7d4b9c8f6d-",
            "namespace": NAMESPACE,
            "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6d"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6d", "uid": "7c1e1c9e-5b1e-4a47-9d55-0c3c1d6f3a10", "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {
            "initContainers": init,
            "containers": containers,
            "volumes": [{"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}],
            "restartPolicy": "Always",
            "serviceAccountName": "default",
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
            "enableServiceLinks": true,
        },
    })
}

/// The AdmissionReview of creating `pod`.
pub fn create(uid: u64, pod: &Value) -> Bytes {
    review(uid, "CREATE", pod, &Value::Null)
}

/// The AdmissionReview of deleting `pod`: tagpin answers it without looking at images.
pub fn delete(uid: u64, pod: &Value) -> Bytes {
    review(uid, "DELETE", &Value::Null, pod)
}

fn review(uid: u64, operation: &str, object: &Value, old: &Value) -> Bytes {
    let body = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("3b0d6f3e-bench-{uid:012}"),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": object["metadata"]["name"].as_str().or(old["metadata"]["name"].as_str()),
            "namespace": NAMESPACE,
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "uid": "5f3a", "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": if operation == "DELETE" { "DeleteOptions" } else { "CreateOptions" }},
        }
    });
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}
