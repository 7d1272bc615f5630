//! `tagpin serve`: the admission webhook.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tagpin_resolver::Resolver;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::credentials::{ClusterState, Offline};
use crate::metrics::Metrics;
use crate::resolving::ImageResolver;
use crate::server::gate::Gate;
use crate::server::routes::AppState;
use crate::server::tls::{ReloadingTls, TlsFiles};

/// Serves until SIGTERM or SIGINT, then drains.
pub async fn run(config_path: Option<&Path>) -> anyhow::Result<()> {
    let config = Arc::new(Config::load(config_path)?);
    let docker = super::docker_config(&config)?;
    let resolver =
        Arc::new(Resolver::new(config.resolver.clone()).context("cannot set up the resolver")?);
    let tls = ReloadingTls::load(TlsFiles {
        cert: config.server.cert_file.clone(),
        key: config.server.key_file.clone(),
        client_ca: config.server.client_ca_file.clone(),
    })
    .context("cannot load the serving certificate")?;
    tls.clone().watch(Duration::from_secs_f64(
        config.server.reload_interval_seconds,
    ));

    let (cluster, cluster_ready): (Arc<dyn ClusterState>, Option<Arc<Cluster>>) =
        match kube::Client::try_default().await {
            Ok(client) => {
                let cluster = Cluster::start(client, config.namespace_labels, docker);
                (cluster.clone(), Some(cluster))
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "no Kubernetes API configuration found: namespace labels and pull secrets are unavailable, using the config file only"
                );
                (Arc::new(Offline::new(docker)), None)
            }
        };

    let state = Arc::new(AppState {
        admitter: RwLock::new(Arc::new(super::admitter(
            config.clone(),
            resolver.clone(),
            cluster.clone(),
        )?)),
        metrics: Metrics::new(resolver.clone() as Arc<dyn ImageResolver>),
        ready: AtomicBool::new(false),
        max_body_bytes: config.server.max_body_bytes,
        gate: Gate::new(config.server.max_concurrent_reviews),
    });
    match cluster_ready {
        Some(cluster) => {
            let state = state.clone();
            tokio::spawn(async move {
                cluster.ready().await;
                state.ready.store(true, Ordering::SeqCst);
                tracing::info!("namespace and pull-secret caches loaded; ready");
            });
        }
        None => state.ready.store(true, Ordering::SeqCst),
    }

    if let Some(path) = config_path {
        watch_config(
            path.to_owned(),
            config.clone(),
            resolver.clone(),
            cluster,
            state.clone(),
        );
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

/// Re-reads the config file every reload interval and applies a changed policy (modes,
/// kinds, deadline, verification) to later requests. A broken file keeps the running config.
fn watch_config(
    path: PathBuf,
    initial: Arc<Config>,
    resolver: Arc<Resolver>,
    cluster: Arc<dyn ClusterState>,
    state: Arc<AppState>,
) {
    let interval = Duration::from_secs_f64(initial.server.reload_interval_seconds);
    tokio::spawn(async move {
        let mut current = initial;
        let mut last_text = std::fs::read_to_string(&path).ok();
        let mut last_error: Option<String> = None;
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            if last_text.as_deref() == Some(text.as_str()) {
                continue;
            }
            let reloaded = Config::parse(&text, &path)
                .map_err(|e| e.to_string())
                .and_then(|c| {
                    let c = Arc::new(c);
                    super::admitter(c.clone(), resolver.clone(), cluster.clone())
                        .map(|a| (c, a))
                        .map_err(|e| format!("{e:#}"))
                });
            match reloaded {
                Ok((config, admitter)) => {
                    if config.server != current.server || config.resolver != current.resolver {
                        tracing::warn!(
                            path = %path.display(),
                            "server: and resolver: settings changed; they take effect on restart"
                        );
                    }
                    state.replace_admitter(admitter);
                    tracing::info!(path = %path.display(), "reloaded the config");
                    current = config;
                    last_text = Some(text);
                    last_error = None;
                }
                Err(message) => {
                    if last_error.as_deref() != Some(message.as_str()) {
                        tracing::warn!(error = %message, "keeping the running config");
                        last_error = Some(message);
                    }
                }
            }
        }
    });
}
