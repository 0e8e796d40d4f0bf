//! The reconcile of every managed kind: controller wiring, the wrapper
//! (span, finalizer, backoff, metrics), a pass (observe → Secret → create or
//! update → Secret → status → events) and deletion.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use tracing::Instrument;

use super::backoff;
use super::config::{self, Resolve};
use super::{
    Connection, Credentials, Deletion, DrillStep, Events, External, Managed, ProviderError, Retry,
    Synced, drill, secret, status,
};
use crate::api::common::DeletionPolicy;
use crate::backoff::Backoff;
use crate::conditions::{ReadyReason, SyncedReason};
use crate::controller::cache::{self, Cache, SharedSecrets, Written, written_key};
use crate::metrics::Metrics;

/// A failure of a pass: the provider's, or one of the scaffold's own steps.
#[derive(Debug, thiserror::Error)]
pub enum Error<E: ProviderError> {
    #[error(transparent)]
    Provider(E),
    #[error("cannot {action} Secret \"{namespace}/{name}\": {source}")]
    Secret {
        action: &'static str,
        namespace: String,
        name: String,
        source: kube::Error,
    },
    #[error(
        "Secret \"{namespace}/{name}\" {owner}: set spec.writeConnectionSecretToRef to another Secret, or delete that one"
    )]
    SecretTaken {
        namespace: String,
        name: String,
        owner: String,
    },
    #[error(
        "{why}: delete the key password from Secret {namespace}/{name} to have dbclaim generate one"
    )]
    Password {
        why: String,
        namespace: String,
        name: String,
    },
    #[error("cannot write the status: {0}")]
    Status(#[source] kube::Error),
    /// Deletion in progress: not a failure, but an error keeps the finalizer.
    #[error("{0}")]
    Waiting(String),
    /// Adding or removing the finalizer failed. Boxed as a trait object:
    /// `finalizer::Error<Error<E>>` would make this type recursive.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl<E: ProviderError> ProviderError for Error<E> {
    fn reason(&self) -> SyncedReason {
        match self {
            Error::Provider(e) => e.reason(),
            _ => SyncedReason::ReconcileError,
        }
    }

    fn retry(&self) -> Retry {
        match self {
            Error::Provider(e) => e.retry(),
            Error::SecretTaken { .. } | Error::Password { .. } => Retry::Slow,
            Error::Waiting(_) => Retry::Wait,
            Error::Secret { .. } | Error::Status(_) | Error::Finalizer(_) => Retry::Backoff,
        }
    }

    fn keeps_ready(&self) -> bool {
        match self {
            Error::Provider(e) => e.keeps_ready(),
            _ => true,
        }
    }
}

fn secret_error<E: ProviderError>(
    (namespace, name): &(String, String),
    (action, source): secret::Failure,
) -> Error<E> {
    Error::Secret {
        action,
        namespace: namespace.clone(),
        name: name.clone(),
        source,
    }
}

/// Where connection Secrets are read and written: the API server, or a map
/// in tests.
pub trait SecretStore: Send + Sync {
    fn read(
        &self,
        target: &(String, String),
    ) -> impl Future<Output = Result<Option<Secret>, secret::Failure>> + Send;
    /// Server-side applies `desired` as `manager`; returns the result.
    fn apply(
        &self,
        desired: &Secret,
        manager: &str,
    ) -> impl Future<Output = Result<Secret, secret::Failure>> + Send;
}

/// Applies `desired` unless `existing` is up to date: (Secret now, written).
async fn ensure<M: Managed, S: SecretStore>(
    secrets: &S,
    existing: Option<Secret>,
    desired: Secret,
) -> Result<(Option<Secret>, bool), secret::Failure> {
    if existing
        .as_ref()
        .is_some_and(|e| secret::up_to_date::<M>(e, &desired))
    {
        return Ok((existing, false));
    }
    let written = secrets.apply(&desired, M::FIELD_MANAGER).await?;
    tracing::info!(secret = %format!("{}/{}", written.namespace().unwrap_or_default(), written.name_any()), "connection secret written");
    Ok((Some(written), true))
}

/// One pass without its status write: observe, make the Secret hold the
/// password, create or update, bring the Secret up to date. Returns what
/// the provider decided and the Secret ("namespace/name") if it was written.
pub async fn sync<M, X, S>(
    obj: &M,
    ext: &X,
    secrets: &S,
    operator_namespace: &str,
    events: &mut Events,
) -> Result<(Synced<M::Observation>, Option<String>), Error<X::Error>>
where
    M: Managed,
    X: External<M>,
    S: SecretStore,
{
    let (synced, written, _) =
        sync_with_drill(obj, ext, secrets, operator_namespace, None, events).await?;
    Ok((synced, written))
}

/// What a pass did with the drill it was given: `None` when it got no
/// further than observe (nothing was sent).
pub type DrillOutcome<E> = Option<Result<DrillStep, E>>;

/// What [`sync_with_drill`] returns: the provider's decision, the Secret
/// written, the drill's outcome.
pub type SyncedWithDrill<O, E> = (Synced<O>, Option<String>, DrillOutcome<E>);

/// [`sync`], running `drill` right after observe (which checked the
/// resource is ours) when the resource exists.
pub async fn sync_with_drill<M, X, S>(
    obj: &M,
    ext: &X,
    secrets: &S,
    operator_namespace: &str,
    drill: Option<&crate::drill::Request>,
    events: &mut Events,
) -> Result<SyncedWithDrill<M::Observation, X::Error>, Error<X::Error>>
where
    M: Managed,
    X: External<M>,
    S: SecretStore,
{
    let observed = ext.observe(obj, events).await.map_err(Error::Provider)?;
    let drilled = match drill {
        Some(d) if observed.exists => Some(ext.drill(obj, &observed.seen, d, events).await),
        Some(_) => Some(Ok(DrillStep::Refused(format!(
            "{} does not exist yet: nothing to drill",
            X::describe(obj)
        )))),
        None => None,
    };
    let target = secret::target(obj, operator_namespace);
    let existing = secrets
        .read(&target)
        .await
        .map_err(|f| secret_error(&target, f))?;
    if let Some(owner) = existing.as_ref().and_then(|s| secret::foreign(s, obj)) {
        return Err(Error::SecretTaken {
            namespace: target.0,
            name: target.1,
            owner,
        });
    }
    let mut observed = observed;
    for (key, value) in X::connection_known(obj, existing.as_ref()) {
        observed.connection.entry(key).or_insert(value);
    }
    let (password, reset_due) = secret::password(obj, existing.as_ref());
    if (!observed.exists || reset_due)
        && let Some(why) = X::password_problem(obj, &password)
    {
        return Err(Error::Password {
            why,
            namespace: target.0,
            name: target.1,
        });
    }
    // The password is stored before any call that sends it: a crash after
    // the call finds it here. Marked pending while an update owes a reset.
    let pending = observed.exists && reset_due;
    let before = secret::desired(
        obj,
        &target,
        existing.as_ref(),
        &password,
        &observed.connection,
        pending,
    );
    let (current, written) = ensure::<M, S>(secrets, existing, before)
        .await
        .map_err(|f| secret_error(&target, f))?;
    let creds = Credentials {
        password,
        reset_due,
        secret: target.clone(),
        secret_version: current.as_ref().and_then(|s| s.resource_version()),
        existing: current.clone(),
    };
    let synced = if observed.exists {
        ext.update(obj, observed.seen, &creds, events).await
    } else {
        ext.create(obj, observed.seen, &creds, events).await
    }
    .map_err(Error::Provider)?;
    let mut connection: Connection = observed.connection;
    connection.extend(synced.connection.clone());
    let password = connection
        .remove("password")
        .unwrap_or_else(|| creds.password.clone());
    let after = secret::desired(
        obj,
        &target,
        current.as_ref(),
        &password,
        &connection,
        pending && !synced.password_sent,
    );
    let (_, again) = ensure::<M, S>(secrets, current, after)
        .await
        .map_err(|f| secret_error(&target, f))?;
    let (ns, name) = &target;
    Ok((
        synced,
        (written || again).then(|| format!("{ns}/{name}")),
        drilled,
    ))
}

/// The connection Secrets of a provider from the cache of its Secret
/// watch, read from the API server when the cache cannot answer safely:
/// which password is current is a safety decision (a wrong "absent" would
/// generate and set a new one), so a copy is used only when it is known to
/// be current (not older than this process's last write; the write's own
/// answer stands in until the watch delivers it), and absence only when
/// the metadata watch of all Secrets lacks the name and this process has
/// not written it lately. A Secret made before this process started is in
/// that watch's first list, so a wrong "absent" takes someone else writing
/// that very name within the watch's lag: the window the claim's own
/// Secrets accept. Whether the external database exists is the provider's
/// observe, never this.
pub struct CachedSecrets {
    pub client: Client,
    pub cache: Cache<Secret>,
    pub written: Written,
    pub shared: SharedSecrets,
}

impl SecretStore for CachedSecrets {
    async fn read(&self, target: &(String, String)) -> Result<Option<Secret>, secret::Failure> {
        let (ns, name) = target;
        let written = self.written.get(&written_key("secrets", ns, name));
        let cached = self.cache.lookup(Some(ns), name).await.flatten();
        if let Some(s) = self.shared.handoff.peek_newer(ns, name, cached)
            && cache::fresh(s.resource_version().as_deref(), written.as_deref())
        {
            return Ok(Some(s));
        }
        if written.is_none() && self.shared.names.exists(Some(ns), name).await == Some(false) {
            return Ok(None);
        }
        self.client.read(target).await
    }

    async fn apply(&self, desired: &Secret, manager: &str) -> Result<Secret, secret::Failure> {
        let written = self.client.apply(desired, manager).await?;
        cache::remember(&self.written, "secrets", &written);
        self.shared.handoff.keep(&written);
        Ok(written)
    }
}

/// Shared by a provider's two controllers.
pub struct Context<X> {
    pub client: Client,
    /// Its connection Secrets, cached.
    pub secrets: CachedSecrets,
    pub config: crate::provider::Config,
    pub metrics: Metrics,
    /// Events go through a Recorder made per pass: a shared one caches a
    /// series per object (memory, and an old message kept for a new event).
    pub reporter: Reporter,
    pub backoff: Backoff,
    /// Field manager of every write (the managed kind's).
    pub manager: &'static str,
    pub external: X,
    /// Drill records written lately, by object uid, which the cache may
    /// not show yet (a pass on a stale object must not run one twice).
    pub drills: crate::controller::context::Recent<crate::api::common::DrillStatus>,
    /// The resourceVersion of each object's last status write by this
    /// operator, by uid: a pass on an older copy is skipped ([`apply`]).
    pub status_written: crate::controller::context::Recent<String>,
}

impl<X> Context<X> {
    /// Publishes the events of one pass, folded (`crate::events::fold_pass`).
    pub async fn publish<K: Resource<DynamicType = ()>>(&self, obj: &K, events: Events) {
        if events.0.is_empty() {
            return;
        }
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        for ev in crate::events::fold_pass(events.0) {
            if let Err(e) = recorder.publish(&ev, &obj.object_ref(&())).await {
                tracing::warn!(error = %e, reason = ev.reason, "failed to publish event");
            }
        }
    }
}

fn backoff_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!("{}/{}", K::kind(&()), obj.name_any())
}

/// Runs the controller of `M` and of its ProviderConfigs until the future is
/// dropped. `external` is built once the object store exists (a provider
/// may look at its other objects) and gets the ProviderConfig cache.
pub async fn run<M, X>(
    client: Client,
    config: crate::provider::Config,
    metrics: Metrics,
    external: impl FnOnce(Store<M>, Cache<M::Config>) -> X,
) where
    M: Managed,
    X: External<M> + Resolve<M::Config>,
{
    let concurrency = controller::Config::default().concurrency(config.concurrency.max(1));
    let objects: Api<M> = Api::all(client.clone());
    let configs: Api<M::Config> = Api::all(client.clone());
    let secrets: Api<Secret> = Api::all(client.clone());

    let object_controller =
        Controller::new(objects, watcher::Config::default()).with_config(concurrency.clone());
    let store = object_controller.store();
    // The ProviderConfig and Secret watches fill caches and wake objects
    // from the same event, so a pass they start reads what woke it.
    let (wake, woken) = tokio::sync::mpsc::unbounded_channel::<ObjectRef<M>>();
    // A ProviderConfig changed (spec, or its status after its Secret
    // changed): reconcile the objects that use it.
    let configs = {
        let (store, wake) = (store.clone(), wake.clone());
        Cache::spawn(
            configs,
            watcher::Config::default(),
            move |pc: &M::Config| {
                let name = pc.name_any();
                store
                    .state()
                    .iter()
                    .filter(|o| o.managed().provider_config_ref.name == name)
                    .all(|o| wake.send(ObjectRef::from_obj(o.as_ref())).is_ok())
            },
        )
    };
    // A connection Secret changed or went away: reconcile its object.
    let secret_cache = Cache::spawn(
        secrets,
        watcher::Config::default().labels(M::SECRET_LABEL),
        move |s: &Secret| match s.annotations().get(M::SECRET_ANNOTATION) {
            Some(name) => wake.send(ObjectRef::<M>::new(name)).is_ok(),
            None => true,
        },
    );
    let ctx = Arc::new(Context {
        secrets: CachedSecrets {
            client: client.clone(),
            cache: secret_cache,
            written: Written::default(),
            shared: config.secrets.clone(),
        },
        client: client.clone(),
        config,
        metrics,
        reporter: Reporter {
            controller: M::REPORTER.into(),
            instance: std::env::var("POD_NAME").ok(),
        },
        backoff: backoff::backoff(),
        manager: M::FIELD_MANAGER,
        external: external(store.clone(), configs),
        drills: Default::default(),
        status_written: Default::default(),
    });
    let woken = futures::stream::unfold(
        woken,
        |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
    );
    let objects_run = object_controller
        .reconcile_on(woken)
        .run(reconcile::<M, X>, error_policy::<M, X>, ctx.clone())
        .for_each(|result| async move {
            log(&M::kind(&()), result, |e| matches!(e, Error::Waiting(_)))
        });
    futures::join!(objects_run, config::run::<M::Config, X>(client, ctx));
}

/// Logs one result of a controller of `kind`: failures as warnings, except
/// those `waiting` says are a wait.
pub fn log<K: Resource<DynamicType = ()>, E: std::fmt::Display>(
    kind: &str,
    result: Result<(ObjectRef<K>, Action), controller::Error<E, watcher::Error>>,
    waiting: impl Fn(&E) -> bool,
) {
    match result {
        Ok((obj, _)) => tracing::debug!(kind, name = %obj.name, "reconciled"),
        Err(controller::Error::ReconcilerFailed(e, obj)) if waiting(&e) => {
            tracing::debug!(kind, name = %obj.name, error = %e, "waiting")
        }
        Err(controller::Error::ReconcilerFailed(e, obj)) => {
            tracing::warn!(kind, name = %obj.name, error = %e, "reconcile failed")
        }
        // A requeue for an object deleted meanwhile.
        Err(controller::Error::ObjectNotFound(obj)) => {
            tracing::debug!(kind, name = %obj.name, "gone before its requeue")
        }
        Err(e) => tracing::warn!(kind, error = %e, "controller"),
    }
}

pub fn error_policy<M: Managed, X: External<M>>(
    obj: Arc<M>,
    error: &Error<X::Error>,
    ctx: Arc<Context<X>>,
) -> Action {
    Action::requeue(backoff::delay(
        &ctx.backoff,
        &backoff_key(obj.as_ref()),
        error.retry(),
    ))
}

pub async fn reconcile<M: Managed, X: External<M>>(
    obj: Arc<M>,
    ctx: Arc<Context<X>>,
) -> Result<Action, Error<X::Error>> {
    let span = tracing::info_span!("reconcile", kind = %M::kind(&()), name = %obj.name_any());
    async move {
        let started = Instant::now();
        let key = backoff_key(obj.as_ref());
        let api: Api<M> = Api::all(ctx.client.clone());
        let result = finalizer(&api, M::FINALIZER, obj, |event| async {
            match event {
                finalizer::Event::Apply(o) => apply(o.as_ref(), &ctx).await,
                finalizer::Event::Cleanup(o) => cleanup(o.as_ref(), &ctx).await,
            }
        })
        .await;
        let result = match result {
            Ok(action) => {
                ctx.backoff.reset(&key);
                Ok(action)
            }
            Err(finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e)) => Err(e),
            // The object this reconcile saw was stale (the finalizer was
            // already added, or the object already gone): the watch brings
            // the current one.
            Err(
                finalizer::Error::AddFinalizer(kube::Error::Api(s))
                | finalizer::Error::RemoveFinalizer(kube::Error::Api(s)),
            ) if matches!(s.code, 404 | 409 | 422) => {
                tracing::debug!(code = s.code, "finalizer patch on a stale object");
                Ok(Action::await_change())
            }
            Err(e) => Err(Error::Finalizer(Box::new(e))),
        };
        let ok = matches!(result, Ok(_) | Err(Error::Waiting(_)));
        ctx.metrics.reconciled(M::CONTROLLER, ok, started.elapsed());
        result
    }
    .instrument(span)
    .await
}

/// A pass on a live object: a drill due is recorded, then sync (which runs
/// it), then status (only when changed) and the pass's events, folded.
pub(super) async fn apply<M: Managed, X: External<M>>(
    obj: &M,
    ctx: &Context<X>,
) -> Result<Action, Error<X::Error>> {
    let uid = obj.meta().uid.clone().unwrap_or_default();
    if stale(obj, ctx.status_written.get(&uid).as_deref()) {
        // The watch has not brought this operator's last status write yet,
        // and that write's event brings the next pass: deciding from the
        // older status now would write the same again.
        tracing::debug!("older than the last status write: waiting for its watch event");
        return Ok(Action::await_change());
    }
    let mut events = Events::default();
    let mut old = status::current(obj);
    if let Some(written) = ctx.drills.get(&uid) {
        old.drill = Some(written);
    }
    let annotation = obj
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::contract::DRILL_ANNOTATION))
        .map(String::as_str);
    let start = drill::start(&old, annotation, Timestamp::now());
    if let Some(pending) = &start {
        // At most once: recorded before anything is sent, so a crash
        // after this point never sends it again.
        let mut recorded = old.clone();
        recorded.drill = Some(pending.record.clone());
        write_status(obj, ctx, &old, &recorded).await?;
        ctx.drills.insert(&uid, pending.record.clone());
        tracing::info!(drill = %pending.request, "drill started");
        events.normal(
            "DrillStarted",
            format!(
                "{} drill {} started",
                pending.request.type_, pending.request.id
            ),
        );
        old = recorded;
    }
    let outcome = sync_with_drill(
        obj,
        &ctx.external,
        &ctx.secrets,
        &ctx.config.operator_namespace,
        start.as_ref().map(|p| &p.request),
        &mut events,
    )
    .await;
    let generation = obj.meta().generation;
    let result = match outcome {
        Ok((mut s, written, drilled)) => {
            let record = drill::after_pass(
                old.drill.as_ref(),
                start.is_some(),
                drilled.map(|r| r.map_err(|e| e.to_string())),
                Ok(&s.ready),
                Timestamp::now(),
            );
            if let Some(ready) = drill::going_down(record.as_ref(), start.is_some()) {
                // Sent now: the resource is going down, whatever observe saw before.
                s.ready = ready;
                s.requeue = s.requeue.min(backoff::WAIT);
            }
            let mut new = status::next(
                &old,
                generation,
                Some(s.observation),
                &[s.ready, s.synced],
                Timestamp::now(),
            );
            drill::finish_events(old.drill.as_ref(), record.as_ref(), &mut events);
            if let Some(r) = record {
                ctx.drills.insert(&uid, r.clone());
                new.drill = Some(r);
            }
            let write = write_status(obj, ctx, &old, &new).await;
            if let Some((type_, reason, note)) = status::ready_event(&old, &new) {
                events.push(type_, &reason, note);
            }
            // Last, as the folded event's reason: what the object is for.
            if let Some(secret) = written {
                let note = format!("wrote connection Secret {secret}");
                events.normal("ConnectionSecretWritten", note);
            }
            if let Some((reason, note)) = status::synced_event(&old, &new) {
                events.warning(&reason, note);
            }
            write.map(|()| Action::requeue(s.requeue))
        }
        Err(e) => {
            let conds = status::failure(&old, &X::describe(obj), &e);
            let mut new = status::next(&old, generation, None, &conds, Timestamp::now());
            let message = e.to_string();
            let record = drill::after_pass(
                old.drill.as_ref(),
                start.is_some(),
                None,
                Err(&message),
                Timestamp::now(),
            );
            drill::finish_events(old.drill.as_ref(), record.as_ref(), &mut events);
            if let Some(r) = record {
                ctx.drills.insert(&uid, r.clone());
                new.drill = Some(r);
            }
            if let Err(status_err) = write_status(obj, ctx, &old, &new).await {
                tracing::warn!(error = %status_err, "cannot report the failure in status");
            }
            if status::synced_transitioned(&old, &new) {
                events.warning(e.reason().as_str(), e.to_string());
            }
            Err(e)
        }
    };
    if routine::<M, X>(obj, &events) {
        events.0.clear();
    }
    ctx.publish(obj, events).await;
    result
}

/// Whether the events of a pass only say that an object a claim composed
/// was created, wrote its Secret and is ready (or still creating): the
/// claim's events say that already ("created", its Secret written, "the
/// database is ready"), so posting them on the object too would double the
/// event writes of every claim. Warnings, and any other step (an update,
/// a password reset, a rotation, a drill), keep the pass's events.
pub fn routine<M: Managed, X: External<M>>(obj: &M, events: &Events) -> bool {
    let composed = obj.labels().contains_key(crate::contract::LABEL_CLAIM_NAME);
    let ready = [ReadyReason::Available, ReadyReason::Creating].map(ReadyReason::as_str);
    composed
        && events.0.iter().all(|e| {
            e.type_ == kube::runtime::events::EventType::Normal
                && (e.reason == "ConnectionSecretWritten"
                    || ready.contains(&e.reason.as_str())
                    || X::CREATION_EVENTS.contains(&e.reason.as_str()))
        })
}

/// Deletion: `Orphan` leaves the resource and its Secret; `Delete` deletes
/// it, waits until it is gone, then deletes the Secret. Until then the
/// finalizer stays and status says what deletion waits for.
async fn cleanup<M: Managed, X: External<M>>(
    obj: &M,
    ctx: &Context<X>,
) -> Result<Action, Error<X::Error>> {
    let mut events = Events::default();
    if obj.managed().deletion_policy == DeletionPolicy::Orphan {
        tracing::info!("deletionPolicy Orphan: leaving the external resource and its Secret");
        ctx.external.release(obj, &mut events);
        ctx.publish(obj, events).await;
        return Ok(Action::await_change());
    }
    let result = match deleted(ctx.external.delete(obj, &mut events).await) {
        Ok(()) => {
            let target = secret::target(obj, &ctx.config.operator_namespace);
            secret::delete(&ctx.client, obj, &target)
                .await
                .map(|()| Action::await_change())
                .map_err(|f| secret_error(&target, f))
        }
        Err(Error::Waiting(message)) => {
            deletion_status(obj, ctx, Ok(&message)).await?;
            Err(Error::Waiting(message))
        }
        Err(e) => Err(e),
    };
    if let Err(e) = &result
        && !matches!(e, Error::Waiting(_))
        && deletion_status(obj, ctx, Err((e.reason(), e.to_string()))).await?
    {
        events.warning("CannotDelete", format!("cannot delete: {e}"));
    }
    ctx.publish(obj, events).await;
    result
}

/// Whether the finalizer may go: only once the resource is gone. A deletion
/// in progress is an error, as kube's finalizer removes itself on success.
#[allow(clippy::result_large_err)] // the error every pass returns anyway
pub fn deleted<E: ProviderError>(step: Result<Deletion, E>) -> Result<(), Error<E>> {
    match step {
        Ok(Deletion::Gone) => Ok(()),
        Ok(Deletion::Waiting(message)) => Err(Error::Waiting(message)),
        Err(e) => Err(Error::Provider(e)),
    }
}

/// Writes the deletion conditions; returns whether Synced changed.
async fn deletion_status<M: Managed, X: External<M>>(
    obj: &M,
    ctx: &Context<X>,
    waiting: Result<&str, (SyncedReason, String)>,
) -> Result<bool, Error<X::Error>> {
    let old = status::current(obj);
    let conds = status::deleting(&X::describe(obj), waiting);
    let new = status::next(&old, obj.meta().generation, None, &conds, Timestamp::now());
    write_status(obj, ctx, &old, &new).await?;
    Ok(status::synced_transitioned(&old, &new))
}

/// Writes `new` unless it equals `old`.
async fn write_status<M: Managed, X>(
    obj: &M,
    ctx: &Context<X>,
    old: &crate::api::common::ManagedStatus<M::Observation>,
    new: &crate::api::common::ManagedStatus<M::Observation>,
) -> Result<(), Error<X::Error>>
where
    X: External<M>,
{
    if old == new {
        return Ok(());
    }
    let written = status::write(&ctx.client, obj, M::FIELD_MANAGER, new)
        .await
        .map_err(Error::<X::Error>::Status)?;
    if let (Some(uid), Some(rv)) = (obj.meta().uid.as_deref(), written) {
        ctx.status_written.insert(uid, rv);
    }
    Ok(())
}

/// Whether `obj` is older than this operator's last status write of it
/// (`written`, its resourceVersion).
pub fn stale<M: Resource>(obj: &M, written: Option<&str>) -> bool {
    written.is_some() && !cache::fresh(obj.meta().resource_version.as_deref(), written)
}
