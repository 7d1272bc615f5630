//! Arguments of `tagpin inventory`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::inventory::output::Format;

/// What makes `tagpin inventory` exit 1 (for scheduled audits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum FailOn {
    /// A tag now points elsewhere (runs `--drift`), a record differs from what runs, or a
    /// tag runs as different digests in the clusters read.
    Drift,
    /// A container has no digest.
    Unpinned,
    /// The policy denies what runs (today's verdict with `--verify`, else the recorded one).
    Policy,
}

/// `tagpin inventory`: what runs, from which tag, signed by whom, since when.
#[derive(Debug, Clone, Args)]
pub struct InventoryArgs {
    /// tagpin config file (its `resolver:` section and `verification:` policy are used).
    #[arg(long, short, value_name = "FILE", env = "TAGPIN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Namespace to read (default: the kubeconfig context's namespace).
    #[arg(
        long,
        short = 'n',
        value_name = "NS",
        conflicts_with = "all_namespaces"
    )]
    pub namespace: Option<String>,
    /// Read every namespace.
    #[arg(long, short = 'A')]
    pub all_namespaces: bool,
    /// Kubeconfig context to read (repeat to compare clusters); default: the current one.
    #[arg(long = "context", value_name = "CONTEXT")]
    pub contexts: Vec<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Re-resolve each distinct original tag and mark containers whose tag moved.
    #[arg(long)]
    pub drift: bool,
    /// Re-verify each distinct running digest against the config's current policy.
    #[arg(long)]
    pub verify: bool,
    /// Group containers by the digest they run, across names.
    #[arg(long, conflicts_with = "digest")]
    pub by_digest: bool,
    /// Show only where this digest runs, under which names, since when.
    #[arg(long, value_name = "sha256:…")]
    pub digest: Option<String>,
    /// Exit 1 when any container has this problem (repeatable or comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "WHAT")]
    pub fail_on: Vec<FailOn>,
}
