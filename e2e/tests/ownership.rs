//! "Never touches what it did not create", end to end: a DBA's roles and
//! databases are refused, unchanged and never dropped, and adopted only by a
//! person's annotation (never a SUPERUSER role); two operators with
//! different cluster identities (two API servers) sharing one moto and one
//! PostgreSQL never modify, re-password or delete each other's objects.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::claims::{
    claim_yaml, condition, delete_claim_and_wait, psql, secret_data, setup_shared_postgres,
    wait_condition, wait_ready,
};
use crate::support::faultproxy::FaultProxy;
use crate::support::operator::OPERATOR_NAMESPACE;
use crate::support::{
    self, Moto, Operator, Postgres, TestNamespace, kubectl_ok, parse_exports, unique_name, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `sql` as the bootstrap superuser (unix socket, trust): the DBA.
async fn as_dba(pg: &Postgres, sql: &str) -> Vec<Option<String>> {
    let (client, conn) = tokio_postgres::connect(
        &format!(
            "host={} port={} user=postgres dbname=postgres",
            pg.socket_dir, pg.port
        ),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap_or_else(|e| panic!("superuser connect: {e}"));
    tokio::spawn(conn);
    client
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_string)),
            _ => None,
        })
        .collect()
}

fn uri(pg: &Postgres, user: &str, password: &str, db: &str) -> String {
    format!(
        "postgresql://{}:{}@{}:{}/{}?sslmode=disable",
        urlencode(user),
        urlencode(password),
        pg.host,
        pg.port,
        urlencode(db)
    )
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// (comment of the role, owner and comment of the database) named `name`.
async fn server_state(
    pg: &Postgres,
    name: &str,
) -> (Option<String>, Option<String>, Option<String>) {
    let lit = name.replace('\'', "''");
    let role = as_dba(
        pg,
        &format!(
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = '{lit}'"
        ),
    )
    .await;
    let owner = as_dba(
        pg,
        &format!("SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = '{lit}'"),
    )
    .await;
    let db = as_dba(
        pg,
        &format!(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '{lit}'"
        ),
    )
    .await;
    (
        role.into_iter().next().flatten(),
        owner.into_iter().next().flatten(),
        db.into_iter().next().flatten(),
    )
}

/// The claim's Synced=False message once it contains `needle`.
async fn wait_claim_message(ns: &str, claim: &str, needle: &str) -> String {
    let message = std::cell::RefCell::new(String::new());
    wait_for(
        TIMEOUT,
        &format!("claim {ns}/{claim} to say {needle:?}"),
        || async {
            let c = wait_condition(ns, claim, "Synced", "False", None).await;
            let m = condition(&c, "Synced").map(|c| c.2).unwrap_or_default();
            let hit = m.contains(needle);
            *message.borrow_mut() = m;
            hit
        },
    )
    .await;
    message.into_inner()
}

/// The composed Database of claim `ns/name`.
fn composed_database(ns: &str, name: &str) -> String {
    let out = kubectl_ok([
        "get",
        "databases.postgres.dbclaim.io",
        "-l",
        &format!("dbclaim.io/claim-name={name},dbclaim.io/claim-namespace={ns}"),
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    assert!(!out.trim().is_empty(), "no Database for claim {ns}/{name}");
    out.trim().to_string()
}

#[tokio::test]
async fn a_dbas_roles_are_refused_unchanged_and_adopted_only_by_annotation() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start_with(&["--cluster-id", "e2e-ownership"]);
    let ns = TestNamespace::new("own");
    let ns = ns.name();
    // The shipped composition names role and database `<ns>_<claim>`.
    let plain = format!("{ns}_plain");
    let superuser = format!("{ns}_super");
    for (role, attrs) in [(&plain, ""), (&superuser, " SUPERUSER")] {
        as_dba(
            &pg,
            &format!("CREATE ROLE \"{role}\" LOGIN{attrs} PASSWORD 'dba-pw'"),
        )
        .await;
        as_dba(&pg, &format!("CREATE DATABASE \"{role}\" OWNER \"{role}\"")).await;
    }
    let before_plain = server_state(&pg, &plain).await;
    assert_eq!(before_plain, (None, Some(plain.clone()), None));

    for claim in ["plain", "super"] {
        support::kubectl_apply(&claim_yaml(ns, claim, ""));
    }
    for (claim, role) in [("plain", &plain), ("super", &superuser)] {
        let needle = format!("role \"{role}\" exists and is not ours");
        let message = wait_claim_message(ns, claim, &needle).await;
        eprintln!("{claim}: {message}");
        let c = crate::claims::get_claim(ns, claim).await;
        let ready = c.as_ref().and_then(|c| condition(c, "Ready")).map(|c| c.0);
        assert_ne!(ready.as_deref(), Some("True"));
        let db = composed_database(ns, claim);
        let reason = kubectl_ok([
            "get",
            "databases.postgres.dbclaim.io",
            &db,
            "-o",
            "jsonpath={.status.conditions[?(@.type=='Synced')].reason}",
        ]);
        assert_eq!(reason, "ReconcileError");
    }
    for role in [&plain, &superuser] {
        psql(&uri(&pg, role, "dba-pw", "postgres"), "SELECT 1")
            .unwrap_or_else(|e| panic!("{role}: the DBA's password no longer works: {e}"));
        assert_eq!(
            server_state(&pg, role).await,
            (None, Some(role.clone()), None)
        );
    }

    // Deleting the claims drops nothing.
    for claim in ["plain", "super"] {
        delete_claim_and_wait(ns, claim).await;
    }
    wait_for(TIMEOUT, "the composed Databases to be gone", || async {
        kubectl_ok([
            "get",
            "databases.postgres.dbclaim.io",
            "-l",
            &format!("dbclaim.io/claim-namespace={ns}"),
            "-o",
            "name",
        ])
        .trim()
        .is_empty()
    })
    .await;
    for role in [&plain, &superuser] {
        assert_eq!(
            server_state(&pg, role).await,
            (None, Some(role.clone()), None),
            "{role} dropped or changed"
        );
        psql(&uri(&pg, role, "dba-pw", "postgres"), "SELECT 1")
            .unwrap_or_else(|e| panic!("{role}: {e}"));
    }

    // A person adopts them with dbclaim.io/external-name on the Database:
    // the plain role is taken (marked, the claim's password), the
    // SUPERUSER one refused even so.
    for claim in ["plain", "super"] {
        support::kubectl_apply(&claim_yaml(ns, claim, ""));
    }
    for (claim, role) in [("plain", &plain), ("super", &superuser)] {
        wait_condition(ns, claim, "Synced", "False", None).await;
        let db = composed_database(ns, claim);
        kubectl_ok([
            "annotate",
            "databases.postgres.dbclaim.io",
            &db,
            &format!("dbclaim.io/external-name={role}"),
        ]);
    }
    wait_ready(ns, "plain").await;
    let db = composed_database(ns, "plain");
    let uid = kubectl_ok([
        "get",
        "databases.postgres.dbclaim.io",
        &db,
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let mark = format!("dbclaim:owner=e2e-ownership/{uid}");
    assert_eq!(
        server_state(&pg, &plain).await,
        (Some(mark.clone()), Some(plain.clone()), Some(mark))
    );
    let data = secret_data(ns, "plain-connection")
        .await
        .unwrap_or_else(|| panic!("no connection Secret"));
    psql(&data["uri"], "SELECT 1").unwrap_or_else(|e| panic!("adopted role: {e}"));

    // The annotation wakes the Database: its next pass names the attribute.
    let message = wait_claim_message(ns, "super", "SUPERUSER").await;
    assert!(
        message.contains("SUPERUSER") && message.contains("never takes over"),
        "{message}"
    );
    psql(&uri(&pg, &superuser, "dba-pw", "postgres"), "SELECT 1")
        .unwrap_or_else(|e| panic!("superuser's password changed: {e}"));
    assert_eq!(
        server_state(&pg, &superuser).await,
        (None, Some(superuser.clone()), None)
    );

    // The adopted one is ours now and goes with its claim; the other stays.
    for claim in ["plain", "super"] {
        delete_claim_and_wait(ns, claim).await;
    }
    wait_for(TIMEOUT, "the adopted role to be dropped", || async {
        server_state(&pg, &plain).await == (None, None, None)
    })
    .await;
    assert_eq!(
        server_state(&pg, &superuser).await,
        (None, Some(superuser.clone()), None)
    );
}

/// A second control plane (its own etcd and API server), stopped on drop.
struct Plane {
    state: PathBuf,
    kubeconfig: String,
    /// Where this plane's own conversion webhook serves, and its CA.
    conversion_url: String,
    conversion_ca: String,
    _tmp: tempfile::TempDir,
}

impl Plane {
    fn up() -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("dbclaim-e2e-plane-")
            .tempdir()
            .unwrap_or_else(|e| panic!("{e}"));
        let state = tmp.path().join("cluster");
        let out = Command::new(support::e2e_script("cluster"))
            .arg("up")
            .arg("--state")
            .arg(&state)
            .output()
            .unwrap_or_else(|e| panic!("cannot run e2e/cluster: {e}"));
        assert!(
            out.status.success(),
            "second plane: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut exports = parse_exports(&String::from_utf8_lossy(&out.stdout));
        let mut export = |name: &str| {
            exports
                .remove(name)
                .unwrap_or_else(|| panic!("e2e/cluster printed no {name}"))
        };
        Self {
            kubeconfig: export("KUBECONFIG"),
            conversion_url: export("DBCLAIM_E2E_CONVERSION_URL"),
            conversion_ca: export("DBCLAIM_E2E_CONVERSION_CA"),
            state,
            _tmp: tmp,
        }
    }

    fn kubectl(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("kubectl: {e}"));
        if let Some(mut pipe) = child.stdin.take() {
            let _ = pipe.write_all(stdin.as_bytes());
        }
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "kubectl {args:?} on the second plane: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn apply(&self, yaml: &str) {
        self.kubectl(
            &[
                "apply",
                "--server-side",
                "--field-manager=dbclaim-e2e",
                "-f",
                "-",
            ],
            yaml,
        );
    }
}

impl Drop for Plane {
    fn drop(&mut self) {
        let _ = Command::new(support::e2e_script("cluster"))
            .arg("down")
            .arg("--state")
            .arg(&self.state)
            .output();
    }
}

/// One cluster's view: how to run kubectl there.
enum Cluster<'a> {
    Main,
    Other(&'a Plane),
}

impl Cluster<'_> {
    fn kubectl(&self, args: &[&str]) -> String {
        match self {
            Cluster::Main => kubectl_ok(args),
            Cluster::Other(p) => p.kubectl(args, ""),
        }
    }

    fn apply(&self, yaml: &str) {
        match self {
            Cluster::Main => {
                support::kubectl_apply(yaml);
            }
            Cluster::Other(p) => p.apply(yaml),
        }
    }

    fn jsonpath(&self, kind: &str, name: &str, path: &str) -> String {
        self.kubectl(&["get", kind, name, "-o", &format!("jsonpath={path}")])
    }

    async fn wait_synced(&self, kind: &str, name: &str, status: &str) -> String {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let s = self.jsonpath(
                kind,
                name,
                "{.status.conditions[?(@.type=='Synced')].status}",
            );
            let ready = self.jsonpath(
                kind,
                name,
                "{.status.conditions[?(@.type=='Ready')].status}",
            );
            if s == status && (status == "False" || ready == "True") {
                return self.jsonpath(
                    kind,
                    name,
                    "{.status.conditions[?(@.type=='Synced')].message}",
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{kind} {name}: Synced={s} Ready={ready}, waiting for Synced={status}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn wait_claim_ready(&self, ns: &str, name: &str) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let out = self.kubectl(&[
                "get",
                "databaseclaim",
                "-n",
                ns,
                name,
                "--ignore-not-found",
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status} {.status.conditions[?(@.type=='Synced')].message}",
            ]);
            if out.starts_with("True") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "claim {ns}/{name} not Ready: {out}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn wait_gone(&self, kind: &str, name: &str) {
        let deadline = std::time::Instant::now() + TIMEOUT;
        while !self
            .kubectl(&["get", kind, "--ignore-not-found", "-o", "name", name])
            .trim()
            .is_empty()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "{kind} {name} not gone"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The config objects of one cluster: PostgreSQL and AWS ProviderConfigs.
fn configs(pg: &Postgres, aws_endpoint: &str, pc: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: {OPERATOR_NAMESPACE}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: {pc}-pg, namespace: {OPERATOR_NAMESPACE}}}
stringData: {{username: "{}", password: "{}"}}
---
apiVersion: postgres.dbclaim.io/v1alpha1
kind: ProviderConfig
metadata: {{name: {pc}}}
spec:
  host: "{}"
  port: {}
  sslMode: disable
  credentialsSecretRef: {{namespace: {OPERATOR_NAMESPACE}, name: {pc}-pg}}
---
apiVersion: v1
kind: Secret
metadata: {{name: {pc}-aws, namespace: {OPERATOR_NAMESPACE}}}
stringData:
  credentials: |
    [default]
    aws_access_key_id = AKIAE2EDBCLAIMOWNER1
    aws_secret_access_key = e2e-owner-secret
---
apiVersion: aws.dbclaim.io/v1alpha1
kind: ProviderConfig
metadata: {{name: {pc}}}
spec:
  credentials:
    source: Secret
    secretRef: {{namespace: {OPERATOR_NAMESPACE}, name: {pc}-aws, key: credentials}}
  region: us-east-1
  endpoint: "{aws_endpoint}"
"#,
        pg.admin_user, pg.admin_password, pg.host, pg.port
    )
}

/// One cluster's composition for `team-a/orders-db`: an RDS instance and a
/// database on the shared server. Each cluster's platform team prefixes its
/// database names (`prefix`), as the README's ownership section advises for
/// clusters that share a PostgreSQL server; RDS identifiers need nothing:
/// a cluster that finds another's instance under the derived identifier
/// takes one of its own.
fn composition(name: &str, pc: &str, prefix: &str) -> String {
    format!(
        r#"apiVersion: dbclaim.io/v1alpha1
kind: Composition
metadata: {{name: {name}}}
spec:
  engines: [postgres]
  resources:
  - name: instance
    base:
      apiVersion: aws.dbclaim.io/v1alpha1
      kind: RDSInstance
      spec:
        providerConfigRef: {{name: {pc}}}
        forProvider: {{dbInstanceClass: db.t3.micro, engine: postgres, engineVersion: "16", allocatedStorage: 20, dbName: orders}}
  - name: database
    base:
      apiVersion: postgres.dbclaim.io/v1alpha1
      kind: Database
      spec:
        providerConfigRef: {{name: {pc}}}
        forProvider: {{databaseName: unset}}
    patches:
    - type: CombineFromClaim
      combine:
        variables:
        - fromFieldPath: metadata.namespace
        - fromFieldPath: metadata.name
        strategy: string
        string: {{fmt: "{prefix}_%s_%s"}}
      toFieldPath: spec.forProvider.databaseName
    connectionDetails:
    - {{name: host, fromConnectionSecretKey: host}}
    - {{name: port, fromConnectionSecretKey: port}}
    - {{name: database, fromConnectionSecretKey: database}}
    - {{name: username, fromConnectionSecretKey: username}}
    - {{name: password, fromConnectionSecretKey: password}}
"#
    )
}

/// A managed object cluster B makes by hand, aimed at cluster A's
/// external objects: an RDSInstance naming A's instance by
/// `dbclaim.io/external-name` (a person's adoption), and a Database with
/// A's database name.
fn aimed_at(name: &str, pc: &str, rds_id: &str, database: &str) -> String {
    format!(
        r#"apiVersion: aws.dbclaim.io/v1alpha1
kind: RDSInstance
metadata:
  name: {name}-instance
  annotations: {{dbclaim.io/external-name: "{rds_id}"}}
spec:
  providerConfigRef: {{name: {pc}}}
  forProvider:
    dbInstanceClass: db.t3.micro
    engine: postgres
    engineVersion: "16"
    allocatedStorage: 20
    dbName: orders
---
apiVersion: postgres.dbclaim.io/v1alpha1
kind: Database
metadata: {{name: {name}-database}}
spec:
  providerConfigRef: {{name: {pc}}}
  forProvider: {{databaseName: "{database}"}}
"#
    )
}

/// dbclaim's CRDs on the second plane, the DatabaseClaim CRD pointed at that
/// plane's own conversion webhook (as `support::apply_crds` does on the main one).
fn crds_on(plane: &Plane) {
    let crds = support::crds_for_webhook(&plane.conversion_url, &plane.conversion_ca);
    plane.kubectl(
        &[
            "apply",
            "--server-side",
            "--field-manager=dbclaim-e2e",
            "-f",
            "-",
        ],
        &crds,
    );
    plane.kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            "-",
        ],
        &crds,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_on_one_account_and_server_never_touch_each_others() {
    let _lock = support::exclusive().await;
    support::apply_crds();
    let pg = Postgres::start();
    let moto = Moto::start();
    // Cluster B reaches moto through a recording proxy: what B sends is seen.
    let proxy = FaultProxy::start(&moto.endpoint).await;
    let plane = Plane::up();
    crds_on(&plane);
    let (a, b) = (Cluster::Main, Cluster::Other(&plane));
    let pc = unique_name("own-pc");
    a.apply(&configs(&pg, &moto.endpoint, &pc));
    b.apply(&configs(&pg, &proxy.endpoint, &pc));
    let _op_a = Operator::start_with(&["--cluster-id", "cluster-a"]);
    let _op_b = Operator::start_with_env(
        &["--cluster-id", "cluster-b"],
        &[("KUBECONFIG", plane.kubeconfig.as_str())],
    );
    const RDS: &str = "rdsinstances.aws.dbclaim.io";
    const PGDB: &str = "databases.postgres.dbclaim.io";

    // The same claim `team-a/orders-db` in both clusters: each provisions
    // its own RDS instance and database.
    let team = TestNamespace::new("team-a");
    let ns = team.name().to_string();
    b.apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"
    ));
    let comp = unique_name("own-comp");
    let claim = "orders-db";
    // A first, then B: B finds A's instance under the identifier derived
    // from the name and takes one of its own.
    for (c, prefix) in [(&a, "east"), (&b, "west")] {
        c.apply(&composition(&comp, &pc, prefix));
        c.apply(&claim_yaml(
            &ns,
            claim,
            &format!("  compositionRef: {{name: {comp}}}\n"),
        ));
        c.wait_claim_ready(&ns, claim).await;
    }
    let composed = |c: &Cluster, kind: &str| {
        c.kubectl(&[
            "get",
            kind,
            "-l",
            &format!("dbclaim.io/claim-name={claim},dbclaim.io/claim-namespace={ns}"),
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ])
    };
    let instance = composed(&a, RDS);
    assert_eq!(
        composed(&b, RDS),
        instance,
        "the same composed name in both"
    );
    let id_of = |c: &Cluster| {
        c.jsonpath(
            RDS,
            &instance,
            "{.metadata.annotations.dbclaim\\.io/external-name}",
        )
    };
    let (id_a, id_b) = (id_of(&a), id_of(&b));
    assert_eq!(id_a, instance, "the first cluster keeps the name");
    assert!(
        id_b.starts_with(&format!("{instance}-")),
        "two clusters, two RDS instances: {id_b}"
    );
    for (c, id, cluster) in [(&a, &id_a, "cluster-a"), (&b, &id_b, "cluster-b")] {
        let mark = format!(
            "{cluster}/{}",
            c.jsonpath(RDS, &instance, "{.metadata.uid}")
        );
        assert_eq!(
            tags_of(&moto.endpoint, id).await.get("dbclaim.io/owner"),
            Some(&mark),
            "{id}"
        );
    }
    // Each claim's Secret logs in to its own database, not to the other's.
    let secret = |c: &Cluster, key: &str| {
        c.kubectl(&[
            "get",
            "secret",
            "-n",
            &ns,
            &format!("{claim}-connection"),
            "-o",
            &format!("go-template={{{{index .data \"{key}\" | base64decode}}}}"),
        ])
    };
    let (db_a, db_b) = (secret(&a, "database"), secret(&b, "database"));
    assert_eq!(db_a, format!("east_{ns}_{claim}"));
    assert_eq!(db_b, format!("west_{ns}_{claim}"));
    let (user_a, pw_a) = (secret(&a, "username"), secret(&a, "password"));
    psql(&uri(&pg, &user_a, &pw_a, &db_a), "SELECT 1")
        .unwrap_or_else(|e| panic!("A's claim cannot use its database: {e}"));
    psql(
        &uri(&pg, &secret(&b, "username"), &secret(&b, "password"), &db_b),
        "SELECT 1",
    )
    .unwrap_or_else(|e| panic!("B's claim cannot use its database: {e}"));
    assert!(
        psql(&uri(&pg, &user_a, &pw_a, &db_b), "CREATE TABLE t (x int)").is_err(),
        "A's login may write into B's database"
    );
    let pg_state_a = server_state(&pg, &db_a).await;
    assert!(
        pg_state_a
            .0
            .as_deref()
            .is_some_and(|m| m.starts_with("dbclaim:owner=cluster-a/")),
        "{pg_state_a:?}"
    );

    // B aimed at A's objects by hand: both refused, nothing sent for A's
    // instance, A's role and database unchanged.
    let name = unique_name("aimed");
    b.apply(&aimed_at(&name, &pc, &id_a, &db_a));
    for (kind, obj, what) in [
        (
            RDS,
            format!("{name}-instance"),
            format!("DB instance \"{id_a}\""),
        ),
        (PGDB, format!("{name}-database"), format!("role \"{db_a}\"")),
    ] {
        let message = b.wait_synced(kind, &obj, "False").await;
        assert!(
            message.contains(&format!("{what} exists and is not ours"))
                && message.contains("another cluster (\"cluster-a\")"),
            "{kind}: {message}"
        );
        assert_eq!(
            b.jsonpath(
                kind,
                &obj,
                "{.status.conditions[?(@.type=='Synced')].reason}"
            ),
            "ReconcileError"
        );
    }
    let sent_for_a = || {
        [
            "CreateDBInstance",
            "ModifyDBInstance",
            "AddTagsToResource",
            "RemoveTagsFromResource",
            "DeleteDBInstance",
        ]
        .into_iter()
        .filter(|action| !proxy.requests(action, Some(&id_a)).is_empty())
        .collect::<Vec<_>>()
    };
    assert_eq!(
        sent_for_a(),
        Vec::<&str>::new(),
        "cluster B changed A's instance"
    );
    assert_eq!(server_state(&pg, &db_a).await, pg_state_a);

    // Deleting B's hand-made objects and B's claim deletes nothing of A's.
    b.kubectl(&["delete", RDS, &format!("{name}-instance"), "--wait=false"]);
    b.kubectl(&["delete", PGDB, &format!("{name}-database"), "--wait=false"]);
    b.kubectl(&["delete", "databaseclaim", "-n", &ns, claim, "--wait=false"]);
    for (kind, obj) in [
        (RDS, format!("{name}-instance")),
        (PGDB, format!("{name}-database")),
        (RDS, instance.clone()),
    ] {
        b.wait_gone(kind, &obj).await;
    }
    assert_eq!(
        sent_for_a(),
        Vec::<&str>::new(),
        "cluster B changed A's instance"
    );
    assert!(
        !proxy.requests("DeleteDBInstance", Some(&id_b)).is_empty(),
        "B deleted its own instance"
    );
    assert_eq!(
        tags_of(&moto.endpoint, &id_a)
            .await
            .get("dbclaim.io/owner")
            .map(|m| m.starts_with("cluster-a/")),
        Some(true),
        "A's instance is still there, still A's"
    );
    assert_eq!(server_state(&pg, &db_a).await, pg_state_a);
    assert_eq!(
        server_state(&pg, &db_b).await,
        (None, None, None),
        "B dropped its own"
    );
    psql(&uri(&pg, &user_a, &pw_a, &db_a), "SELECT 1")
        .unwrap_or_else(|e| panic!("A's password no longer works: {e}"));
    assert_eq!(secret(&a, "password"), pw_a);
    a.wait_claim_ready(&ns, claim).await;
    delete_claim_and_wait(&ns, claim).await;
    assert_eq!(server_state(&pg, &db_a).await, (None, None, None));
}

/// The tags of instance `id`, straight from moto.
async fn tags_of(endpoint: &str, id: &str) -> std::collections::BTreeMap<String, String> {
    use aws_sdk_rds::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_rds::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIAE2EDBCLAIMOWNER1",
            "e2e-owner-secret",
            None,
            None,
            "e2e",
        ))
        .endpoint_url(endpoint)
        .http_client(dbclaim::provider::aws::rds::http_client())
        .build();
    let rds = aws_sdk_rds::Client::from_conf(conf);
    let out = rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe {id}: {e:?}"));
    let arn = out
        .db_instances()
        .first()
        .and_then(|d| d.db_instance_arn())
        .unwrap_or_else(|| panic!("{id} has no ARN"))
        .to_string();
    rds.list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .unwrap_or_else(|e| panic!("tags of {id}: {e:?}"))
        .tag_list()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
        .collect()
}

/// Upgrade from a dbclaim that wrote no marks: a role whose password in the
/// Database's own connection Secret logs in gets the mark and stays in use
/// (same password); a DBA's role next to a Secret with a guessed password
/// stays refused and unchanged.
#[tokio::test]
async fn an_earlier_dbclaims_role_is_marked_a_dbas_is_not() {
    let _lock = support::exclusive().await;
    let pg = Postgres::start();
    setup_shared_postgres(&pg);
    let _op = Operator::start_with(&["--cluster-id", "e2e-upgrade"]);
    let main = Cluster::Main;
    const PGDB: &str = "databases.postgres.dbclaim.io";
    let old = unique_name("legacy-db");
    let dba = unique_name("dba-db");
    let role = |n: &str| n.replace('-', "_");
    // As the previous release left them: role and database, no comment.
    for (name, password) in [(&old, "old-pw"), (&dba, "dba-pw")] {
        let r = role(name);
        for sql in [
            format!("CREATE ROLE \"{r}\" LOGIN PASSWORD '{password}'"),
            format!("GRANT \"{r}\" TO CURRENT_USER"),
            format!("CREATE DATABASE \"{r}\" OWNER \"{r}\""),
        ] {
            crate::claims::admin_query(&pg, &sql).await;
        }
    }
    // Connection Secrets as the previous release wrote them (no UID); the
    // DBA's one holds a guess.
    for (name, password) in [(&old, "old-pw"), (&dba, "guessed-pw")] {
        main.apply(&format!(
            r#"apiVersion: v1
kind: Secret
metadata:
  name: {name}
  namespace: {OPERATOR_NAMESPACE}
  labels: {{postgres.dbclaim.io/database: {name}}}
  annotations: {{postgres.dbclaim.io/database: {name}}}
stringData: {{username: "{r}", password: "{password}"}}
---
apiVersion: postgres.dbclaim.io/v1alpha1
kind: Database
metadata: {{name: {name}}}
spec:
  forProvider: {{databaseName: "{r}"}}
"#,
            r = role(name)
        ));
    }
    main.wait_synced(PGDB, &old, "True").await;
    let uid = main.jsonpath(PGDB, &old, "{.metadata.uid}");
    let mark = format!("dbclaim:owner=e2e-upgrade/{uid}");
    let r = role(&old);
    assert_eq!(
        server_state(&pg, &r).await,
        (Some(mark.clone()), Some(r.clone()), Some(mark))
    );
    psql(&uri(&pg, &r, "old-pw", &r), "SELECT 1")
        .unwrap_or_else(|e| panic!("the upgraded role's password changed: {e}"));
    let secret_uid = main.kubectl(&[
        "get",
        "secret",
        "-n",
        OPERATOR_NAMESPACE,
        &old,
        "-o",
        "jsonpath={.metadata.annotations.dbclaim\\.io/owner-uid}",
    ]);
    assert_eq!(secret_uid, uid, "the Secret gets the UID");

    let message = main.wait_synced(PGDB, &dba, "False").await;
    let d = role(&dba);
    assert!(
        message.contains(&format!("role \"{d}\" exists and is not ours")),
        "{message}"
    );
    psql(&uri(&pg, &d, "dba-pw", &d), "SELECT 1")
        .unwrap_or_else(|e| panic!("the DBA's password changed: {e}"));
    assert_eq!(server_state(&pg, &d).await, (None, Some(d.clone()), None));

    for name in [&old, &dba] {
        main.kubectl(&["delete", PGDB, name, "--wait=false"]);
        main.wait_gone(PGDB, name).await;
    }
    assert_eq!(
        server_state(&pg, &r).await,
        (None, None, None),
        "ours: dropped"
    );
    assert_eq!(
        server_state(&pg, &d).await,
        (None, Some(d.clone()), None),
        "left"
    );
}
