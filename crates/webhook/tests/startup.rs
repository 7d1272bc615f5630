//! `tagpin serve` refuses to start on an unreadable or invalid certificate, key or config,
//! with an error naming the file (and, for the config, the line), before it listens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{make_certs, tagpin};

/// Runs `tagpin serve --config <dir>/tagpin.yaml` and returns its stderr once it has exited
/// with a failure; panics if it starts listening or keeps running.
fn refused(dir: &Path) -> String {
    let stderr_path = dir.join("serve.err");
    let mut child = tagpin()
        .arg("serve")
        .arg("--config")
        .arg(dir.join("tagpin.yaml"))
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "tagpin serve kept running: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::io::read_to_string(child.stdout.take().unwrap()).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        !status.success(),
        "tagpin serve exited successfully: {stderr}"
    );
    assert!(
        !stdout.contains("listening on"),
        "it listened before refusing: {stdout}"
    );
    stderr
}

/// Breaks something in the `tls/` directory.
type Breakage = fn(&Path);

/// A directory with certificates in `tls/` and a config using them plus `extra`.
fn prepared(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    make_certs(&dir.path().join("tls"));
    write_config(dir.path(), extra);
    dir
}

fn write_config(dir: &Path, extra: &str) {
    let tls = dir.join("tls");
    std::fs::write(
        dir.join("tagpin.yaml"),
        format!(
            "server:\n  address: 127.0.0.1:0\n  certFile: {}\n  keyFile: {}\n{extra}",
            tls.join("tls.crt").display(),
            tls.join("tls.key").display()
        ),
    )
    .unwrap();
}

#[test]
fn unreadable_or_invalid_certificate_or_key_is_named() {
    let cases: [(&str, Breakage); 6] = [
        ("tls.crt", |tls| {
            std::fs::remove_file(tls.join("tls.crt")).unwrap()
        }),
        ("tls.key", |tls| {
            // A directory where the key should be: exists, cannot be read as a file.
            std::fs::remove_file(tls.join("tls.key")).unwrap();
            std::fs::create_dir(tls.join("tls.key")).unwrap();
        }),
        ("tls.crt", |tls| {
            std::fs::write(tls.join("tls.crt"), "not a certificate\n").unwrap()
        }),
        ("tls.key", |tls| {
            std::fs::write(tls.join("tls.key"), "not a key\n").unwrap()
        }),
        ("tls.crt", |tls| {
            // A well-formed PEM block whose contents are not a certificate.
            std::fs::write(
                tls.join("tls.crt"),
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            )
            .unwrap()
        }),
        ("tls.key", |tls| {
            // A valid key of another certificate.
            let other = tls.parent().unwrap().join("other");
            make_certs(&other);
            std::fs::copy(other.join("tls.key"), tls.join("tls.key")).unwrap();
        }),
    ];
    for (i, (file, break_it)) in cases.into_iter().enumerate() {
        let dir = prepared("");
        break_it(&dir.path().join("tls"));
        let stderr = refused(dir.path());
        let named = dir.path().join("tls").join(file);
        assert!(
            stderr.contains(&named.display().to_string()),
            "case {i}: {file} not named in: {stderr}"
        );
    }
}

#[test]
fn invalid_client_ca_is_named() {
    let dir = tempfile::tempdir().unwrap();
    make_certs(&dir.path().join("tls"));
    let ca = dir.path().join("client-ca.crt");
    std::fs::write(&ca, "garbage\n").unwrap();
    write_config(dir.path(), &format!("  clientCaFile: {}\n", ca.display()));
    let stderr = refused(dir.path());
    assert!(stderr.contains(&ca.display().to_string()), "{stderr}");

    std::fs::remove_file(&ca).unwrap();
    let stderr = refused(dir.path());
    assert!(stderr.contains(&ca.display().to_string()), "{stderr}");
}

#[test]
fn unreadable_or_invalid_config_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = refused(dir.path());
    assert!(
        stderr.contains("tagpin.yaml"),
        "missing file not named: {stderr}"
    );

    // The config's first four lines are `server:` and its address, certificate and key.
    for (extra, line, what) in [
        // YAML syntax error.
        ("defaultMode: [enforce\n", 5, "defaultMode"),
        // Unknown key.
        ("defaultMode: warn\nkindz: [Pod]\n", 6, "kindz"),
        // Mistyped value.
        ("namespaces:\n  apps: sometimes\n", 6, "sometimes"),
        // Well-formed, but a value tagpin cannot use.
        (
            "defaultMode: warn\ndeadlineSeconds: 45\n",
            6,
            "deadlineSeconds",
        ),
        (
            "resolver:\n  timeouts:\n    connectSeconds: -1\n",
            7,
            "connectSeconds",
        ),
        ("  maxConcurrentReviews: 0\n", 5, "maxConcurrentReviews"),
    ] {
        let dir = prepared(extra);
        let stderr = refused(dir.path());
        assert!(
            stderr.contains(&dir.path().join("tagpin.yaml").display().to_string()),
            "{extra:?}: file not named: {stderr}"
        );
        assert!(
            stderr.contains(&format!("line {line}")),
            "{extra:?}: line {line} not named: {stderr}"
        );
        assert!(
            stderr.contains(what),
            "{extra:?}: {what} not named: {stderr}"
        );
    }
}

#[test]
fn unreadable_docker_config_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let docker = dir.path().join("docker-config.json");
    make_certs(&dir.path().join("tls"));
    write_config(
        dir.path(),
        &format!("resolver:\n  dockerConfig: {}\n", docker.display()),
    );
    let stderr = refused(dir.path());
    assert!(stderr.contains(&docker.display().to_string()), "{stderr}");

    std::fs::write(&docker, "{\"auths\": 7}").unwrap();
    let stderr = refused(dir.path());
    assert!(stderr.contains(&docker.display().to_string()), "{stderr}");
}
