//! Smoke tests of the plane and the CRDs, no operator running: the API server
//! itself enforces the claim's schema and CEL rules (api-contract.md,
//! "DatabaseClaim"), and kube-controller-manager's namespace and garbage
//! collector controllers do their part.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use crate::support::{
    Moto, Postgres, TestNamespace, apply_crds, kube_client, kubectl, kubectl_ok,
    kubectl_with_stdin, unique_name, wait_for,
};

fn claim_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("dbclaim.io", "v1alpha1", "DatabaseClaim"),
        "databaseclaims",
    )
}

/// A DatabaseClaim manifest with the given `spec` (a YAML flow mapping).
fn claim(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: dbclaim.io/v1alpha1\nkind: DatabaseClaim\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
    )
}

fn create(manifest: &str) -> std::process::Output {
    kubectl_with_stdin(["create", "-f", "-"], manifest)
}

fn create_ok(manifest: &str) {
    let out = create(manifest);
    assert!(
        out.status.success(),
        "the API server refused a valid object:\n{manifest}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The API server's answer to `out` must be a refusal whose message contains
/// every one of `needles` (case-insensitive).
#[track_caller]
fn assert_refused(out: std::process::Output, what: &str, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the API server accepted {what}; it must refuse it (api-contract.md, DatabaseClaim)"
    );
    let lower = stderr.to_lowercase();
    for needle in needles {
        assert!(
            lower.contains(&needle.to_lowercase()),
            "refusal of {what} does not name the rule (expected {needle:?} in the message):\n{stderr}"
        );
    }
}

/// Like assert_refused, but at least one of `any_of` must appear too.
#[track_caller]
fn assert_refused_any(out: std::process::Output, what: &str, needles: &[&str], any_of: &[&str]) {
    let lower = String::from_utf8_lossy(&out.stderr).to_lowercase();
    let named = any_of.iter().any(|w| lower.contains(&w.to_lowercase()));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_refused(out, what, needles);
    assert!(
        named,
        "refusal of {what} does not say what is wrong (expected one of {any_of:?}):\n{stderr}"
    );
}

fn patch(ns: &str, name: &str, kind: &str, patch: &str) -> std::process::Output {
    // v1alpha1 by name: the preferred version (v1beta1) has no storageGB.
    kubectl([
        "patch",
        "databaseclaims.v1alpha1.dbclaim.io",
        name,
        "-n",
        ns,
        "--type",
        kind,
        "-p",
        patch,
    ])
}

#[tokio::test]
async fn plane_serves_kubernetes_1_37() {
    let client = kube_client().await;
    let info = client.apiserver_version().await.expect("GET /version");
    assert_eq!(
        (info.major.as_str(), info.minor.as_str()),
        ("1", "37"),
        "{info:?}"
    );
    // kubectl (whatever its version) talks to it too.
    kubectl_ok(["get", "namespaces"]);
}

/// Every CRD has the category `dbclaim` and the status subresource, the scope
/// and short names of the contract, and no kind hides the category behind a
/// short name `dbclaim`.
#[test]
fn crds_match_the_contract() {
    apply_crds();
    let expected = [
        ("databaseclaims.dbclaim.io", "Namespaced", Some("dbc")),
        ("compositions.dbclaim.io", "Cluster", Some("dbcomp")),
        ("claimpolicies.dbclaim.io", "Cluster", None),
        ("rdsinstances.aws.dbclaim.io", "Cluster", None),
        ("providerconfigs.aws.dbclaim.io", "Cluster", None),
        ("databases.postgres.dbclaim.io", "Cluster", None),
        ("providerconfigs.postgres.dbclaim.io", "Cluster", None),
    ];
    for (name, scope, short) in expected {
        let crd: serde_json::Value =
            serde_json::from_str(&kubectl_ok(["get", "crd", name, "-o", "json"])).unwrap();
        let spec = &crd["spec"];
        assert_eq!(spec["scope"], scope, "{name}: scope");
        let categories = spec["names"]["categories"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            categories.contains(&json!("dbclaim")),
            "{name}: category dbclaim missing: {categories:?}"
        );
        let shorts = spec["names"]["shortNames"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            !shorts.contains(&json!("dbclaim")),
            "{name}: short name dbclaim hides the category"
        );
        if let Some(short) = short {
            assert!(
                shorts.contains(&json!(short)),
                "{name}: short name {short} missing: {shorts:?}"
            );
        }
        for version in spec["versions"].as_array().expect("versions") {
            assert!(
                version["subresources"]["status"].is_object(),
                "{name} {}: no status subresource",
                version["name"]
            );
        }
    }
}

#[test]
fn kubectl_get_dbc_prints_the_contract_columns() {
    apply_crds();
    let ns = TestNamespace::new("smoke-columns");
    create_ok(&claim(ns.name(), "orders-db", "{engine: postgres}"));

    let out = kubectl_ok(["get", "dbc", "-A"]);
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAMESPACE",
            "NAME",
            "ENGINE",
            "SIZE",
            "READY",
            "SYNCED",
            "COMPOSITION",
            "SECRET",
            "AGE"
        ],
        "kubectl get dbc -A:\n{out}"
    );
    let row = out
        .lines()
        .find(|l| l.starts_with(ns.name()))
        .unwrap_or_else(|| panic!("claim missing from kubectl get dbc -A:\n{out}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        &cells[1..4],
        ["orders-db", "postgres", "small"],
        "row: {row}"
    );
}

#[test]
fn kubectl_get_dbclaim_lists_the_category() {
    apply_crds();
    let ns = TestNamespace::new("smoke-category");
    create_ok(&claim(ns.name(), "orders-db", "{engine: postgres}"));

    let out = kubectl_ok(["get", "dbclaim", "-n", ns.name(), "-o", "name"]);
    assert!(
        out.lines()
            .any(|l| l == "databaseclaim.dbclaim.io/orders-db"),
        "kubectl get dbclaim -n {}:\n{out}",
        ns.name()
    );
    let kinds = kubectl_ok(["api-resources", "--categories=dbclaim", "-o", "name"]);
    let mut kinds: Vec<&str> = kinds.lines().collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "claimpolicies.dbclaim.io",
            "compositionrevisions.dbclaim.io",
            "compositions.dbclaim.io",
            "databaseclaims.dbclaim.io",
            "databases.postgres.dbclaim.io",
            "providerconfigs.aws.dbclaim.io",
            "providerconfigs.postgres.dbclaim.io",
            "rdsinstances.aws.dbclaim.io",
        ]
    );
}

#[tokio::test]
async fn minimal_claim_is_stored_with_defaults() {
    apply_crds();
    let ns = TestNamespace::new("smoke-defaults");
    create_ok(&claim(ns.name(), "orders-db", "{engine: postgres}"));

    let api: Api<DynamicObject> =
        Api::namespaced_with(kube_client().await, ns.name(), &claim_resource());
    let stored = api.get("orders-db").await.expect("get the claim");
    let spec = &stored.data["spec"];
    assert_eq!(spec["engine"], "postgres", "{spec}");
    assert_eq!(spec["size"], "small", "default size: {spec}");
    assert_eq!(spec["storageGB"], 20, "default storageGB: {spec}");
    assert_eq!(
        spec["deletionPolicy"], "Delete",
        "default deletionPolicy: {spec}"
    );
}

#[test]
fn full_claim_from_the_contract_is_accepted() {
    apply_crds();
    let ns = TestNamespace::new("smoke-full");
    create_ok(&claim(
        ns.name(),
        "orders-db",
        r#"
  engine: postgres
  version: "16"
  size: medium
  storageGB: 65536
  databaseName: orders
  parameters: {maxConnections: "200"}
  compositionRef: {name: aws-rds-postgres}
  writeConnectionSecretToRef: {name: orders-db-conn}
  deletionPolicy: Orphan"#,
    ));
    create_ok(&claim(
        ns.name(),
        "by-selector",
        "{engine: mysql, storageGB: 1, databaseName: _a1, compositionSelector: {matchLabels: {provider: aws}}}",
    ));
}

#[test]
fn unknown_engine_is_refused() {
    apply_crds();
    let ns = TestNamespace::new("smoke-engine");
    let out = create(&claim(ns.name(), "c", "{engine: oracle}"));
    assert_refused(
        out,
        "engine: oracle",
        &["spec.engine", "Unsupported value", "oracle"],
    );
}

#[test]
fn missing_engine_is_refused() {
    apply_crds();
    let ns = TestNamespace::new("smoke-noengine");
    let out = create(&claim(ns.name(), "c", "{size: small}"));
    assert_refused(
        out,
        "a claim without engine",
        &["spec.engine", "Required value"],
    );
}

#[test]
fn unknown_size_is_refused() {
    apply_crds();
    let ns = TestNamespace::new("smoke-size");
    let out = create(&claim(ns.name(), "c", "{engine: postgres, size: huge}"));
    assert_refused(
        out,
        "size: huge",
        &["spec.size", "Unsupported value", "huge"],
    );
}

#[test]
fn unknown_deletion_policy_is_refused() {
    apply_crds();
    let ns = TestNamespace::new("smoke-policy");
    let out = create(&claim(
        ns.name(),
        "c",
        "{engine: postgres, deletionPolicy: Retain}",
    ));
    assert_refused(
        out,
        "deletionPolicy: Retain",
        &["spec.deletionPolicy", "Unsupported value"],
    );
}

#[test]
fn storage_out_of_range_is_refused() {
    apply_crds();
    let ns = TestNamespace::new("smoke-storage");
    let out = create(&claim(
        ns.name(),
        "zero",
        "{engine: postgres, storageGB: 0}",
    ));
    assert_refused(
        out,
        "storageGB: 0",
        &["spec.storageGB", "greater than or equal to 1"],
    );
    let out = create(&claim(
        ns.name(),
        "huge",
        "{engine: postgres, storageGB: 70000}",
    ));
    assert_refused(
        out,
        "storageGB: 70000",
        &["spec.storageGB", "less than or equal to 65536"],
    );
}

#[test]
fn storage_may_grow_but_never_shrink() {
    apply_crds();
    let ns = TestNamespace::new("smoke-shrink");
    create_ok(&claim(ns.name(), "c", "{engine: postgres, storageGB: 50}"));

    let out = patch(ns.name(), "c", "merge", r#"{"spec":{"storageGB":60}}"#);
    assert!(
        out.status.success(),
        "growing storage was refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = patch(ns.name(), "c", "merge", r#"{"spec":{"storageGB":40}}"#);
    assert_refused_any(
        out,
        "storageGB 60 -> 40",
        &["spec.storageGB"],
        &["shrink", "decrease", "reduce", "smaller", "grow"],
    );
}

#[test]
fn engine_is_immutable() {
    apply_crds();
    let ns = TestNamespace::new("smoke-engine-immutable");
    create_ok(&claim(ns.name(), "c", "{engine: postgres}"));
    let out = patch(ns.name(), "c", "merge", r#"{"spec":{"engine":"mysql"}}"#);
    assert_refused(
        out,
        "engine postgres -> mysql",
        &["spec.engine", "immutable"],
    );
}

#[test]
fn database_name_is_immutable() {
    apply_crds();
    let ns = TestNamespace::new("smoke-dbname-immutable");
    create_ok(&claim(
        ns.name(),
        "c",
        "{engine: postgres, databaseName: orders}",
    ));
    let out = patch(
        ns.name(),
        "c",
        "merge",
        r#"{"spec":{"databaseName":"payments"}}"#,
    );
    assert_refused(
        out,
        "databaseName orders -> payments",
        &["databaseName", "immutable"],
    );
    // Removing it would switch to the default name (the claim's name): a change too.
    let out = patch(
        ns.name(),
        "c",
        "json",
        r#"[{"op":"remove","path":"/spec/databaseName"}]"#,
    );
    assert_refused(out, "removing databaseName", &["databaseName", "immutable"]);
}

#[test]
fn bad_database_name_is_refused() {
    apply_crds();
    let ns = TestNamespace::new("smoke-dbname");
    for (i, bad) in [
        "Orders",
        "1orders",
        "orders-db",
        &format!("a{}", "b".repeat(63)),
    ]
    .into_iter()
    .enumerate()
    {
        let out = create(&claim(
            ns.name(),
            &format!("c{i}"),
            &format!("{{engine: postgres, databaseName: {bad}}}"),
        ));
        assert_refused(
            out,
            &format!("databaseName: {bad}"),
            &["spec.databaseName", "should match"],
        );
    }
}

#[test]
fn composition_ref_and_selector_are_exclusive() {
    apply_crds();
    let ns = TestNamespace::new("smoke-exclusive");
    let out = create(&claim(
        ns.name(),
        "c",
        "{engine: postgres, compositionRef: {name: a}, compositionSelector: {matchLabels: {provider: aws}}}",
    ));
    assert_refused(
        out,
        "compositionRef and compositionSelector together",
        &["compositionRef", "compositionSelector"],
    );
}

/// kube-controller-manager's namespace controller deletes a namespace's
/// claims with it (no operator runs here, so no finalizer holds them).
#[tokio::test]
async fn deleting_a_namespace_deletes_its_claims() {
    apply_crds();
    let client = kube_client().await;
    let name = unique_name("smoke-nsdel");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"dbclaim.io/e2e": "true"}}}),
    )
    .unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    create_ok(&claim(&name, "orders-db", "{engine: postgres}"));

    namespaces
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete namespace");
    let claims: Api<DynamicObject> = Api::namespaced_with(client, &name, &claim_resource());
    wait_for(
        Duration::from_secs(60),
        "the namespace and its claim to be deleted",
        || async {
            let claim_gone = matches!(claims.get_opt("orders-db").await, Ok(None));
            let ns_gone = matches!(namespaces.get_opt(&name).await, Ok(None));
            claim_gone && ns_gone
        },
    )
    .await;
}

/// kube-controller-manager's garbage collector deletes dependents.
#[tokio::test]
async fn garbage_collector_deletes_dependents() {
    let ns = TestNamespace::new("smoke-gc");
    let api: Api<ConfigMap> = Api::namespaced(kube_client().await, ns.name());
    let owner: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap();
    let owner = api
        .create(&PostParams::default(), &owner)
        .await
        .expect("create owner");
    let mut dependent: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "dependent"}, "data": {"k": "v"}}))
            .unwrap();
    dependent.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().expect("uid"),
        ..Default::default()
    }]);
    api.create(&PostParams::default(), &dependent)
        .await
        .expect("create dependent");

    api.delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    wait_for(
        Duration::from_secs(60),
        "the garbage collector to delete the dependent",
        || async { matches!(api.get_opt("dependent").await, Ok(None)) },
    )
    .await;
}

/// The PostgreSQL helper: the admin role can create a role and a database it
/// owns, and both survive a stop and restart of the server.
#[tokio::test]
async fn postgres_helper_serves_survives_restart_and_stops() {
    async fn connect(pg: &Postgres) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, conn) =
            tokio_postgres::connect(&pg.admin_conn_string(), tokio_postgres::NoTls).await?;
        tokio::spawn(conn);
        Ok(client)
    }
    let pg = Postgres::start();
    let admin = connect(&pg).await.expect("connect as the admin role");
    // Not a superuser: like RDS's master user, it must be a member of a role
    // to create a database owned by it.
    for sql in [
        "CREATE ROLE app LOGIN PASSWORD 'secret'",
        "GRANT app TO CURRENT_USER",
        "CREATE DATABASE appdb OWNER app", // not in a transaction block: one statement
    ] {
        admin
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let row = admin
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .unwrap();
    assert!(
        !row.get::<_, bool>(0),
        "the admin role must not be a superuser"
    );

    pg.stop();
    assert!(
        admin.simple_query("SELECT 1").await.is_err(),
        "the connection survived a stop"
    );
    assert!(connect(&pg).await.is_err(), "connected to a stopped server");
    pg.start_again();
    let admin = connect(&pg).await.expect("connect after the restart");
    let n: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = 'appdb'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "the database did not survive the restart");

    let pid_file = pg.state_dir().join("postgres.pid");
    let pid = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .to_owned();
    drop(admin);
    drop(pg);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "postgres {pid} still runs after Drop"
    );
}

/// The moto helper answers RDS API calls (moto does not check signatures).
#[test]
fn moto_helper_answers_rds_calls() {
    use std::io::{Read, Write};
    let moto = Moto::start();
    let addr = moto
        .endpoint
        .strip_prefix("http://")
        .expect("http endpoint");
    let body = "Action=DescribeDBInstances&Version=2014-10-31";
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to moto");
    write!(
        stream,
        "POST / HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/rds/aws4_request, \
         SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
        "{response}"
    );
    assert!(
        response.contains("<DescribeDBInstancesResponse"),
        "{response}"
    );
}
