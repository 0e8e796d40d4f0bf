//! The `aws.dbclaim.io` provider: `RDSInstance`s reconciled through the RDS
//! API (aws-sdk-rds), and the `ProviderConfig`s that say how to reach AWS.
//!
//! Layout: the pure parts — [`identifier`] (DB instance identifiers),
//! [`password`], [`status`] (DBInstanceStatus → conditions and polling),
//! [`errors`] (AWS failures → retry and wording), [`diff`] (drift →
//! ModifyDBInstance and tag changes, PendingModifiedValues overlaid),
//! [`validate`] (what AWS refuses but emulators accept) and [`credentials`]
//! (shared-credentials profiles) — are unit-tested without AWS; [`rds`] is
//! the only module that touches SDK types; [`instance`] and [`config`] are the
//! two controllers; this module wires them up.

pub mod config;
pub mod credentials;
pub mod diff;
pub mod errors;
pub mod identifier;
pub mod instance;
pub mod password;
pub mod rds;
pub mod status;
pub mod validate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_rds::config::SharedHttpClient;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use rand::RngExt;

use crate::api::aws::{ProviderConfig, RDSInstance};
use crate::metrics::Metrics;

/// Field manager of every write. Not the claim controller's `dbclaim`: the
/// claim controller server-side-applies RDSInstances, and an annotation
/// written under its manager would be dropped by its next apply.
pub const MANAGER: &str = "dbclaim-aws-provider";
/// The RDSInstance's finalizer.
pub const FINALIZER: &str = "aws.dbclaim.io/finalizer";
/// The DB instance identifier (contract): set before the first create;
/// setting it on a new object adopts an existing instance.
pub const EXTERNAL_NAME: &str = "dbclaim.io/external-name";
/// The identifier dbclaim derived itself. An external name equal to it was
/// chosen by dbclaim, not by a person, so an instance of that name that
/// dbclaim did not create is a conflict, not an adoption.
pub const GENERATED_NAME: &str = "aws.dbclaim.io/generated-external-name";
/// Label on connection Secrets: the (label-safe) name of their RDSInstance.
pub const INSTANCE_LABEL: &str = "aws.dbclaim.io/rdsinstance";
/// Annotation on connection Secrets: the full name of their RDSInstance.
pub const INSTANCE_ANNOTATION: &str = "aws.dbclaim.io/rdsinstance";
/// Annotation on a connection Secret whose password is not yet the
/// instance's: a master password reset is due (written before the reset, so
/// a crash between the two repeats the reset instead of losing the password).
pub const PASSWORD_PENDING: &str = "aws.dbclaim.io/password-reset-pending";

/// Backoff after transient failures: 5 s doubling up to 2 min, jittered.
const BACKOFF_MIN: Duration = Duration::from_secs(5);
const BACKOFF_MAX: Duration = Duration::from_secs(120);

/// Shared by both controllers.
pub struct Context {
    pub client: Client,
    pub config: crate::provider::Config,
    pub recorder: Recorder,
    pub metrics: Metrics,
    pub http: SharedHttpClient,
    /// (ProviderConfig, region) → (version of the config and its Secret, client).
    pub clients: Mutex<HashMap<(String, String), (String, rds::Rds)>>,
    pub backoff: Backoff,
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
        let ev = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: "Reconcile".to_string(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "failed to publish event");
        }
    }
}

/// Per-object failure counts, for a jittered delay that grows with each
/// transient failure in a row and resets on success.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Records a failure of `key`; returns how long to wait before retrying.
    pub fn next(&self, key: &str) -> Duration {
        let n = {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let n = failures.entry(key.to_string()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        jitter(backoff_ceiling(n), rand::rng().random::<f64>())
    }

    pub fn reset(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// The delay ceiling after `failures` failures in a row (1 → 5 s, 2 → 10 s,
/// …, at most 2 min).
pub fn backoff_ceiling(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BACKOFF_MIN.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

/// "Equal jitter": half the ceiling plus a random part of the other half,
/// so retries of many objects spread out but never come sooner than half.
/// `r` is uniform in [0, 1).
pub fn jitter(ceiling: Duration, r: f64) -> Duration {
    let half = ceiling / 2;
    half + half.mul_f64(r.clamp(0.0, 1.0))
}

/// Runs both controllers until the future is dropped; requests are not
/// counted in any exported metric (see [`run_with_metrics`]).
pub async fn run(client: Client, config: crate::provider::Config) {
    run_with_metrics(client, config, Metrics::default()).await
}

/// Runs both controllers until the future is dropped, counting RDS API
/// calls in `dbclaim_provider_requests_total{provider="aws"}` and reconciles
/// in `dbclaim_reconcile_total{controller="rdsinstance"}` of `metrics`.
pub async fn run_with_metrics(client: Client, config: crate::provider::Config, metrics: Metrics) {
    let concurrency = controller::Config::default().concurrency(config.concurrency.max(1));
    let instances: Api<RDSInstance> = Api::all(client.clone());
    let configs: Api<ProviderConfig> = Api::all(client.clone());
    let secrets: Api<Secret> = Api::all(client.clone());

    let instance_controller =
        Controller::new(instances, watcher::Config::default()).with_config(concurrency.clone());
    let instance_store = instance_controller.store();
    let pc_controller =
        Controller::new(configs.clone(), watcher::Config::default()).with_config(concurrency);
    let pc_store = pc_controller.store();

    let reporter = Reporter {
        controller: "dbclaim-aws-provider".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        config,
        recorder: Recorder::new(client.clone(), reporter),
        metrics,
        http: rds::http_client(),
        clients: Mutex::default(),
        backoff: Backoff::default(),
    });

    // A ProviderConfig changed: reconcile the RDSInstances that use it.
    let users = instance_store.clone();
    let by_config = move |pc: ProviderConfig| {
        let name = pc.name_any();
        users
            .state()
            .iter()
            .filter(|i| i.spec.provider_config_ref.name == name)
            .map(|i| ObjectRef::from_obj(i.as_ref()))
            .collect::<Vec<_>>()
    };
    // A connection Secret changed or went away: reconcile its RDSInstance.
    let by_secret = |s: Secret| {
        s.annotations()
            .get(INSTANCE_ANNOTATION)
            .map(|name| ObjectRef::<RDSInstance>::new(name))
    };
    let instance_run = instance_controller
        .watches(configs, watcher::Config::default(), by_config)
        .watches(
            secrets,
            watcher::Config::default().labels(INSTANCE_LABEL),
            by_secret,
        )
        .run(instance::reconcile, instance::error_policy, ctx.clone())
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(rdsinstance = %obj.name, "reconciled"),
                Err(controller::Error::ReconcilerFailed(e, obj)) if e.quiet() => {
                    tracing::debug!(rdsinstance = %obj.name, error = %e, "waiting")
                }
                Err(controller::Error::ReconcilerFailed(e, obj)) => {
                    tracing::warn!(rdsinstance = %obj.name, error = %e, "reconcile failed")
                }
                Err(e) => tracing::warn!(error = %e, "rdsinstance controller"),
            }
        });

    // A credentials Secret changed: check every ProviderConfig again (they
    // are few). Only metadata is watched; the Secret is read when reconciling.
    let referenced = pc_store.clone();
    let credentials_changed = watcher(
        Api::<PartialObjectMeta<Secret>>::all(client),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects()
    .filter_map(move |meta| {
        let hit = meta.ok().is_some_and(|m| {
            let (ns, name) = (m.namespace().unwrap_or_default(), m.name_any());
            referenced.state().iter().any(|pc| {
                pc.spec
                    .credentials
                    .secret_ref
                    .as_ref()
                    .is_some_and(|r| r.namespace == ns && r.name == name)
            })
        });
        futures::future::ready(hit.then_some(()))
    });
    let pc_run = pc_controller
        .reconcile_all_on(credentials_changed)
        .run(config::reconcile, config::error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(provider_config = %obj.name, "reconciled"),
                Err(controller::Error::ReconcilerFailed(e, obj)) => {
                    tracing::warn!(provider_config = %obj.name, error = %e, "reconcile failed")
                }
                Err(e) => tracing::warn!(error = %e, "aws provider config controller"),
            }
        });

    futures::join!(instance_run, pc_run);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        assert_eq!(backoff_ceiling(1), Duration::from_secs(5));
        assert_eq!(backoff_ceiling(2), Duration::from_secs(10));
        assert_eq!(backoff_ceiling(4), Duration::from_secs(40));
        assert_eq!(backoff_ceiling(6), Duration::from_secs(120));
        assert_eq!(backoff_ceiling(u32::MAX), Duration::from_secs(120));
        let c = Duration::from_secs(10);
        assert_eq!(jitter(c, 0.0), Duration::from_secs(5));
        assert_eq!(jitter(c, 0.5), Duration::from_millis(7500));
        assert!(jitter(c, 0.999) < c);
        assert_eq!(jitter(c, 7.0), c, "clamped");
        let b = Backoff::default();
        for n in 1..=8 {
            let d = b.next("a");
            let ceiling = backoff_ceiling(n);
            assert!(d >= ceiling / 2 && d <= ceiling, "{n}: {d:?}");
        }
        b.reset("a");
        assert!(b.next("a") <= Duration::from_secs(5));
        // many objects failing at once do not retry in lockstep
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|i| b.next(&format!("k{i}"))).collect();
        assert!(delays.len() > 1);
    }
}
