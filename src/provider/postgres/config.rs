//! `ProviderConfig`: resolving one into connection parameters, and the
//! check behind its status (the admin can connect and has the privileges).

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use super::Postgres;
use super::server::{self, ConnectParams, ServerError};
use crate::api::common::ConfigStatus;
use crate::api::postgres::ProviderConfig;
use crate::provider::managed::config::{ConfigKind, Resolve};
use crate::provider::managed::secret::value as secret_value;

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
pub async fn resolve(client: &Client, name: &str) -> Result<Resolved, ResolveError> {
    let api: Api<ProviderConfig> = Api::all(client.clone());
    let pc = api
        .get_opt(name)
        .await
        .map_err(|source| ResolveError::Kube {
            config: name.to_string(),
            source,
        })?
        .ok_or_else(|| ResolveError::NotFound(name.to_string()))?;
    resolve_config(client, &pc).await
}

/// Reads the admin Secret of `pc`.
pub async fn resolve_config(
    client: &Client,
    pc: &ProviderConfig,
) -> Result<Resolved, ResolveError> {
    let config = pc.name_any();
    let r = &pc.spec.credentials_secret_ref;
    let port = u16::try_from(pc.spec.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| ResolveError::Port {
            config: config.clone(),
            port: pc.spec.port,
        })?;
    let secret = Api::<Secret>::namespaced(client.clone(), &r.namespace)
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

/// Why a ProviderConfig check failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error("{0}")]
    Privileges(String),
}

impl ConfigKind for ProviderConfig {
    fn config_status(&self) -> Option<&ConfigStatus> {
        self.status.as_ref()
    }

    fn uses_secret(&self, namespace: &str, name: &str) -> bool {
        let r = &self.spec.credentials_secret_ref;
        r.namespace == namespace && r.name == name
    }
}

impl Resolve<ProviderConfig> for Postgres {
    type Error = Error;
    const VALID: &'static str = "Connected";
    const INVALID: &'static str = "ProviderError";

    /// Resolves `pc`, connects (through the shared cache) and checks the
    /// admin's privileges.
    async fn check(&self, pc: &ProviderConfig) -> Result<String, Error> {
        let resolved = resolve_config(&self.client, pc).await?;
        let admin = self.pool.admin(&resolved.name, &resolved.params).await;
        let checked = match admin {
            Ok(admin) => server::admin_privileges(&admin).await,
            Err(e) => Err(e),
        };
        self.metrics
            .provider_request("postgres", "CheckAdmin", checked.is_ok());
        let privileges = match checked {
            Ok(p) => p,
            Err(e) => {
                if e.connection_lost() {
                    self.pool.forget(&resolved.name).await;
                }
                return Err(e.into());
            }
        };
        if let Some(missing) = privileges.missing(&resolved.params.user) {
            return Err(Error::Privileges(missing));
        }
        Ok(format!(
            "connected to {} as \"{}\"",
            resolved.params.address(),
            resolved.params.user
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

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
