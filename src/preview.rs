//! What a composition change does to a claim, pure: per composed object,
//! the object as it runs now against what the new spec renders, a unified
//! diff of the two, and whether the change destroys something. `dbclaim
//! diff` gathers the objects (from the cluster or from files) and prints
//! what this module decides.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};

/// What becomes of one composed object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Unchanged,
    Changed,
    Created,
    Deleted,
    /// Its kind, name or namespace changes: a new object, the old one deleted.
    Replaced,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectChange {
    /// The composition's resource name.
    pub resource: String,
    /// `Kind namespace/name` (or `Kind name` for a cluster-scoped object).
    pub object: String,
    pub action: Action,
    /// A unified diff, empty when unchanged. Secret values are hidden.
    pub diff: String,
    /// Why the change destroys something; empty when it does not.
    pub destructive: Vec<String>,
}

/// One claim's preview.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimPreview {
    /// `namespace/name`.
    pub claim: String,
    /// The revision the claim renders now, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Manual or pinned: the change does not reach it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned: Option<String>,
    /// The new spec cannot be rendered for this claim (or its objects read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub objects: Vec<ObjectChange>,
}

impl ClaimPreview {
    pub fn new(claim: String) -> Self {
        ClaimPreview {
            claim,
            revision: None,
            pinned: None,
            error: None,
            objects: Vec::new(),
        }
    }

    pub fn changed(&self) -> bool {
        self.objects.iter().any(|o| o.action != Action::Unchanged)
    }

    pub fn destructive(&self) -> bool {
        self.objects.iter().any(|o| !o.destructive.is_empty())
    }

    /// One line: what happens to this claim.
    pub fn summary(&self) -> String {
        if let Some(why) = &self.pinned {
            return format!("{}: {why}: unaffected", self.claim);
        }
        if let Some(e) = &self.error {
            return format!("{}: ERROR: {e}", self.claim);
        }
        let count = |a: Action| self.objects.iter().filter(|o| o.action == a).count();
        let (changed, created, deleted, replaced) = (
            count(Action::Changed),
            count(Action::Created),
            count(Action::Deleted),
            count(Action::Replaced),
        );
        if changed + created + deleted + replaced == 0 {
            return format!("{}: no change", self.claim);
        }
        let mut line = format!(
            "{}: {changed} changed, {created} created, {deleted} deleted, {replaced} replaced",
            self.claim
        );
        let reasons: Vec<String> = self
            .objects
            .iter()
            .flat_map(|o| {
                o.destructive
                    .iter()
                    .map(move |r| format!("{}: {r}", o.object))
            })
            .collect();
        if !reasons.is_empty() {
            line.push_str(&format!("; DESTRUCTIVE: {}", reasons.join("; ")));
        }
        line
    }
}

/// The exit code of `dbclaim diff`: 3 destructive, 2 an error, 1 changes, 0 none.
pub fn exit_code(previews: &[ClaimPreview]) -> u8 {
    if previews.iter().any(ClaimPreview::destructive) {
        3
    } else if previews.iter().any(|p| p.error.is_some()) {
        2
    } else if previews.iter().any(ClaimPreview::changed) {
        1
    } else {
        0
    }
}

/// Compares the objects running now with those the new spec renders, both
/// keyed by the composition's resource name. `now` should hold only the
/// fields dbclaim renders (see [`project`]), so server-set fields are no noise.
pub fn compare(now: &BTreeMap<String, Value>, new: &BTreeMap<String, Value>) -> Vec<ObjectChange> {
    let names: BTreeSet<&String> = now.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .map(|resource| {
            let (before, after) = (now.get(resource), new.get(resource));
            let object = label(after.or(before).unwrap_or(&Value::Null));
            let (action, mut destructive) = match (before, after) {
                (None, _) => (Action::Created, Vec::new()),
                (Some(_), None) => (Action::Deleted, vec!["deleted".to_string()]),
                (Some(b), Some(a)) if identity(b) != identity(a) => {
                    (Action::Replaced, vec![format!("replaced by {}", label(a))])
                }
                (Some(b), Some(a)) if b == a => (Action::Unchanged, Vec::new()),
                (Some(_), Some(_)) => (Action::Changed, Vec::new()),
            };
            if let (Action::Changed, Some(b), Some(a)) = (&action, before, after) {
                destructive = destroys(b, a);
            }
            let object = match (&action, before) {
                (Action::Deleted | Action::Replaced, Some(b)) => label(b),
                _ => object,
            };
            let diff = match action {
                Action::Unchanged => String::new(),
                _ => unified(&object, before, after),
            };
            ObjectChange {
                resource: resource.clone(),
                object,
                action,
                diff,
                destructive,
            }
        })
        .collect()
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// (apiVersion group, kind, namespace, name): what makes it the same object.
fn identity(v: &Value) -> (&str, &str, &str, &str) {
    let group = str_at(v, "/apiVersion")
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or("");
    (
        group,
        str_at(v, "/kind"),
        str_at(v, "/metadata/namespace"),
        str_at(v, "/metadata/name"),
    )
}

fn label(v: &Value) -> String {
    let (_, kind, ns, name) = identity(v);
    match ns {
        "" => format!("{kind} {name}"),
        ns => format!("{kind} {ns}/{name}"),
    }
}

/// Fields a managed resource fixes at creation: changing one needs a new
/// external resource (the contract's CEL rules refuse the change).
fn immutable(kind: &str, path: &str) -> bool {
    const RDS: &[&str] = &[
        "spec.forProvider.engine",
        "spec.forProvider.dbName",
        "spec.forProvider.masterUsername",
        "spec.forProvider.kmsKeyId",
        "spec.forProvider.storageEncrypted",
        "spec.forProvider.region",
        "spec.providerConfigRef.name",
    ];
    const DATABASE: &[&str] = &[
        "spec.forProvider.databaseName",
        "spec.providerConfigRef.name",
    ];
    match kind {
        "RDSInstance" => RDS.contains(&path),
        "Database" => DATABASE.contains(&path),
        _ => false,
    }
}

/// Why changing `before` into `after` (the same object) destroys something.
fn destroys(before: &Value, after: &Value) -> Vec<String> {
    let kind = str_at(after, "/kind");
    let mut changed = Vec::new();
    leaves_changed(before, after, String::new(), &mut changed);
    let mut reasons = Vec::new();
    for (path, b, a) in changed {
        let last = path.rsplit('.').next().unwrap_or_default();
        if immutable(kind, &path) {
            reasons.push(format!(
                "{path} is fixed at creation ({} → {}): a new {kind} is needed",
                short(&b),
                short(&a)
            ));
        } else if last == "engine" {
            reasons.push(format!("engine changes ({} → {})", short(&b), short(&a)));
        } else if last.to_ascii_lowercase().contains("storage")
            && let (Some(x), Some(y)) = (number(&b), number(&a))
            && y < x
        {
            reasons.push(format!("storage shrinks ({path}: {x} → {y})"));
        }
    }
    reasons
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn short(v: &Value) -> String {
    match v {
        Value::Null => "unset".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every leaf (dotted path) whose value differs; lists compare whole.
fn leaves_changed(b: &Value, a: &Value, path: String, out: &mut Vec<(String, Value, Value)>) {
    match (b, a) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let null = Value::Null;
                leaves_changed(x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null), p, out);
            }
        }
        _ if b != a => out.push((path, b.clone(), a.clone())),
        _ => {}
    }
}

/// `live` cut down to the fields `template` has: what dbclaim renders of a
/// live object, without what the API server and other controllers add.
pub fn project(live: &Value, template: &Value) -> Value {
    match (live, template) {
        (Value::Object(l), Value::Object(t)) => {
            let kept: Map<String, Value> = l
                .iter()
                .filter_map(|(k, v)| t.get(k).map(|tv| (k.clone(), project(v, tv))))
                .collect();
            Value::Object(kept)
        }
        _ => live.clone(),
    }
}

/// The union of two objects' fields, for [`project`]: a field the old or
/// the new render sets.
pub fn union(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut out = x.clone();
            for (k, v) in y {
                let merged = match x.get(k) {
                    Some(old) => union(old, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Null, other) => other.clone(),
        (other, _) => other.clone(),
    }
}

/// A Secret's values as placeholders: a change shows as changed, never
/// what the value was or is.
fn hide_secret(before: Option<&Value>, after: Option<&Value>) -> (Option<Value>, Option<Value>) {
    let is_secret = |v: Option<&Value>| {
        v.is_some_and(|v| str_at(v, "/kind") == "Secret" && str_at(v, "/apiVersion") == "v1")
    };
    if !is_secret(before) && !is_secret(after) {
        return (before.cloned(), after.cloned());
    }
    let (mut b, mut a) = (before.cloned(), after.cloned());
    for field in ["data", "stringData"] {
        let old: Option<Map<String, Value>> = before
            .and_then(|v| v.get(field))
            .and_then(Value::as_object)
            .cloned();
        if let Some(obj) = b
            .as_mut()
            .and_then(|v| v.get_mut(field))
            .and_then(Value::as_object_mut)
        {
            for v in obj.values_mut() {
                *v = Value::from("(hidden)");
            }
        }
        if let Some(obj) = a
            .as_mut()
            .and_then(|v| v.get_mut(field))
            .and_then(Value::as_object_mut)
        {
            for (k, v) in obj.iter_mut() {
                let same = old.as_ref().and_then(|o| o.get(k)) == Some(&*v);
                *v = Value::from(if same {
                    "(hidden)"
                } else {
                    "(hidden, changed)"
                });
            }
        }
    }
    (b, a)
}

fn yaml(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(v) => serde_yaml::to_string(v).unwrap_or_default(),
    }
}

fn unified(object: &str, before: Option<&Value>, after: Option<&Value>) -> String {
    let (b, a) = hide_secret(before, after);
    let (old, new) = (yaml(b.as_ref()), yaml(a.as_ref()));
    let old_name = match before {
        Some(_) => format!("{object} (now)"),
        None => "/dev/null".to_string(),
    };
    let new_name = match after {
        Some(v) => format!("{} (new)", label(v)),
        None => "/dev/null".to_string(),
    };
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&old_name, &new_name)
        .to_string()
}

/// The report for a person: each claim's diffs then its summary line;
/// `colour` for a terminal.
pub fn text(previews: &[ClaimPreview], colour: bool) -> String {
    let paint = |code: &str, line: &str| match colour {
        true => format!("\x1b[{code}m{line}\x1b[0m"),
        false => line.to_string(),
    };
    let mut out = String::new();
    for p in previews {
        for o in p.objects.iter().filter(|o| o.action != Action::Unchanged) {
            for line in o.diff.lines() {
                let painted = if line.starts_with("+++") || line.starts_with("---") {
                    paint("1", line)
                } else if line.starts_with('+') {
                    paint("32", line)
                } else if line.starts_with('-') {
                    paint("31", line)
                } else if line.starts_with("@@") {
                    paint("36", line)
                } else {
                    line.to_string()
                };
                out.push_str(&painted);
                out.push('\n');
            }
        }
        let summary = p.summary();
        let summary = match (p.destructive() || p.error.is_some(), p.changed()) {
            (true, _) => paint("1;31", &summary),
            (false, true) => paint("1;33", &summary),
            (false, false) => paint("1", &summary),
        };
        out.push_str(&summary);
        out.push('\n');
    }
    if previews.is_empty() {
        out.push_str("no claim uses this composition\n");
    }
    out
}

/// The report for CI (`-o json`).
pub fn json(previews: &[ClaimPreview]) -> Value {
    serde_json::json!({
        "changed": previews.iter().any(ClaimPreview::changed),
        "destructive": previews.iter().any(ClaimPreview::destructive),
        "claims": previews.iter().map(|p| {
            let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.insert("summary".into(), Value::from(p.summary()));
            }
            v
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests;
