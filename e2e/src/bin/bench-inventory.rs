//! The inventory scale bench (`hack/bench-inventory.sh`): 10,000 Pods naming 500 distinct
//! tags of the local TLS registry, in a namespace of their own on the local API server, then
//! one `tagpin inventory --drift` pass over them. Reports the pass's wall time, tagpin's peak
//! RSS and the registry's manifest requests, which must equal the distinct tags; a few tags
//! are moved after the Pods are created, so the pass must also find exactly their Pods
//! drifted. Deletes the namespace afterwards. Fails only when something broke, never by time.
//!
//! Environment: `TAGPIN_BIN` (the tagpin to measure), `BENCH_PODS` (10000), `BENCH_TAGS`
//! (500), `BENCH_MOVED_TAGS` (5), `BENCH_CREATE_CONCURRENCY` (32), `BENCH_OUT` (JSON results).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tagpin_e2e::TestRegistry;
use tagpin_e2e::cluster::{TestNamespace, client, kubeconfig};
use tagpin_e2e::logs::wait_for_line;
use tagpin_e2e::registry::{OCI_MANIFEST, unique_suffix};
use tagpin_e2e::tagpin::tagpin_bin;

/// What one run sets up.
struct Plan {
    pods: usize,
    tags: usize,
    moved: usize,
    concurrency: usize,
}

impl Plan {
    fn from_env() -> anyhow::Result<Self> {
        let plan = Self {
            pods: env_number("BENCH_PODS", 10_000)?,
            tags: env_number("BENCH_TAGS", 500)?,
            moved: env_number("BENCH_MOVED_TAGS", 5)?,
            concurrency: env_number("BENCH_CREATE_CONCURRENCY", 32)?,
        };
        ensure!(
            plan.tags >= 1 && plan.tags <= plan.pods && plan.moved <= plan.tags,
            "need 1 <= BENCH_TAGS <= BENCH_PODS and BENCH_MOVED_TAGS <= BENCH_TAGS"
        );
        ensure!(
            plan.concurrency >= 1,
            "BENCH_CREATE_CONCURRENCY must be at least 1"
        );
        Ok(plan)
    }

    /// Pods naming one of the first `moved` tags (Pod `i` names tag `i % tags`).
    fn drifted_pods(&self) -> usize {
        (0..self.pods)
            .filter(|i| i % self.tags < self.moved)
            .count()
    }
}

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v} is not a number")),
        Err(_) => Ok(default),
    }
}

/// What the inventory pass measured.
struct Pass {
    seconds: f64,
    peak_rss_kib: u64,
    summary: Value,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let plan = Plan::from_env()?;
    let client = client().await;
    let registry = TestRegistry::tls();
    let ns = TestNamespace::create(&client, "bench-inventory", &[]).await;
    let result = run(&plan, &client, &registry, &ns.name).await;
    let deleted = delete_namespace(&client, &ns.name).await;
    let (pass, setup) = result?;
    let deleted = deleted?;
    report(&plan, &pass, &setup, deleted)
}

/// What setting up took, and what the registry saw during the pass.
struct Setup {
    push_seconds: f64,
    create_seconds: f64,
    head_by_tag: usize,
    get_by_tag: usize,
}

async fn run(
    plan: &Plan,
    client: &Client,
    registry: &TestRegistry,
    namespace: &str,
) -> anyhow::Result<(Pass, Setup)> {
    let repo = format!("bench/inventory-{}", unique_suffix());
    let started = Instant::now();
    let digest = push_tags(registry, &repo, plan.tags, plan.concurrency).await?;
    let push_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "pushed {} tags of {}/{repo} in {push_seconds:.1}s",
        plan.tags, registry.host
    );

    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "pull"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": registry.docker_config_json()},
    }))?;
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .context("creating the pull secret")?;
    let started = Instant::now();
    create_pods(
        client,
        namespace,
        plan,
        &format!("{}/{repo}", registry.host),
        &digest,
    )
    .await?;
    let create_seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "created {} Pods in {namespace} in {create_seconds:.1}s",
        plan.pods
    );

    // Tags moved after admission: what the pass must report as drift.
    let moved = registry
        .push_image(&repo, "moved-source", "bench-inventory-moved")
        .await?;
    let (_, moved_bytes) = registry
        .get_manifest(&repo, "moved-source", OCI_MANIFEST)
        .await?;
    for tag in 0..plan.moved {
        registry
            .push_manifest(&repo, &format!("t{tag}"), OCI_MANIFEST, &moved_bytes)
            .await?;
    }
    ensure!(
        moved.digest != digest,
        "the moved tags point to a new digest"
    );

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("tagpin.yaml");
    std::fs::write(
        &config,
        format!(
            "resolver:\n  registries:\n    \"{}\":\n      ca: {}\n",
            registry.host,
            registry
                .ca
                .as_ref()
                .context("the TLS registry has a CA")?
                .display()
        ),
    )?;
    let log_start = std::fs::metadata(&registry.log).map(|m| m.len())?;
    let pass = inventory_pass(namespace, &config, dir.path())?;

    // A request after the pass: once it is in the log, every request of the pass is too.
    let marker = format!("end-of-pass-{}", unique_suffix());
    registry.get_manifest(&repo, &marker, OCI_MANIFEST).await?;
    wait_for_line(&registry.log, &marker, Duration::from_secs(30));
    let log = read_from(&registry.log, log_start)?;
    let count = |method: &str| {
        let needle = format!("\"{method} /v2/{repo}/manifests/t");
        log.lines().filter(|l| l.contains(&needle)).count()
    };
    let setup = Setup {
        push_seconds,
        create_seconds,
        head_by_tag: count("HEAD"),
        get_by_tag: count("GET"),
    };
    Ok((pass, setup))
}

/// Pushes one image as tag `t0`, then the same manifest under `t1`..: one blob upload and
/// a manifest PUT per tag. Returns the digest every tag names.
async fn push_tags(
    registry: &TestRegistry,
    repo: &str,
    tags: usize,
    concurrency: usize,
) -> anyhow::Result<String> {
    let first = registry.push_image(repo, "t0", "bench-inventory").await?;
    let (_, bytes) = registry.get_manifest(repo, "t0", OCI_MANIFEST).await?;
    let bytes = Arc::new(bytes);
    let next = Arc::new(AtomicUsize::new(1));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(8) {
        let (registry, repo, bytes, next) = (
            registry.clone(),
            repo.to_owned(),
            bytes.clone(),
            next.clone(),
        );
        workers.spawn(async move {
            loop {
                let tag = next.fetch_add(1, Ordering::Relaxed);
                if tag >= tags {
                    return anyhow::Ok(());
                }
                registry
                    .push_manifest(&repo, &format!("t{tag}"), OCI_MANIFEST, &bytes)
                    .await?;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(first.digest)
}

/// Creates the Pods, at most `plan.concurrency` requests in flight: bare Pods (a controller
/// would make the controller manager create more), pinned as tagpin pins them, with
/// tagpin's record and the namespace's pull secret.
async fn create_pods(
    client: &Client,
    namespace: &str,
    plan: &Plan,
    repository: &str,
    digest: &str,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.concurrency {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let (next, repository, digest, total, tags) = (
            next.clone(),
            repository.to_owned(),
            digest.to_owned(),
            plan.pods,
            plan.tags,
        );
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return anyhow::Ok(());
                }
                let tagged = format!("{repository}:t{}", i % tags);
                let pod: Pod = serde_json::from_value(pod(i, &tagged, &digest))?;
                pods.create(&PostParams::default(), &pod)
                    .await
                    .with_context(|| format!("creating Pod {i}"))?;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(())
}

/// Pod `i`: one container running `tagged@digest`, with the record tagpin writes.
fn pod(i: usize, tagged: &str, digest: &str) -> Value {
    let record = json!([{
        "path": "/spec/containers/0/image",
        "original": tagged,
        "image": tagged,
        "digest": digest,
        "resolvedAt": "2026-11-30T12:00:00.123Z",
        "verdict": "not-verified",
    }]);
    json!({
        "metadata": {
            "name": format!("p{i:05}"),
            "annotations": {"tagpin.dev/images": record.to_string()},
        },
        "spec": {
            "automountServiceAccountToken": false,
            "imagePullSecrets": [{"name": "pull"}],
            "containers": [{"name": "main", "image": format!("{tagged}@{digest}")}],
        },
    })
}

/// Runs `tagpin inventory -n NAMESPACE --drift -o json` once, sampling its peak RSS
/// (`VmHWM`) until it exits.
fn inventory_pass(namespace: &str, config: &Path, dir: &Path) -> anyhow::Result<Pass> {
    let out_path = dir.join("inventory.json");
    let err_path = dir.join("inventory.err");
    let started = Instant::now();
    let mut child = Command::new(tagpin_bin())
        .args([
            "inventory",
            "-n",
            namespace,
            "--drift",
            "-o",
            "json",
            "--config",
        ])
        .arg(config)
        .env("KUBECONFIG", kubeconfig())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("TAGPIN_CONFIG")
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::fs::File::create(&err_path)?)
        .spawn()
        .context("starting tagpin inventory")?;
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak_rss_kib = 0;
    let status = loop {
        // A zombie's status has no VmHWM: the last reading before exit is the peak.
        if let Some(kib) = vm_hwm_kib(&status_file) {
            peak_rss_kib = peak_rss_kib.max(kib);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let seconds = started.elapsed().as_secs_f64();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    if !status.success() {
        bail!("tagpin inventory exited with {status}: {stderr}");
    }
    let doc: Value = serde_json::from_slice(&std::fs::read(&out_path)?)
        .with_context(|| format!("tagpin inventory printed no JSON: {stderr}"))?;
    Ok(Pass {
        seconds,
        peak_rss_kib,
        summary: doc["summary"].clone(),
    })
}

/// The `VmHWM` line of a `/proc/<pid>/status`, in KiB.
fn vm_hwm_kib(status: &Path) -> Option<u64> {
    std::fs::read_to_string(status)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

fn read_from(path: &Path, offset: u64) -> anyhow::Result<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// Deletes the namespace and waits until it is gone (its Pods with it); the time it took.
async fn delete_namespace(client: &Client, name: &str) -> anyhow::Result<f64> {
    let started = Instant::now();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(name, &Default::default())
        .await
        .with_context(|| format!("deleting namespace {name}"))?;
    let deadline = started + Duration::from_secs(600);
    while namespaces.get_opt(name).await?.is_some() {
        ensure!(
            Instant::now() < deadline,
            "namespace {name} still exists 600s after its deletion"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Checks what must hold whatever the timing, prints the figures and writes `BENCH_OUT`.
fn report(plan: &Plan, pass: &Pass, setup: &Setup, deleted_seconds: f64) -> anyhow::Result<()> {
    let summary = &pass.summary;
    let number = |key: &str| summary[key].as_u64().unwrap_or(u64::MAX) as usize;
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| Pods (one container each), distinct tags | {} Pods, {} tags |",
        plan.pods, plan.tags
    );
    println!(
        "| `tagpin inventory --drift -o json` wall time | {:.2} s |",
        pass.seconds
    );
    println!(
        "| tagpin peak RSS | {:.1} MiB |",
        pass.peak_rss_kib as f64 / 1024.0
    );
    println!(
        "| registry manifest requests by tag (HEAD/GET) | {}/{} |",
        setup.head_by_tag, setup.get_by_tag
    );
    println!(
        "| containers listed, drifted (expected {}), re-check errors | {}, {}, {} |",
        plan.drifted_pods(),
        number("containers"),
        number("drifted"),
        number("errors")
    );
    println!(
        "| setup: tags pushed, Pods created, namespace deleted | {:.1} s, {:.1} s ({:.0} Pods/s), {:.1} s |",
        setup.push_seconds,
        setup.create_seconds,
        plan.pods as f64 / setup.create_seconds,
        deleted_seconds
    );
    let results = json!({
        "pods": plan.pods,
        "tags": plan.tags,
        "moved_tags": plan.moved,
        "inventory_seconds": pass.seconds,
        "peak_rss_kib": pass.peak_rss_kib,
        "head_by_tag": setup.head_by_tag,
        "get_by_tag": setup.get_by_tag,
        "summary": summary,
        "push_seconds": setup.push_seconds,
        "create_seconds": setup.create_seconds,
        "delete_seconds": deleted_seconds,
    });
    if let Ok(out) = std::env::var("BENCH_OUT") {
        std::fs::write(&out, serde_json::to_string_pretty(&results)?)
            .with_context(|| format!("writing {out}"))?;
    }
    ensure!(
        number("containers") == plan.pods,
        "listed {} containers, not {}",
        number("containers"),
        plan.pods
    );
    ensure!(
        number("drifted") == plan.drifted_pods() && number("errors") == 0,
        "expected {} drifted and no errors: {summary}",
        plan.drifted_pods()
    );
    ensure!(
        setup.head_by_tag + setup.get_by_tag == plan.tags,
        "{} manifest requests by tag for {} distinct tags",
        setup.head_by_tag + setup.get_by_tag,
        plan.tags
    );
    Ok(())
}
