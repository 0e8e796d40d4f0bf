//! Game days end to end: the `dbclaim.io/drill` annotation on a claim,
//! allowed by a ClaimPolicy's `allowedDrills`. RDS (moto behind the fault
//! proxy): a Multi-AZ failover sends one RebootDBInstance with
//! ForceFailover, the claim's Ready turns Unavailable and back, the same id
//! never runs again, and a namespace no policy allows gets PolicyViolation
//! and no call. Shared PostgreSQL: a failover ends the claim's own sessions
//! and no other tenant's.

use std::time::Duration;

use dbclaim::api::common::{DrillResult, DrillStatus};

use crate::aws::{World, apply_aws_compositions, aws_claim};
use crate::claims::{
    claim_yaml, condition, get_claim, secret_data, setup_shared_postgres, wait_condition,
    wait_ready,
};
use crate::support::faultproxy::{Effect, Rule};
use crate::support::{
    self, Operator, Postgres, TestNamespace, kubectl_apply, kubectl_ok, unique_name, wait_for,
};

/// A drill's steps take seconds alone; under a full CI run's load, a
/// transient failure's backoff (5 s, doubling) can add a minute or more.
const TIMEOUT: Duration = Duration::from_secs(180);

/// A ClaimPolicy for the namespaces labelled `team=<team>`, with
/// `allowedDrills` when given.
fn policy_yaml(name: &str, team: &str, drills: Option<&str>) -> String {
    let drills = drills
        .map(|d| format!("  allowedDrills: [{d}]\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: dbclaim.io/v1alpha1\nkind: ClaimPolicy\nmetadata: {{name: {name}}}\nspec:\n  namespaceSelector: {{matchLabels: {{team: {team}}}}}\n{drills}"
    )
}

fn annotate(ns: &str, claim: &str, value: Option<&str>) {
    let arg = match value {
        Some(v) => format!("dbclaim.io/drill={v}"),
        None => "dbclaim.io/drill-".to_string(),
    };
    kubectl_ok(["annotate", "dbc", claim, "-n", ns, &arg, "--overwrite"]);
}

async fn drills(ns: &str, claim: &str) -> Vec<DrillStatus> {
    get_claim(ns, claim)
        .await
        .and_then(|c| c.status)
        .map(|s| s.drills)
        .unwrap_or_default()
}

/// Waits until the claim's record of drill `id` satisfies `check`; on a
/// timeout, says what the claim and its managed resources recorded.
async fn wait_drill(
    ns: &str,
    claim: &str,
    id: &str,
    what: &str,
    check: impl Fn(&DrillStatus) -> bool,
) -> DrillStatus {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let seen = drills(ns, claim).await;
        if let Some(d) = seen.iter().find(|d| d.id == id && check(d)) {
            return d.clone();
        }
        if std::time::Instant::now() >= deadline {
            let ready = get_claim(ns, claim)
                .await
                .and_then(|c| condition(&c, "Ready"));
            let managed = support::kubectl([
                "get",
                "rdsinstances.aws.dbclaim.io,databases.postgres.dbclaim.io",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}: {.status.drill} {.status.conditions}{\"\\n\"}{end}",
            ]);
            panic!(
                "timed out after {TIMEOUT:?} waiting for drill {id} of {ns}/{claim}: {what}\n\
                 claim drills: {seen:?}\nclaim Ready: {ready:?}\nmanaged resources:\n{}",
                String::from_utf8_lossy(&managed.stdout)
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn event_messages(ns: &str) -> String {
    kubectl_ok([
        "get",
        "events",
        "-n",
        ns,
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_failover_drill_reboots_once_and_ready_tells_the_truth() {
    let _lock = support::exclusive().await;
    let w = World::start("drills-rds", "default").await;
    apply_aws_compositions();
    let ns = w.ns().to_string();
    let team = unique_name("gd");
    kubectl_ok(["label", "namespace", &ns, &format!("team={team}")]);
    let policy = unique_name("game-days");
    kubectl_apply(&policy_yaml(&policy, &team, Some("failover")));

    kubectl_apply(&aws_claim(
        &ns,
        "orders",
        "postgres",
        "  databaseName: orders\n  parameters: {multiAZ: \"true\"}\n",
    ));
    wait_ready(&ns, "orders").await;
    let id = dbclaim::naming::composed_name(&ns, "orders", "instance");

    // moto reboots at once and stays `available`; RDS reports `rebooting`
    // until the standby took over. The proxy does so after the reboot,
    // until this test has seen the claim Unavailable.
    let rebooting = w.proxy.add(
        Rule::new("DescribeDBInstances", Effect::Status("rebooting".into()))
            .for_instance(&id)
            .after("RebootDBInstance"),
    );
    annotate(&ns, "orders", Some("failover/gd-1"));
    wait_condition(&ns, "orders", "Ready", "False", Some("Unavailable")).await;
    // Unavailable for as long as RDS reports the reboot.
    wait_for(
        TIMEOUT,
        "the claim to say the instance is rebooting",
        || async {
            get_claim(&ns, "orders").await.is_some_and(|c| {
                condition(&c, "Ready").is_some_and(|r| {
                    r.0 == "False" && r.1 == "Unavailable" && r.2.contains("rebooting")
                })
            })
        },
    )
    .await;
    let running = wait_drill(&ns, "orders", "gd-1", "running", |d| {
        d.result == DrillResult::Running
    })
    .await;
    assert!(running.started_at.is_some() && running.finished_at.is_none());
    let reboots = w.proxy.requests("RebootDBInstance", Some(&id));
    assert_eq!(reboots.len(), 1, "one reboot");
    assert_eq!(
        reboots[0].params.get("ForceFailover").map(String::as_str),
        Some("true")
    );

    // Available again: Ready comes back and the drill is done.
    w.proxy.remove(rebooting);
    let done = wait_drill(&ns, "orders", "gd-1", "succeeded", |d| {
        d.result == DrillResult::Succeeded
    })
    .await;
    let (started, finished) = (done.started_at.clone(), done.finished_at.clone());
    assert!(
        started.is_some() && finished.is_some() && started.map(|t| t.0) <= finished.map(|t| t.0),
        "{done:?}"
    );
    assert!(done.message.contains("ForceFailover"), "{}", done.message);
    wait_ready(&ns, "orders").await;
    let events = event_messages(&ns);
    assert!(events.contains("failover drill gd-1 started"), "{events}");
    assert!(events.contains("failover drill gd-1 finished"), "{events}");

    // The same id again, after the annotation went and came back: nothing.
    annotate(&ns, "orders", None);
    annotate(&ns, "orders", Some("failover/gd-1"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(w.proxy.requests("RebootDBInstance", Some(&id)).len(), 1);
    assert_eq!(drills(&ns, "orders").await.len(), 1);

    // The policy no longer allows failovers: refused, nothing sent, the
    // database as it was.
    kubectl_apply(&policy_yaml(&policy, &team, None));
    annotate(&ns, "orders", Some("failover/gd-2"));
    let c = wait_condition(&ns, "orders", "Synced", "False", Some("PolicyViolation")).await;
    let message = condition(&c, "Synced").map(|c| c.2).unwrap_or_default();
    assert!(
        message.contains(&policy) && message.contains("allowedDrills"),
        "{message}"
    );
    assert_eq!(condition(&c, "Ready").map(|c| c.0), Some("True".into()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.proxy.requests("RebootDBInstance", None).len(), 1);
    assert!(!drills(&ns, "orders").await.iter().any(|d| d.id == "gd-2"));
    annotate(&ns, "orders", None);
    wait_condition(&ns, "orders", "Synced", "True", None).await;

    // A single-AZ instance: refused with a reason, no call.
    kubectl_apply(&policy_yaml(&policy, &team, Some("failover")));
    kubectl_apply(&aws_claim(
        &ns,
        "carts",
        "postgres",
        "  databaseName: carts\n",
    ));
    wait_ready(&ns, "carts").await;
    annotate(&ns, "carts", Some("failover/gd-3"));
    let refused = wait_drill(&ns, "carts", "gd-3", "refused", |d| {
        d.result == DrillResult::Refused
    })
    .await;
    assert!(refused.message.contains("single-AZ"), "{}", refused.message);
    assert_eq!(w.proxy.requests("RebootDBInstance", None).len(), 1);

    for claim in ["orders", "carts"] {
        kubectl_ok(["delete", "dbc", claim, "-n", &ns, "--timeout=90s"]);
    }
    kubectl_ok(["delete", "claimpolicy", &policy, "--ignore-not-found"]);
}

/// An open session with the claim's Secret: the client, and whether it is
/// still alive.
async fn session(ns: &str, claim: &str) -> tokio_postgres::Client {
    let data = secret_data(ns, &format!("{claim}-connection"))
        .await
        .unwrap_or_else(|| panic!("no Secret of {claim}"));
    let uri = data.get("uri").cloned().unwrap_or_default();
    let (client, conn) = tokio_postgres::connect(&uri, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect as {claim}: {e}"));
    tokio::spawn(conn);
    client
        .simple_query("SELECT 1")
        .await
        .unwrap_or_else(|e| panic!("query as {claim}: {e}"));
    client
}

#[tokio::test]
async fn shared_postgres_failover_drill_ends_the_claims_sessions_only() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start();
    let ours = TestNamespace::new("drills-pg");
    let theirs = TestNamespace::new("drills-pg-other");
    let (ns, other_ns) = (ours.name(), theirs.name());
    let team = unique_name("gd");
    kubectl_ok(["label", "namespace", ns, &format!("team={team}")]);
    let policy = unique_name("game-days");
    kubectl_apply(&policy_yaml(&policy, &team, Some("failover")));

    kubectl_apply(&claim_yaml(ns, "app", ""));
    kubectl_apply(&claim_yaml(other_ns, "app", ""));
    wait_ready(ns, "app").await;
    wait_ready(other_ns, "app").await;
    let mine = session(ns, "app").await;
    let tenant = session(other_ns, "app").await;

    annotate(ns, "app", Some("failover/gd-1"));
    let done = wait_drill(ns, "app", "gd-1", "finished", |d| d.result.finished()).await;
    assert_eq!(done.result, DrillResult::Succeeded, "{done:?}");
    assert!(
        done.message.contains("terminated 1 session"),
        "{}",
        done.message
    );
    assert!(done.finished_at.is_some());

    // Our session is gone; the other tenant's (same role name pattern,
    // another database) still works.
    assert!(
        mine.simple_query("SELECT 1").await.is_err(),
        "the claim's session survived the failover drill"
    );
    tenant
        .simple_query("SELECT 1")
        .await
        .unwrap_or_else(|e| panic!("another tenant's session was ended: {e}"));
    // The claim stays Ready: a shared server does not go down.
    let c = wait_ready(ns, "app").await;
    assert_eq!(condition(&c, "Synced").map(|c| c.0), Some("True".into()));

    // rotate-credentials: refused until the policy lists it, then the
    // claim's rotation runs once and its Secret moves to a new login.
    let before = secret_data(ns, "app-connection")
        .await
        .and_then(|d| d.get("username").cloned())
        .unwrap_or_default();
    annotate(ns, "app", Some("rotate-credentials/gd-2"));
    let c = wait_condition(ns, "app", "Synced", "False", Some("PolicyViolation")).await;
    let message = condition(&c, "Synced").map(|c| c.2).unwrap_or_default();
    assert!(
        message.contains("rotate-credentials") && message.contains(&policy),
        "{message}"
    );
    kubectl_apply(&policy_yaml(
        &policy,
        &team,
        Some("failover, rotate-credentials"),
    ));
    let rotated = wait_drill(ns, "app", "gd-2", "finished", |d| d.result.finished()).await;
    assert_eq!(rotated.result, DrillResult::Succeeded, "{rotated:?}");
    wait_for(
        TIMEOUT,
        "the claim's Secret to name a new login",
        || async {
            secret_data(ns, "app-connection")
                .await
                .and_then(|d| d.get("username").cloned())
                .is_some_and(|u| !u.is_empty() && u != before)
        },
    )
    .await;
    wait_condition(ns, "app", "Synced", "True", None).await;
    assert_eq!(drills(ns, "app").await.len(), 2);

    // The other namespace has no policy allowing drills.
    annotate(other_ns, "app", Some("failover/x"));
    let c = wait_condition(other_ns, "app", "Synced", "False", Some("PolicyViolation")).await;
    let message = condition(&c, "Synced").map(|c| c.2).unwrap_or_default();
    assert!(message.contains("allowedDrills"), "{message}");
    tenant
        .simple_query("SELECT 1")
        .await
        .unwrap_or_else(|e| panic!("a refused drill ended a session: {e}"));

    for n in [ns, other_ns] {
        kubectl_ok(["delete", "dbc", "app", "-n", n, "--timeout=60s"]);
    }
    kubectl_ok(["delete", "claimpolicy", &policy, "--ignore-not-found"]);
}
