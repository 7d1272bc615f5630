//! Finding every image field of a pod spec, wherever the pod spec sits in the object.

use json_patch::jsonptr::PointerBuf;
use serde_json::Value;

use crate::config::{Config, PinnedKind};

/// Which image fields of a pod spec a request may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldSet {
    /// Containers, init containers, ephemeral containers and image volumes.
    All,
    /// Containers and init containers: the only images a plain Pod update may change.
    PodUpdate,
    /// Only ephemeral containers (the `pods/ephemeralcontainers` subresource).
    EphemeralOnly,
}

impl FieldSet {
    /// True when a request of this set may change `field`.
    pub fn may_change(self, field: &ImageField) -> bool {
        match self {
            Self::All => true,
            Self::PodUpdate => matches!(field.list, "containers" | "initContainers"),
            Self::EphemeralOnly => field.list == "ephemeralContainers",
        }
    }
}

/// One image field of the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageField {
    /// JSON pointer to the field from the object's root.
    pub pointer: PointerBuf,
    /// The image exactly as written in the field.
    pub written: String,
    /// The pod spec list holding it: `containers`, `initContainers`,
    /// `ephemeralContainers` or `volumes`.
    pub list: &'static str,
    /// The name of its container or volume, when it has one.
    pub name: Option<String>,
}

impl ImageField {
    /// What identifies the field across an update: its list and its container's or
    /// volume's name (unique within a pod spec), else its position.
    pub fn identity(&self) -> (&'static str, String) {
        match &self.name {
            Some(name) => (self.list, format!("name:{name}")),
            None => (self.list, format!("at:{}", self.pointer)),
        }
    }
}

fn name_of(item: &Value) -> Option<String> {
    item.get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Every image field of `object`'s pod spec, in document order.
///
/// A field whose value is not a string is reported with an empty `written`, so that
/// it is rejected as an invalid reference instead of being skipped silently.
pub fn image_fields(kind: PinnedKind, object: &Value) -> Vec<ImageField> {
    let path = kind.pod_spec_path();
    let Some(spec) = path.iter().try_fold(object, |v, key| v.get(*key)) else {
        return Vec::new();
    };
    pod_spec_image_fields(spec, &PointerBuf::from_tokens(path.iter().copied()))
}

/// Every image field of the pod spec `spec`, which sits at `base` in its object.
pub fn pod_spec_image_fields(spec: &Value, base: &PointerBuf) -> Vec<ImageField> {
    let mut fields = Vec::new();
    for list in CONTAINER_LISTS {
        let Some(containers) = spec.get(list).and_then(Value::as_array) else {
            continue;
        };
        for (i, container) in containers.iter().enumerate() {
            let Some(image) = container.get("image") else {
                // Containers without an image fail API validation; nothing to pin.
                continue;
            };
            let mut pointer = base.clone();
            pointer.push_back(list);
            pointer.push_back(i);
            pointer.push_back("image");
            fields.push(ImageField {
                pointer,
                written: image.as_str().unwrap_or_default().to_owned(),
                list,
                name: name_of(container),
            });
        }
    }
    if let Some(volumes) = spec.get("volumes").and_then(Value::as_array) {
        for (i, volume) in volumes.iter().enumerate() {
            let Some(reference) = volume.get("image").and_then(|img| img.get("reference")) else {
                continue;
            };
            let mut pointer = base.clone();
            pointer.push_back("volumes");
            pointer.push_back(i);
            pointer.push_back("image");
            pointer.push_back("reference");
            fields.push(ImageField {
                pointer,
                written: reference.as_str().unwrap_or_default().to_owned(),
                list: "volumes",
                name: name_of(volume),
            });
        }
    }
    fields
}

/// The pod spec's `imagePullSecrets` names and its ServiceAccount name (default `default`).
pub fn pull_identity(kind: PinnedKind, object: &Value) -> (Vec<String>, String) {
    let spec = kind
        .pod_spec_path()
        .iter()
        .try_fold(object, |v, key| v.get(*key));
    let secrets = spec
        .and_then(|s| s.get("imagePullSecrets"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|s| s.get("name").and_then(Value::as_str))
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let service_account = spec
        .and_then(|s| {
            s.get("serviceAccountName")
                .or_else(|| s.get("serviceAccount"))
        })
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_owned();
    (secrets, service_account)
}

/// The kind of the object's controller, when `config` pins that kind's template itself:
/// such objects are left alone, since their owner's template is pinned instead.
pub fn pinned_controller(
    config: &Config,
    kind: Option<PinnedKind>,
    object: &Value,
) -> Option<&'static str> {
    if kind == Some(PinnedKind::Pod) {
        return None;
    }
    let owners = object.get("metadata")?.get("ownerReferences")?.as_array()?;
    owners.iter().find_map(|o| {
        if o.get("controller").and_then(Value::as_bool) != Some(true) {
            return None;
        }
        let api_version = o.get("apiVersion").and_then(Value::as_str)?;
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        let owner = PinnedKind::from_group_kind(group, o.get("kind").and_then(Value::as_str)?)?;
        config.pins(owner).then(|| owner.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pointers(fields: &[ImageField]) -> Vec<String> {
        fields.iter().map(|f| f.pointer.to_string()).collect()
    }

    fn pod_spec() -> Value {
        json!({
            "containers": [{"name": "a", "image": "nginx:1.25"}, {"name": "b", "image": "redis"}],
            "initContainers": [{"name": "i", "image": "busybox"}],
            "ephemeralContainers": [{"name": "e", "image": "debug:1"}],
            "volumes": [{"name": "v", "image": {"reference": "data:1"}}, {"name": "cm", "configMap": {}}],
        })
    }

    #[test]
    fn finds_every_field_of_a_pod() {
        let pod = json!({"spec": pod_spec()});
        let f = image_fields(PinnedKind::Pod, &pod);
        assert_eq!(
            pointers(&f),
            [
                "/spec/containers/0/image",
                "/spec/containers/1/image",
                "/spec/initContainers/0/image",
                "/spec/ephemeralContainers/0/image",
                "/spec/volumes/0/image/reference",
            ]
        );
        assert_eq!(f[4].written, "data:1");
    }

    #[test]
    fn finds_pod_spec_of_every_kind() {
        let spec = json!({"containers": [{"name": "a", "image": "nginx"}]});
        for kind in PinnedKind::ALL {
            let mut object = json!({});
            let mut at = &mut object;
            for key in kind.pod_spec_path() {
                at = &mut at[*key];
            }
            *at = spec.clone();
            let f = image_fields(kind, &object);
            let expected = format!("/{}/containers/0/image", kind.pod_spec_path().join("/"));
            assert_eq!(pointers(&f), [expected], "{kind:?}");
        }
    }

    #[test]
    fn each_set_may_change_only_its_fields() {
        let pod = json!({"spec": pod_spec()});
        let f = image_fields(PinnedKind::Pod, &pod);
        let may = |set: FieldSet| -> Vec<String> {
            let changeable: Vec<ImageField> =
                f.iter().filter(|x| set.may_change(x)).cloned().collect();
            pointers(&changeable)
        };
        assert_eq!(may(FieldSet::All).len(), 5);
        assert_eq!(
            may(FieldSet::PodUpdate),
            [
                "/spec/containers/0/image",
                "/spec/containers/1/image",
                "/spec/initContainers/0/image",
            ]
        );
        assert_eq!(
            may(FieldSet::EphemeralOnly),
            ["/spec/ephemeralContainers/0/image"]
        );
    }

    #[test]
    fn fields_are_identified_by_list_and_name() {
        let pod = json!({"spec": pod_spec()});
        let f = image_fields(PinnedKind::Pod, &pod);
        assert_eq!(f[1].identity(), ("containers", "name:b".to_owned()));
        assert_eq!(f[4].identity(), ("volumes", "name:v".to_owned()));
        let unnamed = json!({"spec": {"containers": [{"image": "x"}]}});
        let f = image_fields(PinnedKind::Pod, &unnamed);
        assert_eq!(
            f[0].identity(),
            ("containers", "at:/spec/containers/0/image".to_owned())
        );
    }

    #[test]
    fn missing_spec_has_no_fields() {
        assert!(image_fields(PinnedKind::CronJob, &json!({"spec": {}})).is_empty());
    }

    #[test]
    fn reads_pull_secrets_and_service_account() {
        let pod = json!({"spec": {"imagePullSecrets": [{"name": "a"}, {"name": ""}, {"name": "b"}], "serviceAccountName": "builder"}});
        assert_eq!(
            pull_identity(PinnedKind::Pod, &pod),
            (vec!["a".to_owned(), "b".to_owned()], "builder".to_owned())
        );
        assert_eq!(
            pull_identity(PinnedKind::Pod, &json!({"spec": {}})),
            (vec![], "default".to_owned())
        );
    }
}
