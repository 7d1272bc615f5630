//! The installed tagpin under churn on a real node: a steady stream of admissions goes on
//! with no failure through `kubectl rollout restart` and the loss of one replica; with every
//! replica gone the webhook fails closed, and tagpin comes back by itself because its own
//! namespace is never sent to it. Prints the figures it measured.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use tagpin_e2e::cluster::{TestNamespace, client, wait_for};
use tagpin_e2e::install::{self, NAMESPACE, PULL_SECRET, SCOPE_LABEL, kubectl_ok};
use tagpin_e2e::registry::{PushedImage, TestRegistry, unique_suffix};

/// Admissions per second in the stream.
const RATE: u64 = 10;

/// One admission of the stream: how long it took, and its error if any.
struct Outcome {
    latency: Duration,
    error: Option<String>,
}

/// Creates Pods at [`RATE`] per second until `stop`, each in its own task.
async fn stream(pods: Api<Pod>, image: String, stop: Arc<AtomicBool>) -> Vec<Outcome> {
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE));
    let mut tasks = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        n += 1;
        let pods = pods.clone();
        let pod = pod(&format!("stream-{n}"), &image);
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let result = pods.create(&PostParams::default(), &pod).await;
            Outcome {
                latency: started.elapsed(),
                error: result.err().map(|e| e.to_string()),
            }
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    outcomes
}

fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "imagePullSecrets": [{"name": PULL_SECRET}],
            "containers": [{"name": "main", "image": image}],
        },
    }))
    .unwrap()
}

fn report(phase: &str, outcomes: &[Outcome], elapsed: Duration) {
    let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let failures = outcomes.iter().filter(|o| o.error.is_some()).count();
    println!(
        "{phase}: {} admissions in {:.1}s at {RATE}/s, {failures} failed, latency p50 {:?} p99 {:?} max {:?}",
        outcomes.len(),
        elapsed.as_secs_f64(),
        at(0.5),
        at(0.99),
        latencies.last().copied().unwrap_or_default(),
    );
}

fn tagpin_pods() -> Vec<String> {
    kubectl_ok(&[
        "-n",
        NAMESPACE,
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/name=tagpin",
        "-o",
        "name",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

async fn pinned_create(pods: &Api<Pod>, image: &PushedImage, name: &str) -> Result<Pod, String> {
    pods.create(&PostParams::default(), &pod(name, &image.reference))
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn admissions_survive_restarts_and_fail_closed_when_every_replica_is_gone() {
    let client: Client = client().await;
    install::install(&client).await;
    // The stream's Pods are only stored: admission is what is measured, not the node.
    let ns = TestNamespace::create(&client, "node-churn", &[(SCOPE_LABEL, "true")]).await;
    let registry = TestRegistry::node();
    install::pull_secret(&client, &ns.name, &registry).await;
    let image = registry
        .push_image(&format!("node/churn-{}", unique_suffix()), "1", "churn")
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns.name);
    let first = pinned_create(&pods, &image, "first").await.unwrap();
    assert_eq!(
        first.spec.unwrap().containers[0].image.as_deref(),
        Some(format!("{}@{}", image.reference, image.digest).as_str())
    );

    // Phase 1: rollout restart, then the loss of one replica, under a steady stream.
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let streaming = tokio::spawn(stream(pods.clone(), image.reference.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    kubectl_ok(&["-n", NAMESPACE, "rollout", "restart", "deployment/tagpin"]);
    kubectl_ok(&[
        "-n",
        NAMESPACE,
        "rollout",
        "status",
        "deployment/tagpin",
        "--timeout=240s",
    ]);
    install::wait_ready(&client).await;
    let victim = tagpin_pods().into_iter().next().expect("a tagpin Pod");
    kubectl_ok(&["-n", NAMESPACE, "delete", &victim, "--wait=false"]);
    let all: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let victim_name = victim.trim_start_matches("pod/").to_owned();
    wait_for(
        &format!("{victim} to be gone"),
        install::ROLLOUT,
        || async {
            all.get_opt(&victim_name)
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
    install::wait_ready(&client).await;
    // Every replica the restart and the deletion replaced has finished terminating.
    wait_for("only the current tagpin Pods", install::ROLLOUT, || async {
        (tagpin_pods().len() == install::REPLICAS as usize).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = streaming.await.unwrap();
    report(
        "rollout restart + one replica deleted",
        &outcomes,
        started.elapsed(),
    );
    let failures: Vec<&String> = outcomes.iter().filter_map(|o| o.error.as_ref()).collect();
    assert!(outcomes.len() as u64 >= RATE * 5, "the stream ran");
    assert!(
        failures.is_empty(),
        "{} of {} admissions failed, first: {}",
        failures.len(),
        outcomes.len(),
        failures[0]
    );

    // Phase 2: every replica gone at once. The webhook fails closed...
    let gone = Instant::now();
    kubectl_ok(&[
        "-n",
        NAMESPACE,
        "delete",
        "pods",
        "-l",
        "app.kubernetes.io/name=tagpin",
        "--wait=false",
    ]);
    let mut n = 0;
    let refusal = wait_for(
        "a create refused while no tagpin replica serves",
        Duration::from_secs(60),
        || {
            n += 1;
            let name = format!("closed-{n}");
            let pods = pods.clone();
            let image = image.clone();
            async move { pinned_create(&pods, &image, &name).await.err() }
        },
    )
    .await;
    assert!(refusal.contains("failed calling webhook"), "{refusal}");
    // ...and tagpin comes back by itself: its own namespace is not sent to its webhook.
    let mut m = 0;
    wait_for("creates admitted again", install::ROLLOUT, || {
        m += 1;
        let name = format!("back-{m}");
        let pods = pods.clone();
        let image = image.clone();
        async move { pinned_create(&pods, &image, &name).await.ok() }
    })
    .await;
    install::wait_ready(&client).await;
    println!(
        "every replica deleted: creates refused (\"{}\"), admitted again after {:.1}s",
        refusal.chars().take(160).collect::<String>(),
        gone.elapsed().as_secs_f64()
    );
}
