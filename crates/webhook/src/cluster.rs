//! Live view of namespaces, pull secrets and service accounts, kept by kube-runtime reflectors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use tagpin_resolver::{DockerConfig, Keychain};

use crate::credentials::ClusterState;

const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
const DOCKER_CFG: &str = "kubernetes.io/dockercfg";

/// Parsed pull secrets, keyed by namespace and name, valid for one resourceVersion.
type ParsedSecrets = HashMap<(String, String), (Option<String>, Option<Arc<DockerConfig>>)>;

/// Cluster state from watches; never asks the API server during admission.
pub struct Cluster {
    namespaces: Store<Namespace>,
    secrets: Store<Secret>,
    legacy_secrets: Store<Secret>,
    service_accounts: Store<ServiceAccount>,
    docker_config: Option<Arc<DockerConfig>>,
    parsed: Mutex<ParsedSecrets>,
}

impl Cluster {
    /// Starts the watches; `ready` completes once every cache has its first full list.
    pub fn start(client: Client, docker_config: Option<Arc<DockerConfig>>) -> Arc<Self> {
        let namespaces = reflect::<Namespace>(Api::all(client.clone()), watcher::Config::default());
        let secrets = reflect::<Secret>(
            Api::all(client.clone()),
            watcher::Config::default().fields(&format!("type={DOCKER_CONFIG_JSON}")),
        );
        let legacy_secrets = reflect::<Secret>(
            Api::all(client.clone()),
            watcher::Config::default().fields(&format!("type={DOCKER_CFG}")),
        );
        let service_accounts =
            reflect::<ServiceAccount>(Api::all(client), watcher::Config::default());
        Arc::new(Self {
            namespaces,
            secrets,
            legacy_secrets,
            service_accounts,
            docker_config,
            parsed: Mutex::new(HashMap::new()),
        })
    }

    /// Completes once every watch has listed its objects once.
    pub async fn ready(&self) {
        // wait_until_ready only fails when the writer is dropped, i.e. the watch task ended.
        let _ = self.namespaces.wait_until_ready().await;
        let _ = self.secrets.wait_until_ready().await;
        let _ = self.legacy_secrets.wait_until_ready().await;
        let _ = self.service_accounts.wait_until_ready().await;
    }

    fn pull_secret(&self, namespace: &str, name: &str) -> Option<Arc<DockerConfig>> {
        let key = ObjectRef::new(name).within(namespace);
        let (secret, field) = match self.secrets.get(&key) {
            Some(s) => (s, ".dockerconfigjson"),
            None => (self.legacy_secrets.get(&key)?, ".dockercfg"),
        };
        let version = secret.meta().resource_version.clone();
        let cache_key = (namespace.to_owned(), name.to_owned());
        let mut parsed = match self.parsed.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((v, config)) = parsed.get(&cache_key)
            && *v == version
        {
            return config.clone();
        }
        let source = format!("secret {namespace}/{name}");
        let config = secret
            .data
            .as_ref()
            .and_then(|d| d.get(field))
            .map(|bytes| {
                if field == ".dockercfg" {
                    DockerConfig::parse_legacy_dockercfg(&bytes.0, &source)
                } else {
                    DockerConfig::parse_named(&bytes.0, &source)
                }
            });
        let config = match config {
            Some(Ok(c)) => Some(Arc::new(c)),
            Some(Err(e)) => {
                // The kubelet skips unusable pull secrets too; the next source is tried.
                tracing::warn!(error = %e, "ignoring unusable pull secret");
                None
            }
            None => {
                tracing::warn!(secret = %source, field, "pull secret has no data");
                None
            }
        };
        parsed.insert(cache_key, (version, config.clone()));
        config
    }
}

impl ClusterState for Cluster {
    fn namespace_label(&self, namespace: &str, key: &str) -> Option<String> {
        let ns = self.namespaces.get(&ObjectRef::new(namespace))?;
        ns.meta().labels.as_ref()?.get(key).cloned()
    }

    fn keychain(
        &self,
        namespace: &str,
        pull_secrets: &[String],
        service_account: &str,
    ) -> Keychain {
        let mut names: Vec<String> = pull_secrets.to_vec();
        if let Some(sa) = self
            .service_accounts
            .get(&ObjectRef::new(service_account).within(namespace))
        {
            for secret in sa.image_pull_secrets.iter().flatten() {
                if !secret.name.is_empty() && !names.contains(&secret.name) {
                    names.push(secret.name.clone());
                }
            }
        }
        let mut keychain = Keychain::anonymous();
        for name in &names {
            // Only secrets of the request's own namespace are ever looked up.
            if let Some(config) = self.pull_secret(namespace, name) {
                keychain.push(config);
            }
        }
        if let Some(config) = &self.docker_config {
            keychain.push(config.clone());
        }
        keychain
    }
}

fn reflect<K>(api: Api<K>, config: watcher::Config) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store::<K>();
    let kind = K::kind(&()).into_owned();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(|o: &mut K| o.meta_mut().managed_fields = None)
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
