//! The scenarios: burst, propagation, idle, memory, restart, delete.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use dbclaim::api::DatabaseClaim;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher;
use serde_json::json;

use crate::env::{Cluster, NAMESPACE, Postgres, load_average};
use crate::model::{
    self, Burst, Delete, Edit, Floor, Idle, InlineRun, Memory, Pcts, PostgresRun, Propagation,
    Restart,
};
use crate::operator::Operator;
use crate::track::{self, ClaimState, Names, Watch};
use crate::{Result, RunArgs, err};

/// After a scenario: trailing writes (events after the last status write) land.
const SETTLE: Duration = Duration::from_secs(3);
/// How long the delete scenario waits for the garbage collector to remove
/// the connection Secrets once the claims are gone.
pub const SECRETS_GRACE: Duration = Duration::from_secs(30);
const CLAIM_LABEL: &str = "dbclaim.io/claim-name";
/// Claims in flight in the floor: the operator's default `--concurrency`.
const FLOOR_CONCURRENCY: usize = 32;

fn log(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

/// The bench namespace's claims, in the version users of the plane's
/// release write: the storage version (v1beta1) where the CRD has it, so
/// that no conversion webhook call is the benchmark's doing; v1alpha1 on a
/// baseline's own CRDs.
pub fn claims_api(cluster: &Cluster) -> Api<DynamicObject> {
    Api::namespaced_with(cluster.client.clone(), NAMESPACE, &claim_resource(cluster))
}

fn claim_resource(cluster: &Cluster) -> ApiResource {
    match cluster.stored_v1beta1 {
        true => ApiResource::erase::<dbclaim::api::v1beta1::DatabaseClaim>(&()),
        false => ApiResource::erase::<DatabaseClaim>(&()),
    }
}

pub fn claim(cluster: &Cluster, name: &str, composition: &str) -> Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": claim_resource(cluster).api_version,
        "kind": "DatabaseClaim",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"engine": "postgres", "compositionRef": {"name": composition}},
    }))?)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn claim_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Creates the claims `prefix0..prefix{n-1}` at once (`concurrency` calls in
/// flight); the time each create call was sent.
pub async fn create_claims(
    cluster: &Cluster,
    names: &[String],
    composition: &str,
    concurrency: usize,
) -> Result<HashMap<String, Instant>> {
    let api = claims_api(cluster);
    stream::iter(names.iter().cloned())
        .map(|name| {
            let api = api.clone();
            async move {
                let obj = claim(cluster, &name, composition)?;
                let sent = Instant::now();
                api.create(&PostParams::default(), &obj).await?;
                Ok::<_, crate::Error>((name, sent))
            }
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

/// N claims applied at once: time to Ready per claim and for all, the
/// operator's requests per claim, its peak RSS.
async fn burst(
    cluster: &Cluster,
    op: &Operator,
    claims: &Watch<ClaimState>,
    n: usize,
    composition: &str,
    args: &RunArgs,
) -> Result<Burst> {
    let names = claim_names("c-", n);
    let before = op.scrape().await?;
    let cpu0 = op.stats()?.cpu_secs;
    let plane0 = cluster.cpu();
    let start = Instant::now();
    let sent = create_claims(cluster, &names, composition, args.create_concurrency).await?;
    let create_secs = secs(start.elapsed());
    log(format!("  {n} claims created in {create_secs:.1}s"));
    claims
        .wait(&format!("{n} claims to be Ready"), args.timeout(), |s| {
            names.iter().all(|c| s.ready.contains_key(c))
        })
        .await?;
    let (latencies, mut ready_at) = claims.with(|s| {
        names
            .iter()
            .map(|c| {
                let ready = s.ready[c];
                (
                    secs(ready.saturating_duration_since(sent[c])),
                    secs(ready.saturating_duration_since(start)),
                )
            })
            .unzip::<_, _, Vec<f64>, Vec<f64>>()
    });
    ready_at.sort_by(f64::total_cmp);
    let all_ready_secs = ready_at.last().copied().unwrap_or(f64::NAN);
    let plane_cpu = cluster.cpu().since(&plane0);
    let cpu_secs = op.stats()?.cpu_secs - cpu0;
    tokio::time::sleep(SETTLE).await;
    let after = op.scrape().await?;
    let stats = op.stats()?;
    let requests = after.since(&before);
    let b = Burst {
        claims: n,
        create_secs,
        all_ready_secs,
        latency: Pcts::of(latencies),
        mutating_per_claim: model::mutating(&requests) / n as f64,
        mutating_per_claim_without_events: model::mutating_without_events(&requests) / n as f64,
        requests,
        peak_rss_mib: stats.peak_rss_mib,
        cpu_secs,
        plane_cpu,
        ready_at: ready_at
            .iter()
            .map(|t| (t * 1000.0).round() / 1000.0)
            .collect(),
    };
    log(format!(
        "  all Ready after {:.2}s; per claim p50 {:.2}s p99 {:.2}s; {:.2} mutating requests/claim ({:.2} without events); peak RSS {:.1} MiB; CPU s: operator {:.1}, apiserver {:.1}, etcd {:.1}, bench {:.1}",
        b.all_ready_secs,
        b.latency.p50,
        b.latency.p99,
        b.mutating_per_claim,
        b.mutating_per_claim_without_events,
        b.peak_rss_mib,
        b.cpu_secs,
        b.plane_cpu.apiserver,
        b.plane_cpu.etcd,
        b.plane_cpu.bench,
    ));
    Ok(b)
}

/// One edit of `composition` (a new key in its composed ConfigMap): the
/// time until every burst claim renders the new revision (Synced with it in
/// status), measured from the edit, with the operator's writes per claim.
async fn edit(
    cluster: &Cluster,
    op: &Operator,
    claims: &Watch<ClaimState>,
    n: usize,
    composition: &str,
    burst: &Burst,
    args: &RunArgs,
) -> Result<Edit> {
    let names = claim_names("c-", n);
    let api: Api<dbclaim::api::Composition> = Api::all(cluster.client.clone());
    let mut comp = api.get(composition).await?;
    for t in &mut comp.spec.resources {
        if let Some(data) = t.base.get_mut("data").and_then(|d| d.as_object_mut()) {
            data.insert("tier".into(), json!("edited"));
        }
    }
    // The newest revision number after the edit: one more than now.
    let revisions: Api<dbclaim::api::CompositionRevision> = Api::all(cluster.client.clone());
    let lp = kube::api::ListParams::default()
        .labels(&format!("dbclaim.io/composition-name={composition}"));
    let newest = revisions
        .list(&lp)
        .await?
        .items
        .iter()
        .map(|r| r.spec.revision)
        .max()
        .unwrap_or(0)
        + 1;
    let before = op.scrape().await?;
    let start = Instant::now();
    api.replace(composition, &PostParams::default(), &comp)
        .await?;
    claims
        .wait(
            &format!("{n} claims to render revision {newest}"),
            args.timeout(),
            |s| {
                names
                    .iter()
                    .all(|c| s.synced_revision.contains_key(&(c.clone(), newest)))
            },
        )
        .await?;
    let latencies = claims.with(|s| {
        names
            .iter()
            .map(|c| secs(s.synced_revision[&(c.clone(), newest)].saturating_duration_since(start)))
            .collect::<Vec<_>>()
    });
    let all_synced_secs = latencies.iter().copied().fold(0.0, f64::max);
    tokio::time::sleep(SETTLE).await;
    let requests = op.scrape().await?.since(&before);
    let e = Edit {
        claims: n,
        all_synced_secs,
        ratio_to_burst: all_synced_secs / burst.all_ready_secs,
        latency: Pcts::of(latencies),
        mutating_per_claim: model::mutating(&requests) / n as f64,
        mutating_per_claim_without_events: model::mutating_without_events(&requests) / n as f64,
    };
    log(format!(
        "  composition edit: all {n} claims on revision {newest} after {:.2}s ({:.2}x the burst's all Ready); {:.2} mutating requests/claim ({:.2} without events)",
        e.all_synced_secs,
        e.ratio_to_burst,
        e.mutating_per_claim,
        e.mutating_per_claim_without_events
    ));
    Ok(e)
}

/// Claims whose composed ConfigMap turns ready only when patched: the time
/// from each patch to the claim's Ready=True. Flips are paced, not bursted.
async fn propagation(
    cluster: &Cluster,
    op: &Operator,
    claims: &Watch<ClaimState>,
    args: &RunArgs,
) -> Result<Propagation> {
    let names = claim_names("f-", args.flips);
    create_claims(cluster, &names, "bench-flip", args.create_concurrency).await?;
    claims
        .wait("flip claims to be provisioned", args.timeout(), |s| {
            names.iter().all(|c| s.provisioned.contains(c))
        })
        .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    if claims.with(|s| names.iter().any(|c| s.ready.contains_key(c))) {
        return Err(err("a flip claim was Ready before its flip"));
    }
    let before = op.scrape().await?;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), NAMESPACE);
    let mut tick = tokio::time::interval(Duration::from_millis(args.flip_interval_ms));
    let mut sent = HashMap::new();
    for name in &names {
        tick.tick().await;
        let cm = dbclaim::naming::composed_name(NAMESPACE, name, "db");
        let t = Instant::now();
        cms.patch(
            &cm,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"ready": "true"}})),
        )
        .await?;
        sent.insert(name.clone(), t);
    }
    claims
        .wait("flipped claims to be Ready", args.timeout(), |s| {
            names.iter().all(|c| s.ready.contains_key(c))
        })
        .await?;
    let latencies = claims.with(|s| {
        names
            .iter()
            .map(|c| secs(s.ready[c].saturating_duration_since(sent[c])))
            .collect::<Vec<_>>()
    });
    tokio::time::sleep(SETTLE).await;
    let requests = op.scrape().await?.since(&before);
    let p = Propagation {
        latency: Pcts::of(latencies),
        mutating_per_flip: model::mutating(&requests) / names.len() as f64,
    };
    log(format!(
        "  propagation p50 {:.3}s p99 {:.3}s max {:.3}s over {} flips",
        p.latency.p50, p.latency.p99, p.latency.max, p.latency.samples
    ));
    Ok(p)
}

async fn idle(
    cluster: &Cluster,
    op: &Operator,
    claims: usize,
    args: &RunArgs,
) -> Result<(Idle, f64)> {
    tokio::time::sleep(Duration::from_secs(10)).await;
    let before = op.scrape().await?;
    let s0 = op.stats()?;
    let plane0 = cluster.cpu();
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let after = op.scrape().await?;
    let s1 = op.stats()?;
    let requests = after.since(&before);
    let i = Idle {
        secs: secs(start.elapsed()),
        claims,
        mutating: model::mutating(&requests),
        requests,
        cpu_secs: s1.cpu_secs - s0.cpu_secs,
        reconciles: after.claim_reconciles - before.claim_reconciles,
        plane_cpu: cluster.cpu().since(&plane0),
    };
    log(format!(
        "  idle {:.0}s: {} mutating requests, {:.2} CPU s, {} reconciles, RSS {:.1} MiB",
        i.secs, i.mutating, i.cpu_secs, i.reconciles, s1.rss_mib
    ));
    Ok((i, s1.rss_mib))
}

pub async fn restart(op: &mut Operator, claims: usize, args: &RunArgs) -> Result<Restart> {
    op.kill().await?;
    let start = Instant::now();
    op.spawn().await?;
    let mut reconciled = None;
    let mut last = -1.0;
    let mut last_change = Duration::ZERO;
    let deadline = start + args.timeout();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if Instant::now() > deadline {
            return Err(err("restart: claims were not all reconciled in time"));
        }
        let Ok(s) = op.scrape().await else { continue };
        if s.claim_reconciles != last {
            last = s.claim_reconciles;
            last_change = start.elapsed();
        }
        if reconciled.is_none() && s.claim_reconciles >= claims as f64 {
            reconciled = Some(start.elapsed());
        }
        if reconciled.is_some() && start.elapsed() > last_change + Duration::from_secs(3) {
            break;
        }
    }
    tokio::time::sleep(SETTLE).await;
    let s = op.scrape().await?;
    let stats = op.stats()?;
    let r = Restart {
        claims,
        reconciled_secs: reconciled.map(secs).unwrap_or(f64::NAN),
        settled_secs: secs(last_change),
        reconciles: s.claim_reconciles,
        mutating: model::mutating(&s.requests),
        requests: s.requests,
        peak_rss_mib: stats.peak_rss_mib,
        cpu_secs: stats.cpu_secs,
    };
    log(format!(
        "  restart: {} claims reconciled after {:.2}s (settled {:.2}s, {} reconciles), {} mutating requests, peak RSS {:.1} MiB",
        claims, r.reconciled_secs, r.settled_secs, r.reconciles, r.mutating, r.peak_rss_mib
    ));
    Ok(r)
}

/// Deletes every claim at once; times until composed objects, claims and
/// connection Secrets are gone.
async fn delete<K>(
    cluster: &Cluster,
    op: &Operator,
    claims: &Watch<ClaimState>,
    composed: Api<PartialObjectMeta<K>>,
    args: &RunArgs,
) -> Result<Delete>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let composed = track::names(composed, watcher::Config::default().labels(CLAIM_LABEL));
    let secrets: Watch<Names> = track::names(
        Api::<PartialObjectMeta<Secret>>::namespaced(cluster.client.clone(), NAMESPACE),
        watcher::Config::default().labels(CLAIM_LABEL),
    );
    for w in [&composed, &secrets] {
        w.wait("a watch to sync", Duration::from_secs(60), |s| s.synced)
            .await?;
    }
    let names: Vec<String> = claims.with(|s| s.present.iter().cloned().collect());
    let n = names.len();
    let before = op.scrape().await?;
    let cpu0 = op.stats()?.cpu_secs;
    let plane0 = cluster.cpu();
    let api = claims_api(cluster);
    let start = Instant::now();
    stream::iter(names)
        .map(|name| {
            let api = api.clone();
            async move {
                api.delete(&name, &DeleteParams::default())
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(args.create_concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let (mut composed_gone, mut claims_gone, mut secrets_gone) = (None, None, None);
    let deadline = start + args.timeout();
    loop {
        let now = start.elapsed();
        let secrets_waited = claims_gone.is_some_and(|c: Duration| now > c + SECRETS_GRACE);
        if composed_gone.is_some()
            && claims_gone.is_some()
            && (secrets_gone.is_some() || secrets_waited)
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(err("delete: objects left after the timeout"));
        }
        if composed_gone.is_none() && composed.with(|s| s.names.is_empty()) {
            composed_gone = Some(now);
        }
        if claims_gone.is_none() && claims.with(|s| s.present.is_empty()) {
            claims_gone = Some(now);
        }
        if secrets_gone.is_none() && secrets.with(|s| s.names.is_empty()) {
            secrets_gone = Some(now);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let plane_cpu = cluster.cpu().since(&plane0);
    let cpu_secs = op.stats()?.cpu_secs - cpu0;
    tokio::time::sleep(SETTLE).await;
    let requests = op.scrape().await?.since(&before);
    let d = Delete {
        cpu_secs,
        plane_cpu,
        claims: n,
        composed_gone_secs: composed_gone.map(secs).unwrap_or(f64::NAN),
        claims_gone_secs: claims_gone.map(secs).unwrap_or(f64::NAN),
        secrets_gone_secs: secrets_gone.map(secs),
        secrets_left: secrets.with(|s| s.names.len()),
        mutating_per_claim: model::mutating(&requests) / n.max(1) as f64,
        mutating_per_claim_without_events: model::mutating_without_events(&requests)
            / n.max(1) as f64,
        requests,
    };
    log(format!(
        "  delete {n}: composed objects gone after {:.2}s, claims {:.2}s, secrets {}; {:.2} mutating requests/claim",
        d.composed_gone_secs,
        d.claims_gone_secs,
        match d.secrets_gone_secs {
            Some(s) => format!("{s:.2}s"),
            None => format!(
                "{} left after the claims + {}s",
                d.secrets_left,
                SECRETS_GRACE.as_secs()
            ),
        },
        d.mutating_per_claim
    ));
    Ok(d)
}

/// What the benchmark sends in place of the operator for each claim of a
/// floor run ([`floor`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replay {
    /// The in-cluster composition's pass: the finalizer patch (none where
    /// the chart's finalizer policy puts it on at create); the apply
    /// of the composed ConfigMap and of the Secret, whose absence dbclaim
    /// reads from its caches; the status apply; with `events`, the pass's
    /// event (the confirming pass reads caches only).
    InCluster { events: bool },
    /// The shared-PostgreSQL composition's writes, the provider's
    /// included: the finalizer patch (as above), the claim's Creating status, the
    /// Database apply (with the provider's finalizer) and its Ready status,
    /// the provider's Secret, the claim's Secret and Ready status, and the
    /// claim's two events. No PostgreSQL: only the API server's part.
    SharedPostgres,
}

/// The API server's floor for dbclaim's requests: with no operator running,
/// the benchmark creates n claims and sends, for each, what dbclaim sends
/// (`replay`), [`FLOOR_CONCURRENCY`] claims at a time like the operator's
/// default. The seconds until the last claim's sequence is done.
pub async fn floor(cluster: &Cluster, n: usize, replay: Replay, args: &RunArgs) -> Result<f64> {
    let (prefix, composition) = match replay {
        Replay::InCluster { events: true } => ("fe-", "bench-inline"),
        Replay::InCluster { events: false } => ("fn-", "bench-inline"),
        Replay::SharedPostgres => ("fp-", "shared-postgres"),
    };
    let names = claim_names(prefix, n);
    let claims = claims_api(cluster);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    let start = Instant::now();
    let create = {
        let claims = claims.clone();
        let names = names.clone();
        async move {
            stream::iter(names)
                .map(|name| {
                    let claims = claims.clone();
                    let tx = tx.clone();
                    async move {
                        let created = claims
                            .create(&PostParams::default(), &claim(cluster, &name, composition)?)
                            .await?;
                        let uid = created.metadata.uid.unwrap_or_default();
                        let _ = tx.send((name, uid));
                        Ok::<_, crate::Error>(())
                    }
                })
                .buffer_unordered(args.create_concurrency)
                .try_collect::<Vec<()>>()
                .await
        }
    };
    let writes = Writes::new(cluster);
    let work = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
        .map(|(name, uid)| {
            let writes = writes.clone();
            async move {
                match replay {
                    Replay::InCluster { events } => writes.in_cluster(&name, &uid, events).await,
                    Replay::SharedPostgres => writes.shared_postgres(&name, &uid).await,
                }
            }
        })
        .buffer_unordered(FLOOR_CONCURRENCY)
        .take(n)
        .try_collect::<Vec<()>>();
    let (created, worked) = tokio::join!(create, work);
    created?;
    worked?;
    let took = secs(start.elapsed());
    log(format!(
        "  API-server floor, {n} claims, {replay:?}: {took:.2}s"
    ));
    Ok(took)
}

/// Synced=True and Ready (Available, or Creating when not `ready`), as a
/// claim's or a managed resource's status carries them.
fn conditions(ready: bool) -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (status, reason) = match ready {
        true => ("True", "Available"),
        false => ("False", "Creating"),
    };
    json!([
        {"type": "Synced", "status": "True", "reason": "ReconcileSuccess", "message": "",
         "lastTransitionTime": now, "observedGeneration": 1},
        {"type": "Ready", "status": status, "reason": reason, "message": "",
         "lastTransitionTime": now, "observedGeneration": 1},
    ])
}

/// The APIs a floor run writes to, and the writes of one claim.
#[derive(Clone)]
struct Writes {
    claims: Api<DynamicObject>,
    cms: Api<ConfigMap>,
    secrets: Api<Secret>,
    provider_secrets: Api<Secret>,
    databases: Api<DynamicObject>,
    events: Api<k8s_openapi::api::events::v1::Event>,
    ssa: PatchParams,
    /// The version the claims are stored (and the operator speaks) in: a
    /// write in another would add conversion webhook calls the operator
    /// does not cause.
    version: String,
    finalizer_policy: bool,
}

impl Writes {
    fn new(cluster: &Cluster) -> Self {
        let client = cluster.client.clone();
        let database = ApiResource {
            group: "postgres.dbclaim.io".into(),
            version: "v1alpha1".into(),
            api_version: "postgres.dbclaim.io/v1alpha1".into(),
            kind: "Database".into(),
            plural: "databases".into(),
        };
        Self {
            claims: claims_api(cluster),
            cms: Api::namespaced(client.clone(), NAMESPACE),
            secrets: Api::namespaced(client.clone(), NAMESPACE),
            provider_secrets: Api::namespaced(client.clone(), "dbclaim-system"),
            databases: Api::all_with(client.clone(), &database),
            events: Api::namespaced(client, NAMESPACE),
            ssa: PatchParams::apply("dbclaim-floor").force(),
            version: claim_resource(cluster).api_version,
            finalizer_policy: cluster.finalizer_policy,
        }
    }

    fn owner(&self, name: &str, uid: &str) -> serde_json::Value {
        json!([{"apiVersion": self.version, "kind": "DatabaseClaim",
            "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}])
    }

    /// The claim finalizer patch, unless the plane's finalizer policy put
    /// it on at create.
    async fn finalizer(&self, name: &str) -> Result<()> {
        if self.finalizer_policy {
            return Ok(());
        }
        self.claims
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": ["dbclaim.io/finalizer"]}})),
            )
            .await?;
        Ok(())
    }

    async fn status(&self, name: &str, ready: bool, resource: serde_json::Value) -> Result<()> {
        let secret = format!("{name}-connection");
        let mut body = json!({
            "observedGeneration": 1,
            "conditions": conditions(ready),
            "composition": {"name": "bench"},
            "resources": [resource],
        });
        if ready {
            body["connectionSecretRef"] = json!({"name": secret});
            body["binding"] = json!({"name": secret});
        }
        self.claims
            .patch_status(
                name,
                &self.ssa,
                &Patch::Apply(
                    json!({"apiVersion": self.version, "kind": "DatabaseClaim", "status": body}),
                ),
            )
            .await?;
        Ok(())
    }

    async fn claim_secret(&self, name: &str, uid: &str, labels: &serde_json::Value) -> Result<()> {
        let secret = format!("{name}-connection");
        self.secrets.patch(&secret, &self.ssa, &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "servicebinding.io/postgresql",
            "metadata": {"name": secret, "namespace": NAMESPACE, "labels": labels, "ownerReferences": self.owner(name, uid)},
            "stringData": {"type": "postgresql", "provider": "bench", "host": "db.bench.example",
                "port": "5432", "username": "app", "password": "bench-not-a-secret", "database": name,
                "uri": "postgresql://app:bench-not-a-secret@db.bench.example:5432/db"},
        })))
        .await?;
        Ok(())
    }

    async fn event(&self, name: &str, uid: &str, seq: usize, note: String) -> Result<()> {
        let ev: k8s_openapi::api::events::v1::Event = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}.{seq}"), "namespace": NAMESPACE},
            "eventTime": k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            "reportingController": "dbclaim", "reportingInstance": "dbclaim",
            "action": "Reconcile", "reason": "Ready", "type": "Normal",
            "note": note,
            "regarding": {"apiVersion": self.version, "kind": "DatabaseClaim",
                "name": name, "namespace": NAMESPACE, "uid": uid},
        }))?;
        self.events.create(&PostParams::default(), &ev).await?;
        Ok(())
    }

    async fn in_cluster(&self, name: &str, uid: &str, events: bool) -> Result<()> {
        let cm = dbclaim::naming::composed_name(NAMESPACE, name, "db");
        let labels = json!({CLAIM_LABEL: name, "dbclaim.io/claim-namespace": NAMESPACE});
        self.finalizer(name).await?;
        self.cms.patch(&cm, &self.ssa, &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": cm, "namespace": NAMESPACE, "labels": labels, "ownerReferences": self.owner(name, uid),
                "annotations": {"dbclaim.io/applied-hash": "0123456789"}},
            "data": {"host": "db.bench.example", "port": "5432", "username": "app",
                "password": "bench-not-a-secret", "database": name},
        })))
        .await?;
        self.claim_secret(name, uid, &labels).await?;
        let resource = json!({"name": "db", "apiVersion": "v1", "kind": "ConfigMap",
            "resourceName": cm, "ready": true});
        self.status(name, true, resource).await?;
        if events {
            // One pass, one event (src/events.rs folds its steps).
            let note =
                format!("composition selected; ConfigMap created; Secret written; {name} is ready");
            self.event(name, uid, 0, note).await?;
        }
        Ok(())
    }

    async fn shared_postgres(&self, name: &str, uid: &str) -> Result<()> {
        let db = dbclaim::naming::composed_name(NAMESPACE, name, "database");
        let labels = json!({CLAIM_LABEL: name, "dbclaim.io/claim-namespace": NAMESPACE});
        let resource = |ready: bool| {
            json!({"name": "database", "apiVersion": "postgres.dbclaim.io/v1alpha1",
            "kind": "Database", "resourceName": db, "ready": ready})
        };
        let database = name.replace('-', "_");
        // The first pass: the finalizer, the Database, Creating, its event.
        self.finalizer(name).await?;
        let db_labels = json!({CLAIM_LABEL: name, "dbclaim.io/claim-namespace": NAMESPACE,
            "dbclaim.io/claim-uid": uid, "dbclaim.io/composition": "shared-postgres",
            "dbclaim.io/deletion-policy": "Delete", "dbclaim.io/resource": "database"});
        self.databases.patch(&db, &self.ssa, &Patch::Apply(json!({
            "apiVersion": "postgres.dbclaim.io/v1alpha1", "kind": "Database",
            "metadata": {"name": db, "labels": db_labels, "finalizers": ["postgres.dbclaim.io/finalizer"],
                "annotations": {"dbclaim.io/applied-hash": "0123456789"}},
            "spec": {"deletionPolicy": "Delete", "providerConfigRef": {"name": "default"},
                "forProvider": {"databaseName": database, "connectionLimit": 20}},
        })))
        .await?;
        self.status(name, false, resource(false)).await?;
        self.event(
            name,
            uid,
            0,
            format!("composition shared-postgres selected; created Database {db}"),
        )
        .await?;
        // The provider's pass: its Secret, then the Database's Ready status.
        self.provider_secrets.patch(&db, &self.ssa, &Patch::Apply(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": db, "namespace": "dbclaim-system", "labels": labels,
                "annotations": {"postgres.dbclaim.io/database": db}},
            "stringData": {"host": "127.0.0.1", "endpoint": "127.0.0.1", "port": "5432", "database": database,
                "username": database, "password": "bench-not-a-secret"},
        })))
        .await?;
        self.databases.patch_status(&db, &self.ssa, &Patch::Apply(json!({
            "apiVersion": "postgres.dbclaim.io/v1alpha1", "kind": "Database",
            "status": {"observedGeneration": 1,
                "atProvider": {"databaseName": database, "roleName": database, "login": database, "connectionLimit": 20},
                "conditions": conditions(true)},
        })))
        .await?;
        // The claim's second pass: its Secret, Ready, its event.
        self.claim_secret(name, uid, &labels).await?;
        self.status(name, true, resource(true)).await?;
        self.event(
            name,
            uid,
            1,
            format!("connection secret {name}-connection written; the database is ready"),
        )
        .await?;
        Ok(())
    }
}

/// Baseline RSS: the operator with synced caches and no claims.
async fn baseline(op: &Operator) -> Result<f64> {
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(op.stats()?.rss_mib)
}

/// The in-cluster composition at size n: every scenario in a fresh plane.
pub async fn inline_run(args: &RunArgs, run: usize, n: usize) -> Result<InlineRun> {
    let dir = args.state.join(format!("inline-{n}-{run}"));
    std::fs::create_dir_all(&dir)?;
    let log_file = dir.join("scripts.log");
    log(format!(
        "in-cluster composition, N={n}, run {run}: starting a control plane"
    ));
    let cluster = Cluster::up(&args.repo, &dir.join("cluster"), &log_file).await?;
    let result = inline_scenarios(args, &cluster, &dir, run, n).await;
    if let Err(e) = cluster.down(&log_file).await {
        log(format!("  cluster down: {e}"));
    }
    result
}

async fn inline_scenarios(
    args: &RunArgs,
    cluster: &Cluster,
    dir: &Path,
    run: usize,
    n: usize,
) -> Result<InlineRun> {
    let load_start = load_average();
    let claims = track::claims(cluster);
    let mut op = Operator::start(
        args.operator_bin(),
        &cluster.operator_args(args.operator_bin(), &args.operator_args),
        &cluster.kubeconfig,
        &dir.join("operator.log"),
    )
    .await?;
    let result = async {
        op.wait_ready(Duration::from_secs(60)).await?;
        let baseline_rss = baseline(&op).await?;
        log("  burst");
        let burst = burst(cluster, &op, &claims, n, "bench-inline", args).await?;
        log("  composition edit");
        let edit = edit(cluster, &op, &claims, n, "bench-inline", &burst, args).await?;
        log("  propagation");
        let propagation = propagation(cluster, &op, &claims, args).await?;
        let total = n + args.flips;
        log("  idle");
        let (idle, steady) = idle(cluster, &op, total, args).await?;
        let memory = Memory {
            baseline_rss_mib: baseline_rss,
            peak_rss_mib: op.stats()?.peak_rss_mib,
            steady_rss_mib: steady,
            mib_per_1000: (steady - baseline_rss) / total as f64 * 1000.0,
        };
        log("  restart");
        let restart = restart(&mut op, total, args).await?;
        log("  delete");
        let delete = delete(
            cluster,
            &op,
            &claims,
            Api::<PartialObjectMeta<ConfigMap>>::namespaced(cluster.client.clone(), NAMESPACE),
            args,
        )
        .await?;
        op.stop().await?;
        let floor = if n <= args.floor_max {
            log("  API-server floor");
            Floor {
                with_events_secs: floor(cluster, n, Replay::InCluster { events: true }, args)
                    .await?,
                without_events_secs: floor(cluster, n, Replay::InCluster { events: false }, args)
                    .await?,
            }
        } else {
            Floor::default()
        };
        Ok(InlineRun {
            run,
            n,
            load_start,
            burst,
            propagation,
            idle,
            memory,
            restart,
            delete,
            floor,
            edit,
        })
    }
    .await;
    op.stop().await?;
    result
}

/// The shipped shared-postgres composition at size n: burst and delete.
pub async fn postgres_run(args: &RunArgs, run: usize, n: usize) -> Result<PostgresRun> {
    let dir = args.state.join(format!("postgres-{n}-{run}"));
    std::fs::create_dir_all(&dir)?;
    let log_file = dir.join("scripts.log");
    log(format!(
        "shared-postgres composition, N={n}, run {run}: starting a control plane and PostgreSQL"
    ));
    let cluster = Cluster::up(&args.repo, &dir.join("cluster"), &log_file).await?;
    let pg = match Postgres::up(&args.repo, &dir.join("postgres"), &log_file).await {
        Ok(pg) => pg,
        Err(e) => {
            let _ = cluster.down(&log_file).await;
            return Err(e);
        }
    };
    let result = async {
        pg.install(&cluster).await?;
        let load_start = load_average();
        let claims = track::claims(&cluster);
        let mut op = Operator::start(
            args.operator_bin(),
            &cluster.operator_args(args.operator_bin(), &args.operator_args),
            &cluster.kubeconfig,
            &dir.join("operator.log"),
        )
        .await?;
        let result = async {
            op.wait_ready(Duration::from_secs(60)).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            log("  burst");
            let burst = burst(&cluster, &op, &claims, n, "shared-postgres", args).await?;
            log("  delete");
            let databases: Api<PartialObjectMeta<dbclaim::api::postgres::Database>> =
                Api::all(cluster.client.clone());
            let delete = delete(&cluster, &op, &claims, databases, args).await?;
            Ok(PostgresRun {
                run,
                n,
                load_start,
                burst,
                delete,
            })
        }
        .await;
        op.stop().await?;
        result
    }
    .await;
    if let Err(e) = pg.down(&log_file).await {
        log(format!("  postgres down: {e}"));
    }
    if let Err(e) = cluster.down(&log_file).await {
        log(format!("  cluster down: {e}"));
    }
    result
}
