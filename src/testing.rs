//! Test fixtures shared by every test (controller-rs's `fixtures.rs` idea):
//! builders for the objects dbclaim reads, and a claim [`Context`] whose
//! client talks to the mock API server of [`api_server`], which scripts the
//! exact requests of a scenario and fails the test on any other or missing one.

mod api_server;

pub use api_server::*;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::{Value, json};

use crate::api::claim::ResourceStatus;
use crate::api::{
    ClaimPolicy, Composition, CompositionRevision, DatabaseClaim, DatabaseClaimStatus,
    DeletionPolicy, Engine, NameRef, Size,
};
use crate::conditions::{self, Cond};
use crate::contract::{APPLIED_HASH_ANNOTATION, CLAIM_FINALIZER as FINALIZER};
use crate::controller::context::Context;
use crate::controller::kinds::{Kind, Kinds};
use crate::controller::labels;
use crate::engine::{self, Scope};
use crate::metrics::Metrics;
use crate::naming;

/// The namespace fixtures live in unless told otherwise.
pub const NAMESPACE: &str = "team-a";
/// The operator's namespace in every test context.
pub const OPERATOR_NAMESPACE: &str = "dbclaim-system";
/// The one transition time fixtures carry: a pass that decides the same
/// condition status keeps it, so fixtures compare equal to what it writes.
pub const T0: Timestamp = Timestamp::UNIX_EPOCH;

// ---------------------------------------------------------------- claims

/// A PostgreSQL claim in [`NAMESPACE`], spec defaults as the API server
/// fills them, not yet seen by dbclaim (no finalizer, no status).
pub fn claim(name: &str) -> DatabaseClaim {
    let spec = serde_json::from_value(json!({"engine": "postgres"}))
        .unwrap_or_else(|e| panic!("claim spec: {e}"));
    let mut c = DatabaseClaim::new(name, spec);
    c.metadata.namespace = Some(NAMESPACE.into());
    c.metadata.uid = Some(format!("uid-{name}"));
    c.metadata.generation = Some(1);
    c
}

/// Builder steps on a [`claim`].
pub trait ClaimFixture: Sized {
    fn ns(self, namespace: &str) -> Self;
    fn uid(self, uid: &str) -> Self;
    fn engine(self, engine: Engine) -> Self;
    fn size(self, size: Size) -> Self;
    fn storage_gb(self, gb: i64) -> Self;
    fn parameter(self, key: &str, value: &str) -> Self;
    fn database_name(self, name: &str) -> Self;
    fn composition_ref(self, name: &str) -> Self;
    fn deletion_policy(self, policy: DeletionPolicy) -> Self;
    /// Carries dbclaim's finalizer, as after its first pass.
    fn finalized(self) -> Self;
    /// Deleted by a user: a deletion timestamp, the finalizer still on.
    fn deleting(self) -> Self;
    fn with_status(self, status: DatabaseClaimStatus) -> Self;
}

impl ClaimFixture for DatabaseClaim {
    fn ns(mut self, namespace: &str) -> Self {
        self.metadata.namespace = Some(namespace.into());
        self
    }

    fn uid(mut self, uid: &str) -> Self {
        self.metadata.uid = Some(uid.into());
        self
    }

    fn engine(mut self, engine: Engine) -> Self {
        self.spec.engine = engine;
        self
    }

    fn size(mut self, size: Size) -> Self {
        self.spec.size = size;
        self
    }

    fn storage_gb(mut self, gb: i64) -> Self {
        self.spec.storage_gb = gb;
        self
    }

    fn parameter(mut self, key: &str, value: &str) -> Self {
        self.spec.parameters.insert(key.into(), value.into());
        self
    }

    fn database_name(mut self, name: &str) -> Self {
        self.spec.database_name = Some(name.into());
        self
    }

    fn composition_ref(mut self, name: &str) -> Self {
        self.spec.composition_ref = Some(NameRef { name: name.into() });
        self
    }

    fn deletion_policy(mut self, policy: DeletionPolicy) -> Self {
        self.spec.deletion_policy = policy;
        self
    }

    fn finalized(mut self) -> Self {
        self.finalizers_mut().push(FINALIZER.into());
        self
    }

    fn deleting(mut self) -> Self {
        self.metadata.deletion_timestamp = Some(Time(T0));
        self
    }

    fn with_status(mut self, status: DatabaseClaimStatus) -> Self {
        self.status = Some(status);
        self
    }
}

/// A claim status as a pass writes it; build it with [`StatusFixture`].
pub fn status() -> DatabaseClaimStatus {
    DatabaseClaimStatus::default()
}

/// Builder steps on a claim [`status`].
pub trait StatusFixture: Sized {
    fn composition(self, name: &str) -> Self;
    fn resource(self, name: &str, kind: &Kind, resource_name: &str, ready: bool) -> Self;
    /// `connectionSecretRef` and the Service Binding `binding`.
    fn secret(self, name: &str) -> Self;
    /// Synced, Ready and the kstatus pair derived from them, at [`T0`],
    /// for the claim's generation 1, as a pass reports them (`claim::status`).
    fn conditions(self, synced: Cond, ready: Cond) -> Self;
}

impl StatusFixture for DatabaseClaimStatus {
    fn composition(mut self, name: &str) -> Self {
        self.composition = Some(NameRef { name: name.into() });
        self
    }

    fn resource(mut self, name: &str, kind: &Kind, resource_name: &str, ready: bool) -> Self {
        self.resources.push(ResourceStatus {
            name: name.into(),
            api_version: kind.resource.api_version.clone(),
            kind: kind.resource.kind.clone(),
            resource_name: resource_name.into(),
            ready,
        });
        self
    }

    fn secret(mut self, name: &str) -> Self {
        self.connection_secret_ref = Some(NameRef { name: name.into() });
        self.binding = Some(NameRef { name: name.into() });
        self
    }

    fn conditions(mut self, synced: Cond, ready: Cond) -> Self {
        let generation = Some(1);
        conditions::set(&mut self.conditions, &synced, generation, T0);
        conditions::set(&mut self.conditions, &ready, generation, T0);
        for c in conditions::kstatus(&synced, &ready) {
            conditions::set(&mut self.conditions, &c, generation, T0);
        }
        self.observed_generation = generation;
        self
    }
}

// ---------------------------------------------------------- compositions

/// A composition for PostgreSQL claims, without resources yet.
pub fn composition(name: &str) -> Composition {
    let spec = serde_json::from_value(json!({"engines": ["postgres"], "resources": []}))
        .unwrap_or_else(|e| panic!("composition spec: {e}"));
    Composition::new(name, spec)
}

/// The `shared-postgres` composition dbclaim ships, as users apply it.
pub fn shared_postgres() -> Composition {
    serde_yaml::from_str(include_str!("../compositions/shared-postgres.yaml"))
        .unwrap_or_else(|e| panic!("compositions/shared-postgres.yaml: {e}"))
}

/// Builder steps on a [`composition`].
pub trait CompositionFixture: Sized {
    /// A composed resource: its template name and base object.
    fn resource(self, name: &str, base: Value) -> Self;
    /// Drops a composed resource, as a platform team's edit would.
    fn without(self, name: &str) -> Self;
}

impl CompositionFixture for Composition {
    fn resource(mut self, name: &str, base: Value) -> Self {
        let template = serde_json::from_value(json!({"name": name, "base": base}))
            .unwrap_or_else(|e| panic!("composed template {name}: {e}"));
        self.spec.resources.push(template);
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.spec.resources.retain(|t| t.name != name);
        self
    }
}

/// A composed kind as discovery would resolve it.
pub fn kind<K: Resource<DynamicType = ()>>(scope: Scope) -> Kind {
    Kind {
        resource: kube::api::ApiResource::erase::<K>(&()),
        scope,
    }
}

/// A composed object as dbclaim applies it: the engine's render of the
/// claim (nothing observed yet) with the applied-hash annotation.
pub fn applied(claim: &DatabaseClaim, composition: &Composition, resource: &str) -> Value {
    let observed = BTreeMap::new();
    let request = engine::RenderRequest {
        claim,
        composition_name: &composition.name_any(),
        composition: &composition.spec,
        observed: &observed,
        scope: &engine::builtin_scope,
        generator: engine::Generator::Random,
    };
    let rendered = engine::render(&request).unwrap_or_else(|e| panic!("render: {e}"));
    let object = rendered
        .resources
        .into_iter()
        .find(|r| r.name == resource)
        .unwrap_or_else(|| panic!("no resource {resource} in the render"))
        .object;
    with_applied_hash(object)
}

/// `object` as the API server keeps it: with the fields it adds.
pub fn stored(mut object: Value) -> Value {
    merge(&mut object, &server_fields());
    object
}

/// What the API server adds to an object it stores.
pub fn server_fields() -> Value {
    json!({"metadata": {"uid": "uid-stored", "resourceVersion": "1"}})
}

/// The claim controller's applied-hash rule, mirrored: a change to it
/// re-applies every composed object once, which a test should notice.
fn with_applied_hash(mut object: Value) -> Value {
    let hash = naming::short_hash(&object.to_string());
    object["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] = json!(hash);
    object
}

/// `object` with these `status.conditions` (type, status) set.
pub fn with_conditions(mut object: Value, conditions: &[(&str, &str)]) -> Value {
    let list: Vec<Value> = conditions
        .iter()
        .map(|(t, s)| json!({"type": t, "status": s, "reason": "Available", "lastTransitionTime": "1970-01-01T00:00:00Z"}))
        .collect();
    object["status"]["conditions"] = Value::Array(list);
    object
}

// --------------------------------------------------------------- secrets

/// An Opaque Secret in [`NAMESPACE`] with no owner.
pub fn secret(name: &str) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NAMESPACE.into()),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// Builder steps on a [`secret`].
pub trait SecretFixture: Sized {
    fn ns(self, namespace: &str) -> Self;
    fn data(self, data: &[(&str, &str)]) -> Self;
    fn annotation(self, key: &str, value: &str) -> Self;
}

impl SecretFixture for Secret {
    fn annotation(mut self, key: &str, value: &str) -> Self {
        self.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }

    fn ns(mut self, namespace: &str) -> Self {
        self.metadata.namespace = Some(namespace.into());
        self
    }

    fn data(mut self, data: &[(&str, &str)]) -> Self {
        let data = data
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect();
        self.data = Some(data);
        self
    }
}

/// The claim's connection Secret as dbclaim wrote it from these details.
pub fn connection_secret(
    claim: &DatabaseClaim,
    composition: &str,
    details: &[(&str, &str)],
) -> Secret {
    let details = details
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    let assembled = engine::connection_secret(claim.spec.engine, composition, &details);
    let name = claim.spec.connection_secret_name(&claim.name_any());
    let ns = claim.namespace().unwrap_or_default();
    let mut s = secret(&name).ns(&ns);
    s.metadata.labels = Some(labels::for_claim(&ns, &claim.name_any()));
    s.metadata.owner_references = claim.controller_owner_ref(&()).map(|o| vec![o]);
    s.type_ = Some(assembled.secret_type.into());
    s.data = Some(
        assembled
            .data
            .into_iter()
            .map(|(k, v)| (k, ByteString(v)))
            .collect(),
    );
    s
}

/// A ClaimPolicy with this spec (as its YAML would say it).
pub fn policy(name: &str, spec: Value) -> ClaimPolicy {
    let spec = serde_json::from_value(spec).unwrap_or_else(|e| panic!("policy spec: {e}"));
    ClaimPolicy::new(name, spec)
}

/// Namespace metadata as the namespace cache holds it.
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> PartialObjectMeta<Namespace> {
    let mut n = PartialObjectMeta::<Namespace>::default();
    n.metadata.name = Some(name.into());
    n.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    n
}

// --------------------------------------------------------------- context

/// What the claim controller's caches hold, and the kinds discovery knows.
type Cached = (
    Vec<(Kind, Vec<DynamicObject>, Vec<DynamicObject>)>,
    Vec<Secret>,
);

#[derive(Default)]
pub struct World {
    compositions: Vec<Composition>,
    revisions: Vec<CompositionRevision>,
    policies: Vec<ClaimPolicy>,
    claims: Vec<DatabaseClaim>,
    namespaces: Vec<PartialObjectMeta<Namespace>>,
    kinds: Vec<Kind>,
    /// Objects the caches hold (None: no caches, every read is a request):
    /// by kind, the claim-labelled objects and those only the metadata
    /// cache of all the kind's objects sees; and Secrets.
    cached: Option<Cached>,
    /// Secrets a provider of the same process wrote lately.
    handed: Vec<Secret>,
}

impl World {
    pub fn composition(mut self, c: Composition) -> Self {
        self.compositions.push(c);
        self
    }

    pub fn revision(mut self, r: CompositionRevision) -> Self {
        self.revisions.push(r);
        self
    }

    pub fn policy(mut self, p: ClaimPolicy) -> Self {
        self.policies.push(p);
        self
    }

    pub fn claim(mut self, c: DatabaseClaim) -> Self {
        self.claims.push(c);
        self
    }

    pub fn namespace(mut self, n: PartialObjectMeta<Namespace>) -> Self {
        self.namespaces.push(n);
        self
    }

    pub fn kind(mut self, k: Kind) -> Self {
        self.kinds.push(k);
        self
    }

    /// Synced caches holding `objects` of `kind` (and what `secret` adds).
    pub fn cached(mut self, kind: &Kind, objects: Vec<serde_json::Value>) -> Self {
        let objects = objects
            .into_iter()
            .filter_map(|o| serde_json::from_value(o).ok())
            .collect();
        self.cached
            .get_or_insert_with(Default::default)
            .0
            .push((kind.clone(), objects, vec![]));
        self
    }

    /// An object of `kind` only the metadata cache of all its objects
    /// sees (it lacks the claim's labels).
    pub fn cached_name(mut self, kind: &Kind, object: serde_json::Value) -> Self {
        let objects = serde_json::from_value(object).into_iter().collect();
        self.cached
            .get_or_insert_with(Default::default)
            .0
            .push((kind.clone(), vec![], objects));
        self
    }

    /// A Secret a provider of the same process just wrote: in no cache yet.
    pub fn handed_secret(mut self, s: Secret) -> Self {
        self.handed.push(s);
        self
    }

    /// A Secret in the synced Secret caches.
    pub fn cached_secret(mut self, s: Secret) -> Self {
        self.cached.get_or_insert_with(Default::default).1.push(s);
        self
    }

    /// The claim controller's context, its requests going to `client`.
    pub fn context(self, client: Client) -> Arc<Context> {
        use crate::controller::cache::{Cache, Names};
        let mut kinds = Kinds::preloaded(client.clone(), self.kinds);
        let (secrets, secret_names) = match self.cached {
            None => (Cache::none(), Names::none()),
            Some((objects, secrets)) => {
                for (kind, objects, others) in objects {
                    kinds = kinds.with_cached(&kind, objects, others);
                }
                let names = Names::filled(secrets.iter().map(|s| {
                    (
                        s.metadata.namespace.as_deref(),
                        s.metadata.name.as_deref().unwrap_or_default(),
                    )
                }));
                (Cache::filled(secrets), names)
            }
        };
        Arc::new(Context {
            claim_resource: kube::core::ApiResource::erase::<crate::api::v1beta1::DatabaseClaim>(
                &(),
            ),
            kinds,
            secrets,
            shared_secrets: crate::controller::cache::SharedSecrets {
                names: secret_names,
                handoff: {
                    let handoff = crate::controller::cache::Handoff::default();
                    self.handed.iter().for_each(|s| handoff.keep(s));
                    handoff
                },
            },
            written: Default::default(),
            client,
            compositions: store(self.compositions),
            revisions: store(self.revisions),
            policies: store(self.policies),
            claims: store(self.claims),
            namespaces: store(self.namespaces),
            reporter: Reporter {
                controller: "dbclaim".into(),
                instance: None,
            },
            operator_namespace: OPERATOR_NAMESPACE.into(),
            metrics: Metrics::default(),
            finalized: Default::default(),
            status_writes: Default::default(),
            rotations: Default::default(),
            counted_failures: Default::default(),
            counted_ready: Default::default(),
            fresh_policies: Default::default(),
            drills: Default::default(),
            backoff: crate::backoff::Backoff::new(
                crate::controller::claim::requeue::BACKOFF_MIN,
                crate::controller::claim::requeue::BACKOFF_MAX,
            ),
        })
    }
}

/// A reflector store filled as a watch would fill it.
fn store<K>(objects: Vec<K>) -> Store<K>
where
    K: reflector::Lookup + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, mut writer) = reflector::store();
    for o in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(o));
    }
    reader
}
