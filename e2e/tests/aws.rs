//! The `aws.dbclaim.io` provider end to end: a real API server, the operator
//! as a process, moto's RDS API behind a fault-injecting proxy
//! (`support::faultproxy`), reached through ProviderConfig.endpoint with
//! credentials from a Secret, and asserted on with the real aws-sdk-rds
//! client against moto directly.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_rds::config::{BehaviorVersion, Credentials, Region};
use dbclaim::api::aws::RDSInstance;
use kube::ResourceExt;
use kube::api::Api;

use crate::claims::{claim_yaml, condition, get_claim, secret_data, wait_condition, wait_ready};
use crate::support::faultproxy::{Effect, FaultProxy, Rule};
use crate::support::operator::OPERATOR_NAMESPACE;
use crate::support::{
    self, Moto, Operator, TestNamespace, kubectl, kubectl_apply, kubectl_ok, unique_name, wait_for,
};

pub(crate) const TIMEOUT: Duration = Duration::from_secs(90);
const ACCESS_KEY: &str = "AKIAE2EDBCLAIMTEST01";
const SECRET_KEY: &str = "e2e/secret+key";
const EXTERNAL_NAME: &str = "dbclaim.io/external-name";
const OWNER_TAG: &str = "dbclaim.io/rdsinstance";

/// One test's world: moto, the proxy in front of it, a namespace, a
/// ProviderConfig pointing at the proxy, and the operator.
pub(crate) struct World {
    // Declaration order is drop order: the operator goes first.
    pub(crate) op: Operator,
    pub(crate) pc: String,
    ns: TestNamespace,
    pub(crate) proxy: FaultProxy,
    /// aws-sdk-rds straight to moto (not through the proxy), for assertions.
    pub(crate) rds: aws_sdk_rds::Client,
    pub(crate) moto: Moto,
}

impl World {
    /// `pc`: the ProviderConfig's name (`default` for claims through the
    /// shipped compositions).
    pub(crate) async fn start(prefix: &str, pc: &str) -> World {
        support::apply_crds();
        let moto = Moto::start();
        let proxy = FaultProxy::start(&moto.endpoint).await;
        let ns = TestNamespace::new(prefix);
        kubectl_apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {OPERATOR_NAMESPACE}\n"
        ));
        apply_provider_config(pc, Some(&proxy.endpoint), ACCESS_KEY);
        let conf = aws_sdk_rds::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "e2e"))
            .endpoint_url(&moto.endpoint)
            .http_client(dbclaim::provider::aws::rds::http_client())
            .build();
        let op = Operator::start();
        World {
            op,
            pc: pc.to_string(),
            ns,
            proxy,
            rds: aws_sdk_rds::Client::from_conf(conf),
            moto,
        }
    }

    pub(crate) fn ns(&self) -> &str {
        self.ns.name()
    }

    /// The instance as moto reports it, or None.
    pub(crate) async fn describe(&self, id: &str) -> Option<aws_sdk_rds::types::DbInstance> {
        match self
            .rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
        {
            Ok(out) => out.db_instances().first().cloned(),
            Err(e) => {
                let code = aws_sdk_rds::error::ProvideErrorMetadata::code(&e);
                assert_eq!(code, Some("DBInstanceNotFound"), "describe {id}: {e:?}");
                None
            }
        }
    }

    async fn storage(&self, id: &str) -> Option<i32> {
        self.describe(id).await.and_then(|d| d.allocated_storage())
    }

    /// How many instances moto has of identifier `id`.
    async fn count(&self, id: &str) -> usize {
        let all = self
            .rds
            .describe_db_instances()
            .send()
            .await
            .unwrap_or_else(|e| panic!("list instances: {e:?}"));
        all.db_instances()
            .iter()
            .filter(|d| d.db_instance_identifier() == Some(id))
            .count()
    }

    async fn tags(&self, id: &str) -> BTreeMap<String, String> {
        let arn = self
            .describe(id)
            .await
            .and_then(|d| d.db_instance_arn().map(str::to_string))
            .unwrap_or_else(|| panic!("no instance {id}"));
        self.rds
            .list_tags_for_resource()
            .resource_name(arn)
            .send()
            .await
            .unwrap_or_else(|e| panic!("tags of {id}: {e:?}"))
            .tag_list()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap_or_default().to_string(),
                    t.value().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// The MasterUserPassword the (only) CreateDBInstance of `id` sent.
    fn created_password(&self, id: &str) -> String {
        let creates = self.proxy.requests("CreateDBInstance", Some(id));
        // Forwarded to moto: untouched, or held (forwarded, never answered).
        let sent: Vec<_> = creates
            .iter()
            .filter(|l| l.injected.is_none() || l.injected.as_deref() == Some("Hold"))
            .collect();
        assert_eq!(
            sent.len(),
            1,
            "CreateDBInstance calls of {id}: {creates:#?}"
        );
        sent[0]
            .params
            .get("MasterUserPassword")
            .cloned()
            .unwrap_or_else(|| panic!("CreateDBInstance without a password"))
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Whatever this test left (a failure midway): no finalizer may keep
        // it, and no later operator may reconcile it against another moto.
        let out = kubectl(["get", "rdsinstances", "-o", "name"]);
        for obj in String::from_utf8_lossy(&out.stdout).lines() {
            let json = kubectl([
                "get",
                obj,
                "-o",
                "jsonpath={.spec.providerConfigRef.name} {.metadata.labels.dbclaim\\.io/claim-namespace}",
            ]);
            let text = String::from_utf8_lossy(&json.stdout).to_string();
            let mine = (self.pc != "default" && text.split(' ').next() == Some(self.pc.as_str()))
                || text.split(' ').nth(1) == Some(self.ns.name());
            if mine {
                let _ = kubectl([
                    "patch",
                    obj,
                    "--type=merge",
                    "-p",
                    r#"{"metadata":{"finalizers":null}}"#,
                ]);
                let _ = kubectl(["delete", obj, "--ignore-not-found", "--wait=false"]);
            }
        }
        let _ = kubectl([
            "delete",
            "databaseclaims",
            "--all",
            "-n",
            self.ns.name(),
            "--wait=false",
        ]);
        let out = kubectl(["get", "databaseclaims", "-n", self.ns.name(), "-o", "name"]);
        for obj in String::from_utf8_lossy(&out.stdout).lines() {
            let _ = kubectl([
                "patch",
                "-n",
                self.ns.name(),
                obj,
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ]);
        }
        if self.pc != "default" {
            let _ = kubectl([
                "delete",
                "providerconfigs.aws.dbclaim.io",
                &self.pc,
                "--ignore-not-found",
                "--wait=false",
            ]);
        }
    }
}

/// A Secret with an AWS credentials profile and a ProviderConfig using it.
pub(crate) fn apply_provider_config(name: &str, endpoint: Option<&str>, access_key: &str) {
    let endpoint = endpoint
        .map(|e| format!("  endpoint: \"{e}\"\n"))
        .unwrap_or_default();
    kubectl_apply(&format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: aws-{name}-creds, namespace: {OPERATOR_NAMESPACE}}}
stringData:
  credentials: |
    [default]
    aws_access_key_id = {access_key}
    aws_secret_access_key = {SECRET_KEY}
---
apiVersion: aws.dbclaim.io/v1alpha1
kind: ProviderConfig
metadata: {{name: {name}}}
spec:
  credentials:
    source: Secret
    secretRef: {{namespace: {OPERATOR_NAMESPACE}, name: aws-{name}-creds, key: credentials}}
  region: us-east-1
{endpoint}"#
    ));
}

pub(crate) fn instance_yaml(
    name: &str,
    pc: &str,
    ns: &str,
    extra_for_provider: &str,
    extra_spec: &str,
) -> String {
    format!(
        r#"apiVersion: aws.dbclaim.io/v1alpha1
kind: RDSInstance
metadata: {{name: {name}}}
spec:
  providerConfigRef: {{name: {pc}}}
  writeConnectionSecretToRef: {{name: {name}, namespace: {ns}}}
{extra_spec}  forProvider:
    region: us-east-1
    dbInstanceClass: db.t3.micro
    engine: postgres
    engineVersion: "16"
    allocatedStorage: 20
    dbName: orders
    tags: {{team: a}}
{extra_for_provider}"#
    )
}

pub(crate) async fn get_instance(name: &str) -> Option<RDSInstance> {
    let api: Api<RDSInstance> = Api::all(support::kube_client().await);
    api.get_opt(name).await.ok().flatten()
}

fn instance_condition(obj: &RDSInstance, type_: &str) -> Option<(String, String, String)> {
    let c = obj
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until `check` holds for the RDSInstance `name`; panics with its
/// last status.
pub(crate) async fn wait_instance<F>(
    name: &str,
    what: &str,
    timeout: Duration,
    check: F,
) -> RDSInstance
where
    F: Fn(&RDSInstance) -> bool,
{
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Some(obj) = get_instance(name).await {
            if check(&obj) {
                return obj;
            }
            last = Some(obj);
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for RDSInstance {name}: {what}; last seen: {:#?}",
            last.map(|o| (o.metadata.annotations, o.status))
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits for condition `type_` with `status` (and `reason`, and a message
/// containing `message`, when given).
pub(crate) async fn wait_instance_condition(
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> RDSInstance {
    let what = format!("{type_}={status} {reason:?} {message:?}");
    wait_instance(name, &what, TIMEOUT, |o| {
        instance_condition(o, type_).is_some_and(|(s, r, m)| {
            s == status
                && reason.is_none_or(|want| want == r)
                && message.is_none_or(|want| m.contains(want))
        })
    })
    .await
}

pub(crate) async fn wait_gone(name: &str) {
    wait_for(
        TIMEOUT,
        &format!("RDSInstance {name} to be gone"),
        || async { get_instance(name).await.is_none() },
    )
    .await;
}

pub(crate) fn patch_instance(name: &str, patch: &str) {
    kubectl_ok([
        "patch",
        "rdsinstances.aws.dbclaim.io",
        name,
        "--type=merge",
        "-p",
        patch,
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_instance_is_created_grown_and_deleted_with_a_final_snapshot() {
    let _lock = support::exclusive().await;
    let w = World::start("aws-life", &unique_name("aws-life")).await;
    let name = unique_name("e2e-life");
    kubectl_apply(&instance_yaml(
        &name,
        &w.pc,
        w.ns(),
        "    skipFinalSnapshot: false\n",
        "",
    ));

    let started = Instant::now();
    let obj = wait_instance_condition(&name, "Ready", "True", Some("Available"), None).await;
    eprintln!("RDSInstance Ready {:?} after apply", started.elapsed());
    let id = obj
        .annotations()
        .get(EXTERNAL_NAME)
        .cloned()
        .unwrap_or_default();
    assert_eq!(id, name, "a valid object name is its own identifier");
    assert_eq!(
        instance_condition(&obj, "Synced").map(|c| c.0),
        Some("True".into())
    );

    // What the emulator has.
    let d = w
        .describe(&id)
        .await
        .unwrap_or_else(|| panic!("moto has no {id}"));
    assert_eq!(d.db_instance_class(), Some("db.t3.micro"));
    assert_eq!(d.engine(), Some("postgres"));
    assert_eq!(d.engine_version(), Some("16"));
    assert_eq!(d.allocated_storage(), Some(20));
    assert_eq!(d.db_name(), Some("orders"));
    assert_eq!(d.master_username(), Some("dbadmin"));
    assert_eq!(d.storage_encrypted(), Some(true));
    assert_eq!(d.backup_retention_period(), Some(7));
    let tags = w.tags(&id).await;
    assert_eq!(tags.get("team").map(String::as_str), Some("a"));
    assert_eq!(tags.get(OWNER_TAG), Some(&name));

    // status.atProvider and the connection Secret.
    let at = obj
        .status
        .clone()
        .and_then(|s| s.at_provider)
        .unwrap_or_default();
    let address = d
        .endpoint()
        .and_then(|e| e.address())
        .unwrap_or_default()
        .to_string();
    assert_eq!(at.db_instance_identifier.as_deref(), Some(id.as_str()));
    assert_eq!(at.db_instance_status.as_deref(), Some("available"));
    assert_eq!(
        at.endpoint.as_ref().and_then(|e| e.address.clone()),
        Some(address.clone())
    );
    assert_eq!(at.endpoint.as_ref().and_then(|e| e.port), Some(5432));
    assert!(at.arn.is_some_and(|a| a.ends_with(&format!(":db:{id}"))));
    let data = secret_data(w.ns(), &name)
        .await
        .unwrap_or_else(|| panic!("no connection Secret"));
    assert_eq!(data.get("host"), Some(&address));
    assert_eq!(data.get("endpoint"), Some(&address));
    assert_eq!(data.get("port").map(String::as_str), Some("5432"));
    assert_eq!(data.get("username").map(String::as_str), Some("dbadmin"));
    assert_eq!(data.get("database").map(String::as_str), Some("orders"));
    let password = w.created_password(&id);
    assert_eq!(
        data.get("password"),
        Some(&password),
        "the Secret holds the password the instance was created with"
    );
    assert_eq!(password.len(), 32);

    // Grow: 20 → 50.
    patch_instance(&name, r#"{"spec":{"forProvider":{"allocatedStorage":50}}}"#);
    wait_for(TIMEOUT, "moto to report 50 GiB", || async {
        w.storage(&id).await == Some(50)
    })
    .await;
    let obj = wait_instance(
        &name,
        "observedGeneration current and Ready",
        TIMEOUT,
        |o| {
            o.status.as_ref().and_then(|s| s.observed_generation) == o.metadata.generation
                && instance_condition(o, "Ready").is_some_and(|c| c.0 == "True")
                && o.status
                    .as_ref()
                    .and_then(|s| s.at_provider.as_ref())
                    .and_then(|a| a.allocated_storage)
                    == Some(50)
        },
    )
    .await;
    assert!(obj.status.is_some());
    let modifies = w.proxy.requests("ModifyDBInstance", Some(&id));
    assert_eq!(modifies.len(), 1, "{modifies:#?}");
    let p = &modifies[0].params;
    assert_eq!(p.get("AllocatedStorage").map(String::as_str), Some("50"));
    // applyImmediately is unset: AWS's default, the maintenance window
    assert_eq!(p.get("ApplyImmediately").map(String::as_str), Some("false"));
    for field in [
        "DBInstanceClass",
        "EngineVersion",
        "MasterUserPassword",
        "MultiAZ",
    ] {
        assert!(
            !p.contains_key(field),
            "only drift is sent, not {field}: {p:?}"
        );
    }
    // No modify loop: more reconciles (a label change wakes the controller) send nothing.
    patch_instance(&name, r#"{"metadata":{"labels":{"poke":"1"}}}"#);
    tokio::time::sleep(Duration::from_secs(3)).await;
    patch_instance(&name, r#"{"metadata":{"labels":{"poke":"2"}}}"#);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        w.proxy.requests("ModifyDBInstance", Some(&id)).len(),
        1,
        "no modify loop"
    );
    assert_eq!(w.proxy.requests("CreateDBInstance", Some(&id)).len(), 1);

    // Delete with a final snapshot.
    kubectl_ok([
        "delete",
        "rdsinstances.aws.dbclaim.io",
        &name,
        "--wait=false",
    ]);
    wait_gone(&name).await;
    assert!(w.describe(&id).await.is_none(), "the instance is gone");
    let snaps = w
        .rds
        .describe_db_snapshots()
        .db_snapshot_identifier(format!("{id}-final"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("no final snapshot: {e:?}"));
    assert_eq!(snaps.db_snapshots().len(), 1);
    let deletes = w.proxy.requests("DeleteDBInstance", Some(&id));
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        deletes[0]
            .params
            .get("SkipFinalSnapshot")
            .map(String::as_str),
        Some("false")
    );
    assert!(
        secret_data(w.ns(), &name).await.is_none(),
        "the connection Secret is deleted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_leaves_the_instance_and_skip_final_snapshot_takes_none() {
    let _lock = support::exclusive().await;
    let w = World::start("aws-orphan", &unique_name("aws-orphan")).await;
    let kept = unique_name("e2e-orphan");
    let skipped = unique_name("e2e-skip");
    kubectl_apply(&instance_yaml(
        &kept,
        &w.pc,
        w.ns(),
        "",
        "  deletionPolicy: Orphan\n",
    ));
    kubectl_apply(&instance_yaml(
        &skipped,
        &w.pc,
        w.ns(),
        "    skipFinalSnapshot: true\n",
        "",
    ));
    wait_instance_condition(&kept, "Ready", "True", None, None).await;
    wait_instance_condition(&skipped, "Ready", "True", None, None).await;

    kubectl_ok([
        "delete",
        "rdsinstances.aws.dbclaim.io",
        &kept,
        &skipped,
        "--wait=false",
    ]);
    wait_gone(&kept).await;
    wait_gone(&skipped).await;
    let d = w.describe(&kept).await;
    assert_eq!(
        d.and_then(|d| d.db_instance_status().map(str::to_string))
            .as_deref(),
        Some("available"),
        "Orphan keeps the instance"
    );
    assert!(w.proxy.requests("DeleteDBInstance", Some(&kept)).is_empty());
    assert!(
        secret_data(w.ns(), &kept).await.is_some(),
        "Orphan keeps the connection Secret"
    );
    assert!(w.describe(&skipped).await.is_none());
    let deletes = w.proxy.requests("DeleteDBInstance", Some(&skipped));
    assert_eq!(
        deletes[0]
            .params
            .get("SkipFinalSnapshot")
            .map(String::as_str),
        Some("true")
    );
    let snap = w
        .rds
        .describe_db_snapshots()
        .db_snapshot_identifier(format!("{skipped}-final"))
        .send()
        .await;
    assert!(snap.is_err_and(
        |e| aws_sdk_rds::error::ProvideErrorMetadata::code(&e) == Some("DBSnapshotNotFound")
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_after_create_makes_exactly_one_instance() {
    let _lock = support::exclusive().await;
    let mut w = World::start("aws-crash", &unique_name("aws-crash")).await;
    let name = unique_name("e2e-crash");
    // CreateDBInstance reaches moto; its response never reaches the operator.
    w.proxy
        .add(Rule::new("CreateDBInstance", Effect::Hold).times(1));
    kubectl_apply(&instance_yaml(&name, &w.pc, w.ns(), "", ""));
    w.proxy.held(TIMEOUT).await;
    w.op.kill();
    assert_eq!(w.count(&name).await, 1, "the create reached the emulator");
    let obj = get_instance(&name)
        .await
        .unwrap_or_else(|| panic!("object gone"));
    assert_eq!(
        obj.annotations().get(EXTERNAL_NAME),
        Some(&name),
        "the identifier was persisted before the call"
    );
    assert!(
        obj.status
            .as_ref()
            .and_then(|s| s.at_provider.as_ref())
            .is_none(),
        "killed before the status write: {:?}",
        obj.status
    );
    let stored = secret_data(w.ns(), &name)
        .await
        .and_then(|d| d.get("password").cloned());
    assert!(stored.is_some(), "the password was stored before the call");

    w.op.restart(&[]);
    let obj = wait_instance_condition(&name, "Ready", "True", Some("Available"), None).await;
    assert_eq!(w.count(&name).await, 1, "exactly one instance");
    assert_eq!(
        w.proxy.requests("CreateDBInstance", None).len(),
        1,
        "no second CreateDBInstance"
    );
    let password = w.created_password(&name);
    let data = secret_data(w.ns(), &name).await.unwrap_or_default();
    assert_eq!(data.get("password"), Some(&password));
    assert!(data.get("host").is_some_and(|h| !h.is_empty()));
    assert!(
        obj.status
            .and_then(|s| s.at_provider)
            .and_then(|a| a.arn)
            .is_some()
    );
    assert!(
        w.proxy.requests("ModifyDBInstance", Some(&name)).is_empty(),
        "the adopted-after-crash instance needs no password reset"
    );

    kubectl_ok([
        "delete",
        "rdsinstances.aws.dbclaim.io",
        &name,
        "--wait=false",
    ]);
    wait_gone(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitional_states_are_polled_and_block_modifications() {
    let _lock = support::exclusive().await;
    let w = World::start("aws-states", &unique_name("aws-states")).await;
    let name = unique_name("e2e-states");

    // creating: Ready=False Creating, polled (not a busy loop) until available.
    let rule = w.proxy.add(
        Rule::new("DescribeDBInstances", Effect::Status("creating".into())).for_instance(&name),
    );
    kubectl_apply(&instance_yaml(&name, &w.pc, w.ns(), "", ""));
    wait_instance_condition(&name, "Ready", "False", Some("Creating"), Some("creating")).await;
    let t0 = Instant::now();
    let before = w.proxy.requests("DescribeDBInstances", Some(&name)).len();
    tokio::time::sleep(Duration::from_secs(25)).await;
    let polls = w.proxy.requests("DescribeDBInstances", Some(&name)).len() - before;
    eprintln!(
        "{polls} DescribeDBInstances in {:?} while creating",
        t0.elapsed()
    );
    assert!(
        (2..=6).contains(&polls),
        "polled every ~10 s, not a busy loop: {polls} in 25 s"
    );
    w.proxy.remove(rule);
    wait_instance_condition(&name, "Ready", "True", Some("Available"), None).await;

    // modifying: no ModifyDBInstance until available again.
    let rule = w.proxy.add(
        Rule::new("DescribeDBInstances", Effect::Status("modifying".into())).for_instance(&name),
    );
    patch_instance(&name, r#"{"spec":{"forProvider":{"allocatedStorage":50}}}"#);
    wait_instance_condition(
        &name,
        "Ready",
        "False",
        Some("Unavailable"),
        Some("waiting to apply allocatedStorage=50"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert!(
        w.proxy.requests("ModifyDBInstance", Some(&name)).is_empty(),
        "no modify while modifying"
    );
    assert_eq!(w.storage(&name).await, Some(20));
    w.proxy.remove(rule);
    wait_for(TIMEOUT, "moto to report 50 GiB", || async {
        w.storage(&name).await == Some(50)
    })
    .await;
    wait_instance_condition(&name, "Ready", "True", Some("Available"), None).await;

    // storage-full: Unavailable with advice; a storage increase (only) is sent.
    let rule = w.proxy.add(
        Rule::new("DescribeDBInstances", Effect::Status("storage-full".into())).for_instance(&name),
    );
    // An available instance is looked at rarely (5 min); a change wakes it.
    patch_instance(&name, r#"{"metadata":{"labels":{"poke":"storage-full"}}}"#);
    wait_instance_condition(
        &name,
        "Ready",
        "False",
        Some("Unavailable"),
        Some("raise storageGB"),
    )
    .await;
    patch_instance(
        &name,
        r#"{"spec":{"forProvider":{"allocatedStorage":60,"backupRetentionPeriod":3}}}"#,
    );
    wait_for(TIMEOUT, "moto to report 60 GiB", || async {
        w.storage(&name).await == Some(60)
    })
    .await;
    let modifies = w.proxy.requests("ModifyDBInstance", Some(&name));
    let last = modifies
        .last()
        .map(|l| l.params.clone())
        .unwrap_or_default();
    assert_eq!(last.get("AllocatedStorage").map(String::as_str), Some("60"));
    assert!(
        !last.contains_key("BackupRetentionPeriod"),
        "only storage while storage-full: {last:?}"
    );
    w.proxy.remove(rule);
    wait_for(
        TIMEOUT,
        "backup retention to follow once available",
        || async {
            w.describe(&name)
                .await
                .and_then(|d| d.backup_retention_period())
                == Some(3)
        },
    )
    .await;
    wait_instance_condition(&name, "Ready", "True", Some("Available"), None).await;

    kubectl_ok([
        "delete",
        "rdsinstances.aws.dbclaim.io",
        &name,
        "--wait=false",
    ]);
    wait_gone(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_503_are_retried_with_backoff() {
    let _lock = support::exclusive().await;
    let w = World::start("aws-throttle", &unique_name("aws-throttle")).await;
    let name = unique_name("e2e-throttle");
    w.proxy.add(
        Rule::new("DescribeDBInstances", Effect::Throttle)
            .for_instance(&name)
            .times(4),
    );
    w.proxy.add(
        Rule::new("CreateDBInstance", Effect::Unavailable)
            .for_instance(&name)
            .times(4),
    );
    let started = Instant::now();
    kubectl_apply(&instance_yaml(&name, &w.pc, w.ns(), "", ""));
    let obj = wait_instance_condition(&name, "Ready", "True", Some("Available"), None).await;
    eprintln!(
        "Ready after {:?} through 4 throttles and 4 503s",
        started.elapsed()
    );
    assert_eq!(
        instance_condition(&obj, "Synced").map(|c| c.0),
        Some("True".into())
    );
    let log = w.proxy.log();
    let throttled = log
        .iter()
        .filter(|l| l.injected.as_deref() == Some("Throttle"))
        .count();
    let unavailable = log
        .iter()
        .filter(|l| l.injected.as_deref() == Some("Unavailable"))
        .count();
    assert_eq!((throttled, unavailable), (4, 4));
    assert_eq!(w.count(&name).await, 1);
    let creates: Vec<_> = log
        .iter()
        .filter(|l| l.action == "CreateDBInstance" && l.status == 200)
        .collect();
    assert_eq!(creates.len(), 1);
    // Retries are spaced out, not hammered.
    let describes: Vec<Instant> = log
        .iter()
        .filter(|l| {
            l.action == "DescribeDBInstances" && l.params.get("DBInstanceIdentifier") == Some(&name)
        })
        .map(|l| l.at)
        .collect();
    let span = describes
        .windows(2)
        .map(|p| p[1] - p[0])
        .take(4)
        .sum::<Duration>();
    assert!(
        span >= Duration::from_millis(500),
        "retries with backoff: 4 throttled calls within {span:?}"
    );
    let metrics = w.op.metrics();
    assert!(
        metrics.contains("dbclaim_provider_requests_total{provider=\"aws\",operation=\"CreateDBInstance\",result=\"error\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("dbclaim_provider_requests_total{provider=\"aws\",operation=\"CreateDBInstance\",result=\"success\"} 1"), "{metrics}");

    kubectl_ok([
        "delete",
        "rdsinstances.aws.dbclaim.io",
        &name,
        "--wait=false",
    ]);
    wait_gone(&name).await;
}

/// Installs the shipped AWS compositions.
pub(crate) fn apply_aws_compositions() {
    kubectl_ok([
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        "compositions/aws-rds-postgres.yaml",
        "-f",
        "compositions/aws-rds-mysql.yaml",
    ]);
}

pub(crate) fn aws_claim(ns: &str, name: &str, engine: &str, extra: &str) -> String {
    let composition = format!("aws-rds-{engine}");
    claim_yaml(ns, name, "").replace("engine: postgres", &format!("engine: {engine}"))
        + &format!("  compositionRef: {{name: {composition}}}\n{extra}")
}

/// The RDSInstance a claim composed.
async fn composed_instance(ns: &str, claim: &str) -> RDSInstance {
    let c = get_claim(ns, claim)
        .await
        .unwrap_or_else(|| panic!("no claim {claim}"));
    let r = c
        .status
        .and_then(|s| s.resources.into_iter().find(|r| r.kind == "RDSInstance"))
        .unwrap_or_else(|| panic!("claim {claim} lists no RDSInstance"));
    get_instance(&r.resource_name)
        .await
        .unwrap_or_else(|| panic!("no RDSInstance {}", r.resource_name))
}

async fn delete_claim(ns: &str, name: &str) {
    kubectl_ok(["delete", "databaseclaim", name, "-n", ns, "--wait=false"]);
    wait_for(
        TIMEOUT,
        &format!("claim {ns}/{name} to be gone"),
        || async { get_claim(ns, name).await.is_none() },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_mysql_claims_on_rds_become_ready_and_grow() {
    let _lock = support::exclusive().await;
    let w = World::start("aws-claims", "default").await;
    apply_aws_compositions();
    let ns = w.ns().to_string();
    kubectl_apply(&aws_claim(
        &ns,
        "orders",
        "postgres",
        "  size: medium\n  version: \"16\"\n  databaseName: orders\n  parameters: {multiAZ: \"true\", backupRetentionDays: \"14\"}\n",
    ));
    kubectl_apply(&aws_claim(&ns, "carts", "mysql", "  databaseName: carts\n"));

    for (claim, engine, class, version, port) in [
        ("orders", "postgres", "db.m6g.large", "16", 5432),
        ("carts", "mysql", "db.t3.micro", "8.0", 3306),
    ] {
        let started = Instant::now();
        let c = wait_ready(&ns, claim).await;
        eprintln!("{engine} claim Ready {:?} after apply", started.elapsed());
        assert_eq!(
            condition(&c, "Synced").map(|c| c.1),
            Some("ReconcileSuccess".into())
        );
        let obj = composed_instance(&ns, claim).await;
        let id = obj
            .annotations()
            .get(EXTERNAL_NAME)
            .cloned()
            .unwrap_or_default();
        assert_eq!(id, dbclaim::naming::composed_name(&ns, claim, "instance"));
        let d = w
            .describe(&id)
            .await
            .unwrap_or_else(|| panic!("moto has no {id}"));
        assert_eq!(d.engine(), Some(engine));
        assert_eq!(d.db_instance_class(), Some(class), "size → instance class");
        assert_eq!(d.engine_version(), Some(version));
        assert_eq!(d.allocated_storage(), Some(20));
        assert_eq!(d.db_name(), Some(claim));
        let tags = w.tags(&id).await;
        assert_eq!(tags.get("managed-by").map(String::as_str), Some("dbclaim"));
        assert_eq!(tags.get("dbclaim.io/namespace"), Some(&ns));
        assert_eq!(
            tags.get("dbclaim.io/claim").map(String::as_str),
            Some(claim)
        );
        if claim == "orders" {
            assert_eq!(d.multi_az(), Some(true), "parameters.multiAZ");
            assert_eq!(
                d.backup_retention_period(),
                Some(14),
                "parameters.backupRetentionDays"
            );
        }
        let data = secret_data(&ns, &format!("{claim}-connection"))
            .await
            .unwrap_or_else(|| panic!("no claim Secret"));
        let address = d.endpoint().and_then(|e| e.address()).unwrap_or_default();
        assert_eq!(data.get("host").map(String::as_str), Some(address));
        assert_eq!(data.get("port"), Some(&port.to_string()));
        assert_eq!(data.get("database").map(String::as_str), Some(claim));
        assert_eq!(data.get("username").map(String::as_str), Some("dbadmin"));
        assert_eq!(
            data.get("password"),
            Some(&w.created_password(&id)),
            "the password the instance was created with"
        );
        let scheme = if engine == "postgres" {
            "postgresql"
        } else {
            "mysql"
        };
        assert!(
            data.get("uri")
                .is_some_and(|u| u.starts_with(&format!("{scheme}://dbadmin:")))
        );
    }

    // A growing claim: storageGB 20 → 50 reaches RDS and the claim stays Ready.
    let id = dbclaim::naming::composed_name(&ns, "orders", "instance");
    kubectl_ok([
        "patch",
        "databaseclaims.v1alpha1.dbclaim.io",
        "orders",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"storageGB":50}}"#,
    ]);
    let deadline = Instant::now() + TIMEOUT;
    while w.storage(&id).await != Some(50) {
        let c = get_claim(&ns, "orders")
            .await
            .unwrap_or_else(|| panic!("claim gone"));
        assert_eq!(
            condition(&c, "Ready").map(|c| c.0),
            Some("True".into()),
            "the claim stays Ready while growing"
        );
        assert!(Instant::now() < deadline, "moto never reported 50 GiB");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_for(
        TIMEOUT,
        "the claim to observe its new generation, Ready",
        || async {
            get_claim(&ns, "orders").await.is_some_and(|c| {
                c.status.as_ref().and_then(|s| s.observed_generation) == c.metadata.generation
                    && condition(&c, "Ready").is_some_and(|r| r.0 == "True")
            })
        },
    )
    .await;
    assert_eq!(w.proxy.requests("ModifyDBInstance", Some(&id)).len(), 1);

    delete_claim(&ns, "orders").await;
    delete_claim(&ns, "carts").await;
    assert!(
        w.describe(&id).await.is_none(),
        "deletionPolicy Delete removes the instance"
    );
    assert!(
        w.describe(&dbclaim::naming::composed_name(&ns, "carts", "instance"))
            .await
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulator_outage_is_reported_on_the_claim_then_recovers() {
    let _lock = support::exclusive().await;
    let w = World::start("aws-outage", "default").await;
    apply_aws_compositions();
    let ns = w.ns().to_string();
    kubectl_apply(&aws_claim(&ns, "app", "postgres", "  databaseName: app\n"));
    wait_ready(&ns, "app").await;
    let id = dbclaim::naming::composed_name(&ns, "app", "instance");

    // The endpoint refuses connections; a change makes the provider call it.
    w.proxy.stop().await;
    kubectl_ok([
        "patch",
        "databaseclaims.v1alpha1.dbclaim.io",
        "app",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        r#"{"spec":{"storageGB":30}}"#,
    ]);
    let c = wait_condition(&ns, "app", "Synced", "False", Some("ProviderError")).await;
    let message = condition(&c, "Synced").map(|c| c.2).unwrap_or_default();
    eprintln!("claim during the outage: {message}");
    assert!(message.contains("cannot reach the RDS API"), "{message}");
    assert!(message.contains(&w.proxy.endpoint), "{message}");
    assert_eq!(
        condition(&c, "Ready").map(|c| c.0),
        Some("True".into()),
        "an API outage is not a database outage"
    );

    w.proxy.start_again().await;
    wait_condition(&ns, "app", "Synced", "True", Some("ReconcileSuccess")).await;
    wait_for(TIMEOUT, "moto to report 30 GiB", || async {
        w.storage(&id).await == Some(30)
    })
    .await;
    wait_ready(&ns, "app").await;

    delete_claim(&ns, "app").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_provider_config_is_a_clear_condition_on_the_claim() {
    let _lock = support::exclusive().await;
    let w = World::start("aws-badcfg", "default").await;
    apply_aws_compositions();
    let ns = w.ns().to_string();

    // An endpoint that is no URL.
    apply_provider_config("default", Some("localhost:4566"), ACCESS_KEY);
    kubectl_apply(&aws_claim(&ns, "db", "postgres", "  databaseName: db\n"));
    let c = wait_condition(&ns, "db", "Synced", "False", Some("ProviderError")).await;
    let message = condition(&c, "Synced").map(|c| c.2).unwrap_or_default();
    eprintln!("bad endpoint: {message}");
    assert!(
        message.contains("endpoint \"localhost:4566\"") && message.contains("https://"),
        "{message}"
    );
    let pc: Api<dbclaim::api::aws::ProviderConfig> = Api::all(support::kube_client().await);
    let status = pc
        .get("default")
        .await
        .ok()
        .and_then(|p| p.status)
        .unwrap_or_default();
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "False" && c.message.contains("endpoint")),
        "{status:?}"
    );
    assert!(
        w.proxy.log().is_empty(),
        "nothing is sent to a bad endpoint"
    );

    // Credentials AWS refuses.
    w.proxy.add(
        Rule::new(
            "DescribeDBInstances",
            Effect::Error {
                http_status: 403,
                code: "InvalidClientTokenId".into(),
                message: "The security token included in the request is invalid.".into(),
            },
        )
        .for_access_key("AKIAREVOKEDKEY000000"),
    );
    apply_provider_config("default", Some(&w.proxy.endpoint), "AKIAREVOKEDKEY000000");
    wait_for(
        TIMEOUT,
        "the claim to report refused credentials",
        || async {
            get_claim(&ns, "db").await.is_some_and(|c| {
                condition(&c, "Synced")
                    .is_some_and(|s| s.0 == "False" && s.2.contains("AWS refused the credentials"))
            })
        },
    )
    .await;
    let c = get_claim(&ns, "db")
        .await
        .unwrap_or_else(|| panic!("claim gone"));
    let message = condition(&c, "Synced").map(|c| c.2).unwrap_or_default();
    eprintln!("refused credentials: {message}");
    assert!(
        message.contains("InvalidClientTokenId") && message.contains("credentials Secret"),
        "{message}"
    );
    assert!(!message.contains(SECRET_KEY), "no secret in conditions");
    let refused = w.proxy.requests("DescribeDBInstances", None).len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let later = w.proxy.requests("DescribeDBInstances", None).len();
    assert!(
        later - refused <= 3,
        "no retry storm on refused credentials: {} more calls in 10 s",
        later - refused
    );

    // Fixed: the claim recovers without being touched.
    apply_provider_config("default", Some(&w.proxy.endpoint), ACCESS_KEY);
    wait_ready(&ns, "db").await;
    delete_claim(&ns, "db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_protection_blocks_the_delete_until_the_spec_turns_it_off() {
    let _lock = support::exclusive().await;
    let w = World::start("aws-protect", &unique_name("aws-protect")).await;
    let name = unique_name("e2e-protect");
    kubectl_apply(&instance_yaml(
        &name,
        &w.pc,
        w.ns(),
        "    deletionProtection: true\n",
        "",
    ));
    wait_instance_condition(&name, "Ready", "True", None, None).await;
    assert_eq!(
        w.describe(&name)
            .await
            .and_then(|d| d.deletion_protection()),
        Some(true)
    );

    kubectl_ok([
        "delete",
        "rdsinstances.aws.dbclaim.io",
        &name,
        "--wait=false",
    ]);
    let obj =
        wait_instance_condition(&name, "Synced", "False", None, Some("deletion protection")).await;
    let message = instance_condition(&obj, "Synced")
        .map(|c| c.2)
        .unwrap_or_default();
    eprintln!("protected: {message}");
    assert!(message.contains("deletionProtection to false"), "{message}");
    assert_eq!(
        instance_condition(&obj, "Ready").map(|c| c.1),
        Some("Deleting".into())
    );
    assert!(
        w.proxy.requests("DeleteDBInstance", Some(&name)).is_empty(),
        "a protected instance is not deleted"
    );
    assert!(w.describe(&name).await.is_some());

    // The spec turns it off: dbclaim modifies, then deletes.
    patch_instance(
        &name,
        r#"{"spec":{"forProvider":{"deletionProtection":false}}}"#,
    );
    wait_gone(&name).await;
    assert!(w.describe(&name).await.is_none());
    let modifies = w.proxy.requests("ModifyDBInstance", Some(&name));
    assert_eq!(
        modifies
            .last()
            .and_then(|m| m.params.get("DeletionProtection"))
            .map(String::as_str),
        Some("false")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_instance_is_adopted_only_when_a_person_names_it() {
    let _lock = support::exclusive().await;
    let w = World::start("aws-adopt", &unique_name("aws-adopt")).await;
    // Two instances made outside dbclaim.
    let legacy = unique_name("legacy-db");
    let clash = unique_name("e2e-clash");
    for id in [&legacy, &clash] {
        w.rds
            .create_db_instance()
            .db_instance_identifier(id.as_str())
            .db_instance_class("db.t3.micro")
            .engine("postgres")
            .engine_version("16")
            .allocated_storage(20)
            .db_name("orders")
            .master_username("dbadmin")
            .master_user_password("made-by-hand-1234")
            .storage_encrypted(true)
            .backup_retention_period(7)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create {id}: {e:?}"));
    }

    // Named through the annotation: adopted, tagged, password reset to the Secret's.
    let adopter = unique_name("e2e-adopter");
    let yaml = instance_yaml(&adopter, &w.pc, w.ns(), "", "").replace(
        "metadata: {name: ",
        &format!("metadata: {{annotations: {{{EXTERNAL_NAME}: {legacy}}}, name: "),
    );
    kubectl_apply(&yaml);
    wait_instance_condition(&adopter, "Ready", "True", Some("Available"), None).await;
    assert!(
        w.proxy.requests("CreateDBInstance", None).is_empty(),
        "adopted, not created"
    );
    assert_eq!(w.tags(&legacy).await.get(OWNER_TAG), Some(&adopter));
    let resets = w.proxy.requests("ModifyDBInstance", Some(&legacy));
    let reset = resets
        .iter()
        .find_map(|m| m.params.get("MasterUserPassword").cloned());
    let data = secret_data(w.ns(), &adopter).await.unwrap_or_default();
    assert!(reset.is_some(), "the master password is reset: {resets:#?}");
    assert_eq!(
        data.get("password"),
        reset.as_ref(),
        "to the one in the Secret"
    );

    // Same identifier by accident (derived from the name): a conflict, untouched.
    kubectl_apply(&instance_yaml(&clash, &w.pc, w.ns(), "", ""));
    let obj = wait_instance_condition(
        &clash,
        "Synced",
        "False",
        Some("ReconcileError"),
        Some("exists and is not ours"),
    )
    .await;
    let message = instance_condition(&obj, "Synced")
        .map(|c| c.2)
        .unwrap_or_default();
    eprintln!("conflict: {message}");
    assert!(message.contains("dbclaim did not create it"), "{message}");
    assert!(
        w.proxy
            .requests("ModifyDBInstance", Some(&clash))
            .is_empty()
    );
    assert!(!w.tags(&clash).await.contains_key(OWNER_TAG));

    // Deleting the conflicting object leaves the other instance alone.
    kubectl_ok([
        "delete",
        "rdsinstances.aws.dbclaim.io",
        &clash,
        &adopter,
        "--wait=false",
    ]);
    wait_gone(&clash).await;
    wait_gone(&adopter).await;
    assert!(w.describe(&clash).await.is_some(), "not ours: not deleted");
    assert!(
        w.describe(&legacy).await.is_none(),
        "adopted: deleted with its object"
    );
}
