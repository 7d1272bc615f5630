//! Which fields of a document tagpin pins: the webhook's own field finder, applied to every
//! object of the document (the items of a `List` included).

use serde_json::Value;

use crate::admission::fields::{image_fields, pinned_controller};
use crate::config::{Config, PinnedKind};

use super::source::Document;

/// One image field of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Index of the document in its stream.
    pub document: usize,
    /// JSON pointer to the field from the document's root.
    pub pointer: String,
    /// JSON pointer to the object holding the field (not empty for `List` items).
    pub object: String,
    /// JSON pointer to the field from its object, as the webhook records it.
    pub path: String,
    /// The kind of the object holding the field.
    pub kind: String,
    /// The image as written (empty when the field is not a string).
    pub written: String,
}

/// Every image field of `doc` that the webhook would pin, in document order.
pub fn find_images(config: &Config, doc: &Document) -> Vec<Found> {
    let mut found = Vec::new();
    visit(config, doc.index, &doc.value, "", &mut found);
    found
}

fn visit(config: &Config, document: usize, object: &Value, at: &str, found: &mut Vec<Found>) {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if let Some(items) = object.get("items").and_then(Value::as_array)
        && kind.ends_with("List")
    {
        // kubectl applies each item of a List on its own.
        for (i, item) in items.iter().enumerate() {
            visit(config, document, item, &format!("{at}/items/{i}"), found);
        }
        return;
    }
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let fields = match PinnedKind::from_group_kind(group, kind) {
        Some(pinned) if !config.pins(pinned) => return,
        Some(pinned) if pinned_controller(config, Some(pinned), object).is_some() => return,
        Some(pinned) => image_fields(pinned, object),
        None => config.pin.image_fields(api_version, kind, object),
    };
    for field in fields {
        let path = field.pointer.to_string();
        let pointer = format!("{at}{path}");
        found.push(Found {
            document,
            pointer,
            object: at.to_owned(),
            path,
            kind: kind.to_owned(),
            written: field.written,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pin::source::parse_stream;

    fn pointers(config: &Config, text: &str) -> Vec<String> {
        parse_stream(text)
            .unwrap()
            .iter()
            .flat_map(|d| find_images(config, d))
            .map(|f| format!("{}:{}={}", f.document, f.pointer, f.written))
            .collect()
    }

    #[test]
    fn finds_images_of_every_pinned_kind_and_list_items() {
        let text = "\
apiVersion: batch/v1
kind: CronJob
spec: {jobTemplate: {spec: {template: {spec: {containers: [{image: a}]}}}}}
---
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  spec: {template: {spec: {initContainers: [{image: b}], volumes: [{image: {reference: c}}]}}}
- apiVersion: v1
  kind: ConfigMap
  data: {image: d}
---
apiVersion: example.com/v1
kind: Deployment
spec: {template: {spec: {containers: [{image: e}]}}}
";
        assert_eq!(
            pointers(&Config::default(), text),
            [
                "0:/spec/jobTemplate/spec/template/spec/containers/0/image=a",
                "1:/items/0/spec/template/spec/initContainers/0/image=b",
                "1:/items/0/spec/template/spec/volumes/0/image/reference=c",
            ]
        );
    }

    #[test]
    fn skips_kinds_the_config_does_not_pin_and_controlled_objects() {
        let config = Config {
            kinds: vec![
                PinnedKind::Pod,
                PinnedKind::ReplicaSet,
                PinnedKind::Deployment,
            ],
            ..Config::default()
        };
        let text = "\
apiVersion: batch/v1
kind: Job
spec: {template: {spec: {containers: [{image: a}]}}}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {ownerReferences: [{apiVersion: apps/v1, kind: Deployment, name: x, uid: u, controller: true}]}
spec: {template: {spec: {containers: [{image: b}]}}}
---
apiVersion: v1
kind: Pod
spec: {containers: [{image: c}]}
";
        assert_eq!(pointers(&config, text), ["2:/spec/containers/0/image=c"]);
    }
}
