//! `tagpin serve` over real TLS with the real registry, answering AdmissionReviews posted
//! directly (no API server): every kind, every image field, digests already written,
//! multi-arch images, a registry that is down, and forged annotations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};
use tagpin_e2e::registry::unique_suffix;
use tagpin_e2e::tagpin::{Tagpin, TagpinConfig};
use tagpin_e2e::{Platform, PushedImage, TestRegistry};

const NAMESPACE: &str = "apps";

/// (group, kind, resource) of every kind tagpin pins.
const KINDS: [(&str, &str, &str); 9] = [
    ("", "Pod", "pods"),
    ("", "PodTemplate", "podtemplates"),
    ("apps", "Deployment", "deployments"),
    ("apps", "StatefulSet", "statefulsets"),
    ("apps", "DaemonSet", "daemonsets"),
    ("apps", "ReplicaSet", "replicasets"),
    ("", "ReplicationController", "replicationcontrollers"),
    ("batch", "Job", "jobs"),
    ("batch", "CronJob", "cronjobs"),
];

async fn tagpin(extra: &str) -> Tagpin {
    Tagpin::start(TagpinConfig {
        extra: extra.to_owned(),
        registry_credentials: true,
        ..TagpinConfig::default()
    })
    .await
}

async fn push(registry: &TestRegistry, name: &str, tag: &str) -> PushedImage {
    let repo = format!("e2e/{name}-{}", unique_suffix());
    registry.push_image(&repo, tag, name).await.unwrap()
}

fn pinned(image: &PushedImage) -> String {
    format!("{}@{}", image.reference, image.digest)
}

/// An object of `kind` whose pod spec is `spec`, wherever that kind keeps it.
fn object(kind: &str, group: &str, spec: Value) -> Value {
    let api_version = if group.is_empty() {
        "v1".to_owned()
    } else {
        format!("{group}/v1")
    };
    let template = json!({"metadata": {"labels": {"app": "w"}}, "spec": spec});
    let mut obj = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "w", "namespace": NAMESPACE},
    });
    match kind {
        "Pod" => obj["spec"] = spec,
        "PodTemplate" => obj["template"] = template,
        "CronJob" => {
            obj["spec"] =
                json!({"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}})
        }
        _ => obj["spec"] = json!({"selector": {"matchLabels": {"app": "w"}}, "template": template}),
    }
    obj
}

fn review(group: &str, kind: &str, resource: &str, namespace: &str, obj: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("uid-{}", unique_suffix()),
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "name": "w",
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "e2e"},
            "object": obj,
            "dryRun": false,
        }
    })
}

fn pod_review(namespace: &str, spec: Value) -> Value {
    let mut obj = object("Pod", "", spec);
    obj["metadata"]["namespace"] = json!(namespace);
    review("", "Pod", "pods", namespace, &obj)
}

/// The object as the API server would store it after applying the answer's patch.
fn patched(answer: &Value, original: &Value) -> Value {
    let response = &answer["response"];
    assert_eq!(response["allowed"], true, "{answer}");
    let mut obj = original.clone();
    if let Some(patch) = response["patch"].as_str() {
        assert_eq!(response["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .unwrap();
        let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        json_patch::patch(&mut obj, &patch).unwrap();
    }
    obj
}

/// The `tagpin.dev/images` records of a patched object, keyed by JSON path.
fn records(obj: &Value) -> BTreeMap<String, Value> {
    let text = obj["metadata"]["annotations"]["tagpin.dev/images"]
        .as_str()
        .unwrap_or_else(|| panic!("no tagpin.dev/images on {obj}"));
    let list: Vec<Value> = serde_json::from_str(text).unwrap();
    list.into_iter()
        .map(|r| (r["path"].as_str().unwrap().to_owned(), r))
        .collect()
}

#[tokio::test]
async fn every_kind_and_every_image_field_is_pinned_to_the_registry_digest() {
    let registry = TestRegistry::tls();
    let app = push(&registry, "app", "1.0").await;
    let init = push(&registry, "init", "1.0").await;
    let debug = push(&registry, "debug", "1.0").await;
    let data = push(&registry, "data", "1.0").await;
    let tagpin = tagpin("").await;

    for (group, kind, resource) in KINDS {
        let mut spec = json!({
            "containers": [{"name": "app", "image": app.reference}],
            "initContainers": [{"name": "init", "image": init.reference}],
            "volumes": [
                {"name": "cache", "emptyDir": {}},
                {"name": "data", "image": {"reference": data.reference, "pullPolicy": "IfNotPresent"}},
            ],
        });
        if kind == "Pod" {
            spec["ephemeralContainers"] = json!([{"name": "debug", "image": debug.reference}]);
        }
        let obj = object(kind, group, spec);
        let answer = tagpin
            .review(&review(group, kind, resource, NAMESPACE, &obj))
            .await;
        let out = patched(&answer, &obj);

        let path: &[&str] = match kind {
            "Pod" => &["spec"],
            "PodTemplate" => &["template", "spec"],
            "CronJob" => &["spec", "jobTemplate", "spec", "template", "spec"],
            _ => &["spec", "template", "spec"],
        };
        let prefix: String = path.iter().map(|p| format!("/{p}")).collect();
        let mut expected = vec![
            (format!("{prefix}/containers/0/image"), &app),
            (format!("{prefix}/initContainers/0/image"), &init),
            (format!("{prefix}/volumes/1/image/reference"), &data),
        ];
        if kind == "Pod" {
            expected.push((format!("{prefix}/ephemeralContainers/0/image"), &debug));
        }
        let recs = records(&out);
        assert_eq!(recs.len(), expected.len(), "{kind}: {recs:?}");
        for (pointer, image) in expected {
            assert_eq!(
                out.pointer(&pointer).and_then(Value::as_str),
                Some(pinned(image).as_str()),
                "{kind} {pointer}"
            );
            assert_eq!(
                recs[&pointer]["original"],
                image.reference.as_str(),
                "{kind}"
            );
            assert_eq!(recs[&pointer]["digest"], image.digest.as_str(), "{kind}");
        }
        let audit = &answer["response"]["auditAnnotations"];
        assert!(
            audit["images"]
                .as_str()
                .is_some_and(|a| a.contains(&app.digest)),
            "{kind}: {audit}"
        );
    }
}

#[tokio::test]
async fn written_digests_are_kept_and_multi_arch_pins_the_index() {
    let registry = TestRegistry::tls();
    let app = push(&registry, "kept", "1.0").await;
    let repo = format!("e2e/multi-{}", unique_suffix());
    let multi = registry
        .push_index(&repo, "2.0", "multi", &Platform::AMD64_AND_ARM64)
        .await
        .unwrap();
    let tagpin = tagpin("").await;

    // The tag now names other content: a written digest must win over the tag.
    let repo_of_app = app
        .reference
        .split_once('/')
        .unwrap()
        .1
        .rsplit_once(':')
        .unwrap()
        .0;
    let moved = registry
        .push_image(repo_of_app, "1.0", "moved")
        .await
        .unwrap();
    assert_ne!(moved.digest, app.digest);
    let tag_and_digest = pinned(&app);
    let digest_only = format!("{}/{repo_of_app}@{}", registry.host, app.digest);
    let review = pod_review(
        NAMESPACE,
        json!({"containers": [
            {"name": "a", "image": tag_and_digest},
            {"name": "b", "image": digest_only},
            {"name": "c", "image": multi.reference},
        ]}),
    );
    let obj = review["request"]["object"].clone();
    let answer = tagpin.review(&review).await;
    let out = patched(&answer, &obj);
    let images: Vec<&str> = out["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["image"].as_str().unwrap())
        .collect();
    assert_eq!(
        images,
        vec![
            tag_and_digest.as_str(),
            digest_only.as_str(),
            pinned(&multi).as_str()
        ]
    );
    let recs = records(&out);
    assert_eq!(
        recs["/spec/containers/0/image"]["digest"],
        app.digest.as_str()
    );
    assert_eq!(
        recs["/spec/containers/2/image"]["digest"],
        multi.digest.as_str(),
        "the index digest, not a platform's"
    );
    assert_eq!(
        registry.manifest_requests("HEAD", repo_of_app, "1.0").await
            + registry.manifest_requests("GET", repo_of_app, "1.0").await,
        0,
        "images with a digest are not looked up"
    );
}

#[tokio::test]
async fn registry_down_is_denied_in_enforce_and_warned_in_warn() {
    // A port nothing listens on: connections are refused.
    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = down.local_addr().unwrap().port();
    drop(down);
    let image = format!("127.0.0.1:{port}/e2e/app:1.0");
    let tagpin = tagpin("deadlineSeconds: 3\nnamespaces:\n  relaxed: warn\n").await;
    let spec = json!({"containers": [{"name": "a", "image": image}]});

    let answer = tagpin.review(&pod_review("strict", spec.clone())).await;
    let response = &answer["response"];
    assert_eq!(response["allowed"], false, "{answer}");
    assert_eq!(response["status"]["code"], 403);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains(&image), "{message}");

    let review = pod_review("relaxed", spec);
    let answer = tagpin.review(&review).await;
    let out = patched(&answer, &review["request"]["object"]);
    assert_eq!(out["spec"]["containers"][0]["image"], image.as_str());
    let warnings = answer["response"]["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains(&image))),
        "{warnings:?}"
    );
    let rec = &records(&out)["/spec/containers/0/image"];
    assert!(
        rec.get("digest").is_none() && rec["error"].is_string(),
        "{rec}"
    );
}

#[tokio::test]
async fn forged_annotations_are_replaced_with_what_tagpin_resolved() {
    let registry = TestRegistry::tls();
    let app = push(&registry, "forged", "1.0").await;
    let tagpin = tagpin("").await;
    let fake = format!("sha256:{}", "f".repeat(64));
    let forged = json!([{
        "path": "/spec/containers/0/image",
        "original": app.reference,
        "digest": fake,
        "verdict": "verified",
    }])
    .to_string();
    let mut review = pod_review(
        NAMESPACE,
        json!({"containers": [{"name": "a", "image": app.reference}]}),
    );
    review["request"]["object"]["metadata"]["annotations"] = json!({
        "tagpin.dev/images": forged,
        "tagpin.dev/approved": "true",
        "team": "payments",
    });
    let obj = review["request"]["object"].clone();
    let answer = tagpin.review(&review).await;
    let out = patched(&answer, &obj);

    assert_eq!(out["spec"]["containers"][0]["image"], pinned(&app).as_str());
    let annotations = out["metadata"]["annotations"].as_object().unwrap();
    assert!(!annotations.contains_key("tagpin.dev/approved"));
    assert_eq!(annotations["team"], "payments");
    let rec = &records(&out)["/spec/containers/0/image"];
    assert_eq!(rec["digest"], app.digest.as_str());
    assert_ne!(rec["verdict"], "verified");
    assert!(
        !annotations["tagpin.dev/images"]
            .as_str()
            .unwrap()
            .contains(&fake)
    );
}
