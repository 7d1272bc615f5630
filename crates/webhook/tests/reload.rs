//! `tagpin serve` follows every file its config names, not only the config text: a key
//! swapped in a directory laid out as Kubernetes mounts Secrets (`..data` symlink replaced
//! by an atomic rename) is reloaded; a broken one keeps the running config serving, logged
//! and counted. (e2e `reload.rs` shows the same swap changing what is admitted.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Server, pod, review};
use tagpin_e2e::mount::Mount;

const WAIT: Duration = Duration::from_secs(20);

fn public_key() -> Vec<u8> {
    rcgen::KeyPair::generate()
        .unwrap()
        .public_key_pem()
        .into_bytes()
}

async fn metrics(server: &Server) -> String {
    let client = server.client().build().unwrap();
    let r = client.get(server.url("/metrics")).send().await.unwrap();
    r.text().await.unwrap()
}

/// Polls `/metrics` until it holds every line of `want`.
async fn wait_metrics(server: &Server, want: &[&str]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = metrics(server).await;
        if want.iter().all(|w| text.lines().any(|l| l == *w)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "metrics never showed {want:?}:\n{text}\nlog:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_key_file_swapped_by_symlink_is_reloaded_and_a_broken_one_keeps_the_old_config() {
    let dir = tempfile::tempdir().unwrap();
    common::make_certs(&dir.path().join("tls"));
    let mut keys = Mount::new(&dir.path().join("keys"), &[("release.pub", &public_key())]);
    let key_path = keys.path("release.pub").display().to_string();
    let server = Server::start_in(
        dir,
        &format!(
            "verification:\n  noMatch: allow\n  rules:\n    - name: release\n      images: [\"registry.example/**\"]\n      signatures: {{anyOf: [{{key: {{file: {key_path}}}, tlog: waived}}]}}\n"
        ),
    );

    keys.swap(&[("release.pub", &public_key())]);
    wait_metrics(&server, &["tagpin_config_reloads_total{result=\"ok\"} 1"]).await;
    let log = server.log();
    assert!(
        log.lines()
            .any(|l| l.contains("reloaded the config") && l.contains(&key_path)),
        "{log}"
    );

    keys.swap(&[("release.pub", b"not a key")]);
    wait_metrics(
        &server,
        &[
            "tagpin_config_reloads_total{result=\"error\"} 1",
            "tagpin_config_reload_failing 1",
        ],
    )
    .await;
    let log = server.log();
    assert!(
        log.lines().any(|l| l.contains("keeping the running config")
            && l.contains("\"level\":\"ERROR\"")
            && l.contains(&key_path)),
        "{log}"
    );
    // Still serving, with the config it had.
    let client = server.client().build().unwrap();
    let answer: serde_json::Value = client
        .post(server.url("/mutate"))
        .json(&review("Pod", "", "CREATE", pod(&["Bad:Ref"])))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    keys.swap(&[("release.pub", &public_key())]);
    wait_metrics(
        &server,
        &[
            "tagpin_config_reloads_total{result=\"ok\"} 2",
            "tagpin_config_reload_failing 0",
            // Unchanged broken inputs were not retried on every tick: one error per change.
            "tagpin_config_reloads_total{result=\"error\"} 1",
        ],
    )
    .await;
}
