//! `ProviderConfig`: resolving one into connection parameters, and its
//! controller, which checks that the admin can connect and says so in status.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, Resource, ResourceExt};
use tracing::Instrument;

use super::server::{self, ConnectParams, ServerError};
use super::{Context, MANAGER};
use crate::api::common::ConfigStatus;
use crate::api::postgres::ProviderConfig;
use crate::conditions::{self, Cond, ReadyReason, SyncedReason};

/// How often a healthy ProviderConfig is checked again.
const RESYNC: Duration = Duration::from_secs(600);

/// A ProviderConfig made usable.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub name: String,
    pub params: ConnectParams,
}

/// Why a ProviderConfig cannot be used. Messages say what to change.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "ProviderConfig \"{0}\" not found: create a postgres.dbclaim.io/v1alpha1 ProviderConfig named \"{0}\", or point spec.providerConfigRef.name at an existing one"
    )]
    NotFound(String),
    #[error(
        "Secret \"{namespace}/{name}\" (spec.credentialsSecretRef of ProviderConfig \"{config}\") not found: create it with the keys username and password of the admin role"
    )]
    SecretNotFound {
        config: String,
        namespace: String,
        name: String,
    },
    #[error(
        "Secret \"{namespace}/{name}\" (spec.credentialsSecretRef of ProviderConfig \"{config}\") has no usable key \"{key}\": it needs non-empty UTF-8 values for username and password"
    )]
    SecretKey {
        config: String,
        namespace: String,
        name: String,
        key: &'static str,
    },
    #[error("ProviderConfig \"{config}\" has port {port}: use a port from 1 to 65535")]
    Port { config: String, port: i64 },
    #[error("cannot read ProviderConfig \"{config}\" or its Secret: {source}")]
    Kube { config: String, source: kube::Error },
}

/// Reads ProviderConfig `name` and its admin Secret.
pub async fn resolve(ctx: &Context, name: &str) -> Result<Resolved, ResolveError> {
    let api: Api<ProviderConfig> = Api::all(ctx.client.clone());
    let pc = api
        .get_opt(name)
        .await
        .map_err(|source| ResolveError::Kube {
            config: name.to_string(),
            source,
        })?
        .ok_or_else(|| ResolveError::NotFound(name.to_string()))?;
    resolve_config(ctx, &pc).await
}

/// Reads the admin Secret of `pc`.
pub async fn resolve_config(ctx: &Context, pc: &ProviderConfig) -> Result<Resolved, ResolveError> {
    let config = pc.name_any();
    let r = &pc.spec.credentials_secret_ref;
    let port = u16::try_from(pc.spec.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| ResolveError::Port {
            config: config.clone(),
            port: pc.spec.port,
        })?;
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), &r.namespace)
        .get_opt(&r.name)
        .await
        .map_err(|source| ResolveError::Kube {
            config: config.clone(),
            source,
        })?
        .ok_or_else(|| ResolveError::SecretNotFound {
            config: config.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        })?;
    let key = |key: &'static str| {
        secret_value(&secret, key).ok_or_else(|| ResolveError::SecretKey {
            config: config.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            key,
        })
    };
    let user = key("username")?;
    let password = key("password")?;
    Ok(Resolved {
        name: config.clone(),
        params: ConnectParams {
            host: pc.spec.host.clone(),
            port,
            ssl_mode: pc.spec.ssl_mode,
            user,
            password,
        },
    })
}

/// A non-empty UTF-8 value of a Secret (from `data`, or `stringData` as sent).
pub fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|b| String::from_utf8(b.0.clone()).ok());
    let from_string = || {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .cloned()
    };
    from_data.or_else(from_string).filter(|v| !v.is_empty())
}

/// Errors of the ProviderConfig controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("{0}")]
    Privileges(String),
    #[error("cannot write the status of ProviderConfig: {0}")]
    Status(#[source] kube::Error),
}

pub async fn reconcile(pc: Arc<ProviderConfig>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = pc.name_any();
    let span = tracing::info_span!("reconcile", kind = "ProviderConfig", name = %name);
    async move {
        let key = format!("ProviderConfig/{name}");
        let checked = check(&pc, &ctx).await;
        let (ready, synced) = match &checked {
            Ok(r) => (
                Cond::ready(
                    true,
                    ReadyReason::Available,
                    format!(
                        "connected to {} as \"{}\"",
                        r.params.address(),
                        r.params.user
                    ),
                ),
                Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
            ),
            Err(e) => (
                Cond::ready(
                    false,
                    ReadyReason::Unavailable,
                    "cannot use this server: see the Synced condition",
                ),
                Cond::synced(false, SyncedReason::ProviderError, e.to_string()),
            ),
        };
        let old = pc.status.clone().unwrap_or_default();
        let new = next_status(
            &old,
            pc.meta().generation,
            &ready,
            &synced,
            Timestamp::now(),
        );
        if new != old {
            let api: Api<ProviderConfig> = Api::all(ctx.client.clone());
            let patch = serde_json::json!({
                "apiVersion": ProviderConfig::api_version(&()),
                "kind": ProviderConfig::kind(&()),
                "status": new,
            });
            api.patch_status(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(Error::Status)?;
            if transitioned(&old, &new) {
                match &checked {
                    Ok(r) => {
                        let note = format!(
                            "connected to {} as \"{}\"",
                            r.params.address(),
                            r.params.user
                        );
                        ctx.event(pc.as_ref(), EventType::Normal, "Connected", note)
                            .await
                    }
                    Err(e) => {
                        ctx.event(
                            pc.as_ref(),
                            EventType::Warning,
                            "ProviderError",
                            e.to_string(),
                        )
                        .await
                    }
                }
            }
        }
        match checked {
            Ok(_) => {
                ctx.backoff.reset(&key);
                Ok(super::resync(RESYNC))
            }
            Err(e) => Err(e),
        }
    }
    .instrument(span)
    .await
}

/// Resolves `pc`, connects (through the shared cache) and checks the admin's privileges.
async fn check(pc: &ProviderConfig, ctx: &Context) -> Result<Resolved, Error> {
    let resolved = resolve_config(ctx, pc).await?;
    let admin = ctx.pool.admin(&resolved.name, &resolved.params).await;
    let checked = match admin {
        Ok(admin) => server::admin_privileges(&admin).await,
        Err(e) => Err(e),
    };
    ctx.metrics
        .provider_request("postgres", "CheckAdmin", checked.is_ok());
    let privileges = match checked {
        Ok(p) => p,
        Err(e) => {
            if e.connection_lost() {
                ctx.pool.forget(&resolved.name).await;
            }
            return Err(e.into());
        }
    };
    if let Some(missing) = privileges.missing(&resolved.params.user) {
        return Err(Error::Privileges(missing));
    }
    Ok(resolved)
}

pub fn error_policy(pc: Arc<ProviderConfig>, _error: &Error, ctx: Arc<Context>) -> Action {
    Action::requeue(
        ctx.backoff
            .next(&format!("ProviderConfig/{}", pc.name_any())),
    )
}

/// `old` with the two conditions set: equal to `old` when nothing changed.
pub fn next_status(
    old: &ConfigStatus,
    generation: Option<i64>,
    ready: &Cond,
    synced: &Cond,
    now: Timestamp,
) -> ConfigStatus {
    let mut new = old.clone();
    conditions::set(&mut new.conditions, ready, generation, now);
    conditions::set(&mut new.conditions, synced, generation, now);
    new.observed_generation = generation;
    new
}

/// Whether the Synced condition changed (status, reason or message).
fn transitioned(old: &ConfigStatus, new: &ConfigStatus) -> bool {
    let pick = |s: &ConfigStatus| {
        conditions::find(&s.conditions, conditions::ConditionType::Synced)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    pick(old) != pick(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[test]
    fn status_is_stable_when_nothing_changes() {
        let t0 = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let t1 = Timestamp::from_second(2_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let ready = Cond::ready(true, ReadyReason::Available, "connected");
        let synced = Cond::synced(true, SyncedReason::ReconcileSuccess, "");
        let first = next_status(&ConfigStatus::default(), Some(1), &ready, &synced, t0);
        assert_eq!(first.conditions.len(), 2);
        assert!(transitioned(&ConfigStatus::default(), &first));
        let again = next_status(&first, Some(1), &ready, &synced, t1);
        assert_eq!(again, first);
        assert!(!transitioned(&first, &again));
        let failed = next_status(
            &first,
            Some(1),
            &ready,
            &Cond::synced(false, SyncedReason::ProviderError, "x"),
            t1,
        );
        assert!(transitioned(&first, &failed));
    }

    #[test]
    fn secret_values() {
        let mut data = BTreeMap::new();
        data.insert("username".to_string(), ByteString(b"admin".to_vec()));
        data.insert("password".to_string(), ByteString(Vec::new()));
        data.insert("bad".to_string(), ByteString(vec![0xff, 0xfe]));
        let s = Secret {
            data: Some(data),
            ..Secret::default()
        };
        assert_eq!(secret_value(&s, "username").as_deref(), Some("admin"));
        assert_eq!(secret_value(&s, "password"), None);
        assert_eq!(secret_value(&s, "bad"), None);
        assert_eq!(secret_value(&s, "missing"), None);
    }

    #[test]
    fn messages_say_what_to_do() {
        let e = ResolveError::NotFound("default".into());
        assert!(
            e.to_string()
                .starts_with("ProviderConfig \"default\" not found: create")
        );
        let e = ResolveError::SecretKey {
            config: "c".into(),
            namespace: "ns".into(),
            name: "s".into(),
            key: "password",
        };
        assert!(e.to_string().contains("\"ns/s\""));
    }
}
