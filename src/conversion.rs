//! Conversion of `DatabaseClaim` between `dbclaim.io/v1alpha1` and
//! `dbclaim.io/v1beta1`: pure, on the objects' JSON, so every field it does
//! not know (metadata, status, fields of a newer release) passes through
//! untouched. The webhook ([`review`]) and the engine (compositions reading
//! claims in their `claimAPIVersion`) use the same code.
//!
//! The versions differ in one field: `spec.storageGB: N` is
//! `spec.storage: NGi`. A v1beta1 quantity written another way (`1Ti`,
//! `2048Mi`) keeps its spelling through v1alpha1 in the annotation
//! [`STORAGE_ANNOTATION`], so both directions are lossless.

use kube::core::conversion::{ConversionRequest, ConversionResponse, ConversionReview};
use kube::core::response::Status;
use serde_json::{Map, Value};

use crate::engine::quantity;

pub const GROUP: &str = "dbclaim.io";
pub const V1ALPHA1: &str = "dbclaim.io/v1alpha1";
pub const V1BETA1: &str = "dbclaim.io/v1beta1";
/// The v1beta1 spelling of `spec.storage` while a claim is read as v1alpha1,
/// when it is not `<storageGB>Gi`. Reserved: dbclaim owns it.
pub const STORAGE_ANNOTATION: &str = "dbclaim.io/v1beta1-storage";

const GIB: i64 = 1 << 30;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConversionError {
    #[error(
        "cannot convert to {0:?}: dbclaim serves DatabaseClaim as dbclaim.io/v1alpha1 and dbclaim.io/v1beta1"
    )]
    UnknownVersion(String),
    #[error("cannot convert a DatabaseClaim of apiVersion {0:?}")]
    UnknownSource(String),
    #[error("cannot convert a {0:?}: the conversion webhook converts DatabaseClaims only")]
    Kind(String),
    #[error("spec.storageGB {0} is not a whole number")]
    StorageGb(String),
    #[error("spec.storage {0} is not a quantity in whole GiB (e.g. 50Gi)")]
    Storage(String),
    #[error("a DatabaseClaim that does not fit its type: {0}")]
    Shape(String),
}

/// `object` (a DatabaseClaim of either version) as `desired` (an apiVersion).
pub fn convert(object: &Value, desired: &str) -> Result<Value, ConversionError> {
    if desired != V1ALPHA1 && desired != V1BETA1 {
        return Err(ConversionError::UnknownVersion(desired.into()));
    }
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind != "DatabaseClaim" {
        return Err(ConversionError::Kind(kind.into()));
    }
    let from = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut out = object.clone();
    match (from, desired) {
        (f, d) if f == d => {}
        (V1ALPHA1, V1BETA1) => up(&mut out)?,
        (V1BETA1, V1ALPHA1) => down(&mut out)?,
        (f, _) => return Err(ConversionError::UnknownSource(f.into())),
    }
    if let Some(m) = out.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(desired.into()));
    }
    Ok(out)
}

/// A typed claim of either version as another type of `desired` version:
/// the operator reads and writes claims in the storage version and works
/// on them as v1alpha1, converted by the webhook's code in process, so its
/// own requests cost the API server no webhook call (and work while no
/// webhook answers).
pub fn typed<T: serde::de::DeserializeOwned>(
    object: &impl serde::Serialize,
    desired: &str,
) -> Result<T, ConversionError> {
    let value = serde_json::to_value(object).map_err(|e| ConversionError::Shape(e.to_string()))?;
    serde_json::from_value(convert(&value, desired)?)
        .map_err(|e| ConversionError::Shape(e.to_string()))
}

/// The GiB of a v1beta1 `spec.storage`, when it is whole GiB.
pub fn storage_gib(storage: &str) -> Option<i64> {
    match quantity::to_i64_exact(storage) {
        Ok(Some(bytes)) if bytes % GIB == 0 => Some(bytes / GIB),
        _ => None,
    }
}

/// v1alpha1 → v1beta1.
fn up(object: &mut Value) -> Result<(), ConversionError> {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let Some(gb) = spec.remove("storageGB") else {
        return Ok(());
    };
    let gb = gb
        .as_i64()
        .ok_or_else(|| ConversionError::StorageGb(gb.to_string()))?;
    let canonical = format!("{gb}Gi");
    // The spelling a v1beta1 writer chose, while it still means this size
    // (a v1alpha1 writer may have changed storageGB since).
    let kept = take_annotation(object).filter(|s| storage_gib(s) == Some(gb));
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("storage".into(), Value::String(kept.unwrap_or(canonical)));
    }
    Ok(())
}

/// v1beta1 → v1alpha1.
fn down(object: &mut Value) -> Result<(), ConversionError> {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let Some(storage) = spec.remove("storage") else {
        return Ok(());
    };
    let text = match &storage {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => return Err(ConversionError::Storage(other.to_string())),
    };
    let gb = storage_gib(&text).ok_or_else(|| ConversionError::Storage(storage.to_string()))?;
    spec.insert("storageGB".into(), Value::from(gb));
    if text != format!("{gb}Gi") {
        set_annotation(object, text);
    }
    Ok(())
}

fn take_annotation(object: &mut Value) -> Option<String> {
    let metadata = object.get_mut("metadata")?.as_object_mut()?;
    let annotations = metadata.get_mut("annotations")?.as_object_mut()?;
    let value = annotations.remove(STORAGE_ANNOTATION)?;
    if annotations.is_empty() {
        metadata.remove("annotations");
    }
    value.as_str().map(str::to_string)
}

fn set_annotation(object: &mut Value, value: String) {
    let Some(root) = object.as_object_mut() else {
        return;
    };
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return;
    };
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(a) = annotations.as_object_mut() {
        a.insert(STORAGE_ANNOTATION.into(), Value::String(value));
    }
}

/// The answer to a `ConversionReview` from the API server: every object
/// converted, or a failure naming the first one that could not be.
pub fn review(review: ConversionReview) -> ConversionReview {
    let request = match ConversionRequest::from_review(review) {
        Ok(r) => r,
        Err(_) => {
            return ConversionResponse::invalid(Status::failure(
                "a ConversionReview without a request",
                "BadRequest",
            ))
            .into_review();
        }
    };
    let desired = request.desired_api_version.clone();
    let converted: Result<Vec<Value>, String> = request
        .objects
        .iter()
        .map(|o| {
            convert(o, &desired).map_err(|e| {
                let name = o
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let ns = o
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                format!("DatabaseClaim {ns}/{name}: {e}")
            })
        })
        .collect();
    let response = ConversionResponse::for_request(request);
    match converted {
        Ok(objects) => response.success(objects),
        Err(message) => response.failure(Status::failure(&message, "ConversionFailed")),
    }
    .into_review()
}

#[cfg(test)]
mod tests;
