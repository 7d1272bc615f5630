//! Where the services that `hack/` started are: read from the environment, or from the
//! env files under `.tagpin/` when a test runs outside `hack/test.sh`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The environment variables `hack/registry.sh` and `hack/control-plane.sh` export.
#[derive(Debug, Clone)]
pub struct TestEnv {
    vars: HashMap<String, String>,
}

impl TestEnv {
    /// Reads the process environment, filling gaps from `.tagpin/*.env` (the second control
    /// plane's `control-plane-2.env` as `KUBECONFIG_2`, `TAGPIN_K8S_API_2`, ...).
    pub fn load() -> Self {
        let mut vars: HashMap<String, String> = std::env::vars().collect();
        let state = vars
            .get("TAGPIN_STATE")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".tagpin"));
        for file in ["registry.env", "control-plane.env", "image.env"] {
            for (k, v) in parse_env_file(&state.join(file)) {
                vars.entry(k).or_insert(v);
            }
        }
        // The second control plane exports the same names: here they end in `_2`.
        for (k, v) in parse_env_file(&state.join("control-plane-2.env")) {
            vars.entry(format!("{k}_2")).or_insert(v);
        }
        Self { vars }
    }

    /// A variable that must be set; panics with how to get it.
    pub fn require(&self, name: &str) -> String {
        self.vars.get(name).cloned().unwrap_or_else(|| {
            panic!(
                "{name} is not set: run the tests with hack/test.sh (or start hack/registry.sh and hack/control-plane.sh first)"
            )
        })
    }

    /// A variable, if set.
    pub fn get(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
}

/// The repository root (the parent of `e2e/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn parse_env_file(path: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let line = line.trim().strip_prefix("export ").unwrap_or(line.trim());
            let (k, v) = line.split_once('=')?;
            let v = v.trim().trim_matches('\'').trim_matches('"');
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}
