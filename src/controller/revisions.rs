//! The revision controller: keeps each Composition's revisions in step
//! with its spec. On every change of a spec it creates the spec's revision
//! (or, for a spec applied before, makes that revision the newest again),
//! then retires revisions beyond what `crate::revision::retire` keeps.
//! It reads its cache and writes only when a step is due: quiet at rest.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::api::{Composition, CompositionRevision, DatabaseClaim};
use crate::metrics::Metrics;
use crate::revision::{self, Known, Step};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {verb} CompositionRevision {name}: {source}")]
    Write {
        verb: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    revisions: Store<CompositionRevision>,
    metrics: Metrics,
}

/// After a write, the cache must catch up before the next plan: this soon.
const SETTLE: Duration = Duration::from_secs(1);
/// A safety net for retention (claims move off revisions without an event
/// this controller sees).
const RESYNC: Duration = Duration::from_secs(600);
const RETRY: Duration = Duration::from_secs(5);

/// The revision controller until it stops.
pub fn run(client: Client, metrics: Metrics) -> impl std::future::Future<Output = ()> {
    let (revisions, revision_events) =
        super::claim::watches::reflect(Api::<CompositionRevision>::all(client.clone()));
    // A revision touched (made, renumbered, deleted by hand) wakes its composition.
    let by_revision = revision_events.filter_map(|r| async move {
        r.ok()?
            .composition_name()
            .map(ObjectRef::<Composition>::new)
    });
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        revisions: revisions.clone(),
        metrics,
    });
    // Plans need every revision of the composition: none before the cache
    // has listed them (kube's Store keeps one waker: one waiter, the gate).
    let (synced_tx, synced_rx) = tokio::sync::watch::channel(false);
    let gate = async move {
        let _ = revisions.wait_until_ready().await;
        let _ = synced_tx.send(true);
        futures::future::pending::<()>().await;
    };
    let reconcile = move |c: Arc<Composition>, ctx: Arc<Ctx>| {
        let mut synced = synced_rx.clone();
        async move {
            let _ = synced.wait_for(|open| *open).await;
            reconcile(c, ctx).await
        }
    };
    let controller = Controller::new(Api::<Composition>::all(client), watcher::Config::default())
        .reconcile_on(by_revision)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {});
    async move {
        tokio::select! {
            _ = controller => info!("revision controller stopped"),
            _ = gate => {}
        }
    }
}

#[instrument(skip_all, fields(composition = %composition.name_any()))]
async fn reconcile(composition: Arc<Composition>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = step(&composition, &ctx).await;
    ctx.metrics
        .reconciled("revision", result.is_ok(), started.elapsed());
    result
}

async fn step(composition: &Composition, ctx: &Ctx) -> Result<Action, Error> {
    if composition.metadata.deletion_timestamp.is_some() {
        // Its revisions go with it (owner references).
        return Ok(Action::await_change());
    }
    let name = composition.name_any();
    let known: Vec<Known> = ctx
        .revisions
        .state()
        .iter()
        .filter(|r| r.composition_name() == Some(name.as_str()))
        .map(|r| Known::from(&**r))
        .collect();
    let api: Api<CompositionRevision> = Api::all(ctx.client.clone());
    match revision::plan(&name, &composition.spec, &known) {
        Step::Current => {}
        Step::Create {
            name: rev,
            revision,
        } => {
            let object = revision::build(
                &name,
                composition.uid().as_deref(),
                &composition.spec,
                revision,
            );
            match api.create(&PostParams::default(), &object).await {
                Ok(_) => info!(revision = %rev, number = revision, "composition revision created"),
                // Made already; the cache has not shown it yet.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(source) => return Err(write_error("create", &rev, source)),
            }
            return Ok(Action::requeue(SETTLE));
        }
        Step::Promote {
            name: rev,
            revision,
        } => {
            let patch = json!({"spec": {"revision": revision}});
            api.patch(&rev, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| write_error("renumber", &rev, e))?;
            info!(revision = %rev, number = revision, "composition revision is the newest again");
            return Ok(Action::requeue(SETTLE));
        }
    }
    if known.len() > revision::KEEP {
        retire(&known, ctx, &api).await?;
    }
    Ok(Action::requeue(RESYNC))
}

/// Deletes the revisions retention lets go. Which ones claims use is read
/// from the API server, not a cache: a revision in use must never go
/// because a cache was behind. Only when there is something to retire.
async fn retire(known: &[Known], ctx: &Ctx, api: &Api<CompositionRevision>) -> Result<(), Error> {
    let claims: Api<DatabaseClaim> = Api::all(ctx.client.clone());
    let listed = match claims.list(&ListParams::default()).await {
        Ok(l) => l,
        Err(e) => {
            // Nothing is deleted without knowing what is in use.
            warn!(error = %e, "cannot list claims: old composition revisions are kept for now");
            return Ok(());
        }
    };
    let in_use = revision::in_use(listed.items.iter());
    for name in revision::retire(known, &in_use, revision::KEEP) {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => info!(revision = %name, "old composition revision deleted"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => return Err(write_error("delete", &name, source)),
        }
    }
    Ok(())
}

fn write_error(verb: &'static str, name: &str, source: kube::Error) -> Error {
    Error::Write {
        verb,
        name: name.to_string(),
        source,
    }
}

fn error_policy(_: Arc<Composition>, error: &Error, _: Arc<Ctx>) -> Action {
    warn!(%error, "composition revision reconcile failed");
    Action::requeue(RETRY)
}
