//! How a pass fails: one error per stage, naming the stage and the object,
//! and what each failure means for the claim (its Synced reason, its
//! requeue). Messages that reach the Synced condition are the contract's.

use std::time::Duration;

use crate::conditions::SyncedReason;
use crate::engine::EngineError;
use crate::selection;

/// Every requeue of the claim controller.
pub mod requeue {
    use std::time::Duration;

    /// Composed objects are still being deleted (their finalizers at work).
    pub const DELETION: Duration = Duration::from_secs(2);
    /// An API failure: the status says nothing about it, so retry soon.
    pub const API_FAILURE: Duration = Duration::from_secs(10);
    /// Not ready yet, or the provider's or dbclaim's own trouble.
    pub const NOT_DONE: Duration = Duration::from_secs(30);
    /// Only a person's change helps; the watch on what they change wakes
    /// the claim sooner.
    pub const NEEDS_CHANGE: Duration = Duration::from_secs(300);
    /// Ready: watches on composed objects wake the claim; this poll is a
    /// safety net.
    pub const READY: Duration = Duration::from_secs(600);
}

/// A request to the API server that failed, naming what it was for.
#[derive(Debug, thiserror::Error)]
#[error("cannot {verb} {object}: {error}")]
pub struct ApiError {
    pub verb: &'static str,
    pub object: String,
    pub error: kube::Error,
}

/// For `map_err`: `.get_opt(name).await.map_err(failed("read", "Secret s"))?`.
pub fn failed(
    verb: &'static str,
    object: impl Into<String>,
) -> impl FnOnce(kube::Error) -> ApiError {
    let object = object.into();
    move |error| ApiError {
        verb,
        object,
        error,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Selection(#[from] selection::SelectError),
    #[error("{0}")]
    Policy(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("composition {composition}, resource {resource:?}: base needs apiVersion and kind")]
    NoKind {
        composition: String,
        resource: String,
    },
    /// `detail`: empty, or the discovery failure in parentheses.
    #[error(
        "composition {composition}, resource {resource:?}: kind {kind} ({api_version}) is not served by the API server{detail}; install its CRD or fix the base"
    )]
    NotServed {
        composition: String,
        resource: String,
        kind: String,
        api_version: String,
        detail: String,
    },
    #[error(
        "{kind} {name} already exists and does not belong to this claim: dbclaim will not take it over; remove it or rename the claim"
    )]
    Foreign { kind: String, name: String },
}

#[derive(Debug, thiserror::Error)]
#[error("composition {composition}: {error}")]
pub struct RenderError {
    pub composition: String,
    /// Boxed: an engine error is large, and rare.
    pub error: Box<EngineError>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The re-render over the API server's answers.
    #[error(transparent)]
    Render(#[from] RenderError),
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(
        "Secret {0} already exists and is not owned by this claim: dbclaim will not overwrite it; delete it or set spec.writeConnectionSecretToRef to another name"
    )]
    Foreign(String),
    #[error("{0}")]
    Encode(serde_json::Error),
}

/// Why a pass stopped, by stage.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error(transparent)]
    Observe(#[from] ObserveError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Replacement(#[from] crate::replacement::Blocked),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl PassError {
    /// The reason the claim reports this failure with as `Synced=False`;
    /// `None` for an API failure, retried without a status write (it says
    /// nothing about the claim).
    pub fn synced_reason(&self) -> Option<SyncedReason> {
        Some(match self {
            PassError::Select(SelectError::Api(_))
            | PassError::Observe(ObserveError::Api(_))
            | PassError::Apply(ApplyError::Api(_))
            | PassError::Secret(SecretError::Api(_)) => return None,
            PassError::Select(SelectError::Selection(e)) => e.synced_reason(),
            PassError::Replacement(blocked) => blocked.synced_reason(),
            PassError::Select(SelectError::Policy(_)) => SyncedReason::PolicyViolation,
            PassError::Observe(ObserveError::NoKind { .. } | ObserveError::NotServed { .. })
            | PassError::Render(_)
            | PassError::Apply(ApplyError::Render(_)) => SyncedReason::CompositionInvalid,
            PassError::Observe(ObserveError::Foreign { .. }) | PassError::Secret(_) => {
                SyncedReason::ReconcileError
            }
        })
    }

    pub fn requeue(&self) -> Duration {
        match self.synced_reason() {
            None => requeue::API_FAILURE,
            Some(SyncedReason::ProviderError | SyncedReason::ReconcileError) => requeue::NOT_DONE,
            Some(_) => requeue::NEEDS_CHANGE,
        }
    }
}
