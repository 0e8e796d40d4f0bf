//! Drills (`dbclaim.io/drill`, see [`crate::drill`]): which one runs, the
//! policy check, handing a `failover` to the managed resources the claim
//! composes (the annotation, while it runs) and following their reports
//! into `status.drills`. A `rotate-credentials` drill starts the claim's
//! credential rotation ([`super::credentials`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::{Value, json};

use super::error::{PassError, SelectError};
use super::observe::Observed;
use super::select::Selected;
use super::{Pass, normal};
use crate::api::DatabaseClaim;
use crate::api::common::{DrillResult, DrillStatus, DrillType};
use crate::conditions::{self, ConditionType};
use crate::contract::DRILL_ANNOTATION;
use crate::controller::context::Context;
use crate::drill::{self, Next, Report, Request};
use crate::engine::Rendered;
use kube::runtime::events::{Event, EventType};

/// The drill of this pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Drills {
    /// `status.drills` as known (the cache, and what this operator wrote lately).
    pub history: Vec<DrillStatus>,
    /// The drill under way or starting now.
    pub active: Option<Request>,
    /// `active` starts in this pass.
    pub starting: bool,
}

/// Decides the pass's drill; a new one is checked against the policies
/// (a refusal is `PolicyViolation`, and nothing is sent).
pub fn plan(
    claim: &DatabaseClaim,
    selected: &Selected,
    ctx: &Context,
) -> Result<Drills, PassError> {
    let uid = claim.uid().unwrap_or_default();
    let cached = claim
        .status
        .as_ref()
        .map(|s| s.drills.as_slice())
        .unwrap_or_default();
    let written = ctx.drills.get(&uid);
    let history = drill::merge(cached, written.as_deref());
    let ready = claim
        .status
        .as_ref()
        .is_some_and(|s| conditions::is_true(&s.conditions, ConditionType::Ready));
    let annotation = claim
        .annotations()
        .get(DRILL_ANNOTATION)
        .map(String::as_str);
    let next =
        drill::next(annotation, &history, ready).map_err(|e| PassError::Drill(e.to_string()))?;
    let (active, starting) = match next {
        Next::Idle | Next::Wait(_) => (None, false),
        Next::Follow(r) => (Some(r), false),
        Next::Start(r) => {
            let ns = claim.namespace().unwrap_or_default();
            drill::allowed(&selected.policy, &ns, r.type_)
                .map_err(|m| PassError::Select(SelectError::Policy(m)))?;
            (Some(r), true)
        }
    };
    Ok(Drills {
        history,
        active,
        starting,
    })
}

/// Hands `active` to the managed resources of `desired` as their
/// annotation (their providers run each id once).
pub fn hand_down(active: &Request, desired: &mut Rendered) {
    for r in desired
        .resources
        .iter_mut()
        .filter(|r| super::own_managed(&r.object))
    {
        if let Some(meta) = r.object.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if !annotations.is_object() {
                *annotations = json!({});
            }
            annotations[DRILL_ANNOTATION] = Value::String(active.to_string());
        }
    }
}

/// What each managed resource of `desired` reports on `active`.
pub fn reports(active: &Request, desired: &Rendered, observed: &Observed) -> Vec<Report> {
    desired
        .resources
        .iter()
        .filter(|r| super::own_managed(&r.object))
        .map(|r| {
            let text = |at: &str| r.object.pointer(at).and_then(Value::as_str);
            let (kind, name) = (text("/kind").unwrap_or("object"), text("/metadata/name"));
            let status = observed
                .objects
                .get(&r.name)
                .and_then(|o| o.object.as_ref())
                .and_then(|o| o.pointer("/status/drill"))
                .and_then(|d| serde_json::from_value::<DrillStatus>(d.clone()).ok())
                .filter(|d| d.id == active.id && d.type_ == active.type_);
            Report {
                object: format!("{kind} {}", name.unwrap_or_default()),
                status,
            }
        })
        .collect()
}

/// A failover drill: handed down, its reports followed into the history.
pub fn follow(drills: &Drills, desired: &mut Rendered, observed: &Observed, pass: &mut Pass) {
    let Some(active) = drills
        .active
        .as_ref()
        .filter(|a| a.type_ == DrillType::Failover)
    else {
        return;
    };
    let before = drills
        .history
        .iter()
        .find(|d| d.id == active.id && d.type_ == active.type_);
    let started = match drills.starting {
        true => Some(Time(Timestamp::now())),
        false => before.and_then(|b| b.started_at.clone()),
    };
    let record = drill::aggregate(active, started, &reports(active, desired, observed));
    if !record.result.finished() {
        hand_down(active, desired);
    }
    if drills.starting {
        pass.events.push(normal(
            "DrillStarted",
            "Drill",
            format!(
                "{} drill {} started: {}",
                active.type_, active.id, record.message
            ),
        ));
    }
    finished_event(before, &record, &mut pass.events);
    pass.drills = Some(drill::record(&drills.history, record));
}

/// The event of a drill that finished now.
pub fn finished_event(before: Option<&DrillStatus>, record: &DrillStatus, events: &mut Vec<Event>) {
    if !record.result.finished() || before.is_some_and(|b| b.result.finished()) {
        return;
    }
    let note = format!(
        "{} drill {} finished: {:?}: {}",
        record.type_, record.id, record.result, record.message
    );
    let (type_, reason) = match record.result {
        DrillResult::Succeeded => (EventType::Normal, "DrillFinished"),
        _ => (EventType::Warning, "DrillFailed"),
    };
    events.push(crate::events::event(type_, reason, "Drill", note));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::{ComposedResource, Scope};

    fn composed(name: &str, object: Value) -> ComposedResource {
        ComposedResource {
            name: name.into(),
            object,
            scope: Scope::Cluster,
            readiness: crate::engine::Readiness {
                ready: true,
                message: String::new(),
            },
            connection_secret: None,
        }
    }

    #[test]
    fn only_managed_resources_that_run_drills_get_the_annotation() {
        let mut desired = Rendered {
            resources: vec![
                composed(
                    "rds",
                    json!({"apiVersion": "aws.dbclaim.io/v1alpha1", "kind": "RDSInstance", "metadata": {"name": "a"}}),
                ),
                composed(
                    "db",
                    json!({"apiVersion": "postgres.dbclaim.io/v1alpha1", "kind": "Database", "metadata": {"name": "b", "annotations": {"x": "y"}}}),
                ),
                composed(
                    "cm",
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
                ),
            ],
            ..Default::default()
        };
        let r = Request {
            type_: DrillType::Failover,
            id: "gd1".into(),
        };
        hand_down(&r, &mut desired);
        let drill = |i: usize| {
            desired.resources[i]
                .object
                .pointer("/metadata/annotations/dbclaim.io~1drill")
                .cloned()
        };
        assert_eq!(drill(0), Some(json!("failover/gd1")));
        assert_eq!(drill(1), Some(json!("failover/gd1")));
        assert_eq!(drill(2), None);
        assert_eq!(
            desired.resources[1]
                .object
                .pointer("/metadata/annotations/x"),
            Some(&json!("y"))
        );
    }
}
