//! Whose an external object is: the one decision every provider makes
//! before it alters, re-passwords or drops anything ("What dbclaim never
//! does" in the contract). Pure.
//!
//! dbclaim marks what it creates with `<cluster-id>/<object uid>` (RDS tag
//! `dbclaim.io/owner`, PostgreSQL `COMMENT ON`). An external object is ours
//! when it carries exactly our mark. It becomes ours (the provider writes the
//! mark) only by a person's adoption (`dbclaim.io/external-name` set by hand)
//! or by the narrow upgrade evidence a provider finds for objects an older
//! dbclaim made without marks. Anything else is "not ours": refused, never
//! altered or dropped.

/// Who is asking: this cluster and the managed object's UID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub cluster: String,
    pub uid: String,
}

impl Identity {
    /// `obj` of this cluster.
    pub fn of(cluster: &str, obj: &impl kube::ResourceExt) -> Self {
        Identity {
            cluster: cluster.to_string(),
            uid: obj.uid().unwrap_or_default(),
        }
    }

    /// The mark dbclaim writes: `<cluster-id>/<uid>`.
    pub fn mark(&self) -> String {
        format!("{}/{}", self.cluster, self.uid)
    }
}

/// Why a provider may take an unmarked (or re-created) object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nothing: an object found under the computed name.
    None,
    /// A person named it with `dbclaim.io/external-name`.
    Adopt,
    /// The provider's evidence that an older dbclaim made it for this very
    /// object (before marks existed).
    Upgrade,
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Carries our mark.
    Ours,
    /// Ours from now on: the provider writes the mark before any change.
    Take(Claim),
    /// Someone else's: the message says why and what to do.
    NotOurs(String),
}

impl Verdict {
    pub fn is_ours(&self) -> bool {
        !matches!(self, Verdict::NotOurs(_))
    }
}

/// Decides about `what` ("role \"x\"", "DB instance x") carrying `mark`
/// (None: unmarked). `privileged` lists attributes that forbid adoption
/// (SUPERUSER, …); `how_to_adopt` completes the message of an unmarked one.
pub fn decide(
    me: &Identity,
    what: &str,
    mark: Option<&str>,
    claim: Claim,
    privileged: &[&str],
    how_to_adopt: &str,
) -> Verdict {
    let mine = me.mark();
    if mark == Some(mine.as_str()) {
        return Verdict::Ours;
    }
    let not_ours = |why: String| Verdict::NotOurs(format!("{what} exists and is not ours: {why}"));
    if !privileged.is_empty() {
        return not_ours(format!(
            "it has {}, and dbclaim never takes over such a role",
            privileged.join(", ")
        ));
    }
    match mark.map(split) {
        Some((cluster, uid)) if cluster == me.cluster => match claim {
            Claim::Adopt => Verdict::Take(Claim::Adopt),
            _ => not_ours(format!(
                "it belongs to another object of this cluster (UID {uid}), deleted or re-created since; {how_to_adopt}"
            )),
        },
        Some((cluster, _)) => not_ours(format!(
            "it is marked by another cluster (\"{cluster}\"); choose another name"
        )),
        None => match claim {
            Claim::None => not_ours(format!("dbclaim did not create it; {how_to_adopt}")),
            c => Verdict::Take(c),
        },
    }
}

/// Whether annotation `key` on `meta` was set by a person rather than by
/// dbclaim's claim controller (a composition may render annotations, and a
/// tenant's claim must never be able to adopt): the claim controller's field
/// manager does not own it.
pub fn set_by_person(meta: &kube::api::ObjectMeta, key: &str) -> bool {
    let Some(value) = meta.annotations.as_ref().and_then(|a| a.get(key)) else {
        return false;
    };
    let by_claims = meta.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(crate::contract::CLAIM_FIELD_MANAGER)
            && m.fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:metadata"))
                .and_then(|m| m.get("f:annotations"))
                .is_some_and(|a| a.get(format!("f:{key}")).is_some())
    });
    !value.is_empty() && !by_claims
}

/// (cluster, uid) of a mark; a mark without `/` is all cluster.
fn split(mark: &str) -> (&str, &str) {
    mark.rsplit_once('/').unwrap_or((mark, ""))
}

/// Why `id` cannot be a cluster identity, if it cannot: it goes into RDS tag
/// values and SQL comments, and `/` separates it from the UID.
pub fn cluster_id_problem(id: &str) -> Option<String> {
    let ok = !id.is_empty()
        && id.len() <= 100
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    (!ok).then(|| {
        format!(
            "cluster id \"{id}\" is not valid: use 1 to 100 of A-Z, a-z, 0-9, '.', '_', ':', '-'"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Identity {
        Identity {
            cluster: "c1".into(),
            uid: "u1".into(),
        }
    }

    fn d(mark: Option<&str>, claim: Claim, privileged: &[&str]) -> Verdict {
        decide(
            &me(),
            "role \"x\"",
            mark,
            claim,
            privileged,
            "to adopt it, …",
        )
    }

    #[test]
    fn marked_ours() {
        assert_eq!(me().mark(), "c1/u1");
        assert_eq!(d(Some("c1/u1"), Claim::None, &[]), Verdict::Ours);
        // Ours whatever a DBA made of it later.
        assert_eq!(d(Some("c1/u1"), Claim::None, &["SUPERUSER"]), Verdict::Ours);
    }

    #[test]
    fn another_uid_of_this_cluster() {
        let v = d(Some("c1/u0"), Claim::None, &[]);
        assert!(
            matches!(&v, Verdict::NotOurs(m) if m.starts_with("role \"x\" exists and is not ours") && m.contains("UID u0")),
            "{v:?}"
        );
        assert_eq!(
            d(Some("c1/u0"), Claim::Upgrade, &[]),
            v,
            "no upgrade over a mark"
        );
        assert_eq!(
            d(Some("c1/u0"), Claim::Adopt, &[]),
            Verdict::Take(Claim::Adopt)
        );
    }

    #[test]
    fn another_cluster() {
        for claim in [Claim::None, Claim::Adopt, Claim::Upgrade] {
            let v = d(Some("c2/u1"), claim, &[]);
            assert!(
                matches!(&v, Verdict::NotOurs(m) if m.contains("another cluster (\"c2\")")),
                "{v:?}"
            );
        }
    }

    #[test]
    fn unmarked() {
        let v = d(None, Claim::None, &[]);
        assert!(
            matches!(&v, Verdict::NotOurs(m) if m.contains("exists and is not ours: dbclaim did not create it; to adopt it")),
            "{v:?}"
        );
        assert!(!v.is_ours());
        assert_eq!(d(None, Claim::Adopt, &[]), Verdict::Take(Claim::Adopt));
        assert_eq!(d(None, Claim::Upgrade, &[]), Verdict::Take(Claim::Upgrade));
        assert!(Verdict::Take(Claim::Adopt).is_ours());
    }

    #[test]
    fn privileged_roles_are_never_taken() {
        for claim in [Claim::None, Claim::Adopt, Claim::Upgrade] {
            for mark in [None, Some("c1/u0"), Some("c2/u1")] {
                let v = d(mark, claim, &["SUPERUSER", "BYPASSRLS"]);
                assert!(
                    matches!(&v, Verdict::NotOurs(m) if m.contains("SUPERUSER, BYPASSRLS")),
                    "{mark:?} {claim:?}: {v:?}"
                );
            }
        }
    }

    #[test]
    fn annotations_a_claim_rendered_are_not_a_persons() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
        let key = "dbclaim.io/external-name";
        let mut meta = kube::api::ObjectMeta {
            annotations: Some([(key.to_string(), "db1".to_string())].into()),
            ..Default::default()
        };
        assert!(set_by_person(&meta, key));
        assert!(!set_by_person(&meta, "other"));
        let entry = |manager: &str| ManagedFieldsEntry {
            manager: Some(manager.into()),
            fields_v1: Some(FieldsV1(serde_json::json!({
                "f:metadata": {"f:annotations": {format!("f:{key}"): {}}}
            }))),
            ..Default::default()
        };
        meta.managed_fields = Some(vec![entry("kubectl-annotate")]);
        assert!(set_by_person(&meta, key));
        meta.managed_fields = Some(vec![entry("kubectl-annotate"), entry("dbclaim")]);
        assert!(
            !set_by_person(&meta, key),
            "rendered by the claim controller"
        );
    }

    #[test]
    fn cluster_ids() {
        assert_eq!(cluster_id_problem("5f0c-2a"), None);
        assert_eq!(cluster_id_problem("prod.eu:1_a"), None);
        for bad in ["", "a/b", "a b", "é", &"a".repeat(101)] {
            assert!(cluster_id_problem(bad).is_some(), "{bad}");
        }
    }
}
