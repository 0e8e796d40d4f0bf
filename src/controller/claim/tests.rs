//! Table tests of the pure decisions of a pass: Ready, the events a
//! status change announces, and the status key.

use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use serde_json::json;

use super::apply::Applied;
use super::error::{PassError, RenderError, SecretError, SelectError, failed, requeue};
use super::secret::Published;
use super::status::{events_for, ready_condition, status_key};
use super::{Pass, normal};
use crate::api::claim::ResourceStatus;
use crate::api::{DatabaseClaimStatus, NameRef};
use crate::conditions::{self, Cond, ReadyReason, SyncedReason};
use crate::engine::EngineError;

fn status(conditions: &[(&str, &str, &str, &str)]) -> DatabaseClaimStatus {
    let conditions: Vec<_> = conditions
        .iter()
        .map(|(t, s, r, m)| {
            json!({"type": t, "status": s, "reason": r, "message": m,
            "lastTransitionTime": "2026-01-01T00:00:00Z"})
        })
        .collect();
    serde_json::from_value(json!({ "conditions": conditions })).unwrap_or_default()
}

fn with(synced: &Cond, ready: &Cond) -> DatabaseClaimStatus {
    let mut s = DatabaseClaimStatus::default();
    conditions::set(&mut s.conditions, synced, Some(1), Timestamp::UNIX_EPOCH);
    conditions::set(&mut s.conditions, ready, Some(1), Timestamp::UNIX_EPOCH);
    s
}

fn pass(resources: usize, not_ready: &[&str], incomplete: Option<&str>) -> Pass {
    let resource = ResourceStatus {
        name: "db".into(),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        resource_name: "x".into(),
        ready: true,
    };
    Pass {
        applied: Some(Applied {
            resources: vec![resource; resources],
            not_ready: not_ready.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }),
        secret: Some(Published {
            name: None,
            incomplete: incomplete.map(str::to_string),
        }),
        ..Default::default()
    }
}

#[test]
fn ready_follows_what_the_pass_computed() {
    let ok = Cond::synced(true, SyncedReason::ReconcileSuccess, "");
    let policy = Cond::synced(false, SyncedReason::PolicyViolation, "too big");
    let provider = Cond::synced(false, SyncedReason::ProviderError, "RDSInstance x: quota");
    let was_ready = status(&[("Ready", "True", "Available", "")]);
    let was_unknown = status(&[("Ready", "False", "Whatever", "old")]);
    let was_down = status(&[("Ready", "False", "Unavailable", "rebooting")]);
    let never = DatabaseClaimStatus::default();
    let r = |s: bool, reason: ReadyReason, m: &str| Cond::ready(s, reason, m);
    let cases = [
        // All composed objects ready, the Secret complete.
        (
            &never,
            &ok,
            pass(1, &[], None),
            r(true, ReadyReason::Available, ""),
        ),
        // Not ready: Creating until it was ever ready, then Unavailable.
        (
            &never,
            &ok,
            pass(1, &["a"], Some("s")),
            r(false, ReadyReason::Creating, "waiting for: a"),
        ),
        // Every object ready and details still lacking: they are named.
        (
            &never,
            &ok,
            pass(1, &[], Some("s")),
            r(false, ReadyReason::Creating, "waiting for: s"),
        ),
        (
            &was_ready,
            &ok,
            pass(1, &["a"], None),
            r(false, ReadyReason::Unavailable, "waiting for: a"),
        ),
        // Still down on the next pass (a failover drill): still Unavailable.
        (
            &was_down,
            &ok,
            pass(1, &["a"], None),
            r(false, ReadyReason::Unavailable, "waiting for: a"),
        ),
        // Nothing computed: what was known stays, an unknown reason reads Creating.
        (
            &was_ready,
            &policy,
            Pass::default(),
            r(true, ReadyReason::Available, ""),
        ),
        (
            &was_unknown,
            &policy,
            Pass::default(),
            r(false, ReadyReason::Creating, "old"),
        ),
        (
            &never,
            &policy,
            Pass::default(),
            r(false, ReadyReason::Creating, "not provisioned: too big"),
        ),
        // The Secret could not be written: not ready, whatever the objects say.
        (
            &was_ready,
            &Cond::synced(false, SyncedReason::ReconcileError, "cannot write Secret s"),
            Pass {
                secret: None,
                ..pass(1, &[], None)
            },
            r(
                false,
                ReadyReason::Unavailable,
                "waiting for: the connection secret, which could not be written (see Synced)",
            ),
        ),
        // A provider's trouble still recomputes readiness.
        (
            &was_ready,
            &provider,
            pass(0, &[], None),
            r(true, ReadyReason::Available, ""),
        ),
    ];
    for (i, (old, synced, pass, want)) in cases.into_iter().enumerate() {
        assert_eq!(ready_condition(old, synced, &pass), want, "case {i}");
    }
}

#[test]
fn events_announce_changes_only() {
    let ok = Cond::synced(true, SyncedReason::ReconcileSuccess, "");
    let bad = Cond::synced(false, SyncedReason::PolicyViolation, "too big");
    let worse = Cond::synced(false, SyncedReason::PolicyViolation, "far too big");
    let ready = Cond::ready(true, ReadyReason::Available, "");
    let creating = Cond::ready(false, ReadyReason::Creating, "waiting");
    let down = Cond::ready(false, ReadyReason::Unavailable, "instance down");
    let deleting = Cond::ready(false, ReadyReason::Deleting, "the claim is being deleted");
    let never = DatabaseClaimStatus::default();
    let selected = DatabaseClaimStatus {
        composition: Some(NameRef { name: "c".into() }),
        ..with(&ok, &creating)
    };
    type Case<'a> = (
        &'a DatabaseClaimStatus,
        DatabaseClaimStatus,
        &'a [(EventType, &'a str)],
    );
    let cases: [Case; 8] = [
        (
            &never,
            selected.clone(),
            &[
                (EventType::Normal, "CompositionSelected"),
                (EventType::Normal, "ResourceCreated"),
            ],
        ),
        (
            &selected,
            selected.clone(),
            &[(EventType::Normal, "ResourceCreated")],
        ),
        (
            &never,
            with(&bad, &creating),
            &[
                (EventType::Normal, "ResourceCreated"),
                (EventType::Warning, "PolicyViolation"),
            ],
        ),
        (
            &with(&bad, &creating),
            with(&bad, &creating),
            &[(EventType::Normal, "ResourceCreated")],
        ),
        (
            &with(&bad, &creating),
            with(&worse, &creating),
            &[
                (EventType::Normal, "ResourceCreated"),
                (EventType::Warning, "PolicyViolation"),
            ],
        ),
        (
            &with(&ok, &creating),
            with(&ok, &ready),
            &[
                (EventType::Normal, "ResourceCreated"),
                (EventType::Normal, "Ready"),
            ],
        ),
        (
            &with(&ok, &ready),
            with(&ok, &down),
            &[
                (EventType::Normal, "ResourceCreated"),
                (EventType::Warning, "NotReady"),
            ],
        ),
        // A deletion the user asked for is no incident.
        (
            &with(&ok, &ready),
            with(&ok, &deleting),
            &[(EventType::Normal, "ResourceCreated")],
        ),
    ];
    for (i, (old, new, want)) in cases.into_iter().enumerate() {
        let did = vec![normal(
            "ResourceCreated",
            "CreateResource",
            "created".into(),
        )];
        let got: Vec<_> = events_for(old, &new, did)
            .into_iter()
            .map(|e| (e.type_, e.reason))
            .collect();
        let want: Vec<_> = want.iter().map(|(t, r)| (*t, r.to_string())).collect();
        assert_eq!(got, want, "case {i}");
    }
}

#[test]
fn status_key_ignores_transition_times_only() {
    let at = |t: &str, status: &str| -> DatabaseClaimStatus {
        serde_json::from_value(json!({"conditions": [{"type": "Ready", "status": status,
            "reason": "Available", "message": "", "lastTransitionTime": t}]}))
        .unwrap_or_default()
    };
    let a = at("2026-01-01T00:00:00Z", "True");
    let b = at("2026-01-01T00:00:09Z", "True");
    let c = at("2026-01-01T00:00:00Z", "False");
    assert_eq!(status_key(&a), status_key(&b));
    assert_ne!(status_key(&a), status_key(&c));
}

#[test]
fn failures_map_to_a_reason_and_a_requeue() {
    let render = PassError::from(RenderError {
        composition: "c".into(),
        error: Box::new(EngineError::ClaimWithoutName),
    });
    assert_eq!(
        render.synced_reason(),
        Some(SyncedReason::CompositionInvalid)
    );
    assert_eq!(render.requeue(), Some(requeue::NEEDS_CHANGE));
    let foreign = PassError::from(SecretError::Foreign("s".into()));
    assert_eq!(foreign.synced_reason(), Some(SyncedReason::ReconcileError));
    assert_eq!(foreign.requeue(), Some(requeue::NOT_DONE));
    let policy = PassError::from(SelectError::Policy("too big".into()));
    assert_eq!(policy.synced_reason(), Some(SyncedReason::PolicyViolation));
    assert_eq!(policy.to_string(), "too big");
    let api = PassError::from(SecretError::from(failed("write", "Secret s")(
        kube::Error::LinesCodecMaxLineLengthExceeded,
    )));
    assert_eq!(api.synced_reason(), None);
    assert_eq!(api.requeue(), None);
    assert!(api.to_string().starts_with("cannot write Secret s: "));
}

fn status_error(code: u16, reason: &str, fields: &[&str]) -> kube::Error {
    let causes: Vec<_> = fields
        .iter()
        .map(|f| json!({"reason": "FieldValueInvalid", "message": "bad", "field": f}))
        .collect();
    let status = json!({"status": "Failure", "code": code, "reason": reason,
        "message": format!("the server says {code}"), "details": {"causes": causes}});
    kube::Error::Api(Box::new(
        serde_json::from_value(status).unwrap_or_else(|e| panic!("{e}")),
    ))
}

#[test]
fn refusals_are_told_from_transient_failures() {
    use super::error::refusal;
    // (verb, code, reason, refused for good); the rest is transient.
    let cases = [
        ("apply", 400, "BadRequest", true),
        ("apply", 403, "Forbidden", true),
        ("read", 403, "Forbidden", true),
        ("apply", 404, "NotFound", true),
        ("write", 404, "NotFound", true),
        ("apply", 409, "AlreadyExists", true),
        ("apply", 413, "RequestEntityTooLarge", true),
        ("apply", 422, "Invalid", true),
        ("apply", 409, "Conflict", false),
        ("apply", 429, "TooManyRequests", false),
        ("apply", 500, "InternalError", false),
        ("apply", 503, "ServiceUnavailable", false),
        ("apply", 504, "Timeout", false),
        ("apply", 401, "Unauthorized", false),
        ("apply", 410, "Gone", false),
        // Gone already: the next pass sees it.
        ("delete", 404, "NotFound", false),
        ("prune", 404, "NotFound", false),
        ("read", 404, "NotFound", false),
    ];
    for (verb, code, reason, refused) in cases {
        let r = refusal(verb, &status_error(code, reason, &[]));
        let expected = refused.then_some(code);
        assert_eq!(r.map(|r| r.code), expected, "{verb} {code} {reason}");
    }
    // Not an answer of the server at all: a connection error, a timeout.
    assert_eq!(
        refusal("apply", &kube::Error::LinesCodecMaxLineLengthExceeded),
        None
    );
}

#[test]
fn a_refusal_names_object_field_and_message_and_is_reported() {
    use super::error::{ApiError, ComposedError};
    let invalid = status_error(
        422,
        "Invalid",
        &[
            "spec.forProvider.backupRetentionPeriod",
            "spec.forProvider.backupRetentionPeriod",
        ],
    );
    let e = PassError::from(ComposedError::from(failed("apply", "RDSInstance x")(
        invalid,
    )));
    assert_eq!(e.synced_reason(), Some(SyncedReason::CompositionInvalid));
    assert_eq!(e.requeue(), Some(requeue::NEEDS_CHANGE));
    assert_eq!(
        e.to_string(),
        "cannot apply RDSInstance x: refused by the API server (422 Invalid), \
         field spec.forProvider.backupRetentionPeriod: the server says 422"
    );
    // The operator may not touch the kind: the platform's trouble.
    let forbidden = status_error(403, "Forbidden", &[]);
    let e = PassError::from(ComposedError::from(failed("observe", "ConfigMap c")(
        forbidden,
    )));
    assert_eq!(e.synced_reason(), Some(SyncedReason::ReconcileError));
    // The Secret, and a namespace read.
    let e = PassError::from(SecretError::from(failed("write", "Secret s")(
        status_error(422, "Invalid", &["metadata.name"]),
    )));
    assert_eq!(e.synced_reason(), Some(SyncedReason::ReconcileError));
    assert!(e.to_string().contains("Secret s"), "{e}");
    assert!(e.to_string().contains("field metadata.name"), "{e}");
    let e = PassError::from(SelectError::from(ApiError {
        verb: "read",
        object: "Namespace n".into(),
        error: status_error(403, "Forbidden", &[]),
    }));
    assert_eq!(e.synced_reason(), Some(SyncedReason::ReconcileError));
    // Transient: no status, the backoff.
    let e = PassError::from(ComposedError::from(failed("apply", "RDSInstance x")(
        status_error(503, "ServiceUnavailable", &[]),
    )));
    assert_eq!((e.synced_reason(), e.requeue()), (None, None));
}

#[test]
fn a_waiting_deletion_names_each_object_and_what_it_waits_for() {
    use super::cleanup::{deleting_conditions, waits_for};
    let protected = json!({"metadata": {"finalizers": ["aws.dbclaim.io/finalizer"]},
        "status": {"conditions": [{"type": "Ready", "status": "False", "message": "deleting"},
            {"type": "Synced", "status": "False", "message": "deletion protection is on"}]}});
    let pending = json!({"metadata": {"finalizers": ["a/b", "c/d"]},
        "status": {"conditions": [{"type": "Synced", "status": "True", "message": ""}]}});
    let bare = json!({"metadata": {}});
    assert_eq!(
        waits_for("RDSInstance", "x", &protected),
        "RDSInstance x: deletion protection is on"
    );
    assert_eq!(
        waits_for("ConfigMap", "y", &pending),
        "ConfigMap y: waiting for finalizer a/b, c/d"
    );
    assert_eq!(
        waits_for("Database", "z", &bare),
        "Database z: being deleted"
    );

    let waiting = ["RDSInstance x: deletion protection is on".to_string()];
    let message =
        "the claim is being deleted; waiting for RDSInstance x: deletion protection is on";
    let ready = Cond::ready(false, ReadyReason::Deleting, message);
    // Synced stays as it was, its reason included.
    let cases = [
        (
            status(&[("Synced", "True", "ReconcileSuccess", "")]),
            Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
        ),
        (
            status(&[("Synced", "False", "ProviderError", "quota")]),
            Cond::synced(false, SyncedReason::ProviderError, "quota"),
        ),
        (
            status(&[("Synced", "False", "SomethingOld", "m")]),
            Cond::synced(false, SyncedReason::ReconcileError, "m"),
        ),
        (
            DatabaseClaimStatus::default(),
            Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
        ),
    ];
    for (i, (old, synced)) in cases.into_iter().enumerate() {
        assert_eq!(
            deleting_conditions(&old, &waiting),
            (synced, ready.clone()),
            "case {i}"
        );
    }
}

#[test]
fn connection_details_never_cross_a_namespace() {
    use super::observe::{SecretSource, connection_source};
    use crate::engine::Scope;
    use std::collections::BTreeMap;
    let (claim_ns, op_ns) = ("team-a", "dbclaim-system");
    let rds = |reference: serde_json::Value| {
        json!({"apiVersion": "aws.dbclaim.io/v1alpha1", "kind": "RDSInstance",
            "metadata": {"name": "team-a-db"}, "spec": {"writeConnectionSecretToRef": reference}})
    };
    let rds_default = json!({"apiVersion": "aws.dbclaim.io/v1alpha1", "kind": "RDSInstance",
        "metadata": {"name": "team-a-db"}, "spec": {}});
    let database = json!({"apiVersion": "postgres.dbclaim.io/v1alpha1", "kind": "Database",
        "metadata": {"name": "team-a-pg"}});
    let foreign_cluster = json!({"apiVersion": "example.org/v1", "kind": "Instance",
        "metadata": {"name": "team-a-x"},
        "spec": {"writeConnectionSecretToRef": {"name": "s", "namespace": op_ns}}});
    let namespaced = |reference: serde_json::Value| {
        json!({"apiVersion": "example.org/v1", "kind": "Cluster",
            "metadata": {"name": "team-a-c", "namespace": claim_ns},
            "spec": {"writeConnectionSecretToRef": reference}})
    };
    let src = |ns: &str, name: &str, owner: Option<(&'static str, &str)>| {
        Some(SecretSource {
            namespace: ns.into(),
            name: name.into(),
            owner: owner.map(|(k, v)| (k, v.to_string())),
        })
    };
    let instance = Some(("aws.dbclaim.io/rdsinstance", "team-a-db"));
    let cases = [
        // Cluster-scoped managed resources: where the rendered object says,
        // by default its own name in the operator namespace, annotated.
        (
            rds_default.clone(),
            Scope::Cluster,
            src(op_ns, "team-a-db", instance),
        ),
        (
            rds(json!({"name": "conn", "namespace": op_ns})),
            Scope::Cluster,
            src(op_ns, "conn", instance),
        ),
        (
            rds(json!({"name": "conn", "namespace": claim_ns})),
            Scope::Cluster,
            src(claim_ns, "conn", instance),
        ),
        (
            database,
            Scope::Cluster,
            src(
                op_ns,
                "team-a-pg",
                Some(("postgres.dbclaim.io/database", "team-a-pg")),
            ),
        ),
        // Another tenant's namespace: never.
        (
            rds(json!({"name": "conn", "namespace": "team-b"})),
            Scope::Cluster,
            None,
        ),
        // A cluster-scoped kind dbclaim has no ownership annotation for.
        (foreign_cluster, Scope::Cluster, None),
        // Namespaced: only its own namespace, whatever the ref says.
        (
            namespaced(json!({"name": "conn"})),
            Scope::Namespaced,
            src(claim_ns, "conn", None),
        ),
        (
            namespaced(json!({"name": "conn", "namespace": claim_ns})),
            Scope::Namespaced,
            src(claim_ns, "conn", None),
        ),
        (
            namespaced(json!({"name": "shared-postgres-admin", "namespace": op_ns})),
            Scope::Namespaced,
            None,
        ),
        // No ref, not a managed resource: nothing to read.
        (
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": claim_ns}}),
            Scope::Namespaced,
            None,
        ),
    ];
    for (i, (object, scope, want)) in cases.into_iter().enumerate() {
        assert_eq!(
            connection_source(&object, scope, None, claim_ns, op_ns),
            want,
            "case {i}"
        );
    }
    // A Secret the object's controller names after it (connectionSecret):
    // the claim's namespace only, never for a cluster-scoped object, and it
    // wins over writeConnectionSecretToRef.
    let cnpg = json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": {"name": "team-a-c", "namespace": claim_ns}, "spec": {}});
    let own = Some("team-a-c-app");
    assert_eq!(
        connection_source(&cnpg, Scope::Namespaced, own, claim_ns, op_ns),
        src(claim_ns, "team-a-c-app", None)
    );
    assert_eq!(
        connection_source(
            &namespaced(json!({"name": "conn"})),
            Scope::Namespaced,
            own,
            claim_ns,
            op_ns
        ),
        src(claim_ns, "team-a-c-app", None)
    );
    let elsewhere = json!({"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": {"name": "team-a-c", "namespace": "team-b"}});
    assert_eq!(
        connection_source(&elsewhere, Scope::Namespaced, own, claim_ns, op_ns),
        None
    );
    assert_eq!(
        connection_source(&rds_default, Scope::Cluster, own, claim_ns, op_ns),
        None
    );
    // Such a Secret counts only when that very object owns it.
    use super::observe::owned_by;
    let secret = |uid: Option<&str>| -> k8s_openapi::api::core::v1::Secret {
        serde_json::from_value(json!({"metadata": {"name": "team-a-c-app",
            "ownerReferences": uid.map(|u| vec![json!({"apiVersion": "postgresql.cnpg.io/v1",
                "kind": "Cluster", "name": "team-a-c", "uid": u})])}}))
        .unwrap()
    };
    let observed = json!({"metadata": {"name": "team-a-c", "uid": "u-1"}});
    assert!(owned_by(&secret(Some("u-1")), Some(&observed)));
    assert!(!owned_by(&secret(Some("u-2")), Some(&observed)));
    assert!(!owned_by(&secret(None), Some(&observed)));
    assert!(!owned_by(&secret(Some("")), Some(&json!({"metadata": {}}))));
    assert!(!owned_by(&secret(Some("u-1")), None));
    // The ownership annotation must name that very object.
    let source = connection_source(&rds_default, Scope::Cluster, None, claim_ns, op_ns)
        .unwrap_or_else(|| panic!("a source"));
    let annotated =
        |v: &str| BTreeMap::from([("aws.dbclaim.io/rdsinstance".to_string(), v.into())]);
    assert!(source.may_read(&annotated("team-a-db")));
    assert!(!source.may_read(&annotated("team-b-db")));
    assert!(!source.may_read(&BTreeMap::new()));
    let local = SecretSource {
        namespace: claim_ns.into(),
        name: "conn".into(),
        owner: None,
    };
    assert!(local.may_read(&BTreeMap::new()));
}
