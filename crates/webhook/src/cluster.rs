//! Live view of namespaces, pull secrets and service accounts, kept by kube-runtime reflectors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use tagpin_resolver::{DockerConfig, Keychain};

use crate::credentials::ClusterState;

/// Type of the pull secrets tagpin reads (and of the legacy form below).
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
/// Type of legacy `.dockercfg` pull secrets.
pub const DOCKER_CFG: &str = "kubernetes.io/dockercfg";

/// Parsed pull secrets, keyed by namespace and name, valid for one resourceVersion.
type ParsedSecrets = HashMap<(String, String), (Option<String>, Option<Arc<DockerConfig>>)>;

/// Fewest cached entries at which deleted secrets are swept out.
const MIN_PRUNE_AT: usize = 64;

/// Parsed pull secrets, swept of deleted ones whenever the cache doubles.
struct SecretCache {
    entries: ParsedSecrets,
    prune_at: usize,
}

/// Cluster state from watches; never asks the API server during admission.
pub struct Cluster {
    /// Absent when namespace labels are not honoured (no need to read namespaces then).
    namespaces: Option<Store<Namespace>>,
    secrets: Store<Secret>,
    legacy_secrets: Store<Secret>,
    service_accounts: Store<ServiceAccount>,
    /// The config's docker config; replaced when a reloaded config names another file or
    /// the file changes.
    docker_config: RwLock<Option<Arc<DockerConfig>>>,
    parsed: Mutex<SecretCache>,
}

impl Cluster {
    /// Starts the watches; `ready` completes once every cache has its first full list.
    pub fn start(
        client: Client,
        watch_namespaces: bool,
        docker_config: Option<Arc<DockerConfig>>,
    ) -> Arc<Self> {
        let namespaces = watch_namespaces
            .then(|| reflect::<Namespace>(Api::all(client.clone()), watcher::Config::default()));
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
        Arc::new(Self::from_stores(
            namespaces,
            secrets,
            legacy_secrets,
            service_accounts,
            docker_config,
        ))
    }

    /// A fixed view of pull secrets and ServiceAccounts listed once, for one-shot commands
    /// (`tagpin inventory`) that need the same credential order as admission, not watches.
    pub fn from_objects(
        secrets: Vec<Secret>,
        service_accounts: Vec<ServiceAccount>,
        docker_config: Option<Arc<DockerConfig>>,
    ) -> Self {
        let (secret_store, mut secret_writer) = reflector::store::<Secret>();
        let (legacy_store, mut legacy_writer) = reflector::store::<Secret>();
        let (account_store, mut account_writer) = reflector::store::<ServiceAccount>();
        for secret in secrets {
            match secret.type_.as_deref() {
                Some(DOCKER_CONFIG_JSON) => {
                    secret_writer.apply_watcher_event(&watcher::Event::Apply(secret));
                }
                Some(DOCKER_CFG) => {
                    legacy_writer.apply_watcher_event(&watcher::Event::Apply(secret));
                }
                _ => {}
            }
        }
        for account in service_accounts {
            account_writer.apply_watcher_event(&watcher::Event::Apply(account));
        }
        Self::from_stores(
            None,
            secret_store,
            legacy_store,
            account_store,
            docker_config,
        )
    }

    fn from_stores(
        namespaces: Option<Store<Namespace>>,
        secrets: Store<Secret>,
        legacy_secrets: Store<Secret>,
        service_accounts: Store<ServiceAccount>,
        docker_config: Option<Arc<DockerConfig>>,
    ) -> Self {
        Self {
            namespaces,
            secrets,
            legacy_secrets,
            service_accounts,
            docker_config: RwLock::new(docker_config),
            parsed: Mutex::new(SecretCache {
                entries: HashMap::new(),
                prune_at: MIN_PRUNE_AT,
            }),
        }
    }

    /// Completes once every watch has listed its objects once.
    pub async fn ready(&self) {
        // wait_until_ready only fails when the writer is dropped, i.e. the watch task ended.
        if let Some(namespaces) = &self.namespaces {
            let _ = namespaces.wait_until_ready().await;
        }
        let _ = self.secrets.wait_until_ready().await;
        let _ = self.legacy_secrets.wait_until_ready().await;
        let _ = self.service_accounts.wait_until_ready().await;
    }

    /// Replaces the configured docker config used after the pull secrets.
    pub fn set_docker_config(&self, docker_config: Option<Arc<DockerConfig>>) {
        match self.docker_config.write() {
            Ok(mut d) => *d = docker_config,
            Err(poisoned) => *poisoned.into_inner() = docker_config,
        }
    }

    fn configured_docker_config(&self) -> Option<Arc<DockerConfig>> {
        match self.docker_config.read() {
            Ok(d) => d.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn pull_secret(&self, namespace: &str, name: &str) -> Option<Arc<DockerConfig>> {
        let key = ObjectRef::new(name).within(namespace);
        let cache_key = (namespace.to_owned(), name.to_owned());
        let mut parsed = match self.parsed.lock() {
            Ok(p) => p,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (secret, field) = match self.secrets.get(&key) {
            Some(s) => (s, ".dockerconfigjson"),
            None => match self.legacy_secrets.get(&key) {
                Some(s) => (s, ".dockercfg"),
                None => {
                    parsed.entries.remove(&cache_key);
                    return None;
                }
            },
        };
        let version = secret.meta().resource_version.clone();
        if let Some((v, config)) = parsed.entries.get(&cache_key)
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
        parsed.entries.insert(cache_key, (version, config.clone()));
        if parsed.entries.len() > parsed.prune_at {
            self.prune(&mut parsed);
        }
        config
    }

    /// Forgets parsed secrets that were deleted; amortized, as it runs when the cache doubles.
    fn prune(&self, cache: &mut SecretCache) {
        cache.entries.retain(|(namespace, name), _| {
            let key = ObjectRef::new(name).within(namespace);
            self.secrets.get(&key).is_some() || self.legacy_secrets.get(&key).is_some()
        });
        cache.prune_at = (cache.entries.len() * 2).max(MIN_PRUNE_AT);
    }
}

impl ClusterState for Cluster {
    fn namespace_label(&self, namespace: &str, key: &str) -> Option<String> {
        let ns = self.namespaces.as_ref()?.get(&ObjectRef::new(namespace))?;
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
        if let Some(config) = self.configured_docker_config() {
            keychain.push(config);
        }
        keychain
    }
}

/// A store kept up to date by a watch, retried with backoff, without managed fields.
pub(crate) fn reflect<K>(api: Api<K>, config: watcher::Config) -> Store<K>
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::LocalObjectReference;
    use kube::api::ObjectMeta;
    use kube::runtime::watcher::Event;
    use tagpin_resolver::Credential;

    fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: namespace.map(str::to_owned),
            resource_version: Some("1".to_owned()),
            ..ObjectMeta::default()
        }
    }

    fn docker_json(registry: &str, user: &str) -> Vec<u8> {
        format!(r#"{{"auths":{{"{registry}":{{"username":"{user}","password":"pw"}}}}}}"#)
            .into_bytes()
    }

    fn secret(namespace: &str, name: &str, field: &str, bytes: Vec<u8>) -> Secret {
        Secret {
            metadata: meta(Some(namespace), name),
            data: Some([(field.to_owned(), ByteString(bytes))].into()),
            ..Secret::default()
        }
    }

    fn user(keychain: &Keychain, registry: &str) -> Option<String> {
        match keychain.credential_for(registry)? {
            Credential::Basic { username, .. } => Some(username.clone()),
            Credential::IdentityToken(_) => None,
        }
    }

    fn cluster() -> Cluster {
        let (namespaces, mut ns_writer) = reflector::store::<Namespace>();
        let (secrets, mut secret_writer) = reflector::store::<Secret>();
        let (legacy, mut legacy_writer) = reflector::store::<Secret>();
        let (accounts, mut sa_writer) = reflector::store::<ServiceAccount>();
        let mut labelled = meta(None, "apps");
        labelled.labels = Some([("tagpin.dev/mode".to_owned(), "warn".to_owned())].into());
        ns_writer.apply_watcher_event(&Event::Apply(Namespace {
            metadata: labelled,
            ..Namespace::default()
        }));
        for (ns, name, registry, user) in [
            ("apps", "pod-secret", "r.example", "apps-pod"),
            ("apps", "sa-secret", "r.example", "apps-sa"),
            ("apps", "sa-only", "s.example", "apps-sa-only"),
            ("other", "pod-secret", "r.example", "other-pod"),
            ("other", "broken", "r.example", "x"),
        ] {
            let bytes = if name == "broken" {
                b"not json".to_vec()
            } else {
                docker_json(registry, user)
            };
            secret_writer.apply_watcher_event(&Event::Apply(secret(
                ns,
                name,
                ".dockerconfigjson",
                bytes,
            )));
        }
        legacy_writer.apply_watcher_event(&Event::Apply(secret(
            "apps",
            "legacy",
            ".dockercfg",
            br#"{"l.example":{"username":"apps-legacy","password":"pw"}}"#.to_vec(),
        )));
        let pull = |names: &[&str]| {
            Some(
                names
                    .iter()
                    .map(|n| LocalObjectReference {
                        name: (*n).to_owned(),
                    })
                    .collect(),
            )
        };
        sa_writer.apply_watcher_event(&Event::Apply(ServiceAccount {
            metadata: meta(Some("apps"), "builder"),
            image_pull_secrets: pull(&["sa-secret", "sa-only", "legacy"]),
            ..ServiceAccount::default()
        }));
        let fallback = DockerConfig::parse(&docker_json("f.example", "configured")).unwrap();
        Cluster::from_stores(
            Some(namespaces),
            secrets,
            legacy,
            accounts,
            Some(Arc::new(fallback)),
        )
    }

    #[test]
    fn reads_namespace_labels() {
        let c = cluster();
        assert_eq!(
            c.namespace_label("apps", "tagpin.dev/mode").as_deref(),
            Some("warn")
        );
        assert_eq!(c.namespace_label("other", "tagpin.dev/mode"), None);
        assert_eq!(c.namespace_label("missing", "tagpin.dev/mode"), None);
    }

    #[test]
    fn pod_secrets_come_before_service_account_secrets_then_the_config() {
        let c = cluster();
        let k = c.keychain("apps", &["pod-secret".to_owned()], "builder");
        assert_eq!(user(&k, "r.example").as_deref(), Some("apps-pod"));
        assert_eq!(user(&k, "s.example").as_deref(), Some("apps-sa-only"));
        assert_eq!(user(&k, "l.example").as_deref(), Some("apps-legacy"));
        assert_eq!(user(&k, "f.example").as_deref(), Some("configured"));
        assert_eq!(user(&k, "none.example"), None);
        let k = c.keychain("apps", &[], "builder");
        assert_eq!(user(&k, "r.example").as_deref(), Some("apps-sa"));
    }

    #[test]
    fn a_replaced_docker_config_is_used_by_the_next_keychain() {
        let c = cluster();
        let replaced = DockerConfig::parse(&docker_json("f.example", "rotated")).unwrap();
        c.set_docker_config(Some(Arc::new(replaced)));
        let k = c.keychain("apps", &[], "default");
        assert_eq!(user(&k, "f.example").as_deref(), Some("rotated"));
        c.set_docker_config(None);
        assert_eq!(user(&c.keychain("apps", &[], "default"), "f.example"), None);
    }

    #[test]
    fn never_uses_another_namespaces_secrets() {
        let c = cluster();
        // "sa-secret" and the ServiceAccount "builder" exist only in "apps".
        let k = c.keychain("other", &["sa-secret".to_owned()], "builder");
        assert_eq!(user(&k, "r.example"), None);
        let k = c.keychain("other", &["pod-secret".to_owned()], "default");
        assert_eq!(user(&k, "r.example").as_deref(), Some("other-pod"));
    }

    #[test]
    fn unusable_secrets_are_skipped() {
        let c = cluster();
        let k = c.keychain(
            "other",
            &["broken".to_owned(), "pod-secret".to_owned()],
            "default",
        );
        assert_eq!(user(&k, "r.example").as_deref(), Some("other-pod"));
    }

    #[test]
    fn deleted_secrets_leave_the_parsed_cache() {
        let (secrets, mut writer) = reflector::store::<Secret>();
        let (legacy, _legacy_writer) = reflector::store::<Secret>();
        let (accounts, _sa_writer) = reflector::store::<ServiceAccount>();
        let c = Cluster::from_stores(None, secrets, legacy, accounts, None);
        let cached = || c.parsed.lock().unwrap().entries.len();
        let names = |round: usize| (0..70).map(move |i| format!("s{round}-{i}"));
        let plant = |writer: &mut reflector::store::Writer<Secret>, name: &str, delete: bool| {
            let s = secret(
                "apps",
                name,
                ".dockerconfigjson",
                docker_json("r.example", name),
            );
            writer.apply_watcher_event(&if delete {
                Event::Delete(s)
            } else {
                Event::Apply(s)
            });
        };

        plant(&mut writer, "gone", false);
        let k = c.keychain("apps", &["gone".to_owned()], "default");
        assert_eq!(user(&k, "r.example").as_deref(), Some("gone"));
        assert_eq!(cached(), 1);
        // Asked for again after its deletion: forgotten at once.
        plant(&mut writer, "gone", true);
        let k = c.keychain("apps", &["gone".to_owned()], "default");
        assert_eq!(user(&k, "r.example"), None);
        assert_eq!(cached(), 0);

        // Never asked for again: swept out as the cache grows.
        for name in names(0) {
            plant(&mut writer, &name, false);
            c.keychain("apps", &[name], "default");
        }
        assert_eq!(cached(), 70);
        for name in names(0) {
            plant(&mut writer, &name, true);
        }
        for name in names(1) {
            plant(&mut writer, &name, false);
            c.keychain("apps", &[name], "default");
        }
        assert_eq!(cached(), 70);
    }
}
