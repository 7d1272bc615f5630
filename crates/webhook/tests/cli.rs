//! The `tagpin` binary's commands as a user runs them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{DIGEST, pod, review, tagpin};

#[test]
fn ref_prints_the_normalized_reference() {
    let out = tagpin().args(["ref", "nginx"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "docker.io/library/nginx:latest\n"
    );
    let out = tagpin()
        .args(["ref", &format!("redis@{DIGEST}")])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("docker.io/library/redis@{DIGEST}\n")
    );
}

#[test]
fn ref_rejects_invalid_input_with_exit_2_and_one_line() {
    let out = tagpin().args(["ref", "Nginx:1.25"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("Nginx:1.25"), "{stderr}");
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "ref",
        "resolve",
        "verify",
        "pin",
        "serve",
        "review",
        "certs",
        "inventory",
        "watch",
    ] {
        let out = tagpin().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub}");
        assert!(
            String::from_utf8(out.stdout).unwrap().contains("Usage"),
            "{sub}"
        );
    }
}

fn run_review(input: &serde_json::Value, config: Option<&str>) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("review.json");
    std::fs::write(&file, serde_json::to_vec(input).unwrap()).unwrap();
    let mut cmd = tagpin();
    cmd.arg("review");
    if let Some(c) = config {
        let path = dir.path().join("tagpin.yaml");
        std::fs::write(&path, c).unwrap();
        cmd.arg("--config").arg(path);
    }
    let out = cmd.arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn review_answers_like_the_server() {
    let pinned = format!("nginx:1.25@{DIGEST}");
    let answer = run_review(&review("Pod", "", "CREATE", pod(&[&pinned])), None);
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], "e2e-uid");
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none());
    let images = answer["response"]["auditAnnotations"]["images"]
        .as_str()
        .unwrap();
    assert!(images.contains(DIGEST), "{images}");

    let answer = run_review(&review("Pod", "", "CREATE", pod(&["Bad:Ref"])), None);
    assert_eq!(answer["response"]["allowed"], false);
    assert!(
        answer["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("Bad:Ref")
    );

    let answer = run_review(&review("Pod", "", "DELETE", pod(&["Bad:Ref"])), None);
    assert_eq!(answer["response"]["allowed"], true);

    let answer = run_review(
        &review("Pod", "", "CREATE", pod(&["Bad:Ref"])),
        Some("defaultMode: warn\n"),
    );
    assert_eq!(answer["response"]["allowed"], true);
    assert!(
        answer["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .contains("Bad:Ref")
    );
}

#[test]
fn review_reads_stdin() {
    let mut child = tagpin()
        .args(["review", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let body = review("Pod", "", "CONNECT", pod(&["nginx"]));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&body).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["response"]["allowed"], true);
}

#[test]
fn review_of_malformed_input_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.json");
    std::fs::write(&file, "{").unwrap();
    let out = tagpin().arg("review").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("bad.json") && stderr.contains("AdmissionReview"),
        "{stderr}"
    );
}

#[test]
fn config_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tagpin.yaml");
    std::fs::write(&path, "defaultMode: warn\nkindz: [Pod]\n").unwrap();
    let out = tagpin()
        .args(["review", "--config"])
        .arg(&path)
        .arg("/dev/null")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("tagpin.yaml") && stderr.contains("line 2") && stderr.contains("kindz"),
        "{stderr}"
    );
}

#[test]
fn certs_writes_files_and_prints_the_ca_bundle() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let out = tagpin()
        .args(["certs", "--dns-name", "tagpin.tagpin-system.svc", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let bundle = String::from_utf8(out.stdout).unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(bundle.trim())
        .unwrap();
    assert_eq!(decoded, std::fs::read(dir.path().join("ca.crt")).unwrap());
    assert!(
        std::fs::read_to_string(dir.path().join("tls.key"))
            .unwrap()
            .contains("PRIVATE KEY")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("tls.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// `tagpin certs --kustomize` run from a clone's root names the manifests relative to the
/// directory it writes, and refuses to run tagpin from a tag.
#[test]
fn certs_kustomize_writes_an_installable_directory_and_refuses_a_tag() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = tempfile::tempdir().unwrap();
    let image = format!("registry.example.com/tagpin@{DIGEST}");
    let out = tagpin()
        .current_dir(&repo)
        .args(["certs", "--kustomize", "--image", &image, "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.path().join("kustomization.yaml")).unwrap();
    let manifests = repo.join("manifests").canonicalize().unwrap();
    let doc: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let base = dir.path().join(doc["resources"][0].as_str().unwrap());
    assert_eq!(base.canonicalize().unwrap(), manifests.join("base"));
    let component = dir.path().join(doc["components"][0].as_str().unwrap());
    assert_eq!(
        component.canonicalize().unwrap(),
        manifests.join("components/self-signed")
    );
    assert_eq!(doc["images"][0]["newName"], "registry.example.com/tagpin");
    assert_eq!(doc["images"][0]["digest"], DIGEST);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ca-bundle.crt")).unwrap(),
        std::fs::read_to_string(dir.path().join("ca.crt")).unwrap()
    );

    let refused = tempfile::tempdir().unwrap();
    let out = tagpin()
        .current_dir(&repo)
        .args([
            "certs",
            "--kustomize",
            "--image",
            "registry.example.com/tagpin:0.1.0",
        ])
        .arg("--out")
        .arg(refused.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no digest"), "{stderr}");
    assert!(!refused.path().join("tls.key").exists());

    let out = tagpin()
        .args(["certs", "--image", &image, "--out"])
        .arg(refused.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--image needs --kustomize");
}

#[test]
fn resolve_names_the_invalid_image_and_keeps_digests_as_written() {
    let pinned = format!("nginx:1.25@{DIGEST}");
    let out = tagpin()
        .args(["resolve", &pinned, "Bad:Ref"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{pinned}\n")
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("Bad:Ref"), "{stderr}");

    let out = tagpin()
        .args(["resolve", "--output", "json", &pinned])
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json[0]["input"], pinned);
    assert_eq!(
        json[0]["reference"],
        format!("docker.io/library/nginx:1.25@{DIGEST}")
    );
    assert_eq!(json[0]["digest"], DIGEST);
}

#[test]
fn verify_needs_a_policy() {
    let out = tagpin()
        .args(["verify", &format!("nginx@{DIGEST}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("verification:"), "{stderr}");
}

/// Runs `cmd` without blocking the runtime that serves the scripted registries.
async fn output(cmd: std::process::Command) -> std::process::Output {
    tokio::process::Command::from(cmd).output().await.unwrap()
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

#[test]
fn an_untrusted_registry_certificate_is_one_line_naming_the_config_key() {
    // A TLS endpoint whose certificate comes from a CA tagpin was never told about.
    let stranger = common::Server::start("");
    let registry = stranger.addr.to_string();
    let image = format!("{registry}/team/app:1.0");
    let out = tagpin().args(["resolve", &image]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(out.stderr),
        format!(
            "tagpin resolve: {image}: TLS certificate of registry {registry} is not trusted (invalid certificate: UnknownIssuer); configure its CA under resolver.registries.\"{registry}\".ca\n"
        )
    );
}

#[tokio::test]
async fn a_refused_registry_is_one_clause_without_a_guessed_url() {
    let refused = tagpin_e2e::fake_registry::FakeRegistry::refusing().addr;
    let image = format!("{refused}/team/app:1.0");
    let mut cmd = tagpin();
    cmd.args(["resolve", &image]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(out.stderr),
        format!("tagpin resolve: {image}: registry {refused} is unreachable: connection refused\n")
    );

    // Given by digest, verified against a rule: image, digest, registry and cause once each.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tagpin.yaml");
    let key = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../verifier/tests/fixtures/cosign.pub"
    );
    std::fs::write(
        &config,
        format!(
            "verification:\n  noMatch: deny\n  rules:\n    - name: team\n      images: [\"{refused}/team/*\"]\n      signatures:\n        anyOf:\n          - key: {{file: {key}}}\n            tlog: waived\n"
        ),
    )
    .unwrap();
    let pinned = format!("{refused}/team/app@{DIGEST}");
    let mut cmd = tagpin();
    cmd.args(["verify", "--config"]).arg(&config).arg(&pinned);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(out.stdout), format!("{pinned} error\n"));
    assert_eq!(
        text(out.stderr),
        format!(
            "tagpin verify: cannot verify {pinned}: registry error while fetching signatures: registry {refused}: unreachable: connection refused\n"
        )
    );
}

/// A registry serving `digest` for every manifest HEAD.
async fn serving(digest: &'static str) -> tagpin_e2e::fake_registry::FakeRegistry {
    use tagpin_e2e::fake_registry::{FakeRegistry, MANIFEST_TYPE, http, is_head};
    FakeRegistry::start(std::sync::Arc::new(move |_, line| {
        http(
            "200 OK",
            &[
                ("Docker-Content-Digest", digest.into()),
                ("Content-Type", MANIFEST_TYPE.into()),
            ],
            b"",
            is_head(line),
        )
    }))
    .await
}

/// `tagpin review` of a Pod of `images` with `config`; the response.
async fn review_with(config: &str, images: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let (config_file, input) = (dir.path().join("tagpin.yaml"), dir.path().join("in.json"));
    std::fs::write(&config_file, config).unwrap();
    let body = review("Pod", "", "CREATE", pod(images));
    std::fs::write(&input, serde_json::to_vec(&body).unwrap()).unwrap();
    let mut cmd = tagpin();
    cmd.args(["review", "--config"])
        .arg(&config_file)
        .arg(&input);
    let out = output(cmd).await;
    assert!(out.status.success(), "{}", text(out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    answer["response"].clone()
}

fn records(response: &serde_json::Value) -> serde_json::Value {
    serde_json::from_str(response["auditAnnotations"]["images"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn the_record_names_the_normalized_image_and_the_endpoint_that_answered() {
    use tagpin_e2e::fake_registry::FakeRegistry;
    let mirror = serving(DIGEST).await;
    let origin_port = FakeRegistry::refusing()
        .addr
        .rsplit_once(':')
        .unwrap()
        .1
        .to_owned();
    // An upper-case host: the rule, the config key and the record use its normalized name,
    // the pin keeps the spelling the node pulls.
    let written = format!("LOCALHOST:{origin_port}/team/app:1.0");
    let config = format!(
        "resolver:\n  registries:\n    \"localhost:{origin_port}\": {{plainHttp: true, confirmMirrors: true, mirrors: [\"{}\"]}}\n    \"{}\": {{plainHttp: true}}\n",
        mirror.addr, mirror.addr
    );
    let response = review_with(&config, &[&written]).await;
    assert_eq!(response["allowed"], true, "{response}");
    let records = records(&response);
    assert_eq!(records[0]["original"], written);
    assert_eq!(
        records[0]["image"],
        format!("localhost:{origin_port}/team/app:1.0")
    );
    assert_eq!(records[0]["digest"], DIGEST);
    // The origin is unreachable: the mirror's answer stands, unconfirmed.
    assert_eq!(records[0]["resolvedBy"], serde_json::json!([mirror.addr]));
    use base64::Engine as _;
    let patch = text(
        base64::engine::general_purpose::STANDARD
            .decode(response["patch"].as_str().unwrap())
            .unwrap(),
    );
    assert!(
        patch.contains(&format!("\"{written}@{DIGEST}\"")),
        "{patch}"
    );
}

#[tokio::test]
async fn a_mirror_the_origin_contradicts_is_denied_and_a_confirmed_one_recorded() {
    const OTHER: &str = "sha256:9999999999999999999999999999999999999999999999999999999999999999";
    let mirror = serving(DIGEST).await;
    let liar = serving(OTHER).await;
    let origin = serving(DIGEST).await;
    let config = |mirror: &str| {
        format!(
            "resolver:\n  registries:\n    \"{o}\": {{plainHttp: true, confirmMirrors: true, mirrors: [\"{mirror}\"]}}\n    \"{mirror}\": {{plainHttp: true}}\n",
            o = origin.addr
        )
    };
    let image = format!("{}/team/app:1.0", origin.addr);

    let response = review_with(&config(&mirror.addr), &[&image]).await;
    assert_eq!(response["allowed"], true, "{response}");
    assert_eq!(
        records(&response)[0]["resolvedBy"],
        serde_json::json!([mirror.addr, origin.addr])
    );

    let response = review_with(&config(&liar.addr), &[&image]).await;
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(
        response["status"]["message"],
        format!(
            "tagpin denied this Pod: 1 image(s) could not be pinned or verified: /spec/containers/0/image: {image}: mirror {} answered {OTHER}, which registry {} does not confirm: it serves {DIGEST}",
            liar.addr, origin.addr
        )
    );
}

#[tokio::test]
async fn one_failure_is_told_in_each_fields_spelling() {
    let refused = tagpin_e2e::fake_registry::FakeRegistry::refusing().addr;
    let (short, long) = (
        format!("{refused}/team/app"),
        format!("{refused}/team/app:latest"),
    );
    let config = format!("resolver:\n  registries:\n    \"{refused}\": {{plainHttp: true}}\n");
    let response = review_with(&config, &[&short, &long]).await;
    assert_eq!(response["allowed"], false, "{response}");
    assert_eq!(
        response["status"]["message"],
        format!(
            "tagpin denied this Pod: 2 image(s) could not be pinned or verified: \
             /spec/containers/0/image: {short}: registry {refused} is unreachable: connection refused; \
             /spec/containers/1/image: {long}: registry {refused} is unreachable: connection refused"
        )
    );
}

#[test]
fn watch_refuses_an_interval_below_one_second_before_reaching_the_cluster() {
    let out = tagpin()
        .args(["watch", "--interval", "0.1"])
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("--interval must be at least 1 second"),
        "{stderr}"
    );
}
