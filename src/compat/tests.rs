use super::*;
use serde_json::json;

fn crd(versions: Value) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "things.example.io"},
        "spec": {
            "group": "example.io", "scope": "Namespaced",
            "names": {"kind": "Thing", "plural": "things"},
            "versions": versions,
        },
    }))
    .unwrap()
}

fn version(name: &str, storage: bool, spec: Value) -> Value {
    json!({
        "name": name, "served": true, "storage": storage,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec}}},
    })
}

fn spec() -> Value {
    json!({
        "type": "object", "required": ["engine"],
        "properties": {
            "engine": {"type": "string", "enum": ["postgres", "mysql"]},
            "size": {"type": "integer", "minimum": 1, "maximum": 100},
            "name": {"type": "string", "pattern": "^[a-z]+$"},
        },
    })
}

fn check(old_spec: Value, new_spec: Value) -> Vec<String> {
    breaks(
        &[crd(json!([version("v1", true, old_spec)]))],
        &[crd(json!([version("v1", true, new_spec)]))],
    )
}

#[test]
fn the_same_and_additive_changes_pass() {
    assert!(check(spec(), spec()).is_empty());
    let mut wider = spec();
    wider["properties"]["extra"] = json!({"type": "string", "maxLength": 3});
    wider["properties"]["engine"]["enum"] = json!(["postgres", "mysql", "oracle"]);
    wider["properties"]["size"]["maximum"] = json!(1000);
    assert_eq!(check(spec(), wider), Vec::<String>::new());
}

#[test]
fn each_narrowing_is_one_line() {
    let mut s = spec();
    s["properties"]["engine"]["enum"] = json!(["postgres"]);
    assert_eq!(
        check(spec(), s),
        ["things.example.io v1: .spec.engine: enum narrowed: no longer accepts \"mysql\""]
    );
    let mut s = spec();
    s["properties"]["size"]["maximum"] = json!(50);
    s["properties"]["name"]["pattern"] = json!("^[a-z]{1,5}$");
    assert_eq!(check(spec(), s).len(), 2);
    let mut s = spec();
    s["properties"]["size"]["type"] = json!("string");
    assert_eq!(
        check(spec(), s),
        ["things.example.io v1: .spec.size: type changed from \"integer\" to \"string\""]
    );
    let mut s = spec();
    s["required"] = json!(["engine", "size"]);
    assert_eq!(
        check(spec(), s),
        ["things.example.io v1: .spec: new required field size"]
    );
    let mut s = spec();
    s["properties"].as_object_mut().unwrap().remove("name");
    assert_eq!(
        check(spec(), s),
        ["things.example.io v1: .spec.name: field removed"]
    );
}

#[test]
fn versions_must_stay_served_and_stored_ones_readable() {
    let old = crd(json!([version("v1alpha1", true, spec())]));
    let new = crd(json!([version("v1beta1", true, spec())]));
    assert_eq!(
        breaks(std::slice::from_ref(&old), &[new]),
        [
            "things.example.io: served version v1alpha1 removed",
            "things.example.io: stored version v1alpha1 is no longer served (objects stored in it cannot be read)",
        ]
    );
    let both = crd(json!([
        version("v1alpha1", false, spec()),
        version("v1beta1", true, spec())
    ]));
    assert!(breaks(&[old], &[both]).is_empty());
}
