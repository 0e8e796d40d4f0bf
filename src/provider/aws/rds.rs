//! The RDS API through aws-sdk-rds, in the plain types of [`super::diff`]
//! and [`super::errors`]: the only module that touches SDK types.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_rds::Client;
use aws_sdk_rds::config::retry::RetryConfig;
use aws_sdk_rds::config::timeout::TimeoutConfig;
use aws_sdk_rds::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_rds::types::{DbInstance, Tag};

use super::credentials::StaticCredentials;
use super::diff::{Modification, Observed, Pending};
use super::errors::{ApiFailure, Transport};
use crate::api::aws::RDSInstanceParameters;
use crate::metrics::Metrics;

/// Attempts per call (the SDK's standard mode: jittered exponential backoff
/// on throttling, 5xx and transient I/O errors, with a retry token bucket).
const MAX_ATTEMPTS: u32 = 3;

/// Where credentials come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialSource {
    Static(StaticCredentials),
    /// The SDK's default chain: environment, web identity (IRSA), ECS,
    /// instance profile.
    Environment,
}

/// Everything needed to build a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub region: String,
    pub endpoint: Option<String>,
    pub credentials: CredentialSource,
}

impl Settings {
    /// Where calls go, for messages.
    pub fn endpoint_display(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("https://rds.{}.amazonaws.com", self.region))
    }
}

/// The HTTP client every RDS client shares: hyper with rustls on ring (the
/// crypto kube already links; no aws-lc).
pub fn http_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// An RDS client for one ProviderConfig and region.
#[derive(Clone)]
pub struct Rds {
    client: Client,
    endpoint: String,
    metrics: Metrics,
}

/// What CreateDBInstance is sent.
pub struct CreateInput<'a> {
    pub identifier: &'a str,
    pub spec: &'a RDSInstanceParameters,
    pub password: &'a str,
    pub tags: &'a BTreeMap<String, String>,
}

impl Rds {
    pub async fn new(settings: &Settings, http: SharedHttpClient, metrics: Metrics) -> Rds {
        let retry = RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS);
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .operation_attempt_timeout(Duration::from_secs(30))
            .operation_timeout(Duration::from_secs(90))
            .build();
        let region = Region::new(settings.region.clone());
        let mut builder = match &settings.credentials {
            CredentialSource::Static(c) => aws_sdk_rds::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .credentials_provider(Credentials::new(
                    c.access_key_id.clone(),
                    c.secret_access_key.clone(),
                    c.session_token.clone(),
                    None,
                    "dbclaim-provider-config",
                )),
            CredentialSource::Environment => {
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .region(region.clone())
                    .http_client(http.clone())
                    .load()
                    .await;
                aws_sdk_rds::config::Builder::from(&shared)
            }
        };
        builder = builder
            .region(region)
            .http_client(http)
            .retry_config(retry)
            .timeout_config(timeouts);
        if let Some(url) = &settings.endpoint {
            builder = builder.endpoint_url(url.clone());
        }
        Rds {
            client: Client::from_conf(builder.build()),
            endpoint: settings.endpoint_display(),
            metrics,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn count<T>(&self, operation: &str, r: &Result<T, ApiFailure>) {
        self.metrics.provider_request("aws", operation, r.is_ok());
    }

    /// The instance of `identifier`, or None when RDS reports DBInstanceNotFound.
    pub async fn describe(&self, identifier: &str) -> Result<Option<Observed>, ApiFailure> {
        const OP: &str = "DescribeDBInstances";
        let r = self
            .client
            .describe_db_instances()
            .db_instance_identifier(identifier)
            .send()
            .await
            .map_err(|e| failure(OP, e));
        let r = match r {
            Ok(out) => Ok(out
                .db_instances()
                .iter()
                .find(|d| {
                    d.db_instance_identifier()
                        .is_some_and(|i| i.eq_ignore_ascii_case(identifier))
                })
                .map(observe)),
            Err(f) if f.code.as_deref() == Some("DBInstanceNotFound") => Ok(None),
            Err(f) => Err(f),
        };
        self.count(OP, &r);
        r
    }

    pub async fn create(&self, input: CreateInput<'_>) -> Result<Observed, ApiFailure> {
        const OP: &str = "CreateDBInstance";
        let s = input.spec;
        let r = self
            .client
            .create_db_instance()
            .db_instance_identifier(input.identifier)
            .db_instance_class(&s.db_instance_class)
            .engine(&s.engine)
            .set_engine_version(s.engine_version.clone())
            .allocated_storage(clamp_i32(s.allocated_storage))
            .set_db_name(s.db_name.clone())
            .master_username(&s.master_username)
            .master_user_password(input.password)
            .multi_az(s.multi_az)
            .publicly_accessible(s.publicly_accessible)
            .storage_encrypted(s.storage_encrypted)
            .deletion_protection(s.deletion_protection)
            .backup_retention_period(clamp_i32(s.backup_retention_period))
            .set_tags(Some(tags(input.tags)))
            .send()
            .await
            .map_err(|e| failure(OP, e))
            .and_then(|out| {
                out.db_instance().map(observe).ok_or_else(|| ApiFailure {
                    operation: OP,
                    code: None,
                    message: Some("the response has no DBInstance".into()),
                    http_status: None,
                    transport: Some(Transport::BadResponse("no DBInstance".into())),
                })
            });
        self.count(OP, &r);
        r
    }

    /// ModifyDBInstance with ApplyImmediately; `password` resets the master
    /// password.
    pub async fn modify(
        &self,
        identifier: &str,
        m: &Modification,
        password: Option<&str>,
    ) -> Result<Option<Observed>, ApiFailure> {
        const OP: &str = "ModifyDBInstance";
        let mut req = self
            .client
            .modify_db_instance()
            .db_instance_identifier(identifier)
            .apply_immediately(true)
            .set_db_instance_class(m.instance_class.clone())
            .set_allocated_storage(m.allocated_storage.map(clamp_i32))
            .set_engine_version(m.engine_version.clone())
            .set_multi_az(m.multi_az)
            .set_publicly_accessible(m.publicly_accessible)
            .set_backup_retention_period(m.backup_retention_period.map(clamp_i32))
            .set_deletion_protection(m.deletion_protection)
            .set_master_user_password(password.map(str::to_string));
        if m.allow_major_version_upgrade {
            req = req.allow_major_version_upgrade(true);
        }
        let r = req
            .send()
            .await
            .map(|out| out.db_instance().map(observe))
            .map_err(|e| failure(OP, e));
        self.count(OP, &r);
        r
    }

    /// DeleteDBInstance; `final_snapshot` names the final snapshot, None skips it.
    pub async fn delete(
        &self,
        identifier: &str,
        final_snapshot: Option<&str>,
    ) -> Result<(), ApiFailure> {
        const OP: &str = "DeleteDBInstance";
        let req = self
            .client
            .delete_db_instance()
            .db_instance_identifier(identifier);
        let req = match final_snapshot {
            Some(name) => req
                .skip_final_snapshot(false)
                .final_db_snapshot_identifier(name),
            None => req.skip_final_snapshot(true),
        };
        let r = req.send().await.map(|_| ()).map_err(|e| failure(OP, e));
        self.count(OP, &r);
        r
    }

    pub async fn list_tags(&self, arn: &str) -> Result<BTreeMap<String, String>, ApiFailure> {
        const OP: &str = "ListTagsForResource";
        let r = self
            .client
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .map(|out| {
                out.tag_list()
                    .iter()
                    .filter_map(|t| {
                        Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()))
                    })
                    .collect()
            })
            .map_err(|e| failure(OP, e));
        self.count(OP, &r);
        r
    }

    pub async fn add_tags(
        &self,
        arn: &str,
        add: &BTreeMap<String, String>,
    ) -> Result<(), ApiFailure> {
        const OP: &str = "AddTagsToResource";
        let r = self
            .client
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(tags(add)))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failure(OP, e));
        self.count(OP, &r);
        r
    }

    pub async fn remove_tags(&self, arn: &str, keys: &[String]) -> Result<(), ApiFailure> {
        const OP: &str = "RemoveTagsFromResource";
        let r = self
            .client
            .remove_tags_from_resource()
            .resource_name(arn)
            .set_tag_keys(Some(keys.to_vec()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failure(OP, e));
        self.count(OP, &r);
        r
    }
}

fn clamp_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

fn tags(map: &BTreeMap<String, String>) -> Vec<Tag> {
    map.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The plain observation of an SDK DBInstance.
pub fn observe(d: &DbInstance) -> Observed {
    let p = d.pending_modified_values();
    Observed {
        identifier: d.db_instance_identifier().unwrap_or_default().to_string(),
        status: d.db_instance_status().unwrap_or_default().to_string(),
        arn: d.db_instance_arn().map(str::to_string),
        address: d.endpoint().and_then(|e| e.address()).map(str::to_string),
        port: d.endpoint().and_then(|e| e.port()).map(i64::from),
        engine: d.engine().map(str::to_string),
        engine_version: d.engine_version().map(str::to_string),
        instance_class: d.db_instance_class().map(str::to_string),
        allocated_storage: d.allocated_storage().map(i64::from),
        db_name: d.db_name().map(str::to_string),
        master_username: d.master_username().map(str::to_string),
        multi_az: d.multi_az(),
        publicly_accessible: d.publicly_accessible(),
        storage_encrypted: d.storage_encrypted(),
        deletion_protection: d.deletion_protection(),
        backup_retention_period: d.backup_retention_period().map(i64::from),
        pending: Pending {
            instance_class: p.and_then(|p| p.db_instance_class()).map(str::to_string),
            allocated_storage: p.and_then(|p| p.allocated_storage()).map(i64::from),
            engine_version: p.and_then(|p| p.engine_version()).map(str::to_string),
            multi_az: p.and_then(|p| p.multi_az()),
            backup_retention_period: p.and_then(|p| p.backup_retention_period()).map(i64::from),
            master_user_password: p.and_then(|p| p.master_user_password()).is_some(),
        },
    }
}

/// The facts of an SDK error.
fn failure<E>(operation: &'static str, e: SdkError<E>) -> ApiFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut f = ApiFailure {
        operation,
        code: None,
        message: None,
        http_status: None,
        transport: None,
    };
    match &e {
        SdkError::ServiceError(se) => {
            f.code = se.err().code().map(str::to_string);
            f.message = se.err().message().map(str::to_string);
            f.http_status = Some(se.raw().status().as_u16());
        }
        SdkError::TimeoutError(_) => f.transport = Some(Transport::Timeout),
        SdkError::DispatchFailure(d) => {
            let why = innermost(&e);
            f.transport = Some(if d.is_timeout() {
                Transport::Timeout
            } else if d.is_io() {
                Transport::Io(why)
            } else if d.is_user() {
                Transport::Construction(why)
            } else {
                Transport::Other(why)
            });
        }
        SdkError::ResponseError(r) => {
            f.http_status = Some(r.raw().status().as_u16());
            f.transport = Some(Transport::BadResponse(innermost(&e)));
        }
        SdkError::ConstructionFailure(_) => {
            f.transport = Some(Transport::Construction(innermost(&e)));
        }
        _ => f.transport = Some(Transport::Other(innermost(&e))),
    }
    f
}

/// The innermost cause of an error (e.g. "Connection refused (os error
/// 111)"), which says more than the SDK's outer "dispatch failure".
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &(dyn std::error::Error + 'static) = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
