//! The scaffold's decisions driven by a fake provider, without a cluster:
//! Secrets live in a map, the provider records what it saw.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::reconcile::{Error, SecretStore, sync};
use super::*;
use crate::api::aws::RDSInstance;
use crate::api::common::ManagedStatus;
use crate::api::postgres::Database;
use crate::conditions::{ReadyReason, SyncedReason};

const NS: &str = "dbclaim-system";

/// Connection Secrets in a map; counts writes.
#[derive(Default)]
struct Store {
    secrets: Mutex<BTreeMap<(String, String), Secret>>,
    writes: Mutex<u32>,
}

impl Store {
    fn get(&self, name: &str) -> Option<Secret> {
        self.secrets
            .lock()
            .unwrap()
            .get(&(NS.to_string(), name.to_string()))
            .cloned()
    }

    fn put(&self, s: Secret) {
        let key = (s.namespace().unwrap_or_default(), s.name_any());
        self.secrets.lock().unwrap().insert(key, s);
    }

    fn writes(&self) -> u32 {
        *self.writes.lock().unwrap()
    }
}

impl SecretStore for Store {
    async fn read(&self, target: &(String, String)) -> Result<Option<Secret>, secret::Failure> {
        Ok(self.secrets.lock().unwrap().get(target).cloned())
    }

    async fn apply(&self, desired: &Secret, _manager: &str) -> Result<Secret, secret::Failure> {
        let mut writes = self.writes.lock().unwrap();
        *writes += 1;
        let mut written = desired.clone();
        written.metadata.resource_version = Some(writes.to_string());
        self.put(written.clone());
        Ok(written)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("fake failure")]
struct FakeError {
    retry: Retry,
    keeps_ready: bool,
}

impl ProviderError for FakeError {
    fn reason(&self) -> SyncedReason {
        SyncedReason::ProviderError
    }
    fn retry(&self) -> Retry {
        self.retry
    }
    fn keeps_ready(&self) -> bool {
        self.keeps_ready
    }
}

/// A provider whose resource exists or not, that sends the password when a
/// reset is due (if `sends`), and records the Secret as each call saw it.
struct Fake<'a> {
    exists: bool,
    sends: bool,
    store: &'a Store,
    seen: Mutex<Vec<String>>,
}

impl<'a> Fake<'a> {
    fn new(store: &'a Store, exists: bool) -> Self {
        Self {
            exists,
            sends: true,
            store,
            seen: Mutex::default(),
        }
    }

    fn record(&self, verb: &str, obj_secret: &str, creds: &Credentials) {
        let s = self.store.get(obj_secret);
        let holds = s
            .as_ref()
            .and_then(|s| secret::value(s, "password"))
            .is_some_and(|p| p == creds.password);
        let pending = s.as_ref().is_some_and(secret::pending::<RDSInstance>);
        self.seen
            .lock()
            .unwrap()
            .push(format!("{verb} holds={holds} pending={pending}"));
    }

    /// What each call saw, in order.
    fn calls(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn synced<O>(&self, observation: O, password_sent: bool) -> Synced<O> {
        Synced {
            observation,
            ready: Cond::ready(true, ReadyReason::Available, "up"),
            synced: Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
            requeue: Duration::from_secs(60),
            connection: Connection::from([("host".to_string(), "db.example".to_string())]),
            password_sent,
        }
    }
}

impl Fake<'static> {
    /// One pass of `sync`, which must succeed.
    async fn pass<M: Managed<Observation: Default>>(&self, obj: &M) -> Synced<M::Observation> {
        let synced = sync(obj, self, self.store, NS, &mut Events::default()).await;
        synced.unwrap().0
    }
}

// `'static` is required of External; the tests leak their store.
impl<M: Managed<Observation: Default>> External<M> for Fake<'static> {
    type Error = FakeError;
    type Seen = ();

    async fn observe(&self, _obj: &M, _events: &mut Events) -> Result<Observation<()>, FakeError> {
        Ok(Observation {
            exists: self.exists,
            connection: Connection::from([("username".to_string(), "u".to_string())]),
            seen: (),
        })
    }

    async fn create(
        &self,
        obj: &M,
        _seen: (),
        creds: &Credentials,
        events: &mut Events,
    ) -> Result<Synced<M::Observation>, FakeError> {
        self.record("create", &obj.name_any(), creds);
        events.normal("Created", "created");
        Ok(self.synced(M::Observation::default(), true))
    }

    async fn update(
        &self,
        obj: &M,
        _seen: (),
        creds: &Credentials,
        _events: &mut Events,
    ) -> Result<Synced<M::Observation>, FakeError> {
        self.record("update", &obj.name_any(), creds);
        Ok(self.synced(M::Observation::default(), creds.reset_due && self.sends))
    }

    async fn delete(&self, _obj: &M, _events: &mut Events) -> Result<Deletion, FakeError> {
        Ok(Deletion::Gone)
    }

    /// An object named "known" gets the host its call publishes from the
    /// Secret step already (as PostgreSQL knows its login).
    fn connection_known(obj: &M, _existing: Option<&Secret>) -> Connection {
        match obj.name_any().as_str() {
            "known" => Connection::from([("host".to_string(), "db.example".to_string())]),
            _ => Connection::new(),
        }
    }

    fn describe(_obj: &M) -> String {
        "the thing".to_string()
    }

    fn password_problem(_obj: &M, password: &str) -> Option<String> {
        password.contains('/').then(|| "no slashes".to_string())
    }
}

fn leak(store: Store) -> &'static Store {
    Box::leak(Box::new(store))
}

fn rds(name: &str) -> RDSInstance {
    let mut o = RDSInstance::new(
        name,
        serde_json::from_value(serde_json::json!({
            "forProvider": {"dbInstanceClass": "db.t3.micro", "engine": "postgres", "allocatedStorage": 20}
        }))
        .unwrap(),
    );
    o.metadata.labels = Some(BTreeMap::from([(
        "dbclaim.io/claim-name".to_string(),
        "orders".to_string(),
    )]));
    o
}

fn database(name: &str) -> Database {
    Database::new(
        name,
        serde_json::from_value(serde_json::json!({"forProvider": {"databaseName": "orders"}}))
            .unwrap(),
    )
}

fn secret_with(name: &str, data: &[(&str, &str)], annotations: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn data(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect()
}

#[tokio::test]
async fn create_finds_the_password_in_the_secret_first() {
    let store = leak(Store::default());
    let fake = Fake::new(store, false);
    let obj = rds("a");
    let mut events = Events::default();
    let (synced, written) = sync(&obj, &fake, store, NS, &mut events).await.unwrap();
    assert!(synced.password_sent);
    assert_eq!(written.as_deref(), Some("dbclaim-system/a"));
    assert_eq!(fake.calls(), ["create holds=true pending=false"]);
    let s = store.get("a").unwrap();
    let d = data(&s);
    assert_eq!(d["username"], "u");
    assert_eq!(
        d["host"], "db.example",
        "details after the call are written"
    );
    assert_eq!(d["password"].len(), crate::provider::password::LENGTH);
    assert_eq!(s.annotations()["aws.dbclaim.io/rdsinstance"], "a");
    assert_eq!(s.labels()["dbclaim.io/claim-name"], "orders");
    assert_eq!(store.writes(), 2, "before the call, then with the host");
    let reasons: Vec<&str> = events.0.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, ["Created"]);
}

#[tokio::test]
async fn details_known_before_the_call_make_one_secret_write() {
    let store = leak(Store::default());
    let fake = Fake::new(store, false);
    let obj = rds("known");
    let (synced, written) = sync(&obj, &fake, store, NS, &mut Events::default())
        .await
        .unwrap();
    assert!(synced.password_sent);
    assert_eq!(written.as_deref(), Some("dbclaim-system/known"));
    // The password was stored before the call, and nothing was left to add.
    assert_eq!(fake.calls(), ["create holds=true pending=false"]);
    assert_eq!(store.writes(), 1, "one write, complete before the call");
    assert_eq!(data(&store.get("known").unwrap())["host"], "db.example");
}

#[test]
fn a_claims_objects_post_no_events_that_only_say_created_and_ready() {
    use kube::runtime::events::EventType;
    let created = |extra: Option<(EventType, &str)>| {
        let mut events = Events::default();
        events.normal("Available", "up");
        events.normal("ConnectionSecretWritten", "wrote connection Secret s");
        if let Some((type_, reason)) = extra {
            events.push(type_, reason, "x".to_string());
        }
        events
    };
    let composed = rds("a");
    let mut standalone = rds("b");
    standalone.metadata.labels = None;
    let routine = reconcile::routine::<RDSInstance, Fake<'static>>;
    assert!(routine(&composed, &created(None)));
    // Told on the object standing alone; not when the pass did more, or failed.
    assert!(!routine(&standalone, &created(None)));
    assert!(!routine(
        &composed,
        &created(Some((EventType::Normal, "PasswordReset")))
    ));
    assert!(!routine(
        &composed,
        &created(Some((EventType::Warning, "Unavailable")))
    ));
    let pg = |reason: &str| {
        let mut events = created(None);
        events.normal(reason, "x");
        events
    };
    let mut db = database("d");
    db.metadata.labels = composed.metadata.labels.clone();
    let postgres = reconcile::routine::<Database, crate::provider::postgres::Postgres>;
    assert!(postgres(&db, &pg("CreatedDatabase")));
    assert!(!postgres(&db, &pg("UpdatedDatabase")));
}

#[tokio::test]
async fn a_pass_at_rest_writes_nothing() {
    let store = leak(Store::default());
    let obj = database("d");
    Fake::new(store, false).pass(&obj).await;
    let writes = store.writes();
    let password = data(&store.get("d").unwrap())["password"].clone();
    let mut events = Events::default();
    let fake = Fake::new(store, true);
    let (_, written) = sync(&obj, &fake, store, NS, &mut events).await.unwrap();
    assert_eq!(written, None);
    assert_eq!(store.writes(), writes);
    assert!(events.0.is_empty());
    assert_eq!(data(&store.get("d").unwrap())["password"], password, "kept");
    assert_eq!(fake.calls(), ["update holds=true pending=false"]);
}

#[tokio::test]
async fn a_due_reset_is_marked_pending_until_the_password_is_sent() {
    let store = leak(Store::default());
    // An adopted instance: its Secret has no password yet.
    store.put(secret_with(
        "a",
        &[("host", "old.example")],
        &[("aws.dbclaim.io/rdsinstance", "a")],
    ));
    let obj = rds("a");
    let mut fake = Fake::new(store, true);
    fake.sends = false;
    fake.pass(&obj).await;
    assert_eq!(fake.calls(), ["update holds=true pending=true"]);
    assert!(
        secret::pending::<RDSInstance>(&store.get("a").unwrap()),
        "not sent: still due"
    );
    let password = data(&store.get("a").unwrap())["password"].clone();

    let fake = Fake::new(store, true);
    let synced = fake.pass(&obj).await;
    assert!(synced.password_sent);
    assert_eq!(fake.calls(), ["update holds=true pending=true"]);
    let s = store.get("a").unwrap();
    assert!(!secret::pending::<RDSInstance>(&s), "sent: the mark goes");
    assert_eq!(
        data(&s)["password"],
        password,
        "the same password throughout"
    );
}

#[tokio::test]
async fn a_foreign_secret_is_refused_and_never_written() {
    let store = leak(Store::default());
    store.put(secret_with("d", &[("password", "mine")], &[]));
    let fake = Fake::new(store, false);
    let err = sync(&database("d"), &fake, store, NS, &mut Events::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SecretTaken { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("exists and was not written by dbclaim")
    );
    assert_eq!(err.retry(), Retry::Slow);
    assert_eq!(err.reason(), SyncedReason::ReconcileError);
    assert_eq!(store.writes(), 0);
    assert!(
        fake.seen.lock().unwrap().is_empty(),
        "no call sent the password"
    );

    // Another object's Secret is refused for every kind.
    store.put(secret_with(
        "a",
        &[],
        &[("aws.dbclaim.io/rdsinstance", "b")],
    ));
    let err = sync(&rds("a"), &fake, store, NS, &mut Events::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("belongs to RDSInstance \"b\""),
        "{err}"
    );
}

fn with_uid<M: Managed>(mut obj: M, uid: &str) -> M {
    obj.meta_mut().uid = Some(uid.to_string());
    obj
}

#[tokio::test]
async fn a_password_is_never_reused_for_another_uid() {
    let store = leak(Store::default());
    let first = with_uid(rds("a"), "uid-1");
    Fake::new(store, false).pass(&first).await;
    let s = store.get("a").unwrap();
    assert_eq!(s.annotations()["dbclaim.io/owner-uid"], "uid-1");
    let old = data(&s)["password"].clone();

    // Deleted and re-created under the same name: a new password, sent.
    let second = with_uid(rds("a"), "uid-2");
    let fake = Fake::new(store, true);
    let synced = fake.pass(&second).await;
    assert!(synced.password_sent);
    assert_eq!(fake.calls(), ["update holds=true pending=true"]);
    let s = store.get("a").unwrap();
    assert_ne!(data(&s)["password"], old, "not reused");
    assert_eq!(s.annotations()["dbclaim.io/owner-uid"], "uid-2");
    assert!(!secret::ours(&s, &first), "no longer the first object's");
}

#[tokio::test]
async fn a_secret_of_an_earlier_dbclaim_gets_the_uid_and_keeps_its_password() {
    let store = leak(Store::default());
    store.put(secret_with(
        "d",
        &[("password", "kept")],
        &[("postgres.dbclaim.io/database", "d")],
    ));
    let obj = with_uid(database("d"), "uid-d");
    let fake = Fake::new(store, true);
    fake.pass(&obj).await;
    assert_eq!(fake.calls(), ["update holds=true pending=false"]);
    let s = store.get("d").unwrap();
    assert_eq!(data(&s)["password"], "kept");
    assert_eq!(s.annotations()["dbclaim.io/owner-uid"], "uid-d");
    let writes = store.writes();
    Fake::new(store, true).pass(&obj).await;
    assert_eq!(store.writes(), writes, "then at rest");
}

#[tokio::test]
async fn a_password_the_provider_refuses_stops_before_any_write() {
    let store = leak(Store::default());
    store.put(secret_with(
        "a",
        &[("password", "a/b")],
        &[("aws.dbclaim.io/rdsinstance", "a")],
    ));
    let fake = Fake::new(store, false);
    let err = sync(&rds("a"), &fake, store, NS, &mut Events::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Password { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("delete the key password from Secret dbclaim-system/a")
    );
    assert_eq!(store.writes(), 0);
    assert!(fake.seen.lock().unwrap().is_empty());
}

#[test]
fn retry_class_decides_the_requeue() {
    let b = backoff::backoff();
    let wait = Error::Provider(FakeError {
        retry: Retry::Wait,
        keeps_ready: true,
    });
    assert_eq!(backoff::delay(&b, "k", wait.retry()), backoff::WAIT);
    let slow = Error::Provider(FakeError {
        retry: Retry::Slow,
        keeps_ready: true,
    });
    assert_eq!(backoff::delay(&b, "k", slow.retry()), backoff::SLOW);
    let transient = Error::<FakeError>::Status(kube::Error::LinesCodecMaxLineLengthExceeded);
    assert_eq!(transient.retry(), Retry::Backoff);
    let first = backoff::delay(&b, "k", transient.retry());
    let second = backoff::delay(&b, "k", transient.retry());
    assert!(
        first <= Duration::from_secs(5) && second >= Duration::from_secs(5),
        "{first:?} {second:?}"
    );
}

#[test]
fn status_is_written_only_when_the_decision_changes() {
    let t = |s| Timestamp::from_second(s).unwrap();
    let conds = [
        Cond::ready(true, ReadyReason::Available, "up"),
        Cond::synced(true, SyncedReason::ReconcileSuccess, ""),
    ];
    let a = status::next(
        &ManagedStatus::<u8>::default(),
        Some(1),
        Some(1),
        &conds,
        t(1),
    );
    let b = status::next(&a, Some(1), Some(1), &conds, t(2));
    assert_eq!(a, b, "same decision: no write");
    assert!(status::ready_event(&ManagedStatus::default(), &a).is_some());
    assert!(status::ready_event(&a, &b).is_none());

    // A failure keeps Ready when it says nothing about the resource…
    let outage = FakeError {
        retry: Retry::Backoff,
        keeps_ready: true,
    };
    let f = status::failure(&b, "the thing", &outage);
    assert_eq!(
        (f[0].status, f[0].reason),
        (true, ReadyReason::Available.into())
    );
    assert_eq!(
        (f[1].status, f[1].reason),
        (false, SyncedReason::ProviderError.into())
    );
    let c = status::next(&b, Some(1), None, &f, t(3));
    assert!(status::synced_transitioned(&b, &c));
    assert_eq!(c.at_provider, Some(1), "observation kept");
    let again = status::next(
        &c,
        Some(1),
        None,
        &status::failure(&c, "the thing", &outage),
        t(4),
    );
    assert!(
        !status::synced_transitioned(&c, &again),
        "one warning per message"
    );
    // …turns Unavailable when it cannot be reached, and Creating before anything.
    let down = FakeError {
        retry: Retry::Backoff,
        keeps_ready: false,
    };
    assert_eq!(
        status::failure(&b, "x", &down)[0].reason,
        ReadyReason::Unavailable.into()
    );
    let fresh = status::failure(&ManagedStatus::<u8>::default(), "the thing", &down);
    assert_eq!(
        (fresh[0].reason, fresh[0].message.as_str()),
        (
            ReadyReason::Creating.into(),
            "the thing is not created yet: see the Synced condition"
        )
    );
}

#[test]
fn the_finalizer_stays_until_the_resource_is_gone() {
    assert!(super::reconcile::deleted::<FakeError>(Ok(Deletion::Gone)).is_ok());
    let waiting = super::reconcile::deleted::<FakeError>(Ok(Deletion::Waiting("going".into())));
    assert!(matches!(&waiting, Err(Error::Waiting(m)) if m == "going"));
    assert_eq!(waiting.unwrap_err().retry(), Retry::Wait);
    let failed = super::reconcile::deleted(Err(FakeError {
        retry: Retry::Slow,
        keeps_ready: true,
    }));
    assert_eq!(failed.unwrap_err().retry(), Retry::Slow);
}

#[test]
fn deletion_says_what_it_waits_for() {
    let [ready, synced] = status::deleting("the thing", Ok("going"));
    assert_eq!(
        (ready.status, ready.reason, ready.message.as_str()),
        (false, ReadyReason::Deleting.into(), "going")
    );
    assert!(synced.status);
    let [ready, synced] = status::deleting(
        "the thing",
        Err((SyncedReason::ProviderError, "denied".into())),
    );
    assert_eq!(
        ready.message,
        "cannot delete the thing: see the Synced condition"
    );
    assert_eq!(
        synced.message,
        "cannot delete: denied; to keep the thing instead, set spec.deletionPolicy to Orphan"
    );
}

#[test]
fn secret_ownership_and_content() {
    let obj = rds("a");
    let target = (NS.to_string(), "a".to_string());
    let mine = secret::desired(&obj, &target, None, "pw", &Connection::new(), false);
    assert_eq!(secret::foreign(&mine, &obj), None);
    assert!(secret::foreign(&mine, &rds("b")).is_some_and(|m| m.contains("\"a\"")));
    // Every provider refuses Secrets dbclaim did not write (audit M8).
    assert!(secret::foreign(&Secret::default(), &obj).is_some());
    assert!(secret::foreign(&Secret::default(), &database("d")).is_some());

    // Keys the provider no longer reports are kept; the pending mark counts.
    let with_host = secret_with("a", &[("host", "h"), ("port", "5432")], &[]);
    let kept = secret::desired(
        &obj,
        &target,
        Some(&with_host),
        "pw",
        &Connection::new(),
        false,
    );
    assert_eq!(data(&kept)["host"], "h");
    assert!(
        secret::up_to_date::<RDSInstance>(&kept, &mine),
        "a superset is up to date"
    );
    assert!(!secret::up_to_date::<RDSInstance>(&mine, &kept));
    let pending = secret::desired(&obj, &target, None, "pw", &Connection::new(), true);
    assert!(!secret::up_to_date::<RDSInstance>(&mine, &pending));
    assert!(
        !secret::up_to_date::<RDSInstance>(&pending, &mine),
        "the mark must go"
    );
    // Database Secrets never carry the mark.
    let db = database("d");
    let d = secret::desired(&db, &target, None, "pw", &Connection::new(), true);
    assert!(!secret::pending::<Database>(&d));

    let mut o = rds("x");
    assert_eq!(secret::target(&o, NS), (NS.to_string(), "x".to_string()));
    o.spec.managed.write_connection_secret_to_ref = Some(crate::api::common::SecretRef {
        name: "s".into(),
        namespace: None,
    });
    assert_eq!(
        secret::target(&o, "ns"),
        ("ns".to_string(), "s".to_string())
    );
}

#[tokio::test]
async fn a_drill_runs_after_observe_and_only_on_what_exists() {
    let request = crate::drill::Request {
        type_: crate::api::common::DrillType::Failover,
        id: "gd1".into(),
    };
    let store = leak(Store::default());
    let fake = Fake::new(store, true);
    let obj = rds("a");
    let mut events = Events::default();
    let (_, _, drilled) =
        super::reconcile::sync_with_drill(&obj, &fake, store, NS, Some(&request), &mut events)
            .await
            .unwrap();
    // A provider without drills refuses, and the pass goes on.
    assert!(
        matches!(drilled, Some(Ok(DrillStep::Refused(m))) if m.contains("does not run failover"))
    );
    assert_eq!(fake.calls().len(), 1);

    let store = leak(Store::default());
    let fake = Fake::new(store, false);
    let (_, _, drilled) =
        super::reconcile::sync_with_drill(&obj, &fake, store, NS, Some(&request), &mut events)
            .await
            .unwrap();
    assert!(matches!(drilled, Some(Ok(DrillStep::Refused(m))) if m.contains("does not exist")));
    let (_, _, none) = super::reconcile::sync_with_drill(&obj, &fake, store, NS, None, &mut events)
        .await
        .unwrap();
    assert!(none.is_none());
}

#[test]
fn a_copy_older_than_the_last_status_write_is_stale() {
    let at = |rv: Option<&str>| {
        let mut obj = rds("a");
        obj.metadata.resource_version = rv.map(str::to_string);
        obj
    };
    assert!(!super::reconcile::stale(&at(Some("5")), None));
    assert!(super::reconcile::stale(&at(Some("5")), Some("7")));
    assert!(!super::reconcile::stale(&at(Some("7")), Some("7")));
    assert!(!super::reconcile::stale(&at(Some("9")), Some("7")));
    // An unreadable version is never taken for current.
    assert!(super::reconcile::stale(&at(None), Some("7")));
}

#[tokio::test]
async fn a_pass_on_a_copy_older_than_its_own_status_write_sends_nothing() {
    use super::reconcile::{CachedSecrets, Context, apply};
    let store = leak(Store::default());
    let mut obj = with_uid(rds("stale"), "uid-stale");
    obj.metadata.resource_version = Some("5".into());
    // No request at all: a pass that went on would read the Secret (and
    // write status) through this client, which the empty script refuses.
    let (calls, transcript) = crate::testing::verify(vec![], |client| async move {
        let ctx = Context {
            secrets: CachedSecrets {
                client: client.clone(),
                cache: crate::controller::cache::Cache::none(),
                written: Default::default(),
                shared: Default::default(),
            },
            client,
            config: crate::provider::Config {
                operator_namespace: NS.into(),
                concurrency: 1,
                cluster_id: "test".into(),
                secrets: Default::default(),
            },
            metrics: crate::metrics::Metrics::default(),
            reporter: kube::runtime::events::Reporter {
                controller: "test".into(),
                instance: None,
            },
            backoff: super::backoff::backoff(),
            manager: "test",
            external: Fake::new(store, true),
            drills: Default::default(),
            status_written: Default::default(),
        };
        ctx.status_written.insert("uid-stale", "7".into());
        let result = apply(&obj, &ctx).await;
        assert!(result.is_ok(), "{result:?}");
        ctx.external.calls()
    })
    .await;
    assert!(calls.is_empty(), "{calls:?}");
    assert!(transcript.0.is_empty());
}

#[tokio::test]
async fn a_secret_is_read_only_where_neither_watch_nor_write_answers() {
    use super::reconcile::CachedSecrets;
    use crate::controller::cache::{Cache, Names, SharedSecrets, remember};
    use crate::testing::{get, verify};
    let path = |ns: &str, name: &str| format!("/api/v1/namespaces/{ns}/secrets/{name}");
    let target = |name: &str| (NS.to_string(), name.to_string());
    let script = vec![
        // Someone's Secret of that name exists (the metadata watch has it).
        get(&path(NS, "taken")),
        // Written lately at a version newer than any copy held.
        get(&path(NS, "rewritten")),
        // A namespace the metadata watch does not cover.
        get(&path("elsewhere", "db")),
    ];
    let (reads, transcript) = verify(script, |client| async move {
        let written = |rv: &str, name: &str| {
            let mut s = Secret::default();
            s.metadata.namespace = Some(NS.into());
            s.metadata.name = Some(name.into());
            s.metadata.resource_version = Some(rv.into());
            s
        };
        let shared = SharedSecrets {
            names: Names::filled([(Some(NS), "taken")]),
            handoff: Default::default(),
        };
        let secrets = CachedSecrets {
            client,
            cache: Cache::filled(vec![]),
            written: Default::default(),
            shared: shared.clone(),
        };
        let mut reads = vec![];
        // No Secret of that name anywhere, none written: absent, no GET.
        reads.push(secrets.read(&target("new")).await.unwrap());
        reads.push(secrets.read(&target("taken")).await.unwrap());
        // A write's answer stands in until the watch delivers it ...
        let handed = written("7", "handed");
        remember(&secrets.written, "secrets", &handed);
        shared.handoff.keep(&handed);
        reads.push(secrets.read(&target("handed")).await.unwrap());
        // ... but not once a later write is on record.
        shared.handoff.keep(&written("7", "rewritten"));
        remember(&secrets.written, "secrets", &written("9", "rewritten"));
        reads.push(secrets.read(&target("rewritten")).await.unwrap());
        let scoped = CachedSecrets {
            shared: SharedSecrets {
                names: Names::filled([]).within(Some("team-a")),
                handoff: Default::default(),
            },
            ..secrets
        };
        reads.push(
            scoped
                .read(&("elsewhere".into(), "db".into()))
                .await
                .unwrap(),
        );
        reads
    })
    .await;
    // The three scripted GETs and nothing else (verify fails on any other).
    assert_eq!(transcript.0.len(), 3);
    let versions: Vec<_> = reads
        .iter()
        .map(|s| s.as_ref().and_then(|s| s.resource_version()))
        .collect();
    assert_eq!(versions, [None, None, Some("7".into()), None, None]);
}
