//! Scopes of well-known kinds, for rendering without a cluster to ask.

use super::Scope;

/// The group of an `apiVersion`: `""` for the core group (`v1`).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// Whether the object is a core `v1` Secret: the kind that must never leave
/// the claim's namespace, whatever the scope function says.
pub fn is_core_secret(api_version: &str, kind: &str) -> bool {
    api_version == "v1" && kind == "Secret"
}

/// The scope of a kind without asking a cluster, for `dbclaim render`:
/// dbclaim's own managed kinds and Crossplane-style managed resources are
/// cluster-scoped; core kinds, ACK, Config Connector, Azure Service Operator
/// and CloudNativePG kinds live in a namespace. Unknown kinds are taken as
/// namespaced, the common case for add-on operators and the safe one (the
/// object then stays in the claim's namespace).
pub fn builtin_scope(api_version: &str, kind: &str) -> Scope {
    let group = group_of(api_version);
    let cluster = match group {
        "" => matches!(
            kind,
            "Namespace" | "Node" | "PersistentVolume" | "ComponentStatus"
        ),
        "aws.dbclaim.io" | "postgres.dbclaim.io" => true,
        "rbac.authorization.k8s.io" => matches!(kind, "ClusterRole" | "ClusterRoleBinding"),
        "storage.k8s.io" => matches!(
            kind,
            "StorageClass" | "CSIDriver" | "CSINode" | "VolumeAttachment"
        ),
        "apiextensions.k8s.io" => kind == "CustomResourceDefinition",
        "scheduling.k8s.io" => kind == "PriorityClass",
        // Crossplane v2 namespaced managed resources live in `*.m.<provider>`.
        g if g.ends_with(".m.upbound.io") || g.ends_with(".m.crossplane.io") => false,
        g if g.ends_with(".upbound.io") || g.ends_with(".crossplane.io") => true,
        g if g.ends_with(".services.k8s.aws")
            || g.ends_with(".cnrm.cloud.google.com")
            || g.ends_with(".azure.com")
            || g == "postgresql.cnpg.io" =>
        {
            false
        }
        _ => false,
    };
    if cluster {
        Scope::Cluster
    } else {
        Scope::Namespaced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_kinds() {
        let cases = [
            ("aws.dbclaim.io/v1alpha1", "RDSInstance", Scope::Cluster),
            ("postgres.dbclaim.io/v1alpha1", "Database", Scope::Cluster),
            ("v1", "ConfigMap", Scope::Namespaced),
            ("v1", "Secret", Scope::Namespaced),
            ("v1", "Service", Scope::Namespaced),
            ("v1", "Namespace", Scope::Cluster),
            ("rds.aws.upbound.io/v1beta1", "Instance", Scope::Cluster),
            (
                "rds.aws.m.upbound.io/v1beta1",
                "Instance",
                Scope::Namespaced,
            ),
            (
                "sql.gcp.crossplane.io/v1beta1",
                "CloudSQLInstance",
                Scope::Cluster,
            ),
            (
                "rds.services.k8s.aws/v1alpha1",
                "DBInstance",
                Scope::Namespaced,
            ),
            (
                "sql.cnrm.cloud.google.com/v1beta1",
                "SQLInstance",
                Scope::Namespaced,
            ),
            (
                "dbforpostgresql.azure.com/v1api20221201",
                "FlexibleServer",
                Scope::Namespaced,
            ),
            ("postgresql.cnpg.io/v1", "Cluster", Scope::Namespaced),
            (
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                Scope::Cluster,
            ),
            ("rbac.authorization.k8s.io/v1", "Role", Scope::Namespaced),
            ("example.com/v1", "Widget", Scope::Namespaced),
            ("", "", Scope::Namespaced),
        ];
        for (av, kind, want) in cases {
            assert_eq!(builtin_scope(av, kind), want, "{av} {kind}");
        }
        assert_eq!(group_of("apps/v1"), "apps");
        assert_eq!(group_of("v1"), "");
    }
}
