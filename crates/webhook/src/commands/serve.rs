//! `tagpin serve`: the admission webhook.

mod reload;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tagpin_resolver::{DockerConfig, Resolver};

use crate::cluster::Cluster;
use crate::config::{Config, ConfigInputs};
use crate::credentials::{ClusterState, Offline};
use crate::metrics::Metrics;
use crate::resolving::ImageResolver;
use crate::server::gate::Gate;
use crate::server::readiness::Readiness;
use crate::server::routes::AppState;
use crate::server::tls::{ReloadingTls, TlsFiles};
use crate::server::warm_up::WarmUp;
use reload::{Credentials, CurrentResolver, Reloader};

/// Serves until SIGTERM or SIGINT, then drains.
pub async fn run(config_path: Option<&Path>) -> anyhow::Result<()> {
    // Read before loading, so a change made while loading is seen by the first check.
    let inputs = config_path.map(|p| ConfigInputs::read(p, &Config::default()));
    let config = Arc::new(Config::load(config_path)?);
    let docker = super::docker_config(&config)?;
    let docker_for_reload = docker.clone();
    let resolver =
        Arc::new(Resolver::new(config.resolver.clone()).context("cannot set up the resolver")?);
    let current_resolver = Arc::new(CurrentResolver::new(resolver.clone()));
    let tls = ReloadingTls::load(TlsFiles {
        cert: config.server.cert_file.clone(),
        key: config.server.key_file.clone(),
        client_ca: config.server.client_ca_file.clone(),
    })
    .context("cannot load the serving certificate")?;
    tls.clone().watch(Duration::from_secs_f64(
        config.server.reload_interval_seconds,
    ));

    let (cluster, cluster_ready) = connect_cluster(docker.clone()).await;
    let credentials = match &cluster_ready {
        Some(live) => Credentials::Live(live.clone()),
        None => Credentials::Offline,
    };

    let state = Arc::new(AppState {
        admitter: RwLock::new(Arc::new(super::admitter(
            config.clone(),
            resolver.clone(),
            cluster.clone(),
        )?)),
        metrics: Metrics::new(current_resolver.clone() as Arc<dyn ImageResolver>),
        ready: Readiness::default(),
        max_body_bytes: config.server.max_body_bytes,
        gate: Gate::new(config.server.max_concurrent_reviews),
    });
    get_ready(&state, cluster_ready, &tls, &resolver, docker);

    if let (Some(path), Some(inputs)) = (config_path, inputs) {
        Reloader {
            path: path.to_owned(),
            current: config.clone(),
            inputs,
            resolver: current_resolver,
            docker: docker_for_reload,
            credentials,
            state: state.clone(),
        }
        .spawn();
    }

    let listener = tokio::net::TcpListener::bind(config.server.address)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.address))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "serving admission reviews on https://{address}/mutate");
    // Tests and scripts read the bound address (port 0 picks a free one) from stdout.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {address}")?;
    stdout.flush()?;
    drop(stdout);

    let grace = Duration::from_secs_f64(config.server.shutdown_grace_seconds);
    crate::server::run(listener, tls, state, shutdown_signal(), grace).await;
    Ok(())
}

/// Marks the server ready once the cluster caches are loaded (at once without a cluster) and
/// the warm-up is done, whichever comes last.
fn get_ready(
    state: &Arc<AppState>,
    cluster: Option<Arc<Cluster>>,
    tls: &Arc<ReloadingTls>,
    resolver: &Arc<Resolver>,
    docker: Option<Arc<DockerConfig>>,
) {
    match cluster {
        Some(cluster) => {
            let state = state.clone();
            tokio::spawn(async move {
                cluster.ready().await;
                tracing::info!("namespace and pull-secret caches loaded");
                if state.ready.caches_loaded() {
                    tracing::info!("ready to admit");
                }
            });
        }
        None => {
            state.ready.caches_loaded();
        }
    }
    let (state, tls, resolver) = (state.clone(), tls.clone(), resolver.clone());
    tokio::spawn(async move {
        let admitter = state.admitter();
        let took = WarmUp {
            acceptor: tls.acceptor(),
            admitter: &admitter,
            resolver: &resolver,
            docker: docker.as_deref(),
        }
        .run()
        .await;
        tracing::info!(
            milliseconds = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            "warmed up: crypto, TLS, registry clients"
        );
        if state.ready.warmed_up() {
            tracing::info!("ready to admit");
        }
    });
}

/// The cluster's watches when a kubeconfig or in-cluster account is found, else the config
/// file's credentials alone; the second value is set when there are watches to wait for.
async fn connect_cluster(
    docker: Option<Arc<DockerConfig>>,
) -> (Arc<dyn ClusterState>, Option<Arc<Cluster>>) {
    match kube::Client::try_default().await {
        Ok(client) => {
            // Namespaces are watched even when no label counts yet: a reloaded config may
            // start honouring labels.
            let cluster = Cluster::start(client, true, docker);
            (cluster.clone(), Some(cluster))
        }
        Err(e) => {
            tracing::warn!(
                error = %e,
                "no Kubernetes API configuration found: namespace labels and pull secrets are unavailable, using the config file only"
            );
            (Arc::new(Offline::new(docker)), None)
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received SIGINT"),
        () = term => tracing::info!("received SIGTERM"),
    }
}
