//! The custom resources users see, as fixed by the API contract.
//!
//! Types only: behaviour lives in the engine, the reconcilers and the providers.

// kube's `printcolumn(..., type_ = "string", ...)` repeats a key clippy reads as a duplicate attribute.
#![allow(clippy::duplicated_attributes)]

pub mod aws;
pub mod claim;
pub mod common;
pub mod composition;
pub mod policy;
pub mod postgres;
pub mod revision;
pub mod v1beta1;

pub use claim::{DatabaseClaim, DatabaseClaimSpec, DatabaseClaimStatus, Engine, Size};
pub use common::{DeletionPolicy, NameRef};
pub use composition::{Composition, CompositionSpec};
pub use policy::{ClaimPolicy, ClaimPolicySpec};
pub use revision::{CompositionRevision, CompositionRevisionSpec};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The category every dbclaim kind is listed under (`kubectl get dbclaim`).
pub const CATEGORY: &str = "dbclaim";

/// Every CRD dbclaim owns, in a stable order (the order `dbclaim crds` prints).
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        ClaimPolicy::crd(),
        Composition::crd(),
        CompositionRevision::crd(),
        database_claim_crd(),
        aws::ProviderConfig::crd(),
        aws::RDSInstance::crd(),
        postgres::Database::crd(),
        postgres::ProviderConfig::crd(),
    ]
}

/// The version `dbclaim crds` stores DatabaseClaims in.
pub const CLAIM_STORAGE_VERSION: &str = "v1beta1";

/// Where the checked-in CRD sends conversion reviews: the chart's webhook
/// Service at its default name (the chart and the e2e harness set their own).
pub const WEBHOOK_SERVICE: (&str, &str) = ("dbclaim-system", "dbclaim-webhook");
/// The conversion webhook's path on `--webhook-bind-address`.
pub const CONVERSION_PATH: &str = "/convert";

/// The DatabaseClaim CRD: both versions, v1beta1 stored, converted by the
/// operator's webhook.
pub fn database_claim_crd() -> CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceConversion, ServiceReference, WebhookClientConfig, WebhookConversion,
    };
    // merge_crds fails only when the CRDs differ in kind, group or scope,
    // which the two derives above fix to be equal.
    let mut crd = kube::core::crd::merge_crds(
        vec![DatabaseClaim::crd(), v1beta1::DatabaseClaim::crd()],
        CLAIM_STORAGE_VERSION,
    )
    .unwrap_or_else(|_| v1beta1::DatabaseClaim::crd());
    crd.spec.conversion = Some(CustomResourceConversion {
        strategy: "Webhook".into(),
        webhook: Some(WebhookConversion {
            conversion_review_versions: vec!["v1".into()],
            client_config: Some(WebhookClientConfig {
                service: Some(ServiceReference {
                    namespace: WEBHOOK_SERVICE.0.into(),
                    name: WEBHOOK_SERVICE.1.into(),
                    path: Some(CONVERSION_PATH.into()),
                    port: Some(443),
                }),
                ..Default::default()
            }),
        }),
    });
    crd
}

/// `crd` with its conversion webhook reached at `url` and trusted through
/// `ca_bundle` (PEM): how a plane without the chart (the e2e harness, the
/// demo) points the API server at a webhook on 127.0.0.1.
pub fn with_conversion_url(
    mut crd: CustomResourceDefinition,
    url: &str,
    ca_bundle: &[u8],
) -> CustomResourceDefinition {
    use k8s_openapi::ByteString;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::WebhookClientConfig;
    if let Some(webhook) = crd
        .spec
        .conversion
        .as_mut()
        .and_then(|c| c.webhook.as_mut())
    {
        webhook.client_config = Some(WebhookClientConfig {
            url: Some(url.into()),
            ca_bundle: Some(ByteString(ca_bundle.to_vec())),
            service: None,
        });
    }
    crd
}
