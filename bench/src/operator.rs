//! The operator as a separate process: start, SIGKILL, stop; its metrics
//! endpoint; its RSS and CPU time from /proc.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::model::Requests;
use crate::{Result, err};

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub struct Operator {
    bin: PathBuf,
    extra: Vec<String>,
    kubeconfig: PathBuf,
    log: PathBuf,
    metrics_port: u16,
    probes_port: u16,
    child: Option<Child>,
    pid: u32,
}

impl Operator {
    pub async fn start(
        bin: &Path,
        extra: &[String],
        kubeconfig: &Path,
        log: &Path,
    ) -> Result<Self> {
        let mut op = Self {
            bin: bin.to_path_buf(),
            extra: extra.to_vec(),
            kubeconfig: kubeconfig.to_path_buf(),
            log: log.to_path_buf(),
            metrics_port: free_port()?,
            probes_port: free_port()?,
            child: None,
            pid: 0,
        };
        op.spawn().await?;
        Ok(op)
    }

    /// Starts the process (again) and waits until /readyz says its caches are synced.
    pub async fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .arg("run")
            .arg("--operator-namespace")
            .arg("dbclaim-system")
            .arg("--metrics-bind-address")
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .arg("--health-probe-bind-address")
            .arg(format!("127.0.0.1:{}", self.probes_port))
            .args(&self.extra)
            .env("KUBECONFIG", &self.kubeconfig)
            .env(
                "RUST_LOG",
                std::env::var("DBCLAIM_BENCH_LOG").unwrap_or_else(|_| "info,kube=warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| err(format!("cannot start {}: {e}", self.bin.display())))?;
        self.pid = child.id().ok_or_else(|| err("operator exited at once"))?;
        self.child = Some(child);
        Ok(())
    }

    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok((200, _)) = http_get(self.probes_port, "/readyz").await {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                return Err(err(format!(
                    "the operator exited ({status}); see {}",
                    self.log.display()
                )));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(err("the operator did not become ready"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.start_kill()?;
            c.wait().await?;
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub async fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.pid.to_string())
                .status()
                .await;
            if tokio::time::timeout(Duration::from_secs(10), c.wait())
                .await
                .is_err()
            {
                c.start_kill()?;
                c.wait().await?;
            }
        }
        Ok(())
    }

    pub async fn scrape(&self) -> Result<Scrape> {
        let (code, body) = http_get(self.metrics_port, "/metrics").await?;
        if code != 200 {
            return Err(err(format!("/metrics answered {code}")));
        }
        Ok(Scrape::parse(&body))
    }

    pub fn stats(&self) -> Result<ProcStats> {
        ProcStats::read(self.pid)
    }
}

/// GET on 127.0.0.1:port; (status code, body).
async fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_string()))
}

/// The operator's counters at one moment.
#[derive(Clone, Debug, Default)]
pub struct Scrape {
    /// dbclaim_kube_requests_total by "verb resource".
    pub requests: Requests,
    /// dbclaim_reconcile_total{controller="claim"}, all results.
    pub claim_reconciles: f64,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, parse_labels(l.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            match name {
                "dbclaim_kube_requests_total" => {
                    let key = format!(
                        "{} {}",
                        labels.get("verb").map(String::as_str).unwrap_or("?"),
                        labels.get("resource").map(String::as_str).unwrap_or("?")
                    );
                    *out.requests.entry(key).or_default() += value;
                }
                "dbclaim_reconcile_total"
                    if labels.get("controller").map(String::as_str) == Some("claim") =>
                {
                    out.claim_reconciles += value;
                }
                _ => {}
            }
        }
        out
    }

    /// What happened between `earlier` and this scrape (of the same process).
    pub fn since(&self, earlier: &Scrape) -> Requests {
        let mut out = Requests::new();
        for (k, v) in &self.requests {
            let d = v - earlier.requests.get(k).copied().unwrap_or(0.0);
            if d != 0.0 {
                out.insert(k.clone(), d);
            }
        }
        out
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    s.split("\",")
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStats {
    pub rss_mib: f64,
    /// VmHWM: the process's peak RSS so far.
    pub peak_rss_mib: f64,
    pub cpu_secs: f64,
}

impl ProcStats {
    pub fn read(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = |field: &str| -> f64 {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces) start at state (3).
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| -> f64 {
            fields
                .get(i - 3)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        };
        Ok(Self {
            rss_mib: kib("VmRSS:") / 1024.0,
            peak_rss_mib: kib("VmHWM:") / 1024.0,
            cpu_secs: (ticks(14) + ticks(15)) / clock_ticks(),
        })
    }
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_parses_requests_and_reconciles() {
        let text = "# HELP x\n\
            dbclaim_kube_requests_total{verb=\"patch\",resource=\"configmaps\"} 3\n\
            dbclaim_kube_requests_total{verb=\"get\",resource=\"secrets\"} 7\n\
            dbclaim_reconcile_total{controller=\"claim\",result=\"success\"} 5\n\
            dbclaim_reconcile_total{controller=\"claim\",result=\"error\"} 1\n\
            dbclaim_reconcile_total{controller=\"database\",result=\"success\"} 9\n";
        let s = Scrape::parse(text);
        assert_eq!(s.requests["patch configmaps"], 3.0);
        assert_eq!(s.requests["get secrets"], 7.0);
        assert_eq!(s.claim_reconciles, 6.0);
        let earlier =
            Scrape::parse("dbclaim_kube_requests_total{verb=\"get\",resource=\"secrets\"} 2\n");
        let d = s.since(&earlier);
        assert_eq!(d["get secrets"], 5.0);
        assert_eq!(d["patch configmaps"], 3.0);
    }

    #[test]
    fn own_process_stats_are_readable() {
        let s = ProcStats::read(std::process::id()).unwrap_or_default();
        assert!(s.rss_mib > 0.0 && s.peak_rss_mib >= s.rss_mib);
    }
}
