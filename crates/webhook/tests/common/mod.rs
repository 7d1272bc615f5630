//! Helpers shared by the process tests: certificates, a running `tagpin serve`, requests.

#![allow(dead_code, missing_docs)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tagpin");

/// `tagpin` without settings inherited from the environment the tests run in.
pub fn tagpin() -> Command {
    let mut cmd = Command::new(BIN);
    for var in ["TAGPIN_CONFIG", "TAGPIN_LOG", "TAGPIN_LOG_FORMAT"] {
        cmd.env_remove(var);
    }
    cmd
}

/// Runs `tagpin certs` for localhost and 127.0.0.1 into `dir`.
pub fn make_certs(dir: &Path) {
    make_certs_with(dir, &[]);
}

/// Runs `tagpin certs` for localhost and 127.0.0.1 into `dir` with `extra` arguments.
pub fn make_certs_with(dir: &Path, extra: &[&str]) {
    let out = tagpin()
        .args(["certs", "--dns-name", "localhost", "--ip", "127.0.0.1"])
        .args(extra)
        .arg("--out")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `tagpin serve` child process, killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub stderr: PathBuf,
}

impl Server {
    /// Starts `tagpin serve` with certificates in `dir/tls` and `extra` YAML appended.
    pub fn start(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        make_certs(&tls);
        Self::start_in(dir, extra)
    }

    /// Starts `tagpin serve` in a prepared directory whose `tls/` holds the certificates.
    pub fn start_in(dir: tempfile::TempDir, extra: &str) -> Self {
        let tls = dir.path().join("tls");
        let config = dir.path().join("tagpin.yaml");
        std::fs::write(
            &config,
            format!(
                "server:\n  address: 127.0.0.1:0\n  certFile: {}\n  keyFile: {}\n  reloadIntervalSeconds: 0.2\n  shutdownGraceSeconds: 10\n{extra}",
                tls.join("tls.crt").display(),
                tls.join("tls.key").display()
            ),
        )
        .unwrap();
        let stderr = dir.path().join("serve.log");
        let mut child = tagpin()
            .args(["serve", "--log-format", "json", "--config"])
            .arg(&config)
            // No cluster: the server must run from its config file alone.
            .env("KUBECONFIG", dir.path().join("no-kubeconfig"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "tagpin serve did not report its address: {}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
        };
        Self {
            child,
            addr,
            dir,
            stderr,
        }
    }

    pub fn ca(&self) -> reqwest::Certificate {
        ca_of(&self.dir.path().join("tls"))
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    /// A client trusting only this server's CA, resolving localhost to the server.
    pub fn client(&self) -> reqwest::ClientBuilder {
        client_for(self.addr, [self.ca()])
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn ca_of(dir: &Path) -> reqwest::Certificate {
    reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.crt")).unwrap()).unwrap()
}

pub fn client_for(
    addr: SocketAddr,
    cas: impl IntoIterator<Item = reqwest::Certificate>,
) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_certs_only(cas)
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(30))
}

/// An AdmissionReview of `object` (a Pod unless `kind` says otherwise).
pub fn review(
    kind: &str,
    group: &str,
    operation: &str,
    object: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "e2e-uid",
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": "pods"},
            "name": "p",
            "namespace": "apps",
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": object,
            "dryRun": false
        }
    })
}

pub fn pod(images: &[&str]) -> serde_json::Value {
    let containers: Vec<_> = images
        .iter()
        .enumerate()
        .map(|(i, image)| serde_json::json!({"name": format!("c{i}"), "image": image}))
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "apps"},
        "spec": {"containers": containers}
    })
}

pub const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
