//! dbclaim: self-service databases for Kubernetes.
//!
//! Pure parts (`engine`, `naming`, `selection`, `conditions`) do no I/O;
//! controllers and providers sit at the edges.

pub mod api;
pub mod conditions;
pub mod engine;
pub mod naming;
pub mod provider;
