//! Reliability reviews: the provisioning SLO metrics scraped from
//! `/metrics` after a scripted set of claims.

use std::time::Duration;

use crate::claims::{
    claim_yaml, setup_shared_postgres, shared_postgres_named, wait_condition, wait_ready,
};
use crate::support::{
    self, Operator, Postgres, TestNamespace, kubectl_apply, kubectl_ok, wait_for,
};

/// The value of the sample `series` (name and labels exactly) in `text`.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn time_to_ready_failures_and_ready_ratio_per_composition() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    // A composition of this test's own, so claims of other tests (and
    // their leftovers) never count in its series.
    let composition = support::unique_name("review");
    kubectl_apply(&shared_postgres_named(&composition));
    let op = Operator::start();
    let ns = TestNamespace::new("review");
    let ns = ns.name();
    let team = support::unique_name("team");
    kubectl_ok([
        "label",
        "namespace",
        ns,
        &format!("team={team}"),
        "--overwrite",
    ]);
    let policy = support::unique_name("review-policy");
    kubectl_apply(&format!(
        "apiVersion: dbclaim.io/v1alpha1\nkind: ClaimPolicy\nmetadata: {{name: {policy}}}\nspec:\n  namespaceSelector: {{matchLabels: {{team: {team}}}}}\n  allowedSizes: [small]\n"
    ));
    let pick = format!("  compositionRef: {{name: {composition}}}\n");
    for i in 0..3 {
        kubectl_apply(&claim_yaml(ns, &format!("ok-{i}"), &pick));
    }
    for i in 0..2 {
        let spec = format!("{pick}  size: medium\n");
        kubectl_apply(&claim_yaml(ns, &format!("big-{i}"), &spec));
    }
    for i in 0..3 {
        wait_ready(ns, &format!("ok-{i}")).await;
    }
    for i in 0..2 {
        wait_condition(
            ns,
            &format!("big-{i}"),
            "Synced",
            "False",
            Some("PolicyViolation"),
        )
        .await;
    }
    let label = format!("composition=\"{composition}\"");
    // The ratio gauge follows the claim cache every 5 s.
    let ratio = format!("dbclaim_claim_ready_ratio{{{label}}}");
    wait_for(Duration::from_secs(30), "the ready ratio", || async {
        sample(&op.metrics(), &ratio) == Some(0.6)
    })
    .await;
    let text = op.metrics();
    let count = format!("dbclaim_claim_time_to_ready_seconds_count{{{label}}}");
    assert_eq!(sample(&text, &count), Some(3.0), "{text}");
    // Ready on a shared server within a minute; every one under 1 h.
    for (le, n) in [("60.0", 3.0), ("3600.0", 3.0), ("+Inf", 3.0)] {
        let bucket = format!("dbclaim_claim_time_to_ready_seconds_bucket{{le=\"{le}\",{label}}}");
        assert_eq!(sample(&text, &bucket), Some(n), "{bucket}\n{text}");
    }
    let refused = format!("dbclaim_claim_failures_total{{{label},reason=\"PolicyViolation\"}}");
    assert_eq!(sample(&text, &refused), Some(2.0), "{text}");
    // No series carries a claim's name.
    for name in ["ok-0", "big-0", ns] {
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("dbclaim_claim") && l.contains(name)),
            "{name} in a label:\n{text}"
        );
    }
    // Requeues of a refused claim are not new failures.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sample(&op.metrics(), &refused), Some(2.0));
    kubectl_ok(["delete", "dbc", "--all", "-n", ns, "--timeout=120s"]);
    kubectl_ok(["delete", "claimpolicy", &policy]);
    kubectl_ok(["delete", "composition", &composition]);
}

// ---- dbclaim trace ------------------------------------------------------------

/// Runs `dbclaim trace` (as the test's admin, or with `kubeconfig`).
fn trace(args: &[&str], kubeconfig: Option<&std::path::Path>) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(support::operator::operator_binary());
    cmd.arg("trace").args(args);
    cmd.env(
        "KUBECONFIG",
        match kubeconfig {
            Some(p) => p.display().to_string(),
            None => support::kubeconfig(),
        },
    );
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run dbclaim trace: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The tree with this run's names replaced and column padding collapsed,
/// so a snapshot holds across runs.
fn normalize(text: &str, replacements: &[(&str, &str)]) -> String {
    let mut text = text.to_string();
    for (from, to) in replacements {
        text = text.replace(from, to);
    }
    // A revision's name ends in a hash of its composition's spec, which
    // holds this run's names.
    let revision =
        regex::Regex::new(r"(revision \d+ \([^)]*)-[0-9a-f]+\)").unwrap_or_else(|e| panic!("{e}"));
    let text = revision.replace_all(&text, "$1-HASH)").into_owned();
    // A long message is cut at a width, so where the cut lands depends on
    // the length of this run's names: drop the cut word.
    let cut = regex::Regex::new(r"\S*\.\.\.").unwrap_or_else(|e| panic!("{e}"));
    let text = cut.replace_all(&text, "...").into_owned();
    // Column padding follows a cell's last character; the tree's own
    // indentation (after │ or at the start) stays.
    let spaces = regex::Regex::new("([^ │]) {2,}").unwrap_or_else(|e| panic!("{e}"));
    text.lines()
        .map(|l| spaces.replace_all(l, "$1  ").into_owned())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn check_snapshot(name: &str, actual: &str) {
    let path = support::repo_root().join("e2e/tests/snapshots").join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{e}"));
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_SNAPSHOTS=1)", path.display()));
    assert_eq!(expected, actual, "snapshot {name} differs");
}

#[tokio::test]
async fn trace_shows_a_ready_claim_one_waiting_on_a_provider_and_one_refused() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    // A composition whose Database names a ProviderConfig that does not
    // exist: its claims wait on the provider.
    let stuck = support::unique_name("trace-stuck");
    let missing = support::unique_name("missing");
    kubectl_apply(&shared_postgres_named(&stuck).replace(
        "providerConfigRef:\n          name: default",
        &format!("providerConfigRef:\n          name: {missing}"),
    ));
    let _op = Operator::start();
    let ns = TestNamespace::new("trace");
    let ns = ns.name();
    let team = support::unique_name("team");
    kubectl_ok([
        "label",
        "namespace",
        ns,
        &format!("team={team}"),
        "--overwrite",
    ]);
    let policy = support::unique_name("trace-policy");
    kubectl_apply(&format!(
        "apiVersion: dbclaim.io/v1alpha1\nkind: ClaimPolicy\nmetadata: {{name: {policy}}}\nspec:\n  namespaceSelector: {{matchLabels: {{team: {team}}}}}\n  allowedSizes: [small]\n"
    ));
    kubectl_apply(&claim_yaml(ns, "orders", ""));
    kubectl_apply(&claim_yaml(
        ns,
        "waiting",
        &format!("  compositionRef: {{name: {stuck}}}\n"),
    ));
    kubectl_apply(&claim_yaml(ns, "refused", "  size: large\n"));
    wait_ready(ns, "orders").await;
    wait_condition(ns, "refused", "Synced", "False", Some("PolicyViolation")).await;
    let db = |claim: &str| dbclaim::naming::composed_name(ns, claim, "database");
    wait_for(
        Duration::from_secs(60),
        "the Database to report its provider",
        || async {
            let out = kubectl_ok([
                "get",
                "databases.postgres.dbclaim.io",
                &db("waiting"),
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Synced\")].status}",
            ]);
            out == "False"
        },
    )
    .await;
    let (orders_db, waiting_db) = (db("orders"), db("waiting"));
    let names = [
        (orders_db.as_str(), "DATABASE-orders"),
        (waiting_db.as_str(), "DATABASE-waiting"),
        (stuck.as_str(), "STUCK-COMPOSITION"),
        (missing.as_str(), "MISSING-CONFIG"),
        (policy.as_str(), "POLICY"),
        (ns, "NS"),
    ];
    let names: Vec<(&str, &str)> = names.to_vec();

    let (ok, out, err) = trace(&["dbc/orders", "-n", ns], None);
    assert!(ok, "{err}");
    assert!(!out.contains("first problem"), "{out}");
    check_snapshot("trace-ready.txt", &normalize(&out, &names));

    let (ok, out, err) = trace(&["dbc/waiting", "-n", ns, "-o", "wide"], None);
    assert!(ok, "{err}");
    check_snapshot("trace-waiting.txt", &normalize(&out, &names));

    let (ok, out, err) = trace(&["dbc/refused", "-n", ns], None);
    assert!(ok, "{err}");
    check_snapshot("trace-refused.txt", &normalize(&out, &names));

    // JSON parses and carries the same tree, never a Secret value.
    let (ok, out, err) = trace(&["dbc/orders", "-n", ns, "-o", "json"], None);
    assert!(ok, "{err}");
    let tree: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(tree["kind"], "DatabaseClaim");
    assert_eq!(tree["ready"]["status"], "True");
    let secret = &tree["children"][1];
    assert_eq!(secret["kind"], "Secret");
    assert!(
        secret["status"]
            .as_str()
            .unwrap_or_default()
            .contains("password")
    );
    let data = crate::claims::secret_data(ns, "orders-connection")
        .await
        .unwrap_or_default();
    let password = data.get("password").cloned().unwrap_or_default();
    assert!(
        !password.is_empty() && !out.contains(&password),
        "a value leaked"
    );

    // A tenant who may read claims and Secrets of the namespace only: the
    // cluster-scoped objects show as forbidden, and trace still succeeds.
    kubectl_apply(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: tenant, namespace: {ns}}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: tenant, namespace: {ns}}}\nrules:\n- apiGroups: [dbclaim.io]\n  resources: [databaseclaims]\n  verbs: [get, list]\n- apiGroups: [\"\"]\n  resources: [secrets]\n  verbs: [get]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: tenant, namespace: {ns}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: tenant}}\nsubjects:\n- {{kind: ServiceAccount, name: tenant, namespace: {ns}}}\n"
    ));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let tenant = crate::chart::service_account_kubeconfig(dir.path(), ns, "tenant");
    let (ok, out, err) = trace(&["dbc/orders", "-n", ns], Some(&tenant));
    assert!(ok, "{err}");
    check_snapshot("trace-tenant.txt", &normalize(&out, &names));

    // The waiting claim's Database can only be deleted through a
    // ProviderConfig: give it one.
    kubectl_apply(&format!(
        "apiVersion: postgres.dbclaim.io/v1alpha1\nkind: ProviderConfig\nmetadata: {{name: {missing}}}\nspec:\n  host: \"{}\"\n  port: {}\n  sslMode: disable\n  credentialsSecretRef: {{namespace: {}, name: shared-postgres-admin}}\n",
        pg.host,
        pg.port,
        support::operator::OPERATOR_NAMESPACE
    ));
    kubectl_ok(["delete", "dbc", "--all", "-n", ns, "--timeout=120s"]);
    kubectl_ok(["delete", "claimpolicy", &policy]);
    kubectl_ok(["delete", "composition", &stuck]);
    kubectl_ok(["delete", "providerconfigs.postgres.dbclaim.io", &missing]);
}
