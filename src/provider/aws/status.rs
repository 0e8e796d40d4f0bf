//! What a `DBInstanceStatus` means for the object: its Ready condition, how
//! soon to look again, and what dbclaim may do to the instance meanwhile.
//!
//! The status is an open string: RDS adds values over time. An unknown value
//! is not ready and is polled like a transitional one.

use std::time::Duration;

use crate::conditions::ReadyReason;

/// How often an instance in a transitional state is described again.
pub const POLL_TRANSITIONAL: Duration = Duration::from_secs(10);
/// How often an instance that needs a person (failed, stopped, …) is checked.
pub const POLL_STUCK: Duration = Duration::from_secs(60);
/// How often an available instance is compared with its spec.
pub const POLL_AVAILABLE: Duration = Duration::from_secs(300);

/// Every DBInstanceStatus value the RDS user guide documents.
pub const DOCUMENTED: &[&str] = &[
    "available",
    "backing-up",
    "configuring-enhanced-monitoring",
    "configuring-iam-database-auth",
    "configuring-log-exports",
    "converting-to-vpc",
    "creating",
    "delete-precheck",
    "deleting",
    "failed",
    "inaccessible-encryption-credentials",
    "inaccessible-encryption-credentials-recoverable",
    "incompatible-network",
    "incompatible-option-group",
    "incompatible-parameters",
    "incompatible-restore",
    "insufficient-capacity",
    "maintenance",
    "modifying",
    "moving-to-vpc",
    "rebooting",
    "resetting-master-credentials",
    "renaming",
    "restore-error",
    "starting",
    "stopped",
    "stopping",
    "storage-config-upgrade",
    "storage-full",
    "storage-initialization",
    "storage-optimization",
    "upgrading",
];

/// The kind of state an instance is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `available`: ready, and open to modifications.
    Available,
    /// Work in progress that ends by itself (creating, modifying, …).
    Transitional,
    /// Being deleted.
    Deleting,
    /// Stopped or stopping by someone's choice.
    Stopped,
    /// Needs a person: failed, incompatible-*, storage-full, …
    Broken,
    /// A value this version of dbclaim does not know.
    Unknown,
}

/// What dbclaim makes of one observed status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    pub phase: Phase,
    pub ready: bool,
    pub reason: ReadyReason,
    pub message: String,
    /// When to describe the instance again.
    pub poll: Duration,
    /// Whether ModifyDBInstance may be sent for any drift.
    pub can_modify: bool,
    /// Whether a storage increase (only) may be sent: `storage-full`.
    pub can_grow_storage: bool,
    /// Whether RDS can take a final snapshot when deleting in this state.
    pub final_snapshot_possible: bool,
}

pub fn phase(status: &str) -> Phase {
    match status {
        "available" => Phase::Available,
        "deleting" | "delete-precheck" => Phase::Deleting,
        "stopped" | "stopping" => Phase::Stopped,
        "failed"
        | "storage-full"
        | "restore-error"
        | "insufficient-capacity"
        | "inaccessible-encryption-credentials"
        | "inaccessible-encryption-credentials-recoverable" => Phase::Broken,
        s if s.starts_with("incompatible-") => Phase::Broken,
        "creating"
        | "backing-up"
        | "modifying"
        | "upgrading"
        | "rebooting"
        | "resetting-master-credentials"
        | "renaming"
        | "maintenance"
        | "starting"
        | "moving-to-vpc"
        | "converting-to-vpc"
        | "storage-optimization"
        | "storage-config-upgrade"
        | "storage-initialization" => Phase::Transitional,
        s if s.starts_with("configuring-") => Phase::Transitional,
        _ => Phase::Unknown,
    }
}

/// What the user can do about a state that needs a person.
fn advice(status: &str) -> &'static str {
    match status {
        "storage-full" => {
            "the instance ran out of storage: raise storageGB on the claim (or spec.forProvider.allocatedStorage) by at least 10%"
        }
        "failed" => {
            "RDS could not recover the instance: delete this object (a final snapshot is not possible in this state) and create it again, or restore from a snapshot"
        }
        "incompatible-parameters" => {
            "the instance's parameter group has values the engine cannot start with: fix or reset the parameter group in AWS"
        }
        "incompatible-option-group" => {
            "the instance's option group cannot be applied: fix the option group in AWS"
        }
        "incompatible-network" => {
            "RDS cannot place the instance in its subnets (no free IP addresses or a missing subnet): fix the DB subnet group in AWS"
        }
        "incompatible-restore" => {
            "a point-in-time restore failed: delete this object and restore again"
        }
        "incompatible-credentials" => {
            "the instance's Active Directory or Secrets Manager credentials are not usable: fix them in AWS"
        }
        "inaccessible-encryption-credentials" => {
            "the KMS key of the instance is disabled or deleted and RDS cannot recover it: restore from a snapshot"
        }
        "inaccessible-encryption-credentials-recoverable" => {
            "the KMS key of the instance is disabled: enable the key and start the instance within 7 days"
        }
        "restore-error" => "restoring the instance failed: delete this object and restore again",
        "insufficient-capacity" => {
            "AWS has no capacity for this instance class in the zone: choose another size, or try again later"
        }
        s if s.starts_with("incompatible-") => {
            "RDS reports a configuration it cannot run with: see the instance's events in AWS"
        }
        _ => "see the instance's events in AWS",
    }
}

/// Assesses `status`. `was_available`: the instance has been available
/// before (so a transitional state is an interruption, not the creation).
pub fn assess(status: &str, was_available: bool) -> Assessment {
    let phase = phase(status);
    let base = Assessment {
        phase,
        ready: false,
        reason: ReadyReason::Unavailable,
        message: String::new(),
        poll: POLL_TRANSITIONAL,
        can_modify: false,
        can_grow_storage: false,
        final_snapshot_possible: true,
    };
    match phase {
        Phase::Available => Assessment {
            ready: true,
            reason: ReadyReason::Available,
            message: "the DB instance is available".into(),
            poll: POLL_AVAILABLE,
            can_modify: true,
            ..base
        },
        Phase::Transitional => {
            let creating = status == "creating" || !was_available;
            Assessment {
                reason: if creating {
                    ReadyReason::Creating
                } else {
                    ReadyReason::Unavailable
                },
                message: format!("the DB instance is {status}; waiting for it to be available"),
                final_snapshot_possible: status != "creating",
                ..base
            }
        }
        Phase::Deleting => Assessment {
            reason: ReadyReason::Deleting,
            message: format!("the DB instance is {status}"),
            ..base
        },
        Phase::Stopped => Assessment {
            message: format!(
                "the DB instance is {status}: start it in AWS (aws rds start-db-instance) to use it"
            ),
            poll: if status == "stopping" {
                POLL_TRANSITIONAL
            } else {
                POLL_STUCK
            },
            ..base
        },
        Phase::Broken => Assessment {
            message: format!("the DB instance is {status}: {}", advice(status)),
            poll: POLL_STUCK,
            can_grow_storage: status == "storage-full",
            final_snapshot_possible: !matches!(
                status,
                "failed" | "incompatible-restore" | "incompatible-network" | "restore-error"
            ),
            ..base
        },
        Phase::Unknown => Assessment {
            message: format!(
                "the DB instance reports status \"{status}\", which dbclaim does not know; waiting for it to be available"
            ),
            ..base
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_status_is_known() {
        for s in DOCUMENTED {
            assert_ne!(phase(s), Phase::Unknown, "{s}");
        }
    }

    #[test]
    fn only_available_is_ready() {
        for s in DOCUMENTED {
            for was in [false, true] {
                let a = assess(s, was);
                assert_eq!(a.ready, *s == "available", "{s}");
                assert_eq!(a.can_modify, *s == "available", "{s}");
                assert_eq!(a.can_grow_storage, *s == "storage-full", "{s}");
                if !a.ready {
                    assert!(a.message.contains(s), "{s}: the message names the status");
                    assert!(a.poll <= POLL_STUCK, "{s}: not ready is polled");
                }
            }
        }
    }

    #[test]
    fn issue_table() {
        let available = assess("available", false);
        assert_eq!(
            (available.ready, available.reason, available.poll),
            (true, ReadyReason::Available, POLL_AVAILABLE)
        );
        for s in [
            "creating",
            "backing-up",
            "modifying",
            "configuring-enhanced-monitoring",
            "configuring-iam-database-auth",
            "configuring-log-exports",
            "upgrading",
            "rebooting",
            "resetting-master-credentials",
            "storage-optimization",
        ] {
            let first = assess(s, false);
            assert_eq!(first.phase, Phase::Transitional, "{s}");
            assert_eq!(first.reason, ReadyReason::Creating, "{s}");
            assert_eq!(first.poll, POLL_TRANSITIONAL, "{s}");
            let later = assess(s, true);
            let want = if s == "creating" {
                ReadyReason::Creating
            } else {
                ReadyReason::Unavailable
            };
            assert_eq!(later.reason, want, "{s}");
        }
        for s in [
            "failed",
            "incompatible-network",
            "incompatible-option-group",
            "incompatible-parameters",
            "incompatible-restore",
            "inaccessible-encryption-credentials",
            "inaccessible-encryption-credentials-recoverable",
            "storage-full",
        ] {
            let a = assess(s, true);
            assert_eq!(a.phase, Phase::Broken, "{s}");
            assert_eq!(a.reason, ReadyReason::Unavailable, "{s}");
            assert!(a.message.contains(": "), "{s}: says what to do");
        }
        assert!(assess("storage-full", true).message.contains("storageGB"));
    }

    #[test]
    fn unknown_is_not_ready_and_polled() {
        let a = assess("quantum-entangling", true);
        assert_eq!(a.phase, Phase::Unknown);
        assert!(!a.ready);
        assert_eq!(a.poll, POLL_TRANSITIONAL);
        assert!(a.message.contains("quantum-entangling"));
        // a new incompatible-* or configuring-* value falls in its family
        assert_eq!(phase("incompatible-something-new"), Phase::Broken);
        assert_eq!(phase("configuring-something-new"), Phase::Transitional);
    }

    #[test]
    fn final_snapshot_states() {
        for s in [
            "failed",
            "incompatible-restore",
            "incompatible-network",
            "creating",
        ] {
            assert!(!assess(s, false).final_snapshot_possible, "{s}");
        }
        for s in ["available", "storage-full", "stopped", "backing-up"] {
            assert!(assess(s, true).final_snapshot_possible, "{s}");
        }
        assert_eq!(assess("deleting", true).reason, ReadyReason::Deleting);
        assert_eq!(assess("stopped", true).poll, POLL_STUCK);
        assert_eq!(assess("stopping", true).poll, POLL_TRANSITIONAL);
    }
}
