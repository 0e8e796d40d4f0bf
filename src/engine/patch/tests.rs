//! Table tests for every patch type and policy, and the claim source.

use serde_json::{Value, json};

use super::*;
use crate::api::DatabaseClaim;

fn patch(v: Value) -> Patch {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn claim_json() -> Value {
    json!({
        "apiVersion": "dbclaim.io/v1alpha1",
        "kind": "DatabaseClaim",
        "metadata": {"name": "orders-db", "namespace": "team-a", "labels": {"team": "a"}},
        "spec": {"engine": "postgres", "size": "medium", "storageGB": 50,
                 "parameters": {"tier": "gold", "tags": "x"}}
    })
}

fn source() -> Value {
    let claim: DatabaseClaim = serde_json::from_value(claim_json()).unwrap();
    claim_source(&claim, "team-a")
}

fn from_claim(p: Value, target: Value) -> Result<Value, PatchError> {
    let mut target = target;
    apply_from_claim(&patch(p), &source(), &mut target)?;
    Ok(target)
}

#[test]
fn claim_source_resolves_defaults() {
    let s = source();
    assert_eq!(s["spec"]["databaseName"], json!("orders_db"));
    assert_eq!(s["spec"]["storageGB"], json!(50));
    assert_eq!(s["spec"]["size"], json!("medium"));
    assert_eq!(s["spec"]["deletionPolicy"], json!("Delete"));
    assert_eq!(
        s["metadata"],
        json!({"name": "orders-db", "namespace": "team-a", "labels": {"team": "a"}})
    );
    assert_eq!(s["kind"], json!("DatabaseClaim"));
    // An explicit databaseName is kept.
    let mut c: DatabaseClaim = serde_json::from_value(claim_json()).unwrap();
    c.spec.database_name = Some("orders".into());
    c.metadata.uid = Some("u-1".into());
    c.metadata.managed_fields = Some(vec![]);
    let s = claim_source(&c, "team-a");
    assert_eq!(s["spec"]["databaseName"], json!("orders"));
    assert_eq!(s["metadata"]["uid"], json!("u-1"));
    assert!(s["metadata"].get("managedFields").is_none());
}

#[test]
fn from_claim_field_path() {
    let cases = vec![
        (
            json!({"fromFieldPath": "spec.storageGB", "toFieldPath": "spec.forProvider.allocatedStorage"}),
            json!({"spec": {"forProvider": {"region": "x"}}}),
            json!({"spec": {"forProvider": {"region": "x", "allocatedStorage": 50}}}),
        ),
        // FromClaimFieldPath is the default type; toFieldPath defaults to fromFieldPath.
        (
            json!({"fromFieldPath": "spec.size"}),
            json!({}),
            json!({"spec": {"size": "medium"}}),
        ),
        // A whole map replaces the target: keys not in the claim disappear.
        (
            json!({"fromFieldPath": "spec.parameters", "toFieldPath": "spec.forProvider.tags"}),
            json!({"spec": {"forProvider": {"tags": {"old": "1", "tier": "silver"}}}}),
            json!({"spec": {"forProvider": {"tags": {"tier": "gold", "tags": "x"}}}}),
        ),
        (
            json!({"fromFieldPath": "metadata.labels.team", "toFieldPath": "metadata.labels['dbclaim.io/team']"}),
            json!({}),
            json!({"metadata": {"labels": {"dbclaim.io/team": "a"}}}),
        ),
        (
            json!({"fromFieldPath": "spec.databaseName", "toFieldPath": "spec.list[1]"}),
            json!({}),
            json!({"spec": {"list": [null, "orders_db"]}}),
        ),
        // Optional (the default) skips a missing source and leaves the target.
        (
            json!({"fromFieldPath": "spec.parameters.missing", "toFieldPath": "spec.x"}),
            json!({"spec": {"x": 1}}),
            json!({"spec": {"x": 1}}),
        ),
        (
            json!({"fromFieldPath": "spec.version", "toFieldPath": "spec.x", "policy": {"fromFieldPath": "Optional"}}),
            json!({"spec": {"x": "15"}}),
            json!({"spec": {"x": "15"}}),
        ),
        // Transforms run in order.
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "spec.class", "transforms": [
                {"type": "map", "map": {"small": "db.t3.micro", "medium": "db.m6g.large"}},
                {"type": "string", "string": {"type": "Convert", "convert": "ToUpper"}}
            ]}),
            json!({}),
            json!({"spec": {"class": "DB.M6G.LARGE"}}),
        ),
        // A null result removes the target.
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "spec.x", "transforms": [
                {"type": "match", "match": {"patterns": [{"type": "literal", "literal": "small", "result": 1}]}}
            ]}),
            json!({"spec": {"x": 5, "y": 1}}),
            json!({"spec": {"y": 1}}),
        ),
    ];
    for (p, target, want) in cases {
        assert_eq!(
            from_claim(p.clone(), target).unwrap_or_else(|e| panic!("{p}: {e}")),
            want,
            "{p}"
        );
    }
}

#[test]
fn combine_from_claim() {
    let cases = vec![
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": [
                {"fromFieldPath": "metadata.namespace"}, {"fromFieldPath": "metadata.name"}
            ], "strategy": "string", "string": {"fmt": "%s/%s"}}, "toFieldPath": "spec.forProvider.tags.claim"}),
            json!({}),
            json!({"spec": {"forProvider": {"tags": {"claim": "team-a/orders-db"}}}}),
        ),
        // strategy defaults to string; numbers work with %d; transforms apply to the result.
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": [
                {"fromFieldPath": "spec.size"}, {"fromFieldPath": "spec.storageGB"}
            ], "string": {"fmt": "%s-%d"}}, "toFieldPath": "spec.x",
              "transforms": [{"type": "string", "string": {"type": "Convert", "convert": "ToUpper"}}]}),
            json!({}),
            json!({"spec": {"x": "MEDIUM-50"}}),
        ),
        // Any missing variable skips the patch under Optional.
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": [
                {"fromFieldPath": "metadata.name"}, {"fromFieldPath": "spec.version"}
            ], "string": {"fmt": "%s-%s"}}, "toFieldPath": "spec.x"}),
            json!({"spec": {"x": "kept"}}),
            json!({"spec": {"x": "kept"}}),
        ),
    ];
    for (p, target, want) in cases {
        assert_eq!(
            from_claim(p.clone(), target).unwrap_or_else(|e| panic!("{p}: {e}")),
            want,
            "{p}"
        );
    }
}

#[test]
fn from_claim_errors() {
    let cases = vec![
        (
            json!({"fromFieldPath": "spec.version", "toFieldPath": "spec.x", "policy": {"fromFieldPath": "Required"}}),
            "the claim has no value at spec.version, and the patch's policy.fromFieldPath is Required",
        ),
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": [{"fromFieldPath": "spec.version"}],
              "string": {"fmt": "%s"}}, "toFieldPath": "spec.x", "policy": {"fromFieldPath": "Required"}}),
            "the claim has no value at spec.version",
        ),
        (
            json!({"fromFieldPath": "spec..size", "toFieldPath": "x"}),
            "fromFieldPath: field path \"spec..size\" is not valid at position 5",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x["}),
            "toFieldPath: field path \"x[\" is not valid",
        ),
        (
            json!({"toFieldPath": "x"}),
            "a FromClaimFieldPath patch needs \"fromFieldPath\"",
        ),
        (
            json!({"type": "CombineFromClaim", "toFieldPath": "x"}),
            "a CombineFromClaim patch needs \"combine\"",
        ),
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": [{"fromFieldPath": "metadata.name"}], "string": {"fmt": "%s"}}}),
            "a CombineFromClaim patch needs \"toFieldPath\"",
        ),
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": []}, "toFieldPath": "x"}),
            "combine needs at least one variable",
        ),
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": [{"fromFieldPath": "metadata.name"}]}, "toFieldPath": "x"}),
            "combine strategy string needs \"string\" with \"fmt\"",
        ),
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": [{"fromFieldPath": "metadata.name"}], "string": {"fmt": "%d"}}, "toFieldPath": "x"}),
            "combine format \"%d\": %d at position 0 needs an integer, got the string \"orders-db\"",
        ),
        (
            json!({"type": "CombineFromClaim", "combine": {"variables": [{"fromFieldPath": "metadata.name[0"}], "string": {"fmt": "%s"}}, "toFieldPath": "x"}),
            "combine variable 0: field path",
        ),
        // Type mismatches are errors even under Optional: they will not fix themselves.
        (
            json!({"fromFieldPath": "spec.size.tier", "toFieldPath": "x"}),
            "cannot read spec.size.tier from the claim: spec.size is a string, not an object",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "spec.forProvider.region.x"}),
            "cannot write spec.forProvider.region.x: spec.forProvider.region is a string, not an object",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [{"type": "map", "map": {"small": 1}}]}),
            "map transform has no entry for \"medium\" (it has: \"small\")",
        ),
        (
            json!({"fromFieldPath": "spec.size", "toFieldPath": "x", "transforms": [
                {"type": "string", "string": {"fmt": "%s"}}, {"type": "math", "math": {"multiply": 2}}
            ]}),
            "transform 1: math transform needs a number, got the string \"medium\"",
        ),
    ];
    for (p, want) in cases {
        let err = from_claim(
            p.clone(),
            json!({"spec": {"forProvider": {"region": "us-east-1"}}}),
        )
        .expect_err(&p.to_string());
        assert!(
            err.to_string().contains(want),
            "{p}:\n  got  {err}\n  want {want}"
        );
    }
}

#[test]
fn to_claim_patches() {
    let observed = json!({"status": {"atProvider": {"endpoint": {"address": "db.example.com", "port": 5432}, "arn": "arn:aws:rds:x"}}});
    let mut doc = json!({"status": {"outputs": {}}});
    let patches = [
        json!({"type": "ToClaimFieldPath", "fromFieldPath": "status.atProvider.endpoint.address", "toFieldPath": "status.outputs.endpoint"}),
        json!({"type": "ToClaimFieldPath", "fromFieldPath": "status.atProvider.endpoint", "toFieldPath": "status.outputs.full"}),
        json!({"type": "ToClaimFieldPath", "fromFieldPath": "status.atProvider.endpoint.port", "toFieldPath": "status.outputs.nested.port",
               "transforms": [{"type": "convert", "convert": {"toType": "string"}}]}),
        json!({"type": "ToClaimFieldPath", "fromFieldPath": "status.atProvider.missing", "toFieldPath": "status.outputs.missing"}),
        json!({"type": "CombineToClaim", "combine": {"variables": [
            {"fromFieldPath": "status.atProvider.endpoint.address"}, {"fromFieldPath": "status.atProvider.endpoint.port"}
        ], "string": {"fmt": "%s:%d"}}, "toFieldPath": "status.outputs.hostPort"}),
        // FromClaim patches are not ToClaim patches: ignored here.
        json!({"fromFieldPath": "spec.size", "toFieldPath": "status.outputs.size"}),
    ];
    for p in &patches {
        apply_to_claim(&patch(p.clone()), Some(&observed), &mut doc)
            .unwrap_or_else(|e| panic!("{p}: {e}"));
    }
    assert_eq!(
        doc,
        json!({"status": {"outputs": {
            "endpoint": "db.example.com",
            "full": {"address": "db.example.com", "port": 5432},
            "nested": {"port": "5432"},
            "hostPort": "db.example.com:5432"
        }}})
    );
    // Not observed yet: skipped, even when Required.
    let mut doc = json!({"status": {"outputs": {}}});
    let req = json!({"type": "ToClaimFieldPath", "fromFieldPath": "status.x", "toFieldPath": "status.outputs.x",
                     "policy": {"fromFieldPath": "Required"}});
    apply_to_claim(&patch(req.clone()), None, &mut doc).unwrap();
    assert_eq!(doc, json!({"status": {"outputs": {}}}));
    // Observed but missing: Required is an error naming the composed object.
    let err = apply_to_claim(&patch(req), Some(&observed), &mut doc).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the composed object has no value at status.x, and the patch's policy.fromFieldPath is Required"
    );
}

#[test]
fn to_claim_may_only_write_outputs() {
    for (p, shown) in [
        (
            json!({"type": "ToClaimFieldPath", "fromFieldPath": "status.a", "toFieldPath": "spec.size"}),
            "spec.size",
        ),
        (
            json!({"type": "ToClaimFieldPath", "fromFieldPath": "status.a", "toFieldPath": "status.outputs"}),
            "status.outputs",
        ),
        (
            json!({"type": "ToClaimFieldPath", "fromFieldPath": "status.a", "toFieldPath": "status.conditions"}),
            "status.conditions",
        ),
        (
            json!({"type": "ToClaimFieldPath", "fromFieldPath": "status.a", "toFieldPath": "status.outputs[0]"}),
            "status.outputs[0]",
        ),
        (
            json!({"type": "ToClaimFieldPath", "fromFieldPath": "metadata.labels"}),
            "metadata.labels",
        ),
        (
            json!({"type": "CombineToClaim", "combine": {"variables": [{"fromFieldPath": "a"}], "string": {"fmt": "%s"}},
                   "toFieldPath": "metadata.annotations.x"}),
            "metadata.annotations.x",
        ),
    ] {
        let mut doc = json!({});
        // Refused whether or not the object was observed.
        for observed in [None, Some(&json!({"status": {"a": 1}}))] {
            let err = apply_to_claim(&patch(p.clone()), observed, &mut doc).unwrap_err();
            assert!(
                matches!(err, PatchError::ToClaimTarget { .. }),
                "{p}: {err}"
            );
            assert!(err.to_string().contains(&format!("not {shown} ")), "{err}");
        }
    }
}

#[test]
fn summaries() {
    assert_eq!(
        summary(&patch(
            json!({"fromFieldPath": "spec.size", "toFieldPath": "spec.forProvider.dbInstanceClass"})
        )),
        "spec.size → spec.forProvider.dbInstanceClass"
    );
    assert_eq!(
        summary(&patch(json!({"fromFieldPath": "spec.size"}))),
        "spec.size → spec.size"
    );
    assert_eq!(
        summary(&patch(
            json!({"type": "CombineFromClaim", "combine": {"variables": [
            {"fromFieldPath": "metadata.namespace"}, {"fromFieldPath": "metadata.name"}]}, "toFieldPath": "spec.t"})
        )),
        "combine(metadata.namespace, metadata.name) → spec.t"
    );
    assert_eq!(
        summary(&patch(json!({"type": "CombineToClaim"}))),
        "combine() → ?"
    );
}
