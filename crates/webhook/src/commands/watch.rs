//! `tagpin watch`: the drift and policy watch, one leader among its replicas.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use kube::{Api, Client};
use tagpin_resolver::Resolver;

use crate::cli::WatchArgs;
use crate::cluster::{Cluster, reflect};
use crate::config::Config;
use crate::inventory::collect::Scope;
use crate::resolving::ImageResolver;
use crate::watch::events::EventSink;
use crate::watch::lease::LeaderLease;
use crate::watch::metrics::WatchMetrics;
use crate::watch::owners::OwnerStores;
use crate::watch::{Watch, http};

/// Runs rounds while this replica leads, until SIGTERM or SIGINT.
pub async fn run(args: &WatchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.interval.is_finite() && args.interval >= 1.0,
        "--interval must be at least 1 second, not {}",
        args.interval
    );
    let config = Config::load(args.config.as_deref())?;
    let resolver =
        Arc::new(Resolver::new(config.resolver.clone()).context("cannot set up the resolver")?);
    let client = Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (no kubeconfig or in-cluster config)")?;
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("tagpin-watch-{}", std::process::id()));
    let metrics = Arc::new(WatchMetrics::new(resolver.clone() as Arc<dyn ImageResolver>));
    http::serve(args.metrics_addr, metrics.clone())
        .await
        .with_context(|| format!("cannot listen on {}", args.metrics_addr))?;
    let leading = Arc::new(AtomicBool::new(false));
    let lease_namespace = args
        .lease_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let lease = Arc::new(LeaderLease::new(
        client.clone(),
        &lease_namespace,
        &args.lease_name,
        &identity,
        args.lease_duration,
    ));
    lease.clone().spawn(leading.clone());

    let (scope, pods) = match &args.namespace {
        Some(ns) => (
            Scope::Namespace(ns.clone()),
            Api::<Pod>::namespaced(client.clone(), ns),
        ),
        None => (Scope::All, Api::<Pod>::all(client.clone())),
    };
    let pods = reflect(pods, watcher::Config::default());
    let cluster = Cluster::start(client.clone(), false, super::docker_config(&config)?);
    let owners = OwnerStores::start(&client, &scope);
    let mut watch = Watch {
        pods: pods.clone(),
        owners,
        cluster: cluster.clone(),
        resolver,
        config_path: args.config.clone(),
        config,
        metrics: metrics.clone(),
        events: EventSink::new(client, &identity),
    };
    tokio::select! {
        () = rounds(&mut watch, &leading, args.interval) => {}
        () = super::serve::shutdown_signal() => {}
    }
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "cannot give up the lease; another replica takes over once it expires");
    }
    Ok(())
}

/// How often the config file is looked at between rounds. A ConfigMap update shows up as
/// a new file through the kubelet's symlink swap, which changes its metadata too.
const CONFIG_POLL: Duration = Duration::from_secs(1);

async fn rounds(watch: &mut Watch, leading: &AtomicBool, interval: f64) {
    let _ = watch.pods.wait_until_ready().await;
    watch.cluster.ready().await;
    // Until every owner kind is listed, a Pod would be reported on its ReplicaSet.
    while !watch.owners.ready() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    loop {
        let leads = leading.load(Ordering::SeqCst);
        watch.metrics.leading(leads);
        if !leads {
            // A replica that becomes leader checks at once, not an interval later.
            tokio::time::sleep(CONFIG_POLL).await;
            continue;
        }
        watch.round().await;
        next_round(watch.config_path.as_deref(), jittered(interval)).await;
    }
}

/// Waits `wait`, or less when the config file changes: a new policy is checked at once.
async fn next_round(config: Option<&Path>, wait: Duration) {
    let stamp = |path: &Path| {
        std::fs::metadata(path)
            .ok()
            .map(|m| (m.modified().ok(), m.len()))
    };
    let before = config.map(stamp);
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(CONFIG_POLL.min(deadline - tokio::time::Instant::now())).await;
        if config.map(stamp) != before {
            tracing::info!("the config file changed; checking again now");
            return;
        }
    }
}

/// `interval` lengthened by up to 10%, so replicas of many clusters do not hit a shared
/// registry in step.
fn jittered(interval: f64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let fraction = f64::from(nanos % 1000) / 10_000.0;
    Duration::from_secs_f64(interval * (1.0 + fraction))
}
