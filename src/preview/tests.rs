use super::*;
use serde_json::json;

fn cm(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "team-a"}, "data": data})
}

fn rds(spec: Value) -> Value {
    json!({"apiVersion": "aws.dbclaim.io/v1alpha1", "kind": "RDSInstance",
           "metadata": {"name": "db"}, "spec": {"forProvider": spec}})
}

fn map(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn preview(objects: Vec<ObjectChange>) -> ClaimPreview {
    ClaimPreview {
        objects,
        ..ClaimPreview::new("team-a/app".into())
    }
}

#[test]
fn unchanged_objects_have_no_diff_and_exit_0() {
    let a = map(&[("x", cm("x", json!({"k": "v"})))]);
    let changes = compare(&a, &a);
    assert_eq!(changes[0].action, Action::Unchanged);
    assert!(changes[0].diff.is_empty());
    let p = preview(changes);
    assert_eq!(p.summary(), "team-a/app: no change");
    assert_eq!(exit_code(&[p]), 0);
}

#[test]
fn a_changed_field_is_a_unified_diff_and_exit_1() {
    let now = map(&[("x", cm("x", json!({"class": "db.t3.micro"})))]);
    let new = map(&[("x", cm("x", json!({"class": "db.t3.small"})))]);
    let changes = compare(&now, &new);
    assert_eq!(changes[0].action, Action::Changed);
    assert!(changes[0].destructive.is_empty());
    let diff = &changes[0].diff;
    assert!(
        diff.starts_with("--- ConfigMap team-a/x (now)\n+++ ConfigMap team-a/x (new)\n@@"),
        "{diff}"
    );
    assert!(
        diff.contains("\n-  class: db.t3.micro\n+  class: db.t3.small\n"),
        "{diff}"
    );
    let p = preview(changes);
    assert_eq!(
        p.summary(),
        "team-a/app: 1 changed, 0 created, 0 deleted, 0 replaced"
    );
    assert_eq!(exit_code(&[p]), 1);
}

#[test]
fn deleted_and_replaced_objects_are_destructive() {
    let now = map(&[
        ("gone", cm("gone", json!({}))),
        ("moved", cm("old-name", json!({}))),
    ]);
    let new = map(&[
        ("moved", cm("new-name", json!({}))),
        ("added", cm("added", json!({}))),
    ]);
    let changes = compare(&now, &new);
    let by = |r: &str| {
        changes
            .iter()
            .find(|c| c.resource == r)
            .cloned()
            .unwrap_or_else(|| panic!("{r}"))
    };
    assert_eq!(by("added").action, Action::Created);
    assert!(by("added").destructive.is_empty());
    assert_eq!(by("gone").action, Action::Deleted);
    assert_eq!(by("gone").object, "ConfigMap team-a/gone");
    assert!(by("gone").diff.contains("+++ /dev/null"));
    assert_eq!(by("moved").action, Action::Replaced);
    assert_eq!(by("moved").object, "ConfigMap team-a/old-name");
    assert_eq!(
        by("moved").destructive,
        vec!["replaced by ConfigMap team-a/new-name".to_string()]
    );
    let p = preview(changes);
    assert!(
        p.summary()
            .contains("DESTRUCTIVE: ConfigMap team-a/gone: deleted"),
        "{}",
        p.summary()
    );
    assert_eq!(exit_code(&[p]), 3);
}

#[test]
fn immutable_fields_engine_and_shrinking_storage_are_destructive() {
    let before = rds(
        json!({"engine": "postgres", "dbName": "orders", "allocatedStorage": 50, "dbInstanceClass": "a"}),
    );
    let cases = [
        (json!({"engine": "mysql"}), "engine"),
        (
            json!({"dbName": "billing"}),
            "spec.forProvider.dbName is fixed at creation",
        ),
        (
            json!({"allocatedStorage": 20}),
            "storage shrinks (spec.forProvider.allocatedStorage: 50 → 20)",
        ),
    ];
    for (change, want) in cases {
        let mut after = before.clone();
        if let (Some(f), Some(c)) = (
            after
                .pointer_mut("/spec/forProvider")
                .and_then(Value::as_object_mut),
            change.as_object(),
        ) {
            for (k, v) in c {
                f.insert(k.clone(), v.clone());
            }
        }
        let changes = compare(&map(&[("i", before.clone())]), &map(&[("i", after)]));
        let reasons = changes[0].destructive.join("; ");
        assert!(reasons.contains(want), "{change}: {reasons}");
    }
    // Growing storage, or a class change, destroys nothing.
    for change in [
        json!({"allocatedStorage": 100}),
        json!({"dbInstanceClass": "b"}),
    ] {
        let mut after = before.clone();
        if let (Some(f), Some(c)) = (
            after
                .pointer_mut("/spec/forProvider")
                .and_then(Value::as_object_mut),
            change.as_object(),
        ) {
            for (k, v) in c {
                f.insert(k.clone(), v.clone());
            }
        }
        let changes = compare(&map(&[("i", before.clone())]), &map(&[("i", after)]));
        assert!(changes[0].destructive.is_empty(), "{change}");
    }
}

#[test]
fn secret_values_are_never_shown() {
    let secret = |pw: &str| {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "team-a"},
               "stringData": {"password": pw, "user": "app"}})
    };
    let changes = compare(
        &map(&[("s", secret("old-pw-1"))]),
        &map(&[("s", secret("new-pw-2"))]),
    );
    let diff = &changes[0].diff;
    assert!(
        !diff.contains("old-pw-1") && !diff.contains("new-pw-2"),
        "{diff}"
    );
    assert!(diff.contains("+  password: (hidden, changed)"), "{diff}");
    let text = text(&[preview(changes.clone())], false);
    let json = json(&[preview(changes)]).to_string();
    assert!(!text.contains("pw-") && !json.contains("pw-"));
}

#[test]
fn pinned_claims_are_unaffected() {
    let mut p = ClaimPreview::new("team-a/held".into());
    p.pinned = Some("Manual, pinned to c-1 (revision 1)".into());
    assert_eq!(
        p.summary(),
        "team-a/held: Manual, pinned to c-1 (revision 1): unaffected"
    );
    assert_eq!(exit_code(&[p]), 0);
}

#[test]
fn errors_exit_2_and_destructive_wins() {
    let mut broken = ClaimPreview::new("team-a/b".into());
    broken.error = Some("bad path".into());
    assert_eq!(exit_code(std::slice::from_ref(&broken)), 2);
    let gone = preview(compare(
        &map(&[("x", cm("x", json!({})))]),
        &BTreeMap::new(),
    ));
    assert_eq!(exit_code(&[broken, gone]), 3);
}

#[test]
fn colour_only_when_asked() {
    let now = map(&[("x", cm("x", json!({"k": "a"})))]);
    let new = map(&[("x", cm("x", json!({"k": "b"})))]);
    let p = [preview(compare(&now, &new))];
    assert!(!text(&p, false).contains('\u{1b}'));
    let coloured = text(&p, true);
    assert!(
        coloured.contains("\u{1b}[31m-  k: a\u{1b}[0m"),
        "{coloured}"
    );
    assert!(
        coloured.contains("\u{1b}[32m+  k: b\u{1b}[0m"),
        "{coloured}"
    );
}

#[test]
fn project_keeps_only_rendered_fields() {
    let live = json!({"metadata": {"name": "x", "uid": "u", "resourceVersion": "1",
                      "labels": {"a": "1", "other": "2"}},
                      "spec": {"k": 1, "defaulted": true}, "status": {"ready": true}});
    let old = json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"k": 1}});
    let new = json!({"metadata": {"name": "x"}, "spec": {"k": 2, "n": 3}});
    let template = union(&old, &new);
    assert_eq!(
        project(&live, &template),
        json!({"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"k": 1}})
    );
}
