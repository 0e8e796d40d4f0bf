//! Storage migration of DatabaseClaims: once the CRD stores `v1beta1`,
//! objects written before stay encoded as `v1alpha1` in etcd until written
//! again. The leader rewrites each once (an empty merge patch: the API
//! server re-encodes the object in the storage version; spec, status and
//! generation stay as they are, so neither GitOps tools nor the claim
//! controller see a change), then trims the CRD's `status.storedVersions`
//! to the storage version, which lets a later release stop serving
//! `v1alpha1`. Nothing composed is written.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::api::{CLAIM_STORAGE_VERSION, DatabaseClaim};

pub const CLAIM_CRD: &str = "databaseclaims.dbclaim.io";
/// Claims per list page.
const PAGE: u32 = 500;

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `storedVersions` already is the storage version alone.
    Done,
    /// Every claim rewritten; `storedVersions` trimmed.
    Migrated { claims: usize },
    /// The installed CRD stores another version (an older CRD): nothing to do.
    NotStorage(String),
}

/// The version the CRD stores objects in.
fn storage_version(crd: &CustomResourceDefinition) -> Option<&str> {
    crd.spec
        .versions
        .iter()
        .find(|v| v.storage)
        .map(|v| v.name.as_str())
}

pub async fn migrate_claims(client: &Client) -> Result<Outcome, kube::Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds.get(CLAIM_CRD).await?;
    let storage = storage_version(&crd).unwrap_or_default().to_string();
    if storage != CLAIM_STORAGE_VERSION {
        return Ok(Outcome::NotStorage(storage));
    }
    let stored = crd
        .status
        .as_ref()
        .and_then(|s| s.stored_versions.clone())
        .unwrap_or_default();
    if stored == [CLAIM_STORAGE_VERSION] {
        return Ok(Outcome::Done);
    }
    info!(stored_versions = ?stored, "migrating DatabaseClaims to the storage version {CLAIM_STORAGE_VERSION}");
    let claims: Api<DatabaseClaim> = Api::all(client.clone());
    let mut params = ListParams::default().limit(PAGE);
    let mut count = 0;
    loop {
        let page = claims.list_metadata(&params).await?;
        for claim in &page.items {
            let (Some(ns), name) = (claim.namespace(), claim.name_any()) else {
                continue;
            };
            let api: Api<DatabaseClaim> = Api::namespaced(client.clone(), &ns);
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(json!({})))
                .await
            {
                Ok(_) => count += 1,
                // Deleted meanwhile: nothing left to migrate.
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    crds.patch_status(
        CLAIM_CRD,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"storedVersions": [CLAIM_STORAGE_VERSION]}})),
    )
    .await?;
    info!(
        claims = count,
        "DatabaseClaims migrated; storedVersions is [{CLAIM_STORAGE_VERSION}]"
    );
    Ok(Outcome::Migrated { claims: count })
}

/// Migrates once, retrying every `retry` on failure; then stays pending so
/// it can sit in the operator's select beside the controllers.
pub async fn run(client: Client, retry: Duration) {
    loop {
        match migrate_claims(&client).await {
            Ok(Outcome::NotStorage(v)) => {
                info!(storage_version = %v, "the DatabaseClaim CRD does not store {CLAIM_STORAGE_VERSION}: no storage migration");
                break;
            }
            Ok(_) => break,
            Err(e) => warn!(error = %e, "storage migration of DatabaseClaims failed; retrying"),
        }
        tokio::time::sleep(retry).await;
    }
    std::future::pending::<()>().await
}
