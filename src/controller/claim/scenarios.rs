//! The claim reconcile against a mock API server: each scenario lists the
//! exact requests of one pass, in order, and what the server answers.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::{reconcile, requeue};
use crate::api::aws::RDSInstance;
use crate::api::postgres::Database;
use crate::api::{DatabaseClaim, DatabaseClaimStatus, DeletionPolicy};
use crate::conditions::{Cond, ReadyReason, SyncedReason};
use crate::controller::kinds::Kind;
use crate::engine::Scope;
use crate::testing::*;

const CLAIM: &str = "/apis/dbclaim.io/v1beta1/namespaces/team-a/databaseclaims/orders-db";
const CLAIM_STATUS: &str =
    "/apis/dbclaim.io/v1beta1/namespaces/team-a/databaseclaims/orders-db/status";
const DATABASE: &str = "/apis/postgres.dbclaim.io/v1alpha1/databases/team-a-orders-db-database";
const DATABASES: &str = "/apis/postgres.dbclaim.io/v1alpha1/databases";
const RDS_INSTANCES: &str = "/apis/aws.dbclaim.io/v1alpha1/rdsinstances";
/// Composed objects of team-a/orders-db (its connection Secret has no resource label).
const COMPOSED_SELECTOR: &str =
    "dbclaim.io/claim-namespace=team-a,dbclaim.io/claim-name=orders-db,dbclaim.io/resource";
/// Where the postgres provider writes the Database's credentials.
const PROVIDER_SECRET: &str = "/api/v1/namespaces/dbclaim-system/secrets/team-a-orders-db-database";
const SECRET: &str = "/api/v1/namespaces/team-a/secrets/orders-db-connection";
const POLICIES: &str = "/apis/dbclaim.io/v1alpha1/claimpolicies";
const NAMESPACE: &str = "/api/v1/namespaces/team-a";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/team-a/events";
const CONFIG_MAP: &str = "/api/v1/namespaces/team-a/configmaps/team-a-orders-db-config";

const CREDENTIALS: &[(&str, &str)] = &[
    ("host", "pg.example"),
    ("port", "5432"),
    ("database", "team-a_orders"),
    ("username", "team-a_orders"),
    ("password", "s3cret"),
];

fn orders_db() -> DatabaseClaim {
    claim("orders-db").database_name("orders")
}

fn database() -> Kind {
    kind::<Database>(Scope::Cluster)
}

fn config_map() -> Kind {
    kind::<ConfigMap>(Scope::Namespaced)
}

fn world() -> World {
    World::default()
        .composition(shared_postgres())
        .kind(database())
}

/// The Database as the provider leaves it once the database exists.
fn ready_database(claim: &DatabaseClaim) -> Value {
    let db = stored(applied(claim, &shared_postgres(), "database"));
    with_conditions(db, &[("Ready", "True"), ("Synced", "True")])
}

/// The provider's connection Secret, marked for its Database (the claim
/// reads no other Secret of a cluster-scoped object).
fn provider_secret() -> Secret {
    secret("team-a-orders-db-database")
        .ns(OPERATOR_NAMESPACE)
        .annotation(
            crate::contract::postgres::DATABASE_ANNOTATION,
            "team-a-orders-db-database",
        )
        .data(CREDENTIALS)
}

/// The claim's connection Secret as a previous pass wrote it.
fn written_secret(claim: &DatabaseClaim) -> Secret {
    let mut s = connection_secret(claim, "shared-postgres", CREDENTIALS);
    s.metadata.uid = Some("uid-secret".into());
    s
}

fn synced() -> Cond {
    Cond::synced(true, SyncedReason::ReconcileSuccess, "")
}

/// The status of a claim whose Database is ready and Secret written.
fn ready_status() -> DatabaseClaimStatus {
    status()
        .composition("shared-postgres")
        .resource("database", &database(), "team-a-orders-db-database", true)
        .secret("orders-db-connection")
        .conditions(synced(), Cond::ready(true, ReadyReason::Available, ""))
}

/// The status a first pass leaves: composed, the Database not ready yet.
fn creating_status() -> DatabaseClaimStatus {
    status()
        .composition("shared-postgres")
        .resource("database", &database(), "team-a-orders-db-database", false)
        .conditions(
            synced(),
            Cond::ready(false, ReadyReason::Creating, "waiting for: Database"),
        )
}

/// `status.conditions` as (type, status, reason), in the order a pass sets them.
fn conditions(list: &[(&str, &str, &str)]) -> Value {
    list.iter()
        .map(|(t, s, r)| json!({"type": t, "status": s, "reason": r}))
        .collect()
}

/// The conditions of a claim that turned Ready in this pass.
fn ready_conditions() -> Value {
    conditions(&[
        ("Synced", "True", "ReconcileSuccess"),
        ("Ready", "True", "Available"),
        ("Reconciling", "False", "Idle"),
        ("Stalled", "False", "Idle"),
    ])
}

/// One pass of the claim reconcile against `script`; its error as text.
/// A pass in `world()` on `claim`, whose Database is ready: its reads,
/// then `rest`.
async fn pass_ready(
    claim: &DatabaseClaim,
    rest: Vec<Expect>,
) -> (Result<Action, String>, Transcript) {
    let reads = [
        get(DATABASE).returns(ready_database(claim)),
        get(PROVIDER_SECRET).returns(provider_secret()),
    ];
    pass(
        world(),
        claim.clone(),
        reads.into_iter().chain(rest).collect(),
    )
    .await
}

async fn pass(
    world: World,
    claim: DatabaseClaim,
    script: Vec<Expect>,
) -> (Result<Action, String>, Transcript) {
    let claim = Arc::new(claim);
    let (result, transcript) =
        verify(script, |client| reconcile(claim, world.context(client))).await;
    (result.map_err(|e| e.to_string()), transcript)
}

#[tokio::test]
async fn new_claim_first_gets_the_finalizer_and_nothing_else() {
    let claim = orders_db();
    let (result, _) = pass(
        world(),
        claim.clone(),
        vec![
            json_patch(CLAIM)
                .body(json!([
                    {"op": "test", "path": "/metadata/finalizers", "value": null},
                    {"op": "add", "path": "/metadata/finalizers", "value": ["dbclaim.io/finalizer"]},
                ]))
                .returns(claim.finalized()),
        ],
    )
    .await;
    assert_eq!(result, Ok(Action::await_change()));
}

#[tokio::test]
async fn new_claim_composes_its_objects_and_reports_once() {
    let claim = orders_db().finalized();
    // A new claim's object gets the injective name: <ns>-<claim>-<resource>-<hash>.
    let name = crate::naming::composed_name("team-a", "orders-db", "database");
    let path = format!("{DATABASES}/{name}");
    let (result, _) = pass(
        world(),
        claim.clone(),
        vec![
            // A spec not judged yet: the policies the API server holds now.
            get(POLICIES).returns(list::<Value>(&[])),
            get(&path).not_found(),
            apply(&path)
                .body(applied(&claim, &shared_postgres(), "database"))
                .body(json!({"spec": {"forProvider": {"databaseName": "team-a_orders"}}}))
                // Cluster-scoped: no owner reference to a namespaced claim.
                .lacks("/metadata/ownerReferences")
                // The provider's finalizer, so it need not patch it in.
                .body(json!({"metadata": {"finalizers": ["postgres.dbclaim.io/finalizer"]}}))
                .echo_with(server_fields()),
            // No credentials yet: the Secret is only looked for.
            get(SECRET).not_found(),
            apply(CLAIM_STATUS)
                .body(json!({"status": {
                    "observedGeneration": 1,
                    "composition": {"name": "shared-postgres"},
                    "resources": [{"name": "database", "kind": "Database",
                        "resourceName": name, "ready": false}],
                    "conditions": conditions(&[
                        ("Synced", "True", "ReconcileSuccess"),
                        ("Ready", "False", "Creating"),
                        ("Reconciling", "True", "Creating"),
                        ("Stalled", "False", "Idle"),
                    ]),
                }}))
                .lacks("/status/connectionSecretRef")
                .returns(&claim),
            // One event for the pass, naming each step.
            create(EVENTS).body(json!({
                "type": "Normal",
                "reason": "ResourceCreated",
                "note": format!("composition shared-postgres selected; created Database {name}"),
                "regarding": {"kind": "DatabaseClaim", "name": "orders-db"},
            })),
        ],
    )
    .await;
    assert_eq!(result, Ok(Action::requeue(requeue::NOT_DONE)));
}

#[tokio::test]
async fn ready_database_publishes_the_connection_secret() {
    let claim = orders_db().finalized().with_status(creating_status());
    let (result, _) = pass_ready(
        &claim,
        vec![
            get(SECRET).not_found(),
            apply(SECRET)
                .body(json!({"apiVersion": "v1", "kind": "Secret"}))
                .body(
                    serde_json::to_value(connection_secret(&claim, "shared-postgres", CREDENTIALS))
                        .unwrap_or_default(),
                )
                .echo_with(server_fields()),
            apply(CLAIM_STATUS)
                .body(json!({"status": {
                    "resources": [{"name": "database", "ready": true}],
                    "connectionSecretRef": {"name": "orders-db-connection"},
                    "binding": {"name": "orders-db-connection"},
                    "conditions": ready_conditions(),
                }}))
                .returns(&claim),
            create(EVENTS).body(json!({
                "type": "Normal",
                "reason": "Ready",
                "note": "connection secret orders-db-connection written; the database is ready",
            })),
        ],
    )
    .await;
    assert_eq!(result, Ok(Action::requeue(requeue::READY)));
}

/// The provider writes its Secret complete before the database exists
/// (the password first, for crash safety). Before the Database is ready
/// the claim writes no Secret, and its status does not move as details
/// arrive (once an extra status write per claim, then another with its
/// Secret): the Ready pass writes both.
#[tokio::test]
async fn details_before_the_database_is_ready_write_no_secret_and_no_new_message() {
    let claim = orders_db().finalized().with_status(creating_status());
    let not_ready = stored(applied(&claim, &shared_postgres(), "database"));
    let waiting = "waiting for: Database team-a-orders-db-database: has no Ready condition yet";
    let (result, transcript) = pass(
        world(),
        claim.clone(),
        vec![
            get(DATABASE).returns(not_ready),
            get(PROVIDER_SECRET).returns(provider_secret()),
            get(SECRET).not_found(),
            apply(CLAIM_STATUS)
                .body(json!({"status": {"conditions": [
                    {"type": "Synced", "status": "True"},
                    {"type": "Ready", "status": "False", "reason": "Creating", "message": waiting},
                    {"type": "Reconciling", "status": "True", "message": waiting},
                    {"type": "Stalled", "status": "False"},
                ]}}))
                .lacks("/status/connectionSecretRef")
                .returns(&claim),
        ],
    )
    .await;
    assert_eq!(result, Ok(Action::requeue(requeue::NOT_DONE)));
    assert_eq!(transcript.writes().len(), 1, "only the status");
}

#[tokio::test]
async fn claim_at_rest_reads_and_writes_nothing() {
    let claim = orders_db().finalized().with_status(ready_status());
    let (result, transcript) =
        pass_ready(&claim, vec![get(SECRET).returns(written_secret(&claim))]).await;
    assert_eq!(result, Ok(Action::requeue(requeue::READY)));
    assert!(transcript.writes().is_empty(), "a claim at rest wrote");
}

#[tokio::test]
async fn composition_that_drops_a_resource_deletes_its_object() {
    let before = shared_postgres().resource(
        "config",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"tier": "standard"}}),
    );
    let claim = orders_db().finalized().with_status(ready_status().resource(
        "config",
        &config_map(),
        "team-a-orders-db-config",
        true,
    ));
    let (result, _) = pass(
        World::default()
            .composition(before.clone().without("config"))
            .kind(database())
            .kind(config_map()),
        claim.clone(),
        vec![
            get(DATABASE).returns(ready_database(&claim)),
            get(PROVIDER_SECRET).returns(provider_secret()),
            get(CONFIG_MAP).returns(stored(applied(&claim, &before, "config"))),
            delete(CONFIG_MAP).body(json!({"propagationPolicy": "Background"})),
            get(SECRET).returns(written_secret(&claim)),
            apply(CLAIM_STATUS)
                .body(json!({"status": {"resources": [{"name": "database"}]}}))
                .returns(&claim),
        ],
    )
    .await;
    assert_eq!(result, Ok(Action::requeue(requeue::READY)));
}

#[tokio::test]
async fn deletion_with_orphan_releases_the_objects_then_the_claim() {
    let claim = orders_db()
        .deletion_policy(DeletionPolicy::Orphan)
        .finalized()
        .deleting()
        .with_status(ready_status());
    let (result, _) = pass(
        world().kind(kind::<RDSInstance>(Scope::Cluster)),
        claim.clone(),
        vec![
            // Nothing to wait for: no status write, the claim is going.
            // Composed objects are found by their labels, across every
            // kind dbclaim composes (the status alone could miss some).
            get(RDS_INSTANCES)
                .query("labelSelector", COMPOSED_SELECTOR)
                .returns(metadata_list(&[])),
            get(DATABASES)
                .query("labelSelector", COMPOSED_SELECTOR)
                .returns(metadata_list(&[ready_database(&claim)])),
            get(DATABASE).returns(ready_database(&claim)),
            // The object loses its ties to the claim and stays.
            merge_patch(DATABASE)
                .body(json!({"metadata": {
                    "ownerReferences": null,
                    "labels": {
                        "dbclaim.io/claim-name": null,
                        "dbclaim.io/claim-namespace": null,
                        "dbclaim.io/composition": null,
                        "dbclaim.io/resource": null,
                        "dbclaim.io/deletion-policy": null,
                        "dbclaim.io/claim-uid": null,
                    },
                }}))
                .returns(ready_database(&claim)),
            // The connection Secret goes with the claim, by a delete bound
            // to the Secret's uid (the garbage collector lags behind).
            get(SECRET).returns(written_secret(&claim)),
            delete(SECRET).body(json!({"preconditions": {"uid": "uid-secret"}})),
            json_patch(CLAIM)
                .body(json!([
                    {"op": "test", "path": "/metadata/finalizers/0", "value": "dbclaim.io/finalizer"},
                    {"op": "remove", "path": "/metadata/finalizers/0"},
                ]))
                .returns(&claim),
        ],
    )
    .await;
    assert_eq!(result, Ok(Action::await_change()));
}

#[tokio::test]
async fn policy_refuses_a_claim_over_its_namespace_total_before_composing() {
    let quota = policy(
        "team-quota",
        json!({"namespaceSelector": {"matchLabels": {"tier": "shared"}}, "maxTotalStorageGB": 50}),
    );
    // Provisioned already, in the claim cache: 40 GB of the 50.
    let billing = claim("billing-db")
        .storage_gb(40)
        .with_status(ready_status());
    let claim = orders_db().finalized();
    // The policy was made just before the claim and its watch event is still
    // in flight: neither the policy cache nor the namespace cache (which
    // has the namespace without its label) shows it yet.
    let (result, _) = pass(
        world()
            .claim(billing)
            .claim(claim.clone())
            .namespace(namespace("team-a", &[])),
        claim.clone(),
        // A new claim: the policies and the namespace's labels from the API
        // server, the claims from the cache; then the verdict.
        vec![
            get(POLICIES).returns(list(&[quota])),
            get(NAMESPACE).returns(namespace("team-a", &[("tier", "shared")])),
            apply(CLAIM_STATUS)
                .body(json!({"status": {
                    "composition": {"name": "shared-postgres"},
                    "conditions": conditions(&[
                        ("Synced", "False", "PolicyViolation"),
                        ("Ready", "False", "Creating"),
                        ("Reconciling", "False", "Idle"),
                        ("Stalled", "True", "PolicyViolation"),
                    ]),
                }}))
                .check("the policy's message", |body| {
                    body.pointer("/status/conditions/0/message")
                        .and_then(Value::as_str)
                        .is_some_and(|m| {
                            m.starts_with(
                                "ClaimPolicy \"team-quota\" allows at most 50 GB in this namespace",
                            )
                        })
                })
                .lacks("/status/resources")
                .returns(&claim),
            create(EVENTS).body(json!({"type": "Warning", "reason": "PolicyViolation"})),
            create(EVENTS).body(json!({"type": "Normal", "reason": "CompositionSelected"})),
        ],
    )
    .await;
    assert_eq!(result, Ok(Action::requeue(requeue::NEEDS_CHANGE)));
}

#[tokio::test]
async fn foreign_secret_is_reported_and_left_alone() {
    let claim = orders_db().finalized().with_status(creating_status());
    let foreign = secret("orders-db-connection").data(&[("uri", "someone-elses")]);
    let (result, transcript) = pass_ready(
        &claim,
        vec![
            get(SECRET).returns(foreign),
            apply(CLAIM_STATUS)
                .body(json!({"status": {"conditions": conditions(&[
                    ("Synced", "False", "ReconcileError"),
                    // Not ready: the application has no credentials.
                    ("Ready", "False", "Creating"),
                    ("Reconciling", "True", "Creating"),
                    ("Stalled", "False", "Idle"),
                ])}}))
                .check("a Synced message naming the Secret", |body| {
                    body.pointer("/status/conditions/0/message")
                        .and_then(Value::as_str)
                        .is_some_and(|m| m.starts_with("Secret orders-db-connection already exists and is not owned by this claim"))
                })
                .lacks("/status/connectionSecretRef")
                .returns(&claim),
            create(EVENTS).body(json!({"type": "Warning", "reason": "ReconcileError"})),
        ],
    )
    .await;
    assert_eq!(result, Ok(Action::requeue(requeue::NOT_DONE)));
    assert!(
        transcript.writes().iter().all(|w| w.path != SECRET),
        "wrote a Secret dbclaim does not own"
    );
}

#[tokio::test]
async fn api_failure_stops_the_pass_before_anything_else_is_written() {
    let claim = orders_db().finalized();
    let name = crate::naming::composed_name("team-a", "orders-db", "database");
    let path = format!("{DATABASES}/{name}");
    let (result, transcript) = pass(
        world(),
        claim.clone(),
        vec![
            get(POLICIES).returns(list::<Value>(&[])),
            get(&path).not_found(),
            apply(&path).fails(409),
        ],
    )
    .await;
    let error = result.expect_err("a failed apply passed");
    // The error names what failed, for the log and the retry.
    assert!(
        error.contains(&format!("cannot apply Database {name}")),
        "{error}"
    );
    assert_eq!(transcript.writes().len(), 1);
}

#[tokio::test]
async fn pass_on_a_cache_without_its_last_status_write_repeats_nothing() {
    // The watch has not yet brought the status the first pass writes: the
    // second pass sees the same claim and must not write or announce again.
    let claim = Arc::new(orders_db().finalized().with_status(creating_status()));
    let reads = |secret: Option<Secret>| {
        let secret = match secret {
            Some(s) => get(SECRET).returns(s),
            None => get(SECRET).not_found(),
        };
        [
            get(DATABASE).returns(ready_database(&claim)),
            get(PROVIDER_SECRET).returns(provider_secret()),
            secret,
        ]
    };
    let mut script: Vec<Expect> = reads(None).into();
    script.extend([
        apply(SECRET),
        apply(CLAIM_STATUS).returns(&*claim),
        create(EVENTS).body(json!({"reason": "Ready"})),
    ]);
    script.extend(reads(Some(written_secret(&claim))));
    let (results, transcript) = verify(script, |client| async {
        let ctx = world().context(client);
        let first = reconcile(claim.clone(), ctx.clone()).await;
        let second = reconcile(claim.clone(), ctx).await;
        [first, second].map(|r| r.map_err(|e| e.to_string()))
    })
    .await;
    let ready = Ok(Action::requeue(requeue::READY));
    assert_eq!(results, [ready.clone(), ready]);
    assert_eq!(transcript.writes().len(), 3, "the second pass wrote");
}

/// A list as the API server answers LIST.
fn list<T: serde::Serialize>(items: &[T]) -> Value {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {}, "items": items})
}

/// A metadata list as the API server answers `list_metadata`.
fn metadata_list(items: &[Value]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|o| json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": o["metadata"]}))
        .collect();
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": items})
}

// ------------------------------------------------------------ revisions

/// A revision of shared-postgres holding `composition`'s spec.
fn revision_of(
    composition: &crate::api::Composition,
    number: i64,
) -> crate::api::CompositionRevision {
    crate::revision::build(
        "shared-postgres",
        Some("uid-comp"),
        &composition.spec,
        number,
    )
}

/// shared-postgres with a ConfigMap added: an edit of the platform team.
fn edited() -> crate::api::Composition {
    let mut c = shared_postgres();
    let template = json!({
        "name": "config",
        "base": {"apiVersion": "v1", "kind": "ConfigMap", "data": {"tier": "standard"}},
        "readinessChecks": [{"type": "None"}],
    });
    c.spec
        .resources
        .push(serde_json::from_value(template).unwrap_or_else(|e| panic!("{e}")));
    c
}

fn on_revision(
    status: DatabaseClaimStatus,
    r: &crate::api::CompositionRevision,
) -> DatabaseClaimStatus {
    DatabaseClaimStatus {
        composition_revision: Some(crate::api::claim::RevisionRef {
            name: kube::ResourceExt::name_any(r),
            revision: r.spec.revision,
        }),
        ..status
    }
}

#[tokio::test]
async fn claim_made_before_revisions_records_its_first_one_and_changes_nothing_else() {
    let claim = orders_db().finalized().with_status(ready_status());
    let first = revision_of(&shared_postgres(), 1);
    let (result, transcript) = pass(
        world().revision(first.clone()),
        claim.clone(),
        vec![
            get(DATABASE).returns(ready_database(&claim)),
            get(PROVIDER_SECRET).returns(provider_secret()),
            get(SECRET).returns(written_secret(&claim)),
            apply(CLAIM_STATUS)
                .body(json!({"status": {"compositionRevision": {
                    "name": kube::ResourceExt::name_any(&first), "revision": 1}}}))
                .returns(&claim),
        ],
    )
    .await;
    assert_eq!(result, Ok(Action::requeue(requeue::READY)));
    // The one write is the status: no composed object is touched.
    assert_eq!(transcript.writes().len(), 1);
}

#[tokio::test]
async fn manual_claim_stays_on_its_revision_when_a_newer_one_exists() {
    let first = revision_of(&shared_postgres(), 1);
    let mut claim = orders_db()
        .finalized()
        .with_status(on_revision(ready_status(), &first));
    claim.spec.composition_update_policy = crate::api::claim::UpdatePolicy::Manual;
    let (result, transcript) = pass(
        World::default()
            .composition(edited())
            .revision(first)
            .revision(revision_of(&edited(), 2))
            .kind(database())
            .kind(config_map()),
        claim.clone(),
        vec![
            get(DATABASE).returns(ready_database(&claim)),
            get(PROVIDER_SECRET).returns(provider_secret()),
            get(SECRET).returns(written_secret(&claim)),
        ],
    )
    .await;
    assert_eq!(result, Ok(Action::requeue(requeue::READY)));
    assert!(
        transcript.writes().is_empty(),
        "a Manual claim followed an edit"
    );
}

#[tokio::test]
async fn automatic_claim_renders_the_newest_revision() {
    let first = revision_of(&shared_postgres(), 1);
    let newest = revision_of(&edited(), 2);
    let claim = orders_db()
        .finalized()
        .with_status(on_revision(ready_status(), &first));
    let config = format!(
        "/api/v1/namespaces/team-a/configmaps/{}",
        crate::naming::composed_name("team-a", "orders-db", "config")
    );
    // The live composition is still the old spec (the revision made first):
    // the revision is what the claim renders.
    let (result, _) = pass(
        world()
            .revision(first)
            .revision(newest.clone())
            .kind(config_map()),
        claim.clone(),
        vec![
            get(DATABASE).returns(ready_database(&claim)),
            get(&config).not_found(),
            get(PROVIDER_SECRET).returns(provider_secret()),
            apply(&config)
                .body(applied(&claim, &edited(), "config"))
                .echo_with(server_fields()),
            get(SECRET).returns(written_secret(&claim)),
            apply(CLAIM_STATUS)
                .body(json!({"status": {
                    "compositionRevision": {"name": kube::ResourceExt::name_any(&newest), "revision": 2},
                    "resources": [{"name": "database"}, {"name": "config"}],
                }}))
                .returns(&claim),
            create(EVENTS).body(json!({"reason": "ResourceCreated"})),
        ],
    )
    .await;
    assert_eq!(result, Ok(Action::requeue(requeue::READY)));
}

#[tokio::test]
async fn claim_at_rest_on_synced_caches_sends_no_request() {
    let claim = orders_db().finalized().with_status(ready_status());
    // As a list (the watch's first) delivers it: without apiVersion and kind.
    let mut listed = ready_database(&claim);
    if let Some(o) = listed.as_object_mut() {
        o.remove("apiVersion");
        o.remove("kind");
    }
    let world = world()
        .cached(&database(), vec![listed])
        .cached_secret(provider_secret())
        .cached_secret(written_secret(&claim));
    let (result, transcript) = pass(world, claim, vec![]).await;
    assert_eq!(result, Ok(Action::requeue(requeue::READY)));
    assert!(transcript.writes().is_empty(), "a claim at rest wrote");
}

/// A pass right after the one that wrote the claim's Secret, before the
/// Secret cache has it: the copy that write returned answers, no read.
#[tokio::test]
async fn a_pass_before_its_secret_reaches_the_cache_reads_nothing() {
    let claim = orders_db().finalized().with_status(ready_status());
    let mut own = written_secret(&claim);
    own.metadata.resource_version = Some("11".into());
    let world = world()
        .cached(&database(), vec![ready_database(&claim)])
        .cached_secret(provider_secret())
        .handed_secret(own);
    let (result, transcript) = pass(world, claim, vec![]).await;
    assert_eq!(result, Ok(Action::requeue(requeue::READY)));
    assert!(transcript.0.is_empty(), "a pass sent requests");
}

#[tokio::test]
async fn new_claim_on_synced_caches_reads_only_what_can_hold_a_database() {
    let claim = orders_db().finalized();
    let name = crate::naming::composed_name("team-a", "orders-db", "database");
    let path = format!("{DATABASES}/{name}");
    let world = world().cached(&database(), vec![]).cached_secret(
        // Someone else's Secret elsewhere: no bearing on this claim.
        secret("unrelated").ns("team-b").data(&[("k", "v")]),
    );
    let (result, _) = pass(
        world,
        claim.clone(),
        vec![
            get(POLICIES).returns(list::<Value>(&[])),
            // Neither cache has the Database or the Secret: the Secret (a
            // core kind) is absent without a GET; a Database can hold
            // someone else's database, so it is read before its first apply.
            get(&path).not_found(),
            apply(&path)
                .body(applied(&claim, &shared_postgres(), "database"))
                .echo_with(server_fields()),
            apply(CLAIM_STATUS).returns(&claim),
            create(EVENTS),
        ],
    )
    .await;
    assert_eq!(result, Ok(Action::requeue(requeue::NOT_DONE)));
}

/// The provider writes its Secret, then turns the Database Ready; the claim
/// may wake on the Ready before its Secret cache has the Secret. The copy
/// the provider's write returned is handed over in the process: the claim
/// publishes from it, with no read.
#[tokio::test]
async fn a_provider_secret_handed_over_is_published_without_a_read() {
    let claim = orders_db().finalized().with_status(creating_status());
    let mut handed = provider_secret();
    handed.metadata.resource_version = Some("9".into());
    let world = world()
        .cached(&database(), vec![ready_database(&claim)])
        .handed_secret(handed);
    let (result, transcript) = pass(
        world,
        claim.clone(),
        vec![
            apply(SECRET)
                .body(
                    serde_json::to_value(connection_secret(&claim, "shared-postgres", CREDENTIALS))
                        .unwrap_or_default(),
                )
                .echo_with(server_fields()),
            apply(CLAIM_STATUS)
                .body(json!({"status": {"conditions": ready_conditions()}}))
                .returns(&claim),
            create(EVENTS),
        ],
    )
    .await;
    assert_eq!(result, Ok(Action::requeue(requeue::READY)));
    let reads: Vec<_> = transcript.reads().iter().map(|s| &s.path).collect();
    assert!(reads.is_empty(), "read: {reads:?}");
}

#[tokio::test]
async fn an_object_of_that_name_without_the_claim_labels_is_read_not_taken() {
    let claim = orders_db().finalized();
    let name = crate::naming::composed_name("team-a", "orders-db", "database");
    let path = format!("{DATABASES}/{name}");
    // The metadata cache sees a Database of that name; the claim-labelled
    // cache does not (it is someone else's): it is read, and refused.
    let mut foreign = applied(&claim, &shared_postgres(), "database");
    if let Some(m) = foreign
        .pointer_mut("/metadata")
        .and_then(Value::as_object_mut)
    {
        m.remove("labels");
    }
    let world = world().cached_name(&database(), foreign.clone());
    let (result, transcript) = pass(
        world,
        claim.clone(),
        vec![
            get(POLICIES).returns(list::<Value>(&[])),
            get(&path).returns(foreign),
            apply(CLAIM_STATUS).returns(&claim),
            create(EVENTS),
            create(EVENTS),
        ],
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    assert!(
        !transcript.writes().iter().any(|w| w.path.contains(&name)),
        "someone else's Database was written"
    );
}

#[tokio::test]
async fn a_core_object_only_the_name_cache_sees_is_read_not_taken() {
    // Names are kept for core kinds: a ConfigMap of that name without the
    // claim labels is in the name cache, not the claim-labelled one, so it
    // is read (never assumed absent and applied over), and refused.
    let claim = orders_db().finalized();
    let name = crate::naming::composed_name("team-a", "orders-db", "config");
    let path = format!("/api/v1/namespaces/team-a/configmaps/{name}");
    let db = crate::naming::composed_name("team-a", "orders-db", "database");
    let db_path = format!("{DATABASES}/{db}");
    let mut foreign = applied(&claim, &edited(), "config");
    if let Some(m) = foreign
        .pointer_mut("/metadata")
        .and_then(Value::as_object_mut)
    {
        m.remove("labels");
    }
    let world = World::default()
        .composition(edited())
        .kind(database())
        .kind(config_map())
        .cached(&database(), vec![])
        .cached_name(&config_map(), foreign.clone());
    let (result, transcript) = pass(
        world,
        claim.clone(),
        vec![
            get(POLICIES).returns(list::<Value>(&[])),
            get(&db_path).not_found(),
            get(&path).returns(foreign),
            apply(CLAIM_STATUS).returns(&claim),
            create(EVENTS),
            create(EVENTS),
        ],
    )
    .await;
    assert!(result.is_ok(), "{result:?}");
    assert!(
        !transcript.writes().iter().any(|w| w.path.contains(&name)),
        "someone else's ConfigMap was written"
    );
}
