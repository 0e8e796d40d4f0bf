//! Every label, annotation, finalizer and field manager the contract
//! names, in one place (`api-contract.md`). Changing one of these strands
//! objects written by an older dbclaim: they are part of the API.
//!
//! Field managers: the claim controller applies composed objects and the
//! claim's connection Secret as `dbclaim`. A controller that writes fields
//! of an object the claim controller also applies (the AWS provider's
//! annotations on RDSInstances) needs a manager of its own, or the claim
//! controller's next apply would drop those fields.

/// Labels every composed object and connection Secret carries, so its
/// claim can find it (values go through `naming::label_value`).
pub const LABEL_CLAIM_NAME: &str = "dbclaim.io/claim-name";
pub const LABEL_CLAIM_NAMESPACE: &str = "dbclaim.io/claim-namespace";
pub const LABEL_COMPOSITION: &str = "dbclaim.io/composition";
pub const LABEL_RESOURCE: &str = "dbclaim.io/resource";
/// The claim's `deletionPolicy` when the object was rendered: what the
/// collector applies when the claim is gone without its cleanup.
pub const LABEL_DELETION_POLICY: &str = "dbclaim.io/deletion-policy";
/// The UID of the claim that rendered the object: a claim re-created under
/// the same name is told apart from the one that made it.
pub const LABEL_CLAIM_UID: &str = "dbclaim.io/claim-uid";
/// On a CompositionRevision: the Composition it was made from.
pub const LABEL_COMPOSITION_NAME: &str = "dbclaim.io/composition-name";

/// The claim controller's finalizer on DatabaseClaims.
pub const CLAIM_FINALIZER: &str = "dbclaim.io/finalizer";
/// Field manager of the claim controller's writes.
pub const CLAIM_FIELD_MANAGER: &str = "dbclaim";
/// `"true"` on a claim: dbclaim leaves it and its objects alone.
pub const PAUSED_ANNOTATION: &str = "dbclaim.io/paused";
/// Hash of what dbclaim last applied, so an unchanged object is not re-sent.
pub const APPLIED_HASH_ANNOTATION: &str = "dbclaim.io/applied-hash";
/// `"true"` on a Composition: the default for its engines.
pub const DEFAULT_COMPOSITION_ANNOTATION: &str = "dbclaim.io/default";
/// On a claim, a new value rotates its credentials once, now. On composed
/// objects dbclaim sets it to the claim's `status.credentials.rotatedAt`:
/// a provider (and a `Generate` patch) rotates when it changes.
pub const ROTATE_CREDENTIALS_ANNOTATION: &str = "dbclaim.io/rotate-credentials";
/// On a claim: `<type>/<id>` runs a drill once per new id (`crate::drill`).
/// On the RDSInstance or Database a claim composes: the drill handed to
/// its provider while it runs.
pub const DRILL_ANNOTATION: &str = "dbclaim.io/drill";
/// On composed objects: the claim's `spec.credentials.graceMinutes`.
pub const CREDENTIALS_GRACE_ANNOTATION: &str = "dbclaim.io/credentials-grace-minutes";
/// `"true"` on a claim: a `compositionRef` move may delete the composed
/// objects the new composition does not produce (refused otherwise).
pub const ALLOW_REPLACEMENT_ANNOTATION: &str = "dbclaim.io/allow-replacement";
/// The external name of a managed resource (the DB instance identifier;
/// for a Database, its databaseName): set before the first create. Set by a
/// person (not rendered by the claim controller), it adopts an existing
/// object that carries no other cluster's mark.
pub const EXTERNAL_NAME_ANNOTATION: &str = "dbclaim.io/external-name";
/// The RDS tag marking an instance as dbclaim's: `<cluster-id>/<object uid>`
/// (`provider::managed::ownership`).
pub const OWNER_MARK_TAG: &str = "dbclaim.io/owner";
/// On provider connection Secrets: the UID of the object they were written
/// for. A password is never reused for another UID.
pub const OWNER_UID_ANNOTATION: &str = "dbclaim.io/owner-uid";

/// The AWS provider (RDSInstance).
pub mod aws {
    /// Not the claim controller's `dbclaim`: the claim controller applies
    /// RDSInstances, and an annotation written under its manager would be
    /// dropped by its next apply.
    pub const FIELD_MANAGER: &str = "dbclaim-aws-provider";
    pub const FINALIZER: &str = "aws.dbclaim.io/finalizer";
    /// The identifier dbclaim derived itself: an instance of that name that
    /// dbclaim did not create is a conflict, not an adoption.
    pub const GENERATED_NAME_ANNOTATION: &str = "aws.dbclaim.io/generated-external-name";
    /// On connection Secrets: the label-safe name of their RDSInstance.
    pub const INSTANCE_LABEL: &str = "aws.dbclaim.io/rdsinstance";
    /// On connection Secrets: the full name of their RDSInstance.
    pub const INSTANCE_ANNOTATION: &str = "aws.dbclaim.io/rdsinstance";
    /// On a connection Secret whose password is not yet the instance's.
    pub const PASSWORD_PENDING_ANNOTATION: &str = "aws.dbclaim.io/password-reset-pending";
    /// Field manager of the rotation state on connection Secrets.
    pub const ROTATION_MANAGER: &str = "dbclaim-aws-rotation";
    /// On connection Secrets: the token of the last rotation completed.
    pub const ROTATION_DONE_ANNOTATION: &str = "aws.dbclaim.io/rotation-done";
    /// On connection Secrets: a rotation under way, its new password under
    /// the key `pending-password` until RDS accepted it.
    pub const PENDING_TOKEN_ANNOTATION: &str = "aws.dbclaim.io/pending-token";
    pub const PENDING_PASSWORD_KEY: &str = "pending-password";
    /// The tag on every instance dbclaim creates: the name of the
    /// RDSInstance object that manages it.
    pub const OWNER_TAG: &str = "dbclaim.io/rdsinstance";
}

/// The PostgreSQL provider (Database).
pub mod postgres {
    pub const FIELD_MANAGER: &str = "dbclaim";
    pub const FINALIZER: &str = "postgres.dbclaim.io/finalizer";
    /// On connection Secrets: the label-safe name of their Database.
    pub const DATABASE_LABEL: &str = "postgres.dbclaim.io/database";
    /// On connection Secrets: the full name of their Database.
    pub const DATABASE_ANNOTATION: &str = "postgres.dbclaim.io/database";
    /// Start of the `COMMENT ON ROLE/DATABASE` marking what dbclaim created;
    /// the mark (`<cluster-id>/<object uid>`) follows.
    pub const OWNER_COMMENT_PREFIX: &str = "dbclaim:owner=";
    /// Field manager of the rotation state on connection Secrets (apart
    /// from the scaffold's, whose applies would drop it).
    pub const ROTATION_MANAGER: &str = "dbclaim-postgres-rotation";
    /// On connection Secrets: the token of the last rotation completed.
    pub const ROTATION_DONE_ANNOTATION: &str = "postgres.dbclaim.io/rotation-done";
    /// On connection Secrets: a rotation under way (its token and login);
    /// its password is under the key `pending-password`.
    pub const PENDING_TOKEN_ANNOTATION: &str = "postgres.dbclaim.io/pending-token";
    pub const PENDING_LOGIN_ANNOTATION: &str = "postgres.dbclaim.io/pending-login";
    pub const PENDING_PASSWORD_KEY: &str = "pending-password";
    /// On connection Secrets: the previous login and when it is refused.
    pub const RETIRING_LOGIN_ANNOTATION: &str = "postgres.dbclaim.io/retiring-login";
    pub const RETIRING_AFTER_ANNOTATION: &str = "postgres.dbclaim.io/retiring-after";
}
