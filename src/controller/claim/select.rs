//! Select: the policies that govern the claim, and its composition.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use super::error::{SelectError, failed};
use crate::api::{Composition, DatabaseClaim};
use crate::controller::context::Context;
use crate::policy::{self, Applicable};
use crate::selection;

/// The claim's composition and the policies it must satisfy.
pub struct Selected {
    pub composition: Composition,
    pub policy: Applicable,
}

impl Selected {
    pub fn name(&self) -> String {
        self.composition.name_any()
    }

    /// The policy check, apart from selection: a claim that violates a
    /// policy still records the composition it selected.
    pub fn admit(&self, claim: &DatabaseClaim, ctx: &Context) -> Result<(), SelectError> {
        if self.policy.policies.is_empty() {
            return Ok(());
        }
        // The claim cache, not a LIST per reconcile: a burst of N claims in
        // one namespace would otherwise read N² claims.
        let claims = ctx.claims.state();
        let in_namespace = claims
            .iter()
            .filter(|c| c.namespace() == claim.namespace())
            .map(|c| c.as_ref());
        policy::check(&self.policy, claim, &self.composition, in_namespace)
            .map_err(SelectError::Policy)
    }
}

pub async fn select(claim: &DatabaseClaim, ctx: &Context) -> Result<Selected, SelectError> {
    let ns = claim.namespace().unwrap_or_default();
    let compositions: Vec<Composition> = ctx
        .compositions
        .state()
        .iter()
        .map(|c| (**c).clone())
        .collect();
    let policies = ctx.policies.state();
    let policy = policy::evaluate(claim, &policies, &namespace_labels(ctx, &ns).await?);
    let composition =
        selection::select(claim, &compositions, policy.default_composition.as_deref())?.clone();
    Ok(Selected {
        composition,
        policy,
    })
}

/// The labels policies select namespaces by, from the namespace cache. A
/// namespace the cache has not seen yet (created just before the claim,
/// its event still in flight) is read from the API server: guardrails must
/// not miss a claim because two watches raced.
async fn namespace_labels(
    ctx: &Context,
    ns: &str,
) -> Result<BTreeMap<String, String>, SelectError> {
    if ctx.policies.state().is_empty() {
        return Ok(BTreeMap::new());
    }
    if let Some(n) = ctx.namespaces.get(&ObjectRef::new(ns)) {
        return Ok(n.labels().clone());
    }
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(ctx.client.clone());
    let found = api
        .get_metadata_opt(ns)
        .await
        .map_err(failed("read", format!("Namespace {ns}")))?;
    Ok(found.map(|n| n.labels().clone()).unwrap_or_default())
}
