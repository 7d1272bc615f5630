//! `--krm`: tagpin as a KRM function (the kustomize and kpt function specification): a
//! `ResourceList` on stdin, the same list with its items pinned and a `results` entry for
//! each image field or failure on stdout.

use serde::Serialize;
use serde_json::Value;

use super::Outcome;
use super::report::ImageReport;
use super::source::{self, Document};

/// Why the input is not a `ResourceList`, or the output cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum KrmError {
    /// Not one YAML document of kind `ResourceList`.
    #[error("a KRM function reads one ResourceList (config.kubernetes.io/v1) on stdin: {0}")]
    NotAResourceList(String),
    /// The output could not be serialized.
    #[error("cannot write the ResourceList: {0}")]
    Write(String),
}

/// One entry of the `results` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KrmResult {
    /// What happened, naming the image.
    pub message: String,
    /// `info` for a pinned field, `error` for a refused one.
    pub severity: &'static str,
    /// The object holding the field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_ref: Option<ResourceRef>,
    /// The field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<FieldRef>,
}

/// The object a result is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    /// `group/version` or `version`.
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace, when set.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// The field a result is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldRef {
    /// Dotted path from the object (`spec.containers[0].image`).
    pub path: String,
}

/// Checks that `text` is one `ResourceList` document and returns it.
pub fn parse(text: &str) -> Result<Document, KrmError> {
    let docs = source::parse_stream(text).map_err(|e| KrmError::NotAResourceList(e.to_string()))?;
    let mut docs = docs.into_iter().filter(|d| !d.value.is_null());
    let (Some(doc), None) = (docs.next(), docs.next()) else {
        return Err(KrmError::NotAResourceList(
            "expected exactly one document".into(),
        ));
    };
    if doc.value.get("kind").and_then(Value::as_str) != Some("ResourceList") {
        return Err(KrmError::NotAResourceList(
            "its kind is not ResourceList".into(),
        ));
    }
    Ok(doc)
}

/// The `results` of a run over the `ResourceList` `list`.
pub fn results(list: &Value, outcome: &Outcome) -> Vec<KrmResult> {
    let mut results: Vec<KrmResult> = outcome.images.iter().map(|i| result(list, i)).collect();
    // Failures not tied to one field (e.g. an annotation that cannot be written).
    for problem in &outcome.problems {
        let of_a_field = outcome
            .images
            .iter()
            .any(|i| i.error.is_some() && problem.starts_with(&i.location()));
        if !of_a_field {
            results.push(KrmResult {
                message: problem.clone(),
                severity: "error",
                resource_ref: None,
                field: None,
            });
        }
    }
    results
}

fn result(list: &Value, image: &ImageReport) -> KrmResult {
    let (item, path) = split_item(&image.field);
    let object = item.and_then(|i| list.get("items")?.get(i));
    let message = match (&image.error, &image.pinned) {
        (Some(e), _) => format!("{}: {e}", image.original),
        (None, Some(p)) if *p != image.original => format!("pinned {} to {p}", image.original),
        _ => format!("{} is pinned", image.original),
    };
    KrmResult {
        message,
        severity: if image.error.is_some() {
            "error"
        } else {
            "info"
        },
        resource_ref: object.map(resource_ref),
        field: Some(FieldRef { path: dotted(path) }),
    }
}

/// The item index and the pointer inside the item of `/items/N/...`.
fn split_item(pointer: &str) -> (Option<usize>, &str) {
    let Some(rest) = pointer.strip_prefix("/items/") else {
        return (None, pointer);
    };
    let (index, path) = rest.split_once('/').unwrap_or((rest, ""));
    (index.parse().ok(), path)
}

fn resource_ref(object: &Value) -> ResourceRef {
    let text = |pointer: &str| {
        object
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    ResourceRef {
        api_version: text("/apiVersion"),
        kind: text("/kind"),
        name: text("/metadata/name"),
        namespace: text("/metadata/namespace"),
    }
}

/// `spec/containers/0/image` as `spec.containers[0].image`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.split('/').filter(|t| !t.is_empty()) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if token.bytes().all(|b| b.is_ascii_digit()) {
            out.push('[');
            out.push_str(&token);
            out.push(']');
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        }
    }
    out
}

/// `text` (the pinned list, or the input when refused) with `results` set: appended as a
/// block when the list has none, else the whole list is written anew with the results of
/// earlier functions kept first.
pub fn with_results(text: &str, results: &[KrmResult]) -> Result<String, KrmError> {
    let doc = parse(text)?;
    let write_error = |e: &dyn std::fmt::Display| KrmError::Write(e.to_string());
    match doc.value.get("results") {
        None => {
            let mut out = text.to_owned();
            if !out.ends_with('\n') {
                out.push('\n');
            }
            if results.is_empty() {
                out.push_str("results: []\n");
            } else {
                out.push_str("results:\n");
                out.push_str(&serde_norway::to_string(results).map_err(|e| write_error(&e))?);
            }
            Ok(out)
        }
        Some(earlier) => {
            let mut list = doc.value.clone();
            let mut all = earlier.as_array().cloned().unwrap_or_default();
            let ours = serde_json::to_value(results).map_err(|e| write_error(&e))?;
            all.extend(ours.as_array().cloned().unwrap_or_default());
            list["results"] = Value::Array(all);
            serde_norway::to_string(&list).map_err(|e| write_error(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_dotted_and_items_split() {
        assert_eq!(
            split_item("/items/3/spec/containers/0/image"),
            (Some(3), "spec/containers/0/image")
        );
        assert_eq!(
            dotted("spec/containers/0/image"),
            "spec.containers[0].image"
        );
        assert_eq!(
            dotted("metadata/annotations/a~1b"),
            "metadata.annotations.a/b"
        );
    }

    #[test]
    fn accepts_only_one_resource_list() {
        assert!(
            parse("apiVersion: config.kubernetes.io/v1\nkind: ResourceList\nitems: []\n").is_ok()
        );
        assert!(parse("kind: List\nitems: []\n").is_err());
        assert!(parse("kind: ResourceList\n---\nkind: ResourceList\n").is_err());
    }

    #[test]
    fn results_are_appended_or_merged() {
        let r = KrmResult {
            message: "m".into(),
            severity: "info",
            resource_ref: None,
            field: None,
        };
        let out = with_results("kind: ResourceList\nitems: []", std::slice::from_ref(&r)).unwrap();
        assert_eq!(
            out,
            "kind: ResourceList\nitems: []\nresults:\n- message: m\n  severity: info\n"
        );
        let out = with_results(
            "kind: ResourceList\nitems: []\nresults: [{message: x}]\n",
            &[r],
        )
        .unwrap();
        let docs = source::parse_stream(&out).unwrap();
        assert_eq!(docs[0].value["results"][0]["message"], "x");
        assert_eq!(docs[0].value["results"][1]["message"], "m");
    }
}
