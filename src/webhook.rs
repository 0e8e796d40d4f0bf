//! The DatabaseClaim conversion webhook: HTTPS on `--webhook-bind-address`,
//! `ConversionReview`s at [`crate::api::CONVERSION_PATH`], converted by
//! [`crate::conversion`]. The certificate and key are `tls.crt` and
//! `tls.key` in `--webhook-cert-dir` (a mounted Secret, as cert-manager and
//! the chart write it), re-read every few seconds so a renewed certificate
//! is served without a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";
/// How often the certificate files are compared with the served ones.
const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// A client that does not finish its TLS handshake in this time is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate")]
    NoCertificate { path: String },
    #[error("{path}: no usable private key: {message}")]
    Key { path: String, message: String },
    #[error("cannot serve the conversion webhook on {addr}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
}

/// The certificate files' bytes and the key built from them.
struct Loaded {
    files: (Vec<u8>, Vec<u8>),
    key: Arc<CertifiedKey>,
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.display().to_string(),
        source,
    })
}

fn load(dir: &Path) -> Result<Loaded, Error> {
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    let (cert_pem, key_pem) = (read(&cert_path)?, read(&key_path)?);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(Error::NoCertificate {
            path: cert_path.display().to_string(),
        });
    }
    let key_error = |message: String| Error::Key {
        path: key_path.display().to_string(),
        message,
    };
    let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| key_error(e.to_string()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| key_error(e.to_string()))?;
    Ok(Loaded {
        files: (cert_pem, key_pem),
        key: Arc::new(CertifiedKey::new(chain, signing)),
    })
}

/// An error with its causes, for one log line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out = format!("{out}: {cause}");
        next = cause.source();
    }
    out
}

/// Serves whichever certificate was loaded last.
#[derive(Debug)]
struct Resolver(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|k| Arc::clone(&k))
    }
}

/// Loads the certificate, waiting (and saying why) while it is missing or
/// bad: cert-manager may issue it after the pod starts.
async fn first_load(dir: &Path) -> Loaded {
    let mut last_problem = String::new();
    loop {
        match load(dir) {
            Ok(l) => return l,
            Err(e) => {
                let problem = chain(&e);
                if problem != last_problem {
                    warn!(error = %problem, "conversion webhook waits for its certificate");
                    last_problem = problem;
                }
            }
        }
        tokio::time::sleep(RELOAD_EVERY).await;
    }
}

/// Re-reads the files every [`RELOAD_EVERY`]; a changed, valid pair
/// replaces the served one (a half-written pair is retried next time).
async fn reload(dir: PathBuf, resolver: Arc<Resolver>, mut files: (Vec<u8>, Vec<u8>)) {
    loop {
        tokio::time::sleep(RELOAD_EVERY).await;
        let current = (
            std::fs::read(dir.join(CERT_FILE)).unwrap_or_default(),
            std::fs::read(dir.join(KEY_FILE)).unwrap_or_default(),
        );
        if current == files {
            continue;
        }
        match load(&dir) {
            Ok(l) => {
                if let Ok(mut k) = resolver.0.write() {
                    *k = l.key;
                }
                files = l.files;
                info!("conversion webhook reloaded its certificate");
            }
            Err(e) => debug!(error = %chain(&e), "certificate files changed but do not load yet"),
        }
    }
}

/// TLS connections, handshaken off the accept loop so one slow client does
/// not hold up the others.
struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl TlsListener {
    fn new(tcp: TcpListener, acceptor: TlsAcceptor, local: SocketAddr) -> Self {
        let (tx, rx) = mpsc::channel(64);
        let accept_task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        debug!(error = %e, "webhook accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "webhook TLS handshake failed"),
                        Err(_) => debug!(%peer, "webhook TLS handshake timed out"),
                    }
                });
            }
        });
        Self {
            rx,
            local,
            accept_task,
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task only ends when aborted, with the listener.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn convert(body: Bytes) -> axum::response::Response {
    let review = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("not a ConversionReview: {e}"),
            )
                .into_response();
        }
    };
    match serde_json::to_vec(&crate::conversion::review(review)) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Binds `addr` (an error at once when it cannot), waits for the
/// certificate, then calls `serving` with the bound address and serves
/// until dropped.
pub async fn serve(
    addr: SocketAddr,
    cert_dir: PathBuf,
    serving: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let local = tcp
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let loaded = first_load(&cert_dir).await;
    let resolver = Arc::new(Resolver(RwLock::new(loaded.key)));
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let listener = TlsListener::new(tcp, TlsAcceptor::from(Arc::new(config)), local);
    let reloader = tokio::spawn(reload(cert_dir, resolver, loaded.files));
    let app = Router::new().route(crate::api::CONVERSION_PATH, post(convert));
    info!(addr = %local, "conversion webhook serving");
    serving(local);
    let served = axum::serve(listener, app).await;
    reloader.abort();
    served.map_err(|source| Error::Bind { addr, source })
}

/// `dbclaim webhook`: the conversion webhook alone (the e2e harness runs one
/// per control plane, so the many operators its tests start need none).
pub fn run_blocking(addr: SocketAddr, cert_dir: PathBuf) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::Bind { addr, source })?;
    runtime.block_on(async {
        tokio::select! {
            r = serve(addr, cert_dir, |_| {}) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

/// The CA file beside the serving pair (cert-manager's and the chart's Secret
/// both carry it): the bundle the API server trusts the webhook by.
pub const CA_FILE: &str = "ca.crt";

/// The Service the API server reaches the webhook through: `NAMESPACE/NAME`.
pub fn parse_service(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_string(), name.to_string()))
        }
        _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
    }
}

/// The DatabaseClaim CRD's conversion as it should be: through `service`
/// on port 443, trusting `ca`.
fn conversion_patch(service: &(String, String), ca: &[u8]) -> serde_json::Value {
    use base64::Engine as _;
    serde_json::json!({"spec": {"conversion": {
        "strategy": "Webhook",
        "webhook": {
            "conversionReviewVersions": ["v1"],
            "clientConfig": {
                "service": {
                    "namespace": service.0, "name": service.1,
                    "path": crate::api::CONVERSION_PATH, "port": 443,
                },
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca),
            },
        },
    }}})
}

/// Points the DatabaseClaim CRD's conversion at `service` with the CA in
/// `cert_dir`: at start, whenever the CA file changes, and every minute (a
/// `helm upgrade` re-applies the chart's CRD with the default Service);
/// writes only when the CRD says otherwise (quiet at rest). The CRD ships in
/// the chart's `crds/` (which Helm never templates), so the running
/// operator, which holds the CA, wires it.
pub async fn inject_ca(client: kube::Client, service: (String, String), cert_dir: PathBuf) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Api, Patch, PatchParams};
    let crds: Api<CustomResourceDefinition> = Api::all(client);
    let mut done: Option<Vec<u8>> = None;
    let mut last_check = tokio::time::Instant::now();
    loop {
        let ca = std::fs::read(cert_dir.join(CA_FILE)).unwrap_or_default();
        if last_check.elapsed() >= Duration::from_secs(60) {
            done = None;
        }
        if !ca.is_empty() && done.as_ref() != Some(&ca) {
            last_check = tokio::time::Instant::now();
            let want = conversion_patch(&service, &ca);
            let result = match crds.get(crate::migration::CLAIM_CRD).await {
                Ok(crd) => {
                    let have = serde_json::to_value(&crd.spec.conversion).unwrap_or_default();
                    if have == want["spec"]["conversion"] {
                        Ok(())
                    } else {
                        crds.patch(
                            crate::migration::CLAIM_CRD,
                            &PatchParams::default(),
                            &Patch::Merge(&want),
                        )
                        .await
                        .map(|_| info!(service = %format!("{}/{}", service.0, service.1), "DatabaseClaim conversion wired to this webhook"))
                    }
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => done = Some(ca),
                Err(e) => {
                    warn!(error = %e, "cannot point the DatabaseClaim CRD at the conversion webhook; retrying")
                }
            }
        }
        tokio::time::sleep(RELOAD_EVERY * 5).await;
    }
}
