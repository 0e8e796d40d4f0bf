//! Guardrails and tenant isolation against a real API server and PostgreSQL.

use std::time::Duration;

use crate::claims::{
    claim_yaml, condition, databases_like, psql, secret_data, setup_shared_postgres,
    wait_condition, wait_ready,
};
use crate::support::{
    self, Operator, Postgres, TestNamespace, kubectl, kubectl_apply, kubectl_ok, wait_for,
};

fn label_namespace(ns: &str, label: &str) {
    kubectl_ok(["label", "namespace", ns, label, "--overwrite"]);
}

#[tokio::test]
async fn claim_policy_limits_sizes_and_storage_and_a_running_claim_keeps_its_database() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("policy");
    let ns = ns.name();
    let team = support::unique_name("team");
    label_namespace(ns, &format!("team={team}"));
    let policy = support::unique_name("sandbox");
    let policy_yaml = |max_gb: u32, max_total_gb: u32| {
        format!(
            "apiVersion: dbclaim.io/v1alpha1\nkind: ClaimPolicy\nmetadata: {{name: {policy}}}\nspec:\n  namespaceSelector: {{matchLabels: {{team: {team}}}}}\n  allowedSizes: [small]\n  maxStorageGB: {max_gb}\n  maxTotalStorageGB: {max_total_gb}\n"
        )
    };
    kubectl_apply(&policy_yaml(30, 50));

    // A medium claim: refused, nothing provisioned.
    kubectl_apply(&claim_yaml(ns, "big", "  size: medium\n"));
    let claim = wait_condition(ns, "big", "Synced", "False", Some("PolicyViolation")).await;
    let (_, _, message) = condition(&claim, "Synced").unwrap_or_default();
    assert!(
        message.contains(&policy) && message.contains("small") && message.contains("medium"),
        "{message}"
    );
    assert!(databases_like(&pg, &format!("{ns}_big")).await.is_empty());
    // kstatus readers see it as failed until a person changes something.
    assert_eq!(
        condition(&claim, "Stalled").map(|c| c.0),
        Some("True".into())
    );
    assert_eq!(
        condition(&claim, "Reconciling").map(|c| c.0),
        Some("False".into())
    );
    let events = kubectl_ok([
        "get",
        "events",
        "-n",
        ns,
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(events.contains("PolicyViolation"), "{events}");

    // Two 20 GB claims fit; a third breaks the 50 GB total.
    kubectl_apply(&claim_yaml(ns, "one", ""));
    wait_ready(ns, "one").await;
    kubectl_apply(&claim_yaml(ns, "two", ""));
    wait_ready(ns, "two").await;
    kubectl_apply(&claim_yaml(ns, "three", ""));
    let claim = wait_condition(ns, "three", "Synced", "False", Some("PolicyViolation")).await;
    let (_, _, message) = condition(&claim, "Synced").unwrap_or_default();
    assert!(
        message.contains("maxTotalStorageGB") && message.contains("60 GB"),
        "{message}"
    );
    assert!(databases_like(&pg, &format!("{ns}_three")).await.is_empty());

    // A running claim grown past maxStorageGB keeps its database as it was.
    let before = secret_data(ns, "one-connection").await.unwrap_or_default();
    let rv_before = kubectl_ok([
        "get",
        "databases.postgres.dbclaim.io",
        &dbclaim::naming::composed_name(ns, "one", "database"),
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    kubectl_ok(["delete", "dbc", "three", "-n", ns]);
    kubectl_ok([
        "patch",
        "databaseclaims.v1alpha1.dbclaim.io",
        "one",
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"storageGB":40}}"#,
    ]);
    let claim = wait_condition(ns, "one", "Synced", "False", Some("PolicyViolation")).await;
    let (_, _, message) = condition(&claim, "Synced").unwrap_or_default();
    assert!(
        message.contains("maxStorageGB") && message.contains("30"),
        "{message}"
    );
    assert_eq!(
        condition(&claim, "Ready").map(|c| c.0),
        Some("True".into()),
        "a running claim stays Ready"
    );
    assert_eq!(
        psql(&before["uri"], "SELECT 1").as_deref(),
        Ok("1"),
        "old credentials still work"
    );
    let rv_after = kubectl_ok([
        "get",
        "databases.postgres.dbclaim.io",
        &dbclaim::naming::composed_name(ns, "one", "database"),
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);
    assert_eq!(
        rv_before, rv_after,
        "the composed Database was left exactly as it was"
    );
    assert_eq!(
        secret_data(ns, "one-connection").await.unwrap_or_default(),
        before
    );

    // storageGB cannot shrink (the API server refuses it), so the platform
    // team relaxes the policy instead; the claim recovers by itself.
    kubectl_apply(&policy_yaml(100, 200));
    wait_condition(ns, "one", "Synced", "True", Some("ReconcileSuccess")).await;

    // Changing the namespace's labels re-evaluates its claims.
    kubectl_apply(&claim_yaml(ns, "mid", "  size: medium\n  storageGB: 5\n"));
    wait_condition(ns, "mid", "Synced", "False", Some("PolicyViolation")).await;
    label_namespace(ns, "team=elsewhere");
    wait_ready(ns, "mid").await;

    for name in ["big", "one", "two", "mid"] {
        kubectl_ok(["delete", "dbc", name, "-n", ns, "--wait=false"]);
    }
    wait_for(Duration::from_secs(60), "claims deleted", || async {
        kubectl_ok(["get", "dbc", "-n", ns, "-o", "name"])
            .trim()
            .is_empty()
    })
    .await;
    kubectl_ok(["delete", "claimpolicy", &policy]);
}

#[tokio::test]
async fn same_claim_name_in_two_namespaces_gets_distinct_databases_and_credentials() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let a = TestNamespace::new("tenant-a");
    let b = TestNamespace::new("tenant-b");
    for ns in [a.name(), b.name()] {
        kubectl_apply(&claim_yaml(ns, "orders", "  databaseName: orders\n"));
    }
    wait_ready(a.name(), "orders").await;
    wait_ready(b.name(), "orders").await;
    let sa = secret_data(a.name(), "orders-connection")
        .await
        .unwrap_or_default();
    let sb = secret_data(b.name(), "orders-connection")
        .await
        .unwrap_or_default();
    assert_ne!(sa["database"], sb["database"]);
    assert_ne!(sa["username"], sb["username"]);
    assert_ne!(sa["password"], sb["password"]);
    // Team a's credentials do not open team b's database.
    let cross = sa["uri"].replace(
        &format!("/{}", sa["database"]),
        &format!("/{}", sb["database"]),
    );
    assert!(
        psql(&cross, "SELECT 1").is_err(),
        "team a reached team b's database"
    );
    for ns in [a.name(), b.name()] {
        kubectl_ok(["delete", "dbc", "orders", "-n", ns]);
    }
}

#[tokio::test]
async fn a_secret_the_claim_does_not_own_is_never_overwritten() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("secret-clash");
    let ns = ns.name();
    kubectl_apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: theirs, namespace: {ns}}}\nstringData: {{password: keep-me}}\n"
    ));
    kubectl_apply(&claim_yaml(
        ns,
        "app",
        "  writeConnectionSecretToRef: {name: theirs}\n",
    ));
    let claim = wait_condition(ns, "app", "Synced", "False", Some("ReconcileError")).await;
    let (_, _, message) = condition(&claim, "Synced").unwrap_or_default();
    assert!(
        message.contains("theirs") && message.contains("not owned"),
        "{message}"
    );
    let data = secret_data(ns, "theirs").await.unwrap_or_default();
    assert_eq!(data.get("password").map(String::as_str), Some("keep-me"));
    assert_eq!(data.len(), 1);
    kubectl_ok(["delete", "dbc", "app", "-n", ns]);
}

#[tokio::test]
async fn a_claim_cannot_take_over_another_claims_composed_object() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    // Names are injective (see isolation::), so the squatter is made by
    // hand: an object under the name claim "victim" would use, labelled as
    // another claim's. The claim must not adopt it.
    let ns = TestNamespace::new("forge");
    let ns = ns.name();
    let squatted = dbclaim::naming::composed_name(ns, "victim", "database");
    let db = format!("{}_squat", ns.replace('-', "_"));
    kubectl_apply(&format!(
        r#"apiVersion: postgres.dbclaim.io/v1alpha1
kind: Database
metadata:
  name: {squatted}
  labels: {{dbclaim.io/claim-name: other, dbclaim.io/claim-namespace: {ns}, dbclaim.io/resource: database}}
spec:
  forProvider: {{databaseName: {db}}}
"#
    ));
    kubectl_apply(&claim_yaml(ns, "victim", ""));
    let claim = wait_condition(ns, "victim", "Synced", "False", Some("ReconcileError")).await;
    let (_, _, message) = condition(&claim, "Synced").unwrap_or_default();
    assert!(
        message.contains(&squatted) && message.contains("does not belong"),
        "{message}"
    );
    // The object still points at the other claim, and survives the
    // claim's deletion.
    kubectl_ok(["delete", "dbc", "victim", "-n", ns]);
    let labels = kubectl_ok([
        "get",
        "databases.postgres.dbclaim.io",
        &squatted,
        "-o",
        "jsonpath={.metadata.labels.dbclaim\\.io/claim-name}",
    ]);
    assert_eq!(labels, "other");
    assert!(
        databases_like(&pg, &format!("{ns}_victim"))
            .await
            .is_empty()
    );
    kubectl_ok(["delete", "databases.postgres.dbclaim.io", &squatted]);
}

#[tokio::test]
async fn a_composition_cannot_aim_a_namespaced_object_at_another_namespace() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("escape");
    let ns = ns.name();
    let victim = TestNamespace::new("victim");
    let comp = support::unique_name("escape");
    kubectl_apply(&format!(
        r#"apiVersion: dbclaim.io/v1alpha1
kind: Composition
metadata: {{name: {comp}}}
spec:
  engines: [postgres]
  resources:
  - name: config
    base:
      apiVersion: v1
      kind: ConfigMap
      metadata: {{namespace: {victim}}}
      data: {{planted: "yes"}}
    readinessChecks: [{{type: None}}]
"#,
        victim = victim.name()
    ));
    kubectl_apply(&claim_yaml(
        ns,
        "app",
        &format!("  compositionRef: {{name: {comp}}}\n"),
    ));
    let claim = wait_condition(ns, "app", "Synced", "False", Some("CompositionInvalid")).await;
    let (_, _, message) = condition(&claim, "Synced").unwrap_or_default();
    assert!(
        message.contains(victim.name()) || message.contains("namespace"),
        "{message}"
    );
    let planted = kubectl_ok(["get", "configmaps", "-n", victim.name(), "-o", "name"]);
    assert!(!planted.contains(&format!("{ns}-app-config")), "{planted}");
    kubectl_ok(["delete", "dbc", "app", "-n", ns]);
    kubectl_ok(["delete", "composition", &comp]);
}

#[tokio::test]
async fn with_the_admission_policy_on_bad_claims_are_refused_by_kubectl_apply() {
    support::apply_crds();
    let ns = TestNamespace::new("admission");
    let ns = ns.name();
    let team = support::unique_name("adm");
    label_namespace(ns, &format!("team={team}"));
    let other = TestNamespace::new("admission-other");
    let release = support::unique_name("vap");
    let rendered = crate::chart::template(
        &release,
        "dbclaim-system",
        "admissionPolicy: {enabled: true}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    // Only the admission policy and its binding: no operator is needed.
    let docs: Vec<String> = rendered
        .split("\n---")
        .filter(|d| d.contains("kind: ValidatingAdmissionPolicy"))
        .map(str::to_string)
        .collect();
    assert_eq!(docs.len(), 2, "the policy and its binding:\n{rendered}");
    kubectl_apply(&docs.join("\n---\n"));
    let policy = support::unique_name("adm-limits");
    kubectl_apply(&format!(
        "apiVersion: dbclaim.io/v1alpha1\nkind: ClaimPolicy\nmetadata: {{name: {policy}}}\nspec:\n  namespaceSelector: {{matchLabels: {{team: {team}}}}}\n  allowedEngines: [postgres]\n  allowedSizes: [small]\n  maxStorageGB: 30\n"
    ));

    let try_apply = |ns: &str, name: &str, spec: &str| {
        let yaml = claim_yaml(ns, name, spec);
        support::kubectl_with_stdin(["apply", "-f", "-"], &yaml)
    };
    // The API server loads new policies asynchronously: wait until it
    // refuses (a server-side dry run, so an early probe stores nothing).
    wait_for(
        Duration::from_secs(30),
        "the admission policy to take effect",
        || async {
            let probe = claim_yaml(ns, "probe", "  size: large\n");
            !support::kubectl_with_stdin(["apply", "--dry-run=server", "-f", "-"], &probe)
                .status
                .success()
        },
    )
    .await;
    for (name, spec, needle) in [
        ("medium", "  size: medium\n", "allows sizes [small]"),
        ("huge", "  storageGB: 40\n", "at most 30 GB per claim"),
    ] {
        let out = try_apply(ns, name, spec);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} was admitted");
        assert!(
            stderr.contains(&policy) && stderr.contains(needle),
            "{name}: {stderr}"
        );
    }
    let within = try_apply(ns, "my", "");
    assert!(
        within.status.success(),
        "a small 20 GB postgres claim is within the policy: {}",
        String::from_utf8_lossy(&within.stderr)
    );
    let engine = support::kubectl_with_stdin(
        ["apply", "-f", "-"],
        &format!(
            "apiVersion: dbclaim.io/v1alpha1\nkind: DatabaseClaim\nmetadata: {{name: m, namespace: {ns}}}\nspec: {{engine: mysql}}\n"
        ),
    );
    assert!(String::from_utf8_lossy(&engine.stderr).contains("allows engines [postgres]"));
    // Namespaces the policy does not govern are not affected.
    assert!(
        try_apply(other.name(), "medium", "  size: medium\n")
            .status
            .success()
    );
    // An edit that breaks the limit is refused too.
    let grow = kubectl([
        "patch",
        "databaseclaims.v1alpha1.dbclaim.io",
        "my",
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"storageGB":50}}"#,
    ]);
    assert!(!grow.status.success());

    for d in &docs {
        let _ = support::kubectl_with_stdin(["delete", "-f", "-"], d);
    }
    kubectl_ok(["delete", "claimpolicy", &policy]);
    let _ = kubectl(["delete", "dbc", "--all", "-n", ns]);
    let _ = kubectl(["delete", "dbc", "--all", "-n", other.name()]);
}
