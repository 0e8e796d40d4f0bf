//! Whether a claim may move to another composition: pure.
//!
//! A move (`spec.compositionRef` naming a composition other than
//! `status.composition`) deletes every recorded composed object the new
//! render does not produce, and with it the database behind it. That is
//! refused (`Synced=False, reason=ReplacementBlocked`, naming the objects)
//! unless the claim carries `dbclaim.io/allow-replacement: "true"`.
//!
//! The caller runs `check` after render and before apply, and applies
//! nothing when it fails: the claim keeps its objects, Secret and data.

use kube::ResourceExt;

use crate::api::DatabaseClaim;
use crate::api::claim::ResourceStatus;
use crate::conditions::SyncedReason;

pub use crate::contract::ALLOW_REPLACEMENT_ANNOTATION;

/// One composed object as the render produces it: apiVersion, kind, name.
pub type ObjectKey<'a> = (&'a str, &'a str, &'a str);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "moving from composition {from:?} to {to:?} would delete {}: the claim stays on {from:?} with its objects and data; set spec.compositionRef back to {from:?}, or annotate the claim with dbclaim.io/allow-replacement: \"true\" to move and delete them",
    objects.join(", ")
)]
pub struct Blocked {
    pub from: String,
    pub to: String,
    /// `<Kind> <name>` of each object that would be deleted.
    pub objects: Vec<String>,
}

impl Blocked {
    /// The claim's `Synced=False` reason. Nothing but a person's change to
    /// the claim lifts it, so the claim waits for that change (no requeue).
    pub fn synced_reason(&self) -> SyncedReason {
        SyncedReason::ReplacementBlocked
    }
}

/// Whether the claim opts in to deleting what a move leaves behind.
pub fn allowed(claim: &DatabaseClaim) -> bool {
    claim
        .annotations()
        .get(ALLOW_REPLACEMENT_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// The recorded objects that a render producing `rendered` no longer
/// contains, in recorded order. Objects match on apiVersion, kind and name.
pub fn would_delete<'r>(
    recorded: &'r [ResourceStatus],
    rendered: &[ObjectKey<'_>],
) -> Vec<&'r ResourceStatus> {
    recorded
        .iter()
        .filter(|r| {
            !rendered.iter().any(|(api_version, kind, name)| {
                r.api_version == *api_version && r.kind == *kind && r.resource_name == *name
            })
        })
        .collect()
}

/// Refuses a move to `selected` that would delete recorded objects, unless
/// the claim allows it. No recorded composition (a new claim) or the same
/// composition (an edit the platform team made, previewed by `dbclaim
/// diff`) is no move.
pub fn check(
    claim: &DatabaseClaim,
    selected: &str,
    rendered: &[ObjectKey<'_>],
) -> Result<(), Blocked> {
    let Some(from) = crate::selection::recorded(claim) else {
        return Ok(());
    };
    if from == selected || allowed(claim) {
        return Ok(());
    }
    let recorded = claim
        .status
        .as_ref()
        .map(|s| s.resources.as_slice())
        .unwrap_or_default();
    let gone = would_delete(recorded, rendered);
    if gone.is_empty() {
        return Ok(());
    }
    Err(Blocked {
        from: from.to_string(),
        to: selected.to_string(),
        objects: gone
            .iter()
            .map(|r| format!("{} {}", r.kind, r.resource_name))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DatabaseClaimSpec, DatabaseClaimStatus, NameRef};
    use std::collections::BTreeMap;

    fn res(api_version: &str, kind: &str, name: &str) -> ResourceStatus {
        ResourceStatus {
            name: "r".into(),
            api_version: api_version.into(),
            kind: kind.into(),
            resource_name: name.into(),
            ready: true,
        }
    }

    const RDS: (&str, &str, &str) = ("aws.dbclaim.io/v1alpha1", "RDSInstance", "ns-c-instance");
    const DB: (&str, &str, &str) = ("postgres.dbclaim.io/v1alpha1", "Database", "ns-c-database");

    fn claim(recorded: Option<&str>, resources: Vec<ResourceStatus>) -> DatabaseClaim {
        let spec: DatabaseClaimSpec =
            serde_json::from_value(serde_json::json!({"engine": "postgres"}))
                .unwrap_or_else(|e| panic!("{e}"));
        let mut c = DatabaseClaim::new("c", spec);
        c.status = Some(DatabaseClaimStatus {
            composition: recorded.map(|n| NameRef { name: n.into() }),
            resources,
            ..Default::default()
        });
        c
    }

    fn allow(mut c: DatabaseClaim, value: &str) -> DatabaseClaim {
        c.metadata.annotations = Some(BTreeMap::from([(
            ALLOW_REPLACEMENT_ANNOTATION.to_string(),
            value.to_string(),
        )]));
        c
    }

    #[test]
    fn would_delete_matches_on_api_version_kind_and_name() {
        let recorded = vec![res(RDS.0, RDS.1, RDS.2), res(DB.0, DB.1, DB.2)];
        assert_eq!(
            would_delete(&recorded, &[RDS, DB]),
            Vec::<&ResourceStatus>::new()
        );
        assert_eq!(would_delete(&recorded, &[DB]), vec![&recorded[0]]);
        assert_eq!(would_delete(&recorded, &[]).len(), 2);
        // Same name, another kind or version: the old object would go.
        let other_kind = ("aws.dbclaim.io/v1alpha1", "Database", RDS.2);
        assert_eq!(would_delete(&recorded[..1], &[other_kind]).len(), 1);
        let other_version = ("aws.dbclaim.io/v1beta1", RDS.1, RDS.2);
        assert_eq!(would_delete(&recorded[..1], &[other_version]).len(), 1);
        let other_name = (RDS.0, RDS.1, "ns-c-instance-2");
        assert_eq!(would_delete(&recorded[..1], &[other_name]).len(), 1);
    }

    #[test]
    fn a_move_that_deletes_is_blocked_and_names_the_objects() {
        let c = claim(Some("aws-rds-postgres"), vec![res(RDS.0, RDS.1, RDS.2)]);
        let err = check(&c, "shared-postgres", &[DB]);
        assert_eq!(
            err,
            Err(Blocked {
                from: "aws-rds-postgres".into(),
                to: "shared-postgres".into(),
                objects: vec!["RDSInstance ns-c-instance".into()],
            })
        );
        let err = err.err().unwrap_or_else(|| panic!("blocked"));
        assert_eq!(err.synced_reason(), SyncedReason::ReplacementBlocked);
        let text = err.to_string();
        assert!(text.contains("RDSInstance ns-c-instance"), "{text}");
        assert!(text.contains(ALLOW_REPLACEMENT_ANNOTATION), "{text}");
    }

    #[test]
    fn the_annotation_allows_the_move() {
        let c = claim(Some("a"), vec![res(RDS.0, RDS.1, RDS.2)]);
        assert_eq!(check(&allow(c.clone(), "true"), "b", &[DB]), Ok(()));
        // Only the exact value "true" opts in.
        assert!(check(&allow(c.clone(), "yes"), "b", &[DB]).is_err());
        assert!(check(&allow(c, "True"), "b", &[DB]).is_err());
    }

    #[test]
    fn no_move_or_nothing_deleted_is_not_blocked() {
        // A new claim: nothing recorded.
        let fresh = claim(None, vec![]);
        assert_eq!(check(&fresh, "b", &[DB]), Ok(()));
        // The same composition, even with an object dropped by an edit.
        let same = claim(Some("a"), vec![res(RDS.0, RDS.1, RDS.2)]);
        assert_eq!(check(&same, "a", &[DB]), Ok(()));
        // A move that keeps every recorded object.
        let keeps = claim(Some("a"), vec![res(DB.0, DB.1, DB.2)]);
        assert_eq!(check(&keeps, "b", &[DB, RDS]), Ok(()));
        // A move from a claim that never recorded resources.
        let empty = claim(Some("a"), vec![]);
        assert_eq!(check(&empty, "b", &[DB]), Ok(()));
    }

    #[test]
    fn every_object_that_would_go_is_named_in_recorded_order() {
        let c = claim(
            Some("a"),
            vec![
                res(RDS.0, RDS.1, RDS.2),
                res("v1", "ConfigMap", "x"),
                res(DB.0, DB.1, DB.2),
            ],
        );
        let err = check(&c, "b", &[DB])
            .err()
            .unwrap_or_else(|| panic!("blocked"));
        assert_eq!(
            err.objects,
            vec!["RDSInstance ns-c-instance", "ConfigMap x"]
        );
    }
}
