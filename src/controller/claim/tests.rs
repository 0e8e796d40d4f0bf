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
            r(false, ReadyReason::Creating, "waiting for: a; s"),
        ),
        (
            &was_ready,
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
    assert_eq!(render.requeue(), requeue::NEEDS_CHANGE);
    let foreign = PassError::from(SecretError::Foreign("s".into()));
    assert_eq!(foreign.synced_reason(), Some(SyncedReason::ReconcileError));
    assert_eq!(foreign.requeue(), requeue::NOT_DONE);
    let policy = PassError::from(SelectError::Policy("too big".into()));
    assert_eq!(policy.synced_reason(), Some(SyncedReason::PolicyViolation));
    assert_eq!(policy.to_string(), "too big");
    let api = PassError::from(SecretError::from(failed("write", "Secret s")(
        kube::Error::LinesCodecMaxLineLengthExceeded,
    )));
    assert_eq!(api.synced_reason(), None);
    assert_eq!(api.requeue(), requeue::API_FAILURE);
    assert!(api.to_string().starts_with("cannot write Secret s: "));
}
