//! The claim controller end to end: a real API server, a real PostgreSQL,
//! and the operator as a process.

use std::collections::BTreeMap;
use std::time::Duration;

use dbclaim::api::DatabaseClaim;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use crate::support::operator::OPERATOR_NAMESPACE;
use crate::support::{
    self, Operator, Postgres, TestNamespace, kubectl, kubectl_apply, kubectl_ok, wait_for,
};

const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Points the `default` postgres ProviderConfig at `pg` and installs the
/// shipped shared-postgres composition.
pub fn setup_shared_postgres(pg: &Postgres) {
    support::apply_crds();
    kubectl_apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {OPERATOR_NAMESPACE}\n"
    ));
    kubectl_apply(&format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: shared-postgres-admin, namespace: {OPERATOR_NAMESPACE}}}
stringData: {{username: "{}", password: "{}"}}
---
apiVersion: postgres.dbclaim.io/v1alpha1
kind: ProviderConfig
metadata: {{name: default}}
spec:
  host: "{}"
  port: {}
  sslMode: disable
  credentialsSecretRef: {{namespace: {OPERATOR_NAMESPACE}, name: shared-postgres-admin}}
"#,
        pg.admin_user, pg.admin_password, pg.host, pg.port
    ));
    kubectl_ok([
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "compositions/shared-postgres.yaml",
    ]);
}

/// The shipped shared-postgres composition under another name, not the default.
pub fn shared_postgres_named(name: &str) -> String {
    std::fs::read_to_string(support::repo_root().join("compositions/shared-postgres.yaml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .replace("name: shared-postgres", &format!("name: {name}"))
        .replace(
            "dbclaim.io/default: \"true\"",
            "dbclaim.io/default: \"false\"",
        )
}

pub fn claim_yaml(ns: &str, name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: dbclaim.io/v1alpha1\nkind: DatabaseClaim\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  engine: postgres\n{extra_spec}"
    )
}

pub async fn get_claim(ns: &str, name: &str) -> Option<DatabaseClaim> {
    let api: Api<DatabaseClaim> = Api::namespaced(support::kube_client().await, ns);
    api.get_opt(name).await.ok().flatten()
}

/// The claim's condition of `type_` as (status, reason, message).
pub fn condition(claim: &DatabaseClaim, type_: &str) -> Option<(String, String, String)> {
    let c = claim
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub async fn wait_condition(
    ns: &str,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
) -> DatabaseClaim {
    let what = format!("claim {ns}/{name} {type_}={status} {reason:?}");
    let mut last = None;
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(c) = get_claim(ns, name).await {
            if let Some((s, r, _)) = condition(&c, type_)
                && s == status
                && reason.is_none_or(|want| want == r)
            {
                return c;
            }
            last = Some(c);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; last seen status: {:#?}",
            last.and_then(|c| c.status)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub async fn wait_ready(ns: &str, name: &str) -> DatabaseClaim {
    wait_condition(ns, name, "Ready", "True", None).await
}

pub async fn secret_data(ns: &str, name: &str) -> Option<BTreeMap<String, String>> {
    let api: Api<Secret> = Api::namespaced(support::kube_client().await, ns);
    let s = api.get_opt(name).await.ok().flatten()?;
    Some(
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect(),
    )
}

/// Runs SQL through `psql "$uri"`, as a developer would.
pub fn psql(uri: &str, sql: &str) -> Result<String, String> {
    let out = std::process::Command::new("psql")
        .arg(uri)
        .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Runs SQL as the server's admin.
pub async fn admin_query(pg: &Postgres, sql: &str) -> Vec<String> {
    let (client, conn) = tokio_postgres::connect(&pg.admin_conn_string(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("admin connect: {e}"));
    tokio::spawn(conn);
    let rows = client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect()
}

pub async fn databases_like(pg: &Postgres, prefix: &str) -> Vec<String> {
    admin_query(
        pg,
        &format!("SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%' ORDER BY 1"),
    )
    .await
}

pub async fn roles_like(pg: &Postgres, prefix: &str) -> Vec<String> {
    admin_query(
        pg,
        &format!("SELECT rolname FROM pg_roles WHERE rolname LIKE '{prefix}%' ORDER BY 1"),
    )
    .await
}

pub async fn delete_claim_and_wait(ns: &str, name: &str) {
    kubectl_ok(["delete", "dbc", name, "-n", ns, "--wait=false"]);
    wait_for(
        READY_TIMEOUT,
        &format!("claim {ns}/{name} to be gone"),
        || async { get_claim(ns, name).await.is_none() },
    )
    .await;
}

#[tokio::test]
async fn claim_becomes_ready_and_its_secret_connects_then_delete_drops_everything() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("claim");
    let ns = ns.name();

    let started = std::time::Instant::now();
    kubectl_apply(&claim_yaml(ns, "orders-db", "  databaseName: orders\n"));
    let claim = wait_ready(ns, "orders-db").await;
    eprintln!("claim Ready {:?} after apply", started.elapsed());
    let status = claim.status.clone().unwrap_or_default();
    assert_eq!(
        status.composition.map(|c| c.name),
        Some("shared-postgres".into())
    );
    assert_eq!(
        status.connection_secret_ref.map(|c| c.name),
        Some("orders-db-connection".into())
    );
    assert_eq!(
        status.binding.map(|c| c.name),
        Some("orders-db-connection".into())
    );
    assert_eq!(status.observed_generation, claim.metadata.generation);
    assert_eq!(status.resources.len(), 1);
    assert!(status.resources[0].ready);
    assert_eq!(status.resources[0].kind, "Database");
    assert_eq!(
        condition(&claim, "Synced").map(|c| c.1),
        Some("ReconcileSuccess".into())
    );
    // kstatus (Flux) reads these: not in progress, not stalled.
    assert_eq!(
        condition(&claim, "Reconciling").map(|c| c.0),
        Some("False".into())
    );
    assert_eq!(
        condition(&claim, "Stalled").map(|c| c.0),
        Some("False".into())
    );

    let data = secret_data(ns, "orders-db-connection")
        .await
        .unwrap_or_else(|| panic!("no connection secret"));
    for key in [
        "type", "provider", "host", "port", "database", "username", "password", "uri",
    ] {
        assert!(
            data.get(key).is_some_and(|v| !v.is_empty()),
            "secret lacks {key}: keys {:?}",
            data.keys()
        );
    }
    assert_eq!(data["type"], "postgresql");
    assert_eq!(data["provider"], "shared-postgres");
    assert_eq!(data["host"], pg.host);
    assert_eq!(data["port"], pg.port.to_string());
    assert_eq!(data["database"], format!("{ns}_orders"));
    let api: Api<Secret> = Api::namespaced(support::kube_client().await, ns);
    let secret = api
        .get("orders-db-connection")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        secret.type_.as_deref(),
        Some("servicebinding.io/postgresql")
    );
    assert!(
        secret
            .metadata
            .owner_references
            .unwrap_or_default()
            .iter()
            .any(|o| o.kind == "DatabaseClaim" && o.name == "orders-db")
    );

    // The developer connects with the uri alone.
    let uri = &data["uri"];
    psql(uri, "CREATE TABLE orders (id int primary key, item text)")
        .unwrap_or_else(|e| panic!("{e}"));
    psql(uri, "INSERT INTO orders VALUES (1, 'book')").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        psql(uri, "SELECT item FROM orders WHERE id = 1").as_deref(),
        Ok("book")
    );

    // kubectl shows it.
    let table = kubectl_ok(["get", "dbc", "-n", ns]);
    let row = table
        .lines()
        .find(|l| l.starts_with("orders-db"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("True")
            && row.contains("shared-postgres")
            && row.contains("orders-db-connection"),
        "{table}"
    );
    assert_eq!(
        row.split_whitespace().filter(|w| *w == "True").count(),
        2,
        "READY and SYNCED: {table}"
    );

    // Events a person wants to see: every step, those of one pass in one
    // event (reason: where the pass left the claim).
    let events = kubectl_ok([
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        "involvedObject.kind=DatabaseClaim",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(events.contains("Ready: "), "no Ready event: {events}");
    for step in [
        "composition shared-postgres selected",
        "created Database ",
        "connection secret orders-db-connection written",
        "the database is ready",
    ] {
        assert!(events.contains(step), "no event says {step:?}: {events}");
    }
    assert!(
        events.lines().count() <= 3,
        "one event per pass, not per step: {events}"
    );
    assert!(!events.contains(&data["password"]), "password in events");
    // The claim's events say it all: its Database's creation posts none of
    // its own (an event write per claim for nothing, issue 20).
    let database = dbclaim::naming::composed_name(ns, "orders-db", "database");
    let provider_events = kubectl_ok([
        "get",
        "events",
        "-A",
        "--field-selector",
        &format!("involvedObject.kind=Database,involvedObject.name={database}"),
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]);
    assert!(
        provider_events.trim().is_empty(),
        "events on Database {database}: {provider_events}"
    );

    // Delete: database and role dropped, Secret gone.
    let db = format!("{ns}_orders");
    assert_eq!(databases_like(&pg, &db).await, vec![db.clone()]);
    delete_claim_and_wait(ns, "orders-db").await;
    wait_for(READY_TIMEOUT, "database and role to be dropped", || async {
        databases_like(&pg, &db).await.is_empty() && roles_like(&pg, &db).await.is_empty()
    })
    .await;
    wait_for(READY_TIMEOUT, "the connection secret to go", || async {
        secret_data(ns, "orders-db-connection").await.is_none()
    })
    .await;
}

#[tokio::test]
async fn orphaned_claim_leaves_a_working_database() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("orphan");
    let ns = ns.name();

    kubectl_apply(&claim_yaml(ns, "keep", "  deletionPolicy: Orphan\n"));
    wait_ready(ns, "keep").await;
    let data = secret_data(ns, "keep-connection")
        .await
        .unwrap_or_else(|| panic!("no secret"));
    let uri = data["uri"].clone();
    psql(&uri, "CREATE TABLE kept (x int)").unwrap_or_else(|e| panic!("{e}"));

    delete_claim_and_wait(ns, "keep").await;
    // The Database object is released, not deleted, and the server keeps the database.
    let db = format!("{ns}_keep");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(databases_like(&pg, &db).await, vec![db.clone()]);
    assert_eq!(psql(&uri, "SELECT count(*) FROM kept").as_deref(), Ok("0"));
    let out = kubectl_ok(["get", "databases.postgres.dbclaim.io", "-o", "name"]);
    let composed = dbclaim::naming::composed_name(ns, "keep", "database");
    assert!(
        out.contains(&composed),
        "the Database object should survive: {out}"
    );
    let labels = kubectl_ok([
        "get",
        "databases.postgres.dbclaim.io",
        &composed,
        "-o",
        "jsonpath={.metadata.labels}",
    ]);
    assert!(
        !labels.contains("dbclaim.io/claim-name"),
        "orphaned object still claims an owner: {labels}"
    );
    // Clean up the cluster-scoped object without touching the database.
    kubectl_ok([
        "patch",
        "databases.postgres.dbclaim.io",
        &composed,
        "--type=merge",
        "-p",
        r#"{"spec":{"deletionPolicy":"Orphan"}}"#,
    ]);
    kubectl_ok([
        "delete",
        "databases.postgres.dbclaim.io",
        &composed,
        "--wait=true",
        "--timeout=60s",
    ]);
    assert_eq!(databases_like(&pg, &db).await, vec![db]);
}

#[tokio::test]
async fn missing_composition_then_created_recovers_without_touching_the_claim() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("notfound");
    let ns = ns.name();
    let comp = support::unique_name("later");

    kubectl_apply(&claim_yaml(
        ns,
        "wants",
        &format!("  compositionRef: {{name: {comp}}}\n"),
    ));
    let claim = wait_condition(ns, "wants", "Synced", "False", Some("CompositionNotFound")).await;
    let (_, _, message) = condition(&claim, "Synced").unwrap_or_default();
    assert!(message.contains(&comp), "{message}");
    let generation = claim.metadata.generation;
    let spec = claim.spec.clone();

    let renamed = shared_postgres_named(&comp);
    kubectl_apply(&renamed);
    let claim = wait_ready(ns, "wants").await;
    assert_eq!(
        claim.metadata.generation, generation,
        "the operator must not touch the claim's spec"
    );
    assert_eq!(claim.spec, spec);
    assert_eq!(
        claim.status.and_then(|s| s.composition).map(|c| c.name),
        Some(comp.clone())
    );

    delete_claim_and_wait(ns, "wants").await;
    kubectl_ok(["delete", "composition", &comp]);
}

#[tokio::test]
async fn invalid_composition_is_reported_and_fixing_it_recovers() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("invalid");
    let ns = ns.name();
    let comp = support::unique_name("broken");

    let named = shared_postgres_named(&comp);
    // Patch 1 now reads a parameter the claim lacks, and requires it.
    let broken = named.replace(
        "    - fromFieldPath: spec.parameters.connectionLimit\n",
        "    - fromFieldPath: spec.parameters.mustExist\n      policy:\n        fromFieldPath: Required\n",
    );
    assert_ne!(broken, named);
    kubectl_apply(&broken);
    kubectl_apply(&claim_yaml(
        ns,
        "app",
        &format!("  compositionRef: {{name: {comp}}}\n"),
    ));
    let claim = wait_condition(ns, "app", "Synced", "False", Some("CompositionInvalid")).await;
    let (_, _, message) = condition(&claim, "Synced").unwrap_or_default();
    assert!(
        message.contains("\"database\"") && message.contains("patch 1"),
        "message must name resource and patch: {message}"
    );
    assert!(message.contains("spec.parameters.mustExist"), "{message}");

    kubectl_apply(&named);
    wait_ready(ns, "app").await;
    delete_claim_and_wait(ns, "app").await;
    kubectl_ok(["delete", "composition", &comp]);
}

#[tokio::test]
async fn composition_edits_reach_existing_databases() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("edit");
    let ns = ns.name();
    let comp = support::unique_name("editable");

    let named = shared_postgres_named(&comp);
    kubectl_apply(&named);
    kubectl_apply(&claim_yaml(
        ns,
        "app",
        &format!("  compositionRef: {{name: {comp}}}\n"),
    ));
    wait_ready(ns, "app").await;
    let db = format!("{ns}_app");
    let sql = format!("SELECT datconnlimit FROM pg_database WHERE datname = '{db}'");
    assert_eq!(admin_query(&pg, &sql).await, vec!["20".to_string()]);

    kubectl_apply(&named.replace("connectionLimit: 20", "connectionLimit: 7"));
    wait_for(
        READY_TIMEOUT,
        "connection limit 7 on the server",
        || async { admin_query(&pg, &sql).await == vec!["7".to_string()] },
    )
    .await;
    wait_ready(ns, "app").await;
    delete_claim_and_wait(ns, "app").await;
    kubectl_ok(["delete", "composition", &comp]);
}

#[tokio::test]
async fn operator_killed_while_provisioning_makes_exactly_one_database() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let mut op = Operator::start();
    let ns = TestNamespace::new("crash");
    let ns = ns.name();

    kubectl_apply(&claim_yaml(ns, "app", ""));
    // Kill as soon as the composed Database exists, before the claim is Ready.
    let composed = dbclaim::naming::composed_name(ns, "app", "database");
    wait_for(READY_TIMEOUT, "the composed Database", || async {
        kubectl(["get", "databases.postgres.dbclaim.io", &composed])
            .status
            .success()
    })
    .await;
    op.kill();
    op.restart(&[]);
    let claim = wait_ready(ns, "app").await;
    assert_eq!(claim.status.map(|s| s.resources.len()), Some(1));
    let db = format!("{ns}_app");
    assert_eq!(databases_like(&pg, ns).await, vec![db.clone()]);
    assert_eq!(roles_like(&pg, ns).await, vec![db]);
    let data = secret_data(ns, "app-connection")
        .await
        .unwrap_or_else(|| panic!("no secret"));
    assert_eq!(psql(&data["uri"], "SELECT 1").as_deref(), Ok("1"));
    delete_claim_and_wait(ns, "app").await;
}

#[tokio::test]
async fn postgres_outage_is_reported_then_recovers_by_itself() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("outage");
    let ns = ns.name();

    pg.stop();
    kubectl_apply(&claim_yaml(ns, "app", ""));
    let claim = wait_condition(ns, "app", "Synced", "False", Some("ProviderError")).await;
    let (_, _, message) = condition(&claim, "Synced").unwrap_or_default();
    assert!(message.contains("Database"), "{message}");
    assert_eq!(
        condition(&claim, "Ready").map(|c| c.0),
        Some("False".into())
    );

    pg.start_again();
    let claim = wait_ready(ns, "app").await;
    assert_eq!(
        condition(&claim, "Synced").map(|c| c.1),
        Some("ReconcileSuccess".into())
    );
    delete_claim_and_wait(ns, "app").await;
}

/// resourceVersions of everything the operator writes for the claims in `ns`.
async fn versions(ns: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (kind, scope) in [
        ("dbc", Some(ns)),
        ("secrets", Some(ns)),
        ("secrets", Some(OPERATOR_NAMESPACE)),
        ("databases.postgres.dbclaim.io", None),
    ] {
        let mut args = vec![
            "get",
            kind,
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.metadata.resourceVersion}{\"\\n\"}{end}",
        ];
        if let Some(n) = scope {
            args.extend(["-n", n]);
        }
        for line in kubectl_ok(args).lines() {
            if let Some((name, rv)) = line.split_once('=') {
                // Cluster-wide and operator-namespace objects of other
                // tests (their deletions finishing) are not this test's.
                let shared = kind.starts_with("databases") || scope == Some(OPERATOR_NAMESPACE);
                if shared && !name.starts_with(ns) {
                    continue;
                }
                out.insert(format!("{kind}/{name}"), rv.to_string());
            }
        }
    }
    out
}

#[tokio::test]
async fn quiet_at_rest_and_gitops_reapply_shows_no_diff() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let op = Operator::start();
    let ns = TestNamespace::new("quiet");
    let ns = ns.name();

    let mut all = String::new();
    for i in 0..20 {
        all.push_str(&claim_yaml(ns, &format!("app-{i}"), ""));
        all.push_str("\n---\n");
    }
    kubectl_apply(&all);
    for i in 0..20 {
        wait_ready(ns, &format!("app-{i}")).await;
    }
    // Let the last status writes and watch events settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = versions(ns).await;
    assert!(
        before.len() >= 60,
        "claims, their secrets, databases and their secrets: {before:?}"
    );
    tokio::time::sleep(Duration::from_secs(30)).await;
    let after = versions(ns).await;
    assert_eq!(before, after, "the operator wrote while nothing changed");

    // GitOps: re-applying the same manifest changes nothing.
    let manifest = claim_yaml(ns, "app-0", "");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("claim.yaml");
    std::fs::write(&file, &manifest).unwrap_or_else(|e| panic!("{e}"));
    let file = file.display().to_string();
    kubectl_ok(["apply", "-f", &file]);
    kubectl_ok(["apply", "-f", &file]);
    let diff = kubectl(["diff", "-f", &file]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "kubectl diff: {}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let ssa = kubectl([
        "apply",
        "--server-side",
        "--field-manager",
        "argocd-controller",
        "-f",
        &file,
    ]);
    assert!(
        ssa.status.success(),
        "{}",
        String::from_utf8_lossy(&ssa.stderr)
    );
    let diff = kubectl([
        "diff",
        "--server-side",
        "--field-manager",
        "argocd-controller",
        "-f",
        &file,
    ]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "server-side diff: {}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let claim = get_claim(ns, "app-0")
        .await
        .unwrap_or_else(|| panic!("claim gone"));
    assert_eq!(
        claim.metadata.generation,
        Some(1),
        "the spec was never changed"
    );
    // The operator's own managed fields cover only status and its finalizer.
    let managed = kubectl_ok([
        "get",
        "dbc",
        "app-0",
        "-n",
        ns,
        "--show-managed-fields",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&managed).unwrap_or_else(|e| panic!("{e}"));
    for entry in v["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        // Every writer but the test's own (who applied the manifest) is the operator.
        let manager = entry["manager"].as_str().unwrap_or_default();
        let test_writers = [
            "dbclaim-e2e",
            "argocd-controller",
            "kubectl-client-side-apply",
            "kubectl",
        ];
        if !test_writers.contains(&manager) {
            let fields = entry["fieldsV1"].to_string();
            assert!(
                !fields.contains("\"f:spec\""),
                "operator owns spec fields: {fields}"
            );
        }
    }
    // Metrics reflect the work.
    let metrics = op.metrics();
    assert!(
        metrics.contains("dbclaim_reconcile_total{controller=\"claim\",result=\"success\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dbclaim_claims{ready=\"true\"} 20"),
        "{metrics}"
    );
    for series in [
        "dbclaim_reconcile_total{controller=\"database\",result=\"success\"}",
        "dbclaim_provider_requests_total{provider=\"postgres\",operation=\"SyncDatabase\",result=\"success\"}",
        "dbclaim_provider_requests_total{provider=\"postgres\",operation=\"CheckAdmin\",result=\"success\"}",
    ] {
        assert!(metrics.contains(series), "no {series}: {metrics}");
    }

    for i in 0..20 {
        kubectl_ok([
            "delete",
            "dbc",
            &format!("app-{i}"),
            "-n",
            ns,
            "--wait=false",
        ]);
    }
    wait_for(Duration::from_secs(120), "all claims deleted", || async {
        kubectl_ok(["get", "dbc", "-n", ns, "-o", "name"])
            .trim()
            .is_empty()
    })
    .await;
    assert!(databases_like(&pg, ns).await.is_empty());
}
