//! tagpin behind the real API server of `hack/control-plane.sh`: objects are created with
//! a kube client (or kubectl) and the assertions read what the API server stored.
//!
//! Every test runs its own `tagpin serve` and its own webhook configuration, limited to
//! namespaces carrying a label unique to the test, so tests and concurrent runs never
//! call each other's tagpin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tagpin_e2e::cluster::{RunLabel, TestNamespace, client, kubectl, kubectl_with_input, wait_for};
use tagpin_e2e::cosign::Cosign;
use tagpin_e2e::env::repo_root;
use tagpin_e2e::registry::unique_suffix;
use tagpin_e2e::tagpin::{KubeAccess, Tagpin, TagpinConfig};
use tagpin_e2e::webhook::{IMAGES_ANNOTATION, Webhook};
use tagpin_e2e::{PushedImage, TestEnv, TestRegistry};

/// A dry-run probe that tagpin denies (enforce) or annotates (warn) without a registry.
const PROBE_IMAGE: &str = "TAGPIN-PROBE:invalid";
const WAIT: Duration = Duration::from_secs(60);

/// Namespaces of one test, labelled for its webhook; tagpin is not running yet, so
/// secrets and labels created now are in tagpin's caches when it starts.
struct Scope {
    client: Client,
    registry: TestRegistry,
    run: RunLabel,
    namespaces: Vec<TestNamespace>,
}

/// A scope with tagpin serving it. Fields drop in order: the webhook goes first.
struct Served {
    webhook: Webhook,
    tagpin: Tagpin,
    scope: Scope,
}

impl Scope {
    /// One namespace per entry, with `tagpin.dev/mode` set to the entry when given.
    async fn new(modes: &[Option<&str>]) -> Self {
        let client = client().await;
        let run = RunLabel::new();
        let mut namespaces = Vec::new();
        for mode in modes {
            let mut labels = vec![(run.key.as_str(), "true")];
            if let Some(mode) = mode {
                labels.push(("tagpin.dev/mode", mode));
            }
            namespaces.push(TestNamespace::create(&client, "e2e", &labels).await);
        }
        Self {
            client,
            registry: TestRegistry::tls(),
            run,
            namespaces,
        }
    }

    fn ns(&self, i: usize) -> &str {
        &self.namespaces[i].name
    }

    /// Starts tagpin with the admin kubeconfig (unless `config` says otherwise) and
    /// registers its webhook, returning once the API server calls it for every namespace.
    async fn serve(self, mut config: TagpinConfig) -> Served {
        if matches!(config.kube, KubeAccess::None) {
            config.kube = KubeAccess::Admin;
        }
        let tagpin = Tagpin::start(config).await;
        let webhook = Webhook::register(&self.client, &tagpin, &self.run).await;
        for ns in &self.namespaces {
            webhook
                .wait_active(&self.client, &ns.name, PROBE_IMAGE)
                .await;
        }
        Served {
            webhook,
            tagpin,
            scope: self,
        }
    }

    async fn push(&self, name: &str, tag: &str, seed: &str) -> PushedImage {
        let repo = format!("e2e/{name}-{}", unique_suffix());
        self.registry.push_image(&repo, tag, seed).await.unwrap()
    }
}

impl Served {
    fn api<K>(&self, i: usize) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.scope.client.clone(), self.scope.ns(i))
    }
}

/// Config giving tagpin the TLS registry's credentials.
fn with_credentials() -> TagpinConfig {
    TagpinConfig {
        registry_credentials: true,
        ..TagpinConfig::default()
    }
}

fn pinned(image: &PushedImage) -> String {
    format!("{}@{}", image.reference, image.digest)
}

/// The repository of a pushed `host/repository:tag`.
fn repository(image: &PushedImage) -> &str {
    let path = image.reference.split_once('/').unwrap().1;
    path.rsplit_once(':').unwrap().0
}

fn pod(name: &str, images: &[&str]) -> Pod {
    let containers: Vec<Value> = images
        .iter()
        .enumerate()
        .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": containers},
    }))
    .unwrap()
}

/// The `tagpin.dev/images` records of an object, keyed by JSON path.
fn records(obj: &impl ResourceExt) -> BTreeMap<String, Value> {
    let value = obj
        .annotations()
        .get(IMAGES_ANNOTATION)
        .unwrap_or_else(|| panic!("{} has no {IMAGES_ANNOTATION}", obj.name_any()));
    let list: Vec<Value> = serde_json::from_str(value).expect("annotation is a JSON list");
    list.into_iter()
        .map(|r| (r["path"].as_str().unwrap().to_owned(), r))
        .collect()
}

fn container_images(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<String> {
    spec.containers
        .iter()
        .map(|c| c.image.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn pod_with_tags_is_stored_pinned_with_the_annotation() {
    let scope = Scope::new(&[None]).await;
    let app = scope.push("app", "1.0", "app").await;
    let init = scope.push("init", "v2", "init").await;
    let s = scope.serve(with_credentials()).await;
    let pods: Api<Pod> = s.api(0);

    let mut p = pod("web", &[&app.reference]);
    p.spec.as_mut().unwrap().init_containers = Some(vec![
        serde_json::from_value(json!({"name": "init", "image": init.reference})).unwrap(),
    ]);
    // A server-side dry run gets the same answer and stores nothing.
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answered = pods.create(&dry_run, &p).await.unwrap();
    assert_eq!(
        container_images(answered.spec.as_ref().unwrap()),
        vec![pinned(&app)]
    );
    assert!(pods.get_opt("web").await.unwrap().is_none());
    pods.create(&PostParams::default(), &p).await.unwrap();

    let stored = pods.get("web").await.unwrap();
    let spec = stored.spec.as_ref().unwrap();
    assert_eq!(container_images(spec), vec![pinned(&app)]);
    assert_eq!(
        spec.init_containers.as_ref().unwrap()[0].image.as_deref(),
        Some(pinned(&init).as_str())
    );
    let recs = records(&stored);
    let c0 = &recs["/spec/containers/0/image"];
    assert_eq!(c0["original"], app.reference.as_str());
    assert_eq!(c0["digest"], app.digest.as_str());
    assert!(
        c0["resolvedAt"].as_str().is_some_and(|t| !t.is_empty()),
        "{c0}"
    );
    assert_eq!(
        recs["/spec/initContainers/0/image"]["digest"],
        init.digest.as_str()
    );
}

#[tokio::test]
async fn deployment_pods_keep_the_pinned_digest_after_the_tag_moves() {
    let scope = Scope::new(&[None]).await;
    let app = scope.push("deploy", "stable", "first").await;
    let s = scope.serve(with_credentials()).await;
    let deployments: Api<Deployment> = s.api(0);
    let replica_sets: Api<ReplicaSet> = s.api(0);
    let pods: Api<Pod> = s.api(0);

    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": app.reference}]},
            },
        },
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let stored = deployments.get("web").await.unwrap();
    let template = stored
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(container_images(template), vec![pinned(&app)]);
    assert_eq!(
        records(&stored)["/spec/template/spec/containers/0/image"]["digest"],
        app.digest.as_str()
    );

    let all = ListParams::default();
    let pod_images = |want: usize| {
        let pods = pods.clone();
        let all = all.clone();
        async move {
            let list = pods.list(&all).await.ok()?;
            (list.items.len() == want).then(|| {
                list.items
                    .iter()
                    .flat_map(|p| container_images(p.spec.as_ref().unwrap()))
                    .collect::<Vec<_>>()
            })
        }
    };
    let images = wait_for("2 Pods from the ReplicaSet", WAIT, || pod_images(2)).await;
    assert_eq!(images, vec![pinned(&app); 2]);
    let rs = replica_sets.list(&all).await.unwrap().items;
    assert_eq!(rs.len(), 1);
    assert_eq!(
        container_images(
            rs[0]
                .spec
                .as_ref()
                .unwrap()
                .template
                .as_ref()
                .unwrap()
                .spec
                .as_ref()
                .unwrap()
        ),
        vec![pinned(&app)]
    );

    // The tag now names other content; pods created from now on must not follow it.
    let moved = s
        .scope
        .registry
        .push_image(repository(&app), "stable", "second")
        .await
        .unwrap();
    assert_ne!(moved.digest, app.digest);
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    let images = wait_for("4 Pods after scaling up", WAIT, || pod_images(4)).await;
    assert_eq!(images, vec![pinned(&app); 4]);
    assert_eq!(
        replica_sets.list(&all).await.unwrap().items.len(),
        1,
        "scaling must not roll out a new ReplicaSet"
    );
}

#[tokio::test]
async fn cronjob_template_is_pinned_and_its_job_keeps_the_digest() {
    let scope = Scope::new(&[None]).await;
    let app = scope.push("batch", "nightly", "first").await;
    let s = scope.serve(with_credentials()).await;
    let cronjobs: Api<CronJob> = s.api(0);
    let jobs: Api<Job> = s.api(0);
    let pods: Api<Pod> = s.api(0);

    let cj: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "report"},
        "spec": {
            // Never due during the test: the Job is created by hand, as an operator would.
            "schedule": "0 0 1 1 *",
            "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "report", "image": app.reference}],
            }}}},
        },
    }))
    .unwrap();
    cronjobs.create(&PostParams::default(), &cj).await.unwrap();
    let stored = cronjobs.get("report").await.unwrap();
    let template = stored
        .spec
        .as_ref()
        .unwrap()
        .job_template
        .spec
        .as_ref()
        .unwrap();
    let images = container_images(template.template.spec.as_ref().unwrap());
    assert_eq!(images, vec![pinned(&app)]);
    assert_eq!(
        records(&stored)["/spec/jobTemplate/spec/template/spec/containers/0/image"]["digest"],
        app.digest.as_str()
    );

    // Move the tag first: the Job must carry the CronJob's digest, not the tag's new one.
    let moved = s
        .scope
        .registry
        .push_image(repository(&app), "nightly", "second")
        .await
        .unwrap();
    assert_ne!(moved.digest, app.digest);
    let out = kubectl()
        .args([
            "-n",
            s.scope.ns(0),
            "create",
            "job",
            "report-manual",
            "--from=cronjob/report",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = jobs.get("report-manual").await.unwrap();
    let spec = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    assert_eq!(container_images(spec), vec![pinned(&app)]);

    let selector = ListParams::default().labels("job-name=report-manual");
    let pod_images = wait_for("the Job's Pod", WAIT, || async {
        let list = pods.list(&selector).await.ok()?;
        let first = list.items.first()?;
        Some(container_images(first.spec.as_ref().unwrap()))
    })
    .await;
    assert_eq!(pod_images, vec![pinned(&app)]);
}

#[tokio::test]
async fn ephemeral_container_added_through_the_subresource_is_pinned() {
    let scope = Scope::new(&[None]).await;
    let app = scope.push("app", "1.0", "app").await;
    let debug = scope.push("debug", "latest", "debug").await;
    let s = scope.serve(with_credentials()).await;
    let pods: Api<Pod> = s.api(0);
    pods.create(&PostParams::default(), &pod("web", &[&app.reference]))
        .await
        .unwrap();

    let patch = json!({"spec": {"ephemeralContainers": [
        {"name": "debugger", "image": debug.reference, "targetContainerName": "c0"},
    ]}});
    pods.patch_ephemeral_containers("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let stored = pods.get("web").await.unwrap();
    let ephemeral = stored
        .spec
        .as_ref()
        .unwrap()
        .ephemeral_containers
        .as_ref()
        .unwrap();
    assert_eq!(ephemeral[0].image.as_deref(), Some(pinned(&debug).as_str()));
    assert_eq!(
        container_images(stored.spec.as_ref().unwrap()),
        vec![pinned(&app)]
    );
}

#[tokio::test]
async fn unresolvable_image_is_denied_in_enforce_and_warned_in_warn() {
    let scope = Scope::new(&[None, Some("warn")]).await;
    let missing = format!(
        "{}/e2e/missing-{}:1.0",
        scope.registry.host,
        unique_suffix()
    );
    let s = scope.serve(with_credentials()).await;
    let manifest = |ns: &str| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "ghost", "namespace": ns},
            "spec": {"containers": [{"name": "c0", "image": missing}]},
        })
        .to_string()
    };

    let out = kubectl_with_input(&["create", "-f", "-"], &manifest(s.scope.ns(0)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "enforce admitted {missing}: {stderr}"
    );
    assert!(
        stderr.contains(r#"admission webhook "pin.tagpin.dev" denied the request"#)
            && stderr.contains("tagpin denied this Pod")
            && stderr.contains(&missing),
        "{stderr}"
    );
    let enforce_pods: Api<Pod> = s.api(0);
    assert!(enforce_pods.get_opt("ghost").await.unwrap().is_none());

    let out = kubectl_with_input(&["create", "-f", "-"], &manifest(s.scope.ns(1)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "warn denied {missing}: {stderr}");
    assert!(
        stderr.contains("Warning: tagpin admitted")
            && stderr.contains("(warn mode)")
            && stderr.contains(&missing),
        "{stderr}"
    );
    let warn_pods: Api<Pod> = s.api(1);
    let stored = warn_pods.get("ghost").await.unwrap();
    assert_eq!(
        container_images(stored.spec.as_ref().unwrap()),
        vec![missing.clone()]
    );
    let rec = &records(&stored)["/spec/containers/0/image"];
    assert!(rec.get("digest").is_none(), "{rec}");
    assert!(
        rec["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{rec}"
    );
}

/// Removes a label from kube-system again, even when the test fails.
struct KubeSystemLabel(String);

impl Drop for KubeSystemLabel {
    fn drop(&mut self) {
        let _ = kubectl()
            .args(["label", "namespace", "kube-system", &format!("{}-", self.0)])
            .output();
    }
}

#[tokio::test]
async fn kube_system_is_left_untouched() {
    let scope = Scope::new(&[None]).await;
    let app = scope.push("system", "1.0", "system").await;
    let client = scope.client.clone();
    // Give kube-system this test's run label, so only the manifests' own exclusion keeps
    // the webhook away from it.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _label = KubeSystemLabel(scope.run.key.clone());
    namespaces
        .patch(
            "kube-system",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {scope.run.key.clone(): "true"}}})),
        )
        .await
        .unwrap();
    let s = scope.serve(with_credentials()).await;

    let pods: Api<Pod> = Api::namespaced(client, "kube-system");
    let name = format!("e2e-untouched-{}", unique_suffix());
    let unresolvable = format!(
        "{}/e2e/missing-{}:1.0",
        s.scope.registry.host,
        unique_suffix()
    );
    pods.create(
        &PostParams::default(),
        &pod(&name, &[&app.reference, &unresolvable]),
    )
    .await
    .unwrap();
    let stored = pods.get(&name).await.unwrap();
    let _ = pods.delete(&name, &Default::default()).await;
    assert_eq!(
        container_images(stored.spec.as_ref().unwrap()),
        vec![app.reference.clone(), unresolvable]
    );
    assert!(!stored.annotations().contains_key(IMAGES_ANNOTATION));
    assert!(
        !s.tagpin.log().contains(&name),
        "tagpin was called for kube-system"
    );
}

/// Audit events of the local API server that mention `name` in `namespace`.
fn audit_events(namespace: &str, name: &str) -> Vec<Value> {
    let path = TestEnv::load().require("TAGPIN_AUDIT_LOG");
    std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(namespace) && l.contains(name))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["objectRef"]["namespace"] == namespace && e["objectRef"]["name"] == name)
        .collect()
}

#[tokio::test]
async fn audit_log_records_the_pinned_digest() {
    let scope = Scope::new(&[None]).await;
    let app = scope.push("audited", "1.0", "audited").await;
    let s = scope.serve(with_credentials()).await;
    let pods: Api<Pod> = s.api(0);
    pods.create(&PostParams::default(), &pod("audited", &[&app.reference]))
        .await
        .unwrap();

    let event = wait_for("the Pod's create in the audit log", WAIT, || async {
        audit_events(s.scope.ns(0), "audited")
            .into_iter()
            .find(|e| {
                e["verb"] == "create"
                    && e["objectRef"]["resource"] == "pods"
                    && e["stage"] == "ResponseComplete"
            })
    })
    .await;
    let annotations = &event["annotations"];
    let images: Vec<Value> = serde_json::from_str(
        annotations["pin.tagpin.dev/images"]
            .as_str()
            .unwrap_or_else(|| panic!("no tagpin audit annotation in {event}")),
    )
    .unwrap();
    assert_eq!(images[0]["digest"], app.digest.as_str());
    assert_eq!(images[0]["original"], app.reference.as_str());
    assert_eq!(annotations["pin.tagpin.dev/mode"], "enforce");
    assert_eq!(event["responseStatus"]["code"], 201);
}

#[tokio::test]
async fn tagpin_down_rejects_creates_until_it_is_back() {
    let scope = Scope::new(&[None]).await;
    let app = scope.push("outage", "1.0", "outage").await;
    let mut s = scope.serve(with_credentials()).await;
    let pods: Api<Pod> = s.api(0);

    s.tagpin.stop();
    let err = pods
        .create(&PostParams::default(), &pod("during", &[&app.reference]))
        .await
        .expect_err("failurePolicy Fail admits nothing while tagpin is down");
    let message = err.to_string();
    assert!(
        message.contains("failed calling webhook") && message.contains("pin.tagpin.dev"),
        "{message}"
    );
    assert!(pods.get_opt("during").await.unwrap().is_none());

    s.tagpin.restart().await;
    let created = wait_for("a create after tagpin restarted", WAIT, || async {
        pods.create(&PostParams::default(), &pod("after", &[&app.reference]))
            .await
            .ok()
    })
    .await;
    assert_eq!(
        container_images(created.spec.as_ref().unwrap()),
        vec![pinned(&app)]
    );
    let _ = &s.webhook;
}

#[tokio::test]
async fn manifests_base_passes_server_side_dry_run() {
    let base = repo_root().join("manifests/base");
    // A server-side dry-run cannot see a Namespace it only pretended to create.
    let out = kubectl()
        .arg("apply")
        .arg("-f")
        .arg(base.join("namespace.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kubectl()
        .args(["apply", "--dry-run=server", "-k"])
        .arg(&base)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the API server rejects manifests/base: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for object in [
        "deployment.apps/tagpin",
        "clusterrole.rbac.authorization.k8s.io/tagpin",
    ] {
        assert!(stdout.contains(object), "{object} missing from: {stdout}");
    }
    // Applied alone the base registers no webhook, so it can block no Pod.
    assert!(
        !stdout.contains("mutatingwebhookconfiguration"),
        "manifests/base registers a webhook: {stdout}"
    );
}

fn pull_secret(name: &str, registry: &TestRegistry) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": registry.docker_config_json()},
    }))
    .unwrap()
}

#[tokio::test]
async fn pull_secrets_are_used_only_in_their_own_namespace() {
    // 0: pod names the secret; 1: the default ServiceAccount names it; 2: no secret at all.
    let scope = Scope::new(&[None, None, None]).await;
    let private = scope.push("private", "1.0", "private").await;
    for i in [0, 1] {
        let secrets: Api<Secret> = Api::namespaced(scope.client.clone(), scope.ns(i));
        secrets
            .create(
                &PostParams::default(),
                &pull_secret("regcred", &scope.registry),
            )
            .await
            .unwrap();
    }
    let accounts: Api<ServiceAccount> = Api::namespaced(scope.client.clone(), scope.ns(1));
    accounts
        .patch(
            "default",
            &PatchParams::default(),
            &Patch::Merge(json!({"imagePullSecrets": [{"name": "regcred"}]})),
        )
        .await
        .unwrap();
    // No configured credentials: only the cluster's pull secrets open the registry.
    let s = scope.serve(TagpinConfig::default()).await;

    let with_secret = |name: &str| {
        let mut p = pod(name, &[&private.reference]);
        p.spec.as_mut().unwrap().image_pull_secrets = Some(vec![
            serde_json::from_value(json!({"name": "regcred"})).unwrap(),
        ]);
        p
    };
    let own: Api<Pod> = s.api(0);
    let stored = own
        .create(&PostParams::default(), &with_secret("own"))
        .await
        .unwrap();
    assert_eq!(
        container_images(stored.spec.as_ref().unwrap()),
        vec![pinned(&private)]
    );

    let by_account: Api<Pod> = s.api(1);
    let stored = by_account
        .create(
            &PostParams::default(),
            &pod("by-account", &[&private.reference]),
        )
        .await
        .unwrap();
    assert_eq!(
        container_images(stored.spec.as_ref().unwrap()),
        vec![pinned(&private)]
    );

    // Same image, same secret name, but no such secret here; and the digest that the
    // other namespaces resolved must not come from cache either.
    let other: Api<Pod> = s.api(2);
    for p in [
        with_secret("borrowed"),
        pod("anonymous", &[&private.reference]),
    ] {
        let err = other
            .create(&PostParams::default(), &p)
            .await
            .expect_err("another namespace's credentials were used");
        let message = err.to_string();
        assert!(
            message.contains("tagpin denied this Pod") && message.contains(&private.reference),
            "{message}"
        );
    }
}

#[tokio::test]
async fn tagpin_runs_with_the_rbac_of_the_manifests() {
    let scope = Scope::new(&[None]).await;
    let private = scope.push("rbac", "1.0", "rbac").await;
    let secrets: Api<Secret> = Api::namespaced(scope.client.clone(), scope.ns(0));
    secrets
        .create(
            &PostParams::default(),
            &pull_secret("regcred", &scope.registry),
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("tagpin-sa.kubeconfig");
    let out = std::process::Command::new("bash")
        .arg(repo_root().join("hack/manifests.sh"))
        .arg("sa-kubeconfig")
        .arg(&kubeconfig)
        .env("KUBECONFIG", tagpin_e2e::cluster::kubeconfig())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What tagpin's reflectors list and watch (namespaces for the tagpin.dev/mode label).
    let mut missing = Vec::new();
    for resource in ["namespaces", "secrets", "serviceaccounts"] {
        for verb in ["list", "watch"] {
            let out = kubectl()
                .args(["auth", "can-i", verb, resource, "--all-namespaces"])
                .args(["--as", "system:serviceaccount:tagpin-system:tagpin"])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).trim() != "yes" {
                missing.push(format!("{verb} {resource}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the ClusterRole in manifests/base/rbac.yaml does not let tagpin {}, so tagpin never becomes ready",
        missing.join(", ")
    );
    let s = scope
        .serve(TagpinConfig {
            kube: KubeAccess::File(kubeconfig),
            ..TagpinConfig::default()
        })
        .await;

    let mut p = pod("rbac", &[&private.reference]);
    p.spec.as_mut().unwrap().image_pull_secrets = Some(vec![
        serde_json::from_value(json!({"name": "regcred"})).unwrap(),
    ]);
    let pods: Api<Pod> = s.api(0);
    let stored = pods.create(&PostParams::default(), &p).await.unwrap();
    assert_eq!(
        container_images(stored.spec.as_ref().unwrap()),
        vec![pinned(&private)]
    );
    assert!(!s.tagpin.log().contains("forbidden"), "{}", s.tagpin.log());
}

#[tokio::test]
async fn unsigned_image_is_denied_in_enforce_and_warned_in_warn_while_signed_is_admitted() {
    let scope = Scope::new(&[None, Some("warn")]).await;
    let base = format!("e2e/verified-{}", unique_suffix());
    let signed = scope
        .registry
        .push_image(&format!("{base}/signed"), "1.0", "signed")
        .await
        .unwrap();
    let unsigned = scope
        .registry
        .push_image(&format!("{base}/unsigned"), "1.0", "unsigned")
        .await
        .unwrap();
    let cosign = Cosign::generate(&scope.registry);
    cosign.sign(
        &scope.registry,
        &format!("{}/{base}/signed@{}", scope.registry.host, signed.digest),
    );
    let policy = format!(
        "verification:\n  noMatch: allow\n  rules:\n    - name: e2e-signed\n      images: [\"{}/{base}/**\"]\n      signatures:\n        anyOf:\n          - name: e2e-key\n            key: {{file: {}}}\n            tlog: waived\n",
        scope.registry.host,
        cosign.public_key().display()
    );
    let s = scope
        .serve(TagpinConfig {
            extra: policy,
            ..with_credentials()
        })
        .await;

    let enforce: Api<Pod> = s.api(0);
    let stored = enforce
        .create(&PostParams::default(), &pod("signed", &[&signed.reference]))
        .await
        .unwrap();
    assert_eq!(
        container_images(stored.spec.as_ref().unwrap()),
        vec![pinned(&signed)]
    );
    let rec = &records(&stored)["/spec/containers/0/image"];
    assert_eq!(rec["verdict"], "verified", "{rec}");
    assert_eq!(rec["rule"], "e2e-signed", "{rec}");
    assert!(
        rec["signers"].as_array().is_some_and(|s| !s.is_empty()),
        "{rec}"
    );

    let manifest = |ns: &str| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "unsigned", "namespace": ns},
            "spec": {"containers": [{"name": "c0", "image": unsigned.reference}]},
        })
        .to_string()
    };
    let out = kubectl_with_input(&["create", "-f", "-"], &manifest(s.scope.ns(0)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "enforce admitted an unsigned image: {stderr}"
    );
    assert!(
        stderr.contains("tagpin denied this Pod")
            && stderr.contains(&unsigned.reference)
            && stderr.contains("not signed"),
        "{stderr}"
    );

    let out = kubectl_with_input(&["create", "-f", "-"], &manifest(s.scope.ns(1)));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "warn denied an unsigned image: {stderr}"
    );
    assert!(
        stderr.contains("Warning: tagpin admitted")
            && stderr.contains("(warn mode)")
            && stderr.contains("not signed"),
        "{stderr}"
    );
    let warn: Api<Pod> = s.api(1);
    let stored = warn.get("unsigned").await.unwrap();
    let rec = &records(&stored)["/spec/containers/0/image"];
    assert_ne!(rec["verdict"], "verified", "{rec}");
    assert!(
        rec["error"]
            .as_str()
            .is_some_and(|e| e.contains("not signed")),
        "{rec}"
    );
}

#[tokio::test]
async fn every_workload_kind_is_stored_pinned_including_image_volumes() {
    let scope = Scope::new(&[None]).await;
    let app = scope.push("kinds-app", "1.0", "app").await;
    let init = scope.push("kinds-init", "1.0", "init").await;
    let data = scope.push("kinds-data", "1.0", "data").await;
    let s = scope.serve(with_credentials()).await;
    let ns = s.scope.ns(0);

    let spec = |restart: &str| {
        json!({
            "restartPolicy": restart,
            "containers": [{"name": "app", "image": app.reference}],
            "initContainers": [{"name": "init", "image": init.reference}],
            "volumes": [{"name": "data", "image": {"reference": data.reference}}],
        })
    };
    let labels = json!({"app": "kinds"});
    let template = |restart: &str| json!({"metadata": {"labels": labels}, "spec": spec(restart)});
    let selector = json!({"matchLabels": labels});
    // (kind, resource for kubectl, object, JSON pointer of the pod spec)
    let objects = [
        (
            "Pod",
            "pod",
            json!({"apiVersion": "v1", "spec": spec("Always")}),
            "/spec",
        ),
        (
            "PodTemplate",
            "podtemplate",
            json!({"apiVersion": "v1", "template": template("Always")}),
            "/template/spec",
        ),
        (
            "ReplicationController",
            "replicationcontroller",
            json!({"apiVersion": "v1", "spec": {"selector": labels, "template": template("Always")}}),
            "/spec/template/spec",
        ),
        (
            "ReplicaSet",
            "replicaset",
            json!({"apiVersion": "apps/v1", "spec": {"selector": selector, "template": template("Always")}}),
            "/spec/template/spec",
        ),
        (
            "StatefulSet",
            "statefulset",
            json!({"apiVersion": "apps/v1", "spec": {"selector": selector, "template": template("Always")}}),
            "/spec/template/spec",
        ),
        (
            "DaemonSet",
            "daemonset",
            json!({"apiVersion": "apps/v1", "spec": {"selector": selector, "template": template("Always")}}),
            "/spec/template/spec",
        ),
        (
            "Job",
            "job",
            json!({"apiVersion": "batch/v1", "spec": {"template": template("Never")}}),
            "/spec/template/spec",
        ),
    ];
    for (kind, resource, mut object, spec_path) in objects {
        let name = format!("w-{}", resource);
        object["kind"] = json!(kind);
        object["metadata"] = json!({"name": name, "namespace": ns});
        let out = kubectl_with_input(&["create", "-f", "-"], &object.to_string());
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = kubectl()
            .args(["-n", ns, "get", resource, &name, "-o", "json"])
            .output()
            .unwrap();
        let stored: Value = serde_json::from_slice(&out.stdout).unwrap();
        for (field, image) in [
            ("containers/0/image", &app),
            ("initContainers/0/image", &init),
            ("volumes/0/image/reference", &data),
        ] {
            let pointer = format!("{spec_path}/{field}");
            assert_eq!(
                stored.pointer(&pointer).and_then(Value::as_str),
                Some(pinned(image).as_str()),
                "{kind} {pointer}"
            );
        }
        let annotation = stored["metadata"]["annotations"][IMAGES_ANNOTATION]
            .as_str()
            .unwrap_or_else(|| panic!("{kind} has no {IMAGES_ANNOTATION}"));
        let records: Vec<Value> = serde_json::from_str(annotation).unwrap();
        assert_eq!(records.len(), 3, "{kind}: {annotation}");
    }
}
