//! One row per container of every Pod: what is written, what runs, what tagpin recorded.

use std::str::FromStr;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde::Serialize;
use tagpin_resolver::{Digest, ImageReference};

use super::owners::{Link, OwnerIndex, records_of};
use crate::admission::record::ImageRecord;
use crate::config::PinnedKind;

/// What is wrong (or worth a look) about one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flag {
    /// The image as written has no digest.
    Unpinned,
    /// No `tagpin.dev/images` record on the Pod or its owners (admitted before tagpin was
    /// installed, in an excluded namespace, or edited while tagpin was off).
    NoRecord,
    /// The recorded digest differs from what runs (or, not running yet, from the spec).
    RecordDiffers,
    /// The recorded verdict does not admit (admitted in warn mode).
    PolicyFailed,
    /// The original tag now points to another digest than the one that runs.
    Drifted,
    /// The tag could not be re-resolved (a registry error, never counted as drift).
    DriftError,
    /// The same tag runs as another digest in another cluster read in the same pass.
    DiffersAcrossClusters,
    /// The current policy would deny the digest that runs.
    DeniedToday,
    /// The digest could not be re-verified (no verdict reached).
    VerifyError,
}

impl Flag {
    /// The flag as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unpinned => "unpinned",
            Self::NoRecord => "no-record",
            Self::RecordDiffers => "record-differs",
            Self::PolicyFailed => "policy-failed",
            Self::Drifted => "drifted",
            Self::DriftError => "drift-error",
            Self::DiffersAcrossClusters => "differs-across-clusters",
            Self::DeniedToday => "denied-today",
            Self::VerifyError => "verify-error",
        }
    }
}

/// The result of re-resolving a container's original tag (`--drift`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftCheck {
    /// The tag re-resolved, normalized.
    pub tag: String,
    /// Where the tag points now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub now: Option<String>,
    /// Why it could not be re-resolved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of re-verifying the running digest against the current policy (`--verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyCheck {
    /// Today's verdict (`verified`, `failed`, `no-rule-denied`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// Whether today's verdict admits the digest.
    pub admits: bool,
    /// The rule applied today.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why it would be denied, or why no verdict was reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Set when no verdict was reached (e.g. a registry error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Which list of the pod spec a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerType {
    /// `initContainers`.
    Init,
    /// `containers`.
    Regular,
    /// `ephemeralContainers`.
    Ephemeral,
}

impl ContainerType {
    fn list(self) -> &'static str {
        match self {
            Self::Init => "initContainers",
            Self::Regular => "containers",
            Self::Ephemeral => "ephemeralContainers",
        }
    }

    /// The short name printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Init => "init",
            Self::Regular => "regular",
            Self::Ephemeral => "ephemeral",
        }
    }
}

/// Where a Pod pulls from: what its keychain is built of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PullIdentity {
    /// The Pod's `imagePullSecrets`.
    pub secrets: Vec<String>,
    /// Its ServiceAccount.
    pub service_account: String,
}

/// One container of one Pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// The kubeconfig context read, when several are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The Pod's namespace.
    pub namespace: String,
    /// Kind of the top-level owner (`Pod` for a bare Pod).
    pub owner_kind: String,
    /// Name of the top-level owner.
    pub owner_name: String,
    /// The Pod.
    pub pod: String,
    /// The container's name.
    pub container: String,
    /// Init, regular or ephemeral.
    pub container_type: ContainerType,
    /// The image exactly as written in the Pod.
    pub image: String,
    /// The digest written in the image, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_digest: Option<String>,
    /// The digest the kubelet reports running (`imageID`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub running_digest: Option<String>,
    /// When the container started running, as the kubelet reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Where the record came from (`Pod/NAME`, `Deployment/NAME`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_from: Option<String>,
    /// The reference as written before tagpin pinned it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
    /// The digest tagpin recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_digest: Option<String>,
    /// When tagpin resolved the tag.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
    /// The recorded verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
    /// The recorded policy rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The recorded signers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<String>,
    /// `--drift`: where the tag points now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftCheck>,
    /// `--verify`: today's verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub today: Option<PolicyCheck>,
    /// Where the same tag runs as another digest: `CLUSTER=DIGEST`, with `--context` twice.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub elsewhere: Vec<String>,
    /// What needs a look, derived from the fields above.
    pub flags: Vec<Flag>,
    /// The Pod's pull credentials, for re-checks.
    #[serde(skip)]
    pub pull: PullIdentity,
}

/// Recorded verdicts under which admission would have denied (admitted only in warn mode).
const FAILING_VERDICTS: [&str; 2] = ["failed", "no-rule-denied"];

impl Row {
    /// The digest that runs: the kubelet's, else (not running yet) the one written.
    pub fn effective_digest(&self) -> Option<&str> {
        self.running_digest
            .as_deref()
            .or(self.pinned_digest.as_deref())
    }

    /// The tag to re-resolve for drift: the recorded original, else the image as written
    /// without its digest; none for a digest-only reference.
    pub fn tag_reference(&self) -> Option<ImageReference> {
        let tag = match &self.original {
            Some(original) => ImageReference::parse(original).ok()?,
            None => {
                let base = ImageReference::parse(without_digest(&self.image)).ok()?;
                // `repo@sha256:…` names no tag; re-resolving `latest` would be a guess.
                if base.tag().is_none() && base.as_written() != self.image {
                    return None;
                }
                base
            }
        };
        tag.digest().is_none().then_some(tag)
    }

    /// True when the policy denies what runs: today's verdict when re-verified, else the
    /// recorded one.
    pub fn fails_policy(&self) -> bool {
        match self.today.as_ref() {
            Some(today) if today.error.is_none() => !today.admits,
            _ => self
                .verdict
                .as_deref()
                .is_some_and(|v| FAILING_VERDICTS.contains(&v)),
        }
    }

    /// Recomputes `flags` from the facts and checks.
    pub fn refresh_flags(&mut self) {
        let mut flags = Vec::new();
        if self.pinned_digest.is_none() {
            flags.push(Flag::Unpinned);
        }
        if self.record_from.is_none() {
            flags.push(Flag::NoRecord);
        }
        if let (Some(recorded), Some(runs)) = (&self.recorded_digest, self.effective_digest())
            && recorded != runs
        {
            flags.push(Flag::RecordDiffers);
        }
        if self
            .verdict
            .as_deref()
            .is_some_and(|v| FAILING_VERDICTS.contains(&v))
        {
            flags.push(Flag::PolicyFailed);
        }
        if let Some(drift) = &self.drift {
            if drift.error.is_some() {
                flags.push(Flag::DriftError);
            } else if let (Some(now), Some(runs)) = (&drift.now, self.effective_digest())
                && now != runs
            {
                flags.push(Flag::Drifted);
            }
        }
        if !self.elsewhere.is_empty() {
            flags.push(Flag::DiffersAcrossClusters);
        }
        if let Some(today) = &self.today {
            if today.error.is_some() {
                flags.push(Flag::VerifyError);
            } else if !today.admits {
                flags.push(Flag::DeniedToday);
            }
        }
        self.flags = flags;
    }

    /// True when `flag` is set.
    pub fn has(&self, flag: Flag) -> bool {
        self.flags.contains(&flag)
    }
}

/// The counts printed at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Containers listed.
    pub containers: usize,
    /// With a digest written.
    pub pinned: usize,
    /// Without one.
    pub unpinned: usize,
    /// Without a tagpin record.
    pub without_record: usize,
    /// Whose record differs from what runs.
    pub record_differs: usize,
    /// Whose tag now points elsewhere (`--drift`).
    pub drifted: usize,
    /// Denied by the policy (today's with `--verify`, else the recorded verdict).
    pub failing_policy: usize,
    /// Re-checks that reached no answer.
    pub errors: usize,
    /// Whose tag runs as another digest in another cluster (`--context` twice).
    pub differs_across_clusters: usize,
}

impl Summary {
    /// Counts `rows`.
    pub fn of(rows: &[Row]) -> Self {
        let count = |f: &dyn Fn(&Row) -> bool| rows.iter().filter(|r| f(r)).count();
        Self {
            containers: rows.len(),
            pinned: count(&|r| r.pinned_digest.is_some()),
            unpinned: count(&|r| r.has(Flag::Unpinned)),
            without_record: count(&|r| r.has(Flag::NoRecord)),
            record_differs: count(&|r| r.has(Flag::RecordDiffers)),
            drifted: count(&|r| r.has(Flag::Drifted)),
            failing_policy: count(&|r| r.fails_policy()),
            errors: count(&|r| r.has(Flag::DriftError) || r.has(Flag::VerifyError)),
            differs_across_clusters: count(&|r| r.has(Flag::DiffersAcrossClusters)),
        }
    }

    /// The one-line form.
    pub fn line(&self) -> String {
        let across = if self.differs_across_clusters > 0 {
            format!(", {} differ across clusters", self.differs_across_clusters)
        } else {
            String::new()
        };
        format!(
            "{} containers: {} pinned, {} unpinned, {} without record, {} record differs, {} drifted, {} failing policy, {} check errors{across}",
            self.containers,
            self.pinned,
            self.unpinned,
            self.without_record,
            self.record_differs,
            self.drifted,
            self.failing_policy,
            self.errors
        )
    }
}

/// The rows of every container of `pod`, init containers first, then regular, then ephemeral.
pub fn pod_rows(pod: &Pod, owners: &OwnerIndex) -> Vec<Row> {
    let meta = &pod.metadata;
    let chain = owners.chain(meta);
    let own = Link {
        kind: "Pod".to_owned(),
        name: meta.name.clone().unwrap_or_default(),
        pinned: Some(PinnedKind::Pod),
        records: records_of(meta),
        written_by_tagpin: owners.admits(PinnedKind::Pod, None),
    };
    // The top-level owner is the last controller, or the Pod itself.
    let top = chain.last().unwrap_or(&own);
    // The Pod's own record first, then its owners' from the nearest up.
    let sources: Vec<&Link> = std::iter::once(&own).chain(chain.iter()).collect();
    let pull = pull_identity(pod);
    let mut rows = Vec::new();
    for (kind, list, statuses) in container_lists(pod) {
        for (index, (name, image)) in list.into_iter().enumerate() {
            let status = statuses.and_then(|s| s.iter().find(|c| c.name == name));
            let mut row = Row {
                cluster: None,
                namespace: meta.namespace.clone().unwrap_or_default(),
                owner_kind: top.kind.clone(),
                owner_name: top.name.clone(),
                pod: own.name.clone(),
                container: name,
                container_type: kind,
                pinned_digest: ImageReference::parse(&image)
                    .ok()
                    .and_then(|r| r.digest().map(Digest::to_string)),
                image,
                running_digest: status.and_then(running_digest),
                started_at: status.and_then(started_at),
                record_from: None,
                original: None,
                recorded_digest: None,
                resolved_at: None,
                verdict: None,
                rule: None,
                signers: Vec::new(),
                drift: None,
                today: None,
                elsewhere: Vec::new(),
                flags: Vec::new(),
                pull: pull.clone(),
            };
            if let Some((link, record)) = find_record(&sources, kind, index, &row.image) {
                apply_record(&mut row, link, record);
            }
            row.refresh_flags();
            rows.push(row);
        }
    }
    rows
}

/// The Pod's pull secrets and ServiceAccount, as its keychain is built at admission.
fn pull_identity(pod: &Pod) -> PullIdentity {
    let spec = pod.spec.as_ref();
    PullIdentity {
        secrets: spec
            .and_then(|s| s.image_pull_secrets.as_ref())
            .map(|l| l.iter().map(|r| r.name.clone()).collect())
            .unwrap_or_default(),
        service_account: spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".to_owned()),
    }
}

/// A container list of a Pod: its type, (name, image) pairs, and the kubelet's statuses.
type ContainerList<'a> = (
    ContainerType,
    Vec<(String, String)>,
    Option<&'a Vec<ContainerStatus>>,
);

/// Init, regular and ephemeral containers, in that order.
fn container_lists(pod: &Pod) -> [ContainerList<'_>; 3] {
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    [
        (
            ContainerType::Init,
            named(spec.and_then(|s| s.init_containers.as_ref()), |c| {
                (&c.name, &c.image)
            }),
            status.and_then(|s| s.init_container_statuses.as_ref()),
        ),
        (
            ContainerType::Regular,
            named(spec.map(|s| &s.containers), |c| (&c.name, &c.image)),
            status.and_then(|s| s.container_statuses.as_ref()),
        ),
        (
            ContainerType::Ephemeral,
            named(spec.and_then(|s| s.ephemeral_containers.as_ref()), |c| {
                (&c.name, &c.image)
            }),
            status.and_then(|s| s.ephemeral_container_statuses.as_ref()),
        ),
    ]
}

fn named<C>(
    list: Option<&Vec<C>>,
    fields: impl Fn(&C) -> (&String, &Option<String>),
) -> Vec<(String, String)> {
    list.into_iter()
        .flatten()
        .map(|c| {
            let (name, image) = fields(c);
            (name.clone(), image.clone().unwrap_or_default())
        })
        .collect()
}

/// The record of container `index` of `kind`, from the nearest object tagpin writes records
/// on that has one for the same field and the same reference (an owner's newer template is
/// another rollout's record).
fn find_record<'a>(
    sources: &[&'a Link],
    kind: ContainerType,
    index: usize,
    written: &str,
) -> Option<(&'a Link, &'a ImageRecord)> {
    sources
        .iter()
        .filter(|l| l.written_by_tagpin)
        .find_map(|link| {
            let prefix = link.pinned?.pod_spec_path();
            let path = format!("/{}/{}/{index}/image", prefix.join("/"), kind.list());
            link.records
                .iter()
                .find(|r| {
                    r.path == path
                        && (r.original == written || r.original == without_digest(written))
                })
                .map(|r| (*link, r))
        })
}

fn apply_record(row: &mut Row, link: &Link, record: &ImageRecord) {
    row.record_from = Some(format!("{}/{}", link.kind, link.name));
    row.original = Some(record.original.clone());
    row.recorded_digest = record.digest.clone();
    row.resolved_at = record.resolved_at.clone();
    row.verdict = Some(record.verdict.clone());
    row.rule = record.rule.clone();
    row.signers = record.signers.clone();
}

/// `image` without a trailing `@digest`.
fn without_digest(image: &str) -> &str {
    image
        .rsplit_once('@')
        .map(|(base, _)| base)
        .unwrap_or(image)
}

/// The repository digest in a kubelet `imageID` (`docker-pullable://repo@sha256:…`,
/// `repo@sha256:…`); none for an image ID without a repository digest.
pub fn running_digest(status: &ContainerStatus) -> Option<String> {
    let (_, digest) = status.image_id.rsplit_once('@')?;
    Digest::from_str(digest).ok().map(|d| d.to_string())
}

fn started_at(status: &ContainerStatus) -> Option<String> {
    let state = status.state.as_ref()?;
    let time = state
        .running
        .as_ref()
        .and_then(|r| r.started_at.as_ref())
        .or_else(|| {
            state
                .terminated
                .as_ref()
                .and_then(|t| t.started_at.as_ref())
        })?;
    Some(time.0.to_string())
}

/// A row of a bare Pod for other modules' tests.
#[cfg(test)]
pub(crate) fn test_row(namespace: &str, pod: &str, image: &str, running: Option<&str>) -> Row {
    let value = serde_json::json!({
        "metadata": {"name": pod, "namespace": namespace},
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {"containerStatuses": running.map(|d| vec![serde_json::json!({
            "name": "app", "image": image, "imageID": format!("x@{d}"), "ready": true,
            "restartCount": 0, "state": {"running": {"startedAt": "2026-11-30T12:05:00Z"}}})])},
    });
    let pod: Pod = serde_json::from_value(value).unwrap_or_default();
    pod_rows(&pod, &OwnerIndex::default()).remove(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    pub(crate) const A: &str =
        "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    pub(crate) const B: &str =
        "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn record(path: &str, original: &str, digest: &str) -> serde_json::Value {
        json!({"path": path, "original": original, "image": original, "digest": digest,
               "resolvedAt": "2026-11-30T12:00:00Z", "verdict": "verified", "rule": "team",
               "signers": ["sha256:5151"]})
    }

    fn owners_with_deployment(records: serde_json::Value) -> OwnerIndex {
        let mut index = OwnerIndex::default();
        let meta: ObjectMeta = serde_json::from_value(json!({
            "name": "web", "namespace": "shop", "uid": "d1",
            "annotations": {"tagpin.dev/images": records.to_string()},
        }))
        .unwrap();
        index.insert(PinnedKind::Deployment, meta);
        let rs: ObjectMeta = serde_json::from_value(json!({
            "name": "web-1", "namespace": "shop", "uid": "r1",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                 "uid": "d1", "controller": true}],
        }))
        .unwrap();
        index.insert(PinnedKind::ReplicaSet, rs);
        index
    }

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn deployment_pod_takes_the_deployments_record_and_the_kubelets_digest() {
        let owners = owners_with_deployment(json!([
            record(
                "/spec/template/spec/initContainers/0/image",
                "reg/init:1",
                A
            ),
            record("/spec/template/spec/containers/0/image", "reg/app:1.4", A),
        ]));
        let p = pod(json!({
            "metadata": {"name": "web-1-x", "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-1", "uid": "r1", "controller": true}]},
            "spec": {
                "initContainers": [{"name": "init", "image": format!("reg/init:1@{A}")}],
                "containers": [
                    {"name": "app", "image": format!("reg/app:1.4@{A}")},
                    {"name": "side", "image": "reg/side:2"},
                ],
                "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
            },
            "status": {"containerStatuses": [
                {"name": "app", "image": "reg/app:1.4", "imageID": format!("reg/app@{B}"),
                 "ready": true, "restartCount": 0,
                 "state": {"running": {"startedAt": "2026-11-30T12:05:00Z"}}},
                {"name": "side", "image": "reg/side:2", "imageID": "sha256:0123",
                 "ready": true, "restartCount": 0},
            ]},
        }));
        let rows = pod_rows(&p, &owners);
        let names: Vec<_> = rows
            .iter()
            .map(|r| (r.container.as_str(), r.container_type))
            .collect();
        assert_eq!(
            names,
            [
                ("init", ContainerType::Init),
                ("app", ContainerType::Regular),
                ("side", ContainerType::Regular),
                ("debug", ContainerType::Ephemeral),
            ]
        );
        assert!(
            rows.iter()
                .all(|r| r.owner_kind == "Deployment" && r.owner_name == "web")
        );

        let init = &rows[0];
        assert_eq!(init.record_from.as_deref(), Some("Deployment/web"));
        assert_eq!(init.flags, Vec::<Flag>::new());

        let app = &rows[1];
        assert_eq!(app.pinned_digest.as_deref(), Some(A));
        assert_eq!(app.running_digest.as_deref(), Some(B));
        assert_eq!(app.started_at.as_deref(), Some("2026-11-30T12:05:00Z"));
        assert_eq!(app.original.as_deref(), Some("reg/app:1.4"));
        assert_eq!(app.signers, ["sha256:5151"]);
        assert_eq!(app.flags, [Flag::RecordDiffers]);

        // An image ID without a repository digest is no running digest.
        let side = &rows[2];
        assert_eq!(side.running_digest, None);
        assert_eq!(side.flags, [Flag::Unpinned, Flag::NoRecord]);
        assert_eq!(rows[3].flags, [Flag::Unpinned, Flag::NoRecord]);
    }

    #[test]
    fn pods_own_record_wins_and_another_rollouts_record_is_not_taken() {
        // The Deployment moved on to 1.5; this Pod of the old rollout runs 1.4.
        let owners = owners_with_deployment(json!([record(
            "/spec/template/spec/containers/0/image",
            "reg/app:1.5",
            B
        )]));
        let old = pod(json!({
            "metadata": {"name": "web-0-x", "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-1", "uid": "r1", "controller": true}]},
            "spec": {"containers": [{"name": "app", "image": format!("reg/app:1.4@{A}")}]},
        }));
        let rows = pod_rows(&old, &owners);
        assert_eq!(rows[0].record_from, None);
        assert_eq!(rows[0].flags, [Flag::NoRecord]);

        let bare = pod(json!({
            "metadata": {"name": "tool", "namespace": "shop", "annotations": {
                "tagpin.dev/images": json!([record("/spec/containers/0/image", "reg/tool:1", A)]).to_string()}},
            "spec": {"containers": [{"name": "tool", "image": format!("reg/tool:1@{A}")}]},
        }));
        let rows = pod_rows(&bare, &owners);
        assert_eq!(
            (rows[0].owner_kind.as_str(), rows[0].owner_name.as_str()),
            ("Pod", "tool")
        );
        assert_eq!(rows[0].record_from.as_deref(), Some("Pod/tool"));
        assert_eq!(rows[0].resolved_at.as_deref(), Some("2026-11-30T12:00:00Z"));
        assert!(rows[0].flags.is_empty());
    }

    #[test]
    fn forged_record_on_a_deployments_replica_set_is_not_reported() {
        // tagpin never admits a Deployment's ReplicaSet, so it never replaces a record
        // someone wrote there: claiming "verified, signed by X" must not reach the audit.
        let mut owners = OwnerIndex::default();
        let deployment: ObjectMeta = serde_json::from_value(json!({
            "name": "web", "namespace": "shop", "uid": "d1"}))
        .unwrap();
        owners.insert(PinnedKind::Deployment, deployment);
        let forged: ObjectMeta = serde_json::from_value(json!({
            "name": "web-1", "namespace": "shop", "uid": "r1",
            "annotations": {"tagpin.dev/images": json!([record(
                "/spec/template/spec/containers/0/image", "reg/app:1.4", A)]).to_string()},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                 "uid": "d1", "controller": true}],
        }))
        .unwrap();
        owners.insert(PinnedKind::ReplicaSet, forged);
        let p = pod(json!({
            "metadata": {"name": "web-1-x", "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-1", "uid": "r1", "controller": true}]},
            "spec": {"containers": [{"name": "app", "image": format!("reg/app:1.4@{A}")}]},
        }));
        let row = pod_rows(&p, &owners).remove(0);
        assert_eq!(row.record_from, None);
        assert_eq!(row.verdict, None);
        assert!(row.signers.is_empty());
        assert_eq!(row.flags, [Flag::NoRecord]);
    }

    #[test]
    fn tag_to_re_resolve_is_the_original_else_the_written_tag() {
        let owners = OwnerIndex::default();
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": {"containers": [
                {"name": "a", "image": format!("reg/a:1@{A}")},
                {"name": "b", "image": format!("reg/b@{A}")},
                {"name": "c", "image": "reg/c"},
            ]},
        }));
        let rows = pod_rows(&p, &owners);
        let tags: Vec<Option<String>> = rows
            .iter()
            .map(|r| r.tag_reference().map(|t| t.normalized()))
            .collect();
        assert_eq!(
            tags,
            [
                Some("docker.io/reg/a:1".to_owned()),
                None,
                Some("docker.io/reg/c:latest".to_owned())
            ]
        );
    }

    #[test]
    fn drift_and_policy_flags_follow_the_checks_and_errors_are_never_drift() {
        let owners = OwnerIndex::default();
        let p = pod(json!({
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": {"containers": [{"name": "a", "image": format!("reg/a:1@{A}")}]},
        }));
        let mut row = pod_rows(&p, &owners).remove(0);
        let check = |now: Option<&str>, error: Option<&str>| DriftCheck {
            tag: "docker.io/reg/a:1".into(),
            now: now.map(str::to_owned),
            error: error.map(str::to_owned),
        };
        row.drift = Some(check(Some(A), None));
        row.refresh_flags();
        assert!(!row.has(Flag::Drifted));
        row.drift = Some(check(Some(B), None));
        row.refresh_flags();
        assert!(row.has(Flag::Drifted));
        row.drift = Some(check(None, Some("registry reg answered 503")));
        row.refresh_flags();
        assert!(row.has(Flag::DriftError) && !row.has(Flag::Drifted));

        assert!(!row.fails_policy());
        row.verdict = Some("failed".into());
        row.refresh_flags();
        assert!(row.fails_policy() && row.has(Flag::PolicyFailed));
        // Today's verdict wins over the recorded one.
        row.today = Some(PolicyCheck {
            verdict: Some("verified".into()),
            admits: true,
            rule: None,
            reason: None,
            error: None,
        });
        assert!(!row.fails_policy());
        row.today = Some(PolicyCheck {
            verdict: None,
            admits: false,
            rule: None,
            reason: None,
            error: Some("unreachable".into()),
        });
        row.refresh_flags();
        assert!(row.has(Flag::VerifyError) && !row.has(Flag::DeniedToday));

        let summary = Summary::of(std::slice::from_ref(&row));
        assert_eq!(summary.containers, 1);
        assert_eq!(summary.pinned, 1);
        assert_eq!(summary.failing_policy, 1);
        assert_eq!(summary.errors, 1, "errors count containers");
        assert_eq!(
            summary.line(),
            "1 containers: 1 pinned, 0 unpinned, 1 without record, 0 record differs, 0 drifted, 1 failing policy, 1 check errors"
        );
    }
}
