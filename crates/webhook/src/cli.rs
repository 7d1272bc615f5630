//! Command-line interface of the `tagpin` binary.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

mod inventory;
mod watch;
pub use inventory::{FailOn, InventoryArgs};
pub use watch::WatchArgs;

/// Pins every container image of Kubernetes workloads to its registry digest.
#[derive(Debug, Parser)]
#[command(name = "tagpin", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TAGPIN_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Log filter (tracing env-filter syntax, e.g. `info` or `tagpin=debug`); default
    /// `info` for `serve`, `warn` for the other commands.
    #[arg(long, global = true, env = "TAGPIN_LOG")]
    pub log_level: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Output format of `tagpin resolve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One pinned reference per line.
    Text,
    /// One JSON object per image with the input, normalized reference and digest.
    Json,
}

/// tagpin's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the normalized form of an image reference (`registry/repository[:tag][@digest]`).
    #[command(name = "ref")]
    Ref {
        /// The image reference, e.g. `nginx:1.25`.
        image: String,
    },

    /// Resolve image tags to digests and print the pinned references.
    Resolve {
        /// tagpin config file (its `resolver:` section is used).
        #[arg(long, short, value_name = "FILE", env = "TAGPIN_CONFIG")]
        config: Option<PathBuf>,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        /// Images to resolve; output keeps this order.
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },

    /// Resolve images and verify their digests against the config's verification policy.
    Verify {
        /// tagpin config file with a `verification:` policy.
        #[arg(long, short, value_name = "FILE", env = "TAGPIN_CONFIG")]
        config: Option<PathBuf>,
        /// Output format.
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        /// Images to verify; output keeps this order.
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<String>,
    },

    /// Pin and verify the images of manifest files, as the webhook would at admission.
    Pin {
        /// tagpin config file (its `kinds:`, `resolver:` and `verification:` apply).
        #[arg(long, short, value_name = "FILE", env = "TAGPIN_CONFIG")]
        config: Option<PathBuf>,
        /// Rewrite the files in place (atomically; none when any image is refused).
        #[arg(long, short = 'w', conflicts_with = "check")]
        write: bool,
        /// Change nothing; exit 1 listing every image that is not pinned or not verified.
        #[arg(long)]
        check: bool,
        /// Print a unified diff of the changes instead of the manifests.
        #[arg(long, conflicts_with = "check")]
        diff: bool,
        /// Also re-resolve tags that already carry a digest and report the digests that moved.
        #[arg(long, conflicts_with = "check")]
        update: bool,
        /// Also write the `tagpin.dev/images` record the webhook keeps into each object, so
        /// Git and the cluster carry the same annotation.
        #[arg(long, conflicts_with = "check")]
        annotate: bool,
        /// Run as a KRM function: read a ResourceList on stdin, write it back pinned with a
        /// `results` entry per image (kustomize and kpt function specification).
        #[arg(long, conflicts_with_all = ["write", "check", "diff", "paths"])]
        krm: bool,
        /// `text` prints the manifests, `json` a report of every image field.
        #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
        /// Registry lookups in flight at once.
        #[arg(long, value_name = "N", default_value_t = 16)]
        concurrency: usize,
        /// Manifest files and directories (searched for *.yaml, *.yml, *.json); `-` or none
        /// for stdin.
        #[arg(value_name = "PATH")]
        paths: Vec<PathBuf>,
    },

    /// Run the admission webhook over HTTPS.
    Serve {
        /// tagpin config file; without it the embedded default applies.
        #[arg(long, short, value_name = "FILE", env = "TAGPIN_CONFIG")]
        config: Option<PathBuf>,
    },

    /// Answer one AdmissionReview from a file or stdin, exactly as the server would.
    Review {
        /// tagpin config file; without it the embedded default applies.
        #[arg(long, short, value_name = "FILE", env = "TAGPIN_CONFIG")]
        config: Option<PathBuf>,
        /// The AdmissionReview request (`-` for stdin).
        #[arg(value_name = "FILE", default_value = "-")]
        input: PathBuf,
    },

    /// List every container of every Pod with its digest and tagpin's record, for audits.
    Inventory(InventoryArgs),

    /// Watch running Pods and report moved tags and policy violations as Events and metrics.
    Watch(WatchArgs),

    /// Create a self-signed CA and a serving certificate for bootstrapping the webhook.
    Certs {
        /// Directory to write ca.crt, tls.crt and tls.key into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// DNS names of the serving certificate (repeatable).
        #[arg(long = "dns-name", value_name = "NAME", default_values_t = default_dns_names())]
        dns_names: Vec<String>,
        /// IP addresses of the serving certificate (repeatable).
        #[arg(long = "ip", value_name = "IP")]
        ips: Vec<IpAddr>,
        /// Also write client.crt and client.key for a client with this name (e.g. the API
        /// server, when `server.clientCaFile` requires client certificates).
        #[arg(long, value_name = "NAME")]
        client: Option<String>,
        /// Validity of the certificates, in days.
        #[arg(long, value_name = "DAYS", default_value_t = 365)]
        days: u32,
        /// Also write DIR/kustomization.yaml: tagpin's base and self-signed webhook with a
        /// tagpin-tls Secret of these certificates, for `kubectl apply -k DIR`.
        #[arg(long)]
        kustomize: bool,
        /// With --kustomize: tagpin's manifests directory (named relative to DIR in the
        /// kustomization), or a kustomize URL of it, e.g.
        /// `https://github.com/tagpin/tagpin//manifests?ref=v0.1.0`.
        #[arg(
            long,
            value_name = "DIR|URL",
            default_value = "manifests",
            requires = "kustomize"
        )]
        manifests: String,
        /// With --kustomize: run tagpin from this image, `NAME[:TAG]@sha256:...` (the
        /// kustomization sets it with `images:`; a tag alone is refused).
        #[arg(long, value_name = "IMAGE", requires = "kustomize")]
        image: Option<String>,
    },
}

fn default_dns_names() -> Vec<String> {
    vec![
        "tagpin.tagpin-system.svc".to_owned(),
        "tagpin.tagpin-system.svc.cluster.local".to_owned(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
