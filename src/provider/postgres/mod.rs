//! The `postgres.dbclaim.io` provider: `Database`s (a database and its owner
//! role on a shared PostgreSQL server) and the `ProviderConfig`s that say how
//! to reach that server as an admin.
//!
//! Layout: [`sql`] builds statements and [`plan`] decides what to change
//! (both pure); [`server`] talks to PostgreSQL; [`database`] and [`config`]
//! are the two controllers; this module wires them up.

pub mod config;
pub mod database;
pub mod plan;
pub mod server;
pub mod sql;
mod tls;

#[cfg(test)]
mod pg_tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use crate::api::postgres::{Database, ProviderConfig};
use crate::metrics::Metrics;

/// Field manager of every write.
pub const MANAGER: &str = "dbclaim";
/// The Database's finalizer.
pub const FINALIZER: &str = "postgres.dbclaim.io/finalizer";
/// Label on connection Secrets: the (label-safe) name of their Database.
pub const DATABASE_LABEL: &str = "postgres.dbclaim.io/database";
/// Annotation on connection Secrets: the full name of their Database.
pub const DATABASE_ANNOTATION: &str = "postgres.dbclaim.io/database";

/// Backoff after failures: 5 s, doubling, at most 5 min.
const BACKOFF_MIN: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Shared by both controllers.
pub struct Context {
    pub client: Client,
    pub config: crate::provider::Config,
    pub pool: server::Pool,
    /// Who publishes events. A Recorder is made per event: this module
    /// publishes only on transitions, and the Recorder's own series cache
    /// (keyed without the message) would fold a new message into an old
    /// event and keep the old text.
    pub reporter: Reporter,
    pub backoff: Backoff,
    /// Database uid → resourceVersion of its connection Secret whose password
    /// is known to log in, so the login check runs once per process and
    /// Secret version rather than on every reconcile.
    pub verified: Mutex<HashMap<String, String>>,
    /// Every Database, to find two that claim the same database on a server.
    pub databases: Store<Database>,
    pub metrics: Metrics,
}

impl Context {
    /// Publishes an event on `obj`. A failure is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        self.publish(obj, vec![event(type_, reason, note)]).await;
    }

    /// Publishes the events of one pass, folded (`crate::events::fold_pass`).
    pub async fn publish<K: Resource<DynamicType = ()>>(&self, obj: &K, events: Vec<Event>) {
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        for ev in crate::events::fold_pass(events) {
            if let Err(e) = recorder.publish(&ev, &obj.object_ref(&())).await {
                tracing::warn!(error = %e, reason = ev.reason, "failed to publish event");
            }
        }
    }
}

/// An event of this provider's reconcilers.
pub fn event(type_: EventType, reason: &str, note: String) -> Event {
    Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: "Reconcile".to_string(),
        secondary: None,
    }
}

/// Per-object failure counts, for a requeue delay that grows with each
/// failure in a row and resets on success.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Records a failure of `key`; returns how long to wait before retrying.
    pub fn next(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_delay(*n)
    }

    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// The delay after `failures` failures in a row (1 → 5 s, 2 → 10 s, …, ≤ 5 min).
pub fn backoff_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BACKOFF_MIN.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

/// Runs both controllers until the future is dropped; requests are not
/// counted in any exported metric (see [`run_with_metrics`]).
pub async fn run(client: Client, config: crate::provider::Config) {
    run_with_metrics(client, config, Metrics::default()).await
}

/// Runs both controllers until the future is dropped, counting SQL sessions
/// in `dbclaim_provider_requests_total{provider="postgres"}` and reconciles
/// in `dbclaim_reconcile_total{controller="database"}` of `metrics`.
pub async fn run_with_metrics(client: Client, config: crate::provider::Config, metrics: Metrics) {
    let concurrency = controller::Config::default().concurrency(config.concurrency.max(1));
    let databases: Api<Database> = Api::all(client.clone());
    let configs: Api<ProviderConfig> = Api::all(client.clone());
    let secrets: Api<Secret> = Api::all(client.clone());

    let db_controller =
        Controller::new(databases, watcher::Config::default()).with_config(concurrency.clone());
    let db_store = db_controller.store();
    let pc_controller =
        Controller::new(configs.clone(), watcher::Config::default()).with_config(concurrency);
    let pc_store = pc_controller.store();

    let reporter = Reporter {
        controller: "dbclaim-postgres-provider".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        config,
        pool: server::Pool::default(),
        reporter,
        backoff: Backoff::default(),
        verified: Mutex::default(),
        databases: db_store.clone(),
        metrics,
    });

    // A ProviderConfig changed (spec, or its status after its Secret
    // changed): reconcile the Databases that use it.
    let users = db_store.clone();
    let by_config = move |pc: ProviderConfig| {
        let name = pc.name_any();
        users
            .state()
            .iter()
            .filter(|db| db.spec.provider_config_ref.name == name)
            .map(|db| ObjectRef::from_obj(db.as_ref()))
            .collect::<Vec<_>>()
    };
    // A connection Secret changed or went away: reconcile its Database.
    let by_secret = |s: Secret| {
        s.annotations()
            .get(DATABASE_ANNOTATION)
            .map(|name| ObjectRef::<Database>::new(name))
    };
    let db_run = db_controller
        .watches(configs, watcher::Config::default(), by_config)
        .watches(
            secrets,
            watcher::Config::default().labels(DATABASE_LABEL),
            by_secret,
        )
        .run(database::reconcile, database::error_policy, ctx.clone())
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(database = %obj.name, "reconciled"),
                Err(controller::Error::ReconcilerFailed(e, obj)) => {
                    tracing::warn!(database = %obj.name, error = %e, "reconcile failed")
                }
                // A requeue for an object deleted meanwhile.
                Err(controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(database = %obj.name, "gone before its requeue")
                }
                Err(e) => tracing::warn!(error = %e, "database controller"),
            }
        });

    // An admin Secret changed: check every ProviderConfig again (they are
    // few). Only metadata is watched; the Secret is read when reconciling.
    let referenced = pc_store.clone();
    let admin_secret_changed = watcher(
        Api::<PartialObjectMeta<Secret>>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects()
    .filter_map(move |meta| {
        let hit = meta.ok().is_some_and(|m| {
            let (ns, name) = (m.namespace().unwrap_or_default(), m.name_any());
            referenced.state().iter().any(|pc| {
                pc.spec.credentials_secret_ref.namespace == ns
                    && pc.spec.credentials_secret_ref.name == name
            })
        });
        futures::future::ready(hit.then_some(()))
    });
    let pc_run = pc_controller
        .reconcile_all_on(admin_secret_changed)
        .run(config::reconcile, config::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(provider_config = %obj.name, "reconciled"),
                Err(controller::Error::ReconcilerFailed(e, obj)) => {
                    tracing::warn!(provider_config = %obj.name, error = %e, "reconcile failed")
                }
                Err(controller::Error::ObjectNotFound(obj)) => {
                    tracing::debug!(provider_config = %obj.name, "gone before its requeue")
                }
                Err(e) => tracing::warn!(error = %e, "provider config controller"),
            }
        });

    futures::join!(db_run, pc_run);
}

/// Requeue after a success: the server is polled rarely for drift.
pub(crate) fn resync(after: Duration) -> Action {
    Action::requeue(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_delay(1), Duration::from_secs(5));
        assert_eq!(backoff_delay(2), Duration::from_secs(10));
        assert_eq!(backoff_delay(4), Duration::from_secs(40));
        assert_eq!(backoff_delay(7), Duration::from_secs(300));
        assert_eq!(backoff_delay(u32::MAX), Duration::from_secs(300));
        let b = Backoff::default();
        assert_eq!(b.next("a"), Duration::from_secs(5));
        assert_eq!(b.next("a"), Duration::from_secs(10));
        assert_eq!(b.next("b"), Duration::from_secs(5));
        b.reset("a");
        assert_eq!(b.next("a"), Duration::from_secs(5));
    }
}
