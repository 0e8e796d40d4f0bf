//! PostgreSQL TLS end to end (issue 14, audit M1): `verify-full` against a
//! server whose certificate comes from a private CA, a wrong CA refused
//! before anything is created, a fake server asking for a clear-text or MD5
//! password getting none with `require` and above, and `disable` shown on
//! the ProviderConfig's status.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::postgres_provider::{Provider, Setup, condition, db_name, ready};
use crate::support::{self, Postgres, kubectl_apply, unique_name};

const TIMEOUT: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> String {
    let path = support::repo_root().join("tests/fixtures/tls").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The ProviderConfig of `s`, at `host:port` with `ssl_mode`, reading the
/// CA from the Secret `ca_secret` of the test namespace when given.
fn provider_config(s: &Setup, port: u16, ssl_mode: &str, ca_secret: Option<&str>) -> String {
    let mut spec = json!({
        "host": "127.0.0.1",
        "port": port,
        "sslMode": ssl_mode,
        "credentialsSecretRef": {"namespace": s.ns.name(), "name": s.admin_secret},
    });
    if let Some(ca) = ca_secret {
        spec["caSecretRef"] = json!({"namespace": s.ns.name(), "name": ca});
    }
    json!({
        "apiVersion": "postgres.dbclaim.io/v1alpha1",
        "kind": "ProviderConfig",
        "metadata": {"name": s.config},
        "spec": spec,
    })
    .to_string()
}

fn apply_ca_secret(s: &Setup, name: &str, pem: &str) {
    kubectl_apply(
        &json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": s.ns.name()},
            "stringData": {"ca.crt": pem},
        })
        .to_string(),
    );
}

/// Waits until the ProviderConfig's Ready condition passes `check`.
async fn wait_config(s: &Setup, what: &str, check: impl Fn(&Condition) -> bool) -> Condition {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let pc = s
            .configs
            .get_opt(&s.config)
            .await
            .expect("get ProviderConfig");
        let ready = pc.as_ref().and_then(|pc| {
            pc.status
                .as_ref()
                .and_then(|st| st.conditions.iter().find(|c| c.type_ == "Ready").cloned())
        });
        if let Some(c) = ready.as_ref().filter(|c| check(c)) {
            return c.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for ProviderConfig {}: {what}; Ready: {ready:?}",
            s.config
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The bootstrap superuser over the server's unix socket (no TLS needed).
async fn superuser(pg: &Postgres) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::Config::new()
        .host(&pg.socket_dir)
        .port(pg.port)
        .user("postgres")
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("superuser over the socket: {e}"));
    tokio::spawn(conn);
    client
}

async fn exists(pg: &Postgres, what: &str, name: &str) -> bool {
    let q = if what == "role" {
        "SELECT 1 FROM pg_roles WHERE rolname = $1"
    } else {
        "SELECT 1 FROM pg_database WHERE datname = $1"
    };
    superuser(pg)
        .await
        .query_opt(q, &[&name])
        .await
        .expect(q)
        .is_some()
}

#[tokio::test]
async fn verify_full_connects_with_the_right_ca_and_refuses_a_wrong_one() {
    let _lock = support::exclusive().await;
    let s = Setup::with_server("pgtls-verify", Postgres::start_with_tls()).await;
    let ca_file = s.pg.ca_file.clone().expect("CA file");
    let right_ca = std::fs::read_to_string(&ca_file).expect("CA file");
    s.apply_admin_secret(&s.pg.admin_password);
    let ca_secret = unique_name("pgtls-ca");

    // The schema: verify modes need a CA, other modes take none.
    for (yaml, needle) in [
        (
            provider_config(&s, s.pg.port, "verify-full", None),
            "need caSecretRef",
        ),
        (
            provider_config(&s, s.pg.port, "require", Some(&ca_secret)),
            "caSecretRef is read only with sslMode verify-ca or verify-full",
        ),
    ] {
        let out = support::kubectl_with_stdin(
            [
                "apply",
                "--server-side",
                "--field-manager=dbclaim-e2e",
                "-f",
                "-",
            ],
            &yaml,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "accepted: {yaml}");
        assert!(stderr.contains(needle), "{stderr}");
    }

    // A CA that did not sign the server's certificate.
    apply_ca_secret(&s, &ca_secret, &fixture("other-ca.crt"));
    kubectl_apply(&provider_config(
        &s,
        s.pg.port,
        "verify-full",
        Some(&ca_secret),
    ));
    let _provider = Provider::start(s.ns.name()).await;
    let name = unique_name("pgtls-db");
    let database = db_name(&name);
    s.apply_database(&name, &database, "", "");

    let pc_ready = wait_config(&s, "Ready=False for the untrusted certificate", |c| {
        c.status == "False" && c.message.contains("unknown issuer")
    })
    .await;
    assert!(
        pc_ready.message.contains(&format!(
            "the certificate of PostgreSQL at 127.0.0.1:{} is not accepted with sslMode verify-full",
            s.pg.port
        )),
        "{}",
        pc_ready.message
    );
    let db = s
        .wait_db(&name, "Synced=False for the untrusted certificate", |d| {
            condition(d, "Synced")
                .is_some_and(|c| c.status == "False" && c.message.contains("unknown issuer"))
        })
        .await;
    let synced = condition(&db, "Synced").expect("Synced");
    assert!(
        synced.message.contains("caSecretRef") && !synced.message.contains(&s.pg.admin_password),
        "{}",
        synced.message
    );
    assert!(!exists(&s.pg, "role", &database).await, "role created");
    assert!(
        !exists(&s.pg, "database", &database).await,
        "database created"
    );

    // The right CA: the Secret's change alone brings it up.
    apply_ca_secret(&s, &ca_secret, &right_ca);
    s.wait_db(&name, "Ready with the right CA", ready).await;
    let pc_ready = wait_config(&s, "Ready=True", |c| c.status == "True").await;
    assert!(
        pc_ready
            .message
            .ends_with("over TLS, the certificate and host name checked against caSecretRef (sslMode verify-full)"),
        "{}",
        pc_ready.message
    );
    assert!(exists(&s.pg, "role", &database).await);
    assert!(exists(&s.pg, "database", &database).await);
    // Every session of the admin runs over TLS (the server takes no other
    // over TCP; this checks the operator's session is one of them).
    let row = superuser(&s.pg)
        .await
        .query_one(
            "SELECT count(*), coalesce(bool_and(s.ssl), false) FROM pg_stat_ssl s \
             JOIN pg_stat_activity a USING (pid) WHERE a.usename = $1",
            &[&s.pg.admin_user],
        )
        .await
        .expect("pg_stat_ssl");
    let (sessions, all_tls): (i64, bool) = (row.get(0), row.get(1));
    assert!(
        sessions >= 1 && all_tls,
        "{sessions} admin sessions, all TLS: {all_tls}"
    );

    s.delete_database(&name).await;
    assert!(!exists(&s.pg, "database", &database).await);
    assert!(!exists(&s.pg, "role", &database).await);
}

/// What the fake server got after asking for a password.
#[derive(Clone, Debug, PartialEq)]
enum Seen {
    /// A PasswordMessage's body.
    Password { tls: bool, body: Vec<u8> },
    /// The client closed the connection instead.
    NoPassword { tls: bool },
}

/// A fake PostgreSQL on 127.0.0.1 (a man in the middle as far as the
/// operator can tell): it accepts TLS with the fixture certificate (from
/// the fixture CA, for localhost and 127.0.0.1), reads the startup message,
/// asks for the password in clear text (3) or MD5 (5), and records what
/// comes back.
struct FakeServer {
    port: u16,
    request: Arc<AtomicU32>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

impl FakeServer {
    async fn start() -> Self {
        let certs = CertificateDer::pem_slice_iter(fixture("server.crt").as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("server.crt");
        let key = PrivateKeyDer::from_pem_slice(fixture("server.key").as_bytes()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let request = Arc::new(AtomicU32::new(3));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (r, s) = (request.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, r, s) = (acceptor.clone(), r.clone(), s.clone());
                tokio::spawn(async move {
                    let code = r.load(Ordering::SeqCst);
                    if let Some(seen) = serve(tcp, acceptor, code).await {
                        s.lock().expect("seen").push(seen);
                    }
                });
            }
        });
        Self {
            port,
            request,
            seen,
            task,
        }
    }

    fn ask_for(&self, code: u32) {
        self.request.store(code, Ordering::SeqCst);
    }

    fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().expect("seen"))
    }
}

async fn serve(
    mut tcp: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    code: u32,
) -> Option<Seen> {
    let mut head = [0u8; 8];
    tcp.read_exact(&mut head).await.ok()?;
    if head == SSL_REQUEST {
        tcp.write_all(b"S").await.ok()?;
        let tls = acceptor.accept(tcp).await.ok()?;
        let body = converse(tls, None, code).await?;
        Some(match body {
            Some(body) => Seen::Password { tls: true, body },
            None => Seen::NoPassword { tls: true },
        })
    } else {
        let body = converse(tcp, Some(head), code).await?;
        Some(match body {
            Some(body) => Seen::Password { tls: false, body },
            None => Seen::NoPassword { tls: false },
        })
    }
}

/// Reads the startup message (its first 8 bytes may be read already), asks
/// for a password, and returns the PasswordMessage's body if one comes.
/// `None` when the startup never arrived.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    head: Option<[u8; 8]>,
    code: u32,
) -> Option<Option<Vec<u8>>> {
    let (len, already) = match head {
        Some(h) => (u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize, 8),
        None => (s.read_u32().await.ok()? as usize, 4),
    };
    let mut startup = vec![0u8; len.checked_sub(already)?];
    s.read_exact(&mut startup).await.ok()?;
    let mut request = vec![b'R'];
    if code == 5 {
        request.extend(12u32.to_be_bytes());
        request.extend(5u32.to_be_bytes());
        request.extend(b"salt");
    } else {
        request.extend(8u32.to_be_bytes());
        request.extend(code.to_be_bytes());
    }
    s.write_all(&request).await.ok()?;
    let answer = tokio::time::timeout(Duration::from_secs(5), async {
        let kind = s.read_u8().await.ok()?;
        let len = s.read_u32().await.ok()? as usize;
        let mut body = vec![0u8; len.checked_sub(4)?];
        s.read_exact(&mut body).await.ok()?;
        (kind == b'p').then_some(body)
    })
    .await
    .ok()
    .flatten();
    if answer.is_some() {
        let mut error = vec![b'E'];
        let fields = b"SFATAL\0C28P01\0Mpassword authentication failed (fake server)\0\0";
        error.extend((fields.len() as u32 + 4).to_be_bytes());
        error.extend(fields);
        let _ = s.write_all(&error).await;
    }
    Some(answer)
}

/// Collects what the fake server sees until `done` holds for it; returns it.
async fn wait_seen(fake: &FakeServer, what: &str, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
    let deadline = Instant::now() + TIMEOUT;
    let mut all = Vec::new();
    loop {
        all.extend(fake.take_seen());
        if done(&all) {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: seen {all:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn require_and_above_send_no_password_to_a_server_asking_for_it_in_clear_text() {
    let _lock = support::exclusive().await;
    let s = Setup::with_server("pgtls-mitm", Postgres::start()).await;
    let password = format!("mitm-bait-{}", unique_name("pw"));
    s.apply_admin_secret(&password);
    let fake = FakeServer::start().await;
    let ca_secret = unique_name("pgtls-ca");
    apply_ca_secret(&s, &ca_secret, &fixture("ca.crt"));
    let _provider = Provider::start(s.ns.name()).await;
    let refused = "the server asked for a clear-text or MD5 password over TLS: refused";

    // require: any certificate, but no password unless by SCRAM.
    fake.ask_for(3);
    kubectl_apply(&provider_config(&s, fake.port, "require", None));
    let c = wait_config(&s, "the refusal with require", |c| {
        c.status == "False" && c.message.contains(refused)
    })
    .await;
    assert!(!c.message.contains(&password), "{}", c.message);
    let seen = wait_seen(&fake, "a connection with require", |s| !s.is_empty()).await;
    assert!(
        seen.iter().all(|s| *s == Seen::NoPassword { tls: true }),
        "require: {seen:?}"
    );

    // verify-full with a certificate the CA did sign: MD5 is refused too.
    fake.ask_for(5);
    kubectl_apply(&provider_config(
        &s,
        fake.port,
        "verify-full",
        Some(&ca_secret),
    ));
    let generation = s
        .configs
        .get(&s.config)
        .await
        .expect("ProviderConfig")
        .metadata
        .generation;
    wait_config(&s, "the refusal with verify-full", |c| {
        c.status == "False" && c.message.contains(refused) && c.observed_generation >= generation
    })
    .await;
    fake.take_seen();
    let seen = wait_seen(&fake, "a connection with verify-full", |s| !s.is_empty()).await;
    assert!(
        seen.iter().all(|s| *s == Seen::NoPassword { tls: true }),
        "verify-full: {seen:?}"
    );

    // The control: prefer answers such a request (what the contract leaves
    // it), so the fake server does see a password when one is sent.
    fake.ask_for(3);
    fake.take_seen();
    kubectl_apply(&provider_config(&s, fake.port, "prefer", None));
    wait_seen(&fake, "the password prefer sends", |seen| {
        seen.iter().any(|s| {
            matches!(s, Seen::Password { tls: true, body } if body.starts_with(password.as_bytes()))
        })
    })
    .await;
}

#[tokio::test]
async fn disable_and_a_plain_prefer_are_reported_on_the_provider_config() {
    let _lock = support::exclusive().await;
    let s = Setup::with_server("pgtls-plain", Postgres::start()).await;
    s.apply_admin_secret(&s.pg.admin_password);
    kubectl_apply(&provider_config(&s, s.pg.port, "disable", None));
    let _provider = Provider::start(s.ns.name()).await;

    let c = wait_config(&s, "Ready=True with disable", |c| c.status == "True").await;
    assert_eq!(
        c.message,
        format!(
            "connected to 127.0.0.1:{} as \"{}\" without TLS (sslMode disable): the admin password and all data travel unencrypted",
            s.pg.port, s.pg.admin_user
        )
    );
    // It still works: a Database comes up.
    let name = unique_name("pgtls-plain-db");
    let database = db_name(&name);
    s.apply_database(&name, &database, "", "");
    s.wait_db(&name, "Ready with sslMode disable", ready).await;

    // prefer against a server without TLS falls back to plain text, and says so.
    kubectl_apply(&provider_config(&s, s.pg.port, "prefer", None));
    let c = wait_config(&s, "the plain-text fallback of prefer", |c| {
        c.status == "True" && c.message.contains("sslMode prefer")
    })
    .await;
    assert!(
        c.message.ends_with(
            "without TLS, the server offers none (sslMode prefer): the admin password and all data travel unencrypted"
        ),
        "{}",
        c.message
    );

    s.delete_database(&name).await;
}
