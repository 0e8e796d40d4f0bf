//! `dbclaim run`: the process. Metrics and probe servers, leader election
//! (a standby keeps its caches warm), then the claim controller and the
//! providers, until SIGTERM or Ctrl-C or a lost lease.

use futures::StreamExt;
use kube::api::Api;
use tracing::{info, warn};

use crate::api::{ClaimPolicy, Composition};
use crate::cli::RunArgs;
use crate::controller::claim::watches::{self, reflect};
use crate::metrics::Metrics;
use crate::server::{self, Readiness};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the Kubernetes API")]
    Kube(#[from] kube::Error),
    #[error("cannot start the async runtime")]
    Runtime(#[from] std::io::Error),
    #[error("lost leadership, exiting so that only the new leader reconciles")]
    LeaseLost(#[from] crate::leader::Lost),
    #[error("{0}")]
    LeaderElection(String),
    #[error("{0}: set --cluster-id (chart value clusterId)")]
    ClusterId(String),
    #[error("conversion webhook")]
    Webhook(#[source] crate::webhook::Error),
    #[error("cannot serve {what} on {addr}")]
    Serve {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

pub fn run_blocking(args: RunArgs) -> Result<(), Error> {
    limit_malloc_arenas();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

/// glibc gives each thread that allocates concurrently an arena of its
/// own (up to 8 per core), and memory freed in one arena is not reused by
/// another: with tokio moving reconciles between worker threads, a restart
/// that lists every cache and reconciles every claim at once peaked about
/// 4 MiB higher at 1,000 claims (`make bench`, MALLOC_ARENA_MAX=2 against
/// the default). Two arenas keep allocation contention low for an
/// I/O-bound process. Called before any thread starts; an operator's
/// MALLOC_ARENA_MAX still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets an allocator parameter; it runs before
        // the runtime starts any thread.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

fn operator_namespace(args: &RunArgs) -> String {
    args.operator_namespace
        .clone()
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok()
        })
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "dbclaim-system".to_string())
}

/// The cluster's identity in ownership marks: the flag, else the UID of the
/// kube-system namespace (stable for the cluster's life, distinct between
/// clusters). Read before any controller starts: no mark is ever written
/// without it.
async fn cluster_id(client: &kube::Client, flag: &str) -> Result<String, Error> {
    use crate::provider::managed::ownership::cluster_id_problem;
    let id = if flag.is_empty() {
        let ns = Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
            .get("kube-system")
            .await?;
        ns.metadata.uid.unwrap_or_default()
    } else {
        flag.to_string()
    };
    match cluster_id_problem(&id) {
        Some(why) => Err(Error::ClusterId(why)),
        None => Ok(id),
    }
}

pub async fn run(args: RunArgs) -> Result<(), Error> {
    let metrics = Metrics::default();
    // Every request goes through the counting layer:
    // dbclaim_kube_requests_total{verb,resource}.
    let config = kube::Config::infer()
        .await
        .map_err(kube::Error::InferConfig)?;
    let client = kube::client::ClientBuilder::try_from(config)?
        .with_layer(&metrics.kube_layer())
        .build();
    let operator_namespace = operator_namespace(&args);
    let cluster_id = cluster_id(&client, &args.cluster_id).await?;
    let readiness = Readiness::default();
    let claim_resource = watches::claim_resource(&client).await;
    match client.apiserver_version().await {
        Ok(v) => {
            let streaming = crate::controller::cache::streams_lists(&v.major, &v.minor);
            crate::controller::cache::set_streaming_lists(streaming);
            info!(version = %v.git_version, streaming_lists = streaming, "API server");
        }
        // Pages work everywhere.
        Err(e) => warn!(error = %e, "cannot read the API server's version: caches list in pages"),
    }
    info!(%operator_namespace, %cluster_id, claims = %claim_resource.api_version, "starting dbclaim");

    let webhook_readiness = readiness.clone();
    let webhook = crate::webhook::serve(
        args.webhook_bind_address,
        args.webhook_cert_dir.clone(),
        move |_| webhook_readiness.set_webhook_serving(),
    );
    // Every replica wires the CRD (idempotent): the API server needs the
    // webhook before any replica's claim watch can list.
    let inject = {
        let (client, service, dir) = (
            client.clone(),
            args.webhook_service.clone(),
            args.webhook_cert_dir.clone(),
        );
        async move {
            match service {
                Some(service) => crate::webhook::inject_ca(client, service, dir).await,
                None => std::future::pending().await,
            }
        }
    };
    tokio::spawn(inject);
    let metrics_server = server::serve_metrics(args.metrics_bind_address, metrics.clone());
    let probes_server = server::serve_probes(args.health_probe_bind_address, readiness.clone());
    // Bind errors surface at once rather than after the controllers start.
    let metrics_addr = args.metrics_bind_address;
    let probes_addr = args.health_probe_bind_address;
    tokio::pin!(metrics_server, probes_server, webhook);

    // Leader election: standbys serve probes and metrics and keep their
    // caches synced (so /readyz says whether they could lead), but start no
    // controller until they hold the Lease.
    let mut leadership = None;
    if args.leader_elect {
        let elector = crate::leader::Elector::new(
            client.clone(),
            args.leader_election_namespace
                .as_deref()
                .unwrap_or(&operator_namespace),
            &args.leader_election_id,
            crate::leader::default_identity(),
            crate::leader::Timings {
                lease_duration: args.leader_election_lease_duration,
                renew_deadline: args.leader_election_renew_deadline,
                retry_period: args.leader_election_retry_period,
            },
        )
        .map_err(Error::LeaderElection)?;
        info!(identity = %elector.identity(), lease = %args.leader_election_id, "waiting for leadership");
        tokio::select! {
            held = elector.acquire() => leadership = Some(held),
            r = &mut metrics_server => return r.map_err(|source| Error::Serve { what: "metrics", addr: metrics_addr, source }),
            r = &mut probes_server => return r.map_err(|source| Error::Serve { what: "probes", addr: probes_addr, source }),
            r = &mut webhook => return r.map_err(Error::Webhook),
            _ = standby_caches(client.clone(), &claim_resource, args.namespace.as_deref(), readiness.clone()) => {}
            _ = shutdown_signal() => {
                info!("stopped while standing by");
                return Ok(());
            }
        }
    }

    // One metadata watch of the Secrets tells the claim controller and the
    // providers which exist (and the ProviderConfig controllers which
    // changed); the providers hand theirs over as written.
    let secrets = crate::controller::cache::SharedSecrets {
        names: watches::secret_names(&client, args.namespace.as_deref()),
        handoff: Default::default(),
    };
    let claims = watches::run(
        client.clone(),
        claim_resource.clone(),
        &args,
        operator_namespace.clone(),
        metrics.clone(),
        readiness,
        secrets.clone(),
    );
    let revisions = crate::controller::revisions::run(client.clone(), metrics.clone());
    let provider_config = crate::provider::Config {
        operator_namespace,
        concurrency: args.concurrency,
        cluster_id,
        secrets,
    };
    let aws = crate::provider::aws::run_with_metrics(
        client.clone(),
        provider_config.clone(),
        metrics.clone(),
    );
    let postgres = crate::provider::postgres::run_with_metrics(
        client.clone(),
        provider_config,
        metrics.clone(),
    );

    // Only an operator of all namespaces sees every claim to migrate.
    let migration = async {
        if args.namespace.is_none() {
            crate::migration::run(client.clone(), std::time::Duration::from_secs(30)).await;
        }
        std::future::pending::<()>().await
    };

    let lost = async {
        match leadership.as_mut() {
            Some(held) => held.hold().await,
            None => std::future::pending().await,
        }
    };

    tokio::select! {
        _ = claims => {}
        _ = revisions => info!("revision controller stopped"),
        _ = postgres => info!("postgres provider stopped"),
        _ = aws => info!("aws provider stopped"),
        _ = migration => {}
        r = &mut metrics_server => return r.map_err(|source| Error::Serve { what: "metrics", addr: metrics_addr, source }),
        r = &mut probes_server => return r.map_err(|source| Error::Serve { what: "probes", addr: probes_addr, source }),
        r = &mut webhook => return r.map_err(Error::Webhook),
        // Returning drops every controller future: no reconcile runs past here.
        lost = lost => return Err(Error::LeaseLost(lost)),
    }
    if let Some(held) = leadership {
        held.release().await;
    }
    Ok(())
}

/// What a standby does until it leads: lists and watches what the leader
/// needs, and reports ready once that has synced (it is their only waiter).
async fn standby_caches(
    client: kube::Client,
    claim_resource: &kube::core::ApiResource,
    namespace: Option<&str>,
    readiness: Readiness,
) {
    let (claims, writer) = kube::runtime::reflector::store::<crate::api::DatabaseClaim>();
    let claim_events = kube::runtime::reflector(
        writer,
        watches::claim_events(&client, namespace, claim_resource),
    );
    let claim_events = kube::runtime::WatchStreamExt::default_backoff(claim_events);
    let (compositions, composition_events) = reflect(Api::<Composition>::all(client.clone()));
    let (policies, policy_events) = reflect(Api::<ClaimPolicy>::all(client));
    let ready = async {
        let _ = claims.wait_until_ready().await;
        let _ = compositions.wait_until_ready().await;
        let _ = policies.wait_until_ready().await;
        readiness.set_ready();
        info!("caches synced");
    };
    futures::join!(
        claim_events.for_each(|_| async {}),
        composition_events.for_each(|_| async {}),
        policy_events.for_each(|_| async {}),
        ready
    );
}

/// SIGTERM (as Kubernetes sends) or Ctrl-C.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
