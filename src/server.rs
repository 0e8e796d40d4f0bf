//! HTTP endpoints: `/metrics` on the metrics address, `/healthz` and
//! `/readyz` on the probe address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;

/// Ready once the caches are synced (and, with leader election, whether or
/// not this replica leads) and the conversion webhook serves: the API server
/// reads every DatabaseClaim through it.
#[derive(Clone, Default)]
pub struct Readiness {
    caches: Arc<AtomicBool>,
    webhook: Arc<AtomicBool>,
}

impl Readiness {
    pub fn set_ready(&self) {
        self.caches.store(true, Ordering::Relaxed);
    }
    pub fn set_webhook_serving(&self) {
        self.webhook.store(true, Ordering::Relaxed);
    }
    pub fn is_ready(&self) -> bool {
        self.caches.load(Ordering::Relaxed) && self.webhook.load(Ordering::Relaxed)
    }
    /// What /readyz says while not ready.
    fn waiting_for(&self) -> &'static str {
        match (
            self.caches.load(Ordering::Relaxed),
            self.webhook.load(Ordering::Relaxed),
        ) {
            (false, false) => "caches not synced, conversion webhook not serving",
            (false, true) => "caches not synced",
            _ => "conversion webhook not serving",
        }
    }
}

pub async fn serve_metrics(addr: SocketAddr, metrics: Metrics) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let body = metrics.encode();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}

pub async fn serve_probes(addr: SocketAddr, readiness: Readiness) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = readiness.is_ready();
                let waiting = readiness.waiting_for();
                async move {
                    if ready {
                        (StatusCode::OK, "ok").into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, waiting).into_response()
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
