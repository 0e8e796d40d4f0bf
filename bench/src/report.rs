//! The markdown tables, the README section and the SVG plot of a result set.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::model::{CompareRun, InlineRun, PostgresRun, Requests, Results, median};
use crate::{Result, err};

const README_BEGIN: &str = "<!-- bench:begin (written by make bench) -->";
const README_END: &str = "<!-- bench:end -->";

/// Median with min–max over runs.
#[derive(Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
    runs: usize,
}

fn stat<T>(runs: &[&T], f: impl Fn(&T) -> f64) -> Stat {
    let xs: Vec<f64> = runs.iter().map(|r| f(r)).filter(|x| !x.is_nan()).collect();
    Stat {
        median: median(xs.clone()),
        min: xs.iter().copied().fold(f64::NAN, f64::min),
        max: xs.iter().copied().fold(f64::NAN, f64::max),
        runs: xs.len(),
    }
}

fn num(x: f64, decimals: usize) -> String {
    if x.is_nan() {
        "–".into()
    } else {
        format!("{x:.decimals$}")
    }
}

impl Stat {
    /// "12.3 (11.9–13.0)"; the range only with several runs that differ.
    fn show(&self, decimals: usize) -> String {
        if self.runs > 1 && num(self.min, decimals) != num(self.max, decimals) {
            format!(
                "{} ({}–{})",
                num(self.median, decimals),
                num(self.min, decimals),
                num(self.max, decimals)
            )
        } else {
            num(self.median, decimals)
        }
    }
}

fn by_n<T>(runs: &[T], n: impl Fn(&T) -> usize) -> BTreeMap<usize, Vec<&T>> {
    let mut out: BTreeMap<usize, Vec<&T>> = BTreeMap::new();
    for r in runs {
        out.entry(n(r)).or_default().push(r);
    }
    out
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

struct Target {
    what: String,
    goal: String,
    measured: String,
    ratio: String,
    met: &'static str,
}

fn ratio(measured: f64, goal: f64) -> String {
    if measured.is_nan() {
        "–".into()
    } else if goal == 0.0 {
        if measured == 0.0 {
            "0 of 0".into()
        } else {
            "above 0".into()
        }
    } else {
        format!("{:.2}", measured / goal)
    }
}

fn met(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "not run",
    }
}

/// The N to judge "at 1,000" targets: 1,000 if run, else the largest below.
fn pick_n<T>(groups: &BTreeMap<usize, Vec<&T>>, want: usize) -> Option<usize> {
    if groups.contains_key(&want) {
        return Some(want);
    }
    groups.keys().rev().find(|&&n| n <= want).copied()
}

fn targets(r: &Results) -> Vec<Target> {
    let inline = by_n(&r.inline, |x| x.n);
    let mut out = Vec::new();
    let at = pick_n(&inline, 1000);
    let label = |what: &str, n: Option<usize>| match n {
        Some(n) if n != 1000 => format!("{what} (measured at N={}, 1,000 not run)", thousands(n)),
        _ => what.to_string(),
    };

    let ready = at.map(|n| stat(&inline[&n], |x| x.burst.all_ready_secs));
    out.push(Target {
        what: label(
            "1,000 claims (in-cluster composition) all Ready after the burst",
            at,
        ),
        goal: "≤ 30 s".into(),
        measured: ready
            .map(|s| format!("{} s", s.show(2)))
            .unwrap_or("–".into()),
        ratio: ready.map(|s| ratio(s.median, 30.0)).unwrap_or("–".into()),
        met: met(ready.map(|s| s.median <= 30.0)),
    });

    // Composition edit (issue 19): at N=1,000, every claim re-rendered and
    // Synced within 1.2x the burst's time to Ready of the same run.
    let edited: Vec<&InlineRun> = at
        .map(|n| {
            inline[&n]
                .iter()
                .copied()
                .filter(|x| x.edit.claims > 0)
                .collect()
        })
        .unwrap_or_default();
    let edit = (!edited.is_empty()).then(|| stat(&edited, |x| x.edit.ratio_to_burst));
    out.push(Target {
        what: label(
            "composition edit: all claims Synced on the new revision, over the burst's all Ready",
            at,
        ),
        goal: "≤ 1.2×".into(),
        measured: edit
            .map(|s| format!("{}×", s.show(2)))
            .unwrap_or("–".into()),
        ratio: edit.map(|s| ratio(s.median, 1.2)).unwrap_or("–".into()),
        met: met(edit.map(|s| s.median <= 1.2)),
    });

    // Propagation: the worst N's median p99.
    let prop = inline
        .iter()
        .map(|(n, runs)| (*n, stat(runs, |x| x.propagation.latency.p99)))
        .max_by(|a, b| a.1.median.total_cmp(&b.1.median));
    out.push(Target {
        what: match prop {
            Some((n, _)) => format!(
                "propagation p99, composed object ready → claim Ready (worst N: {})",
                thousands(n)
            ),
            None => "propagation p99".into(),
        },
        goal: "< 1 s".into(),
        measured: prop
            .map(|(_, s)| format!("{} s", s.show(3)))
            .unwrap_or("–".into()),
        ratio: prop
            .map(|(_, s)| ratio(s.median, 1.0))
            .unwrap_or("–".into()),
        met: met(prop.map(|(_, s)| s.median < 1.0)),
    });

    for (want, goal) in [(1000usize, 64.0), (10000, 256.0)] {
        let runs = inline.get(&want);
        // The higher of the first process's high-water mark and the
        // restarted one's (the re-list), per run.
        let s = runs.map(|runs| stat(runs, |x| x.memory.peak_rss_mib.max(x.restart.peak_rss_mib)));
        let projected = if s.is_none() {
            // From the largest N measured: steady + MiB per 1,000 × the rest.
            inline.iter().next_back().map(|(n, runs)| {
                let peak = stat(runs, |x| x.memory.peak_rss_mib).median;
                let per = stat(runs, |x| x.memory.mib_per_1000).median;
                (n, peak + per * (want.saturating_sub(*n) as f64) / 1000.0)
            })
        } else {
            None
        };
        out.push(Target {
            what: format!(
                "operator peak RSS at {} claims (burst to idle, or the re-list after a restart, whichever is higher)",
                thousands(want)
            ),
            goal: format!("≤ {goal} MiB"),
            measured: match (s, projected) {
                (Some(s), _) => format!("{} MiB", s.show(1)),
                (None, Some((n, p))) => {
                    format!("not run (projected from N={}: {p:.0} MiB)", thousands(*n))
                }
                _ => "not run".into(),
            },
            ratio: s.map(|s| ratio(s.median, goal)).unwrap_or("–".into()),
            met: met(s.map(|s| s.median <= goal)),
        });
    }

    let worst =
        |f: &dyn Fn(&InlineRun) -> f64| -> Option<f64> { r.inline.iter().map(f).reduce(f64::max) };
    let idle = worst(&|x| x.idle.mutating);
    out.push(Target {
        what: format!(
            "mutating requests in the idle window ({} s, N Ready claims; worst run of any N)",
            r.config.idle_secs
        ),
        goal: "0".into(),
        measured: idle.map(|v| num(v, 0)).unwrap_or("–".into()),
        ratio: idle.map(|v| ratio(v, 0.0)).unwrap_or("–".into()),
        met: met(idle.map(|v| v == 0.0)),
    });
    let restart = worst(&|x| x.restart.mutating);
    out.push(Target {
        what:
            "mutating requests after a SIGKILL and restart, unchanged claims (worst run of any N)"
                .into(),
        goal: "0".into(),
        measured: restart.map(|v| num(v, 0)).unwrap_or("–".into()),
        ratio: restart.map(|v| ratio(v, 0.0)).unwrap_or("–".into()),
        met: met(restart.map(|v| v == 0.0)),
    });

    for (what, goal, with, without) in [
        (
            "mutating requests per claim, apply → Ready",
            6.0,
            (|x: &InlineRun| x.burst.mutating_per_claim) as fn(&InlineRun) -> f64,
            (|x: &InlineRun| x.burst.mutating_per_claim_without_events) as fn(&InlineRun) -> f64,
        ),
        (
            "mutating requests per claim, deletion",
            4.0,
            |x: &InlineRun| x.delete.mutating_per_claim,
            |x: &InlineRun| x.delete.mutating_per_claim_without_events,
        ),
    ] {
        let s = at.map(|n| (stat(&inline[&n], with), stat(&inline[&n], without)));
        out.push(Target {
            what: label(&format!("{what}, events included (without events)"), at),
            goal: format!("≤ {goal}"),
            measured: s
                .map(|(a, b)| format!("{} ({})", a.show(2), b.show(2)))
                .unwrap_or("–".into()),
            ratio: s.map(|(a, _)| ratio(a.median, goal)).unwrap_or("–".into()),
            met: met(s.map(|(a, _)| a.median <= goal + 1e-9)),
        });
    }
    out
}

/// "patch configmaps 1.00, create events 4.00" per claim.
fn per_claim(requests: &Requests, n: usize, mutating_only: bool) -> String {
    let mut parts: Vec<String> = requests
        .iter()
        .filter(|(k, _)| !mutating_only || crate::model::is_mutating(k))
        .map(|(k, v)| format!("{k} {:.2}", v / n.max(1) as f64))
        .collect();
    parts.sort();
    parts.join(", ")
}

pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    let runs = r.config.runs;
    let _ = writeln!(
        s,
        "Results of `make bench` ([bench/](bench/)) from {}, commit `{}`{}: {} cores, {} GiB, kube-apiserver, etcd and the operator \
         (release build) on the same machine (load average {} at the start). \
         Medians over {runs} run(s) per size, min–max in brackets. The operator's API requests are counted by its own client \
         middleware (`dbclaim_kube_requests_total{{verb,resource}}`); \"mutating\" = create, update, patch, delete.",
        r.date,
        r.commit.replace(" and ", "` and `"),
        if r.label.is_empty() {
            String::new()
        } else {
            format!(" ({})", r.label)
        },
        r.machine.cores,
        r.machine.mem_gib,
        r.machine
            .load_start
            .iter()
            .map(|l| format!("{l:.2}"))
            .collect::<Vec<_>>()
            .join(" / "),
    );
    s.push_str(
        "\n| target | goal | measured (median) | ratio to goal | met |\n|---|---|---|---|---|\n",
    );
    for t in targets(r) {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            t.what, t.goal, t.measured, t.ratio, t.met
        );
    }

    let inline = by_n(&r.inline, |x| x.n);
    if !inline.is_empty() {
        s.push_str(
            "\n**In-cluster composition** (`bench-inline`: one ConfigMap holding the connection details, ready at once); \
             times in seconds, memory in MiB.\n\n\
             | N | runs | all Ready | per claim p50 / p95 / p99 / max | propagation p50 / p99 | mutating per claim → Ready (no events) \
             | idle: mutating / CPU s / reconciles | RSS baseline / peak / steady | MiB per 1,000 claims \
             | restart: all reconciled / settled / mutating / peak RSS | delete: composed gone / claims gone / mutating per claim |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for (n, runs) in &inline {
            let st = |f: fn(&InlineRun) -> f64, d| stat(runs, f).show(d);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} / {} / {} / {} | {} / {} | {} ({}) | {} / {} / {} | {} / {} / {} | {} | {} / {} / {} / {} | {} / {} / {} |",
                thousands(*n),
                runs.len(),
                st(|x| x.burst.all_ready_secs, 2),
                st(|x| x.burst.latency.p50, 2),
                st(|x| x.burst.latency.p95, 2),
                st(|x| x.burst.latency.p99, 2),
                st(|x| x.burst.latency.max, 2),
                st(|x| x.propagation.latency.p50, 3),
                st(|x| x.propagation.latency.p99, 3),
                st(|x| x.burst.mutating_per_claim, 2),
                st(|x| x.burst.mutating_per_claim_without_events, 2),
                st(|x| x.idle.mutating, 0),
                st(|x| x.idle.cpu_secs, 2),
                st(|x| x.idle.reconciles, 0),
                st(|x| x.memory.baseline_rss_mib, 1),
                st(|x| x.memory.peak_rss_mib, 1),
                st(|x| x.memory.steady_rss_mib, 1),
                st(|x| x.memory.mib_per_1000, 1),
                st(|x| x.restart.reconciled_secs, 2),
                st(|x| x.restart.settled_secs, 2),
                st(|x| x.restart.mutating, 0),
                st(|x| x.restart.peak_rss_mib, 1),
                st(|x| x.delete.composed_gone_secs, 2),
                st(|x| x.delete.claims_gone_secs, 2),
                st(|x| x.delete.mutating_per_claim, 2),
            );
        }
    }
    if inline
        .iter()
        .any(|(_, runs)| runs.iter().any(|x| x.edit.claims > 0))
    {
        s.push_str(
            "\n**Composition edit** (issue 19: one edit of `bench-inline` after the burst; every claim re-renders the new \
             revision). Goal: all Synced within 1.2x the burst's all-Ready time, at most 2 mutating requests per claim.\n\n\
             | N | all Synced (s) | ratio to burst | per claim p50 / p99 / max | mutating per claim (no events) |\n\
             |---|---|---|---|---|\n",
        );
        for (n, runs) in &inline {
            let st = |f: fn(&InlineRun) -> f64, d| stat(runs, f).show(d);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} / {} / {} | {} ({}) |",
                thousands(*n),
                st(|x| x.edit.all_synced_secs, 2),
                st(|x| x.edit.ratio_to_burst, 2),
                st(|x| x.edit.latency.p50, 2),
                st(|x| x.edit.latency.p99, 2),
                st(|x| x.edit.latency.max, 2),
                st(|x| x.edit.mutating_per_claim, 2),
                st(|x| x.edit.mutating_per_claim_without_events, 2),
            );
        }
    }
    let pg = by_n(&r.postgres, |x| x.n);
    // Where the CPU goes during a burst: when the API server and etcd take
    // most of the two cores, they, not the operator, set the pace.
    let mut cpu_rows = String::new();
    let mut cpu_row = |what: &str, n: usize, runs: Vec<&crate::model::Burst>| {
        let st = |f: fn(&crate::model::Burst) -> f64, d| stat(&runs, f).show(d);
        let busy = stat(&runs, |b| {
            (b.cpu_secs
                + b.plane_cpu.apiserver
                + b.plane_cpu.etcd
                + b.plane_cpu.controller_manager
                + b.plane_cpu.bench)
                / b.all_ready_secs
        });
        let _ = writeln!(
            cpu_rows,
            "| {what} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(n),
            st(|b| b.all_ready_secs, 1),
            st(|b| b.cpu_secs, 1),
            st(|b| b.plane_cpu.apiserver, 1),
            st(|b| b.plane_cpu.etcd, 1),
            st(|b| b.plane_cpu.controller_manager, 1),
            st(|b| b.plane_cpu.bench, 1),
            busy.show(2),
        );
    };
    for (n, runs) in &inline {
        cpu_row("in-cluster", *n, runs.iter().map(|x| &x.burst).collect());
    }
    for (n, runs) in &pg {
        cpu_row(
            "shared-postgres",
            *n,
            runs.iter().map(|x| &x.burst).collect(),
        );
    }
    if !cpu_rows.is_empty() {
        s.push_str(
            "\n**CPU seconds during the burst** (from /proc; the machine has 2 cores, so \
             \"cores busy\" near 2 means the machine is saturated): the operator against kube-apiserver and etcd.\n\n\
             | composition | N | wall (s) | operator | kube-apiserver | etcd | controller-manager | bench driver | cores busy (these) |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        s.push_str(&cpu_rows);
    }
    if inline
        .values()
        .flatten()
        .any(|x| x.floor.with_events_secs > 0.0)
    {
        s.push_str(
            "\n**The API server's floor**: with the operator stopped, the benchmark itself sends the API server what dbclaim \
             sends for N new claims (finalizer patch unless the chart's finalizer policy puts it on at create, apply of the ConfigMap and of the Secret, status apply, the \
             pass's one event; dbclaim reads the rest from its caches), 32 claims at a time like the operator. When dbclaim's time is close to \
             the floor, the API server, not the operator, sets the pace.\n\n\
             | N | dbclaim: all Ready (s) | floor (s) | floor without the event (s) | dbclaim / floor |\n|---|---|---|---|---|\n",
        );
        for (n, runs) in &inline {
            if runs.iter().all(|x| x.floor.with_events_secs <= 0.0) {
                continue;
            }
            let st = |f: fn(&InlineRun) -> f64, d| stat(runs, f).show(d);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                thousands(*n),
                st(|x| x.burst.all_ready_secs, 2),
                st(|x| x.floor.with_events_secs, 2),
                st(|x| x.floor.without_events_secs, 2),
                st(|x| x.burst.all_ready_secs / x.floor.with_events_secs, 2),
            );
        }
    }
    if !pg.is_empty() {
        s.push_str(
            "\n**Shared-PostgreSQL composition** (`compositions/shared-postgres.yaml`: a `Database` on a local PostgreSQL, \
             reconciled by the postgres provider in the same process; its requests are counted too).\n\n\
             | N | runs | all Ready | per claim p50 / p95 / p99 / max | mutating per claim → Ready (no events) | peak RSS \
             | delete: Databases gone / claims gone / mutating per claim |\n|---|---|---|---|---|---|---|\n",
        );
        for (n, runs) in &pg {
            let st = |f: fn(&PostgresRun) -> f64, d| stat(runs, f).show(d);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} / {} / {} / {} | {} ({}) | {} | {} / {} / {} |",
                thousands(*n),
                runs.len(),
                st(|x| x.burst.all_ready_secs, 2),
                st(|x| x.burst.latency.p50, 2),
                st(|x| x.burst.latency.p95, 2),
                st(|x| x.burst.latency.p99, 2),
                st(|x| x.burst.latency.max, 2),
                st(|x| x.burst.mutating_per_claim, 2),
                st(|x| x.burst.mutating_per_claim_without_events, 2),
                st(|x| x.burst.peak_rss_mib, 1),
                st(|x| x.delete.composed_gone_secs, 2),
                st(|x| x.delete.claims_gone_secs, 2),
                st(|x| x.delete.mutating_per_claim, 2),
            );
        }
    }
    // Where the writes go, from the first run of the largest N.
    let mut detail = String::new();
    if let Some((n, runs)) = inline.iter().next_back() {
        let x = runs[0];
        let _ = writeln!(
            detail,
            "- in-cluster, N={}, apply → Ready, per claim: {}",
            thousands(*n),
            per_claim(&x.burst.requests, x.burst.claims, false)
        );
        let _ = writeln!(
            detail,
            "- in-cluster, N={}, deletion, per claim: {}",
            thousands(*n),
            per_claim(&x.delete.requests, x.delete.claims, false)
        );
        let _ = writeln!(
            detail,
            "- in-cluster, N={}, idle window: {}",
            thousands(*n),
            if x.idle.requests.is_empty() {
                "no requests".to_string()
            } else {
                per_claim(&x.idle.requests, 1, false)
            }
        );
        let _ = writeln!(
            detail,
            "- in-cluster, N={}, restart (whole startup): {}",
            thousands(*n),
            per_claim(&x.restart.requests, 1, false)
        );
    }
    if let Some((n, runs)) = pg.iter().next_back() {
        let x = runs[0];
        let _ = writeln!(
            detail,
            "- shared-postgres, N={}, apply → Ready, per claim: {}",
            thousands(*n),
            per_claim(&x.burst.requests, x.burst.claims, false)
        );
    }
    s.push_str(&comparison(&r.compare));
    if !detail.is_empty() {
        s.push_str("\nRequests by verb and resource (first run):\n\n");
        s.push_str(&detail);
    }
    if !r.failures.is_empty() {
        s.push_str("\nRuns that failed:\n\n");
        for f in &r.failures {
            let _ = writeln!(s, "- {f}");
        }
    }
    s
}

/// Baseline against new, alternating (bench/src/compare.rs): medians per
/// side and their ratio new / baseline.
fn comparison(runs: &[CompareRun]) -> String {
    let mut s = String::new();
    type Sides<'a> = (Vec<&'a CompareRun>, Vec<&'a CompareRun>);
    let mut groups: BTreeMap<(String, usize), Sides> = BTreeMap::new();
    // The plane's own CPU for N creates, by N (any scenario's no-operator
    // run: the busy one adds the lister's lists, so it is kept apart).
    let mut bare: BTreeMap<(String, usize), Vec<f64>> = BTreeMap::new();
    // The API server's CPU for the new operator's writes alone, by N.
    let mut floors: BTreeMap<(String, usize), Vec<f64>> = BTreeMap::new();
    for r in runs {
        if r.operator == crate::compare::FLOOR {
            floors
                .entry((r.scenario.clone(), r.n))
                .or_default()
                .push(r.apiserver_cpu_per_1000);
            continue;
        }
        if r.operator == crate::compare::NO_OPERATOR {
            bare.entry((r.scenario.clone(), r.n))
                .or_default()
                .push(r.apiserver_cpu_per_1000);
            continue;
        }
        let g = groups.entry((r.scenario.clone(), r.n)).or_default();
        match r.operator.as_str() {
            "baseline" => g.0.push(r),
            _ => g.1.push(r),
        }
    }
    if groups.is_empty() {
        return s;
    }
    s.push_str(
        "\n**Baseline against new** (the operator at the baseline commit and the one under test take turns, \
         each on a fresh plane, their order alternating by run; \"busy\": claims created by 4 parallel clients, each at \
         the API server's pace, while a lister lists all claims every 2 s; \"without the plane's own\": minus the \
         median kube-apiserver CPU of the same creates with no operator running, the in-cluster run's for \
         shared-PostgreSQL). Medians; new / baseline in the last column.\n\n\
         | scenario | N | measure | baseline | new | new / baseline |\n|---|---|---|---|---|---|\n",
    );
    type Measure = (&'static str, fn(&CompareRun) -> f64, usize);
    let measures: [Measure; 13] = [
        ("all Ready (s)", |r| r.all_ready_secs, 2),
        (
            "all Ready − last created (s)",
            |r| r.ready_after_last_created_secs,
            2,
        ),
        (
            "… as a share of the creation span",
            |r| r.ready_after_last_created_secs / r.create_span_secs,
            2,
        ),
        ("per claim Ready − creation p99 (s)", |r| r.latency.p99, 2),
        (
            "kube-apiserver CPU s per 1,000 claims",
            |r| r.apiserver_cpu_per_1000,
            1,
        ),
        ("GETs per claim", |r| r.gets_per_claim, 2),
        (
            "mutating requests per claim (events included)",
            |r| r.mutating_per_claim,
            2,
        ),
        (
            "operator peak RSS to all Ready (MiB)",
            |r| r.peak_rss_mib,
            1,
        ),
        (
            "restart, unchanged claims: all reconciled (s)",
            |r| r.restart.as_ref().map_or(f64::NAN, |x| x.reconciled_secs),
            2,
        ),
        (
            "restart: GETs in all",
            |r| {
                r.restart.as_ref().map_or(f64::NAN, |x| {
                    x.requests
                        .iter()
                        .filter(|(k, _)| k.starts_with("get ") && *k != "get discovery")
                        .map(|(_, v)| v)
                        .sum()
                })
            },
            0,
        ),
        (
            "restart: mutating requests",
            |r| r.restart.as_ref().map_or(f64::NAN, |x| x.mutating),
            0,
        ),
        (
            "restart: operator peak RSS (MiB)",
            |r| r.restart.as_ref().map_or(f64::NAN, |x| x.peak_rss_mib),
            1,
        ),
        ("runs", |_| 1.0, 0),
    ];
    for ((scenario, n), (base, new)) in &groups {
        for (what, f, d) in measures {
            let (b, x) = if what == "runs" {
                (base.len() as f64, new.len() as f64)
            } else {
                (stat(base, f).median, stat(new, f).median)
            };
            if b.is_nan() && x.is_nan() {
                continue;
            }
            let ratio = if what == "runs" { f64::NAN } else { x / b };
            let _ = writeln!(
                s,
                "| {scenario} | {} | {what} | {} | {} | {} |",
                thousands(*n),
                num(b, d),
                num(x, d),
                num(ratio, 2)
            );
            if what == "kube-apiserver CPU s per 1,000 claims" {
                // Shared-PostgreSQL claims cost the plane what in-cluster
                // ones do (the same creates): its size's, else any size's,
                // per 1,000 claims.
                let plane = match scenario.as_str() {
                    "shared-postgres" => bare
                        .get(&("in-cluster".to_string(), *n))
                        .cloned()
                        .or_else(|| {
                            let all: Vec<f64> = bare
                                .iter()
                                .filter(|((s, _), _)| s == "in-cluster")
                                .flat_map(|(_, v)| v.iter().copied())
                                .collect();
                            (!all.is_empty()).then_some(all)
                        }),
                    other => bare.get(&(other.to_string(), *n)).cloned(),
                };
                if let Some(floor) = floors.get(&(scenario.clone(), *n)).cloned().map(median) {
                    let _ = writeln!(
                        s,
                        "| {scenario} | {} | … the floor: the new operator's writes sent by the benchmark, no operator | {} | {} | {} |",
                        thousands(*n),
                        num(b, 1),
                        num(floor, 1),
                        num(floor / b, 2)
                    );
                }
                let Some(plane) = plane.map(median) else {
                    continue;
                };
                let (b, x) = (b - plane, x - plane);
                let _ = writeln!(
                    s,
                    "| {scenario} | {} | … without the plane's own ({} with no operator) | {} | {} | {} |",
                    thousands(*n),
                    num(plane, 1),
                    num(b, 1),
                    num(x, 1),
                    num(x / b, 2)
                );
            }
        }
    }
    s
}

/// Claims Ready over time in the bursts, one line per run.
pub fn plot(r: &Results, path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let panels = root.split_evenly((1, 2));
    let inline: Vec<(usize, usize, &[f64])> = r
        .inline
        .iter()
        .map(|x| (x.n, x.run, x.burst.ready_at.as_slice()))
        .collect();
    let pg: Vec<(usize, usize, &[f64])> = r
        .postgres
        .iter()
        .map(|x| (x.n, x.run, x.burst.ready_at.as_slice()))
        .collect();
    for (panel, (title, series)) in panels.iter().zip([
        (
            "In-cluster composition: claims Ready after a burst of N",
            inline,
        ),
        (
            "Shared-PostgreSQL composition: claims Ready after a burst of N",
            pg,
        ),
    ]) {
        draw_panel(panel, title, &series).map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    series: &[(usize, usize, &[f64])],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let xmax = series
        .iter()
        .filter_map(|(_, _, r)| r.last().copied())
        .fold(1.0f64, f64::max)
        * 1.05;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..xmax, 0f64..100f64)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the first create call")
        .y_desc("claims Ready (% of N)")
        .draw()?;
    let sizes: Vec<usize> = {
        let mut v: Vec<usize> = series.iter().map(|(n, _, _)| *n).collect();
        v.sort();
        v.dedup();
        v
    };
    for (n, run, ready) in series {
        let color_index = sizes.iter().position(|s| s == n).unwrap_or(0);
        let color = Palette99::pick(color_index).to_rgba();
        let total = ready.len().max(1) as f64;
        let step = (ready.len() / 400).max(1);
        let mut points = vec![(0.0, 0.0)];
        for (i, t) in ready.iter().enumerate() {
            if i % step == 0 || i + 1 == ready.len() {
                points.push((*t, (i + 1) as f64 / total * 100.0));
            }
        }
        let drawn = chart.draw_series(LineSeries::new(points, color.stroke_width(2)))?;
        if *run == 1 {
            drawn
                .label(format!("N = {}", thousands(*n)))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
    }
    Ok(())
}

/// Writes STEM.md and STEM.svg, and the README section when asked.
pub fn write(r: &Results, stem: &Path, readme: Option<&Path>) -> Result<()> {
    let svg = stem.with_extension("svg");
    plot(r, &svg)?;
    let table = markdown(r);
    let svg_name = svg
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    std::fs::write(
        stem.with_extension("md"),
        format!("# dbclaim benchmarks\n\n{table}\n![claims Ready over time]({svg_name})\n"),
    )?;
    if let Some(readme) = readme {
        let rel = svg
            .strip_prefix(readme.parent().unwrap_or(Path::new("")))
            .unwrap_or(&svg)
            .display()
            .to_string();
        let section = format!(
            "{README_BEGIN}\n{table}\n![claims Ready over time in the burst]({rel})\n\n\
             Run it with `make bench` (sizes: `make bench BENCH_SIZES=100,1000,5000,10000 BENCH_RUNS=3`); \
             results go to `bench/results/<date>-<commit>.{{json,md,svg}}`.\n{README_END}"
        );
        let text = std::fs::read_to_string(readme)?;
        let new = match (text.find(README_BEGIN), text.find(README_END)) {
            (Some(a), Some(b)) if b > a => {
                format!("{}{section}{}", &text[..a], &text[b + README_END.len()..])
            }
            _ => format!("{}\n## Benchmarks\n\n{section}\n", text.trim_end()),
        };
        std::fs::write(readme, new)?;
    }
    Ok(())
}
