//! What wakes a claim: its own watch, its connection Secrets, the
//! compositions, policies and namespaces it depends on, and the objects
//! it composed. Also the caches its reconciles read.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ApiResource};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::api::{ClaimPolicy, Composition, CompositionRevision, DatabaseClaim, v1beta1};
use crate::cli::RunArgs;
use crate::conditions::{self, ConditionType};
use crate::controller::cache::{Cache, Names, SharedSecrets, list_config, slim};
use crate::controller::context::Context;
use crate::controller::kinds::Kinds;
use crate::controller::{collector, labels};
use crate::conversion;
use crate::metrics::Metrics;
use crate::server::Readiness;

/// A cache of `K` and the stream of objects its watch touched.
pub fn reflect<K>(api: Api<K>) -> (Store<K>, impl Stream<Item = Result<K, watcher::Error>>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let (store, writer) = reflector::store();
    let events = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    (store, events)
}

/// Claims in the watched namespace, or all.
/// The names of the Secrets of the claims' namespaces (`None`: all).
pub fn secret_names(client: &Client, namespace: Option<&str>) -> Names {
    Names::spawn(claims_api::<PartialObjectMeta<Secret>>(client, namespace)).within(namespace)
}

pub fn claims_api<K: Resource<Scope = k8s_openapi::NamespaceResourceScope>>(
    client: &Client,
    namespace: Option<&str>,
) -> Api<K>
where
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The claim controller until it stops, with its readiness and gauge.
pub fn run(
    client: Client,
    claim_resource: ApiResource,
    args: &RunArgs,
    operator_namespace: String,
    metrics: Metrics,
    readiness: Readiness,
    shared_secrets: SharedSecrets,
) -> impl Future<Output = ()> + use<> {
    let namespace = args.namespace.as_deref();
    let (compositions, composition_events) = reflect(Api::<Composition>::all(client.clone()));
    let (revisions, revision_events) = reflect(Api::<CompositionRevision>::all(client.clone()));
    let (policies, policy_events) = reflect(Api::<ClaimPolicy>::all(client.clone()));
    let (namespaces, namespace_events) =
        reflect(Api::<PartialObjectMeta<Namespace>>::all(client.clone()));
    // The claim cache holds every claim for the operator's lifetime: keep
    // what reconciles read, not the managed fields (about half of a claim
    // as the API server sends it) or kubectl's last-applied copy.
    let (claim_store, claim_writer) = reflector::store::<DatabaseClaim>();
    let claim_events = reflector::reflector(
        claim_writer,
        claim_events(&client, namespace, &claim_resource),
    )
    .applied_objects();

    let (wake_tx, wake_rx) = mpsc::unbounded_channel::<ObjectRef<DatabaseClaim>>();
    // Connection Secrets wake the claim that owns them, and are cached
    // whole: a pass compares their data without a GET.
    let secrets = {
        let wake = wake_tx.clone();
        Cache::spawn(
            claims_api::<Secret>(&client, namespace),
            list_config().labels(labels::CLAIM_NAME),
            // A provider's Secret (no owner reference, the claim's labels
            // copied) wakes the claim too: its details reach the claim's
            // Secret even when the Secret's event comes after the status
            // change that woke the claim before.
            move |s: &Secret| {
                owner_claim(s)
                    .or_else(|| labels::claim_of(s.labels()))
                    .is_none_or(|c| wake.send(c).is_ok())
            },
        )
    };
    let ctx = Arc::new(Context {
        claim_resource,
        secrets,
        shared_secrets,
        written: Default::default(),
        client: client.clone(),
        compositions: compositions.clone(),
        revisions: revisions.clone(),
        policies: policies.clone(),
        fresh_policies: Default::default(),
        claims: claim_store.clone(),
        namespaces: namespaces.clone(),
        kinds: Kinds::new(client.clone(), wake_tx),
        reporter: Reporter {
            controller: "dbclaim".into(),
            instance: std::env::var("POD_NAME").ok(),
        },
        operator_namespace,
        metrics: metrics.clone(),
        finalized: Default::default(),
        status_writes: Default::default(),
        rotations: Default::default(),
        counted_failures: Default::default(),
        counted_ready: Default::default(),
        drills: Default::default(),
        backoff: crate::backoff::Backoff::new(
            super::requeue::BACKOFF_MIN,
            super::requeue::BACKOFF_MAX,
        ),
    });

    // A composition change wakes the claims using it and those still
    // looking for one; a policy change wakes every claim; a namespace's
    // labels decide which policies govern its claims.
    let by_composition = wake(claim_store.clone(), composition_events, |comp, claim| {
        uses_or_lacks(claim, &comp.name_any())
    });
    // A revision made or renumbered moves the Automatic claims of its
    // composition (and a pinned one waiting for it).
    let by_revision = wake(claim_store.clone(), revision_events, |rev, claim| {
        rev.composition_name()
            .is_some_and(|c| uses_or_lacks(claim, c))
    });
    let by_policy = wake(claim_store.clone(), policy_events, |_, _| true);
    let by_namespace = wake(claim_store.clone(), namespace_events, |ns, claim| {
        claim.namespace().as_deref() == Some(ns.name_any().as_str())
    });
    let by_composed = stream::unfold(
        wake_rx,
        |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
    );

    // kube's Store::wait_until_ready keeps a single waker, so of several
    // concurrent waiters only the last one polled is woken: a reconcile
    // waiting for the composition cache could hang forever, and that claim
    // with it, when an operator starts (or takes over) with claims already
    // there. One task waits for the composition, policy and namespace
    // caches and opens this gate; reconciles and readiness wait on the gate.
    let (synced_tx, synced_rx) = tokio::sync::watch::channel(false);
    let open_gate = {
        let (compositions, policies) = (compositions.clone(), policies.clone());
        async move {
            let _ = compositions.wait_until_ready().await;
            let _ = revisions.wait_until_ready().await;
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
                super::reconcile(claim, ctx).await
            }
        }
    };
    // Composed objects whose claim is gone without its cleanup (finalizer
    // removed by hand, claim deleted while no operator ran): on the leader
    // only, like the claim controller, and only once the caches are in.
    let collect = {
        let (ctx, mut synced) = (ctx.clone(), synced_rx.clone());
        async move {
            let _ = synced.wait_for(|open| *open).await;
            collector::run(ctx, collector::Settings::default()).await;
        }
    };
    let claims = Controller::for_stream(claim_events, claim_store.clone())
        .with_config(controller::Config::default().concurrency(args.concurrency))
        .reconcile_on(by_composition)
        .reconcile_on(by_revision)
        .reconcile_on(by_policy)
        .reconcile_on(by_namespace)
        .reconcile_on(by_composed)
        .shutdown_on_signal()
        .run(gated_reconcile, super::error_policy, ctx)
        .for_each(|_| async {});

    let ready_api = claims_api(&client, namespace);
    let ready_watch = async move {
        open_gate.await;
        mark_ready_when_synced(synced_rx, ready_api, readiness).await;
    };
    let gauge = claims_gauge(claim_store, metrics);
    async move {
        tokio::select! {
            _ = claims => info!("claim controller stopped"),
            _ = async { futures::join!(async { ready_watch.await; gauge.await }, collect) } => {
                error!("background tasks ended")
            }
        }
    }
}

/// The claims to wake for each object a watch touched: those `affects`
/// says it governs.
fn wake<K, S>(
    store: Store<DatabaseClaim>,
    events: S,
    affects: impl Fn(&K, &DatabaseClaim) -> bool,
) -> impl Stream<Item = ObjectRef<DatabaseClaim>>
where
    S: Stream<Item = Result<K, watcher::Error>>,
{
    events
        .filter_map(|e| async move { e.ok() })
        .flat_map(move |obj| {
            stream::iter(
                store
                    .state()
                    .iter()
                    .filter(|c| affects(&obj, c))
                    .map(|c| ObjectRef::from(&**c))
                    .collect::<Vec<_>>(),
            )
        })
}

/// The claim that controls `secret` (its owner reference, as the
/// controller's `owns` mapped it).
fn owner_claim(secret: &Secret) -> Option<ObjectRef<DatabaseClaim>> {
    let ns = secret.namespace()?;
    secret
        .owner_references()
        .iter()
        .find(|o| o.kind == "DatabaseClaim")
        .map(|o| ObjectRef::new(&o.name).within(&ns))
}

/// What the claim cache does not need to keep.
/// The DatabaseClaim version to read and write: v1beta1, the storage
/// version, when the CRD serves it; else v1alpha1 (CRDs of an earlier
/// release, e.g. a Helm upgrade that left them as they were). Discovery
/// that fails falls back to v1alpha1, which every release serves.
pub async fn claim_resource(client: &Client) -> ApiResource {
    let stored = ApiResource::erase::<v1beta1::DatabaseClaim>(&());
    match kube::discovery::group(client, &stored.group).await {
        Ok(g) if g.versions().any(|v| v == stored.version) => stored,
        Ok(_) => ApiResource::erase::<DatabaseClaim>(&()),
        Err(e) => {
            warn!(error = %e, "cannot discover the DatabaseClaim versions: using v1alpha1");
            ApiResource::erase::<DatabaseClaim>(&())
        }
    }
}

/// The claims' watch in the version `resource` names, as v1alpha1 claims.
pub fn claim_events(
    client: &Client,
    namespace: Option<&str>,
    resource: &ApiResource,
) -> futures::stream::BoxStream<'static, Result<watcher::Event<DatabaseClaim>, watcher::Error>> {
    match resource.version.as_str() {
        "v1alpha1" => watcher(claims_api(client, namespace), list_config())
            .modify(slim)
            .boxed(),
        _ => stored_claims(client, namespace).boxed(),
    }
}

/// The claims' watch in their storage version (v1beta1), each claim
/// converted in process to the v1alpha1 type reconciles work on: the
/// operator's own watch costs the API server no conversion webhook call
/// per event, and keeps working while no webhook answers.
pub fn stored_claims(
    client: &Client,
    namespace: Option<&str>,
) -> impl Stream<Item = Result<watcher::Event<DatabaseClaim>, watcher::Error>> + Send + 'static {
    watcher(
        claims_api::<v1beta1::DatabaseClaim>(client, namespace),
        list_config(),
    )
    .modify(slim)
    .filter_map(|event| std::future::ready(event.map(served).transpose()))
}

/// A stored claim's event as the v1alpha1 type; a claim that does not
/// convert (the webhook would refuse it too) is left out, with a warning.
fn served(event: watcher::Event<v1beta1::DatabaseClaim>) -> Option<watcher::Event<DatabaseClaim>> {
    use watcher::Event::{Apply, Delete, Init, InitApply, InitDone};
    let convert = |c: v1beta1::DatabaseClaim| match conversion::typed(&c, conversion::V1ALPHA1) {
        Ok(claim) => Some(claim),
        Err(e) => {
            warn!(claim = %c.name_any(), namespace = ?c.namespace(), error = %e, "claim left out: cannot read it as v1alpha1");
            None
        }
    };
    Some(match event {
        Apply(c) => Apply(convert(c)?),
        Delete(c) => Delete(convert(c)?),
        InitApply(c) => InitApply(convert(c)?),
        Init => Init,
        InitDone => InitDone,
    })
}

fn uses_or_lacks(claim: &DatabaseClaim, composition: &str) -> bool {
    let status = claim.status.as_ref();
    let uses = status
        .and_then(|s| s.composition.as_ref())
        .is_some_and(|r| r.name == composition);
    let synced = status.is_some_and(|s| conditions::is_true(&s.conditions, ConditionType::Synced));
    uses || !synced
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
        let mut by_composition = std::collections::BTreeMap::<String, (u64, u64)>::new();
        for c in &state {
            let Some(status) = &c.status else { continue };
            let Some(composition) = &status.composition else {
                continue;
            };
            let entry = by_composition.entry(composition.name.clone()).or_default();
            entry.0 += u64::from(conditions::is_true(
                &status.conditions,
                ConditionType::Ready,
            ));
            entry.1 += 1;
        }
        metrics.set_ready_ratios(&by_composition);
    }
}
