//! Never destroy or leak a database (issue 13): selection sticks for the
//! claim's life, nothing leaks on any deletion path, every refusal reaches
//! the claim. A real API server, a real PostgreSQL, moto for RDS, and the
//! operator as a process.

use std::time::{Duration, Instant};

use dbclaim::api::aws::RDSInstance;
use dbclaim::api::postgres::Database;
use kube::ResourceExt;
use kube::api::Api;

use crate::aws::{World, apply_aws_compositions, get_instance};
use crate::chart::{Release, service_account_kubeconfig};
use crate::claims::{
    admin_query, claim_yaml, condition, databases_like, delete_claim_and_wait, get_claim, psql,
    roles_like, secret_data, setup_shared_postgres, shared_postgres_named, wait_condition,
    wait_ready,
};
use crate::support::operator::OPERATOR_NAMESPACE;
use crate::support::{
    self, Operator, Postgres, TestNamespace, kubectl, kubectl_apply, kubectl_ok, unique_name,
    wait_for,
};

/// How long a claim on a vanished composition is watched for a move.
const STICK: Duration = Duration::from_secs(30);
/// The contract's bound for a leaked object to be handled.
const LEAK_TIMEOUT: Duration = Duration::from_secs(120);
/// The contract's bound for a refusal to reach the claim.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(10);

/// The shipped shared-postgres composition as `name`, composing its
/// Database as resource `resource` (so two such compositions render
/// different objects), a default or not, with an extra label.
fn pg_composition(
    name: &str,
    resource: &str,
    default: bool,
    label: Option<(&str, &str)>,
) -> String {
    // The resource, not the connection detail of the same name.
    let mut yaml = shared_postgres_named(name).replace(
        "\n  - name: database\n",
        &format!("\n  - name: {resource}\n"),
    );
    if default {
        yaml = yaml.replace(
            "dbclaim.io/default: \"false\"",
            "dbclaim.io/default: \"true\"",
        );
    }
    if let Some((k, v)) = label {
        yaml = yaml.replace(
            "    tier: standard\n",
            &format!("    tier: standard\n    {k}: {v}\n"),
        );
    }
    yaml
}

/// Compositions a test made, deleted when it ends, passed or not: a
/// leftover default would be picked by the next test's claims.
struct Made(Vec<String>);

impl Drop for Made {
    fn drop(&mut self) {
        for name in &self.0 {
            kubectl([
                "delete",
                "composition",
                name,
                "--ignore-not-found",
                "--wait=false",
            ]);
        }
    }
}

/// The name of the object a claim composed for `resource`, found by the
/// labels every composed object carries (names may carry a hash).
async fn composed<K>(ns: &str, claim: &str, resource: &str) -> Option<String>
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    let api: Api<K> = Api::all(support::kube_client().await);
    let selector = format!(
        "dbclaim.io/claim-namespace={ns},dbclaim.io/claim-name={claim},dbclaim.io/resource={resource}"
    );
    api.list(&kube::api::ListParams::default().labels(&selector))
        .await
        .ok()?
        .items
        .first()
        .map(|o| o.name_any())
}

async fn composed_database(ns: &str, claim: &str, resource: &str) -> Option<String> {
    composed::<Database>(ns, claim, resource).await
}

/// Waits for the Database a claim composed for `resource`; its name.
async fn wait_composed_database(ns: &str, claim: &str, resource: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(name) = composed_database(ns, claim, resource).await {
            return name;
        }
        assert!(
            Instant::now() < deadline,
            "no Database for {ns}/{claim} resource {resource}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn database(name: &str) -> Option<Database> {
    let api: Api<Database> = Api::all(support::kube_client().await);
    api.get_opt(name).await.ok().flatten()
}

/// Writes a row through the Secret's `uri`, as the application would.
fn write_row(uri: &str) {
    psql(
        uri,
        "CREATE TABLE IF NOT EXISTS precious (v text); INSERT INTO precious VALUES ('keep me')",
    )
    .unwrap_or_else(|e| panic!("write through the Secret: {e}"));
}

fn row_is_there(uri: &str) -> bool {
    psql(uri, "SELECT v FROM precious").as_deref() == Ok("keep me")
}

/// For `STICK`: the claim never moves off `composition`, its composed
/// Database is never deleted, and its data stays. Ends with the claim
/// `Synced=False, CompositionNotFound` naming the composition.
async fn assert_sticks(ns: &str, claim: &str, composition: &str, object: &str, uri: &str) {
    let until = Instant::now() + STICK;
    while Instant::now() < until {
        let db = database(object)
            .await
            .unwrap_or_else(|| panic!("Database {object} is gone"));
        assert!(
            db.metadata.deletion_timestamp.is_none(),
            "Database {object} is being deleted"
        );
        let c = get_claim(ns, claim)
            .await
            .unwrap_or_else(|| panic!("claim {claim} is gone"));
        assert_eq!(
            c.status
                .as_ref()
                .and_then(|s| s.composition.as_ref())
                .map(|r| r.name.as_str()),
            Some(composition),
            "the claim moved"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let c = wait_condition(ns, claim, "Synced", "False", Some("CompositionNotFound")).await;
    let (_, _, message) = condition(&c, "Synced").unwrap_or_default();
    assert!(message.contains(composition), "{message}");
    assert!(row_is_there(uri), "the data must stay");
}

#[tokio::test]
async fn deleted_composition_keeps_the_claim_its_objects_and_its_data() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("sticky");
    let ns = ns.name();
    // Sorts before shared-postgres, so a default-selected claim picks it;
    // once it is deleted, shared-postgres is the default.
    let comp = unique_name("a-sticky");
    let _made = Made(vec![comp.clone()]);
    let yaml = pg_composition(&comp, "keep", true, None);
    kubectl_apply(&yaml);

    kubectl_apply(&claim_yaml(ns, "app", ""));
    let c = wait_ready(ns, "app").await;
    assert_eq!(
        c.status.and_then(|s| s.composition).map(|r| r.name),
        Some(comp.clone())
    );
    let object = wait_composed_database(ns, "app", "keep").await;
    let uid = database(&object).await.and_then(|d| d.uid());
    let uri = secret_data(ns, "app-connection").await.unwrap_or_default()["uri"].clone();
    write_row(&uri);

    kubectl_ok(["delete", "composition", &comp]);
    assert_sticks(ns, "app", &comp, &object, &uri).await;
    assert!(
        composed_database(ns, "app", "database").await.is_none(),
        "nothing was composed from the new default"
    );

    kubectl_apply(&yaml);
    wait_ready(ns, "app").await;
    assert_eq!(
        database(&object).await.and_then(|d| d.uid()),
        uid,
        "the same object"
    );
    assert!(row_is_there(&uri));
    delete_claim_and_wait(ns, "app").await;
    kubectl_ok(["delete", "composition", &comp]);
}

#[tokio::test]
async fn relabelled_composition_under_a_selector_keeps_the_claim() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("relabel");
    let ns = ns.name();
    let label = unique_name("sel");
    let first = unique_name("a-first");
    let second = unique_name("b-second");
    let _made = Made(vec![first.clone(), second.clone()]);
    let yaml = pg_composition(&first, "keep", false, Some(("safety", &label)));
    kubectl_apply(&yaml);

    kubectl_apply(&claim_yaml(
        ns,
        "app",
        &format!("  compositionSelector: {{matchLabels: {{safety: {label}}}}}\n"),
    ));
    wait_ready(ns, "app").await;
    let object = wait_composed_database(ns, "app", "keep").await;
    let uri = secret_data(ns, "app-connection").await.unwrap_or_default()["uri"].clone();
    write_row(&uri);

    // Another composition now matches, and the first one no longer does.
    kubectl_apply(&pg_composition(
        &second,
        "other",
        false,
        Some(("safety", &label)),
    ));
    kubectl_ok(["label", "composition", &first, "safety-"]);
    assert_sticks(ns, "app", &first, &object, &uri).await;
    assert!(composed_database(ns, "app", "other").await.is_none());

    kubectl_ok(["label", "composition", &first, &format!("safety={label}")]);
    let c = wait_ready(ns, "app").await;
    assert_eq!(
        c.status.and_then(|s| s.composition).map(|r| r.name),
        Some(first.clone())
    );
    assert!(row_is_there(&uri));
    delete_claim_and_wait(ns, "app").await;
    kubectl_ok(["delete", "composition", &first, &second]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_rds_composition_never_deletes_the_instance() {
    let _lock = support::exclusive().await;
    let w = World::start("sticky-rds", "default").await;
    apply_aws_compositions();
    kubectl_ok([
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "compositions/shared-postgres.yaml",
    ]);
    let ns = w.ns().to_string();
    let comp = unique_name("a-rds");
    let _made = Made(vec![comp.clone()]);
    let yaml =
        std::fs::read_to_string(support::repo_root().join("compositions/aws-rds-postgres.yaml"))
            .unwrap_or_else(|e| panic!("{e}"))
            .replace("name: aws-rds-postgres", &format!("name: {comp}"))
            .replace(
                "    tier: standard\n",
                "    tier: standard\n  annotations:\n    dbclaim.io/default: \"true\"\n",
            );
    kubectl_apply(&yaml);

    kubectl_apply(&claim_yaml(&ns, "app", "  databaseName: app\n"));
    let c = wait_ready(&ns, "app").await;
    assert_eq!(
        c.status.and_then(|s| s.composition).map(|r| r.name),
        Some(comp.clone())
    );
    let object = composed::<RDSInstance>(&ns, "app", "instance")
        .await
        .unwrap_or_else(|| panic!("no RDSInstance for the claim"));
    let uid = get_instance(&object).await.and_then(|i| i.uid());
    let id = get_instance(&object)
        .await
        .and_then(|i| i.annotations().get("dbclaim.io/external-name").cloned())
        .unwrap_or_else(|| panic!("no external name on {object}"));

    kubectl_ok(["delete", "composition", &comp]);
    let until = Instant::now() + STICK;
    while Instant::now() < until {
        let i: RDSInstance = get_instance(&object)
            .await
            .unwrap_or_else(|| panic!("RDSInstance {object} is gone"));
        assert!(
            i.metadata.deletion_timestamp.is_none(),
            "RDSInstance is being deleted"
        );
        let status = w
            .describe(&id)
            .await
            .and_then(|d| d.db_instance_status().map(str::to_string));
        assert_eq!(status.as_deref(), Some("available"), "moto instance {id}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let c = wait_condition(&ns, "app", "Synced", "False", Some("CompositionNotFound")).await;
    let (_, _, message) = condition(&c, "Synced").unwrap_or_default();
    assert!(message.contains(&comp), "{message}");

    kubectl_apply(&yaml);
    wait_ready(&ns, "app").await;
    assert_eq!(get_instance(&object).await.and_then(|i| i.uid()), uid);
    delete_claim_and_wait(&ns, "app").await;
    kubectl_ok(["delete", "composition", &comp]);
}

#[tokio::test]
async fn composition_ref_change_is_blocked_unless_the_claim_allows_replacement() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("move");
    let ns = ns.name();
    let from = unique_name("from");
    let to = unique_name("to");
    let _made = Made(vec![from.clone(), to.clone()]);
    kubectl_apply(&pg_composition(&from, "keep", false, None));
    // Another database name on the server, so both can exist at once.
    kubectl_apply(
        &pg_composition(&to, "moved", false, None).replace("fmt: \"%s_%s\"", "fmt: \"%s_m_%s\""),
    );

    kubectl_apply(&claim_yaml(
        ns,
        "app",
        &format!("  compositionRef: {{name: {from}}}\n"),
    ));
    wait_ready(ns, "app").await;
    let kept = wait_composed_database(ns, "app", "keep").await;
    let uri = secret_data(ns, "app-connection").await.unwrap_or_default()["uri"].clone();
    write_row(&uri);

    kubectl_apply(&claim_yaml(
        ns,
        "app",
        &format!("  compositionRef: {{name: {to}}}\n"),
    ));
    let c = wait_condition(ns, "app", "Synced", "False", Some("ReplacementBlocked")).await;
    let (_, _, message) = condition(&c, "Synced").unwrap_or_default();
    assert!(
        message.contains(&kept),
        "names the object that would go: {message}"
    );
    assert!(
        message.contains("dbclaim.io/allow-replacement"),
        "{message}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let db = database(&kept)
        .await
        .unwrap_or_else(|| panic!("{kept} deleted"));
    assert!(db.metadata.deletion_timestamp.is_none());
    assert!(
        composed_database(ns, "app", "moved").await.is_none(),
        "nothing applied"
    );
    assert!(row_is_there(&uri));

    kubectl_ok([
        "annotate",
        "dbc",
        "app",
        "-n",
        ns,
        "dbclaim.io/allow-replacement=true",
    ]);
    // The claim was Ready all along (a blocked move keeps the database
    // serving): wait for the move itself, then for Ready on the new one.
    wait_for(LEAK_TIMEOUT, "the claim to move", || async {
        get_claim(ns, "app").await.is_some_and(|c| {
            c.status.and_then(|s| s.composition).map(|r| r.name) == Some(to.clone())
        })
    })
    .await;
    wait_ready(ns, "app").await;
    wait_for(LEAK_TIMEOUT, "the old Database to go", || async {
        database(&kept).await.is_none()
    })
    .await;
    assert!(composed_database(ns, "app", "moved").await.is_some());
    delete_claim_and_wait(ns, "app").await;
    kubectl_ok(["delete", "composition", &from, &to]);
}

/// Within `LEAK_TIMEOUT`: under Delete, no composed Database and no
/// PostgreSQL database or role of the namespace remain; under Orphan, they
/// remain, without dbclaim's labels.
async fn assert_collected(pg: &Postgres, ns: &str, objects: &[String], orphan: bool) {
    for object in objects {
        if orphan {
            wait_for(LEAK_TIMEOUT, &format!("{object} released"), || async {
                database(object).await.is_some_and(|d| {
                    !d.labels().contains_key("dbclaim.io/claim-name")
                        && d.metadata.deletion_timestamp.is_none()
                })
            })
            .await;
        } else {
            wait_for(LEAK_TIMEOUT, &format!("{object} deleted"), || async {
                database(object).await.is_none()
            })
            .await;
        }
    }
    if orphan {
        assert!(
            !databases_like(pg, ns).await.is_empty(),
            "Orphan keeps the database"
        );
    } else {
        wait_for(
            LEAK_TIMEOUT,
            "no database or role of the namespace",
            || async {
                databases_like(pg, ns).await.is_empty() && roles_like(pg, ns).await.is_empty()
            },
        )
        .await;
    }
}

/// Leak (a): SIGKILL between the first create and the first status write,
/// then the claim deleted while the operator is down.
#[tokio::test]
async fn claim_deleted_while_the_operator_is_down_leaks_nothing() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let mut op = Operator::start();
    let ns = TestNamespace::new("leak-a");
    let ns = ns.name();

    kubectl_apply(&claim_yaml(ns, "app", ""));
    let object = wait_composed_database(ns, "app", "database").await;
    op.kill();
    kubectl_ok(["delete", "dbc", "app", "-n", ns, "--wait=false"]);
    op.restart(&[]);
    wait_for(LEAK_TIMEOUT, "the claim to be gone", || async {
        get_claim(ns, "app").await.is_none()
    })
    .await;
    assert_collected(&pg, ns, &[object], false).await;
}

/// Leak (b): the finalizer removed by hand, then the claim deleted; under
/// Delete and under Orphan.
#[tokio::test]
async fn finalizer_removed_by_hand_leaks_nothing() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let op = Operator::start();
    for (policy, orphan) in [("Delete", false), ("Orphan", true)] {
        let ns = TestNamespace::new(&format!("leak-b-{}", policy.to_lowercase()));
        let ns = ns.name();
        kubectl_apply(&claim_yaml(
            ns,
            "app",
            &format!("  deletionPolicy: {policy}\n"),
        ));
        wait_ready(ns, "app").await;
        let object = wait_composed_database(ns, "app", "database").await;
        // Paused, so the operator does not put the finalizer back between
        // the two commands, as a developer racing it might.
        kubectl_ok(["annotate", "dbc", "app", "-n", ns, "dbclaim.io/paused=true"]);
        kubectl_ok([
            "patch",
            "dbc",
            "app",
            "-n",
            ns,
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ]);
        kubectl_ok(["delete", "dbc", "app", "-n", ns]);
        assert!(get_claim(ns, "app").await.is_none());
        assert_collected(&pg, ns, std::slice::from_ref(&object), orphan).await;
        if orphan {
            kubectl([
                "delete",
                "databases.postgres.dbclaim.io",
                &object,
                "--wait=false",
            ]);
        }
    }
    let metrics = op.metrics();
    assert!(metrics.contains("dbclaim_orphaned_objects"), "{metrics}");
    let events = kubectl_ok(["get", "events", "-A", "-o", "jsonpath={.items[*].reason}"]);
    assert!(
        events.contains("OrphanDeleted") && events.contains("OrphanReleased"),
        "a Warning event per collected object: {events}"
    );
}

/// Leak (c): the second resource of a composition is refused (422), so the
/// claim never got a status; then the claim is deleted.
#[tokio::test]
async fn refused_second_resource_then_deleted_claim_leaks_nothing() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("leak-c");
    let ns = ns.name();
    let comp = unique_name("refused");
    let _made = Made(vec![comp.clone()]);
    let too_long = "x".repeat(64);
    let yaml = pg_composition(&comp, "database", false, None)
        + &format!(
            "  - name: refused\n    base:\n      apiVersion: v1\n      kind: ConfigMap\n      metadata:\n        labels: {{bad: {too_long}}}\n"
        );
    kubectl_apply(&yaml);
    kubectl_apply(&claim_yaml(
        ns,
        "app",
        &format!("  compositionRef: {{name: {comp}}}\n"),
    ));
    let object = wait_composed_database(ns, "app", "database").await;
    // The refusal reaches the claim, naming the object.
    let c = wait_condition(ns, "app", "Synced", "False", None).await;
    let (_, reason, message) = condition(&c, "Synced").unwrap_or_default();
    assert_eq!(reason, "CompositionInvalid", "{message}");
    assert!(
        message.contains("ConfigMap") && message.contains("labels"),
        "{message}"
    );

    delete_claim_and_wait(ns, "app").await;
    assert_collected(&pg, ns, &[object], false).await;
    kubectl_ok(["delete", "composition", &comp]);
}

/// Refusal: a composed kind outside the chart's `rbac.composedKinds` is
/// forbidden to the operator's service account.
#[tokio::test]
async fn forbidden_composed_kind_reaches_the_claim() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let release = Release::install(&unique_name("rbac"), OPERATOR_NAMESPACE, "");
    let sa = release.service_account();
    let lease = release.lease_name();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = service_account_kubeconfig(dir.path(), OPERATOR_NAMESPACE, &sa);
    let kubeconfig = kubeconfig.display().to_string();
    let _op = Operator::start_with_env(
        &["--leader-elect", "--leader-election-id", &lease],
        &[("KUBECONFIG", &kubeconfig)],
    );
    let ns = TestNamespace::new("forbidden");
    let ns = ns.name();
    let comp = unique_name("forbidden");
    let _made = Made(vec![comp.clone()]);
    let yaml = pg_composition(&comp, "database", false, None)
        + "  - name: quota\n    base:\n      apiVersion: v1\n      kind: ResourceQuota\n      spec: {hard: {pods: \"10\"}}\n";
    kubectl_apply(&yaml);
    let started = Instant::now();
    kubectl_apply(&claim_yaml(
        ns,
        "app",
        &format!("  compositionRef: {{name: {comp}}}\n"),
    ));
    wait_for(REFUSAL_TIMEOUT, "Synced=False on the claim", || async {
        get_claim(ns, "app")
            .await
            .and_then(|c| condition(&c, "Synced"))
            .is_some_and(|c| c.0 == "False")
    })
    .await;
    eprintln!("refusal on the claim after {:?}", started.elapsed());
    let c = get_claim(ns, "app")
        .await
        .unwrap_or_else(|| panic!("no claim"));
    let (_, reason, message) = condition(&c, "Synced").unwrap_or_default();
    assert_eq!(reason, "ReconcileError", "{message}");
    assert!(
        message.contains("ResourceQuota") && message.contains("forbidden"),
        "{message}"
    );
    delete_claim_and_wait(ns, "app").await;
    kubectl_ok(["delete", "composition", &comp]);
}

/// Refusal: a bad `writeConnectionSecretToRef.name` is refused by the
/// claim's own schema, on apply.
#[tokio::test]
async fn bad_connection_secret_name_is_refused_by_the_claim_schema() {
    support::apply_crds();
    let ns = TestNamespace::new("secret-name");
    let ns = ns.name();

    let out = support::kubectl_with_stdin(
        ["apply", "--server-side", "-f", "-"],
        &claim_yaml(
            ns,
            "bad",
            "  writeConnectionSecretToRef: {name: Bad_Name}\n",
        ),
    );
    assert!(!out.status.success(), "the CRD must refuse Bad_Name");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("writeConnectionSecretToRef.name"),
        "{stderr}"
    );
    for bad in [".x".to_string(), "x".repeat(254)] {
        let out = support::kubectl_with_stdin(
            ["apply", "--server-side", "--dry-run=server", "-f", "-"],
            &claim_yaml(
                ns,
                "bad",
                &format!("  writeConnectionSecretToRef: {{name: \"{bad}\"}}\n"),
            ),
        );
        assert!(!out.status.success(), "the CRD must refuse {bad:?}");
    }
    let out = support::kubectl_with_stdin(
        ["apply", "--server-side", "--dry-run=server", "-f", "-"],
        &claim_yaml(
            ns,
            "good",
            "  writeConnectionSecretToRef: {name: orders.db-conn}\n",
        ),
    );
    assert!(
        out.status.success(),
        "a DNS subdomain is accepted: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Refusal: a default Secret name too long for a Secret (a 245-character
/// claim name plus "-connection") reaches the claim as Synced=False.
#[tokio::test]
async fn refused_connection_secret_reaches_the_claim() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ns = TestNamespace::new("secret-long");
    let ns = ns.name();

    // 245 characters + "-connection" is longer than a Secret name may be.
    let long = format!("l{}", "o".repeat(244));
    let started = Instant::now();
    kubectl_apply(&claim_yaml(ns, &long, "  databaseName: longname\n"));
    wait_for(
        REFUSAL_TIMEOUT + Duration::from_secs(50),
        "Synced=False on the claim",
        || async {
            get_claim(ns, &long)
                .await
                .and_then(|c| condition(&c, "Synced"))
                .is_some_and(|c| c.0 == "False")
        },
    )
    .await;
    eprintln!("refusal on the claim after {:?}", started.elapsed());
    let c = get_claim(ns, &long)
        .await
        .unwrap_or_else(|| panic!("no claim"));
    let (_, _, message) = condition(&c, "Synced").unwrap_or_default();
    assert!(
        message.contains("Secret") && message.contains("-connection"),
        "{message}"
    );
    delete_claim_and_wait(ns, &long).await;
}

/// Names the Database CRD used to refuse (audit H2): a namespace starting
/// with a digit, a long namespace plus a long databaseName, a claim name
/// with a dot. Each claim becomes Ready on the shipped shared-postgres.
#[tokio::test]
async fn shared_postgres_serves_names_its_database_crd_used_to_refuse() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let digit = TestNamespace::new("1team");
    let long = TestNamespace::new(&"long-namespace-".repeat(4));
    let long_db = format!("d{}", "b".repeat(62));
    let cases = [
        (digit.name(), "app", String::new()),
        (long.name(), "app", format!("  databaseName: {long_db}\n")),
        (digit.name(), "orders.v2", String::new()),
    ];
    for (ns, name, extra) in &cases {
        kubectl_apply(&claim_yaml(ns, name, extra));
    }
    for (ns, name, _) in &cases {
        wait_ready(ns, name).await;
        let data = secret_data(ns, &format!("{name}-connection"))
            .await
            .unwrap_or_else(|| panic!("no Secret for {ns}/{name}"));
        assert_eq!(psql(&data["uri"], "SELECT 1").as_deref(), Ok("1"));
        let db = &data["database"];
        assert!(db.len() <= 63, "{db}");
        let found = admin_query(
            &pg,
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
        )
        .await;
        assert_eq!(found, vec!["1".to_string()]);
    }
    for (ns, name, _) in &cases {
        delete_claim_and_wait(ns, name).await;
    }
}
