//! The managed-resource reconciler every provider shares, after Crossplane's
//! managed reconciler: a provider writes its idempotent verbs ([`External`]:
//! observe, create, update, delete) and the check of its ProviderConfig
//! ([`config::Resolve`]); this scaffold owns the rest, once: controller
//! wiring and watches, the finalizer, retries with jittered backoff, the
//! connection Secret, status writes and one folded event per pass.
//!
//! Whose an external object is is decided once, in [`ownership`]: the
//! providers read their marks (RDS tag, PostgreSQL comment) and act only on
//! what is ours.
//!
//! A pass: observe → the connection Secret holds the password (written
//! before any call that sends it) → create or update → the Secret with the
//! final details → status, written only when it changed → events. Deletion:
//! `Orphan` lets go; `Delete` calls `delete` until the resource is gone,
//! then deletes the Secret. A new provider is one `impl External` (plus its
//! pure code) and one call of [`reconcile::run`].

pub mod backoff;
pub mod config;
pub mod drill;
pub mod ownership;
pub mod reconcile;
pub mod secret;
pub mod status;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use kube::Resource;
use kube::core::object::HasStatus;
use kube::runtime::events::{Event, EventType};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::common::{ManagedSpec, ManagedStatus};
use crate::conditions::{Cond, SyncedReason};

/// What the scaffold needs from a managed kind (RDSInstance, Database, …).
/// The names it writes are here, one place per provider.
pub trait Managed:
    Resource<DynamicType = ()>
    + HasStatus<Status = ManagedStatus<Self::Observation>>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    type Observation: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync;
    /// The provider's ProviderConfig kind.
    type Config: config::ConfigKind;
    /// The `controller` label of `dbclaim_reconcile_total`.
    const CONTROLLER: &'static str;
    /// The reporting controller of events.
    const REPORTER: &'static str;
    const FINALIZER: &'static str;
    /// Field manager of every write of this provider.
    const FIELD_MANAGER: &'static str;
    /// Label on connection Secrets: the (label-safe) name of their object.
    const SECRET_LABEL: &'static str;
    /// Annotation on connection Secrets: the full name of their object.
    const SECRET_ANNOTATION: &'static str;
    /// Annotation on a connection Secret whose password the external
    /// resource may not have yet, for providers that cannot check it by
    /// logging in: written before the reset is sent, so a crash repeats it.
    const PASSWORD_PENDING: Option<&'static str> = None;

    fn managed(&self) -> &ManagedSpec;
}

/// How the scaffold reacts to a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Transient: retry with jittered exponential backoff.
    Backoff,
    /// Busy: look again after [`backoff::WAIT`].
    Wait,
    /// A person must change something: report, retry after [`backoff::SLOW`]
    /// (changes to the object or its ProviderConfig wake it anyway).
    Slow,
}

/// What a provider's errors tell the scaffold.
pub trait ProviderError: std::error::Error + Send + Sync + 'static {
    /// The Synced reason the failure reports.
    fn reason(&self) -> SyncedReason;
    fn retry(&self) -> Retry;
    /// Whether Ready stays as it was: the failure says nothing about the
    /// resource itself (a step failed on a reachable system, an API outage
    /// the provider cannot tell apart). Otherwise a resource seen before
    /// turns Unavailable.
    fn keeps_ready(&self) -> bool;
}

/// Connection details (key → value), without the password.
pub type Connection = BTreeMap<String, String>;

/// What [`External::observe`] found.
pub struct Observation<S> {
    /// Whether the external resource exists: `create` is called if not,
    /// `update` if it does.
    pub exists: bool,
    /// Connection details known before the call (host, port, username, …).
    pub connection: Connection,
    /// What the following verb needs (a client, the external state).
    pub seen: S,
}

/// The password as the scaffold made sure the connection Secret holds it.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub password: String,
    /// The external resource may not have this password: it was generated
    /// now, or a reset was interrupted. A provider that sends it on update
    /// says so in [`Synced::password_sent`].
    pub reset_due: bool,
    /// The Secret that holds it: (namespace, name).
    pub secret: (String, String),
    /// The Secret's resourceVersion after it was made current.
    pub secret_version: Option<String>,
    /// The Secret as it is before the call (a provider that rotates keeps
    /// its state there).
    pub existing: Option<k8s_openapi::api::core::v1::Secret>,
}

/// What a successful create or update decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Synced<O> {
    pub observation: O,
    pub ready: Cond,
    pub synced: Cond,
    pub requeue: Duration,
    /// Connection details after the call, over those of observe. A
    /// `password` here replaces the Secret's: a provider that rotated
    /// returns the new `username` and `password` together.
    pub connection: Connection,
    /// The password of [`Credentials`] was sent (a due reset is done).
    pub password_sent: bool,
}

/// What a provider did with a drill (`dbclaim.io/drill` on its object).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrillStep {
    /// Done now (sessions terminated): the message says what happened.
    Done(String),
    /// Sent; the resource goes unavailable and the drill is done when it
    /// is Ready again (a reboot with failover).
    Started(String),
    /// Nothing sent: the message says why (a single-AZ instance).
    Refused(String),
}

/// Where a deletion stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// Nothing left outside: the Secret goes, then the finalizer.
    Gone,
    /// In progress; the message says what it waits for.
    Waiting(String),
}

/// The events of one pass, published folded (`crate::events::fold_pass`).
#[derive(Default)]
pub struct Events(pub Vec<Event>);

impl Events {
    pub fn normal(&mut self, reason: &str, note: impl Into<String>) {
        self.push(EventType::Normal, reason, note.into());
    }

    pub fn warning(&mut self, reason: &str, note: impl Into<String>) {
        self.push(EventType::Warning, reason, note.into());
    }

    pub fn push(&mut self, type_: EventType, reason: &str, note: String) {
        self.0
            .push(crate::events::event(type_, reason, "Reconcile", note));
    }
}

/// A provider's verbs on its managed kind (Crossplane's ExternalClient). All
/// are idempotent: a pass may be cut anywhere and run again.
pub trait External<M: Managed>: Send + Sync + 'static {
    type Error: ProviderError;
    /// What observe hands to create or update.
    type Seen: Send;

    /// Reasons of the Normal events a first create posts (besides the
    /// scaffold's own: the Secret written, Ready): on an object a claim
    /// composed, a pass that posts nothing else posts none, the claim's
    /// events saying as much.
    const CREATION_EVENTS: &'static [&'static str] = &[];

    /// Validates, connects and looks at the external resource.
    fn observe(
        &self,
        obj: &M,
        events: &mut Events,
    ) -> impl Future<Output = Result<Observation<Self::Seen>, Self::Error>> + Send;

    /// Creates the external resource with `creds.password`, which the
    /// connection Secret already holds.
    fn create(
        &self,
        obj: &M,
        seen: Self::Seen,
        creds: &Credentials,
        events: &mut Events,
    ) -> impl Future<Output = Result<Synced<M::Observation>, Self::Error>> + Send;

    /// Brings an existing resource to the spec; sends the password when
    /// `creds.reset_due` (the Secret already holds it). By default `create`,
    /// for a provider whose create is one idempotent sync.
    fn update(
        &self,
        obj: &M,
        seen: Self::Seen,
        creds: &Credentials,
        events: &mut Events,
    ) -> impl Future<Output = Result<Synced<M::Observation>, Self::Error>> + Send {
        self.create(obj, seen, creds, events)
    }

    /// Deletes the external resource; not an error when it is already gone
    /// or going.
    fn delete(
        &self,
        obj: &M,
        events: &mut Events,
    ) -> impl Future<Output = Result<Deletion, Self::Error>> + Send;

    /// Runs `drill` on the external resource `seen` (observe found it and
    /// refused what is not ours). Called at most once per drill id, after
    /// its start is recorded in the object's status. By default refused.
    fn drill(
        &self,
        _obj: &M,
        _seen: &Self::Seen,
        drill: &crate::drill::Request,
        _events: &mut Events,
    ) -> impl Future<Output = Result<DrillStep, Self::Error>> + Send {
        let refused = format!("this provider does not run {} drills", drill.type_);
        async move { Ok(DrillStep::Refused(refused)) }
    }

    /// Connection details the connection Secret as it is (`existing`, if
    /// any) already decides, over those of observe: the login a provider
    /// names only after its call, known before it, makes the Secret's first
    /// write complete and spares a second one. By default none.
    fn connection_known(
        _obj: &M,
        _existing: Option<&k8s_openapi::api::core::v1::Secret>,
    ) -> Connection {
        Connection::new()
    }

    /// What is managed, for messages: "the DB instance", "database \"x\"".
    fn describe(obj: &M) -> String;

    /// Why the external system would refuse `password`, if it would.
    fn password_problem(_obj: &M, _password: &str) -> Option<String> {
        None
    }

    /// Deletion with policy Orphan: the resource stays; the provider drops
    /// what it remembers of it and may add an event.
    fn release(&self, _obj: &M, _events: &mut Events) {}
}
