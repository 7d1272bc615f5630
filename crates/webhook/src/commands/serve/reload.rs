//! Keeps a running `tagpin serve` on its newest config: the config file and every file it
//! names (keys, CA files, trusted roots, registry CA bundles, the docker config) are read
//! every reload interval, and a change to any of them rebuilds what depends on it. A
//! config or file that cannot be used keeps the running config serving, with the error
//! logged and counted in `tagpin_config_reloads_total{result="error"}`.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use tagpin_resolver::{
    DockerConfig, ImageReference, Keychain, Resolution, Resolver, ResolverStats,
};

use crate::admission::Admitter;
use crate::cluster::Cluster;
use crate::config::{Config, ConfigInputs};
use crate::credentials::{ClusterState, Offline};
use crate::resolving::{ImageResolver, ResolveFailure};
use crate::server::routes::AppState;

/// The resolver of the running config, for `/metrics`; replaced when `resolver:` or a file
/// it names changes (its counters then start again, as after a restart).
pub(super) struct CurrentResolver(RwLock<Arc<Resolver>>);

impl CurrentResolver {
    pub(super) fn new(resolver: Arc<Resolver>) -> Self {
        Self(RwLock::new(resolver))
    }

    fn get(&self) -> Arc<Resolver> {
        match self.0.read() {
            Ok(r) => r.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, resolver: Arc<Resolver>) {
        match self.0.write() {
            Ok(mut r) => *r = resolver,
            Err(poisoned) => *poisoned.into_inner() = resolver,
        }
    }
}

impl ImageResolver for CurrentResolver {
    fn resolve<'a>(
        &'a self,
        image: &'a ImageReference,
        keychain: &'a Keychain,
    ) -> BoxFuture<'a, Result<Resolution, ResolveFailure>> {
        let resolver = self.get();
        Box::pin(async move { ImageResolver::resolve(&resolver, image, keychain).await })
    }

    fn stats(&self) -> Option<ResolverStats> {
        ImageResolver::stats(&self.get())
    }
}

/// Where admission gets credentials, so a changed docker config reaches it.
pub(super) enum Credentials {
    /// Watches of the cluster; the docker config is swapped in place.
    Live(Arc<Cluster>),
    /// No cluster: a new view per docker config.
    Offline,
}

impl Credentials {
    /// The view admission uses with `docker`; for a live cluster, [`Self::commit`] swaps it in.
    fn view(&self, docker: &Option<Arc<DockerConfig>>) -> Arc<dyn ClusterState> {
        match self {
            Self::Live(cluster) => cluster.clone(),
            Self::Offline => Arc::new(Offline::new(docker.clone())),
        }
    }

    fn commit(&self, docker: Option<Arc<DockerConfig>>) {
        if let Self::Live(cluster) = self {
            cluster.set_docker_config(docker);
        }
    }
}

/// A config that loaded, and everything rebuilt from it, not yet in service.
struct Rebuilt {
    config: Arc<Config>,
    admitter: Admitter,
    /// New resolver and docker config, when `resolver:` or a file it names changed.
    registries: Option<(Arc<Resolver>, Option<Arc<DockerConfig>>)>,
}

/// The config watch of one server.
pub(super) struct Reloader {
    pub(super) path: PathBuf,
    pub(super) current: Arc<Config>,
    /// What the last load (successful or not) read, so a failure is not retried until an
    /// input changes again.
    pub(super) inputs: ConfigInputs,
    pub(super) resolver: Arc<CurrentResolver>,
    /// The docker config of the running config.
    pub(super) docker: Option<Arc<DockerConfig>>,
    pub(super) credentials: Credentials,
    pub(super) state: Arc<AppState>,
}

impl Reloader {
    /// Checks the inputs every reload interval, for the life of the process.
    pub(super) fn spawn(mut self) {
        let interval = Duration::from_secs_f64(self.current.server.reload_interval_seconds);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                self.check();
            }
        });
    }

    fn check(&mut self) {
        let inputs = ConfigInputs::read(&self.path, &self.current);
        if inputs == self.inputs {
            return;
        }
        let changed = inputs.changed_files(&self.inputs);
        let changed_text: Vec<String> = changed.iter().map(|p| p.display().to_string()).collect();
        match self.rebuild(&inputs, &changed) {
            Ok(rebuilt) => {
                self.commit(rebuilt);
                self.state.metrics.config_reload(true);
                tracing::info!(path = %self.path.display(), changed_files = ?changed_text, "reloaded the config");
            }
            Err(e) => {
                self.state.metrics.config_reload(false);
                tracing::error!(
                    path = %self.path.display(),
                    changed_files = ?changed_text,
                    error = %format!("{e:#}"),
                    "cannot reload the config; keeping the running config"
                );
            }
        }
        self.inputs = inputs;
    }

    /// Loads the new config and builds everything that depends on it, changing nothing yet.
    fn rebuild(&self, inputs: &ConfigInputs, changed: &[PathBuf]) -> anyhow::Result<Rebuilt> {
        let text = inputs
            .text()
            .with_context(|| format!("cannot read config file {}", self.path.display()))?;
        let config = Arc::new(Config::parse(text, &self.path)?);
        if config.server != self.current.server {
            tracing::warn!(path = %self.path.display(), "server: settings changed; they take effect on restart");
        }
        let new_registries = self.registries_changed(&config, changed);
        let (resolver, docker) = if new_registries {
            let resolver =
                Resolver::new(config.resolver.clone()).context("cannot set up the resolver")?;
            (Arc::new(resolver), super::super::docker_config(&config)?)
        } else {
            (self.resolver.get(), self.docker.clone())
        };
        let view = self.credentials.view(&docker);
        let admitter = super::super::admitter(config.clone(), resolver.clone(), view)?;
        let registries = new_registries.then_some((resolver, docker));
        Ok(Rebuilt {
            config,
            admitter,
            registries,
        })
    }

    /// Whether `resolver:` or a file it names (registry CAs, docker config) changed.
    fn registries_changed(&self, config: &Config, changed: &[PathBuf]) -> bool {
        let files = |c: &Config| -> Vec<PathBuf> {
            let cas = c.resolver.registries.values().filter_map(|r| r.ca.clone());
            c.resolver
                .docker_config
                .iter()
                .cloned()
                .chain(cas)
                .collect()
        };
        config.resolver != self.current.resolver
            || files(config).iter().any(|f| changed.contains(f))
    }

    /// Puts the rebuilt pieces in service: later requests see only the new config.
    fn commit(&mut self, rebuilt: Rebuilt) {
        if let Some((resolver, docker)) = rebuilt.registries {
            self.resolver.replace(resolver);
            self.credentials.commit(docker.clone());
            self.docker = docker;
        }
        self.state.replace_admitter(rebuilt.admitter);
        self.current = rebuilt.config;
    }
}
