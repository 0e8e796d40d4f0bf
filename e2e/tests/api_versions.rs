//! DatabaseClaim v1alpha1 and v1beta1 (issue 17): both served, v1beta1
//! stored, converted by the plane's webhook (e2e/cluster) with the code the
//! operator serves; compositions reading the version they declare; a clear
//! error when the webhook is down.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::Value;

use crate::claims::{get_claim, wait_ready};
use crate::support::{
    self, Operator, TestNamespace, kubectl, kubectl_ok, kubectl_with_stdin, unique_name, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(60);
const V1ALPHA1: &str = "databaseclaims.v1alpha1.dbclaim.io";
const V1BETA1: &str = "databaseclaims.v1beta1.dbclaim.io";
/// A GitOps tool's field manager (Argo CD's name for server-side apply).
const GITOPS: &str = "argocd-controller";

fn ssa(manifest: &str, manager: &str) -> std::process::Output {
    kubectl_with_stdin(
        [
            "apply",
            "--server-side",
            &format!("--field-manager={manager}"),
            "-f",
            "-",
        ],
        manifest,
    )
}

#[track_caller]
fn ssa_ok(manifest: &str, manager: &str) {
    let out = ssa(manifest, manager);
    assert!(
        out.status.success(),
        "apply failed: {}\n{manifest}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn get_as(resource: &str, ns: &str, name: &str) -> Value {
    serde_json::from_str(&kubectl_ok(["get", resource, name, "-n", ns, "-o", "json"]))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn patch_as(resource: &str, ns: &str, name: &str, patch: &str) -> std::process::Output {
    kubectl([
        "patch",
        resource,
        name,
        "-n",
        ns,
        "--type=merge",
        "-p",
        patch,
    ])
}

fn alpha_claim(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: dbclaim.io/v1alpha1\nkind: DatabaseClaim\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
    )
}

fn beta_claim(ns: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: dbclaim.io/v1beta1\nkind: DatabaseClaim\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {spec}\n"
    )
}

#[tokio::test]
async fn a_v1alpha1_manifest_reads_as_v1beta1_and_reapplies_as_a_no_op() {
    // No operator of all namespaces writes the claim's status meanwhile.
    let _lock = support::exclusive().await;
    support::apply_crds();
    let ns = TestNamespace::new("apiv-gitops");
    let manifest = alpha_claim(
        ns.name(),
        "orders",
        "{engine: postgres, size: medium, storageGB: 50, parameters: {tier: gold}}",
    );
    ssa_ok(&manifest, GITOPS);

    let beta = get_as(V1BETA1, ns.name(), "orders");
    assert_eq!(beta["apiVersion"], "dbclaim.io/v1beta1");
    assert_eq!(beta["spec"]["storage"], "50Gi", "{beta}");
    assert!(beta["spec"].get("storageGB").is_none(), "{beta}");
    assert_eq!(beta["spec"]["size"], "medium");
    assert_eq!(beta["spec"]["parameters"]["tier"], "gold");
    // kubectl's default is the preferred version.
    let preferred = get_as("dbc", ns.name(), "orders");
    assert_eq!(preferred["apiVersion"], "dbclaim.io/v1beta1");

    let alpha = get_as(V1ALPHA1, ns.name(), "orders");
    assert_eq!(alpha["spec"]["storageGB"], 50, "{alpha}");
    assert!(alpha["spec"].get("storage").is_none(), "{alpha}");
    let version = alpha["metadata"]["resourceVersion"].clone();

    // The GitOps tool syncs the same manifest again: nothing changes and
    // it owns what it owned (no conflict, no new resourceVersion).
    for _ in 0..2 {
        ssa_ok(&manifest, GITOPS);
        let again = get_as(V1ALPHA1, ns.name(), "orders");
        assert_eq!(again["metadata"]["resourceVersion"], version, "{again}");
    }
    // A dry-run diff as Argo CD computes it is empty too.
    let diff = kubectl_with_stdin(
        [
            "diff",
            "--server-side",
            &format!("--field-manager={GITOPS}"),
            "-f",
            "-",
        ],
        &manifest,
    );
    assert!(
        diff.status.success(),
        "kubectl diff shows a change:\n{}{}",
        String::from_utf8_lossy(&diff.stdout),
        String::from_utf8_lossy(&diff.stderr)
    );

    // A v1beta1 manifest with another spelling keeps it, read back in v1beta1.
    ssa_ok(
        &beta_claim(ns.name(), "big", "{engine: postgres, storage: 1Ti}"),
        GITOPS,
    );
    let alpha = get_as(V1ALPHA1, ns.name(), "big");
    assert_eq!(alpha["spec"]["storageGB"], 1024, "{alpha}");
    let beta = get_as(V1BETA1, ns.name(), "big");
    assert_eq!(beta["spec"]["storage"], "1Ti", "{beta}");
}

#[test]
fn storage_rules_hold_in_both_versions() {
    support::apply_crds();
    let ns = TestNamespace::new("apiv-rules");
    let refused = |out: std::process::Output, what: &str, needle: &str| {
        let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(!out.status.success(), "{what} was accepted");
        assert!(stderr.contains(needle), "{what}: {stderr}");
    };
    for (name, storage, needle) in [
        ("half", "1.5Gi", "whole gib"),
        ("mebi", "512Mi", "from 1gi to 64ti"),
        ("huge", "65Ti", "from 1gi to 64ti"),
        ("word", "lots", "quantity"),
    ] {
        refused(
            ssa(
                &beta_claim(
                    ns.name(),
                    name,
                    &format!("{{engine: postgres, storage: {storage}}}"),
                ),
                GITOPS,
            ),
            &format!("storage {storage}"),
            needle,
        );
    }
    // The default is the v1alpha1 default.
    ssa_ok(
        &beta_claim(ns.name(), "plain", "{engine: postgres}"),
        GITOPS,
    );
    assert_eq!(
        get_as(V1BETA1, ns.name(), "plain")["spec"]["storage"],
        "20Gi"
    );
    assert_eq!(
        get_as(V1ALPHA1, ns.name(), "plain")["spec"]["storageGB"],
        20
    );
    // Every other rule too: engine is immutable whichever version asks.
    refused(
        patch_as(
            V1BETA1,
            ns.name(),
            "plain",
            r#"{"spec":{"engine":"mysql"}}"#,
        ),
        "engine change",
        "immutable",
    );
}

/// A composition of one ConfigMap carrying the claim's storage as it reads it.
fn composition(name: &str, claim_api_version: Option<&str>, field: &str) -> String {
    let version = claim_api_version
        .map(|v| format!("  claimAPIVersion: {v}\n"))
        .unwrap_or_default();
    format!(
        r#"apiVersion: dbclaim.io/v1alpha1
kind: Composition
metadata: {{name: {name}}}
spec:
{version}  engines: [postgres]
  resources:
  - name: instance
    base:
      apiVersion: v1
      kind: ConfigMap
      data: {{engine: postgres}}
    patches:
    - fromFieldPath: spec.{field}
      toFieldPath: data.storage
      transforms:
      - {{type: convert, convert: {{toType: string}}}}
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

async fn composed_data(
    ns: &str,
    claim: &str,
) -> Option<std::collections::BTreeMap<String, String>> {
    let c = get_claim(ns, claim).await?;
    let name = c.recorded_resource_name("instance")?.to_string();
    let api: Api<ConfigMap> = Api::namespaced(support::kube_client().await, ns);
    api.get_opt(&name).await.ok().flatten()?.data
}

async fn wait_storage(ns: &str, claim: &str, want: &str) {
    wait_for(
        TIMEOUT,
        &format!("{claim}'s ConfigMap storage {want}"),
        || async {
            composed_data(ns, claim)
                .await
                .is_some_and(|d| d.get("storage").map(String::as_str) == Some(want))
        },
    )
    .await;
}

#[tokio::test]
async fn both_versions_compose_alike_grow_alike_and_refuse_shrinking() {
    let _lock = support::exclusive().await;
    support::apply_crds();
    let ns = TestNamespace::new("apiv-compose");
    let ns = ns.name();
    let old_comp = unique_name("apiv-alpha");
    let new_comp = unique_name("apiv-beta");
    kubectl_with_stdin(
        ["apply", "--server-side", "-f", "-"],
        &format!(
            "{}---\n{}",
            composition(&old_comp, None, "storageGB"),
            composition(&new_comp, Some("dbclaim.io/v1beta1"), "storage")
        ),
    );
    let _op = Operator::start();
    for (claim, manifest) in [
        (
            "alpha",
            alpha_claim(
                ns,
                "alpha",
                &format!(
                    "{{engine: postgres, storageGB: 50, compositionRef: {{name: {old_comp}}}}}"
                ),
            ),
        ),
        (
            "beta",
            beta_claim(
                ns,
                "beta",
                &format!(
                    "{{engine: postgres, storage: 50Gi, compositionRef: {{name: {old_comp}}}}}"
                ),
            ),
        ),
        (
            "beta-reader",
            alpha_claim(
                ns,
                "beta-reader",
                &format!(
                    "{{engine: postgres, storageGB: 50, compositionRef: {{name: {new_comp}}}}}"
                ),
            ),
        ),
    ] {
        ssa_ok(&manifest, GITOPS);
        wait_ready(ns, claim).await;
    }
    // The same claim in either version composes the same object.
    let alpha = composed_data(ns, "alpha").await.unwrap_or_default();
    let beta = composed_data(ns, "beta").await.unwrap_or_default();
    assert_eq!(alpha.get("storage").map(String::as_str), Some("50"));
    assert_eq!(alpha, beta);
    // A v1beta1 composition reads the quantity.
    wait_storage(ns, "beta-reader", "50Gi").await;

    // Growth through either version reaches the composed object.
    let grow = patch_as(V1BETA1, ns, "alpha", r#"{"spec":{"storage":"60Gi"}}"#);
    assert!(
        grow.status.success(),
        "{}",
        String::from_utf8_lossy(&grow.stderr)
    );
    wait_storage(ns, "alpha", "60").await;
    let grow = patch_as(V1ALPHA1, ns, "beta", r#"{"spec":{"storageGB":70}}"#);
    assert!(
        grow.status.success(),
        "{}",
        String::from_utf8_lossy(&grow.stderr)
    );
    wait_storage(ns, "beta", "70").await;
    assert_eq!(get_as(V1BETA1, ns, "beta")["spec"]["storage"], "70Gi");
    let grow = patch_as(V1ALPHA1, ns, "beta-reader", r#"{"spec":{"storageGB":80}}"#);
    assert!(
        grow.status.success(),
        "{}",
        String::from_utf8_lossy(&grow.stderr)
    );
    wait_storage(ns, "beta-reader", "80Gi").await;

    // Shrinking is refused by both, with the rule's message.
    for (resource, claim, patch) in [
        (V1BETA1, "alpha", r#"{"spec":{"storage":"40Gi"}}"#),
        (V1ALPHA1, "alpha", r#"{"spec":{"storageGB":40}}"#),
        (V1BETA1, "beta", r#"{"spec":{"storage":"65536Mi"}}"#),
    ] {
        let out = patch_as(resource, ns, claim, patch);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{resource} {patch} was accepted");
        assert!(
            stderr.contains("never shrink"),
            "{resource} {patch}: {stderr}"
        );
    }
    wait_storage(ns, "alpha", "60").await;

    let _ = kubectl(["delete", "dbc", "--all", "-n", ns, "--timeout=60s"]);
    let _ = kubectl(["delete", "composition", &old_comp, &new_comp]);
}

#[tokio::test]
async fn readiness_waits_for_the_webhook_certificate() {
    support::apply_crds();
    let Ok(plane_certs) = std::env::var("DBCLAIM_E2E_WEBHOOK_CERT_DIR") else {
        panic!("DBCLAIM_E2E_WEBHOOK_CERT_DIR is unset: run through e2e/run-tests");
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ns = TestNamespace::new("apiv-ready");
    let cert_dir = dir.path().display().to_string();
    let op = Operator::start_with(&["--namespace", ns.name(), "--webhook-cert-dir", &cert_dir]);
    let port = op.probes_port;
    // Caches sync within a second or two; the webhook has no certificate.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (code, body) = Operator::http_get(port, "/readyz").unwrap_or_default();
    assert_eq!(code, 503, "ready without a webhook certificate: {body}");
    assert!(body.contains("conversion webhook not serving"), "{body}");
    assert!(
        op.log()
            .contains("conversion webhook waits for its certificate"),
        "{}",
        op.log()
    );
    for f in ["tls.crt", "tls.key"] {
        std::fs::copy(format!("{plane_certs}/{f}"), dir.path().join(f))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    wait_for(
        TIMEOUT,
        "ready once the certificate is there",
        || async move { Operator::http_get(port, "/readyz").is_some_and(|(code, _)| code == 200) },
    )
    .await;
}

#[test]
fn a_webhook_that_is_down_fails_requests_with_the_api_servers_reason() {
    support::apply_crds();
    let Some((_, ca)) = support::conversion_target() else {
        panic!("no conversion webhook: run through e2e/run-tests");
    };
    // A copy of the DatabaseClaim CRD in a group of its own, converted by a
    // webhook nobody serves (the plane's one stays up for the other tests).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let ca = std::fs::read(ca).unwrap_or_else(|e| panic!("{e}"));
    let mut crd = dbclaim::api::with_conversion_url(
        dbclaim::api::database_claim_crd(),
        &format!("https://127.0.0.1:{port}/convert"),
        &ca,
    );
    crd.metadata.name = Some("databaseclaims.down.dbclaim.io".into());
    crd.spec.group = "down.dbclaim.io".into();
    crd.spec.names.categories = None;
    crd.spec.names.short_names = None;
    let json = serde_json::to_string(&crd).unwrap_or_else(|e| panic!("{e}"));
    let out = kubectl_with_stdin(["apply", "--server-side", "-f", "-"], &json);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    kubectl_ok([
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/databaseclaims.down.dbclaim.io",
    ]);
    let ns = TestNamespace::new("apiv-down");
    let out = ssa(
        &format!(
            "apiVersion: down.dbclaim.io/v1alpha1\nkind: DatabaseClaim\nmetadata: {{name: c, namespace: {}}}\nspec: {{engine: postgres}}\n",
            ns.name()
        ),
        GITOPS,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "stored without its conversion webhook"
    );
    assert!(
        stderr.contains("conversion webhook") && stderr.contains("connection refused"),
        "the API server's error does not say the webhook is unreachable: {stderr}"
    );
    let _ = kubectl(["delete", "crd", "databaseclaims.down.dbclaim.io"]);
}

/// A control plane of the test's own (e2e/cluster, with its webhook but
/// without dbclaim's CRDs): the upgrade starts from the baseline CRDs,
/// which the shared plane cannot go back to.
struct Plane {
    state: tempfile::TempDir,
    kubeconfig: String,
    conversion_url: String,
    ca: String,
    cert_dir: String,
}

impl Plane {
    fn up() -> Plane {
        let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let out = std::process::Command::new(support::e2e_script("cluster"))
            .args(["up", "--state"])
            .arg(state.path())
            .env("DBCLAIM_E2E_CLUSTER_CRDS", "none")
            .output()
            .unwrap_or_else(|e| panic!("e2e/cluster up: {e}"));
        assert!(
            out.status.success(),
            "e2e/cluster up failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let exports = String::from_utf8_lossy(&out.stdout);
        let var = |name: &str| -> String {
            exports
                .lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("no {name} in {exports}"))
                .trim_matches('\'')
                .to_string()
        };
        Plane {
            kubeconfig: var("KUBECONFIG"),
            conversion_url: var("DBCLAIM_E2E_CONVERSION_URL"),
            ca: var("DBCLAIM_E2E_CONVERSION_CA"),
            cert_dir: var("DBCLAIM_E2E_WEBHOOK_CERT_DIR"),
            state,
        }
    }

    fn kubectl(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let mut child = std::process::Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("kubectl: {e}"));
        let mut pipe = child.stdin.take().unwrap_or_else(|| panic!("stdin"));
        let input = stdin.to_owned();
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        let _ = writer.join();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    async fn client(&self) -> kube::Client {
        let config =
            kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap_or_else(|e| panic!("{e}"));
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        kube::Client::try_from(config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The apiVersion a claim is encoded in, in etcd itself.
    fn stored_version(&self, ns: &str, name: &str) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let ports = std::fs::read_to_string(self.state.path().join("ports.env"))
            .unwrap_or_else(|e| panic!("{e}"));
        let port = ports
            .lines()
            .find_map(|l| l.strip_prefix("ETCD_PORT="))
            .unwrap_or_else(|| panic!("no ETCD_PORT in {ports}"));
        let key = b64.encode(format!("/registry/dbclaim.io/databaseclaims/{ns}/{name}"));
        let out = std::process::Command::new("curl")
            .args(["-sS", "-X", "POST", "-d"])
            .arg(format!(r#"{{"key":"{key}"}}"#))
            .arg(format!("http://127.0.0.1:{port}/v3/kv/range"))
            .output()
            .unwrap_or_else(|e| panic!("curl: {e}"));
        let body: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        let value = body["kvs"][0]["value"].as_str().unwrap_or_default();
        let object: Value = serde_json::from_slice(&b64.decode(value).unwrap_or_default())
            .unwrap_or_else(|e| panic!("etcd value of {ns}/{name}: {e}"));
        object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        let _ = std::process::Command::new(support::e2e_script("cluster"))
            .args(["down", "--state"])
            .arg(self.state.path())
            .output();
    }
}

const CLAIMS: usize = 100;

#[tokio::test]
async fn upgrade_from_the_baseline_migrates_storage_and_touches_nothing() {
    use dbclaim::api::DatabaseClaim;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let plane = Plane::up();
    let ns = "team-upgrade";
    // The last release: its CRDs (v1alpha1 only), a composition, claims.
    let baseline = support::repo_root().join("compat/baseline");
    let baseline = baseline.to_str().unwrap_or_default();
    plane.kubectl(&["apply", "--server-side", "-f", baseline], "");
    plane.kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            baseline,
        ],
        "",
    );
    plane.kubectl(&["create", "namespace", ns], "");
    plane.kubectl(
        &["create", "namespace", support::operator::OPERATOR_NAMESPACE],
        "",
    );
    plane.kubectl(
        &["apply", "--server-side", "-f", "-"],
        &composition("upgrade", None, "storageGB"),
    );
    let claims: String = (0..CLAIMS)
        .map(|i| {
            format!(
                "---\n{}",
                alpha_claim(
                    ns,
                    &format!("c{i}"),
                    "{engine: postgres, storageGB: 30, compositionRef: {name: upgrade}}"
                )
            )
        })
        .collect();
    plane.kubectl(
        &[
            "apply",
            "--server-side",
            &format!("--field-manager={GITOPS}"),
            "-f",
            "-",
        ],
        &claims,
    );
    assert_eq!(plane.stored_version(ns, "c0"), "dbclaim.io/v1alpha1");

    let client = plane.client().await;
    let claims_api: Api<DatabaseClaim> = Api::namespaced(client.clone(), ns);
    let all_ready = || async {
        let list = claims_api
            .list(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        list.len() == CLAIMS
            && list
                .iter()
                .all(|c| crate::claims::condition(c, "Ready").is_some_and(|(s, _, _)| s == "True"))
    };
    let operator_args = ["--webhook-cert-dir", plane.cert_dir.as_str()];
    let env = [("KUBECONFIG", plane.kubeconfig.as_str())];
    let mut op = Operator::start_with_env(&operator_args, &env);
    wait_for(
        Duration::from_secs(180),
        "100 claims Ready on the baseline",
        all_ready,
    )
    .await;
    let snapshot = |list: Vec<DatabaseClaim>| -> Vec<(String, Option<i64>, Value)> {
        list.into_iter()
            .map(|c| {
                let status = serde_json::to_value(&c.status).unwrap_or_default();
                (
                    c.metadata.name.unwrap_or_default(),
                    c.metadata.generation,
                    status,
                )
            })
            .collect()
    };
    let before_claims = snapshot(
        claims_api
            .list(&Default::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .items,
    );
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let versions = |list: Vec<ConfigMap>| -> Vec<(String, String)> {
        list.into_iter()
            // The namespace's own CA bundle, not composed.
            .filter(|m| m.metadata.name.as_deref() != Some("kube-root-ca.crt"))
            .map(|m| {
                (
                    m.metadata.name.unwrap_or_default(),
                    m.metadata.resource_version.unwrap_or_default(),
                )
            })
            .collect()
    };
    let before_maps = versions(
        maps.list(&Default::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .items,
    );
    assert_eq!(before_maps.len(), CLAIMS);
    op.kill();

    // Today's CRDs (pointed at the plane's webhook) and today's operator.
    let out = std::process::Command::new(support::operator::operator_binary())
        .args([
            "crds",
            "--conversion-url",
            &plane.conversion_url,
            "--conversion-ca-file",
            &plane.ca,
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    plane.kubectl(
        &["apply", "--server-side", "--force-conflicts", "-f", "-"],
        &String::from_utf8_lossy(&out.stdout),
    );
    plane.kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/databaseclaims.dbclaim.io",
        ],
        "",
    );
    let op = Operator::start_with_env(&operator_args, &env);
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    wait_for(
        Duration::from_secs(180),
        "storedVersions [v1beta1]",
        || async {
            crds.get("databaseclaims.dbclaim.io")
                .await
                .ok()
                .and_then(|c| c.status?.stored_versions)
                .is_some_and(|v| v == ["v1beta1"])
        },
    )
    .await;
    for i in [0, CLAIMS / 2, CLAIMS - 1] {
        assert_eq!(
            plane.stored_version(ns, &format!("c{i}")),
            "dbclaim.io/v1beta1"
        );
    }
    // Give the claim controller time to react to the rewrites.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(all_ready().await, "a claim left Ready:\n{}", op.log());
    let after_claims = snapshot(
        claims_api
            .list(&Default::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .items,
    );
    assert!(
        before_claims == after_claims,
        "a claim's generation or status changed"
    );
    let after_maps = versions(
        maps.list(&Default::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .items,
    );
    assert_eq!(before_maps, after_maps, "composed objects were written");
    // The GitOps manifests still apply as a no-op.
    let rv = get_as_in(&plane, ns, "c7");
    plane.kubectl(
        &[
            "apply",
            "--server-side",
            &format!("--field-manager={GITOPS}"),
            "-f",
            "-",
        ],
        &claims,
    );
    assert_eq!(get_as_in(&plane, ns, "c7"), rv);
}

fn get_as_in(plane: &Plane, ns: &str, name: &str) -> String {
    plane.kubectl(
        &[
            "get",
            V1ALPHA1,
            name,
            "-n",
            ns,
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
        "",
    )
}
