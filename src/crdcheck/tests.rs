use serde_json::{Value, json};

use super::{Schemas, check};
use crate::api::CompositionSpec;

/// A small CRD in the shape controller-gen and Config Connector write.
fn crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "spec": {
            "group": "sql.example.com",
            "names": {"kind": "Instance"},
            "versions": [{
                "name": "v1",
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["spec"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "metadata": {"type": "object"},
                        "spec": {
                            "type": "object",
                            "required": ["tier", "ref"],
                            "properties": {
                                "tier": {"type": "string"},
                                "diskSize": {"type": "integer"},
                                "availability": {"type": "string", "enum": ["ZONAL", "REGIONAL"]},
                                "ref": {"type": "object", "properties": {"name": {"type": "string"}}},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "flags": {"type": "array", "items": {
                                    "type": "object", "required": ["name"],
                                    "properties": {"name": {"type": "string"}, "value": {"type": "string"}}
                                }}
                            }
                        },
                        "status": {"type": "object", "properties": {"ip": {"type": "string"}}}
                    }
                }}
            }]
        }
    })
}

fn schemas() -> Schemas {
    let mut s = Schemas::default();
    assert_eq!(s.add_documents(&[crd(), json!({"kind": "ConfigMap"})]), 1);
    s
}

fn comp(base_spec: Value, patches: Value) -> CompositionSpec {
    serde_json::from_value(json!({
        "engines": ["postgres"],
        "resources": [
            {"name": "secret", "base": {"apiVersion": "v1", "kind": "Secret"}},
            {"name": "instance",
             "base": {"apiVersion": "sql.example.com/v1", "kind": "Instance", "spec": base_spec},
             "patches": patches,
             "connectionDetails": [{"name": "host", "fromFieldPath": "status.ip"}]}
        ]
    }))
    .unwrap()
}

fn texts(spec: &CompositionSpec) -> Vec<String> {
    check(spec, &schemas())
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_composition_that_fits_the_crd_passes() {
    let c = comp(
        json!({"tier": "small", "availability": "ZONAL", "flags": [{"name": "a"}], "labels": {"x": "y"}}),
        json!([
            {"fromFieldPath": "spec.storageGB", "toFieldPath": "spec.diskSize"},
            {"fromFieldPath": "metadata.resourceNames.secret", "toFieldPath": "spec.ref.name"},
            {"fromFieldPath": "metadata.name", "toFieldPath": "spec.labels['claim']"},
            {"fromFieldPath": "spec.deletionPolicy", "toFieldPath": "metadata.annotations['x/y']"},
            {"fromFieldPath": "spec.size", "toFieldPath": "spec.availability",
             "transforms": [{"type": "map", "map": {"small": "ZONAL", "medium": "REGIONAL", "large": "REGIONAL"}}]},
            {"type": "ToClaimFieldPath", "fromFieldPath": "status.ip", "toFieldPath": "status.outputs.ip"}
        ]),
    );
    assert_eq!(texts(&c), Vec::<String>::new());
}

#[test]
fn a_patch_to_a_field_the_crd_lacks_names_resource_patch_and_path() {
    let c = comp(
        json!({"tier": "small"}),
        json!([
            {"fromFieldPath": "metadata.resourceNames.secret", "toFieldPath": "spec.ref.name"},
            {"fromFieldPath": "spec.storageGB", "toFieldPath": "spec.diskSizeGb"}
        ]),
    );
    let found = texts(&c);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("resource \"instance\", patch 1: toFieldPath spec.diskSizeGb: field \"diskSizeGb\" does not exist"),
        "{found:?}"
    );
    assert!(
        found[0].contains("Instance sql.example.com/v1 CRD"),
        "{found:?}"
    );
}

#[test]
fn a_wrong_type_or_enum_value_is_refused() {
    let c = comp(
        json!({"tier": "small", "ref": {"name": "x"}}),
        json!([
            {"fromFieldPath": "spec.size", "toFieldPath": "spec.diskSize"},
            {"fromFieldPath": "spec.size", "toFieldPath": "spec.availability",
             "transforms": [{"type": "map", "map": {"small": "ZONAL", "medium": "zonal", "large": "REGIONAL"}}]}
        ]),
    );
    let found = texts(&c);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].contains(
            "patch 0: toFieldPath spec.diskSize: the CRD wants integer, the patch writes string"
        ),
        "{found:?}"
    );
    assert!(
        found[1].contains("patch 1: toFieldPath spec.availability: \"zonal\" not allowed"),
        "{found:?}"
    );
}

#[test]
fn the_base_is_checked_for_fields_types_enums_and_required_fields() {
    let c = comp(
        json!({"tier": 3, "availability": "MULTI", "flags": [{"value": "v"}], "extra": true}),
        json!([]),
    );
    let found = texts(&c);
    let want = [
        "resource \"instance\": base spec.ref: is required and neither the base nor a patch sets it",
        "resource \"instance\": base spec.availability: \"MULTI\" is not allowed",
        "resource \"instance\": base spec.extra: does not exist",
        "resource \"instance\": base spec.flags[0].name: is required",
        "resource \"instance\": base spec.tier: is integer, the CRD wants string",
    ];
    for w in want {
        assert!(
            found.iter().any(|f| f.starts_with(w)),
            "missing {w:?} in {found:?}"
        );
    }
    assert_eq!(found.len(), want.len(), "{found:?}");
}

#[test]
fn reads_of_the_composed_object_must_exist_and_unknown_kinds_are_reported() {
    let mut c = comp(
        json!({"tier": "small", "ref": {"name": "x"}}),
        json!([{"type": "ToClaimFieldPath", "fromFieldPath": "status.address", "toFieldPath": "status.outputs.a"}]),
    );
    c.resources[1].connection_details[0].from_field_path = Some("status.host".into());
    c.resources.push(
        serde_json::from_value(json!({"name": "other", "base": {"apiVersion": "other.example.com/v1", "kind": "Thing"}}))
            .unwrap(),
    );
    let found = texts(&c);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].starts_with("resource \"instance\", patch 0: fromFieldPath status.address: field \"address\" does not exist"), "{found:?}");
    assert!(
        found[1].starts_with(
            "resource \"instance\": connection detail \"host\": fromFieldPath status.host"
        ),
        "{found:?}"
    );
    assert!(
        found[2].starts_with("resource \"other\": no CRD defines Thing in other.example.com/v1"),
        "{found:?}"
    );
}
