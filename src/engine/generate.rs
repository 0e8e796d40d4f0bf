//! `Generate` patches: a value from a CSPRNG, made once per composed object
//! and kept. A render reuses the value the composed object has (the
//! observed one), so re-renders and operator restarts never change it; a
//! rotation (the claim's token in `dbclaim.io/rotate-credentials` differs
//! from the one the observed object carries) makes a new one.
//!
//! A generated value is written only into the desired object: never into
//! an error, a message or `status.outputs` (the errors here name the patch,
//! never the value).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use super::fieldpath::{FieldPath, Segment};
use super::patch::PatchError;
use super::scope::is_core_secret;
use crate::api::DatabaseClaim;
use crate::api::composition::{GenerateType, Patch};
use crate::contract::ROTATE_CREDENTIALS_ANNOTATION;

/// Shortest and longest generated value.
pub const MIN_LENGTH: i64 = 8;
pub const MAX_LENGTH: i64 = 256;

/// Where generated values come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Generator {
    /// The CSPRNG; the observed value is kept unless rotated.
    #[default]
    Random,
    /// A fixed placeholder that says what would be generated, for offline
    /// renders: a value, generated or observed, is never printed.
    Placeholder,
}

/// The text offline renders show in place of a generated value.
pub fn placeholder(length: i64) -> String {
    format!("(generated Password, {length} characters)")
}

/// The rotation token the claim asks its composed objects to carry: its
/// `status.credentials.rotatedAt`, none before a first rotation.
pub fn claim_token(claim: &DatabaseClaim) -> Option<String> {
    let at = claim
        .status
        .as_ref()?
        .credentials
        .as_ref()?
        .rotated_at
        .as_ref()?;
    Some(at.0.to_string())
}

/// The rotation token a composed object carries.
pub fn object_token(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/annotations")?
        .get(ROTATE_CREDENTIALS_ANNOTATION)?
        .as_str()
}

/// Checks the shape of a Generate patch: `generate` with a length in
/// range, an explicit `toFieldPath`, and nothing that reads or transforms.
pub fn check(p: &Patch) -> Result<(FieldPath, i64), PatchError> {
    let spec = p.generate.as_ref().ok_or(PatchError::MissingField {
        patch_type: "Generate",
        field: "generate",
    })?;
    match spec.type_ {
        GenerateType::Password => {}
    }
    if !(MIN_LENGTH..=MAX_LENGTH).contains(&spec.length) {
        return Err(PatchError::GenerateLength(spec.length));
    }
    if p.from_field_path.is_some() || p.combine.is_some() || !p.transforms.is_empty() {
        return Err(PatchError::GenerateReads);
    }
    let text = p.to_field_path.as_deref().ok_or(PatchError::MissingField {
        patch_type: "Generate",
        field: "toFieldPath",
    })?;
    let path = FieldPath::parse(text).map_err(|error| PatchError::BadPath {
        field: "toFieldPath".into(),
        error,
    })?;
    Ok((path, spec.length))
}

/// Applies a Generate patch to `target`. `observed` is the composed object
/// as it exists; `rotate` asks for a new value even if it has one.
pub fn apply(
    p: &Patch,
    observed: Option<&Value>,
    rotate: bool,
    generator: Generator,
    target: &mut Value,
) -> Result<(), PatchError> {
    let (path, length) = check(p)?;
    let value = match generator {
        Generator::Placeholder => placeholder(length),
        Generator::Random => match observed.filter(|_| !rotate).and_then(|o| kept(o, &path)) {
            Some(v) => v,
            // In range by check(): 8..=256.
            None => crate::provider::password::generate_len(length.unsigned_abs() as usize),
        },
    };
    path.set(target, Value::String(value))
        .map_err(|error| PatchError::Write {
            path: path.to_string(),
            error,
        })
}

/// The value the observed object holds at `path`. A Secret's `stringData`
/// is never stored: the API server keeps it base64-encoded in `data`.
fn kept(observed: &Value, path: &FieldPath) -> Option<String> {
    if let Ok(Some(Value::String(s))) = path.get(observed)
        && !s.is_empty()
    {
        return Some(s.clone());
    }
    if !is_secret(observed) {
        return None;
    }
    let [Segment::Field(first), rest @ ..] = path.segments() else {
        return None;
    };
    if first != "stringData" {
        return None;
    }
    let mut segments = vec![Segment::Field("data".into())];
    segments.extend(rest.iter().cloned());
    let data = FieldPath::from_segments(segments)?;
    let Ok(Some(Value::String(encoded))) = data.get(observed) else {
        return None;
    };
    let bytes = STANDARD.decode(encoded).ok()?;
    String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
}

fn is_secret(object: &Value) -> bool {
    let field = |f: &str| object.get(f).and_then(Value::as_str).unwrap_or_default();
    is_core_secret(field("apiVersion"), field("kind"))
}

/// A core Secret as the API server stores it: `stringData` folded into
/// `data` (base64), so a desired Secret compares equal to the stored one.
/// Other objects are returned as they are.
pub fn as_stored(object: &Value) -> Value {
    let mut out = object.clone();
    if !is_secret(object) {
        return out;
    }
    let Some(Value::Object(root)) = Some(&mut out) else {
        return out;
    };
    let Some(Value::Object(string_data)) = root.remove("stringData") else {
        return out;
    };
    let data = root
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Value::Object(data) = data {
        for (k, v) in string_data {
            if let Value::String(s) = v {
                data.insert(k, Value::String(STANDARD.encode(s)));
            }
        }
    }
    out
}

/// The value of `key` of an observed core Secret, decoded.
pub fn secret_key(observed: &Value, key: &str) -> Option<Vec<u8>> {
    if !is_secret(observed) {
        return None;
    }
    let encoded = observed.get("data")?.get(key)?.as_str()?;
    STANDARD.decode(encoded).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn generate(length: i64, to: &str) -> Patch {
        serde_json::from_value(json!({
            "type": "Generate",
            "generate": {"type": "Password", "length": length},
            "toFieldPath": to,
        }))
        .unwrap_or_default()
    }

    fn secret_with(password: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Secret",
               "data": {"password": STANDARD.encode(password)}})
    }

    #[test]
    fn generates_a_csprng_value_of_the_length() {
        let p = generate(40, "stringData.password");
        let mut a = json!({"apiVersion": "v1", "kind": "Secret"});
        let mut b = a.clone();
        apply(&p, None, false, Generator::Random, &mut a).unwrap_or_default();
        apply(&p, None, false, Generator::Random, &mut b).unwrap_or_default();
        let va = a["stringData"]["password"].as_str().unwrap_or_default();
        let vb = b["stringData"]["password"].as_str().unwrap_or_default();
        assert_eq!(va.len(), 40);
        assert!(va.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(va, vb);
    }

    #[test]
    fn the_observed_value_is_kept_until_a_rotation() {
        let p = generate(32, "stringData.password");
        let observed = secret_with("kept-value-123");
        let mut t = json!({"apiVersion": "v1", "kind": "Secret"});
        apply(&p, Some(&observed), false, Generator::Random, &mut t).unwrap_or_default();
        assert_eq!(t["stringData"]["password"], json!("kept-value-123"));
        // A plain field on any kind is kept the same way.
        let p = generate(16, "spec.password");
        let observed = json!({"spec": {"password": "abcdefgh12345678"}});
        let mut t = json!({});
        apply(&p, Some(&observed), false, Generator::Random, &mut t).unwrap_or_default();
        assert_eq!(t["spec"]["password"], json!("abcdefgh12345678"));
        // A rotation makes a new one.
        let mut t = json!({});
        apply(&p, Some(&observed), true, Generator::Random, &mut t).unwrap_or_default();
        let v = t["spec"]["password"].as_str().unwrap_or_default();
        assert_eq!(v.len(), 16);
        assert_ne!(v, "abcdefgh12345678");
        // An empty observed value is not kept.
        let observed = json!({"spec": {"password": ""}});
        let mut t = json!({});
        apply(&p, Some(&observed), false, Generator::Random, &mut t).unwrap_or_default();
        assert_eq!(t["spec"]["password"].as_str().map(str::len), Some(16));
    }

    #[test]
    fn offline_renders_show_a_placeholder_never_a_value() {
        let p = generate(32, "stringData.password");
        let observed = secret_with("kept-value-123");
        let mut t = json!({});
        apply(&p, Some(&observed), false, Generator::Placeholder, &mut t).unwrap_or_default();
        assert_eq!(
            t["stringData"]["password"],
            json!("(generated Password, 32 characters)")
        );
    }

    #[test]
    fn the_shape_is_checked_without_naming_a_value() {
        let cases = [
            (
                json!({"type": "Generate", "toFieldPath": "a"}),
                "needs \"generate\"",
            ),
            (
                json!({"type": "Generate", "generate": {"length": 4}, "toFieldPath": "a"}),
                "length 4",
            ),
            (
                json!({"type": "Generate", "generate": {}, "fromFieldPath": "spec.x", "toFieldPath": "a"}),
                "reads nothing",
            ),
            (
                json!({"type": "Generate", "generate": {}}),
                "needs \"toFieldPath\"",
            ),
        ];
        for (p, want) in cases {
            let p: Patch = serde_json::from_value(p).unwrap_or_default();
            let err = check(&p).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(want), "{err} should contain {want}");
        }
        assert!(check(&generate(32, "stringData.password")).is_ok());
    }

    #[test]
    fn secrets_compare_as_stored() {
        let desired = json!({"apiVersion": "v1", "kind": "Secret",
            "stringData": {"password": "pw"}, "data": {"user": "dQ=="}});
        assert_eq!(
            as_stored(&desired),
            json!({"apiVersion": "v1", "kind": "Secret",
                   "data": {"password": "cHc=", "user": "dQ=="}})
        );
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "stringData": {"a": "b"}});
        assert_eq!(as_stored(&cm), cm);
        assert_eq!(
            secret_key(&secret_with("pw"), "password"),
            Some(b"pw".to_vec())
        );
        assert_eq!(secret_key(&cm, "password"), None);
    }

    #[test]
    fn tokens() {
        let o = json!({"metadata": {"annotations": {"dbclaim.io/rotate-credentials": "t1"}}});
        assert_eq!(object_token(&o), Some("t1"));
        assert_eq!(object_token(&json!({})), None);
    }
}
