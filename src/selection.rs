//! Which composition serves a claim: pure and deterministic.
//!
//! 1. `compositionRef`: exactly that one.
//! 2. `compositionSelector`: label match and engine served, first by name;
//!    the current choice sticks while it still exists and matches.
//! 3. neither: a ClaimPolicy default, else the composition annotated
//!    `dbclaim.io/default: "true"` for the engine; the current choice sticks
//!    while it still exists and serves the engine.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use crate::api::{Composition, DatabaseClaim, Engine};

pub const DEFAULT_ANNOTATION: &str = "dbclaim.io/default";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    #[error("composition {0:?} does not exist: create it or change spec.compositionRef")]
    RefNotFound(String),
    #[error(
        "composition {name:?} does not serve engine {engine} (it serves {serves}): pick a composition for {engine}"
    )]
    EngineNotServed {
        name: String,
        engine: Engine,
        serves: String,
    },
    #[error(
        "no composition for engine {engine} matches spec.compositionSelector ({selector}): change the selector or ask your platform team"
    )]
    NoMatch { engine: Engine, selector: String },
    #[error("spec.compositionSelector is invalid: {0}")]
    BadSelector(String),
    #[error(
        "no default composition for engine {engine}: set spec.compositionRef, or ask your platform team to annotate one with dbclaim.io/default: \"true\""
    )]
    NoDefault { engine: Engine },
    #[error(
        "the ClaimPolicy default composition {0:?} for this engine does not exist or does not serve it: ask your platform team"
    )]
    PolicyDefaultMissing(String),
}

/// Whether `labels` satisfy `selector`; an invalid selector matches nothing.
pub fn selector_matches(
    selector: &LabelSelector,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<bool, String> {
    let selector = Selector::try_from(selector.clone()).map_err(|e| e.to_string())?;
    Ok(selector.matches(labels))
}

fn serves(c: &Composition, engine: Engine) -> bool {
    c.spec.engines.contains(&engine)
}

fn engines_text(c: &Composition) -> String {
    c.spec
        .engines
        .iter()
        .map(|e| e.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Picks the composition for `claim` among `compositions`.
/// `policy_default` is the default a ClaimPolicy names for the claim's engine.
pub fn select<'a>(
    claim: &DatabaseClaim,
    compositions: &'a [Composition],
    policy_default: Option<&str>,
) -> Result<&'a Composition, SelectError> {
    let engine = claim.spec.engine;
    let by_name = |name: &str| compositions.iter().find(|c| c.name_any() == name);
    let current = claim
        .status
        .as_ref()
        .and_then(|s| s.composition.as_ref())
        .and_then(|r| by_name(&r.name));

    if let Some(r) = &claim.spec.composition_ref {
        let c = by_name(&r.name).ok_or_else(|| SelectError::RefNotFound(r.name.clone()))?;
        if !serves(c, engine) {
            return Err(SelectError::EngineNotServed {
                name: r.name.clone(),
                engine,
                serves: engines_text(c),
            });
        }
        return Ok(c);
    }

    let mut candidates: Vec<&Composition> = match &claim.spec.composition_selector {
        Some(selector) => {
            let mut out = Vec::new();
            for c in compositions.iter().filter(|c| serves(c, engine)) {
                if selector_matches(selector, c.labels()).map_err(SelectError::BadSelector)? {
                    out.push(c);
                }
            }
            if out.is_empty() {
                return Err(SelectError::NoMatch {
                    engine,
                    selector: selector_text(selector),
                });
            }
            out
        }
        None => {
            // The current choice sticks even if the default moves elsewhere:
            // moving a database is the user's explicit act.
            if let Some(c) = current.filter(|c| serves(c, engine)) {
                return Ok(c);
            }
            if let Some(name) = policy_default {
                return by_name(name)
                    .filter(|c| serves(c, engine))
                    .ok_or_else(|| SelectError::PolicyDefaultMissing(name.to_string()));
            }
            compositions
                .iter()
                .filter(|c| {
                    serves(c, engine)
                        && c.annotations()
                            .get(DEFAULT_ANNOTATION)
                            .is_some_and(|v| v == "true")
                })
                .collect()
        }
    };
    if let Some(c) = current.filter(|c| candidates.iter().any(|x| x.name_any() == c.name_any())) {
        return Ok(c);
    }
    candidates.sort_by_key(|c| c.name_any());
    candidates
        .first()
        .copied()
        .ok_or(SelectError::NoDefault { engine })
}

fn selector_text(selector: &LabelSelector) -> String {
    Selector::try_from(selector.clone())
        .map(|s| s.to_string())
        .unwrap_or_else(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CompositionSpec, DatabaseClaimSpec, DatabaseClaimStatus, NameRef};
    use std::collections::BTreeMap;

    fn comp(name: &str, engines: &[Engine], labels: &[(&str, &str)], default: bool) -> Composition {
        let mut c = Composition::new(
            name,
            CompositionSpec {
                engines: engines.to_vec(),
                resources: vec![],
            },
        );
        c.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        if default {
            c.metadata.annotations = Some(BTreeMap::from([(
                DEFAULT_ANNOTATION.to_string(),
                "true".to_string(),
            )]));
        }
        c
    }

    fn claim(engine: Engine) -> DatabaseClaim {
        let spec: DatabaseClaimSpec =
            serde_json::from_value(serde_json::json!({ "engine": engine }))
                .unwrap_or_else(|e| panic!("{e}"));
        DatabaseClaim::new("orders", spec)
    }

    fn with_selector(mut c: DatabaseClaim, labels: &[(&str, &str)]) -> DatabaseClaim {
        c.spec.composition_selector = Some(LabelSelector {
            match_labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            match_expressions: None,
        });
        c
    }

    fn with_current(mut c: DatabaseClaim, name: &str) -> DatabaseClaim {
        c.status = Some(DatabaseClaimStatus {
            composition: Some(NameRef { name: name.into() }),
            ..Default::default()
        });
        c
    }

    fn pick(
        c: &DatabaseClaim,
        comps: &[Composition],
        policy: Option<&str>,
    ) -> Result<String, SelectError> {
        select(c, comps, policy).map(|c| c.name_any())
    }

    #[test]
    fn reference_picks_exactly_that_one() {
        let comps = [
            comp("a", &[Engine::Postgres], &[], true),
            comp("b", &[Engine::Postgres], &[], false),
        ];
        let mut c = claim(Engine::Postgres);
        c.spec.composition_ref = Some(NameRef { name: "b".into() });
        assert_eq!(pick(&c, &comps, None), Ok("b".into()));
        c.spec.composition_ref = Some(NameRef { name: "zzz".into() });
        assert_eq!(
            pick(&c, &comps, None),
            Err(SelectError::RefNotFound("zzz".into()))
        );
    }

    #[test]
    fn reference_to_another_engine_is_refused() {
        let comps = [comp("my", &[Engine::Mysql], &[], false)];
        let mut c = claim(Engine::Postgres);
        c.spec.composition_ref = Some(NameRef { name: "my".into() });
        assert!(matches!(
            pick(&c, &comps, None),
            Err(SelectError::EngineNotServed { .. })
        ));
    }

    #[test]
    fn selector_picks_first_by_name_among_matching_engine() {
        let comps = [
            comp("c", &[Engine::Postgres], &[("provider", "aws")], false),
            comp("a", &[Engine::Mysql], &[("provider", "aws")], false),
            comp("b", &[Engine::Postgres], &[("provider", "aws")], false),
            comp("0", &[Engine::Postgres], &[("provider", "gcp")], false),
        ];
        let c = with_selector(claim(Engine::Postgres), &[("provider", "aws")]);
        assert_eq!(pick(&c, &comps, None), Ok("b".into()));
        let none = with_selector(claim(Engine::Postgres), &[("provider", "azure")]);
        assert!(matches!(
            pick(&none, &comps, None),
            Err(SelectError::NoMatch { .. })
        ));
    }

    #[test]
    fn selector_choice_sticks_when_a_new_one_sorts_first() {
        let comps = [
            comp("a-new", &[Engine::Postgres], &[("provider", "aws")], false),
            comp(
                "m",
                &[Engine::Postgres],
                &[("provider", "aws"), ("tier", "gold")],
                false,
            ),
        ];
        let c = with_current(
            with_selector(claim(Engine::Postgres), &[("provider", "aws")]),
            "m",
        );
        assert_eq!(pick(&c, &comps, None), Ok("m".into()));
        // An edit that the current one still satisfies does not move it.
        let c = with_current(
            with_selector(claim(Engine::Postgres), &[("tier", "gold")]),
            "m",
        );
        assert_eq!(pick(&c, &comps, None), Ok("m".into()));
        // One it no longer satisfies does.
        let c = with_current(
            with_selector(
                claim(Engine::Postgres),
                &[("provider", "aws"), ("tier", "x")],
            ),
            "m",
        );
        assert!(pick(&c, &comps, None).is_err());
    }

    #[test]
    fn default_annotation_per_engine_and_policy_override() {
        let comps = [
            comp("pg-b", &[Engine::Postgres], &[], true),
            comp("pg-a", &[Engine::Postgres], &[], true),
            comp("my", &[Engine::Mysql], &[], true),
            comp("pg-other", &[Engine::Postgres], &[], false),
        ];
        assert_eq!(
            pick(&claim(Engine::Postgres), &comps, None),
            Ok("pg-a".into())
        );
        assert_eq!(pick(&claim(Engine::Mysql), &comps, None), Ok("my".into()));
        assert_eq!(
            pick(&claim(Engine::Postgres), &comps, Some("pg-other")),
            Ok("pg-other".into())
        );
        assert!(matches!(
            pick(&claim(Engine::Postgres), &comps, Some("nope")),
            Err(SelectError::PolicyDefaultMissing(_))
        ));
        assert_eq!(
            pick(&claim(Engine::Postgres), &comps[3..], None),
            Err(SelectError::NoDefault {
                engine: Engine::Postgres
            })
        );
    }

    #[test]
    fn default_choice_sticks_while_it_exists() {
        let comps = [
            comp("pg-a", &[Engine::Postgres], &[], true),
            comp("pg-b", &[Engine::Postgres], &[], false),
        ];
        let c = with_current(claim(Engine::Postgres), "pg-b");
        assert_eq!(pick(&c, &comps, None), Ok("pg-b".into()));
        let gone = with_current(claim(Engine::Postgres), "deleted");
        assert_eq!(pick(&gone, &comps, None), Ok("pg-a".into()));
    }

    #[test]
    fn match_expressions_work() {
        let comps = [
            comp("a", &[Engine::Postgres], &[("tier", "gold")], false),
            comp("b", &[Engine::Postgres], &[("tier", "std")], false),
        ];
        let mut c = claim(Engine::Postgres);
        c.spec.composition_selector = Some(LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "NotIn".into(),
                    values: Some(vec!["gold".into()]),
                },
            ]),
        });
        assert_eq!(pick(&c, &comps, None), Ok("b".into()));
    }
}
