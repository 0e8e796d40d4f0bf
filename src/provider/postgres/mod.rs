//! The `postgres.dbclaim.io` provider: `Database`s (a database and its owner
//! role on a shared PostgreSQL server) and the `ProviderConfig`s that say how
//! to reach that server as an admin.
//!
//! Layout: [`sql`] builds statements and [`plan`] decides what to change
//! (both pure); [`server`] talks to PostgreSQL; [`database`] holds the verbs
//! of the shared managed reconciler (`crate::provider::managed`) and
//! [`config`] resolves and checks ProviderConfigs.

pub mod config;
pub mod database;
pub mod logins;
pub mod plan;
pub mod rotate;
pub mod server;
pub mod sql;
mod tls;

#[cfg(test)]
mod pg_tests;

use std::collections::HashMap;
use std::sync::Mutex;

use kube::Client;
use kube::runtime::reflector::Store;

use crate::api::common::ManagedSpec;
use crate::api::postgres::{Database, DatabaseObservation, ProviderConfig};
use crate::controller::cache::Cache;
use crate::metrics::Metrics;
use crate::provider::managed::{self, Managed};

// The names this provider writes are the contract's (src/contract.rs).
pub use crate::contract::postgres::{
    DATABASE_ANNOTATION, DATABASE_LABEL, FIELD_MANAGER as MANAGER, FINALIZER,
};

impl Managed for Database {
    type Observation = DatabaseObservation;
    type Config = ProviderConfig;
    const CONTROLLER: &'static str = "database";
    const REPORTER: &'static str = "dbclaim-postgres-provider";
    const FINALIZER: &'static str = FINALIZER;
    const FIELD_MANAGER: &'static str = MANAGER;
    const SECRET_LABEL: &'static str = DATABASE_LABEL;
    const SECRET_ANNOTATION: &'static str = DATABASE_ANNOTATION;

    fn managed(&self) -> &ManagedSpec {
        &self.spec.managed
    }
}

/// The provider's state, shared by its two controllers.
pub struct Postgres {
    pub client: Client,
    pub pool: server::Pool,
    /// Database uid → resourceVersion of its connection Secret whose password
    /// is known to log in, so the login check runs once per process and
    /// Secret version rather than on every reconcile.
    pub verified: Mutex<HashMap<String, String>>,
    /// Every Database, to find two that claim the same database on a server.
    pub databases: Store<Database>,
    pub metrics: Metrics,
    /// This cluster's identity in ownership marks.
    pub cluster_id: String,
    /// Where connection Secrets go by default (the upgrade check reads one).
    pub operator_namespace: String,
    /// The ProviderConfigs, cached by their watch.
    pub configs: Cache<ProviderConfig>,
    /// ProviderConfig name → (its resourceVersion, what it resolved to with
    /// its admin Secret), so a pass reads neither again.
    pub resolved: Mutex<HashMap<String, (String, config::Resolved)>>,
}

/// Runs both controllers until the future is dropped; SQL sessions are not
/// counted in any exported metric (see [`run_with_metrics`]).
pub async fn run(client: Client, config: crate::provider::Config) {
    run_with_metrics(client, config, Metrics::default()).await
}

/// Runs both controllers until the future is dropped, counting SQL sessions
/// in `dbclaim_provider_requests_total{provider="postgres"}` and reconciles
/// in `dbclaim_reconcile_total{controller="database"}` of `metrics`.
pub async fn run_with_metrics(client: Client, config: crate::provider::Config, metrics: Metrics) {
    let c = client.clone();
    let m = metrics.clone();
    let (cluster_id, operator_namespace) =
        (config.cluster_id.clone(), config.operator_namespace.clone());
    managed::reconcile::run::<Database, Postgres>(
        client,
        config,
        metrics,
        move |databases, configs| Postgres {
            configs,
            resolved: Mutex::default(),
            client: c,
            pool: server::Pool::default(),
            verified: Mutex::default(),
            databases,
            metrics: m,
            cluster_id,
            operator_namespace,
        },
    )
    .await
}
