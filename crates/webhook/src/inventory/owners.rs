//! Following controller references from a Pod up to the workload a person wrote
//! (Pod → ReplicaSet → Deployment, Pod → Job → CronJob, StatefulSet, DaemonSet, ...).

use std::collections::{HashMap, HashSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::admission::record::{self, ImageRecord};
use crate::config::PinnedKind;

/// Links followed at most; an ownership cycle stops here instead of looping.
const MAX_CHAIN: usize = 8;

/// One object on the way from a Pod to its top-level owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The kind as the owner reference names it, e.g. `ReplicaSet`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its kind when tagpin knows where its pod template sits (and so its record paths).
    pub pinned: Option<PinnedKind>,
    /// Its `tagpin.dev/images` records (empty when it has none or was not found).
    pub records: Vec<ImageRecord>,
    /// True when tagpin admits objects like this one itself, so its record is tagpin's:
    /// tagpin replaces any incoming record there. An object whose controller is a pinned
    /// kind (a Deployment's ReplicaSet) is left alone at admission, so a record on it is a
    /// copy at best and anyone's claim at worst, and is not read.
    pub written_by_tagpin: bool,
}

/// What is kept of one owner object: enough to climb further and to read its records.
#[derive(Debug, Clone)]
struct OwnerMeta {
    uid: Option<String>,
    controller: Option<OwnerReference>,
    records: Vec<ImageRecord>,
}

/// Owner objects by namespace, kind and name.
#[derive(Debug)]
pub struct OwnerIndex {
    objects: HashMap<(String, PinnedKind, String), OwnerMeta>,
    /// The kinds tagpin's config pins (`kinds:`).
    pinned: Vec<PinnedKind>,
}

impl Default for OwnerIndex {
    fn default() -> Self {
        Self::new(PinnedKind::ALL.to_vec())
    }
}

impl OwnerIndex {
    /// An empty index for a config that pins `pinned`.
    pub fn new(pinned: Vec<PinnedKind>) -> Self {
        Self {
            objects: HashMap::new(),
            pinned,
        }
    }

    /// True when tagpin admits objects of `kind` (so their records are its own), given the
    /// kind of their controller: the same rule admission applies.
    pub fn admits(&self, kind: PinnedKind, controller: Option<PinnedKind>) -> bool {
        let pinned = |k: PinnedKind| self.pinned.contains(&k);
        pinned(kind) && (kind == PinnedKind::Pod || !controller.is_some_and(pinned))
    }

    /// Adds one listed owner of `kind`.
    pub fn insert(&mut self, kind: PinnedKind, meta: ObjectMeta) {
        let (Some(namespace), Some(name)) = (meta.namespace.clone(), meta.name.clone()) else {
            return;
        };
        let entry = OwnerMeta {
            uid: meta.uid.clone(),
            controller: controller(&meta).cloned(),
            records: records_of(&meta),
        };
        self.objects.insert((namespace, kind, name), entry);
    }

    /// Kinds that the indexed owners' controllers have, so they can be listed next.
    pub fn controller_kinds(&self) -> HashSet<PinnedKind> {
        self.objects
            .values()
            .filter_map(|o| o.controller.as_ref())
            .filter_map(|r| pinned_kind(&r.api_version, &r.kind))
            .collect()
    }

    /// The controllers above the Pod `meta`, nearest first; empty for a bare Pod. A reference
    /// to an object that was not listed (or whose uid differs: deleted and re-created) ends
    /// the chain with that object as named.
    pub fn chain(&self, meta: &ObjectMeta) -> Vec<Link> {
        let namespace = meta.namespace.clone().unwrap_or_default();
        let mut links = Vec::new();
        let mut next = controller(meta).cloned();
        while let Some(reference) = next.take() {
            if links.len() >= MAX_CHAIN {
                break;
            }
            let pinned = pinned_kind(&reference.api_version, &reference.kind);
            let found = pinned
                .and_then(|k| {
                    self.objects
                        .get(&(namespace.clone(), k, reference.name.clone()))
                })
                .filter(|o| o.uid.as_deref().is_none_or(|uid| uid == reference.uid));
            let controller_kind = found
                .and_then(|o| o.controller.as_ref())
                .and_then(|c| pinned_kind(&c.api_version, &c.kind));
            links.push(Link {
                kind: reference.kind.clone(),
                name: reference.name.clone(),
                pinned,
                records: found.map(|o| o.records.clone()).unwrap_or_default(),
                written_by_tagpin: pinned.is_some_and(|k| self.admits(k, controller_kind)),
            });
            next = found.and_then(|o| o.controller.clone());
        }
        links
    }
}

/// The object's controlling owner reference, if any.
pub fn controller(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// The pinned kind an owner reference names, from its `apiVersion` group and kind.
pub fn pinned_kind(api_version: &str, kind: &str) -> Option<PinnedKind> {
    let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
    PinnedKind::from_group_kind(group, kind)
}

/// The object's `tagpin.dev/images` records; an unparsable annotation counts as none.
pub fn records_of(meta: &ObjectMeta) -> Vec<ImageRecord> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(record::IMAGES_ANNOTATION))
        .map(|v| record::from_json(v))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(api_version: &str, kind: &str, name: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            controller: Some(true),
            ..OwnerReference::default()
        }
    }

    fn meta(name: &str, uid: &str, owner: Option<OwnerReference>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("shop".to_owned()),
            uid: Some(uid.to_owned()),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    }

    fn names(chain: &[Link]) -> Vec<String> {
        chain
            .iter()
            .map(|l| format!("{}/{}", l.kind, l.name))
            .collect()
    }

    #[test]
    fn climbs_replica_set_to_deployment_and_job_to_cronjob() {
        let mut index = OwnerIndex::default();
        let deploy = reference("apps/v1", "Deployment", "web", "d1");
        index.insert(PinnedKind::Deployment, meta("web", "d1", None));
        index.insert(
            PinnedKind::ReplicaSet,
            meta("web-1", "r1", Some(deploy.clone())),
        );
        index.insert(PinnedKind::CronJob, meta("nightly", "c1", None));
        index.insert(
            PinnedKind::Job,
            meta(
                "nightly-1",
                "j1",
                Some(reference("batch/v1", "CronJob", "nightly", "c1")),
            ),
        );
        let pod = meta(
            "web-1-x",
            "p1",
            Some(reference("apps/v1", "ReplicaSet", "web-1", "r1")),
        );
        assert_eq!(
            names(&index.chain(&pod)),
            ["ReplicaSet/web-1", "Deployment/web"]
        );
        let job_pod = meta(
            "nightly-1-x",
            "p2",
            Some(reference("batch/v1", "Job", "nightly-1", "j1")),
        );
        assert_eq!(
            names(&index.chain(&job_pod)),
            ["Job/nightly-1", "CronJob/nightly"]
        );
        assert!(index.chain(&meta("bare", "p3", None)).is_empty());
        assert_eq!(
            index.controller_kinds(),
            [PinnedKind::Deployment, PinnedKind::CronJob].into()
        );
    }

    #[test]
    fn unknown_or_replaced_owners_end_the_chain_as_named() {
        let mut index = OwnerIndex::default();
        index.insert(PinnedKind::ReplicaSet, meta("web-1", "new-uid", None));
        let stale = meta(
            "p",
            "p1",
            Some(reference("apps/v1", "ReplicaSet", "web-1", "old-uid")),
        );
        let chain = index.chain(&stale);
        assert_eq!(names(&chain), ["ReplicaSet/web-1"]);
        let custom = meta(
            "p",
            "p2",
            Some(reference("example.com/v1", "Rollout", "canary", "x")),
        );
        let chain = index.chain(&custom);
        assert_eq!(names(&chain), ["Rollout/canary"]);
        assert_eq!(chain[0].pinned, None);
    }

    #[test]
    fn records_are_read_only_where_tagpin_writes_them() {
        let mut index = OwnerIndex::default();
        let deploy = reference("apps/v1", "Deployment", "web", "d1");
        index.insert(PinnedKind::Deployment, meta("web", "d1", None));
        index.insert(PinnedKind::ReplicaSet, meta("web-1", "r1", Some(deploy)));
        let pod = meta(
            "x",
            "p",
            Some(reference("apps/v1", "ReplicaSet", "web-1", "r1")),
        );
        let trusted: Vec<bool> = index
            .chain(&pod)
            .iter()
            .map(|l| l.written_by_tagpin)
            .collect();
        assert_eq!(trusted, [false, true]);
        // A config that does not pin Deployments admits their ReplicaSets instead.
        let narrow = OwnerIndex::new(vec![PinnedKind::Pod, PinnedKind::ReplicaSet]);
        assert!(narrow.admits(PinnedKind::ReplicaSet, Some(PinnedKind::Deployment)));
        assert!(!narrow.admits(PinnedKind::Deployment, None));
        assert!(narrow.admits(PinnedKind::Pod, Some(PinnedKind::ReplicaSet)));
    }

    #[test]
    fn ownership_cycles_stop() {
        let mut index = OwnerIndex::default();
        let a = reference("apps/v1", "ReplicaSet", "a", "a");
        let b = reference("apps/v1", "ReplicaSet", "b", "b");
        index.insert(PinnedKind::ReplicaSet, meta("a", "a", Some(b)));
        index.insert(PinnedKind::ReplicaSet, meta("b", "b", Some(a.clone())));
        assert_eq!(index.chain(&meta("p", "p", Some(a))).len(), MAX_CHAIN);
    }
}
