//! The cloud compositions end to end: the shipped `gcp-cloudsql-*`
//! compositions against Config Connector's real CRDs (installed from its Go
//! module by e2e/fetch-crds), so the API server validates every composed
//! object against the upstream schema. Config Connector itself does not
//! run here: a small test double plays its part, writing the status fields
//! and conditions its controllers write (the `Ready` condition with reason
//! `Updating`, `UpToDate` or `UpdateFailed`; `privateIpAddress` and
//! `connectionName` on a SQLInstance).

mod cnpg;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::claims::{
    claim_yaml, condition, delete_claim_and_wait, get_claim, secret_data, wait_condition,
    wait_ready,
};
use crate::support::{self, Operator, TestNamespace, kubectl_apply, kubectl_ok, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);
const KINDS: [&str; 3] = ["SQLInstance", "SQLDatabase", "SQLUser"];
const PRIVATE_IP: &str = "10.20.0.3";

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("sql.cnrm.cloud.google.com", "v1beta1", kind),
        &format!("{}s", kind.to_lowercase()),
    )
}

async fn api(ns: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(support::kube_client().await, ns, &resource(kind))
}

/// What the double reports for every Config Connector object.
#[derive(Clone, Debug)]
enum Phase {
    /// Config Connector is still creating the cloud resource.
    Updating,
    UpToDate,
    /// The cloud refused an update.
    UpdateFailed(String),
}

/// A cloud operator's test double: every 300 ms `tick` writes what the
/// operator would for the current phase; `set` changes the phase.
struct Double<P> {
    phase: Arc<Mutex<P>>,
    task: tokio::task::JoinHandle<()>,
}

impl<P: Clone + Send + 'static> Double<P> {
    fn start<F, Fut>(initial: P, tick: F) -> Self
    where
        F: Fn(P) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let phase = Arc::new(Mutex::new(initial.clone()));
        let shared = phase.clone();
        let task = tokio::spawn(async move {
            loop {
                let now = shared
                    .lock()
                    .map(|p| p.clone())
                    .unwrap_or_else(|_| initial.clone());
                tick(now).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Self { phase, task }
    }

    fn set(&self, phase: P) {
        if let Ok(mut p) = self.phase.lock() {
            *p = phase;
        }
    }
}

impl<P> Drop for Double<P> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Grows a claim's storageGB, as a developer would.
fn grow_storage(ns: &str, claim: &str, gb: u32) {
    let patch = format!(r#"{{"spec":{{"storageGB":{gb}}}}}"#);
    kubectl_ok([
        "patch",
        "dbc",
        claim,
        "-n",
        ns,
        "--type=merge",
        "-p",
        &patch,
    ]);
}

/// Writes `status` to an object (as its controller would) unless it has it.
async fn put_status(api: &Api<DynamicObject>, obj: &DynamicObject, status: Value) {
    if obj.data.get("status") == Some(&status) {
        return;
    }
    let name = obj.metadata.name.clone().unwrap_or_default();
    let _ = api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await;
}

/// Config Connector's part: every composed SQL* object of the namespace
/// gets the status its controller would write for the current phase.
fn config_connector_double(ns: &str) -> Double<Phase> {
    let ns = ns.to_string();
    Double::start(Phase::Updating, move |now| {
        let ns = ns.clone();
        async move {
            for kind in KINDS {
                let api = api(&ns, kind).await;
                let Ok(list) = api.list(&Default::default()).await else {
                    continue;
                };
                for obj in list {
                    put_status(&api, &obj, status_for(kind, &obj, &now)).await;
                }
            }
        }
    })
}

/// The status Config Connector writes (its API reference: a `Ready`
/// condition; a SQLInstance's addresses once it exists).
fn status_for(kind: &str, obj: &DynamicObject, phase: &Phase) -> Value {
    let generation = obj.metadata.generation.unwrap_or(1);
    let (status, reason, message) = match phase {
        Phase::Updating => ("False", "Updating", "Update in progress".to_string()),
        Phase::UpToDate => ("True", "UpToDate", "The resource is up to date".to_string()),
        Phase::UpdateFailed(m) => ("False", "UpdateFailed", format!("Update call failed: {m}")),
    };
    let mut s = json!({
        "conditions": [{
            "type": "Ready", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }],
        "observedGeneration": generation,
    });
    if kind == "SQLInstance" && !matches!(phase, Phase::Updating) {
        let name = obj.metadata.name.clone().unwrap_or_default();
        s["privateIpAddress"] = json!(PRIVATE_IP);
        s["connectionName"] = json!(format!("my-gcp-project:us-central1:{name}"));
    }
    s
}

fn apply_gcp_compositions() {
    support::apply_crds();
    support::apply_cloud_crds();
    kubectl_ok([
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "compositions/gcp-cloudsql-postgres.yaml",
        "-f",
        "compositions/gcp-cloudsql-mysql.yaml",
    ]);
}

fn gcp_claim(ns: &str, name: &str, engine: &str, extra: &str) -> String {
    claim_yaml(ns, name, "").replace("engine: postgres", &format!("engine: {engine}"))
        + &format!("  compositionRef: {{name: gcp-cloudsql-{engine}}}\n{extra}")
}

/// The composed object of `kind` for a claim, by its labels.
async fn composed(ns: &str, claim: &str, kind: &str) -> Option<DynamicObject> {
    let lp = kube::api::ListParams::default().labels(&format!("dbclaim.io/claim-name={claim}"));
    api(ns, kind)
        .await
        .list(&lp)
        .await
        .ok()
        .and_then(|l| l.items.into_iter().next())
}

async fn secret(ns: &str, name: &str) -> BTreeMap<String, String> {
    secret_data(ns, name)
        .await
        .unwrap_or_else(|| panic!("no Secret {ns}/{name}"))
}

/// Composes and gets a claim ready through one composition, then checks
/// the Secret, the password reference and storage growth.
async fn ready_claims_of_each_size(engine: &str, port: &str) {
    let _lock = support::exclusive().await;
    apply_gcp_compositions();
    let ns = TestNamespace::new(&format!("gcp-{engine}"));
    let ns = ns.name().to_string();
    let double = config_connector_double(&ns);
    let _op = Operator::start();
    let sizes = [
        ("small", "db-custom-1-3840"),
        ("medium", "db-custom-2-7680"),
        ("large", "db-custom-4-15360"),
    ];
    for (size, _) in sizes {
        kubectl_apply(&gcp_claim(
            &ns,
            size,
            engine,
            &format!("  size: {size}\n  storageGB: 30\n"),
        ));
    }
    // The API server accepted every composed object (the real CRDs), and
    // while Config Connector is still working the claim says so.
    for (size, tier) in sizes {
        wait_for(
            TIMEOUT,
            &format!("{size}: the composed objects"),
            || async {
                let mut all = true;
                for kind in KINDS {
                    all &= composed(&ns, size, kind).await.is_some();
                }
                all
            },
        )
        .await;
        let inst = composed(&ns, size, "SQLInstance")
            .await
            .unwrap_or_else(|| panic!("no instance"));
        assert_eq!(inst.data["spec"]["settings"]["tier"], json!(tier));
        assert_eq!(inst.data["spec"]["settings"]["diskSize"], json!(30));
        wait_for(
            TIMEOUT,
            &format!("{size}: Ready=False naming Updating"),
            || async {
                get_claim(&ns, size)
                    .await
                    .and_then(|c| condition(&c, "Ready"))
                    .is_some_and(|(s, _, m)| s == "False" && m.contains("Updating"))
            },
        )
        .await;
    }
    double.set(Phase::UpToDate);
    for (size, _) in sizes {
        let c = wait_ready(&ns, size).await;
        let (s, reason, _) = condition(&c, "Synced").unwrap_or_default();
        assert_eq!((s.as_str(), reason.as_str()), ("True", "ReconcileSuccess"));
        let data = secret(&ns, &format!("{size}-connection")).await;
        assert_eq!(data.get("host").map(String::as_str), Some(PRIVATE_IP));
        assert_eq!(data.get("port").map(String::as_str), Some(port));
        assert_eq!(data.get("database").map(String::as_str), Some(size));
        assert_eq!(data.get("username").map(String::as_str), Some(size));
        let password = data.get("password").cloned().unwrap_or_default();
        assert_eq!(password.len(), 32);
        let scheme = if engine == "postgres" {
            "postgresql"
        } else {
            "mysql"
        };
        assert_eq!(
            data.get("uri").cloned().unwrap_or_default(),
            format!("{scheme}://{size}:{password}@{PRIVATE_IP}:{port}/{size}")
        );
        // The password is the one the SQLUser references.
        let user = composed(&ns, size, "SQLUser")
            .await
            .unwrap_or_else(|| panic!("no user"));
        let r = &user.data["spec"]["password"]["valueFrom"]["secretKeyRef"];
        let referenced = secret(&ns, r["name"].as_str().unwrap_or_default()).await;
        assert_eq!(r["key"], json!("password"));
        assert_eq!(referenced.get("password"), Some(&password));
        let db = composed(&ns, size, "SQLDatabase")
            .await
            .unwrap_or_else(|| panic!("no database"));
        let inst = composed(&ns, size, "SQLInstance")
            .await
            .unwrap_or_else(|| panic!("no instance"));
        assert_eq!(
            db.data["spec"]["instanceRef"]["name"],
            json!(inst.metadata.name)
        );
        assert_eq!(
            user.data["spec"]["instanceRef"]["name"],
            json!(inst.metadata.name)
        );
    }
    // Storage growth reaches the SQLInstance.
    grow_storage(&ns, "small", 60);
    wait_for(TIMEOUT, "diskSize 60", || async {
        composed(&ns, "small", "SQLInstance")
            .await
            .is_some_and(|i| i.data["spec"]["settings"]["diskSize"] == json!(60))
    })
    .await;
    // Delete: every composed object goes.
    delete_claim_and_wait(&ns, "small").await;
    for kind in KINDS {
        assert!(
            composed(&ns, "small", kind).await.is_none(),
            "{kind} left behind"
        );
    }
}

#[tokio::test]
async fn gcp_postgres_claims_of_each_size_become_ready_and_delete_removes_them() {
    ready_claims_of_each_size("postgres", "5432").await;
}

#[tokio::test]
async fn gcp_mysql_claims_of_each_size_become_ready_and_delete_removes_them() {
    ready_claims_of_each_size("mysql", "3306").await;
}

#[tokio::test]
async fn gcp_orphan_leaves_the_objects_with_config_connectors_abandon_annotation() {
    let _lock = support::exclusive().await;
    apply_gcp_compositions();
    let ns = TestNamespace::new("gcp-orphan");
    let ns = ns.name().to_string();
    let double = config_connector_double(&ns);
    double.set(Phase::UpToDate);
    let _op = Operator::start();
    kubectl_apply(&gcp_claim(
        &ns,
        "kept",
        "postgres",
        "  deletionPolicy: Orphan\n",
    ));
    wait_ready(&ns, "kept").await;
    // Released objects lose dbclaim's labels: find them by name.
    let mut names = BTreeMap::new();
    for kind in KINDS {
        let obj = composed(&ns, "kept", kind).await;
        names.insert(kind, obj.and_then(|o| o.metadata.name).unwrap_or_default());
    }
    delete_claim_and_wait(&ns, "kept").await;
    for kind in KINDS {
        let obj = api(&ns, kind)
            .await
            .get_opt(&names[kind])
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("{kind} was deleted despite Orphan"));
        assert_eq!(
            obj.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("cnrm.cloud.google.com/deletion-policy"))
                .map(String::as_str),
            Some("abandon"),
            "{kind}"
        );
        assert!(
            obj.metadata
                .owner_references
                .as_ref()
                .is_none_or(Vec::is_empty),
            "{kind} still owned by the deleted claim"
        );
    }
}

#[tokio::test]
async fn gcp_update_failed_reaches_the_claim_as_provider_error() {
    let _lock = support::exclusive().await;
    apply_gcp_compositions();
    let ns = TestNamespace::new("gcp-fail");
    let ns = ns.name().to_string();
    let double = config_connector_double(&ns);
    double.set(Phase::UpToDate);
    let _op = Operator::start();
    kubectl_apply(&gcp_claim(&ns, "quota", "postgres", ""));
    wait_ready(&ns, "quota").await;
    let cloud = "googleapi: Error 403: The Cloud SQL quota for the project was exceeded";
    double.set(Phase::UpdateFailed(cloud.to_string()));
    let c = wait_condition(&ns, "quota", "Synced", "False", Some("ProviderError")).await;
    let (_, _, message) = condition(&c, "Synced").unwrap_or_default();
    assert!(message.contains(cloud), "{message}");
    assert!(message.contains("SQLInstance"), "{message}");
    // The cloud recovers: so does the claim.
    double.set(Phase::UpToDate);
    wait_condition(&ns, "quota", "Synced", "True", Some("ReconcileSuccess")).await;
    assert!(get_claim(&ns, "quota").await.is_some());
}
