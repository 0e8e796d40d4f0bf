//! `dbclaim run`: the claim controller and the providers, with metrics and
//! probes, until SIGTERM or Ctrl-C.

pub mod claim;
#[cfg(test)]
mod claim_tests;
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
use tracing::{error, info, warn};

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
    #[error("lost leadership, exiting so that only the new leader reconciles: {0}")]
    LeaseLost(#[from] crate::leader::Lost),
    #[error("{0}")]
    LeaderElection(String),
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
    tokio::pin!(metrics_server, probes_server);

    // Leader election: standbys serve probes and metrics and keep their
    // caches synced (so /readyz says whether they could lead), but start no
    // controller until they hold the Lease.
    let mut leadership = None;
    if args.leader_elect {
        let elector = crate::leader::Elector::new(
            client.clone(),
            args.leader_election_namespace
                .as_deref()
                .unwrap_or(&operator_namespace),
            &args.leader_election_id,
            crate::leader::default_identity(),
            crate::leader::Timings {
                lease_duration: args.leader_election_lease_duration,
                renew_deadline: args.leader_election_renew_deadline,
                retry_period: args.leader_election_retry_period,
            },
        )
        .map_err(Error::LeaderElection)?;
        info!(identity = %elector.identity(), lease = %args.leader_election_id, "waiting for leadership");
        tokio::select! {
            held = elector.acquire() => leadership = Some(held),
            r = &mut metrics_server => return r.map_err(|source| Error::Serve { what: "metrics", addr: metrics_addr, source }),
            r = &mut probes_server => return r.map_err(|source| Error::Serve { what: "probes", addr: probes_addr, source }),
            _ = standby_caches(client.clone(), args.namespace.clone(), readiness.clone()) => {}
            _ = shutdown_signal() => {
                info!("stopped while standing by");
                return Ok(());
            }
        }
    }

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

    let claims_api_for_ready: Api<DatabaseClaim> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
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
    let (namespaces, namespace_writer) = reflector::store::<PartialObjectMeta<Namespace>>();
    let namespace_events = reflector::reflector(
        namespace_writer,
        watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
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
        claims: claim_store.clone(),
        namespaces: namespaces.clone(),
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
        namespace_events
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

    // kube's Store::wait_until_ready keeps a single waker, so of several
    // concurrent waiters only the last one polled is woken: a reconcile
    // waiting for the composition cache (claim.rs) could hang forever, and
    // that claim with it, when an operator starts (or takes over) with
    // claims already there. One task waits for the composition, policy and
    // namespace caches and opens this gate; reconciles and readiness wait on the gate.
    let (synced_tx, synced_rx) = tokio::sync::watch::channel(false);
    let open_gate = {
        let (compositions, policies) = (compositions.clone(), policies.clone());
        async move {
            let _ = compositions.wait_until_ready().await;
            let _ = policies.wait_until_ready().await;
            let _ = namespaces.wait_until_ready().await;
            let _ = synced_tx.send(true);
        }
    };
    let gated_reconcile = {
        let synced = synced_rx.clone();
        move |claim, ctx| {
            let mut synced = synced.clone();
            async move {
                let _ = synced.wait_for(|open| *open).await;
                claim::reconcile(claim, ctx).await
            }
        }
    };
    let claims = claim_controller
        .reconcile_on(by_composition)
        .reconcile_on(by_policy)
        .reconcile_on(by_namespace)
        .reconcile_on(by_composed)
        .shutdown_on_signal()
        .run(gated_reconcile, claim::error_policy, ctx)
        .for_each(|_| async {});

    let provider_config = crate::provider::Config {
        operator_namespace,
        concurrency: args.concurrency,
    };
    let aws = crate::provider::aws::run_with_metrics(
        client.clone(),
        provider_config.clone(),
        metrics.clone(),
    );
    let postgres = crate::provider::postgres::run_with_metrics(
        client.clone(),
        provider_config,
        metrics.clone(),
    );

    let ready_watch = async {
        open_gate.await;
        mark_ready_when_synced(synced_rx, claims_api_for_ready, readiness).await;
    };
    let gauge = claims_gauge(claim_store, metrics);

    let lost = async {
        match leadership.as_mut() {
            Some(held) => held.hold().await,
            None => std::future::pending().await,
        }
    };

    tokio::select! {
        _ = claims => info!("claim controller stopped"),
        _ = postgres => info!("postgres provider stopped"),
        _ = aws => info!("aws provider stopped"),
        r = &mut metrics_server => return r.map_err(|source| Error::Serve { what: "metrics", addr: metrics_addr, source }),
        r = &mut probes_server => return r.map_err(|source| Error::Serve { what: "probes", addr: probes_addr, source }),
        _ = async { ready_watch.await; gauge.await } => error!("background tasks ended"),
        // Returning drops every controller future: no reconcile runs past here.
        lost = lost => return Err(Error::LeaseLost(lost)),
    }
    if let Some(held) = leadership {
        held.release().await;
    }
    Ok(())
}

/// What a standby does until it leads: lists and watches what the leader
/// needs, and reports ready once that has synced.
async fn standby_caches(client: kube::Client, namespace: Option<String>, readiness: Readiness) {
    let claims: Api<DatabaseClaim> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (claim_store, claim_writer) = reflector::store();
    let (composition_store, composition_writer) = reflector::store();
    let (policy_store, policy_writer) = reflector::store();
    let config = watcher::Config::default;
    let claims = reflector::reflector(claim_writer, watcher(claims, config()))
        .default_backoff()
        .for_each(|_| async {});
    let compositions = reflector::reflector(
        composition_writer,
        watcher(Api::<Composition>::all(client.clone()), config()),
    )
    .default_backoff()
    .for_each(|_| async {});
    let policies = reflector::reflector(
        policy_writer,
        watcher(Api::<ClaimPolicy>::all(client), config()),
    )
    .default_backoff()
    .for_each(|_| async {});
    let ready = mark_ready(claim_store, composition_store, policy_store, readiness);
    futures::join!(claims, compositions, policies, ready);
}

/// SIGTERM (as Kubernetes sends) or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
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

/// Readiness of a standby: its own caches, of which this is the only waiter.
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

/// Readiness of the replica that runs the controllers: the composition and
/// policy caches have synced (the gate) and claims can be listed. The claim
/// cache itself belongs to the controller, whose runner is its only waiter
/// (see the gate above) and starts no reconcile before it has synced.
async fn mark_ready_when_synced(
    mut synced: tokio::sync::watch::Receiver<bool>,
    claims: Api<DatabaseClaim>,
    readiness: Readiness,
) {
    let _ = synced.wait_for(|open| *open).await;
    let probe = kube::api::ListParams::default().limit(1);
    while let Err(e) = claims.list_metadata(&probe).await {
        warn!(error = %e, "cannot list DatabaseClaims yet");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
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
