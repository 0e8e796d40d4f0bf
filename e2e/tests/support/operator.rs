//! The operator as a separate process (`dbclaim run`), as users run it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use super::kubeconfig;

/// The namespace the operator runs in: provider connection Secrets go there.
pub const OPERATOR_NAMESPACE: &str = "dbclaim-system";

/// Tests that run an operator take this lock: operators watch the whole
/// cluster, and two at once would fight over the same objects.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: OnceLock<tokio::sync::Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Every operator serves the conversion webhook (its readiness waits for
/// it), on a port of its own and with the plane's webhook certificate; the
/// API server itself uses the plane's webhook (e2e/cluster). A test that
/// sets either flag itself gets no default for it.
fn webhook_args(extra: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    if !extra.contains(&"--webhook-bind-address") {
        args.extend(["--webhook-bind-address".into(), "127.0.0.1:0".into()]);
    }
    if !extra.contains(&"--webhook-cert-dir")
        && let Ok(dir) = std::env::var("DBCLAIM_E2E_WEBHOOK_CERT_DIR")
    {
        args.extend(["--webhook-cert-dir".into(), dir]);
    }
    args
}

pub struct Operator {
    child: Option<Child>,
    log: PathBuf,
    pub metrics_port: u16,
    pub probes_port: u16,
    /// Environment overrides (e.g. KUBECONFIG of a service account), kept
    /// for restarts.
    env: Vec<(String, String)>,
    _tmp: tempfile::TempDir,
}

impl Operator {
    /// Starts `dbclaim run` against the test cluster.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_with_env(extra, &[])
    }

    /// Like `start_with`, with environment variables set for the process
    /// (they win over the defaults, KUBECONFIG included).
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        super::kubectl_apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {OPERATOR_NAMESPACE}\n"
        ));
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = tmp.path().join("operator.log");
        let mut op = Self {
            child: None,
            log,
            metrics_port: free_port(),
            probes_port: free_port(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _tmp: tmp,
        };
        op.spawn(extra);
        op
    }

    fn spawn(&mut self, extra: &[&str]) {
        let log = std::fs::File::create(&self.log).unwrap_or_else(|e| panic!("{e}"));
        let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(operator_binary())
            .arg("run")
            .arg("--metrics-bind-address")
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .arg("--health-probe-bind-address")
            .arg(format!("127.0.0.1:{}", self.probes_port))
            .arg("--operator-namespace")
            .arg(OPERATOR_NAMESPACE)
            .args(webhook_args(extra))
            .args(extra)
            .env("KUBECONFIG", kubeconfig())
            .env(
                "RUST_LOG",
                std::env::var("DBCLAIM_E2E_LOG").unwrap_or_else(|_| "info,kube=warn".into()),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dbclaim run: {e}"));
        self.child = Some(child);
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the operator again after `kill`, same ports and log.
    pub fn restart(&mut self, extra: &[&str]) {
        self.kill();
        self.spawn(extra);
    }

    /// SIGTERM, as Kubernetes sends at pod deletion; the process is not reaped.
    pub fn terminate(&self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }

    /// The exit status once the process has exited, waiting up to `timeout`.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The body of `GET path` on 127.0.0.1:port, or None when it does not answer.
    pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        let code = buf.split_whitespace().nth(1)?.parse().ok()?;
        let body = buf
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Some((code, body))
    }

    pub fn metrics(&self) -> String {
        Self::http_get(self.metrics_port, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- operator log (last 60 lines) ----");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// The operator binary: the copy `e2e/run-tests` made of the one it built
/// (checkouts sharing a target dir overwrite each other's), else cargo's.
pub fn operator_binary() -> String {
    std::env::var("DBCLAIM_E2E_OPERATOR_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_dbclaim").to_string())
}
