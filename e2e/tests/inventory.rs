//! `tagpin inventory` against the real API server of `hack/control-plane.sh` and the real
//! TLS registry. The tests' namespaces keep Pods off the node (`TestNamespace::create`), so
//! where a test needs a running digest it writes `status.containerStatuses` through the
//! status subresource, standing in for the kubelet. Records are written as tagpin writes them on admission.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tagpin_e2e::cluster::{
    TestNamespace, client, kubeconfig, second_client, second_kubeconfig, wait_for,
};
use tagpin_e2e::cosign::Cosign;
use tagpin_e2e::registry::unique_suffix;
use tagpin_e2e::tagpin::tagpin_bin;
use tagpin_e2e::{PushedImage, TestRegistry};

const WAIT: Duration = Duration::from_secs(60);

/// One test's namespace, registry and config directory.
struct Setup {
    client: Client,
    registry: TestRegistry,
    ns: TestNamespace,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        let client = client().await;
        let ns = TestNamespace::create(&client, "inv", &[]).await;
        Self {
            client,
            registry: TestRegistry::tls(),
            ns,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    async fn push(&self, name: &str, tag: &str, seed: &str) -> PushedImage {
        let repo = format!("inventory/{name}-{}", unique_suffix());
        self.registry.push_image(&repo, tag, seed).await.unwrap()
    }

    /// A config trusting the registry's CA, with `extra` YAML; no registry credentials, so
    /// only the Pods' own pull secrets open the registry.
    fn config(&self, extra: &str) -> PathBuf {
        let ca = self.registry.ca.clone().unwrap();
        let text = format!(
            "resolver:\n  registries:\n    \"{}\":\n      ca: {}\n  cache:\n    ttlSeconds: 0.01\n{extra}\n",
            self.registry.host,
            ca.display()
        );
        let path = self
            .dir
            .path()
            .join(format!("tagpin-{}.yaml", unique_suffix()));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs `tagpin inventory -n <ns> --config <config> <args>`.
    fn inventory(&self, config: &Path, args: &[&str]) -> Output {
        Command::new(tagpin_bin())
            .args(["inventory", "-n", &self.ns.name, "--config"])
            .arg(config)
            .args(args)
            .env("KUBECONFIG", kubeconfig())
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("TAGPIN_CONFIG")
            .env_remove("TAGPIN_LOG")
            .output()
            .expect("tagpin inventory runs")
    }

    fn inventory_json(&self, config: &Path, args: &[&str]) -> (Value, i32) {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let out = self.inventory(config, &all);
        let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "inventory output is not JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (doc, out.status.code().unwrap_or(-1))
    }

    /// Writes what the kubelet would report: `imageID` with the digest that runs.
    async fn report_running(&self, pod: &str, container: &str, image: &str, digest: &str) {
        let pods: Api<Pod> = self.api();
        let repo = image.split(['@']).next().unwrap();
        let repo = repo.rsplit_once(':').map(|(r, _)| r).unwrap_or(repo);
        let status = json!({"status": {"containerStatuses": [{
            "name": container,
            "image": image,
            "imageID": format!("{repo}@{digest}"),
            "ready": true,
            "restartCount": 0,
            "state": {"running": {"startedAt": "2026-11-30T12:05:00Z"}},
        }]}});
        pods.patch_status(pod, &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap_or_else(|e| panic!("setting the status of Pod {pod}: {e}"));
    }

    /// The Pod a controller created with `label`, once it exists.
    async fn pod_with(&self, label: &str) -> String {
        let pods: Api<Pod> = self.api();
        let selector = ListParams::default().labels(label);
        wait_for(&format!("a Pod with {label}"), WAIT, || async {
            let list = pods.list(&selector).await.ok()?;
            list.items.first().map(|p| p.name_any())
        })
        .await
    }
}

/// The `tagpin.dev/images` annotation tagpin writes for one field pinned to `image`.
fn record(path: &str, image: &PushedImage) -> Value {
    json!({"tagpin.dev/images": json!([{
        "path": path,
        "original": image.reference,
        "image": image.reference,
        "digest": image.digest,
        "resolvedAt": "2026-11-30T12:00:00.123Z",
        "verdict": "verified",
        "rule": "team",
        "signers": ["sha256:e74a79f2012cb899cd28e7ca25d64808f6542a569da6cce7689249b511cd551a"],
    }]).to_string()})
}

fn pinned(image: &PushedImage) -> String {
    format!("{}@{}", image.reference, image.digest)
}

fn template(app: &str, image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"restartPolicy": "Always", "containers": [{"name": "main", "image": image}]},
    })
}

/// The rows of `doc` for one top-level owner.
fn rows_of<'a>(doc: &'a Value, kind: &str, name: &str) -> Vec<&'a Value> {
    doc["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ownerKind"] == kind && r["ownerName"] == name)
        .collect()
}

fn flags(row: &Value) -> Vec<&str> {
    row["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect()
}

async fn create<K>(api: &Api<K>, value: Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap()
}

/// Deployment, StatefulSet, DaemonSet, CronJob through a Job, and a bare Pod: each listed
/// under its top-level owner with the record of that owner (or of the Pod itself).
async fn create_every_owner_kind(s: &Setup, app: &PushedImage) {
    let image = pinned(app);
    create::<Deployment>(
        &s.api(),
        json!({
            "metadata": {"name": "web", "annotations": record("/spec/template/spec/containers/0/image", app)},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": template("web", &image)},
        }),
    )
    .await;
    create::<StatefulSet>(
        &s.api(),
        json!({
            "metadata": {"name": "db", "annotations": record("/spec/template/spec/containers/0/image", app)},
            "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": template("db", &image)},
        }),
    )
    .await;
    let cron = create::<CronJob>(
        &s.api(),
        json!({
            "metadata": {"name": "nightly", "annotations": record("/spec/jobTemplate/spec/template/spec/containers/0/image", app)},
            "spec": {"schedule": "0 0 1 1 *", "suspend": true, "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "main", "image": image}]}}}}},
        }),
    )
    .await;
    // As `kubectl create job --from=cronjob/nightly` makes it.
    create::<Job>(
        &s.api(),
        json!({
            "metadata": {"name": "nightly-manual", "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly",
                "uid": cron.uid().unwrap(), "controller": true}]},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "main", "image": image}]}}},
        }),
    )
    .await;
    create::<DaemonSet>(
        &s.api(),
        json!({
            "metadata": {"name": "agent", "annotations": record("/spec/template/spec/containers/0/image", app)},
            "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": template("agent", &image)},
        }),
    )
    .await;
    create::<Pod>(
        &s.api(),
        json!({
            "metadata": {"name": "tool", "annotations": record("/spec/initContainers/0/image", app)},
            "spec": {
                "initContainers": [{"name": "setup", "image": image}],
                "containers": [{"name": "main", "image": app.reference}],
            },
        }),
    )
    .await;
}

#[tokio::test]
async fn every_owner_kind_is_listed_with_its_record_in_all_three_formats() {
    let s = Setup::new().await;
    let app = s.push("app", "1.0", "first").await;
    create_every_owner_kind(&s, &app).await;
    let web_pod = s.pod_with("app=web").await;
    s.pod_with("app=db").await;
    s.pod_with("job-name=nightly-manual").await;
    // The DaemonSet controller makes one for the node; the namespace keeps it off the node.
    s.pod_with("app=agent").await;
    s.report_running(&web_pod, "main", &pinned(&app), &app.digest)
        .await;
    let config = s.config("");

    let (doc, code) = s.inventory_json(&config, &[]);
    assert_eq!(code, 0, "{doc}");
    for (kind, name) in [
        ("Deployment", "web"),
        ("StatefulSet", "db"),
        ("CronJob", "nightly"),
        ("DaemonSet", "agent"),
    ] {
        let rows = rows_of(&doc, kind, name);
        assert_eq!(rows.len(), 1, "{kind}/{name}: {doc:#}");
        let row = rows[0];
        assert_eq!(row["pinnedDigest"], app.digest.as_str());
        // Not the ReplicaSet's copy of the Deployment's annotations: tagpin does not admit
        // a Deployment's ReplicaSets, so a record there is not tagpin's to vouch for.
        assert_eq!(row["recordFrom"], format!("{kind}/{name}"));
        assert_eq!(row["original"], app.reference.as_str());
        assert_eq!(row["resolvedAt"], "2026-11-30T12:00:00.123Z");
        assert_eq!(row["verdict"], "verified");
        assert_eq!(row["rule"], "team");
        assert!(flags(row).is_empty(), "{row:#}");
    }
    let web = rows_of(&doc, "Deployment", "web")[0];
    assert_eq!(web["runningDigest"], app.digest.as_str());
    assert_eq!(web["startedAt"], "2026-11-30T12:05:00Z");
    assert_eq!(web["pod"], web_pod.as_str());

    let tool = rows_of(&doc, "Pod", "tool");
    assert_eq!(tool.len(), 2);
    assert_eq!(tool[0]["containerType"], "init");
    assert_eq!(tool[0]["recordFrom"], "Pod/tool");
    assert!(flags(tool[0]).is_empty());
    assert_eq!(tool[1]["containerType"], "regular");
    assert_eq!(flags(tool[1]), ["unpinned", "no-record"]);
    let summary = &doc["summary"];
    assert_eq!(summary["containers"], 6);
    assert_eq!(summary["pinned"], 5);
    assert_eq!(summary["unpinned"], 1);
    assert_eq!(summary["withoutRecord"], 1);
    assert_eq!(summary["drifted"], 0);
    assert_eq!(summary["failingPolicy"], 0);

    let table = s.inventory(&config, &[]);
    let text = String::from_utf8(table.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE "), "{text}");
    assert!(
        lines.iter().any(|l| l.contains("Deployment/web")
            && l.contains(&web_pod)
            && l.contains(&app.digest[..19])
            && l.trim_end().ends_with(" -")),
        "{text}"
    );
    assert!(lines.iter().any(|l| l.contains("setup (init)")), "{text}");
    assert_eq!(
        lines.last().unwrap(),
        &"6 containers: 5 pinned, 1 unpinned, 1 without record, 0 record differs, 0 drifted, 0 failing policy, 0 check errors"
    );

    let csv = s.inventory(&config, &["-o", "csv"]);
    let text = String::from_utf8(csv.stdout).unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert!(lines[0].starts_with("cluster,namespace,owner_kind,owner_name,pod,container,"));
    let web_line = lines
        .iter()
        .find(|l| l.contains(",Deployment,web,"))
        .unwrap();
    assert!(
        web_line.contains(&format!(",{},{},", app.digest, app.digest)),
        "{web_line}"
    );
    assert!(String::from_utf8_lossy(&csv.stderr).contains("6 containers: 5 pinned"));

    // For scheduled audits: an unpinned container fails `--fail-on unpinned` only.
    assert_eq!(
        s.inventory(&config, &["--fail-on", "unpinned"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        s.inventory(&config, &["--fail-on", "policy"]).status.code(),
        Some(0)
    );

    // One artifact, wherever and under whatever name it runs.
    let (doc, _) = s.inventory_json(&config, &["--by-digest"]);
    let groups = doc["digests"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{doc:#}");
    assert_eq!(groups[0]["digest"], app.digest.as_str());
    assert_eq!(groups[0]["containers"], 5);
    assert_eq!(groups[0]["runningSince"], "2026-11-30T12:05:00Z");
    assert_eq!(groups[0]["pinnedSince"], "2026-11-30T12:00:00.123Z");
    let (doc, _) = s.inventory_json(&config, &["--digest", &app.digest]);
    assert_eq!(
        doc["digest"]["workloads"].as_array().unwrap().len(),
        5,
        "{doc:#}"
    );
    assert_eq!(doc["containers"].as_array().unwrap().len(), 5);
}

fn pull_secret(registry: &TestRegistry) -> Value {
    json!({
        "metadata": {"name": "pull"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": registry.docker_config_json()},
    })
}

fn bare_pod(name: &str, image: &str, tagged: &PushedImage) -> Value {
    json!({
        "metadata": {"name": name, "annotations": record("/spec/containers/0/image", tagged)},
        "spec": {"imagePullSecrets": [{"name": "pull"}],
                 "containers": [{"name": "main", "image": image}]},
    })
}

fn repository(image: &PushedImage) -> &str {
    let path = image.reference.split_once('/').unwrap().1;
    path.rsplit_once(':').unwrap().0
}

#[tokio::test]
async fn moved_tag_is_drift_resolved_once_with_the_pods_pull_secret_and_outages_are_errors() {
    let s = Setup::new().await;
    create::<Secret>(&s.api(), pull_secret(&s.registry)).await;
    let app = s.push("drift", "stable", "first").await;
    for name in ["a", "b", "c"] {
        create::<Pod>(&s.api(), bare_pod(name, &pinned(&app), &app)).await;
    }
    // A registry that refuses connections: its tag cannot be checked, which is no drift.
    let gone = PushedImage {
        digest: app.digest.clone(),
        reference: "127.0.0.1:9/inventory/gone:1".to_owned(),
    };
    create::<Pod>(&s.api(), bare_pod("gone", &pinned(&gone), &gone)).await;
    let config = s.config("");

    let (doc, code) = s.inventory_json(&config, &["--drift"]);
    assert_eq!(code, 0, "{doc:#}");
    assert_eq!(doc["summary"]["drifted"], 0);
    for row in rows_of(&doc, "Pod", "a") {
        assert_eq!(row["drift"]["now"], app.digest.as_str(), "{row:#}");
    }
    let outage = rows_of(&doc, "Pod", "gone")[0];
    assert_eq!(flags(outage), ["drift-error"], "{outage:#}");
    assert!(
        outage["drift"]["error"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1:9")
    );
    assert_eq!(
        s.registry
            .manifest_requests("HEAD", repository(&app), "stable")
            .await,
        1,
        "three Pods, one tag: one registry request"
    );

    let moved = s
        .registry
        .push_image(repository(&app), "stable", "second")
        .await
        .unwrap();
    assert_ne!(moved.digest, app.digest);
    let (doc, code) = s.inventory_json(&config, &["--drift"]);
    assert_eq!(code, 0, "no --fail-on: exit 0");
    assert_eq!(doc["summary"]["drifted"], 3, "{doc:#}");
    for name in ["a", "b", "c"] {
        let row = rows_of(&doc, "Pod", name)[0];
        assert_eq!(flags(row), ["drifted"]);
        assert_eq!(row["drift"]["now"], moved.digest.as_str());
        assert_eq!(row["pinnedDigest"], app.digest.as_str());
    }
    assert_eq!(flags(rows_of(&doc, "Pod", "gone")[0]), ["drift-error"]);
    let out = s.inventory(&config, &["--fail-on", "drift"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--fail-on drift: 4 container(s)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(s.inventory(&config, &["--drift"]).stdout).unwrap();
    assert!(table.lines().next().unwrap().contains("TAG-NOW"), "{table}");
    assert!(table.contains(&moved.digest[..19]), "{table}");
}

#[tokio::test]
async fn record_that_differs_from_what_the_kubelet_runs_is_flagged() {
    let s = Setup::new().await;
    let app = s.push("differs", "1.0", "first").await;
    let other = s.push("differs", "1.0", "second").await;
    create::<Pod>(&s.api(), bare_pod("p", &pinned(&app), &app)).await;
    // The kubelet runs other content than tagpin recorded.
    s.report_running("p", "main", &pinned(&app), &other.digest)
        .await;
    let config = s.config("");
    let (doc, code) = s.inventory_json(&config, &[]);
    assert_eq!(code, 0);
    let row = rows_of(&doc, "Pod", "p")[0];
    assert_eq!(row["runningDigest"], other.digest.as_str());
    assert_eq!(flags(row), ["record-differs"]);
    assert_eq!(doc["summary"]["recordDiffers"], 1);
    assert_eq!(
        s.inventory(&config, &["--fail-on", "drift"]).status.code(),
        Some(1)
    );
    let (doc, _) = s.inventory_json(&config, &["--digest", &other.digest]);
    assert_eq!(doc["containers"].as_array().unwrap().len(), 1, "{doc:#}");
}

#[tokio::test]
async fn verify_marks_what_todays_policy_denies() {
    let s = Setup::new().await;
    create::<Secret>(&s.api(), pull_secret(&s.registry)).await;
    let signed = s.push("verify", "1.0", "signed").await;
    let unsigned = s.push("verify", "1.0", "unsigned").await;
    let cosign = Cosign::generate(&s.registry);
    cosign.sign(
        &s.registry,
        &format!(
            "{}/{}@{}",
            s.registry.host,
            repository(&signed),
            signed.digest
        ),
    );
    create::<Pod>(&s.api(), bare_pod("signed", &pinned(&signed), &signed)).await;
    create::<Pod>(
        &s.api(),
        bare_pod("unsigned", &pinned(&unsigned), &unsigned),
    )
    .await;
    let config = s.config(&format!(
        "verification:\n  noMatch: deny\n  rules:\n    - name: release\n      images: [\"{}/inventory/**\"]\n      signatures:\n        anyOf:\n          - key: {{file: {}}}\n            tlog: waived\n",
        s.registry.host,
        cosign.public_key().display()
    ));
    let (doc, code) = s.inventory_json(&config, &["--verify", "--fail-on", "policy"]);
    assert_eq!(code, 1, "{doc:#}");
    let ok = rows_of(&doc, "Pod", "signed")[0];
    assert_eq!(ok["today"]["verdict"], "verified", "{ok:#}");
    assert!(flags(ok).is_empty());
    let denied = rows_of(&doc, "Pod", "unsigned")[0];
    assert_eq!(denied["today"]["verdict"], "failed", "{denied:#}");
    assert_eq!(denied["today"]["rule"], "release");
    assert_eq!(flags(denied), ["denied-today"]);
    assert_eq!(doc["summary"]["failingPolicy"], 1);
}

/// A kubeconfig with contexts `east` (the control plane of `hack/control-plane.sh`) and
/// `west` (the second one, `TAGPIN_CP_INSTANCE=2`), each defaulting to a namespace there.
fn two_clusters(dir: &Path, east: &str, west: &str) -> PathBuf {
    let read = |path: PathBuf| -> Value {
        serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let (east_config, west_config) = (read(kubeconfig()), read(second_kubeconfig()));
    let entry = |name: &str, config: &Value, kind: &str, field: &str| json!({"name": name, field: config[kind][0][field].clone()});
    let context = |name: &str, namespace: &str| json!({"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}});
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            entry("east", &east_config, "clusters", "cluster"),
            entry("west", &west_config, "clusters", "cluster"),
        ],
        "users": [
            entry("east", &east_config, "users", "user"),
            entry("west", &west_config, "users", "user"),
        ],
        "contexts": [context("east", east), context("west", west)],
        "current-context": "east",
    });
    let path = dir.join("two-clusters.kubeconfig");
    std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
    path
}

/// Two real control planes: the same tag pinned to one digest in `east` and, after a
/// hotfix re-tagged it, to another in `west`.
#[tokio::test]
async fn a_tag_running_as_different_digests_in_two_clusters_is_flagged() {
    let s = Setup::new().await;
    let west_client = second_client().await;
    let west = TestNamespace::create_in(&west_client, second_kubeconfig(), "inv-west", &[]).await;
    let app = s.push("clusters", "1.0", "first").await;
    let hotfix = s.push("clusters", "1.0", "hotfix").await;
    let hotfix = PushedImage {
        reference: app.reference.clone(),
        ..hotfix
    };
    let db = s.push("db", "2", "db").await;
    let west_pods: Api<Pod> = Api::namespaced(west_client, &west.name);
    create::<Pod>(&s.api(), bare_pod("app", &pinned(&app), &app)).await;
    create::<Pod>(&west_pods, bare_pod("app", &pinned(&hotfix), &hotfix)).await;
    create::<Pod>(&s.api(), bare_pod("db", &pinned(&db), &db)).await;
    create::<Pod>(&west_pods, bare_pod("db", &pinned(&db), &db)).await;
    let kubeconfig = two_clusters(s.dir.path(), &s.ns.name, &west.name);

    let run = |args: &[&str]| {
        Command::new(tagpin_bin())
            .args([
                "inventory",
                "--context",
                "east",
                "--context",
                "west",
                "--config",
            ])
            .arg(s.config(""))
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("TAGPIN_CONFIG")
            .output()
            .unwrap()
    };
    let out = run(&["-o", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = doc["containers"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{doc:#}");
    let find = |cluster: &str, pod: &str| {
        rows.iter()
            .find(|r| r["cluster"] == cluster && r["pod"] == pod)
            .unwrap_or_else(|| panic!("{cluster}/{pod} in {doc:#}"))
    };
    let east_app = find("east", "app");
    assert_eq!(flags(east_app), ["differs-across-clusters"]);
    assert_eq!(
        east_app["elsewhere"],
        json!([format!("west={}", hotfix.digest)])
    );
    let west_app = find("west", "app");
    assert_eq!(
        west_app["elsewhere"],
        json!([format!("east={}", app.digest)])
    );
    assert!(flags(find("east", "db")).is_empty());
    assert!(flags(find("west", "db")).is_empty());
    assert_eq!(doc["summary"]["differsAcrossClusters"], 2);

    let table = String::from_utf8(run(&[]).stdout).unwrap();
    assert!(table.starts_with("CLUSTER "), "{table}");
    assert!(
        table.trim_end().ends_with("2 differ across clusters"),
        "{table}"
    );
    assert_eq!(run(&["--fail-on", "drift"]).status.code(), Some(1));
}
