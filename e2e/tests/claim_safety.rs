//! Refusals, stuck deletions, the connection Secret's life and tenant
//! boundaries, seen on the claim (issue 13, audit H2, H6, M7, L10).

use std::time::{Duration, Instant};

use dbclaim::api::DatabaseClaim;

use crate::aws::{apply_provider_config, aws_claim};
use crate::claims::{claim_yaml, condition, get_claim, secret_data, wait_condition, wait_ready};
use crate::support::operator::OPERATOR_NAMESPACE;
use crate::support::{
    self, Moto, Operator, TestNamespace, kubectl, kubectl_apply, kubectl_ok, unique_name, wait_for,
};

/// How soon a refusal must show on the claim.
const REFUSAL: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_secs(60);

/// A test's namespace and a ready operator (the time a refusal takes to
/// show is measured from a running operator, not from its start). On drop
/// its claims are deleted and awaited while the operator still runs: a
/// claim left behind would be the next test's operator's to clean up, under
/// whatever RBAC that one has.
struct World {
    _op: Operator,
    ns: TestNamespace,
}

impl World {
    async fn start(prefix: &str) -> World {
        support::apply_crds();
        let ns = TestNamespace::new(prefix);
        let op = Operator::start();
        let port = op.probes_port;
        wait_for(TIMEOUT, "the operator to be ready", || async move {
            Operator::http_get(port, "/readyz").is_some_and(|(code, _)| code == 200)
        })
        .await;
        World { _op: op, ns }
    }

    fn ns(&self) -> &str {
        self.ns.name()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let out = kubectl([
            "delete",
            "databaseclaims",
            "--all",
            "-n",
            self.ns.name(),
            "--timeout=60s",
        ]);
        if !out.status.success() {
            eprintln!(
                "warning: claims in {} not deleted: {}",
                self.ns.name(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A composition of one ConfigMap, always ready, publishing every key a
/// claim needs as a fixed value: the claim's Secret is written at once.
pub(crate) fn configmap_composition(name: &str) -> String {
    format!(
        r#"apiVersion: dbclaim.io/v1alpha1
kind: Composition
metadata: {{name: {name}}}
spec:
  engines: [postgres]
  resources:
  - name: settings
    base:
      apiVersion: v1
      kind: ConfigMap
      data: {{k: v}}
    readinessChecks: [{{type: None}}]
    connectionDetails:
    - {{name: host, value: db.example}}
    - {{name: port, value: "5432"}}
    - {{name: database, value: app}}
    - {{name: username, value: app}}
    - {{name: password, value: not-a-secret}}
"#
    )
}

/// A [`World`] and a [`configmap_composition`].
async fn configmap_world(prefix: &str) -> (World, String) {
    support::apply_crds();
    let comp = unique_name("safety-cm");
    kubectl_apply(&configmap_composition(&comp));
    (World::start(prefix).await, comp)
}

/// Waits up to `timeout` for `Synced=False` with `reason`; returns the claim.
async fn wait_refused(ns: &str, name: &str, reason: &str, timeout: Duration) -> DatabaseClaim {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Some(c) = get_claim(ns, name).await {
            if condition(&c, "Synced").is_some_and(|(s, r, _)| s == "False" && r == reason) {
                return c;
            }
            last = c.status;
        }
        assert!(
            Instant::now() < deadline,
            "claim {ns}/{name} not Synced=False {reason} within {timeout:?}; last status: {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn message(claim: &DatabaseClaim, type_: &str) -> String {
    condition(claim, type_).map(|c| c.2).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_the_rdsinstance_schema_refuses_is_reported_on_the_first_pass() {
    let _lock = support::exclusive().await;
    support::apply_crds();
    let moto = Moto::start();
    apply_provider_config("default", Some(&moto.endpoint), "AKIAE2EDBCLAIMSAFETY");
    // The shipped composition clamps backupRetentionDays to the CRD's range
    // (1..35): a copy without the clamp, as a platform team might write it.
    let comp = apply_unclamped_rds_composition();
    let w = World::start("safety-rds").await;
    let ns = w.ns();

    let extra = "  parameters: {backupRetentionDays: \"100\"}\n";
    let claim = aws_claim(ns, "retention", "postgres", extra)
        .replace("name: aws-rds-postgres}", &format!("name: {comp}}}"));
    kubectl_apply(&claim);
    let claim = wait_refused(ns, "retention", "CompositionInvalid", REFUSAL).await;
    let m = message(&claim, "Synced");
    assert!(m.contains("RDSInstance "), "{m}");
    assert!(m.contains("backupRetentionPeriod"), "{m}");
    assert!(m.contains("refused by the API server (422"), "{m}");
    // Nothing was created, so nothing reached AWS.
    let out = kubectl_ok([
        "get",
        "rdsinstances.aws.dbclaim.io",
        "-l",
        "dbclaim.io/claim-name=retention",
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "", "no RDSInstance exists");
}

/// `compositions/aws-rds-postgres.yaml` under a new name, with
/// `backupRetentionDays` converted but not clamped; its name.
fn apply_unclamped_rds_composition() -> String {
    let text = std::fs::read_to_string("compositions/aws-rds-postgres.yaml")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut comp: serde_json::Value = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let name = unique_name("rds-unclamped");
    comp["metadata"] = serde_json::json!({"name": name});
    let patches = comp["spec"]["resources"][0]["patches"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("no patches"));
    for p in patches.iter_mut() {
        if p["fromFieldPath"] == "spec.parameters.backupRetentionDays" {
            p["transforms"] =
                serde_json::json!([{"type": "convert", "convert": {"toType": "int64"}}]);
        }
    }
    kubectl_apply(&serde_yaml::to_string(&comp).unwrap_or_else(|e| panic!("{e}")));
    name
}

/// A ValidatingAdmissionPolicy that denies ConfigMaps in one namespace,
/// removed on drop.
struct DenyConfigMaps(String);

impl DenyConfigMaps {
    async fn install(ns: &str) -> Self {
        let name = unique_name("deny-cm");
        kubectl_apply(&format!(
            r#"apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - apiGroups: [""]
      apiVersions: [v1]
      operations: [CREATE, UPDATE]
      resources: [configmaps]
  validations:
  - expression: "false"
    message: ConfigMaps are not allowed in this namespace
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {name}
  validationActions: [Deny]
  matchResources:
    namespaceSelector:
      matchLabels: {{kubernetes.io/metadata.name: {ns}}}
"#
        ));
        // The policy takes effect asynchronously.
        wait_for(TIMEOUT, "the admission policy to deny", || async {
            let out = kubectl(["create", "configmap", "probe", "-n", ns, "--dry-run=server"]);
            !out.status.success()
        })
        .await;
        Self(name)
    }
}

impl Drop for DenyConfigMaps {
    fn drop(&mut self) {
        for kind in [
            "validatingadmissionpolicybinding",
            "validatingadmissionpolicy",
        ] {
            let _ = kubectl(["delete", kind, &self.0, "--ignore-not-found"]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composed_object_denied_by_admission_is_reported() {
    let _lock = support::exclusive().await;
    let (w, comp) = configmap_world("safety-admission").await;
    let ns = w.ns();
    let _deny = DenyConfigMaps::install(ns).await;

    let spec = format!("  compositionRef: {{name: {comp}}}\n");
    kubectl_apply(&claim_yaml(ns, "denied", &spec));
    let claim = wait_refused(ns, "denied", "CompositionInvalid", REFUSAL).await;
    let m = message(&claim, "Synced");
    assert!(m.contains("cannot apply ConfigMap "), "{m}");
    assert!(m.contains("refused by the API server"), "{m}");
    assert!(
        m.contains("ConfigMaps are not allowed in this namespace"),
        "{m}"
    );
    assert!(
        claim.status.as_ref().is_some_and(|s| s
            .conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True")),
        "only a change helps: Stalled"
    );
}

/// A namespaced kind whose objects write connection Secrets, as ACK or
/// Crossplane v2 managed resources do.
fn apply_widget_crd() {
    kubectl_apply(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.e2e.dbclaim.io}
spec:
  group: e2e.dbclaim.io
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {type: object, x-kubernetes-preserve-unknown-fields: true}
"#,
    );
    kubectl_ok([
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/widgets.e2e.dbclaim.io",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespaced_object_cannot_pull_a_secret_from_the_operator_namespace() {
    let _lock = support::exclusive().await;
    support::apply_crds();
    apply_widget_crd();
    let w = World::start("safety-h6").await;
    let ns = w.ns();
    kubectl_apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {OPERATOR_NAMESPACE}\n"
    ));
    let admin = unique_name("admin");
    kubectl_apply(&format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: {admin}, namespace: {OPERATOR_NAMESPACE}}}
stringData: {{username: admin-user-e2e, password: admin-password-e2e}}
---
apiVersion: v1
kind: Secret
metadata: {{name: local-conn, namespace: {ns}}}
stringData: {{username: local-user, password: local-password}}
"#
    ));
    // The Secret the widget writes to comes from claim parameters.
    let comp = unique_name("safety-widget");
    kubectl_apply(&format!(
        r#"apiVersion: dbclaim.io/v1alpha1
kind: Composition
metadata: {{name: {comp}}}
spec:
  engines: [postgres]
  resources:
  - name: widget
    base:
      apiVersion: e2e.dbclaim.io/v1
      kind: Widget
      spec: {{size: 1}}
    patches:
    - fromFieldPath: spec.parameters.secretName
      toFieldPath: spec.writeConnectionSecretToRef.name
    - fromFieldPath: spec.parameters.secretNamespace
      toFieldPath: spec.writeConnectionSecretToRef.namespace
    readinessChecks: [{{type: None}}]
    connectionDetails:
    - {{name: host, value: db.example}}
    - {{name: port, value: "5432"}}
    - {{name: database, value: app}}
    - {{name: username, fromConnectionSecretKey: username}}
    - {{name: password, fromConnectionSecretKey: password}}
"#
    ));

    // Its own namespace: read.
    let local =
        format!("  compositionRef: {{name: {comp}}}\n  parameters: {{secretName: local-conn}}\n");
    kubectl_apply(&claim_yaml(ns, "local", &local));
    wait_ready(ns, "local").await;
    let data = secret_data(ns, "local-connection")
        .await
        .unwrap_or_default();
    assert_eq!(data.get("username").map(String::as_str), Some("local-user"));

    // The operator namespace's admin Secret: never.
    let thief = format!(
        "  compositionRef: {{name: {comp}}}\n  parameters: {{secretName: {admin}, secretNamespace: {OPERATOR_NAMESPACE}}}\n"
    );
    kubectl_apply(&claim_yaml(ns, "thief", &thief));
    let claim = wait_condition(ns, "thief", "Ready", "False", Some("Creating")).await;
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut claim = claim;
    while Instant::now() < deadline {
        if let Some(data) = secret_data(ns, "thief-connection").await {
            let leaked: Vec<_> = data
                .values()
                .filter(|v| v.contains("admin-user-e2e") || v.contains("admin-password-e2e"))
                .collect();
            assert!(leaked.is_empty(), "the admin's values leaked: {data:?}");
        }
        if let Some(c) = get_claim(ns, "thief").await {
            claim = c;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let m = message(&claim, "Ready");
    assert!(
        m.contains("lacks") && m.contains("username") && m.contains("password"),
        "{m}"
    );
    let widgets = kubectl_ok(["get", "widgets.e2e.dbclaim.io", "-n", ns, "-o", "name"]);
    assert_eq!(widgets.lines().count(), 2, "both widgets exist: {widgets}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_deletion_names_the_object_and_the_secret_goes_with_the_claim() {
    let _lock = support::exclusive().await;
    let (w, comp) = configmap_world("safety-delete").await;
    let ns = w.ns();

    let spec = format!("  compositionRef: {{name: {comp}}}\n");
    kubectl_apply(&claim_yaml(ns, "held", &spec));
    let claim = wait_ready(ns, "held").await;
    assert!(secret_data(ns, "held-connection").await.is_some());

    // A renamed Secret: the old one goes once the new one is written.
    let renamed = format!("{spec}  writeConnectionSecretToRef: {{name: held-conn-2}}\n");
    kubectl_apply(&claim_yaml(ns, "held", &renamed));
    wait_for(
        TIMEOUT,
        "the renamed Secret, and the old one gone",
        || async {
            secret_data(ns, "held-conn-2").await.is_some()
                && secret_data(ns, "held-connection").await.is_none()
        },
    )
    .await;

    // A finalizer someone else put on the composed object holds the deletion.
    let cm = claim
        .status
        .as_ref()
        .and_then(|s| s.resources.first())
        .map(|r| r.resource_name.clone())
        .unwrap_or_else(|| panic!("claim lists no resource"));
    let hold = r#"{"metadata":{"finalizers":["e2e.dbclaim.io/hold"]}}"#;
    kubectl_ok([
        "patch",
        "configmap",
        &cm,
        "-n",
        ns,
        "--type=merge",
        "-p",
        hold,
    ]);
    kubectl_ok(["delete", "databaseclaim", "held", "-n", ns, "--wait=false"]);
    let claim = wait_condition(ns, "held", "Ready", "False", Some("Deleting")).await;
    let m = message(&claim, "Ready");
    assert!(m.contains(&format!("ConfigMap {cm}")), "{m}");
    assert!(m.contains("e2e.dbclaim.io/hold"), "{m}");
    assert_eq!(
        condition(&claim, "Synced").map(|c| (c.0, c.1)),
        Some(("True".into(), "ReconcileSuccess".into())),
        "Synced stays as it was"
    );
    assert!(
        secret_data(ns, "held-conn-2").await.is_some(),
        "kept while waiting"
    );

    // Released: the claim goes, and its Secret is gone by then (the
    // operator deletes it; the garbage collector would take a while).
    kubectl_ok([
        "patch",
        "configmap",
        &cm,
        "-n",
        ns,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    wait_for(TIMEOUT, "the claim to be gone", || async {
        get_claim(ns, "held").await.is_none()
    })
    .await;
    assert!(
        secret_data(ns, "held-conn-2").await.is_none(),
        "the connection Secret outlived its claim"
    );
}
