use super::*;
use crate::api::claim::{
    ConnectionSecretRef, CredentialsSpec, CredentialsStatus, DatabaseClaimStatus, RevisionRef,
    UpdatePolicy,
};
use crate::api::{DatabaseClaim, DatabaseClaimSpec, DeletionPolicy, Engine, NameRef, Size};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use proptest::prelude::*;
use serde_json::json;

fn alpha(storage_gb: i64) -> Value {
    json!({
        "apiVersion": V1ALPHA1, "kind": "DatabaseClaim",
        "metadata": {"name": "db", "namespace": "team-a"},
        "spec": {"engine": "postgres", "storageGB": storage_gb},
        "status": {"observedGeneration": 3},
    })
}

#[test]
fn storage_gb_is_a_gib_quantity() {
    let beta = convert(&alpha(50), V1BETA1).unwrap();
    assert_eq!(beta["apiVersion"], V1BETA1);
    assert_eq!(
        beta["spec"],
        json!({"engine": "postgres", "storage": "50Gi"})
    );
    assert_eq!(beta["status"], json!({"observedGeneration": 3}));
    assert_eq!(convert(&beta, V1ALPHA1).unwrap(), alpha(50));
}

#[test]
fn another_spelling_survives_v1alpha1() {
    let mut beta = convert(&alpha(1024), V1BETA1).unwrap();
    beta["spec"]["storage"] = json!("1Ti");
    let old = convert(&beta, V1ALPHA1).unwrap();
    assert_eq!(old["spec"]["storageGB"], 1024);
    assert_eq!(old["metadata"]["annotations"][STORAGE_ANNOTATION], "1Ti");
    assert_eq!(convert(&old, V1BETA1).unwrap(), beta);
}

#[test]
fn a_v1alpha1_edit_wins_over_a_kept_spelling() {
    let mut old = alpha(2048);
    old["metadata"]["annotations"] = json!({STORAGE_ANNOTATION: "1Ti", "team": "a"});
    let beta = convert(&old, V1BETA1).unwrap();
    assert_eq!(beta["spec"]["storage"], "2048Gi");
    assert_eq!(beta["metadata"]["annotations"], json!({"team": "a"}));
}

#[test]
fn refuses_what_it_cannot_convert() {
    let mut beta = convert(&alpha(1), V1BETA1).unwrap();
    beta["spec"]["storage"] = json!("1.5Gi");
    assert!(matches!(
        convert(&beta, V1ALPHA1),
        Err(ConversionError::Storage(_))
    ));
    assert!(matches!(
        convert(&alpha(1), "dbclaim.io/v2"),
        Err(ConversionError::UnknownVersion(_))
    ));
    let mut other = alpha(1);
    other["kind"] = json!("Composition");
    assert!(matches!(
        convert(&other, V1BETA1),
        Err(ConversionError::Kind(_))
    ));
}

#[test]
fn review_converts_every_object_or_fails_naming_one() {
    let request = |objects: Vec<Value>| -> ConversionReview {
        serde_json::from_value(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
            "request": {"uid": "u-1", "desiredAPIVersion": V1BETA1, "objects": objects},
        }))
        .unwrap()
    };
    let ok = serde_json::to_value(review(request(vec![alpha(5), alpha(6)]))).unwrap();
    assert_eq!(ok["response"]["uid"], "u-1");
    assert_eq!(ok["response"]["result"]["status"], "Success");
    assert_eq!(
        ok["response"]["convertedObjects"][1]["spec"]["storage"],
        "6Gi"
    );

    let mut bad = alpha(5);
    bad["spec"]["storageGB"] = json!("five");
    let failed = serde_json::to_value(review(request(vec![alpha(5), bad]))).unwrap();
    assert_eq!(failed["response"]["result"]["status"], "Failure");
    let message = failed["response"]["result"]["message"].as_str().unwrap();
    assert!(
        message.contains("team-a/db") && message.contains("storageGB"),
        "{message}"
    );
}

// ---- property: both directions are identity over valid claims -------------

fn word() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,10}"
}

fn time() -> impl Strategy<Value = Time> {
    (0i64..4_000_000_000)
        .prop_map(|s| Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap_or_default()))
}

fn condition() -> impl Strategy<Value = Condition> {
    (
        word(),
        word(),
        word(),
        time(),
        proptest::option::of(0i64..100),
    )
        .prop_map(|(type_, reason, message, t, generation)| Condition {
            type_,
            status: "True".into(),
            reason,
            message,
            last_transition_time: t,
            observed_generation: generation,
        })
}

fn status() -> impl Strategy<Value = Option<DatabaseClaimStatus>> {
    proptest::option::of(
        (
            proptest::option::of(0i64..1000),
            proptest::collection::vec(condition(), 0..3),
            proptest::option::of(word()),
            proptest::option::of((word(), 1i64..50)),
            proptest::collection::btree_map(word(), word(), 0..3),
            proptest::option::of((proptest::option::of(time()), proptest::option::of(word()))),
        )
            .prop_map(|(generation, conditions, comp, rev, outputs, creds)| {
                DatabaseClaimStatus {
                    observed_generation: generation,
                    conditions,
                    composition: comp.clone().map(|name| NameRef { name }),
                    composition_revision: rev
                        .map(|(name, revision)| RevisionRef { name, revision }),
                    connection_secret_ref: comp.map(|name| NameRef { name }),
                    outputs: outputs
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect(),
                    credentials: creds.map(|(rotated_at, last_request)| CredentialsStatus {
                        rotated_at,
                        next_rotation_at: None,
                        last_request,
                    }),
                    ..Default::default()
                }
            }),
    )
}

fn claim() -> impl Strategy<Value = DatabaseClaim> {
    (
        (
            prop_oneof![Just(Engine::Postgres), Just(Engine::Mysql)],
            prop_oneof![Just(Size::Small), Just(Size::Medium), Just(Size::Large)],
            1i64..=65536,
            proptest::option::of("[0-9]{1,2}"),
            proptest::option::of("[a-z_][a-z0-9_]{0,20}"),
            proptest::collection::btree_map("[A-Za-z0-9]{1,8}", word(), 0..4),
        ),
        (
            proptest::option::of(word()),
            proptest::option::of(word()),
            prop_oneof![Just(DeletionPolicy::Delete), Just(DeletionPolicy::Orphan)],
            prop_oneof![Just(UpdatePolicy::Automatic), Just(UpdatePolicy::Manual)],
            proptest::option::of((
                proptest::option::of(1i64..3650),
                proptest::option::of(0i64..100),
            )),
            proptest::collection::btree_map("[a-z]{1,8}", word(), 0..3),
        ),
        status(),
    )
        .prop_map(
            |(
                (engine, size, storage_gb, version, database_name, parameters),
                (composition, secret, deletion_policy, update, credentials, annotations),
                status,
            )| {
                DatabaseClaim {
                    metadata: ObjectMeta {
                        name: Some("db".into()),
                        namespace: Some("team-a".into()),
                        annotations: (!annotations.is_empty()).then_some(annotations),
                        resource_version: Some("42".into()),
                        ..Default::default()
                    },
                    spec: DatabaseClaimSpec {
                        engine,
                        version,
                        size,
                        storage_gb,
                        database_name,
                        parameters,
                        composition_ref: composition.map(|name| NameRef { name }),
                        composition_selector: None,
                        write_connection_secret_to_ref: secret
                            .map(|name| ConnectionSecretRef { name }),
                        deletion_policy,
                        composition_update_policy: update,
                        composition_revision_ref: None,
                        credentials: credentials.map(|(rotation_days, grace_minutes)| {
                            CredentialsSpec {
                                rotation_days,
                                grace_minutes,
                            }
                        }),
                    },
                    status,
                }
            },
        )
}

/// A GiB count spelled as a v1beta1 writer might: `NGi`, `Ti`, `Mi`, `Ki`, bytes.
fn spelling(gib: i64) -> impl Strategy<Value = String> {
    let mut options = vec![
        format!("{gib}Gi"),
        format!("{}Mi", gib * 1024),
        format!("{}Ki", gib * 1024 * 1024),
        format!("{}", gib << 30),
    ];
    if gib % 1024 == 0 {
        options.push(format!("{}Ti", gib / 1024));
    }
    proptest::sample::select(options)
}

proptest! {
    #[test]
    fn v1alpha1_to_v1beta1_and_back_is_identity(c in claim()) {
        let old = serde_json::to_value(&c).unwrap();
        let beta = convert(&old, V1BETA1).unwrap();
        // The typed v1beta1 reads it: the shape the CRD serves.
        let typed: crate::api::v1beta1::DatabaseClaim = serde_json::from_value(beta.clone()).unwrap();
        prop_assert_eq!(storage_gib(&typed.spec.storage.0), Some(c.spec.storage_gb));
        prop_assert_eq!(&typed.status, &c.status);
        prop_assert_eq!(convert(&beta, V1ALPHA1).unwrap(), old);
    }

    #[test]
    fn v1beta1_to_v1alpha1_and_back_is_identity(
        (c, storage) in claim().prop_flat_map(|c| {
            let gib = c.spec.storage_gb;
            (Just(c), spelling(gib))
        })
    ) {
        let mut beta = convert(&serde_json::to_value(&c).unwrap(), V1BETA1).unwrap();
        beta["spec"]["storage"] = Value::String(storage);
        let old = convert(&beta, V1ALPHA1).unwrap();
        let typed: DatabaseClaim = serde_json::from_value(old.clone()).unwrap();
        prop_assert_eq!(typed.spec.storage_gb, c.spec.storage_gb);
        prop_assert_eq!(convert(&old, V1BETA1).unwrap(), beta);
    }

    /// What the operator does with every claim it watches and writes:
    /// stored (v1beta1) typed → v1alpha1 typed → v1beta1 typed, unchanged.
    #[test]
    fn typed_claims_round_trip_through_the_storage_version(c in claim()) {
        let stored: crate::api::v1beta1::DatabaseClaim = typed(&c, V1BETA1).unwrap();
        let served: DatabaseClaim = typed(&stored, V1ALPHA1).unwrap();
        prop_assert_eq!(&served, &c);
        let again: crate::api::v1beta1::DatabaseClaim = typed(&served, V1BETA1).unwrap();
        prop_assert_eq!(again, stored);
    }
}
