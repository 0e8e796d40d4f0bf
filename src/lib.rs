//! dbclaim: self-service databases for Kubernetes.
//!
//! Pure parts (`engine`, `naming`, `selection`, `replacement`, `policy`,
//! `conditions`, `rotation`) do
//! no I/O; the controller, providers and servers sit at the edges.

pub mod api;
pub mod backoff;
pub mod cli;
pub mod compat;
pub mod conditions;
pub mod contract;
pub mod controller;
pub mod conversion;
pub mod crdcheck;
pub mod drill;
pub mod engine;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod migration;
pub mod naming;
pub mod operator;
pub mod policy;
pub mod preview;
pub mod provider;
pub mod replacement;
pub mod revision;
pub mod rotation;
pub mod selection;
pub mod server;
#[cfg(test)]
pub mod testing;
pub mod trace;
pub mod webhook;
