//! `tagpin inventory`: what runs in the cluster, from which tag, signed by whom, since when.
//!
//! One concern per module: reading the API server ([`collect`]), following owner references
//! up to the workload ([`owners`]), one row per container ([`rows`]), re-resolving tags
//! ([`drift`]), re-verifying digests ([`policy`]), grouping by digest ([`digests`]), comparing clusters ([`clusters`]) and
//! printing ([`output`]).

pub mod clusters;
pub mod collect;
pub mod digests;
pub mod drift;
pub mod output;
pub mod owners;
pub mod policy;
pub mod rows;

pub use rows::{Flag, Row, Summary};

/// Why the inventory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A list call to the API server failed.
    #[error("cannot list {what} in {scope}: {source}")]
    List {
        /// The resource listed, e.g. `pods`.
        what: &'static str,
        /// `namespace NS` or `all namespaces`.
        scope: String,
        /// The API server's answer.
        source: kube::Error,
    },
}
