//! tagpin's kustomize manifests as the tests see them: `kubectl kustomize` of a directory, and
//! kustomizations composed in a temporary directory the way `hack/` and users compose them.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cluster::kubectl;
use crate::env::repo_root;

/// The repository's `manifests/` directory.
pub fn manifests_dir() -> PathBuf {
    repo_root().join("manifests")
}

/// The objects `kubectl kustomize dir` renders, or kustomize's error.
pub fn render(dir: &Path) -> Result<Vec<Value>, String> {
    let out = kubectl()
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl kustomize runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).expect("rendered manifests are UTF-8");
    Ok(serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            <Value as serde::Deserialize>::deserialize(doc).expect("rendered manifest is YAML")
        })
        .collect())
}

/// The path from directory `from` to `to` as a kustomization names it (kustomize refuses
/// absolute paths): up to the root, then down.
pub fn path_from(from: &Path, to: &Path) -> String {
    let from = from
        .canonicalize()
        .expect("the kustomization directory exists");
    let to = to.canonicalize().expect("the referenced directory exists");
    let up = "../".repeat(from.components().count().saturating_sub(1));
    let down = to.strip_prefix("/").unwrap_or(&to);
    format!("{up}{}", down.display())
}

/// Writes `dir/kustomization.yaml` with `manifests/base` and the named components of
/// `manifests/components`, then `extra` (more top-level YAML), and renders it.
pub fn compose(dir: &Path, components: &[&str], extra: &str) -> Result<Vec<Value>, String> {
    let mut text = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\n",
        path_from(dir, &manifests_dir().join("base"))
    );
    if !components.is_empty() {
        text.push_str("components:\n");
        for c in components {
            let path = path_from(dir, &manifests_dir().join("components").join(c));
            text.push_str(&format!("  - {path}\n"));
        }
    }
    text.push_str(extra);
    std::fs::write(dir.join("kustomization.yaml"), text).expect("writing the kustomization");
    render(dir)
}

/// The first object of `kind` among `objects`.
pub fn find<'a>(objects: &'a [Value], kind: &str) -> Option<&'a Value> {
    objects.iter().find(|o| o["kind"] == kind)
}

/// Creates tagpin's namespace for real: a server-side dry run cannot see a Namespace it
/// only pretended to create. (Harmless: the webhook leaves that namespace out.)
pub fn create_tagpin_namespace() {
    let out = kubectl()
        .arg("apply")
        .arg("-f")
        .arg(manifests_dir().join("base/namespace.yaml"))
        .output()
        .expect("kubectl apply runs");
    assert!(
        out.status.success(),
        "creating tagpin's namespace: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `kubectl apply --dry-run=server -k dir`: the objects as the API server would store them,
/// or its error.
pub fn server_dry_run(dir: &Path) -> Result<Vec<Value>, String> {
    let out = kubectl()
        .args(["apply", "--dry-run=server", "-o", "json", "-k"])
        .arg(dir)
        .output()
        .expect("kubectl apply runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let list: Value = serde_json::from_slice(&out.stdout).expect("kubectl prints JSON");
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}
