//! The config's `pin:` section: custom resources `tagpin pin` pins, named by kustomize-style
//! field specs (group, version, kind and a `/`-separated path that steps through lists), to
//! a pod spec (searched with the webhook's own field finder) or to an image string.

use json_patch::jsonptr::PointerBuf;
use serde::Deserialize;
use serde_json::Value;

use crate::admission::fields::{ImageField, pod_spec_image_fields};

/// What `tagpin pin` pins besides the kinds the webhook pins.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PinConfig {
    /// Custom resources and where their images are.
    pub custom_resources: Vec<FieldSpec>,
}

/// One custom resource kind and where its images are.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldSpec {
    /// API group (`argoproj.io`); empty for the core group.
    #[serde(default)]
    pub group: String,
    /// API version (`v1alpha1`); any version when absent.
    #[serde(default)]
    pub version: Option<String>,
    /// Kind (`Rollout`).
    pub kind: String,
    /// Path to a pod spec (`spec/template/spec`): its containers, init containers, ephemeral
    /// containers and image volumes are pinned, as the webhook pins a Pod's.
    #[serde(default)]
    pub pod_spec: Option<String>,
    /// Path to an image string (`spec/steps/image`).
    #[serde(default)]
    pub image: Option<String>,
}

impl PinConfig {
    /// Checks that every spec names exactly one of `podSpec` and `image`.
    pub fn check(&self) -> Result<(), String> {
        for (i, spec) in self.custom_resources.iter().enumerate() {
            if spec.pod_spec.is_some() == spec.image.is_some() {
                return Err(format!(
                    "pin.customResources[{i}] ({}): set exactly one of podSpec and image",
                    spec.kind
                ));
            }
            if spec.kind.is_empty() {
                return Err(format!("pin.customResources[{i}]: kind is empty"));
            }
        }
        Ok(())
    }

    /// The image fields of `object` (of `api_version` and `kind`) by every spec matching it.
    pub fn image_fields(&self, api_version: &str, kind: &str, object: &Value) -> Vec<ImageField> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let mut fields = Vec::new();
        for spec in &self.custom_resources {
            let matches = spec.kind == kind
                && spec.group == group
                && spec.version.as_deref().is_none_or(|v| v == version);
            if !matches {
                continue;
            }
            if let Some(path) = &spec.pod_spec {
                for (tokens, pod_spec) in walk(object, path) {
                    let base = PointerBuf::from_tokens(tokens.iter().map(String::as_str));
                    fields.extend(pod_spec_image_fields(pod_spec, &base));
                }
            }
            if let Some(path) = &spec.image {
                for (tokens, image) in walk(object, path) {
                    fields.push(ImageField {
                        pointer: PointerBuf::from_tokens(tokens.iter().map(String::as_str)),
                        written: image.as_str().unwrap_or_default().to_owned(),
                        list: "containers",
                        name: None,
                    });
                }
            }
        }
        fields
    }
}

/// Every value at `path` in `object`, with the tokens of its JSON pointer; lists on the
/// way are stepped through, each item in turn.
fn walk<'a>(object: &'a Value, path: &str) -> Vec<(Vec<String>, &'a Value)> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let mut found = Vec::new();
    step(object, &segments, Vec::new(), &mut found);
    found
}

fn step<'a>(
    value: &'a Value,
    segments: &[&str],
    tokens: Vec<String>,
    found: &mut Vec<(Vec<String>, &'a Value)>,
) {
    if let Value::Array(items) = value
        && !segments.is_empty()
    {
        for (i, item) in items.iter().enumerate() {
            let mut tokens = tokens.clone();
            tokens.push(i.to_string());
            step(item, segments, tokens, found);
        }
        return;
    }
    let Some((first, rest)) = segments.split_first() else {
        if !value.is_null() {
            found.push((tokens, value));
        }
        return;
    };
    if let Some(child) = value.get(*first) {
        let mut tokens = tokens;
        tokens.push((*first).to_owned());
        step(child, rest, tokens, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pointers(config: &PinConfig, api_version: &str, kind: &str, object: &Value) -> Vec<String> {
        config
            .image_fields(api_version, kind, object)
            .iter()
            .map(|f| format!("{}={}", f.pointer, f.written))
            .collect()
    }

    #[test]
    fn pod_specs_and_image_paths_step_through_lists() {
        let config = PinConfig {
            custom_resources: vec![
                FieldSpec {
                    group: "tekton.dev".into(),
                    version: None,
                    kind: "Task".into(),
                    pod_spec: None,
                    image: Some("spec/steps/image".into()),
                },
                FieldSpec {
                    group: "argoproj.io".into(),
                    version: Some("v1alpha1".into()),
                    kind: "Rollout".into(),
                    pod_spec: Some("spec/template/spec".into()),
                    image: None,
                },
            ],
        };
        let task =
            json!({"spec": {"steps": [{"image": "a"}, {"name": "no-image"}, {"image": "b"}]}});
        assert_eq!(
            pointers(&config, "tekton.dev/v1", "Task", &task),
            ["/spec/steps/0/image=a", "/spec/steps/2/image=b"]
        );
        let rollout = json!({"spec": {"template": {"spec": {"containers": [{"image": "c"}], "initContainers": [{"image": "d"}]}}}});
        assert_eq!(
            pointers(&config, "argoproj.io/v1alpha1", "Rollout", &rollout),
            [
                "/spec/template/spec/containers/0/image=c",
                "/spec/template/spec/initContainers/0/image=d"
            ]
        );
        assert!(pointers(&config, "argoproj.io/v1", "Rollout", &rollout).is_empty());
        assert!(pointers(&config, "other.dev/v1", "Task", &task).is_empty());
    }

    #[test]
    fn a_spec_names_exactly_one_target() {
        let both = PinConfig {
            custom_resources: vec![FieldSpec {
                group: String::new(),
                version: None,
                kind: "X".into(),
                pod_spec: Some("a".into()),
                image: Some("b".into()),
            }],
        };
        assert!(both.check().unwrap_err().contains("exactly one"));
        assert!(PinConfig::default().check().is_ok());
    }
}
