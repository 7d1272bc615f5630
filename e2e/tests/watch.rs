//! `tagpin watch` against the real API server and TLS registry: two replicas behind one
//! Lease report a moved tag once, as a `TagMoved` Event on the Deployment and a metric, and
//! a tightened policy as `PolicyViolation`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tagpin_e2e::cluster::{TestNamespace, client, kubeconfig, kubectl, wait_for};
use tagpin_e2e::cosign::Cosign;
use tagpin_e2e::env::repo_root;
use tagpin_e2e::registry::unique_suffix;
use tagpin_e2e::tagpin::tagpin_bin;
use tagpin_e2e::{PushedImage, TestRegistry};

const WAIT: Duration = Duration::from_secs(60);

/// A `tagpin watch` child process, killed when dropped.
struct Replica {
    child: Child,
    metrics: String,
}

impl Replica {
    /// Watches `ns`, elected through Lease `lease` (`namespace/name`), as `kube` allows,
    /// with `flags` (`--identity`, `--interval`).
    fn start(
        ns: &str,
        config: &Path,
        lease: (&str, &str),
        flags: &[&str],
        kube: &Path,
        log: &Path,
    ) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(tagpin_bin())
            .args(["watch", "-n", ns])
            .args(["--lease-namespace", lease.0, "--lease-name", lease.1])
            .args(flags)
            .args(["--metrics-addr", &format!("127.0.0.1:{port}"), "--config"])
            .arg(config)
            .env("KUBECONFIG", kube)
            .env("TAGPIN_LOG", "info")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("TAGPIN_CONFIG")
            .env_remove("POD_NAMESPACE")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("tagpin watch starts");
        Self {
            child,
            metrics: format!("http://127.0.0.1:{port}/metrics"),
        }
    }

    /// The value of the sample whose line starts with `prefix` and contains `has`.
    async fn sample(&self, prefix: &str, has: &str) -> Option<f64> {
        let text = reqwest::get(&self.metrics).await.ok()?.text().await.ok()?;
        text.lines()
            .find(|l| l.starts_with(prefix) && l.contains(has))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

impl Replica {
    /// Sends SIGTERM, as the kubelet does, and waits for the exit.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rounds run by both replicas together (only the leader runs any).
async fn rounds(replicas: &[Replica]) -> f64 {
    let mut total = 0.0;
    for r in replicas {
        total += r
            .sample("tagpin_watch_rounds_total", "")
            .await
            .unwrap_or(0.0);
    }
    total
}

async fn events(client: &Client, ns: &str, reason: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().fields(&format!("reason={reason}"));
    api.list(&lp).await.unwrap().items
}

fn config(dir: &Path, registry: &TestRegistry, extra: &str) -> PathBuf {
    let text = format!(
        "resolver:\n  registries:\n    \"{}\":\n      ca: {}\n  cache:\n    ttlSeconds: 0.01\n{extra}\n",
        registry.host,
        registry.ca.clone().unwrap().display()
    );
    let path = dir.join("tagpin.yaml");
    // Written whole then renamed: a round never reads half a file.
    let tmp = dir.join(format!("tagpin-{}.yaml", unique_suffix()));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

fn deployment(app: &PushedImage) -> Value {
    let record = json!([{
        "path": "/spec/template/spec/containers/0/image",
        "original": app.reference,
        "image": app.reference,
        "digest": app.digest,
        "resolvedAt": "2026-11-30T12:00:00Z",
        "verdict": "verified",
        "rule": "team",
    }]);
    json!({
        "metadata": {"name": "web", "annotations": {"tagpin.dev/images": record.to_string()}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"imagePullSecrets": [{"name": "pull"}], "containers": [{
                "name": "main", "image": format!("{}@{}", app.reference, app.digest)}]},
        }},
    })
}

/// The pull secret, tag `1.4` pushed, and Deployment `web` (two Pods) pinned to it.
async fn deploy_web(client: &Client, ns: &str, registry: &TestRegistry) -> (String, PushedImage) {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "pull"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": registry.docker_config_json()},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let repo = format!("watch/app-{}", unique_suffix());
    let app = registry.push_image(&repo, "1.4", "first").await.unwrap();
    let deploy: Deployment = serde_json::from_value(deployment(&app)).unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_for("the Deployment's two Pods", WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        (list.items.len() == 2).then_some(())
    })
    .await;

    (repo, app)
}

#[tokio::test]
async fn two_replicas_report_a_moved_tag_once_and_a_tightened_policy() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "watch", &[]).await;
    let registry = TestRegistry::tls();
    let dir = tempfile::tempdir().unwrap();
    let (repo, app) = deploy_web(&client, &ns.name, &registry).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    // A registry that refuses connections: an error metric, never drift.
    let gone = PushedImage {
        digest: app.digest.clone(),
        reference: "127.0.0.1:9/watch/gone:1".to_owned(),
    };
    let mut gone_pod = deployment(&gone)["spec"]["template"].clone();
    gone_pod["metadata"] = json!({"name": "gone", "annotations": {"tagpin.dev/images": json!([{
        "path": "/spec/containers/0/image", "original": gone.reference, "image": gone.reference,
        "digest": gone.digest, "resolvedAt": "2026-11-30T12:00:00Z", "verdict": "verified"}]).to_string()}});
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(gone_pod).unwrap(),
    )
    .await
    .unwrap();

    let path = config(dir.path(), &registry, "");
    let lease = format!("tagpin-watch-{}", unique_suffix());
    let replicas = [
        Replica::start(
            &ns.name,
            &path,
            (&ns.name, &lease),
            &[
                "--identity",
                "a",
                "--interval",
                "2",
                "--lease-duration",
                "4",
            ],
            &kubeconfig(),
            &dir.path().join("a.log"),
        ),
        Replica::start(
            &ns.name,
            &path,
            (&ns.name, &lease),
            &[
                "--identity",
                "b",
                "--interval",
                "2",
                "--lease-duration",
                "4",
            ],
            &kubeconfig(),
            &dir.path().join("b.log"),
        ),
    ];
    let logs = || {
        ["a.log", "b.log"]
            .map(|f| std::fs::read_to_string(dir.path().join(f)).unwrap_or_default())
            .join("\n")
    };
    wait_for("a first round", WAIT, || async {
        (rounds(&replicas).await >= 1.0).then_some(())
    })
    .await;
    assert!(
        events(&client, &ns.name, "TagMoved").await.is_empty(),
        "{}",
        logs()
    );

    let moved = registry.push_image(&repo, "1.4", "second").await.unwrap();
    assert_ne!(moved.digest, app.digest);
    let found = wait_for("a TagMoved Event", WAIT, || async {
        let found = events(&client, &ns.name, "TagMoved").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    let event = &found[0];
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.involved_object.kind.as_deref(), Some("Deployment"));
    assert_eq!(event.involved_object.name.as_deref(), Some("web"));
    let message = event.message.clone().unwrap();
    assert!(
        message.contains(&format!("now points to {}", moved.digest)),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "this Deployment runs {}, pinned 2026-11-30T12:00:00Z",
            app.digest
        )),
        "{message}"
    );
    let drift_metric = async || {
        let mut total = 0.0;
        for r in &replicas {
            total += r
                .sample("tagpin_tag_drift{", "workload=\"web\",container=\"main\"")
                .await
                .unwrap_or(0.0);
        }
        total
    };
    assert_eq!(drift_metric().await, 1.0, "the leader's gauge only");

    // Two replicas, two Pods, several rounds: still one Event.
    let after = rounds(&replicas).await;
    wait_for("two more rounds", WAIT, || async {
        (rounds(&replicas).await >= after + 2.0).then_some(())
    })
    .await;
    let found = events(&client, &ns.name, "TagMoved").await;
    assert_eq!(
        found.len(),
        1,
        "{:?}\n{}",
        found.iter().map(|e| e.name_any()).collect::<Vec<_>>(),
        logs()
    );
    assert_eq!(found[0].count, Some(1));

    // Today's policy wants a signature the running digest does not have.
    let cosign = Cosign::generate(&registry);
    config(
        dir.path(),
        &registry,
        &format!(
            "verification:\n  noMatch: deny\n  rules:\n    - name: release\n      images: [\"{}/watch/**\"]\n      signatures:\n        anyOf:\n          - key: {{file: {}}}\n            tlog: waived\n",
            registry.host,
            cosign.public_key().display()
        ),
    );
    let on_web = async || {
        let mut found = events(&client, &ns.name, "PolicyViolation").await;
        found.retain(|e| e.involved_object.name.as_deref() == Some("web"));
        found
    };
    let found = wait_for("a PolicyViolation Event", WAIT, || async {
        let found = on_web().await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(found.len(), 1, "{}", logs());
    assert_eq!(found[0].involved_object.name.as_deref(), Some("web"));
    let message = found[0].message.clone().unwrap();
    assert!(
        message.contains(&app.digest) && message.contains("rule release"),
        "{message}"
    );
    let after = rounds(&replicas).await;
    wait_for("another round", WAIT, || async {
        (rounds(&replicas).await >= after + 1.0).then_some(())
    })
    .await;
    assert_eq!(on_web().await.len(), 1, "reported once");
    // It reports; it never acts.
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
    assert_eq!(
        pods.list(&ListParams::default()).await.unwrap().items.len(),
        3
    );
}

/// A kubeconfig for ServiceAccount `tagpin-system/tagpin-watch` with exactly the rights
/// `manifests/components/drift-watch` grants it.
fn watch_service_account(dir: &Path) -> PathBuf {
    let manifests = repo_root().join("manifests");
    let out = kubectl()
        .arg("apply")
        .arg("-f")
        .arg(manifests.join("base/namespace.yaml"))
        .arg("-f")
        .arg(manifests.join("components/drift-watch/rbac.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = kubectl()
        .args([
            "create",
            "token",
            "tagpin-watch",
            "-n",
            "tagpin-system",
            "--duration=1h",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let text = std::fs::read_to_string(kubeconfig()).unwrap();
    let mut config: Value = serde_norway::from_str(&text).unwrap();
    config["users"] = json!([{"name": "tagpin-watch", "user": {"token": token}}]);
    config["contexts"][0]["context"]["user"] = json!("tagpin-watch");
    config["current-context"] = config["contexts"][0]["name"].clone();
    let path = dir.join("tagpin-watch.kubeconfig");
    std::fs::write(&path, serde_norway::to_string(&config).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn the_manifests_rbac_is_enough_to_report_on_the_deployment() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "watch-rbac", &[]).await;
    let registry = TestRegistry::tls();
    let dir = tempfile::tempdir().unwrap();
    let (repo, app) = deploy_web(&client, &ns.name, &registry).await;
    let kube = watch_service_account(dir.path());
    let path = config(dir.path(), &registry, "");
    let lease = format!("tagpin-watch-{}", unique_suffix());
    let log = dir.path().join("watch.log");
    let flags = [
        "--identity",
        "a",
        "--interval",
        "2",
        "--lease-duration",
        "4",
    ];
    let replica = Replica::start(
        &ns.name,
        &path,
        ("tagpin-system", &lease),
        &flags,
        &kube,
        &log,
    );
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("a first round", WAIT, || async {
        (rounds(std::slice::from_ref(&replica)).await >= 1.0).then_some(())
    })
    .await;
    // Two Pods run the tag: one registry request per round, not one per Pod.
    let replicas = std::slice::from_ref(&replica);
    wait_for("three rounds", WAIT, || async {
        (rounds(replicas).await >= 3.0).then_some(())
    })
    .await;
    let before = rounds(replicas).await;
    let heads = registry.manifest_requests("HEAD", &repo, "1.4").await;
    let after = rounds(replicas).await;
    assert!(
        heads as f64 >= before && heads as f64 <= after + 1.0,
        "{heads} HEAD requests in {before}..{after} rounds"
    );
    let moved = registry.push_image(&repo, "1.4", "second").await.unwrap();
    assert_ne!(moved.digest, app.digest);
    // On the Deployment: the ReplicaSet and Deployment could be read, and the Event created.
    let found = wait_for("a TagMoved Event", WAIT, || async {
        let found = events(&client, &ns.name, "TagMoved").await;
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(
        found[0].involved_object.kind.as_deref(),
        Some("Deployment"),
        "{}",
        logs()
    );
    let errors = replica.sample("tagpin_watch_errors_total", "").await;
    assert_eq!(errors, Some(0.0), "{}", logs());
    assert!(!logs().to_lowercase().contains("forbidden"), "{}", logs());
}

#[tokio::test]
async fn a_policy_change_is_checked_at_once_not_at_the_next_interval() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "watch-reload", &[]).await;
    let registry = TestRegistry::tls();
    let dir = tempfile::tempdir().unwrap();
    deploy_web(&client, &ns.name, &registry).await;
    let path = config(dir.path(), &registry, "");
    let lease = format!("tagpin-watch-{}", unique_suffix());
    let log = dir.path().join("watch.log");
    let flags = [
        "--identity",
        "a",
        "--interval",
        "600",
        "--lease-duration",
        "4",
    ];
    let replica = Replica::start(
        &ns.name,
        &path,
        (&ns.name, &lease),
        &flags,
        &kubeconfig(),
        &log,
    );
    let replicas = std::slice::from_ref(&replica);
    wait_for("a first round", WAIT, || async {
        (rounds(replicas).await >= 1.0).then_some(())
    })
    .await;
    // A config that no longer loads: an error metric, and the last good config stays.
    config(dir.path(), &registry, "verification: [not, a, policy");
    wait_for("a config error", WAIT, || async {
        let errors = replica
            .sample("tagpin_watch_errors_total", "check=\"config\"")
            .await;
        (errors >= Some(1.0)).then_some(())
    })
    .await;
    assert!(
        events(&client, &ns.name, "PolicyViolation")
            .await
            .is_empty()
    );
    // A policy every image fails: no rule matches and unmatched images are denied.
    config(
        dir.path(),
        &registry,
        "verification:\n  noMatch: deny\n  rules: []\n",
    );
    let found = wait_for(
        "a PolicyViolation Event well before the interval",
        WAIT,
        || async {
            let found = events(&client, &ns.name, "PolicyViolation").await;
            (!found.is_empty()).then_some(found)
        },
    )
    .await;
    assert_eq!(found[0].involved_object.name.as_deref(), Some("web"));
    assert_eq!(
        replica
            .sample("tagpin_policy_violation{", "workload=\"web\"")
            .await,
        Some(1.0),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[tokio::test]
async fn a_leader_that_shuts_down_hands_over_at_once_not_when_its_lease_expires() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "watch-lease", &[]).await;
    let registry = TestRegistry::tls();
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), &registry, "");
    let lease = format!("tagpin-watch-{}", unique_suffix());
    // Renewed every 30 s: without a handover, b could lead only 60 s or more after a stops.
    let start = |id: &str| {
        let flags = [
            "--identity",
            id,
            "--interval",
            "1",
            "--lease-duration",
            "90",
        ];
        let log = dir.path().join(format!("{id}.log"));
        Replica::start(
            &ns.name,
            &path,
            (&ns.name, &lease),
            &flags,
            &kubeconfig(),
            &log,
        )
    };
    let mut a = start("a");
    wait_for("a leads", WAIT, || async {
        (a.sample("tagpin_watch_leader", "").await == Some(1.0)).then_some(())
    })
    .await;
    let b = start("b");
    wait_for("b follows", WAIT, || async {
        (b.sample("tagpin_watch_leader", "").await == Some(0.0)).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    assert!(a.terminate().success());
    wait_for("b leads", Duration::from_secs(45), || async {
        (b.sample("tagpin_watch_leader", "").await == Some(1.0)).then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(45));
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), &ns.name);
    let held = leases.get(&lease).await.unwrap();
    assert_eq!(held.spec.unwrap().holder_identity.as_deref(), Some("b"));
}
