//! The `RDSInstance` verbs on the shared managed reconciler: observe by the
//! external name (with ownership by tag), create, update (drift, password
//! reset, tags), delete (final snapshot, deletion protection).

use std::collections::BTreeMap;

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};

use super::config::{self, ResolveError};
use super::diff::{self, Modification, OWNER_MARK_TAG, OWNER_TAG, Observed, Pending};
use super::errors::{self, ApiFailure, Class};
use super::rds::{CreateInput, Rds};
use super::status::{self, POLL_STUCK, POLL_TRANSITIONAL, Phase};
use super::{Aws, EXTERNAL_NAME, GENERATED_NAME, MANAGER, identifier, password, rotate, validate};
use crate::api::aws::{Endpoint, PendingModifiedValues, RDSInstance, RDSInstanceObservation};
use crate::api::common::DrillType;
use crate::conditions::{self, Cond, ConditionType, ReadyReason, SyncedReason};
use crate::contract::ROTATE_CREDENTIALS_ANNOTATION;
use crate::provider::managed::ownership::{Claim, Identity, Verdict, decide, set_by_person};
use crate::provider::managed::{
    Connection, Credentials, Deletion, DrillStep, Events, External, Observation, ProviderError,
    Retry, Synced,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ResolveError),
    #[error("{0}")]
    Invalid(String),
    #[error("{message}")]
    Api {
        failure: ApiFailure,
        message: String,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("cannot set the annotation {EXTERNAL_NAME}: {0}")]
    Annotate(#[source] kube::Error),
    #[error("{0}")]
    DeletionProtected(String),
    #[error("cannot record the master password rotation in Secret {secret}: {source}")]
    RotationSecret {
        secret: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// A failed call to `rds`, in words that name where it went.
    fn api(rds: &Rds) -> impl Fn(ApiFailure) -> Error + '_ {
        |failure| {
            let message = errors::describe(&failure, rds.endpoint());
            Error::Api { failure, message }
        }
    }
}

impl ProviderError for Error {
    fn reason(&self) -> SyncedReason {
        match self {
            Error::Config(_) | Error::Api { .. } => SyncedReason::ProviderError,
            _ => SyncedReason::ReconcileError,
        }
    }

    fn retry(&self) -> Retry {
        match self {
            Error::Config(ResolveError::Kube(_))
            | Error::Annotate(_)
            | Error::RotationSecret { .. } => Retry::Backoff,
            Error::Config(_)
            | Error::Invalid(_)
            | Error::Conflict(_)
            | Error::DeletionProtected(_) => Retry::Slow,
            Error::Api { failure, .. } => errors::retry(errors::classify(failure)),
        }
    }

    /// An AWS failure says nothing about the database: Ready stays.
    fn keeps_ready(&self) -> bool {
        true
    }
}

/// An instance as RDS describes it, and its tags.
type Instance = (Observed, BTreeMap<String, String>);

/// What observe found, for create or update.
pub struct Seen {
    rds: Rds,
    id: String,
    /// The instance, when it exists.
    instance: Option<Instance>,
}

impl External<RDSInstance> for Aws {
    type Error = Error;
    type Seen = Seen;

    /// validate → external name → ProviderConfig → describe → ownership.
    async fn observe(
        &self,
        obj: &RDSInstance,
        events: &mut Events,
    ) -> Result<Observation<Seen>, Error> {
        let spec = &obj.spec.for_provider;
        let problems = validate::problems(spec);
        if !problems.is_empty() {
            return Err(Error::Invalid(format!(
                "the spec cannot be provisioned: {}",
                problems.join("; ")
            )));
        }
        let (mut id, mut generated) = self.ensure_external_name(obj).await?;
        let (mut rds, mut instance) = self.look(obj, &id).await?;
        if let Some((_, tags)) = &instance
            && self.taken_by_another_cluster(obj, &id, generated.as_deref(), tags)
        {
            let derived = id;
            id = self
                .set_external_name(
                    obj,
                    identifier::for_cluster(&obj.name_any(), &self.cluster_id),
                )
                .await?;
            generated = Some(id.clone());
            events.normal(
                "IdentifierChosen",
                format!("DB instance identifier {derived} is another cluster's on this AWS account; this object uses {id}"),
            );
            (rds, instance) = self.look(obj, &id).await?;
        }
        let instance = match instance {
            None => None,
            Some((o, mut tags)) => {
                match self.ownership(obj, &id, generated.as_deref(), &tags) {
                    Verdict::Ours => {}
                    Verdict::NotOurs(m) => return Err(Error::Conflict(m)),
                    // The mark goes on before anything else is sent.
                    Verdict::Take(claim) => {
                        let mark = BTreeMap::from([
                            (OWNER_MARK_TAG.to_string(), self.identity(obj).mark()),
                            (OWNER_TAG.to_string(), obj.name_any()),
                        ]);
                        if let Some(arn) = &o.arn {
                            rds.add_tags(arn, &mark).await.map_err(Error::api(&rds))?;
                        }
                        tags.extend(mark);
                        let (reason, note) = match claim {
                            Claim::Upgrade => (
                                "MarkedInstance",
                                format!(
                                    "marked DB instance {id}, which an earlier dbclaim created for this object, with tag {OWNER_MARK_TAG}"
                                ),
                            ),
                            _ => (
                                "AdoptedInstance",
                                format!(
                                    "adopted the existing DB instance {id} named by annotation {EXTERNAL_NAME}"
                                ),
                            ),
                        };
                        events.normal(reason, note);
                    }
                }
                Some((o, tags))
            }
        };
        Ok(Observation {
            exists: instance.is_some(),
            connection: connection(obj, instance.as_ref().map(|(o, _)| o)),
            seen: Seen { rds, id, instance },
        })
    }

    async fn create(
        &self,
        obj: &RDSInstance,
        seen: Seen,
        creds: &Credentials,
        events: &mut Events,
    ) -> Result<Synced<RDSInstanceObservation>, Error> {
        let (rds, id) = (&seen.rds, seen.id.as_str());
        let spec = &obj.spec.for_provider;
        if recorded_id(obj).is_some_and(|seen| seen.eq_ignore_ascii_case(id)) {
            events.warning(
                "InstanceMissing",
                format!("DB instance {id} no longer exists in AWS; creating it again"),
            );
        }
        let tags = diff::desired_tags(spec, &obj.name_any(), &self.identity(obj).mark());
        let created = rds
            .create(CreateInput {
                identifier: id,
                spec,
                password: &creds.password,
                tags: &tags,
            })
            .await
            .map_err(|f| {
                if errors::classify(&f) == Class::AlreadyExists {
                    let message = format!(
                        "CreateDBInstance: a DB instance named \"{id}\" already exists although DescribeDBInstances did not find it; looking again"
                    );
                    Error::Api { failure: f, message }
                } else {
                    Error::api(rds)(f)
                }
            })?;
        tracing::info!(identifier = %id, status = %created.status, "DB instance created");
        events.normal(
            "CreatedInstance",
            format!(
                "created DB instance {id}: {} {}, {}, {} GiB",
                spec.engine,
                spec.engine_version
                    .as_deref()
                    .unwrap_or("(default version)"),
                spec.db_instance_class,
                spec.allocated_storage
            ),
        );
        let assessment = status::assess(&created.status, false);
        Ok(Synced {
            observation: observation(&created),
            ready: Cond::ready(
                assessment.ready,
                if assessment.ready {
                    ReadyReason::Available
                } else {
                    ReadyReason::Creating
                },
                assessment.message,
            ),
            synced: Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
            requeue: POLL_TRANSITIONAL,
            connection: connection(obj, Some(&created)),
            password_sent: true,
        })
    }

    /// An existing instance: drift, a due password reset, tags.
    async fn update(
        &self,
        obj: &RDSInstance,
        Seen { rds, id, instance }: Seen,
        creds: &Credentials,
        events: &mut Events,
    ) -> Result<Synced<RDSInstanceObservation>, Error> {
        let (rds, id) = (&rds, id.as_str());
        let Some((observed, current_tags)) = instance else {
            return Err(Error::Invalid(format!("DB instance {id} was not observed")));
        };
        let spec = &obj.spec.for_provider;
        let assessment = status::assess(&observed.status, was_available(obj));
        if assessment.phase == Phase::Deleting {
            // Deleted outside dbclaim; it is created again once gone.
            return Ok(Synced {
                observation: steady(obj, observation(&observed)),
                ready: Cond::ready(
                    false,
                    ReadyReason::Deleting,
                    format!("{} outside dbclaim", assessment.message),
                ),
                synced: Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
                requeue: assessment.poll,
                connection: connection(obj, Some(&observed)),
                password_sent: false,
            });
        }

        let reset_due = creds.reset_due;
        // A rotation: its new password recorded before the call that sends
        // it (a crash resends the same), the Secret's own kept until RDS
        // accepted the new one.
        let secret = format!("{}/{}", creds.secret.0, creds.secret.1);
        let record = |source| Error::RotationSecret {
            secret: secret.clone(),
            source,
        };
        let mut rotation = rotate::read(creds.existing.as_ref());
        let want = obj.annotations().get(ROTATE_CREDENTIALS_ANNOTATION);
        if let Some(token) = rotate::to_start(&rotation, want.map(String::as_str)) {
            rotation.pending = Some((token.to_string(), password::generate()));
            rotate::write(&self.client, &creds.secret, &rotation, &creds.password)
                .await
                .map_err(record)?;
        }
        let rotating = rotation.pending.clone();
        let reset_due = reset_due || rotating.is_some();
        let drift = diff::diff(spec, &observed);
        let mut latest = observed.clone();
        let mut modified = false;
        let mut password_sent = false;
        let mut switched: Option<String> = None;
        let mut waiting: Option<String> = None;
        let plan: Option<Modification> = if assessment.can_modify {
            (!drift.modify.is_empty() || reset_due).then(|| drift.modify.clone())
        } else if assessment.can_grow_storage && drift.modify.allocated_storage.is_some() {
            Some(drift.modify.storage_only())
        } else {
            None
        };
        if plan.is_none() && (!drift.modify.is_empty() || reset_due) {
            let mut what = drift.modify.describe();
            if reset_due {
                if !what.is_empty() {
                    what.push_str(", ");
                }
                what.push_str(match rotating {
                    Some(_) => "master password rotation",
                    None => "master password reset",
                });
            }
            waiting = Some(format!(
                "waiting to apply {what} until the instance is available"
            ));
        }
        if let Some(m) = plan {
            let send_password = reset_due && assessment.can_modify;
            let sent = match &rotating {
                Some((_, new)) => new.as_str(),
                None => creds.password.as_str(),
            };
            let result = rds.modify(id, &m, send_password.then_some(sent)).await;
            if rotating.is_some() && send_password {
                let busy = matches!(&result, Err(f) if errors::classify(f) == Class::InvalidState);
                if !busy {
                    self.metrics.credential_rotation("aws", result.is_ok());
                }
            }
            match result {
                Ok(after) => {
                    modified = true;
                    if let Some(after) = after {
                        latest = after;
                    }
                    let mut what = m.describe();
                    if !what.is_empty() && !m.apply_immediately {
                        what.push_str(" (RDS defers what it can to the maintenance window: applyImmediately is false)");
                    }
                    if !what.is_empty() {
                        tracing::info!(identifier = %id, changes = %what, "DB instance modified");
                        events.normal(
                            "UpdatedInstance",
                            format!("modified DB instance {id}: {what}"),
                        );
                    }
                    if send_password {
                        password_sent = true;
                        let (ns, name) = &creds.secret;
                        if let Some((token, new)) = &rotating {
                            // RDS accepted it: now the Secret's.
                            let state = rotate::State {
                                done: Some(token.clone()),
                                pending: None,
                            };
                            rotate::write(&self.client, &creds.secret, &state, new)
                                .await
                                .map_err(record)?;
                            switched = Some(new.clone());
                            events.normal(
                                "RotatedPassword",
                                format!("rotated the master password of DB instance {id}; Secret {ns}/{name} holds the new one"),
                            );
                        } else {
                            events.normal(
                                "PasswordReset",
                                format!("reset the master password of DB instance {id} to the one in Secret {ns}/{name}"),
                            );
                        }
                    }
                }
                Err(f) if errors::classify(&f) == Class::InvalidState => {
                    waiting = Some(format!(
                        "RDS reports the instance busy ({}); retrying",
                        f.code.as_deref().unwrap_or("InvalidDBInstanceState")
                    ));
                }
                Err(f) => return Err(Error::api(rds)(f)),
            }
        }

        if let Some(arn) = &observed.arn {
            let desired = diff::desired_tags(spec, &obj.name_any(), &self.identity(obj).mark());
            let changes = diff::tag_changes(&desired, &current_tags);
            if !changes.add.is_empty() {
                rds.add_tags(arn, &changes.add)
                    .await
                    .map_err(Error::api(rds))?;
            }
            if !changes.remove.is_empty() {
                rds.remove_tags(arn, &changes.remove)
                    .await
                    .map_err(Error::api(rds))?;
            }
            if !changes.is_empty() {
                let keys: Vec<&str> = changes
                    .add
                    .keys()
                    .map(String::as_str)
                    .chain(changes.remove.iter().map(String::as_str))
                    .collect();
                events.normal(
                    "UpdatedTags",
                    format!("updated tags of DB instance {id}: {}", keys.join(", ")),
                );
            }
        }

        let mut ready_message = assessment.message.clone();
        if let Some(w) = &waiting {
            ready_message = format!("{ready_message}; {w}");
        }
        let synced = if drift.refused.is_empty() {
            Cond::synced(true, SyncedReason::ReconcileSuccess, "")
        } else {
            Cond::synced(
                false,
                SyncedReason::ReconcileError,
                drift.refused.join("; "),
            )
        };
        let requeue = if modified || waiting.is_some() {
            assessment.poll.min(POLL_TRANSITIONAL)
        } else if !latest.pending.is_empty() {
            // status.atProvider.pendingModifiedValues shows when RDS applied them
            assessment.poll.min(POLL_STUCK)
        } else {
            assessment.poll
        };
        let mut connection = connection(obj, Some(&latest));
        if let Some(new) = switched {
            connection.insert("password".to_string(), new);
        }
        Ok(Synced {
            observation: steady(obj, observation(&latest)),
            ready: Cond::ready(assessment.ready, assessment.reason, ready_message),
            synced,
            requeue,
            connection,
            password_sent,
        })
    }

    /// Deletes the instance (with a final snapshot unless skipped) and
    /// waits until RDS no longer knows it.
    async fn delete(&self, obj: &RDSInstance, events: &mut Events) -> Result<Deletion, Error> {
        // No identifier (or an invalid one): nothing was ever created.
        let Some(id) = obj
            .annotations()
            .get(EXTERNAL_NAME)
            .filter(|i| identifier::is_valid(i))
        else {
            return Ok(Deletion::Gone);
        };
        let spec = &obj.spec.for_provider;
        let (rds, instance) = self.look(obj, id).await?;
        let Some((o, tags)) = instance else {
            events.normal("DeletedInstance", format!("DB instance {id} is gone"));
            return Ok(Deletion::Gone);
        };
        // Only what carries our mark (or an earlier dbclaim's instance of
        // this very object) is deleted; an adoption that never wrote the
        // mark leaves the instance alone.
        let generated = obj.annotations().get(GENERATED_NAME).cloned();
        match self.ownership(obj, id, generated.as_deref(), &tags) {
            Verdict::Ours | Verdict::Take(Claim::Upgrade) => {}
            Verdict::Take(_) => {
                events.warning(
                    "NotDeleted",
                    format!("not deleting DB instance {id}: its adoption was never completed (no tag {OWNER_MARK_TAG})"),
                );
                return Ok(Deletion::Gone);
            }
            Verdict::NotOurs(why) => {
                events.warning(
                    "NotDeleted",
                    format!("not deleting DB instance {id}: {why}"),
                );
                return Ok(Deletion::Gone);
            }
        }
        let a = status::assess(&o.status, true);
        if a.phase == Phase::Deleting {
            return Ok(Deletion::Waiting(format!(
                "DB instance {id} is {}; waiting until it is gone",
                o.status
            )));
        }
        if o.deletion_protection == Some(true) {
            if !spec.deletion_protection && a.can_modify {
                let m = Modification {
                    deletion_protection: Some(false),
                    apply_immediately: true,
                    ..Default::default()
                };
                rds.modify(id, &m, None).await.map_err(Error::api(&rds))?;
                events.normal(
                    "UpdatedInstance",
                    format!("turned off deletion protection of DB instance {id} to delete it"),
                );
                return Ok(Deletion::Waiting(format!(
                    "turning off deletion protection of DB instance {id} before deleting it"
                )));
            }
            return Err(Error::DeletionProtected(format!(
                "DB instance {id} has deletion protection on, so dbclaim does not delete it: set spec.forProvider.deletionProtection to false to delete it"
            )));
        }
        let snapshot = if spec.skip_final_snapshot {
            None
        } else if a.final_snapshot_possible {
            Some(final_snapshot_name(id))
        } else {
            events.warning(
                "FinalSnapshotSkipped",
                format!("deleting DB instance {id} without a final snapshot: RDS cannot take one while it is {}", o.status),
            );
            None
        };
        match rds.delete(id, snapshot.as_deref()).await {
            Ok(()) => {
                let note = match &snapshot {
                    Some(s) => format!("deleting DB instance {id}, final snapshot {s}"),
                    None => format!("deleting DB instance {id} without a final snapshot"),
                };
                tracing::info!(identifier = %id, snapshot = ?snapshot, "DB instance deletion requested");
                events.normal("DeletingInstance", note);
                Ok(Deletion::Waiting(format!(
                    "DB instance {id} is being deleted; waiting until it is gone"
                )))
            }
            Err(f) => match errors::classify(&f) {
                Class::NotFound => Ok(Deletion::Gone),
                Class::InvalidState => Ok(Deletion::Waiting(format!(
                    "DB instance {id} is {}; deleting it once RDS allows",
                    o.status
                ))),
                _ => Err(Error::api(&rds)(f)),
            },
        }
    }

    /// `failover`: RebootDBInstance with ForceFailover on a Multi-AZ
    /// instance (observe checked it is ours); refused on a single-AZ one.
    async fn drill(
        &self,
        _obj: &RDSInstance,
        seen: &Seen,
        drill: &crate::drill::Request,
        events: &mut Events,
    ) -> Result<DrillStep, Error> {
        let (rds, id) = (&seen.rds, seen.id.as_str());
        if drill.type_ != DrillType::Failover {
            return Ok(DrillStep::Refused(format!(
                "a {} drill is not run on DB instance {id}",
                drill.type_
            )));
        }
        let Some((observed, _)) = &seen.instance else {
            return Ok(DrillStep::Refused(format!(
                "DB instance {id} does not exist: nothing to fail over"
            )));
        };
        if observed.multi_az != Some(true) {
            return Ok(DrillStep::Refused(format!(
                "DB instance {id} is single-AZ: a failover drill needs a Multi-AZ instance (multiAZ: true); nothing was sent"
            )));
        }
        rds.reboot_with_failover(id)
            .await
            .map_err(Error::api(rds))?;
        tracing::info!(identifier = %id, "failover drill: reboot with failover sent");
        events.normal(
            "FailoverStarted",
            format!("rebooting DB instance {id} with ForceFailover: its standby takes over"),
        );
        Ok(DrillStep::Started(format!(
            "RebootDBInstance with ForceFailover sent to DB instance {id}; its standby takes over"
        )))
    }

    fn describe(_obj: &RDSInstance) -> String {
        "the DB instance".to_string()
    }

    fn password_problem(obj: &RDSInstance, password: &str) -> Option<String> {
        password::problem(&obj.spec.for_provider.engine, password)
    }

    fn release(&self, obj: &RDSInstance, events: &mut Events) {
        if let Some(id) = obj.annotations().get(EXTERNAL_NAME) {
            events.normal(
                "OrphanedInstance",
                format!(
                    "deletionPolicy Orphan: leaving DB instance {id} and its connection Secret"
                ),
            );
        }
    }
}

impl Aws {
    /// The identifier from the annotation, and the one dbclaim derived (when
    /// it did: the annotation on `obj` may predate this reconcile's patch);
    /// the identifier is derived from the name and persisted first when
    /// missing, so it is on the object before any create.
    async fn ensure_external_name(
        &self,
        obj: &RDSInstance,
    ) -> Result<(String, Option<String>), Error> {
        if let Some(id) = obj.annotations().get(EXTERNAL_NAME) {
            let generated = obj.annotations().get(GENERATED_NAME).cloned();
            return match identifier::problem(id) {
                Some(why) => Err(Error::Invalid(format!(
                    "annotation {EXTERNAL_NAME}: {why}; RDS identifiers have 1 to 63 letters, digits and single hyphens, a letter first"
                ))),
                None => Ok((id.clone(), generated)),
            };
        }
        let id = self
            .set_external_name(obj, identifier::derive(&obj.name_any()))
            .await?;
        Ok((id.clone(), Some(id)))
    }

    /// Records `id` as the identifier dbclaim chose for `obj`, before any
    /// call that could create an instance under it.
    async fn set_external_name(&self, obj: &RDSInstance, id: String) -> Result<String, Error> {
        let patch = serde_json::json!({
            "metadata": {"annotations": {EXTERNAL_NAME: id, GENERATED_NAME: id}}
        });
        let api: Api<RDSInstance> = Api::all(self.client.clone());
        let params = PatchParams {
            field_manager: Some(MANAGER.to_string()),
            ..Default::default()
        };
        api.patch(&obj.name_any(), &params, &Patch::Merge(&patch))
            .await
            .map_err(Error::Annotate)?;
        tracing::info!(identifier = %id, "external name set");
        Ok(id)
    }

    /// Whether the instance under the identifier dbclaim derived from the
    /// name (never one a person named, never one this object used before)
    /// carries another cluster's mark: two clusters on one AWS account
    /// composed the same name, and this one takes an identifier of its own
    /// ([`identifier::for_cluster`]) instead of refusing.
    fn taken_by_another_cluster(
        &self,
        obj: &RDSInstance,
        id: &str,
        generated: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> bool {
        let derived = generated.is_some_and(|g| g.eq_ignore_ascii_case(id))
            && id.eq_ignore_ascii_case(&identifier::derive(&obj.name_any()));
        let used_before = recorded_id(obj).is_some();
        let foreign = tags
            .get(OWNER_MARK_TAG)
            .and_then(|m| m.rsplit_once('/'))
            .is_some_and(|(cluster, _)| cluster != self.cluster_id);
        derived && !used_before && foreign
    }
}

impl Aws {
    /// The client of `obj`'s ProviderConfig, and the instance `id` with its
    /// tags if it exists.
    async fn look(&self, obj: &RDSInstance, id: &str) -> Result<(Rds, Option<Instance>), Error> {
        let config_name = &obj.spec.managed.provider_config_ref.name;
        let region = obj.spec.for_provider.region.as_deref();
        let rds = config::client(self, config_name, region).await?;
        let Some(o) = rds.describe(id).await.map_err(Error::api(&rds))? else {
            return Ok((rds, None));
        };
        let tags = match &o.arn {
            Some(arn) => rds.list_tags(arn).await.map_err(Error::api(&rds))?,
            None => BTreeMap::new(),
        };
        Ok((rds, Some((o, tags))))
    }

    fn identity(&self, obj: &RDSInstance) -> Identity {
        Identity::of(&self.cluster_id, obj)
    }

    fn ownership(
        &self,
        obj: &RDSInstance,
        id: &str,
        generated: Option<&str>,
        tags: &BTreeMap<String, String>,
    ) -> Verdict {
        let person_set = set_by_person(&obj.metadata, EXTERNAL_NAME)
            && !generated.is_some_and(|g| g.eq_ignore_ascii_case(id));
        ownership(
            &self.identity(obj),
            &obj.name_any(),
            id,
            person_set,
            recorded_id(obj),
            tags,
        )
    }
}

/// Whose the instance `id` is, from its tags: `person_set` says a person
/// named it with the annotation (adoption); `recorded` is the identifier
/// the object's status recorded.
///
/// Upgrade from a dbclaim before marks: such an instance carries only the
/// tag `dbclaim.io/rdsinstance = <object name>`. That alone proves nothing
/// (another cluster's object of the same name has it too), so it counts as
/// ours only when this object's own status also records the identifier:
/// status is per object (a re-created object starts empty) and per cluster.
/// Then the mark is added. Anything else unmarked stays refused.
pub fn ownership(
    me: &Identity,
    object: &str,
    id: &str,
    person_set: bool,
    recorded: Option<&str>,
    tags: &BTreeMap<String, String>,
) -> Verdict {
    let what = format!("DB instance \"{id}\"");
    let mark = tags.get(OWNER_MARK_TAG).map(String::as_str);
    let named = tags.get(OWNER_TAG).map(String::as_str);
    if mark.is_none()
        && let Some(other) = named.filter(|n| *n != object)
    {
        return Verdict::NotOurs(format!(
            "{what} exists and is not ours: it is managed by RDSInstance \"{other}\" (tag {OWNER_TAG}); give this object another identifier with the annotation {EXTERNAL_NAME}"
        ));
    }
    let upgrade = mark.is_none()
        && named == Some(object)
        && recorded.is_some_and(|r| r.eq_ignore_ascii_case(id));
    let claim = if person_set {
        Claim::Adopt
    } else if upgrade {
        Claim::Upgrade
    } else {
        Claim::None
    };
    decide(
        me,
        &what,
        mark,
        claim,
        &[],
        &format!(
            "to adopt it, remove the annotation {GENERATED_NAME} (keep {EXTERNAL_NAME}: {id}) or set {EXTERNAL_NAME} by hand; otherwise set {EXTERNAL_NAME} to another identifier"
        ),
    )
}

/// The identifier the object's status recorded.
fn recorded_id(obj: &RDSInstance) -> Option<&str> {
    let at_provider = obj.status.as_ref()?.at_provider.as_ref()?;
    at_provider.db_instance_identifier.as_deref()
}

fn was_available(obj: &RDSInstance) -> bool {
    obj.status
        .as_ref()
        .and_then(|s| conditions::find(&s.conditions, ConditionType::Ready))
        .is_some_and(|c| {
            matches!(
                conditions::ready_reason_of(c),
                Some(ReadyReason::Available | ReadyReason::Unavailable)
            )
        })
}

/// What goes to `status.atProvider`.
pub fn observation(o: &Observed) -> RDSInstanceObservation {
    let s = &o.settings;
    RDSInstanceObservation {
        db_instance_identifier: Some(o.identifier.clone()),
        db_instance_status: Some(o.status.clone()),
        endpoint: (o.address.is_some() || o.port.is_some()).then(|| Endpoint {
            address: o.address.clone(),
            port: o.port,
        }),
        arn: o.arn.clone(),
        engine_version: o.engine_version.clone(),
        allocated_storage: o.allocated_storage,
        db_instance_class: o.instance_class.clone(),
        multi_az: o.multi_az,
        storage_encrypted: o.storage_encrypted,
        deletion_protection: o.deletion_protection,
        backup_retention_period: o.backup_retention_period,
        pending_modified_values: pending_values(&o.pending),
        max_allocated_storage: s.max_allocated_storage,
        storage_type: s.storage_type.clone(),
        iops: s.iops,
        storage_throughput: s.storage_throughput,
        kms_key_id: s.kms_key_id.clone(),
        db_subnet_group_name: s.subnet_group.clone(),
        vpc_security_group_ids: s.security_groups.clone().unwrap_or_default(),
        db_parameter_group_name: s.parameter_group.clone(),
        parameter_apply_status: s.parameter_apply_status.clone(),
        preferred_backup_window: s.backup_window.clone(),
        preferred_maintenance_window: s.maintenance_window.clone(),
        latest_restorable_time: s.latest_restorable_time.clone(),
        ca_certificate_identifier: s.ca_certificate.clone(),
        ca_certificate_valid_till: s.ca_certificate_valid_till.clone(),
        performance_insights_enabled: s.performance_insights,
    }
}

/// How far LatestRestorableTime may move before the status shows it: RDS
/// advances it every few minutes (moto on every call), and each status
/// write wakes the object again.
pub const RESTORABLE_TIME_STEP_SECS: i64 = 300;

/// `a` with the latest restorable time the object's status already shows,
/// unless the new one is [`RESTORABLE_TIME_STEP_SECS`] or more ahead of it.
fn steady(obj: &RDSInstance, mut a: RDSInstanceObservation) -> RDSInstanceObservation {
    let shown = obj
        .status
        .as_ref()
        .and_then(|s| s.at_provider.as_ref())
        .and_then(|p| p.latest_restorable_time.as_deref());
    a.latest_restorable_time = steady_time(shown, a.latest_restorable_time.take());
    a
}

/// See [`steady`]: times are RFC 3339; anything unparsable is taken as new.
pub fn steady_time(shown: Option<&str>, new: Option<String>) -> Option<String> {
    use aws_sdk_rds::primitives::{DateTime, DateTimeFormat};
    let secs = |t: &str| {
        DateTime::from_str(t, DateTimeFormat::DateTime)
            .ok()
            .map(|d| d.secs())
    };
    match (shown, &new) {
        (Some(old), Some(n)) => match (secs(old), secs(n)) {
            (Some(a), Some(b)) if (0..RESTORABLE_TIME_STEP_SECS).contains(&(b - a)) => {
                Some(old.to_string())
            }
            _ => new,
        },
        _ => new,
    }
}

/// `status.atProvider.pendingModifiedValues`: None when nothing is pending.
pub fn pending_values(p: &Pending) -> Option<PendingModifiedValues> {
    (!p.is_empty()).then(|| PendingModifiedValues {
        db_instance_class: p.instance_class.clone(),
        allocated_storage: p.allocated_storage,
        engine_version: p.engine_version.clone(),
        multi_az: p.multi_az,
        backup_retention_period: p.backup_retention_period,
        storage_type: p.storage_type.clone(),
        iops: p.iops,
        storage_throughput: p.storage_throughput,
        port: p.port,
        ca_certificate_identifier: p.ca_certificate.clone(),
        db_subnet_group_name: p.subnet_group.clone(),
        iam_database_authentication_enabled: p.iam_auth,
        master_user_password: p.master_user_password,
    })
}

/// The database a client connects to: the spec's, else the engine's default.
pub fn database_name(obj: &RDSInstance) -> String {
    let p = &obj.spec.for_provider;
    match &p.db_name {
        Some(n) => n.clone(),
        None if p.engine == "postgres" => "postgres".to_string(),
        None => String::new(),
    }
}

/// The connection details: username and database always; host, port and
/// endpoint once RDS reports them.
pub fn connection(obj: &RDSInstance, observed: Option<&Observed>) -> Connection {
    let mut c = Connection::from([
        (
            "username".to_string(),
            obj.spec.for_provider.master_username.clone(),
        ),
        ("database".to_string(), database_name(obj)),
    ]);
    if let Some(o) = observed {
        if let Some(address) = &o.address {
            c.insert("host".to_string(), address.clone());
            c.insert("endpoint".to_string(), address.clone());
        }
        if let Some(port) = o.port {
            c.insert("port".to_string(), port.to_string());
        }
    }
    c
}

/// The final snapshot of `<identifier>`: `<identifier>-final`.
pub fn final_snapshot_name(id: &str) -> String {
    format!("{id}-final")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::aws::diff::ObservedSettings;

    fn obj() -> RDSInstance {
        RDSInstance::new(
            "team-a-orders-instance",
            serde_json::from_value(serde_json::json!({
                "forProvider": {
                    "dbInstanceClass": "db.t3.micro",
                    "engine": "postgres",
                    "allocatedStorage": 20,
                    "dbName": "orders",
                }
            }))
            .expect("spec"),
        )
    }

    fn me() -> Identity {
        Identity {
            cluster: "c1".into(),
            uid: "u1".into(),
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn ownership_rules() {
        let id = "db1";
        let own = |person: bool, recorded: Option<&str>, t: &[(&str, &str)]| {
            ownership(&me(), "obj", id, person, recorded, &tags(t))
        };
        let not_ours = |v: Verdict, needle: &str| {
            assert!(
                matches!(&v, Verdict::NotOurs(m) if m.contains("exists and is not ours") && m.contains(needle)),
                "{needle}: {v:?}"
            )
        };
        // Marked ours.
        let ours = [(OWNER_MARK_TAG, "c1/u1"), (OWNER_TAG, "obj")];
        assert_eq!(own(false, None, &ours), Verdict::Ours);
        // Another UID of this cluster (object re-created): not ours, even
        // with the old status and name tag; a person may adopt it.
        let old = [(OWNER_MARK_TAG, "c1/u0"), (OWNER_TAG, "obj")];
        not_ours(own(false, Some(id), &old), "UID u0");
        assert_eq!(own(true, None, &old), Verdict::Take(Claim::Adopt));
        // Another cluster: never.
        let other = [(OWNER_MARK_TAG, "c2/u1"), (OWNER_TAG, "obj")];
        not_ours(own(false, Some(id), &other), "another cluster");
        not_ours(own(true, Some(id), &other), "another cluster");
        // Unmarked, never seen: refused unless a person adopts it.
        not_ours(own(false, None, &[]), GENERATED_NAME);
        not_ours(own(false, None, &[(OWNER_TAG, "obj")]), "did not create");
        assert_eq!(own(true, None, &[]), Verdict::Take(Claim::Adopt));
        // Another object's (earlier dbclaim): refused, even for adoption.
        not_ours(
            own(true, None, &[(OWNER_TAG, "other")]),
            "RDSInstance \"other\"",
        );
        // Upgrade: the old name tag and this object's status recording it.
        assert_eq!(
            own(false, Some("DB1"), &[(OWNER_TAG, "obj")]),
            Verdict::Take(Claim::Upgrade)
        );
        // ...but a status recording another identifier is no evidence.
        not_ours(
            own(false, Some("db2"), &[(OWNER_TAG, "obj")]),
            "did not create",
        );
        // ...nor a status without the name tag (a foreign unmarked instance).
        not_ours(own(false, Some(id), &[]), "did not create");
    }

    #[test]
    fn connection_details() {
        let o = obj();
        let before = connection(&o, None);
        assert_eq!(before["username"], "dbadmin");
        assert_eq!(before["database"], "orders");
        assert!(
            !before.contains_key("host"),
            "no host before RDS reports one"
        );
        let observed = Observed {
            identifier: "team-a-orders-instance".into(),
            status: "available".into(),
            address: Some("team-a-orders-instance.x.us-east-1.rds.amazonaws.com".into()),
            port: Some(5432),
            ..Default::default()
        };
        let after = connection(&o, Some(&observed));
        assert_eq!(
            after["host"],
            "team-a-orders-instance.x.us-east-1.rds.amazonaws.com"
        );
        assert_eq!(after["endpoint"], after["host"]);
        assert_eq!(after["port"], "5432");
    }

    #[test]
    fn default_database() {
        let mut o = obj();
        o.spec.for_provider.db_name = None;
        assert_eq!(database_name(&o), "postgres");
        o.spec.for_provider.engine = "mysql".into();
        assert_eq!(database_name(&o), "");
    }

    #[test]
    fn retry_classes() {
        assert_eq!(Error::Invalid("x".into()).retry(), Retry::Slow);
        assert_eq!(Error::Conflict("x".into()).retry(), Retry::Slow);
        assert_eq!(
            Error::Config(ResolveError::NotFound("d".into())).retry(),
            Retry::Slow
        );
        assert_eq!(
            Error::Config(ResolveError::NotFound("d".into())).reason(),
            SyncedReason::ProviderError
        );
        assert_eq!(
            Error::Invalid("x".into()).reason(),
            SyncedReason::ReconcileError
        );
        let throttled = Error::Api {
            failure: ApiFailure {
                operation: "DescribeDBInstances",
                code: Some("Throttling".into()),
                message: None,
                http_status: Some(400),
                transport: None,
            },
            message: String::new(),
        };
        assert_eq!(throttled.retry(), Retry::Backoff);
        assert!(throttled.keeps_ready(), "an API outage keeps Ready");
    }

    #[test]
    fn restorable_time_moves_in_steps_not_on_every_describe() {
        let t = |s: &str| Some(s.to_string());
        assert_eq!(
            steady_time(None, t("2026-12-06T03:00:00Z")),
            t("2026-12-06T03:00:00Z")
        );
        assert_eq!(
            steady_time(Some("2026-12-06T03:00:00Z"), t("2026-12-06T03:04:59.5Z")),
            t("2026-12-06T03:00:00Z")
        );
        assert_eq!(
            steady_time(Some("2026-12-06T03:00:00Z"), t("2026-12-06T03:05:00Z")),
            t("2026-12-06T03:05:00Z")
        );
        // earlier (a restore) or unreadable: what RDS says
        assert_eq!(
            steady_time(Some("2026-12-06T03:00:00Z"), t("2026-12-06T02:59:00Z")),
            t("2026-12-06T02:59:00Z")
        );
        assert_eq!(
            steady_time(Some("x"), t("2026-12-06T03:01:00Z")),
            t("2026-12-06T03:01:00Z")
        );
        assert_eq!(steady_time(Some("2026-12-06T03:00:00Z"), None), None);
    }

    #[test]
    fn status_reports_what_a_reliability_review_needs() {
        let o = Observed {
            identifier: "orders".into(),
            status: "available".into(),
            engine_version: Some("16.4".into()),
            instance_class: Some("db.t3.micro".into()),
            allocated_storage: Some(20),
            multi_az: Some(true),
            storage_encrypted: Some(true),
            settings: ObservedSettings {
                storage_type: Some("gp2".into()),
                max_allocated_storage: Some(200),
                security_groups: Some(vec!["sg-0abc".into()]),
                ca_certificate: Some("rds-ca-rsa2048-g1".into()),
                ca_certificate_valid_till: Some("2061-05-21T22:23:47Z".into()),
                latest_restorable_time: Some("2026-12-06T03:00:00Z".into()),
                ..Default::default()
            },
            pending: Pending {
                storage_type: Some("gp3".into()),
                instance_class: Some("db.m6g.large".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let a = observation(&o);
        assert_eq!(a.storage_type.as_deref(), Some("gp2"));
        assert_eq!(a.allocated_storage, Some(20));
        assert_eq!(a.max_allocated_storage, Some(200));
        assert_eq!(a.db_instance_class.as_deref(), Some("db.t3.micro"));
        assert_eq!(a.engine_version.as_deref(), Some("16.4"));
        assert_eq!(a.multi_az, Some(true));
        assert_eq!(a.vpc_security_group_ids, vec!["sg-0abc".to_string()]);
        assert_eq!(
            a.ca_certificate_identifier.as_deref(),
            Some("rds-ca-rsa2048-g1")
        );
        assert_eq!(
            a.ca_certificate_valid_till.as_deref(),
            Some("2061-05-21T22:23:47Z")
        );
        assert_eq!(
            a.latest_restorable_time.as_deref(),
            Some("2026-12-06T03:00:00Z")
        );
        let p = a.pending_modified_values.expect("pending values");
        assert_eq!(p.storage_type.as_deref(), Some("gp3"));
        assert_eq!(p.db_instance_class.as_deref(), Some("db.m6g.large"));
        let json = serde_json::to_value(&p).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"dbInstanceClass": "db.m6g.large", "storageType": "gp3"})
        );
        // nothing pending: no pendingModifiedValues at all
        let o = Observed {
            pending: Pending::default(),
            ..o
        };
        assert_eq!(observation(&o).pending_modified_values, None);
    }

    #[test]
    fn final_snapshot() {
        assert_eq!(final_snapshot_name("team-a-orders"), "team-a-orders-final");
        assert!(final_snapshot_name(&"a".repeat(63)).len() <= 255);
    }
}
