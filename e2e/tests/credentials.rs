//! Credentials end to end: `Generate` values in a composition, kept across
//! restarts and re-renders and changed once per rotation.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};

use crate::claims::{claim_yaml, get_claim, secret_data, wait_ready};
use crate::support::{self, Operator, TestNamespace, kubectl_apply, kubectl_ok, unique_name};

const TIMEOUT: Duration = Duration::from_secs(60);

/// A composed Secret with a generated password, and a ConfigMap that
/// names that Secret (through a claim output): what an ACK or Config
/// Connector object referencing a password Secret would look like.
fn generated_composition(name: &str) -> String {
    format!(
        r#"apiVersion: dbclaim.io/v1alpha1
kind: Composition
metadata: {{name: {name}}}
spec:
  engines: [postgres]
  resources:
  - name: password
    base:
      apiVersion: v1
      kind: Secret
      stringData: {{username: app}}
    patches:
    - {{type: Generate, generate: {{type: Password, length: 24}}, toFieldPath: stringData.password}}
    - {{type: ToClaimFieldPath, fromFieldPath: metadata.name, toFieldPath: status.outputs.passwordSecret}}
    readinessChecks: [{{type: None}}]
    connectionDetails:
    - {{name: username, fromConnectionSecretKey: username}}
    - {{name: password, fromConnectionSecretKey: password}}
  - name: settings
    base:
      apiVersion: v1
      kind: ConfigMap
      data: {{passwordKey: password}}
    patches:
    - {{fromFieldPath: status.outputs.passwordSecret, toFieldPath: data.passwordSecret}}
    readinessChecks: [{{type: NonEmpty, fieldPath: data.passwordSecret}}]
    connectionDetails:
    - {{name: host, value: db.example}}
    - {{name: port, value: "5432"}}
    - {{name: database, value: app}}
"#
    )
}

/// The composed Secret of the claim: (name, password, resourceVersion).
async fn composed_secret(ns: &str) -> (String, String, String) {
    let api: Api<Secret> = Api::namespaced(support::kube_client().await, ns);
    let list = api
        .list(&ListParams::default().labels("dbclaim.io/resource=password"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = list
        .items
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no composed Secret in {ns}"));
    let password = s
        .data
        .as_ref()
        .and_then(|d| d.get("password"))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default();
    (
        s.metadata.name.unwrap_or_default(),
        password,
        s.metadata.resource_version.unwrap_or_default(),
    )
}

async fn connection_password(ns: &str, claim: &str) -> String {
    secret_data(ns, &format!("{claim}-connection"))
        .await
        .and_then(|d| d.get("password").cloned())
        .unwrap_or_default()
}

/// Waits until the claim's Secret holds the composed Secret's password and
/// returns it; the value must differ from `not`.
async fn settled_password(ns: &str, claim: &str, not: Option<&str>) -> String {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let (_, composed, _) = composed_secret(ns).await;
        let published = connection_password(ns, claim).await;
        if composed.len() == 24 && composed == published && Some(composed.as_str()) != not {
            return composed;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the claim's Secret did not follow a new composed password within {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn annotate(ns: &str, claim: &str, value: &str) {
    kubectl_ok([
        "annotate",
        "--overwrite",
        "dbc",
        claim,
        "-n",
        ns,
        &format!("dbclaim.io/rotate-credentials={value}"),
    ]);
}

#[tokio::test]
async fn generated_values_are_stable_across_restarts_and_change_once_per_rotation() {
    let _lock = crate::support::operator::exclusive().await;
    support::apply_crds();
    let comp = unique_name("generated");
    kubectl_apply(&generated_composition(&comp));
    let ns = TestNamespace::new("creds-gen");
    let ns = ns.name();
    let mut op = Operator::start();
    let claim = "app-db";
    kubectl_apply(&claim_yaml(
        ns,
        claim,
        &format!("  compositionRef: {{name: {comp}}}\n"),
    ));
    wait_ready(ns, claim).await;
    let first = settled_password(ns, claim, None).await;
    let (secret_name, _, version) = composed_secret(ns).await;
    let cms: Api<ConfigMap> = Api::namespaced(support::kube_client().await, ns);
    let cm = cms
        .list(&ListParams::default().labels("dbclaim.io/resource=settings"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let referenced = cm
        .items
        .first()
        .and_then(|c| c.data.as_ref())
        .and_then(|d| d.get("passwordSecret").cloned());
    assert_eq!(referenced.as_deref(), Some(secret_name.as_str()));

    // Restarts and re-renders (a label change wakes the claim) keep the
    // value, and write nothing.
    for round in 0..2 {
        op.restart(&[]);
        kubectl_ok([
            "label",
            "--overwrite",
            "dbc",
            claim,
            "-n",
            ns,
            &format!("round=r{round}"),
        ]);
        tokio::time::sleep(Duration::from_secs(4)).await;
        let (_, now, v) = composed_secret(ns).await;
        assert_eq!(now, first, "a restart changed the generated value");
        assert_eq!(v, version, "a restart rewrote the composed Secret");
        assert_eq!(connection_password(ns, claim).await, first);
    }

    // A rotation: one new value, followed by the claim's Secret.
    annotate(ns, claim, "game-day-1");
    let second = settled_password(ns, claim, Some(&first)).await;
    let status = get_claim(ns, claim)
        .await
        .and_then(|c| c.status)
        .and_then(|s| s.credentials)
        .unwrap_or_default();
    assert!(status.rotated_at.is_some(), "{status:?}");
    assert_eq!(status.last_request.as_deref(), Some("game-day-1"));
    let (_, _, version2) = composed_secret(ns).await;
    // Exactly once: it stays, across a restart too, and the same annotation
    // value again does nothing.
    op.restart(&[]);
    annotate(ns, claim, "game-day-1");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, now, v) = composed_secret(ns).await;
    assert_eq!(now, second);
    assert_eq!(
        v, version2,
        "the composed Secret was rewritten after its rotation"
    );
    assert_eq!(connection_password(ns, claim).await, second);

    annotate(ns, claim, "game-day-2");
    let third = settled_password(ns, claim, Some(&second)).await;
    assert_ne!(third, first);
    // Events of a pass are folded into one: the rotation is one of its steps.
    let events = kubectl_ok([
        "get",
        "events",
        "-n",
        ns,
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains("rotating the credentials: requested by annotation (value \"game-day-2\")"),
        "no rotation event: {events}"
    );
    let metrics = op.metrics();
    assert!(
        metrics.contains(
            r#"dbclaim_credential_rotations_total{provider="composition",result="success"} 1"#
        ),
        "{metrics}"
    );
    // A generated value is never logged.
    let log = op.log();
    for p in [&first, &second, &third] {
        assert!(
            !log.contains(p.as_str()),
            "a generated password is in the log"
        );
    }
    kubectl_ok(["delete", "dbc", claim, "-n", ns, "--timeout=60s"]);
    kubectl_ok(["delete", "composition", &comp, "--ignore-not-found"]);
}

/// Connects with the claim's Secret as it is now; `Err(true)` when the
/// server refused the login (a wrong user or password), `Err(false)` for
/// any other failure (no Secret yet, a network blip).
async fn login_with(uri: &str) -> Result<(), bool> {
    match tokio_postgres::connect(uri, tokio_postgres::NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(conn);
            client
                .simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(|_| false)
        }
        Err(e) => Err(e.code().is_some_and(|c| {
            *c == tokio_postgres::error::SqlState::INVALID_PASSWORD
                || *c == tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        })),
    }
}

/// A client that opens a new connection every 100 ms with whatever the
/// claim's Secret says at that moment: (attempts, refused logins).
struct Reconnecting {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<(u32, Vec<String>)>,
}

impl Reconnecting {
    fn start(ns: &str, secret: &str) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ns, secret, flag) = (ns.to_string(), secret.to_string(), stop.clone());
        let task = tokio::spawn(async move {
            let (mut attempts, mut refused) = (0, Vec::new());
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(data) = secret_data(&ns, &secret).await
                    && let Some(uri) = data.get("uri")
                {
                    attempts += 1;
                    if let Err(true) = login_with(uri).await {
                        refused.push(data.get("username").cloned().unwrap_or_default());
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (attempts, refused)
        });
        Self { stop, task }
    }

    async fn finish(self) -> (u32, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.unwrap_or_else(|e| panic!("{e}"))
    }
}

async fn connection(ns: &str, claim: &str) -> (String, String, String) {
    let d = secret_data(ns, &format!("{claim}-connection"))
        .await
        .unwrap_or_default();
    let get = |k: &str| d.get(k).cloned().unwrap_or_default();
    (get("username"), get("password"), get("uri"))
}

/// Waits until the claim's Secret names a login other than `old`.
async fn switched_from(ns: &str, claim: &str, old: &str) -> (String, String, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let c = connection(ns, claim).await;
        if !c.0.is_empty() && c.0 != old {
            return c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the claim's Secret still names {old}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until `uri` (a previous login) is refused.
async fn refused(uri: &str, within: Duration) {
    let deadline = std::time::Instant::now() + within;
    while login_with(uri).await != Err(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "the previous login still works after its grace period"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn shared_postgres_rotates_three_times_with_no_failed_connection() {
    let _lock = crate::support::operator::exclusive().await;
    let pg = crate::support::Postgres::start();
    crate::claims::setup_shared_postgres(&pg);
    let ns = TestNamespace::new("creds-pg");
    let ns = ns.name();
    let op = Operator::start();
    let claim = "orders";
    kubectl_apply(&claim_yaml(ns, claim, "  credentials: {graceMinutes: 1}\n"));
    wait_ready(ns, claim).await;
    let (mut user, _, mut uri) = connection(ns, claim).await;
    assert!(!user.ends_with("_1") && !user.ends_with("_2"), "{user}");
    crate::claims::psql(
        &uri,
        "CREATE TABLE before_rotation (x int); INSERT INTO before_rotation VALUES (1)",
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let client = Reconnecting::start(ns, &format!("{claim}-connection"));
    for round in 1..=3 {
        annotate(ns, claim, &format!("round-{round}"));
        let (new_user, _, new_uri) = switched_from(ns, claim, &user).await;
        let suffix = if round % 2 == 1 { "_1" } else { "_2" };
        assert!(new_user.ends_with(suffix), "round {round}: {new_user}");
        // Objects made before stay readable and writable, and what this
        // login makes belongs to the group, usable by the next login.
        crate::claims::psql(
            &new_uri,
            &format!(
                "INSERT INTO before_rotation VALUES ({round}); CREATE TABLE made_in_round_{round} (x int)"
            ),
        )
        .unwrap_or_else(|e| panic!("round {round}: {e}"));
        if round > 1 {
            crate::claims::psql(
                &new_uri,
                &format!("INSERT INTO made_in_round_{} VALUES (1)", round - 1),
            )
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        }
        // The previous login works through its grace period, then is refused.
        assert_eq!(
            login_with(&uri).await,
            Ok(()),
            "round {round}: the previous login was cut at once"
        );
        refused(&uri, Duration::from_secs(120)).await;
        // Retiring the previous login rewrites the Secret's rotation state:
        // the credentials switched to stay exactly as they were (a write
        // that dropped them would make the operator set a new password).
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (after_user, _, after_uri) = connection(ns, claim).await;
        assert_eq!(
            (after_user.as_str(), after_uri.as_str()),
            (new_user.as_str(), new_uri.as_str()),
            "round {round}: the credentials changed after the previous login was retired"
        );
        (user, uri) = (new_user, new_uri);
    }
    let (attempts, failures) = client.finish().await;
    assert!(attempts > 100, "the client ran only {attempts} times");
    assert!(
        failures.is_empty(),
        "{} of {attempts} logins refused: {failures:?}",
        failures.len()
    );
    let count = crate::claims::psql(&uri, "SELECT count(*) FROM before_rotation")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count, "4");
    let status = get_claim(ns, claim)
        .await
        .and_then(|c| c.status)
        .and_then(|s| s.credentials)
        .unwrap_or_default();
    assert_eq!(status.last_request.as_deref(), Some("round-3"));
    let metrics = op.metrics();
    assert!(
        metrics.contains(
            r#"dbclaim_credential_rotations_total{provider="postgres",result="success"} 3"#
        ),
        "{metrics}"
    );
    kubectl_ok(["delete", "dbc", claim, "-n", ns, "--timeout=60s"]);
    assert!(
        crate::claims::roles_like(&pg, &format!("{ns}_orders"))
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rds_rotation_sends_one_new_password_and_the_secret_follows_only_after_aws_accepted() {
    use crate::support::faultproxy::{Effect, Rule};
    let _lock = crate::support::operator::exclusive().await;
    let w = crate::aws::World::start("creds-rds", "default").await;
    crate::aws::apply_aws_compositions();
    let ns = w.ns().to_string();
    kubectl_apply(&crate::aws::aws_claim(&ns, "app", "postgres", ""));
    wait_ready(&ns, "app").await;
    let (_, old, _) = connection(&ns, "app").await;
    assert!(!old.is_empty());
    let id = dbclaim::naming::composed_name(&ns, "app", "instance");
    let sent_passwords = || {
        w.proxy
            .requests("ModifyDBInstance", Some(&id))
            .into_iter()
            .filter_map(|l| {
                let pw = l.params.get("MasterUserPassword")?.clone();
                Some((pw, l.injected.clone()))
            })
            .collect::<Vec<_>>()
    };
    assert!(sent_passwords().is_empty());

    // RDS throttles the first two tries: the old password stays meanwhile.
    w.proxy.add(
        Rule::new("ModifyDBInstance", Effect::Throttle)
            .for_instance(&id)
            .times(2),
    );
    annotate(&ns, "app", "rds-1");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let new = loop {
        let (_, now, _) = connection(&ns, "app").await;
        let sent = sent_passwords();
        if now != old {
            // Changed only once a forwarded (accepted) call carried it.
            assert!(
                sent.iter()
                    .any(|(pw, injected)| *pw == now && injected.is_none()),
                "the Secret changed before RDS accepted the password"
            );
            break now;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no rotation within 90 s; sent: {}",
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sent = sent_passwords();
    let throttled = sent.iter().filter(|(_, i)| i.is_some()).count();
    let accepted: Vec<_> = sent.iter().filter(|(_, i)| i.is_none()).collect();
    assert_eq!(throttled, 2, "{sent:?}");
    assert_eq!(accepted.len(), 1, "exactly one accepted ModifyDBInstance");
    // Every retry carried the same new password, recorded before the first try.
    assert!(sent.iter().all(|(pw, _)| *pw == new));
    assert_ne!(new, old);
    // At rest: no further password change, the claim's uri follows.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(sent_passwords().len(), 3);
    let (_, now, uri) = connection(&ns, "app").await;
    assert_eq!(now, new);
    assert!(uri.contains(&new));
    let rotated = get_claim(&ns, "app")
        .await
        .and_then(|c| c.status)
        .and_then(|s| s.credentials)
        .and_then(|c| c.last_request);
    assert_eq!(rotated.as_deref(), Some("rds-1"));
    kubectl_ok(["delete", "dbc", "app", "-n", &ns, "--timeout=90s"]);
}

/// The provider's connection Secret of the claim's Database: (username, password).
async fn provider_credentials(ns: &str, claim: &str) -> (String, String) {
    let api: Api<Secret> = Api::namespaced(
        support::kube_client().await,
        crate::support::operator::OPERATOR_NAMESPACE,
    );
    let selector = format!(
        "postgres.dbclaim.io/database,dbclaim.io/claim-name={claim},dbclaim.io/claim-namespace={ns}"
    );
    let list = api
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let s = list.items.into_iter().next().unwrap_or_default();
    let get = |k: &str| {
        s.data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .unwrap_or_default()
    };
    (get("username"), get("password"))
}

#[tokio::test]
async fn a_sigkill_at_any_point_of_a_postgres_rotation_leaves_working_credentials() {
    let _lock = crate::support::operator::exclusive().await;
    let pg = crate::support::Postgres::start();
    crate::claims::setup_shared_postgres(&pg);
    let ns = TestNamespace::new("creds-kill");
    let ns = ns.name();
    let mut op = Operator::start();
    let claim = "kill";
    kubectl_apply(&claim_yaml(ns, claim, "  credentials: {graceMinutes: 0}\n"));
    wait_ready(ns, claim).await;
    let database = format!("{ns}_{claim}");
    let logs_in = |user: String, password: String| {
        let uri = format!(
            "postgresql://{user}:{password}@{}:{}/{database}",
            pg.host, pg.port
        );
        async move { login_with(&uri).await == Ok(()) }
    };
    // Kills at growing delays after the request land between different
    // steps (recorded, password set, switched, previous login refused).
    for (round, delay_ms) in [0u64, 100, 250, 500, 1000, 2000].into_iter().enumerate() {
        let (user_before, _) = provider_credentials(ns, claim).await;
        annotate(ns, claim, &format!("kill-{round}"));
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        op.kill();
        let (user, password) = provider_credentials(ns, claim).await;
        assert!(
            logs_in(user.clone(), password).await,
            "round {round} (kill after {delay_ms} ms): the Secret's credentials for {user} do not log in"
        );
        op.restart(&[]);
        // The rotation completes: the Secret names the other login, which
        // logs in, and the claim's Secret follows.
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let (user, password) = provider_credentials(ns, claim).await;
            let (claim_user, claim_password, _) = connection(ns, claim).await;
            if user != user_before
                && claim_user == user
                && claim_password == password
                && logs_in(user.clone(), password.clone()).await
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: the rotation did not complete after the restart ({user_before} → {user})"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    kubectl_ok(["delete", "dbc", claim, "-n", ns, "--timeout=60s"]);
}
