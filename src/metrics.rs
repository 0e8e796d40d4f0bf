//! Prometheus metrics of the contract. Never carries secrets: labels are
//! controller names, results, providers and operations only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReadyLabels {
    ready: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RotationLabels {
    provider: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CompositionLabels {
    composition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    composition: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KubeRequestLabels {
    verb: String,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
    operation: String,
    result: String,
}

/// Cheap to clone: every clone feeds the same registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    reconcile_total: Family<ReconcileLabels, Counter>,
    reconcile_duration: Family<ControllerLabels, Histogram>,
    claims: Family<ReadyLabels, Gauge>,
    provider_requests: Family<ProviderLabels, Counter>,
    kube_requests: Family<KubeRequestLabels, Counter>,
    orphaned_objects: Gauge,
    credential_rotations: Family<RotationLabels, Counter>,
    time_to_ready: Family<CompositionLabels, Histogram>,
    claim_failures: Family<FailureLabels, Counter>,
    ready_ratio: Family<CompositionLabels, Gauge<f64, AtomicU64>>,
    resident_memory: Gauge,
}

/// Buckets of `dbclaim_claim_time_to_ready_seconds`: 1 s to 1 h, covering a
/// database on a shared server (seconds) and an RDS instance (minutes).
pub const TIME_TO_READY_BUCKETS: [f64; 12] = [
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0,
];

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dbclaim");
        let reconcile_total = Family::<ReconcileLabels, Counter>::default();
        let reconcile_duration =
            Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
                Histogram::new([
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
            });
        let claims = Family::<ReadyLabels, Gauge>::default();
        let provider_requests = Family::<ProviderLabels, Counter>::default();
        let kube_requests = Family::<KubeRequestLabels, Counter>::default();
        registry.register(
            "reconcile",
            "Reconciles by controller and result",
            reconcile_total.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by controller",
            reconcile_duration.clone(),
        );
        registry.register("claims", "DatabaseClaims by readiness", claims.clone());
        registry.register(
            "provider_requests",
            "Requests to providers by operation and result",
            provider_requests.clone(),
        );
        registry.register(
            "kube_requests",
            "Requests the operator sent to the Kubernetes API, by verb and resource",
            kube_requests.clone(),
        );
        let orphaned_objects = Gauge::default();
        registry.register(
            "orphaned_objects",
            "Composed objects whose claim no longer exists, as the collector last saw them",
            orphaned_objects.clone(),
        );
        let credential_rotations = Family::<RotationLabels, Counter>::default();
        registry.register(
            "credential_rotations",
            "Credential rotations by provider and result",
            credential_rotations.clone(),
        );
        let time_to_ready = Family::<CompositionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(TIME_TO_READY_BUCKETS)
        });
        registry.register(
            "claim_time_to_ready_seconds",
            "Seconds from a claim's creation to its first Ready, by composition",
            time_to_ready.clone(),
        );
        let claim_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "claim_failures",
            "Transitions of claims to Synced=False, by composition and reason",
            claim_failures.clone(),
        );
        let ready_ratio = Family::<CompositionLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "claim_ready_ratio",
            "Share of a composition's claims that are Ready (0..1)",
            ready_ratio.clone(),
        );
        let resident_memory = Gauge::default();
        registry.register(
            "process_resident_memory_bytes",
            "Resident memory of the operator process",
            resident_memory.clone(),
        );
        Self {
            registry: Arc::new(registry),
            credential_rotations,
            time_to_ready,
            claim_failures,
            ready_ratio,
            resident_memory,
            reconcile_total,
            reconcile_duration,
            claims,
            provider_requests,
            kube_requests,
            orphaned_objects,
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, controller: &str, ok: bool, took: Duration) {
        let result = if ok { "success" } else { "error" };
        self.reconcile_total
            .get_or_create(&ReconcileLabels {
                controller: controller.into(),
                result: result.into(),
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&ControllerLabels {
                controller: controller.into(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn set_claims(&self, ready: i64, not_ready: i64) {
        self.claims
            .get_or_create(&ReadyLabels {
                ready: "true".into(),
            })
            .set(ready);
        self.claims
            .get_or_create(&ReadyLabels {
                ready: "false".into(),
            })
            .set(not_ready);
    }

    /// Orphans seen by the collector's last pass.
    pub fn set_orphaned_objects(&self, n: i64) {
        self.orphaned_objects.set(n);
    }

    /// Counts one credentials rotation of `provider` (postgres, aws, or
    /// composition for `Generate` values).
    pub fn credential_rotation(&self, provider: &str, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.credential_rotations
            .get_or_create(&RotationLabels {
                provider: provider.into(),
                result: result.into(),
            })
            .inc();
    }

    /// A claim turned Ready for the first time, `seconds` after its creation.
    pub fn claim_first_ready(&self, composition: &str, seconds: f64) {
        self.time_to_ready
            .get_or_create(&CompositionLabels {
                composition: composition.into(),
            })
            .observe(seconds.max(0.0));
    }

    /// A claim turned Synced=False (or changed its reason while False).
    pub fn claim_failed(&self, composition: &str, reason: &str) {
        self.claim_failures
            .get_or_create(&FailureLabels {
                composition: composition.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// `dbclaim_claim_ready_ratio` from (ready, total) per composition;
    /// compositions no claim uses any more disappear.
    pub fn set_ready_ratios(&self, by_composition: &BTreeMap<String, (u64, u64)>) {
        self.ready_ratio.clear();
        for (composition, (ready, total)) in by_composition {
            if *total == 0 {
                continue;
            }
            self.ready_ratio
                .get_or_create(&CompositionLabels {
                    composition: composition.clone(),
                })
                .set(*ready as f64 / *total as f64);
        }
    }

    pub fn provider_request(&self, provider: &str, operation: &str, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.provider_requests
            .get_or_create(&ProviderLabels {
                provider: provider.into(),
                operation: operation.into(),
                result: result.into(),
            })
            .inc();
    }

    /// Counts one request to the Kubernetes API.
    pub fn kube_request(&self, method: &http::Method, uri: &http::Uri) {
        let (verb, resource) = classify(method, uri);
        self.kube_requests
            .get_or_create(&KubeRequestLabels {
                verb: verb.into(),
                resource,
            })
            .inc();
    }

    /// A client middleware feeding `dbclaim_kube_requests_total`: every
    /// request of the operator's client passes through it.
    pub fn kube_layer(
        &self,
    ) -> tower::util::MapRequestLayer<
        impl FnMut(http::Request<kube::client::Body>) -> http::Request<kube::client::Body>
        + Clone
        + use<>,
    > {
        let metrics = self.clone();
        tower::util::MapRequestLayer::new(move |req: http::Request<kube::client::Body>| {
            metrics.kube_request(req.method(), req.uri());
            req
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        if let Some(bytes) = resident_memory_bytes() {
            self.resident_memory.set(bytes);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// The resident set size of this process, from /proc (Linux only; the
/// gauge stays 0 elsewhere).
fn resident_memory_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The Kubernetes verb and resource (`configmaps`, `databaseclaims/status`,
/// `discovery`) of a request to the API server.
fn classify(method: &http::Method, uri: &http::Uri) -> (&'static str, String) {
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // Skip the group/version prefix: /api/v1/... or /apis/group/version/...
    let rest: &[&str] = match segments.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[],
    };
    // namespaces/NS/RESOURCE[/NAME[/SUB]] or RESOURCE[/NAME[/SUB]]
    let rest = match rest {
        ["namespaces", _ns, r, tail @ ..] => {
            let mut v = vec![*r];
            v.extend_from_slice(tail);
            v
        }
        other => other.to_vec(),
    };
    let (resource, named) = match rest.as_slice() {
        [] => ("discovery".to_string(), true),
        [r] => (r.to_string(), false),
        [r, _name] => (r.to_string(), true),
        [r, _name, sub, ..] => (format!("{r}/{sub}"), true),
    };
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match *method {
        http::Method::GET if watch => "watch",
        http::Method::GET if named => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if named => "delete",
        http::Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_names_are_exposed() {
        let m = Metrics::default();
        m.reconciled("claim", true, Duration::from_millis(3));
        m.set_claims(2, 1);
        m.set_orphaned_objects(3);
        m.provider_request("postgres", "create_database", true);
        m.claim_first_ready("shared-postgres", 3.0);
        m.claim_failed("shared-postgres", "PolicyViolation");
        m.set_ready_ratios(&BTreeMap::from([("shared-postgres".to_string(), (1, 4))]));
        let text = m.encode();
        for needle in [
            "dbclaim_claim_time_to_ready_seconds_bucket{le=\"5.0\",composition=\"shared-postgres\"} 1",
            "dbclaim_claim_time_to_ready_seconds_bucket{le=\"1.0\",composition=\"shared-postgres\"} 0",
            "dbclaim_claim_failures_total{composition=\"shared-postgres\",reason=\"PolicyViolation\"} 1",
            "dbclaim_claim_ready_ratio{composition=\"shared-postgres\"} 0.25",
            "dbclaim_process_resident_memory_bytes ",
            "dbclaim_reconcile_total{controller=\"claim\",result=\"success\"} 1",
            "dbclaim_reconcile_duration_seconds_bucket",
            "dbclaim_claims{ready=\"true\"} 2",
            "dbclaim_orphaned_objects 3",
            "dbclaim_provider_requests_total{provider=\"postgres\",operation=\"create_database\",result=\"success\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn kube_requests_are_classified_by_verb_and_resource() {
        let cases = [
            (
                "GET",
                "/api/v1/namespaces/a/configmaps/x",
                "get",
                "configmaps",
            ),
            (
                "GET",
                "/api/v1/namespaces/a/secrets?labelSelector=l",
                "list",
                "secrets",
            ),
            (
                "GET",
                "/apis/dbclaim.io/v1alpha1/databaseclaims?watch=true&resourceVersion=1",
                "watch",
                "databaseclaims",
            ),
            (
                "PATCH",
                "/apis/dbclaim.io/v1alpha1/namespaces/a/databaseclaims/c/status?fieldManager=dbclaim",
                "patch",
                "databaseclaims/status",
            ),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/a/events",
                "create",
                "events",
            ),
            (
                "DELETE",
                "/apis/postgres.dbclaim.io/v1alpha1/databases/d",
                "delete",
                "databases",
            ),
            ("GET", "/api/v1/namespaces/a", "get", "namespaces"),
            ("GET", "/apis/dbclaim.io/v1alpha1", "get", "discovery"),
        ];
        for (method, uri, verb, resource) in cases {
            let method: http::Method = method.parse().unwrap_or_default();
            let uri: http::Uri = uri.parse().unwrap_or_default();
            assert_eq!(
                classify(&method, &uri),
                (verb, resource.to_string()),
                "{uri}"
            );
        }
        let m = Metrics::default();
        m.kube_request(
            &http::Method::POST,
            &"/api/v1/namespaces/a/secrets".parse().unwrap_or_default(),
        );
        assert!(
            m.encode()
                .contains("dbclaim_kube_requests_total{verb=\"create\",resource=\"secrets\"} 1"),
            "{}",
            m.encode()
        );
    }
}
