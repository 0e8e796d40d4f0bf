//! Test support for the e2e suite: a client for the plane `e2e/run-tests`
//! started, a `kubectl` wrapper, per-test namespaces, the CRDs, and throw-away
//! PostgreSQL and moto servers.
//!
//! Everything that shells out is synchronous (std::process): the calls are
//! short, and Drop impls can use the same code.
#![allow(dead_code)] // not every test module uses every helper

pub mod faultproxy;
mod namespace;
pub mod operator;
mod services;

use std::ffi::OsStr;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use namespace::TestNamespace;
pub use operator::{Operator, exclusive};
pub use services::{Moto, Postgres, xml_values};

const USE_RUN_TESTS: &str = "run the e2e tests through `e2e/run-tests`, which starts a local \
     control plane and sets KUBECONFIG (or run `DBCLAIM_E2E_USE_EXISTING_KUBECONFIG=1 \
     e2e/run-tests` with KUBECONFIG pointing at a cluster of your own)";

/// The repository root (where Cargo.toml, crds/ and e2e/ live).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Path of a script under e2e/, e.g. `e2e_script("postgres")`.
pub fn e2e_script(name: &str) -> PathBuf {
    repo_root().join("e2e").join(name)
}

/// Panics when e2e/run-tests ran a test binary built from another checkout:
/// worktrees sharing one CARGO_TARGET_DIR overwrite each other's binaries.
fn check_built_from_this_checkout() {
    if let Ok(root) = std::env::var("DBCLAIM_E2E_REPO_ROOT") {
        assert!(
            Path::new(&root) == repo_root(),
            "this e2e test binary was built from {}, but e2e/run-tests runs in {root}: \
             another checkout sharing the cargo target dir rebuilt it meanwhile; \
             rerun, or give each checkout its own CARGO_TARGET_DIR",
            repo_root().display()
        );
    }
}

/// The KUBECONFIG the tests use; panics with instructions when it is unset.
pub fn kubeconfig() -> String {
    check_built_from_this_checkout();
    match std::env::var("KUBECONFIG") {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!("KUBECONFIG is not set: {USE_RUN_TESTS}"),
    }
}

/// A client for the cluster named by KUBECONFIG.
pub async fn kube_client() -> kube::Client {
    kubeconfig(); // the clear panic first
    let kubeconfig = kube::config::Kubeconfig::from_env()
        .unwrap_or_else(|e| panic!("cannot read KUBECONFIG: {e}"))
        .unwrap_or_else(|| panic!("KUBECONFIG is not set: {USE_RUN_TESTS}"));
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("bad KUBECONFIG {}: {e}", self::kubeconfig()));
    kube::Client::try_from(config).expect("cannot build a kube client")
}

/// Runs the real `kubectl` against the test cluster and returns its output,
/// whatever the exit status.
pub fn kubectl<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    kubectl_with_stdin(args, "")
}

/// `kubectl` with `stdin` fed to it (for `-f -`).
pub fn kubectl_with_stdin<I, S>(args: I, stdin: &str) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    use std::io::Write;
    let mut cmd = Command::new("kubectl");
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run kubectl (is it on PATH?): {e}"));
    let mut pipe = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_owned();
    // Write from a thread so a large input cannot deadlock against full output pipes.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("kubectl did not run");
    let _ = writer.join();
    out
}

/// `kubectl` that must succeed; returns stdout, panics with the command and
/// stderr otherwise.
pub fn kubectl_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = kubectl(&args);
    assert!(
        out.status.success(),
        "kubectl {:?} failed ({}):\n{}{}",
        args,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl apply --server-side -f -` of a YAML document; panics on failure.
pub fn kubectl_apply(yaml: &str) -> String {
    let out = kubectl_with_stdin(
        [
            "apply",
            "--server-side",
            "--field-manager=dbclaim-e2e",
            "-f",
            "-",
        ],
        yaml,
    );
    assert!(
        out.status.success(),
        "kubectl apply failed:\n{}\n---- manifest ----\n{yaml}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Applies crds/ (server-side) once per test process and waits until every
/// CRD is Established.
pub fn apply_crds() {
    static APPLIED: OnceLock<()> = OnceLock::new();
    APPLIED.get_or_init(|| {
        let dir = repo_root().join("crds");
        let has_yaml = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(Result::ok).any(|e| {
                    e.path()
                        .extension()
                        .is_some_and(|x| x == "yaml" || x == "yml")
                })
            })
            .unwrap_or(false);
        assert!(
            has_yaml,
            "no CRD YAML in {} (generate it with `dbclaim crds`)",
            dir.display()
        );
        let dir = dir.to_str().expect("utf-8 path");
        match conversion_target() {
            // The DatabaseClaim CRD pointed at the plane's conversion webhook,
            // as e2e/cluster installed them (the same field manager, so a no-op).
            Some((url, ca)) => {
                let out = kubectl_with_stdin(
                    [
                        "apply",
                        "--server-side",
                        "--force-conflicts",
                        "--field-manager=dbclaim-e2e",
                        "-f",
                        "-",
                    ],
                    &crds_for_webhook(&url, &ca),
                );
                assert!(
                    out.status.success(),
                    "applying the CRDs failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => {
                kubectl_ok([
                    "apply",
                    "--server-side",
                    "--force-conflicts",
                    "--field-manager=dbclaim-e2e",
                    "-f",
                    dir,
                ]);
            }
        }
        kubectl_ok([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            dir,
        ]);
    });
}

/// `dbclaim crds` with the DatabaseClaim CRD pointed at the conversion
/// webhook at `url` (serving with a certificate of the CA in `ca`).
pub fn crds_for_webhook(url: &str, ca: &str) -> String {
    let out = Command::new(operator::operator_binary())
        .args(["crds", "--conversion-url", url, "--conversion-ca-file", ca])
        .output()
        .unwrap_or_else(|e| panic!("cannot run dbclaim crds: {e}"));
    assert!(
        out.status.success(),
        "dbclaim crds failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The conversion webhook e2e/cluster runs for the plane: (URL, CA file).
pub fn conversion_target() -> Option<(String, String)> {
    let url = std::env::var("DBCLAIM_E2E_CONVERSION_URL").ok()?;
    let ca = std::env::var("DBCLAIM_E2E_CONVERSION_CA").ok()?;
    Some((url, ca))
}

/// Fetches (once, cached by `e2e/fetch-crds`) and applies the cloud
/// operators' real CRDs, once per test process, waiting until they are
/// Established: the API server then validates composed objects against the
/// upstream schemas. Returns the directory holding them.
pub fn apply_cloud_crds() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = Command::new(e2e_script("fetch-crds"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run e2e/fetch-crds: {e}"));
        assert!(
            out.status.success(),
            "e2e/fetch-crds failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let arg = dir.to_str().expect("utf-8 path");
        kubectl_ok([
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=dbclaim-e2e",
            "-f",
            arg,
        ]);
        kubectl_ok([
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            arg,
        ]);
        dir
    })
}

/// A name unique across tests, processes and runs: `<prefix>-<suffix>`, a
/// valid DNS-1123 label (lowercase, at most 63 characters).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // pid, time and a counter: distinct for concurrent processes and reruns.
    let mix = (u64::from(std::process::id()) << 20) ^ (t.as_micros() as u64);
    let suffix = format!("{:06x}{n:x}", mix & 0xff_ffff);
    let mut prefix: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    prefix.truncate(63 - suffix.len() - 1);
    format!("{}-{suffix}", prefix.trim_matches('-'))
}

/// Polls `check` every 250 ms until it returns true; panics after `timeout`
/// naming what was awaited.
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Lines of the form `export NAME=VALUE` in a helper script's output.
pub(crate) fn parse_exports(stdout: &str) -> std::collections::BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
        .collect()
}
