//! Providers: controllers that reconcile managed resources against external systems.

pub mod aws;
pub mod managed;
pub mod password;
pub mod postgres;

/// What every provider controller needs from `dbclaim run`.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where connection Secrets go when a managed resource names no namespace.
    pub operator_namespace: String,
    /// How many objects of one kind are reconciled at the same time.
    pub concurrency: u16,
    /// This cluster's identity in ownership marks (`managed::ownership`).
    pub cluster_id: String,
    /// Shared with the claim controller: which Secrets exist, and the
    /// connection Secrets this process wrote (`Default`: none known).
    pub secrets: crate::controller::cache::SharedSecrets,
}
