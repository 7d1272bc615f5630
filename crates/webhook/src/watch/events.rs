//! Warning Events on the top-level workload: one per distinct finding, named after it, so a
//! second replica or a restarted one finds the Event already there and does not repeat it.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::inventory::Row;

/// The workload an Event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Workload {
    /// Its namespace.
    pub namespace: String,
    /// `Deployment`, `CronJob`, ... (`Pod` for a bare Pod).
    pub kind: String,
    /// Its name.
    pub name: String,
}

impl Workload {
    /// The top-level owner of a row.
    pub fn of(row: &Row) -> Self {
        Self {
            namespace: row.namespace.clone(),
            kind: row.owner_kind.clone(),
            name: row.owner_name.clone(),
        }
    }

    fn api_version(&self) -> &'static str {
        match self.kind.as_str() {
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => "apps/v1",
            "Job" | "CronJob" => "batch/v1",
            _ => "v1",
        }
    }
}

/// One Warning Event to report.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Where it is reported.
    pub workload: Workload,
    /// `TagMoved` or `PolicyViolation`.
    pub reason: &'static str,
    /// What happened, for people.
    pub message: String,
    /// What makes it new: the same key is reported once.
    pub key: String,
}

/// Creates the Events of new findings; remembers what it reported.
pub struct EventSink {
    client: Client,
    instance: String,
    reported: HashSet<String>,
}

impl EventSink {
    /// Reports as `instance` (the replica's identity).
    pub fn new(client: Client, instance: &str) -> Self {
        Self {
            client,
            instance: instance.to_owned(),
            reported: HashSet::new(),
        }
    }

    /// Creates the Event of `finding` unless it exists; true when this call created it.
    pub async fn report(&mut self, finding: &Finding) -> Result<bool, kube::Error> {
        let name = event_name(finding);
        if self.reported.contains(&name) {
            return Ok(false);
        }
        let api: Api<Event> = Api::namespaced(self.client.clone(), &finding.workload.namespace);
        let created = match api
            .create(&PostParams::default(), &self.event(&name, finding))
            .await
        {
            Ok(_) => true,
            Err(kube::Error::Api(e)) if e.code == 409 => false,
            Err(e) => return Err(e),
        };
        self.reported.insert(name);
        Ok(created)
    }

    /// Forgets what is no longer found, so memory follows the cluster, not its history.
    pub fn keep_only(&mut self, current: &[Finding]) {
        let names: HashSet<String> = current.iter().map(event_name).collect();
        self.reported.retain(|n| names.contains(n));
    }

    fn event(&self, name: &str, finding: &Finding) -> Event {
        let now = Timestamp::now();
        let w = &finding.workload;
        Event {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(w.namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(w.api_version().to_owned()),
                kind: Some(w.kind.clone()),
                name: Some(w.name.clone()),
                namespace: Some(w.namespace.clone()),
                ..ObjectReference::default()
            },
            type_: Some("Warning".to_owned()),
            reason: Some(finding.reason.to_owned()),
            message: Some(finding.message.clone()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            action: Some("Check".to_owned()),
            reporting_component: Some("tagpin.dev/watch".to_owned()),
            reporting_instance: Some(self.instance.clone()),
            source: Some(EventSource {
                component: Some("tagpin-watch".to_owned()),
                ..EventSource::default()
            }),
            ..Event::default()
        }
    }
}

/// `<workload>.tagpin-<hash of the finding>`: the same finding always gets the same name.
/// The std hasher is fixed within one build, and every replica runs the same build.
fn event_name(finding: &Finding) -> String {
    let mut hasher = DefaultHasher::new();
    (finding.reason, &finding.workload, &finding.key).hash(&mut hasher);
    let prefix: String = finding.workload.name.chars().take(200).collect();
    format!("{prefix}.tagpin-{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(key: &str) -> Finding {
        Finding {
            workload: Workload {
                namespace: "ns".to_owned(),
                kind: "Deployment".to_owned(),
                name: "web".to_owned(),
            },
            reason: "TagMoved",
            message: String::new(),
            key: key.to_owned(),
        }
    }

    #[test]
    fn the_same_finding_has_the_same_name_and_a_new_one_another() {
        assert_eq!(event_name(&finding("a")), event_name(&finding("a")));
        assert_ne!(event_name(&finding("a")), event_name(&finding("b")));
        assert!(event_name(&finding("a")).starts_with("web.tagpin-"));
    }
}
