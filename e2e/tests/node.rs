//! tagpin on a real node: installed with `kubectl apply -k` from its own image and
//! `manifests/`, called by the API server through its Service, and Pods that the kubelet
//! runs from exactly the digest tagpin pinned (`status.containerStatuses[].imageID`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tagpin_e2e::cluster::{TestNamespace, client, wait_for};
use tagpin_e2e::install::{self, PULL_SECRET, SCOPE_LABEL};
use tagpin_e2e::registry::{Platform, PushedImage, TestRegistry, unique_suffix};

/// Pulling and starting a Pod on this machine, with a margin for a loaded CI runner.
const RUNNING: Duration = Duration::from_secs(180);

struct Node {
    client: Client,
    ns: TestNamespace,
    registry: TestRegistry,
}

impl Node {
    /// tagpin installed and ready; a namespace in its scope whose Pods run, with a pull secret.
    async fn new(prefix: &str) -> Self {
        let client = client().await;
        install::install(&client).await;
        let ns = TestNamespace::create_on_node(&client, prefix, &[(SCOPE_LABEL, "true")]).await;
        let registry = TestRegistry::node();
        install::pull_secret(&client, &ns.name, &registry).await;
        Self {
            client,
            ns,
            registry,
        }
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.ns.name)
    }

    /// Waits for `count` Pods with `selector` to run with every container ready.
    async fn running_pods(&self, selector: &str, count: usize) -> Vec<Pod> {
        let pods: Api<Pod> = self.api();
        let params = ListParams::default().labels(selector);
        wait_for(
            &format!("{count} running Pods with {selector} in {}", self.ns.name),
            RUNNING,
            || async {
                let list = pods.list(&params).await.ok()?;
                let running: Vec<Pod> = list
                    .items
                    .into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none() && all_ready(p))
                    .collect();
                (running.len() == count).then_some(running)
            },
        )
        .await
    }
}

fn all_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .container_statuses
            .as_ref()
            .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c.ready))
}

/// `imageID` the kubelet reports for each container, by container name.
fn image_ids(pod: &Pod) -> Vec<(String, String)> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.name, c.image_id))
        .collect()
}

fn pinned(image: &PushedImage) -> String {
    format!("{}@{}", image.reference, image.digest)
}

fn deployment(name: &str, replicas: i32, containers: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "imagePullSecrets": [{"name": PULL_SECRET}],
                    "terminationGracePeriodSeconds": 2,
                    "containers": containers,
                },
            },
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn deployment_written_with_tags_runs_the_digests_tagpin_pinned() {
    let n = Node::new("node-run").await;
    let suffix = unique_suffix();
    let multi = n
        .registry
        .push_runnable_index(
            &format!("node/multi-{suffix}"),
            "1.0",
            "multi",
            &Platform::AMD64_AND_ARM64,
        )
        .await
        .unwrap();
    let single = n
        .registry
        .push_runnable_image(&format!("node/single-{suffix}"), "1.0", "single")
        .await
        .unwrap();

    let created = n
        .api::<Deployment>()
        .create(
            &PostParams::default(),
            &deployment(
                "web",
                2,
                json!([
                    {"name": "multi", "image": multi.reference},
                    {"name": "single", "image": single.reference},
                ]),
            ),
        )
        .await
        .unwrap();
    let record: Value = serde_json::from_str(&created.annotations()["tagpin.dev/images"]).unwrap();
    let stored: Vec<String> = created
        .spec
        .unwrap()
        .template
        .spec
        .unwrap()
        .containers
        .into_iter()
        .filter_map(|c| c.image)
        .collect();
    assert_eq!(stored, [pinned(&multi), pinned(&single)]);
    assert_eq!(record[0]["digest"], multi.digest.as_str(), "{record:#}");
    assert_eq!(record[1]["digest"], single.digest.as_str(), "{record:#}");

    for pod in n.running_pods("app=web", 2).await {
        let ids = image_ids(&pod);
        assert_eq!(ids.len(), 2, "{ids:?}");
        for (container, id) in ids {
            // The index digest for the multi-arch image: what was pinned is what runs.
            let want = if container == "multi" {
                &multi.digest
            } else {
                &single.digest
            };
            assert!(
                id.ends_with(&format!("@{want}")),
                "{}/{container} runs {id}, pinned {want}",
                pod.name_any()
            );
        }
    }
}

#[tokio::test]
async fn private_repository_is_resolved_and_pulled_with_the_pods_pull_secret() {
    let n = Node::new("node-private").await;
    let image = n
        .registry
        .push_runnable_image(&format!("node/private-{}", unique_suffix()), "2", "private")
        .await
        .unwrap();
    let pods: Api<Pod> = n.api();
    let pod = |name: &str, secrets: Value| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "imagePullSecrets": secrets,
                "terminationGracePeriodSeconds": 2,
                "containers": [{"name": "main", "image": image.reference}],
            },
        }))
        .unwrap()
    };

    // Without the secret tagpin cannot read the repository, so in enforce it denies.
    let denied = pods
        .create(&PostParams::default(), &pod("anonymous", json!([])))
        .await
        .expect_err("an image tagpin cannot resolve is denied");
    let message = denied.to_string();
    assert!(message.contains(&image.reference), "{message}");

    let created = pods
        .create(
            &PostParams::default(),
            &pod("with-secret", json!([{"name": PULL_SECRET}])),
        )
        .await
        .unwrap();
    assert_eq!(
        created.spec.unwrap().containers[0].image.as_deref(),
        Some(pinned(&image).as_str())
    );
    let running = n.running_pods("app=with-secret", 1).await;
    let (_, id) = &image_ids(&running[0])[0];
    assert!(id.ends_with(&format!("@{}", image.digest)), "runs {id}");
}

#[tokio::test]
async fn pods_scaled_after_the_tag_moved_run_the_pinned_digest() {
    let n = Node::new("node-moved").await;
    let repository = format!("node/moving-{}", unique_suffix());
    let first = n
        .registry
        .push_runnable_image(&repository, "stable", "first")
        .await
        .unwrap();
    let deployments: Api<Deployment> = n.api();
    deployments
        .create(
            &PostParams::default(),
            &deployment(
                "app",
                1,
                json!([{"name": "main", "image": first.reference}]),
            ),
        )
        .await
        .unwrap();
    n.running_pods("app=app", 1).await;

    // The tag moves in the registry after admission.
    let second = n
        .registry
        .push_runnable_image(&repository, "stable", "second")
        .await
        .unwrap();
    assert_ne!(first.digest, second.digest);
    deployments
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();

    for pod in n.running_pods("app=app", 3).await {
        let (_, id) = &image_ids(&pod)[0];
        assert!(
            id.ends_with(&format!("@{}", first.digest)),
            "{} runs {id}; the pinned digest is {} and the tag now points to {}",
            pod.name_any(),
            first.digest,
            second.digest
        );
    }
}
