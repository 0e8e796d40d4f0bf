//! Prometheus metrics of the contract. Never carries secrets: labels are
//! controller names, results, providers and operations only.

use std::sync::Arc;
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
}

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
        Self {
            registry: Arc::new(registry),
            reconcile_total,
            reconcile_duration,
            claims,
            provider_requests,
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

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_names_are_exposed() {
        let m = Metrics::default();
        m.reconciled("claim", true, Duration::from_millis(3));
        m.set_claims(2, 1);
        m.provider_request("postgres", "create_database", true);
        let text = m.encode();
        for needle in [
            "dbclaim_reconcile_total{controller=\"claim\",result=\"success\"} 1",
            "dbclaim_reconcile_duration_seconds_bucket",
            "dbclaim_claims{ready=\"true\"} 2",
            "dbclaim_provider_requests_total{provider=\"postgres\",operation=\"create_database\",result=\"success\"} 1",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
