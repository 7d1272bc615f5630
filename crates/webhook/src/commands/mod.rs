//! One module per subcommand.

pub mod certs;
pub mod inventory;
pub mod pin;
pub mod reference;
pub mod resolve;
pub mod review;
pub mod serve;
pub mod verify;
pub mod watch;

use std::sync::Arc;

use anyhow::Context;
use tagpin_resolver::{DockerConfig, Keychain, Resolver};

use crate::admission::Admitter;
use crate::config::Config;
use crate::credentials::ClusterState;
use crate::verification::RegistryVerifier;

/// The docker config named by the config file, if any.
pub fn docker_config(config: &Config) -> anyhow::Result<Option<Arc<DockerConfig>>> {
    let Some(path) = &config.resolver.docker_config else {
        return Ok(None);
    };
    let parsed = DockerConfig::from_file(path)
        .with_context(|| format!("cannot use docker config {}", path.display()))?;
    Ok(Some(Arc::new(parsed)))
}

/// The credentials of the CLI commands: anonymous, plus the configured docker config.
pub fn cli_keychain(config: &Config) -> anyhow::Result<Keychain> {
    let mut keychain = Keychain::anonymous();
    if let Some(docker) = docker_config(config)? {
        keychain.push(docker);
    }
    Ok(keychain)
}

/// The admitter for `config`, verifying digests when the config has a policy.
pub fn admitter(
    config: Arc<Config>,
    resolver: Arc<Resolver>,
    cluster: Arc<dyn ClusterState>,
) -> anyhow::Result<Admitter> {
    let policy = config
        .verification_policy()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let admitter = Admitter::new(config, resolver.clone(), cluster);
    Ok(match policy {
        Some(policy) => admitter.with_verifier(Arc::new(RegistryVerifier::new(resolver, policy))),
        None => admitter,
    })
}
