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
