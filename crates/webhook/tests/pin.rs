//! `tagpin pin` as a user runs it, against the local TLS registry with htpasswd auth.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::tagpin;
use tagpin_e2e::TestRegistry;
use tagpin_e2e::registry::unique_suffix;

/// A temporary directory of manifests and the config that reaches the registry.
struct Workspace {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Workspace {
    fn new(registry: &TestRegistry) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("docker-config.json");
        std::fs::write(&docker, registry.docker_config_json()).unwrap();
        let config = dir.path().join("tagpin.yaml");
        std::fs::write(
            &config,
            format!(
                "resolver:\n  dockerConfig: {}\n  registries:\n    \"{}\":\n      ca: {}\n",
                docker.display(),
                registry.host,
                registry.ca.as_ref().unwrap().display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("manifests/nested")).unwrap();
        Self { dir, config }
    }

    fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.manifests().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn pin(&self, args: &[&str]) -> Output {
        tagpin()
            .arg("pin")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .unwrap()
    }

    /// Every manifest file's contents, to show nothing changed.
    fn snapshot(&self) -> Vec<(PathBuf, String)> {
        let mut files = Vec::new();
        snapshot(&self.manifests(), &mut files);
        files.sort();
        files
    }
}

fn snapshot(dir: &Path, files: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            snapshot(&path, files);
        } else {
            files.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn deployment(image: &str) -> String {
    format!(
        "# the web tier\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: \"{image}\"  # quoted on purpose\n"
    )
}

fn pod_json(image: &str) -> String {
    format!(
        "{{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Pod\",\n  \"spec\": {{\"containers\": [{{\"name\": \"a\", \"image\": \"{image}\"}}]}}\n}}\n"
    )
}

#[tokio::test]
async fn pins_a_directory_checks_it_and_writes_it_once() {
    let reg = TestRegistry::tls();
    let repo = format!("pin/web-{}", unique_suffix());
    let web = reg.push_image(&repo, "1.0", "web-1").await.unwrap();
    let job = reg.push_image(&repo, "job", "job-1").await.unwrap();
    let ws = Workspace::new(&reg);
    let deploy = ws.write("web.yaml", &deployment(&web.reference));
    let pod = ws.write("nested/job.json", &pod_json(&job.reference));
    ws.write("nested/notes.txt", "image: not-a-manifest:1\n");

    // --check fails on every unpinned image and names it.
    let out = ws.pin(&["--check", ws.manifests().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "web.yaml: document 0: /spec/template/spec/containers/0/image: {} is not pinned",
            web.reference
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("job.json: document 0: /spec/containers/0/image"),
        "{stderr}"
    );

    // Printing pins without writing.
    let before = ws.snapshot();
    let out = ws.pin(&[deploy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        deployment(&format!("{}@{}", web.reference, web.digest))
    );
    assert_eq!(ws.snapshot(), before, "printing changes no file");

    // --diff shows only the image line.
    let out = ws.pin(&["--diff", deploy.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let diff = text(&out.stdout);
    assert!(
        diff.contains(&format!(
            "+        image: \"{}@{}\"",
            web.reference, web.digest
        )),
        "{diff}"
    );
    assert_eq!(
        diff.lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .count(),
        1,
        "{diff}"
    );

    // --write rewrites both files; a second run and --check find nothing to do.
    let out = ws.pin(&["-w", ws.manifests().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&deploy).unwrap(),
        deployment(&format!("{}@{}", web.reference, web.digest))
    );
    assert_eq!(
        std::fs::read_to_string(&pod).unwrap(),
        pod_json(&format!("{}@{}", job.reference, job.digest))
    );
    let written = ws.snapshot();
    let out = ws.pin(&["-w", ws.manifests().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(ws.snapshot(), written, "a second run changes nothing");
    let out = ws.pin(&["--check", ws.manifests().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test]
async fn refuses_when_one_tag_does_not_exist_and_changes_no_file() {
    let reg = TestRegistry::tls();
    let repo = format!("pin/refuse-{}", unique_suffix());
    let good = reg.push_image(&repo, "1.0", "good").await.unwrap();
    let ws = Workspace::new(&reg);
    ws.write("good.yaml", &deployment(&good.reference));
    let missing = format!("{}/{repo}:does-not-exist", reg.host);
    ws.write("nested/bad.yaml", &deployment(&missing));
    let before = ws.snapshot();
    let out = ws.pin(&["--write", ws.manifests().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad.yaml: document 0: /spec/template/spec/containers/0/image"),
        "{stderr}"
    );
    assert!(stderr.contains("does-not-exist"), "{stderr}");
    assert!(stderr.contains("no file was changed"), "{stderr}");
    assert_eq!(
        ws.snapshot(),
        before,
        "no file changes when one image is refused"
    );
}

#[tokio::test]
async fn update_reports_a_moved_tag_and_json_reports_each_image() {
    let reg = TestRegistry::tls();
    let repo = format!("pin/update-{}", unique_suffix());
    let old = reg.push_image(&repo, "1.0", "old").await.unwrap();
    let ws = Workspace::new(&reg);
    let file = ws.write(
        "web.yaml",
        &deployment(&format!("{}@{}", old.reference, old.digest)),
    );
    let new = reg.push_image(&repo, "1.0", "new").await.unwrap();
    assert_ne!(old.digest, new.digest);

    let out = ws.pin(&["--write", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains(&old.digest),
        "no --update: the digest stays"
    );

    let out = ws.pin(&[
        "--update",
        "--write",
        "--output",
        "json",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("moved {} -> {}", old.digest, new.digest)),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        deployment(&format!("{}@{}", new.reference, new.digest))
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let image = &report[0];
    assert_eq!(image["field"], "/spec/template/spec/containers/0/image");
    assert_eq!(image["document"], 0);
    assert_eq!(image["digest"], new.digest);
    assert_eq!(image["previousDigest"], old.digest);
    assert_eq!(image["verdict"], "not-verified");
    assert!(image["file"].as_str().unwrap().ends_with("web.yaml"));
}

#[tokio::test]
async fn reads_stdin_and_refuses_to_write_it() {
    let reg = TestRegistry::tls();
    let repo = format!("pin/stdin-{}", unique_suffix());
    let img = reg.push_image(&repo, "1.0", "stdin").await.unwrap();
    let ws = Workspace::new(&reg);
    let input = format!(
        "{}---\n{}",
        deployment(&img.reference),
        deployment(&img.reference)
    );
    let mut child = tagpin()
        .arg("pin")
        .arg("--config")
        .arg(&ws.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pinned = deployment(&format!("{}@{}", img.reference, img.digest));
    assert_eq!(text(&out.stdout), format!("{pinned}---\n{pinned}"));

    let out = ws.pin(&["--write", "-"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("stdin"), "{}", text(&out.stderr));
}

/// A ResourceList as kustomize and kpt hand it to a function.
fn resource_list(image: &str) -> String {
    format!(
        "apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems:\n- apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: web\n    namespace: shop\n    annotations:\n      config.kubernetes.io/index: '0'\n      internal.config.kubernetes.io/path: 'app.yaml'\n  spec:\n    template:\n      spec:\n        containers:\n        - image: {image}\n          name: web\nfunctionConfig:\n  apiVersion: tagpin.dev/v1\n  kind: Pin\n  metadata:\n    name: pin\n"
    )
}

fn krm(ws: &Workspace, input: &str) -> Output {
    let mut child = tagpin()
        .args(["pin", "--krm", "--config"])
        .arg(&ws.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn krm_function_pins_a_resource_list_with_results() {
    let reg = TestRegistry::tls();
    let repo = format!("pin/krm-{}", unique_suffix());
    let web = reg.push_image(&repo, "1.0", "krm").await.unwrap();
    let ws = Workspace::new(&reg);

    let out = krm(&ws, &resource_list(&web.reference));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pinned = format!("{}@{}", web.reference, web.digest);
    let expected = format!(
        "{}results:\n- message: pinned {} to {pinned}\n  severity: info\n  resourceRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: web\n    namespace: shop\n  field:\n    path: spec.template.spec.containers[0].image\n",
        resource_list(&pinned),
        web.reference
    );
    assert_eq!(text(&out.stdout), expected);

    let missing = format!("{}/{repo}:does-not-exist", reg.host);
    let out = krm(&ws, &resource_list(&missing));
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&resource_list(&missing)),
        "items unchanged: {stdout}"
    );
    assert!(stdout.contains("severity: error"), "{stdout}");
    assert!(stdout.contains("does-not-exist"), "{stdout}");
    assert!(text(&out.stderr).contains("does-not-exist"));

    let out = krm(&ws, "apiVersion: v1\nkind: List\nitems: []\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ResourceList"),
        "{}",
        text(&out.stderr)
    );
}
