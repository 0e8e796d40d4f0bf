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
use std::sync::Mutex;

use aws_sdk_rds::config::SharedHttpClient;
use kube::Client;

use crate::api::aws::{ProviderConfig, RDSInstance, RDSInstanceObservation};
use crate::api::common::{ManagedSpec, ManagedStatus};
use crate::metrics::Metrics;
use crate::provider::managed::{self, Managed};

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

impl Managed for RDSInstance {
    type Observation = RDSInstanceObservation;
    type Config = ProviderConfig;
    const KIND: &'static str = "RDSInstance";
    const CONTROLLER: &'static str = "rdsinstance";
    const REPORTER: &'static str = "dbclaim-aws-provider";
    const FINALIZER: &'static str = FINALIZER;
    const FIELD_MANAGER: &'static str = MANAGER;
    const SECRET_LABEL: &'static str = INSTANCE_LABEL;
    const SECRET_ANNOTATION: &'static str = INSTANCE_ANNOTATION;
    const PASSWORD_PENDING: Option<&'static str> = Some(PASSWORD_PENDING);
    const ADOPTS_UNMARKED_SECRETS: bool = true;

    fn managed(&self) -> &ManagedSpec {
        &self.spec.managed
    }

    fn managed_status(&self) -> Option<&ManagedStatus<RDSInstanceObservation>> {
        self.status.as_ref()
    }
}

/// The provider's state, shared by its two controllers.
pub struct Aws {
    pub client: Client,
    pub metrics: Metrics,
    pub http: SharedHttpClient,
    /// (ProviderConfig, region) → (version of the config and its Secret, client).
    pub clients: Mutex<HashMap<(String, String), (String, rds::Rds)>>,
}

/// Runs both controllers until the future is dropped, counting RDS API
/// calls in `dbclaim_provider_requests_total{provider="aws"}` and reconciles
/// in `dbclaim_reconcile_total{controller="rdsinstance"}` of `metrics`.
pub async fn run_with_metrics(client: Client, config: crate::provider::Config, metrics: Metrics) {
    let aws = Aws {
        client: client.clone(),
        metrics: metrics.clone(),
        http: rds::http_client(),
        clients: Mutex::default(),
    };
    managed::reconcile::run::<RDSInstance, Aws>(client, config, metrics, move |_| aws).await
}
