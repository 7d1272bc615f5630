//! The kinds of objects whose pod specs tagpin pins, and where each keeps its pod spec.

use serde::Deserialize;

/// A kind of object whose pod spec tagpin pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum PinnedKind {
    /// `v1/Pod`: `spec`.
    Pod,
    /// `v1/PodTemplate`: `template.spec`.
    PodTemplate,
    /// `apps/v1/Deployment`: `spec.template.spec`.
    Deployment,
    /// `apps/v1/StatefulSet`: `spec.template.spec`.
    StatefulSet,
    /// `apps/v1/DaemonSet`: `spec.template.spec`.
    DaemonSet,
    /// `apps/v1/ReplicaSet`: `spec.template.spec`.
    ReplicaSet,
    /// `v1/ReplicationController`: `spec.template.spec`.
    ReplicationController,
    /// `batch/v1/Job`: `spec.template.spec`.
    Job,
    /// `batch/v1/CronJob`: `spec.jobTemplate.spec.template.spec`.
    CronJob,
}

impl PinnedKind {
    /// Every kind tagpin knows how to pin.
    pub const ALL: [PinnedKind; 9] = [
        Self::Pod,
        Self::PodTemplate,
        Self::Deployment,
        Self::StatefulSet,
        Self::DaemonSet,
        Self::ReplicaSet,
        Self::ReplicationController,
        Self::Job,
        Self::CronJob,
    ];

    /// The kind for an API group and kind name, if tagpin pins it.
    pub fn from_group_kind(group: &str, kind: &str) -> Option<Self> {
        let found = match (group, kind) {
            ("", "Pod") => Self::Pod,
            ("", "PodTemplate") => Self::PodTemplate,
            ("", "ReplicationController") => Self::ReplicationController,
            ("apps", "Deployment") => Self::Deployment,
            ("apps", "StatefulSet") => Self::StatefulSet,
            ("apps", "DaemonSet") => Self::DaemonSet,
            ("apps", "ReplicaSet") => Self::ReplicaSet,
            ("batch", "Job") => Self::Job,
            ("batch", "CronJob") => Self::CronJob,
            _ => return None,
        };
        Some(found)
    }

    /// The kind's name as Kubernetes writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pod => "Pod",
            Self::PodTemplate => "PodTemplate",
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
            Self::ReplicaSet => "ReplicaSet",
            Self::ReplicationController => "ReplicationController",
            Self::Job => "Job",
            Self::CronJob => "CronJob",
        }
    }

    /// JSON object keys from the object's root to its pod spec.
    pub fn pod_spec_path(self) -> &'static [&'static str] {
        match self {
            Self::Pod => &["spec"],
            Self::PodTemplate => &["template", "spec"],
            Self::CronJob => &["spec", "jobTemplate", "spec", "template", "spec"],
            _ => &["spec", "template", "spec"],
        }
    }
}
