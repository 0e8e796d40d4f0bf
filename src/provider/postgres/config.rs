//! `ProviderConfig`: resolving one into connection parameters, and the
//! check behind its status (the admin can connect and has the privileges).

use kube::{Client, ResourceExt};

use super::Postgres;
use super::server::{self, ConnectParams, ServerError, Tls};
use super::tls::{TlsError, ca_certificates};
use crate::api::common::NamespacedRef;
use crate::api::postgres::{ProviderConfig, SslMode};
use crate::provider::managed::config::{self, ConfigKind, Resolve};
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
    #[error(
        "ProviderConfig \"{config}\" has sslMode {mode} but no caSecretRef: name a Secret whose key ca.crt holds the CA certificates (PEM)"
    )]
    NoCaSecret { config: String, mode: &'static str },
    #[error(
        "Secret \"{namespace}/{name}\" (spec.caSecretRef of ProviderConfig \"{config}\") not found: create it with the key ca.crt holding the CA certificates (PEM) of the server's certificate"
    )]
    CaSecretNotFound {
        config: String,
        namespace: String,
        name: String,
    },
    #[error(
        "Secret \"{namespace}/{name}\" (spec.caSecretRef of ProviderConfig \"{config}\") has no usable key ca.crt: it needs the CA certificates (PEM) of the server's certificate"
    )]
    CaSecretKey {
        config: String,
        namespace: String,
        name: String,
    },
    #[error(
        "Secret \"{namespace}/{name}\" (spec.caSecretRef of ProviderConfig \"{config}\"): {problem}"
    )]
    CaInvalid {
        config: String,
        namespace: String,
        name: String,
        problem: String,
    },
    #[error("ProviderConfig \"{config}\" has port {port}: use a port from 1 to 65535")]
    Port { config: String, port: i64 },
    #[error(transparent)]
    Kube(#[from] config::ReadError),
}

impl Postgres {
    /// ProviderConfig `name` (from the cache) with its admin Secret, read
    /// once per version of the config: the config's check, which runs on
    /// every change of the config and of the Secrets it names, drops it.
    pub async fn resolve(&self, name: &str) -> Result<Resolved, ResolveError> {
        let pc = config::get(&self.client, &self.configs, name, ResolveError::NotFound).await?;
        let version = pc.resource_version().unwrap_or_default();
        let known = {
            let known = self.resolved.lock().unwrap_or_else(|e| e.into_inner());
            known
                .get(name)
                .filter(|(v, _)| *v == version && !version.is_empty())
                .map(|(_, r)| r.clone())
        };
        if let Some(r) = known {
            return Ok(r);
        }
        let resolved = resolve_config(&self.client, &pc).await?;
        self.resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), (version, resolved.clone()));
        Ok(resolved)
    }

    pub fn forget_resolved(&self, name: &str) {
        self.resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
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
    let secret = config::secret(client, &config, &r.namespace, &r.name)
        .await?
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
    let tls = match pc.spec.ssl_mode {
        SslMode::Disable => Tls::Disable,
        SslMode::Prefer => Tls::Prefer,
        SslMode::Require => Tls::Require,
        mode @ (SslMode::VerifyCa | SslMode::VerifyFull) => {
            let r = pc
                .spec
                .ca_secret_ref
                .as_ref()
                .ok_or_else(|| ResolveError::NoCaSecret {
                    config: config.clone(),
                    mode: mode.as_str(),
                })?;
            let cas = read_cas(client, &config, r).await?;
            if mode == SslMode::VerifyCa {
                Tls::VerifyCa(cas)
            } else {
                Tls::VerifyFull(cas)
            }
        }
    };
    Ok(Resolved {
        name: config.clone(),
        params: ConnectParams {
            host: pc.spec.host.clone(),
            port,
            tls,
            user,
            password,
        },
    })
}

/// The certificates in `ca.crt` of the Secret `r`.
async fn read_cas(
    client: &Client,
    config: &str,
    r: &NamespacedRef,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, ResolveError> {
    let secret = config::secret(client, config, &r.namespace, &r.name)
        .await?
        .ok_or_else(|| ResolveError::CaSecretNotFound {
            config: config.to_string(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        })?;
    let pem = secret_value(&secret, "ca.crt").ok_or_else(|| ResolveError::CaSecretKey {
        config: config.to_string(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
    })?;
    ca_certificates(pem.as_bytes()).map_err(|e: TlsError| ResolveError::CaInvalid {
        config: config.to_string(),
        namespace: r.namespace.clone(),
        name: r.name.clone(),
        problem: e.to_string(),
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
    fn uses_secret(&self, namespace: &str, name: &str) -> bool {
        std::iter::once(&self.spec.credentials_secret_ref)
            .chain(self.spec.ca_secret_ref.as_ref())
            .any(|r| r.namespace == namespace && r.name == name)
    }
}

impl Resolve<ProviderConfig> for Postgres {
    type Error = Error;
    const VALID: &'static str = "Connected";
    const INVALID: &'static str = "ProviderError";

    /// Resolves `pc`, connects (through the shared cache) and checks the
    /// admin's privileges.
    async fn check(&self, pc: &ProviderConfig) -> Result<String, Error> {
        // A check runs on every change of the config and of its Secrets:
        // what Databases resolved from the config before is dropped.
        self.forget_resolved(&pc.name_any());
        let resolved = resolve_config(&self.client, pc).await?;
        let admin = self.pool.admin(&resolved.name, &resolved.params).await;
        let checked = match admin {
            Ok(admin) => server::admin_privileges(&admin).await,
            Err(e) => Err(e),
        };
        self.metrics
            .provider_request("postgres", "CheckAdmin", checked.is_ok());
        let privileges = self.pool.checked(&resolved.name, checked).await?;
        if let Some(missing) = privileges.missing(&resolved.params.user) {
            return Err(Error::Privileges(missing));
        }
        // prefer falls back to plain text when the server offers no TLS:
        // ask the server what this session got.
        let encrypted = match resolved.params.tls {
            Tls::Disable => false,
            Tls::Prefer => {
                let encrypted = admin_session_encrypted(&self.pool, &resolved).await;
                self.pool.checked(&resolved.name, encrypted).await?
            }
            Tls::Require | Tls::VerifyCa(_) | Tls::VerifyFull(_) => true,
        };
        Ok(ready_message(&resolved.params, encrypted))
    }
}

/// Whether the cached admin session runs over TLS.
async fn admin_session_encrypted(
    pool: &server::Pool,
    resolved: &Resolved,
) -> Result<bool, ServerError> {
    let admin = pool.admin(&resolved.name, &resolved.params).await?;
    let row = admin
        .query_opt(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| ServerError::query("read whether the admin session is encrypted", &e))?;
    Ok(row.is_some_and(|r| r.get(0)))
}

/// The Ready message of a usable ProviderConfig: where, as whom, and how
/// the connection is protected (a plain one says so, it is the weak spot).
fn ready_message(params: &ConnectParams, encrypted: bool) -> String {
    let mode = params.tls.mode().as_str();
    let how = match (&params.tls, encrypted) {
        (Tls::Disable, _) => format!(
            "without TLS (sslMode {mode}): the admin password and all data travel unencrypted"
        ),
        (_, false) => format!(
            "without TLS, the server offers none (sslMode {mode}): the admin password and all data travel unencrypted"
        ),
        (Tls::Prefer | Tls::Require, true) => {
            format!("over TLS, the server's certificate not checked (sslMode {mode})")
        }
        (Tls::VerifyCa(_), true) => {
            format!("over TLS, the certificate checked against caSecretRef (sslMode {mode})")
        }
        (Tls::VerifyFull(_), true) => format!(
            "over TLS, the certificate and host name checked against caSecretRef (sslMode {mode})"
        ),
    };
    format!(
        "connected to {} as \"{}\" {how}",
        params.address(),
        params.user
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
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

    fn params(tls: Tls) -> ConnectParams {
        ConnectParams {
            host: "pg.example".into(),
            port: 5432,
            tls,
            user: "admin".into(),
            password: "admin-pw".into(),
        }
    }

    #[test]
    fn ready_says_how_the_connection_is_protected() {
        let plain = "the admin password and all data travel unencrypted";
        let m = ready_message(&params(Tls::Disable), false);
        assert_eq!(
            m,
            format!(
                "connected to pg.example:5432 as \"admin\" without TLS (sslMode disable): {plain}"
            )
        );
        let m = ready_message(&params(Tls::Prefer), false);
        assert!(
            m.contains("without TLS, the server offers none (sslMode prefer)") && m.contains(plain),
            "{m}"
        );
        let m = ready_message(&params(Tls::Prefer), true);
        assert!(m.ends_with("over TLS, the server's certificate not checked (sslMode prefer)"));
        let m = ready_message(&params(Tls::Require), true);
        assert!(m.ends_with("not checked (sslMode require)"), "{m}");
        let m = ready_message(&params(Tls::VerifyCa(Vec::new())), true);
        assert!(
            m.ends_with("checked against caSecretRef (sslMode verify-ca)"),
            "{m}"
        );
        let m = ready_message(&params(Tls::VerifyFull(Vec::new())), true);
        assert!(
            m.ends_with(
                "certificate and host name checked against caSecretRef (sslMode verify-full)"
            ),
            "{m}"
        );
        for tls in [Tls::Prefer, Tls::Require, Tls::VerifyFull(Vec::new())] {
            assert!(!ready_message(&params(tls), true).contains("admin-pw"));
        }
    }

    #[test]
    fn the_ca_secret_is_watched_like_the_credentials() {
        let pc: ProviderConfig = serde_json::from_value(serde_json::json!({
            "apiVersion": "postgres.dbclaim.io/v1alpha1",
            "kind": "ProviderConfig",
            "metadata": {"name": "default"},
            "spec": {
                "host": "pg.example",
                "sslMode": "verify-full",
                "caSecretRef": {"namespace": "ops", "name": "pg-ca"},
                "credentialsSecretRef": {"namespace": "ops", "name": "pg-admin"}
            }
        }))
        .expect("ProviderConfig");
        assert_eq!(pc.spec.ssl_mode, SslMode::VerifyFull);
        assert!(pc.uses_secret("ops", "pg-admin"));
        assert!(pc.uses_secret("ops", "pg-ca"));
        assert!(!pc.uses_secret("other", "pg-ca"));
        assert!(!pc.uses_secret("ops", "other"));
        let mut no_ca = pc.clone();
        no_ca.spec.ca_secret_ref = None;
        assert!(!no_ca.uses_secret("ops", "pg-ca"));
        for (mode, text) in [
            (SslMode::Disable, "disable"),
            (SslMode::Prefer, "prefer"),
            (SslMode::Require, "require"),
            (SslMode::VerifyCa, "verify-ca"),
            (SslMode::VerifyFull, "verify-full"),
        ] {
            assert_eq!(mode.as_str(), text);
            assert_eq!(
                serde_json::to_value(mode).ok(),
                Some(serde_json::json!(text))
            );
        }
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
