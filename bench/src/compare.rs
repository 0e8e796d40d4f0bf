//! Baseline against new in the same run (issue 20): the operator built at
//! a baseline commit and the one under test take turns (their order
//! alternates from run to run), each on a fresh plane, so machine load
//! hits both alike and the results are read as ratios.
//!
//! Scenarios: a quiet burst of the in-cluster or the shared-PostgreSQL
//! composition (N claims created at once), and the busy cluster: N
//! in-cluster claims created by 4 parallel clients, each as fast as the API
//! server answers, while a lister lists all claims (full objects) every 2 s.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use kube::api::{ListParams, PostParams};

use crate::env::{Cluster, Postgres};
use crate::model::{self, CompareRun, Pcts};
use crate::operator::Operator;
use crate::scenarios::{Replay, claim, claims_api, create_claims};
use crate::{Result, RunArgs, err, track};

/// Parallel creating clients of the busy cluster.
pub const BUSY_CLIENTS: usize = 4;
/// How often the busy cluster's lister lists every claim.
pub const LIST_EVERY: Duration = Duration::from_secs(2);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    InCluster,
    SharedPostgres,
    Busy,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::InCluster => "in-cluster",
            Scenario::SharedPostgres => "shared-postgres",
            Scenario::Busy => "busy",
        }
    }

    fn composition(self) -> &'static str {
        match self {
            Scenario::SharedPostgres => "shared-postgres",
            _ => "bench-inline",
        }
    }
}

fn log(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

/// One side of a comparison: its name ("baseline", "new") and binary.
pub struct Side<'a> {
    pub name: &'static str,
    /// None: no operator at all, the plane's own cost of the same creates
    /// (and the busy cluster's lister), which neither operator can lower.
    pub bin: Option<&'a Path>,
}

/// Runs `scenario` with N claims once per side, in an order that alternates
/// with `run`; the in-cluster and busy scenarios also once without an
/// operator (the shared-PostgreSQL claims' creates cost the plane the same).
pub async fn run(
    args: &RunArgs,
    run: usize,
    scenario: Scenario,
    n: usize,
    baseline: &Path,
) -> Vec<Result<CompareRun>> {
    let mut sides = vec![
        Side {
            name: "baseline",
            bin: Some(baseline),
        },
        Side {
            name: "new",
            bin: Some(args.operator_bin()),
        },
    ];
    if run.is_multiple_of(2) {
        sides.reverse();
    }
    if scenario != Scenario::SharedPostgres {
        sides.push(Side {
            name: NO_OPERATOR,
            bin: None,
        });
    }
    if scenario != Scenario::Busy {
        sides.push(Side {
            name: FLOOR,
            bin: None,
        });
    }
    let mut out = Vec::new();
    for side in &sides {
        out.push(once(args, run, scenario, n, side).await);
    }
    out
}

/// The side name of a run without an operator.
pub const NO_OPERATOR: &str = "none";
/// The side name of a run without an operator in which the benchmark
/// itself sends, for each claim, the writes today's operator sends (the
/// API server's floor, [`crate::scenarios::floor`]): what those writes
/// cost the API server with no watch, GET or operator logic around them.
pub const FLOOR: &str = "floor";

async fn once(
    args: &RunArgs,
    run: usize,
    scenario: Scenario,
    n: usize,
    side: &Side<'_>,
) -> Result<CompareRun> {
    let dir: PathBuf = args.state.join(format!(
        "compare-{}-{n}-{run}-{}",
        scenario.name(),
        side.name
    ));
    std::fs::create_dir_all(&dir)?;
    let log_file = dir.join("scripts.log");
    log(format!(
        "compare {} N={n} run {run}: the {} operator",
        scenario.name(),
        side.name
    ));
    let repo = match (side.name, &args.baseline_repo) {
        ("baseline", Some(r)) => r.as_path(),
        _ => args.repo.as_path(),
    };
    let cluster = Cluster::up(repo, &dir.join("cluster"), &log_file).await?;
    let pg = match scenario {
        // The floor sends the API server's part only.
        Scenario::SharedPostgres if side.name != FLOOR => {
            match Postgres::up(&args.repo, &dir.join("postgres"), &log_file).await {
                Ok(pg) => Some(pg),
                Err(e) => {
                    let _ = cluster.down(&log_file).await;
                    return Err(e);
                }
            }
        }
        _ => None,
    };
    let result = async {
        if let Some(pg) = &pg {
            pg.install(&cluster).await?;
        }
        if side.name == FLOOR {
            let mut r = floor(args, &cluster, scenario, n).await?;
            r.run = run;
            r.operator = side.name.to_string();
            return Ok(r);
        }
        let Some(bin) = side.bin else {
            let mut r = measure(args, &cluster, None, scenario, n).await?;
            r.run = run;
            r.operator = side.name.to_string();
            return Ok(r);
        };
        let mut op = Operator::start(
            bin,
            &cluster.operator_args(bin, &args.operator_args),
            &cluster.kubeconfig,
            &dir.join("operator.log"),
        )
        .await?;
        let result = match op.wait_ready(Duration::from_secs(60)).await {
            Ok(()) => measure(args, &cluster, Some(&mut op), scenario, n).await,
            Err(e) => Err(e),
        };
        op.stop().await?;
        result.map(|mut r| {
            r.run = run;
            r.operator = side.name.to_string();
            r
        })
    }
    .await;
    if let Some(pg) = pg
        && let Err(e) = pg.down(&log_file).await
    {
        log(format!("  postgres down: {e}"));
    }
    if let Err(e) = cluster.down(&log_file).await {
        log(format!("  cluster down: {e}"));
    }
    result
}

async fn measure(
    args: &RunArgs,
    cluster: &Cluster,
    op: Option<&mut Operator>,
    scenario: Scenario,
    n: usize,
) -> Result<CompareRun> {
    let claims = track::claims(cluster);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = match &op {
        Some(op) => Some(op.scrape().await?),
        None => None,
    };
    let plane0 = cluster.cpu();
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let lists = Arc::new(AtomicUsize::new(0));
    let lister = (scenario == Scenario::Busy).then(|| {
        let api = claims_api(cluster);
        let (stop, lists) = (stop.clone(), lists.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(LIST_EVERY);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                if api.list(&ListParams::default()).await.is_ok() {
                    lists.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    });
    let names: Vec<String>;
    let sent: HashMap<String, Instant> = match scenario {
        Scenario::Busy => {
            names = (0..n)
                .map(|i| format!("b{}-{}", i % BUSY_CLIENTS, i / BUSY_CLIENTS))
                .collect();
            busy_create(cluster, &names).await?
        }
        _ => {
            names = (0..n).map(|i| format!("c-{i}")).collect();
            create_claims(
                cluster,
                &names,
                scenario.composition(),
                args.create_concurrency,
            )
            .await?
        }
    };
    let created = start.elapsed();
    let Some(op) = op else {
        // No operator: the plane's cost of the creates (and the lister's
        // lists over the same span), settled like the operators' runs.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let plane_cpu = cluster.cpu().since(&plane0);
        stop.store(true, Ordering::Relaxed);
        if let Some(l) = lister {
            l.abort();
        }
        log(format!(
            "  no operator: created in {:.2}s; kube-apiserver {:.1} CPU s per 1,000 claims",
            created.as_secs_f64(),
            plane_cpu.apiserver / n as f64 * 1000.0
        ));
        return Ok(CompareRun {
            scenario: scenario.name().to_string(),
            n,
            create_span_secs: created.as_secs_f64(),
            apiserver_cpu_per_1000: plane_cpu.apiserver / n as f64 * 1000.0,
            plane_cpu,
            lists: lists.load(Ordering::Relaxed),
            ..Default::default()
        });
    };
    claims
        .wait(&format!("{n} claims to be Ready"), args.timeout(), |s| {
            names.iter().all(|c| s.ready.contains_key(c))
        })
        .await?;
    let plane_cpu = cluster.cpu().since(&plane0);
    stop.store(true, Ordering::Relaxed);
    if let Some(l) = lister {
        l.abort();
    }
    let (latencies, last_ready) = claims.with(|s| {
        let lat: Vec<f64> = names
            .iter()
            .map(|c| s.ready[c].saturating_duration_since(sent[c]).as_secs_f64())
            .collect();
        let last = names
            .iter()
            .map(|c| s.ready[c].saturating_duration_since(start))
            .max()
            .unwrap_or_default();
        (lat, last)
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    let scrape = op.scrape().await?;
    let requests = match &before {
        Some(b) => scrape.since(b),
        None => Default::default(),
    };
    let peak_rss_mib = op.stats()?.peak_rss_mib;
    // Unchanged claims after a SIGKILL: what a restart costs (issue 20).
    let restart = match scenario {
        Scenario::InCluster => Some(crate::scenarios::restart(op, n, args).await?),
        _ => None,
    };
    let gets: f64 = requests
        .iter()
        .filter(|(k, _)| k.starts_with("get "))
        .map(|(_, v)| v)
        .sum();
    let r = CompareRun {
        scenario: scenario.name().to_string(),
        n,
        create_span_secs: created.as_secs_f64(),
        all_ready_secs: last_ready.as_secs_f64(),
        ready_after_last_created_secs: last_ready.saturating_sub(created).as_secs_f64(),
        latency: Pcts::of(latencies),
        apiserver_cpu_per_1000: plane_cpu.apiserver / n as f64 * 1000.0,
        plane_cpu,
        gets_per_claim: gets / n as f64,
        mutating_per_claim: model::mutating(&requests) / n as f64,
        lists: lists.load(Ordering::Relaxed),
        requests,
        peak_rss_mib,
        restart,
        ..Default::default()
    };
    log(format!(
        "  created in {:.2}s, all Ready {:.2}s ({:.2}s after the last creation); per claim p99 {:.2}s; kube-apiserver {:.1} CPU s per 1,000 claims; {:.2} GETs and {:.2} mutating requests per claim; {} lists",
        r.create_span_secs,
        r.all_ready_secs,
        r.ready_after_last_created_secs,
        r.latency.p99,
        r.apiserver_cpu_per_1000,
        r.gets_per_claim,
        r.mutating_per_claim,
        r.lists
    ));
    Ok(r)
}

/// The floor of a burst: N claims created and each sent the new
/// operator's writes by the benchmark, no operator running; the API
/// server's CPU for it.
async fn floor(
    args: &RunArgs,
    cluster: &Cluster,
    scenario: Scenario,
    n: usize,
) -> Result<CompareRun> {
    let replay = match scenario {
        Scenario::SharedPostgres => Replay::SharedPostgres,
        _ => Replay::InCluster { events: true },
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let plane0 = cluster.cpu();
    let took = crate::scenarios::floor(cluster, n, replay, args).await?;
    // Settled like the operators' runs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let plane_cpu = cluster.cpu().since(&plane0);
    log(format!(
        "  floor: {n} claims and their writes in {took:.2}s; kube-apiserver {:.1} CPU s per 1,000 claims",
        plane_cpu.apiserver / n as f64 * 1000.0
    ));
    Ok(CompareRun {
        scenario: scenario.name().to_string(),
        n,
        all_ready_secs: took,
        apiserver_cpu_per_1000: plane_cpu.apiserver / n as f64 * 1000.0,
        plane_cpu,
        ..Default::default()
    })
}

/// The busy cluster's creators: [`BUSY_CLIENTS`] clients, each sending its
/// share one create after the other (at the API server's pace).
async fn busy_create(cluster: &Cluster, names: &[String]) -> Result<HashMap<String, Instant>> {
    let api = claims_api(cluster);
    let per_client: Vec<Vec<String>> = (0..BUSY_CLIENTS)
        .map(|k| {
            names
                .iter()
                .skip(k)
                .step_by(BUSY_CLIENTS)
                .cloned()
                .collect()
        })
        .collect();
    let sent: Vec<Vec<(String, Instant)>> = stream::iter(per_client)
        .map(|mine| {
            let api = api.clone();
            async move {
                let mut sent = Vec::with_capacity(mine.len());
                for name in mine {
                    let obj = claim(cluster, &name, "bench-inline")?;
                    let t = Instant::now();
                    api.create(&PostParams::default(), &obj).await?;
                    sent.push((name, t));
                }
                Ok::<_, crate::Error>(sent)
            }
        })
        .buffer_unordered(BUSY_CLIENTS)
        .try_collect()
        .await?;
    let sent: HashMap<String, Instant> = sent.into_iter().flatten().collect();
    if sent.len() != names.len() {
        return Err(err("busy cluster: not every claim was created"));
    }
    Ok(sent)
}
