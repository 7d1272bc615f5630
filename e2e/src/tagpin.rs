//! A `tagpin serve` child process for tests: generated config and serving certificate,
//! a port of its own, ready once `/readyz` says so, killed when dropped.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::TestRegistry;
use crate::env::{TestEnv, repo_root};

/// How the tagpin under test reaches the API server.
#[derive(Debug, Clone, Default)]
pub enum KubeAccess {
    /// No API server: namespace labels and pull secrets are unknown to tagpin.
    #[default]
    None,
    /// The admin kubeconfig of the local control plane.
    Admin,
    /// A specific kubeconfig, e.g. the ServiceAccount one with the manifests' RBAC.
    File(PathBuf),
}

/// What the generated configuration holds besides the server and the test registry's CA.
#[derive(Debug, Clone, Default)]
pub struct TagpinConfig {
    /// Top-level YAML appended to the config (anything but `server:` and `resolver:`).
    pub extra: String,
    /// Give tagpin the TLS registry's credentials as its configured docker config.
    pub registry_credentials: bool,
    /// A docker config file of the test's own as tagpin's configured one (instead of
    /// `registry_credentials`).
    pub docker_config: Option<PathBuf>,
    /// `--log-level` (`None`: tagpin's default, info).
    pub log_level: Option<String>,
    /// Seconds a resolved digest is cached (`None`: tagpin's default).
    pub cache_ttl_seconds: Option<f64>,
    /// How tagpin reaches the API server.
    pub kube: KubeAccess,
    /// Other `host:port`s that reach the TLS registry (a proxy in front of it): tagpin
    /// trusts its CA there too and, with `registry_credentials`, sends its credentials.
    pub registry_aliases: Vec<String>,
}

/// The `tagpin` binary: `$TAGPIN_BIN`, else the one beside this test in the target
/// directory, built with `cargo build -p tagpin --bin tagpin` if missing.
pub fn tagpin_bin() -> PathBuf {
    if let Some(bin) = TestEnv::load().get("TAGPIN_BIN") {
        return PathBuf::from(bin);
    }
    // Test executables live in <target>/<profile>/deps; the binary in <target>/<profile>.
    let beside = std::env::current_exe().ok().and_then(|exe| {
        let profile = exe.parent()?.parent()?;
        Some(profile.join("tagpin"))
    });
    if let Some(bin) = beside.filter(|b| b.is_file()) {
        return bin;
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["build", "-p", "tagpin", "--bin", "tagpin"])
        .current_dir(repo_root())
        .status()
        .expect("cargo build runs");
    assert!(status.success(), "cargo build -p tagpin failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"));
    target.join("debug").join("tagpin")
}

/// A running `tagpin serve`.
pub struct Tagpin {
    child: Option<Child>,
    dir: tempfile::TempDir,
    config: TagpinConfig,
    /// The address it listens on (kept across restarts).
    pub addr: SocketAddr,
}

impl Tagpin {
    /// Writes a serving certificate for 127.0.0.1 and a config, starts `tagpin serve` on a
    /// free port and waits until it is ready.
    pub async fn start(config: TagpinConfig) -> Self {
        let mut tagpin = Self::spawned(config);
        tagpin.wait_ready().await;
        tagpin
    }

    /// Like [`Tagpin::start`], but waits for its log to say it is ready instead of asking
    /// `/readyz`, so the first TLS connection to it is the caller's.
    pub async fn start_untouched(config: TagpinConfig) -> Self {
        let mut tagpin = Self::spawned(config);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !tagpin.log().contains("ready to admit") {
            tagpin.check_running(deadline);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tagpin
    }

    fn spawned(config: TagpinConfig) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        run_certs(&dir.path().join("tls"));
        let mut tagpin = Self {
            child: None,
            dir,
            config,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        tagpin.spawn();
        tagpin
    }

    /// The directory holding `tls/`, the config and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its serving certificate's CA, PEM.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir().join("tls/ca.crt")).expect("ca.crt written by tagpin certs")
    }

    /// `https://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// A client trusting only tagpin's CA (HTTP/2 when the server offers it).
    pub fn client(&self) -> reqwest::ClientBuilder {
        let ca = reqwest::Certificate::from_pem(&self.ca_pem()).expect("CA is PEM");
        reqwest::Client::builder()
            .tls_certs_only([ca])
            .timeout(Duration::from_secs(30))
    }

    /// What it logged on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("serve.log")).unwrap_or_default()
    }

    /// The last lines of its log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// POSTs an AdmissionReview to `/mutate` and returns the answer.
    pub async fn review(&self, review: &serde_json::Value) -> serde_json::Value {
        serde_json::from_str(&self.review_text(review).await).expect("answer is JSON")
    }

    /// POSTs an AdmissionReview to `/mutate` and returns the answer as the bytes sent.
    pub async fn review_text(&self, review: &serde_json::Value) -> String {
        let client = self.client().build().expect("client builds");
        let r = client
            .post(self.url("/mutate"))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(review).expect("review serializes"))
            .send()
            .await
            .expect("POST /mutate");
        let status = r.status();
        let body = r.bytes().await.expect("response body");
        assert_eq!(
            status,
            reqwest::StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&body)
        );
        String::from_utf8(body.to_vec()).expect("answer is UTF-8")
    }

    /// Kills the process (like a crash or a node loss); the port stays reserved for `restart`.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and waits until it is ready.
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn();
        self.wait_ready().await;
    }

    fn write_config(&self) -> PathBuf {
        let registry = TestRegistry::tls();
        let ca = registry.ca.clone().expect("the TLS registry has a CA");
        let tls = self.dir().join("tls");
        let mut resolver = "resolver:\n  registries:\n".to_owned();
        let mut hosts = vec![registry.clone()];
        for alias in &self.config.registry_aliases {
            let mut host = registry.clone();
            host.host = alias.clone();
            hosts.push(host);
        }
        for host in &hosts {
            resolver.push_str(&format!(
                "    \"{}\":\n      ca: {}\n",
                host.host,
                ca.display()
            ));
        }
        let docker = if self.config.registry_credentials {
            let docker = self.dir().join("docker-config.json");
            let hosts: Vec<&TestRegistry> = hosts.iter().collect();
            std::fs::write(&docker, crate::registry::docker_config_json(&hosts))
                .expect("docker config");
            Some(docker)
        } else {
            self.config.docker_config.clone()
        };
        if let Some(docker) = docker {
            resolver.push_str(&format!("  dockerConfig: {}\n", docker.display()));
        }
        if let Some(ttl) = self.config.cache_ttl_seconds {
            resolver.push_str(&format!("  cache:\n    ttlSeconds: {ttl}\n"));
        }
        let text = format!(
            "server:\n  address: {}\n  certFile: {}\n  keyFile: {}\n  reloadIntervalSeconds: 0.2\n  shutdownGraceSeconds: 2\n{resolver}{}\n",
            self.addr,
            tls.join("tls.crt").display(),
            tls.join("tls.key").display(),
            self.config.extra,
        );
        let path = self.dir().join("tagpin.yaml");
        std::fs::write(&path, text).expect("writing tagpin.yaml");
        path
    }

    fn spawn(&mut self) {
        let config = self.write_config();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join("serve.log"))
            .expect("serve.log");
        let mut cmd = Command::new(tagpin_bin());
        cmd.args(["serve", "--log-format", "json", "--config"])
            .arg(&config)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("TAGPIN_LOG")
            .env_remove("TAGPIN_LOG_FORMAT")
            .stdout(Stdio::piped())
            .stderr(log);
        if let Some(level) = &self.config.log_level {
            cmd.args(["--log-level", level]);
        }
        match &self.config.kube {
            KubeAccess::None => {
                cmd.env("KUBECONFIG", self.dir().join("no-kubeconfig"));
            }
            KubeAccess::Admin => {
                cmd.env("KUBECONFIG", crate::cluster::kubeconfig());
            }
            KubeAccess::File(path) => {
                cmd.env("KUBECONFIG", path);
            }
        }
        let mut child = cmd.spawn().expect("tagpin serve starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.parse::<SocketAddr>());
                }
            }
        });
        self.child = Some(child);
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(addr)) => self.addr = addr,
            _ => {
                self.stop();
                panic!(
                    "tagpin serve did not report its address:\n{}",
                    self.log_tail()
                );
            }
        }
    }

    async fn wait_ready(&mut self) {
        let client = self.client().build().expect("client builds");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(self.url("/readyz")).send().await
                && r.status().is_success()
            {
                return;
            }
            self.check_running(deadline);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Panics when the process exited or `deadline` passed before it was ready.
    fn check_running(&mut self, deadline: Instant) {
        let exited = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if let Some(status) = exited {
            panic!("tagpin serve exited with {status}:\n{}", self.log_tail());
        }
        if Instant::now() >= deadline {
            self.stop();
            panic!("tagpin serve not ready within 30s:\n{}", self.log_tail());
        }
    }
}

impl Drop for Tagpin {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `tagpin certs` for 127.0.0.1 and localhost into `dir`.
fn run_certs(dir: &Path) {
    let out = Command::new(tagpin_bin())
        .args([
            "certs",
            "--ip",
            "127.0.0.1",
            "--dns-name",
            "localhost",
            "--out",
        ])
        .arg(dir)
        .output()
        .expect("tagpin certs runs");
    assert!(
        out.status.success(),
        "tagpin certs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
