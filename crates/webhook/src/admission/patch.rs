//! JSON patch operations for pinned images and tagpin's annotations.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::{Map, Value};

use super::record::{ANNOTATION_PREFIX, IMAGES_ANNOTATION};

/// Replaces the image at `pointer` with `pinned`.
pub fn replace_image(pointer: PointerBuf, pinned: &str) -> PatchOperation {
    PatchOperation::Replace(ReplaceOperation {
        path: pointer,
        value: Value::String(pinned.to_owned()),
    })
}

/// The object's annotations that tagpin owns.
pub fn incoming_tagpin_annotations(object: &Value) -> Vec<(String, Value)> {
    annotations(object)
        .map(|map| {
            map.iter()
                .filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn annotations(object: &Value) -> Option<&Map<String, Value>> {
    object.get("metadata")?.get("annotations")?.as_object()
}

/// Operations that leave exactly `desired` as `tagpin.dev/images` (or no such annotation
/// when `None`) and remove every other incoming `tagpin.dev/` annotation.
pub fn annotation_ops(object: &Value, desired: Option<&str>) -> Vec<PatchOperation> {
    let mut ops = Vec::new();
    let Some(existing) = annotations(object) else {
        if let Some(value) = desired {
            let mut map = Map::new();
            map.insert(
                IMAGES_ANNOTATION.to_owned(),
                Value::String(value.to_owned()),
            );
            let (path, value) = if object.get("metadata").is_some_and(Value::is_object) {
                (
                    PointerBuf::from_tokens(["metadata", "annotations"]),
                    Value::Object(map),
                )
            } else {
                let mut metadata = Map::new();
                metadata.insert("annotations".to_owned(), Value::Object(map));
                (
                    PointerBuf::from_tokens(["metadata"]),
                    Value::Object(metadata),
                )
            };
            ops.push(PatchOperation::Add(AddOperation { path, value }));
        }
        return ops;
    };
    for key in existing.keys() {
        let keep = key == IMAGES_ANNOTATION && desired.is_some();
        if key.starts_with(ANNOTATION_PREFIX) && !keep {
            ops.push(PatchOperation::Remove(RemoveOperation {
                path: PointerBuf::from_tokens(["metadata", "annotations", key.as_str()]),
            }));
        }
    }
    if let Some(value) = desired
        && existing.get(IMAGES_ANNOTATION).and_then(Value::as_str) != Some(value)
    {
        // `add` on an existing member replaces it (RFC 6902 4.1).
        ops.push(PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(["metadata", "annotations", IMAGES_ANNOTATION]),
            value: Value::String(value.to_owned()),
        }));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn apply(mut object: Value, ops: Vec<PatchOperation>) -> Value {
        json_patch::patch(&mut object, &json_patch::Patch(ops)).unwrap();
        object
    }

    #[test]
    fn adds_the_whole_map_when_annotations_are_absent() {
        let obj = json!({"metadata": {"name": "p"}});
        let out = apply(obj.clone(), annotation_ops(&obj, Some("[]")));
        assert_eq!(
            out["metadata"]["annotations"],
            json!({"tagpin.dev/images": "[]"})
        );
        let bare = json!({"spec": {}});
        let out = apply(bare.clone(), annotation_ops(&bare, Some("[]")));
        assert_eq!(out["metadata"]["annotations"]["tagpin.dev/images"], "[]");
    }

    #[test]
    fn replaces_forged_and_removes_other_tagpin_annotations() {
        let obj = json!({"metadata": {"annotations": {
            "tagpin.dev/images": "forged",
            "tagpin.dev/verified": "true",
            "team": "a",
        }}});
        let out = apply(obj.clone(), annotation_ops(&obj, Some("[]")));
        assert_eq!(
            out["metadata"]["annotations"],
            json!({"tagpin.dev/images": "[]", "team": "a"})
        );
        let out = apply(obj.clone(), annotation_ops(&obj, None));
        assert_eq!(out["metadata"]["annotations"], json!({"team": "a"}));
    }

    #[test]
    fn no_ops_when_already_as_desired() {
        let obj = json!({"metadata": {"annotations": {"tagpin.dev/images": "[]"}}});
        assert!(annotation_ops(&obj, Some("[]")).is_empty());
        let plain = json!({"metadata": {"annotations": {"team": "a"}}});
        assert!(annotation_ops(&plain, None).is_empty());
    }
}
