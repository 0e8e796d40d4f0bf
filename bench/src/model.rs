//! What a benchmark run records: the JSON written to bench/results/.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Request counts keyed by "verb resource", e.g. "patch databaseclaims/status".
pub type Requests = BTreeMap<String, f64>;

pub const MUTATING_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];

pub fn is_mutating(key: &str) -> bool {
    let verb = key.split(' ').next().unwrap_or_default();
    MUTATING_VERBS.contains(&verb)
}

pub fn is_event(key: &str) -> bool {
    key.ends_with(" events")
}

pub fn mutating(requests: &Requests) -> f64 {
    requests
        .iter()
        .filter(|(k, _)| is_mutating(k))
        .map(|(_, v)| v)
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0
}

pub fn mutating_without_events(requests: &Requests) -> f64 {
    requests
        .iter()
        .filter(|(k, _)| is_mutating(k) && !is_event(k))
        .map(|(_, v)| v)
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Results {
    pub date: String,
    pub commit: String,
    #[serde(default)]
    pub label: String,
    pub machine: Machine,
    pub config: RunConfig,
    #[serde(default)]
    pub inline: Vec<InlineRun>,
    #[serde(default)]
    pub postgres: Vec<PostgresRun>,
    /// Baseline against new, alternating (issue 20).
    #[serde(default)]
    pub compare: Vec<CompareRun>,
    /// Runs that did not complete, with why.
    #[serde(default)]
    pub failures: Vec<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Machine {
    pub cores: usize,
    pub mem_gib: f64,
    pub kernel: String,
    /// Load averages (1, 5, 15 min) when the benchmark started: other work
    /// on the machine shows here.
    pub load_start: Vec<f64>,
    pub load_end: Vec<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct RunConfig {
    pub sizes: Vec<usize>,
    pub postgres_sizes: Vec<usize>,
    pub runs: usize,
    pub idle_secs: u64,
    pub flips: usize,
    pub flip_interval_ms: u64,
    pub create_concurrency: usize,
    pub operator_args: Vec<String>,
    /// How API requests are counted.
    pub request_counting: String,
}

/// Percentiles in seconds.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Pcts {
    pub samples: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Pcts {
    pub fn of(mut xs: Vec<f64>) -> Self {
        xs.sort_by(f64::total_cmp);
        let at = |q: f64| -> f64 {
            if xs.is_empty() {
                return f64::NAN;
            }
            // Nearest rank.
            let rank = ((q * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
            xs[rank - 1]
        };
        Self {
            samples: xs.len(),
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: xs.last().copied().unwrap_or(f64::NAN),
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Burst {
    pub claims: usize,
    /// Until the last create call returned.
    pub create_secs: f64,
    /// From the first create call until every claim was seen Ready.
    pub all_ready_secs: f64,
    /// Per claim: from its create call to Ready=True seen by a watch.
    pub latency: Pcts,
    pub mutating_per_claim: f64,
    pub mutating_per_claim_without_events: f64,
    pub requests: Requests,
    pub peak_rss_mib: f64,
    /// The operator's CPU time during the burst.
    pub cpu_secs: f64,
    /// CPU time of the control plane during the burst: where the time goes.
    #[serde(default)]
    pub plane_cpu: PlaneCpu,
    /// Seconds since the burst started at which each claim turned Ready, sorted.
    pub ready_at: Vec<f64>,
}

/// CPU seconds of the control-plane processes (and the benchmark itself).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default)]
pub struct PlaneCpu {
    pub apiserver: f64,
    pub etcd: f64,
    pub controller_manager: f64,
    pub bench: f64,
}

impl PlaneCpu {
    pub fn since(&self, earlier: &PlaneCpu) -> PlaneCpu {
        PlaneCpu {
            apiserver: self.apiserver - earlier.apiserver,
            etcd: self.etcd - earlier.etcd,
            controller_manager: self.controller_manager - earlier.controller_manager,
            bench: self.bench - earlier.bench,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Propagation {
    /// From the patch that made the composed object ready to Ready=True on the claim.
    pub latency: Pcts,
    pub mutating_per_flip: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Idle {
    pub secs: f64,
    pub claims: usize,
    pub mutating: f64,
    pub requests: Requests,
    pub cpu_secs: f64,
    pub reconciles: f64,
    #[serde(default)]
    pub plane_cpu: PlaneCpu,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Memory {
    /// Caches synced, no claims.
    pub baseline_rss_mib: f64,
    /// High-water mark of the first operator process (burst, propagation, idle).
    pub peak_rss_mib: f64,
    /// At the end of the idle window.
    pub steady_rss_mib: f64,
    /// (steady - baseline) per 1,000 claims.
    pub mib_per_1000: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Restart {
    pub claims: usize,
    /// From the new process's start until it reported as many claim
    /// reconciles as there are claims.
    pub reconciled_secs: f64,
    /// Until its reconcile count stopped moving (the last of the startup wave).
    pub settled_secs: f64,
    pub reconciles: f64,
    pub mutating: f64,
    pub requests: Requests,
    pub peak_rss_mib: f64,
    pub cpu_secs: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Delete {
    pub claims: usize,
    /// From the first delete call until no composed object is left.
    pub composed_gone_secs: f64,
    /// Until no claim is left (finalizers removed).
    pub claims_gone_secs: f64,
    /// Until every connection Secret is gone: kube-controller-manager's
    /// garbage collector, at about 13 Secrets a second here. None when they
    /// were not all gone within [`SECRETS_GRACE`](crate::scenarios) after
    /// the claims (the wait would dominate a 10,000-claim run).
    pub secrets_gone_secs: Option<f64>,
    /// Connection Secrets still there when the wait ended.
    #[serde(default)]
    pub secrets_left: usize,
    pub mutating_per_claim: f64,
    pub mutating_per_claim_without_events: f64,
    pub requests: Requests,
    #[serde(default)]
    pub cpu_secs: f64,
    #[serde(default)]
    pub plane_cpu: PlaneCpu,
}

/// The API server alone, sent dbclaim's requests for N new claims by the
/// benchmark itself (no operator), 32 claims at a time.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Floor {
    pub with_events_secs: f64,
    pub without_events_secs: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct InlineRun {
    pub run: usize,
    pub n: usize,
    pub load_start: Vec<f64>,
    pub burst: Burst,
    pub propagation: Propagation,
    pub idle: Idle,
    pub memory: Memory,
    pub restart: Restart,
    pub delete: Delete,
    #[serde(default)]
    pub floor: Floor,
    /// Results written before the scenario existed have none.
    #[serde(default)]
    pub edit: Edit,
}

/// One edit of the composition all burst claims use: the time until every
/// claim rendered the new revision (Synced), against the burst's time to
/// Ready, and the operator's writes per claim for it.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Edit {
    pub claims: usize,
    pub all_synced_secs: f64,
    /// all_synced_secs / the burst's all-Ready time (goal: at most 1.2).
    pub ratio_to_burst: f64,
    pub latency: Pcts,
    pub mutating_per_claim: f64,
    pub mutating_per_claim_without_events: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct PostgresRun {
    pub run: usize,
    pub n: usize,
    pub load_start: Vec<f64>,
    pub burst: Burst,
    pub delete: Delete,
}

/// One side of a baseline-against-new comparison (bench/src/compare.rs).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct CompareRun {
    pub run: usize,
    /// "baseline" or "new".
    pub operator: String,
    /// "in-cluster", "shared-postgres" (quiet bursts) or "busy".
    pub scenario: String,
    pub n: usize,
    /// From the first create call until the last one returned.
    pub create_span_secs: f64,
    /// From the first create call until every claim was seen Ready.
    pub all_ready_secs: f64,
    /// all_ready_secs - create_span_secs.
    pub ready_after_last_created_secs: f64,
    /// Per claim: from its create call to Ready=True.
    pub latency: Pcts,
    /// kube-apiserver CPU seconds from the first create to all Ready, per 1,000 claims.
    pub apiserver_cpu_per_1000: f64,
    pub plane_cpu: PlaneCpu,
    pub gets_per_claim: f64,
    pub mutating_per_claim: f64,
    pub requests: Requests,
    /// Lists of all claims the busy cluster's lister completed.
    pub lists: usize,
    /// The operator's RSS high-water mark from start to all Ready.
    #[serde(default)]
    pub peak_rss_mib: f64,
    /// In-cluster: a SIGKILL and restart once all were Ready (unchanged claims).
    #[serde(default)]
    pub restart: Option<Restart>,
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.retain(|x| !x.is_nan());
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if !xs.len().is_multiple_of(2) {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let p = Pcts::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p95, p.p99, p.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn mutating_counts_skip_reads_and_optionally_events() {
        let r: Requests = [
            ("get configmaps".to_string(), 5.0),
            ("patch configmaps".to_string(), 1.0),
            ("create events".to_string(), 2.0),
            ("watch secrets".to_string(), 1.0),
        ]
        .into();
        assert_eq!(mutating(&r), 3.0);
        assert_eq!(mutating_without_events(&r), 1.0);
    }
}
