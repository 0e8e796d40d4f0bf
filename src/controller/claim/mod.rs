//! The DatabaseClaim reconcile, a pipeline of stages, each in its own
//! module and each handing a typed result to the next:
//!
//! select (policy + selection) → observe (kinds, objects, their Secrets) →
//! render (pure engine) → apply (SSA, re-render, prune) → publish the
//! connection Secret → report status. Deletion goes through the finalizer
//! ([`cleanup`]); [`watches`] wires what wakes a claim.

mod apply;
mod cleanup;
mod credentials;
mod drills;
pub mod error;
mod observe;
mod render;
pub mod review;
mod secret;
mod select;
pub mod status;
pub mod watches;

#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Instant;

use kube::ResourceExt;
use kube::api::{Api, DynamicObject, TypeMeta};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::finalizer::{self, Event as Finalizer, finalizer};
use tracing::{debug, instrument, warn};

use crate::api::DatabaseClaim;
use crate::contract::{CLAIM_FINALIZER, PAUSED_ANNOTATION};

use super::context::Context;
/// Also how the reconcile tests' mock API server matches request bodies.
#[cfg(test)]
pub(crate) use apply::is_subset;
pub use error::{PassError, requeue};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API failure during a pass: retried, the status left as it was.
    #[error(transparent)]
    Pass(PassError),
    /// The status write, or a request of the deletion.
    #[error(transparent)]
    Api(#[from] error::ApiError),
    /// Finding the composed objects of a claim being deleted.
    #[error(transparent)]
    Collect(#[from] crate::controller::collector::Error),
    #[error("waiting for {0} composed object(s) to be deleted")]
    WaitingForDeletion(usize),
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

/// What a pass got to, stage by stage, for the status.
#[derive(Default)]
pub struct Pass {
    composition: Option<String>,
    /// The composition revision rendered, once its objects are applied.
    revision: Option<crate::api::claim::RevisionRef>,
    applied: Option<apply::Applied>,
    secret: Option<secret::Published>,
    /// What the stages did, announced with the status.
    events: Vec<Event>,
    /// `status.credentials` as this pass leaves it.
    credentials: Option<crate::api::claim::CredentialsStatus>,
    /// A rotation started in this pass.
    rotated: bool,
    /// When the rotation schedule is due next.
    rotation_due_in: Option<std::time::Duration>,
    /// `status.drills` as this pass leaves it, when a drill moved.
    drills: Option<Vec<crate::api::common::DrillStatus>>,
    /// A `rotate-credentials` drill starting now: its id, and the history.
    drill_rotation: Option<(crate::drill::Request, Vec<crate::api::common::DrillStatus>)>,
}

/// The stages in order; each failure stops the pass where it happened.
async fn stages(claim: &DatabaseClaim, ctx: &Context, pass: &mut Pass) -> Result<(), PassError> {
    let selected = select::select(claim, ctx).await?;
    // Recorded before the policy check, so a violation still names it; but
    // a claim that has a composition keeps it on record until a move to
    // another one has passed every check below (a later pass would take a
    // recorded move as done, and prune what the old composition made).
    let recorded = crate::selection::recorded(claim).map(str::to_string);
    pass.composition = Some(recorded.unwrap_or_else(|| selected.name()));
    selected.admit(claim, ctx)?;
    debug!(composition = %selected.name(), "composition selected");
    let drills = drills::plan(claim, &selected, ctx)?;
    if drills.starting
        && let Some(r) = drills
            .active
            .as_ref()
            .filter(|r| r.type_ == crate::api::common::DrillType::RotateCredentials)
    {
        pass.drill_rotation = Some((r.clone(), drills.history.clone()));
    }
    let claim = &credentials::prepare(claim, &selected, ctx, pass).await?;
    let mut observed = observe::observe(claim, &selected, ctx).await?;
    // Connection Secrets are read from where the rendered objects name
    // them, never the observed ones (a tenant may edit those): render once
    // to learn where, and again with what was read.
    let desired = render::render(claim, &selected, &observed)?;
    let desired = match observe::connections(claim, &desired, &mut observed, ctx, false).await? {
        true => render::render(claim, &selected, &observed)?,
        false => desired,
    };
    // Every composed object ready but the details incomplete, as the
    // Secret cache has them: the provider writes its Secret before it
    // reports ready, so the cache lags that Secret's watch. Read them
    // fresh rather than report a gap that is not there.
    let mut desired = match observed.from_cache && waits_only_on_details(claim, &selected, &desired)
    {
        true => {
            observe::connections(claim, &desired, &mut observed, ctx, true).await?;
            render::render(claim, &selected, &observed)?
        }
        false => desired,
    };
    drills::follow(&drills, &mut desired, &observed, pass);
    // Before anything is applied or pruned: a move must not delete a database.
    crate::replacement::check(claim, &selected.name(), &render::keys(&desired))?;
    pass.composition = Some(selected.name());
    let applied = apply::apply(claim, &selected, observed, desired, ctx, &mut pass.events).await?;
    let applied = pass.applied.insert(applied);
    pass.revision = selected.revision.clone();
    let published = secret::publish(claim, &selected, applied, ctx, &mut pass.events).await?;
    pass.secret = Some(published);
    if pass.rotated && credentials::generates(&selected) {
        // The new values are applied (the providers count their own).
        ctx.metrics.credential_rotation("composition", true);
    }
    Ok(())
}

/// Whether every composed object is ready and connection details lack.
fn waits_only_on_details(
    claim: &DatabaseClaim,
    selected: &select::Selected,
    desired: &crate::engine::Rendered,
) -> bool {
    desired.resources.iter().all(|r| r.readiness.ready)
        && !crate::engine::connection_secret(
            claim.spec.engine,
            &selected.name(),
            &desired.connection,
        )
        .missing
        .is_empty()
}

/// One pass over a live claim. No wait for the composition cache here:
/// `dbclaim run` starts no claim reconcile before it has synced (the gate
/// in watches.rs).
async fn provision(claim: &DatabaseClaim, ctx: &Context) -> Result<Action, Error> {
    let mut pass = Pass::default();
    let outcome = stages(claim, ctx, &mut pass).await;
    status::report(claim, ctx, pass, outcome).await
}

#[instrument(skip_all, fields(claim = %claim.name_any(), namespace = claim.namespace().unwrap_or_default()))]
pub async fn reconcile(claim: Arc<DatabaseClaim>, ctx: Arc<Context>) -> Result<Action, Error> {
    let paused = claim.annotations().get(PAUSED_ANNOTATION);
    if paused.is_some_and(|v| v == "true") {
        return Ok(Action::await_change());
    }
    let deleting = claim.metadata.deletion_timestamp.is_some();
    let uid = claim.uid().unwrap_or_default();
    if deleting && ctx.finalized.contains(&uid) {
        // The cache still shows a claim whose finalizer this operator
        // removed: it is gone, and a second cleanup would only send
        // requests that fail.
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    debug!("claim reconcile started");
    let ns = claim.namespace().unwrap_or_default();
    // The finalizer is patched in the version the operator speaks (the
    // storage version): a patch in another costs the API server two
    // conversion webhook calls. Only the metadata takes part.
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ns, &ctx.claim_resource);
    let stored = Arc::new(DynamicObject {
        types: Some(TypeMeta {
            api_version: ctx.claim_resource.api_version.clone(),
            kind: ctx.claim_resource.kind.clone(),
        }),
        metadata: claim.metadata.clone(),
        data: serde_json::Value::Object(Default::default()),
    });
    let (served, ctx_ref) = (&*claim, &*ctx);
    let result = finalizer(&api, CLAIM_FINALIZER, stored, |event| async move {
        match event {
            Finalizer::Apply(_) => provision(served, ctx_ref).await,
            Finalizer::Cleanup(_) => cleanup::cleanup(served, ctx_ref).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    if result.is_ok() {
        ctx.backoff.reset(&uid);
    }
    if deleting && result.is_ok() {
        ctx.finalized.insert(&uid, ());
        ctx.status_writes.remove(&uid);
    }
    ctx.metrics
        .reconciled("claim", result.is_ok(), started.elapsed());
    result
}

/// Retries a failed pass: a deletion waiting on its composed objects soon,
/// a transient API failure after the claim's backoff (refusals never get
/// here: they are reported on the claim).
pub fn error_policy(claim: Arc<DatabaseClaim>, error: &Error, ctx: Arc<Context>) -> Action {
    let cause = match error {
        Error::Finalizer(e) => match &**e {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
            _ => error,
        },
        _ => error,
    };
    if let Error::WaitingForDeletion(_) = cause {
        return Action::requeue(requeue::DELETION);
    }
    let uid = claim.uid().unwrap_or_default();
    ctx.backoff.prune(|uid| {
        let claims = ctx.claims.state();
        claims.iter().any(|c| c.uid().as_deref() == Some(uid))
    });
    let delay = ctx.backoff.next(&uid);
    warn!(%error, retry_in = ?delay, "claim reconcile failed");
    Action::requeue(delay)
}

/// Whether a composed object (or a composition's base) is a managed
/// resource of dbclaim's own providers, a shared PostgreSQL `Database` or
/// an `RDSInstance`: they rotate passwords and run drills.
fn own_managed(object: &serde_json::Value) -> bool {
    let field = |f: &str| object.get(f).and_then(serde_json::Value::as_str);
    let group = field("apiVersion")
        .and_then(|v| v.split_once('/'))
        .map(|(g, _)| g);
    matches!(
        (group, field("kind")),
        (Some("postgres.dbclaim.io"), Some("Database"))
            | (Some("aws.dbclaim.io"), Some("RDSInstance"))
    )
}

fn normal(reason: &str, action: &str, note: String) -> Event {
    crate::events::event(EventType::Normal, reason, action, note)
}
