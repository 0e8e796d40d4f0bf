//! Which composition serves a claim: pure and deterministic.
//!
//! A claim with a recorded choice (`status.composition`) keeps it for life:
//! only a `spec.compositionRef` naming another composition moves it. A
//! recorded composition that is gone, no longer serves the claim's engine or
//! no longer matches its selector is an error (`CompositionNotFound`), never a
//! silent move: moving would delete the objects, and the data, of the old one.
//!
//! A claim without a recorded choice picks:
//! 1. `compositionRef`: exactly that one.
//! 2. `compositionSelector`: label match and engine served, first by name.
//! 3. neither: a ClaimPolicy default, else the composition annotated
//!    `dbclaim.io/default: "true"` for the engine, first by name.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};

use crate::api::{Composition, DatabaseClaim, Engine};
use crate::conditions::SyncedReason;

pub use crate::contract::DEFAULT_COMPOSITION_ANNOTATION as DEFAULT_ANNOTATION;

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
    #[error(
        "composition {0:?}, which this claim uses, does not exist: its objects and data are kept as they are; re-create the composition, or set spec.compositionRef to move the database on purpose"
    )]
    RecordedGone(String),
    #[error(
        "composition {name:?}, which this claim uses, no longer serves engine {engine} (it serves {serves}): its objects and data are kept as they are; restore the engine in the composition, or set spec.compositionRef to move the database on purpose"
    )]
    RecordedEngineDropped {
        name: String,
        engine: Engine,
        serves: String,
    },
    #[error(
        "composition {name:?}, which this claim uses, no longer matches spec.compositionSelector ({selector}): its objects and data are kept as they are; restore its labels or the selector, or set spec.compositionRef to move the database on purpose"
    )]
    RecordedNoLongerMatches { name: String, selector: String },
}

impl SelectError {
    /// The claim's `Synced=False` reason for this error.
    pub fn synced_reason(&self) -> SyncedReason {
        match self {
            SelectError::EngineNotServed { .. } | SelectError::BadSelector(_) => {
                SyncedReason::CompositionInvalid
            }
            SelectError::RefNotFound(_)
            | SelectError::NoMatch { .. }
            | SelectError::NoDefault { .. }
            | SelectError::PolicyDefaultMissing(_)
            | SelectError::RecordedGone(_)
            | SelectError::RecordedEngineDropped { .. }
            | SelectError::RecordedNoLongerMatches { .. } => SyncedReason::CompositionNotFound,
        }
    }
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

/// The composition recorded in the claim's status, if any.
pub fn recorded(claim: &DatabaseClaim) -> Option<&str> {
    claim
        .status
        .as_ref()?
        .composition
        .as_ref()
        .map(|r| r.name.as_str())
        .filter(|n| !n.is_empty())
}

/// Picks the composition for `claim` among `compositions`.
/// `policy_default` is the default a ClaimPolicy names for the claim's engine.
/// A result other than the recorded composition is a move: the caller checks
/// it with `replacement::blocked` before applying anything.
pub fn select<'a>(
    claim: &DatabaseClaim,
    compositions: &'a [Composition],
    policy_default: Option<&str>,
) -> Result<&'a Composition, SelectError> {
    let engine = claim.spec.engine;
    let by_name = |name: &str| compositions.iter().find(|c| c.name_any() == name);
    let recorded = recorded(claim);

    // An explicit reference, recorded or not: the only way to move a claim.
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

    // A recorded choice sticks for life; whatever happened to it is reported,
    // never answered by picking another.
    if let Some(name) = recorded {
        let c = by_name(name).ok_or_else(|| SelectError::RecordedGone(name.to_string()))?;
        if !serves(c, engine) {
            return Err(SelectError::RecordedEngineDropped {
                name: name.to_string(),
                engine,
                serves: engines_text(c),
            });
        }
        if let Some(selector) = &claim.spec.composition_selector
            && !selector_matches(selector, c.labels()).map_err(SelectError::BadSelector)?
        {
            return Err(SelectError::RecordedNoLongerMatches {
                name: name.to_string(),
                selector: selector_text(selector),
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
                claim_api_version: None,
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
        // Nor does one it no longer satisfies, though another matches: the
        // claim reports it instead of moving.
        let c = with_current(
            with_selector(claim(Engine::Postgres), &[("provider", "aws")]),
            "m",
        );
        let mut relabelled = comps.clone();
        relabelled[1].metadata.labels = Some(BTreeMap::from([("tier".into(), "gold".into())]));
        assert_eq!(
            pick(&c, &relabelled, None),
            Err(SelectError::RecordedNoLongerMatches {
                name: "m".into(),
                selector: "provider=aws".into()
            })
        );
        let c = with_current(
            with_selector(
                claim(Engine::Postgres),
                &[("provider", "aws"), ("tier", "x")],
            ),
            "m",
        );
        assert!(matches!(
            pick(&c, &comps, None),
            Err(SelectError::RecordedNoLongerMatches { .. })
        ));
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
        assert_eq!(
            pick(&gone, &comps, None),
            Err(SelectError::RecordedGone("deleted".into()))
        );
    }

    /// The audit's reproduction (C1): the recorded RDS composition is
    /// deleted, shared-postgres is the default. The claim must not move.
    #[test]
    fn deleted_composition_is_not_found_never_the_default() {
        let comps = [comp("shared-postgres", &[Engine::Postgres], &[], true)];
        let c = with_current(claim(Engine::Postgres), "aws-rds-postgres");
        let err = select(&c, &comps, None).map(|c| c.name_any());
        assert_eq!(
            err,
            Err(SelectError::RecordedGone("aws-rds-postgres".into()))
        );
        let err = err.err().unwrap_or_else(|| panic!("expected an error"));
        assert_eq!(err.synced_reason(), SyncedReason::CompositionNotFound);
        assert!(err.to_string().contains("\"aws-rds-postgres\""), "{err}");
        // Nor does a policy default, or a selector that another matches.
        assert!(matches!(
            pick(&c, &comps, Some("shared-postgres")),
            Err(SelectError::RecordedGone(_))
        ));
        let sel = with_current(
            with_selector(claim(Engine::Postgres), &[]),
            "aws-rds-postgres",
        );
        assert!(matches!(
            pick(&sel, &comps, None),
            Err(SelectError::RecordedGone(_))
        ));
    }

    #[test]
    fn dropped_engine_is_not_found_never_another() {
        let comps = [
            comp("pg-a", &[Engine::Postgres], &[], true),
            comp("pg-b", &[Engine::Mysql], &[], false),
        ];
        let c = with_current(claim(Engine::Postgres), "pg-b");
        let err = pick(&c, &comps, None);
        assert_eq!(
            err,
            Err(SelectError::RecordedEngineDropped {
                name: "pg-b".into(),
                engine: Engine::Postgres,
                serves: "mysql".into()
            })
        );
        assert_eq!(
            err.err().map(|e| e.synced_reason()),
            Some(SyncedReason::CompositionNotFound)
        );
    }

    #[test]
    fn moving_defaults_never_move_a_claim() {
        // pg-b was the default when the claim was made; now pg-a is, and a
        // policy names pg-c.
        let comps = [
            comp("pg-a", &[Engine::Postgres], &[], true),
            comp("pg-b", &[Engine::Postgres], &[], false),
            comp("pg-c", &[Engine::Postgres], &[], false),
        ];
        let c = with_current(claim(Engine::Postgres), "pg-b");
        assert_eq!(pick(&c, &comps, None), Ok("pg-b".into()));
        assert_eq!(pick(&c, &comps, Some("pg-c")), Ok("pg-b".into()));
        assert_eq!(pick(&c, &comps, Some("missing")), Ok("pg-b".into()));
    }

    #[test]
    fn only_a_reference_to_another_composition_moves() {
        let comps = [
            comp("a", &[Engine::Postgres], &[], true),
            comp("b", &[Engine::Postgres], &[], false),
        ];
        let mut c = with_current(claim(Engine::Postgres), "a");
        c.spec.composition_ref = Some(NameRef { name: "b".into() });
        assert_eq!(pick(&c, &comps, None), Ok("b".into()));
        // A move away from a deleted composition is the user's way out.
        let mut gone = with_current(claim(Engine::Postgres), "deleted");
        gone.spec.composition_ref = Some(NameRef { name: "b".into() });
        assert_eq!(pick(&gone, &comps, None), Ok("b".into()));
        // A reference to the recorded one that is gone stays not found.
        let mut same = with_current(claim(Engine::Postgres), "deleted");
        same.spec.composition_ref = Some(NameRef {
            name: "deleted".into(),
        });
        let err = pick(&same, &comps, None);
        assert_eq!(err, Err(SelectError::RefNotFound("deleted".into())));
        assert_eq!(
            err.err().map(|e| e.synced_reason()),
            Some(SyncedReason::CompositionNotFound)
        );
        // Dropping the reference again keeps the claim where it is.
        let c = with_current(claim(Engine::Postgres), "b");
        assert_eq!(pick(&c, &comps, None), Ok("b".into()));
    }

    #[test]
    fn an_empty_recorded_name_is_no_record() {
        let comps = [comp("a", &[Engine::Postgres], &[], true)];
        let c = with_current(claim(Engine::Postgres), "");
        assert_eq!(pick(&c, &comps, None), Ok("a".into()));
        assert_eq!(recorded(&c), None);
    }

    #[test]
    fn reasons_per_error() {
        let engine = Engine::Postgres;
        let invalid = [
            SelectError::EngineNotServed {
                name: "x".into(),
                engine,
                serves: "mysql".into(),
            },
            SelectError::BadSelector("x".into()),
        ];
        for e in invalid {
            assert_eq!(e.synced_reason(), SyncedReason::CompositionInvalid, "{e}");
        }
        let not_found = [
            SelectError::RefNotFound("x".into()),
            SelectError::NoMatch {
                engine,
                selector: "a=b".into(),
            },
            SelectError::NoDefault { engine },
            SelectError::PolicyDefaultMissing("x".into()),
            SelectError::RecordedGone("x".into()),
            SelectError::RecordedEngineDropped {
                name: "x".into(),
                engine,
                serves: "mysql".into(),
            },
            SelectError::RecordedNoLongerMatches {
                name: "x".into(),
                selector: "a=b".into(),
            },
        ];
        for e in not_found {
            assert_eq!(e.synced_reason(), SyncedReason::CompositionNotFound, "{e}");
        }
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
