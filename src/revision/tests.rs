use super::*;
use crate::api::NameRef;
use crate::api::claim::{RevisionRef, UpdatePolicy};
use crate::testing::{ClaimFixture, CompositionFixture, StatusFixture, claim, composition, status};
use serde_json::json;

fn spec(class: &str) -> CompositionSpec {
    composition("c")
        .resource(
            "instance",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"class": class}}),
        )
        .spec
}

fn known(pairs: &[(&str, i64)]) -> Vec<Known> {
    pairs
        .iter()
        .map(|(n, r)| Known {
            name: n.to_string(),
            revision: *r,
        })
        .collect()
}

fn revision(composition: &str, class: &str, number: i64) -> CompositionRevision {
    build(composition, Some("uid"), &spec(class), number)
}

#[test]
fn name_is_composition_and_short_spec_hash() {
    let n = name("aws-rds-postgres", &spec("a"));
    let (prefix, hash) = n.rsplit_once('-').unwrap_or_default();
    assert_eq!(prefix, "aws-rds-postgres");
    assert_eq!(hash.len(), 7);
    assert!(hash.chars().all(|c| c.is_ascii_hexdigit()));
    // Stable, and tied to the spec alone.
    assert_eq!(n, name("aws-rds-postgres", &spec("a")));
    assert_ne!(n, name("aws-rds-postgres", &spec("b")));
}

#[test]
fn hash_ignores_key_order_and_omitted_defaults() {
    let a: CompositionSpec = serde_json::from_value(json!({
        "engines": ["postgres"],
        "resources": [{"name": "x", "base": {"kind": "K", "apiVersion": "v1"},
                       "patches": [{"fromFieldPath": "spec.size", "toFieldPath": "data.s"}]}]
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let b: CompositionSpec = serde_json::from_value(json!({
        "resources": [{"base": {"apiVersion": "v1", "kind": "K"}, "name": "x",
                       "patches": [{"type": "FromClaimFieldPath", "toFieldPath": "data.s", "fromFieldPath": "spec.size"}]}],
        "engines": ["postgres"]
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec_hash(&a), spec_hash(&b));
}

#[test]
fn long_composition_names_are_cut_to_a_valid_name() {
    let long = format!("{}-x", "a".repeat(260));
    let n = name(&long, &spec("a"));
    assert!(n.len() <= 253, "{}", n.len());
    assert!(!n.contains("--"));
}

#[test]
fn numbering_creates_promotes_or_leaves() {
    let s = spec("a");
    let own = name("c", &s);
    // First revision of a composition.
    assert_eq!(
        plan("c", &s, &[]),
        Step::Create {
            name: own.clone(),
            revision: 1
        }
    );
    // A new spec: after the newest.
    assert_eq!(
        plan("c", &s, &known(&[("c-old1", 1), ("c-old2", 2)])),
        Step::Create {
            name: own.clone(),
            revision: 3
        }
    );
    // Its revision is the newest: nothing to do (quiet at rest).
    assert_eq!(
        plan("c", &s, &known(&[("c-old1", 1), (&own, 2)])),
        Step::Current
    );
    // Re-applying an earlier spec makes its revision the newest again.
    assert_eq!(
        plan("c", &s, &known(&[(&own, 1), ("c-new", 2)])),
        Step::Promote {
            name: own.clone(),
            revision: 3
        }
    );
    // A tie at the top (a promotion racing a stale cache) is resolved.
    assert_eq!(
        plan("c", &s, &known(&[(&own, 2), ("c-new", 2)])),
        Step::Promote {
            name: own,
            revision: 3
        }
    );
}

#[test]
fn retention_keeps_in_use_and_the_newest_twenty() {
    let all: Vec<Known> = (1..=30)
        .map(|i| Known {
            name: format!("c-{i}"),
            revision: i,
        })
        .collect();
    let in_use: BTreeSet<String> = ["c-1".to_string(), "c-5".to_string()].into();
    let mut gone = retire(&all, &in_use, KEEP);
    gone.sort();
    // 28 idle: the newest 20 (11..=30) stay, 2..=10 but 5 go.
    let mut expected: Vec<String> = (2..=10)
        .filter(|i| *i != 5)
        .map(|i| format!("c-{i}"))
        .collect();
    expected.sort();
    assert_eq!(gone, expected);
    // Fewer than KEEP: nothing goes.
    assert!(retire(&all[..20], &BTreeSet::new(), KEEP).is_empty());
    // The newest is kept even with keep = 0.
    assert_eq!(
        retire(&known(&[("a", 1), ("b", 2)]), &BTreeSet::new(), 0),
        vec!["a".to_string()]
    );
}

#[test]
fn in_use_counts_pins_and_rendered_revisions() {
    let mut pinned = claim("a");
    pinned.spec.composition_revision_ref = Some(NameRef {
        name: "c-pin".into(),
    });
    let mut rendering = claim("b");
    rendering.status = Some(DatabaseClaimStatus {
        composition_revision: Some(RevisionRef {
            name: "c-now".into(),
            revision: 2,
        }),
        ..Default::default()
    });
    let used = in_use([&pinned, &rendering, &claim("c")]);
    assert_eq!(used, ["c-now".to_string(), "c-pin".to_string()].into());
}

use crate::api::DatabaseClaimStatus;

fn recorded(c: DatabaseClaim, composition: &str, rev: &CompositionRevision) -> DatabaseClaim {
    let mut s = status().composition(composition);
    s.composition_revision = Some(RevisionRef {
        name: rev.name_any(),
        revision: rev.spec.revision,
    });
    c.with_status(s)
}

#[test]
fn automatic_claims_render_the_newest_revision() {
    let (r1, r2) = (revision("c", "a", 1), revision("c", "b", 2));
    let other = revision("d", "z", 9);
    let revs = [&r1, &other, &r2];
    let chosen = choose(&recorded(claim("x"), "c", &r1), "c", &revs);
    assert_eq!(chosen, Ok(Some(&r2)));
    // No revision yet: the live spec.
    assert_eq!(choose(&claim("x"), "c", &[&other]), Ok(None));
}

#[test]
fn manual_claims_stay_on_their_recorded_revision() {
    let (r1, r2) = (revision("c", "a", 1), revision("c", "b", 2));
    let mut manual = recorded(claim("x"), "c", &r1);
    manual.spec.composition_update_policy = UpdatePolicy::Manual;
    assert_eq!(choose(&manual, "c", &[&r1, &r2]), Ok(Some(&r1)));
    // A Manual claim with nothing recorded (new, or made before
    // revisions) starts on the newest.
    let mut fresh = claim("y");
    fresh.spec.composition_update_policy = UpdatePolicy::Manual;
    assert_eq!(choose(&fresh, "c", &[&r1, &r2]), Ok(Some(&r2)));
    // Its revision deleted by hand: an error, never a silent move.
    assert_eq!(
        choose(&manual, "c", &[&r2]),
        Err(ChooseError::RecordedGone {
            name: r1.name_any(),
            composition: "c".into()
        })
    );
    // Recorded under another composition (an explicit compositionRef move):
    // the new composition's newest.
    let moved = recorded(claim("z").composition_ref("c"), "d", &revision("d", "z", 1));
    let mut moved = moved;
    moved.spec.composition_update_policy = UpdatePolicy::Manual;
    assert_eq!(choose(&moved, "c", &[&r1, &r2]), Ok(Some(&r2)));
}

#[test]
fn a_pin_renders_exactly_that_revision_of_the_composition() {
    let (r1, r2) = (revision("c", "a", 1), revision("c", "b", 2));
    let foreign = revision("d", "a", 1);
    let mut pinned = claim("x");
    pinned.spec.composition_revision_ref = Some(NameRef {
        name: r1.name_any(),
    });
    assert_eq!(choose(&pinned, "c", &[&r1, &r2]), Ok(Some(&r1)));
    pinned.spec.composition_revision_ref = Some(NameRef {
        name: foreign.name_any(),
    });
    assert!(matches!(
        choose(&pinned, "c", &[&r1, &r2, &foreign]),
        Err(ChooseError::RefNotFound { .. })
    ));
}

#[test]
fn a_revision_copies_the_spec_with_label_and_owner() {
    let r = revision("c", "a", 4);
    assert_eq!(r.composition_name(), Some("c"));
    assert_eq!(r.spec.revision, 4);
    assert_eq!(r.spec.composition, spec("a"));
    let owner = &r.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Composition", "c")
    );
    // The spec reads back flat, as `kubectl get -o yaml` shows it.
    let v = serde_json::to_value(&r).unwrap_or_default();
    assert_eq!(v["spec"]["revision"], 4);
    assert!(v["spec"]["resources"].is_array());
}
