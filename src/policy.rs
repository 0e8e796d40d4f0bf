//! ClaimPolicy evaluation: pure. Every policy whose namespaceSelector
//! matches the claim's namespace applies; the strictest limit wins and the
//! message names the policy that set it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::api::policy::ParameterLimit;
use crate::api::{ClaimPolicy, Composition, DatabaseClaim};
use crate::selection::selector_matches;

/// The policies that apply to one claim.
#[derive(Debug, Default)]
pub struct Applicable {
    pub policies: Vec<Arc<ClaimPolicy>>,
    /// A default composition for the claim's engine, from the first policy
    /// (by name) that names one.
    pub default_composition: Option<String>,
}

/// The policies that govern a namespace with `namespace_labels`.
pub fn evaluate(
    claim: &DatabaseClaim,
    policies: &[Arc<ClaimPolicy>],
    namespace_labels: &BTreeMap<String, String>,
) -> Applicable {
    let mut applicable: Vec<Arc<ClaimPolicy>> = policies
        .iter()
        .filter(|p| match &p.spec.namespace_selector {
            None => true,
            Some(s) => selector_matches(s, namespace_labels).unwrap_or(false),
        })
        .cloned()
        .collect();
    applicable.sort_by_key(|p| p.name_any());
    let default_composition = applicable
        .iter()
        .find_map(|p| p.spec.default_compositions.get(&claim.spec.engine).cloned());
    Applicable {
        policies: applicable,
        default_composition,
    }
}

/// Checks `claim` against the applicable policies. `namespace_claims` are
/// the namespace's claims (the claim itself among them or not).
///
/// `maxTotalStorageGB` counts every claim that holds storage or may soon:
/// the provisioned ones (status lists resources) at their size, then the
/// ones still provisioning in a fixed order (created earlier first, ties
/// by name), each admitted while it fits. A claim still provisioning
/// counts only what is admitted ahead of it plus itself, so claims
/// reconciled at once from the same cache never pass together beyond the
/// limit, and a claim refused ahead (too big, or breaking another limit)
/// holds nothing back.
pub fn check<'a>(
    applicable: &Applicable,
    claim: &DatabaseClaim,
    composition: &Composition,
    namespace_claims: impl IntoIterator<Item = &'a DatabaseClaim>,
) -> Result<(), String> {
    per_claim(applicable, claim)?;
    if let Some((limit, name)) = strictest(applicable, |p| p.spec.max_total_storage_gb) {
        let total = namespace_total(applicable, claim, namespace_claims, limit);
        if total > limit {
            return Err(format!(
                "ClaimPolicy {name:?} allows at most {limit} GB in this namespace (maxTotalStorageGB); its claims would use {total} GB with this one, counting the ones still provisioning: lower spec.storageGB or delete a claim"
            ));
        }
    }
    for p in &applicable.policies {
        if let Some(sel) = &p.spec.allowed_compositions
            && !selector_matches(sel, composition.labels()).unwrap_or(false)
        {
            return Err(format!(
                "ClaimPolicy {:?} does not allow composition {:?}: pick one it allows",
                p.name_any(),
                composition.name_any()
            ));
        }
    }
    Ok(())
}

/// The limits that one claim breaks or keeps on its own.
fn per_claim(applicable: &Applicable, claim: &DatabaseClaim) -> Result<(), String> {
    for p in &applicable.policies {
        let name = p.name_any();
        let s = &p.spec;
        if let Some(engines) = &s.allowed_engines
            && !engines.contains(&claim.spec.engine)
        {
            return Err(format!(
                "ClaimPolicy {name:?} allows engines [{}]; this claim asks for {}: pick an allowed engine",
                join(engines.iter().map(|e| e.as_str())),
                claim.spec.engine
            ));
        }
        if let Some(sizes) = &s.allowed_sizes
            && !sizes.contains(&claim.spec.size)
        {
            return Err(format!(
                "ClaimPolicy {name:?} allows sizes [{}]; this claim asks for {}: pick an allowed size",
                join(sizes.iter().map(|e| e.as_str())),
                claim.spec.size
            ));
        }
    }
    // For limits, the strictest policy speaks.
    if let Some((limit, name)) = strictest(applicable, |p| p.spec.max_storage_gb)
        && claim.spec.storage_gb > limit
    {
        return Err(format!(
            "ClaimPolicy {name:?} allows at most {limit} GB per claim (maxStorageGB); this claim asks for {} GB: lower spec.storageGB",
            claim.spec.storage_gb
        ));
    }
    check_parameters(applicable, claim)
}

/// `parameters` limits: every policy's `allowed` list holds (the first
/// policy by name that refuses speaks); of `min` and `max`, the strictest.
fn check_parameters(applicable: &Applicable, claim: &DatabaseClaim) -> Result<(), String> {
    for (key, value) in &claim.spec.parameters {
        let limits: Vec<(String, &ParameterLimit)> = applicable
            .policies
            .iter()
            .filter_map(|p| p.spec.parameters.get(key).map(|l| (p.name_any(), l)))
            .collect();
        for (name, limit) in &limits {
            if let Some(allowed) = &limit.allowed
                && !allowed.contains(value)
            {
                return Err(format!(
                    "ClaimPolicy {name:?} allows parameter {key} only as [{}] (parameters.{key}.allowed); this claim sets {value:?}: pick an allowed value or leave it unset",
                    join(allowed.iter().map(String::as_str))
                ));
            }
        }
        let min = limits
            .iter()
            .filter_map(|(n, l)| l.min.map(|m| (m, n)))
            .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)));
        let max = limits
            .iter()
            .filter_map(|(n, l)| l.max.map(|m| (m, n)))
            .min();
        let Some((_, first)) = min.or(max) else {
            continue;
        };
        let Ok(number) = value.parse::<i64>() else {
            return Err(format!(
                "ClaimPolicy {first:?} limits parameter {key} to a whole number (parameters.{key}); this claim sets {value:?}: set a whole number or leave it unset"
            ));
        };
        if let Some((m, name)) = min
            && number < m
        {
            return Err(format!(
                "ClaimPolicy {name:?} allows parameter {key} of at least {m} (parameters.{key}.min); this claim sets {number}: raise it or leave it unset"
            ));
        }
        if let Some((m, name)) = max
            && number > m
        {
            return Err(format!(
                "ClaimPolicy {name:?} allows parameter {key} of at most {m} (parameters.{key}.max); this claim sets {number}: lower it or leave it unset"
            ));
        }
    }
    Ok(())
}

/// The namespace's storage with `claim` at its requested size, as
/// described on [`check`].
fn namespace_total<'a>(
    applicable: &Applicable,
    claim: &DatabaseClaim,
    namespace_claims: impl IntoIterator<Item = &'a DatabaseClaim>,
    limit: i64,
) -> i64 {
    let provisioned =
        |c: &DatabaseClaim| c.status.as_ref().is_some_and(|s| !s.resources.is_empty());
    let mut held = 0;
    let mut pending = Vec::new();
    for c in namespace_claims {
        let is_claim = c.uid() == claim.uid() && c.name_any() == claim.name_any();
        if is_claim || c.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if provisioned(c) {
            held += c.spec.storage_gb;
        } else {
            pending.push(c);
        }
    }
    if provisioned(claim) {
        // Already holds storage: it grows against what is provisioned.
        return held + claim.spec.storage_gb;
    }
    let mine = queue_key(claim);
    pending.retain(|c| queue_key(c) < mine);
    pending.sort_by_key(|c| queue_key(c));
    for c in pending {
        let size = c.spec.storage_gb;
        if per_claim(applicable, c).is_ok() && held + size <= limit {
            held += size;
        }
    }
    held + claim.spec.storage_gb
}

/// The order in which claims still provisioning take their share.
fn queue_key(c: &DatabaseClaim) -> (Option<Time>, String) {
    (c.metadata.creation_timestamp.clone(), c.name_any())
}

fn strictest(
    applicable: &Applicable,
    limit: impl Fn(&ClaimPolicy) -> Option<i64>,
) -> Option<(i64, String)> {
    applicable
        .policies
        .iter()
        .filter_map(|p| limit(p).map(|l| (l, p.name_any())))
        .min()
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::claim::ResourceStatus;
    use crate::api::{ClaimPolicySpec, CompositionSpec, DatabaseClaimStatus, Engine, Size};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    fn policy(name: &str, f: impl FnOnce(&mut ClaimPolicySpec)) -> Arc<ClaimPolicy> {
        let mut spec = ClaimPolicySpec::default();
        f(&mut spec);
        Arc::new(ClaimPolicy::new(name, spec))
    }

    fn claim(name: &str, size: Size, gb: i64, provisioned: bool) -> DatabaseClaim {
        let mut c = DatabaseClaim::new(
            name,
            serde_json::from_value(
                serde_json::json!({"engine": "postgres", "size": size, "storageGB": gb}),
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        c.metadata.namespace = Some("team-a".into());
        c.metadata.uid = Some(format!("uid-{name}"));
        if provisioned {
            c.status = Some(DatabaseClaimStatus {
                resources: vec![ResourceStatus {
                    name: "db".into(),
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        c
    }

    fn comp(labels: &[(&str, &str)]) -> Composition {
        let mut c = Composition::new(
            "shared",
            CompositionSpec {
                engines: vec![Engine::Postgres],
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
        c
    }

    fn ns(labels: &[(&str, &str)]) -> BTreeMap<String, String> {
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(labels: &[(&str, &str)]) -> Option<LabelSelector> {
        Some(LabelSelector {
            match_labels: Some(ns(labels)),
            match_expressions: None,
        })
    }

    #[test]
    fn only_matching_namespaces_are_governed() {
        let ps = [
            policy("a", |s| s.namespace_selector = selector(&[("team", "a")])),
            policy("all", |_| {}),
        ];
        let c = claim("x", Size::Small, 20, false);
        let names = |l| {
            evaluate(&c, &ps, &l)
                .policies
                .iter()
                .map(|p| p.name_any())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(ns(&[("team", "a")])), ["a", "all"]);
        assert_eq!(names(ns(&[("team", "b")])), ["all"]);
    }

    #[test]
    fn sizes_and_engines_are_checked() {
        let ps = [policy("sandbox", |s| {
            s.allowed_sizes = Some(vec![Size::Small]);
            s.allowed_engines = Some(vec![Engine::Postgres]);
        })];
        let c = claim("x", Size::Medium, 20, false);
        let a = evaluate(&c, &ps, &BTreeMap::new());
        let err = check(&a, &c, &comp(&[]), &[]).unwrap_err();
        assert!(
            err.contains("\"sandbox\"")
                && err.contains("allows sizes [small]")
                && err.contains("medium"),
            "{err}"
        );
        let ok = claim("y", Size::Small, 20, false);
        assert_eq!(check(&a, &ok, &comp(&[]), &[]), Ok(()));
    }

    #[test]
    fn strictest_storage_limit_wins() {
        let ps = [
            policy("loose", |s| s.max_storage_gb = Some(100)),
            policy("tight", |s| s.max_storage_gb = Some(50)),
        ];
        let c = claim("x", Size::Small, 60, false);
        let a = evaluate(&c, &ps, &BTreeMap::new());
        let err = check(&a, &c, &comp(&[]), &[]).unwrap_err();
        assert!(
            err.contains("\"tight\"") && err.contains("at most 50 GB"),
            "{err}"
        );
    }

    /// A claim created `second`s into the day, still provisioning.
    fn queued(name: &str, gb: i64, second: i64) -> DatabaseClaim {
        let mut c = claim(name, Size::Small, gb, false);
        c.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + second)
                .unwrap_or_else(|e| panic!("{e}")),
        ));
        c
    }

    #[test]
    fn total_counts_provisioned_claims_and_the_new_size() {
        let ps = [policy("quota", |s| s.max_total_storage_gb = Some(50))];
        let first = claim("a", Size::Small, 20, true);
        let second = claim("b", Size::Small, 20, true);
        let third = claim("c", Size::Small, 20, false);
        let all = [first.clone(), second.clone(), third.clone()];
        let a = evaluate(&third, &ps, &BTreeMap::new());
        let err = check(&a, &third, &comp(&[]), &all).unwrap_err();
        assert!(
            err.contains("60 GB") && err.contains("at most 50 GB") && err.contains("\"quota\""),
            "{err}"
        );
        // The unprovisioned third does not count against the first two.
        assert_eq!(check(&a, &first, &comp(&[]), &all), Ok(()));
        // A provisioned claim counts at its new size, once.
        let mut grown = first.clone();
        grown.spec.storage_gb = 31;
        assert!(check(&a, &grown, &comp(&[]), &[grown.clone(), second.clone()]).is_err());
        assert_eq!(
            check(&a, &grown, &comp(&[]), &[grown.clone()]),
            Ok(()),
            "31 GB alone fits"
        );
    }

    /// The audit's M2 case: 8 claims of 100 GB, none provisioned, a 500 GB
    /// quota. Every claim judged on the same snapshot: exactly the first
    /// five (by creation time) pass.
    #[test]
    fn a_burst_never_passes_the_total_together() {
        let ps = [policy("quota", |s| {
            s.max_total_storage_gb = Some(500);
            s.max_storage_gb = Some(100);
        })];
        let burst: Vec<DatabaseClaim> = (0..8).map(|i| queued(&format!("c{i}"), 100, i)).collect();
        let a = evaluate(&burst[0], &ps, &BTreeMap::new());
        let admitted: Vec<String> = burst
            .iter()
            .filter(|c| check(&a, c, &comp(&[]), &burst).is_ok())
            .map(|c| c.name_any())
            .collect();
        assert_eq!(admitted, ["c0", "c1", "c2", "c3", "c4"]);
        let err = check(&a, &burst[5], &comp(&[]), &burst).unwrap_err();
        assert!(
            err.contains("600 GB") && err.contains("still provisioning"),
            "{err}"
        );
    }

    #[test]
    fn ties_in_creation_time_are_ordered_by_name() {
        let ps = [policy("quota", |s| s.max_total_storage_gb = Some(30))];
        let all = [queued("b", 20, 0), queued("a", 20, 0)];
        let a = evaluate(&all[0], &ps, &BTreeMap::new());
        assert_eq!(check(&a, &all[1], &comp(&[]), &all), Ok(()));
        assert!(check(&a, &all[0], &comp(&[]), &all).is_err());
    }

    /// Whatever the sizes, creation times and provisioned claims, the
    /// claims admitted from one snapshot never sum beyond the limit.
    #[test]
    fn admitted_claims_never_exceed_the_limit() {
        use proptest::prelude::*;
        proptest!(|(
            limit in 1i64..300,
            held in prop::collection::vec(1i64..100, 0..4),
            pending in prop::collection::vec((1i64..150, 0i64..5), 0..12),
        )| {
            let ps = [policy("quota", |s| {
                s.max_total_storage_gb = Some(limit);
                s.max_storage_gb = Some(120);
            })];
            let mut all: Vec<DatabaseClaim> = held
                .iter()
                .enumerate()
                .map(|(i, gb)| claim(&format!("held{i}"), Size::Small, *gb, true))
                .collect();
            all.extend(
                pending
                    .iter()
                    .enumerate()
                    .map(|(i, (gb, second))| queued(&format!("new{i}"), *gb, *second)),
            );
            let a = evaluate(&queued("x", 1, 0), &ps, &BTreeMap::new());
            let held_total: i64 = held.iter().sum();
            let admitted: i64 = all
                .iter()
                .filter(|c| c.status.is_none())
                .filter(|c| check(&a, c, &comp(&[]), &all).is_ok())
                .map(|c| c.spec.storage_gb)
                .sum();
            prop_assert!(
                admitted == 0 || held_total + admitted <= limit,
                "held {} + admitted {} > {}", held_total, admitted, limit
            );
        });
    }

    #[test]
    fn a_refused_claim_ahead_holds_nothing_back() {
        let ps = [policy("quota", |s| {
            s.max_total_storage_gb = Some(100);
            s.max_storage_gb = Some(80);
            s.parameters = BTreeMap::from([(
                "multiAZ".to_string(),
                ParameterLimit {
                    allowed: Some(vec!["false".into()]),
                    ..Default::default()
                },
            )]);
        })];
        let huge = queued("huge", 90, 0);
        let mut multi = queued("multi", 50, 1);
        multi.spec.parameters = BTreeMap::from([("multiAZ".into(), "true".into())]);
        let too_late = queued("late", 60, 2);
        let fits = queued("fits", 60, 3);
        let all = [huge.clone(), multi.clone(), too_late.clone(), fits.clone()];
        let a = evaluate(&huge, &ps, &BTreeMap::new());
        assert!(check(&a, &huge, &comp(&[]), &all).is_err());
        assert!(check(&a, &multi, &comp(&[]), &all).is_err());
        assert_eq!(check(&a, &too_late, &comp(&[]), &all), Ok(()));
        // 60 (late) + 60 > 100: the one behind waits.
        assert!(check(&a, &fits, &comp(&[]), &all).is_err());
    }

    #[test]
    fn claims_being_deleted_do_not_count() {
        let ps = [policy("quota", |s| s.max_total_storage_gb = Some(30))];
        let mut going = claim("going", Size::Small, 20, true);
        going.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        let c = queued("new", 20, 0);
        let a = evaluate(&c, &ps, &BTreeMap::new());
        assert_eq!(check(&a, &c, &comp(&[]), &[going, c.clone()]), Ok(()));
    }

    fn with_params(params: &[(&str, &str)]) -> DatabaseClaim {
        let mut c = claim("x", Size::Small, 20, false);
        c.spec.parameters = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        c
    }

    fn limit(allowed: Option<&[&str]>, min: Option<i64>, max: Option<i64>) -> ParameterLimit {
        ParameterLimit {
            allowed: allowed.map(|a| a.iter().map(|s| s.to_string()).collect()),
            min,
            max,
        }
    }

    /// The contract's example: `multiAZ: {allowed: ["false"]}`,
    /// `connectionLimit: {min: 1, max: 100}`.
    #[test]
    fn parameter_limits_are_checked() {
        let ps = [policy("team-a", |s| {
            s.parameters = BTreeMap::from([
                ("multiAZ".to_string(), limit(Some(&["false"]), None, None)),
                (
                    "connectionLimit".to_string(),
                    limit(None, Some(1), Some(100)),
                ),
            ])
        })];
        let a = evaluate(&with_params(&[]), &ps, &BTreeMap::new());
        let run = |p: &[(&str, &str)]| check(&a, &with_params(p), &comp(&[]), &[]);
        assert_eq!(
            run(&[]),
            Ok(()),
            "unset parameters take the composition's default"
        );
        assert_eq!(
            run(&[("multiAZ", "false"), ("connectionLimit", "100")]),
            Ok(())
        );
        assert_eq!(
            run(&[("connectionLimit", "1"), ("other", "anything")]),
            Ok(())
        );
        let err = run(&[("multiAZ", "true")]).unwrap_err();
        assert!(
            err.contains("\"team-a\"")
                && err.contains("multiAZ only as [false]")
                && err.contains("\"true\""),
            "{err}"
        );
        let err = run(&[("connectionLimit", "-1")]).unwrap_err();
        assert!(
            err.contains("at least 1") && err.contains("parameters.connectionLimit.min"),
            "{err}"
        );
        let err = run(&[("connectionLimit", "101")]).unwrap_err();
        assert!(
            err.contains("at most 100") && err.contains("parameters.connectionLimit.max"),
            "{err}"
        );
        for bad in ["", "ten", "1.5", "1e2", " 5", "99999999999999999999"] {
            let err = run(&[("connectionLimit", bad)]).unwrap_err();
            assert!(err.contains("whole number"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn the_strictest_parameter_limit_wins() {
        let ps = [
            policy("loose", |s| {
                s.parameters = BTreeMap::from([
                    (
                        "connectionLimit".to_string(),
                        limit(None, Some(1), Some(500)),
                    ),
                    ("tier".to_string(), limit(Some(&["a", "b"]), None, None)),
                ])
            }),
            policy("tight", |s| {
                s.parameters = BTreeMap::from([
                    (
                        "connectionLimit".to_string(),
                        limit(None, Some(5), Some(50)),
                    ),
                    ("tier".to_string(), limit(Some(&["b", "c"]), None, None)),
                ])
            }),
        ];
        let a = evaluate(&with_params(&[]), &ps, &BTreeMap::new());
        let run = |p: &[(&str, &str)]| check(&a, &with_params(p), &comp(&[]), &[]);
        let err = run(&[("connectionLimit", "60")]).unwrap_err();
        assert!(
            err.contains("\"tight\"") && err.contains("at most 50"),
            "{err}"
        );
        let err = run(&[("connectionLimit", "3")]).unwrap_err();
        assert!(
            err.contains("\"tight\"") && err.contains("at least 5"),
            "{err}"
        );
        assert_eq!(run(&[("connectionLimit", "50")]), Ok(()));
        // Allowed lists all hold: only "b" is in both.
        assert_eq!(run(&[("tier", "b")]), Ok(()));
        assert!(run(&[("tier", "a")]).unwrap_err().contains("\"tight\""));
        assert!(run(&[("tier", "c")]).unwrap_err().contains("\"loose\""));
    }

    #[test]
    fn allowed_compositions_and_defaults() {
        let ps = [
            policy("b", |s| {
                s.default_compositions = BTreeMap::from([(Engine::Postgres, "from-b".to_string())])
            }),
            policy("a", |s| {
                s.allowed_compositions = selector(&[("tier", "standard")]);
                s.default_compositions = BTreeMap::from([(Engine::Postgres, "from-a".to_string())]);
            }),
        ];
        let c = claim("x", Size::Small, 20, false);
        let a = evaluate(&c, &ps, &BTreeMap::new());
        assert_eq!(a.default_composition.as_deref(), Some("from-a"));
        assert!(check(&a, &c, &comp(&[("tier", "premium")]), &[]).is_err());
        assert_eq!(check(&a, &c, &comp(&[("tier", "standard")]), &[]), Ok(()));
    }
}
