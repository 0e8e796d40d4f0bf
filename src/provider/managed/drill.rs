//! Drills on managed resources: pure. The claim controller hands a drill
//! down as the annotation `dbclaim.io/drill`; a provider runs each id once:
//! recorded as `Pending` in `status.drill` before anything is sent (so a
//! crash never sends it twice), then `Running` (sent, the resource going
//! down) or finished at once. A `Running` drill is done when the resource
//! is Ready again.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::{DrillStep, Events};
use crate::api::common::{DrillResult, DrillStatus, ManagedStatus};
use crate::conditions::{self, Cond, ConditionType, ReadyReason};
use crate::drill::Request;

/// A drill to start in this pass, and its record.
#[derive(Clone, Debug, PartialEq)]
pub struct Start {
    pub request: Request,
    pub record: DrillStatus,
}

/// A drill to start now: the annotation names an id this object has not
/// run, no drill is under way, and the resource was Ready (a drill on a
/// database that is not up proves nothing; it waits).
pub fn start<O>(
    status: &ManagedStatus<O>,
    annotation: Option<&str>,
    now: Timestamp,
) -> Option<Start> {
    let last = status.drill.as_ref();
    if last.is_some_and(|d| !d.result.finished()) {
        return None;
    }
    let request = crate::drill::due(annotation, last)?;
    if !conditions::is_true(&status.conditions, ConditionType::Ready) {
        return None;
    }
    Some(Start {
        record: DrillStatus {
            type_: request.type_,
            id: request.id.clone(),
            started_at: Some(Time(now)),
            finished_at: None,
            result: DrillResult::Pending,
            message: "starting".into(),
        },
        request,
    })
}

/// The drill record after a pass, `None` when unchanged.
///
/// - `started`: this pass started `last` (recorded it `Pending`);
/// - `drilled`: what the provider did with it (`None`: not reached);
/// - `ready`: the resource's Ready after the pass, or the pass's error.
pub fn after_pass(
    last: Option<&DrillStatus>,
    started: bool,
    drilled: Option<Result<DrillStep, String>>,
    ready: Result<&Cond, &str>,
    now: Timestamp,
) -> Option<DrillStatus> {
    let last = last?;
    let mut next = last.clone();
    let finish = |next: &mut DrillStatus, result, message: String| {
        next.result = result;
        next.message = message;
        next.finished_at = Some(Time(now));
    };
    match (last.result, started) {
        (DrillResult::Pending, true) => match drilled {
            Some(Ok(DrillStep::Done(m))) => finish(&mut next, DrillResult::Succeeded, m),
            Some(Ok(DrillStep::Refused(m))) => finish(&mut next, DrillResult::Refused, m),
            Some(Err(e)) => finish(&mut next, DrillResult::Failed, e),
            Some(Ok(DrillStep::Started(m))) => {
                next.result = DrillResult::Running;
                next.message = m;
            }
            None => {
                let why = ready.err().unwrap_or("the pass stopped before it");
                finish(&mut next, DrillResult::Failed, format!("not run: {why}"));
            }
        },
        (DrillResult::Pending, false) => finish(
            &mut next,
            DrillResult::Failed,
            "interrupted: the operator stopped while starting it, so it is not run again \
             (it may or may not have been sent); annotate a new id to run it again"
                .into(),
        ),
        (DrillResult::Running, false) => match ready {
            Ok(c) if c.status => {
                let m = format!("{}; available again", last.message);
                finish(&mut next, DrillResult::Succeeded, m);
            }
            _ => return None,
        },
        _ => return None,
    }
    (next != *last).then_some(next)
}

/// Ready in the pass that sent a drill that takes the resource down: what
/// observe saw before the call is no longer true.
pub fn going_down(record: Option<&DrillStatus>, started: bool) -> Option<Cond> {
    let r = record.filter(|r| started && r.result == DrillResult::Running)?;
    Some(Cond::ready(
        false,
        ReadyReason::Unavailable,
        format!("{} drill {}: {}", r.type_, r.id, r.message),
    ))
}

/// The event when a drill finishes: Normal when it succeeded, else a
/// Warning.
pub fn finish_events(old: Option<&DrillStatus>, new: Option<&DrillStatus>, events: &mut Events) {
    let Some(n) = new.filter(|n| n.result.finished()) else {
        return;
    };
    if old.is_some_and(|o| o.id == n.id && o.type_ == n.type_ && o.result.finished()) {
        return;
    }
    let note = format!(
        "{} drill {} finished: {:?}: {}",
        n.type_, n.id, n.result, n.message
    );
    match n.result {
        DrillResult::Succeeded => events.normal("DrillFinished", note),
        _ => events.warning("DrillFailed", note),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::DrillType;

    fn now() -> Timestamp {
        Timestamp::from_second(100).unwrap_or_default()
    }

    fn ready(ok: bool) -> ManagedStatus<()> {
        let mut s = ManagedStatus::default();
        let c = Cond::ready(ok, ReadyReason::Available, "");
        conditions::set(&mut s.conditions, &c, None, now());
        s
    }

    #[test]
    fn starts_a_new_id_on_a_ready_resource_only() {
        let s = ready(true);
        assert_eq!(start(&s, None, now()), None);
        let st = start(&s, Some("failover/a"), now());
        assert_eq!(
            st.as_ref().map(|s| s.record.result),
            Some(DrillResult::Pending)
        );
        assert_eq!(start(&ready(false), Some("failover/a"), now()), None);
        let mut ran = ready(true);
        ran.drill = st.map(|s| s.record);
        // Under way (Pending): never a second start.
        assert_eq!(start(&ran, Some("failover/b"), now()), None);
        if let Some(d) = ran.drill.as_mut() {
            d.result = DrillResult::Succeeded;
        }
        assert_eq!(start(&ran, Some("failover/a"), now()), None);
        assert!(start(&ran, Some("failover/b"), now()).is_some());
    }

    fn rec(result: DrillResult) -> DrillStatus {
        DrillStatus {
            type_: DrillType::Failover,
            id: "a".into(),
            started_at: None,
            finished_at: None,
            result,
            message: "m".into(),
        }
    }

    #[test]
    fn a_drill_moves_from_pending_to_its_end() {
        let up = Cond::ready(true, ReadyReason::Available, "");
        let down = Cond::ready(false, ReadyReason::Unavailable, "");
        let pending = rec(DrillResult::Pending);
        let sent = Some(Ok(DrillStep::Started("rebooting".into())));
        let r = after_pass(Some(&pending), true, sent, Ok(&up), now());
        assert_eq!(r.as_ref().map(|r| r.result), Some(DrillResult::Running));
        assert!(going_down(r.as_ref(), true).is_some_and(|c| !c.status));
        let running = r.unwrap_or_else(|| rec(DrillResult::Running));
        assert_eq!(
            after_pass(Some(&running), false, None, Ok(&down), now()),
            None
        );
        let done = after_pass(Some(&running), false, None, Ok(&up), now());
        assert_eq!(
            done.as_ref().map(|r| r.result),
            Some(DrillResult::Succeeded)
        );
        assert!(done.is_some_and(|d| d.finished_at.is_some()));

        let refused = Some(Ok(DrillStep::Refused("single-AZ".into())));
        let r = after_pass(Some(&pending), true, refused, Ok(&up), now());
        assert_eq!(r.map(|r| r.result), Some(DrillResult::Refused));
        let failed = after_pass(
            Some(&pending),
            true,
            Some(Err("boom".into())),
            Ok(&up),
            now(),
        );
        assert_eq!(
            failed.map(|r| (r.result, r.message)),
            Some((DrillResult::Failed, "boom".into()))
        );
        let not_reached = after_pass(Some(&pending), true, None, Err("unreachable"), now());
        assert_eq!(
            not_reached.map(|r| r.message),
            Some("not run: unreachable".into())
        );
        // Found Pending by a later pass: interrupted, never sent again.
        let interrupted = after_pass(Some(&pending), false, None, Ok(&up), now());
        assert_eq!(interrupted.map(|r| r.result), Some(DrillResult::Failed));
        // Finished: nothing changes.
        assert_eq!(
            after_pass(
                Some(&rec(DrillResult::Succeeded)),
                false,
                None,
                Ok(&up),
                now()
            ),
            None
        );
    }

    #[test]
    fn one_event_when_a_drill_finishes() {
        let mut events = Events::default();
        let done = rec(DrillResult::Succeeded);
        finish_events(Some(&rec(DrillResult::Running)), Some(&done), &mut events);
        finish_events(Some(&done), Some(&done), &mut events);
        finish_events(None, Some(&rec(DrillResult::Running)), &mut events);
        assert_eq!(events.0.len(), 1);
        assert_eq!(events.0[0].reason, "DrillFinished");
    }
}
