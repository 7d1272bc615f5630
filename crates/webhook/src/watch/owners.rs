//! The metadata of every owner kind a Pod's controller chain can pass through, kept by
//! metadata-only watches: each round builds the inventory's owner index from memory
//! instead of listing the API server again.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use crate::config::PinnedKind;
use crate::inventory::collect::Scope;
use crate::inventory::owners::OwnerIndex;

/// A snapshot of one kind's store.
type Snapshot = Box<dyn Fn() -> Vec<ObjectMeta> + Send + Sync>;

/// One metadata store per owner kind.
pub struct OwnerStores {
    kinds: Vec<(PinnedKind, Snapshot)>,
    ready: Vec<Box<dyn Fn() -> bool + Send + Sync>>,
}

impl OwnerStores {
    /// Starts the watches over `scope`.
    pub fn start(client: &Client, scope: &Scope) -> Self {
        let mut stores = Self {
            kinds: Vec::new(),
            ready: Vec::new(),
        };
        stores.add::<ReplicaSet>(client, scope, PinnedKind::ReplicaSet);
        stores.add::<Deployment>(client, scope, PinnedKind::Deployment);
        stores.add::<StatefulSet>(client, scope, PinnedKind::StatefulSet);
        stores.add::<DaemonSet>(client, scope, PinnedKind::DaemonSet);
        stores.add::<Job>(client, scope, PinnedKind::Job);
        stores.add::<CronJob>(client, scope, PinnedKind::CronJob);
        stores.add::<ReplicationController>(client, scope, PinnedKind::ReplicationController);
        stores
    }

    fn add<K>(&mut self, client: &Client, scope: &Scope, kind: PinnedKind)
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let api: Api<PartialObjectMeta<K>> = match scope {
            Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
            Scope::All => Api::all(client.clone()),
        };
        let store = reflect_metadata(api);
        let ready = Arc::new(AtomicBool::new(false));
        let (listed, waiting) = (ready.clone(), store.clone());
        tokio::spawn(async move {
            // Fails only when the watch task ended, which it never does on its own.
            if waiting.wait_until_ready().await.is_ok() {
                listed.store(true, Ordering::SeqCst);
            }
        });
        self.ready
            .push(Box::new(move || ready.load(Ordering::SeqCst)));
        self.kinds.push((
            kind,
            Box::new(move || store.state().iter().map(|m| m.metadata.clone()).collect()),
        ));
    }

    /// True once every watch has listed its kind once.
    pub fn ready(&self) -> bool {
        self.ready.iter().all(|r| r())
    }

    /// The owner index of what the stores hold now, for a config that pins `pinned`.
    pub fn index(&self, pinned: Vec<PinnedKind>) -> OwnerIndex {
        let mut index = OwnerIndex::new(pinned);
        for (kind, snapshot) in &self.kinds {
            snapshot()
                .into_iter()
                .for_each(|meta| index.insert(*kind, meta));
        }
        index
    }
}

fn reflect_metadata<K>(api: Api<PartialObjectMeta<K>>) -> Store<PartialObjectMeta<K>>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use futures::StreamExt;
    let (reader, writer) = reflector::store::<PartialObjectMeta<K>>();
    let kind = K::kind(&()).into_owned();
    // An Api of PartialObjectMeta asks for metadata only.
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|o: &mut PartialObjectMeta<K>| o.metadata.managed_fields = None)
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(kind = %kind, error = %e, "watch failed; retrying");
            }
        }
    });
    reader
}
