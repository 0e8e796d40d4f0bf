//! The Helm chart against the real API server: lint and render with every
//! documented value, RBAC checked with `kubectl auth can-i`, developers
//! through the built-in `edit` role, the claim flow under the chart's
//! service account with its metrics, and leader election between two
//! operator processes.
//!
//! Helm comes from `e2e/build-helm` (cached in ~/.cache/dbclaim/bin).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::claims::{claim_yaml, databases_like, psql, setup_shared_postgres, wait_ready};
use crate::support::operator::OPERATOR_NAMESPACE;
use crate::support::{
    self, Operator, Postgres, TestNamespace, kubectl, kubectl_apply, kubectl_ok,
    kubectl_with_stdin, unique_name, wait_for,
};

// ---- helm -------------------------------------------------------------------

fn chart_dir() -> PathBuf {
    support::repo_root().join("charts/dbclaim")
}

/// The cached helm binary, installed by e2e/build-helm on first use.
fn helm_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let versions = std::fs::read_to_string(support::e2e_script("versions.env"))
            .unwrap_or_else(|e| panic!("e2e/versions.env: {e}"));
        let version = versions
            .lines()
            .find_map(|l| l.strip_prefix("HELM_VERSION="))
            .unwrap_or_else(|| panic!("no HELM_VERSION in e2e/versions.env"))
            .trim()
            .to_string();
        let cache = std::env::var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache")
            });
        let bin = cache.join(format!("dbclaim/bin/helm-{version}/helm"));
        if !bin.exists() {
            let status = Command::new(support::e2e_script("build-helm"))
                .status()
                .unwrap_or_else(|e| panic!("cannot run e2e/build-helm: {e}"));
            assert!(status.success(), "e2e/build-helm failed");
        }
        bin
    })
}

fn helm<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(helm_bin())
        .args(args)
        .env("KUBECONFIG", support::kubeconfig())
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"))
}

fn helm_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = helm(&args);
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes `values` to a file that lives as long as the returned guard.
fn values_file(values: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("values.yaml");
    std::fs::write(&path, values).unwrap_or_else(|e| panic!("{e}"));
    let path = path.display().to_string();
    (dir, path)
}

/// `helm template` of the chart; Err carries helm's message.
pub fn template(release: &str, namespace: &str, values: &str) -> Result<String, String> {
    let (_dir, file) = values_file(values);
    let chart = chart_dir().display().to_string();
    let out = helm([
        "template",
        release,
        &chart,
        "--namespace",
        namespace,
        "-f",
        &file,
    ]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub(crate) fn documents(yaml: &str) -> Vec<Value> {
    dbclaim::cli::yaml_documents(yaml).unwrap_or_else(|e| panic!("rendered YAML: {e}\n{yaml}"))
}

pub(crate) fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = of_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A release installed with `helm install`, uninstalled on Drop (its
/// cluster-scoped roles would otherwise outlive the test).
pub(crate) struct Release {
    name: String,
    namespace: String,
}

impl Release {
    pub(crate) fn install(name: &str, namespace: &str, values: &str) -> Self {
        support::apply_crds();
        // The chart's finalizer policy binds cluster-wide unless the release
        // watches one namespace; on the shared plane it would put the
        // finalizer on every other test's claims, so it is off there.
        let values = match values.contains("watchNamespace") {
            true => values.to_string(),
            false => format!("finalizerPolicy: {{enabled: false}}\n{values}"),
        };
        let (_dir, file) = values_file(&values);
        let chart = chart_dir().display().to_string();
        // --skip-crds: apply_crds installed them pointed at the plane's
        // conversion webhook (a URL), which the chart's CRD (a Service the
        // operator points at) would clash with.
        helm_ok([
            "install",
            name,
            &chart,
            "--namespace",
            namespace,
            // A test run alone may come before any that made it.
            "--create-namespace",
            "--skip-crds",
            "-f",
            &file,
        ]);
        Self {
            name: name.into(),
            namespace: namespace.into(),
        }
    }

    /// Names of the rendered objects come from the release itself.
    fn manifest(&self) -> Vec<Value> {
        documents(&helm_ok([
            "get",
            "manifest",
            &self.name,
            "--namespace",
            &self.namespace,
        ]))
    }

    pub(crate) fn service_account(&self) -> String {
        one(&self.manifest(), "ServiceAccount")["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub(crate) fn lease_name(&self) -> String {
        let manifest = self.manifest();
        let deployment = one(&manifest, "Deployment");
        strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"])
            .iter()
            .find_map(|a| a.strip_prefix("--leader-election-id=").map(str::to_string))
            .unwrap_or_else(|| panic!("no --leader-election-id in the Deployment"))
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let out = helm([
            "uninstall",
            &self.name,
            "--namespace",
            &self.namespace,
            "--wait=false",
        ]);
        if !out.status.success() {
            eprintln!(
                "warning: helm uninstall {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// `kubectl auth can-i ARGS --as=IDENTITY...`: true for yes.
fn can_i(identity: &[&str], args: &[&str]) -> bool {
    let mut all: Vec<&str> = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    all.extend_from_slice(identity);
    let out = kubectl(&all);
    let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        answer == "yes" || answer == "no",
        "kubectl {all:?}: {answer} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    answer == "yes"
}

/// A kubeconfig that authenticates as `namespace/service_account` with a
/// fresh token, for the operator to run under.
pub(crate) fn service_account_kubeconfig(
    dir: &Path,
    namespace: &str,
    service_account: &str,
) -> PathBuf {
    let token = kubectl_ok([
        "create",
        "token",
        service_account,
        "-n",
        namespace,
        "--duration=2h",
    ]);
    let view = |path: &str| {
        kubectl_ok([
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            &format!("jsonpath={{.clusters[0].cluster.{path}}}"),
        ])
    };
    let server = view("server");
    let ca_data = view("certificate-authority-data");
    let ca = if ca_data.is_empty() {
        format!("certificate-authority: {}", view("certificate-authority"))
    } else {
        format!("certificate-authority-data: {ca_data}")
    };
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: {server}\n    {ca}\nusers:\n- name: {service_account}\n  user:\n    token: {}\ncontexts:\n- name: e2e\n  context: {{cluster: e2e, user: {service_account}}}\ncurrent-context: e2e\n",
        token.trim()
    );
    let path = dir.join(format!("{service_account}.kubeconfig"));
    std::fs::write(&path, config).unwrap_or_else(|e| panic!("{e}"));
    path
}

/// The value of the metric line starting with `series` (name and labels).
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

// ---- lint and template ------------------------------------------------------

/// Every value of values.yaml, set to something other than its default.
fn everything(namespace: &str, other: &str) -> String {
    format!(
        r#"
image:
  repository: registry.example.com/platform/dbclaim
  tag: 0.1.0-rc.1
  digest: sha256:{digest}
  pullPolicy: Always
imagePullSecrets: [{{name: regcred}}]
nameOverride: dbc
replicaCount: 3
leaderElection: {{enabled: true, leaseDuration: 20s, renewDeadline: 15s, retryPeriod: 3s}}
admissionPolicy: {{enabled: true, failurePolicy: Ignore}}
finalizerPolicy: {{enabled: false}}
watchNamespace: team-a
clusterId: prod-eu-1
concurrency: 4
logFormat: text
logLevel: debug
serviceAccount:
  create: true
  name: dbclaim-operator
  annotations: {{eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/dbclaim"}}
rbac:
  create: true
  composedKinds:
  - {{apiGroup: postgres.dbclaim.io, resources: [databases]}}
  - {{apiGroup: aws.dbclaim.io, resources: [rdsinstances]}}
  - {{apiGroup: rds.services.k8s.aws, resources: [dbinstances, dbsubnetgroups]}}
  - {{apiGroup: "", resources: [configmaps]}}
  connectionSecretNamespaces: [{other}, {namespace}]
  aggregateToDefaultRoles: true
podAnnotations: {{example.com/team: platform}}
podLabels: {{team: platform}}
podSecurityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile: {{type: RuntimeDefault}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  privileged: false
  runAsNonRoot: true
  capabilities: {{drop: [ALL]}}
resources:
  requests: {{cpu: 100m, memory: 128Mi}}
  limits: {{cpu: "2", memory: 512Mi}}
nodeSelector: {{kubernetes.io/os: linux}}
tolerations: [{{key: dedicated, operator: Equal, value: platform, effect: NoSchedule}}]
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector: {{matchLabels: {{app.kubernetes.io/name: dbc}}}}
topologySpreadConstraints:
- {{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway, labelSelector: {{matchLabels: {{app.kubernetes.io/name: dbc}}}}}}
priorityClassName: system-cluster-critical
extraArgs: ["--operator-namespace={namespace}"]
extraEnv: [{{name: AWS_REGION, value: eu-west-1}}]
metrics:
  port: 9090
  service: {{enabled: true, port: 9090, annotations: {{prometheus.io/scrape: "true"}}}}
  serviceMonitor: {{enabled: true, interval: 15s, scrapeTimeout: 5s, labels: {{release: prometheus}}}}
  prometheusRule: {{enabled: true, labels: {{release: prometheus}}, notReadyFor: 1h, timeToReadyObjectiveSeconds: 900, failureRatioObjective: 0.05}}
  grafanaDashboard: {{enabled: true, namespace: {namespace}, labels: {{release: prometheus}}, annotations: {{grafana_folder: Databases}}}}
probes: {{port: 9091}}
webhook: {{port: 9444, certManager: {{enabled: true, duration: 720h}}}}
compositions: {{sharedPostgres: true, awsRdsPostgres: true, awsRdsMysql: true, gcpCloudsqlPostgres: true, gcpCloudsqlMysql: true, cnpgPostgres: true}}
providerConfigs:
  postgres:
    enabled: true
    name: shared-e2e
    host: postgres.databases.svc
    port: 5433
    sslMode: verify-full
    caSecretRef: {{name: pg-ca, namespace: {other}}}
    credentialsSecretRef: {{name: pg-admin, namespace: {other}}}
  aws:
    enabled: true
    name: aws-e2e
    region: eu-west-1
    credentials:
      source: Secret
      secretRef: {{name: aws-credentials, namespace: {other}, key: profile}}
    endpoint: http://moto.test:5000
"#,
        digest = "ab".repeat(32),
    )
}

/// The switches turned off: no RBAC, an existing service account, no
/// leader election, no Service.
const MINIMAL: &str = r#"
fullnameOverride: dbclaim-minimal
leaderElection: {enabled: false, leaseDuration: 15s, renewDeadline: 10s, retryPeriod: 2s}
serviceAccount: {create: false, name: existing}
rbac: {create: false, composedKinds: [], aggregateToDefaultRoles: false}
metrics: {service: {enabled: false}}
"#;

/// Leaf paths of a YAML mapping: `a.b.c`; lists and empty maps are leaves.
fn leaf_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_paths(v, &p, out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

fn has_path(v: &Value, path: &str) -> bool {
    path.split('.').try_fold(v, |v, k| v.get(k)).is_some()
}

/// Stand-ins for prometheus-operator's and cert-manager's CRDs, so
/// ServiceMonitor, PrometheusRule, Issuer and Certificate are accepted by
/// the API server (kind and group checked; their schemas belong to those
/// projects).
fn apply_monitoring_crds() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let mut yaml = String::new();
        for (kind, plural, group) in [
            ("ServiceMonitor", "servicemonitors", "monitoring.coreos.com"),
            ("PrometheusRule", "prometheusrules", "monitoring.coreos.com"),
            ("Issuer", "issuers", "cert-manager.io"),
            ("Certificate", "certificates", "cert-manager.io"),
        ] {
            yaml.push_str(&format!(
                r#"---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: {plural}.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{kind: {kind}, plural: {plural}, listKind: {kind}List, singular: {singular}}}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}
"#,
                singular = kind.to_lowercase()
            ));
        }
        kubectl_apply(&yaml);
        kubectl_ok([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
            "crd/issuers.cert-manager.io",
            "crd/certificates.cert-manager.io",
        ]);
    });
}

/// Server-side dry run of a rendered chart: the API server validates every
/// object (CRD schemas and CEL included) without keeping any.
fn dry_run_apply(rendered: &str) {
    let out = kubectl_with_stdin(
        [
            "apply",
            "--server-side",
            "--dry-run=server",
            "--force-conflicts",
            "--field-manager=helm-e2e",
            "-f",
            "-",
        ],
        rendered,
    );
    assert!(
        out.status.success(),
        "the API server refused the rendered chart:\n{}\n---- rendered ----\n{rendered}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn no_wildcards(docs: &[Value]) {
    for role in docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
    {
        let name = &role["metadata"]["name"];
        for rule in role["rules"].as_array().cloned().unwrap_or_default() {
            for field in ["verbs", "resources", "apiGroups", "resourceNames"] {
                assert!(
                    !strings(&rule[field]).iter().any(|s| s.contains('*')),
                    "{name}: wildcard in {field}: {rule}"
                );
            }
            for url in strings(&rule["nonResourceURLs"]) {
                assert!(url != "*" && url != "/*", "{name}: wildcard URL {url}");
            }
        }
    }
}

#[tokio::test]
async fn chart_lints_and_renders_with_defaults_and_every_value() {
    support::apply_crds();
    apply_monitoring_crds();
    let ns = TestNamespace::new("chart-render");
    let other = TestNamespace::new("chart-other");
    let (ns, other) = (ns.name(), other.name());
    let chart = chart_dir().display().to_string();
    let all = everything(ns, other);

    // Every documented value is exercised by one of the value sets.
    let defaults: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap())
            .unwrap_or_else(|e| panic!("values.yaml: {e}"));
    let sets: Vec<Value> = [all.as_str(), MINIMAL]
        .iter()
        .map(|s| serde_yaml::from_str(s).unwrap_or_else(|e| panic!("{e}\n{s}")))
        .collect();
    let mut leaves = BTreeSet::new();
    leaf_paths(&defaults, "", &mut leaves);
    let untested: Vec<_> = leaves
        .iter()
        .filter(|p| !sets.iter().any(|s| has_path(s, p)))
        .collect();
    assert!(
        untested.is_empty(),
        "values not set by any test value set: {untested:?}"
    );

    for (what, values) in [
        ("defaults", ""),
        ("every value", &all),
        ("minimal", MINIMAL),
    ] {
        let (_dir, file) = values_file(values);
        helm_ok(["lint", "--strict", &chart, "--namespace", ns, "-f", &file]);
        let rendered = template("e2e-render", ns, values)
            .unwrap_or_else(|e| panic!("helm template ({what}): {e}"));
        no_wildcards(&documents(&rendered));
        dry_run_apply(&rendered);
    }

    // Defaults: the hardened Deployment.
    let docs = documents(&template("e2e-render", ns, "").unwrap());
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let sc = &container["securityContext"];
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    for k in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(
                container["resources"][k][r].is_string(),
                "resources.{k}.{r}: {container}"
            );
        }
    }
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let args = strings(&container["args"]);
    assert_eq!(args[0], "run");
    assert!(args.contains(&"--leader-elect".to_string()), "{args:?}");
    let app_version = std::fs::read_to_string(chart_dir().join("Chart.yaml"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("appVersion: "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    assert_eq!(
        container["image"],
        format!("ghcr.io/dbclaim/dbclaim:{app_version}")
    );
    // The metrics Service and the webhook's.
    assert_eq!(of_kind(&docs, "Service").len(), 2);
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());
    // The conversion webhook: served on 9443 with the chart's generated
    // certificate, behind a Service the operator points the CRD at.
    let webhook = of_kind(&docs, "Service")
        .into_iter()
        .find(|s| s["metadata"]["name"] == "e2e-render-dbclaim-webhook")
        .unwrap_or_else(|| panic!("no webhook Service"));
    assert_eq!(webhook["spec"]["ports"][0]["port"], 443);
    assert_eq!(webhook["spec"]["ports"][0]["targetPort"], "webhook");
    let ports = container["ports"].as_array().cloned().unwrap_or_default();
    assert!(
        ports
            .iter()
            .any(|p| p["name"] == "webhook" && p["containerPort"] == 9443),
        "{ports:?}"
    );
    for want in [
        "--webhook-bind-address=0.0.0.0:9443",
        "--webhook-cert-dir=/etc/dbclaim/webhook",
        &format!("--webhook-service={ns}/e2e-render-dbclaim-webhook"),
    ] {
        assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
    }
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        "/etc/dbclaim/webhook"
    );
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "e2e-render-dbclaim-webhook-tls"
    );
    let tls = of_kind(&docs, "Secret")
        .into_iter()
        .find(|s| s["metadata"]["name"] == "e2e-render-dbclaim-webhook-tls")
        .unwrap_or_else(|| panic!("no webhook Secret"));
    assert_eq!(tls["type"], "kubernetes.io/tls");
    for key in ["ca.crt", "tls.crt", "tls.key"] {
        assert!(
            tls["data"][key].as_str().is_some_and(|v| !v.is_empty()),
            "{key}"
        );
    }
    assert!(of_kind(&docs, "Certificate").is_empty());
    assert!(of_kind(&docs, "Composition").is_empty());

    // Every value: each shows up where it should.
    let docs = documents(&template("e2e-render", ns, &all).unwrap());
    let deployment = one(&docs, "Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(deployment["spec"]["replicas"], 3);
    assert_eq!(
        pod["containers"][0]["image"],
        format!(
            "registry.example.com/platform/dbclaim@sha256:{}",
            "ab".repeat(32)
        )
    );
    let args = strings(&pod["containers"][0]["args"]);
    for want in [
        "--namespace=team-a",
        "--cluster-id=prod-eu-1",
        "--concurrency=4",
        "--log-format=text",
        "--leader-election-lease-duration=20s",
        "--leader-election-renew-deadline=15s",
        "--leader-election-retry-period=3s",
        "--metrics-bind-address=0.0.0.0:9090",
        "--health-probe-bind-address=0.0.0.0:9091",
    ] {
        assert!(args.iter().any(|a| a == want), "{want} not in {args:?}");
    }
    assert_eq!(pod["serviceAccountName"], "dbclaim-operator");
    let sa = one(&docs, "ServiceAccount");
    assert_eq!(
        sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/dbclaim"
    );
    assert_eq!(of_kind(&docs, "ServiceMonitor").len(), 1);
    assert_eq!(of_kind(&docs, "PrometheusRule").len(), 1);
    // cert-manager issues the webhook's certificate: no generated Secret.
    let certificates = of_kind(&docs, "Certificate");
    assert_eq!(certificates.len(), 2, "a CA and the serving certificate");
    let serving = certificates
        .iter()
        .find(|c| c["spec"]["secretName"] == "e2e-render-dbc-webhook-tls")
        .unwrap_or_else(|| panic!("no serving Certificate: {certificates:?}"));
    assert_eq!(serving["spec"]["duration"], "720h");
    assert_eq!(
        strings(&serving["spec"]["dnsNames"])[0],
        format!("e2e-render-dbc-webhook.{ns}.svc")
    );
    assert!(
        !of_kind(&docs, "Secret")
            .iter()
            .any(|s| s["metadata"]["name"] == "e2e-render-dbc-webhook-tls")
    );
    assert!(
        strings(&pod["containers"][0]["args"])
            .contains(&"--webhook-bind-address=0.0.0.0:9444".to_string())
    );
    assert_eq!(of_kind(&docs, "Composition").len(), 6);
    for composition in of_kind(&docs, "Composition") {
        let name = composition["metadata"]["name"].as_str().unwrap_or_default();
        let shipped =
            std::fs::read_to_string(support::repo_root().join(format!("compositions/{name}.yaml")))
                .unwrap_or_else(|e| panic!("compositions/{name}.yaml: {e}"));
        let shipped = &documents(&shipped)[0];
        assert_eq!(composition["spec"], shipped["spec"], "{name}");
        assert_eq!(
            composition["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep"
        );
    }
    assert_eq!(of_kind(&docs, "ProviderConfig").len(), 2);
    let manager = of_kind(&docs, "ClusterRole")
        .into_iter()
        .find(|r| {
            r["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-manager"))
        })
        .unwrap_or_else(|| panic!("no manager ClusterRole"));
    let composed = manager["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| strings(&r["resources"]) == ["dbinstances", "dbsubnetgroups"]);
    assert!(composed, "composed kinds missing: {manager}");
    let secret_roles: Vec<_> = of_kind(&docs, "Role")
        .into_iter()
        .map(|r| r["metadata"]["namespace"].as_str().unwrap_or_default())
        .collect();
    assert!(secret_roles.contains(&other), "{secret_roles:?}");

    // Switches off.
    let docs = documents(&template("e2e-render", ns, MINIMAL).unwrap());
    for kind in ["ServiceAccount", "ClusterRole", "Role"] {
        assert!(of_kind(&docs, kind).is_empty(), "{kind} rendered");
    }
    // Only the webhook's Service: the API server needs it.
    let services = of_kind(&docs, "Service");
    assert_eq!(services.len(), 1);
    assert_eq!(services[0]["metadata"]["name"], "dbclaim-minimal-webhook");
    let deployment = one(&docs, "Deployment");
    assert_eq!(deployment["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(
        deployment["spec"]["template"]["spec"]["serviceAccountName"],
        "existing"
    );
    let args = strings(&deployment["spec"]["template"]["spec"]["containers"][0]["args"]);
    assert!(!args.iter().any(|a| a.starts_with("--leader")), "{args:?}");

    // values.schema.json and the templates refuse bad values at install.
    for (values, needle) in [
        ("imagee: {tag: x}", "imagee"),
        ("replicaCount: -1", "replicaCount"),
        ("image: {pullPolicy: Sometimes}", "pullPolicy"),
        ("logFormat: xml", "logFormat"),
        ("leaderElection: {leaseDuration: 15}", "leaseDuration"),
        (
            "rbac: {composedKinds: [{apiGroup: '*', resources: ['*']}]}",
            "composedKinds",
        ),
        (
            "replicaCount: 2\nleaderElection: {enabled: false}",
            "leaderElection",
        ),
        (
            "providerConfigs: {postgres: {enabled: true}}",
            "providerConfigs.postgres.host",
        ),
        (
            "metrics: {service: {enabled: false}, serviceMonitor: {enabled: true}}",
            "metrics.service.enabled",
        ),
    ] {
        let err = template("e2e-render", ns, values)
            .err()
            .unwrap_or_else(|| panic!("helm accepted {values:?}"));
        assert!(err.contains(needle), "{values:?}: {err}");
    }
}

// ---- GitOps health -----------------------------------------------------------

/// A JSON value as a Lua table constructor, as Argo CD hands objects to
/// health scripts.
fn lua_literal(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
        Value::Array(a) => format!(
            "{{{}}}",
            a.iter().map(lua_literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!(
                    "[{}] = {}",
                    lua_literal(&Value::String(k.clone())),
                    lua_literal(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Runs the Argo CD health check of the chart's README on `claim`:
/// (status, message).
fn argocd_health(claim: &Value) -> (String, String) {
    let readme = std::fs::read_to_string(chart_dir().join("README.md"))
        .unwrap_or_else(|e| panic!("charts/dbclaim/README.md: {e}"));
    let script = readme
        .split("```lua\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap_or_else(|| panic!("no ```lua block in charts/dbclaim/README.md"));
    let program = format!(
        "obj = {}\nlocal function health()\n{script}\nend\nlocal hs = health()\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
        lua_literal(claim)
    );
    let out = Command::new("lua5.1")
        .args(["-e", &program])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run lua5.1 (Argo CD's Lua; .ci/install-deps installs it): {e}")
        });
    assert!(
        out.status.success(),
        "the health check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, message) = text.split_once('\n').unwrap_or((&text, ""));
    (status.to_string(), message.to_string())
}

fn claim_with(generation: i64, observed: Option<i64>, conditions: Value) -> Value {
    let mut claim = serde_json::json!({
        "apiVersion": "dbclaim.io/v1alpha1",
        "kind": "DatabaseClaim",
        "metadata": {"name": "orders", "namespace": "team-a", "generation": generation},
        "spec": {"engine": "postgres"},
    });
    if let Some(observed) = observed {
        claim["status"] =
            serde_json::json!({"observedGeneration": observed, "conditions": conditions});
    }
    claim
}

fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    serde_json::json!({"type": type_, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1})
}

#[test]
fn argocd_health_check_reads_claim_status() {
    let synced = cond("Synced", "True", "ReconcileSuccess", "");
    let cases = [
        (
            "new claim",
            claim_with(1, None, Value::Null),
            "Progressing",
            "",
        ),
        (
            "provisioning",
            claim_with(
                1,
                Some(1),
                serde_json::json!([
                    synced,
                    cond("Ready", "False", "Creating", "waiting for: Database orders")
                ]),
            ),
            "Progressing",
            "waiting for: Database orders",
        ),
        (
            "ready",
            claim_with(
                1,
                Some(1),
                serde_json::json!([synced, cond("Ready", "True", "Available", "")]),
            ),
            "Healthy",
            "",
        ),
        (
            "spec changed, not yet observed",
            claim_with(
                2,
                Some(1),
                serde_json::json!([synced, cond("Ready", "True", "Available", "")]),
            ),
            "Progressing",
            "not observed",
        ),
        (
            "policy violation",
            claim_with(
                1,
                Some(1),
                serde_json::json!([
                    cond(
                        "Synced",
                        "False",
                        "PolicyViolation",
                        "ClaimPolicy team-a allows at most 100 GB"
                    ),
                    cond("Ready", "False", "Creating", "not provisioned"),
                ]),
            ),
            "Degraded",
            "ClaimPolicy team-a allows at most 100 GB",
        ),
        (
            "invalid composition",
            claim_with(
                1,
                Some(1),
                serde_json::json!([
                    cond(
                        "Synced",
                        "False",
                        "CompositionInvalid",
                        "resource \"database\", patch 1"
                    ),
                    cond("Ready", "False", "Creating", ""),
                ]),
            ),
            "Degraded",
            "CompositionInvalid",
        ),
        (
            "was ready, now unavailable",
            claim_with(
                1,
                Some(1),
                serde_json::json!([
                    synced,
                    cond(
                        "Ready",
                        "False",
                        "Unavailable",
                        "waiting for: RDSInstance x"
                    )
                ]),
            ),
            "Degraded",
            "RDSInstance x",
        ),
        (
            "provider error, retried",
            claim_with(
                1,
                Some(1),
                serde_json::json!([
                    cond(
                        "Synced",
                        "False",
                        "ProviderError",
                        "Database x: connection refused"
                    ),
                    cond("Ready", "False", "Creating", ""),
                ]),
            ),
            "Progressing",
            "connection refused",
        ),
    ];
    for (what, claim, status, message) in cases {
        let (got, got_message) = argocd_health(&claim);
        assert_eq!(got, status, "{what}: {got_message}");
        assert!(
            got_message.contains(message),
            "{what}: {got_message:?} lacks {message:?}"
        );
    }
}

// ---- RBAC --------------------------------------------------------------------

#[tokio::test]
async fn chart_rbac_grants_what_the_operator_uses_and_nothing_more() {
    let ns = TestNamespace::new("chart-rbac");
    let elsewhere = TestNamespace::new("chart-elsewhere");
    let (ns, elsewhere) = (ns.name(), elsewhere.name());
    let release = Release::install(&unique_name("rbac"), ns, "");
    let sa = release.service_account();
    let lease = release.lease_name();
    let who = format!("--as=system:serviceaccount:{ns}:{sa}");
    let who = [who.as_str()];
    let yes = |args: &[&str]| {
        assert!(can_i(&who, args), "the operator needs: can-i {args:?}");
    };
    let no = |args: &[&str]| {
        assert!(!can_i(&who, args), "the operator must not: can-i {args:?}");
    };

    // Claims: read, finalizer, status; never written otherwise.
    for verb in ["get", "list", "watch", "patch"] {
        yes(&[verb, "databaseclaims.dbclaim.io", "-A"]);
    }
    yes(&[
        "patch",
        "databaseclaims.dbclaim.io",
        "--subresource=status",
        "-A",
    ]);
    yes(&[
        "update",
        "databaseclaims.dbclaim.io",
        "--subresource=finalizers",
        "-A",
    ]);
    for verb in ["create", "update", "delete", "deletecollection"] {
        no(&[verb, "databaseclaims.dbclaim.io", "-A"]);
    }
    for kind in ["compositions.dbclaim.io", "claimpolicies.dbclaim.io"] {
        yes(&["list", kind]);
        yes(&["watch", kind]);
        for verb in ["create", "update", "patch", "delete"] {
            no(&[verb, kind]);
        }
    }
    for verb in ["list", "watch", "create", "patch", "delete"] {
        yes(&[verb, "compositionrevisions.dbclaim.io"]);
    }
    for verb in ["update", "deletecollection"] {
        no(&[verb, "compositionrevisions.dbclaim.io"]);
    }
    for verb in ["get", "list", "watch"] {
        yes(&[verb, "namespaces"]);
    }
    no(&["delete", "namespaces"]);
    no(&["create", "namespaces"]);

    // Secrets: what connection Secrets need (deleted when their claim's
    // cleanup finishes), never updated or deleted in bulk.
    for verb in ["get", "list", "watch", "create", "patch", "delete"] {
        yes(&[verb, "secrets", "-n", elsewhere]);
    }
    yes(&["delete", "secrets", "-n", ns]);
    no(&["update", "secrets", "-n", elsewhere]);
    no(&["deletecollection", "secrets", "-n", ns]);
    no(&["deletecollection", "secrets", "-n", elsewhere]);

    // Events.
    yes(&["create", "events.events.k8s.io", "-n", elsewhere]);
    yes(&["patch", "events.events.k8s.io", "-n", elsewhere]);
    no(&["delete", "events.events.k8s.io", "-n", elsewhere]);

    // Managed resources and composed kinds.
    for kind in [
        "databases.postgres.dbclaim.io",
        "rdsinstances.aws.dbclaim.io",
    ] {
        for verb in ["get", "list", "watch", "create", "patch", "delete"] {
            yes(&[verb, kind]);
        }
        yes(&["patch", kind, "--subresource=status"]);
        yes(&["update", kind, "--subresource=finalizers"]);
        no(&["update", kind]);
        no(&["deletecollection", kind]);
    }
    for kind in [
        "providerconfigs.postgres.dbclaim.io",
        "providerconfigs.aws.dbclaim.io",
    ] {
        for verb in ["get", "list", "watch"] {
            yes(&[verb, kind]);
        }
        yes(&["patch", kind, "--subresource=status"]);
        for verb in ["create", "patch", "delete"] {
            no(&[verb, kind]);
        }
    }
    // A kind no composition was granted.
    no(&["create", "configmaps", "-n", elsewhere]);

    // Discovery of composed kinds.
    yes(&["get", "/apis/postgres.dbclaim.io/v1alpha1"]);
    yes(&["get", "/api/v1"]);

    // The leader Lease: its own, at home.
    yes(&["create", "leases.coordination.k8s.io", "-n", ns]);
    yes(&[
        "get",
        &format!("leases.coordination.k8s.io/{lease}"),
        "-n",
        ns,
    ]);
    yes(&[
        "update",
        &format!("leases.coordination.k8s.io/{lease}"),
        "-n",
        ns,
    ]);
    no(&["get", "leases.coordination.k8s.io/someone-elses", "-n", ns]);
    no(&[
        "update",
        "leases.coordination.k8s.io/someone-elses",
        "-n",
        ns,
    ]);
    no(&[
        "delete",
        &format!("leases.coordination.k8s.io/{lease}"),
        "-n",
        ns,
    ]);
    no(&["create", "leases.coordination.k8s.io", "-n", elsewhere]);

    // Nothing else.
    for verb in ["get", "list", "create", "delete"] {
        no(&[verb, "pods", "-A"]);
    }
    no(&["create", "pods/exec", "-n", ns]);
    no(&["create", "serviceaccounts/token", "-n", ns]);
    no(&["create", "deployments.apps", "-n", ns]);
    no(&["escalate", "clusterroles.rbac.authorization.k8s.io"]);
    no(&["bind", "clusterroles.rbac.authorization.k8s.io"]);
    no(&["*", "*", "-A"]);
    no(&["*", "secrets", "-A"]);
    no(&["get", "*", "-A"]);
}

/// A developer bound to nothing but the built-in `edit` role in one
/// namespace: dbclaim-edit aggregates into it.
#[tokio::test]
async fn developers_with_edit_may_claim_in_their_namespace_only() {
    let ns = TestNamespace::new("chart-dev");
    let elsewhere = TestNamespace::new("chart-dev-other");
    let (ns, elsewhere) = (ns.name(), elsewhere.name());
    let _release = Release::install(&unique_name("dev"), ns, "");
    let alice = unique_name("alice");
    let bob = unique_name("bob");
    kubectl_ok([
        "create",
        "rolebinding",
        "alice-edit",
        "--clusterrole=edit",
        &format!("--user={alice}"),
        "-n",
        ns,
    ]);
    kubectl_ok([
        "create",
        "rolebinding",
        "bob-view",
        "--clusterrole=view",
        &format!("--user={bob}"),
        "-n",
        ns,
    ]);
    let alice_as = format!("--as={alice}");
    let alice_id = [alice_as.as_str(), "--as-group=system:authenticated"];
    let bob_as = format!("--as={bob}");
    let bob_id = [bob_as.as_str(), "--as-group=system:authenticated"];

    // The aggregation controller folds dbclaim-edit into edit.
    wait_for(
        Duration::from_secs(60),
        "dbclaim-edit to aggregate into edit",
        || async {
            can_i(
                &alice_id,
                &["create", "databaseclaims.dbclaim.io", "-n", ns],
            )
        },
    )
    .await;
    for verb in [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ] {
        assert!(
            can_i(&alice_id, &[verb, "databaseclaims.dbclaim.io", "-n", ns]),
            "edit lacks {verb}"
        );
    }
    assert!(can_i(&alice_id, &["get", "secrets", "-n", ns]));
    assert!(!can_i(
        &alice_id,
        &["create", "databaseclaims.dbclaim.io", "-n", elsewhere]
    ));
    for kind in [
        "databases.postgres.dbclaim.io",
        "rdsinstances.aws.dbclaim.io",
        "compositions.dbclaim.io",
        "providerconfigs.postgres.dbclaim.io",
        "claimpolicies.dbclaim.io",
    ] {
        assert!(!can_i(&alice_id, &["list", kind]), "alice may list {kind}");
        assert!(!can_i(&alice_id, &["get", kind]), "alice may get {kind}");
    }
    wait_for(
        Duration::from_secs(60),
        "dbclaim-view to aggregate into view",
        || async { can_i(&bob_id, &["list", "databaseclaims.dbclaim.io", "-n", ns]) },
    )
    .await;
    assert!(!can_i(
        &bob_id,
        &["create", "databaseclaims.dbclaim.io", "-n", ns]
    ));

    // For real: alice applies a claim and reads it back; the cluster-scoped
    // list stays closed to her.
    let mut args = vec!["apply", "-f", "-"];
    args.extend_from_slice(&alice_id);
    let out = kubectl_with_stdin(&args, &claim_yaml(ns, "app", ""));
    assert!(
        out.status.success(),
        "alice cannot apply a claim: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut args = vec!["get", "dbc", "app", "-n", ns, "-o", "name"];
    args.extend_from_slice(&alice_id);
    assert_eq!(kubectl_ok(&args).trim(), "databaseclaim.dbclaim.io/app");
    let mut args = vec!["get", "databases.postgres.dbclaim.io"];
    args.extend_from_slice(&alice_id);
    let out = kubectl(&args);
    assert!(
        !out.status.success(),
        "alice listed cluster-scoped Databases"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    kubectl_ok(["delete", "dbc", "app", "-n", ns, "--wait=false"]);
}

// ---- the operator under the chart's identity ---------------------------------

/// Ready DatabaseClaims in the cluster, as kubectl sees them.
fn ready_claims() -> usize {
    let out = kubectl_ok(["get", "dbc", "-A", "-o", "json"]);
    let list: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}"));
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|c| {
                    c["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|x| x["type"] == "Ready" && x["status"] == "True")
                    })
                })
                .count()
        })
        .unwrap_or(0)
}

fn assert_no_forbidden(op: &Operator) {
    let log = op.log();
    let denied: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("forbidden") || l.contains("Forbidden"))
        .collect();
    assert!(
        denied.is_empty(),
        "the chart's RBAC refused the operator:\n{}",
        denied.join("\n")
    );
}

/// The shared-PostgreSQL flow with the operator authenticated as the chart's
/// service account; a developer with `edit` claims and reads the Secret;
/// metrics count the work.
#[tokio::test]
async fn claim_flow_under_the_chart_service_account() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let release = Release::install(&unique_name("sa"), OPERATOR_NAMESPACE, "");
    let sa = release.service_account();
    let lease = release.lease_name();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = service_account_kubeconfig(dir.path(), OPERATOR_NAMESPACE, &sa);
    let kubeconfig = kubeconfig.display().to_string();
    let op = Operator::start_with_env(
        &["--leader-elect", "--leader-election-id", &lease],
        &[("KUBECONFIG", &kubeconfig)],
    );

    let ns = TestNamespace::new("chart-flow");
    let ns = ns.name();
    let alice = unique_name("alice");
    kubectl_ok([
        "create",
        "rolebinding",
        "alice-edit",
        "--clusterrole=edit",
        &format!("--user={alice}"),
        "-n",
        ns,
    ]);
    let alice_as = format!("--as={alice}");
    let alice_id = [alice_as.as_str(), "--as-group=system:authenticated"];
    wait_for(
        Duration::from_secs(60),
        "edit to include claims",
        || async {
            can_i(
                &alice_id,
                &["create", "databaseclaims.dbclaim.io", "-n", ns],
            )
        },
    )
    .await;

    let mut args = vec!["apply", "-f", "-"];
    args.extend_from_slice(&alice_id);
    let manifest = format!(
        "{}---\n{}",
        claim_yaml(ns, "orders", "  databaseName: orders\n"),
        claim_yaml(ns, "billing", "")
    );
    let out = kubectl_with_stdin(&args, &manifest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_ready(ns, "orders").await;
    wait_ready(ns, "billing").await;

    // Argo CD's health check of the chart's README reads the real status.
    let live: Value = serde_json::from_str(&kubectl_ok([
        "get", "dbc", "orders", "-n", ns, "-o", "json",
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(argocd_health(&live).0, "Healthy", "{live}");

    // Alice reads her connection Secret and connects.
    let mut args = vec![
        "get",
        "secret",
        "orders-connection",
        "-n",
        ns,
        "-o",
        "jsonpath={.data.uri}",
    ];
    args.extend_from_slice(&alice_id);
    let uri = kubectl_ok(&args);
    use base64::Engine as _;
    let uri = base64::engine::general_purpose::STANDARD
        .decode(uri.trim())
        .unwrap_or_else(|e| panic!("{e}"));
    let uri = String::from_utf8(uri).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(psql(&uri, "SELECT 1").as_deref(), Ok("1"));
    // ...but not the composed Database behind it.
    let mut args = vec!["get", "databases.postgres.dbclaim.io"];
    args.extend_from_slice(&alice_id);
    assert!(!kubectl(&args).status.success());

    // Metrics scraped during the run.
    wait_for(
        Duration::from_secs(30),
        "dbclaim_claims{ready=\"true\"} to match the Ready claims",
        || async {
            let text = op.metrics();
            let reconciles = metric(
                &text,
                "dbclaim_reconcile_total{controller=\"claim\",result=\"success\"}",
            )
            .unwrap_or(0.0);
            let gauge = metric(&text, "dbclaim_claims{ready=\"true\"}");
            reconciles > 0.0 && gauge == Some(ready_claims() as f64)
        },
    )
    .await;
    let text = op.metrics();
    assert!(
        text.contains("dbclaim_reconcile_duration_seconds_bucket{"),
        "{text}"
    );

    // Deleting works under the same identity: database dropped, Secret gone.
    let mut args = vec![
        "delete",
        "dbc",
        "orders",
        "billing",
        "-n",
        ns,
        "--wait=true",
        "--timeout=60s",
    ];
    args.extend_from_slice(&alice_id);
    kubectl_ok(&args);
    let db = format!("{ns}_orders");
    wait_for(
        Duration::from_secs(60),
        "the database to be dropped",
        || async { databases_like(&pg, &db).await.is_empty() },
    )
    .await;
    assert_no_forbidden(&op);
}

/// Managers of the claim's managedFields entries that own its finalizers.
fn finalizer_managers(ns: &str, name: &str) -> Vec<String> {
    let claim: Value = serde_json::from_str(&kubectl_ok([
        "get",
        "dbc",
        name,
        "-n",
        ns,
        "--show-managed-fields",
        "-o",
        "json",
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    claim["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["fieldsV1"]["f:metadata"].get("f:finalizers").is_some())
        .map(|m| m["manager"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The chart's finalizer policy, bound to the watched namespace: a claim
/// there is stored with dbclaim's finalizer and the operator sends no
/// finalizer patch (it still does elsewhere); a GitOps tool's re-apply
/// keeps the finalizer and shows no diff; deletion completes.
#[tokio::test]
async fn the_finalizer_policy_puts_the_finalizer_on_at_create() {
    let _lock = support::exclusive().await;
    let ns = TestNamespace::new("fin-policy");
    let other = TestNamespace::new("fin-other");
    let (ns, other) = (ns.name(), other.name());
    let comp = unique_name("fin-cm");
    kubectl_apply(&crate::claim_safety::configmap_composition(&comp));
    let release = Release::install(
        &unique_name("fin"),
        OPERATOR_NAMESPACE,
        &format!("watchNamespace: {ns}\n"),
    );
    let manifest = release.manifest();
    let binding = one(&manifest, "MutatingAdmissionPolicyBinding");
    assert_eq!(
        binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
        ns,
        "{binding}"
    );
    one(&manifest, "MutatingAdmissionPolicy");
    let claim = |ns: &str| claim_yaml(ns, "app", &format!("  compositionRef: {{name: {comp}}}\n"));
    // `kubectl <verb...>` of the claim in `ns`, printing its finalizers.
    let finalizers = |verb: &[&str], ns: &str| {
        let mut args = verb.to_vec();
        args.extend(["-o", "jsonpath={.metadata.finalizers}", "-f", "-"]);
        kubectl_with_stdin(args, &claim(ns))
    };
    let has_ours = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stdout).contains("dbclaim.io/finalizer")
    };
    // The API server loads a new policy asynchronously.
    wait_for(
        Duration::from_secs(30),
        "the finalizer policy to take effect",
        || async { has_ours(&finalizers(&["create", "--dry-run=server"], ns)) },
    )
    .await;

    // Stored with the finalizer before any operator has seen it; outside
    // the bound namespace, without.
    let stored = |ns: &str| {
        let out = finalizers(&["apply"], ns);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        has_ours(&out)
    };
    assert!(stored(ns));
    assert!(!stored(other));

    let _op = Operator::start();
    wait_ready(ns, "app").await;
    wait_ready(other, "app").await;
    let creator = |m: &String| m.starts_with("kubectl");
    let patched: Vec<String> = finalizer_managers(other, "app")
        .into_iter()
        .filter(|m| !creator(m))
        .collect();
    assert!(
        !patched.is_empty(),
        "the operator patches the finalizer in where no policy is bound"
    );
    let bound = finalizer_managers(ns, "app");
    assert!(
        bound.iter().all(creator),
        "the operator sent a finalizer patch despite the policy: {bound:?}"
    );

    // GitOps: a client-side diff is empty, a server-side apply by another
    // manager keeps the finalizer.
    let diff = kubectl_with_stdin(["diff", "-f", "-"], &claim(ns));
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let flux = finalizers(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=gitops",
        ],
        ns,
    );
    assert!(has_ours(&flux));
    let diff = kubectl_with_stdin(
        ["diff", "--server-side", "--field-manager=gitops", "-f", "-"],
        &claim(ns),
    );
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );

    // The operator's removal of its finalizer at the end of cleanup stands.
    for ns in [ns, other] {
        kubectl_ok([
            "delete",
            "dbc",
            "app",
            "-n",
            ns,
            "--wait=true",
            "--timeout=60s",
        ]);
    }
    kubectl_ok(["delete", "composition", &comp]);
}

// ---- leader election ----------------------------------------------------------

const FAST_LEASE: [&str; 6] = [
    "--leader-election-lease-duration",
    "4s",
    "--leader-election-renew-deadline",
    "3s",
    "--leader-election-retry-period",
    "500ms",
];

fn lease_holder(name: &str) -> String {
    let out = kubectl([
        "get",
        "lease",
        name,
        "-n",
        OPERATOR_NAMESPACE,
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn leader_args(lease: &str) -> Vec<&str> {
    let mut args = vec!["--leader-elect", "--leader-election-id", lease];
    args.extend_from_slice(&FAST_LEASE);
    args
}

fn ready(op: &Operator) -> bool {
    Operator::http_get(op.probes_port, "/readyz").is_some_and(|(code, _)| code == 200)
}

/// Two replicas under the chart's identity: one leads, the standby is
/// Ready but idle; the leader is killed, the standby takes over and a new
/// claim becomes Ready.
#[tokio::test]
async fn standby_takes_over_when_the_leader_dies() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let release = Release::install(&unique_name("ha"), OPERATOR_NAMESPACE, "replicaCount: 2");
    let sa = release.service_account();
    let lease = release.lease_name();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = service_account_kubeconfig(dir.path(), OPERATOR_NAMESPACE, &sa);
    let kubeconfig = kubeconfig.display().to_string();
    let args = leader_args(&lease);
    let mut a = Operator::start_with_env(
        &args,
        &[("KUBECONFIG", &kubeconfig), ("POD_NAME", "replica-a")],
    );
    wait_for(Duration::from_secs(30), "replica-a to lead", || async {
        lease_holder(&lease) == "replica-a"
    })
    .await;
    let mut b = Operator::start_with_env(
        &args,
        &[("KUBECONFIG", &kubeconfig), ("POD_NAME", "replica-b")],
    );
    wait_for(Duration::from_secs(30), "both replicas Ready", || async {
        ready(&a) && ready(&b)
    })
    .await;

    let ns = TestNamespace::new("chart-ha");
    let ns = ns.name();
    kubectl_apply(&claim_yaml(ns, "first", ""));
    wait_ready(ns, "first").await;
    assert_eq!(lease_holder(&lease), "replica-a");
    assert!(
        !b.metrics().contains("dbclaim_reconcile_total{"),
        "the standby reconciled:\n{}",
        b.metrics()
    );

    a.kill();
    let killed = Instant::now();
    wait_for(
        Duration::from_secs(30),
        "replica-b to take over",
        || async { lease_holder(&lease) == "replica-b" },
    )
    .await;
    let took_over = killed.elapsed();
    eprintln!("replica-b took over {took_over:?} after the leader died");
    assert!(
        took_over >= Duration::from_secs(3),
        "took over before the lease expired"
    );
    kubectl_apply(&claim_yaml(ns, "second", ""));
    wait_ready(ns, "second").await;
    assert!(
        metric(
            &b.metrics(),
            "dbclaim_reconcile_total{controller=\"claim\",result=\"success\"}"
        )
        .is_some_and(|n| n > 0.0)
    );

    kubectl_ok([
        "delete",
        "dbc",
        "first",
        "second",
        "-n",
        ns,
        "--wait=true",
        "--timeout=60s",
    ]);

    // A graceful stop hands the lease over at once.
    b.terminate();
    let status = b
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("replica-b ignored SIGTERM"));
    assert!(status.success(), "SIGTERM exit: {status}");
    assert_eq!(lease_holder(&lease), "", "the lease was not released");
    assert_no_forbidden(&b);
}

/// A leader that sees another holder in its Lease exits non-zero at once:
/// it must not reconcile next to the new leader.
#[tokio::test]
async fn a_leader_that_loses_its_lease_exits() {
    let _lock = support::exclusive().await;
    support::apply_crds();
    let lease = unique_name("lease");
    let args = leader_args(&lease);
    let mut op = Operator::start_with_env(&args, &[("POD_NAME", "replica-a")]);
    wait_for(Duration::from_secs(30), "replica-a to lead", || async {
        lease_holder(&lease) == "replica-a"
    })
    .await;
    wait_for(
        Duration::from_secs(30),
        "the leader to be Ready",
        || async { ready(&op) },
    )
    .await;
    // Another replica's write, as after a partition.
    kubectl_ok([
        "patch",
        "lease",
        &lease,
        "-n",
        OPERATOR_NAMESPACE,
        "--type=merge",
        "-p",
        r#"{"spec":{"holderIdentity":"intruder"}}"#,
    ]);
    let status = op
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the leader kept running after losing its lease"));
    assert_eq!(status.code(), Some(1), "{status}");
    assert!(op.log().contains("lost leadership"), "{}", op.log());
    assert_eq!(lease_holder(&lease), "intruder");
    kubectl_ok(["delete", "lease", &lease, "-n", OPERATOR_NAMESPACE]);
}
