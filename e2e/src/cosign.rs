//! Real cosign (v2, from `hack/tools.sh`) signing test images in the local TLS registry.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TestRegistry;
use crate::cluster::tools_env;

/// A cosign key pair in a temporary directory, and the registry login cosign uses.
pub struct Cosign {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Cosign {
    /// Generates a key pair (empty password) with cosign v2.
    pub fn generate(registry: &TestRegistry) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let bin = tools_env("TAGPIN_COSIGN_V2");
        let cosign = Self { dir, bin };
        let docker = cosign.dir.path().join("docker");
        std::fs::create_dir_all(&docker).expect("docker config directory");
        std::fs::write(docker.join("config.json"), registry.docker_config_json())
            .expect("docker config");
        cosign.run(
            registry,
            &["generate-key-pair", "--output-key-prefix"],
            &cosign.dir.path().join("cosign"),
        );
        cosign
    }

    /// The public key, PEM.
    pub fn public_key(&self) -> PathBuf {
        self.dir.path().join("cosign.pub")
    }

    /// Signs `image` (`host/repository@sha256:...`) without a transparency log.
    pub fn sign(&self, registry: &TestRegistry, image: &str) {
        self.run(
            registry,
            &[
                "sign",
                "--yes",
                "--tlog-upload=false",
                "--key",
                &self.dir.path().join("cosign.key").display().to_string(),
            ],
            Path::new(image),
        );
    }

    fn run(&self, registry: &TestRegistry, args: &[&str], last: &Path) {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .arg(last)
            .current_dir(self.dir.path())
            .env("COSIGN_PASSWORD", "")
            .env("DOCKER_CONFIG", self.dir.path().join("docker"));
        if let Some(ca) = &registry.ca {
            // cosign trusts the registry's test CA through Go's SSL_CERT_FILE.
            cmd.env("SSL_CERT_FILE", ca);
        }
        let out = cmd.output().expect("cosign runs");
        assert!(
            out.status.success(),
            "cosign {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
