//! Arguments of `tagpin watch`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// `tagpin watch`: moved tags and policy violations under running workloads, as Events.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// tagpin config file; its `verification:` policy is re-read every round.
    #[arg(long, short, value_name = "FILE", env = "TAGPIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Namespace to watch (default: every namespace).
    #[arg(long, short = 'n', value_name = "NS")]
    pub namespace: Option<String>,
    /// Seconds between two rounds of checks; each wait is lengthened by up to 10% at random.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 600.0,
        env = "TAGPIN_WATCH_INTERVAL"
    )]
    pub interval: f64,
    /// Address of the `/metrics` and `/healthz` endpoint (plain HTTP).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
    /// Name of the Lease that elects the one replica that checks and reports.
    #[arg(long, value_name = "NAME", default_value = "tagpin-watch")]
    pub lease_name: String,
    /// Namespace of the Lease (default: `POD_NAMESPACE`, else the kubeconfig's namespace).
    #[arg(long, value_name = "NS", env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This replica's identity in the Lease (default: `HOSTNAME`, i.e. the Pod's name).
    #[arg(long, value_name = "ID", env = "HOSTNAME")]
    pub identity: Option<String>,
    /// Seconds a leader holds the Lease without renewing it before another replica takes over.
    #[arg(long, value_name = "SECONDS", default_value_t = 15)]
    pub lease_duration: u32,
}
