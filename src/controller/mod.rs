//! `dbclaim run`: the claim controller and the providers, with metrics and
//! probes, until SIGTERM or Ctrl-C.

pub mod claim;
pub mod context;
pub mod kinds;
pub mod labels;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;
use tracing::{error, info};

use crate::api::{ClaimPolicy, Composition, DatabaseClaim};
use crate::cli::RunArgs;
use crate::conditions::{self, ConditionType};
use crate::metrics::Metrics;
use crate::server::{self, Readiness};

use context::Context;
use kinds::Kinds;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
    #[error("cannot serve {what} on {addr}: {source}")]
    Serve {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

pub fn run_blocking(args: RunArgs) -> Result<(), Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

fn operator_namespace(args: &RunArgs) -> String {
    args.operator_namespace
        .clone()
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok()
        })
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "dbclaim-system".to_string())
}

pub async fn run(args: RunArgs) -> Result<(), Error> {
    let metrics = Metrics::default();
    // Every request goes through the counting layer:
    // dbclaim_kube_requests_total{verb,resource}.
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let client = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&metrics.kube_layer())
        .build();
    let operator_namespace = operator_namespace(&args);
    let readiness = Readiness::default();
    info!(%operator_namespace, "starting dbclaim");

    let metrics_server = server::serve_metrics(args.metrics_bind_address, metrics.clone());
    let probes_server = server::serve_probes(args.health_probe_bind_address, readiness.clone());
    // Bind errors surface at once rather than after the controllers start.
    let metrics_addr = args.metrics_bind_address;
    let probes_addr = args.health_probe_bind_address;

    let (compositions, composition_writer) = reflector::store::<Composition>();
    let composition_events = reflector::reflector(
        composition_writer,
        watcher(
            Api::<Composition>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    let (policies, policy_writer) = reflector::store::<ClaimPolicy>();
    let policy_events = reflector::reflector(
        policy_writer,
        watcher(
            Api::<ClaimPolicy>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();

    let (wake_tx, wake_rx) = mpsc::unbounded_channel::<ObjectRef<DatabaseClaim>>();
    let ctx = Arc::new(Context {
        client: client.clone(),
        compositions: compositions.clone(),
        policies: policies.clone(),
        kinds: Kinds::new(client.clone(), wake_tx),
        reporter: Reporter {
            controller: "dbclaim".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
        operator_namespace: operator_namespace.clone(),
        metrics: metrics.clone(),
        finalized: Default::default(),
        status_writes: Default::default(),
    });

    let (claims_api, secrets_api): (Api<DatabaseClaim>, Api<PartialObjectMeta<Secret>>) =
        match &args.namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
    // The claim cache holds every claim for the operator's lifetime: keep
    // what reconciles read, not the managed fields (about half of a claim
    // as the API server sends it) or kubectl's last-applied copy.
    let (claim_store, claim_writer) = reflector::store::<DatabaseClaim>();
    let claim_events = reflector::reflector(
        claim_writer,
        watcher(claims_api, watcher::Config::default()).modify(slim),
    )
    .applied_objects();
    let claim_controller = Controller::for_stream(claim_events, claim_store.clone())
        // Connection Secrets only wake their claim: metadata is enough,
        // their data never needs to cross the wire for that.
        .owns(
            secrets_api,
            watcher::Config::default().labels(labels::CLAIM_NAME),
        )
        .with_config(controller::Config::default().concurrency(args.concurrency));

    // A composition change wakes the claims using it and those still
    // looking for one; a policy change wakes every claim.
    let by_composition = {
        let store = claim_store.clone();
        composition_events
            .filter_map(|c| async move { c.ok() })
            .flat_map(move |comp| {
                let name = comp.name_any();
                stream::iter(
                    store
                        .state()
                        .iter()
                        .filter(|c| uses_or_lacks(c, &name))
                        .map(|c| ObjectRef::from(&**c))
                        .collect::<Vec<_>>(),
                )
            })
    };
    let by_policy = {
        let store = claim_store.clone();
        policy_events
            .filter_map(|p| async move { p.ok() })
            .flat_map(move |_| {
                stream::iter(
                    store
                        .state()
                        .iter()
                        .map(|c| ObjectRef::from(&**c))
                        .collect::<Vec<_>>(),
                )
            })
    };
    // A namespace's labels decide which policies govern its claims.
    let by_namespace = {
        let store = claim_store.clone();
        let namespaces: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
        watcher(namespaces, watcher::Config::default())
            .default_backoff()
            .touched_objects()
            .filter_map(|n| async move { n.ok() })
            .flat_map(move |ns| {
                let name = ns.name_any();
                stream::iter(
                    store
                        .state()
                        .iter()
                        .filter(|c| c.namespace().as_deref() == Some(name.as_str()))
                        .map(|c| ObjectRef::from(&**c))
                        .collect::<Vec<_>>(),
                )
            })
    };
    let by_composed = stream::unfold(
        wake_rx,
        |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
    );

    let claims = claim_controller
        .reconcile_on(by_composition)
        .reconcile_on(by_policy)
        .reconcile_on(by_namespace)
        .reconcile_on(by_composed)
        .shutdown_on_signal()
        .run(claim::reconcile, claim::error_policy, ctx)
        .for_each(|_| async {});

    let provider_config = crate::provider::Config {
        operator_namespace,
        concurrency: args.concurrency,
    };
    let postgres = crate::provider::postgres::run(client.clone(), provider_config);

    let ready_watch = mark_ready(claim_store.clone(), compositions, policies, readiness);
    let gauge = claims_gauge(claim_store, metrics);

    tokio::select! {
        _ = claims => info!("claim controller stopped"),
        _ = postgres => info!("postgres provider stopped"),
        r = metrics_server => return r.map_err(|source| Error::Serve { what: "metrics", addr: metrics_addr, source }),
        r = probes_server => return r.map_err(|source| Error::Serve { what: "probes", addr: probes_addr, source }),
        _ = async { ready_watch.await; gauge.await } => error!("background tasks ended"),
    }
    Ok(())
}

/// What the claim cache does not need to keep.
fn slim(claim: &mut DatabaseClaim) {
    claim.managed_fields_mut().clear();
    claim
        .annotations_mut()
        .remove("kubectl.kubernetes.io/last-applied-configuration");
}

fn uses_or_lacks(claim: &DatabaseClaim, composition: &str) -> bool {
    let status = claim.status.as_ref();
    let uses = status
        .and_then(|s| s.composition.as_ref())
        .is_some_and(|r| r.name == composition);
    let synced = status.is_some_and(|s| conditions::is_true(&s.conditions, ConditionType::Synced));
    uses || !synced
}

async fn mark_ready(
    claims: Store<DatabaseClaim>,
    compositions: Store<Composition>,
    policies: Store<ClaimPolicy>,
    readiness: Readiness,
) {
    let _ = claims.wait_until_ready().await;
    let _ = compositions.wait_until_ready().await;
    let _ = policies.wait_until_ready().await;
    readiness.set_ready();
    info!("caches synced");
}

/// Keeps `dbclaim_claims{ready}` current from the claim cache.
async fn claims_gauge(claims: Store<DatabaseClaim>, metrics: Metrics) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        let state = claims.state();
        let ready = state
            .iter()
            .filter(|c| {
                c.status
                    .as_ref()
                    .is_some_and(|s| conditions::is_true(&s.conditions, ConditionType::Ready))
            })
            .count() as i64;
        metrics.set_claims(ready, state.len() as i64 - ready);
    }
}
