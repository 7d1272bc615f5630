//! Real cosign (v2 and v3, from `hack/tools.sh`) signing and attesting test images in the
//! local registries, key-based and without a transparency log: nothing leaves loopback.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TestRegistry;
use crate::cluster::tools_env;
use crate::registry::docker_config_json;

/// Which cosign release runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// cosign v2 (`$TAGPIN_COSIGN_V2`): the `.sig`/`.att` tag layout by default.
    V2,
    /// cosign v3 (`$TAGPIN_COSIGN_V3`): Sigstore bundles as OCI 1.1 referrers.
    V3,
}

/// A cosign key pair in a temporary directory, and the registry login cosign uses.
pub struct Cosign {
    dir: tempfile::TempDir,
    bin: PathBuf,
    release: Release,
    env: Vec<(String, String)>,
    ca: Option<PathBuf>,
}

impl Cosign {
    /// Generates a key pair (empty password) with cosign v2.
    pub fn generate(registry: &TestRegistry) -> Self {
        Self::generate_for(Release::V2, &[registry])
    }

    /// Generates a key pair (empty password) with `release`, logged in to `registries`
    /// (which share one test CA).
    pub fn generate_for(release: Release, registries: &[&TestRegistry]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let bin = tools_env(match release {
            Release::V2 => "TAGPIN_COSIGN_V2",
            Release::V3 => "TAGPIN_COSIGN_V3",
        });
        let ca = registries.iter().find_map(|r| r.ca.clone());
        let cosign = Self {
            dir,
            bin,
            release,
            env: Vec::new(),
            ca,
        };
        let docker = cosign.dir.path().join("docker");
        std::fs::create_dir_all(&docker).expect("docker config directory");
        std::fs::write(docker.join("config.json"), docker_config_json(registries))
            .expect("docker config");
        let prefix = cosign.dir.path().join("cosign").display().to_string();
        cosign.run(&["generate-key-pair", "--output-key-prefix", &prefix]);
        cosign
    }

    /// Sets an environment variable for every later cosign command (e.g. `COSIGN_EXPERIMENTAL`).
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The release this runs.
    pub fn release(&self) -> Release {
        self.release
    }

    /// The public key, PEM.
    pub fn public_key(&self) -> PathBuf {
        self.dir.path().join("cosign.pub")
    }

    fn private_key(&self) -> String {
        self.dir.path().join("cosign.key").display().to_string()
    }

    /// Flags that keep cosign offline: no transparency log, and for v3 no signing config
    /// (which would name the public-good services).
    fn offline_flags(&self) -> Vec<&'static str> {
        match self.release {
            Release::V2 => vec!["--tlog-upload=false"],
            Release::V3 => vec!["--tlog-upload=false", "--use-signing-config=false"],
        }
    }

    /// Signs `image` (`host/repository@sha256:...`) without a transparency log.
    pub fn sign(&self, _registry: &TestRegistry, image: &str) {
        self.sign_with(image, &[]);
    }

    /// Signs `image` without a transparency log, with `extra` flags.
    pub fn sign_with(&self, image: &str, extra: &[&str]) {
        let key = self.private_key();
        let mut args = vec!["sign", "--yes", "--key", &key];
        args.extend(self.offline_flags());
        args.extend(extra);
        args.push(image);
        self.run(&args);
    }

    /// Attests `predicate` (JSON) of `kind` (cosign's `--type`, e.g. `slsaprovenance1`)
    /// about `image` without a transparency log, with `extra` flags.
    pub fn attest_with(&self, image: &str, kind: &str, predicate: &str, extra: &[&str]) {
        let path = self.dir.path().join(format!("predicate-{kind}.json"));
        std::fs::write(&path, predicate).expect("predicate file");
        let key = self.private_key();
        let path = path.display().to_string();
        let mut args = vec![
            "attest",
            "--yes",
            "--key",
            &key,
            "--type",
            kind,
            "--predicate",
            &path,
        ];
        args.extend(self.offline_flags());
        args.extend(extra);
        args.push(image);
        self.run(&args);
    }

    fn run(&self, args: &[&str]) {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("COSIGN_PASSWORD", "")
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            // No TUF fetch of the public-good root: the tests are offline.
            .env("TUF_ROOT", self.dir.path().join("tuf"))
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(ca) = &self.ca {
            // cosign trusts the registry's test CA through Go's SSL_CERT_FILE.
            cmd.env("SSL_CERT_FILE", ca);
        }
        let out = cmd.output().expect("cosign runs");
        assert!(
            out.status.success(),
            "cosign {args:?} ({}) failed: {}",
            Path::new(&self.bin).display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
