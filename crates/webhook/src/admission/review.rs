//! The AdmissionReview wire format: request bodies in, response bodies out.
//!
//! Bodies are read into one `serde_json::Value` and the typed request is built
//! from its parts: kube's types flatten their metadata, and serde buffers a
//! flattened struct (here the whole review, then the whole object) before it
//! reads it, which cost more than the rest of a warm admission.

use kube::core::admission::{AdmissionRequest, AdmissionReview};
use kube::core::{DynamicObject, ObjectMeta, TypeMeta};
use serde_json::Value;

use super::ReviewError;

fn malformed(e: impl std::fmt::Display) -> ReviewError {
    ReviewError::Malformed(e.to_string())
}

/// A string field of the review itself; absent or not a string is malformed.
fn type_field(review: &mut Value, name: &str) -> Result<String, ReviewError> {
    match review.get_mut(name).map(Value::take) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(malformed(format!("{name} must be a string, not {other}"))),
        None => Err(malformed(format!("missing field `{name}`"))),
    }
}

/// Builds the object the way `DynamicObject` deserializes it: `apiVersion`
/// and `kind` as its types, `metadata` typed, everything else as data.
fn dynamic_object(value: Value, field: &str) -> Result<Option<DynamicObject>, ReviewError> {
    let mut map = match value {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        other => {
            return Err(malformed(format!(
                "request.{field} must be an object, not {other}"
            )));
        }
    };
    let metadata = map
        .remove("metadata")
        .ok_or_else(|| malformed(format!("request.{field} has no metadata")))?;
    let metadata: ObjectMeta = serde_json::from_value(metadata)
        .map_err(|e| malformed(format!("request.{field}.metadata: {e}")))?;
    let string = |v: Option<Value>| match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let api_version = string(map.remove("apiVersion"));
    let kind = string(map.remove("kind"));
    let types = match (api_version, kind) {
        (Some(api_version), Some(kind)) => Some(TypeMeta { api_version, kind }),
        _ => None,
    };
    Ok(Some(DynamicObject {
        types,
        metadata,
        data: Value::Object(map),
    }))
}

/// The object as JSON, as `DynamicObject` serializes it, built from its
/// parts: its data moves in unchanged and only the metadata goes through serde.
pub(crate) fn into_value(object: DynamicObject) -> Result<Value, serde_json::Error> {
    let metadata = serde_json::to_value(&object.metadata)?;
    let mut map = match object.data {
        Value::Object(map) => map,
        Value::Null => serde_json::Map::new(),
        // What serde's flatten makes of it too: only maps flatten.
        other => {
            return Err(serde::ser::Error::custom(format!(
                "object data must be a map, not {other}"
            )));
        }
    };
    if let Some(types) = object.types {
        map.insert("apiVersion".into(), Value::String(types.api_version));
        map.insert("kind".into(), Value::String(types.kind));
    }
    map.insert("metadata".into(), metadata);
    Ok(Value::Object(map))
}

/// Parses an AdmissionReview body into the request it carries.
pub fn parse_review(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, ReviewError> {
    let mut review: Value = serde_json::from_slice(body).map_err(malformed)?;
    if !review.is_object() {
        return Err(malformed("an AdmissionReview is a JSON object"));
    }
    let api_version = type_field(&mut review, "apiVersion")?;
    let kind = type_field(&mut review, "kind")?;
    if api_version != "admission.k8s.io/v1" {
        return Err(ReviewError::Version(api_version));
    }
    // The response echoes the request's kind; only an AdmissionReview gets one.
    if kind != "AdmissionReview" {
        return Err(ReviewError::Kind(kind));
    }
    let mut request = match review.get_mut("request").map(Value::take) {
        None | Some(Value::Null) => return Err(ReviewError::NoRequest),
        Some(r) => r,
    };
    let mut take = |name: &str| {
        request
            .get_mut(name)
            .map(Value::take)
            .unwrap_or(Value::Null)
    };
    let object = take("object");
    let old_object = take("oldObject");
    let mut req: AdmissionRequest<DynamicObject> =
        serde_json::from_value(request).map_err(malformed)?;
    req.object = dynamic_object(object, "object")?;
    req.old_object = dynamic_object(old_object, "oldObject")?;
    req.types = TypeMeta { api_version, kind };
    Ok(req)
}

/// Encodes a response AdmissionReview as the API server's Go types do: the patch as a
/// base64 string (kube serializes the bytes as a JSON array of numbers).
pub fn encode_review(
    mut review: AdmissionReview<DynamicObject>,
) -> Result<Vec<u8>, serde_json::Error> {
    use base64::Engine as _;
    // kube serialises patch bytes as a JSON array of numbers; the API server wants base64.
    // Take the bytes out first so the response never round-trips through one number per byte.
    let patch = review.response.as_mut().and_then(|r| r.patch.take());
    let mut value = serde_json::to_value(&review)?;
    if let (Some(bytes), Some(response)) = (
        patch,
        value.get_mut("response").and_then(Value::as_object_mut),
    ) {
        response.insert(
            "patch".to_owned(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        );
    }
    serde_json::to_vec(&value)
}
