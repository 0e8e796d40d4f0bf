//! ProviderConfigs: the status controller every provider shares, generic
//! over how a provider checks its config ([`Resolve`]), and the watch that
//! checks them again when a referenced credentials Secret changes.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::core::PartialObjectMeta;
use kube::core::object::HasStatus;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use super::reconcile::Context;
use super::{Events, status};
use crate::api::common::ConfigStatus;
use crate::conditions::{Cond, ReadyReason, SyncedReason};
use crate::controller::cache::{Cache, Touched};

/// How often a healthy ProviderConfig is checked again.
const RESYNC: Duration = Duration::from_secs(600);

/// A provider's ProviderConfig kind.
pub trait ConfigKind:
    Resource<DynamicType = ()>
    + HasStatus<Status = ConfigStatus>
    + Clone
    + std::fmt::Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// Whether the config reads the Secret `namespace/name`.
    fn uses_secret(&self, namespace: &str, name: &str) -> bool;
}

/// How a provider checks a ProviderConfig.
pub trait Resolve<C: ConfigKind>: Send + Sync + 'static {
    type Error: std::error::Error + Send + Sync + 'static;
    /// Event reasons when the config turns usable and when it fails.
    const VALID: &'static str;
    const INVALID: &'static str;

    /// Checks `pc`; on success, what the Ready condition says.
    fn check(&self, pc: &C) -> impl Future<Output = Result<String, Self::Error>> + Send;
}

/// A ProviderConfig or its Secret could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read ProviderConfig \"{config}\" or its Secret: {source}")]
pub struct ReadError {
    pub config: String,
    pub source: kube::Error,
}

/// Reads ProviderConfig `name` from the provider's cache of them (read
/// from the API server when the cache has not synced or lacks it: one made
/// a moment ago); `missing(name)` when there is none.
pub async fn get<C: ConfigKind, E: From<ReadError>>(
    client: &Client,
    configs: &Cache<C>,
    name: &str,
    missing: impl FnOnce(String) -> E,
) -> Result<C, E> {
    if let Some(Some(pc)) = configs.lookup(None, name).await {
        return Ok(pc);
    }
    let got = Api::<C>::all(client.clone()).get_opt(name).await;
    let got = got.map_err(|source| ReadError {
        config: name.to_string(),
        source,
    })?;
    got.ok_or_else(|| missing(name.to_string()))
}

/// Reads the Secret `namespace/name` ProviderConfig `config` refers to.
pub async fn secret(
    client: &Client,
    config: &str,
    namespace: &str,
    name: &str,
) -> Result<Option<Secret>, ReadError> {
    let got = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await;
    got.map_err(|source| ReadError {
        config: config.to_string(),
        source,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum Error<E: std::error::Error + 'static> {
    #[error(transparent)]
    Check(E),
    #[error("cannot write the status of ProviderConfig: {0}")]
    Status(#[source] kube::Error),
}

/// Ready and Synced of a checked ProviderConfig.
pub fn conditions<E: std::fmt::Display>(checked: &Result<String, E>) -> [Cond; 2] {
    match checked {
        Ok(message) => [
            Cond::ready(true, ReadyReason::Available, message.clone()),
            Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
        ],
        Err(e) => [
            Cond::ready(false, ReadyReason::Unavailable, e.to_string()),
            Cond::synced(false, SyncedReason::ProviderError, e.to_string()),
        ],
    }
}

async fn reconcile<C: ConfigKind, X: Resolve<C>>(
    pc: Arc<C>,
    ctx: Arc<Context<X>>,
) -> Result<Action, Error<X::Error>> {
    let name = pc.name_any();
    let span = tracing::info_span!("reconcile", kind = %format!("{}.{}", C::group(&()), C::kind(&())), name = %name);
    async move {
        let checked = ctx.external.check(&pc).await;
        let old = pc.status().cloned().unwrap_or_default();
        let mut new = old.clone();
        let generation = pc.meta().generation;
        status::set_all(
            &mut new.conditions,
            &conditions(&checked),
            generation,
            Timestamp::now(),
        );
        new.observed_generation = generation;
        let manager = ctx.manager;
        if new != old {
            status::write(&ctx.client, pc.as_ref(), manager, &new)
                .await
                .map_err(Error::Status)?;
            if status::synced_changed(&old.conditions, &new.conditions) {
                let mut events = Events::default();
                match &checked {
                    Ok(message) => events.normal(X::VALID, message.clone()),
                    Err(e) => events.warning(X::INVALID, e.to_string()),
                }
                ctx.publish(pc.as_ref(), events).await;
            }
        }
        let key = format!("ProviderConfig/{name}");
        match checked {
            Ok(_) => {
                ctx.backoff.reset(&key);
                Ok(Action::requeue(RESYNC))
            }
            Err(e) => Err(Error::Check(e)),
        }
    }
    .instrument(span)
    .await
}

fn error_policy<C: ConfigKind, X: Resolve<C>>(
    pc: Arc<C>,
    _error: &Error<X::Error>,
    ctx: Arc<Context<X>>,
) -> Action {
    Action::requeue(
        ctx.backoff
            .next(&format!("ProviderConfig/{}", pc.name_any())),
    )
}

/// Runs the ProviderConfig controller until the future is dropped.
pub async fn run<C: ConfigKind, X: Resolve<C>>(client: Client, ctx: Arc<Context<X>>) {
    let concurrency = controller::Config::default().concurrency(ctx.config.concurrency.max(1));
    let pc_controller = Controller::new(Api::<C>::all(client.clone()), watcher::Config::default())
        .with_config(concurrency);
    let referenced = pc_controller.store();
    // A credentials Secret changed: check every ProviderConfig again (they
    // are few). Only names are watched; the Secret is read when checking.
    // The operator's metadata watch of all Secrets tells, when it covers
    // every namespace; else this controller watches for itself.
    let touched = match ctx.config.secrets.names.subscribe() {
        Some(touched) => touched.boxed(),
        None => watcher(
            Api::<PartialObjectMeta<Secret>>::all(client),
            watcher::Config::default(),
        )
        .default_backoff()
        .touched_objects()
        .filter_map(|meta| futures::future::ready(meta.ok().map(|m| Touched::of(&m))))
        .boxed(),
    };
    let credentials_changed = touched.filter_map(move |touched| {
        let hit = match touched.object() {
            Some((ns, name)) => referenced
                .state()
                .iter()
                .any(|pc| pc.uses_secret(ns.unwrap_or_default(), name)),
            None => true,
        };
        futures::future::ready(hit.then_some(()))
    });
    pc_controller
        .reconcile_all_on(credentials_changed)
        .run(reconcile::<C, X>, error_policy::<C, X>, ctx)
        .for_each(
            |result| async move { super::reconcile::log("ProviderConfig", result, |_| false) },
        )
        .await
}
