//! `--annotate`: the `tagpin.dev/images` record the webhook keeps, written into the manifests,
//! so that the webhook finds it already as it would write it and a GitOps tool comparing Git
//! with the cluster sees the same annotation on both sides.

use tagpin_verifier::Verdict;

use crate::admission::record::{self, IMAGES_ANNOTATION, ImageRecord, NOT_VERIFIED};

use super::lookup::Resolved;
use super::source::{Document, MapSite, Style, pointer_token};
use super::splice::Edit;

/// Why the annotation cannot be written in place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotateError {
    /// No `metadata:` mapping to put it in.
    #[error("the object has no metadata mapping to annotate")]
    NoMetadata,
    /// `annotations:` is there but not a mapping.
    #[error("metadata.annotations is not a mapping; write `annotations: {{}}`")]
    NotAMapping,
    /// The existing annotation is a block scalar or anchored.
    #[error("the existing {IMAGES_ANNOTATION} annotation is a block scalar or anchored; remove it")]
    Unwritable,
}

/// One image field of an object and what became of it.
pub struct FieldOutcome<'a> {
    /// JSON pointer from the object, as the webhook records it.
    pub path: &'a str,
    /// The image as written in the input.
    pub written: &'a str,
    /// Its resolution.
    pub resolved: &'a Resolved,
    /// Its verdict, when verified.
    pub verdict: Option<&'a Result<Verdict, String>>,
}

/// The records of an object's image fields as the webhook would write them after admitting
/// the pinned object carrying `existing` (the annotation the input already has).
pub fn records(fields: &[FieldOutcome<'_>], existing: &[ImageRecord]) -> Vec<ImageRecord> {
    fields.iter().map(|f| field_record(f, existing)).collect()
}

fn field_record(field: &FieldOutcome<'_>, existing: &[ImageRecord]) -> ImageRecord {
    let mut rec = ImageRecord {
        path: field.path.to_owned(),
        original: field.written.to_owned(),
        image: None,
        digest: None,
        resolved_at: None,
        resolved_by: Vec::new(),
        verdict: NOT_VERIFIED.to_owned(),
        rule: None,
        signers: Vec::new(),
        attestations: Vec::new(),
        error: None,
    };
    if let Some(Ok(v)) = field.verdict {
        rec.verdict = v.outcome.as_str().to_owned();
        rec.rule = Some(v.rule.clone()).filter(|r| !r.is_empty());
        rec.signers = v.signers.clone();
        rec.attestations = v.attestations.clone();
    }
    let Resolved::Pinned {
        reference,
        digest,
        text,
        resolved_at,
        resolved_by,
        ..
    } = field.resolved
    else {
        return rec;
    };
    let digest = digest.to_string();
    rec.digest = Some(digest.clone());
    match resolved_at {
        // Resolved now: recorded as the webhook records a tag it pins.
        Some(at) => {
            rec.original = reference.as_written().to_owned();
            rec.image = Some(reference.normalized());
            rec.resolved_by = resolved_by.clone();
            rec.resolved_at = existing
                .iter()
                .find(|p| {
                    p.path == rec.path
                        && p.original == rec.original
                        && p.digest.as_deref() == Some(&digest)
                })
                .and_then(|p| p.resolved_at.clone())
                .or_else(|| Some(record::rfc3339(*at)));
        }
        // Kept as written: the webhook keeps an earlier record that agrees with the field.
        None => {
            rec.original = text.clone();
            rec.image = Some(reference.normalized());
            if let Some(prev) = existing
                .iter()
                .find(|p| ImageRecord::is_earlier_pin_of(p, &rec.path, text, &digest))
            {
                rec.original = prev.original.clone();
                rec.image = prev.image.clone();
                rec.resolved_at = prev.resolved_at.clone();
                rec.resolved_by = prev.resolved_by.clone();
            }
        }
    }
    rec
}

/// The annotation records the object at `object` already carries.
pub fn existing(doc: &Document, object: &str) -> Vec<ImageRecord> {
    let pointer = format!(
        "{object}/metadata/annotations/{}",
        pointer_token(IMAGES_ANNOTATION)
    );
    doc.value
        .pointer(&pointer)
        .and_then(|v| v.as_str())
        .map(record::from_json)
        .unwrap_or_default()
}

/// The edit that makes the object at `object` carry `value` as its `tagpin.dev/images`
/// annotation; `None` when it already does.
pub fn edit(
    source: &str,
    doc: &Document,
    object: &str,
    value: &str,
    json: bool,
) -> Result<Option<Edit>, AnnotateError> {
    let metadata = format!("{object}/metadata");
    let annotations = format!("{metadata}/annotations");
    let key = format!("{annotations}/{}", pointer_token(IMAGES_ANNOTATION));
    if let Some(current) = doc.value.pointer(&key) {
        if current.as_str() == Some(value) {
            return Ok(None);
        }
        let site = doc.site(&key).map_err(|_| AnnotateError::Unwritable)?;
        if site.anchored || site.style == Style::Block {
            return Err(AnnotateError::Unwritable);
        }
        let token = if site.style == Style::DoubleQuoted || json {
            json_string(value)
        } else {
            single_quoted(value)
        };
        return Ok(Some(Edit {
            span: site.span.clone(),
            token,
        }));
    }
    let entry = (IMAGES_ANNOTATION, value);
    if let Some(map) = doc.map_site(&annotations) {
        return Ok(Some(insert(source, map, &[entry], json)));
    }
    if doc
        .value
        .pointer(&annotations)
        .is_some_and(|v| !v.is_null())
    {
        return Err(AnnotateError::NotAMapping);
    }
    let map = doc.map_site(&metadata).ok_or(AnnotateError::NoMetadata)?;
    Ok(Some(insert(
        source,
        map,
        &[("annotations", ""), entry],
        json,
    )))
}

/// Inserts `key: value` into `map`; a first entry with an empty value opens a nested
/// mapping holding the entries after it.
fn insert(source: &str, map: &MapSite, entries: &[(&str, &str)], json: bool) -> Edit {
    let key = |k: &str| if json { json_string(k) } else { k.to_owned() };
    let val = |v: &str| {
        if json {
            json_string(v)
        } else {
            single_quoted(v)
        }
    };
    let nested = entries.len() > 1;
    let (inner_key, inner_value) = entries[entries.len() - 1];
    if map.flow || json {
        let mut text = format!("{}: {}", key(inner_key), val(inner_value));
        if nested {
            text = format!("{}: {{{text}}}", key(entries[0].0));
        }
        return match map.last_end {
            Some(at) => Edit {
                span: at..at,
                token: format!(", {text}"),
            },
            None => Edit {
                span: map.open..map.open,
                token: text,
            },
        };
    }
    let newline = if source.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let indent = " ".repeat(map.key_col.unwrap_or_default());
    let at = line_end(source, map.last_end.unwrap_or(map.open));
    let token = if nested {
        format!(
            "{newline}{indent}{}:{newline}{indent}  {}: {}",
            entries[0].0,
            inner_key,
            val(inner_value)
        )
    } else {
        format!("{newline}{indent}{inner_key}: {}", val(inner_value))
    };
    Edit {
        span: at..at,
        token,
    }
}

/// The end of the line holding byte `at` (before its line break), so an entry inserted
/// there follows the line's comment.
fn line_end(source: &str, at: usize) -> usize {
    let before = &source[..at];
    if let Some(stripped) = before.strip_suffix('\n') {
        return stripped.strip_suffix('\r').unwrap_or(stripped).len();
    }
    match source[at..].find('\n') {
        Some(i) => {
            let end = at + i;
            if source[..end].ends_with('\r') {
                end - 1
            } else {
                end
            }
        }
        None => source.len(),
    }
}

fn single_quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn json_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pin::source::parse_stream;
    use crate::pin::splice::apply;

    fn annotate(text: &str, json: bool) -> String {
        let docs = parse_stream(text).unwrap();
        let edit = edit(text, &docs[0], "", "[]", json).unwrap();
        apply(text, &edit.into_iter().collect::<Vec<_>>())
    }

    #[test]
    fn inserts_into_block_annotations_after_the_comment() {
        assert_eq!(
            annotate(
                "metadata:\n  name: a\n  annotations:\n    team: a # owner\nspec: {}\n",
                false
            ),
            "metadata:\n  name: a\n  annotations:\n    team: a # owner\n    tagpin.dev/images: '[]'\nspec: {}\n"
        );
    }

    #[test]
    fn opens_annotations_in_block_metadata_keeping_crlf() {
        assert_eq!(
            annotate(
                "metadata:\r\n    name: a\r\n    labels:\r\n        x: y\r\nspec: {}\r\n",
                false
            ),
            "metadata:\r\n    name: a\r\n    labels:\r\n        x: y\r\n    annotations:\r\n      tagpin.dev/images: '[]'\r\nspec: {}\r\n"
        );
    }

    #[test]
    fn inserts_into_flow_and_json_mappings() {
        assert_eq!(
            annotate("metadata: {name: a}\n", false),
            "metadata: {name: a, annotations: {tagpin.dev/images: '[]'}}\n"
        );
        assert_eq!(
            annotate("metadata: {annotations: {}}\n", false),
            "metadata: {annotations: {tagpin.dev/images: '[]'}}\n"
        );
        assert_eq!(
            annotate("{\"metadata\": {\n  \"name\": \"a\"\n}}", true),
            "{\"metadata\": {\n  \"name\": \"a\", \"annotations\": {\"tagpin.dev/images\": \"[]\"}\n}}"
        );
    }

    #[test]
    fn replaces_an_existing_annotation_or_leaves_an_equal_one() {
        assert_eq!(
            annotate(
                "metadata:\n  annotations:\n    tagpin.dev/images: old\n",
                false
            ),
            "metadata:\n  annotations:\n    tagpin.dev/images: '[]'\n"
        );
        let same = "metadata:\n  annotations:\n    tagpin.dev/images: \"[]\"\n";
        assert_eq!(annotate(same, false), same);
        let docs = parse_stream("kind: Pod\n").unwrap();
        assert_eq!(
            edit("kind: Pod\n", &docs[0], "", "[]", false),
            Err(AnnotateError::NoMetadata)
        );
    }
}
#[cfg(test)]
mod block_scalar_tests {
    use super::*;
    use crate::pin::source::parse_stream;
    use crate::pin::splice::apply;

    #[test]
    fn inserts_after_a_block_scalar_annotation() {
        for (text, expected) in [
            (
                "metadata:\n  annotations:\n    last: |\n      {\"a\": 1}\n\n  name: x\nspec: {}\n",
                "metadata:\n  annotations:\n    last: |\n      {\"a\": 1}\n    tagpin.dev/images: '[]'\n\n  name: x\nspec: {}\n",
            ),
            (
                "metadata:\n  annotations:\n    last: |\n      {\"a\": 1}\nspec: {}\n",
                "metadata:\n  annotations:\n    last: |\n      {\"a\": 1}\n    tagpin.dev/images: '[]'\nspec: {}\n",
            ),
            (
                "metadata:\n  annotations:\n    last: >-\n      folded\n      text\n  name: x\n",
                "metadata:\n  annotations:\n    last: >-\n      folded\n      text\n    tagpin.dev/images: '[]'\n  name: x\n",
            ),
        ] {
            let docs = parse_stream(text).unwrap();
            let edit = edit(text, &docs[0], "", "[]", false).unwrap();
            let out = apply(text, &edit.into_iter().collect::<Vec<_>>());
            assert_eq!(out, expected);
            let again = parse_stream(&out).unwrap();
            assert_eq!(
                again[0].value["metadata"]["annotations"]["last"],
                docs[0].value["metadata"]["annotations"]["last"]
            );
        }
    }
}
