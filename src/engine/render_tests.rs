//! Tests of `render` as a whole: a realistic composition end to end, the
//! metadata dbclaim forces, isolation, errors, and property tests that no
//! input makes it panic.

use std::collections::BTreeMap;

use pretty_assertions::assert_eq;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::api::composition::ComposedTemplate;
use crate::api::{Engine, Size};
use crate::testing::ClaimFixture;

fn claim(v: Value) -> DatabaseClaim {
    serde_json::from_value(v).unwrap()
}

fn orders_claim() -> DatabaseClaim {
    crate::testing::claim("orders-db")
        .uid("1234-abcd")
        .size(Size::Medium)
        .storage_gb(50)
        .parameter("costCenter", "cc-42")
}

fn rds_composition() -> CompositionSpec {
    serde_json::from_value(json!({
        "engines": ["postgres"],
        "resources": [{
            "name": "instance",
            "base": {
                "apiVersion": "aws.dbclaim.io/v1alpha1",
                "kind": "RDSInstance",
                "metadata": {"labels": {"tier": "standard"}},
                "spec": {"forProvider": {
                    "region": "us-east-1", "engine": "postgres", "engineVersion": "16",
                    "dbInstanceClass": "db.t3.micro", "masterUsername": "dbadmin",
                    "tags": {"managed-by": "dbclaim"}
                }}
            },
            "patches": [
                {"type": "FromClaimFieldPath", "fromFieldPath": "spec.storageGB", "toFieldPath": "spec.forProvider.allocatedStorage"},
                {"fromFieldPath": "spec.size", "toFieldPath": "spec.forProvider.dbInstanceClass",
                 "transforms": [{"type": "map", "map": {"small": "db.t3.micro", "medium": "db.m6g.large", "large": "db.r6g.xlarge"}}],
                 "policy": {"fromFieldPath": "Required"}},
                {"fromFieldPath": "spec.version", "toFieldPath": "spec.forProvider.engineVersion"},
                {"fromFieldPath": "spec.databaseName", "toFieldPath": "spec.forProvider.dbName"},
                {"type": "CombineFromClaim", "combine": {"variables": [
                    {"fromFieldPath": "metadata.namespace"}, {"fromFieldPath": "metadata.name"}
                 ], "strategy": "string", "string": {"fmt": "%s/%s"}}, "toFieldPath": "spec.forProvider.tags.claim"},
                {"fromFieldPath": "metadata.namespace", "toFieldPath": "spec.forProvider.tags.namespace",
                 "transforms": [{"type": "string", "string": {"type": "Format", "fmt": "ns-%s"}}]},
                {"fromFieldPath": "spec.parameters.costCenter", "toFieldPath": "spec.forProvider.tags['cost.center']"},
                {"type": "ToClaimFieldPath", "fromFieldPath": "status.atProvider.endpoint.address", "toFieldPath": "status.outputs.endpoint"}
            ],
            "connectionDetails": [
                {"name": "host", "fromFieldPath": "status.atProvider.endpoint.address"},
                {"name": "port", "fromFieldPath": "status.atProvider.endpoint.port"},
                {"name": "username", "fromConnectionSecretKey": "username"},
                {"name": "password", "fromConnectionSecretKey": "password"}
            ]
        }, {
            "name": "config",
            "base": {"apiVersion": "v1", "kind": "ConfigMap", "data": {"engine": "postgres"}},
            "patches": [
                {"fromFieldPath": "spec.databaseName", "toFieldPath": "data.database"},
                {"fromFieldPath": "status.outputs.endpoint", "toFieldPath": "data.endpoint"}
            ],
            "readinessChecks": [{"type": "None"}],
            "connectionDetails": [
                {"name": "database", "fromFieldPath": "data.database"},
                {"name": "host", "value": "overridden-by-later-resource"}
            ]
        }]
    }))
    .unwrap()
}

fn render_with(
    claim: &DatabaseClaim,
    comp: &CompositionSpec,
    observed: &BTreeMap<String, Observed>,
) -> Result<Rendered, EngineError> {
    render(&RenderRequest {
        claim,
        composition_name: "aws-rds-postgres",
        composition: comp,
        observed,
        scope: &builtin_scope,
        generator: crate::engine::Generator::Random,
    })
}

#[test]
fn renders_a_realistic_rds_composition() {
    let out = render_with(&orders_claim(), &rds_composition(), &BTreeMap::new()).unwrap();
    assert_eq!(out.resources.len(), 2);
    let instance = &out.resources[0];
    assert_eq!(instance.name, "instance");
    assert_eq!(instance.scope, Scope::Cluster);
    assert_eq!(
        instance.object,
        json!({
            "apiVersion": "aws.dbclaim.io/v1alpha1",
            "kind": "RDSInstance",
            "metadata": {
                "name": crate::naming::composed_name("team-a", "orders-db", "instance"),
                "labels": {
                    "tier": "standard",
                    "dbclaim.io/claim-name": "orders-db",
                    "dbclaim.io/claim-namespace": "team-a",
                    "dbclaim.io/composition": "aws-rds-postgres",
                    "dbclaim.io/resource": "instance",
                    "dbclaim.io/deletion-policy": "Delete",
                    "dbclaim.io/claim-uid": "1234-abcd"
                }
            },
            "spec": {"forProvider": {
                "region": "us-east-1",
                "engine": "postgres",
                "engineVersion": "16",
                "dbInstanceClass": "db.m6g.large",
                "masterUsername": "dbadmin",
                "allocatedStorage": 50,
                "dbName": "orders_db",
                "tags": {
                    "managed-by": "dbclaim",
                    "claim": "team-a/orders-db",
                    "namespace": "ns-team-a",
                    "cost.center": "cc-42"
                }
            }}
        })
    );
    assert_eq!(
        instance.readiness,
        Readiness {
            ready: false,
            message: format!(
                "RDSInstance {}: not created yet",
                crate::naming::composed_name("team-a", "orders-db", "instance")
            )
        }
    );

    let config = &out.resources[1];
    assert_eq!(config.scope, Scope::Namespaced);
    assert_eq!(
        config.object,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": crate::naming::composed_name("team-a", "orders-db", "config"),
                "namespace": "team-a",
                "labels": {
                    "dbclaim.io/claim-name": "orders-db",
                    "dbclaim.io/claim-namespace": "team-a",
                    "dbclaim.io/composition": "aws-rds-postgres",
                    "dbclaim.io/resource": "config",
                    "dbclaim.io/deletion-policy": "Delete",
                    "dbclaim.io/claim-uid": "1234-abcd"
                },
                "ownerReferences": [{
                    "apiVersion": "dbclaim.io/v1alpha1", "kind": "DatabaseClaim", "name": "orders-db",
                    "uid": "1234-abcd", "controller": true, "blockOwnerDeletion": true
                }]
            },
            "data": {"engine": "postgres", "database": "orders_db"}
        })
    );
    assert_eq!(
        config.readiness,
        Readiness {
            ready: false,
            message: format!(
                "ConfigMap {}: not created yet",
                crate::naming::composed_name("team-a", "orders-db", "config")
            )
        }
    );
    assert_eq!(out.outputs, BTreeMap::new());
    // Only literal values are published before anything is observed.
    assert_eq!(
        out.connection,
        BTreeMap::from([("host".to_string(), b"overridden-by-later-resource".to_vec())])
    );
}

fn observed_rds() -> BTreeMap<String, Observed> {
    BTreeMap::from([
        (
            "instance".to_string(),
            Observed {
                object: Some(json!({
                    "apiVersion": "aws.dbclaim.io/v1alpha1", "kind": "RDSInstance",
                    "metadata": {"name": "team-a-orders-db-instance"},
                    "status": {
                        "atProvider": {"endpoint": {"address": "orders.abc.us-east-1.rds.amazonaws.com", "port": 5432}},
                        "conditions": [{"type": "Ready", "status": "True", "reason": "Available"}]
                    }
                })),
                connection: BTreeMap::from([
                    ("username".to_string(), b"dbadmin".to_vec()),
                    ("password".to_string(), b"s3cret".to_vec()),
                ]),
            },
        ),
        (
            "config".to_string(),
            Observed {
                object: Some(
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"database": "orders_db"}}),
                ),
                ..Observed::default()
            },
        ),
    ])
}

#[test]
fn observed_objects_give_readiness_outputs_and_connection() {
    let out = render_with(&orders_claim(), &rds_composition(), &observed_rds()).unwrap();
    assert!(
        out.resources.iter().all(|r| r.readiness.ready),
        "{:?}",
        out.resources
    );
    assert_eq!(
        out.outputs,
        BTreeMap::from([(
            "endpoint".to_string(),
            json!("orders.abc.us-east-1.rds.amazonaws.com")
        )])
    );
    // An output is usable by FromClaim patches in the same render.
    assert_eq!(
        out.resources[1].object["data"]["endpoint"],
        json!("orders.abc.us-east-1.rds.amazonaws.com")
    );
    let text: BTreeMap<&str, String> = out
        .connection
        .iter()
        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    assert_eq!(
        text,
        BTreeMap::from([
            ("database", "orders_db".to_string()),
            // The later resource's literal overrides the earlier resource's host.
            ("host", "overridden-by-later-resource".to_string()),
            ("password", "s3cret".to_string()),
            ("port", "5432".to_string()),
            ("username", "dbadmin".to_string()),
        ])
    );
    let secret = connection_secret(Engine::Postgres, "aws-rds-postgres", &out.connection);
    assert_eq!(secret.missing, Vec::<&str>::new());
    assert_eq!(
        String::from_utf8_lossy(&secret.data["uri"]),
        "postgresql://dbadmin:s3cret@overridden-by-later-resource:5432/orders_db"
    );
}

#[test]
fn readiness_message_quotes_the_object() {
    let mut observed = observed_rds();
    if let Some(o) = observed.get_mut("instance").and_then(|o| o.object.as_mut()) {
        o["status"]["conditions"] = json!([{"type": "Ready", "status": "False", "reason": "Creating", "message": "DB instance is being created"}]);
    }
    let out = render_with(&orders_claim(), &rds_composition(), &observed).unwrap();
    assert_eq!(
        out.resources[0].readiness.message,
        format!(
            "RDSInstance {}: condition Ready is \"False\" (Creating: DB instance is being created)",
            crate::naming::composed_name("team-a", "orders-db", "instance")
        )
    );
}

fn single(template: Value) -> CompositionSpec {
    serde_json::from_value(json!({"engines": ["postgres"], "resources": [template]})).unwrap()
}

fn render_one(template: Value) -> Result<Rendered, EngineError> {
    render_with(&orders_claim(), &single(template), &BTreeMap::new())
}

#[test]
fn patch_errors_name_resource_index_and_paths() {
    let mut c = orders_claim();
    c.spec.size = crate::api::Size::Large;
    let mut comp = rds_composition();
    if let Some(m) = comp.resources[0].patches[1].transforms[0].map.as_mut() {
        m.remove("large");
    }
    let err = render_with(&c, &comp, &BTreeMap::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "resource \"instance\", patch 1 (spec.size → spec.forProvider.dbInstanceClass): \
         map transform has no entry for \"large\" (it has: \"medium\", \"small\")"
    );
    assert_eq!(err.resource(), Some("instance"));
    assert!(matches!(err, EngineError::Patch { index: 1, .. }));
}

#[test]
fn namespaced_objects_stay_in_the_claims_namespace() {
    // Base aimed elsewhere.
    let err = render_one(json!({"name": "cm", "base": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "kube-system"}}}))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "resource \"cm\": the composed ConfigMap is aimed at namespace \"kube-system\", but objects composed for a claim \
         may only live in the claim's namespace \"team-a\"; remove metadata.namespace from base and patches"
    );
    // A patch aimed elsewhere (from a claim label a developer controls).
    let mut c = orders_claim();
    c.metadata.labels = Some(BTreeMap::from([(
        "target".to_string(),
        "other".to_string(),
    )]));
    let comp = single(
        json!({"name": "s", "base": {"apiVersion": "v1", "kind": "Secret"},
        "patches": [{"fromFieldPath": "metadata.labels.target", "toFieldPath": "metadata.namespace"}]}),
    );
    let err = render_with(&c, &comp, &BTreeMap::new()).unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Resource {
                error: ResourceError::NamespaceEscape { .. },
                ..
            }
        ),
        "{err}"
    );
    // A Secret stays namespaced even when the scope source calls it cluster-scoped.
    let comp = single(
        json!({"name": "s", "base": {"apiVersion": "v1", "kind": "Secret", "metadata": {"namespace": "x"}}}),
    );
    let err = render(&RenderRequest {
        claim: &orders_claim(),
        composition_name: "c",
        composition: &comp,
        observed: &BTreeMap::new(),
        scope: &|_: &str, _: &str| Scope::Cluster,
        generator: crate::engine::Generator::Random,
    })
    .unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::Resource {
                error: ResourceError::NamespaceEscape { .. },
                ..
            }
        ),
        "{err}"
    );
    // The claim's own namespace, or an empty one, is fine.
    let ok = render_one(json!({"name": "cm", "base": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "team-a"}}}))
        .unwrap();
    assert_eq!(
        ok.resources[0].object["metadata"]["namespace"],
        json!("team-a")
    );
    let err = render_one(json!({"name": "cm", "base": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": 5}}}))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("metadata.namespace must be a string"),
        "{err}"
    );
}

#[test]
fn dbclaim_owns_name_labels_namespace_and_owners() {
    let out = render_one(json!({"name": "db", "base": {
        "apiVersion": "postgres.dbclaim.io/v1alpha1", "kind": "Database",
        "metadata": {"name": "chosen", "namespace": "ignored-for-cluster-kinds",
                     "labels": {"dbclaim.io/claim-name": "spoofed", "keep": "me",
                                "dbclaim.io/claim-uid": "forged", "dbclaim.io/deletion-policy": "Orphan"},
                     "ownerReferences": [{"name": "x"}]}
    }}))
    .unwrap();
    let meta = &out.resources[0].object["metadata"];
    assert_eq!(
        meta,
        &json!({
            "name": crate::naming::composed_name("team-a", "orders-db", "db"),
            "labels": {
                "keep": "me",
                "dbclaim.io/claim-name": "orders-db",
                "dbclaim.io/claim-namespace": "team-a",
                "dbclaim.io/composition": "aws-rds-postgres",
                "dbclaim.io/resource": "db",
                "dbclaim.io/deletion-policy": "Delete",
                "dbclaim.io/claim-uid": "1234-abcd"
            }
        })
    );
    assert_eq!(out.resources[0].scope, Scope::Cluster);
}

#[test]
fn offline_claims_without_uid_get_no_owner_reference() {
    let c = claim(json!({"metadata": {"name": "orders-db"}, "spec": {"engine": "mysql"}}));
    let comp = single(json!({"name": "cm", "base": {"apiVersion": "v1", "kind": "ConfigMap"}}));
    let out = render_with(&c, &comp, &BTreeMap::new()).unwrap();
    let meta = &out.resources[0].object["metadata"];
    assert!(meta.get("ownerReferences").is_none());
    // No namespace in the claim: "default", as kubectl would.
    assert_eq!(meta["namespace"], json!("default"));
    assert_eq!(
        meta["name"],
        json!(crate::naming::composed_name("default", "orders-db", "cm"))
    );
}

/// An object made under the earlier naming (`<ns>-<claim>-<resource>`, no
/// hash) keeps its name: the claim's status is the record.
#[test]
fn a_name_recorded_in_the_status_is_kept() {
    let c = claim(json!({
        "metadata": {"name": "orders-db", "namespace": "team-a"},
        "spec": {"engine": "postgres"},
        "status": {"resources": [
            {"name": "cm", "apiVersion": "v1", "kind": "ConfigMap", "resourceName": "team-a-orders-db-cm", "ready": true},
            {"name": "other", "apiVersion": "v1", "kind": "ConfigMap", "resourceName": "elsewhere", "ready": true}
        ]}
    }));
    let comp: CompositionSpec = serde_json::from_value(json!({
        "engines": ["postgres"],
        "resources": [
            {"name": "cm", "base": {"apiVersion": "v1", "kind": "ConfigMap"}},
            {"name": "new", "base": {"apiVersion": "v1", "kind": "ConfigMap"}}
        ]
    }))
    .unwrap();
    let out = render_with(&c, &comp, &BTreeMap::new()).unwrap();
    assert_eq!(
        out.resources[0].object["metadata"]["name"],
        json!("team-a-orders-db-cm")
    );
    assert_eq!(
        out.resources[1].object["metadata"]["name"],
        json!(crate::naming::composed_name("team-a", "orders-db", "new"))
    );
}

#[test]
fn long_names_are_cut_and_labels_fit() {
    let long = "a".repeat(80);
    let c = claim(
        json!({"metadata": {"name": long, "namespace": "team-a"}, "spec": {"engine": "postgres"}}),
    );
    let comp = single(json!({"name": "cm", "base": {"apiVersion": "v1", "kind": "ConfigMap"}}));
    let out = render_with(&c, &comp, &BTreeMap::new()).unwrap();
    let meta = &out.resources[0].object["metadata"];
    assert_eq!(
        meta["name"],
        json!(crate::naming::composed_name("team-a", &long, "cm"))
    );
    assert!(
        meta["labels"]["dbclaim.io/claim-name"]
            .as_str()
            .is_some_and(|v| v.len() <= 63)
    );
}

#[test]
fn resource_level_errors() {
    let cases = vec![
        (
            json!({"name": "x", "base": {"kind": "ConfigMap"}}),
            "resource \"x\": the composed object has no apiVersion; set it in base",
        ),
        (
            json!({"name": "x", "base": {"apiVersion": "v1"}}),
            "the composed object has no kind",
        ),
        (
            json!({"name": "x", "base": {"apiVersion": "v1", "kind": ""}}),
            "has no kind",
        ),
        (
            json!({"name": "x", "base": {"apiVersion": 1, "kind": "ConfigMap"}}),
            "apiVersion must be a string, not an integer",
        ),
        (
            json!({"name": "x", "base": "text"}),
            "base must be an object (a Kubernetes manifest), not a string",
        ),
        (
            json!({"name": "x", "base": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": []}}),
            "metadata must be an object, not an array",
        ),
        (
            json!({"name": "x", "base": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"labels": "a"}}}),
            "metadata.labels must be an object, not a string",
        ),
        (
            json!({"name": "x", "base": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"labels": {"a": 1}}}}),
            "label \"a\" must have a string value, not an integer",
        ),
        (
            json!({"name": "x", "base": {"apiVersion": "v1", "kind": "ConfigMap"}, "readinessChecks": [{"type": "None"}, {"type": "MatchTrue"}]}),
            "resource \"x\", readiness check 1 (MatchTrue): a MatchTrue check needs \"fieldPath\"",
        ),
        (
            json!({"name": "x", "base": {"apiVersion": "v1", "kind": "ConfigMap"}, "connectionDetails": [{"name": "host"}]}),
            "resource \"x\", connection detail \"host\": set one of fromConnectionSecretKey, fromFieldPath or value",
        ),
        (
            json!({"name": "x", "base": {"apiVersion": "v1", "kind": "ConfigMap"},
                   "patches": [{"fromFieldPath": "spec.size"}, {"type": "ToClaimFieldPath", "fromFieldPath": "status.a", "toFieldPath": "spec.size"}]}),
            "resource \"x\", patch 1 (status.a → spec.size): ToClaimFieldPath may only write status.outputs.<key> of the claim, not spec.size",
        ),
    ];
    for (t, want) in cases {
        let err = render_one(t.clone()).expect_err(&t.to_string());
        assert!(
            err.to_string().contains(want),
            "{t}:\n  got  {err}\n  want {want}"
        );
    }
}

#[test]
fn a_connection_secret_is_named_after_its_namespaced_object() {
    let cluster = |suffix: &str| {
        json!({"name": "cluster", "base": {"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster"},
               "connectionSecret": {"nameSuffix": suffix},
               "connectionDetails": [{"name": "password", "fromConnectionSecretKey": "password"}]})
    };
    let r = render_one(cluster("-app")).unwrap();
    let name = r.resources[0].object["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        r.resources[0].connection_secret.as_deref(),
        Some(format!("{name}-app").as_str())
    );
    // Without connectionSecret: none.
    let plain = render_one(json!({"name": "x", "base": {"apiVersion": "v1", "kind": "ConfigMap"}}))
        .unwrap();
    assert_eq!(plain.resources[0].connection_secret, None);
    // A name that no Secret can have.
    let err = render_one(cluster("-")).unwrap_err().to_string();
    assert!(
        err.starts_with("resource \"cluster\": connectionSecret: ") && err.contains("-\" "),
        "{err}"
    );
    // A cluster-scoped object has no namespace to read a Secret in.
    let err = render_one(json!({"name": "db",
        "base": {"apiVersion": "postgres.dbclaim.io/v1alpha1", "kind": "Database"},
        "connectionSecret": {"nameSuffix": "-app"}}))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "resource \"db\": connectionSecret names a Secret in the object's namespace, but the \
         composed Database is cluster-scoped; use spec.writeConnectionSecretToRef"
    );
}

#[test]
fn duplicate_resources_and_nameless_claims_are_errors() {
    let comp: CompositionSpec =
        serde_json::from_value(json!({"engines": ["postgres"], "resources": [
            {"name": "a", "base": {"apiVersion": "v1", "kind": "ConfigMap"}},
            {"name": "a", "base": {"apiVersion": "v1", "kind": "ConfigMap"}}
        ]}))
        .unwrap();
    assert_eq!(
        render_with(&orders_claim(), &comp, &BTreeMap::new()),
        Err(EngineError::DuplicateResource("a".into()))
    );
    let c = claim(json!({"metadata": {}, "spec": {"engine": "postgres"}}));
    assert_eq!(
        render_with(&c, &rds_composition(), &BTreeMap::new()),
        Err(EngineError::ClaimWithoutName)
    );
}

#[test]
fn resources_come_out_in_composition_order() {
    let names = ["zeta", "alpha", "mid"];
    let resources: Vec<ComposedTemplate> = names
        .iter()
        .map(|n| {
            serde_json::from_value(
                json!({"name": n, "base": {"apiVersion": "v1", "kind": "ConfigMap"}}),
            )
            .unwrap()
        })
        .collect();
    let comp = CompositionSpec {
        engines: vec![Engine::Postgres],
        resources,
    };
    let out = render_with(&orders_claim(), &comp, &BTreeMap::new()).unwrap();
    assert_eq!(
        out.resources
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        names
    );
}

#[test]
fn a_removed_claim_key_disappears_from_the_composed_object() {
    let comp = single(
        json!({"name": "cm", "base": {"apiVersion": "v1", "kind": "ConfigMap", "data": {"stale": "1"}},
        "patches": [{"fromFieldPath": "spec.parameters", "toFieldPath": "data"}]}),
    );
    let mut c = orders_claim();
    c.spec.parameters = BTreeMap::from([
        ("a".to_string(), "1".to_string()),
        ("b".to_string(), "2".to_string()),
    ]);
    let out = render_with(&c, &comp, &BTreeMap::new()).unwrap();
    assert_eq!(out.resources[0].object["data"], json!({"a": "1", "b": "2"}));
    c.spec.parameters.remove("b");
    let out = render_with(&c, &comp, &BTreeMap::new()).unwrap();
    assert_eq!(out.resources[0].object["data"], json!({"a": "1"}));
}

#[test]
fn combine_to_claim_and_required_sources_in_render() {
    let comp = single(
        json!({"name": "db", "base": {"apiVersion": "postgres.dbclaim.io/v1alpha1", "kind": "Database"},
        "patches": [
            {"type": "CombineToClaim", "combine": {"variables": [
                {"fromFieldPath": "status.atProvider.host"}, {"fromFieldPath": "status.atProvider.port"}
             ], "string": {"fmt": "%s:%d"}}, "toFieldPath": "status.outputs.address"},
            {"fromFieldPath": "spec.version", "toFieldPath": "spec.forProvider.version", "policy": {"fromFieldPath": "Required"}}
        ]}),
    );
    let observed = BTreeMap::from([(
        "db".to_string(),
        Observed {
            object: Some(json!({"status": {"atProvider": {"host": "pg.internal", "port": 5432}}})),
            ..Observed::default()
        },
    )]);
    let err = render_with(&orders_claim(), &comp, &observed).unwrap_err();
    assert_eq!(
        err.to_string(),
        "resource \"db\", patch 1 (spec.version → spec.forProvider.version): \
         the claim has no value at spec.version, and the patch's policy.fromFieldPath is Required"
    );
    let mut c = orders_claim();
    c.spec.version = Some("16".into());
    let out = render_with(&c, &comp, &observed).unwrap();
    assert_eq!(
        out.outputs,
        BTreeMap::from([("address".to_string(), json!("pg.internal:5432"))])
    );
    assert_eq!(
        out.resources[0].object["spec"]["forProvider"]["version"],
        json!("16")
    );
}

// ---- property tests: nothing panics ----

use crate::engine::transform::tests::arb_json;

/// JSON biased toward the shapes render reads, so that a useful share of
/// generated claims and compositions deserialise.
fn arb_claim() -> impl Strategy<Value = Value> {
    (
        prop_oneof![4 => Just(json!("postgres")), 4 => Just(json!("mysql")), 1 => arb_json()],
        prop_oneof![4 => Just(json!("small")), 4 => Just(json!("large")), 1 => arb_json()],
        prop_oneof![4 => Just(Value::Null), 4 => "[0-9]{1,2}".prop_map(Value::String), 1 => arb_json()],
        prop::option::weighted(0.95, "[a-z0-9-]{1,70}"),
        prop::option::of("[a-z0-9-]{0,20}"),
        prop::option::of("[a-z0-9-]{1,10}"),
        prop::collection::btree_map("[a-z.]{1,6}", "[a-z0-9]{0,6}", 0..3),
    )
        .prop_map(|(engine, size, extra, name, ns, uid, params)| {
            json!({
                "metadata": {"name": name, "namespace": ns, "uid": uid, "labels": params.clone()},
                "spec": {"engine": engine, "size": size, "parameters": params, "storageGB": 20, "version": extra}
            })
        })
}

fn arb_path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("spec.size".to_string()),
        Just("spec.parameters".to_string()),
        Just("metadata.name".to_string()),
        Just("metadata.namespace".to_string()),
        Just("status.outputs.x".to_string()),
        Just("spec.forProvider.tags['a.b']".to_string()),
        Just("metadata.labels".to_string()),
        Just("apiVersion".to_string()),
        Just("kind".to_string()),
        Just("metadata".to_string()),
        "[a-z.\\[\\]'0-9]{0,16}",
    ]
}

fn arb_template() -> impl Strategy<Value = Value> {
    let patch = (
        prop_oneof![Just("FromClaimFieldPath"), Just("ToClaimFieldPath"), Just("CombineFromClaim"), Just("CombineToClaim")],
        arb_path(),
        arb_path(),
        prop_oneof![Just("Optional"), Just("Required")],
        arb_json(),
    )
        .prop_map(|(ty, from, to, policy, tr)| {
            json!({"type": ty, "fromFieldPath": from, "toFieldPath": to, "policy": {"fromFieldPath": policy},
                   "combine": {"variables": [{"fromFieldPath": from}], "string": {"fmt": "%v"}},
                   "transforms": [{"type": "map", "map": {"small": tr}}]})
        });
    (
        prop_oneof![Just("a".to_string()), Just("b".to_string()), "[a-z]{1,3}"],
        prop_oneof![
            Just(json!({"apiVersion": "v1", "kind": "ConfigMap"})),
            Just(json!({"apiVersion": "aws.dbclaim.io/v1alpha1", "kind": "RDSInstance", "spec": {}})),
            arb_json(),
        ],
        prop::collection::vec(patch, 0..4),
        prop::bool::ANY,
    )
        .prop_map(|(name, base, patches, with_checks)| {
            let checks = if with_checks {
                json!([{"type": "MatchString", "fieldPath": "status.x", "matchString": "y"}, {"type": "NonEmpty", "fieldPath": "spec"}])
            } else {
                json!([])
            };
            json!({"name": name, "base": base, "patches": patches, "readinessChecks": checks,
                   "connectionDetails": [{"name": "host", "fromFieldPath": "status.x"}, {"name": "p", "fromConnectionSecretKey": "p"}]})
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn render_never_panics_on_shaped_input(
        claim_v in arb_claim(),
        templates in prop::collection::vec(arb_template(), 0..4),
        observed_v in arb_json(),
    ) {
        let comp_v = json!({"engines": ["postgres"], "resources": templates});
        if let (Ok(c), Ok(comp)) = (
            serde_json::from_value::<DatabaseClaim>(claim_v),
            serde_json::from_value::<CompositionSpec>(comp_v),
        ) {
            let observed: BTreeMap<String, Observed> = comp.resources.iter()
                .map(|t| (t.name.clone(), Observed { object: Some(observed_v.clone()), connection: BTreeMap::new() }))
                .collect();
            let first = render_with(&c, &comp, &observed);
            // Rendering is a pure function: the same input, the same output.
            prop_assert_eq!(&first, &render_with(&c, &comp, &observed));
            if let Ok(out) = first {
                // Whatever rendered carries dbclaim's identity.
                for r in &out.resources {
                    prop_assert!(r.object["metadata"]["labels"]["dbclaim.io/resource"].is_string());
                    let name = r.object["metadata"]["name"].as_str().unwrap_or_default();
                    prop_assert!(crate::naming::is_dns_label(name), "{}", name);
                    if r.scope == Scope::Namespaced {
                        prop_assert_eq!(&r.object["metadata"]["namespace"], &json!(c.metadata.namespace.clone().filter(|n| !n.is_empty()).unwrap_or("default".into())));
                    } else {
                        prop_assert!(r.object["metadata"].get("namespace").is_none());
                    }
                }
            }
            let _ = validate(&comp);
        }
    }

    #[test]
    fn render_never_panics_on_arbitrary_json(claim_v in arb_json(), comp_v in arb_json()) {
        if let (Ok(c), Ok(comp)) = (
            serde_json::from_value::<DatabaseClaim>(claim_v),
            serde_json::from_value::<CompositionSpec>(comp_v),
        ) {
            let _ = render_with(&c, &comp, &BTreeMap::new());
            let _ = validate(&comp);
        }
    }
}

#[test]
fn deletion_policy_and_uid_are_recorded_on_every_object() {
    let comp = single(
        json!({"name": "cm", "base": {"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"labels": {"dbclaim.io/claim-uid": "forged"}}}}),
    );
    let mut c = orders_claim();
    c.spec.deletion_policy = crate::api::DeletionPolicy::Orphan;
    let out = render_with(&c, &comp, &BTreeMap::new()).unwrap();
    let labels = &out.resources[0].object["metadata"]["labels"];
    assert_eq!(labels["dbclaim.io/deletion-policy"], "Orphan");
    assert_eq!(labels["dbclaim.io/claim-uid"], "1234-abcd");
    // Offline (no UID): no UID label, and a forged one is dropped.
    let offline = claim(json!({"metadata": {"name": "orders-db"}, "spec": {"engine": "postgres"}}));
    let out = render_with(&offline, &comp, &BTreeMap::new()).unwrap();
    let labels = &out.resources[0].object["metadata"]["labels"];
    assert_eq!(labels["dbclaim.io/deletion-policy"], "Delete");
    assert!(labels.get("dbclaim.io/claim-uid").is_none(), "{labels}");
}

fn generated_composition() -> CompositionSpec {
    serde_json::from_value(json!({
        "engines": ["postgres"],
        "resources": [{
            "name": "password",
            "base": {"apiVersion": "v1", "kind": "Secret", "stringData": {"username": "app"}},
            "patches": [{"type": "Generate", "generate": {"type": "Password", "length": 32},
                         "toFieldPath": "stringData.password"}],
            "readinessChecks": [{"type": "None"}],
            "connectionDetails": [
                {"name": "username", "fromConnectionSecretKey": "username"},
                {"name": "password", "fromConnectionSecretKey": "password"}
            ]
        }]
    }))
    .unwrap()
}

/// The Secret as the API server stores what `desired` asked for.
fn stored(desired: &Value) -> BTreeMap<String, Observed> {
    let object = crate::engine::generate::as_stored(desired);
    BTreeMap::from([(
        "password".to_string(),
        Observed {
            object: Some(object),
            connection: BTreeMap::new(),
        },
    )])
}

fn with_rotation(mut c: DatabaseClaim, at: i64) -> DatabaseClaim {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    let status = c.status.get_or_insert_with(Default::default);
    status.credentials = Some(crate::api::claim::CredentialsStatus {
        rotated_at: Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(at).unwrap_or_default(),
        )),
        ..Default::default()
    });
    c
}

#[test]
fn generated_values_are_kept_and_change_once_per_rotation() {
    let comp = generated_composition();
    let claim = orders_claim();
    let first = render_with(&claim, &comp, &BTreeMap::new()).unwrap();
    let object = &first.resources[0].object;
    let password = object["stringData"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(password.len(), 32);
    // No rotation asked: no annotation, the object renders as before.
    assert!(object.pointer("/metadata/annotations").is_none());

    // Re-renders over what was stored keep it, and publish the Secret's own keys.
    let observed = stored(object);
    for _ in 0..3 {
        let again = render_with(&claim, &comp, &observed).unwrap();
        assert_eq!(again.resources[0].object, *object);
        assert_eq!(
            again.connection.get("password").map(Vec::as_slice),
            Some(password.as_bytes())
        );
        assert_eq!(
            again.connection.get("username").map(Vec::as_slice),
            Some(&b"app"[..])
        );
    }

    // A rotation (a new token) makes one new value, carried with the token.
    let rotated_claim = with_rotation(claim, 1_800_000_000);
    let rotated = render_with(&rotated_claim, &comp, &observed).unwrap();
    let object2 = &rotated.resources[0].object;
    let password2 = object2["stringData"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(password2, password);
    assert_eq!(
        object2
            .pointer("/metadata/annotations/dbclaim.io~1rotate-credentials")
            .and_then(Value::as_str),
        Some("2027-01-15T08:00:00Z")
    );
    // ... and keeps it from then on.
    let observed2 = stored(object2);
    let again = render_with(&rotated_claim, &comp, &observed2).unwrap();
    assert_eq!(again.resources[0].object, *object2);
}

#[test]
fn offline_renders_never_show_a_generated_or_observed_value() {
    let comp = generated_composition();
    let claim = orders_claim();
    let desired = render_with(&claim, &comp, &BTreeMap::new()).unwrap();
    let secret = desired.resources[0].object["stringData"]["password"]
        .as_str()
        .unwrap()
        .to_string();
    let offline = render(&RenderRequest {
        claim: &claim,
        composition_name: "c",
        composition: &comp,
        observed: &stored(&desired.resources[0].object),
        scope: &builtin_scope,
        generator: crate::engine::Generator::Placeholder,
    })
    .unwrap();
    let text = offline.resources[0].object.to_string();
    assert!(!text.contains(&secret));
    assert!(text.contains("(generated Password, 32 characters)"));
}

#[test]
fn the_grace_period_is_handed_to_composed_objects() {
    let mut claim = orders_claim();
    claim.spec.credentials = Some(crate::api::claim::CredentialsSpec {
        rotation_days: Some(30),
        grace_minutes: Some(2),
    });
    let out = render_with(&claim, &rds_composition(), &BTreeMap::new()).unwrap();
    assert_eq!(
        out.resources[0]
            .object
            .pointer("/metadata/annotations/dbclaim.io~1credentials-grace-minutes"),
        Some(&json!("2"))
    );
}
