//! The chart's Grafana dashboard and SLO alerts, read from `helm template`:
//! every dashboard query names a metric the operator exports, and the SLO
//! alert rules fire (and stay quiet) as intended on synthetic series.
//!
//! promtool is not available here, so the rules are evaluated by the small
//! PromQL evaluator below. It knows exactly what the SLO rules use (vector
//! selectors with `=` matchers, `rate`/`increase` over a range,
//! `sum by (...)`, `histogram_quantile`, `+ - * /` between vectors with the
//! same labels, and a comparison with a number) and refuses anything else,
//! so a rule it cannot read fails the test instead of passing untested.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::chart::{documents, of_kind, template};

type Labels = BTreeMap<String, String>;
/// An instant vector: one value per label set.
type Vector = BTreeMap<Labels, f64>;

/// Synthetic series: (name, labels) → samples (seconds, value), in time order.
#[derive(Default)]
struct Series(Vec<(String, Labels, Samples)>);

type Samples = Vec<(f64, f64)>;

impl Series {
    fn add(&mut self, name: &str, labels: &[(&str, &str)], samples: Vec<(f64, f64)>) {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0.push((name.to_string(), labels, samples));
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Str(String),
    Punct(char),
    Gt,
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            // A range duration: 6h, 5m, 30s.
            if i < chars.len() && "smhd".contains(chars[i]) {
                let unit = match chars[i] {
                    's' => 1.0,
                    'm' => 60.0,
                    'h' => 3600.0,
                    _ => 86400.0,
                };
                i += 1;
                let n: f64 = text.parse().map_err(|e| format!("{text}: {e}"))?;
                out.push(Tok::Num(n * unit));
            } else {
                out.push(Tok::Num(text.parse().map_err(|e| format!("{text}: {e}"))?));
            }
        } else if c == '"' {
            let start = i + 1;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            out.push(Tok::Str(chars[start..i].iter().collect()));
            i += 1;
        } else if c == '>' {
            if chars.get(i + 1) == Some(&'=') {
                return Err(">= is not supported".into());
            }
            out.push(Tok::Gt);
            i += 1;
        } else if "(){}[],=+-*/".contains(c) {
            if c == '=' && matches!(chars.get(i + 1), Some('~') | Some('=')) {
                return Err("only = matchers are supported".into());
            }
            out.push(Tok::Punct(c));
            i += 1;
        } else {
            return Err(format!("unsupported character {c:?} in {s}"));
        }
    }
    Ok(out)
}

/// A parsed expression.
#[derive(Debug)]
enum Expr {
    /// A bare number: only valid on a comparison's right side.
    Num,
    /// `name{k="v"}[range]`
    Range(String, Labels, f64),
    Rate(Box<Expr>),
    Increase(Box<Expr>),
    Sum(Vec<String>, Box<Expr>),
    Quantile(f64, Box<Expr>),
    Bin(char, Box<Expr>, Box<Expr>),
    Gt(Box<Expr>, f64),
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Result<Tok, String> {
        let t = self.toks.get(self.at).cloned().ok_or("unexpected end")?;
        self.at += 1;
        Ok(t)
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        match self.next()? {
            Tok::Punct(p) if p == c => Ok(()),
            t => Err(format!("expected {c}, found {t:?}")),
        }
    }

    fn expr(&mut self) -> Result<Expr, String> {
        let left = self.additive()?;
        if self.peek() == Some(&Tok::Gt) {
            self.at += 1;
            match self.next()? {
                Tok::Num(n) => return Ok(Expr::Gt(Box::new(left), n)),
                t => return Err(format!("a comparison needs a number, found {t:?}")),
            }
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Expr, String> {
        let mut left = self.term()?;
        while let Some(Tok::Punct(op @ ('+' | '-'))) = self.peek().cloned() {
            self.at += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.term()?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, String> {
        let mut left = self.atom()?;
        while let Some(Tok::Punct(op @ ('*' | '/'))) = self.peek().cloned() {
            self.at += 1;
            left = Expr::Bin(op, Box::new(left), Box::new(self.atom()?));
        }
        Ok(left)
    }

    fn atom(&mut self) -> Result<Expr, String> {
        match self.next()? {
            Tok::Num(_) => Ok(Expr::Num),
            Tok::Punct('(') => {
                let e = self.expr()?;
                self.expect(')')?;
                Ok(e)
            }
            Tok::Ident(f) if f == "rate" || f == "increase" => {
                self.expect('(')?;
                let inner = self.expr()?;
                self.expect(')')?;
                if !matches!(inner, Expr::Range(..)) {
                    return Err(format!("{f} needs a range selector"));
                }
                Ok(match f.as_str() {
                    "rate" => Expr::Rate(Box::new(inner)),
                    _ => Expr::Increase(Box::new(inner)),
                })
            }
            Tok::Ident(f) if f == "sum" => {
                let mut by = Vec::new();
                if self.peek() == Some(&Tok::Ident("by".into())) {
                    self.at += 1;
                    self.expect('(')?;
                    loop {
                        match self.next()? {
                            Tok::Ident(l) => by.push(l),
                            Tok::Punct(')') => break,
                            Tok::Punct(',') => {}
                            t => return Err(format!("in by(): {t:?}")),
                        }
                    }
                }
                self.expect('(')?;
                let inner = self.expr()?;
                self.expect(')')?;
                Ok(Expr::Sum(by, Box::new(inner)))
            }
            Tok::Ident(f) if f == "histogram_quantile" => {
                self.expect('(')?;
                let Tok::Num(q) = self.next()? else {
                    return Err("histogram_quantile needs a number first".into());
                };
                self.expect(',')?;
                let inner = self.expr()?;
                self.expect(')')?;
                Ok(Expr::Quantile(q, Box::new(inner)))
            }
            Tok::Ident(name) => {
                let mut labels = Labels::new();
                if self.peek() == Some(&Tok::Punct('{')) {
                    self.at += 1;
                    loop {
                        match self.next()? {
                            Tok::Punct('}') => break,
                            Tok::Punct(',') => {}
                            Tok::Ident(k) => {
                                self.expect('=')?;
                                let Tok::Str(v) = self.next()? else {
                                    return Err("a matcher needs a string".into());
                                };
                                labels.insert(k, v);
                            }
                            t => return Err(format!("in a selector: {t:?}")),
                        }
                    }
                }
                self.expect('[')?;
                let Tok::Num(range) = self.next()? else {
                    return Err("a range needs a duration".into());
                };
                self.expect(']')?;
                Ok(Expr::Range(name, labels, range))
            }
            t => Err(format!("unexpected {t:?}")),
        }
    }
}

fn parse(expr: &str) -> Result<Expr, String> {
    let mut p = Parser {
        toks: lex(expr)?,
        at: 0,
    };
    let e = p.expr()?;
    match p.at == p.toks.len() {
        true => Ok(e),
        false => Err(format!("trailing tokens in {expr}")),
    }
}

/// A counter's growth over the samples in (t - range, t]; resets ignored
/// (the synthetic series have none).
fn growth(samples: &[(f64, f64)], t: f64, range: f64) -> Option<f64> {
    let inside: Vec<&(f64, f64)> = samples
        .iter()
        .filter(|(ts, _)| *ts > t - range && *ts <= t)
        .collect();
    match inside.as_slice() {
        [first, .., last] => Some(last.1 - first.1),
        _ => None,
    }
}

fn eval(e: &Expr, series: &Series, t: f64) -> Result<Vector, String> {
    Ok(match e {
        Expr::Num => return Err("a number where a vector belongs".into()),
        Expr::Range(..) => return Err("a range vector outside rate/increase".into()),
        Expr::Rate(inner) | Expr::Increase(inner) => {
            let Expr::Range(name, matchers, range) = inner.as_ref() else {
                return Err("rate/increase of a non-range".into());
            };
            let mut out = Vector::new();
            for (n, labels, samples) in &series.0 {
                if n != name || matchers.iter().any(|(k, v)| labels.get(k) != Some(v)) {
                    continue;
                }
                if let Some(g) = growth(samples, t, *range) {
                    let v = match e {
                        Expr::Rate(_) => g / range,
                        _ => g,
                    };
                    out.insert(labels.clone(), v);
                }
            }
            out
        }
        Expr::Sum(by, inner) => {
            let mut out = Vector::new();
            for (labels, v) in eval(inner, series, t)? {
                let key: Labels = labels.into_iter().filter(|(k, _)| by.contains(k)).collect();
                *out.entry(key).or_default() += v;
            }
            out
        }
        Expr::Quantile(q, inner) => {
            // Buckets grouped by their labels without `le`, as Prometheus does.
            let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for (mut labels, v) in eval(inner, series, t)? {
                let le = labels.remove("le").ok_or("histogram_quantile without le")?;
                let le = match le.as_str() {
                    "+Inf" => f64::INFINITY,
                    s => s.parse().map_err(|e| format!("le {s}: {e}"))?,
                };
                groups.entry(labels).or_default().push((le, v));
            }
            let mut out = Vector::new();
            for (labels, mut buckets) in groups {
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                let total = buckets.last().map(|b| b.1).unwrap_or(0.0);
                if total <= 0.0 {
                    continue;
                }
                let rank = q * total;
                let (mut lower, mut below) = (0.0, 0.0);
                let mut value = f64::NAN;
                for (le, count) in &buckets {
                    if *count >= rank {
                        value = match le.is_infinite() {
                            // Prometheus answers the highest finite bound.
                            true => lower,
                            false => lower + (le - lower) * (rank - below) / (count - below),
                        };
                        break;
                    }
                    (lower, below) = (*le, *count);
                }
                out.insert(labels, value);
            }
            out
        }
        Expr::Bin(op, l, r) => {
            let (l, r) = (eval(l, series, t)?, eval(r, series, t)?);
            let mut out = Vector::new();
            for (labels, a) in l {
                let Some(b) = r.get(&labels) else { continue };
                let v = match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    _ => a / b,
                };
                if v.is_finite() {
                    out.insert(labels, v);
                }
            }
            out
        }
        Expr::Gt(inner, n) => eval(inner, series, t)?
            .into_iter()
            .filter(|(_, v)| v > n)
            .collect(),
    })
}

/// The label sets an alert fires for at `t`: its condition held at `t` and
/// at `t - for` (the rule's `for:` with the synthetic series' resolution).
fn firing(rule: &Value, series: &Series, t: f64) -> BTreeSet<Labels> {
    let expr = rule["expr"].as_str().unwrap_or_default();
    let e = parse(expr).unwrap_or_else(|err| panic!("cannot evaluate {expr}: {err}"));
    let hold = match rule["for"].as_str() {
        None => 0.0,
        Some(f) => match lex(f).ok().as_deref() {
            Some([Tok::Num(n)]) => *n,
            _ => panic!("bad for: {f}"),
        },
    };
    let now = eval(&e, series, t).unwrap_or_else(|err| panic!("{expr}: {err}"));
    let before = eval(&e, series, t - hold).unwrap_or_else(|err| panic!("{expr}: {err}"));
    now.into_keys().filter(|l| before.contains_key(l)).collect()
}

/// A histogram of time to Ready for one composition: one claim a minute
/// for `minutes`, each Ready after `seconds`.
fn time_to_ready(series: &mut Series, ns: &str, composition: &str, seconds: f64, minutes: u32) {
    time_to_ready_from(series, ns, composition, seconds, minutes, 0);
}

/// Like [`time_to_ready`], with claims only from minute `from` on.
fn time_to_ready_from(
    series: &mut Series,
    ns: &str,
    composition: &str,
    seconds: f64,
    minutes: u32,
    from: u32,
) {
    let n = |m: u32| m.saturating_sub(from) as f64;
    let buckets: Vec<String> = dbclaim::metrics::TIME_TO_READY_BUCKETS
        .iter()
        .map(|b| format!("{b:?}"))
        .chain(["+Inf".to_string()])
        .collect();
    for le in &buckets {
        let bound = match le.as_str() {
            "+Inf" => f64::INFINITY,
            s => s.parse().unwrap_or(0.0),
        };
        let per_sample = if seconds <= bound { 1.0 } else { 0.0 };
        let samples = (0..=minutes)
            .map(|m| (m as f64 * 60.0, n(m) * per_sample))
            .collect();
        series.add(
            "dbclaim_claim_time_to_ready_seconds_bucket",
            &[("namespace", ns), ("composition", composition), ("le", le)],
            samples,
        );
    }
    let samples = (0..=minutes).map(|m| (m as f64 * 60.0, n(m))).collect();
    series.add(
        "dbclaim_claim_time_to_ready_seconds_count",
        &[("namespace", ns), ("composition", composition)],
        samples,
    );
}

fn failures(series: &mut Series, ns: &str, composition: &str, per_minute: f64, minutes: u32) {
    let samples = (0..=minutes)
        .map(|m| (m as f64 * 60.0, m as f64 * per_minute))
        .collect();
    series.add(
        "dbclaim_claim_failures_total",
        &[
            ("namespace", ns),
            ("composition", composition),
            ("reason", "ProviderError"),
        ],
        samples,
    );
}

/// Metric names a scrape of the operator can carry: from the registry's
/// `# TYPE` lines, with the suffixes each type's samples get.
fn exported_metrics() -> BTreeSet<String> {
    // A family shows in a scrape once it has a sample: give each one.
    let m = dbclaim::metrics::Metrics::default();
    m.reconciled("claim", false, std::time::Duration::from_millis(1));
    m.set_claims(1, 1);
    m.set_orphaned_objects(0);
    m.provider_request("postgres", "SyncDatabase", true);
    m.kube_request(
        &http::Method::GET,
        &http::Uri::from_static("/api/v1/secrets"),
    );
    m.claim_first_ready("c", 1.0);
    m.claim_failed("c", "ProviderError");
    m.set_ready_ratios(&BTreeMap::from([("c".to_string(), (1, 2))]));
    let text = m.encode();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        for s in suffixes {
            names.insert(format!("{name}{s}"));
        }
    }
    names
}

fn rendered(ns: &str) -> Vec<Value> {
    let values = "metrics:\n  prometheusRule: {enabled: true, timeToReadyObjectiveSeconds: 900, failureRatioObjective: 0.1}\n  grafanaDashboard: {enabled: true}\n";
    let out =
        template("e2e-monitoring", ns, values).unwrap_or_else(|e| panic!("helm template: {e}"));
    documents(&out)
}

#[tokio::test]
async fn the_dashboard_queries_only_metrics_the_operator_exports() {
    let docs = rendered("monitoring");
    let maps = of_kind(&docs, "ConfigMap");
    let dashboard = maps
        .iter()
        .find(|m| m["metadata"]["labels"]["grafana_dashboard"] == "1")
        .unwrap_or_else(|| panic!("no ConfigMap labelled grafana_dashboard: \"1\""));
    let json = dashboard["data"]["dbclaim.json"]
        .as_str()
        .unwrap_or_default();
    let board: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("dashboard JSON: {e}"));
    assert_eq!(board["uid"], "dbclaim");
    let panels = board["panels"].as_array().cloned().unwrap_or_default();
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for want in [
        "Claims by state",
        "Time to Ready p50 by composition",
        "Time to Ready p95 by composition",
        "Claim failures by reason",
        "Reconcile errors",
        "Kubernetes API requests by verb",
        "Operator memory",
    ] {
        assert!(titles.contains(&want), "no panel {want}: {titles:?}");
    }
    let exported = exported_metrics();
    let metric = regex::Regex::new(
        r"\b(dbclaim_[a-z_]+|[a-z_]+_(?:total|bucket|count|sum|bytes|seconds))\b",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut queries = 0;
    for p in &panels {
        for target in p["targets"].as_array().cloned().unwrap_or_default() {
            let expr = target["expr"].as_str().unwrap_or_default();
            let named: Vec<&str> = metric.find_iter(expr).map(|m| m.as_str()).collect();
            assert!(!named.is_empty(), "{}: no metric in {expr}", p["title"]);
            for name in named {
                assert!(
                    exported.contains(name),
                    "{}: {name} is not exported (exported: {exported:?})",
                    p["title"]
                );
            }
            queries += 1;
        }
    }
    assert!(queries >= 7, "{queries} queries");
}

#[tokio::test]
async fn slo_alerts_fire_on_slow_or_failing_provisioning_and_not_otherwise() {
    let ns = "monitoring";
    let docs = rendered(ns);
    let rule_doc = of_kind(&docs, "PrometheusRule");
    let rules: Vec<Value> = rule_doc
        .iter()
        .flat_map(|r| r["spec"]["groups"].as_array().cloned().unwrap_or_default())
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    let rule = |name: &str| {
        rules
            .iter()
            .find(|r| r["alert"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no alert {name}"))
    };
    let slow = rule("DBClaimTimeToReadySlow");
    let failing = rule("DBClaimFailureRatioHigh");
    let t = 6.0 * 3600.0;
    let minutes = 6 * 60;

    // Composition "fast": Ready in 30 s; "slow": in 40 min (objective 900 s).
    let mut s = Series::default();
    time_to_ready(&mut s, ns, "fast", 30.0, minutes);
    time_to_ready(&mut s, ns, "slow", 2400.0, minutes);
    // Another release's series never count here.
    time_to_ready(&mut s, "elsewhere", "fast", 3000.0, minutes);
    let fired: Vec<String> = firing(&slow, &s, t)
        .into_iter()
        .map(|l| l.get("composition").cloned().unwrap_or_default())
        .collect();
    assert_eq!(fired, ["slow"]);
    // No failures at all: quiet.
    assert!(firing(&failing, &s, t).is_empty());

    // One failure per ten Ready claims (9 %) is under the objective of
    // 10 %: quiet; one per Ready claim (50 %) fires.
    failures(&mut s, ns, "fast", 0.1, minutes);
    failures(&mut s, ns, "slow", 1.0, minutes);
    let fired: Vec<String> = firing(&failing, &s, t)
        .into_iter()
        .map(|l| l.get("composition").cloned().unwrap_or_default())
        .collect();
    assert_eq!(fired, ["slow"]);

    // Slow claims only in the last 10 minutes: not yet for the rule's `for:`.
    let mut burst = Series::default();
    time_to_ready_from(&mut burst, ns, "burst", 2400.0, minutes, minutes - 10);
    assert!(firing(&slow, &burst, t).is_empty());
    // Once it has lasted 15 minutes, it fires.
    assert!(!firing(&slow, &burst, t + 6.0 * 60.0).is_empty());
}

#[test]
fn the_evaluator_refuses_what_it_does_not_know() {
    assert!(parse("avg_over_time(x[5m]) > 1").is_err());
    assert!(parse("x{a=~\"b\"}[5m]").is_err());
    assert!(parse("rate(x) > 1").is_err());
}
