//! The shipped `cnpg-postgres` composition against CloudNativePG's real
//! `Cluster` CRD (installed from its Go module by e2e/fetch-crds). The
//! CloudNativePG operator does not run here: a small test double plays its
//! part as its v1.25 controller does — the `<cluster>-app` Secret with the
//! keys CloudNativePG writes (owned by the Cluster), `status.phase` and
//! `phaseReason`, and the `Ready` condition (`ClusterIsNotReady` until the
//! phase is "Cluster in healthy state", then `ClusterIsReady`).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::{Double, grow_storage, put_status, secret};
use crate::claims::{
    claim_yaml, condition, delete_claim_and_wait, get_claim, wait_condition, wait_ready,
};
use crate::support::{self, Operator, TestNamespace, kubectl_apply, kubectl_ok, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);
const HEALTHY: &str = "Cluster in healthy state";

fn clusters_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Cluster"),
        "clusters",
    )
}

async fn clusters(ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(support::kube_client().await, ns, &clusters_resource())
}

async fn secrets(ns: &str) -> Api<Secret> {
    Api::namespaced(support::kube_client().await, ns)
}

/// What the double reports for every Cluster of the namespace.
#[derive(Clone, Debug)]
enum Phase {
    /// Bootstrapping the primary.
    SettingUp,
    Healthy,
    /// CloudNativePG could not create the objects a Cluster needs.
    CannotCreateObjects(String),
}

/// CloudNativePG's part: the `-app` Secret of every Cluster, then the
/// status its controller writes for the current phase.
fn cloudnative_pg_double(ns: &str) -> Double<Phase> {
    let ns = ns.to_string();
    Double::start(Phase::SettingUp, move |now| {
        let ns = ns.clone();
        async move {
            let api = clusters(&ns).await;
            let Ok(list) = api.list(&Default::default()).await else {
                return;
            };
            for cluster in list {
                // The Secret first: CloudNativePG creates it before any
                // instance exists.
                app_secret(&ns, &cluster).await;
                put_status(&api, &cluster, status_for(&cluster, &now)).await;
            }
        }
    })
}

/// The `<cluster>-app` Secret as CloudNativePG v1.25 writes it
/// (`pkg/specs/secrets.go`): basic-auth, owned by the Cluster, for the
/// initdb owner and database, a 64-character password; created once.
async fn app_secret(ns: &str, cluster: &DynamicObject) {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let api = secrets(ns).await;
    let secret_name = format!("{name}-app");
    if !matches!(api.get_opt(&secret_name).await, Ok(None)) {
        return;
    }
    let initdb = &cluster.data["spec"]["bootstrap"]["initdb"];
    let dbname = initdb["database"].as_str().unwrap_or("app");
    let owner = initdb["owner"].as_str().unwrap_or(dbname);
    let password = dbclaim::provider::password::generate_len(64);
    let host = format!("{name}-rw");
    let secret: Secret = match serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/basic-auth",
        "metadata": {
            "name": secret_name,
            "namespace": ns,
            "labels": {"cnpg.io/userType": "app", "cnpg.io/reload": "true"},
            "ownerReferences": [{
                "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "name": name,
                "uid": cluster.metadata.uid, "controller": true,
            }],
        },
        "stringData": {
            "username": owner,
            "user": owner,
            "password": password,
            "dbname": dbname,
            "host": host,
            "port": "5432",
            "pgpass": format!("{host}:5432:{dbname}:{owner}:{password}\n"),
            "uri": format!("postgresql://{owner}:{password}@{host}.{ns}:5432/{dbname}"),
            "jdbc-uri": format!(
                "jdbc:postgresql://{host}.{ns}:5432/{dbname}?password={password}&user={owner}"
            ),
        },
    })) {
        Ok(s) => s,
        Err(_) => return,
    };
    let _ = api.create(&PostParams::default(), &secret).await;
}

/// The status CloudNativePG writes (`RegisterPhase`): the phase and its
/// reason, the `Ready` condition that follows from it; the instances and
/// Services once healthy.
fn status_for(cluster: &DynamicObject, phase: &Phase) -> Value {
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let instances = cluster.data["spec"]["instances"].as_i64().unwrap_or(1);
    let (phase, reason) = match phase {
        Phase::SettingUp => (
            "Setting up primary".to_string(),
            format!("Creating primary instance {name}-1"),
        ),
        Phase::Healthy => (HEALTHY.to_string(), String::new()),
        Phase::CannotCreateObjects(m) => (
            "Unable to create required cluster objects".to_string(),
            m.clone(),
        ),
    };
    let ready = phase == HEALTHY;
    let (status, reason_, message) = if ready {
        ("True", "ClusterIsReady", "Cluster is Ready")
    } else {
        ("False", "ClusterIsNotReady", "Cluster Is Not Ready")
    };
    let condition = json!({"type": "Ready", "status": status, "reason": reason_,
        "message": message, "lastTransitionTime": "2026-01-01T00:00:00Z"});
    let mut status = json!({
        "phase": phase,
        "phaseReason": reason,
        "conditions": [condition],
        "writeService": format!("{name}-rw"),
        "readService": format!("{name}-r"),
        "instances": instances,
        "readyInstances": if ready { instances } else { 0 },
    });
    if ready {
        status["currentPrimary"] = json!(format!("{name}-1"));
        status["targetPrimary"] = json!(format!("{name}-1"));
    }
    status
}

fn apply_cnpg_composition() {
    support::apply_crds();
    support::apply_cloud_crds();
    kubectl_ok([
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "compositions/cnpg-postgres.yaml",
    ]);
}

fn cnpg_claim(ns: &str, name: &str, extra: &str) -> String {
    claim_yaml(ns, name, "") + &format!("  compositionRef: {{name: cnpg-postgres}}\n{extra}")
}

/// The claim's Cluster, by its labels.
async fn composed(ns: &str, claim: &str) -> Option<DynamicObject> {
    let lp = kube::api::ListParams::default().labels(&format!("dbclaim.io/claim-name={claim}"));
    clusters(ns)
        .await
        .list(&lp)
        .await
        .ok()
        .and_then(|l| l.items.into_iter().next())
}

#[tokio::test]
async fn cnpg_claims_of_each_size_become_ready_and_delete_removes_them() {
    let _lock = support::exclusive().await;
    apply_cnpg_composition();
    let ns = TestNamespace::new("cnpg");
    let ns = ns.name().to_string();
    let double = cloudnative_pg_double(&ns);
    let _op = Operator::start();
    // (claim, size, parameters, instances)
    let claims = [
        ("small", "small", "", 1),
        ("medium", "medium", "", 2),
        ("large", "large", "", 3),
        ("many", "small", "  parameters: {instances: \"12\"}\n", 9),
    ];
    for (name, size, params, _) in claims {
        kubectl_apply(&cnpg_claim(
            &ns,
            name,
            &format!("  size: {size}\n  storageGB: 30\n  version: \"16\"\n{params}"),
        ));
    }
    // The API server accepted every Cluster (the real CRD), and while
    // CloudNativePG sets the primary up the claim says so.
    for (name, _, _, instances) in claims {
        wait_for(TIMEOUT, &format!("{name}: the Cluster"), || async {
            composed(&ns, name).await.is_some()
        })
        .await;
        let c = composed(&ns, name)
            .await
            .unwrap_or_else(|| panic!("no Cluster"));
        let spec = &c.data["spec"];
        assert_eq!(spec["instances"], json!(instances), "{name}");
        assert_eq!(spec["storage"]["size"], json!("30Gi"));
        assert_eq!(
            spec["imageName"],
            json!("ghcr.io/cloudnative-pg/postgresql:16")
        );
        assert_eq!(spec["bootstrap"]["initdb"]["database"], json!(name));
        assert_eq!(spec["bootstrap"]["initdb"]["owner"], json!(name));
        wait_for(
            TIMEOUT,
            &format!("{name}: Ready=False naming the phase"),
            || async {
                get_claim(&ns, name)
                    .await
                    .and_then(|c| condition(&c, "Ready"))
                    .is_some_and(|(s, _, m)| s == "False" && m.contains("Setting up primary"))
            },
        )
        .await;
    }
    // The schema is CloudNativePG's own: it refuses what its API refuses.
    let small = composed(&ns, "small")
        .await
        .unwrap_or_else(|| panic!("no Cluster"));
    let small_name = small.metadata.name.clone().unwrap_or_default();
    let refused = |spec: &str| {
        let bad = format!(
            "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {{name: bad, namespace: {ns}}}\nspec: {spec}\n"
        );
        let out = support::kubectl_with_stdin(
            ["apply", "--server-side", "--dry-run=server", "-f", "-"],
            &bad,
        );
        assert!(!out.status.success(), "accepted: {spec}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = refused("{instances: 0}");
    assert!(err.contains("spec.instances"), "{err}");
    let err = refused(
        "{instances: 1, imageName: x, imageCatalogRef: {apiGroup: postgresql.cnpg.io, kind: ImageCatalog, name: c, major: 16}}",
    );
    assert!(err.contains("mutually exclusive"), "{err}");

    double.set(Phase::Healthy);
    for (name, _, _, _) in claims {
        let c = wait_ready(&ns, name).await;
        let (s, reason, _) = condition(&c, "Synced").unwrap_or_default();
        assert_eq!((s.as_str(), reason.as_str()), ("True", "ReconcileSuccess"));
        let cluster = composed(&ns, name)
            .await
            .unwrap_or_else(|| panic!("no Cluster"));
        let cluster_name = cluster.metadata.name.clone().unwrap_or_default();
        let data = secret(&ns, &format!("{name}-connection")).await;
        let host = format!("{cluster_name}-rw.{ns}.svc");
        assert_eq!(data.get("host"), Some(&host));
        assert_eq!(data.get("port").map(String::as_str), Some("5432"));
        assert_eq!(data.get("database").map(String::as_str), Some(name));
        assert_eq!(data.get("username").map(String::as_str), Some(name));
        // The password is the one CloudNativePG wrote to `<cluster>-app`.
        let app = secret(&ns, &format!("{cluster_name}-app")).await;
        let password = data.get("password").cloned().unwrap_or_default();
        assert_eq!(password.len(), 64);
        assert_eq!(app.get("password"), Some(&password));
        assert_eq!(
            data.get("uri").cloned().unwrap_or_default(),
            format!("postgresql://{name}:{password}@{host}:5432/{name}")
        );
        let outputs = c.status.as_ref().map(|s| s.outputs.clone());
        assert_eq!(
            outputs.and_then(|o| o.get("currentPrimary").cloned()),
            Some(json!(format!("{cluster_name}-1")))
        );
    }
    // Storage growth reaches the Cluster.
    grow_storage(&ns, "small", 60);
    wait_for(TIMEOUT, "storage.size 60Gi", || async {
        composed(&ns, "small")
            .await
            .is_some_and(|c| c.data["spec"]["storage"]["size"] == json!("60Gi"))
    })
    .await;
    // Delete: the Cluster goes, and with it (garbage collection of what it
    // owns) the `-app` Secret.
    delete_claim_and_wait(&ns, "small").await;
    assert!(
        clusters(&ns)
            .await
            .get_opt(&small_name)
            .await
            .ok()
            .flatten()
            .is_none(),
        "Cluster left behind"
    );
    wait_for(TIMEOUT, "the -app Secret to be collected", || async {
        matches!(
            secrets(&ns)
                .await
                .get_opt(&format!("{small_name}-app"))
                .await,
            Ok(None)
        )
    })
    .await;
}

#[tokio::test]
async fn cnpg_orphan_leaves_the_cluster_running_unmanaged() {
    let _lock = support::exclusive().await;
    apply_cnpg_composition();
    let ns = TestNamespace::new("cnpg-orphan");
    let ns = ns.name().to_string();
    let double = cloudnative_pg_double(&ns);
    double.set(Phase::Healthy);
    let _op = Operator::start();
    kubectl_apply(&cnpg_claim(&ns, "kept", "  deletionPolicy: Orphan\n"));
    wait_ready(&ns, "kept").await;
    let name = composed(&ns, "kept")
        .await
        .and_then(|c| c.metadata.name)
        .unwrap_or_default();
    delete_claim_and_wait(&ns, "kept").await;
    let cluster = clusters(&ns)
        .await
        .get_opt(&name)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("Cluster {name} was deleted despite Orphan"));
    assert!(
        cluster
            .metadata
            .owner_references
            .as_ref()
            .is_none_or(Vec::is_empty),
        "Cluster still owned by the deleted claim"
    );
    assert_eq!(cluster.data["status"]["phase"], json!(HEALTHY));
    // Its credentials stay with it, for whoever adopts it.
    let app = secret(&ns, &format!("{name}-app")).await;
    assert_eq!(app.get("dbname").map(String::as_str), Some("kept"));
}

#[tokio::test]
async fn cnpg_failure_phase_reaches_the_claim_as_provider_error() {
    let _lock = support::exclusive().await;
    apply_cnpg_composition();
    let ns = TestNamespace::new("cnpg-fail");
    let ns = ns.name().to_string();
    let double = cloudnative_pg_double(&ns);
    double.set(Phase::Healthy);
    let _op = Operator::start();
    kubectl_apply(&cnpg_claim(&ns, "quota", ""));
    wait_ready(&ns, "quota").await;
    let cause = "persistentvolumeclaims \"quota-1\" is forbidden: exceeded quota: storage";
    double.set(Phase::CannotCreateObjects(cause.to_string()));
    let c = wait_condition(&ns, "quota", "Synced", "False", Some("ProviderError")).await;
    let (_, _, message) = condition(&c, "Synced").unwrap_or_default();
    assert!(message.contains(cause), "{message}");
    assert!(
        message.contains("Cluster")
            && message.contains("Unable to create required cluster objects"),
        "{message}"
    );
    // CloudNativePG recovers: so does the claim.
    double.set(Phase::Healthy);
    wait_condition(&ns, "quota", "Synced", "True", Some("ReconcileSuccess")).await;
    assert!(get_claim(&ns, "quota").await.is_some());
}
