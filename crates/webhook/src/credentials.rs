//! What admission needs to know about the cluster: namespace labels and pull credentials.

use std::sync::Arc;

use tagpin_resolver::{DockerConfig, Keychain};

/// Read-only view of cluster state kept current in memory (never fetched per request).
pub trait ClusterState: Send + Sync + 'static {
    /// The value of label `key` on `namespace`, if the namespace and label are known.
    fn namespace_label(&self, namespace: &str, key: &str) -> Option<String>;

    /// Credentials for a pod in `namespace`: its pull secrets, then its ServiceAccount's,
    /// then the configured docker config, then anonymous.
    fn keychain(&self, namespace: &str, pull_secrets: &[String], service_account: &str)
    -> Keychain;
}

/// No cluster: only the configured docker config (for `tagpin review` and tests).
#[derive(Debug, Clone, Default)]
pub struct Offline {
    docker_config: Option<Arc<DockerConfig>>,
}

impl Offline {
    /// A view with only `docker_config` as credentials.
    pub fn new(docker_config: Option<Arc<DockerConfig>>) -> Self {
        Self { docker_config }
    }
}

impl ClusterState for Offline {
    fn namespace_label(&self, _namespace: &str, _key: &str) -> Option<String> {
        None
    }

    fn keychain(&self, _namespace: &str, _secrets: &[String], _sa: &str) -> Keychain {
        let mut keychain = Keychain::anonymous();
        if let Some(config) = &self.docker_config {
            keychain.push(config.clone());
        }
        keychain
    }
}
