//! The RDS API through aws-sdk-rds, in the plain types of [`super::diff`]
//! and [`super::errors`]: the only module that touches SDK types.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_rds::Client;
use aws_sdk_rds::config::retry::RetryConfig;
use aws_sdk_rds::config::timeout::TimeoutConfig;
use aws_sdk_rds::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_sdk_rds::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_rds::operation::create_db_instance::builders::CreateDBInstanceFluentBuilder;
use aws_sdk_rds::operation::modify_db_instance::builders::ModifyDBInstanceFluentBuilder;
use aws_sdk_rds::primitives::{DateTime, DateTimeFormat};
use aws_sdk_rds::types::{DbInstance, Tag};

use super::credentials::StaticCredentials;
use super::diff::{Modification, Observed, ObservedSettings, Pending, SettingsChange};
use super::errors::{ApiFailure, Transport};
use crate::api::aws::{RDSInstanceParameters, RDSSettings};
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

    /// Sends one call; its failure in plain facts, counted either way.
    async fn call<T, E>(
        &self,
        operation: &'static str,
        sent: impl Future<Output = Result<T, SdkError<E>>>,
    ) -> Result<T, ApiFailure>
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let r = sent.await.map_err(|e| failure(operation, e));
        self.count(operation, &r);
        r
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
        let req = create_settings(self.client.create_db_instance(), &s.settings);
        let r = req
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

    /// ModifyDBInstance (ApplyImmediately as `m` says); `password` resets
    /// the master password.
    pub async fn modify(
        &self,
        identifier: &str,
        m: &Modification,
        password: Option<&str>,
    ) -> Result<Option<Observed>, ApiFailure> {
        let req = modify_settings(self.client.modify_db_instance(), &m.settings)
            .db_instance_identifier(identifier)
            .apply_immediately(m.apply_immediately)
            .set_db_instance_class(m.instance_class.clone())
            .set_allocated_storage(m.allocated_storage.map(clamp_i32))
            .set_engine_version(m.engine_version.clone())
            .set_multi_az(m.multi_az)
            .set_publicly_accessible(m.publicly_accessible)
            .set_backup_retention_period(m.backup_retention_period.map(clamp_i32))
            .set_deletion_protection(m.deletion_protection)
            .set_allow_major_version_upgrade(m.allow_major_version_upgrade.then_some(true))
            .set_master_user_password(password.map(str::to_string));
        let out = self.call("ModifyDBInstance", req.send()).await?;
        Ok(out.db_instance().map(observe))
    }

    /// RebootDBInstance with ForceFailover (a failover drill): the standby
    /// of a Multi-AZ instance takes over.
    pub async fn reboot_with_failover(&self, identifier: &str) -> Result<(), ApiFailure> {
        let req = self.client.reboot_db_instance();
        let req = req.db_instance_identifier(identifier).force_failover(true);
        self.call("RebootDBInstance", req.send()).await.map(drop)
    }

    /// DeleteDBInstance; `final_snapshot` names the final snapshot, None skips it.
    pub async fn delete(
        &self,
        identifier: &str,
        final_snapshot: Option<&str>,
    ) -> Result<(), ApiFailure> {
        let req = self.client.delete_db_instance();
        let req = req
            .db_instance_identifier(identifier)
            .skip_final_snapshot(final_snapshot.is_none())
            .set_final_db_snapshot_identifier(final_snapshot.map(str::to_string));
        self.call("DeleteDBInstance", req.send()).await.map(drop)
    }

    pub async fn list_tags(&self, arn: &str) -> Result<BTreeMap<String, String>, ApiFailure> {
        let req = self.client.list_tags_for_resource().resource_name(arn);
        let out = self.call("ListTagsForResource", req.send()).await?;
        let tag = |t: &Tag| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string()));
        Ok(out.tag_list().iter().filter_map(tag).collect())
    }

    pub async fn add_tags(
        &self,
        arn: &str,
        add: &BTreeMap<String, String>,
    ) -> Result<(), ApiFailure> {
        let req = self.client.add_tags_to_resource().resource_name(arn);
        let req = req.set_tags(Some(tags(add)));
        self.call("AddTagsToResource", req.send()).await.map(drop)
    }

    pub async fn remove_tags(&self, arn: &str, keys: &[String]) -> Result<(), ApiFailure> {
        let req = self.client.remove_tags_from_resource().resource_name(arn);
        let req = req.set_tag_keys(Some(keys.to_vec()));
        self.call("RemoveTagsFromResource", req.send())
            .await
            .map(drop)
    }
}

fn clamp_i32(v: i64) -> i32 {
    i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
}

fn clamp_opt(v: Option<i64>) -> Option<i32> {
    v.map(clamp_i32)
}

/// The [`RDSSettings`] part of CreateDBInstance: each field the spec sets.
pub fn create_settings(
    req: CreateDBInstanceFluentBuilder,
    s: &RDSSettings,
) -> CreateDBInstanceFluentBuilder {
    req.set_db_subnet_group_name(s.db_subnet_group_name.clone())
        .set_vpc_security_group_ids(s.vpc_security_group_ids.clone())
        .set_port(clamp_opt(s.port))
        .set_storage_type(s.storage_type.map(|t| t.as_str().to_string()))
        .set_iops(clamp_opt(s.iops))
        .set_storage_throughput(clamp_opt(s.storage_throughput))
        .set_max_allocated_storage(clamp_opt(s.max_allocated_storage))
        .set_kms_key_id(s.kms_key_id.clone())
        .set_db_parameter_group_name(s.db_parameter_group_name.clone())
        .set_preferred_backup_window(s.preferred_backup_window.clone())
        .set_preferred_maintenance_window(s.preferred_maintenance_window.clone())
        .set_auto_minor_version_upgrade(s.auto_minor_version_upgrade)
        .set_enable_iam_database_authentication(s.enable_iam_database_authentication)
        .set_enable_performance_insights(s.enable_performance_insights)
        .set_performance_insights_retention_period(clamp_opt(
            s.performance_insights_retention_period,
        ))
        .set_monitoring_interval(clamp_opt(s.monitoring_interval))
        .set_monitoring_role_arn(s.monitoring_role_arn.clone())
        .set_ca_certificate_identifier(s.ca_certificate_identifier.clone())
        .set_copy_tags_to_snapshot(s.copy_tags_to_snapshot)
}

/// The [`SettingsChange`] part of ModifyDBInstance: only what changed.
pub fn modify_settings(
    req: ModifyDBInstanceFluentBuilder,
    c: &SettingsChange,
) -> ModifyDBInstanceFluentBuilder {
    req.set_db_subnet_group_name(c.subnet_group.clone())
        .set_vpc_security_group_ids(c.security_groups.clone())
        .set_db_port_number(clamp_opt(c.port))
        .set_storage_type(c.storage_type.clone())
        .set_iops(clamp_opt(c.iops))
        .set_storage_throughput(clamp_opt(c.storage_throughput))
        .set_max_allocated_storage(clamp_opt(c.max_allocated_storage))
        .set_db_parameter_group_name(c.parameter_group.clone())
        .set_preferred_backup_window(c.backup_window.clone())
        .set_preferred_maintenance_window(c.maintenance_window.clone())
        .set_auto_minor_version_upgrade(c.auto_minor_version_upgrade)
        .set_enable_iam_database_authentication(c.iam_auth)
        .set_enable_performance_insights(c.performance_insights)
        .set_performance_insights_retention_period(clamp_opt(c.performance_insights_retention))
        .set_monitoring_interval(clamp_opt(c.monitoring_interval))
        .set_monitoring_role_arn(c.monitoring_role_arn.clone())
        .set_ca_certificate_identifier(c.ca_certificate.clone())
        .set_copy_tags_to_snapshot(c.copy_tags_to_snapshot)
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
            storage_type: text(p.and_then(|p| p.storage_type())),
            iops: p.and_then(|p| p.iops()).map(i64::from),
            storage_throughput: p.and_then(|p| p.storage_throughput()).map(i64::from),
            port: p.and_then(|p| p.port()).map(i64::from),
            ca_certificate: text(p.and_then(|p| p.ca_certificate_identifier())),
            subnet_group: text(p.and_then(|p| p.db_subnet_group_name())),
            iam_auth: p.and_then(|p| p.iam_database_authentication_enabled()),
        },
        settings: observe_settings(d),
    }
}

fn text(v: Option<&str>) -> Option<String> {
    v.map(str::to_string)
}

fn time(v: Option<&DateTime>) -> Option<String> {
    v.and_then(|t| t.fmt(DateTimeFormat::DateTime).ok())
}

/// The [`RDSSettings`] fields of an SDK DBInstance.
fn observe_settings(d: &DbInstance) -> ObservedSettings {
    let groups = d.vpc_security_groups();
    let parameter_group = d.db_parameter_groups().first();
    ObservedSettings {
        subnet_group: text(d.db_subnet_group().and_then(|g| g.db_subnet_group_name())),
        security_groups: (!groups.is_empty()).then(|| {
            groups
                .iter()
                .filter_map(|g| g.vpc_security_group_id())
                .map(str::to_string)
                .collect()
        }),
        storage_type: text(d.storage_type()),
        iops: d.iops().map(i64::from),
        storage_throughput: d.storage_throughput().map(i64::from),
        max_allocated_storage: d.max_allocated_storage().map(i64::from),
        kms_key_id: text(d.kms_key_id()),
        parameter_group: text(parameter_group.and_then(|g| g.db_parameter_group_name())),
        parameter_apply_status: text(parameter_group.and_then(|g| g.parameter_apply_status())),
        backup_window: text(d.preferred_backup_window()),
        maintenance_window: text(d.preferred_maintenance_window()),
        auto_minor_version_upgrade: d.auto_minor_version_upgrade(),
        iam_auth: d.iam_database_authentication_enabled(),
        performance_insights: d.performance_insights_enabled(),
        performance_insights_retention: d.performance_insights_retention_period().map(i64::from),
        monitoring_interval: d.monitoring_interval().map(i64::from),
        monitoring_role_arn: text(d.monitoring_role_arn()),
        ca_certificate: text(d.ca_certificate_identifier()),
        ca_certificate_valid_till: time(d.certificate_details().and_then(|c| c.valid_till())),
        copy_tags_to_snapshot: d.copy_tags_to_snapshot(),
        latest_restorable_time: time(d.latest_restorable_time()),
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

#[cfg(test)]
mod tests {
    use aws_sdk_rds::types::{
        CertificateDetails, DbParameterGroupStatus, DbSubnetGroup, Endpoint, PendingModifiedValues,
        VpcSecurityGroupMembership,
    };

    use super::*;

    /// A client that is never sent anything: the builders' inputs are read.
    fn client() -> Client {
        Client::from_conf(
            aws_sdk_rds::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .build(),
        )
    }

    fn settings() -> RDSSettings {
        serde_json::from_value(serde_json::json!({
            "dbSubnetGroupName": "platform-private",
            "vpcSecurityGroupIds": ["sg-0abc"],
            "port": 5433,
            "storageType": "gp3",
            "iops": 3000,
            "storageThroughput": 125,
            "maxAllocatedStorage": 200,
            "kmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/k",
            "dbParameterGroupName": "pg16-platform",
            "preferredBackupWindow": "03:00-04:00",
            "preferredMaintenanceWindow": "sun:04:30-sun:05:30",
            "autoMinorVersionUpgrade": true,
            "enableIAMDatabaseAuthentication": false,
            "enablePerformanceInsights": true,
            "performanceInsightsRetentionPeriod": 7,
            "monitoringInterval": 60,
            "monitoringRoleArn": "arn:aws:iam::123456789012:role/m",
            "caCertificateIdentifier": "rds-ca-rsa2048-g1",
            "copyTagsToSnapshot": true,
        }))
        .expect("settings")
    }

    #[test]
    fn create_carries_every_setting() {
        let req = create_settings(client().create_db_instance(), &settings());
        let i = req.as_input();
        assert_eq!(
            i.get_db_subnet_group_name().as_deref(),
            Some("platform-private")
        );
        assert_eq!(
            i.get_vpc_security_group_ids(),
            &Some(vec!["sg-0abc".to_string()])
        );
        assert_eq!(*i.get_port(), Some(5433));
        assert_eq!(i.get_storage_type().as_deref(), Some("gp3"));
        assert_eq!(*i.get_iops(), Some(3000));
        assert_eq!(*i.get_storage_throughput(), Some(125));
        assert_eq!(*i.get_max_allocated_storage(), Some(200));
        assert_eq!(
            i.get_kms_key_id().as_deref(),
            Some("arn:aws:kms:us-east-1:123456789012:key/k")
        );
        assert_eq!(
            i.get_db_parameter_group_name().as_deref(),
            Some("pg16-platform")
        );
        assert_eq!(
            i.get_preferred_backup_window().as_deref(),
            Some("03:00-04:00")
        );
        assert_eq!(
            i.get_preferred_maintenance_window().as_deref(),
            Some("sun:04:30-sun:05:30")
        );
        assert_eq!(*i.get_auto_minor_version_upgrade(), Some(true));
        assert_eq!(*i.get_enable_iam_database_authentication(), Some(false));
        assert_eq!(*i.get_enable_performance_insights(), Some(true));
        assert_eq!(*i.get_performance_insights_retention_period(), Some(7));
        assert_eq!(*i.get_monitoring_interval(), Some(60));
        assert_eq!(
            i.get_monitoring_role_arn().as_deref(),
            Some("arn:aws:iam::123456789012:role/m")
        );
        assert_eq!(
            i.get_ca_certificate_identifier().as_deref(),
            Some("rds-ca-rsa2048-g1")
        );
        assert_eq!(*i.get_copy_tags_to_snapshot(), Some(true));

        // unset settings are not sent: AWS's defaults apply
        let req = create_settings(client().create_db_instance(), &RDSSettings::default());
        let i = req.as_input();
        assert_eq!(*i.get_storage_type(), None);
        assert_eq!(*i.get_vpc_security_group_ids(), None);
        assert_eq!(*i.get_db_parameter_group_name(), None);
        assert_eq!(*i.get_copy_tags_to_snapshot(), None);
    }

    #[test]
    fn modify_carries_only_the_changes() {
        let c = SettingsChange {
            storage_type: Some("gp3".into()),
            backup_window: Some("03:00-04:00".into()),
            port: Some(5433),
            ..Default::default()
        };
        let req = modify_settings(client().modify_db_instance(), &c);
        let i = req.as_input();
        assert_eq!(i.get_storage_type().as_deref(), Some("gp3"));
        assert_eq!(
            i.get_preferred_backup_window().as_deref(),
            Some("03:00-04:00")
        );
        assert_eq!(*i.get_db_port_number(), Some(5433));
        assert_eq!(*i.get_iops(), None);
        assert_eq!(*i.get_preferred_maintenance_window(), None);
        assert_eq!(*i.get_vpc_security_group_ids(), None);
        assert_eq!(*i.get_enable_performance_insights(), None);
    }

    #[test]
    fn observe_reads_settings_and_pending_values() {
        let d = DbInstance::builder()
            .db_instance_identifier("orders")
            .db_instance_status("available")
            .endpoint(Endpoint::builder().address("orders.x").port(5432).build())
            .storage_type("gp2")
            .allocated_storage(20)
            .db_subnet_group(
                DbSubnetGroup::builder()
                    .db_subnet_group_name("platform-private")
                    .build(),
            )
            .vpc_security_groups(
                VpcSecurityGroupMembership::builder()
                    .vpc_security_group_id("sg-0abc")
                    .status("active")
                    .build(),
            )
            .db_parameter_groups(
                DbParameterGroupStatus::builder()
                    .db_parameter_group_name("pg16-platform")
                    .parameter_apply_status("pending-reboot")
                    .build(),
            )
            .preferred_maintenance_window("sun:04:30-sun:05:30")
            .ca_certificate_identifier("rds-ca-rsa2048-g1")
            .certificate_details(
                CertificateDetails::builder()
                    .ca_identifier("rds-ca-rsa2048-g1")
                    .valid_till(DateTime::from_secs(2_000_000_000))
                    .build(),
            )
            .latest_restorable_time(DateTime::from_secs(1_800_000_000))
            .performance_insights_enabled(true)
            .pending_modified_values(
                PendingModifiedValues::builder()
                    .storage_type("gp3")
                    .iops(3000)
                    .storage_throughput(125)
                    .ca_certificate_identifier("rds-ca-ecc384-g1")
                    .build(),
            )
            .build();
        let o = observe(&d);
        let s = &o.settings;
        assert_eq!(s.subnet_group.as_deref(), Some("platform-private"));
        assert_eq!(s.security_groups, Some(vec!["sg-0abc".to_string()]));
        assert_eq!(s.parameter_group.as_deref(), Some("pg16-platform"));
        assert_eq!(s.parameter_apply_status.as_deref(), Some("pending-reboot"));
        assert_eq!(s.storage_type.as_deref(), Some("gp2"));
        assert_eq!(
            s.ca_certificate_valid_till.as_deref(),
            Some("2033-05-18T03:33:20Z")
        );
        assert_eq!(
            s.latest_restorable_time.as_deref(),
            Some("2027-01-15T08:00:00Z")
        );
        assert_eq!(s.performance_insights, Some(true));
        assert_eq!(s.max_allocated_storage, None);
        assert_eq!(o.pending.storage_type.as_deref(), Some("gp3"));
        assert_eq!(o.pending.iops, Some(3000));
        assert_eq!(o.pending.storage_throughput, Some(125));
        assert_eq!(
            o.pending.ca_certificate.as_deref(),
            Some("rds-ca-ecc384-g1")
        );
        assert!(!o.pending.master_user_password);
        // the pending values laid over it
        assert_eq!(
            o.with_pending().settings.storage_type.as_deref(),
            Some("gp3")
        );
        // no security groups reported: unknown, not "none"
        let bare = observe(&DbInstance::builder().db_instance_identifier("x").build());
        assert_eq!(bare.settings.security_groups, None);
        assert!(bare.pending.is_empty());
    }
}
