//! The aws `ProviderConfig`: resolving one into client [`Settings`], the
//! client cache, and its controller, which reports in status whether the
//! config is usable.

use crate::controller::cache::Cache;
use kube::{Client, ResourceExt};

use super::Aws;
use super::credentials::{self, ProfileError};
use super::rds::{CredentialSource, Rds, Settings};
use crate::api::aws::{CredentialsSource, ProviderConfig};

use crate::provider::managed::config::{self, ConfigKind, Resolve};
use crate::provider::managed::secret::value as secret_value;

/// A ProviderConfig made usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub name: String,
    pub settings: Settings,
    /// Changes whenever the ProviderConfig or its Secret changes.
    pub version: String,
}

/// Why a ProviderConfig cannot be used. Messages say what to change and
/// never contain a secret.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "ProviderConfig \"{0}\" not found: create an aws.dbclaim.io/v1alpha1 ProviderConfig named \"{0}\", or point spec.providerConfigRef.name at an existing one"
    )]
    NotFound(String),
    #[error(
        "ProviderConfig \"{0}\" has credentials.source Secret but no credentials.secretRef: name the Secret (namespace, name, key) that holds the AWS credentials profile"
    )]
    NoSecretRef(String),
    #[error(
        "Secret \"{namespace}/{name}\" (credentials of ProviderConfig \"{config}\") not found: create it with key \"{key}\" holding an AWS shared-credentials profile"
    )]
    SecretNotFound {
        config: String,
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "Secret \"{namespace}/{name}\" (credentials of ProviderConfig \"{config}\") has no key \"{key}\": put an AWS shared-credentials profile under that key"
    )]
    SecretKey {
        config: String,
        namespace: String,
        name: String,
        key: String,
    },
    #[error(
        "the credentials in Secret \"{namespace}/{name}\" key \"{key}\" (ProviderConfig \"{config}\") are not a usable AWS profile: {source}"
    )]
    Profile {
        config: String,
        namespace: String,
        name: String,
        key: String,
        source: ProfileError,
    },
    #[error("ProviderConfig \"{config}\" has endpoint \"{endpoint}\": {why}")]
    Endpoint {
        config: String,
        endpoint: String,
        why: &'static str,
    },
    #[error("{what} \"{region}\" is not an AWS region: use a name like us-east-1")]
    Region { what: String, region: String },
    #[error(transparent)]
    Kube(#[from] config::ReadError),
}

/// Checks an endpoint URL: `http://` or `https://`, a host, no spaces.
pub fn endpoint_problem(url: &str) -> Option<&'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else {
        return Some("it must be a URL starting with https:// (or http:// for an emulator)");
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = authority
        .rsplit_once(':')
        .filter(|(_, port)| !port.contains(']'))
        .map(|(h, port)| (h, Some(port)))
        .unwrap_or((authority, None));
    if host.0.is_empty() {
        return Some("it has no host");
    }
    if let Some(port) = host.1
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Some("its port must be a number from 1 to 65535");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("it must not contain spaces");
    }
    None
}

/// Whether `region` looks like an AWS region (us-east-1, us-gov-west-1, …).
pub fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u32>().is_ok()
}

/// Reads ProviderConfig `name` (from the cache, and its Secret) and checks it.
pub async fn resolve(
    client: &Client,
    configs: &Cache<ProviderConfig>,
    name: &str,
) -> Result<Resolved, ResolveError> {
    let pc = config::get(client, configs, name, ResolveError::NotFound).await?;
    resolve_config(client, &pc).await
}

pub async fn resolve_config(
    client: &Client,
    pc: &ProviderConfig,
) -> Result<Resolved, ResolveError> {
    let config = pc.name_any();
    if !valid_region(&pc.spec.region) {
        return Err(ResolveError::Region {
            what: format!("ProviderConfig \"{config}\" has region"),
            region: pc.spec.region.clone(),
        });
    }
    if let Some(url) = &pc.spec.endpoint
        && let Some(why) = endpoint_problem(url)
    {
        return Err(ResolveError::Endpoint {
            config,
            endpoint: url.clone(),
            why,
        });
    }
    let mut version = pc.resource_version().unwrap_or_default();
    let credentials = match pc.spec.credentials.source {
        CredentialsSource::Environment => CredentialSource::Environment,
        CredentialsSource::Secret => {
            let r = pc
                .spec
                .credentials
                .secret_ref
                .as_ref()
                .ok_or_else(|| ResolveError::NoSecretRef(config.clone()))?;
            let secret = config::secret(client, &config, &r.namespace, &r.name)
                .await?
                .ok_or_else(|| ResolveError::SecretNotFound {
                    config: config.clone(),
                    namespace: r.namespace.clone(),
                    name: r.name.clone(),
                    key: r.key.clone(),
                })?;
            version.push('/');
            version.push_str(&secret.resource_version().unwrap_or_default());
            let text = secret_value(&secret, &r.key).ok_or_else(|| ResolveError::SecretKey {
                config: config.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                key: r.key.clone(),
            })?;
            let creds = credentials::parse(&text).map_err(|source| ResolveError::Profile {
                config: config.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
                key: r.key.clone(),
                source,
            })?;
            CredentialSource::Static(creds)
        }
    };
    Ok(Resolved {
        name: config,
        settings: Settings {
            region: pc.spec.region.clone(),
            endpoint: pc.spec.endpoint.clone(),
            credentials,
        },
        version,
    })
}

/// The client of ProviderConfig `name` in `region` (the ProviderConfig's
/// region unless the object names one), from the cache while neither the
/// config nor its Secret changed.
pub async fn client(aws: &Aws, name: &str, region: Option<&str>) -> Result<Rds, ResolveError> {
    let mut resolved = resolve(&aws.client, &aws.configs, name).await?;
    if let Some(r) = region {
        if !valid_region(r) {
            return Err(ResolveError::Region {
                what: "spec.forProvider.region".into(),
                region: r.to_string(),
            });
        }
        resolved.settings.region = r.to_string();
    }
    let key = (name.to_string(), resolved.settings.region.clone());
    if let Some((version, rds)) = aws
        .clients
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        && *version == resolved.version
    {
        return Ok(rds.clone());
    }
    let rds = Rds::new(&resolved.settings, aws.http.clone(), aws.metrics.clone()).await;
    aws.clients
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, (resolved.version, rds.clone()));
    Ok(rds)
}

impl ConfigKind for ProviderConfig {
    fn uses_secret(&self, namespace: &str, name: &str) -> bool {
        self.spec
            .credentials
            .secret_ref
            .as_ref()
            .is_some_and(|r| r.namespace == namespace && r.name == name)
    }
}

impl Resolve<ProviderConfig> for Aws {
    type Error = ResolveError;
    const VALID: &'static str = "ConfigValid";
    const INVALID: &'static str = "ConfigInvalid";

    /// Resolves `pc`: where the credentials come from, region and endpoint.
    async fn check(&self, pc: &ProviderConfig) -> Result<String, ResolveError> {
        let r = resolve_config(&self.client, pc).await?;
        let source = match &r.settings.credentials {
            CredentialSource::Static(c) => format!(
                "credentials from Secret (access key {})",
                mask(&c.access_key_id)
            ),
            CredentialSource::Environment => {
                "credentials from the environment's default chain".to_string()
            }
        };
        Ok(format!(
            "{source}, region {}, endpoint {}",
            r.settings.region,
            r.settings.endpoint_display()
        ))
    }
}

/// `AKIA…XMPL`: enough to tell keys apart, not enough to use one.
pub fn mask(key: &str) -> String {
    let n = key.chars().count();
    if n <= 8 {
        return "****".into();
    }
    let head: String = key.chars().take(4).collect();
    let tail: String = key.chars().skip(n - 4).collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        for ok in [
            "http://127.0.0.1:5000",
            "https://rds.us-east-1.amazonaws.com",
            "https://vpce-1.rds.us-east-1.vpce.amazonaws.com/",
            "http://localhost:4566/path",
        ] {
            assert_eq!(endpoint_problem(ok), None, "{ok}");
        }
        for bad in [
            "127.0.0.1:5000",
            "ftp://x",
            "http://",
            "http://:80",
            "http://h:0",
            "http://h:99999",
            "http://h:x",
            "http://h /x",
            "not a url",
        ] {
            assert!(endpoint_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
            "cn-north-1",
        ] {
            assert!(valid_region(ok), "{ok}");
        }
        for bad in ["", "us-east", "useast1", "US-EAST-1", "us-east-1a", "us--1"] {
            assert!(!valid_region(bad), "{bad}");
        }
    }

    #[test]
    fn masks_keys() {
        assert_eq!(mask("AKIAIOSFODNN7EXAMPLE"), "AKIA…MPLE");
        assert_eq!(mask("short"), "****");
    }
}
