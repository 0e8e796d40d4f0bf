//! ClaimPolicy evaluation: pure. Every policy whose namespaceSelector
//! matches the claim's namespace applies; the strictest limit wins and the
//! message names the policy that set it.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;

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
/// the namespace's claims (the claim itself among them or not); only those
/// already provisioned count towards the total, the claim under review at
/// its new size.
pub fn check<'a>(
    applicable: &Applicable,
    claim: &DatabaseClaim,
    composition: &Composition,
    namespace_claims: impl IntoIterator<Item = &'a DatabaseClaim>,
) -> Result<(), String> {
    let others: i64 = namespace_claims
        .into_iter()
        .filter(|c| c.uid() != claim.uid() || c.name_any() != claim.name_any())
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter(|c| c.status.as_ref().is_some_and(|s| !s.resources.is_empty()))
        .map(|c| c.spec.storage_gb)
        .sum();
    let total = others + claim.spec.storage_gb;
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
    if let Some((limit, name)) = strictest(applicable, |p| p.spec.max_total_storage_gb)
        && total > limit
    {
        return Err(format!(
            "ClaimPolicy {name:?} allows at most {limit} GB in this namespace (maxTotalStorageGB); its claims would use {total} GB with this one: lower spec.storageGB or delete a claim"
        ));
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
            err.contains("60 GB") && err.contains("at most 50 GB"),
            "{err}"
        );
        // The unprovisioned third does not count against the first two.
        assert_eq!(check(&a, &first, &comp(&[]), &all), Ok(()));
        // A provisioned claim counts at its new size, once.
        let mut grown = first.clone();
        grown.spec.storage_gb = 31;
        assert!(check(&a, &grown, &comp(&[]), &[grown.clone(), second.clone()]).is_err());
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
