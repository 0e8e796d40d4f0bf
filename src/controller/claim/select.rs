//! Select: the policies that govern the claim, and its composition.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::ObjectRef;

use super::error::{SelectError, failed};
use crate::api::claim::RevisionRef;
use crate::api::{ClaimPolicy, Composition, CompositionRevision, DatabaseClaim};
use crate::controller::context::Context;
use crate::policy::{self, Applicable};
use crate::{revision, selection};

/// The claim's composition and the policies it must satisfy.
pub struct Selected {
    /// The composition, its spec that of the revision the claim renders.
    pub composition: Composition,
    /// That revision; `None` while the composition has none yet (its live
    /// spec is what the first revision will copy).
    pub revision: Option<RevisionRef>,
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
    let fresh = !judged(claim);
    let policies = policies_for(fresh, ctx).await?;
    let labels = if policies.is_empty() {
        BTreeMap::new()
    } else {
        namespace_labels(fresh, ctx, &ns).await?
    };
    let policy = policy::evaluate(claim, &policies, &labels);
    let mut composition =
        selection::select(claim, &compositions, policy.default_composition.as_deref())?.clone();
    let revision = render_revision(claim, &mut composition, ctx)?;
    Ok(Selected {
        composition,
        revision,
        policy,
    })
}

/// Puts the spec of the revision the claim renders in place of the live
/// one, and names that revision.
fn render_revision(
    claim: &DatabaseClaim,
    composition: &mut Composition,
    ctx: &Context,
) -> Result<Option<RevisionRef>, SelectError> {
    let name = composition.name_any();
    let all = ctx.revisions.state();
    let ours: Vec<&CompositionRevision> = all
        .iter()
        .map(|r| &**r)
        .filter(|r| r.composition_name() == Some(name.as_str()))
        .collect();
    let Some(chosen) = revision::choose(claim, &name, &ours)? else {
        return Ok(None);
    };
    composition.spec = chosen.spec.composition.clone();
    Ok(Some(RevisionRef {
        name: chosen.name_any(),
        revision: chosen.spec.revision,
    }))
}

/// Whether the operator judged this spec already (observedGeneration).
/// A spec it has not (a new claim, or an edit) is judged by what the API
/// server holds now, not by the caches: a ClaimPolicy or a namespace label
/// made just before a burst of claims may still be in flight on its watch,
/// and a claim admitted without it would provision past its limits. A
/// claim at rest, or after a restart, reads the caches.
fn judged(claim: &DatabaseClaim) -> bool {
    claim.metadata.generation.is_some()
        && claim.status.as_ref().and_then(|s| s.observed_generation) == claim.metadata.generation
}

/// The policies to judge a claim by: the API server's (`fresh`) or the cache's.
async fn policies_for(fresh: bool, ctx: &Context) -> Result<Vec<Arc<ClaimPolicy>>, SelectError> {
    if !fresh {
        return Ok(ctx.policies.state());
    }
    let api: Api<ClaimPolicy> = Api::all(ctx.client.clone());
    let list = ctx
        .fresh_policies
        .read(|| {
            let api = api.clone();
            async move {
                let list = api.list(&ListParams::default()).await?;
                Ok(list.items.into_iter().map(Arc::new).collect())
            }
        })
        .await
        .map_err(failed("list", "ClaimPolicies"))?;
    Ok(list.to_vec())
}

/// The labels policies select namespaces by: the API server's (`fresh`),
/// else the namespace cache's. A namespace the cache has not seen yet
/// (created just before the claim, its event still in flight) is read from
/// the API server too: guardrails must not miss a claim because two
/// watches raced.
async fn namespace_labels(
    fresh: bool,
    ctx: &Context,
    ns: &str,
) -> Result<BTreeMap<String, String>, SelectError> {
    if !fresh && let Some(n) = ctx.namespaces.get(&ObjectRef::new(ns)) {
        return Ok(n.labels().clone());
    }
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(ctx.client.clone());
    let found = api
        .get_metadata_opt(ns)
        .await
        .map_err(failed("read", format!("Namespace {ns}")))?;
    Ok(found.map(|n| n.labels().clone()).unwrap_or_default())
}
