//! Game-day drills: pure. A claim annotated `dbclaim.io/drill: <type>/<id>`
//! runs the drill once per new id, where a ClaimPolicy's `allowedDrills`
//! permits its type. The claim records every drill in `status.drills`
//! (the newest [`HISTORY`]); a `failover` is handed to the managed
//! resources it composes (RDSInstance, Database), whose providers run it
//! once per id and report in their `status.drill`; the claim aggregates
//! those reports (see [`aggregate`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::api::common::{DrillResult, DrillStatus, DrillType};
use crate::policy::Applicable;

/// How many drills `status.drills` keeps.
pub const HISTORY: usize = 10;
/// The longest id: an id is a label value's worth of text.
const MAX_ID: usize = 63;

/// A drill a claim asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub type_: DrillType,
    pub id: String,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.type_, self.id)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "annotation dbclaim.io/drill is {0:?}: write <type>/<id>, e.g. failover/game-day-1 (types: failover, rotate-credentials)"
    )]
    Shape(String),
    #[error(
        "annotation dbclaim.io/drill names drill type {0:?}: the types are failover and rotate-credentials"
    )]
    UnknownType(String),
    #[error(
        "annotation dbclaim.io/drill has id {0:?}: an id is 1 to 63 letters, digits, '-', '_' or '.'"
    )]
    BadId(String),
}

/// Parses `<type>/<id>`.
pub fn parse(value: &str) -> Result<Request, ParseError> {
    let value = value.trim();
    let Some((type_, id)) = value.split_once('/') else {
        return Err(ParseError::Shape(value.to_string()));
    };
    let type_ = DrillType::ALL
        .into_iter()
        .find(|t| t.as_str() == type_)
        .ok_or_else(|| ParseError::UnknownType(type_.to_string()))?;
    let id_ok = !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !id_ok {
        return Err(ParseError::BadId(id.to_string()));
    }
    Ok(Request {
        type_,
        id: id.to_string(),
    })
}

/// Whether the applicable policies let `type_` run: one policy that lists
/// it is enough; without any, no drill runs (the default is none). The
/// error is the `PolicyViolation` message.
pub fn allowed(applicable: &Applicable, namespace: &str, type_: DrillType) -> Result<(), String> {
    if applicable.policies.iter().any(|p| {
        p.spec
            .allowed_drills
            .as_ref()
            .is_some_and(|d| d.contains(&type_))
    }) {
        return Ok(());
    }
    let names: Vec<String> = applicable
        .policies
        .iter()
        .map(|p| format!("{:?}", p.name_any()))
        .collect();
    Err(match names.is_empty() {
        true => format!(
            "drill {type_} is not allowed in namespace {namespace}: no ClaimPolicy applies here, and drills run only where a policy's allowedDrills lists them; remove the annotation dbclaim.io/drill or ask the platform team"
        ),
        false => format!(
            "drill {type_} is not allowed in namespace {namespace}: ClaimPolicy {} does not list it in allowedDrills; remove the annotation dbclaim.io/drill or ask the platform team",
            names.join(", ")
        ),
    })
}

/// What a claim's pass does about drills.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// No drill, or the annotation's id ran already.
    Idle,
    /// A drill recorded and not finished: hand it down again, follow it.
    Follow(Request),
    /// A new id: start it (the policy check comes next).
    Start(Request),
    /// A new id that waits: the claim is not Ready yet.
    Wait(Request),
}

/// Decides from the annotation and the history. One drill at a time: a new
/// id waits until the running one finished; an id in the history never
/// runs again.
pub fn next(
    annotation: Option<&str>,
    history: &[DrillStatus],
    ready: bool,
) -> Result<Next, ParseError> {
    if let Some(d) = history.iter().rev().find(|d| !d.result.finished()) {
        return Ok(Next::Follow(Request {
            type_: d.type_,
            id: d.id.clone(),
        }));
    }
    let Some(value) = annotation.filter(|v| !v.trim().is_empty()) else {
        return Ok(Next::Idle);
    };
    let request = parse(value)?;
    if history
        .iter()
        .any(|d| d.id == request.id && d.type_ == request.type_)
    {
        return Ok(Next::Idle);
    }
    Ok(match ready {
        true => Next::Start(request),
        false => Next::Wait(request),
    })
}

/// `history` with `entry` in place of the record of the same drill, or
/// appended; the newest [`HISTORY`] kept.
pub fn record(history: &[DrillStatus], entry: DrillStatus) -> Vec<DrillStatus> {
    let mut out: Vec<DrillStatus> = history.to_vec();
    match out
        .iter_mut()
        .find(|d| d.id == entry.id && d.type_ == entry.type_)
    {
        Some(d) => *d = entry,
        None => out.push(entry),
    }
    let excess = out.len().saturating_sub(HISTORY);
    out.drain(..excess);
    out
}

/// The history as the claim cache shows it, with the drills this operator
/// recorded lately that the cache may not show yet.
pub fn merge(cached: &[DrillStatus], written: Option<&[DrillStatus]>) -> Vec<DrillStatus> {
    let mut out = cached.to_vec();
    for w in written.unwrap_or_default() {
        let known = out
            .iter()
            .find(|d| d.id == w.id && d.type_ == w.type_)
            .is_some_and(|d| d.result.finished() || !w.result.finished());
        if !known {
            out = record(&out, w.clone());
        }
    }
    out
}

/// One managed resource's report on a drill handed to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// `<Kind> <name>`.
    pub object: String,
    /// Its `status.drill` when it is about this drill.
    pub status: Option<DrillStatus>,
}

/// The claim's record of `request` from the reports of the managed
/// resources it was handed to (`started`: when the claim started it).
/// Finished once every report is: Failed if one failed, else Succeeded if
/// one succeeded, else Refused.
pub fn aggregate(request: &Request, started: Option<Time>, reports: &[Report]) -> DrillStatus {
    let mut entry = DrillStatus {
        type_: request.type_,
        id: request.id.clone(),
        started_at: started,
        finished_at: None,
        result: DrillResult::Running,
        message: String::new(),
    };
    if reports.is_empty() {
        entry.result = DrillResult::Refused;
        entry.message = format!(
            "nothing to run the {} drill on: the composition has no RDSInstance or shared PostgreSQL Database",
            request.type_
        );
        return entry;
    }
    let waiting: Vec<&str> = reports
        .iter()
        .filter(|r| r.status.is_none())
        .map(|r| r.object.as_str())
        .collect();
    let messages: Vec<String> = reports
        .iter()
        .filter_map(|r| {
            r.status
                .as_ref()
                .map(|s| format!("{}: {}", r.object, s.message))
        })
        .collect();
    let statuses: Vec<&DrillStatus> = reports.iter().filter_map(|r| r.status.as_ref()).collect();
    entry.started_at = statuses
        .iter()
        .filter_map(|s| s.started_at.clone())
        .min_by_key(|t| t.0)
        .or(entry.started_at);
    if !waiting.is_empty() {
        entry.message = format!("handed to {}", waiting.join(", "));
        if !messages.is_empty() {
            entry.message = format!("{}; {}", messages.join("; "), entry.message);
        }
        return entry;
    }
    entry.message = messages.join("; ");
    if statuses.iter().any(|s| !s.result.finished()) {
        return entry;
    }
    let any = |r: DrillResult| statuses.iter().any(|s| s.result == r);
    entry.result = if any(DrillResult::Failed) {
        DrillResult::Failed
    } else if any(DrillResult::Succeeded) {
        DrillResult::Succeeded
    } else {
        DrillResult::Refused
    };
    entry.finished_at = statuses
        .iter()
        .filter_map(|s| s.finished_at.clone())
        .max_by_key(|t| t.0);
    entry
}

/// Whether a provider should start `request` (the annotation on its
/// object) given its `last` drill: only a new id.
pub fn due(annotation: Option<&str>, last: Option<&DrillStatus>) -> Option<Request> {
    let request = parse(annotation?).ok()?;
    let ran = last.is_some_and(|d| d.id == request.id && d.type_ == request.type_);
    (!ran).then_some(request)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::api::ClaimPolicy;
    use crate::api::policy::ClaimPolicySpec;

    fn t(s: i64) -> Time {
        Time(Timestamp::from_second(s).unwrap_or_default())
    }

    fn entry(id: &str, result: DrillResult) -> DrillStatus {
        DrillStatus {
            type_: DrillType::Failover,
            id: id.into(),
            started_at: Some(t(1)),
            finished_at: result.finished().then(|| t(2)),
            result,
            message: String::new(),
        }
    }

    fn req(id: &str) -> Request {
        Request {
            type_: DrillType::Failover,
            id: id.into(),
        }
    }

    #[test]
    fn parses_type_and_id() {
        assert_eq!(parse("failover/gd-1"), Ok(req("gd-1")));
        assert_eq!(
            parse(" rotate-credentials/2026.12_a "),
            Ok(Request {
                type_: DrillType::RotateCredentials,
                id: "2026.12_a".into()
            })
        );
        assert_eq!(parse("failover"), Err(ParseError::Shape("failover".into())));
        assert_eq!(
            parse("explode/1"),
            Err(ParseError::UnknownType("explode".into()))
        );
        assert_eq!(parse("failover/"), Err(ParseError::BadId(String::new())));
        assert_eq!(parse("failover/a/b"), Err(ParseError::BadId("a/b".into())));
        assert!(parse(&format!("failover/{}", "x".repeat(64))).is_err());
        assert!(parse(&format!("failover/{}", "x".repeat(63))).is_ok());
    }

    fn policy(name: &str, drills: Option<Vec<DrillType>>) -> Arc<ClaimPolicy> {
        Arc::new(ClaimPolicy::new(
            name,
            ClaimPolicySpec {
                allowed_drills: drills,
                ..Default::default()
            },
        ))
    }

    #[test]
    fn drills_run_only_where_a_policy_lists_them() {
        let none = Applicable::default();
        let err = allowed(&none, "team-a", DrillType::Failover).err();
        assert!(err.is_some_and(|e| e.contains("no ClaimPolicy applies")));
        let silent = Applicable {
            policies: vec![policy("base", None)],
            default_composition: None,
        };
        let err = allowed(&silent, "team-a", DrillType::Failover).err();
        assert!(
            err.is_some_and(|e| e.contains("ClaimPolicy \"base\"") && e.contains("allowedDrills"))
        );
        let some = Applicable {
            policies: vec![
                policy("base", None),
                policy("games", Some(vec![DrillType::RotateCredentials])),
            ],
            default_composition: None,
        };
        assert!(allowed(&some, "team-a", DrillType::RotateCredentials).is_ok());
        assert!(allowed(&some, "team-a", DrillType::Failover).is_err());
    }

    #[test]
    fn a_new_id_starts_once_and_one_at_a_time() {
        assert_eq!(next(None, &[], true), Ok(Next::Idle));
        assert_eq!(next(Some(""), &[], true), Ok(Next::Idle));
        assert_eq!(
            next(Some("failover/a"), &[], true),
            Ok(Next::Start(req("a")))
        );
        assert_eq!(
            next(Some("failover/a"), &[], false),
            Ok(Next::Wait(req("a")))
        );
        assert!(next(Some("nope"), &[], true).is_err());
        // Ran already: nothing, whatever its result.
        let done = [entry("a", DrillResult::Failed)];
        assert_eq!(next(Some("failover/a"), &done, true), Ok(Next::Idle));
        // The same id as another type is another drill.
        assert!(matches!(
            next(Some("rotate-credentials/a"), &done, true),
            Ok(Next::Start(_))
        ));
        // A running drill is followed, even with the annotation gone or new.
        let running = [
            entry("a", DrillResult::Succeeded),
            entry("b", DrillResult::Running),
        ];
        assert_eq!(next(None, &running, true), Ok(Next::Follow(req("b"))));
        assert_eq!(
            next(Some("failover/c"), &running, true),
            Ok(Next::Follow(req("b")))
        );
    }

    #[test]
    fn history_keeps_the_newest_ten() {
        let mut h = Vec::new();
        for i in 0..12 {
            h = record(&h, entry(&i.to_string(), DrillResult::Running));
        }
        assert_eq!(h.len(), HISTORY);
        assert_eq!(h.first().map(|d| d.id.as_str()), Some("2"));
        assert_eq!(h.last().map(|d| d.id.as_str()), Some("11"));
        // An update replaces in place.
        let h2 = record(&h, entry("5", DrillResult::Succeeded));
        assert_eq!(h2.len(), HISTORY);
        assert_eq!(h2[3].result, DrillResult::Succeeded);
    }

    #[test]
    fn a_stale_cache_does_not_hide_a_drill_recorded() {
        let cached = [entry("a", DrillResult::Running)];
        let written = [
            entry("a", DrillResult::Succeeded),
            entry("b", DrillResult::Running),
        ];
        let merged = merge(&cached, Some(&written));
        assert_eq!(merged, written.to_vec());
        // The cache ahead of what was written: the cache wins.
        let merged = merge(&written, Some(&cached));
        assert_eq!(merged, written.to_vec());
        assert_eq!(merge(&cached, None), cached.to_vec());
    }

    fn report(object: &str, status: Option<DrillStatus>) -> Report {
        Report {
            object: object.into(),
            status,
        }
    }

    #[test]
    fn reports_become_the_claims_record() {
        let r = req("a");
        let nothing = aggregate(&r, Some(t(0)), &[]);
        assert_eq!(nothing.result, DrillResult::Refused);
        let handed = aggregate(&r, Some(t(0)), &[report("RDSInstance x", None)]);
        assert_eq!(handed.result, DrillResult::Running);
        assert_eq!(handed.message, "handed to RDSInstance x");
        assert_eq!(handed.started_at, Some(t(0)));
        let mut running = entry("a", DrillResult::Running);
        running.message = "rebooting".into();
        let r1 = aggregate(&r, Some(t(0)), &[report("RDSInstance x", Some(running))]);
        assert_eq!(r1.result, DrillResult::Running);
        assert_eq!(r1.message, "RDSInstance x: rebooting");
        assert_eq!(r1.started_at, Some(t(1)), "the provider's start");
        let ok = aggregate(
            &r,
            Some(t(0)),
            &[report(
                "RDSInstance x",
                Some(entry("a", DrillResult::Succeeded)),
            )],
        );
        assert_eq!(
            (ok.result, ok.finished_at),
            (DrillResult::Succeeded, Some(t(2)))
        );
        let mixed = aggregate(
            &r,
            None,
            &[
                report("A a", Some(entry("a", DrillResult::Refused))),
                report("B b", Some(entry("a", DrillResult::Succeeded))),
            ],
        );
        assert_eq!(mixed.result, DrillResult::Succeeded);
        let failed = aggregate(
            &r,
            None,
            &[
                report("A a", Some(entry("a", DrillResult::Failed))),
                report("B b", Some(entry("a", DrillResult::Succeeded))),
            ],
        );
        assert_eq!(failed.result, DrillResult::Failed);
    }

    #[test]
    fn a_provider_runs_a_new_id_only() {
        assert_eq!(due(None, None), None);
        assert_eq!(due(Some("junk"), None), None);
        assert_eq!(due(Some("failover/a"), None), Some(req("a")));
        let last = entry("a", DrillResult::Pending);
        assert_eq!(due(Some("failover/a"), Some(&last)), None);
        assert_eq!(due(Some("failover/b"), Some(&last)), Some(req("b")));
    }
}
