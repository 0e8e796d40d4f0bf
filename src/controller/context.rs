//! What every claim reconcile shares.

use kube::Client;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use crate::api::{ClaimPolicy, Composition};
use crate::metrics::Metrics;

use super::kinds::Kinds;

pub struct Context {
    pub client: Client,
    pub compositions: Store<Composition>,
    /// Whether compositions and policies have been listed once.
    pub synced: crate::synced::Synced,
    pub policies: Store<ClaimPolicy>,
    pub kinds: Kinds,
    pub recorder: Recorder,
    /// Where managed resources' connection Secrets live by default.
    pub operator_namespace: String,
    pub metrics: Metrics,
}
