//! Readiness of a composed resource, judged on the object as last observed.
//!
//! No checks listed means "the object's Ready condition is True", as in
//! Crossplane. All listed checks must pass. The message says in plain words
//! what is still missing, naming the object and quoting its own Ready
//! condition when that explains the wait.

use serde_json::Value;

use super::Readiness;
use super::fieldpath::{FieldPath, PathError};
use super::value::{Num, describe, kind_of, quote_short};
use crate::api::composition::{ReadinessCheck, ReadinessCheckType};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    #[error("a {check_type} check needs \"{field}\"")]
    MissingField {
        check_type: &'static str,
        field: &'static str,
    },
    #[error("fieldPath: {0}")]
    BadPath(PathError),
}

pub fn type_name(t: ReadinessCheckType) -> &'static str {
    match t {
        ReadinessCheckType::MatchCondition => "MatchCondition",
        ReadinessCheckType::MatchString => "MatchString",
        ReadinessCheckType::MatchInteger => "MatchInteger",
        ReadinessCheckType::MatchTrue => "MatchTrue",
        ReadinessCheckType::MatchFalse => "MatchFalse",
        ReadinessCheckType::NonEmpty => "NonEmpty",
        ReadinessCheckType::None => "None",
    }
}

/// A check with its settings verified and its path parsed.
enum Check<'a> {
    Condition { type_: &'a str, status: &'a str },
    String(FieldPath, &'a str),
    Integer(FieldPath, i64),
    Bool(FieldPath, bool),
    NonEmpty(FieldPath),
    Always,
}

/// Verifies a check's settings: what `validate` reports statically and
/// `render` refuses at run time.
pub fn check_config(c: &ReadinessCheck) -> Result<(), CheckError> {
    prepare(c).map(|_| ())
}

fn prepare(c: &ReadinessCheck) -> Result<Check<'_>, CheckError> {
    let check_type = type_name(c.type_);
    let missing = |field| CheckError::MissingField { check_type, field };
    let path = || -> Result<FieldPath, CheckError> {
        let text = c.field_path.as_deref().ok_or(missing("fieldPath"))?;
        FieldPath::parse(text).map_err(CheckError::BadPath)
    };
    Ok(match c.type_ {
        ReadinessCheckType::MatchCondition => {
            let m = c
                .match_condition
                .as_ref()
                .ok_or(missing("matchCondition"))?;
            Check::Condition {
                type_: &m.type_,
                status: &m.status,
            }
        }
        ReadinessCheckType::MatchString => Check::String(
            path()?,
            c.match_string.as_deref().ok_or(missing("matchString"))?,
        ),
        ReadinessCheckType::MatchInteger => {
            Check::Integer(path()?, c.match_integer.ok_or(missing("matchInteger"))?)
        }
        ReadinessCheckType::MatchTrue => Check::Bool(path()?, true),
        ReadinessCheckType::MatchFalse => Check::Bool(path()?, false),
        ReadinessCheckType::NonEmpty => Check::NonEmpty(path()?),
        ReadinessCheckType::None => Check::Always,
    })
}

/// A condition of an object: (status, reason, message).
fn condition<'v>(obj: &'v Value, type_: &str) -> Option<(&'v str, &'v str, &'v str)> {
    let conds = obj.get("status")?.get("conditions")?.as_array()?;
    let c = conds
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))?;
    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("");
    Some((s("status"), s("reason"), s("message")))
}

/// ` (Creating: the DB instance is being created)` from a condition.
fn explain(reason: &str, message: &str) -> String {
    match (reason.is_empty(), message.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(" ({reason})"),
        (true, false) => format!(" ({message})"),
        (false, false) => format!(" ({reason}: {message})"),
    }
}

/// Why the check fails on `obj`, or `None` when it passes.
fn failure(check: &Check<'_>, obj: &Value) -> Option<String> {
    let field = |p: &FieldPath| -> Result<Option<Value>, String> {
        match p.get(obj) {
            Ok(v) => Ok(v.cloned()),
            Err(e) => Err(format!("{p}: {e}")),
        }
    };
    let not_set = |p: &FieldPath| Some(format!("{p} is not set yet"));
    match check {
        Check::Always => None,
        Check::Condition { type_, status } => match condition(obj, type_) {
            Some((actual, _, _)) if actual == *status => None,
            // Crossplane reads a missing condition as status Unknown.
            None if *status == "Unknown" => None,
            None => Some(format!("has no {type_} condition yet")),
            Some((actual, reason, message)) => {
                let want = if *status == "True" {
                    String::new()
                } else {
                    format!(", want {status:?}")
                };
                Some(format!(
                    "condition {type_} is {actual:?}{want}{}",
                    explain(reason, message)
                ))
            }
        },
        Check::String(p, want) => match field(p) {
            Err(e) => Some(e),
            Ok(None) => not_set(p),
            Ok(Some(Value::String(s))) if s == *want => None,
            Ok(Some(Value::String(s))) => Some(format!(
                "{p} is {}, want {}",
                quote_short(&s),
                quote_short(want)
            )),
            Ok(Some(v)) => Some(format!(
                "{p} is {}, want the string {}",
                describe(&v),
                quote_short(want)
            )),
        },
        Check::Integer(p, want) => match field(p) {
            Err(e) => Some(e),
            Ok(None) => not_set(p),
            Ok(Some(v)) => match Num::of(&v) {
                Some(Num::Int(i)) if i == *want => None,
                Some(Num::Float(f)) if f.fract() == 0.0 && f == *want as f64 => None,
                Some(_) => Some(format!("{p} is {v}, want {want}")),
                None => Some(format!("{p} is {}, want the integer {want}", describe(&v))),
            },
        },
        Check::Bool(p, want) => match field(p) {
            Err(e) => Some(e),
            Ok(None) => not_set(p),
            Ok(Some(Value::Bool(b))) if b == *want => None,
            Ok(Some(v)) => Some(format!("{p} is {}, want {want}", describe(&v))),
        },
        Check::NonEmpty(p) => match field(p) {
            Err(e) => Some(e),
            Ok(None) => not_set(p),
            Ok(Some(v)) if is_empty(&v) => Some(format!("{p} is empty ({})", kind_of(&v))),
            Ok(Some(_)) => None,
        },
    }
}

/// Crossplane's NonEmpty only asks that the field exist; an empty string,
/// list or map is not what anyone waiting for a value means, so those count
/// as empty here.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Readiness of one composed resource. `what` names it in messages
/// (`RDSInstance team-a-orders-db-instance`). Errors carry the index of a
/// misconfigured check; they are reported whether or not the object exists.
pub fn evaluate(
    what: &str,
    checks: &[ReadinessCheck],
    observed: Option<&Value>,
) -> Result<Readiness, (usize, CheckError)> {
    let prepared: Vec<Check<'_>> = checks
        .iter()
        .enumerate()
        .map(|(i, c)| prepare(c).map_err(|e| (i, e)))
        .collect::<Result<_, _>>()?;
    let Some(obj) = observed else {
        return Ok(Readiness {
            ready: false,
            message: format!("{what}: not created yet"),
        });
    };
    let default = [Check::Condition {
        type_: "Ready",
        status: "True",
    }];
    let list: &[Check<'_>] = if prepared.is_empty() {
        &default
    } else {
        &prepared
    };
    let failures: Vec<String> = list.iter().filter_map(|c| failure(c, obj)).collect();
    if failures.is_empty() {
        return Ok(Readiness {
            ready: true,
            message: String::new(),
        });
    }
    let mut message = format!("{what}: {}", failures.join("; "));
    // When a field check fails, the object's own Ready condition usually
    // says why (e.g. "Creating"); quote it unless a message already did.
    let mentions_ready = list
        .iter()
        .any(|c| matches!(c, Check::Condition { type_: "Ready", .. }));
    if !mentions_ready
        && let Some((status, reason, msg)) = condition(obj, "Ready")
        && status != "True"
        && !(reason.is_empty() && msg.is_empty())
    {
        message.push_str(&format!(
            "; its Ready condition is {status:?}{}",
            explain(reason, msg)
        ));
    }
    Ok(Readiness {
        ready: false,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn checks(v: Value) -> Vec<ReadinessCheck> {
        serde_json::from_value(v).unwrap()
    }

    fn obj(status: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "X", "status": status})
    }

    const W: &str = "RDSInstance team-a-orders-db-instance";

    fn eval(c: Value, o: Option<Value>) -> Readiness {
        evaluate(W, &checks(c), o.as_ref()).unwrap()
    }

    fn ready() -> Readiness {
        Readiness {
            ready: true,
            message: String::new(),
        }
    }

    fn not_ready(m: &str) -> Readiness {
        Readiness {
            ready: false,
            message: format!("{W}: {m}"),
        }
    }

    #[test]
    fn not_observed_is_not_created_yet() {
        assert_eq!(eval(json!([]), None), not_ready("not created yet"));
        assert_eq!(
            eval(json!([{"type": "None"}]), None),
            not_ready("not created yet")
        );
    }

    #[test]
    fn default_is_the_ready_condition() {
        let creating = obj(json!({"conditions": [
            {"type": "Synced", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "Creating", "message": "DB instance is being created"}
        ]}));
        assert_eq!(
            eval(json!([]), Some(creating)),
            not_ready("condition Ready is \"False\" (Creating: DB instance is being created)")
        );
        assert_eq!(
            eval(
                json!([]),
                Some(obj(
                    json!({"conditions": [{"type": "Ready", "status": "True"}]})
                ))
            ),
            ready()
        );
        assert_eq!(
            eval(json!([]), Some(obj(json!({})))),
            not_ready("has no Ready condition yet")
        );
        assert_eq!(
            eval(json!([]), Some(json!({"status": {"conditions": "junk"}}))),
            not_ready("has no Ready condition yet")
        );
        assert_eq!(
            eval(
                json!([]),
                Some(obj(
                    json!({"conditions": [{"type": "Ready", "status": "Unknown", "reason": "Waiting"}]})
                ))
            ),
            not_ready("condition Ready is \"Unknown\" (Waiting)")
        );
    }

    #[test]
    fn match_condition() {
        let c = json!([{"type": "MatchCondition", "matchCondition": {"type": "Synced", "status": "True"}}]);
        let synced = obj(json!({"conditions": [{"type": "Synced", "status": "True"}]}));
        assert_eq!(eval(c.clone(), Some(synced)), ready());
        let unsynced = obj(
            json!({"conditions": [{"type": "Synced", "status": "False", "message": "bad credentials"}]}),
        );
        assert_eq!(
            eval(c.clone(), Some(unsynced)),
            not_ready("condition Synced is \"False\" (bad credentials)")
        );
        let want_false = json!([{"type": "MatchCondition", "matchCondition": {"type": "Paused", "status": "False"}}]);
        assert_eq!(
            eval(
                want_false,
                Some(obj(
                    json!({"conditions": [{"type": "Paused", "status": "True"}]})
                ))
            ),
            not_ready("condition Paused is \"True\", want \"False\"")
        );
        // A missing condition reads as Unknown, as in Crossplane.
        let want_unknown = json!([{"type": "MatchCondition", "matchCondition": {"type": "Foo", "status": "Unknown"}}]);
        assert_eq!(eval(want_unknown, Some(obj(json!({})))), ready());
    }

    #[test]
    fn match_string() {
        let c = json!([{"type": "MatchString", "fieldPath": "status.atProvider.state", "matchString": "available"}]);
        assert_eq!(
            eval(
                c.clone(),
                Some(obj(json!({"atProvider": {"state": "available"}})))
            ),
            ready()
        );
        assert_eq!(
            eval(
                c.clone(),
                Some(obj(json!({"atProvider": {"state": "creating"}})))
            ),
            not_ready("status.atProvider.state is \"creating\", want \"available\"")
        );
        assert_eq!(
            eval(c.clone(), Some(obj(json!({})))),
            not_ready("status.atProvider.state is not set yet")
        );
        assert_eq!(
            eval(c.clone(), Some(obj(json!({"atProvider": {"state": 3}})))),
            not_ready("status.atProvider.state is the integer 3, want the string \"available\"")
        );
        assert_eq!(
            eval(c, Some(obj(json!({"atProvider": "x"})))),
            not_ready("status.atProvider.state: status.atProvider is a string, not an object")
        );
    }

    #[test]
    fn match_integer() {
        let c =
            json!([{"type": "MatchInteger", "fieldPath": "status.replicas", "matchInteger": 3}]);
        assert_eq!(eval(c.clone(), Some(obj(json!({"replicas": 3})))), ready());
        assert_eq!(
            eval(c.clone(), Some(obj(json!({"replicas": 3.0})))),
            ready()
        );
        assert_eq!(
            eval(c.clone(), Some(obj(json!({"replicas": 1})))),
            not_ready("status.replicas is 1, want 3")
        );
        assert_eq!(
            eval(c.clone(), Some(obj(json!({"replicas": "3"})))),
            not_ready("status.replicas is the string \"3\", want the integer 3")
        );
        assert_eq!(
            eval(c, Some(obj(json!({})))),
            not_ready("status.replicas is not set yet")
        );
    }

    #[test]
    fn match_true_and_false() {
        let t = json!([{"type": "MatchTrue", "fieldPath": "status.ok"}]);
        let f = json!([{"type": "MatchFalse", "fieldPath": "status.ok"}]);
        assert_eq!(eval(t.clone(), Some(obj(json!({"ok": true})))), ready());
        assert_eq!(
            eval(t.clone(), Some(obj(json!({"ok": false})))),
            not_ready("status.ok is the boolean false, want true")
        );
        assert_eq!(
            eval(t.clone(), Some(obj(json!({})))),
            not_ready("status.ok is not set yet")
        );
        assert_eq!(eval(f.clone(), Some(obj(json!({"ok": false})))), ready());
        assert_eq!(
            eval(f.clone(), Some(obj(json!({"ok": true})))),
            not_ready("status.ok is the boolean true, want false")
        );
        assert_eq!(
            eval(f, Some(obj(json!({"ok": "no"})))),
            not_ready("status.ok is the string \"no\", want false")
        );
    }

    #[test]
    fn non_empty_and_none() {
        let c = json!([{"type": "NonEmpty", "fieldPath": "status.atProvider.endpoint"}]);
        assert_eq!(
            eval(
                c.clone(),
                Some(obj(json!({"atProvider": {"endpoint": "h"}})))
            ),
            ready()
        );
        assert_eq!(
            eval(
                c.clone(),
                Some(obj(json!({"atProvider": {"endpoint": {"a": 1}}})))
            ),
            ready()
        );
        assert_eq!(
            eval(c.clone(), Some(obj(json!({"atProvider": {"endpoint": 0}})))),
            ready()
        );
        assert_eq!(
            eval(
                c.clone(),
                Some(obj(json!({"atProvider": {"endpoint": ""}})))
            ),
            not_ready("status.atProvider.endpoint is empty (a string)")
        );
        assert_eq!(
            eval(c, Some(obj(json!({})))),
            not_ready("status.atProvider.endpoint is not set yet")
        );
        assert_eq!(eval(json!([{"type": "None"}]), Some(json!({}))), ready());
    }

    #[test]
    fn all_checks_must_pass_and_the_ready_condition_is_quoted() {
        let c = json!([
            {"type": "NonEmpty", "fieldPath": "status.a"},
            {"type": "MatchString", "fieldPath": "status.b", "matchString": "x"},
            {"type": "None"}
        ]);
        let o = obj(
            json!({"a": "set", "b": "y", "conditions": [{"type": "Ready", "status": "False", "reason": "Creating"}]}),
        );
        assert_eq!(
            eval(c.clone(), Some(o)),
            not_ready("status.b is \"y\", want \"x\"; its Ready condition is \"False\" (Creating)")
        );
        assert_eq!(
            eval(c.clone(), Some(obj(json!({})))),
            not_ready("status.a is not set yet; status.b is not set yet")
        );
        assert_eq!(eval(c, Some(obj(json!({"a": "set", "b": "x"})))), ready());
    }

    #[test]
    fn misconfigured_checks_are_errors_with_their_index() {
        let cases = vec![
            (
                json!([{"type": "None"}, {"type": "MatchString", "matchString": "x"}]),
                1,
                "a MatchString check needs \"fieldPath\"",
            ),
            (
                json!([{"type": "MatchString", "fieldPath": "a"}]),
                0,
                "a MatchString check needs \"matchString\"",
            ),
            (
                json!([{"type": "MatchInteger", "fieldPath": "a"}]),
                0,
                "needs \"matchInteger\"",
            ),
            (
                json!([{"type": "MatchCondition"}]),
                0,
                "a MatchCondition check needs \"matchCondition\"",
            ),
            (
                json!([{"type": "MatchTrue"}]),
                0,
                "a MatchTrue check needs \"fieldPath\"",
            ),
            (
                json!([{"type": "MatchFalse"}]),
                0,
                "a MatchFalse check needs \"fieldPath\"",
            ),
            (
                json!([{"type": "NonEmpty", "fieldPath": "a..b"}]),
                0,
                "fieldPath: field path \"a..b\" is not valid",
            ),
        ];
        for (c, index, want) in cases {
            let (i, e) = evaluate(W, &checks(c.clone()), None).unwrap_err();
            assert_eq!(i, index, "{c}");
            assert!(e.to_string().contains(want), "{c}: {e}");
        }
    }
}
