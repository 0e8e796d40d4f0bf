//! How a pass fails: one error per stage (observe and apply share theirs:
//! both work on composed objects), naming the stage and the object,
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
    /// A transient API failure: the first retry, doubling with each failure
    /// in a row (jittered, see `Context::backoff`) up to `BACKOFF_MAX`.
    pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
    pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
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
pub struct ApiError {
    pub verb: &'static str,
    pub object: String,
    #[source]
    pub error: kube::Error,
}

impl ApiError {
    /// The API server's refusal, `None` when the failure is transient.
    pub fn refusal(&self) -> Option<Refusal> {
        refusal(self.verb, &self.error)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { verb, object, .. } = self;
        match self.refusal() {
            Some(r) => write!(f, "cannot {verb} {object}: {r}"),
            None => write!(f, "cannot {verb} {object}: {}", self.error),
        }
    }
}

/// An answer of the API server that retrying cannot change: the request
/// itself is refused (schema, CEL, admission, RBAC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    /// The server's reason (`Invalid`, `Forbidden`, ...).
    pub reason: String,
    /// The fields the server names (`details.causes[].field`), if any.
    pub fields: Vec<String>,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "refused by the API server ({} {})",
            self.code, self.reason
        )?;
        if !self.fields.is_empty() {
            write!(f, ", field {}", self.fields.join(", "))?;
        }
        write!(f, ": {}", self.message)
    }
}

impl Refusal {
    pub fn is_forbidden(&self) -> bool {
        self.code == 403
    }
}

/// Whether a failed request is refused for good (`Some`) or transient
/// (`None`: 5xx, 429, timeouts, connection errors, an optimistic-lock
/// conflict, and a 404 on a delete or read, which the next pass sees as gone).
pub fn refusal(verb: &str, error: &kube::Error) -> Option<Refusal> {
    let kube::Error::Api(status) = error else {
        return None;
    };
    let refused = match status.code {
        400 | 403 | 405 | 413 | 415 | 422 => true,
        404 => !matches!(verb, "delete" | "prune" | "read" | "observe"),
        // An apply or update that lost a race: the next pass re-reads.
        409 => status.reason != "Conflict",
        _ => false,
    };
    if !refused {
        return None;
    }
    let mut fields: Vec<String> = status
        .details
        .iter()
        .flat_map(|d| &d.causes)
        .map(|c| c.field.clone())
        .filter(|f| !f.is_empty())
        .collect();
    fields.dedup();
    Some(Refusal {
        code: status.code,
        reason: status.reason.clone(),
        fields,
        message: status.message.clone(),
    })
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
    #[error(transparent)]
    Revision(#[from] crate::revision::ChooseError),
    #[error("{0}")]
    Policy(String),
}

/// A failure of the stages that work on composed objects: observe and apply.
#[derive(Debug, thiserror::Error)]
pub enum ComposedError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Apply's re-render over the API server's answers.
    #[error(transparent)]
    Render(#[from] RenderError),
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
pub enum SecretError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(
        "Secret {0} already exists and is not owned by this claim: dbclaim will not overwrite it; delete it or set spec.writeConnectionSecretToRef to another name"
    )]
    Foreign(String),
}

/// Why a pass stopped, by stage.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Select(#[from] SelectError),
    #[error(transparent)]
    Composed(#[from] ComposedError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Replacement(#[from] crate::replacement::Blocked),
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// Recording the start of a credentials rotation.
    #[error(transparent)]
    Credentials(ApiError),
    /// The claim's `dbclaim.io/drill` annotation cannot be read.
    #[error("{0}")]
    Drill(String),
}

impl PassError {
    /// The reason the claim reports this failure with as `Synced=False`;
    /// `None` for a transient API failure, retried with backoff without a
    /// status write (it says nothing about the claim). A refusal is the
    /// claim's business: it is reported like any other bad input.
    pub fn synced_reason(&self) -> Option<SyncedReason> {
        Some(match self {
            PassError::Composed(ComposedError::Api(e)) => {
                // A composed object refused: the composition made it so,
                // unless the operator may not touch that kind at all.
                match e.refusal()? {
                    r if r.is_forbidden() => SyncedReason::ReconcileError,
                    _ => SyncedReason::CompositionInvalid,
                }
            }
            PassError::Select(SelectError::Api(e))
            | PassError::Secret(SecretError::Api(e))
            | PassError::Credentials(e) => {
                e.refusal()?;
                SyncedReason::ReconcileError
            }
            PassError::Select(SelectError::Selection(e)) => e.synced_reason(),
            PassError::Select(SelectError::Revision(_)) => SyncedReason::CompositionNotFound,
            PassError::Replacement(blocked) => blocked.synced_reason(),
            PassError::Select(SelectError::Policy(_)) => SyncedReason::PolicyViolation,
            PassError::Composed(
                ComposedError::NoKind { .. }
                | ComposedError::NotServed { .. }
                | ComposedError::Render(_),
            )
            | PassError::Render(_) => SyncedReason::CompositionInvalid,
            PassError::Composed(ComposedError::Foreign { .. })
            | PassError::Secret(_)
            | PassError::Drill(_) => SyncedReason::ReconcileError,
        })
    }

    /// The requeue of a reported failure; `None` for a transient one,
    /// whose delay is the claim's backoff.
    pub fn requeue(&self) -> Option<Duration> {
        Some(match self.synced_reason()? {
            SyncedReason::ProviderError | SyncedReason::ReconcileError => requeue::NOT_DONE,
            _ => requeue::NEEDS_CHANGE,
        })
    }
}
