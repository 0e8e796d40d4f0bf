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
pub mod rotate;
pub mod status;
pub mod validate;

use std::collections::HashMap;
use std::sync::Mutex;

use aws_sdk_rds::config::SharedHttpClient;
use kube::Client;

use crate::api::aws::{ProviderConfig, RDSInstance, RDSInstanceObservation};
use crate::api::common::ManagedSpec;
use crate::controller::cache::Cache;
use crate::metrics::Metrics;
use crate::provider::managed::{self, Managed};

// The names this provider writes are the contract's (src/contract.rs).
pub use crate::contract::EXTERNAL_NAME_ANNOTATION as EXTERNAL_NAME;
pub use crate::contract::aws::{
    FIELD_MANAGER as MANAGER, FINALIZER, GENERATED_NAME_ANNOTATION as GENERATED_NAME,
    INSTANCE_ANNOTATION, INSTANCE_LABEL, PASSWORD_PENDING_ANNOTATION as PASSWORD_PENDING,
};

impl Managed for RDSInstance {
    type Observation = RDSInstanceObservation;
    type Config = ProviderConfig;
    const CONTROLLER: &'static str = "rdsinstance";
    const REPORTER: &'static str = "dbclaim-aws-provider";
    const FINALIZER: &'static str = FINALIZER;
    const FIELD_MANAGER: &'static str = MANAGER;
    const SECRET_LABEL: &'static str = INSTANCE_LABEL;
    const SECRET_ANNOTATION: &'static str = INSTANCE_ANNOTATION;
    const PASSWORD_PENDING: Option<&'static str> = Some(PASSWORD_PENDING);

    fn managed(&self) -> &ManagedSpec {
        &self.spec.managed
    }
}

/// The provider's state, shared by its two controllers.
pub struct Aws {
    pub client: Client,
    pub metrics: Metrics,
    pub http: SharedHttpClient,
    /// (ProviderConfig, region) → (version of the config and its Secret, client).
    pub clients: Mutex<HashMap<(String, String), (String, rds::Rds)>>,
    /// This cluster's identity in ownership marks.
    pub cluster_id: String,
    /// The ProviderConfigs, cached by their watch.
    pub configs: Cache<ProviderConfig>,
}

/// Runs both controllers until the future is dropped, counting RDS API
/// calls in `dbclaim_provider_requests_total{provider="aws"}` and reconciles
/// in `dbclaim_reconcile_total{controller="rdsinstance"}` of `metrics`.
pub async fn run_with_metrics(client: Client, config: crate::provider::Config, metrics: Metrics) {
    let aws = Aws {
        configs: Cache::none(),
        client: client.clone(),
        metrics: metrics.clone(),
        http: rds::http_client(),
        clients: Mutex::default(),
        cluster_id: config.cluster_id.clone(),
    };
    managed::reconcile::run::<RDSInstance, Aws>(client, config, metrics, move |_, configs| Aws {
        configs,
        ..aws
    })
    .await
}
