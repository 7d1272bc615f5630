//! Admission behaviour with a fake resolver: every kind and field, modes, deadline, annotations.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use tagpin_resolver::{Digest, ImageReference, Keychain, Resolution, ResolverStats};

use super::record::ImageRecord;
use super::*;
use crate::config::{Config, PinnedKind};
use crate::credentials::ClusterState;
use crate::resolving::ResolveFailure;

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

#[derive(Default)]
struct FakeResolver {
    answers: HashMap<String, Result<String, &'static str>>,
    delay: Option<Duration>,
    calls: AtomicUsize,
}

impl FakeResolver {
    fn with(answers: &[(&str, Result<String, &'static str>)]) -> Self {
        Self {
            answers: answers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            ..Self::default()
        }
    }
}

impl ImageResolver for FakeResolver {
    fn resolve<'a>(
        &'a self,
        image: &'a ImageReference,
        _keychain: &'a Keychain,
    ) -> BoxFuture<'a, Result<Resolution, ResolveFailure>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if let Some(d) = self.delay {
                tokio::time::sleep(d).await;
            }
            match self.answers.get(&image.normalized()) {
                Some(Ok(d)) => {
                    let digest: Digest = d.parse().unwrap();
                    Ok(Resolution {
                        image: image.clone(),
                        pinned: image.pinned(&digest),
                        digest,
                        media_type: "application/vnd.oci.image.index.v1+json".into(),
                        resolved_at: std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
                        cached: false,
                        source: image.registry().to_owned(),
                        confirmed_by: None,
                    })
                }
                Some(Err(kind)) => Err(ResolveFailure {
                    kind,
                    message: format!("{}: registry answered {kind}", image.as_written()),
                }),
                None => Err(ResolveFailure {
                    kind: "not_found",
                    message: format!(
                        "{}: not found in registry {}",
                        image.as_written(),
                        image.registry()
                    ),
                }),
            }
        })
    }

    fn stats(&self) -> Option<ResolverStats> {
        None
    }
}

#[derive(Default)]
struct FakeCluster {
    labels: HashMap<String, String>,
    asked: Mutex<Vec<(String, Vec<String>, String)>>,
}

impl ClusterState for FakeCluster {
    fn namespace_label(&self, namespace: &str, _key: &str) -> Option<String> {
        self.labels.get(namespace).cloned()
    }

    fn keychain(&self, namespace: &str, secrets: &[String], sa: &str) -> Keychain {
        self.asked
            .lock()
            .unwrap()
            .push((namespace.to_owned(), secrets.to_vec(), sa.to_owned()));
        Keychain::anonymous()
    }
}

struct Harness {
    admitter: Admitter,
    resolver: Arc<FakeResolver>,
    cluster: Arc<FakeCluster>,
}

fn harness(config: Config, resolver: FakeResolver) -> Harness {
    harness_with(config, resolver, FakeCluster::default())
}

fn harness_with(config: Config, resolver: FakeResolver, cluster: FakeCluster) -> Harness {
    let resolver = Arc::new(resolver);
    let cluster = Arc::new(cluster);
    Harness {
        admitter: Admitter::new(Arc::new(config), resolver.clone(), cluster.clone()),
        resolver,
        cluster,
    }
}

fn standard() -> FakeResolver {
    FakeResolver::with(&[
        ("docker.io/library/nginx:1.25", Ok(digest('a'))),
        ("docker.io/library/busybox:latest", Ok(digest('b'))),
        ("registry.example:5000/team/app:v2", Ok(digest('c'))),
        ("docker.io/library/redis:7", Err("unreachable")),
    ])
}

fn gvk(kind: &str) -> Value {
    let group = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps",
        "Job" | "CronJob" => "batch",
        _ => "",
    };
    json!({"group": group, "version": "v1", "kind": kind})
}

fn review_body(kind: &str, operation: &str, sub_resource: Option<&str>, object: &Value) -> Vec<u8> {
    let mut request = json!({
        "uid": "uid-1",
        "kind": gvk(kind),
        "resource": {"group": "", "version": "v1", "resource": "x"},
        "name": "obj",
        "namespace": "apps",
        "operation": operation,
        "userInfo": {"username": "alice"},
        "object": object,
        "oldObject": null,
        "dryRun": false,
    });
    if let Some(s) = sub_resource {
        request["subResource"] = json!(s);
    }
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    }))
    .unwrap()
}

fn object(kind: &str, pod_spec: Value) -> Value {
    let mut obj =
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": "obj", "namespace": "apps"}});
    let mut at = &mut obj;
    for key in PinnedKind::from_group_kind(gvk(kind)["group"].as_str().unwrap(), kind)
        .unwrap()
        .pod_spec_path()
    {
        at = &mut at[*key];
    }
    *at = pod_spec;
    obj
}

struct Answer {
    response: Value,
    decision: Decision,
}

impl Answer {
    fn allowed(&self) -> bool {
        self.response["allowed"].as_bool().unwrap()
    }

    fn patched(&self, original: &Value) -> Value {
        let mut obj = original.clone();
        if let Some(p) = self.decision.response.patch.as_ref() {
            let patch: json_patch::Patch = serde_json::from_slice(p).unwrap();
            json_patch::patch(&mut obj, &patch).unwrap();
        }
        obj
    }

    fn records(&self, original: &Value) -> Vec<ImageRecord> {
        let obj = self.patched(original);
        record::from_json(
            obj["metadata"]["annotations"]["tagpin.dev/images"]
                .as_str()
                .unwrap(),
        )
    }
}

async fn run(h: &Harness, body: &[u8]) -> Answer {
    let (review, decision) = h.admitter.review(body).await.unwrap();
    let encoded: Value = serde_json::from_slice(&encode_review(review.clone()).unwrap()).unwrap();
    let response = encoded["response"].clone();
    Answer { response, decision }
}

async fn create(h: &Harness, kind: &str, obj: &Value) -> Answer {
    run(h, &review_body(kind, "CREATE", None, obj)).await
}

#[tokio::test]
async fn pins_every_field_of_a_pod_keeping_what_was_written() {
    let h = harness(Config::default(), standard());
    let pod = object(
        "Pod",
        json!({
            "containers": [{"name": "a", "image": "nginx:1.25"}, {"name": "b", "image": "docker.io/library/nginx:1.25"}],
            "initContainers": [{"name": "i", "image": "busybox"}],
            "ephemeralContainers": [{"name": "e", "image": "registry.example:5000/team/app:v2"}],
            "volumes": [{"name": "v", "image": {"reference": "nginx:1.25"}}],
        }),
    );
    let a = create(&h, "Pod", &pod).await;
    assert!(a.allowed());
    assert_eq!(a.response["patchType"], "JSONPatch");
    // The API server reads the patch as base64, as Go encodes []byte.
    use base64::Engine as _;
    let sent = base64::engine::general_purpose::STANDARD
        .decode(a.response["patch"].as_str().unwrap())
        .unwrap();
    assert_eq!(Some(&sent), a.decision.response.patch.as_ref());
    assert_eq!(a.decision.outcome, Outcome::Patched);
    let out = a.patched(&pod);
    let spec = &out["spec"];
    assert_eq!(
        spec["containers"][0]["image"],
        format!("nginx:1.25@{}", digest('a'))
    );
    assert_eq!(
        spec["containers"][1]["image"],
        format!("docker.io/library/nginx:1.25@{}", digest('a'))
    );
    assert_eq!(
        spec["initContainers"][0]["image"],
        format!("busybox@{}", digest('b'))
    );
    assert_eq!(
        spec["ephemeralContainers"][0]["image"],
        format!("registry.example:5000/team/app:v2@{}", digest('c'))
    );
    assert_eq!(
        spec["volumes"][0]["image"]["reference"],
        format!("nginx:1.25@{}", digest('a'))
    );
    // One registry lookup per distinct image.
    assert_eq!(h.resolver.calls.load(Ordering::SeqCst), 3);

    let records = a.records(&pod);
    assert_eq!(records.len(), 5);
    assert_eq!(records[0].path, "/spec/containers/0/image");
    assert_eq!(records[0].original, "nginx:1.25");
    assert_eq!(
        records[0].image.as_deref(),
        Some("docker.io/library/nginx:1.25")
    );
    assert_eq!(records[0].digest.as_deref(), Some(digest('a').as_str()));
    assert_eq!(
        records[0].resolved_at.as_deref(),
        Some("2027-01-15T08:00:00Z")
    );
    assert_eq!(records[0].verdict, "not-verified");
    assert_eq!(records[4].path, "/spec/volumes/0/image/reference");
    let audit = &a.response["auditAnnotations"];
    assert_eq!(
        record::from_json(audit["images"].as_str().unwrap()),
        records
    );
    assert_eq!(audit["mode"], "enforce");
}

#[tokio::test]
async fn pins_every_workload_kind() {
    for kind in PinnedKind::ALL {
        let h = harness(Config::default(), standard());
        let obj = object(
            kind.as_str(),
            json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
        );
        let a = create(&h, kind.as_str(), &obj).await;
        assert!(a.allowed(), "{kind:?}");
        let out = a.patched(&obj);
        let mut at = &out;
        for key in kind.pod_spec_path() {
            at = &at[*key];
        }
        assert_eq!(
            at["containers"][0]["image"],
            format!("nginx:1.25@{}", digest('a')),
            "{kind:?}"
        );
        let expected_path = format!("/{}/containers/0/image", kind.pod_spec_path().join("/"));
        assert_eq!(a.records(&obj)[0].path, expected_path);
    }
}

#[tokio::test]
async fn workload_update_is_pinned_too() {
    let h = harness(Config::default(), standard());
    let obj = object(
        "Deployment",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
    );
    let a = run(&h, &review_body("Deployment", "UPDATE", None, &obj)).await;
    assert_eq!(a.decision.outcome, Outcome::Patched);
}

#[tokio::test]
async fn tag_and_digest_and_digest_only_are_left_as_written_without_a_patch() {
    let h = harness(Config::default(), standard());
    let pod = object(
        "Pod",
        json!({"containers": [
            {"name": "a", "image": format!("nginx:1.25@{}", digest('d'))},
            {"name": "b", "image": format!("redis@{}", digest('e'))},
        ]}),
    );
    let a = create(&h, "Pod", &pod).await;
    assert!(a.allowed());
    assert!(a.response.get("patch").is_none(), "{}", a.response);
    assert_eq!(a.decision.outcome, Outcome::Unchanged);
    assert_eq!(h.resolver.calls.load(Ordering::SeqCst), 0);
    let audit = record::from_json(a.response["auditAnnotations"]["images"].as_str().unwrap());
    assert_eq!(audit[0].digest.as_deref(), Some(digest('d').as_str()));
    assert_eq!(
        audit[1].image.as_deref(),
        Some(format!("docker.io/library/redis@{}", digest('e')).as_str())
    );
    assert!(audit[0].resolved_at.is_none());
}

#[tokio::test]
async fn second_invocation_changes_nothing() {
    let h = harness(Config::default(), standard());
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}, {"name": "b", "image": format!("redis@{}", digest('e'))}]}),
    );
    let first = create(&h, "Pod", &pod).await;
    let pinned = first.patched(&pod);
    let second = create(&h, "Pod", &pinned).await;
    assert!(second.allowed());
    assert!(
        second.response.get("patch").is_none(),
        "{}",
        second.response
    );
    assert_eq!(second.decision.outcome, Outcome::Unchanged);
}

#[tokio::test]
async fn forged_annotation_is_replaced() {
    let h = harness(Config::default(), standard());
    let mut pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": format!("nginx:1.25@{}", digest('a'))}]}),
    );
    pod["metadata"]["annotations"] = json!({
        "tagpin.dev/images": format!(r#"[{{"path":"/spec/containers/0/image","original":"nginx:1.25","digest":"{}","verdict":"verified"}}]"#, digest('f')),
        "tagpin.dev/signer": "me",
        "keep": "yes",
    });
    let a = create(&h, "Pod", &pod).await;
    let out = a.patched(&pod);
    let annotations = out["metadata"]["annotations"].as_object().unwrap();
    assert_eq!(annotations["keep"], "yes");
    assert!(!annotations.contains_key("tagpin.dev/signer"));
    let records = a.records(&pod);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].digest.as_deref(), Some(digest('a').as_str()));
    assert_eq!(records[0].verdict, "not-verified");
    assert_eq!(records[0].original, format!("nginx:1.25@{}", digest('a')));
}

#[tokio::test]
async fn invalid_reference_is_denied_with_the_reason() {
    let h = harness(Config::default(), standard());
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "Nginx:1.25"}]}),
    );
    let a = create(&h, "Pod", &pod).await;
    assert!(!a.allowed());
    assert_eq!(a.response["status"]["code"], 403);
    let msg = a.response["status"]["message"].as_str().unwrap();
    assert!(msg.contains("/spec/containers/0/image"), "{msg}");
    assert!(msg.contains("Nginx:1.25"), "{msg}");
    assert!(msg.contains("invalid image reference"), "{msg}");
    assert!(a.response.get("patch").is_none());
}

#[tokio::test]
async fn resolver_error_denied_in_enforce() {
    let h = harness(Config::default(), standard());
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}, {"name": "b", "image": "redis:7"}]}),
    );
    let a = create(&h, "Pod", &pod).await;
    assert!(!a.allowed());
    assert_eq!(a.decision.outcome, Outcome::Denied);
    let msg = a.response["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("redis:7") && msg.contains("unreachable"),
        "{msg}"
    );
    assert!(!msg.contains("nginx"), "{msg}");
    let audit = record::from_json(a.response["auditAnnotations"]["images"].as_str().unwrap());
    assert!(audit[1].error.as_deref().unwrap().contains("unreachable"));
}

#[tokio::test]
async fn resolver_error_warned_in_warn_mode() {
    let config = Config {
        default_mode: Mode::Warn,
        ..Config::default()
    };
    let h = harness(config, standard());
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}, {"name": "b", "image": "redis:7"}]}),
    );
    let a = create(&h, "Pod", &pod).await;
    assert!(a.allowed());
    assert_eq!(a.decision.outcome, Outcome::Warned);
    let warnings = a.response["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].as_str().unwrap().contains("redis:7"));
    let out = a.patched(&pod);
    assert_eq!(
        out["spec"]["containers"][0]["image"],
        format!("nginx:1.25@{}", digest('a'))
    );
    assert_eq!(out["spec"]["containers"][1]["image"], "redis:7");
    let records = a.records(&pod);
    assert!(records[1].error.as_deref().unwrap().contains("unreachable"));
    assert!(records[1].digest.is_none());
}

#[tokio::test]
async fn namespace_label_sets_the_mode_and_config_wins_over_it() {
    let cluster = FakeCluster {
        labels: HashMap::from([("apps".to_owned(), "warn".to_owned())]),
        ..FakeCluster::default()
    };
    let h = harness_with(Config::default(), standard(), cluster);
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "b", "image": "redis:7"}]}),
    );
    assert!(create(&h, "Pod", &pod).await.allowed());

    let mut config = Config::default();
    config.namespaces.insert("apps".into(), Mode::Enforce);
    let cluster = FakeCluster {
        labels: HashMap::from([("apps".to_owned(), "off".to_owned())]),
        ..FakeCluster::default()
    };
    let h = harness_with(config, standard(), cluster);
    assert!(!create(&h, "Pod", &pod).await.allowed());
}

#[tokio::test]
async fn off_mode_and_excluded_namespaces_are_untouched() {
    let mut config = Config::default();
    config.namespaces.insert("apps".into(), Mode::Off);
    let h = harness(config, standard());
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "b", "image": "redis:7"}]}),
    );
    let a = create(&h, "Pod", &pod).await;
    assert!(a.allowed());
    assert_eq!(a.decision.outcome, Outcome::Skipped);
    assert!(a.response.get("patch").is_none());
    assert_eq!(h.resolver.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn delete_connect_and_unpinned_kinds_are_untouched() {
    let h = harness(Config::default(), standard());
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "b", "image": "redis:7"}]}),
    );
    for op in ["DELETE", "CONNECT"] {
        let a = run(&h, &review_body("Pod", op, None, &pod)).await;
        assert!(a.allowed(), "{op}");
        assert_eq!(a.decision.outcome, Outcome::Skipped);
    }
    let config = Config {
        kinds: vec![PinnedKind::Pod],
        ..Config::default()
    };
    let h = harness(config, standard());
    let dep = object(
        "Deployment",
        json!({"containers": [{"name": "b", "image": "redis:7"}]}),
    );
    let a = create(&h, "Deployment", &dep).await;
    assert!(a.allowed());
    assert_eq!(a.decision.outcome, Outcome::Skipped);
}

#[tokio::test]
async fn ephemeral_container_update_pins_only_ephemeral_containers() {
    let h = harness(Config::default(), standard());
    let pod = object(
        "Pod",
        json!({
            "containers": [{"name": "a", "image": "redis:7"}],
            "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
        }),
    );
    let a = run(
        &h,
        &review_body("Pod", "UPDATE", Some("ephemeralcontainers"), &pod),
    )
    .await;
    assert!(a.allowed(), "{}", a.response);
    let out = a.patched(&pod);
    assert_eq!(
        out["spec"]["ephemeralContainers"][0]["image"],
        format!("busybox@{}", digest('b'))
    );
    assert_eq!(out["spec"]["containers"][0]["image"], "redis:7");
    assert!(a.response.get("warnings").is_none(), "{}", a.response);
    // Ephemeral containers added earlier are not looked up again.
    let before = calls(&h);
    let mut more = out.clone();
    more["spec"]["ephemeralContainers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "debug2", "image": "nginx:1.25"}));
    let a = run(
        &h,
        &update_review("Pod", Some("ephemeralcontainers"), &out, &more),
    )
    .await;
    assert!(a.allowed(), "{}", a.response);
    assert_eq!(
        a.patched(&more)["spec"]["ephemeralContainers"][1]["image"],
        format!("nginx:1.25@{}", digest('a'))
    );
    assert_eq!(calls(&h) - before, 1);
    // Status updates cannot change images.
    let a = run(&h, &review_body("Pod", "UPDATE", Some("status"), &pod)).await;
    assert_eq!(a.decision.outcome, Outcome::Skipped);
}

#[tokio::test]
async fn replica_set_of_a_pinned_deployment_is_untouched() {
    let h = harness(Config::default(), standard());
    let mut rs = object(
        "ReplicaSet",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
    );
    rs["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "u", "controller": true}]);
    let a = create(&h, "ReplicaSet", &rs).await;
    assert_eq!(a.decision.outcome, Outcome::Skipped);
    // A pod owned by that ReplicaSet is still pinned.
    let mut pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
    );
    pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "r", "uid": "u", "controller": true}]);
    assert_eq!(
        create(&h, "Pod", &pod).await.decision.outcome,
        Outcome::Patched
    );
}

#[tokio::test]
async fn deadline_denies_in_enforce_and_warns_in_warn() {
    let slow = || FakeResolver {
        delay: Some(Duration::from_secs(5)),
        ..standard()
    };
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
    );
    let config = Config {
        deadline_seconds: 0.2,
        ..Config::default()
    };
    let h = harness(config.clone(), slow());
    let started = std::time::Instant::now();
    let a = create(&h, "Pod", &pod).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!a.allowed());
    let msg = a.response["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("deadline") && msg.contains("nginx:1.25"),
        "{msg}"
    );

    let h = harness(
        Config {
            default_mode: Mode::Warn,
            ..config
        },
        slow(),
    );
    let a = create(&h, "Pod", &pod).await;
    assert!(a.allowed());
    assert!(
        a.response["warnings"][0]
            .as_str()
            .unwrap()
            .contains("deadline")
    );
}

#[tokio::test]
async fn credentials_come_from_the_pod_namespace_secrets_and_service_account() {
    let h = harness(Config::default(), standard());
    let dep = object(
        "Deployment",
        json!({"imagePullSecrets": [{"name": "regcred"}], "serviceAccountName": "builder", "containers": [{"name": "a", "image": "nginx:1.25"}]}),
    );
    create(&h, "Deployment", &dep).await;
    let asked = h.cluster.asked.lock().unwrap().clone();
    assert_eq!(
        asked,
        vec![(
            "apps".to_owned(),
            vec!["regcred".to_owned()],
            "builder".to_owned()
        )]
    );
}

#[tokio::test]
async fn dry_run_gets_the_same_answer() {
    let h = harness(Config::default(), standard());
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
    );
    let mut body: Value =
        serde_json::from_slice(&review_body("Pod", "CREATE", None, &pod)).unwrap();
    let wet = run(&h, &serde_json::to_vec(&body).unwrap()).await;
    body["request"]["dryRun"] = json!(true);
    let dry = run(&h, &serde_json::to_vec(&body).unwrap()).await;
    assert_eq!(wet.response, dry.response);
}

#[tokio::test]
async fn malformed_reviews_are_errors() {
    let h = harness(Config::default(), standard());
    assert!(matches!(
        h.admitter.review(b"{").await,
        Err(ReviewError::Malformed(_))
    ));
    assert!(matches!(
        h.admitter
            .review(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#)
            .await,
        Err(ReviewError::NoRequest)
    ));
    assert!(matches!(
        h.admitter
            .review(br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}"#)
            .await,
        Err(ReviewError::Version(_))
    ));
    let misspelt = String::from_utf8(review_body("Pod", "CREATE", None, &json!({})))
        .unwrap()
        .replace("\"AdmissionReview\"", "\"AdmissionRevue\"");
    assert!(matches!(
        h.admitter.review(misspelt.as_bytes()).await,
        Err(ReviewError::Kind(k)) if k == "AdmissionRevue"
    ));
}

#[tokio::test]
async fn response_echoes_uid_and_version() {
    let h = harness(Config::default(), standard());
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
    );
    let (review, _) = h
        .admitter
        .review(&review_body("Pod", "CREATE", None, &pod))
        .await
        .unwrap();
    let v = serde_json::to_value(&review).unwrap();
    assert_eq!(v["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(v["kind"], "AdmissionReview");
    assert_eq!(v["response"]["uid"], "uid-1");
}

struct FakeVerifier {
    verdicts: HashMap<String, Result<tagpin_verifier::Verdict, String>>,
    calls: AtomicUsize,
}

impl FakeVerifier {
    fn with(entries: &[(&str, Result<tagpin_verifier::Outcome, &str>)]) -> Self {
        let verdicts = entries
            .iter()
            .map(|(name, outcome)| {
                let v = outcome
                    .map(|outcome| tagpin_verifier::Verdict {
                        outcome,
                        rule: if outcome == tagpin_verifier::Outcome::NoRuleMatchedWarn {
                            String::new()
                        } else {
                            "team".to_owned()
                        },
                        signers: if outcome == tagpin_verifier::Outcome::Verified {
                            vec!["sha256:keyfingerprint".to_owned()]
                        } else {
                            vec![]
                        },
                        attestations: vec![],
                        reason: (!outcome.admits()
                            || outcome == tagpin_verifier::Outcome::NoRuleMatchedWarn)
                            .then(|| format!("{name}: {}", outcome.as_str())),
                    })
                    .map_err(str::to_owned);
                ((*name).to_owned(), v)
            })
            .collect();
        Self {
            verdicts,
            calls: AtomicUsize::new(0),
        }
    }
}

impl crate::verification::ImageVerifier for FakeVerifier {
    fn verify<'a>(
        &'a self,
        image: &'a ImageReference,
        _digest: &'a Digest,
        _keychain: &'a Keychain,
    ) -> BoxFuture<'a, Result<tagpin_verifier::Verdict, String>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.verdicts
                .get(&image.name())
                .cloned()
                .unwrap_or_else(|| Err(format!("{}: registry down", image.as_written())))
        })
    }
}

fn verifying(config: Config, verifier: FakeVerifier) -> (Harness, Arc<FakeVerifier>) {
    let mut h = harness(config, standard());
    let verifier = Arc::new(verifier);
    h.admitter = Admitter::new(
        h.admitter.config.clone(),
        h.resolver.clone(),
        h.cluster.clone(),
    )
    .with_verifier(verifier.clone());
    (h, verifier)
}

#[tokio::test]
async fn verified_digests_record_verdict_and_signer() {
    use tagpin_verifier::Outcome as O;
    let (h, verifier) = verifying(
        Config::default(),
        FakeVerifier::with(&[
            ("docker.io/library/nginx", Ok(O::Verified)),
            ("docker.io/library/redis", Ok(O::NoRuleMatchedAllowed)),
        ]),
    );
    let pod = object(
        "Pod",
        json!({"containers": [
            {"name": "a", "image": "nginx:1.25"},
            {"name": "b", "image": "nginx:1.25"},
            {"name": "c", "image": format!("redis@{}", digest('e'))},
        ]}),
    );
    let a = create(&h, "Pod", &pod).await;
    assert!(a.allowed());
    assert_eq!(a.decision.outcome, Outcome::Patched);
    // One verification per distinct digest, including digests that arrived pinned.
    assert_eq!(verifier.calls.load(Ordering::SeqCst), 2);
    let records = a.records(&pod);
    assert_eq!(records[0].verdict, "verified");
    assert_eq!(records[0].rule.as_deref(), Some("team"));
    assert_eq!(records[0].signers, ["sha256:keyfingerprint"]);
    assert_eq!(records[2].verdict, "no-rule-allowed");
}

#[tokio::test]
async fn failed_verification_denies_in_enforce_and_warns_in_warn() {
    use tagpin_verifier::Outcome as O;
    let verifier = || FakeVerifier::with(&[("docker.io/library/nginx", Ok(O::Failed))]);
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
    );
    let (h, _) = verifying(Config::default(), verifier());
    let a = create(&h, "Pod", &pod).await;
    assert!(!a.allowed());
    let msg = a.response["status"]["message"].as_str().unwrap();
    assert!(msg.contains("docker.io/library/nginx: failed"), "{msg}");
    let audit = record::from_json(a.response["auditAnnotations"]["images"].as_str().unwrap());
    assert_eq!(audit[0].verdict, "failed");

    let (h, _) = verifying(
        Config {
            default_mode: Mode::Warn,
            ..Config::default()
        },
        verifier(),
    );
    let a = create(&h, "Pod", &pod).await;
    assert!(a.allowed());
    assert_eq!(a.decision.outcome, Outcome::Warned);
    assert!(
        a.response["warnings"][0]
            .as_str()
            .unwrap()
            .contains("failed")
    );
    let out = a.patched(&pod);
    assert_eq!(
        out["spec"]["containers"][0]["image"],
        format!("nginx:1.25@{}", digest('a'))
    );
    assert_eq!(a.records(&pod)[0].verdict, "failed");
}

#[tokio::test]
async fn no_rule_warn_admits_with_a_warning_even_in_enforce() {
    use tagpin_verifier::Outcome as O;
    let (h, _) = verifying(
        Config::default(),
        FakeVerifier::with(&[("docker.io/library/nginx", Ok(O::NoRuleMatchedWarn))]),
    );
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
    );
    let a = create(&h, "Pod", &pod).await;
    assert!(a.allowed());
    assert!(
        a.response["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no-rule-warn")
    );
    assert_eq!(a.records(&pod)[0].verdict, "no-rule-warn");
}

#[tokio::test]
async fn verification_error_is_never_an_allow() {
    let (h, _) = verifying(Config::default(), FakeVerifier::with(&[]));
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
    );
    let a = create(&h, "Pod", &pod).await;
    assert!(!a.allowed());
    let msg = a.response["status"]["message"].as_str().unwrap();
    assert!(msg.contains("registry down"), "{msg}");
    let audit = record::from_json(a.response["auditAnnotations"]["images"].as_str().unwrap());
    assert_eq!(audit[0].verdict, "error");
}

/// An UPDATE from `old`, as stored, to `new`.
fn update_review(kind: &str, sub_resource: Option<&str>, old: &Value, new: &Value) -> Vec<u8> {
    let mut body: Value =
        serde_json::from_slice(&review_body(kind, "UPDATE", sub_resource, new)).unwrap();
    body["request"]["oldObject"] = old.clone();
    serde_json::to_vec(&body).unwrap()
}

async fn update(h: &Harness, kind: &str, old: &Value, new: &Value) -> Answer {
    run(h, &update_review(kind, None, old, new)).await
}

/// What tagpin stores for `object` on creation.
async fn stored(h: &Harness, kind: &str, object: &Value) -> Value {
    let a = create(h, kind, object).await;
    assert!(a.allowed(), "{}", a.response);
    a.patched(object)
}

fn calls(h: &Harness) -> usize {
    h.resolver.calls.load(Ordering::SeqCst)
}

fn a_record_count(obj: &Value) -> usize {
    record::from_json(images_annotation(obj).as_str().unwrap_or_default()).len()
}

fn images_annotation(obj: &Value) -> &Value {
    &obj["metadata"]["annotations"]["tagpin.dev/images"]
}

/// `kubectl set image pod/...`: a Pod's image changed on UPDATE is pinned as on creation.
#[tokio::test]
async fn pod_image_changed_on_update_is_pinned_and_recorded() {
    let h = harness(Config::default(), standard());
    let pod = object(
        "Pod",
        json!({
            "containers": [{"name": "a", "image": "nginx:1.25"}],
            "initContainers": [{"name": "i", "image": "busybox"}],
        }),
    );
    let old = stored(&h, "Pod", &pod).await;
    let before = calls(&h);
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("registry.example:5000/team/app:v2");
    let a = update(&h, "Pod", &old, &new).await;
    assert!(a.allowed(), "{}", a.response);
    assert_eq!(a.decision.outcome, Outcome::Patched);
    let out = a.patched(&new);
    assert_eq!(
        out["spec"]["containers"][0]["image"],
        format!("registry.example:5000/team/app:v2@{}", digest('c'))
    );
    assert_eq!(
        out["spec"]["initContainers"][0]["image"],
        old["spec"]["initContainers"][0]["image"]
    );
    // Only the changed field reached the registry.
    assert_eq!(calls(&h) - before, 1);
    let records = a.records(&new);
    assert_eq!(records[0].original, "registry.example:5000/team/app:v2");
    assert_eq!(records[0].digest.as_deref(), Some(digest('c').as_str()));
    // The unchanged init container keeps the record its creation wrote.
    let created = record::from_json(images_annotation(&old).as_str().unwrap());
    assert_eq!(records[1], created[1]);
    // A plain Pod update may change only containers' images: the patch touches nothing else.
    let patch: Value = serde_json::from_slice(a.decision.response.patch.as_ref().unwrap()).unwrap();
    for op in patch.as_array().unwrap() {
        let path = op["path"].as_str().unwrap();
        assert!(
            path == "/spec/containers/0/image" || path.starts_with("/metadata/annotations"),
            "{op}"
        );
    }
}

#[tokio::test]
async fn pod_image_changed_to_an_unresolvable_tag_is_denied_in_enforce_and_warned_in_warn() {
    let h = harness(Config::default(), standard());
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
    );
    let old = stored(&h, "Pod", &pod).await;
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("redis:7");
    let a = update(&h, "Pod", &old, &new).await;
    assert!(!a.allowed());
    assert_eq!(a.decision.outcome, Outcome::Denied);
    let msg = a.response["status"]["message"].as_str().unwrap();
    assert!(
        msg.contains("redis:7") && msg.contains("unreachable"),
        "{msg}"
    );

    let h = harness(
        Config {
            default_mode: Mode::Warn,
            ..Config::default()
        },
        standard(),
    );
    let a = update(&h, "Pod", &old, &new).await;
    assert!(a.allowed());
    assert_eq!(a.decision.outcome, Outcome::Warned);
    assert!(
        a.response["warnings"][0]
            .as_str()
            .unwrap()
            .contains("redis:7")
    );
    assert!(
        a.records(&new)[0]
            .error
            .as_deref()
            .unwrap()
            .contains("unreachable")
    );
}

/// Label, annotation and finalizer updates never depend on a registry, and are answered
/// even when every admission slot is busy.
#[tokio::test]
async fn update_that_changes_no_image_never_calls_the_registry() {
    let warn = Config {
        default_mode: Mode::Warn,
        ..Config::default()
    };
    let warned = harness(warn, standard());
    // Now everything fails, in enforce mode.
    let h = harness(Config::default(), FakeResolver::with(&[]));
    for kind in ["Pod", "Deployment"] {
        // One image pinned, one admitted unpinned in warn mode (its registry was down).
        let obj = object(
            kind,
            json!({"containers": [{"name": "a", "image": "nginx:1.25"}, {"name": "b", "image": "redis:7"}]}),
        );
        let old = stored(&warned, kind, &obj).await;
        assert_eq!(a_record_count(&old), 2);
        let mut new = old.clone();
        new["metadata"]["labels"] = json!({"team": "a"});
        new["metadata"]["finalizers"] = json!(["example.com/keep"]);
        let a = update(&h, kind, &old, &new).await;
        assert!(a.allowed(), "{kind}: {}", a.response);
        assert_eq!(a.decision.outcome, Outcome::Unchanged, "{kind}");
        assert!(a.response.get("patch").is_none(), "{kind}: {}", a.response);
        assert!(
            a.response.get("warnings").is_none(),
            "{kind}: {}",
            a.response
        );
        assert!(a.decision.verdicts.is_empty());

        let req = parse_review(&update_review(kind, None, &old, &new)).unwrap();
        let d = h.admitter.overloaded(req);
        assert_eq!(d.outcome, Outcome::Unchanged, "{kind}");
    }
    assert_eq!(calls(&h), 0);
    assert!(h.cluster.asked.lock().unwrap().is_empty());
}

/// `kubectl apply` of the original manifest sends the tag again: the stored pin is kept,
/// even where the tag has moved since, with its record and no registry call.
#[tokio::test]
async fn reapplied_tag_keeps_the_stored_pin_and_its_record() {
    let h = harness(Config::default(), standard());
    let earlier = "2026-01-02T03:04:05.123456789Z";
    for kind in ["Pod", "Deployment"] {
        let base = kind_path(kind);
        let stored_records = json!([
            {"path": format!("{base}/containers/0/image"), "original": "nginx:1.25",
             "image": "docker.io/library/nginx:1.25", "digest": digest('a'),
             "resolvedAt": earlier, "verdict": "not-verified"},
            // The tag has moved since (it resolves to 'b' now).
            {"path": format!("{base}/containers/1/image"), "original": "busybox",
             "image": "docker.io/library/busybox:latest", "digest": digest('f'),
             "resolvedAt": earlier, "verdict": "not-verified"},
        ]);
        let mut old = object(
            kind,
            json!({"containers": [
                {"name": "a", "image": format!("nginx:1.25@{}", digest('a'))},
                {"name": "b", "image": format!("busybox@{}", digest('f'))},
            ]}),
        );
        old["metadata"]["annotations"] = json!({"tagpin.dev/images": stored_records.to_string()});
        let mut new = object(
            kind,
            json!({"containers": [
                {"name": "a", "image": "nginx:1.25"},
                {"name": "b", "image": "busybox"},
            ]}),
        );
        new["metadata"]["annotations"] = old["metadata"]["annotations"].clone();
        let a = update(&h, kind, &old, &new).await;
        assert!(a.allowed(), "{}", a.response);
        let out = a.patched(&new);
        assert_eq!(out["spec"], old["spec"], "{kind}");
        assert_eq!(images_annotation(&out), images_annotation(&old), "{kind}");
        assert_eq!(calls(&h), 0, "{kind}");

        // A stored entry that does not look like tagpin's is not carried over.
        let mut forged = old.clone();
        forged["metadata"]["annotations"]["tagpin.dev/images"] = json!(
            stored_records
                .to_string()
                .replace(earlier, "yesterday, honest")
        );
        let a = update(&h, kind, &forged, &new).await;
        let out = a.patched(&new);
        assert_eq!(out["spec"], old["spec"], "{kind}");
        assert!(
            out["metadata"]["annotations"]
                .get("tagpin.dev/images")
                .is_none(),
            "{out}"
        );
    }
}

fn kind_path(kind: &str) -> String {
    let group = gvk(kind)["group"].as_str().unwrap().to_owned();
    format!(
        "/{}",
        PinnedKind::from_group_kind(&group, kind)
            .unwrap()
            .pod_spec_path()
            .join("/")
    )
}

/// The stored record is tagpin's: an UPDATE that edits or drops `tagpin.dev/` annotations
/// without changing an image gets the stored value back.
#[tokio::test]
async fn tagpin_annotations_edited_on_update_are_put_back() {
    let h = harness(Config::default(), standard());
    for kind in ["Pod", "Deployment"] {
        let obj = object(
            kind,
            json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
        );
        let old = stored(&h, kind, &obj).await;
        let before = calls(&h);
        let mut edited = old.clone();
        edited["metadata"]["annotations"] = json!({
            "tagpin.dev/images": format!(r#"[{{"path":"/spec/containers/0/image","original":"nginx:1.25","digest":"{}","verdict":"verified"}}]"#, digest('f')),
            "tagpin.dev/approved": "true",
            "team": "a",
        });
        let a = update(&h, kind, &old, &edited).await;
        assert!(a.allowed());
        let out = a.patched(&edited);
        assert_eq!(images_annotation(&out), images_annotation(&old), "{kind}");
        assert!(
            out["metadata"]["annotations"]
                .get("tagpin.dev/approved")
                .is_none()
        );
        assert_eq!(out["metadata"]["annotations"]["team"], "a");

        let mut dropped = old.clone();
        dropped["metadata"]["annotations"] = json!({});
        let out = update(&h, kind, &old, &dropped).await.patched(&dropped);
        assert_eq!(images_annotation(&out), images_annotation(&old), "{kind}");
        assert_eq!(calls(&h), before, "{kind}");
    }
}

/// Objects tagpin leaves alone (kinds it does not pin, namespaces in mode `off`) never
/// gain a `tagpin.dev/` annotation, and keep only stored entries of unchanged images.
#[tokio::test]
async fn tagpin_annotations_on_objects_tagpin_leaves_alone_are_tagpins() {
    let forged = json!({
        "tagpin.dev/images": format!(r#"[{{"path":"/spec/containers/0/image","original":"evil:1","digest":"{}","verdict":"verified"}}]"#, digest('f')),
        "tagpin.dev/approved": "true",
        "team": "a",
    });
    let mut off = Config::default();
    off.namespaces.insert("apps".into(), Mode::Off);
    let unpinned_kind = Config {
        kinds: vec![PinnedKind::Pod],
        ..Config::default()
    };
    for (config, kind) in [
        (off.clone(), "Pod"),
        (off, "Deployment"),
        (unpinned_kind, "Deployment"),
    ] {
        let h = harness(config, standard());
        let mut obj = object(
            kind,
            json!({"containers": [{"name": "a", "image": "evil:1"}]}),
        );
        obj["metadata"]["annotations"] = forged.clone();
        let a = create(&h, kind, &obj).await;
        assert!(a.allowed());
        assert_eq!(a.decision.outcome, Outcome::Patched, "{kind}");
        let out = a.patched(&obj);
        assert_eq!(
            out["metadata"]["annotations"],
            json!({"team": "a"}),
            "{kind}"
        );
        assert_eq!(out["spec"], obj["spec"]);
        assert_eq!(calls(&h), 0);
    }

    // Updating in mode `off`: the stored entry stays while its image does, and goes with it.
    let pinning = harness(Config::default(), standard());
    let obj = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
    );
    let old = stored(&pinning, "Pod", &obj).await;
    let mut off = Config::default();
    off.namespaces.insert("apps".into(), Mode::Off);
    let h = harness(off, standard());
    let mut relabelled = old.clone();
    relabelled["metadata"]["labels"] = json!({"team": "a"});
    let a = update(&h, "Pod", &old, &relabelled).await;
    assert_eq!(a.decision.outcome, Outcome::Skipped);
    assert!(a.response.get("patch").is_none());
    let mut edited = relabelled.clone();
    edited["metadata"]["annotations"]["tagpin.dev/images"] = json!("[]");
    let out = update(&h, "Pod", &old, &edited).await.patched(&edited);
    assert_eq!(images_annotation(&out), images_annotation(&old));
    let mut changed = old.clone();
    changed["spec"]["containers"][0]["image"] = json!("evil:1");
    let out = update(&h, "Pod", &old, &changed).await.patched(&changed);
    assert!(
        out["metadata"]["annotations"]
            .get("tagpin.dev/images")
            .is_none(),
        "{out}"
    );
    assert_eq!(out["spec"]["containers"][0]["image"], "evil:1");

    // A ReplicaSet of a pinned Deployment carries the Deployment's record, copied by the
    // Deployment controller: left alone, so as not to fight that controller.
    let h = harness(Config::default(), standard());
    let mut rs = object(
        "ReplicaSet",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
    );
    rs["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "u", "controller": true}]);
    rs["metadata"]["annotations"] = forged;
    let a = create(&h, "ReplicaSet", &rs).await;
    assert_eq!(a.decision.outcome, Outcome::Skipped);
    assert!(a.response.get("patch").is_none());
}

/// The review is read without serde's flatten buffering; what it yields must
/// be what kube's own types read from the same body.
#[test]
fn review_parsing_matches_kube_types() {
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "nginx:1.25", "env": [{"name": "X", "value": "1"}]}]}),
    );
    let mut old = pod.clone();
    old["metadata"]["annotations"] = json!({"tagpin.dev/images": "[]"});
    old["status"] = json!({"phase": "Running"});
    let mut body: Value =
        serde_json::from_slice(&review_body("Pod", "UPDATE", None, &pod)).unwrap();
    body["request"]["oldObject"] = old;
    body["request"]["options"] = json!({"apiVersion": "meta.k8s.io/v1", "kind": "UpdateOptions"});
    let bytes = serde_json::to_vec(&body).unwrap();

    let ours = parse_review(&bytes).unwrap();
    let kube: AdmissionReview<DynamicObject> = serde_json::from_slice(&bytes).unwrap();
    let kube: AdmissionRequest<DynamicObject> = kube.try_into().unwrap();
    assert_eq!(
        serde_json::to_value(&ours).unwrap(),
        serde_json::to_value(&kube).unwrap()
    );
    assert_eq!(ours.types, kube.types);
    for (a, b) in [
        (&ours.object, &kube.object),
        (&ours.old_object, &kube.old_object),
    ] {
        let (a, b) = (a.as_ref().unwrap(), b.as_ref().unwrap());
        assert_eq!(
            review::into_value(a.clone()).unwrap(),
            serde_json::to_value(b).unwrap()
        );
    }
    // Objects must be objects, with metadata.
    for (field, bad) in [("object", json!("pod")), ("object", json!({"kind": "Pod"}))] {
        let mut b = body.clone();
        b["request"][field] = bad;
        let err = parse_review(&serde_json::to_vec(&b).unwrap()).unwrap_err();
        assert!(matches!(err, ReviewError::Malformed(_)), "{err}");
    }
    let err = parse_review(br#"{"apiVersion": 1, "kind": "AdmissionReview"}"#).unwrap_err();
    assert!(matches!(err, ReviewError::Malformed(_)), "{err}");
    let err = parse_review(b"[]").unwrap_err();
    assert!(matches!(err, ReviewError::Malformed(_)), "{err}");
}

/// Log output of the current thread's subscriber, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn info_logs_admissions_that_changed_something_and_not_unchanged_ones() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let h = harness(Config::default(), standard());
    let pod = object(
        "Pod",
        json!({"containers": [{"name": "a", "image": "nginx:1.25"}]}),
    );
    let first = create(&h, "Pod", &pod).await;
    assert_eq!(first.decision.outcome, Outcome::Patched);
    let second = create(&h, "Pod", &first.patched(&pod)).await;
    assert_eq!(second.decision.outcome, Outcome::Unchanged);
    let text = logs.text();
    assert_eq!(text.matches("outcome=\"patched\"").count(), 1, "{text}");
    assert!(!text.contains("outcome=\"unchanged\""), "{text}");
}
