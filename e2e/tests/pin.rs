//! What `tagpin pin` writes, the webhook admits unchanged: applied with kubectl (client- and
//! server-side) against the real API server with tagpin registered, `kubectl diff` finds no
//! drift and a second apply leaves the generation alone. Unpinned manifests, by contrast,
//! drift as soon as the webhook pins them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Output;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::Api;
use tagpin_e2e::TestRegistry;
use tagpin_e2e::cluster::{RunLabel, TestNamespace, client, kubectl};
use tagpin_e2e::registry::unique_suffix;
use tagpin_e2e::tagpin::{KubeAccess, Tagpin, TagpinConfig, tagpin_bin};
use tagpin_e2e::webhook::{IMAGES_ANNOTATION, Webhook};

/// A dry-run probe that tagpin denies in enforce mode without asking a registry.
const PROBE_IMAGE: &str = "TAGPIN-PROBE:invalid";

fn manifests(namespace: &str, image: &str) -> String {
    format!(
        "# app.yaml: kept in Git\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {namespace}\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: {image}   # pinned by tagpin pin\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: nightly\n  namespace: {namespace}\nspec:\n  schedule: \"0 3 * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n          - name: job\n            image: \"{image}\"\n"
    )
}

fn kubectl_on(args: &[&str], file: &Path) -> Output {
    kubectl().args(args).arg("-f").arg(file).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn pinned_manifests_are_admitted_without_drift() {
    let client = client().await;
    let run = RunLabel::new();
    let ns = TestNamespace::create(&client, "e2e-pin", &[(run.key.as_str(), "true")]).await;
    let registry = TestRegistry::tls();
    let repo = format!("e2e/pin-{}", unique_suffix());
    let web = registry.push_image(&repo, "1.0", "pin-web").await.unwrap();
    let tagpin = Tagpin::start(TagpinConfig {
        registry_credentials: true,
        kube: KubeAccess::Admin,
        ..TagpinConfig::default()
    })
    .await;
    let webhook = Webhook::register(&client, &tagpin, &run).await;
    webhook.wait_active(&client, &ns.name, PROBE_IMAGE).await;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, manifests(&ns.name, &web.reference)).unwrap();
    let out = pin_command(&tagpin, &["--write"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pinned = format!("{}@{}", web.reference, web.digest);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        manifests(&ns.name, &pinned)
    );

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    // Client-side and server-side apply each on objects of their own, as a GitOps tool
    // uses one or the other.
    for (name, server_side) in [("web", false), ("web-ssa", true)] {
        apply_without_drift(&deployments, dir.path(), name, server_side, &pinned, None).await;
    }

    // With --annotate the manifests carry the record the webhook keeps, and the cluster
    // stores exactly that record.
    let out = pin_command(&tagpin, &["--annotate", "--write"], dir.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let annotated = std::fs::read_to_string(&file).unwrap();
    let record = annotated
        .lines()
        .find_map(|l| l.trim().strip_prefix("tagpin.dev/images: '"))
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or_else(|| panic!("no record written: {annotated}"))
        .to_owned();
    assert!(record.contains(&web.digest), "{record}");
    for (name, server_side) in [("web-annotated", false), ("web-annotated-ssa", true)] {
        apply_without_drift(
            &deployments,
            dir.path(),
            name,
            server_side,
            &pinned,
            Some(&record),
        )
        .await;
    }

    // The same manifests unpinned: the webhook pins them at admission, so what the cluster
    // stores differs from what Git holds, which is what GitOps tools report as drift.
    let unpinned = dir.path().join("unpinned.yaml");
    std::fs::write(
        &unpinned,
        manifests(&ns.name, &web.reference).replace("name: web\n", "name: web-unpinned\n"),
    )
    .unwrap();
    let out = kubectl_on(&["apply"], &unpinned);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stored = deployments.get("web-unpinned").await.unwrap();
    let spec = stored
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(spec.containers[0].image.as_deref(), Some(pinned.as_str()));
    assert!(
        !std::fs::read_to_string(&unpinned)
            .unwrap()
            .contains(&web.digest)
    );
}

/// `tagpin pin ARGS DIR` with the webhook's own config file: same registries, credentials
/// and policy.
fn pin_command(tagpin: &Tagpin, args: &[&str], dir: &Path) -> Output {
    std::process::Command::new(tagpin_bin())
        .arg("pin")
        .arg("--config")
        .arg(tagpin.dir().join("tagpin.yaml"))
        .args(args)
        .arg(dir)
        .output()
        .unwrap()
}

/// Applies `dir/app.yaml` renamed to `name` (server-side or client-side), and checks that
/// the webhook stored it unchanged: the pinned image, the annotation `record` or none,
/// no `kubectl diff`, and the same generation after applying it again.
async fn apply_without_drift(
    deployments: &Api<Deployment>,
    dir: &Path,
    name: &str,
    server_side: bool,
    pinned: &str,
    record: Option<&str>,
) {
    let (apply, diff): (&[&str], &[&str]) = if server_side {
        (&["apply", "--server-side"], &["diff", "--server-side"])
    } else {
        (&["apply"], &["diff"])
    };
    let file = dir.join(format!("{name}.yaml"));
    let renamed = std::fs::read_to_string(dir.join("app.yaml"))
        .unwrap()
        .replace("name: web\n", &format!("name: {name}\n"))
        .replace("name: nightly\n", &format!("name: {name}-nightly\n"));
    std::fs::write(&file, renamed).unwrap();
    let out = kubectl_on(apply, &file);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stored = deployments.get(name).await.unwrap();
    let spec = stored
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    assert_eq!(spec.containers[0].image.as_deref(), Some(pinned));
    let annotations = stored.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get(IMAGES_ANNOTATION).map(String::as_str),
        record,
        "{name}: the stored record differs from the manifest's"
    );
    let out = kubectl_on(diff, &file);
    assert_eq!(
        out.status.code(),
        Some(0),
        "kubectl {diff:?} shows drift: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = kubectl_on(apply, &file);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again = deployments.get(name).await.unwrap();
    assert_eq!(
        again.metadata.generation, stored.metadata.generation,
        "{apply:?} again changed the stored object"
    );
}
