//! The environment of a run: a fresh control plane (e2e/cluster), optionally
//! a PostgreSQL (e2e/postgres), the CRDs and the bench compositions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::process::Command;

use crate::{Result, err};

/// The namespace the benchmark's claims live in.
pub const NAMESPACE: &str = "bench";

pub struct Cluster {
    repo: PathBuf,
    state: PathBuf,
    pub kubeconfig: PathBuf,
    pub client: Client,
    /// The DatabaseClaim CRD stores v1beta1 (today's tree; a baseline's
    /// may predate it).
    pub stored_v1beta1: bool,
    /// The tree's chart puts the claim finalizer on at create (its
    /// MutatingAdmissionPolicy, installed here as the chart would), so the
    /// operator sends no finalizer patch.
    pub finalizer_policy: bool,
    /// The serving certificate of the plane's conversion webhook, which an
    /// operator with a webhook of its own serves too.
    webhook_cert_dir: Option<PathBuf>,
    down: bool,
}

/// A run interrupted (Ctrl-C, an error that skipped `down`) still stops
/// the daemons it started.
impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.down {
            let _ = std::process::Command::new(self.repo.join("e2e/cluster"))
                .args(["down", "--state"])
                .arg(&self.state)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs a script of the repo; its stdout, or an error with its stderr tail.
async fn script(repo: &Path, args: &[&str], log: &Path) -> Result<String> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let out = Command::new(repo.join(args[0]))
        .args(&args[1..])
        .current_dir(repo)
        .stdin(Stdio::null())
        .stderr(log_file)
        .output()
        .await?;
    if !out.status.success() {
        return Err(err(format!(
            "{} failed ({}); see {}",
            args.join(" "),
            out.status,
            log.display()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// `export K=V` lines of a script's output.
fn exports(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches(['\'', '"']).to_string()))
        .collect()
}

impl Cluster {
    /// A fresh plane in `state` (a leftover one there is stopped first).
    pub async fn up(repo: &Path, state: &Path, log: &Path) -> Result<Self> {
        let state_s = state.display().to_string();
        script(repo, &["e2e/cluster", "down", "--state", &state_s], log).await?;
        let out = script(repo, &["e2e/cluster", "up", "--state", &state_s], log).await?;
        let mut exported = exports(&out);
        let webhook_cert_dir = exported
            .remove("DBCLAIM_E2E_WEBHOOK_CERT_DIR")
            .map(PathBuf::from);
        let kubeconfig = exported
            .remove("KUBECONFIG")
            .map(PathBuf::from)
            .ok_or_else(|| err("e2e/cluster up printed no KUBECONFIG"))?;
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&kubeconfig)?,
            &KubeConfigOptions::default(),
        )
        .await?;
        let client = Client::try_from(config)?;
        let mut cluster = Self {
            repo: repo.to_path_buf(),
            state: state.to_path_buf(),
            kubeconfig,
            client,
            stored_v1beta1: false,
            finalizer_policy: false,
            webhook_cert_dir,
            down: false,
        };
        // e2e/cluster installed the CRDs, pointed at its conversion webhook;
        // an older tree's (a baseline's, `--baseline-repo`) did not.
        if cluster
            .kubectl(&["get", "crd", "databaseclaims.dbclaim.io"])
            .await
            .is_err()
        {
            cluster
                .kubectl(&["apply", "--server-side", "-f", "crds/"])
                .await?;
        }
        cluster
            .kubectl(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                "-f",
                "crds/",
            ])
            .await?;
        let storage = cluster
            .kubectl(&[
                "get",
                "crd",
                "databaseclaims.dbclaim.io",
                "-o",
                "jsonpath={.spec.versions[?(@.storage==true)].name}",
            ])
            .await?;
        cluster.stored_v1beta1 = storage.trim() == "v1beta1";
        for ns in ["dbclaim-system", NAMESPACE] {
            cluster.kubectl(&["create", "namespace", ns]).await?;
        }
        cluster.finalizer_policy = cluster.install_finalizer_policy(log).await?;
        cluster
            .kubectl(&[
                "apply",
                "--server-side",
                "-f",
                "bench/compositions/inline.yaml",
            ])
            .await?;
        Ok(cluster)
    }

    /// The tree's chart's finalizer policy, as `helm install` renders it on
    /// this plane (which serves MutatingAdmissionPolicy), applied and
    /// waited for. False for a tree whose chart has none (a baseline's).
    async fn install_finalizer_policy(&self, log: &Path) -> Result<bool> {
        let chart = self.repo.join("charts/dbclaim");
        if !chart.join("templates/finalizer-policy.yaml").exists() {
            return Ok(false);
        }
        script(&self.repo, &["e2e/build-helm"], log).await?;
        let versions = std::fs::read_to_string(self.repo.join("e2e/versions.env"))?;
        let version = versions
            .lines()
            .find_map(|l| l.strip_prefix("HELM_VERSION="))
            .ok_or_else(|| err("no HELM_VERSION in e2e/versions.env"))?
            .trim();
        let cache = std::env::var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache")
            });
        let out = Command::new(cache.join(format!("dbclaim/bin/helm-{version}/helm")))
            .args(["template", "bench"])
            .arg(&chart)
            .args([
                "--namespace",
                "dbclaim-system",
                "--api-versions",
                "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy",
                "--show-only",
                "templates/finalizer-policy.yaml",
            ])
            .output()
            .await?;
        if !out.status.success() {
            return Err(err(format!(
                "helm template of the finalizer policy: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let yaml = String::from_utf8_lossy(&out.stdout).to_string();
        self.kubectl_stdin(&["apply", "-f", "-"], Some(&yaml))
            .await?;
        // The API server loads a new policy asynchronously: wait until a
        // dry-run claim comes back with the finalizer.
        let probe =
            serde_json::to_string(&crate::scenarios::claim(self, "probe", "bench-inline")?)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let got = self
                .kubectl_stdin(
                    &[
                        "create",
                        "--dry-run=server",
                        "-o",
                        "jsonpath={.metadata.finalizers}",
                        "-f",
                        "-",
                    ],
                    Some(&probe),
                )
                .await?;
            if got.contains(dbclaim::contract::CLAIM_FINALIZER) {
                return Ok(true);
            }
            if std::time::Instant::now() > deadline {
                return Err(err(
                    "the chart's finalizer policy did not take effect in 60 s",
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// The arguments of `bin run`: `extra`, and for an operator that serves
    /// the conversion webhook (today's; not a baseline from before it) a
    /// free port and the plane's webhook certificate, without which its
    /// /readyz waits.
    pub fn operator_args(&self, bin: &Path, extra: &[String]) -> Vec<String> {
        let mut out = extra.to_vec();
        let serves_webhook = std::process::Command::new(bin)
            .args(["run", "--help"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("--webhook-cert-dir"))
            .unwrap_or(false);
        if let (true, Some(dir)) = (serves_webhook, &self.webhook_cert_dir) {
            out.extend([
                "--webhook-bind-address=127.0.0.1:0".to_string(),
                format!("--webhook-cert-dir={}", dir.display()),
            ]);
        }
        out
    }

    /// CPU seconds used so far by the plane's processes and by this benchmark.
    pub fn cpu(&self) -> crate::model::PlaneCpu {
        let of = |name: &str| -> f64 {
            std::fs::read_to_string(self.state.join(format!("{name}.pid")))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .and_then(|pid| crate::operator::ProcStats::read(pid).ok())
                .map(|s| s.cpu_secs)
                .unwrap_or(f64::NAN)
        };
        crate::model::PlaneCpu {
            apiserver: of("kube-apiserver"),
            etcd: of("etcd"),
            controller_manager: of("kube-controller-manager"),
            bench: crate::operator::ProcStats::read(std::process::id())
                .map(|s| s.cpu_secs)
                .unwrap_or(f64::NAN),
        }
    }

    pub async fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_stdin(args, None).await
    }

    pub async fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        use tokio::io::AsyncWriteExt;
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .current_dir(&self.repo)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            return Err(err(format!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }

    pub async fn down(mut self, log: &Path) -> Result<()> {
        self.down = true;
        let state = self.state.display().to_string();
        script(&self.repo, &["e2e/cluster", "down", "--state", &state], log).await?;
        Ok(())
    }
}

pub struct Postgres {
    repo: PathBuf,
    state: PathBuf,
    down: bool,
    pub host: String,
    pub port: String,
    pub user: String,
    pub password: String,
}

impl Postgres {
    pub async fn up(repo: &Path, state: &Path, log: &Path) -> Result<Self> {
        let state_s = state.display().to_string();
        script(repo, &["e2e/postgres", "down", "--state", &state_s], log).await?;
        let out = script(repo, &["e2e/postgres", "up", "--state", &state_s], log).await?;
        let mut e = exports(&out);
        let mut take = |k: &str| {
            e.remove(k)
                .ok_or_else(|| err(format!("e2e/postgres up printed no {k}")))
        };
        Ok(Self {
            repo: repo.to_path_buf(),
            state: state.to_path_buf(),
            down: false,
            host: take("PGHOST")?,
            port: take("PGPORT")?,
            user: take("DBCLAIM_PG_ADMIN_USER")?,
            password: take("DBCLAIM_PG_ADMIN_PASSWORD")?,
        })
    }

    /// The admin Secret, the `default` ProviderConfig and the shipped
    /// shared-postgres composition, as e2e/demo sets them up.
    pub async fn install(&self, cluster: &Cluster) -> Result<()> {
        let manifest = format!(
            r#"apiVersion: v1
kind: Secret
metadata: {{name: shared-postgres-admin, namespace: dbclaim-system}}
stringData: {{username: "{}", password: "{}"}}
---
apiVersion: postgres.dbclaim.io/v1alpha1
kind: ProviderConfig
metadata: {{name: default}}
spec:
  host: "{}"
  port: {}
  sslMode: disable
  credentialsSecretRef: {{namespace: dbclaim-system, name: shared-postgres-admin}}
"#,
            self.user, self.password, self.host, self.port
        );
        cluster
            .kubectl_stdin(&["apply", "--server-side", "-f", "-"], Some(&manifest))
            .await?;
        cluster
            .kubectl(&[
                "apply",
                "--server-side",
                "-f",
                "compositions/shared-postgres.yaml",
            ])
            .await?;
        Ok(())
    }

    pub async fn down(mut self, log: &Path) -> Result<()> {
        self.down = true;
        let state = self.state.display().to_string();
        script(
            &self.repo,
            &["e2e/postgres", "down", "--state", &state],
            log,
        )
        .await?;
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if !self.down {
            let _ = std::process::Command::new(self.repo.join("e2e/postgres"))
                .args(["down", "--state"])
                .arg(&self.state)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Load averages from /proc/loadavg.
pub fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_are_parsed() {
        let e = exports("noise\nexport KUBECONFIG=/a/b\nexport PGPORT='5433'\n");
        assert_eq!(e["KUBECONFIG"], "/a/b");
        assert_eq!(e["PGPORT"], "5433");
    }
}
