//! The production settings of `RDSInstance` (issue 21) end to end: moto
//! behind the fault proxy, which records every request and stands in for
//! what moto lacks (pending modifications, values AWS fills in).

use std::time::{Duration, Instant};

use dbclaim::api::aws::RDSInstanceObservation;

use crate::aws::{
    TIMEOUT, World, instance_yaml, patch_instance, wait_gone, wait_instance,
    wait_instance_condition,
};
use crate::support::faultproxy::{Effect, Logged, Rule};
use crate::support::xml_values;
use crate::support::{self, kubectl, kubectl_ok, kubectl_with_stdin, unique_name};

/// What a platform team makes before its first database: a DB subnet group
/// over the default VPC's subnets, a security group, a KMS key and a
/// parameter group.
struct Platform {
    subnet_group: String,
    security_group: String,
    kms_key_arn: String,
    parameter_group: String,
}

async fn platform(w: &World, prefix: &str) -> Platform {
    let (vpc, subnet_ids) = w.moto.default_vpc();
    let sg = w.moto.call(
        "ec2",
        &format!(
            "Action=CreateSecurityGroup&Version=2016-11-15&GroupName={prefix}-db&GroupDescription=databases&VpcId={vpc}"
        ),
        None,
    );
    let security_group = xml_values(&sg, "groupId")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no group id: {sg}"));
    let key = w.moto.call(
        "kms",
        r#"{"Description":"dbclaim e2e"}"#,
        Some("TrentService.CreateKey"),
    );
    let key: serde_json::Value =
        serde_json::from_str(&key).unwrap_or_else(|e| panic!("{e}: {key}"));
    let kms_key_arn = key["KeyMetadata"]["Arn"]
        .as_str()
        .unwrap_or_else(|| panic!("no key ARN: {key}"))
        .to_string();
    let subnet_group = format!("{prefix}-private");
    w.rds
        .create_db_subnet_group()
        .db_subnet_group_name(&subnet_group)
        .db_subnet_group_description("platform private subnets")
        .set_subnet_ids(Some(subnet_ids))
        .send()
        .await
        .unwrap_or_else(|e| panic!("create subnet group: {e:?}"));
    let parameter_group = format!("{prefix}-pg16");
    w.rds
        .create_db_parameter_group()
        .db_parameter_group_name(&parameter_group)
        .db_parameter_group_family("postgres16")
        .description("platform settings")
        .send()
        .await
        .unwrap_or_else(|e| panic!("create parameter group: {e:?}"));
    Platform {
        subnet_group,
        security_group,
        kms_key_arn,
        parameter_group,
    }
}

fn at_provider(w: &dbclaim::api::aws::RDSInstance) -> RDSInstanceObservation {
    w.status
        .as_ref()
        .and_then(|s| s.at_provider.clone())
        .unwrap_or_default()
}

fn param<'a>(l: &'a Logged, key: &str) -> Option<&'a str> {
    l.params.get(key).map(String::as_str)
}

/// The requests of `action` for `id` that reached moto.
fn sent(w: &World, action: &str, id: &str) -> Vec<Logged> {
    w.proxy
        .requests(action, Some(id))
        .into_iter()
        .filter(|l| l.status == 200)
        .collect()
}

fn delete_instance(name: &str) {
    kubectl_ok([
        "delete",
        "rdsinstances.aws.dbclaim.io",
        name,
        "--wait=false",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_settings_reach_create_and_are_reported() {
    let _lock = support::exclusive().await;
    let w = World::start("aws-prod", &unique_name("aws-prod")).await;
    let name = unique_name("e2e-prod");
    let p = platform(&w, &name).await;
    let extra = format!(
        r#"    dbSubnetGroupName: {sub}
    vpcSecurityGroupIds: [{sg}]
    port: 5433
    storageType: gp3
    iops: 3000
    storageThroughput: 125
    maxAllocatedStorage: 100
    kmsKeyId: {kms}
    dbParameterGroupName: {pg}
    preferredBackupWindow: "03:00-04:00"
    preferredMaintenanceWindow: "sun:04:30-sun:05:30"
    autoMinorVersionUpgrade: false
    enableIAMDatabaseAuthentication: true
    enablePerformanceInsights: true
    performanceInsightsRetentionPeriod: 7
    monitoringInterval: 60
    monitoringRoleArn: arn:aws:iam::123456789012:role/rds-monitoring
    caCertificateIdentifier: rds-ca-rsa2048-g1
    copyTagsToSnapshot: true
"#,
        sub = p.subnet_group,
        sg = p.security_group,
        kms = p.kms_key_arn,
        pg = p.parameter_group,
    );
    support::kubectl_apply(&instance_yaml(&name, &w.pc, w.ns(), &extra, ""));
    let obj = wait_instance_condition(&name, "Ready", "True", Some("Available"), None).await;

    // The CreateDBInstance request carries every field.
    let creates = sent(&w, "CreateDBInstance", &name);
    assert_eq!(creates.len(), 1, "{creates:#?}");
    let c = &creates[0];
    for (key, want) in [
        ("DBSubnetGroupName", p.subnet_group.as_str()),
        (
            "VpcSecurityGroupIds.VpcSecurityGroupId.1",
            &p.security_group,
        ),
        ("Port", "5433"),
        ("StorageType", "gp3"),
        ("Iops", "3000"),
        ("StorageThroughput", "125"),
        ("MaxAllocatedStorage", "100"),
        ("KmsKeyId", &p.kms_key_arn),
        ("StorageEncrypted", "true"),
        ("DBParameterGroupName", &p.parameter_group),
        ("PreferredBackupWindow", "03:00-04:00"),
        ("PreferredMaintenanceWindow", "sun:04:30-sun:05:30"),
        ("AutoMinorVersionUpgrade", "false"),
        ("EnableIAMDatabaseAuthentication", "true"),
        ("EnablePerformanceInsights", "true"),
        ("PerformanceInsightsRetentionPeriod", "7"),
        ("MonitoringInterval", "60"),
        (
            "MonitoringRoleArn",
            "arn:aws:iam::123456789012:role/rds-monitoring",
        ),
        ("CACertificateIdentifier", "rds-ca-rsa2048-g1"),
        ("CopyTagsToSnapshot", "true"),
    ] {
        assert_eq!(param(c, key), Some(want), "{key} in {:#?}", c.params);
    }

    // moto placed it so, and status.atProvider says so.
    let d = w
        .describe(&name)
        .await
        .unwrap_or_else(|| panic!("no instance"));
    assert_eq!(
        d.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some(p.subnet_group.as_str())
    );
    assert_eq!(d.storage_type(), Some("gp3"));
    let a = at_provider(&obj);
    assert_eq!(a.storage_type.as_deref(), Some("gp3"));
    assert_eq!(a.allocated_storage, Some(20));
    assert_eq!(a.max_allocated_storage, Some(100));
    assert_eq!(a.iops, Some(3000));
    assert_eq!(a.db_instance_class.as_deref(), Some("db.t3.micro"));
    assert_eq!(a.multi_az, Some(false));
    assert_eq!(
        a.db_subnet_group_name.as_deref(),
        Some(p.subnet_group.as_str())
    );
    assert_eq!(a.vpc_security_group_ids, vec![p.security_group.clone()]);
    assert_eq!(a.kms_key_id.as_deref(), Some(p.kms_key_arn.as_str()));
    assert_eq!(
        a.db_parameter_group_name.as_deref(),
        Some(p.parameter_group.as_str())
    );
    assert_eq!(
        a.ca_certificate_identifier.as_deref(),
        Some("rds-ca-rsa2048-g1")
    );
    assert!(a.latest_restorable_time.is_some(), "{a:?}");
    assert_eq!(a.pending_modified_values, None);
    assert_eq!(a.endpoint.and_then(|e| e.port), Some(5433));

    // What the spec sets is what moto reports: a reconcile (forced by a
    // spec edit) sends no ModifyDBInstance.
    let describes = w.proxy.requests("DescribeDBInstances", Some(&name)).len();
    patch_instance(&name, r#"{"spec":{"forProvider":{"tags":{"team":"b"}}}}"#);
    support::wait_for(TIMEOUT, "a reconcile after the edit", || async {
        w.proxy.requests("DescribeDBInstances", Some(&name)).len() > describes
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        sent(&w, "ModifyDBInstance", &name).is_empty(),
        "{:#?}",
        sent(&w, "ModifyDBInstance", &name)
    );

    delete_instance(&name);
    wait_gone(&name).await;
}

/// The proxy rule that makes moto look like RDS with `gp3` pending: the
/// instance reports gp2 and PendingModifiedValues/StorageType gp3; and a
/// CA certificate with its expiry, which moto does not report.
fn pending_gp3(id: &str, action: &str, pending: bool) -> Rule {
    let mut pairs = vec![(
        "<CACertificateIdentifier>rds-ca-default</CACertificateIdentifier>".to_string(),
        "<CACertificateIdentifier>rds-ca-default</CACertificateIdentifier><CertificateDetails><CAIdentifier>rds-ca-default</CAIdentifier><ValidTill>2061-05-21T22:23:47Z</ValidTill></CertificateDetails>".to_string(),
    )];
    if pending {
        pairs.push((
            "<StorageType>gp3</StorageType>".to_string(),
            "<StorageType>gp2</StorageType><PendingModifiedValues><StorageType>gp3</StorageType></PendingModifiedValues>".to_string(),
        ));
    }
    Rule::new(action, Effect::Replace(pairs)).for_instance(id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modifications_wait_for_the_window_unless_apply_immediately() {
    let _lock = support::exclusive().await;
    let w = World::start("aws-window", &unique_name("aws-window")).await;
    let name = unique_name("e2e-window");
    support::kubectl_apply(&instance_yaml(
        &name,
        &w.pc,
        w.ns(),
        "    storageType: gp2\n    applyImmediately: false\n",
        "",
    ));
    wait_instance_condition(&name, "Ready", "True", Some("Available"), None).await;
    assert!(sent(&w, "ModifyDBInstance", &name).is_empty());

    // RDS keeps the storage change for the maintenance window.
    let rules = [
        w.proxy.add(pending_gp3(&name, "DescribeDBInstances", true)),
        w.proxy.add(pending_gp3(&name, "ModifyDBInstance", true)),
    ];
    patch_instance(
        &name,
        r#"{"spec":{"forProvider":{"storageType":"gp3","preferredBackupWindow":"03:00-04:00","preferredMaintenanceWindow":"sun:04:30-sun:05:30"}}}"#,
    );
    let obj = wait_instance(&name, "gp3 pending, windows applied", TIMEOUT, |o| {
        let a = at_provider(o);
        a.pending_modified_values
            .as_ref()
            .is_some_and(|p| p.storage_type.as_deref() == Some("gp3"))
            && a.preferred_backup_window.as_deref() == Some("03:00-04:00")
    })
    .await;
    let a = at_provider(&obj);
    assert_eq!(a.storage_type.as_deref(), Some("gp2"), "not applied yet");
    assert_eq!(
        a.preferred_maintenance_window.as_deref(),
        Some("sun:04:30-sun:05:30")
    );
    assert_eq!(
        a.ca_certificate_valid_till.as_deref(),
        Some("2061-05-21T22:23:47Z")
    );
    let modifies = sent(&w, "ModifyDBInstance", &name);
    assert_eq!(modifies.len(), 1, "{modifies:#?}");
    let m = &modifies[0];
    assert_eq!(param(m, "ApplyImmediately"), Some("false"));
    assert_eq!(param(m, "StorageType"), Some("gp3"));
    assert_eq!(param(m, "PreferredBackupWindow"), Some("03:00-04:00"));
    assert_eq!(
        param(m, "PreferredMaintenanceWindow"),
        Some("sun:04:30-sun:05:30")
    );
    assert_eq!(param(m, "DBInstanceClass"), None, "only what changed");

    // The pending change is not sent again while it waits.
    let describes = w.proxy.requests("DescribeDBInstances", Some(&name)).len();
    patch_instance(&name, r#"{"spec":{"forProvider":{"tags":{"team":"b"}}}}"#);
    support::wait_for(TIMEOUT, "a reconcile after the edit", || async {
        w.proxy.requests("DescribeDBInstances", Some(&name)).len() > describes
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(sent(&w, "ModifyDBInstance", &name).len(), 1);

    // The window came: RDS reports it applied, and so does the status.
    for r in rules {
        w.proxy.remove(r);
    }
    w.proxy
        .add(pending_gp3(&name, "DescribeDBInstances", false));
    let obj = wait_instance(
        &name,
        "the pending values applied",
        Duration::from_secs(150),
        |o| {
            let a = at_provider(o);
            a.pending_modified_values.is_none() && a.storage_type.as_deref() == Some("gp3")
        },
    )
    .await;
    assert_eq!(
        at_provider(&obj).ca_certificate_valid_till.as_deref(),
        Some("2061-05-21T22:23:47Z")
    );
    assert_eq!(sent(&w, "ModifyDBInstance", &name).len(), 1);

    // applyImmediately: true goes with the next modification.
    patch_instance(
        &name,
        r#"{"spec":{"forProvider":{"applyImmediately":true,"dbInstanceClass":"db.t3.small"}}}"#,
    );
    wait_instance(&name, "class db.t3.small", TIMEOUT, |o| {
        at_provider(o).db_instance_class.as_deref() == Some("db.t3.small")
    })
    .await;
    let modifies = sent(&w, "ModifyDBInstance", &name);
    assert_eq!(modifies.len(), 2, "{modifies:#?}");
    assert_eq!(param(&modifies[1], "ApplyImmediately"), Some("true"));
    assert_eq!(param(&modifies[1], "DBInstanceClass"), Some("db.t3.small"));
    assert_eq!(param(&modifies[1], "StorageType"), None);

    delete_instance(&name);
    wait_gone(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_aws_fills_in_for_unset_fields_cause_no_modify() {
    let _lock = support::exclusive().await;
    let w = World::start("aws-noloop", &unique_name("aws-noloop")).await;
    let name = unique_name("e2e-noloop");
    // Beyond what moto reports itself for unset fields (default parameter
    // group, windows it chose, the default security group, gp2, its CA),
    // what AWS would: a minor version above the spec's "16", Performance
    // Insights, enhanced monitoring, an autoscaling ceiling, IAM auth.
    let aws_side = Effect::Replace(vec![
        (
            "<EngineVersion>16</EngineVersion>".to_string(),
            "<EngineVersion>16.4</EngineVersion><PerformanceInsightsEnabled>true</PerformanceInsightsEnabled><PerformanceInsightsRetentionPeriod>7</PerformanceInsightsRetentionPeriod><MonitoringInterval>60</MonitoringInterval><MonitoringRoleArn>arn:aws:iam::123456789012:role/rds-monitoring</MonitoringRoleArn>".to_string(),
        ),
        (
            "<IAMDatabaseAuthenticationEnabled>false</IAMDatabaseAuthenticationEnabled>".to_string(),
            "<IAMDatabaseAuthenticationEnabled>true</IAMDatabaseAuthenticationEnabled><MaxAllocatedStorage>1000</MaxAllocatedStorage>".to_string(),
        ),
    ]);
    w.proxy
        .add(Rule::new("DescribeDBInstances", aws_side).for_instance(&name));
    support::kubectl_apply(&instance_yaml(&name, &w.pc, w.ns(), "", ""));
    let obj = wait_instance_condition(&name, "Ready", "True", Some("Available"), None).await;
    assert_eq!(
        at_provider(&obj).engine_version.as_deref(),
        Some("16.4"),
        "the proxy's values are what the operator sees"
    );

    // Two minutes of reconciles, each forced by a spec edit (a tag).
    let start = Instant::now();
    let before = w.proxy.requests("DescribeDBInstances", Some(&name)).len();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(120) {
        i += 1;
        patch_instance(
            &name,
            &format!(r#"{{"spec":{{"forProvider":{{"tags":{{"team":"t{i}"}}}}}}}}"#),
        );
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
    let describes = w.proxy.requests("DescribeDBInstances", Some(&name)).len() - before;
    assert!(describes >= 6, "reconciled {describes} times");
    let modifies = w.proxy.requests("ModifyDBInstance", Some(&name));
    assert!(modifies.is_empty(), "{modifies:#?}");
    let obj = wait_instance_condition(&name, "Synced", "True", None, None).await;
    assert!(at_provider(&obj).pending_modified_values.is_none());

    delete_instance(&name);
    wait_gone(&name).await;
}

/// `kubectl apply` of `yaml` fails, saying `message`.
fn refused(yaml: &str, message: &str) {
    let out = kubectl_with_stdin(["apply", "-f", "-"], yaml);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {yaml}");
    assert!(err.contains(message), "{message:?} not in: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_combinations_and_fixed_fields_are_refused_by_the_api_server() {
    // No operator may run meanwhile: the object below is never reconciled.
    let _lock = support::exclusive().await;
    support::apply_crds();
    let name = unique_name("e2e-cel");
    let pc = unique_name("nobody");
    let yaml = |extra: &str| instance_yaml(&name, &pc, "default", extra, "");
    for (extra, message) in [
        (
            "    storageType: gp2\n    iops: 3000\n",
            "iops cannot be set with storageType gp2",
        ),
        ("    storageType: io1\n", "io1 and io2 need iops"),
        (
            "    storageType: gp2\n    storageThroughput: 125\n",
            "storageThroughput can be set only with storageType gp3",
        ),
        (
            "    storageThroughput: 125\n",
            "storageThroughput can be set only with storageType gp3",
        ),
        (
            "    storageEncrypted: false\n    kmsKeyId: alias/platform\n",
            "kmsKeyId needs storageEncrypted: true",
        ),
        (
            "    maxAllocatedStorage: 10\n",
            "maxAllocatedStorage (the storage autoscaling ceiling) cannot be below allocatedStorage",
        ),
        (
            "    monitoringInterval: 60\n",
            "monitoringInterval above 0 (enhanced monitoring) needs monitoringRoleArn",
        ),
        (
            "    performanceInsightsRetentionPeriod: 7\n",
            "performanceInsightsRetentionPeriod needs enablePerformanceInsights: true",
        ),
    ] {
        refused(&yaml(extra), message);
    }

    // Fields fixed at creation: changing one needs a new instance.
    let base = "    storageType: gp3\n    iops: 3000\n    kmsKeyId: alias/platform\n";
    support::kubectl_apply(&yaml(base));
    let changed = |from: &str, to: &str| yaml(base).replacen(from, to, 1);
    for (edited, field) in [
        (changed("engine: postgres", "engine: mysql"), "engine"),
        (changed("dbName: orders", "dbName: sales"), "dbName"),
        (
            yaml(&format!("{base}    masterUsername: admin2\n")),
            "masterUsername",
        ),
        (
            yaml(&format!("{base}    storageEncrypted: false\n"))
                .replace("    kmsKeyId: alias/platform\n", ""),
            "storageEncrypted",
        ),
        (
            changed("kmsKeyId: alias/platform", "kmsKeyId: alias/other"),
            "kmsKeyId",
        ),
    ] {
        refused(
            &edited,
            &format!("{field} is fixed when an RDS instance is created"),
        );
        refused(&edited, "needs a new instance");
    }
    // Modifiable fields change in place.
    support::kubectl_apply(&yaml(
        "    storageType: io1\n    iops: 4000\n    kmsKeyId: alias/platform\n    applyImmediately: true\n",
    ));
    let _ = kubectl([
        "delete",
        "rdsinstances.aws.dbclaim.io",
        &name,
        "--wait=false",
    ]);
}
