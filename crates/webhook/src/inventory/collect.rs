//! Reading Pods, their owners' metadata and pull credentials from the API server: one paged
//! list per kind and scope, never one request per Pod.

use std::collections::HashSet;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, ReplicationController, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, ObjectList};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::InventoryError;
use super::owners::OwnerIndex;
use crate::cluster::{DOCKER_CFG, DOCKER_CONFIG_JSON};
use crate::config::PinnedKind;

/// Objects per list page: large enough for few round trips, small enough to bound memory.
const PAGE: u32 = 500;
/// Owner levels followed (Pod → ReplicaSet → Deployment is two); guards against cycles.
const MAX_OWNER_DEPTH: usize = 4;

/// Which namespaces are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One namespace.
    Namespace(String),
    /// Every namespace.
    All,
}

impl Scope {
    fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match self {
            Self::Namespace(ns) => Api::namespaced(client.clone(), ns),
            Self::All => Api::all(client.clone()),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Namespace(ns) => format!("namespace {ns}"),
            Self::All => "all namespaces".to_owned(),
        }
    }
}

/// Every Pod of `scope`, without managed fields.
pub async fn pods(client: &Client, scope: &Scope) -> Result<Vec<Pod>, InventoryError> {
    let api: Api<Pod> = scope.api(client);
    let mut pods = pages(scope, "pods", |lp| {
        let api = api.clone();
        async move { api.list(&lp).await }
    })
    .await?;
    for pod in &mut pods {
        pod.metadata.managed_fields = None;
    }
    Ok(pods)
}

/// The metadata of every owner the Pods' controller chains pass through, listed once per
/// kind: only kinds some Pod or owner actually references are asked for. A kind that cannot
/// be listed (e.g. no RBAC) is logged and its objects end the chain where they are named.
pub async fn owners(
    client: &Client,
    scope: &Scope,
    pods: &[Pod],
    pinned: Vec<PinnedKind>,
) -> OwnerIndex {
    let mut index = OwnerIndex::new(pinned);
    let mut listed: HashSet<PinnedKind> = HashSet::new();
    let mut wanted: HashSet<PinnedKind> = pods
        .iter()
        .filter_map(|p| owners_controller_kind(&p.metadata))
        .collect();
    for _ in 0..MAX_OWNER_DEPTH {
        let new: Vec<PinnedKind> = wanted
            .iter()
            .copied()
            .filter(|k| !listed.contains(k))
            .collect();
        if new.is_empty() {
            break;
        }
        for kind in new {
            listed.insert(kind);
            match owner_metadata(client, scope, kind).await {
                Ok(metas) => metas.into_iter().for_each(|m| index.insert(kind, m)),
                Err(e) => tracing::warn!(error = %e, "owners of this kind are shown as named"),
            }
        }
        wanted = index.controller_kinds();
    }
    index
}

/// The kind of the object's controller, when it is a kind whose template tagpin pins.
fn owners_controller_kind(meta: &ObjectMeta) -> Option<PinnedKind> {
    let owner = super::owners::controller(meta)?;
    super::owners::pinned_kind(&owner.api_version, &owner.kind)
}

async fn owner_metadata(
    client: &Client,
    scope: &Scope,
    kind: PinnedKind,
) -> Result<Vec<ObjectMeta>, InventoryError> {
    match kind {
        PinnedKind::ReplicaSet => metadata::<ReplicaSet>(client, scope, "replicasets").await,
        PinnedKind::Deployment => metadata::<Deployment>(client, scope, "deployments").await,
        PinnedKind::StatefulSet => metadata::<StatefulSet>(client, scope, "statefulsets").await,
        PinnedKind::DaemonSet => metadata::<DaemonSet>(client, scope, "daemonsets").await,
        PinnedKind::Job => metadata::<Job>(client, scope, "jobs").await,
        PinnedKind::CronJob => metadata::<CronJob>(client, scope, "cronjobs").await,
        PinnedKind::ReplicationController => {
            metadata::<ReplicationController>(client, scope, "replicationcontrollers").await
        }
        PinnedKind::Pod | PinnedKind::PodTemplate => Ok(Vec::new()),
    }
}

async fn metadata<K>(
    client: &Client,
    scope: &Scope,
    what: &'static str,
) -> Result<Vec<ObjectMeta>, InventoryError>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = scope.api(client);
    let items = pages(scope, what, |lp| {
        let api = api.clone();
        async move { api.list_metadata(&lp).await }
    })
    .await?;
    Ok(items.into_iter().map(|p| p.metadata).collect())
}

/// Pull secrets (both docker config types) and ServiceAccounts of `scope`, for keychains.
pub async fn credentials(
    client: &Client,
    scope: &Scope,
) -> Result<(Vec<Secret>, Vec<ServiceAccount>), InventoryError> {
    let secrets: Api<Secret> = scope.api(client);
    let mut found = Vec::new();
    for kind in [DOCKER_CONFIG_JSON, DOCKER_CFG] {
        let selector = format!("type={kind}");
        let page = pages(scope, "pull secrets", |lp| {
            let api = secrets.clone();
            let lp = lp.fields(&selector);
            async move { api.list(&lp).await }
        })
        .await?;
        found.extend(page);
    }
    let accounts: Api<ServiceAccount> = scope.api(client);
    let accounts = pages(scope, "serviceaccounts", |lp| {
        let api = accounts.clone();
        async move { api.list(&lp).await }
    })
    .await?;
    Ok((found, accounts))
}

/// Every item of a paged list.
async fn pages<T, F, Fut>(
    scope: &Scope,
    what: &'static str,
    mut list: F,
) -> Result<Vec<T>, InventoryError>
where
    T: Clone,
    F: FnMut(ListParams) -> Fut,
    Fut: std::future::Future<Output = kube::Result<ObjectList<T>>>,
{
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = list(params.clone())
            .await
            .map_err(|source| InventoryError::List {
                what,
                scope: scope.describe(),
                source,
            })?;
        items.extend(page.items);
        match page.metadata.continue_.as_deref() {
            Some(token) if !token.is_empty() => params = params.continue_token(token),
            _ => return Ok(items),
        }
    }
}
