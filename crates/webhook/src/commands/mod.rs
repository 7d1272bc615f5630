//! One module per subcommand.

pub mod certs;
pub mod reference;
pub mod resolve;
pub mod review;
pub mod serve;

use std::sync::Arc;

use anyhow::Context;
use tagpin_resolver::DockerConfig;

use crate::config::Config;

/// The docker config named by the config file, if any.
pub fn docker_config(config: &Config) -> anyhow::Result<Option<Arc<DockerConfig>>> {
    let Some(path) = &config.resolver.docker_config else {
        return Ok(None);
    };
    let parsed = DockerConfig::from_file(path)
        .with_context(|| format!("cannot use docker config {}", path.display()))?;
    Ok(Some(Arc::new(parsed)))
}
