//! What a request changes: each image field of the object against the stored object.
//!
//! A field is matched with the stored field of the same container (or volume) name in the
//! same list. Only a field whose written image differs from its stored one is looked up
//! and verified; the others never reach a registry, so updates that leave images alone
//! (labels, annotations, finalizers, replicas) never depend on one.

use std::collections::HashMap;

use tagpin_resolver::ImageReference;

use super::fields::{FieldSet, ImageField};

/// The stored field a field of the request is matched with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its JSON pointer in the stored object (where its record says it is).
    pub path: String,
    /// Its image as stored.
    pub written: String,
}

/// What tagpin does with one image field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// New, or another image than stored: pinned and verified as on creation.
    Changed,
    /// The stored image: left alone, with no registry call, and its record kept.
    Kept(Stored),
    /// The tag of the stored `tag@digest`, written again (`kubectl apply` of the original
    /// manifest sends the tag it names): the stored pin is written back and its record kept,
    /// so re-applying a manifest never re-pins, nor moves a Pod, to where the tag has moved.
    Restored(Stored),
    /// Another image in a field this request cannot change (a Pod's volumes and, outside
    /// the subresource, its ephemeral containers): not looked at; the API server refuses
    /// (plain Pod update) or drops (ephemeral containers subresource) the change itself.
    Frozen,
}

/// Classifies each of `fields` against the stored object's `old` fields (`None` on CREATE,
/// where every field is new), for a request that may change the fields of `set`.
pub fn classify(fields: &[ImageField], old: Option<&[ImageField]>, set: FieldSet) -> Vec<Change> {
    let old: HashMap<_, &ImageField> = old
        .unwrap_or_default()
        .iter()
        .map(|f| (f.identity(), f))
        .collect();
    fields
        .iter()
        .map(|field| {
            let stored = old.get(&field.identity()).map(|o| Stored {
                path: o.pointer.to_string(),
                written: o.written.clone(),
            });
            match stored {
                Some(s) if s.written == field.written => Change::Kept(s),
                Some(s) if is_pin_of(&s.written, &field.written) => Change::Restored(s),
                _ if !set.may_change(field) => Change::Frozen,
                _ => Change::Changed,
            }
        })
        .collect()
}

/// True when `stored` is `written@<digest>` and `written` carries no digest of its own.
fn is_pin_of(stored: &str, written: &str) -> bool {
    let Ok(pinned) = ImageReference::parse(stored) else {
        return false;
    };
    let Some(digest) = pinned.digest() else {
        return false;
    };
    ImageReference::parse(written).is_ok_and(|w| w.digest().is_none())
        && stored == format!("{written}@{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::fields::image_fields;
    use crate::config::PinnedKind;
    use serde_json::json;

    const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn fields(containers: serde_json::Value) -> Vec<ImageField> {
        image_fields(
            PinnedKind::Pod,
            &json!({"spec": {"containers": containers}}),
        )
    }

    #[test]
    fn compares_each_field_with_the_stored_one_of_the_same_name() {
        let old = fields(json!([
            {"name": "a", "image": format!("app:1@{D}")},
            {"name": "b", "image": format!("db:1@{D}")},
            {"name": "c", "image": format!("web:1@{D}")},
        ]));
        // `b` moved to the front, `c` was re-applied by tag, `a` got a new tag, `d` is new.
        let new = fields(json!([
            {"name": "b", "image": format!("db:1@{D}")},
            {"name": "a", "image": "app:2"},
            {"name": "c", "image": "web:1"},
            {"name": "d", "image": format!("web:1@{D}")},
        ]));
        let changes = classify(&new, Some(&old), FieldSet::All);
        assert_eq!(
            changes[0],
            Change::Kept(Stored {
                path: "/spec/containers/1/image".into(),
                written: format!("db:1@{D}")
            })
        );
        assert_eq!(changes[1], Change::Changed);
        assert_eq!(
            changes[2],
            Change::Restored(Stored {
                path: "/spec/containers/2/image".into(),
                written: format!("web:1@{D}")
            })
        );
        assert_eq!(changes[3], Change::Changed);
    }

    #[test]
    fn only_the_same_tag_restores_a_pin() {
        assert!(is_pin_of(&format!("app:1@{D}"), "app:1"));
        assert!(is_pin_of(&format!("app@{D}"), "app"));
        assert!(!is_pin_of(&format!("app:1@{D}"), "app:2"));
        assert!(!is_pin_of(&format!("app:1@{D}"), "app"));
        assert!(!is_pin_of(&format!("registry.example/app:1@{D}"), "app:1"));
        assert!(!is_pin_of("app:1", "app:1"));
        assert!(!is_pin_of(&format!("app:1@{D}@{D}"), &format!("app:1@{D}")));
    }

    #[test]
    fn creation_changes_everything_and_frozen_fields_are_not_looked_at() {
        let new = fields(json!([{"name": "a", "image": "app:1"}]));
        assert_eq!(classify(&new, None, FieldSet::All), [Change::Changed]);
        assert_eq!(
            classify(&new, None, FieldSet::EphemeralOnly),
            [Change::Frozen]
        );
        let old = fields(json!([{"name": "a", "image": "app:1"}]));
        assert!(matches!(
            classify(&new, Some(&old), FieldSet::EphemeralOnly)[0],
            Change::Kept(_)
        ));
    }
}
