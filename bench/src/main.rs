//! `make bench`: dbclaim at scale on a local control plane.
//!
//!   dbclaim-bench run    [--sizes 100,1000,5000] [--runs 3] ...   run, write bench/results/
//!   dbclaim-bench report FILE.json...                             tables and plot from results
//!
//! Each run starts a fresh control plane (e2e/cluster), the operator as a
//! separate process (the release build), and times the scenarios of issue 8:
//! burst, propagation, idle, memory, restart and delete with an in-cluster
//! composition, and burst + delete with the shared-PostgreSQL composition.
//! The operator's API requests are counted by its own client middleware
//! (`dbclaim_kube_requests_total{verb,resource}`), so only its requests are
//! counted, not the benchmark's or the controller manager's.

mod compare;
mod env;
mod model;
mod operator;
mod report;
mod scenarios;
mod track;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

pub fn err(msg: impl Into<String>) -> Error {
    msg.into().into()
}

#[derive(Parser)]
#[command(about = "Benchmarks of the dbclaim operator at scale")]
enum Cli {
    /// Run the scenarios and write results (JSON, markdown, SVG plot).
    Run(Box<RunArgs>),
    /// Write the markdown table and the plot from result files (runs merged).
    Report(ReportArgs),
}

#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Claim counts of the in-cluster scenarios, comma-separated ("none" for none).
    #[arg(long, default_value = "100,1000,5000")]
    sizes: String,
    /// Claim counts of the shared-PostgreSQL burst ("none" for none).
    #[arg(long, default_value = "100,1000")]
    postgres_sizes: String,
    /// The operator built at the baseline commit: with it, the comparison
    /// scenarios run it and the operator under test alternately.
    #[arg(long)]
    baseline_operator: Option<PathBuf>,
    /// The source tree at the baseline commit: its e2e/cluster and crds/
    /// set up the baseline's planes, so it runs on its own release's CRDs
    /// (default: this tree's).
    #[arg(long)]
    pub baseline_repo: Option<PathBuf>,
    /// Claim counts of the quiet in-cluster burst compared with the baseline.
    #[arg(long, default_value = "none")]
    compare_sizes: String,
    /// Claim counts of the quiet shared-PostgreSQL burst compared with the baseline.
    #[arg(long, default_value = "none")]
    compare_postgres_sizes: String,
    /// Claim counts of the busy cluster (4 creating clients, a lister every 2 s).
    #[arg(long, default_value = "none")]
    busy_sizes: String,
    /// Repetitions of every size; tables show medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Length of the idle window.
    #[arg(long, default_value_t = 300)]
    pub idle_secs: u64,
    /// Claims whose readiness is flipped by hand (propagation).
    #[arg(long, default_value_t = 100)]
    pub flips: usize,
    /// Pause between two flips.
    #[arg(long, default_value_t = 100)]
    pub flip_interval_ms: u64,
    /// Create/delete calls in flight during a burst.
    #[arg(long, default_value_t = 64)]
    pub create_concurrency: usize,
    /// Run the API-server floor only up to this N (it adds 2N claims, and
    /// etcd's quota in e2e/cluster is 512 MiB).
    #[arg(long, default_value_t = 5000)]
    pub floor_max: usize,
    /// Longest wait for any one step.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// The operator binary (default: the release build).
    #[arg(long)]
    operator: Option<PathBuf>,
    /// Extra arguments of `dbclaim run`, e.g. --operator-arg=--concurrency=16.
    #[arg(long = "operator-arg", allow_hyphen_values = true)]
    pub operator_args: Vec<String>,
    /// Where results go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Scratch space (control planes, logs).
    #[arg(long, default_value = "bench/.state")]
    pub state: PathBuf,
    /// A tag for the result file name, e.g. "before".
    #[arg(long, default_value = "")]
    label: String,
    /// Rewrite the "## Benchmarks" section of this README with the table.
    #[arg(long)]
    readme: Option<PathBuf>,
    #[arg(skip)]
    pub repo: PathBuf,
}

impl RunArgs {
    pub fn operator_bin(&self) -> &Path {
        self.operator
            .as_deref()
            .unwrap_or(Path::new("target/release/dbclaim"))
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

#[derive(clap::Args, Debug)]
struct ReportArgs {
    /// Result files (bench/results/*.json); their runs are merged.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output path without extension (default: the last file's).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    readme: Option<PathBuf>,
}

fn parse_sizes(s: &str) -> Result<Vec<usize>> {
    if s.trim().is_empty() || s.trim() == "none" {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|v| {
            v.trim()
                .replace('_', "")
                .parse()
                .map_err(|e| err(format!("bad size {v:?}: {e}")))
        })
        .collect()
}

fn git(repo: &Path, args: &[&str]) -> String {
    std::process::Command::new("git")
        .args(args)
        .current_dir(repo)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> model::Machine {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    model::Machine {
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        mem_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        load_start: env::load_average(),
        load_end: Vec::new(),
    }
}

async fn run(mut args: RunArgs) -> Result<()> {
    args.repo = std::env::current_dir()?;
    if !args.repo.join("e2e/cluster").exists() {
        return Err(err("run from the repository root (e2e/cluster not found)"));
    }
    let sizes = parse_sizes(&args.sizes)?;
    let pg_sizes = parse_sizes(&args.postgres_sizes)?;
    let compared: Vec<(compare::Scenario, usize)> = [
        (compare::Scenario::InCluster, &args.compare_sizes),
        (
            compare::Scenario::SharedPostgres,
            &args.compare_postgres_sizes,
        ),
        (compare::Scenario::Busy, &args.busy_sizes),
    ]
    .into_iter()
    .map(|(s, sizes)| parse_sizes(sizes).map(|v| v.into_iter().map(move |n| (s, n))))
    .collect::<Result<Vec<_>>>()?
    .into_iter()
    .flatten()
    .collect();
    if !compared.is_empty() && args.baseline_operator.is_none() {
        return Err(err(
            "--compare-sizes, --compare-postgres-sizes and --busy-sizes need --baseline-operator",
        ));
    }
    args.operator = Some(match args.operator.take() {
        Some(p) => p,
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| args.repo.join("target"));
            target.join("release/dbclaim")
        }
    });
    args.state = std::path::absolute(&args.state)?;
    std::fs::create_dir_all(&args.state)?;
    std::fs::create_dir_all(&args.out)?;
    // A copy: a rebuild during the run must not swap the binary under test
    // (the restart scenario starts it again).
    let copy = args.state.join("dbclaim-under-test");
    std::fs::copy(args.operator_bin(), &copy).map_err(|e| {
        err(format!(
            "cannot copy the operator {}: {e} (build it with cargo build --release)",
            args.operator_bin().display()
        ))
    })?;
    args.operator = Some(copy);
    if let Some(b) = args.baseline_operator.take() {
        let copy = args.state.join("dbclaim-baseline");
        std::fs::copy(&b, &copy).map_err(|e| {
            err(format!(
                "cannot copy the baseline operator {}: {e}",
                b.display()
            ))
        })?;
        args.baseline_operator = Some(copy);
    }
    if let Some(r) = args.baseline_repo.take() {
        let abs = r
            .canonicalize()
            .map_err(|e| err(format!("--baseline-repo {}: {e}", r.display())))?;
        args.baseline_repo = Some(abs);
    }

    let dirty = !git(
        &args.repo,
        &["status", "--porcelain", "--untracked-files=no"],
    )
    .is_empty();
    let commit = format!(
        "{}{}",
        git(&args.repo, &["rev-parse", "--short", "HEAD"]),
        if dirty { "-dirty" } else { "" }
    );
    let date = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%d")
        .to_string();
    let stem = match args.label.as_str() {
        "" => format!("{date}-{commit}"),
        l => format!("{date}-{commit}-{l}"),
    };
    let stem = args.out.join(stem);
    let mut results = model::Results {
        date,
        commit,
        label: args.label.clone(),
        machine: machine(),
        config: model::RunConfig {
            sizes: sizes.clone(),
            postgres_sizes: pg_sizes.clone(),
            runs: args.runs,
            idle_secs: args.idle_secs,
            flips: args.flips,
            flip_interval_ms: args.flip_interval_ms,
            create_concurrency: args.create_concurrency,
            operator_args: args.operator_args.clone(),
            request_counting:
                "operator client middleware: dbclaim_kube_requests_total{verb,resource}".into(),
        },
        ..Default::default()
    };
    let save = |results: &model::Results| -> Result<()> {
        std::fs::write(
            stem.with_extension("json"),
            serde_json::to_string_pretty(results)? + "\n",
        )?;
        Ok(())
    };
    for run in 1..=args.runs {
        for &n in &sizes {
            match scenarios::inline_run(&args, run, n).await {
                Ok(r) => results.inline.push(r),
                Err(e) => {
                    eprintln!("bench: in-cluster N={n} run {run} failed: {e}");
                    results
                        .failures
                        .push(format!("in-cluster N={n} run {run}: {e}"));
                }
            }
            save(&results)?;
        }
        for &n in &pg_sizes {
            match scenarios::postgres_run(&args, run, n).await {
                Ok(r) => results.postgres.push(r),
                Err(e) => {
                    eprintln!("bench: shared-postgres N={n} run {run} failed: {e}");
                    results
                        .failures
                        .push(format!("shared-postgres N={n} run {run}: {e}"));
                }
            }
            save(&results)?;
        }
        if let Some(baseline) = args.baseline_operator.clone() {
            for &(scenario, n) in &compared {
                for r in compare::run(&args, run, scenario, n, &baseline).await {
                    match r {
                        Ok(r) => results.compare.push(r),
                        Err(e) => {
                            eprintln!(
                                "bench: compare {} N={n} run {run} failed: {e}",
                                scenario.name()
                            );
                            results
                                .failures
                                .push(format!("compare {} N={n} run {run}: {e}", scenario.name()));
                        }
                    }
                    save(&results)?;
                }
            }
        }
    }
    results.machine.load_end = env::load_average();
    save(&results)?;
    report::write(&results, &stem, args.readme.as_deref())?;
    eprintln!("bench: results in {}.{{json,md,svg}}", stem.display());
    Ok(())
}

fn report_cmd(args: ReportArgs) -> Result<()> {
    let mut merged: Option<model::Results> = None;
    for f in &args.files {
        let r: model::Results = serde_json::from_str(&std::fs::read_to_string(f)?)
            .map_err(|e| err(format!("{}: {e}", f.display())))?;
        merged = Some(match merged {
            None => r,
            Some(mut m) => {
                m.inline.extend(r.inline);
                m.postgres.extend(r.postgres);
                m.compare.extend(r.compare);
                m.failures.extend(r.failures);
                m.date = r.date;
                // Runs of several commits: the table names them all.
                if !m.commit.split(" and ").any(|c| c == r.commit) {
                    m.commit = format!("{} and {}", m.commit, r.commit);
                }
                m.label = r.label;
                m.machine = r.machine;
                m
            }
        });
    }
    let mut merged = merged.ok_or_else(|| err("no result files"))?;
    // The runs that finished, not those a file set out to do.
    merged.config.runs = merged
        .inline
        .iter()
        .map(|x| merged.inline.iter().filter(|y| y.n == x.n).count())
        .max()
        .unwrap_or(0);
    let stem = match args.out {
        Some(o) => o,
        None => args
            .files
            .last()
            .map(|f| f.with_extension(""))
            .unwrap_or_default(),
    };
    report::write(&merged, &stem, args.readme.as_deref())?;
    eprintln!("bench: wrote {}.{{md,svg}}", stem.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli {
        // On Ctrl-C or SIGTERM the run is dropped: the operator (kill on
        // drop), the control plane and PostgreSQL (Drop) are stopped.
        Cli::Run(args) => rt.block_on(async {
            let args = *args;
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                r = run(args) => r,
                _ = tokio::signal::ctrl_c() => Err(err("interrupted")),
                _ = term.recv() => Err(err("terminated")),
            }
        }),
        Cli::Report(args) => report_cmd(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
