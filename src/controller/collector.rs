//! The collector: composed objects whose claim no longer exists.
//!
//! A claim can vanish without its cleanup: its finalizer removed by hand,
//! or deleted while the operator was down before its first status write.
//! Its composed objects (cluster-scoped ones have no owner reference, so no
//! garbage collector helps) would then run and bill for ever. Every
//! [`Settings::interval`] the collector lists the objects carrying dbclaim's
//! labels across every composed kind, and handles those whose claim is gone
//! under the policy recorded on the object (label
//! `dbclaim.io/deletion-policy`): `Delete` deletes it, `Orphan` releases it
//! (dbclaim's labels and owner references removed). Each is announced by a
//! Warning event on the object; `dbclaim_orphaned_objects` counts them.
//!
//! Never touching an object whose claim exists matters more than speed:
//! - the claim cache only ever rules an object out; absence is confirmed
//!   by a live read of the claims of the namespace, and the object itself
//!   is read again live before anything is done to it;
//! - objects younger than [`Settings::grace`] are left for a later pass;
//! - a claim re-created under the same name (another UID, label
//!   `dbclaim.io/claim-uid`) counts as the owner until it is older than the
//!   grace period, time for it to adopt what it renders again;
//! - any failed read means "look again next pass", never "gone".
//!
//! [`decide`] is the whole decision and is pure; the rest is I/O.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::events::{EventType, Recorder};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::api::{Composition, DatabaseClaim};
use crate::engine::Scope;
use crate::naming::label_value;

use super::context::Context;
use super::kinds::{Kind, Kinds};
use super::labels;

/// How often and how carefully the collector works.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Time between two passes.
    pub interval: Duration,
    /// Objects younger than this are never acted on.
    pub grace: Duration,
}

impl Default for Settings {
    /// A pass every 20 s and 30 s of grace: an orphan is handled within a
    /// minute of its claim vanishing, or of its creation if later.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(20),
            grace: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot resolve composed kind {kind} ({api_version}): {source}")]
    Discovery {
        api_version: String,
        kind: String,
        #[source]
        source: kube::Error,
    },
}

/// A claim as seen by a lookup: what tells it apart from an earlier claim
/// of the same name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimSeen {
    pub uid: String,
    pub created: Option<Timestamp>,
}

/// What the claim cache says about the object's claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cached {
    /// Claims of the labelled name in the labelled namespace.
    Found(Vec<ClaimSeen>),
    Missing,
}

/// What a live read of the API server says about the object's claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Live {
    /// Not read yet: the cache alone cannot prove absence.
    NotAsked,
    Found(Vec<ClaimSeen>),
    Missing,
    Failed,
}

/// What to do with one labelled object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Its claim exists, or it is not a composed object: leave it alone.
    Keep,
    /// Nothing is certain yet (young, being deleted, a failed read).
    Wait,
    /// The cache misses its claim: read the claims live, then decide again.
    Confirm,
    /// Its claim is gone and the recorded policy is `Delete`.
    Delete,
    /// Its claim is gone and the recorded policy is `Orphan`: release it.
    Release,
    /// Its claim is gone and no policy is recorded (made by an older
    /// dbclaim): reported, left in place.
    Report,
}

impl Action {
    /// Whether the object counts in `dbclaim_orphaned_objects`.
    pub fn is_orphan(self) -> bool {
        matches!(self, Action::Delete | Action::Release | Action::Report)
    }
}

/// The collector's decision for one object, from its metadata, what the
/// cache and a live read say about its claim, and the time. Pure.
pub fn decide(
    meta: &ObjectMeta,
    cached: &Cached,
    live: &Live,
    now: Timestamp,
    grace: Duration,
) -> Action {
    let labels = meta.labels.as_ref();
    let get = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
    if get(labels::CLAIM_NAME).is_none() || get(labels::CLAIM_NAMESPACE).is_none() {
        return Action::Keep;
    }
    let recorded_uid = get(labels::CLAIM_UID);
    let owns = |c: &ClaimSeen| recorded_uid.is_none_or(|u| u == c.uid);
    let young = |created: Option<&Timestamp>| {
        created.is_none_or(|t| now.duration_since(*t).unsigned_abs() < grace || *t > now)
    };
    if let Cached::Found(claims) = cached
        && claims.iter().any(owns)
    {
        return Action::Keep;
    }
    if meta.deletion_timestamp.is_some() {
        return Action::Wait;
    }
    if young(meta.creation_timestamp.as_ref().map(|t| &t.0)) {
        return Action::Wait;
    }
    match live {
        Live::NotAsked => Action::Confirm,
        Live::Failed => Action::Wait,
        Live::Found(claims) if claims.iter().any(owns) => Action::Keep,
        // Another claim of that name: it may adopt the object by rendering
        // it again; give it the grace period to do so.
        Live::Found(claims) if claims.iter().any(|c| young(c.created.as_ref())) => Action::Wait,
        Live::Found(_) | Live::Missing => match get(labels::DELETION_POLICY) {
            Some("Delete") => Action::Delete,
            Some("Orphan") => Action::Release,
            _ => Action::Report,
        },
    }
}

/// The composed kinds to look through: dbclaim's managed resources, every
/// composition's bases, and what claims recorded. Pure.
pub fn kinds_to_scan<'a>(
    compositions: impl IntoIterator<Item = &'a Composition>,
    claims: impl IntoIterator<Item = &'a DatabaseClaim>,
) -> BTreeSet<(String, String)> {
    let mut out: BTreeSet<(String, String)> = [
        ("aws.dbclaim.io/v1alpha1", "RDSInstance"),
        ("postgres.dbclaim.io/v1alpha1", "Database"),
    ]
    .into_iter()
    .map(|(a, k)| (a.to_string(), k.to_string()))
    .collect();
    for c in compositions {
        for t in &c.spec.resources {
            let api_version = t.base.get("apiVersion").and_then(Value::as_str);
            let kind = t.base.get("kind").and_then(Value::as_str);
            if let (Some(a), Some(k)) = (api_version, kind) {
                out.insert((a.to_string(), k.to_string()));
            }
        }
    }
    for c in claims {
        for r in c.status.iter().flat_map(|s| &s.resources) {
            out.insert((r.api_version.clone(), r.kind.clone()));
        }
    }
    out
}

/// Whether a resolve error means the server does not serve the kind at all
/// (no CRD, so no objects of it), as opposed to a failed discovery.
fn not_served(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 404,
        kube::Error::Discovery(_) => true,
        _ => false,
    }
}

/// The label selector of composed objects (a claim's connection Secret has
/// the claim labels but no resource label).
fn composed_selector() -> String {
    format!("{},{}", labels::CLAIM_NAME, labels::RESOURCE)
}

fn api_for(client: &Client, kind: &Kind, ns: Option<&str>) -> Api<DynamicObject> {
    match (kind.scope, ns) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, &kind.resource),
        _ => Api::all_with(client.clone(), &kind.resource),
    }
}

/// Every composed object labelled for the claim `ns/name`, across `kinds`
/// (from [`kinds_to_scan`] or the caller's own list), read live. For
/// cleanup: a kind that discovery cannot resolve for any reason but "not
/// served" is an error to retry, never "nothing there".
pub async fn composed_by_labels(
    client: &Client,
    kinds: &Kinds,
    scan: &BTreeSet<(String, String)>,
    ns: &str,
    name: &str,
) -> Result<Vec<(Kind, String)>, Error> {
    let selector = format!(
        "{}={},{}={},{}",
        labels::CLAIM_NAMESPACE,
        label_value(ns),
        labels::CLAIM_NAME,
        label_value(name),
        labels::RESOURCE
    );
    let mut out = Vec::new();
    for (api_version, kind_name) in scan {
        let kind = match kinds.resolve(api_version, kind_name).await {
            Ok(k) => k,
            Err(e) if not_served(&e) => continue,
            Err(source) => {
                return Err(Error::Discovery {
                    api_version: api_version.clone(),
                    kind: kind_name.clone(),
                    source,
                });
            }
        };
        let api = api_for(client, &kind, Some(ns));
        let list = match api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
        {
            Ok(list) => list,
            // A kind the operator may not list (outside the chart's
            // rbac.composedKinds) is one it could not have created objects
            // of, nor delete: waiting on it would hang the claim forever.
            Err(kube::Error::Api(e)) if e.code == 403 => {
                warn!(kind = %kind_name, "the operator may not list this composed kind; skipping it");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for o in list.items {
            // Namespaced kinds are listed in the claim's namespace already.
            out.push((kind.clone(), o.name_any()));
        }
    }
    Ok(out)
}

/// What cleanup calls: [`composed_by_labels`] for `claim`, across dbclaim's
/// managed kinds, every composition's kinds and the claim's recorded ones.
pub async fn composed_for_claim(
    ctx: &Context,
    claim: &DatabaseClaim,
) -> Result<Vec<(Kind, String)>, Error> {
    let scan = {
        let compositions = ctx.compositions.state();
        kinds_to_scan(compositions.iter().map(|c| c.as_ref()), [claim])
    };
    let ns = claim.namespace().unwrap_or_default();
    composed_by_labels(&ctx.client, &ctx.kinds, &scan, &ns, &claim.name_any()).await
}

/// The merge patch that releases a composed object: dbclaim's labels and
/// every owner reference removed, the object itself kept.
pub fn release_patch() -> Value {
    let labels: serde_json::Map<String, Value> = labels::RELEASED
        .iter()
        .map(|k| (k.to_string(), Value::Null))
        .collect();
    json!({"metadata": {"ownerReferences": null, "labels": labels}})
}

/// Composed objects read per list request.
const LIST_PAGE: u32 = 250;

/// Runs the collector until the future is dropped. Start it where the
/// controllers run (the leader), after the caches' gate opened; it waits one
/// interval before its first pass.
pub async fn run(ctx: Arc<Context>, settings: Settings) {
    let mut reported = HashSet::new();
    loop {
        tokio::time::sleep(settings.interval).await;
        match pass(&ctx, settings, &mut reported).await {
            Ok(orphans) => ctx.metrics.set_orphaned_objects(orphans),
            Err(e) => warn!(error = %e, "orphan collection pass failed; retrying"),
        }
    }
}

type ClaimIndex = HashMap<(String, String), Vec<ClaimSeen>>;

/// Claims by (namespace, label value of the name): labels carry long or
/// dotted names hashed. Whole claims or their metadata alone.
fn index<'a, K: ResourceExt + 'a>(claims: impl IntoIterator<Item = &'a K>) -> ClaimIndex {
    let mut out: ClaimIndex = HashMap::new();
    for c in claims {
        let key = (
            label_value(&c.namespace().unwrap_or_default()),
            label_value(&c.name_any()),
        );
        out.entry(key).or_default().push(ClaimSeen {
            uid: c.uid().unwrap_or_default(),
            created: c.meta().creation_timestamp.as_ref().map(|t| t.0),
        });
    }
    out
}

fn claim_key(meta: &ObjectMeta) -> Option<(String, String)> {
    let l = meta.labels.as_ref()?;
    Some((
        l.get(labels::CLAIM_NAMESPACE)?.clone(),
        l.get(labels::CLAIM_NAME)?.clone(),
    ))
}

/// One pass; the number of orphans it saw.
/// `reported`: UIDs of orphans left in place (no recorded policy) whose
/// event is out already, so a quiet cluster gets no event every pass.
async fn pass(
    ctx: &Context,
    settings: Settings,
    reported: &mut HashSet<String>,
) -> Result<i64, Error> {
    let claims = ctx.claims.state();
    let compositions = ctx.compositions.state();
    let scan = kinds_to_scan(
        compositions.iter().map(|c| c.as_ref()),
        claims.iter().map(|c| c.as_ref()),
    );
    let cache = index(claims.iter().map(|c| c.as_ref()));
    drop(claims);
    // Live claim reads, once per namespace per pass.
    let mut live: HashMap<String, Option<ClaimIndex>> = HashMap::new();
    let mut orphans = 0;
    for (api_version, kind_name) in &scan {
        let kind = match ctx.kinds.resolve(api_version, kind_name).await {
            Ok(k) => k,
            Err(e) if not_served(&e) => continue,
            Err(e) => {
                warn!(error = %e, kind = %kind_name, "cannot resolve a composed kind; its orphans wait for the next pass");
                continue;
            }
        };
        // In pages: every composed object of the cluster at once would set
        // the operator's memory peak. An object listed stale is read again
        // live before anything is done to it.
        let api = api_for(&ctx.client, &kind, None);
        let mut params = ListParams::default()
            .labels(&composed_selector())
            .limit(LIST_PAGE);
        loop {
            let page = match api.list_metadata(&params).await {
                Ok(page) => page,
                // One kind the operator cannot list must not stop the others.
                Err(e) => {
                    warn!(error = %e, kind = %kind_name, "cannot list a composed kind; its orphans wait for the next pass");
                    break;
                }
            };
            for object in page.items {
                let Some(key) = claim_key(&object.metadata) else {
                    continue;
                };
                let cached = cache
                    .get(&key)
                    .map_or(Cached::Missing, |c| Cached::Found(c.clone()));
                let mut action = decide(
                    &object.metadata,
                    &cached,
                    &Live::NotAsked,
                    Timestamp::now(),
                    settings.grace,
                );
                if action == Action::Confirm {
                    let claims_live = match live.get(&key.0) {
                        Some(v) => v.clone(),
                        None => {
                            let v = live_claims(&ctx.client, &key.0).await;
                            live.insert(key.0.clone(), v.clone());
                            v
                        }
                    };
                    let seen = match claims_live {
                        None => Live::Failed,
                        Some(index) => index
                            .get(&key)
                            .map_or(Live::Missing, |c| Live::Found(c.clone())),
                    };
                    // The object as it is now, not as listed: a claim may have
                    // adopted it since.
                    let api = api_for(&ctx.client, &kind, object.metadata.namespace.as_deref());
                    let fresh = match api.get_metadata_opt(&object.name_any()).await {
                        Ok(Some(o)) => o.metadata,
                        Ok(None) => continue,
                        Err(e) => {
                            debug!(error = %e, "cannot read a composed object; next pass");
                            continue;
                        }
                    };
                    action = decide(&fresh, &cached, &seen, Timestamp::now(), settings.grace);
                }
                if action.is_orphan() {
                    orphans += 1;
                }
                if action == Action::Report && !reported.insert(object.uid().unwrap_or_default()) {
                    continue;
                }
                if let Err(e) = handle(ctx, &kind, &object.metadata, action).await {
                    warn!(error = %e, object = %object.name_any(), "could not handle an orphaned object; next pass");
                }
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
    }
    Ok(orphans)
}

/// The claims of a namespace, read live (metadata only); `None` when the
/// read failed.
async fn live_claims(client: &Client, ns: &str) -> Option<ClaimIndex> {
    // Label values of namespaces are the namespace itself (≤ 63, a DNS
    // label), so the label is the namespace to list.
    let api: Api<DatabaseClaim> = Api::namespaced(client.clone(), ns);
    match api.list_metadata(&ListParams::default()).await {
        Ok(list) => Some(index(&list.items)),
        Err(e) => {
            debug!(error = %e, namespace = ns, "cannot list claims; next pass");
            None
        }
    }
}

async fn handle(
    ctx: &Context,
    kind: &Kind,
    meta: &ObjectMeta,
    action: Action,
) -> Result<(), Error> {
    let name = meta.name.clone().unwrap_or_default();
    let api = api_for(&ctx.client, kind, meta.namespace.as_deref());
    let claim = claim_key(meta)
        .map(|(ns, n)| format!("{ns}/{n}"))
        .unwrap_or_default();
    let (reason, outcome) = match action {
        Action::Keep | Action::Wait | Action::Confirm => return Ok(()),
        Action::Delete => {
            api.delete(&name, &DeleteParams::background()).await?;
            info!(object = %name, %claim, "deleted a composed object whose claim no longer exists");
            (
                "OrphanDeleted",
                ": deleted under its recorded deletionPolicy Delete",
            )
        }
        Action::Release => {
            let release = Patch::Merge(release_patch());
            api.patch(&name, &PatchParams::default(), &release).await?;
            info!(object = %name, %claim, "released a composed object whose claim no longer exists");
            (
                "OrphanReleased",
                ": released (dbclaim's labels removed) under its recorded deletionPolicy Orphan",
            )
        }
        Action::Report => (
            "OrphanFound",
            " and no deletionPolicy is recorded on this object: left in place; delete it or remove dbclaim's labels",
        ),
    };
    let note = format!("claim {claim} no longer exists{outcome}");
    let reference = ObjectReference {
        api_version: Some(kind.resource.api_version.clone()),
        kind: Some(kind.resource.kind.clone()),
        name: Some(name),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        ..Default::default()
    };
    let event = crate::events::event(EventType::Warning, reason, "CollectOrphan", note);
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    if let Err(e) = recorder.publish(&event, &reference).await {
        warn!(error = %e, "could not publish event");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::collections::BTreeMap;

    const GRACE: Duration = Duration::from_secs(30);

    fn now() -> Timestamp {
        "2026-12-06T12:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn ago(secs: i64) -> Timestamp {
        now() - k8s_openapi::jiff::SignedDuration::from_secs(secs)
    }

    fn object(labels: &[(&str, &str)], age_secs: Option<i64>) -> ObjectMeta {
        ObjectMeta {
            name: Some("team-a-orders-db-database".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            creation_timestamp: age_secs.map(|s| Time(ago(s))),
            ..Default::default()
        }
    }

    fn composed(policy: Option<&str>, uid: Option<&str>) -> ObjectMeta {
        let mut l = vec![
            (labels::CLAIM_NAME, "orders-db"),
            (labels::CLAIM_NAMESPACE, "team-a"),
            (labels::RESOURCE, "database"),
        ];
        if let Some(p) = policy {
            l.push((labels::DELETION_POLICY, p));
        }
        if let Some(u) = uid {
            l.push((labels::CLAIM_UID, u));
        }
        object(&l, Some(600))
    }

    fn seen(uid: &str, age_secs: i64) -> ClaimSeen {
        ClaimSeen {
            uid: uid.into(),
            created: Some(ago(age_secs)),
        }
    }

    fn run(meta: &ObjectMeta, cached: Cached, live: Live) -> Action {
        decide(meta, &cached, &live, now(), GRACE)
    }

    #[test]
    fn objects_without_claim_labels_are_not_ours() {
        let unlabelled = object(&[], Some(600));
        assert_eq!(
            run(&unlabelled, Cached::Missing, Live::Missing),
            Action::Keep
        );
        let half = object(
            &[
                (labels::CLAIM_NAME, "x"),
                (labels::DELETION_POLICY, "Delete"),
            ],
            Some(600),
        );
        assert_eq!(run(&half, Cached::Missing, Live::Missing), Action::Keep);
        let mut none = object(&[], Some(600));
        none.labels = None;
        assert_eq!(run(&none, Cached::Missing, Live::Missing), Action::Keep);
    }

    #[test]
    fn a_claim_in_the_cache_rules_the_object_out_without_a_read() {
        for live in [Live::NotAsked, Live::Missing, Live::Failed] {
            let o = composed(Some("Delete"), Some("u1"));
            assert_eq!(
                run(&o, Cached::Found(vec![seen("u1", 900)]), live.clone()),
                Action::Keep
            );
            // No UID recorded (older dbclaim): any claim of the name owns it.
            let o = composed(Some("Delete"), None);
            assert_eq!(
                run(&o, Cached::Found(vec![seen("u9", 900)]), live),
                Action::Keep
            );
        }
    }

    #[test]
    fn a_cache_miss_is_only_a_reason_to_ask() {
        let o = composed(Some("Delete"), Some("u1"));
        assert_eq!(run(&o, Cached::Missing, Live::NotAsked), Action::Confirm);
        // A cached claim of the name with another UID is no proof either.
        assert_eq!(
            run(&o, Cached::Found(vec![seen("u2", 900)]), Live::NotAsked),
            Action::Confirm
        );
    }

    /// A stale cache: the claim was just created and the cache has not seen
    /// it; the live read has.
    #[test]
    fn the_live_read_keeps_what_a_stale_cache_misses() {
        let o = composed(Some("Delete"), Some("u1"));
        assert_eq!(
            run(&o, Cached::Missing, Live::Found(vec![seen("u1", 1)])),
            Action::Keep
        );
        let legacy = composed(Some("Delete"), None);
        assert_eq!(
            run(&legacy, Cached::Missing, Live::Found(vec![seen("u7", 900)])),
            Action::Keep
        );
    }

    #[test]
    fn a_failed_read_waits() {
        let o = composed(Some("Delete"), Some("u1"));
        assert_eq!(run(&o, Cached::Missing, Live::Failed), Action::Wait);
    }

    #[test]
    fn young_or_undated_or_deleting_objects_wait() {
        let mut young = composed(Some("Delete"), Some("u1"));
        young.creation_timestamp = Some(Time(ago(10)));
        assert_eq!(run(&young, Cached::Missing, Live::Missing), Action::Wait);
        young.creation_timestamp = Some(Time(ago(-60)));
        assert_eq!(run(&young, Cached::Missing, Live::Missing), Action::Wait);
        let mut undated = composed(Some("Delete"), Some("u1"));
        undated.creation_timestamp = None;
        assert_eq!(run(&undated, Cached::Missing, Live::Missing), Action::Wait);
        let mut deleting = composed(Some("Delete"), Some("u1"));
        deleting.deletion_timestamp = Some(Time(ago(5)));
        assert_eq!(run(&deleting, Cached::Missing, Live::Missing), Action::Wait);
        // At exactly the grace period it is old enough.
        let mut edge = composed(Some("Delete"), Some("u1"));
        edge.creation_timestamp = Some(Time(ago(30)));
        assert_eq!(run(&edge, Cached::Missing, Live::Missing), Action::Delete);
    }

    #[test]
    fn a_gone_claim_gets_the_recorded_policy() {
        let cases = [
            (Some("Delete"), Action::Delete),
            (Some("Orphan"), Action::Release),
            (None, Action::Report),
            (Some("delete"), Action::Report),
            (Some(""), Action::Report),
        ];
        for (policy, want) in cases {
            let o = composed(policy, Some("u1"));
            assert_eq!(run(&o, Cached::Missing, Live::Missing), want, "{policy:?}");
            let legacy = composed(policy, None);
            assert_eq!(
                run(&legacy, Cached::Missing, Live::Missing),
                want,
                "{policy:?}"
            );
        }
    }

    #[test]
    fn a_recreated_claim_of_the_same_name_gets_time_to_adopt() {
        let o = composed(Some("Delete"), Some("old"));
        // Young: it may render the object again and take it over.
        assert_eq!(
            run(
                &o,
                Cached::Found(vec![seen("new", 5)]),
                Live::Found(vec![seen("new", 5)])
            ),
            Action::Wait
        );
        // Older than the grace period and still not the owner: the claim
        // that made it is gone.
        assert_eq!(
            run(
                &o,
                Cached::Found(vec![seen("new", 900)]),
                Live::Found(vec![seen("new", 900)])
            ),
            Action::Delete
        );
        let orphan = composed(Some("Orphan"), Some("old"));
        assert_eq!(
            run(
                &orphan,
                Cached::Missing,
                Live::Found(vec![seen("new", 900)])
            ),
            Action::Release
        );
        // Undated claims count as young.
        let undated = ClaimSeen {
            uid: "new".into(),
            created: None,
        };
        assert_eq!(
            run(&o, Cached::Missing, Live::Found(vec![undated])),
            Action::Wait
        );
    }

    #[test]
    fn only_acting_decisions_count_as_orphans() {
        for a in [Action::Delete, Action::Release, Action::Report] {
            assert!(a.is_orphan());
        }
        for a in [Action::Keep, Action::Wait, Action::Confirm] {
            assert!(!a.is_orphan());
        }
    }

    #[test]
    fn kinds_to_scan_covers_managed_compositions_and_status() {
        let comp: Composition = serde_json::from_value(json!({
            "apiVersion": "dbclaim.io/v1alpha1", "kind": "Composition",
            "metadata": {"name": "c"},
            "spec": {"engines": ["postgres"], "resources": [
                {"name": "cm", "base": {"apiVersion": "v1", "kind": "ConfigMap"}},
                {"name": "bad", "base": {"kind": "NoVersion"}}
            ]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let claim: DatabaseClaim = serde_json::from_value(json!({
            "apiVersion": "dbclaim.io/v1alpha1", "kind": "DatabaseClaim",
            "metadata": {"name": "x", "namespace": "n"},
            "spec": {"engine": "postgres"},
            "status": {"resources": [{"name": "r", "apiVersion": "example.com/v1", "kind": "Thing", "resourceName": "t", "ready": true}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let got = kinds_to_scan([&comp], [&claim]);
        let want: BTreeSet<(String, String)> = [
            ("aws.dbclaim.io/v1alpha1", "RDSInstance"),
            ("postgres.dbclaim.io/v1alpha1", "Database"),
            ("v1", "ConfigMap"),
            ("example.com/v1", "Thing"),
        ]
        .into_iter()
        .map(|(a, k)| (a.to_string(), k.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn claims_are_indexed_by_label_values() {
        let long = "a".repeat(70);
        let claim: DatabaseClaim = serde_json::from_value(json!({
            "apiVersion": "dbclaim.io/v1alpha1", "kind": "DatabaseClaim",
            "metadata": {"name": long, "namespace": "n", "uid": "u"},
            "spec": {"engine": "postgres"}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let idx = index([&claim]);
        let hit = idx.get(&("n".to_string(), label_value(&long)));
        assert_eq!(hit.map(|v| v[0].uid.as_str()), Some("u"));
    }

    #[test]
    fn release_removes_every_dbclaim_label_and_owner() {
        let p = release_patch();
        assert_eq!(p["metadata"]["ownerReferences"], Value::Null);
        for k in [
            labels::CLAIM_NAME,
            labels::CLAIM_NAMESPACE,
            labels::COMPOSITION,
            labels::RESOURCE,
            labels::DELETION_POLICY,
            labels::CLAIM_UID,
        ] {
            assert_eq!(p["metadata"]["labels"].get(k), Some(&Value::Null), "{k}");
        }
    }

    #[test]
    fn discovery_errors_other_than_not_served_are_failures() {
        let status = |code| {
            kube::Error::Api(
                kube::core::Status::failure("x", "y")
                    .with_code(code)
                    .boxed(),
            )
        };
        assert!(not_served(&status(404)));
        assert!(!not_served(&status(503)));
        assert!(!not_served(&status(403)));
    }
}
